/*  soffa_ring: deliveries in flight, oldest first (see soffa_ring.h). */
#include "soffa_ring.h"

#include <sodium.h>
#include <string.h>

/* ---- Delivery windows ------------------------------------------------------------ */

bool
soffa_ring_init(soffa_ring_t *r, uint32_t cap)
{
    memset(r, 0, sizeof *r);
    r->v = calloc(cap ? cap : 1, sizeof *r->v);
    r->cap = cap ? cap : 1;
    return r->v != NULL;
}

void
soffa_ring_fini(soffa_ring_t *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* Grows the ring to hold cap entries (keeping what is in flight). */
bool
soffa_ring_grow(soffa_ring_t *r, uint32_t cap)
{
    if (cap <= r->cap)
        return true;
    soffa_sent_t *v = calloc(cap, sizeof *v);
    if (!v)
        return false;
    for (uint32_t i = 0; i < r->len; i++)
        v[i] = r->v[(r->head + i) % r->cap];
    free(r->v);
    r->v = v;
    r->cap = cap;
    r->head = 0;
    return true;
}

void
soffa_ring_push(soffa_ring_t *r, uint64_t seq, const uint8_t hash[SOFFA_HASH_LEN])
{
    soffa_sent_t *e = &r->v[(r->head + r->len++) % r->cap];
    e->seq = seq;
    memcpy(e->hash, hash, SOFFA_HASH_LEN);
}

/* A reader says it has read everything up to seq, and proves it with the
 * hash the delivery of seq carried: a client that never reads cannot refill
 * its window. Frees the entries up to seq, in the order they were sent (a
 * history sends the disposal records of a young person after their other
 * records, so sequence numbers need not rise); false when seq is not in
 * flight or the hash is not the one delivered (nothing is freed then). */
bool
soffa_ring_ack(soffa_ring_t *r, uint64_t seq, const uint8_t hash[SOFFA_HASH_LEN])
{
    for (uint32_t i = 0; i < r->len; i++) {
        const soffa_sent_t *e = &r->v[(r->head + i) % r->cap];
        if (e->seq == seq) {
            if (sodium_memcmp(e->hash, hash, SOFFA_HASH_LEN) != 0)
                return false;
            r->head = (r->head + i + 1) % r->cap;
            r->len -= i + 1;
            return true;
        }
    }
    return false;
}
