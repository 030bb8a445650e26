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

#endif
