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
