/*  soffa_lookup: finds stored records by message id (see soffa_lookup.h). */
#include "soffa_lookup.h"

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
    l->rc = soffa_envelope_decode(rec->env, rec->len, &e);
    if (l->rc != SOFFA_OK)
        return 1;
    soffa_policy_ref_t *r = l->out;
    r->seq = rec->seq;
    snprintf(r->sender, sizeof r->sender, "%s", e.sender_agent);
    r->sender_role = e.sender_role;
    snprintf(r->sender_kommun, sizeof r->sender_kommun, "%s", e.sender_kommun);
    snprintf(r->mailbox, sizeof r->mailbox, "%s", e.mailbox);
    if (e.kind == SOFFA_RK_MESSAGE)
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
