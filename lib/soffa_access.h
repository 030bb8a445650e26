/*  soffa_access: an access record: one read of the history.
 *
 *  Replays, histories and statistics are reads of personal data; each is
 *  recorded in the log as an RK_ACCESS record when it opens and when it ends
 *  (or is cut off).
 */
#ifndef SOFFA_ACCESS_H
#define SOFFA_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_wire.h"

typedef enum {
    SOFFA_ACCESS_NONE = 0,
    SOFFA_ACCESS_OPENED = 1,     /* written before the first record is sent */
    SOFFA_ACCESS_COMPLETED = 2,  /* the read ended */
    SOFFA_ACCESS_CUT_OFF = 3,    /* the reader went away before the end */
} soffa_access_state_t;

/*  A read of the history, kept in the log as an RK_ACCESS record. */
typedef struct {
    char agent[SOFFA_NAME_MAX];        /* who read */
    soffa_role_t role;
    char request[32];                  /* replay, history, stats */
    char filter[256];                  /* the filter as text (no identity numbers) */
    uint8_t subject_key[SOFFA_SUBJECT_KEY_LEN];
    bool has_subject_key;
    uint64_t records;                  /* records returned */
    soffa_access_state_t state;
    uint64_t opened_seq;               /* COMPLETED, CUT_OFF: the OPENED record */
} soffa_access_t;

/*  Encodes an access record into a new buffer (free with free()). */
soffa_err_t soffa_access_encode(const soffa_access_t *a, uint8_t **buf, size_t *len);

/*  Decodes an access record. */
soffa_err_t soffa_access_decode(const void *buf, size_t len, soffa_access_t *out);

#endif
