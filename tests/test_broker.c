/*  Integration tests: the real soffa-broker process, real sockets (ipc and
 *  tcp, CURVE), a real LMDB directory. Scenarios are numbered by area. */
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
static char ADULT[13];    /* 21 years old */

static void
setup(void)
{
    soffa_date_t t = soffa_date_today();
    tk_pnr(t.year - 18, 3, 14, 271, 0, PUPIL);
    tk_pnr(t.year - 16, 5, 2, 384, 0, CHILD);
    tk_pnr(t.year - 21, 1, 9, 117, 0, ADULT);
}

TestSuite(broker, .init = setup, .timeout = 120);

/* A valid message of type about pnr in hem, as a jansson object to adjust. */
static json_t *
J(soffa_msg_type_t type, const char *pnr, const char *hem)
{
    char *s = tk_msg_json(type, pnr, hem);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    return j;
}

static const char *
jid(json_t *j, const char *field)
{
    return json_string_value(json_object_get(j, field));
}

static json_t *
payload(json_t *j)
{
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        if (soffa_msg_type_from_name(key) != SOFFA_MT_NONE)
            return v;
    }
    return NULL;
}

/* Publishes j (and frees it). */
static soffa_err_t
pub(soffa_client_t *c, json_t *j, char *mailbox, char *why)
{
    char *s = json_dumps(j, JSON_COMPACT);
    soffa_err_t rc = tk_publish_json(c, s, NULL, mailbox, why);
    free(s);
    json_decref(j);
    return rc;
}

/* Publishes j and asserts where it went. */
static void
pub_ok(soffa_client_t *c, json_t *j, const char *want_mailbox)
{
    char mailbox[SOFFA_NAME_MAX] = "", why[256] = "";
    char *s = json_dumps(j, JSON_COMPACT);
    soffa_err_t rc = tk_publish_json(c, s, NULL, mailbox, why);
    cr_assert_eq(rc, SOFFA_OK, "refused (%s): %s\n%s", soffa_errname(rc), why, s);
    cr_assert_str_eq(mailbox, want_mailbox, "%s", s);
    free(s);
    json_decref(j);
}

/* A consent recorded by `c`'s organisation for pnr; returns its id (static buffer). */
static const char *
record_consent(soffa_client_t *c, const char *pnr, const char *want_mailbox, const char *recipients[], size_t nrec)
{
    static char id[64];
    json_t *j = J(SOFFA_MT_CONSENT_RECORDED, pnr, "1419");
    json_t *p = payload(j);
    snprintf(id, sizeof id, "%s", jid(p, "consent_id"));
    json_object_set_new(j, "consent_id", json_string(id));
    soffa_date_t t = soffa_date_today();
    char from[11], to[11];
    soffa_date_format(t, from);
    t.month = t.month == 12 ? 1 : t.month + 1;
    t.year += t.month == 1;
    if (t.day > 28)
        t.day = 28;
    soffa_date_format(t, to);
    json_object_set_new(p, "valid_from", json_string(from));
    json_object_set_new(p, "valid_to", json_string(to));
    if (recipients) {
        json_t *r = json_array();
        for (size_t i = 0; i < nrec; i++)
            json_array_append_new(r, json_string(recipients[i]));
        json_object_set_new(json_object_get(p, "scope"), "recipients", r);
    }
    pub_ok(c, j, want_mailbox);
    return id;
}

Test(broker, it_01_tjorn_pupil_at_stenungsund_school_reaches_tjorn_kaa)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *school = tk_client(b, "school-1415", false);
    pub_ok(school, J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419"), "kaa/1419");
    pub_ok(school, J(SOFFA_MT_ENROLMENT_CHANGED, PUPIL, "1419"), "kaa/1419");
    soffa_client_t *k19 = tk_client(b, "kaa-1419", false);
    soffa_client_t *k15 = tk_client(b, "kaa-1415", true);
    int types[8];
    cr_assert_eq(tk_collect(k19, "kaa/1419", 16, true, 8, 1000, types, NULL), 2);
    cr_assert_eq(types[0], SOFFA_MT_ABSENCE_REPORTED);
    cr_assert_eq(types[1], SOFFA_MT_ENROLMENT_CHANGED);
    cr_assert_eq(tk_collect(k15, "kaa/1415", 16, true, 8, 500, types, NULL), 0, "Stenungsund's KAA got it");
    soffa_client_close(&school);
    soffa_client_close(&k19);
    soffa_client_close(&k15);
    tk_broker_free(b);
}

Test(broker, it_02_every_allowed_row_reaches_its_mailbox)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client(b, "school-1415", false);
    soffa_client_t *k = tk_client(b, "kaa-1419", true);
    soffa_client_t *a = tk_client(b, "af-1419", false);
    soffa_client_t *so = tk_client(b, "social-1419", false);

    /* School rows. */
    pub_ok(s, J(SOFFA_MT_ENROLMENT_CHANGED, PUPIL, "1419"), "kaa/1419");
    json_t *abs = J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    char signal_id[64];
    snprintf(signal_id, sizeof signal_id, "%s", jid(abs, "message_id"));
    pub_ok(s, abs, "kaa/1419");
    const char *to_kaa[] = {"KAA"};
    char school_consent[64];
    snprintf(school_consent, sizeof school_consent, "%s",
             record_consent(s, PUPIL, "school-journal/school-1415", to_kaa, 1));
    json_t *risk = J(SOFFA_MT_AT_RISK_NOTICE, PUPIL, "1419");
    json_object_set_new(risk, "consent_id", json_string(school_consent));
    pub_ok(s, risk, "kaa/1419");
    json_t *concern = J(SOFFA_MT_CONCERN_REPORT_FILED, CHILD, "1419");
    char report_id[64];
    snprintf(report_id, sizeof report_id, "%s", jid(payload(concern), "report_id"));
    pub_ok(s, concern, "social/1419");
    json_t *sw = J(SOFFA_MT_CONSENT_WITHDRAWN, PUPIL, "1419");
    json_object_set_new(payload(sw), "consent_id", json_string(school_consent));
    json_object_set_new(sw, "legal_basis", json_string("CONSENT_OSL_12_2"));
    json_object_set_new(sw, "consent_id", json_string(school_consent));
    pub_ok(s, sw, "school-journal/school-1415");

    /* KAA rows. */
    json_t *ack = J(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1419");
    json_object_set_new(payload(ack), "signal_id", json_string(signal_id));
    pub_ok(k, ack, "school/school-1415");
    const soffa_msg_type_t internal[] = {SOFFA_MT_KAA_CASE_OPENED, SOFFA_MT_CONTACT_ATTEMPTED,
                                         SOFFA_MT_OCCUPATION_RECORDED, SOFFA_MT_PLAN_AGREED,
                                         SOFFA_MT_MEASURE_STARTED, SOFFA_MT_MEASURE_ENDED,
                                         SOFFA_MT_KAA_CASE_CLOSED, SOFFA_MT_SUBJECT_IDENTITY_CHANGED};
    for (size_t i = 0; i < sizeof internal / sizeof *internal; i++)
        pub_ok(k, J(internal[i], PUPIL, "1419"), "kaa-journal/1419");
    char consent[64];
    snprintf(consent, sizeof consent, "%s", record_consent(k, PUPIL, "kaa-journal/1419", NULL, 0));
    json_t *ref_af = J(SOFFA_MT_REFERRAL_SENT, PUPIL, "1419");
    json_object_set_new(ref_af, "consent_id", json_string(consent));
    char ref_af_id[64];
    snprintf(ref_af_id, sizeof ref_af_id, "%s", jid(payload(ref_af), "referral_id"));
    pub_ok(k, ref_af, "af/1419");
    json_t *ref_so = J(SOFFA_MT_REFERRAL_SENT, PUPIL, "1419");
    json_object_set_new(ref_so, "consent_id", json_string(consent));
    json_object_set_new(payload(ref_so), "target_kind", json_string("SOCIAL_SERVICES"));
    json_object_set_new(payload(ref_so), "purpose", json_string("SOC_SUPPORT_CONTACT"));
    char ref_so_id[64];
    snprintf(ref_so_id, sizeof ref_so_id, "%s", jid(payload(ref_so), "referral_id"));
    pub_ok(k, ref_so, "social/1419");
    pub_ok(k, J(SOFFA_MT_CONCERN_REPORT_FILED, CHILD, "1419"), "social/1419");

    /* Answers from the agencies. */
    json_t *st = J(SOFFA_MT_REFERRAL_STATUS_CHANGED, PUPIL, "1419");
    json_object_set_new(st, "consent_id", json_string(consent));
    json_object_set_new(payload(st), "referral_id", json_string(ref_af_id));
    pub_ok(a, st, "kaa/1419");
    st = J(SOFFA_MT_REFERRAL_STATUS_CHANGED, PUPIL, "1419");
    json_object_set_new(st, "consent_id", json_string(consent));
    json_object_set_new(payload(st), "referral_id", json_string(ref_so_id));
    json_object_set_new(payload(st), "status", json_string("RECEIVED"));
    pub_ok(so, st, "kaa/1419");
    json_t *fb = J(SOFFA_MT_CONCERN_REPORT_FEEDBACK, CHILD, "1419");
    json_object_set_new(payload(fb), "report_id", json_string(report_id));
    pub_ok(so, fb, "school/school-1415");

    /* Withdrawals by the KAA. */
    json_t *rw = J(SOFFA_MT_REFERRAL_WITHDRAWN, PUPIL, "1419");
    json_object_set_new(rw, "consent_id", json_string(consent));
    json_object_set_new(payload(rw), "referral_id", json_string(ref_so_id));
    json_object_set_new(payload(rw), "reason", json_string("CASE_CLOSED"));
    pub_ok(k, rw, "social/1419");
    json_t *cw = J(SOFFA_MT_CONSENT_WITHDRAWN, PUPIL, "1419");
    json_object_set_new(payload(cw), "consent_id", json_string(consent));
    json_object_set_new(cw, "legal_basis", json_string("CONSENT_OSL_12_2"));
    json_object_set_new(cw, "consent_id", json_string(consent));
    pub_ok(k, cw, "kaa-journal/1419");

    /* What the readers received, in order. */
    int types[32];
    size_t n = tk_collect(s, "school/school-1415", 16, true, 32, 800, types, NULL);
    cr_assert_eq(n, 2);
    cr_assert_eq(types[0], SOFFA_MT_SIGNAL_ACKNOWLEDGED);
    cr_assert_eq(types[1], SOFFA_MT_CONCERN_REPORT_FEEDBACK);
    n = tk_collect(k, "kaa/1419", 16, true, 32, 800, types, NULL);
    cr_assert_eq(n, 5, "kaa/1419 got %zu", n);
    cr_assert_eq(types[0], SOFFA_MT_ENROLMENT_CHANGED);
    cr_assert_eq(types[1], SOFFA_MT_ABSENCE_REPORTED);
    cr_assert_eq(types[2], SOFFA_MT_AT_RISK_NOTICE);
    cr_assert_eq(types[3], SOFFA_MT_REFERRAL_STATUS_CHANGED);
    cr_assert_eq(types[4], SOFFA_MT_REFERRAL_STATUS_CHANGED);
    /* social/1419: the school's and the KAA's concern reports, the referral
     * (delivered before the consent went) ... */
    n = tk_collect(so, "social/1419", 16, true, 32, 800, types, NULL);
    cr_assert_geq(n, 4, "social/1419 got %zu", n);
    cr_assert_eq(types[0], SOFFA_MT_CONCERN_REPORT_FILED);
    soffa_client_close(&s);
    soffa_client_close(&k);
    soffa_client_close(&a);
    soffa_client_close(&so);
    tk_broker_free(b);
}

Test(broker, it_03_disallowed_combinations_are_refused_with_their_reason)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client(b, "school-1415", false);
    soffa_client_t *k = tk_client(b, "kaa-1419", false);
    soffa_client_t *k15 = tk_client(b, "kaa-1415", false);
    soffa_client_t *a = tk_client(b, "af-1419", false);
    soffa_client_t *au = tk_client(b, "audit-1419", false);
    char why[256];

    cr_assert_eq(pub(s, J(SOFFA_MT_REFERRAL_SENT, PUPIL, "1419"), NULL, why), SOFFA_ERR_POLICY);
    cr_assert(strstr(why, "school agent may not send referral_sent") != NULL, "%s", why);
    cr_assert_eq(pub(a, J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419"), NULL, why), SOFFA_ERR_POLICY);
    cr_assert_eq(pub(k, J(SOFFA_MT_ENROLMENT_CHANGED, PUPIL, "1419"), NULL, why), SOFFA_ERR_POLICY);
    cr_assert_eq(pub(au, J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419"), NULL, why), SOFFA_ERR_POLICY);
    cr_assert_eq(pub(s, J(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419"), NULL, why), SOFFA_ERR_POLICY);

    json_t *j = J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    json_object_set_new(j, "legal_basis", json_string("SL_15_15_ENROLMENT"));
    cr_assert_eq(pub(s, j, NULL, why), SOFFA_ERR_LEGAL_BASIS);
    cr_assert(strstr(why, "SL_15_15_ABSENCE") != NULL, "%s", why);

    cr_assert_eq(pub(s, J(SOFFA_MT_ABSENCE_REPORTED, ADULT, "1419"), NULL, why), SOFFA_ERR_AGE);
    cr_assert(strstr(why, "under 20") != NULL, "%s", why);
    cr_assert_eq(pub(s, J(SOFFA_MT_CONCERN_REPORT_FILED, PUPIL, "1419"), NULL, why), SOFFA_ERR_AGE);
    cr_assert(strstr(why, "under 18") != NULL, "%s", why);

    cr_assert_eq(pub(k15, J(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419"), NULL, why), SOFFA_ERR_NOT_AUTHORISED);
    cr_assert(strstr(why, "1419") != NULL, "%s", why);

    /* The answer must come from the answered message's recipient. */
    json_t *abs = J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    char signal_id[64];
    snprintf(signal_id, sizeof signal_id, "%s", jid(abs, "message_id"));
    pub_ok(s, abs, "kaa/1419");
    json_t *ack = J(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1419");
    json_object_set_new(payload(ack), "signal_id", json_string(signal_id));
    cr_assert_eq(pub(k15, ack, NULL, why), SOFFA_ERR_NOT_AUTHORISED, "%s", why);
    ack = J(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1419");
    cr_assert_eq(pub(k, ack, NULL, why), SOFFA_ERR_NOT_FOUND, "acknowledging an unknown signal");

    /* A message that claims another sender. */
    j = J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    json_object_set_new(j, "sender", json_pack("{s:s, s:s}", "kind", "SCHOOL_PRINCIPAL", "kommunkod", "1480"));
    cr_assert_eq(pub(s, j, NULL, why), SOFFA_ERR_NOT_AUTHORISED);
    cr_assert(strstr(why, "1480") != NULL, "%s", why);
    j = J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    json_object_set_new(j, "sender", json_pack("{s:s}", "kind", "KAA"));
    cr_assert_eq(pub(s, j, NULL, why), SOFFA_ERR_NOT_AUTHORISED);

    /* Invalid content never reaches the policy. */
    j = J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    json_object_set_new(json_object_get(j, "subject"), "hemkommun", json_string("1400"));
    cr_assert_eq(pub(s, j, NULL, why), SOFFA_ERR_KOMMUN);
    cr_assert(strstr(why, "subject.hemkommun") != NULL, "%s", why);

    /* Nothing refused was stored: kaa/1419 holds just the one absence. */
    int types[8];
    cr_assert_eq(tk_collect(k, "kaa/1419", 8, true, 8, 800, types, NULL), 1);
    soffa_client_close(&s);
    soffa_client_close(&k);
    soffa_client_close(&k15);
    soffa_client_close(&a);
    soffa_client_close(&au);
    tk_broker_free(b);
}

Test(broker, it_04_consent_rules_for_referrals)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *k = tk_client(b, "kaa-1419", false);
    char why[256];

    /* No consent recorded: refused. */
    json_t *r = J(SOFFA_MT_REFERRAL_SENT, PUPIL, "1419");
    cr_assert_eq(pub(k, r, NULL, why), SOFFA_ERR_CONSENT);
    cr_assert(strstr(why, "consent") != NULL, "%s", why);

    /* A consent for AF only does not cover social services. */
    const char *af_only[] = {"ARBETSFORMEDLINGEN"};
    char consent[64];
    snprintf(consent, sizeof consent, "%s", record_consent(k, PUPIL, "kaa-journal/1419", af_only, 1));
    r = J(SOFFA_MT_REFERRAL_SENT, PUPIL, "1419");
    json_object_set_new(r, "consent_id", json_string(consent));
    json_object_set_new(payload(r), "target_kind", json_string("SOCIAL_SERVICES"));
    json_object_set_new(payload(r), "purpose", json_string("SOC_SUPPORT_CONTACT"));
    cr_assert_eq(pub(k, r, NULL, why), SOFFA_ERR_CONSENT);
    cr_assert(strstr(why, "social services") != NULL, "%s", why);

    /* Another person's consent does not count. */
    r = J(SOFFA_MT_REFERRAL_SENT, CHILD, "1419");
    json_object_set_new(r, "consent_id", json_string(consent));
    cr_assert_eq(pub(k, r, NULL, why), SOFFA_ERR_CONSENT);
    cr_assert(strstr(why, "another person") != NULL, "%s", why);

    /* Protected identity: contact details are refused. */
    r = J(SOFFA_MT_REFERRAL_SENT, PUPIL, "1419");
    json_object_set_new(r, "consent_id", json_string(consent));
    json_object_set_new(json_object_get(r, "subject"), "protected_identity", json_true());
    cr_assert_eq(pub(k, r, NULL, why), SOFFA_ERR_PROTECTED);

    /* The referral itself goes through, but AF is not connected yet. */
    r = J(SOFFA_MT_REFERRAL_SENT, PUPIL, "1419");
    json_object_set_new(r, "consent_id", json_string(consent));
    pub_ok(k, r, "af/1419");

    /* The young person withdraws consent before AF has read the referral. */
    json_t *cw = J(SOFFA_MT_CONSENT_WITHDRAWN, PUPIL, "1419");
    json_object_set_new(payload(cw), "consent_id", json_string(consent));
    json_object_set_new(cw, "legal_basis", json_string("CONSENT_OSL_12_2"));
    json_object_set_new(cw, "consent_id", json_string(consent));
    pub_ok(k, cw, "kaa-journal/1419");

    /* New referrals on it are refused... */
    r = J(SOFFA_MT_REFERRAL_SENT, PUPIL, "1419");
    json_object_set_new(r, "consent_id", json_string(consent));
    cr_assert_eq(pub(k, r, NULL, why), SOFFA_ERR_CONSENT);
    cr_assert(strstr(why, "withdrawn") != NULL, "%s", why);

    /* ... and AF receives only the withdrawal, not the referral. */
    soffa_client_t *a = tk_client(b, "af-1419", false);
    int types[8];
    size_t n = tk_collect(a, "af/1419", 8, true, 8, 1000, types, NULL);
    cr_assert_eq(n, 1, "af/1419 got %zu messages", n);
    cr_assert_eq(types[0], SOFFA_MT_REFERRAL_WITHDRAWN);

    /* A concern report is never held back by consent logic. */
    soffa_client_t *s = tk_client(b, "school-1415", false);
    pub_ok(s, J(SOFFA_MT_CONCERN_REPORT_FILED, CHILD, "1419"), "social/1419");
    soffa_client_close(&s);
    soffa_client_close(&a);
    soffa_client_close(&k);
    tk_broker_free(b);
}

Test(broker, it_05_identity_unknown_keys_other_mailboxes_and_the_sender)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *c = NULL;
    cr_assert_eq(tk_client_try(b, "stranger", false, 700, &c), SOFFA_ERR_TIMEOUT, "an unknown key got a session");
    cr_assert_eq(tk_client_try(b, "stranger", true, 700, &c), SOFFA_ERR_TIMEOUT);
    cr_assert_null(c);

    soffa_client_t *k15 = tk_client(b, "kaa-1415", false);
    soffa_frame_t sub = {.type = SOFFA_FRAME_SUBSCRIBE, .credit = 8};
    strcpy(sub.mailbox, "kaa/1419");
    cr_assert_eq(soffa_client_send(k15, &sub), SOFFA_OK);
    soffa_frame_t f;
    cr_assert_eq(soffa_client_recv(k15, &f, 2000), SOFFA_OK);
    cr_assert_eq(f.type, SOFFA_FRAME_ERROR);
    cr_assert_eq(f.code, SOFFA_ERR_NOT_AUTHORISED);
    soffa_frame_fini(&f);
    strcpy(sub.mailbox, "kaa-journal/1415");
    soffa_client_send(k15, &sub);
    cr_assert_eq(soffa_client_recv(k15, &f, 2000), SOFFA_OK);
    cr_assert_eq(f.code, SOFFA_ERR_NOT_AUTHORISED, "a journal is read by no agent");
    soffa_frame_fini(&f);

    /* The envelope names the authenticated sender. */
    soffa_client_t *s = tk_client(b, "school-1415", true);
    json_t *j = J(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    json_object_set_new(j, "sender", json_pack("{s:s, s:s}", "kind", "SCHOOL_PRINCIPAL", "actor_ref", "rektor-3"));
    pub_ok(s, j, "kaa/1419");
    soffa_client_t *k = tk_client(b, "kaa-1419", false);
    strcpy(sub.mailbox, "kaa/1419");
    soffa_client_send(k, &sub);
    cr_assert_eq(soffa_client_recv(k, &f, 2000), SOFFA_OK);
    cr_assert_eq(f.type, SOFFA_FRAME_DELIVER);
    soffa_envelope_t e;
    cr_assert_eq(soffa_envelope_decode(f.data, f.data_len, &e), SOFFA_OK);
    cr_assert_str_eq(e.sender_agent, "school-1415");
    cr_assert_eq(e.sender_role, SOFFA_ROLE_SCHOOL);
    cr_assert_str_eq(e.sender_kommun, "1415");
    cr_assert_str_eq(e.sender_unit, "12345678");
    cr_assert_str_eq(e.mailbox, "kaa/1419");
    uint8_t h[32];
    soffa_wire_hash(f.data, f.data_len, h);
    cr_assert_eq(memcmp(h, f.hash, 32), 0, "the delivered hash is the stored one");
    soffa_envelope_fini(&e);
    soffa_frame_fini(&f);
    soffa_client_close(&s);
    soffa_client_close(&k);
    soffa_client_close(&k15);
    tk_broker_free(b);
}
