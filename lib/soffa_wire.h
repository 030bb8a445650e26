/*  soffa_wire: what every stored and sent format shares.
 *
 *  The limits and sizes the codecs agree on, the hash that links the
 *  history chain, and the one rule of every decoder: a string that does not
 *  fit its buffer is an error, never a truncation. The codecs themselves are
 *  modules of their own, included here so that a caller of the protocol
 *  includes one header:
 *    soffa_envelope    the stored envelope of a record (and record kinds)
 *    soffa_access      an access record (a read of the history)
 *    soffa_checkpoint  a signed checkpoint of the chain head
 *    soffa_restore     the record that opens a store restored from a backup
 *    soffa_frame       the broker protocol's frames
 */
#ifndef SOFFA_WIRE_H
#define SOFFA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_msg.h"

#define SOFFA_WIRE_MAX_FRAME (256 * 1024)
/* Protocol versions: 1 is one message per frame; 2 adds the batch frames
 * (PUBLISH-BATCH, PUBLISH-ACKS, DELIVER-BATCH). A client greets with the
 * newest it speaks; the broker speaks the lower of the two. */
#define SOFFA_PROTOCOL_VERSION 2
#define SOFFA_PROTOCOL_MIN 1
#define SOFFA_BATCH_MAX 256      /* most messages or records in one batch frame */
#define SOFFA_ENVELOPE_VERSION 1
#define SOFFA_HASH_LEN 32
#define SOFFA_SUBJECT_KEY_LEN 16
#define SOFFA_NAME_MAX 64        /* agent names and mailboxes, with NUL */
#define SOFFA_WELCOME_MAX 16     /* mailboxes / municipalities in a welcome */
#define SOFFA_SIGN_PUBLIC 32
#define SOFFA_SIGN_SECRET 64
#define SOFFA_SIGNATURE 64
#define SOFFA_RECORD_KEY_LEN 32  /* a record key (soffa_seal) */
/* Envelope and record-body limit: the message plus a generous header (and
 * room for a legacy record, which holds a whole sealed envelope). */
#define SOFFA_WIRE_RECORD_MAX (SOFFA_MSG_MAX + 4096)

/*  BLAKE2b-256 of buf: the hash every chain link refers to. */
void soffa_wire_hash(const void *buf, size_t len, uint8_t out[SOFFA_HASH_LEN]);

/*  Copies a decoded string (NULL is "") into dst of cap bytes. Returns
 *  SOFFA_OK, or SOFFA_ERR_TOO_LARGE when it does not fit (dst untouched). */
soffa_err_t soffa_wire_copy(char *dst, size_t cap, const char *src);

/*  For the codecs: rc = expr, and on an error `goto fail`. */
#define SOFFA_WIRE_TRY(expr)        \
    do {                            \
        rc = (expr);                \
        if (rc != SOFFA_OK)         \
            goto fail;              \
    } while (0)

#include "soffa_access.h"
#include "soffa_checkpoint.h"
#include "soffa_envelope.h"
#include "soffa_frame.h"
#include "soffa_restore.h"

#endif
