/*  soffa_broker: the broker's configuration, open, loop and dispatch.
 *
 *  The work is done by modules over soffa_broker_int.h: soffa_session
 *  (sessions and their states), soffa_publish (a PUBLISH: checks, policy,
 *  canonical storage), soffa_commit (the commit pipeline and checkpoints;
 *  it reports finished batches to s_committed here), soffa_delivery
 *  (mailboxes, readers, windows, cursors), soffa_replay (audit reads and
 *  their access records), soffa_status (awaited answers, STATUS replies),
 *  soffa_zap (CURVE keys to identities), soffa_lookup and soffa_ring.
 *
 *  ---- Protocol grammar (one Frame per ZeroMQ message, CURVE DEALER/ROUTER) ----
 *  s_grammar below is this grammar in executable form: frame type, the
 *  session states it is allowed in, its handler.
 *
 *    session    = C:HELLO S:WELCOME *request
 *                                        ; HELLO names the newest protocol the
 *                                        ; client speaks, WELCOME the one the
 *                                        ; session speaks (the lower: 1 or 2)
 *    request    = publish / batch / subscribe / ack / credit / replay / status / ping / erase
 *    publish    = C:PUBLISH ( S:PUBLISH-ACK / S:ERROR )
 *    batch      = C:PUBLISH-BATCH ( 1*S:PUBLISH-ACKS / S:ERROR )
 *                                        ; protocol 2: up to 256 messages, each
 *                                        ; checked and answered on its own by
 *                                        ; tag: refusals and retries at once,
 *                                        ; the stored after their commit
 *    subscribe  = C:SUBSCRIBE ( *delivery / S:ERROR )
 *                 ; deliveries keep coming as the mailbox grows, never more
 *                 ; than the window unacknowledged at a time
 *    delivery   = S:DELIVER / S:DELIVER-BATCH   ; a batch only in protocol 2;
 *                                        ; windows count records, not frames
 *    ack        = C:ACK                  ; cumulative, per mailbox, with the hash
 *                                        ; of the record acknowledged; frees
 *                                        ; window and grows it (slow start)
 *    credit     = C:CREDIT               ; a subscribed mailbox: sets its window
 *    replay     = C:REPLAY ( *delivery *C:REPLAY-ACK S:REPLAY-END / S:ERROR )
 *                                        ; audit only; REPLAY-ACK (with the
 *                                        ; hash) frees the replay's window
 *    status     = C:STATUS-REQUEST S:STATUS-REPLY   ; one reply at a time
 *    ping       = C:PING S:PONG          ; at least every heartbeat_ms
 *    erase      = C:ERASE ( S:ERASED / S:ERROR )
 *                                        ; a data-protection officer's key
 *                                        ; ([retention] erasure_by), in READY
 *
 *  Only HELLO is allowed in NEW (an agent's PING answered with ERROR tells it
 *  the broker has forgotten its session, so it greets again).
 *  Session states (soffa_session_state_t, changed only by
 *  soffa_session_set_state): NEW --HELLO--> READY --REPLAY--> REPLAY-OPENING
 *  --(access record durable)--> REPLAYING --(range done)--> REPLAY-CLOSING
 *  --(closing record durable)--> READY; any live state --(taken over)-->
 *  CLOSED. A session silent for longer than expiry_ms is dropped; its
 *  unacknowledged deliveries go out again when it returns. A frame not
 *  allowed in the current state is answered with ERROR(PROTOCOL_STATE); a
 *  batch frame on a session of protocol 1 with ERROR(VERSION); a frame that
 *  does not decode with ERROR(MALFORMED). None closes the session.
 *
 *  ---- Durability ----
 *  Publishes read in one loop iteration are validated, decided by the policy
 *  module and appended in one LMDB transaction by the writer thread.
 *  PUBLISH-ACKs are sent only after that transaction committed
 *  (soffa_store_append returned SOFFA_OK, which means fsynced) and the
 *  pipeline reported it. If the commit fails, every publish of the batch
 *  gets an ERROR and nothing of it is stored.
 */
#include "soffa_broker.h"

#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "soffa_cfg.h"
#include "soffa_teams.h"
#include "soffa_log.h"
#include "soffa_notify.h"
#include "soffa_time.h"

#include "soffa_session.h"
#include "soffa_case.h"
#include "soffa_delivery.h"
#include "soffa_publish.h"
#include "soffa_commit.h"
#include "soffa_replay.h"
#include "soffa_status.h"
#include "soffa_zap.h"
#include "soffa_retain.h"
#include "soffa_ring.h"
#include "soffa_dbatch.h"
#include "soffa_metrics.h"
#include "soffa_send.h"

/* What one connection can make the broker hold (see README, Threat model):
 * frames in from it, frames out to it (answers and errors are small; large
 * frames are deliveries and replay records, bounded by their windows, and at
 * most one status reply). A frame a little over the limit gets an ERROR;
 * one larger than S_MAX_WIRE_IN makes libzmq drop the connection. */
#define S_MAX_WIRE_IN (SOFFA_WIRE_MAX_FRAME + 4096)
#define S_RCVHWM 128
#define S_SNDHWM 8192
/* ---- Configuration ---------------------------------------------------------- */

static const soffa_cfg_key_t s_broker_keys[] = {
    {"name", SOFFA_CFG_STR, "soffa-broker", 0, 0, offsetof(soffa_broker_cfg_t, name), SOFFA_NAME_MAX, "the broker's name in records it writes"},
    {"endpoint", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_broker_cfg_t, endpoint), 256, "CURVE endpoint agents connect to, e.g. tcp://127.0.0.1:5570"},
    {"ipc_endpoint", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_broker_cfg_t, ipc_endpoint), 256, "optional ipc:// endpoint with the same authentication"},
    {"secret_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_broker_cfg_t, secret_key), 512, "the broker's key file from 'soffa keygen'"},
    {"data_dir", SOFFA_CFG_STR, NULL, 0, 0, offsetof(soffa_broker_cfg_t, data_dir), 512, "directory of the durable store"},
    {"log_level", SOFFA_CFG_STR, "info", 0, 0, offsetof(soffa_broker_cfg_t, log_level), 16, "debug, info, warn or error"},
    {"heartbeat_ms", SOFFA_CFG_INT, "2000", 100, 60000, offsetof(soffa_broker_cfg_t, heartbeat_ms), 0, "how often agents must be heard from"},
    {"expiry_ms", SOFFA_CFG_INT, "10000", 500, 3600000, offsetof(soffa_broker_cfg_t, expiry_ms), 0, "silence after which a session is dropped"},
    {"sessions_per_agent", SOFFA_CFG_INT, "4", 1, 64, offsetof(soffa_broker_cfg_t, sessions_per_agent), 0, "live sessions one agent key may hold; a newer one closes the oldest"},
    {"previous_endpoint", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_broker_cfg_t, previous_endpoint), 256, "during a key rotation: the endpoint of the previous key (tcp:// or ipc://)"},
    {"previous_secret_key", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_broker_cfg_t, previous_secret_key), 512, "during a key rotation: the previous key file"},
    {"previous_until", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_broker_cfg_t, previous_until), 40, "during a key rotation: the last day (YYYY-MM-DD, Stockholm) or the instant (RFC 3339) the previous key is served"},
};
static const soffa_cfg_key_t s_store_keys[] = {
    {"map_size", SOFFA_CFG_SIZE, "1GiB", 64 * 1024, (int64_t) 1 << 42, offsetof(soffa_broker_cfg_t, map_size), 0, "largest size of the store"},
    {"batch_max", SOFFA_CFG_INT, "1024", 1, 65536, offsetof(soffa_broker_cfg_t, batch_max), 0, "most publishes per commit"},
    {"cursor_flush_ms", SOFFA_CFG_INT, "100", 1, 60000, offsetof(soffa_broker_cfg_t, cursor_flush_ms), 0, "how often acknowledged positions are written"},
};
static const soffa_cfg_key_t s_audit_keys[] = {
    {"checkpoint_every", SOFFA_CFG_INT, "1000", 1, 100000000, offsetof(soffa_broker_cfg_t, checkpoint_every), 0, "records between signed checkpoints"},
    {"checkpoint_ms", SOFFA_CFG_INT, "60000", 100, 86400000, offsetof(soffa_broker_cfg_t, checkpoint_ms), 0, "longest time between signed checkpoints"},
    {"signing_key", SOFFA_CFG_STR, "checkpoint.key", 0, 0, offsetof(soffa_broker_cfg_t, signing_key), 512, "the checkpoint signing key; never inside data_dir"},
    {"signal_ack_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(soffa_broker_cfg_t, signal_ack_due), 0, "a signal not acknowledged within this is overdue"},
    {"referral_receipt_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(soffa_broker_cfg_t, referral_receipt_due), 0, "a referral not received within this is overdue"},
    {"referral_expiry", SOFFA_CFG_DURATION, "14d", 1000, 366LL * 86400000, offsetof(soffa_broker_cfg_t, referral_expiry), 0, "a referral nobody answered within this is recorded as EXPIRED and no longer delivered"},
};
/* The KAA's routine of contact attempts (DOMAIN.md §4.1): how many
 * attempts, through how many channels, before NOT_REACHED may be recorded. */
static const soffa_cfg_key_t s_case_keys[] = {
    {"not_reached_attempts", SOFFA_CFG_INT, "3", 1, 100, offsetof(soffa_broker_cfg_t, not_reached_attempts), 0, "contact attempts without reaching the young person before NOT_REACHED"},
    {"not_reached_channels", SOFFA_CFG_INT, "2", 1, 8, offsetof(soffa_broker_cfg_t, not_reached_channels), 0, "different channels (letter, SMS, phone, home visit...) among those attempts"},
};
static const soffa_cfg_key_t s_metrics_keys[] = {
    {"listen", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_broker_cfg_t, metrics_listen), 128, "HOST:PORT (loopback) of the Prometheus endpoint /metrics; empty: off"},
};
/* The law at the broker (issue 13): the sensitive-term list, and how far
 * back the dates a message gives may lie (defaults in soffa_policy.h). */
static const soffa_cfg_key_t s_policy_keys[] = {
    {"sensitive_terms", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_broker_cfg_t, sensitive_terms), 512, "the sensitive-term list (empty: the built-in copy of config/sensitive-terms.txt)"},
    {"event_max_days", SOFFA_CFG_INT, "183", 1, 3660, offsetof(soffa_broker_cfg_t, event_max_days), 0, "how many days back a message's dates may lie"},
    {"concern_max_days", SOFFA_CFG_INT, "30", 1, 3660, offsetof(soffa_broker_cfg_t, concern_max_days), 0, "how many days back a report of concern's date may lie"},
};
static const soffa_cfg_key_t s_keys_keys[] = {
    {"master_key", SOFFA_CFG_STR, "master.key", 0, 0, offsetof(soffa_broker_cfg_t, master_key), 512, "the master key (soffa masterkey new), or credential:NAME; never inside data_dir"},
};
static const soffa_cfg_key_t s_retention_keys[] = {
    {"school_signals", SOFFA_CFG_STR, "183d from message", 0, 0, offsetof(soffa_broker_cfg_t, retention[SOFFA_RC_SCHOOL_SIGNALS]), 64, "how long school signals are kept, from what"},
    {"kaa_journal", SOFFA_CFG_STR, "365d from closure", 0, 0, offsetof(soffa_broker_cfg_t, retention[SOFFA_RC_KAA_JOURNAL]), 64, "how long the KAA journal is kept, from what"},
    {"referrals", SOFFA_CFG_STR, "365d from message", 0, 0, offsetof(soffa_broker_cfg_t, retention[SOFFA_RC_REFERRALS]), 64, "how long referrals are kept, from what"},
    {"concern_reports", SOFFA_CFG_STR, "90d from message", 0, 0, offsetof(soffa_broker_cfg_t, retention[SOFFA_RC_CONCERN_REPORTS]), 64, "how long concern reports are kept, from what"},
    {"access_records", SOFFA_CFG_STR, "730d from message", 0, 0, offsetof(soffa_broker_cfg_t, retention[SOFFA_RC_ACCESS_RECORDS]), 64, "how long access records (and tombstones) are kept"},
    {"run_every", SOFFA_CFG_DURATION, "1d", 1000, 366LL * 86400000, offsetof(soffa_broker_cfg_t, retention_every), 0, "how often disposal runs (also at start)"},
    {"erasure_by", SOFFA_CFG_STR, "", 0, 0, offsetof(soffa_broker_cfg_t, erasure_by), 1024, "agents (audit role) that may erase a young person's data"},
};
static const soffa_cfg_key_t s_delivery_keys[] = {
    {"window_max", SOFFA_CFG_INT, "1024", 1, 65536, offsetof(soffa_broker_cfg_t, window_max), 0, "largest credit window a consumer may ask for"},
};

/* A key rotation's three settings come together, and the window has an
 * end: previous_until as a day (the previous key is served to its end,
 * Stockholm time) or an instant. */
static soffa_err_t
s_rotation_check(const char *config_path, soffa_broker_cfg_t *cfg, char *why, size_t whylen)
{
    int set = !!cfg->previous_endpoint[0] + !!cfg->previous_secret_key[0] + !!cfg->previous_until[0];
    cfg->previous_until_us = 0;
    if (set == 0)
        return SOFFA_OK;
    if (set != 3) {
        snprintf(why, whylen, "%s: a key rotation needs all three of previous_endpoint, previous_secret_key and "
                              "previous_until in [broker] (or none)", config_path);
        return SOFFA_ERR_CONFIG;
    }
    soffa_date_t d;
    if (soffa_date_parse(cfg->previous_until, &d)) {
        soffa_date_t next = soffa_date_from_us(soffa_date_local_start_us(d) + 36LL * 3600 * 1000000);
        cfg->previous_until_us = soffa_date_local_start_us(next);
    } else if (!soffa_time_parse(cfg->previous_until, &cfg->previous_until_us)) {
        snprintf(why, whylen, "%s: previous_until must be a day (2027-03-01: the previous key is served to its end, "
                              "Stockholm time) or an instant (2027-03-01T12:00:00+01:00), not '%s'",
                 config_path, cfg->previous_until);
        return SOFFA_ERR_CONFIG;
    }
    if (!strcmp(cfg->previous_endpoint, cfg->endpoint) || !strcmp(cfg->previous_endpoint, cfg->ipc_endpoint)) {
        snprintf(why, whylen, "%s: previous_endpoint must differ from endpoint and ipc_endpoint: one CurveZMQ "
                              "socket serves one key, so the previous key needs an endpoint of its own", config_path);
        return SOFFA_ERR_CONFIG;
    }
    if (!strcmp(cfg->previous_secret_key, cfg->secret_key)) {
        snprintf(why, whylen, "%s: previous_secret_key is the same file as secret_key", config_path);
        return SOFFA_ERR_CONFIG;
    }
    return SOFFA_OK;
}

/* [retention]: each class's rule into *out, and who may erase (auditors
 * of the table `agents` named there). */
static soffa_err_t
s_retention_load(const char *config_path, const soffa_broker_cfg_t *cfg, const soffa_idtable_t *agents,
                 soffa_retention_t *out, char *why, size_t whylen)
{
    soffa_retention_defaults(out);
    for (int c = 1; c < SOFFA_RC_COUNT; c++) {
        char rwhy[300];
        if (!soffa_retention_parse(cfg->retention[c], &out->rules[c], rwhy, sizeof rwhy)) {
            snprintf(why, whylen, "%s: [retention] %s: %s", config_path, soffa_retention_class_name((soffa_retention_class_t) c),
                     rwhy);
            return SOFFA_ERR_CONFIG;
        }
    }
    out->run_every_ms = cfg->retention_every;
    char list[1024], *save = NULL;
    snprintf(list, sizeof list, "%s", cfg->erasure_by);
    for (char *name = strtok_r(list, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
        const soffa_ident_t *ident = soffa_idtable_by_name(agents, name);
        if (!ident || ident->id.role != SOFFA_ROLE_AUDIT) {
            snprintf(why, whylen, "%s: [retention] erasure_by names '%s', which is not an [agent] with role audit (a "
                                  "data-protection officer's key is configured as an auditor)", config_path, name);
            return SOFFA_ERR_CONFIG;
        }
    }
    return SOFFA_OK;
}

/* Reads the whole file into cfg, a new table of agents (*agents, NULL
 * on failure) and the parsed [retention] (*retention). Used at start and by
 * every reload. The master key is not read here: the store is opened with
 * it once, at start, and a reload never needs it. */
static soffa_err_t
s_load(const char *config_path, soffa_broker_cfg_t *cfg, soffa_idtable_t **agents, soffa_teams_t **teams,
       soffa_retention_t *retention, char *why, size_t whylen)
{
    *agents = NULL;
    *teams = NULL;
    soffa_idtable_t *t = soffa_idtable_new();
    soffa_teams_t *tm = soffa_teams_new();
    if (!t || !tm) {
        soffa_idtable_destroy(&t);
        soffa_teams_destroy(&tm);
        return SOFFA_ERR_NOMEM;
    }
    memset(cfg, 0, sizeof *cfg);
    const soffa_cfg_section_t sections[] = {
        {"broker", false, s_broker_keys, sizeof s_broker_keys / sizeof *s_broker_keys, cfg, NULL, NULL},
        {"store", false, s_store_keys, sizeof s_store_keys / sizeof *s_store_keys, cfg, NULL, NULL},
        {"delivery", false, s_delivery_keys, sizeof s_delivery_keys / sizeof *s_delivery_keys, cfg, NULL, NULL},
        {"audit", false, s_audit_keys, sizeof s_audit_keys / sizeof *s_audit_keys, cfg, NULL, NULL},
        {"policy", false, s_policy_keys, sizeof s_policy_keys / sizeof *s_policy_keys, cfg, NULL, NULL},
        {"case", false, s_case_keys, sizeof s_case_keys / sizeof *s_case_keys, cfg, NULL, NULL},
        {"metrics", false, s_metrics_keys, sizeof s_metrics_keys / sizeof *s_metrics_keys, cfg, NULL, NULL},
        {"keys", false, s_keys_keys, sizeof s_keys_keys / sizeof *s_keys_keys, cfg, NULL, NULL},
        {"retention", false, s_retention_keys, sizeof s_retention_keys / sizeof *s_retention_keys, cfg, NULL, NULL},
        soffa_idtable_section(t),
        soffa_teams_section(tm),
    };
    soffa_err_t rc = soffa_cfg_load(config_path, sections, sizeof sections / sizeof *sections, why, whylen);
    rc = soffa_idtable_finish(t, config_path, rc, why, whylen);
    {
        size_t n = soffa_idtable_size(t);
        const soffa_identity_t **ids = calloc(n ? n : 1, sizeof *ids);
        for (size_t i = 0; ids && i < n; i++)
            ids[i] = &soffa_idtable_at(t, i)->id;
        rc = ids ? soffa_teams_finish(tm, config_path, rc, ids, n, why, whylen) : SOFFA_ERR_NOMEM;
        free(ids);
    }
    if (rc == SOFFA_OK && soffa_log_level_parse(cfg->log_level) < 0) {
        snprintf(why, whylen, "%s: log_level must be debug, info, warn or error", config_path);
        rc = SOFFA_ERR_CONFIG;
    }
    if (rc == SOFFA_OK && cfg->expiry_ms < 2 * cfg->heartbeat_ms) {
        snprintf(why, whylen, "%s: expiry_ms must be at least twice heartbeat_ms", config_path);
        rc = SOFFA_ERR_CONFIG;
    }
    if (rc == SOFFA_OK)
        rc = s_rotation_check(config_path, cfg, why, whylen);
    if (rc == SOFFA_OK && cfg->metrics_listen[0]) {
        char what[1100];
        snprintf(what, sizeof what, "%s: [metrics] listen", config_path);
        rc = soffa_prom_check(cfg->metrics_listen, what, why, whylen);
    }
    if (rc == SOFFA_OK)
        rc = s_retention_load(config_path, cfg, t, retention, why, whylen);
    if (rc != SOFFA_OK) {
        soffa_idtable_destroy(&t);
        soffa_teams_destroy(&tm);
        return rc;
    }
    *agents = t;
    *teams = tm;
    return SOFFA_OK;
}

soffa_err_t
soffa_broker_new(soffa_broker_t **out, const char *config_path, char *why, size_t whylen)
{
    *out = NULL;
    soffa_broker_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    snprintf(self->config_path, sizeof self->config_path, "%s", config_path);
    self->sessions = soffa_map_new();
    self->by_fd = soffa_map_new();
    self->mailboxes = soffa_map_new();
    self->awaits = soffa_map_new();
    self->metrics = soffa_metrics_new();
    if (!self->sessions || !self->by_fd || !self->mailboxes || !self->awaits || !self->metrics) {
        soffa_broker_destroy(&self);
        return SOFFA_ERR_NOMEM;
    }
    soffa_err_t rc = s_load(config_path, &self->cfg, &self->agents, &self->teams, &self->retention, why, whylen);
    /* The sensitive-term list, once: a list that does not load stops the
     * broker (why names the file and line), so free text is never routed
     * unscreened. A reload does not read it again (s_cfg_changes says so). */
    if (rc == SOFFA_OK) {
        char path[1024] = "", twhy[512] = "";
        if (self->cfg.sensitive_terms[0]
            && !soffa_cfg_path(config_path, self->cfg.sensitive_terms, path, sizeof path)) {
            snprintf(why, whylen, "%s: [policy] sensitive_terms: the path is too long", config_path);
            rc = SOFFA_ERR_CONFIG;
        }
        if (rc == SOFFA_OK && (rc = soffa_terms_new(&self->terms, path, twhy, sizeof twhy)) != SOFFA_OK)
            snprintf(why, whylen, "%s: [policy] sensitive_terms: %s", config_path, twhy[0] ? twhy : soffa_strerror(rc));
    }
    if (rc != SOFFA_OK) {
        soffa_broker_destroy(&self);
        return rc;
    }
    soffa_log_setup("soffa-broker", (soffa_log_level_t) soffa_log_level_parse(self->cfg.log_level));
    *out = self;
    return SOFFA_OK;
}

/* ---- Reload ---------------------------------------------------------------------- */

/* Whether key k has the same value in a and b. */
static bool
s_cfg_same(const soffa_cfg_key_t *k, const soffa_broker_cfg_t *a, const soffa_broker_cfg_t *b)
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

/* Settings outside [agent] are taken at start only (log_level aside): a
 * reload names each one that changed, so that nobody believes it is in
 * force. */
static void
s_cfg_changes(soffa_broker_t *self, const soffa_broker_cfg_t *fresh)
{
    static const struct {
        const char *section;
        const soffa_cfg_key_t *keys;
        size_t n;
    } tables[] = {
        {"broker", s_broker_keys, sizeof s_broker_keys / sizeof *s_broker_keys},
        {"store", s_store_keys, sizeof s_store_keys / sizeof *s_store_keys},
        {"delivery", s_delivery_keys, sizeof s_delivery_keys / sizeof *s_delivery_keys},
        {"audit", s_audit_keys, sizeof s_audit_keys / sizeof *s_audit_keys},
        {"policy", s_policy_keys, sizeof s_policy_keys / sizeof *s_policy_keys},
        {"case", s_case_keys, sizeof s_case_keys / sizeof *s_case_keys},
        {"metrics", s_metrics_keys, sizeof s_metrics_keys / sizeof *s_metrics_keys},
        {"keys", s_keys_keys, sizeof s_keys_keys / sizeof *s_keys_keys},
        {"retention", s_retention_keys, sizeof s_retention_keys / sizeof *s_retention_keys},
    };
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
        for (size_t i = 0; i < tables[t].n; i++) {
            const soffa_cfg_key_t *k = &tables[t].keys[i];
            if (s_cfg_same(k, &self->cfg, fresh))
                continue;
            if (k->offset == offsetof(soffa_broker_cfg_t, log_level)) {
                snprintf(self->cfg.log_level, sizeof self->cfg.log_level, "%s", fresh->log_level);
                soffa_log_setup("soffa-broker", (soffa_log_level_t) soffa_log_level_parse(fresh->log_level));
                soffa_info("reload: log_level is now %s", fresh->log_level);
            } else {
                soffa_warn("reload: [%s] %s changed in the file; it takes effect at the next restart", tables[t].section,
                           k->key);
            }
        }
}

typedef struct {
    soffa_broker_t *self;
    const soffa_idtable_t *fresh;
    size_t closed;
} s_reload_t;

/* A session whose agent the new table removed or changed, or whose key it
 * no longer lists, is closed: its rights were granted under the old
 * settings. The agent hears why and connects again (under the new ones, or
 * not at all). */
static int
s_reload_session(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_reload_t *r = ctx;
    soffa_session_t *s = v;
    if (s->state == SOFFA_SESS_CLOSED)
        return 0;
    const soffa_ident_t *now = soffa_idtable_by_name(r->fresh, s->id->name);
    char why[300];
    if (!now)
        snprintf(why, sizeof why, "%s is no longer in the broker's configuration", s->id->name);
    else if (now != s->ident)
        snprintf(why, sizeof why, "the broker's configuration of %s changed; connect again to work under it",
                 s->id->name);
    else if (!soffa_idtable_has_key(now, s->key))
        snprintf(why, sizeof why, "the key this session of %s used was removed from the broker's configuration; "
                 "connect with the agent's new key", s->id->name);
    else
        return 0;
    soffa_session_close(r->self, s, SOFFA_ERR_SESSION_CLOSED, why);
    r->closed++;
    return 0;
}

/* Appends name to a comma-separated list (as much as fits). */
static void
s_list_add(char *list, size_t size, const char *name)
{
    size_t len = strlen(list);
    if (len + 2 < size)
        snprintf(list + len, size - len, "%s%s", len ? ", " : "", name);
}

/* Logs what a reload adds, removes and changes (before the swap). */
static void
s_reload_summary(const soffa_idtable_t *old, const soffa_idtable_t *fresh)
{
    char added[300] = "", removed[300] = "", changed[300] = "", rekeyed[300] = "";
    size_t na = 0, nr = 0, nc = 0, nk = 0;
    for (size_t i = 0; i < soffa_idtable_size(fresh); i++) {
        const soffa_ident_t *n = soffa_idtable_at(fresh, i);
        const soffa_ident_t *o = soffa_idtable_by_name(old, n->id.name);
        if (!o) {
            s_list_add(added, sizeof added, n->id.name);
            na++;
        } else if (!soffa_idtable_same(o, n)) {
            s_list_add(changed, sizeof changed, n->id.name);
            nc++;
        } else {
            bool same = o->n_keys == n->n_keys;
            for (size_t k = 0; same && k < n->n_keys; k++)
                same = soffa_idtable_has_key(o, n->keys[k]);
            if (!same) {
                s_list_add(rekeyed, sizeof rekeyed, n->id.name);
                nk++;
            }
        }
    }
    for (size_t i = 0; i < soffa_idtable_size(old); i++) {
        const soffa_ident_t *o = soffa_idtable_at(old, i);
        if (!soffa_idtable_by_name(fresh, o->id.name)) {
            s_list_add(removed, sizeof removed, o->id.name);
            nr++;
        }
    }
    soffa_info("reload: %zu agent(s); %zu added%s%s%s, %zu removed%s%s%s, %zu changed%s%s%s, %zu with other keys%s%s%s",
               soffa_idtable_size(fresh), na, na ? " (" : "", added, na ? ")" : "", nr, nr ? " (" : "", removed,
               nr ? ")" : "", nc, nc ? " (" : "", changed, nc ? ")" : "", nk, nk ? " (" : "", rekeyed, nk ? ")" : "");
}

soffa_err_t
soffa_broker_reload(soffa_broker_t *self, char *why, size_t whylen)
{
    soffa_broker_cfg_t fresh;
    soffa_idtable_t *t = NULL;
    soffa_teams_t *teams = NULL;
    soffa_retention_t retention;   /* checked; [retention] is taken at the next restart */
    soffa_err_t rc = s_load(self->config_path, &fresh, &t, &teams, &retention, why, whylen);
    if (rc != SOFFA_OK) {
        self->reload_failures++;
        soffa_error("reload refused, the configuration loaded before stays in force: %s", why[0] ? why : soffa_strerror(rc));
        return rc;
    }
    s_cfg_changes(self, &fresh);
    s_reload_summary(self->agents, t);
    soffa_idtable_carry_over(t, self->agents);
    s_reload_t r = {self, t, 0};
    soffa_map_each(self->sessions, s_reload_session, &r);
    /* [teams K] is taken at once, with the agents it was checked against:
     * signals from now on are routed by the new rules; records already
     * stored stay in the inbox they went to. */
    if (!soffa_teams_same(self->teams, teams))
        soffa_info("reload: [teams] changed; signals are routed to the KAA teams by the new rules from now on");
    soffa_teams_destroy(&self->teams);
    self->teams = teams;
    soffa_info("reload: done; %zu session(s) closed", r.closed);
    /* The old table goes; an agent it alone still holds lives on in the
     * sessions that point at it (closed above) until they are forgotten. */
    soffa_idtable_destroy(&self->agents);
    self->agents = t;
    self->reloads++;
    return SOFFA_OK;
}

void
soffa_broker_print_config(const soffa_broker_t *self, FILE *out)
{
    const soffa_broker_cfg_t *c = &self->cfg;
    fprintf(out, "broker.name = %s\nbroker.endpoint = %s\nbroker.ipc_endpoint = %s\n", c->name, c->endpoint,
            c->ipc_endpoint);
    fprintf(out, "broker.secret_key = %s\nbroker.data_dir = %s\nbroker.log_level = %s\n", c->secret_key,
            c->data_dir, c->log_level);
    fprintf(out, "broker.heartbeat_ms = %lld\nbroker.expiry_ms = %lld\nbroker.sessions_per_agent = %lld\n",
            (long long) c->heartbeat_ms, (long long) c->expiry_ms, (long long) c->sessions_per_agent);
    if (c->previous_until_us) {
        char until[32];
        soffa_time_format_local_rfc3339(c->previous_until_us, until);
        fprintf(out, "broker.previous_endpoint = %s\nbroker.previous_secret_key = %s\nbroker.previous_until = %s\n",
                c->previous_endpoint, c->previous_secret_key, until);
    }
    fprintf(out, "store.map_size = %zu\nstore.batch_max = %lld\nstore.cursor_flush_ms = %lld\n", c->map_size,
            (long long) c->batch_max, (long long) c->cursor_flush_ms);
    fprintf(out, "delivery.window_max = %lld\n", (long long) c->window_max);
    fprintf(out, "metrics.listen = %s\n", c->metrics_listen[0] ? c->metrics_listen : "(off)");
    fprintf(out, "audit.checkpoint_every = %lld\naudit.checkpoint_ms = %lld\naudit.signing_key = %s\n",
            (long long) c->checkpoint_every, (long long) c->checkpoint_ms, c->signing_key);
    fprintf(out, "audit.signal_ack_due = %lld ms\naudit.referral_receipt_due = %lld ms\naudit.referral_expiry = %lld ms\n",
            (long long) c->signal_ack_due, (long long) c->referral_receipt_due, (long long) c->referral_expiry);
    fprintf(out, "case.not_reached_attempts = %lld\ncase.not_reached_channels = %lld\n",
            (long long) c->not_reached_attempts, (long long) c->not_reached_channels);
    size_t terms = 0;
    for (size_t i = 0; i < soffa_terms_category_count(self->terms); i++)
        terms += soffa_terms_term_count(self->terms, i, NULL);
    fprintf(out, "policy.sensitive_terms = %s (%zu terms in %zu categories)\n",
            c->sensitive_terms[0] ? c->sensitive_terms : "built-in", terms, soffa_terms_category_count(self->terms));
    fprintf(out, "policy.event_max_days = %lld\npolicy.concern_max_days = %lld\n", (long long) c->event_max_days,
            (long long) c->concern_max_days);
    fprintf(out, "keys.master_key = %s\n", c->master_key);
    for (int k = 1; k < SOFFA_RC_COUNT; k++) {
        char text[64];
        soffa_retention_rule_text(&self->retention.rules[k], text, sizeof text);
        fprintf(out, "retention.%s = %s\n", soffa_retention_class_name((soffa_retention_class_t) k), text);
    }
    fprintf(out, "retention.run_every = %lld ms\nretention.erasure_by = %s\n", (long long) c->retention_every,
            c->erasure_by[0] ? c->erasure_by : "(nobody)");
    for (size_t i = 0; i < soffa_idtable_size(self->agents); i++) {
        const soffa_ident_t *ident = soffa_idtable_at(self->agents, i);
        const soffa_identity_t *id = &ident->id;
        char units[SOFFA_UNITS_MAX * 18 + 1] = "";
        size_t o = 0;
        for (size_t u = 0; u < id->n_units && o < sizeof units; u++)
            o += (size_t) snprintf(units + o, sizeof units - o, "%s%s", u ? "," : "", id->units[u]);
        char keys[SOFFA_IDENT_KEYS * 14] = "";
        o = 0;
        for (size_t k = 0; k < ident->n_keys && o < sizeof keys; k++) {
            char z85[41];
            zmq_z85_encode(z85, ident->keys[k], 32);
            o += (size_t) snprintf(keys + o, sizeof keys - o, "%s%.8s...", k ? ", " : "", z85);
        }
        fprintf(out, "agent.%s = role %s, kommun %s%s%s%s%s%s%s, key%s %s\n", id->name, soffa_role_name(id->role),
                id->kommun[0] ? id->kommun : "-", units[0] ? ", units " : "", units, id->orgnr[0] ? ", orgnr " : "",
                id->orgnr, id->scope[0] ? ", scope " : "", id->scope, ident->n_keys > 1 ? "s" : "", keys);
        if (id->role == SOFFA_ROLE_AUDIT)
            fprintf(out, "agent.%s.controller = %s\n", id->name,
                    id->span_controllers ? "(spans controllers: span_controllers = yes)" : id->controller);
    }
}

/* ---- Frame handlers --------------------------------------------------------------- */

static void
s_on_hello(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    /* A client greets with the newest version it speaks; the session speaks
     * the lower of that and ours (2 adds the batch frames). */
    if (f->version < SOFFA_PROTOCOL_MIN) {
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_VERSION, "protocol version 1 or 2 is required");
        return;
    }
    s->version = f->version < SOFFA_PROTOCOL_VERSION ? f->version : SOFFA_PROTOCOL_VERSION;
    soffa_frame_t w = {.type = SOFFA_FRAME_WELCOME, .role = s->id->role,
                       .heartbeat_ms = (uint32_t) self->cfg.heartbeat_ms, .max_frame = SOFFA_WIRE_MAX_FRAME,
                       .version = s->version, .batch_max = s->version >= 2 ? SOFFA_BATCH_MAX : 0};
    snprintf(w.agent, sizeof w.agent, "%s", s->id->name);
    soffa_policy_inbox(s->id, w.mailboxes[0]);
    w.n_mailboxes = w.mailboxes[0][0] ? 1 : 0;
    if (s->id->kommun[0]) {
        memcpy(w.kommuner[0], s->id->kommun, 5);
        w.n_kommuner = 1;
    }
    if (s->state == SOFFA_SESS_NEW) {
        soffa_info("%s (%s) connected as %s", s->id->name, soffa_role_name(s->id->role), f->text);
        if (s->rid[0] == SOFFA_RID_PREVIOUS)
            soffa_warn("%s connected with the broker's previous key, served until %s: give it broker_key = the new "
                       "key (and the new endpoint)", s->id->name, self->cfg.previous_until);
        soffa_session_set_state(s, SOFFA_SESS_READY);
    }
    soffa_send_frame(self, s->rid, &w);
}

static void
s_on_ping(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    soffa_frame_t p = {.type = SOFFA_FRAME_PONG, .tag = f->tag};
    soffa_send_frame(self, s->rid, &p);
}

/* ---- Dispatch ------------------------------------------------------------------- */

/* The grammar at the top of this file, as data: which frames each state
 * takes, and who handles them. Anything else is answered with
 * ERROR(PROTOCOL_STATE) and changes nothing. */
#define S_IN(state) (1u << (state))
#define S_LIVE (S_IN(SOFFA_SESS_READY) | S_IN(SOFFA_SESS_OPENING) | S_IN(SOFFA_SESS_REPLAYING) | S_IN(SOFFA_SESS_CLOSING))

typedef void (*s_handler_fn)(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

static const struct {
    soffa_frame_type_t type;
    unsigned states;
    uint32_t version;              /* the protocol version that has the frame (HELLO: any) */
    s_handler_fn handler;
} s_grammar[] = {
    {SOFFA_FRAME_HELLO, S_IN(SOFFA_SESS_NEW) | S_LIVE, 0, s_on_hello},
    /* A PING in NEW means the agent had a session this broker no longer
     * knows (it restarted, or expired the session): the error tells the
     * agent to greet and subscribe again. */
    {SOFFA_FRAME_PING, S_LIVE, 1, s_on_ping},
    {SOFFA_FRAME_PUBLISH, S_LIVE, 1, soffa_publish_on_request},
    {SOFFA_FRAME_PUBLISH_BATCH, S_LIVE, 2, soffa_publish_on_batch},
    {SOFFA_FRAME_SUBSCRIBE, S_LIVE, 1, soffa_delivery_on_subscribe},
    {SOFFA_FRAME_ACK, S_LIVE, 1, soffa_delivery_on_ack},
    {SOFFA_FRAME_CREDIT, S_LIVE, 1, soffa_delivery_on_credit},
    {SOFFA_FRAME_STATUS_REQUEST, S_LIVE, 1, soffa_status_on_request},
    {SOFFA_FRAME_REPLAY, S_IN(SOFFA_SESS_READY), 1, soffa_replay_on_request},
    {SOFFA_FRAME_REPLAY_ACK, S_LIVE, 1, soffa_replay_on_replay_ack},
    {SOFFA_FRAME_ERASE, S_IN(SOFFA_SESS_READY), 1, soffa_retain_on_erase},
};

/* Decodes one frame and hands it to its handler. Returns the messages it
 * carried (a batch counts each), for the read budget. */
static size_t
s_on_frame(soffa_broker_t *self, soffa_session_t *s, const uint8_t *buf, size_t len)
{
    soffa_frame_t f;
    soffa_err_t rc = soffa_frame_decode(buf, len, &f);
    if (rc != SOFFA_OK) {
        soffa_info("bad frame from %s (%zu bytes): %s", s->id->name, len, soffa_strerror(rc));
        soffa_send_error(self, s->rid, 0, rc,
                     rc == SOFFA_ERR_TOO_LARGE ? "frame or field larger than allowed (a batch holds at most 256)"
                                               : "frame could not be decoded");
        soffa_frame_fini(&f);
        return 1;
    }
    s_handler_fn handler = NULL;
    uint32_t needs = 0;
    for (size_t i = 0; i < sizeof s_grammar / sizeof *s_grammar; i++)
        if (s_grammar[i].type == f.type && (s_grammar[i].states & S_IN(s->state))) {
            handler = s_grammar[i].handler;
            needs = s_grammar[i].version;
        }
    if (handler && needs > s->version) {
        char why[160];
        snprintf(why, sizeof why, "%s needs protocol version %u; this session greeted with version %u",
                 soffa_frame_type_name(f.type), needs, s->version);
        soffa_info("%s: %s", s->id->name, why);
        soffa_send_error(self, s->rid, f.tag, SOFFA_ERR_VERSION, why);
    } else if (!handler) {
        char why[120];
        snprintf(why, sizeof why, "%s is not allowed in state %s", soffa_frame_type_name(f.type),
                 soffa_session_state_name(s->state));
        soffa_info("%s: %s", s->id->name, why);
        soffa_send_error(self, s->rid, f.tag, SOFFA_ERR_PROTOCOL_STATE, why);
    } else {
        handler(self, s, &f);
    }
    size_t units = f.n_items ? f.n_items : 1;
    soffa_frame_fini(&f);
    return units;
}

/* Reads up to 256 frames, and at most 1,024 messages, from the router
 * without blocking: few enough that the loop comes round to new connections
 * (ZAP), finished commits and timers often, even under a flood of batches.
 * The batch still grows across reads while a commit is in flight. */
#define S_READ_MAX 256
#define S_READ_UNITS 1024

static void
s_read_router(soffa_broker_t *self, void *router, uint8_t which)
{
    size_t units = 0;
    for (int64_t i = 0; i < S_READ_MAX && units < S_READ_UNITS; i++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            self->last_drain = soffa_mono_us();   /* everything queued has been read */
            return;
        }
        zmq_msg_init(&body);
        int more = zmq_msg_more(&rid);
        if (!more || zmq_msg_recv(&body, router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        /* Extra parts are not part of the protocol: drop them. */
        bool extra = zmq_msg_more(&body);
        while (zmq_msg_more(&body)) {
            zmq_msg_t x;
            zmq_msg_init(&x);
            if (zmq_msg_recv(&x, router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&x);
                break;
            }
            int m = zmq_msg_more(&x);
            zmq_msg_close(&x);
            if (!m)
                break;
        }
        /* Who sent it is the CURVE key ZAP authenticated for this very
         * message (the user id is that key), never what the routing id once
         * belonged to. A key the configuration no longer has gets nothing. */
        const char *user = zmq_msg_gets(&body, "User-Id");
        uint8_t key[32];
        soffa_ident_t *ident = user && strlen(user) == 40 && zmq_z85_decode(key, user)
                                   ? soffa_idtable_by_key(self->agents, key) : NULL;
        const soffa_identity_t *id = ident ? &ident->id : NULL;
        const uint8_t *raw = zmq_msg_data(&rid);
        uint8_t r[SOFFA_RID_LEN] = {0};
        int fd = zmq_msg_get(&body, ZMQ_SRCFD);
        if (!id || fd < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        if (zmq_msg_size(&rid) != SOFFA_RID_LEN || raw[0] != 0) {
            /* A routing id the client chose: never a session (it could name
             * another's, or the next one libzmq would give out). */
            if (self->foreign_rids++ % 1024 == 0)
                soffa_warn("%s connected with a routing id of its own choosing; refused (%llu such frames so far)",
                           id->name, (unsigned long long) self->foreign_rids);
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        if (which == SOFFA_RID_PREVIOUS && self->prev_state != 1) {
            zmq_msg_close(&rid);   /* the previous key's window is over: its socket is closing */
            zmq_msg_close(&body);
            continue;
        }
        memcpy(r, raw, SOFFA_RID_LEN);
        r[0] = which;
        soffa_session_t *s = soffa_map_get(self->sessions, r, SOFFA_RID_LEN);
        bool other_key = s && (memcmp(s->key, key, 32) != 0 || (s->ident != ident && s->state != SOFFA_SESS_CLOSED));
        if (s && (other_key || s->fd != fd))
            soffa_session_forget(self, s, other_key ? "a frame with another key came under its routing id"
                                                    : "its routing id now arrives on another connection");
        else if (s && s->state == SOFFA_SESS_CLOSED) {
            zmq_msg_close(&rid);   /* closed: nothing more is answered */
            zmq_msg_close(&body);
            continue;
        }
        s = soffa_map_get(self->sessions, r, SOFFA_RID_LEN);
        if (!s)
            s = soffa_session_new(self, r, ident, key, fd);
        if (s) {
            soffa_session_touch(self, s);
            if (extra)
                soffa_send_error(self, s->rid, 0, SOFFA_ERR_MALFORMED, "a frame is one message part");
            else
                units += s_on_frame(self, s, zmq_msg_data(&body), zmq_msg_size(&body));
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
}

/* ---- When a session ends ------------------------------------------------------------ */

/* What a session's end means above the session layer (soffa_session_release
 * calls it): a replay under way is recorded as cut off (OPENING: the opening
 * record finds no session when it commits and records the cut-off itself;
 * CLOSING: the read is complete), and its readers go, their positions
 * saved. */
static void
s_released(soffa_broker_t *self, soffa_session_t *s)
{
    if (s->state == SOFFA_SESS_REPLAYING) {
        /* The read stops here; the access logs say how far it got. */
        soffa_replay_cut_off(self, s);
        soffa_info("%s by %s cut off after %llu record(s)", s->replay.request, s->id->name,
                   (unsigned long long) s->replay.count);
    }
    soffa_replay_end(s);
    for (size_t i = 0; i < s->n_consumers; i++)
        soffa_delivery_consumer_free(self, s->consumers[i]);
}

/* ---- After a commit -------------------------------------------------------------- */

/* Holds the answer to a batched publish (p->rc its outcome) until the
 * report of its commit ends. Without memory it is dropped, as an answer to
 * a peer whose queue is full is: the sender retries and gets the same
 * sequence back. */
static void
s_answer_hold(soffa_broker_t *self, const soffa_pending_t *p, uint64_t seq, bool duplicate)
{
    if (self->n_answers == self->answers_cap) {
        size_t cap = self->answers_cap ? 2 * self->answers_cap : 256;
        soffa_answer_t *v = realloc(self->answers, cap * sizeof *v);
        if (!v) {
            soffa_warn("out of memory: the answer to a batched publish is not sent; the sender will retry");
            return;
        }
        self->answers = v;
        self->answers_cap = cap;
    }
    soffa_answer_t *a = &self->answers[self->n_answers++];
    memcpy(a->rid, p->rid, SOFFA_RID_LEN);
    a->tag = p->tag;
    a->seq = seq;
    a->duplicate = duplicate;
    a->rc = p->rc;
    memcpy(a->mailbox, p->env.mailbox, sizeof a->mailbox);
}

/* By connection (the order within one does not matter: tags name them). */
static int
s_answer_cmp(const void *x, const void *y)
{
    return memcmp(((const soffa_answer_t *) x)->rid, ((const soffa_answer_t *) y)->rid, SOFFA_RID_LEN);
}

/* The report of a commit has ended: each connection gets the answers to its
 * batched publishes in PUBLISH-ACKS frames (SOFFA_ACKS_MAX at most each). */
static void
s_committed_end(soffa_broker_t *self)
{
    if (!self->n_answers)
        return;
    qsort(self->answers, self->n_answers, sizeof *self->answers, s_answer_cmp);
    soffa_frame_item_t items[SOFFA_ACKS_MAX];
    for (size_t i = 0; i < self->n_answers;) {
        size_t n = 0;
        const uint8_t *rid = self->answers[i].rid;
        while (i < self->n_answers && n < SOFFA_ACKS_MAX && !memcmp(self->answers[i].rid, rid, SOFFA_RID_LEN)) {
            const soffa_answer_t *a = &self->answers[i++];
            items[n++] = (soffa_frame_item_t) {.tag = a->tag, .seq = a->seq, .duplicate = a->duplicate,
                                               .code = (uint32_t) a->rc, .mailbox = a->mailbox,
                                               .text = a->rc ? soffa_strerror(a->rc) : NULL};
        }
        soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH_ACKS, .items = items, .n_items = n};
        if (!soffa_send_frame(self, rid, &f))
            soffa_debug("%zu answer(s) to batched publishes not delivered; the sender will retry", n);
    }
    self->n_answers = 0;
}

/* The commit pipeline's report of one record of a finished batch (see
 * soffa_commit_done_fn): acknowledgements, the counts of mailboxes and
 * awaited answers, what a consent withdrawal sets off, and the next step of
 * a read whose access record is now durable. */
static void
s_committed(soffa_broker_t *self, soffa_pending_t *p, uint64_t seq, bool duplicate)
{
    soffa_session_t *s = p->kind == SOFFA_P_READ_OPENED || p->kind == SOFFA_P_READ_COMPLETED ? soffa_session_of(self, p->rid) : NULL;
    /* What follows a record (a rerouted signal, a handover) goes once it is
     * stored, and never for a duplicate or a record that was not. */
    while (p->after) {
        soffa_followup_t *f = p->after;
        p->after = f->next;
        if (p->rc == SOFFA_OK && !duplicate) {
            soffa_publish_followup_push(self, f);
        } else {
            free(f->rec.body);
            free(f);
        }
    }
    if (p->rc != SOFFA_OK) {
        if (p->kind == SOFFA_P_PUBLISH)
            soffa_metrics_refused(self, p->env.msg_type, p->rc);
        if (p->kind == SOFFA_P_PUBLISH && p->batched) {
            s_answer_hold(self, p, 0, false);
        } else if (p->kind == SOFFA_P_PUBLISH) {
            soffa_send_error(self, p->rid, p->tag, p->rc, NULL);
        } else if (s && (s->state == SOFFA_SESS_OPENING || s->state == SOFFA_SESS_CLOSING)) {
            /* A read that cannot be logged is not done (OPENING: nothing
             * was sent) or reported as failed (CLOSING). */
            soffa_error("%s by %s could not be recorded in the access log: %s", s->replay.request, s->id->name,
                        soffa_strerror(p->rc));
            soffa_send_error(self, s->rid, s->replay.tag, p->rc, "the read could not be recorded in the access log");
            soffa_session_replaying_remove(self, s);
            soffa_replay_end(s);
            soffa_session_set_state(s, SOFFA_SESS_READY);
        }
        return;
    }
    if (!duplicate) {
        soffa_mailbox_t *m = soffa_delivery_mailbox(self, p->env.mailbox);
        if (m) {
            m->depth++;
            m->last_seq = seq;
        }
        if (p->dec.answers)
            soffa_status_await_answered(self, p->dec.answers, p->dec.answers_id);
        if (p->dec.awaits)
            soffa_status_await_add(self, p->dec.awaits, p->dec.awaits_id, m, p->env.received_at_us);
    }
    switch (p->kind) {
    case SOFFA_P_PUBLISH: {
        if (!duplicate) {
            self->published++;
            soffa_metrics_published(self, p->env.msg_type);
        } else {
            soffa_metrics_duplicate(self);
        }
        if (p->batched) {
            s_answer_hold(self, p, seq, duplicate);
        } else {
            soffa_frame_t ack = {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = p->tag, .seq = seq,
                                 .duplicate = duplicate};
            memcpy(ack.mailbox, p->env.mailbox, sizeof ack.mailbox);
            if (!soffa_send_frame(self, p->rid, &ack))
                soffa_debug("acknowledgement of seq %llu not delivered; the sender will retry",
                            (unsigned long long) seq);
        }
        if (p->withdraws && !duplicate) {
            soffa_followup_t *f = calloc(1, sizeof *f);
            if (f) {
                memcpy(f->consent_id, p->consent_id, 16);
                memcpy(f->cause, p->env.message_id, 16);
                soffa_publish_followup_push(self, f);
            } else {
                soffa_error("out of memory: the notices for the withdrawal at seq %llu are not sent",
                            (unsigned long long) seq);
            }
        }
        break;
    }
    case SOFFA_P_READ_OPENED:
        if (s && s->state == SOFFA_SESS_OPENING) {
            /* The read begins once its record is in every access log it concerns. */
            if (soffa_replay_access_durable(s, p->tag, seq))
                soffa_replay_begin(self, s);
        } else {
            /* The reader went away before its read began. */
            soffa_followup_t *f = calloc(1, sizeof *f);
            if (f) {
                f->record = true;
                soffa_replay_access_queue(self, &f->rec, NULL, SOFFA_ACCESS_CUT_OFF, 0, seq, SOFFA_P_BROKER,
                                          p->env.mailbox);
                snprintf(f->rec.env.sender_agent, sizeof f->rec.env.sender_agent, "%s", p->env.sender_agent);
                f->rec.env.sender_role = p->env.sender_role;
                soffa_publish_followup_push(self, f);
            }
        }
        break;
    case SOFFA_P_READ_COMPLETED:
        if (s && s->state == SOFFA_SESS_CLOSING && soffa_replay_access_durable(s, p->tag, seq)) {
            soffa_info("%s by %s: %llu record(s) of %zu data controller(s), logged from seq %llu and %llu",
                       s->replay.request, s->id->name, (unsigned long long) s->replay.count, s->replay.n_ctl,
                       (unsigned long long) s->replay.opened_seq, (unsigned long long) s->replay.closed_seq);
            soffa_frame_t end = {.type = SOFFA_FRAME_REPLAY_END, .tag = s->replay.tag, .count = s->replay.count,
                                 .access_seq = s->replay.closed_seq};
            soffa_send_frame(self, s->rid, &end);
            soffa_session_replaying_remove(self, s);
            soffa_replay_end(s);
            soffa_session_set_state(s, SOFFA_SESS_READY);
        }
        break;
    case SOFFA_P_CHECKPOINT:   /* the pipeline keeps its own account */
    case SOFFA_P_BROKER:
        break;
    }
}

/* ---- Open, run, destroy --------------------------------------------------------------- */

/* A CURVE ROUTER with the broker's options, its monitor, bound to ep (and
 * ipc when given). */
static soffa_err_t
s_router_open(soffa_broker_t *self, void **router_p, void **monitor_p, const char *secret, const char *monitor_addr,
              const char *ep, const char *ipc, char *why, size_t whylen)
{
    void *router = *router_p = zmq_socket(self->ctx, ZMQ_ROUTER);
    if (!router) {
        snprintf(why, whylen, "cannot make a socket: %s", zmq_strerror(errno));
        return SOFFA_ERR_TRANSPORT;
    }
    int one = 1, sndhwm = S_SNDHWM, rcvhwm = S_RCVHWM, linger = 2000;
    int64_t maxmsg = S_MAX_WIRE_IN;
    zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, secret, 41);
    zmq_setsockopt(router, ZMQ_ZAP_DOMAIN, "soffa", 5);
    zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(router, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    /* A national rollout reconnects all at once after a restart: with
     * ZeroMQ's default backlog of 100, the rest wait out TCP's SYN retries
     * (1 s, 3 s, ...). The kernel caps this at net.core.somaxconn. */
    int backlog = 4096;
    zmq_setsockopt(router, ZMQ_BACKLOG, &backlog, sizeof backlog);
    zmq_setsockopt(router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* Sessions end with their connections: the monitor says when one goes. */
    if (zmq_socket_monitor(router, monitor_addr, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0
        || !(*monitor_p = zmq_socket(self->ctx, ZMQ_PAIR)) || zmq_connect(*monitor_p, monitor_addr) != 0) {
        snprintf(why, whylen, "cannot watch the connections: %s", zmq_strerror(errno));
        return SOFFA_ERR_TRANSPORT;
    }
    /* A local (ipc) socket is the broker user's own (0600), whatever the
     * umask: other local users get no connection to try keys on. */
    const char *eps[2] = {ep, ipc};
    for (int i = 0; i < 2; i++) {
        if (!eps[i] || !eps[i][0])
            continue;
        mode_t old = umask(077);
        int brc = zmq_bind(router, eps[i]);
        umask(old);
        if (brc != 0) {
            snprintf(why, whylen, "cannot listen on %s: %s", eps[i], zmq_strerror(errno));
            return SOFFA_ERR_TRANSPORT;
        }
    }
    return SOFFA_OK;
}

/* During a key rotation, the previous key on its own endpoint until
 * previous_until; once that has passed, nothing (and the log says so). */
static soffa_err_t
s_previous_open(soffa_broker_t *self, char *why, size_t whylen)
{
    const soffa_broker_cfg_t *c = &self->cfg;
    if (!c->previous_until_us)
        return SOFFA_OK;
    char until[32];
    soffa_time_format_local_rfc3339(c->previous_until_us, until);
    if (soffa_now_us() >= c->previous_until_us) {
        soffa_warn("the previous key's window ended at %s: it is not served; remove previous_endpoint, "
                   "previous_secret_key and previous_until from [broker]", until);
        return SOFFA_OK;
    }
    char path[1024];
    if (!soffa_cfg_path(self->config_path, c->previous_secret_key, path, sizeof path))
        return SOFFA_ERR_CONFIG;
    soffa_err_t rc = soffa_keys_load_secret(path, self->prev_public, self->prev_secret);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "[broker] previous_secret_key %s: %s%s", path, soffa_strerror(rc),
                 rc == SOFFA_ERR_PERMISSION ? " (the key file must be 0600)" : "");
        return rc;
    }
    if (!strcmp(self->prev_public, self->public_key)) {
        snprintf(why, whylen, "[broker] previous_secret_key %s holds the same key as secret_key", path);
        return SOFFA_ERR_CONFIG;
    }
    rc = s_router_open(self, &self->router_prev, &self->monitor_prev, self->prev_secret, SOFFA_MONITOR "-previous",
                       c->previous_endpoint, NULL, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    self->prev_state = 1;
    soffa_info("key rotation: the previous key %.8s... is served on %s until %s; the key %.8s... on %s", self->prev_public,
               c->previous_endpoint, until, self->public_key, c->endpoint);
    return SOFFA_OK;
}

typedef struct {
    soffa_broker_t *self;
    bool forget;                      /* false: close with a reason; true: forget */
    soffa_session_t *found;
} s_prev_t;

static int
s_prev_session(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_prev_t *p = ctx;
    soffa_session_t *s = v;
    if (s->rid[0] != SOFFA_RID_PREVIOUS)
        return 0;
    if (p->forget) {
        p->found = s;   /* forgotten by the caller: the map must not change here */
        return 1;
    }
    if (s->state != SOFFA_SESS_CLOSED) {
        char why[300];
        snprintf(why, sizeof why, "the broker's previous key was retired at %s: configure broker_key with its new key "
                 "(and broker with the new endpoint)", p->self->cfg.previous_until);
        soffa_session_close(p->self, s, SOFFA_ERR_SESSION_CLOSED, why);
    }
    return 0;
}

/* The end of a key rotation's window: the previous key's sessions are
 * closed with a reason, and a moment later its socket goes. */
static void
s_previous_tick(soffa_broker_t *self)
{
    if (self->prev_state == 1 && soffa_now_us() >= self->cfg.previous_until_us) {
        s_prev_t p = {self, false, NULL};
        soffa_map_each(self->sessions, s_prev_session, &p);
        self->prev_state = 2;
        self->prev_closing_at = soffa_mono_us();
        soffa_warn("key rotation: the previous key's window ended (%s); its sessions are closed", self->cfg.previous_until);
    } else if (self->prev_state == 2 && soffa_mono_us() >= self->prev_closing_at + SOFFA_CLOSE_GRACE_US + 500000) {
        for (;;) {
            s_prev_t p = {self, true, NULL};
            soffa_map_each(self->sessions, s_prev_session, &p);
            if (!p.found)
                break;
            soffa_session_forget(self, p.found, "the previous key's endpoint closed");
        }
        zmq_socket_monitor(self->router_prev, NULL, 0);
        zmq_close(self->monitor_prev);
        zmq_close(self->router_prev);
        self->monitor_prev = self->router_prev = NULL;
        self->prev_state = 0;
        explicit_bzero(self->prev_secret, sizeof self->prev_secret);
        soffa_info("key rotation: %s closed; only the key %.8s... is served now", self->cfg.previous_endpoint,
                   self->public_key);
    }
}

/* A store copied by soffa backup (it carries the copy's mark) is being
 * restored: the lost broker may have numbered records past the backup's
 * head, and agents hold those numbers (inbox copies, acknowledged
 * positions, a sender's receipt). The first record here is a restore
 * record whose sequence jumps past anything the lost broker can have
 * given out; it clears the mark in the same commit, and a signed
 * checkpoint vouches for it at once. */
static soffa_err_t
s_restore(soffa_broker_t *self, char *why, size_t whylen)
{
    int64_t taken_at = 0;
    if (!soffa_store_backup_mark(self->store, &taken_at))
        return SOFFA_OK;
    uint64_t head = 0;
    soffa_store_head(self->store, &head, NULL, NULL);
    /* No checkpoint in the restore's commit: the restore record follows
     * the backup's head directly. (A checkpoint there could take a number
     * the lost broker gave to a checkpoint an auditor holds.) */
    uint64_t cp_seq = self->cp_seq;
    bool cp_force = self->cp_force;
    self->cp_seq = head;
    self->cp_force = false;
    soffa_restore_t r = {.from_seq = head, .backup_at_us = taken_at, .restored_at_us = soffa_now_us()};
    uint64_t next = soffa_restore_next_seq(head, r.restored_at_us);
    uint8_t *body = NULL;
    size_t len = 0;
    soffa_err_t rc = soffa_restore_encode(&r, &body, &len);
    if (rc != SOFFA_OK)
        return rc;
    soffa_pending_t *p = soffa_commit_pending_add(self);
    soffa_commit_broker_record(self, p, SOFFA_P_BROKER, SOFFA_RK_RESTORE, body, len, SOFFA_RESTORE_MAILBOX);
    p->seq_from = next;
    p->state[0].del = true;
    p->state[0].klen = sizeof SOFFA_STORE_BACKUP_MARK - 1;
    memcpy(p->state[0].key, SOFFA_STORE_BACKUP_MARK, p->state[0].klen);
    p->n_state = 1;
    soffa_commit(self);
    self->cp_seq = cp_seq;
    self->cp_force = cp_force;
    uint64_t now_head = 0;
    soffa_store_head(self->store, &now_head, NULL, NULL);
    if (now_head != next) {
        snprintf(why, whylen, "the store is a restored backup, and its restore record could not be written");
        return SOFFA_ERR_STORE_IO;
    }
    soffa_commit_checkpoint(self);   /* vouches for the restore record at once */
    char at[32];
    soffa_time_format_local_rfc3339(taken_at, at);
    soffa_warn("this store is a backup taken at %s, restored: its history ends at seq %llu; numbering goes on at "
               "%llu (restore record), past anything the lost broker gave out. Messages acknowledged after the backup "
               "are not here; the agents resend what is still in their outboxes",
               at, (unsigned long long) head, (unsigned long long) next);
    return SOFFA_OK;
}

soffa_err_t
soffa_broker_master_load(soffa_broker_t *self, char *why, size_t whylen)
{
    if (self->master.loaded)
        return SOFFA_OK;
    char base[1024], data[1024];
    snprintf(base, sizeof base, "%s", self->config_path);
    char *slash = strrchr(base, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(base, sizeof base, ".");
    if (!soffa_cfg_path(self->config_path, self->cfg.data_dir, data, sizeof data))
        return SOFFA_ERR_CONFIG;
    char kwhy[900] = "";
    soffa_err_t rc = soffa_seal_master_load(self->cfg.master_key, base, data, &self->master, kwhy, sizeof kwhy);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "[keys] %s", kwhy);
        return rc == SOFFA_ERR_NOT_FOUND ? SOFFA_ERR_MASTER_KEY : rc;
    }
    return SOFFA_OK;
}

soffa_err_t
soffa_broker_open(soffa_broker_t *self, char *why, size_t whylen)
{
    char path[1024];
    soffa_err_t rc;
    if (!soffa_cfg_path(self->config_path, self->cfg.secret_key, path, sizeof path))
        return SOFFA_ERR_CONFIG;
    rc = soffa_keys_load_secret(path, self->public_key, self->secret_key);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "%s: %s%s", path, soffa_strerror(rc),
                 rc == SOFFA_ERR_PERMISSION ? " (the key file must be 0600)" : "");
        return rc;
    }
    if (!soffa_cfg_path(self->config_path, self->cfg.data_dir, path, sizeof path))
        return SOFFA_ERR_CONFIG;
    snprintf(self->data_path, sizeof self->data_path, "%s", path);
    rc = soffa_broker_master_load(self, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    char swhy[512] = "";
    soffa_store_opts_t so = {.path = path, .map_size = self->cfg.map_size, .master = &self->master, .why = swhy,
                             .whylen = sizeof swhy};
    rc = soffa_store_open(&self->store, &so);
    if (rc != SOFFA_OK) {
        if (swhy[0])
            snprintf(why, whylen, "%s", swhy);
        else
            snprintf(why, whylen, "store %s: %s", path, soffa_strerror(rc));
        return rc;
    }
    char idhex[2 * SOFFA_SEAL_ID + 1];
    soffa_seal_master_id_hex(&self->master, idhex);
    if (soffa_seal_plaintext())
        soffa_warn("store %s is NOT encrypted: this is a build without encryption at rest (SOFFA_BENCH_PLAINTEXT), "
                   "for soffa-bench only; never give it personal data", path);
    else
        soffa_info("store %s sealed under master key %s", path, idhex);
    rc = soffa_store_mailboxes(self->store, soffa_delivery_load_mailbox, self);
    if (rc == SOFFA_OK) {
        self->await_signals.delay_us = self->cfg.signal_ack_due * 1000;
        self->await_referrals.delay_us = self->cfg.referral_receipt_due * 1000;
        rc = soffa_status_await_load(self);
    }
    if (rc == SOFFA_OK)
        rc = soffa_case_build(self);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s", path, soffa_strerror(rc));
        return rc;
    }
    rc = soffa_commit_signing_key(self, path, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    self->committed = s_committed;
    self->committed_end = s_committed_end;
    self->batch_done = soffa_metrics_committed;
    self->released = s_released;
    rc = soffa_commit_start(self);
    if (rc != SOFFA_OK)
        return rc;
    rc = s_restore(self, why, whylen);
    if (rc != SOFFA_OK)
        return rc;

    /* libzmq numbers the connections a ROUTER accepts from a counter that
     * starts at rand(), which nobody seeds: the ids of the next connections
     * would be known in advance, and a client squatting on them with ids of
     * its own choosing makes libzmq abort on the collision. Seed it from
     * the system's randomness before the router exists. */
    srand((unsigned) randombytes_random());
    self->ctx = zmq_ctx_new();
    if (!self->ctx)
        return SOFFA_ERR_TRANSPORT;
    /* The ZAP handler must be bound before any CURVE socket accepts. */
    self->zap = zmq_socket(self->ctx, ZMQ_REP);
    if (!self->zap || zmq_bind(self->zap, "inproc://zeromq.zap.01") != 0) {
        snprintf(why, whylen, "cannot start the authentication handler: %s", zmq_strerror(errno));
        return SOFFA_ERR_TRANSPORT;
    }
    rc = s_router_open(self, &self->router, &self->monitor, self->secret_key, SOFFA_MONITOR, self->cfg.endpoint,
                       self->cfg.ipc_endpoint, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    rc = s_previous_open(self, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    rc = soffa_metrics_listen(self, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    self->started_at_us = soffa_now_us();
    uint64_t head;
    soffa_store_head(self->store, &head, NULL, NULL);
    soffa_info("listening on %s%s%s with %zu agent(s); store %s, head at seq %llu", self->cfg.endpoint,
               self->cfg.ipc_endpoint[0] ? " and " : "", self->cfg.ipc_endpoint, soffa_idtable_size(self->agents), path,
               (unsigned long long) head);
    return SOFFA_OK;
}

static int
s_wake_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    soffa_delivery_pump_mailbox(ctx, v);
    return 0;
}

static void
s_wake_all(soffa_broker_t *self)
{
    soffa_map_each(self->mailboxes, s_wake_one, self);
}

static void
s_pump_replays(soffa_broker_t *self)
{
    for (soffa_session_t *s = self->replaying; s;) {
        soffa_session_t *next = s->rp_next;   /* a replay that ends leaves the list */
        soffa_replay_pump(self, s);
        s = next;
    }
}

soffa_err_t
soffa_broker_run(soffa_broker_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    /* The sockets, then what is there only sometimes: a scrape waiting for
     * its answer, the previous key's socket during a rotation. */
    enum { I_ROUTER, I_ZAP, I_DONE, I_MONITOR, I_MAX = 7 };
    zmq_pollitem_t items[I_MAX] = {{self->router, 0, ZMQ_POLLIN, 0}, {self->zap, 0, ZMQ_POLLIN, 0},
                                   {NULL, self->done_fd, ZMQ_POLLIN, 0}, {self->monitor, 0, ZMQ_POLLIN, 0}};
    int i_metrics = -1, i_prev = -1;
    int64_t now = soffa_mono_us();
    self->last_drain = now;
    self->next_flush = now + self->cfg.cursor_flush_ms * 1000;
    self->next_expiry = now + 500000;
    /* Gallring at start: what ran out while the broker was down (and what a
     * run cut short left) goes before anything is served. */
    soffa_retain_tick(self);
    while (!*stop) {
        soffa_notify_watchdog();
        if (reload && *reload) {
            *reload = 0;
            char why[1024] = "";
            soffa_notify_reloading();
            soffa_info("reload: reading %s", self->config_path);
            soffa_broker_reload(self, why, sizeof why);
            soffa_notify_ready(NULL);
        }
        bool busy = self->replaying || self->followups;
        int n_items = I_MONITOR + 1;
        i_metrics = i_prev = -1;
        if (soffa_metrics_fd(self) >= 0) {
            i_metrics = n_items++;
            items[i_metrics] = (zmq_pollitem_t) {NULL, soffa_metrics_fd(self), ZMQ_POLLIN, 0};
        }
        if (self->router_prev) {
            i_prev = n_items;
            items[n_items++] = (zmq_pollitem_t) {self->router_prev, 0, ZMQ_POLLIN, 0};
            items[n_items++] = (zmq_pollitem_t) {self->monitor_prev, 0, ZMQ_POLLIN, 0};
        }
        int n = zmq_poll(items, n_items, busy ? 0 : 50);
        if (n < 0 && errno != EINTR) {
            soffa_error("poll failed: %s", zmq_strerror(errno));
            return SOFFA_ERR_TRANSPORT;
        }
        /* Connections that went away first: a frame read below must never
         * land in a session whose connection is gone. */
        if (n > 0 && (items[I_MONITOR].revents & ZMQ_POLLIN))
            soffa_session_monitor(self, self->monitor);
        if (n > 0 && i_prev >= 0 && (items[i_prev + 1].revents & ZMQ_POLLIN))
            soffa_session_monitor(self, self->monitor_prev);
        if (n > 0 && (items[I_ZAP].revents & ZMQ_POLLIN))
            soffa_zap_handle(self);
        if (n > 0 && i_metrics >= 0 && (items[i_metrics].revents & ZMQ_POLLIN))
            soffa_metrics_answer(self);
        uint64_t before = self->published;
        if (n > 0 && (items[I_DONE].revents & ZMQ_POLLIN))
            soffa_commit_flight_wait(self);   /* done: answer it */
        if (n > 0 && (items[I_ROUTER].revents & ZMQ_POLLIN))
            s_read_router(self, self->router, SOFFA_RID_MAIN);
        else if (n == 0)
            self->last_drain = soffa_mono_us();   /* nothing was waiting */
        if (n > 0 && i_prev >= 0 && (items[i_prev].revents & ZMQ_POLLIN))
            s_read_router(self, self->router_prev, SOFFA_RID_PREVIOUS);
        soffa_publish_followups_run(self);
        soffa_commit_submit(self);   /* what was read (and a due checkpoint) goes to the writer once it is free */
        if (self->published != before || self->followups)
            s_wake_all(self);
        s_pump_replays(self);
        now = soffa_mono_us();
        if (now >= self->next_flush) {
            soffa_delivery_flush_cursors(self);
            self->next_flush = now + self->cfg.cursor_flush_ms * 1000;
        }
        if (now >= self->next_expiry) {
            soffa_session_expire(self);
            soffa_session_cut_due(self);
            s_previous_tick(self);
            soffa_status_await_tick(self);
            soffa_status_expire_tick(self);
            /* Gallring at start and then every [retention] run_every. */
            soffa_retain_tick(self);
            /* Peers whose queue was full get another chance. */
            s_wake_all(self);
            self->next_expiry = now + 500000;
        }
    }
    /* Stop: reads under way are recorded as cut off, everything read has
     * been committed and answered, and a last checkpoint vouches for all
     * of it. */
    while (self->replaying) {
        soffa_session_t *s = self->replaying;
        soffa_session_release(self, s);
        s->ident->live++;   /* still counted until forgotten */
        soffa_session_set_state(s, SOFFA_SESS_READY);
    }
    soffa_commit(self);
    while (self->followups) {
        soffa_publish_followups_run(self);
        soffa_commit(self);
    }
    soffa_commit_checkpoint(self);
    soffa_delivery_flush_cursors(self);
    soffa_commit(self);
    soffa_info("stopping: %llu published in %llu commits (%.3f ms each on average), %llu refused, %llu delivered",
               (unsigned long long) self->published, (unsigned long long) self->commits,
               self->commits ? (double) self->commit_us / 1000.0 / (double) self->commits : 0.0,
               (unsigned long long) self->refused, (unsigned long long) self->delivered);
    return SOFFA_OK;
}

static int
s_free_session(void *ctx, const void *k, size_t kl, void *v)
{
    (void) ctx;
    (void) k;
    (void) kl;
    soffa_session_t *s = v;
    for (size_t i = 0; i < s->n_consumers; i++) {
        soffa_ring_fini(&s->consumers[i]->ring);
        free(s->consumers[i]);
    }
    soffa_replay_end(s);
    soffa_ident_unref(&s->ident);
    free(s);
    return 0;
}

static int
s_free_value(void *ctx, const void *k, size_t kl, void *v)
{
    (void) ctx;
    (void) k;
    (void) kl;
    free(v);
    return 0;
}

void
soffa_broker_destroy(soffa_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_broker_t *self = *self_p;
    if (self->sessions) {
        if (self->store && self->writer_started) {
            soffa_delivery_flush_cursors(self);
            soffa_commit(self);
        }
        soffa_map_each(self->sessions, s_free_session, NULL);
        soffa_map_destroy(&self->sessions);
    }
    soffa_map_destroy(&self->by_fd);
    if (self->mailboxes) {
        soffa_map_each(self->mailboxes, s_free_value, NULL);
        soffa_map_destroy(&self->mailboxes);
    }
    if (self->awaits) {
        soffa_map_each(self->awaits, s_free_value, NULL);
        soffa_map_destroy(&self->awaits);
    }
    while (self->followups) {
        soffa_followup_t *f = self->followups;
        self->followups = f->next;
        free(f->rec.body);
        free(f);
    }
    if (self->monitor_prev)
        zmq_close(self->monitor_prev);
    if (self->router_prev) {
        zmq_socket_monitor(self->router_prev, NULL, 0);
        zmq_close(self->router_prev);
    }
    explicit_bzero(self->prev_secret, sizeof self->prev_secret);
    if (self->monitor)
        zmq_close(self->monitor);
    if (self->router) {
        zmq_socket_monitor(self->router, NULL, 0);
        zmq_close(self->router);
    }
    if (self->zap)
        zmq_close(self->zap);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    soffa_metrics_destroy(&self->metrics);   /* first: its HTTP threads stop before what they could wait for */
    soffa_commit_stop(self);
    free(self->answers);
    if (self->dbatch) {
        soffa_dbatch_fini(self->dbatch);
        free(self->dbatch);
    }
    soffa_store_close(&self->store);
    soffa_idtable_destroy(&self->agents);
    soffa_teams_destroy(&self->teams);
    soffa_terms_destroy(&self->terms);
    explicit_bzero(self->secret_key, sizeof self->secret_key);
    sodium_memzero(self->sign_sk, sizeof self->sign_sk);
    soffa_seal_master_wipe(&self->master);
    free(self);
    *self_p = NULL;
}
