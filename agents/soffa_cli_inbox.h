/*  soffa_cli_inbox: the commands that read this agent's inbox: `soffa
 *  inbox` (what was delivered, and what this agent sent that is overdue),
 *  `soffa show` (one message in full, or the outcome of one sent), `soffa
 *  watch` (messages as they arrive) and `soffa retry` (a parked message to
 *  the hook again).
 *
 *  Each takes the command line's context (argv[0] is the command's name)
 *  and returns the exit status.
 */
#ifndef SOFFA_CLI_INBOX_H
#define SOFFA_CLI_INBOX_H

#include "soffa_cli.h"

int soffa_cli_inbox_list(soffa_cli_t *c);
int soffa_cli_inbox_show(soffa_cli_t *c);

/*  Polls the agent until SIGINT or SIGTERM (which it catches). */
int soffa_cli_inbox_watch(soffa_cli_t *c);
int soffa_cli_inbox_retry(soffa_cli_t *c);

#endif
