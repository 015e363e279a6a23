/*
 * test_names.c - the one rule for queue and executor names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "engine/names.h"

static void test_names_valid(void **state) {
    (void)state;
    assert_true(tf_name_valid("emails", 128));
    assert_true(tf_name_valid("a.b:c-d_E9", 128));
    assert_true(tf_name_valid("x", 1));
}

static void test_names_refused(void **state) {
    (void)state;
    char long_name[130];
    memset(long_name, 'a', 129);
    long_name[129] = '\0';
    assert_false(tf_name_valid("", 128));
    assert_false(tf_name_valid(long_name, 128));
    assert_false(tf_name_valid("ab", 1));
    static const char *const bad[] = {"a b", "a/b", "a%20", "\xc3\xa6", "a\tb", "a,b", "{a}", "a'b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(tf_name_valid(bad[i], 128));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_valid),
        cmocka_unit_test(test_names_refused),
    };
    return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
