/*  soffa_case: the KAA case register and the identity alias map (see soffa_case.h). */
#include "soffa_case.h"

#include <string.h>

#include "soffa_bytes.h"
#include "soffa_idtable.h"
#include "soffa_log.h"
#include "soffa_teams.h"

#define S_PK SOFFA_SUBJECT_KEY_LEN
#define S_CASE_VAL (S_PK + 4 + 1 + 4 + 4 + 4 + 1)   /* before the seq */
#define S_ALIAS_HOPS 16                            /* longest chain of replaced numbers followed */

#define S_TEAM 16                                  /* 'T': the team, NUL-padded */
#define S_OWNER 32                                 /* 'T': the contact person's staff reference, NUL-padded */

static const uint8_t s_built_key[] = {'V', 'c', 'a', 's', 'e', 's', '-', '1'};

/* A case as its state entry holds it. */
typedef struct {
    uint8_t person[S_PK];
    char kommun[5];
    bool open;
    uint32_t closed_on;
    uint32_t failed;          /* attempts since the opening or the last REACHED */
    uint32_t channels;        /* bit per channel of those */
    bool not_reached;         /* NOT_REACHED recorded, no REACHED since */
    uint64_t seq;             /* the record that left it so */
} s_case_t;

/* ---- The alias map -------------------------------------------------------------- */

static void
s_person_of_key(soffa_broker_t *self, const uint8_t key[S_PK], uint8_t out[S_PK])
{
    uint8_t k[1 + S_PK] = {'a'};
    memcpy(out, key, S_PK);
    for (int hop = 0; hop < S_ALIAS_HOPS; hop++) {
        memcpy(k + 1, out, S_PK);
        uint8_t next[S_PK];
        size_t len = 0;
        if (soffa_store_state_get(self->store, k, sizeof k, next, sizeof next, &len) != SOFFA_OK || len != S_PK)
            return;
        memcpy(out, next, S_PK);
    }
}

void
soffa_case_person(soffa_broker_t *self, const char *id, uint8_t out[S_PK])
{
    uint8_t key[S_PK];
    soffa_store_subject_key(self->store, id, key);
    s_person_of_key(self, key, out);
}

bool
soffa_case_same_person(void *ctx, const char *a, const char *b)
{
    soffa_broker_t *self = ctx;
    uint8_t pa[S_PK], pb[S_PK];
    soffa_case_person(self, a, pa);
    soffa_case_person(self, b, pb);
    return memcmp(pa, pb, S_PK) == 0;
}

/* The alias entry of key (the number that replaced it), if any. */
static bool
s_replaced(soffa_broker_t *self, const uint8_t key[S_PK], uint8_t by[S_PK])
{
    uint8_t k[1 + S_PK] = {'a'};
    memcpy(k + 1, key, S_PK);
    size_t len = 0;
    return soffa_store_state_get(self->store, k, sizeof k, by, S_PK, &len) == SOFFA_OK && len == S_PK;
}

/* ---- The case register ------------------------------------------------------------ */

static bool
s_case_get(soffa_broker_t *self, const uint8_t case_id[16], s_case_t *c)
{
    uint8_t k[17] = {'C'}, v[S_CASE_VAL + 8];
    memcpy(k + 1, case_id, 16);
    size_t len = 0;
    memset(c, 0, sizeof *c);
    if (soffa_store_state_get(self->store, k, sizeof k, v, sizeof v, &len) != SOFFA_OK || len != sizeof v)
        return false;
    const uint8_t *p = v;
    memcpy(c->person, p, S_PK);
    p += S_PK;
    memcpy(c->kommun, p, 4);
    p += 4;
    c->open = *p++;
    c->closed_on = soffa_bytes_get_u32(p);
    p += 4;
    c->failed = soffa_bytes_get_u32(p);
    p += 4;
    c->channels = soffa_bytes_get_u32(p);
    p += 4;
    c->not_reached = *p++;
    c->seq = soffa_bytes_get_u64(p);
    return true;
}

/* An op writing case c under case_id: with the record's seq appended at
 * commit (seq 0), or with seq itself (a rebuild). */
static void
s_case_op(soffa_store_state_op_t *op, const uint8_t case_id[16], const s_case_t *c, uint64_t seq)
{
    memset(op, 0, sizeof *op);
    op->key[0] = 'C';
    memcpy(op->key + 1, case_id, 16);
    op->klen = 17;
    uint8_t *p = op->val;
    memcpy(p, c->person, S_PK);
    p += S_PK;
    memcpy(p, c->kommun, 4);
    p += 4;
    *p++ = c->open;
    soffa_bytes_put_u32(p, c->closed_on);
    p += 4;
    soffa_bytes_put_u32(p, c->failed);
    p += 4;
    soffa_bytes_put_u32(p, c->channels);
    p += 4;
    *p++ = c->not_reached;
    if (seq) {
        soffa_bytes_put_u64(p, seq);
        p += 8;
    } else {
        op->with_seq = true;
    }
    op->vlen = (size_t) (p - op->val);
}

/* The team holding a case and its contact person ('T', issue 19 item 4):
 * apart from 'C' so that a case written before teams reads as before ('O'
 * is soffa_status's awaited answers). */
static void
s_owner_get(soffa_broker_t *self, const uint8_t case_id[16], char team[S_TEAM + 1], char owner[S_OWNER + 1])
{
    uint8_t k[17] = {'T'}, v[S_TEAM + S_OWNER];
    memcpy(k + 1, case_id, 16);
    size_t len = 0;
    team[0] = owner[0] = '\0';
    if (soffa_store_state_get(self->store, k, sizeof k, v, sizeof v, &len) != SOFFA_OK || len != sizeof v)
        return;
    memcpy(team, v, S_TEAM);
    team[S_TEAM] = '\0';
    memcpy(owner, v + S_TEAM, S_OWNER);
    owner[S_OWNER] = '\0';
}

static void
s_owner_op(soffa_store_state_op_t *op, const uint8_t case_id[16], const char *team, const char *owner)
{
    memset(op, 0, sizeof *op);
    op->key[0] = 'T';
    memcpy(op->key + 1, case_id, 16);
    op->klen = 17;
    /* Fixed-width fields, zero-padded (op is zeroed above), no terminator. */
    memcpy(op->val, team, strnlen(team, S_TEAM));
    memcpy(op->val + S_TEAM, owner, strnlen(owner, S_OWNER));
    op->vlen = S_TEAM + S_OWNER;
}

/* The young person's latest case with kommun's KAA ('c'), if any. */
static bool
s_latest_case(soffa_broker_t *self, const uint8_t person[S_PK], const char *kommun, uint8_t case_id[16])
{
    uint8_t k[1 + S_PK + 4] = {'c'};
    memcpy(k + 1, person, S_PK);
    memcpy(k + 1 + S_PK, kommun, 4);
    size_t len = 0;
    return soffa_store_state_get(self->store, k, sizeof k, case_id, 16, &len) == SOFFA_OK && len == 16;
}

static void
s_latest_op(soffa_store_state_op_t *op, const uint8_t person[S_PK], const char *kommun, const uint8_t case_id[16])
{
    memset(op, 0, sizeof *op);
    op->key[0] = 'c';
    memcpy(op->key + 1, person, S_PK);
    memcpy(op->key + 1 + S_PK, kommun, 4);
    op->klen = 1 + S_PK + 4;
    if (case_id) {
        memcpy(op->val, case_id, 16);
        op->vlen = 16;
    } else {
        op->del = true;
    }
}

static bool
s_is_case_event(soffa_msg_type_t t)
{
    switch (t) {
    case SOFFA_MT_KAA_CASE_OPENED:
    case SOFFA_MT_CONTACT_ATTEMPTED:
    case SOFFA_MT_OCCUPATION_RECORDED:
    case SOFFA_MT_CASE_MAPPED:
    case SOFFA_MT_PLAN_AGREED:
    case SOFFA_MT_MEASURE_STARTED:
    case SOFFA_MT_MEASURE_ENDED:
    case SOFFA_MT_KAA_CASE_CLOSED:
    case SOFFA_MT_KAA_CASE_REOPENED:
    case SOFFA_MT_CASE_OWNER_CHANGED:
    case SOFFA_MT_CASE_TRANSFERRED: return true;
    default: return false;
    }
}

/* ---- Facts ------------------------------------------------------------------------- */

static bool
s_protected(soffa_broker_t *self, const uint8_t person[S_PK])
{
    uint8_t key[1 + S_PK] = {'P'};
    memcpy(key + 1, person, S_PK);
    return soffa_store_state_get(self->store, key, sizeof key, NULL, 0, NULL) == SOFFA_OK;
}

/* Whether the sender's KAA holds a record under number id, in its inbox
 * (a signal about that young person) or its journal (a case, a consent):
 * only then does it know whom the number names. */
typedef struct {
    char inbox[SOFFA_NAME_MAX], journal[SOFFA_NAME_MAX];
    bool found;
} s_known_t;

static int
s_known_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_known_t *k = ctx;
    soffa_envelope_t e;
    if (soffa_envelope_decode(rec->env, rec->len, &e) != SOFFA_OK)
        return 0;
    k->found = !strcmp(e.mailbox, k->inbox) || !strcmp(e.mailbox, k->journal);
    soffa_envelope_fini(&e);
    return k->found;
}

static bool
s_known_here(soffa_broker_t *self, const char *id, const soffa_identity_t *sender)
{
    s_known_t k = {.found = false};
    soffa_policy_inbox(sender, k.inbox);
    soffa_policy_journal(sender, k.journal);
    soffa_err_t rc = soffa_store_scan_subject(self->store, id, 0, s_known_one, &k);
    return (rc == SOFFA_OK || rc == SOFFA_ERR_NOT_FOUND) && k.found;
}

void
soffa_case_team(void *ctx, const char *subject_id, const char *kommun, char out[17])
{
    soffa_broker_t *self = ctx;
    out[0] = '\0';
    uint8_t person[S_PK], case_id[16];
    char owner[S_OWNER + 1];
    if (!subject_id || !subject_id[0] || !kommun || strlen(kommun) != 4)
        return;
    soffa_case_person(self, subject_id, person);
    if (s_latest_case(self, person, kommun, case_id))
        s_owner_get(self, case_id, out, owner);
}

void
soffa_case_agent_team(void *ctx, const char *agent, char out[17])
{
    soffa_broker_t *self = ctx;
    const soffa_ident_t *a = soffa_idtable_by_name(self->agents, agent);
    snprintf(out, 17, "%s", a ? a->id.team : "");
}

void
soffa_case_facts(soffa_broker_t *self, const soffa_msg_view_t *v, const soffa_identity_t *sender,
                 soffa_policy_facts_t *facts)
{
    memset(facts, 0, sizeof *facts);
    facts->same_person = soffa_case_same_person;
    facts->teams = self->teams;
    facts->case_team = soffa_case_team;
    facts->agent_team = soffa_case_agent_team;
    facts->ctx = self;
    facts->not_reached_attempts = (uint32_t) self->cfg.not_reached_attempts;
    facts->not_reached_channels = (uint32_t) self->cfg.not_reached_channels;
    if (!v->subject_id[0])
        return;
    uint8_t person[S_PK];
    soffa_case_person(self, v->subject_id, person);
    facts->subject_protected = s_protected(self, person);
    if (s_is_case_event(v->type) && v->ref_id) {
        soffa_policy_case_t *k = &facts->kase;
        s_case_t c;
        if (s_case_get(self, v->ref_id, &c)) {
            uint8_t cp[S_PK];
            s_person_of_key(self, c.person, cp);
            k->known = true;
            k->open = c.open;
            k->same_person = memcmp(cp, person, S_PK) == 0;
            memcpy(k->kommun, c.kommun, 4);
            k->closed_seq = c.open ? 0 : c.seq;
            k->closed_on = c.closed_on;
            k->failed_attempts = c.failed;
            k->channels = c.channels;
            s_owner_get(self, v->ref_id, k->team, k->owner);
        }
        uint8_t latest[16];
        s_case_t l;
        if (sender && sender->kommun[0] && s_latest_case(self, person, sender->kommun, latest)
            && memcmp(latest, v->ref_id, 16) != 0 && s_case_get(self, latest, &l))
            k->person_has_open = l.open;
    }
    if (v->type == SOFFA_MT_SUBJECT_IDENTITY_CHANGED && v->old_id[0] && v->new_id[0]) {
        uint8_t old_key[S_PK], new_key[S_PK], by[S_PK];
        soffa_store_subject_key(self->store, v->old_id, old_key);
        soffa_store_subject_key(self->store, v->new_id, new_key);
        facts->old_replaced = s_replaced(self, old_key, by);
        facts->old_replaced_by_new = facts->old_replaced && memcmp(by, new_key, S_PK) == 0;
        facts->new_replaced = s_replaced(self, new_key, by);
        facts->old_known_here = s_known_here(self, v->old_id, sender);
    }
}

/* ---- Changes ------------------------------------------------------------------------- */

typedef struct {
    uint8_t person[S_PK];
    soffa_store_state_op_t *ops;
    size_t n, cap;
    bool full;
} s_moves_t;

/* Moves a 'c' entry of the old person to the new one (two ops). */
static int
s_move_latest(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    s_moves_t *m = ctx;
    if (kl != 1 + S_PK + 4 || vl != 16)
        return 0;
    if (m->n + 2 > m->cap) {
        m->full = true;
        return 1;
    }
    s_latest_op(&m->ops[m->n++], m->person, (const char *) k + 1 + S_PK, v);
    soffa_store_state_op_t *del = &m->ops[m->n++];
    memset(del, 0, sizeof *del);
    memcpy(del->key, k, kl);
    del->klen = kl;
    del->del = true;
    return 0;
}

/* The state changes of v (case events and identity changes from the KAA of
 * kommun) into ops (room for cap); seq 0: appended at commit. Returns how
 * many; *alias (13 bytes) gets the number an identity change replaces. */
static size_t
s_ops(soffa_broker_t *self, const soffa_msg_view_t *v, const char *kommun, const char *team,
      soffa_store_state_op_t *ops, size_t cap, uint64_t seq, char alias[13])
{
    size_t n = 0;
    alias[0] = '\0';
    if (!v->subject_id[0] || cap < 2)
        return 0;
    uint8_t person[S_PK];
    soffa_case_person(self, v->subject_id, person);
    if (s_is_case_event(v->type) && v->ref_id) {
        s_case_t c;
        bool known = s_case_get(self, v->ref_id, &c);
        char held[S_TEAM + 1], owner[S_OWNER + 1];
        s_owner_get(self, v->ref_id, held, owner);
        if (cap < 3)
            return 0;
        switch (v->type) {
        case SOFFA_MT_KAA_CASE_OPENED:
            memset(&c, 0, sizeof c);
            memcpy(c.person, person, S_PK);
            memcpy(c.kommun, kommun, 4);
            c.open = true;
            s_case_op(&ops[n++], v->ref_id, &c, seq);
            s_latest_op(&ops[n++], person, kommun, v->ref_id);
            if (team && team[0])
                s_owner_op(&ops[n++], v->ref_id, team, "");
            break;
        case SOFFA_MT_CASE_OWNER_CHANGED:
            if (known)
                s_owner_op(&ops[n++], v->ref_id, held, v->owner_ref);
            break;
        case SOFFA_MT_CASE_TRANSFERRED:
            if (known)
                s_owner_op(&ops[n++], v->ref_id, v->to_team, owner);
            break;
        case SOFFA_MT_KAA_CASE_REOPENED:
            if (!known)
                break;
            c.open = true;
            c.closed_on = 0;
            c.failed = c.channels = 0;
            c.not_reached = false;
            s_case_op(&ops[n++], v->ref_id, &c, seq);
            s_latest_op(&ops[n++], person, kommun, v->ref_id);
            if (team && team[0] && strcmp(team, held) != 0)   /* the team whose new signal reopened it */
                s_owner_op(&ops[n++], v->ref_id, team, owner);
            break;
        case SOFFA_MT_CONTACT_ATTEMPTED:
            if (!known)
                break;
            if (v->contact_outcome == SOFFA_CO_REACHED) {
                c.failed = c.channels = 0;
                c.not_reached = false;
            } else {
                c.failed++;
                if (v->contact_channel > 0 && v->contact_channel < 32)
                    c.channels |= 1u << v->contact_channel;
                c.not_reached |= v->contact_outcome == SOFFA_CO_NOT_REACHED;
            }
            s_case_op(&ops[n++], v->ref_id, &c, seq);
            break;
        case SOFFA_MT_KAA_CASE_CLOSED:
            if (!known)
                break;
            c.open = false;
            c.closed_on = soffa_date_to_int(soffa_date_today());
            s_case_op(&ops[n++], v->ref_id, &c, seq);
            break;
        default: break;   /* occupations, plans, measures change nothing the register holds */
        }
        return n;
    }
    if (v->type == SOFFA_MT_SUBJECT_IDENTITY_CHANGED && v->old_id[0] && v->new_id[0]) {
        uint8_t old_person[S_PK], new_key[S_PK];
        soffa_case_person(self, v->old_id, old_person);
        soffa_store_subject_key(self->store, v->new_id, new_key);
        soffa_store_state_op_t *a = &ops[n++];
        memset(a, 0, sizeof *a);
        a->key[0] = 'a';
        soffa_store_subject_key(self->store, v->old_id, a->key + 1);
        a->klen = 1 + S_PK;
        memcpy(a->val, new_key, S_PK);
        a->vlen = S_PK;
        if (s_protected(self, old_person)) {
            soffa_store_state_op_t *p = &ops[n++];
            memset(p, 0, sizeof *p);
            p->key[0] = 'P';
            memcpy(p->key + 1, new_key, S_PK);
            p->klen = 1 + S_PK;
            if (seq) {
                soffa_bytes_put_u64(p->val, seq);
                p->vlen = 8;
            } else {
                p->with_seq = true;
            }
        }
        /* The young person's cases follow the new number. */
        uint8_t prefix[1 + S_PK] = {'c'};
        memcpy(prefix + 1, old_person, S_PK);
        s_moves_t m = {.ops = ops + n, .cap = cap - n};
        memcpy(m.person, new_key, S_PK);
        soffa_store_state_scan(self->store, prefix, sizeof prefix, s_move_latest, &m);
        if (m.full)
            soffa_warn("identity change: the young person has cases with more KAAs than one record can move; "
                       "the rest are found under the earlier number");
        n += m.n;
        snprintf(alias, 13, "%s", v->old_id);
    }
    return n;
}

void
soffa_case_ops(soffa_broker_t *self, const soffa_msg_view_t *v, const soffa_identity_t *sender, soffa_pending_t *p)
{
    if (sender->role != SOFFA_ROLE_KAA || p->n_state >= SOFFA_STORE_STATE_OPS)
        return;
    p->n_state += s_ops(self, v, sender->kommun, sender->team, p->state + p->n_state, SOFFA_STORE_STATE_OPS - p->n_state, 0,
                        p->alias_from);
}

/* ---- Built from the history, once -------------------------------------------------------- */

typedef struct {
    soffa_broker_t *self;
    soffa_err_t rc;
    uint64_t events;
} s_build_t;

static int
s_build_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_build_t *b = ctx;
    if (!s_is_case_event((soffa_msg_type_t) rec->tag) && rec->tag != SOFFA_MT_SUBJECT_IDENTITY_CHANGED)
        return 0;
    soffa_envelope_t e;
    /* The body is sealed: opened with the record's key (a disposed record
     * has none, and nothing of it counts any more). */
    if (soffa_envelope_open(rec->env, rec->len, rec->has_key ? rec->key : NULL, &e) != SOFFA_OK)
        return 0;
    soffa_msg_t *m = NULL;
    if (e.kind == SOFFA_RK_MESSAGE && e.sender_role == SOFFA_ROLE_KAA && !strncmp(e.mailbox, "kaa-journal/", 12)
        && soffa_msg_decode(e.body, e.body_len, &m) == SOFFA_OK) {
        soffa_msg_view_t v;
        soffa_msg_view(m, &v);
        soffa_store_state_op_t ops[SOFFA_STORE_STATE_OPS];
        char alias[13];
        char team[17];
        soffa_case_agent_team(b->self, e.sender_agent, team);
        size_t n = s_ops(b->self, &v, e.sender_kommun, team, ops, SOFFA_STORE_STATE_OPS, rec->seq, alias);
        if (n)
            b->rc = soffa_store_state_write(b->self->store, ops, n);
        if (b->rc == SOFFA_OK && alias[0])
            b->rc = soffa_store_subject_link(b->self->store, alias, v.subject_id);
        b->events++;
    }
    soffa_msg_destroy(&m);
    soffa_envelope_fini(&e);
    return b->rc != SOFFA_OK;
}

soffa_err_t
soffa_case_build(soffa_broker_t *self)
{
    if (soffa_store_state_get(self->store, s_built_key, sizeof s_built_key, NULL, 0, NULL) == SOFFA_OK)
        return SOFFA_OK;
    s_build_t b = {self, SOFFA_OK, 0};
    soffa_err_t rc = soffa_store_scan(self->store, 1, s_build_one, &b);
    if (rc == SOFFA_OK)
        rc = b.rc;
    if (rc == SOFFA_OK) {
        soffa_store_state_op_t mark = {.klen = sizeof s_built_key};
        memcpy(mark.key, s_built_key, sizeof s_built_key);
        rc = soffa_store_state_write(self->store, &mark, 1);
    }
    if (rc == SOFFA_OK && b.events)
        soffa_info("built the case register and the identity alias map from %llu record(s) of the history",
                   (unsigned long long) b.events);
    return rc;
}
