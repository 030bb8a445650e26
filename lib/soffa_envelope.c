/*  soffa_envelope: the stored envelope of a record (see soffa_envelope.h). */
#include "soffa_envelope.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_bytes.h"
#include "soffa_seal.h"
#include "soffa_wire.pb-c.h"

bool
soffa_envelope_kind_sealed(soffa_record_kind_t kind)
{
    return kind == SOFFA_RK_MESSAGE || kind == SOFFA_RK_ACCESS;
}

void
soffa_envelope_ad(uint64_t seq, const uint8_t message_id[16], uint8_t out[SOFFA_ENVELOPE_AD])
{
    soffa_bytes_put_u64(out, seq);
    memcpy(out + 8, message_id, 16);
}

soffa_err_t
soffa_envelope_encode(const soffa_envelope_t *env, uint8_t **buf, size_t *len)
{
    if (!env || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    Soffa__Sender sender = SOFFA__SENDER__INIT;
    sender.agent = (char *) env->sender_agent;
    sender.role = (Soffa__Role) env->sender_role;
    sender.kommunkod = (char *) env->sender_kommun;
    sender.unit_id = (char *) env->sender_unit;

    Soffa__Envelope e = SOFFA__ENVELOPE__INIT;
    e.version = env->version ? env->version : SOFFA_ENVELOPE_VERSION;
    e.seq = env->seq;
    e.message_id.data = (uint8_t *) env->message_id;
    e.message_id.len = sizeof env->message_id;
    e.sender = &sender;
    e.received_at_us = env->received_at_us;
    e.mailbox = (char *) env->mailbox;
    e.prev_hash.data = (uint8_t *) env->prev_hash;
    e.prev_hash.len = SOFFA_HASH_LEN;
    e.kind = (Soffa__RecordKind) env->kind;
    e.body.data = (uint8_t *) env->body;
    e.body.len = env->body_len;
    if (env->has_subject_key) {
        e.subject_key.data = (uint8_t *) env->subject_key;
        e.subject_key.len = SOFFA_SUBJECT_KEY_LEN;
    }
    e.message_type = env->msg_type;
    e.sealed = env->sealed;
    e.legacy = env->legacy;
    size_t n = soffa__envelope__get_packed_size(&e);
    if (n > SOFFA_WIRE_RECORD_MAX)
        return SOFFA_ERR_TOO_LARGE;
    uint8_t *b = malloc(n);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__envelope__pack(&e, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

soffa_err_t
soffa_envelope_decode(const void *buf, size_t len, soffa_envelope_t *out)
{
    soffa_err_t rc = SOFFA_OK;
    memset(out, 0, sizeof *out);
    if (len > SOFFA_WIRE_RECORD_MAX)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Envelope *e = soffa__envelope__unpack(NULL, len, buf);
    if (!e)
        return SOFFA_ERR_MALFORMED;
    out->pb_ = e;
    if (e->version != SOFFA_ENVELOPE_VERSION)
        SOFFA_WIRE_TRY(SOFFA_ERR_VERSION);
    if (e->message_id.len != sizeof out->message_id || e->prev_hash.len != SOFFA_HASH_LEN
        || (e->subject_key.len != 0 && e->subject_key.len != SOFFA_SUBJECT_KEY_LEN) || !e->sender)
        SOFFA_WIRE_TRY(SOFFA_ERR_MALFORMED);
    out->version = e->version;
    out->seq = e->seq;
    memcpy(out->message_id, e->message_id.data, sizeof out->message_id);
    SOFFA_WIRE_TRY(soffa_wire_copy(out->sender_agent, sizeof out->sender_agent, e->sender->agent));
    out->sender_role = (soffa_role_t) e->sender->role;
    SOFFA_WIRE_TRY(soffa_wire_copy(out->sender_kommun, sizeof out->sender_kommun, e->sender->kommunkod));
    SOFFA_WIRE_TRY(soffa_wire_copy(out->sender_unit, sizeof out->sender_unit, e->sender->unit_id));
    out->received_at_us = e->received_at_us;
    SOFFA_WIRE_TRY(soffa_wire_copy(out->mailbox, sizeof out->mailbox, e->mailbox));
    memcpy(out->prev_hash, e->prev_hash.data, SOFFA_HASH_LEN);
    out->kind = (soffa_record_kind_t) e->kind;
    out->body = e->body.data;
    out->body_len = e->body.len;
    if (e->subject_key.len) {
        memcpy(out->subject_key, e->subject_key.data, SOFFA_SUBJECT_KEY_LEN);
        out->has_subject_key = true;
    }
    out->msg_type = e->message_type;
    out->sealed = e->sealed;
    out->legacy = e->legacy;
    if (out->legacy && !out->sealed)
        SOFFA_WIRE_TRY(SOFFA_ERR_MALFORMED);
    return SOFFA_OK;
fail:
    soffa_envelope_fini(out);
    return rc;
}

soffa_err_t
soffa_envelope_legacy_bytes(const void *buf, size_t len, const uint8_t *key, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    soffa_envelope_t e;
    soffa_err_t rc = soffa_envelope_decode(buf, len, &e);
    if (rc != SOFFA_OK)
        return rc;
    if (!e.legacy)
        rc = SOFFA_ERR_INVALID_ARG;
    else if (!key)
        rc = SOFFA_ERR_DISPOSED;
    else {
        uint8_t ad[SOFFA_ENVELOPE_AD];
        soffa_envelope_ad(e.seq, e.message_id, ad);
        rc = soffa_seal_open(key, e.body, e.body_len, ad, sizeof ad, out, outlen);
    }
    soffa_envelope_fini(&e);
    return rc;
}

soffa_err_t
soffa_envelope_open(const void *buf, size_t len, const uint8_t *key, soffa_envelope_t *out)
{
    soffa_err_t rc = soffa_envelope_decode(buf, len, out);
    if (rc != SOFFA_OK || !out->sealed)
        return rc;
    if (!key) {
        out->body = NULL;
        out->body_len = 0;
        return SOFFA_ERR_DISPOSED;
    }
    uint8_t ad[SOFFA_ENVELOPE_AD], *plain = NULL;
    size_t plen = 0;
    soffa_envelope_ad(out->seq, out->message_id, ad);
    rc = soffa_seal_open(key, out->body, out->body_len, ad, sizeof ad, &plain, &plen);
    if (rc != SOFFA_OK) {
        soffa_envelope_fini(out);
        return rc;
    }
    if (!out->legacy) {
        out->own_ = plain;
        out->own_len_ = plen;
        out->body = plain;
        out->body_len = plen;
        return SOFFA_OK;
    }
    /* A legacy record: the original envelope, which must be the record
     * its clear copy says it is. */
    soffa_envelope_t orig;
    rc = soffa_envelope_decode(plain, plen, &orig);
    sodium_memzero(plain, plen);
    free(plain);
    if (rc == SOFFA_OK && (orig.seq != out->seq || orig.kind != out->kind || orig.sealed
                           || memcmp(orig.prev_hash, out->prev_hash, SOFFA_HASH_LEN) != 0
                           || memcmp(orig.message_id, out->message_id, 16) != 0)) {
        soffa_envelope_fini(&orig);
        rc = SOFFA_ERR_MALFORMED;
    }
    soffa_envelope_fini(out);
    if (rc != SOFFA_OK)
        return rc;
    *out = orig;
    out->legacy = true;
    return SOFFA_OK;
}

void
soffa_envelope_fini(soffa_envelope_t *env)
{
    if (!env)
        return;
    if (env->pb_)
        soffa__envelope__free_unpacked(env->pb_, NULL);
    if (env->own_) {
        sodium_memzero(env->own_, env->own_len_);
        free(env->own_);
    }
    memset(env, 0, sizeof *env);
}
