/*  soffa_agent_outbox: messages committed before they are answered, sent
 *  in a window, kept until the broker has the last word (see
 *  soffa_agent_outbox.h).
 */
#include "soffa_agent_outbox.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_agent_inbox.h"
#include "soffa_agent_int.h"
#include "soffa_log.h"
#include "soffa_msg.h"
#include "soffa_policy.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

/* ---- Sending ------------------------------------------------------------------------------- */

static int
s_send_one(void *ctx, uint64_t local_id, const uint8_t msg_id[16], const uint8_t *msg, size_t len)
{
    (void) msg_id;
    soffa_agent_t *self = ctx;
    if (self->outbox.n_flight >= SOFFA_AGENT_OUT_WINDOW)
        return 1;
    soffa_frame_t p = {.type = SOFFA_FRAME_PUBLISH, .tag = local_id, .data = msg, .data_len = len};
    if (soffa_client_send(self->session.client, &p) != SOFFA_OK)
        return 1;
    self->outbox.flight[self->outbox.n_flight++] = (soffa_agent_flight_t) {local_id, soffa_mono_us()};
    self->outbox.next = local_id;
    return 0;
}

void
soffa_agent_outbox_send(soffa_agent_t *self)
{
    if (!soffa_agent_online(self) || self->outbox.n_flight >= SOFFA_AGENT_OUT_WINDOW || soffa_mono_us() < self->outbox.resend_at)
        return;
    soffa_box_outbox_scan(self->box, self->outbox.next, s_send_one, self);
}

static bool
s_flight_take(soffa_agent_t *self, uint64_t local_id)
{
    for (size_t i = 0; i < self->outbox.n_flight; i++) {
        if (self->outbox.flight[i].local_id == local_id) {
            self->outbox.flight[i] = self->outbox.flight[--self->outbox.n_flight];
            return true;
        }
    }
    return false;
}

typedef struct {
    uint64_t local_id;
    uint8_t msg_id[16];
    bool found;
    bool awaits;           /* the message expects an answer */
    uint8_t awaited[16];   /* the id that answer will name */
    uint32_t type;
} s_find_out_t;

static int
s_find_out(void *ctx, uint64_t local_id, const uint8_t msg_id[16], const uint8_t *msg, size_t len)
{
    s_find_out_t *f = ctx;
    if (local_id != f->local_id)
        return 1;
    memcpy(f->msg_id, msg_id, 16);
    f->found = true;
    soffa_msg_t *m = NULL;
    if (soffa_msg_decode(msg, len, &m) == SOFFA_OK) {
        soffa_msg_view_t v;
        soffa_msg_view(m, &v);
        f->type = (uint32_t) v.type;
        /* The policy table says what waits for an answer: a signal (an
         * early warning too) for its acknowledgement, named by its message
         * id; a referral for its status, named by the referral id. */
        soffa_receipt_t awaits = soffa_policy_awaits(v.type);
        const uint8_t *aw = awaits == SOFFA_RECEIPT_ACK      ? v.message_id
                          : awaits == SOFFA_RECEIPT_STATUS ? v.ref_id
                                                           : NULL;
        if (aw) {
            memcpy(f->awaited, aw, 16);
            f->awaits = true;
        }
        soffa_msg_destroy(&m);
    }
    return 1;
}

/* Codes that say "try again later" rather than "never". */
static bool
s_transient(uint32_t code)
{
    switch (code) {
    case SOFFA_ERR_STORE_FULL:
    case SOFFA_ERR_DISK_FULL:
    case SOFFA_ERR_STORE_IO:
    case SOFFA_ERR_NOMEM:
    case SOFFA_ERR_UNAVAILABLE:
    case SOFFA_ERR_TIMEOUT:
    case SOFFA_ERR_INTERNAL:
    case SOFFA_ERR_TRANSPORT:
    case SOFFA_ERR_PROTOCOL_STATE: return true;
    default: return false;
    }
}

void
soffa_agent_outbox_answer(soffa_agent_t *self, const soffa_frame_t *f)
{
    if (!s_flight_take(self, f->tag))
        return;   /* an answer to a resend we already handled */
    s_find_out_t fo = {.local_id = f->tag};
    soffa_box_outbox_scan(self->box, f->tag - 1, s_find_out, &fo);
    if (!fo.found)
        return;
    soffa_agent_waiter_t *w = soffa_agent_reply_find(self, SOFFA_AGENT_WAIT_SEND, f->tag);
    if (f->type == SOFFA_FRAME_ERROR && s_transient(f->code)) {
        soffa_warn("broker could not take outbox entry %llu yet (%s): kept, will retry", (unsigned long long) f->tag,
                   f->text);
        /* Try the whole outbox again after a pause (a full store, say):
         * the broker is not hammered meanwhile. */
        soffa_agent_outbox_rewind(self);
        self->outbox.resend_at = soffa_mono_us() + 1000000;
        if (w)
            soffa_agent_reply_done(w, json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "state", "queued", "note",
                                             "the broker cannot take it yet; it stays in the outbox and is retried",
                                             "reason", f->text));
        return;
    }
    soffa_box_sent_t r = {.at_us = soffa_now_us()};
    char mid[SOFFA_UUID_STR];
    soffa_uuid_format(fo.msg_id, mid);
    if (f->type == SOFFA_FRAME_PUBLISH_ACK && fo.awaits) {
        /* A signal awaits its acknowledgement, a referral its receipt. */
        soffa_box_await_t aw = {.type = fo.type, .sent_us = r.at_us};
        memcpy(aw.msg_id, fo.msg_id, 16);
        soffa_box_await_put(self->box, fo.awaited, &aw);
    }
    if (f->type == SOFFA_FRAME_PUBLISH_ACK) {
        r.seq = f->seq;
        snprintf(r.mailbox, sizeof r.mailbox, "%s", f->mailbox);
        soffa_info("message %s accepted as seq %llu for %s%s", mid, (unsigned long long) f->seq, f->mailbox,
                   f->duplicate ? " (it had arrived before)" : "");
    } else {
        r.code = f->code ? f->code : SOFFA_ERR_INTERNAL;
        snprintf(r.reason, sizeof r.reason, "%s", f->text);
        self->outbox.refused++;
        soffa_warn("message %s refused by the broker: %s: %s", mid, soffa_errname((soffa_err_t) r.code), f->text);
    }
    soffa_err_t rc = soffa_box_outbox_done(self->box, f->tag, fo.msg_id, &r);
    if (rc != SOFFA_OK)
        soffa_error("outbox entry %llu could not be closed: %s", (unsigned long long) f->tag, soffa_strerror(rc));
    self->outbox.gen++;
    soffa_agent_reply_wake_watchers(self);
    if (w) {
        if (f->type == SOFFA_FRAME_PUBLISH_ACK)
            soffa_agent_reply_done(w, json_pack("{s:b, s:s, s:s, s:I, s:s, s:b}", "ok", 1, "state", "accepted",
                                             "message_id", mid, "seq", (json_int_t) f->seq, "mailbox", f->mailbox,
                                             "duplicate", f->duplicate));
        else
            soffa_agent_reply_done(w, soffa_agent_reply_fail((soffa_err_t) r.code, f->text));
    }
}

/* ---- Awaited answers ------------------------------------------------------------------------- */

typedef struct {
    soffa_agent_t *self;
    int64_t now;
    uint64_t signals, referrals;
    json_t *list;              /* overdue entries, or NULL to count only */
} s_overdue_t;

static int
s_overdue_one(void *ctx, const uint8_t awaited[16], const soffa_box_await_t *a)
{
    (void) awaited;
    s_overdue_t *o = ctx;
    if (a->answered_us)
        return 0;
    /* What the message waits for is the policy table's word (a referral
     * waits for a status, a signal for an acknowledgement). */
    bool referral = soffa_policy_awaits((soffa_msg_type_t) a->type) == SOFFA_RECEIPT_STATUS;
    bool warning = a->type == SOFFA_MT_AT_RISK_NOTICE || a->type == SOFFA_MT_YEAR9_HANDOVER;
    const char *what = referral ? "receipt" : warning ? "answer from the KAA" : "acknowledgement";
    int64_t due = (referral ? o->self->cfg.referral_receipt_due : o->self->cfg.signal_ack_due) * 1000;
    if (o->now - a->sent_us < due)
        return 0;
    if (referral)
        o->referrals++;
    else
        o->signals++;
    if (o->list) {
        char mid[SOFFA_UUID_STR], ts[32];
        soffa_uuid_format(a->msg_id, mid);
        soffa_time_format(a->sent_us, ts);
        json_array_append_new(o->list, json_pack("{s:s, s:s, s:s, s:s, s:I}", "message_id", mid, "type",
                                                 soffa_msg_type_name((soffa_msg_type_t) a->type), "sent_at", ts,
                                                 "waiting_for", what,
                                                 "overdue_s", (json_int_t) ((o->now - a->sent_us - due) / 1000000)));
    }
    return 0;
}

void
soffa_agent_outbox_overdue(soffa_agent_t *self, json_t *list, uint64_t *signals, uint64_t *referrals)
{
    s_overdue_t o = {self, soffa_now_us(), 0, 0, list};
    soffa_box_await_scan(self->box, s_overdue_one, &o);
    if (signals)
        *signals = o.signals;
    if (referrals)
        *referrals = o.referrals;
}

/* ---- Taking a message in --------------------------------------------------------------------- */

/* An answer copies the subject, thread and consent of the inbox record
 * `re` names, and the payload's reference to it. Returns false when there
 * is no such record. */
static bool
s_copy_from_answered(soffa_agent_t *self, json_t *m, const char *re)
{
    json_t *orig = soffa_agent_inbox_lookup(self, re);
    json_t *om = json_object_get(orig, "message");
    if (!om) {
        json_decref(orig);
        return false;
    }
    if (!json_object_get(m, "subject"))
        json_object_set(m, "subject", json_object_get(om, "subject"));
    if (!json_object_get(m, "correlation_id") && json_object_get(om, "correlation_id"))
        json_object_set(m, "correlation_id", json_object_get(om, "correlation_id"));
    if (!json_object_get(m, "causation_id"))
        json_object_set(m, "causation_id", json_object_get(om, "message_id"));
    if (!json_object_get(m, "consent_id") && json_object_get(om, "consent_id"))
        json_object_set(m, "consent_id", json_object_get(om, "consent_id"));
    /* The payload's reference to what it answers. */
    const char *key;
    json_t *pl;
    json_object_foreach(m, key, pl) {
        if (soffa_msg_type_from_name(key) == SOFFA_MT_NONE || !json_is_object(pl))
            continue;
        if (!json_object_get(pl, "signal_id") && soffa_msg_type_from_name(key) == SOFFA_MT_SIGNAL_ACKNOWLEDGED)
            json_object_set(pl, "signal_id", json_object_get(om, "message_id"));
        if (!json_object_get(pl, "warning_id") && soffa_msg_type_from_name(key) == SOFFA_MT_EARLY_WARNING_ANSWERED)
            json_object_set(pl, "warning_id", json_object_get(om, "message_id"));
        const char *oname;
        json_t *opl;
        json_object_foreach(om, oname, opl) {
            if (soffa_msg_type_from_name(oname) == SOFFA_MT_NONE)
                continue;
            /* Only ids the answer's own type has, and never the id a
             * message introduces itself (a new referral's id). */
            static const char *const refs[] = {"referral_id", "report_id", "case_id"};
            for (size_t r = 0; r < 3; r++)
                if (!json_object_get(pl, refs[r]) && json_object_get(opl, refs[r])
                    && soffa_msg_has_field(key, refs[r]) && soffa_msg_type_from_name(key) != SOFFA_MT_REFERRAL_SENT)
                    json_object_set(pl, refs[r], json_object_get(opl, refs[r]));
        }
    }
    json_decref(orig);
    return true;
}

/* What a sender need not say: a fresh message id, the thread (the message
 * itself, unless it follows another), the schema version, the times. */
static void
s_complete(json_t *m, int64_t now)
{
    if (!json_object_get(m, "message_id")) {
        uint8_t id[16];
        char s[SOFFA_UUID_STR];
        soffa_uuid7(id);
        soffa_uuid_format(id, s);
        json_object_set_new(m, "message_id", json_string(s));
    }
    if (!json_object_get(m, "correlation_id"))
        json_object_set(m, "correlation_id", json_object_get(m, "message_id"));
    if (!json_object_get(m, "schema_version"))
        json_object_set_new(m, "schema_version", json_string("1.0"));
    if (!json_object_get(m, "occurred_at_us"))
        json_object_set_new(m, "occurred_at_us", json_integer(now));
    json_object_set_new(m, "sent_at_us", json_integer(now));
}

/* Reads, validates and encodes the message (takes m). On SOFFA_OK *buf
 * (the caller frees it), *len, its id and type are set; else why says what
 * is wrong. */
static soffa_err_t
s_encode(json_t *m, int64_t now, uint8_t **buf, size_t *len, uint8_t mid[16], soffa_msg_type_t *type, char *why,
         size_t whylen)
{
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = text ? soffa_msg_from_json(text, &msg, why, whylen) : SOFFA_ERR_NOMEM;
    free(text);
    if (rc == SOFFA_OK)
        rc = soffa_msg_validate(msg, now, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_msg_encode(msg, buf, len);
    if (rc == SOFFA_OK) {
        soffa_msg_view_t v;
        soffa_msg_view(msg, &v);
        memcpy(mid, v.message_id, 16);
        *type = v.type;
    }
    soffa_msg_destroy(&msg);
    return rc;
}

void
soffa_agent_outbox_submit(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    json_t *m = json_object_get(req->body, "message");
    if (!json_is_object(m)) {
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_MALFORMED, "send needs a message object"));
        return;
    }
    m = json_deep_copy(m);
    const char *re = json_string_value(json_object_get(req->body, "re"));
    if (re && !s_copy_from_answered(self, m, re)) {
        json_decref(m);
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_NOT_FOUND, "no message with that id or sequence in this agent's inbox"));
        return;
    }
    int64_t now = soffa_now_us();
    s_complete(m, now);
    char why[300] = "";
    uint8_t *buf = NULL, mid[16];
    size_t len = 0;
    soffa_msg_type_t type = SOFFA_MT_NONE;
    soffa_err_t rc = s_encode(m, now, &buf, &len, mid, &type, why, sizeof why);
    if (rc != SOFFA_OK) {
        soffa_agent_reply(req, soffa_agent_reply_fail(rc, why));
        return;
    }
    uint64_t local_id;
    rc = soffa_box_outbox_put(self->box, mid, buf, len, &local_id);   /* durable from here */
    free(buf);
    if (rc != SOFFA_OK) {
        soffa_agent_reply(req, soffa_agent_reply_fail(rc, "the message could not be stored in the outbox; nothing was sent"));
        return;
    }
    char ms[SOFFA_UUID_STR];
    soffa_uuid_format(mid, ms);
    soffa_info("message %s (%s) stored in the outbox as entry %llu", ms, soffa_msg_type_name(type),
               (unsigned long long) local_id);
    self->outbox.gen++;
    soffa_agent_reply_wake_watchers(self);
    json_int_t wait_ms = json_integer_value(json_object_get(req->body, "wait_ms"));
    soffa_agent_waiter_t *w = wait_ms > 0 && soffa_agent_online(self)
                                  ? soffa_agent_reply_later(self, req, SOFFA_AGENT_WAIT_SEND, local_id,
                                                            (int) (wait_ms > 60000 ? 60000 : wait_ms))
                                  : NULL;
    if (w)
        memcpy(w->msg_id, mid, 16);
    else
        soffa_agent_reply(req, json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "state", "queued", "message_id", ms, "note",
                                         soffa_agent_online(self)
                                             ? "stored in the outbox; being sent"
                                             : "the broker is not reachable; kept in the outbox and sent when it is"));
    soffa_agent_outbox_send(self);
}

void
soffa_agent_outbox_rewind(soffa_agent_t *self)
{
    self->outbox.n_flight = 0;
    self->outbox.next = 0;
}

void
soffa_agent_outbox_tick(soffa_agent_t *self, int64_t now)
{
    /* Publishes unanswered for long are sent again (same id). */
    for (size_t i = 0; i < self->outbox.n_flight; i++) {
        if (now - self->outbox.flight[i].sent_at > SOFFA_AGENT_RESEND_US) {
            soffa_agent_outbox_rewind(self);
            break;
        }
    }
    soffa_agent_outbox_send(self);
}
