/*  tk_boxscan: what an agent's data directory gives up to whoever holds it
 *  and the agent's master key (tests/it_cryptagent.sh, issue 17).
 *
 *    tk_boxscan DIR MASTER check
 *      Reads the store as it lies (LMDB read-only, nothing written) and
 *      prints one line: "inbox N sealed S kept K keys M epochs E dangling D
 *      unopenable U". dangling counts index entries that point at nothing:
 *      a sealed delivery or kept copy without its record key, a message-id
 *      lookup without its delivery; unopenable counts record keys that the
 *      epoch key the store names does not open. A disposal cut short must
 *      leave both at 0.
 *    tk_boxscan DIR MASTER find ID...
 *      For each ID (I<seq>: a delivery; M<message id>: a message this site
 *      sent), tries every byte offset of every file in DIR as that record's
 *      key wrapped under every epoch key the keys file holds that MASTER
 *      opens, and prints "ID N" (N: how many offsets open). A copy that was
 *      disposed of must give 0 for its id: its key is gone, even for the
 *      holder of the master key.
 *
 *  Exit 0 when it could read the directory, 1 when not (why on stderr), 2
 *  on a usage error. */
#include <dirent.h>
#include <inttypes.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_bytes.h"
#include "soffa_seal.h"
#include "soffa_uuid.h"

#define S_IN_HDR (1 + 4 + 8 + 8 + 1)   /* state, attempts, next try, received, sealed (soffa_box.c) */

typedef struct {
    uint8_t key[2][SOFFA_SEAL_KEY];
    uint64_t epoch[2];
    int n;
} s_epochs_t;

static int
s_epochs(const char *dir, const soffa_seal_master_t *m, s_epochs_t *e)
{
    soffa_seal_keys_t k;
    memset(e, 0, sizeof *e);
    if (soffa_seal_keys_read(dir, &k) != SOFFA_OK) {
        fprintf(stderr, "tk_boxscan: %s/keys cannot be read\n", dir);
        return -1;
    }
    for (int sl = 0; sl < 2; sl++) {
        char why[300];
        if (k.epoch[sl] && soffa_seal_keys_get(&k, k.epoch[sl], m, e->key[e->n], why, sizeof why) == SOFFA_OK)
            e->epoch[e->n++] = k.epoch[sl];
    }
    sodium_memzero(&k, sizeof k);
    return 0;
}

static int
s_check(const char *dir, const soffa_seal_master_t *m)
{
    s_epochs_t ep;
    if (s_epochs(dir, m, &ep) != 0)
        return 1;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi inbox, imsg, kept, keys, meta;
    mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 20);
    if (mdb_env_open(env, dir, MDB_RDONLY, 0600) != 0 || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0
        || mdb_dbi_open(txn, "inbox", 0, &inbox) != 0 || mdb_dbi_open(txn, "imsg", 0, &imsg) != 0
        || mdb_dbi_open(txn, "kept", 0, &kept) != 0 || mdb_dbi_open(txn, "keys", 0, &keys) != 0
        || mdb_dbi_open(txn, "meta", 0, &meta) != 0) {
        fprintf(stderr, "tk_boxscan: %s is not an agent store of format 2\n", dir);
        if (txn)
            mdb_txn_abort(txn);
        mdb_env_close(env);
        return 1;
    }
    MDB_val k, v, ek = {5, "epoch"}, ev;
    uint64_t epoch = mdb_get(txn, meta, &ek, &ev) == 0 && ev.mv_size == 8 ? soffa_bytes_get_u64(ev.mv_data) : 0;
    const uint8_t *epoch_key = NULL;
    for (int i = 0; i < ep.n; i++)
        if (ep.epoch[i] == epoch)
            epoch_key = ep.key[i];
    uint64_t n_in = 0, n_sealed = 0, n_kept = 0, n_keys = 0, dangling = 0, unopenable = 0;
    MDB_cursor *cur;
    mdb_cursor_open(txn, inbox, &cur);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        n_in++;
        if (v.mv_size < S_IN_HDR || !((uint8_t *) v.mv_data)[S_IN_HDR - 1])
            continue;
        n_sealed++;
        uint8_t id[9] = {'I'};
        memcpy(id + 1, k.mv_data, 8);
        MDB_val ik = {9, id}, iv;
        dangling += mdb_get(txn, keys, &ik, &iv) != 0;
    }
    mdb_cursor_close(cur);
    mdb_cursor_open(txn, kept, &cur);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        n_kept++;
        uint8_t id[17] = {'M'};
        memcpy(id + 1, k.mv_data, k.mv_size < 16 ? k.mv_size : 16);
        MDB_val ik = {17, id}, iv;
        dangling += mdb_get(txn, keys, &ik, &iv) != 0;
    }
    mdb_cursor_close(cur);
    mdb_cursor_open(txn, imsg, &cur);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        MDB_val sk = v, sv;
        dangling += v.mv_size != 8 || mdb_get(txn, inbox, &sk, &sv) != 0;
    }
    mdb_cursor_close(cur);
    mdb_cursor_open(txn, keys, &cur);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        n_keys++;
        uint8_t rk[SOFFA_SEAL_KEY];
        unopenable += !epoch_key || v.mv_size != SOFFA_SEAL_WRAPPED
                      || soffa_seal_unwrap(epoch_key, v.mv_data, k.mv_data, k.mv_size, rk) != SOFFA_OK;
        sodium_memzero(rk, sizeof rk);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    printf("inbox %" PRIu64 " sealed %" PRIu64 " kept %" PRIu64 " keys %" PRIu64 " epochs %d dangling %" PRIu64
           " unopenable %" PRIu64 "\n",
           n_in, n_sealed, n_kept, n_keys, ep.n, dangling, unopenable);
    sodium_memzero(&ep, sizeof ep);
    return 0;
}

static uint8_t *
s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t) n : 1);
    *len = buf && n > 0 ? fread(buf, 1, (size_t) n, f) : 0;
    fclose(f);
    return buf;
}

static int
s_find(const char *dir, const soffa_seal_master_t *m, char **ids, int n_ids)
{
    s_epochs_t ep;
    if (s_epochs(dir, m, &ep) != 0)
        return 1;
    uint8_t ad[64][17];
    size_t adlen[64];
    long hits[64] = {0};
    if (n_ids > 64)
        n_ids = 64;
    for (int i = 0; i < n_ids; i++) {
        ad[i][0] = (uint8_t) ids[i][0];
        if (ids[i][0] == 'I') {
            soffa_bytes_put_u64(ad[i] + 1, strtoull(ids[i] + 1, NULL, 10));
            adlen[i] = 9;
        } else if (ids[i][0] == 'M' && soffa_uuid_parse(ids[i] + 1, ad[i] + 1)) {
            adlen[i] = 17;
        } else {
            fprintf(stderr, "tk_boxscan: '%s' is not I<seq> or M<message id>\n", ids[i]);
            sodium_memzero(&ep, sizeof ep);
            return 2;
        }
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "tk_boxscan: cannot read %s\n", dir);
        sodium_memzero(&ep, sizeof ep);
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len = 0;
        uint8_t *buf = s_slurp(path, &len);
        for (size_t off = 0; buf && off + SOFFA_SEAL_WRAPPED <= len; off++)
            for (int e = 0; e < ep.n; e++)
                for (int i = 0; i < n_ids; i++) {
                    uint8_t out[SOFFA_SEAL_KEY];
                    if (soffa_seal_unwrap(ep.key[e], buf + off, ad[i], adlen[i], out) == SOFFA_OK)
                        hits[i]++;
                }
        free(buf);
    }
    closedir(d);
    for (int i = 0; i < n_ids; i++)
        printf("%s %ld\n", ids[i], hits[i]);
    sodium_memzero(&ep, sizeof ep);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "check") && strcmp(argv[3], "find"))) {
        fprintf(stderr, "usage: tk_boxscan DIR MASTER check | tk_boxscan DIR MASTER find ID...\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    soffa_seal_master_t m;
    char why[600];
    if (soffa_seal_master_load(argv[2], NULL, NULL, &m, why, sizeof why) != SOFFA_OK) {
        fprintf(stderr, "tk_boxscan: %s\n", why);
        return 1;
    }
    int rc = !strcmp(argv[3], "check") ? s_check(argv[1], &m) : s_find(argv[1], &m, argv + 4, argc - 4);
    soffa_seal_master_wipe(&m);
    return rc;
}
