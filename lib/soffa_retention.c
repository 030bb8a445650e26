/*  soffa_retention: the rules of gallring (see soffa_retention.h). */
#include "soffa_retention.h"

#include <stdio.h>
#include <string.h>

#include "soffa_cfg.h"
#include "soffa_id.h"
#include "soffa_time.h"

#define S_DAY_MS 86400000LL

static const char *const s_class_names[SOFFA_RC_COUNT] = {
    "", "school_signals", "kaa_journal", "referrals", "concern_reports", "access_records",
};
static const char *const s_anchor_names[] = {"", "message", "closure", "birthday20"};

void
soffa_retention_defaults(soffa_retention_t *r)
{
    memset(r, 0, sizeof *r);
    r->rules[SOFFA_RC_SCHOOL_SIGNALS] = (soffa_retention_rule_t) {183 * S_DAY_MS, SOFFA_RA_MESSAGE};
    r->rules[SOFFA_RC_KAA_JOURNAL] = (soffa_retention_rule_t) {365 * S_DAY_MS, SOFFA_RA_CLOSURE};
    r->rules[SOFFA_RC_REFERRALS] = (soffa_retention_rule_t) {365 * S_DAY_MS, SOFFA_RA_MESSAGE};
    r->rules[SOFFA_RC_CONCERN_REPORTS] = (soffa_retention_rule_t) {90 * S_DAY_MS, SOFFA_RA_MESSAGE};
    r->rules[SOFFA_RC_ACCESS_RECORDS] = (soffa_retention_rule_t) {730 * S_DAY_MS, SOFFA_RA_MESSAGE};
    r->run_every_ms = S_DAY_MS;
}

const char *
soffa_retention_class_name(soffa_retention_class_t c)
{
    return (unsigned) c < SOFFA_RC_COUNT ? s_class_names[c] : "";
}

bool
soffa_retention_parse(const char *text, soffa_retention_rule_t *out, char *why, size_t whylen)
{
    char dur[32], from[16], anchor[32], extra[8];
    int n = sscanf(text, "%31s %15s %31s %7s", dur, from, anchor, extra);
    int64_t ms;
    if (n != 3 || strcmp(from, "from") != 0 || !soffa_cfg_parse_duration(dur, &ms)) {
        snprintf(why, whylen, "'%s' is not a rule: write a duration, 'from' and an anchor, e.g. '183d from message' "
                              "(durations: 90s, 15m, 2h, 183d; anchors: message, closure, birthday20)", text);
        return false;
    }
    for (int a = SOFFA_RA_MESSAGE; a <= SOFFA_RA_BIRTHDAY20; a++)
        if (!strcmp(anchor, s_anchor_names[a])) {
            if (ms > 100 * 366 * S_DAY_MS) {
                snprintf(why, whylen, "'%s': at most 100 years", text);
                return false;
            }
            *out = (soffa_retention_rule_t) {ms, (soffa_retention_anchor_t) a};
            return true;
        }
    snprintf(why, whylen, "'%s': the anchor is message (the message's date), closure (the young person's KAA case "
                          "closed) or birthday20 (the 20th birthday), not '%s'", text, anchor);
    return false;
}

void
soffa_retention_rule_text(const soffa_retention_rule_t *rule, char *out, size_t len)
{
    int64_t ms = rule->keep_ms;
    const char *a = (unsigned) rule->anchor <= SOFFA_RA_BIRTHDAY20 ? s_anchor_names[rule->anchor] : "";
    if (ms % S_DAY_MS == 0)
        snprintf(out, len, "%lldd from %s", (long long) (ms / S_DAY_MS), a);
    else if (ms % 1000 == 0)
        snprintf(out, len, "%llds from %s", (long long) (ms / 1000), a);
    else
        snprintf(out, len, "%lldms from %s", (long long) ms, a);
}

soffa_retention_class_t
soffa_retention_class_of(soffa_record_kind_t kind, uint32_t msg_type, soffa_role_t sender_role)
{
    if (kind == SOFFA_RK_ACCESS)
        return SOFFA_RC_ACCESS_RECORDS;
    if (kind != SOFFA_RK_MESSAGE)
        return SOFFA_RC_NONE;
    switch ((soffa_msg_type_t) msg_type) {
    case SOFFA_MT_ENROLMENT_CHANGED:
    case SOFFA_MT_ABSENCE_REPORTED:
    case SOFFA_MT_AT_RISK_NOTICE:
    case SOFFA_MT_SIGNAL_ACKNOWLEDGED:
    /* The early warning (issue 19): the school's handover and not-started
     * signal, and the KAA's answer back to the school, are school signals. */
    case SOFFA_MT_YEAR9_HANDOVER:
    case SOFFA_MT_ADMISSION_NOT_STARTED:
    case SOFFA_MT_EARLY_WARNING_ANSWERED:
        return SOFFA_RC_SCHOOL_SIGNALS;
    case SOFFA_MT_CONSENT_RECORDED:
    case SOFFA_MT_CONSENT_WITHDRAWN:
        return sender_role == SOFFA_ROLE_SCHOOL ? SOFFA_RC_SCHOOL_SIGNALS : SOFFA_RC_KAA_JOURNAL;
    case SOFFA_MT_REFERRAL_SENT:
    case SOFFA_MT_REFERRAL_STATUS_CHANGED:
    case SOFFA_MT_REFERRAL_WITHDRAWN:
        return SOFFA_RC_REFERRALS;
    case SOFFA_MT_CONCERN_REPORT_FILED:
    case SOFFA_MT_CONCERN_REPORT_FEEDBACK:
        return SOFFA_RC_CONCERN_REPORTS;
    case SOFFA_MT_NONE:
        return SOFFA_RC_NONE;
    default:
        return SOFFA_RC_KAA_JOURNAL;   /* case events, identity changes */
    }
}

/* The start (Stockholm) of the 20th birthday of subject; 0 when it cannot
 * be told. */
static int64_t
s_birthday20(const char *subject)
{
    soffa_date_t b;
    if (!subject || !subject[0]
        || (soffa_id_birth_date(subject, &b) != SOFFA_OK && soffa_reserve_birth_date(subject, &b) != SOFFA_OK))
        return 0;
    b.year += 20;
    if (b.month == 2 && b.day == 29 && !soffa_date_valid(b.year, 2, 29)) {
        b.month = 3;   /* born on a leap day: 1 March in a common year */
        b.day = 1;
    }
    return soffa_date_local_start_us(b);
}

int64_t
soffa_retention_due(const soffa_retention_t *r, soffa_retention_class_t c, int64_t received_us, const char *subject)
{
    if (c <= SOFFA_RC_NONE || c >= SOFFA_RC_COUNT || r->rules[c].anchor == SOFFA_RA_NONE)
        return 0;
    const soffa_retention_rule_t *rule = &r->rules[c];
    int64_t anchor = received_us;
    if (rule->anchor != SOFFA_RA_MESSAGE) {
        int64_t b = s_birthday20(subject);
        if (b)
            anchor = b;
    }
    int64_t due = anchor + rule->keep_ms * 1000;
    return due > 0 ? due : 1;
}

int64_t
soffa_retention_due_closed(const soffa_retention_t *r, soffa_retention_class_t c, int64_t closed_us)
{
    if (c <= SOFFA_RC_NONE || c >= SOFFA_RC_COUNT || r->rules[c].anchor != SOFFA_RA_CLOSURE)
        return 0;
    int64_t due = closed_us + r->rules[c].keep_ms * 1000;
    return due > 0 ? due : 1;
}

void
soffa_retention_sched(const soffa_retention_t *r, soffa_record_kind_t kind, uint32_t msg_type, soffa_role_t role,
                      int64_t received_us, const char *subject, soffa_store_sched_t *out)
{
    memset(out, 0, sizeof *out);
    soffa_retention_class_t c = soffa_retention_class_of(kind, msg_type, role);
    out->retention_class = (uint8_t) c;
    out->due_us = soffa_retention_due(r, c, received_us, subject);
    if (kind == SOFFA_RK_MESSAGE && msg_type == SOFFA_MT_KAA_CASE_CLOSED) {
        out->reschedule = true;
        for (int k = 1; k < SOFFA_RC_COUNT && k < SOFFA_STORE_CLASSES; k++)
            out->reschedule_due[k] = soffa_retention_due_closed(r, (soffa_retention_class_t) k, received_us);
    } else if (kind == SOFFA_RK_MESSAGE) {
        /* A reopening, or anything else about the young person after a
         * closure: the case goes on, and its records do not run out from
         * a closure that no longer holds. */
        out->reopen = true;
    }
}
