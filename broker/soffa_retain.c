/*  soffa_retain: gallring in the broker (see soffa_retain.h). */
#include "soffa_retain.h"

#include <string.h>

#include "soffa_log.h"

#include "soffa_commit.h"
#include "soffa_delivery.h"

const char *
soffa_retain_inbox_of(void *ctx, const char *agent)
{
    soffa_broker_t *self = ctx;
    static char inbox[SOFFA_NAME_MAX];   /* the main thread alone asks */
    const soffa_identity_t *id = soffa_map_sget(self->by_name, agent);
    inbox[0] = '\0';
    if (id)
        soffa_policy_inbox(id, inbox);
    return inbox;
}

void
soffa_retain_opts(soffa_broker_t *self, soffa_store_dispose_opts_t *o, char texts[SOFFA_RC_COUNT][64])
{
    memset(o, 0, sizeof *o);
    o->now_us = soffa_now_us();
    for (int c = 1; c < SOFFA_RC_COUNT && c < SOFFA_STORE_CLASSES; c++) {
        soffa_retention_rule_text(&self->retention.rules[c], texts[c], 64);
        o->rule_text[c] = texts[c];
    }
    o->sender = self->cfg.name;
    o->inbox_of = soffa_retain_inbox_of;
    o->ctx = self;
    o->tomb_keep_us = self->retention.rules[SOFFA_RC_ACCESS_RECORDS].keep_ms * 1000;
}

soffa_err_t
soffa_retain_run(soffa_broker_t *self)
{
    /* The store is the main thread's alone while this runs. */
    soffa_commit(self);
    char texts[SOFFA_RC_COUNT][64];
    soffa_store_dispose_opts_t o;
    soffa_retain_opts(self, &o, texts);
    uint64_t records = 0, subjects = 0, notices = 0, first = 0, last = 0;
    soffa_err_t rc = SOFFA_OK;
    for (int round = 0; round < 1000; round++) {
        soffa_store_dispose_report_t rep;
        rc = soffa_store_dispose(self->store, &o, &rep);
        if (rc != SOFFA_OK) {
            soffa_error("gallring failed: %s; nothing of this run was disposed of, the next run tries again",
                        soffa_strerror(rc));
            break;
        }
        records += rep.records;
        subjects += rep.subjects;
        notices += rep.notices;
        if (rep.first_seq && !first)
            first = rep.first_seq;
        if (rep.last_seq)
            last = rep.last_seq;
        int64_t next = soffa_store_next_due(self->store);
        if (rep.records == 0 || !next || next > o.now_us)
            break;
    }
    if (records) {
        /* The disposal records are new records of their mailboxes. */
        soffa_store_mailboxes(self->store, soffa_delivery_load_mailbox, self);
        soffa_info("gallring: %llu record(s) disposed of, %llu young person(s) with nothing left; %llu disposal "
                   "record(s) at seq %llu..%llu",
                   (unsigned long long) records, (unsigned long long) subjects, (unsigned long long) notices,
                   (unsigned long long) first, (unsigned long long) last);
    }
    return rc;
}

void
soffa_retain_tick(soffa_broker_t *self)
{
    int64_t now = soffa_mono_us();
    if (now < self->next_dispose)
        return;
    soffa_retain_run(self);
    self->next_dispose = soffa_mono_us() + self->retention.run_every_ms * 1000;
}

void
soffa_retain_upgrade_sched(void *ctx, const uint8_t *env, size_t len, soffa_store_sched_t *out)
{
    soffa_broker_t *self = ctx;
    memset(out, 0, sizeof *out);
    soffa_envelope_t e;
    if (soffa_envelope_decode(env, len, &e) != SOFFA_OK)
        return;
    char subject[13] = "";
    if (e.kind == SOFFA_RK_MESSAGE) {
        soffa_msg_t *m = NULL;
        if (soffa_msg_decode(e.body, e.body_len, &m) == SOFFA_OK) {
            soffa_msg_view_t v;
            soffa_msg_view(m, &v);
            if (v.subject_id)
                snprintf(subject, sizeof subject, "%s", v.subject_id);
            soffa_msg_destroy(&m);
        }
    }
    soffa_retention_sched(&self->retention, e.kind, e.msg_type, e.sender_role, e.received_at_us,
                          subject[0] ? subject : NULL, out);
    soffa_envelope_fini(&e);
}
