/*  Fuzz target: message decoding, validation, the routing view and the JSON
 *  form, both ways. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "soffa_msg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    soffa_msg_t *m = NULL;
    if (soffa_msg_decode(data, size, &m) != SOFFA_OK)
        return 0;
    char why[256];
    (void) soffa_msg_validate(m, 1795000000000000LL, why, sizeof why);
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    char *json = soffa_msg_to_json(m);
    if (json) {
        soffa_msg_t *back = NULL;
        if (soffa_msg_from_json(json, &back, why, sizeof why) == SOFFA_OK) {
            uint8_t *buf;
            size_t len;
            if (soffa_msg_encode(back, &buf, &len) == SOFFA_OK)
                free(buf);
        }
        soffa_msg_destroy(&back);
        free(json);
    }
    soffa_msg_destroy(&m);
    return 0;
}
