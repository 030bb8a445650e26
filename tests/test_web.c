/*  The hostile side of soffa-web, with real HTTP requests (raw sockets,
 *  curl for TLS) against the real soffa-web process: cookies, CSRF, the
 *  growing login delay, expired sessions, the single sign-on header (and its
 *  refusal from a peer that is not on this host, from a network namespace of
 *  the test's own), oversized and malformed requests, and the start-up
 *  refusal of plain HTTP off loopback. No agent runs: none of these paths
 *  needs one (the browser test, tests/web, covers the pages). */
#define _GNU_SOURCE   /* strcasestr */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "soffa_users.h"
#include "testkit.h"

#define WEB SOFFA_BIN_DIR "/soffa-web"
#define PASSWORD "ratt-losenord-1"

typedef struct {
    char *dir;
    char ini[512];
    int port;             /* 0: unix socket */
    char sock[512];
    pid_t pid;
} web_t;

typedef struct {
    int status;
    char head[16384];
    char *body;
} resp_t;

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *) &a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static int
dial(const web_t *w)
{
    if (!w->port) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un u = {.sun_family = AF_UNIX};
        memcpy(u.sun_path, w->sock, strnlen(w->sock, sizeof u.sun_path - 1));
        if (connect(fd, (struct sockaddr *) &u, sizeof u) != 0) {
            close(fd);
            return -1;
        }
        return fd;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t) w->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *) &a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes the web's configuration (plus extra [web] lines) and two accounts. */
static web_t
prepare(const char *listen_fmt, const char *extra)
{
    web_t w;
    memset(&w, 0, sizeof w);
    w.dir = tk_tmpdir("web");
    snprintf(w.ini, sizeof w.ini, "%s/agent.ini", w.dir);
    char listen[600];
    if (!strcmp(listen_fmt, "unix")) {
        snprintf(w.sock, sizeof w.sock, "%s/http.sock", w.dir);
        snprintf(listen, sizeof listen, "unix:%s", w.sock);
    } else {
        w.port = free_port();
        snprintf(listen, sizeof listen, listen_fmt, w.port);
    }
    FILE *f = fopen(w.ini, "w");
    fprintf(f, "[agent]\nname = kaa-1419\n[web]\nlisten = %s\ndir = web\n%s", listen, extra ? extra : "");
    fclose(f);
    char users[600], why[300];
    snprintf(users, sizeof users, "%s/web/users", w.dir);
    cr_assert_eq(soffa_users_add(users, "anna", SOFFA_USER_CASEWORKER, PASSWORD, why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert_eq(soffa_users_add(users, "sso-bo", SOFFA_USER_LEAD, NULL, why, sizeof why), SOFFA_OK, "%s", why);
    return w;
}

/* Starts soffa-web (inside network namespace ns when not NULL). */
static void
launch(web_t *w, const char *ns)
{
    w->pid = fork();
    if (w->pid == 0) {
        char log[600];
        snprintf(log, sizeof log, "%s/web.log", w->dir);
        if (!freopen(log, "w", stderr))
            _exit(126);
        if (ns)
            execlp("ip", "ip", "netns", "exec", ns, WEB, "--config", w->ini, (char *) NULL);
        else
            execl(WEB, WEB, "--config", w->ini, (char *) NULL);
        _exit(127);
    }
}

static web_t
start(const char *listen_fmt, const char *extra)
{
    web_t w = prepare(listen_fmt, extra);
    launch(&w, NULL);
    for (int i = 0; i < 100; i++) {
        int fd = dial(&w);
        if (fd >= 0) {
            close(fd);
            return w;
        }
        usleep(50 * 1000);
    }
    cr_assert_fail("soffa-web did not start listening");
    return w;
}

static void
stop(web_t *w)
{
    int status = 0;
    kill(w->pid, SIGTERM);
    waitpid(w->pid, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "soffa-web stops cleanly on SIGTERM (status %d)", status);
    tk_rmrf(w->dir);
    free(w->dir);
}

/* Sends raw bytes, reads the whole answer (the server closes: Connection: close). */
static resp_t
raw(const web_t *w, const char *req, size_t len)
{
    resp_t r;
    memset(&r, 0, sizeof r);
    int fd = dial(w);
    cr_assert_geq(fd, 0, "connect");
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, req + off, len - off);
        if (n <= 0)
            break;
        off += (size_t) n;
    }
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n;
    while ((n = read(fd, buf + got, cap - got - 1)) > 0) {
        got += (size_t) n;
        if (got + 1 >= cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[got] = '\0';
    close(fd);
    char *end = strstr(buf, "\r\n\r\n");
    if (end) {
        snprintf(r.head, sizeof r.head, "%.*s", (int) (end - buf), buf);
        r.body = strdup(end + 4);
    } else {
        snprintf(r.head, sizeof r.head, "%s", buf);
        r.body = strdup("");
    }
    sscanf(r.head, "HTTP/1.%*d %d", &r.status);
    free(buf);
    return r;
}

static resp_t
http(const web_t *w, const char *method, const char *path, const char *headers, const char *body)
{
    char req[70000];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                     headers ? headers : "");
    if (body)
        n += snprintf(req + n, sizeof req - (size_t) n,
                      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    else
        n += snprintf(req + n, sizeof req - (size_t) n, "\r\n");
    return raw(w, req, (size_t) n);
}

/* The value of cookie `prefix...` set by the answer ("" when none). */
static void
set_cookie(const resp_t *r, const char *prefix, char *out, size_t len, char *line, size_t linelen)
{
    out[0] = '\0';
    const char *p = r->head;
    while ((p = strcasestr(p, "\nSet-Cookie: "))) {
        p += 13;
        if (!strncmp(p, prefix, strlen(prefix))) {
            const char *eq = strchr(p, '='), *semi = strchr(p, ';'), *eol = strchr(p, '\r');
            snprintf(out, len, "%.*s", (int) (semi - eq - 1), eq + 1);
            if (line)
                snprintf(line, linelen, "%.*s", (int) (eol ? eol - p : (long) strlen(p)), p);
            return;
        }
    }
}

static void
header(const resp_t *r, const char *name, char *out, size_t len)
{
    out[0] = '\0';
    char key[80];
    snprintf(key, sizeof key, "\n%s: ", name);
    const char *p = strcasestr(r->head, key);
    if (p) {
        p += strlen(key);
        snprintf(out, len, "%.*s", (int) strcspn(p, "\r\n"), p);
    }
}

typedef struct {
    char cookie_name[96];
    char pre_name[96];
    char pre[80];
    char csrf_login[80];
} login_form_t;

static login_form_t
get_login(const web_t *w)
{
    login_form_t l;
    memset(&l, 0, sizeof l);
    resp_t r = http(w, "GET", "/inloggning", NULL, NULL);
    cr_assert_eq(r.status, 200);
    const char *p = strcasestr(r.head, "\nSet-Cookie: soffa_pre_");
    cr_assert_not_null(p, "the login page sets its CSRF cookie");
    p += 13;
    snprintf(l.pre_name, sizeof l.pre_name, "%.*s", (int) strcspn(p, "="), p);
    snprintf(l.cookie_name, sizeof l.cookie_name, "soffa_%.80s", l.pre_name + 10);
    set_cookie(&r, l.pre_name, l.pre, sizeof l.pre, NULL, 0);
    const char *f = strstr(r.body, "name=\"csrf\" value=\"");
    cr_assert_not_null(f);
    snprintf(l.csrf_login, sizeof l.csrf_login, "%.64s", f + 19);
    free(r.body);
    return l;
}

static resp_t
post_login(const web_t *w, const login_form_t *l, const char *name, const char *pw)
{
    char hdr[300], body[300];
    snprintf(hdr, sizeof hdr, "Cookie: %s=%s\r\n", l->pre_name, l->pre);
    snprintf(body, sizeof body, "csrf=%s&namn=%s&losenord=%s", l->csrf_login, name, pw);
    return http(w, "POST", "/inloggning", hdr, body);
}

/* Logs in; returns the session cookie header line "Cookie: NAME=TOKEN\r\n". */
static void
login(const web_t *w, char *cookie_hdr, size_t len)
{
    login_form_t l = get_login(w);
    resp_t r = post_login(w, &l, "anna", PASSWORD);
    cr_assert_eq(r.status, 303, "login: %s", r.head);
    char token[100];
    set_cookie(&r, l.cookie_name, token, sizeof token, NULL, 0);
    cr_assert_eq(strlen(token), 64);
    snprintf(cookie_hdr, len, "Cookie: %s=%s\r\n", l.cookie_name, token);
    free(r.body);
}

/* The CSRF token of the logged-in pages: asks a page that needs no agent
 * data... every page needs the agent, so read it from the 404 page? No: the
 * logout form is on every framed page; the message 404 page is unframed.
 * The search page is framed and needs no agent data. */
static void
page_csrf(const web_t *w, const char *cookie_hdr, char *out, size_t len)
{
    resp_t r = http(w, "GET", "/sok", cookie_hdr, NULL);
    cr_assert_eq(r.status, 200, "%s", r.head);
    const char *f = strstr(r.body, "name=\"csrf\" value=\"");
    cr_assert_not_null(f);
    snprintf(out, len, "%.64s", f + 19);
    free(r.body);
}

TestSuite(web, .timeout = 120);

Test(web, plain_http_off_loopback_is_refused_at_start)
{
    char *dir = tk_tmpdir("web");
    char ini[512];
    snprintf(ini, sizeof ini, "%s/agent.ini", dir);
    FILE *f = fopen(ini, "w");
    fprintf(f, "[agent]\nname = x\n[web]\nlisten = 0.0.0.0:%d\n", free_port());
    fclose(f);
    char *argv[] = {WEB, "--config", ini, NULL}, *out, *err;
    int rc = tk_run(argv, &out, &err);
    cr_assert_eq(rc, 1, "exit status %d", rc);
    cr_assert(strstr(err, "is not a loopback address, and there is no TLS") && strstr(err, "tls_cert"), "%s", err);
    free(out);
    free(err);
    /* A [web] with only half of TLS is refused too. */
    f = fopen(ini, "w");
    fprintf(f, "[web]\nlisten = 0.0.0.0:%d\ntls_cert = x.pem\n", free_port());
    fclose(f);
    rc = tk_run(argv, &out, &err);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err, "both tls_cert and tls_key"), "%s", err);
    free(out);
    free(err);
    tk_rmrf(dir);
    free(dir);
}

Test(web, login_sets_a_strict_session_cookie_and_security_headers)
{
    web_t w = start("127.0.0.1:%d", NULL);
    resp_t r = http(&w, "GET", "/inloggning", NULL, NULL);
    char v[600];
    header(&r, "Content-Security-Policy", v, sizeof v);
    cr_assert(strstr(v, "default-src 'none'") && strstr(v, "script-src 'self'") && strstr(v, "frame-ancestors 'none'"), "%s", v);
    cr_assert(!strstr(v, "unsafe-inline") && !strstr(v, "unsafe-eval"), "%s", v);
    header(&r, "X-Frame-Options", v, sizeof v);
    cr_assert_str_eq(v, "DENY");
    header(&r, "X-Content-Type-Options", v, sizeof v);
    cr_assert_str_eq(v, "nosniff");
    header(&r, "Cache-Control", v, sizeof v);
    cr_assert_str_eq(v, "no-store");
    cr_assert(strstr(r.body, "<html lang=\"sv\">") && strstr(r.body, "Logga in"));
    free(r.body);
    login_form_t l = get_login(&w);
    r = post_login(&w, &l, "anna", PASSWORD);
    cr_assert_eq(r.status, 303);
    char token[100], line[600];
    set_cookie(&r, l.cookie_name, token, sizeof token, line, sizeof line);
    cr_assert_eq(strlen(token), 64, "a 256-bit random token: %s", line);
    cr_assert(strstr(line, "; HttpOnly") && strstr(line, "; Secure") && strstr(line, "; SameSite=Strict") && strstr(line, "; Path=/"),
              "%s", line);
    header(&r, "Location", v, sizeof v);
    cr_assert_str_eq(v, "/inkorg");
    free(r.body);
    /* A forged token gets nothing. */
    char hdr[300];
    snprintf(hdr, sizeof hdr, "Cookie: %s=%064d\r\n", l.cookie_name, 7);
    r = http(&w, "GET", "/sok", hdr, NULL);
    cr_assert_eq(r.status, 303);
    free(r.body);
    stop(&w);
}

Test(web, wrong_password_then_a_growing_wait)
{
    web_t w = start("127.0.0.1:%d", "login_delay_max = 4s\n");
    login_form_t l = get_login(&w);
    resp_t r = post_login(&w, &l, "anna", "fel-losenord-1");
    cr_assert_eq(r.status, 401);
    cr_assert(strstr(r.body, "Fel användarnamn eller lösenord"));
    free(r.body);
    /* During the wait even the right password is turned away, unchecked. */
    r = post_login(&w, &l, "anna", PASSWORD);
    cr_assert_eq(r.status, 429, "%s", r.head);
    cr_assert(strstr(r.body, "För många misslyckade försök"));
    free(r.body);
    /* An unknown name answers like a wrong password (no telling which names exist). */
    r = post_login(&w, &l, "ingen-alls", "fel-losenord-1");
    cr_assert_eq(r.status, 401);
    free(r.body);
    usleep(1100 * 1000);
    r = post_login(&w, &l, "anna", "fel-losenord-2");   /* second failure: 2 s */
    cr_assert_eq(r.status, 401);
    free(r.body);
    usleep(1100 * 1000);
    r = post_login(&w, &l, "anna", PASSWORD);
    cr_assert_eq(r.status, 429, "the wait grew to 2 s");
    free(r.body);
    usleep(1000 * 1000);
    r = post_login(&w, &l, "anna", PASSWORD);
    cr_assert_eq(r.status, 303, "after the wait the right password works: %s", r.head);
    free(r.body);
    stop(&w);
}

Test(web, forms_without_the_csrf_token_are_refused)
{
    web_t w = start("127.0.0.1:%d", NULL);
    /* The login form itself: without its cookie, or with another token. */
    login_form_t l = get_login(&w);
    char body[300];
    snprintf(body, sizeof body, "csrf=%s&namn=anna&losenord=%s", l.csrf_login, PASSWORD);
    resp_t r = http(&w, "POST", "/inloggning", NULL, body);
    cr_assert_eq(r.status, 403, "login without the CSRF cookie");
    free(r.body);
    char cookie[300], csrf[100];
    login(&w, cookie, sizeof cookie);
    page_csrf(&w, cookie, csrf, sizeof csrf);
    r = http(&w, "POST", "/utloggning", cookie, "x=1");
    cr_assert_eq(r.status, 403, "no token");
    cr_assert(strstr(r.body, "säkerhetskod"));
    free(r.body);
    char wrong[200];
    snprintf(wrong, sizeof wrong, "csrf=%064d", 1);
    r = http(&w, "POST", "/utloggning", cookie, wrong);
    cr_assert_eq(r.status, 403, "wrong token");
    free(r.body);
    char right[200], hdr[500];
    snprintf(right, sizeof right, "csrf=%s", csrf);
    snprintf(hdr, sizeof hdr, "%sSec-Fetch-Site: cross-site\r\n", cookie);
    r = http(&w, "POST", "/utloggning", hdr, right);
    cr_assert_eq(r.status, 403, "the right token from another site");
    free(r.body);
    r = http(&w, "POST", "/atgard", cookie, "re=01a21d99-6688-7f5e-9ae9-8db42db5febe&gor=kvittera&result=REGISTERED");
    cr_assert_eq(r.status, 403, "an action without the token");
    free(r.body);
    /* The session is still alive; with the token the logout works and ends it. */
    r = http(&w, "POST", "/utloggning", cookie, right);
    cr_assert_eq(r.status, 303);
    free(r.body);
    r = http(&w, "GET", "/sok", cookie, NULL);
    cr_assert_eq(r.status, 303, "logged out");
    free(r.body);
    stop(&w);
}

Test(web, an_idle_session_expires)
{
    web_t w = start("127.0.0.1:%d", "session_idle = 1s\n");
    char cookie[300];
    login(&w, cookie, sizeof cookie);
    resp_t r = http(&w, "GET", "/sok", cookie, NULL);
    cr_assert_eq(r.status, 200);
    free(r.body);
    usleep(1500 * 1000);
    r = http(&w, "GET", "/inkorg", cookie, NULL);
    char loc[200];
    header(&r, "Location", loc, sizeof loc);
    cr_assert_eq(r.status, 303);
    cr_assert_str_eq(loc, "/inloggning?utgangen=1");
    free(r.body);
    r = http(&w, "GET", "/handelser", cookie, NULL);
    cr_assert_eq(r.status, 401, "the live stream is refused too");
    free(r.body);
    stop(&w);
}

Test(web, a_removed_account_loses_its_session)
{
    web_t w = start("127.0.0.1:%d", NULL);
    char cookie[300], users[600], why[300];
    login(&w, cookie, sizeof cookie);
    snprintf(users, sizeof users, "%s/web/users", w.dir);
    cr_assert_eq(soffa_users_remove(users, "anna", why, sizeof why), SOFFA_OK);
    resp_t r = http(&w, "GET", "/sok", cookie, NULL);
    cr_assert_eq(r.status, 303);
    free(r.body);
    stop(&w);
}

Test(web, oversized_and_malformed_requests)
{
    web_t w = start("127.0.0.1:%d", NULL);
    char *big = malloc(20001);
    memset(big, 'a', 20000);
    big[0] = 'x', big[1] = '=';
    big[20000] = '\0';
    resp_t r = http(&w, "POST", "/inloggning", NULL, big);
    cr_assert_eq(r.status, 413, "%s", r.head);
    free(r.body);
    /* Headers past the connection's memory limit. */
    char *hdr = malloc(40100);
    snprintf(hdr, 40100, "X-Fill: ");
    memset(hdr + 8, 'b', 40000);
    memcpy(hdr + 40008, "\r\n", 3);
    r = http(&w, "GET", "/inloggning", hdr, NULL);
    cr_assert(r.status == 431 || r.status == 413 || r.status == 400 || r.status == 0, "huge headers: %d", r.status);
    free(r.body);
    free(hdr);
    free(big);
    const char *garbage = "\x01\x02 GARBAGE\r\n\r\n";
    r = raw(&w, garbage, strlen(garbage));
    cr_assert(r.status == 400 || r.status == 0, "garbage: %d", r.status);
    free(r.body);
    static const char *const bad_bodies[] = {"namn=%ZZ", "namn=%C3%28", "namn=a%00b", "namn=%E2%82", "=x",
                                            "namn=\x01", NULL};
    for (size_t i = 0; bad_bodies[i]; i++) {
        r = http(&w, "POST", "/inloggning", NULL, bad_bodies[i]);
        cr_assert_eq(r.status, 400, "body '%s': %d", bad_bodies[i], r.status);
        cr_assert(strstr(r.body, "Formuläret kunde inte läsas"));
        free(r.body);
    }
    char many[2000] = "";
    for (int i = 0; i < 70; i++)
        strcat(many, "a=1&");
    r = http(&w, "POST", "/inloggning", NULL, many);
    cr_assert_eq(r.status, 400, "too many fields");
    free(r.body);
    char path[700] = "/";
    memset(path + 1, 'p', 600);
    path[601] = '\0';
    r = http(&w, "GET", path, NULL, NULL);
    cr_assert_eq(r.status, 414);
    free(r.body);
    r = http(&w, "PUT", "/inloggning", NULL, "a=1");
    cr_assert_eq(r.status, 405);
    free(r.body);
    r = http(&w, "GET", "/meddelande/../../etc/passwd", NULL, NULL);
    cr_assert_eq(r.status, 303, "no session, no page");
    free(r.body);
    /* Still serving. */
    r = http(&w, "GET", "/inloggning", NULL, NULL);
    cr_assert_eq(r.status, 200);
    free(r.body);
    stop(&w);
}

Test(web, single_sign_on_header_over_the_unix_socket)
{
    web_t w = start("unix", "trusted_header = X-Remote-User\n");
    resp_t r = http(&w, "GET", "/sok", "X-Remote-User: sso-bo\r\n", NULL);
    cr_assert_eq(r.status, 200, "%s", r.head);
    cr_assert(strstr(r.body, "Inloggad som sso-bo"));
    cr_assert(strcasestr(r.head, "\nSet-Cookie: soffa_unix"), "%s", r.head);
    free(r.body);
    r = http(&w, "GET", "/sok", "X-Remote-User: okand\r\n", NULL);
    cr_assert_eq(r.status, 403, "an unknown name in the header");
    free(r.body);
    /* Without the header: the ordinary login. */
    r = http(&w, "GET", "/sok", NULL, NULL);
    cr_assert_eq(r.status, 303);
    free(r.body);
    stop(&w);
}

static int
sh(const char *cmd)
{
    char *argv[] = {"sh", "-c", (char *) cmd, NULL}, *out = NULL, *err = NULL;
    int rc = tk_run(argv, &out, &err);
    if (rc != 0)
        cr_log_warn("%s: %s%s", cmd, out ? out : "", err ? err : "");
    free(out);
    free(err);
    return rc;
}

/* A peer that is not on this host: soffa-web runs in one network namespace
 * of the test's own and the client in another, joined by a veth pair with
 * TEST-NET-1 addresses, so nothing leaves the machine. */
Test(web, single_sign_on_header_from_another_host_is_refused)
{
    cr_assert_eq(getuid(), 0, "this test makes network namespaces and needs root (./soffa.sh test runs as root)");
    char a[32], b[32], cmd[2000];
    snprintf(a, sizeof a, "sw%da", (int) getpid());
    snprintf(b, sizeof b, "sw%db", (int) getpid());
    snprintf(cmd, sizeof cmd,
             "ip netns add %s && ip netns add %s && ip link add %s type veth peer name %s && ip link set %s netns %s && "
             "ip link set %s netns %s && ip netns exec %s ip addr add 192.0.2.1/24 dev %s && "
             "ip netns exec %s ip addr add 192.0.2.2/24 dev %s && ip netns exec %s ip link set %s up && "
             "ip netns exec %s ip link set %s up && ip netns exec %s ip link set lo up",
             a, b, a, b, a, a, b, b, a, a, b, b, a, a, b, b, a);
    int made = sh(cmd);
    char *dir = tk_tmpdir("tls");
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=soffa-test -keyout %s/key.pem -out %s/cert.pem"
             " 2>/dev/null && chmod 600 %s/key.pem",
             dir, dir, dir);
    cr_assert_eq(sh(cmd), 0, "openssl makes a test certificate");
    char extra[1200];
    snprintf(extra, sizeof extra, "trusted_header = X-Remote-User\ntls_cert = %s/cert.pem\ntls_key = %s/key.pem\n", dir, dir);
    web_t w = prepare("0.0.0.0:%d", extra);
    launch(&w, made == 0 ? a : NULL);
    char url_local[100], url_far[100];
    snprintf(url_local, sizeof url_local, "https://127.0.0.1:%d/sok", w.port);
    snprintf(url_far, sizeof url_far, "https://192.0.2.1:%d/sok", w.port);
    char *out = NULL, *err = NULL;
    /* Wait until it serves (inside its namespace). */
    for (int i = 0; i < 100; i++) {
        char *argv[] = {"ip", "netns", "exec", made == 0 ? a : "", "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                        url_local, NULL};
        char *argv0[] = {"curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url_local, NULL};
        tk_run(made == 0 ? argv : argv0, &out, &err);
        bool up = out && strcmp(out, "000") != 0;
        free(out);
        free(err);
        if (up)
            break;
        usleep(50 * 1000);
    }
    if (made == 0) {
        /* From the other namespace: a peer at 192.0.2.2, not this host. */
        char *argv[] = {"ip", "netns", "exec", b, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                        "-H", "X-Remote-User: sso-bo", url_far, NULL};
        tk_run(argv, &out, &err);
        cr_expect_str_eq(out, "403", "the header from another host is refused: %s %s", out, err);
        free(out);
        free(err);
        char *argv2[] = {"ip", "netns", "exec", b, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                         url_far, NULL};
        tk_run(argv2, &out, &err);
        cr_expect_str_eq(out, "303", "the same peer without the header gets the login: %s", out);
        free(out);
        free(err);
    }
    /* Over TLS from the web's own host the header counts. */
    char *argv3[] = {"ip", "netns", "exec", a, "curl", "-sk", "-D", "-", "--max-time", "10", "-H", "X-Remote-User: sso-bo",
                     url_local, NULL};
    char *argv3b[] = {"curl", "-sk", "-D", "-", "--max-time", "10", "-H", "X-Remote-User: sso-bo", url_local, NULL};
    tk_run(made == 0 ? argv3 : argv3b, &out, &err);
    cr_expect(out && strstr(out, "HTTP/1.1 200") && strstr(out, "Strict-Transport-Security") && strstr(out, "Inloggad som sso-bo"),
              "TLS from this host with the header: %.300s", out ? out : err);
    free(out);
    free(err);
    int status = 0;
    kill(w.pid, SIGTERM);
    waitpid(w.pid, &status, 0);
    snprintf(cmd, sizeof cmd, "ip netns del %s; ip netns del %s; true", a, b);
    sh(cmd);
    tk_rmrf(w.dir);
    free(w.dir);
    tk_rmrf(dir);
    free(dir);
    cr_assert_eq(made, 0, "the network namespaces for the other host could be made");
}
