/*  soffa_cli_msg: messages built from flags and handed to the agent (see
 *  soffa_cli_msg.h).
 */
#include "soffa_cli_msg.h"

#include <stdlib.h>
#include <string.h>

#include "soffa_cli_id.h"
#include "soffa_id.h"
#include "soffa_msg.h"
#include "soffa_policy.h"
#include "soffa_terms.h"
#include "soffa_time.h"

/* ---- Building messages from flags -------------------------------------------------------- */

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
    {"signal", "year9", SOFFA_MT_YEAR9_HANDOVER, "school_form=GR",
     "compulsory school: hand a year-9 pupil at risk to the KAA (--consent ID --risk ... --leaves-on DATE)"},
    {"signal", "not-started", SOFFA_MT_ADMISSION_NOT_STARTED, "school_form=GY",
     "upper secondary: an admitted pupil never started (--term-start DATE)"},
    {"ack", NULL, SOFFA_MT_SIGNAL_ACKNOWLEDGED, "result=RECEIVED", "KAA: acknowledge a signal (--re ID|SEQ)"},
    {"answer", NULL, SOFFA_MT_EARLY_WARNING_ANSWERED, NULL,
     "KAA: answer an early warning (--re ID|SEQ --status ACCEPTED|CONTACT_PERSON_ASSIGNED|...)"},
    {"case", "open", SOFFA_MT_KAA_CASE_OPENED, "registration_reason=DROPOUT_NATIONAL", "KAA: open a case"},
    {"case", "contact", SOFFA_MT_CONTACT_ATTEMPTED, NULL, "KAA: record a contact attempt"},
    {"case", "occupation", SOFFA_MT_OCCUPATION_RECORDED, NULL, "KAA: record the youth's occupation"},
    {"case", "map", SOFFA_MT_CASE_MAPPED, NULL, "KAA: the youth's situation was mapped (kartläggning; --mapped-on DATE)"},
    {"case", "plan", SOFFA_MT_PLAN_AGREED, NULL, "KAA: record an agreed plan"},
    {"case", "measure-start", SOFFA_MT_MEASURE_STARTED, NULL, "KAA: a measure started"},
    {"case", "measure-end", SOFFA_MT_MEASURE_ENDED, NULL, "KAA: a measure ended"},
    {"case", "close", SOFFA_MT_KAA_CASE_CLOSED, NULL, "KAA: close a case (--reason ...; MOVED_OUT: --new-hemkommun, and --consent ID to hand the case on)"},
    {"case", "reopen", SOFFA_MT_KAA_CASE_REOPENED, NULL, "KAA: reopen a closed case on a new signal (--case-id ID --signal-id ID)"},
    {"case", "owner", SOFFA_MT_CASE_OWNER_CHANGED, NULL,
     "KAA: the case's contact person, a staff reference (--case-id ID --owner-ref REF --reason ASSIGNED; a "
     "handover: --previous-ref REF --reason STAFF_LEFT|WORKLOAD|YOUTH_ASKED|TEAM_TRANSFER|OTHER)"},
    {"case", "transfer", SOFFA_MT_CASE_TRANSFERRED, NULL,
     "KAA team: pass the case to another team of the municipality (--case-id ID --to-team TEAM)"},
    {"consent", "record", SOFFA_MT_CONSENT_RECORDED, "granted_by=YOUTH;form=WRITTEN", "KAA, school or social: record the youth's consent"},
    {"consent", "withdraw", SOFFA_MT_CONSENT_WITHDRAWN, "by=YOUTH", "KAA, school or social: the youth withdrew a consent"},
    {"refer", "af", SOFFA_MT_REFERRAL_SENT, "target_kind=ARBETSFORMEDLINGEN;purpose=AF_YOUTH_PROGRAMME", "KAA: refer to Arbetsförmedlingen (--consent ID)"},
    {"refer", "social", SOFFA_MT_REFERRAL_SENT, "target_kind=SOCIAL_SERVICES;purpose=SOC_SUPPORT_CONTACT", "KAA: refer to social services (--consent ID)"},
    {"refer", "provider", SOFFA_MT_REFERRAL_SENT, "target_kind=PROVIDER;purpose=PROVIDER_STUDIES",
     "KAA: refer to a local provider (--consent ID --provider-kind KOMVUX|LABOUR_MARKET_UNIT|GUIDANCE_CENTRE|"
     "FOLKHOGSKOLA|NAVIGATOR_CENTRE|SAMORDNINGSFORBUND [--provider NAME] [--purpose PROVIDER_WORK|...])"},
    {"refer", "school", SOFFA_MT_REFERRAL_SENT, "target_kind=SCHOOL;purpose=SCHOOL_RETURN",
     "KAA: refer to another school's programme (a provider of kind SCHOOL_PROGRAMME; --consent ID)"},
    {"refer", "kaa", SOFFA_MT_REFERRAL_SENT, "target_kind=KAA;purpose=KAA_SUPPORT",
     "social: refer to the KAA of the home municipality (--consent ID)"},
    {"referral", "status", SOFFA_MT_REFERRAL_STATUS_CHANGED, NULL,
     "social/AF/provider/KAA: answer a referral (--re SEQ --status ...)"},
    {"referral", "withdraw", SOFFA_MT_REFERRAL_WITHDRAWN, "reason=CASE_CLOSED", "KAA: withdraw a referral"},
    {"concern", "report", SOFFA_MT_CONCERN_REPORT_FILED, "reporter_role=SCHOOL_STAFF", "school or KAA: report of concern for a child under 18"},
    {"concern", "feedback", SOFFA_MT_CONCERN_REPORT_FEEDBACK, NULL, "social: feedback to the reporter (--re SEQ --feedback ...)"},
    {"identity", "change", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, "source=NAVET", "KAA: a youth's identity number changed (--pupil NEW --old-id.id OLD ...)"},
};

/* A message being built from flags. */
typedef struct {
    json_t *req;              /* the request for the agent: cmd, re, message, wait_ms */
    json_t *m;                /* the message */
    json_t *pl;               /* its payload */
    json_t *subject;          /* its subject */
    const char *tname;        /* the type's schema name (the payload's key) */
    bool have_basis;          /* --legal-basis was given */
    int wait_ms;              /* --wait */
} s_draft_t;

/* Takes one flag (its name without "--", dashes as underscores) into the
 * draft. Returns false, with the message printed, when it is wrong. */
static bool
s_draft_flag(s_draft_t *d, const char *cmd, const char *name, const char *v)
{
    char why[300];
    if (!strcmp(name, "pupil") || !strcmp(name, "youth") || !strcmp(name, "child")) {
        char canon[13];
        soffa_id_kind_t kind;
        soffa_err_t rc = soffa_id_parse_any(v, NULL, canon, &kind);
        if (rc != SOFFA_OK) {
            soffa_cli_die(cmd, 1, "--%s: %s", name, soffa_cli_id_problem(v, rc));
            return false;
        }
        json_object_set_new(d->subject, "id", json_string(canon));
        json_object_set_new(d->subject, "id_type", json_string(kind == SOFFA_ID_SAMNR     ? "SAMNR"
                                                               : kind == SOFFA_ID_RESERVE ? "LOCAL_RESERVE"
                                                                                          : "PNR"));
    } else if (!strcmp(name, "reserve_id")) {
        char canon[13];
        soffa_err_t rc = soffa_reserve_parse(v, NULL, canon);
        if (rc != SOFFA_OK) {
            soffa_cli_die(cmd, 1, "--reserve-id: %s", soffa_cli_id_reserve_problem(rc));
            return false;
        }
        json_object_set_new(d->subject, "id", json_string(canon));
        json_object_set_new(d->subject, "id_type", json_string("LOCAL_RESERVE"));
    } else if (!strcmp(name, "hemkommun")) {
        if (soffa_kommun_check(v) != SOFFA_OK) {
            soffa_cli_die(cmd, 1, "--hemkommun: '%s' is not one of the 290 municipality codes", v);
            return false;
        }
        json_object_set_new(d->subject, "hemkommun", json_string(v));
    } else if (!strcmp(name, "district")) {
        if (strlen(v) != 6 || strspn(v, "0123456789") != 6) {
            soffa_cli_die(cmd, 1, "--district: a district (distriktskod) is 6 digits, e.g. 148012");
            return false;
        }
        json_object_set_new(d->subject, "district", json_string(v));
    } else if (!strcmp(name, "protected")) {
        json_object_set_new(d->subject, "protected_identity", json_boolean(!strcmp(v, "yes") || !strcmp(v, "true")));
    } else if (!strcmp(name, "re")) {
        json_object_set_new(d->req, "re", json_string(v));
    } else if (!strcmp(name, "wait")) {
        d->wait_ms = atoi(v);
    } else if (!strcmp(name, "occurred")) {
        soffa_date_t day;
        if (!soffa_date_parse(v, &day)) {
            soffa_cli_die(cmd, 1, "--occurred takes a date YYYY-MM-DD");
            return false;
        }
        json_object_set_new(d->m, "occurred_at_us", json_integer(soffa_date_to_days(day) * 86400000000LL + 43200000000LL));
    } else if (!strcmp(name, "actor")) {
        json_object_set_new(d->m, "sender", json_pack("{s:s}", "actor_ref", v));
    } else if (!strcmp(name, "consent") || !strcmp(name, "correlation") || !strcmp(name, "causation")
               || !strcmp(name, "legal_basis")) {
        char field[160];
        snprintf(field, sizeof field, "%s%s", name, strcmp(name, "legal_basis") ? "_id" : "");
        if (soffa_msg_json_set(d->m, "message", field, v, why, sizeof why) != SOFFA_OK) {
            soffa_cli_die(cmd, 1, "%s", why);
            return false;
        }
        d->have_basis |= !strcmp(name, "legal_basis");
    } else if (soffa_msg_json_set(d->pl, d->tname, name, v, why, sizeof why) != SOFFA_OK) {
        soffa_cli_die(cmd, 1, "%s", why);
        return false;
    }
    return true;
}

/* What flags leave unsaid: the default legal basis, a fresh id for what
 * the message introduces, and for consents the consent's id and time. */
static void
s_draft_finish(s_draft_t *d, soffa_msg_type_t type)
{
    char why[300];
    json_t *m = d->m, *pl = d->pl;
    if (json_object_size(d->subject))
        json_object_set(m, "subject", d->subject);
    /* The basis the policy table gives the type (no route: none, and the
     * broker says why). */
    soffa_legal_basis_t basis = soffa_policy_basis(type, SOFFA_ROLE_NONE);
    if (!d->have_basis && basis != SOFFA_LB_NONE)
        json_object_set_new(m, "legal_basis", json_string(soffa_legal_basis_name(basis)));
    const char *own = s_own_id(type);
    if (own && !json_object_get(pl, own))
        soffa_msg_json_set(pl, d->tname, own, "new", why, sizeof why);
    if (type == SOFFA_MT_CONSENT_WITHDRAWN) {
        /* `--consent ID` names the consent withdrawn; it happened now unless told. */
        if (!json_object_get(pl, "consent_id") && json_object_get(m, "consent_id"))
            json_object_set(pl, "consent_id", json_object_get(m, "consent_id"));
        if (!json_object_get(pl, "withdrawn_at_us"))
            json_object_set_new(pl, "withdrawn_at_us", json_integer(soffa_now_us()));
    }
    if (type == SOFFA_MT_CONSENT_RECORDED || type == SOFFA_MT_CONSENT_WITHDRAWN)
        json_object_set(m, "consent_id", json_object_get(pl, "consent_id"));
    json_object_set(m, d->tname, pl);
}

/* Builds the message JSON for `type` from flags (argv after the type
 * words). Returns the request for the agent, or NULL (message printed). */
static json_t *
s_build(const char *cmd, soffa_msg_type_t type, const char *presets, int argc, char **argv, int *wait_ms)
{
    s_draft_t d = {json_pack("{s:s}", "cmd", "send"), json_object(), json_object(), json_object(),
                   soffa_msg_type_name(type), false, 5000};
    json_t *req = NULL;
    if (presets) {
        char buf[256], why[300];
        snprintf(buf, sizeof buf, "%s", presets);
        char *save = NULL;
        for (char *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
            char *eq = strchr(kv, '=');
            *eq = '\0';
            soffa_msg_json_set(d.pl, d.tname, kv, eq + 1, why, sizeof why);
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            soffa_cli_die(cmd, 2, "'%s' needs a value (flags go as --name VALUE; see --help)", a);
            goto out;
        }
        const char *v = argv[++i];
        char name[128];
        snprintf(name, sizeof name, "%s", a + 2);
        for (char *p = name; *p; p++)
            if (*p == '-')
                *p = '_';
        if (!s_draft_flag(&d, cmd, name, v))
            goto out;
    }
    s_draft_finish(&d, type);
    json_object_set(d.req, "message", d.m);
    json_object_set_new(d.req, "wait_ms", json_integer(d.wait_ms));
    req = d.req;
    d.req = NULL;
out:
    *wait_ms = d.wait_ms;
    json_decref(d.m);
    json_decref(d.pl);
    json_decref(d.subject);
    json_decref(d.req);
    return req;
}

/* Free text the broker screens for sensitive data (issue 13, rule 5): the
 * person is warned before it goes, with the categories it names (from the
 * built-in list; the broker decides, with the list it is configured with). */
static void
s_warn_sensitive(const char *cmd, json_t *m)
{
    char *text = json_dumps(m, JSON_COMPACT);
    soffa_msg_t *msg = NULL;
    soffa_terms_t *terms = NULL;
    const char *field = NULL, *free_text = NULL;
    char why[512] = "";
    if (text && soffa_msg_from_json(text, &msg, NULL, 0) == SOFFA_OK)
        free_text = soffa_policy_text_to_screen(msg, &field);
    if (free_text && soffa_terms_new(&terms, NULL, NULL, 0) == SOFFA_OK
        && soffa_terms_screen(terms, free_text, field, why, sizeof why) != SOFFA_OK)
        fprintf(stderr, "soffa %s: warning: %s; the broker refuses sensitive personal data in text bound for a KAA, "
                        "Arbetsförmedlingen or a school\n", cmd, why[0] ? why : field);
    soffa_terms_destroy(&terms);
    soffa_msg_destroy(&msg);
    free(text);
}

static int
s_send_and_report(soffa_cli_t *c, const char *cmd, json_t *req, int wait_ms)
{
    json_t *sent = json_deep_copy(json_object_get(req, "message"));
    json_t *a = soffa_cli_call(c, cmd, req, wait_ms + 5000);
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
         "  --district NNNNNN   district (distriktskod) of the registered address: a\n"
         "                      municipality whose KAA works in teams may route by it\n"
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
s_cmd_message(soffa_cli_t *c, soffa_msg_type_t type, const char *presets, const char *words, int skip)
{
    if (soffa_cli_want_help(c->argc, c->argv))
        return s_usage_send(words);
    int wait_ms;
    json_t *req = s_build(words, type, presets, c->argc - skip, c->argv + skip, &wait_ms);
    if (!req)
        return 1;
    s_warn_sensitive(words, json_object_get(req, "message"));
    return s_send_and_report(c, words, req, wait_ms);
}

/* ---- Dispatch ------------------------------------------------------------------------------ */

void
soffa_cli_msg_usage(FILE *out)
{
    for (size_t i = 0; i < sizeof s_aliases / sizeof *s_aliases; i++) {
        char words[48];
        snprintf(words, sizeof words, "%s%s%s", s_aliases[i].w1, s_aliases[i].w2 ? " " : "", s_aliases[i].w2 ? s_aliases[i].w2 : "");
        fprintf(out, "  %-20s %s\n", words, s_aliases[i].help);
    }
    fprintf(out, "  %-20s %s\n", "send TYPE", "any message type by its schema name");
}

bool
soffa_cli_msg_run(soffa_cli_t *c, int *status)
{
    int n = c->argc;
    char **rest = c->argv;
    const char *cmd = rest[0];
    if (!strcmp(cmd, "send")) {
        if (n < 2 || !strcmp(rest[1], "--help")) {
            *status = n < 2 ? soffa_cli_die("send", 2, "give a message type, e.g. soffa send absence_reported ...")
                            : s_usage_send("send TYPE");
            return true;
        }
        soffa_msg_type_t t = soffa_msg_type_from_name(rest[1]);
        if (t == SOFFA_MT_NONE)
            *status = soffa_cli_die("send", 2, "'%s' is not a message type (see proto/soffa_msg.proto)", rest[1]);
        else
            *status = s_cmd_message(c, t, NULL, rest[1], 2);
        return true;
    }
    for (size_t k = 0; k < sizeof s_aliases / sizeof *s_aliases; k++) {
        const s_alias_t *al = &s_aliases[k];
        if (strcmp(cmd, al->w1) != 0)
            continue;
        if (!al->w2) {
            *status = s_cmd_message(c, al->type, al->presets, al->w1, 1);
            return true;
        }
        if (n >= 2 && !strcmp(rest[1], al->w2)) {
            char words[64];
            snprintf(words, sizeof words, "%s %s", al->w1, al->w2);
            *status = s_cmd_message(c, al->type, al->presets, words, 2);
            return true;
        }
    }
    for (size_t k = 0; k < sizeof s_aliases / sizeof *s_aliases; k++) {
        if (!strcmp(cmd, s_aliases[k].w1)) {
            *status = soffa_cli_die(cmd, 2, "'%s' needs one of its kinds; see soffa --help", cmd);
            return true;
        }
    }
    return false;
}
