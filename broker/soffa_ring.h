/*  soffa_ring: deliveries in flight, oldest first.
 *
 *  A growable ring of (seq, hash) pairs; acknowledged in order, naming the
 *  seq with its hash.
 */
#ifndef SOFFA_RING_H
#define SOFFA_RING_H

#include "soffa_broker_int.h"

/* An empty ring for cap entries; false without memory. */
bool soffa_ring_init(soffa_ring_t *r, uint32_t cap);

/* Frees the ring. */
void soffa_ring_fini(soffa_ring_t *r);

/* Grows the ring to hold cap entries (keeping what is in flight). */
bool soffa_ring_grow(soffa_ring_t *r, uint32_t cap);

/* Adds a delivery; the caller keeps len below cap. */
void soffa_ring_push(soffa_ring_t *r, uint64_t seq, const uint8_t hash[SOFFA_HASH_LEN]);

/* A reader says it has read everything up to seq, and proves it with the
 * hash the delivery of seq carried: a client that never reads cannot refill
 * its window. Frees the entries up to seq; false when seq is not in flight
 * or the hash is not the one delivered (nothing is freed then). */
bool soffa_ring_ack(soffa_ring_t *r, uint64_t seq, const uint8_t hash[SOFFA_HASH_LEN]);

#endif
