/*  soffa_dbatch: the records of one DELIVER-BATCH, gathered while a scan runs.
 *
 *  Deliveries and replay records leave in batches: records are copied in as
 *  the store's scan visits them (its bytes live only during the visit) and
 *  go out in one frame, so that one CurveZMQ box and one frame carry many.
 *  A session of protocol 1 gets batches of one, sent as DELIVER. A batch
 *  holds at most SOFFA_BATCH_MAX records and stops taking more at
 *  SOFFA_DBATCH_BYTES of envelopes, so a frame stays well under the limit.
 *  The broker keeps one, used by one pump at a time on its loop.
 */
#ifndef SOFFA_DBATCH_H
#define SOFFA_DBATCH_H

#include "soffa_broker_int.h"

#define SOFFA_DBATCH_BYTES (64 * 1024)

typedef struct soffa_dbatch {
    soffa_frame_item_t items[SOFFA_BATCH_MAX];   /* data as offsets into buf until sent */
    size_t n;                         /* records gathered */
    size_t max;                       /* records one frame may carry for this reader */
    uint8_t *buf;                     /* the envelopes, one after the other */
    size_t len, cap;
} soffa_dbatch_t;

/* Empties b for a reader that takes max records a frame (1 for protocol 1). */
void soffa_dbatch_begin(soffa_dbatch_t *b, size_t max);

/* Copies a record in: its envelope bytes as they are delivered (data, len)
 * and, for a sealed body, its record key (NULL: none). False without
 * memory (nothing is added). */
bool soffa_dbatch_add(soffa_dbatch_t *b, uint64_t seq, const uint8_t hash[SOFFA_HASH_LEN], const uint8_t *data,
                      size_t len, const uint8_t *record_key);

/* Whether b takes no more records. */
bool soffa_dbatch_full(const soffa_dbatch_t *b);

/* Sends what b holds to rid in one frame: DELIVER for one record,
 * DELIVER-BATCH for more; mailbox names the subscription ("" for a
 * replay), tag the replay (0 for a subscription). False when the peer is
 * gone or its queue is full: then nothing was sent and the caller sends the
 * records again later. b is left as it was either way. */
bool soffa_dbatch_send(soffa_broker_t *self, soffa_dbatch_t *b, const uint8_t *rid, const char *mailbox,
                       uint64_t tag);

/* Frees what b holds. */
void soffa_dbatch_fini(soffa_dbatch_t *b);

#endif
