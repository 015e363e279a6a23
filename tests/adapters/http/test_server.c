/*
 * test_server.c - the HTTP server end to end, in process: requests and
 * responses, keep-alive, pipelining, asynchronous handlers, the loop hooks,
 * start-up errors, graceful shutdown and the metrics it records.
 */
#include "http_test_util.h"

#include "engine/error.h"

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    *state = fx;
    return fx == NULL;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    fixture_stop(fx);
    free(fx);
    return 0;
}

static void start_default(fixture_t *fx) {
    tf_http_config_t cfg = fixture_config(fx);
    fixture_start(fx, &cfg);
}

static void test_server__get_and_post_echo(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    resp_t r;
    char value[256];
    http_get(fx->port, "/hello", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_true(resp_header(&r, "Content-Type", value, sizeof(value)));
    assert_string_equal(value, "text/plain");
    assert_true(resp_header(&r, "Content-Length", value, sizeof(value)));
    assert_string_equal(value, "5");
    assert_true(resp_header(&r, "Date", value, sizeof(value)));
    assert_true(strstr(value, " GMT") != NULL);
    assert_true(resp_header(&r, "X-Request-Id", value, sizeof(value)));
    assert_false(resp_header(&r, "Connection", value, sizeof(value)));
    resp_free(&r);

    http_get(fx->port, "/empty", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "");
    assert_true(resp_header(&r, "Content-Length", value, sizeof(value)));
    assert_string_equal(value, "0");
    assert_false(resp_header(&r, "Content-Type", value, sizeof(value)));
    resp_free(&r);

    http_request(fx->port,
                 "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 "Content-Length: 13\r\n\r\n{\"a\":[1,2,3]}",
                 &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"a\":[1,2,3]}");
    assert_true(resp_header(&r, "Content-Type", value, sizeof(value)));
    assert_string_equal(value, "application/json");
    resp_free(&r);
}

static void test_server__chunked_request_body_is_assembled(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    resp_t r;
    http_request(fx->port,
                 "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                 &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello world");
    resp_free(&r);
}

static void test_server__keep_alive_serves_many_requests(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    client_t c;
    client_open(&c, fx->port);
    for (int i = 0; i < 5; i++) {
        resp_t r;
        char value[64];
        assert_int_equal(send_str(c.fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
        assert_int_equal(client_read_response(&c, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello");
        assert_false(resp_header(&r, "Connection", value, sizeof(value)));
        resp_free(&r);
    }
    client_close(&c);
}

static void test_server__pipelined_requests_answer_in_order(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    client_t c;
    client_open(&c, fx->port);
    /* The first is answered asynchronously, later than the others could be. */
    assert_int_equal(send_str(c.fd,
                              "GET /slow?ms=150 HTTP/1.1\r\nHost: t\r\nX-Request-Id: r1\r\n\r\n"
                              "GET /hello HTTP/1.1\r\nHost: t\r\nX-Request-Id: r2\r\n\r\n"
                              "GET /items/7 HTTP/1.1\r\nHost: t\r\nX-Request-Id: r3\r\n\r\n"),
                     0);
    const char *ids[] = {"r1", "r2", "r3"};
    const char *bodies[] = {"slow done", "hello", "item:7 route:/items/{id}"};
    for (int i = 0; i < 3; i++) {
        resp_t r;
        char value[64];
        assert_int_equal(client_read_response(&c, &r), 0);
        assert_int_equal(r.status, 200);
        assert_true(resp_header(&r, "X-Request-Id", value, sizeof(value)));
        assert_string_equal(value, ids[i]);
        assert_string_equal(r.body, bodies[i]);
        resp_free(&r);
    }
    client_close(&c);
}

static void test_server__async_handler_answers_later(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    resp_t r;
    http_get(fx->port, "/slow?ms=200", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow done");
    assert_int_equal(atomic_load(&fx->slow_answered), 1);
    resp_free(&r);
}

static void test_server__request_in_one_byte_writes(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    const char *req = "POST /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: tiny\r\n"
                      "Content-Length: 4\r\n\r\nbody";
    client_t c;
    client_open(&c, fx->port);
    for (size_t i = 0; req[i] != '\0'; i++) {
        assert_int_equal(send_all(c.fd, req + i, 1), 0);
        sleep_ms(1);
    }
    resp_t r;
    char value[64];
    assert_int_equal(client_read_response(&c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "body");
    assert_true(resp_header(&r, "X-Request-Id", value, sizeof(value)));
    assert_string_equal(value, "tiny");
    resp_free(&r);
    client_close(&c);
}

static void test_server__http10_closes_unless_keep_alive(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    char value[64];
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    assert_int_equal(send_str(fd, "GET /hello HTTP/1.0\r\n\r\n"), 0);
    int closed = 0;
    char *all = read_until_close(fd, 5000, NULL, &closed);
    assert_true(closed);
    assert_true(strncmp(all, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_true(head_header(all, "Connection", value, sizeof(value)));
    assert_string_equal(value, "close");
    free(all);
    close(fd);

    client_t c;
    client_open(&c, fx->port);
    for (int i = 0; i < 2; i++) {
        resp_t r;
        assert_int_equal(send_str(c.fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
                         0);
        assert_int_equal(client_read_response(&c, &r), 0);
        assert_int_equal(r.status, 200);
        assert_true(resp_header(&r, "Connection", value, sizeof(value)));
        assert_string_equal(value, "keep-alive");
        resp_free(&r);
    }
    client_close(&c);
}

static void test_server__connection_close_is_honoured(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    /* The second request comes after "Connection: close": never answered. */
    assert_int_equal(send_str(fd, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n"
                                  "GET /hello HTTP/1.1\r\n\r\n"),
                     0);
    int closed = 0;
    char *all = read_until_close(fd, 5000, NULL, &closed);
    assert_true(closed);
    assert_true(strncmp(all, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(all, "Connection: close\r\n"));
    assert_null(strstr(all + 1, "HTTP/1.1"));
    free(all);
    close(fd);
}

static void test_server__expect_continue_is_answered(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    client_t c;
    client_open(&c, fx->port);
    assert_int_equal(send_str(c.fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                                    "Expect: 100-continue\r\n\r\n"),
                     0);
    while (find_bytes(c.buf, c.len, "\r\n\r\n") == NULL) {
        assert_true(client_fill(&c) > 0);
    }
    assert_true(strncmp(c.buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    assert_int_equal(send_str(c.fd, "howdy"), 0);
    resp_t r;
    assert_int_equal(client_read_response(&c, &r), 0); /* skips the 100 */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "howdy");
    resp_free(&r);
    client_close(&c);
}

static void test_server__head_gets_headers_without_body(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    client_t c;
    client_open(&c, fx->port);
    resp_t r;
    char value[64];
    assert_int_equal(send_str(c.fd, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(client_read_response_ex(&c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    assert_true(resp_header(&r, "Content-Length", value, sizeof(value)));
    assert_string_equal(value, "5");
    resp_free(&r);
    /* No stray body bytes: the next response parses cleanly. */
    assert_int_equal(send_str(c.fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(client_read_response(&c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    resp_free(&r);
    client_close(&c);
}

static void test_server__handler_headers_and_error_body(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    resp_t r;
    char value[64];
    http_request(fx->port, "GET /headers HTTP/1.1\r\nX-Test:  abc  \r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok:abc");
    assert_true(resp_header(&r, "X-Extra", value, sizeof(value)));
    assert_string_equal(value, "yes");
    assert_false(resp_header(&r, "Injected", value, sizeof(value)));
    resp_free(&r);

    http_request(fx->port, "POST /fail HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body, "{\"error\":{\"code\":\"validation_failed\",\"message\":"
                                "\"name is required\",\"details\":{\"field\":\"name\"}}}");
    assert_true(resp_header(&r, "Content-Type", value, sizeof(value)));
    assert_string_equal(value, "application/json");
    resp_free(&r);
}

static void test_server__loop_hooks_and_loop_ctx(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    assert_int_equal(atomic_load(&fx->loop_starts), 2);
    for (int i = 0; i < 4; i++) {
        resp_t r;
        http_get(fx->port, "/ctx", &r);
        assert_int_equal(r.status, 200);
        assert_true(strcmp(r.body, "loop=0") == 0 || strcmp(r.body, "loop=1") == 0);
        resp_free(&r);
    }
    assert_int_equal(atomic_load(&fx->loop_stops), 0);
    tf_http_server_stop(fx->server);
    tf_http_server_destroy(fx->server);
    fx->server = NULL;
    assert_int_equal(atomic_load(&fx->loop_stops), 2);
}

static int failing_loop_start(uv_loop_t *loop, int index, void *app, void **loop_ctx) {
    if (index == 1) {
        return TF_EUNAVAIL;
    }
    return test_loop_start(loop, index, app, loop_ctx);
}

static void test_server__failed_loop_start_aborts_start(void **state) {
    fixture_t *fx = *state;
    tf_http_config_t cfg = fixture_config(fx);
    cfg.loop_start = failing_loop_start;
    assert_int_equal(tf_router_create(&fx->router), 0);
    assert_int_equal(tf_metrics_create(&fx->metrics), 0);
    assert_int_equal(tf_http_server_start(&cfg, fx->router, fx->metrics, NULL, &fx->server),
                     TF_EUNAVAIL);
    assert_null(fx->server);
    /* The loop that did start was stopped again. */
    assert_int_equal(atomic_load(&fx->loop_starts), 1);
    assert_int_equal(atomic_load(&fx->loop_stops), 1);
}

static void test_server__port_in_use_fails_at_start(void **state) {
    fixture_t *fx = *state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);

    tf_http_config_t cfg = fixture_config(fx);
    cfg.port = ntohs(sa.sin_port);
    assert_int_equal(tf_router_create(&fx->router), 0);
    assert_int_equal(tf_metrics_create(&fx->metrics), 0);
    assert_int_equal(tf_http_server_start(&cfg, fx->router, fx->metrics, NULL, &fx->server),
                     TF_ECONFLICT);
    assert_null(fx->server);
    assert_int_equal(atomic_load(&fx->loop_starts), 0);
    close(fd);
}

static void test_server__graceful_stop_finishes_in_flight_request(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    client_t idle;
    client_t busy;
    resp_t r;
    char value[64];
    client_open(&idle, fx->port);
    assert_int_equal(send_str(idle.fd, "GET /hello HTTP/1.1\r\n\r\n"), 0);
    assert_int_equal(client_read_response(&idle, &r), 0);
    resp_free(&r);

    client_open(&busy, fx->port);
    assert_int_equal(send_str(busy.fd, "GET /slow?ms=400 HTTP/1.1\r\n\r\n"), 0);
    uint64_t deadline = now_ms() + 5000;
    while (atomic_load(&fx->slow_entered) == 0 && now_ms() < deadline) {
        sleep_ms(5);
    }
    assert_int_equal(atomic_load(&fx->slow_entered), 1);
    tf_http_server_stop(fx->server);

    /* The idle keep-alive connection is closed at once... */
    int closed = 0;
    char *rest = read_until_close(idle.fd, 5000, NULL, &closed);
    assert_true(closed);
    assert_string_equal(rest, "");
    free(rest);
    /* ...the request in flight still gets its answer, with Connection: close. */
    assert_int_equal(client_read_response(&busy, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow done");
    assert_true(resp_header(&r, "Connection", value, sizeof(value)));
    assert_string_equal(value, "close");
    resp_free(&r);
    rest = read_until_close(busy.fd, 5000, NULL, &closed);
    assert_true(closed);
    free(rest);
    client_close(&idle);
    client_close(&busy);

    tf_http_server_destroy(fx->server);
    fx->server = NULL;
    assert_int_equal(atomic_load(&fx->loop_stops), 2);
    /* Nobody listens any more. */
    assert_true(client_connect(fx->port) < 0);
}

static void test_server__stop_force_closes_after_grace(void **state) {
    fixture_t *fx = *state;
    tf_http_config_t cfg = fixture_config(fx);
    cfg.shutdown_grace_ms = 200;
    fixture_start(fx, &cfg);
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    assert_int_equal(send_str(fd, "GET /slow?ms=1500 HTTP/1.1\r\n\r\n"), 0);
    uint64_t deadline = now_ms() + 5000;
    while (atomic_load(&fx->slow_entered) == 0 && now_ms() < deadline) {
        sleep_ms(5);
    }
    uint64_t start = now_ms();
    tf_http_server_stop(fx->server);
    int closed = 0;
    char *all = read_until_close(fd, 5000, NULL, &closed);
    assert_true(closed);
    assert_string_equal(all, ""); /* closed before the handler answered */
    assert_true(now_ms() - start < 1400);
    free(all);
    close(fd);
    /* The late answer is dropped; destroy waits for the loop to wind down. */
    tf_http_server_destroy(fx->server);
    fx->server = NULL;
    assert_int_equal(atomic_load(&fx->slow_answered), 1);
}

static void test_server__metrics_include_http_families(void **state) {
    fixture_t *fx = *state;
    start_default(fx);
    resp_t r;
    http_get(fx->port, "/hello", &r);
    resp_free(&r);
    http_get(fx->port, "/items/12345", &r);
    resp_free(&r);
    http_get(fx->port, "/no/such/path", &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    http_get(fx->port, "/metrics", &r);
    assert_int_equal(r.status, 200);
    const char *text = r.body;
    assert_non_null(strstr(text, "# TYPE taskflow_http_requests_total counter"));
    assert_non_null(strstr(text, "# TYPE taskflow_http_request_duration_seconds histogram"));
    assert_non_null(strstr(text, "# TYPE taskflow_http_connections gauge"));
    assert_non_null(strstr(text, "# TYPE taskflow_http_rejected_connections_total counter"));
    assert_non_null(strstr(text, "route=\"/hello\""));
    assert_non_null(strstr(text, "route=\"/items/{id}\""));
    assert_non_null(strstr(text, "route=\"unmatched\""));
    assert_non_null(strstr(text, "status=\"404\""));
    assert_non_null(strstr(text, "reason=\"max_connections\""));
    assert_null(strstr(text, "12345"));
    assert_null(strstr(text, "/no/such/path"));
    resp_free(&r);
}

static void test_server__access_log_line_at_debug(void **state) {
    fixture_t *fx = *state;
    char path[] = "/tmp/tf_http_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(tf_log_create(fd, TF_LOG_DEBUG, &fx->log), 0);
    start_default(fx);
    resp_t r;
    http_request(fx->port, "GET /items/77 HTTP/1.1\r\nX-Request-Id: log-1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    tf_http_server_destroy(fx->server);
    fx->server = NULL;
    tf_log_destroy(fx->log);
    fx->log = NULL;

    char text[8192] = {0};
    assert_true(pread(fd, text, sizeof(text) - 1, 0) > 0);
    close(fd);
    unlink(path);
    const char *line = strstr(text, "\"request_id\":\"log-1\"");
    assert_non_null(line);
    const char *end = strchr(line, '\n');
    assert_non_null(end);
    const char *begin = line;
    while (begin > text && begin[-1] != '\n') {
        begin--;
    }
    char one[1024];
    snprintf(one, sizeof(one), "%.*s", (int)(end - begin), begin);
    assert_non_null(strstr(one, "\"level\":\"debug\""));
    assert_non_null(strstr(one, "\"method\":\"GET\""));
    assert_non_null(strstr(one, "\"route\":\"/items/{id}\""));
    assert_non_null(strstr(one, "\"status\":200"));
    assert_non_null(strstr(one, "\"duration_ms\":"));
    assert_null(strstr(one, "/items/77"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server__get_and_post_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server__chunked_request_body_is_assembled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__keep_alive_serves_many_requests, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__pipelined_requests_answer_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__async_handler_answers_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server__request_in_one_byte_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server__http10_closes_unless_keep_alive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__connection_close_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server__expect_continue_is_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server__head_gets_headers_without_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__handler_headers_and_error_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__loop_hooks_and_loop_ctx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server__failed_loop_start_aborts_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__port_in_use_fails_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server__graceful_stop_finishes_in_flight_request,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_server__stop_force_closes_after_grace, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__metrics_include_http_families, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server__access_log_line_at_debug, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
