/*
 * test_http_executor.c - the built-in http executor's request (headers,
 * signature, defaults) and outcome (status classes, result bodies, client
 * errors), and its UTF-8 cleaning.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "adapters/worker/http_executor.h"
#include "engine/error.h"

/* 32 bytes: 00 01 02 ... 1f */
static const char SECRET_HEX[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static const char *header(const tf_http_exec_req_t *r, const char *name) {
    size_t len = strlen(name);
    for (size_t i = 0; i < r->nlines; i++) {
        if (strncasecmp(r->lines[i], name, len) == 0 && r->lines[i][len] == ':') {
            return r->lines[i] + len + 2;
        }
    }
    return NULL;
}

static size_t count_header(const tf_http_exec_req_t *r, const char *name) {
    size_t n = 0, len = strlen(name);
    for (size_t i = 0; i < r->nlines; i++) {
        n += strncasecmp(r->lines[i], name, len) == 0 && r->lines[i][len] == ':';
    }
    return n;
}

static tf_http_job_t job_with(json_t *executor) {
    return (tf_http_job_t){
        .job_id = "01a21684-fb9b-7000-8e6d-0f8824180a21",
        .attempt = 2,
        .payload = "{\"a\": 1}",
        .correlation_id = "corr-1",
        .signing_secret_hex = SECRET_HEX,
        .timeout_ms = 1500,
        .executor = executor,
        .now_s = 1700000000,
    };
}

static void test_http_executor__request_has_headers_and_defaults(void **state) {
    (void)state;
    json_t *ex = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "kind", "http", "url",
                           "https://example.com/hook", "headers", "X-Custom", "abc",
                           "taskflow-signature", "forged", "Content-Length", "1");
    tf_http_job_t job = job_with(ex);
    tf_http_exec_req_t r;
    assert_int_equal(tf_http_exec_request(&job, &r), 0);
    assert_string_equal(r.req.method, "POST");
    assert_string_equal(r.req.url, "https://example.com/hook");
    assert_string_equal(r.req.body, "{\"a\": 1}");
    assert_int_equal(r.req.body_len, 8);
    assert_int_equal(r.req.timeout_ms, 1500);
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_string_equal(header(&r, "TaskFlow-Job-Id"), job.job_id);
    assert_string_equal(header(&r, "TaskFlow-Attempt"), "2");
    assert_string_equal(header(&r, "TaskFlow-Correlation-Id"), "corr-1");
    assert_string_equal(header(&r, "X-Custom"), "abc");
    assert_int_equal(count_header(&r, "TaskFlow-Signature"), 1);
    assert_int_equal(count_header(&r, "Content-Length"), 0);
    assert_true(strncmp(header(&r, "TaskFlow-Signature"), "t=1700000000,v1=", 16) == 0);
    tf_http_exec_request_free(&r);
    json_decref(ex);
}

static void test_http_executor__executor_may_replace_content_type(void **state) {
    (void)state;
    json_t *ex = json_pack("{s:s, s:s, s:s, s:{s:s}}", "kind", "http", "url", "http://x.test/a",
                           "method", "PUT", "headers", "content-type", "text/plain");
    tf_http_job_t job = job_with(ex);
    job.correlation_id = NULL;
    job.timeout_ms = 0;
    tf_http_exec_req_t r;
    assert_int_equal(tf_http_exec_request(&job, &r), 0);
    assert_string_equal(r.req.method, "PUT");
    assert_int_equal(count_header(&r, "Content-Type"), 1);
    assert_string_equal(header(&r, "Content-Type"), "text/plain");
    assert_null(header(&r, "TaskFlow-Correlation-Id"));
    assert_int_equal(r.req.timeout_ms, TF_HTTP_EXEC_DEFAULT_TIMEOUT_MS);
    tf_http_exec_request_free(&r);
    json_decref(ex);
}

static void test_http_executor__signature_is_hmac_of_time_dot_body(void **state) {
    (void)state;
    char sig[TF_HTTP_EXEC_SIGNATURE_LEN];
    const char body[] = "{\"x\":true}";
    assert_int_equal(tf_http_exec_sign(SECRET_HEX, 1234, body, strlen(body), sig), 0);
    unsigned char key[32], mac[32];
    for (int i = 0; i < 32; i++) {
        key[i] = (unsigned char)i;
    }
    const char msg[] = "1234.{\"x\":true}";
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, strlen(msg), mac, &len);
    char want[100] = "t=1234,v1=";
    for (unsigned i = 0; i < len; i++) {
        snprintf(want + 10 + 2 * i, 3, "%02x", mac[i]);
    }
    assert_string_equal(sig, want);
}

static void test_http_executor__bad_secret_is_refused(void **state) {
    (void)state;
    char sig[TF_HTTP_EXEC_SIGNATURE_LEN];
    assert_int_equal(tf_http_exec_sign(NULL, 1, "", 0, sig), TF_EINVAL);
    assert_int_equal(tf_http_exec_sign("", 1, "", 0, sig), TF_EINVAL);
    assert_int_equal(tf_http_exec_sign("abc", 1, "", 0, sig), TF_EINVAL);
    assert_int_equal(tf_http_exec_sign("zz", 1, "", 0, sig), TF_EINVAL);
    json_t *ex = json_pack("{s:s, s:s}", "kind", "http", "url", "http://x.test/a");
    tf_http_job_t job = job_with(ex);
    job.signing_secret_hex = NULL;
    tf_http_exec_req_t r;
    assert_int_equal(tf_http_exec_request(&job, &r), TF_EINVAL);
    json_decref(ex);
}

static tf_http_exec_outcome_t outcome_of(long status, const char *body, int truncated,
                                         const char *error_type) {
    tf_http_result_t res = {.status = status,
                            .error_type = error_type,
                            .error_message = error_type != NULL ? "it broke" : NULL,
                            .body = body,
                            .body_len = strlen(body),
                            .truncated = truncated};
    tf_http_exec_outcome_t out;
    assert_int_equal(tf_http_exec_outcome(&res, &out), 0);
    return out;
}

static void test_http_executor__json_body_is_the_result(void **state) {
    (void)state;
    tf_http_exec_outcome_t out = outcome_of(201, "{\"answer\": [1, 2]}", 0, NULL);
    assert_true(out.ok);
    assert_string_equal(out.result_json, "{\"answer\": [1, 2]}");
    tf_http_exec_outcome_free(&out);
    out = outcome_of(204, "", 0, NULL);
    assert_true(out.ok);
    assert_null(out.result_json);
    tf_http_exec_outcome_free(&out);
}

static void test_http_executor__other_bodies_become_strings(void **state) {
    (void)state;
    tf_http_exec_outcome_t out = outcome_of(200, "not \"json\"", 0, NULL);
    assert_string_equal(out.result_json, "\"not \\\"json\\\"\"");
    tf_http_exec_outcome_free(&out);
    /* jsonb refuses \u0000: such a body is kept as text. */
    out = outcome_of(200, "\"a\\u0000b\"", 0, NULL);
    json_t *v = json_loads(out.result_json, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(v), "\"a\\u0000b\"");
    json_decref(v);
    tf_http_exec_outcome_free(&out);
    out = outcome_of(200, "{\"x\": \"aaa", 1, NULL);
    assert_string_equal(out.result_json, "{\"truncated\":true,\"body\":\"{\\\"x\\\": \\\"aaa\"}");
    tf_http_exec_outcome_free(&out);
}

static void test_http_executor__statuses_are_classified(void **state) {
    (void)state;
    static const struct {
        long status;
        const char *type;
        int retryable;
    } cases[] = {{408, "http_408", 1}, {429, "http_429", 1}, {500, "http_500", 1},
                 {503, "http_503", 1}, {400, "http_400", 0}, {404, "http_404", 0},
                 {410, "http_410", 0}, {302, "http_302", 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tf_http_exec_outcome_t out = outcome_of(cases[i].status, "busy\n now", 0, NULL);
        assert_false(out.ok);
        assert_string_equal(out.error_type, cases[i].type);
        assert_int_equal(out.retryable, cases[i].retryable);
        assert_non_null(strstr(out.error_message, "busy  now"));
        tf_http_exec_outcome_free(&out);
    }
}

static void test_http_executor__client_errors_keep_their_type(void **state) {
    (void)state;
    static const char *const retryable[] = {"timeout", "connect_refused", "dns", "tls",
                                            "connection"};
    for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++) {
        tf_http_exec_outcome_t out = outcome_of(0, "", 0, retryable[i]);
        assert_false(out.ok);
        assert_string_equal(out.error_type, retryable[i]);
        assert_string_equal(out.error_message, "it broke");
        assert_true(out.retryable);
        tf_http_exec_outcome_free(&out);
    }
    tf_http_exec_outcome_t out = outcome_of(0, "", 0, "blocked_address");
    assert_false(out.retryable);
    tf_http_exec_outcome_free(&out);
}

static void test_http_executor__utf8_is_cleaned(void **state) {
    (void)state;
    size_t len = 0;
    /* valid 2-, 3- and 4-byte sequences; a lone continuation byte, an
     * overlong, a surrogate, NUL and a cut sequence at the end */
    const char in[] = "\xc3\xa6\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\0|\xe2\x82";
    char *out = tf_http_exec_utf8(in, sizeof(in) - 1, &len);
    assert_non_null(out);
    const char want[] =
        "\xc3\xa6\xe2\x82\xac\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd";
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(out, want, len);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_executor__request_has_headers_and_defaults),
        cmocka_unit_test(test_http_executor__executor_may_replace_content_type),
        cmocka_unit_test(test_http_executor__signature_is_hmac_of_time_dot_body),
        cmocka_unit_test(test_http_executor__bad_secret_is_refused),
        cmocka_unit_test(test_http_executor__json_body_is_the_result),
        cmocka_unit_test(test_http_executor__other_bodies_become_strings),
        cmocka_unit_test(test_http_executor__statuses_are_classified),
        cmocka_unit_test(test_http_executor__client_errors_keep_their_type),
        cmocka_unit_test(test_http_executor__utf8_is_cleaned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
