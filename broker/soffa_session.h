/*  soffa_session: sessions: who is on which connection.
 *
 *  A session is one agent key on one connection. It is created by HELLO
 *  (or found by routing id), touched by every frame, and ends when its
 *  connection goes (the router's monitor), when it is silent too long
 *  (expiry, oldest first), or when a newer session takes its place
 *  (closed with a reason, its connection cut after a grace period).
 */
#ifndef SOFFA_SESSION_H
#define SOFFA_SESSION_H

#include "soffa_broker_int.h"

/* NEW, READY, REPLAY-OPENING, ... for logs. */
const char *soffa_session_state_name(soffa_session_state_t st);

/* Marks the session heard now (the newest end of the expiry list). */
void soffa_session_touch(soffa_broker_t *self, soffa_session_t *s);

/* Takes the session off the list of replays under way. */
void soffa_session_replaying_remove(soffa_broker_t *self, soffa_session_t *s);

/* Ends what a session holds: its readers (positions saved), a replay under
 * way (recorded as cut off), its place in its key's count. */
void soffa_session_release(soffa_broker_t *self, soffa_session_t *s);

/* Closes a session whose connection is alive: its agent hears why (an
 * ERROR with code), it is answered no more, and its connection is cut a
 * moment later (libzmq's ROUTER cannot close one peer, so the broker shuts
 * the socket down; libzmq then tears the connection down as if the peer had
 * gone, which frees what was queued for it). */
void soffa_session_close(soffa_broker_t *self, soffa_session_t *s, soffa_err_t code, const char *why);

/* Forgets a session entirely (a closed one has its connection cut first). */
void soffa_session_forget(soffa_broker_t *self, soffa_session_t *s, const char *why);

/* Cuts the connections of closed sessions whose grace period is over. */
void soffa_session_cut_due(soffa_broker_t *self);

/* Sessions silent for longer than expiry_ms at the last moment the broker
 * had read everything queued (last_drain), not at wall-clock now: a broker
 * that stalls (a slow disk) must not take the pings waiting in its own queue
 * for silence. Oldest first, so this stops at the first one heard recently. */
void soffa_session_expire(soffa_broker_t *self);

/* A router's monitor: a connection closed, or a socket was accepted on an
 * fd that an old session still names. Either way that session is gone. */
void soffa_session_monitor(soffa_broker_t *self, void *monitor);

/* A new session for a frame under routing id rid, from agent ident
 * authenticated with key on socket fd; the session takes a reference to
 * ident. Over the agent's limit, its oldest session is closed. */
soffa_session_t *soffa_session_new(soffa_broker_t *self, const uint8_t *rid, soffa_ident_t *ident, const uint8_t key[32],
                                   int fd);

/* Moves a session to another state (logged at debug level). */
void soffa_session_set_state(soffa_session_t *s, soffa_session_state_t to);

/* The session under routing id rid, or NULL. */
soffa_session_t *soffa_session_of(soffa_broker_t *self, const uint8_t *rid);

#endif
