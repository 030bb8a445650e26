/*  soffa_agent_hook: the hook runner (see soffa_agent_hook.h).
 */
#define _GNU_SOURCE   /* pipe2, F_SETPIPE_SZ */
#include "soffa_agent_hook.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soffa_agent_int.h"
#include "soffa_log.h"
#include "soffa_record.h"
#include "soffa_time.h"

typedef struct {
    soffa_agent_t *self;
    int64_t now;
    uint64_t seq;
    json_t *rec;
    uint32_t attempts;
} s_hook_pick_t;

static int
s_hook_pick(void *ctx, const soffa_box_in_t *in)
{
    s_hook_pick_t *p = ctx;
    if (in->state != SOFFA_IN_NEW || in->next_try_us > p->now)
        return 0;   /* one record waiting for its retry never blocks the next */
    p->seq = in->seq;
    p->attempts = in->attempts;
    p->rec = soffa_record_json(in->env, in->len, NULL, NULL);
    return 1;
}

/* The hook log is opened anew for each run (so it can be moved away at
 * any time, by logrotate or by hand) and bounded: once it has reached max
 * bytes it becomes hook.log.1 (replacing the one before) and the run
 * starts a new one. At most about twice max is kept. */
static void
s_hook_log_bound(const char *path, size_t max)
{
    struct stat st;
    if (stat(path, &st) != 0 || (uint64_t) st.st_size < (uint64_t) max)
        return;
    char old[1200];
    snprintf(old, sizeof old, "%s.1", path);
    if (rename(path, old) != 0)
        soffa_warn("hook log %s has reached %lld bytes and could not be moved to %s: %s", path,
                   (long long) st.st_size, old, strerror(errno));
    else
        soffa_info("hook log %s reached %lld bytes (hook_log_max); the older part is now %s", path,
                   (long long) st.st_size, old);
}

/* Closes the hook's stdin and drops what was not written. */
static void
s_hook_input_close(soffa_agent_t *self)
{
    if (self->hook.in >= 0)
        close(self->hook.in);
    self->hook.in = -1;
    free(self->hook.text);
    self->hook.text = NULL;
    self->hook.len = self->hook.off = 0;
}

/* Writes what the pipe takes of the record without blocking (a hook that
 * does not read cannot stall the agent); closes the pipe when all is
 * written, or when the hook will not take the rest (EPIPE). */
static void
s_hook_feed(soffa_agent_t *self)
{
    while (self->hook.in >= 0 && self->hook.off < self->hook.len) {
        ssize_t n = write(self->hook.in, self->hook.text + self->hook.off, self->hook.len - self->hook.off);
        if (n > 0) {
            self->hook.off += (size_t) n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            if (n < 0 && errno == EAGAIN)
                return;   /* the pipe is full: more on the next round of the loop */
            soffa_debug("hook for seq %llu did not read all its input", (unsigned long long) self->hook.seq);
            break;
        }
    }
    s_hook_input_close(self);
}

/* The hook's environment: the agent's without SOFFA_SEQ, SOFFA_TYPE and
 * SOFFA_AGENT, then those three (borrowed strings). Returns the array (the
 * caller frees it, not its strings), or NULL. */
static char **
s_hook_env(char *seqs, char *types, char *agent)
{
    extern char **environ;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 4, sizeof *envp);
    if (!envp)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "SOFFA_SEQ=", 10) && strncmp(environ[i], "SOFFA_TYPE=", 11)
            && strncmp(environ[i], "SOFFA_AGENT=", 12))
            envp[k++] = environ[i];
    envp[k++] = seqs;
    envp[k++] = types;
    envp[k++] = agent;
    return envp;
}

/* Forks `sh -c hook` with in_fd as its stdin and log (if open) as its
 * stdout and stderr, and nothing else open. Returns the child's pid, or -1
 * with errno. */
static pid_t
s_hook_spawn(char *hook, char **envp, int in_fd, int log)
{
    char *const argv[] = {"sh", "-c", hook, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        /* dup2 clears close-on-exec on 0, 1 and 2 only. (soffa-agent keeps
         * 0, 1 and 2 open, so the pipe and the log are above them.) */
        if (in_fd <= 2 || log == 0 || dup2(in_fd, 0) < 0)
            _exit(126);
        if (log > 2) {
            dup2(log, 1);
            dup2(log, 2);
        }
#ifdef SYS_close_range
        if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
            for (int fd = 3; fd < 65536; fd++)
                close(fd);
        execve("/bin/sh", argv, envp);
        _exit(127);
    }
    return pid;
}

static void
s_hook_start(soffa_agent_t *self)
{
    s_hook_pick_t p = {self, soffa_now_us(), 0, NULL, 0};
    soffa_box_inbox_scan(self->box, 0, s_hook_pick, &p);
    if (!p.seq)
        return;
    char *text = p.rec ? json_dumps(p.rec, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0;
    char *line = text ? realloc(text, len + 2) : NULL;
    const char *type = p.rec ? json_string_value(json_object_get(p.rec, "type")) : NULL;
    char seqs[48], types[96], agent[SOFFA_NAME_MAX + 16];
    snprintf(seqs, sizeof seqs, "SOFFA_SEQ=%llu", (unsigned long long) p.seq);
    snprintf(types, sizeof types, "SOFFA_TYPE=%.60s", type ? type : "");
    snprintf(agent, sizeof agent, "SOFFA_AGENT=%s", self->cfg.name);
    json_decref(p.rec);
    if (!line) {
        free(text);
        soffa_error("cannot prepare the hook input for seq %llu", (unsigned long long) p.seq);
        return;
    }
    line[len] = '\n';
    line[len + 1] = '\0';

    /* Everything the child needs is made here: between fork and exec it only
     * moves descriptors (the agent has other threads, so no malloc there). */
    char **envp = s_hook_env(seqs, types, agent);
    char logp[1100];
    snprintf(logp, sizeof logp, "%s/hook.log", self->data_path);
    s_hook_log_bound(logp, self->cfg.hook_log_max);
    int pfd[2] = {-1, -1};
    int log = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (!envp || pipe2(pfd, O_CLOEXEC) != 0) {
        soffa_error("cannot start the hook: %s", strerror(errno));
        free(envp);
        free(line);
        if (log >= 0)
            close(log);
        return;
    }
    /* The whole record fits in the pipe when the system allows it. */
    if (len + 1 > 65536)
        (void) fcntl(pfd[1], F_SETPIPE_SZ, (int) (len + 1 < (1u << 20) ? len + 1 : (1u << 20)));
    (void) fcntl(pfd[1], F_SETFL, O_NONBLOCK);
    pid_t pid = s_hook_spawn(self->cfg.hook, envp, pfd[0], log);
    int fork_errno = errno;
    free(envp);
    close(pfd[0]);
    if (log >= 0)
        close(log);
    if (pid < 0) {
        close(pfd[1]);
        free(line);
        soffa_error("cannot start the hook: %s", strerror(fork_errno));
        return;
    }
    self->hook.pid = pid;
    self->hook.seq = p.seq;
    self->hook.started = soffa_mono_us();
    self->hook.in = pfd[1];
    self->hook.text = line;
    self->hook.len = len + 1;
    self->hook.off = 0;
    s_hook_feed(self);
    /* Keep the attempt count with the record while it runs. */
    soffa_box_inbox_set_state(self->box, p.seq, SOFFA_IN_NEW, p.attempts, INT64_MAX);
}

typedef struct {
    uint32_t attempts;
} s_att_t;

static int
s_get_attempts(void *ctx, const soffa_box_in_t *in)
{
    ((s_att_t *) ctx)->attempts = in->attempts;
    return 1;
}

void
soffa_agent_hook_tick(soffa_agent_t *self)
{
    if (!self->cfg.hook[0])
        return;
    if (self->hook.pid) {
        if (self->hook.in >= 0)
            s_hook_feed(self);
        int status;
        pid_t r = waitpid(self->hook.pid, &status, WNOHANG);
        bool timed_out = r == 0 && soffa_mono_us() - self->hook.started > self->cfg.hook_timeout_ms * 1000;
        if (timed_out) {
            kill(self->hook.pid, SIGKILL);
            waitpid(self->hook.pid, &status, 0);
            r = self->hook.pid;
        }
        if (r != self->hook.pid)
            return;
        self->hook.pid = 0;
        s_hook_input_close(self);
        bool ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        self->stats.hook_runs++;
        if (!ok)
            self->stats.hook_failures++;
        s_att_t a = {0};
        soffa_box_inbox_get(self->box, self->hook.seq, s_get_attempts, &a);
        if (ok) {
            soffa_box_inbox_set_state(self->box, self->hook.seq, SOFFA_IN_DONE, a.attempts + 1, 0);
            soffa_debug("hook handled seq %llu", (unsigned long long) self->hook.seq);
        } else {
            uint32_t n = a.attempts + 1;
            if (n >= (uint32_t) self->cfg.hook_retries) {
                soffa_box_inbox_set_state(self->box, self->hook.seq, SOFFA_IN_FAILED, n, 0);
                self->stats.parked++;
                soffa_warn("hook failed %u times for seq %llu: parked (see 'soffa inbox --failed', 'soffa retry')", n,
                           (unsigned long long) self->hook.seq);
            } else {
                int64_t wait = self->cfg.hook_backoff_ms * (1LL << (n - 1 < 16 ? n - 1 : 16));
                if (wait > 60000)
                    wait = 60000;
                soffa_box_inbox_set_state(self->box, self->hook.seq, SOFFA_IN_NEW, n, soffa_now_us() + wait * 1000);
                soffa_info("hook %s for seq %llu (attempt %u); retrying in %lld ms",
                           timed_out ? "timed out" : "failed", (unsigned long long) self->hook.seq, n, (long long) wait);
            }
        }
    }
    int64_t now = soffa_mono_us();
    if (!self->hook.pid && now >= self->hook.next_scan) {
        s_hook_start(self);
        if (!self->hook.pid)
            self->hook.next_scan = now + 200000;
    }
}

void
soffa_agent_hook_wake(soffa_agent_t *self)
{
    self->hook.next_scan = 0;
}

void
soffa_agent_hook_stop(soffa_agent_t *self)
{
    if (self->hook.pid) {
        int status;
        s_hook_input_close(self);              /* what it has not read by now it will not get */
        waitpid(self->hook.pid, &status, 0);   /* let the running hook finish */
        self->hook.pid = 0;
    }
}

void
soffa_agent_hook_fini(soffa_agent_t *self)
{
    s_hook_input_close(self);
}
