/*  soffa_checkpoint: a signed checkpoint of the chain head (see soffa_checkpoint.h). */
#include "soffa_checkpoint.h"

#include <sodium.h>
#include <string.h>

#include "soffa_wire.pb-c.h"

/* The bytes a checkpoint signature covers. */
static size_t
s_checkpoint_text(const soffa_checkpoint_t *cp, uint8_t out[80])
{
    static const char tag[] = "soffa-checkpoint-v1";
    size_t n = sizeof tag - 1;
    memcpy(out, tag, n);
    for (int i = 7; i >= 0; i--)
        out[n++] = (uint8_t) (cp->covers_seq >> (8 * i));
    memcpy(out + n, cp->head_hash, SOFFA_HASH_LEN);
    n += SOFFA_HASH_LEN;
    for (int i = 7; i >= 0; i--)
        out[n++] = (uint8_t) ((uint64_t) cp->at_us >> (8 * i));
    return n;
}

void
soffa_checkpoint_sign(soffa_checkpoint_t *cp, const uint8_t secret[SOFFA_SIGN_SECRET])
{
    uint8_t text[80];
    size_t n = s_checkpoint_text(cp, text);
    crypto_sign_ed25519_sk_to_pk(cp->public_key, secret);
    crypto_sign_detached(cp->signature, NULL, text, n, secret);
}

bool
soffa_checkpoint_valid(const soffa_checkpoint_t *cp, const uint8_t *public_key)
{
    uint8_t text[80];
    size_t n = s_checkpoint_text(cp, text);
    return crypto_sign_verify_detached(cp->signature, text, n, public_key ? public_key : cp->public_key) == 0;
}

soffa_err_t
soffa_checkpoint_encode(const soffa_checkpoint_t *cp, uint8_t **buf, size_t *len)
{
    Soffa__Checkpoint c = SOFFA__CHECKPOINT__INIT;
    c.covers_seq = cp->covers_seq;
    c.head_hash = (ProtobufCBinaryData) {SOFFA_HASH_LEN, (uint8_t *) cp->head_hash};
    c.at_us = cp->at_us;
    c.public_key = (ProtobufCBinaryData) {SOFFA_SIGN_PUBLIC, (uint8_t *) cp->public_key};
    c.signature = (ProtobufCBinaryData) {SOFFA_SIGNATURE, (uint8_t *) cp->signature};
    size_t n = soffa__checkpoint__get_packed_size(&c);
    uint8_t *b = malloc(n);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__checkpoint__pack(&c, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

soffa_err_t
soffa_checkpoint_decode(const void *buf, size_t len, soffa_checkpoint_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > 1024)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Checkpoint *c = soffa__checkpoint__unpack(NULL, len, buf);
    if (!c)
        return SOFFA_ERR_MALFORMED;
    soffa_err_t rc = SOFFA_OK;
    if (c->head_hash.len != SOFFA_HASH_LEN || c->public_key.len != SOFFA_SIGN_PUBLIC
        || c->signature.len != SOFFA_SIGNATURE) {
        rc = SOFFA_ERR_MALFORMED;
    } else {
        out->covers_seq = c->covers_seq;
        memcpy(out->head_hash, c->head_hash.data, SOFFA_HASH_LEN);
        out->at_us = c->at_us;
        memcpy(out->public_key, c->public_key.data, SOFFA_SIGN_PUBLIC);
        memcpy(out->signature, c->signature.data, SOFFA_SIGNATURE);
    }
    soffa__checkpoint__free_unpacked(c, NULL);
    return rc;
}
