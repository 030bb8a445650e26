/*  soffa_cfg: INI configuration from declarative tables.
 *
 *  Each section is described by a table of keys (type, default, range,
 *  where the value goes, one line of documentation). One inih callback looks
 *  every key up in its table, so there is one validation path: unknown
 *  sections and keys are errors, values out of range are errors, required
 *  keys (default NULL) must be present. Sections either appear once
 *  ("[broker]") or are named and may repeat ("[agent school-1415]").
 */
#ifndef SOFFA_CFG_H
#define SOFFA_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"

typedef enum {
    SOFFA_CFG_STR,    /* char[size] */
    SOFFA_CFG_INT,    /* int64_t, min..max */
    SOFFA_CFG_SIZE,   /* size_t bytes, suffixes KiB MiB GiB, min..max */
    SOFFA_CFG_BOOL,   /* bool: true/false/yes/no/on/off/1/0 */
    SOFFA_CFG_DURATION, /* int64_t milliseconds from "90s", "15m", "2h", "5d" or plain ms, min..max */
} soffa_cfg_type_t;

typedef struct {
    const char *key;
    soffa_cfg_type_t type;
    const char *def;      /* default as written in the file; NULL = required */
    int64_t min, max;     /* INT and SIZE ranges */
    size_t offset;        /* offsetof the field in the section's struct */
    size_t size;          /* STR buffer size */
    const char *doc;      /* one line for people */
} soffa_cfg_key_t;

typedef struct {
    const char *name;                          /* section name, or the prefix of named ones */
    bool named;                                /* "[name X]", any number of times */
    const soffa_cfg_key_t *keys;               /* NULL: a section another program reads (accepted, unchecked) */
    size_t n_keys;
    void *target;                              /* fixed section: the struct to fill */
    void *(*add)(void *ctx, const char *name); /* named section: a new zeroed struct, or NULL */
    void *ctx;
} soffa_cfg_section_t;

/*  Loads path into the sections' structs (defaults first). On failure `why`
 *  says file, line and what is wrong. Returns SOFFA_OK, SOFFA_ERR_NOT_FOUND
 *  (no such file) or SOFFA_ERR_CONFIG. */
soffa_err_t soffa_cfg_load(const char *path, const soffa_cfg_section_t *sections, size_t n,
                           char *why, size_t whylen);

/*  Parses "5d", "2h", "15m", "90s", "250ms" or a plain number of ms. */
bool soffa_cfg_parse_duration(const char *text, int64_t *ms);

/*  Parses "64MiB" and friends; returns false on error. */
bool soffa_cfg_parse_size(const char *text, uint64_t *out);

/*  Resolves `file` against the directory of `base` unless it is absolute.
 *  out gets at most outlen bytes; returns false when it does not fit. */
bool soffa_cfg_path(const char *base, const char *file, char *out, size_t outlen);

#endif
