/*  soffa_web_http: libmicrohttpd behind bounds, security headers, forms. */
#include "soffa_web_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "soffa_log.h"
#include "soffa_web_i18n.h"

/* ---- Text buffer ---------------------------------------------------------------- */

static bool
s_grow(soffa_web_buf_t *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void
soffa_web_buf_putn(soffa_web_buf_t *b, const char *s, size_t n)
{
    if (!s_grow(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
soffa_web_buf_put(soffa_web_buf_t *b, const char *s)
{
    if (s)
        soffa_web_buf_putn(b, s, strlen(s));
}

void
soffa_web_buf_printf(soffa_web_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t) n < sizeof small) {
        soffa_web_buf_putn(b, small, (size_t) n);
        return;
    }
    if (!s_grow(b, (size_t) n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}

void
soffa_web_buf_esc(soffa_web_buf_t *b, const char *s)
{
    if (!s)
        return;
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&': soffa_web_buf_put(b, "&amp;"); break;
        case '<': soffa_web_buf_put(b, "&lt;"); break;
        case '>': soffa_web_buf_put(b, "&gt;"); break;
        case '"': soffa_web_buf_put(b, "&quot;"); break;
        case '\'': soffa_web_buf_put(b, "&#39;"); break;
        default: soffa_web_buf_putn(b, p, 1);
        }
    }
}

void
soffa_web_buf_fini(soffa_web_buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- Forms -------------------------------------------------------------------- */

static int
s_hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* True for well-formed UTF-8 without NUL or control characters (tab, CR, LF allowed). */
static bool
s_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t k;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf)
            k = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3, cp = c & 0x07;
        else
            return false;
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* Decodes one urlencoded part into a new string; NULL when malformed. */
static char *
s_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int h = i + 2 < n ? s_hexval(s[i + 1]) : -1, l = i + 2 < n ? s_hexval(s[i + 2]) : -1;
            if (h < 0 || l < 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char) (h << 4 | l);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    if (!s_utf8_ok((const unsigned char *) out, o)) {
        free(out);
        return NULL;
    }
    return out;
}

bool
soffa_web_form_parse(const char *body, size_t len, soffa_web_form_t *f)
{
    memset(f, 0, sizeof *f);
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && body[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(body + i, '=', j - i);
            size_t nl = eq ? (size_t) (eq - (body + i)) : j - i;
            if (f->n >= SOFFA_WEB_FIELDS_MAX || nl == 0 || nl > 64)
                goto bad;
            char *name = s_decode(body + i, nl);
            char *value = s_decode(eq ? eq + 1 : body + j, eq ? (size_t) (body + j - eq - 1) : 0);
            if (!name || !value) {
                free(name);
                free(value);
                goto bad;
            }
            f->name[f->n] = name;
            f->value[f->n++] = value;
        }
        i = j + 1;
    }
    return true;
bad:
    soffa_web_form_fini(f);
    return false;
}

const char *
soffa_web_form_get(const soffa_web_form_t *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->name[i], name))
            return f->value[i];
    return NULL;
}

void
soffa_web_form_join(const soffa_web_form_t *f, const char *name, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->name[i], name) != 0)
            continue;
        int n = snprintf(out + o, outlen - o, "%s%s", o ? "," : "", f->value[i]);
        if (n < 0 || (size_t) n >= outlen - o)
            break;
        o += (size_t) n;
    }
}

void
soffa_web_form_fini(soffa_web_form_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->name[i]);
        free(f->value[i]);
    }
    f->n = 0;
}

/* ---- Requests ------------------------------------------------------------------- */

struct soffa_web_req {
    struct MHD_Connection *conn;
    const char *method, *path;
    char *body;
    size_t body_len;
    bool too_large;
    bool local;
    char peer[64];
};

const char *soffa_web_req_method(const soffa_web_req_t *r) { return r->method; }
const char *soffa_web_req_path(const soffa_web_req_t *r) { return r->path; }
bool soffa_web_req_local(const soffa_web_req_t *r) { return r->local; }
const char *soffa_web_req_peer(const soffa_web_req_t *r) { return r->peer; }

const char *
soffa_web_req_header(const soffa_web_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *
soffa_web_req_cookie(const soffa_web_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

const char *
soffa_web_req_query(const soffa_web_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
soffa_web_req_body(const soffa_web_req_t *r, size_t *len)
{
    *len = r->body_len;
    return r->body ? r->body : "";
}

void
soffa_web_resp_cookie(soffa_web_resp_t *resp, const char *name, const char *value, int64_t max_age_s)
{
    if (resp->n_cookies >= 3)
        return;
    /* Secure also over loopback http: browsers accept it on localhost. */
    snprintf(resp->cookies[resp->n_cookies++], sizeof resp->cookies[0],
             "%s=%s; Path=/; HttpOnly; Secure; SameSite=Strict%s%lld", name, value,
             max_age_s >= 0 ? "; Max-Age=" : "", (long long) (max_age_s >= 0 ? max_age_s : 0));
    if (max_age_s < 0) {
        /* No Max-Age: a session cookie (drop the trailing number). */
        char *c = resp->cookies[resp->n_cookies - 1];
        size_t n = strlen(c);
        if (n && c[n - 1] == '0')
            c[n - 1] = '\0';
    }
}

/* ---- The daemon ------------------------------------------------------------------- */

struct soffa_web_http {
    struct MHD_Daemon *d;
    soffa_web_handler_t handler;
    void *ctx;
    bool tls;
    int port;
    int listen_fd;
    char *cert, *key;
    char unix_path[1024];
};

static const char *const s_csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                 "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static bool
s_is_local(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_UNIX)
        return true;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127;
    }
    return false;
}

static void
s_peer_text(const struct sockaddr *sa, char *out, size_t len)
{
    snprintf(out, len, "?");
    if (!sa)
        return;
    if (sa->sa_family == AF_UNIX)
        snprintf(out, len, "unix");
    else if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, out, (socklen_t) len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, out, (socklen_t) len);
}

static void
s_headers(soffa_web_http_t *self, struct MHD_Response *r, const soffa_web_resp_t *resp)
{
    MHD_add_response_header(r, "Content-Security-Policy", s_csp);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Permissions-Policy", "camera=(), microphone=(), geolocation=()");
    if (self->tls)
        MHD_add_response_header(r, "Strict-Transport-Security", "max-age=31536000");
    MHD_add_response_header(r, "Cache-Control", resp->cacheable ? "private, max-age=3600" : "no-store");
    MHD_add_response_header(r, "Content-Type", resp->ctype ? resp->ctype : "text/html; charset=utf-8");
    if (resp->location[0])
        MHD_add_response_header(r, "Location", resp->location);
    for (int i = 0; i < resp->n_cookies; i++)
        MHD_add_response_header(r, "Set-Cookie", resp->cookies[i]);
}

static enum MHD_Result
s_queue(soffa_web_http_t *self, struct MHD_Connection *c, soffa_web_resp_t *resp)
{
    struct MHD_Response *r;
    if (resp->stream) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, resp->stream, resp->stream_cls, resp->stream_free);
    } else {
        if (resp->body.oom) {
            soffa_web_buf_fini(&resp->body);
            resp->status = 500;
            soffa_web_buf_put(&resp->body, "out of memory");
        }
        size_t len = resp->body.len;
        char *body = resp->body.p ? resp->body.p : strdup("");
        resp->body.p = NULL;
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    }
    if (!r)
        return MHD_NO;
    s_headers(self, r, resp);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned) resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A page for what the HTTP layer refuses itself. */
static enum MHD_Result
s_refuse(soffa_web_http_t *self, struct MHD_Connection *c, int status, const char *key)
{
    soffa_web_resp_t resp;
    memset(&resp, 0, sizeof resp);
    resp.status = status;
    soffa_web_buf_printf(&resp.body, "<!DOCTYPE html><html lang=\"sv\"><head><meta charset=\"utf-8\"><title>%s</title>"
                                     "<link rel=\"stylesheet\" href=\"/app.css\"></head><body><main><h1>%s</h1>"
                                     "<p>%s</p></main></body></html>",
                         soffa_web_tr("fel.titel"), soffa_web_tr("fel.titel"), soffa_web_tr(key));
    return s_queue(self, c, &resp);
}

static enum MHD_Result
s_access(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
         const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    soffa_web_http_t *self = cls;
    soffa_web_req_t *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->conn = c;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        r->local = self->unix_path[0] ? true : s_is_local(sa);
        if (self->unix_path[0])
            snprintf(r->peer, sizeof r->peer, "unix");
        else
            s_peer_text(sa, r->peer, sizeof r->peer);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large || r->body_len + n > SOFFA_WEB_BODY_MAX) {
            r->too_large = true;   /* the rest is read and dropped; the answer is 413 */
            free(r->body);
            r->body = NULL;
            r->body_len = 0;
            return MHD_YES;
        }
        char *b = realloc(r->body, r->body_len + n + 1);
        if (!b)
            return MHD_NO;
        memcpy(b + r->body_len, upload_data, n);
        r->body = b;
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return MHD_YES;
    }
    if (r->too_large)
        return s_refuse(self, c, 413, "fel.for_stor");
    if (strlen(url) > SOFFA_WEB_URL_MAX || url[0] != '/')
        return s_refuse(self, c, 414, "fel.for_lang");
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 && strcmp(method, "HEAD") != 0)
        return s_refuse(self, c, 405, "fel.metod");
    r->method = method;
    r->path = url;
    soffa_web_resp_t resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    self->handler(self->ctx, r, &resp);
    enum MHD_Result ret = s_queue(self, c, &resp);
    soffa_web_buf_fini(&resp.body);
    return ret;
}

static void
s_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void) cls, (void) c, (void) toe;
    soffa_web_req_t *r = *con_cls;
    if (r) {
        free(r->body);
        free(r);
    }
    *con_cls = NULL;
}

static void
s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void) cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    soffa_debug("http: %s", line);
}

static char *
s_slurp(const char *path, char *why, size_t whylen, bool secret)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > 1024 * 1024) {
        snprintf(why, whylen, "cannot read %s: %s", path, fd < 0 ? strerror(errno) : "empty or larger than 1 MiB");
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (secret && (st.st_mode & 077)) {
        snprintf(why, whylen, "%s: others may read the TLS key; run chmod 600 on it", path);
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t) st.st_size + 1);
    ssize_t n = buf ? read(fd, buf, (size_t) st.st_size) : -1;
    close(fd);
    if (n != st.st_size) {
        free(buf);
        snprintf(why, whylen, "cannot read %s", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Parses HOST:PORT or [V6]:PORT into a socket address. */
static bool
s_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[256];
    const char *colon;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':' || (size_t) (end - listen - 1) >= sizeof host)
            return false;
        snprintf(host, sizeof host, "%.*s", (int) (end - listen - 1), listen + 1);
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon || (size_t) (colon - listen) >= sizeof host)
            return false;
        snprintf(host, sizeof host, "%.*s", (int) (colon - listen), listen);
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return false;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) ss;
    if (!strcmp(host, "localhost"))
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

soffa_err_t
soffa_web_http_open(soffa_web_http_t **out, const soffa_web_cfg_t *cfg, soffa_web_handler_t handler, void *ctx,
                    char *why, size_t whylen)
{
    *out = NULL;
    soffa_web_http_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->handler = handler;
    self->ctx = ctx;
    self->listen_fd = -1;
    self->tls = cfg->cert_path[0] != '\0';
    soffa_err_t rc = SOFFA_ERR_CONFIG;
    int fd = -1;
    if (cfg->unix_path[0]) {
        struct sockaddr_un su;
        memset(&su, 0, sizeof su);
        su.sun_family = AF_UNIX;
        memcpy(su.sun_path, cfg->unix_path, strnlen(cfg->unix_path, sizeof su.sun_path - 1));   /* <= 100, checked at load */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        unlink(cfg->unix_path);
        mode_t old = umask(077);   /* the proxy runs as this user, or is given the socket by the operator */
        int brc = fd >= 0 ? bind(fd, (struct sockaddr *) &su, sizeof su) : -1;
        umask(old);
        if (brc != 0) {
            snprintf(why, whylen, "cannot listen on %s: %s", cfg->unix_path, strerror(errno));
            rc = SOFFA_ERR_TRANSPORT;
            goto fail;
        }
        snprintf(self->unix_path, sizeof self->unix_path, "%s", cfg->unix_path);
    } else {
        struct sockaddr_storage ss;
        socklen_t sl;
        if (!s_parse_listen(cfg->listen, &ss, &sl)) {
            snprintf(why, whylen, "%s: [web] listen = %s: give HOST:PORT, [IPV6]:PORT or unix:PATH", cfg->config_path,
                     cfg->listen);
            goto fail;
        }
        if (!self->tls && !s_is_local((struct sockaddr *) &ss)) {
            snprintf(why, whylen,
                     "%s: [web] listen = %s is not a loopback address, and there is no TLS: set tls_cert and tls_key, "
                     "or listen on 127.0.0.1, [::1] or unix:PATH behind a reverse proxy that speaks TLS",
                     cfg->config_path, cfg->listen);
            goto fail;
        }
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (fd < 0 || bind(fd, (struct sockaddr *) &ss, sl) != 0) {
            snprintf(why, whylen, "cannot listen on %s: %s", cfg->listen, strerror(errno));
            rc = SOFFA_ERR_TRANSPORT;
            goto fail;
        }
        struct sockaddr_storage got;
        socklen_t gl = sizeof got;
        getsockname(fd, (struct sockaddr *) &got, &gl);
        self->port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *) &got)->sin_port
                                                    : ((struct sockaddr_in6 *) &got)->sin6_port);
    }
    if (listen(fd, 128) != 0) {
        snprintf(why, whylen, "cannot listen on %s: %s", cfg->listen, strerror(errno));
        rc = SOFFA_ERR_TRANSPORT;
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (self->tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(why, whylen, "this libmicrohttpd was built without TLS");
            goto fail;
        }
        self->cert = s_slurp(cfg->cert_path, why, whylen, false);
        self->key = self->cert ? s_slurp(cfg->key_path, why, whylen, true) : NULL;
        if (!self->key)
            goto fail;
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, self->cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, self->key},
        {MHD_OPTION_END, 0, NULL},
    };
    self->d = MHD_start_daemon(flags, 0, NULL, NULL, s_access, self,
                               MHD_OPTION_LISTEN_SOCKET, fd,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned) cfg->max_connections,
                               MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 32 * 1024,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 30,
                               MHD_OPTION_NOTIFY_COMPLETED, s_completed, self,
                               MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self,
                               MHD_OPTION_ARRAY, self->tls ? tls_opts : &tls_opts[2],
                               MHD_OPTION_END);
    if (!self->d) {
        snprintf(why, whylen, "cannot start the HTTP server on %s (for TLS: are the certificate and key PEM files "
                              "that belong together?)", cfg->listen);
        rc = SOFFA_ERR_TRANSPORT;
        goto fail;
    }
    self->listen_fd = fd;
    *out = self;
    return SOFFA_OK;
fail:
    if (fd >= 0)
        close(fd);
    free(self->cert);
    free(self->key);
    free(self);
    return rc;
}

int
soffa_web_http_port(const soffa_web_http_t *self)
{
    return self->port;
}

void
soffa_web_http_close(soffa_web_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_web_http_t *self = *self_p;
    if (self->d)
        MHD_stop_daemon(self->d);
    if (self->listen_fd >= 0)
        close(self->listen_fd);
    if (self->unix_path[0])
        unlink(self->unix_path);
    if (self->key) {
        explicit_bzero(self->key, strlen(self->key));
        free(self->key);
    }
    free(self->cert);
    free(self);
    *self_p = NULL;
}
