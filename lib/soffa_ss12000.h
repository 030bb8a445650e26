/*  soffa_ss12000: what a student information system says through SS 12000
 *  (the Swedish standard API for school administration data, OpenAPI 3,
 *  JSON; fields as in its version 2.1), turned into observations of pupils
 *  for the school agent (soffa_school).
 *
 *  Input: saved responses, page by page, of
 *    GET /persons        {"data":[Person...], "pageToken":...}: civicNo,
 *                        securityMarking, personStatus, addresses (the
 *                        "Folkbokföring" address's municipalityCode is the
 *                        home municipality), enrolments (enroledAt,
 *                        schoolType, startDate, endDate, cancelled,
 *                        educationCode);
 *    GET /organisations  {"data":[Organisation...]}: id -> schoolUnitCode,
 *                        to tell which school unit an enrolment is at;
 *    GET /calendarEvents?expand=attendance {"data":[CalendarEvent...]}:
 *                        startTime, cancelled, _embedded.attendance
 *                        (student, isReported, attendanceMinutes,
 *                        validAbsenceMinutes, invalidAbsenceMinutes,
 *                        otherAttendanceMinutes).
 *  A document may also be a bare array of such objects, or an array of
 *  pages. Only persons with an enrolment in gymnasieskola (GY) or anpassad
 *  gymnasieskola (GYS) are read further; everyone else (staff, guardians,
 *  other school forms) is passed over unread.
 *
 *  Everything is hostile until checked: a document that is not of that
 *  shape is refused whole (file, JSON path, reason); a pupil whose identity
 *  number or home municipality cannot be used is reported with its JSON path
 *  and left out, so the caller decides whether the rest may go.
 */
#ifndef SOFFA_SS12000_H
#define SOFFA_SS12000_H

#include <jansson.h>
#include <stddef.h>

#include "soffa_err.h"
#include "soffa_time.h"

typedef struct soffa_ss12000 soffa_ss12000_t;

typedef enum {
    SOFFA_SS12000_DETECT = 0,       /* tell the endpoint from the content */
    SOFFA_SS12000_PERSONS,
    SOFFA_SS12000_ORGANISATIONS,
    SOFFA_SS12000_CALENDAR_EVENTS,
} soffa_ss12000_kind_t;

soffa_err_t soffa_ss12000_new(soffa_ss12000_t **out);
void soffa_ss12000_destroy(soffa_ss12000_t **self_p);

/*  Adds one document (`where` names it in messages, e.g. the file name).
 *  next_token (may be NULL) gets the page's pageToken, a new string the
 *  caller frees, or NULL when there is no next page. Returns SOFFA_OK,
 *  SOFFA_ERR_MALFORMED (why: "where: data[3].enrolments: ...") or
 *  SOFFA_ERR_NOMEM. */
soffa_err_t soffa_ss12000_add(soffa_ss12000_t *self, const char *text, size_t len, const char *where,
                              soffa_ss12000_kind_t kind, char **next_token, char *why, size_t whylen);

/*  The pupils read so far, as observations (see soffa_school.h), a new
 *  array. A pupil that cannot be used is appended to `errors` as
 *  {"where","why"} instead. `today` (NULL = today) checks identity numbers. */
json_t *soffa_ss12000_pupils(soffa_ss12000_t *self, const soffa_date_t *today, json_t *errors);

/*  Counts: persons read, organisations, attendance records. */
void soffa_ss12000_counts(const soffa_ss12000_t *self, size_t *persons, size_t *organisations, size_t *attendance);

/*  Parses an RFC 3339 instant ("2026-09-14T08:00:00+02:00", "...Z",
 *  fractions allowed) into Unix microseconds. */
bool soffa_ss12000_instant(const char *text, int64_t *out_us);

#endif
