/*
 * test_job_input.c - every field of a job submission: accepted shapes,
 * defaults, and each bad input named by its field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "adapters/jobspec/job_input.h"
#include "engine/error.h"

static json_t *parse(const char *text) {
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (v == NULL) {
        fail_msg("bad test JSON %s: %s", text, e.text);
    }
    return v;
}

static void expect_ok(const char *text, tf_job_input_t *in) {
    json_t *v = parse(text);
    tf_verr_t err;
    int rc = tf_job_input_parse(v, "", in, &err);
    if (rc != 0) {
        fail_msg("%s rejected: %s (%s)", text, err.message, err.field);
    }
    tf_job_input_free(in);
    json_decref(v);
}

static void expect_bad(const char *text, const char *prefix, const char *field) {
    json_t *v = parse(text);
    tf_verr_t err;
    tf_job_input_t in;
    int rc = tf_job_input_parse(v, prefix, &in, &err);
    if (rc != TF_EINVAL) {
        fail_msg("%s accepted (rc %d), want error on %s", text, rc, field);
    }
    if (strcmp(err.field, field) != 0) {
        fail_msg("%s: field '%s' (%s), want '%s'", text, err.field, err.message, field);
    }
    assert_non_null(strstr(err.message, field));
    json_decref(v);
}

static void test_job_input__minimal_gets_defaults(void **state) {
    (void)state;
    json_t *v = parse("{\"type\":\"email\"}");
    tf_job_input_t in;
    tf_verr_t err;
    assert_int_equal(tf_job_input_parse(v, "", &in, &err), 0);
    assert_string_equal(in.type, "email");
    assert_string_equal(in.queue, "default");
    assert_null(in.payload);
    assert_int_equal(in.priority, 0);
    assert_int_equal(in.has_run_at, 0);
    assert_int_equal(in.delay_ms, -1);
    assert_int_equal(in.timeout_ms, TF_JOB_TIMEOUT_DEFAULT_MS);
    assert_int_equal(in.retry_policy.max_attempts, 3);
    tf_job_input_free(&in);
    json_decref(v);
}

static void test_job_input__full_submission(void **state) {
    (void)state;
    tf_job_input_t in;
    expect_ok("{\"type\":\"t\",\"queue\":\"img.resize-2:x_y\",\"payload\":[1,{\"a\":null}],"
              "\"priority\":-1000,\"run_at\":\"2026-11-26T07:00:00.000Z\","
              "\"retry_policy\":{\"max_attempts\":5,\"strategy\":\"linear\"},"
              "\"timeout_ms\":1,\"executor\":{\"kind\":\"http\",\"url\":\"https://example.com/x\","
              "\"method\":\"PUT\",\"headers\":{\"X-A\":\"b\"}},\"idempotency_key\":\"k\","
              "\"correlation_id\":\"c\","
              "\"depends_on\":[\"0190b1a2-0000-7000-8000-000000000000\"],\"metadata\":{}}",
              &in);
    expect_ok("{\"type\":\"t\",\"delay_ms\":0,\"payload\":\"text\"}", &in);
    expect_ok("{\"type\":\"t\",\"delay_ms\":5.0,\"payload\":null}", &in);
    expect_ok("{\"type\":\"t\",\"executor\":{\"kind\":\"lua\",\"name\":\"resize\"}}", &in);
}

static void test_job_input__due_time(void **state) {
    (void)state;
    json_t *v = parse("{\"type\":\"t\",\"delay_ms\":250}");
    tf_job_input_t in;
    tf_verr_t err;
    assert_int_equal(tf_job_input_parse(v, "", &in, &err), 0);
    /* The due time itself is stamped by the submit use case
     * (tests/adapters/usecases/test_submit.c). */
    assert_int_equal(in.has_run_at, 0);
    assert_int_equal(in.delay_ms, 250);
    tf_job_input_free(&in);
    json_decref(v);
}

static void test_job_input__bad_fields_are_named(void **state) {
    (void)state;
    expect_bad("[]", "", "body");
    expect_bad("{}", "", "type");
    expect_bad("{\"type\":\"\"}", "", "type");
    expect_bad("{\"type\":7}", "", "type");
    expect_bad("{\"type\":\"t\",\"bogus\":1}", "", "bogus");
    expect_bad("{\"type\":\"t\",\"queue\":\"has space\"}", "", "queue");
    expect_bad("{\"type\":\"t\",\"queue\":null}", "", "queue");
    expect_bad("{\"type\":\"t\",\"priority\":1001}", "", "priority");
    expect_bad("{\"type\":\"t\",\"priority\":1.5}", "", "priority");
    expect_bad("{\"type\":\"t\",\"priority\":\"1\"}", "", "priority");
    expect_bad("{\"type\":\"t\",\"delay_ms\":-1}", "", "delay_ms");
    expect_bad("{\"type\":\"t\",\"delay_ms\":1e300}", "", "delay_ms");
    expect_bad("{\"type\":\"t\",\"run_at\":\"tomorrow\"}", "", "run_at");
    expect_bad("{\"type\":\"t\",\"run_at\":\"2026-11-26T07:00:00.000Z\",\"delay_ms\":5}", "",
               "run_at");
    expect_bad("{\"type\":\"t\",\"timeout_ms\":0}", "", "timeout_ms");
    expect_bad("{\"type\":\"t\",\"retry_policy\":{\"max_attempts\":0}}", "",
               "retry_policy.max_attempts");
    expect_bad("{\"type\":\"t\",\"retry_policy\":{\"nope\":1}}", "", "retry_policy");
    expect_bad("{\"type\":\"t\",\"executor\":{\"kind\":\"ftp\"}}", "", "executor.kind");
    expect_bad("{\"type\":\"t\",\"executor\":{\"kind\":\"http\"}}", "", "executor.url");
    expect_bad("{\"type\":\"t\",\"executor\":{\"kind\":\"http\",\"url\":\"file:///etc/passwd\"}}",
               "", "executor.url");
    expect_bad("{\"type\":\"t\",\"executor\":{\"kind\":\"http\",\"url\":\"http://a.example/\","
               "\"method\":\"TRACE\"}}",
               "", "executor.method");
    expect_bad("{\"type\":\"t\",\"executor\":{\"kind\":\"http\",\"url\":\"http://a.example/\","
               "\"headers\":{\"X\":\"a\\r\\nB: c\"}}}",
               "", "executor.headers");
    expect_bad("{\"type\":\"t\",\"executor\":{\"kind\":\"lua\"}}", "", "executor.name");
    expect_bad("{\"type\":\"t\",\"executor\":{\"kind\":\"lua\",\"name\":\"x\",\"y\":1}}", "",
               "executor");
    expect_bad("{\"type\":\"t\",\"depends_on\":\"x\"}", "", "depends_on");
    expect_bad("{\"type\":\"t\",\"depends_on\":[\"not-a-uuid\"]}", "", "depends_on[0]");
    expect_bad("{\"type\":\"t\",\"metadata\":[]}", "", "metadata");
    expect_bad("{\"type\":\"t\",\"idempotency_key\":\"\"}", "", "idempotency_key");
    expect_bad("{\"type\":\"t\",\"correlation_id\":{}}", "", "correlation_id");
}

static void test_job_input__prefix_names_batch_elements(void **state) {
    (void)state;
    expect_bad("{\"type\":\"t\",\"queue\":5}", "jobs[3].", "jobs[3].queue");
    expect_bad("{\"type\":\"t\",\"retry_policy\":{\"strategy\":\"x\"}}", "jobs[0].",
               "jobs[0].retry_policy.strategy");
    expect_bad("7", "jobs[9].", "jobs[9]");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_input__minimal_gets_defaults),
        cmocka_unit_test(test_job_input__full_submission),
        cmocka_unit_test(test_job_input__due_time),
        cmocka_unit_test(test_job_input__bad_fields_are_named),
        cmocka_unit_test(test_job_input__prefix_names_batch_elements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
