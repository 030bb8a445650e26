/*  soffa_agent_web: soffa-web's restricted control socket (see
 *  soffa_agent_web.h for its grammar and what it cannot do).
 */
#include "soffa_agent_web.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_agent_control.h"
#include "soffa_agent_inbox.h"
#include "soffa_agent_int.h"
#include "soffa_agent_outbox.h"
#include "soffa_agent_reply.h"
#include "soffa_log.h"
#include "soffa_msg.h"
#include "soffa_record.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

#define S_WEB_LIST_MAX 5000   /* the longest list one request gets */

/* The keyed hash of an identity in the site's access log. */
static void
s_subject_key(const soffa_agent_t *self, const char *id, uint8_t out[SOFFA_BOX_KEY_LEN])
{
    crypto_generichash(out, SOFFA_BOX_KEY_LEN, (const unsigned char *) id, strlen(id), self->access_key,
                       sizeof self->access_key);
}

static void
s_hex_n(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Reads DATA_DIR/access.key (32 random bytes, owner-only), making it on
 * first start. */
static soffa_err_t
s_access_key(soffa_agent_t *self, char *why, size_t whylen)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/access.key", self->data_path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        randombytes_buf(self->access_key, sizeof self->access_key);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        bool ok = fd >= 0 && write(fd, self->access_key, sizeof self->access_key) == (ssize_t) sizeof self->access_key
                  && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        if (!ok) {
            snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
            return SOFFA_ERR_STORE_IO;
        }
        return SOFFA_OK;
    }
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SOFFA_ERR_STORE_IO;
    }
    ssize_t r = (st.st_mode & 077) ? -1 : read(fd, self->access_key, sizeof self->access_key);
    close(fd);
    if (r != (ssize_t) sizeof self->access_key) {
        snprintf(why, whylen, "%s must hold 32 bytes and be owner-only (chmod 600)", path);
        return SOFFA_ERR_PERMISSION;
    }
    return SOFFA_OK;
}

soffa_err_t
soffa_agent_web_open(soffa_agent_t *self, char *why, size_t whylen)
{
    soffa_err_t rc = s_access_key(self, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    if (mkdir(self->web.dir_path, 0700) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "cannot create the web directory %s: %s", self->web.dir_path, strerror(errno));
        return SOFFA_ERR_IO;
    }
    self->webctl = zmq_socket(self->ctx, ZMQ_ROUTER);
    char ep[1100];
    snprintf(ep, sizeof ep, "ipc://%s", self->web.socket_path);
    unlink(self->web.socket_path);
    mode_t old = umask(077);
    int brc = zmq_bind(self->webctl, ep);
    umask(old);
    if (brc != 0) {
        snprintf(why, whylen, "cannot open the web control socket %s: %s", self->web.socket_path, zmq_strerror(errno));
        return SOFFA_ERR_TRANSPORT;
    }
    chmod(self->web.socket_path, 0600);
    int linger = 0;
    zmq_setsockopt(self->webctl, ZMQ_LINGER, &linger, sizeof linger);
    soffa_info("web control socket %s (for soffa-web, listening at %s)", self->web.socket_path, self->web.listen);
    return SOFFA_OK;
}

/* ---- Lists ------------------------------------------------------------------------------------ */

typedef struct {
    json_t *arr;
    size_t limit;
} s_wlist_t;

static int
s_wlist_in(void *ctx, const soffa_box_in_t *in)
{
    s_wlist_t *l = ctx;
    json_t *msg = soffa_agent_inbox_record(in);
    if (!msg)
        return 0;
    json_object_set_new(msg, "stored_at_us", json_integer(in->received_us));
    json_array_append_new(l->arr, msg);
    if (json_array_size(l->arr) > l->limit)
        json_array_remove(l->arr, 0);   /* the newest `limit` stay */
    return 0;
}

/* A message this site sent, with what became of it. */
static json_t *
s_sent_json(soffa_agent_t *self, const uint8_t msg_id[16], const uint8_t *msg, size_t len)
{
    soffa_msg_t *m = NULL;
    if (soffa_msg_decode(msg, len, &m) != SOFFA_OK)
        return NULL;
    char *text = soffa_msg_to_json(m);
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    json_t *mj = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_t *o = mj ? json_pack("{s:s, s:o}", "type", soffa_msg_type_name(v.type), "message", mj) : NULL;
    soffa_msg_destroy(&m);
    if (!o)
        return NULL;
    soffa_box_sent_t r;
    if (soffa_box_sent_get(self->box, msg_id, &r) == SOFFA_OK) {
        json_object_set_new(o, "outcome", json_string(r.code ? "refused" : "accepted"));
        json_object_set_new(o, "outcome_at_us", json_integer(r.at_us));
        if (r.code) {
            json_object_set_new(o, "code", json_string(soffa_errname((soffa_err_t) r.code)));
            json_object_set_new(o, "reason", json_string(r.reason));
        } else {
            json_object_set_new(o, "seq", json_integer((json_int_t) r.seq));
            json_object_set_new(o, "mailbox", json_string(r.mailbox));
        }
    } else {
        json_object_set_new(o, "outcome", json_string("waiting"));
    }
    return o;
}

typedef struct {
    soffa_agent_t *self;
    json_t *arr;
    size_t limit;
} s_wsent_t;

static int
s_wlist_sent(void *ctx, const uint8_t msg_id[16], const uint8_t *msg, size_t len)
{
    s_wsent_t *l = ctx;
    json_t *o = s_sent_json(l->self, msg_id, msg, len);
    if (o)
        json_array_append_new(l->arr, o);
    if (json_array_size(l->arr) > l->limit)
        json_array_remove(l->arr, 0);
    return 0;
}

typedef struct {
    uint8_t *b;
    size_t n;
} s_copy_t;

static void
s_copy_fn(void *ctx, const uint8_t *msg, size_t len)
{
    s_copy_t *cp = ctx;
    cp->b = malloc(len ? len : 1);
    if (cp->b) {
        memcpy(cp->b, msg, len);
        cp->n = len;
    }
}

/* ---- The access log ------------------------------------------------------------------------- */

typedef struct {
    soffa_agent_t *self;
    json_t *names;     /* hex key -> identity, of every youth this site holds */
} s_wnames_t;

static void
s_wname_add(s_wnames_t *n, json_t *msg)
{
    const char *id = json_string_value(json_object_get(json_object_get(msg, "subject"), "id"));
    if (!id || !*id)
        return;
    uint8_t k[SOFFA_BOX_KEY_LEN];
    char hex[2 * SOFFA_BOX_KEY_LEN + 1];
    s_subject_key(n->self, id, k);
    s_hex_n(k, sizeof k, hex);
    json_object_set_new(n->names, hex, json_string(id));
}

typedef struct {
    json_t *entries;
    json_t *names;
    uint8_t key[SOFFA_BOX_KEY_LEN];
    bool filter;
    size_t limit;
    const char *actor;   /* only this person's views, or NULL */
    const char *what;    /* only views of this kind, or NULL */
} s_wacc_t;

static int
s_wacc_one(void *ctx, const soffa_box_access_t *a)
{
    s_wacc_t *l = ctx;
    if ((l->actor && strcmp(l->actor, a->actor) != 0) || (l->what && strcmp(l->what, a->what) != 0))
        return 0;
    bool hit = !l->filter;
    json_t *subjects = json_array();
    for (uint32_t i = 0; i < a->n_keys; i++) {
        const uint8_t *k = a->keys + (size_t) i * SOFFA_BOX_KEY_LEN;
        if (l->filter && sodium_memcmp(k, l->key, SOFFA_BOX_KEY_LEN) == 0)
            hit = true;
        char hex[2 * SOFFA_BOX_KEY_LEN + 1];
        s_hex_n(k, SOFFA_BOX_KEY_LEN, hex);
        const char *id = json_string_value(json_object_get(l->names, hex));
        char unknown[20];
        snprintf(unknown, sizeof unknown, "#%.12s", hex);   /* a youth this site no longer holds */
        json_array_append_new(subjects, json_string(id ? id : unknown));
    }
    if (!hit) {
        json_decref(subjects);
        return 0;
    }
    static const uint8_t zero[16];
    char mid[SOFFA_UUID_STR] = "";
    if (memcmp(a->msg_id, zero, 16) != 0)
        soffa_uuid_format(a->msg_id, mid);
    json_array_append_new(l->entries, json_pack("{s:I, s:I, s:s, s:s, s:s, s:o}", "seq", (json_int_t) a->seq, "at_us",
                                                (json_int_t) a->at_us, "actor", a->actor, "what", a->what,
                                                "message_id", mid, "subjects", subjects));
    if (json_array_size(l->entries) > l->limit)
        json_array_remove(l->entries, 0);
    return 0;
}

static int
s_wnames_kept(void *ctx, const uint8_t msg_id[16], const uint8_t *msg, size_t len)
{
    (void) msg_id;
    s_wnames_t *n = ctx;
    soffa_msg_t *m = NULL;
    if (soffa_msg_decode(msg, len, &m) != SOFFA_OK)
        return 0;
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    if (v.subject_id && *v.subject_id) {
        json_t *o = json_pack("{s:{s:s}}", "subject", "id", v.subject_id);
        s_wname_add(n, o);
        json_decref(o);
    }
    soffa_msg_destroy(&m);
    return 0;
}

static int
s_wnames_in(void *ctx, const soffa_box_in_t *in)
{
    s_wnames_t *n = ctx;
    json_t *rec = soffa_record_json(in->env, in->len, NULL, NULL);
    s_wname_add(n, json_object_get(rec, "message"));
    json_decref(rec);
    return 0;
}

static size_t
s_wlimit(json_t *req, size_t def)
{
    json_int_t v = json_integer_value(json_object_get(req, "limit"));
    return v > 0 && v <= S_WEB_LIST_MAX ? (size_t) v : def;
}

/* ---- The commands ------------------------------------------------------------------------------ */

static void
s_web_whoami(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    const char *slash = strchr(self->session.mailbox, '/');
    soffa_agent_reply(req, json_pack("{s:b, s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:s}", "ok", 1, "agent", self->cfg.name,
                                     "role", soffa_role_name(self->session.role), "mailbox", self->session.mailbox,
                                     "kommun", slash && strncmp(self->session.mailbox, "school", 6) ? slash + 1 : "",
                                     "connected", soffa_agent_online(self), "signal_ack_due_ms",
                                     (json_int_t) self->cfg.signal_ack_due, "referral_receipt_due_ms",
                                     (json_int_t) self->cfg.referral_receipt_due, "site_name", self->web.site_name));
}

static void
s_web_list(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    size_t limit = s_wlimit(req->body, 1000);
    s_wlist_t in = {json_array(), limit};
    soffa_box_inbox_scan(self->box, 0, s_wlist_in, &in);
    s_wsent_t sent = {self, json_array(), limit};
    soffa_box_kept_scan(self->box, s_wlist_sent, &sent);
    json_t *overdue = json_array();
    soffa_agent_outbox_overdue(self, overdue, NULL, NULL);
    soffa_agent_reply(req, json_pack("{s:b, s:o, s:o, s:o}", "ok", 1, "inbox", in.arr, "sent", sent.arr, "overdue", overdue));
}

static void
s_web_show(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    const char *id = json_string_value(json_object_get(req->body, "id"));
    uint8_t mid[16];
    if (!id || !soffa_uuid_parse(id, mid)) {
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_INVALID_ARG, "show takes a message id"));
        return;
    }
    json_t *rec = soffa_agent_inbox_lookup(self, id);
    s_copy_t cp = {NULL, 0};
    json_t *sent = NULL;
    if (!rec && soffa_box_kept_get(self->box, mid, s_copy_fn, &cp) == SOFFA_OK && cp.b)
        sent = s_sent_json(self, mid, cp.b, cp.n);
    free(cp.b);
    if (rec)
        soffa_agent_reply(req, json_pack("{s:b, s:s, s:o}", "ok", 1, "where", "inbox", "record", rec));
    else if (sent)
        soffa_agent_reply(req, json_pack("{s:b, s:s, s:o}", "ok", 1, "where", "sent", "sent", sent));
    else
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_NOT_FOUND, "no such message at this site"));
}

/* As the command line's send, but the message names the person who sent
 * it, and `re` is a message id. */
static void
s_web_send(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    json_t *m = json_object_get(req->body, "message");
    const char *actor = json_string_value(json_object_get(json_object_get(m, "sender"), "actor_ref"));
    const char *re = json_string_value(json_object_get(req->body, "re"));
    uint8_t mid[16];
    if (!actor || !*actor || strlen(actor) > 40)
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_MISSING_FIELD, "a message from the web names its sender (sender.actor_ref)"));
    else if (re && !soffa_uuid_parse(re, mid))
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_INVALID_ARG, "re takes a message id"));
    else
        soffa_agent_outbox_submit(self, req);
}

/* Answers at once when the inbox or the sent log grew past what the
 * asker has seen, else when either does (a WATCH waiter) or at wait_ms. */
static void
s_web_wait(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    uint64_t in_after = (uint64_t) json_integer_value(json_object_get(req->body, "inbox_after"));
    uint64_t sent_after = (uint64_t) json_integer_value(json_object_get(req->body, "sent_after"));
    json_int_t wait_ms = json_integer_value(json_object_get(req->body, "wait_ms"));
    uint64_t last = self->session.mailbox[0] ? soffa_box_inbox_last(self->box, self->session.mailbox) : 0;
    soffa_agent_waiter_t *w = NULL;
    if (last <= in_after && self->outbox.gen <= sent_after && wait_ms > 0)
        w = soffa_agent_reply_later(self, req, SOFFA_AGENT_WAIT_WATCH, 0, (int) (wait_ms > 60000 ? 60000 : wait_ms));
    if (!w)
        soffa_agent_reply(req, soffa_agent_reply_watch_state(self));
}

/* Records one view in the site's access log, the youths by their keyed
 * hashes; durable before the answer. */
static void
s_web_access_put(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    const char *actor = json_string_value(json_object_get(req->body, "actor"));
    const char *what = json_string_value(json_object_get(req->body, "what"));
    const char *mids = json_string_value(json_object_get(req->body, "message_id"));
    json_t *subjects = json_object_get(req->body, "subjects");
    soffa_box_access_t a;
    memset(&a, 0, sizeof a);
    size_t n = json_array_size(subjects);
    if (!actor || !*actor || strlen(actor) >= sizeof a.actor || !what || !*what || strlen(what) >= sizeof a.what
        || (mids && *mids && !soffa_uuid_parse(mids, a.msg_id)) || n > SOFFA_BOX_ACCESS_KEYS_MAX) {
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_INVALID_ARG, "access_put needs actor, what, at most 1000 subjects"));
        return;
    }
    uint8_t *keys = n ? malloc(n * SOFFA_BOX_KEY_LEN) : NULL;
    if (n && !keys) {
        soffa_agent_reply(req, soffa_agent_reply_fail(SOFFA_ERR_NOMEM, NULL));
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(subjects, i));
        if (id && *id && strlen(id) <= 32)
            s_subject_key(self, id, keys + SOFFA_BOX_KEY_LEN * k++);
    }
    snprintf(a.actor, sizeof a.actor, "%s", actor);
    snprintf(a.what, sizeof a.what, "%s", what);
    a.at_us = soffa_now_us();
    a.n_keys = (uint32_t) k;
    a.keys = keys;
    uint64_t seq = 0;
    soffa_err_t rc = soffa_box_access_put(self->box, &a, &seq);
    free(keys);
    soffa_agent_reply(req, rc == SOFFA_OK ? json_pack("{s:b, s:I}", "ok", 1, "seq", (json_int_t) seq)
                                          : soffa_agent_reply_fail(rc, "the view could not be recorded"));
}

/* Lists the access log, newest first, naming the youths this site still
 * holds (the others by a hash prefix). */
static void
s_web_access_list(soffa_agent_t *self, const soffa_agent_req_t *req)
{
    /* The identities of the youths this site holds, to name them for the
     * lead; "ids_only" (which messages a person opened) needs none. */
    s_wnames_t names = {self, json_object()};
    if (!json_is_true(json_object_get(req->body, "ids_only"))) {
        soffa_box_inbox_scan(self->box, 0, s_wnames_in, &names);
        soffa_box_kept_scan(self->box, s_wnames_kept, &names);
    }
    s_wacc_t l = {json_array(), names.names, {0}, false, s_wlimit(req->body, 1000),
                  json_string_value(json_object_get(req->body, "actor")),
                  json_string_value(json_object_get(req->body, "what"))};
    const char *subject = json_string_value(json_object_get(req->body, "subject"));
    if (subject && *subject) {
        s_subject_key(self, subject, l.key);
        l.filter = true;
    }
    soffa_box_access_scan(self->box, 0, s_wacc_one, &l);
    json_decref(names.names);
    /* Newest first. */
    json_t *rev = json_array();
    for (size_t i = json_array_size(l.entries); i > 0; i--)
        json_array_append(rev, json_array_get(l.entries, i - 1));
    json_decref(l.entries);
    soffa_agent_reply(req, json_pack("{s:b, s:o}", "ok", 1, "entries", rev));
}

/* The web's commands: the grammar in soffa_agent_web.h. Anything else is
 * refused as NOT_AUTHORISED. */
static const soffa_agent_control_cmd_t s_cmds[] = {
    {"whoami", false, s_web_whoami},
    {"list", false, s_web_list},
    {"show", false, s_web_show},
    {"send", false, s_web_send},
    {"wait", false, s_web_wait},
    {"access_put", false, s_web_access_put},
    {"access_list", false, s_web_access_list},
};

static const soffa_agent_control_table_t s_table = {s_cmds, sizeof s_cmds / sizeof *s_cmds, 256 * 1024,
                                                    SOFFA_ERR_NOT_AUTHORISED, "not a command of the web's control socket"};

void
soffa_agent_web_serve(soffa_agent_t *self)
{
    soffa_agent_control_read(self, self->webctl, &s_table);
}

void
soffa_agent_web_close(soffa_agent_t *self)
{
    if (self->webctl) {
        zmq_close(self->webctl);
        self->webctl = NULL;
        unlink(self->web.socket_path);
    }
    sodium_memzero(self->access_key, sizeof self->access_key);
}
