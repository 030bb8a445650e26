/*  soffa_cfg: one inih callback, table lookups, defaults and ranges. */
#include "soffa_cfg.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define S_MAX_INSTANCES 8192

typedef struct {
    const soffa_cfg_section_t *sections;
    size_t n;
    const char *path;
    char *why;
    size_t whylen;
    bool failed;
    /* The section being read: which table, which struct, which keys seen. */
    const soffa_cfg_section_t *cur;
    void *cur_target;
    char cur_name[128];
    uint64_t *cur_seen;
    /* Every section instance read, to check required keys at the end. */
    struct {
        const soffa_cfg_section_t *sec;
        char name[128];
        uint64_t seen;
    } inst[S_MAX_INSTANCES];
    size_t n_inst;
    int line;
} s_ctx_t;

bool
soffa_cfg_parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || errno || text[0] == '-')
        return false;
    while (*end == ' ')
        end++;
    uint64_t mul = 1;
    if (*end == '\0' || strcasecmp(end, "B") == 0)
        mul = 1;
    else if (strcasecmp(end, "KiB") == 0 || strcasecmp(end, "K") == 0)
        mul = 1024;
    else if (strcasecmp(end, "MiB") == 0 || strcasecmp(end, "M") == 0)
        mul = 1024 * 1024;
    else if (strcasecmp(end, "GiB") == 0 || strcasecmp(end, "G") == 0)
        mul = 1024ULL * 1024 * 1024;
    else if (strcasecmp(end, "TiB") == 0 || strcasecmp(end, "T") == 0)
        mul = 1024ULL * 1024 * 1024 * 1024;
    else
        return false;
    if (v > UINT64_MAX / mul)
        return false;
    *out = v * mul;
    return true;
}

bool
soffa_cfg_parse_duration(const char *text, int64_t *ms)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || errno || v < 0)
        return false;
    int64_t mul;
    if (*end == '\0' || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "m"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else if (!strcmp(end, "d"))
        mul = 86400000;
    else
        return false;
    if (v > INT64_MAX / mul)
        return false;
    *ms = v * mul;
    return true;
}

bool
soffa_cfg_path(const char *base, const char *file, char *out, size_t outlen)
{
    if (!file || !*file)
        return false;
    if (file[0] == '/' || !base)
        return snprintf(out, outlen, "%s", file) < (int) outlen;
    const char *slash = strrchr(base, '/');
    if (!slash)
        return snprintf(out, outlen, "%s", file) < (int) outlen;
    return snprintf(out, outlen, "%.*s/%s", (int) (slash - base), base, file) < (int) outlen;
}

static int
s_fail(s_ctx_t *c, const char *fmt, const char *a, const char *b)
{
    if (!c->failed && c->why && c->whylen) {
        char msg[300];
        snprintf(msg, sizeof msg, fmt, a, b);
        snprintf(c->why, c->whylen, "%s:%d: %s", c->path, c->line, msg);
    }
    c->failed = true;
    return 0;
}

static bool
s_set(s_ctx_t *c, const soffa_cfg_key_t *k, void *target, const char *value)
{
    char *field = (char *) target + k->offset;
    char buf[64];
    switch (k->type) {
    case SOFFA_CFG_STR:
        if (strlen(value) >= k->size) {
            snprintf(buf, sizeof buf, "%zu", k->size - 1);
            s_fail(c, "%s is longer than %s characters", k->key, buf);
            return false;
        }
        memcpy(field, value, strlen(value) + 1);
        return true;
    case SOFFA_CFG_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno) {
            s_fail(c, "%s must be a whole number, not '%s'", k->key, value);
            return false;
        }
        if (v < k->min || v > k->max) {
            snprintf(buf, sizeof buf, "%lld..%lld", (long long) k->min, (long long) k->max);
            s_fail(c, "%s must be in %s", k->key, buf);
            return false;
        }
        *(int64_t *) field = v;
        return true;
    }
    case SOFFA_CFG_SIZE: {
        uint64_t v;
        if (!soffa_cfg_parse_size(value, &v)) {
            s_fail(c, "%s must be a size such as 64MiB or 1GiB, not '%s'", k->key, value);
            return false;
        }
        if ((int64_t) v < k->min || (int64_t) v > k->max) {
            snprintf(buf, sizeof buf, "%lld..%lld bytes", (long long) k->min, (long long) k->max);
            s_fail(c, "%s must be in %s", k->key, buf);
            return false;
        }
        *(size_t *) field = (size_t) v;
        return true;
    }
    case SOFFA_CFG_DURATION: {
        int64_t ms;
        if (!soffa_cfg_parse_duration(value, &ms)) {
            s_fail(c, "%s must be a duration such as 5d, 2h, 15m or 90s, not '%s'", k->key, value);
            return false;
        }
        if (ms < k->min || ms > k->max) {
            s_fail(c, "%s is out of range%s", k->key, "");
            return false;
        }
        *(int64_t *) field = ms;
        return true;
    }
    case SOFFA_CFG_BOOL:
        if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on")
            || !strcmp(value, "1")) {
            *(bool *) field = true;
        } else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off")
                   || !strcmp(value, "0")) {
            *(bool *) field = false;
        } else {
            s_fail(c, "%s must be true or false, not '%s'", k->key, value);
            return false;
        }
        return true;
    }
    return false;
}

static bool
s_defaults(s_ctx_t *c, const soffa_cfg_section_t *sec, void *target)
{
    for (size_t i = 0; i < sec->n_keys; i++)
        if (sec->keys[i].def && !s_set(c, &sec->keys[i], target, sec->keys[i].def))
            return false;
    return true;
}

static bool
s_begin_section(s_ctx_t *c, const char *section)
{
    c->cur = NULL;
    for (size_t i = 0; i < c->n; i++) {
        const soffa_cfg_section_t *s = &c->sections[i];
        size_t nl = strlen(s->name);
        if (!s->named && strcmp(section, s->name) == 0) {
            for (size_t j = 0; j < c->n_inst; j++)
                if (c->inst[j].sec == s)
                    return s_fail(c, "section [%s] appears twice%s", section, ""), false;
            c->cur = s;
            c->cur_target = s->target;
        } else if (s->named && strncmp(section, s->name, nl) == 0 && section[nl] == ' ') {
            const char *name = section + nl + 1;
            while (*name == ' ')
                name++;
            if (!*name)
                return s_fail(c, "section [%s] needs a name, e.g. [%s NAME]", s->name, s->name), false;
            for (size_t j = 0; j < c->n_inst; j++)
                if (c->inst[j].sec == s && strcmp(c->inst[j].name, name) == 0)
                    return s_fail(c, "section [%s] appears twice%s", section, ""), false;
            c->cur = s;
            c->cur_target = s->add(s->ctx, name);
            if (!c->cur_target)
                return s_fail(c, "section [%s] cannot be added (bad name or too many)%s", section, ""), false;
            if (!s_defaults(c, s, c->cur_target))
                return false;
        } else {
            continue;
        }
        if (c->n_inst >= S_MAX_INSTANCES)
            return s_fail(c, "too many sections%s%s", "", ""), false;
        c->inst[c->n_inst].sec = s;
        snprintf(c->inst[c->n_inst].name, sizeof c->inst[c->n_inst].name, "%s", section);
        c->inst[c->n_inst].seen = 0;
        c->cur_seen = &c->inst[c->n_inst].seen;
        c->n_inst++;
        snprintf(c->cur_name, sizeof c->cur_name, "%s", section);
        return true;
    }
    return s_fail(c, "unknown section [%s]%s", section, ""), false;
}

static int
s_handler(void *user, const char *section, const char *name, const char *value)
{
    s_ctx_t *c = user;
    if (c->failed)
        return 0;
    if (!c->cur || strcmp(section, c->cur_name) != 0) {
        if (!s_begin_section(c, section))
            return 0;
    }
    if (!c->cur->keys)
        return 1;   /* a section another program reads: accepted, not ours to check */
    for (size_t i = 0; i < c->cur->n_keys; i++) {
        const soffa_cfg_key_t *k = &c->cur->keys[i];
        if (strcmp(k->key, name) == 0) {
            if (*c->cur_seen & (1ULL << i))
                return s_fail(c, "%s is set twice in [%s]", name, section);
            *c->cur_seen |= 1ULL << i;
            return s_set(c, k, c->cur_target, value) ? 1 : 0;
        }
    }
    return s_fail(c, "unknown key '%s' in [%s]", name, section);
}

soffa_err_t
soffa_cfg_load(const char *path, const soffa_cfg_section_t *sections, size_t n, char *why, size_t whylen)
{
    s_ctx_t *c = calloc(1, sizeof *c);
    if (!c)
        return SOFFA_ERR_NOMEM;
    c->sections = sections;
    c->n = n;
    c->path = path;
    c->why = why;
    c->whylen = whylen;
    soffa_err_t rc = SOFFA_OK;
    for (size_t i = 0; i < n; i++) {
        if (!sections[i].named && !s_defaults(c, &sections[i], sections[i].target)) {
            rc = SOFFA_ERR_CONFIG;
            goto out;
        }
    }
    if (access(path, R_OK) != 0) {
        if (why && whylen)
            snprintf(why, whylen, "%s: cannot read the configuration file", path);
        rc = errno == ENOENT ? SOFFA_ERR_NOT_FOUND : SOFFA_ERR_CONFIG;
        goto out;
    }
    /* inih reports the line of the first error; the handler says what. */
    FILE *f = fopen(path, "re");
    if (!f) {
        rc = SOFFA_ERR_CONFIG;
        goto out;
    }
    int err = ini_parse_file(f, s_handler, c);
    fclose(f);
    if (err > 0 && !c->failed) {
        c->line = err;
        s_fail(c, "this line is not 'key = value' or a [section]%s%s", "", "");
    }
    if (c->failed) {
        if (err > 0 && why && whylen) {
            /* Put the line number inih found in front of the message. */
            char msg[512];
            const char *colon = strstr(why, ":0: ");
            if (colon) {
                snprintf(msg, sizeof msg, "%s:%d: %s", path, err, colon + 4);
                snprintf(why, whylen, "%s", msg);
            }
        }
        rc = SOFFA_ERR_CONFIG;
        goto out;
    }
    /* Required keys. */
    for (size_t j = 0; j < c->n_inst; j++) {
        const soffa_cfg_section_t *s = c->inst[j].sec;
        for (size_t i = 0; i < s->n_keys; i++) {
            if (!s->keys[i].def && !(c->inst[j].seen & (1ULL << i))) {
                if (why && whylen)
                    snprintf(why, whylen, "%s: [%s] needs %s (%s)", path, c->inst[j].name, s->keys[i].key,
                             s->keys[i].doc);
                rc = SOFFA_ERR_CONFIG;
                goto out;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (sections[i].named)
            continue;
        bool present = false;
        for (size_t j = 0; j < c->n_inst; j++)
            present |= c->inst[j].sec == &sections[i];
        for (size_t k = 0; !present && k < sections[i].n_keys; k++) {
            if (!sections[i].keys[k].def) {
                if (why && whylen)
                    snprintf(why, whylen, "%s: section [%s] is missing (it needs %s)", path,
                             sections[i].name, sections[i].keys[k].key);
                rc = SOFFA_ERR_CONFIG;
                goto out;
            }
        }
    }
out:
    free(c);
    return rc;
}
