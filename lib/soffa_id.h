/*  soffa_id: the identifiers soffa routes on.
 *
 *  Personnummer and samordningsnummer are accepted in every common written
 *  form and turned into the canonical 12-digit form YYYYMMDDNNNC:
 *    10 digits   YYMMDDNNNC       century: born less than 100 years ago
 *    11 chars    YYMMDD-NNNC      same
 *    11 chars    YYMMDD+NNNC      born in or before the year of the 100th birthday
 *    12 digits   YYYYMMDDNNNC
 *    13 chars    YYYYMMDD-NNNC    any age
 *    13 chars    YYYYMMDD+NNNC    only from the year of the 100th birthday
 *                                 (a '+' for someone younger contradicts the
 *                                 written year and is refused as a format error)
 *  Leading and trailing blanks are ignored; anything else is refused: other
 *  separators (space, '_'), the letters of interim numbers (YYMMDD-T123)
 *  and the birth number 000.
 *  The check digit is Luhn over YYMMDDNNN; the date must be a real calendar
 *  date (a samordningsnummer's day is the birth day + 60) and not in the
 *  future of the reference date.
 *
 *  Local reserve numbers (reservnummer), for a person without a usable
 *  personnummer or samordningsnummer (unidentified, or protected and known to
 *  the issuer only under a placeholder), have one form in soffa:
 *    YYYYMMDDXXXX  exactly 12 characters: the birth date as the issuer knows
 *                  it (a real date from 1900 on, not in the future), then
 *                  four characters A-Z or 0-9 of which at least two are
 *                  letters, e.g. 20080314TF10 (SCB's convention: birth date
 *                  plus TF10/TF20).
 *  The birth date is what the age rules are checked on. The two letters mean
 *  that no reserve number is a personnummer or samordningsnummer and that
 *  none carries a personnummer's three-digit birth number. Uppercase only on
 *  the wire; soffa_reserve_parse (for people typing) folds lowercase.
 *
 *  Also: kommunkod (against the 290 municipalities built in from
 *  config/kommuner.csv), skolenhetskod (8 digits) and organisationsnummer
 *  (10 digits, Luhn). Identity numbers never appear in soffa's logs; these
 *  functions do not log.
 */
#ifndef SOFFA_ID_H
#define SOFFA_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_err.h"
#include "soffa_time.h"

typedef enum {
    SOFFA_ID_PNR = 1,    /* personnummer */
    SOFFA_ID_SAMNR = 2,  /* samordningsnummer (day + 60) */
    SOFFA_ID_RESERVE = 3,  /* local reserve number (only from soffa_id_parse_any) */
} soffa_id_kind_t;

#define SOFFA_ID_LEN 12  /* canonical length, without the terminating NUL */

/*  Parses `text` in any accepted form into the canonical 12-digit form.
 *  `today` resolves the century of 10/11-character forms (NULL = today).
 *  out: 13 bytes, NUL-terminated on success. kind may be NULL.
 *  Returns SOFFA_OK, or SOFFA_ERR_ID_FORMAT (length, stray characters),
 *  SOFFA_ERR_ID_DATE (no such date, or in the future), SOFFA_ERR_ID_CHECKSUM. */
soffa_err_t soffa_id_parse(const char *text, const soffa_date_t *today, char out[13],
                           soffa_id_kind_t *kind);

/*  Checks an already canonical 12-digit number (as carried in messages).
 *  Returns what soffa_id_parse would, plus the kind. */
soffa_err_t soffa_id_check(const char *id12, soffa_id_kind_t *kind);

/*  Birth date held by a canonical number (samordningsnummer: day - 60). */
soffa_err_t soffa_id_birth_date(const char *id12, soffa_date_t *out);

/*  Name of a kind: "personnummer", "samordningsnummer" or "reservnummer". */
const char *soffa_id_kind_name(soffa_id_kind_t kind);

/*  Checks a reserve number exactly as carried in messages (12 characters,
 *  uppercase, see above). `today` bounds the birth date (NULL = today).
 *  Returns SOFFA_OK, SOFFA_ERR_ID_FORMAT (length, characters, fewer than two
 *  letters after the date; every personnummer and samordningsnummer fails
 *  here) or SOFFA_ERR_ID_DATE (no such date, before 1900, in the future). */
soffa_err_t soffa_reserve_check(const char *id, const soffa_date_t *today);

/*  Reads a reserve number as a person types it: blanks around it are
 *  ignored and lowercase letters are folded to uppercase. out: 13 bytes.
 *  Returns what soffa_reserve_check returns. */
soffa_err_t soffa_reserve_parse(const char *text, const soffa_date_t *today, char out[13]);

/*  Birth date held by a valid reserve number (its first eight characters).
 *  Returns SOFFA_OK, or what soffa_reserve_check(id, NULL) returns. */
soffa_err_t soffa_reserve_birth_date(const char *id, soffa_date_t *out);

/*  Reads any subject identity a person may type: a personnummer or
 *  samordningsnummer in any accepted form (kind PNR or SAMNR), else a
 *  reserve number (kind RESERVE). On failure the code is the one of the
 *  form the text looks like (a letter in it: reserve number). */
soffa_err_t soffa_id_parse_any(const char *text, const soffa_date_t *today, char out[13],
                               soffa_id_kind_t *kind);

/*  Luhn check over `n` digits (the last is the check digit). */
bool soffa_luhn_ok(const char *digits, size_t n);

/*  Returns SOFFA_OK if code is one of the 290 municipalities, else SOFFA_ERR_KOMMUN. */
soffa_err_t soffa_kommun_check(const char *code);

/*  Name of municipality `code` ("Tjörn"), or NULL when unknown. Borrowed. */
const char *soffa_kommun_name(const char *code);

/*  Number of municipalities built in (290). */
size_t soffa_kommun_count(void);

/*  Code of municipality i (0 <= i < soffa_kommun_count()) in code order, NULL past the end. */
const char *soffa_kommun_at(size_t i);

/*  Returns SOFFA_OK for an 8-digit skolenhetskod, else SOFFA_ERR_SKOLENHET. */
soffa_err_t soffa_skolenhet_check(const char *code);

/*  Returns SOFFA_OK for a 10-digit (or NNNNNN-NNNN) organisationsnummer with a
 *  valid check digit, else SOFFA_ERR_ORGNR. */
soffa_err_t soffa_orgnr_check(const char *orgnr);

/*  Same check; on success writes the canonical 10-digit form into out
 *  (11 bytes, NUL-terminated). */
soffa_err_t soffa_orgnr_parse(const char *orgnr, char out[11]);

#endif
