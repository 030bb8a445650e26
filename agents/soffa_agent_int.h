/*  soffa_agent_int.h: the agent's shared state, private to the agent's
 *  modules (soffa_agent*.c), as Malamute's classes share one server struct.
 *
 *  Each part of struct soffa_agent is written by the module named beside
 *  it and read by the others; soffa_agent.c makes and frees it all.
 */
#ifndef SOFFA_AGENT_INT_H
#define SOFFA_AGENT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "soffa_agent.h"
#include "soffa_agent_reply.h"
#include "soffa_agent_session.h"
#include "soffa_box.h"
#include "soffa_client.h"
#include "soffa_msg.h"
#include "soffa_retention.h"
#include "soffa_school.h"
#include "soffa_seal.h"
#include "soffa_web_cfg.h"
#include "soffa_wire.h"

#define SOFFA_AGENT_OUT_WINDOW 256            /* publishes in flight */
#define SOFFA_AGENT_RESEND_US (10 * 1000000)  /* unanswered publishes are sent again after this */
#define SOFFA_AGENT_BROKER_ALTS 4             /* endpoints, and keys, an agent may list for its broker (a key rotation) */

/*  [agent] of agent.ini (the key table is in soffa_agent.c). */
typedef struct {
    char name[SOFFA_NAME_MAX];     /* this agent's name, as in the broker's [agent NAME] */
    char broker[512];              /* the broker's endpoint(s), comma-separated */
    char broker_key[512];          /* the broker's public key(s) (Z85) or .pub file(s), comma-separated */
    char key[512];                 /* this agent's key file */
    char data_dir[512];            /* directory of the outbox and inbox */
    char control[512];             /* control socket path ("": DATA_DIR/control.sock) */
    char log_level[16];            /* debug, info, warn or error */
    int64_t window;                /* deliveries in flight from the broker */
    int64_t heartbeat_ms;          /* how often the agent pings the broker */
    int64_t reconnect_max_ms;      /* ceiling of the reconnect backoff */
    char hook[1024];               /* command run for each delivered message ("": none) */
    int64_t hook_retries;          /* failures before a message is parked */
    int64_t hook_backoff_ms;       /* first wait after a failed hook (doubles) */
    int64_t hook_timeout_ms;       /* a hook running longer is stopped and counts as failed */
    size_t hook_log_max;           /* hook.log is moved to hook.log.1 when it reaches this */
    size_t map_size;               /* largest size of the agent's store */
    int64_t signal_ack_due;        /* ms: a signal unacknowledged this long is overdue */
    int64_t referral_receipt_due;  /* ms: a referral not received this long is overdue */
    char master_key[512];          /* the master key the store is sealed under (file or credential:NAME) */
    char retention[SOFFA_RC_COUNT][64]; /* [retention]: the rule of each class */
    int64_t retention_every;       /* [retention] run_every (ms) */
    char metrics_listen[128];      /* [metrics] listen: HOST:PORT of the Prometheus endpoint, "" off */
} soffa_agent_cfg_t;

/*  One publish in flight. */
typedef struct {
    uint64_t local_id;             /* its outbox entry */
    int64_t sent_at;               /* monotonic µs */
} soffa_agent_flight_t;

struct soffa_agent {
    /* Configuration (soffa_agent.c) */
    char config_path[1024];
    soffa_agent_cfg_t cfg;             /* [agent] */
    soffa_school_cfg_t school_cfg;     /* [school], [ss12000] */
    soffa_web_cfg_t web;               /* [web] */
    char broker_pub[41], pub[41], sec[41];   /* Z85 keys: the broker's (of the pair in use), ours (sec is wiped at the end) */
    /* The broker, as listed: every key is tried on every endpoint, in
     * order, one attempt per turn of the loop; the pair that answered is
     * tried first the next time (soffa_agent_session). */
    char brokers[SOFFA_AGENT_BROKER_ALTS][256];
    size_t n_brokers;
    char broker_keys[SOFFA_AGENT_BROKER_ALTS][41];
    size_t n_broker_keys;
    char data_path[1024], control_path[1024];
    soffa_box_t *box;                  /* the outbox, inbox, sent log and access log */
    soffa_seal_master_t master;        /* [agent] master_key, loaded */
    soffa_retention_t retention;       /* [retention], parsed */
    int64_t next_dispose;              /* monotonic µs of the next gallring of this site's copies */
    soffa_school_t *school;            /* a school's change tracking (soffa_school) */
    void *ctx;                         /* the ZeroMQ context of every socket */
    void *control;                     /* the command line's control socket */
    /* The broker session (soffa_agent_session) */
    struct {
        soffa_agent_conn_t state;      /* changed only by soffa_agent_session's s_set_state */
        soffa_client_t *client;        /* set exactly while ONLINE */
        char mailbox[SOFFA_NAME_MAX];  /* our inbox at the broker ("" for a sender only) */
        soffa_role_t role;             /* as the broker's WELCOME said */
        int64_t last_heard;            /* monotonic µs: the broker's last frame */
        int64_t next_ping;             /* monotonic µs: the next PING */
        int64_t next_connect;          /* monotonic µs: no connect before */
        int64_t backoff_ms;            /* the wait after the next failed connect (doubles) */
        uint32_t broker_heartbeat_ms;  /* the broker's own heartbeat, from WELCOME */
        uint64_t status_receipt;       /* of the broker's last STATUS-REPLY on this connection */
        size_t cand;                   /* the pair to try next: endpoint cand / n_broker_keys, key cand % n_broker_keys */
        size_t cand_tried;             /* pairs tried in this round without an answer */
        const char *endpoint;          /* the endpoint of the session (or of the last attempt) */
        int64_t closed_at_us;          /* when the broker last closed our session (another connection took over) */
        char closed_why[256];
    } session;
    /* Outbox (soffa_agent_outbox) */
    struct {
        soffa_agent_flight_t flight[SOFFA_AGENT_OUT_WINDOW];   /* publishes in flight, in no order */
        size_t n_flight;
        uint64_t next;                 /* outbox entries up to this local id are in flight or done */
        int64_t resend_at;             /* monotonic µs: no sending before (after a transient refusal) */
        uint64_t refused;              /* publishes the broker refused since start */
        uint64_t gen;                  /* grows with every outbox change (the web's live view) */
    } outbox;
    /* Inbox (soffa_agent_inbox) */
    struct {
        int64_t last_delivery_us;      /* wall-clock µs of the last new delivery, 0: none since start */
    } inbox;
    /* Answers to control requests (soffa_agent_reply) */
    soffa_agent_waiter_t waiters[SOFFA_AGENT_WAITERS_MAX];
    /* The hook runner (soffa_agent_hook) */
    struct {
        pid_t pid;                     /* the running hook, 0 when none runs */
        uint64_t seq;                  /* the inbox record it handles */
        int64_t started;               /* monotonic µs: when it started */
        int64_t next_scan;             /* monotonic µs: no look for due records before */
        int in;                        /* write end of the hook's stdin, -1 when closed */
        char *text;                    /* the record being written to it (owned) */
        size_t len, off;               /* its length, and how much is written */
    } hook;
    /* Running counts for the metrics (soffa_agent_metrics), kept where they happen */
    struct {
        void *prom;                    /* soffa_prom_t: the endpoint, or NULL */
        uint64_t hook_runs;            /* hook runs finished since start */
        uint64_t hook_failures;        /* of those, failed or timed out */
        uint64_t parked;               /* inbox records whose hook gave up (counted at start, then kept) */
        uint64_t reloads, reload_failures;
        int64_t started_at_us;
    } stats;
    /* soffa-web's restricted control socket (soffa_agent_web) */
    void *webctl;                      /* NULL when [web] listen is empty */
    uint8_t access_key[32];            /* keys the youths' hashes in the site's access log */
};

/*  True while there is a session with the broker. */
static inline bool
soffa_agent_online(const soffa_agent_t *self)
{
    return self->session.state == SOFFA_AGENT_CONN_ONLINE;
}

#endif
