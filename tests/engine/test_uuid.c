/*
 * test_uuid.c - tests for engine/uuid.c: UUIDv7 layout (RFC 9562), strict
 * ordering within a millisecond, on counter overflow and when the clock
 * steps back, and the canonical text form.  One cmocka process; no shared
 * state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/error.h"
#include "engine/uuid.h"

#define T0_MS UINT64_C(1795676400000) /* 2026-11-26T07:00:00.000Z */

static unsigned uuid_version(const tf_uuid_t *uuid) {
    return uuid->bytes[6] >> 4;
}

static unsigned uuid_variant_bits(const tf_uuid_t *uuid) {
    return uuid->bytes[8] >> 6;
}

static unsigned uuid_rand_a(const tf_uuid_t *uuid) {
    return ((unsigned)(uuid->bytes[6] & 0x0F) << 8) | uuid->bytes[7];
}

static int uuid_compare(const tf_uuid_t *a, const tf_uuid_t *b) {
    return memcmp(a->bytes, b->bytes, sizeof a->bytes);
}

static void test_uuid__v7_has_version_and_variant_bits(void **state) {
    (void)state;
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 1);
    for (uint64_t i = 0; i < 1000; i++) {
        tf_uuid_t id;
        tf_uuid_v7(&gen, T0_MS + i / 3, &id);
        assert_int_equal(uuid_version(&id), 7);
        assert_int_equal(uuid_variant_bits(&id), 2);
    }
}

static void test_uuid__v7_stores_unix_ms_big_endian(void **state) {
    (void)state;
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 1);
    tf_uuid_t id;
    tf_uuid_v7(&gen, UINT64_C(0x017F22E279B0), &id); /* RFC 9562 appendix A.6 */
    const uint8_t expected[6] = {0x01, 0x7F, 0x22, 0xE2, 0x79, 0xB0};
    assert_memory_equal(id.bytes, expected, sizeof expected);
    assert_int_equal(tf_uuid_v7_unix_ms(&id), UINT64_C(0x017F22E279B0));
}

static void test_uuid__new_millisecond_restarts_counter(void **state) {
    (void)state;
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 3);
    tf_uuid_t id;
    tf_uuid_v7(&gen, T0_MS, &id);
    assert_int_equal(uuid_rand_a(&id), 0);
    tf_uuid_v7(&gen, T0_MS, &id);
    assert_int_equal(uuid_rand_a(&id), 1);
    tf_uuid_v7(&gen, T0_MS + 1, &id);
    assert_int_equal(uuid_rand_a(&id), 0);
    assert_int_equal(tf_uuid_v7_unix_ms(&id), T0_MS + 1);
}

static void test_uuid__same_millisecond_is_strictly_increasing(void **state) {
    (void)state;
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 4);
    tf_uuid_t previous;
    tf_uuid_v7(&gen, T0_MS, &previous);
    for (int i = 1; i < 4096; i++) {
        tf_uuid_t id;
        tf_uuid_v7(&gen, T0_MS, &id);
        assert_true(uuid_compare(&previous, &id) < 0);
        assert_int_equal(tf_uuid_v7_unix_ms(&id), T0_MS);
        assert_int_equal(uuid_rand_a(&id), (unsigned)i);
        previous = id;
    }
}

static void test_uuid__counter_overflow_borrows_next_millisecond(void **state) {
    (void)state;
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 5);
    tf_uuid_t previous;
    for (int i = 0; i < 4096; i++) {
        tf_uuid_v7(&gen, T0_MS, &previous);
    }
    assert_int_equal(uuid_rand_a(&previous), 0xFFF);
    tf_uuid_t id;
    tf_uuid_v7(&gen, T0_MS, &id);
    assert_int_equal(tf_uuid_v7_unix_ms(&id), T0_MS + 1);
    assert_int_equal(uuid_rand_a(&id), 0);
    assert_true(uuid_compare(&previous, &id) < 0);
    /* The real clock reaching the borrowed millisecond must not reuse it. */
    tf_uuid_t next;
    tf_uuid_v7(&gen, T0_MS + 1, &next);
    assert_true(uuid_compare(&id, &next) < 0);
}

static void test_uuid__clock_going_back_keeps_increasing(void **state) {
    (void)state;
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 6);
    tf_uuid_t previous;
    tf_uuid_v7(&gen, T0_MS, &previous);
    for (uint64_t back = 1; back <= 100; back++) {
        tf_uuid_t id;
        tf_uuid_v7(&gen, T0_MS - back * 1000, &id);
        assert_true(uuid_compare(&previous, &id) < 0);
        assert_int_equal(tf_uuid_v7_unix_ms(&id), T0_MS);
        previous = id;
    }
    tf_uuid_t later;
    tf_uuid_v7(&gen, T0_MS + 5, &later);
    assert_true(uuid_compare(&previous, &later) < 0);
    assert_int_equal(tf_uuid_v7_unix_ms(&later), T0_MS + 5);
}

static void test_uuid__many_ids_over_a_jumpy_clock_stay_ordered(void **state) {
    (void)state;
    const uint64_t clock[] = {T0_MS, T0_MS, T0_MS - 50, T0_MS + 1, T0_MS + 1, T0_MS - 1, T0_MS + 2};
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 7);
    tf_uuid_t previous;
    tf_uuid_v7(&gen, clock[0], &previous);
    for (int round = 0; round < 2000; round++) {
        tf_uuid_t id;
        tf_uuid_v7(&gen, clock[round % 7] + (uint64_t)(round / 7), &id);
        assert_true(uuid_compare(&previous, &id) < 0);
        previous = id;
    }
}

static void test_uuid__same_seed_gives_same_ids(void **state) {
    (void)state;
    tf_uuid_gen_t a;
    tf_uuid_gen_t b;
    tf_uuid_gen_init(&a, 77);
    tf_uuid_gen_init(&b, 77);
    for (int i = 0; i < 100; i++) {
        tf_uuid_t x;
        tf_uuid_t y;
        tf_uuid_v7(&a, T0_MS, &x);
        tf_uuid_v7(&b, T0_MS, &y);
        assert_memory_equal(x.bytes, y.bytes, sizeof x.bytes);
    }
}

static void test_uuid__format_is_canonical_lower_case(void **state) {
    (void)state;
    const tf_uuid_t id = {{0x01, 0x7F, 0x22, 0xE2, 0x79, 0xB0, 0x7C, 0xC3, 0x98, 0xC4, 0xDC, 0x0C,
                           0x0C, 0x07, 0x39, 0x8F}};
    char text[TF_UUID_STR_LEN + 1];
    tf_uuid_format(&id, text);
    assert_string_equal(text, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
}

static void test_uuid__parse_reads_canonical_form(void **state) {
    (void)state;
    tf_uuid_t id;
    assert_int_equal(tf_uuid_parse("017f22e2-79b0-7cc3-98c4-dc0c0c07398f", &id), 0);
    const uint8_t expected[16] = {0x01, 0x7F, 0x22, 0xE2, 0x79, 0xB0, 0x7C, 0xC3,
                                  0x98, 0xC4, 0xDC, 0x0C, 0x0C, 0x07, 0x39, 0x8F};
    assert_memory_equal(id.bytes, expected, sizeof expected);
}

static void test_uuid__parse_accepts_upper_case(void **state) {
    (void)state;
    tf_uuid_t lower;
    tf_uuid_t upper;
    assert_int_equal(tf_uuid_parse("017f22e2-79b0-7cc3-98c4-dc0c0c07398f", &lower), 0);
    assert_int_equal(tf_uuid_parse("017F22E2-79B0-7CC3-98C4-DC0C0C07398F", &upper), 0);
    assert_memory_equal(lower.bytes, upper.bytes, sizeof lower.bytes);
}

static void test_uuid__format_parse_round_trip(void **state) {
    (void)state;
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 8);
    for (uint64_t i = 0; i < 500; i++) {
        tf_uuid_t id;
        tf_uuid_t parsed;
        char text[TF_UUID_STR_LEN + 1];
        tf_uuid_v7(&gen, T0_MS + i, &id);
        tf_uuid_format(&id, text);
        assert_int_equal(strlen(text), TF_UUID_STR_LEN);
        assert_int_equal(tf_uuid_parse(text, &parsed), 0);
        assert_memory_equal(id.bytes, parsed.bytes, sizeof id.bytes);
    }
}

static void test_uuid__parse_rejects_malformed_text(void **state) {
    (void)state;
    const char *const bad[] = {
        "",
        "017f22e2",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398",   /* one digit short */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", /* one digit long */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f ", /* trailing space */
        " 017f22e2-79b0-7cc3-98c4-dc0c0c07398f", /* leading space */
        "017f22e279b07cc398c4dc0c0c07398f",      /* no dashes */
        "017f22e2_79b0-7cc3-98c4-dc0c0c07398f",  /* wrong separator */
        "017f22e-279b0-7cc3-98c4-dc0c0c07398f",  /* dash one place early */
        "017f22e2-79b0-7cc3-98c4dc0c-0c07398f",  /* dash one group late */
        "017f22g2-79b0-7cc3-98c4-dc0c0c07398f",  /* non-hex digit */
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398-",  /* dash as digit */
        "{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}",
        "urn:uuid:017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tf_uuid_t id = {{0xAA}};
        assert_int_equal(tf_uuid_parse(bad[i], &id), TF_EINVAL);
        assert_int_equal(id.bytes[0], 0xAA); /* untouched on failure */
    }
}

static void test_uuid__parse_rejects_null(void **state) {
    (void)state;
    tf_uuid_t id;
    assert_int_equal(tf_uuid_parse(NULL, &id), TF_EINVAL);
    assert_int_equal(tf_uuid_parse("017f22e2-79b0-7cc3-98c4-dc0c0c07398f", NULL), TF_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid__v7_has_version_and_variant_bits),
        cmocka_unit_test(test_uuid__v7_stores_unix_ms_big_endian),
        cmocka_unit_test(test_uuid__new_millisecond_restarts_counter),
        cmocka_unit_test(test_uuid__same_millisecond_is_strictly_increasing),
        cmocka_unit_test(test_uuid__counter_overflow_borrows_next_millisecond),
        cmocka_unit_test(test_uuid__clock_going_back_keeps_increasing),
        cmocka_unit_test(test_uuid__many_ids_over_a_jumpy_clock_stay_ordered),
        cmocka_unit_test(test_uuid__same_seed_gives_same_ids),
        cmocka_unit_test(test_uuid__format_is_canonical_lower_case),
        cmocka_unit_test(test_uuid__parse_reads_canonical_form),
        cmocka_unit_test(test_uuid__parse_accepts_upper_case),
        cmocka_unit_test(test_uuid__format_parse_round_trip),
        cmocka_unit_test(test_uuid__parse_rejects_malformed_text),
        cmocka_unit_test(test_uuid__parse_rejects_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
