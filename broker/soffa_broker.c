/*  soffa_broker: sessions, group commit, delivery, replay and status.
 *
 *  ---- Protocol grammar (one Frame per ZeroMQ message, CURVE DEALER/ROUTER) ----
 *
 *    session    = C:HELLO S:WELCOME *request
 *    request    = publish / subscribe / ack / credit / replay / status / ping
 *    publish    = C:PUBLISH ( S:PUBLISH-ACK / S:ERROR )
 *    subscribe  = C:SUBSCRIBE ( *S:DELIVER / S:ERROR )
 *                 ; deliveries keep coming as the mailbox grows, never more
 *                 ; than `credit` unacknowledged at a time
 *    ack        = C:ACK                  ; cumulative, per mailbox; frees window
 *    credit     = C:CREDIT               ; mailbox: sets its window;
 *                                        ; "" : grants more replay deliveries
 *                                        ; (ignored when no replay runs)
 *    replay     = C:REPLAY ( *S:DELIVER S:REPLAY-END / S:ERROR )   ; audit only
 *    status     = C:STATUS-REQUEST S:STATUS-REPLY
 *    ping       = C:PING S:PONG          ; at least every heartbeat_ms
 *
 *  Only HELLO is allowed in NEW (an agent's PING answered with ERROR tells it
 *  the broker has forgotten its session, so it greets again).
 *  Session states (s_state_t):  NEW --HELLO--> READY --REPLAY--> REPLAYING
 *  --(replay done)--> READY. A session silent for longer than expiry_ms is
 *  dropped; its unacknowledged deliveries go out again when it returns. A
 *  frame not allowed in the current state is answered with
 *  ERROR(PROTOCOL_STATE); a frame that does not decode with ERROR(MALFORMED).
 *  Neither closes the session.
 *
 *  ---- Durability ----
 *  Publishes read in one loop iteration are validated, decided by the policy
 *  module and appended in one LMDB transaction. PUBLISH-ACKs are queued and
 *  sent only after that transaction committed (soffa_store_append returned
 *  SOFFA_OK, which means fsynced). If the commit fails, every publish of the
 *  batch gets an ERROR and nothing of it is stored.
 */
#include "soffa_broker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_cfg.h"
#include "soffa_id.h"
#include "soffa_keys.h"
#include "soffa_log.h"
#include "soffa_map.h"
#include "soffa_msg.h"
#include "soffa_notify.h"
#include "soffa_policy.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "soffa_wire.h"

#define S_MAX_AGENTS 8192
#define S_RID_MAX 256
#define S_REPLAY_CREDIT 256        /* replay deliveries granted up front */
#define S_ACCESS_MAILBOX "audit/access"
#define S_MAX_WIRE_IN (1024 * 1024) /* larger frames drop the connection */

/* ---- Configuration ---------------------------------------------------------- */

typedef struct {
    char name[SOFFA_NAME_MAX];     /* sender name of records the broker writes */
    char endpoint[256];            /* CURVE TCP endpoint */
    char ipc_endpoint[256];        /* optional local endpoint, same authentication */
    char secret_key[512];          /* key file */
    char data_dir[512];            /* store directory */
    char log_level[16];
    int64_t heartbeat_ms;          /* clients must send something this often */
    int64_t expiry_ms;             /* silent sessions are dropped after this */
    size_t map_size;               /* LMDB map size */
    int64_t batch_max;             /* most publishes per commit */
    int64_t window_max;            /* largest credit window a consumer may ask for */
    int64_t cursor_flush_ms;       /* how often acknowledged cursors are written */
    int64_t checkpoint_every;      /* records between signed checkpoints */
    int64_t checkpoint_ms;         /* longest time between signed checkpoints */
    int64_t signal_ack_due;        /* ms before an unacknowledged signal is overdue */
    int64_t referral_receipt_due;  /* ms before a referral not received is overdue */
} s_cfg_t;

static const soffa_cfg_key_t s_broker_keys[] = {
    {"name", SOFFA_CFG_STR, "soffa-broker", 0, 0, offsetof(s_cfg_t, name), SOFFA_NAME_MAX, "the broker's name in records it writes"},
    {"endpoint", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_cfg_t, endpoint), 256, "CURVE endpoint agents connect to, e.g. tcp://127.0.0.1:5570"},
    {"ipc_endpoint", SOFFA_CFG_STR, "", 0, 0, offsetof(s_cfg_t, ipc_endpoint), 256, "optional ipc:// endpoint with the same authentication"},
    {"secret_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_cfg_t, secret_key), 512, "the broker's key file from 'soffa keygen'"},
    {"data_dir", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_cfg_t, data_dir), 512, "directory of the durable store"},
    {"log_level", SOFFA_CFG_STR, "info", 0, 0, offsetof(s_cfg_t, log_level), 16, "debug, info, warn or error"},
    {"heartbeat_ms", SOFFA_CFG_INT, "2000", 100, 60000, offsetof(s_cfg_t, heartbeat_ms), 0, "how often agents must be heard from"},
    {"expiry_ms", SOFFA_CFG_INT, "10000", 500, 3600000, offsetof(s_cfg_t, expiry_ms), 0, "silence after which a session is dropped"},
};
static const soffa_cfg_key_t s_store_keys[] = {
    {"map_size", SOFFA_CFG_SIZE, "1GiB", 64 * 1024, (int64_t) 1 << 42, offsetof(s_cfg_t, map_size), 0, "largest size of the store"},
    {"batch_max", SOFFA_CFG_INT, "1024", 1, 65536, offsetof(s_cfg_t, batch_max), 0, "most publishes per commit"},
    {"cursor_flush_ms", SOFFA_CFG_INT, "100", 1, 60000, offsetof(s_cfg_t, cursor_flush_ms), 0, "how often acknowledged positions are written"},
};
static const soffa_cfg_key_t s_audit_keys[] = {
    {"checkpoint_every", SOFFA_CFG_INT, "1000", 1, 100000000, offsetof(s_cfg_t, checkpoint_every), 0, "records between signed checkpoints"},
    {"checkpoint_ms", SOFFA_CFG_INT, "60000", 100, 86400000, offsetof(s_cfg_t, checkpoint_ms), 0, "longest time between signed checkpoints"},
    {"signal_ack_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(s_cfg_t, signal_ack_due), 0, "a signal not acknowledged within this is overdue"},
    {"referral_receipt_due", SOFFA_CFG_DURATION, "5d", 1000, 366LL * 86400000, offsetof(s_cfg_t, referral_receipt_due), 0, "a referral not received within this is overdue"},
};
static const soffa_cfg_key_t s_delivery_keys[] = {
    {"window_max", SOFFA_CFG_INT, "1024", 1, 65536, offsetof(s_cfg_t, window_max), 0, "largest credit window a consumer may ask for"},
};

typedef struct {
    char public_key[512];          /* Z85 key, or a .pub/.key file */
    char role[16];
    char kommun[8];
    char unit[40];
    char scope[SOFFA_SCOPE_MAX];
} s_agent_cfg_t;

static const soffa_cfg_key_t s_agent_keys[] = {
    {"public_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_agent_cfg_t, public_key), 512, "the agent's public key (Z85) or its .pub file"},
    {"role", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_agent_cfg_t, role), 16, "school, kaa, social, af or audit"},
    {"kommun", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, kommun), 8, "municipality code the agent serves"},
    {"unit", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, unit), 40, "school unit code (schools)"},
    {"scope", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, scope), SOFFA_SCOPE_MAX, "audit: mailbox patterns it may replay"},
};

/* ---- Runtime structures ------------------------------------------------------- */

typedef enum { S_NEW, S_READY, S_REPLAYING } s_state_t;
static const char *const s_state_names[] = {"NEW", "READY", "REPLAYING"};

struct s_session;

typedef struct s_mailbox {
    char name[SOFFA_NAME_MAX];
    uint64_t depth;                   /* records stored */
    uint64_t last_seq;                /* newest record */
    struct s_consumer *consumers;     /* connected readers */
} s_mailbox_t;

typedef struct s_consumer {
    struct s_session *session;
    s_mailbox_t *mbox;
    char cursor_key[2 * SOFFA_NAME_MAX + 2];   /* "<agent>|<mailbox>" */
    uint64_t acked;                   /* last acknowledged (durable once flushed) */
    uint64_t flushed;                 /* last value written to the store */
    uint64_t sent;                    /* last sequence sent or skipped */
    uint32_t window;                  /* most unacknowledged deliveries */
    uint64_t *ring;                   /* sequences in flight, oldest first */
    uint32_t ring_cap, ring_head, ring_len;
    struct s_consumer *next;          /* in mailbox */
} s_consumer_t;

typedef enum { S_R_LOG, S_R_MAILBOX, S_R_SUBJECT } s_replay_mode_t;

typedef struct s_session {
    uint8_t rid[S_RID_MAX];
    size_t rid_len;
    const soffa_identity_t *id;
    s_state_t state;
    int64_t last_seen;                /* monotonic µs */
    s_consumer_t *consumers[4];
    size_t n_consumers;
    struct {
        uint64_t tag;
        soffa_replay_filter_t f;
        s_replay_mode_t mode;
        uint64_t pos, to;             /* last sequence examined; last to include */
        uint64_t count;               /* records sent */
        uint64_t credit;
        bool all_scope;               /* scope "*" */
        char request[32];
    } replay;
} s_session_t;

typedef struct {
    s_session_t *session;             /* may be gone by commit time: rid is kept */
    uint8_t rid[S_RID_MAX];
    size_t rid_len;
    uint64_t tag;
    uint8_t *body;                    /* owned */
    soffa_envelope_t env;
    char subject[13];
    soffa_policy_decision_t dec;
    bool withdraws;                   /* a consent withdrawal: follow up after commit */
    uint8_t consent_id[16];
    bool checkpoint;                  /* the broker's own signed checkpoint */
} s_pending_t;

/* A consumer's acknowledged position, waiting to be written. */
typedef struct {
    char key[2 * SOFFA_NAME_MAX + 2];
    uint64_t seq;
} s_cursor_rec_t;

typedef struct {
    s_cursor_rec_t *v;
    size_t n, cap;
} s_cursors_t;

struct soffa_broker {
    char config_path[1024];
    s_cfg_t cfg;
    soffa_identity_t *ids;            /* configured agents */
    size_t n_ids;
    soffa_map_t *by_name;             /* agent name -> identity */
    soffa_map_t *by_key;              /* 32-byte public key -> identity */
    char public_key[41], secret_key[41];
    soffa_store_t *store;
    void *ctx, *router, *zap;
    soffa_map_t *sessions;            /* routing id -> session */
    soffa_map_t *mailboxes;           /* name -> mailbox */
    s_pending_t *pending;             /* publishes read since the last hand-over */
    size_t n_pending;
    /* The writer thread commits one batch (flight) while the main thread
     * reads and checks the next. Nothing in flight is acknowledged before
     * the writer's commit has returned. */
    s_pending_t *flight;
    size_t n_flight;
    soffa_store_item_t *flight_items;
    soffa_err_t flight_rc;
    bool in_flight;                   /* handed to the writer, not finished */
    int writer_job;                   /* 0 idle, 1 commit flight, 2 quit (under wmu) */
    bool writer_started;
    pthread_t writer;
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    int done_fd;                      /* eventfd: the writer finished a job */
    s_cursors_t cur_pending;          /* cursors for the next commit */
    s_cursors_t cur_flight;           /* cursors in the commit in flight */
    soffa_store_cursor_t *cur_items;  /* the writer's view of cur_flight */
    size_t cur_items_cap;
    int64_t started_at_us;
    int64_t next_flush, next_expiry;  /* monotonic µs */
    int64_t last_drain;               /* monotonic µs when the router was last read empty */
    uint8_t sign_sk[SOFFA_SIGN_SECRET]; /* checkpoint signing key */
    uint64_t cp_seq;                  /* the newest record a checkpoint covers (or the last checkpoint) */
    int64_t cp_at;                    /* monotonic µs of the last checkpoint */
    bool cp_force;                    /* the next commit starts with a checkpoint */
    uint64_t published, refused, delivered;
    uint64_t commits, commit_us;   /* group commits and the time spent in them */
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
    if (a->unit[0] && soffa_skolenhet_check(a->unit) != SOFFA_OK) {
        snprintf(why, whylen, "%s: [agent %s] unit must be an 8-digit school unit code", self->config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role == SOFFA_ROLE_AUDIT && !a->scope[0]) {
        snprintf(why, whylen, "%s: [agent %s] is an auditor and needs scope = the mailboxes it may replay (e.g. */1419)",
                 self->config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role != SOFFA_ROLE_AUDIT && a->scope[0]) {
        snprintf(why, whylen, "%s: [agent %s] scope is for auditors only", self->config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    snprintf(id->kommun, sizeof id->kommun, "%.4s", a->kommun);
    snprintf(id->unit, sizeof id->unit, "%.32s", a->unit);
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
    self->sessions = soffa_map_new();
    self->mailboxes = soffa_map_new();
    if (!self->ids || !self->by_name || !self->by_key || !self->sessions || !self->mailboxes) {
        soffa_broker_destroy(&self);
        return SOFFA_ERR_NOMEM;
    }
    const soffa_cfg_section_t sections[] = {
        {"broker", false, s_broker_keys, sizeof s_broker_keys / sizeof *s_broker_keys, &self->cfg, NULL, NULL},
        {"store", false, s_store_keys, sizeof s_store_keys / sizeof *s_store_keys, &self->cfg, NULL, NULL},
        {"delivery", false, s_delivery_keys, sizeof s_delivery_keys / sizeof *s_delivery_keys, &self->cfg, NULL, NULL},
        {"audit", false, s_audit_keys, sizeof s_audit_keys / sizeof *s_audit_keys, &self->cfg, NULL, NULL},
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
    if (rc == SOFFA_OK && soffa_log_level_parse(self->cfg.log_level) < 0) {
        snprintf(why, whylen, "%s: log_level must be debug, info, warn or error", config_path);
        rc = SOFFA_ERR_CONFIG;
    }
    if (rc == SOFFA_OK && self->cfg.expiry_ms < 2 * self->cfg.heartbeat_ms) {
        snprintf(why, whylen, "%s: expiry_ms must be at least twice heartbeat_ms", config_path);
        rc = SOFFA_ERR_CONFIG;
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
    const s_cfg_t *c = &self->cfg;
    fprintf(out, "broker.name = %s\nbroker.endpoint = %s\nbroker.ipc_endpoint = %s\n", c->name, c->endpoint,
            c->ipc_endpoint);
    fprintf(out, "broker.secret_key = %s\nbroker.data_dir = %s\nbroker.log_level = %s\n", c->secret_key,
            c->data_dir, c->log_level);
    fprintf(out, "broker.heartbeat_ms = %lld\nbroker.expiry_ms = %lld\n", (long long) c->heartbeat_ms,
            (long long) c->expiry_ms);
    fprintf(out, "store.map_size = %zu\nstore.batch_max = %lld\nstore.cursor_flush_ms = %lld\n", c->map_size,
            (long long) c->batch_max, (long long) c->cursor_flush_ms);
    fprintf(out, "delivery.window_max = %lld\n", (long long) c->window_max);
    fprintf(out, "audit.checkpoint_every = %lld\naudit.checkpoint_ms = %lld\n", (long long) c->checkpoint_every,
            (long long) c->checkpoint_ms);
    fprintf(out, "audit.signal_ack_due = %lld ms\naudit.referral_receipt_due = %lld ms\n", (long long) c->signal_ack_due,
            (long long) c->referral_receipt_due);
    for (size_t i = 0; i < self->n_ids; i++) {
        const soffa_identity_t *id = &self->ids[i];
        fprintf(out, "agent.%s = role %s, kommun %s%s%s%s%s, key %.8s...\n", id->name, soffa_role_name(id->role),
                id->kommun[0] ? id->kommun : "-", id->unit[0] ? ", unit " : "", id->unit,
                id->scope[0] ? ", scope " : "", id->scope, id->public_key);
    }
}

/* ---- Mailboxes and store lookups ----------------------------------------------- */

static s_mailbox_t *
s_mailbox(soffa_broker_t *self, const char *name)
{
    s_mailbox_t *m = soffa_map_sget(self->mailboxes, name);
    if (m)
        return m;
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->name, sizeof m->name, "%s", name);
    if (soffa_map_sput(self->mailboxes, m->name, m) != SOFFA_OK) {
        free(m);
        return NULL;
    }
    return m;
}

static int
s_load_mailbox(void *ctx, const char *name, uint64_t count, uint64_t last)
{
    s_mailbox_t *m = s_mailbox(ctx, name);
    if (m) {
        m->depth = count;
        m->last_seq = last;
    }
    return 0;
}

typedef struct {
    soffa_policy_ref_t *out;
    soffa_err_t rc;
} s_load_t;

static int
s_load_ref(void *ctx, const soffa_store_rec_t *rec)
{
    s_load_t *l = ctx;
    soffa_envelope_t e;
    l->rc = soffa_envelope_decode(rec->env, rec->len, &e);
    if (l->rc != SOFFA_OK)
        return 1;
    soffa_policy_ref_t *r = l->out;
    r->seq = rec->seq;
    snprintf(r->sender, sizeof r->sender, "%s", e.sender_agent);
    r->sender_role = e.sender_role;
    snprintf(r->sender_kommun, sizeof r->sender_kommun, "%s", e.sender_kommun);
    snprintf(r->mailbox, sizeof r->mailbox, "%s", e.mailbox);
    if (e.kind == SOFFA_RK_MESSAGE)
        l->rc = soffa_msg_decode(e.body, e.body_len, &r->msg);
    else
        l->rc = SOFFA_ERR_NOT_FOUND;
    soffa_envelope_fini(&e);
    if (l->rc == SOFFA_OK)
        soffa_msg_view(r->msg, &r->view);
    return 1;
}

/* The policy's lookup: a record by reference kind and id. */
static soffa_err_t
s_find(void *ctx, char kind, const uint8_t id[16], soffa_policy_ref_t *out)
{
    soffa_broker_t *self = ctx;
    uint8_t key[17];
    key[0] = (uint8_t) kind;
    memcpy(key + 1, id, 16);
    uint64_t seq;
    memset(out, 0, sizeof *out);
    soffa_err_t rc = soffa_store_ref_get(self->store, key, sizeof key, &seq);
    if (rc != SOFFA_OK)
        return rc;
    s_load_t l = {out, SOFFA_ERR_NOT_FOUND};
    rc = soffa_store_get(self->store, seq, s_load_ref, &l);
    if (rc == SOFFA_OK)
        rc = l.rc;
    if (rc != SOFFA_OK)
        soffa_policy_ref_fini(out);
    return rc;
}

/* ---- Sending ------------------------------------------------------------------ */

/* Sends one encoded frame to a peer; false when the peer is gone or its
 * queue is full (the frame is then not sent). */
static bool
s_send_raw(soffa_broker_t *self, const uint8_t *rid, size_t rid_len, const void *buf, size_t len)
{
    if (zmq_send(self->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno != EAGAIN)
            soffa_debug("peer gone while sending (%s)", zmq_strerror(errno));
        return false;
    }
    return zmq_send(self->router, buf, len, ZMQ_DONTWAIT) >= 0;
}

static bool
s_send(soffa_broker_t *self, const uint8_t *rid, size_t rid_len, const soffa_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    if (soffa_frame_encode(f, &buf, &len) != SOFFA_OK)
        return false;
    bool ok = s_send_raw(self, rid, rid_len, buf, len);
    free(buf);
    return ok;
}

static void
s_send_error(soffa_broker_t *self, const uint8_t *rid, size_t rid_len, uint64_t tag, soffa_err_t code,
             const char *text)
{
    soffa_frame_t f = {.type = SOFFA_FRAME_ERROR, .tag = tag, .code = (uint32_t) code};
    snprintf(f.text, sizeof f.text, "%s", text && *text ? text : soffa_strerror(code));
    s_send(self, rid, rid_len, &f);
}

/* ---- Consumers ------------------------------------------------------------------ */

static uint32_t
s_inflight(const s_consumer_t *c)
{
    return c->ring_len;
}

static void
s_consumer_free(soffa_broker_t *self, s_consumer_t *c)
{
    s_consumer_t **pp = &c->mbox->consumers;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    if (c->acked > c->flushed) {
        soffa_store_cursor_t cur = {c->cursor_key, c->acked};
        soffa_err_t rc = soffa_store_cursor_set_many(self->store, &cur, 1);
        if (rc != SOFFA_OK)
            soffa_warn("cursor of %s not saved: %s", c->cursor_key, soffa_strerror(rc));
    }
    free(c->ring);
    free(c);
}

typedef struct {
    soffa_broker_t *self;
    s_consumer_t *c;
    uint32_t budget;               /* deliveries we may still send */
    bool blocked;                  /* the peer's queue is full */
} s_pump_t;

static int
s_pump_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_pump_t *p = ctx;
    s_consumer_t *c = p->c;
    if (rec->tag == SOFFA_MT_REFERRAL_SENT) {
        /* Consent is checked again at delivery: a withdrawn or expired
         * consent withholds a referral not yet delivered. */
        soffa_envelope_t e;
        soffa_msg_t *m = NULL;
        bool ok = false;
        if (soffa_envelope_decode(rec->env, rec->len, &e) == SOFFA_OK) {
            if (soffa_msg_decode(e.body, e.body_len, &m) == SOFFA_OK) {
                soffa_msg_view_t v;
                soffa_msg_view(m, &v);
                ok = soffa_policy_referral_deliverable(&v, soffa_date_today(), s_find, p->self);
            }
            soffa_envelope_fini(&e);
        }
        soffa_msg_destroy(&m);
        if (!ok) {
            soffa_info("referral at seq %llu withheld from %s: its consent is withdrawn or no longer valid",
                       (unsigned long long) rec->seq, c->mbox->name);
            c->sent = rec->seq;
            return 0;
        }
    }
    soffa_frame_t f = {.type = SOFFA_FRAME_DELIVER, .seq = rec->seq, .data = rec->env, .data_len = rec->len,
                       .has_hash = true};
    memcpy(f.hash, rec->hash, SOFFA_HASH_LEN);
    memcpy(f.mailbox, c->mbox->name, sizeof f.mailbox);
    if (!s_send(p->self, c->session->rid, c->session->rid_len, &f)) {
        p->blocked = true;
        return 1;
    }
    if (c->ring_len == c->ring_cap)
        return 1;   /* cannot happen: budget <= window <= ring_cap */
    c->ring[(c->ring_head + c->ring_len++) % c->ring_cap] = rec->seq;
    c->sent = rec->seq;
    p->self->delivered++;
    return --p->budget == 0;
}

/* Sends what the window allows. */
static void
s_pump(soffa_broker_t *self, s_consumer_t *c)
{
    while (s_inflight(c) < c->window && c->sent < c->mbox->last_seq) {
        s_pump_t p = {self, c, c->window - s_inflight(c), false};
        uint64_t before = c->sent;
        soffa_err_t rc = soffa_store_scan_mailbox(self->store, c->mbox->name, c->sent, s_pump_one, &p);
        if (rc != SOFFA_OK) {
            soffa_error("delivery to %s stopped: %s", c->mbox->name, soffa_strerror(rc));
            return;
        }
        if (p.blocked || c->sent == before)
            return;
    }
}

static void
s_pump_mailbox(soffa_broker_t *self, s_mailbox_t *m)
{
    for (s_consumer_t *c = m->consumers; c; c = c->next)
        s_pump(self, c);
}

static int
s_flush_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    soffa_broker_t *self = ctx;
    s_session_t *s = v;
    for (size_t i = 0; i < s->n_consumers; i++) {
        s_consumer_t *c = s->consumers[i];
        if (c->acked > c->flushed) {
            s_cursors_t *q = &self->cur_pending;
            if (q->n == q->cap) {
                size_t cap = q->cap ? 2 * q->cap : 64;
                s_cursor_rec_t *grown = realloc(q->v, cap * sizeof *grown);
                if (!grown) {
                    soffa_warn("cursor of %s not saved now: out of memory", c->cursor_key);
                    continue;
                }
                q->v = grown;
                q->cap = cap;
            }
            snprintf(q->v[q->n].key, sizeof q->v[q->n].key, "%s", c->cursor_key);
            q->v[q->n++].seq = c->acked;
            /* Written with the next commit; if that fails, the deliveries
             * since the last saved position come again (agents drop them). */
            c->flushed = c->acked;
        }
    }
    return 0;
}

static void
s_flush_cursors(soffa_broker_t *self)
{
    soffa_map_each(self->sessions, s_flush_one, self);
}

/* ---- Sessions ------------------------------------------------------------------- */

static void
s_session_drop(soffa_broker_t *self, s_session_t *s, const char *why)
{
    soffa_info("session of %s closed: %s", s->id->name, why);
    for (size_t i = 0; i < s->n_consumers; i++)
        s_consumer_free(self, s->consumers[i]);
    for (size_t i = 0; i < self->n_pending; i++)
        if (self->pending[i].session == s)
            self->pending[i].session = NULL;
    soffa_map_remove(self->sessions, s->rid, s->rid_len);
    free(s);
}

/* A session is silent when nothing had come from it for expiry_ms at the
 * last moment the broker had read everything queued (last_drain), not at
 * wall-clock now: a broker that stalls (a slow disk) must not take the pings
 * waiting in its own queue for silence. */
typedef struct {
    soffa_broker_t *self;
    int64_t now;
    s_session_t *victim;
} s_expire_t;

static int
s_find_expired(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_expire_t *e = ctx;
    s_session_t *s = v;
    if (e->now - s->last_seen > e->self->cfg.expiry_ms * 1000) {
        e->victim = s;
        return 1;
    }
    return 0;
}

static void
s_expire_sessions(soffa_broker_t *self)
{
    for (;;) {
        s_expire_t e = {self, self->last_drain, NULL};
        soffa_map_each(self->sessions, s_find_expired, &e);
        if (!e.victim)
            return;
        s_session_drop(self, e.victim, "silent for longer than expiry_ms");
    }
}

/* ---- Group commit ------------------------------------------------------------- */

static void s_after_withdrawal(soffa_broker_t *self, const uint8_t consent_id[16], const uint8_t cause[16]);

static void
s_pending_clear(soffa_broker_t *self)
{
    for (size_t i = 0; i < self->n_pending; i++)
        free(self->pending[i].body);
    self->n_pending = 0;
}

static bool s_checkpoint_due(soffa_broker_t *self);
static bool s_checkpoint_make(soffa_broker_t *self, s_pending_t *p);

/* The writer thread: commits the flight batch when asked, then tells the
 * main thread through done_fd. It touches nothing but the flight items and
 * the store's write side. */
static void *
s_writer_main(void *arg)
{
    soffa_broker_t *self = arg;
    pthread_mutex_lock(&self->wmu);
    for (;;) {
        while (self->writer_job == 0)
            pthread_cond_wait(&self->wcv, &self->wmu);
        if (self->writer_job == 2)
            break;
        pthread_mutex_unlock(&self->wmu);
        int64_t t0 = soffa_mono_us();
        soffa_err_t rc = soffa_store_append_cursors(self->store, self->flight_items, self->n_flight,
                                                    self->cur_items, self->cur_flight.n);
        int64_t took = soffa_mono_us() - t0;
        pthread_mutex_lock(&self->wmu);
        self->flight_rc = rc;
        self->commit_us += (uint64_t) took;
        self->writer_job = 0;
        pthread_cond_broadcast(&self->wcv);
        uint64_t one = 1;
        if (write(self->done_fd, &one, sizeof one) != sizeof one)
            soffa_debug("writer: could not signal the main thread");
    }
    pthread_mutex_unlock(&self->wmu);
    return NULL;
}

/* Answers every publish of the finished flight: acknowledgements only after
 * its commit returned; then the follow-ups that need the committed records. */
static void
s_flight_done(soffa_broker_t *self)
{
    size_t n = self->n_flight;
    soffa_err_t rc = self->flight_rc;
    soffa_store_item_t *items = self->flight_items;
    self->commits++;
    /* ---- Only now, after the commit returned, may anything be acknowledged. ---- */
    for (size_t i = 0; i < n; i++) {
        s_pending_t *p = &self->flight[i];
        if (rc != SOFFA_OK) {
            s_send_error(self, p->rid, p->rid_len, p->tag, rc, NULL);
            continue;
        }
        soffa_frame_t ack = {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = p->tag, .seq = items[i].seq,
                             .duplicate = items[i].duplicate};
        memcpy(ack.mailbox, p->env.mailbox, sizeof ack.mailbox);
        if (!items[i].duplicate) {
            s_mailbox_t *m = s_mailbox(self, p->env.mailbox);
            if (m) {
                m->depth++;
                m->last_seq = items[i].seq;
            }
            if (p->checkpoint) {
                self->cp_seq = items[i].seq;
                soffa_debug("signed checkpoint at seq %llu", (unsigned long long) items[i].seq);
            } else {
                self->published++;
            }
        }
        if (p->rid_len && !s_send(self, p->rid, p->rid_len, &ack))
            soffa_debug("acknowledgement of seq %llu not delivered; the sender will retry",
                        (unsigned long long) items[i].seq);
    }
    if (rc == SOFFA_OK)
        soffa_debug("committed %zu record(s) and %zu cursor(s)", n, self->cur_flight.n);
    else if (self->cur_flight.n)
        soffa_warn("%zu consumer cursor(s) not saved (%s); their deliveries since may come again",
                   self->cur_flight.n, soffa_strerror(rc));
    self->cur_flight.n = 0;
    /* Follow-ups commit on their own (s_commit), which reuses the flight
     * buffer: take what they need out of it first. */
    size_t n_w = 0;
    for (size_t i = 0; rc == SOFFA_OK && i < n; i++)
        n_w += self->flight[i].withdraws && !items[i].duplicate;
    uint8_t (*w)[32] = n_w ? malloc(n_w * sizeof *w) : NULL;
    if (n_w && !w)
        soffa_error("out of memory: referral-withdrawn notices for %zu withdrawal(s) not sent", n_w);
    size_t k = 0;
    for (size_t i = 0; w && i < n; i++)
        if (self->flight[i].withdraws && !items[i].duplicate) {
            memcpy(w[k], self->flight[i].consent_id, 16);
            memcpy(w[k++] + 16, self->flight[i].env.message_id, 16);
        }
    for (size_t i = 0; i < n; i++)
        free(self->flight[i].body);
    self->n_flight = 0;
    self->in_flight = false;
    for (size_t i = 0; i < k; i++)
        s_after_withdrawal(self, w[i], w[i] + 16);
    free(w);
    /* The loop wakes the readers of the mailboxes that grew. */
}

/* Waits for the batch in flight, if any, and answers it. */
static void
s_flight_wait(soffa_broker_t *self)
{
    if (!self->in_flight)
        return;
    pthread_mutex_lock(&self->wmu);
    while (self->writer_job != 0)
        pthread_cond_wait(&self->wcv, &self->wmu);
    pthread_mutex_unlock(&self->wmu);
    uint64_t v;
    if (read(self->done_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        soffa_debug("writer signal: %s", strerror(errno));
    s_flight_done(self);
}

/* Hands the pending publishes to the writer when it is free. */
static void
s_submit(soffa_broker_t *self)
{
    if (self->in_flight)
        return;
    bool cp = s_checkpoint_due(self);
    if (self->n_pending == 0 && !cp && self->cur_pending.n == 0)
        return;
    if (self->cur_items_cap < self->cur_pending.n) {
        soffa_store_cursor_t *ci = realloc(self->cur_items, self->cur_pending.cap * sizeof *ci);
        if (!ci)
            return;   /* tried again on the next round */
        self->cur_items = ci;
        self->cur_items_cap = self->cur_pending.cap;
    }
    s_cursors_t ct = self->cur_flight;
    self->cur_flight = self->cur_pending;
    self->cur_pending = ct;
    self->cur_pending.n = 0;
    for (size_t i = 0; i < self->cur_flight.n; i++)
        self->cur_items[i] = (soffa_store_cursor_t) {self->cur_flight.v[i].key, self->cur_flight.v[i].seq};
    s_pending_t *t = self->flight;
    self->flight = self->pending;
    self->pending = t;
    self->n_flight = self->n_pending;
    self->n_pending = 0;
    /* A due checkpoint goes first: it covers exactly the records before it. */
    if (cp) {
        memmove(self->flight + 1, self->flight, self->n_flight * sizeof *self->flight);
        memset(self->flight, 0, sizeof *self->flight);
        if (s_checkpoint_make(self, &self->flight[0]))
            self->n_flight++;
        else
            memmove(self->flight, self->flight + 1, self->n_flight * sizeof *self->flight);
    }
    if (self->n_flight == 0 && self->cur_flight.n == 0)
        return;
    for (size_t i = 0; i < self->n_flight; i++) {
        s_pending_t *p = &self->flight[i];
        soffa_store_item_t *it = &self->flight_items[i];
        memset(it, 0, sizeof *it);
        it->env = &p->env;
        it->subject_id = p->subject[0] ? p->subject : NULL;
        memcpy(it->refs, p->dec.refs, sizeof it->refs);
        it->n_refs = p->dec.n_refs;
    }
    self->in_flight = true;
    pthread_mutex_lock(&self->wmu);
    self->writer_job = 1;
    pthread_cond_broadcast(&self->wcv);
    pthread_mutex_unlock(&self->wmu);
}

/* Makes everything read so far durable and answered before returning: the
 * batch in flight, then the pending one. Whatever reads or writes the store
 * outside the publish path calls this first. */
static void
s_commit(soffa_broker_t *self)
{
    s_flight_wait(self);
    if (self->n_pending == 0 && self->cur_pending.n == 0)
        return;
    s_submit(self);
    s_flight_wait(self);
}

/* A fresh, zeroed slot in the pending batch (committing first when the
 * batch is full). The caller fills it; the batch frees its body. */
static s_pending_t *
s_pending_add(soffa_broker_t *self)
{
    if (self->n_pending >= (size_t) self->cfg.batch_max)
        s_commit(self);
    s_pending_t *p = &self->pending[self->n_pending++];
    memset(p, 0, sizeof *p);
    return p;
}

/* After a consent is withdrawn: tell the recipient of every referral that
 * rests on it. Undelivered referrals are also withheld at delivery. */
typedef struct {
    uint64_t seqs[256];
    size_t n;
} s_seqs_t;

static int
s_collect_seq(void *ctx, uint64_t seq)
{
    s_seqs_t *s = ctx;
    if (s->n < 256)
        s->seqs[s->n++] = seq;
    return s->n >= 256;
}

static void
s_after_withdrawal(soffa_broker_t *self, const uint8_t consent_id[16], const uint8_t cause[16])
{
    uint8_t prefix[17] = {'X'};
    memcpy(prefix + 1, consent_id, 16);
    s_seqs_t seqs = {.n = 0};
    soffa_store_ref_scan(self->store, prefix, sizeof prefix, s_collect_seq, &seqs);
    for (size_t i = 0; i < seqs.n; i++) {
        soffa_policy_ref_t r = {0};
        s_load_t l = {&r, SOFFA_ERR_NOT_FOUND};
        if (soffa_store_get(self->store, seqs.seqs[i], s_load_ref, &l) != SOFFA_OK || l.rc != SOFFA_OK) {
            soffa_policy_ref_fini(&r);
            continue;
        }
        char mid[SOFFA_UUID_STR], rid[SOFFA_UUID_STR], cid[SOFFA_UUID_STR], corr[SOFFA_UUID_STR],
            cause_s[SOFFA_UUID_STR];
        uint8_t id[16];
        soffa_uuid7(id);
        soffa_uuid_format(id, mid);
        soffa_uuid_format(r.view.ref_id, rid);
        soffa_uuid_format(consent_id, cid);
        soffa_uuid_format(r.view.correlation_id ? r.view.correlation_id : r.view.ref_id, corr);
        soffa_uuid_format(cause, cause_s);
        int64_t now = soffa_now_us();
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"message_id\":\"%s\",\"schema_version\":\"1.0\",\"occurred_at_us\":%lld,\"sent_at_us\":%lld,"
                 "\"subject\":{\"id_type\":%d,\"id\":\"%s\",\"protected_identity\":%s,\"hemkommun\":\"%s\"},"
                 "\"legal_basis\":\"CONSENT_OSL_12_2\",\"consent_id\":\"%s\",\"correlation_id\":\"%s\","
                 "\"causation_id\":\"%s\",\"referral_withdrawn\":{\"referral_id\":\"%s\",\"reason\":\"CONSENT_WITHDRAWN\"}}",
                 mid, (long long) now, (long long) now, (int) r.view.id_type, r.view.subject_id,
                 r.view.protected_identity ? "true" : "false", r.view.hemkommun, cid, corr, cause_s, rid);
        soffa_msg_t *m = NULL;
        uint8_t *body = NULL;
        size_t len = 0;
        if (soffa_msg_from_json(json, &m, NULL, 0) == SOFFA_OK && soffa_msg_encode(m, &body, &len) == SOFFA_OK) {
            s_pending_t *p = s_pending_add(self);
            p->body = body;
            p->env.body = body;
            p->env.body_len = len;
            p->env.kind = SOFFA_RK_MESSAGE;
            p->env.msg_type = SOFFA_MT_REFERRAL_WITHDRAWN;
            memcpy(p->env.message_id, id, 16);
            snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", self->cfg.name);
            p->env.sender_role = SOFFA_ROLE_BROKER;
            p->env.received_at_us = now;
            snprintf(p->env.mailbox, sizeof p->env.mailbox, "%s", r.mailbox);
            snprintf(p->subject, sizeof p->subject, "%s", r.view.subject_id);
            soffa_info("consent withdrawn: referral-withdrawn sent to %s for the referral at seq %llu", r.mailbox,
                       (unsigned long long) r.seq);
        } else {
            free(body);
            soffa_error("could not build referral-withdrawn for seq %llu", (unsigned long long) r.seq);
        }
        soffa_msg_destroy(&m);
        soffa_policy_ref_fini(&r);
    }
    s_commit(self);
}

/* ---- Frame handlers --------------------------------------------------------------- */

static void
s_on_publish(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    char why[256] = "";
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = soffa_msg_decode(f->data, f->data_len, &msg);
    if (rc != SOFFA_OK) {
        s_send_error(self, s->rid, s->rid_len, f->tag, rc, "the message could not be decoded");
        self->refused++;
        return;
    }
    rc = soffa_msg_validate(msg, 0, why, sizeof why);
    if (rc != SOFFA_OK)
        goto refuse;
    soffa_msg_view_t v;
    soffa_msg_view(msg, &v);

    /* A retry of something stored before gets its original sequence back,
     * whatever has changed since. */
    uint64_t seq;
    if (soffa_store_dedup_get(self->store, s->id->name, v.message_id, &seq) == SOFFA_OK) {
        soffa_frame_t ack = {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = f->tag, .seq = seq, .duplicate = true};
        soffa_policy_ref_t r = {0};
        s_load_t l = {&r, SOFFA_ERR_NOT_FOUND};
        if (soffa_store_get(self->store, seq, s_load_ref, &l) == SOFFA_OK)
            memcpy(ack.mailbox, r.mailbox, sizeof ack.mailbox);
        soffa_policy_ref_fini(&r);
        s_send(self, s->rid, s->rid_len, &ack);
        soffa_msg_destroy(&msg);
        return;
    }
    /* Decisions that look records up see everything committed so far. */
    if (soffa_policy_needs_lookup(v.type))
        s_commit(self);
    soffa_policy_decision_t dec;
    rc = soffa_policy_decide(s->id, msg, soffa_date_today(), s_find, self, &dec, why, sizeof why);
    if (rc != SOFFA_OK)
        goto refuse;

    s_pending_t *p = s_pending_add(self);
    p->session = s;
    memcpy(p->rid, s->rid, s->rid_len);
    p->rid_len = s->rid_len;
    p->tag = f->tag;
    p->dec = dec;
    p->body = malloc(f->data_len ? f->data_len : 1);
    if (!p->body) {
        self->n_pending--;
        rc = SOFFA_ERR_NOMEM;
        goto refuse;
    }
    memcpy(p->body, f->data, f->data_len);
    p->env.body = p->body;
    p->env.body_len = f->data_len;
    p->env.kind = SOFFA_RK_MESSAGE;
    p->env.msg_type = (uint32_t) v.type;
    memcpy(p->env.message_id, v.message_id, 16);
    /* The sender is the authenticated identity, never the one claimed. */
    snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", s->id->name);
    p->env.sender_role = s->id->role;
    snprintf(p->env.sender_kommun, sizeof p->env.sender_kommun, "%s", s->id->kommun);
    snprintf(p->env.sender_unit, sizeof p->env.sender_unit, "%s", s->id->unit);
    p->env.received_at_us = soffa_now_us();
    snprintf(p->env.mailbox, sizeof p->env.mailbox, "%s", dec.mailbox);
    if (v.id_type != SOFFA_IDT_LOCAL_RESERVE)
        snprintf(p->subject, sizeof p->subject, "%s", v.subject_id);
    if (v.type == SOFFA_MT_CONSENT_WITHDRAWN && v.ref_id) {
        p->withdraws = true;
        memcpy(p->consent_id, v.ref_id, 16);
    }
    soffa_msg_destroy(&msg);
    return;

refuse:
    self->refused++;
    {
        char mid[SOFFA_UUID_STR] = "-";
        soffa_msg_view_t vv;
        soffa_msg_view(msg, &vv);
        if (vv.message_id)
            soffa_uuid_format(vv.message_id, mid);
        soffa_info("refused %s %s from %s: %s: %s", soffa_msg_type_name(vv.type), mid, s->id->name,
                   soffa_errname(rc), why[0] ? why : soffa_strerror(rc));
    }
    s_send_error(self, s->rid, s->rid_len, f->tag, rc, why);
    soffa_msg_destroy(&msg);
}

static s_consumer_t *
s_session_consumer(s_session_t *s, const char *mailbox)
{
    for (size_t i = 0; i < s->n_consumers; i++)
        if (strcmp(s->consumers[i]->mbox->name, mailbox) == 0)
            return s->consumers[i];
    return NULL;
}

static void
s_remove_consumer_from_session(s_session_t *s, s_consumer_t *c)
{
    for (size_t i = 0; i < s->n_consumers; i++) {
        if (s->consumers[i] == c) {
            s->consumers[i] = s->consumers[--s->n_consumers];
            return;
        }
    }
}

static void
s_on_subscribe(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    if (!soffa_policy_may_read(s->id, f->mailbox)) {
        char why[200];
        snprintf(why, sizeof why, "%s may not read mailbox '%s'", s->id->name, f->mailbox);
        soffa_info("refused subscribe: %s", why);
        s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_NOT_AUTHORISED, why);
        return;
    }
    if (s_session_consumer(s, f->mailbox)) {
        s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_PROTOCOL_STATE, "already subscribed to that mailbox");
        return;
    }
    if (s->n_consumers >= sizeof s->consumers / sizeof *s->consumers) {
        s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_TOO_LARGE, "too many subscriptions");
        return;
    }
    s_mailbox_t *m = s_mailbox(self, f->mailbox);
    if (!m) {
        s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_NOMEM, NULL);
        return;
    }
    char key[2 * SOFFA_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s|%s", s->id->name, m->name);
    /* One reader per (agent, mailbox): a newer session takes over. */
    for (s_consumer_t *c = m->consumers; c; c = c->next) {
        if (strcmp(c->cursor_key, key) == 0) {
            soffa_info("%s reads %s from a new session; the old one stops", s->id->name, m->name);
            s_remove_consumer_from_session(c->session, c);
            s_consumer_free(self, c);
            break;
        }
    }
    s_consumer_t *c = calloc(1, sizeof *c);
    uint32_t window = f->credit ? f->credit : 64;
    if (window > (uint32_t) self->cfg.window_max)
        window = (uint32_t) self->cfg.window_max;
    if (c)
        c->ring = calloc(window, sizeof *c->ring);
    if (!c || !c->ring) {
        if (c)
            free(c);
        s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_NOMEM, NULL);
        return;
    }
    c->session = s;
    c->mbox = m;
    memcpy(c->cursor_key, key, sizeof key);
    c->window = c->ring_cap = window;
    if (soffa_store_cursor_get(self->store, key, &c->acked) != SOFFA_OK)
        c->acked = 0;
    c->flushed = c->sent = c->acked;
    c->next = m->consumers;
    m->consumers = c;
    s->consumers[s->n_consumers++] = c;
    soffa_info("%s reads %s from seq %llu, window %u", s->id->name, m->name, (unsigned long long) c->acked + 1,
               window);
    s_pump(self, c);
}

static void
s_on_ack(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    s_consumer_t *c = s_session_consumer(s, f->mailbox);
    if (!c) {
        s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_PROTOCOL_STATE, "ack for a mailbox not subscribed");
        return;
    }
    if (f->seq > c->sent) {
        s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_PROTOCOL_STATE, "ack for a sequence not delivered");
        return;
    }
    if (f->seq <= c->acked)
        return;   /* stale */
    c->acked = f->seq;
    while (c->ring_len && c->ring[c->ring_head] <= f->seq) {
        c->ring_head = (c->ring_head + 1) % c->ring_cap;
        c->ring_len--;
    }
    s_pump(self, c);
}

static void s_pump_replay(soffa_broker_t *self, s_session_t *s);

static void
s_on_credit(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    if (f->mailbox[0] == '\0') {
        /* Credit that crosses the end of a replay on the wire is stale, not
         * an error. */
        if (s->state != S_REPLAYING)
            return;
        s->replay.credit += f->credit;
        s_pump_replay(self, s);
        return;
    }
    s_consumer_t *c = s_session_consumer(s, f->mailbox);
    if (!c) {
        s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_PROTOCOL_STATE, "credit for a mailbox not subscribed");
        return;
    }
    uint32_t w = f->credit ? f->credit : 1;
    if (w > (uint32_t) self->cfg.window_max)
        w = (uint32_t) self->cfg.window_max;
    if (w > c->ring_cap) {
        uint64_t *ring = calloc(w, sizeof *ring);
        if (!ring)
            return;
        for (uint32_t i = 0; i < c->ring_len; i++)
            ring[i] = c->ring[(c->ring_head + i) % c->ring_cap];
        free(c->ring);
        c->ring = ring;
        c->ring_cap = w;
        c->ring_head = 0;
    }
    c->window = w;
    s_pump(self, c);
}

/* ---- Replay --------------------------------------------------------------------- */

static void
s_filter_text(const soffa_replay_filter_t *f, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
#define S_ADD(...) o += (size_t) snprintf(out + o, o < len ? len - o : 0, __VA_ARGS__)
    if (f->from_seq || f->to_seq)
        S_ADD("seq %llu..%llu; ", (unsigned long long) f->from_seq, (unsigned long long) f->to_seq);
    if (f->from_us || f->to_us) {
        char a[32] = "-", b[32] = "-";
        if (f->from_us)
            soffa_time_format(f->from_us, a);
        if (f->to_us)
            soffa_time_format(f->to_us, b);
        S_ADD("time %s..%s; ", a, b);
    }
    if (f->mailbox[0])
        S_ADD("mailbox %s; ", f->mailbox);
    if (f->message_type)
        S_ADD("type %s; ", soffa_msg_type_name((soffa_msg_type_t) f->message_type));
    if (f->subject_id[0])
        S_ADD("one subject (keyed); ");
    if (f->limit)
        S_ADD("limit %llu; ", (unsigned long long) f->limit);
    if (o == 0)
        S_ADD("everything in scope");
#undef S_ADD
}

static void
s_replay_finish(soffa_broker_t *self, s_session_t *s)
{
    soffa_access_t a = {.role = s->id->role, .records = s->replay.count};
    snprintf(a.agent, sizeof a.agent, "%s", s->id->name);
    snprintf(a.request, sizeof a.request, "%s", s->replay.request);
    s_filter_text(&s->replay.f, a.filter, sizeof a.filter);
    uint8_t *body = NULL;
    size_t len = 0;
    uint64_t access_seq = 0;
    soffa_err_t rc = soffa_access_encode(&a, &body, &len);
    if (rc == SOFFA_OK) {
        /* Its own commit, after everything pending: the access record is
         * durable before the auditor hears the replay is complete. */
        s_commit(self);
        soffa_envelope_t env = {.body = body, .body_len = len, .kind = SOFFA_RK_ACCESS,
                                .sender_role = s->id->role, .received_at_us = soffa_now_us()};
        soffa_uuid7(env.message_id);
        snprintf(env.sender_agent, sizeof env.sender_agent, "%s", s->id->name);
        snprintf(env.mailbox, sizeof env.mailbox, "%s", S_ACCESS_MAILBOX);
        soffa_store_item_t it = {.env = &env, .subject_id = s->replay.f.subject_id[0] ? s->replay.f.subject_id : NULL};
        rc = soffa_store_append(self->store, &it, 1);
        access_seq = it.seq;
        free(body);
        if (rc == SOFFA_OK) {
            s_mailbox_t *m = s_mailbox(self, S_ACCESS_MAILBOX);
            if (m) {
                m->depth++;
                m->last_seq = access_seq;
            }
        }
    }
    s->state = S_READY;
    if (rc != SOFFA_OK) {
        /* A read that cannot be logged is reported as failed. */
        soffa_error("replay by %s could not be logged: %s", s->id->name, soffa_strerror(rc));
        s_send_error(self, s->rid, s->rid_len, s->replay.tag, rc, "the replay could not be recorded in the access log");
        return;
    }
    soffa_info("%s by %s: %llu record(s), logged at seq %llu", s->replay.request, s->id->name,
               (unsigned long long) s->replay.count, (unsigned long long) access_seq);
    soffa_frame_t end = {.type = SOFFA_FRAME_REPLAY_END, .tag = s->replay.tag, .count = s->replay.count,
                         .access_seq = access_seq};
    s_send(self, s->rid, s->rid_len, &end);
    s_pump_mailbox(self, s_mailbox(self, S_ACCESS_MAILBOX));
}

typedef struct {
    soffa_broker_t *self;
    s_session_t *s;
    bool done;                     /* reached the end of the range */
    bool blocked;
} s_rp_t;

static int
s_replay_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_rp_t *r = ctx;
    s_session_t *s = r->s;
    if (rec->seq > s->replay.to) {
        r->done = true;
        return 1;
    }
    s->replay.pos = rec->seq;
    if (s->replay.f.message_type && rec->tag != s->replay.f.message_type)
        return 0;
    if (!s->replay.all_scope && s->replay.mode != S_R_MAILBOX) {
        soffa_envelope_t e;
        bool ok = soffa_envelope_decode(rec->env, rec->len, &e) == SOFFA_OK
               && soffa_policy_may_replay(s->id, e.mailbox);
        soffa_envelope_fini(&e);
        if (!ok)
            return 0;
    }
    soffa_frame_t f = {.type = SOFFA_FRAME_DELIVER, .seq = rec->seq, .data = rec->env, .data_len = rec->len,
                       .has_hash = true, .tag = s->replay.tag};
    memcpy(f.hash, rec->hash, SOFFA_HASH_LEN);
    if (!s_send(r->self, s->rid, s->rid_len, &f)) {
        s->replay.pos = rec->seq - 1;   /* try this one again */
        r->blocked = true;
        return 1;
    }
    s->replay.count++;
    if (s->replay.f.limit && s->replay.count >= s->replay.f.limit) {
        r->done = true;
        return 1;
    }
    return --s->replay.credit == 0;
}

static void
s_pump_replay(soffa_broker_t *self, s_session_t *s)
{
    while (s->state == S_REPLAYING && s->replay.credit > 0) {
        s_rp_t r = {self, s, false, false};
        soffa_err_t rc;
        switch (s->replay.mode) {
        case S_R_MAILBOX:
            rc = soffa_store_scan_mailbox(self->store, s->replay.f.mailbox, s->replay.pos, s_replay_one, &r);
            break;
        case S_R_SUBJECT:
            rc = soffa_store_scan_subject(self->store, s->replay.f.subject_id, s->replay.pos, s_replay_one, &r);
            break;
        default:
            rc = soffa_store_scan(self->store, s->replay.pos + 1, s_replay_one, &r);
            break;
        }
        if (rc != SOFFA_OK) {
            s->state = S_READY;
            s_send_error(self, s->rid, s->rid_len, s->replay.tag, rc, "replay failed while reading the store");
            return;
        }
        if (r.blocked)
            return;   /* the auditor's queue is full: the timer tries again */
        if (r.done || s->replay.credit > 0) {
            /* The range ended, or the scan ran out of records before the
             * credit did: the replay is complete. */
            s_replay_finish(self, s);
            return;
        }
        /* Credit used up: wait for the auditor's CREDIT. */
    }
}

static void
s_on_replay(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    if (s->id->role != SOFFA_ROLE_AUDIT) {
        soffa_info("refused replay by %s: not an auditor", s->id->name);
        s_send_error(self, s->rid, s->rid_len, f->tag, SOFFA_ERR_NOT_AUTHORISED, "only the audit role may replay the history");
        return;
    }
    const soffa_replay_filter_t *fl = &f->filter;
    if (fl->mailbox[0] && !soffa_policy_may_replay(s->id, fl->mailbox)) {
        char why[160];
        snprintf(why, sizeof why, "mailbox '%s' is outside %s's scope", fl->mailbox, s->id->name);
        s_send_error(self, s->rid, s->rid_len, f->tag, SOFFA_ERR_NOT_AUTHORISED, why);
        return;
    }
    if (fl->subject_id[0] && soffa_id_check(fl->subject_id, NULL) != SOFFA_OK) {
        s_send_error(self, s->rid, s->rid_len, f->tag, SOFFA_ERR_BAD_FIELD,
                     "the subject filter is not a valid 12-digit identity number");
        return;
    }
    s_commit(self);   /* the replay sees everything acknowledged so far */
    memset(&s->replay, 0, sizeof s->replay);
    s->replay.tag = f->tag;
    s->replay.f = *fl;
    snprintf(s->replay.request, sizeof s->replay.request, "%.31s", f->text[0] ? f->text : "replay");
    s->replay.mode = fl->subject_id[0] ? S_R_SUBJECT : fl->mailbox[0] ? S_R_MAILBOX : S_R_LOG;
    s->replay.all_scope = strcmp(s->id->scope, "*") == 0;
    uint64_t from = fl->from_seq ? fl->from_seq : 1, to = fl->to_seq ? fl->to_seq : UINT64_MAX;
    uint64_t t;
    if (fl->from_us && soffa_store_seq_at_time(self->store, fl->from_us, &t) == SOFFA_OK && t > from)
        from = t;
    if (fl->to_us && soffa_store_seq_at_time(self->store, fl->to_us, &t) == SOFFA_OK && t - 1 < to)
        to = t - 1;   /* to_us is exclusive */
    s->replay.pos = from - 1;
    s->replay.to = to;
    s->replay.credit = S_REPLAY_CREDIT;
    s->state = S_REPLAYING;
    if (from > to) {
        s_replay_finish(self, s);
        return;
    }
    s_pump_replay(self, s);
}

/* ---- Status ----------------------------------------------------------------------- */

typedef struct {
    soffa_broker_t *self;
    const soffa_identity_t *who;
    soffa_mailbox_status_t *st;
    size_t n, cap;
} s_status_t;

static int
s_first_time(void *ctx, const soffa_store_rec_t *rec)
{
    soffa_envelope_t e;
    if (soffa_envelope_decode(rec->env, rec->len, &e) == SOFFA_OK) {
        *(int64_t *) ctx = e.received_at_us;
        soffa_envelope_fini(&e);
    }
    return 1;
}

typedef struct {
    soffa_broker_t *self;
    int64_t cutoff_us;             /* records received before this are past due */
    uint64_t overdue;
    uint64_t scanned;
} s_overdue_t;

static int
s_overdue_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_overdue_t *o = ctx;
    if (++o->scanned > 1000000)
        return 1;   /* bounded: status stays cheap on huge mailboxes */
    bool signal = rec->tag == SOFFA_MT_ENROLMENT_CHANGED || rec->tag == SOFFA_MT_ABSENCE_REPORTED
               || rec->tag == SOFFA_MT_AT_RISK_NOTICE;
    if (!signal && rec->tag != SOFFA_MT_REFERRAL_SENT)
        return 0;
    soffa_envelope_t e;
    if (soffa_envelope_decode(rec->env, rec->len, &e) != SOFFA_OK)
        return 0;
    bool past = e.received_at_us < o->cutoff_us;
    soffa_msg_t *m = NULL;
    if (past && soffa_msg_decode(e.body, e.body_len, &m) == SOFFA_OK) {
        soffa_msg_view_t v;
        soffa_msg_view(m, &v);
        const uint8_t *id = signal ? v.message_id : v.ref_id;
        uint8_t key[17] = {(uint8_t) (signal ? 'A' : 'S')};
        uint64_t seq;
        if (id) {
            memcpy(key + 1, id, 16);
            if (soffa_store_ref_get(o->self->store, key, sizeof key, &seq) == SOFFA_ERR_NOT_FOUND)
                o->overdue++;
        }
        soffa_msg_destroy(&m);
    }
    soffa_envelope_fini(&e);
    return past ? 0 : 1;   /* records are in receive order: the rest are not due yet */
}

static int
s_status_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_status_t *st = ctx;
    s_mailbox_t *m = v;
    if (!(st->who->role == SOFFA_ROLE_AUDIT ? soffa_policy_may_replay(st->who, m->name)
                                            : soffa_policy_may_read(st->who, m->name)))
        return 0;
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 32;
        soffa_mailbox_status_t *n = realloc(st->st, cap * sizeof *n);
        if (!n)
            return 1;
        st->st = n;
        st->cap = cap;
    }
    soffa_mailbox_status_t *s = &st->st[st->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->mailbox, sizeof s->mailbox, "%s", m->name);
    s->depth = m->depth;
    s->last_seq = m->last_seq;
    /* The slowest reader decides the lag: connected readers, else the
     * stored cursors of every agent allowed to read the mailbox. */
    uint64_t slowest = UINT64_MAX;
    for (s_consumer_t *c = m->consumers; c; c = c->next) {
        s->consumers++;
        if (c->acked < slowest)
            slowest = c->acked;
    }
    if (!s->consumers) {
        for (size_t i = 0; i < st->self->n_ids; i++) {
            if (!soffa_policy_may_read(&st->self->ids[i], m->name))
                continue;
            char key[2 * SOFFA_NAME_MAX + 2];
            uint64_t cur = 0;
            snprintf(key, sizeof key, "%s|%s", st->self->ids[i].name, m->name);
            soffa_store_cursor_get(st->self->store, key, &cur);
            if (cur < slowest)
                slowest = cur;
        }
    }
    if (slowest == UINT64_MAX)
        slowest = 0;
    uint64_t lag = 0;
    if (slowest < m->last_seq && strcmp(m->name, S_ACCESS_MAILBOX) != 0 && strncmp(m->name, "kaa-journal/", 12) != 0
        && strncmp(m->name, "school-journal/", 15) != 0) {
        soffa_store_count_mailbox(st->self->store, m->name, slowest, 1000000, &lag);
        int64_t t = 0;
        soffa_store_scan_mailbox(st->self->store, m->name, slowest, s_first_time, &t);
        s->oldest_undelivered_us = t;
    }
    s->lag = lag;
    s->no_reader = lag > 0 && s->consumers == 0;
    /* Business receipts: signals to a KAA await an acknowledgement, referrals
     * to an agency a status; past the deadline they count as overdue. */
    bool signals = !strncmp(m->name, "kaa/", 4);
    bool referrals = !strncmp(m->name, "af/", 3) || !strncmp(m->name, "social/", 7);
    if (signals || referrals) {
        s_overdue_t od = {st->self, soffa_now_us() - 1000 * (signals ? st->self->cfg.signal_ack_due
                                                                        : st->self->cfg.referral_receipt_due),
                          0, 0};
        soffa_store_scan_mailbox(st->self->store, m->name, 0, s_overdue_one, &od);
        s->overdue = od.overdue;
    }
    return 0;
}

static void
s_on_status(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    s_status_t st = {self, s->id, NULL, 0, 0};
    soffa_map_each(self->mailboxes, s_status_one, &st);
    soffa_frame_t r = {.type = SOFFA_FRAME_STATUS_REPLY, .tag = f->tag, .sessions = (uint32_t) soffa_map_size(self->sessions),
                       .started_at_us = self->started_at_us, .statuses = st.st, .n_statuses = st.n};
    soffa_store_head(self->store, &r.head_seq, NULL, NULL);
    s_send(self, s->rid, s->rid_len, &r);
    free(st.st);
}

/* ---- Dispatch ------------------------------------------------------------------- */

static void
s_on_frame(soffa_broker_t *self, s_session_t *s, const uint8_t *buf, size_t len)
{
    soffa_frame_t f;
    soffa_err_t rc = soffa_frame_decode(buf, len, &f);
    if (rc != SOFFA_OK) {
        soffa_info("bad frame from %s (%zu bytes): %s", s->id->name, len, soffa_strerror(rc));
        s_send_error(self, s->rid, s->rid_len, 0, rc,
                     rc == SOFFA_ERR_TOO_LARGE ? "frame or field larger than allowed" : "frame could not be decoded");
        soffa_frame_fini(&f);
        return;
    }
    /* Which frames each state allows. */
    bool ok;
    switch (f.type) {
    case SOFFA_FRAME_HELLO: ok = true; break;
    /* A PING in NEW means the agent had a session this broker no longer
     * knows (it restarted, or expired the session): the error tells the
     * agent to greet and subscribe again. */
    case SOFFA_FRAME_PING: ok = s->state != S_NEW; break;
    case SOFFA_FRAME_PUBLISH:
    case SOFFA_FRAME_SUBSCRIBE:
    case SOFFA_FRAME_ACK:
    case SOFFA_FRAME_STATUS_REQUEST: ok = s->state != S_NEW; break;
    case SOFFA_FRAME_CREDIT: ok = s->state != S_NEW; break;
    case SOFFA_FRAME_REPLAY: ok = s->state == S_READY; break;
    default: ok = false; break;   /* broker-to-client frames */
    }
    if (!ok) {
        char why[120];
        snprintf(why, sizeof why, "%s is not allowed in state %s", soffa_frame_type_name(f.type),
                 s_state_names[s->state]);
        soffa_info("%s: %s", s->id->name, why);
        s_send_error(self, s->rid, s->rid_len, f.tag, SOFFA_ERR_PROTOCOL_STATE, why);
        soffa_frame_fini(&f);
        return;
    }
    switch (f.type) {
    case SOFFA_FRAME_HELLO: {
        if (f.version != SOFFA_PROTOCOL_VERSION) {
            s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_VERSION, "protocol version 1 is required");
            break;
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
        if (s->state == S_NEW)
            soffa_info("%s (%s) connected as %s", s->id->name, soffa_role_name(s->id->role), f.text);
        if (s->state == S_NEW)
            s->state = S_READY;
        s_send(self, s->rid, s->rid_len, &w);
        break;
    }
    case SOFFA_FRAME_PING: {
        soffa_frame_t p = {.type = SOFFA_FRAME_PONG, .tag = f.tag};
        s_send(self, s->rid, s->rid_len, &p);
        break;
    }
    case SOFFA_FRAME_PUBLISH: s_on_publish(self, s, &f); break;
    case SOFFA_FRAME_SUBSCRIBE: s_on_subscribe(self, s, &f); break;
    case SOFFA_FRAME_ACK: s_on_ack(self, s, &f); break;
    case SOFFA_FRAME_CREDIT: s_on_credit(self, s, &f); break;
    case SOFFA_FRAME_REPLAY: s_on_replay(self, s, &f); break;
    case SOFFA_FRAME_STATUS_REQUEST:
        s_commit(self);
        s_on_status(self, s, &f);
        break;
    default: break;
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
        const char *user = zmq_msg_gets(&body, "User-Id");
        const soffa_identity_t *id = user ? soffa_map_sget(self->by_name, user) : NULL;
        size_t rlen = zmq_msg_size(&rid);
        if (!id || rlen == 0 || rlen > S_RID_MAX) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        s_session_t *s = soffa_map_get(self->sessions, zmq_msg_data(&rid), rlen);
        if (!s) {
            s = calloc(1, sizeof *s);
            if (!s || soffa_map_put(self->sessions, zmq_msg_data(&rid), rlen, s) != SOFFA_OK) {
                free(s);
                zmq_msg_close(&rid);
                zmq_msg_close(&body);
                continue;
            }
            memcpy(s->rid, zmq_msg_data(&rid), rlen);
            s->rid_len = rlen;
            s->id = id;
            s->state = S_NEW;
        }
        s->last_seen = soffa_mono_us();
        if (extra)
            s_send_error(self, s->rid, s->rid_len, 0, SOFFA_ERR_MALFORMED, "a frame is one message part");
        else
            s_on_frame(self, s, zmq_msg_data(&body), zmq_msg_size(&body));
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
}

/* ---- ZAP: who may open a session --------------------------------------------------- */

static void
s_zap_handle(soffa_broker_t *self)
{
    for (;;) {
        zmq_msg_t parts[8];
        int n = 0;
        bool more = true;
        while (more && n < 8) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], self->zap, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&parts[n]);
                if (n == 0)
                    return;
                break;
            }
            more = zmq_msg_more(&parts[n]);
            n++;
        }
        const char *status = "400", *text = "unknown key", *user = "";
        if (n >= 7 && zmq_msg_size(&parts[5]) == 5 && memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0
            && zmq_msg_size(&parts[6]) == 32) {
            const soffa_identity_t *id = soffa_map_get(self->by_key, zmq_msg_data(&parts[6]), 32);
            if (id) {
                status = "200";
                text = "OK";
                user = id->name;
            } else {
                char z85[41] = "?", addr[64] = "";
                zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
                snprintf(addr, sizeof addr, "%.*s", (int) zmq_msg_size(&parts[3]), (char *) zmq_msg_data(&parts[3]));
                soffa_warn("refused a connection from %s: public key %s is not configured", addr, z85);
            }
        } else {
            text = "CURVE required";
        }
        if (n >= 2) {
            zmq_send(self->zap, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(self->zap, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
            zmq_send(self->zap, status, 3, ZMQ_SNDMORE);
            zmq_send(self->zap, text, strlen(text), ZMQ_SNDMORE);
            zmq_send(self->zap, user, strlen(user), ZMQ_SNDMORE);
            zmq_send(self->zap, "", 0, 0);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
}

/* ---- Signed checkpoints ---------------------------------------------------------------- */

/* Loads DATA/checkpoint.key, or makes it (and checkpoint.pub) on first start. */
static soffa_err_t
s_signing_key(soffa_broker_t *self, const char *data, char *why, size_t whylen)
{
    char kp[1100], pp[1100];
    snprintf(kp, sizeof kp, "%s/checkpoint.key", data);
    snprintf(pp, sizeof pp, "%s/checkpoint.pub", data);
    FILE *f = fopen(kp, "re");
    if (!f && errno == ENOENT) {
        uint8_t pk[SOFFA_SIGN_PUBLIC];
        crypto_sign_keypair(pk, self->sign_sk);
        int fd = open(kp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        bool ok = fd >= 0 && write(fd, self->sign_sk, SOFFA_SIGN_SECRET) == SOFFA_SIGN_SECRET && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        char hex[2 * SOFFA_SIGN_PUBLIC + 2];
        sodium_bin2hex(hex, sizeof hex, pk, SOFFA_SIGN_PUBLIC);
        FILE *pf = ok ? fopen(pp, "we") : NULL;
        ok = pf && fprintf(pf, "%s\n", hex) > 0;
        if (pf)
            ok &= fclose(pf) == 0;
        if (!ok) {
            snprintf(why, whylen, "cannot write the checkpoint key %s", kp);
            return SOFFA_ERR_IO;
        }
        soffa_info("made the checkpoint signing key; its public half is %s (also in %s)", hex, pp);
        return SOFFA_OK;
    }
    if (!f) {
        snprintf(why, whylen, "cannot read %s: %s", kp, strerror(errno));
        return soffa_err_from_errno(errno);
    }
    struct stat st;
    bool ok = fstat(fileno(f), &st) == 0 && !(st.st_mode & 077);
    size_t n = ok ? fread(self->sign_sk, 1, SOFFA_SIGN_SECRET, f) : 0;
    fclose(f);
    if (!ok) {
        snprintf(why, whylen, "%s can be read by others; run chmod 600 on it", kp);
        return SOFFA_ERR_PERMISSION;
    }
    if (n != SOFFA_SIGN_SECRET) {
        snprintf(why, whylen, "%s is damaged (not a 64-byte key)", kp);
        return SOFFA_ERR_STORE_CORRUPT;
    }
    return SOFFA_OK;
}

/* Fills p with a signed checkpoint of the committed head, to be the first
 * record of the next commit. False when there is nothing new to cover. */
static bool
s_checkpoint_make(soffa_broker_t *self, s_pending_t *p)
{
    soffa_checkpoint_t cp = {.at_us = soffa_now_us()};
    soffa_store_head(self->store, &cp.covers_seq, cp.head_hash, NULL);
    if (cp.covers_seq == 0 || cp.covers_seq <= self->cp_seq)
        return false;
    soffa_checkpoint_sign(&cp, self->sign_sk);
    size_t len = 0;
    if (soffa_checkpoint_encode(&cp, &p->body, &len) != SOFFA_OK)
        return false;
    p->checkpoint = true;
    p->env = (soffa_envelope_t) {.body = p->body, .body_len = len, .kind = SOFFA_RK_CHECKPOINT,
                                 .sender_role = SOFFA_ROLE_BROKER, .received_at_us = cp.at_us};
    soffa_uuid7(p->env.message_id);
    snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", self->cfg.name);
    snprintf(p->env.mailbox, sizeof p->env.mailbox, "audit/checkpoint");
    self->cp_at = soffa_mono_us();
    self->cp_force = false;
    return true;
}

/* Whether the next commit should start with a checkpoint (only between
 * commits: the head is the writer's while one is in flight). */
static bool
s_checkpoint_due(soffa_broker_t *self)
{
    if (self->in_flight)
        return false;
    uint64_t head;
    soffa_store_head(self->store, &head, NULL, NULL);
    if (head <= self->cp_seq)
        return false;
    return self->cp_force || head - self->cp_seq >= (uint64_t) self->cfg.checkpoint_every
           || soffa_mono_us() - self->cp_at >= self->cfg.checkpoint_ms * 1000;
}

/* Commits a signed checkpoint of everything so far, now (on stop). */
static void
s_checkpoint(soffa_broker_t *self)
{
    s_commit(self);
    self->cp_force = true;
    s_submit(self);
    s_flight_wait(self);
    self->cp_force = false;
}

/* ---- Open, run, destroy --------------------------------------------------------------- */

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
    soffa_store_opts_t so = {.path = path, .map_size = self->cfg.map_size};
    rc = soffa_store_open(&self->store, &so);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s", path, soffa_strerror(rc));
        return rc;
    }
    rc = soffa_store_mailboxes(self->store, s_load_mailbox, self);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s", path, soffa_strerror(rc));
        return rc;
    }
    rc = s_signing_key(self, path, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    soffa_store_head(self->store, &self->cp_seq, NULL, NULL);   /* checkpoint from the next record on */
    self->cp_at = soffa_mono_us();
    self->pending = calloc((size_t) self->cfg.batch_max + 1, sizeof *self->pending);
    self->flight = calloc((size_t) self->cfg.batch_max + 1, sizeof *self->flight);
    self->flight_items = calloc((size_t) self->cfg.batch_max + 1, sizeof *self->flight_items);
    if (!self->pending || !self->flight || !self->flight_items)
        return SOFFA_ERR_NOMEM;
    self->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->done_fd < 0)
        return SOFFA_ERR_IO;
    if (pthread_mutex_init(&self->wmu, NULL) != 0 || pthread_cond_init(&self->wcv, NULL) != 0
        || pthread_create(&self->writer, NULL, s_writer_main, self) != 0)
        return SOFFA_ERR_NOMEM;
    self->writer_started = true;

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
    int one = 1, hwm = 100000, linger = 2000;
    int64_t maxmsg = S_MAX_WIRE_IN;
    zmq_setsockopt(self->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(self->router, ZMQ_CURVE_SECRETKEY, self->secret_key, 41);
    zmq_setsockopt(self->router, ZMQ_ZAP_DOMAIN, "soffa", 5);
    zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(self->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof linger);
    /* A national rollout reconnects all at once after a restart: with
     * ZeroMQ's default backlog of 100, the rest wait out TCP's SYN retries
     * (1 s, 3 s, ...). The kernel caps this at net.core.somaxconn. */
    int backlog = 4096;
    zmq_setsockopt(self->router, ZMQ_BACKLOG, &backlog, sizeof backlog);
    zmq_setsockopt(self->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(self->router, self->cfg.endpoint) != 0) {
        snprintf(why, whylen, "cannot listen on %s: %s", self->cfg.endpoint, zmq_strerror(errno));
        return SOFFA_ERR_TRANSPORT;
    }
    if (self->cfg.ipc_endpoint[0] && zmq_bind(self->router, self->cfg.ipc_endpoint) != 0) {
        snprintf(why, whylen, "cannot listen on %s: %s", self->cfg.ipc_endpoint, zmq_strerror(errno));
        return SOFFA_ERR_TRANSPORT;
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
    s_pump_mailbox(ctx, v);
    return 0;
}

static int
s_wake_replay(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_session_t *s = v;
    if (s->state == S_REPLAYING)
        s_pump_replay(ctx, s);
    return 0;
}

static void
s_wake_all(soffa_broker_t *self)
{
    soffa_map_each(self->mailboxes, s_wake_one, self);
}

soffa_err_t
soffa_broker_run(soffa_broker_t *self, volatile sig_atomic_t *stop)
{
    zmq_pollitem_t items[3] = {{self->router, 0, ZMQ_POLLIN, 0}, {self->zap, 0, ZMQ_POLLIN, 0},
                               {NULL, self->done_fd, ZMQ_POLLIN, 0}};
    int64_t now = soffa_mono_us();
    self->last_drain = now;
    self->next_flush = now + self->cfg.cursor_flush_ms * 1000;
    self->next_expiry = now + 500000;
    while (!*stop) {
        soffa_notify_watchdog();
        int n = zmq_poll(items, 3, 50);
        if (n < 0 && errno != EINTR) {
            soffa_error("poll failed: %s", zmq_strerror(errno));
            return SOFFA_ERR_TRANSPORT;
        }
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            s_zap_handle(self);
        uint64_t before = self->published;
        if (n > 0 && (items[2].revents & ZMQ_POLLIN))
            s_flight_wait(self);   /* done: answer it */
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            s_read_router(self);
        else if (n == 0)
            self->last_drain = soffa_mono_us();   /* nothing was waiting */
        s_submit(self);   /* what was read (and a due checkpoint) goes to the writer once it is free */
        if (self->published != before)
            s_wake_all(self);
        now = soffa_mono_us();
        if (now >= self->next_flush) {
            s_flush_cursors(self);
            self->next_flush = now + self->cfg.cursor_flush_ms * 1000;
        }
        if (now >= self->next_expiry) {
            s_expire_sessions(self);
            /* Peers whose queue was full get another chance. */
            s_wake_all(self);
            soffa_map_each(self->sessions, s_wake_replay, self);
            self->next_expiry = now + 500000;
        }
    }
    /* Stop: everything read has been committed and answered above; a last
     * checkpoint vouches for all of it. */
    s_commit(self);
    s_checkpoint(self);
    s_flush_cursors(self);
    s_commit(self);
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
    s_session_t *s = v;
    for (size_t i = 0; i < s->n_consumers; i++) {
        free(s->consumers[i]->ring);
        free(s->consumers[i]);
    }
    free(s);
    return 0;
}

static int
s_free_mailbox(void *ctx, const void *k, size_t kl, void *v)
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
            s_flush_cursors(self);
            s_commit(self);
        }
        soffa_map_each(self->sessions, s_free_session, NULL);
        soffa_map_destroy(&self->sessions);
    }
    if (self->mailboxes) {
        soffa_map_each(self->mailboxes, s_free_mailbox, NULL);
        soffa_map_destroy(&self->mailboxes);
    }
    if (self->router)
        zmq_close(self->router);
    if (self->zap)
        zmq_close(self->zap);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    if (self->writer_started) {
        pthread_mutex_lock(&self->wmu);
        while (self->writer_job == 1)
            pthread_cond_wait(&self->wcv, &self->wmu);
        self->writer_job = 2;
        pthread_cond_broadcast(&self->wcv);
        pthread_mutex_unlock(&self->wmu);
        pthread_join(self->writer, NULL);
        pthread_mutex_destroy(&self->wmu);
        pthread_cond_destroy(&self->wcv);
    }
    if (self->done_fd > 0)
        close(self->done_fd);
    if (self->pending) {
        s_pending_clear(self);
        free(self->pending);
    }
    if (self->flight) {
        for (size_t i = 0; i < self->n_flight; i++)
            free(self->flight[i].body);
        free(self->flight);
    }
    free(self->flight_items);
    free(self->cur_pending.v);
    free(self->cur_flight.v);
    free(self->cur_items);
    soffa_store_close(&self->store);
    soffa_map_destroy(&self->by_name);
    soffa_map_destroy(&self->by_key);
    free(self->ids);
    explicit_bzero(self->secret_key, sizeof self->secret_key);
    sodium_memzero(self->sign_sk, sizeof self->sign_sk);
    free(self);
    *self_p = NULL;
}
