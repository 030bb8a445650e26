/*  soffa_agent: the agent daemon's configuration, its start, its one event
 *  loop and its end. The work is done by the modules the loop calls, which
 *  share struct soffa_agent (soffa_agent_int.h):
 *    soffa_agent_session   the session with the broker, its states and frames
 *    soffa_agent_outbox    what this agent sends, durable before it is answered
 *    soffa_agent_inbox     what is delivered, durable before it is acknowledged
 *    soffa_agent_hook      the hook each delivered message is fed to
 *    soffa_agent_control   the command line's control socket and its command table
 *    soffa_agent_web       soffa-web's restricted control socket
 *    soffa_agent_reply     answers to control requests, now or when they are due
 *
 *  Durability order, in both directions:
 *    - a message from the command line is committed to the outbox before the
 *      command is answered, and leaves the outbox only when the broker has
 *      acknowledged it (or refused it for good);
 *    - a delivery is committed to the inbox before it is acknowledged to the
 *      broker; redelivered sequences are dropped.
 *
 *  One event loop (soffa_agent_run) does all the agent's work; signals only
 *  set the flag it checks.
 */
#include "soffa_agent_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_agent_control.h"
#include "soffa_agent_hook.h"
#include "soffa_agent_metrics.h"
#include "soffa_agent_outbox.h"
#include "soffa_agent_reply.h"
#include "soffa_agent_session.h"
#include "soffa_agent_web.h"
#include "soffa_cfg.h"
#include "soffa_keys.h"
#include "soffa_log.h"
#include "soffa_notify.h"
#include "soffa_prom.h"
#include "soffa_time.h"

/* ---- Configuration ------------------------------------------------------------- */

static const soffa_cfg_key_t s_keys[] = {
    {"name", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_agent_cfg_t, name), SOFFA_NAME_MAX, "this agent's name, as in the broker's [agent NAME]"},
    {"broker", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_agent_cfg_t, broker), 512, "the broker's endpoint, e.g. tcp://broker:5570; during a key rotation several, comma-separated"},
    {"broker_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_agent_cfg_t, broker_key), 512, "the broker's public key (Z85) or its .pub file; during a key rotation the new and the old, comma-separated"},
    {"key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_agent_cfg_t, key), 512, "this agent's key file from 'soffa keygen'"},
    {"data_dir", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_agent_cfg_t, data_dir), 512, "directory of the outbox and inbox"},
    {"control", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_agent_cfg_t, control), 512, "control socket path (default DATA_DIR/control.sock)"},
    {"log_level", SOFFA_CFG_STR, "info", 0, 0, offsetof(soffa_agent_cfg_t, log_level), 16, "debug, info, warn or error"},
    {"window", SOFFA_CFG_INT, "64", 1, 1024, offsetof(soffa_agent_cfg_t, window), 0, "deliveries in flight from the broker"},
    {"heartbeat_ms", SOFFA_CFG_INT, "1000", 100, 60000, offsetof(soffa_agent_cfg_t, heartbeat_ms), 0, "how often the agent pings the broker"},
    {"reconnect_max_ms", SOFFA_CFG_INT, "5000", 100, 600000, offsetof(soffa_agent_cfg_t, reconnect_max_ms), 0, "ceiling of the reconnect backoff"},
    {"hook", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_agent_cfg_t, hook), 1024, "command run for each delivered message (JSON on stdin)"},
    {"hook_retries", SOFFA_CFG_INT, "5", 1, 1000, offsetof(soffa_agent_cfg_t, hook_retries), 0, "failures before a message is parked"},
    {"hook_backoff_ms", SOFFA_CFG_INT, "1000", 10, 3600000, offsetof(soffa_agent_cfg_t, hook_backoff_ms), 0, "first wait after a failed hook (doubles)"},
    {"hook_timeout_ms", SOFFA_CFG_INT, "30000", 100, 3600000, offsetof(soffa_agent_cfg_t, hook_timeout_ms), 0, "a hook running longer is stopped and counts as failed"},
    {"hook_log_max", SOFFA_CFG_SIZE, "10MiB", 64 * 1024, (int64_t) 1 << 32, offsetof(soffa_agent_cfg_t, hook_log_max), 0, "DATA_DIR/hook.log moves to hook.log.1 when it reaches this"},
    {"map_size", SOFFA_CFG_SIZE, "256MiB", 1024 * 1024, (int64_t) 1 << 40, offsetof(soffa_agent_cfg_t, map_size), 0, "largest size of the agent's store"},
    {"signal_ack_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(soffa_agent_cfg_t, signal_ack_due), 0, "a signal not acknowledged within this is overdue"},
    {"referral_receipt_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(soffa_agent_cfg_t, referral_receipt_due), 0, "a referral not received within this is overdue"},
    {"master_key", SOFFA_CFG_STR, "master.key", 0, 0, offsetof(soffa_agent_cfg_t, master_key), 512, "the master key the store is sealed under (soffa masterkey new), or credential:NAME; never inside data_dir"},
};

/* [retention]: the broker's rules, for this site's own copies. */
static const soffa_cfg_key_t s_retention_keys[] = {
    {"school_signals", SOFFA_CFG_STR, "183d from message", 0, 0, offsetof(soffa_agent_cfg_t, retention[SOFFA_RC_SCHOOL_SIGNALS]), 64, "how long school signals are kept, from what"},
    {"kaa_journal", SOFFA_CFG_STR, "365d from closure", 0, 0, offsetof(soffa_agent_cfg_t, retention[SOFFA_RC_KAA_JOURNAL]), 64, "how long the KAA journal is kept, from what"},
    {"referrals", SOFFA_CFG_STR, "365d from message", 0, 0, offsetof(soffa_agent_cfg_t, retention[SOFFA_RC_REFERRALS]), 64, "how long referrals are kept, from what"},
    {"concern_reports", SOFFA_CFG_STR, "90d from message", 0, 0, offsetof(soffa_agent_cfg_t, retention[SOFFA_RC_CONCERN_REPORTS]), 64, "how long concern reports are kept, from what"},
    {"access_records", SOFFA_CFG_STR, "730d from message", 0, 0, offsetof(soffa_agent_cfg_t, retention[SOFFA_RC_ACCESS_RECORDS]), 64, "how long the site's access log is kept"},
    {"run_every", SOFFA_CFG_DURATION, "1d", 1000, 366LL * 86400000, offsetof(soffa_agent_cfg_t, retention_every), 0, "how often this site's copies are disposed of (also at start)"},
};

static const soffa_cfg_key_t s_metrics_keys[] = {
    {"listen", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_agent_cfg_t, metrics_listen), 128, "HOST:PORT (loopback) of the Prometheus endpoint /metrics; empty: off"},
};

/* ---- Configuration ---------------------------------------------------------------- */

static soffa_err_t
s_retention_load(soffa_agent_t *self, char *why, size_t whylen)
{
    soffa_retention_defaults(&self->retention);
    for (int c = 1; c < SOFFA_RC_COUNT; c++) {
        char rwhy[300];
        if (!soffa_retention_parse(self->cfg.retention[c], &self->retention.rules[c], rwhy, sizeof rwhy)) {
            snprintf(why, whylen, "%s: [retention] %s: %s", self->config_path,
                     soffa_retention_class_name((soffa_retention_class_t) c), rwhy);
            return SOFFA_ERR_CONFIG;
        }
    }
    self->retention.run_every_ms = self->cfg.retention_every;
    return SOFFA_OK;
}

/* Splits a comma-separated list (blanks around entries allowed) into at
 * most SOFFA_AGENT_BROKER_ALTS entries of size len; returns how many, or
 * -1 when an entry is empty, too long, or there are too many. */
static int
s_split(const char *list, char *out, size_t len)
{
    int n = 0;
    for (const char *p = list;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t l = strcspn(p, ",");
        size_t e = l;
        while (e && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (!e || e >= len || n == SOFFA_AGENT_BROKER_ALTS)
            return -1;
        snprintf(out + (size_t) n * len, len, "%.*s", (int) e, p);
        n++;
        p += l;
        if (!*p)
            return n;
        p++;
    }
}

/* broker and broker_key: one or several each (a key rotation). */
static soffa_err_t
s_broker_alts(soffa_agent_t *self, const char *config_path, char *why, size_t whylen)
{
    int nb = s_split(self->cfg.broker, &self->brokers[0][0], sizeof self->brokers[0]);
    if (nb < 0) {
        snprintf(why, whylen, "%s: broker must list 1 to %d endpoints, comma-separated", config_path,
                 SOFFA_AGENT_BROKER_ALTS);
        return SOFFA_ERR_CONFIG;
    }
    char keys[SOFFA_AGENT_BROKER_ALTS][512];
    int nk = s_split(self->cfg.broker_key, &keys[0][0], sizeof keys[0]);
    if (nk < 0) {
        snprintf(why, whylen, "%s: broker_key must list 1 to %d keys, comma-separated", config_path,
                 SOFFA_AGENT_BROKER_ALTS);
        return SOFFA_ERR_CONFIG;
    }
    for (int i = 0; i < nk; i++) {
        char path[1024];
        if (soffa_keys_valid_z85(keys[i])) {
            memcpy(self->broker_keys[i], keys[i], 41);
        } else if (!soffa_cfg_path(config_path, keys[i], path, sizeof path)
                   || soffa_keys_load_public(path, self->broker_keys[i]) != SOFFA_OK) {
            snprintf(why, whylen, "%s: broker_key '%.100s' is neither a Z85 key nor a readable key file", config_path,
                     keys[i]);
            return SOFFA_ERR_CONFIG;
        }
    }
    self->n_brokers = (size_t) nb;
    self->n_broker_keys = (size_t) nk;
    self->session.endpoint = self->brokers[0];
    memcpy(self->broker_pub, self->broker_keys[0], 41);
    return SOFFA_OK;
}

soffa_err_t
soffa_agent_new(soffa_agent_t **out, const char *config_path, char *why, size_t whylen)
{
    *out = NULL;
    soffa_agent_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->hook.in = -1;
    snprintf(self->config_path, sizeof self->config_path, "%s", config_path);
    size_t n_web;
    const soffa_cfg_key_t *web_keys = soffa_web_cfg_keys(&n_web);
    soffa_cfg_section_t sec[6] = {{"agent", false, s_keys, sizeof s_keys / sizeof *s_keys, &self->cfg, NULL, NULL}};
    soffa_school_cfg_sections(&self->school_cfg, sec + 1);
    sec[3] = (soffa_cfg_section_t) {"web", false, web_keys, n_web, &self->web, NULL, NULL};
    sec[4] = (soffa_cfg_section_t) {"retention", false, s_retention_keys, sizeof s_retention_keys / sizeof *s_retention_keys,
                                    &self->cfg, NULL, NULL};
    sec[5] = (soffa_cfg_section_t) {"metrics", false, s_metrics_keys, sizeof s_metrics_keys / sizeof *s_metrics_keys,
                                    &self->cfg, NULL, NULL};
    soffa_err_t rc = soffa_cfg_load(config_path, sec, 6, why, whylen);
    if (rc == SOFFA_OK)
        rc = s_retention_load(self, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_school_cfg_check(&self->school_cfg, config_path, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_web_cfg_resolve(&self->web, config_path, why, whylen);
    if (rc == SOFFA_OK && soffa_log_level_parse(self->cfg.log_level) < 0) {
        snprintf(why, whylen, "%s: log_level must be debug, info, warn or error", config_path);
        rc = SOFFA_ERR_CONFIG;
    }
    if (rc == SOFFA_OK && self->cfg.metrics_listen[0]) {
        char what[1100];
        snprintf(what, sizeof what, "%s: [metrics] listen", config_path);
        rc = soffa_prom_check(self->cfg.metrics_listen, what, why, whylen);
    }
    char path[1024];
    if (rc == SOFFA_OK)
        rc = s_broker_alts(self, config_path, why, whylen);
    if (rc == SOFFA_OK) {
        soffa_cfg_path(config_path, self->cfg.key, path, sizeof path);
        rc = soffa_keys_load_secret(path, self->pub, self->sec);
        if (rc != SOFFA_OK) {
            snprintf(why, whylen, "%s: %s%s", path, soffa_strerror(rc),
                     rc == SOFFA_ERR_PERMISSION ? " (run chmod 600 on it)" : "");
            rc = rc == SOFFA_ERR_PERMISSION ? rc : SOFFA_ERR_CONFIG;
        }
    }
    if (rc == SOFFA_OK) {
        soffa_cfg_path(config_path, self->cfg.data_dir, self->data_path, sizeof self->data_path);
        if (self->cfg.control[0])
            soffa_cfg_path(config_path, self->cfg.control, self->control_path, sizeof self->control_path);
        else if (snprintf(self->control_path, sizeof self->control_path, "%s/control.sock", self->data_path)
                 >= (int) sizeof self->control_path)
            rc = SOFFA_ERR_CONFIG;
    }
    if (rc != SOFFA_OK) {
        explicit_bzero(self->sec, sizeof self->sec);
        free(self);
        return rc;
    }
    soffa_log_setup("soffa-agent", (soffa_log_level_t) soffa_log_level_parse(self->cfg.log_level));
    *out = self;
    return SOFFA_OK;
}

void
soffa_agent_print_config(const soffa_agent_t *self, FILE *out)
{
    const soffa_agent_cfg_t *c = &self->cfg;
    fprintf(out, "agent.name = %s\nagent.broker = %s\nagent.broker_key =", c->name, c->broker);
    for (size_t i = 0; i < self->n_broker_keys; i++)
        fprintf(out, "%s %s", i ? "," : "", self->broker_keys[i]);
    fprintf(out, "\nagent.key = %s\n", c->key);
    fprintf(out, "agent.data_dir = %s\nagent.control = %s\nagent.log_level = %s\nagent.window = %lld\n",
            self->data_path, self->control_path, c->log_level, (long long) c->window);
    fprintf(out, "agent.heartbeat_ms = %lld\nagent.reconnect_max_ms = %lld\nagent.hook = %s\n",
            (long long) c->heartbeat_ms, (long long) c->reconnect_max_ms, c->hook);
    fprintf(out, "agent.hook_retries = %lld\nagent.hook_backoff_ms = %lld\nagent.hook_timeout_ms = %lld\nagent.map_size = %zu\n",
            (long long) c->hook_retries, (long long) c->hook_backoff_ms, (long long) c->hook_timeout_ms, c->map_size);
    fprintf(out, "agent.hook_log_max = %zu\nmetrics.listen = %s\n", c->hook_log_max,
            c->metrics_listen[0] ? c->metrics_listen : "(off)");
    fprintf(out, "agent.signal_ack_due = %lld ms\nagent.referral_receipt_due = %lld ms\n", (long long) c->signal_ack_due,
            (long long) c->referral_receipt_due);
    fprintf(out, "agent.master_key = %s\n", c->master_key);
    for (int k = 1; k < SOFFA_RC_COUNT; k++) {
        char text[64];
        soffa_retention_rule_text(&self->retention.rules[k], text, sizeof text);
        fprintf(out, "retention.%s = %s\n", soffa_retention_class_name((soffa_retention_class_t) k), text);
    }
    fprintf(out, "retention.run_every = %lld ms\n", (long long) c->retention_every);
    soffa_school_cfg_print(&self->school_cfg, out);
    soffa_web_cfg_print(&self->web, out);
}

/* ---- Reload ------------------------------------------------------------------------ */

/* Whether key k has the same value in the structs a and b. */
static bool
s_cfg_same(const soffa_cfg_key_t *k, const void *a, const void *b)
{
    const char *x = (const char *) a + k->offset, *y = (const char *) b + k->offset;
    switch (k->type) {
    case SOFFA_CFG_STR: return strcmp(x, y) == 0;
    case SOFFA_CFG_INT:
    case SOFFA_CFG_DURATION: return memcmp(x, y, sizeof(int64_t)) == 0;
    case SOFFA_CFG_SIZE: return memcmp(x, y, sizeof(size_t)) == 0;
    case SOFFA_CFG_BOOL: return memcmp(x, y, sizeof(bool)) == 0;
    }
    return false;
}

/* Copies key k's value from b into a. */
static void
s_cfg_take(const soffa_cfg_key_t *k, void *a, const void *b)
{
    size_t n = k->type == SOFFA_CFG_STR ? k->size
               : k->type == SOFFA_CFG_SIZE ? sizeof(size_t)
               : k->type == SOFFA_CFG_BOOL ? sizeof(bool)
                                           : sizeof(int64_t);
    memcpy((char *) a + k->offset, (const char *) b + k->offset, n);
}

/* The [agent] settings a reload takes at once; the loop and the modules
 * read them where they use them. */
static const char *const s_live[] = {"hook", "hook_retries", "hook_backoff_ms", "hook_timeout_ms", "hook_log_max",
                                     "log_level", "heartbeat_ms", "reconnect_max_ms", "window", "signal_ack_due",
                                     "referral_receipt_due"};

static bool
s_is_live(const char *key)
{
    for (size_t i = 0; i < sizeof s_live / sizeof *s_live; i++)
        if (!strcmp(s_live[i], key))
            return true;
    return false;
}

/* [web]: the agent opens soffa-web's control socket where [web] says; a
 * change moves it (or opens or closes it). The rest of [web] is soffa-web's. */
static void
s_reload_web(soffa_agent_t *self, const soffa_web_cfg_t *fresh)
{
    bool moved = strcmp(self->web.listen, fresh->listen) || strcmp(self->web.socket_path, fresh->socket_path)
                 || strcmp(self->web.dir_path, fresh->dir_path);
    if (!moved) {
        self->web = *fresh;
        return;
    }
    soffa_agent_web_close(self);
    self->web = *fresh;
    if (!self->web.listen[0]) {
        soffa_info("reload: [web] listen is empty now; the web control socket is closed");
        return;
    }
    char why[1024] = "";
    if (soffa_agent_web_open(self, why, sizeof why) != SOFFA_OK) {
        soffa_error("reload: the web control socket could not be opened (soffa-web gets no answers): %s", why);
        soffa_agent_web_close(self);
    }
}

soffa_err_t
soffa_agent_reload(soffa_agent_t *self, char *why, size_t whylen)
{
    soffa_info("reload: reading %s", self->config_path);
    soffa_agent_t *fresh = NULL;
    soffa_err_t rc = soffa_agent_new(&fresh, self->config_path, why, whylen);
    if (rc != SOFFA_OK) {
        self->stats.reload_failures++;
        soffa_error("reload refused, the configuration loaded before stays in force: %s", why[0] ? why : soffa_strerror(rc));
        return rc;
    }
    size_t taken = 0;
    for (size_t i = 0; i < sizeof s_keys / sizeof *s_keys; i++) {
        const soffa_cfg_key_t *k = &s_keys[i];
        if (s_cfg_same(k, &self->cfg, &fresh->cfg))
            continue;
        if (s_is_live(k->key)) {
            s_cfg_take(k, &self->cfg, &fresh->cfg);
            soffa_info("reload: [agent] %s taken", k->key);
            taken++;
        } else {
            soffa_warn("reload: [agent] %s changed in the file; it takes effect at the next restart", k->key);
        }
    }
    if (strcmp(self->cfg.metrics_listen, fresh->cfg.metrics_listen))
        soffa_warn("reload: [metrics] listen changed in the file; it takes effect at the next restart");
    if (memcmp(self->cfg.retention, fresh->cfg.retention, sizeof self->cfg.retention)
        || self->cfg.retention_every != fresh->cfg.retention_every)
        soffa_warn("reload: [retention] changed in the file; it takes effect at the next restart");
    if (memcmp(&self->school_cfg, &fresh->school_cfg, sizeof self->school_cfg))
        soffa_warn("reload: [school] or [ss12000] changed in the file; it takes effect at the next restart");
    s_reload_web(self, &fresh->web);
    /* soffa_agent_new set the log level of the file it read. */
    soffa_agent_destroy(&fresh);
    self->stats.reloads++;
    soffa_info("reload: done; %zu setting(s) taken", taken);
    return SOFFA_OK;
}

/* ---- Open, run, destroy ------------------------------------------------------------- */

/* Loads the master key ([agent] master_key) once: refused inside the data
 * directory, readable by others, or missing. */
soffa_err_t
soffa_agent_master_load(soffa_agent_t *self, char *why, size_t whylen)
{
    if (self->master.loaded)
        return SOFFA_OK;
    char base[1024];
    snprintf(base, sizeof base, "%s", self->config_path);
    char *slash = strrchr(base, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(base, sizeof base, ".");
    char kwhy[900] = "";
    soffa_err_t rc = soffa_seal_master_load(self->cfg.master_key, base, self->data_path, &self->master, kwhy, sizeof kwhy);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "[agent] %s", kwhy);
        return rc == SOFFA_ERR_NOT_FOUND ? SOFFA_ERR_MASTER_KEY : rc;
    }
    return SOFFA_OK;
}

/* Gallring of this site's copies: at start and every [retention] run_every. */
static void
s_dispose_tick(soffa_agent_t *self)
{
    int64_t now = soffa_mono_us();
    if (now < self->next_dispose)
        return;
    self->next_dispose = now + self->retention.run_every_ms * 1000;
    soffa_box_disposed_t rep;
    soffa_err_t rc = soffa_box_dispose_due(self->box, soffa_now_us(), &rep);
    if (rc != SOFFA_OK)
        soffa_error("gallring of this site's copies failed: %s; the next run tries again", soffa_strerror(rc));
    else if (rep.inbox || rep.sent || rep.views)
        soffa_info("gallring: %llu delivery(ies), %llu sent message(s) and %llu view(s) of the access log disposed of",
                   (unsigned long long) rep.inbox, (unsigned long long) rep.sent, (unsigned long long) rep.views);
}

soffa_err_t
soffa_agent_open(soffa_agent_t *self, char *why, size_t whylen)
{
    soffa_err_t rc = soffa_agent_master_load(self, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    char bwhy[700] = "";
    rc = soffa_box_open(&self->box, self->data_path, self->cfg.map_size, &self->master, bwhy, sizeof bwhy);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s", self->data_path, bwhy[0] ? bwhy : soffa_strerror(rc));
        return rc;
    }
    soffa_box_set_retention(self->box, &self->retention, SOFFA_ROLE_NONE);
    char idhex[2 * SOFFA_SEAL_ID + 1];
    soffa_seal_master_id_hex(&self->master, idhex);
    soffa_info("store %s sealed under master key %s", self->data_path, idhex);
    s_dispose_tick(self);
    /* Earlier versions handed the hook its input in this file, which kept
     * the last message (identity number included) on disk. */
    char stale[1100];
    snprintf(stale, sizeof stale, "%s/hook-input.json", self->data_path);
    if (unlink(stale) == 0)
        soffa_info("removed %s, left by an earlier version", stale);
    rc = soffa_school_new(&self->school, &self->school_cfg, self->box, self->sec, self->control_path, self->data_path);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: the school tables: %s", self->data_path, soffa_strerror(rc));
        return rc;
    }
    self->ctx = zmq_ctx_new();
    if ((rc = soffa_agent_control_open(self, why, whylen)) != SOFFA_OK)
        return rc;
    if (self->web.listen[0] && (rc = soffa_agent_web_open(self, why, whylen)) != SOFFA_OK)
        return rc;
    if ((rc = soffa_agent_metrics_open(self, why, whylen)) != SOFFA_OK)
        return rc;
    self->session.backoff_ms = 200;
    soffa_info("agent %s: store %s, control %s, broker %s, %llu message(s) waiting in the outbox", self->cfg.name,
               self->data_path, self->control_path, self->cfg.broker,
               (unsigned long long) soffa_box_outbox_count(self->box));
    return SOFFA_OK;
}

soffa_err_t
soffa_agent_run(soffa_agent_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    while (!*stop) {
        soffa_notify_watchdog();
        if (reload && *reload) {
            *reload = 0;
            char why[1024] = "";
            soffa_notify_reloading();
            soffa_agent_reload(self, why, sizeof why);
            soffa_notify_ready(NULL);
        }
        int64_t now = soffa_mono_us();
        soffa_agent_session_tick(self, now);
        /* Wait for the control sockets and, with a session, the broker;
         * and for a scrape that waits for its answer. */
        zmq_pollitem_t items[4] = {{self->control, 0, ZMQ_POLLIN, 0}, {NULL, 0, ZMQ_POLLIN, 0}, {NULL, 0, ZMQ_POLLIN, 0},
                                   {NULL, 0, ZMQ_POLLIN, 0}};
        int ni = 1, broker_i = -1, web_i = -1, metrics_i = -1;
        if (soffa_agent_online(self)) {
            broker_i = ni;
            items[ni++].socket = soffa_agent_session_socket(self);
        }
        if (self->webctl) {
            web_i = ni;
            items[ni++].socket = self->webctl;
        }
        if (soffa_agent_metrics_fd(self) >= 0) {
            metrics_i = ni;
            items[ni++].fd = soffa_agent_metrics_fd(self);
        }
        int n = zmq_poll(items, ni, 50);
        if (n < 0 && errno != EINTR)
            return SOFFA_ERR_TRANSPORT;
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            soffa_agent_control_serve(self);
        if (n > 0 && metrics_i > 0 && (items[metrics_i].revents & ZMQ_POLLIN))
            soffa_agent_metrics_answer(self);
        if (n > 0 && web_i > 0 && (items[web_i].revents & ZMQ_POLLIN))
            soffa_agent_web_serve(self);
        if (n > 0 && broker_i > 0 && (items[broker_i].revents & ZMQ_POLLIN) && soffa_agent_online(self))
            soffa_agent_session_read(self);
        now = soffa_mono_us();
        soffa_agent_session_heartbeat(self, now);
        if (soffa_agent_online(self))
            soffa_agent_outbox_tick(self, now);
        soffa_agent_reply_expire(self, now);
        soffa_agent_hook_tick(self);
        soffa_school_tick(self->school);
        s_dispose_tick(self);
    }
    soffa_agent_hook_stop(self);
    soffa_info("stopping; %llu message(s) wait in the outbox", (unsigned long long) soffa_box_outbox_count(self->box));
    return SOFFA_OK;
}

void
soffa_agent_destroy(soffa_agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_agent_t *self = *self_p;
    soffa_agent_metrics_close(self);   /* first: its HTTP threads stop before anything they could wait for */
    soffa_agent_reply_fini(self);
    soffa_agent_hook_fini(self);
    soffa_school_destroy(&self->school);
    soffa_agent_session_close(self);
    soffa_agent_control_close(self);
    soffa_agent_web_close(self);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    soffa_box_close(&self->box);
    explicit_bzero(self->sec, sizeof self->sec);
    soffa_seal_master_wipe(&self->master);
    free(self);
    *self_p = NULL;
}

/* ---- Store upgrade ------------------------------------------------------------------- */

soffa_err_t
soffa_agent_upgrade_store(soffa_agent_t *self, const char *backup_dir, FILE *out, char *why, size_t whylen)
{
    char data[1100], lock[1100];
    snprintf(data, sizeof data, "%s/data.mdb", self->data_path);
    snprintf(lock, sizeof lock, "%s/lock.mdb", self->data_path);
    if (access(data, F_OK) != 0) {
        snprintf(why, whylen, "there is no agent store at %s to upgrade", self->data_path);
        return SOFFA_ERR_NOT_FOUND;
    }
    /* LMDB holds a shared lock on lock.mdb's first byte while a process has
     * the store open: the running agent's store is not converted under it. */
    int fd = open(lock, O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        bool busy = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
        close(fd);
        if (busy) {
            snprintf(why, whylen, "the agent's store at %s is open in process %d (a running soffa-agent): stop it first",
                     self->data_path, (int) fl.l_pid);
            return SOFFA_ERR_UNAVAILABLE;
        }
    }
    if (!backup_dir || !backup_dir[0]) {
        snprintf(why, whylen, "an upgrade converts the agent's store in place: give --backup DIR (a new directory), "
                              "where the old store is copied first");
        return SOFFA_ERR_CONFIG;
    }
    soffa_err_t rc = soffa_agent_master_load(self, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    bool done = false;
    rc = soffa_box_upgrade(self->data_path, self->cfg.map_size, &self->master, backup_dir, &done);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "the upgrade of %s failed: %s%s", self->data_path, soffa_strerror(rc),
                 rc == SOFFA_ERR_EXISTS ? " (give a new backup directory)" : "; the store is as it was");
        return rc;
    }
    if (!done) {
        fprintf(out, "the agent's store %s is already sealed (format 2); nothing to do\n", self->data_path);
        return SOFFA_OK;
    }
    /* It opens under the master key, as the agent will open it. */
    soffa_box_t *box = NULL;
    char bwhy[600] = "";
    rc = soffa_box_open(&box, self->data_path, self->cfg.map_size, &self->master, bwhy, sizeof bwhy);
    soffa_box_close(&box);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "the converted store does not open: %s; restore it from %s", bwhy, backup_dir);
        return rc;
    }
    char idhex[2 * SOFFA_SEAL_ID + 1];
    soffa_seal_master_id_hex(&self->master, idhex);
    fprintf(out,
            "the agent's store %s is sealed under master key %s (format 1 to 2)\n"
            "The copy at %s holds the old store, personal data in clear: once the agent runs on the new store, delete "
            "it.\n",
            self->data_path, idhex, backup_dir);
    return SOFFA_OK;
}
