/*  soffa_cli_net: `soffa up` and `soffa down`, a supervisor for a local
 *  network (see soffa_cli_net.h).
 */
#include "soffa_cli_net.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_keys.h"
#include "soffa_webdemo.h"

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

int
soffa_cli_net_up(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv) || c->argc != 2) {
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
        return soffa_cli_die("up", 1, "soffa-broker and soffa-agent must sit next to soffa (%s)", bin);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return soffa_cli_die("up", 1, "cannot create %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/broker", dir);
    if (mkdir(path, 0700) != 0)
        return soffa_cli_die("up", 1, "%s already holds a network (soffa down %s, or pick a new directory)", dir, dir);
    char abs[PATH_MAX];
    if (!realpath(dir, abs))
        return soffa_cli_die("up", 1, "cannot resolve %s", dir);
    /* Unix socket paths are limited to 107 bytes. */
    if (strlen(abs) > 60)
        return soffa_cli_die("up", 1, "%s is too long a path for the agents' sockets; use a shorter one (at most 60 characters)", abs);
    snprintf(path, sizeof path, "%s/broker/broker", abs);
    if (soffa_keys_generate(path) != SOFFA_OK)
        return soffa_cli_die("up", 1, "cannot write the broker's keys in %s", dir);
    int port = s_free_port();
    snprintf(path, sizeof path, "%s/broker/broker.ini", abs);
    FILE *f = fopen(path, "w");
    if (!f)
        return soffa_cli_die("up", 1, "cannot write %s", path);
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
            return soffa_cli_die("up", 1, "cannot write the keys of %s", n->name);
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
            return soffa_cli_die("up", 1, "cannot write %s", ap);
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
        return soffa_cli_die("up", 1, "cannot write %s", pidfile);
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
    soffa_cli_t q = *c;
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
            json_t *a = soffa_cli_call(&q, "up", json_pack("{s:s}", "cmd", "status"), 1000);
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
        return soffa_cli_die("up", 1, "not every agent connected within 15 s; see the logs in %s (soffa down %s stops it)", dir, dir);
    const char *names[S_NODES];
    for (size_t i = 0; i < S_NODES; i++)
        names[i] = s_nodes[i].name;
    char why[1200];
    if (soffa_webdemo_start(abs, bin, names, S_NODES, why, sizeof why) != 0)
        return soffa_cli_die("up", 1, "%s (soffa down %s stops the rest)", why, dir);
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

int
soffa_cli_net_down(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa down DIR\n\nStops the network `soffa up DIR` started: agents first, then the broker,\n"
             "each cleanly (SIGTERM; SIGKILL after 10 s). The data stays in DIR.");
        return c->argc == 2 ? 0 : 2;
    }
    char pidfile[1100];
    snprintf(pidfile, sizeof pidfile, "%s/pids", c->argv[1]);
    FILE *pf = fopen(pidfile, "r");
    if (!pf)
        return soffa_cli_die("down", 1, "no network runs from %s (no %s)", c->argv[1], pidfile);
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
