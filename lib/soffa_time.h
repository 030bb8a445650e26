/*  soffa_time: calendar dates and clock readings.
 *
 *  Business dates travel as yyyymmdd integers; instants as Unix microseconds
 *  in UTC. Dates here are proleptic Gregorian, which covers every date a
 *  personnummer can hold (1800 onwards).
 */
#ifndef SOFFA_TIME_H
#define SOFFA_TIME_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int year;   /* four digits */
    int month;  /* 1..12 */
    int day;    /* 1..31 */
} soffa_date_t;

/*  True if y-m-d is a real calendar date (leap years included). */
bool soffa_date_valid(int year, int month, int day);

/*  Days in month m of year y, or 0 when m is out of range. */
int soffa_date_days_in_month(int year, int month);

/*  Converts yyyymmdd; returns false for a value that is not a real date. */
bool soffa_date_from_int(uint32_t yyyymmdd, soffa_date_t *out);

/*  Returns the yyyymmdd integer of d. */
uint32_t soffa_date_to_int(soffa_date_t d);

/*  Days since 1970-01-01 (negative before). */
int64_t soffa_date_to_days(soffa_date_t d);

/*  Whole years of age on day `on` for someone born on `birth`
 *  (a birthday on 29 February counts as reached on 1 March in other years). */
int soffa_date_age(soffa_date_t birth, soffa_date_t on);

/*  Compares two dates: <0, 0, >0. */
int soffa_date_cmp(soffa_date_t a, soffa_date_t b);

/*  The UTC date of instant t (Unix microseconds). */
soffa_date_t soffa_date_from_us(int64_t t_us);

/* ---- Europe/Stockholm: the time zone of every business date ----
 * Business dates (ages, consent validity, deadlines, what a person reads)
 * are Swedish dates; instants stay UTC inside soffa. Swedish time is CET
 * (UTC+1), and CEST (UTC+2) from 01:00 UTC on the last Sunday of March to
 * 01:00 UTC on the last Sunday of October (the EU rule, in force since
 * 1996; earlier instants use the same rule). */

/*  Seconds Stockholm is ahead of UTC at instant t: 3600 or 7200. */
int soffa_stockholm_offset_s(int64_t t_us);

/*  The Stockholm date of instant t. */
soffa_date_t soffa_date_local(int64_t t_us);

/*  The instant (Unix µs) at which date d begins in Stockholm (00:00 local). */
int64_t soffa_date_local_start_us(soffa_date_t d);

/*  Today's business date: the date in Stockholm now. */
soffa_date_t soffa_date_today(void);

/*  The wall clock now, Unix microseconds. */
int64_t soffa_now_us(void);

/*  A monotonic clock, microseconds, for timeouts and latency. */
int64_t soffa_mono_us(void);

/*  Parses "YYYY-MM-DD" (or "YYYYMMDD"); returns false if it is not a date. */
bool soffa_date_parse(const char *text, soffa_date_t *out);

/*  Parses an RFC 3339 instant with its offset: "2027-03-01T00:00:00Z",
 *  "2027-03-01T00:00+01:00" (seconds optional, no fraction). Returns false
 *  if it is not one. */
bool soffa_time_parse(const char *text, int64_t *t_us);

/*  Formats d as "YYYY-MM-DD" into buf (at least 11 bytes). */
void soffa_date_format(soffa_date_t d, char buf[11]);

/*  Formats instant t as RFC 3339 UTC with milliseconds (at least 25 bytes). */
void soffa_time_format(int64_t t_us, char buf[32]);

/*  Formats instant t for people, in Stockholm time: "2026-11-27 16:05". */
void soffa_time_format_local(int64_t t_us, char buf[32]);

/*  Formats instant t as RFC 3339 with Stockholm's offset and seconds:
 *  "2026-11-27T16:05:09+01:00" (at least 26 bytes). */
void soffa_time_format_local_rfc3339(int64_t t_us, char buf[32]);

#endif
