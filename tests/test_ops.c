/*  Operations: the daemons under a service manager, without systemd.
 *
 *  The sd_notify protocol is tested for real: the test owns a unix datagram
 *  socket, starts soffa-broker or soffa-agent with NOTIFY_SOCKET pointing at
 *  it (and WATCHDOG_USEC, as systemd sets them for Type=notify with
 *  WatchdogSec=), and reads what arrives, with the sender's credentials.
 *  Journald's priority prefixes are tested by making stderr a file and
 *  JOURNAL_STREAM name (or not name) that file's device and inode.
 */
#define _GNU_SOURCE   /* struct ucred, SCM_CREDENTIALS */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soffa_client.h"
#include "soffa_time.h"
#include "testkit.h"

/* ---- A notify socket the test owns ---------------------------------------------- */

typedef struct {
    int fd;
    char path[300];
} notify_t;

static void
notify_open(notify_t *n, const char *dir)
{
    snprintf(n->path, sizeof n->path, "%s/notify.sock", dir);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(n->fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    cr_assert(strlen(n->path) < sizeof a.sun_path, "%s is too long for a socket", n->path);
    memcpy(a.sun_path, n->path, strlen(n->path) + 1);
    cr_assert_eq(bind(n->fd, (struct sockaddr *) &a, sizeof a), 0, "bind %s", n->path);
    int on = 1;
    cr_assert_eq(setsockopt(n->fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
}

/* Receives one datagram within timeout_ms into buf (NUL-terminated) and the
 * sender's pid; false when none came. */
static bool
notify_recv(notify_t *n, char *buf, size_t len, pid_t *sender, int timeout_ms)
{
    struct pollfd p = {n->fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1)
        return false;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {buf, len - 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
    ssize_t r = recvmsg(n->fd, &m, 0);
    if (r < 0)
        return false;
    buf[r] = '\0';
    *sender = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
            *sender = ((struct ucred *) (void *) CMSG_DATA(c))->pid;
    return true;
}

/* Waits for a datagram containing `want`; returns how many datagrams came
 * before it (-1 when it did not come within timeout_ms). */
static int
notify_wait_for(notify_t *n, const char *want, pid_t from, int timeout_ms)
{
    int64_t deadline = soffa_mono_us() + (int64_t) timeout_ms * 1000;
    int before = 0;
    char buf[512];
    pid_t sender;
    while (soffa_mono_us() < deadline) {
        if (!notify_recv(n, buf, sizeof buf, &sender, 100))
            continue;
        cr_assert_eq(sender, from, "a notification from pid %d, not the daemon %d", (int) sender, (int) from);
        if (strstr(buf, want))
            return before;
        before++;
    }
    return -1;
}

/* Reads whatever is left from a daemon that has stopped. */
static void
notify_drain(notify_t *n)
{
    char buf[512];
    pid_t sender;
    while (notify_recv(n, buf, sizeof buf, &sender, 50))
        ;
}

/* Counts WATCHDOG=1 datagrams over ms milliseconds. */
static int
notify_count_watchdog(notify_t *n, int ms)
{
    int64_t deadline = soffa_mono_us() + (int64_t) ms * 1000;
    int count = 0;
    char buf[512];
    pid_t sender;
    while (soffa_mono_us() < deadline)
        if (notify_recv(n, buf, sizeof buf, &sender, 20) && strstr(buf, "WATCHDOG=1"))
            count++;
    return count;
}

/* ---- Starting a daemon with a chosen environment --------------------------------- */

typedef struct {
    const char *notify_socket;   /* NOTIFY_SOCKET, or NULL to leave it unset */
    const char *watchdog_usec;   /* WATCHDOG_USEC, or NULL */
    bool watchdog_pid_other;     /* WATCHDOG_PID names another process */
    bool journal;                /* JOURNAL_STREAM names the log file */
    bool journal_other;          /* JOURNAL_STREAM names another file */
} env_t;

/* Starts BIN --config CONFIG with stderr to LOG (truncated) and env as told. */
static pid_t
spawn(const char *bin, const char *config, const char *log, const env_t *e)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        dup2(fd, 1);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        unsetenv("JOURNAL_STREAM");
        if (e->notify_socket)
            setenv("NOTIFY_SOCKET", e->notify_socket, 1);
        if (e->watchdog_usec)
            setenv("WATCHDOG_USEC", e->watchdog_usec, 1);
        char v[64];
        if (e->watchdog_pid_other) {
            snprintf(v, sizeof v, "%d", (int) getppid());
            setenv("WATCHDOG_PID", v, 1);
        }
        struct stat st;
        if (e->journal && fstat(2, &st) == 0) {
            snprintf(v, sizeof v, "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
            setenv("JOURNAL_STREAM", v, 1);
        }
        if (e->journal_other && stat("/dev/null", &st) == 0) {
            snprintf(v, sizeof v, "%llu:%llu", (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
            setenv("JOURNAL_STREAM", v, 1);
        }
        execl(bin, bin, "--config", config, (char *) NULL);
        _exit(127);
    }
    return pid;
}

static int
stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A broker made by the testkit, stopped again so that the test can start it
 * its own way on the same configuration, keys and store. */
static tk_broker_t *
broker_prepared(void)
{
    tk_broker_t *b = tk_broker_start(NULL);
    tk_broker_stop(b, SIGTERM);
    return b;
}

#define BROKER SOFFA_BIN_DIR "/soffa-broker"
#define AGENT SOFFA_BIN_DIR "/soffa-agent"

/* ---- READY=1 and WATCHDOG=1 ---------------------------------------------------------- */

Test(ops, broker_says_ready_only_when_it_serves_and_pings_the_watchdog, .timeout = 60)
{
    tk_broker_t *b = broker_prepared();
    notify_t n;
    notify_open(&n, b->dir);
    char log[400];
    snprintf(log, sizeof log, "%s/notify.log", b->dir);
    env_t e = {.notify_socket = n.path, .watchdog_usec = "200000"};
    pid_t pid = spawn(BROKER, b->config, log, &e);

    /* READY=1 is the first thing said, and when it is said the broker
     * already takes connections on both endpoints: one attempt each. */
    cr_assert_eq(notify_wait_for(&n, "READY=1", pid, 10000), 0, "READY=1 was not the first notification (see %s)", log);
    soffa_client_t *c = NULL;
    cr_assert_eq(tk_client_try(b, "audit-1419", false, 1000, &c), SOFFA_OK, "READY=1 came before the ipc endpoint served");
    soffa_client_close(&c);
    cr_assert_eq(tk_client_try(b, "kaa-1419", true, 1000, &c), SOFFA_OK, "READY=1 came before the tcp endpoint served");
    soffa_client_close(&c);

    /* WATCHDOG_USEC=200 ms: a ping every quarter of it, and they keep coming. */
    int first = notify_count_watchdog(&n, 1000);
    int second = notify_count_watchdog(&n, 1000);
    cr_assert(first >= 10 && first <= 30, "%d WATCHDOG=1 in the first second (expected about 20)", first);
    cr_assert(second >= 10 && second <= 30, "%d WATCHDOG=1 in the next second (expected about 20)", second);

    kill(pid, SIGTERM);
    cr_assert(notify_wait_for(&n, "STOPPING=1", pid, 10000) >= 0, "no STOPPING=1 on SIGTERM");
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(n.fd);
    tk_broker_free(b);
}

Test(ops, broker_reload_says_reloading_then_ready_and_keeps_serving, .timeout = 60)
{
    tk_broker_t *b = broker_prepared();
    notify_t n;
    notify_open(&n, b->dir);
    char log[400];
    snprintf(log, sizeof log, "%s/notify.log", b->dir);
    env_t e = {.notify_socket = n.path};
    pid_t pid = spawn(BROKER, b->config, log, &e);
    cr_assert_eq(notify_wait_for(&n, "READY=1", pid, 10000), 0);
    /* systemctl reload: SIGHUP; RELOADING=1 (with the time, for
     * Type=notify-reload) and READY=1 again once the file is taken. */
    kill(pid, SIGHUP);
    cr_assert_eq(notify_wait_for(&n, "RELOADING=1\nMONOTONIC_USEC=", pid, 5000), 0, "no RELOADING=1 on SIGHUP");
    cr_assert_eq(notify_wait_for(&n, "READY=1", pid, 5000), 0, "no READY=1 after the reload");
    soffa_client_t *c = NULL;
    cr_assert_eq(tk_client_try(b, "audit-1419", false, 1000, &c), SOFFA_OK, "the broker does not serve after SIGHUP");
    soffa_client_close(&c);
    cr_assert_eq(stop(pid), 0);
    close(n.fd);
    tk_broker_free(b);
}

Test(ops, no_watchdog_pings_unless_asked_and_meant_for_this_process, .timeout = 60)
{
    tk_broker_t *b = broker_prepared();
    notify_t n;
    notify_open(&n, b->dir);
    char log[400];
    snprintf(log, sizeof log, "%s/notify.log", b->dir);
    /* No WATCHDOG_USEC: READY=1, then silence. */
    env_t e = {.notify_socket = n.path};
    pid_t pid = spawn(BROKER, b->config, log, &e);
    cr_assert_eq(notify_wait_for(&n, "READY=1", pid, 10000), 0);
    cr_assert_eq(notify_count_watchdog(&n, 600), 0, "WATCHDOG=1 without WATCHDOG_USEC");
    cr_assert_eq(stop(pid), 0);
    notify_drain(&n);   /* its STOPPING=1 */
    /* WATCHDOG_PID names another process (the variable leaked to a child
     * of the service's main process, say): not ours to ping. */
    e.watchdog_usec = "200000";
    e.watchdog_pid_other = true;
    pid = spawn(BROKER, b->config, log, &e);
    cr_assert_eq(notify_wait_for(&n, "READY=1", pid, 10000), 0);
    cr_assert_eq(notify_count_watchdog(&n, 600), 0, "WATCHDOG=1 although WATCHDOG_PID is another process");
    cr_assert_eq(stop(pid), 0);
    close(n.fd);
    tk_broker_free(b);
}

Test(ops, a_broker_that_cannot_open_its_store_never_says_ready, .timeout = 60)
{
    tk_broker_t *b = broker_prepared();
    notify_t n;
    notify_open(&n, b->dir);
    /* The same configuration with data_dir on a regular file. */
    char cfg[400], bad[400], log[400], line[1024];
    snprintf(cfg, sizeof cfg, "%s/nostore.ini", b->dir);
    snprintf(bad, sizeof bad, "%s/not-a-dir", b->dir);
    snprintf(log, sizeof log, "%s/nostore.log", b->dir);
    FILE *f = fopen(bad, "w");
    fclose(f);
    FILE *in = fopen(b->config, "r"), *out = fopen(cfg, "w");
    cr_assert(in && out);
    while (fgets(line, sizeof line, in))
        fputs(strncmp(line, "data_dir", 8) ? line : "data_dir = not-a-dir\n", out);
    fclose(in);
    fclose(out);
    env_t e = {.notify_socket = n.path, .watchdog_usec = "200000"};
    pid_t pid = spawn(BROKER, cfg, log, &e);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "the broker should refuse to start (see %s)", log);
    char buf[512];
    pid_t sender;
    cr_assert_not(notify_recv(&n, buf, sizeof buf, &sender, 200), "it said '%s' although it never served", buf);
    close(n.fd);
    tk_broker_free(b);
}

Test(ops, a_notify_socket_nobody_reads_does_not_stop_the_broker, .timeout = 60)
{
    tk_broker_t *b = broker_prepared();
    char gone[400], log[400];
    snprintf(gone, sizeof gone, "%s/nobody.sock", b->dir);
    snprintf(log, sizeof log, "%s/gone.log", b->dir);
    env_t e = {.notify_socket = gone, .watchdog_usec = "200000"};
    pid_t pid = spawn(BROKER, b->config, log, &e);
    soffa_client_t *c = NULL;
    soffa_err_t rc = SOFFA_ERR_TIMEOUT;
    for (int i = 0; i < 50 && rc != SOFFA_OK; i++)
        rc = tk_client_try(b, "audit-1419", false, 200, &c);
    cr_assert_eq(rc, SOFFA_OK, "the broker does not serve with an unreachable NOTIFY_SOCKET");
    soffa_client_close(&c);
    cr_assert_eq(stop(pid), 0);
    char *text = NULL, *argv[] = {"cat", log, NULL};
    tk_run(argv, &text, NULL);
    cr_assert(strstr(text, "cannot notify the service manager (READY=1"), "the failure is logged once:\n%s", text);
    cr_assert_null(strstr(strstr(text, "cannot notify") + 1, "cannot notify"), "logged more than once:\n%s", text);
    free(text);
    tk_broker_free(b);
}

Test(ops, agent_says_ready_once_its_control_socket_answers, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char cfg[400], sock[400], log[400];
    snprintf(cfg, sizeof cfg, "%s/agent.ini", b->dir);
    snprintf(sock, sizeof sock, "%s/agent-data/control.sock", b->dir);
    snprintf(log, sizeof log, "%s/agent.log", b->dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "[agent]\nname = kaa-1419\nbroker = %s\nbroker_key = broker.pub\nkey = kaa-1419.key\n"
               "data_dir = agent-data\nheartbeat_ms = 500\n",
            b->ipc);
    fclose(f);
    notify_t n;
    notify_open(&n, b->dir);
    env_t e = {.notify_socket = n.path, .watchdog_usec = "400000"};
    pid_t pid = spawn(AGENT, cfg, log, &e);
    cr_assert_eq(notify_wait_for(&n, "READY=1", pid, 10000), 0, "no READY=1 from the agent (see %s)", log);
    /* At READY=1 the command line gets an answer at once. */
    char *out = NULL, *err = NULL, *argv[] = {SOFFA_BIN_DIR "/soffa", "--socket", sock, "--json", "status", "--sample", "0", NULL};
    tk_run(argv, &out, &err);
    cr_assert(strstr(out, "\"agent\":\"kaa-1419\""), "the control socket did not answer at READY=1: %s %s", out, err);
    free(out);
    free(err);
    int pings = notify_count_watchdog(&n, 1000);
    cr_assert(pings >= 5 && pings <= 15, "%d WATCHDOG=1 in a second (expected about 10)", pings);
    kill(pid, SIGTERM);
    cr_assert(notify_wait_for(&n, "STOPPING=1", pid, 10000) >= 0);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(n.fd);
    tk_broker_free(b);
}

Test(ops, agent_reload_says_reloading_then_ready_and_keeps_serving, .timeout = 60)
{
    tk_broker_t *b = tk_broker_start(NULL);
    char cfg[400], sock[400], log[400];
    snprintf(cfg, sizeof cfg, "%s/agent.ini", b->dir);
    snprintf(sock, sizeof sock, "%s/agent-data/control.sock", b->dir);
    snprintf(log, sizeof log, "%s/agent.log", b->dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "[agent]\nname = kaa-1419\nbroker = %s\nbroker_key = broker.pub\nkey = kaa-1419.key\n"
               "data_dir = agent-data\nheartbeat_ms = 500\n",
            b->ipc);
    fclose(f);
    notify_t n;
    notify_open(&n, b->dir);
    env_t e = {.notify_socket = n.path};
    pid_t pid = spawn(AGENT, cfg, log, &e);
    cr_assert_eq(notify_wait_for(&n, "READY=1", pid, 10000), 0, "no READY=1 from the agent (see %s)", log);
    kill(pid, SIGHUP);
    cr_assert_eq(notify_wait_for(&n, "RELOADING=1\nMONOTONIC_USEC=", pid, 5000), 0, "no RELOADING=1 on SIGHUP");
    cr_assert_eq(notify_wait_for(&n, "READY=1", pid, 5000), 0, "no READY=1 after the reload");
    char *out = NULL, *argv[] = {SOFFA_BIN_DIR "/soffa", "--socket", sock, "--json", "status", "--sample", "0", NULL};
    tk_run(argv, &out, NULL);
    cr_assert(out && strstr(out, "\"agent\":\"kaa-1419\""), "the agent does not answer after SIGHUP: %s", out);
    free(out);
    cr_assert_eq(stop(pid), 0);
    close(n.fd);
    tk_broker_free(b);
}

/* ---- Log lines for the journal ----------------------------------------------------------- */

/* Runs the broker (log_level debug) until it serves, stops it, and returns
 * its stderr (free it). */
static char *
broker_log(tk_broker_t *b, const env_t *e)
{
    char log[400];
    snprintf(log, sizeof log, "%s/journal.log", b->dir);
    pid_t pid = spawn(BROKER, b->config, log, e);
    soffa_client_t *c = NULL;
    soffa_err_t rc = SOFFA_ERR_TIMEOUT;
    for (int i = 0; i < 50 && rc != SOFFA_OK; i++)
        rc = tk_client_try(b, "school-1415", false, 200, &c);
    cr_assert_eq(rc, SOFFA_OK);
    /* One publish, so that there are commits to log at debug level. */
    char pnr[13];
    tk_pnr(soffa_date_today().year - 18, 3, 14, 271, 0, pnr);   /* 18 whatever the year */
    char *json = tk_msg_json(SOFFA_MT_ABSENCE_REPORTED, pnr, "1419");
    cr_assert_eq(tk_publish_json(c, json, NULL, NULL, NULL), SOFFA_OK);
    free(json);
    soffa_client_close(&c);
    cr_assert_eq(stop(pid), 0);
    char *text = NULL, *argv[] = {"cat", log, NULL};
    tk_run(argv, &text, NULL);
    return text;
}

Test(ops, lines_carry_their_syslog_priority_when_stderr_is_the_journal, .timeout = 60)
{
    tk_broker_t *b = broker_prepared();
    env_t e = {.journal = true};
    char *text = broker_log(b, &e);
    int lines = 0, info = 0, debug = 0;
    for (char *l = text; *l; l = strchr(l, '\n') + 1) {
        cr_assert(l[0] == '<' && strchr("3467", l[1]) && l[2] == '>', "a line without a priority: %.80s", l);
        if (l[1] == '6') {
            info++;
            cr_assert(!strncmp(strstr(l, "Z ") + 2, "info ", 5), "<6> on a line that is not info: %.80s", l);
        }
        if (l[1] == '7') {
            debug++;
            cr_assert(!strncmp(strstr(l, "Z ") + 2, "debug", 5), "<7> on a line that is not debug: %.80s", l);
        }
        lines++;
    }
    cr_assert(lines > 3 && info > 0 && debug > 0, "%d lines, %d info, %d debug", lines, info, debug);
    free(text);

    /* An error: the store cannot be opened. */
    char cfg[400], log[400], line[1024];
    snprintf(cfg, sizeof cfg, "%s/nostore.ini", b->dir);
    snprintf(log, sizeof log, "%s/err.log", b->dir);
    FILE *f = fopen(cfg, "w"), *in = fopen(b->config, "r");
    while (fgets(line, sizeof line, in))
        fputs(strncmp(line, "data_dir", 8) ? line : "data_dir = broker.ini/data\n", f);
    fclose(in);
    fclose(f);
    pid_t pid = spawn(BROKER, cfg, log, &e);
    int status;
    waitpid(pid, &status, 0);
    char *argv[] = {"cat", log, NULL};
    tk_run(argv, &text, NULL);
    cr_assert(strstr(text, "<3>") && strstr(strstr(text, "<3>"), " error ") && strstr(text, "cannot start"),
              "no <3> error line:\n%s", text);
    free(text);
    tk_broker_free(b);
}

Test(ops, no_priority_prefix_elsewhere, .timeout = 60)
{
    tk_broker_t *b = broker_prepared();
    env_t none = {0}, other = {.journal_other = true};
    const env_t *cases[] = {&none, &other};
    for (int i = 0; i < 2; i++) {
        char *text = broker_log(b, cases[i]);
        cr_assert(text[0] && text[0] != '<', "%s", text);
        cr_assert_null(strstr(text, "\n<"), "a prefix although stderr is %s:\n%s",
                       i ? "not the stream JOURNAL_STREAM names" : "no journal", text);
        free(text);
    }
    tk_broker_free(b);
}
