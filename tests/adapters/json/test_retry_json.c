/*
 * test_retry_json.c - tests for adapters/json/retry_json.c: defaults for
 * missing keys, every wrong type, unknown key and out-of-range value named
 * with its "retry_policy." field, and round trips in both directions.
 * One cmocka process; no shared state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "adapters/json/retry_json.h"
#include "engine/error.h"

/* Parses `text` (which must be valid JSON) into a new reference. */
static json_t *load(const char *text) {
    json_error_t error;
    json_t *value = json_loads(text, JSON_DECODE_ANY, &error);
    if (value == NULL) {
        fail_msg("bad test JSON %s: %s", text, error.text);
    }
    return value;
}

/* Reads `value` and expects TF_EINVAL naming `field` with message `message`. */
static void expect_value_error(json_t *value, const char *field, const char *message) {
    tf_retry_policy_t policy;
    char err[256] = "";
    const char *bad_field = NULL;
    assert_int_equal(tf_retry_policy_from_json(value, &policy, err, sizeof err, &bad_field),
                     TF_EINVAL);
    assert_non_null(bad_field);
    assert_string_equal(bad_field, field);
    assert_string_equal(err, message);
    /* On failure the policy owns nothing. */
    assert_null(policy.non_retryable_errors);
    assert_null(policy.cooldowns);
}

static void expect_error(const char *text, const char *field, const char *message) {
    json_t *value = load(text);
    expect_value_error(value, field, message);
    json_decref(value);
}

/* Reads `text` and expects success. */
static tf_retry_policy_t expect_ok(const char *text) {
    json_t *value = load(text);
    tf_retry_policy_t policy;
    char err[256] = "";
    if (tf_retry_policy_from_json(value, &policy, err, sizeof err, NULL) != 0) {
        fail_msg("%s refused: %s", text, err);
    }
    json_decref(value);
    return policy;
}

/* ---- accepted input ---- */

static void test_retry_json__empty_object_gives_defaults(void **state) {
    (void)state;
    tf_retry_policy_t policy = expect_ok("{}");
    assert_int_equal(policy.max_attempts, 3);
    assert_int_equal(policy.strategy, TF_RETRY_STRATEGY_EXPONENTIAL);
    assert_int_equal(policy.base_delay_ms, 1000);
    assert_int_equal(policy.max_delay_ms, 3600000);
    assert_int_equal(policy.jitter, TF_RETRY_JITTER_NONE);
    assert_int_equal(policy.non_retryable_count, 0);
    assert_int_equal(policy.cooldown_count, 0);
    tf_retry_policy_free(&policy);
}

static void test_retry_json__reads_every_field(void **state) {
    (void)state;
    tf_retry_policy_t policy =
        expect_ok("{\"max_attempts\":5,\"strategy\":\"linear\",\"base_delay_ms\":250,"
                  "\"max_delay_ms\":60000,\"jitter\":\"equal\","
                  "\"non_retryable_errors\":[\"bad_input\",\"forbidden\"],"
                  "\"cooldown\":{\"rate_limited\":30000,\"maintenance\":0}}");
    assert_int_equal(policy.max_attempts, 5);
    assert_int_equal(policy.strategy, TF_RETRY_STRATEGY_LINEAR);
    assert_int_equal(policy.base_delay_ms, 250);
    assert_int_equal(policy.max_delay_ms, 60000);
    assert_int_equal(policy.jitter, TF_RETRY_JITTER_EQUAL);
    assert_int_equal(policy.non_retryable_count, 2);
    assert_string_equal(policy.non_retryable_errors[0], "bad_input");
    assert_string_equal(policy.non_retryable_errors[1], "forbidden");
    assert_int_equal(policy.cooldown_count, 2);
    assert_string_equal(policy.cooldowns[0].error_type, "rate_limited");
    assert_int_equal(policy.cooldowns[0].ms, 30000);
    assert_string_equal(policy.cooldowns[1].error_type, "maintenance");
    assert_int_equal(policy.cooldowns[1].ms, 0);
    tf_retry_policy_free(&policy);
}

static void test_retry_json__partial_object_keeps_other_defaults(void **state) {
    (void)state;
    /* The Lua example in API.md: strategy and max_attempts only. */
    tf_retry_policy_t policy = expect_ok("{\"strategy\":\"exponential\",\"max_attempts\":5}");
    assert_int_equal(policy.max_attempts, 5);
    assert_int_equal(policy.base_delay_ms, 1000);
    assert_int_equal(policy.max_delay_ms, 3600000);
    tf_retry_policy_free(&policy);
}

static void test_retry_json__accepts_integral_reals(void **state) {
    (void)state;
    tf_retry_policy_t policy =
        expect_ok("{\"max_attempts\":3.0,\"base_delay_ms\":1e3,\"cooldown\":{\"x\":2.0}}");
    assert_int_equal(policy.max_attempts, 3);
    assert_int_equal(policy.base_delay_ms, 1000);
    assert_int_equal(policy.cooldowns[0].ms, 2);
    tf_retry_policy_free(&policy);
}

static void test_retry_json__accepts_the_limits(void **state) {
    (void)state;
    tf_retry_policy_t policy = expect_ok("{\"max_attempts\":1000,\"base_delay_ms\":2592000000,"
                                         "\"max_delay_ms\":2592000000,"
                                         "\"cooldown\":{\"x\":2592000000}}");
    assert_int_equal(policy.max_delay_ms, INT64_C(2592000000));
    tf_retry_policy_free(&policy);
}

/* ---- the object itself and unknown keys ---- */

static void test_retry_json__not_an_object_is_refused(void **state) {
    (void)state;
    const char *const bad[] = {"[]", "null", "\"exponential\"", "3", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_error(bad[i], "retry_policy", "retry_policy must be an object");
    }
    expect_value_error(NULL, "retry_policy", "retry_policy must be an object");
}

static void test_retry_json__unknown_key_is_named(void **state) {
    (void)state;
    expect_error("{\"foo\":1}", "retry_policy", "retry_policy.foo is not a known field");
    expect_error("{\"max_attempts\":2,\"Max_attempts\":2}", "retry_policy",
                 "retry_policy.Max_attempts is not a known field");
    expect_error("{\"cooldowns\":{}}", "retry_policy",
                 "retry_policy.cooldowns is not a known field");
    expect_error("{\"\":1}", "retry_policy", "retry_policy. is not a known field");
}

static void test_retry_json__key_with_nul_is_unknown(void **state) {
    (void)state;
    json_t *obj = json_object();
    assert_int_equal(json_object_setn_new(obj, "max_attempts\0x", 14, json_integer(2)), 0);
    tf_retry_policy_t policy;
    const char *field = NULL;
    assert_int_equal(tf_retry_policy_from_json(obj, &policy, NULL, 0, &field), TF_EINVAL);
    assert_string_equal(field, "retry_policy");
    json_decref(obj);
}

/* ---- wrong types ---- */

static void test_retry_json__integer_fields_must_be_integers(void **state) {
    (void)state;
    const char *const fields[] = {"max_attempts", "base_delay_ms", "max_delay_ms"};
    const char *const bad[] = {"\"3\"", "1.5", "-0.5", "true", "null", "[]", "{}", "1e-3"};
    for (size_t f = 0; f < 3; f++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char text[128];
            char field[64];
            char message[128];
            snprintf(text, sizeof text, "{\"%s\":%s}", fields[f], bad[i]);
            snprintf(field, sizeof field, "retry_policy.%s", fields[f]);
            snprintf(message, sizeof message, "%s must be an integer", field);
            expect_error(text, field, message);
        }
    }
}

static void test_retry_json__strategy_must_be_a_known_name(void **state) {
    (void)state;
    const char *const bad[] = {"1", "null", "\"Fixed\"", "\"random\"", "\"\"", "[\"fixed\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"strategy\":%s}", bad[i]);
        expect_error(text, "retry_policy.strategy",
                     "retry_policy.strategy must be one of \"fixed\", \"linear\", "
                     "\"exponential\"");
    }
}

static void test_retry_json__jitter_must_be_a_known_name(void **state) {
    (void)state;
    const char *const bad[] = {"false", "null", "\"NONE\"", "\"gaussian\"", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"jitter\":%s}", bad[i]);
        expect_error(text, "retry_policy.jitter",
                     "retry_policy.jitter must be one of \"none\", \"full\", \"equal\"");
    }
}

static void test_retry_json__non_retryable_errors_must_be_strings(void **state) {
    (void)state;
    expect_error("{\"non_retryable_errors\":\"bad_input\"}", "retry_policy.non_retryable_errors",
                 "retry_policy.non_retryable_errors must be an array of strings");
    expect_error("{\"non_retryable_errors\":{}}", "retry_policy.non_retryable_errors",
                 "retry_policy.non_retryable_errors must be an array of strings");
    expect_error("{\"non_retryable_errors\":[\"ok\",1]}", "retry_policy.non_retryable_errors",
                 "retry_policy.non_retryable_errors[1] must be a string without NUL characters");
    expect_error("{\"non_retryable_errors\":[null]}", "retry_policy.non_retryable_errors",
                 "retry_policy.non_retryable_errors[0] must be a string without NUL characters");
}

static void test_retry_json__non_retryable_error_with_nul_is_refused(void **state) {
    (void)state;
    json_t *obj = json_object();
    json_t *list = json_array();
    assert_int_equal(json_array_append_new(list, json_stringn("a\0b", 3)), 0);
    assert_int_equal(json_object_set_new(obj, "non_retryable_errors", list), 0);
    expect_value_error(obj, "retry_policy.non_retryable_errors",
                       "retry_policy.non_retryable_errors[0] must be a string without NUL "
                       "characters");
    json_decref(obj);
}

static void test_retry_json__cooldown_must_map_types_to_integers(void **state) {
    (void)state;
    expect_error("{\"cooldown\":[]}", "retry_policy.cooldown",
                 "retry_policy.cooldown must be an object of error type to ms");
    expect_error("{\"cooldown\":30000}", "retry_policy.cooldown",
                 "retry_policy.cooldown must be an object of error type to ms");
    expect_error("{\"cooldown\":{\"rate_limited\":\"30s\"}}", "retry_policy.cooldown",
                 "retry_policy.cooldown.rate_limited must be an integer");
    expect_error("{\"cooldown\":{\"rate_limited\":1.5}}", "retry_policy.cooldown",
                 "retry_policy.cooldown.rate_limited must be an integer");
    expect_error("{\"cooldown\":{\"rate_limited\":null}}", "retry_policy.cooldown",
                 "retry_policy.cooldown.rate_limited must be an integer");
}

static void test_retry_json__cooldown_key_with_nul_is_refused(void **state) {
    (void)state;
    json_t *obj = json_object();
    json_t *cooldown = json_object();
    assert_int_equal(json_object_setn_new(cooldown, "a\0b", 3, json_integer(1)), 0);
    assert_int_equal(json_object_set_new(obj, "cooldown", cooldown), 0);
    expect_value_error(obj, "retry_policy.cooldown",
                       "retry_policy.cooldown keys must not contain NUL characters");
    json_decref(obj);
}

/* ---- ranges (checked by the engine, reported with the prefix) ---- */

static void test_retry_json__max_attempts_out_of_range(void **state) {
    (void)state;
    const char *const bad[] = {
        "0",    "-1",     "1001",  "2147483648",         "99999999999", "-99999999999",
        "1e10", "-1e300", "1e300", "9223372036854775807"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"max_attempts\":%s}", bad[i]);
        expect_error(text, "retry_policy.max_attempts",
                     "retry_policy.max_attempts must be between 1 and 1000");
    }
}

static void test_retry_json__delays_out_of_range(void **state) {
    (void)state;
    expect_error("{\"max_delay_ms\":-1}", "retry_policy.max_delay_ms",
                 "retry_policy.max_delay_ms must be between 0 and 2592000000 (30 days)");
    expect_error("{\"max_delay_ms\":2592000001}", "retry_policy.max_delay_ms",
                 "retry_policy.max_delay_ms must be between 0 and 2592000000 (30 days)");
    expect_error("{\"max_delay_ms\":1e300}", "retry_policy.max_delay_ms",
                 "retry_policy.max_delay_ms must be between 0 and 2592000000 (30 days)");
    expect_error("{\"base_delay_ms\":-1}", "retry_policy.base_delay_ms",
                 "retry_policy.base_delay_ms must be between 0 and max_delay_ms (3600000)");
    expect_error("{\"base_delay_ms\":5000,\"max_delay_ms\":4000}", "retry_policy.base_delay_ms",
                 "retry_policy.base_delay_ms must be between 0 and max_delay_ms (4000)");
}

static void test_retry_json__error_types_out_of_range(void **state) {
    (void)state;
    char long_type[130];
    memset(long_type, 'x', 129);
    long_type[129] = '\0';
    char text[512];
    expect_error("{\"non_retryable_errors\":[\"ok\",\"\"]}", "retry_policy.non_retryable_errors",
                 "retry_policy.non_retryable_errors[1] must be 1 to 128 bytes long");
    snprintf(text, sizeof text, "{\"non_retryable_errors\":[\"%s\"]}", long_type);
    expect_error(text, "retry_policy.non_retryable_errors",
                 "retry_policy.non_retryable_errors[0] must be 1 to 128 bytes long");
    expect_error("{\"cooldown\":{\"\":5}}", "retry_policy.cooldown",
                 "retry_policy.cooldown error types must be 1 to 128 bytes long (entry 0)");
    snprintf(text, sizeof text, "{\"cooldown\":{\"%s\":5}}", long_type);
    expect_error(text, "retry_policy.cooldown",
                 "retry_policy.cooldown error types must be 1 to 128 bytes long (entry 0)");
}

static void test_retry_json__cooldown_ms_out_of_range(void **state) {
    (void)state;
    expect_error("{\"cooldown\":{\"rate_limited\":-1}}", "retry_policy.cooldown",
                 "retry_policy.cooldown for \"rate_limited\" must be between 0 and 2592000000 "
                 "ms (30 days)");
    expect_error("{\"cooldown\":{\"rate_limited\":2592000001}}", "retry_policy.cooldown",
                 "retry_policy.cooldown for \"rate_limited\" must be between 0 and 2592000000 "
                 "ms (30 days)");
}

static void test_retry_json__too_many_entries(void **state) {
    (void)state;
    json_t *errors = json_array();
    json_t *cooldown = json_object();
    for (int i = 0; i < 65; i++) {
        char type[16];
        snprintf(type, sizeof type, "type_%d", i);
        json_array_append_new(errors, json_string(type));
        json_object_set_new(cooldown, type, json_integer(1));
    }
    json_t *obj = json_object();
    json_object_set_new(obj, "non_retryable_errors", errors);
    expect_value_error(obj, "retry_policy.non_retryable_errors",
                       "retry_policy.non_retryable_errors must have at most 64 entries");
    json_object_del(obj, "non_retryable_errors");
    json_object_set_new(obj, "cooldown", cooldown);
    expect_value_error(obj, "retry_policy.cooldown",
                       "retry_policy.cooldown must have at most 64 entries");
    json_decref(obj);
}

static void test_retry_json__null_err_and_field_are_allowed(void **state) {
    (void)state;
    json_t *value = load("{\"max_attempts\":0}");
    tf_retry_policy_t policy;
    assert_int_equal(tf_retry_policy_from_json(value, &policy, NULL, 0, NULL), TF_EINVAL);
    char tiny[8];
    assert_int_equal(tf_retry_policy_from_json(value, &policy, tiny, sizeof tiny, NULL), TF_EINVAL);
    assert_string_equal(tiny, "retry_p");
    json_decref(value);
}

/* ---- writing and round trips ---- */

static void test_retry_json__defaults_are_written_in_full(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    json_t *written = tf_retry_policy_to_json(&policy);
    assert_non_null(written);
    json_t *expected = load("{\"max_attempts\":3,\"strategy\":\"exponential\","
                            "\"base_delay_ms\":1000,\"max_delay_ms\":3600000,\"jitter\":\"none\","
                            "\"non_retryable_errors\":[],\"cooldown\":{}}");
    assert_true(json_equal(written, expected));
    json_decref(expected);
    json_decref(written);
}

static void test_retry_json__json_round_trip(void **state) {
    (void)state;
    const char *text = "{\"max_attempts\":7,\"strategy\":\"fixed\",\"base_delay_ms\":0,"
                       "\"max_delay_ms\":2592000000,\"jitter\":\"full\","
                       "\"non_retryable_errors\":[\"a\",\"b\",\"c\"],"
                       "\"cooldown\":{\"x\":1,\"y\":2592000000}}";
    json_t *original = load(text);
    tf_retry_policy_t policy = expect_ok(text);
    json_t *written = tf_retry_policy_to_json(&policy);
    assert_non_null(written);
    assert_true(json_equal(original, written));
    json_decref(written);
    json_decref(original);
    tf_retry_policy_free(&policy);
}

static void test_retry_json__policy_round_trip(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.max_attempts = 12;
    policy.strategy = TF_RETRY_STRATEGY_LINEAR;
    policy.base_delay_ms = 1500;
    policy.max_delay_ms = 90000;
    policy.jitter = TF_RETRY_JITTER_EQUAL;
    assert_int_equal(tf_retry_policy_add_non_retryable(&policy, "validation"), 0);
    assert_int_equal(tf_retry_policy_add_cooldown(&policy, "rate_limited", 45000), 0);
    json_t *written = tf_retry_policy_to_json(&policy);
    tf_retry_policy_t read;
    assert_int_equal(tf_retry_policy_from_json(written, &read, NULL, 0, NULL), 0);
    assert_int_equal(read.max_attempts, 12);
    assert_int_equal(read.strategy, TF_RETRY_STRATEGY_LINEAR);
    assert_int_equal(read.base_delay_ms, 1500);
    assert_int_equal(read.max_delay_ms, 90000);
    assert_int_equal(read.jitter, TF_RETRY_JITTER_EQUAL);
    assert_int_equal(read.non_retryable_count, 1);
    assert_string_equal(read.non_retryable_errors[0], "validation");
    assert_int_equal(read.cooldown_count, 1);
    assert_string_equal(read.cooldowns[0].error_type, "rate_limited");
    assert_int_equal(read.cooldowns[0].ms, 45000);
    json_decref(written);
    tf_retry_policy_free(&read);
    tf_retry_policy_free(&policy);
}

static void test_retry_json__invalid_enums_are_not_written(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.strategy = (tf_retry_strategy_t)9;
    assert_null(tf_retry_policy_to_json(&policy));
    tf_retry_policy_init_default(&policy);
    policy.jitter = (tf_retry_jitter_t)9;
    assert_null(tf_retry_policy_to_json(&policy));
}

static void test_retry_json__default_json_matches_the_defaults(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    assert_true(tf_retry_policy_is_default(&policy));
    json_t *v = tf_retry_policy_to_json(&policy);
    char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(text, TF_RETRY_POLICY_DEFAULT_JSON);
    free(text);
    json_decref(v);
    policy.jitter = TF_RETRY_JITTER_FULL;
    assert_false(tf_retry_policy_is_default(&policy));
    tf_retry_policy_init_default(&policy);
    assert_int_equal(tf_retry_policy_add_non_retryable(&policy, "x"), 0);
    assert_false(tf_retry_policy_is_default(&policy));
    tf_retry_policy_free(&policy);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_json__empty_object_gives_defaults),
        cmocka_unit_test(test_retry_json__reads_every_field),
        cmocka_unit_test(test_retry_json__partial_object_keeps_other_defaults),
        cmocka_unit_test(test_retry_json__accepts_integral_reals),
        cmocka_unit_test(test_retry_json__accepts_the_limits),
        cmocka_unit_test(test_retry_json__not_an_object_is_refused),
        cmocka_unit_test(test_retry_json__unknown_key_is_named),
        cmocka_unit_test(test_retry_json__key_with_nul_is_unknown),
        cmocka_unit_test(test_retry_json__integer_fields_must_be_integers),
        cmocka_unit_test(test_retry_json__strategy_must_be_a_known_name),
        cmocka_unit_test(test_retry_json__jitter_must_be_a_known_name),
        cmocka_unit_test(test_retry_json__non_retryable_errors_must_be_strings),
        cmocka_unit_test(test_retry_json__non_retryable_error_with_nul_is_refused),
        cmocka_unit_test(test_retry_json__cooldown_must_map_types_to_integers),
        cmocka_unit_test(test_retry_json__cooldown_key_with_nul_is_refused),
        cmocka_unit_test(test_retry_json__max_attempts_out_of_range),
        cmocka_unit_test(test_retry_json__delays_out_of_range),
        cmocka_unit_test(test_retry_json__error_types_out_of_range),
        cmocka_unit_test(test_retry_json__cooldown_ms_out_of_range),
        cmocka_unit_test(test_retry_json__too_many_entries),
        cmocka_unit_test(test_retry_json__null_err_and_field_are_allowed),
        cmocka_unit_test(test_retry_json__defaults_are_written_in_full),
        cmocka_unit_test(test_retry_json__json_round_trip),
        cmocka_unit_test(test_retry_json__policy_round_trip),
        cmocka_unit_test(test_retry_json__invalid_enums_are_not_written),
        cmocka_unit_test(test_retry_json__default_json_matches_the_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
