/*  soffa_agent: the daemon at one agency site (a school, a KAA team, a
 *  social services or Arbetsförmedlingen office, an auditor).
 *
 *  It keeps a durable outbox and inbox (soffa_box), holds one session with
 *  the broker (reconnecting with backoff, heartbeats), answers the `soffa`
 *  command line on a local control socket (owner-only), and can feed each
 *  delivered message to a hook command.
 *
 *  Its control protocols are written at the top of soffa_agent_control.h
 *  (the command line's socket) and soffa_agent_web.h (soffa-web's); its
 *  connection states at the top of soffa_agent_session.h.
 */
#ifndef SOFFA_AGENT_H
#define SOFFA_AGENT_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "soffa_err.h"

typedef struct soffa_agent soffa_agent_t;

/*  Reads the configuration. Returns SOFFA_OK or SOFFA_ERR_CONFIG with why. */
soffa_err_t soffa_agent_new(soffa_agent_t **out, const char *config_path, char *why, size_t whylen);

/*  Opens the store and the control sockets. Returns SOFFA_OK, or the
 *  error with why (the store, the school's tables, a socket). */
soffa_err_t soffa_agent_open(soffa_agent_t *self, char *why, size_t whylen);

/*  Loads [agent] master_key once. Returns SOFFA_OK or the error (with why). */
soffa_err_t soffa_agent_master_load(soffa_agent_t *self, char *why, size_t whylen);

/*  `soffa-agent --upgrade-store --backup DIR`: converts a store of format 1
 *  (values in clear) to format 2 (sealed), with the agent stopped, after a
 *  copy into backup_dir. Prints what it did to out. Returns SOFFA_OK (also
 *  when there was nothing to do) or the error (with why). */
soffa_err_t soffa_agent_upgrade_store(soffa_agent_t *self, const char *backup_dir, FILE *out, char *why, size_t whylen);

/*  Runs the event loop until *stop is set (a signal handler sets it), then
 *  lets a running hook finish. Returns SOFFA_OK, or SOFFA_ERR_TRANSPORT
 *  when polling fails. */
soffa_err_t soffa_agent_run(soffa_agent_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

/*  Re-reads the configuration file (SIGHUP; soffa_agent_run calls it when
 *  *reload is set). Taken at once: the hook and its retries, backoff,
 *  timeout and log limit, log_level, heartbeat_ms, reconnect_max_ms,
 *  window (from the next session), the receipt deadlines, and [web]'s
 *  listen and paths (the web control socket is opened, moved or closed).
 *  Any other changed setting is logged as taking effect at the next
 *  restart. A file that does not load changes nothing; the error is logged
 *  and returned with `why`. Returns SOFFA_OK or the error. */
soffa_err_t soffa_agent_reload(soffa_agent_t *self, char *why, size_t whylen);

/*  Prints the effective configuration. */
void soffa_agent_print_config(const soffa_agent_t *self, FILE *out);

/*  Closes everything and wipes the secret key; NULL-safe, sets *self_p to
 *  NULL. */
void soffa_agent_destroy(soffa_agent_t **self_p);

#endif
