/*  soffa-bench: load generator and latency recorder for soffa-broker.
 *
 *  By default it brings up its own broker (the real soffa-broker process,
 *  real LMDB, CURVE over TCP, the production settings) in a temporary
 *  directory with generated keys, drives traffic, and prints a table (or
 *  --json). Scenarios so far:
 *    publish   P publishers with W messages in flight each send N messages
 *              (absence reports, ~300 bytes, many made-up pupils and
 *              municipalities): durable messages per second (each
 *              acknowledged only after its commit) and publish-to-ack latency.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_client.h"
#include "soffa_id.h"
#include "soffa_keys.h"
#include "soffa_msg.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

typedef struct {
    const char *scenario;
    int publishers;      /* P */
    int window;          /* W */
    long messages;       /* N */
    bool json;
    const char *broker_bin;
    int port;
} s_opts_t;

typedef struct {
    char dir[256];
    char endpoint[64];
    char broker_pub[41];
    pid_t pid;
} s_broker_t;

/* ---- Test data: made-up pupils across municipalities ---- */

static void
s_pnr(int year, int month, int day, int birth_no, char out[13])
{
    char d[32];
    snprintf(d, sizeof d, "%04u%02u%02u%03u0", (unsigned) year % 10000, (unsigned) month % 100,
             (unsigned) day % 100, (unsigned) birth_no % 1000);
    for (int c = 0; c <= 9; c++) {
        d[11] = (char) ('0' + c);
        if (soffa_luhn_ok(d + 2, 10))
            break;
    }
    memcpy(out, d, 13);
}

static const char *const s_kommuner[] = {"1419", "1415", "1480", "1481", "0180", "1280", "1384", "2584",
                                         "0114", "1401", "1402", "1407", "1440", "1441", "1442", "1462"};

/* A 10-digit number that passes the Luhn check, from a 9-digit stem. */
static void
s_luhn10(long stem, char out[11])
{
    snprintf(out, 11, "%09ld0", stem % 1000000000L);
    for (int c = 0; c <= 9; c++) {
        out[9] = (char) ('0' + c);
        if (soffa_luhn_ok(out, 10))
            break;
    }
}

/* Message i of the traffic: absence reports and enrolment changes (3:1)
 * about made-up pupils from the municipalities above, with the sender's
 * organisation, unit and user reference filled in as a school system would:
 * about 300 bytes encoded. */
static uint8_t *
s_message(long i, size_t *len)
{
    soffa_date_t today = soffa_date_today();
    char pnr[13], org[11];
    s_pnr(today.year - 17, 1 + (int) (i % 12), 1 + (int) (i % 28), 1 + (int) (i % 997), pnr);
    s_luhn10(212000000L + i % 50, org);
    uint8_t id[16], corr[16], cause[16];
    char ids[SOFFA_UUID_STR], cs[SOFFA_UUID_STR], cz[SOFFA_UUID_STR];
    soffa_uuid7(id);
    soffa_uuid7(corr);
    soffa_uuid7(cause);
    soffa_uuid_format(id, ids);
    soffa_uuid_format(corr, cs);
    soffa_uuid_format(cause, cz);
    int64_t now = soffa_now_us();
    int term = today.year - (today.month < 10);
    char payload[400];
    if (i % 4 == 3)
        snprintf(payload, sizeof payload,
                 "\"legal_basis\":\"SL_15_15_ENROLMENT\",\"enrolment_changed\":{\"event\":\"LEFT\","
                 "\"effective_date\":\"%04d-10-15\",\"school_unit\":\"12345678\",\"school_form\":\"GY\","
                 "\"programme_code\":\"SAEKO\",\"leave_reason\":\"DISCONTINUED\"}",
                 term);
    else
        snprintf(payload, sizeof payload,
                 "\"legal_basis\":\"SL_15_15_ABSENCE\",\"absence_reported\":{\"period_from\":\"%04d-09-01\","
                 "\"period_to\":\"%04d-10-15\",\"unexcused_band\":\"SIGNIFICANT\",\"investigation_started\":true,"
                 "\"reported_to_csn\":\"YES\",\"school_unit\":\"12345678\"}",
                 term, term);
    char json[1400];
    snprintf(json, sizeof json,
             "{\"message_id\":\"%s\",\"schema_version\":\"1.0\",\"occurred_at_us\":%lld,\"sent_at_us\":%lld,"
             "\"sender\":{\"kind\":\"SCHOOL_PRINCIPAL\",\"org_nr\":\"%s\",\"kommunkod\":\"1415\","
             "\"unit_id\":\"12345678\",\"actor_ref\":\"urn:sis:hsa:SE2321000131-E%012ld:rektor:gymnasiet\"},"
             "\"subject\":{\"id_type\":\"PNR\",\"id\":\"%s\",\"hemkommun\":\"%s\"},"
             "\"correlation_id\":\"%s\",\"causation_id\":\"%s\","
             "\"classification\":{\"secrecy_ref\":\"OSL 23:1 st. 1, OSL 26:1\",\"level\":\"SECRET\"},%s}",
             ids, (long long) now - 86400000000LL, (long long) now, org, i % 50, pnr,
             s_kommuner[i % (sizeof s_kommuner / sizeof *s_kommuner)], cs, cz, payload);
    soffa_msg_t *m = NULL;
    uint8_t *buf = NULL;
    if (soffa_msg_from_json(json, &m, NULL, 0) != SOFFA_OK || soffa_msg_encode(m, &buf, len) != SOFFA_OK) {
        fprintf(stderr, "soffa-bench: could not build a test message\n");
        exit(1);
    }
    soffa_msg_destroy(&m);
    return buf;
}

/* ---- Our own broker ---- */

static int
s_write_key(const char *dir, const char *name, char pub[41], char sec[41])
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (soffa_keys_generate(path) != SOFFA_OK)
        return -1;
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    return soffa_keys_load_secret(path, pub, sec) == SOFFA_OK ? 0 : -1;
}

static bool
s_broker_up(s_broker_t *b, const s_opts_t *o)
{
    snprintf(b->dir, sizeof b->dir, "/tmp/soffa-bench-XXXXXX");
    if (!mkdtemp(b->dir))
        return false;
    snprintf(b->endpoint, sizeof b->endpoint, "tcp://127.0.0.1:%d", o->port);
    char sec[41], path[512];
    if (s_write_key(b->dir, "broker", b->broker_pub, sec) != 0)
        return false;
    snprintf(path, sizeof path, "%s/broker.ini", b->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    /* The production settings, apart from where things live. */
    fprintf(f, "[broker]\nendpoint = %s\nsecret_key = broker.key\ndata_dir = data\nlog_level = %s\n"
               "[store]\nmap_size = 16GiB\n",
            b->endpoint, getenv("SOFFA_BENCH_LOG") ? getenv("SOFFA_BENCH_LOG") : "warn");
    for (int i = 0; i < o->publishers; i++) {
        char name[64], pub[41];
        snprintf(name, sizeof name, "bench-school-%d", i);
        if (s_write_key(b->dir, name, pub, sec) != 0) {
            fclose(f);
            return false;
        }
        fprintf(f, "[agent %s]\npublic_key = %s\nrole = school\nkommun = 1415\nunit = 12345678\n", name, pub);
    }
    fclose(f);
    b->pid = fork();
    if (b->pid == 0) {
        execl(o->broker_bin, "soffa-broker", "--config", path, (char *) NULL);
        fprintf(stderr, "soffa-bench: cannot run %s: %s\n", o->broker_bin, strerror(errno));
        _exit(127);
    }
    return true;
}

static void
s_broker_down(s_broker_t *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        waitpid(b->pid, NULL, 0);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
    if (strncmp(b->dir, "/tmp/soffa-bench-", 17) == 0 && system(cmd) != 0)
        fprintf(stderr, "soffa-bench: could not remove %s\n", b->dir);
}

static long
s_rss_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = atol(line + strlen(field));
    if (f)
        fclose(f);
    return kb;
}

static int
s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

/* ---- publish ---- */

static int
s_publish(const s_opts_t *o, s_broker_t *b)
{
    long n = o->messages;
    size_t *lens = calloc((size_t) n, sizeof *lens);
    uint8_t **msgs = calloc((size_t) n, sizeof *msgs);
    int64_t *sent_at = calloc((size_t) n, sizeof *sent_at), *lat = calloc((size_t) n, sizeof *lat);
    if (!lens || !msgs || !sent_at || !lat)
        return 1;
    size_t bytes = 0;
    for (long i = 0; i < n; i++) {
        msgs[i] = s_message(i, &lens[i]);
        bytes += lens[i];
    }
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, 1);
    soffa_client_t **c = calloc((size_t) o->publishers, sizeof *c);
    for (int p = 0; p < o->publishers; p++) {
        char name[64], path[512], pub[41], sec[41];
        snprintf(name, sizeof name, "bench-school-%d", p);
        snprintf(path, sizeof path, "%s/%s.key", b->dir, name);
        if (soffa_keys_load_secret(path, pub, sec) != SOFFA_OK)
            return 1;
        soffa_client_opts_t co = {.endpoint = b->endpoint, .server_public = b->broker_pub, .public_key = pub,
                                  .secret_key = sec, .name = name, .timeout_ms = 10000, .zmq_ctx = ctx};
        soffa_err_t rc = SOFFA_ERR_TIMEOUT;
        for (int tries = 0; tries < 50 && rc != SOFFA_OK; tries++)
            rc = soffa_client_connect(&c[p], &co, NULL);
        if (rc != SOFFA_OK) {
            fprintf(stderr, "soffa-bench: publisher %d could not connect: %s\n", p, soffa_strerror(rc));
            return 1;
        }
    }
    zmq_pollitem_t *items = calloc((size_t) o->publishers, sizeof *items);
    long *next = calloc((size_t) o->publishers, sizeof *next), *inflight = calloc((size_t) o->publishers, sizeof *inflight);
    for (int p = 0; p < o->publishers; p++) {
        items[p] = (zmq_pollitem_t) {soffa_client_socket(c[p]), 0, ZMQ_POLLIN, 0};
        next[p] = p;   /* publisher p sends messages p, p+P, p+2P, ... */
    }
    long done = 0, errors = 0;
    int64_t t0 = soffa_mono_us();
    while (done < n) {
        for (int p = 0; p < o->publishers; p++) {
            while (inflight[p] < o->window && next[p] < n) {
                long i = next[p];
                soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH, .tag = (uint64_t) i + 1, .data = msgs[i],
                                   .data_len = lens[i]};
                sent_at[i] = soffa_mono_us();
                if (soffa_client_send(c[p], &f) != SOFFA_OK)
                    break;
                inflight[p]++;
                next[p] += o->publishers;
            }
        }
        if (zmq_poll(items, o->publishers, 10000) <= 0) {
            fprintf(stderr, "soffa-bench: no answer from the broker for 10 s\n");
            return 1;
        }
        for (int p = 0; p < o->publishers; p++) {
            if (!(items[p].revents & ZMQ_POLLIN))
                continue;
            soffa_frame_t f;
            while (soffa_client_recv(c[p], &f, 0) == SOFFA_OK) {
                int64_t now = soffa_mono_us();
                if (f.type == SOFFA_FRAME_PUBLISH_ACK || f.type == SOFFA_FRAME_ERROR) {
                    long i = (long) f.tag - 1;
                    if (i >= 0 && i < n)
                        lat[done] = now - sent_at[i];
                    if (f.type == SOFFA_FRAME_ERROR && errors++ == 0)
                        fprintf(stderr, "soffa-bench: refused: %s\n", f.text);
                    inflight[p]--;
                    done++;
                }
                soffa_frame_fini(&f);
            }
        }
    }
    int64_t elapsed = soffa_mono_us() - t0;
    qsort(lat, (size_t) n, sizeof *lat, s_cmp_i64);
    double rate = (double) n / ((double) elapsed / 1e6);
    long rss = b->pid > 0 ? s_rss_kb(b->pid, "VmHWM:") : -1;
#define PCT(q) ((double) lat[(size_t) ((double) (n - 1) * (q))] / 1000.0)
    if (o->json) {
        json_t *j = json_pack("{s:s, s:i, s:i, s:I, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I}", "scenario",
                              "publish", "publishers", o->publishers, "window", o->window, "messages",
                              (json_int_t) n, "message_bytes", (int) (bytes / (size_t) n), "msgs_per_s", rate,
                              "p50_ms", PCT(0.5), "p90_ms", PCT(0.9), "p99_ms", PCT(0.99), "p999_ms", PCT(0.999),
                              "max_ms", (double) lat[n - 1] / 1000.0, "errors", (json_int_t) errors,
                              "broker_peak_rss_kb", (json_int_t) rss);
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(j);
    } else {
        printf("soffa-bench publish: %d publishers x %d in flight, %ld messages of ~%zu bytes, durable\n",
               o->publishers, o->window, n, bytes / (size_t) n);
        printf("  %-28s %12.0f msgs/s\n", "throughput", rate);
        printf("  %-28s %8.3f ms\n  %-28s %8.3f ms\n  %-28s %8.3f ms\n  %-28s %8.3f ms\n  %-28s %8.3f ms\n",
               "publish-to-ack p50", PCT(0.5), "p90", PCT(0.9), "p99", PCT(0.99), "p99.9", PCT(0.999), "max",
               (double) lat[n - 1] / 1000.0);
        printf("  %-28s %12ld\n  %-28s %9ld kB\n", "refused", errors, "broker peak resident", rss);
    }
#undef PCT
    for (int p = 0; p < o->publishers; p++)
        soffa_client_close(&c[p]);
    zmq_ctx_term(ctx);
    for (long i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    free(lens);
    free(sent_at);
    free(lat);
    free(items);
    free(next);
    free(inflight);
    free(c);
    return errors ? 1 : 0;
}

static void
s_usage(FILE *out)
{
    fputs("usage: soffa-bench publish [-P publishers] [-W in-flight] [-n messages] [--json]\n"
          "                          [--broker-bin PATH] [--port N]\n"
          "\n"
          "Starts its own soffa-broker (CURVE over TCP, durable LMDB store in a temporary\n"
          "directory), drives the scenario and prints the figures.\n"
          "  publish   durable publishes per second and publish-to-ack latency\n"
          "Defaults: -P 16 -W 16 -n 200000, port 25570.\n",
          out);
}

int
main(int argc, char **argv)
{
    s_opts_t o = {.publishers = 16, .window = 16, .messages = 200000, .port = 25570};
    char bin[1024];
    ssize_t len = readlink("/proc/self/exe", bin, sizeof bin - 20);
    if (len > 0) {
        bin[len] = '\0';
        char *slash = strrchr(bin, '/');
        strcpy(slash ? slash + 1 : bin, "soffa-broker");
        o.broker_bin = bin;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-P") && i + 1 < argc)
            o.publishers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-W") && i + 1 < argc)
            o.window = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            o.messages = atol(argv[++i]);
        else if (!strcmp(argv[i], "--json"))
            o.json = true;
        else if (!strcmp(argv[i], "--broker-bin") && i + 1 < argc)
            o.broker_bin = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            o.port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            s_usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && !o.scenario)
            o.scenario = argv[i];
        else {
            fprintf(stderr, "soffa-bench: unknown argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    if (!o.scenario || strcmp(o.scenario, "publish") != 0 || o.publishers < 1 || o.window < 1 || o.messages < 1) {
        s_usage(stderr);
        return 2;
    }
    s_broker_t b = {0};
    if (!s_broker_up(&b, &o)) {
        fprintf(stderr, "soffa-bench: could not set up a broker\n");
        return 1;
    }
    int rc = s_publish(&o, &b);
    s_broker_down(&b);
    return rc;
}
