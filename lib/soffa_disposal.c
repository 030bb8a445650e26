/*  soffa_disposal: a disposal record (see soffa_disposal.h). */
#include "soffa_disposal.h"

#include <stdlib.h>
#include <string.h>

#include "soffa_msg.pb-c.h"

static const struct {
    const char *name;
    uint32_t code;
    const char *text;
} s_reasons[] = {
#define S_REASON(NAME, code, text) {#NAME, code, text},
    SOFFA_ERASURE_REASONS(S_REASON)
#undef S_REASON
};

uint32_t
soffa_erasure_reason(const char *name)
{
    for (size_t i = 0; name && i < sizeof s_reasons / sizeof *s_reasons; i++)
        if (!strcmp(s_reasons[i].name, name))
            return s_reasons[i].code;
    return 0;
}

const char *
soffa_erasure_reason_name(uint32_t code)
{
    for (size_t i = 0; i < sizeof s_reasons / sizeof *s_reasons; i++)
        if (s_reasons[i].code == code)
            return s_reasons[i].name;
    return "";
}

const char *
soffa_erasure_reason_text(uint32_t code)
{
    for (size_t i = 0; i < sizeof s_reasons / sizeof *s_reasons; i++)
        if (s_reasons[i].code == code)
            return s_reasons[i].text;
    return "";
}

soffa_err_t
soffa_disposal_encode(const soffa_disposal_t *d, uint8_t **buf, size_t *len)
{
    if (d->count > SOFFA_DISPOSAL_MAX)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Disposal r = SOFFA__DISPOSAL__INIT;
    r.rule = (Soffa__DisposalRule) d->rule;
    r.retention_class = d->retention_class;
    r.rule_text = (char *) d->rule_text;
    r.reason = d->reason;
    r.count = d->count;
    r.n_seqs = d->count;
    r.seqs = d->seqs;
    ProtobufCBinaryData *ids = d->count ? calloc(d->count, sizeof *ids) : NULL;
    if (d->count && !ids)
        return SOFFA_ERR_NOMEM;
    for (size_t i = 0; i < d->count; i++)
        ids[i] = (ProtobufCBinaryData) {16, d->msg_ids[i]};
    r.n_message_ids = d->count;
    r.message_ids = ids;
    if (d->has_tombstone)
        r.tombstone = (ProtobufCBinaryData) {SOFFA_TOMBSTONE_LEN, (uint8_t *) d->tombstone};
    r.at_us = d->at_us;
    r.for_mailbox = (char *) d->for_mailbox;
    size_t n = soffa__disposal__get_packed_size(&r);
    uint8_t *b = n <= SOFFA_WIRE_RECORD_MAX ? malloc(n ? n : 1) : NULL;
    if (!b) {
        free(ids);
        return n > SOFFA_WIRE_RECORD_MAX ? SOFFA_ERR_TOO_LARGE : SOFFA_ERR_NOMEM;
    }
    soffa__disposal__pack(&r, b);
    free(ids);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

soffa_err_t
soffa_disposal_decode(const void *buf, size_t len, soffa_disposal_t *out)
{
    soffa_err_t rc = SOFFA_OK;
    memset(out, 0, sizeof *out);
    if (len > SOFFA_WIRE_RECORD_MAX)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Disposal *r = soffa__disposal__unpack(NULL, len, buf);
    if (!r)
        return SOFFA_ERR_MALFORMED;
    if (r->n_seqs != r->n_message_ids || r->n_seqs > SOFFA_DISPOSAL_MAX || r->count != r->n_seqs
        || (r->tombstone.len && r->tombstone.len != SOFFA_TOMBSTONE_LEN))
        SOFFA_WIRE_TRY(SOFFA_ERR_MALFORMED);
    out->rule = (soffa_disposal_rule_t) r->rule;
    out->retention_class = r->retention_class;
    SOFFA_WIRE_TRY(soffa_wire_copy(out->rule_text, sizeof out->rule_text, r->rule_text));
    SOFFA_WIRE_TRY(soffa_wire_copy(out->for_mailbox, sizeof out->for_mailbox, r->for_mailbox));
    out->reason = r->reason;
    out->count = r->n_seqs;
    out->at_us = r->at_us;
    if (r->tombstone.len) {
        memcpy(out->tombstone, r->tombstone.data, SOFFA_TOMBSTONE_LEN);
        out->has_tombstone = true;
    }
    if (out->count) {
        out->seqs = calloc(out->count, sizeof *out->seqs);
        out->msg_ids = calloc(out->count, sizeof *out->msg_ids);
        if (!out->seqs || !out->msg_ids)
            SOFFA_WIRE_TRY(SOFFA_ERR_NOMEM);
        for (size_t i = 0; i < out->count; i++) {
            if (r->message_ids[i].len != 16)
                SOFFA_WIRE_TRY(SOFFA_ERR_MALFORMED);
            out->seqs[i] = r->seqs[i];
            memcpy(out->msg_ids[i], r->message_ids[i].data, 16);
        }
    }
    soffa__disposal__free_unpacked(r, NULL);
    return SOFFA_OK;
fail:
    soffa__disposal__free_unpacked(r, NULL);
    soffa_disposal_fini(out);
    return rc;
}

void
soffa_disposal_fini(soffa_disposal_t *d)
{
    if (!d)
        return;
    free(d->seqs);
    free(d->msg_ids);
    d->seqs = NULL;
    d->msg_ids = NULL;
    d->count = 0;
}
