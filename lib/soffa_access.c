/*  soffa_access: an access record (see soffa_access.h). */
#include "soffa_access.h"

#include <stdlib.h>
#include <string.h>

#include "soffa_wire.pb-c.h"

soffa_err_t
soffa_access_encode(const soffa_access_t *a, uint8_t **buf, size_t *len)
{
    Soffa__AccessRecord r = SOFFA__ACCESS_RECORD__INIT;
    r.agent = (char *) a->agent;
    r.role = (Soffa__Role) a->role;
    r.request = (char *) a->request;
    r.filter = (char *) a->filter;
    if (a->has_subject_key) {
        r.subject_key.data = (uint8_t *) a->subject_key;
        r.subject_key.len = SOFFA_SUBJECT_KEY_LEN;
    }
    r.records = a->records;
    r.state = (Soffa__AccessState) a->state;
    r.opened_seq = a->opened_seq;
    size_t n = soffa__access_record__get_packed_size(&r);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__access_record__pack(&r, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

soffa_err_t
soffa_access_decode(const void *buf, size_t len, soffa_access_t *out)
{
    soffa_err_t rc = SOFFA_OK;
    memset(out, 0, sizeof *out);
    if (len > SOFFA_WIRE_RECORD_MAX)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__AccessRecord *r = soffa__access_record__unpack(NULL, len, buf);
    if (!r)
        return SOFFA_ERR_MALFORMED;
    SOFFA_WIRE_TRY(soffa_wire_copy(out->agent, sizeof out->agent, r->agent));
    out->role = (soffa_role_t) r->role;
    SOFFA_WIRE_TRY(soffa_wire_copy(out->request, sizeof out->request, r->request));
    SOFFA_WIRE_TRY(soffa_wire_copy(out->filter, sizeof out->filter, r->filter));
    if (r->subject_key.len == SOFFA_SUBJECT_KEY_LEN) {
        memcpy(out->subject_key, r->subject_key.data, SOFFA_SUBJECT_KEY_LEN);
        out->has_subject_key = true;
    }
    out->records = r->records;
    out->state = (soffa_access_state_t) r->state;
    out->opened_seq = r->opened_seq;
fail:
    soffa__access_record__free_unpacked(r, NULL);
    return rc;
}
