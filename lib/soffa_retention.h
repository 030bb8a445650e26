/*  soffa_retention: gallring: how long each kind of record is kept, from what.
 *
 *  Every record that carries personal data belongs to one retention class;
 *  `[retention]` (broker.ini and agent.ini) sets for each how long it is
 *  kept and from what: the message's date (the broker's receive time), the
 *  case's closure (a kaa_case_closed about the same young person; until one
 *  comes, the 20th birthday, when the KAA duty ends), or the young person's
 *  20th birthday. The defaults and the rule each follows are in the README
 *  ("Where personal data lives, and when it goes"). This module is the rules
 *  only: the store keeps the schedule, the broker and the agents run it.
 */
#ifndef SOFFA_RETENTION_H
#define SOFFA_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_envelope.h"
#include "soffa_err.h"
#include "soffa_msg.h"
#include "soffa_store.h"

typedef enum {
    SOFFA_RC_NONE = 0,              /* kept: checkpoints, disposal records */
    SOFFA_RC_SCHOOL_SIGNALS = 1,    /* enrolment, absence, at-risk, acknowledgements, a school's consents */
    SOFFA_RC_KAA_JOURNAL = 2,       /* the KAA's case events, consents, identity changes */
    SOFFA_RC_REFERRALS = 3,         /* referrals, their statuses and withdrawals */
    SOFFA_RC_CONCERN_REPORTS = 4,   /* concern reports and their feedback */
    SOFFA_RC_ACCESS_RECORDS = 5,    /* the broker's records of reads */
} soffa_retention_class_t;
#define SOFFA_RC_COUNT 6

typedef enum {
    SOFFA_RA_NONE = 0,
    SOFFA_RA_MESSAGE = 1,           /* the receive time */
    SOFFA_RA_CLOSURE = 2,           /* the young person's KAA case closed (until then: the 20th birthday) */
    SOFFA_RA_BIRTHDAY20 = 3,        /* the young person's 20th birthday (Stockholm midnight) */
} soffa_retention_anchor_t;

typedef struct {
    int64_t keep_ms;                /* how long after the anchor */
    soffa_retention_anchor_t anchor;
} soffa_retention_rule_t;

typedef struct {
    soffa_retention_rule_t rules[SOFFA_RC_COUNT];
    int64_t run_every_ms;           /* how often disposal runs (also at start) */
} soffa_retention_t;

/*  The defaults (README): school_signals 183d from message, kaa_journal 365d
 *  from closure, referrals 365d from message, concern_reports 90d from
 *  message, access_records 730d from message; run daily. */
void soffa_retention_defaults(soffa_retention_t *r);

/*  "school_signals" for SOFFA_RC_SCHOOL_SIGNALS (the [retention] key); "" for NONE. */
const char *soffa_retention_class_name(soffa_retention_class_t c);

/*  Parses "183d from message" (a duration as in the configuration: 90s,
 *  15m, 2h, 183d; then "from" and message, closure or birthday20). why says
 *  what was wrong. */
bool soffa_retention_parse(const char *text, soffa_retention_rule_t *out, char *why, size_t whylen);

/*  The rule as text ("183d from message"), as parse reads it. */
void soffa_retention_rule_text(const soffa_retention_rule_t *rule, char *out, size_t len);

/*  The class of a record: by its kind, message type and sender's role. */
soffa_retention_class_t soffa_retention_class_of(soffa_record_kind_t kind, uint32_t msg_type, soffa_role_t sender_role);

/*  When a record of class c runs out (Unix µs): received_us is its receive
 *  time, subject its canonical identity (or NULL). A closure-anchored class
 *  runs out from the 20th birthday until a closure reschedules it. A
 *  birthday that cannot be told (no subject) counts from the message. 0
 *  for SOFFA_RC_NONE (kept). */
int64_t soffa_retention_due(const soffa_retention_t *r, soffa_retention_class_t c, int64_t received_us,
                            const char *subject);

/*  For a closure at closed_us: when a closure-anchored record of class c of
 *  the same young person runs out; 0 when class c is not closure-anchored. */
int64_t soffa_retention_due_closed(const soffa_retention_t *r, soffa_retention_class_t c, int64_t closed_us);

/*  The schedule of one record for the store: its class, when it runs out,
 *  and for a case's closure (kaa_case_closed) when the young person's
 *  closure-anchored records run out; any other message (a reopening, a new
 *  signal) takes such a closure back (reopen). subject may be NULL. */
void soffa_retention_sched(const soffa_retention_t *r, soffa_record_kind_t kind, uint32_t msg_type, soffa_role_t role,
                           int64_t received_us, const char *subject, soffa_store_sched_t *out);

#endif
