/*  soffa_agent: outbox, inbox, broker session, control socket, hooks.
 *
 *  Durability order, in both directions:
 *    - a message from the command line is committed to the outbox before the
 *      command is answered, and leaves the outbox only when the broker has
 *      acknowledged it (or refused it for good);
 *    - a delivery is committed to the inbox before it is acknowledged to the
 *      broker; redelivered sequences are dropped.
 *
 *  A hook inherits nothing of the agent: every descriptor the agent holds is
 *  close-on-exec (the LMDB box, ZeroMQ's sockets, files), the child closes
 *  any other above stderr before it runs the hook, and the record reaches
 *  the hook through a pipe on its stdin, never through a file.
 */
#define _GNU_SOURCE   /* pipe2, F_SETPIPE_SZ */
#include "soffa_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_box.h"
#include "soffa_cfg.h"
#include "soffa_client.h"
#include "soffa_id.h"
#include "soffa_keys.h"
#include "soffa_log.h"
#include "soffa_msg.h"
#include "soffa_notify.h"
#include "soffa_record.h"
#include "soffa_school.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "soffa_web_cfg.h"
#include "soffa_wire.h"

#define S_OUT_WINDOW 256           /* publishes in flight */
#define S_RESEND_US (10 * 1000000) /* unanswered publishes are sent again after this */
#define S_MAX_WAITERS 256

/* ---- Configuration ------------------------------------------------------------- */

typedef struct {
    char name[SOFFA_NAME_MAX];
    char broker[256];
    char broker_key[512];
    char key[512];
    char data_dir[512];
    char control[512];
    char log_level[16];
    int64_t window;
    int64_t heartbeat_ms;
    int64_t reconnect_max_ms;
    char hook[1024];
    int64_t hook_retries;
    int64_t hook_backoff_ms;
    int64_t hook_timeout_ms;
    size_t map_size;
    int64_t signal_ack_due;        /* ms: a signal unacknowledged this long is overdue */
    int64_t referral_receipt_due;  /* ms: a referral not received this long is overdue */
} s_cfg_t;

static const soffa_cfg_key_t s_keys[] = {
    {"name", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_cfg_t, name), SOFFA_NAME_MAX, "this agent's name, as in the broker's [agent NAME]"},
    {"broker", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_cfg_t, broker), 256, "the broker's endpoint, e.g. tcp://broker:5570"},
    {"broker_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_cfg_t, broker_key), 512, "the broker's public key (Z85) or its .pub file"},
    {"key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_cfg_t, key), 512, "this agent's key file from 'soffa keygen'"},
    {"data_dir", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_cfg_t, data_dir), 512, "directory of the outbox and inbox"},
    {"control", SOFFA_CFG_STR, "", 0, 0, offsetof(s_cfg_t, control), 512, "control socket path (default DATA_DIR/control.sock)"},
    {"log_level", SOFFA_CFG_STR, "info", 0, 0, offsetof(s_cfg_t, log_level), 16, "debug, info, warn or error"},
    {"window", SOFFA_CFG_INT, "64", 1, 1024, offsetof(s_cfg_t, window), 0, "deliveries in flight from the broker"},
    {"heartbeat_ms", SOFFA_CFG_INT, "1000", 100, 60000, offsetof(s_cfg_t, heartbeat_ms), 0, "how often the agent pings the broker"},
    {"reconnect_max_ms", SOFFA_CFG_INT, "5000", 100, 600000, offsetof(s_cfg_t, reconnect_max_ms), 0, "ceiling of the reconnect backoff"},
    {"hook", SOFFA_CFG_STR, "", 0, 0, offsetof(s_cfg_t, hook), 1024, "command run for each delivered message (JSON on stdin)"},
    {"hook_retries", SOFFA_CFG_INT, "5", 1, 1000, offsetof(s_cfg_t, hook_retries), 0, "failures before a message is parked"},
    {"hook_backoff_ms", SOFFA_CFG_INT, "1000", 10, 3600000, offsetof(s_cfg_t, hook_backoff_ms), 0, "first wait after a failed hook (doubles)"},
    {"hook_timeout_ms", SOFFA_CFG_INT, "30000", 100, 3600000, offsetof(s_cfg_t, hook_timeout_ms), 0, "a hook running longer is stopped and counts as failed"},
    {"map_size", SOFFA_CFG_SIZE, "256MiB", 1024 * 1024, (int64_t) 1 << 40, offsetof(s_cfg_t, map_size), 0, "largest size of the agent's store"},
    {"signal_ack_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(s_cfg_t, signal_ack_due), 0, "a signal not acknowledged within this is overdue"},
    {"referral_receipt_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(s_cfg_t, referral_receipt_due), 0, "a referral not received within this is overdue"},
};

/* ---- State ------------------------------------------------------------------------ */

typedef enum { S_W_SEND, S_W_STATUS, S_W_REPLAY, S_W_WATCH } s_wait_kind_t;

typedef struct {
    bool used;
    s_wait_kind_t kind;
    uint8_t rid[256];
    size_t rid_len;
    uint64_t key;                  /* SEND: outbox local id; STATUS/REPLAY: tag */
    int64_t deadline;              /* monotonic µs */
    json_t *acc;                   /* STATUS: our part; REPLAY: records */
    uint8_t msg_id[16];
    uint64_t rp_seq;               /* REPLAY: the last record read, not yet acknowledged (0: none) */
    uint8_t rp_hash[SOFFA_HASH_LEN];
    void *sock;                    /* the control socket the request came on */
} s_waiter_t;

typedef struct {
    uint64_t local_id;
    int64_t sent_at;
} s_flight_t;

struct soffa_agent {
    char config_path[1024];
    s_cfg_t cfg;
    soffa_school_cfg_t school_cfg;     /* [school], [ss12000] */
    soffa_school_t *school;            /* a school's change tracking (soffa_school) */
    char broker_pub[41], pub[41], sec[41];
    char data_path[1024], control_path[1024];
    soffa_box_t *box;
    void *ctx, *control;
    soffa_client_t *client;        /* NULL when not connected */
    char mailbox[SOFFA_NAME_MAX];  /* our inbox at the broker */
    soffa_role_t role;
    int64_t last_heard, next_ping, next_connect, backoff_ms;
    uint32_t broker_heartbeat_ms;
    s_flight_t flight[S_OUT_WINDOW];
    size_t n_flight;
    uint64_t out_next;             /* outbox entries up to this local id are in flight or done */
    int64_t resend_at;             /* monotonic µs: no sending before (after a transient refusal) */
    int64_t last_delivery_us;
    uint64_t refused;
    uint64_t status_receipt;       /* of the broker's last STATUS-REPLY on this connection */
    int64_t closed_at_us;          /* when the broker last closed our session (another connection took over) */
    char closed_why[256];
    s_waiter_t waiters[S_MAX_WAITERS];
    /* hook */
    pid_t hook_pid;
    uint64_t hook_seq;
    int64_t hook_started;
    int64_t next_hook_scan;
    int hook_in;                   /* write end of the hook's stdin, -1 when closed */
    char *hook_text;               /* the record being written to it (owned) */
    size_t hook_len, hook_off;     /* its length, and how much is written */
    /* the web inbox's restricted control socket (soffa_agent_web) */
    soffa_web_cfg_t web;
    void *webctl;                  /* NULL when [web] listen is empty */
    void *cur_sock;                /* the control socket of the request being handled */
    uint8_t access_key[32];        /* keys the youths' hashes in the site's access log */
    uint64_t sent_gen;             /* grows with every outbox change (the web's live view) */
};

/* ---- Configuration ---------------------------------------------------------------- */

soffa_err_t
soffa_agent_new(soffa_agent_t **out, const char *config_path, char *why, size_t whylen)
{
    *out = NULL;
    soffa_agent_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->hook_in = -1;
    snprintf(self->config_path, sizeof self->config_path, "%s", config_path);
    size_t n_web;
    const soffa_cfg_key_t *web_keys = soffa_web_cfg_keys(&n_web);
    soffa_cfg_section_t sec[4] = {{"agent", false, s_keys, sizeof s_keys / sizeof *s_keys, &self->cfg, NULL, NULL}};
    soffa_school_cfg_sections(&self->school_cfg, sec + 1);
    sec[3] = (soffa_cfg_section_t) {"web", false, web_keys, n_web, &self->web, NULL, NULL};
    soffa_err_t rc = soffa_cfg_load(config_path, sec, 4, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_school_cfg_check(&self->school_cfg, config_path, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_web_cfg_resolve(&self->web, config_path, why, whylen);
    if (rc == SOFFA_OK && soffa_log_level_parse(self->cfg.log_level) < 0) {
        snprintf(why, whylen, "%s: log_level must be debug, info, warn or error", config_path);
        rc = SOFFA_ERR_CONFIG;
    }
    char path[1024];
    if (rc == SOFFA_OK) {
        if (soffa_keys_valid_z85(self->cfg.broker_key)) {
            memcpy(self->broker_pub, self->cfg.broker_key, 41);
        } else if (!soffa_cfg_path(config_path, self->cfg.broker_key, path, sizeof path)
                   || soffa_keys_load_public(path, self->broker_pub) != SOFFA_OK) {
            snprintf(why, whylen, "%s: broker_key is neither a Z85 key nor a readable key file", config_path);
            rc = SOFFA_ERR_CONFIG;
        }
    }
    if (rc == SOFFA_OK) {
        soffa_cfg_path(config_path, self->cfg.key, path, sizeof path);
        rc = soffa_keys_load_secret(path, self->pub, self->sec);
        if (rc != SOFFA_OK) {
            snprintf(why, whylen, "%s: %s%s", path, soffa_strerror(rc),
                     rc == SOFFA_ERR_PERMISSION ? " (run chmod 600 on it)" : "");
            rc = rc == SOFFA_ERR_PERMISSION ? rc : SOFFA_ERR_CONFIG;
        }
    }
    if (rc == SOFFA_OK) {
        soffa_cfg_path(config_path, self->cfg.data_dir, self->data_path, sizeof self->data_path);
        if (self->cfg.control[0])
            soffa_cfg_path(config_path, self->cfg.control, self->control_path, sizeof self->control_path);
        else if (snprintf(self->control_path, sizeof self->control_path, "%s/control.sock", self->data_path)
                 >= (int) sizeof self->control_path)
            rc = SOFFA_ERR_CONFIG;
    }
    if (rc != SOFFA_OK) {
        explicit_bzero(self->sec, sizeof self->sec);
        free(self);
        return rc;
    }
    soffa_log_setup("soffa-agent", (soffa_log_level_t) soffa_log_level_parse(self->cfg.log_level));
    *out = self;
    return SOFFA_OK;
}

void
soffa_agent_print_config(const soffa_agent_t *self, FILE *out)
{
    const s_cfg_t *c = &self->cfg;
    fprintf(out, "agent.name = %s\nagent.broker = %s\nagent.broker_key = %s\nagent.key = %s\n", c->name, c->broker,
            self->broker_pub, c->key);
    fprintf(out, "agent.data_dir = %s\nagent.control = %s\nagent.log_level = %s\nagent.window = %lld\n",
            self->data_path, self->control_path, c->log_level, (long long) c->window);
    fprintf(out, "agent.heartbeat_ms = %lld\nagent.reconnect_max_ms = %lld\nagent.hook = %s\n",
            (long long) c->heartbeat_ms, (long long) c->reconnect_max_ms, c->hook);
    fprintf(out, "agent.hook_retries = %lld\nagent.hook_backoff_ms = %lld\nagent.hook_timeout_ms = %lld\nagent.map_size = %zu\n",
            (long long) c->hook_retries, (long long) c->hook_backoff_ms, (long long) c->hook_timeout_ms, c->map_size);
    fprintf(out, "agent.signal_ack_due = %lld ms\nagent.referral_receipt_due = %lld ms\n", (long long) c->signal_ack_due,
            (long long) c->referral_receipt_due);
    soffa_school_cfg_print(&self->school_cfg, out);
    soffa_web_cfg_print(&self->web, out);
}

/* ---- Control answers ---------------------------------------------------------------- */

static void
s_reply_on(void *sock, const uint8_t *rid, size_t rid_len, json_t *answer)
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

/* Answers on the control socket the current request came on. */
static void
s_reply(soffa_agent_t *self, const uint8_t *rid, size_t rid_len, json_t *answer)
{
    s_reply_on(self->cur_sock ? self->cur_sock : self->control, rid, rid_len, answer);
}

static json_t *
s_fail(soffa_err_t rc, const char *text)
{
    return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", soffa_errname(rc), "error",
                     text && *text ? text : soffa_strerror(rc));
}

static s_waiter_t *
s_waiter_new(soffa_agent_t *self, s_wait_kind_t kind, const uint8_t *rid, size_t rid_len, uint64_t key, int wait_ms)
{
    for (size_t i = 0; i < S_MAX_WAITERS; i++) {
        s_waiter_t *w = &self->waiters[i];
        if (w->used)
            continue;
        memset(w, 0, sizeof *w);
        w->used = true;
        w->kind = kind;
        memcpy(w->rid, rid, rid_len);
        w->rid_len = rid_len;
        w->key = key;
        w->deadline = soffa_mono_us() + (int64_t) wait_ms * 1000;
        w->sock = self->cur_sock ? self->cur_sock : self->control;
        return w;
    }
    return NULL;
}

static s_waiter_t *
s_waiter_find(soffa_agent_t *self, s_wait_kind_t kind, uint64_t key)
{
    for (size_t i = 0; i < S_MAX_WAITERS; i++)
        if (self->waiters[i].used && self->waiters[i].kind == kind && self->waiters[i].key == key)
            return &self->waiters[i];
    return NULL;
}

static void
s_waiter_done(soffa_agent_t *self, s_waiter_t *w, json_t *answer)
{
    (void) self;
    s_reply_on(w->sock, w->rid, w->rid_len, answer);
    json_decref(w->acc);
    w->used = false;
}

/* ---- Broker session ----------------------------------------------------------------- */

static void
s_disconnect(soffa_agent_t *self, const char *why)
{
    if (!self->client)
        return;
    soffa_warn("disconnected from the broker: %s", why);
    soffa_client_close(&self->client);
    self->status_receipt = 0;
    self->n_flight = 0;
    self->out_next = 0;
    self->next_connect = soffa_mono_us() + self->backoff_ms * 1000;
    /* A replay or status cannot survive the session; a sent message keeps
     * its waiter: it goes out again after the reconnect, and its answer (or
     * the waiter's deadline) ends the wait. */
    for (size_t i = 0; i < S_MAX_WAITERS; i++) {
        s_waiter_t *w = &self->waiters[i];
        if (!w->used)
            continue;
        if (w->kind == S_W_REPLAY)
            s_waiter_done(self, w, s_fail(SOFFA_ERR_UNAVAILABLE, "the broker went away during the replay; try again"));
        else if (w->kind == S_W_STATUS)
            w->deadline = 0;   /* answered at the next tick with what the agent knows */
    }
}

static void s_send_outbox(soffa_agent_t *self);
static void s_watch_wake(soffa_agent_t *self);

static void
s_connect(soffa_agent_t *self)
{
    soffa_client_opts_t o = {.endpoint = self->cfg.broker, .server_public = self->broker_pub,
                             .public_key = self->pub, .secret_key = self->sec, .name = self->cfg.name,
                             .timeout_ms = 1000, .zmq_ctx = self->ctx};
    soffa_frame_t w;
    soffa_err_t rc = soffa_client_connect(&self->client, &o, &w);
    if (rc != SOFFA_OK) {
        if (self->backoff_ms >= self->cfg.reconnect_max_ms)
            soffa_debug("broker %s still unreachable (%s)", self->cfg.broker, soffa_strerror(rc));
        else
            soffa_info("broker %s unreachable (%s); retrying in %lld ms", self->cfg.broker,
                       rc == SOFFA_ERR_TIMEOUT ? "no answer; is it up, and is this agent's key in its configuration?"
                                               : soffa_strerror(rc),
                       (long long) self->backoff_ms);
        self->next_connect = soffa_mono_us() + self->backoff_ms * 1000;
        self->backoff_ms = self->backoff_ms * 2 > self->cfg.reconnect_max_ms ? self->cfg.reconnect_max_ms
                                                                              : self->backoff_ms * 2;
        return;
    }
    self->backoff_ms = 200;
    self->role = w.role;
    snprintf(self->mailbox, sizeof self->mailbox, "%s", w.n_mailboxes ? w.mailboxes[0] : "");
    self->broker_heartbeat_ms = w.heartbeat_ms;
    soffa_frame_fini(&w);
    int64_t now = soffa_mono_us();
    self->last_heard = now;
    self->next_ping = now;
    soffa_info("connected to %s as %s (%s)%s%s", self->cfg.broker, self->cfg.name, soffa_role_name(self->role),
               self->mailbox[0] ? ", reading " : "", self->mailbox);
    if (self->mailbox[0]) {
        soffa_frame_t sub = {.type = SOFFA_FRAME_SUBSCRIBE, .credit = (uint32_t) self->cfg.window};
        snprintf(sub.mailbox, sizeof sub.mailbox, "%s", self->mailbox);
        soffa_client_send(self->client, &sub);
    }
    s_send_outbox(self);
}

/* ---- Outbox ------------------------------------------------------------------------- */

static int
s_send_one(void *ctx, uint64_t local_id, const uint8_t msg_id[16], const uint8_t *msg, size_t len)
{
    (void) msg_id;
    soffa_agent_t *self = ctx;
    if (self->n_flight >= S_OUT_WINDOW)
        return 1;
    soffa_frame_t p = {.type = SOFFA_FRAME_PUBLISH, .tag = local_id, .data = msg, .data_len = len};
    if (soffa_client_send(self->client, &p) != SOFFA_OK)
        return 1;
    self->flight[self->n_flight++] = (s_flight_t) {local_id, soffa_mono_us()};
    self->out_next = local_id;
    return 0;
}

/* Sends outbox entries not yet in flight, oldest first, up to the window. */
static void
s_send_outbox(soffa_agent_t *self)
{
    if (!self->client || self->n_flight >= S_OUT_WINDOW || soffa_mono_us() < self->resend_at)
        return;
    soffa_box_outbox_scan(self->box, self->out_next, s_send_one, self);
}

static bool
s_flight_take(soffa_agent_t *self, uint64_t local_id)
{
    for (size_t i = 0; i < self->n_flight; i++) {
        if (self->flight[i].local_id == local_id) {
            self->flight[i] = self->flight[--self->n_flight];
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
        const uint8_t *aw = v.type == SOFFA_MT_ENROLMENT_CHANGED || v.type == SOFFA_MT_ABSENCE_REPORTED
                                    || v.type == SOFFA_MT_AT_RISK_NOTICE
                                ? v.message_id
                            : v.type == SOFFA_MT_REFERRAL_SENT ? v.ref_id
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

static void
s_on_publish_answer(soffa_agent_t *self, const soffa_frame_t *f)
{
    if (!s_flight_take(self, f->tag))
        return;   /* an answer to a resend we already handled */
    s_find_out_t fo = {.local_id = f->tag};
    soffa_box_outbox_scan(self->box, f->tag - 1, s_find_out, &fo);
    if (!fo.found)
        return;
    s_waiter_t *w = s_waiter_find(self, S_W_SEND, f->tag);
    if (f->type == SOFFA_FRAME_ERROR && s_transient(f->code)) {
        soffa_warn("broker could not take outbox entry %llu yet (%s): kept, will retry", (unsigned long long) f->tag,
                   f->text);
        /* Try the whole outbox again after a pause (a full store, say):
         * the broker is not hammered meanwhile. */
        self->out_next = 0;
        self->n_flight = 0;
        self->resend_at = soffa_mono_us() + 1000000;
        if (w)
            s_waiter_done(self, w, json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "state", "queued", "note",
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
        self->refused++;
        soffa_warn("message %s refused by the broker: %s: %s", mid, soffa_errname((soffa_err_t) r.code), f->text);
    }
    soffa_err_t rc = soffa_box_outbox_done(self->box, f->tag, fo.msg_id, &r);
    if (rc != SOFFA_OK)
        soffa_error("outbox entry %llu could not be closed: %s", (unsigned long long) f->tag, soffa_strerror(rc));
    self->sent_gen++;
    s_watch_wake(self);
    if (w) {
        if (f->type == SOFFA_FRAME_PUBLISH_ACK)
            s_waiter_done(self, w, json_pack("{s:b, s:s, s:s, s:I, s:s, s:b}", "ok", 1, "state", "accepted",
                                             "message_id", mid, "seq", (json_int_t) f->seq, "mailbox", f->mailbox,
                                             "duplicate", f->duplicate));
        else
            s_waiter_done(self, w, s_fail((soffa_err_t) r.code, f->text));
    }
}

/* ---- Inbox -------------------------------------------------------------------------- */

/* An acknowledgement or a referral status closes what the agent awaits. */
static void
s_note_answer(soffa_agent_t *self, const soffa_envelope_t *e)
{
    if (e->msg_type != SOFFA_MT_SIGNAL_ACKNOWLEDGED && e->msg_type != SOFFA_MT_REFERRAL_STATUS_CHANGED)
        return;
    soffa_msg_t *m = NULL;
    if (soffa_msg_decode(e->body, e->body_len, &m) != SOFFA_OK)
        return;
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    if (v.ref_id)
        soffa_box_await_answer(self->box, v.ref_id, soffa_now_us());
    soffa_msg_destroy(&m);
}

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
    bool referral = a->type == SOFFA_MT_REFERRAL_SENT;
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
                                                 "waiting_for", referral ? "receipt" : "acknowledgement",
                                                 "overdue_s", (json_int_t) ((o->now - a->sent_us - due) / 1000000)));
    }
    return 0;
}

static void
s_on_deliveries(soffa_agent_t *self, soffa_frame_t *frames, size_t n)
{
    if (n == 0)
        return;
    soffa_box_delivery_t *d = calloc(n, sizeof *d);
    soffa_envelope_t *e = calloc(n, sizeof *e);
    if (!d || !e) {
        free(d);
        free(e);
        return;   /* not acknowledged: the broker delivers again */
    }
    uint8_t **opened = calloc(n, sizeof *opened);
    size_t *opened_len = calloc(n, sizeof *opened_len);
    if (!opened || !opened_len) {
        free(opened);
        free(opened_len);
        free(d);
        free(e);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t h[SOFFA_HASH_LEN];
        soffa_wire_hash(frames[i].data, frames[i].data_len, h);
        if (!frames[i].has_hash || memcmp(h, frames[i].hash, SOFFA_HASH_LEN) != 0
            || soffa_envelope_open(frames[i].data, frames[i].data_len,
                                   frames[i].has_record_key ? frames[i].record_key : NULL, &e[k]) != SOFFA_OK) {
            soffa_error("delivery of seq %llu is damaged; not acknowledged", (unsigned long long) frames[i].seq);
            break;   /* acknowledge only what precedes it */
        }
        const uint8_t *bytes = frames[i].data;
        size_t blen = frames[i].data_len;
        if (frames[i].has_record_key) {
            /* Kept as the opened envelope (the broker's seal is its own). */
            e[k].sealed = false;
            if (soffa_envelope_encode(&e[k], &opened[k], &opened_len[k]) != SOFFA_OK) {
                soffa_envelope_fini(&e[k]);
                break;
            }
            bytes = opened[k];
            blen = opened_len[k];
        }
        d[k] = (soffa_box_delivery_t) {frames[i].seq, bytes, blen, e[k].message_id, false};
        k++;
    }
    soffa_in_state_t initial = self->cfg.hook[0] ? SOFFA_IN_NEW : SOFFA_IN_DONE;
    soffa_err_t rc = k ? soffa_box_inbox_put(self->box, self->mailbox, d, k, initial) : SOFFA_OK;
    if (rc != SOFFA_OK) {
        soffa_error("deliveries not stored (%s); the broker will deliver them again", soffa_strerror(rc));
    } else if (k) {
        /* Durable in the inbox: now, and only now, acknowledge. */
        soffa_frame_t ack = {.type = SOFFA_FRAME_ACK, .seq = frames[k - 1].seq, .has_hash = true};
        memcpy(ack.hash, frames[k - 1].hash, SOFFA_HASH_LEN);
        snprintf(ack.mailbox, sizeof ack.mailbox, "%s", self->mailbox);
        soffa_client_send(self->client, &ack);
        s_watch_wake(self);
        for (size_t i = 0; i < k; i++) {
            if (d[i].stored) {
                self->last_delivery_us = soffa_now_us();
                s_note_answer(self, &e[i]);
                soffa_info("received seq %llu (%s) from %s", (unsigned long long) d[i].seq,
                           soffa_msg_type_name((soffa_msg_type_t) e[i].msg_type), e[i].sender_agent);
            } else {
                soffa_debug("seq %llu was delivered before; dropped", (unsigned long long) d[i].seq);
            }
        }
    }
    for (size_t i = 0; i < k; i++) {
        soffa_envelope_fini(&e[i]);
        if (opened[i])
            sodium_memzero(opened[i], opened_len[i]);
        free(opened[i]);
    }
    free(opened);
    free(opened_len);
    free(d);
    free(e);
}

/* ---- Reading the broker --------------------------------------------------------------- */

static void
s_read_broker(soffa_agent_t *self)
{
    soffa_frame_t batch[256];
    size_t nb = 0;
    for (int i = 0; i < 1024 && self->client; i++) {
        soffa_frame_t f;
        soffa_err_t rc = soffa_client_recv(self->client, &f, 0);
        if (rc == SOFFA_ERR_TIMEOUT)
            break;
        self->last_heard = soffa_mono_us();
        if (rc != SOFFA_OK) {
            soffa_frame_fini(&f);
            continue;
        }
        if (f.type == SOFFA_FRAME_DELIVER && f.tag == 0) {
            batch[nb++] = f;   /* kept until the batch is stored */
            if (nb == sizeof batch / sizeof *batch) {
                s_on_deliveries(self, batch, nb);
                for (size_t j = 0; j < nb; j++)
                    soffa_frame_fini(&batch[j]);
                nb = 0;
            }
            continue;
        }
        switch (f.type) {
        case SOFFA_FRAME_PUBLISH_ACK: s_on_publish_answer(self, &f); break;
        case SOFFA_FRAME_ERROR:
            if (f.code == SOFFA_ERR_SESSION_CLOSED && f.tag == 0) {
                /* Another connection with our key took over (a second agent
                 * with this key, or a stolen key): say so loudly, keep what
                 * we have, and come back only after the longest backoff. */
                soffa_error("the broker closed this agent's session: %s", f.text);
                self->closed_at_us = soffa_now_us();
                snprintf(self->closed_why, sizeof self->closed_why, "%s", f.text);
                soffa_frame_fini(&f);
                s_on_deliveries(self, batch, nb);
                for (size_t j = 0; j < nb; j++)
                    soffa_frame_fini(&batch[j]);
                s_disconnect(self, "the broker closed the session");
                self->next_connect = soffa_mono_us() + self->cfg.reconnect_max_ms * 1000;
                return;
            } else if (f.code == SOFFA_ERR_PROTOCOL_STATE) {
                /* The broker no longer knows this session (it restarted, or
                 * expired us): greet again now. Whatever was in flight is
                 * sent again after the greeting, and those waiting for an
                 * answer keep waiting for it. */
                soffa_frame_fini(&f);
                s_on_deliveries(self, batch, nb);
                for (size_t j = 0; j < nb; j++)
                    soffa_frame_fini(&batch[j]);
                s_disconnect(self, "the broker forgot this session");
                self->next_connect = 0;
                return;
            } else if (f.tag && s_waiter_find(self, S_W_REPLAY, f.tag)) {
                s_waiter_done(self, s_waiter_find(self, S_W_REPLAY, f.tag), s_fail((soffa_err_t) f.code, f.text));
            } else if (f.tag) {
                s_on_publish_answer(self, &f);
            } else {
                soffa_warn("broker says: %s: %s", soffa_errname((soffa_err_t) f.code), f.text);
            }
            break;
        case SOFFA_FRAME_DELIVER: {
            s_waiter_t *w = s_waiter_find(self, S_W_REPLAY, f.tag);
            if (w) {
                json_t *rec = soffa_record_json(f.data, f.data_len, f.has_hash ? f.hash : NULL,
                                                f.has_record_key ? f.record_key : NULL);
                if (rec)
                    json_array_append_new(w->acc, rec);
                /* Read: acknowledged once this batch is read (below). */
                if (f.has_hash) {
                    w->rp_seq = f.seq;
                    memcpy(w->rp_hash, f.hash, SOFFA_HASH_LEN);
                }
                w->deadline = soffa_mono_us() + 30000000;
            }
            break;
        }
        case SOFFA_FRAME_REPLAY_END: {
            s_waiter_t *w = s_waiter_find(self, S_W_REPLAY, f.tag);
            if (w) {
                json_t *a = json_pack("{s:b, s:I, s:I, s:O}", "ok", 1, "count", (json_int_t) f.count, "access_seq",
                                      (json_int_t) f.access_seq, "records", w->acc);
                s_waiter_done(self, w, a);
            }
            break;
        }
        case SOFFA_FRAME_STATUS_REPLY: {
            self->status_receipt = f.receipt;
            s_waiter_t *w = s_waiter_find(self, S_W_STATUS, f.tag);
            if (w) {
                json_t *mbs = json_array();
                for (size_t j = 0; j < f.n_statuses; j++) {
                    const soffa_mailbox_status_t *m = &f.statuses[j];
                    json_array_append_new(mbs, json_pack("{s:s, s:I, s:I, s:i, s:I, s:I, s:b, s:I}", "mailbox", m->mailbox,
                                                         "depth", (json_int_t) m->depth, "last_seq", (json_int_t) m->last_seq,
                                                         "consumers", (int) m->consumers, "lag", (json_int_t) m->lag,
                                                         "oldest_undelivered_us", (json_int_t) m->oldest_undelivered_us,
                                                         "no_reader", m->no_reader, "overdue", (json_int_t) m->overdue));
                }
                json_object_set_new(w->acc, "broker", json_pack("{s:I, s:i, s:I, s:o}", "head_seq",
                                                                (json_int_t) f.head_seq, "sessions", (int) f.sessions,
                                                                "started_at_us", (json_int_t) f.started_at_us,
                                                                "mailboxes", mbs));
                json_t *a = w->acc;
                w->acc = NULL;
                s_waiter_done(self, w, a);
            }
            break;
        }
        default: break;
        }
        soffa_frame_fini(&f);
    }
    s_on_deliveries(self, batch, nb);
    for (size_t j = 0; j < nb; j++)
        soffa_frame_fini(&batch[j]);
    /* What a replay sent so far is read: free its window, naming the last
     * record read and its hash, the proof the broker asks for. */
    for (size_t i = 0; self->client && i < S_MAX_WAITERS; i++) {
        s_waiter_t *w = &self->waiters[i];
        if (w->used && w->kind == S_W_REPLAY && w->rp_seq) {
            soffa_frame_t c = {.type = SOFFA_FRAME_REPLAY_ACK, .tag = w->key, .seq = w->rp_seq, .has_hash = true};
            memcpy(c.hash, w->rp_hash, SOFFA_HASH_LEN);
            soffa_client_send(self->client, &c);
            w->rp_seq = 0;
        }
    }
}

/* ---- Hooks -------------------------------------------------------------------------- */

typedef struct {
    soffa_agent_t *self;
    int64_t now;
    uint64_t seq;
    json_t *rec;
    uint32_t attempts;
} s_hook_pick_t;

static int
s_hook_pick(void *ctx, const soffa_box_in_t *in)
{
    s_hook_pick_t *p = ctx;
    if (in->state != SOFFA_IN_NEW || in->next_try_us > p->now)
        return 0;   /* one record waiting for its retry never blocks the next */
    p->seq = in->seq;
    p->attempts = in->attempts;
    p->rec = soffa_record_json(in->env, in->len, NULL, NULL);
    return 1;
}

/* Closes the hook's stdin and drops what was not written. */
static void
s_hook_input_close(soffa_agent_t *self)
{
    if (self->hook_in >= 0)
        close(self->hook_in);
    self->hook_in = -1;
    free(self->hook_text);
    self->hook_text = NULL;
    self->hook_len = self->hook_off = 0;
}

/* Writes what the pipe takes of the record without blocking (a hook that
 * does not read cannot stall the agent); closes the pipe when all is
 * written, or when the hook will not take the rest (EPIPE). */
static void
s_hook_feed(soffa_agent_t *self)
{
    while (self->hook_in >= 0 && self->hook_off < self->hook_len) {
        ssize_t n = write(self->hook_in, self->hook_text + self->hook_off, self->hook_len - self->hook_off);
        if (n > 0) {
            self->hook_off += (size_t) n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            if (n < 0 && errno == EAGAIN)
                return;   /* the pipe is full: more on the next round of the loop */
            soffa_debug("hook for seq %llu did not read all its input", (unsigned long long) self->hook_seq);
            break;
        }
    }
    s_hook_input_close(self);
}

static void
s_hook_start(soffa_agent_t *self)
{
    s_hook_pick_t p = {self, soffa_now_us(), 0, NULL, 0};
    soffa_box_inbox_scan(self->box, 0, s_hook_pick, &p);
    if (!p.seq)
        return;
    char *text = p.rec ? json_dumps(p.rec, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0;
    char *line = text ? realloc(text, len + 2) : NULL;
    const char *type = p.rec ? json_string_value(json_object_get(p.rec, "type")) : NULL;
    char seqs[48], types[96], agent[SOFFA_NAME_MAX + 16];
    snprintf(seqs, sizeof seqs, "SOFFA_SEQ=%llu", (unsigned long long) p.seq);
    snprintf(types, sizeof types, "SOFFA_TYPE=%.60s", type ? type : "");
    snprintf(agent, sizeof agent, "SOFFA_AGENT=%s", self->cfg.name);
    json_decref(p.rec);
    if (!line) {
        free(text);
        soffa_error("cannot prepare the hook input for seq %llu", (unsigned long long) p.seq);
        return;
    }
    line[len] = '\n';
    line[len + 1] = '\0';

    /* Everything the child needs is made here: between fork and exec it only
     * moves descriptors (the agent has other threads, so no malloc there). */
    extern char **environ;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 4, sizeof *envp);
    char logp[1100];
    snprintf(logp, sizeof logp, "%s/hook.log", self->data_path);
    int pfd[2] = {-1, -1};
    int log = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (!envp || pipe2(pfd, O_CLOEXEC) != 0) {
        soffa_error("cannot start the hook: %s", strerror(errno));
        free(envp);
        free(line);
        if (log >= 0)
            close(log);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "SOFFA_SEQ=", 10) && strncmp(environ[i], "SOFFA_TYPE=", 11)
            && strncmp(environ[i], "SOFFA_AGENT=", 12))
            envp[k++] = environ[i];
    envp[k++] = seqs;
    envp[k++] = types;
    envp[k++] = agent;
    /* The whole record fits in the pipe when the system allows it. */
    if (len + 1 > 65536)
        (void) fcntl(pfd[1], F_SETPIPE_SZ, (int) (len + 1 < (1u << 20) ? len + 1 : (1u << 20)));
    (void) fcntl(pfd[1], F_SETFL, O_NONBLOCK);
    char *const argv[] = {"sh", "-c", self->cfg.hook, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        /* dup2 clears close-on-exec on 0, 1 and 2 only. (soffa-agent keeps
         * 0, 1 and 2 open, so the pipe and the log are above them.) */
        if (pfd[0] <= 2 || log == 0 || dup2(pfd[0], 0) < 0)
            _exit(126);
        if (log > 2) {
            dup2(log, 1);
            dup2(log, 2);
        }
#ifdef SYS_close_range
        if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
            for (int fd = 3; fd < 65536; fd++)
                close(fd);
        execve("/bin/sh", argv, envp);
        _exit(127);
    }
    int fork_errno = errno;
    free(envp);
    close(pfd[0]);
    if (log >= 0)
        close(log);
    if (pid < 0) {
        close(pfd[1]);
        free(line);
        soffa_error("cannot start the hook: %s", strerror(fork_errno));
        return;
    }
    self->hook_pid = pid;
    self->hook_seq = p.seq;
    self->hook_started = soffa_mono_us();
    self->hook_in = pfd[1];
    self->hook_text = line;
    self->hook_len = len + 1;
    self->hook_off = 0;
    s_hook_feed(self);
    /* Keep the attempt count with the record while it runs. */
    soffa_box_inbox_set_state(self->box, p.seq, SOFFA_IN_NEW, p.attempts, INT64_MAX);
}

typedef struct {
    uint32_t attempts;
} s_att_t;

static int
s_get_attempts(void *ctx, const soffa_box_in_t *in)
{
    ((s_att_t *) ctx)->attempts = in->attempts;
    return 1;
}

static void
s_hook_tick(soffa_agent_t *self)
{
    if (!self->cfg.hook[0])
        return;
    if (self->hook_pid) {
        if (self->hook_in >= 0)
            s_hook_feed(self);
        int status;
        pid_t r = waitpid(self->hook_pid, &status, WNOHANG);
        bool timed_out = r == 0 && soffa_mono_us() - self->hook_started > self->cfg.hook_timeout_ms * 1000;
        if (timed_out) {
            kill(self->hook_pid, SIGKILL);
            waitpid(self->hook_pid, &status, 0);
            r = self->hook_pid;
        }
        if (r != self->hook_pid)
            return;
        self->hook_pid = 0;
        s_hook_input_close(self);
        bool ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        s_att_t a = {0};
        soffa_box_inbox_get(self->box, self->hook_seq, s_get_attempts, &a);
        if (ok) {
            soffa_box_inbox_set_state(self->box, self->hook_seq, SOFFA_IN_DONE, a.attempts + 1, 0);
            soffa_debug("hook handled seq %llu", (unsigned long long) self->hook_seq);
        } else {
            uint32_t n = a.attempts + 1;
            if (n >= (uint32_t) self->cfg.hook_retries) {
                soffa_box_inbox_set_state(self->box, self->hook_seq, SOFFA_IN_FAILED, n, 0);
                soffa_warn("hook failed %u times for seq %llu: parked (see 'soffa inbox --failed', 'soffa retry')", n,
                           (unsigned long long) self->hook_seq);
            } else {
                int64_t wait = self->cfg.hook_backoff_ms * (1LL << (n - 1 < 16 ? n - 1 : 16));
                if (wait > 60000)
                    wait = 60000;
                soffa_box_inbox_set_state(self->box, self->hook_seq, SOFFA_IN_NEW, n, soffa_now_us() + wait * 1000);
                soffa_info("hook %s for seq %llu (attempt %u); retrying in %lld ms",
                           timed_out ? "timed out" : "failed", (unsigned long long) self->hook_seq, n, (long long) wait);
            }
        }
    }
    int64_t now = soffa_mono_us();
    if (!self->hook_pid && now >= self->next_hook_scan) {
        s_hook_start(self);
        if (!self->hook_pid)
            self->next_hook_scan = now + 200000;
    }
}

/* ---- Control requests -------------------------------------------------------------- */

static const char *
s_str(json_t *v, const char *fallback)
{
    const char *s = json_string_value(v);
    return s ? s : fallback;
}

typedef struct {
    json_t *msg;
    bool found;
} s_json_t;

static int
s_load_json(void *ctx, const soffa_box_in_t *in)
{
    s_json_t *j = ctx;
    j->msg = soffa_record_json(in->env, in->len, NULL, NULL);
    if (j->msg) {
        static const char *const states[] = {"new", "done", "failed"};
        json_object_set_new(j->msg, "state", json_string(states[in->state <= 2 ? in->state : 0]));
        json_object_set_new(j->msg, "hook_attempts", json_integer(in->attempts));
    }
    j->found = j->msg != NULL;
    return 1;
}

static int
s_last_seq(void *ctx, const soffa_box_in_t *in)
{
    *(uint64_t *) ctx = in->seq;
    return 0;
}

/* Finds an inbox record by message id (UUID text), sequence number, or
 * "last" (the newest). */
static json_t *
s_inbox_lookup(soffa_agent_t *self, const char *id)
{
    uint64_t seq = 0;
    uint8_t mid[16];
    if (!strcmp(id, "last")) {
        soffa_box_inbox_scan(self->box, 0, s_last_seq, &seq);
        if (!seq)
            return NULL;
    } else if (soffa_uuid_parse(id, mid)) {
        if (soffa_box_inbox_find(self->box, mid, &seq) != SOFFA_OK)
            return NULL;
    } else {
        char *end;
        seq = strtoull(id, &end, 10);
        if (*end || !seq)
            return NULL;
    }
    s_json_t j = {NULL, false};
    soffa_box_inbox_get(self->box, seq, s_load_json, &j);
    return j.msg;
}

static void
s_cmd_send(soffa_agent_t *self, const uint8_t *rid, size_t rid_len, json_t *req)
{
    json_t *m = json_object_get(req, "message");
    if (!json_is_object(m)) {
        s_reply(self, rid, rid_len, s_fail(SOFFA_ERR_MALFORMED, "send needs a message object"));
        return;
    }
    m = json_deep_copy(m);
    /* An answer copies the subject, thread and consent of what it answers. */
    const char *re = json_string_value(json_object_get(req, "re"));
    if (re) {
        json_t *orig = s_inbox_lookup(self, re);
        json_t *om = json_object_get(orig, "message");
        if (!om) {
            json_decref(orig);
            json_decref(m);
            s_reply(self, rid, rid_len, s_fail(SOFFA_ERR_NOT_FOUND, "no message with that id or sequence in this agent's inbox"));
            return;
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
    }
    int64_t now = soffa_now_us();
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

    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    char why[300] = "";
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = text ? soffa_msg_from_json(text, &msg, why, sizeof why) : SOFFA_ERR_NOMEM;
    free(text);
    if (rc == SOFFA_OK)
        rc = soffa_msg_validate(msg, now, why, sizeof why);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rc == SOFFA_OK)
        rc = soffa_msg_encode(msg, &buf, &len);
    if (rc != SOFFA_OK) {
        soffa_msg_destroy(&msg);
        s_reply(self, rid, rid_len, s_fail(rc, why));
        return;
    }
    soffa_msg_view_t v;
    soffa_msg_view(msg, &v);
    uint8_t mid[16];
    memcpy(mid, v.message_id, 16);
    soffa_msg_destroy(&msg);
    uint64_t local_id;
    rc = soffa_box_outbox_put(self->box, mid, buf, len, &local_id);   /* durable from here */
    free(buf);
    if (rc != SOFFA_OK) {
        s_reply(self, rid, rid_len, s_fail(rc, "the message could not be stored in the outbox; nothing was sent"));
        return;
    }
    char ms[SOFFA_UUID_STR];
    soffa_uuid_format(mid, ms);
    soffa_info("message %s (%s) stored in the outbox as entry %llu", ms, soffa_msg_type_name(v.type),
               (unsigned long long) local_id);
    self->sent_gen++;
    s_watch_wake(self);
    json_int_t wait_ms = json_integer_value(json_object_get(req, "wait_ms"));
    s_waiter_t *w = wait_ms > 0 && self->client
                        ? s_waiter_new(self, S_W_SEND, rid, rid_len, local_id, (int) (wait_ms > 60000 ? 60000 : wait_ms))
                        : NULL;
    if (w)
        memcpy(w->msg_id, mid, 16);
    else
        s_reply(self, rid, rid_len, json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "state", "queued", "message_id", ms,
                                              "note", self->client ? "stored in the outbox; being sent"
                                                                   : "the broker is not reachable; kept in the outbox and sent when it is"));
    s_send_outbox(self);
}

static json_t *
s_status_json(soffa_agent_t *self)
{
    uint64_t total, fresh, failed;
    soffa_box_inbox_counts(self->box, &total, &fresh, &failed);
    char ts[32] = "";
    if (self->last_delivery_us)
        soffa_time_format(self->last_delivery_us, ts);
    s_overdue_t o = {self, soffa_now_us(), 0, 0, NULL};
    soffa_box_await_scan(self->box, s_overdue_one, &o);
    json_t *st = json_pack("{s:b, s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:{s:I, s:I}}", "ok", 1, "agent", self->cfg.name,
                     "role", soffa_role_name(self->role), "connected", self->client != NULL, "broker_endpoint",
                     self->cfg.broker, "mailbox", self->mailbox, "outbox", (json_int_t) soffa_box_outbox_count(self->box),
                     "inbox", (json_int_t) total, "inbox_new", (json_int_t) fresh, "inbox_failed", (json_int_t) failed,
                     "last_delivery", ts, "refused", (json_int_t) self->refused, "overdue", "signals",
                     (json_int_t) o.signals, "referrals", (json_int_t) o.referrals);
    if (st && self->closed_at_us) {
        char at[32];
        soffa_time_format(self->closed_at_us, at);
        json_object_set_new(st, "session_closed", json_pack("{s:s, s:s}", "at", at, "why", self->closed_why));
    }
    return st;
}

typedef struct {
    json_t *arr;
    bool failed_only;
    size_t limit;
} s_list_t;

static int
s_list_one(void *ctx, const soffa_box_in_t *in)
{
    s_list_t *l = ctx;
    if (l->failed_only && in->state != SOFFA_IN_FAILED)
        return 0;
    s_json_t j = {NULL, false};
    s_load_json(&j, in);
    if (j.msg)
        json_array_append_new(l->arr, j.msg);
    return json_array_size(l->arr) >= l->limit;
}

static void
s_on_control(soffa_agent_t *self)
{
    for (int i = 0; i < 64; i++) {
        zmq_msg_t parts[3];
        int n = 0;
        bool more = true;
        while (more && n < 3) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], self->control, ZMQ_DONTWAIT) < 0) {
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
            if (zmq_msg_recv(&x, self->control, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&x);
                break;
            }
            more = zmq_msg_more(&x);
            zmq_msg_close(&x);
        }
        if (n == 3 && zmq_msg_size(&parts[0]) <= 256) {
            const uint8_t *rid = zmq_msg_data(&parts[0]);
            size_t rid_len = zmq_msg_size(&parts[0]);
            json_error_t jerr;
            json_t *req = json_loadb(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), 0, &jerr);
            const char *cmd = json_string_value(json_object_get(req, "cmd"));
            if (!cmd) {
                s_reply(self, rid, rid_len, s_fail(SOFFA_ERR_MALFORMED, "requests are JSON objects with a \"cmd\""));
            } else if (!strcmp(cmd, "send")) {
                s_cmd_send(self, rid, rid_len, req);
            } else if (!strncmp(cmd, "school-", 7)) {
                bool queued = false;
                s_reply(self, rid, rid_len, soffa_school_control(self->school, cmd, req, &queued));
                if (queued)
                    s_send_outbox(self);
            } else if (!strcmp(cmd, "status")) {
                json_t *st = s_status_json(self);
                s_waiter_t *w = NULL;
                if (self->client && json_is_true(json_object_get(req, "broker"))) {
                    uint64_t tag = soffa_client_next_tag(self->client);
                    w = s_waiter_new(self, S_W_STATUS, rid, rid_len, tag, 3000);
                    soffa_frame_t sr = {.type = SOFFA_FRAME_STATUS_REQUEST, .tag = tag, .receipt = self->status_receipt};
                    if (w && soffa_client_send(self->client, &sr) == SOFFA_OK)
                        w->acc = st;
                    else if (w)
                        w->used = false, w = NULL;
                }
                if (!w)
                    s_reply(self, rid, rid_len, st);
            } else if (!strcmp(cmd, "inbox")) {
                s_list_t l = {json_array(), json_is_true(json_object_get(req, "failed")),
                              (size_t) (json_integer_value(json_object_get(req, "limit")) > 0
                                            ? json_integer_value(json_object_get(req, "limit"))
                                            : 1000)};
                soffa_box_inbox_scan(self->box, (uint64_t) json_integer_value(json_object_get(req, "after")), s_list_one, &l);
                s_overdue_t o = {self, soffa_now_us(), 0, 0, json_array()};
                soffa_box_await_scan(self->box, s_overdue_one, &o);
                s_reply(self, rid, rid_len, json_pack("{s:b, s:o, s:o}", "ok", 1, "messages", l.arr, "overdue", o.list));
            } else if (!strcmp(cmd, "show")) {
                const char *id = json_string_value(json_object_get(req, "id"));
                json_t *rec = id ? s_inbox_lookup(self, id) : NULL;
                uint8_t mid[16];
                soffa_box_sent_t r;
                if (rec) {
                    s_reply(self, rid, rid_len, json_pack("{s:b, s:s, s:o}", "ok", 1, "where", "inbox", "record", rec));
                } else if (id && soffa_uuid_parse(id, mid) && soffa_box_sent_get(self->box, mid, &r) == SOFFA_OK) {
                    s_reply(self, rid, rid_len, json_pack("{s:b, s:s, s:s, s:I, s:s, s:s, s:s}", "ok", 1, "where", "sent",
                                                          "outcome", r.code ? "refused" : "accepted", "seq",
                                                          (json_int_t) r.seq, "mailbox", r.mailbox, "code",
                                                          soffa_errname((soffa_err_t) r.code), "reason", r.reason));
                } else {
                    s_reply(self, rid, rid_len, s_fail(SOFFA_ERR_NOT_FOUND, "no such message in this agent's inbox or sent log"));
                }
            } else if (!strcmp(cmd, "retry")) {
                uint64_t seq = (uint64_t) json_integer_value(json_object_get(req, "seq"));
                soffa_err_t rc = seq ? soffa_box_inbox_set_state(self->box, seq, SOFFA_IN_NEW, 0, 0) : SOFFA_ERR_NOT_FOUND;
                self->next_hook_scan = 0;
                s_reply(self, rid, rid_len, rc == SOFFA_OK ? json_pack("{s:b}", "ok", 1) : s_fail(rc, "no such inbox record"));
            } else if (!strcmp(cmd, "replay")) {
                if (!self->client) {
                    s_reply(self, rid, rid_len, s_fail(SOFFA_ERR_UNAVAILABLE, "the broker is not reachable; a replay needs it"));
                } else {
                    json_t *fl = json_object_get(req, "filter");
                    soffa_frame_t r = {.type = SOFFA_FRAME_REPLAY, .tag = soffa_client_next_tag(self->client)};
                    snprintf(r.text, sizeof r.text, "%s", s_str(json_object_get(req, "request"), "replay"));
                    r.filter.from_seq = (uint64_t) json_integer_value(json_object_get(fl, "from_seq"));
                    r.filter.to_seq = (uint64_t) json_integer_value(json_object_get(fl, "to_seq"));
                    r.filter.from_us = json_integer_value(json_object_get(fl, "from_us"));
                    r.filter.to_us = json_integer_value(json_object_get(fl, "to_us"));
                    r.filter.limit = (uint64_t) json_integer_value(json_object_get(fl, "limit"));
                    r.filter.message_type = (uint32_t) json_integer_value(json_object_get(fl, "message_type"));
                    snprintf(r.filter.mailbox, sizeof r.filter.mailbox, "%s", s_str(json_object_get(fl, "mailbox"), ""));
                    snprintf(r.filter.subject_id, sizeof r.filter.subject_id, "%s",
                             s_str(json_object_get(fl, "subject_id"), ""));
                    s_waiter_t *w = s_waiter_new(self, S_W_REPLAY, rid, rid_len, r.tag, 30000);
                    if (!w || soffa_client_send(self->client, &r) != SOFFA_OK) {
                        if (w)
                            w->used = false;
                        s_reply(self, rid, rid_len, s_fail(SOFFA_ERR_UNAVAILABLE, "too busy; try again"));
                    } else {
                        w->acc = json_array();
                    }
                }
            } else {
                s_reply(self, rid, rid_len, s_fail(SOFFA_ERR_INVALID_ARG, "unknown command"));
            }
            json_decref(req);
        }
        for (int k = 0; k < n; k++)
            zmq_msg_close(&parts[k]);
    }
}

#include "soffa_agent_web.inc"

/* ---- Open, run, destroy ------------------------------------------------------------- */

soffa_err_t
soffa_agent_open(soffa_agent_t *self, char *why, size_t whylen)
{
    soffa_err_t rc = soffa_box_open(&self->box, self->data_path, self->cfg.map_size);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s", self->data_path, soffa_strerror(rc));
        return rc;
    }
    /* Earlier versions handed the hook its input in this file, which kept
     * the last message (identity number included) on disk. */
    char stale[1100];
    snprintf(stale, sizeof stale, "%s/hook-input.json", self->data_path);
    if (unlink(stale) == 0)
        soffa_info("removed %s, left by an earlier version", stale);
    rc = soffa_school_new(&self->school, &self->school_cfg, self->box, self->sec, self->control_path, self->data_path);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: the school tables: %s", self->data_path, soffa_strerror(rc));
        return rc;
    }
    self->ctx = zmq_ctx_new();
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
    if (self->web.listen[0] && (rc = s_web_open(self, why, whylen)) != SOFFA_OK)
        return rc;
    self->backoff_ms = 200;
    soffa_info("agent %s: store %s, control %s, broker %s, %llu message(s) waiting in the outbox", self->cfg.name,
               self->data_path, self->control_path, self->cfg.broker,
               (unsigned long long) soffa_box_outbox_count(self->box));
    return SOFFA_OK;
}

soffa_err_t
soffa_agent_run(soffa_agent_t *self, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        soffa_notify_watchdog();
        int64_t now = soffa_mono_us();
        if (!self->client && now >= self->next_connect)
            s_connect(self);
        zmq_pollitem_t items[3] = {{self->control, 0, ZMQ_POLLIN, 0}, {NULL, 0, ZMQ_POLLIN, 0},
                                   {NULL, 0, ZMQ_POLLIN, 0}};
        int ni = 1, web_i = -1;
        if (self->client) {
            items[1].socket = soffa_client_socket(self->client);
            ni = 2;
        }
        if (self->webctl) {
            web_i = ni;
            items[ni++].socket = self->webctl;
        }
        int n = zmq_poll(items, ni, 50);
        if (n < 0 && errno != EINTR)
            return SOFFA_ERR_TRANSPORT;
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            s_on_control(self);
        if (n > 0 && web_i > 0 && (items[web_i].revents & ZMQ_POLLIN))
            s_on_web_control(self);
        if (self->client && ni >= 2 && web_i != 1 && n > 0 && (items[1].revents & ZMQ_POLLIN))
            s_read_broker(self);
        now = soffa_mono_us();
        if (self->client) {
            int64_t hb = self->cfg.heartbeat_ms;
            if (self->broker_heartbeat_ms && (int64_t) self->broker_heartbeat_ms / 2 < hb)
                hb = self->broker_heartbeat_ms / 2;
            if (now >= self->next_ping) {
                soffa_frame_t p = {.type = SOFFA_FRAME_PING, .tag = (uint64_t) now};
                soffa_client_send(self->client, &p);
                self->next_ping = now + hb * 1000;
            }
            if (now - self->last_heard > 3 * hb * 1000 + 500000)
                s_disconnect(self, "no answer to heartbeats");
        }
        if (self->client) {
            /* Publishes unanswered for long are sent again (same id). */
            for (size_t i = 0; i < self->n_flight; i++) {
                if (now - self->flight[i].sent_at > S_RESEND_US) {
                    self->n_flight = 0;
                    self->out_next = 0;
                    break;
                }
            }
            s_send_outbox(self);
        }
        for (size_t i = 0; i < S_MAX_WAITERS; i++) {
            s_waiter_t *w = &self->waiters[i];
            if (!w->used || now < w->deadline)
                continue;
            if (w->kind == S_W_SEND) {
                char ms[SOFFA_UUID_STR];
                soffa_uuid_format(w->msg_id, ms);
                s_waiter_done(self, w, json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "state", "queued", "message_id", ms,
                                                 "note", "no answer from the broker yet; kept in the outbox and retried"));
            } else if (w->kind == S_W_STATUS) {
                json_t *a = w->acc;
                w->acc = NULL;
                s_waiter_done(self, w, a);
            } else if (w->kind == S_W_WATCH) {
                s_waiter_done(self, w, s_watch_state(self));
            } else {
                s_waiter_done(self, w, s_fail(SOFFA_ERR_TIMEOUT, "the replay did not finish in time"));
            }
        }
        s_hook_tick(self);
        soffa_school_tick(self->school);
    }
    if (self->hook_pid) {
        int status;
        s_hook_input_close(self);              /* what it has not read by now it will not get */
        waitpid(self->hook_pid, &status, 0);   /* let the running hook finish */
        self->hook_pid = 0;
    }
    soffa_info("stopping; %llu message(s) wait in the outbox", (unsigned long long) soffa_box_outbox_count(self->box));
    return SOFFA_OK;
}

void
soffa_agent_destroy(soffa_agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_agent_t *self = *self_p;
    for (size_t i = 0; i < S_MAX_WAITERS; i++)
        if (self->waiters[i].used)
            json_decref(self->waiters[i].acc);
    s_hook_input_close(self);
    soffa_school_destroy(&self->school);
    soffa_client_close(&self->client);
    if (self->control) {
        zmq_close(self->control);
        unlink(self->control_path);
    }
    if (self->webctl) {
        zmq_close(self->webctl);
        unlink(self->web.socket_path);
    }
    sodium_memzero(self->access_key, sizeof self->access_key);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    soffa_box_close(&self->box);
    explicit_bzero(self->sec, sizeof self->sec);
    free(self);
    *self_p = NULL;
}
