/*
 * test_jbuf.c - the direct JSON writer: separators, escaping, raw splices,
 * nesting limits; every output is checked by parsing it with jansson.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "adapters/json/jbuf.h"
#include "engine/error.h"

static char *finish(tf_jbuf_t *b) {
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(tf_jbuf_finish(b, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    json_error_t err;
    json_t *parsed = json_loads(out, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (parsed == NULL) {
        fail_msg("invalid JSON '%s': %s", out, err.text);
    }
    json_decref(parsed);
    return out;
}

static void test_jbuf__object_with_every_kind(void **state) {
    (void)state;
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "s");
    tf_jbuf_str(&b, "hi");
    tf_jbuf_key(&b, "n");
    tf_jbuf_int(&b, -42);
    tf_jbuf_key(&b, "big");
    tf_jbuf_int(&b, INT64_MAX);
    tf_jbuf_key(&b, "t");
    tf_jbuf_bool(&b, 1);
    tf_jbuf_key(&b, "z");
    tf_jbuf_null(&b);
    tf_jbuf_key(&b, "raw");
    tf_jbuf_raw(&b, "{\"a\":[1,2]}");
    tf_jbuf_key(&b, "none");
    tf_jbuf_str(&b, NULL);
    tf_jbuf_key(&b, "arr");
    tf_jbuf_arr_open(&b);
    tf_jbuf_int(&b, 1);
    tf_jbuf_str(&b, "two");
    tf_jbuf_obj_open(&b);
    tf_jbuf_obj_close(&b);
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    char *out = finish(&b);
    assert_string_equal(out, "{\"s\":\"hi\",\"n\":-42,\"big\":9223372036854775807,\"t\":true,"
                             "\"z\":null,\"raw\":{\"a\":[1,2]},\"none\":null,"
                             "\"arr\":[1,\"two\",{}]}");
    free(out);
}

static void test_jbuf__escapes_strings(void **state) {
    (void)state;
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    tf_jbuf_str(&b, "q\"b\\n\nr\rt\t\x01\x1f end");
    tf_jbuf_strn(&b, "a\0b", 3);
    tf_jbuf_arr_close(&b);
    char *out = finish(&b);
    assert_string_equal(out, "[\"q\\\"b\\\\n\\nr\\rt\\t\\u0001\\u001f end\",\"a\\u0000b\"]");
    free(out);
}

static void test_jbuf__grows_past_initial_capacity(void **state) {
    (void)state;
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (int i = 0; i < 10000; i++) {
        tf_jbuf_int(&b, i);
    }
    tf_jbuf_arr_close(&b);
    char *out = finish(&b);
    assert_true(strlen(out) > 40000);
    free(out);
}

static void test_jbuf__too_deep_fails(void **state) {
    (void)state;
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    for (int i = 0; i < TF_JBUF_MAX_DEPTH + 2; i++) {
        tf_jbuf_arr_open(&b);
    }
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(tf_jbuf_finish(&b, &out, &len), TF_ENOMEM);
    assert_null(out);
    tf_jbuf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jbuf__object_with_every_kind),
        cmocka_unit_test(test_jbuf__escapes_strings),
        cmocka_unit_test(test_jbuf__grows_past_initial_capacity),
        cmocka_unit_test(test_jbuf__too_deep_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
