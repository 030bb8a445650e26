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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_agent_control.h"
#include "soffa_agent_hook.h"
#include "soffa_agent_outbox.h"
#include "soffa_agent_reply.h"
#include "soffa_agent_session.h"
#include "soffa_agent_web.h"
#include "soffa_cfg.h"
#include "soffa_keys.h"
#include "soffa_log.h"
#include "soffa_notify.h"
#include "soffa_time.h"

/* ---- Configuration ------------------------------------------------------------- */

static const soffa_cfg_key_t s_keys[] = {
    {"name", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_agent_cfg_t, name), SOFFA_NAME_MAX, "this agent's name, as in the broker's [agent NAME]"},
    {"broker", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_agent_cfg_t, broker), 256, "the broker's endpoint, e.g. tcp://broker:5570"},
    {"broker_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_agent_cfg_t, broker_key), 512, "the broker's public key (Z85) or its .pub file"},
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
    {"map_size", SOFFA_CFG_SIZE, "256MiB", 1024 * 1024, (int64_t) 1 << 40, offsetof(soffa_agent_cfg_t, map_size), 0, "largest size of the agent's store"},
    {"signal_ack_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(soffa_agent_cfg_t, signal_ack_due), 0, "a signal not acknowledged within this is overdue"},
    {"referral_receipt_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(soffa_agent_cfg_t, referral_receipt_due), 0, "a referral not received within this is overdue"},
};

/* ---- Configuration ---------------------------------------------------------------- */

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
    soffa_cfg_section_t sec[4] = {{"agent", false, s_keys, sizeof s_keys / sizeof *s_keys, &self->cfg, NULL, NULL}};
    soffa_school_cfg_sections(&self->school_cfg, sec + 1);
    sec[3] = (soffa_cfg_section_t) {"web", false, web_keys, n_web, &self->web, NULL, NULL};
    soffa_err_t rc = soffa_cfg_load(config_path, sec, 4, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_school_cfg_check(&self->school_cfg, config_path, why, whylen);
    if (rc == SOFFA_OK)
        rc = soffa_web_cfg_resolve(&self->web, config_path, why, whylen);
    if (rc == SOFFA_OK && soffa_log_level_parse(self->cfg.log_level) < 0) {
        snprintf(why, whylen, "%s: log_level must be debug, info, warn or error", config_path);
        rc = SOFFA_ERR_CONFIG;
    }
    char path[1024];
    if (rc == SOFFA_OK) {
        if (soffa_keys_valid_z85(self->cfg.broker_key)) {
            memcpy(self->broker_pub, self->cfg.broker_key, 41);
        } else if (!soffa_cfg_path(config_path, self->cfg.broker_key, path, sizeof path)
                   || soffa_keys_load_public(path, self->broker_pub) != SOFFA_OK) {
            snprintf(why, whylen, "%s: broker_key is neither a Z85 key nor a readable key file", config_path);
            rc = SOFFA_ERR_CONFIG;
        }
    }
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
    fprintf(out, "agent.name = %s\nagent.broker = %s\nagent.broker_key = %s\nagent.key = %s\n", c->name, c->broker,
            self->broker_pub, c->key);
    fprintf(out, "agent.data_dir = %s\nagent.control = %s\nagent.log_level = %s\nagent.window = %lld\n",
            self->data_path, self->control_path, c->log_level, (long long) c->window);
    fprintf(out, "agent.heartbeat_ms = %lld\nagent.reconnect_max_ms = %lld\nagent.hook = %s\n",
            (long long) c->heartbeat_ms, (long long) c->reconnect_max_ms, c->hook);
    fprintf(out, "agent.hook_retries = %lld\nagent.hook_backoff_ms = %lld\nagent.hook_timeout_ms = %lld\nagent.map_size = %zu\n",
            (long long) c->hook_retries, (long long) c->hook_backoff_ms, (long long) c->hook_timeout_ms, c->map_size);
    fprintf(out, "agent.signal_ack_due = %lld ms\nagent.referral_receipt_due = %lld ms\n", (long long) c->signal_ack_due,
            (long long) c->referral_receipt_due);
    soffa_school_cfg_print(&self->school_cfg, out);
    soffa_web_cfg_print(&self->web, out);
}

/* ---- Open, run, destroy ------------------------------------------------------------- */

soffa_err_t
soffa_agent_open(soffa_agent_t *self, char *why, size_t whylen)
{
    soffa_err_t rc = soffa_box_open(&self->box, self->data_path, self->cfg.map_size);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s", self->data_path, soffa_strerror(rc));
        return rc;
    }
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
    self->session.backoff_ms = 200;
    soffa_info("agent %s: store %s, control %s, broker %s, %llu message(s) waiting in the outbox", self->cfg.name,
               self->data_path, self->control_path, self->cfg.broker,
               (unsigned long long) soffa_box_outbox_count(self->box));
    return SOFFA_OK;
}

soffa_err_t
soffa_agent_run(soffa_agent_t *self, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        soffa_notify_watchdog();
        int64_t now = soffa_mono_us();
        soffa_agent_session_tick(self, now);
        /* Wait for the control sockets and, with a session, the broker. */
        zmq_pollitem_t items[3] = {{self->control, 0, ZMQ_POLLIN, 0}, {NULL, 0, ZMQ_POLLIN, 0}, {NULL, 0, ZMQ_POLLIN, 0}};
        int ni = 1, broker_i = -1, web_i = -1;
        if (soffa_agent_online(self)) {
            broker_i = ni;
            items[ni++].socket = soffa_agent_session_socket(self);
        }
        if (self->webctl) {
            web_i = ni;
            items[ni++].socket = self->webctl;
        }
        int n = zmq_poll(items, ni, 50);
        if (n < 0 && errno != EINTR)
            return SOFFA_ERR_TRANSPORT;
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            soffa_agent_control_serve(self);
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
    free(self);
    *self_p = NULL;
}
