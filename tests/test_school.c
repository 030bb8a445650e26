/*  Tests for soffa_school: the school agent's change tracking, on a real
 *  agent store (LMDB) in a temporary directory, without a broker. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_box.h"
#include "soffa_school.h"
#include "testkit.h"

static const char *SECRET = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

static soffa_school_cfg_t
cfg(void)
{
    soffa_school_cfg_t c = {.absence_min_minutes = 600, .absence_significant = 20, .absence_extensive = 50,
                            .absence_total = 90, .transfer_days = 14, .timeout_ms = 60000, .page_size = 500};
    strcpy(c.principal_kommun, "1415");
    strcpy(c.school_unit, "14150001");
    return c;
}

static json_t *
observe(soffa_school_t *s, const char *pnr, const char *hk, const char *end, bool dry)
{
    json_t *req = json_pack("{s:s, s:b, s:s, s:s, s:[{s:s, s:s, s:s, s:s, s:b, s:s, s:[{s:s, s:s, s:s, s:s, s:s, "
                            "s:b, s:s}], s:[]}]}",
                            "cmd", "school-observe", "dry_run", dry, "since", "2026-08-01", "today", "2026-11-27",
                            "pupils", "where", "t", "id", pnr, "id_type", "PNR", "hemkommun", hk, "protected", 0,
                            "status", "Aktiv", "enrolments", "unit", "", "form", "GY", "programme", "NA", "start",
                            "2026-08-17", "end", end, "cancelled", 0, "reason", "", "absence");
    bool queued = false;
    json_t *a = soffa_school_control(s, "school-observe", req, &queued);
    json_decref(req);
    return a;
}

typedef struct {
    const char *needle;
    int in_keys, in_values, records;
} find_t;

static bool
contains(const void *hay, size_t hl, const char *needle)
{
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= hl; i++)
        if (!memcmp((const char *) hay + i, needle, nl))
            return true;
    return false;
}

static int
find(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    find_t *f = ctx;
    f->records++;
    f->in_keys += contains(k, kl, f->needle);
    f->in_values += contains(v, vl, f->needle);
    return 0;
}

typedef struct {
    soffa_box_t *box;
    find_t f;
} scan_t;

static soffa_err_t
scan_all(void *ctx, soffa_box_txn_t *t)
{
    scan_t *sc = ctx;
    const char *names[] = {"school-pupil", "school-event", "school-meta"};
    for (int i = 0; i < 3; i++) {
        uint32_t tab;
        cr_assert_eq(soffa_box_table(sc->box, names[i], &tab), SOFFA_OK);
        soffa_box_txn_scan(t, tab, find, &sc->f);
    }
    return SOFFA_OK;
}

Test(school, a_change_is_signalled_once_and_keys_hold_no_identity_number)
{
    char dir[] = "/tmp/soffa-school-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char pnr[13];
    tk_pnr(2008, 3, 14, 271, 0, pnr);
    soffa_box_t *box = NULL;
    soffa_school_t *s = NULL;
    soffa_school_cfg_t c = cfg();
    cr_assert_eq(soffa_box_open(&box, dir, 16 << 20, tk_master(), NULL, 0), SOFFA_OK);
    cr_assert_eq(soffa_school_new(&s, &c, box, SECRET, "/nonexistent", dir), SOFFA_OK);

    json_t *a = observe(s, pnr, "1419", "2029-06-10", true);
    cr_assert(json_is_true(json_object_get(a, "ok")));
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(a, "signals"), 0), "state")),
                     "would_queue");
    cr_assert_eq(soffa_box_outbox_count(box), 0, "a dry run writes nothing");
    json_decref(a);

    a = observe(s, pnr, "1419", "2029-06-10", false);
    json_t *sig = json_array_get(json_object_get(a, "signals"), 0);
    cr_assert_eq(json_array_size(json_object_get(a, "signals")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(sig, "pupil")), "0803…");
    char first_id[64];
    snprintf(first_id, sizeof first_id, "%s", json_string_value(json_object_get(sig, "id")));
    cr_assert_eq(first_id[14], '7', "a UUIDv7: %s", first_id);
    cr_assert_eq(soffa_box_outbox_count(box), 1);
    json_decref(a);

    a = observe(s, pnr, "1419", "2029-06-10", false);
    cr_assert_eq(json_array_size(json_object_get(a, "signals")), 0, "the same change again: nothing new");
    cr_assert_eq(json_integer_value(json_object_get(a, "unchanged")), 1);
    json_decref(a);

    /* The end moved earlier: LEFT. */
    a = observe(s, pnr, "1419", "2026-10-01", false);
    sig = json_array_get(json_object_get(a, "signals"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(sig, "what")), "inskrivning avslutad 2026-10-01 (orsak: okänd)");
    json_decref(a);

    scan_t sc = {box, {pnr + 2, 0, 0, 0}};
    soffa_box_read(box, scan_all, &sc);
    cr_assert_eq(sc.f.in_keys, 0, "no identity number in any key of the school tables");
    cr_assert_gt(sc.f.in_values, 0, "the pupil's record holds the number (the scan does look)");

    /* A store rebuilt from nothing derives the same id (so the broker
     * drops a resend). */
    soffa_school_destroy(&s);
    soffa_box_close(&box);
    char dir2[] = "/tmp/soffa-school-XXXXXX";
    cr_assert_not_null(mkdtemp(dir2));
    cr_assert_eq(soffa_box_open(&box, dir2, 16 << 20, tk_master(), NULL, 0), SOFFA_OK);
    cr_assert_eq(soffa_school_new(&s, &c, box, SECRET, "/nonexistent", dir2), SOFFA_OK);
    a = observe(s, pnr, "1419", "2029-06-10", false);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(a, "signals"), 0), "id")),
                     first_id);
    json_decref(a);
    soffa_school_destroy(&s);
    soffa_box_close(&box);
    tk_rmrf(dir);
    tk_rmrf(dir2);
}

Test(school, hostile_observations_are_refused_whole)
{
    char dir[] = "/tmp/soffa-school-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char good[13], bad[13];
    tk_pnr(2008, 3, 14, 271, 0, good);
    strcpy(bad, good);
    bad[11] = bad[11] == '9' ? '0' : (char) (bad[11] + 1);
    soffa_box_t *box = NULL;
    soffa_school_t *s = NULL;
    soffa_school_cfg_t c = cfg();
    cr_assert_eq(soffa_box_open(&box, dir, 16 << 20, tk_master(), NULL, 0), SOFFA_OK);
    cr_assert_eq(soffa_school_new(&s, &c, box, SECRET, "/nonexistent", dir), SOFFA_OK);
    json_t *a = observe(s, bad, "1419", "", false);
    cr_assert(!json_is_true(json_object_get(a, "ok")));
    cr_assert(strstr(json_string_value(json_object_get(a, "error")), "not a valid 12-digit") != NULL);
    json_decref(a);
    a = observe(s, good, "1400", "", false);
    cr_assert(!json_is_true(json_object_get(a, "ok")), "an unknown municipality");
    json_decref(a);
    cr_assert_eq(soffa_box_outbox_count(box), 0);
    /* Without [school] the agent refuses pupil data. */
    soffa_school_destroy(&s);
    soffa_school_cfg_t none = cfg();
    none.principal_kommun[0] = '\0';
    cr_assert_eq(soffa_school_new(&s, &none, box, SECRET, "/nonexistent", dir), SOFFA_OK);
    a = observe(s, good, "1419", "", false);
    cr_assert_str_eq(json_string_value(json_object_get(a, "code")), "CONFIG");
    json_decref(a);
    soffa_school_destroy(&s);
    soffa_box_close(&box);
    tk_rmrf(dir);
}
