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
 *    request    = publish / subscribe / ack / credit / replay / status / ping / erase
 *    publish    = C:PUBLISH ( S:PUBLISH-ACK / S:ERROR )
 *    subscribe  = C:SUBSCRIBE ( *S:DELIVER / S:ERROR )
 *                 ; deliveries keep coming as the mailbox grows, never more
 *                 ; than the window unacknowledged at a time
 *    ack        = C:ACK                  ; cumulative, per mailbox, with the hash
 *                                        ; of the record acknowledged; frees
 *                                        ; window and grows it (slow start)
 *    credit     = C:CREDIT               ; a subscribed mailbox: sets its window
 *    replay     = C:REPLAY ( *S:DELIVER *C:REPLAY-ACK S:REPLAY-END / S:ERROR )
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
 *  frame that does not decode with ERROR(MALFORMED). Neither closes the
 *  session.
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
#include "soffa_log.h"
#include "soffa_notify.h"

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
#include "soffa_send.h"

#define S_MAX_AGENTS 8192
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

typedef struct {
    char public_key[512];          /* Z85 key, or a .pub/.key file */
    char role[16];
    char kommun[8];
    char unit[1024];
    char orgnr[16];
    char scope[SOFFA_SCOPE_MAX];
    bool span_controllers;
} s_agent_cfg_t;

static const soffa_cfg_key_t s_agent_keys[] = {
    {"public_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_agent_cfg_t, public_key), 512, "the agent's public key (Z85) or its .pub file"},
    {"role", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_agent_cfg_t, role), 16, "school, kaa, social, af or audit"},
    {"kommun", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, kommun), 8, "municipality code the agent serves"},
    {"unit", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, unit), 1024, "unit codes, comma-separated: a school's skolenhetskoder (required), else local units"},
    {"orgnr", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, orgnr), 16, "organisationsnummer messages may claim"},
    {"scope", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, scope), SOFFA_SCOPE_MAX, "audit: mailbox patterns it may replay"},
    {"span_controllers", SOFFA_CFG_BOOL, "no", 0, 0, offsetof(s_agent_cfg_t, span_controllers), 0, "audit: the scope may cover more than one data controller's records"},
};

/* ---- Configuration loading ------------------------------------------------------ */

static void *
s_add_agent(void *ctx, const char *name)
{
    soffa_broker_t *self = ctx;
    if (self->n_ids >= S_MAX_AGENTS || strlen(name) >= SOFFA_NAME_MAX || strchr(name, '|'))
        return NULL;
    s_agent_cfg_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    /* Stash the raw section; it is checked and converted after loading. */
    soffa_identity_t *id = &self->ids[self->n_ids++];
    memset(id, 0, sizeof *id);
    snprintf(id->name, sizeof id->name, "%s", name);
    soffa_map_sput(self->by_name, id->name, a);
    return a;
}

static soffa_err_t
s_convert_agent(soffa_broker_t *self, soffa_identity_t *id, const s_agent_cfg_t *a, char *why, size_t whylen)
{
    id->role = soffa_role_from_name(a->role);
    if (id->role == SOFFA_ROLE_NONE || id->role == SOFFA_ROLE_BROKER) {
        snprintf(why, whylen, "%s: [agent %s] role must be school, kaa, social, af or audit, not '%s'",
                 self->config_path, id->name, a->role);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role != SOFFA_ROLE_AUDIT && soffa_kommun_check(a->kommun) != SOFFA_OK) {
        snprintf(why, whylen, "%s: [agent %s] needs kommun = one of the 290 municipality codes ('%s' is not)",
                 self->config_path, id->name, a->kommun);
        return SOFFA_ERR_CONFIG;
    }
    char uwhy[128];
    if (soffa_policy_set_units(id, a->unit, uwhy, sizeof uwhy) != SOFFA_OK) {
        snprintf(why, whylen, "%s: [agent %s] unit must list %s, comma-separated: %s", self->config_path, id->name,
                 id->role == SOFFA_ROLE_SCHOOL ? "8-digit school unit codes" : "unit codes", uwhy);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role == SOFFA_ROLE_SCHOOL && !id->n_units) {
        snprintf(why, whylen, "%s: [agent %s] is a school and needs unit = its school unit code(s) (skolenhetskod)",
                 self->config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    if (a->orgnr[0] && soffa_orgnr_parse(a->orgnr, id->orgnr) != SOFFA_OK) {
        snprintf(why, whylen, "%s: [agent %s] orgnr must be an organisationsnummer (10 digits, NNNNNN-NNNN allowed) "
                 "with a valid check digit", self->config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role == SOFFA_ROLE_AUDIT && !a->scope[0]) {
        snprintf(why, whylen, "%s: [agent %s] is an auditor and needs scope = the mailboxes it may replay (e.g. */1419)",
                 self->config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role != SOFFA_ROLE_AUDIT && (a->scope[0] || a->span_controllers)) {
        snprintf(why, whylen, "%s: [agent %s] %s is for auditors only", self->config_path, id->name,
                 a->scope[0] ? "scope" : "span_controllers");
        return SOFFA_ERR_CONFIG;
    }
    id->span_controllers = a->span_controllers;
    snprintf(id->kommun, sizeof id->kommun, "%.4s", a->kommun);
    snprintf(id->scope, sizeof id->scope, "%s", a->scope);
    if (soffa_keys_valid_z85(a->public_key)) {
        memcpy(id->public_key, a->public_key, 41);
    } else {
        char path[1024];
        if (!soffa_cfg_path(self->config_path, a->public_key, path, sizeof path)
            || soffa_keys_load_public(path, id->public_key) != SOFFA_OK) {
            snprintf(why, whylen, "%s: [agent %s] public_key is neither a Z85 key nor a readable key file",
                     self->config_path, id->name);
            return SOFFA_ERR_CONFIG;
        }
    }
    uint8_t raw[32];
    zmq_z85_decode(raw, id->public_key);
    if (soffa_map_get(self->by_key, raw, 32)) {
        snprintf(why, whylen, "%s: [agent %s] uses a public key another agent already has", self->config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    soffa_map_put(self->by_key, raw, 32, id);
    return SOFFA_OK;
}

/* [retention]: each class's rule, and who may erase (auditors named there). */
static soffa_err_t
s_retention_load(soffa_broker_t *self, char *why, size_t whylen)
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
    char list[1024], *save = NULL;
    snprintf(list, sizeof list, "%s", self->cfg.erasure_by);
    for (char *name = strtok_r(list, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
        const soffa_identity_t *id = soffa_map_sget(self->by_name, name);
        if (!id || id->role != SOFFA_ROLE_AUDIT) {
            snprintf(why, whylen, "%s: [retention] erasure_by names '%s', which is not an [agent] with role audit (a "
                                  "data-protection officer's key is configured as an auditor)", self->config_path, name);
            return SOFFA_ERR_CONFIG;
        }
    }
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
    self->ids = calloc(S_MAX_AGENTS, sizeof *self->ids);
    self->by_name = soffa_map_new();
    self->by_key = soffa_map_new();
    self->id_sessions = calloc(S_MAX_AGENTS, sizeof *self->id_sessions);
    self->sessions = soffa_map_new();
    self->by_fd = soffa_map_new();
    self->mailboxes = soffa_map_new();
    self->awaits = soffa_map_new();
    self->readers = soffa_map_new();
    if (!self->readers || !self->ids || !self->id_sessions || !self->by_name || !self->by_key || !self->sessions || !self->by_fd
        || !self->mailboxes || !self->awaits) {
        soffa_broker_destroy(&self);
        return SOFFA_ERR_NOMEM;
    }
    const soffa_cfg_section_t sections[] = {
        {"broker", false, s_broker_keys, sizeof s_broker_keys / sizeof *s_broker_keys, &self->cfg, NULL, NULL},
        {"store", false, s_store_keys, sizeof s_store_keys / sizeof *s_store_keys, &self->cfg, NULL, NULL},
        {"delivery", false, s_delivery_keys, sizeof s_delivery_keys / sizeof *s_delivery_keys, &self->cfg, NULL, NULL},
        {"audit", false, s_audit_keys, sizeof s_audit_keys / sizeof *s_audit_keys, &self->cfg, NULL, NULL},
        {"policy", false, s_policy_keys, sizeof s_policy_keys / sizeof *s_policy_keys, &self->cfg, NULL, NULL},
        {"case", false, s_case_keys, sizeof s_case_keys / sizeof *s_case_keys, &self->cfg, NULL, NULL},
        {"keys", false, s_keys_keys, sizeof s_keys_keys / sizeof *s_keys_keys, &self->cfg, NULL, NULL},
        {"retention", false, s_retention_keys, sizeof s_retention_keys / sizeof *s_retention_keys, &self->cfg, NULL, NULL},
        {"agent", true, s_agent_keys, sizeof s_agent_keys / sizeof *s_agent_keys, NULL, s_add_agent, self},
    };
    soffa_err_t rc = soffa_cfg_load(config_path, sections, sizeof sections / sizeof *sections, why, whylen);
    /* Convert the agent sections (stashed by name) into identities. */
    for (size_t i = 0; i < self->n_ids; i++) {
        s_agent_cfg_t *a = soffa_map_sget(self->by_name, self->ids[i].name);
        if (rc == SOFFA_OK)
            rc = s_convert_agent(self, &self->ids[i], a, why, whylen);
        free(a);
        soffa_map_sput(self->by_name, self->ids[i].name, &self->ids[i]);
    }
    /* Each auditor reads one data controller's records, unless configured
     * to span them (issue 13, rule 11). */
    for (size_t i = 0; rc == SOFFA_OK && i < self->n_ids; i++) {
        char swhy[600];
        if (self->ids[i].role == SOFFA_ROLE_AUDIT
            && soffa_policy_scope_check(&self->ids[i], self->ids, self->n_ids, swhy, sizeof swhy) != SOFFA_OK) {
            snprintf(why, whylen, "%s: [agent %s] %s", config_path, self->ids[i].name, swhy);
            rc = SOFFA_ERR_CONFIG;
        }
    }
    if (rc == SOFFA_OK && soffa_log_level_parse(self->cfg.log_level) < 0) {
        snprintf(why, whylen, "%s: log_level must be debug, info, warn or error", config_path);
        rc = SOFFA_ERR_CONFIG;
    }
    if (rc == SOFFA_OK)
        rc = s_retention_load(self, why, whylen);
    if (rc == SOFFA_OK && self->cfg.expiry_ms < 2 * self->cfg.heartbeat_ms) {
        snprintf(why, whylen, "%s: expiry_ms must be at least twice heartbeat_ms", config_path);
        rc = SOFFA_ERR_CONFIG;
    }
    /* The sensitive-term list, once: a list that does not load stops the
     * broker (why names the file and line), so free text is never routed
     * unscreened. */
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
    fprintf(out, "store.map_size = %zu\nstore.batch_max = %lld\nstore.cursor_flush_ms = %lld\n", c->map_size,
            (long long) c->batch_max, (long long) c->cursor_flush_ms);
    fprintf(out, "delivery.window_max = %lld\n", (long long) c->window_max);
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
    for (size_t i = 0; i < self->n_ids; i++) {
        const soffa_identity_t *id = &self->ids[i];
        char units[SOFFA_UNITS_MAX * 18 + 1] = "";
        size_t o = 0;
        for (size_t u = 0; u < id->n_units && o < sizeof units; u++)
            o += (size_t) snprintf(units + o, sizeof units - o, "%s%s", u ? "," : "", id->units[u]);
        fprintf(out, "agent.%s = role %s, kommun %s%s%s%s%s%s%s, key %.8s...\n", id->name, soffa_role_name(id->role),
                id->kommun[0] ? id->kommun : "-", units[0] ? ", units " : "", units, id->orgnr[0] ? ", orgnr " : "",
                id->orgnr, id->scope[0] ? ", scope " : "", id->scope, id->public_key);
        if (id->role == SOFFA_ROLE_AUDIT)
            fprintf(out, "agent.%s.controller = %s\n", id->name,
                    id->span_controllers ? "(spans controllers: span_controllers = yes)" : id->controller);
    }
}

/* ---- Frame handlers --------------------------------------------------------------- */

static void
s_on_hello(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f)
{
    if (f->version != SOFFA_PROTOCOL_VERSION) {
        soffa_send_error(self, s->rid, 0, SOFFA_ERR_VERSION, "protocol version 1 is required");
        return;
    }
    soffa_frame_t w = {.type = SOFFA_FRAME_WELCOME, .role = s->id->role,
                       .heartbeat_ms = (uint32_t) self->cfg.heartbeat_ms, .max_frame = SOFFA_WIRE_MAX_FRAME};
    snprintf(w.agent, sizeof w.agent, "%s", s->id->name);
    soffa_policy_inbox(s->id, w.mailboxes[0]);
    w.n_mailboxes = w.mailboxes[0][0] ? 1 : 0;
    if (s->id->kommun[0]) {
        memcpy(w.kommuner[0], s->id->kommun, 5);
        w.n_kommuner = 1;
    }
    if (s->state == SOFFA_SESS_NEW) {
        soffa_info("%s (%s) connected as %s", s->id->name, soffa_role_name(s->id->role), f->text);
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
    s_handler_fn handler;
} s_grammar[] = {
    {SOFFA_FRAME_HELLO, S_IN(SOFFA_SESS_NEW) | S_LIVE, s_on_hello},
    /* A PING in NEW means the agent had a session this broker no longer
     * knows (it restarted, or expired the session): the error tells the
     * agent to greet and subscribe again. */
    {SOFFA_FRAME_PING, S_LIVE, s_on_ping},
    {SOFFA_FRAME_PUBLISH, S_LIVE, soffa_publish_on_request},
    {SOFFA_FRAME_SUBSCRIBE, S_LIVE, soffa_delivery_on_subscribe},
    {SOFFA_FRAME_ACK, S_LIVE, soffa_delivery_on_ack},
    {SOFFA_FRAME_CREDIT, S_LIVE, soffa_delivery_on_credit},
    {SOFFA_FRAME_STATUS_REQUEST, S_LIVE, soffa_status_on_request},
    {SOFFA_FRAME_REPLAY, S_IN(SOFFA_SESS_READY), soffa_replay_on_request},
    {SOFFA_FRAME_REPLAY_ACK, S_LIVE, soffa_replay_on_replay_ack},
    {SOFFA_FRAME_ERASE, S_IN(SOFFA_SESS_READY), soffa_retain_on_erase},
};

static void
s_on_frame(soffa_broker_t *self, soffa_session_t *s, const uint8_t *buf, size_t len)
{
    soffa_frame_t f;
    soffa_err_t rc = soffa_frame_decode(buf, len, &f);
    if (rc != SOFFA_OK) {
        soffa_info("bad frame from %s (%zu bytes): %s", s->id->name, len, soffa_strerror(rc));
        soffa_send_error(self, s->rid, 0, rc,
                     rc == SOFFA_ERR_TOO_LARGE ? "frame or field larger than allowed" : "frame could not be decoded");
        soffa_frame_fini(&f);
        return;
    }
    s_handler_fn handler = NULL;
    for (size_t i = 0; i < sizeof s_grammar / sizeof *s_grammar; i++)
        if (s_grammar[i].type == f.type && (s_grammar[i].states & S_IN(s->state)))
            handler = s_grammar[i].handler;
    if (!handler) {
        char why[120];
        snprintf(why, sizeof why, "%s is not allowed in state %s", soffa_frame_type_name(f.type),
                 soffa_session_state_name(s->state));
        soffa_info("%s: %s", s->id->name, why);
        soffa_send_error(self, s->rid, f.tag, SOFFA_ERR_PROTOCOL_STATE, why);
    } else {
        handler(self, s, &f);
    }
    soffa_frame_fini(&f);
}

/* Reads up to 256 messages from the router without blocking: few enough
 * that the loop comes round to new connections (ZAP), finished commits and
 * timers often, even under a flood. The batch still grows across reads
 * while a commit is in flight. */
#define S_READ_MAX 256

static void
s_read_router(soffa_broker_t *self)
{
    for (int64_t i = 0; i < S_READ_MAX; i++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, self->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            self->last_drain = soffa_mono_us();   /* everything queued has been read */
            return;
        }
        zmq_msg_init(&body);
        int more = zmq_msg_more(&rid);
        if (!more || zmq_msg_recv(&body, self->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        /* Extra parts are not part of the protocol: drop them. */
        bool extra = zmq_msg_more(&body);
        while (zmq_msg_more(&body)) {
            zmq_msg_t x;
            zmq_msg_init(&x);
            if (zmq_msg_recv(&x, self->router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&x);
                break;
            }
            int m = zmq_msg_more(&x);
            zmq_msg_close(&x);
            if (!m)
                break;
        }
        /* Who sent it is the CURVE key ZAP authenticated for this very
         * message, never what the routing id once belonged to. */
        const char *user = zmq_msg_gets(&body, "User-Id");
        const soffa_identity_t *id = user ? soffa_map_sget(self->by_name, user) : NULL;
        const uint8_t *r = zmq_msg_data(&rid);
        int fd = zmq_msg_get(&body, ZMQ_SRCFD);
        if (!id || fd < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        if (zmq_msg_size(&rid) != SOFFA_RID_LEN || r[0] != 0) {
            /* A routing id the client chose: never a session (it could name
             * another's, or the next one libzmq would give out). */
            if (self->foreign_rids++ % 1024 == 0)
                soffa_warn("%s connected with a routing id of its own choosing; refused (%llu such frames so far)",
                           id->name, (unsigned long long) self->foreign_rids);
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        soffa_session_t *s = soffa_map_get(self->sessions, r, SOFFA_RID_LEN);
        if (s && (s->id != id || s->fd != fd))
            soffa_session_forget(self, s, s->id != id ? "a frame with another key came under its routing id"
                                                  : "its routing id now arrives on another connection");
        else if (s && s->state == SOFFA_SESS_CLOSED) {
            zmq_msg_close(&rid);   /* closed: nothing more is answered */
            zmq_msg_close(&body);
            continue;
        }
        s = soffa_map_get(self->sessions, r, SOFFA_RID_LEN);
        if (!s)
            s = soffa_session_new(self, r, id, fd);
        if (s) {
            soffa_session_touch(self, s);
            if (extra)
                soffa_send_error(self, s->rid, 0, SOFFA_ERR_MALFORMED, "a frame is one message part");
            else
                s_on_frame(self, s, zmq_msg_data(&body), zmq_msg_size(&body));
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
        if (p->kind == SOFFA_P_PUBLISH) {
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
        if (!duplicate)
            self->published++;
        soffa_frame_t ack = {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = p->tag, .seq = seq,
                             .duplicate = duplicate};
        memcpy(ack.mailbox, p->env.mailbox, sizeof ack.mailbox);
        if (!soffa_send_frame(self, p->rid, &ack))
            soffa_debug("acknowledgement of seq %llu not delivered; the sender will retry", (unsigned long long) seq);
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

/* Which identities read each inbox (for the lag of mailboxes nobody is
 * connected to). */
static soffa_err_t
s_readers_build(soffa_broker_t *self)
{
    for (size_t i = 0; i < self->n_ids; i++) {
        char inbox[SOFFA_NAME_MAX];
        soffa_policy_inbox(&self->ids[i], inbox);
        if (!inbox[0])
            continue;
        const soffa_identity_t **old = soffa_map_sget(self->readers, inbox);
        size_t n = 0;
        while (old && old[n])
            n++;
        const soffa_identity_t **v = realloc(old, (n + 2) * sizeof *v);
        if (!v)
            return SOFFA_ERR_NOMEM;
        v[n] = &self->ids[i];
        v[n + 1] = NULL;
        if (soffa_map_sput(self->readers, inbox, v) != SOFFA_OK) {
            free(v);
            return SOFFA_ERR_NOMEM;
        }
    }
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
    soffa_info("store %s sealed under master key %s", path, idhex);
    rc = soffa_store_mailboxes(self->store, soffa_delivery_load_mailbox, self);
    if (rc == SOFFA_OK) {
        self->await_signals.delay_us = self->cfg.signal_ack_due * 1000;
        self->await_referrals.delay_us = self->cfg.referral_receipt_due * 1000;
        rc = soffa_status_await_load(self);
    }
    if (rc == SOFFA_OK)
        rc = soffa_case_build(self);
    if (rc == SOFFA_OK)
        rc = s_readers_build(self);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s", path, soffa_strerror(rc));
        return rc;
    }
    rc = soffa_commit_signing_key(self, path, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    self->committed = s_committed;
    self->released = s_released;
    rc = soffa_commit_start(self);
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
    self->router = zmq_socket(self->ctx, ZMQ_ROUTER);
    int one = 1, sndhwm = S_SNDHWM, rcvhwm = S_RCVHWM, linger = 2000;
    int64_t maxmsg = S_MAX_WIRE_IN;
    zmq_setsockopt(self->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(self->router, ZMQ_CURVE_SECRETKEY, self->secret_key, 41);
    zmq_setsockopt(self->router, ZMQ_ZAP_DOMAIN, "soffa", 5);
    zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(self->router, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(self->router, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof linger);
    /* A national rollout reconnects all at once after a restart: with
     * ZeroMQ's default backlog of 100, the rest wait out TCP's SYN retries
     * (1 s, 3 s, ...). The kernel caps this at net.core.somaxconn. */
    int backlog = 4096;
    zmq_setsockopt(self->router, ZMQ_BACKLOG, &backlog, sizeof backlog);
    zmq_setsockopt(self->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* Sessions end with their connections: the monitor says when one goes. */
    if (zmq_socket_monitor(self->router, SOFFA_MONITOR, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0
        || !(self->monitor = zmq_socket(self->ctx, ZMQ_PAIR)) || zmq_connect(self->monitor, SOFFA_MONITOR) != 0) {
        snprintf(why, whylen, "cannot watch the connections: %s", zmq_strerror(errno));
        return SOFFA_ERR_TRANSPORT;
    }
    if (zmq_bind(self->router, self->cfg.endpoint) != 0) {
        snprintf(why, whylen, "cannot listen on %s: %s", self->cfg.endpoint, zmq_strerror(errno));
        return SOFFA_ERR_TRANSPORT;
    }
    if (self->cfg.ipc_endpoint[0]) {
        /* The local socket is the broker user's own (0600), whatever the
         * umask: other local users get no connection to try keys on. */
        mode_t old = umask(077);
        int brc = zmq_bind(self->router, self->cfg.ipc_endpoint);
        umask(old);
        if (brc != 0) {
            snprintf(why, whylen, "cannot listen on %s: %s", self->cfg.ipc_endpoint, zmq_strerror(errno));
            return SOFFA_ERR_TRANSPORT;
        }
    }
    self->started_at_us = soffa_now_us();
    uint64_t head;
    soffa_store_head(self->store, &head, NULL, NULL);
    soffa_info("listening on %s%s%s with %zu agent(s); store %s holds %llu record(s)", self->cfg.endpoint,
               self->cfg.ipc_endpoint[0] ? " and " : "", self->cfg.ipc_endpoint, self->n_ids, path,
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
soffa_broker_run(soffa_broker_t *self, volatile sig_atomic_t *stop)
{
    zmq_pollitem_t items[4] = {{self->router, 0, ZMQ_POLLIN, 0}, {self->zap, 0, ZMQ_POLLIN, 0},
                               {NULL, self->done_fd, ZMQ_POLLIN, 0}, {self->monitor, 0, ZMQ_POLLIN, 0}};
    int64_t now = soffa_mono_us();
    self->last_drain = now;
    self->next_flush = now + self->cfg.cursor_flush_ms * 1000;
    self->next_expiry = now + 500000;
    /* Gallring at start: what ran out while the broker was down (and what a
     * run cut short left) goes before anything is served. */
    soffa_retain_tick(self);
    while (!*stop) {
        soffa_notify_watchdog();
        bool busy = self->replaying || self->followups;
        int n = zmq_poll(items, 4, busy ? 0 : 50);
        if (n < 0 && errno != EINTR) {
            soffa_error("poll failed: %s", zmq_strerror(errno));
            return SOFFA_ERR_TRANSPORT;
        }
        /* Connections that went away first: a frame read below must never
         * land in a session whose connection is gone. */
        if (n > 0 && (items[3].revents & ZMQ_POLLIN))
            soffa_session_monitor(self);
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            soffa_zap_handle(self);
        uint64_t before = self->published;
        if (n > 0 && (items[2].revents & ZMQ_POLLIN))
            soffa_commit_flight_wait(self);   /* done: answer it */
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            s_read_router(self);
        else if (n == 0)
            self->last_drain = soffa_mono_us();   /* nothing was waiting */
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
        self->id_sessions[soffa_session_id_index(self, s->id)]++;   /* still counted until forgotten */
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
    if (self->readers) {
        soffa_map_each(self->readers, s_free_value, NULL);
        soffa_map_destroy(&self->readers);
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
    soffa_commit_stop(self);
    soffa_store_close(&self->store);
    soffa_terms_destroy(&self->terms);
    soffa_map_destroy(&self->by_name);
    soffa_map_destroy(&self->by_key);
    free(self->ids);
    free(self->id_sessions);
    explicit_bzero(self->secret_key, sizeof self->secret_key);
    sodium_memzero(self->sign_sk, sizeof self->sign_sk);
    soffa_seal_master_wipe(&self->master);
    free(self);
    *self_p = NULL;
}
