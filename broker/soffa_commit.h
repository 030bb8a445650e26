/*  soffa_commit: the commit pipeline: batches, the writer thread, checkpoints.
 *
 *  Records read in one loop turn are committed in one LMDB transaction by the
 *  writer thread while the loop reads the next batch. Nothing is answered
 *  before its commit returned. Signed checkpoints go into the same stream.
 */
#ifndef SOFFA_COMMIT_H
#define SOFFA_COMMIT_H

#include "soffa_broker_int.h"

/* Queues a cursor for the next commit (the writer thread owns the store's
 * write side; nothing is written from here). */
void soffa_commit_cursor_queue(soffa_broker_t *self, const char *key, uint64_t seq);

/* Drops the records read but not handed to the writer. */
void soffa_commit_pending_clear(soffa_broker_t *self);

/* The writer thread: commits the flight batch when asked, then tells the
 * main thread through done_fd. It touches nothing but the flight items and
 * the store's write side. */
/* Picks up where the open store stands (the records a checkpoint is due for,
 * the room left) and starts the writer thread. */
soffa_err_t soffa_commit_start(soffa_broker_t *self);

/* Lets the writer finish its job, ends it, frees what is queued. */
void soffa_commit_stop(soffa_broker_t *self);

/* Waits for the batch in flight, if any, and answers it. */
void soffa_commit_flight_wait(soffa_broker_t *self);

/*  The room left in the store and on its disk, as they stand now, less
 *  what the publishes waiting for the next commit may take. Every commit
 *  refreshes it; a publish refused for lack of room does too (at most every
 *  SOFFA_ROOM_RECHECK_US), so that room made while nothing commits (a disk
 *  grown, files removed) is seen. */
void soffa_commit_room_refresh(soffa_broker_t *self);
#define SOFFA_ROOM_RECHECK_US 500000

/* Hands the pending records to the writer when it is free. */
void soffa_commit_submit(soffa_broker_t *self);

/* Makes everything read so far durable and answered before returning: the
 * batch in flight, then the pending one. Decisions that look records up
 * call this first (they must see everything acknowledged). */
void soffa_commit(soffa_broker_t *self);

/* A fresh, zeroed slot in the pending batch (committing first when the
 * batch is full). The caller fills it; the batch frees its body. */
soffa_pending_t *soffa_commit_pending_add(soffa_broker_t *self);

/* Fills p with a record the broker writes as itself. */
void soffa_commit_broker_record(soffa_broker_t *self, soffa_pending_t *p, soffa_pending_kind_t kind, soffa_record_kind_t rk, uint8_t *body, size_t len, const char *mailbox);

/* Loads the checkpoint signing key ([audit] signing_key), or makes it (and
 * its public half, KEY.pub) on first start. It never lives in the data
 * directory: whoever holds a copy of that (a backup) could otherwise
 * rewrite the history and sign it again. */
soffa_err_t soffa_commit_signing_key(soffa_broker_t *self, const char *data, char *why, size_t whylen);

/* Commits a signed checkpoint of everything so far, now (on stop). */
void soffa_commit_checkpoint(soffa_broker_t *self);

#endif
