/*  soffa_lookup: finds stored records by message id (see soffa_lookup.h). */
#include "soffa_lookup.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    soffa_policy_ref_t *out;
    soffa_err_t rc;
} s_load_t;

static int
s_load_ref(void *ctx, const soffa_store_rec_t *rec)
{
    s_load_t *l = ctx;
    soffa_envelope_t e;
    /* The body is sealed: opened with the record's key, in memory only. */
    l->rc = soffa_envelope_open(rec->env, rec->len, rec->has_key ? rec->key : NULL, &e);
    if (l->rc != SOFFA_OK && l->rc != SOFFA_ERR_DISPOSED)
        return 1;
    bool disposed = l->rc == SOFFA_ERR_DISPOSED;
    soffa_policy_ref_t *r = l->out;
    r->seq = rec->seq;
    snprintf(r->sender, sizeof r->sender, "%s", e.sender_agent);
    r->sender_role = e.sender_role;
    snprintf(r->sender_kommun, sizeof r->sender_kommun, "%s", e.sender_kommun);
    snprintf(r->mailbox, sizeof r->mailbox, "%s", e.mailbox);
    if (disposed)
        l->rc = SOFFA_ERR_DISPOSED;
    else if (e.kind == SOFFA_RK_MESSAGE)
        l->rc = soffa_msg_decode(e.body, e.body_len, &r->msg);
    else
        l->rc = SOFFA_ERR_NOT_FOUND;
    soffa_envelope_fini(&e);
    if (l->rc == SOFFA_OK)
        soffa_msg_view(r->msg, &r->view);
    return 1;
}

/* The policy's lookup: a record by reference kind and id. */
soffa_err_t
soffa_lookup_find(void *ctx, soffa_ref_kind_t kind, const uint8_t id[16], soffa_policy_ref_t *out)
{
    soffa_broker_t *self = ctx;
    uint8_t key[17];
    key[0] = (uint8_t) kind;
    memcpy(key + 1, id, 16);
    uint64_t seq;
    memset(out, 0, sizeof *out);
    soffa_err_t rc = soffa_store_ref_get(self->store, key, sizeof key, &seq);
    if (rc != SOFFA_OK)
        return rc;
    s_load_t l = {out, SOFFA_ERR_NOT_FOUND};
    rc = soffa_store_get(self->store, seq, s_load_ref, &l);
    if (rc == SOFFA_OK)
        rc = l.rc;
    if (rc != SOFFA_OK)
        soffa_policy_ref_fini(out);
    return rc;
}

soffa_err_t
soffa_lookup_at(soffa_broker_t *self, uint64_t seq, soffa_policy_ref_t *out)
{
    s_load_t l = {out, SOFFA_ERR_NOT_FOUND};
    soffa_err_t rc = soffa_store_get(self->store, seq, s_load_ref, &l);
    return rc != SOFFA_OK ? rc : l.rc;
}

soffa_err_t
soffa_lookup_delivery(const soffa_store_rec_t *rec, soffa_frame_t *f, uint8_t **owned)
{
    *owned = NULL;
    f->data = rec->env;
    f->data_len = rec->len;
    f->has_record_key = false;
    bool sealable = rec->tag < 0x80 || rec->tag == (0x80 | SOFFA_RK_ACCESS);
    if (!sealable)
        return SOFFA_OK;   /* checkpoints and disposals are in clear */
    soffa_envelope_t e;
    soffa_err_t rc = soffa_envelope_decode(rec->env, rec->len, &e);
    if (rc != SOFFA_OK)
        return rc;
    bool sealed = e.sealed, legacy = e.legacy;
    soffa_envelope_fini(&e);
    if (!sealed)
        return SOFFA_OK;
    if (!rec->has_key)
        return SOFFA_ERR_DISPOSED;
    if (legacy) {
        /* Stored before encryption: the original, whose hash is the chain's. */
        size_t len = 0;
        rc = soffa_envelope_legacy_bytes(rec->env, rec->len, rec->key, owned, &len);
        if (rc != SOFFA_OK)
            return rc;
        f->data = *owned;
        f->data_len = len;
        return SOFFA_OK;
    }
    memcpy(f->record_key, rec->key, SOFFA_RECORD_KEY_LEN);
    f->has_record_key = true;
    return SOFFA_OK;
}

void
soffa_lookup_delivery_done(soffa_frame_t *f, uint8_t **owned)
{
    if (*owned) {
        sodium_memzero(*owned, f->data_len);
        free(*owned);
        *owned = NULL;
    }
    sodium_memzero(f->record_key, sizeof f->record_key);
    f->has_record_key = false;
}
