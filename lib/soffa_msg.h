/*  soffa_msg: the domain message (DOMAIN.md §5) behind the codec wall.
 *
 *  A soffa_msg_t is one decoded, owned message. Outside lib/ nobody sees the
 *  generated protobuf-c types: broker and agents decode, validate, read the
 *  flat soffa_msg_view_t, convert to and from JSON, and encode.
 *
 *  This module holds the codec, the names, the flat view and the messages
 *  the broker writes itself; the JSON form is soffa_msg_json, validation
 *  soffa_msg_valid (both included below).
 */
#ifndef SOFFA_MSG_H
#define SOFFA_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"

#define SOFFA_MSG_MAX (32 * 1024)   /* largest encoded message accepted */

/* The message types; values are the payload field numbers of Message. */
#define SOFFA_MSG_TYPES(X)                                     \
    X(ENROLMENT_CHANGED, enrolment_changed, 20)                \
    X(ABSENCE_REPORTED, absence_reported, 21)                  \
    X(AT_RISK_NOTICE, at_risk_notice, 22)                      \
    X(SIGNAL_ACKNOWLEDGED, signal_acknowledged, 23)            \
    X(KAA_CASE_OPENED, kaa_case_opened, 24)                    \
    X(CONTACT_ATTEMPTED, contact_attempted, 25)                \
    X(OCCUPATION_RECORDED, occupation_recorded, 26)            \
    X(PLAN_AGREED, plan_agreed, 27)                            \
    X(MEASURE_STARTED, measure_started, 28)                    \
    X(MEASURE_ENDED, measure_ended, 29)                        \
    X(KAA_CASE_CLOSED, kaa_case_closed, 30)                    \
    X(CONSENT_RECORDED, consent_recorded, 31)                  \
    X(CONSENT_WITHDRAWN, consent_withdrawn, 32)                \
    X(REFERRAL_SENT, referral_sent, 33)                        \
    X(REFERRAL_STATUS_CHANGED, referral_status_changed, 34)    \
    X(REFERRAL_WITHDRAWN, referral_withdrawn, 35)              \
    X(CONCERN_REPORT_FILED, concern_report_filed, 36)          \
    X(CONCERN_REPORT_FEEDBACK, concern_report_feedback, 37)    \
    X(SUBJECT_IDENTITY_CHANGED, subject_identity_changed, 38)  \
    X(KAA_CASE_REOPENED, kaa_case_reopened, 39)                \
    X(EARLY_WARNING_ANSWERED, early_warning_answered, 40)      \
    X(YEAR9_HANDOVER, year9_handover, 41)                      \
    X(ADMISSION_NOT_STARTED, admission_not_started, 42)        \
    X(CASE_OWNER_CHANGED, case_owner_changed, 43)              \
    X(CASE_TRANSFERRED, case_transferred, 44)                  \
    X(CASE_MAPPED, case_mapped, 45)

typedef enum {
    SOFFA_MT_NONE = 0,
#define SOFFA_MT_ENUM_(NAME, name, num) SOFFA_MT_##NAME = num,
    SOFFA_MSG_TYPES(SOFFA_MT_ENUM_)
#undef SOFFA_MT_ENUM_
} soffa_msg_type_t;

#define SOFFA_MT_FIRST SOFFA_MT_ENROLMENT_CHANGED
#define SOFFA_MT_LAST SOFFA_MT_CASE_MAPPED

/* Mirrors of the proto enumerations soffa's logic decides on. The numbers
 * are checked against the generated code at compile time in soffa_msg.c. */
typedef enum {
    SOFFA_LB_NONE = 0,
    SOFFA_LB_SL_15_15_ENROLMENT = 1,
    SOFFA_LB_SL_15_15_ABSENCE = 2,
    SOFFA_LB_SOL_REPORT_OF_CONCERN = 3,
    SOFFA_LB_SOL_REPORTER_FEEDBACK = 4,
    SOFFA_LB_CONSENT_OSL_12_2 = 5,
    SOFFA_LB_SL_29_9_INTERNAL = 6,
} soffa_legal_basis_t;

typedef enum {
    SOFFA_ROLE_NONE = 0,
    SOFFA_ROLE_SCHOOL = 1,
    SOFFA_ROLE_KAA = 2,
    SOFFA_ROLE_SOCIAL = 3,
    SOFFA_ROLE_AF = 4,
    SOFFA_ROLE_AUDIT = 5,
    SOFFA_ROLE_BROKER = 6,
    SOFFA_ROLE_PROVIDER = 7,         /* a local actor: Komvux, a labour-market unit... (issue 19) */
} soffa_role_t;

typedef enum {
    SOFFA_PK_NONE = 0,
    SOFFA_PK_SCHOOL_PRINCIPAL = 1,
    SOFFA_PK_KAA = 2,
    SOFFA_PK_SOCIAL_SERVICES = 3,
    SOFFA_PK_ARBETSFORMEDLINGEN = 4,
    SOFFA_PK_SOFFA = 5,
    SOFFA_PK_PROVIDER = 6,
} soffa_party_kind_t;

/* ProviderKind: which local actor a provider agent is (its configuration). */
typedef enum {
    SOFFA_PVK_NONE = 0,
    SOFFA_PVK_KOMVUX = 1,
    SOFFA_PVK_LABOUR_MARKET_UNIT = 2,
    SOFFA_PVK_GUIDANCE_CENTRE = 3,
    SOFFA_PVK_FOLKHOGSKOLA = 4,
    SOFFA_PVK_NAVIGATOR_CENTRE = 5,
    SOFFA_PVK_SAMORDNINGSFORBUND = 6,
    SOFFA_PVK_SCHOOL_PROGRAMME = 7,
    SOFFA_PVK_COUNT_ = 8,
} soffa_provider_kind_t;

/*  "komvux" for SOFFA_PVK_KOMVUX (the configuration's word), and back
 *  (SOFFA_PVK_NONE when unknown); the Swedish name for people. */
const char *soffa_provider_kind_name(soffa_provider_kind_t kind);
soffa_provider_kind_t soffa_provider_kind_from_name(const char *name);
const char *soffa_provider_kind_sv(soffa_provider_kind_t kind);

typedef enum {
    SOFFA_TK_NONE = 0,
    SOFFA_TK_SOCIAL_SERVICES = 1,
    SOFFA_TK_ARBETSFORMEDLINGEN = 2,
    SOFFA_TK_SCHOOL = 3,
    SOFFA_TK_OTHER = 4,
    SOFFA_TK_PROVIDER = 5,
    SOFFA_TK_KAA = 6,
} soffa_target_kind_t;

typedef enum {
    SOFFA_CP_NONE = 0,
    SOFFA_CP_REFERRAL = 1,
    SOFFA_CP_STATUS_FEEDBACK = 2,
    SOFFA_CP_CASE_SUMMARY = 3,
} soffa_consent_purpose_t;

typedef enum {
    SOFFA_CGR_NONE = 0,
    SOFFA_CGR_YOUTH = 1,
    SOFFA_CGR_GUARDIAN = 2,
    SOFFA_CGR_GOD_MAN = 3,           /* an unaccompanied minor's god man, in the guardian's place */
} soffa_consent_role_t;

typedef enum {
    SOFFA_RS_NONE = 0,
    SOFFA_RS_RECEIVED = 1,
} soffa_referral_status_t;   /* only RECEIVED is special to policy */

/* The codes of a few more enumerations the policy decides on. */
#define SOFFA_AR_NOT_HEMKOMMUN_REROUTED 3   /* AckResult: not our youth; sent on to new_hemkommun */
#define SOFFA_CR_MOVED_OUT 5                /* CloseReason */
#define SOFFA_CO_REACHED 1                  /* ContactOutcome */
#define SOFFA_CO_NOT_REACHED 6              /* ContactOutcome: the routine of attempts is spent */
#define SOFFA_RS_EXPIRED 9                  /* ReferralStatus: nobody answered in time (the broker's) */

typedef enum {
    SOFFA_IDT_NONE = 0,
    SOFFA_IDT_PNR = 1,
    SOFFA_IDT_SAMNR = 2,
    SOFFA_IDT_LOCAL_RESERVE = 3,
} soffa_id_type_t;

typedef struct soffa_msg soffa_msg_t;

/*  A flat, borrowed view of what routing and policy decide on. Pointers stay
 *  valid as long as the message. Absent ids are NULL. */
typedef struct {
    soffa_msg_type_t type;
    const uint8_t *message_id;       /* 16 bytes */
    const uint8_t *correlation_id;   /* 16 bytes, or NULL */
    const uint8_t *causation_id;     /* NULL when absent */
    const uint8_t *consent_id;       /* envelope-level consent id, NULL when absent */
    int64_t occurred_at_us;          /* business time */
    soffa_legal_basis_t legal_basis;
    soffa_id_type_t id_type;
    const char *subject_id;          /* canonical 12 digits (or local reserve) */
    const char *hemkommun;           /* subject's home municipality */
    bool protected_identity;
    bool protection_lifted;          /* the home municipality's KAA says protection has ended */
    uint32_t event_date;             /* yyyymmdd the age rules apply to, 0 if none */
    const uint8_t *ref_id;           /* thread id in the payload: signal, referral, report, consent or case id */
    soffa_target_kind_t target_kind; /* referral_sent */
    int purpose;                     /* referral_sent purpose code */
    int referral_status;             /* referral_status_changed */
    bool has_contact;                /* any contact detail present */
    const char *new_hemkommun;       /* kaa_case_closed, or signal_acknowledged rerouted; "" when absent */
    int ack_result;                  /* signal_acknowledged result (AckResult), 0 otherwise */
    int close_reason;                /* kaa_case_closed reason (CloseReason), 0 otherwise */
    int contact_channel;             /* contact_attempted channel, 0 otherwise */
    int contact_outcome;             /* contact_attempted outcome, 0 otherwise */
    const uint8_t *signal_id;        /* kaa_case_reopened: the signal that reopens it, NULL otherwise */
    const char *old_id;              /* subject_identity_changed: the replaced number, "" otherwise */
    int old_id_type;                 /* ... and its id type */
    const char *new_id;              /* subject_identity_changed: the number that replaces it, "" otherwise */
    int new_id_type;                 /* ... and its id type */
    uint32_t consent_recipients;     /* consent_recorded: bit (1 << soffa_party_kind_t) */
    uint32_t consent_purposes;       /* consent_recorded: bit (1 << soffa_consent_purpose_t) */
    uint32_t consent_valid_from;     /* yyyymmdd */
    uint32_t consent_valid_to;       /* yyyymmdd */
    uint32_t consent_categories;     /* consent_recorded: bit (1 << DataCategory) */
    uint32_t consent_grants;         /* consent_recorded: bit (1 << soffa_consent_role_t) of each grant */
    uint32_t consent_youth_age;      /* consent_recorded: youth_age_at_grant */
    bool consent_maturity;           /* consent_recorded: maturity_assessed */
    int claimed_kind;                /* sender.kind as claimed (soffa_party_kind_t), 0 if absent */
    const char *claimed_kommun;      /* sender.kommunkod as claimed, "" if absent */
    const char *claimed_unit;        /* sender.unit_id as claimed, "" if absent */
    const char *claimed_orgnr;       /* sender.org_nr as claimed, "" if absent */
    const char *school_unit;         /* the payload's school_unit (school signals, handover, admission), "" if none */
    /* Early warning (issue 19): at-risk notices, year-9 handovers and the KAA's answers. */
    int school_form;                 /* year9_handover, admission_not_started: SchoolForm, 0 otherwise */
    uint32_t support_tried;          /* at_risk_notice, year9_handover: bit (1 << SupportTried) of each */
    int warning_status;              /* early_warning_answered: EarlyWarningStatus, 0 otherwise */
    /* Case owner and teams (issue 19, item 4). */
    const char *district;            /* subject.district (distriktskod of the registered address), "" if absent */
    const char *owner_ref;           /* case_owner_changed: the new contact person's staff reference, else "" */
    const char *previous_ref;        /* case_owner_changed: the contact person until now, "" if none */
    int owner_reason;                /* case_owner_changed: OwnerChangeReason, 0 otherwise */
    const char *to_team;             /* case_transferred: the team the case goes to, else "" */
    /* Providers (issue 19, item 3). */
    int provider_kind;               /* referral_sent: ProviderKind (SCHOOL_PROGRAMME for TK_SCHOOL); measure_started:
                                      * provider.provider_kind; 0 otherwise */
    const char *provider;            /* referral_sent: the provider agent named, "" when none */
    uint32_t consent_provider_kinds; /* consent_recorded: bit (1 << ProviderKind) of scope.provider_kinds */
    const uint8_t *measure_referral; /* measure_started: the referral it follows from, NULL when none */
    int measure_provider;            /* measure_started: provider.kind (PartyKind), 0 when none */
    int claimed_provider_kind;       /* sender.provider_kind as claimed, 0 if absent */
} soffa_msg_view_t;

/* SchoolForm and EarlyWarningStatus values the policy decides on. */
#define SOFFA_SF_GR 3
#define SOFFA_SF_ANP_GR 4
#define SOFFA_EWS_ACCEPTED 1
#define SOFFA_EWS_NOT_IN_TARGET_GROUP 5

/* DataCategory values (bits of consent_categories). */
#define SOFFA_DC_IDENTITY 1
#define SOFFA_DC_CONTACT 2
#define SOFFA_DC_OCCUPATION 3
#define SOFFA_DC_MEASURES 4
#define SOFFA_DC_SUMMARY_TEXT 5

#define SOFFA_CR_TURNED_20 1         /* CloseReason TURNED_20 */

/* ---- Lifecycle and codec ---- */

/*  Decodes len bytes. Refuses more than SOFFA_MSG_MAX. Does not validate.
 *  Returns SOFFA_OK, SOFFA_ERR_TOO_LARGE or SOFFA_ERR_MALFORMED. */
soffa_err_t soffa_msg_decode(const void *buf, size_t len, soffa_msg_t **out);

/*  Encodes msg into a new buffer (*buf freed by the caller with free()). */
soffa_err_t soffa_msg_encode(const soffa_msg_t *msg, uint8_t **buf, size_t *len);

/*  Destroys *self_p and sets it to NULL; NULL-safe. */
void soffa_msg_destroy(soffa_msg_t **self_p);

/*  True if msg, or a message inside it, carries fields the schema does not
 *  know (which soffa can neither validate nor show, so never stores). */
bool soffa_msg_has_unknown_fields(const soffa_msg_t *msg);

/*  The referral_withdrawn the broker sends when the consent a referral
 *  rests on is withdrawn: same subject and thread as `referral` (a decoded
 *  referral_sent), reason CONSENT_WITHDRAWN, caused by the withdrawal
 *  `cause`. Encoded into *buf (free with free()). */
soffa_err_t soffa_msg_referral_withdrawn(const soffa_msg_t *referral, const uint8_t consent_id[16],
                                         const uint8_t cause[16], const uint8_t message_id[16], int64_t now_us,
                                         uint8_t **buf, size_t *len);

/* ---- Reading ---- */

/*  Fills the flat view of msg. */
void soffa_msg_view(const soffa_msg_t *msg, soffa_msg_view_t *view);

/*  The payload type of msg, SOFFA_MT_NONE when it has none. */
soffa_msg_type_t soffa_msg_type(const soffa_msg_t *msg);

/*  "absence_reported" for SOFFA_MT_ABSENCE_REPORTED; "unknown" otherwise. */
const char *soffa_msg_type_name(soffa_msg_type_t type);

/*  The type whose name is `name`, SOFFA_MT_NONE when there is none. */
soffa_msg_type_t soffa_msg_type_from_name(const char *name);

/*  Name of a role ("kaa"), and back (SOFFA_ROLE_NONE when unknown). */
const char *soffa_role_name(soffa_role_t role);

/*  The JSON name of a legal basis ("SL_15_15_ABSENCE"), from the schema;
 *  "none" for SOFFA_LB_NONE, "unknown" for a value the schema lacks. */
const char *soffa_legal_basis_name(soffa_legal_basis_t basis);
soffa_role_t soffa_role_from_name(const char *name);

/*  The free text a message carries, NULL when it carries none (or an empty
 *  one): at_risk_notice.note, referral_sent.summary or
 *  concern_report_filed.description (the only free-text fields of the
 *  schema; every other string is a code or an identifier and is validated
 *  as one). *field (may be NULL) gets the field's name, NULL with the text.
 *  Both are borrowed from msg. */
const char *soffa_msg_free_text(const soffa_msg_t *msg, const char **field);

/* The JSON form and validation are modules of their own, included here so
 * that a user of messages includes one header. */
#include "soffa_msg_json.h"
#include "soffa_msg_valid.h"

#endif
