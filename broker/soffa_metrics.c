/*  soffa_metrics: the broker's metrics (see soffa_metrics.h). */
#include "soffa_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soffa_log.h"
#include "soffa_time.h"
#include "soffa_version.h"

#include "soffa_status.h"

#define S_TYPES (SOFFA_MT_LAST + 1)

/* Commit time: from a fast SSD's fraction of a millisecond to a stalled disk. */
static const double s_seconds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 5, 10};
/* Records per commit: 1 up to batch_max's ceiling. */
static const double s_batch[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536};

struct soffa_metrics {
    soffa_prom_t *prom;                        /* the endpoint, or NULL */
    uint64_t published[S_TYPES];               /* stored, by message type */
    uint64_t duplicates;                       /* retries answered with the original sequence */
    uint64_t refused[S_TYPES][SOFFA_ERR__COUNT]; /* by message type and code */
    soffa_prom_hist_t commit;                  /* seconds per group commit (the writer's whole job) */
    soffa_prom_hist_t batch;                   /* records per group commit */
    soffa_prom_hist_t sync;                    /* seconds in LMDB's durable commit */
};

soffa_metrics_t *
soffa_metrics_new(void)
{
    soffa_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    soffa_prom_hist_init(&m->commit, s_seconds, sizeof s_seconds / sizeof *s_seconds);
    soffa_prom_hist_init(&m->sync, s_seconds, sizeof s_seconds / sizeof *s_seconds);
    soffa_prom_hist_init(&m->batch, s_batch, sizeof s_batch / sizeof *s_batch);
    return m;
}

soffa_err_t
soffa_metrics_listen(soffa_broker_t *self, char *why, size_t whylen)
{
    if (!self->cfg.metrics_listen[0])
        return SOFFA_OK;
    char what[1100];
    snprintf(what, sizeof what, "%s: [metrics] listen", self->config_path);
    soffa_err_t rc = soffa_prom_open(&self->metrics->prom, self->cfg.metrics_listen, what, why, whylen);
    if (rc == SOFFA_OK) {
        /* The port it got (port 0 asks for any free one). */
        const char *colon = strrchr(self->cfg.metrics_listen, ':');
        soffa_info("metrics on http://%.*s:%d/metrics", (int) (colon - self->cfg.metrics_listen), self->cfg.metrics_listen,
                   soffa_prom_port(self->metrics->prom));
    }
    return rc;
}

int
soffa_metrics_fd(const soffa_broker_t *self)
{
    return self->metrics && self->metrics->prom ? soffa_prom_fd(self->metrics->prom) : -1;
}

static void
s_render(void *ctx, soffa_prom_text_t *t)
{
    soffa_metrics_render(ctx, t);
}

void
soffa_metrics_answer(soffa_broker_t *self)
{
    if (self->metrics && self->metrics->prom)
        soffa_prom_answer(self->metrics->prom, s_render, self);
}

/* ---- Events ------------------------------------------------------------------------- */

static size_t
s_type(uint32_t type)
{
    return type >= SOFFA_MT_FIRST && type <= SOFFA_MT_LAST ? type : 0;
}

void
soffa_metrics_published(soffa_broker_t *self, uint32_t type)
{
    self->metrics->published[s_type(type)]++;
}

void
soffa_metrics_duplicate(soffa_broker_t *self)
{
    self->metrics->duplicates++;
}

void
soffa_metrics_refused(soffa_broker_t *self, uint32_t type, soffa_err_t code)
{
    if ((unsigned) code >= SOFFA_ERR__COUNT)
        code = SOFFA_ERR_INTERNAL;
    self->metrics->refused[s_type(type)][code]++;
}

void
soffa_metrics_committed(soffa_broker_t *self, size_t records, int64_t took_us, int64_t sync_us)
{
    soffa_prom_hist_observe(&self->metrics->commit, (double) took_us / 1e6);
    soffa_prom_hist_observe(&self->metrics->sync, (double) sync_us / 1e6);
    soffa_prom_hist_observe(&self->metrics->batch, (double) records);
}

/* ---- The exposition ------------------------------------------------------------------ */

static const char *
s_type_name(size_t type)
{
    return type ? soffa_msg_type_name((soffa_msg_type_t) type) : "unknown";
}

typedef struct {
    soffa_mailbox_status_t st;
    uint64_t awaiting;                 /* answers its records wait for */
} s_box_t;

typedef struct {
    soffa_broker_t *self;
    s_box_t *v;
    size_t n, cap;
    bool oom;
} s_boxes_t;

static int
s_box(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_boxes_t *b = ctx;
    const soffa_mailbox_t *m = v;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        s_box_t *nv = realloc(b->v, cap * sizeof *nv);
        if (!nv) {
            b->oom = true;
            return 1;
        }
        b->v = nv;
        b->cap = cap;
    }
    soffa_status_mailbox(b->self, m, &b->v[b->n].st);
    b->v[b->n].awaiting = m->awaiting;
    b->n++;
    return 0;
}

static int
s_box_cmp(const void *a, const void *b)
{
    return strcmp(((const s_box_t *) a)->st.mailbox, ((const s_box_t *) b)->st.mailbox);
}

#define S_PREV_NAMES 64   /* agents named in soffa_broker_previous_key_sessions (the rest summed as "...") */

typedef struct {
    uint64_t live[SOFFA_ROLE_PROVIDER + 1];
    uint64_t closed;
    struct {
        const char *name;
        uint64_t n;
    } prev[S_PREV_NAMES + 1];       /* live sessions on the previous key, by agent */
    size_t n_prev;
} s_sessions_t;

static int
s_session(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_sessions_t *c = ctx;
    const soffa_session_t *s = v;
    if (s->state == SOFFA_SESS_CLOSED)
        c->closed++;
    else if ((unsigned) s->id->role <= SOFFA_ROLE_PROVIDER)
        c->live[s->id->role]++;
    if (s->state != SOFFA_SESS_CLOSED && s->rid[0] == SOFFA_RID_PREVIOUS) {
        size_t i = 0;
        while (i < c->n_prev && i < S_PREV_NAMES && strcmp(c->prev[i].name, s->id->name))
            i++;
        if (i == c->n_prev) {
            c->prev[i].name = i < S_PREV_NAMES ? s->id->name : "...";
            c->n_prev++;
        }
        c->prev[i].n++;
    }
    return 0;
}

/* Resident memory from /proc/self/statm (pages). */
static double
s_rss(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (double) resident * (double) sysconf(_SC_PAGESIZE);
}

/* One gauge family with one sample per mailbox. */
static void
s_per_box(soffa_prom_text_t *t, const s_boxes_t *b, const char *name, const char *help, int which)
{
    soffa_prom_family(t, name, "gauge", help);
    int64_t now = soffa_now_us();
    char l[200];
    for (size_t i = 0; i < b->n; i++) {
        const soffa_mailbox_status_t *s = &b->v[i].st;
        double v = 0;
        switch (which) {
        case 0: v = (double) s->depth; break;
        case 1: v = (double) s->lag; break;
        case 2: v = s->lag && s->oldest_undelivered_us && now > s->oldest_undelivered_us
                        ? (double) (now - s->oldest_undelivered_us) / 1e6 : 0; break;
        case 3: v = (double) s->consumers; break;
        case 4: v = (double) b->v[i].awaiting; break;
        case 5: v = (double) s->overdue; break;
        case 6: v = s->no_reader ? 1 : 0; break;
        }
        if (soffa_prom_label(l, sizeof l, "", "mailbox", s->mailbox))
            soffa_prom_sample(t, name, l, v);
    }
}

void
soffa_metrics_render(soffa_broker_t *self, soffa_prom_text_t *t)
{
    soffa_metrics_t *m = self->metrics;
    char l[256], l2[128];

    soffa_prom_family(t, "soffa_broker_info", "gauge", "the broker's version (the value is always 1)");
    soffa_prom_label(l, sizeof l, "", "version", soffa_version());
    soffa_prom_sample(t, "soffa_broker_info", l, 1);
    soffa_prom_family(t, "process_start_time_seconds", "gauge", "when the broker started (Unix time)");
    soffa_prom_sample(t, "process_start_time_seconds", NULL, (double) (self->started_at_us / 1000000));
    soffa_prom_family(t, "process_resident_memory_bytes", "gauge", "the broker's resident memory");
    soffa_prom_sample(t, "process_resident_memory_bytes", NULL, s_rss());

    /* ---- Publishes ---- */
    soffa_prom_family(t, "soffa_broker_publishes_total", "counter",
                      "messages stored, by type (acknowledged after their commit; retries not counted)");
    for (size_t ty = SOFFA_MT_FIRST; ty <= SOFFA_MT_LAST; ty++) {
        if (strcmp(s_type_name(ty), "unknown") == 0)
            continue;   /* a gap in the numbering */
        soffa_prom_label(l, sizeof l, "", "type", s_type_name(ty));
        soffa_prom_sample(t, "soffa_broker_publishes_total", l, (double) m->published[ty]);
    }
    soffa_prom_family(t, "soffa_broker_duplicates_total", "counter",
                      "retries of stored messages, answered with the original sequence and not stored again");
    soffa_prom_sample(t, "soffa_broker_duplicates_total", NULL, (double) m->duplicates);
    soffa_prom_family(t, "soffa_broker_refusals_total", "counter",
                      "publishes refused, by message type and error code (e.g. NOT_AUTHORISED, STORE_FULL)");
    for (size_t ty = 0; ty < S_TYPES; ty++)
        for (size_t c = 0; c < SOFFA_ERR__COUNT; c++) {
            if (!m->refused[ty][c])
                continue;
            soffa_prom_label(l, sizeof l, "", "type", s_type_name(ty));
            soffa_prom_label(l2, sizeof l2, ",", "code", soffa_errname((soffa_err_t) c));
            strncat(l, l2, sizeof l - strlen(l) - 1);
            soffa_prom_sample(t, "soffa_broker_refusals_total", l, (double) m->refused[ty][c]);
        }
    soffa_prom_family(t, "soffa_broker_deliveries_total", "counter", "records sent to readers (redeliveries included)");
    soffa_prom_sample(t, "soffa_broker_deliveries_total", NULL, (double) self->delivered);

    /* ---- Commits ---- */
    soffa_prom_hist_write(t, "soffa_broker_commit_duration_seconds",
                          "time per group commit, from handing the batch to the writer to its durable end", &m->commit);
    soffa_prom_hist_write(t, "soffa_broker_commit_batch_records",
                          "records per group commit (publishes and the broker's own records)", &m->batch);
    soffa_prom_hist_write(t, "soffa_broker_fsync_duration_seconds",
                          "time in LMDB's durable commit per group commit: page writes, fdatasync, the meta page",
                          &m->sync);

    /* ---- Store ---- */
    uint64_t head = 0, map_size = 0, used = 0, disk_free = 0;
    soffa_store_head(self->store, &head, NULL, NULL);
    soffa_store_usage(self->store, &map_size, &used);
    soffa_store_room(self->store, NULL, &disk_free);
    soffa_prom_family(t, "soffa_store_head_seq", "gauge", "the newest record's sequence number");
    soffa_prom_sample(t, "soffa_store_head_seq", NULL, (double) head);
    soffa_prom_family(t, "soffa_store_map_size_bytes", "gauge", "[store] map_size: the most the store may hold");
    soffa_prom_sample(t, "soffa_store_map_size_bytes", NULL, (double) map_size);
    soffa_prom_family(t, "soffa_store_used_bytes", "gauge", "bytes of the map in use (the store file's size)");
    soffa_prom_sample(t, "soffa_store_used_bytes", NULL, (double) used);
    soffa_prom_family(t, "soffa_store_disk_free_bytes", "gauge", "bytes free for the broker on the store's disk");
    soffa_prom_sample(t, "soffa_store_disk_free_bytes", NULL, (double) disk_free);

    /* ---- Checkpoints ---- */
    soffa_prom_family(t, "soffa_broker_checkpoint_age_seconds", "gauge",
                      "seconds since the last signed checkpoint (or the start, when nothing new needed one)");
    soffa_prom_sample(t, "soffa_broker_checkpoint_age_seconds", NULL, (double) (soffa_mono_us() - self->cp_at) / 1e6);
    soffa_prom_family(t, "soffa_broker_records_since_checkpoint", "gauge", "records no signed checkpoint covers yet");
    soffa_prom_sample(t, "soffa_broker_records_since_checkpoint", NULL, head > self->cp_seq ? (double) (head - self->cp_seq) : 0);

    /* ---- Sessions and agents ---- */
    s_sessions_t ss;
    memset(&ss, 0, sizeof ss);
    soffa_map_each(self->sessions, s_session, &ss);
    soffa_prom_family(t, "soffa_broker_sessions", "gauge", "live agent sessions, by role");
    /* Every role an agent may have: school to audit, and the provider (7,
     * after the broker's own 6). */
    for (int r = SOFFA_ROLE_SCHOOL; r <= SOFFA_ROLE_PROVIDER; r++) {
        if (r == SOFFA_ROLE_BROKER)
            continue;
        soffa_prom_label(l, sizeof l, "", "role", soffa_role_name((soffa_role_t) r));
        soffa_prom_sample(t, "soffa_broker_sessions", l, (double) ss.live[r]);
    }
    soffa_prom_family(t, "soffa_broker_sessions_closing", "gauge", "sessions closed, their connection not yet gone");
    soffa_prom_sample(t, "soffa_broker_sessions_closing", NULL, (double) ss.closed);
    soffa_prom_family(t, "soffa_broker_previous_key_until_seconds", "gauge",
                      "during a key rotation: until when the previous key is served (Unix time; 0: no rotation)");
    soffa_prom_sample(t, "soffa_broker_previous_key_until_seconds", NULL,
                      self->prev_state == 1 ? (double) (self->cfg.previous_until_us / 1000000) : 0);
    soffa_prom_family(t, "soffa_broker_previous_key_sessions", "gauge",
                      "live sessions on the previous key's endpoint, by agent: who still has to move to the new key");
    for (size_t i = 0; i < ss.n_prev; i++) {
        soffa_prom_label(l, sizeof l, "", "agent", ss.prev[i].name);
        soffa_prom_sample(t, "soffa_broker_previous_key_sessions", l, (double) ss.prev[i].n);
    }
    soffa_prom_family(t, "soffa_broker_agents", "gauge", "agents in the configuration in force");
    soffa_prom_sample(t, "soffa_broker_agents", NULL, (double) soffa_idtable_size(self->agents));
    soffa_prom_family(t, "soffa_broker_reloads_total", "counter", "configuration reloads (SIGHUP), taken or refused");
    soffa_prom_sample(t, "soffa_broker_reloads_total", "result=\"taken\"", (double) self->reloads);
    soffa_prom_sample(t, "soffa_broker_reloads_total", "result=\"refused\"", (double) self->reload_failures);

    /* ---- Answers awaited ---- */
    soffa_prom_family(t, "soffa_broker_awaiting", "gauge",
                      "signals waiting for their acknowledgement, referrals waiting for a status");
    soffa_prom_sample(t, "soffa_broker_awaiting", "kind=\"signal_ack\"", (double) self->await_signals.n);
    soffa_prom_sample(t, "soffa_broker_awaiting", "kind=\"referral_receipt\"", (double) self->await_referrals.n);
    soffa_prom_family(t, "soffa_broker_overdue", "gauge",
                      "of those, past [audit] signal_ack_due or referral_receipt_due");
    soffa_prom_sample(t, "soffa_broker_overdue", "kind=\"signal_ack\"", (double) self->await_signals.n_overdue);
    soffa_prom_sample(t, "soffa_broker_overdue", "kind=\"referral_receipt\"", (double) self->await_referrals.n_overdue);

    /* ---- Mailboxes ---- */
    s_boxes_t b = {self, NULL, 0, 0, false};
    soffa_map_each(self->mailboxes, s_box, &b);
    if (b.oom)
        t->oom = true;
    if (b.n)
        qsort(b.v, b.n, sizeof *b.v, s_box_cmp);
    s_per_box(t, &b, "soffa_mailbox_depth", "records stored in the mailbox", 0);
    s_per_box(t, &b, "soffa_mailbox_lag", "records its slowest reader has not acknowledged", 1);
    s_per_box(t, &b, "soffa_mailbox_oldest_unacked_age_seconds",
              "age of the oldest record its slowest reader has not acknowledged (0 when none)", 2);
    s_per_box(t, &b, "soffa_mailbox_readers", "readers connected to the mailbox", 3);
    s_per_box(t, &b, "soffa_mailbox_awaiting", "answers the mailbox's records wait for", 4);
    s_per_box(t, &b, "soffa_mailbox_overdue", "of those, past their deadline", 5);
    s_per_box(t, &b, "soffa_mailbox_no_reader", "1 when an agent's inbox has records waiting and no reader", 6);
    free(b.v);

    soffa_prom_family(t, "soffa_broker_metrics_scrapes_total", "counter", "scrapes of this endpoint answered before this one");
    soffa_prom_sample(t, "soffa_broker_metrics_scrapes_total", NULL, m->prom ? (double) soffa_prom_scrapes(m->prom) : 0);
}

void
soffa_metrics_destroy(soffa_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_prom_close(&(*self_p)->prom);
    free(*self_p);
    *self_p = NULL;
}
