/*  Integration tests for case owners and KAA teams (issue 19, item 4): the
 *  real soffa-broker process over real sockets and a real LMDB directory.
 *  Mölndal (1481) splits its KAA into three teams by school unit, Kungälv
 *  (1482) by the district of the registered address, Lilla Edet (1462)
 *  sends everything to an intake team. A team opens a case, assigns its
 *  contact person and hands it over when staff change, and passes the case
 *  to another team: the old team is refused afterwards, answers to what it
 *  sent go to the new team, and the young person's history stays whole.
 *  Allowed and refused rows side by side. (The table, row by row, is in
 *  test_policy.) */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soffa_envelope.h"
#include "soffa_keys.h"
#include "soffa_record.h"
#include "soffa_seal.h"
#include "soffa_store.h"
#include "soffa_stats.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "testkit.h"

/* A made-up young person of 18 (birthday 30 days ago), and one of 17. */
static char P18[13], P17[13];

static void
s_age(int years, int birth_no, char out[13])
{
    soffa_date_t d = soffa_date_local(soffa_now_us() - 30 * 86400000000LL);
    tk_pnr(d.year - years, d.month, d.month == 2 && d.day > 28 ? 28 : d.day, birth_no, 0, out);
}

static void
setup(void)
{
    s_age(18, 318, P18);
    s_age(17, 417, P17);
}

TestSuite(teams, .init = setup, .timeout = 120);

/* The team agents and the municipalities' other agents, beside testkit's. */
static const char *const AGENTS[][4] = {
    /* name, role, kommun, team */
    {"kaa-1481-norr", "kaa", "1481", "norr"},
    {"kaa-1481-soder", "kaa", "1481", "soder"},
    {"kaa-1481-intag", "kaa", "1481", "intag"},
    {"kaa-1482-vast", "kaa", "1482", "vast"},
    {"kaa-1482-ost", "kaa", "1482", "ost"},
    {"kaa-1462-intag", "kaa", "1462", "intag"},
    {"kaa-1462-ute", "kaa", "1462", "ute"},
    {"af-1481", "af", "1481", ""},
    {NULL, NULL, NULL, NULL},
};

static const char *const TEAMS_INI =
    "[teams 1481]\nteams = norr, soder, intag\nrule = school\nintake = intag\nschools = 12345678:norr\n"
    "[teams 1482]\nteams = vast, ost\nrule = district\nintake = ost\ndistricts = 148201:vast\n"
    "[teams 1462]\nteams = intag, ute\nrule = intake\nintake = intag\n"
    "[agent audit-1481]\npublic_key = %s/audit-1481.pub\nrole = audit\n"
    "scope = kaa/1481, kaa/1481/*, kaa-journal/1481, social/1481\n";

/* A broker that knows the teams: their keys are made in a directory of
 * their own first (the configuration names the public keys there, and a
 * reload reads them again) and the secret keys copied beside the broker's,
 * where tk_client_pub finds them. s_stop removes both. */
static char *s_keydir;

static tk_broker_t *
s_start(void)
{
    char *keydir = s_keydir = tk_tmpdir("teamkeys");
    static char ini[8192];
    int n = snprintf(ini, sizeof ini, TEAMS_INI, keydir);
    char path[512];
    snprintf(path, sizeof path, "%s/audit-1481", keydir);
    cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
    for (int i = 0; AGENTS[i][0]; i++) {
        snprintf(path, sizeof path, "%s/%s", keydir, AGENTS[i][0]);
        cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
        n += snprintf(ini + n, sizeof ini - (size_t) n, "[agent %s]\npublic_key = %s.pub\nrole = %s\nkommun = %s\n%s%s%s",
                      AGENTS[i][0], path, AGENTS[i][1], AGENTS[i][2], AGENTS[i][3][0] ? "team = " : "",
                      AGENTS[i][3], AGENTS[i][3][0] ? "\n" : "");
    }
    tk_broker_t *b = tk_broker_start(ini);
    for (int i = -1; i < 0 || AGENTS[i][0]; i++) {
        const char *name = i < 0 ? "audit-1481" : AGENTS[i][0];
        char from[512], to[512], cmd[1200];
        snprintf(from, sizeof from, "%s/%s.key", keydir, name);
        snprintf(to, sizeof to, "%s/%s.key", b->dir, name);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
        cr_assert_eq(system(cmd), 0);
    }
    return b;
}

static void
s_stop(tk_broker_t *b)
{
    tk_broker_free(b);
    tk_rmrf(s_keydir);
    free(s_keydir);
    s_keydir = NULL;
}

/* A valid message of `type` about pnr living in kommun. */
static json_t *
J(soffa_msg_type_t type, const char *pnr, const char *kommun)
{
    return tk_json(type, pnr, kommun);
}

/* Sets a field from text, coerced by the schema (see test_warning). */
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

/* A case event of type on case `id` about pnr in kommun. */
static json_t *
ev(soffa_msg_type_t type, const char *pnr, const char *kommun, const char *id)
{
    char path[64];
    snprintf(path, sizeof path, "%s.case_id", soffa_msg_type_name(type));
    return set(J(type, pnr, kommun), path, id);
}

/* The contact person of case id: to `to` from `from` ("" for the first), why. */
static json_t *
owner(const char *pnr, const char *kommun, const char *id, const char *to, const char *from, const char *reason)
{
    json_t *j = set(set(ev(SOFFA_MT_CASE_OWNER_CHANGED, pnr, kommun, id), "case_owner_changed.owner_ref", to),
                    "case_owner_changed.reason", reason);
    if (from[0])
        set(j, "case_owner_changed.previous_ref", from);
    else
        json_object_del(json_object_get(j, "case_owner_changed"), "previous_ref");
    return j;
}

static json_t *
transfer(const char *pnr, const char *kommun, const char *id, const char *team)
{
    return set(ev(SOFFA_MT_CASE_TRANSFERRED, pnr, kommun, id), "case_transferred.to_team", team);
}

/* A consent of pnr recorded by a KAA team, valid today for half a year,
 * covering Arbetsförmedlingen; its id into cid. */
static json_t *
consent(const char *pnr, const char *kommun, char cid[SOFFA_UUID_STR])
{
    json_t *j = J(SOFFA_MT_CONSENT_RECORDED, pnr, kommun);
    char from[11], to[11];
    soffa_date_format(soffa_date_today(), from);
    soffa_date_format(soffa_date_local(soffa_now_us() + 180 * 86400000000LL), to);
    set(j, "consent_recorded.valid_from", from);
    set(j, "consent_recorded.valid_to", to);
    snprintf(cid, SOFFA_UUID_STR, "%s", tk_str(j, "consent_recorded.consent_id"));
    return set(j, "consent_id", cid);
}

/* Signals go to a team by the municipality's rule: by school unit (an
 * unmapped one to intake), by district when the signal carries it, or
 * everything to intake; a municipality without teams as before. */
Test(teams, signals_are_routed_to_a_team_by_the_rule)
{
    tk_broker_t *b = s_start();
    soffa_client_t *school = tk_client_pub(b, "school-1415");
    /* By school unit. */
    TK_ACCEPTED(school, J(SOFFA_MT_ENROLMENT_CHANGED, P18, "1481"), "kaa/1481/norr");
    TK_ACCEPTED(school, set(J(SOFFA_MT_ABSENCE_REPORTED, P17, "1481"), "absence_reported.school_unit", "12345679"),
                "kaa/1481/intag");
    /* By district, when the signal carries it; without one, intake. */
    TK_ACCEPTED(school, set(J(SOFFA_MT_ENROLMENT_CHANGED, P18, "1482"), "subject.district", "148201"),
                "kaa/1482/vast");
    TK_ACCEPTED(school, set(J(SOFFA_MT_ENROLMENT_CHANGED, P17, "1482"), "subject.district", "148299"),
                "kaa/1482/ost");
    TK_ACCEPTED(school, J(SOFFA_MT_ABSENCE_REPORTED, P17, "1482"), "kaa/1482/ost");
    /* Everything to intake. */
    TK_ACCEPTED(school, J(SOFFA_MT_ENROLMENT_CHANGED, P18, "1462"), "kaa/1462/intag");
    /* Without teams, as today. */
    TK_ACCEPTED(school, J(SOFFA_MT_ENROLMENT_CHANGED, P18, "1419"), "kaa/1419");
    /* A district is not sent for a protected identity, and is six digits. */
    json_t *j = set(J(SOFFA_MT_ENROLMENT_CHANGED, P17, "1482"), "subject.district", "148201");
    json_object_set_new(json_object_get(j, "subject"), "protected_identity", json_true());
    TK_REFUSED(school, j, SOFFA_ERR_PROTECTED, "district of the address is secret");
    /* ... nor once an earlier message said the identity is protected. */
    char p19[13];
    s_age(19, 519, p19);
    j = J(SOFFA_MT_ENROLMENT_CHANGED, p19, "1482");
    json_object_set_new(json_object_get(j, "subject"), "protected_identity", json_true());
    TK_ACCEPTED(school, j, "kaa/1482/ost");
    TK_REFUSED(school, set(J(SOFFA_MT_ABSENCE_REPORTED, p19, "1482"), "subject.district", "148201"),
               SOFFA_ERR_PROTECTED, "an earlier message said so");
    TK_REFUSED(school, set(J(SOFFA_MT_ENROLMENT_CHANGED, P17, "1482"), "subject.district", "1482-01"),
               SOFFA_ERR_BAD_FIELD, "6 digits");
    /* A signal Tjörn's KAA sends on to Mölndal goes to the team the rule gives its school unit. */
    json_t *sig = J(SOFFA_MT_ENROLMENT_CHANGED, P17, "1419");
    char sid[SOFFA_UUID_STR];
    snprintf(sid, sizeof sid, "%s", tk_str(sig, "message_id"));
    TK_ACCEPTED(school, sig, "kaa/1419");
    soffa_client_t *tjorn = tk_client_pub(b, "kaa-1419");
    json_t *ack = set(J(SOFFA_MT_SIGNAL_ACKNOWLEDGED, P17, "1419"), "signal_acknowledged.signal_id", sid);
    set(set(ack, "signal_acknowledged.result", "NOT_HEMKOMMUN_REROUTED"), "signal_acknowledged.new_hemkommun", "1481");
    TK_ACCEPTED(tjorn, ack, "school/school-1415");
    tk_client_pub_close(&tjorn);
    /* Each team reads its own inbox: norr got its signal and the rerouted one, intag the other. */
    soffa_client_t *norr = tk_client_pub(b, "kaa-1481-norr");
    soffa_client_t *intag = tk_client_pub(b, "kaa-1481-intag");
    int types[8];
    cr_assert_eq(tk_collect(norr, "kaa/1481/norr", 8, true, 8, 1500, types, NULL), 2);
    cr_assert_eq(types[0], SOFFA_MT_ENROLMENT_CHANGED);
    cr_assert_eq(types[1], SOFFA_MT_ENROLMENT_CHANGED);
    cr_assert_eq(tk_collect(intag, "kaa/1481/intag", 8, true, 8, 1500, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_ABSENCE_REPORTED);
    /* The municipality's figures read its teams' inboxes: all three signals count. */
    soffa_client_t *au = tk_client_pub(b, "audit-1481");
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
    soffa_date_t from = soffa_date_today(), to = from;
    from.year--;
    json_t *st = soffa_stats_compute(records, "1481", from, to);
    cr_assert_eq(json_integer_value(json_object_get(st, "records_read")), 3);
    json_decref(st);
    json_decref(records);
    tk_client_pub_close(&au);
    tk_client_pub_close(&norr);
    tk_client_pub_close(&intag);
    tk_client_pub_close(&school);
    s_stop(b);
}

/* A case in Mölndal: norr opens it, assigns a contact person, hands over
 * when staff change, refers the young person to Arbetsförmedlingen and
 * passes the case to soder. Afterwards norr is refused, the answer to its
 * referral and a new signal go to soder, and the history holds it all. */
Test(teams, a_case_keeps_its_person_and_follows_its_team)
{
    tk_broker_t *b = s_start();
    soffa_client_t *school = tk_client_pub(b, "school-1415");
    soffa_client_t *norr = tk_client_pub(b, "kaa-1481-norr");
    soffa_client_t *soder = tk_client_pub(b, "kaa-1481-soder");
    soffa_client_t *intag = tk_client_pub(b, "kaa-1481-intag");
    soffa_client_t *af = tk_client_pub(b, "af-1481");
    soffa_client_t *kaa1419 = tk_client_pub(b, "kaa-1419");
    TK_ACCEPTED(school, J(SOFFA_MT_ENROLMENT_CHANGED, P18, "1481"), "kaa/1481/norr");

    /* norr opens the case and assigns the contact person. */
    json_t *open = J(SOFFA_MT_KAA_CASE_OPENED, P18, "1481");
    char id[SOFFA_UUID_STR];
    snprintf(id, sizeof id, "%s", tk_str(open, "kaa_case_opened.case_id"));
    TK_ACCEPTED(norr, open, "kaa-journal/1481");
    TK_REFUSED(norr, owner(P18, "1481", id, "Anna", "", "ASSIGNED"), SOFFA_ERR_BAD_FIELD, "looks like a name");
    TK_REFUSED(norr, owner(P18, "1481", id, P18, "", "ASSIGNED"), SOFFA_ERR_BAD_FIELD, "identity number");
    TK_REFUSED(norr, owner(P18, "1481", id, "handl-17", "handl-9", "STAFF_LEFT"), SOFFA_ERR_BAD_FIELD,
               "contact person is nobody yet");
    TK_ACCEPTED(norr, owner(P18, "1481", id, "handl-17", "", "ASSIGNED"), "kaa-journal/1481");
    TK_REFUSED(norr, owner(P18, "1481", id, "handl-18", "", "ASSIGNED"), SOFFA_ERR_EXISTS,
               "previous_ref = handl-17");
    TK_ACCEPTED(norr, ev(SOFFA_MT_CONTACT_ATTEMPTED, P18, "1481", id), "kaa-journal/1481");
    /* Another team of the municipality, another municipality, a school: refused. */
    TK_REFUSED(intag, ev(SOFFA_MT_CONTACT_ATTEMPTED, P18, "1481", id), SOFFA_ERR_NOT_AUTHORISED,
               "held by team norr");
    TK_REFUSED(kaa1419, ev(SOFFA_MT_CONTACT_ATTEMPTED, P18, "1481", id), SOFFA_ERR_NOT_AUTHORISED, "home municipality is 1481");
    TK_REFUSED(school, owner(P18, "1481", id, "handl-23", "handl-17", "STAFF_LEFT"), SOFFA_ERR_POLICY,
               "may not send case_owner_changed");
    /* Staff change: the young person keeps one person at a time. */
    TK_ACCEPTED(norr, owner(P18, "1481", id, "handl-23", "handl-17", "STAFF_LEFT"), "kaa-journal/1481");

    /* A referral to Arbetsförmedlingen, before the case moves. */
    char cid[SOFFA_UUID_STR];
    TK_ACCEPTED(norr, consent(P18, "1481", cid), "kaa-journal/1481");
    json_t *ref = set(J(SOFFA_MT_REFERRAL_SENT, P18, "1481"), "consent_id", cid);
    char rid[SOFFA_UUID_STR];
    snprintf(rid, sizeof rid, "%s", tk_str(ref, "referral_sent.referral_id"));
    TK_ACCEPTED(norr, ref, "af/1481");

    /* The case passes to soder; the rows around it refused. */
    TK_REFUSED(norr, transfer(P18, "1481", id, "hisingen"), SOFFA_ERR_NOT_FOUND, "not a team of the KAA of 1481");
    TK_REFUSED(norr, transfer(P18, "1481", id, "vast"), SOFFA_ERR_NOT_FOUND, "not a team of the KAA of 1481");
    TK_REFUSED(norr, transfer(P18, "1481", id, "norr"), SOFFA_ERR_BAD_FIELD, "holds the case already");
    TK_REFUSED(soder, transfer(P18, "1481", id, "intag"), SOFFA_ERR_NOT_AUTHORISED, "held by team norr");
    TK_REFUSED(af, transfer(P18, "1481", id, "soder"), SOFFA_ERR_POLICY, "may not send case_transferred");
    TK_REFUSED(kaa1419, transfer(P18, "1481", id, "soder"), SOFFA_ERR_NOT_AUTHORISED, "1481");
    TK_ACCEPTED(norr, transfer(P18, "1481", id, "soder"), "kaa-journal/1481");

    /* The old team records nothing more on it; the new one does. */
    TK_REFUSED(norr, ev(SOFFA_MT_CONTACT_ATTEMPTED, P18, "1481", id), SOFFA_ERR_NOT_AUTHORISED, "held by team soder");
    TK_REFUSED(norr, owner(P18, "1481", id, "handl-31", "handl-23", "TEAM_TRANSFER"), SOFFA_ERR_NOT_AUTHORISED,
               "held by team soder");
    TK_REFUSED(norr, transfer(P18, "1481", id, "intag"), SOFFA_ERR_NOT_AUTHORISED, "held by team soder");
    TK_ACCEPTED(soder, owner(P18, "1481", id, "handl-31", "handl-23", "TEAM_TRANSFER"), "kaa-journal/1481");
    TK_ACCEPTED(soder, ev(SOFFA_MT_CONTACT_ATTEMPTED, P18, "1481", id), "kaa-journal/1481");

    /* Arbetsförmedlingen answers norr's referral: the answer goes to soder. */
    json_t *st = set(set(J(SOFFA_MT_REFERRAL_STATUS_CHANGED, P18, "1481"), "referral_status_changed.referral_id", rid),
                     "consent_id", cid);
    set(st, "referral_status_changed.status", "RECEIVED");
    TK_ACCEPTED(af, st, "kaa/1481/soder");
    /* Only soder may withdraw the referral now. */
    json_t *wd = set(set(J(SOFFA_MT_REFERRAL_WITHDRAWN, P18, "1481"), "referral_withdrawn.referral_id", rid),
                     "consent_id", cid);
    TK_REFUSED(norr, wd, SOFFA_ERR_NOT_AUTHORISED, "only its sender");
    /* A new signal from a school unit the rule sends to norr goes to the
     * team holding the young person's case. */
    TK_ACCEPTED(school, J(SOFFA_MT_ABSENCE_REPORTED, P18, "1481"), "kaa/1481/soder");

    /* norr's inbox holds its own past signal only; soder's the answer and the new signal. */
    int types[16];
    cr_assert_eq(tk_collect(norr, "kaa/1481/norr", 16, true, 16, 1500, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_ENROLMENT_CHANGED);
    size_t n = tk_collect(soder, "kaa/1481/soder", 16, true, 16, 1500, types, NULL);
    cr_assert_eq(n, 2);
    cr_assert_eq(types[0], SOFFA_MT_REFERRAL_STATUS_CHANGED);
    cr_assert_eq(types[1], SOFFA_MT_ABSENCE_REPORTED);

    /* The young person's history, whole across the handovers and the transfer. */
    soffa_client_t *auditor = tk_client_pub(b, "audit-1481");
    soffa_client_t *au = tk_client_second(auditor) ? tk_client_second(auditor) : auditor;
    soffa_frame_t r = {.type = SOFFA_FRAME_REPLAY, .tag = soffa_client_next_tag(au)};
    snprintf(r.text, sizeof r.text, "history");
    snprintf(r.filter.subject_id, sizeof r.filter.subject_id, "%s", P18);
    cr_assert_eq(soffa_client_send(au, &r), SOFFA_OK);
    int seen[32];
    char boxes[32][SOFFA_NAME_MAX];
    size_t k = 0;
    for (;;) {
        soffa_frame_t f;
        cr_assert_eq(soffa_client_recv(au, &f, 5000), SOFFA_OK, "the history stalled");
        cr_assert_neq(f.type, SOFFA_FRAME_ERROR, "the history was refused: %s", f.text);
        soffa_frame_item_t one = {.seq = f.seq, .data = f.data, .data_len = f.data_len,
                                  .has_record_key = f.has_record_key};
        memcpy(one.hash, f.hash, SOFFA_HASH_LEN);
        memcpy(one.record_key, f.record_key, SOFFA_RECORD_KEY_LEN);
        const soffa_frame_item_t *rec = f.type == SOFFA_FRAME_DELIVER ? &one : f.items;
        size_t m = f.type == SOFFA_FRAME_DELIVER ? 1 : f.type == SOFFA_FRAME_DELIVER_BATCH ? f.n_items : 0;
        for (size_t i = 0; i < m; i++) {
            soffa_envelope_t e;
            cr_assert_eq(soffa_envelope_open(rec[i].data, rec[i].data_len,
                                             rec[i].has_record_key ? rec[i].record_key : NULL, &e), SOFFA_OK);
            if (e.kind == SOFFA_RK_MESSAGE && k < 32) {
                seen[k] = (int) e.msg_type;
                snprintf(boxes[k++], SOFFA_NAME_MAX, "%s", e.mailbox);
            }
            soffa_envelope_fini(&e);
        }
        if (m) {
            soffa_frame_t ra = {.type = SOFFA_FRAME_REPLAY_ACK, .tag = r.tag, .seq = rec[m - 1].seq, .has_hash = true};
            memcpy(ra.hash, rec[m - 1].hash, SOFFA_HASH_LEN);
            soffa_client_send(au, &ra);
        }
        bool end = f.type == SOFFA_FRAME_REPLAY_END;
        soffa_frame_fini(&f);
        if (end)
            break;
    }
    const struct {
        int type;
        const char *mailbox;
    } want[] = {
        {SOFFA_MT_ENROLMENT_CHANGED, "kaa/1481/norr"},
        {SOFFA_MT_KAA_CASE_OPENED, "kaa-journal/1481"},
        {SOFFA_MT_CASE_OWNER_CHANGED, "kaa-journal/1481"},
        {SOFFA_MT_CONTACT_ATTEMPTED, "kaa-journal/1481"},
        {SOFFA_MT_CASE_OWNER_CHANGED, "kaa-journal/1481"},
        {SOFFA_MT_CONSENT_RECORDED, "kaa-journal/1481"},
        {SOFFA_MT_CASE_TRANSFERRED, "kaa-journal/1481"},
        {SOFFA_MT_CASE_OWNER_CHANGED, "kaa-journal/1481"},
        {SOFFA_MT_CONTACT_ATTEMPTED, "kaa-journal/1481"},
        {SOFFA_MT_REFERRAL_STATUS_CHANGED, "kaa/1481/soder"},
        {SOFFA_MT_ABSENCE_REPORTED, "kaa/1481/soder"},
    };
    cr_assert_eq(k, sizeof want / sizeof *want, "the history holds %zu records of the scope", k);
    for (size_t i = 0; i < k; i++) {
        cr_assert_eq(seen[i], want[i].type, "record %zu is %s", i, soffa_msg_type_name((soffa_msg_type_t) seen[i]));
        cr_assert_str_eq(boxes[i], want[i].mailbox, "record %zu", i);
    }
    tk_client_pub_close(&school);
    tk_client_pub_close(&norr);
    tk_client_pub_close(&soder);
    tk_client_pub_close(&intag);
    tk_client_pub_close(&af);
    tk_client_pub_close(&kaa1419);
    tk_client_pub_close(&auditor);
    s_stop(b);
}

/* ---- Reload ---------------------------------------------------------------------------- */

/* The whole of a file (free it). */
static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char *text = calloc(1, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Replaces `from` by `to` once in the broker's configuration. */
static void
edit(tk_broker_t *b, const char *from, const char *to)
{
    char *text = slurp(b->config);
    char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' is not in the configuration", from);
    FILE *f = fopen(b->config, "w");
    cr_assert_not_null(f);
    fprintf(f, "%.*s%s%s", (int) (at - text), text, to, at + strlen(from));
    fclose(f);
    free(text);
}

static int
log_count(tk_broker_t *b, const char *what)
{
    char path[400];
    snprintf(path, sizeof path, "%s/broker.log", b->dir);
    char *text = slurp(path);
    int n = 0;
    for (char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    free(text);
    return n;
}

/* SIGHUP, and waits until the broker took the file or refused it. */
static void
reload(tk_broker_t *b)
{
    int before = log_count(b, "reload: done") + log_count(b, "reload refused");
    cr_assert_eq(kill(b->pid, SIGHUP), 0);
    for (int i = 0; i < 200; i++) {
        if (log_count(b, "reload: done") + log_count(b, "reload refused") > before)
            return;
        usleep(20000);
    }
    cr_assert_fail("the broker did not finish a reload within 4 s (see %s/broker.log)", b->dir);
}

/* A reload takes a new rule at once; a broken [teams] is refused with its
 * reason, and the rule in force stays. */
Test(teams, a_reload_takes_new_rules_and_refuses_broken_ones)
{
    tk_broker_t *b = s_start();
    soffa_client_t *school = tk_client_pub(b, "school-1415");
    TK_ACCEPTED(school, J(SOFFA_MT_ENROLMENT_CHANGED, P18, "1481"), "kaa/1481/norr");
    edit(b, "schools = 12345678:norr", "schools = 12345678:soder");
    reload(b);
    cr_assert_eq(log_count(b, "[teams] changed"), 1);
    tk_client_pub_close(&school);
    school = tk_client_pub(b, "school-1415");
    TK_ACCEPTED(school, J(SOFFA_MT_ENROLMENT_CHANGED, P17, "1481"), "kaa/1481/soder");
    edit(b, "schools = 12345678:soder", "schools = 12345678:soder, 12345678:intag");
    reload(b);
    cr_assert_eq(log_count(b, "reload refused"), 1);
    cr_assert_eq(log_count(b, "12345678 is mapped twice"), 1);
    edit(b, "12345678:soder, 12345678:intag", "12345678:soder, 12345679:hisingen");
    reload(b);
    cr_assert_eq(log_count(b, "reload refused"), 2);
    cr_assert_eq(log_count(b, "team 'hisingen', which is not one of teams"), 1);
    TK_ACCEPTED(school, set(J(SOFFA_MT_ABSENCE_REPORTED, P17, "1481"), "absence_reported.school_unit", "12345678"),
                "kaa/1481/soder");
    tk_client_pub_close(&school);
    s_stop(b);
}

/* ---- The command line, through the real agents ------------------------------------------ */

/* `soffa --socket SOCK ARGS...` (NULL-terminated); its exit code, output in *out (free it). */
static int
cli(const tk_agent_t *a, char **out, ...)
{
    char *argv[32] = {SOFFA_BIN_DIR "/soffa", "--socket", (char *) a->sock};
    int n = 3;
    va_list ap;
    va_start(ap, out);
    for (char *s = va_arg(ap, char *); s && n < 31; s = va_arg(ap, char *))
        argv[n++] = s;
    va_end(ap);
    argv[n] = NULL;
    char *err = NULL;
    *out = NULL;
    int rc = tk_run(argv, out, &err);
    size_t lo = *out ? strlen(*out) : 0, le = err ? strlen(err) : 0;
    char *both = calloc(1, lo + le + 1);
    memcpy(both, *out ? *out : "", lo);
    memcpy(both + lo, err ? err : "", le);
    free(*out);
    free(err);
    *out = both;
    return rc;
}

#define CLI_SAYS(a, want_rc, says, ...)                                                                  \
    do {                                                                                                 \
        char *o_ = NULL;                                                                                 \
        int rc_ = cli(a, &o_, __VA_ARGS__, NULL);                                                        \
        cr_assert((want_rc) == 0 ? rc_ == 0 : rc_ != 0, "line %d: exit %d: %s", __LINE__, rc_, o_);     \
        cr_assert(strstr(o_, says) != NULL, "line %d: '%s' lacks '%s'", __LINE__, o_, says);            \
        free(o_);                                                                                        \
    } while (0)

/* soffa case owner and case transfer, from two teams' agents. */
Test(teams, the_command_line_assigns_hands_over_and_transfers)
{
    tk_broker_t *b = s_start();
    tk_agent_t norr, soder;
    tk_agent_start(&norr, b, "kaa-1481-norr", "norr", b->ipc, "broker.pub", "kaa-1481-norr.key", NULL);
    tk_agent_start(&soder, b, "kaa-1481-soder", "soder", b->ipc, "broker.pub", "kaa-1481-soder.key", NULL);
    free(tk_agent_wait(&norr, "\"connected\":true", NULL, 8000));
    free(tk_agent_wait(&soder, "\"connected\":true", NULL, 8000));
    uint8_t raw[16];
    char id[SOFFA_UUID_STR];
    soffa_uuid7(raw);
    soffa_uuid_format(raw, id);
    CLI_SAYS(&norr, 1, "6 digits", "signal", "enrolment", "--pupil", P18, "--hemkommun", "1481", "--district", "1481");
    CLI_SAYS(&norr, 0, "accepted: case open -> kaa-journal/1481", "case", "open", "--pupil", P18, "--hemkommun",
             "1481", "--case-id", id);
    CLI_SAYS(&norr, 1, "looks like a name", "case", "owner", "--pupil", P18, "--hemkommun", "1481", "--case-id", id,
             "--owner-ref", "anna.svensson", "--reason", "ASSIGNED");
    CLI_SAYS(&norr, 0, "accepted: case owner -> kaa-journal/1481", "case", "owner", "--pupil", P18, "--hemkommun",
             "1481", "--case-id", id, "--owner-ref", "handl-17", "--reason", "ASSIGNED");
    CLI_SAYS(&norr, 1, "not a team of the KAA of 1481", "case", "transfer", "--pupil", P18, "--hemkommun", "1481",
             "--case-id", id, "--to-team", "hisingen");
    CLI_SAYS(&norr, 0, "accepted: case transfer -> kaa-journal/1481", "case", "transfer", "--pupil", P18,
             "--hemkommun", "1481", "--case-id", id, "--to-team", "soder");
    CLI_SAYS(&norr, 1, "held by team soder", "case", "owner", "--pupil", P18, "--hemkommun", "1481", "--case-id", id,
             "--owner-ref", "handl-31", "--previous-ref", "handl-17", "--reason", "TEAM_TRANSFER");
    CLI_SAYS(&soder, 0, "accepted: case owner -> kaa-journal/1481", "case", "owner", "--pupil", P18, "--hemkommun",
             "1481", "--case-id", id, "--owner-ref", "handl-31", "--previous-ref", "handl-17", "--reason",
             "TEAM_TRANSFER");
    tk_agent_stop(&norr);
    tk_agent_stop(&soder);
    s_stop(b);
}

/* ---- The register built from the history ------------------------------------------------- */

/* A store whose case register is gone (as one written before it): at the
 * next start the broker builds it from the history, with the team holding
 * the case and its contact person. */
Test(teams, the_team_and_contact_person_are_rebuilt_from_the_history)
{
    tk_broker_t *b = s_start();
    soffa_client_t *norr = tk_client_pub(b, "kaa-1481-norr");
    json_t *open = J(SOFFA_MT_KAA_CASE_OPENED, P18, "1481");
    char id[SOFFA_UUID_STR];
    snprintf(id, sizeof id, "%s", tk_str(open, "kaa_case_opened.case_id"));
    TK_ACCEPTED(norr, open, "kaa-journal/1481");
    TK_ACCEPTED(norr, owner(P18, "1481", id, "handl-17", "", "ASSIGNED"), "kaa-journal/1481");
    TK_ACCEPTED(norr, transfer(P18, "1481", id, "soder"), "kaa-journal/1481");
    tk_client_pub_close(&norr);
    /* A restart reads the register as it was left (next to the awaited
     * answers the broker loads at start: a referral waits for its status). */
    char cid[SOFFA_UUID_STR];
    soffa_client_t *soder = tk_client_pub(b, "kaa-1481-soder");
    TK_ACCEPTED(soder, consent(P18, "1481", cid), "kaa-journal/1481");
    TK_ACCEPTED(soder, set(J(SOFFA_MT_REFERRAL_SENT, P18, "1481"), "consent_id", cid), "af/1481");
    tk_client_pub_close(&soder);
    tk_broker_stop(b, SIGTERM);
    cr_assert(tk_broker_spawn(b), "the broker did not start again; see %s/broker.log", b->dir);
    norr = tk_client_pub(b, "kaa-1481-norr");
    TK_REFUSED(norr, ev(SOFFA_MT_CONTACT_ATTEMPTED, P18, "1481", id), SOFFA_ERR_NOT_AUTHORISED, "held by team soder");
    tk_client_pub_close(&norr);
    tk_broker_stop(b, SIGTERM);
    char path[400];
    snprintf(path, sizeof path, "%s/data", b->dir);
    soffa_store_t *st = NULL;
    soffa_seal_master_t m;
    tk_broker_master(b, &m);
    soffa_store_opts_t o = {.path = path, .master = &m};
    cr_assert_eq(soffa_store_open(&st, &o), SOFFA_OK);
    uint8_t raw[16];
    cr_assert(soffa_uuid_parse(id, raw));
    soffa_store_state_op_t del[4];
    memset(del, 0, sizeof del);
    del[0].key[0] = 'C';
    del[1].key[0] = 'T';
    for (int i = 0; i < 2; i++) {
        memcpy(del[i].key + 1, raw, 16);
        del[i].klen = 17;
        del[i].del = true;
    }
    del[2].key[0] = 'c';
    soffa_store_subject_key(st, P18, del[2].key + 1);
    memcpy(del[2].key + 1 + SOFFA_SUBJECT_KEY_LEN, "1481", 4);
    del[2].klen = 1 + SOFFA_SUBJECT_KEY_LEN + 4;
    del[2].del = true;
    memcpy(del[3].key, "Vcases-1", 8);
    del[3].klen = 8;
    del[3].del = true;
    cr_assert_eq(soffa_store_state_write(st, del, 4), SOFFA_OK);
    uint8_t ok[17] = {'T'};
    memcpy(ok + 1, raw, 16);
    cr_assert_eq(soffa_store_state_get(st, ok, sizeof ok, NULL, 0, NULL), SOFFA_ERR_NOT_FOUND);
    soffa_store_close(&st);
    cr_assert(tk_broker_spawn(b));
    norr = tk_client_pub(b, "kaa-1481-norr");
    soder = tk_client_pub(b, "kaa-1481-soder");
    TK_REFUSED(norr, ev(SOFFA_MT_CONTACT_ATTEMPTED, P18, "1481", id), SOFFA_ERR_NOT_AUTHORISED, "held by team soder");
    TK_REFUSED(soder, owner(P18, "1481", id, "handl-31", "handl-9", "TEAM_TRANSFER"), SOFFA_ERR_BAD_FIELD,
               "contact person is handl-17");
    TK_ACCEPTED(soder, owner(P18, "1481", id, "handl-31", "handl-17", "TEAM_TRANSFER"), "kaa-journal/1481");
    /* A new signal goes to the team the register says holds the case. */
    soffa_client_t *school = tk_client_pub(b, "school-1415");
    TK_ACCEPTED(school, J(SOFFA_MT_ENROLMENT_CHANGED, P18, "1481"), "kaa/1481/soder");
    tk_client_pub_close(&school);
    tk_client_pub_close(&norr);
    tk_client_pub_close(&soder);
    s_stop(b);
}
