/*  Tests for soffa_wire: envelopes, frames and their limits. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_wire.h"

static soffa_frame_t
roundtrip(const soffa_frame_t *f)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(soffa_frame_encode(f, &buf, &len), SOFFA_OK, "encode %s", soffa_frame_type_name(f->type));
    soffa_frame_t out;
    cr_assert_eq(soffa_frame_decode(buf, len, &out), SOFFA_OK, "decode %s", soffa_frame_type_name(f->type));
    free(buf);
    cr_assert_eq(out.type, f->type);
    return out;
}

Test(wire, every_frame_type_round_trips)
{
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t) i;

    soffa_frame_t f = {.type = SOFFA_FRAME_HELLO, .version = 1};
    strcpy(f.text, "school-agent");
    soffa_frame_t o = roundtrip(&f);
    cr_assert_eq(o.version, 1);
    cr_assert_str_eq(o.text, "school-agent");
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_WELCOME, .role = SOFFA_ROLE_KAA, .n_mailboxes = 2,
                         .n_kommuner = 1, .heartbeat_ms = 2000, .max_frame = 1000};
    strcpy(f.agent, "kaa-1419");
    strcpy(f.mailboxes[0], "kaa/1419");
    strcpy(f.mailboxes[1], "kaa-journal/1419");
    strcpy(f.kommuner[0], "1419");
    o = roundtrip(&f);
    cr_assert_str_eq(o.agent, "kaa-1419");
    cr_assert_eq(o.role, SOFFA_ROLE_KAA);
    cr_assert_eq(o.n_mailboxes, 2);
    cr_assert_str_eq(o.mailboxes[1], "kaa-journal/1419");
    cr_assert_str_eq(o.kommuner[0], "1419");
    cr_assert_eq(o.heartbeat_ms, 2000);
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_PUBLISH, .tag = 77, .data = payload, .data_len = 300};
    o = roundtrip(&f);
    cr_assert_eq(o.tag, 77);
    cr_assert_eq(o.data_len, 300);
    cr_assert_eq(memcmp(o.data, payload, 300), 0);
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = 77, .seq = 1234567890123ULL, .duplicate = true};
    strcpy(f.mailbox, "kaa/1419");
    o = roundtrip(&f);
    cr_assert_eq(o.seq, 1234567890123ULL);
    cr_assert(o.duplicate);
    cr_assert_str_eq(o.mailbox, "kaa/1419");
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_ERROR, .tag = 5, .code = SOFFA_ERR_CONSENT};
    strcpy(f.text, "no consent");
    o = roundtrip(&f);
    cr_assert_eq(o.code, SOFFA_ERR_CONSENT);
    cr_assert_str_eq(o.text, "no consent");
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_SUBSCRIBE, .credit = 64};
    strcpy(f.mailbox, "af/1419");
    o = roundtrip(&f);
    cr_assert_eq(o.credit, 64);
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_DELIVER, .seq = 9, .data = payload, .data_len = 100,
                         .has_hash = true, .tag = 3};
    memset(f.hash, 0xab, sizeof f.hash);
    strcpy(f.mailbox, "af/1419");
    o = roundtrip(&f);
    cr_assert_eq(o.seq, 9);
    cr_assert(o.has_hash);
    cr_assert_eq(o.hash[31], 0xab);
    cr_assert_eq(o.tag, 3);
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_ACK, .seq = 10};
    strcpy(f.mailbox, "af/1419");
    o = roundtrip(&f);
    cr_assert_eq(o.seq, 10);
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_CREDIT, .credit = 16};
    strcpy(f.mailbox, "af/1419");
    o = roundtrip(&f);
    cr_assert_eq(o.credit, 16);
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_REPLAY, .tag = 4,
                         .filter = {.from_seq = 2, .to_seq = 20, .from_us = 100, .to_us = 200,
                                    .message_type = SOFFA_MT_REFERRAL_SENT, .limit = 5}};
    strcpy(f.text, "history");
    strcpy(f.filter.mailbox, "kaa/1419");
    strcpy(f.filter.subject_id, "200803142717");
    o = roundtrip(&f);
    cr_assert_eq(o.filter.to_seq, 20);
    cr_assert_eq(o.filter.to_us, 200);
    cr_assert_eq(o.filter.message_type, SOFFA_MT_REFERRAL_SENT);
    cr_assert_str_eq(o.filter.subject_id, "200803142717");
    cr_assert_str_eq(o.text, "history");
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_REPLAY_END, .tag = 4, .count = 12, .access_seq = 99};
    o = roundtrip(&f);
    cr_assert_eq(o.count, 12);
    cr_assert_eq(o.access_seq, 99);
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_PING, .tag = 42};
    o = roundtrip(&f);
    cr_assert_eq(o.tag, 42);
    soffa_frame_fini(&o);
    f.type = SOFFA_FRAME_PONG;
    o = roundtrip(&f);
    cr_assert_eq(o.tag, 42);
    soffa_frame_fini(&o);

    f = (soffa_frame_t) {.type = SOFFA_FRAME_STATUS_REQUEST, .tag = 8};
    o = roundtrip(&f);
    cr_assert_eq(o.tag, 8);
    soffa_frame_fini(&o);

    soffa_mailbox_status_t st[2] = {{.depth = 3, .consumers = 1, .lag = 2, .no_reader = false},
                                    {.depth = 5, .no_reader = true, .oldest_undelivered_us = 77}};
    strcpy(st[0].mailbox, "kaa/1415");
    strcpy(st[1].mailbox, "kaa/0180");
    f = (soffa_frame_t) {.type = SOFFA_FRAME_STATUS_REPLY, .head_seq = 8, .sessions = 3,
                         .statuses = st, .n_statuses = 2};
    o = roundtrip(&f);
    cr_assert_eq(o.n_statuses, 2);
    cr_assert_str_eq(o.statuses[1].mailbox, "kaa/0180");
    cr_assert(o.statuses[1].no_reader);
    cr_assert_eq(o.statuses[1].oldest_undelivered_us, 77);
    soffa_frame_fini(&o);
    cr_assert_null(o.statuses);
}

Test(wire, envelope_round_trips)
{
    uint8_t body[64];
    memset(body, 7, sizeof body);
    soffa_envelope_t e = {.seq = 17, .sender_role = SOFFA_ROLE_SCHOOL, .received_at_us = 1234,
                          .kind = SOFFA_RK_MESSAGE, .body = body, .body_len = sizeof body,
                          .has_subject_key = true};
    memset(e.message_id, 1, 16);
    memset(e.prev_hash, 2, 32);
    memset(e.subject_key, 3, 16);
    strcpy(e.sender_agent, "school-1415");
    strcpy(e.sender_kommun, "1415");
    strcpy(e.mailbox, "kaa/1419");
    uint8_t *buf;
    size_t len;
    cr_assert_eq(soffa_envelope_encode(&e, &buf, &len), SOFFA_OK);
    soffa_envelope_t d;
    cr_assert_eq(soffa_envelope_decode(buf, len, &d), SOFFA_OK);
    cr_assert_eq(d.seq, 17);
    cr_assert_eq(d.version, SOFFA_ENVELOPE_VERSION);
    cr_assert_str_eq(d.sender_agent, "school-1415");
    cr_assert_eq(d.sender_role, SOFFA_ROLE_SCHOOL);
    cr_assert_str_eq(d.mailbox, "kaa/1419");
    cr_assert_eq(d.prev_hash[31], 2);
    cr_assert(d.has_subject_key);
    cr_assert_eq(d.body_len, sizeof body);
    cr_assert_eq(memcmp(d.body, body, sizeof body), 0);
    soffa_envelope_fini(&d);
    /* A strict prefix is refused, or (cut between trailing fields) decodes
     * without what was cut off; it never passes for the whole envelope. The
     * store's hash is what catches the latter. */
    for (size_t cut = 0; cut < len; cut++) {
        soffa_envelope_t t;
        if (soffa_envelope_decode(buf, cut, &t) == SOFFA_OK) {
            cr_assert(t.body_len < sizeof body || !t.has_subject_key, "prefix %zu decoded whole", cut);
            soffa_envelope_fini(&t);
        }
    }
    free(buf);
}

Test(wire, hash_is_blake2b_256_and_sensitive_to_every_byte)
{
    uint8_t a[32], b[32];
    char data[] = "soffa";
    soffa_wire_hash(data, 5, a);
    data[4] = 'b';
    soffa_wire_hash(data, 5, b);
    cr_assert_neq(memcmp(a, b, 32), 0);
    soffa_wire_hash("", 0, a);
    /* BLAKE2b-256 of the empty string. */
    static const uint8_t empty[4] = {0x0e, 0x57, 0x51, 0xc0};
    cr_assert_eq(memcmp(a, empty, 4), 0);
}

Test(wire, bad_frames_are_refused_without_crashing)
{
    soffa_frame_t f;
    uint8_t *big = calloc(1, SOFFA_WIRE_MAX_FRAME + 1);
    cr_assert_eq(soffa_frame_decode(big, SOFFA_WIRE_MAX_FRAME + 1, &f), SOFFA_ERR_TOO_LARGE);
    soffa_frame_fini(&f);
    free(big);
    /* Empty frame: no body. */
    cr_assert_eq(soffa_frame_decode("", 0, &f), SOFFA_ERR_MALFORMED);
    soffa_frame_fini(&f);
    /* A mailbox longer than any allowed name. */
    soffa_frame_t s = {.type = SOFFA_FRAME_ERROR};
    memset(s.text, 'x', sizeof s.text - 1);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(soffa_frame_encode(&s, &buf, &len), SOFFA_OK);
    cr_assert_eq(soffa_frame_decode(buf, len, &f), SOFFA_OK);
    soffa_frame_fini(&f);
    free(buf);
    /* Hand-made Ack whose mailbox is 100 bytes: field 8 (ack) {1: string}. */
    uint8_t ack[2 + 2 + 100];
    ack[0] = (8 << 3) | 2;
    ack[1] = 102;
    ack[2] = (1 << 3) | 2;
    ack[3] = 100;
    memset(ack + 4, 'm', 100);
    cr_assert_eq(soffa_frame_decode(ack, sizeof ack, &f), SOFFA_ERR_TOO_LARGE);
    soffa_frame_fini(&f);
    /* Truncations of a valid frame and random bytes: errors, never crashes. */
    soffa_frame_t p = {.type = SOFFA_FRAME_PUBLISH_ACK, .tag = 1, .seq = 2};
    strcpy(p.mailbox, "kaa/1419");
    cr_assert_eq(soffa_frame_encode(&p, &buf, &len), SOFFA_OK);
    for (size_t cut = 0; cut < len; cut++) {
        soffa_err_t rc = soffa_frame_decode(buf, cut, &f);
        cr_assert(rc != SOFFA_OK || f.type != SOFFA_FRAME_PUBLISH_ACK || strcmp(f.mailbox, "kaa/1419") != 0,
                  "prefix %zu decoded whole", cut);
        soffa_frame_fini(&f);
    }
    free(buf);
    uint32_t x = 99;
    uint8_t junk[256];
    for (int round = 0; round < 5000; round++) {
        size_t n = (size_t) (round % 256);
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            junk[i] = (uint8_t) (x >> 24);
        }
        (void) soffa_frame_decode(junk, n, &f);
        soffa_frame_fini(&f);
    }
}

/* ---- Batch frames (protocol 2, issue 18) ---- */

Test(wire, issue_18_batch_frames_round_trip)
{
    uint8_t m[3][40];
    for (int i = 0; i < 3; i++)
        memset(m[i], 'a' + i, sizeof m[i]);
    soffa_frame_item_t pub[3] = {{.tag = 11, .data = m[0], .data_len = 40},
                                 {.tag = 12, .data = m[1], .data_len = 10},
                                 {.tag = 13, .data = m[2], .data_len = 40}};
    soffa_frame_t f = {.type = SOFFA_FRAME_PUBLISH_BATCH, .items = pub, .n_items = 3};
    soffa_frame_t o = roundtrip(&f);
    cr_assert_eq(o.n_items, 3);
    cr_assert_eq(o.items[1].tag, 12);
    cr_assert_eq(o.items[1].data_len, 10);
    cr_assert_eq(memcmp(o.items[2].data, m[2], 40), 0);
    soffa_frame_fini(&o);
    cr_assert_null(o.items);

    /* Outcomes: stored, a retry, a refusal with its reason. */
    soffa_frame_item_t ans[3] = {{.tag = 11, .seq = 100, .mailbox = "kaa/1419"},
                                 {.tag = 12, .code = SOFFA_ERR_CONSENT, .text = "no consent covers it"},
                                 {.tag = 13, .seq = 7, .duplicate = true, .mailbox = "kaa/1415"}};
    f = (soffa_frame_t) {.type = SOFFA_FRAME_PUBLISH_ACKS, .items = ans, .n_items = 3};
    o = roundtrip(&f);
    cr_assert_eq(o.n_items, 3);
    bool seen[3] = {false};
    for (size_t i = 0; i < o.n_items; i++) {
        const soffa_frame_item_t *a = &o.items[i];
        cr_assert(a->tag >= 11 && a->tag <= 13);
        seen[a->tag - 11] = true;
        if (a->tag == 11) {
            cr_assert_eq(a->code, 0);
            cr_assert_eq(a->seq, 100);
            cr_assert_str_eq(a->mailbox, "kaa/1419");
            cr_assert_not(a->duplicate);
        } else if (a->tag == 12) {
            cr_assert_eq(a->code, SOFFA_ERR_CONSENT);
            cr_assert_str_eq(a->text, "no consent covers it");
        } else {
            cr_assert(a->duplicate);
            cr_assert_eq(a->seq, 7);
        }
    }
    cr_assert(seen[0] && seen[1] && seen[2]);
    soffa_frame_fini(&o);

    soffa_frame_item_t del[2] = {{.seq = 5, .data = m[0], .data_len = 40}, {.seq = 9, .data = m[1], .data_len = 40}};
    memset(del[0].hash, 0x11, SOFFA_HASH_LEN);
    memset(del[1].hash, 0x22, SOFFA_HASH_LEN);
    /* The record key of a sealed body travels with its record (the second
     * here); the first, in clear, has none. */
    memset(del[1].record_key, 0x5a, SOFFA_RECORD_KEY_LEN);
    del[1].has_record_key = true;
    f = (soffa_frame_t) {.type = SOFFA_FRAME_DELIVER_BATCH, .items = del, .n_items = 2, .tag = 4};
    strcpy(f.mailbox, "kaa/1419");
    o = roundtrip(&f);
    cr_assert_eq(o.n_items, 2);
    cr_assert_str_eq(o.mailbox, "kaa/1419");
    cr_assert_eq(o.tag, 4);
    cr_assert_eq(o.items[1].seq, 9);
    cr_assert_eq(o.items[1].hash[31], 0x22);
    cr_assert_eq(memcmp(o.items[0].data, m[0], 40), 0);
    cr_assert(!o.items[0].has_record_key);
    cr_assert(o.items[1].has_record_key);
    cr_assert_eq(o.items[1].record_key[0], 0x5a);
    cr_assert_eq(o.items[1].record_key[SOFFA_RECORD_KEY_LEN - 1], 0x5a);
    soffa_frame_fini(&o);

    /* WELCOME says which version the session speaks and how large a batch
     * may be; one without those (a broker before version 2) means 1. */
    f = (soffa_frame_t) {.type = SOFFA_FRAME_WELCOME, .version = 2, .batch_max = SOFFA_BATCH_MAX};
    o = roundtrip(&f);
    cr_assert_eq(o.version, 2);
    cr_assert_eq(o.batch_max, SOFFA_BATCH_MAX);
    soffa_frame_fini(&o);
    f = (soffa_frame_t) {.type = SOFFA_FRAME_WELCOME};
    o = roundtrip(&f);
    cr_assert_eq(o.version, 1);
    cr_assert_eq(o.batch_max, 0);
    soffa_frame_fini(&o);
}

/* A frame of the given oneof field (a batch body) holding n copies of item. */
static uint8_t *
raw_batch(unsigned field, const uint8_t *item, size_t item_len, size_t n, size_t *len)
{
    size_t body = n * item_len;
    uint8_t *b = malloc(16 + body);
    size_t o = 0;
    for (unsigned v = field << 3 | 2; v; v >>= 7)
        b[o++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    for (size_t v = body;; v >>= 7) {
        b[o++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f)
            break;
    }
    for (size_t i = 0; i < n; i++, o += item_len)
        memcpy(b + o, item, item_len);
    *len = o;
    return b;
}

Test(wire, issue_18_bad_batch_frames_are_refused)
{
    soffa_frame_t f;
    size_t len;
    /* More than SOFFA_BATCH_MAX items, and none at all. */
    static const uint8_t empty_publish[] = {0x0a, 0x00};
    uint8_t *b = raw_batch(17, empty_publish, 2, SOFFA_BATCH_MAX + 1, &len);
    cr_assert_eq(soffa_frame_decode(b, len, &f), SOFFA_ERR_TOO_LARGE);
    soffa_frame_fini(&f);
    free(b);
    b = raw_batch(17, empty_publish, 2, SOFFA_BATCH_MAX, &len);
    cr_assert_eq(soffa_frame_decode(b, len, &f), SOFFA_OK);
    cr_assert_eq(f.n_items, SOFFA_BATCH_MAX);
    soffa_frame_fini(&f);
    free(b);
    b = raw_batch(17, empty_publish, 2, 0, &len);
    cr_assert_eq(soffa_frame_decode(b, len, &f), SOFFA_ERR_MALFORMED);
    soffa_frame_fini(&f);
    free(b);
    b = raw_batch(19, empty_publish, 2, 0, &len);
    cr_assert_eq(soffa_frame_decode(b, len, &f), SOFFA_ERR_MALFORMED);
    soffa_frame_fini(&f);
    free(b);
    /* A refusal that names no code; a delivery without its hash. */
    static const uint8_t refusal_no_code[] = {0x12, 0x02, 0x08, 0x05};   /* refused { tag 5 } */
    b = raw_batch(18, refusal_no_code, sizeof refusal_no_code, 1, &len);
    cr_assert_eq(soffa_frame_decode(b, len, &f), SOFFA_ERR_MALFORMED);
    soffa_frame_fini(&f);
    free(b);
    static const uint8_t deliver_no_hash[] = {0x0a, 0x02, 0x08, 0x05};   /* items { seq 5 } */
    b = raw_batch(19, deliver_no_hash, sizeof deliver_no_hash, 1, &len);
    cr_assert_eq(soffa_frame_decode(b, len, &f), SOFFA_ERR_MALFORMED);
    soffa_frame_fini(&f);
    free(b);
    /* Strings past their limits: a reason, a mailbox. */
    char text[300], box[80];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    memset(box, 'k', sizeof box - 1);
    box[sizeof box - 1] = '\0';
    soffa_frame_item_t a = {.tag = 1, .code = SOFFA_ERR_CONSENT, .text = text};
    soffa_frame_t s = {.type = SOFFA_FRAME_PUBLISH_ACKS, .items = &a, .n_items = 1};
    uint8_t *buf;
    cr_assert_eq(soffa_frame_encode(&s, &buf, &len), SOFFA_OK);
    cr_assert_eq(soffa_frame_decode(buf, len, &f), SOFFA_ERR_TOO_LARGE);
    soffa_frame_fini(&f);
    free(buf);
    a = (soffa_frame_item_t) {.tag = 1, .seq = 3, .mailbox = box};
    cr_assert_eq(soffa_frame_encode(&s, &buf, &len), SOFFA_OK);
    cr_assert_eq(soffa_frame_decode(buf, len, &f), SOFFA_ERR_TOO_LARGE);
    soffa_frame_fini(&f);
    free(buf);
    /* The encoder makes no batch it would refuse. */
    soffa_frame_item_t many[SOFFA_BATCH_MAX + 1] = {{0}};
    s = (soffa_frame_t) {.type = SOFFA_FRAME_PUBLISH_BATCH, .items = many, .n_items = SOFFA_BATCH_MAX + 1};
    cr_assert_eq(soffa_frame_encode(&s, &buf, &len), SOFFA_ERR_INVALID_ARG);
    s.n_items = 0;
    cr_assert_eq(soffa_frame_encode(&s, &buf, &len), SOFFA_ERR_INVALID_ARG);
    /* Random bytes under a batch body never crash and never pass half-read. */
    uint8_t junk[512];
    unsigned seed = 18;
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (uint8_t) rand_r(&seed);
        size_t n = 1 + (size_t) rand_r(&seed) % 60;
        b = raw_batch(17 + (unsigned) (round % 3), junk, n, 1, &len);
        if (soffa_frame_decode(b, len, &f) == SOFFA_OK)
            cr_assert(f.n_items >= 1 && f.n_items <= SOFFA_BATCH_MAX);
        soffa_frame_fini(&f);
        free(b);
    }
}
