/*  Writes seed corpora for the fuzz targets from replayed records.
 *
 *  Build and run from a build directory (see tests/fuzz/make-seeds.sh):
 *    cc -I../lib make_seeds.c libsoffa.a libsoffa_proto.a $(pkg-config --libs \
 *       libzmq libprotobuf-c lmdb libsodium inih jansson) -o make_seeds
 *    soffa --agent audit --json replay | ./make_seeds ../tests/fuzz/corpus
 *  Each input line is one record as JSON; its message is encoded into
 *  corpus/msg, wrapped into a publish frame (corpus/frame) and prefixed with
 *  a policy mode byte (corpus/policy). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_msg.h"
#include "soffa_wire.h"

static void
s_write(const char *dir, const char *kind, int n, const uint8_t *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/seed-%03d", dir, kind, n);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len)
        exit(1);
    fclose(f);
}

int
main(int argc, char **argv)
{
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
