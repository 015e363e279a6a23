/*
 * uuid.c - UUIDv7 generation, formatting and parsing (see uuid.h).
 *
 * Role: every id TaskFlow hands out (jobs, rules, runs) comes from here.
 * Layout (RFC 9562, section 5.7): bytes 0-5 the 48-bit Unix milliseconds,
 * big-endian; byte 6 high nibble the version 7; 12 bits rand_a hold the
 * generator's sequence counter (RFC 9562 section 6.2, method 1); byte 8 top
 * two bits the variant 10; the other 62 bits come from the generator's rng.
 * Invariant: ids from one generator compare strictly increasing as bytes,
 * because the pair (timestamp, counter) strictly increases.
 * Pure; a generator belongs to one thread.
 */
#include "engine/uuid.h"

#include <stddef.h>

#include "engine/error.h"

#define UUID_SEQ_MAX 0x0FFFu
#define UUID_MS_MASK ((UINT64_C(1) << 48) - 1)

static const char uuid_hex_digits[] = "0123456789abcdef";

void tf_uuid_gen_init(tf_uuid_gen_t *gen, uint64_t seed) {
    tf_rng_seed(&gen->rng, seed);
    gen->last_ms = 0;
    gen->seq = 0;
}

/*
 * Advances (last_ms, seq).  A new millisecond restarts the counter at 0; the
 * same or an earlier millisecond (clock stepped back) increments it, and when
 * it overflows the generator borrows the next millisecond, so ids never go
 * backwards.  Borrowed time is paid back once the real clock catches up.
 */
static void uuid_advance(tf_uuid_gen_t *gen, uint64_t unix_ms) {
    if (unix_ms > gen->last_ms) {
        gen->last_ms = unix_ms;
        gen->seq = 0;
        return;
    }
    if (gen->seq < UUID_SEQ_MAX) {
        gen->seq++;
        return;
    }
    gen->last_ms++;
    gen->seq = 0;
}

void tf_uuid_v7(tf_uuid_gen_t *gen, uint64_t unix_ms, tf_uuid_t *out) {
    uuid_advance(gen, unix_ms & UUID_MS_MASK);

    const uint64_t ms = gen->last_ms & UUID_MS_MASK;
    for (int i = 0; i < 6; i++) {
        out->bytes[i] = (uint8_t)(ms >> (8 * (5 - i)));
    }
    out->bytes[6] = (uint8_t)(0x70u | ((gen->seq >> 8) & 0x0Fu));
    out->bytes[7] = (uint8_t)(gen->seq & 0xFFu);

    const uint64_t rand_b = tf_rng_next(&gen->rng);
    out->bytes[8] = (uint8_t)(0x80u | ((rand_b >> 56) & 0x3Fu));
    for (int i = 9; i < 16; i++) {
        out->bytes[i] = (uint8_t)(rand_b >> (8 * (15 - i)));
    }
}

void tf_uuid_format(const tf_uuid_t *uuid, char out[TF_UUID_STR_LEN + 1]) {
    size_t pos = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[pos++] = '-';
        }
        out[pos++] = uuid_hex_digits[uuid->bytes[i] >> 4];
        out[pos++] = uuid_hex_digits[uuid->bytes[i] & 0x0F];
    }
    out[pos] = '\0';
}

/* Value of one hex digit, or -1 when `c` is not one. */
static int uuid_hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int uuid_is_dash_position(size_t pos) {
    return pos == 8 || pos == 13 || pos == 18 || pos == 23;
}

int tf_uuid_parse(const char *text, tf_uuid_t *out) {
    if (text == NULL || out == NULL) {
        return TF_EINVAL;
    }
    tf_uuid_t result;
    size_t byte = 0;
    size_t pos = 0;
    while (pos < TF_UUID_STR_LEN) {
        if (uuid_is_dash_position(pos)) {
            if (text[pos] != '-') {
                return TF_EINVAL;
            }
            pos++;
            continue;
        }
        /* A NUL here is non-hex, so a short string stops before reading past it. */
        int high = uuid_hex_value(text[pos]);
        int low = high < 0 ? -1 : uuid_hex_value(text[pos + 1]);
        if (low < 0) {
            return TF_EINVAL;
        }
        result.bytes[byte++] = (uint8_t)((high << 4) | low);
        pos += 2;
    }
    if (text[pos] != '\0') {
        return TF_EINVAL;
    }
    *out = result;
    return 0;
}

uint64_t tf_uuid_v7_unix_ms(const tf_uuid_t *uuid) {
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++) {
        ms = (ms << 8) | uuid->bytes[i];
    }
    return ms;
}
