/*  soffa_agent_session: the agent's one session with the broker.
 *
 *  Connection states and their changes (soffa_agent_session_state_name;
 *  every change goes through one function, which logs it at debug level):
 *
 *    OFFLINE --connect--> ONLINE         greeted; subscribed to our mailbox; the outbox flows
 *    OFFLINE --connect fails--> OFFLINE  tried again after a backoff that doubles up to
 *                                        [agent] reconnect_max_ms
 *    ONLINE --heartbeats unanswered--> OFFLINE     tried again after the backoff
 *    ONLINE --ERROR PROTOCOL_STATE--> OFFLINE      the broker forgot us (it restarted): at once
 *    ONLINE --ERROR SESSION_CLOSED--> CLOSED       another connection took our key: tried
 *                                                  again only after reconnect_max_ms
 *    CLOSED --connect--> ONLINE, CLOSED --connect fails--> OFFLINE
 *
 *  ONLINE is the only state with a client (self->session.client). When a
 *  session ends, what is in flight is sent again from the outbox on the
 *  next one (soffa_agent_outbox_rewind), a replay waiting for records is
 *  refused, and a status is answered with what the agent knows.
 *
 *  Frames from the broker (each answer names the tag of its request):
 *    S:DELIVER tag 0     a delivery of our subscription: stored, then ACKed (soffa_agent_inbox)
 *    S:DELIVER tag T     a record of replay T, gathered; REPLAY-ACK once the batch is read
 *    S:REPLAY-END tag T  the replay is complete: its records go to the asker
 *    S:PUBLISH-ACK tag L the broker took outbox entry L (soffa_agent_outbox)
 *    S:ERROR tag L|T|0   a publish or replay refused; with tag 0 SESSION_CLOSED or
 *                        PROTOCOL_STATE end the session, anything else is logged
 *    S:STATUS-REPLY tag T  the broker's view of our mailboxes, for `soffa status`
 *    S:PONG              heard (any frame is)
 *  The agent sends PING every heartbeat_ms (at most half the broker's
 *  heartbeat), and ends the session when it has heard nothing for three.
 */
#ifndef SOFFA_AGENT_SESSION_H
#define SOFFA_AGENT_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "soffa_agent.h"
#include "soffa_err.h"
#include "soffa_wire.h"

/*  The connection states, with their names for the log. */
#define SOFFA_AGENT_CONN_STATES(X)                                                                  \
    X(OFFLINE, "offline") /* no session; the next connect is tried at session.next_connect */     \
    X(ONLINE, "online")   /* a session: publishes flow, deliveries arrive, heartbeats go */       \
    X(CLOSED, "closed")   /* the broker closed the session (another connection has our key) */

typedef enum {
#define S_STATE_ENUM(name, text) SOFFA_AGENT_CONN_##name,
    SOFFA_AGENT_CONN_STATES(S_STATE_ENUM)
#undef S_STATE_ENUM
} soffa_agent_conn_t;

/*  The state's name ("offline", "online", "closed"). */
const char *soffa_agent_session_state_name(soffa_agent_conn_t state);

/*  Before the poll: connects when offline and the backoff has passed, and
 *  sends the outbox on a new session. */
void soffa_agent_session_tick(soffa_agent_t *self, int64_t now);

/*  The socket to poll for the broker's frames, or NULL when offline. */
void *soffa_agent_session_socket(soffa_agent_t *self);

/*  Reads what the broker sent (up to 1024 frames) and hands each to the
 *  inbox, the outbox or the request that waits for it. */
void soffa_agent_session_read(soffa_agent_t *self);

/*  After the poll: pings the broker when due, and ends the session when it
 *  has not been heard from for three heartbeats. */
void soffa_agent_session_heartbeat(soffa_agent_t *self, int64_t now);

/*  A new tag for a request on this session (0 when offline). */
uint64_t soffa_agent_session_next_tag(soffa_agent_t *self);

/*  Sends one frame on the session. Returns SOFFA_OK, SOFFA_ERR_UNAVAILABLE
 *  when offline, or the transport's error. */
soffa_err_t soffa_agent_session_send(soffa_agent_t *self, const soffa_frame_t *f);

/*  Closes the connection without a word to the broker (the agent is going
 *  away). */
void soffa_agent_session_close(soffa_agent_t *self);

#endif
