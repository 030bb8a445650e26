/*  soffa_cli_keys: key pairs and checkpoint keys on the command line (see
 *  soffa_cli_keys.h).
 */
#include "soffa_cli_keys.h"

#include <stdio.h>
#include <string.h>

#include "soffa_keys.h"
#include "soffa_seal.h"

bool
soffa_cli_keys_read_hex(const char *text_or_file, uint8_t out[32])
{
    char buf[200];
    const char *t = text_or_file;
    if (strlen(t) != 64) {
        FILE *f = fopen(t, "r");
        if (!f || !fgets(buf, sizeof buf, f)) {
            if (f)
                fclose(f);
            return false;
        }
        fclose(f);
        buf[strcspn(buf, "\r\n")] = '\0';
        t = buf;
    }
    if (strlen(t) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(t + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t) v;
    }
    return true;
}

int
soffa_cli_keys_keygen(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv)) {
        puts("usage: soffa keygen NAME\n\n"
             "Writes a new CurveZMQ key pair: NAME.key (public and secret key, mode 0600;\n"
             "keep it on the host that uses it) and NAME.pub (the public key alone, to put\n"
             "in the broker's configuration). Prints the public key. Never overwrites.");
        return 0;
    }
    if (c->argc != 2 || c->argv[1][0] == '-')
        return soffa_cli_die("keygen", 2, "give one NAME (see soffa keygen --help)");
    soffa_err_t rc = soffa_keys_generate(c->argv[1]);
    if (rc == SOFFA_ERR_EXISTS)
        return soffa_cli_die("keygen", 1, "%s.key or %s.pub already exists; pick another name or remove them", c->argv[1], c->argv[1]);
    if (rc != SOFFA_OK)
        return soffa_cli_die("keygen", 1, "cannot write %s.key: %s", c->argv[1], soffa_strerror(rc));
    char pub[SOFFA_Z85_KEY], path[4096];
    snprintf(path, sizeof path, "%s.pub", c->argv[1]);
    if (soffa_keys_load_public(path, pub) != SOFFA_OK)
        return soffa_cli_die("keygen", 1, "%s was written but cannot be read back", path);
    printf("%s\n", pub);
    return 0;
}

int
soffa_cli_keys_masterkey(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv) || c->argc != 3 || strcmp(c->argv[1], "new") != 0) {
        puts("usage: soffa masterkey new FILE\n\n"
             "Makes a master key: 32 random bytes as 64 hex digits in FILE (created, mode\n"
             "0600; an existing file is never overwritten). The broker ([keys] master_key)\n"
             "and each agent ([agent] master_key) seal everything they store under keys it\n"
             "wraps. Keep FILE outside the data directory, never in its backups, and a copy\n"
             "of it somewhere safe: a store, and every backup of it, can be read only with\n"
             "the master key it was made under. Under systemd it can be a credential\n"
             "instead: systemd-creds encrypt FILE FILE.cred, LoadCredentialEncrypted=, and\n"
             "master_key = credential:NAME.");
        return soffa_cli_want_help(c->argc, c->argv) ? 0 : 2;
    }
    soffa_err_t rc = soffa_seal_master_new(c->argv[2]);
    if (rc == SOFFA_ERR_EXISTS)
        return soffa_cli_die("masterkey", 1, "%s already exists; a master key is never overwritten (give a new name)",
                             c->argv[2]);
    if (rc != SOFFA_OK)
        return soffa_cli_die("masterkey", 1, "cannot write %s: %s", c->argv[2], soffa_strerror(rc));
    soffa_seal_master_t m;
    char why[600];
    if (soffa_seal_master_load(c->argv[2], NULL, NULL, &m, why, sizeof why) != SOFFA_OK)
        return soffa_cli_die("masterkey", 1, "%s", why);
    char id[2 * SOFFA_SEAL_ID + 1];
    soffa_seal_master_id_hex(&m, id);
    soffa_seal_master_wipe(&m);
    printf("master key %s written to %s (0600); keep a copy apart from the data and its backups\n", id, c->argv[2]);
    return 0;
}
