/*  soffa_retain: gallring in the broker: disposal runs and erasures.
 *
 *  The rules are lib/soffa_retention's and the schedule the store's
 *  (soffa_store_dispose); this module runs them: at start and then every
 *  [retention] run_every, with the commit pipeline drained (the main thread
 *  holds the store alone while a run lasts), and afterwards brings the
 *  broker's mailbox counters up to date so that readers get the disposal
 *  records.
 */
#ifndef SOFFA_RETAIN_H
#define SOFFA_RETAIN_H

#include "soffa_broker_int.h"

/*  Disposes of everything that has run out by now (in runs of the store's
 *  size until nothing due is left). Returns SOFFA_OK or the store's error
 *  (logged; the next run tries again). */
soffa_err_t soffa_retain_run(soffa_broker_t *self);

/*  Runs disposal when it is due (from the loop). */
void soffa_retain_tick(soffa_broker_t *self);

/*  The schedule of a record an upgrade seals (soffa_store_sched_fn; ctx is
 *  the broker): as the broker would have set it when it was stored. */
void soffa_retain_upgrade_sched(void *ctx, const uint8_t *env, size_t len, soffa_store_sched_t *out);

/*  An agent's own mailbox ("" for the broker and unknown names). */
const char *soffa_retain_inbox_of(void *ctx, const char *agent);

/*  ERASE from a session: a data-protection officer's key (an auditor named
 *  in [retention] erasure_by) erases every record of one young person.
 *  Answers ERASED (how many, the disposal records) or ERROR. */
void soffa_retain_on_erase(soffa_broker_t *self, soffa_session_t *s, const soffa_frame_t *f);

/*  Fills the store's disposal options from the configuration. */
void soffa_retain_opts(soffa_broker_t *self, soffa_store_dispose_opts_t *o, char texts[SOFFA_RC_COUNT][64]);

#endif
