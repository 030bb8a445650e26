/*  soffa-web: the web inbox of one site. A process of its own, so that the
 *  HTTP attack surface is not in the process that holds the agent's key
 *  and store: it reaches the agent only through the agent's restricted web
 *  control socket. Runs in the foreground, logs to stderr, stops cleanly on
 *  SIGTERM/SIGINT. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "soffa_log.h"
#include "soffa_version.h"
#include "soffa_web_agent.h"
#include "soffa_web_auth.h"
#include "soffa_web_cfg.h"
#include "soffa_web_http.h"
#include "soffa_web_pages.h"

int
main(int argc, char **argv)
{
    const char *config = NULL;
    int check = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "--check")) {
            check = 1;
        } else if (!strcmp(argv[i], "--version")) {
            soffa_version_print("soffa-web");
            return 0;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: soffa-web --config AGENT.INI [--check]\n"
                 "       soffa-web --version | --help\n\n"
                 "Serves the web inbox of the site whose agent AGENT.INI configures (its\n"
                 "[web] section; see config/agent.ini). Talks only to the agent's web\n"
                 "control socket.\n"
                 "  --check   check the configuration, print the effective [web] settings, exit");
            return 0;
        } else {
            fprintf(stderr, "soffa-web: unknown argument '%s' (see soffa-web --help)\n", argv[i]);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "soffa-web: --config AGENT.INI is required (see soffa-web --help)\n");
        return 2;
    }
    soffa_web_cfg_t cfg;
    char why[1200] = "";
    if (soffa_web_cfg_load(config, &cfg, why, sizeof why) != SOFFA_OK) {
        fprintf(stderr, "soffa-web: %s\n", why);
        return 1;
    }
    if (!cfg.listen[0]) {
        fprintf(stderr, "soffa-web: %s has no [web] listen; set it (e.g. listen = 127.0.0.1:8080) to serve the web inbox\n",
                config);
        return 1;
    }
    int lvl = soffa_log_level_parse(cfg.log_level);
    if (lvl < 0) {
        fprintf(stderr, "soffa-web: %s: [web] log_level must be debug, info, warn or error\n", config);
        return 1;
    }
    soffa_log_setup("soffa-web", (soffa_log_level_t) lvl);
    if (check) {
        soffa_web_cfg_print(&cfg, stdout);
        return 0;
    }
    /* SIGTERM and SIGINT are blocked before any thread starts (the threads
     * inherit the mask) and taken by sigwait below: a signal handler could
     * otherwise run on an HTTP thread and leave the main thread asleep. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);
    soffa_web_auth_t *auth = NULL;
    soffa_web_agent_t *agent = NULL;
    soffa_web_pages_t *pages = NULL;
    soffa_web_http_t *http = NULL;
    int rc = 1;
    if (soffa_web_auth_new(&auth, &cfg, why, sizeof why) != SOFFA_OK
        || soffa_web_agent_new(&agent, cfg.socket_path) != SOFFA_OK
        || soffa_web_pages_new(&pages, &cfg, auth, agent) != SOFFA_OK
        || soffa_web_agent_watch_start(agent) != SOFFA_OK) {
        soffa_error("cannot start: %s", why[0] ? why : "out of memory");
        goto out;
    }
    if (soffa_web_http_open(&http, &cfg, soffa_web_pages_handle, pages, why, sizeof why) != SOFFA_OK) {
        soffa_error("cannot start: %s", why);
        goto out;
    }
    if (cfg.unix_path[0])
        soffa_info("serving %s on unix:%s (plain HTTP for a local reverse proxy); agent %s", config, cfg.unix_path,
                   cfg.socket_path);
    else
        soffa_info("serving on %s://%s (port %d); agent %s%s%s", cfg.cert_path[0] ? "https" : "http", cfg.listen,
                   soffa_web_http_port(http), cfg.socket_path, cfg.trusted_header[0] ? "; single sign-on header " : "",
                   cfg.trusted_header);
    int sig = 0;
    sigwait(&stop_set, &sig);
    soffa_info("stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
out:
    if (agent)
        soffa_web_agent_stop(agent);   /* ends the live streams first */
    soffa_web_http_close(&http);
    soffa_web_pages_destroy(&pages);
    soffa_web_agent_destroy(&agent);
    soffa_web_auth_destroy(&auth);
    return rc;
}
