/*  soffa: the command line people and scripts use.
 *
 *  Most commands talk to the agent on the same host over its control socket
 *  (--socket PATH, or --net DIR --agent NAME for a network made by `soffa
 *  up`, or $SOFFA_SOCKET). Everything handed to the agent is durable in its
 *  outbox before the command returns. Every command has --help, prints one
 *  line on stderr and exits non-zero on failure (1: refused or failed,
 *  2: usage), and takes --json where it prints data.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>
#include <zmq.h>

#include <ini.h>

#include "soffa_box.h"
#include "soffa_cli.h"
#include "soffa_cli_id.h"
#include "soffa_cli_inbox.h"
#include "soffa_cli_keys.h"
#include "soffa_cli_msg.h"
#include "soffa_cli_status.h"
#include "soffa_cfg.h"
#include "soffa_csv.h"
#include "soffa_err.h"
#include "soffa_id.h"
#include "soffa_import.h"
#include "soffa_keys.h"
#include "soffa_msg.h"
#include "soffa_record.h"
#include "soffa_stats.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_users.h"
#include "soffa_uuid.h"
#include "soffa_version.h"
#include "soffa_webdemo.h"

/* ---- Audit: replay, history, access log, verify ---------------------------------------- */

static int
s_replay_common(soffa_cli_t *c, const char *cmd, const char *request, bool access_only)
{
    json_t *fl = json_object();
    const char *as_of = NULL;
    for (int i = 1; i < c->argc; i++) {
        const char *a = c->argv[i], *v = i + 1 < c->argc ? c->argv[i + 1] : NULL;
        soffa_date_t d;
        if (!v) {
            json_decref(fl);
            return soffa_cli_die(cmd, 2, "'%s' needs a value (see soffa %s --help)", a, cmd);
        }
        i++;
        if (!strcmp(a, "--mailbox")) {
            json_object_set_new(fl, "mailbox", json_string(v));
        } else if (!strcmp(a, "--pupil")) {
            char canon[13];
            soffa_err_t rc = soffa_id_parse_any(v, NULL, canon, NULL);
            if (rc != SOFFA_OK) {
                json_decref(fl);
                return soffa_cli_die(cmd, 1, "--pupil: %s", soffa_cli_id_problem(v, rc));
            }
            json_object_set_new(fl, "subject_id", json_string(canon));
        } else if (!strcmp(a, "--type")) {
            soffa_msg_type_t t = soffa_msg_type_from_name(v);
            if (t == SOFFA_MT_NONE) {
                json_decref(fl);
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
                as_of = v;
        } else if (!strcmp(a, "--from-seq")) {
            json_object_set_new(fl, "from_seq", json_integer(atoll(v)));
        } else if (!strcmp(a, "--to-seq")) {
            json_object_set_new(fl, "to_seq", json_integer(atoll(v)));
        } else if (!strcmp(a, "--limit")) {
            json_object_set_new(fl, "limit", json_integer(atoll(v)));
        } else {
            json_decref(fl);
            return soffa_cli_die(cmd, 2, "unknown or malformed option '%s %s' (see soffa %s --help)", a, v, cmd);
        }
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
    size_t i, shown = 0;
    json_t *rec;
    if (!c->json && as_of)
        printf("what soffa held about this pupil by the end of %s:\n", as_of);
    /* A read is recorded when it opens and when it ends: the access log
     * shows one line per read (its end), and an opening with no end
     * (a read under way, or one that ended without a record). */
    json_t *ended = json_object();
    json_array_foreach(json_object_get(a, "records"), i, rec) {
        json_t *ac = json_object_get(rec, "access");
        const char *st = json_string_value(json_object_get(ac, "state"));
        if (st && strcmp(st, "opened") != 0) {
            char k[32];
            snprintf(k, sizeof k, "%lld", (long long) json_integer_value(json_object_get(ac, "opened_seq")));
            json_object_set_new(ended, k, json_true());
        }
    }
    json_array_foreach(json_object_get(a, "records"), i, rec) {
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
        if (!strcmp(request, "history") && (!kind || strcmp(kind, "message")))
            continue;
        soffa_cli_print_record(c, rec);
        shown++;
    }
    json_decref(ended);
    if (!c->json)
        printf("%zu record(s); this read is itself logged at seq %lld\n", shown,
               (long long) json_integer_value(json_object_get(a, "access_seq")));
    json_decref(a);
    return 0;
}

static int
s_cmd_replay(soffa_cli_t *c)
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

static int
s_cmd_history(soffa_cli_t *c)
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

static int
s_cmd_access_log(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv)) {
        puts("usage: soffa access-log [--pupil ID] [--from DATE] [--to DATE] [--json]\n\n"
             "Auditors only: who read the history, when, with which filter and how many\n"
             "records came back. --pupil gives the reads of that young person's records.");
        return 0;
    }
    return s_replay_common(c, "access-log", "access-log", true);
}

/* The checkpoints an auditor's agent received, held against the store. */
typedef struct {
    soffa_store_t *st;
    const uint8_t *pk;
    uint64_t held, newest;
    char wrong[160];
} s_against_t;

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

static int
s_cmd_verify(soffa_cli_t *c)
{
    const char *dir = NULL, *key = NULL, *against = NULL;
    long long max_unsigned = 2048;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h"))
            dir = NULL, i = c->argc + 1;
        else if (!strcmp(c->argv[i], "--key") && i + 1 < c->argc)
            key = c->argv[++i];
        else if (!strcmp(c->argv[i], "--against") && i + 1 < c->argc)
            against = c->argv[++i];
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
        puts("usage: soffa verify DATA_DIR --key HEX|FILE [--against AUDIT_DATA_DIR] [--max-unsigned N] [--json]\n\n"
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
             "altered, removed or reordered. Exit status 0 intact, 1 broken or not vouched for.");
        return soffa_cli_want_help(c->argc, c->argv) ? 0 : 2;
    }
    uint8_t pk[32];
    if (!soffa_cli_keys_read_hex(key, pk))
        return soffa_cli_die("verify", 2, "--key takes 64 hex digits or a file holding them");
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = dir, .read_only = true};
    soffa_err_t rc = soffa_store_open(&st, &o);
    if (rc != SOFFA_OK)
        return soffa_cli_die("verify", 1, "cannot open the store at %s: %s", dir, soffa_strerror(rc));
    soffa_store_verify_t rep;
    rc = soffa_store_verify(st, pk, &rep);
    if (rc == SOFFA_OK && rep.records && rep.checkpoints == 0) {
        rc = SOFFA_ERR_CHAIN_BROKEN;
        rep.bad_seq = 1;
        snprintf(rep.reason, sizeof rep.reason,
                 "no signed checkpoint: nothing vouches for these %llu record(s) (were the checkpoints removed?)",
                 (unsigned long long) rep.records);
    } else if (rc == SOFFA_OK && (long long) rep.unsigned_tail > max_unsigned) {
        rc = SOFFA_ERR_CHAIN_BROKEN;
        rep.bad_seq = rep.last_signed + 2;
        snprintf(rep.reason, sizeof rep.reason,
                 "%llu record(s) after the last signed checkpoint, more than the broker leaves unsigned (%lld)",
                 (unsigned long long) rep.unsigned_tail, max_unsigned);
    }
    s_against_t ag = {.st = st, .pk = pk};
    if (rc == SOFFA_OK && against) {
        soffa_box_t *box = NULL;
        soffa_err_t brc = soffa_box_open(&box, against, 0);
        if (brc != SOFFA_OK) {
            soffa_store_close(&st);
            return soffa_cli_die("verify", 1, "cannot open the auditor's store at %s: %s", against, soffa_strerror(brc));
        }
        soffa_box_inbox_scan(box, 0, s_against_one, &ag);
        soffa_box_close(&box);
        if (ag.wrong[0]) {
            rc = SOFFA_ERR_CHAIN_BROKEN;
            snprintf(rep.reason, sizeof rep.reason, "%.159s", ag.wrong);
            rep.bad_seq = 0;
        } else if (ag.held == 0) {
            rc = SOFFA_ERR_CHAIN_BROKEN;
            snprintf(rep.reason, sizeof rep.reason, "the auditor's store at %s holds no checkpoint to check against", against);
        }
    }
    soffa_store_close(&st);
    char note[200] = "";
    if (against && rc == SOFFA_OK)
        snprintf(note, sizeof note, "; all %llu checkpoint(s) the auditor holds are in it, the newest at seq %llu",
                 (unsigned long long) ag.held, (unsigned long long) ag.newest);
    if (c->json) {
        json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:s}", "intact", rc == SOFFA_OK, "records", (json_int_t) rep.records,
                              "checkpoints", (json_int_t) rep.checkpoints, "signed_up_to", (json_int_t) rep.last_signed,
                              "unsigned_tail", (json_int_t) rep.unsigned_tail, "bad_seq", (json_int_t) rep.bad_seq,
                              "reason", rep.reason);
        if (against)
            json_object_set_new(j, "auditor_checkpoints", json_integer((json_int_t) ag.held));
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    } else if (rc == SOFFA_OK) {
        printf("intact: %llu record(s), every hash and link checks out; %llu signed checkpoint(s), the newest vouching for 1..%llu%s\n",
               (unsigned long long) rep.records, (unsigned long long) rep.checkpoints,
               (unsigned long long) rep.last_signed, note);
    } else if (rep.bad_seq) {
        printf("BROKEN at seq %llu: %s\n", (unsigned long long) rep.bad_seq, rep.reason);
    } else {
        printf("BROKEN: %s\n", rep.reason);
    }
    return rc == SOFFA_OK ? 0 : 1;
}

/* ---- Backup ------------------------------------------------------------------------- */

typedef struct {
    char data_dir[1024];      /* [broker] data_dir as written */
    char signing_key[1024];   /* [audit] signing_key as written ("" = the default) */
} s_broker_ini_t;

static int
s_broker_ini_key(void *ctx, const char *section, const char *name, const char *value)
{
    s_broker_ini_t *b = ctx;
    if (!strcmp(section, "broker") && !strcmp(name, "data_dir"))
        snprintf(b->data_dir, sizeof b->data_dir, "%s", value);
    if (!strcmp(section, "audit") && !strcmp(name, "signing_key"))
        snprintf(b->signing_key, sizeof b->signing_key, "%s", value);
    return 1;   /* the broker itself checks the rest of its file */
}

static int
s_cmd_backup(soffa_cli_t *c)
{
    const char *config = NULL, *dest = NULL, *key = NULL;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h")) {
            puts("usage: soffa backup DEST --config BROKER.INI [--key CHECKPOINT-KEY] [--json]\n\n"
                 "On the broker's host, while the broker runs: writes a compacted copy of the\n"
                 "broker's store (the data_dir of BROKER.INI) into the new directory DEST, as\n"
                 "of one commit, without holding the broker up. Beside it goes subject.key,\n"
                 "which a restore needs; the checkpoint signing key never goes into a backup.\n"
                 "DEST is made 0700 and its files 0600, whatever the umask. The copy is then\n"
                 "verified like `soffa verify` (against --key, 64 hex digits or a file; else\n"
                 "the public half of [audit] signing_key when there is one; else every checkpoint must be\n"
                 "signed by one and the same key) and only then is the backup reported done;\n"
                 "on any failure nothing is left at DEST.\n"
                 "Run it as the broker's user (sudo -u soffa) or as root. See the README for\n"
                 "the restore. Exit status 0 done and verified, 1 failed, 2 usage.");
            return 0;
        } else if (!strcmp(c->argv[i], "--config") && i + 1 < c->argc) {
            config = c->argv[++i];
        } else if (!strcmp(c->argv[i], "--key") && i + 1 < c->argc) {
            key = c->argv[++i];
        } else if (c->argv[i][0] != '-' && !dest) {
            dest = c->argv[i];
        } else {
            return soffa_cli_die("backup", 2, "unknown or extra argument '%s' (see soffa backup --help)", c->argv[i]);
        }
    }
    if (!dest || !config)
        return soffa_cli_die("backup", 2, "give DEST and --config BROKER.INI (see soffa backup --help)");
    s_broker_ini_t ini = {"", ""};
    int prc = ini_parse(config, s_broker_ini_key, &ini);
    if (prc < 0)
        return soffa_cli_die("backup", 1, "cannot read %s: %s", config, strerror(errno));
    if (prc > 0)
        return soffa_cli_die("backup", 1, "%s:%d: not an INI line (soffa-broker --config %s --check says more)", config, prc, config);
    char data[1024];
    if (!ini.data_dir[0])
        return soffa_cli_die("backup", 1, "%s has no [broker] data_dir", config);
    if (!soffa_cfg_path(config, ini.data_dir, data, sizeof data))
        return soffa_cli_die("backup", 1, "the data_dir of %s is too long a path", config);
    uint8_t pk[32];
    const uint8_t *trusted = NULL;
    char against[1100] = "one and the same key throughout (no --key and no checkpoint.pub)";
    if (key) {
        if (!soffa_cli_keys_read_hex(key, pk))
            return soffa_cli_die("backup", 2, "--key takes 64 hex digits or a file holding them");
        trusted = pk;
        snprintf(against, sizeof against, "the key %s", key);
    } else {
        /* The public half of [audit] signing_key, beside the key (default
         * checkpoint.pub beside BROKER.INI). */
        char kp[1024], pp[1100];
        if (soffa_cfg_path(config, ini.signing_key[0] ? ini.signing_key : "checkpoint.key", kp, sizeof kp)) {
            size_t kl = strlen(kp);
            snprintf(pp, sizeof pp, "%.*s.pub", (int) (kl > 4 && !strcmp(kp + kl - 4, ".key") ? kl - 4 : kl), kp);
            if (soffa_cli_keys_read_hex(pp, pk)) {
                trusted = pk;
                snprintf(against, sizeof against, "%s", pp);
            }
        }
    }
    /* Opening an LMDB store creates its lock file when it is missing; made
     * by another user (root, say), it would keep the broker from starting. */
    char path[1100];
    struct stat dst, lst;
    snprintf(path, sizeof path, "%s/data.mdb", data);
    if (stat(data, &dst) != 0 || stat(path, &lst) != 0)
        return soffa_cli_die("backup", 1, "no broker store at %s (the data_dir of %s): %s", data, config, strerror(errno));
    snprintf(path, sizeof path, "%s/lock.mdb", data);
    if (stat(path, &lst) != 0 && geteuid() != dst.st_uid)
        return soffa_cli_die("backup", 1, "%s has no lock.mdb and belongs to another user: run the backup as that user "
                                  "(sudo -u soffa), so that the lock file LMDB makes is theirs", data);
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = data, .read_only = true};
    soffa_err_t rc = soffa_store_open(&st, &o);
    if (rc != SOFFA_OK)
        return soffa_cli_die("backup", 1, "cannot open the store at %s: %s", data, soffa_strerror(rc));
    soffa_store_backup_t rep;
    rc = soffa_store_backup(st, dest, trusted, &rep);
    soffa_store_close(&st);
    if (rc == SOFFA_ERR_CHAIN_BROKEN)
        return soffa_cli_die("backup", 1, "the copy does not verify, at seq %llu: %s; nothing was kept at %s. Check the store "
                                  "itself: soffa verify %s",
                     (unsigned long long) rep.verify.bad_seq, rep.verify.reason, dest, data);
    if (rc == SOFFA_ERR_EXISTS)
        return soffa_cli_die("backup", 1, "%s already exists; give a new directory", dest);
    if (rc != SOFFA_OK)
        return soffa_cli_die("backup", 1, "cannot write the backup to %s: %s", dest, soffa_strerror(rc));
    if (c->json) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "dest", dest, "store", data, "head_seq",
                              (json_int_t) rep.head_seq, "bytes", (json_int_t) rep.bytes, "checkpoints",
                              (json_int_t) rep.verify.checkpoints, "signed_up_to", (json_int_t) rep.verify.last_signed,
                              "verified", 1);
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("backup of %s written to %s: %llu record(s), %.1f MiB (data.mdb, subject.key)\n", data, dest,
               (unsigned long long) rep.head_seq, (double) rep.bytes / (1024.0 * 1024.0));
        if (rep.verify.checkpoints)
            printf("verified: every hash and link checks out; %llu signed checkpoint(s), the newest vouching for 1..%llu, "
                   "checked against %s\n",
                   (unsigned long long) rep.verify.checkpoints, (unsigned long long) rep.verify.last_signed, against);
        else
            printf("verified: every hash and link checks out; no signed checkpoint yet\n");
    }
    return 0;
}

static int
s_cmd_stats(soffa_cli_t *c)
{
    const char *kommun = NULL, *html = NULL;
    bool csv = false;
    soffa_date_t from = {0, 0, 0}, to = {0, 0, 0};
    for (int i = 1; i < c->argc; i++) {
        const char *a = c->argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: soffa stats --municipality KOD --from DATE --to DATE [--json | --csv | --html FILE]\n\n"
                 "Auditors: the KAA key figures of one municipality for a period, computed from\n"
                 "the history (business dates): signals by kind, youths signalled and\n"
                 "registered, share contacted and median days from signal to first contact,\n"
                 "share with a plan and in a measure, referrals by agency with outcomes and\n"
                 "median days to the first answer, closures by reason, and the month-by-month\n"
                 "series. Counts are split by legal sex; counts of 1 to 4 are suppressed.\n"
                 "--html writes a self-contained page with charts. The read is logged.");
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
        } else if (!strcmp(a, "--to")) {
            if (!soffa_date_parse(c->argv[++i], &to))
                return soffa_cli_die("stats", 2, "--to takes a date YYYY-MM-DD");
        } else if (!strcmp(a, "--html")) {
            html = c->argv[++i];
        } else {
            return soffa_cli_die("stats", 2, "unknown argument '%s' (see soffa stats --help)", a);
        }
    }
    if (!kommun || !from.year || !to.year)
        return soffa_cli_die("stats", 2, "give --municipality, --from and --to (see soffa stats --help)");
    if (soffa_date_cmp(from, to) > 0)
        return soffa_cli_die("stats", 2, "--from is after --to");
    json_t *a = soffa_cli_call(c, "stats", json_pack("{s:s, s:s, s:{}}", "cmd", "replay", "request", "stats", "filter"), 60000);
    if (!a)
        return 1;
    if (!json_is_true(json_object_get(a, "ok"))) {
        int rc = soffa_cli_refused("stats", a);
        json_decref(a);
        return rc;
    }
    json_t *st = soffa_stats_compute(json_object_get(a, "records"), kommun, from, to);
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

/* ---- School data: import, sync, review (agents/soffa_import.c) -------------------- */

static json_t *
s_call_cb(void *ctx, const char *cmd, json_t *req, int timeout_ms)
{
    return soffa_cli_call(ctx, cmd, req, timeout_ms);
}

static int
s_cmd_import(soffa_cli_t *c)
{
    return soffa_import_cmd(c->argc, c->argv, c->json, s_call_cb, c);
}

static int
s_cmd_sync(soffa_cli_t *c)
{
    return soffa_import_sync_cmd(c->argc, c->argv, c->json, s_call_cb, c);
}

static int
s_cmd_pending(soffa_cli_t *c)
{
    return soffa_import_pending_cmd(c->argc, c->argv, c->json, s_call_cb, c);
}

static int
s_cmd_review(soffa_cli_t *c)
{
    return soffa_import_review_cmd(c->argc, c->argv, c->json, s_call_cb, c);
}

/* ---- A local network: soffa up / soffa down -------------------------------------------------- */

typedef struct {
    const char *name, *role, *kommun, *unit, *scope, *what;
} s_node_t;

static const s_node_t s_nodes[] = {
    {"school-1415", "school", "1415", "14150001", NULL, "an upper-secondary school in Stenungsund"},
    {"kaa-1415", "kaa", "1415", NULL, NULL, "Stenungsund's KAA team"},
    {"kaa-1419", "kaa", "1419", NULL, NULL, "Tjörn's KAA team"},
    {"social-1419", "social", "1419", NULL, NULL, "social services in Tjörn"},
    {"af-1419", "af", "1419", NULL, NULL, "Arbetsförmedlingen for Tjörn"},
    {"audit", "audit", NULL, NULL, "*/1415, */1419, school/*, school-journal/*, audit/*", "an auditor for both municipalities"},
    {"audit-1415", "audit", NULL, NULL, "*/1415", "an auditor for Stenungsund only"},
};
#define S_NODES (sizeof s_nodes / sizeof *s_nodes)

static void
s_bin_dir(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n <= 0) {
        snprintf(out, len, ".");
        return;
    }
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

static pid_t
s_spawn(const char *bin, const char *config, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        execl(bin, bin, "--config", config, (char *) NULL);
        _exit(127);
    }
    return pid;
}

static int
s_free_port(void)
{
    /* A port the kernel just handed out and released. */
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    int port = 0;
    if (zmq_bind(s, "tcp://127.0.0.1:*") == 0) {
        char ep[64];
        size_t len = sizeof ep;
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
        char *colon = strrchr(ep, ':');
        port = colon ? atoi(colon + 1) : 0;
    }
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return port;
}

static int
s_cmd_up(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa up DIR\n\n"
             "Creates in DIR (new or empty) keys, configurations and data for a broker and\n"
             "one agent of each role, starts them in the background and returns when every\n"
             "agent is connected; also the web inboxes of the school, the KAA teams,\n"
             "social services and Arbetsförmedlingen on loopback ports, each with a demo\n"
             "account whose password is in DIR/web-passwords (owner-only).\n"
             "Talk to an agent with: soffa --net DIR --agent NAME ...\n"
             "Stop everything with: soffa down DIR");
        return c->argc == 2 ? 0 : 2;
    }
    const char *dir = c->argv[1];
    char path[1200], bin[1024], broker_bin[1200], agent_bin[1200];
    s_bin_dir(bin, sizeof bin);
    snprintf(broker_bin, sizeof broker_bin, "%s/soffa-broker", bin);
    snprintf(agent_bin, sizeof agent_bin, "%s/soffa-agent", bin);
    if (access(broker_bin, X_OK) != 0 || access(agent_bin, X_OK) != 0)
        return soffa_cli_die("up", 1, "soffa-broker and soffa-agent must sit next to soffa (%s)", bin);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return soffa_cli_die("up", 1, "cannot create %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/broker", dir);
    if (mkdir(path, 0700) != 0)
        return soffa_cli_die("up", 1, "%s already holds a network (soffa down %s, or pick a new directory)", dir, dir);
    char abs[PATH_MAX];
    if (!realpath(dir, abs))
        return soffa_cli_die("up", 1, "cannot resolve %s", dir);
    /* Unix socket paths are limited to 107 bytes. */
    if (strlen(abs) > 60)
        return soffa_cli_die("up", 1, "%s is too long a path for the agents' sockets; use a shorter one (at most 60 characters)", abs);
    snprintf(path, sizeof path, "%s/broker/broker", abs);
    if (soffa_keys_generate(path) != SOFFA_OK)
        return soffa_cli_die("up", 1, "cannot write the broker's keys in %s", dir);
    int port = s_free_port();
    snprintf(path, sizeof path, "%s/broker/broker.ini", abs);
    FILE *f = fopen(path, "w");
    if (!f)
        return soffa_cli_die("up", 1, "cannot write %s", path);
    fprintf(f, "; made by soffa up\n[broker]\nendpoint = tcp://127.0.0.1:%d\nipc_endpoint = ipc://%s/broker/broker.sock\n"
               "secret_key = broker.key\ndata_dir = data\nheartbeat_ms = 1000\nexpiry_ms = 5000\n"
               "[audit]\ncheckpoint_every = 10\ncheckpoint_ms = 10000\n",
            port, abs);
    for (size_t i = 0; i < S_NODES; i++) {
        const s_node_t *n = &s_nodes[i];
        char kp[1100];
        snprintf(kp, sizeof kp, "%s/%s", abs, n->name);
        mkdir(kp, 0700);
        snprintf(kp, sizeof kp, "%s/%s/%s", abs, n->name, n->name);
        if (soffa_keys_generate(kp) != SOFFA_OK) {
            fclose(f);
            return soffa_cli_die("up", 1, "cannot write the keys of %s", n->name);
        }
        fprintf(f, "\n[agent %s]\npublic_key = ../%s/%s.pub\nrole = %s\n", n->name, n->name, n->name, n->role);
        if (n->kommun)
            fprintf(f, "kommun = %s\n", n->kommun);
        if (n->unit)
            fprintf(f, "unit = %s\n", n->unit);
        if (n->scope)
            fprintf(f, "scope = %s\n", n->scope);
        char ap[1100];
        snprintf(ap, sizeof ap, "%s/%s/agent.ini", abs, n->name);
        FILE *af = fopen(ap, "w");
        if (!af) {
            fclose(f);
            return soffa_cli_die("up", 1, "cannot write %s", ap);
        }
        /* [web] first: lines appended to the file later still land in [agent]. */
        if (soffa_webdemo_wants(n->role))
            soffa_webdemo_ini(af, n->name, s_free_port());
        fprintf(af, "; made by soffa up: %s\n", n->what);
        if (!strcmp(n->role, "school"))   /* a municipal school of its own municipality; [agent] stays last */
            fprintf(af, "[school]\nprincipal_kommun = %s\nschool_unit = %s\n\n", n->kommun, n->unit);
        fprintf(af, "[agent]\nname = %s\nbroker = ipc://%s/broker/broker.sock\n"
                    "broker_key = ../broker/broker.pub\nkey = %s.key\ndata_dir = data\nheartbeat_ms = 500\n"
                    "reconnect_max_ms = 2000\n",
                n->name, abs, n->name);
        fclose(af);
    }
    fclose(f);

    char pidfile[1100], log[1100];
    snprintf(pidfile, sizeof pidfile, "%s/pids", abs);
    FILE *pf = fopen(pidfile, "w");
    if (!pf)
        return soffa_cli_die("up", 1, "cannot write %s", pidfile);
    snprintf(log, sizeof log, "%s/broker/broker.log", abs);
    pid_t bpid = s_spawn(broker_bin, path, log);
    fprintf(pf, "broker %d\n", (int) bpid);
    for (size_t i = 0; i < S_NODES; i++) {
        char cfg[1100];
        snprintf(cfg, sizeof cfg, "%s/%s/agent.ini", abs, s_nodes[i].name);
        snprintf(log, sizeof log, "%s/%s/agent.log", abs, s_nodes[i].name);
        fprintf(pf, "%s %d\n", s_nodes[i].name, (int) s_spawn(agent_bin, cfg, log));
    }
    fclose(pf);

    /* Ready when every agent says it is connected. */
    soffa_cli_t q = *c;
    q.net = abs;
    bool all = false;
    for (int t = 0; t < 150 && !all; t++) {
        all = true;
        for (size_t i = 0; i < S_NODES && all; i++) {
            char sock[1200];
            snprintf(sock, sizeof sock, "%s/%s/data/control.sock", abs, s_nodes[i].name);
            struct stat st;
            if (stat(sock, &st) != 0) {
                all = false;
                break;
            }
            q.agent = s_nodes[i].name;
            int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 2);
            json_t *a = soffa_cli_call(&q, "up", json_pack("{s:s}", "cmd", "status"), 1000);
            dup2(saved, 2);
            close(saved);
            close(devnull);
            all = a && json_is_true(json_object_get(a, "connected"));
            json_decref(a);
        }
        if (!all)
            usleep(100 * 1000);
    }
    if (!all)
        return soffa_cli_die("up", 1, "not every agent connected within 15 s; see the logs in %s (soffa down %s stops it)", dir, dir);
    const char *names[S_NODES];
    for (size_t i = 0; i < S_NODES; i++)
        names[i] = s_nodes[i].name;
    char why[1200];
    if (soffa_webdemo_start(abs, bin, names, S_NODES, why, sizeof why) != 0)
        return soffa_cli_die("up", 1, "%s (soffa down %s stops the rest)", why, dir);
    if (c->json) {
        printf("{\"dir\":\"%s\",\"broker\":\"tcp://127.0.0.1:%d\",\"agents\":[", abs, port);
        for (size_t i = 0; i < S_NODES; i++)
            printf("%s\"%s\"", i ? "," : "", s_nodes[i].name);
        puts("]}");
        return 0;
    }
    printf("soffa network up in %s\n  broker   tcp://127.0.0.1:%d and ipc://%s/broker/broker.sock\n", abs, port, abs);
    for (size_t i = 0; i < S_NODES; i++)
        printf("  %-12s %-7s %s\n", s_nodes[i].name, s_nodes[i].role, s_nodes[i].what);
    soffa_webdemo_print(stdout, abs);
    printf("Try: soffa --net %s --agent kaa-1419 status\nStop: soffa down %s\n", dir, dir);
    return 0;
}

static int
s_cmd_user(soffa_cli_t *c)
{
    return soffa_users_command(c->argc, c->argv, c->net, c->agent);
}

static int
s_cmd_down(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa down DIR\n\nStops the network `soffa up DIR` started: agents first, then the broker,\n"
             "each cleanly (SIGTERM; SIGKILL after 10 s). The data stays in DIR.");
        return c->argc == 2 ? 0 : 2;
    }
    char pidfile[1100];
    snprintf(pidfile, sizeof pidfile, "%s/pids", c->argv[1]);
    FILE *pf = fopen(pidfile, "r");
    if (!pf)
        return soffa_cli_die("down", 1, "no network runs from %s (no %s)", c->argv[1], pidfile);
    char names[16][64];
    pid_t pids[16];
    int n = 0;
    while (n < 16 && fscanf(pf, "%63s %d", names[n], &pids[n]) == 2)
        n++;
    fclose(pf);
    int stopped = 0;
    /* Agents first (reverse order), the broker (first line) last. */
    for (int i = n - 1; i >= 0; i--) {
        if (pids[i] <= 0 || kill(pids[i], SIGTERM) != 0)
            continue;
        int status;
        bool gone = false;
        for (int t = 0; t < 100 && !gone; t++) {
            gone = waitpid(pids[i], &status, WNOHANG) == pids[i] || kill(pids[i], 0) != 0;
            if (!gone)
                usleep(100 * 1000);
        }
        if (!gone) {
            kill(pids[i], SIGKILL);
            fprintf(stderr, "soffa down: %s did not stop within 10 s and was killed\n", names[i]);
        }
        stopped++;
    }
    unlink(pidfile);
    if (!c->json)
        printf("stopped %d process(es); the data stays in %s\n", stopped, c->argv[1]);
    return 0;
}

/* ---- Dispatch -------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int (*run)(soffa_cli_t *c);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"inbox", soffa_cli_inbox_list, "list the messages delivered to this agent"},
    {"show", soffa_cli_inbox_show, "show one message in full"},
    {"watch", soffa_cli_inbox_watch, "print messages as they arrive"},
    {"status", soffa_cli_status_cmd, "the agent's and the broker's state"},
    {"retry", soffa_cli_inbox_retry, "hand a parked message to the hook again"},
    {"import", s_cmd_import, "school: signals from a spreadsheet or an SS 12000 export"},
    {"sync", s_cmd_sync, "school: signals from the SS 12000 API (soffa sync ss12000)"},
    {"pending", s_cmd_pending, "school: derived signals waiting for approval"},
    {"approve", s_cmd_review, "school: send signals waiting for approval"},
    {"reject", s_cmd_review, "school: drop signals waiting for approval"},
    {"replay", s_cmd_replay, "auditors: replay the history"},
    {"history", s_cmd_history, "auditors: one young person's timeline"},
    {"access-log", s_cmd_access_log, "auditors: who read what, when"},
    {"stats", s_cmd_stats, "auditors: a municipality's KAA key figures"},
    {"verify", s_cmd_verify, "check the hash chain of a store, offline"},
    {"backup", s_cmd_backup, "on the broker's host: a verified hot copy of its store"},
    {"up", s_cmd_up, "start a local network (broker + one agent of each role)"},
    {"down", s_cmd_down, "stop a local network"},
    {"keygen", soffa_cli_keys_keygen, "make a CurveZMQ key pair"},
    {"user", s_cmd_user, "the people who may use this site's web inbox"},
    {"check-id", soffa_cli_id_check, "check a personnummer, samordningsnummer or reserve number"},
};

static void
s_usage(FILE *out)
{
    fputs("usage: soffa [--socket PATH | --net DIR --agent NAME] [--json] COMMAND [ARGS]\n"
          "       soffa --version | --help\n\n"
          "Messages (each hands one message to the local agent):\n", out);
    soffa_cli_msg_usage(out);
    fputs("\nOther commands:\n", out);
    for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
        fprintf(out, "  %-20s %s\n", s_commands[i].name, s_commands[i].summary);
    fputs("\nRun 'soffa COMMAND --help' for the options of one command.\n", out);
}

int
main(int argc, char **argv)
{
    soffa_cli_t c;
    switch (soffa_cli_parse(&c, argc, argv)) {
    case SOFFA_CLI_USAGE: s_usage(stderr); return 2;
    case SOFFA_CLI_HELP: s_usage(stdout); return 0;
    case SOFFA_CLI_VERSION: soffa_version_print("soffa"); return 0;
    case SOFFA_CLI_RUN: break;
    }
    const char *cmd = c.argv[0];
    for (size_t k = 0; k < sizeof s_commands / sizeof *s_commands; k++)
        if (!strcmp(cmd, s_commands[k].name))
            return s_commands[k].run(&c);
    int status;
    if (soffa_cli_msg_run(&c, &status))
        return status;
    return soffa_cli_die(cmd, 2, "unknown command (see soffa --help)");
}
