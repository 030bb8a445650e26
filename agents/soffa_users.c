/*  soffa_users: accounts file, Argon2id hashes, and the `soffa user` command. */
#include "soffa_users.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "soffa_web_cfg.h"

bool
soffa_users_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > SOFFA_USER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

const char *
soffa_users_role_name(soffa_user_role_t role)
{
    return role == SOFFA_USER_LEAD ? "lead" : role == SOFFA_USER_CASEWORKER ? "caseworker" : "?";
}

soffa_user_role_t
soffa_users_role_parse(const char *name)
{
    if (name && !strcmp(name, "lead"))
        return SOFFA_USER_LEAD;
    if (name && !strcmp(name, "caseworker"))
        return SOFFA_USER_CASEWORKER;
    return 0;
}

void
soffa_users_fini(soffa_users_t *users)
{
    if (!users)
        return;
    if (users->v)
        sodium_memzero(users->v, users->n * sizeof *users->v);
    free(users->v);
    users->v = NULL;
    users->n = 0;
}

soffa_err_t
soffa_users_load(const char *path, soffa_users_t *out, char *why, size_t whylen)
{
    out->v = NULL;
    out->n = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return SOFFA_OK;
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return errno == EACCES ? SOFFA_ERR_PERMISSION : SOFFA_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077)) {
        fclose(f);
        snprintf(why, whylen, "%s: others may read or change it; run chmod 600 on it", path);
        return SOFFA_ERR_PERMISSION;
    }
    char line[512];
    int lineno = 0;
    soffa_err_t rc = SOFFA_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0')
            continue;
        line[strcspn(line, "\r\n")] = '\0';
        char name[128], role[32], actor[64], hash[256];
        soffa_user_t u;
        memset(&u, 0, sizeof u);
        if (sscanf(line, "%127s %31s %63s %255s", name, role, actor, hash) != 4 || !soffa_users_name_ok(name)
            || !(u.role = soffa_users_role_parse(role)) || strlen(actor) != 18 || strncmp(actor, "u-", 2) != 0
            || strlen(hash) >= sizeof u.hash || (strcmp(hash, "-") != 0 && strncmp(hash, "$argon2id$", 10) != 0)) {
            snprintf(why, whylen, "%s:%d: not 'NAME caseworker|lead u-HEX16 ARGON2ID-HASH|-'", path, lineno);
            rc = SOFFA_ERR_CONFIG;
            break;
        }
        memcpy(u.name, name, strlen(name) + 1);      /* lengths checked above */
        memcpy(u.actor, actor, strlen(actor) + 1);
        memcpy(u.hash, hash, strlen(hash) + 1);
        soffa_user_t *v = realloc(out->v, (out->n + 1) * sizeof *v);
        if (!v) {
            rc = SOFFA_ERR_NOMEM;
            break;
        }
        out->v = v;
        out->v[out->n++] = u;
        sodium_memzero(hash, sizeof hash);
    }
    fclose(f);
    if (rc != SOFFA_OK)
        soffa_users_fini(out);
    return rc;
}

const soffa_user_t *
soffa_users_find(const soffa_users_t *users, const char *name)
{
    for (size_t i = 0; i < users->n; i++)
        if (!strcmp(users->v[i].name, name))
            return &users->v[i];
    return NULL;
}

bool
soffa_users_verify(const soffa_user_t *u, const char *password)
{
    if (!u || !password || !strcmp(u->hash, "-"))
        return false;
    return crypto_pwhash_str_verify(u->hash, password, strlen(password)) == 0;
}

/* ---- Writing ---- */

static soffa_err_t
s_save(const char *path, const soffa_users_t *users, char *why, size_t whylen)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
        return SOFFA_ERR_IO;
    }
    fprintf(f, "# soffa-web accounts of this site: NAME ROLE ACTOR_REF ARGON2ID-HASH (edit with 'soffa user')\n");
    for (size_t i = 0; i < users->n; i++)
        fprintf(f, "%s %s %s %s\n", users->v[i].name, soffa_users_role_name(users->v[i].role), users->v[i].actor,
                users->v[i].hash);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return SOFFA_ERR_IO;
    }
    /* The rename is durable once the directory is. */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return SOFFA_OK;
}

/* Takes the lock beside the file; returns its fd or -1. */
static int
s_lock(const char *path, char *why, size_t whylen)
{
    char lp[1100], dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            snprintf(why, whylen, "cannot create %s: %s", dir, strerror(errno));
            return -1;
        }
    }
    snprintf(lp, sizeof lp, "%s.lock", path);
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        snprintf(why, whylen, "cannot lock %s: %s", lp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static soffa_err_t
s_hash(const char *password, char out[SOFFA_USER_HASH_MAX], char *why, size_t whylen)
{
    if (!password) {
        snprintf(out, SOFFA_USER_HASH_MAX, "-");
        return SOFFA_OK;
    }
    if (strlen(password) < SOFFA_USER_PASSWORD_MIN) {
        snprintf(why, whylen, "the password must be at least %d characters", SOFFA_USER_PASSWORD_MIN);
        return SOFFA_ERR_BAD_FIELD;
    }
    char h[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(h, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        snprintf(why, whylen, "out of memory while hashing the password");
        return SOFFA_ERR_NOMEM;
    }
    snprintf(out, SOFFA_USER_HASH_MAX, "%s", h);
    sodium_memzero(h, sizeof h);
    return strncmp(out, "$argon2id$", 10) == 0 ? SOFFA_OK : SOFFA_ERR_INTERNAL;
}

typedef enum { S_ADD, S_PASSWD, S_REMOVE } s_op_t;

static soffa_err_t
s_change(const char *path, s_op_t op, const char *name, soffa_user_role_t role, const char *password, char *why,
         size_t whylen)
{
    if (!soffa_users_name_ok(name)) {
        snprintf(why, whylen, "'%s' is not a valid name: 1 to 64 of a-z, 0-9, '.', '_' and '-'", name);
        return SOFFA_ERR_BAD_FIELD;
    }
    if (sodium_init() < 0)
        return SOFFA_ERR_INTERNAL;
    char hash[SOFFA_USER_HASH_MAX] = "";
    soffa_err_t rc = op == S_REMOVE ? SOFFA_OK : s_hash(password, hash, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    int lock = s_lock(path, why, whylen);
    if (lock < 0)
        return SOFFA_ERR_IO;
    soffa_users_t users;
    rc = soffa_users_load(path, &users, why, whylen);
    if (rc != SOFFA_OK) {
        close(lock);
        return rc;
    }
    soffa_user_t *u = (soffa_user_t *) soffa_users_find(&users, name);
    if (op == S_ADD && u) {
        snprintf(why, whylen, "there is already an account called %s (soffa user passwd changes its password)", name);
        rc = SOFFA_ERR_EXISTS;
    } else if (op != S_ADD && !u) {
        snprintf(why, whylen, "there is no account called %s (soffa user list shows them)", name);
        rc = SOFFA_ERR_NOT_FOUND;
    } else if (op == S_ADD) {
        soffa_user_t *v = realloc(users.v, (users.n + 1) * sizeof *v);
        if (!v) {
            rc = SOFFA_ERR_NOMEM;
        } else {
            users.v = v;
            soffa_user_t *n = &users.v[users.n++];
            memset(n, 0, sizeof *n);
            snprintf(n->name, sizeof n->name, "%s", name);
            n->role = role;
            uint8_t r[8];
            randombytes_buf(r, sizeof r);
            snprintf(n->actor, sizeof n->actor, "u-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
                     r[5], r[6], r[7]);
            snprintf(n->hash, sizeof n->hash, "%s", hash);
        }
    } else if (op == S_PASSWD) {
        snprintf(u->hash, sizeof u->hash, "%s", hash);
    } else {
        size_t i = (size_t) (u - users.v);
        memmove(&users.v[i], &users.v[i + 1], (users.n - i - 1) * sizeof *users.v);
        users.n--;
    }
    if (rc == SOFFA_OK)
        rc = s_save(path, &users, why, whylen);
    soffa_users_fini(&users);
    sodium_memzero(hash, sizeof hash);
    close(lock);
    return rc;
}

soffa_err_t
soffa_users_add(const char *path, const char *name, soffa_user_role_t role, const char *password, char *why,
                size_t whylen)
{
    if (role != SOFFA_USER_CASEWORKER && role != SOFFA_USER_LEAD) {
        snprintf(why, whylen, "the role must be caseworker or lead");
        return SOFFA_ERR_BAD_FIELD;
    }
    return s_change(path, S_ADD, name, role, password, why, whylen);
}

soffa_err_t
soffa_users_passwd(const char *path, const char *name, const char *password, char *why, size_t whylen)
{
    if (!password) {
        snprintf(why, whylen, "give a password");
        return SOFFA_ERR_BAD_FIELD;
    }
    return s_change(path, S_PASSWD, name, 0, password, why, whylen);
}

soffa_err_t
soffa_users_remove(const char *path, const char *name, char *why, size_t whylen)
{
    return s_change(path, S_REMOVE, name, 0, NULL, why, whylen);
}

/* ---- The command line ---- */

/* Reads one line (the password): from a file, or from stdin (without echo
 * on a terminal, asked twice). Returns a malloc'd string or NULL. */
static char *
s_read_password(const char *file, bool twice)
{
    char buf[1024], again[1024];
    buf[0] = again[0] = '\0';
    if (file) {
        FILE *f = fopen(file, "re");
        if (!f || !fgets(buf, sizeof buf, f)) {
            if (f)
                fclose(f);
            return NULL;
        }
        fclose(f);
    } else if (isatty(0)) {
        struct termios old, quiet;
        tcgetattr(0, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t) ECHO;
        fputs("password: ", stderr);
        tcsetattr(0, TCSAFLUSH, &quiet);
        bool ok = fgets(buf, sizeof buf, stdin) != NULL;
        if (ok && twice) {
            fputs("\nagain: ", stderr);
            ok = fgets(again, sizeof again, stdin) != NULL;
        }
        tcsetattr(0, TCSAFLUSH, &old);
        fputc('\n', stderr);
        if (!ok || (twice && strcmp(buf, again) != 0)) {
            sodium_memzero(buf, sizeof buf);
            sodium_memzero(again, sizeof again);
            fputs("the two passwords differ\n", stderr);
            return NULL;
        }
    } else if (!fgets(buf, sizeof buf, stdin)) {
        return NULL;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    char *p = strdup(buf);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(again, sizeof again);
    return p;
}

static int
s_usage(FILE *out)
{
    fputs("usage: soffa [--net DIR --agent NAME] user add NAME --role caseworker|lead [--sso] [--password-file F]\n"
          "       soffa [--net DIR --agent NAME] user passwd NAME [--password-file F]\n"
          "       soffa [--net DIR --agent NAME] user remove NAME\n"
          "       soffa [--net DIR --agent NAME] user list\n"
          "       (or --config AGENT.INI after 'user' instead of --net/--agent)\n\n"
          "The people who may use this site's web inbox (soffa-web). Passwords are read\n"
          "from --password-file or standard input (asked twice, without echo, on a\n"
          "terminal), at least 10 characters, and stored as Argon2id hashes in the\n"
          "[web] users file (owner-only). --sso makes an account that signs in only\n"
          "through the single sign-on header of a local reverse proxy. A lead also sees\n"
          "who looked at which young person's messages (Min enhet). soffa-web reads\n"
          "the file again when it changes: a removed account's sessions end at once.\n",
          out);
    return out == stdout ? 0 : 2;
}

int
soffa_users_command(int argc, char **argv, const char *net, const char *agent)
{
    const char *config = NULL, *role = NULL, *pwfile = NULL, *op = NULL, *name = NULL;
    bool sso = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return s_usage(stdout);
        else if (!strcmp(a, "--config") && i + 1 < argc)
            config = argv[++i];
        else if (!strcmp(a, "--role") && i + 1 < argc)
            role = argv[++i];
        else if (!strcmp(a, "--password-file") && i + 1 < argc)
            pwfile = argv[++i];
        else if (!strcmp(a, "--sso"))
            sso = true;
        else if (a[0] == '-') {
            fprintf(stderr, "soffa user: unknown option '%s' (see soffa user --help)\n", a);
            return 2;
        } else if (!op)
            op = a;
        else if (!name)
            name = a;
        else
            return s_usage(stderr);
    }
    if (!op || (strcmp(op, "list") != 0 && !name))
        return s_usage(stderr);
    char cfgpath[1200];
    if (!config && net && agent) {
        snprintf(cfgpath, sizeof cfgpath, "%s/%s/agent.ini", net, agent);
        config = cfgpath;
    }
    if (!config) {
        fputs("soffa user: which site? give --config AGENT.INI, or --net DIR --agent NAME\n", stderr);
        return 2;
    }
    soffa_web_cfg_t cfg;
    char why[1200] = "";
    if (soffa_web_cfg_load(config, &cfg, why, sizeof why) != SOFFA_OK) {
        fprintf(stderr, "soffa user: %s\n", why);
        return 1;
    }
    soffa_err_t rc;
    if (!strcmp(op, "list")) {
        soffa_users_t users;
        rc = soffa_users_load(cfg.users_path, &users, why, sizeof why);
        if (rc == SOFFA_OK) {
            for (size_t i = 0; i < users.n; i++)
                printf("%-24s %-10s %s%s\n", users.v[i].name, soffa_users_role_name(users.v[i].role), users.v[i].actor,
                       strcmp(users.v[i].hash, "-") ? "" : "  (single sign-on only)");
            if (!users.n)
                printf("(no accounts in %s)\n", cfg.users_path);
            soffa_users_fini(&users);
        }
    } else if (!strcmp(op, "add") || !strcmp(op, "passwd")) {
        bool add = !strcmp(op, "add");
        soffa_user_role_t r = soffa_users_role_parse(role);
        if (add && !r) {
            fputs("soffa user add: give --role caseworker or --role lead\n", stderr);
            return 2;
        }
        char *pw = NULL;
        if (!(add && sso)) {
            pw = s_read_password(pwfile, !pwfile);
            if (!pw) {
                fputs("soffa user: no password read (give --password-file F, or type it)\n", stderr);
                return 1;
            }
        }
        rc = add ? soffa_users_add(cfg.users_path, name, r, pw, why, sizeof why)
                 : soffa_users_passwd(cfg.users_path, name, pw, why, sizeof why);
        if (pw) {
            sodium_memzero(pw, strlen(pw));
            free(pw);
        }
        if (rc == SOFFA_OK)
            printf("%s %s (%s) in %s\n", add ? "added" : "changed the password of", name, add ? soffa_users_role_name(r) : "",
                   cfg.users_path);
    } else if (!strcmp(op, "remove")) {
        rc = soffa_users_remove(cfg.users_path, name, why, sizeof why);
        if (rc == SOFFA_OK)
            printf("removed %s; its sessions end at the next request\n", name);
    } else {
        return s_usage(stderr);
    }
    if (rc != SOFFA_OK) {
        fprintf(stderr, "soffa user %s: %s\n", op, why[0] ? why : soffa_strerror(rc));
        return 1;
    }
    return 0;
}
