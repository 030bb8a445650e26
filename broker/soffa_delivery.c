/*  soffa_delivery: mailboxes, readers and credit windows (see soffa_delivery.h). */
#include "soffa_delivery.h"

#include <stdlib.h>
#include <string.h>

#include "soffa_log.h"

#include "soffa_session.h"
#include "soffa_case.h"
#include "soffa_commit.h"
#include "soffa_lookup.h"
#include "soffa_ring.h"
#include "soffa_dbatch.h"
#include "soffa_send.h"

/* ---- Mailboxes and store lookups ----------------------------------------------- */

soffa_dbatch_t *
soffa_delivery_batch(soffa_broker_t *self)
{
    if (!self->dbatch && !(self->dbatch = calloc(1, sizeof *self->dbatch)))
        soffa_warn("deliveries wait: no memory for a batch");
    return self->dbatch;
}

soffa_mailbox_t *
soffa_delivery_mailbox(soffa_broker_t *self, const char *name)
{
    soffa_mailbox_t *m = soffa_map_sget(self->mailboxes, name);
    if (m)
        return m;
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->name, sizeof m->name, "%s", name);
    if (soffa_map_sput(self->mailboxes, m->name, m) != SOFFA_OK) {
        free(m);
        return NULL;
    }
    return m;
}

int
soffa_delivery_load_mailbox(void *ctx, const char *name, uint64_t count, uint64_t last)
{
    soffa_mailbox_t *m = soffa_delivery_mailbox(ctx, name);
    if (m) {
        m->depth = count;
        m->last_seq = last;
    }
    return 0;
}

void
soffa_delivery_consumer_free(soffa_broker_t *self, soffa_consumer_t *c)
{
    soffa_consumer_t **pp = &c->mbox->consumers;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    if (c->acked > c->flushed)
        soffa_commit_cursor_queue(self, c->cursor_key, c->acked);
    soffa_ring_fini(&c->ring);
    free(c);
}

typedef struct {
    soffa_broker_t *self;
    soffa_consumer_t *c;
    soffa_dbatch_t *b;             /* the records gathered, not yet sent */
    uint64_t covered;              /* last sequence examined (sent, gathered or withheld) */
    uint32_t budget;               /* deliveries we may still gather */
    bool blocked;                  /* the peer's queue is full */
} s_pump_t;

/* Sends what p gathered: the records enter the reader's window and its
 * position moves past everything examined. False when the peer's queue is
 * full: nothing moves, and the records go again later. */
static bool
s_pump_flush(s_pump_t *p)
{
    soffa_consumer_t *c = p->c;
    if (!soffa_dbatch_send(p->self, p->b, c->session->rid, c->mbox->name, 0)) {
        p->blocked = true;
        return false;
    }
    for (size_t i = 0; i < p->b->n; i++)
        soffa_ring_push(&c->ring, p->b->items[i].seq, p->b->items[i].hash);
    p->self->delivered += p->b->n;
    c->sent = p->covered;
    soffa_dbatch_begin(p->b, p->b->max);
    return true;
}

static int
s_pump_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_pump_t *p = ctx;
    soffa_consumer_t *c = p->c;
    soffa_frame_t f = {.type = SOFFA_FRAME_DELIVER, .seq = rec->seq, .has_hash = true};
    uint8_t *owned = NULL;
    if (soffa_lookup_delivery(rec, &f, &owned) != SOFFA_OK) {
        /* Disposed of before this reader got it (or unreadable): there is
         * nothing left to deliver; the disposal record that says so comes
         * in its place. */
        soffa_lookup_delivery_done(&f, &owned);
        soffa_debug("seq %llu not delivered to %s: disposed of", (unsigned long long) rec->seq, c->mbox->name);
        p->covered = rec->seq;
        return 0;
    }
    if (soffa_policy_delivery_checked((soffa_msg_type_t) rec->tag)) {
        /* Consent is checked again at delivery (issue 13, rule 7): what
         * rests on a consent withdrawn or no longer valid since, or a
         * referral that expired, is withheld (the recipient of a referral
         * hears of a withdrawal from the notice the withdrawal sends). */
        soffa_envelope_t e;
        soffa_msg_t *m = NULL;
        bool ok = false;
        soffa_msg_type_t type = (soffa_msg_type_t) rec->tag;
        if (soffa_envelope_open(rec->env, rec->len, rec->has_key ? rec->key : NULL, &e) == SOFFA_OK) {
            if (soffa_msg_decode(e.body, e.body_len, &m) == SOFFA_OK) {
                soffa_msg_view_t v;
                soffa_msg_view(m, &v);
                soffa_policy_facts_t facts = {.same_person = soffa_case_same_person, .ctx = p->self};
                ok = soffa_policy_deliverable(&v, e.sender_role, e.mailbox, soffa_date_today(), &facts,
                                              soffa_lookup_find, p->self);
            }
            soffa_envelope_fini(&e);
        }
        soffa_msg_destroy(&m);
        if (!ok) {
            soffa_info("%s at seq %llu withheld from %s: its consent is withdrawn or no longer valid, or it expired",
                       soffa_msg_type_name(type), (unsigned long long) rec->seq, c->mbox->name);
            soffa_lookup_delivery_done(&f, &owned);
            p->covered = rec->seq;
            return 0;
        }
    }
    bool added = soffa_dbatch_add(p->b, rec->seq, rec->hash, f.data, f.data_len,
                                  f.has_record_key ? f.record_key : NULL);
    soffa_lookup_delivery_done(&f, &owned);
    if (!added) {
        soffa_warn("delivery to %s waits: no memory for a batch", c->mbox->name);
        p->blocked = true;
        return 1;
    }
    p->covered = rec->seq;
    if (soffa_dbatch_full(p->b) && !s_pump_flush(p))
        return 1;
    return --p->budget == 0;
}

/* Sends what the window allows, in batches for a reader of protocol 2. */
static void
s_pump(soffa_broker_t *self, soffa_consumer_t *c)
{
    soffa_dbatch_t *b = soffa_delivery_batch(self);
    if (!b)
        return;
    while (c->ring.len < c->window && c->sent < c->mbox->last_seq) {
        soffa_dbatch_begin(b, c->session->version >= 2 ? SOFFA_BATCH_MAX : 1);
        s_pump_t p = {self, c, b, c->sent, c->window - c->ring.len, false};
        uint64_t before = c->sent;
        soffa_err_t rc = soffa_store_scan_mailbox(self->store, c->mbox->name, c->sent, s_pump_one, &p);
        if (rc != SOFFA_OK) {
            soffa_error("delivery to %s stopped: %s", c->mbox->name, soffa_strerror(rc));
            return;
        }
        if (!p.blocked)
            s_pump_flush(&p);   /* the rest; withheld records alone move the position too */
        if (p.blocked || c->sent == before)
            return;
    }
}

void
soffa_delivery_pump_mailbox(soffa_broker_t *self, soffa_mailbox_t *m)
{
    for (soffa_consumer_t *c = m->consumers; c; c = c->next)
        s_pump(self, c);
}

static int
s_flush_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    soffa_broker_t *self = ctx;
    soffa_session_t *s = v;
    for (size_t i = 0; i < s->n_consumers; i++) {
        soffa_consumer_t *c = s->consumers[i];
        if (c->acked > c->flushed) {
            /* Written with the next commit; if that fails, the deliveries
             * since the last saved position come again (agents drop them). */
            soffa_commit_cursor_queue(self, c->cursor_key, c->acked);
            c->flushed = c->acked;
        }
    }
    return 0;
}

void
soffa_delivery_flush_cursors(soffa_broker_t *self)
{
    soffa_map_each(self->sessions, s_flush_one, self);
}

static soffa_consumer_t *
s_session_consumer(soffa_session_t *s, const char *mailbox)
{
    for (size_t i = 0; i < s->n_consumers; i++)
        if (strcmp(s->consumers[i]->mbox->name, mailbox) == 0)
            return s->consumers[i];
    return NULL;
}

void
soffa_delivery_on_subscribe(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    if (!soffa_policy_may_read(s->id, f->mailbox)) {
        char why[200];
        snprintf(why, sizeof why, "%s may not read mailbox '%s'", s->id->name, f->mailbox);
        soffa_info("refused subscribe: %s", why);
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_NOT_AUTHORISED, why);
        return;
    }
    if (s_session_consumer(s, f->mailbox)) {
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_PROTOCOL_STATE, "already subscribed to that mailbox");
        return;
    }
    if (s->n_consumers >= sizeof s->consumers / sizeof *s->consumers) {
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_TOO_LARGE, "too many subscriptions");
        return;
    }
    soffa_mailbox_t *m = soffa_delivery_mailbox(self, f->mailbox);
    if (!m) {
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_NOMEM, NULL);
        return;
    }
    char key[2 * SOFFA_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s|%s", s->id->name, m->name);
    /* One reader per (agent, mailbox): a newer session takes over, and the
     * older one is closed and told why, never left connected and deaf. */
    for (soffa_consumer_t *c = m->consumers; c; c = c->next) {
        if (strcmp(c->cursor_key, key) == 0) {
            char why[256];
            snprintf(why, sizeof why, "another connection with the key of %s took over mailbox %s", s->id->name,
                     m->name);
            soffa_session_close(self, c->session, SOFFA_ERR_SESSION_CLOSED, why);
            break;
        }
    }
    soffa_consumer_t *c = calloc(1, sizeof *c);
    uint32_t window = f->credit ? f->credit : 64;
    if (window > (uint32_t) self->cfg.window_max)
        window = (uint32_t) self->cfg.window_max;
    if (!c || !soffa_ring_init(&c->ring, window)) {
        free(c);
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_NOMEM, NULL);
        return;
    }
    c->session = s;
    c->mbox = m;
    memcpy(c->cursor_key, key, sizeof key);
    /* Slow start: a reader that has not shown it reads gets a small window
     * (a connection that never reads holds SOFFA_SLOW_START deliveries at most);
     * each acknowledgement doubles it up to what was asked for. */
    c->window_max = window;
    c->window = window < SOFFA_SLOW_START ? window : SOFFA_SLOW_START;
    if (soffa_store_cursor_get(self->store, key, &c->acked) != SOFFA_OK)
        c->acked = 0;
    c->flushed = c->sent = c->acked;
    c->next = m->consumers;
    m->consumers = c;
    s->consumers[s->n_consumers++] = c;
    soffa_info("%s reads %s from seq %llu, window %u", s->id->name, m->name, (unsigned long long) c->acked + 1,
               window);
    s_pump(self, c);
}

void
soffa_delivery_on_ack(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    soffa_consumer_t *c = s_session_consumer(s, f->mailbox);
    if (!c) {
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_PROTOCOL_STATE, "ack for a mailbox not subscribed");
        return;
    }
    if (f->seq <= c->acked)
        return;   /* stale */
    if (!f->has_hash || !soffa_ring_ack(&c->ring, f->seq, f->hash)) {
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_PROTOCOL_STATE,
                     "an ACK names a sequence delivered in this session and carries the hash it was delivered with");
        return;
    }
    c->acked = f->seq;
    c->window = c->window * 2 < c->window_max ? c->window * 2 : c->window_max;
    s_pump(self, c);
}

void
soffa_delivery_on_credit(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    soffa_consumer_t *c = f->mailbox[0] ? s_session_consumer(s, f->mailbox) : NULL;
    if (!c) {
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_PROTOCOL_STATE,
                     f->mailbox[0] ? "credit for a mailbox not subscribed"
                                   : "a replay's window is freed with REPLAY-ACK, not CREDIT");
        return;
    }
    uint32_t w = f->credit ? f->credit : 1;
    if (w > (uint32_t) self->cfg.window_max)
        w = (uint32_t) self->cfg.window_max;
    if (!soffa_ring_grow(&c->ring, w))
        return;
    c->window_max = w;
    if (c->window > w)
        c->window = w;
    s_pump(self, c);
}
