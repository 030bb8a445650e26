/*  soffa_restore: the restore record (see soffa_restore.h). */
#include "soffa_restore.h"

#include <stdlib.h>
#include <string.h>

#include "soffa_wire.pb-c.h"

uint64_t
soffa_restore_next_seq(uint64_t head, int64_t now_us)
{
    uint64_t clock = now_us > 0 ? (uint64_t) now_us : 0;
    return head + 1 > clock ? head + 1 : clock;
}

soffa_err_t
soffa_restore_encode(const soffa_restore_t *r, uint8_t **buf, size_t *len)
{
    Soffa__Restore m = SOFFA__RESTORE__INIT;
    m.from_seq = r->from_seq;
    m.backup_at_us = r->backup_at_us;
    m.restored_at_us = r->restored_at_us;
    size_t n = soffa__restore__get_packed_size(&m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__restore__pack(&m, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

soffa_err_t
soffa_restore_decode(const void *buf, size_t len, soffa_restore_t *out)
{
    memset(out, 0, sizeof *out);
    if (len > 256)
        return SOFFA_ERR_TOO_LARGE;
    Soffa__Restore *m = soffa__restore__unpack(NULL, len, buf);
    if (!m)
        return SOFFA_ERR_MALFORMED;
    out->from_seq = m->from_seq;
    out->backup_at_us = m->backup_at_us;
    out->restored_at_us = m->restored_at_us;
    soffa__restore__free_unpacked(m, NULL);
    return SOFFA_OK;
}
