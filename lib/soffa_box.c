/*  soffa_box: LMDB-backed outbox and inbox of one agent. */
#include "soffa_box.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "soffa_bytes.h"
#include "soffa_log.h"
#include "soffa_store.h"
#include "soffa_time.h"

#define S_IN_HDR (1 + 4 + 8 + 8)   /* state, attempts, next try, received */

struct soffa_box {
    MDB_env *env;
    MDB_dbi outbox, sent, inbox, imsg, meta, await, kept, access;
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
    return soffa_store_err(mrc);
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

soffa_err_t
soffa_box_open(soffa_box_t **out, const char *dir, size_t map_size)
{
    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return soffa_err_from_errno(errno);
    soffa_box_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    int mrc;
    MDB_txn *txn = NULL;
    S_MDB(mdb_env_create(&self->env));
    mdb_env_set_maxdbs(self->env, 16);   /* 8 own tables, up to 8 of other modules */
    S_MDB(mdb_env_set_mapsize(self->env, map_size ? map_size : (size_t) 256 << 20));
    S_MDB(mdb_env_open(self->env, dir, MDB_NOTLS, 0600));
    S_MDB(s_cloexec(self->env));   /* hooks the agent starts never inherit the box */
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    S_MDB(mdb_dbi_open(txn, "outbox", MDB_CREATE, &self->outbox));
    S_MDB(mdb_dbi_open(txn, "sent", MDB_CREATE, &self->sent));
    S_MDB(mdb_dbi_open(txn, "inbox", MDB_CREATE, &self->inbox));
    S_MDB(mdb_dbi_open(txn, "imsg", MDB_CREATE, &self->imsg));
    S_MDB(mdb_dbi_open(txn, "meta", MDB_CREATE, &self->meta));
    S_MDB(mdb_dbi_open(txn, "await", MDB_CREATE, &self->await));
    S_MDB(mdb_dbi_open(txn, "kept", MDB_CREATE, &self->kept));
    S_MDB(mdb_dbi_open(txn, "access", MDB_CREATE, &self->access));
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto fail;
    *out = self;
    return SOFFA_OK;
fail:
    soffa_error("agent store %s: %s", dir, mdb_strerror(mrc));
    if (txn)
        mdb_txn_abort(txn);
    if (self->env)
        mdb_env_close(self->env);
    free(self);
    return soffa_store_err(mrc);
}

void
soffa_box_close(soffa_box_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mdb_env_close((*self_p)->env);
    free(*self_p);
    *self_p = NULL;
}

/* ---- Outbox ---------------------------------------------------------------- */

/* Appends to the outbox inside txn (the next local id is kept in meta). */
static int
s_outbox_append(soffa_box_t *self, MDB_txn *txn, const uint8_t msg_id[16], const uint8_t *msg, size_t len,
                uint64_t *local_id)
{
    MDB_val nk = {4, "next"}, nv;
    uint64_t next = 1;
    int mrc = mdb_get(txn, self->meta, &nk, &nv);
    if (mrc == 0 && nv.mv_size == 8)
        next = soffa_bytes_get_u64(nv.mv_data);
    else if (mrc != MDB_NOTFOUND && mrc != 0)
        return mrc;
    uint8_t kb[8], nb[8];
    soffa_bytes_put_u64(kb, next);
    soffa_bytes_put_u64(nb, next + 1);
    MDB_val k = {8, kb}, v = {16 + len, NULL};
    if ((mrc = mdb_put(txn, self->outbox, &k, &v, MDB_RESERVE | MDB_APPEND)) != 0)
        return mrc;
    memcpy(v.mv_data, msg_id, 16);
    memcpy((uint8_t *) v.mv_data + 16, msg, len);
    /* A copy that outlives the outbox entry: the site's threads show what it sent. */
    MDB_val kk = {16, (void *) msg_id}, kv = {len, (void *) msg};
    if ((mrc = mdb_put(txn, self->kept, &kk, &kv, 0)) != 0)
        return mrc;
    nv = (MDB_val) {8, nb};
    if ((mrc = mdb_put(txn, self->meta, &nk, &nv, 0)) != 0)
        return mrc;
    *local_id = next;
    return 0;
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
    if (txn)
        mdb_txn_abort(txn);
    return soffa_store_err(mrc);
}

/* Calls fn(ctx, key, value) for the entries of dbi in key order, from the
 * first key >= start (8-byte big-endian) or, with start 0, from the first,
 * until fn returns non-zero. */
static soffa_err_t
s_each(soffa_box_t *self, MDB_dbi dbi, uint64_t start, int (*fn)(void *, const MDB_val *, const MDB_val *), void *ctx)
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
        if (fn(ctx, &k, &v))
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
s_out_visit(void *ctx, const MDB_val *k, const MDB_val *v)
{
    s_out_visit_t *o = ctx;
    if (k->mv_size != 8 || v->mv_size < 16)
        return 0;
    const uint8_t *p = v->mv_data;
    return o->fn(o->ctx, soffa_bytes_get_u64(k->mv_data), p, p + 16, v->mv_size - 16);
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
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    uint8_t kb[8];
    soffa_bytes_put_u64(kb, local_id);
    MDB_val k = {8, kb};
    mrc = mdb_del(txn, self->outbox, &k, NULL);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        goto fail;
    MDB_val sk = {16, (void *) msg_id}, sv = {sizeof *r, (void *) r};
    S_MDB(mdb_put(txn, self->sent, &sk, &sv, 0));
    return s_end(txn, 0);
fail:
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
    if (mrc == 0 && v.mv_size == sizeof *out)
        memcpy(out, v.mv_data, sizeof *out);
    mdb_txn_abort(txn);
    return mrc == 0 ? SOFFA_OK : soffa_store_err(mrc);
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

soffa_err_t
soffa_box_inbox_put(soffa_box_t *self, const char *mailbox, soffa_box_delivery_t *d, size_t n, soffa_in_state_t state)
{
    int mrc;
    MDB_txn *txn = NULL;
    S_MDB(mdb_txn_begin(self->env, NULL, 0, &txn));
    uint64_t last = s_last(txn, self->meta, mailbox);
    int64_t now = soffa_now_us();
    for (size_t i = 0; i < n; i++) {
        d[i].stored = false;
        if (d[i].seq <= last)
            continue;   /* a redelivery of something already stored */
        uint8_t kb[8];
        soffa_bytes_put_u64(kb, d[i].seq);
        MDB_val k = {8, kb}, v = {S_IN_HDR + d[i].len, NULL};
        S_MDB(mdb_put(txn, self->inbox, &k, &v, MDB_RESERVE));
        uint8_t *p = v.mv_data;
        p[0] = (uint8_t) state;
        memset(p + 1, 0, 4 + 8);
        soffa_bytes_put_u64(p + 13, (uint64_t) now);
        memcpy(p + S_IN_HDR, d[i].env, d[i].len);
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
    mrc = mdb_txn_commit(txn);   /* durable before the broker hears an ack */
    txn = NULL;
    if (mrc != 0)
        goto fail;
    return SOFFA_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    for (size_t i = 0; i < n; i++)
        d[i].stored = false;
    return soffa_store_err(mrc);
}

static soffa_box_in_t
s_in(const MDB_val *k, const MDB_val *v)
{
    const uint8_t *p = v->mv_data;
    soffa_box_in_t in = {soffa_bytes_get_u64(k->mv_data), (soffa_in_state_t) p[0],
                         (uint32_t) p[1] << 24 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 8 | p[4],
                         (int64_t) soffa_bytes_get_u64(p + 5), (int64_t) soffa_bytes_get_u64(p + 13), p + S_IN_HDR, v->mv_size - S_IN_HDR};
    return in;
}

typedef struct {
    int (*fn)(void *, const soffa_box_in_t *);
    void *ctx;
} s_in_visit_t;

static int
s_in_visit(void *ctx, const MDB_val *k, const MDB_val *v)
{
    s_in_visit_t *o = ctx;
    if (k->mv_size != 8 || v->mv_size < S_IN_HDR)
        return 0;
    soffa_box_in_t in = s_in(k, v);
    return o->fn(o->ctx, &in);
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
        soffa_box_in_t in = s_in(&k, &v);
        fn(ctx, &in);
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
    memcpy(copy, v.mv_data, v.mv_size);
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
s_count(void *ctx, const soffa_box_in_t *in)
{
    s_counts_t *c = ctx;
    c->total++;
    c->fresh += in->state == SOFFA_IN_NEW;
    c->failed += in->state == SOFFA_IN_FAILED;
    return 0;
}

void
soffa_box_inbox_counts(soffa_box_t *self, uint64_t *total, uint64_t *fresh, uint64_t *failed)
{
    s_counts_t c = {0, 0, 0};
    soffa_box_inbox_scan(self, 0, s_count, &c);
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
s_await_visit(void *ctx, const MDB_val *k, const MDB_val *v)
{
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
    if (mrc == 0)
        fn(ctx, v.mv_data, v.mv_size);
    mdb_txn_abort(txn);
    return mrc == 0 ? SOFFA_OK : soffa_store_err(mrc);
}

typedef struct {
    int (*fn)(void *, const uint8_t *, const uint8_t *, size_t);
    void *ctx;
} s_kept_visit_t;

static int
s_kept_visit(void *ctx, const MDB_val *k, const MDB_val *v)
{
    s_kept_visit_t *o = ctx;
    if (k->mv_size != 16)
        return 0;
    return o->fn(o->ctx, k->mv_data, v->mv_data, v->mv_size);
}

soffa_err_t
soffa_box_kept_scan(soffa_box_t *self, int (*fn)(void *, const uint8_t *, const uint8_t *, size_t), void *ctx)
{
    s_kept_visit_t o = {fn, ctx};
    return s_each(self, self->kept, 0, s_kept_visit, &o);
}

/* ---- The site's access log ---------------------------------------------------- */

/* Value: at_us(8) | actor(48) | what(32) | msg_id(16) | n_keys(4) | keys. */
#define S_ACC_HDR (8 + 48 + 32 + 16 + 4)

soffa_err_t
soffa_box_access_put(soffa_box_t *self, const soffa_box_access_t *a, uint64_t *seq)
{
    if (a->n_keys > SOFFA_BOX_ACCESS_KEYS_MAX)
        return SOFFA_ERR_TOO_LARGE;
    int mrc;
    MDB_txn *txn = NULL;
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
    MDB_val k = {8, kb}, v = {S_ACC_HDR + (size_t) a->n_keys * SOFFA_BOX_KEY_LEN, NULL};
    S_MDB(mdb_put(txn, self->access, &k, &v, MDB_RESERVE | MDB_APPEND));
    uint8_t *p = v.mv_data;
    memset(p, 0, S_ACC_HDR);
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
    nv = (MDB_val) {8, nb};
    S_MDB(mdb_put(txn, self->meta, &nk, &nv, 0));
    mrc = mdb_txn_commit(txn);   /* durable before the view is shown */
    txn = NULL;
    if (mrc != 0)
        goto fail;
    if (seq)
        *seq = next;
    return SOFFA_OK;
fail:
    return s_end(txn, mrc);
}

typedef struct {
    int (*fn)(void *, const soffa_box_access_t *);
    void *ctx;
} s_acc_visit_t;

static int
s_acc_visit(void *ctx, const MDB_val *k, const MDB_val *v)
{
    s_acc_visit_t *o = ctx;
    if (k->mv_size != 8 || v->mv_size < S_ACC_HDR)
        return 0;
    const uint8_t *p = v->mv_data;
    soffa_box_access_t a;
    memset(&a, 0, sizeof a);
    a.seq = soffa_bytes_get_u64(k->mv_data);
    a.at_us = (int64_t) soffa_bytes_get_u64(p);
    memcpy(a.actor, p + 8, 47);
    memcpy(a.what, p + 56, 31);
    memcpy(a.msg_id, p + 88, 16);
    a.n_keys = (uint32_t) p[104] << 24 | (uint32_t) p[105] << 16 | (uint32_t) p[106] << 8 | p[107];
    if ((size_t) a.n_keys * SOFFA_BOX_KEY_LEN != v->mv_size - S_ACC_HDR)
        return 0;   /* damaged: skipped, never read past the value */
    a.keys = p + S_ACC_HDR;
    return o->fn(o->ctx, &a);
}

soffa_err_t
soffa_box_access_scan(soffa_box_t *self, uint64_t after, int (*fn)(void *, const soffa_box_access_t *), void *ctx)
{
    s_acc_visit_t o = {fn, ctx};
    return s_each(self, self->access, after + 1, s_acc_visit, &o);
}

/* ---- Tables of other modules ------------------------------------------------ */

struct soffa_box_txn {
    soffa_box_t *box;
    MDB_txn *txn;
};

soffa_err_t
soffa_box_table(soffa_box_t *self, const char *name, uint32_t *table)
{
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, name, MDB_CREATE, &dbi);
    soffa_err_t rc = s_end(txn, mrc);
    if (rc == SOFFA_OK)
        *table = (uint32_t) dbi;
    return rc;
}

soffa_err_t
soffa_box_write(soffa_box_t *self, soffa_err_t (*fn)(void *ctx, soffa_box_txn_t *t), void *ctx)
{
    soffa_box_txn_t t = {self, NULL};
    int mrc = mdb_txn_begin(self->env, NULL, 0, &t.txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    soffa_err_t rc = fn(ctx, &t);
    if (rc != SOFFA_OK) {
        mdb_txn_abort(t.txn);
        return rc;
    }
    return s_end(t.txn, 0);   /* durable before the caller answers */
}

soffa_err_t
soffa_box_read(soffa_box_t *self, soffa_err_t (*fn)(void *ctx, soffa_box_txn_t *t), void *ctx)
{
    soffa_box_txn_t t = {self, NULL};
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &t.txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    soffa_err_t rc = fn(ctx, &t);
    mdb_txn_abort(t.txn);
    return rc;
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
    *val = v.mv_data;
    *vlen = v.mv_size;
    return SOFFA_OK;
}

soffa_err_t
soffa_box_txn_put(soffa_box_txn_t *t, uint32_t table, const void *key, size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *) key}, v = {vlen, (void *) val};
    return soffa_store_err(mdb_put(t->txn, (MDB_dbi) table, &k, &v, 0));
}

soffa_err_t
soffa_box_txn_scan(soffa_box_txn_t *t, uint32_t table,
                   int (*fn)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen), void *ctx)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(t->txn, (MDB_dbi) table, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
            break;
    mdb_cursor_close(cur);
    return mrc == 0 || mrc == MDB_NOTFOUND ? SOFFA_OK : soffa_store_err(mrc);
}

soffa_err_t
soffa_box_txn_outbox_put(soffa_box_txn_t *t, const uint8_t msg_id[16], const uint8_t *msg, size_t len,
                         uint64_t *local_id)
{
    return soffa_store_err(s_outbox_append(t->box, t->txn, msg_id, msg, len, local_id));
}
