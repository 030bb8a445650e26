/*  soffa_sync: SS 12000 over HTTPS with libcurl. */
#include "soffa_sync.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soffa_time.h"

#define S_PAGE_MAX ((size_t) 64 << 20)   /* largest page accepted */
#define S_MAX_PAGES 100000

soffa_err_t
soffa_sync_token(const char *file, char *out, size_t outlen, char *why, size_t whylen)
{
    int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "token-filen %s kan inte läsas: %s", file, strerror(errno));
        return errno == EACCES ? SOFFA_ERR_PERMISSION : SOFFA_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(why, whylen, "token-filen %s är ingen vanlig fil", file);
        return SOFFA_ERR_IO;
    }
    if (st.st_uid != getuid() || (st.st_mode & 077)) {
        close(fd);
        snprintf(why, whylen, "token-filen %s får bara kunna läsas av sin ägare, som ska vara du (kör chmod 600 på "
                              "den)", file);
        return SOFFA_ERR_PERMISSION;
    }
    char buf[8192];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    size_t len = strlen(buf);
    while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        buf[--len] = '\0';
    bool ok = len > 0 && len < outlen;
    for (size_t i = 0; ok && i < len; i++)
        ok = buf[i] > 0x20 && buf[i] < 0x7f;
    if (!ok) {
        explicit_bzero(buf, sizeof buf);
        snprintf(why, whylen, "token-filen %s ska ha token på första raden (synliga ASCII-tecken, högst %zu)", file,
                 outlen - 1);
        return SOFFA_ERR_BAD_FIELD;
    }
    memcpy(out, buf, len + 1);
    explicit_bzero(buf, sizeof buf);
    return SOFFA_OK;
}

typedef struct {
    char *data;
    size_t len, cap;
    bool too_big;
} s_buf_t;

static size_t
s_write(char *p, size_t size, size_t n, void *ctx)
{
    s_buf_t *b = ctx;
    size_t add = size * n;
    if (b->len + add > S_PAGE_MAX) {
        b->too_big = true;
        return 0;   /* ends the transfer */
    }
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static bool
s_loopback(const char *url)
{
    static const char *const ok[] = {"http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:",
                                     "http://localhost/", "http://[::1]:", "http://[::1]/"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strncmp(url, ok[i], strlen(ok[i])))
            return true;
    return false;
}

/* The error text of the API's {"code","message"}, if the body is one. */
static void
s_api_message(const s_buf_t *b, char *out, size_t len)
{
    out[0] = '\0';
    if (!b->data)
        return;
    size_t o = 0;
    const char *m = strstr(b->data, "\"message\"");
    const char *p = m ? strchr(m + 9, '"') : NULL;
    if (!p)
        return;
    for (p++; *p && *p != '"' && o + 1 < len && o < 200; p++)
        out[o++] = (unsigned char) *p >= 0x20 ? *p : ' ';
    out[o] = '\0';
}

typedef struct {
    const soffa_sync_opts_t *o;
    CURL *curl;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    size_t pages;
} s_client_t;

/* One GET; the body in b. */
static soffa_err_t
s_get(s_client_t *c, const char *url, const char *what, s_buf_t *b, char *why, size_t whylen)
{
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    c->errbuf[0] = '\0';
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (b->too_big) {
        snprintf(why, whylen, "%s: sidan är större än %zu MiB; be om mindre sidor (page_size)", what, S_PAGE_MAX >> 20);
        return SOFFA_ERR_TOO_LARGE;
    }
    if (cc == CURLE_PARTIAL_FILE || cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING) {
        snprintf(why, whylen, "%s: servern avbröt förbindelsen mitt i svaret (%s); ingenting har skickats, försök "
                              "igen senare", what, c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        return SOFFA_ERR_TRANSPORT;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(why, whylen, "%s: inget svar inom %ld s; ingenting har skickats", what, c->o->timeout_ms / 1000);
        return SOFFA_ERR_TIMEOUT;
    }
    if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CONNECT_ERROR) {
        snprintf(why, whylen, "%s: TLS: servern kunde inte verifieras (%s); är det rätt adress? har API:t en egen CA, "
                              "ange den med ca_file", what, c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        return SOFFA_ERR_TRANSPORT;
    }
    if (cc != CURLE_OK) {
        snprintf(why, whylen, "%s: %s", what, c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        return SOFFA_ERR_TRANSPORT;
    }
    char msg[256];
    s_api_message(b, msg, sizeof msg);
    if (status == 401 || status == 403) {
        snprintf(why, whylen, "%s: API:t vägrade token (HTTP %ld%s%s); kontrollera token-filen och att kontot får "
                              "läsa personer", what, status, msg[0] ? ": " : "", msg);
        return SOFFA_ERR_NOT_AUTHORISED;
    }
    if (status >= 300 && status < 400) {
        snprintf(why, whylen, "%s: API:t svarade med en omdirigering (HTTP %ld); ange den slutliga adressen som url",
                 what, status);
        return SOFFA_ERR_TRANSPORT;
    }
    if (status != 200) {
        snprintf(why, whylen, "%s: API:t svarade HTTP %ld%s%s", what, status, msg[0] ? ": " : "", msg);
        return status >= 500 ? SOFFA_ERR_UNAVAILABLE : SOFFA_ERR_TRANSPORT;
    }
    return SOFFA_OK;
}

/* Every page of one endpoint into ss. */
static soffa_err_t
s_endpoint(s_client_t *c, soffa_ss12000_t *ss, const char *path, const char *query, soffa_ss12000_kind_t kind,
           char *why, size_t whylen)
{
    char *token = NULL, *prev = NULL;
    soffa_err_t rc = SOFFA_OK;
    for (size_t page = 1;; page++) {
        if (page > S_MAX_PAGES) {
            snprintf(why, whylen, "%s: fler än %d sidor; avbryter", path, S_MAX_PAGES);
            rc = SOFFA_ERR_TOO_LARGE;
            break;
        }
        char url[4096], what[600];
        int n = snprintf(url, sizeof url, "%s%s?limit=%ld%s%s", c->o->url, path, c->o->page_size, query ? "&" : "",
                         query ? query : "");
        if (token) {
            char *esc = curl_easy_escape(c->curl, token, 0);
            n = snprintf(url + n, sizeof url - (size_t) n, "&pageToken=%s", esc ? esc : "");
            curl_free(esc);
        }
        if (n < 0 || strlen(url) >= sizeof url - 1) {
            snprintf(why, whylen, "%s: adressen blir för lång (pageToken?)", path);
            rc = SOFFA_ERR_TOO_LARGE;
            break;
        }
        snprintf(what, sizeof what, "GET %s sida %zu", path, page);
        s_buf_t b = {0};
        rc = s_get(c, url, what, &b, why, whylen);
        char *next = NULL;
        if (rc == SOFFA_OK) {
            char pwhy[600];
            rc = soffa_ss12000_add(ss, b.data ? b.data : "", b.len, what, kind, &next, pwhy, sizeof pwhy);
            if (rc != SOFFA_OK)
                snprintf(why, whylen, "%s", pwhy);
        }
        free(b.data);
        if (rc != SOFFA_OK)
            break;
        c->pages++;
        free(prev);
        prev = token;
        token = next;
        if (!token)
            break;
        if (prev && !strcmp(prev, token)) {
            snprintf(why, whylen, "%s: API:t gav samma pageToken två gånger i rad; avbryter för att inte läsa i all "
                                  "evighet", what);
            rc = SOFFA_ERR_MALFORMED;
            break;
        }
    }
    free(token);
    free(prev);
    return rc;
}

soffa_err_t
soffa_sync_fetch(const soffa_sync_opts_t *o, soffa_ss12000_t *ss, size_t *pages, char *why, size_t whylen)
{
    *pages = 0;
    if (!o->url || (strncmp(o->url, "https://", 8) != 0 && !s_loopback(o->url))) {
        snprintf(why, whylen, "url måste börja med https:// (okrypterad http bara till den här datorn: token får inte "
                              "skickas i klartext)");
        return SOFFA_ERR_CONFIG;
    }
    char token[4096], auth[4200];
    soffa_err_t rc = soffa_sync_token(o->token_file, token, sizeof token, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    explicit_bzero(token, sizeof token);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        explicit_bzero(auth, sizeof auth);
        return SOFFA_ERR_INTERNAL;
    }
    s_client_t c = {.o = o};
    c.curl = curl_easy_init();
    c.headers = curl_slist_append(NULL, auth);
    c.headers = curl_slist_append(c.headers, "Accept: application/json");
    explicit_bzero(auth, sizeof auth);
    if (!c.curl || !c.headers) {
        rc = SOFFA_ERR_NOMEM;
        goto out;
    }
    CURL *h = c.curl;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c.headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c.errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file && o->ca_file[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms < 10000 ? o->timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "soffa/0.1 (SS 12000)");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");

    rc = s_endpoint(&c, ss, "/organisations", NULL, SOFFA_SS12000_ORGANISATIONS, why, whylen);
    if (rc == SOFFA_OK)
        rc = s_endpoint(&c, ss, "/persons", NULL, SOFFA_SS12000_PERSONS, why, whylen);
    if (rc == SOFFA_OK && o->attendance) {
        /* Whole months: from the first day of last month (Stockholm) to now. */
        soffa_date_t t = soffa_date_today();
        soffa_date_t first = {t.month == 1 ? t.year - 1 : t.year, t.month == 1 ? 12 : t.month - 1, 1};
        char a[40], b[40], q[300];
        soffa_time_format_local_rfc3339(soffa_date_local_start_us(first), a);
        soffa_time_format_local_rfc3339(soffa_now_us(), b);
        char *ea = curl_easy_escape(h, a, 0), *eb = curl_easy_escape(h, b, 0);
        snprintf(q, sizeof q, "startTime.onOrAfter=%s&startTime.onOrBefore=%s&expand=attendance", ea ? ea : "",
                 eb ? eb : "");
        curl_free(ea);
        curl_free(eb);
        rc = s_endpoint(&c, ss, "/calendarEvents", q, SOFFA_SS12000_CALENDAR_EVENTS, why, whylen);
    }
out:
    *pages = c.pages;
    curl_slist_free_all(c.headers);   /* holds the token: freed, not kept */
    if (c.curl)
        curl_easy_cleanup(c.curl);
    curl_global_cleanup();
    return rc;
}
