/*  soffa_school: change tracking and derived signals of a school agent. */
#include "soffa_school.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soffa_bytes.h"
#include "soffa_id.h"
#include "soffa_log.h"
#include "soffa_msg.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

/* ---- Configuration ------------------------------------------------------------ */

static const soffa_cfg_key_t s_school_keys[] = {
    {"principal_kommun", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_school_cfg_t, principal_kommun), 16,
     "the principal's municipality code, or none for an independent school, a region or a kommunalförbund"},
    {"school_unit", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_school_cfg_t, school_unit), 16,
     "this agent's skolenhetskod (8 digits), as in the broker's [agent NAME] unit"},
    {"review", SOFFA_CFG_BOOL, "no", 0, 0, offsetof(soffa_school_cfg_t, review), 0,
     "hold derived signals until a person approves them (soffa pending, soffa approve)"},
    {"since", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_school_cfg_t, since), 16,
     "signal no change dated before this date (default: the day of the first import)"},
    {"absence_min_minutes", SOFFA_CFG_INT, "600", 1, 1000000, offsetof(soffa_school_cfg_t, absence_min_minutes), 0,
     "scheduled minutes a period needs before its absence is judged"},
    {"absence_significant", SOFFA_CFG_INT, "20", 1, 100, offsetof(soffa_school_cfg_t, absence_significant), 0,
     "percent of the scheduled time absent without valid reason: SIGNIFICANT"},
    {"absence_extensive", SOFFA_CFG_INT, "50", 1, 100, offsetof(soffa_school_cfg_t, absence_extensive), 0,
     "percent: EXTENSIVE"},
    {"absence_total", SOFFA_CFG_INT, "90", 1, 100, offsetof(soffa_school_cfg_t, absence_total), 0, "percent: TOTAL"},
    {"transfer_days", SOFFA_CFG_INT, "14", 0, 366, offsetof(soffa_school_cfg_t, transfer_days), 0,
     "days after an end within which another enrolment of the pupil makes the reason TRANSFER"},
};

static const soffa_cfg_key_t s_ss_keys[] = {
    {"url", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_school_cfg_t, url), 512,
     "base URL of the student information system's SS 12000 API (https)"},
    {"token_file", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_school_cfg_t, token_file), 512,
     "file holding the API's bearer token (mode 0600)"},
    {"ca_file", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_school_cfg_t, ca_file), 512,
     "CA certificates for the API's TLS certificate (default: the system's)"},
    {"interval", SOFFA_CFG_DURATION, "0", 0, 7LL * 86400000, offsetof(soffa_school_cfg_t, interval_ms), 0,
     "how often the agent syncs by itself; 0 = only by command"},
    {"timeout", SOFFA_CFG_DURATION, "60s", 1000, 600000, offsetof(soffa_school_cfg_t, timeout_ms), 0,
     "time limit of one HTTP request"},
    {"page_size", SOFFA_CFG_INT, "500", 1, 10000, offsetof(soffa_school_cfg_t, page_size), 0, "limit= of each page"},
    {"attendance", SOFFA_CFG_BOOL, "yes", 0, 0, offsetof(soffa_school_cfg_t, attendance), 0,
     "also read attendance (calendarEvents with expand=attendance) for absence signals"},
};

void
soffa_school_cfg_sections(soffa_school_cfg_t *cfg, soffa_cfg_section_t out[2])
{
    out[0] = (soffa_cfg_section_t) {"school", false, s_school_keys, sizeof s_school_keys / sizeof *s_school_keys, cfg,
                                    NULL, NULL};
    out[1] = (soffa_cfg_section_t) {"ss12000", false, s_ss_keys, sizeof s_ss_keys / sizeof *s_ss_keys, cfg, NULL, NULL};
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

soffa_err_t
soffa_school_cfg_check(soffa_school_cfg_t *c, const char *config_path, char *why, size_t whylen)
{
    soffa_date_t d;
    if (c->principal_kommun[0] && strcmp(c->principal_kommun, "none") != 0
        && soffa_kommun_check(c->principal_kommun) != SOFFA_OK) {
        snprintf(why, whylen, "%s: [school] principal_kommun must be a municipality code (e.g. 1415) or none",
                 config_path);
        return SOFFA_ERR_CONFIG;
    }
    if (c->school_unit[0] && soffa_skolenhet_check(c->school_unit) != SOFFA_OK) {
        snprintf(why, whylen, "%s: [school] school_unit must be the 8-digit skolenhetskod", config_path);
        return SOFFA_ERR_CONFIG;
    }
    if (c->since[0] && !soffa_date_parse(c->since, &d)) {
        snprintf(why, whylen, "%s: [school] since must be a date YYYY-MM-DD", config_path);
        return SOFFA_ERR_CONFIG;
    }
    if (c->absence_significant > c->absence_extensive || c->absence_extensive > c->absence_total) {
        snprintf(why, whylen, "%s: [school] absence_significant <= absence_extensive <= absence_total, please",
                 config_path);
        return SOFFA_ERR_CONFIG;
    }
    if (c->url[0]) {
        if (strncmp(c->url, "https://", 8) != 0 && !s_loopback(c->url)) {
            snprintf(why, whylen, "%s: [ss12000] url must begin with https:// (plain http only to this host: the "
                                  "bearer token must not travel in the clear)", config_path);
            return SOFFA_ERR_CONFIG;
        }
        if (!c->token_file[0] || (!c->principal_kommun[0] || !c->school_unit[0])) {
            snprintf(why, whylen, "%s: [ss12000] url needs token_file, and [school] principal_kommun and school_unit",
                     config_path);
            return SOFFA_ERR_CONFIG;
        }
    }
    char path[512];
    if (c->token_file[0]) {
        if (!soffa_cfg_path(config_path, c->token_file, path, sizeof path)) {
            snprintf(why, whylen, "%s: [ss12000] token_file: path too long", config_path);
            return SOFFA_ERR_CONFIG;
        }
        snprintf(c->token_file, sizeof c->token_file, "%s", path);
        struct stat st;
        if (stat(path, &st) != 0) {
            snprintf(why, whylen, "%s: [ss12000] token_file %s: %s", config_path, path, strerror(errno));
            return SOFFA_ERR_CONFIG;
        }
        if (st.st_mode & 077) {
            snprintf(why, whylen, "%s: [ss12000] token_file %s can be read by others; run chmod 600 on it",
                     config_path, path);
            return SOFFA_ERR_PERMISSION;
        }
    }
    if (c->ca_file[0]) {
        if (!soffa_cfg_path(config_path, c->ca_file, path, sizeof path)) {
            snprintf(why, whylen, "%s: [ss12000] ca_file: path too long", config_path);
            return SOFFA_ERR_CONFIG;
        }
        snprintf(c->ca_file, sizeof c->ca_file, "%s", path);
    }
    return SOFFA_OK;
}

void
soffa_school_cfg_print(const soffa_school_cfg_t *c, FILE *out)
{
    fprintf(out, "school.principal_kommun = %s\nschool.school_unit = %s\nschool.review = %s\nschool.since = %s\n",
            c->principal_kommun, c->school_unit, c->review ? "yes" : "no", c->since);
    fprintf(out, "school.absence_min_minutes = %lld\nschool.absence_significant = %lld\nschool.absence_extensive = %lld\n"
                 "school.absence_total = %lld\nschool.transfer_days = %lld\n",
            (long long) c->absence_min_minutes, (long long) c->absence_significant, (long long) c->absence_extensive,
            (long long) c->absence_total, (long long) c->transfer_days);
    fprintf(out, "ss12000.url = %s\nss12000.token_file = %s\nss12000.ca_file = %s\nss12000.interval = %lld ms\n"
                 "ss12000.timeout = %lld ms\nss12000.page_size = %lld\nss12000.attendance = %s\n",
            c->url, c->token_file, c->ca_file, (long long) c->interval_ms, (long long) c->timeout_ms,
            (long long) c->page_size, c->attendance ? "yes" : "no");
}

/* ---- The tracker ------------------------------------------------------------------ */

enum {
    S_EV_QUEUED = 1,      /* handed to the outbox */
    S_EV_HELD = 2,        /* waiting for a person's approval */
    S_EV_REJECTED = 3,    /* a person said no */
    S_EV_IMPLIED = 4,     /* a lower absence band, covered by a higher one sent */
    S_EV_SKIPPED = 5,     /* the change is not signalled (own municipality, completion, age) */
};

#define S_EV_HDR 11   /* state, at (8), length of the reason (2) */

struct soffa_school {
    soffa_school_cfg_t cfg;
    soffa_box_t *box;
    uint32_t t_pupil, t_event, t_meta;
    uint8_t key[crypto_generichash_KEYBYTES];
    char control[1024];
    char data_dir[1024];
    char soffa_bin[1200];
    pid_t sync_pid;
    int64_t sync_started;       /* monotonic µs */
    int64_t next_sync;          /* monotonic µs */
};

typedef struct {
    soffa_school_t *self;
    const char *secret;
} s_keyinit_t;

static soffa_err_t
s_keyinit(void *ctx, soffa_box_txn_t *t)
{
    s_keyinit_t *k = ctx;
    const void *v;
    size_t vl;
    if (soffa_box_txn_get(t, k->self->t_meta, "key", 3, &v, &vl) == SOFFA_OK && vl == sizeof k->self->key) {
        memcpy(k->self->key, v, vl);
        return SOFFA_OK;
    }
    /* Made from the agent's secret key, so that a store rebuilt from
     * nothing derives the same ids again (and the broker drops what it has);
     * kept here, so that a new agent key changes nothing. */
    static const uint8_t ctx_key[] = "soffa school ids v1";
    crypto_generichash(k->self->key, sizeof k->self->key, (const uint8_t *) k->secret, strlen(k->secret), ctx_key,
                       sizeof ctx_key - 1);
    return soffa_box_txn_put(t, k->self->t_meta, "key", 3, k->self->key, sizeof k->self->key);
}

soffa_err_t
soffa_school_new(soffa_school_t **out, const soffa_school_cfg_t *cfg, soffa_box_t *box, const char *secret,
                 const char *control, const char *data_dir)
{
    *out = NULL;
    if (sodium_init() < 0)
        return SOFFA_ERR_INTERNAL;
    soffa_school_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->cfg = *cfg;
    self->box = box;
    snprintf(self->control, sizeof self->control, "%s", control);
    snprintf(self->data_dir, sizeof self->data_dir, "%s", data_dir);
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(self->soffa_bin, sizeof self->soffa_bin, "%s/soffa", n > 0 ? exe : ".");
    soffa_err_t rc = soffa_box_table(box, "school-pupil", &self->t_pupil);
    if (rc == SOFFA_OK)
        rc = soffa_box_table(box, "school-event", &self->t_event);
    if (rc == SOFFA_OK)
        rc = soffa_box_table(box, "school-meta", &self->t_meta);
    s_keyinit_t k = {self, secret};
    if (rc == SOFFA_OK)
        rc = soffa_box_write(box, s_keyinit, &k);
    if (rc != SOFFA_OK) {
        free(self);
        return rc;
    }
    self->next_sync = soffa_mono_us() + 2000000;   /* the first sync soon after the start */
    *out = self;
    return SOFFA_OK;
}

void
soffa_school_stop(soffa_school_t *self)
{
    if (self && self->sync_pid > 0) {
        kill(self->sync_pid, SIGTERM);
        int st;
        waitpid(self->sync_pid, &st, 0);
        self->sync_pid = 0;
    }
}

void
soffa_school_destroy(soffa_school_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_school_stop(*self_p);
    sodium_memzero((*self_p)->key, sizeof (*self_p)->key);
    free(*self_p);
    *self_p = NULL;
}

void
soffa_school_mask(const char *id12, char out[16])
{
    if (id12 && strlen(id12) == 12)
        snprintf(out, 16, "%.4s…", id12 + 2);
    else
        snprintf(out, 16, "…");
}

/* ---- Ids and texts -------------------------------------------------------------- */

static void
s_hash16(const soffa_school_t *self, const char *tag, const char *text, uint8_t out[16])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, self->key, sizeof self->key, 16);
    crypto_generichash_update(&st, (const uint8_t *) tag, strlen(tag) + 1);
    crypto_generichash_update(&st, (const uint8_t *) text, strlen(text));
    crypto_generichash_final(&st, out, 16);
}

/* The id of a change: UUIDv7-shaped, its time the change's date (0 = none). */
static void
s_event_id(const soffa_school_t *self, const char *canonical, uint32_t date, uint8_t id[16])
{
    uint8_t h[16];
    s_hash16(self, "event", canonical, h);
    soffa_date_t d;
    int64_t ms = date && soffa_date_from_int(date, &d) ? soffa_date_local_start_us(d) / 1000 : 0;
    soffa_uuid7_derived(ms, h, id);
}

static uint32_t
s_dint(const char *text)
{
    soffa_date_t d;
    return text && soffa_date_parse(text, &d) ? soffa_date_to_int(d) : 0;
}

static const char *
s_reason_sv(const char *code)
{
    if (!code)
        return "okänd";
    if (!strcmp(code, "TRANSFER"))
        return "byte av skola";
    if (!strcmp(code, "MOVED"))
        return "flytt";
    if (!strcmp(code, "DISCONTINUED"))
        return "avbrott";
    if (!strcmp(code, "OTHER"))
        return "annan";
    return "okänd";
}

static bool
s_reason_ok(const char *code)
{
    static const char *const ok[] = {"TRANSFER", "MOVED", "DISCONTINUED", "OTHER", "UNKNOWN"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(code, ok[i]))
            return true;
    return false;
}

static const char *
s_band_sv(const char *code)
{
    if (code && !strcmp(code, "TOTAL"))
        return "total";
    if (code && !strcmp(code, "EXTENSIVE"))
        return "omfattande";
    return "betydande";
}

/* What a signal says, in Swedish, from its JSON form. */
static void
s_describe(json_t *m, char *out, size_t len)
{
    json_t *e = json_object_get(m, "enrolment_changed"), *a = json_object_get(m, "absence_reported"),
           *r = json_object_get(m, "at_risk_notice");
    if (e) {
        const char *ev = json_string_value(json_object_get(e, "event"));
        if (ev && !strcmp(ev, "LEFT"))
            snprintf(out, len, "inskrivning avslutad %s (orsak: %s)",
                     json_string_value(json_object_get(e, "effective_date")),
                     s_reason_sv(json_string_value(json_object_get(e, "leave_reason"))));
        else
            snprintf(out, len, "inskrivning påbörjad %s", json_string_value(json_object_get(e, "effective_date")));
    } else if (a) {
        snprintf(out, len, "%s ogiltig frånvaro %s – %s", s_band_sv(json_string_value(json_object_get(a, "unexcused_band"))),
                 json_string_value(json_object_get(a, "period_from")), json_string_value(json_object_get(a, "period_to")));
    } else if (r) {
        snprintf(out, len, "risksignal (%s)", json_string_value(json_object_get(r, "risk_code")));
    } else {
        snprintf(out, len, "signal");
    }
}

static json_t *
s_fail(soffa_err_t rc, const char *text)
{
    return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", soffa_errname(rc), "error",
                     text && *text ? text : soffa_strerror(rc));
}

/* One line of an answer: a signal, or a change that is not signalled. */
static json_t *
s_line(const uint8_t id[16], json_t *m, const char *what, const char *why, const char *state)
{
    json_t *subj = json_object_get(m, "subject");
    const char *hk = json_string_value(json_object_get(subj, "hemkommun"));
    char mask[16], ids[SOFFA_UUID_STR] = "", desc[200];
    soffa_school_mask(json_string_value(json_object_get(subj, "id")), mask);
    if (id)
        soffa_uuid_format(id, ids);
    if (!what) {
        s_describe(m, desc, sizeof desc);
        what = desc;
    }
    const char *type = "";
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) if (soffa_msg_type_from_name(k) != SOFFA_MT_NONE) type = k;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", ids, "type", type, "pupil", mask, "hemkommun",
                     hk ? hk : "", "kommun", hk && soffa_kommun_name(hk) ? soffa_kommun_name(hk) : "?", "what", what,
                     "why", why ? why : "", "state", state);
}

/* ---- Recording a change ------------------------------------------------------------- */

typedef struct {
    soffa_school_t *self;
    soffa_box_txn_t *t;
    bool dry;
    bool review;
    int64_t now;
    soffa_date_t today, since;
    json_t *seen;             /* ids decided in this request (hex -> true) */
    json_t *signals;          /* answer: signals handed over (or that would be) */
    json_t *skipped;          /* answer: changes not signalled, and why */
    size_t unchanged;         /* changes decided before */
    size_t pupils, other_units;
    bool queued;              /* something went to the outbox */
    soffa_err_t rc;           /* sticky */
    char why[600];
} s_run_t;

static bool
s_decided(s_run_t *r, const uint8_t id[16])
{
    char hex[SOFFA_UUID_STR];
    soffa_uuid_format(id, hex);
    if (json_object_get(r->seen, hex))
        return true;
    json_object_set_new(r->seen, hex, json_true());
    const void *v;
    size_t vl;
    return soffa_box_txn_get(r->t, r->self->t_event, id, 16, &v, &vl) == SOFFA_OK;
}

static soffa_err_t
s_put_event(s_run_t *r, const uint8_t id[16], int state, const char *why, const uint8_t *msg, size_t len)
{
    if (r->dry)
        return SOFFA_OK;
    size_t wl = why ? strlen(why) : 0;
    if (wl > 1000)
        wl = 1000;
    uint8_t *v = malloc(S_EV_HDR + wl + len);
    if (!v)
        return SOFFA_ERR_NOMEM;
    v[0] = (uint8_t) state;
    soffa_bytes_put_u64(v + 1, (uint64_t) r->now);
    v[9] = (uint8_t) (wl >> 8);
    v[10] = (uint8_t) wl;
    if (wl)
        memcpy(v + S_EV_HDR, why, wl);
    if (len)
        memcpy(v + S_EV_HDR + wl, msg, len);
    soffa_err_t rc = soffa_box_txn_put(r->t, r->self->t_event, id, 16, v, S_EV_HDR + wl + len);
    free(v);
    return rc;
}

/* Completes m (ids, times), validates and encodes it. */
static soffa_err_t
s_finish(s_run_t *r, json_t *m, const uint8_t id[16], uint32_t date, uint8_t **buf, size_t *len, char *why,
         size_t whylen)
{
    char ids[SOFFA_UUID_STR];
    soffa_uuid_format(id, ids);
    json_object_set_new(m, "message_id", json_string(ids));
    if (!json_object_get(m, "correlation_id"))
        json_object_set_new(m, "correlation_id", json_string(ids));
    json_object_set_new(m, "schema_version", json_string("1.0"));
    soffa_date_t d;
    int64_t occurred = r->now;
    if (date && soffa_date_from_int(date, &d))
        occurred = soffa_date_local_start_us(d) + 12LL * 3600 * 1000000;
    if (occurred > r->now)
        occurred = r->now;
    json_object_set_new(m, "occurred_at_us", json_integer(occurred));
    json_object_set_new(m, "sent_at_us", json_integer(r->now));
    char *text = json_dumps(m, JSON_COMPACT);
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = text ? soffa_msg_from_json(text, &msg, why, whylen) : SOFFA_ERR_NOMEM;
    free(text);
    if (rc == SOFFA_OK)
        rc = soffa_msg_validate(msg, r->now, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_msg_encode(msg, buf, len);
    soffa_msg_destroy(&msg);
    return rc;
}

/* A signal: handed over (or held) unless its change was decided before.
 * Takes m. */
static void
s_signal(s_run_t *r, const char *where, const uint8_t id[16], uint32_t date, json_t *m, const char *why)
{
    if (r->rc != SOFFA_OK || s_decided(r, id)) {
        if (r->rc == SOFFA_OK)
            r->unchanged++;
        json_decref(m);
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    char vwhy[400] = "";
    soffa_err_t rc = s_finish(r, m, id, date, &buf, &len, vwhy, sizeof vwhy);
    if (rc != SOFFA_OK) {
        r->rc = rc;
        snprintf(r->why, sizeof r->why, "%s: %s", where, vwhy[0] ? vwhy : soffa_strerror(rc));
        json_decref(m);
        return;
    }
    int state = r->review ? S_EV_HELD : S_EV_QUEUED;
    rc = s_put_event(r, id, state, why, state == S_EV_HELD ? buf : NULL, state == S_EV_HELD ? len : 0);
    if (rc == SOFFA_OK && state == S_EV_QUEUED && !r->dry) {
        uint64_t local;
        rc = soffa_box_txn_outbox_put(r->t, id, buf, len, &local);
        r->queued = true;
    }
    free(buf);
    if (rc != SOFFA_OK) {
        r->rc = rc;
        snprintf(r->why, sizeof r->why, "%s: %s", where, soffa_strerror(rc));
        json_decref(m);
        return;
    }
    const char *st = r->dry ? (r->review ? "would_hold" : "would_queue") : (r->review ? "held" : "queued");
    json_array_append_new(r->signals, s_line(id, m, NULL, why, st));
    json_decref(m);
}

/* A change soffa decided not to signal: recorded once, listed once. */
static void
s_skip(s_run_t *r, const uint8_t id[16], json_t *m, const char *what, const char *why)
{
    if (r->rc != SOFFA_OK || s_decided(r, id)) {
        json_decref(m);
        return;
    }
    soffa_err_t rc = s_put_event(r, id, S_EV_SKIPPED, why, NULL, 0);
    if (rc != SOFFA_OK) {
        r->rc = rc;
        snprintf(r->why, sizeof r->why, "%s", soffa_strerror(rc));
    } else {
        json_array_append_new(r->skipped, s_line(NULL, m, what, why, "not_signalled"));
    }
    json_decref(m);
}

/* ---- Observations ----------------------------------------------------------------- */

static json_t *
s_subject(json_t *p)
{
    return json_pack("{s:s, s:s, s:s, s:b}", "id_type", json_string_value(json_object_get(p, "id_type")), "id",
                     json_string_value(json_object_get(p, "id")), "hemkommun",
                     json_string_value(json_object_get(p, "hemkommun")), "protected_identity",
                     json_is_true(json_object_get(p, "protected")));
}

/* Checks one observation again: the agent trusts no one. */
static bool
s_check_pupil(s_run_t *r, json_t *p, const char *where)
{
    const char *id = json_string_value(json_object_get(p, "id"));
    const char *it = json_string_value(json_object_get(p, "id_type"));
    const char *hk = json_string_value(json_object_get(p, "hemkommun"));
    soffa_id_kind_t kind;
    const char *bad = NULL;
    if (!id || soffa_id_check(id, &kind) != SOFFA_OK)
        bad = "id: not a valid 12-digit personnummer or samordningsnummer";
    else if (!it || strcmp(it, kind == SOFFA_ID_SAMNR ? "SAMNR" : "PNR") != 0)
        bad = "id_type does not match the number";
    else if (!hk || soffa_kommun_check(hk) != SOFFA_OK)
        bad = "hemkommun: not one of the 290 municipality codes";
    else if (!json_is_array(json_object_get(p, "enrolments")))
        bad = "enrolments: not a list";
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(p, "enrolments"), i, e) {
        const char *u = json_string_value(json_object_get(e, "unit"));
        const char *f = json_string_value(json_object_get(e, "form"));
        const char *end = json_string_value(json_object_get(e, "end"));
        const char *rs = json_string_value(json_object_get(e, "reason"));
        const char *pg = json_string_value(json_object_get(e, "programme"));
        if (bad)
            break;
        if (!u || (u[0] && strcmp(u, "-") && soffa_skolenhet_check(u) != SOFFA_OK) || !f
            || (strcmp(f, "GY") && strcmp(f, "ANP_GY")) || !s_dint(json_string_value(json_object_get(e, "start")))
            || !end || (end[0] && !s_dint(end)) || !json_is_boolean(json_object_get(e, "cancelled")) || !rs
            || (rs[0] && !s_reason_ok(rs)) || (pg && strlen(pg) > 16))
            bad = "enrolments: an enrolment is malformed";
    }
    json_array_foreach(json_object_get(p, "absence"), i, e) {
        json_int_t s = json_integer_value(json_object_get(e, "scheduled")), v = json_integer_value(json_object_get(e, "invalid"));
        uint32_t f = s_dint(json_string_value(json_object_get(e, "from"))), t = s_dint(json_string_value(json_object_get(e, "to")));
        if (!bad && (!f || !t || f > t || s < 0 || v < 0 || v > s))
            bad = "absence: a period is malformed";
    }
    if (bad) {
        r->rc = SOFFA_ERR_BAD_FIELD;
        snprintf(r->why, sizeof r->why, "%s: %s", where, bad);
        return false;
    }
    return true;
}

static json_t *
s_enrol_msg(json_t *p, const char *event, const char *date, const char *unit, json_t *e, const char *reason)
{
    json_t *pl = json_pack("{s:s, s:s, s:s, s:s}", "event", event, "effective_date", date, "school_unit", unit,
                           "school_form", json_string_value(json_object_get(e, "form")));
    const char *prog = json_string_value(json_object_get(e, "programme"));
    if (prog && prog[0])
        json_object_set_new(pl, "programme_code", json_string(prog));
    if (reason)
        json_object_set_new(pl, "leave_reason", json_string(reason));
    return json_pack("{s:o, s:s, s:o}", "subject", s_subject(p), "legal_basis", "SL_15_15_ENROLMENT",
                     "enrolment_changed", pl);
}

static int64_t
s_days(const char *date)
{
    soffa_date_t d;
    return soffa_date_parse(date, &d) ? soffa_date_to_days(d) : 0;
}

/* Why the pupil left, where the data tells it. */
static const char *
s_leave_reason(s_run_t *r, json_t *p, json_t *e, const char *prev_hk)
{
    const char *given = json_string_value(json_object_get(e, "reason"));
    const char *status = json_string_value(json_object_get(p, "status"));
    const char *hk = json_string_value(json_object_get(p, "hemkommun"));
    if (given && given[0])
        return given;
    if (status && !strcmp(status, "Utvandrad"))
        return "MOVED";
    if (status && !strcmp(status, "Avliden"))
        return "OTHER";
    if (prev_hk && strcmp(prev_hk, hk) != 0)
        return "MOVED";
    if (json_is_true(json_object_get(e, "cancelled")))
        return "UNKNOWN";
    int64_t end = s_days(json_string_value(json_object_get(e, "end")));
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(p, "enrolments"), i, o) {
        if (o == e || json_is_true(json_object_get(o, "cancelled")))
            continue;
        int64_t st = s_days(json_string_value(json_object_get(o, "start")));
        if (end && st >= end && st - end <= r->self->cfg.transfer_days)
            return "TRANSFER";
    }
    return "UNKNOWN";
}

static int
s_cmpd(const char *a, const char *b)
{
    return strcmp(a, b);   /* YYYY-MM-DD sorts as it reads */
}

/* One enrolment at this unit: STARTED and LEFT as the rules say (see the
 * header), and its state updated in `st` (the pupil's record). */
static void
s_enrolment(s_run_t *r, json_t *p, json_t *e, json_t *st, const char *prev_hk, bool other, const char *where)
{
    const soffa_school_cfg_t *c = &r->self->cfg;
    const char *id = json_string_value(json_object_get(p, "id"));
    const char *form = json_string_value(json_object_get(e, "form"));
    const char *start = json_string_value(json_object_get(e, "start"));
    const char *end = json_string_value(json_object_get(e, "end"));
    bool cancelled = json_is_true(json_object_get(e, "cancelled"));
    char today[11], since[11], key[64], canon[128];
    soffa_date_format(r->today, today);
    soffa_date_format(r->since, since);
    snprintf(key, sizeof key, "%s|%s|%s", c->school_unit, form, start);
    json_t *es = json_object_get(st, "e");
    json_t *prev = json_object_get(es, key);
    uint8_t sid[16], lid[16];
    snprintf(canon, sizeof canon, "enrolment|%s|%s|STARTED", id, key);
    s_event_id(r->self, canon, s_dint(start), sid);
    snprintf(canon, sizeof canon, "enrolment|%s|%s|LEFT", id, key);
    s_event_id(r->self, canon, s_dint(start), lid);
    static const char *const own = "huvudmannen är elevens hemkommun: SL 15 kap. 15 § kräver ingen signal om in- "
                                   "och utskrivning";

    /* STARTED: the start date has come, not cancelled, within watch. */
    if (!cancelled && s_cmpd(start, today) <= 0 && s_cmpd(start, since) >= 0) {
        json_t *m = s_enrol_msg(p, "STARTED", start, c->school_unit, e, NULL);
        if (other)
            s_signal(r, where, sid, s_dint(start), m, "ny inskrivning; hemkommunen är inte huvudman för skolan "
                                                       "(SL 15 kap. 15 §)");
        else
            s_skip(r, sid, m, NULL, own);
    }

    /* LEFT: cancelled, or ended before the end seen earlier. */
    const char *pe = json_string_value(json_object_get(prev, "pe"));
    bool early_seen = json_is_true(json_object_get(prev, "early"));
    bool was_cancelled = json_is_true(json_object_get(prev, "c"));
    bool ended = end[0] && s_cmpd(end, today) <= 0;
    const char *why = NULL, *eff = NULL;
    char wbuf[200];
    bool completion = false;
    if (cancelled) {
        if (prev && !was_cancelled) {
            why = "inskrivningen har makulerats";
            eff = end[0] && s_cmpd(end, today) <= 0 ? end : today;
        } else if (!prev) {
            eff = end[0] ? end : start;
            if (s_cmpd(eff, today) > 0)
                eff = today;
            if (s_cmpd(eff, since) >= 0)
                why = "inskrivningen är makulerad";
        }
    } else if (ended) {
        eff = end;
        if (!prev) {
            if (s_cmpd(start, since) >= 0 && s_cmpd(end, since) >= 0)
                why = "inskrivningen började och slutade sedan förra läsningen";
        } else if (!pe || !pe[0]) {
            why = "inskrivningen hade inget slutdatum och har nu avslutats";
        } else if (early_seen || s_cmpd(end, pe) < 0) {
            snprintf(wbuf, sizeof wbuf, "slutdatumet har flyttats från %s till %s", pe, end);
            why = wbuf;
        } else if (s_cmpd(end, since) >= 0) {
            completion = true;
        }
    }
    if (why || completion) {
        const char *reason = s_leave_reason(r, p, e, prev_hk);
        json_t *m = s_enrol_msg(p, "LEFT", eff, c->school_unit, e, reason);
        if (completion)
            s_skip(r, lid, m, NULL, "eleven slutade på det planerade slutdatumet (fullföljd utbildning är ingen "
                                    "avbrottssignal)");
        else if (other)
            s_signal(r, where, lid, s_dint(start), m, why);
        else
            s_skip(r, lid, m, NULL, own);
    }

    /* What to remember: the planned end, whether it was ever moved earlier,
     * and whether the enrolment was cancelled. */
    json_t *ns = json_object();
    bool early = early_seen;
    const char *npe = pe ? pe : "";
    if (!ended && end[0]) {
        if (pe && pe[0] && s_cmpd(end, pe) < 0)
            early = true;
        else if (pe && pe[0] && s_cmpd(end, pe) > 0)
            early = false;
        npe = end;
    } else if (!prev && end[0]) {
        npe = end;
    }
    json_object_set_new(ns, "pe", json_string(npe));
    json_object_set_new(ns, "early", json_boolean(early));
    json_object_set_new(ns, "c", json_boolean(cancelled));
    json_object_set_new(es, key, ns);
}

/* Absence: the band a period reached, signalled once per period and band;
 * a higher band covers the lower ones. */
static void
s_absence(s_run_t *r, json_t *p, json_t *a, const char *where)
{
    const soffa_school_cfg_t *c = &r->self->cfg;
    json_int_t sched = json_integer_value(json_object_get(a, "scheduled"));
    json_int_t inval = json_integer_value(json_object_get(a, "invalid"));
    const char *from = json_string_value(json_object_get(a, "from")), *to = json_string_value(json_object_get(a, "to"));
    char since[11];
    soffa_date_format(r->since, since);
    if (sched < c->absence_min_minutes || sched <= 0 || s_cmpd(to, since) < 0)
        return;
    int64_t pct10 = (int64_t) inval * 1000 / sched;   /* tenths of a percent */
    static const char *const bands[] = {"SIGNIFICANT", "EXTENSIVE", "TOTAL"};
    int64_t limits[] = {c->absence_significant, c->absence_extensive, c->absence_total};
    int band = -1;
    for (int b = 0; b < 3; b++)
        if (pct10 >= limits[b] * 10)
            band = b;
    if (band < 0)
        return;
    const char *id = json_string_value(json_object_get(p, "id"));
    char canon[128], why[300];
    uint8_t eid[16];
    snprintf(canon, sizeof canon, "absence|%s|%s|%s|%s", id, c->school_unit, from, bands[band]);
    s_event_id(r->self, canon, s_dint(from), eid);
    snprintf(why, sizeof why, "ogiltig frånvaro %lld,%lld %% av %lld schemalagda minuter (gränsen för %s är %lld %%)",
             (long long) (pct10 / 10), (long long) (pct10 % 10), (long long) sched, s_band_sv(bands[band]),
             (long long) limits[band]);
    json_t *m = json_pack("{s:o, s:s, s:{s:s, s:s, s:s, s:b, s:s}}", "subject", s_subject(p), "legal_basis",
                          "SL_15_15_ABSENCE", "absence_reported", "period_from", from, "period_to", to,
                          "unexcused_band", bands[band], "investigation_started", 0, "school_unit", c->school_unit);
    soffa_date_t birth, on;
    if (soffa_id_birth_date(id, &birth) == SOFFA_OK && soffa_date_parse(from, &on) && soffa_date_age(birth, on) >= 20) {
        s_skip(r, eid, m, NULL, "eleven hade fyllt 20 år: SL 15 kap. 15 § gäller elever under 20");
        return;
    }
    bool fresh = !s_decided(r, eid);
    if (fresh) {
        /* s_decided marked it; let s_signal decide it for real. */
        char hex[SOFFA_UUID_STR];
        soffa_uuid_format(eid, hex);
        json_object_del(r->seen, hex);
    }
    s_signal(r, where, eid, s_dint(from), m, why);
    for (int b = 0; fresh && b < band && r->rc == SOFFA_OK; b++) {
        uint8_t lower[16];
        snprintf(canon, sizeof canon, "absence|%s|%s|%s|%s", id, c->school_unit, from, bands[b]);
        s_event_id(r->self, canon, s_dint(from), lower);
        if (!s_decided(r, lower)) {
            soffa_err_t rc = s_put_event(r, lower, S_EV_IMPLIED, "en högre nivå har signalerats", NULL, 0);
            if (rc != SOFFA_OK) {
                r->rc = rc;
                snprintf(r->why, sizeof r->why, "%s", soffa_strerror(rc));
            }
        }
    }
}

static void
s_pupil(s_run_t *r, json_t *p)
{
    const soffa_school_cfg_t *c = &r->self->cfg;
    const char *where = json_string_value(json_object_get(p, "where"));
    if (!where)
        where = "?";
    if (!s_check_pupil(r, p, where))
        return;
    r->pupils++;
    const char *id = json_string_value(json_object_get(p, "id"));
    const char *hk = json_string_value(json_object_get(p, "hemkommun"));
    uint8_t pk[16];
    s_hash16(r->self, "pupil", id, pk);
    const void *v;
    size_t vl;
    json_t *st = NULL;
    if (soffa_box_txn_get(r->t, r->self->t_pupil, pk, 16, &v, &vl) == SOFFA_OK)
        st = json_loadb(v, vl, 0, NULL);
    if (!json_is_object(st)) {
        json_decref(st);
        st = json_pack("{s:s, s:s, s:{}}", "id", id, "hk", hk, "e");
    }
    char prev_hk[8];
    snprintf(prev_hk, sizeof prev_hk, "%s", json_string_value(json_object_get(st, "hk")) ? json_string_value(json_object_get(st, "hk")) : hk);
    if (!json_is_object(json_object_get(st, "e")))
        json_object_set_new(st, "e", json_object());
    bool other = !strcmp(c->principal_kommun, "none") || strcmp(hk, c->principal_kommun) != 0;
    bool ours = false;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(p, "enrolments"), i, e) {
        const char *u = json_string_value(json_object_get(e, "unit"));
        if (u[0] && strcmp(u, c->school_unit) != 0) {
            r->other_units++;
            continue;
        }
        ours = true;
        char w[400];
        snprintf(w, sizeof w, "%s.enrolments[%zu]", where, i);
        s_enrolment(r, p, e, st, prev_hk, other, w);
    }
    json_t *a;
    json_array_foreach(json_object_get(p, "absence"), i, a) {
        if (!ours)
            break;   /* absence is reported by the school the pupil is enrolled at */
        char w[400];
        snprintf(w, sizeof w, "%s.absence[%zu]", where, i);
        s_absence(r, p, a, w);
    }
    json_object_set_new(st, "hk", json_string(hk));
    if (!r->dry && r->rc == SOFFA_OK) {
        char *text = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
        soffa_err_t rc = text ? soffa_box_txn_put(r->t, r->self->t_pupil, pk, 16, text, strlen(text)) : SOFFA_ERR_NOMEM;
        free(text);
        if (rc != SOFFA_OK) {
            r->rc = rc;
            snprintf(r->why, sizeof r->why, "%s", soffa_strerror(rc));
        }
    }
    json_decref(st);
}

/* ---- Requests --------------------------------------------------------------------- */

typedef struct {
    s_run_t run;
    json_t *req;
    const char *cmd;
} s_job_t;

/* The date before which nothing is signalled: the request's, the
 * configuration's, or the one recorded at the first import (recorded now
 * if this is it). */
static soffa_err_t
s_since(s_run_t *r, json_t *req)
{
    const char *given = json_string_value(json_object_get(req, "since"));
    if (given && given[0]) {
        if (!soffa_date_parse(given, &r->since)) {
            r->rc = SOFFA_ERR_BAD_FIELD;
            snprintf(r->why, sizeof r->why, "since: not a date YYYY-MM-DD");
            return r->rc;
        }
        return SOFFA_OK;
    }
    if (r->self->cfg.since[0] && soffa_date_parse(r->self->cfg.since, &r->since))
        return SOFFA_OK;
    const void *v;
    size_t vl;
    if (soffa_box_txn_get(r->t, r->self->t_meta, "since", 5, &v, &vl) == SOFFA_OK && vl == 4) {
        const uint8_t *b = v;
        soffa_date_from_int((uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3], &r->since);
        return SOFFA_OK;
    }
    r->since = r->today;
    if (r->dry)
        return SOFFA_OK;
    uint8_t b[4];
    soffa_bytes_put_u32(b, soffa_date_to_int(r->today));
    return soffa_box_txn_put(r->t, r->self->t_meta, "since", 5, b, 4);
}

static soffa_err_t
s_job(void *ctx, soffa_box_txn_t *t)
{
    s_job_t *j = ctx;
    s_run_t *r = &j->run;
    r->t = t;
    if (!strcmp(j->cmd, "school-observe")) {
        if (s_since(r, j->req) != SOFFA_OK)
            return r->rc ? r->rc : SOFFA_ERR_STORE_IO;
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(j->req, "pupils"), i, p) {
            if (r->rc != SOFFA_OK)
                break;
            if (!json_is_object(p)) {
                r->rc = SOFFA_ERR_MALFORMED;
                snprintf(r->why, sizeof r->why, "pupils[%zu]: not an object", i);
                break;
            }
            s_pupil(r, p);
        }
    } else {
        /* school-submit: signals a person listed, ids from their content. */
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(j->req, "messages"), i, s) {
            if (r->rc != SOFFA_OK)
                break;
            const char *where = json_string_value(json_object_get(s, "where"));
            json_t *m = json_object_get(s, "message");
            if (!json_is_object(m) || json_object_get(m, "message_id")) {
                r->rc = SOFFA_ERR_MALFORMED;
                snprintf(r->why, sizeof r->why, "%s: a message object without ids, please", where ? where : "?");
                break;
            }
            char *canon = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
            uint32_t date = 0;
            const char *k;
            json_t *pl;
            json_object_foreach(m, k, pl) {
                if (soffa_msg_type_from_name(k) == SOFFA_MT_NONE || !json_is_object(pl))
                    continue;
                date = s_dint(json_string_value(json_object_get(pl, "effective_date")));
                if (!date)
                    date = s_dint(json_string_value(json_object_get(pl, "period_from")));
            }
            uint8_t id[16];
            s_event_id(r->self, canon ? canon : "", date, id);
            free(canon);
            s_signal(r, where ? where : "?", id, date, json_deep_copy(m), "rad i den importerade filen");
        }
    }
    return r->rc;
}

static json_t *
s_run_answer(s_run_t *r)
{
    return json_pack("{s:b, s:b, s:b, s:O, s:O, s:I, s:I, s:I}", "ok", 1, "dry_run", r->dry, "review", r->review,
                     "signals", r->signals, "not_signalled", r->skipped, "unchanged", (json_int_t) r->unchanged,
                     "pupils", (json_int_t) r->pupils, "other_units", (json_int_t) r->other_units);
}

static json_t *
s_observe_or_submit(soffa_school_t *self, const char *cmd, json_t *req, bool *queued)
{
    bool observe = !strcmp(cmd, "school-observe");
    if (observe && (!self->cfg.principal_kommun[0] || !self->cfg.school_unit[0]))
        return s_fail(SOFFA_ERR_CONFIG, "this agent's configuration has no [school] principal_kommun and school_unit: "
                                        "set them in agent.ini (see config/agent.ini) and restart the agent");
    if (!json_is_array(json_object_get(req, observe ? "pupils" : "messages")))
        return s_fail(SOFFA_ERR_MALFORMED, observe ? "school-observe needs \"pupils\": [...]"
                                                   : "school-submit needs \"messages\": [...]");
    s_job_t j = {{.self = self, .dry = json_is_true(json_object_get(req, "dry_run")), .review = self->cfg.review,
                  .now = soffa_now_us()},
                 req, cmd};
    s_run_t *r = &j.run;
    r->today = soffa_date_today();
    const char *today = json_string_value(json_object_get(req, "today"));
    soffa_date_t t;
    if (today && today[0]) {
        if (!soffa_date_parse(today, &t) || soffa_date_cmp(t, r->today) > 0)
            return s_fail(SOFFA_ERR_BAD_FIELD, "today: a date YYYY-MM-DD, not later than today");
        r->today = t;
    }
    r->seen = json_object();
    r->signals = json_array();
    r->skipped = json_array();
    soffa_err_t rc = r->dry ? soffa_box_read(self->box, s_job, &j) : soffa_box_write(self->box, s_job, &j);
    json_t *answer;
    if (rc != SOFFA_OK) {
        answer = s_fail(rc, r->why[0] ? r->why : soffa_strerror(rc));
        soffa_warn("school import refused, nothing recorded: %s", soffa_errname(rc));
    } else {
        answer = s_run_answer(r);
        *queued = r->queued;
        if (!r->dry && json_array_size(r->signals))
            soffa_info("school import: %zu signal(s) %s, %zu change(s) not signalled, %zu seen before",
                       json_array_size(r->signals), r->review ? "held for approval" : "queued",
                       json_array_size(r->skipped), r->unchanged);
    }
    json_decref(r->seen);
    json_decref(r->signals);
    json_decref(r->skipped);
    return answer;
}

/* ---- Review: pending, approve, reject ------------------------------------------------ */

typedef struct {
    soffa_school_t *self;
    soffa_box_txn_t *t;
    const char *want;          /* NULL = list; "all"; or an id or its prefix (hex) */
    int to_state;              /* S_EV_QUEUED or S_EV_REJECTED */
    json_t *list;
    json_t *ids;               /* matching ids, as UUID text */
    bool queued;
    soffa_err_t rc;
    char why[300];
} s_review_t;

/* A signal is named by its whole id or by its last characters (at least 8:
 * the first ones of a UUIDv7 are the date, shared by many). */
static bool
s_id_match(const uint8_t id[16], const char *want)
{
    if (!strcmp(want, "all"))
        return true;
    char full[SOFFA_UUID_STR], plain[33], w[64];
    soffa_uuid_format(id, full);
    size_t o = 0;
    for (const char *p = full; *p; p++)
        if (*p != '-')
            plain[o++] = *p;
    plain[o] = '\0';
    o = 0;
    for (const char *p = want; *p && o + 1 < sizeof w; p++)
        if (*p != '-')
            w[o++] = (char) (*p >= 'A' && *p <= 'F' ? *p + 32 : *p);
    w[o] = '\0';
    return o >= 8 && o <= 32 && !strcmp(plain + 32 - o, w);
}

static int
s_review_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    s_review_t *rv = ctx;
    const uint8_t *v = val;
    if (klen != 16 || vlen < S_EV_HDR || v[0] != S_EV_HELD)
        return 0;
    size_t wl = (size_t) v[9] << 8 | v[10];
    if (S_EV_HDR + wl > vlen)
        return 0;
    if (rv->want && !s_id_match(key, rv->want))
        return 0;
    soffa_msg_t *msg = NULL;
    if (soffa_msg_decode(v + S_EV_HDR + wl, vlen - S_EV_HDR - wl, &msg) != SOFFA_OK)
        return 0;
    char *text = soffa_msg_to_json(msg);
    json_t *m = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    soffa_msg_destroy(&msg);
    char why[1024];
    snprintf(why, sizeof why, "%.*s", (int) wl, (const char *) v + S_EV_HDR);
    char at[32];
    soffa_time_format_local((int64_t) soffa_bytes_get_u64(v + 1), at);
    json_t *line = s_line(key, m, NULL, why, "held");
    json_object_set_new(line, "derived_at", json_string(at));
    json_array_append_new(rv->list, line);
    char hex[SOFFA_UUID_STR];
    soffa_uuid_format(key, hex);
    json_array_append_new(rv->ids, json_string(hex));
    json_decref(m);
    return 0;
}

static soffa_err_t
s_review_job(void *ctx, soffa_box_txn_t *t)
{
    s_review_t *rv = ctx;
    rv->t = t;
    soffa_err_t rc = soffa_box_txn_scan(t, rv->self->t_event, s_review_one, rv);
    if (rc != SOFFA_OK || !rv->to_state)
        return rc;
    if (json_array_size(rv->ids) == 0) {
        snprintf(rv->why, sizeof rv->why, "no signal waiting for approval matches '%s' (soffa pending lists them)",
                 rv->want);
        return SOFFA_ERR_NOT_FOUND;
    }
    if (json_array_size(rv->ids) > 1 && strcmp(rv->want, "all") != 0) {
        snprintf(rv->why, sizeof rv->why, "'%s' matches %zu signals; give more of the id", rv->want,
                 json_array_size(rv->ids));
        return SOFFA_ERR_BAD_FIELD;
    }
    size_t i;
    json_t *k;
    json_array_foreach(rv->ids, i, k) {
        uint8_t id[16];
        if (!soffa_uuid_parse(json_string_value(k), id))
            return SOFFA_ERR_INTERNAL;
        const void *val;
        size_t vlen;
        if ((rc = soffa_box_txn_get(t, rv->self->t_event, id, 16, &val, &vlen)) != SOFFA_OK)
            return rc;
        uint8_t *copy = malloc(vlen);
        if (!copy)
            return SOFFA_ERR_NOMEM;
        memcpy(copy, val, vlen);
        size_t wl = (size_t) copy[9] << 8 | copy[10];
        rc = SOFFA_OK;
        if (rv->to_state == S_EV_QUEUED) {
            uint64_t local;
            rc = soffa_box_txn_outbox_put(t, id, copy + S_EV_HDR + wl, vlen - S_EV_HDR - wl, &local);
            rv->queued = true;
        }
        copy[0] = (uint8_t) rv->to_state;
        soffa_bytes_put_u64(copy + 1, (uint64_t) soffa_now_us());
        if (rc == SOFFA_OK)   /* the message itself is not kept once decided */
            rc = soffa_box_txn_put(t, rv->self->t_event, id, 16, copy, S_EV_HDR + wl);
        free(copy);
        if (rc != SOFFA_OK)
            return rc;
    }
    return SOFFA_OK;
}

static json_t *
s_review(soffa_school_t *self, const char *cmd, json_t *req, bool *queued)
{
    s_review_t rv = {.self = self, .list = json_array(), .ids = json_array()};
    soffa_err_t rc;
    if (!strcmp(cmd, "school-pending")) {
        rc = soffa_box_read(self->box, s_review_job, &rv);
    } else {
        rv.want = json_string_value(json_object_get(req, "id"));
        rv.to_state = !strcmp(cmd, "school-approve") ? S_EV_QUEUED : S_EV_REJECTED;
        if (!rv.want || !rv.want[0]) {
            json_decref(rv.list);
            json_decref(rv.ids);
            return s_fail(SOFFA_ERR_MISSING_FIELD, "give the id of a signal (soffa pending lists them) or all");
        }
        rc = soffa_box_write(self->box, s_review_job, &rv);
    }
    json_t *a;
    if (rc != SOFFA_OK) {
        a = s_fail(rc, rv.why[0] ? rv.why : soffa_strerror(rc));
    } else {
        a = json_pack("{s:b, s:O}", "ok", 1, "signals", rv.list);
        *queued = rv.queued;
        if (rv.to_state)
            soffa_info("%zu signal(s) %s by a person", json_array_size(rv.ids),
                       rv.to_state == S_EV_QUEUED ? "approved and queued" : "rejected");
    }
    json_decref(rv.list);
    json_decref(rv.ids);
    return a;
}

/* ---- Control and the poll ------------------------------------------------------------- */

json_t *
soffa_school_control(soffa_school_t *self, const char *cmd, json_t *req, bool *queued)
{
    *queued = false;
    if (!strcmp(cmd, "school-config")) {
        const soffa_school_cfg_t *c = &self->cfg;
        return json_pack("{s:b, s:b, s:s, s:s, s:b, s:s, s:{s:s, s:s, s:s, s:I, s:I, s:I, s:b}}", "ok", 1,
                         "configured", c->principal_kommun[0] && c->school_unit[0], "principal_kommun",
                         c->principal_kommun, "school_unit", c->school_unit, "review", c->review, "since", c->since,
                         "ss12000", "url", c->url, "token_file", c->token_file, "ca_file", c->ca_file, "timeout_ms",
                         (json_int_t) c->timeout_ms, "page_size", (json_int_t) c->page_size, "interval_ms",
                         (json_int_t) c->interval_ms, "attendance", c->attendance);
    }
    if (!strcmp(cmd, "school-observe") || !strcmp(cmd, "school-submit"))
        return s_observe_or_submit(self, cmd, req, queued);
    if (!strcmp(cmd, "school-pending") || !strcmp(cmd, "school-approve") || !strcmp(cmd, "school-reject"))
        return s_review(self, cmd, req, queued);
    return s_fail(SOFFA_ERR_INVALID_ARG, "unknown school command");
}

void
soffa_school_tick(soffa_school_t *self)
{
    if (!self)
        return;
    int64_t now = soffa_mono_us();
    if (self->sync_pid > 0) {
        int status;
        pid_t r = waitpid(self->sync_pid, &status, WNOHANG);
        int64_t limit = (self->cfg.timeout_ms * 20 > 600000 ? self->cfg.timeout_ms * 20 : 600000) * 1000;
        if (r == 0 && now - self->sync_started > limit) {
            kill(self->sync_pid, SIGKILL);
            waitpid(self->sync_pid, &status, 0);
            soffa_warn("SS 12000 sync ran too long and was stopped; see %s/sync.log", self->data_dir);
            r = self->sync_pid;
        } else if (r == self->sync_pid) {
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                soffa_info("SS 12000 sync done (%lld ms)", (long long) ((now - self->sync_started) / 1000));
            else
                soffa_warn("SS 12000 sync failed (exit %d); nothing of it was recorded; see %s/sync.log",
                           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), self->data_dir);
        }
        if (r != 0)
            self->sync_pid = 0;
        return;
    }
    if (!self->cfg.url[0] || self->cfg.interval_ms <= 0 || now < self->next_sync)
        return;
    self->next_sync = now + self->cfg.interval_ms * 1000;
    char log[1100];
    snprintf(log, sizeof log, "%s/sync.log", self->data_dir);
    pid_t pid = fork();
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (in >= 0)
            dup2(in, 0);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        execl(self->soffa_bin, self->soffa_bin, "--socket", self->control, "sync", "ss12000", (char *) NULL);
        _exit(127);
    }
    if (pid < 0) {
        soffa_error("cannot start the SS 12000 sync: %s", strerror(errno));
        return;
    }
    self->sync_pid = pid;
    self->sync_started = now;
    soffa_debug("SS 12000 sync started (pid %d)", (int) pid);
}
