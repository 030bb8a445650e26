/*  soffa_delivery: mailboxes, readers and credit windows.
 *
 *  Mailboxes hold counts; readers (consumers) hold a position, a credit
 *  window that starts small and grows on proof of reading, and a ring of
 *  deliveries in flight. Acknowledged positions are written as cursors.
 */
#ifndef SOFFA_DELIVERY_H
#define SOFFA_DELIVERY_H

#include "soffa_broker_int.h"

/* The mailbox called name, created empty on first use; NULL without memory. */
soffa_mailbox_t *soffa_delivery_mailbox(soffa_broker_t *self, const char *name);

/*soffa_store_mailboxes callback: a mailbox's count and newest record. */
int soffa_delivery_load_mailbox(void *ctx, const char *name, uint64_t count, uint64_t last);

/* Ends a reader: off its mailbox, its position queued for the store. */
void soffa_delivery_consumer_free(soffa_broker_t *self, soffa_consumer_t *c);

/* The broker's batch of records for one frame (made on first use); NULL
 * without memory. */
struct soffa_dbatch *soffa_delivery_batch(soffa_broker_t *self);

/* Sends each reader of m what its window lets through. */
void soffa_delivery_pump_mailbox(soffa_broker_t *self, soffa_mailbox_t *m);

/* Queues every reader's acknowledged position for the next commit. */
void soffa_delivery_flush_cursors(soffa_broker_t *self);

/* SUBSCRIBE: a reader of one of the mailboxes the session may read. */
void soffa_delivery_on_subscribe(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

/* ACK: a reader read up to a sequence (with the hash as proof). */
void soffa_delivery_on_ack(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

/* CREDIT: a reader's window (or more room for a replay). */
void soffa_delivery_on_credit(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

#endif
