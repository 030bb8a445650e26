/*  soffa_cli: what every command of the `soffa` command line shares: the
 *  context (which agent, --json, the command's own arguments), the options
 *  that come before the command, the call to the agent over its control
 *  socket, and the one-line messages for people.
 *
 *  Conventions every command keeps: --help (or -h) prints its usage on
 *  stdout and exits 0; a failure prints one line on stderr, "soffa CMD:
 *  what was wrong", and exits 1 (refused or failed) or 2 (usage); --json
 *  prints data as JSON, one object a line.
 *
 *  The command table and main() are in cli_main.c; each area's commands are
 *  in soffa_cli_<area>.c.
 */
#ifndef SOFFA_CLI_H
#define SOFFA_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SOFFA_CLI_ARGS_MAX 512

typedef struct {
    const char *socket;              /* --socket PATH: the agent's control socket, or NULL */
    const char *net;                 /* --net DIR: a network made by `soffa up`, or NULL */
    const char *agent;               /* --agent NAME: one agent of that network, or NULL */
    bool json;                       /* --json, given before or after the command */
    int argc;                        /* the command and its arguments: argv[0] is the command */
    char **argv;                     /* points into args (NULL-terminated), borrowed from main's argv */
    char *args[SOFFA_CLI_ARGS_MAX];  /* storage for argv: main's argv without --json */
} soffa_cli_t;

/*  What soffa_cli_parse found. */
typedef enum {
    SOFFA_CLI_RUN,       /* a command to run: self->argv[0] */
    SOFFA_CLI_USAGE,     /* no command: print the usage on stderr, exit 2 */
    SOFFA_CLI_HELP,      /* --help, -h or help: print the usage on stdout, exit 0 */
    SOFFA_CLI_VERSION    /* --version */
} soffa_cli_parse_t;

/*  Reads the options before the command (--socket, --net, --agent, --json)
 *  into *self, then the command and its arguments, where --json may appear
 *  too (it is taken out). At most SOFFA_CLI_ARGS_MAX - 1 arguments are
 *  kept. */
soffa_cli_parse_t soffa_cli_parse(soffa_cli_t *self, int argc, char **argv);

/*  Prints "soffa CMD: <message>" on stderr; returns code (the exit status). */
int soffa_cli_die(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*  True when argv[1..] holds --help or -h. */
bool soffa_cli_want_help(int argc, char **argv);

/*  Sends one request to the agent (takes ownership of req) and waits up to
 *  timeout_ms for its answer. The agent is self->socket, else the one
 *  named by --net and --agent, else $SOFFA_SOCKET. Returns the answer (new
 *  reference; the caller decrefs it), or NULL with one line already
 *  printed on stderr (no agent named, permission denied, nobody listening,
 *  no answer). */
json_t *soffa_cli_call(const soffa_cli_t *self, const char *cmd, json_t *req, int timeout_ms);

/*  Prints an {"ok":false, "code", "error"} answer as "soffa CMD: refused:
 *  error [CODE]" on stderr; returns 1. */
int soffa_cli_refused(const char *cmd, json_t *answer);

/*  Prints one stored record: its JSON (--json), or its one-line form with
 *  the hook's state when the hook has not handled it. */
void soffa_cli_print_record(const soffa_cli_t *self, json_t *rec);

/*  Prints j on stdout as one line of JSON (flags as for json_dumps). */
void soffa_cli_print_json(const json_t *j, size_t flags);

#endif
