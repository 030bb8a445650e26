/*  Tests for soffa_time: calendar rules and conversions. */
#include <criterion/criterion.h>

#include <stdint.h>

#include "soffa_time.h"

Test(time, leap_years)
{
    cr_assert(soffa_date_valid(2000, 2, 29));
    cr_assert(soffa_date_valid(2024, 2, 29));
    cr_assert_not(soffa_date_valid(1900, 2, 29));
    cr_assert_not(soffa_date_valid(2023, 2, 29));
    cr_assert_not(soffa_date_valid(2026, 4, 31));
    cr_assert_not(soffa_date_valid(2026, 13, 1));
    cr_assert_not(soffa_date_valid(2026, 0, 1));
    cr_assert_not(soffa_date_valid(2026, 1, 0));
}

Test(time, days_and_instants_round_trip)
{
    soffa_date_t epoch = {1970, 1, 1};
    cr_assert_eq(soffa_date_to_days(epoch), 0);
    soffa_date_t d = {2026, 11, 23};
    int64_t us = soffa_date_to_days(d) * 86400000000LL + 5000;
    soffa_date_t back = soffa_date_from_us(us);
    cr_assert_eq(soffa_date_cmp(d, back), 0);
    soffa_date_t old = {1899, 12, 31};
    back = soffa_date_from_us(soffa_date_to_days(old) * 86400000000LL);
    cr_assert_eq(soffa_date_cmp(old, back), 0, "got %d-%d-%d", back.year, back.month, back.day);
}

Test(time, age_counts_whole_years)
{
    soffa_date_t birth = {2006, 11, 24}, before = {2026, 11, 23}, on = {2026, 11, 24};
    cr_assert_eq(soffa_date_age(birth, before), 19);
    cr_assert_eq(soffa_date_age(birth, on), 20);
    soffa_date_t leap = {2008, 2, 29}, feb28 = {2026, 2, 28}, mar1 = {2026, 3, 1};
    cr_assert_eq(soffa_date_age(leap, feb28), 17);
    cr_assert_eq(soffa_date_age(leap, mar1), 18);
}

Test(time, parse_and_format)
{
    soffa_date_t d;
    cr_assert(soffa_date_parse("2026-02-28", &d));
    cr_assert_eq(soffa_date_to_int(d), 20260228u);
    cr_assert(soffa_date_parse("20240229", &d));
    cr_assert_not(soffa_date_parse("2026-02-29", &d));
    cr_assert_not(soffa_date_parse("2026/02/01", &d));
    cr_assert_not(soffa_date_parse("2026-2-1", &d));
    cr_assert_not(soffa_date_parse(NULL, &d));
    char buf[11];
    soffa_date_format((soffa_date_t) {2026, 3, 7}, buf);
    cr_assert_str_eq(buf, "2026-03-07");
    char ts[32];
    soffa_time_format(0, ts);
    cr_assert_str_eq(ts, "1970-01-01T00:00:00.000Z");
}

/* Regression (found by fuzz_msg and fuzz_policy): a message whose business
 * time lay ~230,000 years ahead made the date arithmetic overflow. */
Test(time, any_instant_maps_to_a_date_without_overflow)
{
    soffa_date_t d = soffa_date_from_us(INT64_MAX);
    cr_assert_eq(d.year, 9999);
    d = soffa_date_from_us(INT64_MIN);
    cr_assert_eq(d.year, 1);
    d = soffa_date_from_us(7356000000000000000LL);
    cr_assert_leq(d.year, 9999);
    cr_assert_eq(soffa_date_to_int((soffa_date_t) {233132, 1, 1}), 0u);
    cr_assert_eq(soffa_date_to_int((soffa_date_t) {-5, 1, 1}), 0u);
    cr_assert_eq(soffa_date_to_int((soffa_date_t) {2026, 11, 23}), 20261123u);
}

/* Business dates are Swedish dates (issue 13, rule 4). */
static int64_t
s_utc(int y, int mo, int d, int h, int mi, int s)
{
    soffa_date_t day = {y, mo, d};
    return (soffa_date_to_days(day) * 86400 + h * 3600 + mi * 60 + s) * 1000000LL;
}

Test(time, stockholm_offset_follows_the_eu_rule)
{
    /* 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC. */
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2026, 3, 29, 0, 59, 59)), 3600);
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2026, 3, 29, 1, 0, 0)), 7200);
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2026, 10, 25, 0, 59, 59)), 7200);
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2026, 10, 25, 1, 0, 0)), 3600);
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2026, 1, 15, 12, 0, 0)), 3600);
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2026, 7, 15, 12, 0, 0)), 7200);
    /* 2024: 31 March and 27 October. */
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2024, 3, 31, 1, 0, 0)), 7200);
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2024, 3, 30, 23, 0, 0)), 3600);
    cr_assert_eq(soffa_stockholm_offset_s(s_utc(2024, 10, 27, 0, 30, 0)), 7200);
}

Test(time, the_swedish_day_starts_before_the_utc_day)
{
    /* 23:30 UTC on 26 November is already the 27th in Stockholm. */
    soffa_date_t d = soffa_date_local(s_utc(2026, 11, 26, 23, 30, 0));
    cr_assert_eq(soffa_date_to_int(d), 20261127u);
    d = soffa_date_local(s_utc(2026, 11, 26, 22, 59, 59));
    cr_assert_eq(soffa_date_to_int(d), 20261126u);
    /* In summer two hours ahead. */
    d = soffa_date_local(s_utc(2026, 6, 30, 22, 0, 0));
    cr_assert_eq(soffa_date_to_int(d), 20260701u);
    soffa_date_t nov27 = {2026, 11, 27}, jul1 = {2026, 7, 1};
    cr_assert_eq(soffa_date_local_start_us(nov27), s_utc(2026, 11, 26, 23, 0, 0));
    cr_assert_eq(soffa_date_local_start_us(jul1), s_utc(2026, 6, 30, 22, 0, 0));
    char buf[32];
    soffa_time_format_local(s_utc(2026, 11, 27, 15, 5, 9), buf);
    cr_assert_str_eq(buf, "2026-11-27 16:05");
    soffa_time_format_local_rfc3339(s_utc(2026, 7, 1, 10, 0, 0), buf);
    cr_assert_str_eq(buf, "2026-07-01T12:00:00+02:00");
    /* Today is the Stockholm date of now. */
    cr_assert_eq(soffa_date_to_int(soffa_date_today()), soffa_date_to_int(soffa_date_local(soffa_now_us())));
}

Test(time, instants_parse_with_their_offset)
{
    int64_t t;
    cr_assert(soffa_time_parse("2027-03-01T00:00:00Z", &t));
    cr_assert_eq(t, s_utc(2027, 3, 1, 0, 0, 0));
    cr_assert(soffa_time_parse("2027-03-01T00:00Z", &t));
    cr_assert_eq(t, s_utc(2027, 3, 1, 0, 0, 0));
    cr_assert(soffa_time_parse("2027-03-01T12:30:15+01:00", &t));
    cr_assert_eq(t, s_utc(2027, 3, 1, 11, 30, 15));
    cr_assert(soffa_time_parse("2026-07-01T01:00-02:30", &t));
    cr_assert_eq(t, s_utc(2026, 7, 1, 3, 30, 0));
    /* What the formatter writes reads back. */
    char buf[32];
    soffa_time_format_local_rfc3339(s_utc(2026, 11, 27, 15, 5, 9), buf);
    cr_assert(soffa_time_parse(buf, &t));
    cr_assert_eq(t, s_utc(2026, 11, 27, 15, 5, 9));
    const char *bad[] = {"2027-03-01", "2027-03-01T00:00", "2027-02-30T00:00Z", "2027-03-01T24:00Z", "2027-03-01T00:60Z",
                         "2027-03-01T00:00:60Z", "2027-03-01T00:00:00.5Z", "2027-03-01T00:00+1:00", "2027-03-01T00:00Zjunk",
                         "2027-03-01T00:00+15:00", "soon", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_not(soffa_time_parse(bad[i], &t), "'%s' parsed", bad[i]);
}
