/*  soffa_policy: the routing and policy table and its checks. */
#include "soffa_policy.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "soffa_id.h"
#include "soffa_teams.h"
#include "soffa_terms.h"
#include "soffa_uuid.h"

/* Where a message goes. */
typedef enum {
    S_TO_KAA_OF_SUBJECT,       /* kaa/<subject's hemkommun> */
    S_TO_SOCIAL_OF_SUBJECT,    /* social/<subject's hemkommun> */
    S_TO_AGENCY_OF_SUBJECT,    /* social/ or af/ by the referral's target kind */
    S_TO_OWN_JOURNAL,          /* the sender's journal */
    S_TO_ANSWERED_SENDER,      /* the inbox of whoever sent the answered record */
    S_TO_ANSWERED_RECIPIENT,   /* the mailbox the answered record went to */
    S_TO_PROVIDER,             /* provider/<sender's municipality>/<agent>: the provider chosen (s_check_provider) */
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
    /* The law at the broker (issue 13, rules 1, 2 and 5). */
    S_TARGET_GROUP = 1 << 10,        /* the KAA's target group: left compulsory school, under 20 (SL 29:9) */
    S_CONSENT_GIVER = 1 << 11,       /* a consent is given by whom the young person's age allows (OSL 12:2) */
    S_SCREEN_TEXT = 1 << 12,         /* free text bound for a KAA, Arbetsförmedlingen or a school is screened */
    /* Early warning (issue 19). */
    S_EARLY_WARNING = 1 << 13,       /* the record answered is an early warning (at-risk notice, year-9 handover) */
    /* Local actors (issue 19, item 3). */
    S_PROVIDER = 1 << 14,            /* a provider of the referral's kind is configured in the municipality */
    S_MEASURE_REFERRAL = 1 << 15,    /* a measure's referral_id: this KAA's referral, same person, same provider kind */
    /* Issue 13, rules 7-10 (bits from 20 up). */
    S_CASE_NEW = 1 << 20,            /* the case id is new, the young person has no open case here */
    S_CASE_OPEN = 1 << 21,           /* the case is the sender's, the young person's, and open */
    S_CASE_REOPEN = 1 << 22,         /* the case is closed, and a new signal about the young person came */
    S_HANDOVER = 1 << 23,            /* a close naming a consent: it covers handing the case to the new KAA */
    S_REROUTE = 1 << 24,             /* an acknowledgement that sends the signal on names another municipality */
    S_REFERRAL_LIVE = 1 << 25,       /* the referral answered has not expired */
    S_IDENTITY = 1 << 26,            /* an identity change: the numbers, and what the alias map says */
    /* Case owner and teams (issue 19, item 4). */
    S_OWNER = 1 << 27,               /* a contact person's change names the one the case has */
    S_TRANSFER = 1 << 28,            /* a transfer names another team of the sender's municipality */
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
#define S_CASE_INDEX {{SOFFA_REF_CASE, S_ID_REF}, {0, 0}}
#define S_IN_CASE (S_SUBJECT_IN_SCOPE | S_CASE_OPEN)

/* DOMAIN.md §5.5. One row per allowed (type, sender role). */
static const s_rule_t s_rules[] = {
    /* School signals: SL 15:15, and at-risk notices with consent. They wait for the KAA's acknowledgement. */
    {SOFFA_MT_ENROLMENT_CHANGED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SL_15_15_ENROLMENT, S_TO_KAA_OF_SUBJECT, 0, 0, 0,
     S_SIGNAL_INDEX, SOFFA_RECEIPT_ACK, S_ID_MESSAGE, 0},
    {SOFFA_MT_ABSENCE_REPORTED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SL_15_15_ABSENCE, S_TO_KAA_OF_SUBJECT, 0, S_AGE_UNDER_20, 0,
     S_SIGNAL_INDEX, SOFFA_RECEIPT_ACK, S_ID_MESSAGE, 0},
    {SOFFA_MT_AT_RISK_NOTICE, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_KAA_OF_SUBJECT, 0,
     S_CONSENT_TO_KAA | S_SCREEN_TEXT, 0,
     S_SIGNAL_INDEX, SOFFA_RECEIPT_ACK, S_ID_MESSAGE, 0},
    /* Early warning (issue 19). A compulsory school hands a year-9 pupil at
     * risk to the KAA of the home municipality before the summer: no
     * statutory basis, so a consent (a guardian's under 16). Upper-secondary
     * admissions tell that an admitted pupil never started, as a start or a
     * leaving is told under SL 15:15. Both wait for the KAA's answer. */
    {SOFFA_MT_YEAR9_HANDOVER, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_KAA_OF_SUBJECT, 0,
     S_AGE_UNDER_20 | S_CONSENT_TO_KAA, 0,
     S_SIGNAL_INDEX, SOFFA_RECEIPT_ACK, S_ID_MESSAGE, 0},
    {SOFFA_MT_ADMISSION_NOT_STARTED, SOFFA_ROLE_SCHOOL, SOFFA_LB_SL_15_15_ENROLMENT, S_TO_KAA_OF_SUBJECT, 0,
     S_AGE_UNDER_20, 0,
     S_SIGNAL_INDEX, SOFFA_RECEIPT_ACK, S_ID_MESSAGE, 0},
    /* The KAA's acknowledgement goes back to the school that signalled. */
    {SOFFA_MT_SIGNAL_ACKNOWLEDGED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_ANSWERED_SENDER, SOFFA_REF_SIGNAL,
     S_ANSWERER_RECEIVED | S_REROUTE, 0, {{SOFFA_REF_ACK, S_ID_REF}, {0, 0}}, 0, 0, SOFFA_RECEIPT_ACK},
    /* The KAA's coded answer to an early warning, back to the school that sent
     * it, under the warning's consent: ACCEPTED and NOT_IN_TARGET_GROUP say no
     * more than an acknowledgement; the others need the consent to cover
     * STATUS_FEEDBACK. It gives the acknowledgement the warning waits for. */
    {SOFFA_MT_EARLY_WARNING_ANSWERED, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER,
     SOFFA_REF_SIGNAL, S_ANSWERER_RECEIVED | S_EARLY_WARNING | S_CONSENT_FEEDBACK, 0, S_NO_INDEX, 0, 0,
     SOFFA_RECEIPT_ACK},
    /* The KAA's own case events: its journal only, each found by its case.
     * A case opens, takes events while open, closes, and reopens on a new
     * signal (DOMAIN.md §5.4). */
    {SOFFA_MT_KAA_CASE_OPENED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0,
     S_SUBJECT_IN_SCOPE | S_CASE_NEW | S_TARGET_GROUP, 0, S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_CONTACT_ATTEMPTED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_IN_CASE | S_TARGET_GROUP, 0,
     S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_OCCUPATION_RECORDED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_IN_CASE | S_TARGET_GROUP, 0,
     S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_CASE_MAPPED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_IN_CASE | S_TARGET_GROUP, 0,
     S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_PLAN_AGREED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_IN_CASE | S_TARGET_GROUP, 0,
     S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_MEASURE_STARTED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0,
     S_IN_CASE | S_TARGET_GROUP | S_MEASURE_REFERRAL, 0, S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_MEASURE_ENDED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_IN_CASE | S_TARGET_GROUP, 0,
     S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_KAA_CASE_CLOSED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0, S_IN_CASE | S_HANDOVER | S_TARGET_GROUP,
     0, S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_KAA_CASE_REOPENED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0,
     S_SUBJECT_IN_SCOPE | S_CASE_REOPEN | S_TARGET_GROUP, 0, S_CASE_INDEX, 0, 0, 0},
    /* The case's contact person (a staff reference, never a name) and its
     * handover when staff change; a case passed to another team of the
     * same municipality (issue 19, item 4). Case events like the others:
     * the journal only, by the team that holds the case. */
    {SOFFA_MT_CASE_OWNER_CHANGED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0,
     S_IN_CASE | S_TARGET_GROUP | S_OWNER, 0, S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_CASE_TRANSFERRED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0,
     S_IN_CASE | S_TARGET_GROUP | S_TRANSFER, 0, S_CASE_INDEX, 0, 0, 0},
    {SOFFA_MT_SUBJECT_IDENTITY_CHANGED, SOFFA_ROLE_KAA, SOFFA_LB_SL_29_9_INTERNAL, S_TO_OWN_JOURNAL, 0,
     S_SUBJECT_IN_SCOPE | S_IDENTITY, 0, S_NO_INDEX, 0, 0, 0},
    /* Consents, recorded and withdrawn in the recorder's journal. */
    {SOFFA_MT_CONSENT_RECORDED, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_SUBJECT_IN_SCOPE | S_OWN_CONSENT | S_TARGET_GROUP | S_CONSENT_GIVER, SOFFA_REF_CONSENT,
     {{SOFFA_REF_CONSENT, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_CONSENT_RECORDED, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_OWN_CONSENT | S_CONSENT_GIVER, SOFFA_REF_CONSENT, {{SOFFA_REF_CONSENT, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_CONSENT_WITHDRAWN, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_OWN_CONSENT | S_CONSENT_EXISTS, 0, {{SOFFA_REF_WITHDRAWAL, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_CONSENT_WITHDRAWN, SOFFA_ROLE_SCHOOL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_OWN_CONSENT | S_CONSENT_EXISTS, 0, {{SOFFA_REF_WITHDRAWAL, S_ID_REF}, {0, 0}}, 0, 0, 0},
    /* Referrals with consent, and their answers. A referral waits for a status. */
    {SOFFA_MT_REFERRAL_SENT, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_AGENCY_OF_SUBJECT, 0,
     S_SUBJECT_IN_SCOPE | S_CONSENT_REFERRAL | S_TARGET_GROUP | S_SCREEN_TEXT, SOFFA_REF_REFERRAL,
     {{SOFFA_REF_REFERRAL, S_ID_REF}, {SOFFA_REF_BY_CONSENT, S_ID_CONSENT}}, SOFFA_RECEIPT_STATUS, S_ID_REF, 0},
    {SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_SOCIAL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER,
     SOFFA_REF_REFERRAL, S_ANSWERER_RECEIVED | S_CONSENT_FEEDBACK | S_REFERRAL_LIVE, 0,
     {{SOFFA_REF_STATUS, S_ID_REF}, {0, 0}}, 0, 0, SOFFA_RECEIPT_STATUS},
    {SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_AF, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER,
     SOFFA_REF_REFERRAL, S_ANSWERER_RECEIVED | S_CONSENT_FEEDBACK | S_REFERRAL_LIVE, 0,
     {{SOFFA_REF_STATUS, S_ID_REF}, {0, 0}}, 0, 0, SOFFA_RECEIPT_STATUS},
    {SOFFA_MT_REFERRAL_WITHDRAWN, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_RECIPIENT,
     SOFFA_REF_REFERRAL, S_ANSWERER_SENT, 0, S_NO_INDEX, 0, 0, 0},
    /* The local actors (issue 19, item 3). A KAA refers a young person to a
     * provider of its own municipality (Komvux, the labour-market unit, a
     * guidance centre, a folkhögskola, a Navigator centre, a samordnings-
     * förbund activity, another school's programme: targets PROVIDER, OTHER
     * and SCHOOL) under a consent covering that kind of provider; the
     * provider answers as Arbetsförmedlingen does. Social services refer a
     * young person to the KAA of the home municipality under a consent they
     * recorded themselves; the KAA answers. (A referral's row is chosen by
     * its target: s_rule_for.) */
    {SOFFA_MT_REFERRAL_SENT, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_PROVIDER, 0,
     S_SUBJECT_IN_SCOPE | S_PROVIDER | S_CONSENT_REFERRAL | S_TARGET_GROUP | S_SCREEN_TEXT, SOFFA_REF_REFERRAL,
     {{SOFFA_REF_REFERRAL, S_ID_REF}, {SOFFA_REF_BY_CONSENT, S_ID_CONSENT}}, SOFFA_RECEIPT_STATUS, S_ID_REF, 0},
    {SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_PROVIDER, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER,
     SOFFA_REF_REFERRAL, S_ANSWERER_RECEIVED | S_CONSENT_FEEDBACK | S_REFERRAL_LIVE, 0,
     {{SOFFA_REF_STATUS, S_ID_REF}, {0, 0}}, 0, 0, SOFFA_RECEIPT_STATUS},
    {SOFFA_MT_CONSENT_RECORDED, SOFFA_ROLE_SOCIAL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_SUBJECT_IN_SCOPE | S_OWN_CONSENT | S_CONSENT_GIVER, SOFFA_REF_CONSENT, {{SOFFA_REF_CONSENT, S_ID_REF}, {0, 0}},
     0, 0, 0},
    {SOFFA_MT_CONSENT_WITHDRAWN, SOFFA_ROLE_SOCIAL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_OWN_JOURNAL, 0,
     S_OWN_CONSENT | S_CONSENT_EXISTS, 0, {{SOFFA_REF_WITHDRAWAL, S_ID_REF}, {0, 0}}, 0, 0, 0},
    {SOFFA_MT_REFERRAL_SENT, SOFFA_ROLE_SOCIAL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_KAA_OF_SUBJECT, 0,
     S_SUBJECT_IN_SCOPE | S_CONSENT_REFERRAL | S_TARGET_GROUP | S_SCREEN_TEXT, SOFFA_REF_REFERRAL,
     {{SOFFA_REF_REFERRAL, S_ID_REF}, {SOFFA_REF_BY_CONSENT, S_ID_CONSENT}}, SOFFA_RECEIPT_STATUS, S_ID_REF, 0},
    {SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_KAA, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_SENDER,
     SOFFA_REF_REFERRAL, S_ANSWERER_RECEIVED | S_CONSENT_FEEDBACK | S_REFERRAL_LIVE, 0,
     {{SOFFA_REF_STATUS, S_ID_REF}, {0, 0}}, 0, 0, SOFFA_RECEIPT_STATUS},
    {SOFFA_MT_REFERRAL_WITHDRAWN, SOFFA_ROLE_SOCIAL, SOFFA_LB_CONSENT_OSL_12_2, S_TO_ANSWERED_RECIPIENT,
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

/* The destination a referral's target kind asks for. */
static s_dest_t
s_target_dest(soffa_target_kind_t t)
{
    switch (t) {
    case SOFFA_TK_SOCIAL_SERVICES:
    case SOFFA_TK_ARBETSFORMEDLINGEN: return S_TO_AGENCY_OF_SUBJECT;
    case SOFFA_TK_KAA: return S_TO_KAA_OF_SUBJECT;
    default: return S_TO_PROVIDER;   /* PROVIDER, SCHOOL, OTHER */
    }
}

/* The row for the message from role: for a referral, the row of (type,
 * role) whose destination its target kind asks for; NULL when none. */
static const s_rule_t *
s_rule_for(const soffa_msg_view_t *v, soffa_role_t role)
{
    for (size_t i = 0; i < S_N_RULES; i++)
        if (s_rules[i].type == v->type && s_rules[i].role == role
            && (v->type != SOFFA_MT_REFERRAL_SENT || s_rules[i].dest == s_target_dest(v->target_kind)))
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
    case SOFFA_REF_SOCIAL: return "message of social services";
    case SOFFA_REF_CASE: return "case";
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
s_inbox_of(soffa_role_t role, const char *agent, const char *kommun, const char *team, char out[SOFFA_NAME_MAX])
{
    switch (role) {
    case SOFFA_ROLE_SCHOOL: snprintf(out, SOFFA_NAME_MAX, "school/%.50s", agent); break;
    case SOFFA_ROLE_KAA:
        if (team && team[0])
            snprintf(out, SOFFA_NAME_MAX, "kaa/%.4s/%.16s", kommun, team);
        else
            snprintf(out, SOFFA_NAME_MAX, "kaa/%.4s", kommun);
        break;
    case SOFFA_ROLE_SOCIAL: snprintf(out, SOFFA_NAME_MAX, "social/%.4s", kommun); break;
    case SOFFA_ROLE_AF: snprintf(out, SOFFA_NAME_MAX, "af/%.4s", kommun); break;
    case SOFFA_ROLE_PROVIDER:
        snprintf(out, SOFFA_NAME_MAX, "provider/%.4s/%.*s", kommun, SOFFA_PROVIDER_NAME_MAX, agent);
        break;
    /* An auditor's agent keeps every signed checkpoint it is given: its own
     * copy of the chain heads, for soffa verify --against. */
    case SOFFA_ROLE_AUDIT: snprintf(out, SOFFA_NAME_MAX, "audit/checkpoint"); break;
    default: out[0] = '\0'; break;
    }
}

void
soffa_policy_inbox(const soffa_identity_t *id, char out[SOFFA_NAME_MAX])
{
    s_inbox_of(id->role, id->name, id->kommun, id->team, out);
}

void
soffa_policy_kaa_inbox(const soffa_policy_facts_t *facts, const char *kommun, const soffa_msg_view_t *v,
                       const char *team, char out[SOFFA_NAME_MAX])
{
    const struct soffa_teams *teams = facts ? facts->teams : NULL;
    if (!soffa_teams_split(teams, kommun)) {
        snprintf(out, SOFFA_NAME_MAX, "kaa/%.4s", kommun);
        return;
    }
    /* The young person keeps the team that holds their case; else the
     * team named (the one that sent what is answered), else the rule. */
    char held[17] = "";
    if (facts->case_team && v && v->subject_id[0])
        facts->case_team(facts->ctx, v->subject_id, kommun, held);
    const char *t = soffa_teams_has(teams, kommun, held) ? held
                  : soffa_teams_has(teams, kommun, team) ? team
                  : soffa_teams_route(teams, kommun, v ? v->school_unit : "", v ? v->district : "");
    s_inbox_of(SOFFA_ROLE_KAA, "", kommun, t, out);
}

void
soffa_policy_journal(const soffa_identity_t *id, char out[SOFFA_NAME_MAX])
{
    if (id->role == SOFFA_ROLE_KAA)
        snprintf(out, SOFFA_NAME_MAX, "kaa-journal/%.4s", id->kommun);
    else if (id->role == SOFFA_ROLE_SCHOOL)
        snprintf(out, SOFFA_NAME_MAX, "school-journal/%.44s", id->name);
    else if (id->role == SOFFA_ROLE_SOCIAL)
        snprintf(out, SOFFA_NAME_MAX, "social-journal/%.4s", id->kommun);
    else
        out[0] = '\0';
}

/* ---- Data controllers (issue 13, rule 11) ------------------------------------------ */

/* Each data controller keeps its own access log (DOMAIN.md §2.5: every
 * principal, municipal board and Arbetsförmedlingen is controller of its own
 * data). A municipality's KAA and social services count as one controller,
 * the municipality, as the issue groups them; Arbetsförmedlingen is one
 * national controller; each school agent is its principal. */
void
soffa_policy_controller(const char *mailbox, char out[SOFFA_NAME_MAX])
{
    static const char *const municipal[] = {"kaa/", "kaa-journal/", "social/", "social-journal/", "audit/access/"};
    out[0] = '\0';
    if (!mailbox)
        return;
    if (!strncmp(mailbox, "audit/access/", 13)) {
        snprintf(out, SOFFA_NAME_MAX, "%s", mailbox + 13);
        return;
    }
    for (size_t i = 0; i < sizeof municipal / sizeof *municipal; i++) {
        size_t n = strlen(municipal[i]);
        if (!strncmp(mailbox, municipal[i], n)) {
            snprintf(out, SOFFA_NAME_MAX, "%.4s", mailbox + n);
            return;
        }
    }
    if (!strncmp(mailbox, "af/", 3))
        snprintf(out, SOFFA_NAME_MAX, "af");
    else if (!strncmp(mailbox, "school/", 7))
        snprintf(out, SOFFA_NAME_MAX, "school/%.50s", mailbox + 7);
    else if (!strncmp(mailbox, "school-journal/", 15))
        snprintf(out, SOFFA_NAME_MAX, "school/%.50s", mailbox + 15);
    else if (!strncmp(mailbox, "provider/", 9) && strlen(mailbox) > 14 && mailbox[13] == '/')
        /* A provider is a data controller of its own (a folkhögskola or a
         * samordningsförbund is no part of the municipality). */
        snprintf(out, SOFFA_NAME_MAX, "provider/%.*s", SOFFA_PROVIDER_NAME_MAX, mailbox + 14);
    else if (!strcmp(mailbox, "audit/access"))
        snprintf(out, SOFFA_NAME_MAX, "soffa");   /* the shared access log of earlier versions */
}

void
soffa_policy_access_mailbox(const char *controller, char out[SOFFA_NAME_MAX])
{
    snprintf(out, SOFFA_NAME_MAX, "audit/access/%.50s", controller);
}

/* Whether any pattern of the scope matches mailbox. */
static bool
s_scope_matches(const char *scope_list, const char *mailbox)
{
    char scope[SOFFA_SCOPE_MAX];
    snprintf(scope, sizeof scope, "%s", scope_list);
    char *save = NULL;
    for (char *pat = strtok_r(scope, ", ", &save); pat; pat = strtok_r(NULL, ", ", &save))
        if (fnmatch(pat, mailbox, 0) == 0)
            return true;
    return false;
}

/* Notes the controller of mailbox when the scope covers it: the first in
 * first[], a different one in second[]. */
static void
s_probe(const soffa_identity_t *audit, const char *mailbox, char first[SOFFA_NAME_MAX], char second[SOFFA_NAME_MAX])
{
    char c[SOFFA_NAME_MAX];
    soffa_policy_controller(mailbox, c);
    if (!c[0] || second[0] || !s_scope_matches(audit->scope, mailbox))
        return;
    if (!first[0])
        snprintf(first, SOFFA_NAME_MAX, "%s", c);
    else if (strcmp(first, c) != 0)
        snprintf(second, SOFFA_NAME_MAX, "%s", c);
}

soffa_err_t
soffa_policy_scope_check(soffa_identity_t *audit, const soffa_identity_t *all, size_t n, char *why, size_t whylen)
{
    char first[SOFFA_NAME_MAX] = "", second[SOFFA_NAME_MAX] = "", m[SOFFA_NAME_MAX];
    static const char *const kinds[] = {"kaa/%s", "kaa-journal/%s", "social/%s", "social-journal/%s", "af/%s",
                                        "audit/access/%s"};
    for (size_t i = 0; i < soffa_kommun_count(); i++)
        for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
            snprintf(m, sizeof m, kinds[k], soffa_kommun_at(i));
            s_probe(audit, m, first, second);
        }
    s_probe(audit, "audit/access/af", first, second);
    s_probe(audit, "audit/access/soffa", first, second);
    s_probe(audit, "audit/access", first, second);
    for (size_t i = 0; i < n; i++) {
        soffa_policy_inbox(&all[i], m);
        s_probe(audit, m, first, second);
        soffa_policy_journal(&all[i], m);
        if (m[0])
            s_probe(audit, m, first, second);
        if (all[i].role == SOFFA_ROLE_SCHOOL) {
            snprintf(m, sizeof m, "audit/access/school/%.40s", all[i].name);
            s_probe(audit, m, first, second);
        }
        if (all[i].role == SOFFA_ROLE_PROVIDER) {
            snprintf(m, sizeof m, "audit/access/provider/%.*s", SOFFA_PROVIDER_NAME_MAX, all[i].name);
            s_probe(audit, m, first, second);
        }
    }
    audit->controller[0] = '\0';
    if (!first[0])
        return s_refuse(why, whylen, SOFFA_ERR_CONFIG, "its scope '%s' covers no mailbox of any data controller",
                        audit->scope);
    if (second[0] && !audit->span_controllers)
        return s_refuse(why, whylen, SOFFA_ERR_CONFIG,
                        "its scope '%s' covers the records of more than one data controller (%s and %s, at least); "
                        "an auditor reads one controller's records: list one controller's mailboxes (a "
                        "municipality: kaa/K, kaa-journal/K, social/K; Arbetsförmedlingen: af/*), or say "
                        "span_controllers = yes", audit->scope, first, second);
    if (!second[0])
        snprintf(audit->controller, sizeof audit->controller, "%s", first);
    return SOFFA_OK;
}

bool
soffa_policy_may_replay(const soffa_identity_t *id, const char *mailbox)
{
    if (id->role != SOFFA_ROLE_AUDIT || !mailbox)
        return false;
    /* An auditor of one controller reads that controller's access log. */
    if (id->controller[0] && !strncmp(mailbox, "audit/access/", 13) && !strcmp(mailbox + 13, id->controller))
        return true;
    return s_scope_matches(id->scope, mailbox);
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
                || (s_rules[i].checks & (S_CONSENT_TO_KAA | S_CONSENT_REFERRAL | S_CONSENT_EXISTS | S_CASE_NEW
                                         | S_CASE_OPEN | S_CASE_REOPEN | S_IDENTITY))))
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
    case SOFFA_ROLE_PROVIDER: return SOFFA_PK_PROVIDER;
    default: return SOFFA_PK_NONE;
    }
}

/* The kind of party a referral's target kind reaches. */
static soffa_party_kind_t
s_target_party(soffa_target_kind_t t)
{
    switch (t) {
    case SOFFA_TK_SOCIAL_SERVICES: return SOFFA_PK_SOCIAL_SERVICES;
    case SOFFA_TK_ARBETSFORMEDLINGEN: return SOFFA_PK_ARBETSFORMEDLINGEN;
    case SOFFA_TK_KAA: return SOFFA_PK_KAA;
    case SOFFA_TK_PROVIDER:
    case SOFFA_TK_SCHOOL:
    case SOFFA_TK_OTHER: return SOFFA_PK_PROVIDER;
    default: return SOFFA_PK_NONE;
    }
}

/* The birth date the identity carries (a reserve number's first eight
 * characters); false when it carries none. */
static bool
s_birth(const soffa_msg_view_t *v, soffa_date_t *birth)
{
    soffa_err_t rc = v->id_type == SOFFA_IDT_LOCAL_RESERVE ? soffa_reserve_birth_date(v->subject_id, birth)
                   : v->id_type == SOFFA_IDT_PNR || v->id_type == SOFFA_IDT_SAMNR
                       ? soffa_id_birth_date(v->subject_id, birth)
                       : SOFFA_ERR_ID_FORMAT;
    return rc == SOFFA_OK;
}

/* Whole years of age on day `on`; -1 when the identity carries no birth
 * date or `on` lies before the birth. */
static int
s_age_on(const soffa_msg_view_t *v, soffa_date_t on)
{
    soffa_date_t birth;
    if (!s_birth(v, &birth) || soffa_date_cmp(on, birth) < 0)
        return -1;
    return soffa_date_age(birth, on);
}

/* Whether identity numbers a and b name the same person: equal, or one
 * replaced the other (the broker's alias map, through facts). */
static bool
s_same_person(const soffa_policy_facts_t *facts, const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    return facts && facts->same_person && facts->same_person(facts->ctx, a, b);
}

/* Is the consent record `c` usable for this message today? Checks subject,
 * validity and withdrawal; the caller checks scope. */
static soffa_err_t
s_consent_active(const soffa_policy_ref_t *c, const soffa_msg_view_t *v, soffa_date_t today,
                 const soffa_policy_facts_t *facts, soffa_policy_find_fn find, void *ctx, char *why, size_t whylen)
{
    if (c->view.type != SOFFA_MT_CONSENT_RECORDED)
        return s_refuse(why, whylen, SOFFA_ERR_CONSENT, "the consent id does not name a recorded consent");
    if (!s_same_person(facts, c->view.subject_id, v->subject_id))
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

/* Whether the referral `referral_id` has expired: its latest status is the
 * broker's EXPIRED. Returns SOFFA_OK (*expired set) or a lookup error. */
static soffa_err_t
s_referral_expired(const uint8_t referral_id[16], soffa_policy_find_fn find, void *ctx, bool *expired)
{
    *expired = false;
    soffa_policy_ref_t st = {0};
    soffa_err_t rc = find(ctx, SOFFA_REF_STATUS, referral_id, &st);
    if (rc == SOFFA_OK)
        *expired = st.view.type == SOFFA_MT_REFERRAL_STATUS_CHANGED && st.view.referral_status == SOFFA_RS_EXPIRED;
    soffa_policy_ref_fini(&st);
    return rc == SOFFA_ERR_NOT_FOUND ? SOFFA_OK : rc;
}

/* ---- Delivery: consent again (issue 13, rule 7) ------------------------------------ */

/* Whether an answer tells more than that the message arrived, and so needs
 * its consent to cover status feedback: a referral's status beyond
 * RECEIVED; the KAA's answer to an early warning beyond ACCEPTED and
 * NOT_IN_TARGET_GROUP (issue 19). */
static bool
s_is_feedback(const soffa_msg_view_t *v)
{
    if (v->type == SOFFA_MT_EARLY_WARNING_ANSWERED)
        return v->warning_status != SOFFA_EWS_ACCEPTED && v->warning_status != SOFFA_EWS_NOT_IN_TARGET_GROUP;
    return v->referral_status != SOFFA_RS_RECEIVED;
}

bool
soffa_policy_delivery_checked(soffa_msg_type_t type)
{
    for (size_t i = 0; i < S_N_RULES; i++)
        if (s_rules[i].type == type
            && ((s_rules[i].checks & (S_CONSENT_TO_KAA | S_CONSENT_REFERRAL | S_CONSENT_FEEDBACK))
                || s_rules[i].dest == S_TO_OWN_JOURNAL))
            return true;
    return false;
}

bool
soffa_policy_deliverable(const soffa_msg_view_t *v, soffa_role_t sender_role, const char *mailbox,
                         soffa_date_t today, const soffa_policy_facts_t *facts, soffa_policy_find_fn find, void *ctx)
{
    const s_rule_t *r = s_rule_for(v, sender_role);
    if (!r)
        return true;   /* the broker's own notices (withdrawals, expiries) */
    bool consent = (r->checks & (S_CONSENT_TO_KAA | S_CONSENT_REFERRAL))
                || ((r->checks & S_CONSENT_FEEDBACK) && s_is_feedback(v))
                || (r->dest == S_TO_OWN_JOURNAL && v->consent_id && soffa_policy_is_inbox(mailbox));
    if (!consent)
        return true;
    if (!v->consent_id)
        return false;
    soffa_policy_ref_t c = {0};
    if (find(ctx, SOFFA_REF_CONSENT, v->consent_id, &c) != SOFFA_OK)
        return false;
    soffa_err_t rc = s_consent_active(&c, v, today, facts, find, ctx, NULL, 0);
    soffa_policy_ref_fini(&c);
    bool expired = false;
    if (rc == SOFFA_OK && v->type == SOFFA_MT_REFERRAL_SENT && v->ref_id)
        rc = s_referral_expired(v->ref_id, find, ctx, &expired);
    return rc == SOFFA_OK && !expired;
}

bool
soffa_policy_is_inbox(const char *mailbox)
{
    return mailbox
           && (!strncmp(mailbox, "kaa/", 4) || !strncmp(mailbox, "social/", 7) || !strncmp(mailbox, "af/", 3)
               || !strncmp(mailbox, "school/", 7) || !strncmp(mailbox, "provider/", 9));
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
    const soffa_msg_t *msg;
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
    if (v->claimed_provider_kind && v->claimed_provider_kind != (int) sender->provider_kind)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "sender.provider_kind: the message claims another kind of provider than %s is configured as",
                        sender->name);
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
    /* The district of the registered address is as secret as the address
     * (validation refuses it beside protected_identity; here when only an
     * earlier message said so). */
    if (remembered && !v->protection_lifted && v->district && v->district[0])
        return s_refuse(d->why, d->whylen, SOFFA_ERR_PROTECTED,
                        "subject.district: the young person has a protected identity (an earlier message said so): "
                        "the district of the address is secret; remove it");
    if (v->protection_lifted && (d->sender->role != SOFFA_ROLE_KAA || strcmp(d->sender->kommun, v->hemkommun) != 0))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "only the KAA of the home municipality (%s) may say that an identity is no longer protected",
                        v->hemkommun);
    return SOFFA_OK;
}

/* Age, judged on the day soffa receives the message (today, Stockholm),
 * from the birth date the identity carries (a reserve number's too); never
 * on a date the sender chose (issue 13, rule 3). A message whose age rule
 * cannot be checked is refused, and so is one whose event lies before the
 * birth. */
static soffa_err_t
s_check_age(s_dc_t *d)
{
    soffa_date_t on;
    int age = s_age_on(d->v, d->today);
    bool before_birth = soffa_date_from_int(d->v->event_date, &on) && s_age_on(d->v, on) < 0;
    if (age < 0 || before_birth)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "the age rule of %s cannot be checked: the event date lies before the birth date, "
                        "or one of them is not a real date", d->tname);
    if ((d->rule->checks & S_AGE_UNDER_20) && age >= 20)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "%s is sent only for pupils under 20; this pupil is %d (age on the day soffa "
                        "receives it)", d->v->type == SOFFA_MT_ABSENCE_REPORTED ? "absence" : d->tname, age);
    if ((d->rule->checks & S_AGE_UNDER_18) && age >= 18)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "a report of concern is for a child under 18; this person is %d (use a referral with consent)",
                        age);
    return SOFFA_OK;
}

/* ---- The law at the broker (issue 13) ------------------------------------------------ */

/* Rule 3, dates soffa can trust: the day a message says something happened
 * (occurred_at, and an enrolment's or absence's own date) may lie only so
 * far back: further back it is history, not a signal, and it would let the
 * sender pick the day soffa's rules are judged on. An absence cannot begin
 * after today. ([policy] event_max_days, concern_max_days.) */
#define S_YEAR9_AHEAD_DAYS 400

static soffa_err_t
s_check_dates(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    bool concern = v->type == SOFFA_MT_CONCERN_REPORT_FILED;
    uint32_t max = concern ? (d->facts && d->facts->concern_max_days ? d->facts->concern_max_days
                                                                      : SOFFA_POLICY_CONCERN_MAX_DAYS)
                           : (d->facts && d->facts->event_max_days ? d->facts->event_max_days
                                                                    : SOFFA_POLICY_EVENT_MAX_DAYS);
    int64_t today = soffa_date_to_days(d->today);
    char t[11], when[11];
    soffa_date_format(d->today, t);
    struct {
        const char *field;
        soffa_date_t date;
        bool set;
    } dates[2] = {{"occurred_at_us", soffa_date_local(v->occurred_at_us), v->occurred_at_us > 0},
                  {NULL, {0, 0, 0}, false}};
    if (v->type == SOFFA_MT_ENROLMENT_CHANGED || v->type == SOFFA_MT_ABSENCE_REPORTED
        || v->type == SOFFA_MT_ADMISSION_NOT_STARTED || v->type == SOFFA_MT_YEAR9_HANDOVER) {
        dates[1].field = v->type == SOFFA_MT_ENROLMENT_CHANGED     ? "enrolment_changed.effective_date"
                       : v->type == SOFFA_MT_ABSENCE_REPORTED      ? "absence_reported.period_from"
                       : v->type == SOFFA_MT_ADMISSION_NOT_STARTED ? "admission_not_started.term_start"
                                                                    : "year9_handover.leaves_on";
        dates[1].set = soffa_date_from_int(v->event_date, &dates[1].date);
    }
    for (size_t i = 0; i < 2; i++) {
        if (!dates[i].set)
            continue;
        int64_t back = today - soffa_date_to_days(dates[i].date);
        soffa_date_format(dates[i].date, when);
        if (back > (int64_t) max)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                            "%s: %s lies %lld days before today (%s); soffa takes %s dated at most %u days back "
                            "([policy] %s)%s", dates[i].field, when, (long long) back, t,
                            concern ? "a report of concern" : "messages", max,
                            concern ? "concern_max_days" : "event_max_days",
                            concern ? ": date it the day you file it" : "");
        if (back < 0 && v->type == SOFFA_MT_ABSENCE_REPORTED && i == 1)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                            "absence_reported.period_from: %s is after today (%s); report absence that has begun",
                            when, t);
        if (back < 0 && v->type == SOFFA_MT_ADMISSION_NOT_STARTED && i == 1)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                            "admission_not_started.term_start: %s is after today (%s); tell it once the term has "
                            "begun and the pupil has not come", when, t);
        /* A handover is sent during year 9: its last day lies within a school year ahead. */
        if (back < -S_YEAR9_AHEAD_DAYS && v->type == SOFFA_MT_YEAR9_HANDOVER && i == 1)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                            "year9_handover.leaves_on: %s lies more than %d days after today (%s); a handover is "
                            "sent during the pupil's year 9", when, S_YEAR9_AHEAD_DAYS, t);
    }
    return SOFFA_OK;
}

/* Rule 1, the KAA's target group (SL 29:9, DOMAIN.md §1.1): young people
 * who have left compulsory school and are under 20, judged today. soffa
 * knows no school records, so "left compulsory school" is judged from the
 * birth date: compulsory school ends with the spring term of the year a
 * young person turns 16 (year 9), and every school year ends by 30 June, so
 * from 1 July of that year the young person counts as having left.
 * Closing a case because the young person turned 20 is always allowed. */
static soffa_err_t
s_check_target_group(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    if (v->type == SOFFA_MT_KAA_CASE_CLOSED && v->close_reason == SOFFA_CR_TURNED_20)
        return SOFFA_OK;
    soffa_date_t birth;
    int age = s_age_on(v, d->today);
    if (age < 0 || !s_birth(v, &birth))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "the KAA's target group cannot be checked: the identity carries no birth date before today");
    const char *what = v->type == SOFFA_MT_REFERRAL_SENT && d->sender->role == SOFFA_ROLE_SOCIAL
                           ? "takes referrals for"
                     : v->type == SOFFA_MT_REFERRAL_SENT     ? "refers"
                     : v->type == SOFFA_MT_CONSENT_RECORDED ? "records consents for"
                                                              : "keeps cases for";
    if (age >= 20 && v->type == SOFFA_MT_KAA_CASE_REOPENED)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "the young person has turned 20: the KAA's duty has ended, and the case stays closed");
    if (age >= 20)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "the KAA %s young people under 20 only (SL 29:9); this young person is %d%s", what, age,
                        v->type == SOFFA_MT_KAA_CASE_OPENED || v->type == SOFFA_MT_CONSENT_RECORDED
                                || v->type == SOFFA_MT_REFERRAL_SENT
                            ? ""
                            : ": close the case as TURNED_20");
    soffa_date_t left = {birth.year + 16, 7, 1};
    if (soffa_date_cmp(d->today, left) < 0) {
        char l[11];
        soffa_date_format(left, l);
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "the KAA %s young people who have left compulsory school (SL 29:9); this young person is %d, "
                        "and soffa counts compulsory school as left from %s (1 July of the year they turn 16)",
                        what, age, l);
    }
    return SOFFA_OK;
}

/* Rule 2, who may consent (DOMAIN.md §2.3, OSL 12:2), judged on the
 * young person's age today; the age the consent states must be the one the
 * identity number gives on the day of the grant (occurred_at). From 18 only
 * the young person; at 16 and 17 the young person, with a documented
 * maturity assessment or together with a guardian; below 16 a guardian.
 * A god man (an unaccompanied minor's) stands in the guardian's place. */
static soffa_err_t
s_check_consent_giver(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    soffa_date_t granted = soffa_date_local(v->occurred_at_us);
    int at_grant = s_age_on(v, granted), age = s_age_on(v, d->today);
    char g[11];
    soffa_date_format(granted, g);
    if (at_grant < 0 || age < 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "the consent's age rule cannot be checked: the identity carries no birth date before %s", g);
    if ((int) v->consent_youth_age != at_grant)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "consent_recorded.youth_age_at_grant: the identity number says the young person was %d on %s, "
                        "the day of the grant (occurred_at), not %u", at_grant, g, v->consent_youth_age);
    bool youth = v->consent_grants & (1u << SOFFA_CGR_YOUTH);
    bool guardian = v->consent_grants & ((1u << SOFFA_CGR_GUARDIAN) | (1u << SOFFA_CGR_GOD_MAN));
    if (age >= 18 && (!youth || guardian))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                        "the young person is %d: from 18 only they can consent, and a guardian or god man no longer "
                        "does; record the young person's own consent alone", age);
    if (age >= 16 && age < 18 && !youth)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                        "the young person is %d: from 16 their own consent is needed (with a guardian's, or a "
                        "documented maturity assessment)", age);
    if (age >= 16 && age < 18 && !guardian && !v->consent_maturity)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                        "the young person is %d: record that the caseworker assessed their maturity "
                        "(maturity_assessed), or the guardian's consent as well", age);
    if (age < 16 && !guardian)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                        "the young person is %d: under 16 a guardian consents for them (or the god man of an "
                        "unaccompanied minor)", age);
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
             ? s_consent_active(&c, v, d->today, d->facts, d->find, d->ctx, d->why, d->whylen)
             : s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent was recorded by another organisation");
    if (rc == SOFFA_OK && (d->rule->checks & S_CONSENT_TO_KAA) && !(c.view.consent_recipients & (1u << SOFFA_PK_KAA)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent does not cover disclosure to the KAA");
    if (rc == SOFFA_OK && (d->rule->checks & S_CONSENT_REFERRAL)) {
        soffa_party_kind_t pk = s_target_party(v->target_kind);
        if (pk == SOFFA_PK_NONE)
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_POLICY, "soffa has no route for that target kind");
        else if (!(c.view.consent_recipients & (1u << pk)))
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent does not cover %s",
                          pk == SOFFA_PK_SOCIAL_SERVICES ? "social services"
                          : pk == SOFFA_PK_KAA           ? "the KAA"
                          : pk == SOFFA_PK_PROVIDER      ? "local providers (recipient PROVIDER)"
                                                         : "Arbetsförmedlingen");
        else if (pk == SOFFA_PK_PROVIDER && (v->provider_kind <= 0 || v->provider_kind >= 32
                                             || !(c.view.consent_provider_kinds & (1u << v->provider_kind))))
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                          "the consent does not cover this kind of provider (%s): list it in scope.provider_kinds",
                          soffa_provider_kind_sv((soffa_provider_kind_t) v->provider_kind));
        else if (!(c.view.consent_purposes & (1u << SOFFA_CP_REFERRAL)))
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent does not cover referrals");
        else if (v->has_contact && !(c.view.consent_categories & (1u << SOFFA_DC_CONTACT)))
            rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                          "the consent does not cover contact details; remove them or record a wider consent");
    }
    soffa_policy_ref_fini(&c);
    return rc;
}

/* Rule 6, the consent covers the content (DOMAIN.md §2.3, §5.6), checked
 * after s_check_consent found the consent active and covering the
 * recipient: every message resting on a consent discloses who the young
 * person is (data category IDENTITY); free text (a referral's summary, an
 * at-risk note) needs SUMMARY_TEXT; an at-risk notice passes the pupil on
 * to the KAA (purpose REFERRAL) and tells how the studies go (OCCUPATION,
 * the register's word for studies and work). Contact details were checked
 * with the recipient. Rule 2 at use: a consent given without the young
 * person no longer speaks for one who is 16 or older today. */
static soffa_err_t
s_check_consent_content(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    soffa_policy_ref_t c = {0};
    soffa_err_t rc = v->consent_id ? d->find(d->ctx, SOFFA_REF_CONSENT, v->consent_id, &c) : SOFFA_ERR_NOT_FOUND;
    if (rc == SOFFA_ERR_NOT_FOUND)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "no consent is recorded under that consent id");
    if (rc != SOFFA_OK)
        return rc;
    const soffa_msg_view_t *cv = &c.view;
    const char *field = NULL;
    const char *text = soffa_msg_free_text(d->msg, &field);
    bool at_risk = v->type == SOFFA_MT_AT_RISK_NOTICE || v->type == SOFFA_MT_YEAR9_HANDOVER;
    int age = s_age_on(v, d->today);
    if (!(cv->consent_categories & (1u << SOFFA_DC_IDENTITY)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "the consent does not cover the young person's identity (data category IDENTITY), which %s "
                      "discloses", d->tname);
    else if (at_risk && !(cv->consent_purposes & (1u << SOFFA_CP_REFERRAL)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "the consent does not cover passing the pupil on to the KAA (purpose REFERRAL)");
    else if (at_risk && !(cv->consent_categories & (1u << SOFFA_DC_OCCUPATION)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "%s tells how the pupil's studies go: the consent must cover OCCUPATION", d->tname);
    else if (v->support_tried && !(cv->consent_categories & (1u << SOFFA_DC_MEASURES)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "%s.support_tried tells what support the school has tried: the consent must cover MEASURES; "
                      "leave it out or record a consent that covers it", d->tname);
    else if (text && !(cv->consent_categories & (1u << SOFFA_DC_SUMMARY_TEXT)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "%s: the consent does not cover free text (data category SUMMARY_TEXT); leave the text out or "
                      "record a consent that covers it", field);
    else if (age >= 16 && !(cv->consent_grants & (1u << SOFFA_CGR_YOUTH)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "the consent was given without the young person, who is now %d: from 16 their own consent is "
                      "needed; record a new one", age);
    else if (at_risk && age < 16
             && !(cv->consent_grants & ((1u << SOFFA_CGR_GUARDIAN) | (1u << SOFFA_CGR_GOD_MAN))))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "the pupil is %d: under 16 %s rests on a guardian's consent (or the god man's of an "
                      "unaccompanied minor); record one", age, d->tname);
    soffa_policy_ref_fini(&c);
    return rc;
}

/* Rule 6: nothing social services knows goes to Arbetsförmedlingen
 * (DOMAIN.md §5.6, OSL 26:1; even the fact of contact is secret). soffa
 * recognises it by where it came from: every message social services sent
 * (status answers, concern-report feedback) or was sent (referrals,
 * reports of concern) is found by its message id (SOFFA_REF_SOCIAL). A
 * referral to Arbetsförmedlingen that follows one of them (causation_id)
 * or continues its thread (correlation_id) is refused; its free text is
 * screened for social-services involvement like all text bound for
 * Arbetsförmedlingen (s_check_sensitive_text). */
static soffa_err_t
s_check_not_from_social(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    if (v->target_kind != SOFFA_TK_ARBETSFORMEDLINGEN)
        return SOFFA_OK;
    const uint8_t *ids[2] = {v->causation_id, v->correlation_id};
    static const char *const names[2] = {"causation_id", "correlation_id"};
    for (size_t i = 0; i < 2; i++) {
        if (!ids[i])
            continue;
        soffa_policy_ref_t r = {0};
        soffa_err_t rc = d->find(d->ctx, SOFFA_REF_SOCIAL, ids[i], &r);
        soffa_policy_ref_fini(&r);
        if (rc == SOFFA_OK)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_SOCIAL_SECRECY,
                            "%s names a message social services sent or received: a referral to Arbetsförmedlingen "
                            "may not follow up on it (OSL 26:1); send it on a thread of its own", names[i]);
        if (rc != SOFFA_ERR_NOT_FOUND)
            return rc;
    }
    return SOFFA_OK;
}

/* Rule 5, sensitive text (DOMAIN.md §5.6): free text bound for a KAA,
 * Arbetsförmedlingen or a school may not name sensitive personal data; the
 * sensitive-term list decides, naming the category, and the text is never
 * echoed. A referral to social services is governed by its consent's scope
 * instead (rule 6), and a report of concern is never screened (no row of it
 * asks). Without a loaded list such text is refused, never let through. */
const char *
soffa_policy_text_to_screen(const soffa_msg_t *msg, const char **field)
{
    const char *name = NULL;
    const char *text = soffa_msg_free_text(msg, &name);
    soffa_msg_view_t v;
    soffa_msg_view(msg, &v);
    bool screened = v.type == SOFFA_MT_AT_RISK_NOTICE
                 || (v.type == SOFFA_MT_REFERRAL_SENT && v.target_kind != SOFFA_TK_SOCIAL_SERVICES);
    if (!text || !screened)
        text = name = NULL;
    if (field)
        *field = name;
    return text;
}

static soffa_err_t
s_check_sensitive_text(s_dc_t *d)
{
    const char *field = NULL;
    const char *text = soffa_policy_text_to_screen(d->msg, &field);
    if (!text)
        return SOFFA_OK;
    if (!d->facts || !d->facts->terms)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_INTERNAL,
                        "%s cannot be screened for sensitive data (the broker has no term list loaded), "
                        "so it is refused", field);
    return soffa_terms_screen(d->facts->terms, text, field, d->why, d->whylen);
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
    bool same = c.view.type == SOFFA_MT_CONSENT_RECORDED
             && ((c.view.id_type == v->id_type && strcmp(c.view.subject_id, v->subject_id) == 0)
                 || s_same_person(d->facts, c.view.subject_id, v->subject_id));
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
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "consent_id must be the %s's consent id",
                        v->type == SOFFA_MT_EARLY_WARNING_ANSWERED ? "warning" : "referral");
    bool warning = v->type == SOFFA_MT_EARLY_WARNING_ANSWERED;
    if (!s_is_feedback(v))
        return SOFFA_OK;
    soffa_policy_ref_t c = {0};
    soffa_err_t rc = d->find(d->ctx, SOFFA_REF_CONSENT, referral->view.consent_id, &c);
    if (rc == SOFFA_OK)
        rc = s_consent_active(&c, v, d->today, d->facts, d->find, d->ctx, d->why, d->whylen);
    else if (rc == SOFFA_ERR_NOT_FOUND)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the %s's consent is not recorded",
                      warning ? "warning" : "referral");
    if (rc == SOFFA_OK && !(c.view.consent_purposes & (1u << SOFFA_CP_STATUS_FEEDBACK)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "the consent does not cover status feedback; only %s may be sent",
                      warning ? "ACCEPTED or NOT_IN_TARGET_GROUP" : "RECEIVED");
    soffa_policy_ref_fini(&c);
    return rc;
}

/* An answer: the record answered must exist, be the sender's to answer (it
 * received it) or to withdraw (it sent it), and be about the same person.
 * It decides where the answer goes. */
/* The inbox of whoever sent record a, as it stands now: a KAA of a
 * municipality with teams is the team holding the young person's case (a
 * transferred case's answers follow it), else the team that sent it. */
static void
s_answered_sender_inbox(s_dc_t *d, const soffa_policy_ref_t *a, char out[SOFFA_NAME_MAX])
{
    if (a->sender_role != SOFFA_ROLE_KAA) {
        s_inbox_of(a->sender_role, a->sender, a->sender_kommun, "", out);
        return;
    }
    char team[17] = "";
    if (d->facts->agent_team)
        d->facts->agent_team(d->facts->ctx, a->sender, team);
    soffa_policy_kaa_inbox(d->facts, a->sender_kommun, d->v, team, out);
}

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
    s_answered_sender_inbox(d, &a, answered_sender_inbox);
    if ((d->rule->checks & S_ANSWERER_RECEIVED) && strcmp(a.mailbox, inbox) != 0)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED, "only its recipient (%s) may answer it", a.mailbox);
    else if ((d->rule->checks & S_ANSWERER_SENT) && strcmp(answered_sender_inbox, inbox) != 0)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED, "only its sender may withdraw it");
    else if ((d->rule->checks & S_EARLY_WARNING) && a.view.type != SOFFA_MT_AT_RISK_NOTICE
             && a.view.type != SOFFA_MT_YEAR9_HANDOVER)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_POLICY,
                      "%s names a %s, not an early warning (an at-risk notice or a year-9 handover); answer it "
                      "with signal_acknowledged", d->tname, soffa_msg_type_name(a.view.type));
    else if (!s_same_person(d->facts, a.view.subject_id, v->subject_id))
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

/* ---- The case lifecycle, moves and identities (issue 13, rules 8-10) ---------------- */

/* Yyyymmdd as "2026-11-27" for a reason. */
static void
s_day(uint32_t yyyymmdd, char out[11])
{
    snprintf(out, 11, "%04u-%02u-%02u", yyyymmdd / 10000 % 10000, yyyymmdd / 100 % 100, yyyymmdd % 100);
}

static unsigned
s_bits(uint32_t x)
{
    unsigned n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

/* A case event: open → events → closed, reopened only as its own event.
 * The broker filled facts->kase for the case id the message names. */
static soffa_err_t
s_check_case(s_dc_t *d)
{
    const soffa_policy_case_t *k = &d->facts->kase;
    const soffa_msg_view_t *v = d->v;
    char day[11];
    if (d->rule->checks & S_CASE_NEW) {
        if (k->known)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_EXISTS, "that case id is already in use; make a new one");
        if (k->person_has_open)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_EXISTS,
                            "the young person already has an open case with %s; record the events on that case",
                            d->sender->name);
        return SOFFA_OK;
    }
    if (!k->known)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_FOUND,
                        "no case is registered under that case id; open the case first (kaa_case_opened)");
    if (strcmp(k->kommun, d->sender->kommun) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED, "the case belongs to the KAA of municipality %s",
                        k->kommun);
    if (!k->same_person)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_OPEN,
                        "the case belongs to another young person; use this young person's own case");
    /* A municipality's teams: the team holding the case records its
     * events; one that passed it on no longer does (issue 19, item 4). A
     * reopening comes with a new signal to the reopening team's inbox. */
    if (!(d->rule->checks & S_CASE_REOPEN) && k->team[0] && strcmp(k->team, d->sender->team) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "the case is held by team %s of the KAA of %s, not by %s%s; that team records its events",
                        k->team, k->kommun, d->sender->team[0] ? "team " : "", d->sender->team[0] ? d->sender->team
                                                                                                : d->sender->name);
    if (d->rule->checks & S_CASE_REOPEN) {
        if (k->open)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_OPEN, "the case is open; only a closed case is reopened");
        if (k->person_has_open)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_EXISTS,
                            "the young person has another open case with %s; record the events on that case",
                            d->sender->name);
        return SOFFA_OK;   /* the signal: s_check_reopen_signal */
    }
    if (!k->open) {
        s_day(k->closed_on, day);
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_OPEN,
                        "the case was closed on %s; a new signal about the young person may reopen it "
                        "(kaa_case_reopened)", day);
    }
    if (v->type == SOFFA_MT_CONTACT_ATTEMPTED && v->contact_outcome == SOFFA_CO_NOT_REACHED) {
        uint32_t want_n = d->facts->not_reached_attempts ? d->facts->not_reached_attempts
                                                         : SOFFA_POLICY_NOT_REACHED_ATTEMPTS;
        uint32_t want_c = d->facts->not_reached_channels ? d->facts->not_reached_channels
                                                         : SOFFA_POLICY_NOT_REACHED_CHANNELS;
        uint32_t n = k->failed_attempts + 1;
        uint32_t channels = k->channels | (v->contact_channel > 0 && v->contact_channel < 32
                                               ? 1u << v->contact_channel : 0);
        if (n < want_n || s_bits(channels) < want_c)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                            "NOT_REACHED is recorded after %u attempts through %u different channels (letter, SMS, "
                            "phone, home visit...) without reaching the young person; this would be attempt %u, "
                            "through %u channel(s)", want_n, want_c, n, s_bits(channels));
    }
    if (v->type == SOFFA_MT_KAA_CASE_CLOSED && v->close_reason == SOFFA_CR_MOVED_OUT) {
        if (!v->new_hemkommun[0])
            return s_refuse(d->why, d->whylen, SOFFA_ERR_MISSING_FIELD,
                            "kaa_case_closed.new_hemkommun: name the municipality the young person moved to, so "
                            "that its KAA is told (a move abroad is EMIGRATED)");
        if (strcmp(v->new_hemkommun, d->sender->kommun) == 0)
            return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                            "kaa_case_closed.new_hemkommun: the young person moved out of %s, so the new home "
                            "municipality is another one", d->sender->kommun);
    }
    return SOFFA_OK;
}

/* A reopening names a new signal: one this KAA received about the same
 * young person after the case was closed, while the young person is under
 * 20 (the duty ends at 20). */
static soffa_err_t
s_check_reopen_signal(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    soffa_policy_ref_t sig = {0};
    soffa_err_t rc = v->signal_id ? d->find(d->ctx, SOFFA_REF_SIGNAL, v->signal_id, &sig) : SOFFA_ERR_NOT_FOUND;
    if (rc == SOFFA_ERR_NOT_FOUND)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_FOUND,
                        "kaa_case_reopened.signal_id: no signal with that id is known to soffa");
    if (rc != SOFFA_OK)
        return rc;
    char inbox[SOFFA_NAME_MAX];
    soffa_policy_inbox(d->sender, inbox);
    if (strcmp(sig.mailbox, inbox) != 0)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                      "kaa_case_reopened.signal_id: that signal went to %s, not to %s", sig.mailbox, inbox);
    else if (!s_same_person(d->facts, sig.view.subject_id, v->subject_id))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                      "kaa_case_reopened.signal_id: that signal is about another young person");
    else if (sig.seq <= d->facts->kase.closed_seq)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_OPEN,
                      "kaa_case_reopened.signal_id: that signal came before the case was closed; only a new "
                      "signal reopens it");
    soffa_policy_ref_fini(&sig);
    if (rc != SOFFA_OK)
        return rc;
    soffa_date_t birth;
    soffa_err_t brc = v->id_type == SOFFA_IDT_LOCAL_RESERVE ? soffa_reserve_birth_date(v->subject_id, &birth)
                                                            : soffa_id_birth_date(v->subject_id, &birth);
    if (brc == SOFFA_OK && soffa_date_age(birth, d->today) >= 20)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_AGE,
                        "the young person has turned 20: the KAA's duty has ended, and the case stays closed");
    return SOFFA_OK;
}

static soffa_err_t
s_check_reopen(s_dc_t *d)
{
    soffa_err_t rc = s_check_case(d);
    return rc == SOFFA_OK ? s_check_reopen_signal(d) : rc;
}

/* A close that names a consent hands the case on with the young person: the
 * consent must be this KAA's, the young person's, active, and cover the
 * KAA as recipient and the case summary as purpose (DOMAIN.md §2.6: the
 * move between KAAs rests on consent). Without one only the fact of the
 * move and the identity go to the new KAA. */
static soffa_err_t
s_check_handover(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    if (!v->consent_id)
        return SOFFA_OK;
    if (v->close_reason != SOFFA_CR_MOVED_OUT)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "consent_id: a closed case is handed on under a consent only when the young person moved "
                        "(MOVED_OUT); remove the consent id");
    soffa_policy_ref_t c = {0};
    soffa_err_t rc = d->find(d->ctx, SOFFA_REF_CONSENT, v->consent_id, &c);
    if (rc == SOFFA_ERR_NOT_FOUND)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                        "no consent is recorded under that consent id; record the young person's consent first");
    if (rc != SOFFA_OK)
        return rc;
    char journal[SOFFA_NAME_MAX];
    soffa_policy_journal(d->sender, journal);
    rc = strcmp(c.mailbox, journal) == 0
             ? s_consent_active(&c, v, d->today, d->facts, d->find, d->ctx, d->why, d->whylen)
             : s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT, "the consent was recorded by another organisation");
    if (rc == SOFFA_OK && !(c.view.consent_recipients & (1u << SOFFA_PK_KAA)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "the consent does not cover the new municipality's KAA; close without the consent id to "
                      "send only the fact of the move");
    if (rc == SOFFA_OK && !(c.view.consent_purposes & (1u << SOFFA_CP_CASE_SUMMARY)))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_CONSENT,
                      "the consent does not cover handing on the case (purpose CASE_SUMMARY)");
    soffa_policy_ref_fini(&c);
    return rc;
}

/* A change of contact person names the one the case has: the first is
 * ASSIGNED to a case without one; a handover names the previous one. */
static soffa_err_t
s_check_owner(s_dc_t *d)
{
    const soffa_policy_case_t *k = &d->facts->kase;
    const soffa_msg_view_t *v = d->v;
    if (!v->previous_ref[0] && k->owner[0])
        return s_refuse(d->why, d->whylen, SOFFA_ERR_EXISTS,
                        "case_owner_changed: the case has a contact person (%s); hand it over with previous_ref = %s "
                        "and a reason", k->owner, k->owner);
    if (v->previous_ref[0] && strcmp(v->previous_ref, k->owner) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "case_owner_changed.previous_ref: the case's contact person is %s%s, not %s", 
                        k->owner[0] ? k->owner : "nobody yet", k->owner[0] ? "" : " (assign one: reason ASSIGNED)",
                        v->previous_ref);
    return SOFFA_OK;
}

/* A transfer names another team of the sender's own municipality. */
static soffa_err_t
s_check_transfer(s_dc_t *d)
{
    const soffa_policy_case_t *k = &d->facts->kase;
    const char *kommun = d->sender->kommun, *to = d->v->to_team;
    if (!soffa_teams_split(d->facts->teams, kommun))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_POLICY,
                        "case_transferred: the KAA of %s is not split into teams (no [teams %s] in the broker's "
                        "configuration), so there is no team to pass the case to", kommun, kommun);
    if (!soffa_teams_has(d->facts->teams, kommun, to))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_FOUND,
                        "case_transferred.to_team: %s is not a team of the KAA of %s; a case passes only between "
                        "the teams of one municipality", to, kommun);
    if (!strcmp(to, k->team[0] ? k->team : d->sender->team))
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "case_transferred.to_team: team %s holds the case already", to);
    return SOFFA_OK;
}

/* "Not our youth, rerouted": the right home municipality is another one. */
static soffa_err_t
s_check_reroute(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    if (v->ack_result != SOFFA_AR_NOT_HEMKOMMUN_REROUTED)
        return SOFFA_OK;
    if (strcmp(v->new_hemkommun, d->sender->kommun) == 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "signal_acknowledged.new_hemkommun: name the young person's right home municipality, not "
                        "%s (use REGISTERED or RECEIVED for your own)", d->sender->kommun);
    /* Once: a second reroute before the first copy is stored would send
     * the signal to two municipalities. */
    soffa_policy_ref_t prev = {0};
    soffa_err_t rc = v->ref_id ? d->find(d->ctx, SOFFA_REF_ACK, v->ref_id, &prev) : SOFFA_ERR_NOT_FOUND;
    bool again = rc == SOFFA_OK && prev.view.type == SOFFA_MT_SIGNAL_ACKNOWLEDGED
              && prev.view.ack_result == SOFFA_AR_NOT_HEMKOMMUN_REROUTED;
    soffa_policy_ref_fini(&prev);
    if (again)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_EXISTS,
                        "the signal was already sent on to another municipality's KAA; it is theirs to answer now");
    return rc == SOFFA_ERR_NOT_FOUND ? SOFFA_OK : rc;
}

/* An answer to a referral that has expired is refused: EXPIRED ends it. */
static soffa_err_t
s_check_referral_live(s_dc_t *d)
{
    bool expired = false;
    soffa_err_t rc = d->v->ref_id ? s_referral_expired(d->v->ref_id, d->find, d->ctx, &expired) : SOFFA_OK;
    if (rc == SOFFA_OK && expired)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_OPEN,
                        "the referral expired: nobody answered it within its deadline, and soffa recorded it as "
                        "EXPIRED; the KAA may send a new one");
    return rc;
}

/* An identity change (SUBJECT_IDENTITY_CHANGED): about the person under the
 * new number, from another number, and consistent with the alias map. */
static soffa_err_t
s_check_identity(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    if (strcmp(v->subject_id, v->new_id) != 0 || (int) v->id_type != v->new_id_type)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "subject: an identity change is about the young person under the new number "
                        "(subject.id = new_id.id)");
    if (strcmp(v->old_id, v->new_id) == 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD, "subject_identity_changed: the old and the new "
                                                                "number are the same");
    /* A reserve number is issued by one organisation and may name someone
     * else at another: joining it to a number would join their records. */
    if (v->old_id_type == SOFFA_IDT_LOCAL_RESERVE)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "subject_identity_changed.old_id: a reserve number is issued by one organisation and may "
                        "name someone else at another, so soffa does not join it to a new number; send what "
                        "follows under the new number");
    const soffa_policy_facts_t *f = d->facts;
    if (f->old_replaced_by_new)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_EXISTS, "this identity change is already recorded");
    if (f->old_replaced)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_EXISTS,
                        "the old number was already replaced by another number; record the change from that one");
    if (f->new_replaced)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "subject_identity_changed.new_id: that number was itself replaced by a later one; name "
                        "the latest number");
    /* Only a KAA that knows whom the old number names may join it to
     * another: otherwise any KAA could merge two people's histories. */
    if (!f->old_known_here)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                        "subject_identity_changed.old_id: this KAA holds nothing under the old number (no signal "
                        "in its inbox, no case or consent in its journal), so it cannot say whom it names; the "
                        "KAA that has the young person's case records the change");
    return SOFFA_OK;
}

/* ---- The local actors (issue 19, item 3) --------------------------------------------- */

/* A referral to a provider (targets PROVIDER, OTHER, and SCHOOL for
 * another school's programme) goes to a provider agent of the sender's
 * municipality of the kind it names: the one it names (referral_sent.
 * provider), or the only one of that kind. Sets the destination. */
static soffa_err_t
s_check_provider(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    const char *k = d->sender->kommun;
    if (!v->provider_kind)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_MISSING_FIELD,
                        "referral_sent.provider_kind: name the kind of provider the referral goes to (KOMVUX, "
                        "LABOUR_MARKET_UNIT, GUIDANCE_CENTRE, FOLKHOGSKOLA, NAVIGATOR_CENTRE, SAMORDNINGSFORBUND, "
                        "SCHOOL_PROGRAMME)");
    soffa_provider_kind_t kind = (soffa_provider_kind_t) v->provider_kind;
    const soffa_identity_t *found = NULL;
    size_t n = 0;
    char names[160] = "";
    for (size_t i = 0; d->facts->provider_at; i++) {
        const soffa_identity_t *p = d->facts->provider_at(d->facts->ctx, k, i);
        if (!p)
            break;
        if (p->role != SOFFA_ROLE_PROVIDER || strcmp(p->kommun, k) != 0)
            continue;
        if (v->provider[0]) {
            if (strcmp(p->name, v->provider) == 0)
                found = p;
            continue;
        }
        if (p->provider_kind != kind)
            continue;
        found = p;
        size_t len = strlen(names);
        snprintf(names + len, sizeof names - len, "%s%s", n ? ", " : "", p->name);
        n++;
    }
    if (v->provider[0] && !found)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_FOUND,
                        "referral_sent.provider: no provider agent '%s' is configured for municipality %s (add "
                        "[agent %s] with role = provider, kommun = %s, provider_kind = %s)", v->provider, k, v->provider, k,
                        soffa_provider_kind_name(kind));
    if (v->provider[0] && found->provider_kind != kind)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "referral_sent.provider: %s is a provider of kind %s, not %s", found->name,
                        soffa_provider_kind_name(found->provider_kind), soffa_provider_kind_name(kind));
    if (!found)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_POLICY,
                        "no provider of kind %s (%s) is configured for municipality %s: add [agent NAME] with "
                        "role = provider, kommun = %s, provider_kind = %s to the broker's configuration",
                        soffa_provider_kind_name(kind), soffa_provider_kind_sv(kind), k, k,
                        soffa_provider_kind_name(kind));
    if (n > 1)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "referral_sent.provider: municipality %s has several providers of kind %s (%s); name the one "
                        "the referral goes to", k, soffa_provider_kind_name(kind), names);
    s_inbox_of(SOFFA_ROLE_PROVIDER, found->name, found->kommun, "", d->out->mailbox);
    return SOFFA_OK;
}

/* A measure that follows from a referral (measure_started.referral_id):
 * the referral is this KAA's, about the same young person (whose open case
 * the measure is recorded on), and went to the kind of party the measure
 * names as its provider (a provider: of the same provider kind). */
static soffa_err_t
s_check_measure_referral(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    if (!v->measure_referral)
        return SOFFA_OK;
    soffa_policy_ref_t r = {0};
    soffa_err_t rc = d->find(d->ctx, SOFFA_REF_REFERRAL, v->measure_referral, &r);
    if (rc == SOFFA_ERR_NOT_FOUND)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_FOUND,
                        "measure_started.referral_id: no referral with that id is known to soffa");
    if (rc != SOFFA_OK)
        return rc;
    soffa_party_kind_t to = s_target_party(r.view.target_kind);
    if (r.view.type != SOFFA_MT_REFERRAL_SENT || r.sender_role != SOFFA_ROLE_KAA
        || strcmp(r.sender_kommun, d->sender->kommun) != 0)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_NOT_AUTHORISED,
                      "measure_started.referral_id: that referral was not sent by the KAA of %s", d->sender->kommun);
    else if (!s_same_person(d->facts, r.view.subject_id, v->subject_id))
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                      "measure_started.referral_id: that referral is about another young person");
    else if (v->measure_provider != (int) to)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                      "measure_started.provider: the referral went to %s; name it as the measure's provider "
                      "(provider.kind %s%s%s)",
                      to == SOFFA_PK_PROVIDER ? "a local provider" : to == SOFFA_PK_SOCIAL_SERVICES ? "social services"
                                                                                               : "Arbetsförmedlingen",
                      to == SOFFA_PK_PROVIDER ? "PROVIDER" : to == SOFFA_PK_SOCIAL_SERVICES ? "SOCIAL_SERVICES"
                                                                                         : "ARBETSFORMEDLINGEN",
                      to == SOFFA_PK_PROVIDER ? ", provider.provider_kind " : "",
                      to == SOFFA_PK_PROVIDER ? soffa_provider_kind_name((soffa_provider_kind_t) r.view.provider_kind)
                                              : "");
    else if (to == SOFFA_PK_PROVIDER && v->provider_kind != r.view.provider_kind)
        rc = s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                      "measure_started.provider.provider_kind: the referral went to a provider of kind %s, not %s",
                      soffa_provider_kind_name((soffa_provider_kind_t) r.view.provider_kind),
                      soffa_provider_kind_name((soffa_provider_kind_t) v->provider_kind));
    soffa_policy_ref_fini(&r);
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
    {"dates soffa can trust", 0, s_check_dates},
    {"age", S_AGE_UNDER_20 | S_AGE_UNDER_18, s_check_age},
    {"the sender's municipality", S_SUBJECT_IN_SCOPE, s_check_in_scope},
    {"the KAA's target group", S_TARGET_GROUP, s_check_target_group},
    {"a consent's own id", S_OWN_CONSENT, s_check_own_consent},
    {"who may consent", S_CONSENT_GIVER, s_check_consent_giver},
    {"a new id is new", 0, s_check_new_id},
    {"the provider", S_PROVIDER, s_check_provider},
    {"consent", S_CONSENT_TO_KAA | S_CONSENT_REFERRAL, s_check_consent},
    {"the consent covers the content", S_CONSENT_TO_KAA | S_CONSENT_REFERRAL, s_check_consent_content},
    {"nothing of social services to Arbetsförmedlingen", S_CONSENT_REFERRAL, s_check_not_from_social},
    {"sensitive text", S_SCREEN_TEXT, s_check_sensitive_text},
    {"the consent withdrawn", S_CONSENT_EXISTS, s_check_consent_exists},
    {"the record answered", 0, s_check_answered},
    {"the case", S_CASE_NEW | S_CASE_OPEN, s_check_case},
    {"the case reopened", S_CASE_REOPEN, s_check_reopen},
    {"the consent of a handover", S_HANDOVER, s_check_handover},
    {"the municipality rerouted to", S_REROUTE, s_check_reroute},
    {"the referral has not expired", S_REFERRAL_LIVE, s_check_referral_live},
    {"the identity change", S_IDENTITY, s_check_identity},
    {"the case's contact person", S_OWNER, s_check_owner},
    {"the team a case passes to", S_TRANSFER, s_check_transfer},
    {"the referral a measure follows", S_MEASURE_REFERRAL, s_check_measure_referral},
};

/* Where the message goes (an answer's destination was set by its check). */
static soffa_err_t
s_destination(s_dc_t *d)
{
    const soffa_msg_view_t *v = d->v;
    switch (d->rule->dest) {
    case S_TO_KAA_OF_SUBJECT: soffa_policy_kaa_inbox(d->facts, v->hemkommun, v, NULL, d->out->mailbox); break;
    case S_TO_SOCIAL_OF_SUBJECT: snprintf(d->out->mailbox, sizeof d->out->mailbox, "social/%.4s", v->hemkommun); break;
    case S_TO_AGENCY_OF_SUBJECT:
        snprintf(d->out->mailbox, sizeof d->out->mailbox, "%s/%.4s",
                 v->target_kind == SOFFA_TK_SOCIAL_SERVICES ? "social" : "af", v->hemkommun);
        break;
    case S_TO_OWN_JOURNAL: soffa_policy_journal(d->sender, d->out->mailbox); break;
    case S_TO_ANSWERED_SENDER:
    case S_TO_ANSWERED_RECIPIENT:
    case S_TO_PROVIDER: break;
    }
    if (!d->out->mailbox[0])
        return s_refuse(d->why, d->whylen, SOFFA_ERR_POLICY, "no mailbox for this message");
    /* The district of the registered address is there to route to a KAA
     * team (issue 19, item 4); nobody else is told where the young person
     * lives more closely than the home municipality. */
    if (v->district && v->district[0] && strncmp(d->out->mailbox, "kaa/", 4) != 0
        && strncmp(d->out->mailbox, "kaa-journal/", 12) != 0)
        return s_refuse(d->why, d->whylen, SOFFA_ERR_BAD_FIELD,
                        "subject.district: the district of the address only routes a message to a KAA team; remove "
                        "it from a message to %s", d->out->mailbox);
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
        /* Many referrals per consent, many events per case. */
        ref->shared = r->index[i].kind == SOFFA_REF_BY_CONSENT || r->index[i].kind == SOFFA_REF_CASE;
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
    /* What social services sent or was sent is found by its message id, so
     * that nothing follows it to Arbetsförmedlingen (s_check_not_from_social). */
    if (d->v->message_id && (d->sender->role == SOFFA_ROLE_SOCIAL || !strncmp(d->out->mailbox, "social/", 7))
        && d->out->n_refs < SOFFA_STORE_REFS) {
        soffa_store_ref_t *ref = &d->out->refs[d->out->n_refs++];
        ref->key[0] = (uint8_t) SOFFA_REF_SOCIAL;
        memcpy(ref->key + 1, d->v->message_id, 16);
        ref->len = 17;
        ref->shared = false;
    }
}

soffa_err_t
soffa_policy_decide(const soffa_identity_t *sender, const soffa_msg_t *msg, soffa_date_t today,
                    const soffa_policy_facts_t *facts, soffa_policy_find_fn find, void *ctx,
                    soffa_policy_decision_t *out, char *why, size_t whylen)
{
    static const soffa_policy_facts_t none;   /* nothing known beyond the message */
    soffa_msg_view_t v;
    soffa_msg_view(msg, &v);
    memset(out, 0, sizeof *out);
    s_dc_t d = {sender, &v, s_rule_for(&v, sender->role), today, facts ? facts : &none, find, ctx, out,
                soffa_msg_type_name(v.type), why, whylen, msg};
    if (!d.rule && v.type == SOFFA_MT_REFERRAL_SENT && s_rule(v.type, sender->role))
        return s_refuse(why, whylen, SOFFA_ERR_POLICY, "a %s agent may not send a referral to that target (%s)%s",
                        soffa_role_name(sender->role),
                        v.target_kind == SOFFA_TK_KAA ? "KAA" : v.target_kind == SOFFA_TK_SOCIAL_SERVICES ? "social services"
                        : v.target_kind == SOFFA_TK_ARBETSFORMEDLINGEN ? "Arbetsförmedlingen" : "a provider",
                        sender->role == SOFFA_ROLE_SOCIAL ? "; social services refer to the KAA (target KAA)"
                        : v.target_kind == SOFFA_TK_KAA ? "; a young person who moved is handed on by closing the case "
                                                          "as MOVED_OUT" : "");
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
