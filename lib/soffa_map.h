/*  soffa_map: a hash map from byte strings to pointers.
 *
 *  Keys are copied; values are borrowed (the map never frees them). Used for
 *  sessions by routing id, identities by name, mailboxes by name.
 */
#ifndef SOFFA_MAP_H
#define SOFFA_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_err.h"

typedef struct soffa_map soffa_map_t;

/*  Creates an empty map; NULL when out of memory. */
soffa_map_t *soffa_map_new(void);

/*  Destroys *self_p (not the values) and sets it to NULL. */
void soffa_map_destroy(soffa_map_t **self_p);

/*  Inserts or replaces key -> value. Returns SOFFA_OK or SOFFA_ERR_NOMEM. */
soffa_err_t soffa_map_put(soffa_map_t *self, const void *key, size_t klen, void *value);

/*  Inserts key -> value unless key is there (one lookup, where get and put
 *  take two). Returns SOFFA_OK, SOFFA_ERR_EXISTS (nothing changed) or
 *  SOFFA_ERR_NOMEM. */
soffa_err_t soffa_map_add(soffa_map_t *self, const void *key, size_t klen, void *value);

/*  The value of key, or NULL. */
void *soffa_map_get(const soffa_map_t *self, const void *key, size_t klen);

/*  Removes key; returns its value, or NULL when absent. */
void *soffa_map_remove(soffa_map_t *self, const void *key, size_t klen);

/*  Number of entries. */
size_t soffa_map_size(const soffa_map_t *self);

/*  Calls fn for every entry (in no particular order). fn must not change the
 *  map; return non-zero from fn to stop. */
void soffa_map_each(const soffa_map_t *self,
                    int (*fn)(void *ctx, const void *key, size_t klen, void *value), void *ctx);

/*  String-keyed conveniences. */
#define soffa_map_sput(m, s, v) soffa_map_put((m), (s), strlen(s), (v))
#define soffa_map_sget(m, s) soffa_map_get((m), (s), strlen(s))

#endif
