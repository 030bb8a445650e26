/*  soffa_client: DEALER + CURVE, HELLO/WELCOME, synchronous helpers. */
#include "soffa_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "soffa_time.h"

struct soffa_client {
    void *ctx;          /* ZeroMQ context */
    bool own_ctx;       /* we created ctx */
    void *sock;         /* DEALER */
    int timeout_ms;
    uint64_t tag;       /* last request tag */
    uint32_t version;   /* the session's protocol, from its WELCOME (0 until then) */
    uint32_t batch_max; /* most items a batch frame may carry (0: none) */
};

void *
soffa_client_socket(soffa_client_t *self)
{
    return self->sock;
}

uint64_t
soffa_client_next_tag(soffa_client_t *self)
{
    return ++self->tag;
}

uint32_t
soffa_client_version(const soffa_client_t *self)
{
    return self->version;
}

uint32_t
soffa_client_batch_max(const soffa_client_t *self)
{
    return self->version >= 2 ? self->batch_max : 0;
}

soffa_err_t
soffa_client_send_raw(soffa_client_t *self, const void *buf, size_t len)
{
    if (zmq_send(self->sock, buf, len, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? SOFFA_ERR_UNAVAILABLE : SOFFA_ERR_TRANSPORT;
    return SOFFA_OK;
}

soffa_err_t
soffa_client_send(soffa_client_t *self, const soffa_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    soffa_err_t rc = soffa_frame_encode(f, &buf, &len);
    if (rc != SOFFA_OK)
        return rc;
    rc = soffa_client_send_raw(self, buf, len);
    free(buf);
    return rc;
}

soffa_err_t
soffa_client_recv(soffa_client_t *self, soffa_frame_t *f, int timeout_ms)
{
    memset(f, 0, sizeof *f);
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&item, 1, timeout_ms);
    if (n < 0)
        return errno == EINTR ? SOFFA_ERR_TIMEOUT : SOFFA_ERR_TRANSPORT;
    if (n == 0)
        return SOFFA_ERR_TIMEOUT;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, self->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return errno == EAGAIN ? SOFFA_ERR_TIMEOUT : SOFFA_ERR_TRANSPORT;
    }
    /* Decoded byte fields are copied into the frame's own object, so m can go. */
    soffa_err_t rc = soffa_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), f);
    zmq_msg_close(&m);
    if (rc == SOFFA_OK && f->type == SOFFA_FRAME_WELCOME) {
        self->version = f->version;
        self->batch_max = f->batch_max > SOFFA_BATCH_MAX ? SOFFA_BATCH_MAX : f->batch_max;
    }
    return rc;
}

soffa_err_t
soffa_client_open(soffa_client_t **out, const soffa_client_opts_t *o)
{
    if (!out || !o || !o->endpoint || !o->server_public || !o->public_key || !o->secret_key)
        return SOFFA_ERR_INVALID_ARG;
    *out = NULL;
    soffa_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    self->ctx = o->zmq_ctx;
    if (!self->ctx) {
        self->ctx = zmq_ctx_new();
        self->own_ctx = true;
    }
    soffa_err_t rc = SOFFA_ERR_TRANSPORT;
    int linger = 0, hwm = 100000;
    if (!self->ctx || !(self->sock = zmq_socket(self->ctx, ZMQ_DEALER)))
        goto fail;
    if (zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, o->server_public, 41) != 0
        || zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, o->public_key, 41) != 0
        || zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, o->secret_key, 41) != 0) {
        rc = SOFFA_ERR_INVALID_ARG;
        goto fail;
    }
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_connect(self->sock, o->endpoint) != 0)
        goto fail;

    soffa_frame_t hello = {.type = SOFFA_FRAME_HELLO, .version = o->protocol >= 2 ? SOFFA_PROTOCOL_VERSION : 1};
    snprintf(hello.text, sizeof hello.text, "%s", o->name ? o->name : "soffa");
    /* The HELLO waits in the queue until the CURVE handshake completes. */
    if ((rc = soffa_client_send(self, &hello)) != SOFFA_OK)
        goto fail;
    *out = self;
    return SOFFA_OK;
fail:
    soffa_client_close(&self);
    return rc;
}

soffa_err_t
soffa_client_connect(soffa_client_t **out, const soffa_client_opts_t *o, soffa_frame_t *welcome)
{
    soffa_client_t *self = NULL;
    soffa_err_t rc = soffa_client_open(&self, o);
    if (rc != SOFFA_OK)
        return rc;
    *out = NULL;
    soffa_frame_t f;
    rc = soffa_client_recv(self, &f, self->timeout_ms);
    if (rc != SOFFA_OK)
        goto fail;
    if (f.type == SOFFA_FRAME_ERROR) {
        rc = f.code && f.code < SOFFA_ERR__COUNT ? (soffa_err_t) f.code : SOFFA_ERR_PROTOCOL_STATE;
        soffa_frame_fini(&f);
        if (rc == SOFFA_ERR_VERSION && o->protocol >= 2) {
            /* A broker from before version 2 takes version 1 only. */
            soffa_client_close(&self);
            soffa_client_opts_t v1 = *o;
            v1.protocol = 1;
            return soffa_client_connect(out, &v1, welcome);
        }
        goto fail;
    }
    if (f.type != SOFFA_FRAME_WELCOME) {
        soffa_frame_fini(&f);
        rc = SOFFA_ERR_PROTOCOL_STATE;
        goto fail;
    }
    if (welcome)
        *welcome = f;
    else
        soffa_frame_fini(&f);
    *out = self;
    return SOFFA_OK;
fail:
    soffa_client_close(&self);
    return rc;
}

void
soffa_client_close(soffa_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_client_t *self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    if (self->own_ctx && self->ctx)
        zmq_ctx_term(self->ctx);
    free(self);
    *self_p = NULL;
}

soffa_err_t
soffa_client_publish(soffa_client_t *self, const uint8_t *msg, size_t len, uint64_t *seq, bool *duplicate,
                     char *mailbox, char *why, size_t whylen)
{
    soffa_frame_t p = {.type = SOFFA_FRAME_PUBLISH, .tag = soffa_client_next_tag(self), .data = msg,
                       .data_len = len};
    soffa_err_t rc = soffa_client_send(self, &p);
    if (rc != SOFFA_OK)
        return rc;
    int64_t deadline = soffa_mono_us() + (int64_t) self->timeout_ms * 1000;
    for (;;) {
        int64_t left = (deadline - soffa_mono_us()) / 1000;
        if (left <= 0)
            return SOFFA_ERR_TIMEOUT;
        soffa_frame_t f;
        rc = soffa_client_recv(self, &f, (int) left);
        if (rc == SOFFA_ERR_TIMEOUT)
            return rc;
        if (rc != SOFFA_OK) {
            soffa_frame_fini(&f);
            continue;   /* an undecodable frame is not our answer */
        }
        if (f.tag == p.tag && f.type == SOFFA_FRAME_PUBLISH_ACK) {
            if (seq)
                *seq = f.seq;
            if (duplicate)
                *duplicate = f.duplicate;
            if (mailbox)
                snprintf(mailbox, SOFFA_NAME_MAX, "%s", f.mailbox);
            soffa_frame_fini(&f);
            return SOFFA_OK;
        }
        if (f.tag == p.tag && f.type == SOFFA_FRAME_ERROR) {
            if (why && whylen)
                snprintf(why, whylen, "%s", f.text);
            rc = f.code && f.code < SOFFA_ERR__COUNT ? (soffa_err_t) f.code : SOFFA_ERR_INTERNAL;
            soffa_frame_fini(&f);
            return rc;
        }
        soffa_frame_fini(&f);
    }
}
