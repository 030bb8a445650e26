/*  soffa_publish: reads a PUBLISH: checks, decides, queues for commit (see soffa_publish.h). */
#include "soffa_publish.h"

#include <stdlib.h>
#include <string.h>

#include "soffa_bytes.h"
#include "soffa_log.h"
#include "soffa_notice.h"
#include "soffa_uuid.h"

#include "soffa_case.h"
#include "soffa_commit.h"
#include "soffa_lookup.h"
#include "soffa_metrics.h"
#include "soffa_send.h"
#include "soffa_status.h"

/* The state changes a committed record brings: answers it awaits or gives,
 * and a subject's protected identity. */
void
soffa_publish_state_ops(soffa_broker_t *self, soffa_pending_t *p, const soffa_msg_view_t *v)
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
        soffa_case_person(self, p->subject, op->key + 1);   /* the person, whichever number names them */
        op->klen = 1 + SOFFA_SUBJECT_KEY_LEN;
        op->del = v->protection_lifted;
        op->with_seq = !op->del;
    }
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

/* The i-th provider agent configured for municipality kommun (facts of a
 * referral to a provider, issue 19); NULL past the end. */
static const soffa_identity_t *
s_provider_at(void *ctx, const char *kommun, size_t i)
{
    soffa_broker_t *self = ctx;
    size_t n = soffa_idtable_size(self->agents);
    for (size_t k = 0; k < n; k++) {
        const soffa_identity_t *id = &soffa_idtable_at(self->agents, k)->id;
        if (id->role == SOFFA_ROLE_PROVIDER && strcmp(id->kommun, kommun) == 0 && i-- == 0)
            return id;
    }
    return NULL;
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

/* ---- Records routed on (issue 13, rule 9) ------------------------------------------ */

/* A follow-up holding one ready record: `body` (taken) stored in `mailbox`
 * under the authorship of the record it copies (sender, role, kommun,
 * unit), with a fresh envelope id. */
static soffa_followup_t *
s_copy_record(soffa_broker_t *self, uint8_t *body, size_t len, soffa_msg_type_t type, const char *mailbox,
              const char *sender, soffa_role_t role, const char *kommun, const char *unit, const char *subject)
{
    soffa_followup_t *f = calloc(1, sizeof *f);
    if (!f) {
        free(body);
        return NULL;
    }
    f->record = true;
    soffa_pending_t *p = &f->rec;
    soffa_commit_broker_record(self, p, SOFFA_P_BROKER, SOFFA_RK_MESSAGE, body, len, mailbox);
    p->env.msg_type = (uint32_t) type;
    snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", sender);
    p->env.sender_role = role;
    snprintf(p->env.sender_kommun, sizeof p->env.sender_kommun, "%s", kommun);
    snprintf(p->env.sender_unit, sizeof p->env.sender_unit, "%s", unit ? unit : "");
    snprintf(p->subject, sizeof p->subject, "%s", subject);
    return f;
}

/* "Not our youth, rerouted": the signal goes on to the KAA of the right
 * home municipality, as the school's signal with that municipality, caused
 * by the acknowledgement; it waits for that KAA's acknowledgement, and
 * answers to it find it there. */
static soffa_followup_t *
s_reroute(soffa_broker_t *self, const soffa_msg_view_t *ack)
{
    soffa_policy_ref_t sig = {0};
    if (soffa_lookup_find(self, SOFFA_REF_SIGNAL, ack->ref_id, &sig) != SOFFA_OK) {
        soffa_policy_ref_fini(&sig);
        return NULL;
    }
    soffa_notice_edit_t edit = {.hemkommun = ack->new_hemkommun, .causation_id = ack->message_id};
    uint8_t *body = NULL;
    size_t len = 0;
    soffa_followup_t *f = NULL;
    soffa_err_t rc = soffa_notice_copy(sig.msg, &edit, &body, &len);
    if (rc == SOFFA_OK) {
        char mailbox[SOFFA_NAME_MAX];
        soffa_policy_facts_t facts;
        soffa_case_facts(self, &sig.view, NULL, &facts);
        soffa_policy_kaa_inbox(&facts, ack->new_hemkommun, &sig.view, NULL, mailbox);
        f = s_copy_record(self, body, len, sig.view.type, mailbox, sig.sender, sig.sender_role, sig.sender_kommun,
                          sig.view.school_unit, sig.view.subject_id);
    } else {
        soffa_error("the rerouted signal at seq %llu could not be built: %s", (unsigned long long) sig.seq,
                    soffa_strerror(rc));
    }
    if (f) {
        soffa_pending_t *p = &f->rec;
        p->dec.refs[0].key[0] = SOFFA_REF_SIGNAL;
        memcpy(p->dec.refs[0].key + 1, ack->ref_id, 16);
        p->dec.refs[0].len = 17;
        p->dec.n_refs = 1;
        p->dec.awaits = SOFFA_RECEIPT_ACK;
        memcpy(p->dec.awaits_id, ack->ref_id, 16);
        soffa_msg_view_t cv = sig.view;
        soffa_publish_state_ops(self, p, &cv);
        soffa_info("signal at seq %llu rerouted by %s's KAA to %s", (unsigned long long) sig.seq,
                   ack->hemkommun, p->env.mailbox);
    }
    soffa_policy_ref_fini(&sig);
    return f;
}

/* A case closed because the young person moved: the new municipality's KAA
 * gets the fact of the move and the identity (the closing, addressed to
 * it, resting on no consent); under a consent that covers it, the case's
 * records follow, a batch at a time. */
static soffa_followup_t *
s_handover(soffa_broker_t *self, const soffa_identity_t *kaa, const soffa_msg_t *msg, const soffa_msg_view_t *v)
{
    char to[SOFFA_NAME_MAX];
    soffa_policy_facts_t facts;
    soffa_case_facts(self, v, kaa, &facts);
    soffa_policy_kaa_inbox(&facts, v->new_hemkommun, v, NULL, to);
    soffa_notice_edit_t edit = {.hemkommun = v->new_hemkommun, .drop_consent = true};
    uint8_t *body = NULL;
    size_t len = 0;
    soffa_err_t rc = soffa_notice_copy(msg, &edit, &body, &len);
    if (rc != SOFFA_OK) {
        soffa_error("the notice of a move could not be built: %s", soffa_strerror(rc));
        return NULL;
    }
    soffa_followup_t *f = s_copy_record(self, body, len, SOFFA_MT_KAA_CASE_CLOSED, to, kaa->name, kaa->role,
                                        kaa->kommun, kaa->unit, v->subject_id);
    if (!f || !v->consent_id)
        return f;
    soffa_policy_ref_t c = {0};
    soffa_followup_t *h = calloc(1, sizeof *h);
    if (h && soffa_lookup_find(self, SOFFA_REF_CONSENT, v->consent_id, &c) == SOFFA_OK) {
        h->handover = true;
        memcpy(h->case_id, v->ref_id, 16);
        memcpy(h->consent_id, v->consent_id, 16);
        memcpy(h->cause, v->message_id, 16);
        snprintf(h->to, sizeof h->to, "%s", to);
        h->categories = c.view.consent_categories;
        f->next = h;
    } else {
        free(h);
        soffa_error("the case handed on to %s goes without its records: its consent could not be read", to);
    }
    soffa_policy_ref_fini(&c);
    return f;
}

/* Whether a case record of `type` goes with a handover under a consent
 * covering data categories `categories` (bit per DataCategory): the
 * registration and the contacts always, occupations and plans or measures
 * only when the consent names them. */
static bool
s_handed_on(soffa_msg_type_t type, uint32_t categories)
{
    switch (type) {
    case SOFFA_MT_KAA_CASE_OPENED:
    case SOFFA_MT_KAA_CASE_REOPENED:
    case SOFFA_MT_CONTACT_ATTEMPTED: return true;
    case SOFFA_MT_CASE_MAPPED:
    case SOFFA_MT_OCCUPATION_RECORDED: return categories & (1u << SOFFA_DC_OCCUPATION);
    case SOFFA_MT_PLAN_AGREED:
    case SOFFA_MT_MEASURE_STARTED:
    case SOFFA_MT_MEASURE_ENDED: return categories & (1u << SOFFA_DC_MEASURES);
    default: return false;   /* the closing went as the notice */
    }
}

/* One record of a case handed on: a copy under the consent, to f->to. */
static void
s_handover_record(soffa_broker_t *self, const soffa_followup_t *f, uint64_t seq)
{
    soffa_policy_ref_t r = {0};
    if (soffa_lookup_at(self, seq, &r) != SOFFA_OK || !s_handed_on(r.view.type, f->categories)) {
        soffa_policy_ref_fini(&r);
        return;
    }
    soffa_notice_edit_t edit = {.consent_id = f->consent_id, .causation_id = f->cause};
    uint8_t *body = NULL;
    size_t len = 0;
    soffa_err_t rc = soffa_notice_copy(r.msg, &edit, &body, &len);
    if (rc == SOFFA_OK) {
        soffa_followup_t *one = s_copy_record(self, body, len, r.view.type, f->to, r.sender, r.sender_role,
                                              r.sender_kommun, NULL, r.view.subject_id);
        if (one) {
            soffa_pending_t *p = soffa_commit_pending_add(self);
            *p = one->rec;
            free(one);
        }
    } else {
        soffa_error("case record at seq %llu not handed on: %s", (unsigned long long) seq, soffa_strerror(rc));
    }
    soffa_policy_ref_fini(&r);
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
            uint8_t prefix[17] = {f->handover ? SOFFA_REF_CASE : SOFFA_REF_BY_CONSENT};
            memcpy(prefix + 1, f->handover ? f->case_id : f->consent_id, 16);
            size_t room = (size_t) self->cfg.batch_max - self->n_pending;
            s_seqs_t seqs = {.after = f->after, .room = room < 256 ? room : 256};
            soffa_err_t rc = soffa_store_ref_scan(self->store, prefix, sizeof prefix, s_collect_seq, &seqs);
            if (rc != SOFFA_OK)
                soffa_error("%s stopped: %s", f->handover ? "a case's handover" : "referral notices for a withdrawn "
                            "consent", soffa_strerror(rc));
            for (size_t i = 0; i < seqs.n; i++) {
                if (f->handover)
                    s_handover_record(self, f, seqs.seqs[i]);
                else
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

/* Copies src into the array dst, cut to fit (as snprintf "%s" does, at a
 * fraction of its cost per publish). */
static void
s_set(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}
#define S_SET(dst, src) s_set((dst), sizeof(dst), (src))

/* What became of one publish at once: queued for the next commit (and
 * answered after it), a retry of a message stored before, or refused. */
typedef enum { S_QUEUED, S_RETRY, S_REFUSED } s_fate_t;

typedef struct {
    s_fate_t fate;
    soffa_err_t rc;                   /* refused: why, as a code */
    /* refused: the reason ("" = the code's own text), as long as an ERROR
     * frame's text (255 bytes): the policy's reasons fit it, and the term
     * filter cuts its own at a character boundary */
    char why[256];
    uint64_t seq;                     /* retry: where it was stored */
    char mailbox[SOFFA_NAME_MAX];     /* retry: the mailbox it went to */
} s_outcome_t;

/* One message from session s under the client's tag: decoded, checked
 * against its sender's claims and the policy, and queued in canonical form
 * for the next commit (batched: its answer goes into the PUBLISH-ACKS of
 * that commit). Each message of a batch goes through here on its own. */
static void
s_publish_one(soffa_broker_t *self, soffa_session_t *s, uint64_t tag, const uint8_t *data, size_t data_len,
              bool batched, s_outcome_t *out)
{
    char *why = out->why;
    size_t whylen = sizeof out->why;
    why[0] = '\0';
    out->fate = S_REFUSED;
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = soffa_msg_decode(data, data_len, &msg);
    if (rc != SOFFA_OK) {
        out->rc = rc;
        snprintf(why, whylen, "the message could not be decoded");
        self->refused++;
        soffa_metrics_refused(self, 0, rc);
        return;
    }
    /* What is stored is what validation saw: fields this broker does not
     * know could not be checked or shown, so such a message is refused. */
    if (soffa_msg_has_unknown_fields(msg)) {
        rc = SOFFA_ERR_MALFORMED;
        snprintf(why, whylen, "the message carries fields soffa does not know; nothing was stored "
                              "(send it as soffa's schema defines it)");
        goto refuse;
    }
    rc = soffa_msg_validate(msg, 0, why, whylen);
    if (rc != SOFFA_OK)
        goto refuse;
    soffa_msg_view_t v;
    soffa_msg_view(msg, &v);

    /* A retry of something stored before gets its original sequence back,
     * whatever has changed since. */
    uint64_t seq;
    if (soffa_store_dedup_get(self->store, s->id->name, v.message_id, &seq) == SOFFA_OK) {
        soffa_policy_ref_t r = {0};
        (void) soffa_lookup_at(self, seq, &r);   /* the mailbox, when its envelope reads */
        out->fate = S_RETRY;
        out->seq = seq;
        memcpy(out->mailbox, r.mailbox, sizeof out->mailbox);
        soffa_policy_ref_fini(&r);
        soffa_metrics_duplicate(self);
        soffa_msg_destroy(&msg);
        return;
    }
    /* A store (or disk) within its headroom takes no more publishes: the
     * room left at the last commit, less what the publishes accepted since
     * may take (counted generously: copy-on-write pages, indices). */
    uint64_t cost = 4 * ((uint64_t) data_len + 512);
    if ((self->map_room < SOFFA_HEADROOM + cost || self->disk_room < SOFFA_HEADROOM + cost)
        && soffa_mono_us() - self->room_at_us >= SOFFA_ROOM_RECHECK_US)
        soffa_commit_room_refresh(self);   /* nothing may commit while all is refused: look again */
    if (self->map_room < SOFFA_HEADROOM + cost || self->disk_room < SOFFA_HEADROOM + cost) {
        rc = self->map_room < SOFFA_HEADROOM + cost ? SOFFA_ERR_STORE_FULL : SOFFA_ERR_DISK_FULL;
        goto refuse;
    }
    self->map_room -= cost;
    self->disk_room -= cost;
    /* Decisions that look records up see everything committed so far. */
    if (soffa_policy_needs_lookup(v.type))
        soffa_commit(self);
    soffa_policy_facts_t facts;
    soffa_case_facts(self, &v, s->id, &facts);
    /* The term list and the date limits go into every decision: the
     * policy refuses free text it cannot screen, so none slips through. */
    facts.terms = self->terms;
    facts.provider_at = s_provider_at;
    facts.ctx = self;
    facts.event_max_days = (uint32_t) self->cfg.event_max_days;
    facts.concern_max_days = (uint32_t) self->cfg.concern_max_days;
    soffa_policy_decision_t dec;
    rc = soffa_policy_decide(s->id, msg, soffa_date_today(), &facts, soffa_lookup_find, self, &dec, why, whylen);
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
    p->batched = batched;
    memcpy(p->rid, s->rid, SOFFA_RID_LEN);
    p->tag = tag;
    p->dec = dec;
    p->body = body;
    p->env.body = body;
    p->env.body_len = len;
    p->env.kind = SOFFA_RK_MESSAGE;
    p->env.msg_type = (uint32_t) v.type;
    memcpy(p->env.message_id, v.message_id, 16);
    /* The sender is the authenticated identity, never the one claimed. */
    S_SET(p->env.sender_agent, s->id->name);
    p->env.sender_role = s->id->role;
    S_SET(p->env.sender_kommun, s->id->kommun);
    /* A principal with several units: the unit the signal names (the
     * policy checked it is one of the sender's), else its first. */
    S_SET(p->env.sender_unit, v.school_unit && v.school_unit[0] ? v.school_unit : s->id->unit);
    p->env.received_at_us = soffa_now_us();
    S_SET(p->env.mailbox, dec.mailbox);
    S_SET(p->subject, v.subject_id);   /* reserve numbers are indexed too */
    soffa_publish_state_ops(self, p, &v);
    soffa_case_ops(self, &v, s->id, p);
    if (dec.answers == SOFFA_RECEIPT_STATUS)
        soffa_status_await_hold(self, dec.answers, dec.answers_id);   /* answered: it does not expire */
    if (v.type == SOFFA_MT_SIGNAL_ACKNOWLEDGED && v.ack_result == SOFFA_AR_NOT_HEMKOMMUN_REROUTED)
        p->after = s_reroute(self, &v);
    if (v.type == SOFFA_MT_KAA_CASE_CLOSED && v.close_reason == SOFFA_CR_MOVED_OUT && v.new_hemkommun[0])
        p->after = s_handover(self, s->id, msg, &v);
    if (v.type == SOFFA_MT_CONSENT_WITHDRAWN && v.ref_id) {
        p->withdraws = true;
        memcpy(p->consent_id, v.ref_id, 16);
    }
    soffa_msg_destroy(&msg);
    out->fate = S_QUEUED;
    return;

refuse:
    self->refused++;
    out->rc = rc;
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
    soffa_msg_destroy(&msg);
}

void
soffa_publish_on_request(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    s_outcome_t o;
    s_publish_one(self, s, f->tag, f->data, f->data_len, false, &o);
    if (o.fate == S_REFUSED) {
        soffa_send_error(self, s->rid, f->tag, o.rc, o.why);
    } else if (o.fate == S_RETRY) {
        soffa_frame_t ack = {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = f->tag, .seq = o.seq, .duplicate = true};
        memcpy(ack.mailbox, o.mailbox, sizeof ack.mailbox);
        soffa_send_frame(self, s->rid, &ack);
    }
}

/* PUBLISH-BATCH: each message on its own, as if it had come alone; what is
 * decided at once (refusals, retries) is answered in one PUBLISH-ACKS, the
 * rest after the commit that stores it. */
void
soffa_publish_on_batch(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    s_outcome_t *o = malloc(f->n_items * sizeof *o);
    soffa_frame_item_t *now = calloc(f->n_items, sizeof *now);
    if (!o || !now) {
        free(o);
        free(now);
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_NOMEM, "no memory for the batch; nothing of it was stored");
        return;
    }
    size_t n_now = 0;
    for (size_t i = 0; i < f->n_items; i++) {
        const soffa_frame_item_t *it = &f->items[i];
        s_publish_one(self, s, it->tag, it->data, it->data_len, true, &o[i]);
        if (o[i].fate == S_QUEUED)
            continue;
        soffa_frame_item_t *a = &now[n_now++];
        a->tag = it->tag;
        if (o[i].fate == S_RETRY) {
            a->seq = o[i].seq;
            a->duplicate = true;
            a->mailbox = o[i].mailbox;
        } else {
            a->code = (uint32_t) o[i].rc;
            a->text = o[i].why[0] ? o[i].why : soffa_strerror(o[i].rc);
        }
    }
    for (size_t i = 0; i < n_now; i += SOFFA_ACKS_MAX) {
        size_t k = n_now - i < SOFFA_ACKS_MAX ? n_now - i : SOFFA_ACKS_MAX;
        soffa_frame_t acks = {.type = SOFFA_FRAME_PUBLISH_ACKS, .items = now + i, .n_items = k};
        if (!soffa_send_frame(self, s->rid, &acks))
            soffa_debug("%zu answer(s) to a batch not delivered; the sender will retry", k);
    }
    free(o);
    free(now);
}
