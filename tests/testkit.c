/*  testkit: made-up identities, valid messages of every type, processes. */
#include "testkit.h"
#include "soffa_seal.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soffa_id.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

void
tk_pnr(int year, int month, int day, int birth_no, int samnr, char out[13])
{
    char d[32];
    snprintf(d, sizeof d, "%04u%02u%02u%03u0", (unsigned) year % 10000, (unsigned) month % 100,
             (unsigned) (day + (samnr ? 60 : 0)) % 100, (unsigned) birth_no % 1000);
    for (int c = 0; c <= 9; c++) {
        d[11] = (char) ('0' + c);
        if (soffa_luhn_ok(d + 2, 10))
            break;
    }
    memcpy(out, d, 13);
}

void
tk_reserve(int year, int month, int day, const char *suffix, char out[13])
{
    snprintf(out, 13, "%04u%02u%02u%.4s", (unsigned) year % 10000, (unsigned) month % 100, (unsigned) day % 100,
             suffix);
}

static json_t *
s_uuid(void)
{
    uint8_t id[16];
    char s[SOFFA_UUID_STR];
    soffa_uuid7(id);
    soffa_uuid_format(id, s);
    return json_string(s);
}

/* The Stockholm date `days` days from the moment messages here say they
 * happened (an hour ago), as YYYY-MM-DD: fixtures stay within the dates the
 * broker takes (issue 13, rule 3) whenever the tests run. */
static const char *
s_day(int days, char buf[11])
{
    soffa_date_format(soffa_date_local(soffa_now_us() - 3600000000LL + days * 86400000000LL), buf);
    return buf;
}

/* The subject's age on the day the fixtures' messages happened, from its
 * identity number or reserve number; 18 when it carries no birth date. */
static int
s_age_of(const char *pnr)
{
    soffa_date_t birth, on = soffa_date_local(soffa_now_us() - 3600000000LL);
    if (soffa_reserve_birth_date(pnr, &birth) != SOFFA_OK && soffa_id_birth_date(pnr, &birth) != SOFFA_OK)
        return 18;
    return soffa_date_cmp(on, birth) < 0 ? 0 : soffa_date_age(birth, on);
}

void
tk_old_samnr(char out[13])
{
    tk_pnr(soffa_date_today().year - 18, 3, 14, 273, 1, out);
}

static json_t *
s_payload(soffa_msg_type_t type, const char *pnr, const char *hemkommun, const char **basis)
{
    char d1[11], d2[11];
    *basis = "SL_29_9_INTERNAL";
    switch (type) {
    case SOFFA_MT_ENROLMENT_CHANGED:
        *basis = "SL_15_15_ENROLMENT";
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "event", "LEFT", "effective_date",
                         s_day(-7, d1), "school_unit", "12345678", "school_form", "GY",
                         "programme_code", "SA", "leave_reason", "DISCONTINUED");
    case SOFFA_MT_ABSENCE_REPORTED:
        *basis = "SL_15_15_ABSENCE";
        return json_pack("{s:s, s:s, s:s, s:b, s:s, s:s}", "period_from", s_day(-60, d1), "period_to",
                         s_day(-7, d2), "unexcused_band", "SIGNIFICANT", "investigation_started", 1,
                         "reported_to_csn", "YES", "school_unit", "12345678");
    case SOFFA_MT_AT_RISK_NOTICE:
        *basis = "CONSENT_OSL_12_2";
        return json_pack("{s:s, s:s, s:s}", "risk_code", "REDUCED_PLAN", "note",
                         "Studerar med reducerat program sedan oktober.", "school_unit", "12345678");
    case SOFFA_MT_SIGNAL_ACKNOWLEDGED:
        return json_pack("{s:o, s:s}", "signal_id", s_uuid(), "result", "REGISTERED");
    case SOFFA_MT_EARLY_WARNING_ANSWERED:
        *basis = "CONSENT_OSL_12_2";
        return json_pack("{s:o, s:s, s:s}", "warning_id", s_uuid(), "status", "CONTACT_PERSON_ASSIGNED",
                         "contact_ref", "handl-17");
    case SOFFA_MT_YEAR9_HANDOVER:
        *basis = "CONSENT_OSL_12_2";
        return json_pack("{s:s, s:s, s:s, s:[s,s], s:s, s:s}", "school_unit", "12345678", "school_form", "GR",
                         "risk", "NOT_STARTING", "support_tried", "MENTOR", "PUPIL_HEALTH_TEAM", "contact_role",
                         "STUDY_COUNSELLOR", "leaves_on", s_day(60, d1));
    case SOFFA_MT_ADMISSION_NOT_STARTED:
        *basis = "SL_15_15_ENROLMENT";
        return json_pack("{s:s, s:s, s:s, s:s}", "school_unit", "12345678", "school_form", "GY", "programme_code",
                         "SA", "term_start", s_day(-14, d1));
    case SOFFA_MT_KAA_CASE_OPENED:
        return json_pack("{s:o, s:s, s:[o]}", "case_id", s_uuid(), "registration_reason",
                         "DROPOUT_NATIONAL", "source_signal_ids", s_uuid());
    case SOFFA_MT_CONTACT_ATTEMPTED:
        return json_pack("{s:o, s:i, s:s, s:s}", "case_id", s_uuid(), "attempt_no", 1, "channel",
                         "PHONE", "outcome", "REACHED");
    case SOFFA_MT_OCCUPATION_RECORDED:
        return json_pack("{s:o, s:s, s:s}", "case_id", s_uuid(), "as_of", "2026-11-01",
                         "occupation", "NONE");
    case SOFFA_MT_CASE_MAPPED:
        return json_pack("{s:o, s:s}", "case_id", s_uuid(), "mapped_on", "2026-11-02");
    case SOFFA_MT_PLAN_AGREED:
        return json_pack("{s:o, s:o, s:s, s:[{s:o, s:s}], s:s}", "case_id", s_uuid(), "plan_id",
                         s_uuid(), "goal", "RETURN_TO_STUDIES", "measures", "measure_id", s_uuid(),
                         "measure_type", "SYV", "review_date", "2027-01-15");
    case SOFFA_MT_MEASURE_STARTED:
        return json_pack("{s:o, s:o, s:s, s:{s:s, s:s}, s:s}", "case_id", s_uuid(), "measure_id",
                         s_uuid(), "measure_type", "PRAKTIK", "provider", "kind",
                         "ARBETSFORMEDLINGEN", "kommunkod", hemkommun, "start", "2026-11-10");
    case SOFFA_MT_MEASURE_ENDED:
        return json_pack("{s:o, s:o, s:s, s:s, s:s}", "case_id", s_uuid(), "measure_id", s_uuid(),
                         "measure_type", "PRAKTIK", "end", "2026-11-20", "outcome", "COMPLETED");
    case SOFFA_MT_KAA_CASE_REOPENED:
        return json_pack("{s:o, s:o}", "case_id", s_uuid(), "signal_id", s_uuid());
    case SOFFA_MT_CASE_OWNER_CHANGED:
        return json_pack("{s:o, s:s, s:s, s:s}", "case_id", s_uuid(), "owner_ref", "handl-23", "previous_ref",
                         "handl-17", "reason", "STAFF_LEFT");
    case SOFFA_MT_CASE_TRANSFERRED:
        return json_pack("{s:o, s:s}", "case_id", s_uuid(), "to_team", "centrum");
    case SOFFA_MT_KAA_CASE_CLOSED:
        return json_pack("{s:o, s:s, s:s}", "case_id", s_uuid(), "reason", "MOVED_OUT",
                         "new_hemkommun", "1480");
    case SOFFA_MT_CONSENT_RECORDED: {
        /* Given lawfully for the subject's age (issue 13, rule 2): the young
         * person from 16 (with a maturity assessment), a guardian with them
         * below that; the stated age is the identity number's. */
        *basis = "CONSENT_OSL_12_2";
        int age = s_age_of(pnr);
        json_t *grants = age < 16 ? json_pack("[{s:s}, {s:s}]", "role", "YOUTH", "role", "GUARDIAN")
                                  : json_pack("[{s:s}]", "role", "YOUTH");
        return json_pack("{s:o, s:o, s:i, s:b, s:{s:[s,s], s:[s,s], s:[s,s,s,s,s]}, s:s, s:s, s:s, s:s}",
                         "consent_id", s_uuid(), "granted_by", grants, "youth_age_at_grant",
                         age, "maturity_assessed", 1, "scope", "recipients", "ARBETSFORMEDLINGEN",
                         "SOCIAL_SERVICES", "purposes", "REFERRAL", "STATUS_FEEDBACK",
                         "data_categories", "IDENTITY", "CONTACT", "OCCUPATION", "MEASURES", "SUMMARY_TEXT", "form",
                         "WRITTEN", "valid_from", "2026-11-01", "valid_to", "2027-10-31", "recorded_by", "handl-17");
    }
    case SOFFA_MT_CONSENT_WITHDRAWN:
        *basis = "CONSENT_OSL_12_2";
        return json_pack("{s:o, s:I, s:s}", "consent_id", s_uuid(), "withdrawn_at_us",
                         (json_int_t) soffa_now_us(), "by", "YOUTH");
    case SOFFA_MT_REFERRAL_SENT:
        *basis = "CONSENT_OSL_12_2";
        return json_pack("{s:o, s:s, s:s, s:{s:s}, s:s, s:s}", "referral_id", s_uuid(),
                         "target_kind", "ARBETSFORMEDLINGEN", "purpose", "AF_YOUTH_PROGRAMME",
                         "contact", "phone", "070-000 00 00", "summary",
                         "Vill komma ut i praktik, har samtyckt till kontakt.", "respond_by",
                         "2026-12-15");
    case SOFFA_MT_REFERRAL_STATUS_CHANGED:
        *basis = "CONSENT_OSL_12_2";
        return json_pack("{s:o, s:s}", "referral_id", s_uuid(), "status", "ACCEPTED");
    case SOFFA_MT_REFERRAL_WITHDRAWN:
        *basis = "CONSENT_OSL_12_2";
        return json_pack("{s:o, s:s}", "referral_id", s_uuid(), "reason", "CONSENT_WITHDRAWN");
    case SOFFA_MT_CONCERN_REPORT_FILED:
        *basis = "SOL_REPORT_OF_CONCERN";
        return json_pack("{s:o, s:s, s:[s], s:s, s:b}", "report_id", s_uuid(), "reporter_role",
                         "SCHOOL_STAFF", "concern_codes", "NEGLECT", "description",
                         "Eleven har berättat om oro hemma.", "urgent", 0);
    case SOFFA_MT_CONCERN_REPORT_FEEDBACK:
        *basis = "SOL_REPORTER_FEEDBACK";
        return json_pack("{s:o, s:s}", "report_id", s_uuid(), "feedback", "INVESTIGATION_OPENED");
    case SOFFA_MT_SUBJECT_IDENTITY_CHANGED: {
        /* The subject under its new number (the one given), replacing a
         * made-up samordningsnummer (TK_OLD_SAMNR). */
        char oldp[13];
        tk_old_samnr(oldp);
        soffa_id_kind_t kind = SOFFA_ID_PNR;
        if (soffa_reserve_check(pnr, NULL) == SOFFA_OK)
            kind = SOFFA_ID_RESERVE;
        else
            soffa_id_check(pnr, &kind);
        return json_pack("{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}, s:s}", "old_id", "id_type", "SAMNR",
                         "id", oldp, "hemkommun", hemkommun, "new_id", "id_type",
                         kind == SOFFA_ID_SAMNR ? "SAMNR" : kind == SOFFA_ID_RESERVE ? "LOCAL_RESERVE" : "PNR", "id",
                         pnr, "hemkommun", hemkommun, "source", "NAVET");
    }
    default:
        return NULL;
    }
}

char *
tk_msg_json(soffa_msg_type_t type, const char *pnr, const char *hemkommun)
{
    const char *basis;
    json_t *payload = s_payload(type, pnr, hemkommun, &basis);
    cr_assert_not_null(payload, "no test payload for type %d", type);
    int64_t now = soffa_now_us();
    soffa_id_kind_t kind = SOFFA_ID_PNR;
    if (soffa_reserve_check(pnr, NULL) == SOFFA_OK)
        kind = SOFFA_ID_RESERVE;
    else
        soffa_id_check(pnr, &kind);
    json_t *m = json_pack("{s:o, s:s, s:I, s:I, s:{s:s, s:s}, s:s, s:o}", "message_id", s_uuid(),
                          "schema_version", "1.0", "occurred_at_us", (json_int_t) (now - 3600000000LL),
                          "sent_at_us", (json_int_t) now, "subject", "id_type",
                          kind == SOFFA_ID_SAMNR ? "SAMNR" : kind == SOFFA_ID_RESERVE ? "LOCAL_RESERVE" : "PNR", "id", pnr, "legal_basis", basis,
                          "correlation_id", s_uuid());
    json_object_set_new(json_object_get(m, "subject"), "hemkommun", json_string(hemkommun));
    json_t *own = json_object_get(payload, "consent_id");   /* a consent names itself */
    if (own)
        json_object_set_new(m, "consent_id", json_copy(own));
    else if (strcmp(basis, "CONSENT_OSL_12_2") == 0)
        json_object_set_new(m, "consent_id", s_uuid());
    json_object_set_new(m, soffa_msg_type_name(type), payload);
    char *s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(m);
    return s;
}

soffa_msg_t *
tk_msg(soffa_msg_type_t type, const char *pnr, const char *hemkommun)
{
    char *j = tk_msg_json(type, pnr, hemkommun);
    char why[256] = "";
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = soffa_msg_from_json(j, &msg, why, sizeof why);
    cr_assert_eq(rc, SOFFA_OK, "from_json(%s): %s", soffa_msg_type_name(type), why);
    free(j);
    return msg;
}

char *
tk_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/soffa-test-%s-XXXXXX", tag);
    char *p = mkdtemp(tmpl);
    cr_assert_not_null(p, "mkdtemp");
    return strdup(p);
}

void
tk_rmrf(const char *path)
{
    if (!path || strncmp(path, "/tmp/soffa-test-", 16) != 0)
        return;   /* only ever our own temporary trees */
    char *argv[] = {"rm", "-rf", (char *) path, NULL};
    tk_run(argv, NULL, NULL);
}

static char *
s_slurp(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t) n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

int
tk_run(char *const argv[], char **out, char **err)
{
    char opath[] = "/tmp/soffa-tk-out-XXXXXX", epath[] = "/tmp/soffa-tk-err-XXXXXX";
    int ofd = mkstemp(opath), efd = mkstemp(epath);
    if (ofd < 0 || efd < 0)
        return -1;
    unlink(opath);
    unlink(epath);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        int nul = open("/dev/null", O_RDONLY);
        dup2(nul, 0);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    lseek(ofd, 0, SEEK_SET);
    lseek(efd, 0, SEEK_SET);
    if (out)
        *out = s_slurp(ofd);
    if (err)
        *err = s_slurp(efd);
    close(ofd);
    close(efd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- Broker process harness --------------------------------------------------------- */

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <zmq.h>

#include "soffa_keys.h"
#include "soffa_wire.h"

const char *const TK_AGENTS[][7] = {
    {"school-1415", "school", "1415", "12345678, 12345679", "", TK_SCHOOL_ORGNR, ""},
    {"kaa-1415", "kaa", "1415", "", "", "", ""},
    {"kaa-1419", "kaa", "1419", "", "", "", ""},
    {"kaa-1480", "kaa", "1480", "", "", "", ""},
    {"social-1419", "social", "1419", "", "", "", ""},
    {"af-1419", "af", "1419", "", "", "", ""},
    /* Auditors: of one municipality (Tjörn, Stenungsund), of
     * Arbetsförmedlingen, and one whose scope spans every controller. */
    {"audit-1419", "audit", "", "", "kaa/1419, kaa-journal/1419, social/1419", "", ""},
    {"audit-1415", "audit", "", "", "kaa/1415, kaa-journal/1415, social/1415", "", ""},
    {"audit-af", "audit", "", "", "af/*", "", ""},
    {"audit-all", "audit", "", "", "*", "", "yes"},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL},
};

static int
s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *) &a, &len) != 0)
        cr_assert_fail("cannot find a free port");
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

bool
tk_broker_spawn(tk_broker_t *b)
{
    char log[400];
    snprintf(log, sizeof log, "%s/broker.log", b->dir);
    pid_t pid = fork();
    if (pid == 0) {
        /* A test that fails stops where it is: the broker must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execl(SOFFA_BIN_DIR "/soffa-broker", "soffa-broker", "--config", b->config, (char *) NULL);
        _exit(127);
    }
    b->pid = pid;
    /* Up when a configured agent gets a WELCOME. */
    for (int i = 0; i < 100; i++) {
        soffa_client_t *c = NULL;
        if (tk_client_try(b, "audit-1419", false, 200, &c) == SOFFA_OK) {
            soffa_client_close(&c);
            return true;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            b->pid = 0;
            return false;
        }
    }
    return false;
}

tk_broker_t *
tk_broker_start(const char *extra_ini)
{
    tk_broker_t *b = calloc(1, sizeof *b);
    char *dir = tk_tmpdir("broker");
    snprintf(b->dir, sizeof b->dir, "%s", dir);
    free(dir);
    snprintf(b->ipc, sizeof b->ipc, "ipc://%s/broker.sock", b->dir);
    snprintf(b->tcp, sizeof b->tcp, "tcp://127.0.0.1:%d", s_free_port());
    snprintf(b->config, sizeof b->config, "%s/broker.ini", b->dir);
    char path[400];
    snprintf(path, sizeof path, "%s/broker", b->dir);
    cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
    snprintf(path, sizeof path, "%s/broker.pub", b->dir);
    cr_assert_eq(soffa_keys_load_public(path, b->broker_pub), SOFFA_OK);
    /* [keys] master_key defaults to master.key beside broker.ini. */
    snprintf(path, sizeof path, "%s/master.key", b->dir);
    cr_assert_eq(soffa_seal_master_new(path), SOFFA_OK);
    FILE *f = fopen(b->config, "w");
    cr_assert_not_null(f);
    fprintf(f, "[broker]\nendpoint = %s\nipc_endpoint = %s\nsecret_key = broker.key\ndata_dir = data\n"
               "log_level = debug\nheartbeat_ms = 500\nexpiry_ms = 1500\n%s\n",
            b->tcp, b->ipc, extra_ini ? extra_ini : "");
    for (int i = 0; TK_AGENTS[i][0]; i++) {
        snprintf(path, sizeof path, "%s/%s", b->dir, TK_AGENTS[i][0]);
        cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
        fprintf(f, "\n[agent %s]\npublic_key = %s.pub\nrole = %s\n", TK_AGENTS[i][0], TK_AGENTS[i][0], TK_AGENTS[i][1]);
        if (TK_AGENTS[i][2][0])
            fprintf(f, "kommun = %s\n", TK_AGENTS[i][2]);
        if (TK_AGENTS[i][3][0])
            fprintf(f, "unit = %s\n", TK_AGENTS[i][3]);
        if (TK_AGENTS[i][4][0])
            fprintf(f, "scope = %s\n", TK_AGENTS[i][4]);
        if (TK_AGENTS[i][5][0])
            fprintf(f, "orgnr = %s\n", TK_AGENTS[i][5]);
        if (TK_AGENTS[i][6][0])
            fprintf(f, "span_controllers = %s\n", TK_AGENTS[i][6]);
    }
    /* A key nobody configured. */
    snprintf(path, sizeof path, "%s/stranger", b->dir);
    cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
    fclose(f);
    cr_assert(tk_broker_spawn(b), "the broker did not start; see %s/broker.log", b->dir);
    return b;
}

void
tk_broker_stop(tk_broker_t *b, int sig)
{
    if (!b->pid)
        return;
    kill(b->pid, sig);
    int status;
    waitpid(b->pid, &status, 0);
    if (sig == SIGTERM)
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the broker did not stop cleanly (status %d)", status);
    b->pid = 0;
}

void
tk_broker_free(tk_broker_t *b)
{
    if (!b)
        return;
    tk_broker_stop(b, SIGTERM);
    tk_rmrf(b->dir);
    free(b);
}

/* A client of the given protocol version (1: one message per frame). */
static soffa_err_t
s_client_try(tk_broker_t *b, const char *name, bool tcp, int timeout_ms, uint32_t protocol, soffa_client_t **out)
{
    char path[400], pub[41], sec[41];
    snprintf(path, sizeof path, "%s/%s.key", b->dir, name);
    cr_assert_eq(soffa_keys_load_secret(path, pub, sec), SOFFA_OK, "key of %s", name);
    soffa_client_opts_t o = {.endpoint = tcp ? b->tcp : b->ipc, .server_public = b->broker_pub,
                             .public_key = pub, .secret_key = sec, .name = name, .timeout_ms = timeout_ms,
                             .protocol = protocol};
    return soffa_client_connect(out, &o, NULL);
}

soffa_err_t
tk_client_try(tk_broker_t *b, const char *name, bool tcp, int timeout_ms, soffa_client_t **out)
{
    return s_client_try(b, name, tcp, timeout_ms, 1, out);
}

soffa_client_t *
tk_client_v2(tk_broker_t *b, const char *name, bool tcp)
{
    soffa_client_t *c = NULL;
    soffa_err_t rc = s_client_try(b, name, tcp, 3000, 2, &c);
    cr_assert_eq(rc, SOFFA_OK, "%s could not connect: %s", name, soffa_strerror(rc));
    cr_assert_eq(soffa_client_version(c), 2, "%s speaks protocol %u", name, soffa_client_version(c));
    return c;
}

soffa_client_t *
tk_client(tk_broker_t *b, const char *name, bool tcp)
{
    soffa_client_t *c = NULL;
    soffa_err_t rc = tk_client_try(b, name, tcp, 3000, &c);
    cr_assert_eq(rc, SOFFA_OK, "%s could not connect: %s", name, soffa_strerror(rc));
    return c;
}

soffa_err_t
tk_publish_json(soffa_client_t *c, const char *json, uint64_t *seq, char *mailbox, char *why)
{
    char w[256] = "";
    soffa_msg_t *m = NULL;
    soffa_err_t rc = soffa_msg_from_json(json, &m, w, sizeof w);
    cr_assert_eq(rc, SOFFA_OK, "test message does not parse: %s", w);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(soffa_msg_encode(m, &buf, &len), SOFFA_OK);
    soffa_msg_destroy(&m);
    bool dup;
    uint64_t s = 0;
    rc = soffa_client_publish(c, buf, len, &s, &dup, mailbox, why ? why : w, 256);
    if (seq)
        *seq = s;
    free(buf);
    return rc;
}

void
tk_publish_batch_json(soffa_client_t *c, const char *const *json, size_t n, uint64_t tag0, soffa_err_t *codes,
                      uint64_t *seqs, bool *dups, char (*mailboxes)[SOFFA_NAME_MAX], char (*whys)[256])
{
    cr_assert(n > 0 && n <= SOFFA_BATCH_MAX);
    cr_assert_eq(soffa_client_version(c), 2, "a batch needs a client of protocol 2");
    soffa_frame_item_t *items = calloc(n, sizeof *items);
    bool *answered = calloc(n, sizeof *answered);
    cr_assert(items && answered);
    for (size_t i = 0; i < n; i++) {
        items[i].tag = tag0 + i;
        items[i].data = tk_encode_json(json[i], &items[i].data_len);
    }
    soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH_BATCH, .items = items, .n_items = n};
    cr_assert_eq(soffa_client_send(c, &f), SOFFA_OK);
    for (size_t got = 0; got < n;) {
        soffa_frame_t a;
        cr_assert_eq(soffa_client_recv(c, &a, 5000), SOFFA_OK, "%zu of %zu answers to a batch came", got, n);
        cr_assert_eq(a.type, SOFFA_FRAME_PUBLISH_ACKS, "a batch answered with %s: %s", soffa_frame_type_name(a.type),
                     a.text);
        for (size_t i = 0; i < a.n_items; i++) {
            const soffa_frame_item_t *it = &a.items[i];
            cr_assert(it->tag >= tag0 && it->tag < tag0 + n, "an answer to tag %llu", (unsigned long long) it->tag);
            size_t k = it->tag - tag0;
            cr_assert_not(answered[k], "tag %llu answered twice", (unsigned long long) it->tag);
            answered[k] = true;
            codes[k] = (soffa_err_t) it->code;
            if (seqs)
                seqs[k] = it->seq;
            if (dups)
                dups[k] = it->duplicate;
            if (mailboxes)
                snprintf(mailboxes[k], SOFFA_NAME_MAX, "%s", !it->code && it->mailbox ? it->mailbox : "");
            if (whys)
                snprintf(whys[k], 256, "%s", it->code && it->text ? it->text : "");
            got++;
        }
        soffa_frame_fini(&a);
    }
    for (size_t i = 0; i < n; i++)
        free((void *) items[i].data);
    free(items);
    free(answered);
}

/* Clients of tk_client_pub and their second connections (protocol 2). */
static struct {
    soffa_client_t *one, *two;
} s_twins[16];

soffa_client_t *
tk_client_pub(tk_broker_t *b, const char *name)
{
    soffa_client_t *c = tk_client(b, name, false);
    const char *batch = getenv("SOFFA_TEST_BATCH");
    if (!batch || strcmp(batch, "1") != 0)
        return c;
    for (size_t i = 0; i < sizeof s_twins / sizeof *s_twins; i++)
        if (!s_twins[i].one) {
            s_twins[i].one = c;
            s_twins[i].two = tk_client_v2(b, name, false);
            return c;
        }
    cr_assert_fail("more than %zu clients with a second connection", sizeof s_twins / sizeof *s_twins);
    return c;
}

void
tk_client_pub_close(soffa_client_t **c)
{
    for (size_t i = 0; *c && i < sizeof s_twins / sizeof *s_twins; i++)
        if (s_twins[i].one == *c) {
            soffa_client_close(&s_twins[i].two);
            s_twins[i].one = NULL;
        }
    soffa_client_close(c);
}

soffa_client_t *
tk_client_second(soffa_client_t *c)
{
    for (size_t i = 0; i < sizeof s_twins / sizeof *s_twins; i++)
        if (c && s_twins[i].one == c)
            return s_twins[i].two;
    return NULL;
}

json_t *
tk_json(soffa_msg_type_t type, const char *pnr, const char *hemkommun)
{
    char *s = tk_msg_json(type, pnr, hemkommun);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    cr_assert(j != NULL, "tk_msg_json gave no JSON object");
    return j;
}

const char *
tk_str(json_t *j, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *dot = strchr(buf, '.');
    if (dot) {
        *dot = '\0';
        j = json_object_get(j, buf);
        path = dot + 1;
    }
    return json_string_value(json_object_get(j, path));
}

json_t *
tk_payload(json_t *j)
{
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (soffa_msg_type_from_name(key) != SOFFA_MT_NONE)
            return v;
    }
    return NULL;
}

soffa_err_t
tk_publish_any(soffa_client_t *c, const char *json, uint64_t *seq, char *mailbox, char *why)
{
    soffa_client_t *two = tk_client_second(c);
    if (!two)
        return tk_publish_json(c, json, seq, mailbox, why);
    soffa_err_t rc;
    char mb[1][SOFFA_NAME_MAX], w[1][256];
    uint64_t sq = 0;
    tk_publish_batch_json(two, &json, 1, soffa_client_next_tag(two), &rc, &sq, NULL, mb, w);
    if (seq)
        *seq = sq;
    if (mailbox)
        snprintf(mailbox, SOFFA_NAME_MAX, "%s", mb[0]);
    if (why)
        snprintf(why, 256, "%s", w[0]);
    return rc;
}

soffa_err_t
tk_pub(soffa_client_t *c, json_t *j, char *mailbox, char *why)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char mb[SOFFA_NAME_MAX] = "", w[256] = "";
    mailbox = mailbox ? mailbox : mb;
    why = why ? why : w;
    mailbox[0] = why[0] = '\0';
    soffa_err_t rc = tk_publish_any(c, s, NULL, mailbox, why);
    free(s);
    return rc;
}

void
tk_pub_ok(soffa_client_t *c, json_t *j, const char *want_mailbox)
{
    char *s = json_dumps(j, JSON_COMPACT);
    char mailbox[SOFFA_NAME_MAX], why[256];
    soffa_err_t rc = tk_pub(c, j, mailbox, why);
    cr_assert_eq(rc, SOFFA_OK, "refused (%s): %s\n%s", soffa_errname(rc), why, s);
    cr_assert_str_eq(mailbox, want_mailbox, "%s", s);
    free(s);
}

/* The hashes of recent deliveries, so that tests can acknowledge them the
 * way the broker asks (naming the hash a delivery carried). */
static struct {
    uint64_t seq;
    uint8_t hash[SOFFA_HASH_LEN];
} s_seen[4096];

static void
s_seen_put(uint64_t seq, const uint8_t *hash)
{
    s_seen[seq % 4096].seq = seq;
    memcpy(s_seen[seq % 4096].hash, hash, SOFFA_HASH_LEN);
}

soffa_err_t
tk_ack(soffa_client_t *c, const char *mailbox, uint64_t seq)
{
    soffa_frame_t a = {.type = SOFFA_FRAME_ACK, .seq = seq};
    snprintf(a.mailbox, sizeof a.mailbox, "%s", mailbox);
    if (s_seen[seq % 4096].seq == seq && seq) {
        memcpy(a.hash, s_seen[seq % 4096].hash, SOFFA_HASH_LEN);
        a.has_hash = true;
    }
    return soffa_client_send(c, &a);
}

void
tk_seen(const soffa_frame_t *deliver)
{
    if (deliver->type == SOFFA_FRAME_DELIVER && deliver->has_hash)
        s_seen_put(deliver->seq, deliver->hash);
}

size_t
tk_collect(soffa_client_t *c, const char *mailbox, uint32_t window, bool ack, size_t max, int wait_ms, int *types,
           uint64_t *seqs)
{
    soffa_frame_t sub = {.type = SOFFA_FRAME_SUBSCRIBE, .credit = window};
    snprintf(sub.mailbox, sizeof sub.mailbox, "%s", mailbox);
    cr_assert_eq(soffa_client_send(c, &sub), SOFFA_OK);
    size_t n = 0;
    int64_t deadline = soffa_mono_us() + (int64_t) wait_ms * 1000;
    while (n < max) {
        int64_t left = (deadline - soffa_mono_us()) / 1000;
        if (left <= 0)
            break;
        soffa_frame_t f;
        if (soffa_client_recv(c, &f, (int) left) != SOFFA_OK) {
            soffa_frame_fini(&f);
            continue;
        }
        if (f.type == SOFFA_FRAME_ERROR)
            cr_assert_fail("subscribe to %s refused: %s", mailbox, f.text);
        if (f.type == SOFFA_FRAME_DELIVER) {
            soffa_envelope_t e;
            cr_assert_eq(soffa_envelope_decode(f.data, f.data_len, &e), SOFFA_OK);
            if (types)
                types[n] = (int) e.msg_type;
            if (seqs)
                seqs[n] = f.seq;
            soffa_envelope_fini(&e);
            n++;
            tk_seen(&f);
            if (ack)
                tk_ack(c, mailbox, f.seq);
        }
        soffa_frame_fini(&f);
    }
    return n;
}

/* ---- Raw CURVE sockets, to send what soffa_client never would ---- */

uint8_t *
tk_encode_json(const char *json, size_t *len)
{
    soffa_msg_t *m = NULL;
    char why[256] = "";
    cr_assert_eq(soffa_msg_from_json(json, &m, why, sizeof why), SOFFA_OK, "test message does not parse: %s", why);
    uint8_t *buf;
    cr_assert_eq(soffa_msg_encode(m, &buf, len), SOFFA_OK);
    soffa_msg_destroy(&m);
    return buf;
}

void *
tk_raw_dealer(tk_broker_t *b, void *ctx, const char *name)
{
    char path[400], pub[41], sec[41];
    snprintf(path, sizeof path, "%s/%s.key", b->dir, name);
    cr_assert_eq(soffa_keys_load_secret(path, pub, sec), SOFFA_OK);
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, b->broker_pub, 41);
    zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 41);
    zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 41);
    cr_assert_eq(zmq_connect(d, b->ipc), 0);
    return d;
}

bool
tk_raw_recv(void *d, soffa_frame_t *f, int timeout_ms)
{
    zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
    memset(f, 0, sizeof *f);
    if (zmq_poll(&it, 1, timeout_ms) != 1)
        return false;
    zmq_msg_t m;
    zmq_msg_init(&m);
    cr_assert_geq(zmq_msg_recv(&m, d, 0), 0);
    cr_assert_eq(soffa_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), f), SOFFA_OK);
    zmq_msg_close(&m);
    return true;
}

void
tk_expect_error(void *d, const void *buf, size_t len, soffa_err_t code)
{
    cr_assert_geq(zmq_send(d, buf, len, 0), 0);
    soffa_frame_t f;
    cr_assert(tk_raw_recv(d, &f, 3000), "no answer from the broker");
    cr_assert_eq(f.type, SOFFA_FRAME_ERROR, "got %s", soffa_frame_type_name(f.type));
    cr_assert_eq(f.code, code, "got %s (%s), wanted %s", soffa_errname(f.code), f.text, soffa_errname(code));
    soffa_frame_fini(&f);
}

void
tk_send_frame(void *d, const soffa_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(soffa_frame_encode(f, &buf, &len), SOFFA_OK);
    cr_assert_geq(zmq_send(d, buf, len, 0), 0);
    free(buf);
}

void
tk_raw_hello(void *d)
{
    soffa_frame_t hello = {.type = SOFFA_FRAME_HELLO, .version = 1};
    tk_send_frame(d, &hello);
    soffa_frame_t f;
    cr_assert(tk_raw_recv(d, &f, 3000), "no WELCOME");
    cr_assert_eq(f.type, SOFFA_FRAME_WELCOME, "got %s: %s", soffa_frame_type_name(f.type), f.text);
    soffa_frame_fini(&f);
}

/* ---- A master key for stores the tests open themselves ---- */

static char s_master_hex[80];
static soffa_seal_master_t s_master;

const soffa_seal_master_t *
tk_master(void)
{
    if (!s_master.loaded) {
        char *d = tk_tmpdir("master");
        char path[400], why[600];
        snprintf(path, sizeof path, "%s/master.key", d);
        cr_assert_eq(soffa_seal_master_new(path), SOFFA_OK);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f);
        cr_assert_not_null(fgets(s_master_hex, sizeof s_master_hex, f));
        fclose(f);
        cr_assert_eq(soffa_seal_master_load(path, NULL, NULL, &s_master, why, sizeof why), SOFFA_OK, "%s", why);
        tk_rmrf(d);
        free(d);
    }
    return &s_master;
}

void
tk_master_file(const char *path)
{
    tk_master();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert(fd >= 0, "cannot write %s", path);
    cr_assert_eq(write(fd, s_master_hex, strlen(s_master_hex)), (ssize_t) strlen(s_master_hex));
    close(fd);
}

void
tk_broker_master(const tk_broker_t *b, soffa_seal_master_t *m)
{
    char path[400], why[600];
    snprintf(path, sizeof path, "%s/master.key", b->dir);
    cr_assert_eq(soffa_seal_master_load(path, NULL, NULL, m, why, sizeof why), SOFFA_OK, "%s", why);
}

/* ---- A real agent process ---- */

void
tk_agent_spawn(tk_agent_t *a)
{
    a->pid = fork();
    cr_assert(a->pid >= 0);
    if (a->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execl(SOFFA_BIN_DIR "/soffa-agent", "soffa-agent", "--config", a->config, (char *) NULL);
        _exit(127);
    }
}

void
tk_agent_start(tk_agent_t *a, tk_broker_t *b, const char *name, const char *tag, const char *broker,
               const char *broker_key, const char *key, const char *extra)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->dir, sizeof a->dir, "%s/%s-data", b->dir, tag);
    snprintf(a->config, sizeof a->config, "%s/%s.ini", b->dir, tag);
    snprintf(a->sock, sizeof a->sock, "%s/control.sock", a->dir);
    snprintf(a->log, sizeof a->log, "%s/%s.log", b->dir, tag);
    FILE *f = fopen(a->config, "w");
    cr_assert_not_null(f);
    fprintf(f, "[agent]\nname = %s\nbroker = %s\nbroker_key = %s\nkey = %s\ndata_dir = %s-data\n"
               "heartbeat_ms = 300\nreconnect_max_ms = 300\n%s",
            name, broker, broker_key, key, tag, extra ? extra : "");
    fclose(f);
    tk_agent_spawn(a);
}

void
tk_agent_stop(tk_agent_t *a)
{
    if (!a->pid)
        return;
    kill(a->pid, SIGTERM);
    int status;
    waitpid(a->pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s did not stop cleanly (see %s)", a->name, a->log);
    a->pid = 0;
}

char *
tk_agent_status(const tk_agent_t *a)
{
    char *out = NULL, *argv[] = {SOFFA_BIN_DIR "/soffa", "--socket", (char *) a->sock, "--json", "status", "--sample",
                                 "0", NULL};
    tk_run(argv, &out, NULL);
    return out ? out : strdup("");
}

char *
tk_agent_wait(const tk_agent_t *a, const char *want, const char *also, int ms)
{
    int64_t end = soffa_mono_us() + (int64_t) ms * 1000;
    char *st = NULL;
    do {
        free(st);
        st = tk_agent_status(a);
        if (strstr(st, want) && (!also || strstr(st, also)))
            return st;
        usleep(50000);
    } while (soffa_mono_us() < end);
    return st;
}

int
tk_file_count(const char *path, const char *what)
{
    char *text = NULL, *argv[] = {"cat", (char *) path, NULL};
    tk_run(argv, &text, NULL);
    int n = 0;
    for (char *p = text ? strstr(text, what) : NULL; p; p = strstr(p + 1, what))
        n++;
    free(text);
    return n;
}
