/*  soffa-agent: the daemon at an agency site. Runs in the foreground, logs
 *  to stderr, stops cleanly on SIGTERM/SIGINT. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "soffa_agent.h"
#include "soffa_log.h"
#include "soffa_notify.h"
#include "soffa_version.h"

static volatile sig_atomic_t s_stop = 0;
static volatile sig_atomic_t s_reload = 0;

static void
s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

int
main(int argc, char **argv)
{
    /* Descriptors 0, 1 and 2 are always open (on /dev/null if we were started
     * without them), so nothing the agent opens later (its store, a hook's
     * pipe) can land on them and reach a hook as its stdin or stdout. */
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd ? O_WRONLY : O_RDONLY) < 0)
            return 1;
    const char *config = NULL, *backup = NULL;
    int check = 0, upgrade = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "--check")) {
            check = 1;
        } else if (!strcmp(argv[i], "--upgrade-store")) {
            upgrade = 1;
        } else if (!strcmp(argv[i], "--backup") && i + 1 < argc) {
            backup = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: soffa-agent --config FILE [--check]\n"
                 "       soffa-agent --config FILE --upgrade-store --backup DIR\n"
                 "       soffa-agent --version | --help\n\n"
                 "Runs a soffa agent in the foreground; logs go to stderr (see config/agent.ini).\n"
                 "  --config FILE   the agent's INI file\n"
                 "  --check         check the configuration, print the effective settings, exit\n"
                 "  --upgrade-store seal a store of an earlier format (values in clear) under the\n"
                 "                  master key, with the agent stopped, after copying it to\n"
                 "  --backup DIR    (a new directory)\n"
                 "SIGTERM or SIGINT stop it cleanly; SIGHUP re-reads the configuration.\n"
                 "Under systemd (Type=notify) it reports\n"
                 "READY=1 once its control socket is up, and pings the watchdog.\n"
                 "See soffa-agent(8) and soffa-agent.ini(5).");
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            soffa_version_print("soffa-agent");
            return 0;
        } else {
            fprintf(stderr, "soffa-agent: unknown argument '%s' (see soffa-agent --help)\n", argv[i]);
            return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "soffa-agent: --config FILE is required (see soffa-agent --help)\n");
        return 2;
    }
    soffa_log_setup("soffa-agent", SOFFA_LOG_INFO);
    char why[1024] = "";
    soffa_agent_t *agent = NULL;
    soffa_err_t rc = soffa_agent_new(&agent, config, why, sizeof why);
    if (rc != SOFFA_OK) {
        fprintf(stderr, "soffa-agent: %s\n", why[0] ? why : soffa_strerror(rc));
        return 1;
    }
    if (check) {
        soffa_agent_print_config(agent, stdout);
        soffa_agent_destroy(&agent);
        return 0;
    }
    if (backup && !upgrade) {
        fprintf(stderr, "soffa-agent: --backup goes with --upgrade-store\n");
        soffa_agent_destroy(&agent);
        return 2;
    }
    if (upgrade) {
        rc = soffa_agent_upgrade_store(agent, backup, stdout, why, sizeof why);
        if (rc != SOFFA_OK)
            fprintf(stderr, "soffa-agent: %s\n", why[0] ? why : soffa_strerror(rc));
        soffa_agent_destroy(&agent);
        return rc == SOFFA_OK ? 0 : 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = soffa_agent_open(agent, why, sizeof why);
    if (rc != SOFFA_OK) {
        soffa_error("cannot start: %s", why);
        soffa_agent_destroy(&agent);
        return 1;
    }
    soffa_notify_ready("control socket up");
    rc = soffa_agent_run(agent, &s_stop, &s_reload);
    soffa_notify_stopping();
    soffa_agent_destroy(&agent);
    soffa_info("stopped");
    return rc == SOFFA_OK ? 0 : 1;
}
