/*  soffa_maint: the broker's offline maintenance: store upgrades.
 *
 *  Run by soffa-broker with the broker stopped (`--upgrade-store`): it
 *  refuses while another process has the store open. An upgrade converts
 *  the store in place, so it copies the old store first into a new
 *  directory the operator names (`--backup DIR`; there is no upgrade
 *  without it), checks the copy, converts, and verifies the converted
 *  store's chain with the master key before it reports success.
 */
#ifndef SOFFA_MAINT_H
#define SOFFA_MAINT_H

#include <stdio.h>

#include "soffa_broker_int.h"

/*  Upgrades the store of a configured (not opened) broker to the current
 *  format, after copying it to backup_dir (a new directory). Prints what it
 *  did to out. Returns SOFFA_OK (also when there was nothing to do), or the
 *  error with why: SOFFA_ERR_CONFIG (no backup directory), SOFFA_ERR_EXISTS
 *  (it exists), SOFFA_ERR_UNAVAILABLE (the store is open elsewhere: the broker
 *  runs), SOFFA_ERR_MASTER_KEY, SOFFA_ERR_VERSION or a store error. */
soffa_err_t soffa_maint_upgrade(soffa_broker_t *self, const char *backup_dir, FILE *out, char *why, size_t whylen);

/*  Master-key rotation (--rotate-master-key FILE): with the broker stopped,
 *  wraps the store's epoch key under the master key in FILE instead of the
 *  one [keys] master_key names (see soffa_store_master_rotate), so that the
 *  old key can be destroyed once the backups made under it are gone. The
 *  new key obeys the rules of [keys] master_key (owner-only, outside the
 *  data directory). Prints what it did and what the operator does next.
 *  Returns SOFFA_OK or the error with why: SOFFA_ERR_UNAVAILABLE (the broker
 *  runs), SOFFA_ERR_MASTER_KEY (either key refused), SOFFA_ERR_EXISTS (the
 *  same key), SOFFA_ERR_NOT_FOUND (no store) or a store error. */
soffa_err_t soffa_maint_rotate_master(soffa_broker_t *self, const char *new_key, FILE *out, char *why, size_t whylen);

#endif
