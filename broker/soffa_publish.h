/*  soffa_publish: reads a PUBLISH: checks, decides, queues for commit.
 *
 *  A publish is decoded, checked against its sender's claims and the policy,
 *  stored in canonical form and handed to the commit pipeline; a consent
 *  withdrawal queues notices for its referrals as follow-ups.
 */
#ifndef SOFFA_PUBLISH_H
#define SOFFA_PUBLISH_H

#include "soffa_broker_int.h"

/* Adds to p the state changes its record brings: the answer it awaits or
 * gives (dec), a subject's protected identity (v). */
void soffa_publish_state_ops(soffa_broker_t *self, soffa_pending_t *p, const soffa_msg_view_t *v);

/* Queues what must follow a commit (a ready record, or a withdrawal's
 * notices) for the loop to add to a later batch; never a commit of its own. */
void soffa_publish_followup_push(soffa_broker_t *self, soffa_followup_t *f);

/* Adds queued follow-ups to the pending batch while it has room: every
 * referral of a withdrawn consent gets its notice, however many there are,
 * a batch at a time. */
void soffa_publish_followups_run(soffa_broker_t *self);

/* PUBLISH: checked, decided, stored in canonical form and queued for the
 * next commit; answered after it. */
void soffa_publish_on_request(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

#endif
