/*  soffa_web_http: the HTTP side of soffa-web (libmicrohttpd).
 *
 *  Listens where [web] listen says: HOST:PORT with TLS (tls_cert/tls_key),
 *  or plain HTTP only on a loopback address or a unix socket (anything else
 *  without TLS is refused at start). One thread per connection; requests are
 *  bounded (headers by the connection memory limit, bodies by
 *  SOFFA_WEB_BODY_MAX) before the handler sees them, and every response gets
 *  the security headers (a strict Content-Security-Policy among them).
 *
 *  Also here: a growable text buffer with HTML escaping, and the parser of
 *  application/x-www-form-urlencoded bodies (strict: bad escapes, NUL bytes
 *  and invalid UTF-8 are refused, not repaired).
 */
#ifndef SOFFA_WEB_HTTP_H
#define SOFFA_WEB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "soffa_err.h"
#include "soffa_web_cfg.h"

#define SOFFA_WEB_BODY_MAX (16 * 1024)   /* largest request body accepted */
#define SOFFA_WEB_URL_MAX 512            /* longest path accepted */
#define SOFFA_WEB_FIELDS_MAX 64          /* form fields at most */

/* ---- Text buffer ---- */

typedef struct {
    char *p;        /* NUL-terminated while not oom */
    size_t len, cap;
    bool oom;       /* sticky: an allocation failed */
} soffa_web_buf_t;

void soffa_web_buf_put(soffa_web_buf_t *b, const char *s);
void soffa_web_buf_putn(soffa_web_buf_t *b, const char *s, size_t n);
void soffa_web_buf_printf(soffa_web_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*  Appends s with & < > " ' escaped (s NULL appends nothing). */
void soffa_web_buf_esc(soffa_web_buf_t *b, const char *s);
void soffa_web_buf_fini(soffa_web_buf_t *b);

/* ---- Forms ---- */

typedef struct {
    size_t n;
    char *name[SOFFA_WEB_FIELDS_MAX];
    char *value[SOFFA_WEB_FIELDS_MAX];
} soffa_web_form_t;

/*  Parses an urlencoded body. Returns false (form empty) for bad escapes,
 *  NUL bytes, invalid UTF-8, control characters other than tab, CR and LF,
 *  too many fields, or a name longer than 64. Free with _fini. */
bool soffa_web_form_parse(const char *body, size_t len, soffa_web_form_t *f);
/*  The first value of name, or NULL (borrowed). */
const char *soffa_web_form_get(const soffa_web_form_t *f, const char *name);
/*  Every value of name, comma-joined into out (for multi-selects). */
void soffa_web_form_join(const soffa_web_form_t *f, const char *name, char *out, size_t outlen);
void soffa_web_form_fini(soffa_web_form_t *f);

/* ---- Requests and responses ---- */

typedef struct soffa_web_req soffa_web_req_t;

const char *soffa_web_req_method(const soffa_web_req_t *r);
const char *soffa_web_req_path(const soffa_web_req_t *r);
const char *soffa_web_req_header(const soffa_web_req_t *r, const char *name);
const char *soffa_web_req_cookie(const soffa_web_req_t *r, const char *name);
const char *soffa_web_req_query(const soffa_web_req_t *r, const char *name);
const char *soffa_web_req_body(const soffa_web_req_t *r, size_t *len);
/*  True when the peer is on this host: a loopback address or the unix socket. */
bool soffa_web_req_local(const soffa_web_req_t *r);
/*  The peer's address as text ("unix" for the unix socket). */
const char *soffa_web_req_peer(const soffa_web_req_t *r);

/* A stream reader returns this when the stream is over. */
#define SOFFA_WEB_STREAM_END ((ssize_t) -1)

typedef ssize_t (*soffa_web_stream_fn)(void *cls, uint64_t pos, char *buf, size_t max);

typedef struct {
    int status;
    const char *ctype;         /* default text/html; charset=utf-8 */
    soffa_web_buf_t body;
    char location[512];        /* Location header when set */
    char cookies[3][400];      /* Set-Cookie headers */
    int n_cookies;
    bool cacheable;            /* static assets; pages are never cached */
    soffa_web_stream_fn stream;   /* a stream (Server-Sent Events) instead of body */
    void *stream_cls;
    void (*stream_free)(void *cls);
} soffa_web_resp_t;

void soffa_web_resp_cookie(soffa_web_resp_t *resp, const char *name, const char *value, int64_t max_age_s);

typedef void (*soffa_web_handler_t)(void *ctx, const soffa_web_req_t *req, soffa_web_resp_t *resp);

typedef struct soffa_web_http soffa_web_http_t;

/*  Starts listening and serving with handler. Returns SOFFA_OK, or
 *  SOFFA_ERR_CONFIG (plain HTTP on a non-local address, unreadable TLS
 *  files, a bad listen address) / SOFFA_ERR_TRANSPORT (cannot bind) with why. */
soffa_err_t soffa_web_http_open(soffa_web_http_t **out, const soffa_web_cfg_t *cfg, soffa_web_handler_t handler,
                                void *ctx, char *why, size_t whylen);

/*  The TCP port listened on (0 for a unix socket). */
int soffa_web_http_port(const soffa_web_http_t *self);

/*  Stops serving; waits for connection threads. NULL-safe. */
void soffa_web_http_close(soffa_web_http_t **self_p);

#endif
