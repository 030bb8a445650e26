/*  soffa_cli_id: identity numbers on the command line: `soffa check-id`,
 *  and the words every command uses to say what is wrong with a number
 *  someone typed.
 *
 *  A number that fails its checks is never repeated in a message: it is
 *  personal data, and the message says what to type instead.
 */
#ifndef SOFFA_CLI_ID_H
#define SOFFA_CLI_ID_H

#include "soffa_cli.h"
#include "soffa_err.h"

/*  `soffa check-id [--json] [--today DATE] ID`: prints the canonical form
 *  and kind of a personnummer, samordningsnummer or reserve number. Returns
 *  0 (valid), 1 (invalid: one line on stderr says why) or 2 (usage). */
int soffa_cli_id_check(soffa_cli_t *c);

/*  What is wrong with an identity number the user typed (rc from
 *  soffa_id_parse_any): a reserve number's rules when the text holds a
 *  letter, else the personnummer's. Borrowed string. */
const char *soffa_cli_id_problem(const char *text, soffa_err_t rc);

/*  What is wrong with a reserve number the user typed (rc from
 *  soffa_reserve_parse). Borrowed string. */
const char *soffa_cli_id_reserve_problem(soffa_err_t rc);

#endif
