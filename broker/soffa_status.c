/*  soffa_status: awaited answers and STATUS replies (see soffa_status.h). */
#include "soffa_status.h"

#include <sodium.h>
#include <string.h>

#include "soffa_bytes.h"
#include "soffa_log.h"
#include "soffa_notice.h"
#include "soffa_uuid.h"

#include "soffa_commit.h"
#include "soffa_delivery.h"
#include "soffa_send.h"
#include "soffa_lookup.h"

/* ---- Answers awaited ---------------------------------------------------------------- */

/* The running counts behind status and metrics: signals awaiting their
 * acknowledgement and referrals awaiting a status, kept in the store's state
 * table with the records that open and close them, and in memory in arrival
 * order so that those past their deadline are counted without a scan. */

static soffa_await_list_t *
s_await_list(soffa_broker_t *self, char kind)
{
    return kind == SOFFA_POLICY_AWAIT_ACK ? &self->await_signals : &self->await_referrals;
}

void
soffa_status_await_add(soffa_broker_t *self, char kind, const uint8_t id[16], soffa_mailbox_t *m, int64_t received_us)
{
    if (!m)
        return;
    soffa_await_t *a = calloc(1, sizeof *a);
    if (!a)
        return;
    a->key[0] = (uint8_t) kind;
    memcpy(a->key + 1, id, 16);
    if (soffa_map_get(self->awaits, a->key, sizeof a->key) || soffa_map_put(self->awaits, a->key, sizeof a->key, a) != SOFFA_OK) {
        free(a);
        return;
    }
    a->mbox = m;
    a->received_us = received_us;
    soffa_await_list_t *l = s_await_list(self, kind);
    a->prev = l->tail;
    if (l->tail)
        l->tail->next = a;
    else
        l->head = a;
    l->tail = a;
    if (!l->due)
        l->due = a;
    l->n++;
    m->awaiting++;
}

void
soffa_status_await_answered(soffa_broker_t *self, char kind, const uint8_t id[16])
{
    uint8_t key[17];
    key[0] = (uint8_t) kind;
    memcpy(key + 1, id, 16);
    soffa_await_t *a = soffa_map_get(self->awaits, key, sizeof key);
    if (!a)
        return;
    soffa_await_list_t *l = s_await_list(self, kind);
    if (l->due == a)
        l->due = a->next;
    if (a->prev)
        a->prev->next = a->next;
    else
        l->head = a->next;
    if (a->next)
        a->next->prev = a->prev;
    else
        l->tail = a->prev;
    if (a->overdue) {
        a->mbox->overdue--;
        l->n_overdue--;
    }
    l->n--;
    a->mbox->awaiting--;
    soffa_map_remove(self->awaits, key, sizeof key);
    free(a);
}

/* Marks what has passed its deadline; cheap: it looks only at the first
 * entries not yet overdue. */
void
soffa_status_await_tick(soffa_broker_t *self)
{
    int64_t now = soffa_now_us();
    soffa_await_list_t *lists[2] = {&self->await_signals, &self->await_referrals};
    for (int i = 0; i < 2; i++) {
        soffa_await_list_t *l = lists[i];
        while (l->due && l->due->received_us + l->delay_us <= now) {
            l->due->overdue = true;
            l->due->mbox->overdue++;
            l->n_overdue++;
            l->due = l->due->next;
        }
    }
}

/* A referral nobody answered within referral_expiry: the broker records
 * its status EXPIRED (issue 13, rule 8), a record in the history sent to
 * the referring KAA, which answers the awaited receipt; the referral is
 * withheld from then on and late answers are refused (soffa_policy). */
static void
s_expire(soffa_broker_t *self, const uint8_t referral_id[16])
{
    soffa_policy_ref_t r = {0};
    soffa_err_t rc = soffa_lookup_find(self, SOFFA_REF_REFERRAL, referral_id, &r);
    uint8_t id[16], *body = NULL;
    size_t len = 0;
    if (rc == SOFFA_OK) {
        soffa_uuid7(id);
        rc = soffa_notice_expired(r.msg, id, soffa_now_us(), &body, &len);
    }
    if (rc != SOFFA_OK) {
        soffa_error("a referral past its deadline could not be recorded as EXPIRED: %s", soffa_strerror(rc));
        soffa_policy_ref_fini(&r);
        return;
    }
    soffa_identity_t kaa = {.role = r.sender_role};
    snprintf(kaa.name, sizeof kaa.name, "%s", r.sender);
    snprintf(kaa.kommun, sizeof kaa.kommun, "%s", r.sender_kommun);
    char inbox[SOFFA_NAME_MAX];
    soffa_policy_inbox(&kaa, inbox);
    soffa_pending_t *p = soffa_commit_pending_add(self);
    soffa_commit_broker_record(self, p, SOFFA_P_BROKER, SOFFA_RK_MESSAGE, body, len, inbox);
    memcpy(p->env.message_id, id, 16);
    p->env.msg_type = SOFFA_MT_REFERRAL_STATUS_CHANGED;
    snprintf(p->subject, sizeof p->subject, "%s", r.view.subject_id);
    p->dec.answers = SOFFA_RECEIPT_STATUS;
    memcpy(p->dec.answers_id, referral_id, 16);
    p->dec.refs[0].key[0] = SOFFA_REF_STATUS;
    memcpy(p->dec.refs[0].key + 1, referral_id, 16);
    p->dec.refs[0].len = 17;
    p->dec.n_refs = 1;
    soffa_store_state_op_t *op = &p->state[p->n_state++];
    op->key[0] = 'O';
    op->key[1] = SOFFA_RECEIPT_STATUS;
    memcpy(op->key + 2, referral_id, 16);
    op->klen = 18;
    op->del = true;
    soffa_info("referral at seq %llu to %s expired: nobody answered it within %lld s; EXPIRED sent to %s",
               (unsigned long long) r.seq, r.mailbox, (long long) (self->cfg.referral_expiry / 1000), inbox);
    soffa_policy_ref_fini(&r);
}

void
soffa_status_expire_tick(soffa_broker_t *self)
{
    int64_t now = soffa_now_us();
    int64_t delay = self->cfg.referral_expiry * 1000;
    /* In arrival order, so the ones past their expiry are a prefix (those
     * on their way stay in it until their record is stored). The ids are
     * taken first: queuing a record may commit, which answers entries. */
    uint8_t due[64][16];
    size_t n = 0;
    for (soffa_await_t *a = self->await_referrals.head; a && n < 64 && a->received_us + delay <= now; a = a->next)
        if (!a->expiring) {
            a->expiring = true;   /* once: the record is on its way */
            memcpy(due[n++], a->key + 1, 16);
        }
    for (size_t i = 0; i < n; i++)
        s_expire(self, due[i]);
}

void
soffa_status_await_hold(soffa_broker_t *self, char kind, const uint8_t id[16])
{
    uint8_t key[17];
    key[0] = (uint8_t) kind;
    memcpy(key + 1, id, 16);
    soffa_await_t *a = soffa_map_get(self->awaits, key, sizeof key);
    if (a)
        a->expiring = true;
}

typedef struct {
    uint8_t key[17];
    char mailbox[SOFFA_NAME_MAX];
    int64_t received_us;
    uint64_t seq;
} s_await_load_t;

typedef struct {
    s_await_load_t *v;
    size_t n, cap;
    bool bad;
} s_await_loads_t;

static int
s_await_load_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    s_await_loads_t *l = ctx;
    /* key 'O' kind id(16); value received(8) mailbox NUL seq(8) */
    if (kl != 18 || vl < 8 + 2 + 8 || vl > 8 + SOFFA_NAME_MAX + 8 || v[vl - 9] != '\0') {
        l->bad = true;
        return 1;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        s_await_load_t *g = realloc(l->v, cap * sizeof *g);
        if (!g) {
            l->bad = true;
            return 1;
        }
        l->v = g;
        l->cap = cap;
    }
    s_await_load_t *e = &l->v[l->n++];
    memcpy(e->key, k + 1, 17);
    e->received_us = (int64_t) soffa_bytes_get_u64(v);
    snprintf(e->mailbox, sizeof e->mailbox, "%s", (const char *) v + 8);
    e->seq = soffa_bytes_get_u64(v + vl - 8);
    return 0;
}

static int
s_await_cmp(const void *a, const void *b)
{
    uint64_t x = ((const s_await_load_t *) a)->seq, y = ((const s_await_load_t *) b)->seq;
    return x < y ? -1 : x > y;
}

/* Loads the awaited answers at start (their number, not the history). */
soffa_err_t
soffa_status_await_load(soffa_broker_t *self)
{
    s_await_loads_t l = {0};
    soffa_err_t rc = soffa_store_state_scan(self->store, "O", 1, s_await_load_one, &l);
    if (rc == SOFFA_OK && l.bad)
        rc = SOFFA_ERR_STORE_CORRUPT;
    if (rc == SOFFA_OK) {
        if (l.n)
            qsort(l.v, l.n, sizeof *l.v, s_await_cmp);
        for (size_t i = 0; i < l.n; i++)
            soffa_status_await_add(self, (char) l.v[i].key[0], l.v[i].key + 1, soffa_delivery_mailbox(self, l.v[i].mailbox),
                        l.v[i].received_us);
        soffa_status_await_tick(self);
    }
    free(l.v);
    return rc;
}

/* ---- Status ----------------------------------------------------------------------- */

/* Everything here comes from running counts (mailbox totals, the awaited
 * answers, the mailbox ordinals): a status costs a few seeks per mailbox,
 * never a scan of the history. */

typedef struct {
    soffa_broker_t *self;
    const soffa_identity_t *who;
    soffa_mailbox_status_t *st;
    size_t n, cap;
} s_status_t;

static int
s_first_time(void *ctx, const soffa_store_rec_t *rec)
{
    soffa_envelope_t e;
    if (soffa_envelope_decode(rec->env, rec->len, &e) == SOFFA_OK) {
        *(int64_t *) ctx = e.received_at_us;
        soffa_envelope_fini(&e);
    }
    return 1;
}

void
soffa_status_mailbox(soffa_broker_t *self, const soffa_mailbox_t *m, soffa_mailbox_status_t *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->mailbox, sizeof s->mailbox, "%s", m->name);
    s->depth = m->depth;
    s->last_seq = m->last_seq;
    s->overdue = m->overdue;
    /* The slowest reader decides the lag: connected readers, else the
     * stored cursors of the agents whose inbox it is. */
    uint64_t slowest = UINT64_MAX;
    for (soffa_consumer_t *c = m->consumers; c; c = c->next) {
        s->consumers++;
        if (c->acked < slowest)
            slowest = c->acked;
    }
    bool inbox = soffa_policy_is_inbox(m->name);
    if (!s->consumers && inbox) {
        const soffa_identity_t *const *readers = soffa_idtable_readers(self->agents, m->name);
        for (size_t i = 0; readers && readers[i]; i++) {
            char key[2 * SOFFA_NAME_MAX + 2];
            uint64_t cur = 0;
            snprintf(key, sizeof key, "%s|%s", readers[i]->name, m->name);
            soffa_store_cursor_get(self->store, key, &cur);
            if (cur < slowest)
                slowest = cur;
        }
    }
    if (slowest == UINT64_MAX)
        slowest = 0;
    if (inbox || s->consumers) {
        uint64_t done = 0;
        if (slowest && soffa_store_mailbox_rank(self->store, m->name, slowest, &done) != SOFFA_OK)
            done = 0;
        s->lag = m->depth > done ? m->depth - done : 0;
        if (s->lag) {
            int64_t t = 0;
            soffa_store_scan_mailbox(self->store, m->name, slowest, s_first_time, &t);
            s->oldest_undelivered_us = t;
        }
    }
    /* Only an agent's inbox can lack a reader; the broker's own mailboxes
     * (journals, audit/...) are read by replay when someone asks. */
    s->no_reader = inbox && s->lag > 0 && s->consumers == 0;
}

static int
s_status_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_status_t *st = ctx;
    soffa_mailbox_t *m = v;
    if (!(st->who->role == SOFFA_ROLE_AUDIT ? soffa_policy_may_replay(st->who, m->name)
                                            : soffa_policy_may_read(st->who, m->name)))
        return 0;
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 32;
        soffa_mailbox_status_t *n = realloc(st->st, cap * sizeof *n);
        if (!n)
            return 1;
        st->st = n;
        st->cap = cap;
    }
    soffa_status_mailbox(st->self, m, &st->st[st->n++]);
    return 0;
}

void
soffa_status_on_request(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    /* One reply at a time: the next request carries the last reply's
     * receipt, so a client that never reads cannot pile replies up. */
    if (s->status_receipt && f->receipt != s->status_receipt) {
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_PROTOCOL_STATE,
                     "read the previous STATUS-REPLY and send its receipt with the next STATUS-REQUEST");
        return;
    }
    s_status_t st = {self, s->id, NULL, 0, 0};
    soffa_map_each(self->mailboxes, s_status_one, &st);
    soffa_frame_t r = {.type = SOFFA_FRAME_STATUS_REPLY, .tag = f->tag, .sessions = (uint32_t) soffa_map_size(self->sessions),
                       .started_at_us = self->started_at_us, .statuses = st.st, .n_statuses = st.n};
    do
        randombytes_buf(&r.receipt, sizeof r.receipt);
    while (r.receipt == 0);
    soffa_store_head(self->store, &r.head_seq, NULL, NULL);
    if (soffa_send_frame(self, s->rid, &r))
        s->status_receipt = r.receipt;
    free(st.st);
}
