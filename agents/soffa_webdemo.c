/*  soffa_webdemo: [web] sections, demo accounts and soffa-web processes for
 *  `soffa up`. */
#include "soffa_webdemo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soffa_cli_ini.h"
#include "soffa_users.h"
#include "soffa_web_cfg.h"

typedef struct {
    const char *name, *site;
} s_site_t;

static const s_site_t s_sites[] = {
    {"school-1415", "Gymnasieskola i Stenungsund"},
    {"kaa-1415", "Stenungsunds kommun, aktivitetsansvaret"},
    {"kaa-1419", "Tjörns kommun, aktivitetsansvaret"},
    {"social-1419", "Socialtjänsten i Tjörn"},
    {"af-1419", "Arbetsförmedlingen, Tjörn"},
};

bool
soffa_webdemo_wants(const char *role)
{
    return role && (!strcmp(role, "school") || !strcmp(role, "kaa") || !strcmp(role, "social") || !strcmp(role, "af"));
}

/* The [web] section of a site's agent.ini. */
static const soffa_cli_ini_row_t s_web_ini[] = {
    {SOFFA_CLI_INI_COMMENT, "made by soffa up: the web inbox (plain HTTP on loopback only; see config/agent.ini for TLS)", NULL, NULL},
    {SOFFA_CLI_INI_SECTION, "web", NULL, NULL},
    {SOFFA_CLI_INI_KEY, "listen", "127.0.0.1:{port}", NULL},
    {SOFFA_CLI_INI_KEY, "dir", "web", NULL},
    {SOFFA_CLI_INI_KEY, "site_name", "{site}", NULL},
    {SOFFA_CLI_INI_BLANK, NULL, NULL, NULL},
};

soffa_err_t
soffa_webdemo_ini(FILE *af, const char *name, int port, char *why, size_t whylen)
{
    const char *site = name;
    for (size_t i = 0; i < sizeof s_sites / sizeof *s_sites; i++)
        if (!strcmp(s_sites[i].name, name))
            site = s_sites[i].site;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const soffa_cli_ini_var_t vars[] = {{"port", ports}, {"site", site}};
    return soffa_cli_ini_write(af, s_web_ini, sizeof s_web_ini / sizeof *s_web_ini, vars, 2, why, whylen);
}

static bool
s_listening(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *) &a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int
soffa_webdemo_start(const char *dir, const char *bin_dir, const char *const *names, size_t n, char *why, size_t whylen)
{
    char bin[1200], path[1200];
    snprintf(bin, sizeof bin, "%s/soffa-web", bin_dir);
    if (access(bin, X_OK) != 0) {
        snprintf(why, whylen, "soffa-web must sit next to soffa (%s)", bin_dir);
        return 1;
    }
    snprintf(path, sizeof path, "%s/web-passwords", dir);
    int pfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *pw = pfd >= 0 ? fdopen(pfd, "w") : NULL;
    snprintf(path, sizeof path, "%s/pids", dir);
    FILE *pids = fopen(path, "a");
    if (!pw || !pids) {
        snprintf(why, whylen, "cannot write in %s: %s", dir, strerror(errno));
        if (pw)
            fclose(pw);
        else if (pfd >= 0)
            close(pfd);
        if (pids)
            fclose(pids);
        return 1;
    }
    fprintf(pw, "# soffa up: the demo accounts of the web inboxes (site, address, name, password)\n");
    int rc = 0;
    int ports[16];
    size_t started = 0;
    for (size_t i = 0; i < n && i < 16 && rc == 0; i++) {
        char ini[1200];
        snprintf(ini, sizeof ini, "%s/%s/agent.ini", dir, names[i]);
        soffa_web_cfg_t cfg;
        if (soffa_web_cfg_load(ini, &cfg, why, whylen) != 0) {
            rc = 1;
            break;
        }
        if (!cfg.listen[0])
            continue;
        char password[33];
        uint8_t r[16];
        randombytes_buf(r, sizeof r);
        sodium_bin2hex(password, sizeof password, r, sizeof r);
        if (soffa_users_add(cfg.users_path, "demo", SOFFA_USER_LEAD, password, why, whylen) != 0) {
            rc = 1;
            break;
        }
        const char *colon = strrchr(cfg.listen, ':');
        ports[started] = colon ? atoi(colon + 1) : 0;
        fprintf(pw, "%-12s http://%s/  demo  %s\n", names[i], cfg.listen, password);
        sodium_memzero(password, sizeof password);
        char log[1200];
        snprintf(log, sizeof log, "%s/%s/web.log", dir, names[i]);
        pid_t pid = fork();
        if (pid == 0) {
            setsid();
            int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
            dup2(in, 0);
            dup2(out, 1);
            dup2(out, 2);
            execl(bin, bin, "--config", ini, (char *) NULL);
            _exit(127);
        }
        fprintf(pids, "web-%s %d\n", names[i], (int) pid);
        started++;
    }
    fclose(pids);
    if (fclose(pw) != 0 && rc == 0) {
        snprintf(why, whylen, "cannot write %s/web-passwords", dir);
        rc = 1;
    }
    for (size_t i = 0; rc == 0 && i < started; i++) {
        int t = 0;
        while (t++ < 100 && !s_listening(ports[i]))
            usleep(100 * 1000);
        if (t > 100) {
            snprintf(why, whylen, "a web inbox did not start listening on port %d within 10 s (see %s/*/web.log)",
                     ports[i], dir);
            rc = 1;
        }
    }
    return rc;
}

void
soffa_webdemo_print(FILE *out, const char *dir)
{
    char path[1200], line[512];
    snprintf(path, sizeof path, "%s/web-passwords", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fprintf(out, "Web inboxes (log in as demo; the passwords are in %s, readable by you only):\n", path);
    while (fgets(line, sizeof line, f)) {
        char name[64], url[256];
        if (line[0] == '#' || sscanf(line, "%63s %255s", name, url) != 2)
            continue;
        fprintf(out, "  %-15s %s\n", name, url);
    }
    fclose(f);
}
