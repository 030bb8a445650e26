/*  soffa_agent_reply: answers to control requests, now or later (see
 *  soffa_agent_reply.h).
 */
#include "soffa_agent_reply.h"

#include <string.h>
#include <zmq.h>

#include "soffa_agent_int.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

static void
s_send(void *sock, const uint8_t *rid, size_t rid_len, json_t *answer)
{
    char *s = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);
    if (!s)
        return;
    zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, s, strlen(s), ZMQ_DONTWAIT);
    free(s);
}

void
soffa_agent_reply(const soffa_agent_req_t *req, json_t *answer)
{
    s_send(req->sock, req->rid, req->rid_len, answer);
}

json_t *
soffa_agent_reply_fail(soffa_err_t rc, const char *text)
{
    return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", soffa_errname(rc), "error",
                     text && *text ? text : soffa_strerror(rc));
}

/* ---- Waiters --------------------------------------------------------------------------------- */

soffa_agent_waiter_t *
soffa_agent_reply_later(soffa_agent_t *self, const soffa_agent_req_t *req, soffa_agent_wait_kind_t kind, uint64_t key,
                        int wait_ms)
{
    for (size_t i = 0; i < SOFFA_AGENT_WAITERS_MAX; i++) {
        soffa_agent_waiter_t *w = &self->waiters[i];
        if (w->used)
            continue;
        memset(w, 0, sizeof *w);
        w->used = true;
        w->kind = kind;
        memcpy(w->rid, req->rid, req->rid_len);
        w->rid_len = req->rid_len;
        w->key = key;
        w->deadline = soffa_mono_us() + (int64_t) wait_ms * 1000;
        w->sock = req->sock;
        return w;
    }
    return NULL;
}

soffa_agent_waiter_t *
soffa_agent_reply_find(soffa_agent_t *self, soffa_agent_wait_kind_t kind, uint64_t key)
{
    for (size_t i = 0; i < SOFFA_AGENT_WAITERS_MAX; i++)
        if (self->waiters[i].used && self->waiters[i].kind == kind && self->waiters[i].key == key)
            return &self->waiters[i];
    return NULL;
}

void
soffa_agent_reply_done(soffa_agent_waiter_t *w, json_t *answer)
{
    s_send(w->sock, w->rid, w->rid_len, answer);
    json_decref(w->acc);
    w->acc = NULL;
    w->used = false;
}

void
soffa_agent_reply_cancel(soffa_agent_waiter_t *w)
{
    json_decref(w->acc);
    w->acc = NULL;
    w->used = false;
}

void
soffa_agent_reply_expire(soffa_agent_t *self, int64_t now)
{
    for (size_t i = 0; i < SOFFA_AGENT_WAITERS_MAX; i++) {
        soffa_agent_waiter_t *w = &self->waiters[i];
        if (!w->used || now < w->deadline)
            continue;
        if (w->kind == SOFFA_AGENT_WAIT_SEND) {
            char ms[SOFFA_UUID_STR];
            soffa_uuid_format(w->msg_id, ms);
            soffa_agent_reply_done(w, json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "state", "queued", "message_id", ms,
                                                "note", "no answer from the broker yet; kept in the outbox and retried"));
        } else if (w->kind == SOFFA_AGENT_WAIT_STATUS) {
            json_t *a = w->acc;
            w->acc = NULL;
            soffa_agent_reply_done(w, a);
        } else if (w->kind == SOFFA_AGENT_WAIT_WATCH) {
            soffa_agent_reply_done(w, soffa_agent_reply_watch_state(self));
        } else {
            soffa_agent_reply_done(w, soffa_agent_reply_fail(SOFFA_ERR_TIMEOUT, "the replay did not finish in time"));
        }
    }
}

void
soffa_agent_reply_session_lost(soffa_agent_t *self)
{
    for (size_t i = 0; i < SOFFA_AGENT_WAITERS_MAX; i++) {
        soffa_agent_waiter_t *w = &self->waiters[i];
        if (!w->used)
            continue;
        if (w->kind == SOFFA_AGENT_WAIT_REPLAY)
            soffa_agent_reply_done(w, soffa_agent_reply_fail(SOFFA_ERR_UNAVAILABLE,
                                                             "the broker went away during the replay; try again"));
        else if (w->kind == SOFFA_AGENT_WAIT_STATUS)
            w->deadline = 0;   /* answered at the next tick with what the agent knows */
    }
}

void
soffa_agent_reply_fini(soffa_agent_t *self)
{
    for (size_t i = 0; i < SOFFA_AGENT_WAITERS_MAX; i++)
        if (self->waiters[i].used)
            soffa_agent_reply_cancel(&self->waiters[i]);
}

/* ---- Watchers (soffa-web's live view) ------------------------------------------------------- */

json_t *
soffa_agent_reply_watch_state(soffa_agent_t *self)
{
    return json_pack("{s:b, s:I, s:I, s:b}", "ok", 1, "inbox_last",
                     (json_int_t) (self->session.mailbox[0] ? soffa_box_inbox_last(self->box, self->session.mailbox) : 0), "sent_gen",
                     (json_int_t) self->outbox.gen, "connected", soffa_agent_online(self));
}

void
soffa_agent_reply_wake_watchers(soffa_agent_t *self)
{
    for (size_t i = 0; i < SOFFA_AGENT_WAITERS_MAX; i++) {
        soffa_agent_waiter_t *w = &self->waiters[i];
        if (w->used && w->kind == SOFFA_AGENT_WAIT_WATCH)
            soffa_agent_reply_done(w, soffa_agent_reply_watch_state(self));
    }
}
