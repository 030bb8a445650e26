/*  Integration tests for the law at the broker (issue 13): the real
 *  soffa-broker process over real sockets and a real LMDB directory. One
 *  test per rule: what the law forbids is refused with its code and a
 *  reason, and the lawful case beside it goes through. (The decisions, row
 *  by row, are in test_policy's issue_13 tests.) */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_time.h"
#include "soffa_uuid.h"
#include "testkit.h"

/* Made-up young people of Tjörn (1419), each that age today with a
 * birthday 30 days ago. */
static char P12[13], P15[13], P17[13], P18[13], P19[13], P20[13], P25[13];

static void
s_age(int years, int birth_no, char out[13])
{
    soffa_date_t d = soffa_date_local(soffa_now_us() - 30 * 86400000000LL);
    tk_pnr(d.year - years, d.month, d.month == 2 && d.day > 28 ? 28 : d.day, birth_no, 0, out);
}

static void
setup(void)
{
    s_age(12, 112, P12);
    s_age(15, 115, P15);
    s_age(17, 117, P17);
    s_age(18, 118, P18);
    s_age(19, 119, P19);
    s_age(20, 120, P20);
    s_age(25, 125, P25);
}

TestSuite(law, .init = setup, .timeout = 120);

/* SOFFA_TEST_BATCH=1 (ctest law-batch): every publish of these tests goes
 * as a PUBLISH-BATCH on a second connection of the same agent speaking
 * protocol 2 (tk_client_pub, tk_pub), and must meet the same code and
 * reason as a PUBLISH does: the batched path applies every rule the single
 * one applies (issue 18). */
#define client(b, name) tk_client_pub((b), (name))
#define client_close(c) tk_client_pub_close(c)

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
            cr_assert_eq(soffa_msg_json_set(v, key, path + n + 1, text, why, sizeof why), SOFFA_OK, "%s: %s", path, why);
            return j;
        }
    }
    char why[256] = "";
    cr_assert_eq(soffa_msg_json_set(j, "message", path, text, why, sizeof why), SOFFA_OK, "%s: %s", path, why);
    return j;
}

/* The message's time moved `days` days back. */
static json_t *
days_back(json_t *j, int days)
{
    json_object_set_new(j, "occurred_at_us", json_integer(soffa_now_us() - 3600000000LL - days * 86400000000LL));
    return j;
}

/* The Stockholm date `days` days back. */
static const char *
day(int days, char buf[11])
{
    soffa_date_format(soffa_date_local(soffa_now_us() - days * 86400000000LL), buf);
    return buf;
}

/* A consent of pnr recorded by c's organisation, valid today for half a
 * year, with the scope given (comma lists); its id goes into id. */
static json_t *
consent(const char *pnr, const char *recipients, const char *purposes, const char *categories, char id[SOFFA_UUID_STR])
{
    json_t *j = tk_json(SOFFA_MT_CONSENT_RECORDED, pnr, "1419");
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

/* A referral of pnr to Arbetsförmedlingen (or social services) on consent id. */
static json_t *
referral(const char *pnr, const char *id, bool social)
{
    json_t *j = set(tk_json(SOFFA_MT_REFERRAL_SENT, pnr, "1419"), "consent_id", id);
    if (social) {
        set(j, "referral_sent.target_kind", "SOCIAL_SERVICES");
        set(j, "referral_sent.purpose", "SOC_SUPPORT_CONTACT");
    }
    return j;
}

/* Rule 1: the KAA's target group. A case for a 12-year-old and one for a
 * 25-year-old, and a referral of the 25-year-old, are refused; an
 * 18-year-old's case goes to the KAA's journal, and a 20-year-old's case
 * is closed because they turned 20. */
Test(law, rule_01_the_kaa_target_group)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *kaa = client(b, "kaa-1419");
    TK_ACCEPTED(kaa, tk_json(SOFFA_MT_KAA_CASE_OPENED, P18, "1419"), "kaa-journal/1419");
    TK_ACCEPTED(kaa, tk_json(SOFFA_MT_KAA_CASE_OPENED, P17, "1419"), "kaa-journal/1419");
    TK_REFUSED(kaa, tk_json(SOFFA_MT_KAA_CASE_OPENED, P12, "1419"), SOFFA_ERR_AGE, "who have left compulsory school");
    TK_REFUSED(kaa, tk_json(SOFFA_MT_KAA_CASE_OPENED, P25, "1419"), SOFFA_ERR_AGE, "under 20 only (SL 29:9); this young person is 25");
    TK_REFUSED(kaa, tk_json(SOFFA_MT_CONTACT_ATTEMPTED, P20, "1419"), SOFFA_ERR_AGE, "close the case as TURNED_20");
    TK_REFUSED(kaa, tk_json(SOFFA_MT_KAA_CASE_CLOSED, P20, "1419"), SOFFA_ERR_AGE, "TURNED_20");
    /* Closing as TURNED_20 passes the age rule: what stops this one is only
     * that no case was opened under its id (a case opened at 19 closes; the
     * policy test issue_13_01 accepts it with the case known). */
    json_t *close = set(tk_json(SOFFA_MT_KAA_CASE_CLOSED, P20, "1419"), "kaa_case_closed.reason", "TURNED_20");
    json_object_del(json_object_get(close, "kaa_case_closed"), "new_hemkommun");
    TK_REFUSED(kaa, close, SOFFA_ERR_NOT_FOUND, "no case is registered under that case id");
    char id[SOFFA_UUID_STR];
    TK_REFUSED(kaa, consent(P25, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY", id), SOFFA_ERR_AGE, "records consents");
    TK_ACCEPTED(kaa, consent(P19, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY,CONTACT,SUMMARY_TEXT", id),
             "kaa-journal/1419");
    TK_REFUSED(kaa, referral(P25, id, false), SOFFA_ERR_AGE, "refers young people under 20");
    TK_ACCEPTED(kaa, referral(P19, id, false), "af/1419");
    client_close(&kaa);
    tk_broker_free(b);
}

/* Rule 2: who may consent, and the stated age against the identity number. */
Test(law, rule_02_who_may_consent)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *kaa = client(b, "kaa-1419");
    soffa_client_t *school = client(b, "school-1415");
    char id[SOFFA_UUID_STR];
    /* From 18 only the young person: a guardian's consent for a 19-year-old
     * is refused, and nothing can rest on it. */
    json_t *j = consent(P19, "SOCIAL_SERVICES", "REFERRAL", "IDENTITY,CONTACT,SUMMARY_TEXT", id);
    TK_REFUSED(kaa, set(j, "consent_recorded.granted_by", "GUARDIAN"), SOFFA_ERR_CONSENT, "from 18 only they can consent");
    TK_REFUSED(kaa, referral(P19, id, true), SOFFA_ERR_CONSENT, "no consent is recorded");
    TK_ACCEPTED(kaa, consent(P19, "SOCIAL_SERVICES", "REFERRAL", "IDENTITY,CONTACT,SUMMARY_TEXT", id), "kaa-journal/1419");
    TK_ACCEPTED(kaa, referral(P19, id, true), "social/1419");
    /* The stated age is the identity number's. */
    j = consent(P19, "SOCIAL_SERVICES", "REFERRAL", "IDENTITY", id);
    TK_REFUSED(kaa, set(j, "consent_recorded.youth_age_at_grant", "17"), SOFFA_ERR_BAD_FIELD, "was 19 on");
    /* 16 and 17: the young person, assessed mature or with a guardian. */
    j = consent(P17, "SOCIAL_SERVICES", "REFERRAL", "IDENTITY", id);
    TK_REFUSED(kaa, set(j, "consent_recorded.maturity_assessed", "false"), SOFFA_ERR_CONSENT, "maturity_assessed");
    j = set(consent(P17, "SOCIAL_SERVICES", "REFERRAL", "IDENTITY", id), "consent_recorded.maturity_assessed", "false");
    TK_ACCEPTED(kaa, set(j, "consent_recorded.granted_by", "YOUTH,GUARDIAN"), "kaa-journal/1419");
    /* Below 16 a guardian, or an unaccompanied minor's god man in the guardian's place. */
    j = consent(P15, "KAA", "REFERRAL", "IDENTITY,OCCUPATION", id);
    TK_REFUSED(school, set(j, "consent_recorded.granted_by", "YOUTH"), SOFFA_ERR_CONSENT, "under 16 a guardian");
    j = consent(P15, "KAA", "REFERRAL", "IDENTITY,OCCUPATION", id);
    TK_ACCEPTED(school, set(j, "consent_recorded.granted_by", "GOD_MAN,YOUTH"), "school-journal/school-1415");
    client_close(&school);
    client_close(&kaa);
    tk_broker_free(b);
}

/* Rule 3: ages on the broker's own day of receipt, and dates only so far
 * back ([policy] event_max_days, concern_max_days). */
Test(law, rule_03_dates_soffa_can_trust)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = client(b, "school-1415");
    char d[11];
    /* 19 when the absence began (60 days back), 20 today. */
    TK_REFUSED(school, tk_json(SOFFA_MT_ABSENCE_REPORTED, P20, "1419"), SOFFA_ERR_AGE, "this pupil is 20");
    TK_ACCEPTED(school, tk_json(SOFFA_MT_ABSENCE_REPORTED, P19, "1419"), "kaa/1419");
    json_t *old = set(tk_json(SOFFA_MT_ABSENCE_REPORTED, P18, "1419"), "absence_reported.period_from", day(200, d));
    TK_REFUSED(school, old, SOFFA_ERR_BAD_FIELD, "absence_reported.period_from");
    old = set(tk_json(SOFFA_MT_ABSENCE_REPORTED, P25, "1419"), "absence_reported.period_from", day(730, d));
    TK_REFUSED(school, old, SOFFA_ERR_BAD_FIELD, "event_max_days");
    TK_REFUSED(school, days_back(tk_json(SOFFA_MT_CONCERN_REPORT_FILED, P15, "1419"), 40), SOFFA_ERR_BAD_FIELD, "concern_max_days");
    TK_REFUSED(school, days_back(tk_json(SOFFA_MT_CONCERN_REPORT_FILED, P19, "1419"), 730), SOFFA_ERR_BAD_FIELD, "730 days");
    TK_ACCEPTED(school, days_back(tk_json(SOFFA_MT_CONCERN_REPORT_FILED, P15, "1419"), 5), "social/1419");
    client_close(&school);
    tk_broker_free(b);

    /* The limits are the broker's configuration. */
    b = tk_broker_start("[policy]\nevent_max_days = 365\nconcern_max_days = 60\n");
    school = client(b, "school-1415");
    TK_ACCEPTED(school, set(tk_json(SOFFA_MT_ABSENCE_REPORTED, P18, "1419"), "absence_reported.period_from", day(200, d)), "kaa/1419");
    TK_ACCEPTED(school, days_back(tk_json(SOFFA_MT_CONCERN_REPORT_FILED, P15, "1419"), 40), "social/1419");
    TK_REFUSED(school, tk_json(SOFFA_MT_ABSENCE_REPORTED, P20, "1419"), SOFFA_ERR_AGE, "this pupil is 20");
    client_close(&school);
    tk_broker_free(b);
}

/* Rule 5: sensitive text bound for a KAA or Arbetsförmedlingen is refused,
 * naming the category and never the text; a report of concern and a
 * referral to social services are not screened. */
Test(law, rule_05_sensitive_text)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = client(b, "school-1415");
    soffa_client_t *kaa = client(b, "kaa-1419");
    char sid[SOFFA_UUID_STR], kid[SOFFA_UUID_STR];
    TK_ACCEPTED(school, consent(P18, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,SUMMARY_TEXT", sid),
             "school-journal/school-1415");
    json_t *j = set(tk_json(SOFFA_MT_AT_RISK_NOTICE, P18, "1419"), "consent_id", sid);
    TK_REFUSED(school, set(j, "at_risk_notice.note", "Har fått en ADHD-diagnos och mår dåligt."),
            SOFFA_ERR_SENSITIVE_TEXT, "at_risk_notice.note names health");
    TK_ACCEPTED(school, set(tk_json(SOFFA_MT_AT_RISK_NOTICE, P18, "1419"), "consent_id", sid), "kaa/1419");
    TK_ACCEPTED(kaa, consent(P18, "ARBETSFORMEDLINGEN,SOCIAL_SERVICES", "REFERRAL", "IDENTITY,CONTACT,SUMMARY_TEXT", kid),
             "kaa-journal/1419");
    TK_REFUSED(kaa, set(referral(P18, kid, false), "referral_sent.summary", "ADHD-diagnos, BUP-kontakt, missbruk i familjen"),
            SOFFA_ERR_SENSITIVE_TEXT, "substance use");
    TK_REFUSED(kaa, set(referral(P18, kid, false), "referral_sent.summary", "aktuell hos socialtjänsten, placerad på HVB"),
            SOFFA_ERR_SENSITIVE_TEXT, "social services or placement");
    TK_ACCEPTED(kaa, referral(P18, kid, false), "af/1419");
    TK_ACCEPTED(kaa, set(referral(P18, kid, true), "referral_sent.summary", "Missbruk i familjen, vill ha stöd."),
             "social/1419");
    j = set(tk_json(SOFFA_MT_CONCERN_REPORT_FILED, P15, "1419"), "concern_report_filed.description",
            "Misstänkt misshandel i hemmet; mamman har ett missbruk.");
    TK_ACCEPTED(school, j, "social/1419");
    client_close(&kaa);
    client_close(&school);
    tk_broker_stop(b, SIGTERM);
    /* The refused text never reached the log. */
    char path[400], *log = NULL;
    snprintf(path, sizeof path, "%s/broker.log", b->dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t cap = 1 << 20;
    log = calloc(1, cap);
    size_t n = fread(log, 1, cap - 1, f);
    fclose(f);
    cr_assert(n > 0 && strstr(log, "SENSITIVE_TEXT"), "the refusals are logged");
    cr_assert_null(strstr(log, "ADHD"));
    cr_assert_null(strstr(log, "HVB"));
    free(log);
    tk_broker_free(b);
}

/* Rule 5: the broker screens with the list its configuration names, and
 * will not start on a list it cannot read. */
Test(law, rule_05_the_configured_term_list)
{
    char *dir = tk_tmpdir("law-terms");
    char list[400], bad[400], cfg[1400];
    snprintf(list, sizeof list, "%s/terms.txt", dir);
    snprintf(bad, sizeof bad, "%s/broken.txt", dir);
    FILE *f = fopen(list, "w");
    fputs("[secret] hemligt | secret\nhemligord*\n", f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("[secret] hemligt | secret\nhemligord\n[Bad Key] x | y\n", f);
    fclose(f);
    snprintf(cfg, sizeof cfg, "[policy]\nsensitive_terms = %s\n", list);
    tk_broker_t *b = tk_broker_start(cfg);
    soffa_client_t *school = client(b, "school-1415");
    char sid[SOFFA_UUID_STR];
    TK_ACCEPTED(school, consent(P18, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,SUMMARY_TEXT", sid),
             "school-journal/school-1415");
    json_t *j = set(tk_json(SOFFA_MT_AT_RISK_NOTICE, P18, "1419"), "consent_id", sid);
    TK_REFUSED(school, set(j, "at_risk_notice.note", "Det är hemligorden som gäller."), SOFFA_ERR_SENSITIVE_TEXT,
            "secret (hemligt)");
    client_close(&school);
    /* --check names the list; a broken list stops the broker, naming file and line. */
    char *argv[] = {SOFFA_BIN_DIR "/soffa-broker", "--config", b->config, "--check", NULL};
    char *out = NULL, *err = NULL;
    cr_assert_eq(tk_run(argv, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "policy.sensitive_terms = ") && strstr(out, "(1 terms in 1 categories)"), "%s", out);
    cr_assert(strstr(out, "policy.event_max_days = 183") && strstr(out, "policy.concern_max_days = 30"), "%s", out);
    free(out);
    free(err);
    tk_broker_stop(b, SIGTERM);
    /* The same configuration, naming the broken list instead. */
    f = fopen(b->config, "r");
    cr_assert_not_null(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char *at = strstr(text, list);
    cr_assert_not_null(at);
    f = fopen(b->config, "w");
    fprintf(f, "%.*s%s%s", (int) (at - text), text, bad, at + strlen(list));
    fclose(f);
    cr_assert_not(tk_broker_spawn(b), "the broker started with a broken term list");
    cr_assert_eq(tk_run(argv, &out, &err), 1);
    cr_assert(strstr(err, "sensitive_terms") && strstr(err, "broken.txt") && strstr(err, "line 3"), "%s", err);
    free(out);
    free(err);
    tk_broker_free(b);
    tk_rmrf(dir);
    free(dir);
}

/* Rule 6: the consent covers the content, and nothing social services
 * knows goes to Arbetsförmedlingen. */
Test(law, rule_06_the_consent_covers_the_content)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *kaa = client(b, "kaa-1419");
    soffa_client_t *school = client(b, "school-1415");
    soffa_client_t *social = client(b, "social-1419");
    soffa_client_t *af = client(b, "af-1419");
    char narrow[SOFFA_UUID_STR], wide[SOFFA_UUID_STR], sid[SOFFA_UUID_STR];
    /* A summary needs SUMMARY_TEXT. */
    TK_ACCEPTED(kaa, consent(P18, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY,CONTACT", narrow), "kaa-journal/1419");
    TK_REFUSED(kaa, referral(P18, narrow, false), SOFFA_ERR_CONSENT, "SUMMARY_TEXT");
    json_t *r = set(referral(P18, narrow, false), "referral_sent.summary", "");
    const char *rid = tk_str(r, "referral_sent.referral_id");
    char ref[SOFFA_UUID_STR];
    snprintf(ref, sizeof ref, "%s", rid);
    TK_ACCEPTED(kaa, r, "af/1419");
    /* Status feedback keeps its rule: beyond RECEIVED it needs STATUS_FEEDBACK. */
    json_t *st = set(set(tk_json(SOFFA_MT_REFERRAL_STATUS_CHANGED, P18, "1419"), "consent_id", narrow),
                     "referral_status_changed.referral_id", ref);
    TK_ACCEPTED(af, set(st, "referral_status_changed.status", "RECEIVED"), "kaa/1419");
    st = set(set(tk_json(SOFFA_MT_REFERRAL_STATUS_CHANGED, P18, "1419"), "consent_id", narrow), "referral_status_changed.referral_id",
             ref);
    TK_REFUSED(af, st, SOFFA_ERR_CONSENT, "status feedback");
    /* An at-risk notice: purpose REFERRAL and OCCUPATION. */
    TK_ACCEPTED(school, consent(P18, "KAA", "REFERRAL", "IDENTITY,SUMMARY_TEXT", sid), "school-journal/school-1415");
    TK_REFUSED(school, set(tk_json(SOFFA_MT_AT_RISK_NOTICE, P18, "1419"), "consent_id", sid), SOFFA_ERR_CONSENT, "OCCUPATION");
    TK_ACCEPTED(school, consent(P18, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,SUMMARY_TEXT", sid),
             "school-journal/school-1415");
    TK_ACCEPTED(school, set(tk_json(SOFFA_MT_AT_RISK_NOTICE, P18, "1419"), "consent_id", sid), "kaa/1419");
    /* Social services answers a referral; a referral to Arbetsförmedlingen
     * that follows the answer, or continues its thread, is refused. */
    TK_ACCEPTED(kaa, consent(P18, "ARBETSFORMEDLINGEN,SOCIAL_SERVICES", "REFERRAL,STATUS_FEEDBACK",
                          "IDENTITY,CONTACT,SUMMARY_TEXT", wide), "kaa-journal/1419");
    json_t *soc = referral(P18, wide, true);
    char soc_msg[SOFFA_UUID_STR], soc_ref[SOFFA_UUID_STR], answer[SOFFA_UUID_STR];
    snprintf(soc_msg, sizeof soc_msg, "%s", tk_str(soc, "message_id"));
    snprintf(soc_ref, sizeof soc_ref, "%s", tk_str(soc, "referral_sent.referral_id"));
    set(soc, "correlation_id", soc_msg);
    TK_ACCEPTED(kaa, soc, "social/1419");
    st = set(set(tk_json(SOFFA_MT_REFERRAL_STATUS_CHANGED, P18, "1419"), "consent_id", wide), "referral_status_changed.referral_id",
             soc_ref);
    set(set(st, "causation_id", soc_msg), "correlation_id", soc_msg);
    snprintf(answer, sizeof answer, "%s", tk_str(st, "message_id"));
    TK_ACCEPTED(social, st, "kaa/1419");
    TK_REFUSED(kaa, set(referral(P18, wide, false), "causation_id", answer), SOFFA_ERR_SOCIAL_SECRECY,
            "causation_id names a message social services sent or received");
    TK_REFUSED(kaa, set(referral(P18, wide, false), "correlation_id", soc_msg), SOFFA_ERR_SOCIAL_SECRECY,
            "correlation_id");
    TK_ACCEPTED(kaa, set(referral(P18, wide, true), "causation_id", answer), "social/1419");
    TK_ACCEPTED(kaa, referral(P18, wide, false), "af/1419");
    client_close(&af);
    client_close(&social);
    client_close(&school);
    client_close(&kaa);
    tk_broker_free(b);
}

/* Issue 18: a PUBLISH-BATCH is judged message by message by the same law.
 * Each message the law refuses (rules 1, 2, 3, 5, 6 and 8 of issue 13),
 * sent alone, is refused again inside a batch between two lawful ones (with a fresh message id): the same code
 * and reason for it, and the two beside it stored one after the other, so
 * nothing of the refused one was stored in between. */
static void
s_refused_in_batch(soffa_client_t *one, soffa_client_t *two, json_t *good1, json_t *bad, json_t *good2,
                   const char *mailbox)
{
    /* Alone, as a PUBLISH. */
    json_t *again = json_deep_copy(bad);
    char mb[SOFFA_NAME_MAX], why[256];
    soffa_err_t alone = tk_pub(one, bad, mb, why);
    cr_assert_neq(alone, SOFFA_OK, "the law refuses it alone (stored in %s)", mb);
    /* In a batch, under a new message id. */
    uint8_t id[SOFFA_UUID_LEN];
    char ids[SOFFA_UUID_STR];
    soffa_uuid7(id);
    soffa_uuid_format(id, ids);
    json_object_set_new(again, "message_id", json_string(ids));
    char *text[3] = {json_dumps(good1, JSON_COMPACT), json_dumps(again, JSON_COMPACT), json_dumps(good2, JSON_COMPACT)};
    json_decref(good1);
    json_decref(again);
    json_decref(good2);
    soffa_err_t codes[3];
    uint64_t seqs[3];
    bool dups[3];
    char mbs[3][SOFFA_NAME_MAX], whys[3][256];
    tk_publish_batch_json(two, (const char *const *) text, 3, soffa_client_next_tag(two), codes, seqs, dups, mbs, whys);
    cr_assert_eq(codes[1], alone, "in a batch: %s (%s); alone: %s (%s)", soffa_errname(codes[1]), whys[1],
                 soffa_errname(alone), why);
    cr_assert_str_eq(whys[1], why, "the same reason in a batch as alone");
    for (int i = 0; i < 3; i += 2) {
        cr_assert_eq(codes[i], SOFFA_OK, "the lawful message %d beside it: %s (%s)", i, soffa_errname(codes[i]), whys[i]);
        cr_assert_not(dups[i]);
        cr_assert_str_eq(mbs[i], mailbox);
    }
    cr_assert_eq(seqs[2], seqs[0] + 1, "stored one after the other (%llu, %llu): nothing in between",
                 (unsigned long long) seqs[0], (unsigned long long) seqs[2]);
    for (int i = 0; i < 3; i++)
        free(text[i]);
}

Test(law, issue_18_one_refused_in_a_batch_the_others_stored)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = tk_client(b, "school-1415", false), *school2 = tk_client_v2(b, "school-1415", false);
    soffa_client_t *kaa = tk_client(b, "kaa-1419", false), *kaa2 = tk_client_v2(b, "kaa-1419", false);
    char d[11], id[SOFFA_UUID_STR], sid[SOFFA_UUID_STR];
    const char *kaa_mb = "kaa/1419", *journal = "kaa-journal/1419";
    /* Rule 1: outside the KAA's target group. */
    s_refused_in_batch(kaa, kaa2, tk_json(SOFFA_MT_KAA_CASE_OPENED, P18, "1419"), tk_json(SOFFA_MT_KAA_CASE_OPENED, P25, "1419"),
                       tk_json(SOFFA_MT_KAA_CASE_OPENED, P17, "1419"), journal);
    /* Rule 2: a guardian's consent for a 19-year-old. */
    s_refused_in_batch(kaa, kaa2, consent(P19, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY", id),
                       set(consent(P19, "SOCIAL_SERVICES", "REFERRAL", "IDENTITY", id), "consent_recorded.granted_by",
                           "GUARDIAN"),
                       consent(P18, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY", id), journal);
    /* Rule 3: a pupil of 20, and an absence that began 200 days back. */
    s_refused_in_batch(school, school2, tk_json(SOFFA_MT_ABSENCE_REPORTED, P18, "1419"), tk_json(SOFFA_MT_ABSENCE_REPORTED, P20, "1419"),
                       tk_json(SOFFA_MT_ABSENCE_REPORTED, P19, "1419"), kaa_mb);
    s_refused_in_batch(school, school2, tk_json(SOFFA_MT_ABSENCE_REPORTED, P18, "1419"),
                       set(tk_json(SOFFA_MT_ABSENCE_REPORTED, P18, "1419"), "absence_reported.period_from", day(200, d)),
                       tk_json(SOFFA_MT_ABSENCE_REPORTED, P19, "1419"), kaa_mb);
    /* Rules 5 and 6: a diagnosis in an at-risk note, and a consent that
     * does not cover the notice. */
    TK_ACCEPTED(school, consent(P18, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,SUMMARY_TEXT", sid),
             "school-journal/school-1415");
    s_refused_in_batch(school, school2, tk_json(SOFFA_MT_ABSENCE_REPORTED, P18, "1419"),
                       set(set(tk_json(SOFFA_MT_AT_RISK_NOTICE, P18, "1419"), "consent_id", sid), "at_risk_notice.note",
                           "Har fått en ADHD-diagnos."),
                       tk_json(SOFFA_MT_ABSENCE_REPORTED, P19, "1419"), kaa_mb);
    TK_ACCEPTED(school, consent(P18, "KAA", "REFERRAL", "IDENTITY,SUMMARY_TEXT", id), "school-journal/school-1415");
    s_refused_in_batch(school, school2, tk_json(SOFFA_MT_ABSENCE_REPORTED, P18, "1419"),
                       set(tk_json(SOFFA_MT_AT_RISK_NOTICE, P18, "1419"), "consent_id", id), tk_json(SOFFA_MT_ABSENCE_REPORTED, P19, "1419"),
                       kaa_mb);
    /* Rule 8 (issue 13): a contact attempt on no open case of the young person. */
    s_refused_in_batch(kaa, kaa2, consent(P18, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY", id),
                       tk_json(SOFFA_MT_CONTACT_ATTEMPTED, P19, "1419"), consent(P19, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY", id),
                       journal);
    /* The sender's role: a school may not refer. */
    s_refused_in_batch(school, school2, tk_json(SOFFA_MT_ABSENCE_REPORTED, P18, "1419"), referral(P18, sid, false),
                       tk_json(SOFFA_MT_ABSENCE_REPORTED, P19, "1419"), kaa_mb);
    soffa_client_close(&school);
    soffa_client_close(&school2);
    soffa_client_close(&kaa);
    soffa_client_close(&kaa2);
    tk_broker_free(b);
}
