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
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_bytes.h"
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
#define S_RID_LEN 5                /* the routing ids libzmq gives: 0x00 + 4 bytes */
#define S_REPLAY_WINDOW 256        /* replay deliveries unacknowledged, unless the auditor asks */
#define S_REPLAY_SCAN_MAX 1024     /* records a replay examines before others get a turn */
#define S_SLOW_START 16            /* a reader's first window; it doubles with each proof of reading */
/* Publishes stop this far from a full map or disk: the broker's own records
 * (a read's access records, checkpoints, cursors) still fit, so a read is
 * recorded, and can go on, while the store is full. */
#define S_HEADROOM (64 * 1024)
#define S_ACCESS_MAILBOX "audit/access"
#define S_CHECKPOINT_MAILBOX "audit/checkpoint"
#define S_MONITOR "inproc://soffa-router-monitor"
#define S_CLOSE_GRACE_US 1000000   /* a closed session's connection is cut this long after the reason */
/* What one connection can make the broker hold (see README, Threat model):
 * frames in from it, frames out to it (answers and errors are small; large
 * frames are deliveries and replay records, bounded by their windows, and at
 * most one status reply). A frame a little over the limit gets an ERROR;
 * one larger than S_MAX_WIRE_IN makes libzmq drop the connection. */
#define S_MAX_WIRE_IN (SOFFA_WIRE_MAX_FRAME + 4096)
#define S_RCVHWM 128
#define S_SNDHWM 8192

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
    int64_t sessions_per_agent;    /* live sessions one key may hold */
    char signing_key[512];         /* checkpoint signing key (outside data_dir) */
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
    {"sessions_per_agent", SOFFA_CFG_INT, "4", 1, 64, offsetof(s_cfg_t, sessions_per_agent), 0, "live sessions one agent key may hold; a newer one closes the oldest"},
};
static const soffa_cfg_key_t s_store_keys[] = {
    {"map_size", SOFFA_CFG_SIZE, "1GiB", 64 * 1024, (int64_t) 1 << 42, offsetof(s_cfg_t, map_size), 0, "largest size of the store"},
    {"batch_max", SOFFA_CFG_INT, "1024", 1, 65536, offsetof(s_cfg_t, batch_max), 0, "most publishes per commit"},
    {"cursor_flush_ms", SOFFA_CFG_INT, "100", 1, 60000, offsetof(s_cfg_t, cursor_flush_ms), 0, "how often acknowledged positions are written"},
};
static const soffa_cfg_key_t s_audit_keys[] = {
    {"checkpoint_every", SOFFA_CFG_INT, "1000", 1, 100000000, offsetof(s_cfg_t, checkpoint_every), 0, "records between signed checkpoints"},
    {"checkpoint_ms", SOFFA_CFG_INT, "60000", 100, 86400000, offsetof(s_cfg_t, checkpoint_ms), 0, "longest time between signed checkpoints"},
    {"signing_key", SOFFA_CFG_STR, "checkpoint.key", 0, 0, offsetof(s_cfg_t, signing_key), 512, "the checkpoint signing key; never inside data_dir"},
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
    char unit[1024];
    char orgnr[16];
    char scope[SOFFA_SCOPE_MAX];
} s_agent_cfg_t;

static const soffa_cfg_key_t s_agent_keys[] = {
    {"public_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_agent_cfg_t, public_key), 512, "the agent's public key (Z85) or its .pub file"},
    {"role", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_agent_cfg_t, role), 16, "school, kaa, social, af or audit"},
    {"kommun", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, kommun), 8, "municipality code the agent serves"},
    {"unit", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, unit), 1024, "unit codes, comma-separated: a school's skolenhetskoder (required), else local units"},
    {"orgnr", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, orgnr), 16, "organisationsnummer messages may claim"},
    {"scope", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, scope), SOFFA_SCOPE_MAX, "audit: mailbox patterns it may replay"},
};

/* ---- Runtime structures ------------------------------------------------------- */

/* Session states. A replay opens with an access record that must be
 * durable before the first record goes out (OPENING), runs (REPLAYING), and
 * ends with a record of what was sent (CLOSING) before REPLAY-END. A closed
 * session (taken over, or over its key's limit) answers nothing more and
 * waits for its connection to go. */
typedef enum { S_NEW, S_READY, S_OPENING, S_REPLAYING, S_CLOSING, S_CLOSED } s_state_t;
static const char *const s_state_names[] = {"NEW", "READY", "REPLAY-OPENING", "REPLAYING", "REPLAY-CLOSING", "CLOSED"};

struct s_session;

/* An answer the broker waits for: a signal's acknowledgement ('A'), a
 * referral's receipt ('S'). In arrival order per kind, so the entries past
 * their deadline are a prefix of the list. */
typedef struct s_await {
    uint8_t key[17];                  /* kind || id */
    struct s_mailbox *mbox;
    int64_t received_us;
    bool overdue;
    struct s_await *prev, *next;
} s_await_t;

typedef struct {
    s_await_t *head, *tail;
    s_await_t *due;                   /* first entry not yet overdue */
    int64_t delay_us;                 /* deadline after arrival */
} s_await_list_t;

typedef struct s_mailbox {
    char name[SOFFA_NAME_MAX];
    uint64_t depth;                   /* records stored */
    uint64_t last_seq;                /* newest record */
    uint64_t overdue;                 /* answers awaited past their deadline */
    uint64_t awaiting;                /* answers awaited */
    struct s_consumer *consumers;     /* connected readers */
} s_mailbox_t;

/* A delivery in flight: acknowledged by naming its seq with its hash. */
typedef struct {
    uint64_t seq;
    uint8_t hash[SOFFA_HASH_LEN];
} s_sent_t;

/* Deliveries in flight, oldest first. */
typedef struct {
    s_sent_t *v;
    uint32_t cap, head, len;
} s_ring_t;

typedef struct s_consumer {
    struct s_session *session;
    s_mailbox_t *mbox;
    char cursor_key[2 * SOFFA_NAME_MAX + 2];   /* "<agent>|<mailbox>" */
    uint64_t acked;                   /* last acknowledged (durable once flushed) */
    uint64_t flushed;                 /* last value written to the store */
    uint64_t sent;                    /* last sequence sent or skipped */
    uint32_t window;                  /* most unacknowledged deliveries now */
    uint32_t window_max;              /* what the reader asked for */
    s_ring_t ring;
    struct s_consumer *next;          /* in mailbox */
} s_consumer_t;

typedef enum { S_R_LOG, S_R_MAILBOX, S_R_SUBJECT } s_replay_mode_t;

typedef struct s_session {
    uint8_t rid[S_RID_LEN];
    const soffa_identity_t *id;
    s_state_t state;
    int fd;                           /* the connection's socket (ZMQ_SRCFD) */
    ino_t ino;                        /* and its inode: fd numbers are reused */
    int64_t last_seen;                /* monotonic µs */
    int64_t shutdown_at;              /* CLOSED: when its connection is cut; 0 when done */
    struct s_session *lru_prev, *lru_next;   /* all sessions, least recently heard first */
    struct s_session *rp_next;        /* replaying sessions */
    uint64_t status_receipt;          /* of the last STATUS-REPLY, until echoed */
    s_consumer_t *consumers[4];
    size_t n_consumers;
    struct {
        uint64_t tag;
        soffa_replay_filter_t f;
        s_replay_mode_t mode;
        uint64_t pos, to;             /* last sequence examined; last to include */
        uint64_t count;               /* records sent */
        uint32_t window;              /* now */
        uint32_t window_max;          /* what the auditor asked for */
        s_ring_t ring;
        bool all_scope;               /* scope "*" */
        uint64_t opened_seq;          /* the access record it opened with */
        char request[32];
    } replay;
} s_session_t;

/* What the writer commits for one record, and what follows its commit. */
typedef enum {
    S_P_PUBLISH,                      /* an agent's message: acknowledged after the commit */
    S_P_BROKER,                       /* the broker's own record (a notice, a cut-off read) */
    S_P_CHECKPOINT,                   /* a signed checkpoint */
    S_P_READ_OPENED,                  /* a replay's opening access record: then the replay starts */
    S_P_READ_COMPLETED,               /* a replay's closing access record: then REPLAY-END */
} s_pending_kind_t;

typedef struct {
    s_pending_kind_t kind;
    uint8_t rid[S_RID_LEN];           /* who hears about the commit (the session may be gone) */
    uint64_t tag;
    uint8_t *body;                    /* owned */
    soffa_envelope_t env;
    char subject[13];
    soffa_policy_decision_t dec;
    soffa_store_state_op_t state[SOFFA_STORE_STATE_OPS];
    size_t n_state;
    int64_t received_us;
    bool withdraws;                   /* a consent withdrawal: its referrals get notices */
    uint8_t consent_id[16];
    soffa_err_t rc;                   /* after the commit: this record's outcome */
} s_pending_t;

/* What follows a commit, for a later batch: a consent withdrawal whose
 * referrals still need their notices, or a ready record. */
typedef struct s_followup {
    bool record;                      /* rec is ready to go */
    s_pending_t rec;
    uint8_t consent_id[16];
    uint8_t cause[16];                /* the withdrawal's message id */
    uint64_t after;                   /* referrals up to this seq are done */
    struct s_followup *next;
} s_followup_t;

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
    uint32_t *id_sessions;            /* live sessions per identity (index as ids) */
    soffa_map_t *by_name;             /* agent name -> identity */
    soffa_map_t *by_key;              /* 32-byte public key -> identity */
    char public_key[41], secret_key[41];
    char data_path[1024];
    soffa_store_t *store;
    void *ctx, *router, *zap, *monitor;
    soffa_map_t *sessions;            /* routing id -> session */
    soffa_map_t *by_fd;               /* socket fd -> session */
    s_session_t *lru_head, *lru_tail;
    s_session_t *replaying;           /* sessions in OPENING..CLOSING */
    size_t n_closing;                 /* CLOSED sessions whose connection is still to be cut */
    soffa_map_t *mailboxes;           /* name -> mailbox */
    soffa_map_t *readers;             /* inbox name -> NULL-terminated array of identities reading it */
    soffa_map_t *awaits;              /* kind || id -> s_await_t */
    s_await_list_t await_signals, await_referrals;
    s_followup_t *followups, *followups_tail;
    s_pending_t *pending;             /* records read since the last hand-over */
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
    uint64_t commits, commit_us;      /* group commits and the time spent in them */
    uint64_t foreign_rids;            /* frames refused for a routing id the client chose */
    uint64_t map_room, disk_room;     /* bytes left at the last commit, less what publishes since may take */
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
    if (id->role != SOFFA_ROLE_AUDIT && a->scope[0]) {
        snprintf(why, whylen, "%s: [agent %s] scope is for auditors only", self->config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
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
    fprintf(out, "broker.heartbeat_ms = %lld\nbroker.expiry_ms = %lld\nbroker.sessions_per_agent = %lld\n",
            (long long) c->heartbeat_ms, (long long) c->expiry_ms, (long long) c->sessions_per_agent);
    fprintf(out, "store.map_size = %zu\nstore.batch_max = %lld\nstore.cursor_flush_ms = %lld\n", c->map_size,
            (long long) c->batch_max, (long long) c->cursor_flush_ms);
    fprintf(out, "delivery.window_max = %lld\n", (long long) c->window_max);
    fprintf(out, "audit.checkpoint_every = %lld\naudit.checkpoint_ms = %lld\naudit.signing_key = %s\n",
            (long long) c->checkpoint_every, (long long) c->checkpoint_ms, c->signing_key);
    fprintf(out, "audit.signal_ack_due = %lld ms\naudit.referral_receipt_due = %lld ms\n", (long long) c->signal_ack_due,
            (long long) c->referral_receipt_due);
    for (size_t i = 0; i < self->n_ids; i++) {
        const soffa_identity_t *id = &self->ids[i];
        char units[SOFFA_UNITS_MAX * 18 + 1] = "";
        size_t o = 0;
        for (size_t u = 0; u < id->n_units && o < sizeof units; u++)
            o += (size_t) snprintf(units + o, sizeof units - o, "%s%s", u ? "," : "", id->units[u]);
        fprintf(out, "agent.%s = role %s, kommun %s%s%s%s%s%s%s, key %.8s...\n", id->name, soffa_role_name(id->role),
                id->kommun[0] ? id->kommun : "-", units[0] ? ", units " : "", units, id->orgnr[0] ? ", orgnr " : "",
                id->orgnr, id->scope[0] ? ", scope " : "", id->scope, id->public_key);
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
s_find(void *ctx, soffa_ref_kind_t kind, const uint8_t id[16], soffa_policy_ref_t *out)
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
s_send_raw(soffa_broker_t *self, const uint8_t *rid, const void *buf, size_t len)
{
    if (zmq_send(self->router, rid, S_RID_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno != EAGAIN)
            soffa_debug("peer gone while sending (%s)", zmq_strerror(errno));
        return false;
    }
    return zmq_send(self->router, buf, len, ZMQ_DONTWAIT) >= 0;
}

static bool
s_send(soffa_broker_t *self, const uint8_t *rid, const soffa_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    if (soffa_frame_encode(f, &buf, &len) != SOFFA_OK)
        return false;
    bool ok = s_send_raw(self, rid, buf, len);
    free(buf);
    return ok;
}

static void
s_send_error(soffa_broker_t *self, const uint8_t *rid, uint64_t tag, soffa_err_t code, const char *text)
{
    soffa_frame_t f = {.type = SOFFA_FRAME_ERROR, .tag = tag, .code = (uint32_t) code};
    snprintf(f.text, sizeof f.text, "%s", text && *text ? text : soffa_strerror(code));
    s_send(self, rid, &f);
}

/* ---- Delivery windows ------------------------------------------------------------ */

static bool
s_ring_init(s_ring_t *r, uint32_t cap)
{
    memset(r, 0, sizeof *r);
    r->v = calloc(cap ? cap : 1, sizeof *r->v);
    r->cap = cap ? cap : 1;
    return r->v != NULL;
}

static void
s_ring_fini(s_ring_t *r)
{
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* Grows the ring to hold cap entries (keeping what is in flight). */
static bool
s_ring_grow(s_ring_t *r, uint32_t cap)
{
    if (cap <= r->cap)
        return true;
    s_sent_t *v = calloc(cap, sizeof *v);
    if (!v)
        return false;
    for (uint32_t i = 0; i < r->len; i++)
        v[i] = r->v[(r->head + i) % r->cap];
    free(r->v);
    r->v = v;
    r->cap = cap;
    r->head = 0;
    return true;
}

static void
s_ring_push(s_ring_t *r, uint64_t seq, const uint8_t hash[SOFFA_HASH_LEN])
{
    s_sent_t *e = &r->v[(r->head + r->len++) % r->cap];
    e->seq = seq;
    memcpy(e->hash, hash, SOFFA_HASH_LEN);
}

/* A reader says it has read everything up to seq, and proves it with the
 * hash the delivery of seq carried: a client that never reads cannot refill
 * its window. Frees the entries up to seq; false when seq is not in flight
 * or the hash is not the one delivered (nothing is freed then). */
static bool
s_ring_ack(s_ring_t *r, uint64_t seq, const uint8_t hash[SOFFA_HASH_LEN])
{
    for (uint32_t i = 0; i < r->len; i++) {
        const s_sent_t *e = &r->v[(r->head + i) % r->cap];
        if (e->seq > seq)
            return false;
        if (e->seq == seq) {
            if (sodium_memcmp(e->hash, hash, SOFFA_HASH_LEN) != 0)
                return false;
            r->head = (r->head + i + 1) % r->cap;
            r->len -= i + 1;
            return true;
        }
    }
    return false;
}

/* ---- Consumers ------------------------------------------------------------------ */

/* Queues a cursor for the next commit (the writer thread owns the store's
 * write side; nothing is written from here). */
static void
s_cursor_queue(soffa_broker_t *self, const char *key, uint64_t seq)
{
    s_cursors_t *q = &self->cur_pending;
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->v[i].key, key) == 0) {
            if (seq > q->v[i].seq)
                q->v[i].seq = seq;
            return;
        }
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        s_cursor_rec_t *grown = realloc(q->v, cap * sizeof *grown);
        if (!grown) {
            soffa_warn("cursor of %s not saved now: out of memory", key);
            return;
        }
        q->v = grown;
        q->cap = cap;
    }
    snprintf(q->v[q->n].key, sizeof q->v[q->n].key, "%s", key);
    q->v[q->n++].seq = seq;
}

static void
s_consumer_free(soffa_broker_t *self, s_consumer_t *c)
{
    s_consumer_t **pp = &c->mbox->consumers;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    if (c->acked > c->flushed)
        s_cursor_queue(self, c->cursor_key, c->acked);
    s_ring_fini(&c->ring);
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
    if (!s_send(p->self, c->session->rid, &f)) {
        p->blocked = true;
        return 1;
    }
    s_ring_push(&c->ring, rec->seq, rec->hash);
    c->sent = rec->seq;
    p->self->delivered++;
    return --p->budget == 0;
}

/* Sends what the window allows. */
static void
s_pump(soffa_broker_t *self, s_consumer_t *c)
{
    while (c->ring.len < c->window && c->sent < c->mbox->last_seq) {
        s_pump_t p = {self, c, c->window - c->ring.len, false};
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
            /* Written with the next commit; if that fails, the deliveries
             * since the last saved position come again (agents drop them). */
            s_cursor_queue(self, c->cursor_key, c->acked);
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

/* ---- Answers awaited ---------------------------------------------------------------- */

/* The running counts behind status and metrics: signals awaiting their
 * acknowledgement and referrals awaiting a status, kept in the store's state
 * table with the records that open and close them, and in memory in arrival
 * order so that those past their deadline are counted without a scan. */

static s_await_list_t *
s_await_list(soffa_broker_t *self, char kind)
{
    return kind == SOFFA_POLICY_AWAIT_ACK ? &self->await_signals : &self->await_referrals;
}

static void
s_await_add(soffa_broker_t *self, char kind, const uint8_t id[16], s_mailbox_t *m, int64_t received_us)
{
    if (!m)
        return;
    s_await_t *a = calloc(1, sizeof *a);
    if (!a)
        return;
    a->key[0] = (uint8_t) kind;
    memcpy(a->key + 1, id, 16);
    if (soffa_map_get(self->awaits, a->key, sizeof a->key) || soffa_map_put(self->awaits, a->key, sizeof a->key, a) != SOFFA_OK) {
        free(a);
        return;
    }
    a->mbox = m;
    a->received_us = received_us;
    s_await_list_t *l = s_await_list(self, kind);
    a->prev = l->tail;
    if (l->tail)
        l->tail->next = a;
    else
        l->head = a;
    l->tail = a;
    if (!l->due)
        l->due = a;
    m->awaiting++;
}

static void
s_await_answered(soffa_broker_t *self, char kind, const uint8_t id[16])
{
    uint8_t key[17];
    key[0] = (uint8_t) kind;
    memcpy(key + 1, id, 16);
    s_await_t *a = soffa_map_get(self->awaits, key, sizeof key);
    if (!a)
        return;
    s_await_list_t *l = s_await_list(self, kind);
    if (l->due == a)
        l->due = a->next;
    if (a->prev)
        a->prev->next = a->next;
    else
        l->head = a->next;
    if (a->next)
        a->next->prev = a->prev;
    else
        l->tail = a->prev;
    if (a->overdue)
        a->mbox->overdue--;
    a->mbox->awaiting--;
    soffa_map_remove(self->awaits, key, sizeof key);
    free(a);
}

/* Marks what has passed its deadline; cheap: it looks only at the first
 * entries not yet overdue. */
static void
s_await_tick(soffa_broker_t *self)
{
    int64_t now = soffa_now_us();
    s_await_list_t *lists[2] = {&self->await_signals, &self->await_referrals};
    for (int i = 0; i < 2; i++) {
        s_await_list_t *l = lists[i];
        while (l->due && l->due->received_us + l->delay_us <= now) {
            l->due->overdue = true;
            l->due->mbox->overdue++;
            l->due = l->due->next;
        }
    }
}

typedef struct {
    uint8_t key[17];
    char mailbox[SOFFA_NAME_MAX];
    int64_t received_us;
    uint64_t seq;
} s_await_load_t;

typedef struct {
    s_await_load_t *v;
    size_t n, cap;
    bool bad;
} s_await_loads_t;

static int
s_await_load_one(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    s_await_loads_t *l = ctx;
    /* key 'O' kind id(16); value received(8) mailbox NUL seq(8) */
    if (kl != 18 || vl < 8 + 2 + 8 || vl > 8 + SOFFA_NAME_MAX + 8 || v[vl - 9] != '\0') {
        l->bad = true;
        return 1;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        s_await_load_t *g = realloc(l->v, cap * sizeof *g);
        if (!g) {
            l->bad = true;
            return 1;
        }
        l->v = g;
        l->cap = cap;
    }
    s_await_load_t *e = &l->v[l->n++];
    memcpy(e->key, k + 1, 17);
    e->received_us = (int64_t) soffa_bytes_get_u64(v);
    snprintf(e->mailbox, sizeof e->mailbox, "%s", (const char *) v + 8);
    e->seq = soffa_bytes_get_u64(v + vl - 8);
    return 0;
}

static int
s_await_cmp(const void *a, const void *b)
{
    uint64_t x = ((const s_await_load_t *) a)->seq, y = ((const s_await_load_t *) b)->seq;
    return x < y ? -1 : x > y;
}

/* Loads the awaited answers at start (their number, not the history). */
static soffa_err_t
s_await_load(soffa_broker_t *self)
{
    s_await_loads_t l = {0};
    soffa_err_t rc = soffa_store_state_scan(self->store, "O", 1, s_await_load_one, &l);
    if (rc == SOFFA_OK && l.bad)
        rc = SOFFA_ERR_STORE_CORRUPT;
    if (rc == SOFFA_OK) {
        if (l.n)
            qsort(l.v, l.n, sizeof *l.v, s_await_cmp);
        for (size_t i = 0; i < l.n; i++)
            s_await_add(self, (char) l.v[i].key[0], l.v[i].key + 1, s_mailbox(self, l.v[i].mailbox),
                        l.v[i].received_us);
        s_await_tick(self);
    }
    free(l.v);
    return rc;
}

/* The state changes a committed record brings: answers it awaits or gives,
 * and a subject's protected identity. */
static void
s_state_ops(soffa_broker_t *self, s_pending_t *p, const soffa_msg_view_t *v)
{
    if (p->dec.awaits && p->n_state < SOFFA_STORE_STATE_OPS) {
        soffa_store_state_op_t *op = &p->state[p->n_state++];
        op->key[0] = 'O';
        op->key[1] = (uint8_t) p->dec.awaits;
        memcpy(op->key + 2, p->dec.awaits_id, 16);
        op->klen = 18;
        soffa_bytes_put_u64(op->val, (uint64_t) p->env.received_at_us);
        size_t ml = strlen(p->env.mailbox);
        memcpy(op->val + 8, p->env.mailbox, ml + 1);
        op->vlen = 8 + ml + 1;
        op->with_seq = true;
    }
    if (p->dec.answers && p->n_state < SOFFA_STORE_STATE_OPS) {
        soffa_store_state_op_t *op = &p->state[p->n_state++];
        op->key[0] = 'O';
        op->key[1] = (uint8_t) p->dec.answers;
        memcpy(op->key + 2, p->dec.answers_id, 16);
        op->klen = 18;
        op->del = true;
    }
    if (p->subject[0] && (v->protected_identity || v->protection_lifted) && p->n_state < SOFFA_STORE_STATE_OPS) {
        soffa_store_state_op_t *op = &p->state[p->n_state++];
        op->key[0] = 'P';
        soffa_store_subject_key(self->store, p->subject, op->key + 1);
        op->klen = 1 + SOFFA_SUBJECT_KEY_LEN;
        op->del = v->protection_lifted;
        op->with_seq = !op->del;
    }
}

/* Whether an earlier message marked the subject's identity protected. */
static bool
s_subject_protected(soffa_broker_t *self, const char *subject)
{
    uint8_t key[1 + SOFFA_SUBJECT_KEY_LEN] = {'P'};
    soffa_store_subject_key(self->store, subject, key + 1);
    return soffa_store_state_get(self->store, key, sizeof key, NULL, 0, NULL) == SOFFA_OK;
}

/* ---- Sessions ------------------------------------------------------------------- */

/* A session belongs to one connection (the socket its first frame came in
 * on) and one key (the CURVE identity ZAP gave it). It is forgotten when
 * that connection closes (the router's monitor tells), when a frame under
 * its routing id arrives on another connection or with another key, and
 * when it has been silent for longer than expiry_ms. Every session is kept
 * in a list ordered by when it was last heard from, so expiry looks only at
 * the sessions that are actually silent. */

static void s_pending_clear(soffa_broker_t *self);
static s_pending_t *s_pending_add(soffa_broker_t *self);
static void s_access_queue(soffa_broker_t *self, s_pending_t *p, const s_session_t *s, soffa_access_state_t state,
                           uint64_t records, uint64_t opened_seq, s_pending_kind_t kind);

static void
s_lru_unlink(soffa_broker_t *self, s_session_t *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else if (self->lru_head == s)
        self->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else if (self->lru_tail == s)
        self->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void
s_lru_touch(soffa_broker_t *self, s_session_t *s)
{
    s->last_seen = soffa_mono_us();
    if (self->lru_tail == s)
        return;
    s_lru_unlink(self, s);
    s->lru_prev = self->lru_tail;
    if (self->lru_tail)
        self->lru_tail->lru_next = s;
    else
        self->lru_head = s;
    self->lru_tail = s;
}

static void
s_replaying_remove(soffa_broker_t *self, s_session_t *s)
{
    for (s_session_t **pp = &self->replaying; *pp; pp = &(*pp)->rp_next)
        if (*pp == s) {
            *pp = s->rp_next;
            s->rp_next = NULL;
            return;
        }
}

static size_t
s_id_index(const soffa_broker_t *self, const soffa_identity_t *id)
{
    return (size_t) (id - self->ids);
}

/* Ends what a session holds: its readers (positions saved), a replay under
 * way (recorded as cut off), its place in its key's count. */
static void
s_session_release(soffa_broker_t *self, s_session_t *s)
{
    if (s->state == S_CLOSED)
        return;
    if (s->state == S_REPLAYING) {
        /* The read stops here; the access log says how far it got. */
        s_pending_t *p = s_pending_add(self);
        s_access_queue(self, p, s, SOFFA_ACCESS_CUT_OFF, s->replay.count, s->replay.opened_seq, S_P_BROKER);
        soffa_info("%s by %s cut off after %llu record(s)", s->replay.request, s->id->name,
                   (unsigned long long) s->replay.count);
    }
    /* OPENING: the opening record finds no session when it commits and
     * records the cut-off itself. CLOSING: the read is complete. */
    s_replaying_remove(self, s);
    s_ring_fini(&s->replay.ring);
    for (size_t i = 0; i < s->n_consumers; i++)
        s_consumer_free(self, s->consumers[i]);
    s->n_consumers = 0;
    self->id_sessions[s_id_index(self, s->id)]--;
}

/* Closes a session whose connection is alive: its agent hears why (an
 * ERROR with code), it is answered no more, and its connection is cut a
 * moment later (libzmq's ROUTER cannot close one peer, so the broker shuts
 * the socket down; libzmq then tears the connection down as if the peer had
 * gone, which frees what was queued for it). */
static void
s_session_close(soffa_broker_t *self, s_session_t *s, soffa_err_t code, const char *why)
{
    if (s->state == S_CLOSED)
        return;
    soffa_warn("session of %s closed: %s", s->id->name, why);
    s_send_error(self, s->rid, 0, code, why);
    s_session_release(self, s);
    s->state = S_CLOSED;
    s->shutdown_at = soffa_mono_us() + S_CLOSE_GRACE_US;
    self->n_closing++;
}

/* Cuts the connection of a closed session. Only the socket the session
 * was made on: the fd must still be a socket with the same inode (fd
 * numbers are reused). */
static void
s_cut(soffa_broker_t *self, s_session_t *s)
{
    struct stat st;
    if (fstat(s->fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == s->ino) {
        if (shutdown(s->fd, SHUT_RDWR) != 0)
            soffa_debug("cutting the connection of a closed session of %s: %s", s->id->name, strerror(errno));
    }
    s->shutdown_at = 0;
    self->n_closing--;
}

/* Forgets a session entirely (a closed one has its connection cut first). */
static void
s_session_forget(soffa_broker_t *self, s_session_t *s, const char *why)
{
    if (s->state != S_CLOSED)
        soffa_info("session of %s closed: %s", s->id->name, why);
    else if (s->shutdown_at)
        s_cut(self, s);
    s_session_release(self, s);
    s_lru_unlink(self, s);
    if (soffa_map_get(self->by_fd, &s->fd, sizeof s->fd) == s)
        soffa_map_remove(self->by_fd, &s->fd, sizeof s->fd);
    soffa_map_remove(self->sessions, s->rid, S_RID_LEN);
    free(s);
}

typedef struct {
    int64_t now;
    size_t left;
    soffa_broker_t *self;
} s_cut_t;

static int
s_cut_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_cut_t *c = ctx;
    s_session_t *s = v;
    if (s->state != S_CLOSED || !s->shutdown_at || s->shutdown_at > c->now)
        return 0;
    s_cut(c->self, s);
    return --c->left == 0;
}

static void
s_cut_connections(soffa_broker_t *self)
{
    if (self->n_closing == 0)
        return;
    s_cut_t c = {soffa_mono_us(), self->n_closing, self};
    soffa_map_each(self->sessions, s_cut_one, &c);
}

/* Sessions silent for longer than expiry_ms at the last moment the broker
 * had read everything queued (last_drain), not at wall-clock now: a broker
 * that stalls (a slow disk) must not take the pings waiting in its own queue
 * for silence. Oldest first, so this stops at the first one heard recently. */
static void
s_expire_sessions(soffa_broker_t *self)
{
    while (self->lru_head && self->last_drain - self->lru_head->last_seen > self->cfg.expiry_ms * 1000)
        s_session_forget(self, self->lru_head, "silent for longer than expiry_ms");
}

/* The router's monitor: a connection closed, or a socket was accepted on an
 * fd that an old session still names. Either way that session is gone. */
static void
s_monitor_read(soffa_broker_t *self)
{
    for (int i = 0; i < 1024; i++) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, self->monitor, 0);
        if (zmq_msg_size(&ev) == 6) {
            uint16_t event;
            uint32_t value;
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (uint8_t *) zmq_msg_data(&ev) + 2, 4);
            int fd = (int) value;
            s_session_t *s = soffa_map_get(self->by_fd, &fd, sizeof fd);
            if (s && (event == ZMQ_EVENT_DISCONNECTED || event == ZMQ_EVENT_ACCEPTED))
                s_session_forget(self, s, "its connection closed");
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

/* A new session for a frame under routing id rid, from identity id on
 * socket fd. Over the key's limit, its oldest session is closed. */
static s_session_t *
s_session_new(soffa_broker_t *self, const uint8_t *rid, const soffa_identity_t *id, int fd)
{
    s_session_t *old = soffa_map_get(self->by_fd, &fd, sizeof fd);
    if (old)
        s_session_forget(self, old, "its socket now carries another connection");
    s_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    memcpy(s->rid, rid, S_RID_LEN);
    s->id = id;
    s->state = S_NEW;
    s->fd = fd;
    struct stat st;
    if (fstat(fd, &st) == 0)
        s->ino = st.st_ino;
    if (soffa_map_put(self->sessions, rid, S_RID_LEN, s) != SOFFA_OK
        || soffa_map_put(self->by_fd, &s->fd, sizeof s->fd, s) != SOFFA_OK) {
        soffa_map_remove(self->sessions, rid, S_RID_LEN);
        free(s);
        return NULL;
    }
    s_lru_touch(self, s);
    uint32_t *n = &self->id_sessions[s_id_index(self, id)];
    if (++*n > (uint32_t) self->cfg.sessions_per_agent) {
        for (s_session_t *o = self->lru_head; o; o = o->lru_next)
            if (o != s && o->id == id && o->state != S_CLOSED) {
                char why[200];
                snprintf(why, sizeof why, "%s has more than %lld sessions; the one heard from least recently is closed",
                         id->name, (long long) self->cfg.sessions_per_agent);
                s_session_close(self, o, SOFFA_ERR_SESSION_CLOSED, why);
                break;
            }
    }
    return s;
}

static void
s_set_state(s_session_t *s, s_state_t to)
{
    if (s->state != to)
        soffa_debug("session of %s: %s -> %s", s->id->name, s_state_names[s->state], s_state_names[to]);
    s->state = to;
}

/* ---- Group commit ------------------------------------------------------------- */

static void
s_pending_clear(soffa_broker_t *self)
{
    for (size_t i = 0; i < self->n_pending; i++)
        free(self->pending[i].body);
    self->n_pending = 0;
}

static bool s_checkpoint_due(soffa_broker_t *self);
static bool s_checkpoint_make(soffa_broker_t *self, s_pending_t *p);
static void s_replay_begin(soffa_broker_t *self, s_session_t *s);
static void s_room_refresh(soffa_broker_t *self);

/* A batch the full store (or disk) refused: the publishes in it are
 * refused, and the broker's own records (a read's access records,
 * checkpoints, notices) and the cursors are committed on their own, in the
 * room the publishes were stopped short of (S_HEADROOM). Runs in the writer
 * thread. Returns the outcome for the cursors. */
static soffa_err_t
s_commit_own(soffa_broker_t *self, soffa_err_t full)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_flight; i++)
        if (self->flight[i].kind != S_P_PUBLISH)
            n++;
    soffa_store_item_t *own = n ? calloc(n, sizeof *own) : NULL;
    if (n && !own)
        return full;
    size_t k = 0;
    for (size_t i = 0; i < self->n_flight; i++)
        if (self->flight[i].kind != S_P_PUBLISH)
            own[k++] = self->flight_items[i];
    soffa_err_t rc = soffa_store_append_cursors(self->store, own, n, self->cur_items, self->cur_flight.n);
    k = 0;
    for (size_t i = 0; i < self->n_flight; i++) {
        if (self->flight[i].kind == S_P_PUBLISH)
            continue;
        self->flight_items[i].seq = own[k].seq;
        self->flight_items[i].duplicate = own[k++].duplicate;
        self->flight[i].rc = rc;
    }
    free(own);
    return rc;
}

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
        for (size_t i = 0; i < self->n_flight; i++)
            self->flight[i].rc = rc;
        if (rc == SOFFA_ERR_STORE_FULL || rc == SOFFA_ERR_DISK_FULL)
            rc = s_commit_own(self, rc);
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

/* Queues what must follow a commit (a ready record, or a withdrawal's
 * notices) for the loop to add to a later batch; never a commit of its own. */
static void
s_followup_push(soffa_broker_t *self, s_followup_t *f)
{
    f->next = NULL;
    if (self->followups_tail)
        self->followups_tail->next = f;
    else
        self->followups = f;
    self->followups_tail = f;
}

static s_session_t *
s_session_of(soffa_broker_t *self, const uint8_t *rid)
{
    return soffa_map_get(self->sessions, rid, S_RID_LEN);
}

/* Answers every record of the finished flight: acknowledgements only after
 * its commit returned. What has to follow (notices, records) is queued, not
 * committed from here. */
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
        s_session_t *s = p->kind == S_P_READ_OPENED || p->kind == S_P_READ_COMPLETED ? s_session_of(self, p->rid) : NULL;
        if (p->rc != SOFFA_OK) {
            if (p->kind == S_P_PUBLISH) {
                s_send_error(self, p->rid, p->tag, p->rc, NULL);
            } else if (s && (s->state == S_OPENING || s->state == S_CLOSING)) {
                /* A read that cannot be logged is not done (OPENING: nothing
                 * was sent) or reported as failed (CLOSING). */
                soffa_error("%s by %s could not be recorded in the access log: %s", s->replay.request, s->id->name,
                            soffa_strerror(p->rc));
                s_send_error(self, s->rid, s->replay.tag, p->rc, "the read could not be recorded in the access log");
                s_replaying_remove(self, s);
                s_ring_fini(&s->replay.ring);
                s_set_state(s, S_READY);
            }
            continue;
        }
        uint64_t seq = items[i].seq;
        if (!items[i].duplicate) {
            s_mailbox_t *m = s_mailbox(self, p->env.mailbox);
            if (m) {
                m->depth++;
                m->last_seq = seq;
            }
            if (p->dec.answers)
                s_await_answered(self, p->dec.answers, p->dec.answers_id);
            if (p->dec.awaits)
                s_await_add(self, p->dec.awaits, p->dec.awaits_id, m, p->env.received_at_us);
        }
        switch (p->kind) {
        case S_P_PUBLISH: {
            if (!items[i].duplicate)
                self->published++;
            soffa_frame_t ack = {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = p->tag, .seq = seq,
                                 .duplicate = items[i].duplicate};
            memcpy(ack.mailbox, p->env.mailbox, sizeof ack.mailbox);
            if (!s_send(self, p->rid, &ack))
                soffa_debug("acknowledgement of seq %llu not delivered; the sender will retry", (unsigned long long) seq);
            if (p->withdraws && !items[i].duplicate) {
                s_followup_t *f = calloc(1, sizeof *f);
                if (f) {
                    memcpy(f->consent_id, p->consent_id, 16);
                    memcpy(f->cause, p->env.message_id, 16);
                    s_followup_push(self, f);
                } else {
                    soffa_error("out of memory: the notices for the withdrawal at seq %llu are not sent",
                                (unsigned long long) seq);
                }
            }
            break;
        }
        case S_P_CHECKPOINT:
            self->cp_seq = seq;
            soffa_debug("signed checkpoint at seq %llu", (unsigned long long) seq);
            break;
        case S_P_READ_OPENED:
            if (s && s->state == S_OPENING) {
                s->replay.opened_seq = seq;
                s_replay_begin(self, s);
            } else {
                /* The reader went away before its read began. */
                s_followup_t *f = calloc(1, sizeof *f);
                if (f) {
                    f->record = true;
                    s_access_queue(self, &f->rec, NULL, SOFFA_ACCESS_CUT_OFF, 0, seq, S_P_BROKER);
                    snprintf(f->rec.env.sender_agent, sizeof f->rec.env.sender_agent, "%s", p->env.sender_agent);
                    f->rec.env.sender_role = p->env.sender_role;
                    s_followup_push(self, f);
                }
            }
            break;
        case S_P_READ_COMPLETED:
            if (s && s->state == S_CLOSING) {
                soffa_info("%s by %s: %llu record(s), logged at seq %llu and %llu", s->replay.request, s->id->name,
                           (unsigned long long) s->replay.count, (unsigned long long) s->replay.opened_seq,
                           (unsigned long long) seq);
                soffa_frame_t end = {.type = SOFFA_FRAME_REPLAY_END, .tag = s->replay.tag, .count = s->replay.count,
                                     .access_seq = seq};
                s_send(self, s->rid, &end);
                s_replaying_remove(self, s);
                s_ring_fini(&s->replay.ring);
                s_set_state(s, S_READY);
            }
            break;
        case S_P_BROKER:
            break;
        }
    }
    if (rc == SOFFA_OK)
        soffa_debug("committed %zu record(s) and %zu cursor(s)", n, self->cur_flight.n);
    else if (self->cur_flight.n)
        soffa_warn("%zu consumer cursor(s) not saved (%s); their deliveries since may come again",
                   self->cur_flight.n, soffa_strerror(rc));
    self->cur_flight.n = 0;
    for (size_t i = 0; i < n; i++)
        free(self->flight[i].body);
    self->n_flight = 0;
    self->in_flight = false;
    s_room_refresh(self);
    /* The loop wakes the readers of the mailboxes that grew. */
}

/* The room left, as the store stands after a commit, less what the
 * publishes waiting for the next one may take. */
static void
s_room_refresh(soffa_broker_t *self)
{
    soffa_store_room(self->store, &self->map_room, &self->disk_room);
    for (size_t i = 0; i < self->n_pending; i++) {
        uint64_t cost = self->pending[i].kind == S_P_PUBLISH ? 4 * ((uint64_t) self->pending[i].env.body_len + 512) : 0;
        self->map_room = self->map_room > cost ? self->map_room - cost : 0;
        self->disk_room = self->disk_room > cost ? self->disk_room - cost : 0;
    }
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

/* Hands the pending records to the writer when it is free. */
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
        memcpy(it->state, p->state, sizeof it->state);
        it->n_state = p->n_state;
    }
    self->in_flight = true;
    pthread_mutex_lock(&self->wmu);
    self->writer_job = 1;
    pthread_cond_broadcast(&self->wcv);
    pthread_mutex_unlock(&self->wmu);
}

/* Makes everything read so far durable and answered before returning: the
 * batch in flight, then the pending one. Decisions that look records up
 * call this first (they must see everything acknowledged). */
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

/* Fills p with a record the broker writes as itself. */
static void
s_broker_record(soffa_broker_t *self, s_pending_t *p, s_pending_kind_t kind, soffa_record_kind_t rk, uint8_t *body,
                size_t len, const char *mailbox)
{
    p->kind = kind;
    p->body = body;
    p->env.body = body;
    p->env.body_len = len;
    p->env.kind = rk;
    soffa_uuid7(p->env.message_id);
    snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", self->cfg.name);
    p->env.sender_role = SOFFA_ROLE_BROKER;
    p->env.received_at_us = soffa_now_us();
    snprintf(p->env.mailbox, sizeof p->env.mailbox, "%s", mailbox);
}

/* A referral that rests on a withdrawn consent: its recipient is told. */
static bool
s_withdrawal_notice(soffa_broker_t *self, const s_followup_t *f, uint64_t seq)
{
    soffa_policy_ref_t r = {0};
    s_load_t l = {&r, SOFFA_ERR_NOT_FOUND};
    if (soffa_store_get(self->store, seq, s_load_ref, &l) != SOFFA_OK || l.rc != SOFFA_OK
        || r.view.type != SOFFA_MT_REFERRAL_SENT) {
        soffa_policy_ref_fini(&r);
        return false;
    }
    uint8_t id[16], *body = NULL;
    size_t len = 0;
    soffa_uuid7(id);
    soffa_err_t rc = soffa_msg_referral_withdrawn(r.msg, f->consent_id, f->cause, id, soffa_now_us(), &body, &len);
    if (rc == SOFFA_OK) {
        s_pending_t *p = s_pending_add(self);
        s_broker_record(self, p, S_P_BROKER, SOFFA_RK_MESSAGE, body, len, r.mailbox);
        memcpy(p->env.message_id, id, 16);
        p->env.msg_type = SOFFA_MT_REFERRAL_WITHDRAWN;
        snprintf(p->subject, sizeof p->subject, "%s", r.view.subject_id);
        soffa_info("consent withdrawn: referral-withdrawn sent to %s for the referral at seq %llu", r.mailbox,
                   (unsigned long long) r.seq);
    } else {
        soffa_error("could not build referral-withdrawn for seq %llu: %s", (unsigned long long) r.seq, soffa_strerror(rc));
    }
    soffa_policy_ref_fini(&r);
    return rc == SOFFA_OK;
}

typedef struct {
    uint64_t after;
    uint64_t seqs[256];
    size_t n, room;
    bool more;
} s_seqs_t;

static int
s_collect_seq(void *ctx, uint64_t seq)
{
    s_seqs_t *s = ctx;
    if (seq <= s->after)
        return 0;
    if (s->n == s->room) {
        s->more = true;
        return 1;
    }
    s->seqs[s->n++] = seq;
    return 0;
}

/* Adds queued follow-ups to the pending batch while it has room: every
 * referral of a withdrawn consent gets its notice, however many there are,
 * a batch at a time. */
static void
s_followups_run(soffa_broker_t *self)
{
    while (self->followups && self->n_pending < (size_t) self->cfg.batch_max) {
        s_followup_t *f = self->followups;
        bool done = true;
        if (f->record) {
            s_pending_t *p = s_pending_add(self);
            *p = f->rec;
        } else {
            uint8_t prefix[17] = {SOFFA_REF_BY_CONSENT};
            memcpy(prefix + 1, f->consent_id, 16);
            size_t room = (size_t) self->cfg.batch_max - self->n_pending;
            s_seqs_t seqs = {.after = f->after, .room = room < 256 ? room : 256};
            soffa_err_t rc = soffa_store_ref_scan(self->store, prefix, sizeof prefix, s_collect_seq, &seqs);
            if (rc != SOFFA_OK)
                soffa_error("referral notices for a withdrawn consent stopped: %s", soffa_strerror(rc));
            for (size_t i = 0; i < seqs.n; i++) {
                s_withdrawal_notice(self, f, seqs.seqs[i]);
                f->after = seqs.seqs[i];
            }
            done = rc != SOFFA_OK || !seqs.more;
        }
        if (!done)
            return;   /* the batch is full: the rest next round */
        self->followups = f->next;
        if (!self->followups)
            self->followups_tail = NULL;
        free(f);
    }
}

/* ---- Frame handlers --------------------------------------------------------------- */

static void
s_on_hello(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    if (f->version != SOFFA_PROTOCOL_VERSION) {
        s_send_error(self, s->rid, 0, SOFFA_ERR_VERSION, "protocol version 1 is required");
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
    if (s->state == S_NEW) {
        soffa_info("%s (%s) connected as %s", s->id->name, soffa_role_name(s->id->role), f->text);
        s_set_state(s, S_READY);
    }
    s_send(self, s->rid, &w);
}

static void
s_on_ping(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    soffa_frame_t p = {.type = SOFFA_FRAME_PONG, .tag = f->tag};
    s_send(self, s->rid, &p);
}

static void
s_on_publish(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    char why[256] = "";
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = soffa_msg_decode(f->data, f->data_len, &msg);
    if (rc != SOFFA_OK) {
        s_send_error(self, s->rid, f->tag, rc, "the message could not be decoded");
        self->refused++;
        return;
    }
    /* What is stored is what validation saw: fields this broker does not
     * know could not be checked or shown, so such a message is refused. */
    if (soffa_msg_has_unknown_fields(msg)) {
        rc = SOFFA_ERR_MALFORMED;
        snprintf(why, sizeof why, "the message carries fields soffa does not know; nothing was stored "
                                  "(send it as soffa's schema defines it)");
        goto refuse;
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
        s_send(self, s->rid, &ack);
        soffa_msg_destroy(&msg);
        return;
    }
    /* A store (or disk) within its headroom takes no more publishes: the
     * room left at the last commit, less what the publishes accepted since
     * may take (counted generously: copy-on-write pages, indices). */
    uint64_t cost = 4 * ((uint64_t) f->data_len + 512);
    if (self->map_room < S_HEADROOM + cost || self->disk_room < S_HEADROOM + cost) {
        rc = self->map_room < S_HEADROOM + cost ? SOFFA_ERR_STORE_FULL : SOFFA_ERR_DISK_FULL;
        goto refuse;
    }
    self->map_room -= cost;
    self->disk_room -= cost;
    /* Decisions that look records up see everything committed so far. */
    if (soffa_policy_needs_lookup(v.type))
        s_commit(self);
    soffa_policy_facts_t facts = {.subject_protected = s_subject_protected(self, v.subject_id)};
    soffa_policy_decision_t dec;
    rc = soffa_policy_decide(s->id, msg, soffa_date_today(), &facts, s_find, self, &dec, why, sizeof why);
    if (rc != SOFFA_OK)
        goto refuse;
    /* Stored and delivered: the canonical encoding of the decoded message,
     * never the publisher's bytes (a repeated payload or field is gone). */
    uint8_t *body = NULL;
    size_t len = 0;
    rc = soffa_msg_encode(msg, &body, &len);
    if (rc != SOFFA_OK)
        goto refuse;

    s_pending_t *p = s_pending_add(self);
    p->kind = S_P_PUBLISH;
    memcpy(p->rid, s->rid, S_RID_LEN);
    p->tag = f->tag;
    p->dec = dec;
    p->body = body;
    p->env.body = body;
    p->env.body_len = len;
    p->env.kind = SOFFA_RK_MESSAGE;
    p->env.msg_type = (uint32_t) v.type;
    memcpy(p->env.message_id, v.message_id, 16);
    /* The sender is the authenticated identity, never the one claimed. */
    snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", s->id->name);
    p->env.sender_role = s->id->role;
    snprintf(p->env.sender_kommun, sizeof p->env.sender_kommun, "%s", s->id->kommun);
    /* A principal with several units: the unit the signal names (the
     * policy checked it is one of the sender's), else its first. */
    snprintf(p->env.sender_unit, sizeof p->env.sender_unit, "%s",
             v.school_unit && v.school_unit[0] ? v.school_unit : s->id->unit);
    p->env.received_at_us = soffa_now_us();
    snprintf(p->env.mailbox, sizeof p->env.mailbox, "%s", dec.mailbox);
    snprintf(p->subject, sizeof p->subject, "%s", v.subject_id);   /* reserve numbers are indexed too */
    s_state_ops(self, p, &v);
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
    s_send_error(self, s->rid, f->tag, rc, why);
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
s_on_subscribe(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    if (!soffa_policy_may_read(s->id, f->mailbox)) {
        char why[200];
        snprintf(why, sizeof why, "%s may not read mailbox '%s'", s->id->name, f->mailbox);
        soffa_info("refused subscribe: %s", why);
        s_send_error(self, s->rid, 0, SOFFA_ERR_NOT_AUTHORISED, why);
        return;
    }
    if (s_session_consumer(s, f->mailbox)) {
        s_send_error(self, s->rid, 0, SOFFA_ERR_PROTOCOL_STATE, "already subscribed to that mailbox");
        return;
    }
    if (s->n_consumers >= sizeof s->consumers / sizeof *s->consumers) {
        s_send_error(self, s->rid, 0, SOFFA_ERR_TOO_LARGE, "too many subscriptions");
        return;
    }
    s_mailbox_t *m = s_mailbox(self, f->mailbox);
    if (!m) {
        s_send_error(self, s->rid, 0, SOFFA_ERR_NOMEM, NULL);
        return;
    }
    char key[2 * SOFFA_NAME_MAX + 2];
    snprintf(key, sizeof key, "%s|%s", s->id->name, m->name);
    /* One reader per (agent, mailbox): a newer session takes over, and the
     * older one is closed and told why, never left connected and deaf. */
    for (s_consumer_t *c = m->consumers; c; c = c->next) {
        if (strcmp(c->cursor_key, key) == 0) {
            char why[256];
            snprintf(why, sizeof why, "another connection with the key of %s took over mailbox %s", s->id->name,
                     m->name);
            s_session_close(self, c->session, SOFFA_ERR_SESSION_CLOSED, why);
            break;
        }
    }
    s_consumer_t *c = calloc(1, sizeof *c);
    uint32_t window = f->credit ? f->credit : 64;
    if (window > (uint32_t) self->cfg.window_max)
        window = (uint32_t) self->cfg.window_max;
    if (!c || !s_ring_init(&c->ring, window)) {
        free(c);
        s_send_error(self, s->rid, 0, SOFFA_ERR_NOMEM, NULL);
        return;
    }
    c->session = s;
    c->mbox = m;
    memcpy(c->cursor_key, key, sizeof key);
    /* Slow start: a reader that has not shown it reads gets a small window
     * (a connection that never reads holds S_SLOW_START deliveries at most);
     * each acknowledgement doubles it up to what was asked for. */
    c->window_max = window;
    c->window = window < S_SLOW_START ? window : S_SLOW_START;
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
        s_send_error(self, s->rid, 0, SOFFA_ERR_PROTOCOL_STATE, "ack for a mailbox not subscribed");
        return;
    }
    if (f->seq <= c->acked)
        return;   /* stale */
    if (!f->has_hash || !s_ring_ack(&c->ring, f->seq, f->hash)) {
        s_send_error(self, s->rid, 0, SOFFA_ERR_PROTOCOL_STATE,
                     "an ACK names a sequence delivered in this session and carries the hash it was delivered with");
        return;
    }
    c->acked = f->seq;
    c->window = c->window * 2 < c->window_max ? c->window * 2 : c->window_max;
    s_pump(self, c);
}

static void
s_on_credit(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    s_consumer_t *c = f->mailbox[0] ? s_session_consumer(s, f->mailbox) : NULL;
    if (!c) {
        s_send_error(self, s->rid, 0, SOFFA_ERR_PROTOCOL_STATE,
                     f->mailbox[0] ? "credit for a mailbox not subscribed"
                                   : "a replay's window is freed with REPLAY-ACK, not CREDIT");
        return;
    }
    uint32_t w = f->credit ? f->credit : 1;
    if (w > (uint32_t) self->cfg.window_max)
        w = (uint32_t) self->cfg.window_max;
    if (!s_ring_grow(&c->ring, w))
        return;
    c->window_max = w;
    if (c->window > w)
        c->window = w;
    s_pump(self, c);
}

/* ---- Replay --------------------------------------------------------------------- */

/* A read of the history is recorded before its first record is sent (an
 * OPENED access record, durable before the replay begins) and again when it
 * ends (COMPLETED, before REPLAY-END) or is cut off (CUT_OFF, when the
 * reader goes away or is closed): how many records were sent, under which
 * filter. The reader states its purpose (replay, history, stats,
 * access-log); the filter and the count are the broker's own. */

static const char *const s_read_purposes[] = {"replay", "history", "stats", "access-log"};

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

/* Fills p with an access record of session s's read (s may be NULL: the
 * caller fills the sender). */
static void
s_access_queue(soffa_broker_t *self, s_pending_t *p, const s_session_t *s, soffa_access_state_t state,
               uint64_t records, uint64_t opened_seq, s_pending_kind_t kind)
{
    soffa_access_t a = {.state = state, .records = records, .opened_seq = opened_seq};
    if (s) {
        a.role = s->id->role;
        snprintf(a.agent, sizeof a.agent, "%s", s->id->name);
        snprintf(a.request, sizeof a.request, "%s", s->replay.request);
        s_filter_text(&s->replay.f, a.filter, sizeof a.filter);
    }
    uint8_t *body = NULL;
    size_t len = 0;
    if (soffa_access_encode(&a, &body, &len) != SOFFA_OK) {
        /* Out of memory: an empty record still marks the read. */
        body = NULL;
        len = 0;
    }
    s_broker_record(self, p, kind, SOFFA_RK_ACCESS, body, len, S_ACCESS_MAILBOX);
    if (s) {
        /* The reader is the sender of its access record. */
        snprintf(p->env.sender_agent, sizeof p->env.sender_agent, "%s", s->id->name);
        p->env.sender_role = s->id->role;
        memcpy(p->rid, s->rid, S_RID_LEN);
        snprintf(p->subject, sizeof p->subject, "%s", s->replay.f.subject_id);
    }
}

typedef struct {
    soffa_broker_t *self;
    s_session_t *s;
    uint32_t budget;               /* records it may still examine this turn */
    bool done;                     /* reached the end of the range or the limit */
    bool stopped;                  /* the visitor stopped the scan */
    bool blocked;
} s_rp_t;

static int
s_replay_one(void *ctx, const soffa_store_rec_t *rec)
{
    s_rp_t *r = ctx;
    s_session_t *s = r->s;
    r->stopped = true;
    if (rec->seq > s->replay.to) {
        r->done = true;
        return 1;
    }
    s->replay.pos = rec->seq;
    bool give_up_turn = --r->budget == 0;
    if (s->replay.f.message_type && rec->tag != s->replay.f.message_type)
        return give_up_turn;
    if (!s->replay.all_scope && s->replay.mode != S_R_MAILBOX) {
        soffa_envelope_t e;
        bool ok = soffa_envelope_decode(rec->env, rec->len, &e) == SOFFA_OK
               && soffa_policy_may_replay(s->id, e.mailbox);
        soffa_envelope_fini(&e);
        if (!ok)
            return give_up_turn;
    }
    soffa_frame_t f = {.type = SOFFA_FRAME_DELIVER, .seq = rec->seq, .data = rec->env, .data_len = rec->len,
                       .has_hash = true, .tag = s->replay.tag};
    memcpy(f.hash, rec->hash, SOFFA_HASH_LEN);
    if (!s_send(r->self, s->rid, &f)) {
        s->replay.pos = rec->seq - 1;   /* try this one again */
        r->blocked = true;
        return 1;
    }
    s_ring_push(&s->replay.ring, rec->seq, rec->hash);
    s->replay.count++;
    if (s->replay.f.limit && s->replay.count >= s->replay.f.limit) {
        r->done = true;
        return 1;
    }
    r->stopped = give_up_turn || s->replay.ring.len >= s->replay.window;
    return r->stopped;
}

/* The range is done: record the read, then REPLAY-END once that is durable. */
static void
s_replay_close(soffa_broker_t *self, s_session_t *s)
{
    s_set_state(s, S_CLOSING);
    s_pending_t *p = s_pending_add(self);
    s_access_queue(self, p, s, SOFFA_ACCESS_COMPLETED, s->replay.count, s->replay.opened_seq, S_P_READ_COMPLETED);
}

/* Sends what the replay's window allows, examining at most
 * S_REPLAY_SCAN_MAX records per turn: a scope-limited replay that skips
 * millions of records yields to everyone else between turns. */
static void
s_pump_replay(soffa_broker_t *self, s_session_t *s)
{
    if (s->state != S_REPLAYING || s->replay.ring.len >= s->replay.window)
        return;
    s_rp_t r = {self, s, S_REPLAY_SCAN_MAX, false, false, false};
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
        s_send_error(self, s->rid, s->replay.tag, rc, "replay failed while reading the store");
        s_replay_close(self, s);
        return;
    }
    if (r.done || !r.stopped)
        s_replay_close(self, s);   /* the range ended, or the records did */
    /* Otherwise: blocked, out of window, or out of turn; the loop comes back. */
}

/* The opening record is durable: the read begins. */
static void
s_replay_begin(soffa_broker_t *self, s_session_t *s)
{
    const soffa_replay_filter_t *fl = &s->replay.f;
    uint64_t from = fl->from_seq ? fl->from_seq : 1, to = fl->to_seq ? fl->to_seq : UINT64_MAX;
    uint64_t t;
    if (fl->from_us && soffa_store_seq_at_time(self->store, fl->from_us, &t) == SOFFA_OK && t > from)
        from = t;
    if (fl->to_us && soffa_store_seq_at_time(self->store, fl->to_us, &t) == SOFFA_OK && t - 1 < to)
        to = t - 1;   /* to_us is exclusive */
    /* The read covers the history as it stood when it was asked for: up to
     * the record of the read itself, which it does not include. */
    if (to >= s->replay.opened_seq)
        to = s->replay.opened_seq - 1;
    s->replay.pos = from - 1;
    s->replay.to = to;
    s_set_state(s, S_REPLAYING);
    if (from > to)
        s_replay_close(self, s);
    /* The loop pumps it (never from inside a commit's answers). */
}

static void
s_on_replay(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    if (s->id->role != SOFFA_ROLE_AUDIT) {
        soffa_info("refused replay by %s: not an auditor", s->id->name);
        s_send_error(self, s->rid, f->tag, SOFFA_ERR_NOT_AUTHORISED, "only the audit role may replay the history");
        return;
    }
    const char *purpose = f->text[0] ? f->text : "replay";
    bool known = false;
    for (size_t i = 0; i < sizeof s_read_purposes / sizeof *s_read_purposes; i++)
        known |= strcmp(purpose, s_read_purposes[i]) == 0;
    if (!known) {
        s_send_error(self, s->rid, f->tag, SOFFA_ERR_BAD_FIELD,
                     "the purpose of a read is replay, history, stats or access-log");
        return;
    }
    const soffa_replay_filter_t *fl = &f->filter;
    if (fl->mailbox[0] && !soffa_policy_may_replay(s->id, fl->mailbox)) {
        char why[160];
        snprintf(why, sizeof why, "mailbox '%s' is outside %s's scope", fl->mailbox, s->id->name);
        s_send_error(self, s->rid, f->tag, SOFFA_ERR_NOT_AUTHORISED, why);
        return;
    }
    if (fl->subject_id[0] && soffa_id_check(fl->subject_id, NULL) != SOFFA_OK
        && soffa_reserve_check(fl->subject_id, NULL) != SOFFA_OK) {
        s_send_error(self, s->rid, f->tag, SOFFA_ERR_BAD_FIELD,
                     "the subject filter is not a valid identity number (12 digits) or reserve number");
        return;
    }
    memset(&s->replay, 0, sizeof s->replay);
    s->replay.tag = f->tag;
    s->replay.f = *fl;
    snprintf(s->replay.request, sizeof s->replay.request, "%.31s", purpose);
    s->replay.mode = fl->subject_id[0] ? S_R_SUBJECT : fl->mailbox[0] ? S_R_MAILBOX : S_R_LOG;
    s->replay.all_scope = strcmp(s->id->scope, "*") == 0;
    s->replay.window_max = f->credit ? f->credit : S_REPLAY_WINDOW;
    if (s->replay.window_max > (uint32_t) self->cfg.window_max)
        s->replay.window_max = (uint32_t) self->cfg.window_max;
    s->replay.window = s->replay.window_max < S_SLOW_START ? s->replay.window_max : S_SLOW_START;
    if (!s_ring_init(&s->replay.ring, s->replay.window_max)) {
        s_send_error(self, s->rid, f->tag, SOFFA_ERR_NOMEM, NULL);
        return;
    }
    /* Nothing is sent before the read is in the access log: the opening
     * record goes with the next commit (after everything acknowledged so
     * far), and the replay starts when it is durable. */
    s_set_state(s, S_OPENING);
    s->rp_next = self->replaying;
    self->replaying = s;
    s_pending_t *p = s_pending_add(self);
    s_access_queue(self, p, s, SOFFA_ACCESS_OPENED, 0, 0, S_P_READ_OPENED);
}

static void
s_on_replay_ack(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    if ((s->state != S_REPLAYING && s->state != S_CLOSING) || f->tag != s->replay.tag)
        return;   /* stale: it crossed the end of the replay on the wire */
    if (!s_ring_ack(&s->replay.ring, f->seq, f->hash)) {
        s_send_error(self, s->rid, f->tag, SOFFA_ERR_PROTOCOL_STATE,
                     "a REPLAY-ACK names a record of this replay with the hash it was delivered with");
        return;
    }
    uint32_t w = s->replay.window * 2;
    s->replay.window = w < s->replay.window_max ? w : s->replay.window_max;
    s_pump_replay(self, s);
}

/* ---- Status ----------------------------------------------------------------------- */

/* Everything here comes from running counts (mailbox totals, the awaited
 * answers, the mailbox ordinals): a status costs a few seeks per mailbox,
 * never a scan of the history. */

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

static int
s_status_one(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_status_t *st = ctx;
    soffa_broker_t *self = st->self;
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
    s->overdue = m->overdue;
    /* The slowest reader decides the lag: connected readers, else the
     * stored cursors of the agents whose inbox it is. */
    uint64_t slowest = UINT64_MAX;
    for (s_consumer_t *c = m->consumers; c; c = c->next) {
        s->consumers++;
        if (c->acked < slowest)
            slowest = c->acked;
    }
    bool inbox = soffa_policy_is_inbox(m->name);
    if (!s->consumers && inbox) {
        const soffa_identity_t **readers = soffa_map_sget(self->readers, m->name);
        for (size_t i = 0; readers && readers[i]; i++) {
            char key[2 * SOFFA_NAME_MAX + 2];
            uint64_t cur = 0;
            snprintf(key, sizeof key, "%s|%s", readers[i]->name, m->name);
            soffa_store_cursor_get(self->store, key, &cur);
            if (cur < slowest)
                slowest = cur;
        }
    }
    if (slowest == UINT64_MAX)
        slowest = 0;
    if (inbox || s->consumers) {
        uint64_t done = 0;
        if (slowest && soffa_store_mailbox_rank(self->store, m->name, slowest, &done) != SOFFA_OK)
            done = 0;
        s->lag = m->depth > done ? m->depth - done : 0;
        if (s->lag) {
            int64_t t = 0;
            soffa_store_scan_mailbox(self->store, m->name, slowest, s_first_time, &t);
            s->oldest_undelivered_us = t;
        }
    }
    /* Only an agent's inbox can lack a reader; the broker's own mailboxes
     * (journals, audit/...) are read by replay when someone asks. */
    s->no_reader = inbox && s->lag > 0 && s->consumers == 0;
    return 0;
}

static void
s_on_status(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f)
{
    /* One reply at a time: the next request carries the last reply's
     * receipt, so a client that never reads cannot pile replies up. */
    if (s->status_receipt && f->receipt != s->status_receipt) {
        s_send_error(self, s->rid, f->tag, SOFFA_ERR_PROTOCOL_STATE,
                     "read the previous STATUS-REPLY and send its receipt with the next STATUS-REQUEST");
        return;
    }
    s_status_t st = {self, s->id, NULL, 0, 0};
    soffa_map_each(self->mailboxes, s_status_one, &st);
    soffa_frame_t r = {.type = SOFFA_FRAME_STATUS_REPLY, .tag = f->tag, .sessions = (uint32_t) soffa_map_size(self->sessions),
                       .started_at_us = self->started_at_us, .statuses = st.st, .n_statuses = st.n};
    do
        randombytes_buf(&r.receipt, sizeof r.receipt);
    while (r.receipt == 0);
    soffa_store_head(self->store, &r.head_seq, NULL, NULL);
    if (s_send(self, s->rid, &r))
        s->status_receipt = r.receipt;
    free(st.st);
}

/* ---- Dispatch ------------------------------------------------------------------- */

/* The grammar at the top of this file, as data: which frames each state
 * takes, and who handles them. Anything else is answered with
 * ERROR(PROTOCOL_STATE) and changes nothing. */
#define S_IN(state) (1u << (state))
#define S_LIVE (S_IN(S_READY) | S_IN(S_OPENING) | S_IN(S_REPLAYING) | S_IN(S_CLOSING))

typedef void (*s_handler_fn)(soffa_broker_t *self, s_session_t *s, const soffa_frame_t *f);

static const struct {
    soffa_frame_type_t type;
    unsigned states;
    s_handler_fn handler;
} s_grammar[] = {
    {SOFFA_FRAME_HELLO, S_IN(S_NEW) | S_LIVE, s_on_hello},
    /* A PING in NEW means the agent had a session this broker no longer
     * knows (it restarted, or expired the session): the error tells the
     * agent to greet and subscribe again. */
    {SOFFA_FRAME_PING, S_LIVE, s_on_ping},
    {SOFFA_FRAME_PUBLISH, S_LIVE, s_on_publish},
    {SOFFA_FRAME_SUBSCRIBE, S_LIVE, s_on_subscribe},
    {SOFFA_FRAME_ACK, S_LIVE, s_on_ack},
    {SOFFA_FRAME_CREDIT, S_LIVE, s_on_credit},
    {SOFFA_FRAME_STATUS_REQUEST, S_LIVE, s_on_status},
    {SOFFA_FRAME_REPLAY, S_IN(S_READY), s_on_replay},
    {SOFFA_FRAME_REPLAY_ACK, S_LIVE, s_on_replay_ack},
};

static void
s_on_frame(soffa_broker_t *self, s_session_t *s, const uint8_t *buf, size_t len)
{
    soffa_frame_t f;
    soffa_err_t rc = soffa_frame_decode(buf, len, &f);
    if (rc != SOFFA_OK) {
        soffa_info("bad frame from %s (%zu bytes): %s", s->id->name, len, soffa_strerror(rc));
        s_send_error(self, s->rid, 0, rc,
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
                 s_state_names[s->state]);
        soffa_info("%s: %s", s->id->name, why);
        s_send_error(self, s->rid, f.tag, SOFFA_ERR_PROTOCOL_STATE, why);
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
        if (zmq_msg_size(&rid) != S_RID_LEN || r[0] != 0) {
            /* A routing id the client chose: never a session (it could name
             * another's, or the next one libzmq would give out). */
            if (self->foreign_rids++ % 1024 == 0)
                soffa_warn("%s connected with a routing id of its own choosing; refused (%llu such frames so far)",
                           id->name, (unsigned long long) self->foreign_rids);
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        s_session_t *s = soffa_map_get(self->sessions, r, S_RID_LEN);
        if (s && (s->id != id || s->fd != fd))
            s_session_forget(self, s, s->id != id ? "a frame with another key came under its routing id"
                                                  : "its routing id now arrives on another connection");
        else if (s && s->state == S_CLOSED) {
            zmq_msg_close(&rid);   /* closed: nothing more is answered */
            zmq_msg_close(&body);
            continue;
        }
        s = soffa_map_get(self->sessions, r, S_RID_LEN);
        if (!s)
            s = s_session_new(self, r, id, fd);
        if (s) {
            s_lru_touch(self, s);
            if (extra)
                s_send_error(self, s->rid, 0, SOFFA_ERR_MALFORMED, "a frame is one message part");
            else
                s_on_frame(self, s, zmq_msg_data(&body), zmq_msg_size(&body));
        }
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

/* True if path (a file that may not exist yet) lies in directory dir or
 * below it, after resolving links. */
static bool
s_inside(const char *path, const char *dir)
{
    char d[PATH_MAX], f[PATH_MAX], parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(parent, sizeof parent, ".");
    if (!realpath(dir, d) || !realpath(slash && !parent[0] ? "/" : parent, f))
        return false;
    size_t n = strlen(d);
    return strncmp(f, d, n) == 0 && (f[n] == '\0' || f[n] == '/');
}

/* Loads the checkpoint signing key ([audit] signing_key), or makes it (and
 * its public half, KEY.pub) on first start. It never lives in the data
 * directory: whoever holds a copy of that (a backup) could otherwise
 * rewrite the history and sign it again. */
static soffa_err_t
s_signing_key(soffa_broker_t *self, const char *data, char *why, size_t whylen)
{
    char kp[1100], pp[1100], old[1100];
    if (!soffa_cfg_path(self->config_path, self->cfg.signing_key, kp, sizeof kp)) {
        snprintf(why, whylen, "[audit] signing_key is too long");
        return SOFFA_ERR_CONFIG;
    }
    if (s_inside(kp, data)) {
        snprintf(why, whylen, "[audit] signing_key %s lies inside data_dir %s: every copy of the store would carry "
                              "it; keep it beside the configuration instead", kp, data);
        return SOFFA_ERR_CONFIG;
    }
    size_t kl = strlen(kp);
    snprintf(pp, sizeof pp, "%.*s.pub", (int) (kl > 4 && !strcmp(kp + kl - 4, ".key") ? kl - 4 : kl), kp);
    snprintf(old, sizeof old, "%s/checkpoint.key", data);
    FILE *f = fopen(kp, "re");
    if (!f && errno == ENOENT && access(old, F_OK) == 0) {
        snprintf(why, whylen, "the checkpoint signing key is in the data directory (%s), where backups carry it: "
                              "move it to %s (and checkpoint.pub beside it) and start again", old, kp);
        return SOFFA_ERR_CONFIG;
    }
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
        soffa_info("made the checkpoint signing key %s; its public half is %s (also in %s)", kp, hex, pp);
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
    uint8_t *body = NULL;
    if (soffa_checkpoint_encode(&cp, &body, &len) != SOFFA_OK)
        return false;
    s_broker_record(self, p, S_P_CHECKPOINT, SOFFA_RK_CHECKPOINT, body, len, S_CHECKPOINT_MAILBOX);
    p->env.received_at_us = cp.at_us;
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
    soffa_store_opts_t so = {.path = path, .map_size = self->cfg.map_size};
    rc = soffa_store_open(&self->store, &so);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s%s", path, soffa_strerror(rc),
                 rc == SOFFA_ERR_VERSION ? "; run soffa-broker --config FILE --upgrade-store (it takes a backup first)"
                                         : "");
        return rc;
    }
    rc = soffa_store_mailboxes(self->store, s_load_mailbox, self);
    if (rc == SOFFA_OK) {
        self->await_signals.delay_us = self->cfg.signal_ack_due * 1000;
        self->await_referrals.delay_us = self->cfg.referral_receipt_due * 1000;
        rc = s_await_load(self);
    }
    if (rc == SOFFA_OK)
        rc = s_readers_build(self);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "store %s: %s", path, soffa_strerror(rc));
        return rc;
    }
    rc = s_signing_key(self, path, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    /* Checkpoint from the next record on; a tail no checkpoint covers (the
     * broker was killed) gets one with the first commit. */
    uint64_t head;
    soffa_store_head(self->store, &head, NULL, NULL);
    self->cp_seq = head;
    s_mailbox_t *cpm = soffa_map_sget(self->mailboxes, S_CHECKPOINT_MAILBOX);
    if (head && (!cpm || cpm->last_seq < head)) {
        self->cp_seq = cpm ? cpm->last_seq : 0;
        self->cp_force = true;
    }
    self->cp_at = soffa_mono_us();
    soffa_store_room(self->store, &self->map_room, &self->disk_room);
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
    if (zmq_socket_monitor(self->router, S_MONITOR, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0
        || !(self->monitor = zmq_socket(self->ctx, ZMQ_PAIR)) || zmq_connect(self->monitor, S_MONITOR) != 0) {
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

static void
s_wake_all(soffa_broker_t *self)
{
    soffa_map_each(self->mailboxes, s_wake_one, self);
}

static void
s_pump_replays(soffa_broker_t *self)
{
    for (s_session_t *s = self->replaying; s;) {
        s_session_t *next = s->rp_next;   /* a replay that ends leaves the list */
        s_pump_replay(self, s);
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
            s_monitor_read(self);
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            s_zap_handle(self);
        uint64_t before = self->published;
        if (n > 0 && (items[2].revents & ZMQ_POLLIN))
            s_flight_wait(self);   /* done: answer it */
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            s_read_router(self);
        else if (n == 0)
            self->last_drain = soffa_mono_us();   /* nothing was waiting */
        s_followups_run(self);
        s_submit(self);   /* what was read (and a due checkpoint) goes to the writer once it is free */
        if (self->published != before || self->followups)
            s_wake_all(self);
        s_pump_replays(self);
        now = soffa_mono_us();
        if (now >= self->next_flush) {
            s_flush_cursors(self);
            self->next_flush = now + self->cfg.cursor_flush_ms * 1000;
        }
        if (now >= self->next_expiry) {
            s_expire_sessions(self);
            s_cut_connections(self);
            s_await_tick(self);
            /* Peers whose queue was full get another chance. */
            s_wake_all(self);
            self->next_expiry = now + 500000;
        }
    }
    /* Stop: reads under way are recorded as cut off, everything read has
     * been committed and answered, and a last checkpoint vouches for all
     * of it. */
    while (self->replaying) {
        s_session_t *s = self->replaying;
        s_session_release(self, s);
        self->id_sessions[s_id_index(self, s->id)]++;   /* still counted until forgotten */
        s_set_state(s, S_READY);
    }
    s_commit(self);
    while (self->followups) {
        s_followups_run(self);
        s_commit(self);
    }
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
        s_ring_fini(&s->consumers[i]->ring);
        free(s->consumers[i]);
    }
    s_ring_fini(&s->replay.ring);
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
            s_flush_cursors(self);
            s_commit(self);
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
        s_followup_t *f = self->followups;
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
    free(self->id_sessions);
    explicit_bzero(self->secret_key, sizeof self->secret_key);
    sodium_memzero(self->sign_sk, sizeof self->sign_sk);
    free(self);
    *self_p = NULL;
}
