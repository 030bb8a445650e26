/*  soffa_status: awaited answers and STATUS replies.
 *
 *  Signals wait for an acknowledgement and referrals for a receipt; past
 *  their deadline they count as overdue. STATUS replies come from running
 *  counts, one reply in flight per session.
 */
#ifndef SOFFA_STATUS_H
#define SOFFA_STATUS_H

#include "soffa_broker_int.h"

/* A signal (kind 'A') or referral (kind 'S') now waits for its answer. */
void soffa_status_await_add(soffa_broker_t *self, char kind, const uint8_t id[16], soffa_mailbox_t *m, int64_t received_us);

/* The answer came: the entry goes (from the counts too). */
void soffa_status_await_answered(soffa_broker_t *self, char kind, const uint8_t id[16]);

/* Marks what has passed its deadline; cheap: it looks only at the first
 * entries not yet overdue. */
void soffa_status_await_tick(soffa_broker_t *self);

/* Records EXPIRED for each referral nobody answered within
 * referral_expiry (once each); from the loop, never inside a commit. */
void soffa_status_expire_tick(soffa_broker_t *self);

/* An answer to it is on its way to the store: the entry does not expire
 * (it goes when the answer is stored). */
void soffa_status_await_hold(soffa_broker_t *self, char kind, const uint8_t id[16]);

/* Loads the awaited answers at start (their number, not the history). */
soffa_err_t soffa_status_await_load(soffa_broker_t *self);

/* The counts of one mailbox, as STATUS-REPLY and the metrics give them:
 * depth and overdue answers from running counts; the lag behind the
 * slowest reader (connected, else the stored cursors of the agents whose
 * inbox it is) and the receive time of the oldest record it has not
 * acknowledged from one seek each, never a scan. */
void soffa_status_mailbox(soffa_broker_t *self, const soffa_mailbox_t *m, soffa_mailbox_status_t *out);

/* STATUS-REQUEST: counts per mailbox the session may read, one reply at
 * a time. */
void soffa_status_on_request(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

#endif
