/*  soffa_agent_metrics: the agent's metrics, for Prometheus.
 *
 *  On [metrics] listen (a loopback address) the agent serves Prometheus's
 *  text format through soffa_prom: each scrape is rendered by the agent's
 *  loop from its running counts (the outbox's entry count, its oldest
 *  entry, the hook's runs and failures, the parked records counted once at
 *  start and kept since), never by scanning the inbox or the history.
 */
#ifndef SOFFA_AGENT_METRICS_H
#define SOFFA_AGENT_METRICS_H

#include <stddef.h>

#include "soffa_agent_int.h"

/*  Counts the parked records once and, when [metrics] listen is set, starts
 *  the endpoint. Returns SOFFA_OK or the error with `why`. */
soffa_err_t soffa_agent_metrics_open(soffa_agent_t *self, char *why, size_t whylen);

/*  The fd the loop polls (readable while a scrape waits), or -1. */
int soffa_agent_metrics_fd(const soffa_agent_t *self);

/*  Call when that fd is readable: renders and answers the scrape. */
void soffa_agent_metrics_answer(soffa_agent_t *self);

/*  Stops the endpoint; NULL-safe and idempotent. */
void soffa_agent_metrics_close(soffa_agent_t *self);

#endif
