/*  soffa-broker: the daemon. Reads its INI file, opens the store, serves
 *  agents until SIGTERM or SIGINT, then finishes the commit in flight and
 *  stops cleanly. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "soffa_broker.h"
#include "soffa_broker_int.h"
#include "soffa_log.h"
#include "soffa_maint.h"
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

static void
s_usage(FILE *out)
{
    fputs("usage: soffa-broker --config FILE [--check]\n"
          "       soffa-broker --config FILE --upgrade-store --backup DIR\n"
          "       soffa-broker --config FILE --rotate-master-key NEW-KEY-FILE\n"
          "       soffa-broker --version | --help\n"
          "\n"
          "Runs the soffa broker in the foreground; logs go to stderr.\n"
          "  --config FILE   the broker's INI file (see config/broker.ini)\n"
          "  --check         check the configuration, print the effective settings, exit\n"
          "  --upgrade-store convert the store of an earlier format to this one, in place,\n"
          "                  with the broker stopped; it first copies the old store to\n"
          "  --backup DIR    (a new directory), and verifies the result\n"
          "  --rotate-master-key NEW-KEY-FILE\n"
          "                  with the broker stopped, wrap the store's epoch key under\n"
          "                  the new master key (soffa masterkey new) instead of the one\n"
          "                  [keys] master_key names; then point master_key at it (not\n"
          "                  the CurveZMQ key rotation of [broker] previous_*)\n"
          "SIGTERM or SIGINT stop it cleanly; SIGHUP re-reads the [agent] sections.\n"
          "Under systemd (Type=notify) it reports\n"
          "READY=1 once it listens and its store is open, and pings the watchdog.\n"
          "See soffa-broker(8) and soffa-broker.ini(5).\n",
          out);
}

int
main(int argc, char **argv)
{
    const char *config = NULL, *backup = NULL, *rotate = NULL;
    int check = 0, upgrade = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else if (strcmp(argv[i], "--upgrade-store") == 0) {
            upgrade = 1;
        } else if (strcmp(argv[i], "--rotate-master-key") == 0 && i + 1 < argc) {
            rotate = argv[++i];
        } else if (strcmp(argv[i], "--backup") == 0 && i + 1 < argc) {
            backup = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            soffa_version_print("soffa-broker");
            return 0;
        } else {
            fprintf(stderr, "soffa-broker: unknown argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    if (!config) {
        s_usage(stderr);
        return 2;
    }
    soffa_log_setup("soffa-broker", SOFFA_LOG_INFO);
    char why[1024] = "";
    soffa_broker_t *broker = NULL;
    soffa_err_t rc = soffa_broker_new(&broker, config, why, sizeof why);
    if (rc != SOFFA_OK) {
        fprintf(stderr, "soffa-broker: %s\n", why[0] ? why : soffa_strerror(rc));
        return 1;
    }
    if (check) {
        soffa_broker_print_config(broker, stdout);
        soffa_broker_destroy(&broker);
        return 0;
    }
    if (backup && !upgrade) {
        fprintf(stderr, "soffa-broker: --backup goes with --upgrade-store\n");
        soffa_broker_destroy(&broker);
        return 2;
    }
    if (rotate) {
        rc = soffa_maint_rotate_master(broker, rotate, stdout, why, sizeof why);
        if (rc != SOFFA_OK)
            fprintf(stderr, "soffa-broker: %s\n", why[0] ? why : soffa_strerror(rc));
        soffa_broker_destroy(&broker);
        return rc == SOFFA_OK ? 0 : 1;
    }
    if (upgrade) {
        rc = soffa_maint_upgrade(broker, backup, stdout, why, sizeof why);
        if (rc != SOFFA_OK)
            fprintf(stderr, "soffa-broker: %s\n", why[0] ? why : soffa_strerror(rc));
        soffa_broker_destroy(&broker);
        return rc == SOFFA_OK ? 0 : 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;   /* no SA_RESTART: the poll wakes up */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = soffa_broker_open(broker, why, sizeof why);
    if (rc != SOFFA_OK) {
        soffa_error("cannot start: %s", why[0] ? why : soffa_strerror(rc));
        soffa_broker_destroy(&broker);
        return 1;
    }
    soffa_notify_ready("listening; store open");
    rc = soffa_broker_run(broker, &s_stop, &s_reload);
    soffa_notify_stopping();
    soffa_broker_destroy(&broker);
    soffa_info("stopped");
    return rc == SOFFA_OK ? 0 : 1;
}
