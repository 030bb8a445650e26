/*  soffa_stats: a municipality's KAA key figures from its history.
 *
 *  Input: the records an auditor's replay returned (JSON, see
 *  soffa_record). Figures count events whose business date (occurred_at)
 *  lies in [from, to], for the mailboxes of municipality K (kaa/K,
 *  kaa-journal/K, af/K, social/K):
 *    signals          school signals to kaa/K, by kind
 *    signalled        distinct youths with a signal
 *    registered       distinct youths with a case opened
 *    contacted        registered youths with a contact attempt that REACHED them;
 *                     median days from their first signal to the first such contact
 *    with_plan        registered youths with an agreed plan
 *    in_measure       registered youths with a measure started
 *    referrals        by agency (af, social): sent; outcomes (each referral's
 *                     latest status); median days to the first answer
 *    closures         cases closed, by reason
 *    monthly          signals, registered, contacted, referrals, closures per month
 *  Every count is split by legal sex, read from the birth number's parity at
 *  counting time and never stored (DOMAIN.md §5.6); counts of 1 to 4 are
 *  suppressed (null in JSON, "<5" in text); a share needs at least 5 in its
 *  denominator.
 */
#ifndef SOFFA_STATS_H
#define SOFFA_STATS_H

#include <jansson.h>
#include <stdio.h>

#include "soffa_time.h"

/*  Computes the figures; returns a new JSON object. Besides the counts
 *  above it holds "periods": the figures of every half-year (1 Jan-30 Jun,
 *  1 Jul-31 Dec) and every month that overlaps [from, to], each clipped to
 *  [from, to] (see soffa_stats_periods). */
json_t *soffa_stats_compute(json_t *records, const char *kommun, soffa_date_t from, soffa_date_t to);

/*  The period figures (issue 19 item 5), an array of objects
 *  {period, from, to, in_kaa_during, in_kaa_at_end, contacted, mapped,
 *  with_plan, declined, occupation{CODE}, measures{TYPE}, closures{GROUP},
 *  age{16-17, 18-19, other}, schools[{school_unit, signals, left}]}. A youth
 *  is in the KAA during a period when one of their cases of K (kaa-journal/K)
 *  was open on any day of it: opened on or before its last day and not
 *  closed before its first (a case reopened counts from the reopening).
 *  Cells are {total, women, men, unknown} (unknown: reserve numbers), with
 *  counts of 1 to 4 null (and a share whose count is); shares of
 *  in_kaa_during need 5 in it. Per youth, at most 16 case stretches and 32
 *  occupations, declines and measures are read (far more than a KAA
 *  records); what lies beyond is not counted. */
json_t *soffa_stats_periods(json_t *records, const char *kommun, soffa_date_t from, soffa_date_t to);

/*  Writes the export of [from, to] (a half-year) as CSV (soffa_csv_write_row):
 *  a header, then one row per youth in the KAA of K during the period, with
 *  their identity number. Returns the rows written, or -1 on a write error. */
long soffa_stats_export(json_t *records, const char *kommun, soffa_date_t from, soffa_date_t to, FILE *out);

/*  Writes the figures as a table for people, as CSV, or as a self-contained
 *  HTML page (XHTML, inline SVG charts of the monthly series). */
void soffa_stats_table(json_t *stats, FILE *out);
void soffa_stats_csv(json_t *stats, FILE *out);
void soffa_stats_html(json_t *stats, FILE *out);

#endif
