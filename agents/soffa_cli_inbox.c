/*  soffa_cli_inbox: reading this agent's inbox from the command line (see
 *  soffa_cli_inbox.h).
 */
#include "soffa_cli_inbox.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_int(int sig)
{
    (void) sig;
    s_interrupted = 1;
}

int
soffa_cli_inbox_list(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv)) {
        puts("usage: soffa inbox [--failed] [--after SEQ] [--limit N] [--json]\n\n"
             "Lists the messages delivered to this agent, oldest first (one JSON object a\n"
             "line with --json). --failed lists only those whose hook failed too often.");
        return 0;
    }
    json_t *req = json_pack("{s:s}", "cmd", "inbox");
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--failed"))
            json_object_set_new(req, "failed", json_true());
        else if (!strcmp(c->argv[i], "--after") && i + 1 < c->argc)
            json_object_set_new(req, "after", json_integer(atoll(c->argv[++i])));
        else if (!strcmp(c->argv[i], "--limit") && i + 1 < c->argc)
            json_object_set_new(req, "limit", json_integer(atoll(c->argv[++i])));
        else {
            json_decref(req);
            return soffa_cli_die("inbox", 2, "unknown argument '%s' (see soffa inbox --help)", c->argv[i]);
        }
    }
    json_t *a = soffa_cli_call(c, "inbox", req, 5000);
    if (!a)
        return 1;
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(a, "messages"), i, rec) soffa_cli_print_record(c, rec);
    if (!c->json && json_array_size(json_object_get(a, "messages")) == 0)
        puts("(no messages)");
    /* What this agent sent that is still waiting past its deadline. */
    json_array_foreach(json_object_get(a, "overdue"), i, rec) {
        if (c->json) {
            json_t *o = json_pack("{s:O}", "overdue", rec);
            char *s = json_dumps(o, JSON_COMPACT);
            puts(s);
            free(s);
            json_decref(o);
        } else {
            printf("OVERDUE  %s %s sent %s: no %s yet (%llds past the deadline)\n",
                   json_string_value(json_object_get(rec, "type")), json_string_value(json_object_get(rec, "message_id")),
                   json_string_value(json_object_get(rec, "sent_at")), json_string_value(json_object_get(rec, "waiting_for")),
                   (long long) json_integer_value(json_object_get(rec, "overdue_s")));
        }
    }
    json_decref(a);
    return 0;
}

int
soffa_cli_inbox_show(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa show ID|SEQ [--json]\n\nShows one delivered message in full, or the outcome of one sent message.");
        return c->argc == 2 ? 0 : 2;
    }
    json_t *a = soffa_cli_call(c, "show", json_pack("{s:s, s:s}", "cmd", "show", "id", c->argv[1]), 5000);
    if (!a)
        return 1;
    int rc = 0;
    if (!json_is_true(json_object_get(a, "ok")))
        rc = soffa_cli_refused("show", a);
    else {
        json_t *what = json_object_get(a, "record") ? json_object_get(a, "record") : a;
        char *s = json_dumps(what, c->json ? JSON_COMPACT : JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
    }
    json_decref(a);
    return rc;
}

int
soffa_cli_inbox_retry(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa retry SEQ\n\nRuns the hook again for a parked (failed) message.");
        return c->argc == 2 ? 0 : 2;
    }
    json_t *a = soffa_cli_call(c, "retry", json_pack("{s:s, s:I}", "cmd", "retry", "seq", (json_int_t) atoll(c->argv[1])), 5000);
    if (!a)
        return 1;
    int rc = json_is_true(json_object_get(a, "ok")) ? 0 : soffa_cli_refused("retry", a);
    if (!rc)
        printf("seq %s will be handed to the hook again\n", c->argv[1]);
    json_decref(a);
    return rc;
}

int
soffa_cli_inbox_watch(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv)) {
        puts("usage: soffa watch [--all] [--json]\n\n"
             "Prints each message as it arrives at this agent (NDJSON with --json) until\n"
             "interrupted. --all prints what is already there first.");
        return 0;
    }
    bool all = c->argc > 1 && !strcmp(c->argv[1], "--all");
    uint64_t after = 0;
    if (!all) {
        json_t *a = soffa_cli_call(c, "watch", json_pack("{s:s, s:i}", "cmd", "inbox", "limit", 1000000), 5000);
        if (!a)
            return 1;
        size_t i;
        json_t *rec;
        json_array_foreach(json_object_get(a, "messages"), i, rec) after = (uint64_t) json_integer_value(json_object_get(rec, "seq"));
        json_decref(a);
    }
    signal(SIGINT, s_on_int);
    signal(SIGTERM, s_on_int);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (!s_interrupted) {
        json_t *a = soffa_cli_call(c, "watch", json_pack("{s:s, s:I}", "cmd", "inbox", "after", (json_int_t) after), 5000);
        if (!a)
            return 1;
        size_t i;
        json_t *rec;
        json_array_foreach(json_object_get(a, "messages"), i, rec) {
            soffa_cli_print_record(c, rec);
            after = (uint64_t) json_integer_value(json_object_get(rec, "seq"));
        }
        json_decref(a);
        usleep(200 * 1000);
    }
    return 0;
}
