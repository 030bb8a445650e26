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
