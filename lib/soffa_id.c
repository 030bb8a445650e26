/*  soffa_id: identity numbers, municipality codes and organisation codes. */
#include "soffa_id.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Generated at build time from config/kommuner.csv (cmake/kommuner.cmake). */
typedef struct {
    const char *code;
    const char *name;
} soffa_kommun_row_t;
extern const soffa_kommun_row_t soffa_kommun_rows[];
extern const size_t soffa_kommun_rows_count;

bool
soffa_luhn_ok(const char *digits, size_t n)
{
    if (n < 2)
        return false;
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char) digits[i]))
            return false;
        int v = digits[i] - '0';
        /* Weights 2,1,2,1,... counted from the left of the n-1 payload digits. */
        if ((n - 1 - i) % 2 == 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

static bool
s_all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char) s[i]))
            return false;
    return true;
}

static int
s_num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Validates a 12-digit candidate: date (with samordningsnummer day offset),
 * not after `today`, and the check digit. */
static soffa_err_t
s_check12(const char *d12, const soffa_date_t *today, soffa_id_kind_t *kind)
{
    if (!s_all_digits(d12, 12))
        return SOFFA_ERR_ID_FORMAT;
    int year = s_num(d12, 4), month = s_num(d12 + 4, 2), day = s_num(d12 + 6, 2);
    soffa_id_kind_t k = SOFFA_ID_PNR;
    if (day > 60) {
        day -= 60;
        k = SOFFA_ID_SAMNR;
    }
    if (year < 1800 || !soffa_date_valid(year, month, day))
        return SOFFA_ERR_ID_DATE;
    if (today) {
        soffa_date_t birth = {year, month, day};
        if (soffa_date_cmp(birth, *today) > 0)
            return SOFFA_ERR_ID_DATE;
    }
    if (s_num(d12 + 8, 3) == 0)
        return SOFFA_ERR_ID_FORMAT;   /* birth number runs 001..999 */
    if (!soffa_luhn_ok(d12 + 2, 10))
        return SOFFA_ERR_ID_CHECKSUM;
    if (kind)
        *kind = k;
    return SOFFA_OK;
}

soffa_err_t
soffa_id_parse(const char *text, const soffa_date_t *today, char out[13], soffa_id_kind_t *kind)
{
    if (!text || !out)
        return SOFFA_ERR_INVALID_ARG;
    soffa_date_t ref = today ? *today : soffa_date_today();

    while (*text == ' ' || *text == '\t')
        text++;
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r'
                       || text[len - 1] == '\n'))
        len--;

    char d12[13];
    switch (len) {
    case 12:
        if (!s_all_digits(text, 12))
            return SOFFA_ERR_ID_FORMAT;
        memcpy(d12, text, 12);
        break;
    case 13:
        if ((text[8] != '-' && text[8] != '+') || !s_all_digits(text, 8) || !s_all_digits(text + 9, 4))
            return SOFFA_ERR_ID_FORMAT;
        /* With the century written the year is plain; a '+' still claims
         * that the person has reached the year of the 100th birthday, and a
         * number that claims both a year and an age that disagree is a
         * typing mistake in one of them: refused rather than guessed. */
        if (text[8] == '+' && ref.year - s_num(text, 4) < 100)
            return SOFFA_ERR_ID_FORMAT;
        memcpy(d12, text, 8);
        memcpy(d12 + 8, text + 9, 4);
        break;
    case 10:
    case 11: {
        char sep = '-';
        char d10[10];
        if (len == 11) {
            sep = text[6];
            if ((sep != '-' && sep != '+') || !s_all_digits(text, 6) || !s_all_digits(text + 7, 4))
                return SOFFA_ERR_ID_FORMAT;
            memcpy(d10, text, 6);
            memcpy(d10 + 6, text + 7, 4);
        } else {
            if (!s_all_digits(text, 10))
                return SOFFA_ERR_ID_FORMAT;
            memcpy(d10, text, 10);
        }
        /* Century: the latest year ending in YY that is not after the
         * reference year; '+' means the person has reached the year of the
         * 100th birthday, so one century earlier. */
        int yy = s_num(d10, 2);
        int year = ref.year - ((ref.year - yy) % 100 + 100) % 100;
        if (sep == '+')
            year -= 100;
        d12[0] = (char) ('0' + year / 1000 % 10);
        d12[1] = (char) ('0' + year / 100 % 10);
        memcpy(d12 + 2, d10, 10);
        break;
    }
    default:
        return SOFFA_ERR_ID_FORMAT;
    }
    d12[12] = '\0';

    soffa_err_t rc = s_check12(d12, &ref, kind);
    if (rc != SOFFA_OK)
        return rc;
    memcpy(out, d12, 13);
    return SOFFA_OK;
}

soffa_err_t
soffa_id_check(const char *id12, soffa_id_kind_t *kind)
{
    if (!id12)
        return SOFFA_ERR_INVALID_ARG;
    if (strlen(id12) != 12)
        return SOFFA_ERR_ID_FORMAT;
    return s_check12(id12, NULL, kind);
}

soffa_err_t
soffa_id_birth_date(const char *id12, soffa_date_t *out)
{
    soffa_err_t rc = soffa_id_check(id12, NULL);
    if (rc != SOFFA_OK)
        return rc;
    int day = s_num(id12 + 6, 2);
    out->year = s_num(id12, 4);
    out->month = s_num(id12 + 4, 2);
    out->day = day > 60 ? day - 60 : day;
    return SOFFA_OK;
}

const char *
soffa_id_kind_name(soffa_id_kind_t kind)
{
    return kind == SOFFA_ID_SAMNR ? "samordningsnummer" : kind == SOFFA_ID_RESERVE ? "reservnummer" : "personnummer";
}

/* ---- Local reserve numbers ---------------------------------------------------- */

soffa_err_t
soffa_reserve_check(const char *id, const soffa_date_t *today)
{
    if (!id)
        return SOFFA_ERR_INVALID_ARG;
    if (strlen(id) != 12 || !s_all_digits(id, 8))
        return SOFFA_ERR_ID_FORMAT;
    int letters = 0;
    for (size_t i = 8; i < 12; i++) {
        if (id[i] >= 'A' && id[i] <= 'Z')
            letters++;
        else if (!(id[i] >= '0' && id[i] <= '9'))
            return SOFFA_ERR_ID_FORMAT;
    }
    if (letters < 2)
        return SOFFA_ERR_ID_FORMAT;   /* also: never a personnummer, never a birth number */
    int year = s_num(id, 4), month = s_num(id + 4, 2), day = s_num(id + 6, 2);
    if (year < 1900 || !soffa_date_valid(year, month, day))
        return SOFFA_ERR_ID_DATE;
    soffa_date_t ref = today ? *today : soffa_date_today();
    soffa_date_t birth = {year, month, day};
    if (soffa_date_cmp(birth, ref) > 0)
        return SOFFA_ERR_ID_DATE;
    return SOFFA_OK;
}

soffa_err_t
soffa_reserve_parse(const char *text, const soffa_date_t *today, char out[13])
{
    if (!text || !out)
        return SOFFA_ERR_INVALID_ARG;
    while (*text == ' ' || *text == '\t')
        text++;
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r'
                       || text[len - 1] == '\n'))
        len--;
    if (len != 12)
        return SOFFA_ERR_ID_FORMAT;
    char r[13];
    for (size_t i = 0; i < 12; i++)
        r[i] = (char) toupper((unsigned char) text[i]);
    r[12] = '\0';
    soffa_err_t rc = soffa_reserve_check(r, today);
    if (rc == SOFFA_OK)
        memcpy(out, r, 13);
    return rc;
}

soffa_err_t
soffa_reserve_birth_date(const char *id, soffa_date_t *out)
{
    soffa_err_t rc = soffa_reserve_check(id, NULL);
    if (rc != SOFFA_OK)
        return rc;
    out->year = s_num(id, 4);
    out->month = s_num(id + 4, 2);
    out->day = s_num(id + 6, 2);
    return SOFFA_OK;
}

soffa_err_t
soffa_id_parse_any(const char *text, const soffa_date_t *today, char out[13], soffa_id_kind_t *kind)
{
    if (!text || !out)
        return SOFFA_ERR_INVALID_ARG;
    soffa_err_t rc = soffa_id_parse(text, today, out, kind);
    if (rc == SOFFA_OK)
        return SOFFA_OK;
    bool letter = false;
    for (const char *p = text; *p; p++)
        letter |= isalpha((unsigned char) *p) != 0;
    if (!letter)
        return rc;
    rc = soffa_reserve_parse(text, today, out);
    if (rc == SOFFA_OK && kind)
        *kind = SOFFA_ID_RESERVE;
    return rc;
}

static int
s_kommun_cmp(const void *key, const void *elem)
{
    return strcmp((const char *) key, ((const soffa_kommun_row_t *) elem)->code);
}

const char *
soffa_kommun_name(const char *code)
{
    if (!code || strlen(code) != 4)
        return NULL;
    /* Rows are generated in code order. */
    const soffa_kommun_row_t *row = bsearch(code, soffa_kommun_rows, soffa_kommun_rows_count,
                                            sizeof *soffa_kommun_rows, s_kommun_cmp);
    return row ? row->name : NULL;
}

soffa_err_t
soffa_kommun_check(const char *code)
{
    return soffa_kommun_name(code) ? SOFFA_OK : SOFFA_ERR_KOMMUN;
}

size_t
soffa_kommun_count(void)
{
    return soffa_kommun_rows_count;
}

const char *
soffa_kommun_at(size_t i)
{
    return i < soffa_kommun_rows_count ? soffa_kommun_rows[i].code : NULL;
}

soffa_err_t
soffa_skolenhet_check(const char *code)
{
    if (!code || strlen(code) != 8 || !s_all_digits(code, 8))
        return SOFFA_ERR_SKOLENHET;
    return SOFFA_OK;
}

soffa_err_t
soffa_orgnr_check(const char *orgnr)
{
    char d[11];
    return soffa_orgnr_parse(orgnr, d);
}

soffa_err_t
soffa_orgnr_parse(const char *orgnr, char out[11])
{
    char d[10];
    if (!orgnr || !out)
        return SOFFA_ERR_ORGNR;
    size_t len = strlen(orgnr);
    if (len == 10 && s_all_digits(orgnr, 10)) {
        memcpy(d, orgnr, 10);
    } else if (len == 11 && orgnr[6] == '-' && s_all_digits(orgnr, 6)
               && s_all_digits(orgnr + 7, 4)) {
        memcpy(d, orgnr, 6);
        memcpy(d + 6, orgnr + 7, 4);
    } else {
        return SOFFA_ERR_ORGNR;
    }
    if (!soffa_luhn_ok(d, 10))
        return SOFFA_ERR_ORGNR;
    memcpy(out, d, 10);
    out[10] = '\0';
    return SOFFA_OK;
}
