/*  soffa_ctl: one request to an agent's control socket (see soffa_ctl.h). */
#include "soffa_ctl.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

json_t *
soffa_ctl_call(void *ctx, const char *endpoint, json_t *req, int timeout_ms)
{
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text)
        return NULL;
    void *s = zmq_socket(ctx, ZMQ_REQ);
    if (!s) {
        free(text);
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    json_t *answer = NULL;
    if (zmq_connect(s, endpoint) == 0 && zmq_send(s, text, strlen(text), 0) >= 0) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, timeout_ms) == 1) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) >= 0)
                answer = json_loadb(zmq_msg_data(&m), zmq_msg_size(&m), 0, NULL);
            zmq_msg_close(&m);
        }
    }
    free(text);
    zmq_close(s);
    return answer;
}
