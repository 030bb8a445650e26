/*  soffa_sheet: a school's spreadsheet export, row by row, into what the
 *  school agent takes: signals, or observations of pupils.
 *
 *  Two kinds of sheet, told apart by their header (read by soffa_csv):
 *
 *    signal list  a column `type` (Typ): each row is one signal, with the
 *                 columns of README "CSV import" or their Swedish names
 *                 (Personnummer, Hemkommun, Händelse, Datum, ...).
 *    pupil list   no type column, but a start date (Startdatum): each row is
 *                 one enrolment of a pupil as the student information system
 *                 has it now (Skolenhetskod, Skolform, Program, Startdatum,
 *                 Slutdatum, Makulerad, Avgångsorsak), optionally with the
 *                 unexcused absence of a period (Frånvaro från/till,
 *                 Schemalagd tid (min), Ogiltig frånvaro (min)). The school
 *                 agent compares it with what it saw last and derives the
 *                 signals (soffa_school).
 *
 *  Column names are matched without regard to case; columns the sheet has
 *  but soffa does not use (names, classes, e-mail) are ignored and listed,
 *  and never read. Values may be the codes of the message schema or their
 *  Swedish words (Slutade, Flytt, Betydande, Ja/Nej). Every row is checked
 *  in full (identity number, municipality, dates, codes, and for signals the
 *  whole message through soffa_msg_validate); a bad row is reported with
 *  file, line and reason and the good ones are still returned.
 *
 *  Result (a new JSON object):
 *    {"kind":"signals", "messages":[{"where":"f.csv:3", "message":{...}}], ...}
 *    {"kind":"pupils",  "pupils":[{pupil, see soffa_school.h}], ...}
 *  both with "rows" (data rows read), "errors":[{"where","why"}] and
 *  "ignored_columns":[names]. Signal messages have no ids or times yet: the
 *  agent gives them (a message id derived from the content).
 */
#ifndef SOFFA_SHEET_H
#define SOFFA_SHEET_H

#include <jansson.h>
#include <stddef.h>

#include "soffa_time.h"

/*  Reads text[0..len) of the file called `name` (for messages). `today`
 *  (NULL = today) is the reference date of identity checks. Returns the
 *  result, or NULL when the file as a whole cannot be read (encoding,
 *  quoting, no usable header) with `why` saying so. */
json_t *soffa_sheet_read(const char *text, size_t len, const char *name, const soffa_date_t *today, char *why,
                         size_t whylen);

/*  Turns a Swedish or schema word for a code into the schema's code name
 *  ("Slutade" -> "LEFT", "flytt" -> "MOVED"); `field` is the payload field
 *  name (event, leave_reason, unexcused_band, school_form, type). Returns
 *  NULL when the word is not known. Borrowed. */
const char *soffa_sheet_code(const char *field, const char *word);

#endif
