/*  soffa_store: the durable, hash-chained log in LMDB.
 *
 *  One LMDB environment in a directory (created owner-only) holds:
 *    log      seq (u64 big-endian) -> hash(32) || tag(1) || encoded envelope
 *             (messages and access records with their body sealed under the
 *             record's key: see soffa_seal)
 *    mailbox  mailbox NUL seq      -> ordinal   (per-mailbox index; the record's place in
 *             its mailbox, 1 for the first, so counts are one seek away)
 *    subject  bucket(4) subject_key(16) seq -> "" (per-subject index; keyed hash, never the
 *             number; bucket = seq / 256, so that writes stay in the newest pages)
 *    dedup    msg_id sender        -> seq       (idempotent publish)
 *    cursor   consumer name        -> seq       (durable consumer cursors)
 *    ref      caller's key         -> seq       (ids a record can be found by)
 *    state    caller's key         -> value     (the broker's state derived from the
 *             records: answers awaited, protected subjects, ...; changed
 *             in the same transaction as the record that changes it)
 *    okey     owner(17)            -> the owner's key, wrapped by the epoch key
 *             (owner: 'S' || keyed hash of a young person, or 'D' || day for
 *             records about nobody)
 *    rkey     seq                  -> owner(17) || record key wrapped by the owner key
 *    own      owner(17) || seq     -> ""        (an owner's records)
 *    meta     "version", "head"    -> store version; last seq, hash and time;
 *             "epoch", "k:index"   -> the epoch in use; the subject-index
 *             secret wrapped by the epoch key
 *  The epoch key lives in DIR/keys, wrapped by the master key, which is
 *  never in DIR (soffa_seal). The subject index key is BLAKE2b keyed with
 *  the subject-index secret.
 *
 *  Durability (ACID, D included): the environment is opened without
 *  MDB_NOSYNC, MDB_NOMETASYNC or MDB_MAPASYNC, so soffa_store_append returns
 *  SOFFA_OK only after the transaction holding the whole batch has been
 *  flushed to disk. A batch is atomic: when any put fails (a full map, say)
 *  the transaction is aborted and nothing of the batch is visible.
 *  The caller acknowledges nothing before append returned SOFFA_OK.
 *
 *  One process writes a store; readers may be other processes. The handle is
 *  not shared between threads.
 */
#ifndef SOFFA_STORE_H
#define SOFFA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_seal.h"
#include "soffa_wire.h"

typedef struct soffa_store soffa_store_t;

typedef struct {
    const char *path;      /* directory; created 0700 when missing (unless read_only) */
    size_t map_size;       /* bytes; 0 = 1 GiB */
    bool read_only;        /* open an existing store (or a copy of one) without writing */
    const soffa_seal_master_t *master; /* the master key: required to write; without it a
                                        * read-only open sees envelopes, never content */
    char *why;             /* optional: what was wrong (a refused master key) */
    size_t whylen;
} soffa_store_opts_t;

#define SOFFA_STORE_REF_MAX 40   /* longest reference key */
#define SOFFA_STORE_REFS 3       /* references per record */

/*  A key a record can be found by later (a referral id, say). A shared key
 *  (many records under one prefix, found with soffa_store_ref_scan) gets the
 *  record's sequence appended to make it unique. */
typedef struct {
    uint8_t key[SOFFA_STORE_REF_MAX];
    size_t len;
    bool shared;
} soffa_store_ref_t;

#define SOFFA_STORE_STATE_KEY 48  /* longest state key */
#define SOFFA_STORE_STATE_VAL 96  /* longest state value (before an appended seq) */
#define SOFFA_STORE_STATE_OPS 8   /* state operations per record */

/*  A change of the derived state, committed with its record: put key ->
 *  val (with the record's seq appended when with_seq), or delete key. */
typedef struct {
    uint8_t key[SOFFA_STORE_STATE_KEY];
    size_t klen;
    uint8_t val[SOFFA_STORE_STATE_VAL];
    size_t vlen;
    bool with_seq;
    bool del;
} soffa_store_state_op_t;

#define SOFFA_STORE_CLASSES 8    /* retention classes the schedule knows (soffa_retention_class_t) */

/*  When a record runs out (gallring; the rules are soffa_retention's, the
 *  schedule the store's). */
typedef struct {
    uint8_t retention_class;      /* 0: kept */
    int64_t due_us;               /* when it runs out (Unix µs; 0: never) */
    bool reschedule;              /* a case's closure: the subject's earlier records of each class
                                   * with reschedule_due[class] > 0 also run out then */
    int64_t reschedule_due[SOFFA_STORE_CLASSES];
    bool reopen;                  /* the case goes on (a reopening, any new record of the
                                   * subject): what the last closure brought forward is
                                   * taken back, each record runs out by its own due_us */
} soffa_store_sched_t;

/*  Gives the schedule of a record from its (plaintext) envelope bytes: for
 *  the records an upgrade seals, which were stored before there was one. */
typedef void (*soffa_store_sched_fn)(void *ctx, const uint8_t *env, size_t len, soffa_store_sched_t *out);

/*  One envelope to append. In: env (every field but seq, prev_hash and
 *  subject_key), subject_id (canonical id or NULL; hashed, never stored),
 *  refs (keys to find the record by), seq_from (0; for a restore record
 *  only, RK_RESTORE: the sequence it takes when that is past the next one,
 *  the jump a restored store makes).
 *  Out: seq, and duplicate when (sender, message id) was stored before, in
 *  which case seq is the original and nothing new is stored. */
typedef struct {
    soffa_envelope_t *env;
    const char *subject_id;
    soffa_store_ref_t refs[SOFFA_STORE_REFS];
    size_t n_refs;
    soffa_store_state_op_t state[SOFFA_STORE_STATE_OPS];   /* applied in order, with the record */
    size_t n_state;
    soffa_store_sched_t sched;    /* when it runs out (sealed records only) */
    uint64_t seq_from;
    const char *subject_alias;    /* an identity number this record's subject replaces (or NULL): every
                                   * record indexed under it is indexed under the subject too */
    uint64_t seq;
    bool duplicate;
} soffa_store_item_t;

/*  One stored record as a visitor sees it; the bytes are valid only during
 *  the call. tag is env->msg_type (or 0x80 + kind for non-messages). key
 *  opens a sealed body (soffa_envelope_open); it is there when the store
 *  was opened with the master key and the record has not been disposed of. */
typedef struct {
    uint64_t seq;
    const uint8_t *env;
    size_t len;
    const uint8_t *hash;   /* SOFFA_HASH_LEN bytes */
    uint8_t tag;
    bool has_key;
    uint8_t key[SOFFA_RECORD_KEY_LEN];
} soffa_store_rec_t;

/*  Visitor for scans. Return 0 to go on, anything else to stop. */
typedef int (*soffa_store_visit_fn)(void *ctx, const soffa_store_rec_t *rec);

/*  One consumer cursor to write. */
typedef struct soffa_store_cursor {
    const char *consumer;
    uint64_t seq;
} soffa_store_cursor_t;

/*  What verify found. */
typedef struct {
    uint64_t records;      /* records checked */
    uint64_t checkpoints;  /* signed checkpoints checked */
    uint64_t last_signed;  /* highest sequence a valid checkpoint vouches for */
    uint64_t unsigned_tail; /* records after the last checkpoint (all of them when there is none) */
    uint64_t unhashed;     /* legacy records whose content was not checked (no master key) */
    uint64_t restores;     /* restore records: each a jump in the numbering, explained */
    struct {
        uint64_t from, to; /* the numbers a restore skipped: from < seq < to were never stored here */
    } gaps[8];             /* the first 8 of them */
    uint64_t bad_seq;      /* first sequence found wrong (0 when intact) */
    char reason[160];      /* what is wrong there */
} soffa_store_verify_t;

/*  Master-key rotation: wraps the store's epoch key under m instead of the
 *  key it was opened with. The free slot of DIR/keys gets the epoch key
 *  under m (flushed), then the old slot is zeroed (flushed): the old master
 *  key opens nothing of this data directory afterwards (a backup made
 *  earlier still needs it). A crash between the two leaves both wrappings;
 *  the store then opens with either key, and the next open keeps the slot of
 *  the key it was opened with. The store must be open for writing and
 *  nobody else's. Returns SOFFA_OK, SOFFA_ERR_MASTER_KEY (no keys loaded or
 *  read-only), SOFFA_ERR_EXISTS (m is the key in use),
 *  SOFFA_ERR_STORE_CORRUPT (no slot holds the epoch in use) or an I/O error. */
soffa_err_t soffa_store_master_rotate(soffa_store_t *self, const soffa_seal_master_t *m);

/*  Opens (creating if needed) the store at opts->path. A master key that is
 *  not the store's is refused before anything is written (opts->why says
 *  which key the store was made with).
 *  Returns SOFFA_OK, SOFFA_ERR_PERMISSION, SOFFA_ERR_STORE_IO,
 *  SOFFA_ERR_STORE_CORRUPT, SOFFA_ERR_VERSION, SOFFA_ERR_MASTER_KEY (no master
 *  key to write with, or the wrong one) or SOFFA_ERR_NOT_FOUND (read-only
 *  open of a missing store). */
soffa_err_t soffa_store_open(soffa_store_t **out, const soffa_store_opts_t *opts);

/*  Closes *self_p and sets it to NULL; NULL-safe, idempotent. */
void soffa_store_close(soffa_store_t **self_p);

/*  Appends n items in one durable transaction (group commit), filling in
 *  seq, prev_hash and subject_key of each envelope, and each item's seq and
 *  duplicate flag. Nothing is visible, and no seq is valid, unless it returns
 *  SOFFA_OK. Returns SOFFA_OK, SOFFA_ERR_STORE_FULL (raise [store] map_size),
 *  SOFFA_ERR_STORE_IO, SOFFA_ERR_TOO_LARGE, SOFFA_ERR_INVALID_ARG. */
soffa_err_t soffa_store_append(soffa_store_t *self, soffa_store_item_t *items, size_t n);

/*  soffa_store_append, and in the same transaction n_cur consumer cursors
 *  (as soffa_store_cursor_set_many): what the broker commits together. */
soffa_err_t soffa_store_append_cursors(soffa_store_t *self, soffa_store_item_t *items, size_t n,
                                       const soffa_store_cursor_t *cur, size_t n_cur);

/*  Last sequence, its hash (may be NULL) and receive time (may be NULL);
 *  seq 0 for an empty store. */
void soffa_store_head(const soffa_store_t *self, uint64_t *seq, uint8_t hash[SOFFA_HASH_LEN],
                      int64_t *time_us);

/*  Calls fn for one record. Returns SOFFA_OK or SOFFA_ERR_NOT_FOUND. */
soffa_err_t soffa_store_get(soffa_store_t *self, uint64_t seq, soffa_store_visit_fn fn, void *ctx);

/*  Calls fn for each record with seq >= from_seq, in order. */
soffa_err_t soffa_store_scan(soffa_store_t *self, uint64_t from_seq, soffa_store_visit_fn fn,
                             void *ctx);

/*  Calls fn for each record of `mailbox` with seq > after_seq, in order. */
soffa_err_t soffa_store_scan_mailbox(soffa_store_t *self, const char *mailbox, uint64_t after_seq,
                                     soffa_store_visit_fn fn, void *ctx);

/*  Calls fn for each record about subject `id` (canonical) with seq >
 *  after_seq, in order. */
soffa_err_t soffa_store_scan_subject(soffa_store_t *self, const char *id, uint64_t after_seq,
                                     soffa_store_visit_fn fn, void *ctx);

/*  The sequence stored under reference key (SOFFA_ERR_NOT_FOUND if none). */
soffa_err_t soffa_store_ref_get(soffa_store_t *self, const void *key, size_t len, uint64_t *seq);

/*  Calls fn(ctx, seq) for every reference key starting with prefix, in key
 *  order; fn returns non-zero to stop. */
soffa_err_t soffa_store_ref_scan(soffa_store_t *self, const void *prefix, size_t plen,
                                 int (*fn)(void *ctx, uint64_t seq), void *ctx);

/*  The original sequence of (sender, message id), or SOFFA_ERR_NOT_FOUND. */
soffa_err_t soffa_store_dedup_get(soffa_store_t *self, const char *sender, const uint8_t msg_id[16],
                                  uint64_t *seq);

/*  The first sequence whose receive time is >= t_us (head + 1 when none). */
soffa_err_t soffa_store_seq_at_time(soffa_store_t *self, int64_t t_us, uint64_t *seq);

/*  Number of records in `mailbox` with seq > after_seq (capped at `cap`, 0 = no cap). */
soffa_err_t soffa_store_count_mailbox(soffa_store_t *self, const char *mailbox, uint64_t after_seq,
                                      uint64_t cap, uint64_t *count);

/*  Room left: bytes of the map not yet used (a lower bound: freed pages
 *  LMDB can reuse are not counted) and bytes free on the disk holding the
 *  store. Either may be NULL. */
void soffa_store_room(soffa_store_t *self, uint64_t *map_free, uint64_t *disk_free);

/*  The map's size and the bytes of it in use (pages up to the last one
 *  written; freed pages LMDB will reuse count as used). */
void soffa_store_usage(soffa_store_t *self, uint64_t *map_size, uint64_t *used);

/*  Microseconds the durable part of the last successful append took:
 *  mdb_txn_commit, which writes the dirty pages, fdatasyncs them and writes
 *  the meta page through its O_DSYNC descriptor. Read it from the thread
 *  that appends. */
int64_t soffa_store_last_sync_us(const soffa_store_t *self);

/*  How many records of `mailbox` have a sequence <= seq (one seek). */
soffa_err_t soffa_store_mailbox_rank(soffa_store_t *self, const char *mailbox, uint64_t seq, uint64_t *count);

/*  The derived state under key: copies at most cap bytes into val and sets
 *  *vlen to the value's length. Returns SOFFA_OK or SOFFA_ERR_NOT_FOUND. */
soffa_err_t soffa_store_state_get(soffa_store_t *self, const void *key, size_t klen, void *val, size_t cap,
                                  size_t *vlen);

/*  Calls fn for every state entry whose key starts with prefix, in key
 *  order; fn returns non-zero to stop. */
soffa_err_t soffa_store_state_scan(soffa_store_t *self, const void *prefix, size_t plen,
                                   int (*fn)(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                                             size_t vlen),
                                   void *ctx);

/*  Applies n state operations in one durable transaction of their own
 *  (rebuilding derived state; with_seq is not allowed here). */
soffa_err_t soffa_store_state_write(soffa_store_t *self, const soffa_store_state_op_t *ops, size_t n);

/*  Converts the store in directory `path` (not open elsewhere) from an
 *  earlier format to the current one, in one transaction: nothing changes
 *  if it fails. `from` gets the version found ("2"); a current store is left
 *  alone. 2 -> 3 adds mailbox ordinals and the state table (empty; the
 *  caller rebuilds it with soffa_store_state_write). 3 -> 4 seals every
 *  record that carries personal data as a legacy record (its whole envelope
 *  under a key of its own, its hash in the chain unchanged), moves the
 *  subject-index secret from DIR/subject.key into the store under master,
 *  and deletes that file. sched (may be NULL: nothing is scheduled) gives
 *  each sealed record its schedule. Returns SOFFA_OK, SOFFA_ERR_VERSION (a format it
 *  cannot convert), SOFFA_ERR_MASTER_KEY (no master key) or a store error. */
soffa_err_t soffa_store_upgrade(const char *path, size_t map_size, const soffa_seal_master_t *master,
                                soffa_store_sched_fn sched, void *sched_ctx, char from[8]);

/*  Calls fn(ctx, mailbox, count, last_seq) once per mailbox that holds
 *  records, in name order (from totals kept with every commit; no scan). */
soffa_err_t soffa_store_mailboxes(soffa_store_t *self,
                                  int (*fn)(void *ctx, const char *mailbox, uint64_t count,
                                            uint64_t last_seq),
                                  void *ctx);

/*  Indexes every record indexed under identity number old_id under new_id
 *  too, in a durable transaction of its own (what an appended item with
 *  subject_alias does with its record): the history of the new number then
 *  holds what came before. Returns SOFFA_OK or a store error. */
soffa_err_t soffa_store_subject_link(soffa_store_t *self, const char *old_id, const char *new_id);

/*  The keyed hash soffa uses for subject `id` in place of the number. */
void soffa_store_subject_key(const soffa_store_t *self, const char *id,
                             uint8_t out[SOFFA_SUBJECT_KEY_LEN]);

/*  Durable consumer cursor: the last sequence the consumer acknowledged
 *  (0 when it never did). set commits before returning. */
soffa_err_t soffa_store_cursor_get(soffa_store_t *self, const char *consumer, uint64_t *seq);
soffa_err_t soffa_store_cursor_set(soffa_store_t *self, const char *consumer, uint64_t seq);

/*  Writes n cursors in one transaction. */
soffa_err_t soffa_store_cursor_set_many(soffa_store_t *self, const soffa_store_cursor_t *c, size_t n);

/*  Walks the whole chain: every record's hash, decoding, sequence and link
 *  to its predecessor, and the head. A legacy record (stored before
 *  encryption) is hashed only when the store was opened with the master
 *  key: without it only its place and links are checked. Every checkpoint must vouch for the
 *  record just before it and carry a valid signature: by trusted_key
 *  (32 bytes) when given, else by one and the same key throughout.
 *  Returns SOFFA_OK when intact, or SOFFA_ERR_CHAIN_BROKEN with
 *  rep->bad_seq and rep->reason. */
soffa_err_t soffa_store_verify(soffa_store_t *self, const uint8_t *trusted_key, soffa_store_verify_t *rep);

/*  What a backup wrote and what verifying it found. */
typedef struct {
    uint64_t bytes;                /* size of the copy's data.mdb */
    uint64_t head_seq;             /* the last record in the copy */
    soffa_store_verify_t verify;   /* soffa_store_verify on the copy */
} soffa_store_backup_t;

/*  Writes a consistent, compacted copy of the open store self into the new
 *  directory dest, while the store's writer (the broker) goes on: one read
 *  transaction, LMDB's mdb_env_copyfd2 with MDB_CP_COMPACT, so the copy is
 *  the store as of one commit. Beside it goes the one other file a restore
 *  needs, keys (the epoch key of that commit, wrapped by the master key);
 *  nothing else travels (never the master key, never the checkpoint
 *  signing key). dest must not exist; it is made 0700
 *  and its files 0600 whatever the umask, each fsynced. The copy is then
 *  marked (soffa_store_backup_mark: a broker that opens it knows it is a
 *  restore and numbers on past anything the lost broker gave out), then
 *  opened read-only and verified (trusted_key as for soffa_store_verify);
 *  rep gets the result. On any failure nothing is left at dest.
 *  Returns SOFFA_OK, SOFFA_ERR_EXISTS (dest exists), SOFFA_ERR_NOT_FOUND
 *  (dest's parent is missing, or self has no keys file to go with it),
 *  SOFFA_ERR_PERMISSION, SOFFA_ERR_DISK_FULL, SOFFA_ERR_STORE_IO, or
 *  SOFFA_ERR_CHAIN_BROKEN (the copy does not verify: rep->verify says where;
 *  the store itself should be checked with soffa verify). */
soffa_err_t soffa_store_backup(soffa_store_t *self, const char *dest, const uint8_t *trusted_key,
                               soffa_store_backup_t *rep);

/* ---- Gallring and erasure ---- */

/*  What a disposal run is told. */
typedef struct {
    int64_t now_us;                   /* records due at or before this go */
    const char *erase_subject;        /* erasure instead: every record of this identity (canonical) */
    uint32_t reason;                  /* the erasure's reason code */
    const char *rule_text[SOFFA_STORE_CLASSES]; /* per class, as the disposal records name the rule */
    const char *sender;               /* the broker's name: the sender of the disposal records */
    /* The mailbox an agent reads ("" when none): where the sender of
     * disposed records hears of them, for the copies it kept. */
    const char *(*inbox_of)(void *ctx, const char *agent);
    void *ctx;
    int64_t tomb_keep_us;             /* tombstones older than this go (0: kept) */
} soffa_store_dispose_opts_t;

/*  What a disposal run did. */
typedef struct {
    uint64_t records;                 /* records disposed of */
    uint64_t subjects;                /* young people of whom nothing is left */
    uint64_t notices;                 /* disposal records written */
    uint64_t first_seq, last_seq;     /* ... their sequence numbers */
    uint64_t tombs_expired;
    uint8_t tombstone[16];            /* erasure: the tombstone written */
} soffa_store_dispose_report_t;

/*  Disposes, in one durable transaction: of every record whose schedule
 *  says it has run out by o->now_us, or (o->erase_subject) of every record
 *  of one young person. Each record's key is destroyed (the record stays,
 *  unreadable) with its index entries; a young person with nothing left
 *  loses their owner key, their index entries and remembered state, and
 *  gets a tombstone; one who lost some records gets a new owner key; every
 *  remaining key is wrapped anew under a new epoch key, and the old one is
 *  erased from DIR/keys after the commit. A disposal record goes into the
 *  chain for each mailbox and class (and one to the inbox of each sender of
 *  disposed records). A crash leaves the state before or after; the next
 *  open finishes the keys file. Nothing due: SOFFA_OK, nothing written.
 *  Returns SOFFA_OK, SOFFA_ERR_MASTER_KEY (opened without it),
 *  SOFFA_ERR_PERMISSION (read-only) or a store error. */
soffa_err_t soffa_store_dispose(soffa_store_t *self, const soffa_store_dispose_opts_t *o,
                                soffa_store_dispose_report_t *rep);

/*  The disposal records about the young person `id` (through the
 *  tombstones): fn(ctx, seq) for each, oldest first; fn returns non-zero to
 *  stop. SOFFA_ERR_NOT_FOUND without the master key. */
soffa_err_t soffa_store_tomb_scan(soffa_store_t *self, const char *id, int (*fn)(void *ctx, uint64_t seq), void *ctx);

/*  The earliest time a record is due (0 when nothing is scheduled). */
int64_t soffa_store_next_due(soffa_store_t *self);

/*  Calls fn(ctx, seq, class) for each record due by now_us that still has
 *  its key (what the next disposal run takes), in due order; fn returns
 *  non-zero to stop. Nothing is changed. */
soffa_err_t soffa_store_due_scan(soffa_store_t *self, int64_t now_us, int (*fn)(void *ctx, uint64_t seq, uint8_t cls),
                                 void *ctx);
/*  The mark soffa_store_backup leaves in every copy it makes: true, with
 *  the time the copy was taken, when this store was copied by a backup and
 *  no restore record has been written since (the broker writes one, and
 *  clears the mark with it, when it opens such a store). */
bool soffa_store_backup_mark(soffa_store_t *self, int64_t *taken_at_us);

/*  The state key of that mark, for the state operation that clears it. */
#define SOFFA_STORE_BACKUP_MARK "backup-copy"

/*  Translates an LMDB (or errno) return code; exported for the tests. */
soffa_err_t soffa_store_err(int mdb_rc);

#endif
