/*  soffa_agent_session: the broker session, its states, and the frames the
 *  broker sends (see soffa_agent_session.h for the states and the grammar).
 */
#include "soffa_agent_session.h"

#include <string.h>

#include "soffa_agent_inbox.h"
#include "soffa_agent_int.h"
#include "soffa_agent_outbox.h"
#include "soffa_agent_reply.h"
#include "soffa_log.h"
#include "soffa_record.h"
#include "soffa_time.h"

#define S_BATCH 256   /* deliveries stored in one inbox transaction */

/* ---- States ------------------------------------------------------------------------------- */

const char *
soffa_agent_session_state_name(soffa_agent_conn_t state)
{
    switch (state) {
#define S_STATE_NAME(name, text)                                                                                       \
    case SOFFA_AGENT_CONN_##name: return text;
        SOFFA_AGENT_CONN_STATES(S_STATE_NAME)
#undef S_STATE_NAME
    }
    return "?";
}

/* The one place the connection state changes. */
static void
s_set_state(soffa_agent_t *self, soffa_agent_conn_t to, const char *why)
{
    soffa_agent_conn_t from = self->session.state;
    if (from == to)
        return;
    self->session.state = to;
    soffa_debug("broker session %s -> %s: %s", soffa_agent_session_state_name(from), soffa_agent_session_state_name(to),
                why);
}

/* Ends the session (to OFFLINE or CLOSED); the next connect is tried after
 * the backoff, unless the caller says otherwise. */
static void
s_disconnect(soffa_agent_t *self, soffa_agent_conn_t to, const char *why)
{
    if (!soffa_agent_online(self))
        return;
    soffa_warn("disconnected from the broker: %s", why);
    soffa_client_close(&self->session.client);
    s_set_state(self, to, why);
    self->session.status_receipt = 0;
    soffa_agent_outbox_rewind(self);
    self->session.next_connect = soffa_mono_us() + self->session.backoff_ms * 1000;
    /* A replay or status cannot survive the session; a sent message keeps
     * its waiter: it goes out again after the reconnect, and its answer (or
     * the waiter's deadline) ends the wait. */
    soffa_agent_reply_session_lost(self);
}

/* Greets the broker; on success subscribes to our mailbox and sends the
 * outbox, else doubles the backoff. */
static void
s_connect(soffa_agent_t *self)
{
    /* The pair to try: listed endpoints and keys, one attempt per turn. */
    size_t total = self->n_brokers * self->n_broker_keys;
    self->session.endpoint = self->brokers[self->session.cand / self->n_broker_keys];
    memcpy(self->broker_pub, self->broker_keys[self->session.cand % self->n_broker_keys], 41);
    soffa_client_opts_t o = {.endpoint = self->session.endpoint, .server_public = self->broker_pub,
                             .public_key = self->pub, .secret_key = self->sec, .name = self->cfg.name,
                             .timeout_ms = 1000, .zmq_ctx = self->ctx};
    soffa_frame_t w;
    soffa_err_t rc = soffa_client_connect(&self->session.client, &o, &w);
    if (rc != SOFFA_OK && ++self->session.cand_tried < total) {
        /* Another endpoint or key is listed: it is tried on the next turn. */
        soffa_debug("broker %s with key %.8s... did not answer (%s); trying the next", self->session.endpoint,
                    self->broker_pub, soffa_strerror(rc));
        self->session.cand = (self->session.cand + 1) % total;
        s_set_state(self, SOFFA_AGENT_CONN_OFFLINE, "the broker is unreachable");
        self->session.next_connect = soffa_mono_us();
        return;
    }
    if (rc != SOFFA_OK) {
        self->session.cand_tried = 0;
        self->session.cand = (self->session.cand + 1) % total;
        const char *what = total > 1 ? "(no listed endpoint with any listed key)" : self->session.endpoint;
        if (self->session.backoff_ms >= self->cfg.reconnect_max_ms)
            soffa_debug("broker %s still unreachable (%s)", what, soffa_strerror(rc));
        else
            soffa_info("broker %s unreachable (%s); retrying in %lld ms", what,
                       rc == SOFFA_ERR_TIMEOUT ? "no answer; is it up, is broker_key its key, and is this agent's key "
                                                 "in its configuration?"
                                               : soffa_strerror(rc),
                       (long long) self->session.backoff_ms);
        s_set_state(self, SOFFA_AGENT_CONN_OFFLINE, "the broker is unreachable");
        self->session.next_connect = soffa_mono_us() + self->session.backoff_ms * 1000;
        self->session.backoff_ms = self->session.backoff_ms * 2 > self->cfg.reconnect_max_ms ? self->cfg.reconnect_max_ms
                                                                                              : self->session.backoff_ms * 2;
        return;
    }
    s_set_state(self, SOFFA_AGENT_CONN_ONLINE, "greeted");
    self->session.backoff_ms = 200;
    self->session.cand_tried = 0;   /* the pair that answered is tried first next time */
    self->session.role = w.role;
    /* What this site sends is scheduled by its role (a school's consents are school signals). */
    soffa_box_set_retention(self->box, &self->retention, w.role);
    snprintf(self->session.mailbox, sizeof self->session.mailbox, "%s", w.n_mailboxes ? w.mailboxes[0] : "");
    self->session.broker_heartbeat_ms = w.heartbeat_ms;
    soffa_frame_fini(&w);
    int64_t now = soffa_mono_us();
    self->session.last_heard = now;
    self->session.next_ping = now;
    soffa_info("connected to %s as %s (%s)%s%s%s%.8s%s", self->session.endpoint, self->cfg.name,
               soffa_role_name(self->session.role), self->session.mailbox[0] ? ", reading " : "", self->session.mailbox,
               total > 1 ? "; broker key " : "", total > 1 ? self->broker_pub : "", total > 1 ? "..." : "");
    if (self->session.mailbox[0]) {
        soffa_frame_t sub = {.type = SOFFA_FRAME_SUBSCRIBE, .credit = (uint32_t) self->cfg.window};
        snprintf(sub.mailbox, sizeof sub.mailbox, "%s", self->session.mailbox);
        soffa_client_send(self->session.client, &sub);
    }
    soffa_agent_outbox_send(self);
}

void
soffa_agent_session_tick(soffa_agent_t *self, int64_t now)
{
    if (!soffa_agent_online(self) && now >= self->session.next_connect)
        s_connect(self);
}

void
soffa_agent_session_heartbeat(soffa_agent_t *self, int64_t now)
{
    if (!soffa_agent_online(self))
        return;
    int64_t hb = self->cfg.heartbeat_ms;
    if (self->session.broker_heartbeat_ms && (int64_t) self->session.broker_heartbeat_ms / 2 < hb)
        hb = self->session.broker_heartbeat_ms / 2;
    if (now >= self->session.next_ping) {
        soffa_frame_t p = {.type = SOFFA_FRAME_PING, .tag = (uint64_t) now};
        soffa_client_send(self->session.client, &p);
        self->session.next_ping = now + hb * 1000;
    }
    if (now - self->session.last_heard > 3 * hb * 1000 + 500000)
        s_disconnect(self, SOFFA_AGENT_CONN_OFFLINE, "no answer to heartbeats");
}

void *
soffa_agent_session_socket(soffa_agent_t *self)
{
    return soffa_agent_online(self) ? soffa_client_socket(self->session.client) : NULL;
}

uint64_t
soffa_agent_session_next_tag(soffa_agent_t *self)
{
    return soffa_agent_online(self) ? soffa_client_next_tag(self->session.client) : 0;
}

soffa_err_t
soffa_agent_session_send(soffa_agent_t *self, const soffa_frame_t *f)
{
    if (!soffa_agent_online(self))
        return SOFFA_ERR_UNAVAILABLE;
    return soffa_client_send(self->session.client, f);
}

void
soffa_agent_session_close(soffa_agent_t *self)
{
    soffa_client_close(&self->session.client);
}

/* ---- Frames from the broker ----------------------------------------------------------------- */

/* One read of the broker's socket. */
typedef struct {
    soffa_frame_t batch[S_BATCH];  /* deliveries of the subscription, stored together (owned) */
    size_t nb;
    bool end;                      /* a frame ended the session: stop reading */
    soffa_agent_conn_t end_state;  /* ... into this state */
    const char *end_why;           /* ... for this reason */
    int64_t reconnect_at;          /* ... and the next connect is tried then (monotonic µs; -1: after reconnect_max_ms) */
} s_read_t;

/* Stores the batch in the inbox (which acknowledges it) and empties it. */
static void
s_flush(soffa_agent_t *self, s_read_t *r)
{
    soffa_agent_inbox_deliver(self, r->batch, r->nb);
    for (size_t j = 0; j < r->nb; j++)
        soffa_frame_fini(&r->batch[j]);
    r->nb = 0;
}

/* A frame handler; returns true when it kept the frame (the caller then
 * does not free it). */
typedef bool (*s_frame_fn)(soffa_agent_t *self, s_read_t *r, soffa_frame_t *f);

static bool
s_on_deliver(soffa_agent_t *self, s_read_t *r, soffa_frame_t *f)
{
    if (f->tag == 0) {
        r->batch[r->nb++] = *f;   /* kept until the batch is stored */
        if (r->nb == S_BATCH)
            s_flush(self, r);
        return true;
    }
    soffa_agent_waiter_t *w = soffa_agent_reply_find(self, SOFFA_AGENT_WAIT_REPLAY, f->tag);
    if (w) {
        json_t *rec = soffa_record_json(f->data, f->data_len, f->has_hash ? f->hash : NULL,
                                        f->has_record_key ? f->record_key : NULL);
        if (rec)
            json_array_append_new(w->acc, rec);
        /* Read: acknowledged once this batch is read (s_replay_acks). */
        if (f->has_hash) {
            w->rp_seq = f->seq;
            memcpy(w->rp_hash, f->hash, SOFFA_HASH_LEN);
        }
        w->deadline = soffa_mono_us() + 30000000;
    }
    return false;
}

static bool
s_on_publish_ack(soffa_agent_t *self, s_read_t *r, soffa_frame_t *f)
{
    (void) r;
    soffa_agent_outbox_answer(self, f);
    return false;
}

static bool
s_on_error(soffa_agent_t *self, s_read_t *r, soffa_frame_t *f)
{
    soffa_agent_waiter_t *w;
    if (f->code == SOFFA_ERR_SESSION_CLOSED && f->tag == 0) {
        /* Another connection with our key took over (a second agent with
         * this key, or a stolen key): say so loudly, keep what we have, and
         * come back only after the longest backoff. */
        soffa_error("the broker closed this agent's session: %s", f->text);
        self->session.closed_at_us = soffa_now_us();
        snprintf(self->session.closed_why, sizeof self->session.closed_why, "%s", f->text);
        r->end = true;
        r->end_state = SOFFA_AGENT_CONN_CLOSED;
        r->end_why = "the broker closed the session";
        r->reconnect_at = -1;
    } else if (f->code == SOFFA_ERR_PROTOCOL_STATE) {
        /* The broker no longer knows this session (it restarted, or expired
         * us): greet again now. Whatever was in flight is sent again after
         * the greeting, and those waiting for an answer keep waiting. */
        r->end = true;
        r->end_state = SOFFA_AGENT_CONN_OFFLINE;
        r->end_why = "the broker forgot this session";
        r->reconnect_at = 0;
    } else if (f->tag && (w = soffa_agent_reply_find(self, SOFFA_AGENT_WAIT_REPLAY, f->tag)) != NULL) {
        soffa_agent_reply_done(w, soffa_agent_reply_fail((soffa_err_t) f->code, f->text));
    } else if (f->tag) {
        soffa_agent_outbox_answer(self, f);
    } else {
        soffa_warn("broker says: %s: %s", soffa_errname((soffa_err_t) f->code), f->text);
    }
    return false;
}

static bool
s_on_replay_end(soffa_agent_t *self, s_read_t *r, soffa_frame_t *f)
{
    (void) r;
    soffa_agent_waiter_t *w = soffa_agent_reply_find(self, SOFFA_AGENT_WAIT_REPLAY, f->tag);
    if (w) {
        json_t *a = json_pack("{s:b, s:I, s:I, s:O}", "ok", 1, "count", (json_int_t) f->count, "access_seq",
                              (json_int_t) f->access_seq, "records", w->acc);
        soffa_agent_reply_done(w, a);
    }
    return false;
}

/* An erasure the broker carried out (the waiter is a REPLAY one: refusals
 * and a lost session end it the same way). */
static bool
s_on_erased(soffa_agent_t *self, s_read_t *r, soffa_frame_t *f)
{
    (void) r;
    soffa_agent_waiter_t *w = soffa_agent_reply_find(self, SOFFA_AGENT_WAIT_REPLAY, f->tag);
    if (w)
        soffa_agent_reply_done(w, json_pack("{s:b, s:I, s:I, s:I}", "ok", 1, "count", (json_int_t) f->count, "first_seq",
                                            (json_int_t) f->seq, "last_seq", (json_int_t) f->access_seq));
    return false;
}

static bool
s_on_status_reply(soffa_agent_t *self, s_read_t *r, soffa_frame_t *f)
{
    (void) r;
    self->session.status_receipt = f->receipt;
    soffa_agent_waiter_t *w = soffa_agent_reply_find(self, SOFFA_AGENT_WAIT_STATUS, f->tag);
    if (!w)
        return false;
    json_t *mbs = json_array();
    for (size_t j = 0; j < f->n_statuses; j++) {
        const soffa_mailbox_status_t *m = &f->statuses[j];
        json_array_append_new(mbs, json_pack("{s:s, s:I, s:I, s:i, s:I, s:I, s:b, s:I}", "mailbox", m->mailbox, "depth",
                                             (json_int_t) m->depth, "last_seq", (json_int_t) m->last_seq, "consumers",
                                             (int) m->consumers, "lag", (json_int_t) m->lag, "oldest_undelivered_us",
                                             (json_int_t) m->oldest_undelivered_us, "no_reader", m->no_reader,
                                             "overdue", (json_int_t) m->overdue));
    }
    json_object_set_new(w->acc, "broker",
                        json_pack("{s:I, s:i, s:I, s:o}", "head_seq", (json_int_t) f->head_seq, "sessions",
                                  (int) f->sessions, "started_at_us", (json_int_t) f->started_at_us, "mailboxes", mbs));
    json_t *a = w->acc;
    w->acc = NULL;
    soffa_agent_reply_done(w, a);
    return false;
}

/* What the agent does with each frame the broker sends; a frame of any
 * other type (PONG) only says the broker is there. */
static const struct {
    soffa_frame_type_t type;
    s_frame_fn fn;
} s_frames[] = {
    {SOFFA_FRAME_DELIVER, s_on_deliver},
    {SOFFA_FRAME_PUBLISH_ACK, s_on_publish_ack},
    {SOFFA_FRAME_ERROR, s_on_error},
    {SOFFA_FRAME_REPLAY_END, s_on_replay_end},
    {SOFFA_FRAME_STATUS_REPLY, s_on_status_reply},
    {SOFFA_FRAME_ERASED, s_on_erased},
};

/* What a replay sent so far is read: frees its window, naming the last
 * record read and its hash, the proof the broker asks for. */
static void
s_replay_acks(soffa_agent_t *self)
{
    for (size_t i = 0; soffa_agent_online(self) && i < SOFFA_AGENT_WAITERS_MAX; i++) {
        soffa_agent_waiter_t *w = &self->waiters[i];
        if (w->used && w->kind == SOFFA_AGENT_WAIT_REPLAY && w->rp_seq) {
            soffa_frame_t c = {.type = SOFFA_FRAME_REPLAY_ACK, .tag = w->key, .seq = w->rp_seq, .has_hash = true};
            memcpy(c.hash, w->rp_hash, SOFFA_HASH_LEN);
            soffa_client_send(self->session.client, &c);
            w->rp_seq = 0;
        }
    }
}

void
soffa_agent_session_read(soffa_agent_t *self)
{
    s_read_t rd, *r = &rd;   /* the batch is not cleared: only its first nb frames are read */
    r->nb = 0;
    r->end = false;
    for (int i = 0; i < 1024 && !r->end && soffa_agent_online(self); i++) {
        soffa_frame_t f;
        soffa_err_t rc = soffa_client_recv(self->session.client, &f, 0);
        if (rc == SOFFA_ERR_TIMEOUT)
            break;
        self->session.last_heard = soffa_mono_us();
        bool kept = false;
        for (size_t k = 0; rc == SOFFA_OK && k < sizeof s_frames / sizeof *s_frames; k++)
            if (s_frames[k].type == f.type)
                kept = s_frames[k].fn(self, r, &f);
        if (!kept)
            soffa_frame_fini(&f);
    }
    s_flush(self, r);
    if (r->end) {
        s_disconnect(self, r->end_state, r->end_why);
        self->session.next_connect = r->reconnect_at < 0 ? soffa_mono_us() + self->cfg.reconnect_max_ms * 1000
                                                         : r->reconnect_at;
    }
    s_replay_acks(self);
}
