/*
 * rng.c - xoshiro256** seeded by splitmix64 (see rng.h).
 *
 * Role: the engine's only source of randomness (retry jitter, UUID bits).
 * Invariants: after tf_rng_seed() the state is never all zero (splitmix64
 * cannot yield four zero words in a row), which xoshiro requires.
 * Pure; a tf_rng_t belongs to one thread.
 */
#include "engine/rng.h"

static uint64_t rng_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* One splitmix64 step: advances `*state` and returns the mixed output. */
static uint64_t rng_splitmix64(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void tf_rng_seed(tf_rng_t *rng, uint64_t seed) {
    uint64_t state = seed;
    for (int i = 0; i < 4; i++) {
        rng->s[i] = rng_splitmix64(&state);
    }
}

uint64_t tf_rng_next(tf_rng_t *rng) {
    uint64_t *s = rng->s;
    const uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}

/*
 * Rejection sampling: 2^64 mod range values at the bottom of the 64-bit space
 * would make small results slightly more likely, so draws below that
 * threshold are discarded.  The loop repeats with probability < 1/2 per draw.
 */
uint64_t tf_rng_uniform(tf_rng_t *rng, uint64_t bound) {
    if (bound == UINT64_MAX) {
        return tf_rng_next(rng);
    }
    const uint64_t range = bound + 1;
    const uint64_t threshold = (0 - range) % range; /* 2^64 mod range */
    for (;;) {
        uint64_t r = tf_rng_next(rng);
        if (r >= threshold) {
            return r % range;
        }
    }
}
