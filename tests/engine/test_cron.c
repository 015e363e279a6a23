/*
 * test_cron.c - cron parsing and fire times, daylight saving included.
 *
 * The zones here are tables of their real offset changes around the
 * vectors (from the IANA database): Europe/Oslo, America/New_York and
 * Australia/Sydney (southern hemisphere: springs forward in October, falls
 * back in April).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/cron.h"
#include "engine/error.h"
#include "engine/timefmt.h"

/* ---- zones ---- */

typedef struct {
    int32_t first;     /* offset before the first change */
    int64_t at[8];     /* changes, ascending */
    int32_t offset[8]; /* offset from at[i] on */
    size_t n;
} table_zone_t;

static int32_t table_offset(const void *zone, int64_t t) {
    const table_zone_t *z = zone;
    int32_t off = z->first;
    for (size_t i = 0; i < z->n && z->at[i] <= t; i++) {
        off = z->offset[i];
    }
    return off;
}

static int64_t table_next(const void *zone, int64_t t) {
    const table_zone_t *z = zone;
    for (size_t i = 0; i < z->n; i++) {
        if (z->at[i] > t) {
            return z->at[i];
        }
    }
    return INT64_MAX;
}

/* Unix seconds of a UTC time written "2026-03-29T01:00:00Z". */
static int64_t utc(const char *text) {
    int64_t ms = 0;
    if (tf_time_parse(text, strlen(text), &ms) != 0) {
        fail_msg("bad test time %s", text);
    }
    return ms / 1000;
}

#define H 3600
/* Oslo: CET +1, CEST +2; 2026-03-29 01:00Z and 2026-10-25 01:00Z. */
static table_zone_t oslo;
/* New York: EST -5, EDT -4; 2026-03-08 07:00Z and 2026-11-01 06:00Z. */
static table_zone_t new_york;
/* Sydney: AEDT +11, AEST +10; 2026-04-04 16:00Z (Apr 5 03:00 -> 02:00) and
 * 2026-10-03 16:00Z (Oct 4 02:00 -> 03:00). */
static table_zone_t sydney;

static int setup_zones(void **state) {
    (void)state;
    oslo = (table_zone_t){.first = 1 * H,
                          .at = {utc("2026-03-29T01:00:00Z"), utc("2026-10-25T01:00:00Z")},
                          .offset = {2 * H, 1 * H},
                          .n = 2};
    new_york = (table_zone_t){.first = -5 * H,
                              .at = {utc("2026-03-08T07:00:00Z"), utc("2026-11-01T06:00:00Z")},
                              .offset = {-4 * H, -5 * H},
                              .n = 2};
    sydney = (table_zone_t){.first = 11 * H,
                            .at = {utc("2026-04-04T16:00:00Z"), utc("2026-10-03T16:00:00Z")},
                            .offset = {10 * H, 11 * H},
                            .n = 2};
    return 0;
}

static tf_cron_zone_t zone_of(const table_zone_t *z) {
    return (tf_cron_zone_t){table_offset, table_next, z};
}

static tf_cron_t parse_ok(const char *expr) {
    tf_cron_t c;
    char err[200] = "";
    if (tf_cron_parse(expr, &c, err, sizeof(err)) != 0) {
        fail_msg("'%s' refused: %s", expr, err);
    }
    return c;
}

/* The fire times after `from` (UTC text), `n` of them, as UTC text. */
static void assert_fires(const char *expr, const table_zone_t *z, const char *from, size_t n,
                         const char *const *want) {
    tf_cron_t c = parse_ok(expr);
    tf_cron_zone_t zone = z != NULL ? zone_of(z) : (tf_cron_zone_t){0};
    int64_t t = utc(from);
    for (size_t i = 0; i < n; i++) {
        int64_t next = 0;
        if (tf_cron_next(&c, z != NULL ? &zone : NULL, t, &next) != 0) {
            fail_msg("'%s': no fire time after #%zu", expr, i);
        }
        char got[TF_TIME_STR_LEN + 1];
        assert_int_equal(tf_time_format(next * 1000, got), 0);
        got[19] = 'Z', got[20] = '\0'; /* drop ".000" */
        if (strcmp(got, want[i]) != 0) {
            fail_msg("'%s' fire #%zu after %s: got %s, want %s", expr, i, from, got, want[i]);
        }
        t = next;
    }
}

#define FIRES(expr, zone, from, ...)                                                               \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__};                                                 \
        assert_fires(expr, zone, from, sizeof(want_) / sizeof(want_[0]), want_);                   \
    } while (0)

/* ---- parsing ---- */

static void test_cron__field_forms(void **state) {
    (void)state;
    tf_cron_t c = parse_ok("*/15 0-23/6 1,15 JAN-mar,12 mon-FRI");
    assert_true(c.minutes == ((1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45)));
    assert_int_equal(c.hours, (1u << 0) | (1u << 6) | (1u << 12) | (1u << 18));
    assert_int_equal(c.mdays, (1u << 1) | (1u << 15));
    assert_int_equal(c.months, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 12));
    assert_int_equal(c.wdays, 0x3e);
    assert_true(c.hour_floats);
    assert_false(c.mday_star || c.wday_star);
    c = parse_ok("5/20 7 * * 7");
    assert_true(c.minutes == ((1ull << 5) | (1ull << 25) | (1ull << 45)));
    assert_int_equal(c.wdays, 1); /* 7 is Sunday */
    assert_false(c.hour_floats);
    assert_true(c.mday_star);
    c = parse_ok("  0\t9-17  *  *  0,6 ");
    assert_int_equal(c.hours, 0x3fe00);
    assert_int_equal(c.wdays, 0x41);
    c = parse_ok("59 23 31 12 *");
    assert_true(c.minutes == 1ull << 59);
    c = parse_ok("0 1-3 * * *");
    assert_false(c.hour_floats); /* a plain range is fixed hours */
}

static void test_cron__macros(void **state) {
    (void)state;
    static const struct {
        const char *macro, *same;
    } cases[] = {
        {"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@MIDNIGHT", "0 0 * * *"},
        {"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
        {"@annually", "0 0 1 1 *"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tf_cron_t a = parse_ok(cases[i].macro), b = parse_ok(cases[i].same);
        assert_memory_equal(&a, &b, sizeof(a));
    }
}

static void test_cron__bad_expressions_say_what_is_wrong(void **state) {
    (void)state;
    static const struct {
        const char *expr, *fragment;
    } cases[] = {
        {"", "five fields"},
        {"* * * *", "five fields"},
        {"* * * * * *", "more than five"},
        {"60 * * * *", "minute: 60 is out of range 0-59"},
        {"* 24 * * *", "hour: 24 is out of range 0-23"},
        {"* * 0 * *", "day of month: 0 is out of range 1-31"},
        {"* * 32 * *", "day of month: 32"},
        {"* * * 13 *", "month: 13 is out of range 1-12"},
        {"* * * * 8", "day of week: 8 is out of range 0-7"},
        {"*/0 * * * *", "minute: the step must be a number from 1 to 60"},
        {"*/61 * * * *", "minute: the step"},
        {"*/ * * * *", "minute: the step"},
        {"5-1 * * * *", "minute: a range must not run backwards"},
        {"1,,2 * * * *", "minute: an empty list item"},
        {"1, * * * *", "minute: an empty list item"},
        {"a * * * *", "minute: 'a' is not a number"},
        {"* * * FOO *", "month: 'FOO' is not a number or a name"},
        {"* * * JANUARY *", "month: 'JANUARY'"},
        {"* * * * MON-", "day of week: '' is not a number or a name"},
        {"1-2-3 * * * *", "minute: unexpected '-3'"},
        {"** * * * *", "minute: unexpected '*'"},
        {"1/2/3 * * * *", "minute: unexpected '/3'"},
        {"-1 * * * *", "minute: '-1' is not a number"},
        {"99999999999999999999 * * * *", "minute: "},
        {"@reboot", "unknown macro '@reboot'"},
        {"@daily 1", "unknown macro"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tf_cron_t c;
        char err[200] = "";
        assert_int_equal(tf_cron_parse(cases[i].expr, &c, err, sizeof(err)), TF_EINVAL);
        if (strstr(err, cases[i].fragment) == NULL) {
            fail_msg("'%s': message '%s' lacks '%s'", cases[i].expr, err, cases[i].fragment);
        }
    }
    char long_expr[TF_CRON_EXPR_MAX + 2];
    memset(long_expr, ' ', sizeof(long_expr) - 1);
    long_expr[sizeof(long_expr) - 1] = '\0';
    tf_cron_t c;
    char err[200];
    assert_int_equal(tf_cron_parse(long_expr, &c, err, sizeof(err)), TF_EINVAL);
    assert_non_null(strstr(err, "too long"));
    assert_int_equal(tf_cron_parse(NULL, &c, err, sizeof(err)), TF_EINVAL);
    assert_int_equal(tf_cron_parse("* * * * *", &c, NULL, 0), 0);
    assert_int_equal(tf_cron_parse("61 * * * *", &c, NULL, 0), TF_EINVAL);
}

/* ---- fire times in UTC ---- */

static void test_cron__next_in_utc(void **state) {
    (void)state;
    FIRES("*/20 * * * *", NULL, "2026-12-31T23:35:10Z", "2026-12-31T23:40:00Z",
          "2027-01-01T00:00:00Z", "2027-01-01T00:20:00Z");
    /* Strictly after: a fire time is never returned twice. */
    FIRES("0 7 * * *", NULL, "2026-05-01T07:00:00Z", "2026-05-02T07:00:00Z");
    /* Both day fields restricted: either matches (the 13th, or a Friday). */
    FIRES("0 0 13 * 5", NULL, "2026-11-01T00:00:00Z", "2026-11-06T00:00:00Z",
          "2026-11-13T00:00:00Z", "2026-11-20T00:00:00Z");
    /* One starred: only the other counts (Friday the 13th needs no OR). */
    FIRES("0 0 * * 5", NULL, "2026-11-06T00:00:00Z", "2026-11-13T00:00:00Z");
    FIRES("0 0 29 2 *", NULL, "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z",
          "2032-02-29T00:00:00Z");
    FIRES("0 0 31 * *", NULL, "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z",
          "2026-07-31T00:00:00Z");
    FIRES("@yearly", NULL, "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z");
    FIRES("0 12 * * MON-FRI", NULL, "2026-12-04T12:00:00Z", "2026-12-07T12:00:00Z");
}

static void test_cron__a_schedule_that_never_fires_is_not_found(void **state) {
    (void)state;
    tf_cron_t c = parse_ok("0 0 30 2 *");
    int64_t next = 0;
    assert_int_equal(tf_cron_next(&c, NULL, utc("2026-01-01T00:00:00Z"), &next), TF_ENOTFOUND);
    c = parse_ok("0 0 31 4,6,9,11 *");
    assert_int_equal(tf_cron_next(&c, NULL, 0, &next), TF_ENOTFOUND);
}

/* In UTC, tf_cron_next is the first matching minute: checked against a
 * minute-by-minute scan for random schedules from random instants. */
static int matches_utc(const tf_cron_t *c, int64_t t) {
    int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
    int64_t year;
    int month, mday;
    tf_civil_from_days(days, &year, &month, &mday);
    int64_t secs = t - days * 86400;
    int hour = (int)(secs / 3600), minute = (int)(secs % 3600 / 60);
    int wday = tf_weekday(days);
    int dom = c->mdays >> mday & 1, dow = c->wdays >> wday & 1;
    int day = c->mday_star || c->wday_star ? dom && dow : dom || dow;
    return secs % 60 == 0 && day && (c->months >> month & 1) && (c->hours >> hour & 1) &&
           (c->minutes >> minute & 1);
}

static void test_cron__next_is_the_first_matching_minute(void **state) {
    (void)state;
    static const char *const minute[] = {"*", "*/7", "0", "5,35", "10-20/5", "59"};
    static const char *const hour[] = {"*", "*/5", "0", "9-17", "23", "1,13"};
    static const char *const mday[] = {"*", "1", "15-20", "*/10", "31"};
    static const char *const month[] = {"*", "FEB", "*/3", "1-6"};
    static const char *const wday[] = {"*", "MON-FRI", "0", "6,7", "*/2"};
    uint64_t seed = 42;
    for (int i = 0; i < 400; i++) {
        char expr[128];
        size_t pick[6];
        for (size_t k = 0; k < 6; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            pick[k] = (size_t)(seed >> 33);
        }
        snprintf(expr, sizeof(expr), "%s %s %s %s %s", minute[pick[0] % 6], hour[pick[1] % 6],
                 mday[pick[2] % 5], month[pick[3] % 4], wday[pick[4] % 5]);
        tf_cron_t c = parse_ok(expr);
        int64_t after = utc("2026-01-01T00:00:00Z") + (int64_t)(pick[5] % (400 * 86400));
        int64_t next = 0;
        int rc = tf_cron_next(&c, NULL, after, &next);
        int64_t t = after - after % 60 + 60, end = t + 4 * 366 * 86400;
        while (t < end && !matches_utc(&c, t)) {
            t += 60;
        }
        if (rc == TF_ENOTFOUND && t == end) {
            continue; /* e.g. "* * 31 FEB *": never */
        }
        assert_int_equal(rc, 0);
        if (t != next) {
            fail_msg("'%s' after %lld: got %lld, the scan finds %lld", expr, (long long)after,
                     (long long)next, (long long)t);
        }
    }
}

/* ---- daylight saving ---- */

static void test_cron__oslo_spring_forward(void **state) {
    (void)state;
    /* 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00Z).  02:30 does not
     * exist: a fixed time fires once at the gap's end, 03:00 CEST. */
    FIRES("30 2 * * *", &oslo, "2026-03-28T00:00:00Z", "2026-03-28T01:30:00Z",
          "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z");
    /* Every minute of the missing hour fires once, at the gap's end. */
    FIRES("* 2 * * *", &oslo, "2026-03-29T00:58:00Z", "2026-03-29T01:00:00Z",
          "2026-03-30T00:00:00Z");
    /* 02:00 and 03:00 both fixed: 03:00 CEST fires once. */
    FIRES("0 2,3 * * *", &oslo, "2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z",
          "2026-03-30T00:00:00Z");
    /* An hourly schedule follows absolute time: 01:30 CET, then 03:30 CEST. */
    FIRES("30 * * * *", &oslo, "2026-03-29T00:00:00Z", "2026-03-29T00:30:00Z",
          "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z");
    FIRES("0 */2 * * *", &oslo, "2026-03-28T22:30:00Z", "2026-03-28T23:00:00Z",
          "2026-03-29T02:00:00Z");
}

static void test_cron__oslo_fall_back(void **state) {
    (void)state;
    /* 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00Z); 02:00-02:59 occur
     * twice.  A fixed time fires at its first occurrence only. */
    FIRES("30 2 * * *", &oslo, "2026-10-24T00:00:00Z", "2026-10-24T00:30:00Z",
          "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z");
    /* Also when asked from inside the repeated hour's second pass. */
    FIRES("45 2 * * *", &oslo, "2026-10-25T01:10:00Z", "2026-10-26T01:45:00Z");
    /* Hourly follows absolute time through the repeated hour: 02:15 CEST,
     * 02:15 CET, 03:15 CET. */
    FIRES("15 * * * *", &oslo, "2026-10-24T23:30:00Z", "2026-10-25T00:15:00Z",
          "2026-10-25T01:15:00Z", "2026-10-25T02:15:00Z");
    FIRES("*/30 * * * *", &oslo, "2026-10-25T00:10:00Z", "2026-10-25T00:30:00Z",
          "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z");
    /* The flagship: 07:00 Oslo, 05:00Z in summer and 06:00Z in winter. */
    FIRES("0 7 * * *", &oslo, "2026-10-24T12:00:00Z", "2026-10-25T06:00:00Z",
          "2026-10-26T06:00:00Z");
    FIRES("0 7 * * *", &oslo, "2026-03-28T12:00:00Z", "2026-03-29T05:00:00Z",
          "2026-03-30T05:00:00Z");
}

static void test_cron__new_york_both_transitions(void **state) {
    (void)state;
    /* 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z). */
    FIRES("30 2 * * *", &new_york, "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z",
          "2026-03-09T06:30:00Z");
    FIRES("0 * * * *", &new_york, "2026-03-08T05:30:00Z", "2026-03-08T06:00:00Z",
          "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z");
    /* 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z); 01:xx occurs twice. */
    FIRES("30 1 * * *", &new_york, "2026-11-01T00:00:00Z", "2026-11-01T05:30:00Z",
          "2026-11-02T06:30:00Z");
    FIRES("30 * * * *", &new_york, "2026-11-01T04:45:00Z", "2026-11-01T05:30:00Z",
          "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z");
}

static void test_cron__sydney_both_transitions(void **state) {
    (void)state;
    /* Southern hemisphere.  2026-04-05 03:00 AEDT -> 02:00 AEST (16:00Z on
     * the 4th): 02:xx twice, first at AEDT. */
    FIRES("30 2 * * *", &sydney, "2026-04-04T00:00:00Z", "2026-04-04T15:30:00Z",
          "2026-04-05T16:30:00Z");
    FIRES("30 */1 * * *", &sydney, "2026-04-04T15:00:00Z", "2026-04-04T15:30:00Z",
          "2026-04-04T16:30:00Z", "2026-04-04T17:30:00Z");
    /* 2026-10-04 02:00 AEST -> 03:00 AEDT (16:00Z on the 3rd): 02:30 fires
     * at 03:00 AEDT. */
    FIRES("30 2 * * *", &sydney, "2026-10-03T00:00:00Z", "2026-10-03T16:00:00Z",
          "2026-10-04T15:30:00Z");
    FIRES("30 * * * *", &sydney, "2026-10-03T15:00:00Z", "2026-10-03T15:30:00Z",
          "2026-10-03T16:30:00Z");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cron__field_forms),
        cmocka_unit_test(test_cron__macros),
        cmocka_unit_test(test_cron__bad_expressions_say_what_is_wrong),
        cmocka_unit_test(test_cron__next_in_utc),
        cmocka_unit_test(test_cron__a_schedule_that_never_fires_is_not_found),
        cmocka_unit_test(test_cron__next_is_the_first_matching_minute),
        cmocka_unit_test(test_cron__oslo_spring_forward),
        cmocka_unit_test(test_cron__oslo_fall_back),
        cmocka_unit_test(test_cron__new_york_both_transitions),
        cmocka_unit_test(test_cron__sydney_both_transitions),
    };
    return cmocka_run_group_tests(tests, setup_zones, NULL);
}
