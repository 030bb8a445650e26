/*  Fuzz target: the broker's session layer, end to end in one process.
 *
 *  One broker runs in a thread of the fuzzer (its real loop, store, ZAP and
 *  CURVE over an ipc socket) with three agents connected: a school, a KAA
 *  and an auditor. Each input is a sequence of frames, each sent as it is
 *  (valid or not) by one of the three:
 *
 *    input = *( who:1 len:2 (big-endian) bytes:len )     who % 3 picks the agent
 *
 *  After the sequence every agent greets again and pings; the broker must
 *  answer each ping within five seconds whatever came before (a hang or a
 *  lost session is a finding, reported by abort()). ASan and UBSan watch the
 *  broker's code while it handles the frames: the grammar, sessions and
 *  their states, publishing, delivery windows, replays, status.
 *
 *  Seeds: tests/fuzz/corpus/session (greetings, publishes, subscriptions,
 *  acknowledgements, replays and status requests of the three agents).
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_broker.h"
#include "soffa_keys.h"
#include "soffa_seal.h"
#include "soffa_time.h"
#include "soffa_wire.h"

#define S_AGENTS 3

static const char *const s_agents[S_AGENTS][4] = {
    /* name, role, kommun, extra lines */
    {"school-1415", "school", "1415", "unit = 12345678\n"},
    {"kaa-1419", "kaa", "1419", ""},
    {"audit-all", "audit", "", "scope = *\nspan_controllers = yes\n"},
};

static char s_dir[256];
static soffa_broker_t *s_broker;
static volatile sig_atomic_t s_stop;
static pthread_t s_thread;
static void *s_ctx;
static void *s_sock[S_AGENTS];
static uint64_t s_nonce;

static void
s_die(const char *what)
{
    fprintf(stderr, "fuzz_session: %s\n", what);
    abort();
}

static void *
s_run(void *arg)
{
    (void) arg;
    if (soffa_broker_run(s_broker, &s_stop, NULL) != SOFFA_OK)
        s_die("the broker's loop failed");
    return NULL;
}

static void
s_cleanup(void)
{
    s_stop = 1;
    pthread_join(s_thread, NULL);
    for (int i = 0; i < S_AGENTS; i++)
        zmq_close(s_sock[i]);
    zmq_ctx_term(s_ctx);
    soffa_broker_destroy(&s_broker);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_session: could not remove %s\n", s_dir);
}

/* Sends one frame's bytes as one message; false when the queue is full. */
static bool
s_send(void *d, const void *buf, size_t len)
{
    return zmq_send(d, buf, len, ZMQ_DONTWAIT) >= 0;
}

static void
s_send_frame(void *d, const soffa_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    if (soffa_frame_encode(f, &buf, &len) != SOFFA_OK)
        s_die("cannot encode a frame");
    s_send(d, buf, len);
    free(buf);
}

/* Waits until the agent's answer to a ping with `nonce` comes (a PONG, or
 * an ERROR naming it when the broker had forgotten the session). */
static void
s_await_pong(void *d, uint64_t nonce)
{
    int64_t until = soffa_mono_us() + 5 * 1000000;
    while (soffa_mono_us() < until) {
        zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, d, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        soffa_frame_t f;
        bool done = soffa_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), &f) == SOFFA_OK
                 && (f.type == SOFFA_FRAME_PONG || f.type == SOFFA_FRAME_ERROR) && f.tag == nonce;
        soffa_frame_fini(&f);
        zmq_msg_close(&m);
        if (done)
            return;
    }
    s_die("the broker did not answer a ping within five seconds");
}

/* Every agent greets (again) and pings; every ping must be answered. */
static void
s_settle(void)
{
    for (int i = 0; i < S_AGENTS; i++) {
        soffa_frame_t hello = {.type = SOFFA_FRAME_HELLO, .version = SOFFA_PROTOCOL_VERSION};
        snprintf(hello.text, sizeof hello.text, "fuzz");
        s_send_frame(s_sock[i], &hello);
        soffa_frame_t ping = {.type = SOFFA_FRAME_PING, .tag = ++s_nonce};
        s_send_frame(s_sock[i], &ping);
        s_await_pong(s_sock[i], s_nonce);
    }
}

static void
s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/soffa-fuzz-session-XXXXXX");
    if (!mkdtemp(s_dir))
        s_die("mkdtemp");
    char path[400], pub[41], sec[41], broker_pub[41], config[400];
    snprintf(path, sizeof path, "%s/broker", s_dir);
    if (soffa_keys_generate(path) != SOFFA_OK)
        s_die("keys");
    snprintf(path, sizeof path, "%s/broker.pub", s_dir);
    if (soffa_keys_load_public(path, broker_pub) != SOFFA_OK)
        s_die("keys");
    snprintf(path, sizeof path, "%s/master.key", s_dir);   /* [keys] master_key's default */
    if (soffa_seal_master_new(path) != SOFFA_OK)
        s_die("master key");
    snprintf(config, sizeof config, "%s/broker.ini", s_dir);
    FILE *f = fopen(config, "w");
    if (!f)
        s_die("config");
    fprintf(f, "[broker]\nendpoint = ipc://%s/tcp.sock\nipc_endpoint = ipc://%s/broker.sock\n"
               "secret_key = broker.key\ndata_dir = data\nlog_level = error\n"
               "[store]\nmap_size = 256MiB\n",
            s_dir, s_dir);
    for (int i = 0; i < S_AGENTS; i++) {
        snprintf(path, sizeof path, "%s/%s", s_dir, s_agents[i][0]);
        if (soffa_keys_generate(path) != SOFFA_OK)
            s_die("keys");
        fprintf(f, "\n[agent %s]\npublic_key = %s.pub\nrole = %s\n%s%s%s%s", s_agents[i][0], s_agents[i][0],
                s_agents[i][1], s_agents[i][2][0] ? "kommun = " : "", s_agents[i][2], s_agents[i][2][0] ? "\n" : "",
                s_agents[i][3]);
    }
    fclose(f);
    char why[256] = "";
    if (soffa_broker_new(&s_broker, config, why, sizeof why) != SOFFA_OK
        || soffa_broker_open(s_broker, why, sizeof why) != SOFFA_OK) {
        fprintf(stderr, "fuzz_session: %s\n", why);
        abort();
    }
    if (pthread_create(&s_thread, NULL, s_run, NULL) != 0)
        s_die("thread");
    s_ctx = zmq_ctx_new();
    for (int i = 0; i < S_AGENTS; i++) {
        snprintf(path, sizeof path, "%s/%s.key", s_dir, s_agents[i][0]);
        if (soffa_keys_load_secret(path, pub, sec) != SOFFA_OK)
            s_die("keys");
        void *d = zmq_socket(s_ctx, ZMQ_DEALER);
        int linger = 0, hwm = 100000;
        zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(d, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(d, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, broker_pub, 41);
        zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 41);
        zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 41);
        snprintf(path, sizeof path, "ipc://%s/broker.sock", s_dir);
        if (zmq_connect(d, path) != 0)
            s_die("connect");
        s_sock[i] = d;
    }
    s_settle();
    atexit(s_cleanup);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_broker)
        s_setup();
    size_t at = 0;
    while (at + 3 <= size) {
        int who = data[at] % S_AGENTS;
        size_t len = ((size_t) data[at + 1] << 8) | data[at + 2];
        at += 3;
        if (len > size - at)
            len = size - at;
        s_send(s_sock[who], data + at, len);
        at += len;
    }
    s_settle();
    return 0;
}
