/*  soffa_school: the school agent's memory of its pupils, and the signals
 *  SL 15 kap. 15 § requires, derived from what changed.
 *
 *  The command line reads a school's data (an SS 12000 export or API, a
 *  spreadsheet) and hands the agent observations of pupils; this module
 *  compares each with what it saw last, kept in the agent's own store, and
 *  derives the signals:
 *
 *    enrolment_changed STARTED  an enrolment in gymnasieskola or anpassad
 *        gymnasieskola at this school unit has begun (start date reached, not
 *        cancelled), for a pupil whose home municipality is not the principal;
 *    enrolment_changed LEFT     such an enrolment was cancelled, or ended
 *        before the end date seen earlier (or had none), with a leave reason
 *        where the data tells it (moved, emigrated, transfer to another of
 *        the pupil's enrolments, or the sheet's own column), else UNKNOWN;
 *    absence_reported           a pupil under 20 whose unexcused absence in a
 *        period (a calendar month of SS 12000 attendance, or the sheet's
 *        period) reaches a configured share of the scheduled time, with the
 *        band it reached; any principal, the home municipality's own too.
 *
 *  An enrolment that reaches its planned end is a completion, not a
 *  signal. Changes dated before `since` (the day the school first connected,
 *  unless told otherwise) are recorded, not signalled.
 *
 *  Every signal's message id is derived from the change itself (a keyed
 *  hash of pupil, school unit, enrolment start and event, or of period and
 *  band), shaped as a UUIDv7 whose time is the change's date: the same
 *  change always gets the same id, so importing twice sends nothing new and
 *  a retry after a crash is dropped by the broker too. Each change's fate is
 *  recorded under its id (queued, held for approval, rejected, not
 *  signalled); the pupil's state and the outbox entries of one import are
 *  written in one transaction, so an import is all or nothing.
 *
 *  Tables in the agent's store (keys never hold an identity number):
 *    school-pupil   keyed hash of the identity number -> JSON: the number,
 *                   home municipality, enrolments (unit, form, start,
 *                   planned end, cancelled)
 *    school-event   derived message id -> state, time, reason, message
 *    school-meta    "key" -> the 32-byte hash key; "since" -> yyyymmdd
 *
 *  Observation of one pupil (JSON, from soffa_ss12000 and soffa_sheet):
 *    {"where":"file: data[3]", "id":"200803142710", "id_type":"PNR",
 *     "hemkommun":"1419", "protected":false, "status":"Aktiv|Utvandrad|Avliden|",
 *     "enrolments":[{"unit":"14150001" or "" (this unit) or "-" (another),
 *                    "form":"GY|ANP_GY", "programme":"NANAT", "start":"2026-08-17",
 *                    "end":"" or date, "cancelled":false, "reason":"" or a LeaveReason}],
 *     "absence":[{"from":date, "to":date, "scheduled":minutes, "invalid":minutes}]}
 *
 *  Control requests (answered by soffa_school_control):
 *    {"cmd":"school-config"}
 *    {"cmd":"school-observe", "pupils":[...], "dry_run":bool, "since":date, "today":date}
 *    {"cmd":"school-submit", "messages":[{"where","message"}], "dry_run":bool}
 *    {"cmd":"school-pending"}
 *    {"cmd":"school-approve", "id":"ID, its last 8 characters, or all"}
 *    {"cmd":"school-reject", "id":"..."}
 *  Answers list each signal with Swedish text for people: "pupil" (masked,
 *  "0803…"), "kommun", "what", "why", "state".
 */
#ifndef SOFFA_SCHOOL_H
#define SOFFA_SCHOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_box.h"
#include "soffa_cfg.h"
#include "soffa_err.h"

/* [school] and [ss12000] of the agent's configuration. */
typedef struct {
    char principal_kommun[16];       /* the principal's municipality code, "none" (not a municipality), "" unset */
    char school_unit[16];            /* this agent's skolenhetskod */
    bool review;                     /* hold derived signals for `soffa approve` */
    char since[16];                  /* signal nothing dated before this ("" = the day of the first import) */
    int64_t absence_min_minutes;     /* scheduled time a period needs before it is judged */
    int64_t absence_significant;     /* percent of scheduled time unexcused: SIGNIFICANT */
    int64_t absence_extensive;       /* ... EXTENSIVE */
    int64_t absence_total;           /* ... TOTAL */
    int64_t transfer_days;           /* a new enrolment within this many days of an end makes it a TRANSFER */
    char url[512];                   /* [ss12000] the API's base URL ("" = no polling) */
    char token_file[512];            /* owner-only file with the bearer token */
    char ca_file[512];               /* extra CA bundle for the API's certificate ("" = the system's) */
    int64_t interval_ms;             /* how often the agent syncs (0 = never by itself) */
    int64_t timeout_ms;              /* one HTTP request's time limit */
    int64_t page_size;               /* limit= asked per page */
    bool attendance;                 /* also read attendance (calendarEvents?expand=attendance) */
} soffa_school_cfg_t;

typedef struct soffa_school soffa_school_t;

/*  Fills out[0..2) with the configuration sections [school] and [ss12000],
 *  writing into *cfg; every key has a default. */
void soffa_school_cfg_sections(soffa_school_cfg_t *cfg, soffa_cfg_section_t out[2]);

/*  Checks what the table cannot (codes, URL, token file mode); `config_path`
 *  resolves relative file names. Returns SOFFA_OK or SOFFA_ERR_CONFIG. */
soffa_err_t soffa_school_cfg_check(soffa_school_cfg_t *cfg, const char *config_path, char *why, size_t whylen);

/*  Prints the effective settings as "school.key = value" lines. */
void soffa_school_cfg_print(const soffa_school_cfg_t *cfg, FILE *out);

/*  Opens the tables in `box` (borrowed, must outlive the tracker). The hash
 *  key is made once from `secret` (the agent's secret key, 40 characters)
 *  and kept in the store. `control` is the agent's control socket and
 *  `data_dir` its data directory (for the sync log). */
soffa_err_t soffa_school_new(soffa_school_t **out, const soffa_school_cfg_t *cfg, soffa_box_t *box, const char *secret,
                             const char *control, const char *data_dir);
void soffa_school_destroy(soffa_school_t **self_p);

/*  Answers a control request whose "cmd" begins with "school-"; returns a
 *  new JSON answer ({"ok":true,...} or {"ok":false,"code","error"}).
 *  *queued is set when something was put in the outbox. */
json_t *soffa_school_control(soffa_school_t *self, const char *cmd, json_t *req, bool *queued);

/*  Run on every turn of the agent's loop: starts the SS 12000 sync (`soffa
 *  sync ss12000` next to soffa-agent, talking back over the control socket)
 *  when it is due, and reaps it. Never blocks. */
void soffa_school_tick(soffa_school_t *self);

/*  Stops a running sync (at shutdown). */
void soffa_school_stop(soffa_school_t *self);

/*  "0803…": year and month of birth of a 12-digit number, then an ellipsis;
 *  what people see instead of the number. out: at least 16 bytes. */
void soffa_school_mask(const char *id12, char out[16]);

#endif
