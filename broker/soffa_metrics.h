/*  soffa_metrics: the broker's metrics, for Prometheus.
 *
 *  Counters and histograms are kept by the loop as things happen
 *  (publishes, refusals, commits); gauges are read from the loop's running
 *  state when a scrape asks (mailbox counts, sessions, awaited answers,
 *  the store's map). Nothing is computed by scanning the history: a
 *  mailbox's lag and its oldest unacknowledged record cost one seek each.
 *  The HTTP side is soffa_prom; a scrape is rendered on the loop's thread,
 *  so no counter is ever read by another thread.
 */
#ifndef SOFFA_METRICS_H
#define SOFFA_METRICS_H

#include "soffa_broker_int.h"
#include "soffa_prom.h"

/*  Empty counters; NULL when out of memory. */
soffa_metrics_t *soffa_metrics_new(void);

/*  Starts the endpoint when [metrics] listen is set. Returns SOFFA_OK or
 *  the error with `why`. */
soffa_err_t soffa_metrics_listen(soffa_broker_t *self, char *why, size_t whylen);

/*  The fd the loop polls (readable while a scrape waits), or -1. */
int soffa_metrics_fd(const soffa_broker_t *self);

/*  Call when that fd is readable: renders and answers the scrape. */
void soffa_metrics_answer(soffa_broker_t *self);

/*  Writes the whole exposition into t (what a scrape gets). */
void soffa_metrics_render(soffa_broker_t *self, soffa_prom_text_t *t);

/*  Events, counted by the loop. type is a soffa_msg_type_t (0, or one the
 *  broker does not know, counts as "unknown"). */
void soffa_metrics_published(soffa_broker_t *self, uint32_t type);
void soffa_metrics_duplicate(soffa_broker_t *self);
void soffa_metrics_refused(soffa_broker_t *self, uint32_t type, soffa_err_t code);
void soffa_metrics_committed(soffa_broker_t *self, size_t records, int64_t took_us, int64_t sync_us);

/*  Stops the endpoint and frees the counters; NULL-safe. */
void soffa_metrics_destroy(soffa_metrics_t **self_p);

#endif
