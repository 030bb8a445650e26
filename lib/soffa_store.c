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
#include "soffa_disposal.h"
#include "soffa_log.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

#define S_VERSION "4"   /* 2: subject index in seq buckets; 3: mailbox ordinals, state table;
                         * 4: sealed bodies, owner and record keys, the epoch key file */
#define S_VERSION_3 "3"
#define S_VERSION_2 "2"
#define S_OWNER 17      /* 'S' || keyed hash of a subject, or 'D' || day (u32) || zeros */
#define S_RKEY (S_OWNER + 1 + SOFFA_SEAL_WRAPPED)   /* owner, retention class, wrapped record key */
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
    MDB_dbi okey;                         /* owner -> owner key wrapped by the epoch key */
    MDB_dbi rkey;                         /* seq -> owner || record key wrapped by the owner key */
    MDB_dbi own;                          /* owner || seq -> "" */
    MDB_dbi due;                          /* due time || seq -> class: when a record runs out */
    MDB_dbi tomb;                         /* tombstone || disposal seq -> "" */
    bool read_only;
    bool has_key;                         /* subject index secret loaded */
    uint8_t key[S_KEY_LEN];               /* subject index secret */
    bool keys;                            /* the epoch key is loaded: records are sealed and opened */
    uint64_t epoch;                       /* the epoch in use */
    uint8_t epoch_key[SOFFA_SEAL_KEY];
    uint8_t tomb_key[SOFFA_SEAL_KEY];     /* keys the tombstones (keyed hashes of disposed subjects) */
    soffa_seal_master_t master;           /* for new epochs (disposal) */
    char dir[4096];
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


/* Reads the subject index secret of a format-3 store (DIR/subject.key),
 * for the upgrade. A key others can read is refused. */
static soffa_err_t
s_read_v3_key(const char *dir, uint8_t key[S_KEY_LEN])
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, S_KEY_FILE) >= (int) sizeof path)
        return SOFFA_ERR_INVALID_ARG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return soffa_err_from_errno(errno);
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        close(fd);
        soffa_error("%s is readable by others; run chmod 600 on it", path);
        return SOFFA_ERR_PERMISSION;
    }
    ssize_t n = read(fd, key, S_KEY_LEN);
    close(fd);
    return n == S_KEY_LEN ? SOFFA_OK : SOFFA_ERR_STORE_CORRUPT;
}

/* ---- Keys: the epoch key, owner keys, record keys ---------------------------- */

/* Associated data binding a wrapped key to its place. */
static void
s_ad_owner(const uint8_t owner[S_OWNER], uint8_t ad[1 + S_OWNER])
{
    ad[0] = 'O';
    memcpy(ad + 1, owner, S_OWNER);
}

static void
s_ad_record(uint64_t seq, uint8_t ad[9])
{
    ad[0] = 'R';
    soffa_bytes_put_u64(ad + 1, seq);
}

/* The owner of a record: the young person it is about, or (for records
 * about nobody: access records) the day it was received. */
static void
s_owner_of(const soffa_store_t *self, const soffa_envelope_t *env, const char *subject_id, uint8_t owner[S_OWNER])
{
    memset(owner, 0, S_OWNER);
    if (env->kind == SOFFA_RK_MESSAGE && subject_id && subject_id[0]) {
        owner[0] = 'S';
        soffa_store_subject_key(self, subject_id, owner + 1);
    } else {
        owner[0] = 'D';
        int64_t day = env->received_at_us > 0 ? env->received_at_us / 86400000000LL : 0;
        soffa_bytes_put_u32(owner + 1, (uint32_t) day);
    }
}

/* The owner's key from okey (unwrapped with the epoch key); when it has
 * none and create is set, a new one is made and stored. 0, MDB_NOTFOUND,
 * an LMDB error, or EBADMSG when it does not unwrap. */
static int
s_owner_key(soffa_store_t *self, MDB_txn *txn, const uint8_t owner[S_OWNER], bool create, uint8_t key[SOFFA_SEAL_KEY])
{
    uint8_t ad[1 + S_OWNER];
    s_ad_owner(owner, ad);
    MDB_val k = {S_OWNER, (void *) owner}, v;
    int mrc = mdb_get(txn, self->okey, &k, &v);
    if (mrc == 0) {
        if (v.mv_size != SOFFA_SEAL_WRAPPED)
            return MDB_CORRUPTED;
        return soffa_seal_unwrap(self->epoch_key, v.mv_data, ad, sizeof ad, key) == SOFFA_OK ? 0 : EBADMSG;
    }
    if (mrc != MDB_NOTFOUND || !create)
        return mrc;
    uint8_t w[SOFFA_SEAL_WRAPPED];
    soffa_seal_key_new(key);
    soffa_seal_wrap(self->epoch_key, key, ad, sizeof ad, w);
    v = (MDB_val) {sizeof w, w};
    return mdb_put(txn, self->okey, &k, &v, 0);
}

/* The record key of seq (for a visitor). False when the record has none:
 * not sealed, disposed of, or the store was opened without the master key. */
static bool
s_record_key(soffa_store_t *self, MDB_txn *txn, uint64_t seq, uint8_t key[SOFFA_SEAL_KEY])
{
    if (!self->keys)
        return false;
    uint8_t sk[8], ad[9], ok[SOFFA_SEAL_KEY];
    soffa_bytes_put_u64(sk, seq);
    MDB_val k = {8, sk}, v;
    if (mdb_get(txn, self->rkey, &k, &v) != 0 || v.mv_size != S_RKEY)
        return false;
    if (s_owner_key(self, txn, v.mv_data, false, ok) != 0)
        return false;
    s_ad_record(seq, ad);
    bool got = soffa_seal_unwrap(ok, (const uint8_t *) v.mv_data + S_OWNER + 1, ad, sizeof ad, key) == SOFFA_OK;
    sodium_memzero(ok, sizeof ok);
    return got;
}

/* Seals a record's body under a new record key, filed under its owner:
 * env->body then points at *sealed (freed by the caller). */
static int
s_seal_record(soffa_store_t *self, MDB_txn *txn, soffa_envelope_t *env, const uint8_t owner[S_OWNER], uint8_t cls,
              uint8_t **sealed)
{
    uint8_t ok[SOFFA_SEAL_KEY], rk[SOFFA_SEAL_KEY], ad[SOFFA_ENVELOPE_AD], rad[9], val[S_RKEY];
    int mrc = s_owner_key(self, txn, owner, true, ok);
    if (mrc != 0)
        return mrc;
    uint8_t *buf = malloc(env->body_len + SOFFA_SEAL_OVERHEAD);
    if (!buf) {
        sodium_memzero(ok, sizeof ok);
        return ENOMEM;
    }
    soffa_seal_key_new(rk);
    soffa_envelope_ad(env->seq, env->message_id, ad);
    soffa_seal_body(rk, env->body, env->body_len, ad, sizeof ad, buf);
    memcpy(val, owner, S_OWNER);
    val[S_OWNER] = cls;
    s_ad_record(env->seq, rad);
    soffa_seal_wrap(ok, rk, rad, sizeof rad, val + S_OWNER + 1);
    sodium_memzero(ok, sizeof ok);
    sodium_memzero(rk, sizeof rk);
    uint8_t sk[8], own[S_OWNER + 8];
    soffa_bytes_put_u64(sk, env->seq);
    memcpy(own, owner, S_OWNER);
    memcpy(own + S_OWNER, sk, 8);
    MDB_val k = {8, sk}, v = {sizeof val, val}, okv = {sizeof own, own}, empty = {0, NULL};
    if ((mrc = mdb_put(txn, self->rkey, &k, &v, MDB_APPEND)) != 0
        || (mrc = mdb_put(txn, self->own, &okv, &empty, 0)) != 0) {
        free(buf);
        return mrc;
    }
    env->body = buf;
    env->body_len += SOFFA_SEAL_OVERHEAD;
    env->sealed = true;
    *sealed = buf;
    return 0;
}

/* The wrapped secrets in meta ("k:index"), under the epoch key. */
static int
s_secret_get(soffa_store_t *self, MDB_txn *txn, const char *name, uint8_t out[SOFFA_SEAL_KEY])
{
    MDB_val k = {strlen(name), (void *) name}, v;
    int mrc = mdb_get(txn, self->meta, &k, &v);
    if (mrc != 0)
        return mrc;
    if (v.mv_size != SOFFA_SEAL_WRAPPED)
        return MDB_CORRUPTED;
    return soffa_seal_unwrap(self->epoch_key, v.mv_data, name, strlen(name), out) == SOFFA_OK ? 0 : EBADMSG;
}

static int
s_secret_put(soffa_store_t *self, MDB_txn *txn, const char *name, const uint8_t key[SOFFA_SEAL_KEY])
{
    uint8_t w[SOFFA_SEAL_WRAPPED];
    soffa_seal_wrap(self->epoch_key, key, name, strlen(name), w);
    MDB_val k = {strlen(name), (void *) name}, v = {sizeof w, w};
    return mdb_put(txn, self->meta, &k, &v, 0);
}

static int
s_u64_get(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
    MDB_val k = {strlen(name), (void *) name}, v;
    int mrc = mdb_get(txn, dbi, &k, &v);
    if (mrc == 0 && v.mv_size != 8)
        return MDB_CORRUPTED;
    if (mrc == 0)
        *out = soffa_bytes_get_u64(v.mv_data);
    return mrc;
}

static int
s_u64_put(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val)
{
    uint8_t b[8];
    soffa_bytes_put_u64(b, val);
    MDB_val k = {strlen(name), (void *) name}, v = {8, b};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Loads the epoch key the store names (DIR/keys, under the master key).
 * Nothing is written. */
static soffa_err_t
s_epoch_load(soffa_store_t *self, const soffa_seal_master_t *m, uint64_t epoch, char *why, size_t whylen)
{
    soffa_seal_keys_t k;
    soffa_err_t rc = soffa_seal_keys_read(self->dir, &k);
    if (rc == SOFFA_ERR_NOT_FOUND) {
        snprintf(why, whylen, "the data directory %s has no keys file, which holds the store's epoch key: restore it "
                              "from the backup the store came from", self->dir);
        return SOFFA_ERR_MASTER_KEY;
    }
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "the keys file of %s cannot be read: %s", self->dir, soffa_strerror(rc));
        return rc;
    }
    rc = soffa_seal_keys_get(&k, epoch, m, self->epoch_key, why, whylen);
    if (rc == SOFFA_ERR_NOT_FOUND)
        rc = SOFFA_ERR_MASTER_KEY;
    if (rc == SOFFA_OK) {
        self->epoch = epoch;
        self->keys = true;
    }
    sodium_memzero(&k, sizeof k);
    return rc;
}

/* Erases every slot of DIR/keys but the one of the epoch in use (a rotation
 * or disposal cut short is finished here, or its new epoch dropped). */
static soffa_err_t
s_epoch_tidy(soffa_store_t *self)
{
    soffa_seal_keys_t k;
    soffa_err_t rc = soffa_seal_keys_read(self->dir, &k);
    for (int sl = 0; rc == SOFFA_OK && sl < 2; sl++) {
        bool mine = k.epoch[sl] == self->epoch && sodium_memcmp(k.id[sl], self->master.id, SOFFA_SEAL_ID) == 0;
        bool empty = k.epoch[sl] == 0 && sodium_is_zero(k.wrapped[sl], SOFFA_SEAL_WRAPPED);
        if (!mine && !empty)
            rc = soffa_seal_keys_put(self->dir, sl, 0, NULL, NULL);
    }
    sodium_memzero(&k, sizeof k);
    return rc;
}

soffa_err_t
soffa_store_master_rotate(soffa_store_t *self, const soffa_seal_master_t *m)
{
    if (self->read_only || !self->keys || !m || !m->loaded)
        return SOFFA_ERR_MASTER_KEY;
    if (sodium_memcmp(m->id, self->master.id, SOFFA_SEAL_ID) == 0)
        return SOFFA_ERR_EXISTS;
    soffa_seal_keys_t k;
    soffa_err_t rc = soffa_seal_keys_read(self->dir, &k);
    int cur = -1;
    for (int sl = 0; rc == SOFFA_OK && sl < 2; sl++)
        if (k.epoch[sl] == self->epoch && sodium_memcmp(k.id[sl], self->master.id, SOFFA_SEAL_ID) == 0)
            cur = sl;
    sodium_memzero(&k, sizeof k);
    if (rc != SOFFA_OK)
        return rc;
    if (cur < 0)
        return SOFFA_ERR_STORE_CORRUPT;
    /* The new wrapping first, flushed; then the old one goes. Between the
     * two both keys open the store, and s_epoch_tidy at the next open keeps
     * the slot of the key it was opened with. */
    if ((rc = soffa_seal_keys_put(self->dir, 1 - cur, self->epoch, self->epoch_key, m)) != SOFFA_OK)
        return rc;
    if ((rc = soffa_seal_keys_put(self->dir, cur, 0, NULL, NULL)) != SOFFA_OK)
        return rc;
    soffa_seal_master_wipe(&self->master);
    self->master = *m;
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

/* Opens the store's tables in txn (creating them when create is set). */
static int
s_open_dbis(soffa_store_t *self, MDB_txn *txn, bool create)
{
    unsigned fl = create ? MDB_CREATE : 0;
    int mrc;
    if ((mrc = mdb_dbi_open(txn, "log", fl, &self->log)) != 0
        || (mrc = mdb_dbi_open(txn, "mailbox", fl, &self->mailbox)) != 0
        || (mrc = mdb_dbi_open(txn, "subject", fl, &self->subject)) != 0
        || (mrc = mdb_dbi_open(txn, "dedup", fl, &self->dedup)) != 0
        || (mrc = mdb_dbi_open(txn, "cursor", fl, &self->cursor)) != 0
        || (mrc = mdb_dbi_open(txn, "ref", fl, &self->ref)) != 0
        || (mrc = mdb_dbi_open(txn, "state", fl, &self->state)) != 0
        || (mrc = mdb_dbi_open(txn, "okey", fl, &self->okey)) != 0
        || (mrc = mdb_dbi_open(txn, "rkey", fl, &self->rkey)) != 0
        || (mrc = mdb_dbi_open(txn, "own", fl, &self->own)) != 0
        || (mrc = mdb_dbi_open(txn, "due", fl, &self->due)) != 0
        || (mrc = mdb_dbi_open(txn, "tomb", fl, &self->tomb)) != 0)
        return mrc;
    return 0;
}

/* Whether meta holds "plaintext", the mark of a store written by a build
 * without encryption (soffa_seal_plaintext); 0 or an LMDB error. */
static int
s_plaintext_marked(MDB_env *env, bool *marked)
{
    MDB_txn *txn;
    MDB_dbi meta;
    *marked = false;
    int mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return mrc;
    if ((mrc = mdb_dbi_open(txn, "meta", 0, &meta)) == 0) {
        MDB_val k = {9, "plaintext"}, v;
        mrc = mdb_get(txn, meta, &k, &v);
        *marked = mrc == 0;
    }
    mdb_txn_abort(txn);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* Marks a store this build writes when it is the build without encryption. */
static int
s_plaintext_mark(MDB_txn *txn, MDB_dbi meta)
{
    if (!soffa_seal_plaintext())
        return 0;
    MDB_val k = {9, "plaintext"}, v = {1, "1"};
    return mdb_put(txn, meta, &k, &v, 0);
}

/* Reads meta "version" (a copy, "" when none) in a read transaction. */
static int
s_version(MDB_env *env, char out[16], MDB_dbi *meta)
{
    MDB_txn *txn;
    out[0] = '\0';
    int mrc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (mrc != 0)
        return mrc;
    mrc = mdb_dbi_open(txn, "meta", 0, meta);
    if (mrc == 0) {
        MDB_val k = {7, "version"}, v;
        mrc = mdb_get(txn, *meta, &k, &v);
        if (mrc == 0)
            snprintf(out, 16, "%.*s", (int) (v.mv_size < 15 ? v.mv_size : 15), (const char *) v.mv_data);
    }
    mdb_txn_abort(txn);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

soffa_err_t
soffa_store_open(soffa_store_t **out, const soffa_store_opts_t *opts)
{
    if (!out || !opts || !opts->path)
        return SOFFA_ERR_INVALID_ARG;
    *out = NULL;
    char whybuf[512] = "";
    char *why = opts->why ? opts->why : whybuf;
    size_t whylen = opts->why ? opts->whylen : sizeof whybuf;
    if (opts->why && opts->whylen)
        opts->why[0] = '\0';
    soffa_err_t rc = SOFFA_OK;
    int mrc = 0;
    MDB_txn *txn = NULL;
    soffa_store_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->read_only = opts->read_only;
    snprintf(self->dir, sizeof self->dir, "%s", opts->path);
    if (opts->master && opts->master->loaded)
        self->master = *opts->master;

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
    if ((mrc = mdb_env_create(&self->env)) != 0)
        goto lmdb_fail;
    mdb_env_set_maxdbs(self->env, 16);
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

    /* What the store is, read before anything is written: an old format or
     * a wrong master key is refused with the file untouched. */
    char version[16];
    if ((mrc = s_version(self->env, version, &self->meta)) != 0)
        goto lmdb_fail;
    bool fresh = version[0] == '\0';
    if (fresh && opts->read_only) {
        rc = SOFFA_ERR_NOT_FOUND;
        goto fail;
    }
    if (!fresh && strcmp(version, S_VERSION) != 0) {
        snprintf(why, whylen, "store %s has format version %s; this soffa reads version %s: with the broker stopped, "
                              "run soffa-broker --config FILE --upgrade-store --backup NEW-DIR (it copies the old "
                              "store there first)", opts->path, version, S_VERSION);
        soffa_error("%s", why);
        rc = SOFFA_ERR_VERSION;
        goto fail;
    }
    bool marked = false;
    if (!fresh && (mrc = s_plaintext_marked(self->env, &marked)) != 0)
        goto lmdb_fail;
    if (!fresh && marked != soffa_seal_plaintext()) {
        if (marked)
            snprintf(why, whylen, "store %s was written by a build without encryption at rest (-DSOFFA_BENCH_PLAINTEXT=ON, "
                                  "for benchmarks only) and is not opened by this one: use that build, or a new data "
                                  "directory", opts->path);
        else
            snprintf(why, whylen, "store %s is sealed, and this is a build without encryption at rest "
                                  "(-DSOFFA_BENCH_PLAINTEXT=ON, for benchmarks only), which opens only the stores it "
                                  "made: give it a new data directory", opts->path);
        soffa_error("%s", why);
        rc = SOFFA_ERR_VERSION;
        goto fail;
    }
    if (!opts->read_only && !self->master.loaded) {
        snprintf(why, whylen, "a master key is needed to write the store %s ([keys] master_key)", opts->path);
        rc = SOFFA_ERR_MASTER_KEY;
        goto fail;
    }
    if (!fresh && self->master.loaded) {
        uint64_t epoch = 0;
        if ((mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn)) != 0)
            goto lmdb_fail;
        /* (a handle opened in an aborted transaction is closed with it) */
        mrc = mdb_dbi_open(txn, "meta", 0, &self->meta);
        if (mrc == 0)
            mrc = s_u64_get(txn, self->meta, "epoch", &epoch);
        mdb_txn_abort(txn);
        txn = NULL;
        if (mrc != 0)
            goto lmdb_fail;
        if ((rc = s_epoch_load(self, &self->master, epoch, why, whylen)) != SOFFA_OK) {
            soffa_error("store %s: %s", opts->path, why);
            goto fail;
        }
    }

    if ((mrc = mdb_txn_begin(self->env, NULL, opts->read_only ? MDB_RDONLY : 0, &txn)) != 0)
        goto lmdb_fail;
    if ((mrc = mdb_dbi_open(txn, "meta", opts->read_only ? 0 : MDB_CREATE, &self->meta)) != 0
        || (mrc = s_open_dbis(self, txn, !opts->read_only)) != 0)
        goto lmdb_fail;
    if (fresh) {
        /* A new store: its first epoch key goes to DIR/keys before the
         * store names it (a crash in between leaves an empty store, and a
         * keys file the next start overwrites). */
        soffa_seal_key_new(self->epoch_key);
        self->epoch = 1;
        self->keys = true;
        if ((rc = soffa_seal_keys_put(opts->path, 0, 1, self->epoch_key, &self->master)) != SOFFA_OK
            || (rc = soffa_seal_keys_put(opts->path, 1, 0, NULL, NULL)) != SOFFA_OK) {
            snprintf(why, whylen, "cannot write %s/keys: %s", opts->path, soffa_strerror(rc));
            goto fail;
        }
        randombytes_buf(self->key, S_KEY_LEN);
        soffa_seal_key_new(self->tomb_key);
        MDB_val k = {7, "version"}, v = {strlen(S_VERSION), S_VERSION};
        if ((mrc = mdb_put(txn, self->meta, &k, &v, 0)) != 0 || (mrc = s_u64_put(txn, self->meta, "epoch", 1)) != 0
            || (mrc = s_plaintext_mark(txn, self->meta)) != 0
            || (mrc = s_secret_put(self, txn, "k:index", self->key)) != 0
            || (mrc = s_secret_put(self, txn, "k:tomb", self->tomb_key)) != 0)
            goto lmdb_fail;
        self->has_key = true;
    } else if (self->keys) {
        if ((mrc = s_secret_get(self, txn, "k:index", self->key)) != 0
            || (mrc = s_secret_get(self, txn, "k:tomb", self->tomb_key)) != 0)
            goto lmdb_fail;
        self->has_key = true;
    }
    if (!fresh && (mrc = s_u64_get(txn, self->meta, "epoch", &self->epoch)) != 0)
        goto lmdb_fail;
    MDB_val k = {4, "head"}, v;
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
    txn = NULL;
    /* The store's epoch is durable: any other slot of DIR/keys goes. */
    if (!opts->read_only && (rc = s_epoch_tidy(self)) != SOFFA_OK) {
        snprintf(why, whylen, "cannot write %s/keys: %s", opts->path, soffa_strerror(rc));
        goto fail;
    }
    *out = self;
    return SOFFA_OK;

lmdb_fail:
    rc = soffa_store_err(mrc == EBADMSG ? MDB_CORRUPTED : mrc);
    if (mrc == EBADMSG)
        snprintf(why, whylen, "the store's secrets do not open with its epoch key: the store or its keys file is "
                              "damaged; restore the data directory from a backup");
    soffa_error("store %s: open failed: %s (lmdb %d)", opts->path, mdb_strerror(mrc), mrc);
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (self->env)
        mdb_env_close(self->env);
    sodium_memzero(self, sizeof *self);
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
    sodium_memzero(self, sizeof *self);
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

/* The head a batch builds on; it becomes the store's only after a
 * successful commit. */
typedef struct {
    uint64_t seq;
    uint8_t hash[SOFFA_HASH_LEN];
    int64_t time_us;
    s_mstat_t ms[S_MSTAT_MAX];
    size_t n_ms;
} s_tentative_t;

static void
s_tentative_init(const soffa_store_t *self, s_tentative_t *t)
{
    t->seq = self->head_seq;
    memcpy(t->hash, self->head_hash, SOFFA_HASH_LEN);
    t->time_us = self->head_time;
    t->n_ms = 0;
}

/* Writes the mailbox totals and the head of t in txn. */
static int
s_tentative_put(soffa_store_t *self, MDB_txn *txn, s_tentative_t *t)
{
    int mrc = s_mstat_flush(self, txn, t->ms, &t->n_ms);
    if (mrc != 0 || t->seq == self->head_seq)
        return mrc;
    uint8_t head[S_HEAD_LEN];
    soffa_bytes_put_u64(head, t->seq);
    memcpy(head + 8, t->hash, SOFFA_HASH_LEN);
    soffa_bytes_put_u64(head + 8 + SOFFA_HASH_LEN, (uint64_t) t->time_us);
    MDB_val hk = {4, "head"}, hv = {S_HEAD_LEN, head};
    return mdb_put(txn, self->meta, &hk, &hv, 0);
}

/* The store's head becomes t's (after its commit). */
static void
s_tentative_commit(soffa_store_t *self, const s_tentative_t *t)
{
    self->head_seq = t->seq;
    memcpy(self->head_hash, t->hash, SOFFA_HASH_LEN);
    self->head_time = t->time_us;
}

/* A schedule entry: record seq runs out at due_us. */
static int
s_due_put(soffa_store_t *self, MDB_txn *txn, int64_t due_us, uint64_t seq, uint8_t cls)
{
    uint8_t k[16];
    soffa_bytes_put_u64(k, (uint64_t) due_us);
    soffa_bytes_put_u64(k + 8, seq);
    MDB_val kv = {16, k}, v = {1, &cls};
    return mdb_put(txn, self->due, &kv, &v, 0);
}

/* The owner's closure, in the due table after every schedule entry (0xFF
 * sorts after any time): 0xFF 'C' || owner -> the time each class was
 * brought forward to (u64 per class, 0: not). The entries a closure added
 * are found again through it when the case goes on. */
#define S_CLOSED_KEY (2 + S_OWNER)
#define S_CLOSED_VAL (8 * SOFFA_STORE_CLASSES)

static void
s_closed_key(const uint8_t owner[S_OWNER], uint8_t k[S_CLOSED_KEY])
{
    k[0] = 0xFF;
    k[1] = 'C';
    memcpy(k + 2, owner, S_OWNER);
}

/* Calls fn for every record of the owner before seq `before` whose key is
 * there (its class with it). */
static int
s_owner_each(soffa_store_t *self, MDB_txn *txn, const uint8_t owner[S_OWNER], uint64_t before,
             int (*fn)(soffa_store_t *self, MDB_txn *txn, uint64_t seq, uint8_t cls, const void *ctx), const void *ctx);

static int
s_due_del_one(soffa_store_t *self, MDB_txn *txn, uint64_t seq, uint8_t cls, const void *ctx)
{
    const uint8_t *times = ctx;
    if (cls >= SOFFA_STORE_CLASSES)
        return 0;
    uint64_t at = soffa_bytes_get_u64(times + 8 * cls);
    if (!at)
        return 0;
    uint8_t k[16];
    soffa_bytes_put_u64(k, at);
    soffa_bytes_put_u64(k + 8, seq);
    MDB_val kv = {16, k};
    int mrc = mdb_del(txn, self->due, &kv, NULL);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* The case goes on (a reopening, or any new record of the young person
 * after a closure): the entries the last closure brought forward go, and
 * each record runs out again by its own schedule (the 20th birthday for a
 * closure-anchored class) until the next closure. */
static int
s_unclose(soffa_store_t *self, MDB_txn *txn, const uint8_t owner[S_OWNER], uint64_t before)
{
    uint8_t ck[S_CLOSED_KEY], times[S_CLOSED_VAL];
    s_closed_key(owner, ck);
    MDB_val kv = {sizeof ck, ck}, v;
    int mrc = mdb_get(txn, self->due, &kv, &v);
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc != 0)
        return mrc;
    if (v.mv_size != S_CLOSED_VAL)
        return MDB_CORRUPTED;
    memcpy(times, v.mv_data, sizeof times);
    if ((mrc = s_owner_each(self, txn, owner, before, s_due_del_one, times)) != 0)
        return mrc;
    return mdb_del(txn, self->due, &kv, NULL);
}

static int
s_due_put_one(soffa_store_t *self, MDB_txn *txn, uint64_t seq, uint8_t cls, const void *ctx)
{
    const soffa_store_item_t *it = ctx;
    if (cls < SOFFA_STORE_CLASSES && it->sched.reschedule_due[cls] > 0)
        return s_due_put(self, txn, it->sched.reschedule_due[cls], seq, cls);
    return 0;
}

/* A closure: every earlier record of the owner whose class the item names
 * runs out at the time given for its class (a second, earlier schedule
 * entry; the later one finds nothing left), and the closure is noted so
 * that s_unclose can take those entries back. */
static int
s_reschedule(soffa_store_t *self, MDB_txn *txn, const uint8_t owner[S_OWNER], const soffa_store_item_t *it, uint64_t before)
{
    int mrc = s_owner_each(self, txn, owner, before, s_due_put_one, it);
    if (mrc != 0)
        return mrc;
    uint8_t ck[S_CLOSED_KEY], times[S_CLOSED_VAL];
    s_closed_key(owner, ck);
    for (int c = 0; c < SOFFA_STORE_CLASSES; c++)
        soffa_bytes_put_u64(times + 8 * c, it->sched.reschedule_due[c] > 0 ? (uint64_t) it->sched.reschedule_due[c] : 0);
    MDB_val kv = {sizeof ck, ck}, v = {sizeof times, times};
    return mdb_put(txn, self->due, &kv, &v, 0);
}

/* A new record's effect on its owner's earlier schedule: a closure brings
 * the closure-anchored records forward; anything else that goes on the
 * case after a closure (a reopening, a new signal) takes that back first. */
static int
s_sched_owner(soffa_store_t *self, MDB_txn *txn, const uint8_t owner[S_OWNER], const soffa_store_item_t *it, uint64_t seq)
{
    int mrc = 0;
    if (it->sched.reschedule || it->sched.reopen)
        mrc = s_unclose(self, txn, owner, seq);
    if (mrc == 0 && it->sched.reschedule)
        mrc = s_reschedule(self, txn, owner, it, seq);
    return mrc;
}

static int
s_owner_each(soffa_store_t *self, MDB_txn *txn, const uint8_t owner[S_OWNER], uint64_t before,
             int (*fn)(soffa_store_t *self, MDB_txn *txn, uint64_t seq, uint8_t cls, const void *ctx), const void *ctx)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, self->own, &cur);
    if (mrc != 0)
        return mrc;
    uint8_t start[S_OWNER + 8];
    memcpy(start, owner, S_OWNER);
    memset(start + S_OWNER, 0, 8);
    MDB_val k = {sizeof start, start}, v;
    uint64_t seqs[256];
    size_t n = 0;
    bool more = true;
    while (more) {
        /* Collect a few, then write: puts must not move this cursor. */
        n = 0;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && n < 256;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != S_OWNER + 8 || memcmp(k.mv_data, owner, S_OWNER) != 0) {
                mrc = MDB_NOTFOUND;
                break;
            }
            uint64_t seq = soffa_bytes_get_u64((uint8_t *) k.mv_data + S_OWNER);
            if (seq >= before) {
                mrc = MDB_NOTFOUND;
                break;
            }
            seqs[n++] = seq;
        }
        more = mrc == 0;
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            break;
        mrc = 0;
        for (size_t i = 0; i < n && mrc == 0; i++) {
            uint8_t sk[8];
            soffa_bytes_put_u64(sk, seqs[i]);
            MDB_val rk = {8, sk}, rv;
            if (mdb_get(txn, self->rkey, &rk, &rv) != 0 || rv.mv_size != S_RKEY)
                continue;
            mrc = fn(self, txn, seqs[i], ((uint8_t *) rv.mv_data)[S_OWNER], ctx);
        }
        if (mrc != 0 || !more)
            break;
        soffa_bytes_put_u64(start + S_OWNER, seqs[n - 1] + 1);
        k = (MDB_val) {sizeof start, start};
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* ---- Links between subject keys (an identity number replaced by another) ----
 *
 *  In the state table: 'L' || new || old and 'l' || old || new -> "" (keyed
 *  hashes). The subject index names the old number's records under the new
 *  number too; the links let verify tell such an entry from a wrong one and
 *  let disposal take the entry with the record. They are transitive: a link
 *  to old is a link to every number old replaced. */

#define S_LINK (1 + 2 * SOFFA_SUBJECT_KEY_LEN)

/* Calls fn(ctx, other) for every link 'p' || key || other. */
static int
s_links_each(soffa_store_t *self, MDB_txn *txn, char p, const uint8_t key[SOFFA_SUBJECT_KEY_LEN],
             int (*fn)(soffa_store_t *self, MDB_txn *txn, void *ctx, const uint8_t other[SOFFA_SUBJECT_KEY_LEN]), void *ctx)
{
    uint8_t others[64][SOFFA_SUBJECT_KEY_LEN], start[S_LINK];
    start[0] = (uint8_t) p;
    memcpy(start + 1, key, SOFFA_SUBJECT_KEY_LEN);
    memset(start + 1 + SOFFA_SUBJECT_KEY_LEN, 0, SOFFA_SUBJECT_KEY_LEN);
    for (bool more = true; more;) {
        /* A few at a time: fn may write (which must not move this cursor). */
        MDB_cursor *cur;
        int mrc = mdb_cursor_open(txn, self->state, &cur);
        if (mrc != 0)
            return mrc;
        size_t n = 0;
        MDB_val k = {sizeof start, start}, v;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && n < 64;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != S_LINK || memcmp(k.mv_data, start, 1 + SOFFA_SUBJECT_KEY_LEN) != 0) {
                mrc = MDB_NOTFOUND;
                break;
            }
            memcpy(others[n++], (uint8_t *) k.mv_data + 1 + SOFFA_SUBJECT_KEY_LEN, SOFFA_SUBJECT_KEY_LEN);
        }
        mdb_cursor_close(cur);
        more = mrc == 0;
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            return mrc;
        for (size_t i = 0; i < n; i++)
            if ((mrc = fn(self, txn, ctx, others[i])) != 0)
                return mrc;
        if (n) {
            memcpy(start + 1 + SOFFA_SUBJECT_KEY_LEN, others[n - 1], SOFFA_SUBJECT_KEY_LEN);
            /* the next after the last one seen */
            for (int b = SOFFA_SUBJECT_KEY_LEN - 1; b >= 0 && ++start[1 + SOFFA_SUBJECT_KEY_LEN + b] == 0; b--)
                ;
        }
    }
    return 0;
}

static void
s_link_key(uint8_t out[S_LINK], char p, const uint8_t a[SOFFA_SUBJECT_KEY_LEN], const uint8_t b[SOFFA_SUBJECT_KEY_LEN])
{
    out[0] = (uint8_t) p;
    memcpy(out + 1, a, SOFFA_SUBJECT_KEY_LEN);
    memcpy(out + 1 + SOFFA_SUBJECT_KEY_LEN, b, SOFFA_SUBJECT_KEY_LEN);
}

static int
s_link_put(soffa_store_t *self, MDB_txn *txn, const uint8_t newk[SOFFA_SUBJECT_KEY_LEN],
           const uint8_t oldk[SOFFA_SUBJECT_KEY_LEN])
{
    uint8_t a[S_LINK], b[S_LINK];
    s_link_key(a, 'L', newk, oldk);
    s_link_key(b, 'l', oldk, newk);
    MDB_val ka = {sizeof a, a}, kb = {sizeof b, b}, e = {0, NULL};
    int mrc = mdb_put(txn, self->state, &ka, &e, 0);
    return mrc ? mrc : mdb_put(txn, self->state, &kb, &e, 0);
}

/* For s_links_each over 'L' || old: new inherits old's links. */
static int
s_link_inherit(soffa_store_t *self, MDB_txn *txn, void *ctx, const uint8_t older[SOFFA_SUBJECT_KEY_LEN])
{
    return s_link_put(self, txn, ctx, older);
}

static int
s_link_drop(soffa_store_t *self, MDB_txn *txn, void *ctx, const uint8_t other[SOFFA_SUBJECT_KEY_LEN])
{
    const uint8_t *key = ctx;
    uint8_t a[S_LINK], b[S_LINK];
    s_link_key(a, 'L', key, other);
    s_link_key(b, 'l', other, key);
    MDB_val ka = {sizeof a, a}, kb = {sizeof b, b};
    int mrc = mdb_del(txn, self->state, &ka, NULL);
    if (mrc == 0 || mrc == MDB_NOTFOUND)
        mrc = mdb_del(txn, self->state, &kb, NULL);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

static int
s_link_drop_rev(soffa_store_t *self, MDB_txn *txn, void *ctx, const uint8_t other[SOFFA_SUBJECT_KEY_LEN])
{
    return s_link_drop(self, txn, (void *) other, ctx);
}

/* Every link of a subject key that is gone, both ways. */
static int
s_links_forget(soffa_store_t *self, MDB_txn *txn, const uint8_t key[SOFFA_SUBJECT_KEY_LEN])
{
    int mrc = s_links_each(self, txn, 'L', key, s_link_drop, (void *) key);
    return mrc ? mrc : s_links_each(self, txn, 'l', key, s_link_drop_rev, (void *) key);
}

static bool
s_linked(soffa_store_t *self, MDB_txn *txn, const uint8_t newk[SOFFA_SUBJECT_KEY_LEN],
         const uint8_t oldk[SOFFA_SUBJECT_KEY_LEN])
{
    uint8_t a[S_LINK];
    s_link_key(a, 'L', newk, oldk);
    MDB_val ka = {sizeof a, a}, v;
    return mdb_get(txn, self->state, &ka, &v) == 0;
}

typedef struct {
    uint64_t seq;
} s_unindex_t;

/* For s_links_each over 'l' || owner: the record's entry under a newer number. */
static int
s_unindex_linked(soffa_store_t *self, MDB_txn *txn, void *ctx, const uint8_t newer[SOFFA_SUBJECT_KEY_LEN])
{
    uint64_t seq = ((s_unindex_t *) ctx)->seq;
    uint8_t ik[S_SUBJECT_KEY];
    soffa_bytes_put_u32(ik, (uint32_t) (seq >> S_BUCKET_BITS));
    memcpy(ik + 4, newer, SOFFA_SUBJECT_KEY_LEN);
    soffa_bytes_put_u64(ik + 4 + SOFFA_SUBJECT_KEY_LEN, seq);
    MDB_val iv = {sizeof ik, ik};
    int mrc = mdb_del(txn, self->subject, &iv, NULL);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
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
    /* The links: new_key now names old_key's records and those of every
     * number old_key had replaced. */
    if (mrc == 0)
        mrc = s_link_put(self, txn, new_key, old_key);
    if (mrc == 0)
        mrc = s_links_each(self, txn, 'L', old_key, s_link_inherit, (void *) new_key);
    return mrc;
}

/* Appends items in txn on top of t (dedup, sealing, the chain, indices,
 * schedule). Returns 0 or an LMDB error; *rc gets a soffa error that is not
 * LMDB's (a bad item), with mrc 0... and EINVAL. */
static int
s_append_in(soffa_store_t *self, MDB_txn *txn, soffa_store_item_t *items, size_t n, s_tentative_t *t, soffa_err_t *rc)
{
    int mrc = 0;
    uint8_t *buf = NULL, *sealed = NULL;
    *rc = SOFFA_OK;
    for (size_t i = 0; i < n; i++) {
        soffa_store_item_t *it = &items[i];
        soffa_envelope_t *env = it->env;
        it->seq = 0;
        it->duplicate = false;
        size_t alen = env ? strlen(env->sender_agent) : 0;
        if (!env || alen == 0 || env->mailbox[0] == '\0') {
            *rc = SOFFA_ERR_INVALID_ARG;
            mrc = EINVAL;
            goto out;
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
            goto out;
        mrc = 0;

        if (it->seq_from && env->kind != SOFFA_RK_RESTORE) {
            *rc = SOFFA_ERR_INVALID_ARG;   /* only a restore record may jump, and verify insists on it */
            mrc = EINVAL;
            goto out;
        }
        uint64_t seq = t->seq = it->seq_from > t->seq + 1 ? it->seq_from : t->seq + 1;
        env->seq = seq;
        env->version = SOFFA_ENVELOPE_VERSION;
        memcpy(env->prev_hash, t->hash, SOFFA_HASH_LEN);
        /* Receive times never go backwards, so a time range maps to a seq range. */
        if (env->received_at_us < t->time_us)
            env->received_at_us = t->time_us;
        t->time_us = env->received_at_us;
        /* The keyed hash of the subject goes into the index only, never
         * into the chain (it would outlive the subject's disposal there). */
        env->has_subject_key = false;
        uint8_t subject_key[SOFFA_SUBJECT_KEY_LEN];
        bool indexed = it->subject_id && it->subject_id[0] && self->has_key;
        if (indexed)
            soffa_store_subject_key(self, it->subject_id, subject_key);

        /* Personal data is sealed under a key of the record's own: the
         * chain below hashes the ciphertext. */
        const uint8_t *plain_body = env->body;
        size_t plain_len = env->body_len;
        env->sealed = false;
        env->legacy = false;
        uint8_t owner[S_OWNER];
        bool sealable = soffa_envelope_kind_sealed(env->kind);
        if (sealable) {
            if (!self->keys) {
                *rc = SOFFA_ERR_MASTER_KEY;
                mrc = EINVAL;
                goto out;
            }
            s_owner_of(self, env, it->subject_id, owner);
            if ((mrc = s_seal_record(self, txn, env, owner, it->sched.retention_class, &sealed)) != 0)
                goto out;
        }
        size_t len;
        soffa_err_t erc = soffa_envelope_encode(env, &buf, &len);
        /* The caller's envelope gets its own body back. */
        env->body = plain_body;
        env->body_len = plain_len;
        env->sealed = false;
        free(sealed);
        sealed = NULL;
        if (erc != SOFFA_OK) {
            *rc = erc;
            mrc = EINVAL;
            goto out;
        }
        soffa_wire_hash(buf, len, t->hash);

        uint8_t skey[8];
        soffa_bytes_put_u64(skey, seq);
        MDB_val k = {8, skey}, v = {S_REC_HDR + len, NULL};
        if ((mrc = mdb_put(txn, self->log, &k, &v, MDB_APPEND | MDB_RESERVE)) != 0)
            goto out;
        memcpy(v.mv_data, t->hash, SOFFA_HASH_LEN);
        ((uint8_t *) v.mv_data)[SOFFA_HASH_LEN] = s_tag(env);
        memcpy((uint8_t *) v.mv_data + S_REC_HDR, buf, len);
        free(buf);
        buf = NULL;

        /* When it runs out, and (a case's closure) when its subject's
         * earlier records of the closure-anchored classes run out. */
        if (sealable && it->sched.retention_class && it->sched.due_us > 0
            && (mrc = s_due_put(self, txn, it->sched.due_us, seq, it->sched.retention_class)) != 0)
            goto out;
        if (sealable && (mrc = s_sched_owner(self, txn, owner, it, seq)) != 0)
            goto out;

        for (size_t r = 0; r < it->n_refs && r < SOFFA_STORE_REFS; r++) {
            uint8_t rk[SOFFA_STORE_REF_MAX + 8];
            size_t rlen = it->refs[r].len;
            if (rlen == 0 || rlen > SOFFA_STORE_REF_MAX) {
                *rc = SOFFA_ERR_INVALID_ARG;
                mrc = EINVAL;
                goto out;
            }
            memcpy(rk, it->refs[r].key, rlen);
            if (it->refs[r].shared) {   /* many records under one prefix */
                soffa_bytes_put_u64(rk + rlen, seq);
                rlen += 8;
            }
            MDB_val rkv = {rlen, rk}, rv = {8, skey};
            if ((mrc = mdb_put(txn, self->ref, &rkv, &rv, 0)) != 0)
                goto out;
        }

        size_t mlen = strlen(env->mailbox);
        uint8_t mkey[SOFFA_NAME_MAX + 1 + 8];
        memcpy(mkey, env->mailbox, mlen + 1);
        soffa_bytes_put_u64(mkey + mlen + 1, seq);
        uint64_t ordinal;
        uint8_t oval[8];
        MDB_val mk = {mlen + 1 + 8, mkey}, ov = {8, oval}, empty = {0, NULL};
        if ((mrc = s_mstat_add(self, txn, t->ms, &t->n_ms, env->mailbox, seq, &ordinal)) != 0)
            goto out;
        soffa_bytes_put_u64(oval, ordinal);
        if ((mrc = mdb_put(txn, self->mailbox, &mk, &ov, 0)) != 0 || (mrc = s_state_apply(self, txn, it, seq)) != 0)
            goto out;

        if (indexed) {
            uint8_t sk[S_SUBJECT_KEY];
            soffa_bytes_put_u32(sk, (uint32_t) (seq >> S_BUCKET_BITS));
            memcpy(sk + 4, subject_key, SOFFA_SUBJECT_KEY_LEN);
            soffa_bytes_put_u64(sk + 4 + SOFFA_SUBJECT_KEY_LEN, seq);
            MDB_val sv = {sizeof sk, sk};
            if ((mrc = mdb_put(txn, self->subject, &sv, &empty, 0)) != 0)
                goto out;
            /* An identity change: what was indexed under the number it
             * replaces is indexed under the new one too. */
            if (it->subject_alias && it->subject_alias[0]) {
                uint8_t old_key[SOFFA_SUBJECT_KEY_LEN];
                soffa_store_subject_key(self, it->subject_alias, old_key);
                if ((mrc = s_subject_link(self, txn, old_key, subject_key)) != 0)
                    goto out;
            }
        }

        MDB_val dval = {8, skey};
        if ((mrc = mdb_put(txn, self->dedup, &dk, &dval, 0)) != 0)
            goto out;
        it->seq = seq;
    }
out:
    free(buf);
    free(sealed);
    return mrc;
}

soffa_err_t
soffa_store_append(soffa_store_t *self, soffa_store_item_t *items, size_t n)
{
    return soffa_store_append_cursors(self, items, n, NULL, 0);
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
    s_tentative_t t;
    s_tentative_init(self, &t);
    soffa_err_t rc = SOFFA_OK;
    int mrc = 0;
    MDB_txn *txn = NULL;
    if ((mrc = mdb_txn_begin(self->env, NULL, 0, &txn)) != 0)
        goto lmdb_fail;
    if ((mrc = s_append_in(self, txn, items, n, &t, &rc)) != 0) {
        if (rc != SOFFA_OK)
            goto fail;
        goto lmdb_fail;
    }
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
    if ((mrc = s_tentative_put(self, txn, &t)) != 0)
        goto lmdb_fail;
    /* The commit flushes data and meta page to disk before returning 0. */
    int64_t t0 = soffa_mono_us();
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto lmdb_fail;
    self->last_sync_us = soffa_mono_us() - t0;
    s_tentative_commit(self, &t);
    return SOFFA_OK;

lmdb_fail:
    rc = s_write_err(self, mrc);
    soffa_error("store commit of %zu record(s) and %zu cursor(s) failed: %s (lmdb %d): %s", n, n_cur,
                mdb_strerror(mrc), mrc, soffa_strerror(rc));
fail:
    if (txn)
        mdb_txn_abort(txn);
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
s_visit(soffa_store_t *self, MDB_txn *txn, const MDB_val *k, const MDB_val *v, soffa_store_visit_fn fn, void *ctx,
        int *stop)
{
    if (k->mv_size != 8 || v->mv_size < S_REC_HDR)
        return SOFFA_ERR_STORE_CORRUPT;
    const uint8_t *p = v->mv_data;
    soffa_store_rec_t rec = {soffa_bytes_get_u64(k->mv_data), p + S_REC_HDR, v->mv_size - S_REC_HDR, p,
                             p[SOFFA_HASH_LEN], false, {0}};
    rec.has_key = s_record_key(self, txn, rec.seq, rec.key);
    *stop = fn(ctx, &rec);
    sodium_memzero(rec.key, sizeof rec.key);
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
        rc = s_visit(self, txn, &k, &v, fn, ctx, &stop);
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
        if ((rc = s_visit(self, txn, &k, &v, fn, ctx, &stop)) != SOFFA_OK)
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
        if ((rc = s_visit(self, txn, &lk, &lv, fn, ctx, stop)) != SOFFA_OK)
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

/* An upgrade writes a new environment beside the old one and puts its file
 * in the old one's place: the converted file never held a byte of the old
 * plaintext (LMDB keeps freed pages, and stale bytes in the unused part of
 * pages, so converting in place would leave the old content in the file).
 * The old store is read, never written. */

/* Copies every entry of table `name` from one transaction to the other (in
 * key order, appended). A table the old store lacks is made empty. With
 * ordinals set, values become each entry's ordinal within its mailbox
 * (version 2 had none). */
static int
s_copy_table(MDB_txn *from, MDB_txn *to, const char *name, bool ordinals, MDB_dbi *out)
{
    MDB_dbi src;
    int mrc = mdb_dbi_open(to, name, MDB_CREATE, out);
    if (mrc != 0)
        return mrc;
    mrc = mdb_dbi_open(from, name, 0, &src);
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc != 0)
        return mrc;
    MDB_cursor *cur;
    if ((mrc = mdb_cursor_open(from, src, &cur)) != 0)
        return mrc;
    MDB_val k, v;
    char box[SOFFA_NAME_MAX + 1] = "";
    uint64_t ordinal = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t ov[8];
        if (ordinals) {
            if (k.mv_size < 9 || k.mv_size - 8 > sizeof box || ((char *) k.mv_data)[k.mv_size - 9] != '\0') {
                mrc = MDB_CORRUPTED;
                break;
            }
            if (strcmp(box, k.mv_data) != 0) {
                memcpy(box, k.mv_data, k.mv_size - 8);
                ordinal = 0;
            }
            soffa_bytes_put_u64(ov, ++ordinal);
            v = (MDB_val) {8, ov};
        }
        if ((mrc = mdb_put(to, *out, &k, &v, MDB_APPEND)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* The log, converted: every record that carries personal data becomes a
 * legacy record: its clear envelope fields as before, and the whole
 * original envelope sealed under a record key of its own, filed under its
 * owner; its hash in the chain stays the original's. */
static int
s_convert_log(soffa_store_t *self, MDB_txn *from, MDB_txn *to, soffa_store_sched_fn sched, void *sched_ctx)
{
    MDB_dbi src;
    int mrc = mdb_dbi_open(to, "log", MDB_CREATE, &self->log);
    if (mrc != 0 || (mrc = mdb_dbi_open(from, "log", 0, &src)) != 0)
        return mrc;
    MDB_cursor *cur;
    if ((mrc = mdb_cursor_open(from, src, &cur)) != 0)
        return mrc;
    uint8_t *out = NULL, *sealed = NULL;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || v.mv_size < S_REC_HDR) {
            mrc = MDB_CORRUPTED;
            break;
        }
        const uint8_t *orig = (const uint8_t *) v.mv_data + S_REC_HDR;
        size_t olen = v.mv_size - S_REC_HDR;
        soffa_envelope_t e;
        if (soffa_envelope_decode(orig, olen, &e) != SOFFA_OK) {
            mrc = MDB_CORRUPTED;
            break;
        }
        if (!soffa_envelope_kind_sealed(e.kind)) {
            soffa_envelope_fini(&e);
            if ((mrc = mdb_put(to, self->log, &k, &v, MDB_APPEND)) != 0)
                break;
            continue;
        }
        uint8_t owner[S_OWNER] = {0};
        if (e.kind == SOFFA_RK_MESSAGE && e.has_subject_key) {
            owner[0] = 'S';
            memcpy(owner + 1, e.subject_key, SOFFA_SUBJECT_KEY_LEN);
        } else {
            owner[0] = 'D';
            soffa_bytes_put_u32(owner + 1, (uint32_t) (e.received_at_us > 0 ? e.received_at_us / 86400000000LL : 0));
        }
        e.body = orig;              /* the whole original is what is sealed */
        e.body_len = olen;
        e.has_subject_key = false;
        size_t len = 0;
        /* Its schedule, as the broker would have set it then. */
        soffa_store_item_t it = {0};
        if (sched)
            sched(sched_ctx, orig, olen, &it.sched);
        uint64_t seq = soffa_bytes_get_u64(k.mv_data);
        mrc = s_seal_record(self, to, &e, owner, it.sched.retention_class, &sealed);
        if (mrc == 0 && it.sched.retention_class && it.sched.due_us > 0)
            mrc = s_due_put(self, to, it.sched.due_us, seq, it.sched.retention_class);
        if (mrc == 0)
            mrc = s_sched_owner(self, to, owner, &it, seq);
        if (mrc == 0) {
            e.legacy = true;
            soffa_err_t rc = soffa_envelope_encode(&e, &out, &len);
            if (rc != SOFFA_OK)
                mrc = rc == SOFFA_ERR_NOMEM ? ENOMEM : MDB_BAD_VALSIZE;
        }
        free(sealed);
        sealed = NULL;
        soffa_envelope_fini(&e);
        if (mrc != 0)
            break;
        MDB_val nv = {S_REC_HDR + len, NULL};
        if ((mrc = mdb_put(to, self->log, &k, &nv, MDB_RESERVE | MDB_APPEND)) != 0)
            break;
        memcpy(nv.mv_data, v.mv_data, S_REC_HDR);   /* the original's hash and tag */
        memcpy((uint8_t *) nv.mv_data + S_REC_HDR, out, len);
        free(out);
        out = NULL;
    }
    mdb_cursor_close(cur);
    free(out);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* Writes the converted store into the new environment (transaction to). */
static int
s_convert(soffa_store_t *self, MDB_txn *from, MDB_txn *to, bool v2, soffa_store_sched_fn sched, void *sched_ctx)
{
    int mrc;
    if ((mrc = s_copy_table(from, to, "meta", false, &self->meta)) != 0
        || (mrc = s_copy_table(from, to, "mailbox", v2, &self->mailbox)) != 0
        || (mrc = s_copy_table(from, to, "subject", false, &self->subject)) != 0
        || (mrc = s_copy_table(from, to, "dedup", false, &self->dedup)) != 0
        || (mrc = s_copy_table(from, to, "cursor", false, &self->cursor)) != 0
        || (mrc = s_copy_table(from, to, "ref", false, &self->ref)) != 0
        || (mrc = s_copy_table(from, to, "state", false, &self->state)) != 0
        || (mrc = mdb_dbi_open(to, "okey", MDB_CREATE, &self->okey)) != 0
        || (mrc = mdb_dbi_open(to, "rkey", MDB_CREATE, &self->rkey)) != 0
        || (mrc = mdb_dbi_open(to, "own", MDB_CREATE, &self->own)) != 0
        || (mrc = mdb_dbi_open(to, "due", MDB_CREATE, &self->due)) != 0
        || (mrc = mdb_dbi_open(to, "tomb", MDB_CREATE, &self->tomb)) != 0)
        return mrc;
    soffa_seal_key_new(self->tomb_key);
    if ((mrc = s_convert_log(self, from, to, sched, sched_ctx)) != 0 || (mrc = s_u64_put(to, self->meta, "epoch", 1)) != 0
        || (mrc = s_secret_put(self, to, "k:index", self->key)) != 0
        || (mrc = s_secret_put(self, to, "k:tomb", self->tomb_key)) != 0 || (mrc = s_plaintext_mark(to, self->meta)) != 0)
        return mrc;
    MDB_val k = {7, "version"}, v = {strlen(S_VERSION), S_VERSION};
    return mdb_put(to, self->meta, &k, &v, 0);
}

/* fsync of a directory; 0 or errno. */
static int
s_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* Removes the working directory of a conversion (data.mdb, lock.mdb). */
static void
s_rm_tmp(const char *tmp)
{
    char f[4300];
    snprintf(f, sizeof f, "%s/data.mdb", tmp);
    unlink(f);
    snprintf(f, sizeof f, "%s/lock.mdb", tmp);
    unlink(f);
    rmdir(tmp);
}

soffa_err_t
soffa_store_upgrade(const char *path, size_t map_size, const soffa_seal_master_t *master, soffa_store_sched_fn sched,
                    void *sched_ctx, char from[8])
{
    if (!path || !from)
        return SOFFA_ERR_INVALID_ARG;
    from[0] = '\0';
    size_t map = map_size ? map_size : (size_t) 1 << 30;
    soffa_store_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    char tmp[4200], newdata[4300], data[4200], lock[4200], kp[4200];
    snprintf(tmp, sizeof tmp, "%s/upgrade.tmp", path);
    snprintf(newdata, sizeof newdata, "%s/data.mdb", tmp);
    snprintf(data, sizeof data, "%s/data.mdb", path);
    snprintf(lock, sizeof lock, "%s/lock.mdb", path);
    snprintf(kp, sizeof kp, "%s/%s", path, S_KEY_FILE);
    snprintf(self->dir, sizeof self->dir, "%s", path);
    MDB_env *old = NULL;
    MDB_txn *rtxn = NULL, *txn = NULL;
    MDB_dbi meta;
    soffa_err_t rc = SOFFA_OK;
    int mrc;
    bool working = false;
    if ((mrc = mdb_env_create(&old)) != 0)
        goto out;
    mdb_env_set_maxdbs(old, 16);
    if ((mrc = mdb_env_set_mapsize(old, map)) != 0 || (mrc = mdb_env_open(old, path, MDB_RDONLY | MDB_NOTLS, 0600)) != 0
        || (mrc = mdb_txn_begin(old, NULL, MDB_RDONLY, &rtxn)) != 0 || (mrc = mdb_dbi_open(rtxn, "meta", 0, &meta)) != 0)
        goto out;
    MDB_val k = {7, "version"}, v;
    if ((mrc = mdb_get(rtxn, meta, &k, &v)) != 0)
        goto out;
    snprintf(from, 8, "%.*s", (int) (v.mv_size < 7 ? v.mv_size : 7), (const char *) v.mv_data);
    if (strcmp(from, S_VERSION) == 0)
        goto out;   /* nothing to do */
    if (strcmp(from, S_VERSION_2) != 0 && strcmp(from, S_VERSION_3) != 0) {
        rc = SOFFA_ERR_VERSION;
        goto out;
    }
    if (!master || !master->loaded) {
        rc = SOFFA_ERR_MASTER_KEY;
        goto out;
    }
    self->master = *master;
    if ((rc = s_read_v3_key(path, self->key)) != SOFFA_OK) {
        soffa_error("store %s: its subject index secret (%s) cannot be read: %s", path, S_KEY_FILE, soffa_strerror(rc));
        goto out;
    }
    s_rm_tmp(tmp);   /* a conversion cut short left its directory */
    if (mkdir(tmp, 0700) != 0) {
        rc = soffa_err_from_errno(errno);
        goto out;
    }
    working = true;
    if ((mrc = mdb_env_create(&self->env)) != 0)
        goto out;
    mdb_env_set_maxdbs(self->env, 16);
    if ((mrc = mdb_env_set_mapsize(self->env, map)) != 0 || (mrc = mdb_env_open(self->env, tmp, MDB_NOTLS, 0600)) != 0
        || (mrc = mdb_txn_begin(self->env, NULL, 0, &txn)) != 0)
        goto out;
    /* The new epoch key goes to DIR/keys before the new store names it (a
     * crash before the swap leaves the old store, which ignores it). */
    soffa_seal_key_new(self->epoch_key);
    self->epoch = 1;
    self->keys = true;
    self->has_key = true;
    if ((rc = soffa_seal_keys_put(path, 0, 1, self->epoch_key, &self->master)) != SOFFA_OK
        || (rc = soffa_seal_keys_put(path, 1, 0, NULL, NULL)) != SOFFA_OK)
        goto out;
    if ((mrc = s_convert(self, rtxn, txn, strcmp(from, S_VERSION_2) == 0, sched, sched_ctx)) != 0)
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
    /* The swap: one rename puts the new file in the old one's place. */
    int fd = open(newdata, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        mrc = errno;
        if (fd >= 0)
            close(fd);
        goto out;
    }
    close(fd);
    if (rename(newdata, data) != 0) {
        mrc = errno;
        goto out;
    }
    unlink(lock);   /* the old environment's; LMDB makes a new one */
    s_rm_tmp(tmp);
    working = false;
    if ((mrc = s_sync_dir(path)) != 0)
        goto out;
    /* The secret now lives in the store, wrapped: the file in clear goes. */
    fd = open(kp, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        uint8_t zero[S_KEY_LEN] = {0};
        if (write(fd, zero, sizeof zero) != (ssize_t) sizeof zero || fdatasync(fd) != 0)
            soffa_warn("could not overwrite %s before removing it", kp);
        close(fd);
    }
    if (unlink(kp) != 0)
        soffa_warn("could not remove %s: %s; remove it by hand", kp, strerror(errno));
    s_sync_dir(path);
out:
    if (txn)
        mdb_txn_abort(txn);
    if (rtxn)
        mdb_txn_abort(rtxn);
    if (self->env)
        mdb_env_close(self->env);
    if (old)
        mdb_env_close(old);
    if (working)
        s_rm_tmp(tmp);
    if (rc == SOFFA_OK && mrc != 0) {
        rc = soffa_store_err(mrc);
        soffa_error("store %s: upgrade failed: %s (lmdb %d)", path, mdb_strerror(mrc), mrc);
    }
    sodium_memzero(self, sizeof *self);
    free(self);
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
    if (soffa_envelope_decode(env, len, &e) != SOFFA_OK) {
        rep->bad_seq = seq;
        soffa_wire_hash(env, len, h);
        snprintf(rep->reason, sizeof rep->reason, "record %llu %s", (unsigned long long) seq,
                 sodium_memcmp(h, hash, SOFFA_HASH_LEN) != 0 ? "was altered: its content does not match its hash"
                                                            : "cannot be decoded");
        goto broken;
    }
    /* A legacy record's hash is its original's: with the key, the original
     * is opened and hashed; without it, only its place and links count. */
    bool hashed = true;
    if (e.legacy) {
        uint8_t *orig = NULL;
        size_t olen = 0;
        hashed = rec->has_key && soffa_envelope_legacy_bytes(env, len, rec->key, &orig, &olen) == SOFFA_OK;
        if (hashed)
            soffa_wire_hash(orig, olen, h);
        else if (rec->has_key)
            memset(h, 0, sizeof h);   /* the key does not open it: altered */
        if (orig)
            sodium_memzero(orig, olen);
        free(orig);
        if (rec->has_key)
            hashed = true;
        else
            rep->unhashed++;
    } else {
        soffa_wire_hash(env, len, h);
        /* With the keys at hand, a sealed body must open with its own. */
        if (e.sealed && rec->has_key) {
            soffa_envelope_t o;
            if (soffa_envelope_open(env, len, rec->key, &o) != SOFFA_OK)
                memset(h, 0, sizeof h);
            soffa_envelope_fini(&o);
        }
    }
    if (hashed && sodium_memcmp(h, hash, SOFFA_HASH_LEN) != 0) {
        soffa_envelope_fini(&e);
        rep->bad_seq = seq;
        snprintf(rep->reason, sizeof rep->reason, "record %llu was altered: its content does not match its hash",
                 (unsigned long long) seq);
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

/* With the keys at hand, the key tables agree with each other and with the
 * subject index: every record key has its owner's key and its owner entry,
 * every owner entry and subject index entry its record key. A disposal cut
 * short could break this; the store's single transactions never should. */
static soffa_err_t
s_check_keys(soffa_store_t *self, soffa_store_verify_t *rep)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->rkey, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k, v;
    const char *wrong = NULL;
    uint64_t seq = 0;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && !wrong; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        seq = k.mv_size == 8 ? soffa_bytes_get_u64(k.mv_data) : 0;
        uint8_t key[SOFFA_SEAL_KEY];
        if (k.mv_size != 8 || v.mv_size != S_RKEY)
            wrong = "has a damaged record key entry";
        else if (!s_record_key(self, txn, seq, key))
            wrong = "has a record key whose owner key is gone or does not open it";
        else {
            uint8_t own[S_OWNER + 8];
            memcpy(own, v.mv_data, S_OWNER);
            memcpy(own + S_OWNER, k.mv_data, 8);
            MDB_val ok = {sizeof own, own}, ov;
            if (mdb_get(txn, self->own, &ok, &ov) != 0)
                wrong = "has a record key its owner does not list";
        }
        sodium_memzero(key, sizeof key);
    }
    mdb_cursor_close(cur);
    /* Every subject index entry points at a record that still has its key. */
    if (!wrong && (mrc = mdb_cursor_open(txn, self->subject, &cur)) == 0) {
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && !wrong; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != S_SUBJECT_KEY)
                continue;
            seq = soffa_bytes_get_u64((uint8_t *) k.mv_data + 4 + SOFFA_SUBJECT_KEY_LEN);
            uint8_t sk[8];
            soffa_bytes_put_u64(sk, seq);
            MDB_val rk = {8, sk}, rv, lk = {8, sk}, lv;
            if (mdb_get(txn, self->log, &lk, &lv) != 0)
                wrong = "is named by the subject index but is not in the log";
            else if (lv.mv_size > S_REC_HDR && (((uint8_t *) lv.mv_data)[SOFFA_HASH_LEN] & 0x80) == 0
                     && mdb_get(txn, self->rkey, &rk, &rv) != 0)
                wrong = "is named by the subject index but its key is gone";
            else if (lv.mv_size > S_REC_HDR && (((uint8_t *) lv.mv_data)[SOFFA_HASH_LEN] & 0x80) == 0
                     && (rv.mv_size != S_RKEY
                         || (memcmp((uint8_t *) rv.mv_data + 1, (uint8_t *) k.mv_data + 4, SOFFA_SUBJECT_KEY_LEN) != 0
                             && !s_linked(self, txn, (uint8_t *) k.mv_data + 4, (uint8_t *) rv.mv_data + 1))))
                wrong = "is named by the subject index under another owner (and no identity change links them)";
        }
        mdb_cursor_close(cur);
    }
    s_rd_end(txn);
    if (wrong) {
        rep->bad_seq = seq;
        snprintf(rep->reason, sizeof rep->reason, "record %llu %s", (unsigned long long) seq, wrong);
        return SOFFA_ERR_CHAIN_BROKEN;
    }
    return mrc == 0 || mrc == MDB_NOTFOUND ? SOFFA_OK : soffa_store_err(mrc);
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
    if (self->keys && (rc = s_check_keys(self, rep)) != SOFFA_OK)
        return rc == SOFFA_ERR_CHAIN_BROKEN ? rc : (snprintf(rep->reason, sizeof rep->reason, "the key tables could not be "
                                                             "read: %s", soffa_strerror(rc)), SOFFA_ERR_CHAIN_BROKEN);
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

/* Writes the backup mark (taken at at_us) into the state table of the
 * LMDB environment copied to dir, durably. */
static soffa_err_t
s_backup_mark_put(const char *dir, int64_t at_us)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int mrc = mdb_env_create(&env);
    if (mrc == 0)
        mdb_env_set_maxdbs(env, 16);
    if (mrc == 0)
        mrc = mdb_env_open(env, dir, MDB_NOTLS, 0600);
    if (mrc == 0)
        mrc = s_cloexec(env);
    if (mrc == 0)
        mrc = mdb_txn_begin(env, NULL, 0, &txn);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, "state", MDB_CREATE, &dbi);
    if (mrc == 0) {
        uint8_t v[8];
        soffa_bytes_put_u64(v, (uint64_t) at_us);
        MDB_val kv = {sizeof SOFFA_STORE_BACKUP_MARK - 1, (void *) SOFFA_STORE_BACKUP_MARK}, vv = {8, v};
        mrc = mdb_put(txn, dbi, &kv, &vv, 0);
    }
    if (mrc == 0) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    if (mrc != 0)
        soffa_error("backup: marking the copy in %s failed: %s (lmdb %d)", dir, mdb_strerror(mrc), mrc);
    return mrc == 0 ? SOFFA_OK : soffa_store_err(mrc);
}

/* The slots of `epoch` from two readings of a keys file, into out. */
static bool
s_keys_pick(const soffa_seal_keys_t *a, const soffa_seal_keys_t *b, uint64_t epoch, soffa_seal_keys_t *out)
{
    memset(out, 0, sizeof *out);
    int n = 0;
    const soffa_seal_keys_t *src[2] = {a, b};
    for (int r = 0; r < 2; r++)
        for (int sl = 0; sl < 2 && n < 2; sl++) {
            if (src[r]->epoch[sl] != epoch || sodium_is_zero(src[r]->wrapped[sl], SOFFA_SEAL_WRAPPED))
                continue;
            bool dup = false;
            for (int i = 0; i < n; i++)
                dup |= memcmp(out->id[i], src[r]->id[sl], SOFFA_SEAL_ID) == 0;
            if (dup)
                continue;
            out->epoch[n] = epoch;
            memcpy(out->id[n], src[r]->id[sl], SOFFA_SEAL_ID);
            memcpy(out->wrapped[n], src[r]->wrapped[sl], SOFFA_SEAL_WRAPPED);
            n++;
        }
    return n > 0;
}

soffa_err_t
soffa_store_backup(soffa_store_t *self, const char *dest, const uint8_t *trusted_key, soffa_store_backup_t *rep)
{
    if (!self || !dest || !rep)
        return SOFFA_ERR_INVALID_ARG;
    memset(rep, 0, sizeof *rep);
    char data[4096], keys[4096], lock[4096];
    if (snprintf(data, sizeof data, "%s/data.mdb", dest) >= (int) sizeof data
        || snprintf(keys, sizeof keys, "%s/keys", dest) >= (int) sizeof keys
        || snprintf(lock, sizeof lock, "%s/lock.mdb", dest) >= (int) sizeof lock)
        return SOFFA_ERR_INVALID_ARG;
    /* The epoch key the copy will need is read before and after the copy:
     * a disposal running meanwhile replaces it, and the copy holds the
     * store as of one commit, on one side of that or the other. */
    soffa_seal_keys_t before, after, mine;
    soffa_err_t rc = soffa_seal_keys_read(self->dir, &before);
    if (rc != SOFFA_OK) {
        soffa_error("backup: the store has no readable keys file to go with the copy: %s", soffa_strerror(rc));
        return rc == SOFFA_ERR_NOT_FOUND ? SOFFA_ERR_NOT_FOUND : rc;
    }
    if (mkdir(dest, 0700) != 0)
        return soffa_err_from_errno(errno);
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
    if ((rc = soffa_seal_keys_read(self->dir, &after)) != SOFFA_OK)
        goto fail;
    /* The mark: a broker that opens this copy knows it is a restore. The
     * state table is in clear, so no master key is needed (soffa backup
     * never reads it). */
    if ((rc = s_backup_mark_put(dest, soffa_now_us())) != SOFFA_OK)
        goto fail;
    unlink(lock);

    /* The copy proves itself before anyone relies on it. */
    soffa_store_opts_t o = {.path = dest, .read_only = true};
    if ((rc = soffa_store_open(&copy, &o)) != SOFFA_OK)
        goto fail;
    soffa_store_head(copy, &rep->head_seq, NULL, NULL);
    uint64_t epoch = copy->epoch;
    rc = soffa_store_verify(copy, trusted_key, &rep->verify);
    soffa_store_close(&copy);
    unlink(lock);   /* made by the check; LMDB makes it again where the copy is used */
    if (rc != SOFFA_OK)
        goto fail;
    if (!s_keys_pick(&before, &after, epoch, &mine)) {
        soffa_error("backup: the store's epoch key changed twice while it was copied (disposals); run the backup again");
        rc = SOFFA_ERR_UNAVAILABLE;
        goto fail;
    }
    if ((rc = soffa_seal_keys_write(dest, &mine)) != SOFFA_OK)
        goto fail;
    dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0)
        goto errno_fail;
    close(dfd);
    sodium_memzero(&before, sizeof before);
    sodium_memzero(&after, sizeof after);
    sodium_memzero(&mine, sizeof mine);
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
    unlink(keys);
    unlink(data);
    rmdir(dest);
    sodium_memzero(&before, sizeof before);
    sodium_memzero(&after, sizeof after);
    sodium_memzero(&mine, sizeof mine);
    return rc;
}

/* ---- Gallring and erasure -------------------------------------------------- */

#define S_DISPOSE_MAX 50000   /* records one run disposes of (the rest in the next) */

typedef struct {
    uint64_t seq;
    uint8_t id[16];
} s_ent_t;

/* Records that go in one disposal notice: those of one mailbox and class,
 * told to `mailbox` (the records' own, or their sender's inbox). */
typedef struct {
    char mailbox[SOFFA_NAME_MAX];
    char for_mailbox[SOFFA_NAME_MAX];
    uint8_t cls;
    s_ent_t *e;
    size_t n, cap;
    uint64_t dseq[64];                /* the notices written for it */
    size_t n_dseq;
} s_group_t;

typedef struct {
    uint64_t seq;
    uint8_t owner[S_OWNER];
    size_t group;                     /* its mailbox's group */
} s_victim_t;

typedef struct {
    s_victim_t *v;
    size_t n, cap;
    s_group_t *g;
    size_t n_g, cap_g;
    uint8_t (*owners)[S_OWNER];
    size_t n_o, cap_o;
} s_dispose_t;

static void
s_dispose_free(s_dispose_t *d)
{
    for (size_t i = 0; i < d->n_g; i++)
        free(d->g[i].e);
    free(d->g);
    free(d->v);
    free(d->owners);
}

/* Grows *v (of *cap items of size sz) to hold one more. */
static bool
s_grow(void **v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? 2 * *cap : 64;
    void *p = realloc(*v, c * sz);
    if (!p)
        return false;
    *v = p;
    *cap = c;
    return true;
}

/* The group (mailbox, for_mailbox, class), made when new; SIZE_MAX when out
 * of memory. */
static size_t
s_group(s_dispose_t *d, const char *mailbox, const char *for_mailbox, uint8_t cls)
{
    for (size_t i = 0; i < d->n_g; i++)
        if (d->g[i].cls == cls && !strcmp(d->g[i].mailbox, mailbox) && !strcmp(d->g[i].for_mailbox, for_mailbox))
            return i;
    if (!s_grow((void **) &d->g, &d->cap_g, d->n_g, sizeof *d->g))
        return SIZE_MAX;
    s_group_t *g = &d->g[d->n_g];
    memset(g, 0, sizeof *g);
    snprintf(g->mailbox, sizeof g->mailbox, "%s", mailbox);
    snprintf(g->for_mailbox, sizeof g->for_mailbox, "%s", for_mailbox);
    g->cls = cls;
    return d->n_g++;
}

static bool
s_group_add(s_group_t *g, uint64_t seq, const uint8_t id[16])
{
    if (!s_grow((void **) &g->e, &g->cap, g->n, sizeof *g->e))
        return false;
    g->e[g->n].seq = seq;
    memcpy(g->e[g->n].id, id, 16);
    g->n++;
    return true;
}

static bool
s_owner_add(s_dispose_t *d, const uint8_t owner[S_OWNER])
{
    for (size_t i = 0; i < d->n_o; i++)
        if (!memcmp(d->owners[i], owner, S_OWNER))
            return true;
    if (!s_grow((void **) &d->owners, &d->cap_o, d->n_o, sizeof *d->owners))
        return false;
    memcpy(d->owners[d->n_o++], owner, S_OWNER);
    return true;
}

/* The tombstone of a subject owner: its keyed hash, keyed again with the
 * tombstone secret. */
static void
s_tombstone(const soffa_store_t *self, const uint8_t owner[S_OWNER], uint8_t out[16])
{
    crypto_generichash(out, 16, owner + 1, SOFFA_SUBJECT_KEY_LEN, self->tomb_key, sizeof self->tomb_key);
}

/* Takes record seq out of reach: its record key, its owner index entry,
 * its subject index entry; notes it for the notices. 0, or an LMDB error;
 * *taken false when it had no key left. */
static int
s_take(soffa_store_t *self, MDB_txn *txn, s_dispose_t *d, uint64_t seq, const soffa_store_dispose_opts_t *o, bool *taken)
{
    *taken = false;
    uint8_t sk[8];
    soffa_bytes_put_u64(sk, seq);
    MDB_val k = {8, sk}, v;
    int mrc = mdb_get(txn, self->rkey, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc != 0)
        return mrc;
    if (v.mv_size != S_RKEY)
        return MDB_CORRUPTED;
    uint8_t owner[S_OWNER], cls = ((uint8_t *) v.mv_data)[S_OWNER];
    memcpy(owner, v.mv_data, S_OWNER);
    MDB_val lv;
    if ((mrc = mdb_get(txn, self->log, &k, &lv)) != 0)
        return mrc == MDB_NOTFOUND ? MDB_CORRUPTED : mrc;
    soffa_envelope_t e;
    if (lv.mv_size < S_REC_HDR
        || soffa_envelope_decode((uint8_t *) lv.mv_data + S_REC_HDR, lv.mv_size - S_REC_HDR, &e) != SOFFA_OK)
        return MDB_CORRUPTED;
    char mailbox[SOFFA_NAME_MAX], sender[SOFFA_NAME_MAX];
    uint8_t id[16];
    snprintf(mailbox, sizeof mailbox, "%s", e.mailbox);
    snprintf(sender, sizeof sender, "%s", e.sender_agent);
    memcpy(id, e.message_id, 16);
    soffa_envelope_fini(&e);

    uint8_t own[S_OWNER + 8];
    memcpy(own, owner, S_OWNER);
    memcpy(own + S_OWNER, sk, 8);
    MDB_val okv = {sizeof own, own};
    if ((mrc = mdb_del(txn, self->rkey, &k, NULL)) != 0 || ((mrc = mdb_del(txn, self->own, &okv, NULL)) != 0 && mrc != MDB_NOTFOUND))
        return mrc;
    if (owner[0] == 'S') {
        uint8_t ik[S_SUBJECT_KEY];
        soffa_bytes_put_u32(ik, (uint32_t) (seq >> S_BUCKET_BITS));
        memcpy(ik + 4, owner + 1, SOFFA_SUBJECT_KEY_LEN);
        soffa_bytes_put_u64(ik + 4 + SOFFA_SUBJECT_KEY_LEN, seq);
        MDB_val iv = {sizeof ik, ik};
        if ((mrc = mdb_del(txn, self->subject, &iv, NULL)) != 0 && mrc != MDB_NOTFOUND)
            return mrc;
        /* ... and under every number that replaced this one. */
        s_unindex_t u = {seq};
        if ((mrc = s_links_each(self, txn, 'l', owner + 1, s_unindex_linked, &u)) != 0)
            return mrc;
    }
    size_t gi = s_group(d, mailbox, mailbox, cls);
    if (gi == SIZE_MAX || !s_group_add(&d->g[gi], seq, id) || !s_owner_add(d, owner)
        || !s_grow((void **) &d->v, &d->cap, d->n, sizeof *d->v))
        return ENOMEM;
    d->v[d->n].seq = seq;
    memcpy(d->v[d->n].owner, owner, S_OWNER);
    d->v[d->n].group = gi;
    d->n++;
    /* The sender kept copies of what it sent: it hears of it in its inbox. */
    const char *inbox = o->inbox_of ? o->inbox_of(o->ctx, sender) : NULL;
    if (inbox && inbox[0] && strcmp(inbox, mailbox) != 0) {
        size_t si = s_group(d, inbox, mailbox, cls);
        if (si == SIZE_MAX || !s_group_add(&d->g[si], seq, id))
            return ENOMEM;
    }
    *taken = true;
    return 0;
}

/* Every subject index entry under the keyed hash h (one seek per bucket):
 * the records of others that named the young person (the access records of
 * reads of their history) lose the link too. */
static int
s_index_purge(soffa_store_t *self, MDB_txn *txn, const uint8_t h[SOFFA_SUBJECT_KEY_LEN])
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, self->subject, &cur);
    if (mrc != 0)
        return mrc;
    MDB_val k, v;
    uint64_t last = 0;
    if ((mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST)) == 0 && k.mv_size == S_SUBJECT_KEY)
        last = soffa_bytes_get_u32(k.mv_data);
    for (uint64_t b = 0; mrc == 0 && b <= last; b++) {
        uint8_t start[S_SUBJECT_KEY];
        soffa_bytes_put_u32(start, (uint32_t) b);
        memcpy(start + 4, h, SOFFA_SUBJECT_KEY_LEN);
        memset(start + 4 + SOFFA_SUBJECT_KEY_LEN, 0, 8);
        k = (MDB_val) {sizeof start, start};
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;) {
            if (k.mv_size != S_SUBJECT_KEY || memcmp(k.mv_data, start, 4 + SOFFA_SUBJECT_KEY_LEN) != 0)
                break;
            if ((mrc = mdb_cursor_del(cur, 0)) != 0)
                break;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        }
        if (mrc == MDB_NOTFOUND || mrc == EINVAL)
            mrc = 0;
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

/* The broker's case register and alias map about a young person who has no
 * record left (soffa_case.h: 'c' person kommun -> case id, 'C' case id ->
 * the case, 'T' case id -> its team and contact person, 'a' key -> the key
 * that replaced it): they go with the owner key, so that nothing keyed by
 * the person outlives their records. */
static int
s_cases_forget(soffa_store_t *self, MDB_txn *txn, const uint8_t h[SOFFA_SUBJECT_KEY_LEN])
{
    uint8_t ak[1 + SOFFA_SUBJECT_KEY_LEN] = {'a'};
    memcpy(ak + 1, h, SOFFA_SUBJECT_KEY_LEN);
    MDB_val akv = {sizeof ak, ak};
    int mrc = mdb_del(txn, self->state, &akv, NULL);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return mrc;
    MDB_cursor *cur;
    if ((mrc = mdb_cursor_open(txn, self->state, &cur)) != 0)
        return mrc;
    uint8_t cases[64][16];
    size_t n = 0;
    MDB_val k = {sizeof ak, ak}, v;
    ak[0] = 'c';
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;) {
        if (k.mv_size != 1 + SOFFA_SUBJECT_KEY_LEN + 4 || memcmp(k.mv_data, ak, sizeof ak) != 0)
            break;
        if (v.mv_size == 16 && n < 64)
            memcpy(cases[n++], v.mv_data, 16);
        if ((mrc = mdb_cursor_del(cur, 0)) != 0)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(cur);
    if (mrc != 0 && mrc != MDB_NOTFOUND && mrc != EINVAL)
        return mrc;
    for (size_t i = 0; i < n; i++) {
        uint8_t ck[17] = {'C'};
        memcpy(ck + 1, cases[i], 16);
        MDB_val ckv = {sizeof ck, ck};
        if ((mrc = mdb_del(txn, self->state, &ckv, NULL)) != 0 && mrc != MDB_NOTFOUND)
            return mrc;
        ck[0] = 'T';
        if ((mrc = mdb_del(txn, self->state, &ckv, NULL)) != 0 && mrc != MDB_NOTFOUND)
            return mrc;
    }
    return 0;
}

/* An owner that lost records: gone when it has none left (with its state
 * and a tombstone), else a new owner key that wraps what is left. The
 * owner key is written under the current epoch key; the rotation that
 * follows wraps it anew. */
static int
s_owner_settle(soffa_store_t *self, MDB_txn *txn, const uint8_t owner[S_OWNER], soffa_store_dispose_report_t *rep)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, self->own, &cur);
    if (mrc != 0)
        return mrc;
    uint8_t start[S_OWNER + 8];
    memcpy(start, owner, S_OWNER);
    memset(start + S_OWNER, 0, 8);
    MDB_val k = {sizeof start, start}, v;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool left = mrc == 0 && k.mv_size == sizeof start && !memcmp(k.mv_data, owner, S_OWNER);
    mdb_cursor_close(cur);
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return mrc;
    MDB_val ok = {S_OWNER, (void *) owner};
    if (!left) {
        if ((mrc = mdb_del(txn, self->okey, &ok, NULL)) != 0 && mrc != MDB_NOTFOUND)
            return mrc;
        uint8_t ck[S_CLOSED_KEY];   /* a closure noted for it */
        s_closed_key(owner, ck);
        MDB_val ckv = {sizeof ck, ck};
        if ((mrc = mdb_del(txn, self->due, &ckv, NULL)) != 0 && mrc != MDB_NOTFOUND)
            return mrc;
        if (owner[0] == 'S') {
            uint8_t pk[1 + SOFFA_SUBJECT_KEY_LEN] = {'P'};   /* a remembered protected identity */
            memcpy(pk + 1, owner + 1, SOFFA_SUBJECT_KEY_LEN);
            MDB_val pkv = {sizeof pk, pk};
            if ((mrc = mdb_del(txn, self->state, &pkv, NULL)) != 0 && mrc != MDB_NOTFOUND)
                return mrc;
            if ((mrc = s_index_purge(self, txn, owner + 1)) != 0 || (mrc = s_links_forget(self, txn, owner + 1)) != 0
                || (mrc = s_cases_forget(self, txn, owner + 1)) != 0)
                return mrc;
            rep->subjects++;
        }
        return 0;
    }
    /* Some remain: they move to a new owner key, so that the old one (and
     * any copy of it the file still holds) opens nothing that is left. */
    uint8_t old[SOFFA_SEAL_KEY], fresh[SOFFA_SEAL_KEY], ad[1 + S_OWNER], w[SOFFA_SEAL_WRAPPED];
    if ((mrc = s_owner_key(self, txn, owner, false, old)) != 0)
        return mrc;
    soffa_seal_key_new(fresh);
    if ((mrc = mdb_cursor_open(txn, self->own, &cur)) != 0)
        goto out;
    uint64_t seqs[256];
    for (bool more = true; more && mrc == 0;) {
        size_t n = 0;
        k = (MDB_val) {sizeof start, start};
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && n < 256;
             mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != sizeof start || memcmp(k.mv_data, owner, S_OWNER) != 0) {
                mrc = MDB_NOTFOUND;
                break;
            }
            seqs[n++] = soffa_bytes_get_u64((uint8_t *) k.mv_data + S_OWNER);
        }
        more = mrc == 0;
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            break;
        mrc = 0;
        for (size_t i = 0; i < n && mrc == 0; i++) {
            uint8_t sk[8], rad[9], rk[SOFFA_SEAL_KEY], val[S_RKEY];
            soffa_bytes_put_u64(sk, seqs[i]);
            MDB_val rkk = {8, sk}, rv;
            if ((mrc = mdb_get(txn, self->rkey, &rkk, &rv)) != 0 || rv.mv_size != S_RKEY) {
                mrc = mrc ? mrc : MDB_CORRUPTED;
                break;
            }
            memcpy(val, rv.mv_data, S_RKEY);
            s_ad_record(seqs[i], rad);
            if (soffa_seal_unwrap(old, val + S_OWNER + 1, rad, sizeof rad, rk) != SOFFA_OK) {
                mrc = EBADMSG;
                break;
            }
            soffa_seal_wrap(fresh, rk, rad, sizeof rad, val + S_OWNER + 1);
            sodium_memzero(rk, sizeof rk);
            MDB_val nv = {S_RKEY, val};
            mrc = mdb_put(txn, self->rkey, &rkk, &nv, 0);
        }
        if (n)
            soffa_bytes_put_u64(start + S_OWNER, seqs[n - 1] + 1);
    }
    mdb_cursor_close(cur);
    if (mrc == MDB_NOTFOUND)
        mrc = 0;
    if (mrc == 0) {
        s_ad_owner(owner, ad);
        soffa_seal_wrap(self->epoch_key, fresh, ad, sizeof ad, w);
        MDB_val nv = {sizeof w, w};
        mrc = mdb_put(txn, self->okey, &ok, &nv, 0);
    }
out:
    sodium_memzero(old, sizeof old);
    sodium_memzero(fresh, sizeof fresh);
    return mrc;
}

/* Every owner key and store secret, wrapped anew under the next epoch key. */
static int
s_rotate(soffa_store_t *self, MDB_txn *txn, const uint8_t next[SOFFA_SEAL_KEY], uint64_t next_epoch)
{
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, self->okey, &cur);
    if (mrc != 0)
        return mrc;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t owner[S_OWNER], ad[1 + S_OWNER], key[SOFFA_SEAL_KEY], w[SOFFA_SEAL_WRAPPED];
        if (k.mv_size != S_OWNER || v.mv_size != SOFFA_SEAL_WRAPPED) {
            mrc = MDB_CORRUPTED;
            break;
        }
        memcpy(owner, k.mv_data, S_OWNER);
        s_ad_owner(owner, ad);
        if (soffa_seal_unwrap(self->epoch_key, v.mv_data, ad, sizeof ad, key) != SOFFA_OK) {
            mrc = EBADMSG;
            break;
        }
        soffa_seal_wrap(next, key, ad, sizeof ad, w);
        sodium_memzero(key, sizeof key);
        MDB_val nk = {S_OWNER, owner}, nv = {sizeof w, w};
        if ((mrc = mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (mrc != MDB_NOTFOUND)
        return mrc;
    const char *names[] = {"k:index", "k:tomb"};
    const uint8_t *vals[] = {self->key, self->tomb_key};
    for (int i = 0; i < 2; i++) {
        uint8_t w[SOFFA_SEAL_WRAPPED];
        soffa_seal_wrap(next, vals[i], names[i], strlen(names[i]), w);
        MDB_val nk = {strlen(names[i]), (void *) names[i]}, nv = {sizeof w, w};
        if ((mrc = mdb_put(txn, self->meta, &nk, &nv, 0)) != 0)
            return mrc;
    }
    return s_u64_put(txn, self->meta, "epoch", next_epoch);
}

/* The disposal records of the run, appended in txn: one per group (split at
 * SOFFA_DISPOSAL_MAX records). */
static int
s_notices(soffa_store_t *self, MDB_txn *txn, s_dispose_t *d, const soffa_store_dispose_opts_t *o, s_tentative_t *t,
          const uint8_t *tombstone, soffa_store_dispose_report_t *rep)
{
    int64_t now = soffa_now_us();
    for (size_t gi = 0; gi < d->n_g; gi++) {
        s_group_t *g = &d->g[gi];
        for (size_t off = 0; off < g->n; off += SOFFA_DISPOSAL_MAX) {
            size_t n = g->n - off < SOFFA_DISPOSAL_MAX ? g->n - off : SOFFA_DISPOSAL_MAX;
            uint64_t *seqs = calloc(n, sizeof *seqs);
            uint8_t (*ids)[16] = calloc(n, sizeof *ids);
            if (!seqs || !ids) {
                free(seqs);
                free(ids);
                return ENOMEM;
            }
            for (size_t i = 0; i < n; i++) {
                seqs[i] = g->e[off + i].seq;
                memcpy(ids[i], g->e[off + i].id, 16);
            }
            soffa_disposal_t dr = {.rule = o->erase_subject ? SOFFA_DR_ERASURE : SOFFA_DR_RETENTION,
                                   .retention_class = g->cls, .reason = o->reason, .count = n, .seqs = seqs,
                                   .msg_ids = ids, .at_us = now};
            snprintf(dr.rule_text, sizeof dr.rule_text, "%s",
                     o->erase_subject ? "erasure" : g->cls < SOFFA_STORE_CLASSES && o->rule_text[g->cls] ? o->rule_text[g->cls] : "");
            snprintf(dr.for_mailbox, sizeof dr.for_mailbox, "%s", g->for_mailbox);
            if (tombstone) {
                memcpy(dr.tombstone, tombstone, 16);
                dr.has_tombstone = true;
            }
            uint8_t *body = NULL;
            size_t len = 0;
            soffa_err_t erc = soffa_disposal_encode(&dr, &body, &len);
            free(seqs);
            free(ids);
            if (erc != SOFFA_OK)
                return erc == SOFFA_ERR_NOMEM ? ENOMEM : EINVAL;
            soffa_envelope_t env = {.kind = SOFFA_RK_DISPOSAL, .body = body, .body_len = len,
                                    .sender_role = SOFFA_ROLE_BROKER, .received_at_us = now};
            soffa_uuid7(env.message_id);
            snprintf(env.sender_agent, sizeof env.sender_agent, "%s", o->sender && o->sender[0] ? o->sender : "soffa-broker");
            snprintf(env.mailbox, sizeof env.mailbox, "%s", g->mailbox);
            soffa_store_item_t it = {.env = &env};
            soffa_err_t rc;
            int mrc = s_append_in(self, txn, &it, 1, t, &rc);
            /* The mailbox totals hold the name by pointer: written now,
             * while this envelope lives. */
            if (mrc == 0)
                mrc = s_mstat_flush(self, txn, t->ms, &t->n_ms);
            free(body);
            if (mrc != 0)
                return mrc;
            if (g->n_dseq < sizeof g->dseq / sizeof *g->dseq)
                g->dseq[g->n_dseq++] = it.seq;
            if (!rep->first_seq)
                rep->first_seq = it.seq;
            rep->last_seq = it.seq;
            rep->notices++;
        }
    }
    return 0;
}

/* Tombstones: for each young person who lost records, the disposal records
 * that name them, under the tombstone. */
static int
s_tombs_put(soffa_store_t *self, MDB_txn *txn, const s_dispose_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        const s_victim_t *vi = &d->v[i];
        if (vi->owner[0] != 'S')
            continue;
        const s_group_t *g = &d->g[vi->group];
        uint8_t k[16 + 8];
        s_tombstone(self, vi->owner, k);
        for (size_t j = 0; j < g->n_dseq; j++) {
            soffa_bytes_put_u64(k + 16, g->dseq[j]);
            MDB_val kv = {sizeof k, k}, empty = {0, NULL};
            int mrc = mdb_put(txn, self->tomb, &kv, &empty, 0);
            if (mrc != 0)
                return mrc;
        }
    }
    return 0;
}

/* Tombstones whose disposal record is older than keep_us go. */
static int
s_tombs_expire(soffa_store_t *self, MDB_txn *txn, int64_t now, int64_t keep_us, uint64_t *n)
{
    if (keep_us <= 0)
        return 0;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, self->tomb, &cur);
    if (mrc != 0)
        return mrc;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;) {
        bool old = false;
        if (k.mv_size == 24) {
            MDB_val lk = {8, (uint8_t *) k.mv_data + 16}, lv;
            soffa_envelope_t e;
            if (mdb_get(txn, self->log, &lk, &lv) == 0 && lv.mv_size > S_REC_HDR
                && soffa_envelope_decode((uint8_t *) lv.mv_data + S_REC_HDR, lv.mv_size - S_REC_HDR, &e) == SOFFA_OK) {
                old = now - e.received_at_us > keep_us;
                soffa_envelope_fini(&e);
            }
        }
        if (old) {
            if ((mrc = mdb_cursor_del(cur, 0)) != 0)
                break;
            (*n)++;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        } else {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND || mrc == EINVAL ? 0 : mrc;
}

soffa_err_t
soffa_store_dispose(soffa_store_t *self, const soffa_store_dispose_opts_t *o, soffa_store_dispose_report_t *rep)
{
    if (!self || !o || !rep)
        return SOFFA_ERR_INVALID_ARG;
    memset(rep, 0, sizeof *rep);
    if (self->read_only)
        return SOFFA_ERR_PERMISSION;
    if (!self->keys)
        return SOFFA_ERR_MASTER_KEY;
    s_dispose_t d = {0};
    s_tentative_t t;
    s_tentative_init(self, &t);
    soffa_err_t rc = SOFFA_OK;
    int mrc = 0, cur_slot = -1;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t next[SOFFA_SEAL_KEY], erase_owner[S_OWNER] = {'S'}, tomb[16];
    bool slot_written = false;
    soffa_seal_keys_t kf;
    if ((mrc = mdb_txn_begin(self->env, NULL, 0, &txn)) != 0)
        goto lmdb_fail;

    /* What goes: one young person's every record, or what has run out. */
    if (o->erase_subject) {
        soffa_store_subject_key(self, o->erase_subject, erase_owner + 1);
        uint64_t *seqs = NULL;
        size_t n = 0, cap = 0;
        if ((mrc = mdb_cursor_open(txn, self->own, &cur)) != 0)
            goto lmdb_fail;
        uint8_t start[S_OWNER + 8] = {0};
        memcpy(start, erase_owner, S_OWNER);
        MDB_val k = {sizeof start, start}, v;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != sizeof start || memcmp(k.mv_data, erase_owner, S_OWNER) != 0)
                break;
            if (!s_grow((void **) &seqs, &cap, n, sizeof *seqs)) {
                mrc = ENOMEM;
                break;
            }
            seqs[n++] = soffa_bytes_get_u64((uint8_t *) k.mv_data + S_OWNER);
        }
        mdb_cursor_close(cur);
        cur = NULL;
        if (mrc != 0 && mrc != MDB_NOTFOUND) {
            free(seqs);
            goto lmdb_fail;
        }
        mrc = 0;
        for (size_t i = 0; i < n && mrc == 0; i++) {
            bool taken;
            mrc = s_take(self, txn, &d, seqs[i], o, &taken);
            rep->records += taken;
        }
        free(seqs);
        if (mrc != 0)
            goto lmdb_fail;
        if (rep->records == 0) {
            rc = SOFFA_ERR_NOT_FOUND;
            goto fail;
        }
        s_tombstone(self, erase_owner, tomb);
        memcpy(rep->tombstone, tomb, 16);
    } else {
        if ((mrc = mdb_cursor_open(txn, self->due, &cur)) != 0)
            goto lmdb_fail;
        MDB_val k, v;
        while (rep->records < S_DISPOSE_MAX && (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
            if (k.mv_size != 16 || (int64_t) soffa_bytes_get_u64(k.mv_data) > o->now_us)
                break;
            uint64_t seq = soffa_bytes_get_u64((uint8_t *) k.mv_data + 8);
            if ((mrc = mdb_cursor_del(cur, 0)) != 0)
                break;
            bool taken;
            if ((mrc = s_take(self, txn, &d, seq, o, &taken)) != 0)
                break;
            rep->records += taken;
        }
        mdb_cursor_close(cur);
        cur = NULL;
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            goto lmdb_fail;
        mrc = 0;
    }
    if ((mrc = s_tombs_expire(self, txn, o->now_us, o->tomb_keep_us, &rep->tombs_expired)) != 0)
        goto lmdb_fail;
    if (rep->records == 0) {
        /* Nothing to destroy: schedule entries of records gone before (and
         * expired tombstones) are all that changes. */
        mrc = mdb_txn_commit(txn);
        txn = NULL;
        if (mrc != 0)
            goto lmdb_fail;
        return SOFFA_OK;
    }
    for (size_t i = 0; i < d.n_o; i++)
        if ((mrc = s_owner_settle(self, txn, d.owners[i], rep)) != 0)
            goto lmdb_fail;

    /* The next epoch key goes into the free slot of DIR/keys before the
     * store names it; the rotation wraps everything left under it. */
    if ((rc = soffa_seal_keys_read(self->dir, &kf)) != SOFFA_OK)
        goto fail;
    for (int sl = 0; sl < 2; sl++)
        if (kf.epoch[sl] == self->epoch && !sodium_memcmp(kf.id[sl], self->master.id, SOFFA_SEAL_ID))
            cur_slot = sl;
    sodium_memzero(&kf, sizeof kf);
    if (cur_slot < 0) {
        rc = SOFFA_ERR_STORE_CORRUPT;
        soffa_error("store %s: the keys file does not hold the epoch in use", self->dir);
        goto fail;
    }
    soffa_seal_key_new(next);
    if ((rc = soffa_seal_keys_put(self->dir, 1 - cur_slot, self->epoch + 1, next, &self->master)) != SOFFA_OK)
        goto fail;
    slot_written = true;
    if ((mrc = s_rotate(self, txn, next, self->epoch + 1)) != 0)
        goto lmdb_fail;
    if ((mrc = s_notices(self, txn, &d, o, &t, o->erase_subject ? tomb : NULL, rep)) != 0)
        goto lmdb_fail;
    if ((mrc = s_tombs_put(self, txn, &d)) != 0 || (mrc = s_tentative_put(self, txn, &t)) != 0)
        goto lmdb_fail;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != 0)
        goto lmdb_fail;
    /* Committed: the store names the new epoch. The old epoch key goes
     * (if this fails, the next open erases it). */
    s_tentative_commit(self, &t);
    memcpy(self->epoch_key, next, sizeof next);
    self->epoch++;
    if (soffa_seal_keys_put(self->dir, cur_slot, 0, NULL, NULL) != SOFFA_OK)
        soffa_warn("store %s: the old epoch key could not be erased now; it is at the next start", self->dir);
    sodium_memzero(next, sizeof next);
    s_dispose_free(&d);
    return SOFFA_OK;

lmdb_fail:
    rc = s_write_err(self, mrc == EBADMSG ? MDB_CORRUPTED : mrc);
    soffa_error("store %s: disposal failed: %s (%d): %s", self->dir, mrc > 0 ? strerror(mrc) : mdb_strerror(mrc), mrc,
                soffa_strerror(rc));
fail:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (slot_written)
        soffa_seal_keys_put(self->dir, 1 - cur_slot, 0, NULL, NULL);
    sodium_memzero(next, sizeof next);
    s_dispose_free(&d);
    /* Nothing of the run is in the store. */
    memset(rep, 0, sizeof *rep);
    return rc;
}

soffa_err_t
soffa_store_tomb_scan(soffa_store_t *self, const char *id, int (*fn)(void *ctx, uint64_t seq), void *ctx)
{
    if (!id || !fn)
        return SOFFA_ERR_INVALID_ARG;
    if (!self->keys)
        return SOFFA_ERR_NOT_FOUND;
    uint8_t owner[S_OWNER] = {'S'}, prefix[16];
    soffa_store_subject_key(self, id, owner + 1);
    s_tombstone(self, owner, prefix);
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->tomb, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k = {16, prefix}, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 24 || memcmp(k.mv_data, prefix, 16) != 0)
            break;
        if (fn(ctx, soffa_bytes_get_u64((uint8_t *) k.mv_data + 16)))
            break;
    }
    return s_read_end(txn, cur, SOFFA_OK, mrc);
}

int64_t
soffa_store_next_due(soffa_store_t *self)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    if (s_read_cursor(self, self->due, &txn, &cur) != 0)
        return 0;
    MDB_val k, v;
    int64_t due = 0;
    if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size == 16)
        due = (int64_t) soffa_bytes_get_u64(k.mv_data);
    s_read_end(txn, cur, SOFFA_OK, 0);
    return due;
}

soffa_err_t
soffa_store_due_scan(soffa_store_t *self, int64_t now_us, int (*fn)(void *, uint64_t, uint8_t), void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int mrc = s_read_cursor(self, self->due, &txn, &cur);
    if (mrc != 0)
        return soffa_store_err(mrc);
    MDB_val k, v;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16 || (int64_t) soffa_bytes_get_u64(k.mv_data) > now_us)
            break;
        MDB_val rk = {8, (uint8_t *) k.mv_data + 8}, rv;
        if (mdb_get(txn, self->rkey, &rk, &rv) != 0)
            continue;   /* gone already */
        if (fn(ctx, soffa_bytes_get_u64((uint8_t *) k.mv_data + 8), v.mv_size ? ((uint8_t *) v.mv_data)[0] : 0))
            break;
    }
    return s_read_end(txn, cur, SOFFA_OK, mrc);
}
