/*  soffa_cli_status: `soffa status`, the health of this agent and of the
 *  broker as this agent sees it.
 *
 *  It asks the agent for its state and the broker's view of the mailboxes
 *  the agent may see, samples the outbox a second time to see it drain, and
 *  sums it all up as Nagios-style checks read it: the exit status is 0 (ok),
 *  1 (warning) or 2 (critical), and so is the last line ("health" in JSON).
 */
#ifndef SOFFA_CLI_STATUS_H
#define SOFFA_CLI_STATUS_H

#include "soffa_cli.h"

/*  Returns the health level (0, 1, 2) as the exit status; 2 for usage
 *  errors too. */
int soffa_cli_status_cmd(soffa_cli_t *c);

#endif
