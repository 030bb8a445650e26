/*  Writes seed corpora for the fuzz targets from replayed records.
 *
 *  Build and run from a build directory (see tests/fuzz/make-seeds.sh):
 *    cc -I../lib make_seeds.c libsoffa.a libsoffa_proto.a $(pkg-config --libs \
 *       libzmq libprotobuf-c lmdb libsodium inih jansson) -o make_seeds
 *    soffa --agent audit --json replay | ./make_seeds ../tests/fuzz/corpus
 *  Each input line is one record as JSON; its message is encoded into
 *  corpus/msg, wrapped into a publish frame (corpus/frame) and prefixed with
 *  a policy mode byte (corpus/policy).
 *
 *    ./make_seeds ../tests/fuzz/corpus --batch
 *  writes the seeds of the batch frames of protocol 2 from corpus/msg:
 *  PUBLISH-BATCH, PUBLISH-ACKS and DELIVER-BATCH frames (corpus/frame
 *  batch-*), and sessions that greet with version 2 and publish, read and
 *  replay in batches, or greet with version 1 and send a batch anyway
 *  (corpus/session batch-*). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_msg.h"
#include "soffa_wire.h"

static void
s_write_as(const char *dir, const char *kind, const char *prefix, int n, const uint8_t *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s-%03d", dir, kind, prefix, n);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len)
        exit(1);
    fclose(f);
}

static void
s_write(const char *dir, const char *kind, int n, const uint8_t *buf, size_t len)
{
    s_write_as(dir, kind, "seed", n, buf, len);
}

/* ---- Batch frames (--batch) ---- */

/* Appends one frame of agent `who` to a session seed. */
static void
s_sess_add(uint8_t *seed, size_t *n, int who, const soffa_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    if (soffa_frame_encode(f, &buf, &len) != SOFFA_OK || len > 0xffff || *n + 3 + len > 65536)
        exit(1);
    seed[(*n)++] = (uint8_t) who;
    seed[(*n)++] = (uint8_t) (len >> 8);
    seed[(*n)++] = (uint8_t) len;
    memcpy(seed + *n, buf, len);
    *n += len;
    free(buf);
}

static int
s_batch_seeds(const char *dir)
{
    enum { M = 64 };
    uint8_t *msg[M];
    size_t len[M];
    int n = 0;
    for (int i = 0; i < 100 && n < M; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/msg/seed-%03d", dir, i);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        msg[n] = malloc(SOFFA_MSG_MAX);
        len[n] = fread(msg[n], 1, SOFFA_MSG_MAX, f);
        fclose(f);
        n++;
    }
    if (n < 4)
        return 1;
    int out = 0;
    for (int i = 0; i + 3 <= n; i += 3, out++) {
        soffa_frame_item_t it[3];
        for (int k = 0; k < 3; k++)
            it[k] = (soffa_frame_item_t) {.tag = (uint64_t) (i + k + 1), .data = msg[i + k], .data_len = len[i + k]};
        uint8_t *fb;
        size_t fl;
        soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH_BATCH, .items = it, .n_items = 3};
        if (soffa_frame_encode(&f, &fb, &fl) == SOFFA_OK) {
            s_write_as(dir, "frame", "batch", out, fb, fl);
            free(fb);
        }
    }
    /* The broker's answers and deliveries, as an agent decodes them. */
    soffa_frame_item_t acks[3] = {{.tag = 1, .seq = 10, .mailbox = "kaa/1419"},
                                  {.tag = 2, .code = SOFFA_ERR_CONSENT, .text = "no consent covers it"},
                                  {.tag = 3, .seq = 4, .duplicate = true, .mailbox = "kaa/1415"}};
    soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH_ACKS, .items = acks, .n_items = 3};
    uint8_t *fb;
    size_t fl;
    if (soffa_frame_encode(&f, &fb, &fl) != SOFFA_OK)
        return 1;
    s_write_as(dir, "frame", "batch", 900, fb, fl);
    free(fb);
    soffa_envelope_t e = {.seq = 7, .kind = SOFFA_RK_MESSAGE, .msg_type = SOFFA_MT_ABSENCE_REPORTED,
                          .sender_role = SOFFA_ROLE_SCHOOL, .body = msg[0], .body_len = len[0]};
    snprintf(e.sender_agent, sizeof e.sender_agent, "school-1415");
    snprintf(e.mailbox, sizeof e.mailbox, "kaa/1419");
    uint8_t *env;
    size_t env_len;
    if (soffa_envelope_encode(&e, &env, &env_len) != SOFFA_OK)
        return 1;
    soffa_frame_item_t del[2] = {{.seq = 7, .data = env, .data_len = env_len}, {.seq = 8, .data = env, .data_len = env_len}};
    soffa_wire_hash(env, env_len, del[0].hash);
    soffa_wire_hash(env, env_len, del[1].hash);
    f = (soffa_frame_t) {.type = SOFFA_FRAME_DELIVER_BATCH, .items = del, .n_items = 2};
    snprintf(f.mailbox, sizeof f.mailbox, "kaa/1419");
    if (soffa_frame_encode(&f, &fb, &fl) != SOFFA_OK)
        return 1;
    s_write_as(dir, "frame", "batch", 901, fb, fl);
    free(fb);
    free(env);

    /* Sessions: 0 school, 1 KAA, 2 auditor (fuzz_session.c). */
    static uint8_t seed[65536];
    soffa_frame_t hello2 = {.type = SOFFA_FRAME_HELLO, .version = 2}, hello1 = {.type = SOFFA_FRAME_HELLO, .version = 1};
    soffa_frame_t sub = {.type = SOFFA_FRAME_SUBSCRIBE, .credit = 64};
    snprintf(sub.mailbox, sizeof sub.mailbox, "kaa/1419");
    soffa_frame_item_t it[8];
    size_t k = (size_t) (n < 8 ? n : 8);
    for (size_t i = 0; i < k; i++)
        it[i] = (soffa_frame_item_t) {.tag = i + 1, .data = msg[i], .data_len = len[i]};
    soffa_frame_t batch = {.type = SOFFA_FRAME_PUBLISH_BATCH, .items = it, .n_items = k};
    soffa_frame_t rp = {.type = SOFFA_FRAME_REPLAY, .tag = 9, .credit = 32};
    snprintf(rp.text, sizeof rp.text, "replay");
    soffa_frame_t ack = {.type = SOFFA_FRAME_ACK, .seq = 3, .has_hash = true};
    snprintf(ack.mailbox, sizeof ack.mailbox, "kaa/1419");
    size_t sn = 0;
    s_sess_add(seed, &sn, 0, &hello2);   /* a batch of publishes, read in batches */
    s_sess_add(seed, &sn, 0, &batch);
    s_sess_add(seed, &sn, 1, &hello2);
    s_sess_add(seed, &sn, 1, &sub);
    s_sess_add(seed, &sn, 1, &ack);
    s_sess_add(seed, &sn, 2, &hello2);
    s_sess_add(seed, &sn, 2, &rp);
    s_write_as(dir, "session", "batch", 900, seed, sn);
    sn = 0;
    s_sess_add(seed, &sn, 0, &hello1);   /* a batch on a session of version 1 */
    s_sess_add(seed, &sn, 0, &batch);
    s_sess_add(seed, &sn, 1, &hello1);
    s_sess_add(seed, &sn, 1, &sub);
    s_write_as(dir, "session", "batch", 901, seed, sn);
    sn = 0;
    s_sess_add(seed, &sn, 0, &hello2);   /* the same batch twice: every message a retry */
    s_sess_add(seed, &sn, 0, &batch);
    s_sess_add(seed, &sn, 0, &batch);
    s_sess_add(seed, &sn, 2, &hello2);
    s_sess_add(seed, &sn, 2, &rp);
    s_write_as(dir, "session", "batch", 902, seed, sn);
    for (int i = 0; i < n; i++)
        free(msg[i]);
    fprintf(stderr, "batch seeds written\n");
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[2], "--batch") == 0)
        return s_batch_seeds(argv[1]);
    if (argc != 2)
        return 2;
    char line[65536];
    int n = 0;
    while (fgets(line, sizeof line, stdin)) {
        json_t *rec = json_loads(line, 0, NULL);
        json_t *m = json_object_get(rec, "message");
        char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
        soffa_msg_t *msg = NULL;
        uint8_t *buf = NULL;
        size_t len = 0;
        if (text && soffa_msg_from_json(text, &msg, NULL, 0) == SOFFA_OK && soffa_msg_encode(msg, &buf, &len) == SOFFA_OK) {
            s_write(argv[1], "msg", n, buf, len);
            soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH, .tag = (uint64_t) n, .data = buf, .data_len = len};
            uint8_t *fb;
            size_t fl;
            if (soffa_frame_encode(&f, &fb, &fl) == SOFFA_OK) {
                s_write(argv[1], "frame", n, fb, fl);
                free(fb);
            }
            uint8_t *pb = malloc(len + 1);
            pb[0] = (uint8_t) (n * 7);
            memcpy(pb + 1, buf, len);
            s_write(argv[1], "policy", n, pb, len + 1);
            free(pb);
            n++;
        }
        free(buf);
        free(text);
        soffa_msg_destroy(&msg);
        json_decref(rec);
    }
    fprintf(stderr, "%d seeds\n", n);
    return 0;
}
