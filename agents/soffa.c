/*  soffa: the command line people and scripts use.
 *
 *  Each subcommand is one row of s_commands: a name, a one-line summary and
 *  a function taking its own argv. Every subcommand has --help, prints one
 *  line on stderr and exits non-zero on failure, and offers --json where it
 *  prints data.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_err.h"
#include "soffa_id.h"
#include "soffa_keys.h"
#include "soffa_time.h"

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    const char *usage;
} s_command_t;

static int s_cmd_check_id(int argc, char **argv);
static int s_cmd_keygen(int argc, char **argv);

static const s_command_t s_commands[] = {
    {"check-id", "check a personnummer or samordningsnummer and print its canonical form",
     s_cmd_check_id,
     "usage: soffa check-id [--json] [--today YYYY-MM-DD] ID\n"
     "\n"
     "Checks a Swedish personnummer or samordningsnummer and prints its canonical\n"
     "12-digit form (YYYYMMDDNNNC) and its kind. Accepted forms: YYMMDDNNNC,\n"
     "YYMMDD-NNNC, YYMMDD+NNNC (born 100 or more years ago), YYYYMMDDNNNC,\n"
     "YYYYMMDD-NNNC.\n"
     "\n"
     "  --json               print {\"id\", \"kind\", \"birth_date\"}\n"
     "  --today YYYY-MM-DD   reference date for the century of short forms\n"
     "\n"
     "Exit status: 0 valid, 1 invalid (one line on stderr says why), 2 usage.\n"},
    {"keygen", "make a CurveZMQ key pair: NAME.key (secret, 0600) and NAME.pub", s_cmd_keygen,
     "usage: soffa keygen NAME\n"
     "\n"
     "Writes a new CurveZMQ key pair: NAME.key (public and secret key, mode 0600;\n"
     "keep it on the host that uses it) and NAME.pub (the public key alone, to\n"
     "put in the broker's configuration). Prints the public key. Never\n"
     "overwrites an existing key.\n"},
};

static void
s_usage_all(FILE *out)
{
    fprintf(out, "usage: soffa COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
        fprintf(out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(out, "\nRun 'soffa COMMAND --help' for the options of one command.\n");
}

static int
s_cmd_check_id(int argc, char **argv)
{
    bool json = false;
    const char *id = NULL;
    soffa_date_t today = soffa_date_today();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(s_commands[0].usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--today") == 0 && i + 1 < argc) {
            if (!soffa_date_parse(argv[++i], &today)) {
                fprintf(stderr, "soffa check-id: --today takes a date as YYYY-MM-DD\n");
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0' && !id) {
            fprintf(stderr, "soffa check-id: unknown option '%s' (see soffa check-id --help)\n", argv[i]);
            return 2;
        } else if (!id) {
            id = argv[i];
        } else {
            fprintf(stderr, "soffa check-id: give one number at a time (see soffa check-id --help)\n");
            return 2;
        }
    }
    if (!id) {
        fprintf(stderr, "soffa check-id: no number given (see soffa check-id --help)\n");
        return 2;
    }
    char canon[13];
    soffa_id_kind_t kind;
    soffa_err_t rc = soffa_id_parse(id, &today, canon, &kind);
    if (rc != SOFFA_OK) {
        const char *why = rc == SOFFA_ERR_ID_CHECKSUM ? "bad check digit: the last digit does not match the others"
                        : rc == SOFFA_ERR_ID_DATE     ? "impossible date: no such birth date (or it lies in the future)"
                                                      : "bad format: expected YYMMDD-NNNC, YYMMDD+NNNC, YYYYMMDDNNNC or YYYYMMDD-NNNC";
        /* The number itself is not repeated: it is personal data. */
        fprintf(stderr, "soffa check-id: %s\n", why);
        return 1;
    }
    if (json) {
        soffa_date_t birth;
        char bd[11];
        soffa_id_birth_date(canon, &birth);
        soffa_date_format(birth, bd);
        json_t *o = json_pack("{s:s, s:s, s:s}", "id", canon, "kind", soffa_id_kind_name(kind),
                              "birth_date", bd);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (!s) {
            json_decref(o);
            fprintf(stderr, "soffa check-id: out of memory\n");
            return 1;
        }
        puts(s);
        free(s);
        json_decref(o);
    } else {
        printf("%s %s\n", canon, soffa_id_kind_name(kind));
    }
    return 0;
}

static int
s_cmd_keygen(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(s_commands[1].usage, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "soffa keygen: give one NAME (see soffa keygen --help)\n");
        return 2;
    }
    soffa_err_t rc = soffa_keys_generate(argv[1]);
    if (rc == SOFFA_ERR_EXISTS) {
        fprintf(stderr, "soffa keygen: %s.key or %s.pub already exists; pick another name or remove them\n",
                argv[1], argv[1]);
        return 1;
    }
    if (rc != SOFFA_OK) {
        fprintf(stderr, "soffa keygen: cannot write %s.key: %s\n", argv[1], soffa_strerror(rc));
        return 1;
    }
    char pub[SOFFA_Z85_KEY];
    char path[4096];
    snprintf(path, sizeof path, "%s.pub", argv[1]);
    if (soffa_keys_load_public(path, pub) != SOFFA_OK) {
        fprintf(stderr, "soffa keygen: %s was written but cannot be read back\n", path);
        return 1;
    }
    printf("%s\n", pub);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage_all(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage_all(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
        if (strcmp(argv[1], s_commands[i].name) == 0)
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "soffa: unknown command '%s' (see soffa --help)\n", argv[1]);
    return 2;
}
