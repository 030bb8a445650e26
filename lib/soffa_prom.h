/*  soffa_prom: metrics in Prometheus's text format over HTTP (libmicrohttpd).
 *
 *  A daemon's state belongs to its main loop, so the HTTP server (a thread
 *  of libmicrohttpd's own) never reads it. A scrape asks the loop instead:
 *  the server thread raises soffa_prom_fd (an eventfd) and waits; the loop,
 *  which polls that fd beside its sockets, calls soffa_prom_answer, whose
 *  render function writes the whole exposition from the loop's own running
 *  counters; the server sends that text. Scrapes that arrive together share
 *  one rendering. A loop that does not answer within 5 s gets the scrape a
 *  503, which Prometheus records as the target being down.
 *
 *  The text builder (soffa_prom_text_t), label escaping and histograms are
 *  usable without a server (tests, --check).
 *
 *  Stages: soffa_prom_open (bind, start the thread) -> the loop polls
 *  soffa_prom_fd and calls soffa_prom_answer -> soffa_prom_close.
 */
#ifndef SOFFA_PROM_H
#define SOFFA_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"

/* ---- Exposition text ---- */

typedef struct {
    char *buf;      /* NUL-terminated; owned */
    size_t len, cap;
    bool oom;       /* an append failed: the text is incomplete */
} soffa_prom_text_t;

/*  Appends "# HELP name help" and "# TYPE name type" (type: counter, gauge,
 *  histogram). */
void soffa_prom_family(soffa_prom_text_t *t, const char *name, const char *type, const char *help);

/*  Appends one sample: name{labels} value. labels is what goes between the
 *  braces, already escaped (soffa_prom_label), or NULL/"" for none. */
void soffa_prom_sample(soffa_prom_text_t *t, const char *name, const char *labels, double value);

/*  Writes key="value" into out (size outlen), escaping \, " and line feeds
 *  as the format asks, after `sep` (e.g. "" or ","). Returns false (out
 *  holds an empty string) when it does not fit. */
bool soffa_prom_label(char *out, size_t outlen, const char *sep, const char *key, const char *value);

/*  Frees the text's buffer and zeroes it. */
void soffa_prom_text_fini(soffa_prom_text_t *t);

/* ---- Histograms ---- */

#define SOFFA_PROM_BUCKETS_MAX 24

typedef struct {
    const double *bounds;                         /* upper bounds, ascending (borrowed, static) */
    size_t n;                                     /* number of bounds, <= SOFFA_PROM_BUCKETS_MAX */
    uint64_t counts[SOFFA_PROM_BUCKETS_MAX + 1];  /* per bucket (not cumulative); the last is +Inf */
    uint64_t count;
    double sum;
} soffa_prom_hist_t;

/*  Sets h to empty with the given bounds. */
void soffa_prom_hist_init(soffa_prom_hist_t *h, const double *bounds, size_t n);

/*  Counts one observation. */
void soffa_prom_hist_observe(soffa_prom_hist_t *h, double v);

/*  Appends the family (HELP, TYPE histogram) with cumulative _bucket
 *  samples, _sum and _count. */
void soffa_prom_hist_write(soffa_prom_text_t *t, const char *name, const char *help, const soffa_prom_hist_t *h);

/* ---- The server ---- */

typedef struct soffa_prom soffa_prom_t;

/*  Writes the whole exposition into t; runs on the loop's thread. */
typedef void (*soffa_prom_render_fn)(void *ctx, soffa_prom_text_t *t);

/*  Starts serving GET /metrics on `addr` (HOST:PORT or [IPV6]:PORT; a
 *  loopback address: the endpoint has neither TLS nor authentication).
 *  `what` names the setting in `why` (e.g. "broker.ini: [metrics] listen").
 *  Returns SOFFA_OK, SOFFA_ERR_CONFIG (not an address, or not loopback) or
 *  SOFFA_ERR_TRANSPORT (cannot bind), with `why`. */
soffa_err_t soffa_prom_open(soffa_prom_t **out, const char *addr, const char *what, char *why, size_t whylen);

/*  Checks an address as soffa_prom_open would, without binding (for
 *  configuration checks). Returns SOFFA_OK or SOFFA_ERR_CONFIG with `why`. */
soffa_err_t soffa_prom_check(const char *addr, const char *what, char *why, size_t whylen);

/*  The port it listens on (useful with port 0). */
int soffa_prom_port(const soffa_prom_t *self);

/*  An fd for the loop's poll: readable while a scrape waits for an answer. */
int soffa_prom_fd(const soffa_prom_t *self);

/*  Call when soffa_prom_fd is readable: renders with fn and hands the text
 *  to the scrapes that wait. */
void soffa_prom_answer(soffa_prom_t *self, soffa_prom_render_fn fn, void *ctx);

/*  Scrapes answered so far (for the daemon's own metrics). */
uint64_t soffa_prom_scrapes(const soffa_prom_t *self);

/*  Stops the server (scrapes still waiting get a 503) and frees it;
 *  NULL-safe; sets *self_p to NULL. */
void soffa_prom_close(soffa_prom_t **self_p);

#endif
