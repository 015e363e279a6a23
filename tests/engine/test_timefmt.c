/*
 * test_timefmt.c - tests for engine/timefmt.c: known instants (epoch, API
 * example, leap years, the 0000/9999 limits), offsets, fraction truncation,
 * round trips and every kind of rejected input.  Expected values were
 * computed independently with Python's datetime.  One cmocka process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/error.h"
#include "engine/rng.h"
#include "engine/timefmt.h"

#define T0_MS INT64_C(1795676400000) /* 2026-11-26T07:00:00.000Z */

/* Parses a NUL-terminated string; returns the code and stores the time. */
static int parse(const char *text, int64_t *out) {
    return tf_time_parse(text, strlen(text), out);
}

static void assert_formats_as(int64_t unix_ms, const char *expected) {
    char text[TF_TIME_STR_LEN + 1];
    assert_int_equal(tf_time_format(unix_ms, text), 0);
    assert_string_equal(text, expected);
}

static void assert_parses_as(const char *text, int64_t expected) {
    int64_t value = 0;
    assert_int_equal(parse(text, &value), 0);
    assert_int_equal(value, expected);
}

static const struct {
    int64_t unix_ms;
    const char *text;
} known_times[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {T0_MS, "2026-11-26T07:00:00.000Z"},
    {-1, "1969-12-31T23:59:59.999Z"},
    {INT64_C(951825600000), "2000-02-29T12:00:00.000Z"},
    {INT64_C(1709251199999), "2024-02-29T23:59:59.999Z"},
    {INT64_C(-2203977600000), "1900-02-28T00:00:00.000Z"},
    {INT64_C(-2203891200000), "1900-03-01T00:00:00.000Z"},
    {INT64_C(1735689599999), "2024-12-31T23:59:59.999Z"},
    {INT64_C(1735689600000), "2025-01-01T00:00:00.000Z"},
    {INT64_C(-62135596800000), "0001-01-01T00:00:00.000Z"},
    {INT64_C(-62167219200000), "0000-01-01T00:00:00.000Z"},
    {INT64_C(253402300799999), "9999-12-31T23:59:59.999Z"},
    {INT64_C(-26640264307772), "1125-10-21T14:34:52.228Z"},
    {INT64_C(203684597037219), "8424-07-04T14:43:57.219Z"},
    {INT64_C(56029373359638), "3745-07-02T02:49:19.638Z"},
};

#define KNOWN_COUNT (sizeof known_times / sizeof known_times[0])

static void test_timefmt__formats_known_times(void **state) {
    (void)state;
    for (size_t i = 0; i < KNOWN_COUNT; i++) {
        assert_formats_as(known_times[i].unix_ms, known_times[i].text);
    }
}

static void test_timefmt__parses_known_times(void **state) {
    (void)state;
    for (size_t i = 0; i < KNOWN_COUNT; i++) {
        assert_parses_as(known_times[i].text, known_times[i].unix_ms);
    }
}

static void test_timefmt__format_rejects_years_outside_0000_to_9999(void **state) {
    (void)state;
    char text[TF_TIME_STR_LEN + 1];
    assert_int_equal(tf_time_format(INT64_C(-62167219200001), text), TF_ERANGE);
    assert_int_equal(tf_time_format(INT64_C(253402300800000), text), TF_ERANGE);
    assert_int_equal(tf_time_format(INT64_MIN, text), TF_ERANGE);
    assert_int_equal(tf_time_format(INT64_MAX, text), TF_ERANGE);
}

static void test_timefmt__leap_years_follow_gregorian_rules(void **state) {
    (void)state;
    int64_t value;
    assert_int_equal(parse("2000-02-29T00:00:00Z", &value), 0);         /* divisible by 400 */
    assert_int_equal(parse("2024-02-29T00:00:00Z", &value), 0);         /* divisible by 4 */
    assert_int_equal(parse("1900-02-29T00:00:00Z", &value), TF_EINVAL); /* by 100 only */
    assert_int_equal(parse("2100-02-29T00:00:00Z", &value), TF_EINVAL);
    assert_int_equal(parse("2023-02-29T00:00:00Z", &value), TF_EINVAL);
}

static void test_timefmt__parse_applies_offsets(void **state) {
    (void)state;
    assert_parses_as("2026-11-26T12:30:00.000+05:30", T0_MS);
    assert_parses_as("2026-11-25T23:00:00.000-08:00", T0_MS);
    assert_parses_as("2026-11-26T07:00:00+00:00", T0_MS);
    assert_parses_as("2026-11-26T07:00:00-00:00", T0_MS);
    assert_parses_as("2026-11-27T06:59:00+23:59", T0_MS);
    assert_parses_as("1970-01-01T00:00:00+01:00", INT64_C(-3600000));
}

static void test_timefmt__parse_truncates_fractions_to_milliseconds(void **state) {
    (void)state;
    assert_parses_as("2026-11-26T07:00:00Z", T0_MS);
    assert_parses_as("2026-11-26T07:00:00.1Z", T0_MS + 100);
    assert_parses_as("2026-11-26T07:00:00.12Z", T0_MS + 120);
    assert_parses_as("2026-11-26T07:00:00.123Z", T0_MS + 123);
    assert_parses_as("2026-11-26T07:00:00.1239Z", T0_MS + 123);
    assert_parses_as("2026-11-26T07:00:00.999999999999Z", T0_MS + 999);
    assert_parses_as("1969-12-31T23:59:59.9999Z", -1);
}

static void test_timefmt__parse_accepts_lower_case_t_and_z(void **state) {
    (void)state;
    assert_parses_as("2026-11-26t07:00:00.000z", T0_MS);
    assert_parses_as("2026-11-26t07:00:00.000Z", T0_MS);
}

static void test_timefmt__parse_reads_only_len_bytes(void **state) {
    (void)state;
    const char *text = "2026-11-26T07:00:00.000Zjunk";
    int64_t value = 0;
    assert_int_equal(tf_time_parse(text, TF_TIME_STR_LEN, &value), 0);
    assert_int_equal(value, T0_MS);
    assert_int_equal(tf_time_parse(text, TF_TIME_STR_LEN - 1, &value), TF_EINVAL);
}

static void test_timefmt__format_parse_round_trip(void **state) {
    (void)state;
    tf_rng_t rng;
    tf_rng_seed(&rng, 1);
    const uint64_t span = UINT64_C(253402300799999) + UINT64_C(62167219200000);
    for (int i = 0; i < 20000; i++) {
        const int64_t unix_ms = (int64_t)tf_rng_uniform(&rng, span) - INT64_C(62167219200000);
        char text[TF_TIME_STR_LEN + 1];
        int64_t parsed = 0;
        assert_int_equal(tf_time_format(unix_ms, text), 0);
        assert_int_equal(tf_time_parse(text, strlen(text), &parsed), 0);
        assert_int_equal(parsed, unix_ms);
    }
}

static void test_timefmt__parse_rejects_bad_input(void **state) {
    (void)state;
    const char *const bad[] = {
        "",
        "abc",
        "2026-11-26",                    /* date only */
        "2026-11-26T07:00:00",           /* no Z or offset */
        "2026-11-26T07:00:00.000",       /* no Z or offset */
        "2026-11-26T07:00Z",             /* no seconds */
        "2026-11-26 07:00:00Z",          /* space instead of T */
        "2026-11-26T07:00:00.000Z ",     /* trailing space */
        "2026-11-26T07:00:00.000Zjunk",  /* trailing junk */
        "2026-11-26T07:00:00ZZ",         /* doubled Z */
        " 2026-11-26T07:00:00Z",         /* leading space */
        "2026-11-26T07:00:00.Z",         /* empty fraction */
        "2026-11-26T07:00:00,000Z",      /* comma fraction */
        "2026-02-30T00:00:00Z",          /* Feb 30 */
        "2026-04-31T00:00:00Z",          /* Apr 31 */
        "2026-13-01T00:00:00Z",          /* month 13 */
        "2026-00-01T00:00:00Z",          /* month 0 */
        "2026-01-00T00:00:00Z",          /* day 0 */
        "2026-01-32T00:00:00Z",          /* day 32 */
        "2026-11-26T24:00:00Z",          /* hour 24 */
        "2026-11-26T23:60:00Z",          /* minute 60 */
        "2026-11-26T23:59:60Z",          /* leap second */
        "2026-1-26T07:00:00Z",           /* one-digit month */
        "226-11-26T07:00:00Z",           /* three-digit year */
        "20261-11-26T07:00:00Z",         /* five-digit year */
        "+2026-11-26T07:00:00Z",         /* signed year */
        "2026-11-2aT07:00:00Z",          /* non-digit day */
        "2026-11-26T0x:00:00Z",          /* non-digit hour */
        "2026/11/26T07:00:00Z",          /* wrong date separator */
        "2026-11-26T07.00.00Z",          /* wrong time separator */
        "2026-11-26T07:00:00+24:00",     /* offset hour 24 */
        "2026-11-26T07:00:00+23:60",     /* offset minute 60 */
        "2026-11-26T07:00:00+99:99",     /* offset nonsense */
        "2026-11-26T07:00:00+0530",      /* offset without colon */
        "2026-11-26T07:00:00+05",        /* offset without minutes */
        "2026-11-26T07:00:00+05:3",      /* short offset */
        "2026-11-26T07:00:00+05:30junk", /* junk after offset */
        "2026-11-26T07:00:00 +05:30",    /* space before offset */
        "2026-11-26T07:00:00UTC",        /* named zone */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t value = 42;
        if (parse(bad[i], &value) != TF_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(value, 42); /* untouched on failure */
    }
}

static void test_timefmt__parse_rejects_embedded_nul(void **state) {
    (void)state;
    const char text[] = "2026-11-26T07:00:00\0Z";
    int64_t value;
    assert_int_equal(tf_time_parse(text, sizeof text - 1, &value), TF_EINVAL);
}

static void test_timefmt__parse_rejects_null(void **state) {
    (void)state;
    int64_t value;
    assert_int_equal(tf_time_parse(NULL, 0, &value), TF_EINVAL);
    assert_int_equal(tf_time_parse("2026-11-26T07:00:00Z", 20, NULL), TF_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timefmt__formats_known_times),
        cmocka_unit_test(test_timefmt__parses_known_times),
        cmocka_unit_test(test_timefmt__format_rejects_years_outside_0000_to_9999),
        cmocka_unit_test(test_timefmt__leap_years_follow_gregorian_rules),
        cmocka_unit_test(test_timefmt__parse_applies_offsets),
        cmocka_unit_test(test_timefmt__parse_truncates_fractions_to_milliseconds),
        cmocka_unit_test(test_timefmt__parse_accepts_lower_case_t_and_z),
        cmocka_unit_test(test_timefmt__parse_reads_only_len_bytes),
        cmocka_unit_test(test_timefmt__format_parse_round_trip),
        cmocka_unit_test(test_timefmt__parse_rejects_bad_input),
        cmocka_unit_test(test_timefmt__parse_rejects_embedded_nul),
        cmocka_unit_test(test_timefmt__parse_rejects_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
