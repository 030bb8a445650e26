/*  soffa_broker: the broker daemon's engine.
 *
 *  One object owns the configuration, the store, the ZeroMQ sockets (a
 *  CURVE ROUTER for agents, the ZAP handler) and every session. One call,
 *  soffa_broker_run, is the event loop: it owns all store writes.
 *  Stages: soffa_broker_new (load config) -> soffa_broker_open (open store,
 *  bind) -> soffa_broker_run (until soffa_broker_stop or a signal) ->
 *  soffa_broker_destroy.
 */
#ifndef SOFFA_BROKER_H
#define SOFFA_BROKER_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "soffa_err.h"

typedef struct soffa_broker soffa_broker_t;

/*  Reads and checks the configuration file. On failure `why` says what to
 *  fix. Returns SOFFA_OK, SOFFA_ERR_CONFIG, SOFFA_ERR_NOT_FOUND. */
soffa_err_t soffa_broker_new(soffa_broker_t **out, const char *config_path, char *why, size_t whylen);

/*  Opens the store, binds the endpoints and starts authenticating.
 *  Returns SOFFA_OK or the error (with `why`). */
soffa_err_t soffa_broker_open(soffa_broker_t *self, char *why, size_t whylen);

/*  Loads the master key ([keys] master_key) once; refuses one inside the
 *  data directory, one others can read, a missing one. Returns SOFFA_OK or
 *  the error (with `why`). */
soffa_err_t soffa_broker_master_load(soffa_broker_t *self, char *why, size_t whylen);

/*  Runs the event loop until *stop becomes non-zero (a signal handler sets
 *  it). Whenever *reload (may be NULL) becomes non-zero it clears it and
 *  calls soffa_broker_reload. Finishes the commit in flight, answers what it
 *  acknowledged, flushes cursors. Returns SOFFA_OK or a fatal error. */
soffa_err_t soffa_broker_run(soffa_broker_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

/*  Re-reads the configuration file and takes its [agent] sections (and
 *  log_level): new agents may connect from now on; the sessions of an agent
 *  that was removed or whose settings changed, and of a key no longer
 *  listed, are closed with SESSION_CLOSED and a reason; other agents'
 *  sessions go on. Any other changed setting is logged as taking effect at
 *  the next restart. A file that does not load changes nothing: the error
 *  is logged and returned with `why`. Call it from the loop's thread.
 *  Returns SOFFA_OK, SOFFA_ERR_CONFIG, SOFFA_ERR_NOT_FOUND, SOFFA_ERR_NOMEM. */
soffa_err_t soffa_broker_reload(soffa_broker_t *self, char *why, size_t whylen);

/*  Prints the effective configuration (one "section.key = value" a line). */
void soffa_broker_print_config(const soffa_broker_t *self, FILE *out);

/*  Closes everything and sets *self_p to NULL; NULL-safe. */
void soffa_broker_destroy(soffa_broker_t **self_p);

#endif
