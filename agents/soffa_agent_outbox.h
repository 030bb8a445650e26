/*  soffa_agent_outbox: what this agent sends. A message from a control
 *  socket is completed (ids, thread, and what an answer copies from the
 *  message it answers), validated, and committed to the outbox before the
 *  request is answered; it leaves the outbox only when the broker has
 *  acknowledged it, or refused it for good.
 *
 *  Sending: up to SOFFA_AGENT_OUT_WINDOW publishes are in flight, oldest
 *  first, each tagged with its outbox entry. A transient refusal (a full
 *  store, say) holds the whole outbox back for a second and then sends it
 *  again from the start; so does a session that ends, and a publish left
 *  unanswered for SOFFA_AGENT_RESEND_US. A message sent again keeps its id,
 *  so the broker takes it once.
 *
 *  Awaited answers: a signal the broker accepted awaits its
 *  acknowledgement, a referral its receipt; past [agent] signal_ack_due or
 *  referral_receipt_due they are overdue (soffa_agent_outbox_overdue).
 */
#ifndef SOFFA_AGENT_OUTBOX_H
#define SOFFA_AGENT_OUTBOX_H

#include <jansson.h>
#include <stdint.h>

#include "soffa_agent.h"
#include "soffa_agent_reply.h"
#include "soffa_wire.h"

/*  {"cmd":"send", "message":{...}, "re":"ID, seq or last", "wait_ms":N}:
 *  commits the message to the outbox and answers: refused (it does not
 *  validate, or `re` names no inbox record), accepted or refused by the
 *  broker within wait_ms (at most 60 s), or queued. */
void soffa_agent_outbox_submit(soffa_agent_t *self, const soffa_agent_req_t *req);

/*  Sends the entries not yet in flight, up to the window; nothing without a
 *  session or while the outbox is held back. */
void soffa_agent_outbox_send(soffa_agent_t *self);

/*  One round of the loop with a session: a publish unanswered for
 *  SOFFA_AGENT_RESEND_US sends the outbox again from the start; then sends. */
void soffa_agent_outbox_tick(soffa_agent_t *self, int64_t now);

/*  Forgets what is in flight: the next send starts from the oldest entry
 *  (the session ended). */
void soffa_agent_outbox_rewind(soffa_agent_t *self);

/*  The broker's PUBLISH-ACK or ERROR for the publish tagged f->tag: closes
 *  the entry (accepted or refused for good) or keeps it (transient), and
 *  answers the request that waits for it. */
void soffa_agent_outbox_answer(soffa_agent_t *self, const soffa_frame_t *f);

/*  Counts what this agent sent that waits for its answer past the deadline
 *  into *signals and *referrals (either may be NULL), and appends one
 *  object for each to list (may be NULL): {message_id, type, sent_at,
 *  waiting_for, overdue_s}. */
void soffa_agent_outbox_overdue(soffa_agent_t *self, json_t *list, uint64_t *signals, uint64_t *referrals);

#endif
