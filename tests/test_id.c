/*  Tests for soffa_id: personnummer, samordningsnummer, kommunkod,
 *  skolenhetskod and organisationsnummer. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "soffa_id.h"
#include "testkit.h"

static const soffa_date_t TODAY = {2026, 11, 23};

static soffa_err_t
parse(const char *in, char out[13], soffa_id_kind_t *kind)
{
    return soffa_id_parse(in, &TODAY, out, kind);
}

Test(id, worked_examples_from_the_domain_guide)
{
    char c[13];
    soffa_id_kind_t k;
    cr_assert_eq(parse("640823-3234", c, &k), SOFFA_OK);
    cr_assert_str_eq(c, "196408233234");
    cr_assert_eq(k, SOFFA_ID_PNR);
    cr_assert_eq(parse("811218-9876", c, &k), SOFFA_OK);
    cr_assert_str_eq(c, "198112189876");
    cr_assert_eq(parse("701063-2391", c, &k), SOFFA_OK);
    cr_assert_str_eq(c, "197010632391");
    cr_assert_eq(k, SOFFA_ID_SAMNR);
}

Test(id, every_written_form_gives_the_same_canonical_number)
{
    const char *forms[] = {"6408233234", "640823-3234", "196408233234", "19640823-3234",
                           "  640823-3234 ", "\t196408233234\n"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        char c[13];
        cr_assert_eq(parse(forms[i], c, NULL), SOFFA_OK, "form %zu", i);
        cr_assert_str_eq(c, "196408233234", "form %zu", i);
    }
}

Test(id, century_follows_the_reference_date_and_the_plus_sign)
{
    char p[13], c[13], in[16];
    /* Born 2026-11-22: yesterday; the short form means this century. */
    tk_pnr(2026, 11, 22, 123, 0, p);
    snprintf(in, sizeof in, "%.6s-%.4s", p + 2, p + 8);
    cr_assert_eq(parse(in, c, NULL), SOFFA_OK);
    cr_assert_str_eq(c, p);
    /* Born 1927-01-01: "27" with '-' cannot be 2027 (future), so 1927. */
    tk_pnr(1927, 1, 1, 456, 0, p);
    snprintf(in, sizeof in, "%.6s-%.4s", p + 2, p + 8);
    cr_assert_eq(parse(in, c, NULL), SOFFA_OK);
    cr_assert_str_eq(c, p);
    /* Born 1926-05-05: turns 100 this year, so written with '+'. */
    tk_pnr(1926, 5, 5, 789, 0, p);
    snprintf(in, sizeof in, "%.6s+%.4s", p + 2, p + 8);
    cr_assert_eq(parse(in, c, NULL), SOFFA_OK);
    cr_assert_str_eq(c, p);
    /* The same digits with '-' mean 2026, a different (valid) date. */
    snprintf(in, sizeof in, "%.6s-%.4s", p + 2, p + 8);
    cr_assert_eq(parse(in, c, NULL), SOFFA_OK);
    cr_assert_eq(strncmp(c, "2026", 4), 0);
    /* '+' for someone over 100 years: 1912. */
    tk_pnr(1912, 12, 12, 121, 0, p);
    snprintf(in, sizeof in, "%.6s+%.4s", p + 2, p + 8);
    cr_assert_eq(parse(in, c, NULL), SOFFA_OK);
    cr_assert_str_eq(c, p);
}

Test(id, leap_days)
{
    char p[13], c[13];
    tk_pnr(2000, 2, 29, 100, 0, p);
    cr_assert_eq(parse(p, c, NULL), SOFFA_OK);
    tk_pnr(2008, 2, 29, 100, 0, p);
    cr_assert_eq(parse(p, c, NULL), SOFFA_OK);
    tk_pnr(1900, 2, 29, 100, 0, p);   /* 1900 was not a leap year */
    cr_assert_eq(parse(p, c, NULL), SOFFA_ERR_ID_DATE);
    tk_pnr(2023, 2, 29, 100, 0, p);
    cr_assert_eq(parse(p, c, NULL), SOFFA_ERR_ID_DATE);
    /* Samordningsnummer: day 89 is 29 February + 60. */
    tk_pnr(2004, 2, 29, 100, 1, p);
    soffa_id_kind_t k;
    cr_assert_eq(parse(p, c, &k), SOFFA_OK);
    cr_assert_eq(k, SOFFA_ID_SAMNR);
    tk_pnr(2005, 2, 29, 100, 1, p);
    cr_assert_eq(parse(p, c, NULL), SOFFA_ERR_ID_DATE);
}

Test(id, impossible_dates)
{
    char p[13], c[13];
    const int bad[][3] = {{2001, 13, 1}, {2001, 0, 10}, {2001, 4, 31}, {2001, 1, 32}, {2001, 6, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tk_pnr(bad[i][0], bad[i][1], bad[i][2], 555, 0, p);
        cr_assert_eq(parse(p, c, NULL), SOFFA_ERR_ID_DATE, "case %zu (%s)", i, p);
    }
    /* A samordningsnummer day above 91 is no date at all. */
    tk_pnr(2001, 1, 32, 555, 1, p);
    cr_assert_eq(parse(p, c, NULL), SOFFA_ERR_ID_DATE);
    /* Born tomorrow. */
    tk_pnr(2026, 11, 24, 555, 0, p);
    cr_assert_eq(parse(p, c, NULL), SOFFA_ERR_ID_DATE);
}

Test(id, bad_check_digits)
{
    char c[13];
    cr_assert_eq(parse("640823-3235", c, NULL), SOFFA_ERR_ID_CHECKSUM);
    for (int d = 0; d <= 9; d++) {
        char in[12];
        snprintf(in, sizeof in, "811218-987%d", d);
        cr_assert_eq(parse(in, c, NULL), d == 6 ? SOFFA_OK : SOFFA_ERR_ID_CHECKSUM, "digit %d", d);
    }
    /* Two swapped digits are caught too. */
    cr_assert_eq(parse("640823-2334", c, NULL), SOFFA_ERR_ID_CHECKSUM);
}

Test(id, wrong_lengths_stray_characters_and_spaces)
{
    const char *bad[] = {"", "64082332", "640823323", "6408233234567", "19640823323412",
                         "640823-323a", "640823_3234", "6408 23-3234", "640823 3234",
                         "640823--3234", "1964-0823-3234", "196408233-234", "640823+-3234",
                         "６４０８２３-３２３４", "640823-0004"};
    char c[13];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        soffa_err_t rc = parse(bad[i], c, NULL);
        cr_assert(rc == SOFFA_ERR_ID_FORMAT || (i == 14 && rc != SOFFA_OK),
                  "'%s' gave %s", bad[i], soffa_errname(rc));
    }
    cr_assert_eq(soffa_id_parse(NULL, &TODAY, c, NULL), SOFFA_ERR_INVALID_ARG);
}

Test(id, canonical_check_and_birth_date)
{
    soffa_id_kind_t k;
    cr_assert_eq(soffa_id_check("197010632391", &k), SOFFA_OK);
    cr_assert_eq(k, SOFFA_ID_SAMNR);
    soffa_date_t b;
    cr_assert_eq(soffa_id_birth_date("197010632391", &b), SOFFA_OK);
    cr_assert_eq(soffa_date_to_int(b), 19701003u);
    cr_assert_eq(soffa_id_check("7010632391", &k), SOFFA_ERR_ID_FORMAT);
    cr_assert_eq(soffa_id_check("197010632392", &k), SOFFA_ERR_ID_CHECKSUM);
    cr_assert_str_eq(soffa_id_kind_name(SOFFA_ID_SAMNR), "samordningsnummer");
}

Test(id, municipality_codes)
{
    cr_assert_eq(soffa_kommun_count(), 290);
    cr_assert_str_eq(soffa_kommun_at(0), "0114");
    cr_assert_str_eq(soffa_kommun_at(289), "2584");
    cr_assert_null(soffa_kommun_at(290));
    for (size_t i = 1; i < 290; i++)
        cr_assert_lt(strcmp(soffa_kommun_at(i - 1), soffa_kommun_at(i)), 0, "codes in order");
    cr_assert_str_eq(soffa_kommun_name("1419"), "Tjörn");
    cr_assert_str_eq(soffa_kommun_name("1415"), "Stenungsund");
    cr_assert_str_eq(soffa_kommun_name("0180"), "Stockholm");
    cr_assert_str_eq(soffa_kommun_name("1280"), "Malmö");
    cr_assert_str_eq(soffa_kommun_name("1480"), "Göteborg");
    cr_assert_str_eq(soffa_kommun_name("1481"), "Mölndal");
    cr_assert_str_eq(soffa_kommun_name("0114"), "Upplands Väsby");
    cr_assert_str_eq(soffa_kommun_name("2584"), "Kiruna");
    const char *bad[] = {"0000", "9999", "0100", "1400", "141", "14190", "14 9", "", "abcd"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(soffa_kommun_check(bad[i]), SOFFA_ERR_KOMMUN, "'%s'", bad[i]);
    cr_assert_eq(soffa_kommun_check(NULL), SOFFA_ERR_KOMMUN);
}

Test(id, school_unit_codes)
{
    cr_assert_eq(soffa_skolenhet_check("12345678"), SOFFA_OK);
    cr_assert_eq(soffa_skolenhet_check("1234567"), SOFFA_ERR_SKOLENHET);
    cr_assert_eq(soffa_skolenhet_check("123456789"), SOFFA_ERR_SKOLENHET);
    cr_assert_eq(soffa_skolenhet_check("1234567a"), SOFFA_ERR_SKOLENHET);
    cr_assert_eq(soffa_skolenhet_check(NULL), SOFFA_ERR_SKOLENHET);
}

Test(id, organisation_numbers)
{
    /* Complete 212000-135? with its check digit, then spoil it. */
    char good[11] = "2120001350";
    for (int d = 0; d <= 9; d++) {
        good[9] = (char) ('0' + d);
        if (soffa_luhn_ok(good, 10))
            break;
    }
    cr_assert_eq(soffa_orgnr_check(good), SOFFA_OK);
    char dashed[12];
    snprintf(dashed, sizeof dashed, "%.6s-%.4s", good, good + 6);
    cr_assert_eq(soffa_orgnr_check(dashed), SOFFA_OK);
    char bad[11];
    memcpy(bad, good, 11);
    bad[9] = (char) ('0' + (good[9] - '0' + 1) % 10);
    cr_assert_eq(soffa_orgnr_check(bad), SOFFA_ERR_ORGNR);
    cr_assert_eq(soffa_orgnr_check("212000135"), SOFFA_ERR_ORGNR);
    cr_assert_eq(soffa_orgnr_check("21200-01355"), SOFFA_ERR_ORGNR);
}

/* Issue 11, item 5: a reserve number has one form, carries a birth date,
 * and is never a personnummer or samordningsnummer. */
Test(id, issue_11_05_reserve_numbers_have_one_form)
{
    static const struct {
        const char *id;
        soffa_err_t want;
    } cases[] = {
        {"20080314TF10", SOFFA_OK},         /* SCB's convention */
        {"20080314TF20", SOFFA_OK},
        {"19991231AB00", SOFFA_OK},
        {"20080314ABCD", SOFFA_OK},
        {"20080314A1B2", SOFFA_OK},
        {"20261123TF10", SOFFA_OK},         /* born today */
        {"", SOFFA_ERR_ID_FORMAT},
        {"2008031TF10", SOFFA_ERR_ID_FORMAT},
        {"20080314TF100", SOFFA_ERR_ID_FORMAT},
        {"20080314tf10", SOFFA_ERR_ID_FORMAT},    /* uppercase on the wire */
        {"20080314T010", SOFFA_ERR_ID_FORMAT},    /* one letter: a birth number would fit */
        {"2008031427A0", SOFFA_ERR_ID_FORMAT},    /* a personnummer's date and birth number */
        {"200803142710", SOFFA_ERR_ID_FORMAT},    /* digits only: a personnummer */
        {"197010632391", SOFFA_ERR_ID_FORMAT},    /* a samordningsnummer */
        {"20080314TF1-", SOFFA_ERR_ID_FORMAT},
        {"20080314TF 0", SOFFA_ERR_ID_FORMAT},
        {"2008O314TF10", SOFFA_ERR_ID_FORMAT},    /* a letter O in the date */
        {"RES0042XXXXX", SOFFA_ERR_ID_FORMAT},
        {"20081314TF10", SOFFA_ERR_ID_DATE},
        {"20070229TF10", SOFFA_ERR_ID_DATE},
        {"18991231TF10", SOFFA_ERR_ID_DATE},
        {"20261124TF10", SOFFA_ERR_ID_DATE},      /* born tomorrow */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_assert_eq(soffa_reserve_check(cases[i].id, &TODAY), cases[i].want, "'%s' gave %s, wanted %s", cases[i].id,
                     soffa_errname(soffa_reserve_check(cases[i].id, &TODAY)), soffa_errname(cases[i].want));
    cr_assert_eq(soffa_reserve_check(NULL, &TODAY), SOFFA_ERR_INVALID_ARG);

    soffa_date_t b;
    cr_assert_eq(soffa_reserve_birth_date("20080314TF10", &b), SOFFA_OK);
    cr_assert_eq(soffa_date_to_int(b), 20080314u);
    cr_assert_eq(soffa_reserve_birth_date("200803142710", &b), SOFFA_ERR_ID_FORMAT);
    cr_assert_str_eq(soffa_id_kind_name(SOFFA_ID_RESERVE), "reservnummer");
}

Test(id, issue_11_05_people_may_type_any_identity)
{
    char c[13];
    soffa_id_kind_t k;
    cr_assert_eq(soffa_reserve_parse("  20080314tf10\n", &TODAY, c), SOFFA_OK);
    cr_assert_str_eq(c, "20080314TF10");
    cr_assert_eq(soffa_reserve_parse("20080314-TF10", &TODAY, c), SOFFA_ERR_ID_FORMAT);
    cr_assert_eq(soffa_id_parse_any("640823-3234", &TODAY, c, &k), SOFFA_OK);
    cr_assert_str_eq(c, "196408233234");
    cr_assert_eq(k, SOFFA_ID_PNR);
    cr_assert_eq(soffa_id_parse_any("701063-2391", &TODAY, c, &k), SOFFA_OK);
    cr_assert_eq(k, SOFFA_ID_SAMNR);
    cr_assert_eq(soffa_id_parse_any("20080314tf10", &TODAY, c, &k), SOFFA_OK);
    cr_assert_str_eq(c, "20080314TF10");
    cr_assert_eq(k, SOFFA_ID_RESERVE);
    /* The error is the one of the form the text looks like. */
    cr_assert_eq(soffa_id_parse_any("640823-3235", &TODAY, c, &k), SOFFA_ERR_ID_CHECKSUM);
    cr_assert_eq(soffa_id_parse_any("2008031427A0", &TODAY, c, &k), SOFFA_ERR_ID_FORMAT);
    cr_assert_eq(soffa_id_parse_any("20300314TF10", &TODAY, c, &k), SOFFA_ERR_ID_DATE);
    /* The plain parser still takes personnummer only. */
    cr_assert_eq(soffa_id_parse("20080314TF10", &TODAY, c, &k), SOFFA_ERR_ID_FORMAT);
}

Test(id, issue_11_08_organisation_numbers_have_a_canonical_form)
{
    char c[11];
    cr_assert_eq(soffa_orgnr_parse("212000-1355", c), SOFFA_OK);
    cr_assert_str_eq(c, "2120001355");
    cr_assert_eq(soffa_orgnr_parse("2120001355", c), SOFFA_OK);
    cr_assert_str_eq(c, "2120001355");
    cr_assert_eq(soffa_orgnr_parse("2120001356", c), SOFFA_ERR_ORGNR);
    cr_assert_eq(soffa_orgnr_parse(NULL, c), SOFFA_ERR_ORGNR);
}

/* ---- Issue 13, rule 12: what the personnummer libraries accept --------------
 *
 * The published test data of the personnummer libraries (personnummer/js,
 * /go, /php and their shared testdata) accept a number in six written forms
 * (YYMMDDNNNC, YYMMDD-NNNC, YYMMDD+NNNC, YYYYMMDDNNNC, YYYYMMDD-NNNC,
 * YYYYMMDD+NNNC, the '+' for people aged 100 or more, born in the 1900s
 * or the 1800s), samordningsnummer (day + 60), leap days by the Gregorian
 * rules and the year 2000, and they refuse wrong check digits, impossible
 * dates, the birth number 000, interim numbers (a letter in the birth number,
 * YYMMDD-T22C) and other separators such as a space. The rows below follow
 * those ideas with numbers made up here (a chosen date and birth number with
 * the check digit computed), never the libraries' own data.
 *
 * Where soffa is deliberately stricter, the row says so: a date after the
 * reference date is no one yet, and a written century with a '+' for someone
 * under 100 contradicts itself. */

typedef struct {
    const char *form;   /* "12", "12-", "12+", "10", "10-", "10+", "12 ", "10 ", "10_", or NULL: literal */
    int y, m, d, n;     /* birth date and birth number of the made-up number */
    int samnr;          /* day + 60 */
    int spoil;          /* added to the check digit (mod 10): 0 keeps it right */
    char letter;        /* replaces the first digit of the birth number (interim numbers) */
    const char *literal;/* the input itself, when form is NULL */
    soffa_err_t want;
    int canon_year;     /* year of the canonical result when it differs from y (century rules) */
    const char *why;
} s_pnr_row_t;

/* Writes row r as a person would type it. */
static void
s_pnr_text(const s_pnr_row_t *r, char *out, size_t outlen)
{
    if (!r->form) {
        snprintf(out, outlen, "%s", r->literal);
        return;
    }
    char p[13];
    tk_pnr(r->y, r->m, r->d, r->n, r->samnr, p);
    p[11] = (char) ('0' + (p[11] - '0' + r->spoil) % 10);
    if (r->letter)
        p[8] = r->letter;
    bool lng = r->form[0] == '1' && r->form[1] == '2';
    const char *digits = lng ? p : p + 2;
    size_t head = lng ? 8 : 6;
    char sep = r->form[2];
    if (sep)
        snprintf(out, outlen, "%.*s%c%.4s", (int) head, digits, sep, digits + head);
    else
        snprintf(out, outlen, "%s", digits);
}

static const s_pnr_row_t s_pnr_rows[] = {
    /* Every written form of an ordinary number. */
    {"12", 1985, 6, 21, 433, 0, 0, 0, NULL, SOFFA_OK, 0, "long form"},
    {"12-", 1985, 6, 21, 433, 0, 0, 0, NULL, SOFFA_OK, 0, "long form with '-'"},
    {"10", 1985, 6, 21, 433, 0, 0, 0, NULL, SOFFA_OK, 0, "short form"},
    {"10-", 1985, 6, 21, 433, 0, 0, 0, NULL, SOFFA_OK, 0, "short form with '-'"},
    {"10", 1993, 4, 8, 286, 0, 0, 0, NULL, SOFFA_OK, 0, "short form, woman's birth number"},
    {"12-", 1993, 4, 8, 286, 0, 0, 0, NULL, SOFFA_OK, 0, "long form with '-', woman's birth number"},
    /* Aged 100 or more: '+' in both forms (the issue: the long form with '+' was refused). */
    {"12+", 1911, 8, 19, 236, 0, 0, 0, NULL, SOFFA_OK, 0, "born 1911, long form with '+'"},
    {"10+", 1911, 8, 19, 236, 0, 0, 0, NULL, SOFFA_OK, 0, "born 1911, short form with '+'"},
    {"12", 1911, 8, 19, 236, 0, 0, 0, NULL, SOFFA_OK, 0, "born 1911, long form without separator"},
    {"12-", 1911, 8, 19, 236, 0, 0, 0, NULL, SOFFA_OK, 0, "born 1911, long form with '-': the year is written"},
    {"12+", 1884, 2, 17, 812, 0, 0, 0, NULL, SOFFA_OK, 0, "born 1884, long form with '+'"},
    {"10+", 1884, 2, 17, 812, 0, 0, 0, NULL, SOFFA_OK, 0, "born 1884, short form with '+'"},
    {"12+", 1916, 10, 30, 517, 0, 0, 0, NULL, SOFFA_OK, 0, "born 1916, long form with '+'"},
    {"10+", 1900, 1, 1, 10, 0, 0, 0, NULL, SOFFA_OK, 0, "born 1900: 00 with '+' is 1900"},
    {"12+", 1926, 5, 5, 789, 0, 0, 0, NULL, SOFFA_OK, 0, "turns 100 this year: '+' from 1 January"},
    {"12+", 1926, 11, 24, 789, 0, 0, 0, NULL, SOFFA_OK, 0, "turns 100 tomorrow, still this year: '+'"},
    {"10+", 1926, 11, 24, 789, 0, 0, 0, NULL, SOFFA_OK, 0, "turns 100 tomorrow, short form with '+'"},
    {"12+", 1920, 3, 3, 301, 1, 0, 0, NULL, SOFFA_OK, 0, "samordningsnummer, born 1920, long form with '+'"},
    /* Century rules of the short forms. */
    {"10-", 2000, 7, 3, 482, 0, 0, 0, NULL, SOFFA_OK, 0, "00 is 2000"},
    {"10", 2000, 7, 3, 482, 0, 0, 0, NULL, SOFFA_OK, 0, "00 without separator is 2000"},
    {"10-", 1926, 5, 5, 789, 0, 0, 0, NULL, SOFFA_OK, 2026, "26 with '-' is this century"},
    {"10-", 1927, 1, 1, 456, 0, 0, 0, NULL, SOFFA_OK, 0, "27 with '-': 2027 is ahead, so 1927"},
    {"10+", 2001, 1, 1, 456, 0, 0, 0, NULL, SOFFA_OK, 1901, "01 with '+' is 1901"},
    {"10-", 2026, 11, 23, 123, 0, 0, 0, NULL, SOFFA_OK, 0, "born today"},
    /* Samordningsnummer. */
    {"12", 1961, 9, 25, 361, 1, 0, 0, NULL, SOFFA_OK, 0, "samordningsnummer, long form"},
    {"10-", 1961, 9, 25, 361, 1, 0, 0, NULL, SOFFA_OK, 0, "samordningsnummer, short form"},
    {"12-", 1976, 1, 6, 842, 1, 0, 0, NULL, SOFFA_OK, 0, "samordningsnummer, long form with '-'"},
    {"10", 2008, 3, 31, 271, 1, 0, 0, NULL, SOFFA_OK, 0, "samordningsnummer, day 91"},
    {"12", 2008, 2, 29, 100, 1, 0, 0, NULL, SOFFA_OK, 0, "samordningsnummer on a leap day (day 89)"},
    {"12", 2005, 2, 29, 100, 1, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "samordningsnummer, 29 February of 2005"},
    {"12", 2001, 1, 32, 555, 1, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "samordningsnummer, day 92"},
    {"12", 2001, 4, 31, 555, 1, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "samordningsnummer, 31 April (day 91)"},
    {"12", 2001, 1, 0, 555, 1, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "day 60: neither a date nor a samordningsnummer"},
    /* Leap days. */
    {"12", 2000, 2, 29, 100, 0, 0, 0, NULL, SOFFA_OK, 0, "2000 was a leap year (divisible by 400)"},
    {"12", 2008, 2, 29, 100, 0, 0, 0, NULL, SOFFA_OK, 0, "2008 was a leap year"},
    {"12", 1900, 2, 29, 100, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "1900 was no leap year"},
    {"12", 2009, 2, 29, 100, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "2009 was no leap year"},
    {"10+", 1900, 2, 29, 100, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "1900 was no leap year, short form"},
    /* Impossible dates. */
    {"12", 2001, 13, 1, 555, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "month 13"},
    {"12", 2001, 0, 10, 555, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "month 00"},
    {"12", 2001, 6, 0, 555, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "day 00"},
    {"12", 1996, 11, 31, 123, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "31 November"},
    {"10-", 2013, 24, 35, 445, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "month 24, day 35"},
    {"12", 1998, 13, 7, 131, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "month 13, day 7"},
    /* Stricter than the libraries: no one is born after the reference date. */
    {"12", 2026, 11, 24, 555, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "born tomorrow (soffa: stricter)"},
    {"10-", 2026, 12, 1, 555, 0, 0, 0, NULL, SOFFA_ERR_ID_DATE, 0, "261201 with '-' is next week (soffa: stricter)"},
    /* Stricter than the libraries: a '+' and a written year that disagree. */
    {"12+", 1985, 6, 21, 433, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "born 1985 with '+' (soffa: stricter)"},
    {"12+", 1927, 1, 1, 456, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "turns 100 next year, '+' (soffa: stricter)"},
    {"12+", 2008, 3, 14, 271, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "a youth with '+' (soffa: stricter)"},
    /* Wrong check digits, in every form. */
    {"12", 1985, 6, 21, 433, 0, 1, 0, NULL, SOFFA_ERR_ID_CHECKSUM, 0, "long form, check digit + 1"},
    {"12-", 1988, 9, 9, 127, 0, 5, 0, NULL, SOFFA_ERR_ID_CHECKSUM, 0, "long form with '-', check digit + 5"},
    {"12+", 1911, 8, 19, 236, 0, 9, 0, NULL, SOFFA_ERR_ID_CHECKSUM, 0, "long form with '+', check digit - 1"},
    {"10", 2013, 5, 2, 618, 0, 3, 0, NULL, SOFFA_ERR_ID_CHECKSUM, 0, "short form, check digit + 3"},
    {"10+", 1884, 2, 17, 812, 0, 2, 0, NULL, SOFFA_ERR_ID_CHECKSUM, 0, "short form with '+', check digit + 2"},
    {"12", 1944, 3, 3, 774, 1, 4, 0, NULL, SOFFA_ERR_ID_CHECKSUM, 0, "samordningsnummer, check digit + 4"},
    {"10-", 2011, 12, 12, 286, 1, 7, 0, NULL, SOFFA_ERR_ID_CHECKSUM, 0, "samordningsnummer, check digit + 7"},
    /* Birth number 000 is never issued. */
    {"12", 2016, 4, 4, 0, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "birth number 000"},
    {"10-", 2000, 2, 29, 0, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "birth number 000 on a leap day"},
    {"12", 1961, 9, 25, 0, 1, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "samordningsnummer, birth number 000"},
    {"10", 2008, 3, 14, 1, 0, 0, 0, NULL, SOFFA_OK, 0, "birth number 001"},
    {"10", 2008, 3, 14, 999, 0, 0, 0, NULL, SOFFA_OK, 0, "birth number 999"},
    /* Interim numbers (a letter for the first digit of the birth number) are
     * no personnummer: the libraries accept them only when asked to. */
    {"12", 2003, 6, 17, 144, 0, 0, 'T', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number T, long form"},
    {"12-", 2003, 6, 17, 144, 0, 0, 'R', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number R, long form with '-'"},
    {"10-", 2003, 6, 17, 144, 0, 0, 'S', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number S, short form"},
    {"10", 2003, 6, 17, 144, 0, 0, 'U', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number U"},
    {"10-", 2003, 6, 17, 144, 0, 0, 'W', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number W"},
    {"10-", 2003, 6, 17, 144, 0, 0, 'X', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number X"},
    {"12-", 2003, 6, 17, 144, 0, 0, 'J', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number J"},
    {"12-", 2003, 6, 17, 144, 0, 0, 'K', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number K"},
    {"12", 2003, 6, 17, 144, 0, 0, 'L', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number L"},
    {"12", 2003, 6, 17, 144, 0, 0, 'M', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number M"},
    {"10-", 2003, 6, 17, 144, 0, 0, 'N', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number N"},
    {"10-", 2003, 6, 17, 144, 0, 0, 'P', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number P"},
    {"10-", 2003, 6, 17, 144, 0, 0, 'A', NULL, SOFFA_ERR_ID_FORMAT, 0, "a letter that is not even an interim letter"},
    {"12", 2003, 6, 17, 144, 0, 0, 't', NULL, SOFFA_ERR_ID_FORMAT, 0, "interim number, lowercase"},
    /* Other separators and shapes. */
    {"12 ", 1911, 8, 19, 236, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "long form with a space"},
    {"10 ", 1911, 8, 19, 236, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "short form with a space"},
    {"10_", 1997, 10, 2, 651, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "short form with '_'"},
    {"12_", 1997, 10, 2, 651, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "long form with '_'"},
    {"12/", 1997, 10, 2, 651, 0, 0, 0, NULL, SOFFA_ERR_ID_FORMAT, 0, "long form with '/'"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "inte ett nummer", SOFFA_ERR_ID_FORMAT, 0, "words"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "", SOFFA_ERR_ID_FORMAT, 0, "nothing"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "860412731", SOFFA_ERR_ID_FORMAT, 0, "nine digits: the check digit missing"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "860412-731", SOFFA_ERR_ID_FORMAT, 0, "short form without check digit"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "19860412-731", SOFFA_ERR_ID_FORMAT, 0, "long form without check digit"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "120304+005", SOFFA_ERR_ID_FORMAT, 0, "'+' form without check digit"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "1911081923661", SOFFA_ERR_ID_FORMAT, 0, "13 digits"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "19110819++2366", SOFFA_ERR_ID_FORMAT, 0, "two separators"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "1911081+92366", SOFFA_ERR_ID_FORMAT, 0, "a '+' in the wrong place"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "+191108192366", SOFFA_ERR_ID_FORMAT, 0, "a leading '+'"},
    {NULL, 0, 0, 0, 0, 0, 0, 0, "110819-+2366", SOFFA_ERR_ID_FORMAT, 0, "'-' and '+'"},
};

Test(id, issue_13_12_the_forms_the_personnummer_libraries_accept)
{
    size_t n = sizeof s_pnr_rows / sizeof *s_pnr_rows;
    cr_assert_geq(n, 80);
    for (size_t i = 0; i < n; i++) {
        const s_pnr_row_t *r = &s_pnr_rows[i];
        char in[40], c[13] = "", p[13];
        s_pnr_text(r, in, sizeof in);
        soffa_id_kind_t k = 0;
        soffa_err_t rc = parse(in, c, &k);
        cr_assert_eq(rc, r->want, "row %zu (%s): '%s' gave %s, wanted %s", i, r->why, in, soffa_errname(rc),
                     soffa_errname(r->want));
        if (rc != SOFFA_OK)
            continue;
        /* Accepted: the canonical form is the made-up number, in the
         * century the rules give. */
        tk_pnr(r->canon_year ? r->canon_year : r->y, r->m, r->d, r->n, r->samnr, p);
        cr_assert_str_eq(c, p, "row %zu (%s): '%s'", i, r->why, in);
        cr_assert_eq(k, r->samnr ? SOFFA_ID_SAMNR : SOFFA_ID_PNR, "row %zu (%s)", i, r->why);
        /* The canonical form is itself accepted, as carried in messages. */
        cr_assert_eq(soffa_id_check(c, &k), SOFFA_OK, "row %zu (%s)", i, r->why);
    }
}

/* The reference date decides what '+' may mean: the same long form with '+'
 * is a contradiction before the year of the 100th birthday and right from
 * 1 January of it. */
Test(id, issue_13_12_plus_in_the_long_form_follows_the_reference_year)
{
    char p[13], in[16], c[13];
    tk_pnr(1926, 12, 31, 789, 0, p);
    snprintf(in, sizeof in, "%.8s+%.4s", p, p + 8);
    soffa_date_t before = {2025, 12, 31}, from = {2026, 1, 1};
    cr_assert_eq(soffa_id_parse(in, &before, c, NULL), SOFFA_ERR_ID_FORMAT);
    cr_assert_eq(soffa_id_parse(in, &from, c, NULL), SOFFA_OK);
    cr_assert_str_eq(c, p);
    /* The short form with '+' is the same person from the same day on. */
    snprintf(in, sizeof in, "%.6s+%.4s", p + 2, p + 8);
    cr_assert_eq(soffa_id_parse(in, &from, c, NULL), SOFFA_OK);
    cr_assert_str_eq(c, p);
    /* And the parser that reads any identity takes it too. */
    soffa_id_kind_t k;
    snprintf(in, sizeof in, "%.8s+%.4s", p, p + 8);
    cr_assert_eq(soffa_id_parse_any(in, &from, c, &k), SOFFA_OK);
    cr_assert_eq(k, SOFFA_ID_PNR);
}
