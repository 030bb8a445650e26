/*  soffa_wire: what every stored and sent format shares (see soffa_wire.h). */
#include "soffa_wire.h"

#include <sodium.h>
#include <string.h>

void
soffa_wire_hash(const void *buf, size_t len, uint8_t out[SOFFA_HASH_LEN])
{
    crypto_generichash(out, SOFFA_HASH_LEN, buf, len, NULL, 0);
}

soffa_err_t
soffa_wire_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        return SOFFA_ERR_TOO_LARGE;
    memcpy(dst, src ? src : "", n + 1);
    return SOFFA_OK;
}
