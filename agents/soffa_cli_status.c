/*  soffa_cli_status: the agent's and the broker's health for people and
 *  for monitoring (see soffa_cli_status.h).
 */
#include "soffa_cli_status.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soffa_policy.h"
#include "soffa_time.h"

/* The broker's own mailboxes (the checkpoints, the access log, the
 * journals) are written by the broker or kept for auditors to replay: never
 * subscribed to by an agent, so never "waiting for a reader". Only inboxes
 * are (soffa_policy_is_inbox). */
static bool
s_internal_mailbox(const char *mb)
{
    return mb && !soffa_policy_is_inbox(mb);
}

/* Health as Nagios reads it: the exit status of `soffa status`. */
enum { S_HEALTH_OK = 0, S_HEALTH_WARNING = 1, S_HEALTH_CRITICAL = 2 };

/* Adds one problem to the list and raises the level. */
static void
s_problem(json_t *problems, int *level, int lvl, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
s_problem(json_t *problems, int *level, int lvl, const char *fmt, ...)
{
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_array_append_new(problems, json_string(text));
    if (lvl > *level)
        *level = lvl;
}

/* Checks the agent's answer a (and, for an outbox with messages, a second
 * one sample_ms later); lists each problem found and returns the health
 * level. The broker's own mailboxes get "no_reader": false in a. */
static int
s_health(const soffa_cli_t *c, json_t *a, int sample_ms, json_t *problems)
{
    int level = S_HEALTH_OK;
    bool connected = json_is_true(json_object_get(a, "connected"));
    json_t *b = json_object_get(a, "broker");
    if (!connected)
        s_problem(problems, &level, S_HEALTH_CRITICAL, "not connected to the broker at %s",
                  json_string_value(json_object_get(a, "broker_endpoint")));
    else if (!b)
        s_problem(problems, &level, S_HEALTH_CRITICAL, "the broker did not answer the status request");
    json_t *closed = json_object_get(a, "session_closed");
    if (closed)
        s_problem(problems, &level, S_HEALTH_WARNING,
                  "the broker closed this agent's session at %s (another connection used its key?): %s",
                  json_string_value(json_object_get(closed, "at")), json_string_value(json_object_get(closed, "why")));
    json_t *od = json_object_get(a, "overdue");
    long long os = (long long) json_integer_value(json_object_get(od, "signals")),
              orf = (long long) json_integer_value(json_object_get(od, "referrals"));
    if (os || orf)
        s_problem(problems, &level, S_HEALTH_WARNING, "%lld signal(s) and %lld referral(s) sent by this agent are overdue", os,
                  orf);
    long long parked = (long long) json_integer_value(json_object_get(a, "inbox_failed"));
    if (parked)
        s_problem(problems, &level, S_HEALTH_WARNING, "%lld message(s) parked after their hook failed (soffa inbox --failed)",
                  parked);
    long long out1 = (long long) json_integer_value(json_object_get(a, "outbox"));
    if (out1 > 0 && connected && sample_ms > 0) {
        /* A connected agent empties its outbox within milliseconds; one
         * that keeps most of it (the broker refuses with STORE_FULL, say,
         * and takes the odd message when LMDB frees a page) needs a person. */
        usleep((useconds_t) sample_ms * 1000);
        json_t *a2 = soffa_cli_call(c, "status", json_pack("{s:s}", "cmd", "status"), 8000);
        if (!a2) {
            s_problem(problems, &level, S_HEALTH_CRITICAL, "the agent stopped answering");
        } else {
            long long out2 = (long long) json_integer_value(json_object_get(a2, "outbox"));
            if (out2 > out1 / 2)
                s_problem(problems, &level, S_HEALTH_WARNING, "the outbox does not drain: %lld message(s), %lld %d ms later",
                          out1, out2, sample_ms);
            json_decref(a2);
        }
    }
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(b, "mailboxes"), i, m) {
        const char *name = json_string_value(json_object_get(m, "mailbox"));
        if (s_internal_mailbox(name))
            json_object_set_new(m, "no_reader", json_false());
        if (json_is_true(json_object_get(m, "no_reader")))
            s_problem(problems, &level, S_HEALTH_WARNING, "%s: %lld message(s) wait and no agent reads it", name,
                      (long long) json_integer_value(json_object_get(m, "lag")));
        if (json_integer_value(json_object_get(m, "overdue")))
            s_problem(problems, &level, S_HEALTH_WARNING, "%s: %lld receipt(s) overdue", name,
                      (long long) json_integer_value(json_object_get(m, "overdue")));
    }
    return level;
}

/* The status for people: the agent, the broker's mailboxes, the health line. */
static void
s_print_status(json_t *a, int level, json_t *problems)
{
    bool connected = json_is_true(json_object_get(a, "connected"));
    json_t *b = json_object_get(a, "broker");
    json_t *od = json_object_get(a, "overdue");
    long long os = (long long) json_integer_value(json_object_get(od, "signals")),
              orf = (long long) json_integer_value(json_object_get(od, "referrals"));
    printf("agent %s (%s): %s %s\n", json_string_value(json_object_get(a, "agent")),
           json_string_value(json_object_get(a, "role")), connected ? "connected to" : "NOT connected to",
           json_string_value(json_object_get(a, "broker_endpoint")));
    printf("  outbox %lld waiting, inbox %lld (%lld for the hook, %lld failed), %lld refused since start\n",
           (long long) json_integer_value(json_object_get(a, "outbox")),
           (long long) json_integer_value(json_object_get(a, "inbox")), (long long) json_integer_value(json_object_get(a, "inbox_new")),
           (long long) json_integer_value(json_object_get(a, "inbox_failed")), (long long) json_integer_value(json_object_get(a, "refused")));
    const char *last = json_string_value(json_object_get(a, "last_delivery"));
    printf("  last delivery %s\n", last && *last ? last : "-");
    if (os || orf)
        printf("  OVERDUE: %lld signal(s) not acknowledged, %lld referral(s) not received in time (soffa inbox lists them)\n",
               os, orf);
    size_t i;
    json_t *m;
    if (b) {
        printf("broker: head seq %lld, %d session(s)\n", (long long) json_integer_value(json_object_get(b, "head_seq")),
               (int) json_integer_value(json_object_get(b, "sessions")));
        int64_t now = soffa_now_us();
        json_array_foreach(json_object_get(b, "mailboxes"), i, m) {
            int64_t oldest = json_integer_value(json_object_get(m, "oldest_undelivered_us"));
            char wait[64] = "";
            if (oldest && !s_internal_mailbox(json_string_value(json_object_get(m, "mailbox"))))
                snprintf(wait, sizeof wait, "  oldest waiting %llds", (long long) ((now - oldest) / 1000000));
            char odue[48] = "";
            if (json_integer_value(json_object_get(m, "overdue")))
                snprintf(odue, sizeof odue, "  OVERDUE %lld", (long long) json_integer_value(json_object_get(m, "overdue")));
            printf("  %-24s depth %-6lld readers %d  lag %-5lld%s%s%s\n", json_string_value(json_object_get(m, "mailbox")),
                   (long long) json_integer_value(json_object_get(m, "depth")), (int) json_integer_value(json_object_get(m, "consumers")),
                   (long long) json_integer_value(json_object_get(m, "lag")), wait,
                   json_is_true(json_object_get(m, "no_reader")) ? "  NO READER" : "", odue);
        }
    }
    if (level == S_HEALTH_OK) {
        puts("health: ok");
    } else {
        printf("health: %s:", level == S_HEALTH_WARNING ? "WARNING" : "CRITICAL");
        json_array_foreach(problems, i, m) printf("%s %s", i ? ";" : "", json_string_value(m));
        putchar('\n');
    }
}

int
soffa_cli_status_cmd(soffa_cli_t *c)
{
    int sample_ms = 1000;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h")) {
            puts("usage: soffa status [--json] [--sample MS]\n\n"
                 "The agent's state (connected or not, outbox depth, inbox, failed hooks, last\n"
                 "delivery) and the broker's view of the mailboxes this agent may see: depth,\n"
                 "readers, lag, age of the oldest undelivered message; mailboxes with waiting\n"
                 "messages and no reader are flagged (never the broker's own: audit/checkpoint,\n"
                 "audit/access/*, kaa-journal/*, school-journal/*).\n"
                 "\n"
                 "The last line (\"health\" in JSON) sums it up, and so does the exit status,\n"
                 "as Nagios-style checks read it:\n"
                 "  0  all is well\n"
                 "  1  a warning: receipts overdue, a mailbox with messages and no reader, an\n"
                 "     outbox that does not drain (messages wait, and --sample MS later,\n"
                 "     default 1000, not even half of them have gone), or messages parked\n"
                 "     after their hook failed\n"
                 "  2  critical: the agent does not answer, or it is not connected to the\n"
                 "     broker, or the broker does not answer its status request");
            return 0;
        } else if (!strcmp(c->argv[i], "--sample") && i + 1 < c->argc) {
            char *end;
            long v = strtol(c->argv[++i], &end, 10);
            if (*end || v < 0 || v > 600000)
                return soffa_cli_die("status", 2, "--sample takes milliseconds, 0..600000");
            sample_ms = (int) v;
        } else {
            return soffa_cli_die("status", 2, "unknown argument '%s' (see soffa status --help)", c->argv[i]);
        }
    }
    json_t *a = soffa_cli_call(c, "status", json_pack("{s:s, s:b}", "cmd", "status", "broker", 1), 8000);
    if (!a)
        return S_HEALTH_CRITICAL;   /* soffa_cli_call said why on stderr */
    json_t *problems = json_array();
    int level = s_health(c, a, sample_ms, problems);
    if (c->json) {
        static const char *const names[] = {"ok", "warning", "critical"};
        json_object_set_new(a, "health", json_pack("{s:s, s:i, s:o}", "state", names[level], "exit", level, "problems", problems));
        soffa_cli_print_json(a, JSON_COMPACT);
        json_decref(a);
        return level;
    }
    s_print_status(a, level, problems);
    json_decref(problems);
    json_decref(a);
    return level;
}
