/*  soffa_csv: spreadsheets as Swedish schools save them, read with libcsv.
 *
 *  RFC 4180: fields separated by ';', ',' or a tab (detected from the first
 *  line outside quotes: Excel's Swedish "CSV (semikolonavgränsad)" uses ';'),
 *  quoted with "...", a quote inside a quoted field doubled (""), separators
 *  and line breaks inside quoted fields kept. Lines may be of any length.
 *  The text must be UTF-8; a UTF-8 byte-order mark is skipped. Text in
 *  another encoding (Windows-1252 from an older Excel, UTF-16 from Excel's
 *  "Unicode-text") is refused with a sentence saying which and how to fix
 *  it. Blanks around unquoted fields are dropped; blank lines and lines
 *  whose first field starts with '#' are skipped.
 *
 *  Errors name the line and say what is wrong, in Swedish (school staff
 *  read them): "rad 7: citattecknet avslutas aldrig".
 */
#ifndef SOFFA_CSV_H
#define SOFFA_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "soffa_err.h"

#define SOFFA_CSV_MAX_FIELD (64 * 1024)   /* longest field accepted, bytes */
#define SOFFA_CSV_MAX_FIELDS 512          /* most fields in one row */

/*  Called once per row: `line` is the line the row starts on (1-based, as an
 *  editor counts), fields[0..n) are NUL-terminated and valid during the
 *  call. Return non-zero to stop reading. */
typedef int (*soffa_csv_row_fn)(void *ctx, long line, char **fields, size_t n);

/*  Reads text[0..len) and calls fn for each row, the header included.
 *  *sep (may be NULL) gets the separator used. On failure `why` says which
 *  line and what is wrong. Returns SOFFA_OK, SOFFA_ERR_MALFORMED (bad
 *  quoting, not UTF-8, a field or row too large) or SOFFA_ERR_NOMEM. */
soffa_err_t soffa_csv_read(const char *text, size_t len, soffa_csv_row_fn fn, void *ctx, char *sep, char *why,
                           size_t whylen);

/*  Writes one row of fields[0..n) to out, separated by ',' and ended by
 *  CRLF (RFC 4180): every field quoted through libcsv (a quote inside
 *  doubled). A field that a spreadsheet would take for a formula (starting
 *  with =, +, -, @, a tab or a carriage return) is written with a leading
 *  apostrophe, so opening an export never runs anything. NULL fields are
 *  empty. Returns SOFFA_OK or SOFFA_ERR_IO. */
soffa_err_t soffa_csv_write_row(FILE *out, const char *const *fields, size_t n);

#endif
