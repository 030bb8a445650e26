/*  soffa_cli_keys: keys on the command line: `soffa keygen` (a CurveZMQ
 *  key pair), `soffa masterkey new` (a master key) and reading the broker's checkpoint public key that `soffa
 *  verify` and `soffa backup` check a store against.
 */
#ifndef SOFFA_CLI_KEYS_H
#define SOFFA_CLI_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "soffa_cli.h"

/*  `soffa keygen NAME`: writes NAME.key (0600) and NAME.pub, never over
 *  existing files, and prints the public key. Returns the exit status. */
int soffa_cli_keys_keygen(soffa_cli_t *c);

/*  `soffa masterkey new FILE`: a master key (64 hex digits, 0600), never
 *  over an existing file. Returns the exit status. */
int soffa_cli_keys_masterkey(soffa_cli_t *c);

/*  Reads a 32-byte key given as 64 hex digits, or as the first line of a
 *  file holding them. Returns false (out undefined) when it is neither. */
bool soffa_cli_keys_read_hex(const char *text_or_file, uint8_t out[32]);

#endif
