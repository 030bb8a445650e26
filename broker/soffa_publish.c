/*  soffa_publish: reads a PUBLISH: checks, decides, queues for commit (see soffa_publish.h). */
#include "soffa_publish.h"

#include <stdlib.h>
#include <string.h>

#include "soffa_bytes.h"
#include "soffa_log.h"
#include "soffa_uuid.h"

#include "soffa_commit.h"
#include "soffa_lookup.h"
#include "soffa_metrics.h"
#include "soffa_send.h"

/* The state changes a committed record brings: answers it awaits or gives,
 * and a subject's protected identity. */
static void
s_state_ops(soffa_broker_t *self, soffa_pending_t *p, const soffa_msg_view_t *v)
{
    if (p->dec.awaits && p->n_state < SOFFA_STORE_STATE_OPS) {
        soffa_store_state_op_t *op = &p->state[p->n_state++];
        op->key[0] = 'O';
        op->key[1] = (uint8_t) p->dec.awaits;
        memcpy(op->key + 2, p->dec.awaits_id, 16);
        op->klen = 18;
        soffa_bytes_put_u64(op->val, (uint64_t) p->env.received_at_us);
        size_t ml = strlen(p->env.mailbox);
        memcpy(op->val + 8, p->env.mailbox, ml + 1);
        op->vlen = 8 + ml + 1;
        op->with_seq = true;
    }
    if (p->dec.answers && p->n_state < SOFFA_STORE_STATE_OPS) {
        soffa_store_state_op_t *op = &p->state[p->n_state++];
        op->key[0] = 'O';
        op->key[1] = (uint8_t) p->dec.answers;
        memcpy(op->key + 2, p->dec.answers_id, 16);
        op->klen = 18;
        op->del = true;
    }
    if (p->subject[0] && (v->protected_identity || v->protection_lifted) && p->n_state < SOFFA_STORE_STATE_OPS) {
        soffa_store_state_op_t *op = &p->state[p->n_state++];
        op->key[0] = 'P';
        soffa_store_subject_key(self->store, p->subject, op->key + 1);
        op->klen = 1 + SOFFA_SUBJECT_KEY_LEN;
        op->del = v->protection_lifted;
        op->with_seq = !op->del;
    }
}

/* Whether an earlier message marked the subject's identity protected. */
static bool
s_subject_protected(soffa_broker_t *self, const char *subject)
{
    uint8_t key[1 + SOFFA_SUBJECT_KEY_LEN] = {'P'};
    soffa_store_subject_key(self->store, subject, key + 1);
    return soffa_store_state_get(self->store, key, sizeof key, NULL, 0, NULL) == SOFFA_OK;
}

/* Queues what must follow a commit (a ready record, or a withdrawal's
 * notices) for the loop to add to a later batch; never a commit of its own. */
void
soffa_publish_followup_push(soffa_broker_t *self, soffa_followup_t *f)
{
    f->next = NULL;
    if (self->followups_tail)
        self->followups_tail->next = f;
    else
        self->followups = f;
    self->followups_tail = f;
}

/* A referral that rests on a withdrawn consent: its recipient is told. */
static bool
s_withdrawal_notice(soffa_broker_t *self, const soffa_followup_t *f, uint64_t seq)
{
    soffa_policy_ref_t r = {0};
    if (soffa_lookup_at(self, seq, &r) != SOFFA_OK || r.view.type != SOFFA_MT_REFERRAL_SENT) {
        soffa_policy_ref_fini(&r);
        return false;
    }
    uint8_t id[16], *body = NULL;
    size_t len = 0;
    soffa_uuid7(id);
    soffa_err_t rc = soffa_msg_referral_withdrawn(r.msg, f->consent_id, f->cause, id, soffa_now_us(), &body, &len);
    if (rc == SOFFA_OK) {
        soffa_pending_t *p = soffa_commit_pending_add(self);
        soffa_commit_broker_record(self, p, SOFFA_P_BROKER, SOFFA_RK_MESSAGE, body, len, r.mailbox);
        memcpy(p->env.message_id, id, 16);
        p->env.msg_type = SOFFA_MT_REFERRAL_WITHDRAWN;
        snprintf(p->subject, sizeof p->subject, "%s", r.view.subject_id);
        soffa_info("consent withdrawn: referral-withdrawn sent to %s for the referral at seq %llu", r.mailbox,
                   (unsigned long long) r.seq);
    } else {
        soffa_error("could not build referral-withdrawn for seq %llu: %s", (unsigned long long) r.seq, soffa_strerror(rc));
    }
    soffa_policy_ref_fini(&r);
    return rc == SOFFA_OK;
}

typedef struct {
    uint64_t after;
    uint64_t seqs[256];
    size_t n, room;
    bool more;
} s_seqs_t;

static int
s_collect_seq(void *ctx, uint64_t seq)
{
    s_seqs_t *s = ctx;
    if (seq <= s->after)
        return 0;
    if (s->n == s->room) {
        s->more = true;
        return 1;
    }
    s->seqs[s->n++] = seq;
    return 0;
}

/* Adds queued follow-ups to the pending batch while it has room: every
 * referral of a withdrawn consent gets its notice, however many there are,
 * a batch at a time. */
void
soffa_publish_followups_run(soffa_broker_t *self)
{
    while (self->followups && self->n_pending < (size_t) self->cfg.batch_max) {
        soffa_followup_t *f = self->followups;
        bool done = true;
        if (f->record) {
            soffa_pending_t *p = soffa_commit_pending_add(self);
            *p = f->rec;
        } else {
            uint8_t prefix[17] = {SOFFA_REF_BY_CONSENT};
            memcpy(prefix + 1, f->consent_id, 16);
            size_t room = (size_t) self->cfg.batch_max - self->n_pending;
            s_seqs_t seqs = {.after = f->after, .room = room < 256 ? room : 256};
            soffa_err_t rc = soffa_store_ref_scan(self->store, prefix, sizeof prefix, s_collect_seq, &seqs);
            if (rc != SOFFA_OK)
                soffa_error("referral notices for a withdrawn consent stopped: %s", soffa_strerror(rc));
            for (size_t i = 0; i < seqs.n; i++) {
                s_withdrawal_notice(self, f, seqs.seqs[i]);
                f->after = seqs.seqs[i];
            }
            done = rc != SOFFA_OK || !seqs.more;
        }
        if (!done)
            return;   /* the batch is full: the rest next round */
        self->followups = f->next;
        if (!self->followups)
            self->followups_tail = NULL;
        free(f);
    }
}

void
soffa_publish_on_request(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    /* As long as an ERROR frame's text (255 bytes): the policy's reasons
     * fit it, and the term filter cuts its own at a character boundary. */
    char why[256] = "";
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = soffa_msg_decode(f->data, f->data_len, &msg);
    if (rc != SOFFA_OK) {
        soffa_send_error(self, s->rid, f->tag, rc, "the message could not be decoded");
        self->refused++;
        soffa_metrics_refused(self, 0, rc);
        return;
    }
    /* What is stored is what validation saw: fields this broker does not
     * know could not be checked or shown, so such a message is refused. */
    if (soffa_msg_has_unknown_fields(msg)) {
        rc = SOFFA_ERR_MALFORMED;
        snprintf(why, sizeof why, "the message carries fields soffa does not know; nothing was stored "
                                  "(send it as soffa's schema defines it)");
        goto refuse;
    }
    rc = soffa_msg_validate(msg, 0, why, sizeof why);
    if (rc != SOFFA_OK)
        goto refuse;
    soffa_msg_view_t v;
    soffa_msg_view(msg, &v);

    /* A retry of something stored before gets its original sequence back,
     * whatever has changed since. */
    uint64_t seq;
    if (soffa_store_dedup_get(self->store, s->id->name, v.message_id, &seq) == SOFFA_OK) {
        soffa_frame_t ack = {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = f->tag, .seq = seq, .duplicate = true};
        soffa_policy_ref_t r = {0};
        (void) soffa_lookup_at(self, seq, &r);   /* the mailbox, when its envelope reads */
        memcpy(ack.mailbox, r.mailbox, sizeof ack.mailbox);
        soffa_policy_ref_fini(&r);
        soffa_send_frame(self, s->rid, &ack);
        soffa_metrics_duplicate(self);
        soffa_msg_destroy(&msg);
        return;
    }
    /* A store (or disk) within its headroom takes no more publishes: the
     * room left at the last commit, less what the publishes accepted since
     * may take (counted generously: copy-on-write pages, indices). */
    uint64_t cost = 4 * ((uint64_t) f->data_len + 512);
    if (self->map_room < SOFFA_HEADROOM + cost || self->disk_room < SOFFA_HEADROOM + cost) {
        rc = self->map_room < SOFFA_HEADROOM + cost ? SOFFA_ERR_STORE_FULL : SOFFA_ERR_DISK_FULL;
        goto refuse;
    }
    self->map_room -= cost;
    self->disk_room -= cost;
    /* Decisions that look records up see everything committed so far. */
    if (soffa_policy_needs_lookup(v.type))
        soffa_commit(self);
    /* The term list and the date limits go into every decision: the
     * policy refuses free text it cannot screen, so none slips through. */
    soffa_policy_facts_t facts = {.subject_protected = s_subject_protected(self, v.subject_id),
                                  .terms = self->terms,
                                  .event_max_days = (uint32_t) self->cfg.event_max_days,
                                  .concern_max_days = (uint32_t) self->cfg.concern_max_days};
    soffa_policy_decision_t dec;
    rc = soffa_policy_decide(s->id, msg, soffa_date_today(), &facts, soffa_lookup_find, self, &dec, why, sizeof why);
    if (rc != SOFFA_OK)
        goto refuse;
    /* Stored and delivered: the canonical encoding of the decoded message,
     * never the publisher's bytes (a repeated payload or field is gone). */
    uint8_t *body = NULL;
    size_t len = 0;
    rc = soffa_msg_encode(msg, &body, &len);
    if (rc != SOFFA_OK)
        goto refuse;

    soffa_pending_t *p = soffa_commit_pending_add(self);
    p->kind = SOFFA_P_PUBLISH;
    memcpy(p->rid, s->rid, SOFFA_RID_LEN);
    p->tag = f->tag;
    p->dec = dec;
    p->body = body;
    p->env.body = body;
    p->env.body_len = len;
    p->env.kind = SOFFA_RK_MESSAGE;
    p->env.msg_type = (uint32_t) v.type;
    memcpy(p->env.message_id, v.message_id, 16);
    /* The sender is the authenticated identity, never the one claimed. */
    snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", s->id->name);
    p->env.sender_role = s->id->role;
    snprintf(p->env.sender_kommun, sizeof p->env.sender_kommun, "%s", s->id->kommun);
    /* A principal with several units: the unit the signal names (the
     * policy checked it is one of the sender's), else its first. */
    snprintf(p->env.sender_unit, sizeof p->env.sender_unit, "%s",
             v.school_unit && v.school_unit[0] ? v.school_unit : s->id->unit);
    p->env.received_at_us = soffa_now_us();
    snprintf(p->env.mailbox, sizeof p->env.mailbox, "%s", dec.mailbox);
    snprintf(p->subject, sizeof p->subject, "%s", v.subject_id);   /* reserve numbers are indexed too */
    s_state_ops(self, p, &v);
    if (v.type == SOFFA_MT_CONSENT_WITHDRAWN && v.ref_id) {
        p->withdraws = true;
        memcpy(p->consent_id, v.ref_id, 16);
    }
    soffa_msg_destroy(&msg);
    return;

refuse:
    self->refused++;
    {
        char mid[SOFFA_UUID_STR] = "-";
        soffa_msg_view_t vv;
        soffa_msg_view(msg, &vv);
        if (vv.message_id)
            soffa_uuid_format(vv.message_id, mid);
        soffa_metrics_refused(self, (uint32_t) vv.type, rc);
        soffa_info("refused %s %s from %s: %s: %s", soffa_msg_type_name(vv.type), mid, s->id->name,
                   soffa_errname(rc), why[0] ? why : soffa_strerror(rc));
    }
    soffa_send_error(self, s->rid, f->tag, rc, why);
    soffa_msg_destroy(&msg);
}
