/*  soffa_dbatch: the records of one DELIVER-BATCH (see soffa_dbatch.h). */
#include "soffa_dbatch.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "soffa_send.h"

void
soffa_dbatch_begin(soffa_dbatch_t *b, size_t max)
{
    sodium_memzero(b->items, b->n * sizeof *b->items);
    b->n = 0;
    b->len = 0;
    b->max = max < 1 ? 1 : max > SOFFA_BATCH_MAX ? SOFFA_BATCH_MAX : max;
}

bool
soffa_dbatch_add(soffa_dbatch_t *b, uint64_t seq, const uint8_t hash[SOFFA_HASH_LEN], const uint8_t *data,
                 size_t len, const uint8_t *record_key)
{
    if (b->n >= b->max)
        return false;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 2 * SOFFA_DBATCH_BYTES;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *nb = realloc(b->buf, cap);
        if (!nb)
            return false;
        b->buf = nb;
        b->cap = cap;
    }
    soffa_frame_item_t *it = &b->items[b->n++];
    memset(it, 0, sizeof *it);
    it->seq = seq;
    it->data = (const uint8_t *) (uintptr_t) b->len;   /* an offset until sent: buf may move */
    it->data_len = len;
    memcpy(it->hash, hash, SOFFA_HASH_LEN);
    if (record_key) {   /* a sealed body: its key goes with it, over CurveZMQ only */
        memcpy(it->record_key, record_key, SOFFA_RECORD_KEY_LEN);
        it->has_record_key = true;
    }
    memcpy(b->buf + b->len, data, len);
    b->len += len;
    return true;
}

bool
soffa_dbatch_full(const soffa_dbatch_t *b)
{
    return b->n >= b->max || b->len >= SOFFA_DBATCH_BYTES;
}

bool
soffa_dbatch_send(soffa_broker_t *self, soffa_dbatch_t *b, const uint8_t *rid, const char *mailbox, uint64_t tag)
{
    if (b->n == 0)
        return true;
    soffa_frame_item_t items[SOFFA_BATCH_MAX];
    for (size_t i = 0; i < b->n; i++) {
        items[i] = b->items[i];
        items[i].data = b->buf + (uintptr_t) b->items[i].data;
    }
    soffa_frame_t f = {.tag = tag};
    snprintf(f.mailbox, sizeof f.mailbox, "%s", mailbox);
    if (b->n == 1) {
        f.type = SOFFA_FRAME_DELIVER;
        f.seq = items[0].seq;
        f.data = items[0].data;
        f.data_len = items[0].data_len;
        f.has_hash = true;
        memcpy(f.hash, items[0].hash, SOFFA_HASH_LEN);
        if (items[0].has_record_key) {
            memcpy(f.record_key, items[0].record_key, SOFFA_RECORD_KEY_LEN);
            f.has_record_key = true;
        }
    } else {
        f.type = SOFFA_FRAME_DELIVER_BATCH;
        f.items = items;
        f.n_items = b->n;
    }
    bool sent = soffa_send_frame(self, rid, &f);
    sodium_memzero(items, sizeof items);
    sodium_memzero(f.record_key, sizeof f.record_key);
    return sent;
}

void
soffa_dbatch_fini(soffa_dbatch_t *b)
{
    sodium_memzero(b->items, sizeof b->items);
    free(b->buf);
    memset(b, 0, sizeof *b);
}
