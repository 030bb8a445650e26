/*  Tests for soffa_store: durability, dedup, cursors, indices, the chain. */
#define _GNU_SOURCE   /* memmem */
#include <criterion/criterion.h>
#include <jansson.h>
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soffa_box.h"
#include "soffa_bytes.h"
#include "soffa_disposal.h"
#include "soffa_envelope.h"
#include "soffa_msg.pb-c.h"
#include "soffa_retention.h"
#include "soffa_seal.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "testkit.h"

/* One envelope with its encoded body, ready for append. */
typedef struct {
    soffa_envelope_t env;
    uint8_t *body;
    char subject[13];
} rec_t;

static void
rec_make(rec_t *r, soffa_msg_type_t type, const char *pnr, const char *mailbox, const char *sender)
{
    memset(r, 0, sizeof *r);
    soffa_msg_t *m = tk_msg(type, pnr, "1419");
    size_t len;
    cr_assert_eq(soffa_msg_encode(m, &r->body, &len), SOFFA_OK);
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    memcpy(r->env.message_id, v.message_id, 16);
    soffa_msg_destroy(&m);
    r->env.body = r->body;
    r->env.body_len = len;
    r->env.kind = SOFFA_RK_MESSAGE;
    r->env.msg_type = (uint32_t) type;
    r->env.sender_role = SOFFA_ROLE_SCHOOL;
    r->env.received_at_us = soffa_now_us();
    snprintf(r->env.sender_agent, sizeof r->env.sender_agent, "%s", sender);
    snprintf(r->env.mailbox, sizeof r->env.mailbox, "%s", mailbox);
    memcpy(r->subject, pnr, 13);
}

static void
rec_free(rec_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i].body);
}

static soffa_err_t
append(soffa_store_t *st, rec_t *r, size_t n, soffa_store_item_t *items)
{
    for (size_t i = 0; i < n; i++)
        items[i] = (soffa_store_item_t) {.env = &r[i].env, .subject_id = r[i].subject};
    return soffa_store_append(st, items, n);
}

static soffa_store_t *
open_store(const char *dir, size_t map)
{
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = dir, .map_size = map, .master = tk_master()};
    cr_assert_eq(soffa_store_open(&st, &o), SOFFA_OK);
    return st;
}

typedef struct {
    uint64_t seqs[4096];
    size_t n;
    char mailbox[64];
} collect_t;

static int
collect(void *ctx, const soffa_store_rec_t *rec)
{
    collect_t *c = ctx;
    uint64_t seq = rec->seq;
    const uint8_t *env = rec->env, *hash = rec->hash;
    size_t len = rec->len;
    soffa_envelope_t e;
    cr_assert_eq(soffa_envelope_decode(env, len, &e), SOFFA_OK);
    cr_assert_eq(e.seq, seq);
    uint8_t h[32];
    if (e.legacy) {
        /* Stored before encryption: the chain's hash is the original's. */
        uint8_t *orig;
        size_t olen;
        cr_assert(rec->has_key);
        cr_assert_eq(soffa_envelope_legacy_bytes(env, len, rec->key, &orig, &olen), SOFFA_OK);
        soffa_wire_hash(orig, olen, h);
        free(orig);
    } else {
        soffa_wire_hash(env, len, h);
    }
    cr_assert_eq(memcmp(h, hash, 32), 0);
    snprintf(c->mailbox, sizeof c->mailbox, "%s", e.mailbox);
    soffa_envelope_fini(&e);
    if (c->n < 4096)
        c->seqs[c->n++] = seq;
    return 0;
}

static char PUPIL[13], OTHER[13];

static void
setup(void)
{
    tk_pnr(2008, 3, 14, 271, 0, PUPIL);
    tk_pnr(2009, 6, 2, 384, 0, OTHER);
}

TestSuite(store, .init = setup);

Test(store, append_reopen_and_read_back)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[3];
    rec_make(&r[0], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
    rec_make(&r[1], SOFFA_MT_ENROLMENT_CHANGED, OTHER, "kaa/1419", "school-1415");
    rec_make(&r[2], SOFFA_MT_ABSENCE_REPORTED, OTHER, "kaa/1415", "school-1415");
    soffa_store_item_t it[3];
    cr_assert_eq(append(st, r, 3, it), SOFFA_OK);
    cr_assert_eq(it[0].seq, 1);
    cr_assert_eq(it[2].seq, 3);
    cr_assert_not(it[1].duplicate);
    uint8_t head_hash[32];
    soffa_store_close(&st);
    cr_assert_null(st);
    soffa_store_close(&st);   /* idempotent */

    st = open_store(dir, 0);
    uint64_t head;
    soffa_store_head(st, &head, head_hash, NULL);
    cr_assert_eq(head, 3);
    collect_t c = {0};
    cr_assert_eq(soffa_store_scan(st, 1, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(soffa_store_get(st, 2, collect, &c), SOFFA_OK);
    cr_assert_eq(soffa_store_get(st, 4, collect, &c), SOFFA_ERR_NOT_FOUND);
    /* The chain: record 2 links to record 1's hash. */
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    cr_assert_eq(rep.records, 3);
    /* Appending after reopen continues the chain. */
    rec_t more;
    rec_make(&more, SOFFA_MT_REFERRAL_SENT, PUPIL, "af/1419", "kaa-1419");
    cr_assert_eq(append(st, &more, 1, it), SOFFA_OK);
    cr_assert_eq(it[0].seq, 4);
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    soffa_store_close(&st);
    rec_free(r, 3);
    rec_free(&more, 1);
    tk_rmrf(dir);
    free(dir);
}

Test(store, mailbox_index_scans_and_counts)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[6];
    for (int i = 0; i < 6; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, PUPIL, i % 2 ? "kaa/1419" : "kaa/1415", "school-1415");
    soffa_store_item_t it[6];
    cr_assert_eq(append(st, r, 6, it), SOFFA_OK);
    collect_t c = {0};
    cr_assert_eq(soffa_store_scan_mailbox(st, "kaa/1419", 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(c.seqs[0], 2);
    cr_assert_eq(c.seqs[2], 6);
    cr_assert_str_eq(c.mailbox, "kaa/1419");
    c.n = 0;
    cr_assert_eq(soffa_store_scan_mailbox(st, "kaa/1419", 2, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.seqs[0], 4);
    c.n = 0;
    /* "kaa/141" is a prefix of both names but names neither mailbox. */
    cr_assert_eq(soffa_store_scan_mailbox(st, "kaa/141", 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 0);
    uint64_t n;
    cr_assert_eq(soffa_store_count_mailbox(st, "kaa/1415", 0, 0, &n), SOFFA_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(soffa_store_count_mailbox(st, "kaa/1415", 3, 0, &n), SOFFA_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(soffa_store_count_mailbox(st, "af/1415", 0, 0, &n), SOFFA_OK);
    cr_assert_eq(n, 0);
    soffa_store_close(&st);
    rec_free(r, 6);
    tk_rmrf(dir);
    free(dir);
}

Test(store, duplicate_msg_id_returns_original_seq)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[2];
    rec_make(&r[0], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
    rec_make(&r[1], SOFFA_MT_ABSENCE_REPORTED, OTHER, "kaa/1419", "school-1415");
    soffa_store_item_t it[3];
    cr_assert_eq(append(st, r, 2, it), SOFFA_OK);
    /* The retry of record 0: same sender, same message id. */
    cr_assert_eq(append(st, r, 1, it), SOFFA_OK);
    cr_assert(it[0].duplicate);
    cr_assert_eq(it[0].seq, 1);
    uint64_t head;
    soffa_store_head(st, &head, NULL, NULL);
    cr_assert_eq(head, 2, "a retry stored something");
    /* A batch holding the same message twice stores it once. */
    rec_t twin[2];
    rec_make(&twin[0], SOFFA_MT_ENROLMENT_CHANGED, PUPIL, "kaa/1419", "school-1415");
    twin[1] = twin[0];
    twin[1].body = NULL;   /* shares twin[0]'s body; freed once */
    twin[1].env.body = twin[0].body;
    cr_assert_eq(append(st, twin, 2, it), SOFFA_OK);
    cr_assert_eq(it[0].seq, 3);
    cr_assert(it[1].duplicate);
    cr_assert_eq(it[1].seq, 3);
    /* Another sender may use the same id: it is a different message. */
    snprintf(r[0].env.sender_agent, sizeof r[0].env.sender_agent, "school-1480");
    cr_assert_eq(append(st, r, 1, it), SOFFA_OK);
    cr_assert_not(it[0].duplicate);
    cr_assert_eq(it[0].seq, 4);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    soffa_store_close(&st);
    rec_free(r, 2);
    rec_free(twin, 1);
    tk_rmrf(dir);
    free(dir);
}

Test(store, cursors_survive_reopen)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    uint64_t seq = 99;
    cr_assert_eq(soffa_store_cursor_get(st, "kaa-1419/kaa/1419", &seq), SOFFA_OK);
    cr_assert_eq(seq, 0, "a new consumer starts at 0");
    cr_assert_eq(soffa_store_cursor_set(st, "kaa-1419/kaa/1419", 41), SOFFA_OK);
    cr_assert_eq(soffa_store_cursor_set(st, "af-1419/af/1419", 7), SOFFA_OK);
    soffa_store_close(&st);
    st = open_store(dir, 0);
    cr_assert_eq(soffa_store_cursor_get(st, "kaa-1419/kaa/1419", &seq), SOFFA_OK);
    cr_assert_eq(seq, 41);
    cr_assert_eq(soffa_store_cursor_get(st, "af-1419/af/1419", &seq), SOFFA_OK);
    cr_assert_eq(seq, 7);
    cr_assert_eq(soffa_store_cursor_get(st, "", &seq), SOFFA_ERR_INVALID_ARG);
    soffa_store_close(&st);
    tk_rmrf(dir);
    free(dir);
}

/* Every key of every database in the environment, as one callback. */
static void
each_key(const char *dir, void (*fn)(const MDB_val *key, void *ctx), void *ctx)
{
    MDB_env *env;
    MDB_txn *txn;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    const char *names[] = {NULL, "log", "mailbox", "subject", "dedup", "cursor", "meta", "ref"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        MDB_dbi dbi;
        MDB_cursor *cur;
        MDB_val k, v;
        cr_assert_eq(mdb_dbi_open(txn, names[i], 0, &dbi), 0);
        cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
        while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
            fn(&k, ctx);
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static void
no_pnr_in_key(const MDB_val *k, void *ctx)
{
    const char *pnr = ctx;
    for (size_t off = 0; off + 10 <= k->mv_size; off++) {
        cr_assert(memcmp((char *) k->mv_data + off, pnr + 2, 10) != 0, "a personnummer appears in a key");
    }
}

static void
count_key(const MDB_val *k, void *ctx)
{
    (void) k;
    (*(int *) ctx)++;
}

Test(store, subject_index_finds_a_person_without_the_number_in_any_key)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[5];
    const char *who[] = {PUPIL, OTHER, PUPIL, OTHER, PUPIL};
    for (int i = 0; i < 5; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, who[i], "kaa/1419", "school-1415");
    soffa_store_item_t it[5];
    cr_assert_eq(append(st, r, 5, it), SOFFA_OK);
    collect_t c = {0};
    cr_assert_eq(soffa_store_scan_subject(st, PUPIL, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(c.seqs[0], 1);
    cr_assert_eq(c.seqs[1], 3);
    cr_assert_eq(c.seqs[2], 5);
    c.n = 0;
    cr_assert_eq(soffa_store_scan_subject(st, OTHER, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 2);
    /* Another store has another key: the same person hashes differently. */
    char *dir2 = tk_tmpdir("store");
    soffa_store_t *st2 = open_store(dir2, 0);
    uint8_t k1[16], k2[16];
    soffa_store_subject_key(st, PUPIL, k1);
    soffa_store_subject_key(st2, PUPIL, k2);
    cr_assert_neq(memcmp(k1, k2, 16), 0);
    soffa_store_close(&st2);
    soffa_store_close(&st);

    int keys = 0;
    each_key(dir, count_key, &keys);
    cr_assert_gt(keys, 15, "the check below must see the index keys");
    each_key(dir, no_pnr_in_key, PUPIL);
    each_key(dir, no_pnr_in_key, OTHER);
    rec_free(r, 5);
    tk_rmrf(dir);
    tk_rmrf(dir2);
    free(dir);
    free(dir2);
}

typedef struct {
    char names[128][32];
    uint64_t count[128], last[128];
    size_t n;
} mboxes_t;

static int
list_mailbox(void *ctx, const char *name, uint64_t count, uint64_t last)
{
    mboxes_t *m = ctx;
    cr_assert_lt(m->n, 128);
    snprintf(m->names[m->n], sizeof m->names[m->n], "%s", name);
    m->count[m->n] = count;
    m->last[m->n++] = last;
    return 0;
}

/* The broker learns its mailboxes at start from totals the store keeps with
 * every commit: right after batches, duplicates, a batch with more mailboxes
 * than fit the per-commit table, and a reopen. */
Test(store, mailbox_totals_are_kept_with_every_commit)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    static rec_t r[200];
    static soffa_store_item_t it[200];
    /* 1..100 go to 100 mailboxes kaa/1000..kaa/1099 in one batch. */
    for (int i = 0; i < 100; i++) {
        char mb[32];
        snprintf(mb, sizeof mb, "kaa/%04d", 1000 + i);
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, PUPIL, mb, "school-1415");
    }
    cr_assert_eq(append(st, r, 100, it), SOFFA_OK);
    /* 101..150 to kaa/1050 in two batches; then 10 retries of earlier ones. */
    for (int i = 100; i < 150; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, OTHER, "kaa/1050", "school-1415");
    cr_assert_eq(append(st, r + 100, 20, it + 100), SOFFA_OK);
    cr_assert_eq(append(st, r + 120, 30, it + 120), SOFFA_OK);
    cr_assert_eq(append(st, r + 90, 10, it + 90), SOFFA_OK);
    for (int i = 90; i < 100; i++)
        cr_assert(it[i].duplicate);
    for (int pass = 0; pass < 2; pass++) {
        mboxes_t m = {0};
        cr_assert_eq(soffa_store_mailboxes(st, list_mailbox, &m), SOFFA_OK);
        cr_assert_eq(m.n, 100);
        for (size_t i = 0; i < m.n; i++) {
            char want[32];
            snprintf(want, sizeof want, "kaa/%04zu", 1000 + i);
            cr_assert_str_eq(m.names[i], want);
            cr_assert_eq(m.count[i], i == 50 ? 51 : 1, "%s has %llu", m.names[i], (unsigned long long) m.count[i]);
            cr_assert_eq(m.last[i], i == 50 ? 150 : i + 1);
        }
        soffa_store_close(&st);
        st = open_store(dir, 0);
    }
    soffa_store_close(&st);
    rec_free(r, 150);
    tk_rmrf(dir);
    free(dir);
}

typedef struct {
    uint64_t seen, stop_after;
} stop_t;

static int
stop_early(void *ctx, const soffa_store_rec_t *rec)
{
    (void) rec;
    stop_t *s = ctx;
    return ++s->seen >= s->stop_after;
}

/* The subject index is kept in buckets of 256 sequence numbers: a person's
 * records in many buckets, at their edges and in empty stretches, all come
 * back once each and in order, from any starting point. */
Test(store, subject_index_spans_buckets_in_order)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    enum { N = 5000 };
    static rec_t r[N];
    static soffa_store_item_t it[N];
    /* PUPIL at bucket edges and scattered; nothing about PUPIL in 2048..3071. */
    static const uint64_t at[] = {1, 2, 1023, 1024, 1025, 2047, 3072, 4095, 4096, 4999, 5000};
    size_t n_at = sizeof at / sizeof *at;
    for (uint64_t seq = 1; seq <= N; seq++) {
        bool mine = false;
        for (size_t j = 0; j < n_at; j++)
            mine |= at[j] == seq;
        rec_make(&r[seq - 1], SOFFA_MT_ABSENCE_REPORTED, mine ? PUPIL : OTHER, "kaa/1419", "school-1415");
    }
    for (size_t off = 0; off < N; off += 700)   /* several commits */
        cr_assert_eq(append(st, r + off, off + 700 <= N ? 700 : N - off, it + off), SOFFA_OK);
    uint64_t afters[] = {0, 1, 1022, 1023, 1024, 2046, 2047, 2048, 4998, 4999, 5000, 9000};
    for (size_t a = 0; a < sizeof afters / sizeof *afters; a++) {
        collect_t c = {0};
        cr_assert_eq(soffa_store_scan_subject(st, PUPIL, afters[a], collect, &c), SOFFA_OK);
        size_t want = 0;
        for (size_t j = 0; j < n_at; j++)
            if (at[j] > afters[a]) {
                cr_assert_lt(want, c.n, "after %llu: too few records", (unsigned long long) afters[a]);
                cr_assert_eq(c.seqs[want], at[j], "after %llu: record %zu is seq %llu, not %llu",
                             (unsigned long long) afters[a], want, (unsigned long long) c.seqs[want],
                             (unsigned long long) at[j]);
                want++;
            }
        cr_assert_eq(c.n, want, "after %llu: %zu records, expected %zu", (unsigned long long) afters[a], c.n, want);
    }
    collect_t c = {0};
    cr_assert_eq(soffa_store_scan_subject(st, OTHER, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 4096, "collect keeps at most 4096");
    /* A visitor that stops is not called again, even across buckets. */
    stop_t sp = {0, 4};
    cr_assert_eq(soffa_store_scan_subject(st, PUPIL, 0, stop_early, &sp), SOFFA_OK);
    cr_assert_eq(sp.seen, 4);
    soffa_store_close(&st);
    rec_free(r, N);
    tk_rmrf(dir);
    free(dir);
}

Test(store, files_are_owner_only_and_a_shared_key_is_refused)
{
    char *dir = tk_tmpdir("store");
    char path[512];
    snprintf(path, sizeof path, "%s/db", dir);
    soffa_store_t *st = open_store(path, 0);
    soffa_store_close(&st);
    struct stat s;
    cr_assert_eq(stat(path, &s), 0);
    cr_assert_eq(s.st_mode & 0777, 0700);
    const char *files[] = {"keys", "data.mdb", "lock.mdb"};
    for (size_t i = 0; i < 3; i++) {
        char f[600];
        snprintf(f, sizeof f, "%s/%s", path, files[i]);
        cr_assert_eq(stat(f, &s), 0, "%s", files[i]);
        cr_assert_eq(s.st_mode & 077, 0, "%s is open to others", files[i]);
    }
    char key[600];
    snprintf(key, sizeof key, "%s/keys", path);
    chmod(key, 0644);
    soffa_store_opts_t o = {.path = path, .master = tk_master()};
    cr_assert_eq(soffa_store_open(&st, &o), SOFFA_ERR_PERMISSION);
    cr_assert_null(st);
    tk_rmrf(dir);
    free(dir);
}

/* Opens the raw LMDB log of a closed store for tampering. */
static void
tamper(const char *dir, void (*fn)(MDB_txn *txn, MDB_dbi log, MDB_dbi meta))
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi log, meta;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "log", 0, &log), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    fn(txn, log, meta);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static MDB_val
key_of(uint64_t seq, uint8_t buf[8])
{
    for (int i = 7; i >= 0; i--, seq >>= 8)
        buf[i] = (uint8_t) seq;
    return (MDB_val) {8, buf};
}

static void
flip_byte_of_5(MDB_txn *txn, MDB_dbi log, MDB_dbi meta)
{
    (void) meta;
    uint8_t kb[8];
    MDB_val k = key_of(5, kb), v;
    cr_assert_eq(mdb_get(txn, log, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 10] ^= 0x01;   /* a byte inside the message body */
    MDB_val nv = {v.mv_size, copy};
    cr_assert_eq(mdb_put(txn, log, &k, &nv, 0), 0);
    free(copy);
}

static void
delete_5(MDB_txn *txn, MDB_dbi log, MDB_dbi meta)
{
    (void) meta;
    uint8_t kb[8];
    MDB_val k = key_of(5, kb);
    cr_assert_eq(mdb_del(txn, log, &k, NULL), 0);
}

static void
swap_5_and_6(MDB_txn *txn, MDB_dbi log, MDB_dbi meta)
{
    (void) meta;
    uint8_t k5b[8], k6b[8];
    MDB_val k5 = key_of(5, k5b), k6 = key_of(6, k6b), v5, v6;
    cr_assert_eq(mdb_get(txn, log, &k5, &v5), 0);
    cr_assert_eq(mdb_get(txn, log, &k6, &v6), 0);
    uint8_t *c5 = malloc(v5.mv_size), *c6 = malloc(v6.mv_size);
    memcpy(c5, v5.mv_data, v5.mv_size);
    memcpy(c6, v6.mv_data, v6.mv_size);
    MDB_val n5 = {v6.mv_size, c6}, n6 = {v5.mv_size, c5};
    cr_assert_eq(mdb_put(txn, log, &k5, &n5, 0), 0);
    cr_assert_eq(mdb_put(txn, log, &k6, &n6, 0), 0);
    free(c5);
    free(c6);
}

static void
drop_last(MDB_txn *txn, MDB_dbi log, MDB_dbi meta)
{
    (void) meta;
    uint8_t kb[8];
    MDB_val k = key_of(8, kb);
    cr_assert_eq(mdb_del(txn, log, &k, NULL), 0);
}

static void
check_tamper(void (*fn)(MDB_txn *, MDB_dbi, MDB_dbi), uint64_t want_seq, const char *want_word)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[8];
    for (int i = 0; i < 8; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, i % 2 ? PUPIL : OTHER, "kaa/1419", "school-1415");
    soffa_store_item_t it[8];
    cr_assert_eq(append(st, r, 4, it), SOFFA_OK);
    cr_assert_eq(append(st, r + 4, 4, it), SOFFA_OK);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    soffa_store_close(&st);
    tamper(dir, fn);
    soffa_store_opts_t ro = {.path = dir, .read_only = true};
    cr_assert_eq(soffa_store_open(&st, &ro), SOFFA_OK);
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_ERR_CHAIN_BROKEN, "tampering not found");
    cr_assert_eq(rep.bad_seq, want_seq, "reported %llu: %s", (unsigned long long) rep.bad_seq, rep.reason);
    cr_assert(strstr(rep.reason, want_word) != NULL, "%s", rep.reason);
    soffa_store_close(&st);
    rec_free(r, 8);
    tk_rmrf(dir);
    free(dir);
}

Test(store, flipped_byte_is_found_at_its_sequence)
{
    check_tamper(flip_byte_of_5, 5, "altered");
}

Test(store, deleted_record_is_found)
{
    check_tamper(delete_5, 5, "missing");
}

Test(store, swapped_records_are_found)
{
    check_tamper(swap_5_and_6, 5, "reordered");
}

Test(store, removed_tail_is_found)
{
    check_tamper(drop_last, 8, "removed");
}

Test(store, full_map_fails_the_whole_batch_cleanly)
{
    char *dir = tk_tmpdir("store");
    size_t map = 256 * 1024;
    soffa_store_t *st = open_store(dir, map);
    rec_t r[16];
    for (int i = 0; i < 16; i++)
        rec_make(&r[i], SOFFA_MT_REFERRAL_SENT, PUPIL, "af/1419", "kaa-1419");
    soffa_store_item_t it[16];
    soffa_err_t rc = SOFFA_OK;
    int batches = 0;
    uint64_t head_before = 0;
    uint8_t hash_before[32];
    while (rc == SOFFA_OK && batches < 10000) {
        soffa_store_head(st, &head_before, hash_before, NULL);
        /* Fresh message ids each round so nothing is a duplicate. */
        for (int i = 0; i < 16; i++)
            soffa_uuid7(r[i].env.message_id);
        rc = append(st, r, 16, it);
        batches++;
    }
    cr_assert_eq(rc, SOFFA_ERR_STORE_FULL, "got %s after %d batches", soffa_errname(rc), batches);
    cr_assert_gt(batches, 2);
    cr_assert(strstr(soffa_strerror(rc), "map_size") != NULL);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(it[i].seq, 0, "a failed batch handed out a sequence");
    uint64_t head;
    uint8_t hash[32];
    soffa_store_head(st, &head, hash, NULL);
    cr_assert_eq(head, head_before);
    cr_assert_eq(memcmp(hash, hash_before, 32), 0);
    collect_t c = {0};
    cr_assert_eq(soffa_store_get(st, head + 1, collect, &c), SOFFA_ERR_NOT_FOUND);
    soffa_store_close(&st);
    /* Reopened with room, everything committed is there and verifies, and
     * appends work again. */
    st = open_store(dir, 4 * map);
    soffa_store_head(st, &head, NULL, NULL);
    cr_assert_eq(head, head_before);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    cr_assert_eq(rep.records, head_before);
    for (int i = 0; i < 16; i++)
        soffa_uuid7(r[i].env.message_id);
    cr_assert_eq(append(st, r, 16, it), SOFFA_OK);
    cr_assert_eq(it[0].seq, head_before + 1);
    soffa_store_close(&st);
    rec_free(r, 16);
    tk_rmrf(dir);
    free(dir);
}

/* The child appends batches of 8 forever, reporting each committed batch's
 * last sequence on a pipe; message ids are derived from (batch, item) so the
 * parent can recognise them. */
static void
child_appender(const char *dir, int wfd)
{
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = dir, .master = tk_master()};
    if (soffa_store_open(&st, &o) != SOFFA_OK)
        _exit(3);
    rec_t r[8];
    for (int i = 0; i < 8; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, i % 2 ? PUPIL : OTHER, "kaa/1419", "school-1415");
    for (uint32_t b = 0;; b++) {
        soffa_store_item_t it[8];
        for (uint32_t i = 0; i < 8; i++) {
            memset(r[i].env.message_id, 0, 16);
            memcpy(r[i].env.message_id, &b, 4);
            memcpy(r[i].env.message_id + 4, &i, 4);
        }
        if (append(st, r, 8, it) != SOFFA_OK)
            _exit(4);
        uint64_t last = it[7].seq;
        if (write(wfd, &last, sizeof last) != sizeof last)
            _exit(5);
    }
}

Test(store, sigkill_during_appends_loses_nothing_committed, .timeout = 120)
{
    tk_master();   /* one key for the child and the parent */
    for (int round = 0; round < 3; round++) {
        char *dir = tk_tmpdir("store");
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            child_appender(dir, p[1]);
        }
        close(p[1]);
        uint64_t last = 0, got;
        int reports = 0;
        /* Kill after a varying number of committed batches, mid-stream. */
        while (reports < 20 + round * 15 && read(p[0], &got, sizeof got) == sizeof got) {
            last = got;
            reports++;
        }
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "the child died on its own (status %d)", status);
        /* Reports written before the kill but not read yet count too. */
        while (read(p[0], &got, sizeof got) == sizeof got)
            last = got;
        close(p[0]);
        cr_assert_gt(last, 0);

        soffa_store_t *st = open_store(dir, 0);
        uint64_t head;
        soffa_store_head(st, &head, NULL, NULL);
        cr_assert_geq(head, last, "committed %llu, store has %llu", (unsigned long long) last,
                      (unsigned long long) head);
        cr_assert_eq(head % 8, 0, "a batch was half stored");
        soffa_store_verify_t rep;
        cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
        cr_assert_eq(rep.records, head);
        /* Every reported batch is there: its ids are duplicates now. */
        rec_t r[8];
        for (int i = 0; i < 8; i++)
            rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
        for (uint32_t b = 0; b < last / 8; b++) {
            soffa_store_item_t it[8];
            for (uint32_t i = 0; i < 8; i++) {
                memset(r[i].env.message_id, 0, 16);
                memcpy(r[i].env.message_id, &b, 4);
                memcpy(r[i].env.message_id + 4, &i, 4);
            }
            cr_assert_eq(append(st, r, 8, it), SOFFA_OK);
            for (int i = 0; i < 8; i++) {
                cr_assert(it[i].duplicate, "batch %u item %d was lost", b, i);
                cr_assert_eq(it[i].seq, (uint64_t) b * 8 + (uint64_t) i + 1);
            }
        }
        soffa_store_head(st, &head, NULL, NULL);
        soffa_store_close(&st);
        rec_free(r, 8);
        tk_rmrf(dir);
        free(dir);
    }
}

Test(store, read_only_open_of_a_copy_verifies_and_refuses_writes)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[2];
    rec_make(&r[0], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
    rec_make(&r[1], SOFFA_MT_ABSENCE_REPORTED, OTHER, "kaa/1419", "school-1415");
    soffa_store_item_t it[2];
    cr_assert_eq(append(st, r, 2, it), SOFFA_OK);
    soffa_store_close(&st);
    soffa_store_opts_t ro = {.path = dir, .read_only = true};
    cr_assert_eq(soffa_store_open(&st, &ro), SOFFA_OK);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    cr_assert_eq(rep.records, 2);
    cr_assert_eq(append(st, r, 1, it), SOFFA_ERR_PERMISSION);
    soffa_store_close(&st);
    soffa_store_opts_t missing = {.path = "/tmp/soffa-test-does-not-exist", .read_only = true};
    cr_assert_eq(soffa_store_open(&st, &missing), SOFFA_ERR_NOT_FOUND);
    rec_free(r, 2);
    tk_rmrf(dir);
    free(dir);
}

static int
ref_collect(void *ctx, uint64_t seq)
{
    collect_t *c = ctx;
    c->seqs[c->n++] = seq;
    return 0;
}

Test(store, references_dedup_lookup_time_search_and_cursor_batches)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[4];
    for (int i = 0; i < 4; i++) {
        rec_make(&r[i], SOFFA_MT_REFERRAL_SENT, PUPIL, "af/1419", "kaa-1419");
        r[i].env.received_at_us = 1000 * (i + 1);
    }
    r[2].env.received_at_us = 500;   /* a clock step back is clamped forward */
    soffa_store_item_t it[4];
    for (int i = 0; i < 4; i++) {
        it[i] = (soffa_store_item_t) {.env = &r[i].env, .subject_id = PUPIL, .n_refs = 2};
        memcpy(it[i].refs[0].key, "R", 1);
        memcpy(it[i].refs[0].key + 1, r[i].env.message_id, 16);
        it[i].refs[0].len = 17;
        memcpy(it[i].refs[1].key, "Xconsent-1", 10);   /* many records under one prefix */
        it[i].refs[1].len = 10;
        it[i].refs[1].shared = true;
    }
    cr_assert_eq(soffa_store_append(st, it, 4), SOFFA_OK);
    uint8_t key[17] = {'R'};
    memcpy(key + 1, r[2].env.message_id, 16);
    uint64_t seq = 0;
    cr_assert_eq(soffa_store_ref_get(st, key, 17, &seq), SOFFA_OK);
    cr_assert_eq(seq, 3);
    key[1] ^= 0xff;
    cr_assert_eq(soffa_store_ref_get(st, key, 17, &seq), SOFFA_ERR_NOT_FOUND);
    collect_t c = {0};
    cr_assert_eq(soffa_store_ref_scan(st, "Xconsent-1", 10, ref_collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 4);
    cr_assert_eq(c.seqs[3], 4);
    c.n = 0;
    cr_assert_eq(soffa_store_ref_scan(st, "Xconsent-2", 10, ref_collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 0);

    cr_assert_eq(soffa_store_dedup_get(st, "kaa-1419", r[1].env.message_id, &seq), SOFFA_OK);
    cr_assert_eq(seq, 2);
    cr_assert_eq(soffa_store_dedup_get(st, "kaa-1415", r[1].env.message_id, &seq), SOFFA_ERR_NOT_FOUND);

    /* Times stored: 1000, 2000, 2000 (clamped), 4000. */
    cr_assert_eq(soffa_store_seq_at_time(st, 0, &seq), SOFFA_OK);
    cr_assert_eq(seq, 1);
    cr_assert_eq(soffa_store_seq_at_time(st, 1500, &seq), SOFFA_OK);
    cr_assert_eq(seq, 2);
    cr_assert_eq(soffa_store_seq_at_time(st, 2001, &seq), SOFFA_OK);
    cr_assert_eq(seq, 4);
    cr_assert_eq(soffa_store_seq_at_time(st, 9999, &seq), SOFFA_OK);
    cr_assert_eq(seq, 5);

    c.n = 0;
    cr_assert_eq(soffa_store_scan_subject(st, PUPIL, 2, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 2);
    cr_assert_eq(c.seqs[0], 3);

    soffa_store_cursor_t cs[2] = {{"a|af/1419", 3}, {"b|af/1419", 4}};
    cr_assert_eq(soffa_store_cursor_set_many(st, cs, 2), SOFFA_OK);
    soffa_store_close(&st);
    st = open_store(dir, 0);
    cr_assert_eq(soffa_store_cursor_get(st, "b|af/1419", &seq), SOFFA_OK);
    cr_assert_eq(seq, 4);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    soffa_store_close(&st);
    rec_free(r, 4);
    tk_rmrf(dir);
    free(dir);
}

/* ---- Signed checkpoints ---- */

#include <sodium.h>

/* Appends a checkpoint of the current head, signed with sk. */
static void
append_checkpoint(soffa_store_t *st, const uint8_t sk[64])
{
    soffa_checkpoint_t cp = {.at_us = soffa_now_us()};
    soffa_store_head(st, &cp.covers_seq, cp.head_hash, NULL);
    soffa_checkpoint_sign(&cp, sk);
    uint8_t *body;
    size_t len;
    cr_assert_eq(soffa_checkpoint_encode(&cp, &body, &len), SOFFA_OK);
    soffa_envelope_t env = {.body = body, .body_len = len, .kind = SOFFA_RK_CHECKPOINT,
                            .sender_role = SOFFA_ROLE_BROKER, .received_at_us = soffa_now_us()};
    soffa_uuid7(env.message_id);
    strcpy(env.sender_agent, "soffa-broker");
    strcpy(env.mailbox, "audit/checkpoint");
    soffa_store_item_t it = {.env = &env};
    cr_assert_eq(soffa_store_append(st, &it, 1), SOFFA_OK);
    free(body);
}

/* What a careful forger does: change record `from` (its body, or re-sign a
 * checkpoint with forger_sk), then recompute the hash and link of every
 * record after it and the head, so that the plain chain checks out. */
static void
rechain_from(const char *dir, uint64_t from, const uint8_t *forger_sk)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi log, meta;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "log", 0, &log), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t prev[32], kb[8];
    uint64_t seq = from;
    MDB_val k = key_of(from - 1, kb), v;
    cr_assert_eq(mdb_get(txn, log, &k, &v), 0);
    memcpy(prev, v.mv_data, 32);
    for (;; seq++) {
        k = key_of(seq, kb);
        if (mdb_get(txn, log, &k, &v) != 0)
            break;
        soffa_envelope_t e;
        cr_assert_eq(soffa_envelope_decode((uint8_t *) v.mv_data + 33, v.mv_size - 33, &e), SOFFA_OK);
        uint8_t tag = ((uint8_t *) v.mv_data)[32];
        uint8_t *newbody = NULL;
        size_t newlen = 0;
        if (seq == from && e.kind == SOFFA_RK_CHECKPOINT && forger_sk) {
            soffa_checkpoint_t cp;
            cr_assert_eq(soffa_checkpoint_decode(e.body, e.body_len, &cp), SOFFA_OK);
            memcpy(cp.head_hash, prev, 32);
            soffa_checkpoint_sign(&cp, forger_sk);
            cr_assert_eq(soffa_checkpoint_encode(&cp, &newbody, &newlen), SOFFA_OK);
        } else if (seq == from) {
            newbody = malloc(e.body_len);
            memcpy(newbody, e.body, e.body_len);
            newbody[e.body_len - 5] ^= 0x01;   /* the history itself changed */
            newlen = e.body_len;
        }
        if (newbody) {
            e.body = newbody;
            e.body_len = newlen;
        }
        memcpy(e.prev_hash, prev, 32);
        uint8_t *enc;
        size_t len;
        cr_assert_eq(soffa_envelope_encode(&e, &enc, &len), SOFFA_OK);
        uint8_t *val = malloc(33 + len);
        soffa_wire_hash(enc, len, val);
        val[32] = tag;
        memcpy(val + 33, enc, len);
        memcpy(prev, val, 32);
        MDB_val nv = {33 + len, val};
        cr_assert_eq(mdb_put(txn, log, &k, &nv, 0), 0);
        free(val);
        free(enc);
        free(newbody);
        soffa_envelope_fini(&e);
    }
    uint8_t head[48];
    MDB_val hk = {4, "head"}, hv;
    cr_assert_eq(mdb_get(txn, meta, &hk, &hv), 0);
    memcpy(head, hv.mv_data, 48);
    memcpy(head + 8, prev, 32);
    hv = (MDB_val) {48, head};
    cr_assert_eq(mdb_put(txn, meta, &hk, &hv, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* 4 records, checkpoint (5), 4 records, checkpoint (10), 2 records. */
static char *
signed_store(uint8_t pk[32], uint8_t sk[64])
{
    crypto_sign_keypair(pk, sk);
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[10];
    for (int i = 0; i < 10; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, i % 2 ? PUPIL : OTHER, "kaa/1419", "school-1415");
    soffa_store_item_t it[10];
    cr_assert_eq(append(st, r, 4, it), SOFFA_OK);
    append_checkpoint(st, sk);
    cr_assert_eq(append(st, r + 4, 4, it), SOFFA_OK);
    append_checkpoint(st, sk);
    cr_assert_eq(append(st, r + 8, 2, it), SOFFA_OK);
    soffa_store_close(&st);
    rec_free(r, 10);
    return dir;
}

static soffa_err_t
verify_dir(const char *dir, const uint8_t *pk, soffa_store_verify_t *rep)
{
    soffa_store_t *st = NULL;
    soffa_store_opts_t ro = {.path = dir, .read_only = true};
    cr_assert_eq(soffa_store_open(&st, &ro), SOFFA_OK);
    soffa_err_t rc = soffa_store_verify(st, pk, rep);
    soffa_store_close(&st);
    return rc;
}

Test(store, signed_checkpoints_verify_against_the_broker_key)
{
    uint8_t pk[32], sk[64], other_pk[32], other_sk[64];
    char *dir = signed_store(pk, sk);
    soffa_store_verify_t rep;
    cr_assert_eq(verify_dir(dir, pk, &rep), SOFFA_OK, "%s", rep.reason);
    cr_assert_eq(rep.records, 12);
    cr_assert_eq(rep.checkpoints, 2);
    cr_assert_eq(rep.last_signed, 9);
    crypto_sign_keypair(other_pk, other_sk);
    cr_assert_eq(verify_dir(dir, other_pk, &rep), SOFFA_ERR_CHAIN_BROKEN, "another key was accepted");
    cr_assert_eq(rep.bad_seq, 5);
    cr_assert(strstr(rep.reason, "another key") != NULL, "%s", rep.reason);
    tk_rmrf(dir);
    free(dir);
}

Test(store, history_rewritten_with_recomputed_hashes_is_caught_by_a_checkpoint)
{
    uint8_t pk[32], sk[64];
    char *dir = signed_store(pk, sk);
    rechain_from(dir, 7, NULL);   /* change record 7, recompute every hash after it */
    soffa_store_verify_t rep;
    cr_assert_eq(verify_dir(dir, pk, &rep), SOFFA_ERR_CHAIN_BROKEN, "a rewritten history passed");
    cr_assert_eq(rep.bad_seq, 10, "reported %llu: %s", (unsigned long long) rep.bad_seq, rep.reason);
    cr_assert(strstr(rep.reason, "does not vouch") != NULL, "%s", rep.reason);
    tk_rmrf(dir);
    free(dir);
}

Test(store, a_forged_checkpoint_is_caught)
{
    uint8_t pk[32], sk[64], fpk[32], fsk[64];
    crypto_sign_keypair(fpk, fsk);
    char *dir = signed_store(pk, sk);
    rechain_from(dir, 10, fsk);   /* re-sign checkpoint 10 with the forger's key */
    soffa_store_verify_t rep;
    cr_assert_eq(verify_dir(dir, pk, &rep), SOFFA_ERR_CHAIN_BROKEN, "a forged checkpoint passed");
    cr_assert_eq(rep.bad_seq, 10);
    cr_assert(strstr(rep.reason, "another key") != NULL, "%s", rep.reason);
    /* Without the trusted key, it still differs from the earlier checkpoint's key. */
    cr_assert_eq(verify_dir(dir, NULL, &rep), SOFFA_ERR_CHAIN_BROKEN);
    cr_assert_eq(rep.bad_seq, 10);
    tk_rmrf(dir);
    free(dir);
}

/* Regression: an id whose last byte happened to be '*' (0x2a) was stored
 * under a longer key and never found again (1 id in 256). */
Test(store, reference_ids_ending_in_any_byte_are_found)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[3];
    soffa_store_item_t it[3];
    const uint8_t last[3] = {'*', 0x00, 0xff};
    for (int i = 0; i < 3; i++) {
        rec_make(&r[i], SOFFA_MT_CONSENT_RECORDED, PUPIL, "kaa-journal/1419", "kaa-1419");
        it[i] = (soffa_store_item_t) {.env = &r[i].env, .subject_id = PUPIL, .n_refs = 1};
        it[i].refs[0].key[0] = 'K';
        memset(it[i].refs[0].key + 1, 0x11 * (i + 1), 15);
        it[i].refs[0].key[16] = last[i];
        it[i].refs[0].len = 17;
    }
    cr_assert_eq(soffa_store_append(st, it, 3), SOFFA_OK);
    for (int i = 0; i < 3; i++) {
        uint64_t seq = 0;
        cr_assert_eq(soffa_store_ref_get(st, it[i].refs[0].key, 17, &seq), SOFFA_OK, "id ending in 0x%02x lost", last[i]);
        cr_assert_eq(seq, (uint64_t) i + 1);
    }
    soffa_store_close(&st);
    rec_free(r, 3);
    tk_rmrf(dir);
    free(dir);
}

/* The broker writes consumer cursors in the same commit as the records:
 * both land together, cursors alone commit too, and a bad cursor fails the
 * whole commit with nothing of it stored. */
Test(store, cursors_ride_in_the_records_commit)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[3];
    soffa_store_item_t it[3];
    for (int i = 0; i < 3; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
    for (int i = 0; i < 3; i++)
        it[i] = (soffa_store_item_t) {.env = &r[i].env, .subject_id = r[i].subject};
    soffa_store_cursor_t cur[2] = {{"kaa-1419|kaa/1419", 5}, {"af-1419|af/1419", 9}};
    cr_assert_eq(soffa_store_append_cursors(st, it, 2, cur, 2), SOFFA_OK);
    uint64_t seq = 0, head = 0;
    cr_assert_eq(soffa_store_cursor_get(st, "kaa-1419|kaa/1419", &seq), SOFFA_OK);
    cr_assert_eq(seq, 5);
    soffa_store_head(st, &head, NULL, NULL);
    cr_assert_eq(head, 2);
    /* Cursors alone. */
    soffa_store_cursor_t later = {"kaa-1419|kaa/1419", 6};
    cr_assert_eq(soffa_store_append_cursors(st, NULL, 0, &later, 1), SOFFA_OK);
    cr_assert_eq(soffa_store_cursor_get(st, "kaa-1419|kaa/1419", &seq), SOFFA_OK);
    cr_assert_eq(seq, 6);
    /* A nameless cursor fails the commit: the record is not stored either. */
    soffa_store_cursor_t bad[2] = {{"af-1419|af/1419", 12}, {"", 1}};
    cr_assert_eq(soffa_store_append_cursors(st, it + 2, 1, bad, 2), SOFFA_ERR_INVALID_ARG);
    soffa_store_head(st, &head, NULL, NULL);
    cr_assert_eq(head, 2);
    cr_assert_eq(it[2].seq, 0);
    cr_assert_eq(soffa_store_cursor_get(st, "af-1419|af/1419", &seq), SOFFA_OK);
    cr_assert_eq(seq, 9);
    soffa_store_close(&st);
    st = open_store(dir, 0);
    cr_assert_eq(soffa_store_cursor_get(st, "af-1419|af/1419", &seq), SOFFA_OK);
    cr_assert_eq(seq, 9);
    soffa_store_close(&st);
    rec_free(r, 3);
    tk_rmrf(dir);
    free(dir);
}

/* ---- Format 3: mailbox ordinals, derived state, the upgrade from 2 ---- */

Test(store, mailbox_rank_counts_records_up_to_a_sequence)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    char pnr[13];
    tk_pnr(2008, 3, 14, 271, 0, pnr);
    rec_t r[6];
    const char *boxes[6] = {"kaa/1419", "kaa/1415", "kaa/1419", "kaa/1419", "af/1419", "kaa/1419"};
    for (int i = 0; i < 6; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, pnr, boxes[i], "school-1415");
    soffa_store_item_t items[6];
    cr_assert_eq(append(st, r, 3, items), SOFFA_OK);
    cr_assert_eq(append(st, r + 3, 3, items + 3), SOFFA_OK);
    /* kaa/1419 holds seqs 1, 3, 4, 6. */
    uint64_t want[8] = {0, 1, 1, 2, 3, 3, 4, 4};
    for (uint64_t s = 0; s < 8; s++) {
        uint64_t n = 99;
        cr_assert_eq(soffa_store_mailbox_rank(st, "kaa/1419", s, &n), SOFFA_OK);
        cr_assert_eq(n, want[s], "rank at %llu: %llu, wanted %llu", (unsigned long long) s, (unsigned long long) n,
                     (unsigned long long) want[s]);
    }
    uint64_t n = 99;
    cr_assert_eq(soffa_store_mailbox_rank(st, "af/1419", UINT64_MAX, &n), SOFFA_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(soffa_store_mailbox_rank(st, "kaa/141", 10, &n), SOFFA_OK);   /* a prefix is not a mailbox */
    cr_assert_eq(n, 0);
    cr_assert_eq(soffa_store_mailbox_rank(st, "school/none", 10, &n), SOFFA_OK);
    cr_assert_eq(n, 0);
    rec_free(r, 6);
    soffa_store_close(&st);
    tk_rmrf(dir);
    free(dir);
}

static int
count_state(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    (void) k;
    (void) kl;
    (void) v;
    (void) vl;
    (*(int *) ctx)++;
    return 0;
}

Test(store, state_changes_commit_with_their_record_and_never_for_a_duplicate)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    char pnr[13];
    tk_pnr(2008, 3, 14, 271, 0, pnr);
    rec_t r[2];
    rec_make(&r[0], SOFFA_MT_ABSENCE_REPORTED, pnr, "kaa/1419", "school-1415");
    rec_make(&r[1], SOFFA_MT_ABSENCE_REPORTED, pnr, "kaa/1419", "school-1415");
    soffa_store_item_t it[2] = {{.env = &r[0].env}, {.env = &r[1].env}};
    it[0].state[0] = (soffa_store_state_op_t) {.key = "Oabc", .klen = 4, .val = "x", .vlen = 1, .with_seq = true};
    it[0].n_state = 1;
    it[1].state[0] = (soffa_store_state_op_t) {.key = "Odef", .klen = 4, .val = "y", .vlen = 1};
    it[1].n_state = 1;
    cr_assert_eq(soffa_store_append(st, it, 2), SOFFA_OK);
    uint8_t val[16];
    size_t vl = 0;
    cr_assert_eq(soffa_store_state_get(st, "Oabc", 4, val, sizeof val, &vl), SOFFA_OK);
    cr_assert_eq(vl, 9);
    cr_assert_eq(val[0], 'x');
    cr_assert_eq(val[8], 1, "the record's seq is appended");
    int n = 0;
    cr_assert_eq(soffa_store_state_scan(st, "O", 1, count_state, &n), SOFFA_OK);
    cr_assert_eq(n, 2);
    /* A retry of record 1 that would delete Oabc is a duplicate: nothing happens. */
    soffa_store_item_t again = {.env = &r[0].env};
    again.state[0] = (soffa_store_state_op_t) {.key = "Oabc", .klen = 4, .del = true};
    again.n_state = 1;
    cr_assert_eq(soffa_store_append(st, &again, 1), SOFFA_OK);
    cr_assert(again.duplicate);
    cr_assert_eq(soffa_store_state_get(st, "Oabc", 4, NULL, 0, NULL), SOFFA_OK);
    /* A failed batch changes no state either. */
    rec_t bad;
    rec_make(&bad, SOFFA_MT_ABSENCE_REPORTED, pnr, "kaa/1419", "school-1415");
    soffa_store_item_t b = {.env = &bad.env};
    b.state[0] = (soffa_store_state_op_t) {.key = "Oabc", .klen = 4, .del = true};
    b.state[1] = (soffa_store_state_op_t) {.key = "", .klen = 0};   /* invalid: aborts the batch */
    b.n_state = 2;
    cr_assert_neq(soffa_store_append(st, &b, 1), SOFFA_OK);
    cr_assert_eq(soffa_store_state_get(st, "Oabc", 4, NULL, 0, NULL), SOFFA_OK);
    /* State written on its own (a rebuild). */
    soffa_store_state_op_t del = {.key = "Odef", .klen = 4, .del = true};
    cr_assert_eq(soffa_store_state_write(st, &del, 1), SOFFA_OK);
    cr_assert_eq(soffa_store_state_get(st, "Odef", 4, NULL, 0, NULL), SOFFA_ERR_NOT_FOUND);
    rec_free(r, 2);
    rec_free(&bad, 1);
    soffa_store_close(&st);
    tk_rmrf(dir);
    free(dir);
}

/* Copies the version-2 fixture into a fresh directory. */
static char *
v2_copy(void)
{
    char *dir = tk_tmpdir("store-v2");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cp %s/tests/fixtures/store/v2-small.mdb %s/data.mdb && cp %s/tests/fixtures/store/v2-small.subject.key "
             "%s/subject.key && chmod 600 %s/data.mdb %s/subject.key",
             SOFFA_SOURCE_DIR, dir, SOFFA_SOURCE_DIR, dir, dir, dir);
    cr_assert_eq(system(cmd), 0);
    return dir;
}

Test(store, a_version_2_store_is_refused_until_upgraded_through_3_to_4_and_then_reads_the_same)
{
    char *dir = v2_copy();
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = dir, .master = tk_master()};
    cr_assert_eq(soffa_store_open(&st, &o), SOFFA_ERR_VERSION);
    soffa_store_opts_t ro = {.path = dir, .read_only = true};
    cr_assert_eq(soffa_store_open(&st, &ro), SOFFA_ERR_VERSION);
    char from[8];
    cr_assert_eq(soffa_store_upgrade(dir, 0, NULL, NULL, NULL, from), SOFFA_ERR_MASTER_KEY, "no master key, no upgrade");
    cr_assert_eq(soffa_store_upgrade(dir, 0, tk_master(), NULL, NULL, from), SOFFA_OK);
    cr_assert_str_eq(from, "2");
    st = open_store(dir, 0);
    uint64_t head;
    soffa_store_head(st, &head, NULL, NULL);
    cr_assert_eq(head, 5);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    cr_assert_eq(rep.checkpoints, 1);
    uint64_t n;
    cr_assert_eq(soffa_store_mailbox_rank(st, "kaa/1419", 5, &n), SOFFA_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(soffa_store_mailbox_rank(st, "kaa/1419", 1, &n), SOFFA_OK);
    cr_assert_eq(n, 1);
    /* The pupil's history is still found through the subject index. */
    collect_t c = {.n = 0};
    cr_assert_eq(soffa_store_scan_subject(st, "200803041037", 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 3, "found %zu of the pupil's 3 records", c.n);
    soffa_store_close(&st);
    /* Upgrading again does nothing. */
    cr_assert_eq(soffa_store_upgrade(dir, 0, tk_master(), NULL, NULL, from), SOFFA_OK);
    cr_assert_str_eq(from, "4");
    tk_rmrf(dir);
    free(dir);
}

/* Counts this process's descriptors open on files under dir, and how many of
 * those would survive an exec (no close-on-exec in /proc/self/fdinfo). */
static void
fds_under(const char *dir, int *open_n, int *inheritable)
{
    *open_n = *inheritable = 0;
    for (int fd = 0; fd < 1024; fd++) {
        char link[64], target[1024];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strncmp(target, dir, strlen(dir)) != 0)
            continue;
        (*open_n)++;
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
            (*inheritable)++;
    }
}

/* Issue 11, item 14: a program the broker or an agent starts inherits no
 * descriptor of its store (LMDB leaves its data file's inheritable). */
Test(store, issue_11_14_store_and_box_descriptors_are_close_on_exec)
{
    char *dir = tk_tmpdir("cloexec");
    soffa_store_t *st = open_store(dir, 0);
    int n, inh;
    fds_under(dir, &n, &inh);
    cr_assert_geq(n, 2, "the store's data and lock files are open (%d)", n);
    cr_assert_eq(inh, 0, "%d of the store's %d descriptors would be inherited by a program it starts", inh, n);
    soffa_store_close(&st);

    char box_dir[512];
    snprintf(box_dir, sizeof box_dir, "%s/box", dir);
    soffa_box_t *box = NULL;
    cr_assert_eq(soffa_box_open(&box, box_dir, 1 << 20, tk_master(), NULL, 0), SOFFA_OK);
    fds_under(box_dir, &n, &inh);
    cr_assert_geq(n, 2, "the box's data and lock files are open (%d)", n);
    cr_assert_eq(inh, 0, "%d of the box's %d descriptors would be inherited by a hook", inh, n);
    soffa_box_close(&box);
    tk_rmrf(dir);
    free(dir);
}

/* ---- Format 4: encryption at rest (issue 17) ---- */

#define MARKER "Markörfras-17 hemligt om barnet"

/* A record whose free text (a concern report's description) is text. */
static void
rec_make_text(rec_t *r, const char *pnr, const char *text)
{
    rec_make(r, SOFFA_MT_CONCERN_REPORT_FILED, pnr, "social/1419", "school-1415");
    free(r->body);
    char *js = tk_msg_json(SOFFA_MT_CONCERN_REPORT_FILED, pnr, "1419");
    json_t *j = json_loads(js, 0, NULL);
    free(js);
    cr_assert_not_null(j);
    json_object_set_new(json_object_get(j, "concern_report_filed"), "description", json_string(text));
    char *out = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t len;
    r->body = tk_encode_json(out, &len);
    free(out);
    soffa_msg_t *m = NULL;
    cr_assert_eq(soffa_msg_decode(r->body, len, &m), SOFFA_OK);
    soffa_msg_view_t v;
    soffa_msg_view(m, &v);
    memcpy(r->env.message_id, v.message_id, 16);
    soffa_msg_destroy(&m);
    r->env.body = r->body;
    r->env.body_len = len;
}

/* True if needle occurs in the file at path. */
static bool
file_has(const char *path, const void *needle, size_t nlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t) n + 1);
    size_t got = fread(buf, 1, (size_t) n, f);
    fclose(f);
    bool has = memmem(buf, got, needle, nlen) != NULL;
    free(buf);
    return has;
}

/* True if needle occurs in any key or value of any table of the LMDB
 * environment in dir (read as LMDB reads it, not as bytes on disk). */
static bool
lmdb_has(const char *dir, const void *needle, size_t nlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi main_db;
    MDB_cursor *cur, *c2;
    MDB_val k, v, k2, v2;
    bool has = false;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 32);
    cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &main_db), 0);
    cr_assert_eq(mdb_cursor_open(txn, main_db, &cur), 0);
    size_t tables = 0;
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int) k.mv_size, (const char *) k.mv_data);
        MDB_dbi dbi;
        if (mdb_dbi_open(txn, name, 0, &dbi) != 0)
            continue;
        tables++;
        cr_assert_eq(mdb_cursor_open(txn, dbi, &c2), 0);
        while (mdb_cursor_get(c2, &k2, &v2, MDB_NEXT) == 0)
            has |= memmem(k2.mv_data, k2.mv_size, needle, nlen) || memmem(v2.mv_data, v2.mv_size, needle, nlen);
        mdb_cursor_close(c2);
    }
    cr_assert_gt(tables, 5, "the store's tables were read");
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return has;
}

/* Nothing of pnr (10- or 12-digit form) or text in the data directory: not
 * in any file, not in any LMDB key or value. */
static void
assert_nothing_in_clear(const char *dir, const char *pnr, const char *text)
{
    char path[600];
    const char *needles[] = {pnr + 2, text};   /* the 10 digits are in the 12 */
    const char *files[] = {"data.mdb", "keys", "lock.mdb", "subject.key"};
    for (size_t n = 0; n < 2; n++) {
        for (size_t f = 0; f < 4; f++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[f]);
            cr_assert(!file_has(path, needles[n], strlen(needles[n])), "'%s' is in %s", needles[n], path);
        }
        cr_assert(!lmdb_has(dir, needles[n], strlen(needles[n])), "'%s' is in an LMDB value of %s", needles[n], dir);
    }
}

typedef struct {
    uint64_t want;
    char text[256];
    char subject[16];
    bool keyless;
} open_t;

static int
open_one(void *ctx, const soffa_store_rec_t *rec)
{
    open_t *o = ctx;
    if (rec->seq != o->want)
        return 0;
    soffa_envelope_t e;
    soffa_err_t rc = soffa_envelope_open(rec->env, rec->len, rec->has_key ? rec->key : NULL, &e);
    o->keyless = rc == SOFFA_ERR_DISPOSED;
    if (rc == SOFFA_OK && e.kind == SOFFA_RK_MESSAGE) {
        soffa_msg_t *m = NULL;
        cr_assert_eq(soffa_msg_decode(e.body, e.body_len, &m), SOFFA_OK);
        soffa_msg_view_t v;
        soffa_msg_view(m, &v);
        snprintf(o->subject, sizeof o->subject, "%s", v.subject_id);
        const char *t = soffa_msg_free_text(m, NULL);
        snprintf(o->text, sizeof o->text, "%s", t ? t : "");
        soffa_msg_destroy(&m);
    }
    soffa_envelope_fini(&e);
    return 1;
}

/* The record kinds are wire and disk format: each one's number is the
 * proto's, a restore record is 4 and the kinds of gallring come after it;
 * only messages and access records are sealed. */
Test(store, record_kinds_are_the_proto_s_and_only_personal_data_is_sealed)
{
    cr_assert_eq(SOFFA_RK_RESTORE, SOFFA__RECORD_KIND__RK_RESTORE);
    cr_assert_eq(SOFFA_RK_RESTORE, 4);
    cr_assert_eq(SOFFA_RK_DISPOSAL, SOFFA__RECORD_KIND__RK_DISPOSAL);
    cr_assert_eq(SOFFA_RK_DISPOSAL, 5);
    cr_assert_eq(SOFFA_RK_AGGREGATE, SOFFA__RECORD_KIND__RK_AGGREGATE);
    cr_assert_eq(SOFFA_RK_AGGREGATE, 6);
    cr_assert(soffa_envelope_kind_sealed(SOFFA_RK_MESSAGE) && soffa_envelope_kind_sealed(SOFFA_RK_ACCESS));
    cr_assert(!soffa_envelope_kind_sealed(SOFFA_RK_CHECKPOINT) && !soffa_envelope_kind_sealed(SOFFA_RK_RESTORE)
              && !soffa_envelope_kind_sealed(SOFFA_RK_DISPOSAL) && !soffa_envelope_kind_sealed(SOFFA_RK_AGGREGATE));
}

/* The early warning (issue 19) is kept as the school's signals are, not as
 * long as a KAA journal; a restore record is kept for good. */
Test(store, issue_17_the_early_warning_is_kept_as_a_school_signal)
{
    const soffa_msg_type_t ew[] = {SOFFA_MT_YEAR9_HANDOVER, SOFFA_MT_ADMISSION_NOT_STARTED,
                                   SOFFA_MT_EARLY_WARNING_ANSWERED};
    for (size_t i = 0; i < sizeof ew / sizeof *ew; i++) {
        cr_assert_eq(soffa_retention_class_of(SOFFA_RK_MESSAGE, ew[i], SOFFA_ROLE_SCHOOL), SOFFA_RC_SCHOOL_SIGNALS,
                     "type %d", (int) ew[i]);
        cr_assert_eq(soffa_retention_class_of(SOFFA_RK_MESSAGE, ew[i], SOFFA_ROLE_KAA), SOFFA_RC_SCHOOL_SIGNALS,
                     "type %d", (int) ew[i]);
    }
    cr_assert_eq(soffa_retention_class_of(SOFFA_RK_RESTORE, 0, SOFFA_ROLE_BROKER), SOFFA_RC_NONE);
}

Test(store, issue_17_personal_data_is_sealed_at_rest_and_opens_with_the_master_key)
{
    char *dir = tk_tmpdir("store");
    char child[13];
    tk_pnr(2011, 5, 2, 384, 0, child);
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[3];
    rec_make_text(&r[0], child, MARKER);
    rec_make(&r[1], SOFFA_MT_ABSENCE_REPORTED, child, "kaa/1419", "school-1415");
    rec_make(&r[2], SOFFA_MT_ABSENCE_REPORTED, OTHER, "kaa/1419", "school-1415");
    soffa_store_item_t it[3];
    cr_assert_eq(append(st, r, 3, it), SOFFA_OK);
    /* Through the store, with the master key: all there. */
    open_t o = {.want = 1};
    cr_assert_eq(soffa_store_get(st, 1, open_one, &o), SOFFA_OK);
    cr_assert_str_eq(o.text, MARKER);
    cr_assert_str_eq(o.subject, child);
    collect_t c = {.n = 0};
    cr_assert_eq(soffa_store_scan_subject(st, child, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 2);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    soffa_store_close(&st);
    /* In the directory: nothing. */
    assert_nothing_in_clear(dir, child, MARKER);
    /* The check itself finds a number when there is one: the message id,
     * which is in clear, is found as bytes. */
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    cr_assert(file_has(path, r[0].env.message_id, 16) && lmdb_has(dir, r[0].env.message_id, 16));
    /* Without the master key: the envelopes and the chain, never the content. */
    soffa_store_opts_t ro = {.path = dir, .read_only = true};
    cr_assert_eq(soffa_store_open(&st, &ro), SOFFA_OK);
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    cr_assert_eq(rep.records, 3);
    o = (open_t) {.want = 1};
    cr_assert_eq(soffa_store_get(st, 1, open_one, &o), SOFFA_OK);
    cr_assert(o.keyless && !o.text[0], "read without the master key");
    cr_assert_eq(soffa_store_scan_subject(st, child, 0, collect, &c), SOFFA_ERR_NOT_FOUND);
    soffa_store_close(&st);
    rec_free(r, 3);
    tk_rmrf(dir);
    free(dir);
}

/* The bytes of a file, malloc'd. */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t) n + 1);
    *len = fread(buf, 1, (size_t) n, f);
    fclose(f);
    return buf;
}

Test(store, issue_17_a_wrong_or_missing_master_key_is_refused_and_nothing_is_written)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[1];
    rec_make(&r[0], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
    soffa_store_item_t it[1];
    cr_assert_eq(append(st, r, 1, it), SOFFA_OK);
    soffa_store_close(&st);
    char data[600], keys[600];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    snprintf(keys, sizeof keys, "%s/keys", dir);
    size_t dl, kl;
    char *d0 = slurp(data, &dl), *k0 = slurp(keys, &kl);

    /* Another master key. */
    char *kd = tk_tmpdir("other-key");
    char kp[600], why[600] = "";
    snprintf(kp, sizeof kp, "%s/other.key", kd);
    cr_assert_eq(soffa_seal_master_new(kp), SOFFA_OK);
    soffa_seal_master_t other;
    cr_assert_eq(soffa_seal_master_load(kp, NULL, NULL, &other, why, sizeof why), SOFFA_OK);
    soffa_store_opts_t o = {.path = dir, .master = &other, .why = why, .whylen = sizeof why};
    cr_assert_eq(soffa_store_open(&st, &o), SOFFA_ERR_MASTER_KEY);
    cr_assert_null(st);
    char mine[17], theirs[17];
    soffa_seal_master_id_hex(tk_master(), mine);
    soffa_seal_master_id_hex(&other, theirs);
    cr_assert(strstr(why, mine) && strstr(why, theirs), "the refusal names both keys: %s", why);
    /* No master key at all, for writing. */
    soffa_store_opts_t none = {.path = dir, .why = why, .whylen = sizeof why};
    cr_assert_eq(soffa_store_open(&st, &none), SOFFA_ERR_MASTER_KEY);
    /* A damaged keys file. */
    size_t l2;
    char *cut = slurp(keys, &l2);
    FILE *f = fopen(keys, "wb");
    fwrite(cut, 1, l2 - 1, f);
    fclose(f);
    cr_assert_eq(soffa_store_open(&st, &(soffa_store_opts_t) {.path = dir, .master = tk_master()}),
                 SOFFA_ERR_STORE_CORRUPT);
    /* Neither file changed by any of it. */
    f = fopen(keys, "wb");
    fwrite(cut, 1, l2, f);
    fclose(f);
    free(cut);
    size_t dl2, kl2;
    char *d1 = slurp(data, &dl2), *k1 = slurp(keys, &kl2);
    cr_assert(dl == dl2 && memcmp(d0, d1, dl) == 0, "data.mdb was written");
    cr_assert(kl == kl2 && memcmp(k0, k1, kl) == 0, "keys was written");
    /* And the right key still opens it. */
    st = open_store(dir, 0);
    soffa_store_close(&st);
    /* A key file others can read, or one inside the data directory. */
    chmod(kp, 0644);
    cr_assert_eq(soffa_seal_master_load(kp, NULL, NULL, &other, why, sizeof why), SOFFA_ERR_PERMISSION);
    chmod(kp, 0600);
    char inside[700];
    snprintf(inside, sizeof inside, "%s/master.key", dir);
    tk_master_file(inside);
    cr_assert_eq(soffa_seal_master_load(inside, NULL, dir, &other, why, sizeof why), SOFFA_ERR_CONFIG);
    cr_assert(strstr(why, "inside the data directory"), "%s", why);
    f = fopen(kp, "w");
    fputs("not a key\n", f);
    fclose(f);
    cr_assert_eq(soffa_seal_master_load(kp, NULL, NULL, &other, why, sizeof why), SOFFA_ERR_MASTER_KEY);
    free(d0);
    free(d1);
    free(k0);
    free(k1);
    rec_free(r, 1);
    tk_rmrf(kd);
    free(kd);
    tk_rmrf(dir);
    free(dir);
}

/* Copies the version-3 fixture into a fresh directory: seq 1 an absence
 * report about 080304-1037, seq 2 a concern report about 110502-3848 with
 * the description "Markörfras-V3 hemligt om barnet", seq 3 an
 * acknowledgement, 4 and 5 the access records of a replay, 6 a checkpoint. */
static char *
v3_copy(void)
{
    char *dir = tk_tmpdir("store-v3");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cp %s/tests/fixtures/store/v3-small.mdb %s/data.mdb && cp %s/tests/fixtures/store/v3-small.subject.key "
             "%s/subject.key && chmod 600 %s/data.mdb %s/subject.key",
             SOFFA_SOURCE_DIR, dir, SOFFA_SOURCE_DIR, dir, dir, dir);
    cr_assert_eq(system(cmd), 0);
    return dir;
}

typedef struct {
    uint8_t bytes[6][4096];
    size_t len[6];
    uint8_t hash[6][32];
} raw_t;

static int
raw_one(void *ctx, const soffa_store_rec_t *rec)
{
    raw_t *r = ctx;
    if (rec->seq >= 1 && rec->seq <= 6 && rec->len <= 4096) {
        memcpy(r->bytes[rec->seq - 1], rec->env, rec->len);
        r->len[rec->seq - 1] = rec->len;
        memcpy(r->hash[rec->seq - 1], rec->hash, 32);
    }
    return 0;
}

Test(store, issue_17_a_version_3_store_is_sealed_by_the_upgrade_and_its_chain_and_checkpoints_stay)
{
    char *dir = v3_copy();
    const char *pupil = "200803041037", *child = "201105023848", *marker = "Markörfras-V3";
    char data[600];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    cr_assert(file_has(data, child, 12) && file_has(data, marker, strlen(marker)), "the fixture holds them in clear");
    /* What the chain was before. */
    raw_t before;
    memset(&before, 0, sizeof before);
    soffa_store_t *st = NULL;
    cr_assert_eq(soffa_store_open(&st, &(soffa_store_opts_t) {.path = dir, .read_only = true}), SOFFA_ERR_VERSION);
    {
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi log;
        MDB_cursor *cur;
        MDB_val k, v;
        cr_assert_eq(mdb_env_create(&env), 0);
        mdb_env_set_maxdbs(env, 16);
        cr_assert_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
        cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
        cr_assert_eq(mdb_dbi_open(txn, "log", 0, &log), 0);
        cr_assert_eq(mdb_cursor_open(txn, log, &cur), 0);
        int i = 0;
        while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0 && i < 6) {
            memcpy(before.hash[i], v.mv_data, 32);
            before.len[i] = v.mv_size - 33;
            memcpy(before.bytes[i], (uint8_t *) v.mv_data + 33, before.len[i]);
            i++;
        }
        cr_assert_eq(i, 6);
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        mdb_env_close(env);
    }
    char from[8];
    cr_assert_eq(soffa_store_upgrade(dir, 0, tk_master(), NULL, NULL, from), SOFFA_OK);
    cr_assert_str_eq(from, "3");
    char sk[600];
    snprintf(sk, sizeof sk, "%s/subject.key", dir);
    cr_assert_neq(access(sk, F_OK), 0, "the subject-index secret no longer lies in the directory in clear");
    /* Nothing personal in the converted store: not in the file (the
     * conversion wrote a new one), not in any LMDB value; nor in a backup. */
    assert_nothing_in_clear(dir, child, marker);
    assert_nothing_in_clear(dir, pupil, marker);
    char *cp = tk_tmpdir("store-v3-copy");
    soffa_store_t *live = open_store(dir, 0);
    soffa_store_backup_t brep;
    char dest[700];
    snprintf(dest, sizeof dest, "%s/b", cp);
    cr_assert_eq(soffa_store_backup(live, dest, NULL, &brep), SOFFA_OK, "%s", brep.verify.reason);
    assert_nothing_in_clear(dest, child, marker);
    assert_nothing_in_clear(dest, pupil, marker);
    /* With the master key every record opens, as it was. */
    open_t o = {.want = 2};
    cr_assert_eq(soffa_store_get(live, 2, open_one, &o), SOFFA_OK);
    cr_assert(strstr(o.text, marker), "%s", o.text);
    cr_assert_str_eq(o.subject, child);
    collect_t c = {.n = 0};
    cr_assert_eq(soffa_store_scan_subject(live, pupil, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 2, "the absence report and its acknowledgement; found %zu", c.n);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(live, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    cr_assert_eq(rep.records, 6);
    cr_assert_eq(rep.unhashed, 0, "with the master key every legacy record is hashed");
    /* The chain's hashes are the same, and the checkpoint is byte for byte
     * what it was (what auditors' agents hold still matches). */
    raw_t after;
    memset(&after, 0, sizeof after);
    cr_assert_eq(soffa_store_scan(live, 1, raw_one, &after), SOFFA_OK);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(memcmp(before.hash[i], after.hash[i], 32), 0, "record %d kept its hash", i + 1);
    cr_assert(after.len[5] == before.len[5] && memcmp(after.bytes[5], before.bytes[5], before.len[5]) == 0,
              "the checkpoint is unchanged");
    cr_assert_neq(memcmp(after.bytes[1], before.bytes[1], before.len[1] < after.len[1] ? before.len[1] : after.len[1]), 0);
    soffa_store_close(&live);
    /* Without the key: links and checkpoints only, and it says so. */
    cr_assert_eq(soffa_store_open(&st, &(soffa_store_opts_t) {.path = dest, .read_only = true}), SOFFA_OK);
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "%s", rep.reason);
    cr_assert_eq(rep.unhashed, 5);
    soffa_store_close(&st);
    tk_rmrf(cp);
    free(cp);
    tk_rmrf(dir);
    free(dir);
}

/* Legacy record 2 with another record's sealed content in its place: the
 * links hold, so only the master key can tell. */
static void
swap_legacy_body(MDB_txn *txn, MDB_dbi log, MDB_dbi meta)
{
    (void) meta;
    uint8_t k1[8], k3[8];
    MDB_val a = key_of(2, k1), b = key_of(1, k3), va, vb;
    cr_assert_eq(mdb_get(txn, log, &a, &va), 0);
    cr_assert_eq(mdb_get(txn, log, &b, &vb), 0);
    /* Record 1's clear envelope fields and sealed body, under 2's hash and seq. */
    soffa_envelope_t e1, e2;
    cr_assert_eq(soffa_envelope_decode((uint8_t *) vb.mv_data + 33, vb.mv_size - 33, &e1), SOFFA_OK);
    cr_assert_eq(soffa_envelope_decode((uint8_t *) va.mv_data + 33, va.mv_size - 33, &e2), SOFFA_OK);
    e2.body = e1.body;
    e2.body_len = e1.body_len;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(soffa_envelope_encode(&e2, &buf, &len), SOFFA_OK);
    uint8_t *val = malloc(33 + len);
    memcpy(val, va.mv_data, 33);
    memcpy(val + 33, buf, len);
    soffa_envelope_fini(&e1);
    soffa_envelope_fini(&e2);
    MDB_val nv = {33 + len, val};
    cr_assert_eq(mdb_put(txn, log, &a, &nv, 0), 0);
    free(buf);
    free(val);
}

Test(store, issue_17_an_altered_legacy_record_is_found_with_the_master_key)
{
    char *dir = v3_copy();
    char from[8];
    cr_assert_eq(soffa_store_upgrade(dir, 0, tk_master(), NULL, NULL, from), SOFFA_OK);
    tamper(dir, swap_legacy_body);
    soffa_store_t *st = NULL;
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_open(&st, &(soffa_store_opts_t) {.path = dir, .read_only = true}), SOFFA_OK);
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_OK, "without the key the links are all it has");
    soffa_store_close(&st);
    cr_assert_eq(soffa_store_open(&st, &(soffa_store_opts_t) {.path = dir, .read_only = true, .master = tk_master()}),
                 SOFFA_OK);
    cr_assert_eq(soffa_store_verify(st, NULL, &rep), SOFFA_ERR_CHAIN_BROKEN);
    cr_assert_eq(rep.bad_seq, 2, "%s", rep.reason);
    soffa_store_close(&st);
    tk_rmrf(dir);
    free(dir);
}

/* ---- Gallring and erasure (issue 17) ---- */

static int
keyed(void *ctx, const soffa_store_rec_t *rec)
{
    *(int *) ctx = rec->has_key;
    return 1;
}

static bool
has_key(soffa_store_t *st, uint64_t seq)
{
    int k = -1;
    cr_assert_eq(soffa_store_get(st, seq, keyed, &k), SOFFA_OK);
    return k == 1;
}

typedef struct {
    uint64_t seqs[64];
    size_t n;
} seqs_t;

static int
seq_collect(void *ctx, uint64_t seq)
{
    seqs_t *s = ctx;
    if (s->n < 64)
        s->seqs[s->n++] = seq;
    return 0;
}

typedef struct {
    int notices;
    uint64_t records;
    bool erasure, tombstone;
    uint64_t named[64];
    size_t n_named;
} notices_t;

static int
notice_one(void *ctx, const soffa_store_rec_t *rec)
{
    notices_t *n = ctx;
    soffa_envelope_t e;
    cr_assert_eq(soffa_envelope_decode(rec->env, rec->len, &e), SOFFA_OK);
    if (e.kind == SOFFA_RK_DISPOSAL) {
        cr_assert(!e.sealed, "a disposal record is in clear");
        soffa_disposal_t d;
        cr_assert_eq(soffa_disposal_decode(e.body, e.body_len, &d), SOFFA_OK);
        n->notices++;
        n->records += d.count;
        n->erasure |= d.rule == SOFFA_DR_ERASURE;
        n->tombstone |= d.has_tombstone;
        for (size_t i = 0; i < d.count && n->n_named < 64; i++)
            n->named[n->n_named++] = d.seqs[i];
        soffa_disposal_fini(&d);
    }
    soffa_envelope_fini(&e);
    return 0;
}

/* The current epoch key of the store in dir, read as an attacker with the
 * data directory and the master key would. */
static void
epoch_key_of(const char *dir, uint8_t key[32], uint64_t *epoch_out)
{
    soffa_seal_keys_t k;
    cr_assert_eq(soffa_seal_keys_read(dir, &k), SOFFA_OK);
    char why[300];
    uint64_t ep = k.epoch[0] ? k.epoch[0] : k.epoch[1];
    cr_assert(k.epoch[0] == 0 || k.epoch[1] == 0, "only one epoch key is left in the keys file");
    cr_assert_eq(soffa_seal_keys_get(&k, ep, tk_master(), key, why, sizeof why), SOFFA_OK, "%s", why);
    if (epoch_out)
        *epoch_out = ep;
}

/* How many windows of the files in dir open with kek under ad: whoever holds
 * the data directory and the master key tries every offset. */
static int
windows_opening(const char *dir, const uint8_t kek[32], const void *ad, size_t adlen)
{
    int hits = 0;
    const char *files[] = {"data.mdb", "keys"};
    for (int f = 0; f < 2; f++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        size_t len;
        char *buf = slurp(path, &len);
        for (size_t off = 0; off + SOFFA_SEAL_WRAPPED <= len; off++) {
            uint8_t out[32];
            if (soffa_seal_unwrap(kek, (uint8_t *) buf + off, ad, adlen, out) == SOFFA_OK)
                hits++;
        }
        free(buf);
    }
    return hits;
}

static void
owner_ad(soffa_store_t *st, const char *pnr, uint8_t ad[18])
{
    ad[0] = 'O';
    ad[1] = 'S';
    soffa_store_subject_key(st, pnr, ad + 2);
}

/* The totals kept with every commit agree with the index: kaa/1419 holds 3
 * records, social/1419 2. */
static int
totals_check(void *ctx, const char *mailbox, uint64_t count, uint64_t last)
{
    (void) ctx;
    if (!strcmp(mailbox, "kaa/1419"))
        cr_assert(count == 3 && last == 4, "kaa/1419: %llu, last %llu", (unsigned long long) count, (unsigned long long) last);
    else if (!strcmp(mailbox, "social/1419"))
        cr_assert(count == 2 && last == 5, "social/1419: %llu, last %llu", (unsigned long long) count, (unsigned long long) last);
    else
        cr_assert_fail("a mailbox no record went to: %s", mailbox);
    return 0;
}

Test(store, issue_17_records_run_out_on_schedule_and_are_gone_even_with_the_master_key)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    char a[13], b[13];
    tk_pnr(2009, 3, 14, 271, 0, a);
    tk_pnr(2011, 5, 2, 384, 0, b);
    rec_t r[3];
    rec_make(&r[0], SOFFA_MT_ABSENCE_REPORTED, a, "kaa/1419", "school-1415");
    rec_make(&r[1], SOFFA_MT_ABSENCE_REPORTED, a, "kaa/1419", "school-1415");
    rec_make_text(&r[2], b, MARKER);
    soffa_store_item_t it[3];
    for (int i = 0; i < 3; i++)
        it[i] = (soffa_store_item_t) {.env = &r[i].env, .subject_id = r[i].subject};
    int64_t now = soffa_now_us();
    it[0].sched = (soffa_store_sched_t) {.retention_class = 1, .due_us = now - 1000};
    it[1].sched = (soffa_store_sched_t) {.retention_class = 1, .due_us = now + 3600000000LL};
    it[2].sched = (soffa_store_sched_t) {.retention_class = 4, .due_us = now - 1000};
    cr_assert_eq(soffa_store_append(st, it, 3), SOFFA_OK);
    cr_assert(has_key(st, 1) && has_key(st, 2) && has_key(st, 3));
    cr_assert_eq(soffa_store_next_due(st), now - 1000);
    char keysf[600];
    snprintf(keysf, sizeof keysf, "%s/keys", dir);
    size_t klen;
    char *keys_before = slurp(keysf, &klen);
    uint8_t adb[18];
    owner_ad(st, b, adb);
    uint8_t ek0[32];
    epoch_key_of(dir, ek0, NULL);
    cr_assert_gt(windows_opening(dir, ek0, adb, sizeof adb), 0, "the scan finds B's owner key before the disposal");

    soffa_store_dispose_opts_t o = {.now_us = now, .rule_text = {NULL, "183d from message", NULL, NULL, "90d from message"},
                                    .sender = "soffa-broker"};
    soffa_store_dispose_report_t rep;
    cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_OK);
    cr_assert_eq(rep.records, 2);
    cr_assert_eq(rep.subjects, 1, "B has nothing left");
    cr_assert_eq(rep.notices, 2, "one record for kaa/1419's signals, one for social/1419's concern reports");
    cr_assert(!has_key(st, 1) && has_key(st, 2) && !has_key(st, 3));
    /* What is left reads; what went does not, through any index. */
    open_t op = {.want = 3};
    cr_assert_eq(soffa_store_get(st, 3, open_one, &op), SOFFA_OK);
    cr_assert(op.keyless && !op.text[0]);
    collect_t c = {.n = 0};
    cr_assert_eq(soffa_store_scan_subject(st, a, 0, collect, &c), SOFFA_OK);
    cr_assert(c.n == 1 && c.seqs[0] == 2, "A's index holds only what A has left (%zu)", c.n);
    c.n = 0;
    cr_assert_eq(soffa_store_scan_subject(st, b, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 0);
    /* The chain says what went: the disposal records, in clear. */
    notices_t nt = {0};
    cr_assert_eq(soffa_store_scan(st, 1, notice_one, &nt), SOFFA_OK);
    cr_assert(nt.notices == 2 && nt.records == 2 && !nt.erasure && !nt.tombstone);
    /* Each disposal record counts in its own mailbox's totals. */
    uint64_t n_kaa = 0, n_social = 0;
    cr_assert_eq(soffa_store_count_mailbox(st, "kaa/1419", 0, 0, &n_kaa), SOFFA_OK);
    cr_assert_eq(soffa_store_count_mailbox(st, "social/1419", 0, 0, &n_social), SOFFA_OK);
    cr_assert(n_kaa == 3 && n_social == 2, "kaa/1419 %llu, social/1419 %llu", (unsigned long long) n_kaa,
              (unsigned long long) n_social);
    cr_assert_eq(soffa_store_mailboxes(st, totals_check, NULL), SOFFA_OK);
    seqs_t ts = {.n = 0};
    cr_assert_eq(soffa_store_tomb_scan(st, b, seq_collect, &ts), SOFFA_OK);
    cr_assert_eq(ts.n, 1, "B's tombstone names the disposal record of its report");
    soffa_store_verify_t vr;
    cr_assert_eq(soffa_store_verify(st, NULL, &vr), SOFFA_OK, "%s", vr.reason);
    /* Nothing due now: a second run writes nothing. */
    uint64_t head;
    soffa_store_head(st, &head, NULL, NULL);
    cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_OK);
    cr_assert_eq(rep.records, 0);
    uint64_t head2;
    soffa_store_head(st, &head2, NULL, NULL);
    cr_assert_eq(head, head2);
    soffa_store_close(&st);

    /* Even with the master key: the old epoch key is gone from the keys
     * file, and no bytes of the data directory open as B's owner key or as
     * a disposed record's key under anything that key file still holds. */
    size_t klen2;
    char *keys_after = slurp(keysf, &klen2);
    cr_assert(!sodium_is_zero((uint8_t *) keys_before, SOFFA_SEAL_SLOT), "a new store's epoch is in the first slot");
    cr_assert(!memmem(keys_after, klen2, keys_before, SOFFA_SEAL_SLOT), "the old epoch's slot is erased");
    uint8_t ek[32];
    epoch_key_of(dir, ek, NULL);
    cr_assert_eq(windows_opening(dir, ek, adb, sizeof adb), 0, "B's owner key can be recovered");
    /* A's owner key is there (A has a record left): it opens nothing that went. */
    uint8_t ada[18];
    st = open_store(dir, 0);
    owner_ad(st, a, ada);
    soffa_store_close(&st);
    size_t dl;
    char *data = slurp(keysf, &dl);
    free(data);
    char dpath[600];
    snprintf(dpath, sizeof dpath, "%s/data.mdb", dir);
    data = slurp(dpath, &dl);
    int a_keys = 0;
    for (size_t off = 0; off + SOFFA_SEAL_WRAPPED <= dl; off++) {
        uint8_t ka[32];
        if (soffa_seal_unwrap(ek, (uint8_t *) data + off, ada, sizeof ada, ka) != SOFFA_OK)
            continue;
        a_keys++;
        uint8_t rad[9] = {'R'};
        soffa_bytes_put_u64(rad + 1, 1);   /* record 1 went */
        cr_assert_eq(windows_opening(dir, ka, rad, sizeof rad), 0, "a disposed record's key opens with A's key");
    }
    cr_assert_gt(a_keys, 0, "the scan finds A's current owner key");
    free(data);
    free(keys_before);
    free(keys_after);
    rec_free(r, 3);
    tk_rmrf(dir);
    free(dir);
}

Test(store, issue_17_a_case_closure_brings_the_journal_forward)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[3];
    for (int i = 0; i < 3; i++)
        rec_make(&r[i], i < 2 ? SOFFA_MT_CONTACT_ATTEMPTED : SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "kaa-journal/1419", "kaa-1419");
    soffa_store_item_t it[3];
    for (int i = 0; i < 3; i++)
        it[i] = (soffa_store_item_t) {.env = &r[i].env, .subject_id = r[i].subject};
    int64_t now = soffa_now_us(), far = now + 3600000000LL;
    for (int i = 0; i < 3; i++)
        it[i].sched = (soffa_store_sched_t) {.retention_class = 2, .due_us = far};
    cr_assert_eq(soffa_store_append(st, it, 2), SOFFA_OK);
    /* The closure: the journal goes a second after it. */
    it[2].sched.reschedule = true;
    it[2].sched.reschedule_due[2] = now - 1;
    cr_assert_eq(soffa_store_append(st, it + 2, 1), SOFFA_OK);
    soffa_store_dispose_opts_t o = {.now_us = now};
    soffa_store_dispose_report_t rep;
    cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_OK);
    cr_assert_eq(rep.records, 2, "the journal before the closure went");
    cr_assert(!has_key(st, 1) && !has_key(st, 2) && has_key(st, 3), "the closure itself keeps its own schedule");
    soffa_store_close(&st);
    rec_free(r, 3);
    tk_rmrf(dir);
    free(dir);
}

/* A case reopened after its closure (or anything new about the young
 * person) takes the closure's date back: the journal does not go at the
 * old closure's date; a later closure brings it forward again. */
Test(store, issue_17_a_reopened_case_pushes_the_closure_s_disposal_back)
{
    static const soffa_msg_type_t then[] = {SOFFA_MT_KAA_CASE_REOPENED, SOFFA_MT_ABSENCE_REPORTED};
    for (size_t variant = 0; variant < 2; variant++) {
        char *dir = tk_tmpdir("store");
        soffa_store_t *st = open_store(dir, 0);
        rec_t r[5];
        for (int i = 0; i < 2; i++)
            rec_make(&r[i], SOFFA_MT_CONTACT_ATTEMPTED, PUPIL, "kaa-journal/1419", "kaa-1419");
        rec_make(&r[2], SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "kaa-journal/1419", "kaa-1419");
        rec_make(&r[3], then[variant], PUPIL, variant ? "kaa/1419" : "kaa-journal/1419", variant ? "school-1415" : "kaa-1419");
        rec_make(&r[4], SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "kaa-journal/1419", "kaa-1419");
        soffa_store_item_t it[5];
        int64_t now = soffa_now_us(), far = now + 3600000000LL;
        soffa_retention_t rules;
        soffa_retention_defaults(&rules);
        for (int i = 0; i < 5; i++) {
            it[i] = (soffa_store_item_t) {.env = &r[i].env, .subject_id = r[i].subject};
            /* as the broker schedules it, with the dates moved to now */
            soffa_retention_sched(&rules, SOFFA_RK_MESSAGE, r[i].env.msg_type, i == 3 && variant ? SOFFA_ROLE_SCHOOL : SOFFA_ROLE_KAA,
                                  now, r[i].subject, &it[i].sched);
            it[i].sched.due_us = far;
        }
        cr_assert(it[2].sched.reschedule && !it[2].sched.reopen, "a closure brings forward");
        cr_assert(it[3].sched.reopen && !it[3].sched.reschedule, "variant %zu: what follows takes it back", variant);
        /* The closure: the journal goes a second before now. */
        it[2].sched.reschedule_due[2] = now - 1000000;
        cr_assert_eq(soffa_store_append(st, it, 3), SOFFA_OK);
        /* The case goes on before that date came. */
        cr_assert_eq(soffa_store_append(st, it + 3, 1), SOFFA_OK);
        soffa_store_dispose_opts_t o = {.now_us = now};
        soffa_store_dispose_report_t rep;
        cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_OK);
        cr_assert_eq(rep.records, 0, "variant %zu: %llu record(s) went at the date of a closure taken back", variant,
                     (unsigned long long) rep.records);
        cr_assert(has_key(st, 1) && has_key(st, 2) && has_key(st, 3) && has_key(st, 4));
        cr_assert_eq(soffa_store_next_due(st), far, "each runs out by its own date again");
        /* A later closure brings the journal forward again, the case's
         * records after the first closure with it. */
        it[4].sched.reschedule_due[2] = now - 1;
        cr_assert_eq(soffa_store_append(st, it + 4, 1), SOFFA_OK);
        cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_OK);
        cr_assert_eq(rep.records, variant ? 3 : 4, "variant %zu: %llu", variant, (unsigned long long) rep.records);
        cr_assert(!has_key(st, 1) && !has_key(st, 2) && !has_key(st, 3) && has_key(st, 5));
        cr_assert_eq(has_key(st, 4), variant == 1, "an absence report is not closure-anchored");
        soffa_store_verify_t vr;
        cr_assert_eq(soffa_store_verify(st, NULL, &vr), SOFFA_OK, "%s", vr.reason);
        soffa_store_close(&st);
        rec_free(r, 5);
        tk_rmrf(dir);
        free(dir);
    }
}

Test(store, issue_17_erasure_takes_every_record_of_one_young_person)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[4];
    rec_make(&r[0], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
    rec_make_text(&r[1], PUPIL, MARKER);
    rec_make(&r[2], SOFFA_MT_ABSENCE_REPORTED, OTHER, "kaa/1419", "school-1415");
    /* An access record of a read of the pupil's history, indexed under it. */
    soffa_access_t ac = {.state = SOFFA_ACCESS_OPENED};
    snprintf(ac.agent, sizeof ac.agent, "audit");
    uint8_t *abody;
    size_t alen;
    cr_assert_eq(soffa_access_encode(&ac, &abody, &alen), SOFFA_OK);
    memset(&r[3], 0, sizeof r[3]);
    r[3].body = abody;
    r[3].env = (soffa_envelope_t) {.kind = SOFFA_RK_ACCESS, .body = abody, .body_len = alen, .received_at_us = soffa_now_us()};
    soffa_uuid7(r[3].env.message_id);
    snprintf(r[3].env.sender_agent, sizeof r[3].env.sender_agent, "audit");
    snprintf(r[3].env.mailbox, sizeof r[3].env.mailbox, "audit/access");
    memcpy(r[3].subject, PUPIL, 13);
    soffa_store_item_t it[4];
    cr_assert_eq(append(st, r, 4, it), SOFFA_OK);
    collect_t c = {.n = 0};
    cr_assert_eq(soffa_store_scan_subject(st, PUPIL, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 3);

    soffa_store_dispose_opts_t o = {.now_us = soffa_now_us(), .erase_subject = PUPIL, .reason = 1, .sender = "b"};
    soffa_store_dispose_report_t rep;
    char nobody[13];
    tk_pnr(2010, 1, 1, 123, 0, nobody);
    o.erase_subject = nobody;
    cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_ERR_NOT_FOUND, "nobody by that number");
    o.erase_subject = PUPIL;
    cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_OK);
    cr_assert_eq(rep.records, 2);
    cr_assert_eq(rep.subjects, 1);
    cr_assert(!has_key(st, 1) && !has_key(st, 2) && has_key(st, 3) && has_key(st, 4),
              "the other pupil's record and the access record stay");
    c.n = 0;
    cr_assert_eq(soffa_store_scan_subject(st, PUPIL, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 0, "not even the access record is found under the erased pupil any more");
    notices_t nt = {0};
    cr_assert_eq(soffa_store_scan(st, 1, notice_one, &nt), SOFFA_OK);
    cr_assert(nt.erasure && nt.tombstone && nt.records == 2);
    seqs_t ts = {.n = 0};
    cr_assert_eq(soffa_store_tomb_scan(st, PUPIL, seq_collect, &ts), SOFFA_OK);
    cr_assert_eq(ts.n, 2, "kaa/1419's and social/1419's disposal records");
    /* Erasing again finds nothing: there is no undo, and nothing to redo. */
    cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_ERR_NOT_FOUND);
    soffa_store_verify_t vr;
    cr_assert_eq(soffa_store_verify(st, NULL, &vr), SOFFA_OK, "%s", vr.reason);
    soffa_store_close(&st);
    uint8_t ek[32], ad[18];
    epoch_key_of(dir, ek, NULL);
    st = open_store(dir, 0);
    owner_ad(st, PUPIL, ad);
    soffa_store_close(&st);
    cr_assert_eq(windows_opening(dir, ek, ad, sizeof ad), 0);
    rec_free(r, 4);
    tk_rmrf(dir);
    free(dir);
}

/* An identity change (issue 13, rule 10) links the old number's records
 * into the new number's index: verify with the keys accepts those entries
 * because the link is recorded, and erasing the old number takes them from
 * the new number's index too, with the case register and alias entries
 * keyed by the old number. */
Test(store, issue_17_a_replaced_number_s_records_go_from_the_new_number_s_index)
{
    char *dir = tk_tmpdir("store");
    soffa_store_t *st = open_store(dir, 0);
    rec_t r[2];
    rec_make(&r[0], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
    rec_make(&r[1], SOFFA_MT_ABSENCE_REPORTED, OTHER, "kaa/1419", "school-1415");
    soffa_store_item_t it[2];
    cr_assert_eq(append(st, r, 2, it), SOFFA_OK);
    cr_assert_eq(soffa_store_subject_link(st, PUPIL, OTHER), SOFFA_OK);
    collect_t c = {.n = 0};
    cr_assert_eq(soffa_store_scan_subject(st, OTHER, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 2, "the new number names the old number's record too");
    soffa_store_verify_t vr;
    cr_assert_eq(soffa_store_verify(st, NULL, &vr), SOFFA_OK, "%s", vr.reason);
    /* The broker's case register and alias map about the old number. */
    soffa_store_state_op_t ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].key[0] = 'a';
    soffa_store_subject_key(st, PUPIL, ops[0].key + 1);
    ops[0].klen = 1 + SOFFA_SUBJECT_KEY_LEN;
    soffa_store_subject_key(st, OTHER, ops[0].val);
    ops[0].vlen = SOFFA_SUBJECT_KEY_LEN;
    ops[1].key[0] = 'c';
    soffa_store_subject_key(st, PUPIL, ops[1].key + 1);
    memcpy(ops[1].key + 1 + SOFFA_SUBJECT_KEY_LEN, "1419", 4);
    ops[1].klen = 1 + SOFFA_SUBJECT_KEY_LEN + 4;
    memset(ops[1].val, 0x5a, 16);
    ops[1].vlen = 16;
    ops[2].key[0] = 'C';
    memset(ops[2].key + 1, 0x5a, 16);
    ops[2].klen = 17;
    soffa_store_subject_key(st, PUPIL, ops[2].val);
    ops[2].vlen = SOFFA_SUBJECT_KEY_LEN;
    /* ... and the case's team and contact person (issue 19, item 4). */
    ops[3].key[0] = 'T';
    memset(ops[3].key + 1, 0x5a, 16);
    ops[3].klen = 17;
    memcpy(ops[3].val, "norr", 4);
    memcpy(ops[3].val + 16, "handl-17", 8);
    ops[3].vlen = 48;
    cr_assert_eq(soffa_store_state_write(st, ops, 4), SOFFA_OK);

    soffa_store_dispose_opts_t o = {.now_us = soffa_now_us(), .erase_subject = PUPIL, .reason = 1, .sender = "b"};
    soffa_store_dispose_report_t rep;
    cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_OK);
    cr_assert_eq(rep.records, 1);
    c.n = 0;
    cr_assert_eq(soffa_store_scan_subject(st, OTHER, 0, collect, &c), SOFFA_OK);
    cr_assert_eq(c.n, 1, "the erased number's record is gone from the new number's index");
    cr_assert_eq(soffa_store_verify(st, NULL, &vr), SOFFA_OK, "%s", vr.reason);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(soffa_store_state_get(st, ops[i].key, ops[i].klen, NULL, 0, NULL), SOFFA_ERR_NOT_FOUND,
                     "state entry '%c' about the erased number is gone", ops[i].key[0]);
    soffa_store_close(&st);
    rec_free(r, 2);
    tk_rmrf(dir);
    free(dir);
}

/* ---- Restores (issue 16, item 8) ---- */

/* Appends a restore record naming from_seq, jumping to seq_from. */
static soffa_err_t
append_restore(soffa_store_t *st, uint64_t from_seq, uint64_t seq_from, soffa_record_kind_t kind)
{
    soffa_restore_t r = {.from_seq = from_seq, .backup_at_us = soffa_now_us() - 1000000, .restored_at_us = soffa_now_us()};
    uint8_t *body;
    size_t len;
    cr_assert_eq(soffa_restore_encode(&r, &body, &len), SOFFA_OK);
    soffa_envelope_t env = {.body = body, .body_len = len, .kind = kind, .sender_role = SOFFA_ROLE_BROKER,
                            .received_at_us = soffa_now_us()};
    soffa_uuid7(env.message_id);
    strcpy(env.sender_agent, "soffa-broker");
    strcpy(env.mailbox, "audit/restore");
    soffa_store_item_t it = {.env = &env, .seq_from = seq_from};
    soffa_err_t rc = soffa_store_append(st, &it, 1);
    free(body);
    return rc;
}

Test(store, issue_16_8_a_backup_is_marked_and_a_restore_record_jumps_the_numbering)
{
    uint8_t pk[32], sk[64];
    char *dir = signed_store(pk, sk);   /* 12 records, the last two unsigned */
    soffa_store_t *st = open_store(dir, 0);
    int64_t at;
    cr_assert_not(soffa_store_backup_mark(st, &at), "the live store carries a backup's mark");
    char dest[600];
    snprintf(dest, sizeof dest, "%s/../%s-copy", dir, strrchr(dir, '/') + 1);
    soffa_store_backup_t rep;
    int64_t before = soffa_now_us();
    cr_assert_eq(soffa_store_backup(st, dest, pk, &rep), SOFFA_OK, "%s", rep.verify.reason);
    cr_assert_not(soffa_store_backup_mark(st, &at), "the backup marked the live store");
    soffa_store_close(&st);

    /* The copy carries the mark, with when it was taken. */
    st = open_store(dest, 0);
    cr_assert(soffa_store_backup_mark(st, &at), "the copy has no mark");
    cr_assert(at >= before && at <= soffa_now_us());
    /* Only a restore record may jump, and only forwards. */
    rec_t r[3];
    for (int i = 0; i < 3; i++)
        rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, PUPIL, "kaa/1419", "school-1415");
    soffa_store_item_t it[3];
    it[0] = (soffa_store_item_t) {.env = &r[0].env, .subject_id = r[0].subject, .seq_from = 1000};
    cr_assert_eq(soffa_store_append(st, it, 1), SOFFA_ERR_INVALID_ARG, "a message jumped the numbering");
    uint64_t head;
    soffa_store_head(st, &head, NULL, NULL);
    cr_assert_eq(head, 12);
    uint64_t next = soffa_restore_next_seq(head, soffa_now_us());
    cr_assert_gt(next, (uint64_t) before);
    cr_assert_eq(append_restore(st, head, next, SOFFA_RK_RESTORE), SOFFA_OK);
    soffa_store_head(st, &head, NULL, NULL);
    cr_assert_eq(head, next, "the restore record is not at the jump");
    cr_assert_eq(append(st, r, 2, it), SOFFA_OK);
    cr_assert_eq(it[0].seq, next + 1);
    cr_assert_eq(it[1].seq, next + 2);
    append_checkpoint(st, sk);
    /* A time search across the gap finds the records after it. */
    uint64_t s;
    cr_assert_eq(soffa_store_seq_at_time(st, r[0].env.received_at_us, &s), SOFFA_OK);
    cr_assert(s > 12 && s <= next + 1, "seq_at_time across the gap: %llu", (unsigned long long) s);
    soffa_store_close(&st);

    /* The chain verifies with the gap explained. */
    soffa_store_verify_t v;
    cr_assert_eq(verify_dir(dest, pk, &v), SOFFA_OK, "%s", v.reason);
    cr_assert_eq(v.records, 16);
    cr_assert_eq(v.restores, 1);
    cr_assert_eq(v.gaps[0].from, 12);
    cr_assert_eq(v.gaps[0].to, next);
    cr_assert_eq(v.unsigned_tail, 0);
    cr_assert_eq(v.last_signed, next + 2);
    rec_free(r, 3);
    tk_rmrf(dest);
    tk_rmrf(dir);
    free(dir);
}

/* The child disposes of 3000 records that ran out; the parent kills it. */
static void
child_disposer(const char *dir)
{
    soffa_store_t *st = NULL;
    soffa_store_opts_t so = {.path = dir, .master = tk_master()};
    if (soffa_store_open(&st, &so) != SOFFA_OK)
        _exit(3);
    soffa_store_dispose_opts_t o = {.now_us = soffa_now_us(), .sender = "b"};
    soffa_store_dispose_report_t rep;
    if (soffa_store_dispose(st, &o, &rep) != SOFFA_OK)
        _exit(4);
    _exit(0);
}

Test(store, issue_17_a_disposal_killed_midway_leaves_the_state_before_or_after)
{
    tk_master();   /* one key for the child and the parent */
    int befores = 0, afters = 0;
    for (int round = 0; round < 6; round++) {
        char *dir = tk_tmpdir("store");
        soffa_store_t *st = open_store(dir, 0);
        enum { N = 3000 };
        rec_t r[50];
        for (int i = 0; i < 50; i++) {
            char p[13];
            tk_pnr(2008, 1 + i % 12, 1 + i % 28, 100 + i, 0, p);
            rec_make(&r[i], SOFFA_MT_ABSENCE_REPORTED, p, "kaa/1419", "school-1415");
        }
        int64_t now = soffa_now_us();
        for (int b = 0; b < N / 50; b++) {
            soffa_store_item_t it[50];
            for (int i = 0; i < 50; i++) {
                soffa_uuid7(r[i].env.message_id);
                it[i] = (soffa_store_item_t) {.env = &r[i].env, .subject_id = r[i].subject,
                                              .sched = {.retention_class = 1, .due_us = now - 1}};
                /* every third young person keeps a record for later */
                if (b == 0 && i % 3 == 0)
                    it[i].sched.due_us = now + 3600000000LL;
            }
            cr_assert_eq(soffa_store_append(st, it, 50), SOFFA_OK);
        }
        soffa_store_close(&st);
        pid_t pid = fork();
        if (pid == 0)
            child_disposer(dir);
        usleep((useconds_t) (round * 15000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        /* Whatever moment it died at: the chain and the key tables agree,
         * and it is all before or all after. */
        st = open_store(dir, 0);
        soffa_store_verify_t vr;
        cr_assert_eq(soffa_store_verify(st, NULL, &vr), SOFFA_OK, "round %d: %s", round, vr.reason);
        int kept = 0;
        for (uint64_t s = 1; s <= N; s++)
            kept += has_key(st, s);
        cr_assert(kept == N || kept == 17, "round %d: %d of %d records keep their key: a half disposal", round, kept, N);
        if (kept == N)
            befores++;
        else
            afters++;
        /* The next run finishes the job. */
        soffa_store_dispose_opts_t o = {.now_us = soffa_now_us(), .sender = "b"};
        soffa_store_dispose_report_t rep;
        cr_assert_eq(soffa_store_dispose(st, &o, &rep), SOFFA_OK);
        kept = 0;
        for (uint64_t s = 1; s <= N; s++)
            kept += has_key(st, s);
        cr_assert_eq(kept, 17, "round %d", round);
        cr_assert_eq(soffa_store_verify(st, NULL, &vr), SOFFA_OK, "round %d: %s", round, vr.reason);
        soffa_store_close(&st);
        /* The keys file holds one epoch key: the store's. */
        uint8_t ek[32];
        epoch_key_of(dir, ek, NULL);
        rec_free(r, 50);
        tk_rmrf(dir);
        free(dir);
    }
    cr_log_info("killed before the commit %d time(s), after it %d time(s)", befores, afters);
}

Test(store, issue_16_8_a_jump_without_its_restore_record_is_a_removal)
{
    uint8_t pk[32], sk[64];
    char *dir = signed_store(pk, sk);
    soffa_store_t *st = open_store(dir, 0);
    /* A restore record that names another record than the one before it:
     * what a forger would write to hide removed records. */
    cr_assert_eq(append_restore(st, 9, 500, SOFFA_RK_RESTORE), SOFFA_OK);
    soffa_store_close(&st);
    soffa_store_verify_t v;
    cr_assert_eq(verify_dir(dir, pk, &v), SOFFA_ERR_CHAIN_BROKEN, "a restore record naming seq 9 after 12 passed");
    cr_assert_eq(v.bad_seq, 13);
    cr_assert(strstr(v.reason, "record 13 is missing (the next record present is 500)"), "%s", v.reason);
    tk_rmrf(dir);
    free(dir);
}

/* ---- The current format on disk (issue 12, item 6) ---- */

typedef struct {
    int tags[8];
    size_t n;
    char subject[13];
    uint32_t first_type;
    char first_mailbox[SOFFA_NAME_MAX];
} v4_seen_t;

static int
v4_one(void *ctx, const soffa_store_rec_t *rec)
{
    v4_seen_t *s = ctx;
    if (s->n < 8)
        s->tags[s->n] = rec->tag;
    s->n++;
    if (rec->seq == 1) {
        soffa_envelope_t e;
        cr_assert(rec->has_key, "seq 1 is sealed and its key is in the store");
        cr_assert_eq(soffa_envelope_open(rec->env, rec->len, rec->key, &e), SOFFA_OK);
        s->first_type = e.msg_type;
        snprintf(s->first_mailbox, sizeof s->first_mailbox, "%s", e.mailbox);
        soffa_msg_t *m = NULL;
        cr_assert_eq(soffa_msg_decode(e.body, e.body_len, &m), SOFFA_OK);
        soffa_msg_view_t v;
        soffa_msg_view(m, &v);
        snprintf(s->subject, sizeof s->subject, "%s", v.subject_id);
        soffa_msg_destroy(&m);
        soffa_envelope_fini(&e);
    }
    return 0;
}

/* A store of the current format as a broker wrote it (tests/fixtures/store,
 * v4-small): seq 1 an absence report about the made-up pupil 080304-1037 to
 * kaa/1419, seq 2 the KAA's acknowledgement, seqs 3 and 4 a replay's access
 * records, seq 5 a signed checkpoint. A change to the format that would
 * leave such a store unreadable fails here, not at a municipality's. */
Test(store, issue_12_the_current_format_on_disk_opens_reads_and_verifies)
{
    char *dir = tk_tmpdir("store-v4"), *kdir = tk_tmpdir("store-v4-master");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "F=%s/tests/fixtures/store && cp $F/v4-small.mdb %s/data.mdb && cp $F/v4-small.keys %s/keys && "
             "cp $F/v4-small.master.key %s/master.key && chmod 600 %s/data.mdb %s/keys %s/master.key",
             SOFFA_SOURCE_DIR, dir, dir, kdir, dir, dir, kdir);
    cr_assert_eq(system(cmd), 0);
    char data[600], mpath[600];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    snprintf(mpath, sizeof mpath, "%s/master.key", kdir);
    cr_assert(!file_has(data, "200803041037", 12), "the identity number is not in the file in clear");
    soffa_seal_master_t m;
    char why[256] = "";
    cr_assert_eq(soffa_seal_master_load(mpath, NULL, dir, &m, why, sizeof why), SOFFA_OK, "%s", why);
    soffa_store_t *st = NULL;
    cr_assert_eq(soffa_store_open(&st, &(soffa_store_opts_t) {.path = dir, .master = &m, .read_only = true}), SOFFA_OK);
    v4_seen_t seen = {.n = 0};
    cr_assert_eq(soffa_store_scan(st, 1, v4_one, &seen), SOFFA_OK);
    cr_assert_eq(seen.n, 5, "%zu records", seen.n);
    cr_assert_eq(seen.tags[0], SOFFA_MT_ABSENCE_REPORTED);
    cr_assert_eq(seen.tags[1], SOFFA_MT_SIGNAL_ACKNOWLEDGED);
    cr_assert_eq(seen.tags[2], 0x80 | SOFFA_RK_ACCESS);
    cr_assert_eq(seen.tags[3], 0x80 | SOFFA_RK_ACCESS);
    cr_assert_eq(seen.tags[4], 0x80 | SOFFA_RK_CHECKPOINT);
    cr_assert_eq(seen.first_type, SOFFA_MT_ABSENCE_REPORTED);
    cr_assert_str_eq(seen.first_mailbox, "kaa/1419");
    cr_assert_str_eq(seen.subject, "200803041037");
    /* The chain and the signed checkpoint, with the broker's public key. */
    FILE *f = fopen(SOFFA_SOURCE_DIR "/tests/fixtures/store/v4-small.checkpoint.pub", "r");
    cr_assert_not_null(f);
    char hex[80] = "";
    cr_assert_not_null(fgets(hex, sizeof hex, f));
    fclose(f);
    uint8_t pk[32];
    size_t pklen = 0;
    cr_assert_eq(sodium_hex2bin(pk, sizeof pk, hex, strlen(hex), "\n", &pklen, NULL), 0);
    cr_assert_eq(pklen, 32);
    soffa_store_verify_t rep;
    cr_assert_eq(soffa_store_verify(st, pk, &rep), SOFFA_OK, "%s", rep.reason);
    soffa_store_close(&st);
    soffa_seal_master_wipe(&m);
    tk_rmrf(dir);
    tk_rmrf(kdir);
    free(dir);
    free(kdir);
}

/* A store a build without encryption wrote (-DSOFFA_BENCH_PLAINTEXT=ON, for
 * soffa-bench only; tests/fixtures/store/plain-small) is refused by this
 * build, with the reason, and nothing is written: its bytes are in clear
 * and must never be mistaken for a sealed store. */
Test(store, issue_17_a_store_of_the_build_without_encryption_is_refused)
{
    cr_assert(!soffa_seal_plaintext(), "the tests run on the build with encryption");
    char *dir = tk_tmpdir("store-plain"), *kdir = tk_tmpdir("store-plain-master");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "F=%s/tests/fixtures/store && cp $F/plain-small.mdb %s/data.mdb && cp $F/plain-small.keys %s/keys && "
             "cp $F/plain-small.master.key %s/master.key && chmod 600 %s/data.mdb %s/keys %s/master.key",
             SOFFA_SOURCE_DIR, dir, dir, kdir, dir, dir, kdir);
    cr_assert_eq(system(cmd), 0);
    char data[600], mpath[600];
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    snprintf(mpath, sizeof mpath, "%s/master.key", kdir);
    size_t len0;
    char *before = slurp(data, &len0);
    soffa_seal_master_t m;
    char why[512] = "";
    cr_assert_eq(soffa_seal_master_load(mpath, NULL, dir, &m, why, sizeof why), SOFFA_OK, "%s", why);
    for (int ro = 0; ro < 2; ro++) {
        soffa_store_t *st = NULL;
        why[0] = '\0';
        soffa_err_t rc = soffa_store_open(&st, &(soffa_store_opts_t) {.path = dir, .master = &m, .read_only = ro == 1,
                                                                      .why = why, .whylen = sizeof why});
        cr_assert_eq(rc, SOFFA_ERR_VERSION, "read_only %d: %s", ro, soffa_strerror(rc));
        cr_assert_null(st);
        cr_assert(strstr(why, "without encryption at rest") && strstr(why, "SOFFA_BENCH_PLAINTEXT"), "%s", why);
    }
    size_t len1;
    char *after = slurp(data, &len1);
    cr_assert(len0 == len1 && !memcmp(before, after, len0), "the refused store was written to");
    free(before);
    free(after);
    soffa_seal_master_wipe(&m);
    tk_rmrf(dir);
    tk_rmrf(kdir);
    free(dir);
    free(kdir);
}
