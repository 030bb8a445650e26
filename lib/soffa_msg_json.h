/*  soffa_msg_json: the JSON form of domain messages.
 *
 *  JSON form: field names as in proto/soffa_msg.proto; enumerations as their
 *  value names without the prefix ("SL_15_15_ABSENCE"; the prefixed name is
 *  accepted too); 16-byte ids as UUID text; other bytes as hex; business
 *  dates as "YYYY-MM-DD"; instants as integer Unix microseconds. The payload
 *  is one key named after its type, e.g. {"absence_reported": {...}}. The
 *  conversion is generic, through the protobuf-c descriptors.
 */
#ifndef SOFFA_MSG_JSON_H
#define SOFFA_MSG_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_err.h"
#include "soffa_msg.h"

/*  Builds a message from its JSON form. On failure `why` (may be NULL)
 *  names the offending field. Returns SOFFA_OK, SOFFA_ERR_MALFORMED
 *  (not JSON, unknown field, wrong type) or SOFFA_ERR_BAD_FIELD. */
soffa_err_t soffa_msg_from_json(const char *json, soffa_msg_t **out, char *why, size_t whylen);

/*  Returns the JSON text of msg (compact, keys in schema order), freed by
 *  the caller; NULL when out of memory. */
char *soffa_msg_to_json(const soffa_msg_t *msg);

/*  Sets field `path` (dotted, e.g. "scope.recipients") of `obj` (a jansson
 *  object holding the JSON form of message part `part`: "message" or a
 *  payload type name such as "absence_reported") from command-line text,
 *  coerced by the schema: numbers, true/false, codes by name, dates as
 *  YYYY-MM-DD, ids as UUID text ("new" makes a fresh UUIDv7), and repeated
 *  fields from comma-separated lists. Returns SOFFA_OK, or
 *  SOFFA_ERR_BAD_FIELD with `why` naming the field and what it takes. */
soffa_err_t soffa_msg_json_set(void *obj, const char *part, const char *path, const char *text, char *why,
                               size_t whylen);

/*  True if message part `part` ("message" or a payload type name) has a
 *  field called `field`. */
bool soffa_msg_has_field(const char *part, const char *field);

#endif
