/*  soffa_cli_audit: replay, history, access log, statistics and offline
 *  verification for auditors (see soffa_cli_audit.h).
 */
#include "soffa_cli_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_box.h"
#include "soffa_cli_id.h"
#include "soffa_cli_keys.h"
#include "soffa_disposal.h"
#include "soffa_id.h"
#include "soffa_msg.h"
#include "soffa_stats.h"
#include "soffa_seal.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_wire.h"

/* ---- Replay, history, access log --------------------------------------------------------- */

/* Reads the options of replay, history and access-log into the filter fl
 * (and --as-of into *as_of). Returns 0, or the exit status with the
 * message printed. */
static int
s_replay_filter(const soffa_cli_t *c, const char *cmd, json_t *fl, const char **as_of)
{
    for (int i = 1; i < c->argc; i++) {
        const char *a = c->argv[i], *v = i + 1 < c->argc ? c->argv[i + 1] : NULL;
        soffa_date_t d;
        if (!v) {
            return soffa_cli_die(cmd, 2, "'%s' needs a value (see soffa %s --help)", a, cmd);
        }
        i++;
        if (!strcmp(a, "--mailbox")) {
            json_object_set_new(fl, "mailbox", json_string(v));
        } else if (!strcmp(a, "--pupil")) {
            char canon[13];
            soffa_err_t rc = soffa_id_parse_any(v, NULL, canon, NULL);
            if (rc != SOFFA_OK) {
                return soffa_cli_die(cmd, 1, "--pupil: %s", soffa_cli_id_problem(v, rc));
            }
            json_object_set_new(fl, "subject_id", json_string(canon));
        } else if (!strcmp(a, "--type")) {
            soffa_msg_type_t t = soffa_msg_type_from_name(v);
            if (t == SOFFA_MT_NONE) {
                return soffa_cli_die(cmd, 1, "--type: '%s' is not a message type (e.g. absence_reported)", v);
            }
            json_object_set_new(fl, "message_type", json_integer(t));
        } else if ((!strcmp(a, "--from") || !strcmp(a, "--to") || !strcmp(a, "--as-of")) && soffa_date_parse(v, &d)) {
            /* Dates are Swedish days: from 00:00 in Stockholm. */
            int64_t day = soffa_date_local_start_us(d);
            soffa_date_t next = soffa_date_local(day + 36 * 3600000000LL);
            if (!strcmp(a, "--from"))
                json_object_set_new(fl, "from_us", json_integer(day));
            else
                json_object_set_new(fl, "to_us", json_integer(soffa_date_local_start_us(next)));   /* the whole day */
            if (!strcmp(a, "--as-of"))
                *as_of = v;
        } else if (!strcmp(a, "--from-seq")) {
            json_object_set_new(fl, "from_seq", json_integer(atoll(v)));
        } else if (!strcmp(a, "--to-seq")) {
            json_object_set_new(fl, "to_seq", json_integer(atoll(v)));
        } else if (!strcmp(a, "--limit")) {
            json_object_set_new(fl, "limit", json_integer(atoll(v)));
        } else {
            return soffa_cli_die(cmd, 2, "unknown or malformed option '%s %s' (see soffa %s --help)", a, v, cmd);
        }
    }
    return 0;
}

/* Prints the records a replay returned: every one (replay), what happened
 * to the young person (history: messages only), or the reads (access-log:
 * one line per read). Returns how many were printed. */
static size_t
s_print_records(const soffa_cli_t *c, json_t *records, const char *request, bool access_only)
{
    size_t i, shown = 0;
    json_t *rec;
    /* A read is recorded when it opens and when it ends: the access log
     * shows one line per read (its end), and an opening with no end
     * (a read under way, or one that ended without a record). */
    json_t *ended = json_object();
    json_array_foreach(records, i, rec) {
        json_t *ac = json_object_get(rec, "access");
        const char *st = json_string_value(json_object_get(ac, "state"));
        if (st && strcmp(st, "opened") != 0) {
            char k[32];
            snprintf(k, sizeof k, "%lld", (long long) json_integer_value(json_object_get(ac, "opened_seq")));
            json_object_set_new(ended, k, json_true());
        }
    }
    json_array_foreach(records, i, rec) {
        const char *kind = json_string_value(json_object_get(rec, "kind"));
        /* The access log lists reads; a history lists what happened to the
         * young person; a replay lists every record. */
        if (access_only && (!kind || strcmp(kind, "access")))
            continue;
        json_t *ac = json_object_get(rec, "access");
        const char *st = json_string_value(json_object_get(ac, "state"));
        if (access_only && st && !strcmp(st, "opened")) {
            char k[32];
            snprintf(k, sizeof k, "%lld", (long long) json_integer_value(json_object_get(rec, "seq")));
            if (json_object_get(ended, k))
                continue;
        }
        /* A history shows what happened to the young person: their
         * messages, and the disposal records that took them. */
        if (!strcmp(request, "history") && (!kind || (strcmp(kind, "message") && strcmp(kind, "disposal"))))
            continue;
        soffa_cli_print_record(c, rec);
        shown++;
    }
    json_decref(ended);
    return shown;
}

static int
s_replay_common(soffa_cli_t *c, const char *cmd, const char *request, bool access_only)
{
    json_t *fl = json_object();
    const char *as_of = NULL;
    int status = s_replay_filter(c, cmd, fl, &as_of);
    if (status != 0) {
        json_decref(fl);
        return status;
    }
    if (!strcmp(request, "history") && !json_object_get(fl, "subject_id")) {
        json_decref(fl);
        return soffa_cli_die(cmd, 2, "history needs --pupil ID");
    }
    if (access_only && !json_object_get(fl, "subject_id"))
        json_object_set_new(fl, "mailbox", json_string("audit/access"));
    json_t *a = soffa_cli_call(c, cmd, json_pack("{s:s, s:s, s:o}", "cmd", "replay", "request", request, "filter", fl), 35000);
    if (!a)
        return 1;
    if (!json_is_true(json_object_get(a, "ok"))) {
        int rc = soffa_cli_refused(cmd, a);
        json_decref(a);
        return rc;
    }
    if (!c->json && as_of)
        printf("what soffa held about this pupil by the end of %s:\n", as_of);
    size_t shown = s_print_records(c, json_object_get(a, "records"), request, access_only);
    if (!c->json)
        printf("%zu record(s); this read is itself logged at seq %lld\n", shown,
               (long long) json_integer_value(json_object_get(a, "access_seq")));
    json_decref(a);
    return 0;
}

int
soffa_cli_audit_replay(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv)) {
        puts("usage: soffa replay [--mailbox M] [--pupil ID] [--type TYPE] [--from DATE] [--to DATE]\n"
             "                    [--from-seq N] [--to-seq N] [--limit N] [--json]\n\n"
             "Auditors only: replays the stored history within the auditor's scope. Dates are\n"
             "whole days (--to includes that day). The replay itself is recorded in the log.");
        return 0;
    }
    return s_replay_common(c, "replay", "replay", false);
}

int
soffa_cli_audit_history(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv)) {
        puts("usage: soffa history --pupil ID [--as-of DATE] [--json]\n\n"
             "ID is a personnummer, samordningsnummer or reserve number (20080314TF10).\n"
             "Auditors only: one young person's timeline across every agency in the scope:\n"
             "signals, acknowledgements, case events, consents, referrals and answers.\n"
             "--as-of DATE shows what had been received by the end of that day.");
        return 0;
    }
    return s_replay_common(c, "history", "history", false);
}

int
soffa_cli_audit_access_log(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv)) {
        puts("usage: soffa access-log [--pupil ID] [--from DATE] [--to DATE] [--json]\n\n"
             "Auditors only: who read the history, when, with which filter and how many\n"
             "records came back. --pupil gives the reads of that young person's records.");
        return 0;
    }
    return s_replay_common(c, "access-log", "access-log", true);
}

/* ---- Erasure ----------------------------------------------------------------------------- */

int
soffa_cli_audit_erase(soffa_cli_t *c)
{
    const char *pupil = NULL, *reason = NULL;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h")) {
            puts("usage: soffa erase --pupil ID --reason CODE [--json]\n\n"
                 "A data-protection officer's agent only (named in the broker's [retention]\n"
                 "erasure_by): erases every record of one young person from the broker, for\n"
                 "example after an erroneous registration. Their keys are destroyed: the\n"
                 "records stay in the chain, unreadable by anyone, and cannot be brought back.\n"
                 "Disposal records (the reason, how many, a keyed hash, never the number) tell\n"
                 "every agent that holds copies, and each deletes them. ID is a personnummer,\n"
                 "samordningsnummer or reserve number. CODE is one of:\n"
                 "  ERRONEOUS_REGISTRATION  registered by mistake\n"
                 "  WRONG_IDENTITY          recorded under another person's identity number\n"
                 "  NO_LEGAL_BASIS          processed without a legal basis\n"
                 "  SUBJECT_REQUEST         the young person's request was granted (GDPR art. 17)\n"
                 "  OTHER                   another reason, documented by the officer\n"
                 "soffa history --pupil ID afterwards says that records existed and were erased.");
            return 0;
        } else if (!strcmp(c->argv[i], "--pupil") && i + 1 < c->argc) {
            pupil = c->argv[++i];
        } else if (!strcmp(c->argv[i], "--reason") && i + 1 < c->argc) {
            reason = c->argv[++i];
        } else {
            return soffa_cli_die("erase", 2, "unknown argument '%s' (see soffa erase --help)", c->argv[i]);
        }
    }
    if (!pupil || !reason)
        return soffa_cli_die("erase", 2, "give --pupil ID and --reason CODE (see soffa erase --help)");
    char canon[13];
    soffa_err_t rc = soffa_id_parse_any(pupil, NULL, canon, NULL);
    if (rc != SOFFA_OK)
        return soffa_cli_die("erase", 1, "--pupil: %s", soffa_cli_id_problem(pupil, rc));
    uint32_t code = soffa_erasure_reason(reason);
    if (!code)
        return soffa_cli_die("erase", 2, "--reason is ERRONEOUS_REGISTRATION, WRONG_IDENTITY, NO_LEGAL_BASIS, "
                                         "SUBJECT_REQUEST or OTHER, not '%s'", reason);
    json_t *a = soffa_cli_call(c, "erase", json_pack("{s:s, s:s, s:i}", "cmd", "erase", "subject_id", canon, "reason",
                                                     (int) code), 65000);
    if (!a)
        return 1;
    if (!json_is_true(json_object_get(a, "ok"))) {
        int rrc = soffa_cli_refused("erase", a);
        json_decref(a);
        return rrc;
    }
    if (c->json) {
        soffa_cli_print_json(a, JSON_COMPACT);
    } else {
        printf("erased: %lld record(s) of that young person can no longer be read by anyone (%s); the disposal "
               "records at seq %lld..%lld tell the agents that hold copies\n",
               (long long) json_integer_value(json_object_get(a, "count")), reason,
               (long long) json_integer_value(json_object_get(a, "first_seq")),
               (long long) json_integer_value(json_object_get(a, "last_seq")));
    }
    json_decref(a);
    return 0;
}

/* ---- Verify ------------------------------------------------------------------------------ */

/* The checkpoints an auditor's agent received, held against the store. */
typedef struct {
    soffa_store_t *st;
    const uint8_t *pk;
    const soffa_store_verify_t *rep;   /* the store's restores: numbers never given out here */
    uint64_t held, newest;
    uint64_t lost;                     /* checkpoints of a lost broker, in a restore's gap */
    char wrong[160];
} s_against_t;

/* True when seq lies in a gap a restore record explains: the lost broker
 * may have given it out after the backup, this store never had it. */
static bool
s_in_restore_gap(const soffa_store_verify_t *rep, uint64_t seq)
{
    size_t n = rep->restores < sizeof rep->gaps / sizeof *rep->gaps ? rep->restores : sizeof rep->gaps / sizeof *rep->gaps;
    for (size_t i = 0; i < n; i++)
        if (seq > rep->gaps[i].from && seq < rep->gaps[i].to)
            return true;
    return false;
}

static int
s_store_hash(void *ctx, const soffa_store_rec_t *rec)
{
    memcpy(ctx, rec->hash, SOFFA_HASH_LEN);
    return 1;
}

static int
s_against_one(void *ctx, const soffa_box_in_t *in)
{
    s_against_t *a = ctx;
    soffa_envelope_t e;
    if (soffa_envelope_decode(in->env, in->len, &e) != SOFFA_OK)
        return 0;
    if (e.kind == SOFFA_RK_CHECKPOINT) {
        soffa_checkpoint_t cp;
        uint8_t mine[SOFFA_HASH_LEN], theirs[SOFFA_HASH_LEN];
        soffa_wire_hash(in->env, in->len, mine);
        bool ok = soffa_checkpoint_decode(e.body, e.body_len, &cp) == SOFFA_OK && soffa_checkpoint_valid(&cp, a->pk);
        if (!ok) {
            snprintf(a->wrong, sizeof a->wrong, "the auditor's checkpoint at seq %llu is not signed by that key",
                     (unsigned long long) in->seq);
        } else if (a->rep && s_in_restore_gap(a->rep, in->seq)) {
            a->lost++;   /* signed by the broker that was lost, after the backup this store was restored from */
        } else if (soffa_store_get(a->st, in->seq, s_store_hash, theirs) != SOFFA_OK) {
            snprintf(a->wrong, sizeof a->wrong,
                     "the store has no record %llu, where the auditor holds a signed checkpoint: records were removed",
                     (unsigned long long) in->seq);
        } else if (sodium_memcmp(mine, theirs, SOFFA_HASH_LEN) != 0) {
            snprintf(a->wrong, sizeof a->wrong,
                     "record %llu is not the signed checkpoint the auditor received there: the history was rewritten",
                     (unsigned long long) in->seq);
        } else {
            a->held++;
            if (in->seq > a->newest)
                a->newest = in->seq;
        }
    }
    soffa_envelope_fini(&e);
    return a->wrong[0] != '\0';
}

/* A store whose chain checks out (rc SOFFA_OK from soffa_store_verify) is
 * vouched for only by a signed checkpoint, with at most max_unsigned
 * records after the last one. Returns rc, or SOFFA_ERR_CHAIN_BROKEN with
 * rep's reason and bad_seq set. */
static soffa_err_t
s_vouched(soffa_err_t rc, soffa_store_verify_t *rep, long long max_unsigned)
{
    if (rc == SOFFA_OK && rep->records && rep->checkpoints == 0) {
        rc = SOFFA_ERR_CHAIN_BROKEN;
        rep->bad_seq = 1;
        snprintf(rep->reason, sizeof rep->reason,
                 "no signed checkpoint: nothing vouches for these %llu record(s) (were the checkpoints removed?)",
                 (unsigned long long) rep->records);
    } else if (rc == SOFFA_OK && (long long) rep->unsigned_tail > max_unsigned) {
        rc = SOFFA_ERR_CHAIN_BROKEN;
        rep->bad_seq = rep->last_signed + 2;
        snprintf(rep->reason, sizeof rep->reason,
                 "%llu record(s) after the last signed checkpoint, more than the broker leaves unsigned (%lld)",
                 (unsigned long long) rep->unsigned_tail, max_unsigned);
    }
    return rc;
}

/* Holds the store (ag->st) against every checkpoint in the auditor's
 * store at `against`: a mismatch, or no checkpoint at all, sets *rc to
 * SOFFA_ERR_CHAIN_BROKEN with rep's reason. Returns SOFFA_OK, or the error
 * opening the auditor's store. */
static soffa_err_t
s_hold_against(s_against_t *ag, const char *against, soffa_err_t *rc, soffa_store_verify_t *rep)
{
    soffa_box_t *box = NULL;
    soffa_err_t brc = soffa_box_open(&box, against, 0, NULL, NULL, 0);   /* its checkpoints are in clear */
    if (brc != SOFFA_OK)
        return brc;
    soffa_box_inbox_scan(box, 0, s_against_one, ag);
    soffa_box_close(&box);
    if (ag->wrong[0]) {
        *rc = SOFFA_ERR_CHAIN_BROKEN;
        snprintf(rep->reason, sizeof rep->reason, "%.159s", ag->wrong);
        rep->bad_seq = 0;
    } else if (ag->held == 0) {
        *rc = SOFFA_ERR_CHAIN_BROKEN;
        snprintf(rep->reason, sizeof rep->reason, "the auditor's store at %s holds no checkpoint to check against", against);
    }
    return SOFFA_OK;
}

/* The verdict, as JSON or one line. */
static void
s_print_verify(const soffa_cli_t *c, soffa_err_t rc, const soffa_store_verify_t *rep, const char *against,
               const s_against_t *ag)
{
    char note[400] = "";
    size_t o = 0;
    if (rep->restores && rc == SOFFA_OK)
        o += (size_t) snprintf(note + o, sizeof note - o, "; restored from a backup %llu time(s), the first time "
                               "numbering on from %llu after %llu",
                               (unsigned long long) rep->restores, (unsigned long long) rep->gaps[0].to,
                               (unsigned long long) rep->gaps[0].from);
    if (against && rc == SOFFA_OK && o < sizeof note)
        o += (size_t) snprintf(note + o, sizeof note - o, "; all %llu checkpoint(s) the auditor holds are in it, the newest at seq %llu",
                               (unsigned long long) ag->held, (unsigned long long) ag->newest);
    if (against && rc == SOFFA_OK && ag->lost && o < sizeof note)
        snprintf(note + o, sizeof note - o, " (%llu more were signed by the lost broker after the backup)",
                 (unsigned long long) ag->lost);
    if (c->json) {
        json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:s}", "intact", rc == SOFFA_OK, "records",
                              (json_int_t) rep->records, "checkpoints", (json_int_t) rep->checkpoints, "signed_up_to",
                              (json_int_t) rep->last_signed, "unsigned_tail", (json_int_t) rep->unsigned_tail, "bad_seq",
                              (json_int_t) rep->bad_seq, "reason", rep->reason);
        if (against) {
            json_object_set_new(j, "auditor_checkpoints", json_integer((json_int_t) ag->held));
            json_object_set_new(j, "auditor_checkpoints_lost_in_restores", json_integer((json_int_t) ag->lost));
        }
        json_t *gaps = json_array();
        for (size_t i = 0; i < rep->restores && i < sizeof rep->gaps / sizeof *rep->gaps; i++)
            json_array_append_new(gaps, json_pack("{s:I, s:I}", "after", (json_int_t) rep->gaps[i].from, "next",
                                                  (json_int_t) rep->gaps[i].to));
        json_object_set_new(j, "restores", gaps);
        soffa_cli_print_json(j, JSON_COMPACT);
        json_decref(j);
    } else if (rc == SOFFA_OK) {
        printf("intact: %llu record(s), every hash and link checks out; %llu signed checkpoint(s), the newest vouching for 1..%llu%s\n",
               (unsigned long long) rep->records, (unsigned long long) rep->checkpoints,
               (unsigned long long) rep->last_signed, note);
        if (rep->unhashed)
            printf("%llu record(s) stored before encryption were checked by their place and links only; give "
                   "--master-key to open and hash them too\n", (unsigned long long) rep->unhashed);
    } else if (rep->bad_seq) {
        printf("BROKEN at seq %llu: %s\n", (unsigned long long) rep->bad_seq, rep->reason);
    } else {
        printf("BROKEN: %s\n", rep->reason);
    }
}

int
soffa_cli_audit_verify(soffa_cli_t *c)
{
    const char *dir = NULL, *key = NULL, *against = NULL, *master = NULL;
    long long max_unsigned = 2048;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h"))
            dir = NULL, i = c->argc + 1;
        else if (!strcmp(c->argv[i], "--key") && i + 1 < c->argc)
            key = c->argv[++i];
        else if (!strcmp(c->argv[i], "--against") && i + 1 < c->argc)
            against = c->argv[++i];
        else if (!strcmp(c->argv[i], "--master-key") && i + 1 < c->argc)
            master = c->argv[++i];
        else if (!strcmp(c->argv[i], "--max-unsigned") && i + 1 < c->argc) {
            char *end;
            max_unsigned = strtoll(c->argv[++i], &end, 10);
            if (*end || max_unsigned < 0)
                return soffa_cli_die("verify", 2, "--max-unsigned takes a number of records");
        } else if (!dir && c->argv[i][0] != '-')
            dir = c->argv[i];
        else
            return soffa_cli_die("verify", 2, "unknown argument '%s' (see soffa verify --help)", c->argv[i]);
    }
    if (!dir || !key) {
        puts("usage: soffa verify DATA_DIR --key HEX|FILE [--against AUDIT_DATA_DIR] [--master-key FILE]\n"
             "                    [--max-unsigned N] [--json]\n\n"
             "Checks a broker's store offline and read-only (the live store, a copy or a\n"
             "backup; no broker needed): every record's hash, its place and its link to the\n"
             "one before, and every signed checkpoint. --key is the broker's checkpoint\n"
             "public key (64 hex digits, or a file holding them), obtained from the broker's\n"
             "operator and kept apart from the store. A store with no signed checkpoint, or\n"
             "with more than N records after its last one (--max-unsigned, default 2048: the\n"
             "broker signs every [audit] checkpoint_every records, at most a batch later),\n"
             "is not vouched for and fails. --against checks the store against the signed\n"
             "checkpoints an auditor's agent received (its data directory): each must be in\n"
             "the store, byte for byte, so a history rewritten or cut short is caught even\n"
             "by someone who holds the signing key. Reports the first record that was\n"
             "altered, removed or reordered. No other key is needed: the chain covers the\n"
             "records as stored, encrypted. Records stored before encryption (a store\n"
             "upgraded from format 3) are checked by their place and links only, unless\n"
             "--master-key (the broker's master key file) is given: then each is opened\n"
             "and hashed, every sealed body must open with its own key, and the key tables\n"
             "must agree with each other and with the subject index.\n"
             "Exit status 0 intact, 1 broken or not vouched for.");
        return soffa_cli_want_help(c->argc, c->argv) ? 0 : 2;
    }
    uint8_t pk[32];
    if (!soffa_cli_keys_read_hex(key, pk))
        return soffa_cli_die("verify", 2, "--key takes 64 hex digits or a file holding them");
    soffa_seal_master_t mk = {0};
    char mwhy[900] = "";
    if (master && soffa_seal_master_load(master, NULL, dir, &mk, mwhy, sizeof mwhy) != SOFFA_OK)
        return soffa_cli_die("verify", 1, "%s", mwhy);
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = dir, .read_only = true, .master = master ? &mk : NULL, .why = mwhy,
                            .whylen = sizeof mwhy};
    soffa_err_t rc = soffa_store_open(&st, &o);
    soffa_seal_master_wipe(&mk);
    if (rc != SOFFA_OK)
        return soffa_cli_die("verify", 1, "cannot open the store at %s: %s", dir, mwhy[0] ? mwhy : soffa_strerror(rc));
    soffa_store_verify_t rep;
    rc = s_vouched(soffa_store_verify(st, pk, &rep), &rep, max_unsigned);
    s_against_t ag = {.st = st, .pk = pk, .rep = &rep};
    if (rc == SOFFA_OK && against) {
        soffa_err_t brc = s_hold_against(&ag, against, &rc, &rep);
        if (brc != SOFFA_OK) {
            soffa_store_close(&st);
            return soffa_cli_die("verify", 1, "cannot open the auditor's store at %s: %s", against, soffa_strerror(brc));
        }
    }
    soffa_store_close(&st);
    s_print_verify(c, rc, &rep, against, &ag);
    return rc == SOFFA_OK ? 0 : 1;
}

/* ---- Statistics ---------------------------------------------------------------------------- */

/* The key figures of [from, to]: the aggregate the broker kept for exactly
 * that half-year before its records went, when there is one (they do not
 * change after gallring); else computed from the records, with a note when
 * part of the period's records are gone and its figures are kept per
 * half-year only. New reference, or NULL. */
static json_t *
s_stats_of(json_t *records, const char *kommun, soffa_date_t from, soffa_date_t to)
{
    char f[11], t[11];
    soffa_date_format(from, f);
    soffa_date_format(to, t);
    json_t *kept = NULL, *rec, *partly = json_array();
    size_t i;
    json_array_foreach(records, i, rec) {
        json_t *ag = json_object_get(rec, "aggregate");
        const char *af = json_string_value(json_object_get(ag, "from")), *at = json_string_value(json_object_get(ag, "to"));
        const char *ak = json_string_value(json_object_get(ag, "municipality"));
        if (!ag || !af || !at || !ak || strcmp(ak, kommun) != 0)
            continue;
        if (!strcmp(af, f) && !strcmp(at, t))
            kept = ag;
        else if (strcmp(af, t) <= 0 && strcmp(at, f) >= 0)
            json_array_append_new(partly, json_sprintf("%s..%s", af, at));
    }
    json_t *st;
    if (kept) {
        st = json_deep_copy(kept);
        if (st)
            json_object_set_new(st, "kept_before_gallring", json_true());
    } else {
        st = soffa_stats_compute(records, kommun, from, to);
        if (st && json_array_size(partly))
            json_object_set_new(st, "note", json_string("records of this period have been disposed of (gallring); "
                                                        "their figures are kept per half-year: ask for "
                                                        "exactly the half-years in disposed_half_years"));
        if (st && json_array_size(partly))
            json_object_set(st, "disposed_half_years", partly);
    }
    json_decref(partly);
    return st;
}

/* --half-year 2026H1 as its first and last day. */
static bool
s_half_year(const char *v, soffa_date_t *from, soffa_date_t *to)
{
    char *end;
    long y = strtol(v, &end, 10);
    if (end != v + 4 || y < 2000 || y > 2999 || (strcmp(end, "H1") && strcmp(end, "H2")))
        return false;
    bool h1 = end[1] == '1';
    *from = (soffa_date_t) {(int) y, h1 ? 1 : 7, 1};
    *to = (soffa_date_t) {(int) y, h1 ? 6 : 12, h1 ? 30 : 31};
    return true;
}

/* The export of one half-year: the municipality's KAA journal, read under
 * the purpose "export" (the broker gives it only to an auditor whose scope
 * covers kaa-journal/K, and logs the read), written to a new file readable
 * by its owner only. */
static int
s_export(soffa_cli_t *c, const char *kommun, soffa_date_t from, soffa_date_t to, const char *path)
{
    /* The file first: no read of identity numbers that cannot be written. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return soffa_cli_die("stats", 1, "cannot create %s: %s (the export never overwrites a file; give a new name)",
                             path, strerror(e));
    }
    char mb[24];
    snprintf(mb, sizeof mb, "kaa-journal/%s", kommun);
    json_t *a = soffa_cli_call(c, "stats", json_pack("{s:s, s:s, s:{s:s}}", "cmd", "replay", "request", "export",
                                                    "filter", "mailbox", mb), 60000);
    if (!a || !json_is_true(json_object_get(a, "ok"))) {
        fclose(f);
        unlink(path);
        int rc = a ? soffa_cli_refused("stats", a) : 1;
        json_decref(a);
        return rc;
    }
    long rows = soffa_stats_export(json_object_get(a, "records"), kommun, from, to, f);
    json_decref(a);
    if (fclose(f) != 0 || rows < 0) {
        unlink(path);
        return soffa_cli_die("stats", 1, "cannot write %s", path);
    }
    char fs[11], ts[11];
    soffa_date_format(from, fs);
    soffa_date_format(to, ts);
    if (c->json)
        printf("{\"export\":\"%s\",\"rows\":%ld,\"from\":\"%s\",\"to\":\"%s\"}\n", "written", rows, fs, ts);
    else
        printf("wrote %s: %ld youth(s) in the KAA of %s from %s to %s (identity numbers: keep it as the "
               "municipality's own records)\n", path, rows, kommun, fs, ts);
    return 0;
}

int
soffa_cli_audit_stats(soffa_cli_t *c)
{
    const char *kommun = NULL, *html = NULL, *export = NULL;
    bool csv = false, half = false, dates = false;
    soffa_date_t from = {0, 0, 0}, to = {0, 0, 0};
    for (int i = 1; i < c->argc; i++) {
        const char *a = c->argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: soffa stats --municipality KOD (--from DATE --to DATE | --half-year YYYYH1|YYYYH2)\n"
                 "                   [--json | --csv | --html FILE | --export FILE]\n\n"
                 "Auditors: the KAA key figures of one municipality for a period, computed from\n"
                 "the history (business dates): signals by kind, youths signalled and\n"
                 "registered, share contacted and median days from signal to first contact,\n"
                 "share with a plan and in a measure, referrals by agency with outcomes and\n"
                 "median days to the first answer, closures by reason, and the month-by-month\n"
                 "series. Counts are split by legal sex; counts of 1 to 4 are suppressed.\n"
                 "--html writes a self-contained page with charts. The read is logged.\n"
                 "Per half-year and month: youths in the KAA during the period and at its end,\n"
                 "the shares contacted, mapped and with a plan, declines, occupations, where\n"
                 "they went at closure, age bands, signals and dropouts per school unit.\n"
                 "--half-year 2026H1 is 1 Jan to 30 Jun 2026 (H2: 1 Jul to 31 Dec).\n"
                 "--export FILE (with --half-year) writes one CSV row per youth in the KAA\n"
                 "during the half-year, identity number included: for the municipality's own\n"
                 "reporting, given only to an auditor whose scope covers kaa-journal/KOD.");
            return 0;
        } else if (!strcmp(a, "--csv")) {
            csv = true;
        } else if (i + 1 >= c->argc) {
            return soffa_cli_die("stats", 2, "'%s' needs a value (see soffa stats --help)", a);
        } else if (!strcmp(a, "--municipality")) {
            kommun = c->argv[++i];
            if (soffa_kommun_check(kommun) != SOFFA_OK)
                return soffa_cli_die("stats", 1, "--municipality: '%s' is not one of the 290 municipality codes", kommun);
        } else if (!strcmp(a, "--from")) {
            if (!soffa_date_parse(c->argv[++i], &from))
                return soffa_cli_die("stats", 2, "--from takes a date YYYY-MM-DD");
            dates = true;
        } else if (!strcmp(a, "--to")) {
            if (!soffa_date_parse(c->argv[++i], &to))
                return soffa_cli_die("stats", 2, "--to takes a date YYYY-MM-DD");
            dates = true;
        } else if (!strcmp(a, "--html")) {
            html = c->argv[++i];
        } else if (!strcmp(a, "--export")) {
            export = c->argv[++i];
        } else if (!strcmp(a, "--half-year")) {
            if (!s_half_year(c->argv[++i], &from, &to))
                return soffa_cli_die("stats", 2, "--half-year takes a year and a half, e.g. 2026H1 (1 Jan-30 Jun) or "
                                                 "2026H2 (1 Jul-31 Dec), not '%s'", c->argv[i]);
            half = true;
        } else {
            return soffa_cli_die("stats", 2, "unknown argument '%s' (see soffa stats --help)", a);
        }
    }
    if (half && dates)
        return soffa_cli_die("stats", 2, "give either --half-year or --from and --to, not both (the half-year sets both "
                                         "dates)");
    if (!kommun || !from.year || !to.year)
        return soffa_cli_die("stats", 2, "give --municipality, and --from and --to or --half-year (see soffa stats --help)");
    if (soffa_date_cmp(from, to) > 0)
        return soffa_cli_die("stats", 2, "--from is after --to");
    if (export && !half)
        return soffa_cli_die("stats", 2, "--export is per half-year: give --half-year YYYYH1 or YYYYH2");
    if (export && (html || csv))
        return soffa_cli_die("stats", 2, "--export writes its own file; leave out --csv and --html");
    if (export)
        return s_export(c, kommun, from, to, export);
    json_t *a = soffa_cli_call(c, "stats", json_pack("{s:s, s:s, s:{}}", "cmd", "replay", "request", "stats", "filter"), 60000);
    if (!a)
        return 1;
    if (!json_is_true(json_object_get(a, "ok"))) {
        int rc = soffa_cli_refused("stats", a);
        json_decref(a);
        return rc;
    }
    json_t *st = s_stats_of(json_object_get(a, "records"), kommun, from, to);
    json_decref(a);
    if (!st)
        return soffa_cli_die("stats", 1, "out of memory");
    int rc = 0;
    if (html) {
        FILE *f = fopen(html, "w");
        if (!f) {
            rc = soffa_cli_die("stats", 1, "cannot write %s: %s", html, strerror(errno));
        } else {
            soffa_stats_html(st, f);
            if (fclose(f) != 0)
                rc = soffa_cli_die("stats", 1, "cannot write %s", html);
            else if (!c->json && !csv)
                printf("wrote %s\n", html);
        }
    }
    if (c->json) {
        char *s = json_dumps(st, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        puts(s);
        free(s);
    } else if (csv) {
        soffa_stats_csv(st, stdout);
    } else if (!html) {
        soffa_stats_table(st, stdout);
    }
    json_decref(st);
    return rc;
}
