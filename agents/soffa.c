/*  soffa: the command line people and scripts use.
 *
 *  Most commands talk to the agent on the same host over its control socket
 *  (--socket PATH, or --net DIR --agent NAME for a network made by `soffa
 *  up`, or $SOFFA_SOCKET). Everything handed to the agent is durable in its
 *  outbox before the command returns. Every command has --help, prints one
 *  line on stderr and exits non-zero on failure (1: refused or failed,
 *  2: usage), and takes --json where it prints data.
 */
#include <ctype.h>
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
#include <sodium.h>
#include <zmq.h>

#include <ini.h>

#include "soffa_box.h"
#include "soffa_cfg.h"
#include "soffa_csv.h"
#include "soffa_err.h"
#include "soffa_id.h"
#include "soffa_import.h"
#include "soffa_keys.h"
#include "soffa_msg.h"
#include "soffa_record.h"
#include "soffa_seal.h"
#include "soffa_stats.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_users.h"
#include "soffa_uuid.h"
#include "soffa_version.h"
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

/* What is wrong with a reserve number the user typed. */
static const char *
s_reserve_problem(soffa_err_t rc)
{
    return rc == SOFFA_ERR_ID_DATE
               ? "a reserve number begins with the birth date YYYYMMDD: a real date from 1900 on, not in the future"
               : "a reserve number is 12 characters: the birth date YYYYMMDD, then 4 of A-Z/0-9 with at least two "
                 "letters (e.g. 20080314TF10)";
}

/* What is wrong with an identity the user typed: a reserve number's rules
 * when it holds a letter, else the personnummer's. */
static const char *
s_id_problem(const char *text, soffa_err_t rc)
{
    for (const char *p = text; *p; p++)
        if (isalpha((unsigned char) *p))
            return s_reserve_problem(rc);
    return soffa_strerror(rc);
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
            soffa_err_t rc = soffa_id_parse_any(v, NULL, canon, &kind);
            if (rc != SOFFA_OK) {
                s_die(cmd, 1, "--%s: %s", name, s_id_problem(v, rc));
                goto fail;
            }
            json_object_set_new(subject, "id", json_string(canon));
            json_object_set_new(subject, "id_type", json_string(kind == SOFFA_ID_SAMNR     ? "SAMNR"
                                                                : kind == SOFFA_ID_RESERVE ? "LOCAL_RESERVE"
                                                                                           : "PNR"));
        } else if (!strcmp(name, "reserve_id")) {
            char canon[13];
            soffa_err_t rc = soffa_reserve_parse(v, NULL, canon);
            if (rc != SOFFA_OK) {
                s_die(cmd, 1, "--reserve-id: %s", s_reserve_problem(rc));
                goto fail;
            }
            json_object_set_new(subject, "id", json_string(canon));
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
         "  --pupil ID          personnummer or samordningsnummer, any written form,\n"
         "                      or a reserve number (YYYYMMDD + 4 of A-Z/0-9, e.g.\n"
         "                      20080314TF10: the birth date and two letters or more)\n"
         "  --reserve-id X      a local reserve number, said explicitly\n"
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

/* The broker's own mailboxes: written by the broker itself or kept for
 * auditors to replay, never subscribed to by an agent, so never "waiting
 * for a reader": the checkpoints, the access log and the journals. */
static bool
s_internal_mailbox(const char *mb)
{
    return mb
           && (!strcmp(mb, "audit/checkpoint") || !strcmp(mb, "audit/access") || !strncmp(mb, "kaa-journal/", 12)
               || !strncmp(mb, "school-journal/", 15));
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

static int
s_cmd_status(s_ctx_t *c)
{
    int sample_ms = 1000;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h")) {
            puts("usage: soffa status [--json] [--sample MS]\n\n"
                 "The agent's state (connected or not, outbox depth, inbox, failed hooks, last\n"
                 "delivery) and the broker's view of the mailboxes this agent may see: depth,\n"
                 "readers, lag, age of the oldest undelivered message; mailboxes with waiting\n"
                 "messages and no reader are flagged (never the broker's own: audit/checkpoint,\n"
                 "audit/access, kaa-journal/*, school-journal/*).\n"
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
                return s_die("status", 2, "--sample takes milliseconds, 0..600000");
            sample_ms = (int) v;
        } else {
            return s_die("status", 2, "unknown argument '%s' (see soffa status --help)", c->argv[i]);
        }
    }
    json_t *a = s_call(c, "status", json_pack("{s:s, s:b}", "cmd", "status", "broker", 1), 8000);
    if (!a)
        return S_HEALTH_CRITICAL;   /* s_call said why on stderr */
    int level = S_HEALTH_OK;
    json_t *problems = json_array();
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
        json_t *a2 = s_call(c, "status", json_pack("{s:s}", "cmd", "status"), 8000);
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
    static const char *const names[] = {"ok", "warning", "critical"};
    if (c->json) {
        json_object_set_new(a, "health", json_pack("{s:s, s:i, s:o}", "state", names[level], "exit", level, "problems", problems));
        char *s = json_dumps(a, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(a);
        return level;
    }
    printf("agent %s (%s): %s %s\n", json_string_value(json_object_get(a, "agent")),
           json_string_value(json_object_get(a, "role")), connected ? "connected to" : "NOT connected to",
           json_string_value(json_object_get(a, "broker_endpoint")));
    printf("  outbox %lld waiting, inbox %lld (%lld for the hook, %lld failed), %lld refused since start\n", out1,
           (long long) json_integer_value(json_object_get(a, "inbox")), (long long) json_integer_value(json_object_get(a, "inbox_new")),
           parked, (long long) json_integer_value(json_object_get(a, "refused")));
    const char *last = json_string_value(json_object_get(a, "last_delivery"));
    printf("  last delivery %s\n", last && *last ? last : "-");
    if (os || orf)
        printf("  OVERDUE: %lld signal(s) not acknowledged, %lld referral(s) not received in time (soffa inbox lists them)\n",
               os, orf);
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
    json_decref(problems);
    json_decref(a);
    return level;
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
            soffa_err_t rc = soffa_id_parse_any(v, NULL, canon, NULL);
            if (rc != SOFFA_OK) {
                json_decref(fl);
                return s_die(cmd, 1, "--pupil: %s", s_id_problem(v, rc));
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
            /* Dates are Swedish days: from 00:00 in Stockholm. */
            int64_t day = soffa_date_local_start_us(d);
            soffa_date_t next = soffa_date_local(day + 36 * 3600000000LL);
            if (!strcmp(a, "--from"))
                json_object_set_new(fl, "from_us", json_integer(day));
            else
                json_object_set_new(fl, "to_us", json_integer(soffa_date_local_start_us(next)));   /* the whole day */
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
    /* A read is recorded when it opens and when it ends: the access log
     * shows one line per read (its end), and an opening with no end
     * (a read under way, or one that ended without a record). */
    json_t *ended = json_object();
    json_array_foreach(json_object_get(a, "records"), i, rec) {
        json_t *ac = json_object_get(rec, "access");
        const char *st = json_string_value(json_object_get(ac, "state"));
        if (st && strcmp(st, "opened") != 0) {
            char k[32];
            snprintf(k, sizeof k, "%lld", (long long) json_integer_value(json_object_get(ac, "opened_seq")));
            json_object_set_new(ended, k, json_true());
        }
    }
    json_array_foreach(json_object_get(a, "records"), i, rec) {
        const char *kind = json_string_value(json_object_get(rec, "kind"));
        /* The access log lists reads; a history lists what happened to the
         * young person; a replay lists every record. */
        if (access_only && (!kind || strcmp(kind, "access")))
            continue;
        json_t *ac = json_object_get(rec, "access");
        const char *st = json_string_value(json_object_get(ac, "state"));
        if (access_only && st && !strcmp(st, "opened")) {
            char k[32];
            snprintf(k, sizeof k, "%lld", (long long) json_integer_value(json_object_get(rec, "seq")));
            if (json_object_get(ended, k))
                continue;
        }
        if (!strcmp(request, "history") && (!kind || strcmp(kind, "message")))
            continue;
        s_print_record(c, rec);
        shown++;
    }
    json_decref(ended);
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
             "ID is a personnummer, samordningsnummer or reserve number (20080314TF10).\n"
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

/* The checkpoints an auditor's agent received, held against the store. */
typedef struct {
    soffa_store_t *st;
    const uint8_t *pk;
    uint64_t held, newest;
    char wrong[160];
} s_against_t;

static int
s_store_hash(void *ctx, const soffa_store_rec_t *rec)
{
    memcpy(ctx, rec->hash, SOFFA_HASH_LEN);
    return 1;
}

static int
s_against_one(void *ctx, const soffa_box_in_t *in)
{
    s_against_t *a = ctx;
    soffa_envelope_t e;
    if (soffa_envelope_decode(in->env, in->len, &e) != SOFFA_OK)
        return 0;
    if (e.kind == SOFFA_RK_CHECKPOINT) {
        soffa_checkpoint_t cp;
        uint8_t mine[SOFFA_HASH_LEN], theirs[SOFFA_HASH_LEN];
        soffa_wire_hash(in->env, in->len, mine);
        bool ok = soffa_checkpoint_decode(e.body, e.body_len, &cp) == SOFFA_OK && soffa_checkpoint_valid(&cp, a->pk);
        if (!ok) {
            snprintf(a->wrong, sizeof a->wrong, "the auditor's checkpoint at seq %llu is not signed by that key",
                     (unsigned long long) in->seq);
        } else if (soffa_store_get(a->st, in->seq, s_store_hash, theirs) != SOFFA_OK) {
            snprintf(a->wrong, sizeof a->wrong,
                     "the store has no record %llu, where the auditor holds a signed checkpoint: records were removed",
                     (unsigned long long) in->seq);
        } else if (sodium_memcmp(mine, theirs, SOFFA_HASH_LEN) != 0) {
            snprintf(a->wrong, sizeof a->wrong,
                     "record %llu is not the signed checkpoint the auditor received there: the history was rewritten",
                     (unsigned long long) in->seq);
        } else {
            a->held++;
            if (in->seq > a->newest)
                a->newest = in->seq;
        }
    }
    soffa_envelope_fini(&e);
    return a->wrong[0] != '\0';
}

static int
s_cmd_verify(s_ctx_t *c)
{
    const char *dir = NULL, *key = NULL, *against = NULL, *master = NULL;
    long long max_unsigned = 2048;
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h"))
            dir = NULL, i = c->argc + 1;
        else if (!strcmp(c->argv[i], "--key") && i + 1 < c->argc)
            key = c->argv[++i];
        else if (!strcmp(c->argv[i], "--against") && i + 1 < c->argc)
            against = c->argv[++i];
        else if (!strcmp(c->argv[i], "--master-key") && i + 1 < c->argc)
            master = c->argv[++i];
        else if (!strcmp(c->argv[i], "--max-unsigned") && i + 1 < c->argc) {
            char *end;
            max_unsigned = strtoll(c->argv[++i], &end, 10);
            if (*end || max_unsigned < 0)
                return s_die("verify", 2, "--max-unsigned takes a number of records");
        } else if (!dir && c->argv[i][0] != '-')
            dir = c->argv[i];
        else
            return s_die("verify", 2, "unknown argument '%s' (see soffa verify --help)", c->argv[i]);
    }
    if (!dir || !key) {
        puts("usage: soffa verify DATA_DIR --key HEX|FILE [--against AUDIT_DATA_DIR] [--master-key FILE]\n"
             "                    [--max-unsigned N] [--json]\n\n"
             "Checks a broker's store offline and read-only (the live store, a copy or a\n"
             "backup; no broker needed): every record's hash, its place and its link to the\n"
             "one before, and every signed checkpoint. --key is the broker's checkpoint\n"
             "public key (64 hex digits, or a file holding them), obtained from the broker's\n"
             "operator and kept apart from the store. A store with no signed checkpoint, or\n"
             "with more than N records after its last one (--max-unsigned, default 2048: the\n"
             "broker signs every [audit] checkpoint_every records, at most a batch later),\n"
             "is not vouched for and fails. --against checks the store against the signed\n"
             "checkpoints an auditor's agent received (its data directory): each must be in\n"
             "the store, byte for byte, so a history rewritten or cut short is caught even\n"
             "by someone who holds the signing key. Reports the first record that was\n"
             "altered, removed or reordered. No other key is needed: the chain covers the\n"
             "records as stored, encrypted. Records stored before encryption (a store\n"
             "upgraded from format 3) are checked by their place and links only, unless\n"
             "--master-key (the broker's master key file) is given: then each is opened\n"
             "and hashed, and every sealed body must open with its own key.\n"
             "Exit status 0 intact, 1 broken or not vouched for.");
        return s_want_help(c->argc, c->argv) ? 0 : 2;
    }
    uint8_t pk[32];
    if (!s_read_hex_key(key, pk))
        return s_die("verify", 2, "--key takes 64 hex digits or a file holding them");
    soffa_seal_master_t mk = {0};
    char mwhy[900] = "";
    if (master && soffa_seal_master_load(master, NULL, dir, &mk, mwhy, sizeof mwhy) != SOFFA_OK)
        return s_die("verify", 1, "%s", mwhy);
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = dir, .read_only = true, .master = master ? &mk : NULL, .why = mwhy,
                            .whylen = sizeof mwhy};
    soffa_err_t rc = soffa_store_open(&st, &o);
    soffa_seal_master_wipe(&mk);
    if (rc != SOFFA_OK)
        return s_die("verify", 1, "cannot open the store at %s: %s", dir, mwhy[0] ? mwhy : soffa_strerror(rc));
    soffa_store_verify_t rep;
    rc = soffa_store_verify(st, pk, &rep);
    if (rc == SOFFA_OK && rep.records && rep.checkpoints == 0) {
        rc = SOFFA_ERR_CHAIN_BROKEN;
        rep.bad_seq = 1;
        snprintf(rep.reason, sizeof rep.reason,
                 "no signed checkpoint: nothing vouches for these %llu record(s) (were the checkpoints removed?)",
                 (unsigned long long) rep.records);
    } else if (rc == SOFFA_OK && (long long) rep.unsigned_tail > max_unsigned) {
        rc = SOFFA_ERR_CHAIN_BROKEN;
        rep.bad_seq = rep.last_signed + 2;
        snprintf(rep.reason, sizeof rep.reason,
                 "%llu record(s) after the last signed checkpoint, more than the broker leaves unsigned (%lld)",
                 (unsigned long long) rep.unsigned_tail, max_unsigned);
    }
    s_against_t ag = {.st = st, .pk = pk};
    if (rc == SOFFA_OK && against) {
        soffa_box_t *box = NULL;
        soffa_err_t brc = soffa_box_open(&box, against, 0);
        if (brc != SOFFA_OK) {
            soffa_store_close(&st);
            return s_die("verify", 1, "cannot open the auditor's store at %s: %s", against, soffa_strerror(brc));
        }
        soffa_box_inbox_scan(box, 0, s_against_one, &ag);
        soffa_box_close(&box);
        if (ag.wrong[0]) {
            rc = SOFFA_ERR_CHAIN_BROKEN;
            snprintf(rep.reason, sizeof rep.reason, "%.159s", ag.wrong);
            rep.bad_seq = 0;
        } else if (ag.held == 0) {
            rc = SOFFA_ERR_CHAIN_BROKEN;
            snprintf(rep.reason, sizeof rep.reason, "the auditor's store at %s holds no checkpoint to check against", against);
        }
    }
    soffa_store_close(&st);
    char note[200] = "";
    if (against && rc == SOFFA_OK)
        snprintf(note, sizeof note, "; all %llu checkpoint(s) the auditor holds are in it, the newest at seq %llu",
                 (unsigned long long) ag.held, (unsigned long long) ag.newest);
    if (c->json) {
        json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:s}", "intact", rc == SOFFA_OK, "records", (json_int_t) rep.records,
                              "checkpoints", (json_int_t) rep.checkpoints, "signed_up_to", (json_int_t) rep.last_signed,
                              "unsigned_tail", (json_int_t) rep.unsigned_tail, "bad_seq", (json_int_t) rep.bad_seq,
                              "reason", rep.reason);
        if (against)
            json_object_set_new(j, "auditor_checkpoints", json_integer((json_int_t) ag.held));
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    } else if (rc == SOFFA_OK) {
        printf("intact: %llu record(s), every hash and link checks out; %llu signed checkpoint(s), the newest vouching for 1..%llu%s\n",
               (unsigned long long) rep.records, (unsigned long long) rep.checkpoints,
               (unsigned long long) rep.last_signed, note);
        if (rep.unhashed)
            printf("%llu record(s) stored before encryption were checked by their place and links only; give "
                   "--master-key to open and hash them too\n", (unsigned long long) rep.unhashed);
    } else if (rep.bad_seq) {
        printf("BROKEN at seq %llu: %s\n", (unsigned long long) rep.bad_seq, rep.reason);
    } else {
        printf("BROKEN: %s\n", rep.reason);
    }
    return rc == SOFFA_OK ? 0 : 1;
}

/* ---- Backup ------------------------------------------------------------------------- */

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

static int
s_cmd_backup(s_ctx_t *c)
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
                 "on any failure nothing is left at DEST.\n"
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
            return s_die("backup", 2, "unknown or extra argument '%s' (see soffa backup --help)", c->argv[i]);
        }
    }
    if (!dest || !config)
        return s_die("backup", 2, "give DEST and --config BROKER.INI (see soffa backup --help)");
    s_broker_ini_t ini = {"", ""};
    int prc = ini_parse(config, s_broker_ini_key, &ini);
    if (prc < 0)
        return s_die("backup", 1, "cannot read %s: %s", config, strerror(errno));
    if (prc > 0)
        return s_die("backup", 1, "%s:%d: not an INI line (soffa-broker --config %s --check says more)", config, prc, config);
    char data[1024];
    if (!ini.data_dir[0])
        return s_die("backup", 1, "%s has no [broker] data_dir", config);
    if (!soffa_cfg_path(config, ini.data_dir, data, sizeof data))
        return s_die("backup", 1, "the data_dir of %s is too long a path", config);
    uint8_t pk[32];
    const uint8_t *trusted = NULL;
    char against[1100] = "one and the same key throughout (no --key and no checkpoint.pub)";
    if (key) {
        if (!s_read_hex_key(key, pk))
            return s_die("backup", 2, "--key takes 64 hex digits or a file holding them");
        trusted = pk;
        snprintf(against, sizeof against, "the key %s", key);
    } else {
        /* The public half of [audit] signing_key, beside the key (default
         * checkpoint.pub beside BROKER.INI). */
        char kp[1024], pp[1100];
        if (soffa_cfg_path(config, ini.signing_key[0] ? ini.signing_key : "checkpoint.key", kp, sizeof kp)) {
            size_t kl = strlen(kp);
            snprintf(pp, sizeof pp, "%.*s.pub", (int) (kl > 4 && !strcmp(kp + kl - 4, ".key") ? kl - 4 : kl), kp);
            if (s_read_hex_key(pp, pk)) {
                trusted = pk;
                snprintf(against, sizeof against, "%s", pp);
            }
        }
    }
    /* Opening an LMDB store creates its lock file when it is missing; made
     * by another user (root, say), it would keep the broker from starting. */
    char path[1100];
    struct stat dst, lst;
    snprintf(path, sizeof path, "%s/data.mdb", data);
    if (stat(data, &dst) != 0 || stat(path, &lst) != 0)
        return s_die("backup", 1, "no broker store at %s (the data_dir of %s): %s", data, config, strerror(errno));
    snprintf(path, sizeof path, "%s/lock.mdb", data);
    if (stat(path, &lst) != 0 && geteuid() != dst.st_uid)
        return s_die("backup", 1, "%s has no lock.mdb and belongs to another user: run the backup as that user "
                                  "(sudo -u soffa), so that the lock file LMDB makes is theirs", data);
    soffa_store_t *st = NULL;
    soffa_store_opts_t o = {.path = data, .read_only = true};
    soffa_err_t rc = soffa_store_open(&st, &o);
    if (rc != SOFFA_OK)
        return s_die("backup", 1, "cannot open the store at %s: %s", data, soffa_strerror(rc));
    soffa_store_backup_t rep;
    rc = soffa_store_backup(st, dest, trusted, &rep);
    soffa_store_close(&st);
    if (rc == SOFFA_ERR_CHAIN_BROKEN)
        return s_die("backup", 1, "the copy does not verify, at seq %llu: %s; nothing was kept at %s. Check the store "
                                  "itself: soffa verify %s",
                     (unsigned long long) rep.verify.bad_seq, rep.verify.reason, dest, data);
    if (rc == SOFFA_ERR_EXISTS)
        return s_die("backup", 1, "%s already exists; give a new directory", dest);
    if (rc != SOFFA_OK)
        return s_die("backup", 1, "cannot write the backup to %s: %s", dest, soffa_strerror(rc));
    if (c->json) {
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "dest", dest, "store", data, "head_seq",
                              (json_int_t) rep.head_seq, "bytes", (json_int_t) rep.bytes, "checkpoints",
                              (json_int_t) rep.verify.checkpoints, "signed_up_to", (json_int_t) rep.verify.last_signed,
                              "verified", 1);
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("backup of %s written to %s: %llu record(s), %.1f MiB (data.mdb, keys)\n", data, dest,
               (unsigned long long) rep.head_seq, (double) rep.bytes / (1024.0 * 1024.0));
        if (rep.verify.checkpoints)
            printf("verified: every hash and link checks out; %llu signed checkpoint(s), the newest vouching for 1..%llu, "
                   "checked against %s\n",
                   (unsigned long long) rep.verify.checkpoints, (unsigned long long) rep.verify.last_signed, against);
        else
            printf("verified: every hash and link checks out; no signed checkpoint yet\n");
    }
    return 0;
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

/* ---- School data: import, sync, review (agents/soffa_import.c) -------------------- */

static json_t *
s_call_cb(void *ctx, const char *cmd, json_t *req, int timeout_ms)
{
    return s_call(ctx, cmd, req, timeout_ms);
}

static int
s_cmd_import(s_ctx_t *c)
{
    return soffa_import_cmd(c->argc, c->argv, c->json, s_call_cb, c);
}

static int
s_cmd_sync(s_ctx_t *c)
{
    return soffa_import_sync_cmd(c->argc, c->argv, c->json, s_call_cb, c);
}

static int
s_cmd_pending(s_ctx_t *c)
{
    return soffa_import_pending_cmd(c->argc, c->argv, c->json, s_call_cb, c);
}

static int
s_cmd_review(s_ctx_t *c)
{
    return soffa_import_review_cmd(c->argc, c->argv, c->json, s_call_cb, c);
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
                 "YYYYMMDD-NNNC. A local reserve number (YYYYMMDD and 4 of A-Z/0-9 with at\n"
                 "least two letters, e.g. 20080314TF10) is checked too; its kind is reservnummer.\n\n"
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
    soffa_err_t rc = soffa_id_parse_any(id, &today, canon, &kind);
    if (rc != SOFFA_OK) {
        /* The number itself is not repeated: it is personal data. */
        bool letter = false;
        for (const char *p = id; *p; p++)
            letter |= isalpha((unsigned char) *p) != 0;
        return s_die("check-id", 1, "%s",
                     letter ? s_reserve_problem(rc)
                     : rc == SOFFA_ERR_ID_CHECKSUM ? "bad check digit: the last digit does not match the others"
                     : rc == SOFFA_ERR_ID_DATE   ? "impossible date: no such birth date (or it lies in the future)"
                                                 : "bad format: expected YYMMDD-NNNC, YYMMDD+NNNC, YYYYMMDDNNNC or YYYYMMDD-NNNC");
    }
    if (c->json) {
        soffa_date_t birth;
        char bd[11];
        if (kind == SOFFA_ID_RESERVE)
            soffa_reserve_birth_date(canon, &birth);
        else
            soffa_id_birth_date(canon, &birth);
        soffa_date_format(birth, bd);
        printf("{\"id\":\"%s\",\"kind\":\"%s\",\"birth_date\":\"%s\"}\n", canon, soffa_id_kind_name(kind), bd);
    } else {
        printf("%s %s\n", canon, soffa_id_kind_name(kind));
    }
    return 0;
}

static int
s_cmd_masterkey(s_ctx_t *c)
{
    if (s_want_help(c->argc, c->argv) || c->argc != 3 || strcmp(c->argv[1], "new") != 0) {
        puts("usage: soffa masterkey new FILE\n\n"
             "Makes a master key: 32 random bytes as 64 hex digits in FILE (created, mode\n"
             "0600; an existing file is never overwritten). The broker ([keys] master_key)\n"
             "and each agent ([agent] master_key) seal everything they store under a key of\n"
             "their own. Keep FILE outside the data directory, never in its backups, and a\n"
             "copy of it somewhere safe: a store, and every backup of it, can be read only\n"
             "with the master key it was made under. Under systemd it can be a credential\n"
             "instead: systemd-creds encrypt FILE FILE.cred, LoadCredentialEncrypted=, and\n"
             "master_key = credential:NAME.");
        return s_want_help(c->argc, c->argv) ? 0 : 2;
    }
    soffa_err_t rc = soffa_seal_master_new(c->argv[2]);
    if (rc == SOFFA_ERR_EXISTS)
        return s_die("masterkey", 1, "%s already exists; a master key is never overwritten (give a new name)", c->argv[2]);
    if (rc != SOFFA_OK)
        return s_die("masterkey", 1, "cannot write %s: %s", c->argv[2], soffa_strerror(rc));
    soffa_seal_master_t m;
    char why[600];
    if (soffa_seal_master_load(c->argv[2], NULL, NULL, &m, why, sizeof why) != SOFFA_OK)
        return s_die("masterkey", 1, "%s", why);
    char id[2 * SOFFA_SEAL_ID + 1];
    soffa_seal_master_id_hex(&m, id);
    soffa_seal_master_wipe(&m);
    printf("master key %s written to %s (0600); keep a copy apart from the data and its backups\n", id, c->argv[2]);
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
    snprintf(path, sizeof path, "%s/broker/master.key", abs);
    if (soffa_seal_master_new(path) != SOFFA_OK)
        return s_die("up", 1, "cannot write the broker's master key %s", path);
    int port = s_free_port();
    snprintf(path, sizeof path, "%s/broker/broker.ini", abs);
    FILE *f = fopen(path, "w");
    if (!f)
        return s_die("up", 1, "cannot write %s", path);
    fprintf(f, "; made by soffa up\n[broker]\nendpoint = tcp://127.0.0.1:%d\nipc_endpoint = ipc://%s/broker/broker.sock\n"
               "secret_key = broker.key\ndata_dir = data\nheartbeat_ms = 1000\nexpiry_ms = 5000\n"
               "[audit]\ncheckpoint_every = 10\ncheckpoint_ms = 10000\n[keys]\nmaster_key = master.key\n",
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
        fprintf(af, "; made by soffa up: %s\n", n->what);
        if (!strcmp(n->role, "school"))   /* a municipal school of its own municipality; [agent] stays last */
            fprintf(af, "[school]\nprincipal_kommun = %s\nschool_unit = %s\n\n", n->kommun, n->unit);
        fprintf(af, "[agent]\nname = %s\nbroker = ipc://%s/broker/broker.sock\n"
                    "broker_key = ../broker/broker.pub\nkey = %s.key\ndata_dir = data\nheartbeat_ms = 500\n"
                    "reconnect_max_ms = 2000\n",
                n->name, abs, n->name);
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
    {"import", s_cmd_import, "school: signals from a spreadsheet or an SS 12000 export"},
    {"sync", s_cmd_sync, "school: signals from the SS 12000 API (soffa sync ss12000)"},
    {"pending", s_cmd_pending, "school: derived signals waiting for approval"},
    {"approve", s_cmd_review, "school: send signals waiting for approval"},
    {"reject", s_cmd_review, "school: drop signals waiting for approval"},
    {"replay", s_cmd_replay, "auditors: replay the history"},
    {"history", s_cmd_history, "auditors: one young person's timeline"},
    {"access-log", s_cmd_access_log, "auditors: who read what, when"},
    {"stats", s_cmd_stats, "auditors: a municipality's KAA key figures"},
    {"verify", s_cmd_verify, "check the hash chain of a store, offline"},
    {"backup", s_cmd_backup, "on the broker's host: a verified hot copy of its store"},
    {"up", s_cmd_up, "start a local network (broker + one agent of each role)"},
    {"down", s_cmd_down, "stop a local network"},
    {"keygen", s_cmd_keygen, "make a CurveZMQ key pair"},
    {"masterkey", s_cmd_masterkey, "make a master key (soffa masterkey new FILE)"},
    {"user", s_cmd_user, "the people who may use this site's web inbox"},
    {"check-id", s_cmd_check_id, "check a personnummer, samordningsnummer or reserve number"},
};

static void
s_usage(FILE *out)
{
    fputs("usage: soffa [--socket PATH | --net DIR --agent NAME] [--json] COMMAND [ARGS]\n"
          "       soffa --version | --help\n\n"
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
    if (!strcmp(argv[i], "--version")) {
        soffa_version_print("soffa");
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
