/*
 * test_zones.c - time zones by name from tzdata (adapters/clock/zones.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapters/clock/zones.h"
#include "engine/error.h"

static void test_zones__loads_and_keeps_real_zones(void **state) {
    (void)state;
    tf_zones_t *z = NULL;
    assert_int_equal(tf_zones_create(NULL, &z), 0);
    const tf_tz_t *oslo = NULL, *again = NULL, *utc = NULL;
    assert_int_equal(tf_zones_get(z, "Europe/Oslo", &oslo), 0);
    assert_int_equal(tf_tz_offset(oslo, 1782864000), 7200); /* 2026-07-01: CEST */
    assert_int_equal(tf_tz_offset(oslo, 1767225600), 3600); /* 2026-01-01: CET */
    assert_int_equal(tf_zones_get(z, "Europe/Oslo", &again), 0);
    assert_ptr_equal(oslo, again); /* parsed once */
    assert_int_equal(tf_zones_get(z, "UTC", &utc), 0);
    assert_int_equal(tf_tz_offset(utc, 1782864000), 0);
    const tf_tz_t *gmt5 = NULL;
    assert_int_equal(tf_zones_get(z, "Etc/GMT+5", &gmt5), 0);
    assert_int_equal(tf_tz_offset(gmt5, 0), -5 * 3600); /* POSIX sign: west */
    tf_zones_destroy(z);
}

static void test_zones__bad_and_unknown_names(void **state) {
    (void)state;
    tf_zones_t *z = NULL;
    assert_int_equal(tf_zones_create(NULL, &z), 0);
    const tf_tz_t *tz = NULL;
    static const char *const bad[] = {
        "",        "../../etc/passwd", "Europe/../Oslo", "/etc/passwd",   "Europe//Oslo",
        "Europe/", "Oslo zone",        "-Europe",        "Europe/Oslo\n", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        if (tf_zones_get(z, bad[i], &tz) != TF_EINVAL) {
            fail_msg("'%s' taken for a zone name", bad[i]);
        }
    }
    assert_int_equal(tf_zones_get(z, NULL, &tz), TF_EINVAL);
    char longname[80];
    memset(longname, 'A', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(tf_zones_get(z, longname, &tz), TF_EINVAL);
    /* Well-formed but not zones: missing, a directory, leap seconds, a
     * file that is not TZif. */
    assert_int_equal(tf_zones_get(z, "Mars/Olympus_Mons", &tz), TF_ENOTFOUND);
    assert_int_equal(tf_zones_get(z, "Europe", &tz), TF_ENOTFOUND);
    assert_int_equal(tf_zones_get(z, "right/UTC", &tz), TF_ENOTFOUND);
    assert_int_equal(tf_zones_get(z, "zone1970", &tz), TF_ENOTFOUND); /* not "zone1970.tab" */
    tf_zones_destroy(z);
}

static void test_zones__another_directory(void **state) {
    (void)state;
    char dir[] = "/tmp/tf-zones-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/Not_TZif", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a zone\n", f);
    fclose(f);
    tf_zones_t *z = NULL;
    assert_int_equal(tf_zones_create(dir, &z), 0);
    const tf_tz_t *tz = NULL;
    assert_int_equal(tf_zones_get(z, "Not_TZif", &tz), TF_ENOTFOUND);
    assert_int_equal(tf_zones_get(z, "Europe/Oslo", &tz), TF_ENOTFOUND); /* not in that dir */
    tf_zones_destroy(z);
    remove(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zones__loads_and_keeps_real_zones),
        cmocka_unit_test(test_zones__bad_and_unknown_names),
        cmocka_unit_test(test_zones__another_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
