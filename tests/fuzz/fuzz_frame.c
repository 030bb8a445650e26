/*  Fuzz target: everything the broker and agents decode from the wire or a
 *  store: frames, envelopes, access records, checkpoints. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "soffa_msg.h"
#include "soffa_msg_valid.h"
#include "soffa_wire.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    soffa_frame_t f;
    bool ok = soffa_frame_decode(data, size, &f) == SOFFA_OK;
    if (ok && f.type == SOFFA_FRAME_DELIVER) {
        soffa_envelope_t e;
        if (soffa_envelope_decode(f.data, f.data_len, &e) == SOFFA_OK)
            soffa_envelope_fini(&e);
    } else if (ok && f.type == SOFFA_FRAME_DELIVER_BATCH) {
        /* Every record as an agent reads it. */
        for (size_t i = 0; i < f.n_items; i++) {
            soffa_envelope_t e;
            if (soffa_envelope_decode(f.items[i].data, f.items[i].data_len, &e) == SOFFA_OK)
                soffa_envelope_fini(&e);
        }
    } else if (ok && f.type == SOFFA_FRAME_PUBLISH_BATCH) {
        /* Every message as the broker reads it: decoded, then validated. */
        for (size_t i = 0; i < f.n_items; i++) {
            soffa_msg_t *m = NULL;
            char why[256];
            if (soffa_msg_decode(f.items[i].data, f.items[i].data_len, &m) == SOFFA_OK)
                (void) soffa_msg_validate(m, 0, why, sizeof why);
            soffa_msg_destroy(&m);
        }
    } else if (ok && f.type == SOFFA_FRAME_PUBLISH_ACKS) {
        size_t n = 0;
        for (size_t i = 0; i < f.n_items; i++)
            n += strlen(f.items[i].code ? f.items[i].text : f.items[i].mailbox);
        (void) n;
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
