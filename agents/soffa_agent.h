/*  soffa_agent: the daemon at one agency site (a school, a KAA team, a
 *  social services or Arbetsförmedlingen office, an auditor).
 *
 *  It keeps a durable outbox and inbox (soffa_box), holds one session with
 *  the broker (reconnecting with backoff, heartbeats), answers the `soffa`
 *  command line on a local control socket (owner-only), and can feed each
 *  delivered message to a hook command.
 *
 *  Control protocol: ZeroMQ REQ -> ROUTER over ipc, one JSON object each way.
 *    {"cmd":"send", "message":{...}, "re":"ID or seq", "wait_ms":N}
 *    {"cmd":"status", "broker":bool}
 *    {"cmd":"inbox", "after":SEQ, "failed":bool, "limit":N}
 *    {"cmd":"show", "id":"message id or seq"}
 *    {"cmd":"retry", "seq":SEQ}
 *    {"cmd":"replay", "request":"replay|history", "filter":{...}}
 *    {"cmd":"school-...", ...}   a school's imports and review (lib/soffa_school.h)
 *  Answers: {"ok":true, ...} or {"ok":false, "code":"NAME", "error":"text"}.
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

/*  Opens the store and the control socket. */
soffa_err_t soffa_agent_open(soffa_agent_t *self, char *why, size_t whylen);

/*  Runs until *stop is set. */
soffa_err_t soffa_agent_run(soffa_agent_t *self, volatile sig_atomic_t *stop);

/*  Prints the effective configuration. */
void soffa_agent_print_config(const soffa_agent_t *self, FILE *out);

void soffa_agent_destroy(soffa_agent_t **self_p);

#endif
