/*  soffa_send: frames to one peer of the router (see soffa_send.h). */
#include "soffa_send.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "soffa_log.h"

/* Sends one encoded frame to a peer; false when the peer is gone or its
 * queue is full (the frame is then not sent). */
static bool
s_send_raw(soffa_broker_t *self, const uint8_t *rid, const void *buf, size_t len)
{
    /* The routing id as libzmq gave it, on the socket it came from (during
     * a key rotation the previous key's sessions are on router_prev). */
    void *router = rid[0] == SOFFA_RID_PREVIOUS ? self->router_prev : self->router;
    if (!router)
        return false;
    uint8_t id[SOFFA_RID_LEN];
    memcpy(id, rid, SOFFA_RID_LEN);
    id[0] = 0;
    if (zmq_send(router, id, SOFFA_RID_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno != EAGAIN)
            soffa_debug("peer gone while sending (%s)", zmq_strerror(errno));
        return false;
    }
    return zmq_send(router, buf, len, ZMQ_DONTWAIT) >= 0;
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
