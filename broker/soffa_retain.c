/*  soffa_retain: gallring in the broker (see soffa_retain.h). */
#include "soffa_retain.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_bytes.h"
#include "soffa_disposal.h"
#include "soffa_log.h"
#include "soffa_record.h"
#include "soffa_stats.h"
#include "soffa_teams.h"
#include "soffa_uuid.h"

#include "soffa_commit.h"
#include "soffa_delivery.h"
#include "soffa_send.h"

const char *
soffa_retain_inbox_of(void *ctx, const char *agent)
{
    soffa_broker_t *self = ctx;
    static char inbox[SOFFA_NAME_MAX];   /* the main thread alone asks */
    const soffa_ident_t *ident = soffa_idtable_by_name(self->agents, agent);
    inbox[0] = '\0';
    if (ident)
        soffa_policy_inbox(&ident->id, inbox);
    return inbox;
}

void
soffa_retain_opts(soffa_broker_t *self, soffa_store_dispose_opts_t *o, char texts[SOFFA_RC_COUNT][64])
{
    memset(o, 0, sizeof *o);
    o->now_us = soffa_now_us();
    for (int c = 1; c < SOFFA_RC_COUNT && c < SOFFA_STORE_CLASSES; c++) {
        soffa_retention_rule_text(&self->retention.rules[c], texts[c], 64);
        o->rule_text[c] = texts[c];
    }
    o->sender = self->cfg.name;
    o->inbox_of = soffa_retain_inbox_of;
    o->ctx = self;
    o->tomb_keep_us = self->retention.rules[SOFFA_RC_ACCESS_RECORDS].keep_ms * 1000;
}

/* ---- Key figures kept before gallring ----------------------------------------------- */

/* A municipality's half-year. */
typedef struct {
    char kommun[5];
    int year, half;                   /* half: 1 (January to June) or 2 */
} s_period_t;

typedef struct {
    soffa_broker_t *self;
    s_period_t p[64];
    size_t n;
} s_periods_t;

static int
s_record_json(void *ctx, const soffa_store_rec_t *rec)
{
    json_t **out = ctx;
    *out = soffa_record_json(rec->env, rec->len, NULL, rec->has_key ? rec->key : NULL);
    return 1;
}

/* The municipality whose key figures a mailbox feeds ("" for none). */
static void
s_mailbox_kommun(const char *mailbox, char out[5])
{
    static const char *const prefixes[] = {"kaa/", "kaa-journal/", "af/", "social/"};
    out[0] = '\0';
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        size_t n = strlen(prefixes[i]);
        if (!strncmp(mailbox, prefixes[i], n) && strlen(mailbox + n) == 4)
            snprintf(out, 5, "%s", mailbox + n);
    /* A team's inbox kaa/K/TEAM feeds its municipality's figures (issue 19, item 4). */
    if (!strncmp(mailbox, "kaa/", 4) && strlen(mailbox) > 9 && mailbox[8] == '/')
        snprintf(out, 5, "%.4s", mailbox + 4);
    }
}

/* A record about to go: its municipality's half-year (of its business date). */
static int
s_due_period(void *ctx, uint64_t seq, uint8_t cls)
{
    s_periods_t *ps = ctx;
    if (cls == SOFFA_RC_NONE || cls == SOFFA_RC_ACCESS_RECORDS || ps->n == sizeof ps->p / sizeof *ps->p)
        return 0;
    json_t *rec = NULL;
    if (soffa_store_get(ps->self->store, seq, s_record_json, &rec) != SOFFA_OK || !rec)
        return 0;
    s_period_t p = {{0}, 0, 0};
    s_mailbox_kommun(json_string_value(json_object_get(rec, "mailbox")) ? json_string_value(json_object_get(rec, "mailbox")) : "",
                     p.kommun);
    json_t *m = json_object_get(rec, "message");
    if (p.kommun[0] && m) {
        soffa_date_t d = soffa_date_local(json_integer_value(json_object_get(m, "occurred_at_us")));
        p.year = d.year;
        p.half = d.month <= 6 ? 1 : 2;
        bool seen = false;
        for (size_t i = 0; i < ps->n && !seen; i++)
            seen = ps->p[i].year == p.year && ps->p[i].half == p.half && !strcmp(ps->p[i].kommun, p.kommun);
        if (!seen)
            ps->p[ps->n++] = p;
    }
    json_decref(rec);
    return 0;
}

static int
s_collect(void *ctx, const soffa_store_rec_t *rec)
{
    json_t *j = soffa_record_json(rec->env, rec->len, NULL, rec->has_key ? rec->key : NULL);
    if (j)
        json_array_append_new(ctx, j);
    return 0;
}

/* Keeps the key figures of one half-year, once: computed from its records
 * as they stand before any of them goes, with the suppression of small
 * counts, as an aggregate record in stats/K (soffa stats reads it). */
static void
s_aggregate(soffa_broker_t *self, const s_period_t *p)
{
    uint8_t key[1 + 4 + 4 + 1] = {'G'};
    memcpy(key + 1, p->kommun, 4);
    soffa_bytes_put_u32(key + 5, (uint32_t) p->year);
    key[9] = (uint8_t) p->half;
    if (soffa_store_state_get(self->store, key, sizeof key, NULL, 0, NULL) == SOFFA_OK)
        return;   /* kept already, at the first gallring of the period */
    json_t *records = json_array();
    char mailbox[SOFFA_NAME_MAX];
    static const char *const fmts[] = {"kaa/%s", "kaa-journal/%s", "af/%s", "social/%s"};
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        snprintf(mailbox, sizeof mailbox, fmts[i], p->kommun);
        soffa_store_scan_mailbox(self->store, mailbox, 0, s_collect, records);
    }
    for (size_t i = 0; i < soffa_teams_count(self->teams, p->kommun); i++) {
        snprintf(mailbox, sizeof mailbox, "kaa/%s/%s", p->kommun, soffa_teams_at(self->teams, p->kommun, i));
        soffa_store_scan_mailbox(self->store, mailbox, 0, s_collect, records);
    }
    soffa_date_t from = {p->year, p->half == 1 ? 1 : 7, 1}, to = {p->year, p->half == 1 ? 6 : 12, p->half == 1 ? 30 : 31};
    json_t *st = soffa_stats_compute(records, p->kommun, from, to);
    json_decref(records);
    char *text = st ? json_dumps(st, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(st);
    if (!text) {
        soffa_error("the key figures of %s for %d H%d could not be computed; its records go all the same", p->kommun,
                    p->year, p->half);
        return;
    }
    soffa_envelope_t env = {.kind = SOFFA_RK_AGGREGATE, .body = (const uint8_t *) text, .body_len = strlen(text),
                            .sender_role = SOFFA_ROLE_BROKER, .received_at_us = soffa_now_us()};
    soffa_uuid7(env.message_id);
    snprintf(env.sender_agent, sizeof env.sender_agent, "%s", self->cfg.name);
    snprintf(env.mailbox, sizeof env.mailbox, "stats/%s", p->kommun);
    soffa_store_item_t it = {.env = &env, .n_state = 1};
    memcpy(it.state[0].key, key, sizeof key);
    it.state[0].klen = sizeof key;
    it.state[0].with_seq = true;
    soffa_err_t rc = soffa_store_append(self->store, &it, 1);
    free(text);
    if (rc != SOFFA_OK)
        soffa_error("the key figures of %s for %d H%d could not be kept: %s", p->kommun, p->year, p->half,
                    soffa_strerror(rc));
    else
        soffa_info("key figures of %s for %d H%d kept before gallring, at seq %llu", p->kommun, p->year, p->half,
                   (unsigned long long) it.seq);
}

soffa_err_t
soffa_retain_run(soffa_broker_t *self)
{
    /* The store is the main thread's alone while this runs. */
    soffa_commit(self);
    /* The half-years whose records start to go keep their key figures first. */
    s_periods_t ps = {.self = self};
    soffa_store_due_scan(self->store, soffa_now_us(), s_due_period, &ps);
    for (size_t i = 0; i < ps.n; i++)
        s_aggregate(self, &ps.p[i]);
    char texts[SOFFA_RC_COUNT][64];
    soffa_store_dispose_opts_t o;
    soffa_retain_opts(self, &o, texts);
    uint64_t records = 0, subjects = 0, notices = 0, first = 0, last = 0;
    soffa_err_t rc = SOFFA_OK;
    for (int round = 0; round < 1000; round++) {
        soffa_store_dispose_report_t rep;
        rc = soffa_store_dispose(self->store, &o, &rep);
        if (rc != SOFFA_OK) {
            soffa_error("gallring failed: %s; nothing of this run was disposed of, the next run tries again",
                        soffa_strerror(rc));
            break;
        }
        records += rep.records;
        subjects += rep.subjects;
        notices += rep.notices;
        if (rep.first_seq && !first)
            first = rep.first_seq;
        if (rep.last_seq)
            last = rep.last_seq;
        int64_t next = soffa_store_next_due(self->store);
        if (rep.records == 0 || !next || next > o.now_us)
            break;
    }
    if (records) {
        /* The disposal records are new records of their mailboxes. */
        soffa_store_mailboxes(self->store, soffa_delivery_load_mailbox, self);
        soffa_info("gallring: %llu record(s) disposed of, %llu young person(s) with nothing left; %llu disposal "
                   "record(s) at seq %llu..%llu",
                   (unsigned long long) records, (unsigned long long) subjects, (unsigned long long) notices,
                   (unsigned long long) first, (unsigned long long) last);
    }
    return rc;
}

void
soffa_retain_tick(soffa_broker_t *self)
{
    int64_t now = soffa_mono_us();
    if (now < self->next_dispose)
        return;
    soffa_retain_run(self);
    self->next_dispose = soffa_mono_us() + self->retention.run_every_ms * 1000;
}

void
soffa_retain_upgrade_sched(void *ctx, const uint8_t *env, size_t len, soffa_store_sched_t *out)
{
    soffa_broker_t *self = ctx;
    memset(out, 0, sizeof *out);
    soffa_envelope_t e;
    if (soffa_envelope_decode(env, len, &e) != SOFFA_OK)
        return;
    char subject[13] = "";
    if (e.kind == SOFFA_RK_MESSAGE) {
        soffa_msg_t *m = NULL;
        if (soffa_msg_decode(e.body, e.body_len, &m) == SOFFA_OK) {
            soffa_msg_view_t v;
            soffa_msg_view(m, &v);
            if (v.subject_id)
                snprintf(subject, sizeof subject, "%s", v.subject_id);
            soffa_msg_destroy(&m);
        }
    }
    soffa_retention_sched(&self->retention, e.kind, e.msg_type, e.sender_role, e.received_at_us,
                          subject[0] ? subject : NULL, out);
    soffa_envelope_fini(&e);
}

/* Whether agent `name` is named in [retention] erasure_by. */
static bool
s_may_erase(const soffa_broker_t *self, const char *name)
{
    char list[1024], *save = NULL;
    snprintf(list, sizeof list, "%s", self->cfg.erasure_by);
    for (char *n = strtok_r(list, ", ", &save); n; n = strtok_r(NULL, ", ", &save))
        if (!strcmp(n, name))
            return true;
    return false;
}

void
soffa_retain_on_erase(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    if (s->id->role != SOFFA_ROLE_AUDIT || !s_may_erase(self, s->id->name)) {
        soffa_warn("refused erasure by %s: not named in [retention] erasure_by", s->id->name);
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_NOT_AUTHORISED,
                                "only a data-protection officer's key named in the broker's [retention] erasure_by may "
                                "erase");
        return;
    }
    if (soffa_id_check(f->filter.subject_id, NULL) != SOFFA_OK && soffa_reserve_check(f->filter.subject_id, NULL) != SOFFA_OK) {
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_BAD_FIELD,
                                "give the identity as 12 characters: a personnummer, samordningsnummer or reserve number");
        return;
    }
    if (!soffa_erasure_reason_name(f->code)[0]) {
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_BAD_FIELD,
                                "the reason is one of ERRONEOUS_REGISTRATION, WRONG_IDENTITY, NO_LEGAL_BASIS, "
                                "SUBJECT_REQUEST, OTHER");
        return;
    }
    /* Everything acknowledged so far is in the store first: what was
     * accepted before the erasure is erased with it. */
    soffa_commit(self);
    char texts[SOFFA_RC_COUNT][64];
    soffa_store_dispose_opts_t o;
    soffa_retain_opts(self, &o, texts);
    o.erase_subject = f->filter.subject_id;
    o.reason = f->code;
    o.sender = s->id->name;   /* who erased: the disposal records' sender */
    soffa_store_dispose_report_t rep;
    soffa_err_t rc = soffa_store_dispose(self->store, &o, &rep);
    if (rc == SOFFA_ERR_NOT_FOUND) {
        soffa_info("erasure by %s: no records of that identity", s->id->name);
        soffa_send_error(self, s->rid, f->tag, SOFFA_ERR_NOT_FOUND,
                                "there are no records of that identity (none were stored, or they are disposed of already)");
        return;
    }
    if (rc != SOFFA_OK) {
        soffa_error("erasure by %s failed: %s; nothing was erased", s->id->name, soffa_strerror(rc));
        soffa_send_error(self, s->rid, f->tag, rc, "the erasure failed; nothing was erased");
        return;
    }
    soffa_store_mailboxes(self->store, soffa_delivery_load_mailbox, self);
    /* No identity in the log: the tombstone says who, to those with the key. */
    soffa_info("erasure (%s) by %s: %llu record(s); disposal records at seq %llu..%llu",
               soffa_erasure_reason_name(f->code), s->id->name, (unsigned long long) rep.records,
               (unsigned long long) rep.first_seq, (unsigned long long) rep.last_seq);
    soffa_frame_t a = {.type = SOFFA_FRAME_ERASED, .tag = f->tag, .count = rep.records, .seq = rep.first_seq,
                       .access_seq = rep.last_seq};
    soffa_send_frame(self, s->rid, &a);
}
