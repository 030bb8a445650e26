/*  soffa_agent_hook: the hook runner. Each delivered message is fed, one at
 *  a time and oldest first, to the command of [agent] hook: `sh -c HOOK`,
 *  with the record as one JSON line on its stdin and SOFFA_SEQ, SOFFA_TYPE
 *  and SOFFA_AGENT in its environment, stdout and stderr appended to
 *  DATA_DIR/hook.log.
 *
 *  Exit status 0 marks the record done. A failure, or a hook that runs
 *  past hook_timeout_ms (it is killed), is tried again after
 *  hook_backoff_ms, doubling up to a minute, and parked as failed after
 *  hook_retries attempts (`soffa inbox --failed`, `soffa retry`). The
 *  attempt count is kept with the record in the inbox, so a restart does
 *  not reset it.
 *
 *  A hook inherits nothing of the agent: every descriptor the agent holds is
 *  close-on-exec (the LMDB box, ZeroMQ's sockets, files), the child closes
 *  any other above stderr before it runs the hook, and the record reaches
 *  the hook through a pipe on its stdin, never through a file. The pipe is
 *  written without blocking, so a hook that does not read cannot stall the
 *  agent.
 */
#ifndef SOFFA_AGENT_HOOK_H
#define SOFFA_AGENT_HOOK_H

#include "soffa_agent.h"

/*  One round of the loop: feeds the running hook, reaps it (or kills it
 *  past its timeout) and records the outcome, then starts the next record
 *  that is due. Does nothing without [agent] hook. */
void soffa_agent_hook_tick(soffa_agent_t *self);

/*  Looks for work at the next tick (a record was set back to new). */
void soffa_agent_hook_wake(soffa_agent_t *self);

/*  At shutdown: closes the running hook's input (what it has not read by
 *  now it will not get) and waits for it to finish. */
void soffa_agent_hook_stop(soffa_agent_t *self);

/*  Frees what the runner holds (the input pipe and text); the agent calls
 *  it once, when it goes away. */
void soffa_agent_hook_fini(soffa_agent_t *self);

#endif
