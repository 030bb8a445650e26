/*  soffa_keys: CurveZMQ key files.
 *
 *  NAME.key holds "public = <Z85>" and "secret = <Z85>" lines and is created
 *  0600; NAME.pub holds the public key alone (one Z85 line, 40 characters)
 *  and may be shared. A secret key file that group or others can read is
 *  refused.
 */
#ifndef SOFFA_KEYS_H
#define SOFFA_KEYS_H

#include "soffa_err.h"

#define SOFFA_Z85_KEY 41   /* 40 characters and NUL */

/*  Writes a fresh key pair to PATH.key and PATH.pub (PATH without suffix).
 *  Refuses to overwrite: SOFFA_ERR_EXISTS. */
soffa_err_t soffa_keys_generate(const char *path);

/*  Loads a secret key file (PATH.key or the exact path given).
 *  Returns SOFFA_OK, SOFFA_ERR_NOT_FOUND, SOFFA_ERR_PERMISSION (readable by
 *  others) or SOFFA_ERR_MALFORMED. */
soffa_err_t soffa_keys_load_secret(const char *file, char public_z85[SOFFA_Z85_KEY],
                                   char secret_z85[SOFFA_Z85_KEY]);

/*  Loads a public key: a .pub file, or a .key file (its public line).
 *  Returns SOFFA_OK, SOFFA_ERR_NOT_FOUND or SOFFA_ERR_MALFORMED. */
soffa_err_t soffa_keys_load_public(const char *file, char public_z85[SOFFA_Z85_KEY]);

/*  True if text is a 40-character Z85 key that decodes. */
int soffa_keys_valid_z85(const char *text);

#endif
