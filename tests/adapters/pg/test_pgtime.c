/*
 * test_pgtime.c - PostgreSQL timestamptz text in any session time zone
 * becomes the same RFC 3339 UTC text; anything else is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "adapters/pg/pgtime.h"
#include "engine/error.h"

static void expect(const char *pg, const char *want) {
    char out[TF_TIME_STR_LEN + 1];
    assert_int_equal(tf_pgtime_to_rfc3339(pg, out), 0);
    assert_string_equal(out, want);
}

static void test_pgtime__converts_every_offset_form(void **state) {
    (void)state;
    expect("2026-11-26 07:00:00+00", "2026-11-26T07:00:00.000Z");
    expect("2026-11-26 07:00:00.1+00", "2026-11-26T07:00:00.100Z");
    expect("2026-11-26 07:00:00.123456+00", "2026-11-26T07:00:00.123Z");
    expect("2026-11-26 08:00:00.5+01", "2026-11-26T07:00:00.500Z");
    expect("2026-11-26 12:30:00+05:30", "2026-11-26T07:00:00.000Z");
    expect("2026-11-25 23:00:00.999-08", "2026-11-26T07:00:00.999Z");
    expect("2024-02-29 00:00:00+00", "2024-02-29T00:00:00.000Z");
}

static void test_pgtime__refuses_the_rest(void **state) {
    (void)state;
    char out[TF_TIME_STR_LEN + 1];
    int64_t ms;
    const char *bad[] = {"",
                         "infinity",
                         "-infinity",
                         "2026-11-26T07:00:00+00",
                         "2026-11-26 07:00:00",
                         "2026-11-26 07:00:00+0",
                         "1853-01-01 00:00:00+00:53:28",
                         "2026-02-30 07:00:00+00",
                         "0044-03-15 12:00:00+00 BC"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tf_pgtime_to_rfc3339(bad[i], out), TF_EINVAL);
        assert_int_equal(tf_pgtime_parse(bad[i], &ms), TF_EINVAL);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pgtime__converts_every_offset_form),
        cmocka_unit_test(test_pgtime__refuses_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
