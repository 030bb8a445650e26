/*  soffa_lookup: finds stored records by message id.
 *
 *  Loads a stored record by its id (through the index) for the checks that
 *  need the message a new one refers to.
 */
#ifndef SOFFA_LOOKUP_H
#define SOFFA_LOOKUP_H

#include "soffa_broker_int.h"

/* The policy's lookup: a record by reference kind and id. */
soffa_err_t soffa_lookup_find(void *ctx, soffa_ref_kind_t kind, const uint8_t id[16], soffa_policy_ref_t *out);

/* The record at seq into out (what its envelope says even when its message
 * does not decode). The caller finishes out with soffa_policy_ref_fini. */
soffa_err_t soffa_lookup_at(soffa_broker_t *self, uint64_t seq, soffa_policy_ref_t *out);

/* What a DELIVER of rec carries, into f (data, data_len, record_key): the
 * stored bytes with the record's key, or for a legacy record (stored before
 * encryption) its original bytes, whose hash is the chain's, in a new buffer
 * *owned. Checkpoints and disposals go as stored. Returns SOFFA_OK,
 * SOFFA_ERR_DISPOSED (sealed and its key is gone: f carries the stored bytes
 * and no key) or a decode error. Finish with soffa_lookup_delivery_done. */
soffa_err_t soffa_lookup_delivery(const soffa_store_rec_t *rec, soffa_frame_t *f, uint8_t **owned);

/* Wipes the key and frees what soffa_lookup_delivery made. */
void soffa_lookup_delivery_done(soffa_frame_t *f, uint8_t **owned);

#endif
