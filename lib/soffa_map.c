/*  soffa_map: separate chaining, power-of-two buckets, FNV-1a hashing. */
#include "soffa_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_entry {
    struct s_entry *next;
    void *value;
    size_t klen;
    uint64_t hash;
    unsigned char key[];   /* klen bytes */
} s_entry_t;

struct soffa_map {
    s_entry_t **buckets;
    size_t nbuckets;   /* power of two */
    size_t size;
};

static uint64_t
s_hash(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

soffa_map_t *
soffa_map_new(void)
{
    soffa_map_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->nbuckets = 64;
    self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
    if (!self->buckets) {
        free(self);
        return NULL;
    }
    return self;
}

void
soffa_map_destroy(soffa_map_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_map_t *self = *self_p;
    for (size_t i = 0; i < self->nbuckets; i++) {
        s_entry_t *e = self->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(self->buckets);
    free(self);
    *self_p = NULL;
}

static s_entry_t **
s_find(const soffa_map_t *self, const void *key, size_t klen, uint64_t h)
{
    s_entry_t **pp = &self->buckets[h & (self->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0))
        pp = &(*pp)->next;
    return pp;
}

static void
s_grow(soffa_map_t *self)
{
    size_t n = self->nbuckets * 2;
    s_entry_t **b = calloc(n, sizeof *b);
    if (!b)
        return;   /* keep working with longer chains */
    for (size_t i = 0; i < self->nbuckets; i++) {
        s_entry_t *e = self->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(self->buckets);
    self->buckets = b;
    self->nbuckets = n;
}

static soffa_err_t
s_put(soffa_map_t *self, const void *key, size_t klen, void *value, bool replace)
{
    uint64_t h = s_hash(key, klen);
    s_entry_t **pp = s_find(self, key, klen, h);
    if (*pp) {
        if (!replace)
            return SOFFA_ERR_EXISTS;
        (*pp)->value = value;
        return SOFFA_OK;
    }
    s_entry_t *e = malloc(sizeof *e + klen);
    if (!e)
        return SOFFA_ERR_NOMEM;
    e->next = NULL;
    e->value = value;
    e->klen = klen;
    e->hash = h;
    memcpy(e->key, key, klen);
    *pp = e;
    if (++self->size > self->nbuckets)
        s_grow(self);
    return SOFFA_OK;
}

soffa_err_t
soffa_map_put(soffa_map_t *self, const void *key, size_t klen, void *value)
{
    return s_put(self, key, klen, value, true);
}

soffa_err_t
soffa_map_add(soffa_map_t *self, const void *key, size_t klen, void *value)
{
    return s_put(self, key, klen, value, false);
}

void *
soffa_map_get(const soffa_map_t *self, const void *key, size_t klen)
{
    s_entry_t **pp = s_find(self, key, klen, s_hash(key, klen));
    return *pp ? (*pp)->value : NULL;
}

void *
soffa_map_remove(soffa_map_t *self, const void *key, size_t klen)
{
    s_entry_t **pp = s_find(self, key, klen, s_hash(key, klen));
    if (!*pp)
        return NULL;
    s_entry_t *e = *pp;
    void *v = e->value;
    *pp = e->next;
    free(e);
    self->size--;
    return v;
}

size_t
soffa_map_size(const soffa_map_t *self)
{
    return self->size;
}

void
soffa_map_each(const soffa_map_t *self, int (*fn)(void *, const void *, size_t, void *), void *ctx)
{
    for (size_t i = 0; i < self->nbuckets; i++)
        for (s_entry_t *e = self->buckets[i]; e; e = e->next)
            if (fn(ctx, e->key, e->klen, e->value))
                return;
}
