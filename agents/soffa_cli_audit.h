/*  soffa_cli_audit: the auditor's commands: `soffa replay` (the stored
 *  history within the auditor's scope), `soffa history` (one young
 *  person's timeline), `soffa access-log` (who read what, when), `soffa
 *  stats` (a municipality's KAA key figures, soffa_stats) and `soffa
 *  verify` (a broker's store checked offline against its signed
 *  checkpoints, and against the checkpoints an auditor received).
 *
 *  Every read through the broker is itself recorded in the log; verify
 *  reads a store directly, read-only, and needs no broker. Each command
 *  takes the command line's context and returns the exit status.
 */
#ifndef SOFFA_CLI_AUDIT_H
#define SOFFA_CLI_AUDIT_H

#include "soffa_cli.h"

int soffa_cli_audit_replay(soffa_cli_t *c);
int soffa_cli_audit_history(soffa_cli_t *c);
int soffa_cli_audit_access_log(soffa_cli_t *c);
int soffa_cli_audit_stats(soffa_cli_t *c);

/*  Returns 0 when the store is intact and vouched for, 1 when it is broken
 *  or not vouched for (or cannot be read), 2 for usage errors. */
int soffa_cli_audit_verify(soffa_cli_t *c);

/*  `soffa erase --pupil ID --reason CODE`: a data-protection officer's
 *  agent asks the broker to erase one young person's records. Returns the
 *  exit status. */
int soffa_cli_audit_erase(soffa_cli_t *c);

#endif
