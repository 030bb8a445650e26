/*  soffa_web_cfg: the [web] key table, loading and path resolution. */
#include "soffa_web_cfg.h"

#include <string.h>

#include "soffa_cfg.h"

static const soffa_cfg_key_t s_keys[] = {
    {"listen", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_web_cfg_t, listen), 512,
     "where soffa-web listens: HOST:PORT, [V6]:PORT or unix:PATH; empty = no web inbox"},
    {"tls_cert", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_web_cfg_t, tls_cert), 512, "TLS certificate chain (PEM)"},
    {"tls_key", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_web_cfg_t, tls_key), 512, "TLS private key (PEM, owner-only)"},
    {"dir", SOFFA_CFG_STR, "web", 0, 0, offsetof(soffa_web_cfg_t, dir), 512, "the web's own directory"},
    {"agent_socket", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_web_cfg_t, agent_socket), 512,
     "the agent's restricted control socket for the web (default DIR/agent.sock)"},
    {"users", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_web_cfg_t, users), 512, "the accounts file (default DIR/users)"},
    {"session_idle", SOFFA_CFG_DURATION, "15m", 1000, 86400000, offsetof(soffa_web_cfg_t, session_idle), 0,
     "a session unused this long ends"},
    {"session_max", SOFFA_CFG_DURATION, "10h", 1000, 7 * 86400000LL, offsetof(soffa_web_cfg_t, session_max), 0,
     "a session ends this long after the login whatever happens"},
    {"trusted_header", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_web_cfg_t, trusted_header), 64,
     "single sign-on: the header a local reverse proxy sets to the user's name; empty = off"},
    {"login_delay_max", SOFFA_CFG_DURATION, "30s", 1000, 3600000, offsetof(soffa_web_cfg_t, login_delay_max), 0,
     "ceiling of the wait that grows after each failed login"},
    {"max_connections", SOFFA_CFG_INT, "256", 4, 10000, offsetof(soffa_web_cfg_t, max_connections), 0,
     "open HTTP connections at most"},
    {"site_name", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_web_cfg_t, site_name), 128, "the site's name in the page header"},
    {"log_level", SOFFA_CFG_STR, "info", 0, 0, offsetof(soffa_web_cfg_t, log_level), 16, "debug, info, warn or error"},
};

const void *
soffa_web_cfg_keys(size_t *n)
{
    *n = sizeof s_keys / sizeof *s_keys;
    return s_keys;
}

static soffa_err_t
s_path(const char *config, const char *file, char *out, size_t outlen, const char *what, char *why, size_t whylen)
{
    if (!soffa_cfg_path(config, file, out, outlen)) {
        snprintf(why, whylen, "%s: [web] %s is too long a path", config, what);
        return SOFFA_ERR_CONFIG;
    }
    return SOFFA_OK;
}

soffa_err_t
soffa_web_cfg_resolve(soffa_web_cfg_t *c, const char *config_path, char *why, size_t whylen)
{
    snprintf(c->config_path, sizeof c->config_path, "%s", config_path);
    soffa_err_t rc = s_path(config_path, c->dir, c->dir_path, sizeof c->dir_path, "dir", why, whylen);
    char def[1100];
    if (rc == SOFFA_OK) {
        if (c->agent_socket[0])
            rc = s_path(config_path, c->agent_socket, c->socket_path, sizeof c->socket_path, "agent_socket", why, whylen);
        else if (snprintf(def, sizeof def, "%s/agent.sock", c->dir_path) >= (int) sizeof c->socket_path
                 || strlen(def) > 100)
            rc = SOFFA_ERR_CONFIG, snprintf(why, whylen, "%s: [web] dir is too long a path for a socket", config_path);
        else
            memcpy(c->socket_path, def, strlen(def) + 1);   /* checked above: at most 100 bytes */
    }
    if (rc == SOFFA_OK) {
        if (c->users[0])
            rc = s_path(config_path, c->users, c->users_path, sizeof c->users_path, "users", why, whylen);
        else if (snprintf(c->users_path, sizeof c->users_path, "%s/users", c->dir_path) >= (int) sizeof c->users_path)
            rc = SOFFA_ERR_CONFIG, snprintf(why, whylen, "%s: [web] dir is too long a path", config_path);
    }
    c->cert_path[0] = c->key_path[0] = c->unix_path[0] = '\0';
    if (rc == SOFFA_OK && (c->tls_cert[0] || c->tls_key[0])) {
        if (!c->tls_cert[0] || !c->tls_key[0]) {
            snprintf(why, whylen, "%s: [web] needs both tls_cert and tls_key, or neither", config_path);
            rc = SOFFA_ERR_CONFIG;
        } else {
            rc = s_path(config_path, c->tls_cert, c->cert_path, sizeof c->cert_path, "tls_cert", why, whylen);
            if (rc == SOFFA_OK)
                rc = s_path(config_path, c->tls_key, c->key_path, sizeof c->key_path, "tls_key", why, whylen);
        }
    }
    if (rc == SOFFA_OK && !strncmp(c->listen, "unix:", 5)) {
        rc = s_path(config_path, c->listen + 5, c->unix_path, sizeof c->unix_path, "listen", why, whylen);
        if (rc == SOFFA_OK && strlen(c->unix_path) > 100) {
            snprintf(why, whylen, "%s: [web] listen: the socket path is longer than 100 characters", config_path);
            rc = SOFFA_ERR_CONFIG;
        }
    }
    for (const char *p = c->trusted_header; rc == SOFFA_OK && *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            snprintf(why, whylen, "%s: [web] trusted_header must be a header name (letters, digits, '-')", config_path);
            rc = SOFFA_ERR_CONFIG;
        }
    }
    return rc;
}

soffa_err_t
soffa_web_cfg_load(const char *path, soffa_web_cfg_t *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    size_t n;
    const soffa_cfg_key_t *keys = soffa_web_cfg_keys(&n);
    /* Every other section of the agent's file is the agent's to check. */
    soffa_cfg_section_t secs[] = {
        {"web", false, keys, n, out, NULL, NULL},
        {"agent", false, NULL, 0, NULL, NULL, NULL},
        {"school", false, NULL, 0, NULL, NULL, NULL},
        {"ss12000", false, NULL, 0, NULL, NULL, NULL},
        {"metrics", false, NULL, 0, NULL, NULL, NULL},
    };
    soffa_err_t rc = soffa_cfg_load(path, secs, sizeof secs / sizeof *secs, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_web_cfg_resolve(out, path, why, whylen);
    return rc;
}

void
soffa_web_cfg_print(const soffa_web_cfg_t *c, FILE *out)
{
    fprintf(out, "web.listen = %s\nweb.tls_cert = %s\nweb.tls_key = %s\nweb.dir = %s\nweb.agent_socket = %s\n",
            c->listen, c->cert_path, c->key_path, c->dir_path, c->socket_path);
    fprintf(out, "web.users = %s\nweb.session_idle = %lld ms\nweb.session_max = %lld ms\nweb.trusted_header = %s\n",
            c->users_path, (long long) c->session_idle, (long long) c->session_max, c->trusted_header);
    fprintf(out, "web.login_delay_max = %lld ms\nweb.max_connections = %lld\nweb.site_name = %s\nweb.log_level = %s\n",
            (long long) c->login_delay_max, (long long) c->max_connections, c->site_name, c->log_level);
}
