/*  soffa: the command line people and scripts use.
 *
 *  Most commands talk to the agent on the same host over its control socket
 *  (--socket PATH, or --net DIR --agent NAME for a network made by `soffa
 *  up`, or $SOFFA_SOCKET). Everything handed to the agent is durable in its
 *  outbox before the command returns. Every command has --help, prints one
 *  line on stderr and exits non-zero on failure (1: refused or failed,
 *  2: usage), and takes --json where it prints data.
 */
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
#include <zmq.h>

#include "soffa_csv.h"
#include "soffa_err.h"
#include "soffa_id.h"
#include "soffa_keys.h"
#include "soffa_msg.h"
#include "soffa_record.h"
#include "soffa_stats.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_users.h"
#include "soffa_uuid.h"
#include "soffa_webdemo.h"

/* ---- Options shared by every command ---------------------------------------------- */

typedef struct {
    const char *socket;       /* control socket of the agent */
    const char *net;          /* --net DIR */
    const char *agent;        /* --agent NAME */
    bool json;
    int argc;                 /* what remains for the command */
    char **argv;
} s_ctx_t;

static volatile sig_atomic_t s_interrupted = 0;

static void
s_on_int(int sig)
{
    (void) sig;
    s_interrupted = 1;
}

static int
s_die(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
s_die(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "soffa %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

static bool
s_want_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

/* ---- Talking to the agent ---------------------------------------------------------------- */

static const char *
s_socket_path(s_ctx_t *c, char *buf, size_t len)
{
    if (c->socket)
        return c->socket;
    if (c->net && c->agent) {
        snprintf(buf, len, "%s/%s/data/control.sock", c->net, c->agent);
        return buf;
    }
    return getenv("SOFFA_SOCKET");
}

/* Sends one request; returns the answer (new reference) or NULL with a
 * message already printed. */
static json_t *
s_call(s_ctx_t *c, const char *cmd, json_t *req, int timeout_ms)
{
    char buf[1024];
    const char *path = s_socket_path(c, buf, sizeof buf);
    if (!path) {
        json_decref(req);
        s_die(cmd, 2, "which agent? give --socket PATH, or --net DIR --agent NAME, or set SOFFA_SOCKET");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0 && (errno == EACCES || errno == EPERM)) {
        json_decref(req);
        s_die(cmd, 1, "permission denied on %s: only the agent's own user may use it (run soffa as that user)", path);
        return NULL;
    }
    if (stat(path, &st) != 0) {
        json_decref(req);
        s_die(cmd, 1, "no agent listens at %s (is it running? 'soffa up' starts a local network)", path);
        return NULL;
    }
    if (access(path, R_OK | W_OK) != 0) {
        json_decref(req);
        s_die(cmd, 1, "permission denied on %s: it belongs to %s user (run soffa as the agent's user)", path,
              st.st_uid == getuid() ? "this" : "another");
        return NULL;
    }
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    char ep[1100];
    snprintf(ep, sizeof ep, "ipc://%s", path);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *answer = NULL;
    if (zmq_connect(s, ep) == 0 && text && zmq_send(s, text, strlen(text), 0) >= 0) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, timeout_ms) == 1) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) >= 0)
                answer = json_loadb(zmq_msg_data(&m), zmq_msg_size(&m), 0, NULL);
            zmq_msg_close(&m);
        }
    }
    free(text);
    zmq_close(s);
    zmq_ctx_term(ctx);
    if (!answer)
        s_die(cmd, 1, "the agent at %s did not answer (is it running?)", path);
    return answer;
}

/* Prints an {"ok":false} answer as one line; returns 1. */
static int
s_refused(const char *cmd, json_t *a)
{
    const char *code = json_string_value(json_object_get(a, "code"));
    const char *err = json_string_value(json_object_get(a, "error"));
    fprintf(stderr, "soffa %s: refused: %s [%s]\n", cmd, err ? err : "unknown error", code ? code : "?");
    return 1;
}

/* ---- Building messages from flags -------------------------------------------------------- */

/* Default legal basis of each type (the broker's policy table decides). */
static const char *
s_default_basis(soffa_msg_type_t t)
{
    switch (t) {
    case SOFFA_MT_ENROLMENT_CHANGED: return "SL_15_15_ENROLMENT";
    case SOFFA_MT_ABSENCE_REPORTED: return "SL_15_15_ABSENCE";
    case SOFFA_MT_AT_RISK_NOTICE:
    case SOFFA_MT_CONSENT_RECORDED:
    case SOFFA_MT_CONSENT_WITHDRAWN:
    case SOFFA_MT_REFERRAL_SENT:
    case SOFFA_MT_REFERRAL_STATUS_CHANGED:
    case SOFFA_MT_REFERRAL_WITHDRAWN: return "CONSENT_OSL_12_2";
    case SOFFA_MT_CONCERN_REPORT_FILED: return "SOL_REPORT_OF_CONCERN";
    case SOFFA_MT_CONCERN_REPORT_FEEDBACK: return "SOL_REPORTER_FEEDBACK";
    default: return "SL_29_9_INTERNAL";
    }
}

/* The id a message of this type introduces (made fresh unless given). */
static const char *
s_own_id(soffa_msg_type_t t)
{
    switch (t) {
    case SOFFA_MT_REFERRAL_SENT: return "referral_id";
    case SOFFA_MT_CONCERN_REPORT_FILED: return "report_id";
    case SOFFA_MT_CONSENT_RECORDED: return "consent_id";
    case SOFFA_MT_KAA_CASE_OPENED: return "case_id";
    case SOFFA_MT_PLAN_AGREED: return "plan_id";
    case SOFFA_MT_MEASURE_STARTED: return "measure_id";
    default: return NULL;
    }
}

/* Friendly names: `soffa signal absence ...` is `soffa send absence_reported ...`. */
typedef struct {
    const char *w1, *w2;
    soffa_msg_type_t type;
    const char *presets;      /* "field=value;field=value" */
    const char *help;
} s_alias_t;

static const s_alias_t s_aliases[] = {
    {"signal", "enrolment", SOFFA_MT_ENROLMENT_CHANGED, NULL, "school: a pupil started or left (--event STARTED|LEFT)"},
    {"signal", "absence", SOFFA_MT_ABSENCE_REPORTED, NULL, "school: significant unexcused absence of a pupil under 20"},
    {"signal", "at-risk", SOFFA_MT_AT_RISK_NOTICE, NULL, "school: at-risk notice, resting on a consent (--consent ID)"},
    {"ack", NULL, SOFFA_MT_SIGNAL_ACKNOWLEDGED, "result=RECEIVED", "KAA: acknowledge a signal (--re ID|SEQ)"},
    {"case", "open", SOFFA_MT_KAA_CASE_OPENED, "registration_reason=DROPOUT_NATIONAL", "KAA: open a case"},
    {"case", "contact", SOFFA_MT_CONTACT_ATTEMPTED, NULL, "KAA: record a contact attempt"},
    {"case", "occupation", SOFFA_MT_OCCUPATION_RECORDED, NULL, "KAA: record the youth's occupation"},
    {"case", "plan", SOFFA_MT_PLAN_AGREED, NULL, "KAA: record an agreed plan"},
    {"case", "measure-start", SOFFA_MT_MEASURE_STARTED, NULL, "KAA: a measure started"},
    {"case", "measure-end", SOFFA_MT_MEASURE_ENDED, NULL, "KAA: a measure ended"},
    {"case", "close", SOFFA_MT_KAA_CASE_CLOSED, NULL, "KAA: close a case (--reason ...)"},
    {"consent", "record", SOFFA_MT_CONSENT_RECORDED, "granted_by=YOUTH;form=WRITTEN", "KAA or school: record the youth's consent"},
    {"consent", "withdraw", SOFFA_MT_CONSENT_WITHDRAWN, "by=YOUTH", "KAA or school: the youth withdrew a consent"},
    {"refer", "af", SOFFA_MT_REFERRAL_SENT, "target_kind=ARBETSFORMEDLINGEN;purpose=AF_YOUTH_PROGRAMME", "KAA: refer to Arbetsförmedlingen (--consent ID)"},
    {"refer", "social", SOFFA_MT_REFERRAL_SENT, "target_kind=SOCIAL_SERVICES;purpose=SOC_SUPPORT_CONTACT", "KAA: refer to social services (--consent ID)"},
    {"referral", "status", SOFFA_MT_REFERRAL_STATUS_CHANGED, NULL, "social/AF: answer a referral (--re SEQ --status ...)"},
    {"referral", "withdraw", SOFFA_MT_REFERRAL_WITHDRAWN, "reason=CASE_CLOSED", "KAA: withdraw a referral"},
    {"concern", "report", SOFFA_MT_CONCERN_REPORT_FILED, "reporter_role=SCHOOL_STAFF", "school or KAA: report of concern for a child under 18"},
    {"concern", "feedback", SOFFA_MT_CONCERN_REPORT_FEEDBACK, NULL, "social: feedback to the reporter (--re SEQ --feedback ...)"},
    {"identity", "change", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, "source=NAVET", "KAA: a youth's identity number changed"},
};

/* Builds the message JSON for `type` from flags (argv after the type
 * words). Returns the request for the agent, or NULL (message printed). */
static json_t *
s_build(const char *cmd, soffa_msg_type_t type, const char *presets, int argc, char **argv, int *wait_ms)
{
    json_t *m = json_object();
    json_t *pl = json_object();
    json_t *subject = json_object();
    json_t *req = json_pack("{s:s}", "cmd", "send");
    const char *tname = soffa_msg_type_name(type);
    char why[300];
    bool have_basis = false;
    *wait_ms = 5000;
    if (presets) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", presets);
        char *save = NULL;
        for (char *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
            char *eq = strchr(kv, '=');
            *eq = '\0';
            soffa_msg_json_set(pl, tname, kv, eq + 1, why, sizeof why);
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            s_die(cmd, 2, "'%s' needs a value (flags go as --name VALUE; see --help)", a);
            goto fail;
        }
        const char *v = argv[++i];
        char name[128];
        snprintf(name, sizeof name, "%s", a + 2);
        for (char *p = name; *p; p++)
            if (*p == '-')
                *p = '_';
        if (!strcmp(name, "pupil") || !strcmp(name, "youth") || !strcmp(name, "child")) {
            char canon[13];
            soffa_id_kind_t kind;
            soffa_err_t rc = soffa_id_parse(v, NULL, canon, &kind);
            if (rc != SOFFA_OK) {
                s_die(cmd, 1, "--%s: %s", name, soffa_strerror(rc));
                goto fail;
            }
            json_object_set_new(subject, "id", json_string(canon));
            json_object_set_new(subject, "id_type", json_string(kind == SOFFA_ID_SAMNR ? "SAMNR" : "PNR"));
        } else if (!strcmp(name, "reserve_id")) {
            json_object_set_new(subject, "id", json_string(v));
            json_object_set_new(subject, "id_type", json_string("LOCAL_RESERVE"));
        } else if (!strcmp(name, "hemkommun")) {
            if (soffa_kommun_check(v) != SOFFA_OK) {
                s_die(cmd, 1, "--hemkommun: '%s' is not one of the 290 municipality codes", v);
                goto fail;
            }
            json_object_set_new(subject, "hemkommun", json_string(v));
        } else if (!strcmp(name, "protected")) {
            json_object_set_new(subject, "protected_identity", json_boolean(!strcmp(v, "yes") || !strcmp(v, "true")));
        } else if (!strcmp(name, "re")) {
            json_object_set_new(req, "re", json_string(v));
        } else if (!strcmp(name, "wait")) {
            *wait_ms = atoi(v);
        } else if (!strcmp(name, "occurred")) {
            soffa_date_t d;
            if (!soffa_date_parse(v, &d)) {
                s_die(cmd, 1, "--occurred takes a date YYYY-MM-DD");
                goto fail;
            }
            json_object_set_new(m, "occurred_at_us", json_integer(soffa_date_to_days(d) * 86400000000LL + 43200000000LL));
        } else if (!strcmp(name, "actor")) {
            json_object_set_new(m, "sender", json_pack("{s:s}", "actor_ref", v));
        } else if (!strcmp(name, "consent") || !strcmp(name, "correlation") || !strcmp(name, "causation")
                   || !strcmp(name, "legal_basis")) {
            char field[160];
            snprintf(field, sizeof field, "%s%s", name, strcmp(name, "legal_basis") ? "_id" : "");
            if (soffa_msg_json_set(m, "message", field, v, why, sizeof why) != SOFFA_OK) {
                s_die(cmd, 1, "%s", why);
                goto fail;
            }
            have_basis |= !strcmp(name, "legal_basis");
        } else if (soffa_msg_json_set(pl, tname, name, v, why, sizeof why) != SOFFA_OK) {
            s_die(cmd, 1, "%s", why);
            goto fail;
        }
    }
    if (json_object_size(subject))
        json_object_set(m, "subject", subject);
    if (!have_basis)
        json_object_set_new(m, "legal_basis", json_string(s_default_basis(type)));
    const char *own = s_own_id(type);
    if (own && !json_object_get(pl, own))
        soffa_msg_json_set(pl, tname, own, "new", why, sizeof why);
    if (type == SOFFA_MT_CONSENT_WITHDRAWN) {
        /* `--consent ID` names the consent withdrawn; it happened now unless told. */
        if (!json_object_get(pl, "consent_id") && json_object_get(m, "consent_id"))
            json_object_set(pl, "consent_id", json_object_get(m, "consent_id"));
        if (!json_object_get(pl, "withdrawn_at_us"))
            json_object_set_new(pl, "withdrawn_at_us", json_integer(soffa_now_us()));
    }
    if (type == SOFFA_MT_CONSENT_RECORDED || type == SOFFA_MT_CONSENT_WITHDRAWN)
        json_object_set(m, "consent_id", json_object_get(pl, "consent_id"));
    json_object_set(m, tname, pl);
    json_object_set_new(req, "message", m);
    json_object_set_new(req, "wait_ms", json_integer(*wait_ms));
    json_decref(pl);
    json_decref(subject);
    return req;
fail:
    json_decref(m);
    json_decref(pl);
    json_decref(subject);
    json_decref(req);
    return NULL;
}

static int
s_send_and_report(s_ctx_t *c, const char *cmd, json_t *req, int wait_ms)
{
    json_t *sent = json_deep_copy(json_object_get(req, "message"));
    json_t *a = s_call(c, cmd, req, wait_ms + 5000);
    if (!a) {
        json_decref(sent);
        return 1;
    }
    int rc = 0;
    if (!json_is_true(json_object_get(a, "ok"))) {
        const char *code = json_string_value(json_object_get(a, "code"));
        const char *err = json_string_value(json_object_get(a, "error"));
        if (c->json) {
            char *s = json_dumps(a, JSON_COMPACT);
            puts(s);
            free(s);
        }
        fprintf(stderr, "soffa %s: refused: %s [%s]\n", cmd, err ? err : "?", code ? code : "?");
        rc = 1;
    } else if (c->json) {
        json_object_set(a, "message", sent);
        char *s = json_dumps(a, JSON_COMPACT);
        puts(s);
        free(s);
    } else {
        const char *state = json_string_value(json_object_get(a, "state"));
        if (state && !strcmp(state, "accepted"))
            printf("accepted: %s -> %s (seq %lld)%s\n", cmd, json_string_value(json_object_get(a, "mailbox")),
                   (long long) json_integer_value(json_object_get(a, "seq")),
                   json_is_true(json_object_get(a, "duplicate")) ? ", sent before" : "");
        else
            printf("queued: %s\n", json_string_value(json_object_get(a, "note")));
        printf("  message id  %s\n", json_string_value(json_object_get(a, "message_id")));
        const char *key;
        json_t *pl;
        json_object_foreach(sent, key, pl) {
            if (soffa_msg_type_from_name(key) == SOFFA_MT_NONE)
                continue;
            const char *own = s_own_id(soffa_msg_type_from_name(key));
            if (own && json_object_get(pl, own))
                printf("  %-11s %s\n", own, json_string_value(json_object_get(pl, own)));
        }
    }
    json_decref(a);
    json_decref(sent);
    return rc;
}

static int
s_usage_send(const char *words)
{
    printf("usage: soffa %s [--pupil ID --hemkommun KOD | --re ID|SEQ] [--FIELD VALUE ...]\n\n", words);
    puts("Builds a message, validates it, hands it to the local agent (durable in its\n"
         "outbox before this returns) and waits up to --wait MS (default 5000) for the\n"
         "broker's answer: accepted (where it went), refused (why), or queued (the\n"
         "broker is not reachable; the agent sends it later).\n"
         "\n"
         "Common flags:\n"
         "  --pupil ID          personnummer or samordningsnummer, any written form\n"
         "  --reserve-id X      a local reserve number instead\n"
         "  --hemkommun KOD     the youth's home municipality (4 digits)\n"
         "  --protected yes     protected identity: no contact details anywhere\n"
         "  --re ID|SEQ|last    answer or follow a message in this agent's inbox (by\n"
         "                      message id, sequence, or the newest): copies its\n"
         "                      subject, thread, consent and ids\n"
         "  --consent ID        the consent the message rests on\n"
         "  --occurred DATE     business date (default now)\n"
         "  --legal-basis CODE  override the default legal basis\n"
         "  --actor REF         your user id, for the audit trail\n"
         "Payload fields are given as --field-name VALUE (dates YYYY-MM-DD, codes by name,\n"
         "lists comma-separated, nested fields as --scope.recipients A,B). See\n"
         "proto/soffa_msg.proto for every field, and the README for examples.");
    return 0;
}

/* `soffa send TYPE ...` and the aliases. */
static int
s_cmd_message(s_ctx_t *c, soffa_msg_type_t type, const char *presets, const char *words, int skip)
{
    if (s_want_help(c->argc, c->argv))
        return s_usage_send(words);
    int wait_ms;
    json_t *req = s_build(words, type, presets, c->argc - skip, c->argv + skip, &wait_ms);
    if (!req)
        return 1;
    return s_send_and_report(c, words, req, wait_ms);
}

/* ---- Reading commands ---------------------------------------------------------------- */

static void
s_print_record(s_ctx_t *c, json_t *rec)
{
    if (c->json) {
        char *s = json_dumps(rec, JSON_COMPACT);
        puts(s);
        free(s);
        return;
    }
    char line[512];
    soffa_record_line(rec, line, sizeof line);
    const char *state = json_string_value(json_object_get(rec, "state"));
    if (state && strcmp(state, "done") != 0)
        printf("%s  [hook: %s]\n", line, state);
    else
        printf("%s\n", line);
}

static int
s_cmd_inbox(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv)) {
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
            return s_die("inbox", 2, "unknown argument '%s' (see soffa inbox --help)", c->argv[i]);
        }
    }
    json_t *a = s_call(c, "inbox", req, 5000);
    if (!a)
        return 1;
    size_t i;
    json_t *rec;
    json_array_foreach(json_object_get(a, "messages"), i, rec) s_print_record(c, rec);
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

static int
s_cmd_show(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa show ID|SEQ [--json]\n\nShows one delivered message in full, or the outcome of one sent message.");
        return c->argc == 2 ? 0 : 2;
    }
    json_t *a = s_call(c, "show", json_pack("{s:s, s:s}", "cmd", "show", "id", c->argv[1]), 5000);
    if (!a)
        return 1;
    int rc = 0;
    if (!json_is_true(json_object_get(a, "ok")))
        rc = s_refused("show", a);
    else {
        json_t *what = json_object_get(a, "record") ? json_object_get(a, "record") : a;
        char *s = json_dumps(what, c->json ? JSON_COMPACT : JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
    }
    json_decref(a);
    return rc;
}

static int
s_cmd_retry(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa retry SEQ\n\nRuns the hook again for a parked (failed) message.");
        return c->argc == 2 ? 0 : 2;
    }
    json_t *a = s_call(c, "retry", json_pack("{s:s, s:I}", "cmd", "retry", "seq", (json_int_t) atoll(c->argv[1])), 5000);
    if (!a)
        return 1;
    int rc = json_is_true(json_object_get(a, "ok")) ? 0 : s_refused("retry", a);
    if (!rc)
        printf("seq %s will be handed to the hook again\n", c->argv[1]);
    json_decref(a);
    return rc;
}

static int
s_cmd_watch(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv)) {
        puts("usage: soffa watch [--all] [--json]\n\n"
             "Prints each message as it arrives at this agent (NDJSON with --json) until\n"
             "interrupted. --all prints what is already there first.");
        return 0;
    }
    bool all = c->argc > 1 && !strcmp(c->argv[1], "--all");
    uint64_t after = 0;
    if (!all) {
        json_t *a = s_call(c, "watch", json_pack("{s:s, s:i}", "cmd", "inbox", "limit", 1000000), 5000);
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
        json_t *a = s_call(c, "watch", json_pack("{s:s, s:I}", "cmd", "inbox", "after", (json_int_t) after), 5000);
        if (!a)
            return 1;
        size_t i;
        json_t *rec;
        json_array_foreach(json_object_get(a, "messages"), i, rec) {
            s_print_record(c, rec);
            after = (uint64_t) json_integer_value(json_object_get(rec, "seq"));
        }
        json_decref(a);
        usleep(200 * 1000);
    }
    return 0;
}

static int
s_cmd_status(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv)) {
        puts("usage: soffa status [--json]\n\n"
             "The agent's state (connected or not, outbox depth, inbox, failed hooks, last\n"
             "delivery) and the broker's view of the mailboxes this agent may see: depth,\n"
             "readers, lag, age of the oldest undelivered message; mailboxes with waiting\n"
             "messages and no reader are flagged.");
        return 0;
    }
    json_t *a = s_call(c, "status", json_pack("{s:s, s:b}", "cmd", "status", "broker", 1), 8000);
    if (!a)
        return 1;
    if (c->json) {
        char *s = json_dumps(a, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(a);
        return 0;
    }
    printf("agent %s (%s): %s %s\n", json_string_value(json_object_get(a, "agent")),
           json_string_value(json_object_get(a, "role")),
           json_is_true(json_object_get(a, "connected")) ? "connected to" : "NOT connected to",
           json_string_value(json_object_get(a, "broker_endpoint")));
    printf("  outbox %lld waiting, inbox %lld (%lld for the hook, %lld failed), %lld refused since start\n",
           (long long) json_integer_value(json_object_get(a, "outbox")), (long long) json_integer_value(json_object_get(a, "inbox")),
           (long long) json_integer_value(json_object_get(a, "inbox_new")),
           (long long) json_integer_value(json_object_get(a, "inbox_failed")),
           (long long) json_integer_value(json_object_get(a, "refused")));
    const char *last = json_string_value(json_object_get(a, "last_delivery"));
    printf("  last delivery %s\n", last && *last ? last : "-");
    json_t *od = json_object_get(a, "overdue");
    long long os = (long long) json_integer_value(json_object_get(od, "signals")),
              orf = (long long) json_integer_value(json_object_get(od, "referrals"));
    if (os || orf)
        printf("  OVERDUE: %lld signal(s) not acknowledged, %lld referral(s) not received in time (soffa inbox lists them)\n",
               os, orf);
    json_t *b = json_object_get(a, "broker");
    if (b) {
        printf("broker: head seq %lld, %d session(s)\n", (long long) json_integer_value(json_object_get(b, "head_seq")),
               (int) json_integer_value(json_object_get(b, "sessions")));
        size_t i;
        json_t *m;
        int64_t now = soffa_now_us();
        json_array_foreach(json_object_get(b, "mailboxes"), i, m) {
            int64_t oldest = json_integer_value(json_object_get(m, "oldest_undelivered_us"));
            char wait[64] = "";
            if (oldest)
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
    json_decref(a);
    return 0;
}

/* ---- Audit: replay, history, access log, verify ---------------------------------------- */

static int
s_replay_common(s_ctx_t *c, const char *cmd, const char *request, bool access_only)
{
    json_t *fl = json_object();
    const char *as_of = NULL;
    for (int i = 1; i < c->argc; i++) {
        const char *a = c->argv[i], *v = i + 1 < c->argc ? c->argv[i + 1] : NULL;
        soffa_date_t d;
        if (!v) {
            json_decref(fl);
            return s_die(cmd, 2, "'%s' needs a value (see soffa %s --help)", a, cmd);
        }
        i++;
        if (!strcmp(a, "--mailbox")) {
            json_object_set_new(fl, "mailbox", json_string(v));
        } else if (!strcmp(a, "--pupil")) {
            char canon[13];
            soffa_err_t rc = soffa_id_parse(v, NULL, canon, NULL);
            if (rc != SOFFA_OK) {
                json_decref(fl);
                return s_die(cmd, 1, "--pupil: %s", soffa_strerror(rc));
            }
            json_object_set_new(fl, "subject_id", json_string(canon));
        } else if (!strcmp(a, "--type")) {
            soffa_msg_type_t t = soffa_msg_type_from_name(v);
            if (t == SOFFA_MT_NONE) {
                json_decref(fl);
                return s_die(cmd, 1, "--type: '%s' is not a message type (e.g. absence_reported)", v);
            }
            json_object_set_new(fl, "message_type", json_integer(t));
        } else if ((!strcmp(a, "--from") || !strcmp(a, "--to") || !strcmp(a, "--as-of")) && soffa_date_parse(v, &d)) {
            int64_t day = soffa_date_to_days(d) * 86400000000LL;
            if (!strcmp(a, "--from"))
                json_object_set_new(fl, "from_us", json_integer(day));
            else
                json_object_set_new(fl, "to_us", json_integer(day + 86400000000LL));   /* the whole day */
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
            return s_die(cmd, 2, "unknown or malformed option '%s %s' (see soffa %s --help)", a, v, cmd);
        }
    }
    if (!strcmp(request, "history") && !json_object_get(fl, "subject_id")) {
        json_decref(fl);
        return s_die(cmd, 2, "history needs --pupil ID");
    }
    if (access_only && !json_object_get(fl, "subject_id"))
        json_object_set_new(fl, "mailbox", json_string("audit/access"));
    json_t *a = s_call(c, cmd, json_pack("{s:s, s:s, s:o}", "cmd", "replay", "request", request, "filter", fl), 35000);
    if (!a)
        return 1;
    if (!json_is_true(json_object_get(a, "ok"))) {
        int rc = s_refused(cmd, a);
        json_decref(a);
        return rc;
    }
    size_t i, shown = 0;
    json_t *rec;
    if (!c->json && as_of)
        printf("what soffa held about this pupil by the end of %s:\n", as_of);
    json_array_foreach(json_object_get(a, "records"), i, rec) {
        const char *kind = json_string_value(json_object_get(rec, "kind"));
        /* The access log lists reads; a history lists what happened to the
         * young person; a replay lists every record. */
        if (access_only && (!kind || strcmp(kind, "access")))
            continue;
        if (!strcmp(request, "history") && (!kind || strcmp(kind, "message")))
            continue;
        s_print_record(c, rec);
        shown++;
    }
    if (!c->json)
        printf("%zu record(s); this read is itself logged at seq %lld\n", shown,
               (long long) json_integer_value(json_object_get(a, "access_seq")));
    json_decref(a);
    return 0;
}

static int
s_cmd_replay(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv)) {
        puts("usage: soffa replay [--mailbox M] [--pupil ID] [--type TYPE] [--from DATE] [--to DATE]\n"
             "                    [--from-seq N] [--to-seq N] [--limit N] [--json]\n\n"
             "Auditors only: replays the stored history within the auditor's scope. Dates are\n"
             "whole days (--to includes that day). The replay itself is recorded in the log.");
        return 0;
    }
    return s_replay_common(c, "replay", "replay", false);
}

static int
s_cmd_history(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv)) {
        puts("usage: soffa history --pupil ID [--as-of DATE] [--json]\n\n"
             "Auditors only: one young person's timeline across every agency in the scope:\n"
             "signals, acknowledgements, case events, consents, referrals and answers.\n"
             "--as-of DATE shows what had been received by the end of that day.");
        return 0;
    }
    return s_replay_common(c, "history", "history", false);
}

static int
s_cmd_access_log(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv)) {
        puts("usage: soffa access-log [--pupil ID] [--from DATE] [--to DATE] [--json]\n\n"
             "Auditors only: who read the history, when, with which filter and how many\n"
             "records came back. --pupil gives the reads of that young person's records.");
        return 0;
    }
    return s_replay_common(c, "access-log", "access-log", true);
}

static bool
s_read_hex_key(const char *text_or_file, uint8_t out[32])
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

static int
s_cmd_verify(s_ctx_t *c)
{
    const char *dir = NULL, *key = NULL;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h"))
            dir = NULL, i = c->argc + 1;
        else if (!strcmp(c->argv[i], "--key") && i + 1 < c->argc)
            key = c->argv[++i];
        else if (!dir && c->argv[i][0] != '-')
            dir = c->argv[i];
        else
            return s_die("verify", 2, "unknown argument '%s' (see soffa verify --help)", c->argv[i]);
    }
    if (!dir) {
        puts("usage: soffa verify DATA_DIR [--key HEX|FILE] [--json]\n\n"
             "Checks a broker's store offline and read-only (the live store, a copy or a\n"
             "backup; no broker needed): every record's hash, its place and its link to the\n"
             "one before, and every signed checkpoint. --key is the broker's checkpoint\n"
             "public key (64 hex digits, or a file holding them) obtained from the broker's\n"
             "operator; without it, DATA_DIR/checkpoint.pub is used, which proves only as\n"
             "much as that copy can be trusted. Reports the first record that was altered,\n"
             "removed or reordered. Exit status 0 intact, 1 broken.");
        return s_want_help(c->argc, c->argv) ? 0 : 2;
    }
    uint8_t pk[32];
    char note[1300] = "";
    if (key) {
        if (!s_read_hex_key(key, pk))
            return s_die("verify", 2, "--key takes 64 hex digits or a file holding them");
    } else {
        char pp[1100];
        snprintf(pp, sizeof pp, "%s/checkpoint.pub", dir);
        if (!s_read_hex_key(pp, pk))
            return s_die("verify", 1, "no --key given and %s is missing; ask the broker's operator for its checkpoint key", pp);
        snprintf(note, sizeof note, " (against %s; give --key from the operator for proof against a tampered copy)", pp);
    }
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = dir, .read_only = true};
    soffa_err_t rc = soffa_store_open(&st, &o);
    if (rc != SOFFA_OK)
        return s_die("verify", 1, "cannot open the store at %s: %s", dir, soffa_strerror(rc));
    soffa_store_verify_t rep;
    rc = soffa_store_verify(st, pk, &rep);
    soffa_store_close(&st);
    if (c->json) {
        json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:s}", "intact", rc == SOFFA_OK, "records", (json_int_t) rep.records,
                              "checkpoints", (json_int_t) rep.checkpoints, "signed_up_to", (json_int_t) rep.last_signed,
                              "bad_seq", (json_int_t) rep.bad_seq, "reason", rep.reason);
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    } else if (rc == SOFFA_OK) {
        printf("intact: %llu record(s), every hash and link checks out; %llu signed checkpoint(s), the newest vouching for 1..%llu%s\n",
               (unsigned long long) rep.records, (unsigned long long) rep.checkpoints,
               (unsigned long long) rep.last_signed, note);
    } else {
        printf("BROKEN at seq %llu: %s\n", (unsigned long long) rep.bad_seq, rep.reason);
    }
    return rc == SOFFA_OK ? 0 : 1;
}

static int
s_cmd_stats(s_ctx_t *c)
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
            return s_die("stats", 2, "'%s' needs a value (see soffa stats --help)", a);
        } else if (!strcmp(a, "--municipality")) {
            kommun = c->argv[++i];
            if (soffa_kommun_check(kommun) != SOFFA_OK)
                return s_die("stats", 1, "--municipality: '%s' is not one of the 290 municipality codes", kommun);
        } else if (!strcmp(a, "--from")) {
            if (!soffa_date_parse(c->argv[++i], &from))
                return s_die("stats", 2, "--from takes a date YYYY-MM-DD");
        } else if (!strcmp(a, "--to")) {
            if (!soffa_date_parse(c->argv[++i], &to))
                return s_die("stats", 2, "--to takes a date YYYY-MM-DD");
        } else if (!strcmp(a, "--html")) {
            html = c->argv[++i];
        } else {
            return s_die("stats", 2, "unknown argument '%s' (see soffa stats --help)", a);
        }
    }
    if (!kommun || !from.year || !to.year)
        return s_die("stats", 2, "give --municipality, --from and --to (see soffa stats --help)");
    if (soffa_date_cmp(from, to) > 0)
        return s_die("stats", 2, "--from is after --to");
    json_t *a = s_call(c, "stats", json_pack("{s:s, s:s, s:{}}", "cmd", "replay", "request", "stats", "filter"), 60000);
    if (!a)
        return 1;
    if (!json_is_true(json_object_get(a, "ok"))) {
        int rc = s_refused("stats", a);
        json_decref(a);
        return rc;
    }
    json_t *st = soffa_stats_compute(json_object_get(a, "records"), kommun, from, to);
    json_decref(a);
    if (!st)
        return s_die("stats", 1, "out of memory");
    int rc = 0;
    if (html) {
        FILE *f = fopen(html, "w");
        if (!f) {
            rc = s_die("stats", 1, "cannot write %s: %s", html, strerror(errno));
        } else {
            soffa_stats_html(st, f);
            if (fclose(f) != 0)
                rc = s_die("stats", 1, "cannot write %s", html);
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

/* ---- CSV import ------------------------------------------------------------------------ */

static soffa_msg_type_t
s_csv_type(const char *t)
{
    if (!strcasecmp(t, "enrolment") || !strcasecmp(t, "enrolment_changed"))
        return SOFFA_MT_ENROLMENT_CHANGED;
    if (!strcasecmp(t, "absence") || !strcasecmp(t, "absence_reported"))
        return SOFFA_MT_ABSENCE_REPORTED;
    if (!strcasecmp(t, "at-risk") || !strcasecmp(t, "at_risk_notice"))
        return SOFFA_MT_AT_RISK_NOTICE;
    return SOFFA_MT_NONE;
}

static int
s_cmd_import(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa import FILE.csv [--json]\n\n"
             "Imports school signals from a student-information-system export. The first\n"
             "line names the columns; commas separate them (quote a value with \"...\").\n"
             "Columns:\n"
             "  type        enrolment, absence or at-risk                    (required)\n"
             "  pupil       personnummer or samordningsnummer, any form        (required)\n"
             "  hemkommun   the pupil's home municipality code                 (required)\n"
             "  consent     consent id (at-risk notices)\n"
             "  any payload field by name: event, effective_date, school_unit, school_form,\n"
             "  programme_code, leave_reason, period_from, period_to, unexcused_band,\n"
             "  investigation_started, reported_to_csn, risk_code, note\n"
             "Empty cells are left out; lines starting with # are skipped. Every row is\n"
             "validated; bad rows are reported with their line number and reason; good rows\n"
             "are queued in the agent's outbox. Exit status 1 if any row was bad.");
        return c->argc == 2 ? 0 : 2;
    }
    FILE *f = fopen(c->argv[1], "r");
    if (!f)
        return s_die("import", 1, "cannot read %s: %s", c->argv[1], strerror(errno));
    char line[4096], header[4096];
    char *hcols[64], *cols[64];
    size_t nh = 0;
    long lineno = 0, good = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0')
            continue;
        if (!nh) {
            memcpy(header, line, sizeof header);
            nh = soffa_csv_split(header, hcols, 64);
            bool has_type = false, has_pupil = false, has_hem = false;
            for (size_t i = 0; i < nh; i++) {
                has_type |= !strcmp(hcols[i], "type");
                has_pupil |= !strcmp(hcols[i], "pupil");
                has_hem |= !strcmp(hcols[i], "hemkommun");
            }
            if (!has_type || !has_pupil || !has_hem) {
                fclose(f);
                return s_die("import", 1, "%s:%ld: the header must name the columns type, pupil and hemkommun",
                             c->argv[1], lineno);
            }
            continue;
        }
        size_t n = soffa_csv_split(line, cols, 64);
        const char *why = NULL;
        char whybuf[400];
        if (n != nh) {
            snprintf(whybuf, sizeof whybuf, "%zu columns, the header has %zu", n, nh);
            why = whybuf;
        }
        soffa_msg_type_t type = SOFFA_MT_NONE;
        char *argv[130];
        int argc = 0;
        for (size_t i = 0; !why && i < n; i++) {
            if (!strcmp(hcols[i], "type")) {
                type = s_csv_type(cols[i]);
                if (type == SOFFA_MT_NONE) {
                    snprintf(whybuf, sizeof whybuf, "type '%s' is not enrolment, absence or at-risk", cols[i]);
                    why = whybuf;
                }
                continue;
            }
            if (!cols[i][0])
                continue;
            static char flags[64][80];
            snprintf(flags[i], sizeof flags[i], "--%s", hcols[i]);
            argv[argc++] = flags[i];
            argv[argc++] = cols[i];
        }
        if (!why && type == SOFFA_MT_NONE)
            why = "no type";
        if (!why) {
            /* Quiet building: capture the first error line ourselves. */
            int wait_ms;
            int saved = dup(2);
            int devnull = open("/dev/null", O_WRONLY);
            char tmpl[] = "/tmp/soffa-import-XXXXXX";
            int tfd = mkstemp(tmpl);
            if (tfd >= 0) {
                unlink(tmpl);
                dup2(tfd, 2);
            }
            json_t *req = s_build("import", type, NULL, argc, argv, &wait_ms);
            dup2(saved, 2);
            close(saved);
            close(devnull);
            if (!req) {
                whybuf[0] = '\0';
                if (tfd >= 0) {
                    lseek(tfd, 0, SEEK_SET);
                    ssize_t r = read(tfd, whybuf, sizeof whybuf - 1);
                    whybuf[r > 0 ? r : 0] = '\0';
                    whybuf[strcspn(whybuf, "\n")] = '\0';
                }
                why = whybuf[0] ? whybuf + (strncmp(whybuf, "soffa import: ", 14) ? 0 : 14) : "bad row";
            } else {
                json_object_set_new(req, "wait_ms", json_integer(0));
                json_t *a = s_call(c, "import", req, 5000);
                if (!a) {
                    if (tfd >= 0)
                        close(tfd);
                    fclose(f);
                    return 1;
                }
                if (!json_is_true(json_object_get(a, "ok"))) {
                    snprintf(whybuf, sizeof whybuf, "%s", json_string_value(json_object_get(a, "error")));
                    why = whybuf;
                }
                json_decref(a);
            }
            if (tfd >= 0)
                close(tfd);
        }
        if (why) {
            bad++;
            fprintf(stderr, "%s:%ld: %s\n", c->argv[1], lineno, why);
        } else {
            good++;
        }
    }
    fclose(f);
    if (c->json)
        printf("{\"queued\":%ld,\"bad\":%ld}\n", good, bad);
    else
        printf("%ld row(s) queued in the outbox, %ld bad row(s)%s\n", good, bad,
               bad ? " (listed above; fix and import those again)" : "");
    return bad ? 1 : 0;
}

/* ---- Keys and identity numbers ------------------------------------------------------------ */

static int
s_cmd_check_id(s_ctx_t *c)
{
    const char *id = NULL;
    soffa_date_t today = soffa_date_today();
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h")) {
            puts("usage: soffa check-id [--json] [--today YYYY-MM-DD] ID\n\n"
                 "Checks a Swedish personnummer or samordningsnummer and prints its canonical\n"
                 "12-digit form (YYYYMMDDNNNC) and its kind. Accepted forms: YYMMDDNNNC,\n"
                 "YYMMDD-NNNC, YYMMDD+NNNC (born 100 or more years ago), YYYYMMDDNNNC,\n"
                 "YYYYMMDD-NNNC.\n\n"
                 "  --json               print {\"id\", \"kind\", \"birth_date\"}\n"
                 "  --today YYYY-MM-DD   reference date for the century of short forms\n\n"
                 "Exit status: 0 valid, 1 invalid (one line on stderr says why), 2 usage.");
            return 0;
        } else if (!strcmp(c->argv[i], "--today") && i + 1 < c->argc) {
            if (!soffa_date_parse(c->argv[++i], &today))
                return s_die("check-id", 2, "--today takes a date as YYYY-MM-DD");
        } else if (c->argv[i][0] == '-' && c->argv[i][1] && !id) {
            return s_die("check-id", 2, "unknown option '%s' (see soffa check-id --help)", c->argv[i]);
        } else if (!id) {
            id = c->argv[i];
        } else {
            return s_die("check-id", 2, "give one number at a time (see soffa check-id --help)");
        }
    }
    if (!id)
        return s_die("check-id", 2, "no number given (see soffa check-id --help)");
    char canon[13];
    soffa_id_kind_t kind;
    soffa_err_t rc = soffa_id_parse(id, &today, canon, &kind);
    if (rc != SOFFA_OK) {
        /* The number itself is not repeated: it is personal data. */
        return s_die("check-id", 1, "%s",
                     rc == SOFFA_ERR_ID_CHECKSUM ? "bad check digit: the last digit does not match the others"
                     : rc == SOFFA_ERR_ID_DATE   ? "impossible date: no such birth date (or it lies in the future)"
                                                 : "bad format: expected YYMMDD-NNNC, YYMMDD+NNNC, YYYYMMDDNNNC or YYYYMMDD-NNNC");
    }
    if (c->json) {
        soffa_date_t birth;
        char bd[11];
        soffa_id_birth_date(canon, &birth);
        soffa_date_format(birth, bd);
        printf("{\"id\":\"%s\",\"kind\":\"%s\",\"birth_date\":\"%s\"}\n", canon, soffa_id_kind_name(kind), bd);
    } else {
        printf("%s %s\n", canon, soffa_id_kind_name(kind));
    }
    return 0;
}

static int
s_cmd_keygen(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv)) {
        puts("usage: soffa keygen NAME\n\n"
             "Writes a new CurveZMQ key pair: NAME.key (public and secret key, mode 0600;\n"
             "keep it on the host that uses it) and NAME.pub (the public key alone, to put\n"
             "in the broker's configuration). Prints the public key. Never overwrites.");
        return 0;
    }
    if (c->argc != 2 || c->argv[1][0] == '-')
        return s_die("keygen", 2, "give one NAME (see soffa keygen --help)");
    soffa_err_t rc = soffa_keys_generate(c->argv[1]);
    if (rc == SOFFA_ERR_EXISTS)
        return s_die("keygen", 1, "%s.key or %s.pub already exists; pick another name or remove them", c->argv[1], c->argv[1]);
    if (rc != SOFFA_OK)
        return s_die("keygen", 1, "cannot write %s.key: %s", c->argv[1], soffa_strerror(rc));
    char pub[SOFFA_Z85_KEY], path[4096];
    snprintf(path, sizeof path, "%s.pub", c->argv[1]);
    if (soffa_keys_load_public(path, pub) != SOFFA_OK)
        return s_die("keygen", 1, "%s was written but cannot be read back", path);
    printf("%s\n", pub);
    return 0;
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
s_cmd_up(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv) || c->argc != 2) {
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
        return s_die("up", 1, "soffa-broker and soffa-agent must sit next to soffa (%s)", bin);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return s_die("up", 1, "cannot create %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/broker", dir);
    if (mkdir(path, 0700) != 0)
        return s_die("up", 1, "%s already holds a network (soffa down %s, or pick a new directory)", dir, dir);
    char abs[PATH_MAX];
    if (!realpath(dir, abs))
        return s_die("up", 1, "cannot resolve %s", dir);
    /* Unix socket paths are limited to 107 bytes. */
    if (strlen(abs) > 60)
        return s_die("up", 1, "%s is too long a path for the agents' sockets; use a shorter one (at most 60 characters)", abs);
    snprintf(path, sizeof path, "%s/broker/broker", abs);
    if (soffa_keys_generate(path) != SOFFA_OK)
        return s_die("up", 1, "cannot write the broker's keys in %s", dir);
    int port = s_free_port();
    snprintf(path, sizeof path, "%s/broker/broker.ini", abs);
    FILE *f = fopen(path, "w");
    if (!f)
        return s_die("up", 1, "cannot write %s", path);
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
            return s_die("up", 1, "cannot write the keys of %s", n->name);
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
            return s_die("up", 1, "cannot write %s", ap);
        }
        /* [web] first: lines appended to the file later still land in [agent]. */
        if (soffa_webdemo_wants(n->role))
            soffa_webdemo_ini(af, n->name, s_free_port());
        fprintf(af, "; made by soffa up: %s\n[agent]\nname = %s\nbroker = ipc://%s/broker/broker.sock\n"
                    "broker_key = ../broker/broker.pub\nkey = %s.key\ndata_dir = data\nheartbeat_ms = 500\n"
                    "reconnect_max_ms = 2000\n",
                n->what, n->name, abs, n->name);
        fclose(af);
    }
    fclose(f);

    char pidfile[1100], log[1100];
    snprintf(pidfile, sizeof pidfile, "%s/pids", abs);
    FILE *pf = fopen(pidfile, "w");
    if (!pf)
        return s_die("up", 1, "cannot write %s", pidfile);
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
    s_ctx_t q = *c;
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
            json_t *a = s_call(&q, "up", json_pack("{s:s}", "cmd", "status"), 1000);
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
        return s_die("up", 1, "not every agent connected within 15 s; see the logs in %s (soffa down %s stops it)", dir, dir);
    const char *names[S_NODES];
    for (size_t i = 0; i < S_NODES; i++)
        names[i] = s_nodes[i].name;
    char why[1200];
    if (soffa_webdemo_start(abs, bin, names, S_NODES, why, sizeof why) != 0)
        return s_die("up", 1, "%s (soffa down %s stops the rest)", why, dir);
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
s_cmd_user(s_ctx_t *c)
{
    return soffa_users_command(c->argc, c->argv, c->net, c->agent);
}

static int
s_cmd_down(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa down DIR\n\nStops the network `soffa up DIR` started: agents first, then the broker,\n"
             "each cleanly (SIGTERM; SIGKILL after 10 s). The data stays in DIR.");
        return c->argc == 2 ? 0 : 2;
    }
    char pidfile[1100];
    snprintf(pidfile, sizeof pidfile, "%s/pids", c->argv[1]);
    FILE *pf = fopen(pidfile, "r");
    if (!pf)
        return s_die("down", 1, "no network runs from %s (no %s)", c->argv[1], pidfile);
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
    int (*run)(s_ctx_t *c);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"inbox", s_cmd_inbox, "list the messages delivered to this agent"},
    {"show", s_cmd_show, "show one message in full"},
    {"watch", s_cmd_watch, "print messages as they arrive"},
    {"status", s_cmd_status, "the agent's and the broker's state"},
    {"retry", s_cmd_retry, "hand a parked message to the hook again"},
    {"import", s_cmd_import, "queue school signals from a CSV export"},
    {"replay", s_cmd_replay, "auditors: replay the history"},
    {"history", s_cmd_history, "auditors: one young person's timeline"},
    {"access-log", s_cmd_access_log, "auditors: who read what, when"},
    {"stats", s_cmd_stats, "auditors: a municipality's KAA key figures"},
    {"verify", s_cmd_verify, "check the hash chain of a store, offline"},
    {"up", s_cmd_up, "start a local network (broker + one agent of each role)"},
    {"down", s_cmd_down, "stop a local network"},
    {"keygen", s_cmd_keygen, "make a CurveZMQ key pair"},
    {"user", s_cmd_user, "the people who may use this site's web inbox"},
    {"check-id", s_cmd_check_id, "check a personnummer or samordningsnummer"},
};

static void
s_usage(FILE *out)
{
    fputs("usage: soffa [--socket PATH | --net DIR --agent NAME] [--json] COMMAND [ARGS]\n\n"
          "Messages (each hands one message to the local agent):\n", out);
    for (size_t i = 0; i < sizeof s_aliases / sizeof *s_aliases; i++) {
        char words[48];
        snprintf(words, sizeof words, "%s%s%s", s_aliases[i].w1, s_aliases[i].w2 ? " " : "", s_aliases[i].w2 ? s_aliases[i].w2 : "");
        fprintf(out, "  %-20s %s\n", words, s_aliases[i].help);
    }
    fprintf(out, "  %-20s %s\n\nOther commands:\n", "send TYPE", "any message type by its schema name");
    for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
        fprintf(out, "  %-20s %s\n", s_commands[i].name, s_commands[i].summary);
    fputs("\nRun 'soffa COMMAND --help' for the options of one command.\n", out);
}

int
main(int argc, char **argv)
{
    s_ctx_t c = {0};
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc)
            c.socket = argv[++i];
        else if (!strcmp(argv[i], "--net") && i + 1 < argc)
            c.net = argv[++i];
        else if (!strcmp(argv[i], "--agent") && i + 1 < argc)
            c.agent = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            c.json = true;
        else
            break;
    }
    if (i >= argc) {
        s_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help")) {
        s_usage(stdout);
        return 0;
    }
    /* --json may also follow the command. */
    char *rest[512];
    int n = 0;
    for (int k = i; k < argc && n < 511; k++) {
        if (!strcmp(argv[k], "--json"))
            c.json = true;
        else
            rest[n++] = argv[k];
    }
    rest[n] = NULL;
    c.argc = n;
    c.argv = rest;
    const char *cmd = rest[0];
    for (size_t k = 0; k < sizeof s_commands / sizeof *s_commands; k++)
        if (!strcmp(cmd, s_commands[k].name))
            return s_commands[k].run(&c);
    if (!strcmp(cmd, "send")) {
        if (n < 2 || !strcmp(rest[1], "--help"))
            return n < 2 ? s_die("send", 2, "give a message type, e.g. soffa send absence_reported ...") : s_usage_send("send TYPE");
        soffa_msg_type_t t = soffa_msg_type_from_name(rest[1]);
        if (t == SOFFA_MT_NONE)
            return s_die("send", 2, "'%s' is not a message type (see proto/soffa_msg.proto)", rest[1]);
        return s_cmd_message(&c, t, NULL, rest[1], 2);
    }
    for (size_t k = 0; k < sizeof s_aliases / sizeof *s_aliases; k++) {
        const s_alias_t *al = &s_aliases[k];
        if (strcmp(cmd, al->w1) != 0)
            continue;
        if (!al->w2)
            return s_cmd_message(&c, al->type, al->presets, al->w1, 1);
        if (n >= 2 && !strcmp(rest[1], al->w2)) {
            char words[64];
            snprintf(words, sizeof words, "%s %s", al->w1, al->w2);
            return s_cmd_message(&c, al->type, al->presets, words, 2);
        }
    }
    for (size_t k = 0; k < sizeof s_aliases / sizeof *s_aliases; k++)
        if (!strcmp(cmd, s_aliases[k].w1))
            return s_die(cmd, 2, "'%s' needs one of its kinds; see soffa --help", cmd);
    return s_die(cmd, 2, "unknown command (see soffa --help)");
}
