/*  soffa_prom: the exposition text, and the endpoint with real HTTP (curl
 *  as a process) against a loop that answers, and one that does not.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_prom.h"
#include "testkit.h"

Test(prom, labels_escape_what_the_format_asks)
{
    char l[64];
    cr_assert(soffa_prom_label(l, sizeof l, "", "mailbox", "school/a\"b\\c\nd"));
    cr_assert_str_eq(l, "mailbox=\"school/a\\\"b\\\\c\\nd\"");
    cr_assert(soffa_prom_label(l, sizeof l, ",", "code", "STORE_FULL"));
    cr_assert_str_eq(l, ",code=\"STORE_FULL\"");
    /* Too long: nothing half-written. */
    char small[12];
    cr_assert_not(soffa_prom_label(small, sizeof small, "", "mailbox", "kaa/1419"));
    cr_assert_str_eq(small, "");
}

Test(prom, histograms_are_cumulative_with_sum_and_count)
{
    static const double b[] = {0.001, 0.01, 0.1};
    soffa_prom_hist_t h;
    soffa_prom_hist_init(&h, b, 3);
    soffa_prom_hist_observe(&h, 0.0005);
    soffa_prom_hist_observe(&h, 0.001);   /* on the bound: in that bucket (le) */
    soffa_prom_hist_observe(&h, 0.05);
    soffa_prom_hist_observe(&h, 7);
    soffa_prom_text_t t = {0};
    soffa_prom_hist_write(&t, "x_seconds", "test", &h);
    cr_assert_not(t.oom);
    cr_assert_str_eq(t.buf, "# HELP x_seconds test\n# TYPE x_seconds histogram\n"
                            "x_seconds_bucket{le=\"0.001\"} 2\nx_seconds_bucket{le=\"0.01\"} 2\n"
                            "x_seconds_bucket{le=\"0.1\"} 3\nx_seconds_bucket{le=\"+Inf\"} 4\n"
                            "x_seconds_sum 7.0515\nx_seconds_count 4\n");
    soffa_prom_text_fini(&t);
}

Test(prom, addresses_are_checked_before_anything_binds)
{
    char why[300];
    cr_assert_eq(soffa_prom_check("127.0.0.1:9464", "listen", why, sizeof why), SOFFA_OK);
    cr_assert_eq(soffa_prom_check("[::1]:9464", "listen", why, sizeof why), SOFFA_OK);
    cr_assert_eq(soffa_prom_check("localhost:9464", "listen", why, sizeof why), SOFFA_OK);
    const char *bad[] = {"0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464", "9464", "127.0.0.1", "127.0.0.1:x",
                         "127.0.0.1:70000", "[::1]9464", "host.example:9464", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why[0] = '\0';
        cr_assert_eq(soffa_prom_check(bad[i], "listen", why, sizeof why), SOFFA_ERR_CONFIG, "%s was taken", bad[i]);
        cr_assert(strstr(why, "listen = "), "no reason for '%s': %s", bad[i], why);
    }
}

/* ---- The endpoint ---- */

typedef struct {
    soffa_prom_t *p;
    volatile int stop;
    int rendered;
} loop_t;

static void
render(void *ctx, soffa_prom_text_t *t)
{
    loop_t *l = ctx;
    l->rendered++;
    soffa_prom_family(t, "x_total", "counter", "renderings");
    soffa_prom_sample(t, "x_total", NULL, l->rendered);
}

/* The daemon's loop: polls the fd and answers. */
static void *
loop_main(void *arg)
{
    loop_t *l = arg;
    while (!l->stop) {
        struct pollfd p = {soffa_prom_fd(l->p), POLLIN, 0};
        if (poll(&p, 1, 20) == 1)
            soffa_prom_answer(l->p, render, l);
    }
    return NULL;
}

/* GETs url with curl; returns "CODE BODY" (free it). */
static char *
get(const char *url, const char *method)
{
    char *out = NULL, *argv[] = {"curl", "-s", "-X", (char *) method, "-w", "%{http_code} ", "-o", "/dev/stderr",
                                 (char *) url, NULL};
    char *err = NULL;
    tk_run(argv, &out, &err);
    size_t n = strlen(out) + strlen(err) + 1;
    char *r = malloc(n);
    snprintf(r, n, "%s%s", out, err);
    free(out);
    free(err);
    return r;
}

Test(prom, a_scrape_is_rendered_by_the_loop, .timeout = 30)
{
    char why[300];
    soffa_prom_t *p = NULL;
    cr_assert_eq(soffa_prom_open(&p, "127.0.0.1:0", "listen", why, sizeof why), SOFFA_OK, "%s", why);
    loop_t l = {p, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, loop_main, &l);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", soffa_prom_port(p));
    char *r = get(url, "GET");
    cr_assert_str_eq(r, "200 # HELP x_total renderings\n# TYPE x_total counter\nx_total 1\n");
    free(r);
    r = get(url, "GET");
    cr_assert_str_eq(r, "200 # HELP x_total renderings\n# TYPE x_total counter\nx_total 2\n", "not rendered anew: %s", r);
    free(r);
    r = get(url, "POST");
    cr_assert(!strncmp(r, "405 ", 4), "%s", r);
    free(r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", soffa_prom_port(p));
    r = get(url, "GET");
    cr_assert(!strncmp(r, "404 ", 4), "%s", r);
    free(r);
    cr_assert_eq(l.rendered, 2, "rendered for requests that were not scrapes");
    cr_assert_eq(soffa_prom_scrapes(p), 2);
    l.stop = 1;
    pthread_join(th, NULL);
    soffa_prom_close(&p);
    cr_assert_null(p);
}

Test(prom, a_loop_that_does_not_answer_gets_the_scrape_a_503, .timeout = 30)
{
    char why[300];
    soffa_prom_t *p = NULL;
    cr_assert_eq(soffa_prom_open(&p, "127.0.0.1:0", "listen", why, sizeof why), SOFFA_OK, "%s", why);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", soffa_prom_port(p));
    char *r = get(url, "GET");   /* nobody polls the fd: 5 s, then 503 */
    cr_assert(!strncmp(r, "503 ", 4) && strstr(r, "did not answer within 5 s"), "%s", r);
    free(r);
    /* The fd says a scrape was waiting. */
    struct pollfd pf = {soffa_prom_fd(p), POLLIN, 0};
    cr_assert_eq(poll(&pf, 1, 0), 1);
    soffa_prom_close(&p);
}

Test(prom, a_port_in_use_is_reported)
{
    char why[300];
    soffa_prom_t *a = NULL, *b = NULL;
    cr_assert_eq(soffa_prom_open(&a, "127.0.0.1:0", "listen", why, sizeof why), SOFFA_OK, "%s", why);
    char addr[40];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", soffa_prom_port(a));
    cr_assert_eq(soffa_prom_open(&b, addr, "[metrics] listen", why, sizeof why), SOFFA_ERR_TRANSPORT);
    cr_assert(strstr(why, "cannot listen there: Address already in use"), "%s", why);
    soffa_prom_close(&a);
    soffa_prom_close(&b);
}
