/*  soffa_replay: audit replays and their access records.
 *
 *  A replay is opened by an access record that is durable before the first
 *  record goes out, yields after a bounded scan so others get their turn, and
 *  is closed by a record of what was sent (or of its being cut off).
 */
#ifndef SOFFA_REPLAY_H
#define SOFFA_REPLAY_H

#include "soffa_broker_int.h"

/* Fills p with an access record of session s's read (s may be NULL: the
 * caller fills the sender). */
void soffa_replay_access_queue(soffa_broker_t *self, soffa_pending_t *p, const soffa_session_t *s, soffa_access_state_t state, uint64_t records, uint64_t opened_seq, soffa_pending_kind_t kind);

/* Sends what the replay's window allows, examining at most
 * SOFFA_REPLAY_SCAN_MAX records per turn: a scope-limited replay that skips
 * millions of records yields to everyone else between turns. */
void soffa_replay_pump(soffa_broker_t *self, soffa_session_t *s);

/* The opening record is durable: the read begins. */
void soffa_replay_begin(soffa_broker_t *self, soffa_session_t *s);

/* REPLAY: an auditor's read of the log, a mailbox or a subject; opened by
 * its access record. */
void soffa_replay_on_request(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

/* REPLAY-ACK: the auditor read up to a sequence; its window grows. */
void soffa_replay_on_replay_ack(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

#endif
