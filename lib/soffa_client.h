/*  soffa_client: one authenticated connection to a soffa-broker.
 *
 *  A DEALER socket with CURVE (the client's key pair, the broker's public
 *  key). connect sends HELLO and waits for WELCOME. After that the caller
 *  either uses the synchronous helpers (publish, replay, status; only on a
 *  connection that has no subscription) or sends and receives frames itself
 *  and polls soffa_client_socket().
 */
#ifndef SOFFA_CLIENT_H
#define SOFFA_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"
#include "soffa_wire.h"

typedef struct soffa_client soffa_client_t;

typedef struct {
    const char *endpoint;        /* tcp://host:port or ipc://path */
    const char *server_public;   /* broker's public key, Z85 */
    const char *public_key;      /* ours, Z85 */
    const char *secret_key;      /* ours, Z85 */
    const char *name;            /* for the broker's logs */
    int timeout_ms;              /* for connect and the synchronous helpers; 0 = 5000 */
    void *zmq_ctx;               /* shared ZeroMQ context, or NULL for a private one */
    uint32_t protocol;           /* 0 or 1: one message per frame; 2: batch frames too (the caller
                                  * then takes PUBLISH-ACKS and DELIVER-BATCH frames) */
} soffa_client_opts_t;

/*  Connects and greets. welcome (may be NULL) receives the WELCOME frame
 *  (release with soffa_frame_fini). A broker that refuses protocol 2 (one
 *  from before version 2) is greeted again with version 1.
 *  Returns SOFFA_OK, SOFFA_ERR_TIMEOUT (no answer: broker down, or our key
 *  is not known to it), SOFFA_ERR_TRANSPORT, or the broker's refusal. */
soffa_err_t soffa_client_connect(soffa_client_t **out, const soffa_client_opts_t *opts,
                                 soffa_frame_t *welcome);

/*  Like connect, but returns as soon as HELLO is queued: the first frame
 *  soffa_client_recv then returns is the WELCOME or the refusal. For
 *  opening many connections at once. */
soffa_err_t soffa_client_open(soffa_client_t **out, const soffa_client_opts_t *opts);

/*  Closes *self_p (pending frames are dropped) and sets it to NULL. */
void soffa_client_close(soffa_client_t **self_p);

/*  The ZeroMQ socket, for zmq_poll. */
void *soffa_client_socket(soffa_client_t *self);

/*  Sends one frame without blocking. SOFFA_ERR_UNAVAILABLE when the queue
 *  to the broker is full. */
soffa_err_t soffa_client_send(soffa_client_t *self, const soffa_frame_t *f);

/*  Receives one frame, waiting up to timeout_ms (-1 forever, 0 not at all).
 *  Release *f with soffa_frame_fini. SOFFA_ERR_TIMEOUT when nothing came. */
soffa_err_t soffa_client_recv(soffa_client_t *self, soffa_frame_t *f, int timeout_ms);

/*  Publishes one encoded message and waits for its answer. On success seq,
 *  duplicate and mailbox (SOFFA_NAME_MAX, may be NULL) tell where it went.
 *  A refusal returns its code with the broker's reason in why. */
soffa_err_t soffa_client_publish(soffa_client_t *self, const uint8_t *msg, size_t len, uint64_t *seq,
                                 bool *duplicate, char *mailbox, char *why, size_t whylen);

/*  Sends a raw, possibly invalid, byte string as a frame (tests). */
soffa_err_t soffa_client_send_raw(soffa_client_t *self, const void *buf, size_t len);

/*  Next tag for a request. */
uint64_t soffa_client_next_tag(soffa_client_t *self);

/*  The protocol version of the session (from its WELCOME; 0 before one
 *  came), and the most items a batch frame may carry (0: no batch frames,
 *  send single PUBLISH frames). */
uint32_t soffa_client_version(const soffa_client_t *self);
uint32_t soffa_client_batch_max(const soffa_client_t *self);

#endif
