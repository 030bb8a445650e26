/*  soffa_zap: the ZAP handler: CURVE keys to identities (see soffa_zap.h). */
#include "soffa_zap.h"

#include <string.h>
#include <zmq.h>

#include "soffa_log.h"

/* ---- ZAP: who may open a session --------------------------------------------------- */

void
soffa_zap_handle(soffa_broker_t *self)
{
    for (;;) {
        zmq_msg_t parts[8];
        int n = 0;
        bool more = true;
        while (more && n < 8) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], self->zap, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&parts[n]);
                if (n == 0)
                    return;
                break;
            }
            more = zmq_msg_more(&parts[n]);
            n++;
        }
        const char *status = "400", *text = "unknown key";
        char user[41] = "";
        if (n >= 7 && zmq_msg_size(&parts[5]) == 5 && memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0
            && zmq_msg_size(&parts[6]) == 32) {
            /* The user id is the key itself (Z85): every frame names the
             * key its connection authenticated with, so that a reload can
             * tell the sessions of a key it removed. */
            if (soffa_idtable_by_key(self->agents, zmq_msg_data(&parts[6]))) {
                status = "200";
                text = "OK";
                zmq_z85_encode(user, zmq_msg_data(&parts[6]), 32);
            } else {
                char z85[41] = "?", addr[64] = "";
                zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
                snprintf(addr, sizeof addr, "%.*s", (int) zmq_msg_size(&parts[3]), (char *) zmq_msg_data(&parts[3]));
                soffa_warn("refused a connection from %s: public key %s is not configured", addr, z85);
            }
        } else {
            text = "CURVE required";
        }
        if (n >= 2) {
            zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(self->zap, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
            zmq_send(self->zap, status, 3, ZMQ_SNDMORE);
            zmq_send(self->zap, text, strlen(text), ZMQ_SNDMORE);
            zmq_send(self->zap, user, strlen(user), ZMQ_SNDMORE);
            zmq_send(self->zap, "", 0, 0);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
}
