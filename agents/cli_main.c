/*  soffa: the command line people and scripts use; main() and the command
 *  table. Each area's commands are in agents/soffa_cli_<area>.c, and what
 *  they share (the context, the call to the agent) in soffa_cli.c.
 *
 *  Most commands talk to the agent on the same host over its control socket
 *  (--socket PATH, or --net DIR --agent NAME for a network made by `soffa
 *  up`, or $SOFFA_SOCKET). Everything handed to the agent is durable in its
 *  outbox before the command returns. Every command has --help, prints one
 *  line on stderr and exits non-zero on failure (1: refused or failed,
 *  2: usage), and takes --json where it prints data.
 */
#include <stdio.h>
#include <string.h>

#include "soffa_cli.h"
#include "soffa_cli_audit.h"
#include "soffa_cli_backup.h"
#include "soffa_cli_id.h"
#include "soffa_cli_inbox.h"
#include "soffa_cli_keys.h"
#include "soffa_cli_msg.h"
#include "soffa_cli_net.h"
#include "soffa_cli_status.h"
#include "soffa_import.h"
#include "soffa_users.h"
#include "soffa_version.h"

/* ---- Commands that live in modules of their own ---------------------------------------------- */

/* The school's data: import, sync, review (agents/soffa_import.c). */

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

/* The accounts of the site's web inbox (agents/soffa_users.c). */
static int
s_cmd_user(soffa_cli_t *c)
{
    return soffa_users_command(c->argc, c->argv, c->net, c->agent);
}

/* ---- Dispatch -------------------------------------------------------------------------- */

typedef struct {
    const char *name;                /* the command's word */
    int (*run)(soffa_cli_t *c);      /* runs it (c->argv[0] is the word); returns the exit status */
    const char *summary;             /* one line for `soffa --help` */
} s_command_t;

/* Every command but the messages (soffa_cli_msg), in the order --help lists them. */

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
    {"replay", soffa_cli_audit_replay, "auditors: replay the history"},
    {"history", soffa_cli_audit_history, "auditors: one young person's timeline"},
    {"access-log", soffa_cli_audit_access_log, "auditors: who read what, when"},
    {"stats", soffa_cli_audit_stats, "auditors: a municipality's KAA key figures"},
    {"erase", soffa_cli_audit_erase, "a data-protection officer: erase one young person's records"},
    {"verify", soffa_cli_audit_verify, "check the hash chain of a store, offline"},
    {"backup", soffa_cli_backup_cmd, "on the broker's host: a verified hot copy of its store"},
    {"up", soffa_cli_net_up, "start a local network (broker + one agent of each role)"},
    {"down", soffa_cli_net_down, "stop a local network"},
    {"keygen", soffa_cli_keys_keygen, "make a CurveZMQ key pair"},
    {"masterkey", soffa_cli_keys_masterkey, "make a master key (soffa masterkey new FILE)"},
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
