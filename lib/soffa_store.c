/*  soffa_store: LMDB log with indices, dedup, cursors and the hash chain. */
#include "soffa_store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "soffa_bytes.h"
#include "soffa_log.h"
#include "soffa_time.h"

#define S_VERSION "3"   /* 2: subject index in seq buckets; 3: mailbox ordinals, state table */
#define S_VERSION_2 "2"
/* The subject index is split into buckets of 2^S_BUCKET_BITS sequence numbers,
 * key = bucket(u32) || subject_key || seq. A commit then dirties only the few
 * pages of the newest bucket instead of one random page per record, and the
 * cost of a publish does not grow with history. A lookup seeks once per
 * bucket: about 40,000 seeks (tens of milliseconds) for 10 million records. */
#define S_BUCKET_BITS 8
#define S_SUBJECT_KEY (4 + SOFFA_SUBJECT_KEY_LEN + 8)
#define S_KEY_FILE "subject.key"
#define S_KEY_LEN 32
#define S_HEAD_LEN (8 + SOFFA_HASH_LEN + 8)
#define S_REC_HDR (SOFFA_HASH_LEN + 1)   /* hash, tag */

struct soffa_store {
    MDB_env *env;
    MDB_dbi log;                          /* seq -> hash || envelope */
    MDB_dbi mailbox;                      /* mailbox NUL seq -> ordinal in the mailbox (u64) */
    MDB_dbi subject;                      /* subject key || seq -> "" */
    MDB_dbi dedup;                        /* sender NUL message id -> seq */
    MDB_dbi cursor;                       /* consumer -> seq */
    MDB_dbi meta;                         /* version, head */
    MDB_dbi ref;                          /* reference key -> seq */
    MDB_dbi state;                        /* the broker's derived state: key -> value */
    bool read_only;
    bool has_key;                         /* subject key loaded */
    uint8_t key[S_KEY_LEN];               /* subject index secret */
    uint64_t head_seq;                    /* last committed sequence */
    uint8_t head_hash[SOFFA_HASH_LEN];    /* hash of the last committed record */
    int64_t head_time;                    /* receive time of the last committed record */
    MDB_txn *rd;                          /* a read transaction kept reset between lookups (s_rd_begin) */
    bool rd_busy;                         /* rd is in use (atomic) */
    int64_t last_sync_us;                 /* how long the last append's mdb_txn_commit took */
};

/* ---- Helpers --------------------------------------------------------------- */

soffa_err_t
soffa_store_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return SOFFA_OK;
    case MDB_NOTFOUND: return SOFFA_ERR_NOT_FOUND;
    case MDB_MAP_FULL: return SOFFA_ERR_STORE_FULL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID: return SOFFA_ERR_STORE_CORRUPT;
    case MDB_VERSION_MISMATCH: return SOFFA_ERR_VERSION;
    case ENOSPC:
    case EDQUOT: return SOFFA_ERR_DISK_FULL;
    case EACCES:
    case EPERM:
    case EROFS: return SOFFA_ERR_PERMISSION;
    case ENOENT: return SOFFA_ERR_NOT_FOUND;
    case ENOMEM: return SOFFA_ERR_NOMEM;
    default: return SOFFA_ERR_STORE_IO;
    }
}


/* Reads or creates the subject index key. A key others can read is refused. */
static soffa_err_t
s_load_key(soffa_store_t *self, const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, S_KEY_FILE) >= (int) sizeof path)
        return SOFFA_ERR_INVALID_ARG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (self->read_only)
            return SOFFA_OK;   /* a copy without the key still verifies */
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return soffa_err_from_errno(errno);
        randombytes_buf(self->key, S_KEY_LEN);
        bool ok = write(fd, self->key, S_KEY_LEN) == S_KEY_LEN && fsync(fd) == 0;
        close(fd);
        if (!ok) {
            unlink(path);
            return SOFFA_ERR_STORE_IO;
        }
        self->has_key = true;
        return SOFFA_OK;
    }
    if (fd < 0)
        return soffa_err_from_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        close(fd);
        soffa_error("%s is readable by others; run chmod 600 on it", path);
        return SOFFA_ERR_PERMISSION;
    }
    ssize_t n = read(fd, self->key, S_KEY_LEN);
    close(fd);
    if (n != S_KEY_LEN)
        return SOFFA_ERR_STORE_CORRUPT;
    self->has_key = true;
    return SOFFA_OK;
}

/* ---- Open and close ---------------------------------------------------- */

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
soffa_store_open(soffa_store_t **out, const soffa_store_opts_t *opts)
{
    if (!out || !opts || !opts->path)
        return SOFFA_ERR_INVALID_ARG;
    *out = NULL;
    soffa_err_t rc = SOFFA_OK;
    int mrc = 0;
    MDB_txn *txn = NULL;
    soffa_store_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->read_only = opts->read_only;

    if (!opts->read_only) {
        if (mkdir(opts->path, 0700) != 0 && errno != EEXIST) {
            rc = soffa_err_from_errno(errno);
            goto fail;
        }
    }
    struct stat st;
    if (stat(opts->path, &st) != 0) {
        rc = soffa_err_from_errno(errno);
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = SOFFA_ERR_INVALID_ARG;
        goto fail;
    }
    rc = s_load_key(self, opts->path);
    if (rc != SOFFA_OK)
        goto fail;

    if ((mrc = mdb_env_create(&self->env)) != 0)
        goto lmdb_fail;
    mdb_env_set_maxdbs(self->env, 12);
    if ((mrc = mdb_env_set_mapsize(self->env, opts->map_size ? opts->map_size : (size_t) 1 << 30)) != 0)
        goto lmdb_fail;
    /* No MDB_NOSYNC / MDB_NOMETASYNC / MDB_MAPASYNC: a commit is durable. */
    unsigned flags = MDB_NOTLS | (opts->read_only ? MDB_RDONLY : 0);
    if ((mrc = mdb_env_open(self->env, opts->path, flags, 0600)) != 0)
        goto lmdb_fail;
    mdb_env_set_userctx(self->env, self);   /* s_rd_end finds the store from a transaction */
    /* LMDB leaves its data file descriptor inheritable; no program the
     * process may start gets the store. */
    if ((mrc = s_cloexec(self->env)) != 0)
        goto lmdb_fail;

    if ((mrc = mdb_txn_begin(self->env, NULL, opts->read_only ? MDB_RDONLY : 0, &txn)) != 0)
        goto lmdb_fail;
    unsigned create = opts->read_only ? 0 : MDB_CREATE;
    if ((mrc = mdb_dbi_open(txn, "log", create, &self->log)) != 0
        || (mrc = mdb_dbi_open(txn, "mailbox", create, &self->mailbox)) != 0
        || (mrc = mdb_dbi_open(txn, "subject", create, &self->subject)) != 0
        || (mrc = mdb_dbi_open(txn, "dedup", create, &self->dedup)) != 0
        || (mrc = mdb_dbi_open(txn, "cursor", create, &self->cursor)) != 0
        || (mrc = mdb_dbi_open(txn, "meta", create, &self->meta)) != 0
        || (mrc = mdb_dbi_open(txn, "ref", create, &self->ref)) != 0)
        goto lmdb_fail;
    /* A version-2 store has no state table: it is refused below, or made by
     * soffa_store_upgrade. */
    mrc = mdb_dbi_open(txn, "state", create, &self->state);
    if (mrc != 0 && !(mrc == MDB_NOTFOUND && opts->read_only))
        goto lmdb_fail;

    MDB_val k = {7, "version"}, v;
    mrc = mdb_get(txn, self->meta, &k, &v);
    if (mrc == MDB_NOTFOUND && !opts->read_only) {
        v.mv_size = strlen(S_VERSION);
        v.mv_data = S_VERSION;
        if ((mrc = mdb_put(txn, self->meta, &k, &v, 0)) != 0)
            goto lmdb_fail;
    } else if (mrc != 0) {
        goto lmdb_fail;
    } else if (v.mv_size != strlen(S_VERSION) || memcmp(v.mv_data, S_VERSION, v.mv_size) != 0) {
        soffa_error("store %s has format version %.*s; this soffa reads version %s: run soffa-broker --upgrade-store "
                    "(it takes a backup first)", opts->path, (int) (v.mv_size < 16 ? v.mv_size : 16),
                    (const char *) v.mv_data, S_VERSION);
        rc = SOFFA_ERR_VERSION;
        goto fail;
    }
    k = (MDB_val) {4, "head"};
    mrc = mdb_get(txn, self->meta, &k, &v);
    if (mrc == 0) {
        if (v.mv_size != S_HEAD_LEN) {
            rc = SOFFA_ERR_STORE_CORRUPT;
            goto fail;
        }
        self->head_seq = soffa_bytes_get_u64(v.mv_data);
        memcpy(self->head_hash, (uint8_t *) v.mv_data + 8, SOFFA_HASH_LEN);
        self->head_time = (int64_t) soffa_bytes_get_u64((uint8_t *) v.mv_data + 8 + SOFFA_HASH_LEN);
    } else if (mrc != MDB_NOTFOUND) {
        goto lmdb_fail;
    }
    if ((mrc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        goto lmdb_fail;
    }
    *out = self;
    return SOFFA_OK;

lmdb_fail:
    rc = soffa_store_err(mrc);
    soffa_error("store %s: open failed: %s (lmdb %d)", opts->path, mdb_strerror(mrc), mrc);
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (self->env)
        mdb_env_close(self->env);
    sodium_memzero(self->key, sizeof self->key);
    free(self);
    return rc;
}

void
soffa_store_close(soffa_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_store_t *self = *self_p;
    if (self->rd)
        mdb_txn_abort(self->rd);
    mdb_env_close(self->env);
    sodium_memzero(self->key, sizeof self->key);
    free(self);
    *self_p = NULL;
}

void
soffa_store_subject_key(const soffa_store_t *self, const char *id, uint8_t out[SOFFA_SUBJECT_KEY_LEN])
{
    crypto_generichash(out, SOFFA_SUBJECT_KEY_LEN, (const uint8_t *) id, strlen(id), self->key,
                       S_KEY_LEN);
}

void
soffa_store_head(const soffa_store_t *self, uint64_t *seq, uint8_t hash[SOFFA_HASH_LEN],
                 int64_t *time_us)
{
    if (seq)
        *seq = self->head_seq;
    if (hash)
        memcpy(hash, self->head_hash, SOFFA_HASH_LEN);
    if (time_us)
        *time_us = self->head_time;
}

/* ---- Append (group commit) ------------------------------------------------- */

/* Dedup key: message id first. Message ids are UUIDv7 (time first), so new
 * keys land at the end of the tree and a commit dirties few of its pages. */
static void
s_dedup_key(uint8_t *out, const uint8_t msg_id[16], const char *sender, size_t alen)
{
    memcpy(out, msg_id, 16);
    memcpy(out + 16, sender, alen);
}

static uint8_t
s_tag(const soffa_envelope_t *env)
{
    if (env->kind == SOFFA_RK_MESSAGE)
        return (uint8_t) env->msg_type;
    return (uint8_t) (0x80 | env->kind);
}

/* A failed commit: a full disk often shows as a short write (EIO) rather
 * than ENOSPC, so look at the free space before calling it an I/O error. */
static soffa_err_t
s_write_err(soffa_store_t *self, int mrc)
{
    soffa_err_t rc = soffa_store_err(mrc);
    const char *path = NULL;
    struct statvfs fs;
    if (rc == SOFFA_ERR_STORE_IO && mdb_env_get_path(self->env, &path) == 0 && path && statvfs(path, &fs) == 0
        && (uint64_t) fs.f_bavail * fs.f_frsize < (uint64_t) 1 << 20)
        rc = SOFFA_ERR_DISK_FULL;
    return rc;
}

/* Per-mailbox totals live in meta under "m:" NAME -> count(u64) last(u64),
 * so that the broker learns its mailboxes without scanning the index. */
#define S_MSTAT_PREFIX "m:"
#define S_MSTAT_MAX 64

typedef struct {
    const char *name;
    uint64_t base;                 /* count stored before this batch */
    uint64_t added, last;
} s_mstat_t;

/* The stored count of a mailbox (0 when it has none yet). */
static int
s_mstat_get(soffa_store_t *self, MDB_txn *txn, const char *name, uint64_t *count)
{
    uint8_t key[2 + SOFFA_NAME_MAX];
    size_t nlen = strlen(name);
    memcpy(key, S_MSTAT_PREFIX, 2);
    memcpy(key + 2, name, nlen);
    MDB_val k = {2 + nlen, key}, v;
    int mrc = mdb_get(txn, self->meta, &k, &v);
    *count = 0;
    if (mrc == 0 && v.mv_size == 16)
        *count = soffa_bytes_get_u64(v.mv_data);
    else if (mrc == 0)
        return MDB_CORRUPTED;
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

static int
s_mstat_flush(soffa_store_t *self, MDB_txn *txn, s_mstat_t *ms, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        uint8_t key[2 + SOFFA_NAME_MAX], val[16];
        size_t nlen = strlen(ms[i].name);
        memcpy(key, S_MSTAT_PREFIX, 2);
        memcpy(key + 2, ms[i].name, nlen);
        soffa_bytes_put_u64(val, ms[i].base + ms[i].added);
        soffa_bytes_put_u64(val + 8, ms[i].last);
        MDB_val k = {2 + nlen, key}, v = {16, val};
        int mrc = mdb_put(txn, self->meta, &k, &v, 0);
        if (mrc != 0)
            return mrc;
    }
    *n = 0;
    return 0;
}

/* Counts one more record of mailbox `name` at seq; *ordinal gets its place
 * in the mailbox (1 for the first record ever). */
static int
s_mstat_add(soffa_store_t *self, MDB_txn *txn, s_mstat_t *ms, size_t *n, const char *name, uint64_t seq,
            uint64_t *ordinal)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(ms[i].name, name) == 0) {
            ms[i].added++;
            ms[i].last = seq;
            *ordinal = ms[i].base + ms[i].added;
            return 0;
        }
    if (*n == S_MSTAT_MAX) {
        int mrc = s_mstat_flush(self, txn, ms, n);
        if (mrc != 0)
            return mrc;
    }
    uint64_t base;
    int mrc = s_mstat_get(self, txn, name, &base);
    if (mrc != 0)
        return mrc;
    ms[(*n)++] = (s_mstat_t) {name, base, 1, seq};
    *ordinal = base + 1;
    return 0;
}

/* Applies an item's state operations (seq is the item's sequence). */
static int
s_state_apply(soffa_store_t *self, MDB_txn *txn, const soffa_store_item_t *it, uint64_t seq)
{
    for (size_t i = 0; i < it->n_state && i < SOFFA_STORE_STATE_OPS; i++) {
        const soffa_store_state_op_t *op = &it->state[i];
        if (op->klen == 0 || op->klen > SOFFA_STORE_STATE_KEY || op->vlen > SOFFA_STORE_STATE_VAL)
            return EINVAL;
        MDB_val k = {op->klen, (void *) op->key};
        if (op->del) {
            int mrc = mdb_del(txn, self->state, &k, NULL);
            if (mrc != 0 && mrc != MDB_NOTFOUND)
                return mrc;
            continue;
        }
        uint8_t val[SOFFA_STORE_STATE_VAL + 8];
        memcpy(val, op->val, op->vlen);
        size_t vlen = op->vlen;
        if (op->with_seq) {
            soffa_bytes_put_u64(val + vlen, seq);
            vlen += 8;
        }
        MDB_val v = {vlen, val};
        int mrc = mdb_put(txn, self->state, &k, &v, 0);
        if (mrc != 0)
            return mrc;
    }
    return 0;
}

soffa_err_t
soffa_store_append(soffa_store_t *self, soffa_store_item_t *items, size_t n)
{
    return soffa_store_append_cursors(self, items, n, NULL, 0);
}

/* Indexes every record under old_key's subject index entries under new_key
 * too (an identity number replaced by another), in txn. */
static int
s_subject_link(soffa_store_t *self, MDB_txn *txn, const uint8_t old_key[SOFFA_SUBJECT_KEY_LEN],
               const uint8_t new_key[SOFFA_SUBJECT_KEY_LEN])
{
    if (memcmp(old_key, new_key, SOFFA_SUBJECT_KEY_LEN) == 0)
        return 0;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, self->subject, &cur);
    if (mrc != 0)
        return mrc;
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    uint64_t last = mrc == 0 && k.mv_size == S_SUBJECT_KEY
                        ? soffa_bytes_get_u64((uint8_t *) k.mv_data + 4 + SOFFA_SUBJECT_KEY_LEN) : 0;
    mrc = mrc == MDB_NOTFOUND ? 0 : mrc;
    /* One seek per bucket, as a scan of the subject does. */
    for (uint64_t b = 0; mrc == 0 && b <= last >> S_BUCKET_BITS; b++) {
        uint8_t sk[S_SUBJECT_KEY];
        soffa_bytes_put_u32(sk, (uint32_t) b);
        memcpy(sk + 4, old_key, SOFFA_SUBJECT_KEY_LEN);
        soffa_bytes_put_u64(sk + 4 + SOFFA_SUBJECT_KEY_LEN, 0);
        k = (MDB_val) {sizeof sk, sk};
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != S_SUBJECT_KEY || memcmp(k.mv_data, sk, 4 + SOFFA_SUBJECT_KEY_LEN) != 0)
                break;
            if (n == cap) {
                size_t c2 = cap ? 2 * cap : 64;
                uint64_t *g = realloc(seqs, c2 * sizeof *g);
                if (!g) {
                    mrc = ENOMEM;
                    break;
                }
                seqs = g;
                cap = c2;
            }
            seqs[n++] = soffa_bytes_get_u64((uint8_t *) k.mv_data + 4 + SOFFA_SUBJECT_KEY_LEN);
        }
        if (mrc == MDB_NOTFOUND)
            mrc = 0;
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; mrc == 0 && i < n; i++) {
        uint8_t sk[S_SUBJECT_KEY];
        soffa_bytes_put_u32(sk, (uint32_t) (seqs[i] >> S_BUCKET_BITS));
        memcpy(sk + 4, new_key, SOFFA_SUBJECT_KEY_LEN);
        soffa_bytes_put_u64(sk + 4 + SOFFA_SUBJECT_KEY_LEN, seqs[i]);
        MDB_val sv = {sizeof sk, sk}, empty = {0, NULL};
        mrc = mdb_put(txn, self->subject, &sv, &empty, 0);
    }
    free(seqs);
    return mrc;
}

soffa_err_t
soffa_store_subject_link(soffa_store_t *self, const char *old_id, const char *new_id)
{
    if (!self || !old_id || !new_id)
        return SOFFA_ERR_INVALID_ARG;
    if (self->read_only)
        return SOFFA_ERR_PERMISSION;
    if (!self->has_key)
        return SOFFA_ERR_NOT_FOUND;
    uint8_t ok[SOFFA_SUBJECT_KEY_LEN], nk[SOFFA_SUBJECT_KEY_LEN];
    soffa_store_subject_key(self, old_id, ok);
    soffa_store_subject_key(self, new_id, nk);
    MDB_txn *txn;
    int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    if ((mrc = s_subject_link(self, txn, ok, nk)) != 0) {
        mdb_txn_abort(txn);
        return s_write_err(self, mrc);
    }
    mrc = mdb_txn_commit(txn);
    return mrc == 0 ? SOFFA_OK : s_write_err(self, mrc);
}

soffa_err_t
soffa_store_append_cursors(soffa_store_t *self, soffa_store_item_t *items, size_t n, const soffa_store_cursor_t *cur,
                           size_t n_cur)
{
    if (!self || (!items && n) || (!cur && n_cur))
        return SOFFA_ERR_INVALID_ARG;
    if (self->read_only)
        return SOFFA_ERR_PERMISSION;
    if (n == 0 && n_cur == 0)
        return SOFFA_OK;

    /* Tentative head; it becomes the store's only after a successful commit. */
    uint64_t seq = self->head_seq;
    uint8_t hash[SOFFA_HASH_LEN];
    int64_t time_us = self->head_time;
    memcpy(hash, self->head_hash, SOFFA_HASH_LEN);

    soffa_err_t rc = SOFFA_OK;
    int mrc = 0;
    MDB_txn *txn = NULL;
    uint8_t *buf = NULL;
    s_mstat_t ms[S_MSTAT_MAX];
    size_t n_ms = 0;

    if ((mrc = mdb_txn_begin(self->env, NULL, 0, &txn)) != 0)
        goto lmdb_fail;

    for (size_t i = 0; i < n; i++) {
        soffa_store_item_t *it = &items[i];
        soffa_envelope_t *env = it->env;
        it->seq = 0;
        it->duplicate = false;
        size_t alen = env ? strlen(env->sender_agent) : 0;
        if (!env || alen == 0 || env->mailbox[0] == '\0') {
            rc = SOFFA_ERR_INVALID_ARG;
            goto fail;
        }
        /* Dedup: (sender, message id) seen before returns the original seq.
         * Earlier items of this batch are visible here too. */
        uint8_t dkey[16 + SOFFA_NAME_MAX];
        s_dedup_key(dkey, env->message_id, env->sender_agent, alen);
        MDB_val dk = {16 + alen, dkey}, dv;
        mrc = mdb_get(txn, self->dedup, &dk, &dv);
        if (mrc == 0 && dv.mv_size == 8) {
            it->seq = soffa_bytes_get_u64(dv.mv_data);
            it->duplicate = true;
            continue;
        }
        if (mrc != MDB_NOTFOUND && mrc != 0)
            goto lmdb_fail;

        if (it->seq_from && env->kind != SOFFA_RK_RESTORE) {
            rc = SOFFA_ERR_INVALID_ARG;   /* only a restore record may jump, and verify insists on it */
            goto fail;
        }
        seq = it->seq_from > seq + 1 ? it->seq_from : seq + 1;
        env->seq = seq;
        env->version = SOFFA_ENVELOPE_VERSION;
        memcpy(env->prev_hash, hash, SOFFA_HASH_LEN);
        /* Receive times never go backwards, so a time range maps to a seq range. */
        if (env->received_at_us < time_us)
            env->received_at_us = time_us;
        time_us = env->received_at_us;
        env->has_subject_key = false;
        if (it->subject_id && it->subject_id[0] && self->has_key) {
            soffa_store_subject_key(self, it->subject_id, env->subject_key);
            env->has_subject_key = true;
        }

        size_t len;
        rc = soffa_envelope_encode(env, &buf, &len);
        if (rc != SOFFA_OK)
            goto fail;
        soffa_wire_hash(buf, len, hash);

        uint8_t skey[8];
        soffa_bytes_put_u64(skey, seq);
        MDB_val k = {8, skey}, v = {S_REC_HDR + len, NULL};
        if ((mrc = mdb_put(txn, self->log, &k, &v, MDB_APPEND | MDB_RESERVE)) != 0)
            goto lmdb_fail;
        memcpy(v.mv_data, hash, SOFFA_HASH_LEN);
        ((uint8_t *) v.mv_data)[SOFFA_HASH_LEN] = s_tag(env);
        memcpy((uint8_t *) v.mv_data + S_REC_HDR, buf, len);
        free(buf);
        buf = NULL;

        for (size_t r = 0; r < it->n_refs && r < SOFFA_STORE_REFS; r++) {
            uint8_t rk[SOFFA_STORE_REF_MAX + 8];
            size_t rlen = it->refs[r].len;
            if (rlen == 0 || rlen > SOFFA_STORE_REF_MAX) {
                rc = SOFFA_ERR_INVALID_ARG;
                goto fail;
            }
            memcpy(rk, it->refs[r].key, rlen);
            if (it->refs[r].shared) {   /* many records under one prefix */
                soffa_bytes_put_u64(rk + rlen, seq);
                rlen += 8;
            }
            MDB_val rkv = {rlen, rk}, rv = {8, skey};
            if ((mrc = mdb_put(txn, self->ref, &rkv, &rv, 0)) != 0)
                goto lmdb_fail;
        }

        size_t mlen = strlen(env->mailbox);
        uint8_t mkey[SOFFA_NAME_MAX + 1 + 8];
        memcpy(mkey, env->mailbox, mlen + 1);
        soffa_bytes_put_u64(mkey + mlen + 1, seq);
        uint64_t ordinal;
        uint8_t oval[8];
        MDB_val mk = {mlen + 1 + 8, mkey}, ov = {8, oval}, empty = {0, NULL};
        if ((mrc = s_mstat_add(self, txn, ms, &n_ms, env->mailbox, seq, &ordinal)) != 0)
            goto lmdb_fail;
        soffa_bytes_put_u64(oval, ordinal);
        if ((mrc = mdb_put(txn, self->mailbox, &mk, &ov, 0)) != 0 || (mrc = s_state_apply(self, txn, it, seq)) != 0)
            goto lmdb_fail;

        if (env->has_subject_key) {
            uint8_t sk[S_SUBJECT_KEY];
            soffa_bytes_put_u32(sk, (uint32_t) (seq >> S_BUCKET_BITS));
            memcpy(sk + 4, env->subject_key, SOFFA_SUBJECT_KEY_LEN);
            soffa_bytes_put_u64(sk + 4 + SOFFA_SUBJECT_KEY_LEN, seq);
            MDB_val sv = {sizeof sk, sk};
            if ((mrc = mdb_put(txn, self->subject, &sv, &empty, 0)) != 0)
                goto lmdb_fail;
            if (it->subject_alias && it->subject_alias[0]) {
                uint8_t old_key[SOFFA_SUBJECT_KEY_LEN];
                soffa_store_subject_key(self, it->subject_alias, old_key);
                if ((mrc = s_subject_link(self, txn, old_key, env->subject_key)) != 0)
                    goto lmdb_fail;
            }
        }

        MDB_val dval = {8, skey};
        if ((mrc = mdb_put(txn, self->dedup, &dk, &dval, 0)) != 0)
            goto lmdb_fail;
        it->seq = seq;
    }

    if ((mrc = s_mstat_flush(self, txn, ms, &n_ms)) != 0)
        goto lmdb_fail;
    for (size_t i = 0; i < n_cur; i++) {
        size_t len = cur[i].consumer ? strlen(cur[i].consumer) : 0;
        if (len == 0 || len > 400) {
            rc = SOFFA_ERR_INVALID_ARG;
            goto fail;
        }
        uint8_t sv[8];
        soffa_bytes_put_u64(sv, cur[i].seq);
        MDB_val ck = {len, (void *) cur[i].consumer}, cv = {8, sv};
        if ((mrc = mdb_put(txn, self->cursor, &ck, &cv, 0)) != 0)
            goto lmdb_fail;
    }
    if (seq != self->head_seq) {
        uint8_t head[S_HEAD_LEN];
        soffa_bytes_put_u64(head, seq);
        memcpy(head + 8, hash, SOFFA_HASH_LEN);
        soffa_bytes_put_u64(head + 8 + SOFFA_HASH_LEN, (uint64_t) time_us);
        MDB_val hk = {4, "head"}, hv = {S_HEAD_LEN, head};
        if ((mrc = mdb_put(txn, self->meta, &hk, &hv, 0)) != 0)
            goto lmdb_fail;
    }
    /* The commit flushes data and meta page to disk before returning 0. */
    int64_t t0 = soffa_mono_us();
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto lmdb_fail;
    self->last_sync_us = soffa_mono_us() - t0;
    self->head_seq = seq;
    memcpy(self->head_hash, hash, SOFFA_HASH_LEN);
    self->head_time = time_us;
    return SOFFA_OK;

lmdb_fail:
    rc = s_write_err(self, mrc);
    soffa_error("store commit of %zu record(s) and %zu cursor(s) failed: %s (lmdb %d): %s", n, n_cur,
                mdb_strerror(mrc), mrc, soffa_strerror(rc));
fail:
    if (txn)
        mdb_txn_abort(txn);
    free(buf);
    /* The batch is aborted whole: no item has a sequence. */
    for (size_t i = 0; i < n; i++) {
        items[i].seq = 0;
        items[i].duplicate = false;
    }
    return rc;
}

/* ---- Reads ------------------------------------------------------------- */

/* A read transaction for one lookup or scan. The store keeps one, reset
 * between uses and renewed for the next (no allocation and no lock: LMDB
 * keeps its reader slot), which makes the broker's lookups per publish
 * cheap; a lookup while it is in use (from inside a scan's visitor, or from
 * another thread) gets a transaction of its own. Each sees the store as of
 * its start, as a fresh transaction does. End it with s_rd_end. */
static int
s_rd_begin(soffa_store_t *self, MDB_txn **txn)
{
    if (__atomic_exchange_n(&self->rd_busy, true, __ATOMIC_ACQUIRE))
        return mdb_txn_begin(self->env, NULL, MDB_RDONLY, txn);
    int mrc = self->rd ? mdb_txn_renew(self->rd) : MDB_BAD_TXN;
    if (mrc != 0) {
        if (self->rd)
            mdb_txn_abort(self->rd);
        self->rd = NULL;
        mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &self->rd);
    }
    if (mrc != 0) {
        self->rd = NULL;
        __atomic_store_n(&self->rd_busy, false, __ATOMIC_RELEASE);
        return mrc;
    }
    *txn = self->rd;
    return 0;
}

static void
s_rd_end(MDB_txn *txn)
{
    soffa_store_t *self = mdb_env_get_userctx(mdb_txn_env(txn));
    if (self && txn == self->rd) {
        mdb_txn_reset(txn);
        __atomic_store_n(&self->rd_busy, false, __ATOMIC_RELEASE);
    } else {
        mdb_txn_abort(txn);
    }
}

/* A read transaction with a cursor on dbi; 0 or an LMDB error (nothing
 * left open). Close with s_read_end. */
static int
s_read_cursor(soffa_store_t *self, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **cur)
{
    int mrc = s_rd_begin(self, txn);
    if (mrc != 0)
        return mrc;
    if ((mrc = mdb_cursor_open(*txn, dbi, cur)) != 0)
        s_rd_end(*txn);
    return mrc;
}

/* Ends what s_read_cursor began; rc, or the LMDB error mrc that stopped a
 * walk early (running off the end is not an error). */
static soffa_err_t
s_read_end(MDB_txn *txn, MDB_cursor *cur, soffa_err_t rc, int mrc)
{
    if (rc == SOFFA_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = soffa_store_err(mrc);
    mdb_cursor_close(cur);
    s_rd_end(txn);
    return rc;
}

static soffa_err_t
s_visit(const MDB_val *k, const MDB_val *v, soffa_store_visit_fn fn, void *ctx, int *stop)
{
    if (k->mv_size != 8 || v->mv_size < S_REC_HDR)
        return SOFFA_ERR_STORE_CORRUPT;
    const uint8_t *p = v->mv_data;
    soffa_store_rec_t rec = {soffa_bytes_get_u64(k->mv_data), p + S_REC_HDR, v->mv_size - S_REC_HDR, p,
                             p[SOFFA_HASH_LEN]};
    *stop = fn(ctx, &rec);
    return SOFFA_OK;
}

soffa_err_t
soffa_store_get(soffa_store_t *self, uint64_t seq, soffa_store_visit_fn fn, void *ctx)
{
    MDB_txn *txn;
    int mrc = s_rd_begin(self, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    uint8_t skey[8];
    soffa_bytes_put_u64(skey, seq);
    MDB_val k = {8, skey}, v;
    soffa_err_t rc;
    mrc = mdb_get(txn, self->log, &k, &v);
    if (mrc == 0) {
        int stop;
        rc = s_visit(&k, &v, fn, ctx, &stop);
    } else {
        rc = soffa_store_err(mrc);
    }
    s_rd_end(txn);
    return rc;
}

soffa_err_t
soffa_store_scan(soffa_store_t *self, uint64_t from_seq, soffa_store_visit_fn fn, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->log, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    uint8_t skey[8];
    soffa_bytes_put_u64(skey, from_seq);
    MDB_val k = {8, skey}, v;
    soffa_err_t rc = SOFFA_OK;
    int stop = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && !stop;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((rc = s_visit(&k, &v, fn, ctx, &stop)) != SOFFA_OK)
            break;
    }
    return s_read_end(txn, cur, rc, mrc);
}

/* Visits the index entries prefix || seq with seq > after_seq in txn (all of
 * them with fn NULL, counting up to cap); *stop is set when fn asked to stop. */
static soffa_err_t
s_scan_in(soffa_store_t *self, MDB_txn *txn, MDB_cursor *cur, const uint8_t *prefix, size_t plen,
          uint64_t after_seq, soffa_store_visit_fn fn, void *ctx, uint64_t cap, uint64_t *count, int *stop)
{
    uint8_t start[SOFFA_NAME_MAX + 1 + 8];
    memcpy(start, prefix, plen);
    soffa_bytes_put_u64(start + plen, after_seq == UINT64_MAX ? after_seq : after_seq + 1);
    MDB_val k = {plen + 8, start}, v;
    soffa_err_t rc = SOFFA_OK;
    uint64_t n = 0;
    int mrc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && !*stop;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != plen + 8 || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        n++;
        if (!fn) {
            if (cap && n >= cap)
                break;
            continue;
        }
        MDB_val lk = {8, (uint8_t *) k.mv_data + plen}, lv;
        if ((mrc = mdb_get(txn, self->log, &lk, &lv)) != 0) {
            rc = mrc == MDB_NOTFOUND ? SOFFA_ERR_STORE_CORRUPT : soffa_store_err(mrc);
            break;
        }
        if ((rc = s_visit(&lk, &lv, fn, ctx, stop)) != SOFFA_OK)
            break;
    }
    if (rc == SOFFA_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = soffa_store_err(mrc);
    if (count)
        *count = n;
    return rc;
}

/* s_scan_in in a read transaction of its own. */
static soffa_err_t
s_scan_index(soffa_store_t *self, MDB_dbi dbi, const uint8_t *prefix, size_t plen, uint64_t after_seq,
             soffa_store_visit_fn fn, void *ctx, uint64_t cap, uint64_t *count)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, dbi, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    int stop = 0;
    soffa_err_t rc = s_scan_in(self, txn, cur, prefix, plen, after_seq, fn, ctx, cap, count, &stop);
    return s_read_end(txn, cur, rc, 0);
}

soffa_err_t
soffa_store_scan_mailbox(soffa_store_t *self, const char *mailbox, uint64_t after_seq,
                         soffa_store_visit_fn fn, void *ctx)
{
    size_t mlen = mailbox ? strlen(mailbox) : 0;
    if (mlen == 0 || mlen >= SOFFA_NAME_MAX || !fn)
        return SOFFA_ERR_INVALID_ARG;
    return s_scan_index(self, self->mailbox, (const uint8_t *) mailbox, mlen + 1, after_seq, fn,
                        ctx, 0, NULL);
}

soffa_err_t
soffa_store_count_mailbox(soffa_store_t *self, const char *mailbox, uint64_t after_seq,
                          uint64_t cap, uint64_t *count)
{
    size_t mlen = mailbox ? strlen(mailbox) : 0;
    if (mlen == 0 || mlen >= SOFFA_NAME_MAX || !count)
        return SOFFA_ERR_INVALID_ARG;
    return s_scan_index(self, self->mailbox, (const uint8_t *) mailbox, mlen + 1, after_seq, NULL,
                        NULL, cap, count);
}

soffa_err_t
soffa_store_scan_subject(soffa_store_t *self, const char *id, uint64_t after_seq,
                         soffa_store_visit_fn fn, void *ctx)
{
    if (!id || !fn)
        return SOFFA_ERR_INVALID_ARG;
    if (!self->has_key)
        return SOFFA_ERR_NOT_FOUND;
    uint8_t sk[4 + SOFFA_SUBJECT_KEY_LEN];
    soffa_store_subject_key(self, id, sk + 4);
    uint64_t from = after_seq == UINT64_MAX ? after_seq : after_seq + 1;
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->subject, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    /* The newest bucket is the one of the last key (its seq need not be the
     * newest: keys sort by subject within a bucket). An empty index has none. */
    MDB_val k, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    uint64_t last = mrc == 0 && k.mv_size == S_SUBJECT_KEY ? soffa_bytes_get_u64((uint8_t *) k.mv_data + 4 + SOFFA_SUBJECT_KEY_LEN) : 0;
    soffa_err_t rc = mrc == 0 || mrc == MDB_NOTFOUND ? SOFFA_OK : soffa_store_err(mrc);
    /* One seek per bucket, oldest first, so records come in seq order. */
    int stop = 0;
    for (uint64_t b = from >> S_BUCKET_BITS; rc == SOFFA_OK && !stop && mrc == 0 && b <= last >> S_BUCKET_BITS; b++) {
        soffa_bytes_put_u32(sk, (uint32_t) b);
        uint64_t first = b << S_BUCKET_BITS;
        rc = s_scan_in(self, txn, cur, sk, sizeof sk, (first > from ? first : from) - 1, fn, ctx, 0, NULL, &stop);
    }
    return s_read_end(txn, cur, rc, 0);
}

soffa_err_t
soffa_store_mailboxes(soffa_store_t *self, int (*fn)(void *, const char *, uint64_t, uint64_t), void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->meta, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {2, S_MSTAT_PREFIX}, v;
    soffa_err_t rc = SOFFA_OK;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 2 || memcmp(k.mv_data, S_MSTAT_PREFIX, 2) != 0)
            break;
        size_t nlen = k.mv_size - 2;
        if (nlen == 0 || nlen >= SOFFA_NAME_MAX || v.mv_size != 16) {
            rc = SOFFA_ERR_STORE_CORRUPT;
            break;
        }
        char name[SOFFA_NAME_MAX];
        memcpy(name, (char *) k.mv_data + 2, nlen);
        name[nlen] = '\0';
        if (fn(ctx, name, soffa_bytes_get_u64(v.mv_data), soffa_bytes_get_u64((uint8_t *) v.mv_data + 8)))
            break;
    }
    return s_read_end(txn, cur, rc, mrc);
}

void
soffa_store_room(soffa_store_t *self, uint64_t *map_free, uint64_t *disk_free)
{
    MDB_envinfo info;
    MDB_stat st;
    if (map_free) {
        *map_free = 0;
        if (mdb_env_info(self->env, &info) == 0 && mdb_env_stat(self->env, &st) == 0) {
            uint64_t used = ((uint64_t) info.me_last_pgno + 1) * st.ms_psize;
            *map_free = info.me_mapsize > used ? info.me_mapsize - used : 0;
        }
    }
    if (disk_free) {
        const char *path = NULL;
        struct statvfs fs;
        *disk_free = UINT64_MAX;
        if (mdb_env_get_path(self->env, &path) == 0 && path && statvfs(path, &fs) == 0)
            *disk_free = (uint64_t) fs.f_bavail * fs.f_frsize;
    }
}

void
soffa_store_usage(soffa_store_t *self, uint64_t *map_size, uint64_t *used)
{
    MDB_envinfo info;
    MDB_stat st;
    *map_size = *used = 0;
    if (mdb_env_info(self->env, &info) == 0 && mdb_env_stat(self->env, &st) == 0) {
        *map_size = info.me_mapsize;
        *used = ((uint64_t) info.me_last_pgno + 1) * st.ms_psize;
    }
}

int64_t
soffa_store_last_sync_us(const soffa_store_t *self)
{
    return self->last_sync_us;
}

soffa_err_t
soffa_store_mailbox_rank(soffa_store_t *self, const char *mailbox, uint64_t seq, uint64_t *count)
{
    size_t mlen = mailbox ? strlen(mailbox) : 0;
    if (mlen == 0 || mlen >= SOFFA_NAME_MAX || !count)
        return SOFFA_ERR_INVALID_ARG;
    *count = 0;
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->mailbox, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    /* The last entry before (mailbox, seq + 1) holds the answer. */
    uint8_t key[SOFFA_NAME_MAX + 1 + 8];
    memcpy(key, mailbox, mlen + 1);
    soffa_bytes_put_u64(key + mlen + 1, seq == UINT64_MAX ? seq : seq + 1);
    MDB_val k = {mlen + 1 + 8, key}, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (mrc == 0)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    else if (mrc == MDB_NOTFOUND)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    soffa_err_t rc = SOFFA_OK;
    if (mrc == 0 && k.mv_size == mlen + 1 + 8 && memcmp(k.mv_data, mailbox, mlen + 1) == 0) {
        if (v.mv_size == 8)
            *count = soffa_bytes_get_u64(v.mv_data);
        else
            rc = SOFFA_ERR_STORE_CORRUPT;
    }
    return s_read_end(txn, cur, rc, mrc);
}

soffa_err_t
soffa_store_state_get(soffa_store_t *self, const void *key, size_t klen, void *val, size_t cap, size_t *vlen)
{
    if (!key || klen == 0 || klen > SOFFA_STORE_STATE_KEY)
        return SOFFA_ERR_INVALID_ARG;
    MDB_txn *txn;
    int mrc = s_rd_begin(self, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {klen, (void *) key}, v;
    mrc = mdb_get(txn, self->state, &k, &v);
    if (mrc == 0) {
        if (val)
            memcpy(val, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
        if (vlen)
            *vlen = v.mv_size;
    }
    s_rd_end(txn);
    return soffa_store_err(mrc);
}

soffa_err_t
soffa_store_state_scan(soffa_store_t *self, const void *prefix, size_t plen,
                       int (*fn)(void *, const uint8_t *, size_t, const uint8_t *, size_t), void *ctx)
{
    if (!fn || (plen && !prefix))
        return SOFFA_ERR_INVALID_ARG;
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->state, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {plen, (void *) prefix}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
            break;
    }
    return s_read_end(txn, cur, SOFFA_OK, mrc);
}

soffa_err_t
soffa_store_state_write(soffa_store_t *self, const soffa_store_state_op_t *ops, size_t n)
{
    if (!self || (!ops && n))
        return SOFFA_ERR_INVALID_ARG;
    if (self->read_only)
        return SOFFA_ERR_PERMISSION;
    MDB_txn *txn;
    int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    for (size_t i = 0; i < n && mrc == 0; i += SOFFA_STORE_STATE_OPS) {
        soffa_store_item_t it = {.n_state = n - i < SOFFA_STORE_STATE_OPS ? n - i : SOFFA_STORE_STATE_OPS};
        memcpy(it.state, ops + i, it.n_state * sizeof *ops);
        for (size_t j = 0; j < it.n_state; j++)
            if (it.state[j].with_seq)
                mrc = EINVAL;
        if (mrc == 0)
            mrc = s_state_apply(self, txn, &it, 0);
    }
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return s_write_err(self, mrc);
    }
    mrc = mdb_txn_commit(txn);
    return mrc == 0 ? SOFFA_OK : s_write_err(self, mrc);
}

/* ---- Upgrade ----------------------------------------------------------- */

/* Version 2 -> 3: every mailbox index entry gets its ordinal, the state
 * table is created (empty), and the version becomes 3. */
static int
s_upgrade_2(MDB_txn *txn, MDB_dbi mbox)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, mbox, &cur);
    if (mrc != 0)
        return mrc;
    MDB_val k, v;
    char name[SOFFA_NAME_MAX + 1] = "";
    uint64_t ordinal = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 9 || k.mv_size - 8 > sizeof name || ((char *) k.mv_data)[k.mv_size - 9] != '\0') {
            mrc = MDB_CORRUPTED;
            break;
        }
        if (strcmp(name, k.mv_data) != 0) {
            memcpy(name, k.mv_data, k.mv_size - 8);
            ordinal = 0;
        }
        /* The key lives in the page the put rewrites: copy it first. */
        uint8_t key[SOFFA_NAME_MAX + 1 + 8], ov[8];
        memcpy(key, k.mv_data, k.mv_size);
        soffa_bytes_put_u64(ov, ++ordinal);
        MDB_val nk = {k.mv_size, key}, nv = {8, ov};
        if ((mrc = mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

soffa_err_t
soffa_store_upgrade(const char *path, size_t map_size, char from[8])
{
    if (!path || !from)
        return SOFFA_ERR_INVALID_ARG;
    from[0] = '\0';
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta, mbox, state;
    soffa_err_t rc = SOFFA_OK;
    int mrc;
    if ((mrc = mdb_env_create(&env)) != 0)
        return soffa_store_err(mrc);
    mdb_env_set_maxdbs(env, 12);
    if ((mrc = mdb_env_set_mapsize(env, map_size ? map_size : (size_t) 1 << 30)) != 0
        || (mrc = mdb_env_open(env, path, MDB_NOTLS, 0600)) != 0
        || (mrc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 || (mrc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0)
        goto out;
    MDB_val k = {7, "version"}, v;
    if ((mrc = mdb_get(txn, meta, &k, &v)) != 0)
        goto out;
    snprintf(from, 8, "%.*s", (int) (v.mv_size < 7 ? v.mv_size : 7), (const char *) v.mv_data);
    if (strcmp(from, S_VERSION) == 0)
        goto out;   /* nothing to do */
    if (strcmp(from, S_VERSION_2) != 0) {
        rc = SOFFA_ERR_VERSION;
        goto out;
    }
    if ((mrc = mdb_dbi_open(txn, "mailbox", 0, &mbox)) != 0 || (mrc = s_upgrade_2(txn, mbox)) != 0
        || (mrc = mdb_dbi_open(txn, "state", MDB_CREATE, &state)) != 0)
        goto out;
    v = (MDB_val) {strlen(S_VERSION), S_VERSION};
    if ((mrc = mdb_put(txn, meta, &k, &v, 0)) != 0)
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    if (rc == SOFFA_OK && mrc != 0) {
        rc = soffa_store_err(mrc);
        soffa_error("store %s: upgrade failed: %s (lmdb %d)", path, mdb_strerror(mrc), mrc);
    }
    mdb_env_close(env);
    return rc;
}

/* One get from a database in its own read transaction. */
static soffa_err_t
s_get_u64_value(soffa_store_t *self, MDB_dbi dbi, const void *key, size_t len, uint64_t *seq)
{
    if (!key || len == 0 || len > 500 || !seq)
        return SOFFA_ERR_INVALID_ARG;
    MDB_txn *txn;
    int mrc = s_rd_begin(self, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {len, (void *) key}, v;
    mrc = mdb_get(txn, dbi, &k, &v);
    soffa_err_t rc = soffa_store_err(mrc);
    if (mrc == 0) {
        if (v.mv_size == 8)
            *seq = soffa_bytes_get_u64(v.mv_data);
        else
            rc = SOFFA_ERR_STORE_CORRUPT;
    }
    s_rd_end(txn);
    return rc;
}

soffa_err_t
soffa_store_ref_get(soffa_store_t *self, const void *key, size_t len, uint64_t *seq)
{
    return s_get_u64_value(self, self->ref, key, len, seq);
}

soffa_err_t
soffa_store_dedup_get(soffa_store_t *self, const char *sender, const uint8_t msg_id[16], uint64_t *seq)
{
    size_t alen = sender ? strlen(sender) : 0;
    if (alen == 0 || alen >= SOFFA_NAME_MAX)
        return SOFFA_ERR_INVALID_ARG;
    uint8_t dkey[16 + SOFFA_NAME_MAX];
    s_dedup_key(dkey, msg_id, sender, alen);
    return s_get_u64_value(self, self->dedup, dkey, 16 + alen, seq);
}

soffa_err_t
soffa_store_ref_scan(soffa_store_t *self, const void *prefix, size_t plen, int (*fn)(void *, uint64_t),
                     void *ctx)
{
    if (!prefix || plen == 0 || !fn)
        return SOFFA_ERR_INVALID_ARG;
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->ref, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {plen, (void *) prefix}, v;
    soffa_err_t rc = SOFFA_OK;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (v.mv_size != 8) {
            rc = SOFFA_ERR_STORE_CORRUPT;
            break;
        }
        if (fn(ctx, soffa_bytes_get_u64(v.mv_data)))
            break;
    }
    return s_read_end(txn, cur, rc, mrc);
}

static int
s_time_of(void *ctx, const soffa_store_rec_t *rec)
{
    soffa_envelope_t e;
    int64_t *t = ctx;
    *t = INT64_MIN;
    if (soffa_envelope_decode(rec->env, rec->len, &e) == SOFFA_OK) {
        *t = e.received_at_us;
        soffa_envelope_fini(&e);
    }
    return 1;
}

soffa_err_t
soffa_store_seq_at_time(soffa_store_t *self, int64_t t_us, uint64_t *seq)
{
    /* Receive times never decrease with the sequence: binary search, on
     * the first record at or after each probe (a restore leaves a gap in
     * the numbering, so a probe may name no record). */
    uint64_t lo = 1, hi = self->head_seq + 1;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int64_t t = INT64_MAX;   /* no record at or after mid */
        soffa_err_t rc = soffa_store_scan(self, mid, s_time_of, &t);
        if (rc != SOFFA_OK)
            return rc;
        if (t < t_us)
            lo = mid + 1;
        else
            hi = mid;
    }
    *seq = lo;
    return SOFFA_OK;
}

/* ---- Cursors ----------------------------------------------------------- */

soffa_err_t
soffa_store_cursor_get(soffa_store_t *self, const char *consumer, uint64_t *seq)
{
    size_t len = consumer ? strlen(consumer) : 0;
    if (len == 0 || len > 400 || !seq)
        return SOFFA_ERR_INVALID_ARG;
    MDB_txn *txn;
    int mrc = s_rd_begin(self, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {len, (void *) consumer}, v;
    mrc = mdb_get(txn, self->cursor, &k, &v);
    soffa_err_t rc = SOFFA_OK;
    *seq = 0;
    if (mrc == 0 && v.mv_size == 8)
        *seq = soffa_bytes_get_u64(v.mv_data);
    else if (mrc == 0)
        rc = SOFFA_ERR_STORE_CORRUPT;
    else if (mrc != MDB_NOTFOUND)
        rc = soffa_store_err(mrc);
    s_rd_end(txn);
    return rc;
}

soffa_err_t
soffa_store_cursor_set(soffa_store_t *self, const char *consumer, uint64_t seq)
{
    size_t len = consumer ? strlen(consumer) : 0;
    if (len == 0 || len > 400)
        return SOFFA_ERR_INVALID_ARG;
    if (self->read_only)
        return SOFFA_ERR_PERMISSION;
    MDB_txn *txn;
    int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (mrc != 0)
        return soffa_store_err(mrc);
    uint8_t sv[8];
    soffa_bytes_put_u64(sv, seq);
    MDB_val k = {len, (void *) consumer}, v = {8, sv};
    if ((mrc = mdb_put(txn, self->cursor, &k, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        return soffa_store_err(mrc);
    }
    return soffa_store_err(mdb_txn_commit(txn));
}

soffa_err_t
soffa_store_cursor_set_many(soffa_store_t *self, const soffa_store_cursor_t *c, size_t n)
{
    return soffa_store_append_cursors(self, NULL, 0, c, n);
}

/* ---- Verify ------------------------------------------------------------ */

typedef struct {
    soffa_store_verify_t *rep;
    uint64_t expect;                  /* next sequence expected */
    uint64_t since_cp;                /* records after the last checkpoint */
    uint8_t prev[SOFFA_HASH_LEN];     /* hash of the previous record */
    bool broken;
    const uint8_t *trusted;           /* the signer checkpoints must have, or NULL */
    uint8_t first_key[SOFFA_SIGN_PUBLIC];
    bool have_key;
} s_verify_t;

/* Checks the checkpoint in envelope e at seq; returns NULL or what is wrong. */
static const char *
s_verify_checkpoint(s_verify_t *v, const soffa_envelope_t *e, uint64_t seq)
{
    soffa_checkpoint_t cp;
    if (soffa_checkpoint_decode(e->body, e->body_len, &cp) != SOFFA_OK)
        return "is a checkpoint that cannot be decoded";
    if (cp.covers_seq != v->expect - 1 || seq != v->expect || sodium_memcmp(cp.head_hash, v->prev, SOFFA_HASH_LEN) != 0)
        return "is a checkpoint that does not vouch for the record before it";
    const uint8_t *key = v->trusted;
    if (!key) {
        if (!v->have_key) {
            memcpy(v->first_key, cp.public_key, SOFFA_SIGN_PUBLIC);
            v->have_key = true;
        }
        key = v->first_key;
    }
    if (sodium_memcmp(cp.public_key, key, SOFFA_SIGN_PUBLIC) != 0)
        return "is a checkpoint signed by another key than the broker's";
    if (!soffa_checkpoint_valid(&cp, key))
        return "is a checkpoint with a bad signature";
    v->rep->checkpoints++;
    v->rep->last_signed = seq - 1;
    v->since_cp = 0;
    return NULL;
}

/* True when rec, past the sequence expected, is a restore record that
 * names the record before it (its seq and link are checked as any). */
static bool
s_restore_jump(const s_verify_t *v, const soffa_store_rec_t *rec)
{
    soffa_envelope_t e;
    if (rec->seq < v->expect || soffa_envelope_decode(rec->env, rec->len, &e) != SOFFA_OK)
        return false;
    soffa_restore_t r;
    bool ok = e.kind == SOFFA_RK_RESTORE && soffa_restore_decode(e.body, e.body_len, &r) == SOFFA_OK
              && r.from_seq == v->expect - 1;
    soffa_envelope_fini(&e);
    return ok;
}

static int
s_verify_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_verify_t *v = ctx;
    uint64_t seq = rec->seq;
    const uint8_t *env = rec->env, *hash = rec->hash;
    size_t len = rec->len;
    soffa_store_verify_t *rep = v->rep;
    uint8_t h[SOFFA_HASH_LEN];
    soffa_envelope_t e;

    /* The numbering goes on by one, except at a restore record, which
     * jumps and names the record before it. */
    if (seq != v->expect && !s_restore_jump(v, rec)) {
        rep->bad_seq = v->expect;
        snprintf(rep->reason, sizeof rep->reason,
                 "record %llu is missing (the next record present is %llu)",
                 (unsigned long long) v->expect, (unsigned long long) seq);
        goto broken;
    }
    soffa_wire_hash(env, len, h);
    if (sodium_memcmp(h, hash, SOFFA_HASH_LEN) != 0) {
        rep->bad_seq = seq;
        snprintf(rep->reason, sizeof rep->reason, "record %llu was altered: its content does not match its hash",
                 (unsigned long long) seq);
        goto broken;
    }
    if (soffa_envelope_decode(env, len, &e) != SOFFA_OK) {
        rep->bad_seq = seq;
        snprintf(rep->reason, sizeof rep->reason, "record %llu cannot be decoded", (unsigned long long) seq);
        goto broken;
    }
    bool seq_ok = e.seq == seq;
    bool link_ok = sodium_memcmp(e.prev_hash, v->prev, SOFFA_HASH_LEN) == 0;
    bool tag_ok = rec->tag == s_tag(&e);
    uint64_t claimed = e.seq;
    bool is_cp = seq_ok && link_ok && e.kind == SOFFA_RK_CHECKPOINT;
    const char *cp_wrong = is_cp ? s_verify_checkpoint(v, &e, seq) : NULL;
    soffa_envelope_fini(&e);
    if (cp_wrong) {
        rep->bad_seq = seq;
        snprintf(rep->reason, sizeof rep->reason, "record %llu %s", (unsigned long long) seq, cp_wrong);
        goto broken;
    }
    if (!tag_ok) {
        rep->bad_seq = seq;
        snprintf(rep->reason, sizeof rep->reason, "record %llu has a type tag that does not match its content",
                 (unsigned long long) seq);
        goto broken;
    }
    if (!seq_ok) {
        rep->bad_seq = seq;
        snprintf(rep->reason, sizeof rep->reason,
                 "record stored at %llu says it is %llu: records were moved or reordered",
                 (unsigned long long) seq, (unsigned long long) claimed);
        goto broken;
    }
    if (!link_ok) {
        rep->bad_seq = seq;
        snprintf(rep->reason, sizeof rep->reason,
                 "record %llu does not link to record %llu: the history before it was changed",
                 (unsigned long long) seq, (unsigned long long) (seq - 1));
        goto broken;
    }
    memcpy(v->prev, hash, SOFFA_HASH_LEN);
    if (seq != v->expect) {
        if (rep->restores < sizeof rep->gaps / sizeof *rep->gaps) {
            rep->gaps[rep->restores].from = v->expect - 1;
            rep->gaps[rep->restores].to = seq;
        }
        rep->restores++;
    }
    v->expect = seq + 1;
    rep->records++;
    if (!is_cp)
        v->since_cp++;
    return 0;
broken:
    v->broken = true;
    return 1;
}

soffa_err_t
soffa_store_verify(soffa_store_t *self, const uint8_t *trusted_key, soffa_store_verify_t *rep)
{
    if (!self || !rep)
        return SOFFA_ERR_INVALID_ARG;
    memset(rep, 0, sizeof *rep);
    s_verify_t v = {.rep = rep, .expect = 1, .trusted = trusted_key};
    soffa_err_t rc = soffa_store_scan(self, 1, s_verify_one, &v);
    if (rc != SOFFA_OK && !v.broken) {
        rep->bad_seq = v.expect;
        snprintf(rep->reason, sizeof rep->reason, "record %llu could not be read: %s",
                 (unsigned long long) v.expect, soffa_strerror(rc));
        return SOFFA_ERR_CHAIN_BROKEN;
    }
    if (v.broken)
        return SOFFA_ERR_CHAIN_BROKEN;
    rep->unsigned_tail = v.since_cp;
    if (v.expect - 1 != self->head_seq || sodium_memcmp(v.prev, self->head_hash, SOFFA_HASH_LEN) != 0) {
        rep->bad_seq = v.expect;
        snprintf(rep->reason, sizeof rep->reason,
                 "the log ends at %llu but its head says %llu: records were removed or replaced at the end",
                 (unsigned long long) (v.expect - 1), (unsigned long long) self->head_seq);
        return SOFFA_ERR_CHAIN_BROKEN;
    }
    return SOFFA_OK;
}

bool
soffa_store_backup_mark(soffa_store_t *self, int64_t *taken_at_us)
{
    uint8_t v[8];
    size_t vlen = 0;
    if (soffa_store_state_get(self, SOFFA_STORE_BACKUP_MARK, sizeof SOFFA_STORE_BACKUP_MARK - 1, v, sizeof v, &vlen)
            != SOFFA_OK
        || vlen != 8)
        return false;
    *taken_at_us = (int64_t) soffa_bytes_get_u64(v);
    return true;
}

/* ---- Backup ---------------------------------------------------------------- */

/* Writes len bytes to a new owner-only file and flushes it. */
static soffa_err_t
s_write_new(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return soffa_err_from_errno(errno);
    soffa_err_t rc = SOFFA_OK;
    if (fchmod(fd, 0600) != 0 || write(fd, buf, len) != (ssize_t) len || fsync(fd) != 0)
        rc = soffa_err_from_errno(errno ? errno : EIO);
    if (close(fd) != 0 && rc == SOFFA_OK)
        rc = soffa_err_from_errno(errno);
    return rc;
}

soffa_err_t
soffa_store_backup(soffa_store_t *self, const char *dest, const uint8_t *trusted_key, soffa_store_backup_t *rep)
{
    if (!self || !dest || !rep)
        return SOFFA_ERR_INVALID_ARG;
    memset(rep, 0, sizeof *rep);
    char data[4096], key[4096], lock[4096];
    if (snprintf(data, sizeof data, "%s/data.mdb", dest) >= (int) sizeof data
        || snprintf(key, sizeof key, "%s/%s", dest, S_KEY_FILE) >= (int) sizeof key
        || snprintf(lock, sizeof lock, "%s/lock.mdb", dest) >= (int) sizeof lock)
        return SOFFA_ERR_INVALID_ARG;
    if (!self->has_key) {
        /* A copy without its key would make the restored broker start a new
         * one, and every subject lookup in the old history would miss. */
        soffa_error("backup: the store has no %s to go with the copy", S_KEY_FILE);
        return SOFFA_ERR_NOT_FOUND;
    }
    if (mkdir(dest, 0700) != 0)
        return soffa_err_from_errno(errno);
    soffa_err_t rc = SOFFA_OK;
    soffa_store_t *copy = NULL;
    int fd = -1, dfd = -1;
    if (chmod(dest, 0700) != 0)   /* mkdir's mode went through the umask */
        goto errno_fail;
    fd = open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0)
        goto errno_fail;
    /* One read transaction: the broker's writer is never blocked, and the
     * copy holds exactly the records of one commit, free pages left out. */
    int mrc = mdb_env_copyfd2(self->env, fd, MDB_CP_COMPACT);
    if (mrc != 0) {
        rc = soffa_store_err(mrc);
        soffa_error("backup: copying the store to %s failed: %s (lmdb %d)", data, mdb_strerror(mrc), mrc);
        goto fail;
    }
    struct stat st;
    if (fsync(fd) != 0 || fstat(fd, &st) != 0)
        goto errno_fail;
    rep->bytes = (uint64_t) st.st_size;
    if (close(fd) != 0) {
        fd = -1;
        goto errno_fail;
    }
    fd = -1;
    if ((rc = s_write_new(key, self->key, S_KEY_LEN)) != SOFFA_OK)
        goto fail;
    /* The mark: a broker that opens this copy knows it is a restore. */
    soffa_store_opts_t mo = {.path = dest};
    if ((rc = soffa_store_open(&copy, &mo)) != SOFFA_OK)
        goto fail;
    soffa_store_state_op_t mark = {.klen = sizeof SOFFA_STORE_BACKUP_MARK - 1, .vlen = 8};
    memcpy(mark.key, SOFFA_STORE_BACKUP_MARK, mark.klen);
    soffa_bytes_put_u64(mark.val, (uint64_t) soffa_now_us());
    rc = soffa_store_state_write(copy, &mark, 1);
    soffa_store_close(&copy);
    if (rc != SOFFA_OK)
        goto fail;
    dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0)
        goto errno_fail;
    close(dfd);
    dfd = -1;

    /* The copy proves itself before anyone relies on it. */
    soffa_store_opts_t o = {.path = dest, .read_only = true};
    if ((rc = soffa_store_open(&copy, &o)) != SOFFA_OK)
        goto fail;
    soffa_store_head(copy, &rep->head_seq, NULL, NULL);
    rc = soffa_store_verify(copy, trusted_key, &rep->verify);
    soffa_store_close(&copy);
    unlink(lock);   /* made by the check; LMDB makes it again where the copy is used */
    if (rc != SOFFA_OK)
        goto fail;
    return SOFFA_OK;

errno_fail:
    rc = soffa_err_from_errno(errno ? errno : EIO);
fail:
    soffa_store_close(&copy);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    unlink(lock);
    unlink(key);
    unlink(data);
    rmdir(dest);
    return rc;
}
