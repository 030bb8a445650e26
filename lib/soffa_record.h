/*  soffa_record: a stored record (envelope + message) as JSON, for people,
 *  scripts and hooks.
 *
 *  {"seq", "mailbox", "kind": "message"|"access"|"checkpoint"|"disposal",
 *   "type", "received_at" (RFC 3339), "received_at_us", "sender": {"agent",
 *   "role", "kommun", "unit"}, "hash", "prev_hash", "message": {...} |
 *   "access": {...} | "checkpoint": {...} | "disposal": {...}}
 *  A record whose body is sealed and came without its key (it was disposed
 *  of) has "disposed": true and no content.
 */
#ifndef SOFFA_RECORD_H
#define SOFFA_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"

/*  Builds the JSON of an encoded envelope (hash may be NULL); a sealed body
 *  is opened with key (the record's key; NULL when there is none). Returns a
 *  new reference, or NULL when the bytes do not decode or the key does not
 *  open them. */
json_t *soffa_record_json(const uint8_t *env, size_t len, const uint8_t *hash, const uint8_t *key);

/*  One line for people: "seq 12  2026-11-23 12:00  absence_reported  from
 *  school-1415  pupil 200803142710 (1419)". Writes into out. */
void soffa_record_line(json_t *rec, char *out, size_t outlen);

#endif
