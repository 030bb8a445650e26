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

/* Checks a row asks for (each is one named function below). */
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
    S_CONSENT_EXISTS = 1 << 9,       /* the consent withdrawn was recorded by the sender, for its subject */
};

/* Which id of a message a column names. */
typedef enum { S_ID_NONE, S_ID_MESSAGE, S_ID_REF, S_ID_CONSENT } s_id_t;

/* How a record is found later: under reference kind `kind`, by its id `id`. */
typedef struct {
    soffa_ref_kind_t kind;
    s_id_t id;
} s_index_t;

/* One allowed (message type, sender role), with everything the decision
 * needs: the legal basis, the destination, the record answered (if any),
 * the checks, the id it introduces (must be new), the keys it is found by,
 * and the receipt it awaits or gives. */
typedef struct {
    soffa_msg_type_t type;
    soffa_role_t role;
    soffa_legal_basis_t basis;
    s_dest_t dest;
    soffa_ref_kind_t answers;        /* the record answered, found by the payload's id */
    unsigned checks;
    soffa_ref_kind_t introduces;     /* the payload's id names a new record of this kind */
    s_index_t index[2];              /* keys the record is found by */
    soffa_receipt_t awaits;          /* the receipt it waits for (named by awaits_id) */
    s_id_t awaits_id;
    soffa_receipt_t gives;           /* the receipt it is (for the payload's id) */
} s_rule_t;

#define S_SIGNAL_INDEX {{SOFFA_REF_SIGNAL, S_ID_MESSAGE}, {0, 0}}
#define S_NO_INDEX {{0, 0}, {0, 0}}

/* DOMAIN.md §5.5. One row per allowed (type, sender role). */
static const s_rule_t s_rules[] = {
    /* School signals: SL 15:15, and at-risk notices with consent. They wait for the KAA's acknowledgement. */
    {SOFFA_MT_ENROLMENT_CHANGED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SL_15_15_ENROLMENT, S_TO_KAA_OF_SUBJECT, 0, 0, 0,
     S_SIGNAL_INDEX, SOFFA_RECEIPT_ACK, S_ID_MESSAGE, 0},
    {SOFFA_MT_ABSENCE_REPORTED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SL_15_15_ABSENCE, S_TO_KAA_OF_SUBJECT, 0, S_AGE_UNDER_20, 0,
     S_SIGNAL_INDEX, SOFFA_RECEIPT_ACK, S_ID_MESSAGE, 0},
    {SOFFA_MT_AT_RISK_NOTICE, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_KAA_OF_SUBJECT, 0, S_CONSENT_TO_KAA, 0,
     S_SIGNAL_INDEX, SOFFA_RECEIPT_ACK, S_ID_MESSAGE, 0},
    /* The KAA's acknowledgement goes back to the school that signalled. */
    {SOFFA_MT_SIGNAL_ACKNOWLEDGED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_ANSWERED_SENDER, SOFFA_REF_SIGNAL,
     S_ANSWERER_RECEIVED, 0, {{SOFFA_REF_ACK, S_ID_REF}, {0, 0}}, 0, 0, SOFFA_RECEIPT_ACK},
    /* The KAA's own case events: its journal only. */
    {SOFFA_MT_KAA_CASE_OPENED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE, 0,
     S_NO_INDEX, 0, 0, 0},
    {SOFFA_MT_CONTACT_ATTEMPTED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE, 0,
     S_NO_INDEX, 0, 0, 0},
    {SOFFA_MT_OCCUPATION_RECORDED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE, 0,
     S_NO_INDEX, 0, 0, 0},
    {SOFFA_MT_PLAN_AGREED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE, 0,
     S_NO_INDEX, 0, 0, 0},
    {SOFFA_MT_MEASURE_STARTED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE, 0,
     S_NO_INDEX, 0, 0, 0},
    {SOFFA_MT_MEASURE_ENDED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE, 0,
     S_NO_INDEX, 0, 0, 0},
    {SOFFA_MT_KAA_CASE_CLOSED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_SUBJECT_IN_SCOPE, 0,
     S_NO_INDEX, 0, 0, 0},
    {SOFFA_MT_SUBJECT_IDENTITY_CHANGED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0,
     S_SUBJECT_IN_SCOPE, 0, S_NO_INDEX, 0, 0, 0},
    /* Consents, recorded and withdrawn in the recorder's journal. */
    {SOFFA_MT_CONSENT_RECORDED, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_SUBJECT_IN_SCOPE | S_OWN_CONSENT, SOFFA_REF_CONSENT, {{SOFFA_REF_CONSENT, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_CONSENT_RECORDED, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0, S_OWN_CONSENT,
     SOFFA_REF_CONSENT, {{SOFFA_REF_CONSENT, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_CONSENT_WITHDRAWN, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_OWN_CONSENT | S_CONSENT_EXISTS, 0, {{SOFFA_REF_WITHDRAWAL, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_CONSENT_WITHDRAWN, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_OWN_CONSENT | S_CONSENT_EXISTS, 0, {{SOFFA_REF_WITHDRAWAL, S_ID_REF}, {0, 0}}, 0, 0, 0},
    /* Referrals with consent, and their answers. A referral waits for a status. */
    {SOFFA_MT_REFERRAL_SENT, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_AGENCY_OF_SUBJECT, 0,
     S_SUBJECT_IN_SCOPE | S_CONSENT_REFERRAL, SOFFA_REF_REFERRAL,
     {{SOFFA_REF_REFERRAL, S_ID_REF}, {SOFFA_REF_BY_CONSENT, S_ID_CONSENT}}, SOFFA_RECEIPT_STATUS, S_ID_REF, 0},
    {SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_SOCIAL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER,
     SOFFA_REF_REFERRAL, S_ANSWERER_RECEIVED | S_CONSENT_FEEDBACK, 0, {{SOFFA_REF_STATUS, S_ID_REF}, {0, 0}}, 0, 0,
     SOFFA_RECEIPT_STATUS},
    {SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_AF, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER,
     SOFFA_REF_REFERRAL, S_ANSWERER_RECEIVED | S_CONSENT_FEEDBACK, 0, {{SOFFA_REF_STATUS, S_ID_REF}, {0, 0}}, 0, 0,
     SOFFA_RECEIPT_STATUS},
    {SOFFA_MT_REFERRAL_WITHDRAWN, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_RECIPIENT,
     SOFFA_REF_REFERRAL, S_ANSWERER_SENT, 0, S_NO_INDEX, 0, 0, 0},
    /* Reports of concern: never held back by consent. */
    {SOFFA_MT_CONCERN_REPORT_FILED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SOL_REPORT_OF_CONCERN, S_TO_SOCIAL_OF_SUBJECT, 0,
     S_AGE_UNDER_18, SOFFA_REF_REPORT, {{SOFFA_REF_REPORT, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_CONCERN_REPORT_FILED, SOFFA_ROLE_KAA, SOFFA_LB_SOL_REPORT_OF_CONCERN, S_TO_SOCIAL_OF_SUBJECT, 0,
     S_AGE_UNDER_18, SOFFA_REF_REPORT, {{SOFFA_REF_REPORT, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_CONCERN_REPORT_FEEDBACK, SOFFA_ROLE_SOCIAL, SOFFA_LB_SOL_REPORTER_FEEDBACK, S_TO_ANSWERED_SENDER,
     SOFFA_REF_REPORT, S_ANSWERER_RECEIVED, 0, S_NO_INDEX, 0, 0, 0},
};

#define S_N_RULES (sizeof s_rules / sizeof *s_rules)

/* The row for (type, role), or NULL. */
static const s_rule_t *
s_rule(soffa_msg_type_t type, soffa_role_t role)
{
    for (size_t i = 0; i < S_N_RULES; i++)
        if (s_rules[i].type == type && s_rules[i].role == role)
            return &s_rules[i];
    return NULL;
}

/* Any row for type (its per-type columns are the same in every row). */
static const s_rule_t *
s_rule_of_type(soffa_msg_type_t type)
{
    for (size_t i = 0; i < S_N_RULES; i++)
        if (s_rules[i].type == type)
            return &s_rules[i];
    return NULL;
}

soffa_legal_basis_t
soffa_policy_basis(soffa_msg_type_t type, soffa_role_t role)
{
    const s_rule_t *r = role ? s_rule(type, role) : s_rule_of_type(type);
    return r ? r->basis : SOFFA_LB_NONE;
}

bool
soffa_policy_route_at(size_t i, soffa_msg_type_t *type, soffa_role_t *role)
{
    if (i >= S_N_RULES)
        return false;
    *type = s_rules[i].type;
    *role = s_rules[i].role;
    return true;
}

soffa_receipt_t
soffa_policy_awaits(soffa_msg_type_t type)
{
    const s_rule_t *r = s_rule_of_type(type);
    return r ? r->awaits : SOFFA_RECEIPT_NONE;
}

soffa_receipt_t
soffa_policy_gives(soffa_msg_type_t type)
{
    const s_rule_t *r = s_rule_of_type(type);
    return r ? r->gives : SOFFA_RECEIPT_NONE;
}

const char *
soffa_ref_kind_name(soffa_ref_kind_t kind)
{
    switch (kind) {
    case SOFFA_REF_SIGNAL: return "signal";
    case SOFFA_REF_REFERRAL: return "referral";
    case SOFFA_REF_REPORT: return "report";
    case SOFFA_REF_CONSENT: return "consent";
    case SOFFA_REF_WITHDRAWAL: return "withdrawal";
    case SOFFA_REF_ACK: return "acknowledgement";
    case SOFFA_REF_STATUS: return "status";
    case SOFFA_REF_BY_CONSENT: return "referral of a consent";
    default: return "record";
    }
}

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
    for (size_t i = 0; i < S_N_RULES; i++)
        if (s_rules[i].type == type
            && (s_rules[i].answers || s_rules[i].introduces
                || (s_rules[i].checks & (S_CONSENT_TO_KAA | S_CONSENT_REFERRAL | S_CONSENT_EXISTS))))
            return true;
    return false;
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
    return soffa_legal_basis_name(b);
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
    soffa_err_t rc = find(ctx, SOFFA_REF_WITHDRAWAL, c->view.ref_id, &w);
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
    if (find(ctx, SOFFA_REF_CONSENT, referral->consent_id, &c) != SOFFA_OK)
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

/* ---- The decision: the row, then its named checks in order ---------------------------- */

/* What every check sees. */
typedef struct {
    const soffa_identity_t *sender;
    const soffa_msg_view_t *v;
    const s_rule_t *rule;
    soffa_date_t today;
    const soffa_policy_facts_t *facts;
    soffa_policy_find_fn find;
    void *ctx;
    soffa_policy_decision_t *out;
    const char *tname;
    char *why;
    size_t whylen;
} s_dc_t;

typedef soffa_err_t (*s_check_fn)(s_dc_t *d);

/* What the message says about its sender must be what the key's
 * configuration says: a claim the configuration cannot confirm is refused
 * as well. */
static soffa_err_t
s_check_claims(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    const soffa_identity_t *sender = d->sender;
    if (v->claimed_kind && v->claimed_kind != (int) s_party_of_role(sender->role))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.kind: the message claims another kind of sender than %s, a %s agent", sender->name,
                        soffa_role_name(sender->role));
    if (v->claimed_orgnr[0] && !sender->orgnr[0])
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.org_nr: the message claims organisation %s, but %s has no orgnr in the broker's "
                        "configuration to confirm it", v->claimed_orgnr, sender->name);
    if (v->claimed_orgnr[0] && strcmp(v->claimed_orgnr, sender->orgnr) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.org_nr: the message claims organisation %s; %s is %s", v->claimed_orgnr, sender->name,
                        sender->orgnr);
    if (v->claimed_kommun[0] && strcmp(v->claimed_kommun, sender->kommun) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.kommunkod: the message claims municipality %s; %s serves %s", v->claimed_kommun,
                        sender->name, sender->kommun[0] ? sender->kommun : "none");
    if (v->claimed_unit[0] && !soffa_policy_has_unit(sender, v->claimed_unit))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.unit_id: the message claims unit %s, which is not one of %s's configured units",
                        v->claimed_unit, sender->name);
    if (v->school_unit[0] && !soffa_policy_has_unit(sender, v->school_unit))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "%s.school_unit: %s is not one of %s's configured school units", d->tname, v->school_unit,
                        sender->name);
    return SOFFA_OK;
}

/* Protected identities: no contact details, whatever else holds; once any
 * message said so, soffa remembers it until the KAA of the home
 * municipality lifts it. */
static soffa_err_t
s_check_protected(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    bool remembered = d->facts && d->facts->subject_protected;
    if ((v->protected_identity || (remembered && !v->protection_lifted)) && v->has_contact)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_PROTECTED,
                        "the young person has a protected identity%s; remove the phone and e-mail",
                        v->protected_identity ? "" : " (an earlier message said so)");
    if (v->protection_lifted && (d->sender->role != SOFFA_ROLE_KAA || strcmp(d->sender->kommun, v->hemkommun) != 0))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "only the KAA of the home municipality (%s) may say that an identity is no longer protected",
                        v->hemkommun);
    return SOFFA_OK;
}

/* Age, from the birth date the identity carries (a reserve number's too).
 * A message whose age rule cannot be checked is refused. */
static soffa_err_t
s_check_age(s_dc_t *d)
{
    int age = s_age(d->v);
    if (age < 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "the age rule of %s cannot be checked: the event date lies before the birth date, "
                        "or one of them is not a real date", d->tname);
    if ((d->rule->checks & S_AGE_UNDER_20) && age >= 20)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "absence is reported only for pupils under 20; this pupil was %d when the absence began", age);
    if ((d->rule->checks & S_AGE_UNDER_18) && age >= 18)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "a report of concern is for a child under 18; this person was %d (use a referral with consent)",
                        age);
    return SOFFA_OK;
}

static soffa_err_t
s_check_in_scope(s_dc_t *d)
{
    if (strcmp(d->v->hemkommun, d->sender->kommun) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "%s serves municipality %s, but the young person's home municipality is %s", d->sender->name,
                        d->sender->kommun, d->v->hemkommun);
    return SOFFA_OK;
}

static soffa_err_t
s_check_own_consent(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    if (!v->consent_id || !v->ref_id || memcmp(v->consent_id, v->ref_id, 16) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD, "consent_id must be the id of the consent itself");
    return SOFFA_OK;
}

/* The id a record introduces (a referral's, a consent's, a report's) must be new. */
static soffa_err_t
s_check_new_id(s_dc_t *d)
{
    if (!d->rule->introduces || !d->v->ref_id)
        return SOFFA_OK;
    soffa_policy_ref_t old = {0};
    soffa_err_t rc = d->find(d->ctx, d->rule->introduces, d->v->ref_id, &old);
    soffa_policy_ref_fini(&old);
    if (rc == SOFFA_OK)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_EXISTS, "that %s id is already in use; make a new one",
                        soffa_ref_kind_name(d->rule->introduces));
    return rc == SOFFA_ERR_NOT_FOUND ? SOFFA_OK : rc;
}

/* The consent the message rests on: recorded by the sender's organisation,
 * for the same person, active today, and covering what the message does. */
static soffa_err_t
s_check_consent(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    soffa_policy_ref_t c = {0};
    soffa_err_t rc = v->consent_id ? d->find(d->ctx, SOFFA_REF_CONSENT, v->consent_id, &c) : SOFFA_ERR_NOT_FOUND;
    if (rc == SOFFA_ERR_NOT_FOUND)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                        "no consent is recorded under that consent id; record the young person's consent first");
    if (rc != SOFFA_OK)
        return rc;
    char journal[SOFFA_NAME_MAX];
    soffa_policy_journal(d->sender, journal);
    rc = strcmp(c.mailbox, journal) == 0
             ? s_consent_active(&c, v, d->today, d->find, d->ctx, d->why, d->whylen)
             : s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent was recorded by another organisation");
    if (rc == SOFFA_OK && (d->rule->checks & S_CONSENT_TO_KAA) && !(c.view.consent_recipients & (1u << SOFFA_PK_KAA)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent does not cover disclosure to the KAA");
    if (rc == SOFFA_OK && (d->rule->checks & S_CONSENT_REFERRAL)) {
        soffa_party_kind_t pk = v->target_kind == SOFFA_TK_SOCIAL_SERVICES      ? SOFFA_PK_SOCIAL_SERVICES
                              : v->target_kind == SOFFA_TK_ARBETSFORMEDLINGEN ? SOFFA_PK_ARBETSFORMEDLINGEN
                                                                                : SOFFA_PK_NONE;
        if (pk == SOFFA_PK_NONE)
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_POLICY,
                          "soffa routes referrals to social services and Arbetsförmedlingen only");
        else if (!(c.view.consent_recipients & (1u << pk)))
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent does not cover %s",
                          pk == SOFFA_PK_SOCIAL_SERVICES ? "social services" : "Arbetsförmedlingen");
        else if (!(c.view.consent_purposes & (1u << SOFFA_CP_REFERRAL)))
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent does not cover referrals");
        else if (v->has_contact && !(c.view.consent_categories & (1u << SOFFA_DC_CONTACT)))
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                          "the consent does not cover contact details; remove them or record a wider consent");
    }
    soffa_policy_ref_fini(&c);
    return rc;
}

/* A withdrawal names a consent the sender's organisation recorded, for the
 * same person. */
static soffa_err_t
s_check_consent_exists(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    soffa_policy_ref_t c = {0};
    soffa_err_t rc = d->find(d->ctx, SOFFA_REF_CONSENT, v->ref_id, &c);
    if (rc == SOFFA_ERR_NOT_FOUND)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_FOUND, "no consent is recorded under that id");
    if (rc != SOFFA_OK)
        return rc;
    char journal[SOFFA_NAME_MAX];
    soffa_policy_journal(d->sender, journal);
    bool ours = strcmp(c.mailbox, journal) == 0;
    bool same = c.view.type == SOFFA_MT_CONSENT_RECORDED && c.view.id_type == v->id_type
             && strcmp(c.view.subject_id, v->subject_id) == 0;
    soffa_policy_ref_fini(&c);
    if (!ours)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED, "the consent was recorded by another organisation");
    if (!same)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                        "the consent was given by another person: a withdrawal names the consent's own subject");
    return SOFFA_OK;
}

/* Status feedback beyond RECEIVED needs the referral's consent to cover it. */
static soffa_err_t
s_check_feedback(s_dc_t *d, const soffa_policy_ref_t *referral)
{
    const soffa_msg_view_t *v = d->v;
    if (!v->consent_id || !referral->view.consent_id || memcmp(v->consent_id, referral->view.consent_id, 16) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "consent_id must be the referral's consent id");
    if (v->referral_status == SOFFA_RS_RECEIVED)
        return SOFFA_OK;
    soffa_policy_ref_t c = {0};
    soffa_err_t rc = d->find(d->ctx, SOFFA_REF_CONSENT, referral->view.consent_id, &c);
    if (rc == SOFFA_OK)
        rc = s_consent_active(&c, v, d->today, d->find, d->ctx, d->why, d->whylen);
    else if (rc == SOFFA_ERR_NOT_FOUND)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the referral's consent is not recorded");
    if (rc == SOFFA_OK && !(c.view.consent_purposes & (1u << SOFFA_CP_STATUS_FEEDBACK)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "the consent does not cover status feedback; only RECEIVED may be sent");
    soffa_policy_ref_fini(&c);
    return rc;
}

/* An answer: the record answered must exist, be the sender's to answer (it
 * received it) or to withdraw (it sent it), and be about the same person.
 * It decides where the answer goes. */
static soffa_err_t
s_check_answered(s_dc_t *d)
{
    if (!d->rule->answers)
        return SOFFA_OK;
    const soffa_msg_view_t *v = d->v;
    soffa_policy_ref_t a = {0};
    soffa_err_t rc = v->ref_id ? d->find(d->ctx, d->rule->answers, v->ref_id, &a) : SOFFA_ERR_NOT_FOUND;
    if (rc == SOFFA_ERR_NOT_FOUND)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_FOUND, "the %s being answered is not known to soffa",
                        soffa_ref_kind_name(d->rule->answers));
    if (rc != SOFFA_OK)
        return rc;
    char inbox[SOFFA_NAME_MAX], answered_sender_inbox[SOFFA_NAME_MAX];
    soffa_policy_inbox(d->sender, inbox);
    s_inbox_of(a.sender_role, a.sender, a.sender_kommun, answered_sender_inbox);
    if ((d->rule->checks & S_ANSWERER_RECEIVED) && strcmp(a.mailbox, inbox) != 0)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED, "only its recipient (%s) may answer it", a.mailbox);
    else if ((d->rule->checks & S_ANSWERER_SENT) && strcmp(answered_sender_inbox, inbox) != 0)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED, "only its sender may withdraw it");
    else if (strcmp(a.view.subject_id, v->subject_id) != 0)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                      "the answer is about another person than the message it answers");
    if (rc == SOFFA_OK && (d->rule->checks & S_CONSENT_FEEDBACK))
        rc = s_check_feedback(d, &a);
    if (rc == SOFFA_OK)
        snprintf(d->out->mailbox, sizeof d->out->mailbox, "%s",
                 d->rule->dest == S_TO_ANSWERED_SENDER ? answered_sender_inbox : a.mailbox);
    soffa_policy_ref_fini(&a);
    return rc;
}

/* The checks in the order they run; a row runs those its flags ask for
 * (flags 0: every row; the check looks at the row's columns itself). */
static const struct {
    const char *name;
    unsigned flags;        /* 0: every row */
    s_check_fn fn;
} s_checks[] = {
    {"claims about the sender", 0, s_check_claims},
    {"protected identity", 0, s_check_protected},
    {"age", S_AGE_UNDER_20 | S_AGE_UNDER_18, s_check_age},
    {"the sender's municipality", S_SUBJECT_IN_SCOPE, s_check_in_scope},
    {"a consent's own id", S_OWN_CONSENT, s_check_own_consent},
    {"a new id is new", 0, s_check_new_id},
    {"consent", S_CONSENT_TO_KAA | S_CONSENT_REFERRAL, s_check_consent},
    {"the consent withdrawn", S_CONSENT_EXISTS, s_check_consent_exists},
    {"the record answered", 0, s_check_answered},
};

/* Where the message goes (an answer's destination was set by its check). */
static soffa_err_t
s_destination(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    switch (d->rule->dest) {
    case S_TO_KAA_OF_SUBJECT: snprintf(d->out->mailbox, sizeof d->out->mailbox, "kaa/%.4s", v->hemkommun); break;
    case S_TO_SOCIAL_OF_SUBJECT: snprintf(d->out->mailbox, sizeof d->out->mailbox, "social/%.4s", v->hemkommun); break;
    case S_TO_AGENCY_OF_SUBJECT:
        snprintf(d->out->mailbox, sizeof d->out->mailbox, "%s/%.4s",
                 v->target_kind == SOFFA_TK_SOCIAL_SERVICES ? "social" : "af", v->hemkommun);
        break;
    case S_TO_OWN_JOURNAL: soffa_policy_journal(d->sender, d->out->mailbox); break;
    case S_TO_ANSWERED_SENDER:
    case S_TO_ANSWERED_RECIPIENT: break;
    }
    if (!d->out->mailbox[0])
        return s_refuse(d->why, d->whylen, SOFFA_ERR_POLICY, "no mailbox for this message");
    return SOFFA_OK;
}

static const uint8_t *
s_id_of(const soffa_msg_view_t *v, s_id_t id)
{
    switch (id) {
    case S_ID_MESSAGE: return v->message_id;
    case S_ID_REF: return v->ref_id;
    case S_ID_CONSENT: return v->consent_id;
    default: return NULL;
    }
}

/* The keys the record is found by, and the receipts it waits for or gives. */
static void
s_outcome(s_dc_t *d)
{
    const s_rule_t *r = d->rule;
    for (size_t i = 0; i < 2; i++) {
        const uint8_t *id = s_id_of(d->v, r->index[i].id);
        if (!r->index[i].kind || !id)
            continue;
        soffa_store_ref_t *ref = &d->out->refs[d->out->n_refs++];
        ref->key[0] = (uint8_t) r->index[i].kind;
        memcpy(ref->key + 1, id, 16);
        ref->len = 17;
        ref->shared = r->index[i].kind == SOFFA_REF_BY_CONSENT;   /* many referrals per consent */
    }
    const uint8_t *awaited = s_id_of(d->v, r->awaits_id);
    if (r->awaits && awaited) {
        d->out->awaits = (char) r->awaits;
        memcpy(d->out->awaits_id, awaited, 16);
    }
    if (r->gives && d->v->ref_id) {
        d->out->answers = (char) r->gives;
        memcpy(d->out->answers_id, d->v->ref_id, 16);
    }
}

soffa_err_t
soffa_policy_decide(const soffa_identity_t *sender, const soffa_msg_t *msg, soffa_date_t today,
                    const soffa_policy_facts_t *facts, soffa_policy_find_fn find, void *ctx,
                    soffa_policy_decision_t *out, char *why, size_t whylen)
{
    soffa_msg_view_t v;
    soffa_msg_view(msg, &v);
    memset(out, 0, sizeof *out);
    s_dc_t d = {sender, &v, s_rule(v.type, sender->role), today, facts, find, ctx, out,
                soffa_msg_type_name(v.type), why, whylen};
    if (!d.rule)
        return s_refuse(why, whylen, SOFFA_ERR_POLICY, "a %s agent may not send %s%s", soffa_role_name(sender->role),
                        d.tname, s_rule_of_type(v.type) ? "" : " (no route exists for it)");
    if (v.legal_basis != d.rule->basis)
        return s_refuse(why, whylen, SOFFA_ERR_LEGAL_BASIS, "%s must rest on %s, not %s", d.tname,
                        s_basis_name(d.rule->basis), s_basis_name(v.legal_basis));
    soffa_err_t rc = SOFFA_OK;
    for (size_t i = 0; rc == SOFFA_OK && i < sizeof s_checks / sizeof *s_checks; i++)
        if (!s_checks[i].flags || (d.rule->checks & s_checks[i].flags))
            rc = s_checks[i].fn(&d);
    if (rc == SOFFA_OK)
        rc = s_destination(&d);
    if (rc == SOFFA_OK)
        s_outcome(&d);
    return rc;
}
