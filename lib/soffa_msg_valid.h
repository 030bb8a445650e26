/*  soffa_msg_valid: validation of domain messages.
 *
 *  soffa_msg_validate() is the one validation every part of soffa calls:
 *  identifier checksums, known municipality codes, enum values (from the
 *  schema's descriptors), strict forms of code fields, string lengths and
 *  the fields each type requires.
 */
#ifndef SOFFA_MSG_VALID_H
#define SOFFA_MSG_VALID_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_err.h"
#include "soffa_msg.h"

/*  Checks every field of msg against the schema's rules: required fields per
 *  type, identifier checksums, municipality codes, enum ranges, string
 *  lengths, real dates. now_us is the reference time (0 = now).
 *  On failure `why` (may be NULL) gets "field.path: what is wrong".
 *  Returns SOFFA_OK or the code of the first problem found. */
soffa_err_t soffa_msg_validate(const soffa_msg_t *msg, int64_t now_us, char *why, size_t whylen);

#endif
