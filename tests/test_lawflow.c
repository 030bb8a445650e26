/*  The law enforced at the broker (issue 13, rules 7 to 11), end to end:
 *  the real soffa-broker process, real sockets, a real LMDB store. Each
 *  rule's refusal comes with its code and reason, beside the case the law
 *  allows; what happens at delivery is seen in real deliveries. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soffa_record.h"
#include "soffa_stats.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "testkit.h"

static char PUPIL[13];    /* 18 years old, registered in Tjörn (1419) */
static char OTHER[13];    /* another 18-year-old in Tjörn */
static char SAMNR[13];    /* a samordningsnummer, 18 years old */
static char NEWPNR[13];   /* the personnummer that replaces it */

static void
setup(void)
{
    soffa_date_t t = soffa_date_today();
    tk_pnr(t.year - 18, 3, 14, 271, 0, PUPIL);
    tk_pnr(t.year - 18, 6, 2, 384, 0, OTHER);
    tk_pnr(t.year - 18, 5, 20, 313, 1, SAMNR);
    tk_pnr(t.year - 18, 5, 20, 327, 0, NEWPNR);
}

TestSuite(lawflow, .init = setup, .timeout = 120);

/* SOFFA_TEST_BATCH=1 (ctest lawflow-batch): every publish goes as a
 * PUBLISH-BATCH on a second connection of the same agent, and every replay
 * is read on it in DELIVER-BATCH frames; both must meet the same rules
 * (tk_client_pub, issue 18). */

/* ---- Messages ------------------------------------------------------------------------- */

static const char *
str(json_t *j, const char *field)
{
    return json_string_value(json_object_get(j, field));
}

static void
set(json_t *j, const char *field, const char *value)
{
    json_object_set_new(j, field, json_string(value));
}

/* Publishes j (taken); returns the broker's code, why/mailbox filled. */
/* Publishes j (taken), which must be refused with code, the reason saying says. */
static void
pub_refused(soffa_client_t *c, json_t *j, soffa_err_t code, const char *says)
{
    char why[256] = "";
    soffa_err_t rc = tk_pub(c, j, NULL, why);
    cr_assert_eq(rc, code, "got %s (%s), wanted %s", soffa_errname(rc), why, soffa_errname(code));
    if (says)
        cr_assert(strstr(why, says) != NULL, "the reason '%s' lacks '%s'", why, says);
}

/* A consent recorded by c's organisation for pnr, valid from today for a
 * month, covering the comma-separated lists; its id in id_out. */
static void
consent(soffa_client_t *c, const char *pnr, const char *recipients, const char *purposes, const char *categories,
        const char *journal, char id_out[64])
{
    json_t *j = tk_json(SOFFA_MT_CONSENT_RECORDED, pnr, "1419");
    json_t *p = tk_payload(j);
    snprintf(id_out, 64, "%s", str(p, "consent_id"));
    set(j, "consent_id", id_out);
    soffa_date_t t = soffa_date_today();
    char from[11], to[11];
    soffa_date_format(t, from);
    t.month = t.month == 12 ? 1 : t.month + 1;
    t.year += t.month == 1;
    if (t.day > 28)
        t.day = 28;
    soffa_date_format(t, to);
    set(p, "valid_from", from);
    set(p, "valid_to", to);
    json_t *scope = json_object_get(p, "scope");
    const char *lists[3] = {recipients, purposes, categories};
    const char *names[3] = {"recipients", "purposes", "data_categories"};
    for (int k = 0; k < 3; k++) {
        json_t *a = json_array();
        char buf[200];
        snprintf(buf, sizeof buf, "%s", lists[k]);
        char *save = NULL;
        for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save))
            json_array_append_new(a, json_string(w));
        json_object_set_new(scope, names[k], a);
    }
    tk_pub_ok(c, j, journal);
}

static void
withdraw(soffa_client_t *c, const char *pnr, const char *id, const char *journal)
{
    json_t *j = tk_json(SOFFA_MT_CONSENT_WITHDRAWN, pnr, "1419");
    set(tk_payload(j), "consent_id", id);
    set(j, "consent_id", id);
    tk_pub_ok(c, j, journal);
}

/* A referral from kaa-1419 to Arbetsförmedlingen under consent id; its id in ref_out. */
static json_t *
referral(const char *pnr, const char *consent_id, char ref_out[64])
{
    json_t *j = tk_json(SOFFA_MT_REFERRAL_SENT, pnr, "1419");
    set(j, "consent_id", consent_id);
    if (ref_out)
        snprintf(ref_out, 64, "%s", str(tk_payload(j), "referral_id"));
    return j;
}

/* A case event of `type` on case_id (the opening makes its own id when
 * case_id is empty and writes it there). */
static json_t *
event(soffa_msg_type_t type, const char *pnr, const char *hem, char case_id[64])
{
    json_t *j = tk_json(type, pnr, hem);
    if (type == SOFFA_MT_KAA_CASE_OPENED && !case_id[0])
        snprintf(case_id, 64, "%s", str(tk_payload(j), "case_id"));
    else
        set(tk_payload(j), "case_id", case_id);
    return j;
}

static json_t *
attempt(const char *pnr, const char *case_id, const char *channel, const char *outcome)
{
    json_t *j = tk_json(SOFFA_MT_CONTACT_ATTEMPTED, pnr, "1419");
    set(tk_payload(j), "case_id", case_id);
    set(tk_payload(j), "channel", channel);
    set(tk_payload(j), "outcome", outcome);
    return j;
}

/* ---- Deliveries ------------------------------------------------------------------------- */

typedef struct {
    int type;
    soffa_role_t sender_role;
    char sender[SOFFA_NAME_MAX];
    char *json;               /* the message, as JSON (freed by got_free) */
} got_t;

/* Subscribes to mailbox and takes what comes within wait_ms (acknowledged). */
static size_t
collect(soffa_client_t *c, const char *mailbox, got_t *got, size_t max, int wait_ms)
{
    soffa_frame_t sub = {.type = SOFFA_FRAME_SUBSCRIBE, .credit = 64};
    snprintf(sub.mailbox, sizeof sub.mailbox, "%s", mailbox);
    cr_assert_eq(soffa_client_send(c, &sub), SOFFA_OK);
    size_t n = 0;
    int64_t deadline = soffa_mono_us() + (int64_t) wait_ms * 1000;
    while (n < max) {
        int64_t left = (deadline - soffa_mono_us()) / 1000;
        if (left <= 0)
            break;
        soffa_frame_t f;
        if (soffa_client_recv(c, &f, (int) left) != SOFFA_OK) {
            soffa_frame_fini(&f);
            continue;
        }
        cr_assert_neq(f.type, SOFFA_FRAME_ERROR, "subscribe to %s refused: %s", mailbox, f.text);
        if (f.type == SOFFA_FRAME_DELIVER) {
            soffa_envelope_t e;
            cr_assert_eq(soffa_envelope_open(f.data, f.data_len, f.has_record_key ? f.record_key : NULL, &e), SOFFA_OK);
            soffa_msg_t *m = NULL;
            cr_assert_eq(soffa_msg_decode(e.body, e.body_len, &m), SOFFA_OK);
            got[n].type = (int) e.msg_type;
            got[n].sender_role = e.sender_role;
            snprintf(got[n].sender, sizeof got[n].sender, "%s", e.sender_agent);
            got[n].json = soffa_msg_to_json(m);
            soffa_msg_destroy(&m);
            soffa_envelope_fini(&e);
            n++;
            tk_seen(&f);
            tk_ack(c, mailbox, f.seq);
        }
        soffa_frame_fini(&f);
    }
    return n;
}

static void
got_free(got_t *got, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(got[i].json);
}

static size_t
count_type(const got_t *got, size_t n, soffa_msg_type_t type)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += got[i].type == (int) type;
    return k;
}

/* A replay by an auditor: the count the broker reported (or -code);
 * types[] and access records (access[] as JSON-free summaries) filled. */
typedef struct {
    char agent[SOFFA_NAME_MAX];
    char mailbox[SOFFA_NAME_MAX];
    int state;
    uint64_t records;
    char request[32];
} access_t;

/* One replay on c, or on its second connection under SOFFA_TEST_BATCH=1
 * (the records then come in DELIVER-BATCH frames, and the access records
 * must count them the same). Returns the records, or -code. */
static long
replay(soffa_client_t *c, const char *request, const char *mailbox, const char *subject, int *types,
       access_t *access, size_t max)
{
    if (tk_client_second(c))
        c = tk_client_second(c);
    soffa_frame_t r = {.type = SOFFA_FRAME_REPLAY, .tag = soffa_client_next_tag(c)};
    snprintf(r.text, sizeof r.text, "%s", request);
    if (mailbox)
        snprintf(r.filter.mailbox, sizeof r.filter.mailbox, "%s", mailbox);
    if (subject)
        snprintf(r.filter.subject_id, sizeof r.filter.subject_id, "%s", subject);
    cr_assert_eq(soffa_client_send(c, &r), SOFFA_OK);
    size_t n = 0;
    for (;;) {
        soffa_frame_t f;
        cr_assert_eq(soffa_client_recv(c, &f, 5000), SOFFA_OK, "replay stalled");
        if (f.type == SOFFA_FRAME_ERROR) {
            long code = -(long) f.code;
            soffa_frame_fini(&f);
            return code;
        }
        soffa_frame_item_t one = {.seq = f.seq, .data = f.data, .data_len = f.data_len,
                                  .has_record_key = f.has_record_key};
        memcpy(one.hash, f.hash, SOFFA_HASH_LEN);
        memcpy(one.record_key, f.record_key, SOFFA_RECORD_KEY_LEN);
        const soffa_frame_item_t *rec = f.type == SOFFA_FRAME_DELIVER ? &one : f.items;
        size_t k = f.type == SOFFA_FRAME_DELIVER ? 1 : f.type == SOFFA_FRAME_DELIVER_BATCH ? f.n_items : 0;
        for (size_t i = 0; i < k; i++) {
            soffa_envelope_t e;
            cr_assert_eq(soffa_envelope_open(rec[i].data, rec[i].data_len, rec[i].has_record_key ? rec[i].record_key : NULL,
                                             &e), SOFFA_OK);
            if (n < max && types)
                types[n] = e.kind == SOFFA_RK_ACCESS ? -1 : (int) e.msg_type;
            if (n < max && access) {
                memset(&access[n], 0, sizeof access[n]);
                snprintf(access[n].mailbox, sizeof access[n].mailbox, "%s", e.mailbox);
                soffa_access_t a;
                if (e.kind == SOFFA_RK_ACCESS && soffa_access_decode(e.body, e.body_len, &a) == SOFFA_OK) {
                    snprintf(access[n].agent, sizeof access[n].agent, "%s", a.agent);
                    snprintf(access[n].request, sizeof access[n].request, "%s", a.request);
                    access[n].state = a.state;
                    access[n].records = a.records;
                }
            }
            n++;
            soffa_envelope_fini(&e);
        }
        if (k) {
            soffa_frame_t ra = {.type = SOFFA_FRAME_REPLAY_ACK, .tag = r.tag, .seq = rec[k - 1].seq, .has_hash = true};
            memcpy(ra.hash, rec[k - 1].hash, SOFFA_HASH_LEN);
            soffa_client_send(c, &ra);
        }
        if (f.type == SOFFA_FRAME_REPLAY_END) {
            cr_assert_eq(f.count, n);
            soffa_frame_fini(&f);
            return (long) n;
        }
        soffa_frame_fini(&f);
    }
}

/* ---- Rule 7: consent at delivery ----------------------------------------------------------- */

/* An at-risk notice waits while the KAA is away; the school's consent is
 * withdrawn: the notice is withheld, and later ones are refused. One under
 * a consent still active is delivered. */
Test(lawflow, rule_07_an_at_risk_notice_is_withheld_once_its_consent_is_withdrawn)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client_pub(b, "school-1415");
    char gone[64], kept[64];
    consent(s, PUPIL, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,SUMMARY_TEXT", "school-journal/school-1415", gone);
    consent(s, OTHER, "KAA", "REFERRAL", "IDENTITY,OCCUPATION,SUMMARY_TEXT", "school-journal/school-1415", kept);
    json_t *n1 = tk_json(SOFFA_MT_AT_RISK_NOTICE, PUPIL, "1419");
    set(n1, "consent_id", gone);
    tk_pub_ok(s, n1, "kaa/1419");
    json_t *n2 = tk_json(SOFFA_MT_AT_RISK_NOTICE, OTHER, "1419");
    set(n2, "consent_id", kept);
    tk_pub_ok(s, n2, "kaa/1419");
    withdraw(s, PUPIL, gone, "school-journal/school-1415");
    json_t *n3 = tk_json(SOFFA_MT_AT_RISK_NOTICE, PUPIL, "1419");
    set(n3, "consent_id", gone);
    pub_refused(s, n3, SOFFA_ERR_CONSENT, "withdrawn");

    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    got_t got[8];
    size_t n = collect(k, "kaa/1419", got, 8, 1200);
    cr_assert_eq(n, 1, "kaa/1419 got %zu", n);
    cr_assert_eq(got[0].type, SOFFA_MT_AT_RISK_NOTICE);
    cr_assert(strstr(got[0].json, OTHER), "the notice delivered is not the one under the active consent");
    got_free(got, n);
    tk_client_pub_close(&k);
    tk_client_pub_close(&s);
    tk_broker_free(b);
}

/* Status feedback beyond RECEIVED rests on the referral's consent: when it
 * is withdrawn before the KAA reads its inbox, ACCEPTED is withheld and
 * RECEIVED still comes; Arbetsförmedlingen gets the withdrawal notice. */
Test(lawflow, rule_07_status_feedback_is_withheld_but_received_passes)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    soffa_client_t *a = tk_client_pub(b, "af-1419");
    char c[64], ref[64];
    consent(k, PUPIL, "ARBETSFORMEDLINGEN", "REFERRAL,STATUS_FEEDBACK", "IDENTITY,CONTACT,SUMMARY_TEXT", "kaa-journal/1419", c);
    tk_pub_ok(k, referral(PUPIL, c, ref), "af/1419");
    got_t got[8];
    size_t n = collect(a, "af/1419", got, 1, 1500);
    cr_assert_eq(n, 1);
    got_free(got, n);
    const char *statuses[] = {"RECEIVED", "ACCEPTED"};
    for (int i = 0; i < 2; i++) {
        json_t *st = tk_json(SOFFA_MT_REFERRAL_STATUS_CHANGED, PUPIL, "1419");
        set(st, "consent_id", c);
        set(tk_payload(st), "referral_id", ref);
        set(tk_payload(st), "status", statuses[i]);
        tk_pub_ok(a, st, "kaa/1419");
    }
    withdraw(k, PUPIL, c, "kaa-journal/1419");
    n = collect(k, "kaa/1419", got, 8, 1200);
    cr_assert_eq(n, 1, "kaa/1419 got %zu", n);
    cr_assert(strstr(got[0].json, "\"status\":\"RECEIVED\""), "%s", got[0].json);
    got_free(got, n);
    tk_client_pub_close(&a);
    a = tk_client_pub(b, "af-1419");
    n = collect(a, "af/1419", got, 8, 1200);
    cr_assert_eq(n, 1);
    cr_assert_eq(got[0].type, SOFFA_MT_REFERRAL_WITHDRAWN);
    got_free(got, n);
    tk_client_pub_close(&a);
    tk_client_pub_close(&k);
    tk_broker_free(b);
}

/* The withdrawal's follow-up reaches every referral on the consent, however
 * many: 300 referrals (more than one batch of notices), none delivered,
 * 300 notices. */
Test(lawflow, rule_07_every_referral_of_a_withdrawn_consent_is_withheld_and_noticed)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    char c[64];
    consent(k, PUPIL, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY,CONTACT,SUMMARY_TEXT", "kaa-journal/1419", c);
    for (int i = 0; i < 300; i++)
        tk_pub_ok(k, referral(PUPIL, c, NULL), "af/1419");
    withdraw(k, PUPIL, c, "kaa-journal/1419");
    soffa_client_t *a = tk_client_pub(b, "af-1419");
    got_t *got = calloc(700, sizeof *got);
    size_t n = collect(a, "af/1419", got, 700, 4000);
    cr_assert_eq(count_type(got, n, SOFFA_MT_REFERRAL_SENT), 0, "a referral of the withdrawn consent was delivered");
    cr_assert_eq(count_type(got, n, SOFFA_MT_REFERRAL_WITHDRAWN), 300, "%zu notices of 300",
                 count_type(got, n, SOFFA_MT_REFERRAL_WITHDRAWN));
    got_free(got, n);
    free(got);
    tk_client_pub_close(&a);
    tk_client_pub_close(&k);
    tk_broker_free(b);
}

/* ---- Rule 8: the case lifecycle ----------------------------------------------------------- */

Test(lawflow, rule_08_events_need_the_young_persons_open_case)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    char none[64] = "0190b5a3-7c1e-7000-8000-0000000000aa", kase[64] = "", other[64] = "";
    pub_refused(k, event(SOFFA_MT_OCCUPATION_RECORDED, PUPIL, "1419", none), SOFFA_ERR_NOT_FOUND,
                "open the case first");
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", kase), "kaa-journal/1419");
    tk_pub_ok(k, event(SOFFA_MT_OCCUPATION_RECORDED, PUPIL, "1419", kase), "kaa-journal/1419");
    tk_pub_ok(k, event(SOFFA_MT_PLAN_AGREED, PUPIL, "1419", kase), "kaa-journal/1419");
    /* One open case per young person; an id once used is taken. */
    char second[64] = "";
    pub_refused(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", second), SOFFA_ERR_EXISTS, "already has an open case");
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, OTHER, "1419", other), "kaa-journal/1419");
    pub_refused(k, event(SOFFA_MT_KAA_CASE_OPENED, OTHER, "1419", kase), SOFFA_ERR_EXISTS, "already in use");
    /* Another young person's case id. */
    pub_refused(k, event(SOFFA_MT_MEASURE_STARTED, OTHER, "1419", kase), SOFFA_ERR_NOT_OPEN, "another young person");
    /* Closed: no more events, and closing again is refused. */
    json_t *close = event(SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "1419", kase);
    set(tk_payload(close), "reason", "STARTED_NATIONAL_PROGRAMME");
    json_object_del(tk_payload(close), "new_hemkommun");
    tk_pub_ok(k, close, "kaa-journal/1419");
    pub_refused(k, event(SOFFA_MT_OCCUPATION_RECORDED, PUPIL, "1419", kase), SOFFA_ERR_NOT_OPEN, "was closed on");
    pub_refused(k, event(SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "1419", kase), SOFFA_ERR_NOT_OPEN, NULL);
    /* Once closed, the young person may get a new case. */
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", second), "kaa-journal/1419");
    tk_client_pub_close(&k);
    tk_broker_free(b);
}

/* A closed case reopens as its own event, on a signal the KAA received
 * after it was closed; an older signal does not reopen it. */
Test(lawflow, rule_08_a_new_signal_reopens_a_closed_case)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client_pub(b, "school-1415");
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    json_t *first = tk_json(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    char old_signal[64];
    snprintf(old_signal, sizeof old_signal, "%s", str(first, "message_id"));
    tk_pub_ok(s, first, "kaa/1419");
    char kase[64] = "";
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", kase), "kaa-journal/1419");
    json_t *reopen = event(SOFFA_MT_KAA_CASE_REOPENED, PUPIL, "1419", kase);
    set(tk_payload(reopen), "signal_id", old_signal);
    pub_refused(k, reopen, SOFFA_ERR_NOT_OPEN, "only a closed case");
    json_t *close = event(SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "1419", kase);
    set(tk_payload(close), "reason", "STARTED_NATIONAL_PROGRAMME");
    json_object_del(tk_payload(close), "new_hemkommun");
    tk_pub_ok(k, close, "kaa-journal/1419");
    reopen = event(SOFFA_MT_KAA_CASE_REOPENED, PUPIL, "1419", kase);
    set(tk_payload(reopen), "signal_id", old_signal);
    pub_refused(k, reopen, SOFFA_ERR_NOT_OPEN, "came before the case was closed");
    /* The young person leaves the programme again: a new signal. */
    json_t *again = tk_json(SOFFA_MT_ENROLMENT_CHANGED, PUPIL, "1419");
    char new_signal[64];
    snprintf(new_signal, sizeof new_signal, "%s", str(again, "message_id"));
    tk_pub_ok(s, again, "kaa/1419");
    reopen = event(SOFFA_MT_KAA_CASE_REOPENED, OTHER, "1419", kase);
    set(tk_payload(reopen), "signal_id", new_signal);
    pub_refused(k, reopen, SOFFA_ERR_NOT_OPEN, "another young person");
    reopen = event(SOFFA_MT_KAA_CASE_REOPENED, PUPIL, "1419", kase);
    set(tk_payload(reopen), "signal_id", new_signal);
    tk_pub_ok(k, reopen, "kaa-journal/1419");
    tk_pub_ok(k, event(SOFFA_MT_OCCUPATION_RECORDED, PUPIL, "1419", kase), "kaa-journal/1419");
    /* Another municipality's KAA cannot reopen it. */
    soffa_client_t *k15 = tk_client_pub(b, "kaa-1415");
    reopen = event(SOFFA_MT_KAA_CASE_REOPENED, PUPIL, "1419", kase);
    set(tk_payload(reopen), "signal_id", new_signal);
    pub_refused(k15, reopen, SOFFA_ERR_NOT_AUTHORISED, NULL);
    tk_client_pub_close(&k15);
    tk_client_pub_close(&k);
    tk_client_pub_close(&s);
    tk_broker_free(b);
}

/* NOT_REACHED after the routine: three attempts, two channels (the
 * default), counted since the opening or the last time the young person
 * was reached; a stricter routine in the configuration holds. */
Test(lawflow, rule_08_not_reached_only_after_the_attempts)
{
    tk_broker_t *b = tk_broker_start("[case]\nnot_reached_attempts = 4\n");
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    char kase[64] = "";
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", kase), "kaa-journal/1419");
    tk_pub_ok(k, attempt(PUPIL, kase, "LETTER", "NO_ANSWER"), "kaa-journal/1419");
    pub_refused(k, attempt(PUPIL, kase, "PHONE", "NOT_REACHED"), SOFFA_ERR_BAD_FIELD, "after 4 attempts");
    tk_pub_ok(k, attempt(PUPIL, kase, "LETTER", "NO_ANSWER"), "kaa-journal/1419");
    tk_pub_ok(k, attempt(PUPIL, kase, "LETTER", "NO_ANSWER"), "kaa-journal/1419");
    pub_refused(k, attempt(PUPIL, kase, "LETTER", "NOT_REACHED"), SOFFA_ERR_BAD_FIELD, "through 1 channel");
    tk_pub_ok(k, attempt(PUPIL, kase, "SMS", "NOT_REACHED"), "kaa-journal/1419");
    /* Not a state: the case takes events, and a contact starts the count again. */
    tk_pub_ok(k, attempt(PUPIL, kase, "HOME_VISIT", "REACHED"), "kaa-journal/1419");
    pub_refused(k, attempt(PUPIL, kase, "PHONE", "NOT_REACHED"), SOFFA_ERR_BAD_FIELD, "this would be attempt 1");
    tk_client_pub_close(&k);
    tk_broker_free(b);
}

/* A referral nobody answered within referral_expiry becomes EXPIRED: a
 * record from the broker in the history, sent to the referring KAA; the
 * referral is no longer delivered, and a late answer is refused. One
 * answered in time does not expire. */
Test(lawflow, rule_08_a_referral_nobody_answered_expires)
{
    tk_broker_t *b = tk_broker_start("[audit]\nreferral_expiry = 2s\n");
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    soffa_client_t *so = tk_client_pub(b, "social-1419");
    char c[64], late[64], answered[64];
    consent(k, PUPIL, "ARBETSFORMEDLINGEN,SOCIAL_SERVICES", "REFERRAL,STATUS_FEEDBACK", "IDENTITY,CONTACT,SUMMARY_TEXT",
            "kaa-journal/1419", c);
    tk_pub_ok(k, referral(PUPIL, c, late), "af/1419");
    json_t *r2 = referral(PUPIL, c, answered);
    set(tk_payload(r2), "target_kind", "SOCIAL_SERVICES");
    set(tk_payload(r2), "purpose", "SOC_SUPPORT_CONTACT");
    tk_pub_ok(k, r2, "social/1419");
    json_t *st = tk_json(SOFFA_MT_REFERRAL_STATUS_CHANGED, PUPIL, "1419");
    set(st, "consent_id", c);
    set(tk_payload(st), "referral_id", answered);
    set(tk_payload(st), "status", "RECEIVED");
    tk_pub_ok(so, st, "kaa/1419");
    /* Quiet past the deadline (the test broker drops silent sessions). */
    tk_client_pub_close(&so);
    tk_client_pub_close(&k);
    sleep(3);
    k = tk_client_pub(b, "kaa-1419");
    got_t got[8];
    size_t n = collect(k, "kaa/1419", got, 8, 1500);
    cr_assert_eq(n, 2, "kaa/1419 got %zu", n);
    cr_assert(strstr(got[0].json, "\"status\":\"RECEIVED\""), "%s", got[0].json);
    cr_assert_eq(got[1].type, SOFFA_MT_REFERRAL_STATUS_CHANGED);
    cr_assert_eq(got[1].sender_role, SOFFA_ROLE_BROKER, "the expiry is the broker's record");
    cr_assert(strstr(got[1].json, "\"status\":\"EXPIRED\"") && strstr(got[1].json, late), "%s", got[1].json);
    got_free(got, n);
    /* Arbetsförmedlingen comes back: nothing to read, and a late answer is refused. */
    soffa_client_t *a = tk_client_pub(b, "af-1419");
    n = collect(a, "af/1419", got, 8, 800);
    cr_assert_eq(n, 0, "an expired referral was delivered");
    st = tk_json(SOFFA_MT_REFERRAL_STATUS_CHANGED, PUPIL, "1419");
    set(st, "consent_id", c);
    set(tk_payload(st), "referral_id", late);
    set(tk_payload(st), "status", "RECEIVED");
    pub_refused(a, st, SOFFA_ERR_NOT_OPEN, "EXPIRED");
    /* It stays in the history, and is said only once (also after a restart). */
    tk_broker_stop(b, SIGTERM);
    cr_assert(tk_broker_spawn(b));
    tk_client_pub_close(&a);
    tk_client_pub_close(&k);
    sleep(1);
    soffa_client_t *au = tk_client_pub(b, "audit-all");
    int types[32];
    long h = replay(au, "history", NULL, PUPIL, types, NULL, 32);
    cr_assert_gt(h, 0);
    size_t expired = 0;
    for (long i = 0; i < h && i < 32; i++)
        expired += types[i] == SOFFA_MT_REFERRAL_STATUS_CHANGED;
    cr_assert_eq(expired, 2, "RECEIVED and one EXPIRED in the history, got %zu status records", expired);
    tk_client_pub_close(&au);
    tk_broker_free(b);
}

/* A store written before the case register existed: the register is built
 * from its history at the next start, so a case opened then takes events
 * and one closed then takes none. */
Test(lawflow, rule_08_the_register_is_built_from_an_earlier_history)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    char open_case[64] = "", closed_case[64] = "";
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", open_case), "kaa-journal/1419");
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, OTHER, "1419", closed_case), "kaa-journal/1419");
    json_t *close = event(SOFFA_MT_KAA_CASE_CLOSED, OTHER, "1419", closed_case);
    set(tk_payload(close), "reason", "TURNED_20");
    json_object_del(tk_payload(close), "new_hemkommun");
    tk_pub_ok(k, close, "kaa-journal/1419");
    tk_client_pub_close(&k);
    tk_broker_stop(b, SIGTERM);
    /* Take the register away, as a store of an earlier version lacks it. */
    char path[400];
    snprintf(path, sizeof path, "%s/data", b->dir);
    soffa_store_t *st = NULL;
    soffa_seal_master_t m;
    tk_broker_master(b, &m);
    soffa_store_opts_t o = {.path = path, .master = &m};
    cr_assert_eq(soffa_store_open(&st, &o), SOFFA_OK);
    soffa_store_state_op_t del[6];
    memset(del, 0, sizeof del);
    const char *ids[2] = {open_case, closed_case};
    const char *people[2] = {PUPIL, OTHER};
    for (int i = 0; i < 2; i++) {
        uint8_t id[16];
        cr_assert(soffa_uuid_parse(ids[i], id));
        del[i].key[0] = 'C';
        memcpy(del[i].key + 1, id, 16);
        del[i].klen = 17;
        del[i].del = true;
        del[2 + i].key[0] = 'c';
        soffa_store_subject_key(st, people[i], del[2 + i].key + 1);
        memcpy(del[2 + i].key + 1 + SOFFA_SUBJECT_KEY_LEN, "1419", 4);
        del[2 + i].klen = 1 + SOFFA_SUBJECT_KEY_LEN + 4;
        del[2 + i].del = true;
    }
    memcpy(del[4].key, "Vcases-1", 8);
    del[4].klen = 8;
    del[4].del = true;
    cr_assert_eq(soffa_store_state_write(st, del, 5), SOFFA_OK);
    uint8_t id[16];
    cr_assert(soffa_uuid_parse(open_case, id));
    uint8_t ck[17] = {'C'};
    memcpy(ck + 1, id, 16);
    cr_assert_eq(soffa_store_state_get(st, ck, sizeof ck, NULL, 0, NULL), SOFFA_ERR_NOT_FOUND);
    soffa_store_close(&st);
    cr_assert(tk_broker_spawn(b));
    k = tk_client_pub(b, "kaa-1419");
    tk_pub_ok(k, event(SOFFA_MT_OCCUPATION_RECORDED, PUPIL, "1419", open_case), "kaa-journal/1419");
    pub_refused(k, event(SOFFA_MT_OCCUPATION_RECORDED, OTHER, "1419", closed_case), SOFFA_ERR_NOT_OPEN, "closed");
    char again[64] = "";
    pub_refused(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", again), SOFFA_ERR_EXISTS, "already has an open case");
    tk_client_pub_close(&k);
    tk_broker_free(b);
}

/* ---- Rule 9: a youth who moves ----------------------------------------------------------- */

/* The school reported to Tjörn; Tjörn's KAA says "not our youth", naming
 * Göteborg: the school hears so, Göteborg's KAA gets the signal (with its
 * municipality as the home one) and acknowledges it to the school. */
Test(lawflow, rule_09_a_signal_to_the_wrong_municipality_is_rerouted)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client_pub(b, "school-1415");
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    soffa_client_t *g = tk_client_pub(b, "kaa-1480");
    json_t *sig = tk_json(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    char signal_id[64];
    snprintf(signal_id, sizeof signal_id, "%s", str(sig, "message_id"));
    tk_pub_ok(s, sig, "kaa/1419");
    json_t *ack = tk_json(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1419");
    set(tk_payload(ack), "signal_id", signal_id);
    set(tk_payload(ack), "result", "NOT_HEMKOMMUN_REROUTED");
    set(tk_payload(ack), "new_hemkommun", "1419");
    pub_refused(k, ack, SOFFA_ERR_BAD_FIELD, "right home municipality");
    ack = tk_json(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1419");
    set(tk_payload(ack), "signal_id", signal_id);
    set(tk_payload(ack), "result", "NOT_HEMKOMMUN_REROUTED");
    pub_refused(k, ack, SOFFA_ERR_MISSING_FIELD, "new_hemkommun");
    ack = tk_json(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1419");
    set(tk_payload(ack), "signal_id", signal_id);
    set(tk_payload(ack), "result", "NOT_HEMKOMMUN_REROUTED");
    set(tk_payload(ack), "new_hemkommun", "1480");
    tk_pub_ok(k, ack, "school/school-1415");

    got_t got[8];
    size_t n = collect(g, "kaa/1480", got, 8, 1500);
    cr_assert_eq(n, 1, "kaa/1480 got %zu", n);
    cr_assert_eq(got[0].type, SOFFA_MT_ABSENCE_REPORTED);
    cr_assert_str_eq(got[0].sender, "school-1415", "the rerouted signal is the school's");
    cr_assert(strstr(got[0].json, "\"hemkommun\":\"1480\"") && strstr(got[0].json, signal_id), "%s", got[0].json);
    got_free(got, n);
    /* Tjörn may not acknowledge it again; Göteborg registers it. */
    ack = tk_json(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1480");
    set(tk_payload(ack), "signal_id", signal_id);
    pub_refused(k, ack, SOFFA_ERR_NOT_AUTHORISED, "only its recipient");
    ack = tk_json(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1480");
    set(tk_payload(ack), "signal_id", signal_id);
    set(tk_payload(ack), "result", "REGISTERED");
    tk_pub_ok(g, ack, "school/school-1415");
    /* The school sat idle for longer than the test broker's expiry_ms (1.5 s)
     * while Göteborg's inbox was watched: it greets again (its session may
     * have expired; what it has not acknowledged comes all the same). */
    tk_client_pub_close(&s);
    s = tk_client_pub(b, "school-1415");
    n = collect(s, "school/school-1415", got, 8, 1200);
    cr_assert_eq(n, 2);
    cr_assert(strstr(got[0].json, "NOT_HEMKOMMUN_REROUTED") && strstr(got[0].json, "1480"), "%s", got[0].json);
    cr_assert(strstr(got[1].json, "REGISTERED"), "%s", got[1].json);
    got_free(got, n);
    tk_client_pub_close(&g);
    tk_client_pub_close(&k);
    tk_client_pub_close(&s);
    tk_broker_free(b);
}


/* Issue 18: two reroutes of one signal in one PUBLISH-BATCH. The first goes
 * on; the second is refused as it is alone (the first is committed before
 * the second is decided), and the signal reaches one municipality only. */
Test(lawflow, issue_18_two_reroutes_in_one_batch_go_once)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client(b, "school-1415", false);
    soffa_client_t *k = tk_client_v2(b, "kaa-1419", false);
    soffa_client_t *g = tk_client(b, "kaa-1480", false);
    json_t *sig = tk_json(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419");
    char signal_id[64];
    snprintf(signal_id, sizeof signal_id, "%s", str(sig, "message_id"));
    tk_pub_ok(s, sig, "kaa/1419");
    const char *to[2] = {"1480", "1415"};
    char *text[2];
    for (int i = 0; i < 2; i++) {
        json_t *ack = tk_json(SOFFA_MT_SIGNAL_ACKNOWLEDGED, PUPIL, "1419");
        set(tk_payload(ack), "signal_id", signal_id);
        set(tk_payload(ack), "result", "NOT_HEMKOMMUN_REROUTED");
        set(tk_payload(ack), "new_hemkommun", to[i]);
        text[i] = json_dumps(ack, JSON_COMPACT);
        json_decref(ack);
    }
    soffa_err_t codes[2];
    char whys[2][256];
    tk_publish_batch_json(k, (const char *const *) text, 2, soffa_client_next_tag(k), codes, NULL, NULL, NULL, whys);
    cr_assert_eq(codes[0], SOFFA_OK, "%s", whys[0]);
    cr_assert_eq(codes[1], SOFFA_ERR_EXISTS, "the second reroute: %s (%s)", soffa_errname(codes[1]), whys[1]);
    cr_assert(strstr(whys[1], "already sent on") != NULL, "%s", whys[1]);
    got_t got[8];
    size_t n = collect(g, "kaa/1480", got, 8, 1500);
    cr_assert_eq(n, 1, "kaa/1480 got %zu", n);
    got_free(got, n);
    /* Connected now: an idle session expires after the test broker's 1.5 s. */
    soffa_client_t *h = tk_client(b, "kaa-1415", false);
    n = collect(h, "kaa/1415", got, 8, 800);
    cr_assert_eq(n, 0, "kaa/1415 got %zu: the signal went to two municipalities", n);
    got_free(got, n);
    for (int i = 0; i < 2; i++)
        free(text[i]);
    soffa_client_close(&h);
    soffa_client_close(&g);
    soffa_client_close(&k);
    soffa_client_close(&s);
    tk_broker_free(b);
}
/* Closing with MOVED_OUT tells the new municipality's KAA: the identity
 * and the fact of the move, and nothing of the case without a consent. */
Test(lawflow, rule_09_moving_out_tells_the_new_kaa_the_fact_only)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    char kase[64] = "";
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", kase), "kaa-journal/1419");
    tk_pub_ok(k, event(SOFFA_MT_OCCUPATION_RECORDED, PUPIL, "1419", kase), "kaa-journal/1419");
    json_t *close = event(SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "1419", kase);
    json_object_del(tk_payload(close), "new_hemkommun");
    pub_refused(k, close, SOFFA_ERR_MISSING_FIELD, "municipality the young person moved to");
    char c[64];
    consent(k, PUPIL, "ARBETSFORMEDLINGEN,KAA", "REFERRAL", "IDENTITY,OCCUPATION", "kaa-journal/1419", c);
    close = event(SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "1419", kase);
    set(close, "consent_id", c);
    pub_refused(k, close, SOFFA_ERR_CONSENT, "CASE_SUMMARY");
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "1419", kase), "kaa-journal/1419");
    soffa_client_t *g = tk_client_pub(b, "kaa-1480");
    got_t got[8];
    size_t n = collect(g, "kaa/1480", got, 8, 1500);
    cr_assert_eq(n, 1, "kaa/1480 got %zu", n);
    cr_assert_eq(got[0].type, SOFFA_MT_KAA_CASE_CLOSED);
    cr_assert_str_eq(got[0].sender, "kaa-1419");
    cr_assert(strstr(got[0].json, PUPIL) && strstr(got[0].json, "MOVED_OUT")
              && strstr(got[0].json, "\"hemkommun\":\"1480\""), "%s", got[0].json);
    cr_assert_null(strstr(got[0].json, "consent_id"), "%s", got[0].json);
    got_free(got, n);
    tk_client_pub_close(&g);
    tk_client_pub_close(&k);
    tk_broker_free(b);
}

/* Under a consent that covers it (the KAA as recipient, CASE_SUMMARY),
 * the case follows: its opening, contacts and the categories the consent
 * names (occupations here, not measures). Withdrawn before the new KAA
 * reads them, they are withheld; the notice of the move still comes. */
Test(lawflow, rule_09_with_a_consent_the_case_follows_the_young_person)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    char c[64], kase[64] = "";
    consent(k, PUPIL, "KAA", "CASE_SUMMARY", "IDENTITY,OCCUPATION", "kaa-journal/1419", c);
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, PUPIL, "1419", kase), "kaa-journal/1419");
    tk_pub_ok(k, attempt(PUPIL, kase, "PHONE", "REACHED"), "kaa-journal/1419");
    tk_pub_ok(k, event(SOFFA_MT_OCCUPATION_RECORDED, PUPIL, "1419", kase), "kaa-journal/1419");
    tk_pub_ok(k, event(SOFFA_MT_MEASURE_STARTED, PUPIL, "1419", kase), "kaa-journal/1419");
    json_t *close = event(SOFFA_MT_KAA_CASE_CLOSED, PUPIL, "1419", kase);
    set(close, "consent_id", c);
    tk_pub_ok(k, close, "kaa-journal/1419");
    soffa_client_t *g = tk_client_pub(b, "kaa-1480");
    got_t got[16];
    size_t n = collect(g, "kaa/1480", got, 16, 1500);
    cr_assert_eq(n, 4, "kaa/1480 got %zu", n);
    cr_assert_eq(got[0].type, SOFFA_MT_KAA_CASE_CLOSED);
    cr_assert_eq(got[1].type, SOFFA_MT_KAA_CASE_OPENED);
    cr_assert_eq(got[2].type, SOFFA_MT_CONTACT_ATTEMPTED);
    cr_assert_eq(got[3].type, SOFFA_MT_OCCUPATION_RECORDED);
    cr_assert(strstr(got[3].json, c), "the handed-on record names its consent: %s", got[3].json);
    got_free(got, n);
    tk_client_pub_close(&g);

    /* The same for another young person; the consent goes before Göteborg reads. */
    char c2[64], kase2[64] = "";
    consent(k, OTHER, "KAA", "CASE_SUMMARY", "IDENTITY,OCCUPATION,MEASURES", "kaa-journal/1419", c2);
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, OTHER, "1419", kase2), "kaa-journal/1419");
    tk_pub_ok(k, event(SOFFA_MT_MEASURE_STARTED, OTHER, "1419", kase2), "kaa-journal/1419");
    close = event(SOFFA_MT_KAA_CASE_CLOSED, OTHER, "1419", kase2);
    set(close, "consent_id", c2);
    tk_pub_ok(k, close, "kaa-journal/1419");
    usleep(300 * 1000);
    withdraw(k, OTHER, c2, "kaa-journal/1419");
    g = tk_client_pub(b, "kaa-1480");
    n = collect(g, "kaa/1480", got, 16, 1500);
    cr_assert_eq(n, 1, "kaa/1480 got %zu after the withdrawal", n);
    cr_assert_eq(got[0].type, SOFFA_MT_KAA_CASE_CLOSED);
    cr_assert(strstr(got[0].json, OTHER), "%s", got[0].json);
    got_free(got, n);
    tk_client_pub_close(&g);
    tk_client_pub_close(&k);
    tk_broker_free(b);
}

/* ---- Rule 10: a youth whose identity changes -------------------------------------------- */

/* A samordningsnummer replaced by a personnummer: the history of the new
 * number holds what came before, and the consent, the protected identity
 * and the case given under the old number follow the person. */
Test(lawflow, rule_10_the_history_consents_protection_and_case_follow_a_new_number)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client_pub(b, "school-1415");
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    /* Under the samordningsnummer: a signal marking the identity protected,
     * a case, a consent. */
    json_t *sig = tk_json(SOFFA_MT_ABSENCE_REPORTED, SAMNR, "1419");
    json_object_set_new(json_object_get(sig, "subject"), "protected_identity", json_true());
    tk_pub_ok(s, sig, "kaa/1419");
    char kase[64] = "", c[64];
    tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, SAMNR, "1419", kase), "kaa-journal/1419");
    consent(k, SAMNR, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY,CONTACT,SUMMARY_TEXT", "kaa-journal/1419", c);
    /* Before the change the new number is somebody else. */
    pub_refused(k, referral(NEWPNR, c, NULL), SOFFA_ERR_CONSENT, "another person");

    /* The change: only the home municipality's KAA records it, about the new number. */
    json_t *chg = tk_json(SOFFA_MT_SUBJECT_IDENTITY_CHANGED, NEWPNR, "1419");
    json_t *p = tk_payload(chg);
    set(json_object_get(p, "old_id"), "id", SAMNR);
    soffa_client_t *k15 = tk_client_pub(b, "kaa-1415");
    pub_refused(k15, json_deep_copy(chg), SOFFA_ERR_NOT_AUTHORISED, "home municipality is 1419");
    /* Nor may another KAA join 1419's young person to a youth of its own:
     * it holds nothing under the old number. */
    json_t *steal = json_deep_copy(chg);
    json_object_set_new(json_object_get(steal, "subject"), "hemkommun", json_string("1415"));
    json_object_set_new(json_object_get(tk_payload(steal), "new_id"), "hemkommun", json_string("1415"));
    pub_refused(k15, steal, SOFFA_ERR_NOT_AUTHORISED, "holds nothing under the old number");
    json_t *wrong = json_deep_copy(chg);
    json_object_set_new(json_object_get(wrong, "subject"), "id", json_string(SAMNR));
    json_object_set_new(json_object_get(wrong, "subject"), "id_type", json_string("SAMNR"));
    pub_refused(k, wrong, SOFFA_ERR_BAD_FIELD, "under the new number");
    json_t *twice = json_deep_copy(chg);
    tk_pub_ok(k, chg, "kaa-journal/1419");
    set(twice, "message_id", "");
    json_object_del(twice, "message_id");
    uint8_t mid[16];
    char mids[SOFFA_UUID_STR];
    soffa_uuid7(mid);
    soffa_uuid_format(mid, mids);
    set(twice, "message_id", mids);
    pub_refused(k, twice, SOFFA_ERR_EXISTS, "already recorded");

    /* The consent follows; so does the protection (no phone number) ... */
    pub_refused(k, referral(NEWPNR, c, NULL), SOFFA_ERR_PROTECTED, "protected identity");
    json_t *r = referral(NEWPNR, c, NULL);
    json_object_del(tk_payload(r), "contact");
    tk_pub_ok(k, r, "af/1419");
    /* ... and the case. */
    tk_pub_ok(k, event(SOFFA_MT_OCCUPATION_RECORDED, NEWPNR, "1419", kase), "kaa-journal/1419");
    char again[64] = "";
    pub_refused(k, event(SOFFA_MT_KAA_CASE_OPENED, NEWPNR, "1419", again), SOFFA_ERR_EXISTS, "already has an open case");

    /* The history of the new number shows what came before. */
    soffa_client_t *au = tk_client_pub(b, "audit-all");
    int types[32];
    long h = replay(au, "history", NULL, NEWPNR, types, NULL, 32);
    int want[] = {SOFFA_MT_ABSENCE_REPORTED, SOFFA_MT_KAA_CASE_OPENED, SOFFA_MT_CONSENT_RECORDED,
                  SOFFA_MT_SUBJECT_IDENTITY_CHANGED, SOFFA_MT_REFERRAL_SENT, SOFFA_MT_OCCUPATION_RECORDED};
    cr_assert_eq(h, 6, "history of the new number: %ld records", h);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(types[i], want[i], "record %d is %d", i, types[i]);
    tk_client_pub_close(&au);
    tk_client_pub_close(&k15);
    tk_client_pub_close(&k);
    tk_client_pub_close(&s);
    tk_broker_free(b);
}

/* The key figures count a young person once across a new number: five
 * youths signalled and registered under samordningsnummer, whose numbers are
 * then replaced, are reached under their personnummer; the figures show five
 * signalled, registered and contacted (each figure is 5, not suppressed,
 * only when the five are counted as the same five). */
Test(lawflow, rule_10_key_figures_follow_the_person)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client_pub(b, "school-1415");
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    soffa_date_t t = soffa_date_today();
    for (int i = 0; i < 5; i++) {
        char samnr[13], pnr[13], kase[64] = "";
        tk_pnr(t.year - 18, 5, 20 + i, 313 + 2 * i, 1, samnr);
        tk_pnr(t.year - 18, 5, 20 + i, 427 + 2 * i, 0, pnr);
        tk_pub_ok(s, tk_json(SOFFA_MT_ABSENCE_REPORTED, samnr, "1419"), "kaa/1419");
        tk_pub_ok(k, event(SOFFA_MT_KAA_CASE_OPENED, samnr, "1419", kase), "kaa-journal/1419");
        json_t *chg = tk_json(SOFFA_MT_SUBJECT_IDENTITY_CHANGED, pnr, "1419");
        set(json_object_get(tk_payload(chg), "old_id"), "id", samnr);
        tk_pub_ok(k, chg, "kaa-journal/1419");
        tk_pub_ok(k, attempt(pnr, kase, "PHONE", "REACHED"), "kaa-journal/1419");
    }
    /* The records an auditor's stats read returns, as the command line sees them. */
    soffa_client_t *au = tk_client_pub(b, "audit-all");
    soffa_frame_t r = {.type = SOFFA_FRAME_REPLAY, .tag = soffa_client_next_tag(au)};
    snprintf(r.text, sizeof r.text, "stats");
    cr_assert_eq(soffa_client_send(au, &r), SOFFA_OK);
    json_t *records = json_array();
    for (;;) {
        soffa_frame_t f;
        cr_assert_eq(soffa_client_recv(au, &f, 5000), SOFFA_OK);
        cr_assert_neq(f.type, SOFFA_FRAME_ERROR, "%s", f.text);
        if (f.type == SOFFA_FRAME_DELIVER) {
            json_t *rec = soffa_record_json(f.data, f.data_len, f.hash, f.has_record_key ? f.record_key : NULL);
            cr_assert_not_null(rec);
            json_array_append_new(records, rec);
            soffa_frame_t ra = {.type = SOFFA_FRAME_REPLAY_ACK, .tag = r.tag, .seq = f.seq, .has_hash = true};
            memcpy(ra.hash, f.hash, SOFFA_HASH_LEN);
            soffa_client_send(au, &ra);
        }
        bool end = f.type == SOFFA_FRAME_REPLAY_END;
        soffa_frame_fini(&f);
        if (end)
            break;
    }
    soffa_date_t from = t, to = t;
    from.day = 1;
    json_t *st = soffa_stats_compute(records, "1419", from, to);
    char *text = json_dumps(st, JSON_COMPACT);
    cr_assert(strstr(text, "\"signalled\":{\"total\":5"), "%s", text);
    cr_assert(strstr(text, "\"registered\":{\"total\":5"), "%s", text);
    cr_assert(strstr(text, "\"contacted\":{\"total\":5"), "the contacts under the new numbers were lost: %s", text);
    free(text);
    /* So do the figures per period (issue 19) and the export: five youths,
     * under their new numbers. */
    text = json_dumps(json_array_get(json_object_get(st, "periods"), 0), JSON_COMPACT);
    cr_assert(strstr(text, "\"in_kaa_during\":{\"total\":5,"), "%s", text);
    cr_assert(strstr(text, "\"contacted\":{\"total\":5,"), "%s", text);
    free(text);
    json_decref(st);
    char *csv = NULL;
    size_t csv_len = 0;
    FILE *out = open_memstream(&csv, &csv_len);
    cr_assert_not_null(out);
    cr_assert_eq(soffa_stats_export(records, "1419", from, to, out), 5);
    cr_assert_eq(fclose(out), 0);
    for (int i = 0; i < 5; i++) {
        char samnr[13], pnr[13];
        tk_pnr(t.year - 18, 5, 20 + i, 313 + 2 * i, 1, samnr);
        tk_pnr(t.year - 18, 5, 20 + i, 427 + 2 * i, 0, pnr);
        cr_assert(strstr(csv, pnr) != NULL, "%s is not in the export: %s", pnr, csv);
        cr_assert(strstr(csv, samnr) == NULL, "the replaced %s is in the export: %s", samnr, csv);
    }
    free(csv);
    json_decref(records);
    tk_client_pub_close(&au);
    tk_client_pub_close(&k);
    tk_client_pub_close(&s);
    tk_broker_free(b);
}

/* ---- Rule 11: each data controller reads its own ------------------------------------------ */

/* audit-all (configured to span controllers) reads a young person's
 * history across Tjörn's KAA and Arbetsförmedlingen: Tjörn's access log
 * and Arbetsförmedlingen's each hold the read with the records that were
 * theirs; Stenungsund's holds nothing of it. Each municipality's auditor
 * reads only its own records and its own access log. */
Test(lawflow, rule_11_each_controller_reads_its_own_access_log)
{
    tk_broker_t *b = tk_broker_start(NULL);
    soffa_client_t *s = tk_client_pub(b, "school-1415");
    soffa_client_t *k = tk_client_pub(b, "kaa-1419");
    tk_pub_ok(s, tk_json(SOFFA_MT_ABSENCE_REPORTED, PUPIL, "1419"), "kaa/1419");
    tk_pub_ok(s, tk_json(SOFFA_MT_ABSENCE_REPORTED, OTHER, "1415"), "kaa/1415");
    char c[64];
    consent(k, PUPIL, "ARBETSFORMEDLINGEN", "REFERRAL", "IDENTITY,CONTACT,SUMMARY_TEXT", "kaa-journal/1419", c);
    tk_pub_ok(k, referral(PUPIL, c, NULL), "af/1419");
    tk_pub_ok(k, referral(PUPIL, c, NULL), "af/1419");

    soffa_client_t *all = tk_client_pub(b, "audit-all");
    cr_assert_eq(replay(all, "history", NULL, PUPIL, NULL, NULL, 0), 4, "the absence, the consent, 2 referrals");
    soffa_client_t *a19 = tk_client_pub(b, "audit-1419");
    soffa_client_t *a15 = tk_client_pub(b, "audit-1415");
    soffa_client_t *aaf = tk_client_pub(b, "audit-af");
    access_t acc[16];
    long n = replay(a19, "access-log", "audit/access", NULL, NULL, acc, 16);
    cr_assert_eq(n, 2, "Tjörn's access log holds %ld records", n);
    cr_assert_str_eq(acc[1].agent, "audit-all");
    cr_assert_eq(acc[1].state, SOFFA_ACCESS_COMPLETED);
    cr_assert_eq(acc[1].records, 2, "Tjörn's records in the read: %llu", (unsigned long long) acc[1].records);
    n = replay(aaf, "access-log", "audit/access", NULL, NULL, acc, 16);
    cr_assert_eq(n, 2, "Arbetsförmedlingen's access log holds %ld records", n);
    cr_assert_eq(acc[1].records, 2, "AF's records in the read: %llu", (unsigned long long) acc[1].records);
    n = replay(a15, "access-log", "audit/access", NULL, NULL, acc, 16);
    cr_assert_eq(n, 0, "Stenungsund's access log holds %ld records", n);

    /* A municipality's auditor: its own records, not Arbetsförmedlingen's. */
    /* (A history holds the young person's messages, not the reads of them.) */
    int types[16];
    n = replay(a19, "history", NULL, PUPIL, types, NULL, 16);
    cr_assert_eq(n, 2, "Tjörn's auditor sees %ld of the young person's records", n);
    cr_assert(types[0] != -1 && types[1] != -1, "an access record in a history");
    cr_assert_eq(replay(a19, "replay", "af/1419", NULL, NULL, NULL, 0), -SOFFA_ERR_NOT_AUTHORISED);
    cr_assert_eq(replay(a19, "access-log", "audit/access/af", NULL, NULL, NULL, 0), -SOFFA_ERR_NOT_AUTHORISED);
    cr_assert_eq(replay(a15, "access-log", "audit/access/1419", NULL, NULL, NULL, 0), -SOFFA_ERR_NOT_AUTHORISED);
    /* Tjörn's log now has its auditor's reads too (and no one else's). */
    n = replay(a19, "access-log", "audit/access", NULL, NULL, acc, 16);
    cr_assert_eq(n, 6, "Tjörn's access log holds %ld records", n);
    for (long i = 0; i < n; i++)
        cr_assert(!strcmp(acc[i].agent, "audit-all") || !strcmp(acc[i].agent, "audit-1419"), "%s", acc[i].agent);
    /* The spanning auditor reads every log in its scope. */
    n = replay(all, "access-log", "audit/access", NULL, NULL, acc, 16);
    cr_assert_geq(n, 10, "audit-all sees %ld access records", n);
    tk_client_pub_close(&aaf);
    tk_client_pub_close(&a15);
    tk_client_pub_close(&a19);
    tk_client_pub_close(&all);
    tk_client_pub_close(&k);
    tk_client_pub_close(&s);
    tk_broker_free(b);
}

/* A scope that spans controllers is refused unless the configuration says
 * span_controllers = yes, and the setting is for auditors only. */
Test(lawflow, rule_11_a_scope_across_controllers_needs_the_setting)
{
    char *dir = tk_tmpdir("lawcfg");
    char path[400];
    snprintf(path, sizeof path, "%s/broker.ini", dir);
    static const char *const head = "[broker]\nendpoint = tcp://127.0.0.1:1\nsecret_key = k\ndata_dir = d\n"
                                    "[agent x]\npublic_key = rJ9t1U5eOLYkY7(Ro5YDw0nFiMaWw-rCwwWzA*ck\n";
    const struct {
        const char *agent;
        int exit;
        const char *says;
    } cases[] = {
        {"role = audit\nscope = */1419\n", 1, "more than one data controller (1419 and af"},
        {"role = audit\nscope = kaa/1419, af/1419\n", 1, "span_controllers = yes"},
        {"role = audit\nscope = */1419\nspan_controllers = yes\n", 0, "controller = (spans controllers"},
        {"role = audit\nscope = kaa/1419, kaa-journal/1419, social/1419\n", 0, "agent.x.controller = 1419"},
        {"role = audit\nscope = af/*\n", 0, "agent.x.controller = af"},
        {"role = kaa\nkommun = 1419\nspan_controllers = yes\n", 1, "span_controllers is for auditors only"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        FILE *f = fopen(path, "w");
        fprintf(f, "%s%s", head, cases[i].agent);
        fclose(f);
        char *out = NULL, *err = NULL;
        char *argv[] = {SOFFA_BIN_DIR "/soffa-broker", "--config", path, "--check", NULL};
        int rc = tk_run(argv, &out, &err);
        cr_assert_eq(rc, cases[i].exit, "case %zu: exit %d: %s", i, rc, err);
        cr_assert(strstr(rc ? err : out, cases[i].says), "case %zu: '%s'", i, rc ? err : out);
        free(out);
        free(err);
    }
    tk_rmrf(dir);
    free(dir);
}
