/*  The hostile client: a real CURVE client holding one configured agent's
 *  key (or a copy of a backup, or a local account) against the real broker
 *  process, trying what an attacker would. One test per attack; each names
 *  the item of the threat model it checks (README, "Threat model"). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_keys.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "testkit.h"

static char PUPIL[13];    /* 18 years old, registered in Tjörn */
static char CHILD[13];    /* 16 years old */

static void
setup(void)
{
    soffa_date_t t = soffa_date_today();
    tk_pnr(t.year - 18, 3, 14, 271, 0, PUPIL);
    tk_pnr(t.year - 16, 5, 2, 384, 0, CHILD);
}

TestSuite(hostile, .init = setup, .timeout = 120);

/* ---- Issue 11: items 5, 7, 8 and 15 -------------------------------------------- */

/* The message of `type` about `subject` (hemkommun Tjörn) with up to two
 * string fields set at dotted paths, as JSON text (free with free()). */
static char *
h_msg(soffa_msg_type_t type, const char *subject, const char *path1, const char *value1, const char *path2,
      const char *value2)
{
    char *text = tk_msg_json(type, subject, "1419");
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    const char *paths[2] = {path1, path2}, *values[2] = {value1, value2};
    for (int i = 0; i < 2 && paths[i]; i++) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", paths[i]);
        json_t *o = j;
        char *save = NULL, *name = strtok_r(buf, ".", &save);
        for (char *next = strtok_r(NULL, ".", &save); next; next = strtok_r(NULL, ".", &save)) {
            json_t *sub = json_object_get(o, name);
            if (!sub) {
                sub = json_object();
                json_object_set_new(o, name, sub);
            }
            o = sub;
            name = next;
        }
        json_object_set_new(o, name, json_string(values[i]));
    }
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

/* Publishes text (and frees it); returns the broker's code, `why` its reason. */
static soffa_err_t
h_pub(soffa_client_t *c, char *text, char *mailbox, char why[256])
{
    why[0] = '\0';
    soffa_err_t rc = tk_publish_json(c, text, NULL, mailbox, why);
    free(text);
    return rc;
}

/* An auditor's history of one subject: the number of records delivered. */
static long
h_history(soffa_client_t *au, const char *subject)
{
    soffa_frame_t r = {.type = SOFFA_FRAME_REPLAY, .tag = soffa_client_next_tag(au)};
    snprintf(r.filter.subject_id, sizeof r.filter.subject_id, "%s", subject);
    snprintf(r.text, sizeof r.text, "history");
    cr_assert_eq(soffa_client_send(au, &r), SOFFA_OK);
    long n = 0;
    for (;;) {
        soffa_frame_t f;
        cr_assert_eq(soffa_client_recv(au, &f, 5000), SOFFA_OK, "the history stalled");
        soffa_frame_type_t t = f.type;
        uint32_t code = f.code;
        soffa_frame_fini(&f);
        if (t == SOFFA_FRAME_ERROR)
            return -(long) code;
        if (t == SOFFA_FRAME_DELIVER)
            n++;
        if (t == SOFFA_FRAME_REPLAY_END)
            return n;
    }
}

/* Item 5: a real personnummer passed as a reserve number, and the age rules
 * skipped for reserve numbers; reserve numbers were missing from the
 * subject index, so history --pupil never found them. */
Test(hostile, it_h05_a_reserve_number_is_no_loophole)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client(b, "school-1415", false);
    soffa_client_t *k = tk_client(b, "kaa-1419", false);
    soffa_date_t t = soffa_date_local(soffa_now_us() - 3600000000LL);
    char adult[13], r18[13], r17[13], r16[13];
    tk_reserve(1990, 1, 1, "TF10", adult);          /* 36 when the fixture's absence began */
    tk_reserve(t.year - 18, 1, 1, "TF10", r18);
    tk_reserve(2009, 1, 1, "TF10", r17);            /* 17 on 2026-09-01 */
    tk_reserve(t.year - 16, 5, 2, "TF20", r16);
    char why[256], mailbox[SOFFA_NAME_MAX];

    /* A personnummer dressed up as a reserve number. */
    soffa_err_t rc = h_pub(s, h_msg(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "subject.id_type", "LOCAL_RESERVE", NULL, NULL),
                           mailbox, why);
    cr_assert_eq(rc, SOFFA_ERR_ID_FORMAT, "got %s: %s", soffa_errname(rc), why);
    cr_assert(strstr(why, "id_type PNR") != NULL, "%s", why);
    /* Anything else that is not the reserve number form. */
    rc = h_pub(s, h_msg(SOFFA_MT_ABSENCE_REPORTED, r17, "subject.id", "RES0042", NULL, NULL), mailbox, why);
    cr_assert_eq(rc, SOFFA_ERR_ID_FORMAT, "got %s: %s", soffa_errname(rc), why);
    /* The age rules run on the reserve number's birth date. */
    rc = h_pub(s, h_msg(SOFFA_MT_ABSENCE_REPORTED, adult, NULL, NULL, NULL, NULL), mailbox, why);
    cr_assert_eq(rc, SOFFA_ERR_AGE, "absence about a 36-year-old: %s: %s", soffa_errname(rc), why);
    rc = h_pub(s, h_msg(SOFFA_MT_CONCERN_REPORT_FILED, r18, NULL, NULL, NULL, NULL), mailbox, why);
    cr_assert_eq(rc, SOFFA_ERR_AGE, "concern report about an 18-year-old: %s: %s", soffa_errname(rc), why);
    rc = h_pub(k, h_msg(SOFFA_MT_CONCERN_REPORT_FILED, adult, NULL, NULL, NULL, NULL), mailbox, why);
    cr_assert_eq(rc, SOFFA_ERR_AGE, "the KAA's concern report about an adult: %s: %s", soffa_errname(rc), why);
    /* ... and pass young people. */
    rc = h_pub(s, h_msg(SOFFA_MT_ABSENCE_REPORTED, r17, NULL, NULL, NULL, NULL), mailbox, why);
    cr_assert_eq(rc, SOFFA_OK, "%s: %s", soffa_errname(rc), why);
    cr_assert_str_eq(mailbox, "kaa/1419");
    rc = h_pub(s, h_msg(SOFFA_MT_CONCERN_REPORT_FILED, r16, NULL, NULL, NULL, NULL), mailbox, why);
    cr_assert_eq(rc, SOFFA_OK, "%s: %s", soffa_errname(rc), why);
    rc = h_pub(s, h_msg(SOFFA_MT_ENROLMENT_CHANGED, r17, NULL, NULL, NULL, NULL), mailbox, why);
    cr_assert_eq(rc, SOFFA_OK, "%s: %s", soffa_errname(rc), why);

    /* The history of a reserve number finds its records, and only them. */
    soffa_client_t *au = tk_client(b, "audit-1419", false);
    cr_assert_eq(h_history(au, r17), 2, "the reserve number's absence and enrolment");
    cr_assert_eq(h_history(au, r16), 1, "the reserve number's concern report");
    cr_assert_eq(h_history(au, adult), 0, "nothing refused is stored");
    cr_assert_eq(h_history(au, "RES0042"), -SOFFA_ERR_BAD_FIELD, "a filter that is no identity is refused");
    soffa_client_close(&au);
    soffa_client_close(&k);
    soffa_client_close(&s);
    tk_broker_free(b);
}

/* Item 7: free text in code fields. The attack first: an absence
 * signal whose actor_ref describes a diagnosis and a care placement. Then
 * each code or reference field on the route that carries it. */
Test(hostile, it_h07_code_fields_carry_no_free_text)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *c[3] = {tk_client(b, "school-1415", false), tk_client(b, "kaa-1419", false),
                            tk_client(b, "af-1419", false)};
    static const char PROSE[] = "ADHD, placerad på HVB-hem sedan mars";
    static const struct {
        int sender;                  /* index into c */
        soffa_msg_type_t type;
        const char *path;
        const char *value;
    } cases[] = {
        {0, SOFFA_MT_ABSENCE_REPORTED, "sender.actor_ref", PROSE},
        {0, SOFFA_MT_ABSENCE_REPORTED, "sender.actor_ref", "adhd.placerad.pa.hvb-hem.sedan.mars"},   /* > 32 */
        {0, SOFFA_MT_ABSENCE_REPORTED, "classification.secrecy_ref", "OSL 23:2 (NPF-utredning)"},
        {0, SOFFA_MT_ENROLMENT_CHANGED, "enrolment_changed.programme_code", "SA, NPF"},
        {0, SOFFA_MT_AT_RISK_NOTICE, "sender.unit_id", "Elevhälsan"},
        {0, SOFFA_MT_CONCERN_REPORT_FILED, "sender.actor_ref", "kurator som misstänker våld"},
        {1, SOFFA_MT_CONSENT_RECORDED, "consent_recorded.recorded_by", "Anna på ungdomsmottagningen"},
        {1, SOFFA_MT_REFERRAL_SENT, "referral_sent.contact.phone", "070-123 45 67, pappa är våldsam"},
        {1, SOFFA_MT_REFERRAL_SENT, "referral_sent.contact.email", "missbruk i hemmet <x@y.se>"},
        {1, SOFFA_MT_KAA_CASE_OPENED, "sender.actor_ref", PROSE},
        {2, SOFFA_MT_REFERRAL_STATUS_CHANGED, "sender.actor_ref", "bedömd ej arbetsför"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char why[256], mailbox[SOFFA_NAME_MAX];
        soffa_err_t rc = h_pub(c[cases[i].sender], h_msg(cases[i].type, PUPIL, cases[i].path, cases[i].value, NULL, NULL),
                               mailbox, why);
        cr_assert_eq(rc, SOFFA_ERR_BAD_FIELD, "case %zu (%s): got %s: %s", i, cases[i].path, soffa_errname(rc), why);
        const char *leaf = strrchr(cases[i].path, '.') + 1;
        cr_assert(strstr(why, leaf) != NULL, "case %zu: the reason names the field: %s", i, why);
    }
    /* The session goes on, and a real reference is taken. */
    char why[256], mailbox[SOFFA_NAME_MAX];
    soffa_err_t rc = h_pub(c[0], h_msg(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "sender.actor_ref", "rektor-3",
                                       "classification.secrecy_ref", "OSL 23:1"),
                           mailbox, why);
    cr_assert_eq(rc, SOFFA_OK, "%s: %s", soffa_errname(rc), why);
    /* Nothing refused was stored: the pupil's history is the one signal. */
    soffa_client_t *au = tk_client(b, "audit-all", false);
    cr_assert_eq(h_history(au, PUPIL), 1);
    soffa_client_close(&au);
    for (int i = 0; i < 3; i++)
        soffa_client_close(&c[i]);
    tk_broker_free(b);
}

/* Item 8: a school configured with units 12345678 and 12345679 of
 * organisation TK_SCHOOL_ORGNR claimed another unit and another
 * organisation; both were accepted. */
Test(hostile, it_h08_claims_about_the_sender_are_bound_to_its_key)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client(b, "school-1415", false);
    soffa_client_t *k = tk_client(b, "kaa-1419", false);
    static const struct {
        int kaa;
        soffa_msg_type_t type;
        const char *path1, *value1, *path2, *value2;
        soffa_err_t want;
        const char *says;
    } cases[] = {
        {0, SOFFA_MT_ABSENCE_REPORTED, "absence_reported.school_unit", "14199999", NULL, NULL,
         SOFFA_ERR_NOT_AUTHORISED, "14199999 is not one of school-1415's configured school units"},
        {0, SOFFA_MT_ENROLMENT_CHANGED, "enrolment_changed.school_unit", "14199999", NULL, NULL,
         SOFFA_ERR_NOT_AUTHORISED, "enrolment_changed.school_unit"},
        {0, SOFFA_MT_ABSENCE_REPORTED, "sender.org_nr", "5566778899", NULL, NULL, SOFFA_ERR_NOT_AUTHORISED,
         "sender.org_nr"},
        {0, SOFFA_MT_ABSENCE_REPORTED, "sender.unit_id", "14199999", NULL, NULL, SOFFA_ERR_NOT_AUTHORISED,
         "sender.unit_id"},
        {0, SOFFA_MT_ABSENCE_REPORTED, "sender.kommunkod", "1419", NULL, NULL, SOFFA_ERR_NOT_AUTHORISED,
         "sender.kommunkod"},
        {0, SOFFA_MT_ABSENCE_REPORTED, "sender.kind", "ARBETSFORMEDLINGEN", NULL, NULL, SOFFA_ERR_NOT_AUTHORISED,
         "sender.kind"},
        {1, SOFFA_MT_KAA_CASE_OPENED, "sender.org_nr", TK_SCHOOL_ORGNR, NULL, NULL, SOFFA_ERR_NOT_AUTHORISED,
         "no orgnr"},
        {1, SOFFA_MT_KAA_CASE_OPENED, "sender.kommunkod", "1415", NULL, NULL, SOFFA_ERR_NOT_AUTHORISED,
         "sender.kommunkod"},
        /* What the configuration confirms is taken, for every unit of the principal. */
        {0, SOFFA_MT_ABSENCE_REPORTED, "sender.org_nr", TK_SCHOOL_ORGNR, "absence_reported.school_unit", "12345679",
         SOFFA_OK, NULL},
        {0, SOFFA_MT_ENROLMENT_CHANGED, "sender.unit_id", "12345678", "sender.kommunkod", "1415", SOFFA_OK, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char why[256], mailbox[SOFFA_NAME_MAX];
        soffa_err_t rc = h_pub(cases[i].kaa ? k : s,
                               h_msg(cases[i].type, PUPIL, cases[i].path1, cases[i].value1, cases[i].path2,
                                     cases[i].value2),
                               mailbox, why);
        cr_assert_eq(rc, cases[i].want, "case %zu: got %s: %s", i, soffa_errname(rc), why);
        if (cases[i].says)
            cr_assert(strstr(why, cases[i].says) != NULL, "case %zu: %s", i, why);
    }
    soffa_client_t *au = tk_client(b, "audit-all", false);
    cr_assert_eq(h_history(au, PUPIL), 2, "only the two true messages were stored");
    soffa_client_close(&au);
    soffa_client_close(&k);
    soffa_client_close(&s);
    tk_broker_free(b);
}

/* Item 15: a consent_withdrawn was not checked against the consent's
 * subject, so a KAA could file the withdrawal under another person. */
Test(hostile, it_h15_a_withdrawal_is_about_the_consents_own_subject)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *k = tk_client(b, "kaa-1419", false);
    char *consent = tk_msg_json(SOFFA_MT_CONSENT_RECORDED, PUPIL, "1419");
    json_t *cj = json_loads(consent, 0, NULL);
    char id[SOFFA_UUID_STR];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(cj, "consent_id")));
    json_decref(cj);
    char why[256], mailbox[SOFFA_NAME_MAX];
    soffa_err_t rc = h_pub(k, consent, mailbox, why);
    cr_assert_eq(rc, SOFFA_OK, "%s: %s", soffa_errname(rc), why);

    rc = h_pub(k, h_msg(SOFFA_MT_CONSENT_WITHDRAWN, CHILD, "consent_id", id, "consent_withdrawn.consent_id", id),
               mailbox, why);
    cr_assert_eq(rc, SOFFA_ERR_CONSENT, "a withdrawal filed under another person: %s: %s", soffa_errname(rc), why);
    cr_assert(strstr(why, "another person") != NULL, "%s", why);
    rc = h_pub(k, h_msg(SOFFA_MT_CONSENT_WITHDRAWN, PUPIL, "consent_id", id, "consent_withdrawn.consent_id", id),
               mailbox, why);
    cr_assert_eq(rc, SOFFA_OK, "%s: %s", soffa_errname(rc), why);
    cr_assert_str_eq(mailbox, "kaa-journal/1419");
    soffa_client_t *au = tk_client(b, "audit-all", false);
    cr_assert_eq(h_history(au, CHILD), 0, "nothing was filed under the other person");
    cr_assert_eq(h_history(au, PUPIL), 2, "the consent and its withdrawal");
    soffa_client_close(&au);
    soffa_client_close(&k);
    tk_broker_free(b);
}
