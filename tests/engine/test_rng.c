/*
 * test_rng.c - tests for engine/rng.c: reference vectors of splitmix64 and
 * xoshiro256**, determinism, and the range and fairness of tf_rng_uniform().
 * Expected vectors come from an independent implementation of the published
 * algorithms.  One cmocka process; no shared state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/rng.h"

static void test_rng__seed_zero_matches_splitmix64_reference(void **state) {
    (void)state;
    tf_rng_t rng;
    tf_rng_seed(&rng, 0);
    assert_int_equal(rng.s[0], UINT64_C(0xe220a8397b1dcdaf));
    assert_int_equal(rng.s[1], UINT64_C(0x6e789e6aa1b965f4));
    assert_int_equal(rng.s[2], UINT64_C(0x06c45d188009454f));
    assert_int_equal(rng.s[3], UINT64_C(0xf88bb8a8724c81ec));
}

static void test_rng__next_matches_xoshiro256ss_reference(void **state) {
    (void)state;
    tf_rng_t rng = {.s = {1, 2, 3, 4}};
    const uint64_t expected[] = {
        UINT64_C(11520),
        UINT64_C(0),
        UINT64_C(1509978240),
        UINT64_C(1215971899390074240),
        UINT64_C(1216172134540287360),
        UINT64_C(607988272756665600),
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        assert_int_equal(tf_rng_next(&rng), expected[i]);
    }
}

static void test_rng__seeded_sequence_matches_reference(void **state) {
    (void)state;
    tf_rng_t rng;
    tf_rng_seed(&rng, 42);
    const uint64_t expected[] = {
        UINT64_C(0x15780b2e0c2ec716), UINT64_C(0x6104d9866d113a7e), UINT64_C(0xae17533239e499a1),
        UINT64_C(0xecb8ad4703b360a1), UINT64_C(0xfde6dc7fe2ec5e64),
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        assert_int_equal(tf_rng_next(&rng), expected[i]);
    }
}

static void test_rng__same_seed_gives_same_sequence(void **state) {
    (void)state;
    tf_rng_t a;
    tf_rng_t b;
    tf_rng_seed(&a, 12345);
    tf_rng_seed(&b, 12345);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(tf_rng_next(&a), tf_rng_next(&b));
    }
}

static void test_rng__different_seeds_give_different_sequences(void **state) {
    (void)state;
    tf_rng_t a;
    tf_rng_t b;
    tf_rng_seed(&a, 1);
    tf_rng_seed(&b, 2);
    int equal = 0;
    for (int i = 0; i < 100; i++) {
        equal += tf_rng_next(&a) == tf_rng_next(&b);
    }
    assert_int_equal(equal, 0);
}

static void test_rng__uniform_zero_bound_is_zero(void **state) {
    (void)state;
    tf_rng_t rng;
    tf_rng_seed(&rng, 7);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tf_rng_uniform(&rng, 0), 0);
    }
}

static void test_rng__uniform_max_bound_is_next(void **state) {
    (void)state;
    tf_rng_t a;
    tf_rng_t b;
    tf_rng_seed(&a, 9);
    tf_rng_seed(&b, 9);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tf_rng_uniform(&a, UINT64_MAX), tf_rng_next(&b));
    }
}

static void test_rng__uniform_stays_within_bound(void **state) {
    (void)state;
    const uint64_t bounds[] = {
        1, 2, 3, 10, 1000, UINT64_C(1) << 32, (UINT64_C(1) << 63) + 1, UINT64_MAX - 1};
    tf_rng_t rng;
    tf_rng_seed(&rng, 99);
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        for (int i = 0; i < 10000; i++) {
            assert_true(tf_rng_uniform(&rng, bounds[b]) <= bounds[b]);
        }
    }
}

static void test_rng__uniform_reaches_both_ends(void **state) {
    (void)state;
    tf_rng_t rng;
    tf_rng_seed(&rng, 5);
    int seen_low = 0;
    int seen_high = 0;
    for (int i = 0; i < 1000; i++) {
        const uint64_t value = tf_rng_uniform(&rng, 3);
        seen_low |= value == 0;
        seen_high |= value == 3;
    }
    assert_true(seen_low);
    assert_true(seen_high);
}

/* Chi-square over 10 buckets: with 9 degrees of freedom, 27.88 is the
 * p = 0.001 critical value; a fixed seed makes the test deterministic. */
static void test_rng__uniform_is_evenly_spread(void **state) {
    (void)state;
    enum { BUCKETS = 10, DRAWS = 100000 };
    long counts[BUCKETS] = {0};
    tf_rng_t rng;
    tf_rng_seed(&rng, 2024);
    for (int i = 0; i < DRAWS; i++) {
        counts[tf_rng_uniform(&rng, BUCKETS - 1)]++;
    }
    const double expected = (double)DRAWS / BUCKETS;
    double chi_square = 0;
    for (int b = 0; b < BUCKETS; b++) {
        const double diff = (double)counts[b] - expected;
        chi_square += diff * diff / expected;
    }
    assert_true(chi_square < 27.88);
}

/* With range 3 * 2^62, "next % range" would map the top quarter of the 64-bit
 * space onto [0, 2^62) and land there half the time; unbiased, it is a third. */
static void test_rng__uniform_is_unbiased_for_large_bounds(void **state) {
    (void)state;
    const uint64_t range = UINT64_C(3) << 62;
    tf_rng_t rng;
    tf_rng_seed(&rng, 31337);
    int lower = 0;
    const int draws = 30000;
    for (int i = 0; i < draws; i++) {
        lower += tf_rng_uniform(&rng, range - 1) < (UINT64_C(1) << 62);
    }
    assert_in_range(lower, draws * 31 / 100, draws * 36 / 100);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng__seed_zero_matches_splitmix64_reference),
        cmocka_unit_test(test_rng__next_matches_xoshiro256ss_reference),
        cmocka_unit_test(test_rng__seeded_sequence_matches_reference),
        cmocka_unit_test(test_rng__same_seed_gives_same_sequence),
        cmocka_unit_test(test_rng__different_seeds_give_different_sequences),
        cmocka_unit_test(test_rng__uniform_zero_bound_is_zero),
        cmocka_unit_test(test_rng__uniform_max_bound_is_next),
        cmocka_unit_test(test_rng__uniform_stays_within_bound),
        cmocka_unit_test(test_rng__uniform_reaches_both_ends),
        cmocka_unit_test(test_rng__uniform_is_evenly_spread),
        cmocka_unit_test(test_rng__uniform_is_unbiased_for_large_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
