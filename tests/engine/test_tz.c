/*
 * test_tz.c - TZif zones against the system's tzdata and glibc.
 *
 * Real files from /usr/share/zoneinfo (the tzdata package) are parsed and
 * their offsets compared with glibc's localtime_r under TZ=<zone> for
 * instants from 1900 to 2200 (past the files' last transition, where the
 * POSIX footer answers); next_change is checked against a scan; malformed
 * files are refused.  Cron schedules over a real zone fire where the table
 * zones of test_cron.c say.
 */
/* setenv, tzset, localtime_r and tm_gmtoff: _DEFAULT_SOURCE comes from CMake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "engine/cron.h"
#include "engine/error.h"
#include "engine/timefmt.h"
#include "engine/tz.h"

#define ZONEINFO "/usr/share/zoneinfo/"

static const char *const zones[] = {
    "Europe/Oslo",     "America/New_York", "Australia/Sydney",  "Australia/Lord_Howe",
    "Europe/Dublin",   "Pacific/Apia",     "Asia/Kolkata",      "America/Sao_Paulo",
    "Pacific/Chatham", "America/St_Johns", "Africa/Casablanca", "UTC",
};

/* The file's bytes (caller frees) and length. */
static unsigned char *read_zone(const char *zone, size_t *len) {
    char path[256];
    snprintf(path, sizeof(path), ZONEINFO "%s", zone);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot open %s (the tzdata package)", path);
    }
    unsigned char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static tf_tz_t *load(const char *zone) {
    size_t len;
    unsigned char *data = read_zone(zone, &len);
    tf_tz_t *tz = NULL;
    int rc = tf_tz_parse(data, len, &tz);
    free(data);
    if (rc != 0) {
        fail_msg("%s: tf_tz_parse %d", zone, rc);
    }
    return tz;
}

static long glibc_offset(int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    assert_non_null(localtime_r(&tt, &tm));
    return tm.tm_gmtoff;
}

static void use_tz(const char *zone) {
    char value[300];
    snprintf(value, sizeof(value), ":%s", zone);
    setenv("TZ", value, 1);
    tzset();
}

static void test_tz__offsets_agree_with_glibc(void **state) {
    (void)state;
    const int64_t from = -2208988800; /* 1900 */
    const int64_t to = 7258118400;    /* 2200 */
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        tf_tz_t *tz = load(zones[z]);
        use_tz(zones[z]);
        uint64_t seed = 7 + z;
        for (int i = 0; i < 20000; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            int64_t t = from + (int64_t)((seed >> 11) % (uint64_t)(to - from));
            long want = glibc_offset(t);
            if (tf_tz_offset(tz, t) != want) {
                fail_msg("%s at %lld: %d, glibc %ld", zones[z], (long long)t, tf_tz_offset(tz, t),
                         want);
            }
        }
        /* Around every change of 2020-2060, a second either side. */
        for (int64_t t = 1577836800; t < 2840140800;) {
            int64_t next = tf_tz_next_change(tz, t);
            if (next == INT64_MAX || next >= 2840140800) {
                break;
            }
            assert_true(next > t);
            if (tf_tz_offset(tz, next - 1) != glibc_offset(next - 1) ||
                tf_tz_offset(tz, next) != glibc_offset(next)) {
                fail_msg("%s around %lld: %d/%d, glibc %ld/%ld", zones[z], (long long)next,
                         tf_tz_offset(tz, next - 1), tf_tz_offset(tz, next), glibc_offset(next - 1),
                         glibc_offset(next));
            }
            assert_int_not_equal(tf_tz_offset(tz, next - 1), tf_tz_offset(tz, next));
            t = next;
        }
        tf_tz_free(tz);
    }
    unsetenv("TZ");
    tzset();
}

static void test_tz__next_change_skips_nothing(void **state) {
    (void)state;
    /* Hour by hour through 2036-2040 (the fat files' last transitions are
     * in 2037, then the footer): the offset never changes between t and
     * next_change(t). */
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        tf_tz_t *tz = load(zones[z]);
        int64_t t = 2082758400; /* 2036 */
        int64_t next = tf_tz_next_change(tz, t);
        for (; t < 2240524800; t += 3600) {
            if (t >= next) {
                assert_int_not_equal(tf_tz_offset(tz, next - 1), tf_tz_offset(tz, next));
                next = tf_tz_next_change(tz, t);
            }
            assert_int_equal(tf_tz_offset(tz, t), tf_tz_offset(tz, t - t % 3600));
            if (next != INT64_MAX) {
                assert_int_equal(tf_tz_offset(tz, t), tf_tz_offset(tz, next - 1));
            }
        }
        tf_tz_free(tz);
    }
}

static void test_tz__cron_over_real_zones(void **state) {
    (void)state;
    static const struct {
        const char *zone, *expr, *after, *want;
    } cases[] = {
        {"Europe/Oslo", "30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
        {"Europe/Oslo", "30 2 * * *", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
        {"Europe/Oslo", "0 7 * * *", "2031-03-30T00:00:00Z", "2031-03-30T05:00:00Z"},
        {"America/New_York", "30 2 * * *", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
        {"Australia/Sydney", "30 2 * * *", "2026-10-03T00:00:00Z", "2026-10-03T16:00:00Z"},
        {"Australia/Sydney", "30 2 * * *", "2026-04-04T00:00:00Z", "2026-04-04T15:30:00Z"},
        /* Lord Howe moves by 30 minutes: 02:15 does not exist on
         * 2026-10-04 (02:00 -> 02:30, +10:30 -> +11). */
        {"Australia/Lord_Howe", "15 2 * * *", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z"},
        /* Samoa skipped 2011-12-30 altogether (-10 -> +14 at 10:00Z): its
         * noon fires once, when the skipped day ends. */
        {"Pacific/Apia", "0 12 * * *", "2011-12-29T23:00:00Z", "2011-12-30T10:00:00Z"},
        /* Far past the file's transitions: the footer. */
        {"Europe/Oslo", "30 2 * * *", "2090-03-25T12:00:00Z", "2090-03-26T01:00:00Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tf_tz_t *tz = load(cases[i].zone);
        tf_cron_zone_t zone = tf_tz_cron_zone(tz);
        tf_cron_t c;
        assert_int_equal(tf_cron_parse(cases[i].expr, &c, NULL, 0), 0);
        int64_t after_ms, want_ms, next = 0;
        assert_int_equal(tf_time_parse(cases[i].after, strlen(cases[i].after), &after_ms), 0);
        assert_int_equal(tf_time_parse(cases[i].want, strlen(cases[i].want), &want_ms), 0);
        assert_int_equal(tf_cron_next(&c, &zone, after_ms / 1000, &next), 0);
        if (next != want_ms / 1000) {
            char got[TF_TIME_STR_LEN + 1];
            tf_time_format(next * 1000, got);
            fail_msg("%s '%s' after %s: %s, want %s", cases[i].zone, cases[i].expr, cases[i].after,
                     got, cases[i].want);
        }
        tf_tz_free(tz);
    }
}

/* A minimal version-2 file: one type, no transitions, footer `footer`. */
static size_t build(unsigned char *out, const char *footer, int32_t utoff) {
    unsigned char *p = out;
    for (int block = 0; block < 2; block++) {
        memcpy(p, "TZif2", 5);
        memset(p + 5, 0, 15);
        const uint32_t counts[6] = {0, 0, 0, 0, 1, 4};
        for (int k = 0; k < 6; k++) {
            p[20 + 4 * k] = 0, p[21 + 4 * k] = 0, p[22 + 4 * k] = 0;
            p[23 + 4 * k] = (unsigned char)counts[k];
        }
        p += 44;
        p[0] = (unsigned char)((uint32_t)utoff >> 24),
        p[1] = (unsigned char)((uint32_t)utoff >> 16);
        p[2] = (unsigned char)((uint32_t)utoff >> 8), p[3] = (unsigned char)utoff;
        p[4] = 0, p[5] = 0;
        memcpy(p + 6, "ABC", 4);
        p += 10;
    }
    size_t n = strlen(footer);
    *p++ = '\n';
    memcpy(p, footer, n);
    p += n;
    *p++ = '\n';
    return (size_t)(p - out);
}

static void test_tz__footers(void **state) {
    (void)state;
    unsigned char buf[512];
    tf_tz_t *tz = NULL;
    /* Southern hemisphere rules with a Julian day and times past 24 h. */
    size_t len = build(buf, "<+13>-13<+14>,M9.5.0/3,M4.1.0/4", 13 * 3600);
    assert_int_equal(tf_tz_parse(buf, len, &tz), 0);
    int64_t jan = 1767225600, jul = 1782864000; /* 2026-01-01, 2026-07-01 */
    assert_int_equal(tf_tz_offset(tz, jan), 14 * 3600);
    assert_int_equal(tf_tz_offset(tz, jul), 13 * 3600);
    tf_tz_free(tz);
    len = build(buf, "XXX3YYY,J60/25,300/-1", -3 * 3600);
    assert_int_equal(tf_tz_parse(buf, len, &tz), 0);
    assert_int_equal(tf_tz_offset(tz, jul), -2 * 3600);
    assert_int_equal(tf_tz_offset(tz, jan), -3 * 3600);
    tf_tz_free(tz);
    len = build(buf, "JST-9", 9 * 3600); /* no daylight time */
    assert_int_equal(tf_tz_parse(buf, len, &tz), 0);
    assert_int_equal(tf_tz_offset(tz, jul), 9 * 3600);
    assert_true(tf_tz_next_change(tz, jul) == INT64_MAX);
    tf_tz_free(tz);
    static const char *const bad[] = {
        "",
        "X-1",
        "CET",
        "CET-1CEST,",
        "CET-1CEST,M3.5.0",
        "CET-1CEST,M13.1.0,M10.5.0",
        "CET-1CEST,M3.6.0,M10.5.0",
        "CET-1CEST,M3.5.7,M10.5.0",
        "CET-1CEST,J0,J100",
        "CET-1CEST,366,1",
        "CET-1CEST,M3.5.0/200,M10.5.0",
        "CET-25",
        "<+1-1",
        "CET-1CEST,1,2x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        len = build(buf, bad[i], 0);
        tz = NULL;
        if (bad[i][0] == '\0') {
            assert_int_equal(tf_tz_parse(buf, len, &tz), 0); /* empty: allowed */
            tf_tz_free(tz);
            continue;
        }
        if (tf_tz_parse(buf, len, &tz) != TF_EINVAL) {
            fail_msg("footer '%s' accepted", bad[i]);
        }
    }
}

static void test_tz__malformed_files_are_refused(void **state) {
    (void)state;
    size_t len;
    unsigned char *good = read_zone("Europe/Oslo", &len);
    unsigned char *copy = malloc(len);
    assert_non_null(copy);
    tf_tz_t *tz = NULL;
    /* Every truncation of the header and of the data. */
    for (size_t cut = 0; cut < len - 60; cut += cut < 100 ? 1 : 37) {
        memcpy(copy, good, cut);
        if (tf_tz_parse(copy, cut, &tz) != TF_EINVAL) {
            fail_msg("accepted a file cut at %zu of %zu bytes", cut, len);
        }
    }
    memcpy(copy, good, len);
    copy[0] = 'X';
    assert_int_equal(tf_tz_parse(copy, len, &tz), TF_EINVAL);
    memcpy(copy, good, len);
    copy[4] = '9'; /* version */
    assert_int_equal(tf_tz_parse(copy, len, &tz), TF_EINVAL);
    /* Random byte flips never crash; what parses answers offsets. */
    uint64_t seed = 1;
    for (int i = 0; i < 3000; i++) {
        memcpy(copy, good, len);
        for (int k = 0; k < 4; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            copy[(seed >> 20) % len] ^= (unsigned char)(seed >> 50);
        }
        tz = NULL;
        if (tf_tz_parse(copy, len, &tz) == 0) {
            (void)tf_tz_offset(tz, 1767225600);
            (void)tf_tz_next_change(tz, 1767225600);
            tf_tz_free(tz);
        }
    }
    assert_int_equal(tf_tz_parse(NULL, 0, &tz), TF_EINVAL);
    free(copy);
    free(good);
    /* Leap-second files are refused. */
    unsigned char *right = read_zone("right/UTC", &len);
    assert_int_equal(tf_tz_parse(right, len, &tz), TF_EINVAL);
    free(right);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tz__offsets_agree_with_glibc),
        cmocka_unit_test(test_tz__next_change_skips_nothing),
        cmocka_unit_test(test_tz__cron_over_real_zones),
        cmocka_unit_test(test_tz__footers),
        cmocka_unit_test(test_tz__malformed_files_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
