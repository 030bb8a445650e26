/*  soffa_agent_control: the command line's control socket and its command
 *  table; the request reader both control sockets share (see
 *  soffa_agent_control.h).
 */
#include "soffa_agent_control.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_agent_hook.h"
#include "soffa_agent_inbox.h"
#include "soffa_agent_int.h"
#include "soffa_agent_outbox.h"
#include "soffa_agent_session.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

/* ---- Reading requests ------------------------------------------------------------------------- */

static void
s_dispatch(soffa_agent_t *self, const soffa_agent_control_table_t *table, const soffa_agent_req_t *req)
{
    const char *cmd = json_string_value(json_object_get(req->body, "cmd"));
    if (!cmd) {
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_MALFORMED, "requests are JSON objects with a \"cmd\""));
        return;
    }
    for (size_t i = 0; i < table->n_cmds; i++) {
        const soffa_agent_control_cmd_t *c = &table->cmds[i];
        if (c->prefix ? !strncmp(cmd, c->name, strlen(c->name)) : !strcmp(cmd, c->name)) {
            c->run(self, req);
            return;
        }
    }
    soffa_agent_reply(req, soffa_agent_reply_fail(table->unknown_code, table->unknown_text));
}

void
soffa_agent_control_read(soffa_agent_t *self, void *sock, const soffa_agent_control_table_t *table)
{
    for (int i = 0; i < 64; i++) {
        zmq_msg_t parts[3];
        int n = 0;
        bool more = true;
        while (more && n < 3) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&parts[n]);
                break;
            }
            more = zmq_msg_more(&parts[n]);
            n++;
        }
        if (n == 0)
            return;
        while (more) {   /* drain anything beyond the three parts */
            zmq_msg_t x;
            zmq_msg_init(&x);
            if (zmq_msg_recv(&x, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&x);
                break;
            }
            more = zmq_msg_more(&x);
            zmq_msg_close(&x);
        }
        if (n == 3 && zmq_msg_size(&parts[0]) <= SOFFA_AGENT_RID_MAX && zmq_msg_size(&parts[2]) <= table->max_body) {
            json_t *body = json_loadb(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), 0, NULL);
            const soffa_agent_req_t req = {sock, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), body};
            s_dispatch(self, table, &req);
            json_decref(body);
        }
        for (int k = 0; k < n; k++)
            zmq_msg_close(&parts[k]);
    }
}

/* ---- The command line's commands --------------------------------------------------------------- */

static const char *
s_str(json_t *v, const char *fallback)
{
    const char *s = json_string_value(v);
    return s ? s : fallback;
}

static void
s_ctl_send(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    soffa_agent_outbox_submit(self, req);
}

static void
s_ctl_school(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    bool queued = false;
    const char *cmd = json_string_value(json_object_get(req->body, "cmd"));
    soffa_agent_reply(req, soffa_school_control(self->school, cmd, req->body, &queued));
    if (queued)
        soffa_agent_outbox_send(self);
}

/* The agent's own part of a status. */
static json_t *
s_status_json(soffa_agent_t *self)
{
    uint64_t total, fresh, failed;
    soffa_box_inbox_counts(self->box, &total, &fresh, &failed);
    char ts[32] = "";
    if (self->inbox.last_delivery_us)
        soffa_time_format(self->inbox.last_delivery_us, ts);
    uint64_t od_signals, od_referrals;
    soffa_agent_outbox_overdue(self, NULL, &od_signals, &od_referrals);
    json_t *st = json_pack("{s:b, s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:{s:I, s:I}}", "ok", 1, "agent", self->cfg.name,
                     "role", soffa_role_name(self->session.role), "connected", soffa_agent_online(self), "broker_endpoint",
                     self->session.endpoint, "mailbox", self->session.mailbox, "outbox", (json_int_t) soffa_box_outbox_count(self->box),
                     "inbox", (json_int_t) total, "inbox_new", (json_int_t) fresh, "inbox_failed", (json_int_t) failed,
                     "last_delivery", ts, "refused", (json_int_t) self->outbox.refused, "overdue", "signals",
                     (json_int_t) od_signals, "referrals", (json_int_t) od_referrals);
    if (st && self->session.closed_at_us) {
        char at[32];
        soffa_time_format(self->session.closed_at_us, at);
        json_object_set_new(st, "session_closed", json_pack("{s:s, s:s}", "at", at, "why", self->session.closed_why));
    }
    return st;
}

/* With "broker": true and a session, the broker's view of our mailboxes
 * is added when its STATUS-REPLY comes (soffa_agent_session), or the
 * agent's own part goes alone after 3 s. */
static void
s_ctl_status(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    json_t *st = s_status_json(self);
    soffa_agent_waiter_t *w = NULL;
    if (soffa_agent_online(self) && json_is_true(json_object_get(req->body, "broker"))) {
        uint64_t tag = soffa_agent_session_next_tag(self);
        w = soffa_agent_reply_later(self, req, SOFFA_AGENT_WAIT_STATUS, tag, 3000);
        soffa_frame_t sr = {.type = SOFFA_FRAME_STATUS_REQUEST, .tag = tag, .receipt = self->session.status_receipt};
        if (w && soffa_agent_session_send(self, &sr) == SOFFA_OK)
            w->acc = st;
        else if (w)
            soffa_agent_reply_cancel(w), w = NULL;
    }
    if (!w)
        soffa_agent_reply(req, st);
}

static void
s_ctl_inbox(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    json_t *body = req->body;
    json_t *list = soffa_agent_inbox_list(self, (uint64_t) json_integer_value(json_object_get(body, "after")),
                                          json_is_true(json_object_get(body, "failed")),
                                          (size_t) (json_integer_value(json_object_get(body, "limit")) > 0
                                                        ? json_integer_value(json_object_get(body, "limit"))
                                                        : 1000));
    json_t *overdue = json_array();
    soffa_agent_outbox_overdue(self, overdue, NULL, NULL);
    soffa_agent_reply(req, json_pack("{s:b, s:o, s:o}", "ok", 1, "messages", list, "overdue", overdue));
}

static void
s_ctl_show(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    const char *id = json_string_value(json_object_get(req->body, "id"));
    json_t *rec = id ? soffa_agent_inbox_lookup(self, id) : NULL;
    uint8_t mid[16];
    soffa_box_sent_t r;
    if (rec) {
        soffa_agent_reply(req, json_pack("{s:b, s:s, s:o}", "ok", 1, "where", "inbox", "record", rec));
    } else if (id && soffa_uuid_parse(id, mid) && soffa_box_sent_get(self->box, mid, &r) == SOFFA_OK) {
        soffa_agent_reply(req, json_pack("{s:b, s:s, s:s, s:I, s:s, s:s, s:s}", "ok", 1, "where", "sent", "outcome",
                                         r.code ? "refused" : "accepted", "seq", (json_int_t) r.seq, "mailbox",
                                         r.mailbox, "code", soffa_errname((soffa_err_t) r.code), "reason", r.reason));
    } else {
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_NOT_FOUND, "no such message in this agent's inbox or sent log"));
    }
}

static int
s_state_of(void *ctx, const soffa_box_in_t *in)
{
    *(soffa_in_state_t *) ctx = in->state;
    return 1;
}

static void
s_ctl_retry(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    uint64_t seq = (uint64_t) json_integer_value(json_object_get(req->body, "seq"));
    soffa_in_state_t was = SOFFA_IN_NEW;
    if (seq)
        soffa_box_inbox_get(self->box, seq, s_state_of, &was);
    soffa_err_t rc = seq ? soffa_box_inbox_set_state(self->box, seq, SOFFA_IN_NEW, 0, 0) : SOFFA_ERR_NOT_FOUND;
    if (rc == SOFFA_OK && was == SOFFA_IN_FAILED && self->stats.parked)
        self->stats.parked--;   /* the metrics' running count */
    soffa_agent_hook_wake(self);
    soffa_agent_reply(req, rc == SOFFA_OK ? json_pack("{s:b}", "ok", 1) : soffa_agent_reply_fail(rc, "no such inbox record"));
}

/* Asks the broker for a replay; its records are gathered by the session
 * and answered at REPLAY-END (or refused when the session ends). */
static void
s_ctl_replay(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    if (!soffa_agent_online(self)) {
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_UNAVAILABLE, "the broker is not reachable; a replay needs it"));
        return;
    }
    json_t *fl = json_object_get(req->body, "filter");
    soffa_frame_t r = {.type = SOFFA_FRAME_REPLAY, .tag = soffa_agent_session_next_tag(self)};
    snprintf(r.text, sizeof r.text, "%s", s_str(json_object_get(req->body, "request"), "replay"));
    r.filter.from_seq = (uint64_t) json_integer_value(json_object_get(fl, "from_seq"));
    r.filter.to_seq = (uint64_t) json_integer_value(json_object_get(fl, "to_seq"));
    r.filter.from_us = json_integer_value(json_object_get(fl, "from_us"));
    r.filter.to_us = json_integer_value(json_object_get(fl, "to_us"));
    r.filter.limit = (uint64_t) json_integer_value(json_object_get(fl, "limit"));
    r.filter.message_type = (uint32_t) json_integer_value(json_object_get(fl, "message_type"));
    snprintf(r.filter.mailbox, sizeof r.filter.mailbox, "%s", s_str(json_object_get(fl, "mailbox"), ""));
    snprintf(r.filter.subject_id, sizeof r.filter.subject_id, "%s", s_str(json_object_get(fl, "subject_id"), ""));
    soffa_agent_waiter_t *w = soffa_agent_reply_later(self, req, SOFFA_AGENT_WAIT_REPLAY, r.tag, 30000);
    if (!w || soffa_agent_session_send(self, &r) != SOFFA_OK) {
        if (w)
            soffa_agent_reply_cancel(w);
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_UNAVAILABLE, "too busy; try again"));
    } else {
        w->acc = json_array();
    }
}

/* Asks the broker to erase one young person's records (a data-protection
 * officer's key); answered when the broker says it is done. */
static void
s_ctl_erase(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    if (!soffa_agent_online(self)) {
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_UNAVAILABLE, "the broker is not reachable; an erasure needs it"));
        return;
    }
    soffa_frame_t r = {.type = SOFFA_FRAME_ERASE, .tag = soffa_agent_session_next_tag(self),
                       .code = (uint32_t) json_integer_value(json_object_get(req->body, "reason"))};
    snprintf(r.filter.subject_id, sizeof r.filter.subject_id, "%s", s_str(json_object_get(req->body, "subject_id"), ""));
    soffa_agent_waiter_t *w = soffa_agent_reply_later(self, req, SOFFA_AGENT_WAIT_REPLAY, r.tag, 60000);
    if (!w || soffa_agent_session_send(self, &r) != SOFFA_OK) {
        if (w)
            soffa_agent_reply_cancel(w);
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_UNAVAILABLE, "too busy; try again"));
    }
}

/* The command line's commands: the grammar in soffa_agent_control.h. */
static const soffa_agent_control_cmd_t s_cmds[] = {
    {"send", false, s_ctl_send},
    {"school-", true, s_ctl_school},
    {"status", false, s_ctl_status},
    {"inbox", false, s_ctl_inbox},
    {"show", false, s_ctl_show},
    {"retry", false, s_ctl_retry},
    {"replay", false, s_ctl_replay},
    {"erase", false, s_ctl_erase},
};

static const soffa_agent_control_table_t s_table = {s_cmds, sizeof s_cmds / sizeof *s_cmds, SIZE_MAX,
                                                    SOFFA_ERR_INVALID_ARG, "unknown command"};

void
soffa_agent_control_serve(soffa_agent_t *self)
{
    soffa_agent_control_read(self, self->control, &s_table);
}

/* ---- The socket --------------------------------------------------------------------------------- */

soffa_err_t
soffa_agent_control_open(soffa_agent_t *self, char *why, size_t whylen)
{
    self->control = zmq_socket(self->ctx, ZMQ_ROUTER);
    char ep[1100];
    snprintf(ep, sizeof ep, "ipc://%s", self->control_path);
    unlink(self->control_path);   /* a stale socket from a crash */
    /* The control socket is owner-only whatever the umask: made under a
     * 077 umask, then set to 0600 and checked, so a socket anyone else
     * could connect to is never left listening. */
    mode_t old = umask(077);
    int brc = zmq_bind(self->control, ep);
    int bind_errno = errno;
    umask(old);
    if (brc != 0) {
        snprintf(why, whylen, "cannot open the control socket %s: %s", self->control_path, zmq_strerror(bind_errno));
        return SOFFA_ERR_TRANSPORT;
    }
    struct stat st;
    if (chmod(self->control_path, 0600) != 0 || lstat(self->control_path, &st) != 0 || !S_ISSOCK(st.st_mode)
        || (st.st_mode & 07777) != 0600 || st.st_uid != geteuid()) {
        snprintf(why, whylen, "the control socket %s could not be made owner-only (mode 0600): %s",
                 self->control_path, strerror(errno ? errno : EPERM));
        zmq_close(self->control);
        self->control = NULL;
        unlink(self->control_path);
        return SOFFA_ERR_PERMISSION;
    }
    int linger = 0;
    zmq_setsockopt(self->control, ZMQ_LINGER, &linger, sizeof linger);
    return SOFFA_OK;
}

void
soffa_agent_control_close(soffa_agent_t *self)
{
    if (self->control) {
        zmq_close(self->control);
        self->control = NULL;
        unlink(self->control_path);
    }
}
