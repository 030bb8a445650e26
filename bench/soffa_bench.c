/*  soffa-bench: load generator and latency recorder for soffa-broker.
 *
 *  By default it brings up its own broker (the real soffa-broker process,
 *  real LMDB, CURVE over TCP, the production settings) in a temporary
 *  directory with generated keys, drives one scenario and prints a table
 *  (or --json). With --target it drives a running broker instead, using
 *  keys made by `soffa-bench keys DIR`.
 *
 *    publish      P publishers, W messages in flight each, N messages:
 *                 durable messages per second (each acknowledged only after
 *                 its commit) and publish-to-ack latency. --prefill fills
 *                 the store first, to show the cost does not grow with it.
 *    latency      one publisher at a fixed rate for a fixed time, consumers
 *                 subscribed to every mailbox: publish-to-delivery latency
 *                 at the receiving agent's session.
 *    consume      N stored messages over C mailboxes, one consumer each,
 *                 acknowledging what it receives: deliveries per second.
 *                 --stalled adds consumers that stop reading.
 *    replay       one auditor replays N stored messages: messages per second.
 *    connections  K agents connect with CURVE and stay idle: time until all
 *                 are connected, and the broker's resident memory.
 *
 *  The traffic is the real schema: absence reports and enrolment changes
 *  (3:1) about made-up pupils who pass the identity checks, from many
 *  municipalities, about 250 bytes each encoded.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_client.h"
#include "soffa_id.h"
#include "soffa_keys.h"
#include "soffa_msg.h"
#include "soffa_seal.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "soffa_version.h"

#define S_POOL 1024   /* distinct message bodies; each send gets its own id */

typedef struct {
    const char *scenario;
    int publishers;      /* -P */
    int window;          /* -W */
    int batch;           /* -B: messages per PUBLISH(-BATCH) frame */
    int protocol;        /* --protocol: 1 = one message per frame, 2 = batch frames */
    long messages;       /* -n, 0 = the scenario's default */
    int rate;            /* -r, latency */
    int seconds;         /* -t, latency */
    int mailboxes;       /* -C: municipalities the traffic goes to */
    int credit;          /* consumers' window */
    int stalled;         /* consume: consumers that stop reading */
    int agents;          /* -K, connections */
    long prefill;        /* records stored before the run */
    bool json;
    const char *broker_bin;
    int port;
    const char *target;      /* a running broker's endpoint */
    const char *broker_key;  /* its public key file */
    const char *keys_dir;    /* keys from `soffa-bench keys` */
    long map_gib;
} s_opts_t;

typedef struct {
    char dir[512];           /* keys, config, store */
    char endpoint[256];
    char broker_pub[41];
    pid_t pid;               /* 0 when driving a running broker */
    bool own_dir;
} s_broker_t;

/* ---- Test data: made-up pupils across municipalities ------------------------- */

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

/* A 10-digit number that passes the Luhn check, from a 9-digit stem. */
static void
s_luhn10(long stem, char out[11])
{
    char buf[24];   /* room for any long, which the compiler cannot see the modulo bound */
    snprintf(buf, sizeof buf, "%09ld0", labs(stem % 1000000000L));
    memcpy(out, buf, 11);
    for (int c = 0; c <= 9; c++) {
        out[9] = (char) ('0' + c);
        if (soffa_luhn_ok(out, 10))
            break;
    }
}

/* Municipality j of the traffic: spread over the whole country. */
static const char *
s_kommun(int j)
{
    size_t n = soffa_kommun_count();
    return soffa_kommun_at(((size_t) j * 37) % n);
}

typedef struct {
    uint8_t *body[S_POOL];
    size_t len[S_POOL];
    char pnr[S_POOL][13];
    int kommun[S_POOL];       /* index for s_kommun */
    soffa_msg_type_t type[S_POOL];
    size_t bytes;             /* sum of len */
} s_pool_t;

/* The bench schools' principal: its organisationsnummer is in each
 * bench-school agent's configuration (orgnr), as the broker requires of a
 * message that claims it. */
#define S_ORG_STEM 212000135L

/* Message i: absence reports and enrolment changes (3:1) about a made-up
 * pupil of municipality i % mailboxes, with the sender's organisation, unit
 * and user reference (an HSA-id) filled in as a school system would. */
static bool
s_pool_make(s_pool_t *pool, int mailboxes)
{
    soffa_date_t today = soffa_date_today();
    /* Dates within the term so far, relative to today: the broker takes
     * dates at most [policy] event_max_days back. */
    char from[11], to[11], left[11];
    int64_t t0 = soffa_now_us();
    soffa_date_format(soffa_date_local(t0 - 60 * 86400000000LL), from);
    soffa_date_format(soffa_date_local(t0 - 14 * 86400000000LL), to);
    soffa_date_format(soffa_date_local(t0 - 30 * 86400000000LL), left);
    memset(pool, 0, sizeof *pool);
    for (long i = 0; i < S_POOL; i++) {
        char org[11], ids[SOFFA_UUID_STR], cs[SOFFA_UUID_STR], cz[SOFFA_UUID_STR];
        uint8_t u[16];
        s_pnr(today.year - 17, 1 + (int) (i % 12), 1 + (int) (i % 28), 1 + (int) (i % 997), pool->pnr[i]);
        s_luhn10(S_ORG_STEM, org);
        soffa_uuid7(u);
        soffa_uuid_format(u, ids);
        soffa_uuid7(u);
        soffa_uuid_format(u, cs);
        soffa_uuid7(u);
        soffa_uuid_format(u, cz);
        pool->kommun[i] = (int) (i % mailboxes);
        int64_t now = soffa_now_us();
        char payload[400], json[1400];
        if (i % 4 == 3) {
            pool->type[i] = SOFFA_MT_ENROLMENT_CHANGED;
            snprintf(payload, sizeof payload,
                     "\"legal_basis\":\"SL_15_15_ENROLMENT\",\"enrolment_changed\":{\"event\":\"LEFT\","
                     "\"effective_date\":\"%s\",\"school_unit\":\"12345678\",\"school_form\":\"GY\","
                     "\"programme_code\":\"SAEKO\",\"leave_reason\":\"DISCONTINUED\"}",
                     left);
        } else {
            pool->type[i] = SOFFA_MT_ABSENCE_REPORTED;
            snprintf(payload, sizeof payload,
                     "\"legal_basis\":\"SL_15_15_ABSENCE\",\"absence_reported\":{\"period_from\":\"%s\","
                     "\"period_to\":\"%s\",\"unexcused_band\":\"SIGNIFICANT\",\"investigation_started\":true,"
                     "\"reported_to_csn\":\"YES\",\"school_unit\":\"12345678\"}",
                     from, to);
        }
        snprintf(json, sizeof json,
                 "{\"message_id\":\"%s\",\"schema_version\":\"1.0\",\"occurred_at_us\":%lld,\"sent_at_us\":%lld,"
                 "\"sender\":{\"kind\":\"SCHOOL_PRINCIPAL\",\"org_nr\":\"%s\",\"kommunkod\":\"1415\","
                 "\"unit_id\":\"12345678\",\"actor_ref\":\"SE2321000131-E%012ld\"},"
                 "\"subject\":{\"id_type\":\"PNR\",\"id\":\"%s\",\"hemkommun\":\"%s\"},"
                 "\"correlation_id\":\"%s\",\"causation_id\":\"%s\","
                 "\"classification\":{\"secrecy_ref\":\"OSL 23:1\",\"level\":\"SECRET\"},%s}",
                 ids, (long long) now - 86400000000LL, (long long) now, org, i % 50, pool->pnr[i],
                 s_kommun(pool->kommun[i]), cs, cz, payload);
        soffa_msg_t *m = NULL;
        char why[256] = "";
        if (soffa_msg_from_json(json, &m, why, sizeof why) != SOFFA_OK
            || soffa_msg_encode(m, &pool->body[i], &pool->len[i]) != SOFFA_OK) {
            fprintf(stderr, "soffa-bench: could not build a test message: %s\n", why);
            soffa_msg_destroy(&m);
            return false;
        }
        soffa_msg_destroy(&m);
        /* The message id must be the first field, so that each send can
         * carry its own id without encoding the message again. */
        if (pool->len[i] < 18 || pool->body[i][0] != 0x0a || pool->body[i][1] != 16) {
            fprintf(stderr, "soffa-bench: unexpected message encoding\n");
            return false;
        }
        pool->bytes += pool->len[i];
    }
    return true;
}

static void
s_pool_free(s_pool_t *pool)
{
    for (int i = 0; i < S_POOL; i++)
        free(pool->body[i]);
}

/* Message number i: body i % S_POOL with a fresh UUIDv7 whose last four
 * bytes are i, so that a receiver knows which send it was. */
static uint8_t *
s_msg(const s_pool_t *pool, long i, size_t *len)
{
    size_t k = (size_t) i % S_POOL;
    uint8_t *b = malloc(pool->len[k]);
    if (!b)
        return NULL;
    memcpy(b, pool->body[k], pool->len[k]);
    soffa_uuid7(b + 2);
    b[14] = (uint8_t) (i >> 24);
    b[15] = (uint8_t) (i >> 16);
    b[16] = (uint8_t) (i >> 8);
    b[17] = (uint8_t) i;
    *len = pool->len[k];
    return b;
}

static long
s_msg_index(const uint8_t id[16])
{
    return (long) ((uint32_t) id[12] << 24 | (uint32_t) id[13] << 16 | (uint32_t) id[14] << 8 | id[15]);
}

/* ---- Keys, configuration and the broker --------------------------------------- */

static bool
s_key(const char *dir, const char *name, char pub[41], char sec[41])
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    if (access(path, R_OK) != 0) {
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (soffa_keys_generate(path) != SOFFA_OK)
            return false;
        snprintf(path, sizeof path, "%s/%s.key", dir, name);
    }
    return soffa_keys_load_secret(path, pub, sec) == SOFFA_OK;
}

/* Writes the agents' keys into dir and their [agent] sections to f. */
static bool
s_agents(const s_opts_t *o, const char *dir, FILE *f)
{
    char pub[41], sec[41], name[64], org[11];
    s_luhn10(S_ORG_STEM, org);
    for (int i = 0; i < o->publishers; i++) {
        snprintf(name, sizeof name, "bench-school-%d", i);
        if (!s_key(dir, name, pub, sec))
            return false;
        fprintf(f, "[agent %s]\npublic_key = %s\nrole = school\nkommun = 1415\nunit = 12345678\norgnr = %s\n", name,
                pub, org);
    }
    for (int j = 0; j < o->mailboxes + o->stalled; j++) {
        snprintf(name, sizeof name, "bench-kaa-%s", s_kommun(j));
        if (!s_key(dir, name, pub, sec))
            return false;
        fprintf(f, "[agent %s]\npublic_key = %s\nrole = kaa\nkommun = %s\n", name, pub, s_kommun(j));
    }
    if (!s_key(dir, "bench-audit", pub, sec))
        return false;
    fprintf(f, "[agent bench-audit]\npublic_key = %s\nrole = audit\nscope = *\nspan_controllers = yes\n", pub);
    for (int i = 0; i < o->agents; i++) {
        snprintf(name, sizeof name, "bench-idle-%d", i);
        if (!s_key(dir, name, pub, sec))
            return false;
        fprintf(f, "[agent %s]\npublic_key = %s\nrole = school\nkommun = 1415\nunit = 12345678\n", name, pub);
    }
    return true;
}

/* Writes records straight into the broker's store before it starts, as the
 * broker would have stored them: count records, spread over the mailboxes
 * (plus the stalled ones), in commits of 10,000. */
static bool
s_prefill(const s_opts_t *o, const s_broker_t *b, const s_pool_t *pool, long count)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/data", b->dir);
    soffa_store_t *st = NULL;
    soffa_seal_master_t mk;
    char kp[1100], why[600];
    snprintf(kp, sizeof kp, "%s/master.key", b->dir);
    if (soffa_seal_master_load(kp, NULL, NULL, &mk, why, sizeof why) != SOFFA_OK) {
        fprintf(stderr, "soffa-bench: %s\n", why);
        return false;
    }
    soffa_store_opts_t so = {.path = path, .map_size = (size_t) o->map_gib << 30, .master = &mk};
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return false;
    soffa_err_t orc = soffa_store_open(&st, &so);
    soffa_seal_master_wipe(&mk);
    if (orc != SOFFA_OK)
        return false;
    enum { BATCH = 10000 };
    soffa_envelope_t *env = calloc(BATCH, sizeof *env);
    soffa_store_item_t *it = calloc(BATCH, sizeof *it);
    uint8_t **bodies = calloc(BATCH, sizeof *bodies);
    bool ok = env && it && bodies;
    int64_t t0 = soffa_mono_us();
    for (long done = 0; ok && done < count;) {
        size_t n = (size_t) (count - done < BATCH ? count - done : BATCH);
        for (size_t k = 0; k < n; k++) {
            long i = done + (long) k;
            size_t len, p = (size_t) i % S_POOL;
            bodies[k] = s_msg(pool, i, &len);
            if (!bodies[k]) {
                ok = false;
                n = k;
                break;
            }
            soffa_envelope_t *e = &env[k];
            memset(e, 0, sizeof *e);
            e->body = bodies[k];
            e->body_len = len;
            e->kind = SOFFA_RK_MESSAGE;
            e->msg_type = (uint32_t) pool->type[p];
            memcpy(e->message_id, bodies[k] + 2, 16);
            snprintf(e->sender_agent, sizeof e->sender_agent, "bench-school-%ld", i % (o->publishers ? o->publishers : 1));
            e->sender_role = SOFFA_ROLE_SCHOOL;
            snprintf(e->sender_kommun, sizeof e->sender_kommun, "1415");
            snprintf(e->sender_unit, sizeof e->sender_unit, "12345678");
            e->received_at_us = soffa_now_us();
            snprintf(e->mailbox, sizeof e->mailbox, "kaa/%s", s_kommun(pool->kommun[p]));
            it[k] = (soffa_store_item_t) {.env = e, .subject_id = pool->pnr[p], .n_refs = 1};
            it[k].refs[0].key[0] = 'M';   /* as the policy keys a signal */
            memcpy(it[k].refs[0].key + 1, e->message_id, 16);
            it[k].refs[0].len = 17;
        }
        if (ok && soffa_store_append(st, it, n) != SOFFA_OK)
            ok = false;
        for (size_t k = 0; k < n; k++)
            free(bodies[k]);
        done += (long) n;
        if (!o->json && count >= 1000000 && done % 1000000 == 0)
            fprintf(stderr, "soffa-bench: stored %ld of %ld (%.0f s)\n", done, count,
                    (double) (soffa_mono_us() - t0) / 1e6);
    }
    free(env);
    free(it);
    free(bodies);
    soffa_store_close(&st);
    return ok;
}

static bool
s_broker_up(s_broker_t *b, const s_opts_t *o, const s_pool_t *pool)
{
    char path[1024];
    if (o->target) {
        snprintf(b->dir, sizeof b->dir, "%s", o->keys_dir);
        snprintf(b->endpoint, sizeof b->endpoint, "%s", o->target);
        if (soffa_keys_load_public(o->broker_key, b->broker_pub) != SOFFA_OK) {
            fprintf(stderr, "soffa-bench: cannot read the broker's public key %s\n", o->broker_key);
            return false;
        }
        /* Its agents must be in the broker's configuration already. */
        FILE *devnull = fopen("/dev/null", "w");
        bool ok = devnull && s_agents(o, b->dir, devnull);
        if (devnull)
            fclose(devnull);
        return ok;
    }
    snprintf(b->dir, sizeof b->dir, "/tmp/soffa-bench-XXXXXX");
    if (!mkdtemp(b->dir))
        return false;
    b->own_dir = true;
    snprintf(b->endpoint, sizeof b->endpoint, "tcp://127.0.0.1:%d", o->port);
    char sec[41];
    if (!s_key(b->dir, "broker", b->broker_pub, sec))
        return false;
    /* [keys] master_key: master.key beside broker.ini, as in production. */
    snprintf(path, sizeof path, "%s/master.key", b->dir);
    if (soffa_seal_master_new(path) != SOFFA_OK)
        return false;
    snprintf(path, sizeof path, "%s/broker.ini", b->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    /* The production settings, apart from where things live and the map size. */
    fprintf(f, "[broker]\nendpoint = %s\nsecret_key = broker.key\ndata_dir = data\nlog_level = %s\n"
               "[store]\nmap_size = %ldGiB\n",
            b->endpoint, getenv("SOFFA_BENCH_LOG") ? getenv("SOFFA_BENCH_LOG") : "warn", o->map_gib);
    bool ok = s_agents(o, b->dir, f);
    fclose(f);
    if (!ok)
        return false;
    if (o->prefill > 0 && !s_prefill(o, b, pool, o->prefill)) {
        fprintf(stderr, "soffa-bench: could not fill the store\n");
        return false;
    }
    b->pid = fork();
    if (b->pid < 0)
        return false;
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
    if (!b->own_dir)
        return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->dir);
    if (strncmp(b->dir, "/tmp/soffa-bench-", 17) == 0 && system(cmd) != 0)
        fprintf(stderr, "soffa-bench: could not remove %s\n", b->dir);
}

/* A field of /proc/PID/status in kB, -1 when unknown. */
static long
s_proc_kb(pid_t pid, const char *field)
{
    if (pid <= 0)
        return -1;
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

/* ---- CPU time ----------------------------------------------------------------- */

/* The broker's CPU time by thread (seconds of user + system time), and the
 * bench's own. On a machine shared with other work a rate moves with the
 * load, while the CPU time spent per message barely does: it is what a
 * change to the broker is judged by. */
typedef struct {
    double main;       /* the broker's loop (its first thread) */
    double writer;     /* the commit thread (soffa-writer) */
    double io;         /* ZeroMQ's I/O threads: CurveZMQ and TCP */
    double other;      /* the rest of the broker's threads */
    double client;     /* this process: the load generator and the agents' sessions */
} s_cpu_t;

static s_cpu_t s_cpu_mark;

static s_cpu_t
s_cpu_now(pid_t pid)
{
    s_cpu_t c = {0};
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        c.client = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec
                   + (double) ru.ru_stime.tv_usec / 1e6;
    if (pid <= 0)
        return c;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *d = opendir(path);
    struct dirent *e;
    double tick = (double) sysconf(_SC_CLK_TCK);
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sp[300], line[512];
        snprintf(sp, sizeof sp, "/proc/%d/task/%s/stat", (int) pid, e->d_name);
        FILE *f = fopen(sp, "r");
        if (!f)
            continue;
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = '\0';
        /* pid (comm) state ppid ... utime(14) stime(15) */
        char *open = strchr(line, '('), *close = strrchr(line, ')');
        unsigned long ut = 0, st = 0;
        if (!open || !close || sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
            continue;
        double sec = (double) (ut + st) / tick;
        *close = '\0';
        const char *comm = open + 1;
        if (atoi(e->d_name) == (int) pid)
            c.main += sec;
        else if (!strcmp(comm, "soffa-writer"))
            c.writer += sec;
        else if (!strncmp(comm, "ZMQbg/IO", 8))
            c.io += sec;
        else
            c.other += sec;
    }
    if (d)
        closedir(d);
    return c;
}

/* Starts counting the CPU time of a scenario's measured part. */
static void
s_cpu_start(const s_broker_t *b)
{
    s_cpu_mark = s_cpu_now(b->pid);
}

/* CPU microseconds per unit of work (a message, a delivery) since
 * s_cpu_start, into j and, for people, onto stdout. */
static void
s_cpu_report(const s_opts_t *o, const s_broker_t *b, json_t *j, long units, const char *unit)
{
    s_cpu_t now = s_cpu_now(b->pid), a = s_cpu_mark;
    double per = units > 0 ? 1e6 / (double) units : 0;
    double broker = (now.main - a.main) + (now.writer - a.writer) + (now.io - a.io) + (now.other - a.other);
    json_object_set_new(j, "broker_cpu_us", json_real(broker * per));
    json_object_set_new(j, "broker_main_cpu_us", json_real((now.main - a.main) * per));
    json_object_set_new(j, "broker_writer_cpu_us", json_real((now.writer - a.writer) * per));
    json_object_set_new(j, "broker_io_cpu_us", json_real((now.io - a.io) * per));
    json_object_set_new(j, "client_cpu_us", json_real((now.client - a.client) * per));
    if (!o->json && b->pid > 0)
        printf("  %-30s %9.2f us (loop %.2f, writer %.2f, CurveZMQ/TCP %.2f; this bench %.2f)\n",
               unit, broker * per, (now.main - a.main) * per, (now.writer - a.writer) * per, (now.io - a.io) * per,
               (now.client - a.client) * per);
}

static int s_protocol;   /* --protocol, for every connection the bench makes */

static soffa_client_t *
s_connect(const s_broker_t *b, void *ctx, const char *name)
{
    char pub[41], sec[41];
    if (!s_key(b->dir, name, pub, sec))
        return NULL;
    soffa_client_opts_t co = {.endpoint = b->endpoint, .server_public = b->broker_pub, .public_key = pub,
                              .secret_key = sec, .name = name, .timeout_ms = 30000, .zmq_ctx = ctx,
                              .protocol = (uint32_t) s_protocol};
    soffa_client_t *c = NULL;
    soffa_err_t rc = soffa_client_connect(&c, &co, NULL);
    if (rc != SOFFA_OK)
        fprintf(stderr, "soffa-bench: %s could not connect: %s\n", name, soffa_strerror(rc));
    return c;
}

/* ---- Figures ------------------------------------------------------------------ */

static int
s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double p50, p90, p99, p999, max;   /* ms */
} s_pct_t;

static s_pct_t
s_percentiles(int64_t *us, long n)
{
    s_pct_t p = {0};
    if (n <= 0)
        return p;
    qsort(us, (size_t) n, sizeof *us, s_cmp_i64);
#define AT(q) ((double) us[(size_t) ((double) (n - 1) * (q) + 0.5)] / 1000.0)
    p = (s_pct_t) {AT(0.5), AT(0.9), AT(0.99), AT(0.999), (double) us[n - 1] / 1000.0};
#undef AT
    return p;
}

static void
s_print_pct(const char *what, s_pct_t p)
{
    printf("  %-30s %9.3f ms\n  %-30s %9.3f ms\n  %-30s %9.3f ms\n  %-30s %9.3f ms\n  %-30s %9.3f ms\n", what,
           p.p50, "p90", p.p90, "p99", p.p99, "p99.9", p.p999, "max", p.max);
}

static void
s_json_pct(json_t *j, const char *prefix, s_pct_t p)
{
    char k[64];
    double v[] = {p.p50, p.p90, p.p99, p.p999, p.max};
    const char *names[] = {"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"};
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "%s%s", prefix, names[i]);
        json_object_set_new(j, k, json_real(v[i]));
    }
}

/* Prints the common tail (broker memory) and the JSON object. */
static void
s_report(const s_opts_t *o, const s_broker_t *b, json_t *j)
{
    /* RSS first: the high-water mark read after it cannot be below it. */
    long rss = s_proc_kb(b->pid, "VmRSS:"), anon = s_proc_kb(b->pid, "RssAnon:"), hwm = s_proc_kb(b->pid, "VmHWM:");
    json_object_set_new(j, "broker_peak_rss_kb", json_integer(hwm));
    json_object_set_new(j, "broker_rss_kb", json_integer(rss));
    json_object_set_new(j, "broker_anon_rss_kb", json_integer(anon));
    json_object_set_new(j, "prefilled", json_integer(o->prefill));
    if (o->json) {
        char *s = json_dumps(j, JSON_COMPACT);
        puts(s);
        free(s);
    } else if (b->pid > 0) {
        printf("  %-30s %9ld kB\n  %-30s %9ld kB (of which private: %ld kB)\n", "broker peak resident", hwm,
               "broker resident now", rss, anon);
    }
    json_decref(j);
}

/* ---- publish ------------------------------------------------------------------ */

static int
s_publish(const s_opts_t *o, const s_broker_t *b, const s_pool_t *pool)
{
    long n = o->messages ? o->messages : 200000;
    size_t *lens = calloc((size_t) n, sizeof *lens);
    uint8_t **msgs = calloc((size_t) n, sizeof *msgs);
    int64_t *sent_at = calloc((size_t) n, sizeof *sent_at), *lat = calloc((size_t) n, sizeof *lat);
    soffa_client_t **c = calloc((size_t) o->publishers, sizeof *c);
    zmq_pollitem_t *items = calloc((size_t) o->publishers, sizeof *items);
    long *next = calloc((size_t) o->publishers, sizeof *next), *inflight = calloc((size_t) o->publishers, sizeof *inflight);
    if (!lens || !msgs || !sent_at || !lat || !c || !items || !next || !inflight)
        return 1;
    size_t bytes = 0;
    for (long i = 0; i < n; i++) {
        if (!(msgs[i] = s_msg(pool, i, &lens[i])))
            return 1;
        bytes += lens[i];
    }
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, 1);
    int rc = 1;
    for (int p = 0; p < o->publishers; p++) {
        char name[64];
        snprintf(name, sizeof name, "bench-school-%d", p);
        if (!(c[p] = s_connect(b, ctx, name)))
            goto out;
        items[p] = (zmq_pollitem_t) {soffa_client_socket(c[p]), 0, ZMQ_POLLIN, 0};
        next[p] = p;   /* publisher p sends messages p, p+P, p+2P, ... */
    }
    long done = 0, errors = 0;
    s_cpu_start(b);
    int64_t t0 = soffa_mono_us();
    soffa_frame_item_t batch[SOFFA_BATCH_MAX];
    while (done < n) {
        for (int p = 0; p < o->publishers; p++) {
            /* Up to B messages a frame while the window has room: a batch
             * when the broker takes them, else one frame each. */
            int most = (int) soffa_client_batch_max(c[p]);
            most = most < 1 ? 1 : most < o->batch ? most : o->batch;
            while (inflight[p] < o->window && next[p] < n) {
                size_t k = 0;
                int64_t now = soffa_mono_us();
                for (; k < (size_t) most && inflight[p] + (long) k < o->window && next[p] < n; k++) {
                    long i = next[p];
                    batch[k] = (soffa_frame_item_t) {.tag = (uint64_t) i + 1, .data = msgs[i], .data_len = lens[i]};
                    sent_at[i] = now;
                    next[p] += o->publishers;
                }
                soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH, .tag = batch[0].tag, .data = batch[0].data,
                                   .data_len = batch[0].data_len};
                if (k > 1)
                    f = (soffa_frame_t) {.type = SOFFA_FRAME_PUBLISH_BATCH, .items = batch, .n_items = k};
                if (soffa_client_send(c[p], &f) != SOFFA_OK) {
                    fprintf(stderr, "soffa-bench: could not send to the broker\n");
                    goto out;
                }
                inflight[p] += (long) k;
            }
        }
        if (zmq_poll(items, o->publishers, 30000) <= 0) {
            fprintf(stderr, "soffa-bench: no answer from the broker for 30 s\n");
            goto out;
        }
        for (int p = 0; p < o->publishers; p++) {
            if (!(items[p].revents & ZMQ_POLLIN))
                continue;
            soffa_frame_t f;
            while (soffa_client_recv(c[p], &f, 0) == SOFFA_OK) {
                int64_t now = soffa_mono_us();
                /* Answers: one per frame, or many in a PUBLISH-ACKS. */
                soffa_frame_item_t one = {.tag = f.tag, .code = f.type == SOFFA_FRAME_ERROR ? f.code : 0,
                                          .text = f.text};
                const soffa_frame_item_t *ans = &one;
                size_t n_ans = f.type == SOFFA_FRAME_PUBLISH_ACK || f.type == SOFFA_FRAME_ERROR;
                if (f.type == SOFFA_FRAME_PUBLISH_ACKS) {
                    ans = f.items;
                    n_ans = f.n_items;
                }
                for (size_t a = 0; a < n_ans; a++) {
                    long i = (long) ans[a].tag - 1;
                    if (i >= 0 && i < n && done < n)
                        lat[done] = now - sent_at[i];
                    if (ans[a].code && errors++ == 0)
                        fprintf(stderr, "soffa-bench: refused: %s\n", ans[a].text ? ans[a].text : "");
                    inflight[p]--;
                    done++;
                }
                soffa_frame_fini(&f);
            }
        }
    }
    int64_t elapsed = soffa_mono_us() - t0;
    double rate = (double) n / ((double) elapsed / 1e6);
    s_pct_t pc = s_percentiles(lat, n);
    json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:i, s:I, s:i, s:f, s:I}", "scenario", "publish", "publishers",
                          o->publishers, "window", o->window, "batch", o->batch, "protocol",
                          (int) soffa_client_version(c[0]), "messages", (json_int_t) n, "message_bytes",
                          (int) (bytes / (size_t) n), "msgs_per_s", rate, "errors", (json_int_t) errors);
    s_json_pct(j, "", pc);
    if (!o->json) {
        printf("soffa-bench publish: %d publishers x %d in flight, %ld messages of ~%zu bytes, durable%s\n",
               o->publishers, o->window, n, bytes / (size_t) n, o->prefill || o->target ? "" : ", empty store");
        printf("  %-30s %9d (protocol %u)\n", "messages per frame, at most", soffa_client_version(c[0]) >= 2 ? o->batch : 1,
               soffa_client_version(c[0]));
        if (o->prefill)
            printf("  %-30s %9ld\n", "records stored before", o->prefill);
        printf("  %-30s %9.0f msgs/s\n", "throughput", rate);
        s_print_pct("publish-to-ack p50", pc);
        printf("  %-30s %9ld\n", "refused", errors);
    }
    s_cpu_report(o, b, j, n, "broker CPU per message");
    s_report(o, b, j);
    rc = errors ? 1 : 0;
out:
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
    return rc;
}

/* ---- Consumers ---------------------------------------------------------------- */

typedef struct {
    soffa_client_t *c;
    char mailbox[32];
    uint64_t received, last_seq;
    uint8_t last_hash[SOFFA_HASH_LEN];   /* of last_seq, for the ACK */
    bool stalled;             /* subscribed, then never reads */
} s_consumer_t;

/* Connects consumer j and subscribes it to its mailbox. */
static bool
s_consumer_up(s_consumer_t *k, const s_broker_t *b, void *ctx, int j, int credit)
{
    char name[64];
    snprintf(name, sizeof name, "bench-kaa-%s", s_kommun(j));
    snprintf(k->mailbox, sizeof k->mailbox, "kaa/%s", s_kommun(j));
    if (!(k->c = s_connect(b, ctx, name)))
        return false;
    soffa_frame_t sub = {.type = SOFFA_FRAME_SUBSCRIBE, .credit = (uint32_t) credit};
    snprintf(sub.mailbox, sizeof sub.mailbox, "%s", k->mailbox);
    return soffa_client_send(k->c, &sub) == SOFFA_OK;
}

/* Takes every delivery waiting for consumer k, calls seen(ctx, envelope
 * bytes, len, receive time) for each, then acknowledges the last one (one
 * cumulative ACK, as an agent does after storing a batch). Returns how many. */
static long
s_consumer_drain(s_consumer_t *k, void (*seen)(void *, const soffa_frame_item_t *, int64_t), void *ctx)
{
    long got = 0;
    soffa_frame_t f;
    while (soffa_client_recv(k->c, &f, 0) == SOFFA_OK) {
        int64_t now = soffa_mono_us();
        if (f.type == SOFFA_FRAME_DELIVER || f.type == SOFFA_FRAME_DELIVER_BATCH) {
            soffa_frame_item_t one = {.seq = f.seq, .data = f.data, .data_len = f.data_len};
            memcpy(one.hash, f.hash, SOFFA_HASH_LEN);
            const soffa_frame_item_t *rec = f.type == SOFFA_FRAME_DELIVER ? &one : f.items;
            size_t n_rec = f.type == SOFFA_FRAME_DELIVER ? 1 : f.n_items;
            for (size_t r = 0; r < n_rec; r++) {
                if (seen)
                    seen(ctx, &rec[r], now);
                if (rec[r].seq > k->last_seq) {
                    k->last_seq = rec[r].seq;
                    memcpy(k->last_hash, rec[r].hash, SOFFA_HASH_LEN);
                }
                got++;
            }
        } else if (f.type == SOFFA_FRAME_ERROR) {
            fprintf(stderr, "soffa-bench: %s: %s\n", k->mailbox, f.text);
        }
        soffa_frame_fini(&f);
    }
    if (got) {
        soffa_frame_t ack = {.type = SOFFA_FRAME_ACK, .seq = k->last_seq, .has_hash = true};
        memcpy(ack.hash, k->last_hash, SOFFA_HASH_LEN);
        snprintf(ack.mailbox, sizeof ack.mailbox, "%s", k->mailbox);
        soffa_client_send(k->c, &ack);
        k->received += (uint64_t) got;
    }
    return got;
}

/* ---- latency ------------------------------------------------------------------ */

/* The receiving side runs in a thread of its own, blocked in zmq_poll, so
 * that a delivery is stamped the moment it arrives. */
typedef struct {
    s_consumer_t *k;
    int n_k;
    int64_t *sent_at;          /* written by the publisher before each send */
    int64_t *lat;
    long n, got, unknown;
    int stop;                  /* set by the publisher when it is done */
} s_lat_t;

static void
s_lat_seen(void *ctx, const soffa_frame_item_t *f, int64_t now)
{
    s_lat_t *l = ctx;
    soffa_envelope_t e;
    if (soffa_envelope_decode(f->data, f->data_len, &e) != SOFFA_OK) {
        l->unknown++;
        return;
    }
    long i = s_msg_index(e.message_id);
    soffa_envelope_fini(&e);
    int64_t t = i >= 0 && i < l->n ? __atomic_load_n(&l->sent_at[i], __ATOMIC_ACQUIRE) : 0;
    if (t == 0 || l->got >= l->n) {
        l->unknown++;
        return;
    }
    l->lat[l->got++] = now - t;
}

static void *
s_lat_receiver(void *arg)
{
    s_lat_t *l = arg;
    zmq_pollitem_t items[512];
    for (int j = 0; j < l->n_k; j++)
        items[j] = (zmq_pollitem_t) {soffa_client_socket(l->k[j].c), 0, ZMQ_POLLIN, 0};
    while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE) || l->got + l->unknown < l->n) {
        int r = zmq_poll(items, l->n_k, 100);
        if (r < 0)
            break;
        if (r == 0 && __atomic_load_n(&l->stop, __ATOMIC_ACQUIRE) == 2)
            break;   /* the publisher gave up waiting */
        for (int j = 0; j < l->n_k; j++)
            if (items[j].revents & ZMQ_POLLIN)
                s_consumer_drain(&l->k[j], s_lat_seen, l);
    }
    return NULL;
}

static void
s_sleep_until(int64_t mono_us)
{
    struct timespec ts = {(time_t) (mono_us / 1000000), (long) (mono_us % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int
s_latency(const s_opts_t *o, const s_broker_t *b, const s_pool_t *pool)
{
    long n = (long) o->rate * o->seconds;
    if (o->mailboxes > 512)
        return 2;
    int64_t *sent_at = calloc((size_t) n, sizeof *sent_at), *lat = calloc((size_t) n, sizeof *lat),
            *ack = calloc((size_t) n, sizeof *ack);
    s_consumer_t *k = calloc((size_t) o->mailboxes, sizeof *k);
    if (!sent_at || !lat || !ack || !k)
        return 1;
    void *ctx = zmq_ctx_new();
    int rc = 1;
    bool started = false;
    pthread_t th;
    s_lat_t l = {k, o->mailboxes, sent_at, lat, n, 0, 0, 0};
    soffa_client_t *pub = s_connect(b, ctx, "bench-school-0");
    if (!pub)
        goto out;
    for (int j = 0; j < o->mailboxes; j++)
        if (!s_consumer_up(&k[j], b, ctx, j, o->credit))
            goto out;
    usleep(200000);   /* let the subscriptions settle */
    if (pthread_create(&th, NULL, s_lat_receiver, &l) != 0)
        goto out;
    started = true;
    /* soffa_mono_us is CLOCK_MONOTONIC: the schedule is absolute. */
    long sent = 0, late = 0, errors = 0;
    s_cpu_start(b);
    int64_t period = 1000000 / o->rate, t0 = soffa_mono_us() + 1000;
    for (; sent < n; sent++) {
        int64_t due = t0 + sent * period, now = soffa_mono_us();
        if (now < due)
            s_sleep_until(due);
        else if (now - due > 1000)
            late++;
        size_t len;
        uint8_t *m = s_msg(pool, sent, &len);
        soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH, .tag = (uint64_t) sent + 1, .data = m, .data_len = len};
        int64_t t = soffa_mono_us();
        __atomic_store_n(&sent_at[sent], t, __ATOMIC_RELEASE);
        bool ok = m && soffa_client_send(pub, &f) == SOFFA_OK;
        free(m);
        if (!ok)
            break;
        /* Closed loop: wait for this publish's answer. */
        soffa_frame_t r;
        bool answered = false;
        while (!answered && soffa_client_recv(pub, &r, 30000) == SOFFA_OK) {
            if ((r.type == SOFFA_FRAME_PUBLISH_ACK || r.type == SOFFA_FRAME_ERROR) && r.tag == (uint64_t) sent + 1) {
                ack[sent] = soffa_mono_us() - t;
                answered = true;
                if (r.type == SOFFA_FRAME_ERROR && errors++ == 0)
                    fprintf(stderr, "soffa-bench: refused: %s\n", r.text);
            }
            soffa_frame_fini(&r);
        }
        if (!answered) {
            fprintf(stderr, "soffa-bench: no answer to publish %ld\n", sent);
            break;
        }
    }
    /* Wait for the last deliveries (at most 10 s). */
    __atomic_store_n(&l.stop, 1, __ATOMIC_RELEASE);
    int64_t give_up = soffa_mono_us() + 10000000;
    while (__atomic_load_n(&l.got, __ATOMIC_RELAXED) < sent && soffa_mono_us() < give_up)
        usleep(10000);
    __atomic_store_n(&l.stop, 2, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    started = false;
    s_pct_t e2e = s_percentiles(lat, l.got), pa = s_percentiles(ack, sent);
    json_t *j = json_pack("{s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:i}", "scenario", "latency", "rate", o->rate,
                          "seconds", o->seconds, "sent", (json_int_t) sent, "received", (json_int_t) l.got,
                          "late_sends", (json_int_t) late, "errors", (json_int_t) errors, "mailboxes",
                          o->mailboxes);
    s_json_pct(j, "e2e_", e2e);
    s_json_pct(j, "ack_", pa);
    if (!o->json) {
        printf("soffa-bench latency: %d msgs/s for %d s, durable, closed loop, %d receiving agents\n", o->rate,
               o->seconds, o->mailboxes);
        printf("  %-30s %9ld of %ld (%ld sent more than 1 ms late)\n", "received", l.got, sent, late);
        s_print_pct("publish-to-delivery p50", e2e);
        printf("  %-30s %9.3f ms\n  %-30s %9.3f ms\n", "publish-to-ack p50", pa.p50, "publish-to-ack p99", pa.p99);
    }
    s_cpu_report(o, b, j, sent, "broker CPU per message");
    s_report(o, b, j);
    rc = l.got == n && sent == n && errors == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "soffa-bench: %ld of %ld delivered, %ld refused, %ld unknown\n", l.got, n, errors, l.unknown);
out:
    if (started) {
        __atomic_store_n(&l.stop, 2, __ATOMIC_RELEASE);
        pthread_join(th, NULL);
    }
    soffa_client_close(&pub);
    for (int x = 0; x < o->mailboxes; x++)
        soffa_client_close(&k[x].c);
    zmq_ctx_term(ctx);
    free(sent_at);
    free(lat);
    free(ack);
    free(k);
    return rc;
}

/* ---- consume ------------------------------------------------------------------ */

static int
s_consume(const s_opts_t *o, const s_broker_t *b, const s_pool_t *pool)
{
    /* The store holds o->prefill records over mailboxes + stalled mailboxes;
     * the reading consumers should get their share. */
    int boxes = o->mailboxes + o->stalled;
    long want = 0;
    for (long i = 0; i < o->prefill; i++)
        want += pool->kommun[i % S_POOL] < o->mailboxes;
    s_consumer_t *k = calloc((size_t) boxes, sizeof *k);
    zmq_pollitem_t *items = calloc((size_t) boxes, sizeof *items);
    if (!k || !items)
        return 1;
    void *ctx = zmq_ctx_new();
    int rc = 1;
    long rss_before = s_proc_kb(b->pid, "VmRSS:"), anon_before = s_proc_kb(b->pid, "RssAnon:");
    for (int j = o->mailboxes; j < boxes; j++) {
        /* A stalled reader: subscribes with the same window, never reads. */
        if (!s_consumer_up(&k[j], b, ctx, j, o->credit))
            goto out;
        k[j].stalled = true;
    }
    s_cpu_start(b);
    int64_t t0 = soffa_mono_us();
    for (int j = 0; j < o->mailboxes; j++) {
        if (!s_consumer_up(&k[j], b, ctx, j, o->credit))
            goto out;
        items[j] = (zmq_pollitem_t) {soffa_client_socket(k[j].c), 0, ZMQ_POLLIN, 0};
    }
    long got = 0;
    while (got < want) {
        int r = zmq_poll(items, o->mailboxes, 30000);
        if (r <= 0) {
            fprintf(stderr, "soffa-bench: no deliveries for 30 s (%ld of %ld)\n", got, want);
            goto out;
        }
        for (int j = 0; j < o->mailboxes; j++)
            if (items[j].revents & ZMQ_POLLIN)
                got += s_consumer_drain(&k[j], NULL, NULL);
    }
    int64_t elapsed = soffa_mono_us() - t0;
    double rate = (double) got / ((double) elapsed / 1e6);
    long rss_after = s_proc_kb(b->pid, "VmRSS:"), anon_after = s_proc_kb(b->pid, "RssAnon:");
    json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:I, s:f, s:I, s:I, s:I, s:I}", "scenario", "consume", "mailboxes",
                          o->mailboxes, "stalled", o->stalled, "window", o->credit, "messages", (json_int_t) got,
                          "msgs_per_s", rate, "rss_before_kb", (json_int_t) rss_before, "rss_after_kb",
                          (json_int_t) rss_after, "anon_before_kb", (json_int_t) anon_before, "anon_after_kb",
                          (json_int_t) anon_after);
    if (!o->json) {
        printf("soffa-bench consume: %ld stored messages to %d consumers (window %d, acknowledged)%s\n", got,
               o->mailboxes, o->credit, o->stalled ? "" : "");
        if (o->stalled)
            printf("  %-30s %9d (subscribed, never reading)\n", "stalled consumers", o->stalled);
        printf("  %-30s %9.0f msgs/s\n", "delivery throughput", rate);
        if (b->pid > 0)
            printf("  %-30s %9ld -> %ld kB (private %ld -> %ld kB)\n", "broker resident before/after", rss_before,
                   rss_after, anon_before, anon_after);
    }
    s_cpu_report(o, b, j, got, "broker CPU per delivery");
    s_report(o, b, j);
    rc = 0;
out:
    for (int x = 0; x < boxes; x++)
        soffa_client_close(&k[x].c);
    zmq_ctx_term(ctx);
    free(k);
    free(items);
    return rc;
}

/* ---- replay ------------------------------------------------------------------- */

static int
s_replay(const s_opts_t *o, const s_broker_t *b)
{
    void *ctx = zmq_ctx_new();
    int rc = 1;
    soffa_client_t *c = s_connect(b, ctx, "bench-audit");
    if (!c)
        goto out;
    soffa_frame_t rq = {.type = SOFFA_FRAME_REPLAY, .tag = 1, .credit = 1024};
    snprintf(rq.text, sizeof rq.text, "replay");
    s_cpu_start(b);
    int64_t t0 = soffa_mono_us();
    if (soffa_client_send(c, &rq) != SOFFA_OK)
        goto out;
    long got = 0, unacked = 0, bytes = 0;
    uint64_t last_seq = 0;
    uint8_t last_hash[SOFFA_HASH_LEN];
    uint64_t end_count = 0;
    bool ended = false;
    while (!ended) {
        soffa_frame_t f;
        soffa_err_t r = soffa_client_recv(c, &f, 0);
        if (r == SOFFA_ERR_TIMEOUT && unacked) {
            /* Everything here is read: free the window as the auditor's
             * agent does, naming the last record read and its hash. */
            soffa_frame_t ra = {.type = SOFFA_FRAME_REPLAY_ACK, .tag = 1, .seq = last_seq, .has_hash = true};
            memcpy(ra.hash, last_hash, SOFFA_HASH_LEN);
            soffa_client_send(c, &ra);
            unacked = 0;
        }
        if (r == SOFFA_ERR_TIMEOUT)
            r = soffa_client_recv(c, &f, 30000);
        if (r != SOFFA_OK) {
            fprintf(stderr, "soffa-bench: replay stalled after %ld records\n", got);
            goto out;
        }
        if (f.type == SOFFA_FRAME_DELIVER) {
            got++;
            bytes += (long) f.data_len;
            last_seq = f.seq;
            memcpy(last_hash, f.hash, SOFFA_HASH_LEN);
            unacked++;
        } else if (f.type == SOFFA_FRAME_DELIVER_BATCH) {
            for (size_t x = 0; x < f.n_items; x++)
                bytes += (long) f.items[x].data_len;
            got += (long) f.n_items;
            last_seq = f.items[f.n_items - 1].seq;
            memcpy(last_hash, f.items[f.n_items - 1].hash, SOFFA_HASH_LEN);
            unacked += (long) f.n_items;
        } else if (f.type == SOFFA_FRAME_REPLAY_END) {
            ended = true;
            end_count = f.count;
        } else if (f.type == SOFFA_FRAME_ERROR) {
            fprintf(stderr, "soffa-bench: replay refused: %s\n", f.text);
            soffa_frame_fini(&f);
            goto out;
        }
        soffa_frame_fini(&f);
    }
    int64_t elapsed = soffa_mono_us() - t0;
    double rate = (double) got / ((double) elapsed / 1e6);
    json_t *j = json_pack("{s:s, s:I, s:I, s:f, s:f}", "scenario", "replay", "messages", (json_int_t) got,
                          "broker_counted", (json_int_t) end_count, "msgs_per_s", rate, "mb_per_s",
                          (double) bytes / ((double) elapsed / 1e6) / 1e6);
    if (!o->json) {
        printf("soffa-bench replay: one auditor replays the whole history (%ld records)\n", got);
        printf("  %-30s %9.0f msgs/s (%.0f MB/s of envelopes)\n", "replay throughput", rate,
               (double) bytes / ((double) elapsed / 1e6) / 1e6);
    }
    s_cpu_report(o, b, j, got, "broker CPU per record");
    s_report(o, b, j);
    rc = (long) end_count == got && got >= o->prefill ? 0 : 1;
    if (rc)
        fprintf(stderr, "soffa-bench: replay returned %ld records, the broker counted %llu, %ld stored\n", got,
                (unsigned long long) end_count, o->prefill);
out:
    soffa_client_close(&c);
    zmq_ctx_term(ctx);
    return rc;
}

/* ---- connections -------------------------------------------------------------- */

static int
s_connections(const s_opts_t *o, const s_broker_t *b)
{
    int n = o->agents;
    soffa_client_t **c = calloc((size_t) n, sizeof *c);
    zmq_pollitem_t *items = calloc((size_t) n, sizeof *items);
    bool *welcomed = calloc((size_t) n, sizeof *welcomed);
    if (!c || !items || !welcomed)
        return 1;
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, n + 64);
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, 1);
    int rc = 1, connected = 0;
    long rss_before = s_proc_kb(b->pid, "VmRSS:");
    int64_t t0 = soffa_mono_us();
    for (int i = 0; i < n; i++) {
        char name[64], pub[41], sec[41];
        snprintf(name, sizeof name, "bench-idle-%d", i);
        if (!s_key(b->dir, name, pub, sec))
            goto out;
        soffa_client_opts_t co = {.endpoint = b->endpoint, .server_public = b->broker_pub, .public_key = pub,
                                  .secret_key = sec, .name = name, .timeout_ms = 30000, .zmq_ctx = ctx};
        if (soffa_client_open(&c[i], &co) != SOFFA_OK) {
            fprintf(stderr, "soffa-bench: agent %d could not open a connection\n", i);
            goto out;
        }
        items[i] = (zmq_pollitem_t) {soffa_client_socket(c[i]), 0, ZMQ_POLLIN, 0};
    }
    int64_t last_ping = soffa_mono_us();
    while (connected < n) {
        if (zmq_poll(items, n, 1000) < 0)
            goto out;
        for (int i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            soffa_frame_t f;
            while (soffa_client_recv(c[i], &f, 0) == SOFFA_OK) {
                if (f.type == SOFFA_FRAME_WELCOME && !welcomed[i]) {
                    welcomed[i] = true;
                    connected++;
                } else if (f.type == SOFFA_FRAME_ERROR) {
                    fprintf(stderr, "soffa-bench: agent %d refused: %s\n", i, f.text);
                }
                soffa_frame_fini(&f);
            }
        }
        if (soffa_mono_us() - t0 > 120000000) {
            fprintf(stderr, "soffa-bench: only %d of %d connected after 120 s\n", connected, n);
            goto out;
        }
    }
    int64_t elapsed = soffa_mono_us() - t0;
    /* Stay connected and idle (pinging as agents do) for a while. */
    int64_t until = soffa_mono_us() + 3000000;
    while (soffa_mono_us() < until) {
        if (soffa_mono_us() - last_ping > 1000000) {
            for (int i = 0; i < n; i++) {
                soffa_frame_t p = {.type = SOFFA_FRAME_PING, .tag = 1};
                soffa_client_send(c[i], &p);
            }
            last_ping = soffa_mono_us();
        }
        zmq_poll(items, n, 100);
        for (int i = 0; i < n; i++) {
            soffa_frame_t f;
            while ((items[i].revents & ZMQ_POLLIN) && soffa_client_recv(c[i], &f, 0) == SOFFA_OK)
                soffa_frame_fini(&f);
        }
    }
    long rss = s_proc_kb(b->pid, "VmRSS:"), anon = s_proc_kb(b->pid, "RssAnon:");
    /* The broker's own count of sessions (a status request, which also
     * reads the mailboxes to count lag and overdue receipts). */
    uint32_t sessions = 0;
    soffa_client_t *a = s_connect(b, ctx, "bench-audit");
    if (a) {
        soffa_frame_t rq = {.type = SOFFA_FRAME_STATUS_REQUEST, .tag = 7}, f;
        if (soffa_client_send(a, &rq) == SOFFA_OK) {
            while (soffa_client_recv(a, &f, 30000) == SOFFA_OK) {
                bool done = f.type == SOFFA_FRAME_STATUS_REPLY;
                if (done)
                    sessions = f.sessions;
                soffa_frame_fini(&f);
                if (done)
                    break;
            }
        }
        soffa_client_close(&a);
    }
    json_t *j = json_pack("{s:s, s:i, s:i, s:f, s:i, s:I, s:I, s:I}", "scenario", "connections", "agents", n,
                          "connected", connected, "seconds_to_connect", (double) elapsed / 1e6, "broker_sessions",
                          (int) sessions, "rss_before_kb", (json_int_t) rss_before, "rss_connected_kb",
                          (json_int_t) rss, "anon_connected_kb", (json_int_t) anon);
    if (!o->json) {
        printf("soffa-bench connections: %d agents connect with CURVE and stay idle\n", n);
        printf("  %-30s %9.2f s\n  %-30s %9u (including the one asking)\n", "all connected after",
               (double) elapsed / 1e6, "sessions the broker reports", sessions);
        if (b->pid > 0)
            printf("  %-30s %9ld kB (private %ld kB; before: %ld kB)\n", "broker resident, connected", rss, anon,
                   rss_before);
    }
    s_report(o, b, j);
    rc = connected == n && sessions >= (uint32_t) n ? 0 : 1;
out:
    for (int i = 0; i < n; i++)
        soffa_client_close(&c[i]);
    zmq_ctx_term(ctx);
    free(c);
    free(items);
    free(welcomed);
    return rc;
}

/* ---- main --------------------------------------------------------------------- */

static void
s_usage(FILE *out)
{
    fputs("usage: soffa-bench SCENARIO [options]\n"
          "       soffa-bench --version | --help\n"
          "       soffa-bench keys DIR [options]   keys for --target, and the [agent] sections to add\n"
          "\n"
          "Starts its own soffa-broker (CURVE over TCP, durable LMDB store in a temporary\n"
          "directory, the production settings), drives the scenario and prints the figures.\n"
          "\n"
          "Scenarios (defaults in brackets):\n"
          "  publish      durable publishes per second and publish-to-ack latency\n"
          "               -P publishers [16]  -W in flight each [16]  -n messages [200000]\n"
          "               -B messages per frame, at most [16] (batch frames; 1 = one each)\n"
          "               --prefill N: store N records first (10000000 for the history test)\n"
          "  latency      publish-to-delivery latency at a fixed rate, closed loop\n"
          "               -r msgs/s [1000]  -t seconds [10]  -C receiving agents [16]\n"
          "  consume      deliveries per second to consumers that acknowledge\n"
          "               -n stored messages [200000]  -C consumers [16]  --window N [1024]\n"
          "               --stalled N: also N consumers that subscribe and never read [0]\n"
          "  replay       an auditor replays the history: -n stored messages [1000000]\n"
          "  connections  -K idle agents connecting with CURVE [2500]\n"
          "\n"
          "Common: --json  --port N [25570]  --map-size GiB [16]  --broker-bin PATH\n"
          "        --protocol 1|2 [2]: 1 speaks one message per frame (no batch frames)\n"
          "        --target ENDPOINT --broker-key FILE.pub --keys DIR: drive a running broker\n"
          "        whose configuration has the sections `soffa-bench keys DIR` printed\n"
          "        (prefilling needs the broker's own directory: not with --target).\n"
          "Every scenario prints the broker's peak resident memory (own broker only).\n"
          "SOFFA_BENCH_LOG=info shows the broker's log, including its commit count.\n",
          out);
}

static bool
s_int_arg(int argc, char **argv, int *i, const char *name, long *out)
{
    if (strcmp(argv[*i], name) != 0)
        return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "soffa-bench: %s needs a number\n", name);
        exit(2);
    }
    char *end;
    *out = strtol(argv[++*i], &end, 10);
    if (*end || *out < 0) {
        fprintf(stderr, "soffa-bench: %s wants a whole number, not '%s'\n", name, argv[*i]);
        exit(2);
    }
    return true;
}

int
main(int argc, char **argv)
{
    s_opts_t o = {.publishers = -1, .window = 16, .batch = 16, .protocol = SOFFA_PROTOCOL_VERSION, .rate = 1000, .seconds = 10, .mailboxes = 16, .credit = 1024,
                  .agents = 0, .port = 25570, .map_gib = 16, .prefill = -1};
    char bin[1024];
    ssize_t len = readlink("/proc/self/exe", bin, sizeof bin - 20);
    if (len > 0) {
        bin[len] = '\0';
        char *slash = strrchr(bin, '/');
        strcpy(slash ? slash + 1 : bin, "soffa-broker");
        o.broker_bin = bin;
    }
    const char *keys_out = NULL;
    long agents = -1;
    for (int i = 1; i < argc; i++) {
        long v;
        if (s_int_arg(argc, argv, &i, "-P", &v))
            o.publishers = (int) v;
        else if (s_int_arg(argc, argv, &i, "-W", &v))
            o.window = (int) v;
        else if (s_int_arg(argc, argv, &i, "-B", &v))
            o.batch = (int) v;
        else if (s_int_arg(argc, argv, &i, "--protocol", &v))
            o.protocol = (int) v;
        else if (s_int_arg(argc, argv, &i, "-n", &v))
            o.messages = v;
        else if (s_int_arg(argc, argv, &i, "-r", &v))
            o.rate = (int) v;
        else if (s_int_arg(argc, argv, &i, "-t", &v))
            o.seconds = (int) v;
        else if (s_int_arg(argc, argv, &i, "-C", &v))
            o.mailboxes = (int) v;
        else if (s_int_arg(argc, argv, &i, "-K", &v))
            agents = v;
        else if (s_int_arg(argc, argv, &i, "--window", &v))
            o.credit = (int) v;
        else if (s_int_arg(argc, argv, &i, "--stalled", &v))
            o.stalled = (int) v;
        else if (s_int_arg(argc, argv, &i, "--prefill", &v))
            o.prefill = v;
        else if (s_int_arg(argc, argv, &i, "--port", &v))
            o.port = (int) v;
        else if (s_int_arg(argc, argv, &i, "--map-size", &v))
            o.map_gib = v;
        else if (!strcmp(argv[i], "--json"))
            o.json = true;
        else if (!strcmp(argv[i], "--broker-bin") && i + 1 < argc)
            o.broker_bin = argv[++i];
        else if (!strcmp(argv[i], "--target") && i + 1 < argc)
            o.target = argv[++i];
        else if (!strcmp(argv[i], "--broker-key") && i + 1 < argc)
            o.broker_key = argv[++i];
        else if (!strcmp(argv[i], "--keys") && i + 1 < argc)
            o.keys_dir = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            s_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            soffa_version_print("soffa-bench");
            return 0;
        } else if (argv[i][0] != '-' && !o.scenario)
            o.scenario = argv[i];
        else if (argv[i][0] != '-' && o.scenario && !strcmp(o.scenario, "keys") && !keys_out)
            keys_out = argv[i];
        else {
            fprintf(stderr, "soffa-bench: unknown argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    static const char *const scenarios[] = {"publish", "latency", "consume", "replay", "connections", "keys"};
    bool known = false;
    for (size_t i = 0; o.scenario && i < sizeof scenarios / sizeof *scenarios; i++)
        known |= !strcmp(o.scenario, scenarios[i]);
    if (!known) {
        if (o.scenario)
            fprintf(stderr, "soffa-bench: no scenario '%s'\n", o.scenario);
        s_usage(stderr);
        return 2;
    }
    /* Who takes part in each scenario. */
    bool pub = !strcmp(o.scenario, "publish"), lat = !strcmp(o.scenario, "latency"),
         con = !strcmp(o.scenario, "consume"), rep = !strcmp(o.scenario, "replay"),
         cnx = !strcmp(o.scenario, "connections"), keys = !strcmp(o.scenario, "keys");
    if (o.publishers < 0)
        o.publishers = pub || keys ? 16 : 1;
    if (lat)
        o.publishers = 1;
    o.agents = (int) (agents >= 0 ? agents : cnx || keys ? 2500 : 0);
    if (o.prefill < 0)
        o.prefill = con ? (o.messages ? o.messages : 200000) : rep ? (o.messages ? o.messages : 1000000) : 0;
    s_protocol = o.protocol;
    if (o.publishers < 1 || o.window < 1 || o.batch < 1 || o.batch > SOFFA_BATCH_MAX || o.protocol < 1
        || o.protocol > SOFFA_PROTOCOL_VERSION || o.rate < 1 || o.rate > 1000000 || o.seconds < 1 || o.mailboxes < 1
        || o.mailboxes + o.stalled > (int) soffa_kommun_count() || o.credit < 1 || (cnx && o.agents < 1)
        || o.map_gib < 1) {
        fprintf(stderr, "soffa-bench: a count is out of range (-C and --stalled together at most %zu)\n",
                soffa_kommun_count());
        return 2;
    }
    if (keys) {
        if (!keys_out) {
            s_usage(stderr);
            return 2;
        }
        if (mkdir(keys_out, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "soffa-bench: cannot make %s: %s\n", keys_out, strerror(errno));
            return 1;
        }
        return s_agents(&o, keys_out, stdout) ? 0 : 1;
    }
    if (o.target && (!o.broker_key || !o.keys_dir)) {
        fprintf(stderr, "soffa-bench: --target needs --broker-key and --keys\n");
        return 2;
    }
    if (o.target && o.prefill > 0) {
        fprintf(stderr, "soffa-bench: prefilling writes the broker's store directly: not with --target\n");
        return 2;
    }
    if (cnx) {
        /* Each agent is a socket here and a connection in the broker. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    s_pool_t *pool = malloc(sizeof *pool);
    if (!pool || !s_pool_make(pool, o.mailboxes + o.stalled)) {
        free(pool);
        return 1;
    }
    s_broker_t b = {0};
    int rc = 1;
    void *ctx = zmq_ctx_new();
    soffa_client_t *ready = NULL;
    if (!s_broker_up(&b, &o, pool)) {
        fprintf(stderr, "soffa-bench: could not set up a broker\n");
    } else if (!(ready = s_connect(&b, ctx, "bench-audit"))) {
        fprintf(stderr, "soffa-bench: the broker did not answer\n");   /* started and serving from here */
    } else if (pub) {
        rc = s_publish(&o, &b, pool);
    } else if (lat) {
        rc = s_latency(&o, &b, pool);
    } else if (con) {
        rc = s_consume(&o, &b, pool);
    } else if (rep) {
        rc = s_replay(&o, &b);
    } else {
        rc = s_connections(&o, &b);
    }
    soffa_client_close(&ready);
    zmq_ctx_term(ctx);
    s_broker_down(&b);
    s_pool_free(pool);
    free(pool);
    return rc;
}
