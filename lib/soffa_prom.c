/*  soffa_prom: Prometheus text format over libmicrohttpd (see soffa_prom.h). */
#include "soffa_prom.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "soffa_log.h"

#define S_WAIT_MS 5000               /* longest a scrape waits for the loop */
#define S_CONNECTIONS 8              /* scrapers at once */
#define S_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- Exposition text ---------------------------------------------------------------- */

static void
s_append(soffa_prom_text_t *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->buf && t->len + (size_t) n < t->cap) {
            t->len += (size_t) n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap <= t->len + (size_t) n)
            cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->oom = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
        t->buf[t->len] = '\0';
    }
}

void
soffa_prom_family(soffa_prom_text_t *t, const char *name, const char *type, const char *help)
{
    s_append(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Values as the format writes them: integers without a fraction, +Inf, NaN. */
static void
s_value(char *out, size_t len, double v)
{
    if (isnan(v))
        snprintf(out, len, "NaN");
    else if (isinf(v))
        snprintf(out, len, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9e15)
        snprintf(out, len, "%.0f", v);
    else
        snprintf(out, len, "%.9g", v);
}

void
soffa_prom_sample(soffa_prom_text_t *t, const char *name, const char *labels, double value)
{
    char v[64];
    s_value(v, sizeof v, value);
    if (labels && labels[0])
        s_append(t, "%s{%s} %s\n", name, labels, v);
    else
        s_append(t, "%s %s\n", name, v);
}

bool
soffa_prom_label(char *out, size_t outlen, const char *sep, const char *key, const char *value)
{
    size_t o = 0;
    int n = snprintf(out, outlen, "%s%s=\"", sep, key);
    if (n < 0 || (size_t) n >= outlen)
        goto too_long;
    o = (size_t) n;
    for (const char *p = value; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        size_t need = esc ? 2 : 1;
        if (o + need + 2 > outlen)
            goto too_long;
        if (esc) {
            memcpy(out + o, esc, 2);
        } else {
            out[o] = *p;
        }
        o += need;
    }
    out[o++] = '"';
    out[o] = '\0';
    return true;
too_long:
    if (outlen)
        out[0] = '\0';
    return false;
}

void
soffa_prom_text_fini(soffa_prom_text_t *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}

/* ---- Histograms ----------------------------------------------------------------------- */

void
soffa_prom_hist_init(soffa_prom_hist_t *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n = n < SOFFA_PROM_BUCKETS_MAX ? n : SOFFA_PROM_BUCKETS_MAX;
}

void
soffa_prom_hist_observe(soffa_prom_hist_t *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void
soffa_prom_hist_write(soffa_prom_text_t *t, const char *name, const char *help, const soffa_prom_hist_t *h)
{
    soffa_prom_family(t, name, "histogram", help);
    char metric[160], le[64], label[96];
    snprintf(metric, sizeof metric, "%s_bucket", name);
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->n; i++) {
        cum += h->counts[i];
        s_value(le, sizeof le, i < h->n ? h->bounds[i] : INFINITY);
        soffa_prom_label(label, sizeof label, "", "le", le);
        soffa_prom_sample(t, metric, label, (double) cum);
    }
    snprintf(metric, sizeof metric, "%s_sum", name);
    soffa_prom_sample(t, metric, NULL, h->sum);
    snprintf(metric, sizeof metric, "%s_count", name);
    soffa_prom_sample(t, metric, NULL, (double) h->count);
}

/* ---- The server ------------------------------------------------------------------------ */

struct soffa_prom {
    struct MHD_Daemon *d;
    int efd;                      /* eventfd: a scrape waits for the loop */
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* CLOCK_MONOTONIC */
    uint64_t asked;               /* the rendering scrapes wait for (under mu) */
    uint64_t done;                /* the last rendering made (under mu) */
    char *text;                   /* that rendering; NULL when it failed (under mu) */
    size_t len;
    bool closing;                 /* under mu */
    uint64_t scrapes;             /* answered (under mu) */
};

static enum MHD_Result
s_reply(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, owned ? MHD_RESPMEM_MUST_FREE
                                                                              : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

#define S_TEXT(c, status, msg) s_reply((c), (status), "text/plain; charset=utf-8", (char *) (msg), strlen(msg), false)

/* Asks the loop for a rendering and waits for it; returns a copy (free it),
 * or NULL when the loop did not answer in time, the server is closing, or
 * the rendering failed. */
static char *
s_ask(soffa_prom_t *self, size_t *len)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += S_WAIT_MS / 1000;
    char *copy = NULL;
    pthread_mutex_lock(&self->mu);
    uint64_t target = self->done + 1;
    if (self->asked < target) {
        self->asked = target;
        uint64_t one = 1;
        if (write(self->efd, &one, sizeof one) != sizeof one)
            soffa_debug("metrics: could not wake the loop: %s", strerror(errno));
    }
    int rc = 0;
    while (self->done < target && !self->closing && rc == 0)
        rc = pthread_cond_timedwait(&self->cv, &self->mu, &until);
    if (self->done >= target && !self->closing && self->text) {
        copy = malloc(self->len + 1);
        if (copy) {
            memcpy(copy, self->text, self->len + 1);
            *len = self->len;
            self->scrapes++;
        }
    }
    pthread_mutex_unlock(&self->mu);
    return copy;
}

static enum MHD_Result
s_access(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
         const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    (void) upload_data;
    soffa_prom_t *self = cls;
    if (*con_cls == NULL) {
        *con_cls = self;   /* first call: the headers; answer at once, whatever body may follow */
    }
    *upload_data_size = 0;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return S_TEXT(c, MHD_HTTP_METHOD_NOT_ALLOWED, "soffa metrics: only GET and HEAD\n");
    if (strcmp(url, "/metrics") != 0)
        return S_TEXT(c, MHD_HTTP_NOT_FOUND, "soffa metrics: the metrics are at /metrics\n");
    size_t len = 0;
    char *text = s_ask(self, &len);
    if (!text)
        return S_TEXT(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                      "soffa metrics: the daemon's loop did not answer within 5 s (it is stopping, or stalled)\n");
    return s_reply(c, MHD_HTTP_OK, S_CONTENT_TYPE, text, len, true);
}

static void
s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void) cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    soffa_debug("metrics http: %s", line);
}

/* HOST:PORT or [IPV6]:PORT, numeric, or localhost:PORT. */
static bool
s_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[64];
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t) (end - addr - 1) >= sizeof host)
            return false;
        snprintf(host, sizeof host, "%.*s", (int) (end - addr - 1), addr + 1);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t) (colon - addr) >= sizeof host)
            return false;
        snprintf(host, sizeof host, "%.*s", (int) (colon - addr), addr);
    }
    char *e;
    errno = 0;
    long port = strtol(colon + 1, &e, 10);
    if (colon[1] == '\0' || *e || errno || port < 0 || port > 65535)
        return false;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) ss;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t) port);
        *sl = sizeof *v4;
        return true;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t) port);
        *sl = sizeof *v6;
        return true;
    }
    return false;
}

static bool
s_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *) ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *) ss)->sin6_addr);
}

/* Parses and checks addr (see soffa_prom_check). */
static soffa_err_t
s_addr(const char *addr, const char *what, struct sockaddr_storage *ss, socklen_t *sl, char *why, size_t whylen)
{
    if (!s_parse(addr, ss, sl)) {
        snprintf(why, whylen, "%s = %s: give HOST:PORT or [IPV6]:PORT, e.g. 127.0.0.1:9464", what, addr);
        return SOFFA_ERR_CONFIG;
    }
    if (!s_loopback(ss)) {
        snprintf(why, whylen,
                 "%s = %s is not a loopback address: the metrics endpoint has neither TLS nor authentication; listen "
                 "on 127.0.0.1 or [::1] and scrape it there (or through a proxy that adds them)",
                 what, addr);
        return SOFFA_ERR_CONFIG;
    }
    return SOFFA_OK;
}

soffa_err_t
soffa_prom_check(const char *addr, const char *what, char *why, size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    return s_addr(addr, what, &ss, &sl, why, whylen);
}

soffa_err_t
soffa_prom_open(soffa_prom_t **out, const char *addr, const char *what, char *why, size_t whylen)
{
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    soffa_err_t arc = s_addr(addr, what, &ss, &sl, why, whylen);
    if (arc != SOFFA_OK)
        return arc;
    soffa_prom_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, &ca);
    pthread_condattr_destroy(&ca);
    soffa_err_t rc = SOFFA_ERR_TRANSPORT;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (self->efd < 0 || fd < 0 || bind(fd, (struct sockaddr *) &ss, sl) != 0 || listen(fd, 16) != 0) {
        snprintf(why, whylen, "%s = %s: cannot listen there: %s", what, addr, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(fd, (struct sockaddr *) &got, &gl);
    self->port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *) &got)->sin_port
                                                : ((struct sockaddr_in6 *) &got)->sin6_port);
    /* The server's threads take no signals: the daemon's handlers belong
     * to its main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    self->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
                               NULL, NULL, s_access, self, MHD_OPTION_LISTEN_SOCKET, fd,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned) S_CONNECTIONS,
                               MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned) S_CONNECTIONS,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 16 * 1024,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 10,
                               MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!self->d) {
        snprintf(why, whylen, "%s = %s: cannot start the HTTP server", what, addr);
        goto fail;
    }
    *out = self;
    return SOFFA_OK;
fail:
    if (fd >= 0)
        close(fd);
    if (self->efd >= 0)
        close(self->efd);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self);
    return rc;
}

int
soffa_prom_port(const soffa_prom_t *self)
{
    return self->port;
}

int
soffa_prom_fd(const soffa_prom_t *self)
{
    return self->efd;
}

void
soffa_prom_answer(soffa_prom_t *self, soffa_prom_render_fn fn, void *ctx)
{
    uint64_t drain;
    while (read(self->efd, &drain, sizeof drain) == sizeof drain)
        ;
    pthread_mutex_lock(&self->mu);
    uint64_t target = self->asked;
    bool wanted = target > self->done;
    pthread_mutex_unlock(&self->mu);
    if (!wanted)
        return;
    /* Rendered on the loop's thread, outside the lock: it reads the loop's
     * state, the server thread reads only the finished text. */
    soffa_prom_text_t t = {0};
    fn(ctx, &t);
    if (t.oom) {
        soffa_warn("metrics: out of memory while writing them; the scrape gets a 503");
        soffa_prom_text_fini(&t);
    }
    pthread_mutex_lock(&self->mu);
    free(self->text);
    self->text = t.buf;
    self->len = t.len;
    self->done = target;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

uint64_t
soffa_prom_scrapes(const soffa_prom_t *self)
{
    soffa_prom_t *m = (soffa_prom_t *) self;
    pthread_mutex_lock(&m->mu);
    uint64_t n = m->scrapes;
    pthread_mutex_unlock(&m->mu);
    return n;
}

void
soffa_prom_close(soffa_prom_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_prom_t *self = *self_p;
    pthread_mutex_lock(&self->mu);
    self->closing = true;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    if (self->d)
        MHD_stop_daemon(self->d);   /* closes the listening socket it was given */
    close(self->efd);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self->text);
    free(self);
    *self_p = NULL;
}
