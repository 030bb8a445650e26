/*  soffa_agent_reply: answering the requests of the agent's control
 *  sockets (the command line's and soffa-web's), at once or later.
 *
 *  A request that waits for something (the broker's answer to a publish, a
 *  status or a replay; a change the web's live view waits for) holds a
 *  waiter: a slot that remembers who asked on which socket, until when,
 *  and what has been gathered so far. Whatever happens first answers it:
 *  what it waited for, the deadline (soffa_agent_reply_expire), or the end
 *  of the broker session (soffa_agent_reply_session_lost). Every request
 *  gets exactly one answer, {"ok":true, ...} or {"ok":false, "code":NAME,
 *  "error":text}; there are SOFFA_AGENT_WAITERS_MAX waiters at most.
 */
#ifndef SOFFA_AGENT_REPLY_H
#define SOFFA_AGENT_REPLY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_agent.h"
#include "soffa_err.h"
#include "soffa_wire.h"

#define SOFFA_AGENT_WAITERS_MAX 256
#define SOFFA_AGENT_RID_MAX 256    /* longest routing id a request may carry */

/*  One request read from a control socket. */
typedef struct {
    void *sock;                    /* the ROUTER socket it came on: the answer goes back there */
    const uint8_t *rid;            /* the asker's routing id (borrowed, at most SOFFA_AGENT_RID_MAX bytes) */
    size_t rid_len;
    json_t *body;                  /* the request object (borrowed), or NULL when it was not JSON */
} soffa_agent_req_t;

/*  What a waiter waits for. */
typedef enum {
    SOFFA_AGENT_WAIT_SEND,         /* the broker's answer to a publish; key: the outbox entry */
    SOFFA_AGENT_WAIT_STATUS,       /* the broker's STATUS-REPLY; key: its tag */
    SOFFA_AGENT_WAIT_REPLAY,       /* a replay's records and REPLAY-END; key: its tag */
    SOFFA_AGENT_WAIT_WATCH         /* a change in the inbox or the sent log (soffa-web's live view) */
} soffa_agent_wait_kind_t;

typedef struct {
    bool used;                     /* the slot holds a request */
    soffa_agent_wait_kind_t kind;
    uint8_t rid[SOFFA_AGENT_RID_MAX]; /* the asker's routing id */
    size_t rid_len;
    uint64_t key;                  /* SEND: outbox local id; STATUS/REPLAY: tag; WATCH: 0 */
    int64_t deadline;              /* monotonic µs: answered by soffa_agent_reply_expire after this */
    json_t *acc;                   /* STATUS: the agent's own part; REPLAY: the records so far (owned) */
    uint8_t msg_id[16];            /* SEND: the message's id, for the "queued" answer */
    uint64_t rp_seq;               /* REPLAY: the last record read, not yet acknowledged (0: none) */
    uint8_t rp_hash[SOFFA_HASH_LEN]; /* REPLAY: that record's hash */
    void *sock;                    /* the control socket the request came on */
} soffa_agent_waiter_t;

/*  Sends answer to the asker of req (takes ownership of answer; NULL sends
 *  nothing). Never blocks: an asker that went away loses its answer. */
void soffa_agent_reply(const soffa_agent_req_t *req, json_t *answer);

/*  A refusal: {"ok":false, "code":NAME, "error":text, or rc's own text
 *  when text is NULL or empty}. New reference. */
json_t *soffa_agent_reply_fail(soffa_err_t rc, const char *text);

/*  Takes a waiter for req, answered within wait_ms. Returns NULL when all
 *  SOFFA_AGENT_WAITERS_MAX are taken (the caller answers at once). */
soffa_agent_waiter_t *soffa_agent_reply_later(soffa_agent_t *self, const soffa_agent_req_t *req,
                                              soffa_agent_wait_kind_t kind, uint64_t key, int wait_ms);

/*  The waiter of this kind and key, or NULL. */
soffa_agent_waiter_t *soffa_agent_reply_find(soffa_agent_t *self, soffa_agent_wait_kind_t kind, uint64_t key);

/*  Answers the waiter (takes ownership of answer), drops what it gathered
 *  and frees its slot. */
void soffa_agent_reply_done(soffa_agent_waiter_t *w, json_t *answer);

/*  Frees the slot of a waiter that was taken but will not wait after all
 *  (its request was answered otherwise). */
void soffa_agent_reply_cancel(soffa_agent_waiter_t *w);

/*  Answers every waiter whose deadline is past `now` (monotonic µs) with
 *  what there is: SEND "queued", STATUS the agent's own part, WATCH the
 *  current state, REPLAY a TIMEOUT refusal. */
void soffa_agent_reply_expire(soffa_agent_t *self, int64_t now);

/*  The broker session ended: a replay cannot survive it and is refused now;
 *  a status is answered at the next expiry with what the agent knows; a
 *  sent message keeps its waiter (it goes out again after the reconnect). */
void soffa_agent_reply_session_lost(soffa_agent_t *self);

/*  {"ok":true, "inbox_last", "sent_gen", "connected"}: what soffa-web's live
 *  view compares. New reference. */
json_t *soffa_agent_reply_watch_state(soffa_agent_t *self);

/*  Answers every WATCH waiter: the inbox or the sent log changed. */
void soffa_agent_reply_wake_watchers(soffa_agent_t *self);

/*  Drops every waiter without an answer (the agent is going away). */
void soffa_agent_reply_fini(soffa_agent_t *self);

#endif
