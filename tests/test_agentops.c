/*  The agent run as a service (issue 16, items 5 and 6): SIGHUP re-reads
 *  its configuration (the hook, [web], what waits for a restart, a broken
 *  file), the hook log stays bounded, and the agent's metrics count what
 *  an operator watches (outbox, hook failures, parked messages). A real
 *  broker, real soffa-agent processes, the command line, real HTTP (curl)
 *  and promtool.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soffa_client.h"
#include "soffa_time.h"
#include "testkit.h"

#define SOFFA SOFFA_BIN_DIR "/soffa"

/* The school publishes an absence report about pupil n (to kaa/1419). */
static void
publish(soffa_client_t *c, int n)
{
    char pnr[13], why[256] = "";
    tk_pnr(2008, 5, 1 + n % 28, 400 + n, 0, pnr);
    char *json = tk_msg_json(SOFFA_MT_ABSENCE_REPORTED, pnr, "1419");
    cr_assert_eq(tk_publish_json(c, json, NULL, NULL, why), SOFFA_OK, "%s", why);
    free(json);
}

/* Replaces the first `from` in the file at path with `to`. */
static void
edit(const char *path, const char *from, const char *to)
{
    char *text = NULL, *argv[] = {"cat", (char *) path, NULL};
    tk_run(argv, &text, NULL);
    char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' is not in %s", from, path);
    FILE *f = fopen(path, "w");
    fprintf(f, "%.*s%s%s", (int) (at - text), text, to, at + strlen(from));
    fclose(f);
    free(text);
}

/* SIGHUP to the agent; waits until its log says the reload is done or
 * refused (one more time than before). */
static void
reload(tk_agent_t *a)
{
    int before = tk_file_count(a->log, "reload: done") + tk_file_count(a->log, "reload refused");
    cr_assert_eq(kill(a->pid, SIGHUP), 0);
    for (int i = 0; i < 200; i++) {
        if (tk_file_count(a->log, "reload: done") + tk_file_count(a->log, "reload refused") > before)
            return;
        usleep(20000);
    }
    cr_assert_fail("the agent did not finish a reload (see %s)", a->log);
}

/* Waits up to ms until the file at path has n lines. */
static bool
wait_lines(const char *path, int n, int ms)
{
    for (int64_t end = soffa_mono_us() + (int64_t) ms * 1000; soffa_mono_us() < end; usleep(50000))
        if (tk_file_count(path, "\n") >= n)
            return true;
    return false;
}

static char *
read_file(const char *path)
{
    char *text = NULL, *argv[] = {"cat", (char *) path, NULL};
    tk_run(argv, &text, NULL);
    return text ? text : strdup("");
}

/* The kaa-1419 agent of b with `extra` in its [agent] section. */
static void
kaa_start(tk_agent_t *a, tk_broker_t *b, const char *extra)
{
    tk_agent_start(a, b, "kaa-1419", "kaa", b->ipc, "broker.pub", "kaa-1419.key", extra);
    char *st = tk_agent_wait(a, "\"connected\":true", NULL, 8000);
    cr_assert(strstr(st, "\"connected\":true"), "the agent did not connect: %s (see %s)", st, a->log);
    free(st);
}

/* ---- Reload ------------------------------------------------------------------------- */

Test(agentops, a_reload_takes_the_new_hook_without_a_new_session, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char marks[400], extra[1200];
    snprintf(marks, sizeof marks, "%s/marks", b->dir);
    snprintf(extra, sizeof extra, "hook = cat >/dev/null; echo A >> %s\n", marks);
    tk_agent_t kaa;
    kaa_start(&kaa, b, extra);
    soffa_client_t *school = tk_client(b, "school-1415", false);
    publish(school, 1);
    cr_assert(wait_lines(marks, 1, 5000), "the first hook did not run");

    char from[600], to[600];
    snprintf(from, sizeof from, "echo A >> %s", marks);
    snprintf(to, sizeof to, "echo B >> %s", marks);
    edit(kaa.config, from, to);
    edit(kaa.config, "heartbeat_ms = 300", "heartbeat_ms = 250");
    reload(&kaa);
    publish(school, 2);
    cr_assert(wait_lines(marks, 2, 5000), "no hook ran after the reload");
    char *m = read_file(marks);
    cr_assert_str_eq(m, "A\nB\n", "the reloaded hook was not the one that ran");
    free(m);
    cr_assert_eq(tk_file_count(kaa.log, "reload: [agent] hook taken"), 1);
    cr_assert_eq(tk_file_count(kaa.log, "reload: [agent] heartbeat_ms taken"), 1);
    /* One session all along: the reload did not reconnect. */
    char blog[450];
    snprintf(blog, sizeof blog, "%s/broker.log", b->dir);
    cr_assert_eq(tk_file_count(blog, "kaa-1419 (kaa) connected"), 1, "the agent reconnected for a reload");
    soffa_client_close(&school);
    tk_agent_stop(&kaa);
    tk_broker_free(b);
}

Test(agentops, a_broken_file_changes_nothing_and_restart_only_settings_are_named, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char marks[400], extra[1200];
    snprintf(marks, sizeof marks, "%s/marks", b->dir);
    snprintf(extra, sizeof extra, "hook = cat >/dev/null; echo A >> %s\n", marks);
    tk_agent_t kaa;
    kaa_start(&kaa, b, extra);
    pid_t pid = kaa.pid;
    /* A mistake beside a new hook: nothing of it is taken. */
    char from[600];
    snprintf(from, sizeof from, "echo A >> %s", marks);
    edit(kaa.config, from, "echo B >> /nonexistent/marks");
    edit(kaa.config, "reconnect_max_ms = 300", "reconnect_max_ms = 300\nhook_retries = 0");
    reload(&kaa);
    cr_assert_eq(kill(pid, 0), 0, "SIGHUP ended the agent");
    cr_assert_eq(tk_file_count(kaa.log, "reload refused, the configuration loaded before stays in force"), 1);
    cr_assert_eq(tk_file_count(kaa.log, "hook_retries must be in 1..1000"), 1, "the log does not say what is wrong");
    soffa_client_t *school = tk_client(b, "school-1415", false);
    publish(school, 1);
    cr_assert(wait_lines(marks, 1, 5000), "the hook of before did not run after a refused reload");
    /* Settings that wait for a restart are named, and left as they are. */
    edit(kaa.config, "hook_retries = 0\n", "");
    edit(kaa.config, "key = kaa-1419.key", "key = kaa-1419.key\nmap_size = 512MiB");
    FILE *f = fopen(kaa.config, "a");
    fputs("\n[metrics]\nlisten = 127.0.0.1:0\n", f);
    fclose(f);
    reload(&kaa);
    cr_assert_eq(tk_file_count(kaa.log, "reload: [agent] map_size changed in the file; it takes effect at the next restart"), 1);
    cr_assert_eq(tk_file_count(kaa.log, "reload: [metrics] listen changed in the file; it takes effect at the next restart"), 1);
    char *st = tk_agent_status(&kaa);
    cr_assert(strstr(st, "\"connected\":true"), "%s", st);
    free(st);
    soffa_client_close(&school);
    tk_agent_stop(&kaa);
    tk_broker_free(b);
}

Test(agentops, a_reload_moves_the_web_control_socket, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    tk_agent_t kaa;
    kaa_start(&kaa, b, "\n[web]\nlisten = 127.0.0.1:18099\ndir = web-a\n");
    char a_sock[450], b_sock[450];
    snprintf(a_sock, sizeof a_sock, "%s/web-a/agent.sock", b->dir);
    snprintf(b_sock, sizeof b_sock, "%s/web-b/agent.sock", b->dir);
    cr_assert_eq(access(a_sock, F_OK), 0, "no web control socket at %s", a_sock);
    edit(kaa.config, "dir = web-a", "dir = web-b");
    reload(&kaa);
    cr_assert_eq(access(b_sock, F_OK), 0, "the web control socket did not move to %s", b_sock);
    cr_assert_neq(access(a_sock, F_OK), 0, "the old web control socket is still there");
    struct stat st;
    cr_assert_eq(stat(b_sock, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "the moved socket is %o", st.st_mode & 0777);
    /* listen emptied: the socket closes. */
    edit(kaa.config, "listen = 127.0.0.1:18099", "listen =");
    reload(&kaa);
    cr_assert_neq(access(b_sock, F_OK), 0, "the web control socket stayed open without [web] listen");
    tk_agent_stop(&kaa);
    tk_broker_free(b);
}

/* ---- The hook log ----------------------------------------------------------------------- */

Test(agentops, the_hook_log_is_bounded, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    /* Each run writes 40,000 bytes to the log; the limit is 64 KiB. */
    tk_agent_t kaa;
    char marks[400], extra[1200];
    snprintf(marks, sizeof marks, "%s/marks", b->dir);
    snprintf(extra, sizeof extra,
             "hook = cat >/dev/null; head -c 40000 /dev/zero; echo run >> %s\nhook_log_max = 64KiB\n",
             marks);
    kaa_start(&kaa, b, extra);
    soffa_client_t *school = tk_client(b, "school-1415", false);
    for (int i = 0; i < 5; i++) {
        publish(school, i);
        cr_assert(wait_lines(marks, i + 1, 5000), "hook run %d did not happen", i + 1);
    }
    char log[450], log1[460];
    snprintf(log, sizeof log, "%s/hook.log", kaa.dir);
    snprintf(log1, sizeof log1, "%s/hook.log.1", kaa.dir);
    struct stat s0, s1;
    cr_assert_eq(stat(log, &s0), 0);
    cr_assert_eq(stat(log1, &s1), 0, "hook.log was never moved aside");
    /* Each file below the limit plus one run's output: at most ~2 x 104 KB kept. */
    cr_assert(s0.st_size <= 64 * 1024 + 40000, "hook.log is %lld bytes", (long long) s0.st_size);
    cr_assert(s1.st_size >= 64 * 1024 && s1.st_size <= 64 * 1024 + 40000, "hook.log.1 is %lld bytes", (long long) s1.st_size);
    cr_assert_eq(s0.st_size + s1.st_size <= 5 * 40000, 1);
    cr_assert_eq(s0.st_mode & 0777, 0600);
    cr_assert(tk_file_count(kaa.log, "reached") >= 1 && tk_file_count(kaa.log, "(hook_log_max); the older part is now") >= 1);
    soffa_client_close(&school);
    tk_agent_stop(&kaa);
    tk_broker_free(b);
}

/* ---- Metrics -------------------------------------------------------------------------------- */

/* The agent's metrics, from the address its log names (free it). */
static char *
scrape(const tk_agent_t *a)
{
    char *text = read_file(a->log);
    char *at = strstr(text, "metrics on http://");
    cr_assert_not_null(at, "the agent does not log its metrics address");
    char url[100];
    cr_assert_eq(sscanf(at + strlen("metrics on "), "%99s", url), 1);
    free(text);
    char *out = NULL, *argv[] = {"curl", "-sS", "--max-time", "5", url, NULL};
    tk_run(argv, &out, NULL);
    cr_assert(out && strstr(out, "# TYPE"), "no metrics from %s", url);
    return out;
}

/* The value of sample `name` (with its labels) in text, or -1. */
static double
value(const char *text, const char *name)
{
    char want[200];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(text, want);
    return at ? strtod(at + strlen(want), NULL) : -1;
}

/* The tools the metrics tests read with (Debian's prometheus and curl,
 * in soffa.sh's PACKAGES): missing, the test fails and says so. */
static void
tools_present(void)
{
    char *argv[] = {"sh", "-c", "command -v promtool && command -v curl", NULL};
    cr_assert_eq(tk_run(argv, NULL, NULL), 0,
                 "promtool or curl is not installed: install Debian's prometheus and curl (./soffa.sh deps)");
}

static void
promtool_ok(const char *text, const char *dir)
{
    char path[450];
    snprintf(path, sizeof path, "%s/scrape.txt", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    char *out = NULL, *err = NULL, *argv[] = {"sh", "-c", "promtool check metrics < \"$0\"", path, NULL};
    int rc = tk_run(argv, &out, &err);
    cr_assert_eq(rc, 0, "promtool check metrics: %s %s", out, err);
    free(out);
    free(err);
}

Test(agentops, the_agent_counts_its_outbox_hook_failures_and_parked_messages, .timeout = 90)
{
    tools_present();
    tk_broker_t *b = tk_broker_start(NULL);
    /* A hook that fails; two tries, then the message is parked. */
    tk_agent_t kaa, school;
    kaa_start(&kaa, b, "hook = cat >/dev/null; exit 3\nhook_retries = 2\nhook_backoff_ms = 10\n\n[metrics]\nlisten = 127.0.0.1:0\n");
    tk_agent_start(&school, b, "school-1415", "school", b->ipc, "broker.pub", "school-1415.key",
                   "\n[metrics]\nlisten = 127.0.0.1:0\n");
    char *st = tk_agent_wait(&school, "\"connected\":true", NULL, 8000);
    free(st);
    char *m = scrape(&kaa);
    promtool_ok(m, b->dir);
    cr_assert_eq(value(m, "soffa_agent_connected"), 1);
    cr_assert_eq(value(m, "soffa_agent_parked"), 0);
    free(m);

    soffa_client_t *c = tk_client(b, "school-1415", false);
    publish(c, 1);
    soffa_client_close(&c);
    for (int i = 0; i < 100; i++) {
        m = scrape(&kaa);
        double parked = value(m, "soffa_agent_parked");
        free(m);
        if (parked == 1)
            break;
        usleep(50000);
    }
    m = scrape(&kaa);
    cr_assert_eq(value(m, "soffa_agent_parked"), 1, "%s", m);
    cr_assert_eq(value(m, "soffa_agent_hook_failures_total"), 2, "%s", m);
    cr_assert_eq(value(m, "soffa_agent_hook_runs_total"), 2, "%s", m);
    free(m);

    /* A working hook (by reload) and `soffa retry`: nothing parked. */
    edit(kaa.config, "exit 3", "exit 0");
    reload(&kaa);
    char *out = NULL, *argv[] = {SOFFA, "--socket", kaa.sock, "--json", "inbox", "--failed", NULL};
    tk_run(argv, &out, NULL);
    char *seq = out ? strstr(out, "\"seq\":") : NULL;
    cr_assert_not_null(seq, "no parked message in the inbox: %s", out);
    char seqs[32];
    snprintf(seqs, sizeof seqs, "%lld", strtoll(seq + 6, NULL, 10));
    free(out);
    char *argv2[] = {SOFFA, "--socket", kaa.sock, "retry", seqs, NULL};
    cr_assert_eq(tk_run(argv2, NULL, NULL), 0);
    for (int i = 0; i < 100; i++) {
        m = scrape(&kaa);
        double runs = value(m, "soffa_agent_hook_runs_total");
        free(m);
        if (runs == 3)
            break;
        usleep(50000);
    }
    m = scrape(&kaa);
    cr_assert_eq(value(m, "soffa_agent_parked"), 0, "%s", m);
    cr_assert_eq(value(m, "soffa_agent_hook_runs_total"), 3, "%s", m);
    cr_assert_eq(value(m, "soffa_agent_hook_failures_total"), 2, "%s", m);
    cr_assert_eq(value(m, "soffa_agent_reloads_total{result=\"taken\"}"), 1, "%s", m);
    free(m);

    /* The broker goes: the school's messages wait in its outbox, and the
     * oldest one ages. */
    tk_broker_stop(b, SIGTERM);
    char pnr[13];
    tk_pnr(2008, 6, 3, 611, 0, pnr);
    char *argv3[] = {SOFFA, "--socket", school.sock, "signal", "absence", "--pupil", pnr, "--hemkommun", "1419",
                     "--period-from", "2026-09-01", "--period-to", "2026-11-13", "--unexcused-band", "SIGNIFICANT",
                     "--school-unit", "12345678", "--wait", "200", NULL};
    tk_run(argv3, NULL, NULL);
    usleep(1200000);
    m = scrape(&school);
    promtool_ok(m, b->dir);
    cr_assert_eq(value(m, "soffa_agent_outbox_depth"), 1, "%s", m);
    cr_assert_eq(value(m, "soffa_agent_connected"), 0, "%s", m);
    double age = value(m, "soffa_agent_outbox_oldest_age_seconds");
    cr_assert(age >= 1.0 && age < 30, "oldest queued age %f", age);
    free(m);
    /* The broker back: the outbox drains, the age goes to 0. */
    cr_assert(tk_broker_spawn(b));
    for (int i = 0; i < 100; i++) {
        m = scrape(&school);
        double d = value(m, "soffa_agent_outbox_depth");
        free(m);
        if (d == 0)
            break;
        usleep(100000);
    }
    m = scrape(&school);
    cr_assert_eq(value(m, "soffa_agent_outbox_depth"), 0, "%s", m);
    cr_assert_eq(value(m, "soffa_agent_outbox_oldest_age_seconds"), 0, "%s", m);
    free(m);
    tk_agent_stop(&school);
    tk_agent_stop(&kaa);
    tk_broker_free(b);
}
