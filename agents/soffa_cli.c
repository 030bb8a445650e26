/*  soffa_cli: the command line's shared context, its leading options, the
 *  call to the agent and the one-line messages (see soffa_cli.h).
 */
#include "soffa_cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_ctl.h"
#include "soffa_record.h"

/* ---- Options ------------------------------------------------------------------------------ */

soffa_cli_parse_t
soffa_cli_parse(soffa_cli_t *self, int argc, char **argv)
{
    memset(self, 0, sizeof *self);
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc)
            self->socket = argv[++i];
        else if (!strcmp(argv[i], "--net") && i + 1 < argc)
            self->net = argv[++i];
        else if (!strcmp(argv[i], "--agent") && i + 1 < argc)
            self->agent = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            self->json = true;
        else
            break;
    }
    if (i >= argc)
        return SOFFA_CLI_USAGE;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "help"))
        return SOFFA_CLI_HELP;
    if (!strcmp(argv[i], "--version"))
        return SOFFA_CLI_VERSION;
    /* --json may also follow the command. */
    int n = 0;
    for (int k = i; k < argc && n < SOFFA_CLI_ARGS_MAX - 1; k++) {
        if (!strcmp(argv[k], "--json"))
            self->json = true;
        else
            self->args[n++] = argv[k];
    }
    self->args[n] = NULL;
    self->argc = n;
    self->argv = self->args;
    return SOFFA_CLI_RUN;
}

/* ---- Messages for people -------------------------------------------------------------------- */

int
soffa_cli_die(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "soffa %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

bool
soffa_cli_want_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

int
soffa_cli_refused(const char *cmd, json_t *a)
{
    const char *code = json_string_value(json_object_get(a, "code"));
    const char *err = json_string_value(json_object_get(a, "error"));
    fprintf(stderr, "soffa %s: refused: %s [%s]\n", cmd, err ? err : "unknown error", code ? code : "?");
    return 1;
}

void
soffa_cli_print_json(const json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags);
    if (s)
        puts(s);
    free(s);
}

void
soffa_cli_print_record(const soffa_cli_t *self, json_t *rec)
{
    if (self->json) {
        soffa_cli_print_json(rec, JSON_COMPACT);
        return;
    }
    char line[512];
    soffa_record_line(rec, line, sizeof line);
    const char *state = json_string_value(json_object_get(rec, "state"));
    if (state && strcmp(state, "done") != 0)
        printf("%s  [hook: %s]\n", line, state);
    else
        printf("%s\n", line);
}

/* ---- Talking to the agent ---------------------------------------------------------------- */

static const char *
s_socket_path(const soffa_cli_t *self, char *buf, size_t len)
{
    if (self->socket)
        return self->socket;
    if (self->net && self->agent) {
        snprintf(buf, len, "%s/%s/data/control.sock", self->net, self->agent);
        return buf;
    }
    return getenv("SOFFA_SOCKET");
}

json_t *
soffa_cli_call(const soffa_cli_t *self, const char *cmd, json_t *req, int timeout_ms)
{
    char buf[1024];
    const char *path = s_socket_path(self, buf, sizeof buf);
    if (!path) {
        json_decref(req);
        soffa_cli_die(cmd, 2, "which agent? give --socket PATH, or --net DIR --agent NAME, or set SOFFA_SOCKET");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0 && (errno == EACCES || errno == EPERM)) {
        json_decref(req);
        soffa_cli_die(cmd, 1, "permission denied on %s: only the agent's own user may use it (run soffa as that user)", path);
        return NULL;
    }
    if (stat(path, &st) != 0) {
        json_decref(req);
        soffa_cli_die(cmd, 1, "no agent listens at %s (is it running? 'soffa up' starts a local network)", path);
        return NULL;
    }
    if (access(path, R_OK | W_OK) != 0) {
        json_decref(req);
        soffa_cli_die(cmd, 1, "permission denied on %s: it belongs to %s user (run soffa as the agent's user)", path,
                      st.st_uid == getuid() ? "this" : "another");
        return NULL;
    }
    char ep[1100];
    snprintf(ep, sizeof ep, "ipc://%s", path);
    void *ctx = zmq_ctx_new();
    json_t *answer = soffa_ctl_call(ctx, ep, req, timeout_ms);
    zmq_ctx_term(ctx);
    if (!answer)
        soffa_cli_die(cmd, 1, "the agent at %s did not answer (is it running?)", path);
    return answer;
}
