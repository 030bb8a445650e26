/*  soffa_keys: key pairs from zmq_curve_keypair, stored as Z85 text. */
#include "soffa_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_log.h"

int
soffa_keys_valid_z85(const char *text)
{
    uint8_t raw[32];
    return text && strlen(text) == 40 && zmq_z85_decode(raw, text) != NULL;
}

static soffa_err_t
s_write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == EEXIST ? SOFFA_ERR_EXISTS : soffa_err_from_errno(errno);
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t) len && fsync(fd) == 0;
    close(fd);
    if (!ok) {
        unlink(path);
        return SOFFA_ERR_IO;
    }
    return SOFFA_OK;
}

soffa_err_t
soffa_keys_generate(const char *path)
{
    char pub[SOFFA_Z85_KEY], sec[SOFFA_Z85_KEY], kpath[4096], ppath[4096], text[200];
    if (!path || snprintf(kpath, sizeof kpath, "%s.key", path) >= (int) sizeof kpath
        || snprintf(ppath, sizeof ppath, "%s.pub", path) >= (int) sizeof ppath)
        return SOFFA_ERR_INVALID_ARG;
    if (access(kpath, F_OK) == 0 || access(ppath, F_OK) == 0)
        return SOFFA_ERR_EXISTS;
    if (zmq_curve_keypair(pub, sec) != 0)
        return SOFFA_ERR_INTERNAL;
    snprintf(text, sizeof text, "# soffa CurveZMQ key pair; keep this file secret\npublic = %s\nsecret = %s\n",
             pub, sec);
    soffa_err_t rc = s_write_file(kpath, text, 0600);
    explicit_bzero(sec, sizeof sec);
    explicit_bzero(text, sizeof text);
    if (rc != SOFFA_OK)
        return rc;
    snprintf(text, sizeof text, "%s\n", pub);
    rc = s_write_file(ppath, text, 0644);
    if (rc != SOFFA_OK)
        unlink(kpath);
    return rc;
}

/* Reads up to two "name = value" lines (or one bare line) of a key file. */
static soffa_err_t
s_read(const char *file, char pub[SOFFA_Z85_KEY], char sec[SOFFA_Z85_KEY], bool need_secret)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return soffa_err_from_errno(errno);
    if (need_secret) {
        struct stat st;
        if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077)) {
            fclose(f);
            soffa_error("%s can be read by others; run chmod 600 on it", file);
            return SOFFA_ERR_PERMISSION;
        }
    }
    char line[256];
    bool got_pub = false, got_sec = false;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        p[strcspn(p, "\r\n")] = '\0';
        if (*p == '#' || *p == '\0')
            continue;
        /* "public = KEY", "secret = KEY", or a bare KEY (.pub). Z85 keys may
         * contain '=', so only a leading name makes a label. */
        const char *label = NULL;
        char *val = p;
        if (strncmp(p, "public", 6) == 0 || strncmp(p, "secret", 6) == 0) {
            char *q = p + 6;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=') {
                label = p;
                val = q + 1;
            }
        }
        while (*val == ' ' || *val == '\t')
            val++;
        char *end = val + strlen(val);
        while (end > val && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!soffa_keys_valid_z85(val))
            continue;
        if (!label || strncmp(label, "public", 6) == 0) {
            memcpy(pub, val, SOFFA_Z85_KEY);
            got_pub = true;
        } else if (sec) {
            memcpy(sec, val, SOFFA_Z85_KEY);
            got_sec = true;
        }
    }
    fclose(f);
    explicit_bzero(line, sizeof line);
    if (!got_pub || (need_secret && !got_sec))
        return SOFFA_ERR_MALFORMED;
    return SOFFA_OK;
}

soffa_err_t
soffa_keys_load_secret(const char *file, char public_z85[SOFFA_Z85_KEY], char secret_z85[SOFFA_Z85_KEY])
{
    return s_read(file, public_z85, secret_z85, true);
}

soffa_err_t
soffa_keys_load_public(const char *file, char public_z85[SOFFA_Z85_KEY])
{
    return s_read(file, public_z85, NULL, false);
}
