/*  Reload: SIGHUP makes a running soffa-broker re-read its [agent]
 *  sections. A real broker process, real CURVE clients, the file edited
 *  between reloads as an operator would: a new agent gets in, a removed
 *  one's sessions are closed and its key refused, a changed agent's
 *  sessions are closed and its new settings hold for the next, a second
 *  key rotates an agent's key, a broken file changes nothing, and the
 *  agents not touched carry on in the same sessions.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soffa_client.h"
#include "soffa_keys.h"
#include "soffa_time.h"
#include "testkit.h"

/* ---- The configuration file and the log ---------------------------------------- */

static char *
slurp(const char *path)
{
    char *text = NULL, *argv[] = {"cat", (char *) path, NULL};
    tk_run(argv, &text, NULL);
    cr_assert_not_null(text);
    return text;
}

static void
spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Replaces the first `from` in the broker's configuration with `to`. */
static void
cfg_replace(tk_broker_t *b, const char *from, const char *to)
{
    char *text = slurp(b->config);
    char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' is not in %s", from, b->config);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int) (at - text), text, to, at + strlen(from));
    spit(b->config, out);
    free(out);
    free(text);
}

static void
cfg_append(tk_broker_t *b, const char *more)
{
    FILE *f = fopen(b->config, "a");
    cr_assert_not_null(f);
    fputs(more, f);
    fclose(f);
}

/* How often `what` occurs in the broker's log. */
static int
log_count(tk_broker_t *b, const char *what)
{
    char path[400];
    snprintf(path, sizeof path, "%s/broker.log", b->dir);
    char *text = slurp(path);
    int n = 0;
    for (char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    free(text);
    return n;
}

/* Sends SIGHUP and waits until the broker has taken the file or refused it. */
static void
reload(tk_broker_t *b)
{
    int before = log_count(b, "reload: done") + log_count(b, "reload refused");
    cr_assert_eq(kill(b->pid, SIGHUP), 0);
    for (int i = 0; i < 200; i++) {
        if (log_count(b, "reload: done") + log_count(b, "reload refused") > before)
            return;
        usleep(20000);
    }
    cr_assert_fail("the broker did not finish a reload within 4 s (see %s/broker.log)", b->dir);
}

/* The PUBLISH of an absence report by school-1415 (school unit 12345678). */
static soffa_err_t
publish(soffa_client_t *c, int n, char *why)
{
    char pnr[13];
    tk_pnr(2008, 3, 1 + n % 28, 200 + n, 0, pnr);
    char *json = tk_msg_json(SOFFA_MT_ABSENCE_REPORTED, pnr, "1419");
    soffa_err_t rc = tk_publish_json(c, json, NULL, NULL, why);
    free(json);
    return rc;
}

/* Waits for the ERROR that closes c's session; returns its text (static). */
static const char *
closed_why(soffa_client_t *c)
{
    static char text[256];
    int64_t deadline = soffa_mono_us() + 3000000;
    while (soffa_mono_us() < deadline) {
        soffa_frame_t f;
        if (soffa_client_recv(c, &f, 200) != SOFFA_OK)
            continue;
        bool closed = f.type == SOFFA_FRAME_ERROR && f.code == SOFFA_ERR_SESSION_CLOSED;
        snprintf(text, sizeof text, "%s", f.text);
        soffa_frame_fini(&f);
        if (closed)
            return text;
    }
    return NULL;
}

/* A client with any key pair (not necessarily b's files). */
static soffa_err_t
connect_with(tk_broker_t *b, const char *name, const char *keyfile, soffa_client_t **out, soffa_frame_t *welcome)
{
    char path[400], pub[41], sec[41];
    snprintf(path, sizeof path, "%s/%s", b->dir, keyfile);
    cr_assert_eq(soffa_keys_load_secret(path, pub, sec), SOFFA_OK, "%s", path);
    soffa_client_opts_t o = {.endpoint = b->ipc, .server_public = b->broker_pub, .public_key = pub,
                             .secret_key = sec, .name = name, .timeout_ms = 1000};
    return soffa_client_connect(out, &o, welcome);
}

/* ---- Tests ---------------------------------------------------------------------- */

Test(reload, a_new_agent_gets_in_without_a_restart, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char path[400];
    snprintf(path, sizeof path, "%s/kaa-1482", b->dir);
    cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
    soffa_client_t *school = tk_client(b, "school-1415", false);
    soffa_client_t *c = NULL;
    cr_assert_eq(tk_client_try(b, "kaa-1482", false, 500, &c), SOFFA_ERR_TIMEOUT, "an unconfigured key got in");

    cfg_append(b, "\n[agent kaa-1482]\npublic_key = kaa-1482.pub\nrole = kaa\nkommun = 1482\n");
    pid_t pid = b->pid;
    reload(b);
    cr_assert_eq(kill(pid, 0), 0, "SIGHUP ended the broker");
    soffa_frame_t w;
    cr_assert_eq(connect_with(b, "kaa-1482", "kaa-1482.key", &c, &w), SOFFA_OK, "the new agent was not let in");
    cr_assert_eq(w.role, SOFFA_ROLE_KAA);
    cr_assert_str_eq(w.mailboxes[0], "kaa/1482");
    soffa_frame_fini(&w);
    soffa_client_close(&c);
    /* The school's session of before goes on untouched. */
    char why[256] = "";
    cr_assert_eq(publish(school, 1, why), SOFFA_OK, "%s", why);
    cr_assert_eq(log_count(b, "session of school-1415 closed"), 0);
    cr_assert(log_count(b, "1 added (kaa-1482), 0 removed, 0 changed") == 1, "the reload does not say what it added");
    soffa_client_close(&school);
    tk_broker_free(b);
}

Test(reload, a_removed_agent_is_closed_with_a_reason_and_refused_after, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *gone = tk_client(b, "kaa-1415", false);
    soffa_client_t *gone2 = tk_client(b, "kaa-1415", true);
    soffa_client_t *stays = tk_client(b, "school-1415", false);
    cfg_replace(b, "[agent kaa-1415]\npublic_key = kaa-1415.pub\nrole = kaa\nkommun = 1415\n", "");
    reload(b);
    const char *why = closed_why(gone);
    cr_assert_not_null(why, "the removed agent's session was not closed");
    cr_assert(strstr(why, "kaa-1415 is no longer in the broker's configuration"), "%s", why);
    why = closed_why(gone2);
    cr_assert(why && strstr(why, "no longer in"), "its second session (tcp) was not closed: %s", why ? why : "-");
    /* Who stayed goes on in the same session (sessions expire after 1.5 s
     * of silence here: this comes first). */
    char text[256] = "";
    cr_assert_eq(publish(stays, 3, text), SOFFA_OK, "%s", text);
    cr_assert_eq(log_count(b, "session of school-1415 closed"), 0);
    /* The session answers nothing more, and the key gets no new session. */
    cr_assert_neq(publish(gone, 2, text), SOFFA_OK, "a closed session still publishes");
    soffa_client_t *again = NULL;
    cr_assert_eq(tk_client_try(b, "kaa-1415", false, 500, &again), SOFFA_ERR_TIMEOUT, "a removed key got back in");
    soffa_client_close(&gone);
    soffa_client_close(&gone2);
    soffa_client_close(&stays);
    tk_broker_free(b);
}

Test(reload, a_changed_agent_works_under_its_new_settings, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = tk_client(b, "school-1415", false);
    soffa_client_t *af = tk_client(b, "af-1419", false);
    soffa_client_t *kaa = tk_client(b, "kaa-1419", false);
    char why[256] = "";
    cr_assert_eq(publish(school, 1, why), SOFFA_OK, "%s", why);

    /* The principal no longer speaks for unit 12345678; af-1419 becomes
     * social services. */
    cfg_replace(b, "unit = 12345678, 12345679", "unit = 12345679");
    cfg_replace(b, "[agent af-1419]\npublic_key = af-1419.pub\nrole = af", "[agent af-1419]\npublic_key = af-1419.pub\nrole = social");
    reload(b);
    const char *text = closed_why(school);
    cr_assert(text && strstr(text, "configuration of school-1415 changed"), "%s", text ? text : "not closed");
    text = closed_why(af);
    cr_assert(text && strstr(text, "configuration of af-1419 changed"), "%s", text ? text : "not closed");
    cr_assert(log_count(b, "0 added, 0 removed, 2 changed (school-1415, af-1419)") == 1);
    /* kaa-1419 was not changed: its session was not touched. */
    soffa_frame_t st = {.type = SOFFA_FRAME_PING, .tag = 7};
    cr_assert_eq(soffa_client_send(kaa, &st), SOFFA_OK);
    soffa_frame_t f;
    cr_assert_eq(soffa_client_recv(kaa, &f, 2000), SOFFA_OK);
    cr_assert_eq(f.type, SOFFA_FRAME_PONG, "kaa-1419's session did not survive the reload (frame %d, %s)", f.type, f.text);
    soffa_frame_fini(&f);

    /* New sessions: the school is refused for the unit it lost. */
    soffa_client_t *school2 = tk_client(b, "school-1415", false);
    cr_assert_eq(publish(school2, 2, why), SOFFA_ERR_NOT_AUTHORISED, "a unit removed by reload still accepted: %s", why);
    cr_assert(strstr(why, "12345678") || strstr(why, "unit"), "%s", why);
    soffa_frame_t w;
    soffa_client_t *af2 = NULL;
    cr_assert_eq(connect_with(b, "af-1419", "af-1419.key", &af2, &w), SOFFA_OK);
    cr_assert_eq(w.role, SOFFA_ROLE_SOCIAL, "the new session has role %d", (int) w.role);
    cr_assert_str_eq(w.mailboxes[0], "social/1419");
    soffa_frame_fini(&w);
    soffa_client_close(&school);
    soffa_client_close(&school2);
    soffa_client_close(&af);
    soffa_client_close(&af2);
    soffa_client_close(&kaa);
    tk_broker_free(b);
}

Test(reload, an_agent_key_is_rotated_by_two_reloads, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char path[400];
    snprintf(path, sizeof path, "%s/kaa-1419-new", b->dir);
    cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
    soffa_client_t *old = tk_client(b, "kaa-1419", false), *fresh = NULL;
    /* 1: the new key beside the old one. Nothing changes for the agent's
     * settings, so its session goes on. */
    cfg_replace(b, "public_key = kaa-1419.pub", "public_key = kaa-1419-new.pub, kaa-1419.pub");
    reload(b);
    cr_assert(log_count(b, "1 with other keys (kaa-1419)") == 1);
    cr_assert_eq(connect_with(b, "kaa-1419", "kaa-1419-new.key", &fresh, NULL), SOFFA_OK, "the new key was refused");
    soffa_frame_t p = {.type = SOFFA_FRAME_PING, .tag = 1}, f;
    cr_assert_eq(soffa_client_send(old, &p), SOFFA_OK);
    cr_assert_eq(soffa_client_recv(old, &f, 2000), SOFFA_OK);
    cr_assert_eq(f.type, SOFFA_FRAME_PONG, "the old key's session ended at step 1");
    soffa_frame_fini(&f);
    /* 2: the old key goes; only its session is closed. */
    cfg_replace(b, "public_key = kaa-1419-new.pub, kaa-1419.pub", "public_key = kaa-1419-new.pub");
    reload(b);
    const char *why = closed_why(old);
    cr_assert(why && strstr(why, "key this session of kaa-1419 used was removed"), "%s", why ? why : "not closed");
    cr_assert_eq(soffa_client_send(fresh, &p), SOFFA_OK);
    cr_assert_eq(soffa_client_recv(fresh, &f, 2000), SOFFA_OK);
    cr_assert_eq(f.type, SOFFA_FRAME_PONG, "the new key's session ended at step 2");
    soffa_frame_fini(&f);
    soffa_client_t *c = NULL;
    cr_assert_eq(tk_client_try(b, "kaa-1419", false, 500, &c), SOFFA_ERR_TIMEOUT, "the old key still gets in");
    soffa_client_close(&old);
    soffa_client_close(&fresh);
    tk_broker_free(b);
}

Test(reload, a_broken_file_changes_nothing_and_says_why, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char path[400];
    snprintf(path, sizeof path, "%s/kaa-1482", b->dir);
    cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
    soffa_client_t *school = tk_client(b, "school-1415", false);
    /* A new agent and a removal, in a file with one mistake: none of it is
     * taken. */
    cfg_append(b, "\n[agent kaa-1482]\npublic_key = kaa-1482.pub\nrole = kaa\nkommun = 1482\n"
                  "\n[agent af-1415]\npublic_key = stranger.pub\nrole = wizard\nkommun = 1415\n");
    cfg_replace(b, "[agent kaa-1419]", "[agent kaa-1419-x]");
    pid_t pid = b->pid;
    reload(b);
    cr_assert_eq(kill(pid, 0), 0);
    cr_assert(log_count(b, "reload refused, the configuration loaded before stays in force") == 1);
    cr_assert(log_count(b, "[agent af-1415] role must be school, kaa, social, af, provider or audit, not 'wizard'") == 1,
              "the log does not say what is wrong");
    soffa_client_t *c = NULL;
    soffa_err_t rc = tk_client_try(b, "kaa-1482", false, 500, &c);
    cr_assert_eq(rc, SOFFA_ERR_TIMEOUT, "an agent of a refused file got in (%s)", soffa_errname(rc));
    cr_assert_eq(tk_client_try(b, "kaa-1419", false, 2000, &c), SOFFA_OK, "an agent the refused file removed was shut out");
    soffa_client_close(&c);
    char why[256] = "";
    cr_assert_eq(publish(school, 1, why), SOFFA_OK, "%s", why);
    /* A file that cannot be read at all is refused the same way. */
    char moved[420];
    snprintf(moved, sizeof moved, "%s.moved", b->config);
    cr_assert_eq(rename(b->config, moved), 0);
    reload(b);
    cr_assert(log_count(b, "cannot read the configuration file") == 1);
    cr_assert_eq(publish(school, 2, why), SOFFA_OK, "%s", why);
    cr_assert_eq(rename(moved, b->config), 0);
    soffa_client_close(&school);
    tk_broker_free(b);
}

Test(reload, other_settings_wait_for_a_restart_and_deliveries_go_on, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = tk_client(b, "school-1415", false);
    soffa_client_t *kaa = tk_client(b, "kaa-1419", false);
    int types[8];
    uint64_t seqs[8];
    char why[256] = "";
    cr_assert_eq(publish(school, 1, why), SOFFA_OK, "%s", why);
    cr_assert_eq(tk_collect(kaa, "kaa/1419", 16, true, 1, 3000, types, seqs), 1);

    cfg_replace(b, "heartbeat_ms = 500", "heartbeat_ms = 700");
    cfg_replace(b, "log_level = debug", "log_level = info");
    reload(b);
    cr_assert(log_count(b, "reload: [broker] heartbeat_ms changed in the file; it takes effect at the next restart") == 1);
    cr_assert(log_count(b, "reload: log_level is now info") == 1);
    int debug_before = log_count(b, " debug ");
    /* The reader's subscription of before still delivers. */
    cr_assert_eq(publish(school, 2, why), SOFFA_OK, "%s", why);
    bool delivered = false;
    for (int64_t end = soffa_mono_us() + 3000000; !delivered && soffa_mono_us() < end;) {
        soffa_frame_t f;
        if (soffa_client_recv(kaa, &f, 200) == SOFFA_OK)
            delivered = f.type == SOFFA_FRAME_DELIVER && f.seq > seqs[0];
        soffa_frame_fini(&f);
    }
    cr_assert(delivered, "no delivery on the subscription of before the reload");
    cr_assert_eq(log_count(b, " debug "), debug_before, "debug lines after log_level = info");
    soffa_client_close(&school);
    soffa_client_close(&kaa);
    tk_broker_free(b);
}

/* [policy] (issue 13) is part of the file a reload reads: a file with it
 * reloads, and a changed value is named as waiting for a restart (the
 * sensitive-term list and the date limits are read at start). */
Test(reload, a_policy_section_reloads_and_its_changes_wait_for_a_restart, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start("\n[policy]\nevent_max_days = 183\n");
    soffa_client_t *school = tk_client(b, "school-1415", false);
    cfg_replace(b, "event_max_days = 183", "event_max_days = 200");
    reload(b);
    cr_assert_eq(log_count(b, "reload refused"), 0, "a file with [policy] was refused (see %s/broker.log)", b->dir);
    cr_assert_eq(log_count(b, "reload: [policy] event_max_days changed in the file; it takes effect at the next restart"), 1);
    char why[256] = "";
    cr_assert_eq(publish(school, 3, why), SOFFA_OK, "%s", why);
    soffa_client_close(&school);
    tk_broker_free(b);
}

/* An auditor reads one data controller's records (issue 13, rule 11), on
 * a reload as at start: a scope over two is refused unless the auditor
 * spans controllers, and then the auditor counts as changed. */
Test(reload, an_auditor_scope_is_checked_on_reload, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    cfg_replace(b, "scope = kaa/1419, kaa-journal/1419, social/1419", "scope = kaa/1419, kaa/1415");
    reload(b);
    cr_assert_eq(log_count(b, "reload refused"), 1, "a scope over two controllers was taken (see %s/broker.log)", b->dir);
    cr_assert_eq(log_count(b, "[agent audit-1419] its scope 'kaa/1419, kaa/1415' covers the records of more than one "
                              "data controller"), 1);
    cfg_replace(b, "scope = kaa/1419, kaa/1415", "scope = kaa/1419, kaa/1415\nspan_controllers = yes");
    reload(b);
    cr_assert_eq(log_count(b, "reload refused"), 1);
    cr_assert_eq(log_count(b, "1 changed (audit-1419)"), 1, "the auditor's new reach is not a change (see %s/broker.log)",
                 b->dir);
    tk_broker_free(b);
}
