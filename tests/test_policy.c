/*  Unit tests for soffa_policy: mailboxes and scopes, and decisions on
 *  what a message says about its sender and subject (the decision rows are
 *  exercised end to end in test_broker and test_hostile). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_id.h"
#include "soffa_policy.h"
#include "soffa_teams.h"
#include "soffa_uuid.h"
#include "testkit.h"

Test(policy, inboxes_journals_and_scopes)
{
    soffa_identity_t school = {.name = "school-1415", .role = SOFFA_ROLE_SCHOOL, .kommun = "1415"};
    soffa_identity_t kaa = {.name = "kaa-1419", .role = SOFFA_ROLE_KAA, .kommun = "1419"};
    soffa_identity_t audit = {.name = "audit", .role = SOFFA_ROLE_AUDIT, .scope = "*/1419, audit/access"};
    char m[SOFFA_NAME_MAX];
    soffa_policy_inbox(&school, m);
    cr_assert_str_eq(m, "school/school-1415");
    soffa_policy_journal(&school, m);
    cr_assert_str_eq(m, "school-journal/school-1415");
    soffa_policy_inbox(&kaa, m);
    cr_assert_str_eq(m, "kaa/1419");
    soffa_policy_journal(&kaa, m);
    cr_assert_str_eq(m, "kaa-journal/1419");
    soffa_policy_inbox(&audit, m);
    cr_assert_str_eq(m, "audit/checkpoint", "an auditor's agent reads the signed checkpoints");
    cr_assert(soffa_policy_may_read(&kaa, "kaa/1419"));
    cr_assert_not(soffa_policy_may_read(&kaa, "kaa/1415"));
    cr_assert_not(soffa_policy_may_read(&kaa, "kaa-journal/1419"));
    cr_assert_not(soffa_policy_may_read(&audit, "kaa/1419"));
    cr_assert(soffa_policy_may_replay(&audit, "kaa/1419"));
    cr_assert(soffa_policy_may_replay(&audit, "kaa-journal/1419"));
    cr_assert(soffa_policy_may_replay(&audit, "audit/access"));
    cr_assert_not(soffa_policy_may_replay(&audit, "kaa/1415"));
    cr_assert_not(soffa_policy_may_replay(&audit, "af/14190"));
    cr_assert_not(soffa_policy_may_replay(&kaa, "kaa/1419"), "only auditors replay");
    cr_assert(soffa_policy_needs_lookup(SOFFA_MT_REFERRAL_SENT));
    cr_assert(soffa_policy_needs_lookup(SOFFA_MT_SIGNAL_ACKNOWLEDGED));
    cr_assert_not(soffa_policy_needs_lookup(SOFFA_MT_ABSENCE_REPORTED));
}

/* ---- Decisions ------------------------------------------------------------------ */

static soffa_identity_t SCHOOL, KAA, SCHOOL_NO_ORG;
static char PUPIL[13];
static soffa_msg_t *CONSENT;     /* recorded by kaa-1419 for PUPIL, found by 'K' lookups */
static soffa_terms_t *TERMS;     /* the built-in sensitive-term list */
static soffa_policy_facts_t FACTS;   /* what the broker passes: the list, default date limits */

static void
facts_setup(void)
{
    char why[256] = "";
    cr_assert_eq(soffa_terms_new(&TERMS, NULL, why, sizeof why), SOFFA_OK, "%s", why);
    memset(&FACTS, 0, sizeof FACTS);
    FACTS.terms = TERMS;
}

static void
setup(void)
{
    soffa_date_t t = soffa_date_today();
    tk_pnr(t.year - 18, 3, 14, 271, 0, PUPIL);
    memset(&SCHOOL, 0, sizeof SCHOOL);
    snprintf(SCHOOL.name, sizeof SCHOOL.name, "school-1415");
    SCHOOL.role = SOFFA_ROLE_SCHOOL;
    snprintf(SCHOOL.kommun, sizeof SCHOOL.kommun, "1415");
    cr_assert_eq(soffa_policy_set_units(&SCHOOL, "12345678, 12345679", NULL, 0), SOFFA_OK);
    snprintf(SCHOOL.orgnr, sizeof SCHOOL.orgnr, "%s", TK_SCHOOL_ORGNR);
    SCHOOL_NO_ORG = SCHOOL;
    SCHOOL_NO_ORG.orgnr[0] = '\0';
    memset(&KAA, 0, sizeof KAA);
    snprintf(KAA.name, sizeof KAA.name, "kaa-1419");
    KAA.role = SOFFA_ROLE_KAA;
    snprintf(KAA.kommun, sizeof KAA.kommun, "1419");
    CONSENT = tk_msg(SOFFA_MT_CONSENT_RECORDED, PUPIL, "1419");
    facts_setup();
}

static void
teardown(void)
{
    soffa_msg_destroy(&CONSENT);
    soffa_terms_destroy(&TERMS);
}

/* The store as the policy sees it: one consent, recorded by kaa-1419. */
static soffa_err_t
find(void *ctx, soffa_ref_kind_t kind, const uint8_t id[16], soffa_policy_ref_t *out)
{
    (void) ctx;
    memset(out, 0, sizeof *out);
    soffa_msg_view_t v;
    soffa_msg_view(CONSENT, &v);
    if (kind != 'K' || !v.ref_id || memcmp(v.ref_id, id, 16) != 0)
        return SOFFA_ERR_NOT_FOUND;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(soffa_msg_encode(CONSENT, &buf, &len), SOFFA_OK);
    cr_assert_eq(soffa_msg_decode(buf, len, &out->msg), SOFFA_OK);
    free(buf);
    soffa_msg_view(out->msg, &out->view);
    out->seq = 1;
    strcpy(out->sender, "kaa-1419");
    out->sender_role = SOFFA_ROLE_KAA;
    strcpy(out->sender_kommun, "1419");
    strcpy(out->mailbox, "kaa-journal/1419");
    return SOFFA_OK;
}

/* Sets a string at a dotted path of j, creating objects on the way. */
static void
set_path(json_t *j, const char *path, const char *value)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL, *name = strtok_r(buf, ".", &save);
    for (char *next = strtok_r(NULL, ".", &save); next; next = strtok_r(NULL, ".", &save)) {
        json_t *sub = json_object_get(j, name);
        if (!sub) {
            sub = json_object();
            json_object_set_new(j, name, sub);
        }
        j = sub;
        name = next;
    }
    json_object_set_new(j, name, json_string(value));
}

/* One decision: a message of `type` about `subject`, with up to two fields
 * set ("path", "value"), from `who`. */
typedef struct {
    const char *label;
    const soffa_identity_t *who;
    soffa_msg_type_t type;
    const char *subject;       /* NULL: PUPIL */
    const char *set[4];        /* path, value, path, value */
    soffa_err_t want;
    const char *says;          /* part of the reason, when refused */
} row_t;

static void
decide_rows(const row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const row_t *r = &rows[i];
        char *text = tk_msg_json(r->type, r->subject ? r->subject : PUPIL, "1419");
        json_t *j = json_loads(text, 0, NULL);
        free(text);
        for (int k = 0; k < 4 && r->set[k]; k += 2)
            set_path(j, r->set[k], r->set[k + 1]);
        if (r->type == SOFFA_MT_CONSENT_WITHDRAWN) {
            /* Withdraws CONSENT: the payload and the envelope name its id. */
            soffa_msg_view_t v;
            soffa_msg_view(CONSENT, &v);
            char id[SOFFA_UUID_STR];
            soffa_uuid_format(v.ref_id, id);
            set_path(j, "consent_id", id);
            set_path(j, "consent_withdrawn.consent_id", id);
        }
        text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        soffa_msg_t *m = NULL;
        char why[256] = "";
        cr_assert_eq(soffa_msg_from_json(text, &m, why, sizeof why), SOFFA_OK, "%s: %s", r->label, why);
        free(text);
        soffa_policy_decision_t dec;
        why[0] = '\0';
        soffa_err_t rc = soffa_policy_decide(r->who, m, soffa_date_today(), &FACTS, find, NULL, &dec, why, sizeof why);
        cr_assert_eq(rc, r->want, "%s: got %s (%s), wanted %s", r->label, soffa_errname(rc), why,
                     soffa_errname(r->want));
        if (r->says)
            cr_assert(strstr(why, r->says) != NULL, "%s: the reason '%s' lacks '%s'", r->label, why, r->says);
        soffa_msg_destroy(&m);
    }
}

/* Issue 11, item 5: the age rules run on a reserve number's birth date, and
 * a message whose age rule cannot be checked is refused. (Since issue 13,
 * rule 3, the age is the one on the day soffa receives the message.) */
Test(policy, issue_11_05_age_rules_use_the_reserve_numbers_birth_date, .init = setup, .fini = teardown)
{
    soffa_date_t t = soffa_date_today();
    soffa_date_t tomorrow = soffa_date_local(soffa_date_local_start_us(t) + 36 * 3600000000LL);
    soffa_date_t baby = soffa_date_local(soffa_now_us() - 30 * 86400000000LL);
    char adult[13], r17[13], r18[13], r16[13], r19[13], r20[13], rbaby[13], pbaby[13];
    tk_reserve(1990, 1, 1, "TF10", adult);
    tk_reserve(t.year - 17, 1, 1, "TF10", r17);
    tk_reserve(t.year - 18, 1, 1, "TF10", r18);
    tk_reserve(t.year - 16, t.month, t.day, "TF20", r16);
    tk_reserve(tomorrow.year - 20, tomorrow.month, tomorrow.day, "TF10", r19);   /* 20 tomorrow */
    tk_reserve(t.year - 20, t.month, t.day, "TF10", r20);                        /* 20 today */
    tk_reserve(baby.year, baby.month, baby.day, "TF10", rbaby);                  /* born 30 days ago */
    tk_pnr(baby.year, baby.month, baby.day, 271, 0, pbaby);
    const row_t rows[] = {
        {"absence, reserve number of a 36-year-old", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, adult, {NULL},
         SOFFA_ERR_AGE, "under 20; this pupil is 36"},
        {"absence, reserve number of a 17-year-old", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, r17, {NULL}, SOFFA_OK, NULL},
        {"absence, reserve number, 19 today (20 tomorrow)", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, r19, {NULL}, SOFFA_OK,
         NULL},
        {"absence, reserve number, 20 today", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, r20, {NULL}, SOFFA_ERR_AGE, "is 20"},
        {"concern report, reserve number of an 18-year-old", &SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, r18, {NULL},
         SOFFA_ERR_AGE, "child under 18; this person is 18"},
        {"concern report, reserve number of a 16-year-old", &SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, r16, {NULL},
         SOFFA_OK, NULL},
        {"concern report from the KAA, 36-year-old", &KAA, SOFFA_MT_CONCERN_REPORT_FILED, adult, {NULL},
         SOFFA_ERR_AGE, NULL},
        {"absence that began before the birth (reserve)", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, rbaby, {NULL},
         SOFFA_ERR_AGE, "cannot be checked"},
        {"absence that began before the birth (personnummer)", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, pbaby, {NULL},
         SOFFA_ERR_AGE, "cannot be checked"},
        {"a reserve number that is not one", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, "19900101TF10",
         {"subject.id", "RES0042"}, SOFFA_ERR_AGE, "cannot be checked"},
        {"enrolment has no age rule", &SCHOOL, SOFFA_MT_ENROLMENT_CHANGED, adult, {NULL}, SOFFA_OK, NULL},
    };
    decide_rows(rows, sizeof rows / sizeof *rows);
}

/* Issue 11, item 8: what a message says about its sender must be what the
 * sender's key is configured as. */
Test(policy, issue_11_08_claims_about_the_sender_are_bound_to_the_key, .init = setup, .fini = teardown)
{
    const row_t rows[] = {
        {"no claims", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, {NULL}, SOFFA_OK, NULL},
        {"all claims true", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL,
         {"sender.org_nr", TK_SCHOOL_ORGNR, "sender.unit_id", "12345678"}, SOFFA_OK, NULL},
        {"the principal's second unit", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL,
         {"sender.unit_id", "12345679", "absence_reported.school_unit", "12345679"}, SOFFA_OK, NULL},
        {"kind", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, {"sender.kind", "KAA"}, SOFFA_ERR_NOT_AUTHORISED,
         "sender.kind"},
        {"kind SOFFA", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, {"sender.kind", "SOFFA"}, SOFFA_ERR_NOT_AUTHORISED,
         "sender.kind"},
        {"another organisation", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, {"sender.org_nr", "5566778899"},
         SOFFA_ERR_NOT_AUTHORISED, "claims organisation 5566778899; school-1415 is 2120001355"},
        {"an organisation nobody configured", &SCHOOL_NO_ORG, SOFFA_MT_ABSENCE_REPORTED, NULL,
         {"sender.org_nr", TK_SCHOOL_ORGNR}, SOFFA_ERR_NOT_AUTHORISED, "no orgnr"},
        {"another municipality", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, {"sender.kommunkod", "1419"},
         SOFFA_ERR_NOT_AUTHORISED, "sender.kommunkod"},
        {"another unit", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, {"sender.unit_id", "14199999"},
         SOFFA_ERR_NOT_AUTHORISED, "sender.unit_id"},
        {"absence from another school unit", &SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL,
         {"absence_reported.school_unit", "14199999"}, SOFFA_ERR_NOT_AUTHORISED,
         "absence_reported.school_unit: 14199999 is not one of school-1415's configured school units"},
        {"enrolment at another school unit", &SCHOOL, SOFFA_MT_ENROLMENT_CHANGED, NULL,
         {"enrolment_changed.school_unit", "14199999"}, SOFFA_ERR_NOT_AUTHORISED, "enrolment_changed.school_unit"},
        {"at-risk notice from another school unit", &SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL,
         {"at_risk_notice.school_unit", "14199999"}, SOFFA_ERR_NOT_AUTHORISED, "at_risk_notice.school_unit"},
        {"a KAA claiming another municipality", &KAA, SOFFA_MT_KAA_CASE_OPENED, NULL, {"sender.kommunkod", "1415"},
         SOFFA_ERR_NOT_AUTHORISED, "sender.kommunkod"},
        {"a KAA claiming a unit it has not", &KAA, SOFFA_MT_KAA_CASE_OPENED, NULL, {"sender.unit_id", "KAA-1"},
         SOFFA_ERR_NOT_AUTHORISED, "sender.unit_id"},
        {"a KAA's true claims", &KAA, SOFFA_MT_KAA_CASE_OPENED, NULL,
         {"sender.kind", "KAA", "sender.kommunkod", "1419"}, SOFFA_OK, NULL},
    };
    decide_rows(rows, sizeof rows / sizeof *rows);
}

Test(policy, issue_11_08_unit_lists)
{
    soffa_identity_t id;
    memset(&id, 0, sizeof id);
    id.role = SOFFA_ROLE_SCHOOL;
    char why[128] = "";
    cr_assert_eq(soffa_policy_set_units(&id, " 12345678 ,12345679,14150001 ", why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert_eq(id.n_units, 3);
    cr_assert_str_eq(id.unit, "12345678", "the first unit is the envelope's");
    cr_assert(soffa_policy_has_unit(&id, "14150001"));
    cr_assert_not(soffa_policy_has_unit(&id, "1415000"));
    cr_assert_not(soffa_policy_has_unit(&id, ""));
    cr_assert_eq(soffa_policy_set_units(&id, "", why, sizeof why), SOFFA_OK);
    cr_assert_eq(id.n_units, 0);
    cr_assert_str_eq(id.unit, "");
    cr_assert_eq(soffa_policy_set_units(&id, "12345678;12345679", why, sizeof why), SOFFA_ERR_SKOLENHET);
    cr_assert_eq(soffa_policy_set_units(&id, "12345678, 1234567", why, sizeof why), SOFFA_ERR_SKOLENHET);
    cr_assert(strstr(why, "'1234567'") != NULL, "%s", why);
    cr_assert_eq(soffa_policy_set_units(&id, "12345678,12345678", why, sizeof why), SOFFA_ERR_EXISTS);
    char many[SOFFA_UNITS_MAX * 10 + 20] = "";
    for (int i = 0; i <= SOFFA_UNITS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s%08d", i ? "," : "", 10000000 + i);
    cr_assert_eq(soffa_policy_set_units(&id, many, why, sizeof why), SOFFA_ERR_TOO_LARGE);
    /* Other roles name local units (an Arbetsförmedlingen office). */
    id.role = SOFFA_ROLE_AF;
    cr_assert_eq(soffa_policy_set_units(&id, "AF-0101, AF-0102", why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert(soffa_policy_has_unit(&id, "AF-0102"));
    cr_assert_eq(soffa_policy_set_units(&id, "Mottagningen", why, sizeof why), SOFFA_ERR_BAD_FIELD);
    cr_assert_eq(soffa_policy_set_units(&id, "AF-01234567890123", why, sizeof why), SOFFA_ERR_BAD_FIELD);
    cr_assert(strstr(why, "...") != NULL, "%s", why);
}

/* Issue 11, item 15: a withdrawal is about the consent's own subject. */
Test(policy, issue_11_15_a_withdrawal_names_the_consents_subject, .init = setup, .fini = teardown)
{
    char other[13];
    tk_pnr(soffa_date_today().year - 17, 5, 2, 384, 0, other);
    const row_t rows[] = {
        {"the consent's subject", &KAA, SOFFA_MT_CONSENT_WITHDRAWN, NULL, {NULL}, SOFFA_OK, NULL},
        {"another person", &KAA, SOFFA_MT_CONSENT_WITHDRAWN, other, {NULL}, SOFFA_ERR_CONSENT, "another person"},
        {"a reserve number for the same consent", &KAA, SOFFA_MT_CONSENT_WITHDRAWN, "20080314TF10", {NULL},
         SOFFA_ERR_CONSENT, "another person"},
    };
    decide_rows(rows, sizeof rows / sizeof *rows);
}

/* ---- The table, one row per rule (issue 12) ---------------------------------------------- */

/* A small store the decisions look records up in: a consent recorded by
 * kaa-1419 (covering Arbetsförmedlingen, social services and the KAA), one
 * recorded by school-1415 (covering the KAA), a signal school-1415 sent to
 * kaa/1419, referrals kaa-1419 sent to af/1419 and social/1419, and a
 * report of concern school-1415 filed with social/1419. */
static uint8_t T_KAA_CONSENT[16], T_SCHOOL_CONSENT[16], T_SIGNAL[16], T_REF_AF[16], T_REF_SOC[16], T_REPORT[16];
static uint8_t T_WARNING[16];   /* an at-risk notice school-1415 sent kaa/1419 on T_SCHOOL_CONSENT */
/* Issue 13: a consent of kaa-1419's that covers handing a case on to
 * another KAA; a signal about a 21-year-old in kaa/1419; what the store says
 * of withdrawals and expiries (set by a test). */
static uint8_t T_HANDOVER_CONSENT[16], T_SIGNAL_ADULT[16];
static bool T_WITHDRAWN, T_REF_AF_EXPIRED, T_REROUTED;
static char T_ADULT[13];
static soffa_identity_t T_SCHOOL, T_KAA, T_SOCIAL, T_AF, T_AUDIT;
static char T_PUPIL[13], T_CHILD[13];
/* Tjörn's KAA in three teams (issue 19, item 4), for the rows of types 43 and 44. */
static soffa_identity_t T_NORR, T_CENTRUM, T_INTAG;
static soffa_teams_t *T_TEAMS;

/* A teams table from the [teams ...] sections of ini, checked against the
 * agents ids; rc of loading, why filled on failure. */
static soffa_err_t
t_teams_load(const char *ini, const soffa_identity_t *const *ids, size_t n, soffa_teams_t **out, char *why,
             size_t whylen)
{
    char *dir = tk_tmpdir("teams");
    char path[512];
    snprintf(path, sizeof path, "%s/teams.ini", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(ini, f);
    fclose(f);
    soffa_teams_t *t = soffa_teams_new();
    cr_assert_not_null(t);
    soffa_cfg_section_t sec = soffa_teams_section(t);
    soffa_err_t rc = soffa_cfg_load(path, &sec, 1, why, whylen);
    rc = soffa_teams_finish(t, path, rc, ids, n, why, whylen);
    tk_rmrf(dir);
    free(dir);
    if (rc != SOFFA_OK)
        soffa_teams_destroy(&t);
    *out = t;
    return rc;
}

/* Issue 19, the local actors: the providers configured for Tjörn (Komvux,
 * another school's programme, a folkhögskola, two guidance centres); a
 * consent social-1419 recorded (covering the KAA); a referral kaa-1419 sent
 * to komvux-1419, and one social-1419 sent to kaa/1419 on that consent. */
static soffa_identity_t T_PROVIDER, T_PROVIDERS[5];
static uint8_t T_SOC_CONSENT[16], T_REF_PROV[16], T_REF_SOC_KAA[16];

static const soffa_identity_t *
t_provider_at(void *ctx, const char *kommun, size_t i)
{
    (void) ctx;
    (void) kommun;
    return i < sizeof T_PROVIDERS / sizeof *T_PROVIDERS ? &T_PROVIDERS[i] : NULL;
}

static void
t_identity(soffa_identity_t *id, const char *name, soffa_role_t role, const char *kommun)
{
    memset(id, 0, sizeof *id);
    snprintf(id->name, sizeof id->name, "%s", name);
    id->role = role;
    snprintf(id->kommun, sizeof id->kommun, "%s", kommun);
}

static void
t_setup(void)
{
    soffa_date_t t = soffa_date_today();
    tk_pnr(t.year - 18, 3, 14, 271, 0, T_PUPIL);
    tk_pnr(t.year - 16, 5, 2, 384, 0, T_CHILD);
    t_identity(&T_SCHOOL, "school-1415", SOFFA_ROLE_SCHOOL, "1415");
    cr_assert_eq(soffa_policy_set_units(&T_SCHOOL, "12345678", NULL, 0), SOFFA_OK);
    t_identity(&T_KAA, "kaa-1419", SOFFA_ROLE_KAA, "1419");
    t_identity(&T_SOCIAL, "social-1419", SOFFA_ROLE_SOCIAL, "1419");
    t_identity(&T_AF, "af-1419", SOFFA_ROLE_AF, "1419");
    t_identity(&T_AUDIT, "audit", SOFFA_ROLE_AUDIT, "");
    t_identity(&T_NORR, "kaa-1419-norr", SOFFA_ROLE_KAA, "1419");
    snprintf(T_NORR.team, sizeof T_NORR.team, "norr");
    t_identity(&T_CENTRUM, "kaa-1419-centrum", SOFFA_ROLE_KAA, "1419");
    snprintf(T_CENTRUM.team, sizeof T_CENTRUM.team, "centrum");
    t_identity(&T_INTAG, "kaa-1419-intag", SOFFA_ROLE_KAA, "1419");
    snprintf(T_INTAG.team, sizeof T_INTAG.team, "intag");
    const soffa_identity_t *teams[] = {&T_NORR, &T_CENTRUM, &T_INTAG, &T_SCHOOL};
    char why[512] = "";
    cr_assert_eq(t_teams_load("[teams 1419]\nteams = norr, centrum, intag\nrule = school\nintake = intag\n"
                              "schools = 12345678:norr\n", teams, 4, &T_TEAMS, why, sizeof why), SOFFA_OK, "%s", why);
    t_identity(&T_PROVIDER, "komvux-1419", SOFFA_ROLE_PROVIDER, "1419");
    T_PROVIDER.provider_kind = SOFFA_PVK_KOMVUX;
    static const struct {
        const char *name;
        soffa_provider_kind_t kind;
    } provs[] = {{"komvux-1419", SOFFA_PVK_KOMVUX}, {"skola-1419", SOFFA_PVK_SCHOOL_PROGRAMME},
                 {"fhsk-1419", SOFFA_PVK_FOLKHOGSKOLA}, {"vgc-a", SOFFA_PVK_GUIDANCE_CENTRE},
                 {"vgc-b", SOFFA_PVK_GUIDANCE_CENTRE}};
    for (size_t i = 0; i < 5; i++) {
        t_identity(&T_PROVIDERS[i], provs[i].name, SOFFA_ROLE_PROVIDER, "1419");
        T_PROVIDERS[i].provider_kind = provs[i].kind;
    }
    soffa_uuid7(T_SOC_CONSENT);
    soffa_uuid7(T_REF_PROV);
    soffa_uuid7(T_REF_SOC_KAA);
    tk_pnr(t.year - 21, 1, 9, 117, 0, T_ADULT);
    T_WITHDRAWN = T_REF_AF_EXPIRED = false;
    uint8_t *ids[] = {T_KAA_CONSENT, T_SCHOOL_CONSENT, T_SIGNAL, T_REF_AF, T_REF_SOC, T_REPORT, T_HANDOVER_CONSENT,
                      T_SIGNAL_ADULT, T_WARNING};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        soffa_uuid7(ids[i]);
    facts_setup();
    FACTS.provider_at = t_provider_at;
}

static void
t_teardown(void)
{
    soffa_terms_destroy(&TERMS);
    soffa_teams_destroy(&T_TEAMS);
}

static json_t *
t_json(soffa_msg_type_t type, const char *pnr)
{
    char *s = tk_msg_json(type, pnr, "1419");
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    return j;
}

static void
t_set_id(json_t *obj, const char *field, const uint8_t id[16])
{
    char text[SOFFA_UUID_STR];
    soffa_uuid_format(id, text);
    json_object_set_new(obj, field, json_string(text));
}

/* A consent of the store, valid today, covering `recipients`. */
static json_t *
t_consent(const uint8_t id[16], const char *const recipients[], size_t n)
{
    json_t *j = t_json(SOFFA_MT_CONSENT_RECORDED, T_PUPIL);
    json_t *p = json_object_get(j, "consent_recorded");
    t_set_id(p, "consent_id", id);
    t_set_id(j, "consent_id", id);
    json_t *r = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(r, json_string(recipients[i]));
    json_object_set_new(json_object_get(p, "scope"), "recipients", r);
    soffa_date_t t = soffa_date_today();
    char from[11], to[11];
    soffa_date_format(t, from);
    t.year++;
    t.day = t.day > 28 ? 28 : t.day;
    soffa_date_format(t, to);
    json_object_set_new(p, "valid_from", json_string(from));
    json_object_set_new(p, "valid_to", json_string(to));
    return j;
}

static soffa_err_t
t_find(void *ctx, soffa_ref_kind_t kind, const uint8_t id[16], soffa_policy_ref_t *out)
{
    (void) ctx;
    memset(out, 0, sizeof *out);
    json_t *j = NULL;
    const char *sender = NULL, *mailbox = NULL;
    soffa_role_t role = SOFFA_ROLE_NONE;
    static const char *const kaa_covers[] = {"ARBETSFORMEDLINGEN", "SOCIAL_SERVICES", "KAA", "PROVIDER"};
    static const char *const school_covers[] = {"KAA"};
    bool a_consent = !memcmp(id, T_KAA_CONSENT, 16) || !memcmp(id, T_SCHOOL_CONSENT, 16)
                  || !memcmp(id, T_HANDOVER_CONSENT, 16) || !memcmp(id, T_SOC_CONSENT, 16);
    if (kind == SOFFA_REF_WITHDRAWAL && T_WITHDRAWN && a_consent) {
        j = t_json(SOFFA_MT_CONSENT_WITHDRAWN, T_PUPIL);
        t_set_id(json_object_get(j, "consent_withdrawn"), "consent_id", id);
        t_set_id(j, "consent_id", id);
        sender = "kaa-1419", role = SOFFA_ROLE_KAA, mailbox = "kaa-journal/1419";
    } else if (kind == SOFFA_REF_ACK && T_REROUTED && !memcmp(id, T_SIGNAL, 16)) {
        j = t_json(SOFFA_MT_SIGNAL_ACKNOWLEDGED, T_PUPIL);
        t_set_id(json_object_get(j, "signal_acknowledged"), "signal_id", id);
        json_object_set_new(json_object_get(j, "signal_acknowledged"), "result", json_string("NOT_HEMKOMMUN_REROUTED"));
        json_object_set_new(json_object_get(j, "signal_acknowledged"), "new_hemkommun", json_string("1480"));
        sender = "kaa-1419", role = SOFFA_ROLE_KAA, mailbox = "school/school-1415";
    } else if (kind == SOFFA_REF_STATUS && T_REF_AF_EXPIRED && !memcmp(id, T_REF_AF, 16)) {
        j = t_json(SOFFA_MT_REFERRAL_STATUS_CHANGED, T_PUPIL);
        t_set_id(json_object_get(j, "referral_status_changed"), "referral_id", id);
        json_object_set_new(json_object_get(j, "referral_status_changed"), "status", json_string("EXPIRED"));
        t_set_id(j, "consent_id", T_KAA_CONSENT);
        sender = "soffa-broker", role = SOFFA_ROLE_BROKER, mailbox = "kaa/1419";
    } else if (kind == SOFFA_REF_CONSENT && !memcmp(id, T_HANDOVER_CONSENT, 16)) {
        static const char *const kaa_only[] = {"KAA"};
        j = t_consent(T_HANDOVER_CONSENT, kaa_only, 1);
        json_t *pur = json_array();
        json_array_append_new(pur, json_string("CASE_SUMMARY"));
        json_object_set_new(json_object_get(json_object_get(j, "consent_recorded"), "scope"), "purposes", pur);
        sender = "kaa-1419", role = SOFFA_ROLE_KAA, mailbox = "kaa-journal/1419";
    } else if (kind == SOFFA_REF_SIGNAL && !memcmp(id, T_SIGNAL_ADULT, 16)) {
        j = t_json(SOFFA_MT_ENROLMENT_CHANGED, T_ADULT);
        t_set_id(j, "message_id", T_SIGNAL_ADULT);
        sender = "school-1415", role = SOFFA_ROLE_SCHOOL, mailbox = "kaa/1419";
    } else if (kind == SOFFA_REF_CONSENT && !memcmp(id, T_KAA_CONSENT, 16)) {
        j = t_consent(T_KAA_CONSENT, kaa_covers, 4);
        json_object_set_new(json_object_get(json_object_get(j, "consent_recorded"), "scope"), "provider_kinds",
                            json_pack("[s,s,s]", "KOMVUX", "SCHOOL_PROGRAMME", "GUIDANCE_CENTRE"));
        sender = "kaa-1419", role = SOFFA_ROLE_KAA, mailbox = "kaa-journal/1419";
    } else if (kind == SOFFA_REF_CONSENT && !memcmp(id, T_SOC_CONSENT, 16)) {
        static const char *const soc_covers[] = {"KAA"};
        j = t_consent(T_SOC_CONSENT, soc_covers, 1);
        sender = "social-1419", role = SOFFA_ROLE_SOCIAL, mailbox = "social-journal/1419";
    } else if (kind == SOFFA_REF_REFERRAL && !memcmp(id, T_REF_PROV, 16)) {
        j = t_json(SOFFA_MT_REFERRAL_SENT, T_PUPIL);
        json_t *r = json_object_get(j, "referral_sent");
        t_set_id(r, "referral_id", id);
        json_object_set_new(r, "target_kind", json_string("PROVIDER"));
        json_object_set_new(r, "purpose", json_string("PROVIDER_STUDIES"));
        json_object_set_new(r, "provider_kind", json_string("KOMVUX"));
        t_set_id(j, "consent_id", T_KAA_CONSENT);
        sender = "kaa-1419", role = SOFFA_ROLE_KAA, mailbox = "provider/1419/komvux-1419";
    } else if (kind == SOFFA_REF_REFERRAL && !memcmp(id, T_REF_SOC_KAA, 16)) {
        j = t_json(SOFFA_MT_REFERRAL_SENT, T_PUPIL);
        json_t *r = json_object_get(j, "referral_sent");
        t_set_id(r, "referral_id", id);
        json_object_set_new(r, "target_kind", json_string("KAA"));
        json_object_set_new(r, "purpose", json_string("KAA_SUPPORT"));
        t_set_id(j, "consent_id", T_SOC_CONSENT);
        sender = "social-1419", role = SOFFA_ROLE_SOCIAL, mailbox = "kaa/1419";
    } else if (kind == SOFFA_REF_CONSENT && !memcmp(id, T_SCHOOL_CONSENT, 16)) {
        j = t_consent(T_SCHOOL_CONSENT, school_covers, 1);
        sender = "school-1415", role = SOFFA_ROLE_SCHOOL, mailbox = "school-journal/school-1415";
    } else if (kind == SOFFA_REF_SIGNAL && !memcmp(id, T_SIGNAL, 16)) {
        j = t_json(SOFFA_MT_ABSENCE_REPORTED, T_PUPIL);
        t_set_id(j, "message_id", T_SIGNAL);
        sender = "school-1415", role = SOFFA_ROLE_SCHOOL, mailbox = "kaa/1419";
    } else if (kind == SOFFA_REF_SIGNAL && !memcmp(id, T_WARNING, 16)) {
        j = t_json(SOFFA_MT_AT_RISK_NOTICE, T_PUPIL);
        t_set_id(j, "message_id", T_WARNING);
        t_set_id(j, "consent_id", T_SCHOOL_CONSENT);
        sender = "school-1415", role = SOFFA_ROLE_SCHOOL, mailbox = "kaa/1419";
    } else if (kind == SOFFA_REF_REFERRAL && (!memcmp(id, T_REF_AF, 16) || !memcmp(id, T_REF_SOC, 16))) {
        bool af = !memcmp(id, T_REF_AF, 16);
        j = t_json(SOFFA_MT_REFERRAL_SENT, T_PUPIL);
        t_set_id(json_object_get(j, "referral_sent"), "referral_id", id);
        t_set_id(j, "consent_id", T_KAA_CONSENT);
        sender = "kaa-1419", role = SOFFA_ROLE_KAA, mailbox = af ? "af/1419" : "social/1419";
    } else if (kind == SOFFA_REF_REPORT && !memcmp(id, T_REPORT, 16)) {
        j = t_json(SOFFA_MT_CONCERN_REPORT_FILED, T_PUPIL);
        t_set_id(json_object_get(j, "concern_report_filed"), "report_id", T_REPORT);
        sender = "school-1415", role = SOFFA_ROLE_SCHOOL, mailbox = "social/1419";
    } else {
        return SOFFA_ERR_NOT_FOUND;   /* nothing else, no withdrawal: consents are active */
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char why[256] = "";
    cr_assert_eq(soffa_msg_from_json(s, &out->msg, why, sizeof why), SOFFA_OK, "fake store: %s", why);
    free(s);
    soffa_msg_view(out->msg, &out->view);
    out->seq = 1;
    snprintf(out->sender, sizeof out->sender, "%s", sender);
    out->sender_role = role;
    snprintf(out->sender_kommun, sizeof out->sender_kommun, "%s", role == SOFFA_ROLE_SCHOOL ? "1415" : "1419");
    snprintf(out->mailbox, sizeof out->mailbox, "%s", mailbox);
    return SOFFA_OK;
}

/* One row: a message of `type` from `who`, the ids it needs set from the
 * store, and what the policy must say. */
typedef struct {
    soffa_msg_type_t type;
    const soffa_identity_t *who;
    soffa_err_t want;
    const char *mailbox;        /* where it goes when allowed */
} t_row_t;

/* Sets fields ("path", "value" pairs, dotted paths) of j. */
static void t_set_fields(json_t *j, const char *const *set);

static soffa_err_t
t_decide_with(const t_row_t *r, const char *subject, const char *const *set, const soffa_policy_facts_t *given,
              soffa_policy_decision_t *dec, char *why, size_t whylen)
{
    bool child = r->type == SOFFA_MT_CONCERN_REPORT_FILED;
    json_t *j = t_json(r->type, subject ? subject : child ? T_CHILD : T_PUPIL);
    const char *pl_name = soffa_msg_type_name(r->type);
    json_t *pl = json_object_get(j, pl_name);
    switch (r->type) {
    case SOFFA_MT_AT_RISK_NOTICE: t_set_id(j, "consent_id", T_SCHOOL_CONSENT); break;
    case SOFFA_MT_YEAR9_HANDOVER: t_set_id(j, "consent_id", T_SCHOOL_CONSENT); break;
    case SOFFA_MT_EARLY_WARNING_ANSWERED:
        t_set_id(pl, "warning_id", T_WARNING);
        t_set_id(j, "consent_id", T_SCHOOL_CONSENT);
        break;
    case SOFFA_MT_SIGNAL_ACKNOWLEDGED: t_set_id(pl, "signal_id", T_SIGNAL); break;
    case SOFFA_MT_CONSENT_RECORDED: json_object_set(j, "consent_id", json_object_get(pl, "consent_id")); break;
    case SOFFA_MT_CONSENT_WITHDRAWN: {
        const uint8_t *c = r->who->role == SOFFA_ROLE_SCHOOL   ? T_SCHOOL_CONSENT
                         : r->who->role == SOFFA_ROLE_SOCIAL ? T_SOC_CONSENT
                                                              : T_KAA_CONSENT;
        t_set_id(j, "consent_id", c);
        t_set_id(pl, "consent_id", c);
        break;
    }
    case SOFFA_MT_REFERRAL_SENT:
        t_set_id(j, "consent_id", r->who->role == SOFFA_ROLE_SOCIAL ? T_SOC_CONSENT : T_KAA_CONSENT);
        /* Social services refer to the KAA; a row whose mailbox is a
         * provider's is a KAA's referral to Komvux. */
        if (r->who->role == SOFFA_ROLE_SOCIAL) {
            json_object_set_new(pl, "target_kind", json_string("KAA"));
            json_object_set_new(pl, "purpose", json_string("KAA_SUPPORT"));
        } else if (r->mailbox && !strncmp(r->mailbox, "provider/", 9)) {
            json_object_set_new(pl, "target_kind", json_string("PROVIDER"));
            json_object_set_new(pl, "purpose", json_string("PROVIDER_STUDIES"));
            json_object_set_new(pl, "provider_kind", json_string("KOMVUX"));
        }
        break;
    case SOFFA_MT_REFERRAL_STATUS_CHANGED:
        t_set_id(pl, "referral_id", r->who->role == SOFFA_ROLE_SOCIAL     ? T_REF_SOC
                                    : r->who->role == SOFFA_ROLE_PROVIDER ? T_REF_PROV
                                    : r->who->role == SOFFA_ROLE_KAA      ? T_REF_SOC_KAA
                                                                          : T_REF_AF);
        t_set_id(j, "consent_id", r->who->role == SOFFA_ROLE_KAA ? T_SOC_CONSENT : T_KAA_CONSENT);
        break;
    case SOFFA_MT_REFERRAL_WITHDRAWN:
        t_set_id(pl, "referral_id", r->who->role == SOFFA_ROLE_SOCIAL ? T_REF_SOC_KAA : T_REF_AF);
        t_set_id(j, "consent_id", r->who->role == SOFFA_ROLE_SOCIAL ? T_SOC_CONSENT : T_KAA_CONSENT);
        break;
    case SOFFA_MT_CONCERN_REPORT_FEEDBACK: t_set_id(pl, "report_id", T_REPORT); break;
    case SOFFA_MT_KAA_CASE_REOPENED: t_set_id(pl, "signal_id", T_SIGNAL); break;
    default: break;
    }
    if (set)
        t_set_fields(j, set);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    soffa_msg_t *m = NULL;
    cr_assert_eq(soffa_msg_from_json(s, &m, why, whylen), SOFFA_OK, "%s: %s", pl_name, why);
    free(s);
    why[0] = '\0';
    /* What the broker passes (the term list, default date limits) and its
     * case register: events name an open case of kaa-1419's, a reopening a
     * closed one; an opening names a new one. */
    soffa_policy_facts_t facts = FACTS;
    facts.kase = (soffa_policy_case_t){.known = true, .open = true, .same_person = true, .kommun = "1419"};
    if (r->type == SOFFA_MT_KAA_CASE_OPENED)
        memset(&facts.kase, 0, sizeof facts.kase);
    if (r->type == SOFFA_MT_KAA_CASE_REOPENED)
        facts.kase.open = false;
    if (r->type == SOFFA_MT_CASE_OWNER_CHANGED)   /* a handover from the contact person the case has */
        snprintf(facts.kase.owner, sizeof facts.kase.owner, "handl-17");
    if (r->type == SOFFA_MT_CASE_TRANSFERRED) {   /* Tjörn in teams: norr passes its case to centrum */
        facts.teams = T_TEAMS;
        snprintf(facts.kase.team, sizeof facts.kase.team, "%s", r->who->team);
    }
    facts.old_known_here = true;   /* an identity change: the KAA holds the old number */
    if (given) {
        facts = *given;
        if (!facts.terms)
            facts.terms = FACTS.terms;
    }
    soffa_err_t rc = soffa_policy_decide(r->who, m, soffa_date_today(), &facts, t_find, NULL, dec, why, whylen);
    soffa_msg_destroy(&m);
    return rc;
}

static soffa_err_t
t_decide(const t_row_t *r, soffa_policy_decision_t *dec, char *why, size_t whylen)
{
    return t_decide_with(r, NULL, NULL, NULL, dec, why, whylen);
}

Test(policy, issue_12_every_route_of_the_table_and_the_roles_it_refuses, .init = t_setup, .fini = t_teardown)
{
    const t_row_t rows[] = {
        {SOFFA_MT_ENROLMENT_CHANGED, &T_SCHOOL, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_ABSENCE_REPORTED, &T_SCHOOL, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_AT_RISK_NOTICE, &T_SCHOOL, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_SIGNAL_ACKNOWLEDGED, &T_KAA, SOFFA_OK, "school/school-1415"},
        {SOFFA_MT_YEAR9_HANDOVER, &T_SCHOOL, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_ADMISSION_NOT_STARTED, &T_SCHOOL, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_EARLY_WARNING_ANSWERED, &T_KAA, SOFFA_OK, "school/school-1415"},
        {SOFFA_MT_KAA_CASE_OPENED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_CONTACT_ATTEMPTED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_OCCUPATION_RECORDED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_PLAN_AGREED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_CASE_MAPPED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_MEASURE_STARTED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_MEASURE_ENDED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_KAA_CASE_REOPENED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_CASE_OWNER_CHANGED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_CASE_TRANSFERRED, &T_NORR, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_CONSENT_RECORDED, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_CONSENT_RECORDED, &T_SCHOOL, SOFFA_OK, "school-journal/school-1415"},
        {SOFFA_MT_CONSENT_WITHDRAWN, &T_KAA, SOFFA_OK, "kaa-journal/1419"},
        {SOFFA_MT_CONSENT_WITHDRAWN, &T_SCHOOL, SOFFA_OK, "school-journal/school-1415"},
        {SOFFA_MT_REFERRAL_SENT, &T_KAA, SOFFA_OK, "af/1419"},
        {SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_SOCIAL, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_AF, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_REFERRAL_WITHDRAWN, &T_KAA, SOFFA_OK, "af/1419"},
        {SOFFA_MT_CONCERN_REPORT_FILED, &T_SCHOOL, SOFFA_OK, "social/1419"},
        {SOFFA_MT_CONCERN_REPORT_FILED, &T_KAA, SOFFA_OK, "social/1419"},
        {SOFFA_MT_CONCERN_REPORT_FEEDBACK, &T_SOCIAL, SOFFA_OK, "school/school-1415"},
        /* Issue 19, the local actors. */
        {SOFFA_MT_REFERRAL_SENT, &T_KAA, SOFFA_OK, "provider/1419/komvux-1419"},
        {SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_PROVIDER, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_CONSENT_RECORDED, &T_SOCIAL, SOFFA_OK, "social-journal/1419"},
        {SOFFA_MT_CONSENT_WITHDRAWN, &T_SOCIAL, SOFFA_OK, "social-journal/1419"},
        {SOFFA_MT_REFERRAL_SENT, &T_SOCIAL, SOFFA_OK, "kaa/1419"},
        {SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_KAA, SOFFA_OK, "social/1419"},
        {SOFFA_MT_REFERRAL_WITHDRAWN, &T_SOCIAL, SOFFA_OK, "kaa/1419"},
    };
    const size_t n = sizeof rows / sizeof *rows;
    /* Every route of the policy is a row here, and the other way round. */
    size_t routes = 0;
    soffa_msg_type_t type;
    soffa_role_t role;
    for (size_t i = 0; soffa_policy_route_at(i, &type, &role); i++, routes++) {
        bool covered = false;
        for (size_t k = 0; k < n; k++)
            covered |= rows[k].type == type && rows[k].who->role == role;
        cr_assert(covered, "route %s from %s has no row in this test", soffa_msg_type_name(type), soffa_role_name(role));
    }
    cr_assert_eq(routes, n);
    const soffa_identity_t *everyone[] = {&T_SCHOOL, &T_KAA, &T_SOCIAL, &T_AF, &T_AUDIT, &T_PROVIDER};
    for (size_t i = 0; i < n; i++) {
        soffa_policy_decision_t dec;
        char why[256];
        soffa_err_t rc = t_decide(&rows[i], &dec, why, sizeof why);
        cr_assert_eq(rc, rows[i].want, "%s from %s: %s (%s)", soffa_msg_type_name(rows[i].type), rows[i].who->name,
                     soffa_errname(rc), why);
        cr_assert_str_eq(dec.mailbox, rows[i].mailbox, "%s from %s", soffa_msg_type_name(rows[i].type), rows[i].who->name);
        cr_assert_eq(soffa_policy_basis(rows[i].type, rows[i].who->role) != SOFFA_LB_NONE, true);
        /* The same message from a role with no route for it is refused by policy. */
        for (size_t k = 0; k < sizeof everyone / sizeof *everyone; k++) {
            bool routed = false;
            for (size_t q = 0; q < n; q++)
                routed |= rows[q].type == rows[i].type && rows[q].who->role == everyone[k]->role;
            if (routed)
                continue;
            t_row_t other = rows[i];
            other.who = everyone[k];
            rc = t_decide(&other, &dec, why, sizeof why);
            cr_assert_eq(rc, SOFFA_ERR_POLICY, "%s from %s: %s (%s)", soffa_msg_type_name(other.type),
                         everyone[k]->name, soffa_errname(rc), why);
        }
    }
}

Test(policy, issue_12_receipts_and_keys_come_from_the_table, .init = t_setup, .fini = t_teardown)
{
    cr_assert_eq(soffa_policy_awaits(SOFFA_MT_ABSENCE_REPORTED), SOFFA_RECEIPT_ACK);
    cr_assert_eq(soffa_policy_awaits(SOFFA_MT_REFERRAL_SENT), SOFFA_RECEIPT_STATUS);
    cr_assert_eq(soffa_policy_awaits(SOFFA_MT_KAA_CASE_OPENED), SOFFA_RECEIPT_NONE);
    cr_assert_eq(soffa_policy_gives(SOFFA_MT_SIGNAL_ACKNOWLEDGED), SOFFA_RECEIPT_ACK);
    cr_assert_eq(soffa_policy_gives(SOFFA_MT_REFERRAL_STATUS_CHANGED), SOFFA_RECEIPT_STATUS);
    cr_assert_eq(soffa_policy_basis(SOFFA_MT_ENROLMENT_CHANGED, SOFFA_ROLE_NONE), SOFFA_LB_SL_15_15_ENROLMENT);
    cr_assert_eq(soffa_policy_basis(SOFFA_MT_CONCERN_REPORT_FILED, SOFFA_ROLE_AF), SOFFA_LB_NONE);
    /* A referral is found by its id and by its consent (shared), and waits for a status. */
    const t_row_t r = {SOFFA_MT_REFERRAL_SENT, &T_KAA, SOFFA_OK, "af/1419"};
    soffa_policy_decision_t dec;
    char why[256];
    cr_assert_eq(t_decide(&r, &dec, why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert_eq(dec.n_refs, 2);
    cr_assert_eq(dec.refs[0].key[0], SOFFA_REF_REFERRAL);
    cr_assert_not(dec.refs[0].shared);
    cr_assert_eq(dec.refs[1].key[0], SOFFA_REF_BY_CONSENT);
    cr_assert(dec.refs[1].shared);
    cr_assert_eq(memcmp(dec.refs[1].key + 1, T_KAA_CONSENT, 16), 0);
    cr_assert_eq(dec.awaits, SOFFA_RECEIPT_STATUS);
    /* An id a record introduces must be new: the store's referral id is taken. */
    cr_assert_eq(soffa_policy_needs_lookup(SOFFA_MT_CONCERN_REPORT_FILED), true);
    cr_assert_eq(soffa_policy_needs_lookup(SOFFA_MT_ENROLMENT_CHANGED), false);
    cr_assert_eq(soffa_policy_needs_lookup(SOFFA_MT_KAA_CASE_OPENED), true, "the case register is read");
}

/* ---- Issue 13, rules 7 to 11 ------------------------------------------------------------------ */

static void
t_set_fields(json_t *j, const char *const *set)
{
    for (size_t k = 0; set[k] && set[k + 1]; k += 2) {
        if (!strcmp(set[k + 1], "-")) {   /* "-": remove the field */
            char buf[128];
            snprintf(buf, sizeof buf, "%s", set[k]);
            char *dot = strrchr(buf, '.');
            json_t *obj = j;
            if (dot) {
                *dot = '\0';
                obj = json_object_get(j, buf);
            }
            json_object_del(obj, dot ? dot + 1 : buf);
        } else if (!strcmp(set[k], "consent_id") && !strcmp(set[k + 1], "HANDOVER")) {
            t_set_id(j, "consent_id", T_HANDOVER_CONSENT);
        } else if (!strcmp(set[k], "consent_id") && !strcmp(set[k + 1], "KAA")) {
            t_set_id(j, "consent_id", T_KAA_CONSENT);
        } else if (!strcmp(set[k], "consent_id") && !strcmp(set[k + 1], "SOC")) {
            t_set_id(j, "consent_id", T_SOC_CONSENT);
        } else if (!strcmp(set[k], "measure_started.referral_id") || !strcmp(set[k], "referral_status_changed.referral_id")) {
            const char *v = set[k + 1];
            char *dot = strchr(set[k], '.');
            char obj[40];
            snprintf(obj, sizeof obj, "%.*s", (int) (dot - set[k]), set[k]);
            t_set_id(json_object_get(j, obj), "referral_id", !strcmp(v, "PROV")     ? T_REF_PROV
                                                             : !strcmp(v, "AF")     ? T_REF_AF
                                                             : !strcmp(v, "SOCKAA") ? T_REF_SOC_KAA
                                                                                    : T_SIGNAL);
        } else if (!strcmp(set[k], "kaa_case_reopened.signal_id") && !strcmp(set[k + 1], "ADULT")) {
            t_set_id(json_object_get(j, "kaa_case_reopened"), "signal_id", T_SIGNAL_ADULT);
        } else {
            set_path(j, set[k], set[k + 1]);
        }
    }
}

/* One decision with facts: a message of type from who (subject NULL: the
 * pupil), fields set, what the broker's registers say, and the outcome. */
typedef struct {
    const char *label;
    soffa_msg_type_t type;
    const soffa_identity_t *who;
    const char *subject;
    const char *set[8];
    soffa_policy_facts_t facts;
    soffa_err_t want;
    const char *says;
} t_frow_t;

static void
t_frows(const t_frow_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const t_frow_t *f = &rows[i];
        t_row_t r = {f->type, f->who, f->want, NULL};
        soffa_policy_decision_t dec;
        char why[256] = "";
        soffa_err_t rc = t_decide_with(&r, f->subject, f->set, &f->facts, &dec, why, sizeof why);
        cr_assert_eq(rc, f->want, "%s: got %s (%s), wanted %s", f->label, soffa_errname(rc), why,
                     soffa_errname(f->want));
        if (f->says)
            cr_assert(strstr(why, f->says) != NULL, "%s: the reason '%s' lacks '%s'", f->label, why, f->says);
    }
}

#define OPEN_CASE {.known = true, .open = true, .same_person = true, .kommun = "1419"}
#define CLOSED_CASE {.known = true, .same_person = true, .kommun = "1419", .closed_on = 20261001}

/* Rule 8: open → events → closed, reopened as its own event on a new
 * signal; NOT_REACHED after the routine of attempts; a move names where to. */
Test(policy, issue_13_08_the_case_lifecycle, .init = t_setup, .fini = t_teardown)
{
    const t_frow_t rows[] = {
        {"a new case", SOFFA_MT_KAA_CASE_OPENED, &T_KAA, NULL, {NULL}, {0}, SOFFA_OK, NULL},
        {"a case id in use", SOFFA_MT_KAA_CASE_OPENED, &T_KAA, NULL, {NULL}, {.kase = OPEN_CASE}, SOFFA_ERR_EXISTS,
         "already in use"},
        {"a second open case for the young person", SOFFA_MT_KAA_CASE_OPENED, &T_KAA, NULL, {NULL},
         {.kase = {.person_has_open = true}}, SOFFA_ERR_EXISTS, "already has an open case"},
        {"an event on an open case", SOFFA_MT_OCCUPATION_RECORDED, &T_KAA, NULL, {NULL}, {.kase = OPEN_CASE},
         SOFFA_OK, NULL},
        {"a mapping on an open case", SOFFA_MT_CASE_MAPPED, &T_KAA, NULL, {NULL}, {.kase = OPEN_CASE}, SOFFA_OK, NULL},
        {"a mapping on no case", SOFFA_MT_CASE_MAPPED, &T_KAA, NULL, {NULL}, {0}, SOFFA_ERR_NOT_FOUND,
         "open the case first"},
        {"a mapping on a closed case", SOFFA_MT_CASE_MAPPED, &T_KAA, NULL, {NULL}, {.kase = CLOSED_CASE},
         SOFFA_ERR_NOT_OPEN, "closed on 2026-10-01"},
        {"an event on no case", SOFFA_MT_PLAN_AGREED, &T_KAA, NULL, {NULL}, {0}, SOFFA_ERR_NOT_FOUND,
         "open the case first"},
        {"an event on a closed case", SOFFA_MT_MEASURE_STARTED, &T_KAA, NULL, {NULL}, {.kase = CLOSED_CASE},
         SOFFA_ERR_NOT_OPEN, "closed on 2026-10-01"},
        {"closing a closed case", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL, {NULL}, {.kase = CLOSED_CASE},
         SOFFA_ERR_NOT_OPEN, "reopen"},
        {"an event on another young person's case", SOFFA_MT_CONTACT_ATTEMPTED, &T_KAA, NULL, {NULL},
         {.kase = {.known = true, .open = true, .kommun = "1419"}}, SOFFA_ERR_NOT_OPEN, "another young person"},
        {"an event on another KAA's case", SOFFA_MT_MEASURE_ENDED, &T_KAA, NULL, {NULL},
         {.kase = {.known = true, .open = true, .same_person = true, .kommun = "1415"}}, SOFFA_ERR_NOT_AUTHORISED,
         "municipality 1415"},
        {"NOT_REACHED at the first attempt", SOFFA_MT_CONTACT_ATTEMPTED, &T_KAA, NULL,
         {"contact_attempted.outcome", "NOT_REACHED"}, {.kase = OPEN_CASE}, SOFFA_ERR_BAD_FIELD,
         "after 3 attempts through 2 different channels"},
        {"NOT_REACHED after two letters, by letter", SOFFA_MT_CONTACT_ATTEMPTED, &T_KAA, NULL,
         {"contact_attempted.outcome", "NOT_REACHED", "contact_attempted.channel", "LETTER"},
         {.kase = {.known = true, .open = true, .same_person = true, .kommun = "1419", .failed_attempts = 2,
                   .channels = 1u << 1}}, SOFFA_ERR_BAD_FIELD, "through 1 channel"},
        {"NOT_REACHED after a letter and an SMS, by phone", SOFFA_MT_CONTACT_ATTEMPTED, &T_KAA, NULL,
         {"contact_attempted.outcome", "NOT_REACHED", "contact_attempted.channel", "PHONE"},
         {.kase = {.known = true, .open = true, .same_person = true, .kommun = "1419", .failed_attempts = 2,
                   .channels = (1u << 1) | (1u << 2)}}, SOFFA_OK, NULL},
        {"NOT_REACHED under a routine of five attempts", SOFFA_MT_CONTACT_ATTEMPTED, &T_KAA, NULL,
         {"contact_attempted.outcome", "NOT_REACHED", "contact_attempted.channel", "PHONE"},
         {.kase = {.known = true, .open = true, .same_person = true, .kommun = "1419", .failed_attempts = 2,
                   .channels = (1u << 1) | (1u << 2)}, .not_reached_attempts = 5}, SOFFA_ERR_BAD_FIELD,
         "after 5 attempts"},
        {"moved out without the new municipality", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL,
         {"kaa_case_closed.new_hemkommun", "-"}, {.kase = OPEN_CASE}, SOFFA_ERR_MISSING_FIELD, "EMIGRATED"},
        {"moved out to its own municipality", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL,
         {"kaa_case_closed.new_hemkommun", "1419"}, {.kase = OPEN_CASE}, SOFFA_ERR_BAD_FIELD, "moved out of 1419"},
        {"reopening a closed case on a new signal", SOFFA_MT_KAA_CASE_REOPENED, &T_KAA, NULL, {NULL},
         {.kase = CLOSED_CASE}, SOFFA_OK, NULL},
        {"reopening an open case", SOFFA_MT_KAA_CASE_REOPENED, &T_KAA, NULL, {NULL}, {.kase = OPEN_CASE},
         SOFFA_ERR_NOT_OPEN, "only a closed case"},
        {"reopening on a signal from before the close", SOFFA_MT_KAA_CASE_REOPENED, &T_KAA, NULL, {NULL},
         {.kase = {.known = true, .same_person = true, .kommun = "1419", .closed_seq = 7}}, SOFFA_ERR_NOT_OPEN,
         "came before the case was closed"},
        {"reopening on an unknown signal", SOFFA_MT_KAA_CASE_REOPENED, &T_KAA, NULL,
         {"kaa_case_reopened.signal_id", "0190b5a3-7c1e-7000-8000-000000000001"}, {.kase = CLOSED_CASE},
         SOFFA_ERR_NOT_FOUND, "no signal"},
        {"reopening on another young person's signal", SOFFA_MT_KAA_CASE_REOPENED, &T_KAA, NULL,
         {"kaa_case_reopened.signal_id", "ADULT"}, {.kase = CLOSED_CASE}, SOFFA_ERR_BAD_FIELD, "another young person"},
        {"reopening for a young person of 21", SOFFA_MT_KAA_CASE_REOPENED, &T_KAA, T_ADULT,
         {"kaa_case_reopened.signal_id", "ADULT"}, {.kase = CLOSED_CASE}, SOFFA_ERR_AGE, "turned 20"},
        {"reopening while another case is open", SOFFA_MT_KAA_CASE_REOPENED, &T_KAA, NULL, {NULL},
         {.kase = {.known = true, .same_person = true, .kommun = "1419", .person_has_open = true}},
         SOFFA_ERR_EXISTS, "another open case"},
    };
    t_frows(rows, sizeof rows / sizeof *rows);
    /* Case events are found by their case, many under one id. */
    const t_row_t r = {SOFFA_MT_CONTACT_ATTEMPTED, &T_KAA, SOFFA_OK, "kaa-journal/1419"};
    soffa_policy_decision_t dec;
    char why[256];
    cr_assert_eq(t_decide(&r, &dec, why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert_eq(dec.n_refs, 1);
    cr_assert_eq(dec.refs[0].key[0], SOFFA_REF_CASE);
    cr_assert(dec.refs[0].shared);
}

/* Rule 8: an answer to a referral the broker recorded as EXPIRED is refused. */
Test(policy, issue_13_08_an_expired_referral_takes_no_answers, .init = t_setup, .fini = t_teardown)
{
    const t_row_t r = {SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_AF, SOFFA_OK, "kaa/1419"};
    soffa_policy_decision_t dec;
    char why[256];
    cr_assert_eq(t_decide(&r, &dec, why, sizeof why), SOFFA_OK, "%s", why);
    T_REF_AF_EXPIRED = true;
    cr_assert_eq(t_decide(&r, &dec, why, sizeof why), SOFFA_ERR_NOT_OPEN);
    cr_assert(strstr(why, "EXPIRED"), "%s", why);
}

/* Rule 9: "not our youth, rerouted" names another municipality; a move
 * hands the case on only under a consent that covers it. */
Test(policy, issue_13_09_rerouting_and_the_handover, .init = t_setup, .fini = t_teardown)
{
    const t_frow_t rows[] = {
        {"rerouted to Göteborg", SOFFA_MT_SIGNAL_ACKNOWLEDGED, &T_KAA, NULL,
         {"signal_acknowledged.result", "NOT_HEMKOMMUN_REROUTED", "signal_acknowledged.new_hemkommun", "1480"}, {0},
         SOFFA_OK, NULL},
        {"rerouted to itself", SOFFA_MT_SIGNAL_ACKNOWLEDGED, &T_KAA, NULL,
         {"signal_acknowledged.result", "NOT_HEMKOMMUN_REROUTED", "signal_acknowledged.new_hemkommun", "1419"}, {0},
         SOFFA_ERR_BAD_FIELD, "right home municipality"},
        {"moved out, the fact only", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL, {NULL}, {.kase = OPEN_CASE}, SOFFA_OK,
         NULL},
        {"moved out, with a consent that covers the handover", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL,
         {"consent_id", "HANDOVER"}, {.kase = OPEN_CASE}, SOFFA_OK, NULL},
        {"moved out, with a consent for referrals only", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL,
         {"consent_id", "KAA"}, {.kase = OPEN_CASE}, SOFFA_ERR_CONSENT, "CASE_SUMMARY"},
        {"moved out, with an unknown consent", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL,
         {"consent_id", "0190b5a3-7c1e-7000-8000-000000000002"}, {.kase = OPEN_CASE}, SOFFA_ERR_CONSENT,
         "no consent"},
        {"turned 20, with a consent", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL,
         {"consent_id", "HANDOVER", "kaa_case_closed.reason", "TURNED_20", "kaa_case_closed.new_hemkommun", "-"},
         {.kase = OPEN_CASE}, SOFFA_ERR_BAD_FIELD, "MOVED_OUT"},
    };
    t_frows(rows, sizeof rows / sizeof *rows);
    T_WITHDRAWN = true;
    const t_frow_t withdrawn[] = {
        {"moved out, under a withdrawn consent", SOFFA_MT_KAA_CASE_CLOSED, &T_KAA, NULL, {"consent_id", "HANDOVER"},
         {.kase = OPEN_CASE}, SOFFA_ERR_CONSENT, "withdrawn"},
    };
    t_frows(withdrawn, 1);
    /* A signal is sent on once: a second reroute (two in one read, before
     * the first copy is stored) is refused. */
    T_WITHDRAWN = false;
    T_REROUTED = true;
    const t_frow_t again[] = {
        {"rerouted a second time", SOFFA_MT_SIGNAL_ACKNOWLEDGED, &T_KAA, NULL,
         {"signal_acknowledged.result", "NOT_HEMKOMMUN_REROUTED", "signal_acknowledged.new_hemkommun", "1415"}, {0},
         SOFFA_ERR_EXISTS, "already sent on"},
        {"registered after a reroute", SOFFA_MT_SIGNAL_ACKNOWLEDGED, &T_KAA, NULL, {NULL}, {0}, SOFFA_OK, NULL},
    };
    t_frows(again, 2);
    T_REROUTED = false;
}

static const char *T_SAME_A, *T_SAME_B;

static bool
t_same_person(void *ctx, const char *a, const char *b)
{
    (void) ctx;
    return (!strcmp(a, T_SAME_A) && !strcmp(b, T_SAME_B)) || (!strcmp(a, T_SAME_B) && !strcmp(b, T_SAME_A));
}

/* Rule 10: an identity change is about the new number, from another one,
 * and agrees with the alias map; after it, the policy follows the person:
 * the consent given under the old number covers the new. */
Test(policy, issue_13_10_identity_changes_and_the_alias_map, .init = t_setup, .fini = t_teardown)
{
    char samnr[13];
    tk_old_samnr(samnr);
    const t_frow_t rows[] = {
        {"a samordningsnummer replaced", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, NULL, {NULL},
         {.old_known_here = true}, SOFFA_OK, NULL},
        {"by a KAA that holds nothing under the old number", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, NULL, {NULL},
         {0}, SOFFA_ERR_NOT_AUTHORISED, "holds nothing under the old number"},
        {"from a reserve number", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, NULL,
         {"subject_identity_changed.old_id.id", "20080314TF10", "subject_identity_changed.old_id.id_type",
          "LOCAL_RESERVE"},
         {.old_known_here = true}, SOFFA_ERR_BAD_FIELD, "reserve number"},
        {"about the old number", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, samnr,
         {"subject_identity_changed.new_id.id", T_PUPIL, "subject_identity_changed.new_id.id_type", "PNR"}, {0},
         SOFFA_ERR_BAD_FIELD, "under the new number"},
        {"old and new the same", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, NULL,
         {"subject_identity_changed.old_id.id", T_PUPIL, "subject_identity_changed.old_id.id_type", "PNR"}, {0},
         SOFFA_ERR_BAD_FIELD, "the same"},
        {"recorded twice", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, NULL, {NULL},
         {.old_replaced = true, .old_replaced_by_new = true}, SOFFA_ERR_EXISTS, "already recorded"},
        {"the old number replaced before", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, NULL, {NULL},
         {.old_replaced = true}, SOFFA_ERR_EXISTS, "already replaced by another"},
        {"to a number replaced since", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, NULL, {NULL}, {.new_replaced = true},
         SOFFA_ERR_BAD_FIELD, "latest number"},
        {"by another municipality's KAA", SOFFA_MT_SUBJECT_IDENTITY_CHANGED, &T_KAA, NULL,
         {"subject.hemkommun", "1415"}, {0}, SOFFA_ERR_NOT_AUTHORISED, NULL},
    };
    t_frows(rows, sizeof rows / sizeof *rows);
    /* The consent was given under T_PUPIL; the referral names the new number. */
    char newp[13];
    tk_pnr(soffa_date_today().year - 18, 3, 15, 286, 0, newp);
    T_SAME_A = T_PUPIL;
    T_SAME_B = newp;
    const t_frow_t follow[] = {
        {"a referral under the new number, no alias", SOFFA_MT_REFERRAL_SENT, &T_KAA, newp, {NULL}, {0},
         SOFFA_ERR_CONSENT, "another person"},
        {"a referral under the new number, aliased", SOFFA_MT_REFERRAL_SENT, &T_KAA, newp, {NULL},
         {.same_person = t_same_person}, SOFFA_OK, NULL},
        {"a status about the new number", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_AF, newp, {NULL},
         {.same_person = t_same_person}, SOFFA_OK, NULL},
        {"a status about a third person", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_AF, T_ADULT, {NULL},
         {.same_person = t_same_person}, SOFFA_ERR_BAD_FIELD, "another person"},
    };
    t_frows(follow, sizeof follow / sizeof *follow);
}

/* Rule 7: what rests on a consent is looked at again when delivered. */
Test(policy, issue_13_07_consent_is_checked_again_at_delivery, .init = t_setup, .fini = t_teardown)
{
    const struct {
        const char *label;
        soffa_msg_type_t type;
        soffa_role_t role;
        const char *mailbox;
        const char *set[6];
        bool withdrawn, expired_ref, far_future;
        bool want;
    } rows[] = {
        {"an at-risk notice, consent active", SOFFA_MT_AT_RISK_NOTICE, SOFFA_ROLE_SCHOOL, "kaa/1419", {NULL}, false,
         false, false, true},
        {"an at-risk notice, consent withdrawn", SOFFA_MT_AT_RISK_NOTICE, SOFFA_ROLE_SCHOOL, "kaa/1419", {NULL}, true,
         false, false, false},
        {"an at-risk notice, consent expired", SOFFA_MT_AT_RISK_NOTICE, SOFFA_ROLE_SCHOOL, "kaa/1419", {NULL}, false,
         false, true, false},
        {"an at-risk notice, consent unknown", SOFFA_MT_AT_RISK_NOTICE, SOFFA_ROLE_SCHOOL, "kaa/1419",
         {"consent_id", "0190b5a3-7c1e-7000-8000-000000000003"}, false, false, false, false},
        {"a referral", SOFFA_MT_REFERRAL_SENT, SOFFA_ROLE_KAA, "af/1419", {NULL}, false, false, false, true},
        {"a referral, consent withdrawn", SOFFA_MT_REFERRAL_SENT, SOFFA_ROLE_KAA, "af/1419", {NULL}, true, false,
         false, false},
        {"a referral that expired", SOFFA_MT_REFERRAL_SENT, SOFFA_ROLE_KAA, "af/1419", {NULL}, false, true, false,
         false},
        {"status ACCEPTED, consent withdrawn", SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_AF, "kaa/1419", {NULL},
         true, false, false, false},
        {"status RECEIVED, consent withdrawn", SOFFA_MT_REFERRAL_STATUS_CHANGED, SOFFA_ROLE_AF, "kaa/1419",
         {"referral_status_changed.status", "RECEIVED"}, true, false, false, true},
        {"a case record handed on under a consent, withdrawn", SOFFA_MT_OCCUPATION_RECORDED, SOFFA_ROLE_KAA,
         "kaa/1480", {"consent_id", "HANDOVER"}, true, false, false, false},
        {"a case record handed on under a consent", SOFFA_MT_OCCUPATION_RECORDED, SOFFA_ROLE_KAA, "kaa/1480",
         {"consent_id", "HANDOVER"}, false, false, false, true},
        {"the notice of a move (no consent)", SOFFA_MT_KAA_CASE_CLOSED, SOFFA_ROLE_KAA, "kaa/1480", {NULL}, true,
         false, false, true},
        {"the broker's withdrawal notice", SOFFA_MT_REFERRAL_WITHDRAWN, SOFFA_ROLE_BROKER, "af/1419", {NULL}, true,
         false, false, true},
        {"an absence report", SOFFA_MT_ABSENCE_REPORTED, SOFFA_ROLE_SCHOOL, "kaa/1419", {NULL}, true, false, false,
         true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        json_t *j = t_json(rows[i].type, T_PUPIL);
        json_t *pl = json_object_get(j, soffa_msg_type_name(rows[i].type));
        if (rows[i].type == SOFFA_MT_AT_RISK_NOTICE)
            t_set_id(j, "consent_id", T_SCHOOL_CONSENT);
        if (rows[i].type == SOFFA_MT_REFERRAL_SENT || rows[i].type == SOFFA_MT_REFERRAL_STATUS_CHANGED) {
            t_set_id(j, "consent_id", T_KAA_CONSENT);
            t_set_id(pl, "referral_id", T_REF_AF);
        }
        t_set_fields(j, rows[i].set);
        char *s = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        soffa_msg_t *m = NULL;
        char why[256] = "";
        cr_assert_eq(soffa_msg_from_json(s, &m, why, sizeof why), SOFFA_OK, "%s: %s", rows[i].label, why);
        free(s);
        soffa_msg_view_t v;
        soffa_msg_view(m, &v);
        T_WITHDRAWN = rows[i].withdrawn;
        T_REF_AF_EXPIRED = rows[i].expired_ref;
        soffa_date_t day = soffa_date_today();
        if (rows[i].far_future)
            day.year += 2;
        bool ok = soffa_policy_deliverable(&v, rows[i].role, rows[i].mailbox, day, NULL, t_find, NULL);
        cr_assert_eq(ok, rows[i].want, "%s: deliverable %d", rows[i].label, ok);
        soffa_msg_destroy(&m);
    }
    cr_assert(soffa_policy_delivery_checked(SOFFA_MT_AT_RISK_NOTICE));
    cr_assert(soffa_policy_delivery_checked(SOFFA_MT_REFERRAL_STATUS_CHANGED));
    cr_assert_not(soffa_policy_delivery_checked(SOFFA_MT_ABSENCE_REPORTED));
}

/* Rule 11: each data controller reads its own; an auditor's scope stays
 * within one unless the configuration says otherwise. */
Test(policy, issue_13_11_data_controllers_and_auditor_scopes, .init = t_setup, .fini = t_teardown)
{
    static const char *const map[][2] = {
        {"kaa/1419", "1419"}, {"kaa-journal/1419", "1419"}, {"social/1419", "1419"}, {"af/1419", "af"},
        {"af/1415", "af"}, {"school/school-1415", "school/school-1415"},
        {"school-journal/school-1415", "school/school-1415"}, {"audit/access/1419", "1419"},
        {"audit/access/af", "af"}, {"audit/access", "soffa"}, {"audit/checkpoint", ""},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        char c[SOFFA_NAME_MAX];
        soffa_policy_controller(map[i][0], c);
        cr_assert_str_eq(c, map[i][1], "%s", map[i][0]);
    }
    char m[SOFFA_NAME_MAX];
    soffa_policy_access_mailbox("1419", m);
    cr_assert_str_eq(m, "audit/access/1419");

    soffa_identity_t all[3];
    all[0] = T_SCHOOL;
    all[1] = T_KAA;
    all[2] = T_SCHOOL;
    snprintf(all[2].name, sizeof all[2].name, "school-1480");
    const struct {
        const char *scope;
        bool span;
        soffa_err_t want;
        const char *controller;
        const char *says;
    } rows[] = {
        {"kaa/1419, kaa-journal/1419, social/1419", false, SOFFA_OK, "1419", NULL},
        {"kaa*/1419", false, SOFFA_OK, "1419", NULL},
        {"*/1419", false, SOFFA_ERR_CONFIG, NULL, "1419 and af"},
        {"af/*", false, SOFFA_OK, "af", NULL},
        {"school/school-1415, school-journal/school-1415", false, SOFFA_OK, "school/school-1415", NULL},
        {"*/1419, af/*", false, SOFFA_ERR_CONFIG, NULL, "span_controllers = yes"},
        {"kaa/1419, audit/access", false, SOFFA_ERR_CONFIG, NULL, "soffa"},
        {"school/*", false, SOFFA_ERR_CONFIG, NULL, "school/school-1480"},
        {"*", false, SOFFA_ERR_CONFIG, NULL, "more than one data controller"},
        {"*", true, SOFFA_OK, "", NULL},
        {"*/1419, af/*", true, SOFFA_OK, "", NULL},
        {"nothing/*", false, SOFFA_ERR_CONFIG, NULL, "covers no mailbox"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        soffa_identity_t a = T_AUDIT;
        snprintf(a.scope, sizeof a.scope, "%s", rows[i].scope);
        a.span_controllers = rows[i].span;
        char why[300] = "";
        soffa_err_t rc = soffa_policy_scope_check(&a, all, 3, why, sizeof why);
        cr_assert_eq(rc, rows[i].want, "%s: %s (%s)", rows[i].scope, soffa_errname(rc), why);
        if (rows[i].controller)
            cr_assert_str_eq(a.controller, rows[i].controller, "%s", rows[i].scope);
        if (rows[i].says)
            cr_assert(strstr(why, rows[i].says), "%s: %s", rows[i].scope, why);
    }
    /* An auditor of Tjörn reads Tjörn's access log, no one else's. */
    soffa_identity_t a = T_AUDIT;
    snprintf(a.scope, sizeof a.scope, "kaa/1419, social/1419");
    cr_assert_eq(soffa_policy_scope_check(&a, all, 3, NULL, 0), SOFFA_OK);
    cr_assert(soffa_policy_may_replay(&a, "audit/access/1419"));
    cr_assert_not(soffa_policy_may_replay(&a, "audit/access/1415"));
    cr_assert_not(soffa_policy_may_replay(&a, "audit/access/af"));
    cr_assert_not(soffa_policy_may_replay(&a, "audit/access"));
}

/* ---- The law at the broker (issue 13): one row per rule and exception -------------------- */

/* The rows below leave their trailing optional columns (a fixed today, dates
 * moved back, other facts) out, zero as C says; the warning about it would
 * only make every row longer. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* Consents of the fake store, by id: recorded by kaa-1419 (or school-1415)
 * for L_PUPIL, valid today, with the scope and grants given. */
#define L_FULL "01900000-0000-7000-8000-00000000c001"          /* AF, social, KAA; everything */
#define L_NO_TEXT "01900000-0000-7000-8000-00000000c002"       /* ... but no SUMMARY_TEXT */
#define L_NO_IDENTITY "01900000-0000-7000-8000-00000000c003"   /* ... but no IDENTITY */
#define L_GUARDIAN "01900000-0000-7000-8000-00000000c004"      /* given by a guardian alone */
#define L_SCHOOL "01900000-0000-7000-8000-00000000c005"        /* a school's: KAA, REFERRAL, all categories */
#define L_SCHOOL_NO_OCC "01900000-0000-7000-8000-00000000c006" /* ... without OCCUPATION */
#define L_SCHOOL_FEEDBACK "01900000-0000-7000-8000-00000000c007"   /* ... purpose STATUS_FEEDBACK only */
#define L_SCHOOL_NO_TEXT "01900000-0000-7000-8000-00000000c008"    /* ... without SUMMARY_TEXT */
#define L_NO_CONTACT "01900000-0000-7000-8000-00000000c009"    /* AF, social; no CONTACT */
#define L_SCHOOL_Y15 "01900000-0000-7000-8000-00000000c00a"    /* a school's for L_15, the pupil alone (old record) */
#define L_SCHOOL_G15 "01900000-0000-7000-8000-00000000c00b"    /* ... the pupil and a guardian */
#define L_REF_AF "01900000-0000-7000-8000-00000000f001"        /* kaa-1419's referral to af/1419 on L_NO_TEXT */
#define L_SOCIAL_MSG "01900000-0000-7000-8000-00000000d001"    /* a status social services sent kaa-1419 */

static const struct {
    const char *id, *recorder, *recipients, *purposes, *categories, *grants;
    int age;                                       /* 15: for L_15; else for L_PUPIL */
} L_STORE[] = {
    {L_FULL, "kaa", "ARBETSFORMEDLINGEN,SOCIAL_SERVICES,KAA", "REFERRAL,STATUS_FEEDBACK",
     "IDENTITY,CONTACT,OCCUPATION,MEASURES,SUMMARY_TEXT", "YOUTH"},
    {L_NO_TEXT, "kaa", "ARBETSFORMEDLINGEN,SOCIAL_SERVICES", "REFERRAL", "IDENTITY,CONTACT,OCCUPATION", "YOUTH"},
    {L_NO_IDENTITY, "kaa", "ARBETSFORMEDLINGEN,SOCIAL_SERVICES", "REFERRAL", "CONTACT,SUMMARY_TEXT", "YOUTH"},
    {L_GUARDIAN, "kaa", "ARBETSFORMEDLINGEN,SOCIAL_SERVICES", "REFERRAL", "IDENTITY,CONTACT,SUMMARY_TEXT", "GUARDIAN"},
    {L_SCHOOL, "school", "KAA", "REFERRAL", "IDENTITY,OCCUPATION,SUMMARY_TEXT", "YOUTH"},
    {L_SCHOOL_NO_OCC, "school", "KAA", "REFERRAL", "IDENTITY,SUMMARY_TEXT", "YOUTH"},
    {L_SCHOOL_FEEDBACK, "school", "KAA", "STATUS_FEEDBACK", "IDENTITY,OCCUPATION,SUMMARY_TEXT", "YOUTH"},
    {L_SCHOOL_NO_TEXT, "school", "KAA", "REFERRAL", "IDENTITY,OCCUPATION", "YOUTH"},
    {L_NO_CONTACT, "kaa", "ARBETSFORMEDLINGEN,SOCIAL_SERVICES", "REFERRAL", "IDENTITY,SUMMARY_TEXT", "YOUTH"},
    {L_SCHOOL_Y15, "school", "KAA", "REFERRAL", "IDENTITY,OCCUPATION,MEASURES", "YOUTH", 15},
    {L_SCHOOL_G15, "school", "KAA", "REFERRAL", "IDENTITY,OCCUPATION,MEASURES", "YOUTH,GUARDIAN", 15},
};

static char L_PUPIL[13];                          /* 18, the subject of every stored consent */
static char L_12[13], L_15[13], L_17[13], L_19[13], L_20[13], L_25[13];   /* that age, a birthday 30 days ago */
static char L_2010[13];                           /* born 2010-03-01: turns 16 in 2026 */
static char L_2010_DEC[13];                       /* born 2010-12-31: 15 when compulsory school ends in 2026 */
static char L_2006[13];                           /* born 2006-07-01: 20 on 2026-07-01 */
static char L_2008[13];                           /* born 2008-07-01: 18 on 2026-07-01 */

static void
l_age(int years, int birth_no, char out[13])
{
    soffa_date_t d = soffa_date_local(soffa_now_us() - 30 * 86400000000LL);
    tk_pnr(d.year - years, d.month, d.day > 28 && d.month == 2 ? 28 : d.day, birth_no, 0, out);
}

static void
l_setup(void)
{
    t_setup();
    l_age(18, 271, L_PUPIL);
    l_age(12, 112, L_12);
    l_age(15, 115, L_15);
    l_age(17, 117, L_17);
    l_age(19, 119, L_19);
    l_age(20, 120, L_20);
    l_age(25, 125, L_25);
    tk_pnr(2010, 3, 1, 310, 0, L_2010);
    tk_pnr(2010, 12, 31, 312, 0, L_2010_DEC);
    tk_pnr(2006, 7, 1, 306, 0, L_2006);
    tk_pnr(2008, 7, 1, 308, 0, L_2008);
}

/* Sets `path` of message j from text: a payload field when the path starts
 * with the payload's name, else an envelope field (coerced by the schema). */
static void
l_set(json_t *j, soffa_msg_type_t type, const char *path, const char *text)
{
    const char *tname = soffa_msg_type_name(type);
    size_t n = strlen(tname);
    char why[256] = "";
    soffa_err_t rc = !strncmp(path, tname, n) && path[n] == '.'
                         ? soffa_msg_json_set(json_object_get(j, tname), tname, path + n + 1, text, why, sizeof why)
                         : soffa_msg_json_set(j, "message", path, text, why, sizeof why);
    cr_assert_eq(rc, SOFFA_OK, "%s = %s: %s", path, text, why);
}

static soffa_err_t
l_find(void *ctx, soffa_ref_kind_t kind, const uint8_t id[16], soffa_policy_ref_t *out)
{
    (void) ctx;
    memset(out, 0, sizeof *out);
    char text[SOFFA_UUID_STR];
    soffa_uuid_format(id, text);
    json_t *j = NULL;
    bool school = false;
    const char *mailbox = "kaa-journal/1419", *sender = "kaa-1419";
    soffa_role_t role = SOFFA_ROLE_KAA;
    for (size_t i = 0; kind == SOFFA_REF_CONSENT && i < sizeof L_STORE / sizeof *L_STORE; i++) {
        if (strcmp(text, L_STORE[i].id) != 0)
            continue;
        j = t_json(SOFFA_MT_CONSENT_RECORDED, L_STORE[i].age == 15 ? L_15 : L_PUPIL);
        l_set(j, SOFFA_MT_CONSENT_RECORDED, "consent_recorded.consent_id", text);
        l_set(j, SOFFA_MT_CONSENT_RECORDED, "consent_id", text);
        l_set(j, SOFFA_MT_CONSENT_RECORDED, "consent_recorded.scope.recipients", L_STORE[i].recipients);
        l_set(j, SOFFA_MT_CONSENT_RECORDED, "consent_recorded.scope.purposes", L_STORE[i].purposes);
        l_set(j, SOFFA_MT_CONSENT_RECORDED, "consent_recorded.scope.data_categories", L_STORE[i].categories);
        l_set(j, SOFFA_MT_CONSENT_RECORDED, "consent_recorded.granted_by", L_STORE[i].grants);
        char from[11], to[11];
        soffa_date_t t = soffa_date_today();
        soffa_date_format(t, from);
        soffa_date_format(soffa_date_local(soffa_now_us() + 100 * 86400000000LL), to);
        l_set(j, SOFFA_MT_CONSENT_RECORDED, "consent_recorded.valid_from", from);
        l_set(j, SOFFA_MT_CONSENT_RECORDED, "consent_recorded.valid_to", to);
        school = !strcmp(L_STORE[i].recorder, "school");
    }
    if (school)
        mailbox = "school-journal/school-1415", sender = "school-1415", role = SOFFA_ROLE_SCHOOL;
    if (kind == SOFFA_REF_SOCIAL && !strcmp(text, L_SOCIAL_MSG)) {
        j = t_json(SOFFA_MT_REFERRAL_STATUS_CHANGED, L_PUPIL);
        l_set(j, SOFFA_MT_REFERRAL_STATUS_CHANGED, "message_id", "new");
        mailbox = "kaa/1419", sender = "social-1419", role = SOFFA_ROLE_SOCIAL;
    }
    if (kind == SOFFA_REF_REFERRAL && !strcmp(text, L_REF_AF)) {
        j = t_json(SOFFA_MT_REFERRAL_SENT, L_PUPIL);
        l_set(j, SOFFA_MT_REFERRAL_SENT, "referral_sent.referral_id", text);
        l_set(j, SOFFA_MT_REFERRAL_SENT, "consent_id", L_NO_TEXT);
        mailbox = "af/1419", sender = "kaa-1419", role = SOFFA_ROLE_KAA;
    }
    if (!j)
        return SOFFA_ERR_NOT_FOUND;   /* nothing else, and no withdrawal */
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char why[256] = "";
    cr_assert_eq(soffa_msg_from_json(s, &out->msg, why, sizeof why), SOFFA_OK, "fake store: %s", why);
    free(s);
    soffa_msg_view(out->msg, &out->view);
    out->seq = 1;
    snprintf(out->sender, sizeof out->sender, "%s", sender);
    out->sender_role = role;
    snprintf(out->sender_kommun, sizeof out->sender_kommun, "%s", role == SOFFA_ROLE_SCHOOL ? "1415" : "1419");
    snprintf(out->mailbox, sizeof out->mailbox, "%s", mailbox);
    return SOFFA_OK;
}

/* One decision. The message is the fixture of `type` about `subject`
 * (NULL: L_PUPIL) resting on consent `consent` (NULL: the fixture's own)
 * with up to four fields set; `today` (NULL: the real one) is the day the
 * broker decides on, and the message happened on it; `occurred` and `event`
 * move the occurrence and an enrolment's or absence's date that many days
 * back (0: as the fixture has them; negative: ahead). */
typedef struct {
    const char *label;
    const soffa_identity_t *who;
    soffa_msg_type_t type;
    const char *subject;
    const char *consent;
    const char *set[8];
    soffa_err_t want;
    const char *says;            /* part of the reason, when refused */
    const char *today;
    int occurred, event;
    const soffa_policy_facts_t *facts;   /* NULL: FACTS */
} l_row_t;

static soffa_err_t
l_decide(const l_row_t *r, soffa_policy_decision_t *dec, char *why, size_t whylen)
{
    json_t *j = t_json(r->type, r->subject ? r->subject : L_PUPIL);
    if (r->consent)
        l_set(j, r->type, "consent_id", r->consent);
    if (r->type == SOFFA_MT_CONSENT_RECORDED)
        json_object_set(j, "consent_id", json_object_get(json_object_get(j, "consent_recorded"), "consent_id"));
    soffa_date_t today = soffa_date_today();
    int64_t base = soffa_now_us() - 3600000000LL;
    if (r->today) {
        cr_assert(soffa_date_parse(r->today, &today));
        base = soffa_date_local_start_us(today) + 12 * 3600000000LL;
    }
    char num[32], day[11];
    if (r->today || r->occurred) {
        snprintf(num, sizeof num, "%lld", (long long) (base - r->occurred * 86400000000LL));
        l_set(j, r->type, "occurred_at_us", num);
    }
    if (r->event) {
        soffa_date_format(soffa_date_local(base - r->event * 86400000000LL), day);
        l_set(j, r->type,
              r->type == SOFFA_MT_ENROLMENT_CHANGED ? "enrolment_changed.effective_date" : "absence_reported.period_from",
              day);
        if (r->type == SOFFA_MT_ABSENCE_REPORTED)
            l_set(j, r->type, "absence_reported.period_to", day);
    }
    for (int k = 0; k < 8 && r->set[k]; k += 2)
        l_set(j, r->type, r->set[k], r->set[k + 1]);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    soffa_msg_t *m = NULL;
    cr_assert_eq(soffa_msg_from_json(s, &m, why, whylen), SOFFA_OK, "%s: %s", r->label, why);
    cr_assert_eq(soffa_msg_validate(m, 0, why, whylen), SOFFA_OK, "%s: %s", r->label, why);
    free(s);
    why[0] = '\0';
    /* The broker's case register: an event names an open case of the
     * sender's, a reopening a closed one, an opening a new one. */
    soffa_policy_facts_t facts = FACTS;
    if (r->type != SOFFA_MT_KAA_CASE_OPENED)
        facts.kase = (soffa_policy_case_t){.known = true, .open = r->type != SOFFA_MT_KAA_CASE_REOPENED,
                                           .same_person = true, .kommun = "1419"};
    soffa_err_t rc = soffa_policy_decide(r->who, m, today, r->facts ? r->facts : &facts, l_find, NULL, dec, why, whylen);
    soffa_msg_destroy(&m);
    return rc;
}

static void
l_rows(const l_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const l_row_t *r = &rows[i];
        soffa_policy_decision_t dec;
        char why[256];
        soffa_err_t rc = l_decide(r, &dec, why, sizeof why);
        cr_assert_eq(rc, r->want, "%s: got %s (%s), wanted %s", r->label, soffa_errname(rc), why,
                     soffa_errname(r->want));
        if (r->says)
            cr_assert(strstr(why, r->says) != NULL, "%s: the reason '%s' lacks '%s'", r->label, why, r->says);
        /* A reason fits an ERROR frame whole (255 bytes) and says what to do. */
        cr_assert(strlen(why) < 255, "%s: the reason is %zu bytes: %s", r->label, strlen(why), why);
        if (rc != SOFFA_OK)
            cr_assert(strlen(why) > 20, "%s: no reason given", r->label);
    }
}

#define L_N(rows) (sizeof rows / sizeof *rows)

/* Rule 1: the KAA's target group, young people who have left compulsory
 * school and are under 20 (SL 29:9), judged today; closing a case because
 * the young person turned 20 stays allowed. */
Test(policy, issue_13_01_the_kaa_target_group, .init = l_setup, .fini = t_teardown)
{
    const l_row_t rows[] = {
        {"a case for an 18-year-old", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, NULL, NULL, {NULL}, SOFFA_OK, NULL},
        {"a case for a 19-year-old", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_19, NULL, {NULL}, SOFFA_OK, NULL},
        {"a case for a 17-year-old", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_17, NULL, {NULL}, SOFFA_OK, NULL},
        {"a case for a 12-year-old", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_12, NULL, {NULL}, SOFFA_ERR_AGE,
         "left compulsory school"},
        {"a case for a 15-year-old in year 9", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_15, NULL, {NULL}, SOFFA_ERR_AGE,
         "1 July of the year they turn 16"},
        {"a case for a 25-year-old", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_25, NULL, {NULL}, SOFFA_ERR_AGE,
         "under 20 only (SL 29:9); this young person is 25"},
        {"a case for a 20-year-old", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_20, NULL, {NULL}, SOFFA_ERR_AGE, "is 20"},
        {"a contact attempt with a 20-year-old", &T_KAA, SOFFA_MT_CONTACT_ATTEMPTED, L_20, NULL, {NULL},
         SOFFA_ERR_AGE, "close the case as TURNED_20"},
        {"an occupation of a 12-year-old", &T_KAA, SOFFA_MT_OCCUPATION_RECORDED, L_12, NULL, {NULL}, SOFFA_ERR_AGE,
         NULL},
        {"a plan for a 25-year-old", &T_KAA, SOFFA_MT_PLAN_AGREED, L_25, NULL, {NULL}, SOFFA_ERR_AGE, NULL},
        {"a measure for a 25-year-old", &T_KAA, SOFFA_MT_MEASURE_STARTED, L_25, NULL, {NULL}, SOFFA_ERR_AGE, NULL},
        {"a measure ended for a 12-year-old", &T_KAA, SOFFA_MT_MEASURE_ENDED, L_12, NULL, {NULL}, SOFFA_ERR_AGE,
         NULL},
        {"exception: closed because the young person turned 20", &T_KAA, SOFFA_MT_KAA_CASE_CLOSED, L_20, NULL,
         {"kaa_case_closed.reason", "TURNED_20", "kaa_case_closed.new_hemkommun", ""}, SOFFA_OK, NULL},
        {"exception: a 25-year-old's case closed as TURNED_20", &T_KAA, SOFFA_MT_KAA_CASE_CLOSED, L_25, NULL,
         {"kaa_case_closed.reason", "TURNED_20", "kaa_case_closed.new_hemkommun", ""}, SOFFA_OK, NULL},
        {"a 20-year-old's case closed for another reason", &T_KAA, SOFFA_MT_KAA_CASE_CLOSED, L_20, NULL, {NULL},
         SOFFA_ERR_AGE, "TURNED_20"},
        {"a 19-year-old's case closed as MOVED_OUT", &T_KAA, SOFFA_MT_KAA_CASE_CLOSED, L_19, NULL, {NULL}, SOFFA_OK,
         NULL},
        {"a KAA consent for a 25-year-old", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_25, NULL, {NULL}, SOFFA_ERR_AGE,
         "records consents for young people under 20"},
        {"a KAA referral of a 25-year-old", &T_KAA, SOFFA_MT_REFERRAL_SENT, L_25, L_FULL, {NULL}, SOFFA_ERR_AGE,
         "refers young people under 20"},
        {"a KAA referral of a 12-year-old", &T_KAA, SOFFA_MT_REFERRAL_SENT, L_12, L_FULL, {NULL}, SOFFA_ERR_AGE,
         "left compulsory school"},
        /* The boundary: the school year ends on 30 June of the year a young person turns 16. */
        {"16 in March, on 30 June of that year: still in year 9", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_2010, NULL,
         {NULL}, SOFFA_ERR_AGE, "2026-07-01", "2026-06-30"},
        {"16 in March, on 1 July: left", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_2010, NULL, {NULL}, SOFFA_OK, NULL,
         "2026-07-01"},
        {"15 on 1 July, turning 16 on 31 December: left with the class", &T_KAA, SOFFA_MT_KAA_CASE_OPENED,
         L_2010_DEC, NULL, {NULL}, SOFFA_OK, NULL, "2026-07-01"},
        {"19 on the day before the 20th birthday", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_2006, NULL, {NULL}, SOFFA_OK,
         NULL, "2026-06-30"},
        {"20 on the birthday", &T_KAA, SOFFA_MT_KAA_CASE_OPENED, L_2006, NULL, {NULL}, SOFFA_ERR_AGE, "is 20",
         "2026-07-01"},
        /* Not the KAA's own: school signals, acknowledgements, withdrawals, concern reports. */
        {"an enrolment signal about a 15-year-old", &T_SCHOOL, SOFFA_MT_ENROLMENT_CHANGED, L_15, NULL, {NULL},
         SOFFA_OK, NULL},
        {"a KAA concern report about a 12-year-old", &T_KAA, SOFFA_MT_CONCERN_REPORT_FILED, L_12, NULL, {NULL},
         SOFFA_OK, NULL},
    };
    l_rows(rows, L_N(rows));
}

/* Rule 2: who may consent (DOMAIN.md §2.3, OSL 12:2), on today's age; the
 * stated age agrees with the identity number on the day of the grant. */
Test(policy, issue_13_02_who_may_consent, .init = l_setup, .fini = t_teardown)
{
    const l_row_t rows[] = {
        {"19, the young person", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_19, NULL,
         {"consent_recorded.youth_age_at_grant", "19"}, SOFFA_OK, NULL},
        {"19, a guardian alone", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_19, NULL,
         {"consent_recorded.youth_age_at_grant", "19", "consent_recorded.granted_by", "GUARDIAN"}, SOFFA_ERR_CONSENT,
         "from 18 only they can consent"},
        {"19, the young person with a guardian", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_19, NULL,
         {"consent_recorded.youth_age_at_grant", "19", "consent_recorded.granted_by", "YOUTH,GUARDIAN"},
         SOFFA_ERR_CONSENT, "no longer"},
        {"19, a god man", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_19, NULL,
         {"consent_recorded.youth_age_at_grant", "19", "consent_recorded.granted_by", "YOUTH,GOD_MAN"},
         SOFFA_ERR_CONSENT, "god man"},
        {"17, the young person, maturity assessed", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_17, NULL,
         {"consent_recorded.youth_age_at_grant", "17"}, SOFFA_OK, NULL},
        {"17, the young person, no maturity assessment", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_17, NULL,
         {"consent_recorded.youth_age_at_grant", "17", "consent_recorded.maturity_assessed", "false"},
         SOFFA_ERR_CONSENT, "maturity_assessed"},
        {"17, with a guardian, no maturity assessment", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_17, NULL,
         {"consent_recorded.youth_age_at_grant", "17", "consent_recorded.maturity_assessed", "false",
          "consent_recorded.granted_by", "YOUTH,GUARDIAN"}, SOFFA_OK, NULL},
        {"17, with the god man of an unaccompanied minor", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_17, NULL,
         {"consent_recorded.youth_age_at_grant", "17", "consent_recorded.maturity_assessed", "false",
          "consent_recorded.granted_by", "YOUTH,GOD_MAN"}, SOFFA_OK, NULL},
        {"17, a guardian alone", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_17, NULL,
         {"consent_recorded.youth_age_at_grant", "17", "consent_recorded.granted_by", "GUARDIAN"}, SOFFA_ERR_CONSENT,
         "their own consent is needed"},
        {"15 (a school's consent), the young person alone", &T_SCHOOL, SOFFA_MT_CONSENT_RECORDED, L_15, NULL,
         {"consent_recorded.youth_age_at_grant", "15", "consent_recorded.granted_by", "YOUTH"}, SOFFA_ERR_CONSENT,
         "under 16 a guardian"},
        {"15, a guardian", &T_SCHOOL, SOFFA_MT_CONSENT_RECORDED, L_15, NULL,
         {"consent_recorded.youth_age_at_grant", "15", "consent_recorded.granted_by", "GUARDIAN"}, SOFFA_OK, NULL},
        {"15, a god man in the guardian's place", &T_SCHOOL, SOFFA_MT_CONSENT_RECORDED, L_15, NULL,
         {"consent_recorded.youth_age_at_grant", "15", "consent_recorded.granted_by", "GOD_MAN,YOUTH"}, SOFFA_OK,
         NULL},
        {"the stated age disagrees with the identity number", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_19, NULL,
         {"consent_recorded.youth_age_at_grant", "17"}, SOFFA_ERR_BAD_FIELD, "was 19 on"},
        {"a stated age of 18 for a 17-year-old", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_17, NULL,
         {"consent_recorded.youth_age_at_grant", "18"}, SOFFA_ERR_BAD_FIELD, "youth_age_at_grant"},
        /* Given on 2026-06-30 at 17 with a guardian, received on the 18th birthday. */
        {"the stated age is the age on the day of the grant", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_2008, NULL,
         {"consent_recorded.youth_age_at_grant", "17"}, SOFFA_OK, NULL, "2026-07-01", 1},
        {"... not the age on the day of receipt", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_2008, NULL,
         {"consent_recorded.youth_age_at_grant", "18"}, SOFFA_ERR_BAD_FIELD, "was 17 on 2026-06-30", "2026-07-01", 1},
        {"who may consent is judged on the day of receipt", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_2008, NULL,
         {"consent_recorded.youth_age_at_grant", "17", "consent_recorded.granted_by", "YOUTH,GUARDIAN"},
         SOFFA_ERR_CONSENT, "is 18: from 18 only they", "2026-07-01", 1},
        {"a grant 30 days back: the age then", &T_KAA, SOFFA_MT_CONSENT_RECORDED, L_19, NULL,
         {"consent_recorded.youth_age_at_grant", "18"}, SOFFA_OK, NULL, NULL, 31},
        /* At use: a guardian's consent no longer speaks for an 18-year-old. */
        {"a referral on a guardian's consent, the young person now 18", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL,
         L_GUARDIAN, {NULL}, SOFFA_ERR_CONSENT, "given without the young person, who is now 18"},
        {"a referral on the young person's own consent", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_FULL, {NULL}, SOFFA_OK,
         NULL},
    };
    l_rows(rows, L_N(rows));
}

/* Rule 3: ages on the day soffa receives the message; dates only so far back. */
Test(policy, issue_13_03_dates_soffa_can_trust, .init = l_setup, .fini = t_teardown)
{
    soffa_policy_facts_t wide = FACTS;
    wide.event_max_days = 365;
    wide.concern_max_days = 60;
    soffa_policy_facts_t none = FACTS;
    none.event_max_days = 0;   /* 0: the default */
    const l_row_t rows[] = {
        {"absence that began 150 days ago", &T_SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, NULL, {NULL}, SOFFA_OK, NULL,
         NULL, 0, 150},
        {"absence that began 183 days ago", &T_SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, NULL, {NULL}, SOFFA_OK, NULL,
         NULL, 0, 183, &none},
        {"absence that began 200 days ago", &T_SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, NULL, {NULL},
         SOFFA_ERR_BAD_FIELD, "absence_reported.period_from", NULL, 0, 200},
        {"... with [policy] event_max_days = 365", &T_SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, NULL, {NULL}, SOFFA_OK,
         NULL, NULL, 0, 200, &wide},
        {"absence that begins the day after tomorrow", &T_SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, NULL, {NULL},
         SOFFA_ERR_BAD_FIELD, "after today", NULL, 0, -2},
        {"a pupil who left 200 days ago", &T_SCHOOL, SOFFA_MT_ENROLMENT_CHANGED, NULL, NULL, {NULL},
         SOFFA_ERR_BAD_FIELD, "enrolment_changed.effective_date", NULL, 0, 200},
        {"a pupil who leaves next week", &T_SCHOOL, SOFFA_MT_ENROLMENT_CHANGED, NULL, NULL, {NULL}, SOFFA_OK, NULL,
         NULL, 0, -7},
        {"a case event dated 200 days back", &T_KAA, SOFFA_MT_CONTACT_ATTEMPTED, NULL, NULL, {NULL},
         SOFFA_ERR_BAD_FIELD, "occurred_at_us", NULL, 200},
        {"a concern report dated 20 days back", &T_SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, L_15, NULL, {NULL}, SOFFA_OK,
         NULL, NULL, 20},
        {"a concern report dated 40 days back", &T_SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, L_15, NULL, {NULL},
         SOFFA_ERR_BAD_FIELD, "concern_max_days", NULL, 40},
        {"... with [policy] concern_max_days = 60", &T_SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, L_15, NULL, {NULL},
         SOFFA_OK, NULL, NULL, 40, 0, &wide},
        {"a concern report about a 19-year-old dated two years back", &T_SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, L_19,
         NULL, {NULL}, SOFFA_ERR_BAD_FIELD, NULL, NULL, 730},
        {"... even where the dates allow it: 19 today", &T_SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, L_19, NULL, {NULL},
         SOFFA_ERR_AGE, "is 19", NULL, 0, 0, &wide},
        {"absence of a pupil who was 19 when it began and is 20 now", &T_SCHOOL, SOFFA_MT_ABSENCE_REPORTED, L_20, NULL,
         {NULL}, SOFFA_ERR_AGE, "is 20", NULL, 0, 60},
        {"absence of a 21-year-old whose period began two years back", &T_SCHOOL, SOFFA_MT_ABSENCE_REPORTED, L_25,
         NULL, {NULL}, SOFFA_ERR_BAD_FIELD, NULL, NULL, 0, 730},
    };
    l_rows(rows, L_N(rows));
}

/* Rule 5: free text bound for a KAA, Arbetsförmedlingen or a school is
 * screened; a report of concern never, a referral to social services by its
 * consent instead. */
Test(policy, issue_13_05_sensitive_text, .init = l_setup, .fini = t_teardown)
{
    soffa_policy_facts_t blind = FACTS;
    blind.terms = NULL;
    const l_row_t rows[] = {
        {"a plain at-risk note", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL, L_SCHOOL,
         {"at_risk_notice.note", "Läser med reducerat program sedan oktober."}, SOFFA_OK, NULL},
        {"an at-risk note describing a diagnosis", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL, L_SCHOOL,
         {"at_risk_notice.note", "Har fått en ADHD-diagnos och mår dåligt."}, SOFFA_ERR_SENSITIVE_TEXT,
         "at_risk_notice.note names health"},
        {"a referral to Arbetsförmedlingen naming health and substance use", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL,
         L_FULL, {"referral_sent.summary", "ADHD-diagnos, BUP-kontakt, missbruk i familjen"}, SOFFA_ERR_SENSITIVE_TEXT,
         "referral_sent.summary names"},
        {"a referral to Arbetsförmedlingen naming social services and a placement", &T_KAA, SOFFA_MT_REFERRAL_SENT,
         NULL, L_FULL, {"referral_sent.summary", "aktuell hos socialtjänsten, placerad på HVB"},
         SOFFA_ERR_SENSITIVE_TEXT, "social services"},
        {"a plain referral to Arbetsförmedlingen", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_FULL,
         {"referral_sent.summary", "Vill komma ut i praktik inom handel."}, SOFFA_OK, NULL},
        {"exception: a referral to social services, governed by its consent", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL,
         L_FULL, {"referral_sent.target_kind", "SOCIAL_SERVICES", "referral_sent.purpose", "SOC_SUPPORT_CONTACT",
                  "referral_sent.summary", "Missbruk i familjen, vill ha stöd."}, SOFFA_OK, NULL},
        {"exception: a report of concern is never screened", &T_SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, L_15, NULL,
         {"concern_report_filed.description", "Misstänkt misshandel i hemmet; mamman har ett missbruk."}, SOFFA_OK,
         NULL},
        {"without a term list, text bound for the KAA is refused", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL, L_SCHOOL,
         {NULL}, SOFFA_ERR_INTERNAL, "no term list", NULL, 0, 0, &blind},
        {"... and a notice without text goes", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL, L_SCHOOL,
         {"at_risk_notice.note", ""}, SOFFA_OK, NULL, NULL, 0, 0, &blind},
        {"... and a report of concern goes", &T_SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, L_15, NULL, {NULL}, SOFFA_OK,
         NULL, NULL, 0, 0, &blind},
    };
    l_rows(rows, L_N(rows));
    /* The text is never echoed in the reason. */
    const l_row_t r = rows[1];
    soffa_policy_decision_t dec;
    char why[256];
    cr_assert_eq(l_decide(&r, &dec, why, sizeof why), SOFFA_ERR_SENSITIVE_TEXT);
    cr_assert_null(strstr(why, "ADHD"), "%s", why);
    cr_assert_null(strstr(why, "mår"), "%s", why);
}

/* Rule 6: the consent covers the content; nothing social services knows
 * goes to Arbetsförmedlingen. */
Test(policy, issue_13_06_the_consent_covers_the_content, .init = l_setup, .fini = t_teardown)
{
    const l_row_t rows[] = {
        {"a summary on a consent that covers summary text", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_FULL, {NULL},
         SOFFA_OK, NULL},
        {"a summary on a consent that does not", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_NO_TEXT, {NULL},
         SOFFA_ERR_CONSENT, "SUMMARY_TEXT"},
        {"no summary on that consent", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_NO_TEXT,
         {"referral_sent.summary", ""}, SOFFA_OK, NULL},
        {"a consent that does not cover the identity", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_NO_IDENTITY, {NULL},
         SOFFA_ERR_CONSENT, "IDENTITY"},
        {"an at-risk notice on a consent covering it", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL, L_SCHOOL, {NULL},
         SOFFA_OK, NULL},
        {"an at-risk notice on a consent without OCCUPATION", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL,
         L_SCHOOL_NO_OCC, {NULL}, SOFFA_ERR_CONSENT, "OCCUPATION"},
        {"an at-risk notice on a consent for status feedback only", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL,
         L_SCHOOL_FEEDBACK, {NULL}, SOFFA_ERR_CONSENT, "purpose REFERRAL"},
        {"an at-risk note on a consent without SUMMARY_TEXT", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL,
         L_SCHOOL_NO_TEXT, {NULL}, SOFFA_ERR_CONSENT, "at_risk_notice.note"},
        {"... and without a note", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, NULL, L_SCHOOL_NO_TEXT,
         {"at_risk_notice.note", ""}, SOFFA_OK, NULL},
        {"contact details on a consent without CONTACT (the existing rule)", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL,
         L_NO_CONTACT, {NULL}, SOFFA_ERR_CONSENT, "contact details"},
        {"status feedback keeps its rule: RECEIVED on a consent without STATUS_FEEDBACK", &T_AF,
         SOFFA_MT_REFERRAL_STATUS_CHANGED, NULL, L_NO_TEXT,
         {"referral_status_changed.referral_id", L_REF_AF, "referral_status_changed.status", "RECEIVED"}, SOFFA_OK,
         NULL},
        {"... and ACCEPTED is refused", &T_AF, SOFFA_MT_REFERRAL_STATUS_CHANGED, NULL, L_NO_TEXT,
         {"referral_status_changed.referral_id", L_REF_AF, "referral_status_changed.status", "ACCEPTED"},
         SOFFA_ERR_CONSENT, "status feedback"},
        /* Nothing social services knows goes to Arbetsförmedlingen. */
        {"a referral to Arbetsförmedlingen following social services' answer", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL,
         L_FULL, {"causation_id", L_SOCIAL_MSG}, SOFFA_ERR_SOCIAL_SECRECY, "causation_id names a message social"},
        {"... on social services' thread", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_FULL,
         {"correlation_id", L_SOCIAL_MSG}, SOFFA_ERR_SOCIAL_SECRECY, "correlation_id"},
        {"exception: a referral to social services following it", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_FULL,
         {"causation_id", L_SOCIAL_MSG, "referral_sent.target_kind", "SOCIAL_SERVICES", "referral_sent.purpose",
          "SOC_SUPPORT_CONTACT"}, SOFFA_OK, NULL},
        {"a referral to Arbetsförmedlingen on a thread of its own", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_FULL,
         {"causation_id", "01900000-0000-7000-8000-00000000e001"}, SOFFA_OK, NULL},
    };
    l_rows(rows, L_N(rows));
}

/* What social services sends or is sent is found by its message id (the
 * key rule 6 looks up); nothing else is. */
Test(policy, issue_13_06_social_services_records_are_indexed, .init = l_setup, .fini = t_teardown)
{
    const struct {
        l_row_t row;
        bool indexed;
    } cases[] = {
        {{"a referral to social services", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_FULL,
          {"referral_sent.target_kind", "SOCIAL_SERVICES", "referral_sent.purpose", "SOC_SUPPORT_CONTACT"}, SOFFA_OK,
          NULL}, true},
        {{"a referral to Arbetsförmedlingen", &T_KAA, SOFFA_MT_REFERRAL_SENT, NULL, L_FULL, {NULL}, SOFFA_OK, NULL},
         false},
        {{"a report of concern", &T_SCHOOL, SOFFA_MT_CONCERN_REPORT_FILED, L_15, NULL, {NULL}, SOFFA_OK, NULL}, true},
        {{"an absence signal", &T_SCHOOL, SOFFA_MT_ABSENCE_REPORTED, NULL, NULL, {NULL}, SOFFA_OK, NULL}, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        soffa_policy_decision_t dec;
        char why[256];
        cr_assert_eq(l_decide(&cases[i].row, &dec, why, sizeof why), SOFFA_OK, "%s: %s", cases[i].row.label, why);
        bool found = false;
        for (size_t k = 0; k < dec.n_refs; k++)
            found |= dec.refs[k].key[0] == SOFFA_REF_SOCIAL && dec.refs[k].len == 17 && !dec.refs[k].shared;
        cr_assert_eq(found, cases[i].indexed, "%s", cases[i].row.label);
    }
}

/* Early warning (issue 19): the year-9 handover's consent (a guardian's
 * under 16, judged when it is used: a record from before the rule on who may
 * consent must not carry a handover), the support it names, its school form. */
Test(policy, issue_19_the_year9_handover, .init = l_setup, .fini = t_teardown)
{
    const l_row_t rows[] = {
        {"15, the pupil and a guardian", &T_SCHOOL, SOFFA_MT_YEAR9_HANDOVER, L_15, L_SCHOOL_G15, {NULL}, SOFFA_OK},
        {"15, the pupil alone", &T_SCHOOL, SOFFA_MT_YEAR9_HANDOVER, L_15, L_SCHOOL_Y15, {NULL}, SOFFA_ERR_CONSENT,
         "under 16 year9_handover rests on a guardian's consent"},
        {"an at-risk notice likewise", &T_SCHOOL, SOFFA_MT_AT_RISK_NOTICE, L_15, L_SCHOOL_Y15,
         {"at_risk_notice.note", ""}, SOFFA_ERR_CONSENT, "under 16"},
        {"18, the pupil's own", &T_SCHOOL, SOFFA_MT_YEAR9_HANDOVER, NULL, L_FULL, {NULL}, SOFFA_ERR_CONSENT,
         "recorded by another organisation"},
        {"support named without MEASURES", &T_SCHOOL, SOFFA_MT_YEAR9_HANDOVER, NULL, L_SCHOOL, {NULL},
         SOFFA_ERR_CONSENT, "MEASURES"},
        {"no OCCUPATION", &T_SCHOOL, SOFFA_MT_YEAR9_HANDOVER, NULL, L_SCHOOL_NO_OCC, {NULL}, SOFFA_ERR_CONSENT,
         "OCCUPATION"},
        {"no REFERRAL", &T_SCHOOL, SOFFA_MT_YEAR9_HANDOVER, NULL, L_SCHOOL_FEEDBACK, {NULL}, SOFFA_ERR_CONSENT,
         "purpose REFERRAL"},
        {"ANP_GR", &T_SCHOOL, SOFFA_MT_YEAR9_HANDOVER, L_15, L_SCHOOL_G15, {"year9_handover.school_form", "ANP_GR"},
         SOFFA_OK},
        {"from a KAA", &T_KAA, SOFFA_MT_YEAR9_HANDOVER, L_15, L_SCHOOL_G15, {NULL}, SOFFA_ERR_POLICY,
         "may not send year9_handover"},
    };
    l_rows(rows, sizeof rows / sizeof *rows);
    /* Validation: compulsory school forms for the handover only, support codes once. */
    static const struct {
        soffa_msg_type_t type;
        const char *path, *value, *says;
    } bad[] = {
        {SOFFA_MT_YEAR9_HANDOVER, "year9_handover.school_form", "GY", "GR or ANP_GR"},
        {SOFFA_MT_YEAR9_HANDOVER, "year9_handover.support_tried", "OTHER,MENTOR,OTHER", "given twice"},
        {SOFFA_MT_ENROLMENT_CHANGED, "enrolment_changed.school_form", "ANP_GR", "year-9 handover only"},
        {SOFFA_MT_ADMISSION_NOT_STARTED, "admission_not_started.school_form", "GR", "year-9 handover only"},
        {SOFFA_MT_AT_RISK_NOTICE, "at_risk_notice.support_tried", "MENTOR,MENTOR", "given twice"},
        {SOFFA_MT_EARLY_WARNING_ANSWERED, "early_warning_answered.status", "ACCEPTED", "only with status"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = t_json(bad[i].type, L_15);
        l_set(j, bad[i].type, bad[i].path, bad[i].value);
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        soffa_msg_t *m = NULL;
        char why[256] = "";
        cr_assert_eq(soffa_msg_from_json(text, &m, why, sizeof why), SOFFA_OK, "%s", why);
        free(text);
        cr_assert_eq(soffa_msg_validate(m, 0, why, sizeof why), SOFFA_ERR_BAD_FIELD, "%s = %s", bad[i].path,
                     bad[i].value);
        cr_assert(strstr(why, bad[i].says), "%s: %s", bad[i].path, why);
        soffa_msg_destroy(&m);
    }
}

/* ---- Case owner and teams (issue 19, item 4) -------------------------------------- */

static char T_HELD[17];   /* the team holding the pupil's case, as the broker's register would say */

static void
t_case_team(void *ctx, const char *subject_id, const char *kommun, char out[17])
{
    (void) ctx;
    (void) subject_id;
    snprintf(out, 17, "%s", strcmp(kommun, "1419") == 0 ? T_HELD : "");
}

/* The referrals of the fake store were sent by kaa-1419: here, team norr. */
static void
t_agent_team(void *ctx, const char *agent, char out[17])
{
    (void) ctx;
    snprintf(out, 17, "%s", strcmp(agent, "kaa-1419") == 0 ? "norr" : "");
}

#define TEAMS_FACTS(h, o)                                                                                     \
    {.teams = T_TEAMS, .case_team = t_case_team, .agent_team = t_agent_team,                                 \
     .kase = {.known = true, .open = true, .same_person = true, .kommun = "1419", .team = h, .owner = o}}

/* Where a message goes when Tjörn's KAA works in teams. */
static void
t_goes(const char *label, soffa_msg_type_t type, const soffa_identity_t *who, const char *const *set,
       const char *held, const char *want)
{
    snprintf(T_HELD, sizeof T_HELD, "%s", held);
    soffa_policy_facts_t facts = TEAMS_FACTS("", "");
    t_row_t r = {type, who, SOFFA_OK, NULL};
    soffa_policy_decision_t dec;
    char why[256] = "";
    soffa_err_t rc = t_decide_with(&r, NULL, set, &facts, &dec, why, sizeof why);
    cr_assert_eq(rc, SOFFA_OK, "%s: %s (%s)", label, soffa_errname(rc), why);
    cr_assert_str_eq(dec.mailbox, want, "%s", label);
}

Test(policy, issue_19_signals_go_to_a_team_by_the_rule, .init = t_setup, .fini = t_teardown)
{
    const char *mapped[] = {"enrolment_changed.school_unit", "12345678", NULL};
    const char *unmapped[] = {"enrolment_changed.school_unit", "12345679", NULL};
    soffa_identity_t school = T_SCHOOL;
    cr_assert_eq(soffa_policy_set_units(&school, "12345678, 12345679", NULL, 0), SOFFA_OK);
    t_goes("a mapped school unit", SOFFA_MT_ENROLMENT_CHANGED, &school, mapped, "", "kaa/1419/norr");
    t_goes("an unmapped school unit goes to intake", SOFFA_MT_ENROLMENT_CHANGED, &school, unmapped, "",
           "kaa/1419/intag");
    t_goes("the team holding the young person's case", SOFFA_MT_ENROLMENT_CHANGED, &school, mapped, "centrum",
           "kaa/1419/centrum");
    /* Answers to what a team sent: that team, or the team the case went to. */
    t_goes("a status to the referring team", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_AF, NULL, "", "kaa/1419/norr");
    t_goes("a status after the case moved", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_AF, NULL, "centrum",
           "kaa/1419/centrum");
    /* No teams: as before. */
    soffa_policy_decision_t dec;
    char why[256];
    t_row_t r = {SOFFA_MT_ENROLMENT_CHANGED, &T_SCHOOL, SOFFA_OK, NULL};
    cr_assert_eq(t_decide(&r, &dec, why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert_str_eq(dec.mailbox, "kaa/1419");
    /* The rules themselves: by district when the signal carries one, else intake. */
    soffa_identity_t a = T_NORR, b = T_CENTRUM, c = T_INTAG;
    snprintf(a.kommun, 5, "1480");
    snprintf(b.kommun, 5, "1480");
    snprintf(c.kommun, 5, "1480");
    const soffa_identity_t *ids[] = {&a, &b, &c};
    soffa_teams_t *t = NULL;
    cr_assert_eq(t_teams_load("[teams 1480]\nteams = norr, centrum, intag\nrule = district\nintake = intag\n"
                              "districts = 148012:norr, 148013:centrum\n", ids, 3, &t, why, sizeof why),
                 SOFFA_OK, "%s", why);
    cr_assert_str_eq(soffa_teams_route(t, "1480", "12345678", "148013"), "centrum");
    cr_assert_str_eq(soffa_teams_route(t, "1480", "12345678", ""), "intag");
    cr_assert_str_eq(soffa_teams_route(t, "1480", "", "999999"), "intag");
    cr_assert_str_eq(soffa_teams_route(t, "1419", "", "148013"), "", "another municipality has no teams here");
    cr_assert_eq(soffa_teams_rule(t, "1480"), SOFFA_TEAMS_RULE_DISTRICT);
    soffa_teams_destroy(&t);
    cr_assert_eq(t_teams_load("[teams 1480]\nteams = norr, centrum, intag\nrule = intake\nintake = intag\n", ids, 3,
                              &t, why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert_str_eq(soffa_teams_route(t, "1480", "12345678", "148013"), "intag");
    soffa_teams_destroy(&t);
}

Test(policy, issue_19_case_owner_and_transfer_rows, .init = t_setup, .fini = t_teardown)
{
    soffa_identity_t kaa_1415 = T_NORR;
    snprintf(kaa_1415.kommun, 5, "1415");
    const t_frow_t rows[] = {
        /* The contact person. */
        {"the first contact person", SOFFA_MT_CASE_OWNER_CHANGED, &T_NORR, NULL,
         {"case_owner_changed.previous_ref", "-", "case_owner_changed.reason", "ASSIGNED"}, TEAMS_FACTS("norr", ""),
         SOFFA_OK, NULL},
        {"a second first contact person", SOFFA_MT_CASE_OWNER_CHANGED, &T_NORR, NULL,
         {"case_owner_changed.previous_ref", "-", "case_owner_changed.reason", "ASSIGNED"},
         TEAMS_FACTS("norr", "handl-9"), SOFFA_ERR_EXISTS, "hand it over with previous_ref = handl-9"},
        {"a handover from the contact person", SOFFA_MT_CASE_OWNER_CHANGED, &T_NORR, NULL, {NULL},
         TEAMS_FACTS("norr", "handl-17"), SOFFA_OK, NULL},
        {"a handover from someone else", SOFFA_MT_CASE_OWNER_CHANGED, &T_NORR, NULL, {NULL},
         TEAMS_FACTS("norr", "handl-9"), SOFFA_ERR_BAD_FIELD, "contact person is handl-9"},
        {"a handover by a team that does not hold the case", SOFFA_MT_CASE_OWNER_CHANGED, &T_CENTRUM, NULL, {NULL},
         TEAMS_FACTS("norr", "handl-17"), SOFFA_ERR_NOT_AUTHORISED, "held by team norr"},
        {"a handover on no case", SOFFA_MT_CASE_OWNER_CHANGED, &T_KAA, NULL, {NULL}, {0}, SOFFA_ERR_NOT_FOUND, NULL},
        {"a handover by a school", SOFFA_MT_CASE_OWNER_CHANGED, &T_SCHOOL, NULL, {NULL},
         TEAMS_FACTS("norr", "handl-17"), SOFFA_ERR_POLICY, NULL},
        /* Passing a case on. */
        {"to another team of the municipality", SOFFA_MT_CASE_TRANSFERRED, &T_NORR, NULL, {NULL},
         TEAMS_FACTS("norr", "handl-17"), SOFFA_OK, NULL},
        {"to a team that does not exist", SOFFA_MT_CASE_TRANSFERRED, &T_NORR, NULL,
         {"case_transferred.to_team", "hisingen"}, TEAMS_FACTS("norr", ""), SOFFA_ERR_NOT_FOUND, "not a team of"},
        {"to the team that holds it", SOFFA_MT_CASE_TRANSFERRED, &T_NORR, NULL, {"case_transferred.to_team", "norr"},
         TEAMS_FACTS("norr", ""), SOFFA_ERR_BAD_FIELD, "holds the case already"},
        {"by a team that passed it on", SOFFA_MT_CASE_TRANSFERRED, &T_NORR, NULL, {"case_transferred.to_team", "intag"},
         TEAMS_FACTS("centrum", ""), SOFFA_ERR_NOT_AUTHORISED, "held by team centrum"},
        {"by another municipality's team", SOFFA_MT_CASE_TRANSFERRED, &kaa_1415, NULL, {NULL},
         TEAMS_FACTS("norr", ""), SOFFA_ERR_NOT_AUTHORISED, "home municipality is 1419"},
        {"by a KAA without teams", SOFFA_MT_CASE_TRANSFERRED, &T_KAA, NULL, {NULL},
         {.kase = {.known = true, .open = true, .same_person = true, .kommun = "1419"}}, SOFFA_ERR_POLICY,
         "not split into teams"},
        {"by social services", SOFFA_MT_CASE_TRANSFERRED, &T_SOCIAL, NULL, {NULL}, TEAMS_FACTS("norr", ""),
         SOFFA_ERR_POLICY, NULL},
        /* Other events of a passed-on case: the new team only. */
        {"an event by the team that passed it on", SOFFA_MT_CONTACT_ATTEMPTED, &T_NORR, NULL, {NULL},
         TEAMS_FACTS("centrum", ""), SOFFA_ERR_NOT_AUTHORISED, "held by team centrum"},
        {"an event by the team that holds it", SOFFA_MT_CONTACT_ATTEMPTED, &T_CENTRUM, NULL, {NULL},
         TEAMS_FACTS("centrum", ""), SOFFA_OK, NULL},
    };
    t_frows(rows, sizeof rows / sizeof *rows);
    /* A contact person is a staff reference, never a name or an identity number (nor one split by . or _). */
    char dotted[16];
    snprintf(dotted, sizeof dotted, "u%.8s.%.4s", T_PUPIL, T_PUPIL + 8);
    const struct {
        const char *path, *value, *says;
    } bad[] = {
        {"case_owner_changed.owner_ref", "anna.svensson", "looks like a name"},
        {"case_owner_changed.owner_ref", "Anna3", "looks like a name"},
        {"case_owner_changed.owner_ref", "Anna Svensson", "user reference"},
        {"case_owner_changed.owner_ref", T_PUPIL, "identity number"},
        {"case_owner_changed.owner_ref", dotted, "identity number"},
        {"case_owner_changed.owner_ref", "handl-17", "the one the case has"},
        {"case_owner_changed.reason", "ASSIGNED", "ASSIGNED is the first"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = t_json(SOFFA_MT_CASE_OWNER_CHANGED, T_PUPIL);
        const char *set[] = {bad[i].path, bad[i].value, NULL};
        t_set_fields(j, set);
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        soffa_msg_t *m = NULL;
        char why[256] = "";
        cr_assert_eq(soffa_msg_from_json(text, &m, why, sizeof why), SOFFA_OK, "%s", why);
        free(text);
        cr_assert_eq(soffa_msg_validate(m, 0, why, sizeof why), SOFFA_ERR_BAD_FIELD, "%s = %s", bad[i].path,
                     bad[i].value);
        cr_assert(strstr(why, bad[i].says), "%s = %s: %s", bad[i].path, bad[i].value, why);
        soffa_msg_destroy(&m);
    }
}

/* [teams K] is checked hostile by default, with what to write instead. */
Test(policy, issue_19_teams_configuration_is_checked, .init = t_setup, .fini = t_teardown)
{
    soffa_identity_t kaa_1480 = T_KAA, plain = T_KAA, stray = T_NORR;
    snprintf(kaa_1480.kommun, 5, "1480");
    snprintf(kaa_1480.team, sizeof kaa_1480.team, "hisingen");
    snprintf(stray.team, sizeof stray.team, "hisingen");
    const soffa_identity_t *ok[] = {&T_NORR, &T_CENTRUM, &T_INTAG};
    const soffa_identity_t *with_plain[] = {&T_NORR, &T_CENTRUM, &T_INTAG, &plain};
    const soffa_identity_t *with_stray[] = {&T_NORR, &T_CENTRUM, &T_INTAG, &stray};
    const soffa_identity_t *with_1480[] = {&T_NORR, &T_CENTRUM, &T_INTAG, &kaa_1480};
    const soffa_identity_t *two_norr[] = {&T_NORR, &T_CENTRUM, &T_INTAG, &T_NORR};
    const char *base = "[teams 1419]\nteams = norr, centrum, intag\nrule = school\nintake = intag\n";
    static const struct {
        const char *extra;   /* appended to base, or a whole file when it starts with '[' */
        int agents;          /* 0 ok, 1 with a KAA agent without a team, 2 a stray team, 3 Göteborg, 4 two agents */
        const char *says;
    } cases[] = {
        {"schools = 12345678:norr, 12345679:centrum, 12345678:intag\n", 0, "12345678 is mapped twice"},
        {"schools = 12345678:hisingen\n", 0, "not one of teams"},
        {"schools = 1234:norr\n", 0, "8-digit school unit code"},
        {"schools = 12345678\n", 0, "CODE:TEAM"},
        {"", 0, "rule = school maps school units"},
        {"schools = 12345678:norr\ndistricts = 148012:norr\n", 0, "and no districts"},
        {"[teams 1419]\nteams = norr, centrum, intag\nrule = nearest\nintake = intag\n", 0, "rule must be"},
        {"[teams 1419]\nteams = norr, centrum, intag\nrule = intake\nintake = hisingen\n", 0, "intake: 'hisingen'"},
        {"[teams 1419]\nteams = norr, Centrum\nrule = intake\nintake = norr\n", 0, "not a team name"},
        {"[teams 1419]\nteams = norr\nrule = intake\nintake = norr\n", 0, "at least two teams"},
        {"[teams 1419]\nteams = norr, centrum, intag, skola\nrule = intake\nintake = intag\n", 0, "team skola has no agent"},
        {"[teams 9999]\nteams = norr, centrum\nrule = intake\nintake = norr\n", 0, "290 municipality codes"},
        {"[teams 1419]\nteams = norr, centrum, intag\nrule = intake\nintake = intag\n"
         "[teams 1480]\nteams = a, b\nrule = intake\nintake = a\n", 0, "[teams 1480] the municipality has no KAA agent"},
        {"schools = 12345678:norr\n", 1, "give the agent team ="},
        {"schools = 12345678:norr\n", 2, "unknown team"},
        {"schools = 12345678:norr\n", 3, "no [teams 1480] section"},
        {"schools = 12345678:norr\n", 4, "both serve team norr"},
    };
    const soffa_identity_t *const *sets[] = {ok, with_plain, with_stray, with_1480, two_norr};
    const size_t sizes[] = {3, 4, 4, 4, 4};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char ini[1024], why[512] = "";
        if (cases[i].extra[0] == '[')
            snprintf(ini, sizeof ini, "%s", cases[i].extra);
        else
            snprintf(ini, sizeof ini, "%s%s", base, cases[i].extra);
        soffa_teams_t *t = NULL;
        soffa_err_t rc = t_teams_load(ini, sets[cases[i].agents], sizes[cases[i].agents], &t, why, sizeof why);
        cr_assert_eq(rc, SOFFA_ERR_CONFIG, "case %zu (%s) was taken", i, cases[i].says);
        cr_assert_null(t);
        cr_assert(strstr(why, cases[i].says), "case %zu: '%s' lacks '%s'", i, why, cases[i].says);
    }
    /* The same with a mapping that holds is taken. */
    soffa_teams_t *t = NULL;
    char ini[512], why[512] = "";
    snprintf(ini, sizeof ini, "%sschools = 12345678:norr, 12345679:centrum\n", base);
    cr_assert_eq(t_teams_load(ini, ok, 3, &t, why, sizeof why), SOFFA_OK, "%s", why);
    cr_assert(soffa_teams_split(t, "1419"));
    cr_assert(soffa_teams_has(t, "1419", "centrum"));
    cr_assert_not(soffa_teams_has(t, "1419", "hisingen"));
    cr_assert(soffa_teams_same(t, T_TEAMS) == false);
    soffa_teams_destroy(&t);
}

/* ---- Issue 19, item 3: the local actors ------------------------------------------------------ */

#define PROVIDERS {.provider_at = t_provider_at}
#define PROVIDERS_IN_CASE {.provider_at = t_provider_at, .kase = OPEN_CASE}

/* A KAA refers a young person to a provider of its municipality under a
 * consent covering that kind of provider (SCHOOL and OTHER go through
 * providers too); the provider answers; social services refer to the KAA;
 * a measure links to the referral it follows from. Allowed and refused
 * rows beside each other. */
Test(policy, issue_19_local_actors, .init = t_setup, .fini = t_teardown)
{
    const t_frow_t rows[] = {
        /* KAA → provider. */
        {"to Komvux", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "PROVIDER", "referral_sent.purpose", "PROVIDER_STUDIES",
          "referral_sent.provider_kind", "KOMVUX"}, PROVIDERS, SOFFA_OK, NULL},
        {"to a school's programme (target SCHOOL)", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "SCHOOL", "referral_sent.purpose", "SCHOOL_RETURN"}, PROVIDERS, SOFFA_OK,
         NULL},
        {"target SCHOOL with no school programme configured", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "SCHOOL", "referral_sent.purpose", "SCHOOL_RETURN"}, {0}, SOFFA_ERR_POLICY,
         "provider_kind = school_programme to the broker's configuration"},
        {"target OTHER naming Komvux", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "OTHER", "referral_sent.purpose", "OTHER", "referral_sent.provider_kind",
          "KOMVUX"}, PROVIDERS, SOFFA_OK, NULL},
        {"target OTHER naming no kind", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "OTHER", "referral_sent.purpose", "OTHER"}, PROVIDERS,
         SOFFA_ERR_MISSING_FIELD, "referral_sent.provider_kind"},
        {"a kind the consent does not cover", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "PROVIDER", "referral_sent.purpose", "PROVIDER_STUDIES",
          "referral_sent.provider_kind", "FOLKHOGSKOLA"}, PROVIDERS, SOFFA_ERR_CONSENT, "scope.provider_kinds"},
        {"a kind nobody provides here", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "PROVIDER", "referral_sent.purpose", "PROVIDER_WORK",
          "referral_sent.provider_kind", "LABOUR_MARKET_UNIT"}, PROVIDERS, SOFFA_ERR_POLICY,
         "role = provider, kommun = 1419, provider_kind = labour_market_unit"},
        {"two guidance centres, none named", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "PROVIDER", "referral_sent.purpose", "PROVIDER_GUIDANCE",
          "referral_sent.provider_kind", "GUIDANCE_CENTRE"}, PROVIDERS, SOFFA_ERR_BAD_FIELD, "vgc-a, vgc-b"},
        {"a provider nobody configured", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "PROVIDER", "referral_sent.provider_kind", "KOMVUX",
          "referral_sent.provider", "nobody", "referral_sent.purpose", "PROVIDER_STUDIES"}, PROVIDERS, SOFFA_ERR_NOT_FOUND, "no provider agent 'nobody'"},
        {"a provider of another kind than named", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "PROVIDER", "referral_sent.provider_kind", "GUIDANCE_CENTRE",
          "referral_sent.provider", "komvux-1419", "referral_sent.purpose", "PROVIDER_GUIDANCE"}, PROVIDERS, SOFFA_ERR_BAD_FIELD, "of kind komvux"},
        {"a young person of another municipality", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "PROVIDER", "referral_sent.provider_kind", "KOMVUX", "subject.hemkommun",
          "1415", "referral_sent.purpose", "PROVIDER_STUDIES"}, PROVIDERS, SOFFA_ERR_NOT_AUTHORISED, "home municipality is 1415"},
        {"a provider refers nobody", SOFFA_MT_REFERRAL_SENT, &T_PROVIDER, NULL,
         {"referral_sent.target_kind", "PROVIDER", "referral_sent.provider_kind", "KOMVUX", "referral_sent.purpose",
          "PROVIDER_STUDIES"}, PROVIDERS,
         SOFFA_ERR_POLICY, "a provider agent may not send referral_sent"},
        {"the provider claims another kind", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_PROVIDER, NULL,
         {"sender.kind", "PROVIDER", "sender.provider_kind", "FOLKHOGSKOLA"}, PROVIDERS, SOFFA_ERR_NOT_AUTHORISED,
         "sender.provider_kind"},
        {"the provider answers its referral", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_PROVIDER, NULL,
         {"referral_status_changed.status", "IN_PROGRESS"}, PROVIDERS, SOFFA_OK, NULL},
        {"the provider answers Arbetsförmedlingen's referral", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_PROVIDER, NULL,
         {"referral_status_changed.referral_id", "AF"}, PROVIDERS, SOFFA_ERR_NOT_AUTHORISED, "only its recipient"},
        /* Social services → KAA. */
        {"social services refer to the KAA", SOFFA_MT_REFERRAL_SENT, &T_SOCIAL, NULL, {NULL}, PROVIDERS, SOFFA_OK,
         NULL},
        {"social services refer to Arbetsförmedlingen", SOFFA_MT_REFERRAL_SENT, &T_SOCIAL, NULL,
         {"referral_sent.target_kind", "ARBETSFORMEDLINGEN", "referral_sent.purpose", "AF_YOUTH_PROGRAMME"},
         PROVIDERS, SOFFA_ERR_POLICY, "social services refer to the KAA"},
        {"social services on the KAA's consent", SOFFA_MT_REFERRAL_SENT, &T_SOCIAL, NULL, {"consent_id", "KAA"},
         PROVIDERS, SOFFA_ERR_CONSENT, "another organisation"},
        {"social services refer a 21-year-old", SOFFA_MT_REFERRAL_SENT, &T_SOCIAL, T_ADULT, {NULL}, PROVIDERS,
         SOFFA_ERR_AGE, "takes referrals for young people under 20 only"},
        {"a KAA refers to a KAA", SOFFA_MT_REFERRAL_SENT, &T_KAA, NULL,
         {"referral_sent.target_kind", "KAA", "referral_sent.purpose", "KAA_SUPPORT"}, PROVIDERS, SOFFA_ERR_POLICY,
         "MOVED_OUT"},
        {"the KAA answers social services", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_KAA, NULL, {NULL}, PROVIDERS,
         SOFFA_OK, NULL},
        {"the KAA answers a referral to Arbetsförmedlingen", SOFFA_MT_REFERRAL_STATUS_CHANGED, &T_KAA, NULL,
         {"referral_status_changed.referral_id", "AF", "consent_id", "KAA"}, PROVIDERS, SOFFA_ERR_NOT_AUTHORISED,
         "only its recipient"},
        /* A measure that follows from a referral. */
        {"a Komvux measure on the Komvux referral", SOFFA_MT_MEASURE_STARTED, &T_KAA, NULL,
         {"measure_started.referral_id", "PROV", "measure_started.provider.kind", "PROVIDER",
          "measure_started.provider.provider_kind", "KOMVUX"}, PROVIDERS_IN_CASE, SOFFA_OK, NULL},
        {"a folkhögskola measure on the Komvux referral", SOFFA_MT_MEASURE_STARTED, &T_KAA, NULL,
         {"measure_started.referral_id", "PROV", "measure_started.provider.kind", "PROVIDER",
          "measure_started.provider.provider_kind", "FOLKHOGSKOLA"}, PROVIDERS_IN_CASE, SOFFA_ERR_BAD_FIELD,
         "kind komvux, not folkhogskola"},
        {"an Arbetsförmedlingen measure on the Komvux referral", SOFFA_MT_MEASURE_STARTED, &T_KAA, NULL,
         {"measure_started.referral_id", "PROV"}, PROVIDERS_IN_CASE, SOFFA_ERR_BAD_FIELD, "provider.kind PROVIDER"},
        {"an Arbetsförmedlingen measure on the referral to it", SOFFA_MT_MEASURE_STARTED, &T_KAA, NULL,
         {"measure_started.referral_id", "AF"}, PROVIDERS_IN_CASE, SOFFA_OK, NULL},
        {"a referral nobody sent", SOFFA_MT_MEASURE_STARTED, &T_KAA, NULL, {"measure_started.referral_id", "NONE"},
         PROVIDERS_IN_CASE, SOFFA_ERR_NOT_FOUND, "no referral with that id"},
        {"social services' referral", SOFFA_MT_MEASURE_STARTED, &T_KAA, NULL,
         {"measure_started.referral_id", "SOCKAA"}, PROVIDERS_IN_CASE, SOFFA_ERR_NOT_AUTHORISED,
         "not sent by the KAA of 1419"},
        {"the referral of another young person", SOFFA_MT_MEASURE_STARTED, &T_KAA, T_CHILD,
         {"measure_started.referral_id", "PROV", "measure_started.provider.kind", "PROVIDER",
          "measure_started.provider.provider_kind", "KOMVUX"}, PROVIDERS_IN_CASE, SOFFA_ERR_BAD_FIELD,
         "another young person"},
    };
    t_frows(rows, sizeof rows / sizeof *rows);
    /* Where the allowed ones go. */
    const struct {
        const char *set[10];
        const char *mailbox;
    } to[] = {
        {{"referral_sent.target_kind", "PROVIDER", "referral_sent.provider_kind", "KOMVUX", "referral_sent.purpose",
          "PROVIDER_STUDIES"}, "provider/1419/komvux-1419"},
        {{"referral_sent.target_kind", "SCHOOL", "referral_sent.purpose", "SCHOOL_RETURN"}, "provider/1419/skola-1419"},
        {{"referral_sent.target_kind", "PROVIDER", "referral_sent.provider_kind", "GUIDANCE_CENTRE",
          "referral_sent.provider", "vgc-b", "referral_sent.purpose", "PROVIDER_GUIDANCE"}, "provider/1419/vgc-b"},
    };
    for (size_t i = 0; i < sizeof to / sizeof *to; i++) {
        t_row_t r = {SOFFA_MT_REFERRAL_SENT, &T_KAA, SOFFA_OK, NULL};
        soffa_policy_decision_t dec;
        char why[256] = "";
        soffa_policy_facts_t f = PROVIDERS;
        cr_assert_eq(t_decide_with(&r, NULL, to[i].set, &f, &dec, why, sizeof why), SOFFA_OK, "%s: %s",
                     to[i].mailbox, why);
        cr_assert_str_eq(dec.mailbox, to[i].mailbox);
        cr_assert_eq(dec.awaits, SOFFA_RECEIPT_STATUS, "a referral to a provider waits for its status");
    }
    /* Providers' mailboxes: their inbox, their own data controller. */
    char m[SOFFA_NAME_MAX], c[SOFFA_NAME_MAX];
    soffa_policy_inbox(&T_PROVIDER, m);
    cr_assert_str_eq(m, "provider/1419/komvux-1419");
    cr_assert(soffa_policy_is_inbox(m));
    soffa_policy_controller(m, c);
    cr_assert_str_eq(c, "provider/komvux-1419");
    soffa_policy_journal(&T_SOCIAL, m);
    cr_assert_str_eq(m, "social-journal/1419");
    soffa_policy_controller(m, c);
    cr_assert_str_eq(c, "1419", "social services' consents are the municipality's records");
}
