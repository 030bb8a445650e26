/*  soffa_uuid: UUIDv7 generation and text form. */
#include "soffa_uuid.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "soffa_time.h"

void
soffa_uuid7(uint8_t out[SOFFA_UUID_LEN])
{
    uint64_t ms = (uint64_t) (soffa_now_us() / 1000);
    randombytes_buf(out + 6, SOFFA_UUID_LEN - 6);
    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t) (ms >> (40 - 8 * i));
    out[6] = (uint8_t) (0x70 | (out[6] & 0x0f));
    out[8] = (uint8_t) (0x80 | (out[8] & 0x3f));
}

void
soffa_uuid7_derived(int64_t unix_ms, const uint8_t bits[10], uint8_t out[SOFFA_UUID_LEN])
{
    uint64_t ms = unix_ms > 0 ? (uint64_t) unix_ms & 0xffffffffffffULL : 0;
    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t) (ms >> (40 - 8 * i));
    memcpy(out + 6, bits, 10);
    out[6] = (uint8_t) (0x70 | (out[6] & 0x0f));
    out[8] = (uint8_t) (0x80 | (out[8] & 0x3f));
}

bool
soffa_uuid_is_v7(const uint8_t id[SOFFA_UUID_LEN])
{
    return (id[6] & 0xf0) == 0x70 && (id[8] & 0xc0) == 0x80;
}

bool
soffa_uuid_is_nil(const uint8_t id[SOFFA_UUID_LEN])
{
    static const uint8_t zero[SOFFA_UUID_LEN];
    return memcmp(id, zero, SOFFA_UUID_LEN) == 0;
}

void
soffa_uuid_format(const uint8_t id[SOFFA_UUID_LEN], char out[SOFFA_UUID_STR])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < SOFFA_UUID_LEN; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id[i] >> 4];
        out[o++] = hex[id[i] & 15];
    }
    out[o] = '\0';
}

static int
s_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool
soffa_uuid_parse(const char *text, uint8_t out[SOFFA_UUID_LEN])
{
    size_t n = 0;
    int hi = -1;
    if (!text)
        return false;
    size_t len = strlen(text);
    if (len != 32 && len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (text[i] != '-')
                return false;
            continue;
        }
        int v = s_hexval(text[i]);
        if (v < 0)
            return false;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (uint8_t) (hi << 4 | v);
            hi = -1;
        }
    }
    return n == SOFFA_UUID_LEN;
}
