/*  soffa_replay: audit replays and their access records (see soffa_replay.h). */
#include "soffa_replay.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_log.h"

#include "soffa_session.h"
#include "soffa_commit.h"
#include "soffa_lookup.h"
#include "soffa_ring.h"
#include "soffa_dbatch.h"
#include "soffa_delivery.h"
#include "soffa_send.h"

/* ---- Replay --------------------------------------------------------------------- */

/* A read of the history is recorded before its first record is sent (an
 * OPENED access record, durable before the replay begins) and again when it
 * ends (COMPLETED, before REPLAY-END) or is cut off (CUT_OFF, when the
 * reader goes away or is closed): how many records were sent, under which
 * filter. The reader states its purpose (replay, history, stats,
 * access-log, export); the filter and the count are the broker's own.
 * An export (the per-youth list a municipality reports from, identity
 * numbers included) reads exactly one municipality's KAA journal,
 * kaa-journal/K, and only an auditor whose scope covers it gets it. */

static const char *const s_read_purposes[] = {"replay", "history", "stats", "access-log", "export"};

static void
s_filter_text(const soffa_replay_filter_t *f, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
#define S_ADD(...) o += (size_t) snprintf(out + o, o < len ? len - o : 0, __VA_ARGS__)
    if (f->from_seq || f->to_seq)
        S_ADD("seq %llu..%llu; ", (unsigned long long) f->from_seq, (unsigned long long) f->to_seq);
    if (f->from_us || f->to_us) {
        char a[32] = "-", b[32] = "-";
        if (f->from_us)
            soffa_time_format(f->from_us, a);
        if (f->to_us)
            soffa_time_format(f->to_us, b);
        S_ADD("time %s..%s; ", a, b);
    }
    if (f->mailbox[0])
        S_ADD("mailbox %s; ", f->mailbox);
    if (f->message_type)
        S_ADD("type %s; ", soffa_msg_type_name((soffa_msg_type_t) f->message_type));
    if (f->subject_id[0])
        S_ADD("one subject (keyed); ");
    if (f->limit)
        S_ADD("limit %llu; ", (unsigned long long) f->limit);
    if (o == 0)
        S_ADD("everything in scope");
#undef S_ADD
}

/* Fills p with an access record of session s's read (s may be NULL: the
 * caller fills the sender) for access log `mailbox`. */
void
soffa_replay_access_queue(soffa_broker_t *self, soffa_pending_t *p, const soffa_session_t *s, soffa_access_state_t state,
               uint64_t records, uint64_t opened_seq, soffa_pending_kind_t kind, const char *mailbox)
{
    soffa_access_t a = {.state = state, .records = records, .opened_seq = opened_seq};
    if (s) {
        a.role = s->id->role;
        snprintf(a.agent, sizeof a.agent, "%s", s->id->name);
        snprintf(a.request, sizeof a.request, "%s", s->replay.request);
        s_filter_text(&s->replay.f, a.filter, sizeof a.filter);
    }
    uint8_t *body = NULL;
    size_t len = 0;
    if (soffa_access_encode(&a, &body, &len) != SOFFA_OK) {
        /* Out of memory: an empty record still marks the read. */
        body = NULL;
        len = 0;
    }
    soffa_commit_broker_record(self, p, kind, SOFFA_RK_ACCESS, body, len, mailbox);
    if (s) {
        /* The reader is the sender of its access record. */
        snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", s->id->name);
        p->env.sender_role = s->id->role;
        memcpy(p->rid, s->rid, SOFFA_RID_LEN);
        snprintf(p->subject, sizeof p->subject, "%s", s->replay.f.subject_id);
    }
}

/* ---- The controllers a read concerns (issue 13, rule 11) ------------------------------ */

/* The controller of mailbox as a read records it: the broker's own
 * records (the checkpoints) count as the operator's. */
static void
s_ctl_of(const char *mailbox, char out[SOFFA_NAME_MAX])
{
    soffa_policy_controller(mailbox, out);
    if (!out[0])
        snprintf(out, SOFFA_NAME_MAX, "soffa");
}

/* The index of controller name in s's read, added when new; SIZE_MAX when
 * out of memory. */
static size_t
s_ctl_index(soffa_session_t *s, const char *name)
{
    for (size_t i = 0; i < s->replay.n_ctl; i++)
        if (strcmp(s->replay.ctl[i].name, name) == 0)
            return i;
    soffa_read_ctl_t *g = realloc(s->replay.ctl, (s->replay.n_ctl + 1) * sizeof *g);
    if (!g)
        return SIZE_MAX;
    s->replay.ctl = g;
    soffa_read_ctl_t *c = &g[s->replay.n_ctl];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return s->replay.n_ctl++;
}

static void
s_ctl_add_mailbox(soffa_session_t *s, const char *mailbox)
{
    char c[SOFFA_NAME_MAX];
    s_ctl_of(mailbox, c);
    s_ctl_index(s, c);
}

static int
s_ctl_subject_one(void *ctx, const soffa_store_rec_t *rec)
{
    soffa_session_t *s = ctx;
    soffa_envelope_t e;
    if (s->replay.messages_only && rec->tag != 0 && (rec->tag & 0x80) && rec->tag != (0x80 | SOFFA_RK_DISPOSAL))
        return 0;   /* not a message (nor what says a message was disposed of): a read, a checkpoint */
    if (soffa_envelope_decode(rec->env, rec->len, &e) == SOFFA_OK) {
        if (soffa_policy_may_replay(s->id, e.mailbox))
            s_ctl_add_mailbox(s, e.mailbox);
        soffa_envelope_fini(&e);
    }
    return 0;
}

typedef struct {
    soffa_broker_t *self;
    soffa_session_t *s;
} s_ctl_tombs_t;

static int
s_ctl_tomb_one(void *ctx, uint64_t seq)
{
    s_ctl_tombs_t *t = ctx;
    soffa_store_get(t->self->store, seq, s_ctl_subject_one, t->s);
    return 0;
}

typedef struct {
    soffa_session_t *s;
    bool access_logs;
} s_ctl_scan_t;

static int
s_ctl_mailbox_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_ctl_scan_t *c = ctx;
    const soffa_mailbox_t *m = v;
    if (c->access_logs && strncmp(m->name, SOFFA_ACCESS_MAILBOX, strlen(SOFFA_ACCESS_MAILBOX)) != 0)
        return 0;
    if (m->depth && soffa_policy_may_replay(c->s->id, m->name))
        s_ctl_add_mailbox(c->s, m->name);
    return 0;
}

/* Which controllers the read may concern, before it begins: the mailbox
 * asked for; the mailboxes holding the young person's records; else, for
 * an auditor of one controller that one, and for one whose scope spans
 * controllers every controller with records in its scope. A read that
 * concerns nobody's records is the operator's ("soffa"). */
static soffa_err_t
s_ctl_find(soffa_broker_t *self, soffa_session_t *s)
{
    const soffa_replay_filter_t *fl = &s->replay.f;
    soffa_err_t rc = SOFFA_OK;
    if (s->replay.mode == SOFFA_REPLAY_MAILBOX) {
        s_ctl_add_mailbox(s, fl->mailbox);
    } else if (s->replay.mode == SOFFA_REPLAY_SUBJECT) {
        rc = soffa_store_scan_subject(self->store, fl->subject_id, 0, s_ctl_subject_one, s);
        if (rc == SOFFA_ERR_NOT_FOUND)
            rc = SOFFA_OK;
        /* The disposal records that follow the index (SOFFA_REPLAY_TOMB)
         * concern the controllers of the mailboxes they name. */
        s_ctl_tombs_t t = {self, s};
        if (rc == SOFFA_OK && (rc = soffa_store_tomb_scan(self->store, fl->subject_id, s_ctl_tomb_one, &t)) == SOFFA_ERR_NOT_FOUND)
            rc = SOFFA_OK;
    } else if (s->id->controller[0]) {
        s_ctl_index(s, s->id->controller);
    } else {
        s_ctl_scan_t c = {s, s->replay.access_logs};
        soffa_map_each(self->mailboxes, s_ctl_mailbox_one, &c);
    }
    if (rc == SOFFA_OK && s->replay.n_ctl == 0)
        s_ctl_index(s, s->id->controller[0] ? s->id->controller : "soffa");
    return rc == SOFFA_OK && s->replay.n_ctl == 0 ? SOFFA_ERR_NOMEM : rc;
}

/* Queues one access record per controller of s's read. */
static void
s_ctl_queue(soffa_broker_t *self, soffa_session_t *s, soffa_access_state_t state, soffa_pending_kind_t kind)
{
    for (size_t i = 0; i < s->replay.n_ctl; i++) {
        char mailbox[SOFFA_NAME_MAX];
        soffa_policy_access_mailbox(s->replay.ctl[i].name, mailbox);
        soffa_pending_t *p = soffa_commit_pending_add(self);
        soffa_replay_access_queue(self, p, s, state, state == SOFFA_ACCESS_OPENED ? 0 : s->replay.ctl[i].count,
                                  s->replay.ctl[i].opened_seq, kind, mailbox);
        p->tag = i;   /* which controller: the commit notes its seq there */
    }
    s->replay.waiting = kind == SOFFA_P_BROKER ? 0 : s->replay.n_ctl;
}

void
soffa_replay_cut_off(soffa_broker_t *self, soffa_session_t *s)
{
    s_ctl_queue(self, s, SOFFA_ACCESS_CUT_OFF, SOFFA_P_BROKER);
}

void
soffa_replay_end(soffa_session_t *s)
{
    soffa_ring_fini(&s->replay.ring);
    free(s->replay.ctl);
    s->replay.ctl = NULL;
    s->replay.n_ctl = 0;
    s->replay.waiting = 0;
}

bool
soffa_replay_access_durable(soffa_session_t *s, uint64_t index, uint64_t seq)
{
    if (index < s->replay.n_ctl && s->state == SOFFA_SESS_OPENING)
        s->replay.ctl[index].opened_seq = seq;
    if (s->state == SOFFA_SESS_OPENING && (!s->replay.opened_seq || seq < s->replay.opened_seq))
        s->replay.opened_seq = seq;
    if (s->state == SOFFA_SESS_CLOSING && (!s->replay.closed_seq || seq < s->replay.closed_seq))
        s->replay.closed_seq = seq;
    if (s->replay.waiting)
        s->replay.waiting--;
    return s->replay.waiting == 0;
}

typedef struct {
    soffa_broker_t *self;
    soffa_session_t *s;
    soffa_dbatch_t *b;             /* records gathered, not yet sent */
    size_t ctl[SOFFA_BATCH_MAX];   /* the data controller of each (an index into s->replay.ctl) */
    uint32_t budget;               /* records it may still examine this turn */
    bool done;                     /* reached the end of the range or the limit */
    bool stopped;                  /* the visitor stopped the scan */
    bool blocked;
} s_rp_t;

/* Sends what r gathered: the records enter the replay's window. False when
 * the auditor's queue is full: the replay goes back to the first record not
 * sent, and the loop comes back. */
static bool
s_replay_flush(s_rp_t *r)
{
    soffa_session_t *s = r->s;
    if (r->b->n == 0)
        return true;
    if (!soffa_dbatch_send(r->self, r->b, s->rid, "", s->replay.tag)) {
        s->replay.pos = r->b->items[0].seq - 1;   /* try these again */
        r->blocked = true;
        r->done = false;
        return false;
    }
    for (size_t i = 0; i < r->b->n; i++) {
        soffa_ring_push(&s->replay.ring, r->b->items[i].seq, r->b->items[i].hash);
        if (r->ctl[i] < s->replay.n_ctl)
            s->replay.ctl[r->ctl[i]].count++;   /* sent: counted in its controller's access log */
    }
    s->replay.count += r->b->n;
    soffa_dbatch_begin(r->b, r->b->max);
    return true;
}

static int
s_replay_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_rp_t *r = ctx;
    soffa_session_t *s = r->s;
    r->stopped = true;
    if (rec->seq > s->replay.to) {
        r->done = true;
        return 1;
    }
    s->replay.pos = rec->seq;
    bool give_up_turn = --r->budget == 0;
    if (s->replay.f.message_type && rec->tag != s->replay.f.message_type)
        return give_up_turn;
    if (s->replay.messages_only && (rec->tag & 0x80) && rec->tag != (0x80 | SOFFA_RK_DISPOSAL))
        return give_up_turn;   /* a history holds what happened to the young person (and what of it was
                                * disposed of), not who read it */
    /* Whose record it is: the read's count per controller. */
    size_t ctl = 0;
    if (s->replay.mode != SOFFA_REPLAY_MAILBOX) {
        soffa_envelope_t e;
        bool ok = soffa_envelope_decode(rec->env, rec->len, &e) == SOFFA_OK
               && (s->replay.all_scope || soffa_policy_may_replay(s->id, e.mailbox))
               && (!s->replay.access_logs || !strncmp(e.mailbox, SOFFA_ACCESS_MAILBOX, strlen(SOFFA_ACCESS_MAILBOX)));
        char name[SOFFA_NAME_MAX];
        if (ok) {
            s_ctl_of(e.mailbox, name);
            for (ctl = 0; ctl < s->replay.n_ctl && strcmp(s->replay.ctl[ctl].name, name) != 0; ctl++)
                ;
            /* Not among those its opening record went to (a mailbox that
             * was empty then): not sent, as nothing recorded its reading. */
            ok = ctl < s->replay.n_ctl;
        }
        soffa_envelope_fini(&e);
        if (!ok)
            return give_up_turn;
    }
    /* A record disposed of is replayed as what is left of it: its clear
     * envelope, with no key, so the auditor sees that it existed. */
    soffa_frame_t f = {.type = SOFFA_FRAME_DELIVER, .seq = rec->seq};
    uint8_t *owned = NULL;
    soffa_err_t drc = soffa_lookup_delivery(rec, &f, &owned);
    if (drc != SOFFA_OK && drc != SOFFA_ERR_DISPOSED) {
        soffa_lookup_delivery_done(&f, &owned);
        soffa_warn("replay: record %llu cannot be read (%s); skipped", (unsigned long long) rec->seq, soffa_strerror(drc));
        return give_up_turn;
    }
    bool added = soffa_dbatch_add(r->b, rec->seq, rec->hash, f.data, f.data_len,
                                  f.has_record_key ? f.record_key : NULL);
    soffa_lookup_delivery_done(&f, &owned);
    if (!added) {
        s->replay.pos = rec->seq - 1;
        r->blocked = true;
        return 1;
    }
    r->ctl[r->b->n - 1] = ctl;
    if (s->replay.f.limit && s->replay.count + r->b->n >= s->replay.f.limit) {
        r->done = true;
        return 1;
    }
    if (soffa_dbatch_full(r->b) && !s_replay_flush(r))
        return 1;
    r->stopped = give_up_turn || s->replay.ring.len + r->b->n >= s->replay.window;
    return r->stopped;
}

typedef struct {
    uint64_t after;
    uint64_t seqs[64];
    size_t n;
} s_tombs_t;

static int
s_tomb_seq(void *ctx, uint64_t seq)
{
    s_tombs_t *t = ctx;
    if (seq > t->after && t->n < 64)
        t->seqs[t->n++] = seq;
    return t->n == 64;
}

/* The disposal records of the replayed subject past pos, in order, as
 * s_replay_one takes them (its window, its turn, its range). */
static soffa_err_t
s_replay_tombs(soffa_broker_t *self, soffa_session_t *s, s_rp_t *r)
{
    s_tombs_t t = {.after = s->replay.pos};
    soffa_err_t rc = soffa_store_tomb_scan(self->store, s->replay.f.subject_id, s_tomb_seq, &t);
    if (rc == SOFFA_ERR_NOT_FOUND)
        rc = SOFFA_OK;   /* no keys: no tombstones either */
    r->stopped = false;
    for (size_t i = 0; rc == SOFFA_OK && i < t.n && !r->stopped; i++)
        rc = soffa_store_get(self->store, t.seqs[i], s_replay_one, r);
    if (t.n == 64 && !r->stopped)
        r->stopped = true;   /* more to come next turn */
    return rc;
}

/* The range is done: record the read, then REPLAY-END once that is durable. */
static void
s_replay_close(soffa_broker_t *self, soffa_session_t *s)
{
    soffa_session_set_state(s, SOFFA_SESS_CLOSING);
    s_ctl_queue(self, s, SOFFA_ACCESS_COMPLETED, SOFFA_P_READ_COMPLETED);
}

/* Sends what the replay's window allows, examining at most
 * SOFFA_REPLAY_SCAN_MAX records per turn: a scope-limited replay that skips
 * millions of records yields to everyone else between turns. Records go in
 * batches to an auditor of protocol 2. */
void
soffa_replay_pump(soffa_broker_t *self, soffa_session_t *s)
{
    if (s->state != SOFFA_SESS_REPLAYING || s->replay.ring.len >= s->replay.window)
        return;
    soffa_dbatch_t *b = soffa_delivery_batch(self);
    if (!b)
        return;
    soffa_dbatch_begin(b, s->version >= 2 ? SOFFA_BATCH_MAX : 1);
    s_rp_t r = {.self = self, .s = s, .b = b, .budget = SOFFA_REPLAY_SCAN_MAX};
    soffa_err_t rc;
    switch (s->replay.mode) {
    case SOFFA_REPLAY_MAILBOX:
        rc = soffa_store_scan_mailbox(self->store, s->replay.f.mailbox, s->replay.pos, s_replay_one, &r);
        break;
    case SOFFA_REPLAY_SUBJECT:
        rc = soffa_store_scan_subject(self->store, s->replay.f.subject_id, s->replay.pos, s_replay_one, &r);
        if (rc == SOFFA_OK && (r.done || !r.stopped) && !(s->replay.f.limit && s->replay.count >= s->replay.f.limit)) {
            /* The index is done: what was disposed of follows, as the
             * disposal records the young person's tombstones name. */
            s->replay.mode = SOFFA_REPLAY_TOMB;
            s->replay.pos = 0;
            r.budget = SOFFA_REPLAY_SCAN_MAX;   /* what was gathered stays in the batch */
            r.done = r.stopped = r.blocked = false;
            rc = s_replay_tombs(self, s, &r);
        }
        break;
    case SOFFA_REPLAY_TOMB:
        rc = s_replay_tombs(self, s, &r);
        break;
    default:
        rc = soffa_store_scan(self->store, s->replay.pos + 1, s_replay_one, &r);
        break;
    }
    if (rc != SOFFA_OK) {
        soffa_send_error(self, s->rid, s->replay.tag, rc, "replay failed while reading the store");
        s_replay_close(self, s);
        return;
    }
    if (!r.blocked)
        s_replay_flush(&r);
    if (!r.blocked && (r.done || !r.stopped))
        s_replay_close(self, s);   /* the range ended, or the records did */
    /* Otherwise: blocked, out of window, or out of turn; the loop comes back. */
}

/* The opening record is durable: the read begins. */
void
soffa_replay_begin(soffa_broker_t *self, soffa_session_t *s)
{
    const soffa_replay_filter_t *fl = &s->replay.f;
    uint64_t from = fl->from_seq ? fl->from_seq : 1, to = fl->to_seq ? fl->to_seq : UINT64_MAX;
    uint64_t t;
    if (fl->from_us && soffa_store_seq_at_time(self->store, fl->from_us, &t) == SOFFA_OK && t > from)
        from = t;
    if (fl->to_us && soffa_store_seq_at_time(self->store, fl->to_us, &t) == SOFFA_OK && t - 1 < to)
        to = t - 1;   /* to_us is exclusive */
    /* The read covers the history as it stood when it was asked for: up to
     * the record of the read itself, which it does not include. */
    if (to >= s->replay.opened_seq)
        to = s->replay.opened_seq - 1;
    s->replay.pos = from - 1;
    s->replay.to = to;
    soffa_session_set_state(s, SOFFA_SESS_REPLAYING);
    if (from > to)
        s_replay_close(self, s);
    /* The loop pumps it (never from inside a commit's answers). */
}

void
soffa_replay_on_request(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    if (s->id->role != SOFFA_ROLE_AUDIT) {
        soffa_info("refused replay by %s: not an auditor", s->id->name);
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_NOT_AUTHORISED, "only the audit role may replay the history");
        return;
    }
    const char *purpose = f->text[0] ? f->text : "replay";
    bool known = false;
    for (size_t i = 0; i < sizeof s_read_purposes / sizeof *s_read_purposes; i++)
        known |= strcmp(purpose, s_read_purposes[i]) == 0;
    if (!known) {
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_BAD_FIELD,
                     "the purpose of a read is replay, history, stats, access-log or export");
        return;
    }
    if (!strcmp(purpose, "export")
        && (strncmp(f->filter.mailbox, "kaa-journal/", 12) != 0 || soffa_kommun_check(f->filter.mailbox + 12) != SOFFA_OK
            || f->filter.subject_id[0] || f->filter.message_type)) {
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_BAD_FIELD,
                         "an export reads one municipality's KAA journal whole: filter mailbox kaa-journal/KOD, "
                         "no other filter");
        return;
    }
    /* The access log as agents ask for it ("audit/access"): the auditor's
     * own controller's, or every one in a scope that spans controllers. */
    soffa_replay_filter_t eff = f->filter;
    bool access_logs = false;
    if (!strcmp(purpose, "access-log") && !strcmp(eff.mailbox, SOFFA_ACCESS_MAILBOX) && !eff.subject_id[0]) {
        if (s->id->controller[0])
            soffa_policy_access_mailbox(s->id->controller, eff.mailbox);
        else
            eff.mailbox[0] = '\0', access_logs = true;
    }
    const soffa_replay_filter_t *fl = &eff;
    if (fl->mailbox[0] && !soffa_policy_may_replay(s->id, fl->mailbox)) {
        char why[160];
        snprintf(why, sizeof why, "mailbox '%s' is outside %s's scope", fl->mailbox, s->id->name);
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_NOT_AUTHORISED, why);
        return;
    }
    if (fl->subject_id[0] && soffa_id_check(fl->subject_id, NULL) != SOFFA_OK
        && soffa_reserve_check(fl->subject_id, NULL) != SOFFA_OK) {
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_BAD_FIELD,
                     "the subject filter is not a valid identity number (12 digits) or reserve number");
        return;
    }
    soffa_replay_end(s);
    memset(&s->replay, 0, sizeof s->replay);
    s->replay.tag = f->tag;
    s->replay.f = eff;
    s->replay.access_logs = access_logs;
    s->replay.messages_only = !strcmp(purpose, "history");
    fl = &s->replay.f;
    snprintf(s->replay.request, sizeof s->replay.request, "%.31s", purpose);
    s->replay.mode = fl->subject_id[0] ? SOFFA_REPLAY_SUBJECT : fl->mailbox[0] ? SOFFA_REPLAY_MAILBOX : SOFFA_REPLAY_LOG;
    s->replay.all_scope = strcmp(s->id->scope, "*") == 0;
    s->replay.window_max = f->credit ? f->credit : SOFFA_REPLAY_WINDOW;
    if (s->replay.window_max > (uint32_t) self->cfg.window_max)
        s->replay.window_max = (uint32_t) self->cfg.window_max;
    s->replay.window = s->replay.window_max < SOFFA_SLOW_START ? s->replay.window_max : SOFFA_SLOW_START;
    if (!soffa_ring_init(&s->replay.ring, s->replay.window_max)) {
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_NOMEM, NULL);
        return;
    }
    soffa_err_t crc = s_ctl_find(self, s);
    if (crc != SOFFA_OK) {
        soffa_replay_end(s);
        soffa_send_error(self, s->rid, f->tag, crc, "the read could not be prepared");
        return;
    }
    /* Nothing is sent before the read is in the access log: the opening
     * record goes with the next commit (after everything acknowledged so
     * far), and the replay starts when it is durable. */
    soffa_session_set_state(s, SOFFA_SESS_OPENING);
    s->rp_next = self->replaying;
    self->replaying = s;
    s_ctl_queue(self, s, SOFFA_ACCESS_OPENED, SOFFA_P_READ_OPENED);
}

void
soffa_replay_on_replay_ack(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    if ((s->state != SOFFA_SESS_REPLAYING && s->state != SOFFA_SESS_CLOSING) || f->tag != s->replay.tag)
        return;   /* stale: it crossed the end of the replay on the wire */
    if (!soffa_ring_ack(&s->replay.ring, f->seq, f->hash)) {
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_PROTOCOL_STATE,
                     "a REPLAY-ACK names a record of this replay with the hash it was delivered with");
        return;
    }
    uint32_t w = s->replay.window * 2;
    s->replay.window = w < s->replay.window_max ? w : s->replay.window_max;
    soffa_replay_pump(self, s);
}
