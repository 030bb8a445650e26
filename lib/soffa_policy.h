/*  soffa_policy: who may send what to whom (DOMAIN.md §5.5), in one table.
 *
 *  For each (message type, sender role) the table gives the legal basis the
 *  message must carry, where it goes, and which checks apply: the subject's
 *  age, the consent it rests on, the sender's scope, and for replies the
 *  message being answered. Everything not in the table is refused. The
 *  module decides only; it reads referenced records through a callback and
 *  never touches the store itself.
 *
 *  Mailboxes:
 *    kaa/K             signals and answers for the KAA of municipality K
 *    kaa/K/T           ... for team T of that KAA, when K splits it into teams ([teams K])
 *    kaa-journal/K     KAA K's own case events and consents (read by no agent)
 *    social/K, af/K    referrals and concern reports for municipality K
 *    school/A          answers to school agent A
 *    provider/K/A      referrals for provider agent A of municipality K (Komvux, ...)
 *    social-journal/K  consents recorded by social services of K (read by no agent)
 *    school-journal/A  consents recorded by school agent A
 *    audit/checkpoint  the broker's signed checkpoints (read by every auditor's agent)
 *    audit/access/C    one record when a read of the history opens, one when it ends, in
 *                      the access log of each data controller C whose records it
 *                      concerns (see soffa_policy_controller)
 */
#ifndef SOFFA_POLICY_H
#define SOFFA_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "soffa_msg.h"
#include "soffa_store.h"
#include "soffa_terms.h"
#include "soffa_time.h"
#include "soffa_wire.h"

#define SOFFA_SCOPE_MAX 512
#define SOFFA_UNITS_MAX 64          /* school units one principal's agent may speak for */

/*  An authenticated agent, from the broker's configuration. What a message
 *  says about its sender (sender.kind, org_nr, kommunkod, unit_id and a
 *  school signal's school_unit) must match this. */
typedef struct {
    char name[SOFFA_NAME_MAX];      /* agent name; the ZAP user id */
    soffa_role_t role;
    char kommun[5];                 /* municipality served ("" for audit) */
    char unit[33];                  /* the first unit ("" if none): the envelope's sender unit */
    char units[SOFFA_UNITS_MAX][17];/* every unit it may speak for: a school's skolenhetskoder, else local unit codes */
    size_t n_units;                 /* entries in units */
    char orgnr[11];                 /* organisationsnummer, 10 digits ("" if not configured) */
    char public_key[41];            /* Z85 */
    char scope[SOFFA_SCOPE_MAX];    /* audit: mailbox patterns it may replay, comma-separated */
    bool span_controllers;          /* audit: the scope may cover several data controllers (configured so) */
    char controller[SOFFA_NAME_MAX];/* audit: the one data controller its scope covers ("" when it spans) */
    char team[17];                  /* kaa: its team of a municipality's KAA ([teams K]); "" for a whole KAA */
    soffa_provider_kind_t provider_kind; /* provider: which local actor it is (configured); else SOFFA_PVK_NONE */
} soffa_identity_t;

/*  The longest name of a provider agent: its access log
 *  audit/access/provider/NAME fits SOFFA_NAME_MAX. */
#define SOFFA_PROVIDER_NAME_MAX 40

/*  Fills id->units, id->n_units and id->unit from a configured list of unit
 *  codes separated by commas (blanks allowed, "" for none): for a school
 *  (id->role, set first) 8-digit skolenhetskoder, for other roles local unit
 *  codes (1 to 16 of A-Z 0-9 -, e.g. an Arbetsförmedlingen office). Returns
 *  SOFFA_OK, SOFFA_ERR_SKOLENHET or SOFFA_ERR_BAD_FIELD (an entry is not a
 *  code; `why` names it), SOFFA_ERR_TOO_LARGE (more than SOFFA_UNITS_MAX) or
 *  SOFFA_ERR_EXISTS (a code twice). */
soffa_err_t soffa_policy_set_units(soffa_identity_t *id, const char *list, char *why, size_t whylen);

/*  True if the identity may speak for school unit `unit`. */
bool soffa_policy_has_unit(const soffa_identity_t *id, const char *unit);

/*  A record the message refers to, as the broker found it. */
typedef struct {
    uint64_t seq;
    char sender[SOFFA_NAME_MAX];
    soffa_role_t sender_role;
    char sender_kommun[5];
    char mailbox[SOFFA_NAME_MAX];
    soffa_msg_t *msg;               /* owned */
    soffa_msg_view_t view;          /* of msg */
} soffa_policy_ref_t;

/*  The kinds of key a record is found by (the first byte of its reference
 *  key in the store; the values are part of the store format). */
typedef enum {
    SOFFA_REF_NONE = 0,
    SOFFA_REF_SIGNAL = 'M',       /* a school signal, by its message id */
    SOFFA_REF_REFERRAL = 'R',     /* a referral, by its referral id */
    SOFFA_REF_REPORT = 'C',       /* a report of concern, by its report id */
    SOFFA_REF_CONSENT = 'K',      /* a recorded consent, by its consent id */
    SOFFA_REF_WITHDRAWAL = 'W',   /* the withdrawal of a consent, by the consent id */
    SOFFA_REF_ACK = 'A',          /* the acknowledgement of a signal, by the signal's id */
    SOFFA_REF_STATUS = 'S',       /* a status of a referral, by the referral id */
    SOFFA_REF_BY_CONSENT = 'X',   /* the referrals resting on a consent (shared: + seq) */
    SOFFA_REF_SOCIAL = 'Z',       /* a message social services sent or was sent, by its message id */
    SOFFA_REF_CASE = 'Q',         /* the events of a KAA case, by its case id (shared: + seq) */
} soffa_ref_kind_t;

/*  Name of a reference kind for people ("referral"). */
const char *soffa_ref_kind_name(soffa_ref_kind_t kind);

/*  Lookup of a record by reference kind and 16-byte id. Returns SOFFA_OK
 *  (out filled, release with soffa_policy_ref_fini), SOFFA_ERR_NOT_FOUND,
 *  or another error. */
typedef soffa_err_t (*soffa_policy_find_fn)(void *ctx, soffa_ref_kind_t kind, const uint8_t id[16],
                                            soffa_policy_ref_t *out);

/*  Receipts: the answer a record waits for, or gives. */
typedef enum {
    SOFFA_RECEIPT_NONE = 0,
    SOFFA_RECEIPT_ACK = 'A',      /* a signal waits for the KAA's acknowledgement */
    SOFFA_RECEIPT_STATUS = 'S',   /* a referral waits for the agency's status */
} soffa_receipt_t;

#define SOFFA_POLICY_AWAIT_ACK SOFFA_RECEIPT_ACK
#define SOFFA_POLICY_AWAIT_STATUS SOFFA_RECEIPT_STATUS

/*  The legal basis a message of `type` from `role` must rest on
 *  (SOFFA_ROLE_NONE: the basis of any row of the type); SOFFA_LB_NONE when
 *  no row allows it. The command line asks this for its default. */
soffa_legal_basis_t soffa_policy_basis(soffa_msg_type_t type, soffa_role_t role);

/*  The i-th allowed route of the table (type and sender role); false past
 *  the end. For tests and documentation. */
bool soffa_policy_route_at(size_t i, soffa_msg_type_t *type, soffa_role_t *role);

/*  The receipt a message of `type` waits for, and the receipt it gives. */
soffa_receipt_t soffa_policy_awaits(soffa_msg_type_t type);
soffa_receipt_t soffa_policy_gives(soffa_msg_type_t type);

/*  The outcome of a decision that allows the message. */
typedef struct {
    char mailbox[SOFFA_NAME_MAX];                 /* destination */
    soffa_store_ref_t refs[SOFFA_STORE_REFS];     /* keys to index the record under */
    size_t n_refs;
    char awaits;                                  /* the receipt this record awaits (0: none) */
    uint8_t awaits_id[16];                        /* ... named by this id */
    char answers;                                 /* the receipt this record gives (0: none) */
    uint8_t answers_id[16];                       /* ... for this id */
} soffa_policy_decision_t;

/*  How far back an event date may lie, by default (issue 13, rule 3): half
 *  a year for every message, which holds the longest school term (the
 *  spring term, early January to mid June) and a report at its end about an
 *  absence that began on its first day; a month for a report of concern,
 *  which is made at once (SoL 14:1), so its date is the day it is filed. */
#define SOFFA_POLICY_EVENT_MAX_DAYS 183
#define SOFFA_POLICY_CONCERN_MAX_DAYS 30

/*  A KAA case as the broker's derived state records it (DOMAIN.md §5.4):
 *  the case a case event names, filled by the broker before it decides. */
typedef struct {
    bool known;                    /* a case is recorded under the message's case id */
    bool open;                     /* ... it is open (not closed, or reopened since) */
    bool same_person;              /* ... it is about the message's young person (identity changes followed) */
    char kommun[5];                /* ... the municipality whose KAA holds it */
    uint64_t closed_seq;           /* closed: the record that closed it */
    uint32_t closed_on;            /* closed: the day it was closed, yyyymmdd */
    uint32_t failed_attempts;      /* contact attempts since the opening or the last REACHED */
    uint32_t channels;             /* bit (1 << channel) of each of those attempts */
    bool person_has_open;          /* the young person has an open case (another id) with the sender's KAA */
    char team[17];                 /* ... the team holding it ("" for a KAA without teams) */
    char owner[33];                /* ... its contact person's staff reference ("" before one is assigned) */
} soffa_policy_case_t;

struct soffa_teams;

/*  What the broker knows beyond the message itself, and the settings the
 *  decision applies. */
typedef struct {
    bool subject_protected;                       /* an earlier message marked the subject protected */
    const soffa_terms_t *terms;                   /* the sensitive-term list (borrowed). Without it, free text
                                                   * that must be screened is refused (INTERNAL): never skipped */
    uint32_t event_max_days;                      /* days back a date may lie; 0: SOFFA_POLICY_EVENT_MAX_DAYS */
    uint32_t concern_max_days;                    /* ... a report of concern's; 0: SOFFA_POLICY_CONCERN_MAX_DAYS */
    soffa_policy_case_t kase;                     /* case events: the case named */
    /* An identity change: what the broker's alias map says of its numbers. */
    bool old_replaced;                            /* the old number was replaced before ... */
    bool old_replaced_by_new;                     /* ... by this very new number */
    bool new_replaced;                            /* the new number was itself replaced by a later one */
    bool old_known_here;                          /* the sender's KAA holds records under the old number
                                                   * (its inbox or journal): it knows whom it names */
    /* The routine of contact attempts before NOT_REACHED may be recorded
     * (0: SOFFA_POLICY_NOT_REACHED_ATTEMPTS / _CHANNELS). */
    uint32_t not_reached_attempts;
    uint32_t not_reached_channels;
    /* The alias map: true if the two identity numbers name the same person
     * (one replaced the other). NULL: only equal numbers do. */
    bool (*same_person)(void *ctx, const char *a, const char *b);
    /* KAA teams (issue 19, item 4). teams: the municipalities that split
     * their KAA (borrowed; NULL: none does). case_team: the team holding
     * the young person's latest open case with kommun's KAA ("" for none).
     * agent_team: the team of a configured agent ("" for none or unknown).
     * NULL callbacks: no case and no agent has a team. */
    const struct soffa_teams *teams;
    void (*case_team)(void *ctx, const char *subject_id, const char *kommun, char out[17]);
    void (*agent_team)(void *ctx, const char *agent, char out[17]);
    /* The configured provider agents (issue 19): the i-th of municipality
     * kommun, NULL past the end. NULL: none is configured. */
    const soffa_identity_t *(*provider_at)(void *ctx, const char *kommun, size_t i);
    void *ctx;
} soffa_policy_facts_t;

#define SOFFA_POLICY_NOT_REACHED_ATTEMPTS 3
#define SOFFA_POLICY_NOT_REACHED_CHANNELS 2

/*  The inbox of an identity ("kaa/1419"), or its journal. */
void soffa_policy_inbox(const soffa_identity_t *id, char out[SOFFA_NAME_MAX]);
void soffa_policy_journal(const soffa_identity_t *id, char out[SOFFA_NAME_MAX]);

/*  The inbox of kommun's KAA for a message about the young person of v
 *  (issue 19, item 4): kaa/K when K has no teams; else the team holding
 *  the young person's open case, else `team` (may be NULL or ""), else the
 *  team the municipality's rule gives v's school unit or district. facts
 *  may be NULL (no teams). */
void soffa_policy_kaa_inbox(const soffa_policy_facts_t *facts, const char *kommun, const soffa_msg_view_t *v,
                            const char *team, char out[SOFFA_NAME_MAX]);

/*  True if an identity may read mailbox (its inbox; audit: its scope). */
bool soffa_policy_may_read(const soffa_identity_t *id, const char *mailbox);

/*  True if an audit identity may replay mailbox (scope patterns, fnmatch). */
bool soffa_policy_may_replay(const soffa_identity_t *id, const char *mailbox);

/*  True if the message type needs records looked up (answers, referrals,
 *  consents): the broker commits pending writes before deciding those. */
bool soffa_policy_needs_lookup(soffa_msg_type_t type);

/*  Decides a validated message from `sender`. today is the date consents
 *  and ages are judged on: the broker's own date of receipt in Stockholm,
 *  never a date the message gives. facts (may be NULL: no memory, default
 *  limits, no term list) what the broker knows and applies. Returns
 *  SOFFA_OK with *out filled, or the refusal (SOFFA_ERR_POLICY,
 *  SOFFA_ERR_LEGAL_BASIS, SOFFA_ERR_CONSENT, SOFFA_ERR_AGE,
 *  SOFFA_ERR_PROTECTED, SOFFA_ERR_NOT_AUTHORISED, SOFFA_ERR_NOT_FOUND,
 *  SOFFA_ERR_EXISTS, SOFFA_ERR_BAD_FIELD, SOFFA_ERR_SENSITIVE_TEXT,
 *  SOFFA_ERR_SOCIAL_SECRECY, SOFFA_ERR_INTERNAL when free text must be
 *  screened and facts has no term list) with `why` for the sender. */
soffa_err_t soffa_policy_decide(const soffa_identity_t *sender, const soffa_msg_t *msg,
                                soffa_date_t today, const soffa_policy_facts_t *facts,
                                soffa_policy_find_fn find, void *ctx, soffa_policy_decision_t *out,
                                char *why, size_t whylen);

/*  The free text of msg the broker screens for sensitive data (issue 13,
 *  rule 5): an at-risk notice's note (bound for a KAA) and a referral's
 *  summary unless it goes to social services (where the consent's scope
 *  governs it); never a report of concern's description. NULL when there is
 *  none to screen; *field (may be NULL) gets the field's name. Both are
 *  borrowed from msg. The command line asks this to warn before sending. */
const char *soffa_policy_text_to_screen(const soffa_msg_t *msg, const char **field);

/*  True if mailbox is an agent's inbox (kaa/, social/, af/, school/):
 *  records waiting there with nobody reading are worth a warning. The
 *  broker's own mailboxes (journals, audit/...) are not. */
bool soffa_policy_is_inbox(const char *mailbox);

/*  True if records of `type` are looked at again when delivered (they may
 *  rest on a consent): the broker decodes only these at delivery. */
bool soffa_policy_delivery_checked(soffa_msg_type_t type);

/*  Whether a stored record (v, written by a `sender_role` agent into
 *  `mailbox`) may still be delivered: every record that rests on a consent
 *  (an at-risk notice, a referral, status feedback beyond RECEIVED,
 *  a year-9 handover, the KAA's answer to an early warning beyond ACCEPTED
 *  and NOT_IN_TARGET_GROUP, a KAA's
 *  case record handed on to another KAA under a consent) needs that consent
 *  to exist, be valid today and not be withdrawn; a referral also must not
 *  have expired. Everything else may. facts (may be NULL) gives same_person. */
bool soffa_policy_deliverable(const soffa_msg_view_t *v, soffa_role_t sender_role, const char *mailbox,
                              soffa_date_t today, const soffa_policy_facts_t *facts, soffa_policy_find_fn find,
                              void *ctx);

/* ---- Data controllers (issue 13, rule 11) ---- */

/*  The data controller whose records mailbox holds: the municipality
 *  ("1419") for its KAA's and social services' mailboxes and its access
 *  log, "af" for Arbetsförmedlingen's, "school/A" for school agent A's, and
 *  "soffa" (the operator) for the broker's own (the old shared audit/access).
 *  "" for the signed checkpoints, which hold nobody's personal data. */
void soffa_policy_controller(const char *mailbox, char out[SOFFA_NAME_MAX]);

/*  The access log of a controller: "audit/access/" + controller. */
void soffa_policy_access_mailbox(const char *controller, char out[SOFFA_NAME_MAX]);

/*  Checks an auditor's scope against the data controllers (probing every
 *  municipality's mailboxes and those of the `n` configured agents `all`):
 *  sets audit->controller to the one controller it covers, or refuses a
 *  scope that covers several unless audit->span_controllers is set (then
 *  controller is ""). Returns SOFFA_OK, or SOFFA_ERR_CONFIG with `why`
 *  naming two controllers it covers (or that it covers none). */
soffa_err_t soffa_policy_scope_check(soffa_identity_t *audit, const soffa_identity_t *all, size_t n, char *why,
                                     size_t whylen);

/*  Releases what a lookup filled in. */
void soffa_policy_ref_fini(soffa_policy_ref_t *ref);

#endif
