/*  Key rotation with real processes: a soffa-broker serving its previous
 *  key on an endpoint of its own until previous_until, soffa-agent
 *  processes configured with one key or with a list, the window's end; and
 *  an agent's own key rotated by two reloads of the broker while the agent
 *  process switches keys. The agents are read through the command line
 *  (`soffa --socket ... status`), as an operator would.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soffa_keys.h"
#include "soffa_time.h"
#include "testkit.h"

#define BROKER SOFFA_BIN_DIR "/soffa-broker"
#define AGENT SOFFA_BIN_DIR "/soffa-agent"
#define SOFFA SOFFA_BIN_DIR "/soffa"

/* ---- Agents as processes (testkit: tk_agent_*) ---------------------------------------- */

/* The school signals absence through its agent; returns the command's
 * output (free it). */
static char *
signal_absence(const tk_agent_t *school, int n)
{
    char pnr[13];
    tk_pnr(2008, 4, 1 + n % 28, 300 + n, 0, pnr);
    char *out = NULL, *argv[] = {SOFFA, "--socket", (char *) school->sock, "signal", "absence", "--pupil", pnr,
                                 "--hemkommun", "1419", "--period-from", "2026-09-01", "--period-to", "2026-11-13",
                                 "--unexcused-band", "SIGNIFICANT", "--school-unit", "12345678", "--wait", "4000", NULL};
    tk_run(argv, &out, NULL);
    return out ? out : strdup("");
}

static int
inbox_count(const tk_agent_t *a)
{
    char *out = NULL, *argv[] = {SOFFA, "--socket", (char *) a->sock, "--json", "inbox", NULL};
    tk_run(argv, &out, NULL);
    int n = 0;
    for (char *p = out ? strstr(out, "\"seq\"") : NULL; p; p = strstr(p + 1, "\"seq\""))
        n++;
    free(out);
    return n;
}


/* The broker's metrics, from the address its log names (free it). */
static char *
scrape(const char *blog)
{
    char *text = NULL, *argv[] = {"cat", (char *) blog, NULL};
    tk_run(argv, &text, NULL);
    char *at = text ? strstr(text, "metrics on http://") : NULL;
    cr_assert_not_null(at, "the broker does not log its metrics address");
    char url[100];
    cr_assert_eq(sscanf(at + strlen("metrics on "), "%99s", url), 1);
    free(text);
    char *out = NULL, *argv2[] = {"curl", "-sS", "--max-time", "5", url, NULL};
    tk_run(argv2, &out, NULL);
    cr_assert(out && strstr(out, "# TYPE"), "no metrics from %s", url);
    return out;
}

/* ---- The broker's key ------------------------------------------------------------------ */

Test(rotate, the_broker_serves_both_keys_until_the_window_ends, .timeout = 90)
{
    /* The previous key lives in a directory of its own, made first. */
    char *kdir = tk_tmpdir("oldkey");
    char old[300], oldpub[310], prev_ep[320], extra[1200];
    snprintf(old, sizeof old, "%s/broker-old", kdir);
    cr_assert_eq(soffa_keys_generate(old), SOFFA_OK);
    snprintf(oldpub, sizeof oldpub, "%s.pub", old);
    snprintf(prev_ep, sizeof prev_ep, "ipc://%s/previous.sock", kdir);
    char until[32];
    int64_t until_us = soffa_now_us() + 9000000;
    soffa_time_format_local_rfc3339(until_us, until);
    snprintf(extra, sizeof extra, "previous_endpoint = %s\nprevious_secret_key = %s.key\nprevious_until = %s\n", prev_ep,
             old, until);
    strncat(extra, "[metrics]\nlisten = 127.0.0.1:0\n", sizeof extra - strlen(extra) - 1);
    tk_broker_t *b = tk_broker_start(extra);
    char ep2[700], keys2[700];

    /* kaa-1419 has not been told: the old endpoint and the old key. */
    tk_agent_t kaa, school;
    tk_agent_start(&kaa, b, "kaa-1419", "kaa", prev_ep, oldpub, "kaa-1419.key", NULL);
    /* The school lists both: the new endpoint and key first. */
    snprintf(ep2, sizeof ep2, "%s, %s", b->ipc, prev_ep);
    snprintf(keys2, sizeof keys2, "broker.pub, %s", oldpub);
    tk_agent_start(&school, b, "school-1415", "school", ep2, keys2, "school-1415.key", NULL);
    char *st = tk_agent_wait(&kaa, "\"connected\":true", NULL, 8000);
    cr_assert(strstr(st, "\"connected\":true"), "the agent with the previous key did not connect: %s (see %s)", st, kaa.log);
    cr_assert(strstr(st, prev_ep), "not on the previous key's endpoint: %s", st);
    free(st);
    st = tk_agent_wait(&school, "\"connected\":true", NULL, 8000);
    cr_assert(strstr(st, "\"connected\":true"), "the agent with the list did not connect: %s", st);
    cr_assert(strstr(st, b->ipc), "the agent with the list is not on the new key's endpoint: %s", st);
    free(st);

    /* Both work: a signal from the new key's side reaches the old key's side. */
    char *out = signal_absence(&school, 1);
    cr_assert(!strncmp(out, "accepted", 8), "%s", out);
    free(out);
    for (int i = 0; i < 60 && inbox_count(&kaa) < 1; i++)
        usleep(50000);
    cr_assert_eq(inbox_count(&kaa), 1, "the agent on the previous key got nothing");
    char blog[450];
    snprintf(blog, sizeof blog, "%s/broker.log", b->dir);
    cr_assert(tk_file_count(blog, "kaa-1419 connected with the broker's previous key") > 0, "the broker does not say who still uses the old key");
    cr_assert(tk_file_count(blog, "key rotation: the previous key") > 0, "the start does not name the rotation");
    /* The metrics name who is still on the previous key, and until when. */
    char *metrics = scrape(blog);
    cr_assert(strstr(metrics, "soffa_broker_previous_key_sessions{agent=\"kaa-1419\"} 1\n"), "%s", metrics);
    cr_assert_null(strstr(metrics, "soffa_broker_previous_key_sessions{agent=\"school-1415\"}"), "%s", metrics);
    char until_line[100];
    snprintf(until_line, sizeof until_line, "soffa_broker_previous_key_until_seconds %lld\n", (long long) (until_us / 1000000));
    cr_assert(strstr(metrics, until_line), "no '%s' in:\n%s", until_line, metrics);
    free(metrics);

    /* The window ends: the old key's session is closed with the reason,
     * and the old key gets no session any more. */
    while (soffa_now_us() < until_us + 1500000)
        usleep(100000);
    st = tk_agent_wait(&kaa, "previous key was retired", NULL, 4000);
    cr_assert(strstr(st, "previous key was retired"), "the agent on the old key was not told: %s", st);
    free(st);
    usleep(1500000);
    st = tk_agent_status(&kaa);
    cr_assert(strstr(st, "\"connected\":false"), "the old key still has a session after the window: %s", st);
    free(st);
    cr_assert(tk_file_count(blog, "closed; only the key") > 0, "the broker does not say the old endpoint is closed");
    metrics = scrape(blog);
    cr_assert(strstr(metrics, "soffa_broker_previous_key_until_seconds 0\n"), "%s", metrics);
    cr_assert_null(strstr(metrics, "soffa_broker_previous_key_sessions{"), "%s", metrics);
    free(metrics);
    /* The school's session (new key) went on; it still publishes. */
    out = signal_absence(&school, 2);
    cr_assert(!strncmp(out, "accepted", 8), "%s", out);
    free(out);
    tk_agent_stop(&kaa);
    tk_agent_stop(&school);
    tk_broker_free(b);
    tk_rmrf(kdir);
    free(kdir);
}

Test(rotate, an_agent_with_the_old_key_first_moves_over_by_itself, .timeout = 90)
{
    char *kdir = tk_tmpdir("oldkey");
    char old[300], oldpub[310], prev_ep[320], extra[1200];
    snprintf(old, sizeof old, "%s/broker-old", kdir);
    cr_assert_eq(soffa_keys_generate(old), SOFFA_OK);
    snprintf(oldpub, sizeof oldpub, "%s.pub", old);
    snprintf(prev_ep, sizeof prev_ep, "ipc://%s/previous.sock", kdir);
    char until[32];
    int64_t until_us = soffa_now_us() + 5000000;
    soffa_time_format(until_us, until);   /* UTC with a Z */
    until[19] = 'Z';
    until[20] = '\0';
    snprintf(extra, sizeof extra, "previous_endpoint = %s\nprevious_secret_key = %s.key\nprevious_until = %s\n", prev_ep,
             old, until);
    tk_broker_t *b = tk_broker_start(extra);
    /* Configured before the broker moved, in the old order: old endpoint
     * and key first. It connects with them, and when the window ends it
     * goes through its list and finds the new key on the new endpoint. */
    char ep[700], keys[700];
    snprintf(ep, sizeof ep, "%s, %s", prev_ep, b->ipc);
    snprintf(keys, sizeof keys, "%s, broker.pub", oldpub);
    tk_agent_t kaa;
    tk_agent_start(&kaa, b, "kaa-1419", "kaa", ep, keys, "kaa-1419.key", NULL);
    char *st = tk_agent_wait(&kaa, "\"connected\":true", NULL, 8000);
    cr_assert(strstr(st, prev_ep), "it did not start on the first pair: %s", st);
    free(st);
    while (soffa_now_us() < until_us)
        usleep(100000);
    int64_t t0 = soffa_mono_us();
    char want[400];
    snprintf(want, sizeof want, "\"broker_endpoint\":\"%s\"", b->ipc);
    st = tk_agent_wait(&kaa, want, "\"connected\":true", 15000);
    cr_assert(strstr(st, want) && strstr(st, "\"connected\":true"), "it did not move to the new key: %s (see %s)", st,
              kaa.log);
    free(st);
    cr_log_info("moved to the new key %.1f s after the window ended", (double) (soffa_mono_us() - t0) / 1e6);
    tk_agent_stop(&kaa);
    tk_broker_free(b);
    tk_rmrf(kdir);
    free(kdir);
}

/* ---- Configuration errors ---------------------------------------------------------------- */

/* Runs soffa-broker --check on b's configuration with `extra` appended to
 * its [broker] section; returns the exit status and its stderr (free it). */
static int
check_with(tk_broker_t *b, const char *extra, char **err)
{
    char *text = NULL, *argv[] = {"cat", b->config, NULL};
    tk_run(argv, &text, NULL);
    char cfg[420];
    snprintf(cfg, sizeof cfg, "%s/check.ini", b->dir);
    FILE *f = fopen(cfg, "w");
    char *at = strstr(text, "[store]");
    if (!at)
        at = strstr(text, "\n[agent");
    cr_assert_not_null(at);
    fprintf(f, "%.*s%s\n%s", (int) (at - text), text, extra, at);
    fclose(f);
    free(text);
    char *out = NULL, *argv2[] = {BROKER, "--config", cfg, "--check", NULL};
    int rc = tk_run(argv2, &out, err);
    free(out);
    return rc;
}

Test(rotate, a_rotation_is_configured_whole_or_refused, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char *err = NULL;
    struct {
        const char *extra, *says;
    } cases[] = {
        {"previous_endpoint = ipc:///tmp/x.sock\n", "needs all three of previous_endpoint, previous_secret_key and previous_until"},
        {"previous_endpoint = ipc:///tmp/x.sock\nprevious_secret_key = stranger.key\nprevious_until = soon\n",
         "previous_until must be a day (2027-03-01"},
        {"previous_endpoint = ipc:///tmp/x.sock\nprevious_secret_key = stranger.key\nprevious_until = 2027-02-30\n",
         "previous_until must be a day"},
        {"previous_endpoint = ipc:///tmp/x.sock\nprevious_secret_key = broker.key\nprevious_until = 2027-03-01\n",
         "previous_secret_key is the same file as secret_key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(check_with(b, cases[i].extra, &err), 1, "case %zu was taken", i);
        cr_assert(strstr(err, cases[i].says), "case %zu: %s", i, err);
        free(err);
    }
    /* The previous endpoint cannot be the endpoint itself. */
    char extra[600];
    snprintf(extra, sizeof extra, "previous_endpoint = %s\nprevious_secret_key = stranger.key\nprevious_until = 2027-03-01\n", b->ipc);
    cr_assert_eq(check_with(b, extra, &err), 1);
    cr_assert(strstr(err, "previous_endpoint must differ from endpoint and ipc_endpoint"), "%s", err);
    free(err);
    /* A day means to its end, Stockholm time (CET in winter: 23:00 UTC). */
    char *out = NULL, cfg[420];
    cr_assert_eq(check_with(b, "previous_endpoint = ipc:///tmp/x.sock\nprevious_secret_key = stranger.key\n"
                               "previous_until = 2027-03-01\n", &err), 0, "%s", err);
    free(err);
    snprintf(cfg, sizeof cfg, "%s/check.ini", b->dir);
    char *argv[] = {BROKER, "--config", cfg, "--check", NULL};
    tk_run(argv, &out, NULL);
    cr_assert(strstr(out, "broker.previous_until = 2027-03-02T00:00:00+01:00"), "%s", out);
    free(out);
    tk_broker_free(b);
}

Test(rotate, a_window_already_over_serves_nothing_but_the_broker_starts, .timeout = 60)
{
    char *kdir = tk_tmpdir("oldkey");
    char old[300], extra[900];
    snprintf(old, sizeof old, "%s/broker-old", kdir);
    cr_assert_eq(soffa_keys_generate(old), SOFFA_OK);
    snprintf(extra, sizeof extra, "previous_endpoint = ipc://%s/previous.sock\nprevious_secret_key = %s.key\n"
                                  "previous_until = 2020-01-01\n", kdir, old);
    tk_broker_t *b = tk_broker_start(extra);
    char blog[450], sock[400];
    snprintf(blog, sizeof blog, "%s/broker.log", b->dir);
    cr_assert(tk_file_count(blog, "the previous key's window ended at") > 0, "no warning about the ended window");
    snprintf(sock, sizeof sock, "%s/previous.sock", kdir);
    cr_assert_neq(access(sock, F_OK), 0, "the previous key's endpoint was bound after its window");
    tk_broker_free(b);
    tk_rmrf(kdir);
    free(kdir);
}

Test(rotate, agent_lists_are_checked, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    const char *bad[][3] = {
        {"ipc:///a, , ipc:///b", "broker.pub", "broker must list 1 to 4 endpoints"},
        {"ipc:///a,ipc:///b,ipc:///c,ipc:///d,ipc:///e", "broker.pub", "broker must list 1 to 4 endpoints"},
        {"ipc:///a", "broker.pub,", "broker_key must list 1 to 4 keys"},
        {"ipc:///a", "broker.pub, nosuch.pub", "broker_key 'nosuch.pub' is neither a Z85 key nor a readable key file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char cfg[420];
        snprintf(cfg, sizeof cfg, "%s/bad-agent.ini", b->dir);
        FILE *f = fopen(cfg, "w");
        fprintf(f, "[agent]\nname = kaa-1419\nbroker = %s\nbroker_key = %s\nkey = kaa-1419.key\ndata_dir = bad-data\n",
                bad[i][0], bad[i][1]);
        fclose(f);
        char *out = NULL, *err = NULL, *argv[] = {AGENT, "--config", cfg, "--check", NULL};
        int rc = tk_run(argv, &out, &err);
        cr_assert_eq(rc, 1, "case %zu was taken: %s", i, out);
        cr_assert(strstr(err, bad[i][2]), "case %zu: %s", i, err);
        free(out);
        free(err);
    }
    tk_broker_free(b);
}

/* ---- An agent's key ------------------------------------------------------------------------ */

static void
replace_in(const char *path, const char *from, const char *to)
{
    char *text = NULL, *argv[] = {"cat", (char *) path, NULL};
    tk_run(argv, &text, NULL);
    char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' not in %s", from, path);
    FILE *f = fopen(path, "w");
    fprintf(f, "%.*s%s%s", (int) (at - text), text, to, at + strlen(from));
    fclose(f);
    free(text);
}

static void
reload(tk_broker_t *b, int nth)
{
    char blog[450];
    snprintf(blog, sizeof blog, "%s/broker.log", b->dir);
    kill(b->pid, SIGHUP);
    for (int i = 0; i < 200; i++) {
        char *text = NULL, *argv[] = {"cat", blog, NULL};
        tk_run(argv, &text, NULL);
        int n = 0;
        for (char *p = strstr(text, "reload: done"); p; p = strstr(p + 1, "reload: done"))
            n++;
        free(text);
        if (n >= nth)
            return;
        usleep(20000);
    }
    cr_assert_fail("reload %d did not finish", nth);
}

Test(rotate, an_agent_key_is_rotated_by_reloading_the_broker, .timeout = 90)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char path[400];
    snprintf(path, sizeof path, "%s/school-1415-2027", b->dir);
    cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
    tk_agent_t school;
    tk_agent_start(&school, b, "school-1415", "school", b->ipc, "broker.pub", "school-1415.key", NULL);
    char *st = tk_agent_wait(&school, "\"connected\":true", NULL, 8000);
    cr_assert(strstr(st, "\"connected\":true"), "%s", st);
    free(st);
    char *out = signal_absence(&school, 1);
    cr_assert(!strncmp(out, "accepted", 8), "%s", out);
    free(out);

    /* 1. The broker takes the new key beside the old: the agent's session
     *    on the old key goes on. */
    replace_in(b->config, "public_key = school-1415.pub", "public_key = school-1415-2027.pub, school-1415.pub");
    reload(b, 1);
    out = signal_absence(&school, 2);
    cr_assert(!strncmp(out, "accepted", 8), "the old key's session did not survive step 1: %s", out);
    free(out);
    /* 2. The agent switches to its new key (its operator edits agent.ini
     *    and restarts it); queued work is kept. */
    tk_agent_stop(&school);
    replace_in(school.config, "key = school-1415.key", "key = school-1415-2027.key");
    tk_agent_t school2 = school;
    tk_agent_spawn(&school2);
    st = tk_agent_wait(&school2, "\"connected\":true", NULL, 8000);
    cr_assert(strstr(st, "\"connected\":true"), "the new key was refused: %s (see %s)", st, school2.log);
    free(st);
    out = signal_absence(&school2, 3);
    cr_assert(!strncmp(out, "accepted", 8), "%s", out);
    free(out);
    /* 3. The broker drops the old key: the agent's session (new key) is
     *    untouched; the old key gets nothing. */
    replace_in(b->config, "public_key = school-1415-2027.pub, school-1415.pub", "public_key = school-1415-2027.pub");
    reload(b, 2);
    out = signal_absence(&school2, 4);
    cr_assert(!strncmp(out, "accepted", 8), "the new key's session did not survive step 3: %s", out);
    free(out);
    st = tk_agent_status(&school2);
    cr_assert_null(strstr(st, "session_closed"), "the session was closed: %s", st);
    free(st);
    soffa_client_t *c = NULL;
    cr_assert_eq(tk_client_try(b, "school-1415", false, 500, &c), SOFFA_ERR_TIMEOUT, "the old key still gets in");
    tk_agent_stop(&school2);
    tk_broker_free(b);
}
