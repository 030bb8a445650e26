/*  soffa_web_cfg: the [web] section of an agent's configuration file.
 *
 *  One table, read by three programs: the agent (which opens the web's
 *  restricted control socket when `listen` is set), soffa-web (which serves
 *  the pages) and `soffa user` (which edits the accounts file). Relative
 *  paths are resolved against the directory of the configuration file.
 */
#ifndef SOFFA_WEB_CFG_H
#define SOFFA_WEB_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "soffa_err.h"

typedef struct {
    char listen[512];          /* "" (no web), HOST:PORT, [V6]:PORT or unix:PATH */
    char tls_cert[512];        /* PEM certificate chain, "" for plain HTTP */
    char tls_key[512];         /* PEM private key */
    char dir[512];             /* the web's own directory (accounts, socket) */
    char agent_socket[512];    /* the agent's web control socket, "" = DIR/agent.sock */
    char users[512];           /* the accounts file, "" = DIR/users */
    int64_t session_idle;      /* ms of inactivity that end a session */
    int64_t session_max;       /* ms after which a session ends whatever happens */
    char trusted_header[64];   /* single sign-on: header naming the user, "" = off */
    int64_t login_delay_max;   /* ms: ceiling of the growing wait after failed logins */
    int64_t max_connections;   /* open HTTP connections at most */
    char site_name[128];       /* shown in the page header, "" = the agent's name */
    char log_level[16];
    /* Resolved paths (absolute or relative to the working directory). */
    char dir_path[1024];
    char socket_path[1024];
    char users_path[1024];
    char cert_path[1024];
    char key_path[1024];
    char unix_path[1024];      /* listen = unix:PATH, resolved; "" otherwise */
    char config_path[1024];
} soffa_web_cfg_t;

/*  Reads the [web] section of the agent configuration at `path` (the other
 *  sections are left to the agent) and resolves its paths. A file without
 *  [web] gives listen = "". Returns SOFFA_OK, or SOFFA_ERR_CONFIG /
 *  SOFFA_ERR_NOT_FOUND with `why` saying what is wrong. */
soffa_err_t soffa_web_cfg_load(const char *path, soffa_web_cfg_t *out, char *why, size_t whylen);

/*  The key table and its length, for the agent, which reads [web] together
 *  with [agent] in one pass (then calls soffa_web_cfg_resolve). */
const void *soffa_web_cfg_keys(size_t *n);

/*  Resolves the paths of a loaded section against the configuration file. */
soffa_err_t soffa_web_cfg_resolve(soffa_web_cfg_t *cfg, const char *config_path, char *why, size_t whylen);

/*  Prints the effective [web] settings. */
void soffa_web_cfg_print(const soffa_web_cfg_t *cfg, FILE *out);

#endif
