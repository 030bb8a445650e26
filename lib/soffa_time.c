/*  soffa_time: calendar arithmetic and Stockholm time, without the C
 *  library's time zones or locale (the result never depends on TZ). */
#include "soffa_time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static bool
s_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
soffa_date_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    return month == 2 && s_leap(year) ? 29 : days[month - 1];
}

bool
soffa_date_valid(int year, int month, int day)
{
    if (year < 1 || year > 9999)
        return false;
    int dim = soffa_date_days_in_month(year, month);
    return dim > 0 && day >= 1 && day <= dim;
}

bool
soffa_date_from_int(uint32_t v, soffa_date_t *out)
{
    soffa_date_t d = {(int) (v / 10000), (int) (v / 100 % 100), (int) (v % 100)};
    if (!soffa_date_valid(d.year, d.month, d.day))
        return false;
    if (out)
        *out = d;
    return true;
}

uint32_t
soffa_date_to_int(soffa_date_t d)
{
    /* Dates outside years 1..9999 have no yyyymmdd form: 0. */
    if (d.year < 1 || d.year > 9999 || d.month < 0 || d.month > 99 || d.day < 0 || d.day > 99)
        return 0;
    return (uint32_t) (d.year * 10000 + d.month * 100 + d.day);
}

/* Days from civil: the classic era-based algorithm, exact for all years. */
int64_t
soffa_date_to_days(soffa_date_t d)
{
    int64_t y = d.year - (d.month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t mp = (d.month + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + d.day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int
soffa_date_cmp(soffa_date_t a, soffa_date_t b)
{
    uint32_t x = soffa_date_to_int(a), y = soffa_date_to_int(b);
    return x < y ? -1 : x > y ? 1 : 0;
}

int
soffa_date_age(soffa_date_t birth, soffa_date_t on)
{
    int age = on.year - birth.year;
    if (on.month < birth.month || (on.month == birth.month && on.day < birth.day))
        age--;
    return age;
}

soffa_date_t
soffa_date_from_us(int64_t t_us)
{
    /* Any instant maps to a date: beyond years 1..9999 it is clamped, so
     * nothing downstream meets an overflowing year. */
    const int64_t lo = -62135596800LL * 1000000, hi = 253402300799LL * 1000000;
    if (t_us < lo)
        t_us = lo;
    if (t_us > hi)
        t_us = hi;
    int64_t z = (t_us >= 0 ? t_us : t_us - 86400000000LL + 1) / 86400000000LL + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int) (doy - (153 * mp + 2) / 5 + 1);
    int m = (int) (mp < 10 ? mp + 3 : mp - 9);
    int y = (int) (yoe + era * 400 + (m <= 2));
    return (soffa_date_t) {y, m, d};
}

int64_t
soffa_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
soffa_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The instant of 01:00 UTC on the last Sunday of `month` in `year`. */
static int64_t
s_last_sunday_0100_utc(int year, int month)
{
    soffa_date_t last = {year, month, soffa_date_days_in_month(year, month)};
    int64_t days = soffa_date_to_days(last);
    /* 1970-01-01 was a Thursday: weekday 0 = Sunday is (days + 4) % 7. */
    int64_t wd = ((days + 4) % 7 + 7) % 7;
    return ((days - wd) * 86400 + 3600) * 1000000;
}

int
soffa_stockholm_offset_s(int64_t t_us)
{
    soffa_date_t d = soffa_date_from_us(t_us);
    if (d.month < 3 || d.month > 10)
        return 3600;
    if (d.month > 3 && d.month < 10)
        return 7200;
    int64_t edge = s_last_sunday_0100_utc(d.year, d.month);
    if (d.month == 3)
        return t_us >= edge ? 7200 : 3600;
    return t_us >= edge ? 3600 : 7200;
}

soffa_date_t
soffa_date_local(int64_t t_us)
{
    /* Clamp first so that adding the offset cannot overflow. */
    const int64_t lim = 253402300799LL * 1000000;
    if (t_us > lim)
        t_us = lim;
    if (t_us < -lim)
        t_us = -lim;
    return soffa_date_from_us(t_us + (int64_t) soffa_stockholm_offset_s(t_us) * 1000000);
}

int64_t
soffa_date_local_start_us(soffa_date_t d)
{
    int64_t utc_midnight = soffa_date_to_days(d) * 86400LL * 1000000;
    /* Midnight local is 1 or 2 hours before UTC midnight; the offset at
     * that instant decides which (no change happens near midnight). */
    int64_t guess = utc_midnight - 3600LL * 1000000;
    return utc_midnight - (int64_t) soffa_stockholm_offset_s(guess) * 1000000;
}

soffa_date_t
soffa_date_today(void)
{
    return soffa_date_local(soffa_now_us());
}

bool
soffa_date_parse(const char *text, soffa_date_t *out)
{
    char digits[9];
    size_t n = 0;
    if (!text)
        return false;
    size_t len = strlen(text);
    if (len == 10) {
        if (text[4] != '-' || text[7] != '-')
            return false;
        for (size_t i = 0; i < len; i++)
            if (i != 4 && i != 7)
                digits[n++] = text[i];
    } else if (len == 8) {
        memcpy(digits, text, 8);
        n = 8;
    } else {
        return false;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char) digits[i]))
            return false;
        v = v * 10 + (uint32_t) (digits[i] - '0');
    }
    return soffa_date_from_int(v, out);
}

void
soffa_date_format(soffa_date_t d, char buf[11])
{
    unsigned y = (unsigned) d.year % 10000, m = (unsigned) d.month % 100, dd = (unsigned) d.day % 100;
    snprintf(buf, 11, "%04u-%02u-%02u", y, m, dd);
}

void
soffa_time_format(int64_t t_us, char buf[32])
{
    soffa_date_t d = soffa_date_from_us(t_us);
    int64_t in_day = t_us - soffa_date_to_days(d) * 86400000000LL;
    int64_t ms = in_day / 1000;
    snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", d.year % 10000, d.month % 100,
             d.day % 100, (int) (ms / 3600000), (int) (ms / 60000 % 60), (int) (ms / 1000 % 60),
             (int) (ms % 1000));
}

void
soffa_time_format_local(int64_t t_us, char buf[32])
{
    int64_t off = (int64_t) soffa_stockholm_offset_s(t_us) * 1000000;
    soffa_date_t d = soffa_date_local(t_us);
    int64_t sec = ((t_us + off) / 1000000) % 86400;
    if (sec < 0)
        sec += 86400;
    snprintf(buf, 32, "%04d-%02d-%02d %02d:%02d", d.year, d.month, d.day, (int) (sec / 3600), (int) (sec / 60 % 60));
}

void
soffa_time_format_local_rfc3339(int64_t t_us, char buf[32])
{
    int off = soffa_stockholm_offset_s(t_us);
    soffa_date_t d = soffa_date_local(t_us);
    int64_t sec = ((t_us + (int64_t) off * 1000000) / 1000000) % 86400;
    if (sec < 0)
        sec += 86400;
    snprintf(buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d+%02d:00", d.year, d.month, d.day, (int) (sec / 3600),
             (int) (sec / 60 % 60), (int) (sec % 60), off / 3600);
}

/* Reads exactly n digits at p into *v. */
static bool
s_digits(const char *p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char) p[i]))
            return false;
        *v = *v * 10 + (p[i] - '0');
    }
    return true;
}

bool
soffa_time_parse(const char *text, int64_t *t_us)
{
    /* YYYY-MM-DDTHH:MM[:SS](Z|+HH:MM|-HH:MM) */
    size_t len = strlen(text);
    if (len < 17)
        return false;
    char date[11];
    memcpy(date, text, 10);
    date[10] = '\0';
    soffa_date_t d;
    int hh, mm, ss = 0;
    if (!soffa_date_parse(date, &d) || (text[10] != 'T' && text[10] != ' ') || !s_digits(text + 11, 2, &hh)
        || text[13] != ':' || !s_digits(text + 14, 2, &mm) || hh > 23 || mm > 59)
        return false;
    const char *p = text + 16;
    if (*p == ':') {
        if (!s_digits(p + 1, 2, &ss) || ss > 59)
            return false;
        p += 3;
    }
    int off = 0;
    if (*p == 'Z' && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (!s_digits(p + 1, 2, &oh) || !s_digits(p + 4, 2, &om) || oh > 14 || om > 59)
            return false;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
    } else {
        return false;
    }
    *t_us = ((soffa_date_to_days(d) * 86400 + hh * 3600 + mm * 60 + ss) - off) * 1000000LL;
    return true;
}
