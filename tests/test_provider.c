/*  Integration tests for the local actors (issue 19, item 3): the real
 *  soffa-broker process over real sockets and a real LMDB directory, with
 *  provider agents configured for Tjörn (1419): Komvux and another school's
 *  programme. A KAA refers a young person to a provider under a consent
 *  covering that kind of provider; the provider answers with the statuses
 *  Arbetsförmedlingen uses; the broker withdraws a referral whose consent is
 *  withdrawn and expires one nobody answered; a measure links to the
 *  referral it follows from; social services refer a young person to the
 *  KAA. Each allowed row stands beside the rows refused, with their codes
 *  and reasons. (The decisions row by row are in test_policy.) */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soffa_keys.h"
#include "soffa_stats.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "testkit.h"

/* Made-up young people of Tjörn, each that age today with a birthday 30
 * days ago. */
static char P18[13], P19[13], P20[13];

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
    s_age(19, 319, P19);
    s_age(20, 320, P20);
}

TestSuite(provider, .init = setup, .timeout = 120);

/* The provider agents of the tests: name and provider_kind. */
static const char *const PROVIDERS[][2] = {
    {"komvux-1419", "komvux"},
    {"skola-1419", "school_programme"},
};

/* The broker with the provider agents configured beside the usual ones
 * (their keys made first, their secret keys put where tk_client finds
 * them), and `extra` in its configuration. */
static tk_broker_t *
s_start(const char *extra)
{
    char *keys = tk_tmpdir("provkeys");
    char ini[2048] = "";
    snprintf(ini, sizeof ini, "%s\n", extra ? extra : "");
    for (size_t i = 0; i < sizeof PROVIDERS / sizeof *PROVIDERS; i++) {
        char path[400], pub[41], sec[41];
        snprintf(path, sizeof path, "%s/%s", keys, PROVIDERS[i][0]);
        cr_assert_eq(soffa_keys_generate(path), SOFFA_OK);
        snprintf(path, sizeof path, "%s/%s.key", keys, PROVIDERS[i][0]);
        cr_assert_eq(soffa_keys_load_secret(path, pub, sec), SOFFA_OK);
        size_t n = strlen(ini);
        snprintf(ini + n, sizeof ini - n, "\n[agent %s]\npublic_key = %s\nrole = provider\nkommun = 1419\n"
                 "provider_kind = %s\n", PROVIDERS[i][0], pub, PROVIDERS[i][1]);
    }
    tk_broker_t *b = tk_broker_start(ini);
    for (size_t i = 0; i < sizeof PROVIDERS / sizeof *PROVIDERS; i++) {
        char from[400], to[400];
        snprintf(from, sizeof from, "%s/%s.key", keys, PROVIDERS[i][0]);
        snprintf(to, sizeof to, "%s/%s.key", b->dir, PROVIDERS[i][0]);
        char *argv[] = {"cp", from, to, NULL};
        cr_assert_eq(tk_run(argv, NULL, NULL), 0);
    }
    tk_rmrf(keys);
    free(keys);
    return b;
}

/* A message of `type` about pnr in Tjörn, to adjust. */
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

/* A copy of a message with a message id of its own (the broker takes a
 * message id once). */
static json_t *
renew(json_t *j)
{
    uint8_t id[16];
    char text[SOFFA_UUID_STR];
    soffa_uuid7(id);
    soffa_uuid_format(id, text);
    return set(j, "message_id", text);
}

/* A consent of pnr, valid today for half a year, with the scope given
 * (comma lists; kinds "" for none); its id goes into id. */
static json_t *
consent(const char *pnr, const char *recipients, const char *kinds, char id[SOFFA_UUID_STR])
{
    json_t *j = J(SOFFA_MT_CONSENT_RECORDED, pnr);
    char from[11], to[11];
    soffa_date_format(soffa_date_today(), from);
    soffa_date_format(soffa_date_local(soffa_now_us() + 180 * 86400000000LL), to);
    set(j, "consent_recorded.valid_from", from);
    set(j, "consent_recorded.valid_to", to);
    set(j, "consent_recorded.scope.recipients", recipients);
    set(j, "consent_recorded.scope.purposes", "REFERRAL,STATUS_FEEDBACK");
    set(j, "consent_recorded.scope.data_categories", "IDENTITY,CONTACT,SUMMARY_TEXT");
    if (kinds[0])
        set(j, "consent_recorded.scope.provider_kinds", kinds);
    snprintf(id, SOFFA_UUID_STR, "%s", tk_str(j, "consent_recorded.consent_id"));
    return j;
}

/* A referral of pnr on consent c to a provider of `kind` (target PROVIDER;
 * "SCHOOL": target SCHOOL); its id goes into id. */
static json_t *
refer(const char *pnr, const char *c, const char *kind, char id[SOFFA_UUID_STR])
{
    json_t *j = set(J(SOFFA_MT_REFERRAL_SENT, pnr), "consent_id", c);
    if (!strcmp(kind, "SCHOOL")) {
        set(j, "referral_sent.target_kind", "SCHOOL");
        set(j, "referral_sent.purpose", "SCHOOL_RETURN");
    } else {
        set(j, "referral_sent.target_kind", "PROVIDER");
        set(j, "referral_sent.purpose", "PROVIDER_STUDIES");
        set(j, "referral_sent.provider_kind", kind);
    }
    snprintf(id, SOFFA_UUID_STR, "%s", tk_str(j, "referral_sent.referral_id"));
    return j;
}

/* The answer `status` to referral r on consent c. */
static json_t *
status(const char *pnr, const char *c, const char *r, const char *st)
{
    json_t *j = set(J(SOFFA_MT_REFERRAL_STATUS_CHANGED, pnr), "consent_id", c);
    set(j, "referral_status_changed.referral_id", r);
    return set(j, "referral_status_changed.status", st);
}

/* Social services' referral of pnr to the KAA on consent c; its id goes into id. */
static json_t *
to_kaa(const char *pnr, const char *c, char id[SOFFA_UUID_STR])
{
    json_t *j = set(J(SOFFA_MT_REFERRAL_SENT, pnr), "consent_id", c);
    set(set(j, "referral_sent.target_kind", "KAA"), "referral_sent.purpose", "KAA_SUPPORT");
    snprintf(id, SOFFA_UUID_STR, "%s", tk_str(j, "referral_sent.referral_id"));
    return j;
}

/* A KAA refers to the providers of its municipality; the providers answer;
 * a measure links to the referral. */
Test(provider, kaa_refers_and_the_provider_answers)
{
    tk_broker_t *b = s_start(NULL);
    soffa_client_t *kaa = tk_client_pub(b, "kaa-1419");
    soffa_client_t *komvux = tk_client_pub(b, "komvux-1419");
    soffa_client_t *skola = tk_client_pub(b, "skola-1419");
    char c[SOFFA_UUID_STR], narrow[SOFFA_UUID_STR], r1[SOFFA_UUID_STR], r2[SOFFA_UUID_STR], x[SOFFA_UUID_STR];
    char p19[SOFFA_UUID_STR];

    TK_ACCEPTED(kaa, consent(P18, "PROVIDER", "KOMVUX,SCHOOL_PROGRAMME", c), "kaa-journal/1419");
    TK_ACCEPTED(kaa, consent(P18, "PROVIDER", "SCHOOL_PROGRAMME", narrow), "kaa-journal/1419");
    TK_ACCEPTED(kaa, consent(P19, "ARBETSFORMEDLINGEN", "", p19), "kaa-journal/1419");
    /* A scope naming a provider kind twice is no scope. */
    TK_REFUSED(kaa, consent(P18, "PROVIDER", "KOMVUX,KOMVUX", x), SOFFA_ERR_BAD_FIELD, "given twice");

    /* To Komvux, and to another school's programme (target SCHOOL). */
    TK_ACCEPTED(kaa, refer(P18, c, "KOMVUX", r1), "provider/1419/komvux-1419");
    TK_ACCEPTED(kaa, refer(P18, c, "SCHOOL", r2), "provider/1419/skola-1419");
    /* A named provider, and target OTHER naming the kind. */
    TK_ACCEPTED(kaa, set(refer(P18, c, "KOMVUX", x), "referral_sent.provider", "komvux-1419"),
                "provider/1419/komvux-1419");
    json_t *j = refer(P18, c, "KOMVUX", x);
    set(set(j, "referral_sent.target_kind", "OTHER"), "referral_sent.purpose", "OTHER");
    TK_ACCEPTED(kaa, j, "provider/1419/komvux-1419");
    /* Refused: a kind nobody provides here (naming what to configure), a
     * consent without the kind, target OTHER naming no kind, a provider
     * nobody configured, a consent without providers, a school kind under
     * another target. */
    TK_REFUSED(kaa, refer(P18, c, "FOLKHOGSKOLA", x), SOFFA_ERR_POLICY,
               "role = provider, kommun = 1419, provider_kind = folkhogskola");
    TK_REFUSED(kaa, refer(P18, narrow, "KOMVUX", x), SOFFA_ERR_CONSENT, "scope.provider_kinds");
    j = refer(P18, c, "KOMVUX", x);
    set(set(j, "referral_sent.target_kind", "OTHER"), "referral_sent.purpose", "OTHER");
    json_object_del(tk_payload(j), "provider_kind");
    TK_REFUSED(kaa, j, SOFFA_ERR_MISSING_FIELD, "referral_sent.provider_kind");
    TK_REFUSED(kaa, set(refer(P18, c, "KOMVUX", x), "referral_sent.provider", "nobody"), SOFFA_ERR_NOT_FOUND,
               "no provider agent 'nobody'");
    TK_REFUSED(kaa, set(refer(P18, c, "KOMVUX", x), "referral_sent.provider", "skola-1419"), SOFFA_ERR_BAD_FIELD,
               "of kind school_programme");
    TK_REFUSED(kaa, refer(P19, p19, "KOMVUX", x), SOFFA_ERR_CONSENT, "recipient PROVIDER");
    TK_REFUSED(kaa, set(refer(P18, c, "SCHOOL", x), "referral_sent.provider_kind", "KOMVUX"), SOFFA_ERR_BAD_FIELD,
               "SCHOOL_PROGRAMME");
    /* The district of the address routes to a KAA team only; a provider never gets it. */
    TK_REFUSED(kaa, set(refer(P18, c, "KOMVUX", x), "subject.district", "141901"), SOFFA_ERR_BAD_FIELD,
               "subject.district");
    /* A provider refers nobody. */
    TK_REFUSED(komvux, refer(P18, c, "KOMVUX", x), SOFFA_ERR_POLICY, "a provider agent may not send referral_sent");

    /* Each provider reads its own referrals. */
    int types[16];
    cr_assert_eq(tk_collect(komvux, "provider/1419/komvux-1419", 16, true, 16, 800, types, NULL), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(types[i], SOFFA_MT_REFERRAL_SENT);
    cr_assert_eq(tk_collect(skola, "provider/1419/skola-1419", 16, true, 16, 500, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_REFERRAL_SENT);

    /* The provider answers as Arbetsförmedlingen does; only its own. */
    TK_ACCEPTED(komvux, status(P18, c, r1, "RECEIVED"), "kaa/1419");
    TK_ACCEPTED(komvux, status(P18, c, r1, "ACCEPTED"), "kaa/1419");
    TK_ACCEPTED(komvux, status(P18, c, r1, "IN_PROGRESS"), "kaa/1419");
    TK_REFUSED(skola, status(P18, c, r1, "ACCEPTED"), SOFFA_ERR_NOT_AUTHORISED, "only its recipient");
    TK_REFUSED(komvux, status(P18, c, r2, "ACCEPTED"), SOFFA_ERR_NOT_AUTHORISED, "only its recipient");
    TK_REFUSED(komvux, set(status(P18, c, r1, "ACCEPTED"), "sender.kind", "ARBETSFORMEDLINGEN"),
               SOFFA_ERR_NOT_AUTHORISED, "sender.kind");
    TK_ACCEPTED(skola, status(P18, c, r2, "DECLINED_BY_AGENCY"), "kaa/1419");
    cr_assert_eq(tk_collect(kaa, "kaa/1419", 16, true, 16, 800, types, NULL), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(types[i], SOFFA_MT_REFERRAL_STATUS_CHANGED);

    /* The measure at Komvux follows from the referral. */
    json_t *open = J(SOFFA_MT_KAA_CASE_OPENED, P18);
    char kase[SOFFA_UUID_STR];
    snprintf(kase, sizeof kase, "%s", tk_str(open, "kaa_case_opened.case_id"));
    TK_ACCEPTED(kaa, open, "kaa-journal/1419");
    json_t *m = set(J(SOFFA_MT_MEASURE_STARTED, P18), "measure_started.case_id", kase);
    set(m, "measure_started.measure_type", "STUDIES_OTHER");
    set(m, "measure_started.provider.kind", "PROVIDER");
    set(m, "measure_started.provider.provider_kind", "KOMVUX");
    json_t *m2 = renew(json_deep_copy(m)), *m3 = renew(json_deep_copy(m)), *m4 = renew(json_deep_copy(m));
    TK_ACCEPTED(kaa, set(m, "measure_started.referral_id", r1), "kaa-journal/1419");
    TK_REFUSED(kaa, set(set(m2, "measure_started.referral_id", r1), "measure_started.provider.provider_kind",
                        "FOLKHOGSKOLA"), SOFFA_ERR_BAD_FIELD, "kind komvux, not folkhogskola");
    TK_REFUSED(kaa, set(m3, "measure_started.referral_id", c), SOFFA_ERR_NOT_FOUND, "no referral with that id");
    TK_REFUSED(kaa, set(m4, "measure_started.referral_id", r2), SOFFA_ERR_BAD_FIELD, "kind school_programme");

    tk_client_pub_close(&skola);
    tk_client_pub_close(&komvux);
    tk_client_pub_close(&kaa);
    tk_broker_free(b);
}

/* The broker's own answers: a referral whose consent is withdrawn is
 * withdrawn from the provider; one nobody answered expires, and the late
 * answer is refused. The same code path as Arbetsförmedlingen's. */
Test(provider, withdrawal_and_expiry)
{
    tk_broker_t *b = s_start("[audit]\nreferral_expiry = 2s\n");
    soffa_client_t *kaa = tk_client_pub(b, "kaa-1419");
    soffa_client_t *komvux = tk_client_pub(b, "komvux-1419");
    char c[SOFFA_UUID_STR], c2[SOFFA_UUID_STR], answered[SOFFA_UUID_STR], late[SOFFA_UUID_STR], gone[SOFFA_UUID_STR];
    TK_ACCEPTED(kaa, consent(P18, "PROVIDER", "KOMVUX,SCHOOL_PROGRAMME", c), "kaa-journal/1419");
    TK_ACCEPTED(kaa, consent(P18, "PROVIDER", "SCHOOL_PROGRAMME", c2), "kaa-journal/1419");
    TK_ACCEPTED(kaa, refer(P18, c, "KOMVUX", answered), "provider/1419/komvux-1419");
    TK_ACCEPTED(kaa, refer(P18, c, "KOMVUX", late), "provider/1419/komvux-1419");
    TK_ACCEPTED(kaa, refer(P18, c2, "SCHOOL", gone), "provider/1419/skola-1419");
    TK_ACCEPTED(komvux, status(P18, c, answered, "RECEIVED"), "kaa/1419");
    /* The young person withdraws the consent of the school referral. */
    json_t *w = set(set(J(SOFFA_MT_CONSENT_WITHDRAWN, P18), "consent_id", c2), "consent_withdrawn.consent_id", c2);
    TK_ACCEPTED(kaa, w, "kaa-journal/1419");
    char x[SOFFA_UUID_STR];
    TK_REFUSED(kaa, refer(P18, c2, "SCHOOL", x), SOFFA_ERR_CONSENT, "withdrawn");
    /* Quiet past the deadline (the test broker drops silent sessions). */
    tk_client_pub_close(&komvux);
    tk_client_pub_close(&kaa);
    sleep(3);
    int types[16];
    /* The school provider: the withdrawal, never the referral. */
    soffa_client_t *skola = tk_client_pub(b, "skola-1419");
    cr_assert_eq(tk_collect(skola, "provider/1419/skola-1419", 16, true, 16, 800, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_REFERRAL_WITHDRAWN);
    /* Komvux: the answered referral; the expired one is withheld, and a late answer is refused. */
    komvux = tk_client_pub(b, "komvux-1419");
    cr_assert_eq(tk_collect(komvux, "provider/1419/komvux-1419", 16, true, 16, 800, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_REFERRAL_SENT);
    TK_REFUSED(komvux, status(P18, c, late, "RECEIVED"), SOFFA_ERR_NOT_OPEN, "EXPIRED");
    TK_ACCEPTED(komvux, status(P18, c, answered, "ACCEPTED"), "kaa/1419");
    /* The KAA: RECEIVED, the broker's EXPIRED for the unanswered referral
     * and for the withdrawn one (nobody answered that either), ACCEPTED. */
    kaa = tk_client_pub(b, "kaa-1419");
    size_t got = tk_collect(kaa, "kaa/1419", 16, true, 16, 800, types, NULL);
    cr_assert_eq(got, 4, "kaa/1419 got %zu", got);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(types[i], SOFFA_MT_REFERRAL_STATUS_CHANGED);
    tk_client_pub_close(&kaa);
    tk_client_pub_close(&komvux);
    tk_client_pub_close(&skola);
    tk_broker_free(b);
}

/* Social services refer a young person to the KAA of the home
 * municipality, under a consent they recorded themselves; the KAA answers;
 * a withdrawn consent withdraws the referral. */
Test(provider, social_services_refer_to_the_kaa)
{
    tk_broker_t *b = s_start(NULL);
    soffa_client_t *soc = tk_client_pub(b, "social-1419");
    soffa_client_t *kaa = tk_client_pub(b, "kaa-1419");
    char c[SOFFA_UUID_STR], af[SOFFA_UUID_STR], kc[SOFFA_UUID_STR], r[SOFFA_UUID_STR], x[SOFFA_UUID_STR];
    char x20[SOFFA_UUID_STR];
    TK_ACCEPTED(soc, consent(P18, "KAA", "", c), "social-journal/1419");
    TK_ACCEPTED(soc, consent(P18, "ARBETSFORMEDLINGEN", "", af), "social-journal/1419");
    TK_ACCEPTED(kaa, consent(P18, "KAA", "", kc), "kaa-journal/1419");
    TK_ACCEPTED(soc, consent(P20, "KAA", "", x20), "social-journal/1419");

    TK_ACCEPTED(soc, to_kaa(P18, c, r), "kaa/1419");
    /* Refused: a consent not covering the KAA, the KAA's consent, a
     * 20-year-old, a young person of another municipality, a referral to
     * Arbetsförmedlingen. */
    TK_REFUSED(soc, to_kaa(P18, af, x), SOFFA_ERR_CONSENT, "does not cover the KAA");
    TK_REFUSED(soc, to_kaa(P18, kc, x), SOFFA_ERR_CONSENT, "another organisation");
    TK_REFUSED(soc, to_kaa(P20, x20, x), SOFFA_ERR_AGE, "under 20");
    json_t *away = to_kaa(P18, c, x);
    json_object_set_new(json_object_get(away, "subject"), "hemkommun", json_string("1415"));
    TK_REFUSED(soc, away, SOFFA_ERR_NOT_AUTHORISED, "home municipality is 1415");
    json_t *to_af = to_kaa(P18, c, x);
    set(set(to_af, "referral_sent.target_kind", "ARBETSFORMEDLINGEN"), "referral_sent.purpose", "AF_YOUTH_PROGRAMME");
    TK_REFUSED(soc, to_af, SOFFA_ERR_POLICY, "social services refer to the KAA");
    /* The KAA refers to no KAA. */
    TK_REFUSED(kaa, to_kaa(P18, kc, x), SOFFA_ERR_POLICY, "MOVED_OUT");

    /* The KAA reads it and answers. */
    int types[16];
    cr_assert_eq(tk_collect(kaa, "kaa/1419", 16, true, 16, 800, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_REFERRAL_SENT);
    TK_ACCEPTED(kaa, status(P18, c, r, "CONTACT_ESTABLISHED"), "social/1419");
    cr_assert_eq(tk_collect(soc, "social/1419", 16, true, 16, 800, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_REFERRAL_STATUS_CHANGED);

    /* The young person withdraws the consent: the KAA is told, and no new referral goes on it. */
    json_t *w = set(set(J(SOFFA_MT_CONSENT_WITHDRAWN, P18), "consent_id", c), "consent_withdrawn.consent_id", c);
    TK_ACCEPTED(soc, w, "social-journal/1419");
    TK_REFUSED(soc, to_kaa(P18, c, x), SOFFA_ERR_CONSENT, "withdrawn");
    tk_client_pub_close(&kaa);
    kaa = tk_client_pub(b, "kaa-1419");
    cr_assert_eq(tk_collect(kaa, "kaa/1419", 16, true, 16, 1500, types, NULL), 1);
    cr_assert_eq(types[0], SOFFA_MT_REFERRAL_WITHDRAWN);
    tk_client_pub_close(&kaa);
    tk_client_pub_close(&soc);
    tk_broker_free(b);
}

/* `soffa` on an agent's control socket (argv after the socket, NULL-ended):
 * its exit code; out gets stdout and stderr together (free it). */
static int
cli(const tk_agent_t *a, char **out, const char *const *args)
{
    char *argv[32] = {SOFFA_BIN_DIR "/soffa", "--socket", (char *) a->sock};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *) args[i];
    argv[n] = NULL;
    char *o = NULL, *e = NULL;
    int rc = tk_run(argv, &o, &e);
    size_t len = strlen(o ? o : "") + strlen(e ? e : "") + 2;
    *out = malloc(len);
    snprintf(*out, len, "%s\n%s", o ? o : "", e ? e : "");
    free(o);
    free(e);
    return rc;
}

/* The command line through the real agents: the KAA records a consent and
 * refers to Komvux (`soffa refer provider`), Komvux's agent answers
 * (`soffa referral status`); a kind nobody provides is refused with what to
 * configure. */
Test(provider, the_command_line_through_the_agents)
{
    tk_broker_t *b = s_start(NULL);
    tk_agent_t kaa, komvux;
    tk_agent_start(&kaa, b, "kaa-1419", "kaa", b->ipc, "broker.pub", "kaa-1419.key", NULL);
    tk_agent_start(&komvux, b, "komvux-1419", "komvux", b->ipc, "broker.pub", "komvux-1419.key", NULL);
    char *st = tk_agent_wait(&kaa, "\"connected\":true", NULL, 8000);
    cr_assert(strstr(st, "\"connected\":true"), "kaa did not connect: %s", st);
    free(st);
    st = tk_agent_wait(&komvux, "\"connected\":true", NULL, 8000);
    cr_assert(strstr(st, "\"connected\":true"), "komvux did not connect: %s (see %s)", st, komvux.log);
    cr_assert(strstr(st, "provider/1419/komvux-1419"), "komvux reads its own inbox: %s", st);
    free(st);

    char from[11], to[11], *out = NULL;
    soffa_date_format(soffa_date_today(), from);
    soffa_date_format(soffa_date_local(soffa_now_us() + 30 * 86400000000LL), to);
    const char *rec[] = {"consent", "record", "--pupil", P18, "--hemkommun", "1419", "--youth-age-at-grant", "18",
                         "--maturity-assessed", "yes", "--scope.recipients", "PROVIDER", "--scope.provider-kinds",
                         "KOMVUX", "--scope.purposes", "REFERRAL,STATUS_FEEDBACK", "--scope.data-categories",
                         "IDENTITY", "--valid-from", from, "--valid-to", to, "--recorded-by", "h1", NULL};
    cr_assert_eq(cli(&kaa, &out, rec), 0, "%s", out);
    char *p = strstr(out, "consent_id");
    cr_assert_not_null(p, "%s", out);
    char consent_id[SOFFA_UUID_STR] = "";
    cr_assert_eq(sscanf(p, "consent_id %36s", consent_id), 1, "%s", out);
    free(out);

    uint8_t id[16];
    char ref_id[SOFFA_UUID_STR], case_id[SOFFA_UUID_STR];
    soffa_uuid7(id);
    soffa_uuid_format(id, ref_id);
    soffa_uuid7(id);
    soffa_uuid_format(id, case_id);
    const char *ref[] = {"refer", "provider", "--pupil", P18, "--hemkommun", "1419", "--consent", consent_id,
                         "--provider-kind", "KOMVUX", "--referral-id", ref_id, NULL};
    cr_assert_eq(cli(&kaa, &out, ref), 0, "%s", out);
    cr_assert(strstr(out, "provider/1419/komvux-1419"), "%s", out);
    free(out);
    /* The measure at Komvux names the referral. */
    const char *open[] = {"case", "open", "--pupil", P18, "--hemkommun", "1419", "--case-id", case_id,
                          "--registration-reason", "DROPOUT_NATIONAL", NULL};
    cr_assert_eq(cli(&kaa, &out, open), 0, "%s", out);
    free(out);
    const char *measure[] = {"case", "measure-start", "--pupil", P18, "--hemkommun", "1419", "--case-id", case_id,
                             "--measure-type", "STUDIES_OTHER", "--start", from, "--provider.kind", "PROVIDER",
                             "--provider.provider-kind", "KOMVUX", "--referral-id", ref_id, NULL};
    cr_assert_eq(cli(&kaa, &out, measure), 0, "%s", out);
    cr_assert(strstr(out, "kaa-journal/1419"), "%s", out);
    free(out);
    const char *wrong[] = {"case", "measure-start", "--pupil", P18, "--hemkommun", "1419", "--case-id", case_id,
                           "--measure-type", "STUDIES_OTHER", "--start", from, "--provider.kind", "PROVIDER",
                           "--provider.provider-kind", "FOLKHOGSKOLA", "--referral-id", ref_id, NULL};
    cr_assert_neq(cli(&kaa, &out, wrong), 0, "%s", out);
    cr_assert(strstr(out, "kind komvux, not folkhogskola"), "%s", out);
    free(out);
    const char *none[] = {"refer", "provider", "--pupil", P18, "--hemkommun", "1419", "--consent", consent_id,
                          "--provider-kind", "NAVIGATOR_CENTRE", NULL};
    cr_assert_neq(cli(&kaa, &out, none), 0, "%s", out);
    cr_assert(strstr(out, "provider_kind = navigator_centre"), "%s", out);
    free(out);

    /* Komvux's agent has it, and answers. */
    st = tk_agent_wait(&komvux, "\"received\":1", NULL, 5000);
    free(st);
    const char *ans[] = {"referral", "status", "--re", "last", "--status", "ACCEPTED", NULL};
    int rc = 1;
    for (int i = 0; i < 20 && rc != 0; i++) {   /* until the referral is in its inbox */
        rc = cli(&komvux, &out, ans);
        if (rc != 0) {
            free(out);
            usleep(200000);
        }
    }
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "kaa/1419"), "%s", out);
    free(out);
    tk_agent_stop(&komvux);
    tk_agent_stop(&kaa);
    tk_broker_free(b);
}

/* The key figures count the KAA's own referrals: one social services sent
 * to the KAA (stored in kaa/1419) is not a referral to Arbetsförmedlingen. */
Test(provider, a_referral_to_the_kaa_is_not_counted_as_the_kaas)
{
    json_t *m = J(SOFFA_MT_REFERRAL_SENT, P18);
    set(set(m, "referral_sent.target_kind", "KAA"), "referral_sent.purpose", "KAA_SUPPORT");
    json_t *records = json_pack("[{s:s, s:s, s:o}]", "mailbox", "kaa/1419", "type", "referral_sent", "message", m);
    soffa_date_t to = soffa_date_today(), from = soffa_date_local(soffa_now_us() - 40 * 86400000000LL);
    json_t *st = soffa_stats_compute(records, "1419", from, to);
    cr_assert_not_null(st);
    json_t *af = json_object_get(json_object_get(json_object_get(st, "referrals"), "af"), "sent");
    char *text = json_dumps(af, JSON_COMPACT);
    cr_assert(strstr(text, "\"total\":0"), "social services' referral counted as the KAA's: %s", text);
    free(text);
    json_decref(st);
    json_decref(records);
}
