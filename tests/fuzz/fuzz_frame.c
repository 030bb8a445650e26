/*  Fuzz target: everything the broker and agents decode from the wire or a
 *  store: frames, envelopes, access records, checkpoints. */
#include <stddef.h>
#include <stdint.h>

#include "soffa_wire.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    soffa_frame_t f;
    if (soffa_frame_decode(data, size, &f) == SOFFA_OK && f.type == SOFFA_FRAME_DELIVER) {
        soffa_envelope_t e;
        if (soffa_envelope_decode(f.data, f.data_len, &e) == SOFFA_OK)
            soffa_envelope_fini(&e);
    }
    soffa_frame_fini(&f);
    soffa_envelope_t e;
    if (soffa_envelope_decode(data, size, &e) == SOFFA_OK) {
        soffa_access_t a;
        soffa_checkpoint_t cp;
        (void) soffa_access_decode(e.body, e.body_len, &a);
        if (soffa_checkpoint_decode(e.body, e.body_len, &cp) == SOFFA_OK)
            (void) soffa_checkpoint_valid(&cp, NULL);
        soffa_envelope_fini(&e);
    }
    return 0;
}
