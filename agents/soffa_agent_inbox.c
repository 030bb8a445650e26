/*  soffa_agent_inbox: deliveries stored before they are acknowledged, and
 *  read back for the control sockets (see soffa_agent_inbox.h).
 */
#include "soffa_agent_inbox.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_agent_int.h"
#include "soffa_log.h"
#include "soffa_msg.h"
#include "soffa_policy.h"
#include "soffa_record.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

/* ---- Deliveries ------------------------------------------------------------------------------ */

/* An acknowledgement, the KAA's answer to an early warning or a referral
 * status closes what the agent awaits (the receipts the policy table says
 * they give). */
static void
s_note_answer(soffa_agent_t *self, const soffa_envelope_t *e)
{
    if (soffa_policy_gives((soffa_msg_type_t) e->msg_type) == SOFFA_RECEIPT_NONE)
        return;
    soffa_msg_t *m = NULL;
    if (soffa_msg_decode(e->body, e->body_len, &m) != SOFFA_OK)
        return;
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    if (v.ref_id)
        soffa_box_await_answer(self->box, v.ref_id, soffa_now_us());
    soffa_msg_destroy(&m);
}

void
soffa_agent_inbox_deliver(soffa_agent_t *self, soffa_frame_t *frames, size_t n)
{
    if (n == 0)
        return;
    soffa_box_delivery_t *d = calloc(n, sizeof *d);
    soffa_envelope_t *e = calloc(n, sizeof *e);
    if (!d || !e) {
        free(d);
        free(e);
        return;   /* not acknowledged: the broker delivers again */
    }
    uint8_t **opened = calloc(n, sizeof *opened);
    size_t *opened_len = calloc(n, sizeof *opened_len);
    if (!opened || !opened_len) {
        free(opened);
        free(opened_len);
        free(d);
        free(e);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t h[SOFFA_HASH_LEN];
        soffa_wire_hash(frames[i].data, frames[i].data_len, h);
        if (!frames[i].has_hash || memcmp(h, frames[i].hash, SOFFA_HASH_LEN) != 0
            || soffa_envelope_open(frames[i].data, frames[i].data_len,
                                   frames[i].has_record_key ? frames[i].record_key : NULL, &e[k]) != SOFFA_OK) {
            soffa_error("delivery of seq %llu is damaged; not acknowledged", (unsigned long long) frames[i].seq);
            break;   /* acknowledge only what precedes it */
        }
        const uint8_t *bytes = frames[i].data;
        size_t blen = frames[i].data_len;
        if (frames[i].has_record_key) {
            /* Kept as the opened envelope (the broker's seal is its own). */
            e[k].sealed = false;
            if (soffa_envelope_encode(&e[k], &opened[k], &opened_len[k]) != SOFFA_OK) {
                soffa_envelope_fini(&e[k]);
                break;
            }
            bytes = opened[k];
            blen = opened_len[k];
        }
        d[k] = (soffa_box_delivery_t) {frames[i].seq, bytes, blen, e[k].message_id, false};
        k++;
    }
    soffa_in_state_t initial = self->cfg.hook[0] ? SOFFA_IN_NEW : SOFFA_IN_DONE;
    soffa_err_t rc = k ? soffa_box_inbox_put(self->box, self->session.mailbox, d, k, initial) : SOFFA_OK;
    if (rc != SOFFA_OK) {
        soffa_error("deliveries not stored (%s); the broker will deliver them again", soffa_strerror(rc));
    } else if (k) {
        /* Durable in the inbox: now, and only now, acknowledge. */
        soffa_frame_t ack = {.type = SOFFA_FRAME_ACK, .seq = frames[k - 1].seq, .has_hash = true};
        memcpy(ack.hash, frames[k - 1].hash, SOFFA_HASH_LEN);
        snprintf(ack.mailbox, sizeof ack.mailbox, "%s", self->session.mailbox);
        soffa_client_send(self->session.client, &ack);
        soffa_agent_reply_wake_watchers(self);
        for (size_t i = 0; i < k; i++) {
            if (d[i].stored) {
                self->inbox.last_delivery_us = soffa_now_us();
                s_note_answer(self, &e[i]);
                soffa_info("received seq %llu (%s) from %s", (unsigned long long) d[i].seq,
                           soffa_msg_type_name((soffa_msg_type_t) e[i].msg_type), e[i].sender_agent);
            } else {
                soffa_debug("seq %llu was delivered before; dropped", (unsigned long long) d[i].seq);
            }
        }
    }
    for (size_t i = 0; i < k; i++) {
        soffa_envelope_fini(&e[i]);
        if (opened[i])
            sodium_memzero(opened[i], opened_len[i]);
        free(opened[i]);
    }
    free(opened);
    free(opened_len);
    free(d);
    free(e);
}

/* ---- Reading ------------------------------------------------------------------------------- */

json_t *
soffa_agent_inbox_record(const soffa_box_in_t *in)
{
    json_t *msg = soffa_record_json(in->env, in->len, NULL, NULL);
    if (msg) {
        static const char *const states[] = {"new", "done", "failed"};
        json_object_set_new(msg, "state", json_string(states[in->state <= 2 ? in->state : 0]));
        json_object_set_new(msg, "hook_attempts", json_integer(in->attempts));
    }
    return msg;
}

/* soffa_box_inbox_get callback: the record into *ctx (a json_t *). */
static int
s_load_json(void *ctx, const soffa_box_in_t *in)
{
    *(json_t **) ctx = soffa_agent_inbox_record(in);
    return 1;
}

static int
s_last_seq(void *ctx, const soffa_box_in_t *in)
{
    *(uint64_t *) ctx = in->seq;
    return 0;
}

json_t *
soffa_agent_inbox_lookup(soffa_agent_t *self, const char *id)
{
    uint64_t seq = 0;
    uint8_t mid[16];
    if (!strcmp(id, "last")) {
        soffa_box_inbox_scan(self->box, 0, s_last_seq, &seq);
        if (!seq)
            return NULL;
    } else if (soffa_uuid_parse(id, mid)) {
        if (soffa_box_inbox_find(self->box, mid, &seq) != SOFFA_OK)
            return NULL;
    } else {
        char *end;
        seq = strtoull(id, &end, 10);
        if (*end || !seq)
            return NULL;
    }
    json_t *msg = NULL;
    soffa_box_inbox_get(self->box, seq, s_load_json, &msg);
    return msg;
}

typedef struct {
    json_t *arr;
    bool failed_only;
    size_t limit;
} s_list_t;

static int
s_list_one(void *ctx, const soffa_box_in_t *in)
{
    s_list_t *l = ctx;
    if (l->failed_only && in->state != SOFFA_IN_FAILED)
        return 0;
    json_t *msg = soffa_agent_inbox_record(in);
    if (msg)
        json_array_append_new(l->arr, msg);
    return json_array_size(l->arr) >= l->limit;
}

json_t *
soffa_agent_inbox_list(soffa_agent_t *self, uint64_t after, bool failed_only, size_t limit)
{
    s_list_t l = {json_array(), failed_only, limit};
    soffa_box_inbox_scan(self->box, after, s_list_one, &l);
    return l.arr;
}
