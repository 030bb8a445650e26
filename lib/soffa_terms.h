/*  soffa_terms: the sensitive-term filter for free text (DOMAIN.md §5.6).
 *
 *  Free text bound for a KAA, Arbetsförmedlingen or a school may not carry
 *  sensitive personal data (GDPR art. 9 and 10, OSL 26:1: health and
 *  diagnoses, substance use, contact with social services and placements,
 *  crime, religion, sexuality, ethnic origin, political opinions). This
 *  module screens such text against a Swedish term list in categories; the
 *  caller refuses the message and names the category. Concern reports to
 *  social services are never screened (the caller's rule, not this one's).
 *
 *  The list is config/sensitive-terms.txt, whose header documents the
 *  format: categories with a key and a Swedish and an English name, terms
 *  as word patterns (whole word, beginning, end, anywhere in a word,
 *  phrases of several words) and per-category exceptions. A copy of the
 *  shipped file is built in at build time (cmake/terms.cmake), so a process
 *  without a configured path has the same list.
 *
 *  Matching is on words, case-insensitive and Unicode-aware: upper and
 *  lower case of Latin letters including å, ä, ö, é are the same, accents
 *  other than å, ä and ö are ignored (é is e, æ is ä, ø is ö), decomposed
 *  letters (a + combining ring) equal composed ones, soft hyphens and
 *  zero-width characters inside a word are ignored, fullwidth letters are
 *  read as ASCII. Invalid UTF-8 separates words; nothing here reads past
 *  the terminating NUL.
 *
 *  Privacy: nothing here logs, and no result holds any part of the text:
 *  only category names (from the list) come back. A loaded list is
 *  immutable, so one may be shared by threads.
 */
#ifndef SOFFA_TERMS_H
#define SOFFA_TERMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_err.h"

#define SOFFA_TERMS_CATEGORIES_MAX 32   /* a scan's result is a 32-bit mask */
#define SOFFA_TERMS_FILE_MAX (1024 * 1024)

typedef struct soffa_terms soffa_terms_t;

/*  One category of the list. Strings are borrowed from the list. */
typedef struct {
    const char *key;   /* "health": a-z and _, for machines and logs */
    const char *sv;    /* "hälsa, diagnoser eller funktionsnedsättning" */
    const char *en;    /* "health, diagnoses or disability" */
} soffa_terms_category_t;

/*  Loads the list at `path`, or the built-in copy of the shipped list when
 *  path is NULL or "". On failure `why` (may be NULL) says what and where
 *  ("sensitive-terms.txt line 12: ..."). Returns SOFFA_OK, SOFFA_ERR_CONFIG
 *  (the list breaks the format), SOFFA_ERR_TOO_LARGE (file over
 *  SOFFA_TERMS_FILE_MAX), SOFFA_ERR_NOT_FOUND, SOFFA_ERR_PERMISSION,
 *  SOFFA_ERR_IO or SOFFA_ERR_NOMEM. */
soffa_err_t soffa_terms_new(soffa_terms_t **out, const char *path, char *why, size_t whylen);

/*  Same, from len bytes of list text in memory; `name` names it in `why`. */
soffa_err_t soffa_terms_parse(soffa_terms_t **out, const char *text, size_t len, const char *name, char *why,
                              size_t whylen);

/*  Destroys *self_p and sets it to NULL; NULL-safe. */
void soffa_terms_destroy(soffa_terms_t **self_p);

/*  Number of categories, and category i (NULL past the end), in file order. */
size_t soffa_terms_category_count(const soffa_terms_t *self);
const soffa_terms_category_t *soffa_terms_category(const soffa_terms_t *self, size_t i);

/*  Number of terms of category i, and (exceptions not NULL) of its
 *  exceptions. Zero past the end. */
size_t soffa_terms_term_count(const soffa_terms_t *self, size_t i, size_t *exceptions);

/*  Scans text (NUL-terminated UTF-8; NULL is empty). *mask gets bit i set
 *  for every category i the text names (0: none); *first (may be NULL) the
 *  category of the earliest word that names one (ties: the lower index),
 *  or -1. Returns SOFFA_OK or SOFFA_ERR_NOMEM (then *mask is 0). */
soffa_err_t soffa_terms_scan(const soffa_terms_t *self, const char *text, uint32_t *mask, int *first);

/*  True if text names a category of the list; *category_out (may be NULL)
 *  gets the category of the earliest such word. Fails closed: when memory
 *  runs out it returns true with *category_out NULL. */
bool soffa_terms_check(const soffa_terms_t *self, const char *text, const soffa_terms_category_t **category_out);

/*  The check a router makes: returns SOFFA_OK when text names nothing on
 *  the list, else SOFFA_ERR_SENSITIVE_TEXT with `why` (may be NULL) naming
 *  `field` and every category named, in English and Swedish, e.g.
 *    referral_sent.summary names health, diagnoses or disability (hälsa,
 *    diagnoser eller funktionsnedsättning): remove it and send again
 *  The text itself never appears in `why`. A `why` too short is cut at a
 *  character boundary. Returns SOFFA_ERR_NOMEM when memory runs out (the
 *  caller refuses then too). */
soffa_err_t soffa_terms_screen(const soffa_terms_t *self, const char *text, const char *field, char *why,
                               size_t whylen);

#endif
