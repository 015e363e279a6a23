/*
 * uuid.h - UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, 12 bits
 * of sub-millisecond sequence, variant 10, 62 random bits.
 *
 * A tf_uuid_gen_t keeps the last timestamp and a counter so that ids made by
 * one generator are strictly increasing even within one millisecond or when
 * the clock steps back.  Time and randomness come in as arguments.
 * One generator per thread.
 */
#ifndef TF_ENGINE_UUID_H
#define TF_ENGINE_UUID_H

#include <stdint.h>

#include "engine/rng.h"

#define TF_UUID_STR_LEN 36 /* without the terminating NUL */

typedef struct {
    uint8_t bytes[16];
} tf_uuid_t;

typedef struct {
    tf_rng_t rng;
    uint64_t last_ms;
    uint16_t seq; /* 12-bit counter in rand_a */
} tf_uuid_gen_t;

void tf_uuid_gen_init(tf_uuid_gen_t *gen, uint64_t seed);

/* Makes the next UUIDv7 for Unix time `unix_ms`. */
void tf_uuid_v7(tf_uuid_gen_t *gen, uint64_t unix_ms, tf_uuid_t *out);

/* Writes the canonical lower-case form and a NUL into `out`
 * (TF_UUID_STR_LEN + 1 bytes). */
void tf_uuid_format(const tf_uuid_t *uuid, char out[TF_UUID_STR_LEN + 1]);

/* Parses the canonical 8-4-4-4-12 hex form (either case).  Returns 0, or
 * TF_EINVAL for anything else (wrong length, non-hex, missing dashes). */
int tf_uuid_parse(const char *text, tf_uuid_t *out);

/* The Unix milliseconds stored in a UUIDv7. */
uint64_t tf_uuid_v7_unix_ms(const tf_uuid_t *uuid);

#endif
