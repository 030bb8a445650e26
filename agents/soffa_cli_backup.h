/*  soffa_cli_backup: `soffa backup DEST --config BROKER.INI`, a verified hot
 *  copy of a running broker's store, made on the broker's host.
 *
 *  The copy is compacted, as of one commit, without holding the broker up
 *  (soffa_store_backup); it is verified like `soffa verify` before it is
 *  reported done, and on any failure nothing is left at DEST. The
 *  checkpoint signing key never goes into a backup.
 */
#ifndef SOFFA_CLI_BACKUP_H
#define SOFFA_CLI_BACKUP_H

#include "soffa_cli.h"

/*  Returns 0 (done and verified), 1 (failed) or 2 (usage). */
int soffa_cli_backup_cmd(soffa_cli_t *c);

#endif
