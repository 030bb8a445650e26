/*  soffa_uuid: 16-byte ids. Message ids are UUIDv7 (time-ordered, RFC 9562). */
#ifndef SOFFA_UUID_H
#define SOFFA_UUID_H

#include <stdbool.h>
#include <stdint.h>

#define SOFFA_UUID_LEN 16
#define SOFFA_UUID_STR 37   /* 36 characters and NUL */

/*  Fills out with a new UUIDv7 for the current time. */
void soffa_uuid7(uint8_t out[SOFFA_UUID_LEN]);

/*  Fills out with a UUIDv7 that is a function of its inputs: the 48-bit
 *  timestamp is unix_ms, the 74 other bits come from `bits` (e.g. a keyed
 *  hash of what the id names). The same inputs give the same id, so an id
 *  derived from a change is the same however often the change is seen. */
void soffa_uuid7_derived(int64_t unix_ms, const uint8_t bits[10], uint8_t out[SOFFA_UUID_LEN]);

/*  True if id has version 7 and the RFC 9562 variant. */
bool soffa_uuid_is_v7(const uint8_t id[SOFFA_UUID_LEN]);

/*  True if all 16 bytes are zero. */
bool soffa_uuid_is_nil(const uint8_t id[SOFFA_UUID_LEN]);

/*  Formats id as 8-4-4-4-12 lower-case hex. */
void soffa_uuid_format(const uint8_t id[SOFFA_UUID_LEN], char out[SOFFA_UUID_STR]);

/*  Parses 32 hex digits with or without the dashes. Returns false on error. */
bool soffa_uuid_parse(const char *text, uint8_t out[SOFFA_UUID_LEN]);

#endif
