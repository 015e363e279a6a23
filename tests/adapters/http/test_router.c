/*
 * test_router.c - routing and request decoding through the real server:
 * 404 and 405 JSON answers, literal segments over parameters, percent-decoding
 * of path parameters and query values, the request id, and the router's own
 * validation of patterns.
 */
#include "http_test_util.h"

#include "engine/error.h"

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (fx == NULL) {
        return 1;
    }
    tf_http_config_t cfg = fixture_config(fx);
    fixture_start(fx, &cfg);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    fixture_stop(fx);
    free(fx);
    return 0;
}

static void dummy_handler(tf_http_req_t *req, void *data) {
    (void)data;
    tf_http_respond(req, 200, NULL, NULL, 0);
}

static void test_router__add_validates_patterns(void **state) {
    tf_router_t *router = NULL;
    (void)state;
    assert_int_equal(tf_router_create(&router), 0);
    assert_int_equal(tf_router_add(router, "GET", "/a/{id}", dummy_handler, NULL), 0);
    assert_int_equal(tf_router_add(router, "GET", "/a/{id}", dummy_handler, NULL), TF_ECONFLICT);
    assert_int_equal(tf_router_add(router, "POST", "/a/{other}", dummy_handler, NULL), 0);
    assert_int_equal(tf_router_add(router, "GET", "no-slash", dummy_handler, NULL), TF_EINVAL);
    assert_int_equal(tf_router_add(router, "GET", "/a/{}", dummy_handler, NULL), TF_EINVAL);
    assert_int_equal(tf_router_add(router, "GET", "/a/{x", dummy_handler, NULL), TF_EINVAL);
    assert_int_equal(tf_router_add(router, "GET", "/a/x{y}", dummy_handler, NULL), TF_EINVAL);
    assert_int_equal(tf_router_add(router, "GE T", "/b", dummy_handler, NULL), TF_EINVAL);
    assert_int_equal(tf_router_add(router, "GET", "/b", NULL, NULL), TF_EINVAL);
    tf_router_destroy(router);
}

static void assert_error(const resp_t *r, int status, const char *code) {
    char expected[256];
    char value[64];
    assert_int_equal(r->status, status);
    assert_true(resp_header(r, "Content-Type", value, sizeof(value)));
    assert_string_equal(value, "application/json");
    snprintf(expected, sizeof(expected), "{\"error\":{\"code\":\"%s\",", code);
    assert_true(strncmp(r->body, expected, strlen(expected)) == 0);
    assert_non_null(strstr(r->body, "\"message\":\""));
    assert_true(strlen(r->body) > 2);
}

static void test_router__unknown_path_is_404_json(void **state) {
    fixture_t *fx = *state;
    resp_t r;
    http_get(fx->port, "/nope", &r);
    assert_error(&r, 404, "not_found");
    assert_string_equal(r.body, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such "
                                "resource\",\"details\":{}}}");
    resp_free(&r);
    http_get(fx->port, "/hello/", &r); /* a trailing slash is another path */
    assert_error(&r, 404, "not_found");
    resp_free(&r);
    http_get(fx->port, "/items/1/2", &r);
    assert_error(&r, 404, "not_found");
    resp_free(&r);
}

static void test_router__wrong_method_is_405_with_allow(void **state) {
    fixture_t *fx = *state;
    resp_t r;
    char value[64];
    http_request(fx->port, "POST /hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_error(&r, 405, "method_not_allowed");
    assert_true(resp_header(&r, "Allow", value, sizeof(value)));
    assert_string_equal(value, "GET");
    resp_free(&r);
    http_request(fx->port, "PUT /items/5 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_error(&r, 405, "method_not_allowed");
    assert_true(resp_header(&r, "Allow", value, sizeof(value)));
    assert_string_equal(value, "GET, DELETE");
    resp_free(&r);
}

static void test_router__literal_beats_param(void **state) {
    fixture_t *fx = *state;
    resp_t r;
    http_get(fx->port, "/items/special", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "special");
    resp_free(&r);
    http_get(fx->port, "/items/42", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "item:42 route:/items/{id}");
    resp_free(&r);
    /* No DELETE on the literal: the parameter route takes it. */
    http_request(fx->port, "DELETE /items/special HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
}

static void test_router__params_are_percent_decoded(void **state) {
    fixture_t *fx = *state;
    resp_t r;
    http_get(fx->port, "/items/a%20b+c", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "item:a b+c route:/items/{id}");
    resp_free(&r);
    http_get(fx->port, "/items/a%2Fb", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "item:a/b route:/items/{id}");
    resp_free(&r);
    http_get(fx->port, "/users/u%C3%A9/items/%37", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "user=u\xc3\xa9 item=7");
    resp_free(&r);
    http_get(fx->port, "http://example.com/items/abs", &r); /* absolute-form */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "item:abs route:/items/{id}");
    resp_free(&r);
}

static void test_router__bad_encodings_are_400(void **state) {
    fixture_t *fx = *state;
    const char *paths[] = {"/items/%zz",   "/items/%4",    "/items/a%00b", "/items/%",
                           "/query?a=%G1", "/query?a=%00", "/query?%=1",   "/query?a=1%2"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        resp_t r;
        http_get(fx->port, paths[i], &r);
        assert_error(&r, 400, "bad_request");
        resp_free(&r);
    }
}

static void test_router__query_values_are_decoded(void **state) {
    fixture_t *fx = *state;
    resp_t r;
    http_get(fx->port, "/query?a=1+2%2B3&b=%41%42&c&a=second&&d=&e%20f=g#frag", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body,
                        "[a]=[1 2+3];[b]=[AB];[c]=[];[a]=[second];[d]=[];[e f]=[g];a=1 2+3");
    resp_free(&r);
    http_get(fx->port, "/query", &r);
    assert_string_equal(r.body, "a=(null)");
    resp_free(&r);
}

static int is_uuid_v7(const char *s) {
    if (strlen(s) != 36) {
        return 0;
    }
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : strchr("0123456789abcdef", s[i]) == NULL) {
            return 0;
        }
    }
    return s[14] == '7' && strchr("89ab", s[19]) != NULL;
}

static void test_router__request_id_is_echoed(void **state) {
    fixture_t *fx = *state;
    resp_t r;
    char value[256];
    char id128[129];
    char raw[512];
    http_request(fx->port, "GET /reqid HTTP/1.1\r\nX-Request-Id: my-id_123\r\n\r\n", &r);
    assert_true(resp_header(&r, "X-Request-Id", value, sizeof(value)));
    assert_string_equal(value, "my-id_123");
    assert_string_equal(r.body, "my-id_123");
    resp_free(&r);
    memset(id128, 'k', 128);
    id128[128] = '\0';
    snprintf(raw, sizeof(raw), "GET /reqid HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", id128);
    http_request(fx->port, raw, &r);
    assert_string_equal(r.body, id128);
    resp_free(&r);
    /* Error responses carry it too. */
    http_request(fx->port, "GET /nope HTTP/1.1\r\nx-request-id: err-1\r\n\r\n", &r);
    assert_true(resp_header(&r, "X-Request-Id", value, sizeof(value)));
    assert_string_equal(value, "err-1");
    resp_free(&r);
}

static void test_router__request_id_is_generated(void **state) {
    fixture_t *fx = *state;
    char id129[130];
    char raw[512];
    char value[256];
    memset(id129, 'k', 129);
    id129[129] = '\0';
    snprintf(raw, sizeof(raw), "GET /reqid HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", id129);
    const char *requests[] = {"GET /reqid HTTP/1.1\r\n\r\n",
                              "GET /reqid HTTP/1.1\r\nX-Request-Id: has space\r\n\r\n",
                              "GET /reqid HTTP/1.1\r\nX-Request-Id:\r\n\r\n", raw};
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        resp_t r;
        http_request(fx->port, requests[i], &r);
        assert_int_equal(r.status, 200);
        assert_true(is_uuid_v7(r.body));
        assert_true(resp_header(&r, "X-Request-Id", value, sizeof(value)));
        assert_string_equal(value, r.body);
        resp_free(&r);
    }
    resp_t r;
    http_get(fx->port, "/nope", &r);
    assert_true(resp_header(&r, "X-Request-Id", value, sizeof(value)));
    assert_true(is_uuid_v7(value));
    resp_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router__add_validates_patterns),
        cmocka_unit_test_setup_teardown(test_router__unknown_path_is_404_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__wrong_method_is_405_with_allow, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router__literal_beats_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__params_are_percent_decoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__bad_encodings_are_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__query_values_are_decoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__request_id_is_echoed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router__request_id_is_generated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
