/*  soffa_cli_msg: the commands that hand one message to the local agent:
 *  `soffa send TYPE --field VALUE ...` and its friendly names (`soffa
 *  signal absence`, `soffa case open`, `soffa refer af`, ...).
 *
 *  The message is built from flags, checked here as far as a flag can be
 *  (identity numbers, municipality codes, dates, field names and values),
 *  and handed to the agent, which validates it in full, makes it durable in
 *  its outbox before it answers, and waits up to --wait MS for the broker's
 *  word: accepted (where it went), refused (why), or queued.
 */
#ifndef SOFFA_CLI_MSG_H
#define SOFFA_CLI_MSG_H

#include <stdbool.h>
#include <stdio.h>

#include "soffa_cli.h"

/*  Prints one usage line for each friendly name and one for `send TYPE`. */
void soffa_cli_msg_usage(FILE *out);

/*  Runs c->argv when it is a message command ("send" or a friendly name):
 *  sets *status to the exit status and returns true. Returns false, with
 *  nothing printed, when c->argv[0] is no message command. */
bool soffa_cli_msg_run(soffa_cli_t *c, int *status);

#endif
