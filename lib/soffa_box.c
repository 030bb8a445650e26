/*  soffa_box: LMDB-backed outbox and inbox of one agent, sealed at rest
 *  (see soffa_box.h). */
#include "soffa_box.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soffa_bytes.h"
#include "soffa_log.h"
#include "soffa_msg.h"
#include "soffa_store.h"
#include "soffa_time.h"

#define S_FORMAT "2"                  /* 1 (no "format"): values in clear; 2: sealed */
#define S_IN_HDR (1 + 4 + 8 + 8 + 1)  /* state, attempts, next try, received, sealed */
#define S_ID_MAX 40                   /* a record id: 'M' || 16, 'I'/'A' || 8, 'T' || name */
#define S_TABLES 8                    /* tables of other modules */

struct soffa_box {
    MDB_env *env;
    MDB_dbi outbox, sent, inbox, imsg, meta, await, kept, access, keys, due;
    char dir[4096];
    bool sealed;                      /* the epoch key is loaded */
    uint64_t epoch;
    uint8_t epoch_key[SOFFA_SEAL_KEY];
    soffa_seal_master_t master;
    soffa_retention_t retention;      /* what copies are scheduled by */
    bool has_retention;
    soffa_role_t role;                /* the agent's: the class of what it sends */
    struct {
        MDB_dbi dbi;
        char name[32];
    } tables[S_TABLES];
    size_t n_tables;
};

#define S_MDB(expr)                  \
    do {                             \
        mrc = (expr);                \
        if (mrc != 0)                \
            goto fail;               \
    } while (0)

/* Ends a write transaction: commits it (durable before the caller answers)
 * when mrc is 0, else aborts it (txn may be NULL). */
static soffa_err_t
s_end(MDB_txn *txn, int mrc)
{
    if (mrc == 0)
        mrc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    return soffa_store_err(mrc == EBADMSG ? MDB_CORRUPTED : mrc);
}

/* Marks the environment's data file descriptor close-on-exec (LMDB opens
 * its lock and meta descriptors so, but not this one). Returns 0 or errno. */
static int
s_cloexec(MDB_env *env)
{
    mdb_filehandle_t fd;
    int mrc = mdb_env_get_fd(env, &fd);
    if (mrc != 0)
        return mrc;
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) != 0)
        return errno;
    return 0;
}

/* ---- Record keys ---------------------------------------------------------- */

typedef struct {
    uint8_t b[S_ID_MAX];
    size_t len;
} s_id_t;

static s_id_t
s_id_msg(const uint8_t msg_id[16])
{
    s_id_t id = {{'M'}, 17};
    memcpy(id.b + 1, msg_id, 16);
    return id;
}

static s_id_t
s_id_seq(char kind, uint64_t seq)
{
    s_id_t id = {{(uint8_t) kind}, 9};
    soffa_bytes_put_u64(id.b + 1, seq);
    return id;
}

static s_id_t
s_id_table(const char *name)
{
    s_id_t id = {{'T'}, 1};
    size_t n = strnlen(name, S_ID_MAX - 1);
    memcpy(id.b + 1, name, n);
    id.len += n;
    return id;
}

/* The key of record id (made and stored when missing and create is set).
 * 0, MDB_NOTFOUND, EBADMSG (does not unwrap) or an LMDB error. */
static int
s_key(soffa_box_t *self, MDB_txn *txn, const s_id_t *id, bool create, uint8_t key[SOFFA_SEAL_KEY])
{
    if (!self->sealed)
        return MDB_NOTFOUND;
    MDB_val k = {id->len, (void *) id->b}, v;
    int mrc = mdb_get(txn, self->keys, &k, &v);
    if (mrc == 0)
        return v.mv_size == SOFFA_SEAL_WRAPPED
                   && soffa_seal_unwrap(self->epoch_key, v.mv_data, id->b, id->len, key) == SOFFA_OK
                   ? 0
                   : EBADMSG;
    if (mrc != MDB_NOTFOUND || !create)
        return mrc;
    uint8_t w[SOFFA_SEAL_WRAPPED];
    soffa_seal_key_new(key);
    soffa_seal_wrap(self->epoch_key, key, id->b, id->len, w);
    v = (MDB_val) {sizeof w, w};
    return mdb_put(txn, self->keys, &k, &v, 0);
}

/* Seals len bytes under id's key into a new buffer (*out, *olen). */
static int
s_seal(soffa_box_t *self, MDB_txn *txn, const s_id_t *id, const void *plain, size_t len, uint8_t **out, size_t *olen)
{
    uint8_t key[SOFFA_SEAL_KEY];
    int mrc = s_key(self, txn, id, true, key);
    if (mrc != 0)
        return mrc;
    *olen = len + SOFFA_SEAL_OVERHEAD;
    *out = malloc(*olen);
    if (!*out) {
        sodium_memzero(key, sizeof key);
        return ENOMEM;
    }
    soffa_seal_body(key, plain, len, id->b, id->len, *out);
    sodium_memzero(key, sizeof key);
    return 0;
}

/* Opens what s_seal made into a new buffer (free with s_wipe_free). */
static int
s_open(soffa_box_t *self, MDB_txn *txn, const s_id_t *id, const void *sealed, size_t len, uint8_t **out, size_t *olen)
{
    uint8_t key[SOFFA_SEAL_KEY];
    int mrc = s_key(self, txn, id, false, key);
    if (mrc != 0)
        return mrc;
    soffa_err_t rc = soffa_seal_open(key, sealed, len, id->b, id->len, out, olen);
    sodium_memzero(key, sizeof key);
    return rc == SOFFA_OK ? 0 : rc == SOFFA_ERR_NOMEM ? ENOMEM : EBADMSG;
}

static void
s_wipe_free(uint8_t *p, size_t len)
{
    if (p) {
        sodium_memzero(p, len);
        free(p);
    }
}

/* ---- Schedule ---------------------------------------------------------------- */

static int
s_due_put(soffa_box_t *self, MDB_txn *txn, int64_t due_us, const s_id_t *id, uint8_t cls)
{
    if (due_us <= 0 || !cls)
        return 0;
    uint8_t k[8 + S_ID_MAX];
    soffa_bytes_put_u64(k, (uint64_t) due_us);
    memcpy(k + 8, id->b, id->len);
    MDB_val kv = {8 + id->len, k}, v = {1, &cls};
    return mdb_put(txn, self->due, &kv, &v, 0);
}

/* The schedule of a message this site sends (its own time is the anchor). */
static int
s_sched_msg(soffa_box_t *self, MDB_txn *txn, const s_id_t *id, const uint8_t *msg, size_t len, int64_t at)
{
    if (!self->has_retention)
        return 0;
    soffa_msg_t *m = NULL;
    if (soffa_msg_decode(msg, len, &m) != SOFFA_OK)
        return 0;
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    soffa_retention_class_t c = soffa_retention_class_of(SOFFA_RK_MESSAGE, (uint32_t) v.type, self->role);
    int mrc = s_due_put(self, txn, soffa_retention_due(&self->retention, c, at, v.subject_id), id, (uint8_t) c);
    soffa_msg_destroy(&m);
    return mrc;
}

/* The schedule of a delivery, from its opened envelope. */
static int
s_sched_env(soffa_box_t *self, MDB_txn *txn, const s_id_t *id, const soffa_envelope_t *e)
{
    if (!self->has_retention)
        return 0;
    char subject[13] = "";
    if (e->kind == SOFFA_RK_MESSAGE && e->body) {
        soffa_msg_t *m = NULL;
        if (soffa_msg_decode(e->body, e->body_len, &m) == SOFFA_OK) {
            soffa_msg_view_t v;
            soffa_msg_view(m, &v);
            if (v.subject_id)
                snprintf(subject, sizeof subject, "%s", v.subject_id);
            soffa_msg_destroy(&m);
        }
    }
    soffa_retention_class_t c = soffa_retention_class_of(e->kind, e->msg_type, e->sender_role);
    return s_due_put(self, txn, soffa_retention_due(&self->retention, c, e->received_at_us, subject[0] ? subject : NULL),
                     id, (uint8_t) c);
}

void
soffa_box_set_retention(soffa_box_t *self, const soffa_retention_t *r, soffa_role_t role)
{
    self->retention = *r;
    self->has_retention = true;
    self->role = role;
}

/* ---- Open and close ------------------------------------------------------------ */

static int
s_dbis(soffa_box_t *self, MDB_txn *txn, unsigned fl)
{
    int mrc;
    if ((mrc = mdb_dbi_open(txn, "outbox", fl, &self->outbox)) != 0 || (mrc = mdb_dbi_open(txn, "sent", fl, &self->sent)) != 0
        || (mrc = mdb_dbi_open(txn, "inbox", fl, &self->inbox)) != 0 || (mrc = mdb_dbi_open(txn, "imsg", fl, &self->imsg)) != 0
        || (mrc = mdb_dbi_open(txn, "meta", fl, &self->meta)) != 0 || (mrc = mdb_dbi_open(txn, "await", fl, &self->await)) != 0
        || (mrc = mdb_dbi_open(txn, "kept", fl, &self->kept)) != 0
        || (mrc = mdb_dbi_open(txn, "access", fl, &self->access)) != 0
        || (mrc = mdb_dbi_open(txn, "keys", fl, &self->keys)) != 0 || (mrc = mdb_dbi_open(txn, "due", fl, &self->due)) != 0)
        return mrc;
    return 0;
}

static int
s_meta_get(MDB_txn *txn, MDB_dbi meta, const char *name, char *out, size_t cap)
{
    MDB_val k = {strlen(name), (void *) name}, v;
    int mrc = mdb_get(txn, meta, &k, &v);
    out[0] = '\0';
    if (mrc == 0)
        snprintf(out, cap, "%.*s", (int) (v.mv_size < cap ? v.mv_size : cap - 1), (const char *) v.mv_data);
    return mrc;
}

/* Erases every slot of DIR/keys but the epoch in use. */
static void
s_keys_tidy(soffa_box_t *self)
{
    soffa_seal_keys_t k;
    if (soffa_seal_keys_read(self->dir, &k) != SOFFA_OK)
        return;
    for (int sl = 0; sl < 2; sl++) {
        bool mine = k.epoch[sl] == self->epoch && !sodium_memcmp(k.id[sl], self->master.id, SOFFA_SEAL_ID);
        if (!mine && !(k.epoch[sl] == 0 && sodium_is_zero(k.wrapped[sl], SOFFA_SEAL_WRAPPED)))
            soffa_seal_keys_put(self->dir, sl, 0, NULL, NULL);
    }
    sodium_memzero(&k, sizeof k);
}

soffa_err_t
soffa_box_open(soffa_box_t **out, const char *dir, size_t map_size, const soffa_seal_master_t *master, char *why,
               size_t whylen)
{
    char whybuf[512];
    if (!why) {
        why = whybuf;
        whylen = sizeof whybuf;
    }
    why[0] = '\0';
    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return soffa_err_from_errno(errno);
    soffa_box_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    if (master && master->loaded)
        self->master = *master;
    soffa_err_t rc = SOFFA_OK;
    int mrc;
    MDB_txn *txn = NULL;
    S_MDB(mdb_env_create(&self->env));
    mdb_env_set_maxdbs(self->env, 10 + S_TABLES);   /* own tables, and up to 8 of other modules */
    S_MDB(mdb_env_set_mapsize(self->env, map_size ? map_size : (size_t) 256 << 20));
    S_MDB(mdb_env_open(self->env, dir, MDB_NOTLS, 0600));
    S_MDB(s_cloexec(self->env));   /* hooks the agent starts never inherit the box */

    /* What it is, read before anything is written. */
    S_MDB(mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn));
    MDB_dbi meta;
    char format[8] = "";
    uint64_t epoch = 0;
    bool used = false, marked = false;
    mrc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (mrc == 0) {
        s_meta_get(txn, meta, "format", format, sizeof format);
        MDB_val ek = {5, "epoch"}, ev;
        if (mdb_get(txn, meta, &ek, &ev) == 0 && ev.mv_size == 8)
            epoch = soffa_bytes_get_u64(ev.mv_data);
        MDB_stat ms;
        used = mdb_stat(txn, meta, &ms) == 0 && ms.ms_entries > 0;
        MDB_val pk = {9, "plaintext"}, pv;   /* a build without encryption's (soffa_seal_plaintext) */
        marked = mdb_get(txn, meta, &pk, &pv) == 0;
    } else if (mrc != MDB_NOTFOUND) {
        goto fail;
    }
    mdb_txn_abort(txn);
    txn = NULL;
    if (used && marked != soffa_seal_plaintext()) {
        if (marked)
            snprintf(why, whylen, "the agent's store %s was written by a build without encryption at rest "
                                  "(-DSOFFA_BENCH_PLAINTEXT=ON, for benchmarks only) and is not opened by this one", dir);
        else
            snprintf(why, whylen, "the agent's store %s is sealed, and this is a build without encryption at rest "
                                  "(-DSOFFA_BENCH_PLAINTEXT=ON, for benchmarks only), which opens only the stores it made",
                     dir);
        rc = SOFFA_ERR_VERSION;
        goto out;
    }
    if (used && strcmp(format, S_FORMAT) != 0) {
        snprintf(why, whylen, "the agent's store %s is of format %s (before encryption): with the agent stopped, run "
                              "soffa-agent --config FILE --upgrade-store --backup NEW-DIR", dir, format[0] ? format : "1");
        rc = SOFFA_ERR_VERSION;
        goto out;
    }
    if (used && self->master.loaded) {
        soffa_seal_keys_t k;
        rc = soffa_seal_keys_read(dir, &k);
        if (rc == SOFFA_OK)
            rc = soffa_seal_keys_get(&k, epoch, &self->master, self->epoch_key, why, whylen);
        else
            snprintf(why, whylen, "the agent's store %s has no readable keys file (%s): restore the data directory from "
                                  "a backup", dir, soffa_strerror(rc));
        sodium_memzero(&k, sizeof k);
        if (rc != SOFFA_OK) {
            rc = rc == SOFFA_ERR_PERMISSION ? rc : SOFFA_ERR_MASTER_KEY;
            goto out;
        }
        self->epoch = epoch;
        self->sealed = true;
    }
    if (!used && !self->master.loaded) {
        snprintf(why, whylen, "a master key is needed for the agent's store %s ([agent] master_key)", dir);
        rc = SOFFA_ERR_MASTER_KEY;
        goto out;
    }
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    S_MDB(s_dbis(self, txn, MDB_CREATE));
    if (!used) {
        /* A new store: its epoch key goes to DIR/keys before it names it. */
        soffa_seal_key_new(self->epoch_key);
        self->epoch = 1;
        self->sealed = true;
        if ((rc = soffa_seal_keys_put(dir, 0, 1, self->epoch_key, &self->master)) != SOFFA_OK
            || (rc = soffa_seal_keys_put(dir, 1, 0, NULL, NULL)) != SOFFA_OK) {
            snprintf(why, whylen, "cannot write %s/keys: %s", dir, soffa_strerror(rc));
            goto out;
        }
        uint8_t eb[8];
        soffa_bytes_put_u64(eb, 1);
        MDB_val fk = {6, "format"}, fv = {1, S_FORMAT}, ek = {5, "epoch"}, ev = {8, eb};
        S_MDB(mdb_put(txn, self->meta, &fk, &fv, 0));
        S_MDB(mdb_put(txn, self->meta, &ek, &ev, 0));
        if (soffa_seal_plaintext()) {
            MDB_val pk = {9, "plaintext"}, pv = {1, "1"};
            S_MDB(mdb_put(txn, self->meta, &pk, &pv, 0));
        }
    }
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto fail;
    if (self->sealed)
        s_keys_tidy(self);
    *out = self;
    return SOFFA_OK;
fail:
    rc = soffa_store_err(mrc);
    soffa_error("agent store %s: %s", dir, mdb_strerror(mrc));
out:
    if (why[0])
        soffa_error("agent store: %s", why);
    if (txn)
        mdb_txn_abort(txn);
    if (self->env)
        mdb_env_close(self->env);
    sodium_memzero(self, sizeof *self);
    free(self);
    return rc;
}

void
soffa_box_close(soffa_box_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mdb_env_close((*self_p)->env);
    sodium_memzero(*self_p, sizeof **self_p);
    free(*self_p);
    *self_p = NULL;
}

/* ---- Outbox ---------------------------------------------------------------- */

/* Appends to the outbox inside txn (the next local id is kept in meta):
 * the message sealed under its own key, and the same for the copy kept. */
static int
s_outbox_append(soffa_box_t *self, MDB_txn *txn, const uint8_t msg_id[16], const uint8_t *msg, size_t len,
                uint64_t *local_id)
{
    if (!self->sealed)
        return EACCES;
    MDB_val nk = {4, "next"}, nv;
    uint64_t next = 1;
    int mrc = mdb_get(txn, self->meta, &nk, &nv);
    if (mrc == 0 && nv.mv_size == 8)
        next = soffa_bytes_get_u64(nv.mv_data);
    else if (mrc != MDB_NOTFOUND && mrc != 0)
        return mrc;
    s_id_t id = s_id_msg(msg_id);
    uint8_t *sealed = NULL;
    size_t slen = 0;
    if ((mrc = s_seal(self, txn, &id, msg, len, &sealed, &slen)) != 0)
        return mrc;
    uint8_t kb[8], nb[8];
    soffa_bytes_put_u64(kb, next);
    soffa_bytes_put_u64(nb, next + 1);
    MDB_val k = {8, kb}, v = {16 + slen, NULL};
    if ((mrc = mdb_put(txn, self->outbox, &k, &v, MDB_RESERVE | MDB_APPEND)) != 0)
        goto out;
    memcpy(v.mv_data, msg_id, 16);
    memcpy((uint8_t *) v.mv_data + 16, sealed, slen);
    /* A copy that outlives the outbox entry: the site's threads show what it sent. */
    MDB_val kk = {16, (void *) msg_id}, kv = {slen, sealed};
    if ((mrc = mdb_put(txn, self->kept, &kk, &kv, 0)) != 0)
        goto out;
    nv = (MDB_val) {8, nb};
    if ((mrc = mdb_put(txn, self->meta, &nk, &nv, 0)) != 0 || (mrc = s_sched_msg(self, txn, &id, msg, len, soffa_now_us())) != 0)
        goto out;
    *local_id = next;
out:
    free(sealed);
    return mrc;
}

soffa_err_t
soffa_box_outbox_put(soffa_box_t *self, const uint8_t msg_id[16], const uint8_t *msg, size_t len, uint64_t *local_id)
{
    int mrc;
    MDB_txn *txn = NULL;
    uint64_t id = 0;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    S_MDB(s_outbox_append(self, txn, msg_id, msg, len, &id));
    mrc = mdb_txn_commit(txn);   /* durable before the caller answers */
    txn = NULL;
    if (mrc != 0)
        goto fail;
    *local_id = id;
    return SOFFA_OK;
fail:
    return s_end(txn, mrc);
}

/* Calls fn(ctx, txn, key, value) for the entries of dbi in key order, from
 * the first key >= start (8-byte big-endian) or, with start 0, from the
 * first, until fn returns non-zero. */
static soffa_err_t
s_each(soffa_box_t *self, MDB_dbi dbi, uint64_t start,
       int (*fn)(void *, soffa_box_t *, MDB_txn *, const MDB_val *, const MDB_val *), void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    if ((mrc = mdb_cursor_open(txn, dbi, &cur)) != 0) {
        mdb_txn_abort(txn);
        return soffa_store_err(mrc);
    }
    uint8_t kb[8];
    soffa_bytes_put_u64(kb, start);
    MDB_val k = {8, kb}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, start ? MDB_SET_RANGE : MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (fn(ctx, self, txn, &k, &v))
            break;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return SOFFA_OK;
}

typedef struct {
    int (*fn)(void *, uint64_t, const uint8_t *, const uint8_t *, size_t);
    void *ctx;
} s_out_visit_t;

static int
s_out_visit(void *ctx, soffa_box_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    s_out_visit_t *o = ctx;
    if (k->mv_size != 8 || v->mv_size < 16)
        return 0;
    const uint8_t *p = v->mv_data;
    s_id_t id = s_id_msg(p);
    uint8_t *msg = NULL;
    size_t len = 0;
    if (s_open(self, txn, &id, p + 16, v->mv_size - 16, &msg, &len) != 0)
        return 0;   /* disposed of, or no key: nothing to send */
    int stop = o->fn(o->ctx, soffa_bytes_get_u64(k->mv_data), p, msg, len);
    s_wipe_free(msg, len);
    return stop;
}

soffa_err_t
soffa_box_outbox_scan(soffa_box_t *self, uint64_t after,
                      int (*fn)(void *, uint64_t, const uint8_t *, const uint8_t *, size_t), void *ctx)
{
    s_out_visit_t o = {fn, ctx};
    return s_each(self, self->outbox, after + 1, s_out_visit, &o);
}

soffa_err_t
soffa_box_outbox_done(soffa_box_t *self, uint64_t local_id, const uint8_t msg_id[16], const soffa_box_sent_t *r)
{
    int mrc;
    MDB_txn *txn = NULL;
    uint8_t *sealed = NULL;
    size_t slen = 0;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    uint8_t kb[8];
    soffa_bytes_put_u64(kb, local_id);
    MDB_val k = {8, kb};
    mrc = mdb_del(txn, self->outbox, &k, NULL);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        goto fail;
    /* The outcome names the message (a refusal may quote a field): sealed. */
    s_id_t id = s_id_msg(msg_id);
    S_MDB(s_seal(self, txn, &id, r, sizeof *r, &sealed, &slen));
    MDB_val sk = {16, (void *) msg_id}, sv = {slen, sealed};
    S_MDB(mdb_put(txn, self->sent, &sk, &sv, 0));
    free(sealed);
    return s_end(txn, 0);
fail:
    free(sealed);
    return s_end(txn, mrc);
}

static uint64_t
s_entries(soffa_box_t *self, MDB_dbi dbi)
{
    MDB_txn *txn;
    MDB_stat st;
    if (mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    uint64_t n = mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
    mdb_txn_abort(txn);
    return n;
}

uint64_t
soffa_box_outbox_count(soffa_box_t *self)
{
    return s_entries(self, self->outbox);
}

soffa_err_t
soffa_box_sent_get(soffa_box_t *self, const uint8_t msg_id[16], soffa_box_sent_t *out)
{
    MDB_txn *txn;
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {16, (void *) msg_id}, v;
    mrc = mdb_get(txn, self->sent, &k, &v);
    if (mrc == 0) {
        s_id_t id = s_id_msg(msg_id);
        uint8_t *plain = NULL;
        size_t plen = 0;
        mrc = s_open(self, txn, &id, v.mv_data, v.mv_size, &plain, &plen);
        if (mrc == 0 && plen == sizeof *out)
            memcpy(out, plain, sizeof *out);
        else if (mrc == 0)
            mrc = MDB_CORRUPTED;
        s_wipe_free(plain, plen);
    }
    mdb_txn_abort(txn);
    return mrc == 0 ? SOFFA_OK : mrc == EBADMSG ? SOFFA_ERR_STORE_CORRUPT : soffa_store_err(mrc);
}

/* ---- Inbox ----------------------------------------------------------------- */

static uint64_t
s_last(MDB_txn *txn, MDB_dbi meta, const char *mailbox)
{
    char key[SOFFA_NAME_MAX + 8];
    int n = snprintf(key, sizeof key, "last:%s", mailbox);
    MDB_val k = {(size_t) n, key}, v;
    if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8)
        return soffa_bytes_get_u64(v.mv_data);
    return 0;
}

uint64_t
soffa_box_inbox_last(soffa_box_t *self, const char *mailbox)
{
    MDB_txn *txn;
    if (mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    uint64_t last = s_last(txn, self->meta, mailbox);
    mdb_txn_abort(txn);
    return last;
}

/* ---- Disposal ------------------------------------------------------------------ */

/* The next epoch key, in the free slot of DIR/keys; *slot gets the slot in
 * use now (erased by s_epoch_end once the store names the new epoch). */
static soffa_err_t
s_epoch_begin(soffa_box_t *self, uint8_t next[SOFFA_SEAL_KEY], int *slot)
{
    soffa_seal_keys_t k;
    soffa_err_t rc = soffa_seal_keys_read(self->dir, &k);
    *slot = -1;
    for (int sl = 0; rc == SOFFA_OK && sl < 2; sl++)
        if (k.epoch[sl] == self->epoch && !sodium_memcmp(k.id[sl], self->master.id, SOFFA_SEAL_ID))
            *slot = sl;
    sodium_memzero(&k, sizeof k);
    if (rc != SOFFA_OK)
        return rc;
    if (*slot < 0)
        return SOFFA_ERR_STORE_CORRUPT;
    soffa_seal_key_new(next);
    return soffa_seal_keys_put(self->dir, 1 - *slot, self->epoch + 1, next, &self->master);
}

/* Every record key wrapped anew under next, and the store names it. */
static int
s_epoch_rotate(soffa_box_t *self, MDB_txn *txn, const uint8_t next[SOFFA_SEAL_KEY])
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, self->keys, &cur);
    if (mrc != 0)
        return mrc;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t id[S_ID_MAX], key[SOFFA_SEAL_KEY], w[SOFFA_SEAL_WRAPPED];
        if (k.mv_size > S_ID_MAX || v.mv_size != SOFFA_SEAL_WRAPPED) {
            mrc = MDB_CORRUPTED;
            break;
        }
        size_t idlen = k.mv_size;
        memcpy(id, k.mv_data, idlen);
        if (soffa_seal_unwrap(self->epoch_key, v.mv_data, id, idlen, key) != SOFFA_OK) {
            mrc = EBADMSG;
            break;
        }
        soffa_seal_wrap(next, key, id, idlen, w);
        sodium_memzero(key, sizeof key);
        MDB_val nk = {idlen, id}, nv = {sizeof w, w};
        if ((mrc = mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (mrc != MDB_NOTFOUND)
        return mrc;
    uint8_t eb[8];
    soffa_bytes_put_u64(eb, self->epoch + 1);
    MDB_val ek = {5, "epoch"}, ev = {8, eb};
    return mdb_put(txn, self->meta, &ek, &ev, 0);
}

/* After the commit: the new epoch is the store's, the old key goes. */
static void
s_epoch_end(soffa_box_t *self, const uint8_t next[SOFFA_SEAL_KEY], int old_slot)
{
    memcpy(self->epoch_key, next, SOFFA_SEAL_KEY);
    self->epoch++;
    if (soffa_seal_keys_put(self->dir, old_slot, 0, NULL, NULL) != SOFFA_OK)
        soffa_warn("agent store %s: the old epoch key could not be erased now; it is at the next start", self->dir);
}

/* Forgets one copy, in txn: its entries and its key. 0 (also when there was
 * nothing), or an LMDB error; *n counts what went. */
static int
s_forget(soffa_box_t *self, MDB_txn *txn, const s_id_t *id, soffa_box_disposed_t *rep)
{
    MDB_val kk = {id->len, (void *) id->b};
    int mrc = mdb_get(txn, self->keys, &kk, &(MDB_val) {0, NULL});
    bool had_key = mrc == 0;
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return mrc;
    if (id->b[0] == 'I' && id->len == 9) {
        MDB_val k = {8, (void *) (id->b + 1)}, v;
        if ((mrc = mdb_get(txn, self->inbox, &k, &v)) == 0) {
            /* The message id, to drop its lookup entry too. */
            if (v.mv_size > S_IN_HDR) {
                const uint8_t *p = v.mv_data;
                uint8_t *env = NULL;
                size_t elen = 0;
                bool sealed = p[S_IN_HDR - 1];
                soffa_envelope_t e;
                bool ok = !sealed || s_open(self, txn, id, p + S_IN_HDR, v.mv_size - S_IN_HDR, &env, &elen) == 0;
                if (ok && soffa_envelope_decode(sealed ? env : p + S_IN_HDR, sealed ? elen : v.mv_size - S_IN_HDR, &e) == SOFFA_OK) {
                    MDB_val mk = {16, e.message_id}, mv;
                    if (mdb_get(txn, self->imsg, &mk, &mv) == 0 && mv.mv_size == 8 && !memcmp(mv.mv_data, id->b + 1, 8))
                        mdb_del(txn, self->imsg, &mk, NULL);
                    soffa_envelope_fini(&e);
                }
                s_wipe_free(env, elen);
            }
            if ((mrc = mdb_del(txn, self->inbox, &k, NULL)) != 0)
                return mrc;
            rep->inbox++;
        } else if (mrc != MDB_NOTFOUND) {
            return mrc;
        }
    } else if (id->b[0] == 'M' && id->len == 17) {
        MDB_val k = {16, (void *) (id->b + 1)};
        bool any = false;
        if ((mrc = mdb_del(txn, self->kept, &k, NULL)) == 0)
            any = true;
        else if (mrc != MDB_NOTFOUND)
            return mrc;
        if ((mrc = mdb_del(txn, self->sent, &k, NULL)) == 0)
            any = true;
        else if (mrc != MDB_NOTFOUND)
            return mrc;
        /* Still in the outbox (never sent): it goes too. */
        MDB_cursor *cur;
        if ((mrc = mdb_cursor_open(txn, self->outbox, &cur)) != 0)
            return mrc;
        MDB_val ok, ov;
        for (mrc = mdb_cursor_get(cur, &ok, &ov, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &ok, &ov, MDB_NEXT))
            if (ov.mv_size >= 16 && !memcmp(ov.mv_data, id->b + 1, 16)) {
                mrc = mdb_cursor_del(cur, 0);
                any = true;
                break;
            }
        mdb_cursor_close(cur);
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            return mrc;
        rep->sent += any;
    } else if (id->b[0] == 'A' && id->len == 9) {
        MDB_val k = {8, (void *) (id->b + 1)};
        if ((mrc = mdb_del(txn, self->access, &k, NULL)) == 0)
            rep->views++;
        else if (mrc != MDB_NOTFOUND)
            return mrc;
    }
    if (had_key && (mrc = mdb_del(txn, self->keys, &kk, NULL)) != 0)
        return mrc;
    return 0;
}

/* The copies a disposal record names, forgotten in txn. */
static int
s_forget_notice(soffa_box_t *self, MDB_txn *txn, const char *mailbox, const soffa_disposal_t *d, soffa_box_disposed_t *rep)
{
    bool mine = mailbox && !strcmp(d->for_mailbox, mailbox);
    int mrc = 0;
    for (size_t i = 0; i < d->count && mrc == 0; i++) {
        if (mine) {
            s_id_t id = s_id_seq('I', d->seqs[i]);
            mrc = s_forget(self, txn, &id, rep);
        }
        if (mrc == 0) {
            s_id_t id = s_id_msg(d->msg_ids[i]);
            mrc = s_forget(self, txn, &id, rep);
        }
    }
    return mrc;
}

static bool
s_disposed_any(const soffa_box_disposed_t *r)
{
    return r->inbox || r->sent || r->views;
}

soffa_err_t
soffa_box_dispose_notice(soffa_box_t *self, const char *mailbox, const soffa_disposal_t *d, soffa_box_disposed_t *rep)
{
    memset(rep, 0, sizeof *rep);
    if (!self->sealed)
        return SOFFA_ERR_MASTER_KEY;
    uint8_t next[SOFFA_SEAL_KEY];
    int slot;
    soffa_err_t rc = s_epoch_begin(self, next, &slot);
    if (rc != SOFFA_OK)
        return rc;
    MDB_txn *txn = NULL;
    int mrc;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    S_MDB(s_forget_notice(self, txn, mailbox, d, rep));
    S_MDB(s_epoch_rotate(self, txn, next));
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto fail;
    s_epoch_end(self, next, slot);
    sodium_memzero(next, sizeof next);
    return SOFFA_OK;
fail:
    memset(rep, 0, sizeof *rep);
    soffa_seal_keys_put(self->dir, 1 - slot, 0, NULL, NULL);
    sodium_memzero(next, sizeof next);
    return s_end(txn, mrc);
}

soffa_err_t
soffa_box_dispose_due(soffa_box_t *self, int64_t now_us, soffa_box_disposed_t *rep)
{
    memset(rep, 0, sizeof *rep);
    if (!self->sealed)
        return SOFFA_ERR_MASTER_KEY;
    /* What is due, read first: nothing due writes nothing. */
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k, v;
    if ((mrc = mdb_cursor_open(txn, self->due, &cur)) == 0) {
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        mdb_cursor_close(cur);
        cur = NULL;
    }
    bool due = mrc == 0 && k.mv_size > 8 && (int64_t) soffa_bytes_get_u64(k.mv_data) <= now_us;
    mdb_txn_abort(txn);
    txn = NULL;
    if (!due)
        return mrc == 0 || mrc == MDB_NOTFOUND ? SOFFA_OK : soffa_store_err(mrc);
    uint8_t next[SOFFA_SEAL_KEY];
    int slot;
    soffa_err_t rc = s_epoch_begin(self, next, &slot);
    if (rc != SOFFA_OK)
        return rc;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    S_MDB(mdb_cursor_open(txn, self->due, &cur));
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (k.mv_size <= 8 || k.mv_size > 8 + S_ID_MAX || (int64_t) soffa_bytes_get_u64(k.mv_data) > now_us)
            break;
        s_id_t id = {{0}, k.mv_size - 8};
        memcpy(id.b, (uint8_t *) k.mv_data + 8, id.len);
        S_MDB(mdb_cursor_del(cur, 0));
        S_MDB(s_forget(self, txn, &id, rep));
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        goto fail;
    S_MDB(s_epoch_rotate(self, txn, next));
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto fail;
    s_epoch_end(self, next, slot);
    sodium_memzero(next, sizeof next);
    return SOFFA_OK;
fail:
    if (cur)
        mdb_cursor_close(cur);
    memset(rep, 0, sizeof *rep);
    soffa_seal_keys_put(self->dir, 1 - slot, 0, NULL, NULL);   /* the new epoch key was never used */
    sodium_memzero(next, sizeof next);
    return s_end(txn, mrc);
}

/* ---- Inbox (continued) --------------------------------------------------------- */

soffa_err_t
soffa_box_inbox_put(soffa_box_t *self, const char *mailbox, soffa_box_delivery_t *d, size_t n, soffa_in_state_t state)
{
    int mrc;
    MDB_txn *txn = NULL;
    uint8_t next[SOFFA_SEAL_KEY];
    int slot = -1;
    bool rotate = false;
    soffa_box_disposed_t rep = {0};
    if (!self->sealed)
        return SOFFA_ERR_MASTER_KEY;
    /* A disposal record among them is carried out in the same transaction,
     * under a new epoch key. */
    for (size_t i = 0; i < n && !rotate; i++) {
        soffa_envelope_t e;
        if (soffa_envelope_decode(d[i].env, d[i].len, &e) == SOFFA_OK) {
            rotate = e.kind == SOFFA_RK_DISPOSAL;
            soffa_envelope_fini(&e);
        }
    }
    if (rotate) {
        soffa_err_t rc = s_epoch_begin(self, next, &slot);
        if (rc != SOFFA_OK)
            return rc;
    }
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    uint64_t last = s_last(txn, self->meta, mailbox);
    int64_t now = soffa_now_us();
    for (size_t i = 0; i < n; i++) {
        d[i].stored = false;
        if (d[i].seq <= last)
            continue;   /* a redelivery of something already stored */
        soffa_envelope_t e;
        if (soffa_envelope_decode(d[i].env, d[i].len, &e) != SOFFA_OK) {
            mrc = MDB_BAD_VALSIZE;
            goto fail;
        }
        /* Personal data is sealed; checkpoints and disposal records stay as
         * they came, byte for byte. */
        bool seal = soffa_envelope_kind_sealed(e.kind);
        s_id_t id = s_id_seq('I', d[i].seq);
        uint8_t *sealed = NULL;
        size_t slen = d[i].len;
        if (seal && (mrc = s_seal(self, txn, &id, d[i].env, d[i].len, &sealed, &slen)) != 0) {
            soffa_envelope_fini(&e);
            goto fail;
        }
        uint8_t kb[8];
        soffa_bytes_put_u64(kb, d[i].seq);
        MDB_val k = {8, kb}, v = {S_IN_HDR + slen, NULL};
        mrc = mdb_put(txn, self->inbox, &k, &v, MDB_RESERVE);
        if (mrc == 0) {
            uint8_t *p = v.mv_data;
            p[0] = (uint8_t) state;
            memset(p + 1, 0, 4 + 8);
            soffa_bytes_put_u64(p + 13, (uint64_t) now);
            p[S_IN_HDR - 1] = seal;
            memcpy(p + S_IN_HDR, seal ? sealed : d[i].env, slen);
        }
        free(sealed);
        if (mrc == 0 && seal)
            mrc = s_sched_env(self, txn, &id, &e);
        if (mrc == 0 && e.kind == SOFFA_RK_DISPOSAL) {
            soffa_disposal_t dr;
            if (soffa_disposal_decode(e.body, e.body_len, &dr) == SOFFA_OK) {
                mrc = s_forget_notice(self, txn, mailbox, &dr, &rep);
                soffa_disposal_fini(&dr);
            }
        }
        soffa_envelope_fini(&e);
        if (mrc != 0)
            goto fail;
        if (d[i].msg_id) {
            MDB_val mk = {16, (void *) d[i].msg_id}, mv = {8, kb};
            S_MDB(mdb_put(txn, self->imsg, &mk, &mv, 0));
        }
        last = d[i].seq;
        d[i].stored = true;
    }
    char key[SOFFA_NAME_MAX + 8];
    int kl = snprintf(key, sizeof key, "last:%s", mailbox);
    uint8_t lb[8];
    soffa_bytes_put_u64(lb, last);
    MDB_val lk = {(size_t) kl, key}, lv = {8, lb};
    S_MDB(mdb_put(txn, self->meta, &lk, &lv, 0));
    if (rotate)
        S_MDB(s_epoch_rotate(self, txn, next));
    mrc = mdb_txn_commit(txn);   /* durable before the broker hears an ack */
    txn = NULL;
    if (mrc != 0)
        goto fail;
    if (rotate) {
        s_epoch_end(self, next, slot);
        if (s_disposed_any(&rep))
            soffa_info("disposal: %llu delivery(ies), %llu sent message(s) and %llu view(s) disposed of, as the broker's "
                       "disposal record said", (unsigned long long) rep.inbox, (unsigned long long) rep.sent,
                       (unsigned long long) rep.views);
    }
    sodium_memzero(next, sizeof next);
    return SOFFA_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (rotate && slot >= 0)
        soffa_seal_keys_put(self->dir, 1 - slot, 0, NULL, NULL);
    sodium_memzero(next, sizeof next);
    for (size_t i = 0; i < n; i++)
        d[i].stored = false;
    return soffa_store_err(mrc == EBADMSG ? MDB_CORRUPTED : mrc);
}

/* The record of an inbox entry; env is opened into *owned when sealed.
 * False when it cannot be read (disposed of, or no key). */
static bool
s_in(soffa_box_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v, soffa_box_in_t *in, uint8_t **owned,
     size_t *olen)
{
    const uint8_t *p = v->mv_data;
    *owned = NULL;
    *olen = 0;
    *in = (soffa_box_in_t) {soffa_bytes_get_u64(k->mv_data), (soffa_in_state_t) p[0],
                            (uint32_t) p[1] << 24 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 8 | p[4],
                            (int64_t) soffa_bytes_get_u64(p + 5), (int64_t) soffa_bytes_get_u64(p + 13), p + S_IN_HDR,
                            v->mv_size - S_IN_HDR};
    if (!p[S_IN_HDR - 1])
        return true;
    s_id_t id = s_id_seq('I', in->seq);
    if (s_open(self, txn, &id, p + S_IN_HDR, v->mv_size - S_IN_HDR, owned, olen) != 0)
        return false;
    in->env = *owned;
    in->len = *olen;
    return true;
}

typedef struct {
    int (*fn)(void *, const soffa_box_in_t *);
    void *ctx;
} s_in_visit_t;

static int
s_in_visit(void *ctx, soffa_box_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    s_in_visit_t *o = ctx;
    if (k->mv_size != 8 || v->mv_size < S_IN_HDR)
        return 0;
    soffa_box_in_t in;
    uint8_t *owned;
    size_t olen;
    if (!s_in(self, txn, k, v, &in, &owned, &olen))
        return 0;
    int stop = o->fn(o->ctx, &in);
    s_wipe_free(owned, olen);
    return stop;
}

soffa_err_t
soffa_box_inbox_scan(soffa_box_t *self, uint64_t after, int (*fn)(void *, const soffa_box_in_t *), void *ctx)
{
    s_in_visit_t o = {fn, ctx};
    return s_each(self, self->inbox, after + 1, s_in_visit, &o);
}

soffa_err_t
soffa_box_inbox_get(soffa_box_t *self, uint64_t seq, int (*fn)(void *, const soffa_box_in_t *), void *ctx)
{
    MDB_txn *txn;
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    uint8_t kb[8];
    soffa_bytes_put_u64(kb, seq);
    MDB_val k = {8, kb}, v;
    mrc = mdb_get(txn, self->inbox, &k, &v);
    if (mrc == 0 && v.mv_size >= S_IN_HDR) {
        soffa_box_in_t in;
        uint8_t *owned;
        size_t olen;
        if (s_in(self, txn, &k, &v, &in, &owned, &olen))
            fn(ctx, &in);
        else
            mrc = MDB_NOTFOUND;
        s_wipe_free(owned, olen);
    }
    mdb_txn_abort(txn);
    return mrc == 0 ? SOFFA_OK : soffa_store_err(mrc);
}

soffa_err_t
soffa_box_inbox_find(soffa_box_t *self, const uint8_t msg_id[16], uint64_t *seq)
{
    MDB_txn *txn;
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {16, (void *) msg_id}, v;
    mrc = mdb_get(txn, self->imsg, &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        *seq = soffa_bytes_get_u64(v.mv_data);
    mdb_txn_abort(txn);
    return mrc == 0 ? SOFFA_OK : soffa_store_err(mrc);
}

soffa_err_t
soffa_box_inbox_set_state(soffa_box_t *self, uint64_t seq, soffa_in_state_t state, uint32_t attempts, int64_t next_try_us)
{
    int mrc;
    MDB_txn *txn = NULL;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    uint8_t kb[8];
    soffa_bytes_put_u64(kb, seq);
    MDB_val k = {8, kb}, v;
    S_MDB(mdb_get(txn, self->inbox, &k, &v));
    if (v.mv_size < S_IN_HDR) {
        mdb_txn_abort(txn);
        return SOFFA_ERR_STORE_CORRUPT;
    }
    uint8_t *copy = malloc(v.mv_size);
    if (!copy) {
        mdb_txn_abort(txn);
        return SOFFA_ERR_NOMEM;
    }
    memcpy(copy, v.mv_data, v.mv_size);   /* the header is in clear; the sealed rest is copied as it is */
    copy[0] = (uint8_t) state;
    copy[1] = (uint8_t) (attempts >> 24);
    copy[2] = (uint8_t) (attempts >> 16);
    copy[3] = (uint8_t) (attempts >> 8);
    copy[4] = (uint8_t) attempts;
    soffa_bytes_put_u64(copy + 5, (uint64_t) next_try_us);
    MDB_val nv = {v.mv_size, copy};
    mrc = mdb_put(txn, self->inbox, &k, &nv, 0);
    free(copy);
    if (mrc != 0)
        goto fail;
    return s_end(txn, 0);
fail:
    return s_end(txn, mrc);
}

typedef struct {
    uint64_t total, fresh, failed;
} s_counts_t;

static int
s_count(void *ctx, soffa_box_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    (void) self;
    (void) txn;
    s_counts_t *c = ctx;
    if (k->mv_size != 8 || v->mv_size < S_IN_HDR)
        return 0;
    uint8_t state = ((const uint8_t *) v->mv_data)[0];
    c->total++;
    c->fresh += state == SOFFA_IN_NEW;
    c->failed += state == SOFFA_IN_FAILED;
    return 0;
}

void
soffa_box_inbox_counts(soffa_box_t *self, uint64_t *total, uint64_t *fresh, uint64_t *failed)
{
    s_counts_t c = {0, 0, 0};
    s_each(self, self->inbox, 0, s_count, &c);   /* the states are in clear: nothing is opened */
    if (total)
        *total = c.total;
    if (fresh)
        *fresh = c.fresh;
    if (failed)
        *failed = c.failed;
}

/* ---- Awaited answers --------------------------------------------------------- */

soffa_err_t
soffa_box_await_put(soffa_box_t *self, const uint8_t awaited[16], const soffa_box_await_t *a)
{
    int mrc;
    MDB_txn *txn = NULL;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    MDB_val k = {16, (void *) awaited}, v = {sizeof *a, (void *) a};
    mrc = mdb_put(txn, self->await, &k, &v, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST)
        mrc = 0;   /* a retry: the first record stands */
    if (mrc != 0)
        goto fail;
    return s_end(txn, 0);
fail:
    return s_end(txn, mrc);
}

soffa_err_t
soffa_box_await_answer(soffa_box_t *self, const uint8_t awaited[16], int64_t at_us)
{
    int mrc;
    MDB_txn *txn = NULL;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    MDB_val k = {16, (void *) awaited}, v;
    S_MDB(mdb_get(txn, self->await, &k, &v));
    soffa_box_await_t a;
    if (v.mv_size != sizeof a) {
        mdb_txn_abort(txn);
        return SOFFA_ERR_STORE_CORRUPT;
    }
    memcpy(&a, v.mv_data, sizeof a);
    if (a.answered_us) {
        mdb_txn_abort(txn);
        return SOFFA_OK;
    }
    a.answered_us = at_us;
    v = (MDB_val) {sizeof a, &a};
    S_MDB(mdb_put(txn, self->await, &k, &v, 0));
    return s_end(txn, 0);
fail:
    return s_end(txn, mrc);
}

typedef struct {
    int (*fn)(void *, const uint8_t *, const soffa_box_await_t *);
    void *ctx;
} s_await_visit_t;

static int
s_await_visit(void *ctx, soffa_box_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    (void) self;
    (void) txn;
    s_await_visit_t *o = ctx;
    soffa_box_await_t a;
    if (k->mv_size != 16 || v->mv_size != sizeof a)
        return 0;
    memcpy(&a, v->mv_data, sizeof a);
    return o->fn(o->ctx, k->mv_data, &a);
}

soffa_err_t
soffa_box_await_scan(soffa_box_t *self, int (*fn)(void *, const uint8_t *, const soffa_box_await_t *), void *ctx)
{
    s_await_visit_t o = {fn, ctx};
    return s_each(self, self->await, 0, s_await_visit, &o);
}

/* ---- Kept messages ------------------------------------------------------------ */

soffa_err_t
soffa_box_kept_get(soffa_box_t *self, const uint8_t msg_id[16], void (*fn)(void *, const uint8_t *, size_t), void *ctx)
{
    MDB_txn *txn;
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {16, (void *) msg_id}, v;
    mrc = mdb_get(txn, self->kept, &k, &v);
    if (mrc == 0) {
        s_id_t id = s_id_msg(msg_id);
        uint8_t *msg = NULL;
        size_t len = 0;
        if ((mrc = s_open(self, txn, &id, v.mv_data, v.mv_size, &msg, &len)) == 0)
            fn(ctx, msg, len);
        s_wipe_free(msg, len);
    }
    mdb_txn_abort(txn);
    return mrc == 0 ? SOFFA_OK : soffa_store_err(mrc == EBADMSG ? MDB_NOTFOUND : mrc);
}

typedef struct {
    int (*fn)(void *, const uint8_t *, const uint8_t *, size_t);
    void *ctx;
} s_kept_visit_t;

static int
s_kept_visit(void *ctx, soffa_box_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    s_kept_visit_t *o = ctx;
    if (k->mv_size != 16)
        return 0;
    s_id_t id = s_id_msg(k->mv_data);
    uint8_t *msg = NULL;
    size_t len = 0;
    if (s_open(self, txn, &id, v->mv_data, v->mv_size, &msg, &len) != 0)
        return 0;
    int stop = o->fn(o->ctx, k->mv_data, msg, len);
    s_wipe_free(msg, len);
    return stop;
}

soffa_err_t
soffa_box_kept_scan(soffa_box_t *self, int (*fn)(void *, const uint8_t *, const uint8_t *, size_t), void *ctx)
{
    s_kept_visit_t o = {fn, ctx};
    return s_each(self, self->kept, 0, s_kept_visit, &o);
}

/* ---- The site's access log ---------------------------------------------------- */

/* Value (sealed): at_us(8) | actor(48) | what(32) | msg_id(16) | n_keys(4) | keys. */
#define S_ACC_HDR (8 + 48 + 32 + 16 + 4)

soffa_err_t
soffa_box_access_put(soffa_box_t *self, const soffa_box_access_t *a, uint64_t *seq)
{
    if (a->n_keys > SOFFA_BOX_ACCESS_KEYS_MAX)
        return SOFFA_ERR_TOO_LARGE;
    int mrc;
    MDB_txn *txn = NULL;
    uint8_t *p = NULL, *sealed = NULL;
    size_t plen = S_ACC_HDR + (size_t) a->n_keys * SOFFA_BOX_KEY_LEN, slen = 0;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    MDB_val nk = {11, "access-next"}, nv;
    uint64_t next = 1;
    mrc = mdb_get(txn, self->meta, &nk, &nv);
    if (mrc == 0 && nv.mv_size == 8)
        next = soffa_bytes_get_u64(nv.mv_data);
    else if (mrc != MDB_NOTFOUND && mrc != 0)
        goto fail;
    uint8_t kb[8], nb[8];
    soffa_bytes_put_u64(kb, next);
    soffa_bytes_put_u64(nb, next + 1);
    if (!(p = calloc(1, plen))) {
        mrc = ENOMEM;
        goto fail;
    }
    soffa_bytes_put_u64(p, (uint64_t) a->at_us);
    memcpy(p + 8, a->actor, strnlen(a->actor, 47));
    memcpy(p + 56, a->what, strnlen(a->what, 31));
    memcpy(p + 88, a->msg_id, 16);
    p[104] = (uint8_t) (a->n_keys >> 24);
    p[105] = (uint8_t) (a->n_keys >> 16);
    p[106] = (uint8_t) (a->n_keys >> 8);
    p[107] = (uint8_t) a->n_keys;
    if (a->n_keys)
        memcpy(p + S_ACC_HDR, a->keys, (size_t) a->n_keys * SOFFA_BOX_KEY_LEN);
    s_id_t id = s_id_seq('A', next);
    S_MDB(s_seal(self, txn, &id, p, plen, &sealed, &slen));
    MDB_val k = {8, kb}, v = {slen, sealed};
    S_MDB(mdb_put(txn, self->access, &k, &v, MDB_APPEND));
    if (self->has_retention)
        S_MDB(s_due_put(self, txn, soffa_retention_due(&self->retention, SOFFA_RC_ACCESS_RECORDS, a->at_us, NULL), &id,
                        SOFFA_RC_ACCESS_RECORDS));
    nv = (MDB_val) {8, nb};
    S_MDB(mdb_put(txn, self->meta, &nk, &nv, 0));
    mrc = mdb_txn_commit(txn);   /* durable before the view is shown */
    txn = NULL;
    if (mrc != 0)
        goto fail;
    if (seq)
        *seq = next;
    s_wipe_free(p, plen);
    free(sealed);
    return SOFFA_OK;
fail:
    s_wipe_free(p, plen);
    free(sealed);
    return s_end(txn, mrc);
}

typedef struct {
    int (*fn)(void *, const soffa_box_access_t *);
    void *ctx;
} s_acc_visit_t;

static int
s_acc_visit(void *ctx, soffa_box_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    s_acc_visit_t *o = ctx;
    if (k->mv_size != 8)
        return 0;
    s_id_t id = s_id_seq('A', soffa_bytes_get_u64(k->mv_data));
    uint8_t *p = NULL;
    size_t plen = 0;
    if (s_open(self, txn, &id, v->mv_data, v->mv_size, &p, &plen) != 0)
        return 0;
    int stop = 0;
    if (plen >= S_ACC_HDR) {
        soffa_box_access_t a;
        memset(&a, 0, sizeof a);
        a.seq = soffa_bytes_get_u64(k->mv_data);
        a.at_us = (int64_t) soffa_bytes_get_u64(p);
        memcpy(a.actor, p + 8, 47);
        memcpy(a.what, p + 56, 31);
        memcpy(a.msg_id, p + 88, 16);
        a.n_keys = (uint32_t) p[104] << 24 | (uint32_t) p[105] << 16 | (uint32_t) p[106] << 8 | p[107];
        if ((size_t) a.n_keys * SOFFA_BOX_KEY_LEN == plen - S_ACC_HDR) {   /* else damaged: skipped */
            a.keys = p + S_ACC_HDR;
            stop = o->fn(o->ctx, &a);
        }
    }
    s_wipe_free(p, plen);
    return stop;
}

soffa_err_t
soffa_box_access_scan(soffa_box_t *self, uint64_t after, int (*fn)(void *, const soffa_box_access_t *), void *ctx)
{
    s_acc_visit_t o = {fn, ctx};
    return s_each(self, self->access, after + 1, s_acc_visit, &o);
}

/* ---- Tables of other modules ------------------------------------------------ */

/* The values of other modules' tables are sealed under one key per table
 * (their records are the school's mirror of its pupils, not copies of
 * messages: no gallring rule reaches them one by one). What a get or scan
 * opens lives until the transaction ends. */
struct soffa_box_txn {
    soffa_box_t *box;
    MDB_txn *txn;
    struct {
        uint8_t *p;
        size_t len;
    } *open;
    size_t n_open, cap_open;
};

static void
s_txn_release(soffa_box_txn_t *t)
{
    for (size_t i = 0; i < t->n_open; i++)
        s_wipe_free(t->open[i].p, t->open[i].len);
    free(t->open);
    t->open = NULL;
    t->n_open = t->cap_open = 0;
}

static const char *
s_table_name(const soffa_box_t *self, uint32_t table)
{
    for (size_t i = 0; i < self->n_tables; i++)
        if (self->tables[i].dbi == (MDB_dbi) table)
            return self->tables[i].name;
    return NULL;
}

soffa_err_t
soffa_box_table(soffa_box_t *self, const char *name, uint32_t *table)
{
    if (strlen(name) >= sizeof self->tables[0].name)
        return SOFFA_ERR_INVALID_ARG;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, name, MDB_CREATE, &dbi);
    soffa_err_t rc = s_end(txn, mrc);
    if (rc != SOFFA_OK)
        return rc;
    if (!s_table_name(self, (uint32_t) dbi)) {
        if (self->n_tables == S_TABLES)
            return SOFFA_ERR_TOO_LARGE;
        self->tables[self->n_tables].dbi = dbi;
        snprintf(self->tables[self->n_tables].name, sizeof self->tables[0].name, "%s", name);
        self->n_tables++;
    }
    *table = (uint32_t) dbi;
    return SOFFA_OK;
}

soffa_err_t
soffa_box_write(soffa_box_t *self, soffa_err_t (*fn)(void *ctx, soffa_box_txn_t *t), void *ctx)
{
    soffa_box_txn_t t = {self, NULL, NULL, 0, 0};
    int mrc = mdb_txn_begin(self->env, NULL, 0, &t.txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    soffa_err_t rc = fn(ctx, &t);
    s_txn_release(&t);
    if (rc != SOFFA_OK) {
        mdb_txn_abort(t.txn);
        return rc;
    }
    return s_end(t.txn, 0);   /* durable before the caller answers */
}

soffa_err_t
soffa_box_read(soffa_box_t *self, soffa_err_t (*fn)(void *ctx, soffa_box_txn_t *t), void *ctx)
{
    soffa_box_txn_t t = {self, NULL, NULL, 0, 0};
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &t.txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    soffa_err_t rc = fn(ctx, &t);
    s_txn_release(&t);
    mdb_txn_abort(t.txn);
    return rc;
}

/* Opens a table value into a buffer the transaction keeps. */
static soffa_err_t
s_txn_open(soffa_box_txn_t *t, uint32_t table, const MDB_val *v, const void **val, size_t *vlen)
{
    const char *name = s_table_name(t->box, table);
    if (!name)
        return SOFFA_ERR_INVALID_ARG;
    if (t->n_open == t->cap_open) {
        size_t cap = t->cap_open ? 2 * t->cap_open : 16;
        void *n = realloc(t->open, cap * sizeof *t->open);
        if (!n)
            return SOFFA_ERR_NOMEM;
        t->open = n;
        t->cap_open = cap;
    }
    s_id_t id = s_id_table(name);
    uint8_t *p = NULL;
    size_t plen = 0;
    int mrc = s_open(t->box, t->txn, &id, v->mv_data, v->mv_size, &p, &plen);
    if (mrc != 0)
        return mrc == ENOMEM ? SOFFA_ERR_NOMEM : SOFFA_ERR_STORE_CORRUPT;
    t->open[t->n_open].p = p;
    t->open[t->n_open].len = plen;
    t->n_open++;
    *val = p;
    *vlen = plen;
    return SOFFA_OK;
}

soffa_err_t
soffa_box_txn_get(soffa_box_txn_t *t, uint32_t table, const void *key, size_t klen, const void **val, size_t *vlen)
{
    MDB_val k = {klen, (void *) key}, v;
    int mrc = mdb_get(t->txn, (MDB_dbi) table, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return SOFFA_ERR_NOT_FOUND;
    if (mrc != 0)
        return soffa_store_err(mrc);
    return s_txn_open(t, table, &v, val, vlen);
}

soffa_err_t
soffa_box_txn_put(soffa_box_txn_t *t, uint32_t table, const void *key, size_t klen, const void *val, size_t vlen)
{
    const char *name = s_table_name(t->box, table);
    if (!name)
        return SOFFA_ERR_INVALID_ARG;
    s_id_t id = s_id_table(name);
    uint8_t *sealed = NULL;
    size_t slen = 0;
    int mrc = s_seal(t->box, t->txn, &id, val, vlen, &sealed, &slen);
    if (mrc == 0) {
        MDB_val k = {klen, (void *) key}, v = {slen, sealed};
        mrc = mdb_put(t->txn, (MDB_dbi) table, &k, &v, 0);
    }
    free(sealed);
    return soffa_store_err(mrc == EBADMSG ? MDB_CORRUPTED : mrc);
}

soffa_err_t
soffa_box_txn_scan(soffa_box_txn_t *t, uint32_t table,
                   int (*fn)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen), void *ctx)
{
    const char *name = s_table_name(t->box, table);
    if (!name)
        return SOFFA_ERR_INVALID_ARG;
    s_id_t id = s_id_table(name);
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(t->txn, (MDB_dbi) table, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t *p = NULL;
        size_t plen = 0;
        if (s_open(t->box, t->txn, &id, v.mv_data, v.mv_size, &p, &plen) != 0)
            continue;
        int stop = fn(ctx, k.mv_data, k.mv_size, p, plen);
        s_wipe_free(p, plen);
        if (stop)
            break;
    }
    mdb_cursor_close(cur);
    return mrc == 0 || mrc == MDB_NOTFOUND ? SOFFA_OK : soffa_store_err(mrc);
}

soffa_err_t
soffa_box_txn_outbox_put(soffa_box_txn_t *t, const uint8_t msg_id[16], const uint8_t *msg, size_t len,
                         uint64_t *local_id)
{
    int mrc = s_outbox_append(t->box, t->txn, msg_id, msg, len, local_id);
    return soffa_store_err(mrc == EBADMSG ? MDB_CORRUPTED : mrc);
}

/* ---- Upgrade: format 1 (values in clear) to 2 ------------------------------------ */

/* Copies table name of the old environment into the new one, each value
 * through seal (NULL: as it is). */
static int
s_up_copy(MDB_txn *from, MDB_txn *to, const char *name, MDB_dbi *out,
          int (*seal)(soffa_box_t *, MDB_txn *, const MDB_val *, const MDB_val *, uint8_t **, size_t *),
          soffa_box_t *self)
{
    MDB_dbi src;
    int mrc = mdb_dbi_open(to, name, MDB_CREATE, out);
    if (mrc != 0)
        return mrc;
    if ((mrc = mdb_dbi_open(from, name, 0, &src)) == MDB_NOTFOUND)
        return 0;
    if (mrc != 0)
        return mrc;
    MDB_cursor *cur;
    if ((mrc = mdb_cursor_open(from, src, &cur)) != 0)
        return mrc;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t *nv = NULL;
        size_t nlen = 0;
        if (seal && (mrc = seal(self, to, &k, &v, &nv, &nlen)) != 0)
            break;
        MDB_val w = seal ? (MDB_val) {nlen, nv} : v;
        mrc = mdb_put(to, *out, &k, &w, MDB_APPEND);
        free(nv);
        if (mrc != 0)
            break;
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

static int
s_up_outbox(soffa_box_t *self, MDB_txn *to, const MDB_val *k, const MDB_val *v, uint8_t **out, size_t *olen)
{
    (void) k;
    if (v->mv_size < 16)
        return MDB_CORRUPTED;
    s_id_t id = s_id_msg(v->mv_data);
    uint8_t *s = NULL;
    size_t slen = 0;
    int mrc = s_seal(self, to, &id, (uint8_t *) v->mv_data + 16, v->mv_size - 16, &s, &slen);
    if (mrc != 0)
        return mrc;
    *out = malloc(16 + slen);
    if (*out) {
        memcpy(*out, v->mv_data, 16);
        memcpy(*out + 16, s, slen);
    }
    *olen = 16 + slen;
    free(s);
    return *out ? 0 : ENOMEM;
}

static int
s_up_by_msg(soffa_box_t *self, MDB_txn *to, const MDB_val *k, const MDB_val *v, uint8_t **out, size_t *olen)
{
    if (k->mv_size != 16)
        return MDB_CORRUPTED;
    s_id_t id = s_id_msg(k->mv_data);
    return s_seal(self, to, &id, v->mv_data, v->mv_size, out, olen);
}

static int
s_up_inbox(soffa_box_t *self, MDB_txn *to, const MDB_val *k, const MDB_val *v, uint8_t **out, size_t *olen)
{
    /* Format 1: state, attempts, next try, received (21 bytes), envelope. */
    if (k->mv_size != 8 || v->mv_size < S_IN_HDR - 1)
        return MDB_CORRUPTED;
    const uint8_t *env = (uint8_t *) v->mv_data + S_IN_HDR - 1;
    size_t elen = v->mv_size - (S_IN_HDR - 1);
    soffa_envelope_t e;
    bool seal = soffa_envelope_decode(env, elen, &e) == SOFFA_OK && soffa_envelope_kind_sealed(e.kind);
    soffa_envelope_fini(&e);
    uint8_t *s = NULL;
    size_t slen = elen;
    s_id_t id = s_id_seq('I', soffa_bytes_get_u64(k->mv_data));
    int mrc = seal ? s_seal(self, to, &id, env, elen, &s, &slen) : 0;
    if (mrc != 0)
        return mrc;
    *out = malloc(S_IN_HDR + slen);
    if (*out) {
        memcpy(*out, v->mv_data, S_IN_HDR - 1);
        (*out)[S_IN_HDR - 1] = seal;
        memcpy(*out + S_IN_HDR, seal ? s : env, slen);
    }
    *olen = S_IN_HDR + slen;
    free(s);
    return *out ? 0 : ENOMEM;
}

static int
s_up_access(soffa_box_t *self, MDB_txn *to, const MDB_val *k, const MDB_val *v, uint8_t **out, size_t *olen)
{
    if (k->mv_size != 8)
        return MDB_CORRUPTED;
    s_id_t id = s_id_seq('A', soffa_bytes_get_u64(k->mv_data));
    return s_seal(self, to, &id, v->mv_data, v->mv_size, out, olen);
}

static const char *s_up_table_name;   /* the module table being copied (one at a time) */

static int
s_up_table(soffa_box_t *self, MDB_txn *to, const MDB_val *k, const MDB_val *v, uint8_t **out, size_t *olen)
{
    (void) k;
    s_id_t id = s_id_table(s_up_table_name);
    return s_seal(self, to, &id, v->mv_data, v->mv_size, out, olen);
}

soffa_err_t
soffa_box_upgrade(const char *dir, size_t map_size, const soffa_seal_master_t *master, const char *backup_dir, bool *done)
{
    *done = false;
    if (!master || !master->loaded)
        return SOFFA_ERR_MASTER_KEY;
    size_t map = map_size ? map_size : (size_t) 256 << 20;
    char tmp[4200], f[4300], data[4200];
    snprintf(tmp, sizeof tmp, "%s/upgrade.tmp", dir);
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    soffa_box_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    self->master = *master;
    MDB_env *old = NULL;
    MDB_txn *rtxn = NULL, *txn = NULL;
    MDB_dbi meta, mdbi;
    int mrc;
    soffa_err_t rc = SOFFA_OK;
    bool working = false;
    char format[8] = "";
    if ((mrc = mdb_env_create(&old)) != 0)
        goto out;
    mdb_env_set_maxdbs(old, 10 + S_TABLES);
    if ((mrc = mdb_env_set_mapsize(old, map)) != 0 || (mrc = mdb_env_open(old, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0
        || (mrc = mdb_txn_begin(old, NULL, MDB_RDONLY, &rtxn)) != 0 || (mrc = mdb_dbi_open(rtxn, "meta", 0, &meta)) != 0)
        goto out;
    s_meta_get(rtxn, meta, "format", format, sizeof format);
    if (!strcmp(format, S_FORMAT))
        goto out;   /* current */
    /* The old store goes to backup_dir first: the conversion replaces it. */
    if (!backup_dir || !backup_dir[0]) {
        rc = SOFFA_ERR_CONFIG;
        goto out;
    }
    if (mkdir(backup_dir, 0700) != 0) {
        rc = errno == EEXIST ? SOFFA_ERR_EXISTS : soffa_err_from_errno(errno);
        goto out;
    }
    if (chmod(backup_dir, 0700) != 0 || (mrc = mdb_env_copy2(old, backup_dir, MDB_CP_COMPACT)) != 0) {
        if (mrc == 0)
            rc = soffa_err_from_errno(errno);
        goto out;
    }
    snprintf(f, sizeof f, "%s/data.mdb", backup_dir);
    if (chmod(f, 0600) != 0) {
        rc = soffa_err_from_errno(errno);
        goto out;
    }
    snprintf(f, sizeof f, "%s/data.mdb", tmp);
    unlink(f);
    snprintf(f, sizeof f, "%s/lock.mdb", tmp);
    unlink(f);
    rmdir(tmp);
    if (mkdir(tmp, 0700) != 0) {
        rc = soffa_err_from_errno(errno);
        goto out;
    }
    working = true;
    if ((mrc = mdb_env_create(&self->env)) != 0)
        goto out;
    mdb_env_set_maxdbs(self->env, 10 + S_TABLES);
    if ((mrc = mdb_env_set_mapsize(self->env, map)) != 0 || (mrc = mdb_env_open(self->env, tmp, MDB_NOTLS, 0600)) != 0
        || (mrc = mdb_txn_begin(self->env, NULL, 0, &txn)) != 0)
        goto out;
    soffa_seal_key_new(self->epoch_key);
    self->epoch = 1;
    self->sealed = true;
    if ((rc = soffa_seal_keys_put(dir, 0, 1, self->epoch_key, &self->master)) != SOFFA_OK
        || (rc = soffa_seal_keys_put(dir, 1, 0, NULL, NULL)) != SOFFA_OK)
        goto out;
    if ((mrc = mdb_dbi_open(txn, "keys", MDB_CREATE, &self->keys)) != 0
        || (mrc = mdb_dbi_open(txn, "due", MDB_CREATE, &self->due)) != 0
        || (mrc = s_up_copy(rtxn, txn, "meta", &self->meta, NULL, self)) != 0
        || (mrc = s_up_copy(rtxn, txn, "imsg", &self->imsg, NULL, self)) != 0
        || (mrc = s_up_copy(rtxn, txn, "await", &self->await, NULL, self)) != 0
        || (mrc = s_up_copy(rtxn, txn, "outbox", &self->outbox, s_up_outbox, self)) != 0
        || (mrc = s_up_copy(rtxn, txn, "kept", &self->kept, s_up_by_msg, self)) != 0
        || (mrc = s_up_copy(rtxn, txn, "sent", &self->sent, s_up_by_msg, self)) != 0
        || (mrc = s_up_copy(rtxn, txn, "inbox", &self->inbox, s_up_inbox, self)) != 0
        || (mrc = s_up_copy(rtxn, txn, "access", &self->access, s_up_access, self)) != 0)
        goto out;
    /* The tables of other modules: every named table not one of the box's. */
    MDB_cursor *cur;
    if ((mrc = mdb_dbi_open(rtxn, NULL, 0, &mdbi)) != 0 || (mrc = mdb_cursor_open(rtxn, mdbi, &cur)) != 0)
        goto out;
    static const char *const own[] = {"outbox", "sent", "inbox", "imsg", "meta", "await", "kept", "access", "keys", "due"};
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char name[32];
        if (k.mv_size >= sizeof name)
            continue;
        snprintf(name, sizeof name, "%.*s", (int) k.mv_size, (const char *) k.mv_data);
        bool mine = false;
        for (size_t i = 0; i < sizeof own / sizeof *own; i++)
            mine |= !strcmp(own[i], name);
        MDB_dbi d;
        if (mine)
            continue;
        s_up_table_name = name;
        if ((mrc = s_up_copy(rtxn, txn, name, &d, s_up_table, self)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        goto out;
    uint8_t eb[8];
    soffa_bytes_put_u64(eb, 1);
    MDB_val fk = {6, "format"}, fv = {1, S_FORMAT}, ek = {5, "epoch"}, ev = {8, eb};
    MDB_val pk = {9, "plaintext"}, pv = {1, "1"};
    if ((mrc = mdb_put(txn, self->meta, &fk, &fv, 0)) != 0 || (mrc = mdb_put(txn, self->meta, &ek, &ev, 0)) != 0
        || (soffa_seal_plaintext() && (mrc = mdb_put(txn, self->meta, &pk, &pv, 0)) != 0))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto out;
    mdb_txn_abort(rtxn);
    rtxn = NULL;
    mdb_env_close(self->env);
    self->env = NULL;
    mdb_env_close(old);
    old = NULL;
    snprintf(f, sizeof f, "%s/data.mdb", tmp);
    int fd = open(f, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0 || rename(f, data) != 0) {
        mrc = errno;
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    snprintf(f, sizeof f, "%s/lock.mdb", dir);
    unlink(f);
    snprintf(f, sizeof f, "%s/lock.mdb", tmp);
    unlink(f);
    rmdir(tmp);
    working = false;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            soffa_warn("could not flush %s", dir);
        close(dfd);
    }
    *done = true;
out:
    if (txn)
        mdb_txn_abort(txn);
    if (rtxn)
        mdb_txn_abort(rtxn);
    if (self->env)
        mdb_env_close(self->env);
    if (old)
        mdb_env_close(old);
    if (working) {
        snprintf(f, sizeof f, "%s/data.mdb", tmp);
        unlink(f);
        snprintf(f, sizeof f, "%s/lock.mdb", tmp);
        unlink(f);
        rmdir(tmp);
    }
    if (rc == SOFFA_OK && mrc != 0)
        rc = soffa_store_err(mrc == EBADMSG ? MDB_CORRUPTED : mrc);
    sodium_memzero(self, sizeof *self);
    free(self);
    return rc;
}
