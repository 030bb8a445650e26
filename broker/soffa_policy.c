/*  soffa_policy: the routing and policy table and its checks. */
#include "soffa_policy.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "soffa_id.h"
#include "soffa_uuid.h"

/* Where a message goes. */
typedef enum {
    S_TO_KAA_OF_SUBJECT,       /* kaa/<subject's hemkommun> */
    S_TO_SOCIAL_OF_SUBJECT,    /* social/<subject's hemkommun> */
    S_TO_AGENCY_OF_SUBJECT,    /* social/ or af/ by the referral's target kind */
    S_TO_OWN_JOURNAL,          /* the sender's journal */
    S_TO_ANSWERED_SENDER,      /* the inbox of whoever sent the answered record */
    S_TO_ANSWERED_RECIPIENT,   /* the mailbox the answered record went to */
} s_dest_t;

/* Checks a row asks for. */
enum {
    S_AGE_UNDER_20 = 1 << 0,         /* subject under 20 on the event date */
    S_AGE_UNDER_18 = 1 << 1,         /* subject (a child) under 18 */
    S_SUBJECT_IN_SCOPE = 1 << 2,     /* subject's hemkommun is the sender's municipality */
    S_CONSENT_TO_KAA = 1 << 3,       /* active consent covering disclosure to the KAA */
    S_CONSENT_REFERRAL = 1 << 4,     /* active consent covering this referral */
    S_CONSENT_FEEDBACK = 1 << 5,     /* referral's consent covers status feedback (beyond RECEIVED) */
    S_ANSWERER_RECEIVED = 1 << 6,    /* the answered record was sent to the sender's inbox */
    S_ANSWERER_SENT = 1 << 7,        /* the answered record came from the sender's inbox */
    S_OWN_CONSENT = 1 << 8,          /* consent_id equals the payload's consent id */
    S_CONSENT_EXISTS = 1 << 9,       /* the consent withdrawn was recorded by the sender */
};

typedef struct {
    soffa_msg_type_t type;
    soffa_role_t role;
    soffa_legal_basis_t basis;
    s_dest_t dest;
    char answers;      /* reference kind of the answered record, 0 if none */
    unsigned checks;
} s_rule_t;

/* DOMAIN.md §5.5. One row per allowed (type, sender role). */
static const s_rule_t s_rules[] = {
    {SOFFA_MT_ENROLMENT_CHANGED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SL_15_15_ENROLMENT, S_TO_KAA_OF_SUBJECT, 0, 0},
    {SOFFA_MT_ABSENCE_REPORTED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SL_15_15_ABSENCE, S_TO_KAA_OF_SUBJECT, 0, S_AGE_UNDER_20},
    {SOFFA_MT_AT_RISK_NOTICE, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_KAA_OF_SUBJECT, 0, S_CONSENT_TO_KAA},
    {SOFFA_MT_SIGNAL_ACKNOWLEDGED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_ANSWERED_SENDER, 'M', S_ANSWERER_RECEIVED},
    {SOFFA_MT_KAA_CASE_OPENED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE},
    {SOFFA_MT_CONTACT_ATTEMPTED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE},
    {SOFFA_MT_OCCUPATION_RECORDED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE},
    {SOFFA_MT_PLAN_AGREED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE},
    {SOFFA_MT_MEASURE_STARTED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE},
    {SOFFA_MT_MEASURE_ENDED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE},
    {SOFFA_MT_KAA_CASE_CLOSED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE},
    {SOFFA_MT_SUBJECT_IDENTITY_CHANGED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE},
    {SOFFA_MT_CONSENT_RECORDED, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE | S_OWN_CONSENT},
    {SOFFA_MT_CONSENT_RECORDED, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0, S_OWN_CONSENT},
    {SOFFA_MT_CONSENT_WITHDRAWN, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0, S_OWN_CONSENT | S_CONSENT_EXISTS},
    {SOFFA_MT_CONSENT_WITHDRAWN, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0, S_OWN_CONSENT | S_CONSENT_EXISTS},
    {SOFFA_MT_REFERRAL_SENT, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_AGENCY_OF_SUBJECT, 0, S_SUBJECT_IN_SCOPE | S_CONSENT_REFERRAL},
    {SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_SOCIAL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER, 'R', S_ANSWERER_RECEIVED | S_CONSENT_FEEDBACK},
    {SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_AF, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER, 'R', S_ANSWERER_RECEIVED | S_CONSENT_FEEDBACK},
    {SOFFA_MT_REFERRAL_WITHDRAWN, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_RECIPIENT, 'R', S_ANSWERER_SENT},
    {SOFFA_MT_CONCERN_REPORT_FILED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SOL_REPORT_OF_CONCERN, S_TO_SOCIAL_OF_SUBJECT, 0, S_AGE_UNDER_18},
    {SOFFA_MT_CONCERN_REPORT_FILED, SOFFA_ROLE_KAA, SOFFA_LB_SOL_REPORT_OF_CONCERN, S_TO_SOCIAL_OF_SUBJECT, 0, S_AGE_UNDER_18},
    {SOFFA_MT_CONCERN_REPORT_FEEDBACK, SOFFA_ROLE_SOCIAL, SOFFA_LB_SOL_REPORTER_FEEDBACK, S_TO_ANSWERED_SENDER, 'C', S_ANSWERER_RECEIVED},
};

static soffa_err_t
s_refuse(char *why, size_t whylen, soffa_err_t rc, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- Identities --------------------------------------------------------------- */

/* A local unit code, as soffa_msg_validate takes it in unit_id: 1 to 16 of
 * A-Z 0-9 and '-', starting with a letter or digit. */
static bool
s_unit_code(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 16 || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

soffa_err_t
soffa_policy_set_units(soffa_identity_t *id, const char *list, char *why, size_t whylen)
{
    id->n_units = 0;
    id->unit[0] = '\0';
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, ", \t");
        char code[sizeof id->units[0]];
        snprintf(code, sizeof code, "%.*s", (int) (n < sizeof code - 1 ? n : sizeof code - 1), p);
        if (id->role == SOFFA_ROLE_SCHOOL && (n > 8 || soffa_skolenhet_check(code) != SOFFA_OK))
            return s_refuse(why, whylen, SOFFA_ERR_SKOLENHET, "'%s%s' is not an 8-digit school unit code", code,
                            n >= sizeof code ? "..." : "");
        if (id->role != SOFFA_ROLE_SCHOOL && (n >= sizeof code || !s_unit_code(code)))
            return s_refuse(why, whylen, SOFFA_ERR_BAD_FIELD, "'%s%s' is not a unit code (1 to 16 of A-Z 0-9 -)",
                            code, n >= sizeof code ? "..." : "");
        if (soffa_policy_has_unit(id, code))
            return s_refuse(why, whylen, SOFFA_ERR_EXISTS, "school unit %s is listed twice", code);
        if (id->n_units >= SOFFA_UNITS_MAX)
            return s_refuse(why, whylen, SOFFA_ERR_TOO_LARGE, "more than %d school units", SOFFA_UNITS_MAX);
        memcpy(id->units[id->n_units++], code, sizeof code);
        p += n;
    }
    if (id->n_units)
        snprintf(id->unit, sizeof id->unit, "%s", id->units[0]);
    return SOFFA_OK;
}

bool
soffa_policy_has_unit(const soffa_identity_t *id, const char *unit)
{
    for (size_t i = 0; unit && i < id->n_units; i++)
        if (strcmp(id->units[i], unit) == 0)
            return true;
    return false;
}

/* ---- Mailboxes ------------------------------------------------------------ */

static void
s_inbox_of(soffa_role_t role, const char *agent, const char *kommun, char out[SOFFA_NAME_MAX])
{
    switch (role) {
    case SOFFA_ROLE_SCHOOL: snprintf(out, SOFFA_NAME_MAX, "school/%.50s", agent); break;
    case SOFFA_ROLE_KAA: snprintf(out, SOFFA_NAME_MAX, "kaa/%.4s", kommun); break;
    case SOFFA_ROLE_SOCIAL: snprintf(out, SOFFA_NAME_MAX, "social/%.4s", kommun); break;
    case SOFFA_ROLE_AF: snprintf(out, SOFFA_NAME_MAX, "af/%.4s", kommun); break;
    /* An auditor's agent keeps every signed checkpoint it is given: its own
     * copy of the chain heads, for soffa verify --against. */
    case SOFFA_ROLE_AUDIT: snprintf(out, SOFFA_NAME_MAX, "audit/checkpoint"); break;
    default: out[0] = '\0'; break;
    }
}

void
soffa_policy_inbox(const soffa_identity_t *id, char out[SOFFA_NAME_MAX])
{
    s_inbox_of(id->role, id->name, id->kommun, out);
}

void
soffa_policy_journal(const soffa_identity_t *id, char out[SOFFA_NAME_MAX])
{
    if (id->role == SOFFA_ROLE_KAA)
        snprintf(out, SOFFA_NAME_MAX, "kaa-journal/%.4s", id->kommun);
    else if (id->role == SOFFA_ROLE_SCHOOL)
        snprintf(out, SOFFA_NAME_MAX, "school-journal/%.44s", id->name);
    else
        out[0] = '\0';
}

bool
soffa_policy_may_replay(const soffa_identity_t *id, const char *mailbox)
{
    if (id->role != SOFFA_ROLE_AUDIT || !mailbox)
        return false;
    char scope[SOFFA_SCOPE_MAX];
    snprintf(scope, sizeof scope, "%s", id->scope);
    char *save = NULL;
    for (char *pat = strtok_r(scope, ", ", &save); pat; pat = strtok_r(NULL, ", ", &save))
        if (fnmatch(pat, mailbox, 0) == 0)
            return true;
    return false;
}

bool
soffa_policy_may_read(const soffa_identity_t *id, const char *mailbox)
{
    char inbox[SOFFA_NAME_MAX];
    soffa_policy_inbox(id, inbox);
    return inbox[0] && strcmp(inbox, mailbox) == 0;
}

bool
soffa_policy_needs_lookup(soffa_msg_type_t type)
{
    for (size_t i = 0; i < sizeof s_rules / sizeof *s_rules; i++)
        if (s_rules[i].type == type
            && (s_rules[i].answers || (s_rules[i].checks & (S_CONSENT_TO_KAA | S_CONSENT_REFERRAL | S_CONSENT_EXISTS)))
            )
            return true;
    /* New ids are checked for reuse against the store. */
    return type == SOFFA_MT_REFERRAL_SENT || type == SOFFA_MT_CONSENT_RECORDED
        || type == SOFFA_MT_CONCERN_REPORT_FILED;
}

void
soffa_policy_ref_fini(soffa_policy_ref_t *ref)
{
    if (!ref)
        return;
    soffa_msg_destroy(&ref->msg);
    memset(ref, 0, sizeof *ref);
}

/* ---- Checks ----------------------------------------------------------------- */

static const char *
s_basis_name(soffa_legal_basis_t b)
{
    static const char *const names[] = {"none", "SL_15_15_ENROLMENT", "SL_15_15_ABSENCE",
                                        "SOL_REPORT_OF_CONCERN", "SOL_REPORTER_FEEDBACK",
                                        "CONSENT_OSL_12_2", "SL_29_9_INTERNAL"};
    return (unsigned) b < sizeof names / sizeof *names ? names[b] : "unknown";
}

static soffa_party_kind_t
s_party_of_role(soffa_role_t role)
{
    switch (role) {
    case SOFFA_ROLE_SCHOOL: return SOFFA_PK_SCHOOL_PRINCIPAL;
    case SOFFA_ROLE_KAA: return SOFFA_PK_KAA;
    case SOFFA_ROLE_SOCIAL: return SOFFA_PK_SOCIAL_SERVICES;
    case SOFFA_ROLE_AF: return SOFFA_PK_ARBETSFORMEDLINGEN;
    default: return SOFFA_PK_NONE;
    }
}

/* Age on the event date from the birth date the identity carries (a
 * reserve number's first eight characters); -1 when there is no birth date,
 * no event date, or the event lies before the birth. */
static int
s_age(const soffa_msg_view_t *v)
{
    soffa_date_t birth, on;
    soffa_err_t rc = v->id_type == SOFFA_IDT_LOCAL_RESERVE ? soffa_reserve_birth_date(v->subject_id, &birth)
                   : v->id_type == SOFFA_IDT_PNR || v->id_type == SOFFA_IDT_SAMNR
                       ? soffa_id_birth_date(v->subject_id, &birth)
                       : SOFFA_ERR_ID_FORMAT;
    if (rc != SOFFA_OK || !soffa_date_from_int(v->event_date, &on) || soffa_date_cmp(on, birth) < 0)
        return -1;
    return soffa_date_age(birth, on);
}

/* Is the consent record `c` usable for this message today? Checks subject,
 * validity and withdrawal; the caller checks scope. */
static soffa_err_t
s_consent_active(const soffa_policy_ref_t *c, const soffa_msg_view_t *v, soffa_date_t today,
                 soffa_policy_find_fn find, void *ctx, char *why, size_t whylen)
{
    if (c->view.type != SOFFA_MT_CONSENT_RECORDED)
        return s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent id does not name a recorded consent");
    if (strcmp(c->view.subject_id, v->subject_id) != 0)
        return s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent was given for another person");
    uint32_t t = soffa_date_to_int(today);
    if (t < c->view.consent_valid_from || t > c->view.consent_valid_to)
        return s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent is not valid today (valid %u to %u)",
                        c->view.consent_valid_from, c->view.consent_valid_to);
    soffa_policy_ref_t w = {0};
    soffa_err_t rc = find(ctx, 'W', c->view.ref_id, &w);
    soffa_policy_ref_fini(&w);
    if (rc == SOFFA_OK)
        return s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent has been withdrawn");
    if (rc != SOFFA_ERR_NOT_FOUND)
        return rc;
    return SOFFA_OK;
}

bool
soffa_policy_referral_deliverable(const soffa_msg_view_t *referral, soffa_date_t today,
                                  soffa_policy_find_fn find, void *ctx)
{
    if (!referral->consent_id)
        return false;
    soffa_policy_ref_t c = {0};
    if (find(ctx, 'K', referral->consent_id, &c) != SOFFA_OK)
        return false;
    soffa_err_t rc = s_consent_active(&c, referral, today, find, ctx, NULL, 0);
    soffa_policy_ref_fini(&c);
    return rc == SOFFA_OK;
}

bool
soffa_policy_is_inbox(const char *mailbox)
{
    return mailbox
           && (!strncmp(mailbox, "kaa/", 4) || !strncmp(mailbox, "social/", 7) || !strncmp(mailbox, "af/", 3)
               || !strncmp(mailbox, "school/", 7));
}

soffa_err_t
soffa_policy_decide(const soffa_identity_t *sender, const soffa_msg_t *msg, soffa_date_t today,
                    const soffa_policy_facts_t *facts, soffa_policy_find_fn find, void *ctx,
                    soffa_policy_decision_t *out, char *why, size_t whylen)
{
    soffa_msg_view_t v;
    soffa_msg_view(msg, &v);
    memset(out, 0, sizeof *out);
    const char *tname = soffa_msg_type_name(v.type);
    const char *rname = soffa_role_name(sender->role);

    /* 1. The table row. */
    const s_rule_t *rule = NULL;
    bool type_known = false;
    for (size_t i = 0; i < sizeof s_rules / sizeof *s_rules; i++) {
        if (s_rules[i].type == v.type) {
            type_known = true;
            if (s_rules[i].role == sender->role)
                rule = &s_rules[i];
        }
    }
    if (!rule)
        return s_refuse(why, whylen, SOFFA_ERR_POLICY, "a %s agent may not send %s%s", rname, tname,
                        type_known ? "" : " (no route exists for it)");
    if (v.legal_basis != rule->basis)
        return s_refuse(why, whylen, SOFFA_ERR_LEGAL_BASIS, "%s must rest on %s, not %s", tname,
                        s_basis_name(rule->basis), s_basis_name(v.legal_basis));

    /* 2. What the message says about its sender must be what the key's
     *    configuration says: a claim the configuration cannot confirm is
     *    refused as well. */
    if (v.claimed_kind && v.claimed_kind != (int) s_party_of_role(sender->role))
        return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.kind: the message claims another kind of sender than %s, a %s agent", sender->name,
                        rname);
    if (v.claimed_orgnr[0] && !sender->orgnr[0])
        return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.org_nr: the message claims organisation %s, but %s has no orgnr in the broker's "
                        "configuration to confirm it", v.claimed_orgnr, sender->name);
    if (v.claimed_orgnr[0] && strcmp(v.claimed_orgnr, sender->orgnr) != 0)
        return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.org_nr: the message claims organisation %s; %s is %s", v.claimed_orgnr, sender->name,
                        sender->orgnr);
    if (v.claimed_kommun[0] && strcmp(v.claimed_kommun, sender->kommun) != 0)
        return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.kommunkod: the message claims municipality %s; %s serves %s", v.claimed_kommun,
                        sender->name, sender->kommun[0] ? sender->kommun : "none");
    if (v.claimed_unit[0] && !soffa_policy_has_unit(sender, v.claimed_unit))
        return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.unit_id: the message claims unit %s, which is not one of %s's configured units",
                        v.claimed_unit, sender->name);
    if (v.school_unit[0] && !soffa_policy_has_unit(sender, v.school_unit))
        return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "%s.school_unit: %s is not one of %s's configured school units", tname, v.school_unit,
                        sender->name);

    /* 3. Protected identities: no contact details, whatever else holds;
     * once any message said so, soffa remembers it until the KAA of the
     * home municipality lifts it. */
    bool remembered = facts && facts->subject_protected;
    if ((v.protected_identity || (remembered && !v.protection_lifted)) && v.has_contact)
        return s_refuse(why, whylen, SOFFA_ERR_PROTECTED,
                        "the young person has a protected identity%s; remove the phone and e-mail",
                        v.protected_identity ? "" : " (an earlier message said so)");
    if (v.protection_lifted && (sender->role != SOFFA_ROLE_KAA || strcmp(sender->kommun, v.hemkommun) != 0))
        return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "only the KAA of the home municipality (%s) may say that an identity is no longer protected",
                        v.hemkommun);

    /* 4. Age, from the birth date the identity carries (a reserve number's
     *    too). A message whose age rule cannot be checked is refused. */
    if (rule->checks & (S_AGE_UNDER_20 | S_AGE_UNDER_18)) {
        int age = s_age(&v);
        if (age < 0)
            return s_refuse(why, whylen, SOFFA_ERR_AGE,
                            "the age rule of %s cannot be checked: the event date lies before the birth date, "
                            "or one of them is not a real date", tname);
        if ((rule->checks & S_AGE_UNDER_20) && age >= 20)
            return s_refuse(why, whylen, SOFFA_ERR_AGE,
                            "absence is reported only for pupils under 20; this pupil was %d when the absence began", age);
        if ((rule->checks & S_AGE_UNDER_18) && age >= 18)
            return s_refuse(why, whylen, SOFFA_ERR_AGE,
                            "a report of concern is for a child under 18; this person was %d (use a referral with consent)", age);
    }

    if ((rule->checks & S_SUBJECT_IN_SCOPE) && strcmp(v.hemkommun, sender->kommun) != 0)
        return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "%s serves municipality %s, but the young person's home municipality is %s",
                        sender->name, sender->kommun, v.hemkommun);

    if ((rule->checks & S_OWN_CONSENT)
        && (!v.consent_id || !v.ref_id || memcmp(v.consent_id, v.ref_id, 16) != 0))
        return s_refuse(why, whylen, SOFFA_ERR_BAD_FIELD, "consent_id must be the id of the consent itself");

    /* 5. Ids a record introduces must be new. */
    char newkind = v.type == SOFFA_MT_REFERRAL_SENT ? 'R'
                 : v.type == SOFFA_MT_CONSENT_RECORDED ? 'K'
                 : v.type == SOFFA_MT_CONCERN_REPORT_FILED ? 'C' : 0;
    if (newkind && v.ref_id) {
        soffa_policy_ref_t old = {0};
        soffa_err_t rc = find(ctx, newkind, v.ref_id, &old);
        soffa_policy_ref_fini(&old);
        if (rc == SOFFA_OK)
            return s_refuse(why, whylen, SOFFA_ERR_EXISTS, "that %s id is already in use; make a new one",
                            newkind == 'R' ? "referral" : newkind == 'K' ? "consent" : "report");
        if (rc != SOFFA_ERR_NOT_FOUND)
            return rc;
    }

    /* 6. Consent. */
    if (rule->checks & (S_CONSENT_TO_KAA | S_CONSENT_REFERRAL)) {
        soffa_policy_ref_t c = {0};
        soffa_err_t rc = v.consent_id ? find(ctx, 'K', v.consent_id, &c) : SOFFA_ERR_NOT_FOUND;
        if (rc == SOFFA_ERR_NOT_FOUND)
            return s_refuse(why, whylen, SOFFA_ERR_CONSENT,
                            "no consent is recorded under that consent id; record the young person's consent first");
        if (rc != SOFFA_OK)
            return rc;
        char journal[SOFFA_NAME_MAX];
        soffa_policy_journal(sender, journal);
        rc = strcmp(c.mailbox, journal) == 0
                 ? s_consent_active(&c, &v, today, find, ctx, why, whylen)
                 : s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent was recorded by another organisation");
        if (rc == SOFFA_OK && (rule->checks & S_CONSENT_TO_KAA)
            && !(c.view.consent_recipients & (1u << SOFFA_PK_KAA)))
            rc = s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent does not cover disclosure to the KAA");
        if (rc == SOFFA_OK && (rule->checks & S_CONSENT_REFERRAL)) {
            soffa_party_kind_t pk = v.target_kind == SOFFA_TK_SOCIAL_SERVICES ? SOFFA_PK_SOCIAL_SERVICES
                                  : v.target_kind == SOFFA_TK_ARBETSFORMEDLINGEN ? SOFFA_PK_ARBETSFORMEDLINGEN
                                                                                 : SOFFA_PK_NONE;
            if (pk == SOFFA_PK_NONE)
                rc = s_refuse(why, whylen, SOFFA_ERR_POLICY,
                              "soffa routes referrals to social services and Arbetsförmedlingen only");
            else if (!(c.view.consent_recipients & (1u << pk)))
                rc = s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent does not cover %s",
                              pk == SOFFA_PK_SOCIAL_SERVICES ? "social services" : "Arbetsförmedlingen");
            else if (!(c.view.consent_purposes & (1u << SOFFA_CP_REFERRAL)))
                rc = s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent does not cover referrals");
            else if (v.has_contact && !(c.view.consent_categories & (1u << SOFFA_DC_CONTACT)))
                rc = s_refuse(why, whylen, SOFFA_ERR_CONSENT,
                              "the consent does not cover contact details; remove them or record a wider consent");
        }
        soffa_policy_ref_fini(&c);
        if (rc != SOFFA_OK)
            return rc;
    }
    if (rule->checks & S_CONSENT_EXISTS) {
        soffa_policy_ref_t c = {0};
        soffa_err_t rc = find(ctx, 'K', v.ref_id, &c);
        if (rc == SOFFA_ERR_NOT_FOUND)
            return s_refuse(why, whylen, SOFFA_ERR_NOT_FOUND, "no consent is recorded under that id");
        if (rc != SOFFA_OK)
            return rc;
        char journal[SOFFA_NAME_MAX];
        soffa_policy_journal(sender, journal);
        bool ours = strcmp(c.mailbox, journal) == 0;
        bool same = c.view.type == SOFFA_MT_CONSENT_RECORDED && c.view.id_type == v.id_type
                 && strcmp(c.view.subject_id, v.subject_id) == 0;
        soffa_policy_ref_fini(&c);
        if (!ours)
            return s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED, "the consent was recorded by another organisation");
        if (!same)
            return s_refuse(why, whylen, SOFFA_ERR_CONSENT,
                            "the consent was given by another person: a withdrawal names the consent's own subject");
    }

    /* 7. Answers: the record answered decides where the answer goes. */
    char inbox[SOFFA_NAME_MAX];
    soffa_policy_inbox(sender, inbox);
    if (rule->answers) {
        soffa_policy_ref_t a = {0};
        soffa_err_t rc = v.ref_id ? find(ctx, rule->answers, v.ref_id, &a) : SOFFA_ERR_NOT_FOUND;
        if (rc == SOFFA_ERR_NOT_FOUND)
            return s_refuse(why, whylen, SOFFA_ERR_NOT_FOUND, "the %s being answered is not known to soffa",
                            rule->answers == 'M' ? "signal" : rule->answers == 'R' ? "referral" : "report");
        if (rc != SOFFA_OK)
            return rc;
        char answered_sender_inbox[SOFFA_NAME_MAX];
        s_inbox_of(a.sender_role, a.sender, a.sender_kommun, answered_sender_inbox);
        if ((rule->checks & S_ANSWERER_RECEIVED) && strcmp(a.mailbox, inbox) != 0)
            rc = s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED, "only its recipient (%s) may answer it", a.mailbox);
        else if ((rule->checks & S_ANSWERER_SENT) && strcmp(answered_sender_inbox, inbox) != 0)
            rc = s_refuse(why, whylen, SOFFA_ERR_NOT_AUTHORISED, "only its sender may withdraw it");
        else if (strcmp(a.view.subject_id, v.subject_id) != 0)
            rc = s_refuse(why, whylen, SOFFA_ERR_BAD_FIELD, "the answer is about another person than the message it answers");
        if (rc == SOFFA_OK && v.type == SOFFA_MT_REFERRAL_STATUS_CHANGED) {
            if (!v.consent_id || !a.view.consent_id || memcmp(v.consent_id, a.view.consent_id, 16) != 0)
                rc = s_refuse(why, whylen, SOFFA_ERR_CONSENT, "consent_id must be the referral's consent id");
            else if (v.referral_status != SOFFA_RS_RECEIVED) {
                soffa_policy_ref_t c = {0};
                rc = find(ctx, 'K', a.view.consent_id, &c);
                if (rc == SOFFA_OK)
                    rc = s_consent_active(&c, &v, today, find, ctx, why, whylen);
                else if (rc == SOFFA_ERR_NOT_FOUND)
                    rc = s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the referral's consent is not recorded");
                if (rc == SOFFA_OK && !(c.view.consent_purposes & (1u << SOFFA_CP_STATUS_FEEDBACK)))
                    rc = s_refuse(why, whylen, SOFFA_ERR_CONSENT,
                                  "the consent does not cover status feedback; only RECEIVED may be sent");
                soffa_policy_ref_fini(&c);
            }
        }
        if (rc == SOFFA_OK) {
            if (rule->dest == S_TO_ANSWERED_SENDER)
                snprintf(out->mailbox, sizeof out->mailbox, "%s", answered_sender_inbox);
            else
                snprintf(out->mailbox, sizeof out->mailbox, "%s", a.mailbox);
        }
        soffa_policy_ref_fini(&a);
        if (rc != SOFFA_OK)
            return rc;
    }

    /* 8. Destination. */
    switch (rule->dest) {
    case S_TO_KAA_OF_SUBJECT:
        snprintf(out->mailbox, sizeof out->mailbox, "kaa/%.4s", v.hemkommun);
        break;
    case S_TO_SOCIAL_OF_SUBJECT:
        snprintf(out->mailbox, sizeof out->mailbox, "social/%.4s", v.hemkommun);
        break;
    case S_TO_AGENCY_OF_SUBJECT:
        snprintf(out->mailbox, sizeof out->mailbox, "%s/%.4s",
                 v.target_kind == SOFFA_TK_SOCIAL_SERVICES ? "social" : "af", v.hemkommun);
        break;
    case S_TO_OWN_JOURNAL:
        soffa_policy_journal(sender, out->mailbox);
        break;
    case S_TO_ANSWERED_SENDER:
    case S_TO_ANSWERED_RECIPIENT:
        break;   /* set above */
    }
    if (!out->mailbox[0])
        return s_refuse(why, whylen, SOFFA_ERR_POLICY, "no mailbox for this message");

    /* 9. Keys the record will be found by. */
    const uint8_t *ids[2] = {NULL, NULL};
    char kinds[2] = {0, 0};
    switch (v.type) {
    case SOFFA_MT_ENROLMENT_CHANGED:
    case SOFFA_MT_ABSENCE_REPORTED:
    case SOFFA_MT_AT_RISK_NOTICE: kinds[0] = 'M'; ids[0] = v.message_id; break;
    case SOFFA_MT_REFERRAL_SENT: kinds[0] = 'R'; ids[0] = v.ref_id; kinds[1] = 'X'; ids[1] = v.consent_id; break;
    case SOFFA_MT_CONCERN_REPORT_FILED: kinds[0] = 'C'; ids[0] = v.ref_id; break;
    case SOFFA_MT_CONSENT_RECORDED: kinds[0] = 'K'; ids[0] = v.ref_id; break;
    case SOFFA_MT_CONSENT_WITHDRAWN: kinds[0] = 'W'; ids[0] = v.ref_id; break;
    case SOFFA_MT_SIGNAL_ACKNOWLEDGED: kinds[0] = 'A'; ids[0] = v.ref_id; break;        /* the signal is answered */
    case SOFFA_MT_REFERRAL_STATUS_CHANGED: kinds[0] = 'S'; ids[0] = v.ref_id; break;    /* the referral is received */
    default: break;
    }
    /* 10. Receipts: what this record awaits, and what it answers. */
    if (v.type == SOFFA_MT_ENROLMENT_CHANGED || v.type == SOFFA_MT_ABSENCE_REPORTED
        || v.type == SOFFA_MT_AT_RISK_NOTICE) {
        out->awaits = SOFFA_POLICY_AWAIT_ACK;
        memcpy(out->awaits_id, v.message_id, 16);
    } else if (v.type == SOFFA_MT_REFERRAL_SENT && v.ref_id) {
        out->awaits = SOFFA_POLICY_AWAIT_STATUS;
        memcpy(out->awaits_id, v.ref_id, 16);
    } else if (v.type == SOFFA_MT_SIGNAL_ACKNOWLEDGED && v.ref_id) {
        out->answers = SOFFA_POLICY_AWAIT_ACK;
        memcpy(out->answers_id, v.ref_id, 16);
    } else if (v.type == SOFFA_MT_REFERRAL_STATUS_CHANGED && v.ref_id) {
        out->answers = SOFFA_POLICY_AWAIT_STATUS;
        memcpy(out->answers_id, v.ref_id, 16);
    }
    for (int i = 0; i < 2; i++) {
        if (!kinds[i] || !ids[i])
            continue;
        soffa_store_ref_t *r = &out->refs[out->n_refs++];
        r->key[0] = (uint8_t) kinds[i];
        memcpy(r->key + 1, ids[i], 16);
        r->len = 17;
        r->shared = kinds[i] == 'X';   /* many referrals per consent */
    }
    return SOFFA_OK;
}
