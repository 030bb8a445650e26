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

#include "soffa_cli_ini.h"
#include "soffa_keys.h"
#include "soffa_seal.h"
#include "soffa_webdemo.h"

/* ---- The network: one node of each role ------------------------------------------------------ */

typedef struct {
    const char *name;     /* the agent's name, its directory and its key files */
    const char *role;     /* school, kaa, social, af, provider or audit */
    const char *kommun;   /* the municipality it serves, or NULL */
    const char *unit;     /* a school's skolenhetskod, or NULL */
    const char *scope;    /* an auditor's scope, or NULL */
    const char *span;     /* "yes": its scope spans data controllers (span_controllers), or NULL */
    const char *kind;     /* a provider's provider_kind, or NULL */
    const char *what;     /* who it plays, for people */
} s_node_t;

/* The auditors: one whose scope covers every data controller of the network
 * (both municipalities, the schools, Arbetsförmedlingen, the provider: so
 * configured), and Stenungsund's own, which reads Stenungsund's records only.
 * The compulsory school and Komvux play in the demo's second part (a year-9
 * handover, a referral to a local actor). */
static const s_node_t s_nodes[] = {
    {"school-1415", "school", "1415", "14150001", NULL, NULL, NULL, "an upper-secondary school in Stenungsund"},
    {"kaa-1415", "kaa", "1415", NULL, NULL, NULL, NULL, "Stenungsund's KAA team"},
    {"kaa-1419", "kaa", "1419", NULL, NULL, NULL, NULL, "Tjörn's KAA team"},
    {"social-1419", "social", "1419", NULL, NULL, NULL, NULL, "social services in Tjörn"},
    {"af-1419", "af", "1419", NULL, NULL, NULL, NULL, "Arbetsförmedlingen for Tjörn"},
    {"audit", "audit", NULL, NULL, "*/1415, */1419, school/*, school-journal/*, provider/*, audit/*", "yes", NULL,
     "an auditor for both municipalities, the schools, Arbetsförmedlingen and Komvux"},
    {"audit-1415", "audit", NULL, NULL, "kaa/1415, kaa-journal/1415, social/1415", NULL, NULL,
     "an auditor for Stenungsund only"},
    {"grundskola-1419", "school", "1419", "14190001", NULL, NULL, NULL, "a compulsory school in Tjörn"},
    {"komvux-1419", "provider", "1419", NULL, NULL, NULL, "komvux", "Komvux in Tjörn, a local actor"},
};
#define S_NODES (sizeof s_nodes / sizeof *s_nodes)

/* ---- The configurations, as data ------------------------------------------------------------ */

/* broker.ini: the broker on a free loopback port ({port}) and a socket in
 * the network's directory ({dir}); it signs a checkpoint often, so that
 * auditors see one soon. */
static const soffa_cli_ini_row_t s_broker_ini[] = {
    {SOFFA_CLI_INI_COMMENT, "made by soffa up", NULL, NULL},
    {SOFFA_CLI_INI_SECTION, "broker", NULL, NULL},
    {SOFFA_CLI_INI_KEY, "endpoint", "tcp://127.0.0.1:{port}", NULL},
    {SOFFA_CLI_INI_KEY, "ipc_endpoint", "ipc://{dir}/broker/broker.sock", NULL},
    {SOFFA_CLI_INI_KEY, "secret_key", "broker.key", NULL},
    {SOFFA_CLI_INI_KEY, "data_dir", "data", NULL},
    {SOFFA_CLI_INI_KEY, "heartbeat_ms", "1000", NULL},
    {SOFFA_CLI_INI_KEY, "expiry_ms", "5000", NULL},
    {SOFFA_CLI_INI_SECTION, "audit", NULL, NULL},
    {SOFFA_CLI_INI_KEY, "checkpoint_every", "10", NULL},
    {SOFFA_CLI_INI_KEY, "checkpoint_ms", "10000", NULL},
    {SOFFA_CLI_INI_SECTION, "keys", NULL, NULL},
    {SOFFA_CLI_INI_KEY, "master_key", "master.key", NULL},
};

/* broker.ini, once for each node: who it is and what it may see. */
static const soffa_cli_ini_row_t s_broker_ini_agent[] = {
    {SOFFA_CLI_INI_BLANK, NULL, NULL, NULL},
    {SOFFA_CLI_INI_SECTION, "agent {name}", NULL, NULL},
    {SOFFA_CLI_INI_KEY, "public_key", "../{name}/{name}.pub", NULL},
    {SOFFA_CLI_INI_KEY, "role", "{role}", NULL},
    {SOFFA_CLI_INI_KEY, "kommun", "{kommun}", "kommun"},
    {SOFFA_CLI_INI_KEY, "unit", "{unit}", "unit"},
    {SOFFA_CLI_INI_KEY, "scope", "{scope}", "scope"},
    {SOFFA_CLI_INI_KEY, "span_controllers", "{span}", "span"},
    {SOFFA_CLI_INI_KEY, "provider_kind", "{kind}", "kind"},
};

/* A node's agent.ini, after its [web] section (soffa_webdemo). A school is
 * a municipal school of its own municipality. [agent] stays last, so that
 * lines appended to the file later (as the tests do) land in it. */
static const soffa_cli_ini_row_t s_agent_ini[] = {
    {SOFFA_CLI_INI_COMMENT, "made by soffa up: {what}", NULL, NULL},
    {SOFFA_CLI_INI_SECTION, "school", NULL, "school"},
    {SOFFA_CLI_INI_KEY, "principal_kommun", "{kommun}", "school"},
    {SOFFA_CLI_INI_KEY, "school_unit", "{unit}", "school"},
    {SOFFA_CLI_INI_BLANK, NULL, NULL, "school"},
    {SOFFA_CLI_INI_SECTION, "agent", NULL, NULL},
    {SOFFA_CLI_INI_KEY, "name", "{name}", NULL},
    {SOFFA_CLI_INI_KEY, "broker", "ipc://{dir}/broker/broker.sock", NULL},
    {SOFFA_CLI_INI_KEY, "broker_key", "../broker/broker.pub", NULL},
    {SOFFA_CLI_INI_KEY, "key", "{name}.key", NULL},
    {SOFFA_CLI_INI_KEY, "data_dir", "data", NULL},
    {SOFFA_CLI_INI_KEY, "heartbeat_ms", "500", NULL},
    {SOFFA_CLI_INI_KEY, "reconnect_max_ms", "2000", NULL},
};

#define S_ROWS(t) (sizeof (t) / sizeof *(t))

/* ---- Processes ------------------------------------------------------------------------------- */

/* The directory this program was started from (soffa-broker, soffa-agent
 * and soffa-web sit beside it). */
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

/* ---- soffa up ---------------------------------------------------------------------------------- */

/* Writes one node's agent.ini. Returns 0, or 1 with the message printed. */
static int
s_write_agent_ini(const char *abs, const s_node_t *n, const soffa_cli_ini_var_t *vars, size_t n_vars)
{
    char path[1100], why[300];
    snprintf(path, sizeof path, "%s/%s/agent.ini", abs, n->name);
    FILE *f = fopen(path, "w");
    if (!f)
        return soffa_cli_die("up", 1, "cannot write %s", path);
    /* [web] first: lines appended to the file later still land in [agent]. */
    soffa_err_t rc = soffa_webdemo_wants(n->role) ? soffa_webdemo_ini(f, n->name, s_free_port(), why, sizeof why) : SOFFA_OK;
    if (rc == SOFFA_OK)
        rc = soffa_cli_ini_write(f, s_agent_ini, S_ROWS(s_agent_ini), vars, n_vars, why, sizeof why);
    if (fclose(f) != 0 && rc == SOFFA_OK) {
        rc = SOFFA_ERR_IO;
        snprintf(why, sizeof why, "%s", strerror(errno));
    }
    return rc == SOFFA_OK ? 0 : soffa_cli_die("up", 1, "cannot write %s: %s", path, why);
}

/* Makes the keys of the broker and of every node, broker.ini and each
 * agent.ini. Returns 0, or 1 with the message printed. */
static int
s_write_network(const char *dir, const char *abs, int port)
{
    char path[1100], why[300], ports[16];
    snprintf(path, sizeof path, "%s/broker/broker", abs);
    if (soffa_keys_generate(path) != SOFFA_OK)
        return soffa_cli_die("up", 1, "cannot write the broker's keys in %s", dir);
    snprintf(path, sizeof path, "%s/broker/master.key", abs);
    if (soffa_seal_master_new(path) != SOFFA_OK)
        return soffa_cli_die("up", 1, "cannot write the broker's master key %s", path);
    snprintf(ports, sizeof ports, "%d", port);
    snprintf(path, sizeof path, "%s/broker/broker.ini", abs);
    FILE *f = fopen(path, "w");
    if (!f)
        return soffa_cli_die("up", 1, "cannot write %s", path);
    const soffa_cli_ini_var_t bvars[] = {{"port", ports}, {"dir", abs}};
    soffa_err_t rc = soffa_cli_ini_write(f, s_broker_ini, S_ROWS(s_broker_ini), bvars, S_ROWS(bvars), why, sizeof why);
    int status = rc == SOFFA_OK ? 0 : soffa_cli_die("up", 1, "cannot write %s: %s", path, why);
    for (size_t i = 0; i < S_NODES && status == 0; i++) {
        const s_node_t *n = &s_nodes[i];
        char kp[1100];
        snprintf(kp, sizeof kp, "%s/%s", abs, n->name);
        mkdir(kp, 0700);
        snprintf(kp, sizeof kp, "%s/%s/%s", abs, n->name, n->name);
        if (soffa_keys_generate(kp) != SOFFA_OK) {
            status = soffa_cli_die("up", 1, "cannot write the keys of %s", n->name);
            break;
        }
        /* [agent] master_key's default: master.key beside agent.ini. */
        snprintf(kp, sizeof kp, "%s/%s/master.key", abs, n->name);
        if (soffa_seal_master_new(kp) != SOFFA_OK) {
            status = soffa_cli_die("up", 1, "cannot write the master key of %s", n->name);
            break;
        }
        const soffa_cli_ini_var_t vars[] = {{"dir", abs},         {"name", n->name},   {"role", n->role},
                                            {"kommun", n->kommun}, {"unit", n->unit},   {"scope", n->scope},
                                            {"what", n->what},     {"school", !strcmp(n->role, "school") ? n->role : NULL},
                                            {"span", n->span},     {"kind", n->kind}};
        rc = soffa_cli_ini_write(f, s_broker_ini_agent, S_ROWS(s_broker_ini_agent), vars, S_ROWS(vars), why, sizeof why);
        if (rc != SOFFA_OK)
            status = soffa_cli_die("up", 1, "cannot write %s: %s", path, why);
        else
            status = s_write_agent_ini(abs, n, vars, S_ROWS(vars));
    }
    if (fclose(f) != 0 && status == 0)
        status = soffa_cli_die("up", 1, "cannot write %s: %s", path, strerror(errno));
    return status;
}

/* Starts the broker and every agent in the background and lists them in
 * DIR/pids. Returns 0, or 1 with the message printed. */
static int
s_start(const char *abs, const char *broker_bin, const char *agent_bin)
{
    char pidfile[1100], cfg[1100], log[1100];
    snprintf(pidfile, sizeof pidfile, "%s/pids", abs);
    FILE *pf = fopen(pidfile, "w");
    if (!pf)
        return soffa_cli_die("up", 1, "cannot write %s", pidfile);
    snprintf(cfg, sizeof cfg, "%s/broker/broker.ini", abs);
    snprintf(log, sizeof log, "%s/broker/broker.log", abs);
    pid_t bpid = s_spawn(broker_bin, cfg, log);
    fprintf(pf, "broker %d\n", (int) bpid);
    for (size_t i = 0; i < S_NODES; i++) {
        snprintf(cfg, sizeof cfg, "%s/%s/agent.ini", abs, s_nodes[i].name);
        snprintf(log, sizeof log, "%s/%s/agent.log", abs, s_nodes[i].name);
        fprintf(pf, "%s %d\n", s_nodes[i].name, (int) s_spawn(agent_bin, cfg, log));
    }
    fclose(pf);
    return 0;
}

/* True when every agent says it is connected, within 15 s. */
static bool
s_wait_connected(const soffa_cli_t *c, const char *abs)
{
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
    return all;
}

/* What runs where, for people or (--json) for scripts. */
static void
s_print_network(const soffa_cli_t *c, const char *dir, const char *abs, int port)
{
    if (c->json) {
        printf("{\"dir\":\"%s\",\"broker\":\"tcp://127.0.0.1:%d\",\"agents\":[", abs, port);
        for (size_t i = 0; i < S_NODES; i++)
            printf("%s\"%s\"", i ? "," : "", s_nodes[i].name);
        puts("]}");
        return;
    }
    printf("soffa network up in %s\n  broker   tcp://127.0.0.1:%d and ipc://%s/broker/broker.sock\n", abs, port, abs);
    for (size_t i = 0; i < S_NODES; i++)
        printf("  %-15s %-8s %s\n", s_nodes[i].name, s_nodes[i].role, s_nodes[i].what);
    soffa_webdemo_print(stdout, abs);
    printf("Try: soffa --net %s --agent kaa-1419 status\nStop: soffa down %s\n", dir, dir);
}

int
soffa_cli_net_up(soffa_cli_t *c)
{
    if (soffa_cli_want_help(c->argc, c->argv) || c->argc != 2) {
        puts("usage: soffa up DIR\n\n"
             "Creates in DIR (new or empty) keys, configurations and data for a broker and\n"
             "one agent of each role, starts them in the background and returns when every\n"
             "agent is connected; also the web inboxes of the schools, the KAA teams,\n"
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
    int port = s_free_port();
    if (s_write_network(dir, abs, port) != 0 || s_start(abs, broker_bin, agent_bin) != 0)
        return 1;
    if (!s_wait_connected(c, abs))
        return soffa_cli_die("up", 1, "not every agent connected within 15 s; see the logs in %s (soffa down %s stops it)", dir, dir);
    const char *names[S_NODES];
    for (size_t i = 0; i < S_NODES; i++)
        names[i] = s_nodes[i].name;
    char why[1200];
    if (soffa_webdemo_start(abs, bin, names, S_NODES, why, sizeof why) != 0)
        return soffa_cli_die("up", 1, "%s (soffa down %s stops the rest)", why, dir);
    s_print_network(c, dir, abs, port);
    return 0;
}

/* ---- soffa down -------------------------------------------------------------------------------- */

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
    char names[32][64];
    pid_t pids[32];
    int n = 0;
    while (n < 32 && fscanf(pf, "%63s %d", names[n], &pids[n]) == 2)
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
