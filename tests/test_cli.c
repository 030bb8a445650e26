/*  Tests for the soffa command line, run as a real process. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit.h"

#define SOFFA SOFFA_BIN_DIR "/soffa"

static int
run(char *out_err[2], const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[] = {SOFFA, (char *) a1, (char *) a2, (char *) a3, (char *) a4, NULL};
    return tk_run(argv, &out_err[0], &out_err[1]);
}

static void
done(char *oe[2])
{
    free(oe[0]);
    free(oe[1]);
}

Test(cli, check_id_prints_the_canonical_form)
{
    char *oe[2];
    cr_assert_eq(run(oe, "check-id", "640823-3234", NULL, NULL), 0);
    cr_assert_str_eq(oe[0], "196408233234 personnummer\n");
    cr_assert_str_eq(oe[1], "");
    done(oe);
    cr_assert_eq(run(oe, "check-id", "701063-2391", NULL, NULL), 0);
    cr_assert_str_eq(oe[0], "197010632391 samordningsnummer\n");
    done(oe);
    cr_assert_eq(run(oe, "check-id", "--json", "811218-9876", NULL), 0);
    cr_assert_str_eq(oe[0], "{\"id\":\"198112189876\",\"kind\":\"personnummer\",\"birth_date\":\"1981-12-18\"}\n");
    done(oe);
    /* The reference date decides the century of short forms. */
    cr_assert_eq(run(oe, "check-id", "--today", "2026-11-23", "261122-1234"), 1);
    done(oe);
}

Test(cli, check_id_says_what_is_wrong_without_repeating_the_number)
{
    char *oe[2];
    cr_assert_eq(run(oe, "check-id", "640823-3235", NULL, NULL), 1);
    cr_assert_str_eq(oe[0], "");
    cr_assert(strstr(oe[1], "bad check digit") != NULL, "%s", oe[1]);
    cr_assert(strstr(oe[1], "3235") == NULL, "the number was echoed");
    cr_assert_eq(strchr(oe[1], '\n'), oe[1] + strlen(oe[1]) - 1, "one line");
    done(oe);
    cr_assert_eq(run(oe, "check-id", "641323-3234", NULL, NULL), 1);
    cr_assert(strstr(oe[1], "impossible date") != NULL, "%s", oe[1]);
    done(oe);
    cr_assert_eq(run(oe, "check-id", "64082-3234", NULL, NULL), 1);
    cr_assert(strstr(oe[1], "bad format") != NULL, "%s", oe[1]);
    done(oe);
}

Test(cli, usage_errors_and_help)
{
    char *oe[2];
    cr_assert_eq(run(oe, "check-id", NULL, NULL, NULL), 2);
    cr_assert(strstr(oe[1], "no number given") != NULL, "%s", oe[1]);
    done(oe);
    cr_assert_eq(run(oe, "check-id", "--bogus", "640823-3234", NULL), 2);
    done(oe);
    cr_assert_eq(run(oe, "check-id", "--help", NULL, NULL), 0);
    cr_assert(strstr(oe[0], "usage: soffa check-id") != NULL);
    done(oe);
    cr_assert_eq(run(oe, "--help", NULL, NULL, NULL), 0);
    cr_assert(strstr(oe[0], "check-id") != NULL);
    done(oe);
    cr_assert_eq(run(oe, "frobnicate", NULL, NULL, NULL), 2);
    cr_assert(strstr(oe[1], "unknown command") != NULL);
    done(oe);
}

/* Issue 11, item 5: the command line reads reserve numbers too. */
Test(cli, issue_11_05_check_id_reads_reserve_numbers)
{
    char *oe[2];
    cr_assert_eq(run(oe, "check-id", "20080314tf10", NULL, NULL), 0, "%s", oe[1]);
    cr_assert_str_eq(oe[0], "20080314TF10 reservnummer\n");
    done(oe);
    cr_assert_eq(run(oe, "check-id", "--json", "20080314TF10", NULL), 0);
    cr_assert_str_eq(oe[0], "{\"id\":\"20080314TF10\",\"kind\":\"reservnummer\",\"birth_date\":\"2008-03-14\"}\n");
    done(oe);
    cr_assert_eq(run(oe, "check-id", "2008031427A0", NULL, NULL), 1);
    cr_assert(strstr(oe[1], "at least two letters") != NULL, "%s", oe[1]);
    cr_assert(strstr(oe[1], "27A0") == NULL, "the number was echoed");
    done(oe);
    cr_assert_eq(run(oe, "check-id", "--today", "2026-11-23", "20261124TF10"), 1);
    cr_assert(strstr(oe[1], "not in the future") != NULL, "%s", oe[1]);
    done(oe);
}

/* Issue 13, rule 5: free text the broker screens is warned about before it
 * is sent (here no agent answers, so nothing is sent at all), naming the
 * field and the category, never the text; a referral to social services and
 * a report of concern are not screened. */
Test(cli, issue_13_05_warns_of_sensitive_text_before_sending)
{
    const char *consent = "01900000-0000-7000-8000-00000000c001";
    const char *text = "Har en ADHD-diagnos och kontakt med BUP.";
    struct {
        const char *w1, *w2, *field, *flag;
        bool warns;
    } cases[] = {
        {"refer", "af", "summary", "--consent", true},
        {"signal", "at-risk", "note", "--consent", true},
        {"refer", "social", "summary", "--consent", false},
        {"concern", "report", "description", "--reporter-role", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char flag[32];
        snprintf(flag, sizeof flag, "--%s", cases[i].field);
        char *argv[] = {SOFFA, "--socket", "/nonexistent/soffa.sock", (char *) cases[i].w1, (char *) cases[i].w2,
                        "--pupil", "080314-2710", "--hemkommun", "1419", (char *) cases[i].flag,
                        strcmp(cases[i].flag, "--consent") ? "KAA_STAFF" : (char *) consent, flag, (char *) text, NULL};
        char *out = NULL, *err = NULL;
        cr_assert_eq(tk_run(argv, &out, &err), 1, "no agent: %s", err);
        bool warned = strstr(err, "warning:") != NULL;
        cr_assert_eq(warned, cases[i].warns, "%s %s: %s", cases[i].w1, cases[i].w2, err);
        if (cases[i].warns) {
            cr_assert(strstr(err, "names health, diagnoses or disability"), "%s", err);
            cr_assert(strstr(err, cases[i].field), "%s", err);
            cr_assert_null(strstr(err, "ADHD"), "the text was echoed: %s", err);
        }
        free(out);
        free(err);
    }
}
