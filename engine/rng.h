/*
 * rng.h - a small seeded pseudo-random generator (xoshiro256**).
 *
 * The engine never reads randomness from the system: callers seed a tf_rng_t
 * (adapters from the OS, tests with a constant) and pass it in, so every
 * decision that uses randomness (jitter, UUID bits) is reproducible in a test.
 * Not cryptographic: secrets and tokens come from OpenSSL in the adapters.
 * A tf_rng_t is a plain value; one per thread, never shared.
 */
#ifndef TF_ENGINE_RNG_H
#define TF_ENGINE_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} tf_rng_t;

/* Seeds `rng` from `seed` (any value, 0 included) via splitmix64. */
void tf_rng_seed(tf_rng_t *rng, uint64_t seed);

/* Next 64 random bits. */
uint64_t tf_rng_next(tf_rng_t *rng);

/* Uniform integer in [0, bound]; `bound` may be UINT64_MAX.  Unbiased. */
uint64_t tf_rng_uniform(tf_rng_t *rng, uint64_t bound);

#endif
