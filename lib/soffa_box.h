/*  soffa_box: an agent's durable outbox and inbox, in its own LMDB file.
 *
 *    outbox  local id (u64)      -> message id(16) || encoded message
 *    sent    message id          -> result (time, seq, code, mailbox, reason)
 *    inbox   seq (u64)           -> state, attempts, next try, received || envelope
 *    imsg    message id          -> seq            (find a delivered message)
 *    await   awaited id          -> what was sent and whether it was answered
 *    kept    message id          -> encoded message: what this site sent, kept
 *                                   after the outbox lets go of it (threads)
 *    access  seq (u64)           -> one view in the web inbox: who, when, what,
 *                                   which youths (keyed hashes, never numbers)
 *    keys    record id           -> the record's key, wrapped by the epoch key
 *    due     time || record id   -> class: when a copy runs out (gallring)
 *    meta    "last:" mailbox     -> last stored seq; "next" -> next local id;
 *            "access-next"       -> next access seq; "format", "epoch"
 *
 *  Encryption at rest (format 2; README, "Where personal data lives"): every
 *  value that holds personal data (outbox, kept and sent messages, inbox
 *  envelopes of messages and access records, the access log, the tables of
 *  other modules) is sealed under a record key of its own: one per message
 *  this site sent ('M' || message id: its outbox entry, kept copy and
 *  outcome), one per delivery ('I' || seq), one per view ('A' || seq), one
 *  per other module's table ('T' || name). Record keys are wrapped by the
 *  epoch key, which DATA_DIR/keys holds wrapped by the agent's master key.
 *  Disposing of a copy deletes its key and entries and wraps every other key
 *  under a new epoch key in the same transaction (LMDB keeps deleted bytes;
 *  what they could open must be gone). Checkpoints and disposal records
 *  delivered are kept in clear, byte for byte (soffa verify --against reads
 *  them without a key). Awaited answers, message-id lookups and meta hold
 *  no personal data and stay in clear.
 *
 *  Every write commits durably before the call returns (no MDB_NOSYNC): a
 *  message handed to the agent is on disk before the command returns, and a
 *  delivery is on disk before the agent acknowledges it to the broker.
 */
#ifndef SOFFA_BOX_H
#define SOFFA_BOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_disposal.h"
#include "soffa_err.h"
#include "soffa_retention.h"
#include "soffa_seal.h"
#include "soffa_wire.h"

typedef struct soffa_box soffa_box_t;

typedef enum {
    SOFFA_IN_NEW = 0,      /* stored; its hook has not succeeded yet */
    SOFFA_IN_DONE = 1,     /* handled (hook succeeded, or no hook) */
    SOFFA_IN_FAILED = 2,   /* hook failed too often: parked until retried */
} soffa_in_state_t;

/*  The outcome of one sent message. code is SOFFA_OK when acknowledged. */
typedef struct {
    int64_t at_us;
    uint64_t seq;
    uint32_t code;
    char mailbox[SOFFA_NAME_MAX];
    char reason[256];
} soffa_box_sent_t;

/*  One inbox record as a visitor sees it (bytes valid during the call). */
typedef struct {
    uint64_t seq;
    soffa_in_state_t state;
    uint32_t attempts;
    int64_t next_try_us;
    int64_t received_us;
    const uint8_t *env;
    size_t len;
} soffa_box_in_t;

/*  One delivery to store. */
typedef struct {
    uint64_t seq;
    const uint8_t *env;
    size_t len;
    const uint8_t *msg_id;   /* 16 bytes, or NULL */
    bool stored;             /* out: false when it was a redelivery */
} soffa_box_delivery_t;

/*  A sent message that expects an answer (a signal its acknowledgement, a
 *  referral its receipt), keyed by the id the answer will name. */
typedef struct {
    uint8_t msg_id[16];
    uint32_t type;           /* soffa_msg_type_t of what was sent */
    int64_t sent_us;
    int64_t answered_us;     /* 0 while unanswered */
} soffa_box_await_t;

/*  Records that the message awaits an answer naming `awaited`. */
soffa_err_t soffa_box_await_put(soffa_box_t *self, const uint8_t awaited[16], const soffa_box_await_t *a);

/*  Marks the answer to `awaited` (the first answer counts). SOFFA_ERR_NOT_FOUND
 *  when nothing awaits it. */
soffa_err_t soffa_box_await_answer(soffa_box_t *self, const uint8_t awaited[16], int64_t at_us);

/*  Visits every awaiting record; fn returns non-zero to stop. */
soffa_err_t soffa_box_await_scan(soffa_box_t *self, int (*fn)(void *ctx, const uint8_t awaited[16],
                                                              const soffa_box_await_t *a),
                                 void *ctx);

/* ---- What this site sent, kept for threads ---- */

/*  Visits the message this site sent as msg_id (bytes valid during the
 *  call). SOFFA_ERR_NOT_FOUND when there is none. */
soffa_err_t soffa_box_kept_get(soffa_box_t *self, const uint8_t msg_id[16],
                               void (*fn)(void *ctx, const uint8_t *msg, size_t len), void *ctx);

/*  Visits every kept message, oldest message id (UUIDv7: oldest) first; fn
 *  returns non-zero to stop. */
soffa_err_t soffa_box_kept_scan(soffa_box_t *self,
                                int (*fn)(void *ctx, const uint8_t msg_id[16], const uint8_t *msg, size_t len),
                                void *ctx);

/* ---- The site's access log (views in the web inbox) ---- */

#define SOFFA_BOX_ACCESS_KEYS_MAX 1000   /* youths one entry names at most */
#define SOFFA_BOX_KEY_LEN 32             /* keyed hash of an identity */

/*  One view. The youths are keyed hashes (SOFFA_BOX_KEY_LEN bytes each). */
typedef struct {
    uint64_t seq;               /* set by the store */
    int64_t at_us;              /* when */
    char actor[48];             /* the person's pseudonymous actor_ref */
    char what[32];              /* message, inbox, search, access-log, ... */
    uint8_t msg_id[16];         /* the message opened, zero when none */
    uint32_t n_keys;            /* youths shown */
    const uint8_t *keys;        /* n_keys * SOFFA_BOX_KEY_LEN bytes (borrowed) */
} soffa_box_access_t;

/*  Appends one view, durable before it returns; *seq (may be NULL) gets its
 *  number. Returns SOFFA_OK, SOFFA_ERR_TOO_LARGE (too many youths) or a
 *  store error. */
soffa_err_t soffa_box_access_put(soffa_box_t *self, const soffa_box_access_t *a, uint64_t *seq);

/*  Visits views with seq > after, oldest first; fn returns non-zero to stop. */
soffa_err_t soffa_box_access_scan(soffa_box_t *self, uint64_t after,
                                  int (*fn)(void *ctx, const soffa_box_access_t *a), void *ctx);

/*  Opens (creating it) the agent's store in dir, sealed under master. A
 *  store that is not the master key's is refused before anything is
 *  written (why says which key it was made with); a store of format 1
 *  (before encryption) is refused with SOFFA_ERR_VERSION until
 *  soffa_box_upgrade converts it. Without master (NULL) an existing store
 *  opens for reading what is in clear only (the checkpoints soffa verify
 *  --against reads); sealed records are then skipped. why may be NULL.
 *  Returns SOFFA_OK, SOFFA_ERR_MASTER_KEY, SOFFA_ERR_VERSION or a store error. */
soffa_err_t soffa_box_open(soffa_box_t **out, const char *dir, size_t map_size, const soffa_seal_master_t *master,
                           char *why, size_t whylen);
void soffa_box_close(soffa_box_t **self_p);

/*  Converts a store of format 1 (values in clear) in dir (not open
 *  elsewhere) to format 2 under master, after a compacted copy of the old
 *  store into the new directory backup_dir: a new file, swapped in with
 *  one rename. *done is false when it was current already (then nothing is
 *  copied). Returns SOFFA_OK, SOFFA_ERR_CONFIG (no backup_dir),
 *  SOFFA_ERR_EXISTS (backup_dir exists), SOFFA_ERR_MASTER_KEY or a store error. */
soffa_err_t soffa_box_upgrade(const char *dir, size_t map_size, const soffa_seal_master_t *master, const char *backup_dir,
                              bool *done);

/* ---- Gallring of this site's copies ---- */

/*  The rules this store schedules its copies by, and whose copies they are
 *  (the agent's role: the class of what it sends). Until set, nothing is
 *  scheduled. */
void soffa_box_set_retention(soffa_box_t *self, const soffa_retention_t *r, soffa_role_t role);

/*  What a disposal took away. */
typedef struct {
    uint64_t inbox;                  /* deliveries */
    uint64_t sent;                   /* messages this site sent (outbox, kept, outcome) */
    uint64_t views;                  /* entries of the access log */
} soffa_box_disposed_t;

/*  Disposes of every copy whose time is up by now_us, in one transaction
 *  with a new epoch key (see above). Nothing due: nothing written. */
soffa_err_t soffa_box_dispose_due(soffa_box_t *self, int64_t now_us, soffa_box_disposed_t *rep);

/*  Disposes of the copies a disposal record names: deliveries of
 *  `mailbox` by sequence (when the record is about this mailbox) and what
 *  this site sent by message id. soffa_box_inbox_put does this itself for
 *  the disposal records it stores. */
soffa_err_t soffa_box_dispose_notice(soffa_box_t *self, const char *mailbox, const soffa_disposal_t *d,
                                     soffa_box_disposed_t *rep);

/*  Stores an encoded message in the outbox; *local_id orders it. */
soffa_err_t soffa_box_outbox_put(soffa_box_t *self, const uint8_t msg_id[16], const uint8_t *msg, size_t len,
                                 uint64_t *local_id);

/*  Visits outbox entries with local id > after, oldest first; fn returns
 *  non-zero to stop. */
soffa_err_t soffa_box_outbox_scan(soffa_box_t *self, uint64_t after,
                                  int (*fn)(void *ctx, uint64_t local_id, const uint8_t msg_id[16],
                                            const uint8_t *msg, size_t len),
                                  void *ctx);

/*  Removes an outbox entry and records its outcome, in one transaction. */
soffa_err_t soffa_box_outbox_done(soffa_box_t *self, uint64_t local_id, const uint8_t msg_id[16],
                                  const soffa_box_sent_t *result);

/*  Entries waiting in the outbox. */
uint64_t soffa_box_outbox_count(soffa_box_t *self);

/*  The recorded outcome of message msg_id (SOFFA_ERR_NOT_FOUND if none). */
soffa_err_t soffa_box_sent_get(soffa_box_t *self, const uint8_t msg_id[16], soffa_box_sent_t *out);

/*  Stores deliveries of `mailbox` in one transaction, skipping sequences
 *  at or below the last one stored (redeliveries). state is the initial
 *  state of new records. A delivered disposal record is stored and carried
 *  out in the same transaction (see soffa_box_dispose_notice). */
soffa_err_t soffa_box_inbox_put(soffa_box_t *self, const char *mailbox, soffa_box_delivery_t *d, size_t n,
                                soffa_in_state_t state);

/*  The last sequence stored for mailbox (0 when none). */
uint64_t soffa_box_inbox_last(soffa_box_t *self, const char *mailbox);

/*  Visits inbox records with seq > after, in order. */
soffa_err_t soffa_box_inbox_scan(soffa_box_t *self, uint64_t after, int (*fn)(void *ctx, const soffa_box_in_t *in),
                                 void *ctx);

/*  Visits one inbox record. */
soffa_err_t soffa_box_inbox_get(soffa_box_t *self, uint64_t seq, int (*fn)(void *ctx, const soffa_box_in_t *in),
                                void *ctx);

/*  The seq of the delivered message msg_id (SOFFA_ERR_NOT_FOUND if none). */
soffa_err_t soffa_box_inbox_find(soffa_box_t *self, const uint8_t msg_id[16], uint64_t *seq);

/*  Changes the processing state of one inbox record. */
soffa_err_t soffa_box_inbox_set_state(soffa_box_t *self, uint64_t seq, soffa_in_state_t state, uint32_t attempts,
                                      int64_t next_try_us);

/*  Counts of inbox records: all, and by state. */
void soffa_box_inbox_counts(soffa_box_t *self, uint64_t *total, uint64_t *fresh, uint64_t *failed);

/* ---- Tables of other modules, in the same file and the same transactions ----
 *
 * A module that keeps records of its own next to the outbox (the school's
 * change tracking) opens named tables once, then reads and writes them
 * inside soffa_box_write/soffa_box_read, where it can also append to the
 * outbox: what it records and what it hands over commit together or not at
 * all. Keys must never hold an identity number in the clear. */

typedef struct soffa_box_txn soffa_box_txn_t;

/*  Opens (creating it) the table `name` ("school-pupil"); at most 8 such
 *  tables. *table identifies it in the calls below. */
soffa_err_t soffa_box_table(soffa_box_t *self, const char *name, uint32_t *table);

/*  Runs fn in one write transaction, committed durably when fn returns
 *  SOFFA_OK and aborted otherwise; returns fn's result or the commit's. */
soffa_err_t soffa_box_write(soffa_box_t *self, soffa_err_t (*fn)(void *ctx, soffa_box_txn_t *t), void *ctx);

/*  Runs fn in one read-only transaction; returns fn's result. */
soffa_err_t soffa_box_read(soffa_box_t *self, soffa_err_t (*fn)(void *ctx, soffa_box_txn_t *t), void *ctx);

/*  Looks up key; *val (valid until the transaction ends) and *vlen are set.
 *  Returns SOFFA_OK or SOFFA_ERR_NOT_FOUND. */
soffa_err_t soffa_box_txn_get(soffa_box_txn_t *t, uint32_t table, const void *key, size_t klen, const void **val,
                              size_t *vlen);

/*  Writes key -> val (write transactions only). */
soffa_err_t soffa_box_txn_put(soffa_box_txn_t *t, uint32_t table, const void *key, size_t klen, const void *val,
                              size_t vlen);

/*  Visits the records of a table in key order; fn returns non-zero to stop. */
soffa_err_t soffa_box_txn_scan(soffa_box_txn_t *t, uint32_t table,
                               int (*fn)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen),
                               void *ctx);

/*  Appends an encoded message to the outbox inside the transaction, as
 *  soffa_box_outbox_put does. */
soffa_err_t soffa_box_txn_outbox_put(soffa_box_txn_t *t, const uint8_t msg_id[16], const uint8_t *msg, size_t len,
                                     uint64_t *local_id);

#endif
