/*  testkit: helpers shared by the test programs.
 *
 *  Identity numbers made here are made up: a birth date and birth number the
 *  test chooses, completed with the right check digit. They pass every check
 *  and belong to no one the tests know of.
 */
#ifndef SOFFA_TESTKIT_H
#define SOFFA_TESTKIT_H

#include <stddef.h>
#include <stdint.h>

#include "soffa_msg.h"

/*  Writes a canonical 12-digit personnummer (samordningsnummer when samnr)
 *  for the date and birth number, with the right check digit. */
void tk_pnr(int year, int month, int day, int birth_no, int samnr, char out[13]);

/*  A valid message of `type` about subject `pnr` living in `hemkommun`, as
 *  JSON (free with free()). Every id is fresh. */
char *tk_msg_json(soffa_msg_type_t type, const char *pnr, const char *hemkommun);

/*  Same, decoded: aborts the test on failure. */
soffa_msg_t *tk_msg(soffa_msg_type_t type, const char *pnr, const char *hemkommun);

/*  Makes a fresh temporary directory (mode 0700); returns a malloc'd path. */
char *tk_tmpdir(const char *tag);

/*  Removes a directory tree (best effort). */
void tk_rmrf(const char *path);

/*  Runs argv (NULL-terminated) with stdout/stderr captured into out/err
 *  (malloc'd, NUL-terminated; may be NULL). Returns the exit status, or -1. */
int tk_run(char *const argv[], char **out, char **err);

#endif
