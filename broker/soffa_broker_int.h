/*  soffa_broker_int: the broker's state, shared by its modules.
 *
 *  Private to broker/: the types of sessions, mailboxes, readers, awaited
 *  answers and the commit pipeline, and struct soffa_broker itself. Each
 *  module (soffa_session, soffa_delivery, soffa_publish, soffa_commit,
 *  soffa_replay, soffa_status, soffa_zap, soffa_lookup, soffa_ring) works on
 *  its part of it; soffa_broker owns the loop that calls them.
 */
#ifndef SOFFA_BROKER_INT_H
#define SOFFA_BROKER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "soffa_broker.h"
#include "soffa_err.h"
#include "soffa_id.h"
#include "soffa_idtable.h"
#include "soffa_keys.h"
#include "soffa_map.h"
#include "soffa_msg.h"
#include "soffa_policy.h"
#include "soffa_retention.h"
#include "soffa_seal.h"
#include "soffa_store.h"
#include "soffa_terms.h"
#include "soffa_wire.h"

#define SOFFA_RID_LEN 5                /* the routing ids libzmq gives: 0x00 + 4 bytes */
/* Inside the broker a routing id's first byte (always 0 from libzmq) names
 * the socket the connection came on, so that the ids two ROUTER sockets
 * give out never collide: */
#define SOFFA_RID_MAIN 0               /* the endpoint(s) of the broker's key */
#define SOFFA_RID_PREVIOUS 1           /* the previous key's endpoint, during a key rotation */
#define SOFFA_REPLAY_WINDOW 256        /* replay deliveries unacknowledged, unless the auditor asks */
#define SOFFA_REPLAY_SCAN_MAX 1024     /* records a replay examines before others get a turn */
#define SOFFA_SLOW_START 16            /* a reader's first window; it doubles with each proof of reading */
/* Publishes stop this far from a full map or disk: the broker's own records
 * (a read's access records, checkpoints, cursors) still fit, so a read is
 * recorded, and can go on, while the store is full. */
#define SOFFA_HEADROOM (96 * 1024)
#define SOFFA_ACCESS_MAILBOX "audit/access"
#define SOFFA_CHECKPOINT_MAILBOX "audit/checkpoint"
#define SOFFA_RESTORE_MAILBOX "audit/restore"
#define SOFFA_MONITOR "inproc://soffa-router-monitor"
#define SOFFA_CLOSE_GRACE_US 1000000   /* a closed session's connection is cut this long after the reason */
/* Answers to batched publishes go at most this many to a PUBLISH-ACKS
 * frame (about 2 KB): the frames queued for a client that never reads are
 * bounded in number (the router's send limit), and this bounds their size,
 * however many retries it sends. */
#define SOFFA_ACKS_MAX 64

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
    int64_t referral_expiry;       /* ms before a referral nobody answered is EXPIRED */
    int64_t not_reached_attempts;  /* contact attempts before NOT_REACHED may be recorded */
    int64_t not_reached_channels;  /* ... through this many channels */
    int64_t sessions_per_agent;    /* live sessions one key may hold */
    char signing_key[512];         /* checkpoint signing key (outside data_dir) */
    char master_key[512];          /* [keys] master key file or credential:NAME (outside data_dir) */
    char retention[SOFFA_RC_COUNT][64]; /* [retention] rule per class ("183d from message") */
    int64_t retention_every;       /* [retention] run_every (ms) */
    char erasure_by[1024];         /* [retention] agents that may erase (comma-separated) */
    char metrics_listen[128];      /* [metrics] listen: HOST:PORT of the Prometheus endpoint, "" off */
    char previous_endpoint[256];   /* during a key rotation: where the previous key is served */
    char previous_secret_key[512]; /* ... the previous key file */
    char previous_until[40];       /* ... until this day (Stockholm) or instant */
    int64_t previous_until_us;     /* previous_until as an instant (Unix µs); 0 when no rotation */
    char sensitive_terms[512];     /* [policy] the sensitive-term list ("" = the built-in copy) */
    int64_t event_max_days;        /* [policy] how far back an event date may lie */
    int64_t concern_max_days;      /* [policy] ... a report of concern's */
} soffa_broker_cfg_t;

/* Session states. A replay opens with an access record that must be
 * durable before the first record goes out (OPENING), runs (REPLAYING), and
 * ends with a record of what was sent (CLOSING) before REPLAY-END. A closed
 * session (taken over, or over its key's limit) answers nothing more and
 * waits for its connection to go. */
typedef enum { SOFFA_SESS_NEW, SOFFA_SESS_READY, SOFFA_SESS_OPENING, SOFFA_SESS_REPLAYING, SOFFA_SESS_CLOSING, SOFFA_SESS_CLOSED } soffa_session_state_t;

struct soffa_session;

/* An answer the broker waits for: a signal's acknowledgement ('A'), a
 * referral's receipt ('S'). In arrival order per kind, so the entries past
 * their deadline are a prefix of the list. */
typedef struct soffa_await {
    uint8_t key[17];                  /* kind || id */
    struct soffa_mailbox *mbox;
    int64_t received_us;
    bool overdue;
    bool expiring;                    /* its EXPIRED record is on its way to the store */
    struct soffa_await *prev, *next;
} soffa_await_t;

typedef struct {
    soffa_await_t *head, *tail;
    soffa_await_t *due;                   /* first entry not yet overdue */
    int64_t delay_us;                 /* deadline after arrival */
    uint64_t n, n_overdue;            /* entries; of those, overdue */
} soffa_await_list_t;

typedef struct soffa_mailbox {
    char name[SOFFA_NAME_MAX];
    uint64_t depth;                   /* records stored */
    uint64_t last_seq;                /* newest record */
    uint64_t overdue;                 /* answers awaited past their deadline */
    uint64_t awaiting;                /* answers awaited */
    struct soffa_consumer *consumers;     /* connected readers */
} soffa_mailbox_t;

/* A delivery in flight: acknowledged by naming its seq with its hash. */
typedef struct {
    uint64_t seq;
    uint8_t hash[SOFFA_HASH_LEN];
} soffa_sent_t;

/* Deliveries in flight, oldest first. */
typedef struct {
    soffa_sent_t *v;
    uint32_t cap, head, len;
} soffa_ring_t;

typedef struct soffa_consumer {
    struct soffa_session *session;
    soffa_mailbox_t *mbox;
    char cursor_key[2 * SOFFA_NAME_MAX + 2];   /* "<agent>|<mailbox>" */
    uint64_t acked;                   /* last acknowledged (durable once flushed) */
    uint64_t flushed;                 /* last value written to the store */
    uint64_t sent;                    /* last sequence sent or skipped */
    uint32_t window;                  /* most unacknowledged deliveries now */
    uint32_t window_max;              /* what the reader asked for */
    soffa_ring_t ring;
    struct soffa_consumer *next;          /* in mailbox */
} soffa_consumer_t;

/* What a replay walks: the log, a mailbox's index, a subject's index, and
 * after the subject's index, the disposal records its tombstones name. */
typedef enum { SOFFA_REPLAY_LOG, SOFFA_REPLAY_MAILBOX, SOFFA_REPLAY_SUBJECT, SOFFA_REPLAY_TOMB } soffa_replay_mode_t;

/* A data controller a read concerns: its access log gets the read's
 * records (opened, then completed or cut off, with what it was sent). */
typedef struct {
    char name[SOFFA_NAME_MAX];        /* "1419", "af", "school/NAME", "soffa" */
    uint64_t opened_seq;              /* its OPENED access record */
    uint64_t count;                   /* records of this controller sent */
} soffa_read_ctl_t;

typedef struct soffa_session {
    uint8_t rid[SOFFA_RID_LEN];
    soffa_ident_t *ident;             /* the agent it authenticated as (a reference: it outlives a reload) */
    const soffa_identity_t *id;       /* &ident->id */
    uint8_t key[32];                  /* the CURVE key it authenticated with */
    soffa_session_state_t state;
    uint32_t version;                 /* protocol spoken since HELLO (2: batch frames) */
    int fd;                           /* the connection's socket (ZMQ_SRCFD) */
    ino_t ino;                        /* and its inode: fd numbers are reused */
    int64_t last_seen;                /* monotonic µs */
    int64_t shutdown_at;              /* CLOSED: when its connection is cut; 0 when done */
    struct soffa_session *lru_prev, *lru_next;   /* all sessions, least recently heard first */
    struct soffa_session *rp_next;        /* replaying sessions */
    uint64_t status_receipt;          /* of the last STATUS-REPLY, until echoed */
    soffa_consumer_t *consumers[4];
    size_t n_consumers;
    struct {
        uint64_t tag;
        soffa_replay_filter_t f;
        soffa_replay_mode_t mode;
        uint64_t pos, to;             /* last sequence examined; last to include */
        uint64_t count;               /* records sent */
        uint32_t window;              /* now */
        uint32_t window_max;          /* what the auditor asked for */
        soffa_ring_t ring;
        bool all_scope;               /* scope "*" */
        bool access_logs;             /* LOG mode over the access logs in scope only */
        bool messages_only;           /* a history: the young person's messages, not the reads of them */
        uint64_t opened_seq;          /* the first access record it opened with */
        uint64_t closed_seq;          /* the first access record it closed with */
        char request[32];
        soffa_read_ctl_t *ctl;        /* owned: the controllers it concerns */
        size_t n_ctl;
        size_t waiting;               /* its access records not yet durable (OPENING, CLOSING) */
    } replay;
} soffa_session_t;

/* What the writer commits for one record, and what follows its commit. */
typedef enum {
    SOFFA_P_PUBLISH,                      /* an agent's message: acknowledged after the commit */
    SOFFA_P_BROKER,                       /* the broker's own record (a notice, a cut-off read) */
    SOFFA_P_CHECKPOINT,                   /* a signed checkpoint */
    SOFFA_P_READ_OPENED,                  /* a replay's opening access record: then the replay starts */
    SOFFA_P_READ_COMPLETED,               /* a replay's closing access record: then REPLAY-END */
} soffa_pending_kind_t;

typedef struct {
    soffa_pending_kind_t kind;
    uint8_t rid[SOFFA_RID_LEN];           /* who hears about the commit (the session may be gone) */
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
    uint64_t seq_from;                /* a restore record: the sequence it jumps to (soffa_store_item_t) */
    char alias_from[13];              /* an identity change: the number replaced ("" otherwise) */
    struct soffa_followup *after;     /* owned: what follows once this record is stored (not a duplicate) */
    soffa_err_t rc;                   /* after the commit: this record's outcome */
    bool batched;                     /* came in a PUBLISH-BATCH: answered in a PUBLISH-ACKS */
} soffa_pending_t;

/* What follows a commit, for a later batch: a consent withdrawal whose
 * referrals still need their notices, a ready record, or a case handed on
 * to the new municipality's KAA (its records, a batch at a time). */
typedef struct soffa_followup {
    bool record;                      /* rec is ready to go */
    bool handover;                    /* the case's records go to `to` under consent_id */
    soffa_pending_t rec;
    uint8_t consent_id[16];
    uint8_t cause[16];                /* the withdrawal's (or the close's) message id */
    uint64_t after;                   /* referrals (or case records) up to this seq are done */
    uint8_t case_id[16];              /* handover: the case */
    char to[SOFFA_NAME_MAX];          /* handover: the new KAA's inbox */
    uint32_t categories;              /* handover: the data categories the consent covers */
    struct soffa_followup *next;
} soffa_followup_t;

/* A consumer's acknowledged position, waiting to be written. */
typedef struct {
    char key[2 * SOFFA_NAME_MAX + 2];
    uint64_t seq;
} soffa_cursor_rec_t;

typedef struct {
    soffa_cursor_rec_t *v;
    size_t n, cap;
} soffa_cursors_t;

typedef struct soffa_metrics soffa_metrics_t;

/* The commit pipeline's report of one record of a finished batch: p->rc is
 * its outcome; seq its sequence (when stored), duplicate whether it was a
 * retry of a record stored before. The callback answers the record (it may
 * add records to the pending batch, which go with a later commit; it never
 * commits). */
typedef void (*soffa_commit_done_fn)(soffa_broker_t *self, soffa_pending_t *p, uint64_t seq, bool duplicate);
/* Called once after the last record of a finished batch was reported. */
typedef void (*soffa_commit_end_fn)(soffa_broker_t *self);

/* An answer to a batched publish, held until its commit's report ends and
 * then sent with the others to the same connection in one PUBLISH-ACKS. */
typedef struct {
    uint8_t rid[SOFFA_RID_LEN];
    uint64_t tag;
    uint64_t seq;
    bool duplicate;
    soffa_err_t rc;
    char mailbox[SOFFA_NAME_MAX];
} soffa_answer_t;

/* What a session's end means to the modules above the session layer (its
 * readers, a replay under way); soffa_session_release calls it. */
typedef void (*soffa_session_end_fn)(soffa_broker_t *self, soffa_session_t *s);

struct soffa_broker {
    char config_path[1024];
    soffa_broker_cfg_t cfg;
    soffa_idtable_t *agents;          /* the configured agents (replaced whole by a reload) */
    struct soffa_teams *teams;        /* [teams K]: municipalities whose KAA works in teams (replaced with agents) */
    uint64_t reloads, reload_failures;
    char public_key[41], secret_key[41];
    char data_path[1024];
    soffa_store_t *store;
    soffa_terms_t *terms;             /* the sensitive-term list, loaded at start (never NULL once new) */
    void *ctx, *router, *zap, *monitor;
    /* A key rotation's window: the previous key on an endpoint of its own
     * (one CURVE socket has one key), served until cfg.previous_until_us. */
    void *router_prev, *monitor_prev;
    char prev_public[41], prev_secret[41];
    int prev_state;                   /* 0 none/gone, 1 served, 2 its sessions closed, socket closing */
    int64_t prev_closing_at;          /* monotonic µs: when state 2 began */
    soffa_map_t *sessions;            /* routing id -> session */
    soffa_map_t *by_fd;               /* socket fd -> session */
    soffa_session_t *lru_head, *lru_tail;
    soffa_session_t *replaying;           /* sessions in OPENING..CLOSING */
    size_t n_closing;                 /* CLOSED sessions whose connection is still to be cut */
    soffa_map_t *mailboxes;           /* name -> mailbox */
    soffa_map_t *awaits;              /* kind || id -> soffa_await_t */
    soffa_await_list_t await_signals, await_referrals;
    soffa_followup_t *followups, *followups_tail;
    soffa_pending_t *pending;             /* records read since the last hand-over */
    size_t n_pending;
    size_t pending_cap, flight_cap;       /* room in pending and in flight (they swap) */
    soffa_commit_done_fn committed;       /* answers a committed record (soffa_broker.c) */
    soffa_commit_end_fn committed_end;    /* sends what the reports of one batch held back */
    /* counts a committed batch: its records, the writer's time, LMDB's durable commit's part (metrics) */
    void (*batch_done)(soffa_broker_t *self, size_t records, int64_t took_us, int64_t sync_us);
    soffa_session_end_fn released;        /* ends what a session holds above it (soffa_broker.c) */
    struct soffa_dbatch *dbatch;          /* records being gathered for one DELIVER-BATCH (soffa_dbatch) */
    soffa_answer_t *answers;              /* batched publishes answered by the report under way */
    size_t n_answers, answers_cap;
    bool in_done;                         /* reporting a finished batch: nothing may commit */
    /* The writer thread commits one batch (flight) while the main thread
     * reads and checks the next. Nothing in flight is acknowledged before
     * the writer's commit has returned. */
    soffa_pending_t *flight;
    size_t n_flight;
    soffa_store_item_t *flight_items;
    soffa_err_t flight_rc;
    int64_t flight_took_us, flight_sync_us;   /* the writer's time for the flight, and LMDB's commit's part */
    bool in_flight;                   /* handed to the writer, not finished */
    int writer_job;                   /* 0 idle, 1 commit flight, 2 quit (under wmu) */
    bool writer_started;
    pthread_t writer;
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    int done_fd;                      /* eventfd: the writer finished a job */
    soffa_cursors_t cur_pending;          /* cursors for the next commit */
    soffa_cursors_t cur_flight;           /* cursors in the commit in flight */
    soffa_store_cursor_t *cur_items;  /* the writer's view of cur_flight */
    size_t cur_items_cap;
    int64_t started_at_us;
    int64_t next_flush, next_expiry;  /* monotonic µs */
    int64_t last_drain;               /* monotonic µs when the router was last read empty */
    uint8_t sign_sk[SOFFA_SIGN_SECRET]; /* checkpoint signing key */
    soffa_seal_master_t master;       /* the master key the store is sealed under */
    soffa_retention_t retention;      /* [retention], parsed */
    int64_t next_dispose;             /* monotonic µs of the next disposal run */
    uint64_t cp_seq;                  /* the newest record a checkpoint covers (or the last checkpoint) */
    int64_t cp_at;                    /* monotonic µs of the last checkpoint */
    bool cp_force;                    /* the next commit starts with a checkpoint */
    uint64_t published, refused, delivered;
    uint64_t commits, commit_us;      /* group commits and the time spent in them */
    uint64_t foreign_rids;            /* frames refused for a routing id the client chose */
    uint64_t map_room, disk_room;     /* bytes left at the last commit, less what publishes since may take */
    int64_t room_at_us;               /* when map_room and disk_room were last measured (monotonic) */
    soffa_metrics_t *metrics;         /* counters for /metrics, and the endpoint */
};

#endif
