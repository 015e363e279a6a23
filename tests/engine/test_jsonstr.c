/*
 * test_jsonstr.c - JSON string literals without a JSON library.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/jsonstr.h"

static void test_jsonstr__quotes_and_escapes(void **state) {
    (void)state;
    char out[64];
    size_t len = 0;
    tf_json_raw(out, sizeof(out), &len, "{\"a\":");
    tf_json_quote(out, sizeof(out), &len, "say \"hi\"\\\n\x01\xc3\xa5");
    tf_json_raw(out, sizeof(out), &len, "}");
    assert_string_equal(out, "{\"a\":\"say \\\"hi\\\"\\\\\\u000a\\u0001\xc3\xa5\"}");
    assert_int_equal(len, strlen(out));
    len = 0;
    tf_json_quote(out, sizeof(out), &len, "");
    assert_string_equal(out, "\"\"");
}

static void test_jsonstr__counts_past_the_end_and_stays_terminated(void **state) {
    (void)state;
    char out[8];
    memset(out, 'x', sizeof(out));
    size_t len = 0;
    tf_json_quote(out, sizeof(out), &len, "abcdefghij");
    assert_int_equal(len, 12); /* what it needed */
    assert_non_null(memchr(out, '\0', sizeof(out)));
    /* Measuring with no buffer at all. */
    len = 0;
    tf_json_quote(NULL, 0, &len, "\"");
    assert_int_equal(len, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonstr__quotes_and_escapes),
        cmocka_unit_test(test_jsonstr__counts_past_the_end_and_stays_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
