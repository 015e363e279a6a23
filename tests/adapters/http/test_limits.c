/*
 * test_limits.c - the HTTP server against hostile or broken clients: garbage,
 * oversized heads and bodies, slow senders, idle and silent connections,
 * many connections, the connection cap, and clients that never read.  Each
 * test checks that the server answers (or closes) within a generous bound and
 * keeps serving others.
 */
#include "http_test_util.h"

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

static void assert_still_serving(fixture_t *fx) {
    resp_t r;
    http_get(fx->port, "/hello", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    resp_free(&r);
}

static int status_of(const char *raw) {
    int status = 0;
    if (sscanf(raw, "HTTP/1.1 %d ", &status) != 1) {
        return 0;
    }
    return status;
}

/* Sends `data` on a new connection (a failed send is fine: the server may
 * answer early and close) and returns what came back until it closed. */
static char *exchange(fixture_t *fx, const char *data, size_t len, int *closed) {
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    (void)send_all(fd, data, len);
    char *reply = read_until_close(fd, 10000, NULL, closed);
    close(fd);
    return reply;
}

static void test_limits__garbage_gets_400_and_server_still_serves(void **state) {
    fixture_t *fx = *state;
    tf_http_config_t cfg = fixture_config(fx);
    cfg.header_timeout_ms = 1000;
    fixture_start(fx, &cfg);
    static const char *const junk[] = {
        "\x01\xff\xfe garbage \r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "G\x01T /hello HTTP/1.1\r\n\r\n",
        "GET /hello HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        int closed = 0;
        char *reply = exchange(fx, junk[i], strlen(junk[i]), &closed);
        assert_true(closed);
        if (reply[0] != '\0') {
            assert_int_equal(status_of(reply), 400);
            assert_non_null(strstr(reply, "\"code\":\"bad_request\""));
            assert_non_null(strstr(reply, "Connection: close\r\n"));
        }
        free(reply);
    }
    assert_still_serving(fx);
}

static void test_limits__huge_header_gets_431(void **state) {
    fixture_t *fx = *state;
    tf_http_config_t cfg = fixture_config(fx);
    fixture_start(fx, &cfg);
    size_t big = 100 * 1024;
    char *req = malloc(big + 128);
    int n = snprintf(req, 128, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 5);
    int closed = 0;
    char *reply = exchange(fx, req, strlen(req), &closed);
    assert_true(closed);
    assert_int_equal(status_of(reply), 431);
    assert_non_null(strstr(reply, "\"code\":\"request_header_fields_too_large\""));
    free(reply);
    /* Many small headers add up the same way. */
    size_t used = (size_t)snprintf(req, big, "GET /hello HTTP/1.1\r\n");
    while (used + 64 < big) {
        used += (size_t)snprintf(req + used, big - used, "X-H%zu: v\r\n", used);
    }
    memcpy(req + used, "\r\n", 3);
    reply = exchange(fx, req, strlen(req), &closed);
    assert_int_equal(status_of(reply), 431);
    free(reply);
    free(req);
    assert_still_serving(fx);
}

static void start_small_body(fixture_t *fx) {
    tf_http_config_t cfg = fixture_config(fx);
    cfg.max_body_bytes = 64 * 1024;
    fixture_start(fx, &cfg);
}

static void test_limits__content_length_over_limit_gets_413_before_body(void **state) {
    fixture_t *fx = *state;
    start_small_body(fx);
    client_t c;
    resp_t r;
    client_open(&c, fx->port);
    assert_int_equal(send_str(c.fd, "POST /echo HTTP/1.1\r\nHost: x\r\n"
                                    "Content-Length: 10485760\r\n\r\n"),
                     0);
    /* Answered from the head alone: no body byte was sent. */
    assert_int_equal(client_read_response(&c, &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"code\":\"payload_too_large\""));
    resp_free(&r);
    /* Sending the body anyway neither hangs nor gets another answer. */
    char *chunk = calloc(1, 65536);
    for (int i = 0; i < 160; i++) {
        if (send_all(c.fd, chunk, 65536) != 0) {
            break;
        }
    }
    free(chunk);
    int closed = 0;
    char *rest = read_until_close(c.fd, 10000, NULL, &closed);
    assert_true(closed);
    assert_string_equal(rest, "");
    free(rest);
    client_close(&c);

    /* With Expect: 100-continue the client is refused before sending. */
    client_open(&c, fx->port);
    assert_int_equal(send_str(c.fd, "POST /echo HTTP/1.1\r\nContent-Length: 10485760\r\n"
                                    "Expect: 100-continue\r\n\r\n"),
                     0);
    char *all = read_until_close(c.fd, 10000, NULL, &closed);
    assert_int_equal(status_of(all), 413);
    assert_null(strstr(all, "100 Continue"));
    free(all);
    client_close(&c);
    assert_still_serving(fx);
}

static void test_limits__chunked_body_over_limit_gets_413(void **state) {
    fixture_t *fx = *state;
    start_small_body(fx);
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    assert_int_equal(send_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    size_t chunk_len = 65536 + 16;
    char *chunk = malloc(chunk_len);
    int n = snprintf(chunk, 16, "10000\r\n");
    memset(chunk + n, 'y', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    size_t total = (size_t)n + 65536 + 2;
    int sent = 0;
    for (; sent < 160; sent++) { /* 10 MiB */
        if (send_all(fd, chunk, total) != 0) {
            break;
        }
    }
    free(chunk);
    int closed = 0;
    char *reply = read_until_close(fd, 10000, NULL, &closed);
    assert_true(closed);
    assert_int_equal(status_of(reply), 413);
    assert_non_null(strstr(reply, "\"code\":\"payload_too_large\""));
    free(reply);
    close(fd);
    assert_still_serving(fx);
}

static void test_limits__slowloris_gets_408(void **state) {
    fixture_t *fx = *state;
    tf_http_config_t cfg = fixture_config(fx);
    cfg.header_timeout_ms = 500;
    fixture_start(fx, &cfg);
    const char *req =
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz";
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    uint64_t start = now_ms();
    int cut = 0;
    for (size_t i = 0; req[i] != '\0' && !cut; i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (send_all(fd, req + i, 1) != 0 || poll(&pfd, 1, 100) > 0) {
            cut = 1;
        }
    }
    assert_true(cut);
    int closed = 0;
    char *reply = read_until_close(fd, 5000, NULL, &closed);
    uint64_t elapsed = now_ms() - start;
    assert_true(closed);
    if (reply[0] != '\0') {
        assert_int_equal(status_of(reply), 408);
        assert_non_null(strstr(reply, "\"code\":\"request_timeout\""));
    }
    assert_true(elapsed < 5000);
    free(reply);
    close(fd);
    assert_still_serving(fx);
}

static void test_limits__silent_and_idle_connections_are_closed(void **state) {
    fixture_t *fx = *state;
    tf_http_config_t cfg = fixture_config(fx);
    cfg.header_timeout_ms = 60000; /* a silent connection is idle, not slow */
    cfg.idle_timeout_ms = 300;
    fixture_start(fx, &cfg);
    /* Connected, never sent a byte: closed without an answer. */
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    int closed = 0;
    uint64_t start = now_ms();
    char *reply = read_until_close(fd, 5000, NULL, &closed);
    assert_true(closed);
    assert_string_equal(reply, "");
    assert_true(now_ms() - start < 4000);
    free(reply);
    close(fd);
    /* Keep-alive after one answer: closed once idle. */
    client_t c;
    resp_t r;
    client_open(&c, fx->port);
    assert_int_equal(send_str(c.fd, "GET /hello HTTP/1.1\r\n\r\n"), 0);
    assert_int_equal(client_read_response(&c, &r), 0);
    resp_free(&r);
    start = now_ms();
    reply = read_until_close(c.fd, 5000, NULL, &closed);
    assert_true(closed);
    assert_string_equal(reply, "");
    assert_true(now_ms() - start < 4000);
    free(reply);
    client_close(&c);
}

static void test_limits__slow_body_gets_408(void **state) {
    fixture_t *fx = *state;
    tf_http_config_t cfg = fixture_config(fx);
    cfg.body_timeout_ms = 300;
    fixture_start(fx, &cfg);
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    assert_int_equal(send_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly ten.."),
                     0);
    int closed = 0;
    char *reply = read_until_close(fd, 5000, NULL, &closed);
    assert_true(closed);
    assert_int_equal(status_of(reply), 408);
    free(reply);
    close(fd);
}

static void test_limits__thousand_idle_connections_then_a_request(void **state) {
    fixture_t *fx = *state;
    enum { N = 1000 };
    raise_fd_limit();
    tf_http_config_t cfg = fixture_config(fx);
    cfg.header_timeout_ms = 300; /* idle connections are not slow heads */
    fixture_start(fx, &cfg);
    int *fds = malloc(N * sizeof(*fds));
    for (int i = 0; i < N; i++) {
        fds[i] = client_connect(fx->port);
        assert_true(fds[i] >= 0);
    }
    assert_still_serving(fx);
    sleep_ms(600); /* longer than header_timeout_ms */
    /* Some of the idle ones now ask something and are answered. */
    for (int i = 0; i < N; i += 100) {
        assert_int_equal(send_str(fds[i], "GET /hello HTTP/1.1\r\n\r\n"), 0);
    }
    for (int i = 0; i < N; i += 100) {
        char buf[256] = {0};
        ssize_t got = recv(fds[i], buf, sizeof(buf) - 1, 0);
        assert_true(got > 0);
        assert_int_equal(status_of(buf), 200);
    }
    for (int i = 0; i < N; i++) {
        close(fds[i]);
    }
    free(fds);
    assert_still_serving(fx);
}

static void test_limits__max_connections_closes_extra(void **state) {
    fixture_t *fx = *state;
    enum { MAX = 4 };
    tf_http_config_t cfg = fixture_config(fx);
    cfg.max_connections = MAX;
    fixture_start(fx, &cfg);
    client_t held[MAX];
    for (int i = 0; i < MAX; i++) {
        resp_t r;
        client_open(&held[i], fx->port);
        assert_int_equal(send_str(held[i].fd, "GET /hello HTTP/1.1\r\n\r\n"), 0);
        assert_int_equal(client_read_response(&held[i], &r), 0); /* counted by now */
        resp_free(&r);
    }
    int fd = client_connect(fx->port);
    assert_true(fd >= 0); /* the kernel accepts; the server closes at once */
    (void)send_str(fd, "GET /hello HTTP/1.1\r\n\r\n");
    int closed = 0;
    char *reply = read_until_close(fd, 5000, NULL, &closed);
    assert_true(closed);
    assert_string_equal(reply, "");
    free(reply);
    close(fd);
    /* Once one leaves, a new one is served again. */
    client_close(&held[0]);
    int served = 0;
    for (int attempt = 0; attempt < 50 && !served; attempt++) {
        fd = client_connect(fx->port);
        assert_true(fd >= 0);
        (void)send_str(fd, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
        reply = read_until_close(fd, 5000, NULL, &closed);
        served = status_of(reply) == 200;
        free(reply);
        close(fd);
        if (!served) {
            sleep_ms(20);
        }
    }
    assert_true(served);
    for (int i = 1; i < MAX; i++) {
        client_close(&held[i]);
    }
    /* The server notices those closes asynchronously: retry until admitted. */
    char *metrics = NULL;
    for (int attempt = 0; attempt < 100 && metrics == NULL; attempt++) {
        client_t c;
        resp_t r;
        client_open(&c, fx->port);
        if (send_str(c.fd, "GET /metrics HTTP/1.1\r\n\r\n") == 0 &&
            client_read_response(&c, &r) == 0) {
            metrics = strdup(r.body);
            resp_free(&r);
        } else {
            sleep_ms(20);
        }
        client_close(&c);
    }
    assert_non_null(metrics);
    assert_non_null(strstr(metrics, "reason=\"max_connections\"} "));
    assert_null(strstr(metrics, "reason=\"max_connections\"} 0"));
    free(metrics);
}

static void test_limits__client_that_never_reads_is_cut_off(void **state) {
    fixture_t *fx = *state;
    enum { REQUESTS = 200, SIZE = 256 * 1024 };
    tf_http_config_t cfg = fixture_config(fx);
    cfg.idle_timeout_ms = 500;
    fixture_start(fx, &cfg);
    int fd = client_connect(fx->port);
    assert_true(fd >= 0);
    char req[128];
    snprintf(req, sizeof(req), "GET /big?size=%d HTTP/1.1\r\n\r\n", SIZE);
    for (int i = 0; i < REQUESTS; i++) {
        if (send_str(fd, req) != 0) {
            break;
        }
    }
    /* Not reading: the server's output stalls and it gives up. */
    sleep_ms(2500);
    size_t got = 0;
    int closed = 0;
    char *all = read_until_close(fd, 20000, &got, &closed);
    assert_true(closed);
    assert_true(got < (size_t)REQUESTS * SIZE);
    free(all);
    close(fd);
    assert_still_serving(fx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_limits__garbage_gets_400_and_server_still_serves,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits__huge_header_gets_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits__content_length_over_limit_gets_413_before_body,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits__chunked_body_over_limit_gets_413, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limits__slowloris_gets_408, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits__silent_and_idle_connections_are_closed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limits__slow_body_gets_408, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits__thousand_idle_connections_then_a_request,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits__max_connections_closes_extra, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits__client_that_never_reads_is_cut_off, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
