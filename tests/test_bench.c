/*  Smoke tests for soffa-bench: every scenario runs against its own real
 *  broker and prints figures that hang together. No speed is asserted:
 *  benchmarks measure, tests check. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit.h"

#define BENCH SOFFA_BIN_DIR "/soffa-bench"

/* Runs soffa-bench with args (NULL-terminated, at most 16) on port 27100 +
 * slot (each test its own: criterion runs them in parallel) and returns its
 * --json line parsed. */
static json_t *
bench(int slot, const char *const *args)
{
    char port[16];
    snprintf(port, sizeof port, "%d", 27100 + slot);
    char *argv[24] = {BENCH};
    int n = 1;
    for (; args[n - 1] && n < 18; n++)
        argv[n] = (char *) args[n - 1];
    argv[n++] = "--json";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--map-size";
    argv[n++] = "1";
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = tk_run(argv, &out, &err);
    cr_assert_eq(rc, 0, "soffa-bench %s failed (%d): %s", args[0], rc, err);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "not JSON: %s (%s)", out, je.text);
    free(out);
    free(err);
    return j;
}

static double
num(json_t *j, const char *k)
{
    json_t *v = json_object_get(j, k);
    cr_assert(json_is_number(v), "no number '%s' in %s", k, json_dumps(j, 0));
    return json_number_value(v);
}

/* Percentiles never decrease and are positive. */
static void
ordered(json_t *j, const char *prefix)
{
    const char *ks[] = {"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"};
    double last = 0;
    for (int i = 0; i < 5; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s%s", prefix, ks[i]);
        double v = num(j, k);
        cr_assert_gt(v, 0.0, "%s is %f", k, v);
        cr_assert_geq(v, last, "%s (%f) is below the percentile before it (%f)", k, v, last);
        last = v;
    }
}

static void
broker_memory(json_t *j)
{
    cr_assert_gt(num(j, "broker_peak_rss_kb"), 1000.0);
    cr_assert_geq(num(j, "broker_peak_rss_kb"), num(j, "broker_rss_kb"));
}

TestSuite(bench, .timeout = 240);

Test(bench, publish)
{
    const char *a[] = {"publish", "-P", "4", "-W", "4", "-n", "2000", NULL};
    json_t *j = bench(1, a);
    cr_assert_eq(num(j, "messages"), 2000);
    cr_assert_eq(num(j, "errors"), 0);
    cr_assert_gt(num(j, "msgs_per_s"), 0.0);
    /* The traffic is the real schema at about 250 bytes a message. */
    cr_assert(num(j, "message_bytes") > 200 && num(j, "message_bytes") < 400, "%f", num(j, "message_bytes"));
    ordered(j, "");
    broker_memory(j);
    json_decref(j);
}

Test(bench, publish_on_a_prefilled_store)
{
    const char *a[] = {"publish", "-P", "2", "-W", "8", "-n", "1000", "--prefill", "20000", NULL};
    json_t *j = bench(2, a);
    cr_assert_eq(num(j, "prefilled"), 20000);
    cr_assert_eq(num(j, "messages"), 1000);
    cr_assert_eq(num(j, "errors"), 0);
    ordered(j, "");
    json_decref(j);
}

Test(bench, latency)
{
    const char *a[] = {"latency", "-r", "200", "-t", "2", "-C", "4", NULL};
    json_t *j = bench(3, a);
    cr_assert_eq(num(j, "sent"), 400);
    cr_assert_eq(num(j, "received"), 400, "every message reaches its receiving agent");
    cr_assert_eq(num(j, "errors"), 0);
    ordered(j, "e2e_");
    ordered(j, "ack_");
    broker_memory(j);
    json_decref(j);
}

Test(bench, consume_with_a_stalled_reader)
{
    const char *a[] = {"consume", "-n", "4000", "-C", "4", "--stalled", "1", NULL};
    json_t *j = bench(4, a);
    /* Messages go to 5 municipalities by message number; the 4 readers get
     * theirs, the stalled fifth keeps its own. */
    long want = 0;
    for (long i = 0; i < 4000; i++)
        want += (i % 1024) % 5 < 4;
    cr_assert_eq(num(j, "messages"), want);
    cr_assert_gt(num(j, "msgs_per_s"), 0.0);
    cr_assert_gt(num(j, "rss_after_kb"), 0.0);
    broker_memory(j);
    json_decref(j);
}

Test(bench, replay)
{
    const char *a[] = {"replay", "-n", "5000", NULL};
    json_t *j = bench(5, a);
    cr_assert_geq(num(j, "messages"), 5000);
    cr_assert_eq(num(j, "messages"), num(j, "broker_counted"));
    cr_assert_gt(num(j, "msgs_per_s"), 0.0);
    broker_memory(j);
    json_decref(j);
}

Test(bench, connections)
{
    const char *a[] = {"connections", "-K", "60", NULL};
    json_t *j = bench(6, a);
    cr_assert_eq(num(j, "connected"), 60);
    cr_assert_geq(num(j, "broker_sessions"), 60, "the broker counts every agent");
    cr_assert_gt(num(j, "seconds_to_connect"), 0.0);
    broker_memory(j);
    json_decref(j);
}

Test(bench, bad_arguments_are_refused)
{
    char *out = NULL, *err = NULL;
    char *argv[] = {BENCH, "publish", "-P", "many", NULL};
    cr_assert_eq(tk_run(argv, &out, &err), 2);
    cr_assert(strstr(err, "-P wants a whole number") != NULL, "%s", err);
    free(out);
    free(err);
    char *argv2[] = {BENCH, "teleport", NULL};
    cr_assert_eq(tk_run(argv2, &out, &err), 2);
    cr_assert(strstr(err, "no scenario 'teleport'") != NULL, "%s", err);
    free(out);
    free(err);
}
