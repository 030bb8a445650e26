/*  soffa_send: frames to one peer of the router (see soffa_send.h). */
#include "soffa_send.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "soffa_log.h"

/* Sends one encoded frame to a peer; false when the peer is gone or its
 * queue is full (the frame is then not sent). */
static bool
s_send_raw(soffa_broker_t *self, const uint8_t *rid, const void *buf, size_t len)
{
    if (zmq_send(self->router, rid, SOFFA_RID_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno != EAGAIN)
            soffa_debug("peer gone while sending (%s)", zmq_strerror(errno));
        return false;
    }
    return zmq_send(self->router, buf, len, ZMQ_DONTWAIT) >= 0;
}

bool
soffa_send_frame(soffa_broker_t *self, const uint8_t *rid, const soffa_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    if (soffa_frame_encode(f, &buf, &len) != SOFFA_OK)
        return false;
    bool ok = s_send_raw(self, rid, buf, len);
    free(buf);
    return ok;
}

void
soffa_send_error(soffa_broker_t *self, const uint8_t *rid, uint64_t tag, soffa_err_t code, const char *text)
{
    soffa_frame_t f = {.type = SOFFA_FRAME_ERROR, .tag = tag, .code = (uint32_t) code};
    snprintf(f.text, sizeof f.text, "%s", text && *text ? text : soffa_strerror(code));
    soffa_send_frame(self, rid, &f);
}
