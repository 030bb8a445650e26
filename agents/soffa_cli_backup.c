/*  soffa_cli_backup: a verified hot copy of the broker's store (see
 *  soffa_cli_backup.h).
 */
#include "soffa_cli_backup.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soffa_cfg.h"
#include "soffa_cli_keys.h"
#include "soffa_store.h"

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

/* The broker's store: [broker] data_dir of BROKER.INI, resolved beside it,
 * into data; ini gets what the backup reads of the file. Returns 0, or the
 * exit status with the message printed. */
static int
s_store_dir(const char *config, s_broker_ini_t *ini, char data[1024])
{
    int prc = ini_parse(config, s_broker_ini_key, ini);
    if (prc < 0)
        return soffa_cli_die("backup", 1, "cannot read %s: %s", config, strerror(errno));
    if (prc > 0)
        return soffa_cli_die("backup", 1, "%s:%d: not an INI line (soffa-broker --config %s --check says more)", config, prc, config);
    if (!ini->data_dir[0])
        return soffa_cli_die("backup", 1, "%s has no [broker] data_dir", config);
    if (!soffa_cfg_path(config, ini->data_dir, data, 1024))
        return soffa_cli_die("backup", 1, "the data_dir of %s is too long a path", config);
    return 0;
}

/* The checkpoint key the copy is verified against: --key, else the public
 * half of [audit] signing_key when there is one, else none (*trusted
 * NULL: every checkpoint must be signed by one and the same key); against
 * says which, for people. Returns 0, or 2 with the message printed. */
static int
s_trusted_key(const char *config, const char *key, const s_broker_ini_t *ini, uint8_t pk[32], const uint8_t **trusted,
              char *against, size_t against_len)
{
    *trusted = NULL;
    snprintf(against, against_len, "one and the same key throughout (no --key and no checkpoint.pub)");
    if (key) {
        if (!soffa_cli_keys_read_hex(key, pk))
            return soffa_cli_die("backup", 2, "--key takes 64 hex digits or a file holding them");
        *trusted = pk;
        snprintf(against, against_len, "the key %s", key);
        return 0;
    }
    /* The public half of [audit] signing_key, beside the key (default
     * checkpoint.pub beside BROKER.INI). */
    char kp[1024], pp[1100];
    if (soffa_cfg_path(config, ini->signing_key[0] ? ini->signing_key : "checkpoint.key", kp, sizeof kp)) {
        size_t kl = strlen(kp);
        snprintf(pp, sizeof pp, "%.*s.pub", (int) (kl > 4 && !strcmp(kp + kl - 4, ".key") ? kl - 4 : kl), kp);
        if (soffa_cli_keys_read_hex(pp, pk)) {
            *trusted = pk;
            snprintf(against, against_len, "%s", pp);
        }
    }
    return 0;
}

/* Whether this user may open the store at data without harm. Returns 0,
 * or 1 with the message printed. */
static int
s_store_usable(const char *data, const char *config)
{
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
    return 0;
}

/* What was written and how it verified, as JSON or for people. */
static void
s_print_backup(const soffa_cli_t *c, const char *data, const char *dest, const soffa_store_backup_t *r, const char *against)
{
    if (c->json) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "dest", dest, "store", data, "head_seq",
                              (json_int_t) r->head_seq, "bytes", (json_int_t) r->bytes, "checkpoints",
                              (json_int_t) r->verify.checkpoints, "signed_up_to", (json_int_t) r->verify.last_signed,
                              "verified", 1);
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("backup of %s written to %s: %llu record(s), %.1f MiB (data.mdb, keys)\n", data, dest,
               (unsigned long long) r->head_seq, (double) r->bytes / (1024.0 * 1024.0));
        if (r->verify.checkpoints)
            printf("verified: every hash and link checks out; %llu signed checkpoint(s), the newest vouching for 1..%llu, "
                   "checked against %s\n",
                   (unsigned long long) r->verify.checkpoints, (unsigned long long) r->verify.last_signed, against);
        else
            printf("verified: every hash and link checks out; no signed checkpoint yet\n");
    }
}

int
soffa_cli_backup_cmd(soffa_cli_t *c)
{
    const char *config = NULL, *dest = NULL, *key = NULL;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h")) {
            puts("usage: soffa backup DEST --config BROKER.INI [--key CHECKPOINT-KEY] [--json]\n\n"
                 "On the broker's host, while the broker runs: writes a compacted copy of the\n"
                 "broker's store (the data_dir of BROKER.INI) into the new directory DEST, as\n"
                 "of one commit, without holding the broker up. Beside it goes keys (the\n"
                 "store's epoch key, wrapped by the master key), which a restore needs; the\n"
                 "master key and the checkpoint signing key never go into a backup.\n"
                 "DEST is made 0700 and its files 0600, whatever the umask. The copy is then\n"
                 "verified like `soffa verify` (against --key, 64 hex digits or a file; else\n"
                 "the public half of [audit] signing_key when there is one; else every checkpoint must be\n"
                 "signed by one and the same key) and only then is the backup reported done;\n"
                 "on any failure nothing is left at DEST. The copy is marked: a broker that\n"
                 "opens it (a restore) writes a restore record and numbers on past anything\n"
                 "the lost broker gave out, so no sequence an agent has seen is reused.\n"
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
    char data[1024], against[1100];
    uint8_t pk[32];
    const uint8_t *trusted;
    int status = s_store_dir(config, &ini, data);
    if (status == 0)
        status = s_trusted_key(config, key, &ini, pk, &trusted, against, sizeof against);
    if (status == 0)
        status = s_store_usable(data, config);
    if (status != 0)
        return status;
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
    s_print_backup(c, data, dest, &rep, against);
    return 0;
}
