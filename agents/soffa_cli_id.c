/*  soffa_cli_id: identity numbers on the command line (see soffa_cli_id.h).
 */
#include "soffa_cli_id.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "soffa_id.h"
#include "soffa_time.h"

const char *
soffa_cli_id_reserve_problem(soffa_err_t rc)
{
    return rc == SOFFA_ERR_ID_DATE
               ? "a reserve number begins with the birth date YYYYMMDD: a real date from 1900 on, not in the future"
               : "a reserve number is 12 characters: the birth date YYYYMMDD, then 4 of A-Z/0-9 with at least two "
                 "letters (e.g. 20080314TF10)";
}

const char *
soffa_cli_id_problem(const char *text, soffa_err_t rc)
{
    for (const char *p = text; *p; p++)
        if (isalpha((unsigned char) *p))
            return soffa_cli_id_reserve_problem(rc);
    return soffa_strerror(rc);
}

int
soffa_cli_id_check(soffa_cli_t *c)
{
    const char *id = NULL;
    soffa_date_t today = soffa_date_today();
    for (int i = 1; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h")) {
            puts("usage: soffa check-id [--json] [--today YYYY-MM-DD] ID\n\n"
                 "Checks a Swedish personnummer or samordningsnummer and prints its canonical\n"
                 "12-digit form (YYYYMMDDNNNC) and its kind. Accepted forms: YYMMDDNNNC,\n"
                 "YYMMDD-NNNC, YYMMDD+NNNC (born 100 or more years ago), YYYYMMDDNNNC,\n"
                 "YYYYMMDD-NNNC. A local reserve number (YYYYMMDD and 4 of A-Z/0-9 with at\n"
                 "least two letters, e.g. 20080314TF10) is checked too; its kind is reservnummer.\n\n"
                 "  --json               print {\"id\", \"kind\", \"birth_date\"}\n"
                 "  --today YYYY-MM-DD   reference date for the century of short forms\n\n"
                 "Exit status: 0 valid, 1 invalid (one line on stderr says why), 2 usage.");
            return 0;
        } else if (!strcmp(c->argv[i], "--today") && i + 1 < c->argc) {
            if (!soffa_date_parse(c->argv[++i], &today))
                return soffa_cli_die("check-id", 2, "--today takes a date as YYYY-MM-DD");
        } else if (c->argv[i][0] == '-' && c->argv[i][1] && !id) {
            return soffa_cli_die("check-id", 2, "unknown option '%s' (see soffa check-id --help)", c->argv[i]);
        } else if (!id) {
            id = c->argv[i];
        } else {
            return soffa_cli_die("check-id", 2, "give one number at a time (see soffa check-id --help)");
        }
    }
    if (!id)
        return soffa_cli_die("check-id", 2, "no number given (see soffa check-id --help)");
    char canon[13];
    soffa_id_kind_t kind;
    soffa_err_t rc = soffa_id_parse_any(id, &today, canon, &kind);
    if (rc != SOFFA_OK) {
        /* The number itself is not repeated: it is personal data. */
        bool letter = false;
        for (const char *p = id; *p; p++)
            letter |= isalpha((unsigned char) *p) != 0;
        return soffa_cli_die("check-id", 1, "%s",
                     letter ? soffa_cli_id_reserve_problem(rc)
                     : rc == SOFFA_ERR_ID_CHECKSUM ? "bad check digit: the last digit does not match the others"
                     : rc == SOFFA_ERR_ID_DATE   ? "impossible date: no such birth date (or it lies in the future)"
                                                 : "bad format: expected YYMMDD-NNNC, YYMMDD+NNNC, YYYYMMDDNNNC or YYYYMMDD-NNNC");
    }
    if (c->json) {
        soffa_date_t birth;
        char bd[11];
        if (kind == SOFFA_ID_RESERVE)
            soffa_reserve_birth_date(canon, &birth);
        else
            soffa_id_birth_date(canon, &birth);
        soffa_date_format(birth, bd);
        printf("{\"id\":\"%s\",\"kind\":\"%s\",\"birth_date\":\"%s\"}\n", canon, soffa_id_kind_name(kind), bd);
    } else {
        printf("%s %s\n", canon, soffa_id_kind_name(kind));
    }
    return 0;
}
