/*  soffa_cli_keys: key pairs and checkpoint keys on the command line (see
 *  soffa_cli_keys.h).
 */
#include "soffa_cli_keys.h"

#include <stdio.h>
#include <string.h>

#include "soffa_keys.h"

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
