/*  soffa_agent_inbox: what the broker delivers to this agent, and reading
 *  it back for the control sockets.
 *
 *  Durability order: a batch of deliveries is committed to the inbox
 *  (soffa_box) before it is acknowledged to the broker, and only up to the
 *  first damaged one (its hash does not match, or it does not decode);
 *  what is not acknowledged the broker delivers again, and a sequence
 *  delivered before is dropped. With a hook configured a record starts as
 *  new (for the hook runner), else as done.
 *
 *  A delivered acknowledgement or referral status closes what this agent
 *  awaits (a signal's acknowledgement, a referral's receipt).
 */
#ifndef SOFFA_AGENT_INBOX_H
#define SOFFA_AGENT_INBOX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_agent.h"
#include "soffa_box.h"
#include "soffa_wire.h"

/*  Stores n DELIVER frames of the subscription (in order) and acknowledges
 *  the last one stored to the broker; wakes the web's watchers. The frames
 *  stay the caller's. */
void soffa_agent_inbox_deliver(soffa_agent_t *self, soffa_frame_t *frames, size_t n);

/*  One inbox record as JSON (soffa_record_json) with "state" (new, done or
 *  failed: the hook's) and "hook_attempts". New reference, or NULL when the
 *  record does not decode. */
json_t *soffa_agent_inbox_record(const soffa_box_in_t *in);

/*  The record with this message id (UUID text), sequence number, or
 *  "last" (the newest). New reference, or NULL when there is none. */
json_t *soffa_agent_inbox_lookup(soffa_agent_t *self, const char *id);

/*  Records after sequence `after`, oldest first, at most `limit` of them
 *  (only those parked after their hook failed when failed_only). New
 *  reference to an array. */
json_t *soffa_agent_inbox_list(soffa_agent_t *self, uint64_t after, bool failed_only, size_t limit);

#endif
