/*  Integration tests for the two-way early warning (issue 19, items 1 and
 *  2): the real soffa-broker process over real sockets and a real LMDB
 *  directory. A year-9 handover and an admitted pupil who never started go
 *  from a school to the KAA of the home municipality; the KAA's coded answer
 *  to an early warning goes back to the school that sent it. Each allowed
 *  row stands beside the rows the law refuses, with their codes and reasons.
 *  (The decisions of the table, row by row, are in test_policy.) */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_time.h"
#include "soffa_uuid.h"
#include "testkit.h"

/* Made-up young people of Tjörn (1419), each that age today with a
 * birthday 30 days ago: a year-9 pupil of 15, upper-secondary pupils of 16
 * and 18, and one of 20. */
static char P15[13], P16[13], P18[13], P20[13];

static void
s_age(int years, int birth_no, char out[13])
{
    soffa_date_t d = soffa_date_local(soffa_now_us() - 30 * 86400000000LL);
    tk_pnr(d.year - years, d.month, d.month == 2 && d.day > 28 ? 28 : d.day, birth_no, 0, out);
}

static void
setup(void)
{
    s_age(15, 215, P15);
    s_age(16, 216, P16);
    s_age(18, 218, P18);
    s_age(20, 220, P20);
}

TestSuite(warning, .init = setup, .timeout = 120);

/* SOFFA_TEST_BATCH=1 (ctest warning-batch): every publish goes as a
 * PUBLISH-BATCH on a second connection of the same agent and must meet the
 * same rules (tk_client_pub, issue 18). */

/* A valid message of `type` about pnr in Tjörn, to adjust. */
static json_t *
J(soffa_msg_type_t type, const char *pnr)
{
    return tk_json(type, pnr, "1419");
}

/* Sets a field from text, coerced by the schema: a payload field when the
 * path starts with the payload's name, else an envelope field. */
static json_t *
set(json_t *j, const char *path, const char *text)
{
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        size_t n = strlen(key);
        if (soffa_msg_type_from_name(key) != SOFFA_MT_NONE && !strncmp(path, key, n) && path[n] == '.') {
            char why[256] = "";
            cr_assert_eq(soffa_msg_json_set(v, key, path + n + 1, text, why, sizeof why), SOFFA_OK, "%s: %s", path,
                         why);
            return j;
        }
    }
    char why[256] = "";
    cr_assert_eq(soffa_msg_json_set(j, "message", path, text, why, sizeof why), SOFFA_OK, "%s: %s", path, why);
    return j;
}

/* Removes a payload field. */
static json_t *
drop(json_t *j, const char *payload, const char *field)
{
    json_object_del(json_object_get(j, payload), field);
    return j;
}

/* The Stockholm date `days` days from today (negative: back). */
static const char *
day(int days, char buf[11])
{
    soffa_date_format(soffa_date_local(soffa_now_us() + days * 86400000000LL), buf);
    return buf;
}

/* A consent of pnr recorded by the sender's organisation, valid today for
 * half a year, with the scope given (comma lists); its id goes into id.
 * Granted as the age allows (testkit): under 16 by the pupil and a guardian. */
static json_t *
consent(const char *pnr, const char *recipients, const char *purposes, const char *categories, char id[SOFFA_UUID_STR])
{
    json_t *j = J(SOFFA_MT_CONSENT_RECORDED, pnr);
    char from[11], to[11];
    soffa_date_format(soffa_date_today(), from);
    soffa_date_format(soffa_date_local(soffa_now_us() + 180 * 86400000000LL), to);
    set(j, "consent_recorded.valid_from", from);
    set(j, "consent_recorded.valid_to", to);
    set(j, "consent_recorded.scope.recipients", recipients);
    set(j, "consent_recorded.scope.purposes", purposes);
    set(j, "consent_recorded.scope.data_categories", categories);
    snprintf(id, SOFFA_UUID_STR, "%s", tk_str(j, "consent_recorded.consent_id"));
    return j;
}

/* A year-9 handover of pnr on consent id. */
static json_t *
handover(const char *pnr, const char *id)
{
    return set(J(SOFFA_MT_YEAR9_HANDOVER, pnr), "consent_id", id);
}

/* The KAA's answer to warning `warning` on consent id, with status. */
static json_t *
answer(const char *pnr, const char *warning, const char *id, const char *status)
{
    json_t *j = set(set(J(SOFFA_MT_EARLY_WARNING_ANSWERED, pnr), "consent_id", id),
                    "early_warning_answered.warning_id", warning);
    set(j, "early_warning_answered.status", status);
    if (strcmp(status, "CONTACT_PERSON_ASSIGNED") != 0)
        drop(j, "early_warning_answered", "contact_ref");
    return j;
}

/* The year-9 handover: a compulsory school, a consent that covers it (a
 * guardian's under 16), the KAA of the home municipality. */
Test(warning, year9_handover_allowed_and_refused)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = tk_client_pub(b, "school-1415");
    soffa_client_t *kaa = tk_client_pub(b, "kaa-1419");
    char full[SOFFA_UUID_STR], no_measures[SOFFA_UUID_STR], kaa_own[SOFFA_UUID_STR], other[SOFFA_UUID_STR];
    char d[11];

    /* The consent: under 16 the pupil alone cannot give it; with a guardian it holds. */
    json_t *j = consent(P15, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,MEASURES", full);
    TK_REFUSED(school, set(j, "consent_recorded.granted_by", "YOUTH"), SOFFA_ERR_CONSENT, "under 16 a guardian");
    TK_ACCEPTED(school, consent(P15, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,MEASURES", full),
             "school-journal/school-1415");
    TK_ACCEPTED(school, handover(P15, full), "kaa/1419");

    /* No consent, another organisation's consent, a consent that does not cover the content. */
    uint8_t none[16];
    soffa_uuid7(none);
    char none_s[SOFFA_UUID_STR];
    soffa_uuid_format(none, none_s);
    TK_REFUSED(school, handover(P15, none_s), SOFFA_ERR_CONSENT, "no consent is recorded");
    TK_ACCEPTED(kaa, consent(P18, "SOCIAL_SERVICES", "REFERRAL", "IDENTITY", kaa_own), "kaa-journal/1419");
    TK_REFUSED(school, handover(P18, kaa_own), SOFFA_ERR_CONSENT, "recorded by another organisation");
    TK_ACCEPTED(school, consent(P15, "KAA", "REFERRAL", "IDENTITY,OCCUPATION", no_measures),
             "school-journal/school-1415");
    TK_REFUSED(school, handover(P15, no_measures), SOFFA_ERR_CONSENT, "MEASURES");
    TK_ACCEPTED(school, drop(handover(P15, no_measures), "year9_handover", "support_tried"), "kaa/1419");
    TK_ACCEPTED(school, consent(P15, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY,OCCUPATION,MEASURES", other),
             "school-journal/school-1415");
    TK_REFUSED(school, handover(P15, other), SOFFA_ERR_CONSENT, "disclosure to the KAA");
    /* The consent of another pupil does not speak for this one. */
    TK_REFUSED(school, handover(P16, full), SOFFA_ERR_CONSENT, "another person");

    /* A handover rests on a consent, never on SL 15:15. */
    TK_REFUSED(school, set(handover(P15, full), "legal_basis", "SL_15_15_ENROLMENT"), SOFFA_ERR_LEGAL_BASIS,
            "CONSENT_OSL_12_2");
    /* It comes from a compulsory school; GR is for the handover only. */
    TK_REFUSED(school, set(handover(P15, full), "year9_handover.school_form", "GY"), SOFFA_ERR_BAD_FIELD,
            "GR or ANP_GR");
    TK_ACCEPTED(school, set(handover(P15, full), "year9_handover.school_form", "ANP_GR"), "kaa/1419");
    TK_REFUSED(school, set(J(SOFFA_MT_ENROLMENT_CHANGED, P18), "enrolment_changed.school_form", "GR"),
            SOFFA_ERR_BAD_FIELD, "year-9 handover only");
    /* Codes only, each once; a school unit of its own; a last day within a school year. */
    TK_REFUSED(school, set(handover(P15, full), "year9_handover.support_tried", "MENTOR,MENTOR"), SOFFA_ERR_BAD_FIELD,
            "given twice");
    TK_REFUSED(school, drop(handover(P15, full), "year9_handover", "risk"), SOFFA_ERR_MISSING_FIELD,
            "year9_handover.risk");
    TK_REFUSED(school, set(handover(P15, full), "year9_handover.school_unit", "87654321"), SOFFA_ERR_NOT_AUTHORISED,
            "not one of school-1415's configured school units");
    TK_REFUSED(school, set(handover(P15, full), "year9_handover.leaves_on", day(500, d)), SOFFA_ERR_BAD_FIELD,
            "year9_handover.leaves_on");
    TK_REFUSED(school, set(handover(P15, full), "year9_handover.leaves_on", day(-400, d)), SOFFA_ERR_BAD_FIELD,
            "event_max_days");
    /* Only a school sends it. */
    TK_REFUSED(kaa, handover(P15, full), SOFFA_ERR_POLICY, "a kaa agent may not send year9_handover");

    /* A withdrawn consent carries nothing more. */
    json_t *w = set(set(J(SOFFA_MT_CONSENT_WITHDRAWN, P15), "consent_id", full), "consent_withdrawn.consent_id", full);
    TK_ACCEPTED(school, w, "school-journal/school-1415");
    TK_REFUSED(school, handover(P15, full), SOFFA_ERR_CONSENT, "withdrawn");

    /* What reaches the KAA, read only now: of the three handovers allowed, the
     * two on the withdrawn consent are withheld at delivery (issue 13, rule 7)
     * and the one on the other consent comes. */
    int types[8];
    cr_assert_eq(tk_collect(kaa, "kaa/1419", 16, true, 8, 800, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_YEAR9_HANDOVER);
    tk_client_pub_close(&kaa);
    tk_client_pub_close(&school);
    tk_broker_free(b);
}

/* Admitted but never started: upper secondary (GY, ANP_GY), under 20, a
 * term that has begun, the school's own unit. */
Test(warning, admission_not_started_allowed_and_refused)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = tk_client_pub(b, "school-1415");
    soffa_client_t *kaa = tk_client_pub(b, "kaa-1419");
    char d[11];
    TK_ACCEPTED(school, J(SOFFA_MT_ADMISSION_NOT_STARTED, P16), "kaa/1419");
    TK_ACCEPTED(school, drop(J(SOFFA_MT_ADMISSION_NOT_STARTED, P18), "admission_not_started", "programme_code"),
             "kaa/1419");
    TK_REFUSED(school, set(J(SOFFA_MT_ADMISSION_NOT_STARTED, P16), "admission_not_started.school_form", "GR"),
            SOFFA_ERR_BAD_FIELD, "year-9 handover only");
    TK_REFUSED(school, set(J(SOFFA_MT_ADMISSION_NOT_STARTED, P16), "admission_not_started.term_start", day(10, d)),
            SOFFA_ERR_BAD_FIELD, "once the term has begun");
    TK_REFUSED(school, set(J(SOFFA_MT_ADMISSION_NOT_STARTED, P16), "admission_not_started.term_start", day(-300, d)),
            SOFFA_ERR_BAD_FIELD, "event_max_days");
    TK_REFUSED(school, J(SOFFA_MT_ADMISSION_NOT_STARTED, P20), SOFFA_ERR_AGE, "under 20");
    TK_REFUSED(school,
            set(J(SOFFA_MT_ADMISSION_NOT_STARTED, P16), "admission_not_started.programme_code", "naturvetenskap"),
            SOFFA_ERR_BAD_FIELD, "programme code");
    TK_REFUSED(school, set(J(SOFFA_MT_ADMISSION_NOT_STARTED, P16), "admission_not_started.school_unit", "87654321"),
            SOFFA_ERR_NOT_AUTHORISED, "configured school units");
    TK_REFUSED(school, set(J(SOFFA_MT_ADMISSION_NOT_STARTED, P16), "legal_basis", "SL_15_15_ABSENCE"),
            SOFFA_ERR_LEGAL_BASIS, "SL_15_15_ENROLMENT");
    TK_REFUSED(kaa, J(SOFFA_MT_ADMISSION_NOT_STARTED, P16), SOFFA_ERR_POLICY, "may not send admission_not_started");
    int types[8];
    cr_assert_eq(tk_collect(kaa, "kaa/1419", 16, true, 8, 800, types, NULL), 2);
    cr_assert_eq(types[0], SOFFA_MT_ADMISSION_NOT_STARTED);
    cr_assert_eq(types[1], SOFFA_MT_ADMISSION_NOT_STARTED);
    tk_client_pub_close(&kaa);
    tk_client_pub_close(&school);
    tk_broker_free(b);
}

/* The KAA answers an early warning: to the school that sent it, only by
 * the KAA that received it, under the warning's consent; beyond ACCEPTED
 * and NOT_IN_TARGET_GROUP only when that consent covers status feedback. */
Test(warning, the_kaa_answers_an_early_warning)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = tk_client_pub(b, "school-1415");
    soffa_client_t *kaa = tk_client_pub(b, "kaa-1419");
    soffa_client_t *kaa15 = tk_client_pub(b, "kaa-1415");
    char plain[SOFFA_UUID_STR], feedback[SOFFA_UUID_STR], w1[SOFFA_UUID_STR], w2[SOFFA_UUID_STR];
    char sig[SOFFA_UUID_STR], kaa_own[SOFFA_UUID_STR];

    /* An at-risk notice on a consent without feedback, with support tried and the school's contact role. */
    TK_ACCEPTED(school, consent(P18, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,MEASURES", plain),
             "school-journal/school-1415");
    json_t *n = set(J(SOFFA_MT_AT_RISK_NOTICE, P18), "consent_id", plain);
    set(set(n, "at_risk_notice.support_tried", "MENTOR,TEACHING_TEAM,PUPIL_HEALTH_TEAM"),
        "at_risk_notice.contact_role", "PRINCIPAL");
    drop(n, "at_risk_notice", "note");
    snprintf(w1, sizeof w1, "%s", tk_str(n, "message_id"));
    TK_ACCEPTED(school, n, "kaa/1419");
    /* The same notice's support needs MEASURES, and each code once. */
    TK_ACCEPTED(school, consent(P18, "KAA", "REFERRAL", "IDENTITY,OCCUPATION", kaa_own), "school-journal/school-1415");
    n = set(drop(J(SOFFA_MT_AT_RISK_NOTICE, P18), "at_risk_notice", "note"), "consent_id", kaa_own);
    TK_REFUSED(school, set(n, "at_risk_notice.support_tried", "MENTOR"), SOFFA_ERR_CONSENT, "MEASURES");
    n = set(drop(J(SOFFA_MT_AT_RISK_NOTICE, P18), "at_risk_notice", "note"), "consent_id", plain);
    TK_REFUSED(school, set(n, "at_risk_notice.support_tried", "SPECIAL_SUPPORT,SPECIAL_SUPPORT"), SOFFA_ERR_BAD_FIELD,
            "given twice");
    /* A year-9 handover on a consent that covers status feedback. */
    TK_ACCEPTED(school, consent(P15, "KAA", "REFERRAL,STATUS_FEEDBACK", "IDENTITY,OCCUPATION,MEASURES", feedback),
             "school-journal/school-1415");
    json_t *h = handover(P15, feedback);
    snprintf(w2, sizeof w2, "%s", tk_str(h, "message_id"));
    TK_ACCEPTED(school, h, "kaa/1419");
    /* A signal under SL 15:15 is not an early warning. */
    json_t *a = J(SOFFA_MT_ABSENCE_REPORTED, P18);
    snprintf(sig, sizeof sig, "%s", tk_str(a, "message_id"));
    TK_ACCEPTED(school, a, "kaa/1419");

    /* Without STATUS_FEEDBACK: ACCEPTED and NOT_IN_TARGET_GROUP only. */
    TK_ACCEPTED(kaa, answer(P18, w1, plain, "ACCEPTED"), "school/school-1415");
    TK_REFUSED(kaa, answer(P18, w1, plain, "YOUTH_CONTACTED"), SOFFA_ERR_CONSENT,
            "only ACCEPTED or NOT_IN_TARGET_GROUP may be sent");
    TK_REFUSED(kaa, answer(P18, w1, plain, "CONTACT_PERSON_ASSIGNED"), SOFFA_ERR_CONSENT, "status feedback");
    TK_ACCEPTED(kaa, answer(P18, w1, plain, "NOT_IN_TARGET_GROUP"), "school/school-1415");
    /* With it: the whole answer, a contact person's reference included. */
    TK_ACCEPTED(kaa, answer(P15, w2, feedback, "CONTACT_PERSON_ASSIGNED"), "school/school-1415");
    TK_ACCEPTED(kaa, answer(P15, w2, feedback, "YOUTH_CONTACTED"), "school/school-1415");
    TK_REFUSED(kaa, set(answer(P15, w2, feedback, "YOUTH_CONTACTED"), "early_warning_answered.contact_ref", "handl-17"),
            SOFFA_ERR_BAD_FIELD, "only with status CONTACT_PERSON_ASSIGNED");
    TK_REFUSED(kaa, set(answer(P15, w2, feedback, "CONTACT_PERSON_ASSIGNED"), "early_warning_answered.contact_ref",
                     "Anna Svensson"), SOFFA_ERR_BAD_FIELD, "a user reference");

    /* A warning that does not exist, one sent to another KAA, a signal that is no warning. */
    char none[SOFFA_UUID_STR];
    uint8_t nid[16];
    soffa_uuid7(nid);
    soffa_uuid_format(nid, none);
    TK_REFUSED(kaa, answer(P18, none, plain, "ACCEPTED"), SOFFA_ERR_NOT_FOUND, "not known to soffa");
    TK_REFUSED(kaa15, answer(P18, w1, plain, "ACCEPTED"), SOFFA_ERR_NOT_AUTHORISED, "only its recipient (kaa/1419)");
    TK_REFUSED(kaa, answer(P18, sig, plain, "ACCEPTED"), SOFFA_ERR_POLICY, "not an early warning");
    /* The warning's own consent, its own person; a KAA answers, nobody else. */
    TK_REFUSED(kaa, answer(P18, w1, feedback, "ACCEPTED"), SOFFA_ERR_CONSENT, "the warning's consent id");
    TK_REFUSED(kaa, answer(P16, w1, plain, "ACCEPTED"), SOFFA_ERR_BAD_FIELD, "another person");
    TK_REFUSED(school, answer(P18, w1, plain, "ACCEPTED"), SOFFA_ERR_POLICY,
            "a school agent may not send early_warning_answered");

    /* The consent withdrawn: status feedback stops, ACCEPTED still goes. */
    json_t *w = set(set(J(SOFFA_MT_CONSENT_WITHDRAWN, P15), "consent_id", feedback), "consent_withdrawn.consent_id",
                    feedback);
    TK_ACCEPTED(school, w, "school-journal/school-1415");
    TK_REFUSED(kaa, answer(P15, w2, feedback, "YOUTH_DECLINED"), SOFFA_ERR_CONSENT, "withdrawn");
    TK_ACCEPTED(kaa, answer(P15, w2, feedback, "ACCEPTED"), "school/school-1415");

    /* The school reads its inbox only now: of the five answers allowed, the two
     * with status feedback on the withdrawn consent are withheld at delivery
     * (issue 13, rule 7); both answers on the first warning and the last
     * ACCEPTED come, and nothing else. */
    int types[16];
    cr_assert_eq(tk_collect(school, "school/school-1415", 16, true, 16, 800, types, NULL), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(types[i], SOFFA_MT_EARLY_WARNING_ANSWERED);
    cr_assert_eq(tk_collect(kaa15, "kaa/1415", 16, true, 8, 300, types, NULL), 0);
    tk_client_pub_close(&kaa15);
    tk_client_pub_close(&kaa);
    tk_client_pub_close(&school);
    tk_broker_free(b);
}

/* A handover the KAA reroutes ("not our youth") is answered by the KAA it
 * was sent on to, and no longer by the first. */
Test(warning, a_rerouted_handover_is_answered_by_the_right_kaa)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = tk_client_pub(b, "school-1415");
    soffa_client_t *kaa = tk_client_pub(b, "kaa-1419");
    soffa_client_t *kaa15 = tk_client_pub(b, "kaa-1415");
    char c[SOFFA_UUID_STR], h9[SOFFA_UUID_STR];
    TK_ACCEPTED(school, consent(P15, "KAA", "REFERRAL,STATUS_FEEDBACK", "IDENTITY,OCCUPATION,MEASURES", c),
             "school-journal/school-1415");
    json_t *h = handover(P15, c);
    snprintf(h9, sizeof h9, "%s", tk_str(h, "message_id"));
    TK_ACCEPTED(school, h, "kaa/1419");
    json_t *ack = set(J(SOFFA_MT_SIGNAL_ACKNOWLEDGED, P15), "signal_acknowledged.signal_id", h9);
    set(set(ack, "signal_acknowledged.result", "NOT_HEMKOMMUN_REROUTED"), "signal_acknowledged.new_hemkommun", "1415");
    TK_ACCEPTED(kaa, ack, "school/school-1415");
    int types[8];
    cr_assert_eq(tk_collect(kaa15, "kaa/1415", 16, true, 8, 1500, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_YEAR9_HANDOVER);
    TK_REFUSED(kaa, answer(P15, h9, c, "ACCEPTED"), SOFFA_ERR_NOT_AUTHORISED, "only its recipient (kaa/1415)");
    TK_ACCEPTED(kaa15, answer(P15, h9, c, "YOUTH_CONTACTED"), "school/school-1415");
    tk_client_pub_close(&kaa15);
    tk_client_pub_close(&kaa);
    tk_client_pub_close(&school);
    tk_broker_free(b);
}
