/*  soffa_checkpoint: a signed checkpoint of the chain head.
 *
 *  The broker signs the hash of the newest record with an Ed25519 key kept
 *  outside its data directory; a checkpoint is itself a record in the log
 *  (RK_CHECKPOINT), so `soffa verify` can check the chain against them.
 */
#ifndef SOFFA_CHECKPOINT_H
#define SOFFA_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_wire.h"

/*  A signed checkpoint of the chain head. */
typedef struct {
    uint64_t covers_seq;                       /* last record it vouches for */
    uint8_t head_hash[SOFFA_HASH_LEN];         /* that record's hash */
    int64_t at_us;
    uint8_t public_key[SOFFA_SIGN_PUBLIC];     /* the signer */
    uint8_t signature[SOFFA_SIGNATURE];
} soffa_checkpoint_t;

/*  Signs cp (covers_seq, head_hash, at_us) with an Ed25519 secret key;
 *  fills public_key and signature. */
void soffa_checkpoint_sign(soffa_checkpoint_t *cp, const uint8_t secret[SOFFA_SIGN_SECRET]);

/*  True if cp's signature is valid for `public_key` (NULL: the key in cp). */
bool soffa_checkpoint_valid(const soffa_checkpoint_t *cp, const uint8_t *public_key);

soffa_err_t soffa_checkpoint_encode(const soffa_checkpoint_t *cp, uint8_t **buf, size_t *len);
soffa_err_t soffa_checkpoint_decode(const void *buf, size_t len, soffa_checkpoint_t *out);

#endif
