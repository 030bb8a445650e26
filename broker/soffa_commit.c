/*  soffa_commit: the commit pipeline: batches, the writer thread, checkpoints (see soffa_commit.h). */
#include "soffa_commit.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_cfg.h"
#include "soffa_log.h"
#include "soffa_retention.h"
#include "soffa_uuid.h"

static bool s_checkpoint_make(soffa_broker_t *self, soffa_pending_t *p);
static bool s_checkpoint_due(soffa_broker_t *self);

/* ---- Consumers ------------------------------------------------------------------ */

/* Queues a cursor for the next commit (the writer thread owns the store's
 * write side; nothing is written from here). */
void
soffa_commit_cursor_queue(soffa_broker_t *self, const char *key, uint64_t seq)
{
    soffa_cursors_t *q = &self->cur_pending;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->v[i].key, key) == 0) {
            if (seq > q->v[i].seq)
                q->v[i].seq = seq;
            return;
        }
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        soffa_cursor_rec_t *grown = realloc(q->v, cap * sizeof *grown);
        if (!grown) {
            soffa_warn("cursor of %s not saved now: out of memory", key);
            return;
        }
        q->v = grown;
        q->cap = cap;
    }
    snprintf(q->v[q->n].key, sizeof q->v[q->n].key, "%s", key);
    q->v[q->n++].seq = seq;
}

/* ---- Group commit ------------------------------------------------------------- */

/* Drops what would have followed record p (it was never stored). */
static void
s_after_drop(soffa_pending_t *p)
{
    while (p->after) {
        soffa_followup_t *f = p->after;
        p->after = f->next;
        free(f->rec.body);
        free(f);
    }
}

void
soffa_commit_pending_clear(soffa_broker_t *self)
{
    for (size_t i = 0; i < self->n_pending; i++) {
        free(self->pending[i].body);
        s_after_drop(&self->pending[i]);
    }
    self->n_pending = 0;
}

/* A batch the full store (or disk) refused: the publishes in it are
 * refused, and the broker's own records (a read's access records,
 * checkpoints, notices) and the cursors are committed on their own, in the
 * room the publishes were stopped short of (SOFFA_HEADROOM). Runs in the writer
 * thread. Returns the outcome for the cursors. */
static soffa_err_t
s_commit_own(soffa_broker_t *self, soffa_err_t full)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_flight; i++)
        if (self->flight[i].kind != SOFFA_P_PUBLISH)
            n++;
    soffa_store_item_t *own = n ? calloc(n, sizeof *own) : NULL;
    if (n && !own)
        return full;
    size_t k = 0;
    for (size_t i = 0; i < self->n_flight; i++)
        if (self->flight[i].kind != SOFFA_P_PUBLISH)
            own[k++] = self->flight_items[i];
    soffa_err_t rc = soffa_store_append_cursors(self->store, own, n, self->cur_items, self->cur_flight.n);
    k = 0;
    for (size_t i = 0; i < self->n_flight; i++) {
        if (self->flight[i].kind == SOFFA_P_PUBLISH)
            continue;
        self->flight_items[i].seq = own[k].seq;
        self->flight_items[i].duplicate = own[k++].duplicate;
        self->flight[i].rc = rc;
    }
    free(own);
    return rc;
}

/* The writer thread: commits the flight batch when asked, then tells the
 * main thread through done_fd. It touches nothing but the flight items and
 * the store's write side. */
static void *
s_writer_main(void *arg)
{
    soffa_broker_t *self = arg;
    prctl(PR_SET_NAME, "soffa-writer");   /* its own name in top, perf and soffa-bench */
    pthread_mutex_lock(&self->wmu);
    for (;;) {
        while (self->writer_job == 0)
            pthread_cond_wait(&self->wcv, &self->wmu);
        if (self->writer_job == 2)
            break;
        pthread_mutex_unlock(&self->wmu);
        int64_t t0 = soffa_mono_us();
        soffa_err_t rc = soffa_store_append_cursors(self->store, self->flight_items, self->n_flight,
                                                    self->cur_items, self->cur_flight.n);
        for (size_t i = 0; i < self->n_flight; i++)
            self->flight[i].rc = rc;
        if (rc == SOFFA_ERR_STORE_FULL || rc == SOFFA_ERR_DISK_FULL)
            rc = s_commit_own(self, rc);
        int64_t took = soffa_mono_us() - t0;
        int64_t sync = rc == SOFFA_OK ? soffa_store_last_sync_us(self->store) : 0;
        pthread_mutex_lock(&self->wmu);
        self->flight_rc = rc;
        self->commit_us += (uint64_t) took;
        self->flight_took_us = took;
        self->flight_sync_us = sync;
        self->writer_job = 0;
        pthread_cond_broadcast(&self->wcv);
        uint64_t one = 1;
        if (write(self->done_fd, &one, sizeof one) != sizeof one)
            soffa_debug("writer: could not signal the main thread");
    }
    pthread_mutex_unlock(&self->wmu);
    return NULL;
}

/* Room for need records in *v (growing it, doubling); false without
 * memory. Only while the writer is idle: it reads the flight. */
static bool
s_reserve(soffa_pending_t **v, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t n = *cap * 2 > need ? *cap * 2 : need;
    soffa_pending_t *nv = realloc(*v, n * sizeof *nv);
    if (!nv)
        return false;
    memset(nv + *cap, 0, (n - *cap) * sizeof *nv);
    *v = nv;
    *cap = n;
    return true;
}

/* Reports every record of the finished flight to the broker (its
 * `committed` callback), which answers them: acknowledgements only after
 * the commit returned. What a callback adds to the pending batch goes with
 * a later commit; nothing here commits. */
static void
s_flight_done(soffa_broker_t *self)
{
    size_t n = self->n_flight;
    soffa_err_t rc = self->flight_rc;
    soffa_store_item_t *items = self->flight_items;
    self->commits++;
    if (rc == SOFFA_OK && self->batch_done)
        self->batch_done(self, n, self->flight_took_us, self->flight_sync_us);
    self->in_done = true;
    for (size_t i = 0; i < n; i++) {
        soffa_pending_t *p = &self->flight[i];
        if (p->rc == SOFFA_OK && p->kind == SOFFA_P_CHECKPOINT) {
            self->cp_seq = items[i].seq;
            soffa_debug("signed checkpoint at seq %llu", (unsigned long long) items[i].seq);
        }
        self->committed(self, p, items[i].seq, items[i].duplicate);
    }
    if (self->committed_end)
        self->committed_end(self);
    self->in_done = false;
    if (rc == SOFFA_OK)
        soffa_debug("committed %zu record(s) and %zu cursor(s)", n, self->cur_flight.n);
    else if (self->cur_flight.n)
        soffa_warn("%zu consumer cursor(s) not saved (%s); their deliveries since may come again",
                   self->cur_flight.n, soffa_strerror(rc));
    self->cur_flight.n = 0;
    for (size_t i = 0; i < n; i++)
        free(self->flight[i].body);
    self->n_flight = 0;
    self->in_flight = false;
    soffa_commit_room_refresh(self);
    /* The loop wakes the readers of the mailboxes that grew. */
}

void
soffa_commit_room_refresh(soffa_broker_t *self)
{
    self->room_at_us = soffa_mono_us();
    soffa_store_room(self->store, &self->map_room, &self->disk_room);
    for (size_t i = 0; i < self->n_pending; i++) {
        uint64_t cost = self->pending[i].kind == SOFFA_P_PUBLISH ? 4 * ((uint64_t) self->pending[i].env.body_len + 512) : 0;
        self->map_room = self->map_room > cost ? self->map_room - cost : 0;
        self->disk_room = self->disk_room > cost ? self->disk_room - cost : 0;
    }
}

/* Waits for the batch in flight, if any, and answers it. */
void
soffa_commit_flight_wait(soffa_broker_t *self)
{
    if (!self->in_flight)
        return;
    pthread_mutex_lock(&self->wmu);
    while (self->writer_job != 0)
        pthread_cond_wait(&self->wcv, &self->wmu);
    pthread_mutex_unlock(&self->wmu);
    uint64_t v;
    if (read(self->done_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        soffa_debug("writer signal: %s", strerror(errno));
    s_flight_done(self);
}

/* When a record runs out ([retention], lib/soffa_retention), and for a
 * case's closure when the young person's closure-anchored records do. */
static void
s_sched(const soffa_broker_t *self, const soffa_pending_t *p, soffa_store_sched_t *out)
{
    soffa_retention_sched(&self->retention, p->env.kind, p->env.msg_type, p->env.sender_role, p->env.received_at_us,
                          p->subject[0] ? p->subject : NULL, out);
}

/* Hands the pending records to the writer when it is free. */
void
soffa_commit_submit(soffa_broker_t *self)
{
    if (self->in_flight)
        return;
    bool cp = s_checkpoint_due(self);
    if (self->n_pending == 0 && !cp && self->cur_pending.n == 0)
        return;
    /* More than a batch (reports of the last commit added to a full one):
     * the rest goes with the next. */
    size_t rest = self->n_pending > (size_t) self->cfg.batch_max ? self->n_pending - (size_t) self->cfg.batch_max : 0;
    if (rest && !s_reserve(&self->flight, &self->flight_cap, rest))
        return;   /* tried again on the next round */
    if (self->cur_items_cap < self->cur_pending.n) {
        soffa_store_cursor_t *ci = realloc(self->cur_items, self->cur_pending.cap * sizeof *ci);
        if (!ci)
            return;   /* tried again on the next round */
        self->cur_items = ci;
        self->cur_items_cap = self->cur_pending.cap;
    }
    soffa_cursors_t ct = self->cur_flight;
    self->cur_flight = self->cur_pending;
    self->cur_pending = ct;
    self->cur_pending.n = 0;
    for (size_t i = 0; i < self->cur_flight.n; i++)
        self->cur_items[i] = (soffa_store_cursor_t) {self->cur_flight.v[i].key, self->cur_flight.v[i].seq};
    soffa_pending_t *t = self->flight;
    size_t tcap = self->flight_cap;
    self->flight = self->pending;
    self->flight_cap = self->pending_cap;
    self->pending = t;
    self->pending_cap = tcap;
    self->n_flight = self->n_pending - rest;
    self->n_pending = rest;
    memcpy(self->pending, self->flight + self->n_flight, rest * sizeof *self->pending);
    /* A due checkpoint goes first: it covers exactly the records before it. */
    if (cp) {
        memmove(self->flight + 1, self->flight, self->n_flight * sizeof *self->flight);
        memset(self->flight, 0, sizeof *self->flight);
        if (s_checkpoint_make(self, &self->flight[0]))
            self->n_flight++;
        else
            memmove(self->flight, self->flight + 1, self->n_flight * sizeof *self->flight);
    }
    if (self->n_flight == 0 && self->cur_flight.n == 0)
        return;
    for (size_t i = 0; i < self->n_flight; i++) {
        soffa_pending_t *p = &self->flight[i];
        soffa_store_item_t *it = &self->flight_items[i];
        memset(it, 0, sizeof *it);
        it->env = &p->env;
        it->subject_id = p->subject[0] ? p->subject : NULL;
        memcpy(it->refs, p->dec.refs, sizeof it->refs);
        it->n_refs = p->dec.n_refs;
        memcpy(it->state, p->state, sizeof it->state);
        it->n_state = p->n_state;
        s_sched(self, p, &it->sched);
        it->seq_from = p->seq_from;
        it->subject_alias = p->alias_from[0] ? p->alias_from : NULL;
    }
    self->in_flight = true;
    pthread_mutex_lock(&self->wmu);
    self->writer_job = 1;
    pthread_cond_broadcast(&self->wcv);
    pthread_mutex_unlock(&self->wmu);
}

/* Makes everything read so far durable and answered before returning: the
 * batch in flight, then the pending one. Decisions that look records up
 * call this first (they must see everything acknowledged). */
void
soffa_commit(soffa_broker_t *self)
{
    if (self->in_done) {
        soffa_error("a commit was asked for while a batch was being reported; it waits for the next round");
        return;
    }
    soffa_commit_flight_wait(self);
    if (self->n_pending == 0 && self->cur_pending.n == 0)
        return;
    soffa_commit_submit(self);
    soffa_commit_flight_wait(self);
}

/* A fresh, zeroed slot in the pending batch (committing first when the
 * batch is full). The caller fills it; the batch frees its body. */
soffa_pending_t *
soffa_commit_pending_add(soffa_broker_t *self)
{
    /* From the loop, a full batch is committed first (what that commit's
     * reports add may fill it again). */
    while (self->n_pending >= (size_t) self->cfg.batch_max && !self->in_done)
        soffa_commit(self);
    if (!s_reserve(&self->pending, &self->pending_cap, self->n_pending + 1)) {
        soffa_error("out of memory for the pending batch; stopping so that nothing is answered wrongly");
        abort();
    }
    soffa_pending_t *p = &self->pending[self->n_pending++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Fills p with a record the broker writes as itself. */
void
soffa_commit_broker_record(soffa_broker_t *self, soffa_pending_t *p, soffa_pending_kind_t kind, soffa_record_kind_t rk, uint8_t *body,
                size_t len, const char *mailbox)
{
    p->kind = kind;
    p->body = body;
    p->env.body = body;
    p->env.body_len = len;
    p->env.kind = rk;
    soffa_uuid7(p->env.message_id);
    snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", self->cfg.name);
    p->env.sender_role = SOFFA_ROLE_BROKER;
    p->env.received_at_us = soffa_now_us();
    snprintf(p->env.mailbox, sizeof p->env.mailbox, "%s", mailbox);
}

/* ---- Signed checkpoints ---------------------------------------------------------------- */

/* True if path (a file that may not exist yet) lies in directory dir or
 * below it, after resolving links. */
static bool
s_inside(const char *path, const char *dir)
{
    char d[PATH_MAX], f[PATH_MAX], parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(parent, sizeof parent, ".");
    if (!realpath(dir, d) || !realpath(slash && !parent[0] ? "/" : parent, f))
        return false;
    size_t n = strlen(d);
    return strncmp(f, d, n) == 0 && (f[n] == '\0' || f[n] == '/');
}

/* Loads the checkpoint signing key ([audit] signing_key), or makes it (and
 * its public half, KEY.pub) on first start. It never lives in the data
 * directory: whoever holds a copy of that (a backup) could otherwise
 * rewrite the history and sign it again. */
soffa_err_t
soffa_commit_signing_key(soffa_broker_t *self, const char *data, char *why, size_t whylen)
{
    char kp[1100], pp[1100], old[1100];
    if (!soffa_cfg_path(self->config_path, self->cfg.signing_key, kp, sizeof kp)) {
        snprintf(why, whylen, "[audit] signing_key is too long");
        return SOFFA_ERR_CONFIG;
    }
    if (s_inside(kp, data)) {
        snprintf(why, whylen, "[audit] signing_key %s lies inside data_dir %s: every copy of the store would carry "
                              "it; keep it beside the configuration instead", kp, data);
        return SOFFA_ERR_CONFIG;
    }
    size_t kl = strlen(kp);
    snprintf(pp, sizeof pp, "%.*s.pub", (int) (kl > 4 && !strcmp(kp + kl - 4, ".key") ? kl - 4 : kl), kp);
    snprintf(old, sizeof old, "%s/checkpoint.key", data);
    FILE *f = fopen(kp, "re");
    if (!f && errno == ENOENT && access(old, F_OK) == 0) {
        snprintf(why, whylen, "the checkpoint signing key is in the data directory (%s), where backups carry it: "
                              "move it to %s (and checkpoint.pub beside it) and start again", old, kp);
        return SOFFA_ERR_CONFIG;
    }
    if (!f && errno == ENOENT) {
        uint8_t pk[SOFFA_SIGN_PUBLIC];
        crypto_sign_keypair(pk, self->sign_sk);
        int fd = open(kp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        bool ok = fd >= 0 && write(fd, self->sign_sk, SOFFA_SIGN_SECRET) == SOFFA_SIGN_SECRET && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        char hex[2 * SOFFA_SIGN_PUBLIC + 2];
        sodium_bin2hex(hex, sizeof hex, pk, SOFFA_SIGN_PUBLIC);
        FILE *pf = ok ? fopen(pp, "we") : NULL;
        ok = pf && fprintf(pf, "%s\n", hex) > 0;
        if (pf)
            ok &= fclose(pf) == 0;
        if (!ok) {
            snprintf(why, whylen, "cannot write the checkpoint key %s", kp);
            return SOFFA_ERR_IO;
        }
        soffa_info("made the checkpoint signing key %s; its public half is %s (also in %s)", kp, hex, pp);
        return SOFFA_OK;
    }
    if (!f) {
        snprintf(why, whylen, "cannot read %s: %s", kp, strerror(errno));
        return soffa_err_from_errno(errno);
    }
    struct stat st;
    bool ok = fstat(fileno(f), &st) == 0 && !(st.st_mode & 077);
    size_t n = ok ? fread(self->sign_sk, 1, SOFFA_SIGN_SECRET, f) : 0;
    fclose(f);
    if (!ok) {
        snprintf(why, whylen, "%s can be read by others; run chmod 600 on it", kp);
        return SOFFA_ERR_PERMISSION;
    }
    if (n != SOFFA_SIGN_SECRET) {
        snprintf(why, whylen, "%s is damaged (not a 64-byte key)", kp);
        return SOFFA_ERR_STORE_CORRUPT;
    }
    return SOFFA_OK;
}

/* Fills p with a signed checkpoint of the committed head, to be the first
 * record of the next commit. False when there is nothing new to cover. */
static bool
s_checkpoint_make(soffa_broker_t *self, soffa_pending_t *p)
{
    soffa_checkpoint_t cp = {.at_us = soffa_now_us()};
    soffa_store_head(self->store, &cp.covers_seq, cp.head_hash, NULL);
    if (cp.covers_seq == 0 || cp.covers_seq <= self->cp_seq)
        return false;
    soffa_checkpoint_sign(&cp, self->sign_sk);
    size_t len = 0;
    uint8_t *body = NULL;
    if (soffa_checkpoint_encode(&cp, &body, &len) != SOFFA_OK)
        return false;
    soffa_commit_broker_record(self, p, SOFFA_P_CHECKPOINT, SOFFA_RK_CHECKPOINT, body, len, SOFFA_CHECKPOINT_MAILBOX);
    p->env.received_at_us = cp.at_us;
    self->cp_at = soffa_mono_us();
    self->cp_force = false;
    return true;
}

/* Whether the next commit should start with a checkpoint (only between
 * commits: the head is the writer's while one is in flight). */
static bool
s_checkpoint_due(soffa_broker_t *self)
{
    if (self->in_flight)
        return false;
    uint64_t head;
    soffa_store_head(self->store, &head, NULL, NULL);
    if (head <= self->cp_seq)
        return false;
    return self->cp_force || head - self->cp_seq >= (uint64_t) self->cfg.checkpoint_every
           || soffa_mono_us() - self->cp_at >= self->cfg.checkpoint_ms * 1000;
}

/* Commits a signed checkpoint of everything so far, now (on stop). */
void
soffa_commit_checkpoint(soffa_broker_t *self)
{
    soffa_commit(self);
    self->cp_force = true;
    soffa_commit_submit(self);
    soffa_commit_flight_wait(self);
    self->cp_force = false;
}

soffa_err_t
soffa_commit_start(soffa_broker_t *self)
{
    /* Checkpoint from the next record on; a tail no checkpoint covers (the
     * broker was killed) gets one with the first commit. */
    uint64_t head;
    soffa_store_head(self->store, &head, NULL, NULL);
    self->cp_seq = head;
    soffa_mailbox_t *cpm = soffa_map_sget(self->mailboxes, SOFFA_CHECKPOINT_MAILBOX);
    if (head && (!cpm || cpm->last_seq < head)) {
        self->cp_seq = cpm ? cpm->last_seq : 0;
        self->cp_force = true;
    }
    self->cp_at = soffa_mono_us();
    soffa_commit_room_refresh(self);
    /* A flight holds at most batch_max records and a checkpoint. The pending
     * batch may hold more for a while: the reports of a commit add to it
     * (they never commit), and it grows when it must. */
    self->pending_cap = self->flight_cap = 2 * (size_t) self->cfg.batch_max + 2;
    self->pending = calloc(self->pending_cap, sizeof *self->pending);
    self->flight = calloc(self->flight_cap, sizeof *self->flight);
    self->flight_items = calloc((size_t) self->cfg.batch_max + 1, sizeof *self->flight_items);
    if (!self->pending || !self->flight || !self->flight_items)
        return SOFFA_ERR_NOMEM;
    self->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->done_fd < 0)
        return SOFFA_ERR_IO;
    if (pthread_mutex_init(&self->wmu, NULL) != 0 || pthread_cond_init(&self->wcv, NULL) != 0
        || pthread_create(&self->writer, NULL, s_writer_main, self) != 0)
        return SOFFA_ERR_NOMEM;
    self->writer_started = true;
    return SOFFA_OK;
}

void
soffa_commit_stop(soffa_broker_t *self)
{
    if (self->writer_started) {
        pthread_mutex_lock(&self->wmu);
        while (self->writer_job == 1)
            pthread_cond_wait(&self->wcv, &self->wmu);
        self->writer_job = 2;
        pthread_cond_broadcast(&self->wcv);
        pthread_mutex_unlock(&self->wmu);
        pthread_join(self->writer, NULL);
        pthread_mutex_destroy(&self->wmu);
        pthread_cond_destroy(&self->wcv);
    }
    if (self->done_fd > 0)
        close(self->done_fd);
    if (self->pending) {
        soffa_commit_pending_clear(self);
        free(self->pending);
    }
    if (self->flight) {
        for (size_t i = 0; i < self->n_flight; i++) {
            free(self->flight[i].body);
            s_after_drop(&self->flight[i]);
        }
        free(self->flight);
    }
    free(self->flight_items);
    free(self->cur_pending.v);
    free(self->cur_flight.v);
    free(self->cur_items);
}
