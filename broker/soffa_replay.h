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
 * caller fills the sender) for access log `mailbox`. */
void soffa_replay_access_queue(soffa_broker_t *self, soffa_pending_t *p, const soffa_session_t *s, soffa_access_state_t state, uint64_t records, uint64_t opened_seq, soffa_pending_kind_t kind, const char *mailbox);

/* A read under way is cut off: each controller's access log records how far
 * it got. */
void soffa_replay_cut_off(soffa_broker_t *self, soffa_session_t *s);

/* One of the read's access records (controller `index`, record seq) is
 * durable; true when all of them are (the read may begin, or end). */
bool soffa_replay_access_durable(soffa_session_t *s, uint64_t index, uint64_t seq);

/* Releases what a read holds (its window, its controllers). */
void soffa_replay_end(soffa_session_t *s);

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
