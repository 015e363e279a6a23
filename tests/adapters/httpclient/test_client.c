/*
 * test_client.c - the outbound HTTP client (adapters/httpclient/client.c)
 * against an in-process test server on 127.0.0.1: methods, headers and
 * bodies, statuses, timeouts, refused connections, the forgery guard, the
 * body cap, aborting, many calls at once, closing with calls in flight,
 * and invalid requests.
 *
 * Each test runs its own libuv loop on the test thread and checks that the
 * loop closes cleanly (every handle closed) after the client closed.  The
 * guard tests never reach a non-loopback address: a working guard refuses
 * them before any socket exists, and their 2 s timeout turns a broken
 * guard into a failure instead of a hang.  Timings are only checked
 * against generous upper bounds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "httpclient_test_server.h"

#include "adapters/httpclient/client.h"
#include "engine/error.h"

#define WATCHDOG_MS 20000

typedef struct {
    int done;
    int done_inside_start; /* set when `done` ran while tf_http_client_start() did */
    long status;
    char error_type[32];
    char error_message[256];
    char *body;
    size_t body_len;
    int truncated;
    uint64_t duration_ms;
} outcome_t;

typedef struct {
    test_server_t server;
    uv_loop_t loop;
    tf_http_client_t *client;
    int closed;
    int in_start;
    int total_done;
    int done_when_closed; /* total_done when closed_cb ran */
    int watchdog_fired;
} fixture_t;

static fixture_t *current_fx; /* lets on_done see in_start */

/* ---- fixture -------------------------------------------------------------- */

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (fx == NULL || ts_start(&fx->server) != 0 || uv_loop_init(&fx->loop) != 0) {
        return -1;
    }
    current_fx = fx;
    *state = fx;
    return 0;
}

static void on_closed(void *arg) {
    fixture_t *fx = arg;
    fx->closed = 1;
    fx->done_when_closed = fx->total_done;
}

static void close_client(fixture_t *fx) {
    if (fx->client != NULL) {
        fx->closed = 0;
        tf_http_client_close(fx->client, on_closed, fx);
        fx->client = NULL;
        assert_int_equal(fx->closed, 0); /* closed_cb is deferred too */
        uv_run(&fx->loop, UV_RUN_DEFAULT);
        assert_int_equal(fx->closed, 1);
    }
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    close_client(fx);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    ts_stop(&fx->server);
    free(fx);
    current_fx = NULL;
    return 0;
}

static void create_client(fixture_t *fx, int allow_loopback, int allow_private, size_t max) {
    tf_http_client_config_t cfg = {
        .allow_loopback = allow_loopback,
        .allow_private = allow_private,
        .max_response_bytes = max,
    };
    assert_int_equal(tf_http_client_create(&fx->loop, &cfg, &fx->client), 0);
}

/* ---- calls ---------------------------------------------------------------- */

static void on_done(const tf_http_result_t *r, void *arg) {
    outcome_t *o = arg;
    o->done++;
    if (current_fx != NULL) {
        current_fx->total_done++;
        o->done_inside_start |= current_fx->in_start;
    }
    o->status = r->status;
    snprintf(o->error_type, sizeof(o->error_type), "%s", r->error_type ? r->error_type : "");
    snprintf(o->error_message, sizeof(o->error_message), "%s",
             r->error_message ? r->error_message : "");
    assert_non_null(r->body);
    assert_int_equal(r->body[r->body_len], '\0');
    o->body = malloc(r->body_len + 1);
    assert_non_null(o->body);
    memcpy(o->body, r->body, r->body_len + 1);
    o->body_len = r->body_len;
    o->truncated = r->truncated;
    o->duration_ms = r->duration_ms;
}

static void outcome_free(outcome_t *o) {
    free(o->body);
    memset(o, 0, sizeof(*o));
}

static int start_call(fixture_t *fx, const char *method, const char *url,
                      const char *const *headers, size_t nheaders, const char *body,
                      size_t body_len, int timeout_ms, outcome_t *o, tf_http_call_t **call) {
    tf_http_request_t req = {
        .method = method,
        .url = url,
        .headers = headers,
        .nheaders = nheaders,
        .body = body,
        .body_len = body_len,
        .timeout_ms = timeout_ms,
    };
    fx->in_start = 1;
    int rc = tf_http_client_start(fx->client, &req, on_done, o, call);
    fx->in_start = 0;
    return rc;
}

static void on_watchdog(uv_timer_t *timer) {
    fixture_t *fx = timer->data;
    fx->watchdog_fired = 1;
}

/* Runs the loop until `fx->total_done` reaches `target` (or the watchdog). */
static void run_until_done(fixture_t *fx, int target) {
    uv_timer_t watchdog;
    uv_timer_init(&fx->loop, &watchdog);
    watchdog.data = fx;
    uv_timer_start(&watchdog, on_watchdog, WATCHDOG_MS, 0);
    while (fx->total_done < target && !fx->watchdog_fired) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_false(fx->watchdog_fired);
    assert_int_equal(fx->total_done, target);
}

static void on_run_for_timer(uv_timer_t *timer) {
    *(int *)timer->data = 1;
}

/* Runs the loop for about `ms` milliseconds. */
static void run_for(fixture_t *fx, uint64_t ms) {
    uv_timer_t timer;
    int fired = 0;
    uv_timer_init(&fx->loop, &timer);
    timer.data = &fired;
    uv_timer_start(&timer, on_run_for_timer, ms, 0);
    while (!fired) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static void url_for(char *buf, size_t size, fixture_t *fx, const char *path) {
    snprintf(buf, size, "http://127.0.0.1:%d%s", fx->server.port, path);
}

/* One call from start to result; asserts it started. */
static void call_once(fixture_t *fx, const char *method, const char *url, int timeout_ms,
                      outcome_t *o) {
    int before = fx->total_done;
    assert_int_equal(start_call(fx, method, url, NULL, 0, NULL, 0, timeout_ms, o, NULL), 0);
    run_until_done(fx, before + 1);
    assert_int_equal(o->done, 1);
    assert_int_equal(o->done_inside_start, 0);
}

/* Waits (running the loop) until the server has counted `n` requests. */
static void wait_for_requests(fixture_t *fx, int n) {
    uint64_t until = uv_hrtime() + (uint64_t)WATCHDOG_MS * 1000000u;
    while (ts_requests(&fx->server) < n && uv_hrtime() < until) {
        run_for(fx, 10);
    }
    assert_int_equal(ts_requests(&fx->server), n);
}

/* ---- requests and responses ------------------------------------------------ */

static void test_client__get_sends_headers_and_returns_body(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/json");
    const char *headers[] = {"X-Trace: abc-123", "Accept: application/json"};
    outcome_t o = {0};
    assert_int_equal(start_call(fx, "GET", url, headers, 2, NULL, 0, 5000, &o, NULL), 0);
    assert_int_equal(o.done, 0);
    run_until_done(fx, 1);
    assert_int_equal(o.done_inside_start, 0);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.error_type, "");
    assert_string_equal(o.body, "{\"ok\":true,\"n\":1}");
    assert_int_equal(o.body_len, strlen("{\"ok\":true,\"n\":1}"));
    assert_int_equal(o.truncated, 0);
    assert_true(o.duration_ms < 5000);
    assert_string_equal(fx->server.last_method, "GET");
    assert_string_equal(fx->server.last_target, "/json");
    assert_non_null(strstr(fx->server.last_head, "\r\nX-Trace: abc-123\r\n"));
    assert_non_null(strstr(fx->server.last_head, "\r\nAccept: application/json\r\n"));
    assert_null(strstr(fx->server.last_head, "Content-Length"));
    assert_int_equal(fx->server.last_body_len, 0);
    outcome_free(&o);
}

static void test_client__post_sends_body_intact(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/echo");
    static const char body[] = "{\"a\":[1,2,3]}\0binary\xff tail";
    size_t body_len = sizeof(body) - 1;
    const char *headers[] = {"Content-Type: application/json", "Authorization: Bearer t0k3n"};
    outcome_t o = {0};
    assert_int_equal(start_call(fx, "POST", url, headers, 2, body, body_len, 5000, &o, NULL), 0);
    run_until_done(fx, 1);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.error_type, "");
    assert_int_equal(o.body_len, body_len);
    assert_memory_equal(o.body, body, body_len);
    assert_string_equal(fx->server.last_method, "POST");
    assert_int_equal(fx->server.last_body_len, body_len);
    assert_memory_equal(fx->server.last_body, body, body_len);
    assert_non_null(strstr(fx->server.last_head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(fx->server.last_head, "\r\nAuthorization: Bearer t0k3n\r\n"));
    assert_null(strstr(fx->server.last_head, "\r\nExpect:"));
    outcome_free(&o);
}

static void test_client__put_patch_delete_and_empty_post(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/echo");
    static const struct {
        const char *method;
        const char *sent;
        const char *body;
    } cases[] = {
        {"PUT", "PUT", "{\"put\":1}"},
        {"patch", "PATCH", "{\"patch\":1}"},
        {"DELETE", "DELETE", NULL},
        {"POST", "POST", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        outcome_t o = {0};
        size_t len = cases[i].body != NULL ? strlen(cases[i].body) : 0;
        int before = fx->total_done;
        assert_int_equal(
            start_call(fx, cases[i].method, url, NULL, 0, cases[i].body, len, 5000, &o, NULL), 0);
        run_until_done(fx, before + 1);
        assert_int_equal(o.status, 200);
        assert_string_equal(fx->server.last_method, cases[i].sent);
        assert_int_equal(fx->server.last_body_len, len);
        assert_string_equal(o.body, cases[i].body != NULL ? cases[i].body : "");
        outcome_free(&o);
    }
    /* A POST without a body still says so. */
    assert_non_null(strstr(fx->server.last_head, "\r\nContent-Length: 0\r\n"));
}

static void test_client__error_statuses_are_responses(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    static const long statuses[] = {503, 404, 429, 500, 201};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        char path[32];
        char url[128];
        snprintf(path, sizeof(path), "/status/%ld", statuses[i]);
        url_for(url, sizeof(url), fx, path);
        outcome_t o = {0};
        call_once(fx, "GET", url, 5000, &o);
        assert_int_equal(o.status, statuses[i]);
        assert_string_equal(o.error_type, "");
        assert_non_null(strstr(o.body, "\"status\""));
        outcome_free(&o);
    }
}

static void test_client__keep_alive_connection_is_reused_and_closed(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/keepalive");
    for (int i = 0; i < 5; i++) {
        outcome_t o = {0};
        call_once(fx, "GET", url, 5000, &o);
        assert_int_equal(o.status, 200);
        assert_string_equal(o.error_type, "");
        outcome_free(&o);
    }
    assert_int_equal(ts_requests(&fx->server), 5);
    assert_int_equal(ts_connections(&fx->server), 1);
    /* The teardown closes the client with the connection still cached. */
}

/* ---- failures -------------------------------------------------------------- */

static void test_client__timeout_aborts_the_call(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/sleep/15000");
    outcome_t o = {0};
    call_once(fx, "GET", url, 300, &o);
    assert_string_equal(o.error_type, "timeout");
    assert_true(o.error_message[0] != '\0');
    assert_int_equal(o.status, 0);
    assert_true(o.duration_ms < 5000);
    outcome_free(&o);
}

static void test_client__closed_port_is_connect_refused(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/json", ts_closed_port());
    outcome_t o = {0};
    call_once(fx, "GET", url, 5000, &o);
    assert_string_equal(o.error_type, "connect_refused");
    assert_int_equal(o.status, 0);
    outcome_free(&o);
}

static void test_client__server_hanging_up_is_connection_error(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/close");
    outcome_t o = {0};
    call_once(fx, "GET", url, 5000, &o);
    assert_string_equal(o.error_type, "connection");
    assert_int_equal(o.status, 0);
    outcome_free(&o);
}

/* ---- the forgery guard ----------------------------------------------------- */

static void test_client__loopback_refused_unless_allowed(void **state) {
    fixture_t *fx = *state;
    char url[128];
    create_client(fx, 0, 0, 0);
    /* A literal address, refused before curl sees it, and a name, refused
     * by the open-socket callback after resolution. */
    const char *hosts[] = {"127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "127.9.9.9"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        snprintf(url, sizeof(url), "http://%s:%d/json", hosts[i], fx->server.port);
        outcome_t o = {0};
        call_once(fx, "GET", url, 2000, &o);
        assert_string_equal(o.error_type, "blocked_address");
        assert_non_null(strstr(o.error_message, "loopback"));
        assert_int_equal(o.status, 0);
        outcome_free(&o);
    }
    assert_int_equal(ts_requests(&fx->server), 0);
    close_client(fx);

    /* allow_private does not open loopback. */
    create_client(fx, 0, 1, 0);
    url_for(url, sizeof(url), fx, "/json");
    outcome_t o = {0};
    call_once(fx, "GET", url, 2000, &o);
    assert_string_equal(o.error_type, "blocked_address");
    outcome_free(&o);
    close_client(fx);

    create_client(fx, 1, 0, 0);
    const char *allowed[] = {"127.0.0.1", "localhost"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        snprintf(url, sizeof(url), "http://%s:%d/json", allowed[i], fx->server.port);
        call_once(fx, "GET", url, 5000, &o);
        assert_int_equal(o.status, 200);
        assert_string_equal(o.error_type, "");
        outcome_free(&o);
    }
}

static void expect_blocked(fixture_t *fx, const char *host) {
    char url[128];
    snprintf(url, sizeof(url), "http://%s/latest/meta-data", host);
    outcome_t o = {0};
    call_once(fx, "GET", url, 2000, &o);
    if (strcmp(o.error_type, "blocked_address") != 0) {
        fail_msg("%s: got \"%s\" (%s), want blocked_address", host, o.error_type, o.error_message);
    }
    assert_true(o.duration_ms < 2000);
    outcome_free(&o);
}

static void test_client__private_link_local_and_special_refused(void **state) {
    fixture_t *fx = *state;
    static const char *const refused_always[] = {
        "10.0.0.1",         "192.168.1.1",       "169.254.169.254",
        "172.16.5.4",       "100.64.0.1",        "0.0.0.0",
        "224.0.0.1",        "255.255.255.255",   "[fe80::1]",
        "[fc00::1]",        "[fd12:3456::1]",    "[::]",
        "[ff02::1]",        "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]",
        "[64:ff9b::a00:1]", "10.0.0.1:8080",     "[fe80::1%25lo]",
    };
    /* Neither allowance opens these. */
    create_client(fx, 1, 0, 0);
    for (size_t i = 0; i < sizeof(refused_always) / sizeof(refused_always[0]); i++) {
        expect_blocked(fx, refused_always[i]);
    }
    close_client(fx);
    create_client(fx, 0, 0, 0);
    expect_blocked(fx, "[::1]");
    expect_blocked(fx, "10.0.0.1");
    close_client(fx);
    /* allow_private still refuses what is never allowed. */
    create_client(fx, 0, 1, 0);
    expect_blocked(fx, "[::1]");
    expect_blocked(fx, "0.0.0.0");
    expect_blocked(fx, "224.0.0.1");
    expect_blocked(fx, "[ff02::1]");
    assert_int_equal(ts_requests(&fx->server), 0);
}

/* ---- the body cap ---------------------------------------------------------- */

static void test_client__body_truncated_at_cap(void **state) {
    fixture_t *fx = *state;
    char url[128];
    outcome_t o = {0};
    create_client(fx, 1, 0, 1000);
    url_for(url, sizeof(url), fx, "/huge/10485760");
    call_once(fx, "GET", url, 10000, &o);
    assert_string_equal(o.error_type, "");
    assert_int_equal(o.status, 200);
    assert_int_equal(o.truncated, 1);
    assert_int_equal(o.body_len, 1000);
    assert_int_equal(o.body[0], 'x');
    assert_int_equal(o.body[999], 'x');
    outcome_free(&o);

    /* Exactly at the cap is not truncated. */
    url_for(url, sizeof(url), fx, "/huge/1000");
    call_once(fx, "GET", url, 10000, &o);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.truncated, 0);
    assert_int_equal(o.body_len, 1000);
    outcome_free(&o);
    close_client(fx);

    /* The default cap is 1 MiB. */
    create_client(fx, 1, 0, 0);
    url_for(url, sizeof(url), fx, "/huge/10485760");
    call_once(fx, "GET", url, 10000, &o);
    assert_string_equal(o.error_type, "");
    assert_int_equal(o.status, 200);
    assert_int_equal(o.truncated, 1);
    assert_int_equal(o.body_len, 1024 * 1024);
    assert_true(o.duration_ms < 10000);
    outcome_free(&o);
}

/* ---- aborting and closing -------------------------------------------------- */

static void test_client__abort_gives_aborted_later(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/sleep/15000");
    tf_http_call_t *call = NULL;
    outcome_t o = {0};

    /* In flight: the server has the request. */
    assert_int_equal(start_call(fx, "GET", url, NULL, 0, NULL, 0, 20000, &o, &call), 0);
    assert_non_null(call);
    wait_for_requests(fx, 1);
    assert_int_equal(o.done, 0);
    tf_http_client_abort(fx->client, call);
    assert_int_equal(o.done, 0); /* deferred */
    run_until_done(fx, 1);
    assert_string_equal(o.error_type, "aborted");
    assert_int_equal(o.status, 0);
    assert_true(o.duration_ms < 10000);
    outcome_free(&o);

    /* Right after starting, before any I/O. */
    assert_int_equal(start_call(fx, "GET", url, NULL, 0, NULL, 0, 20000, &o, &call), 0);
    tf_http_client_abort(fx->client, call);
    run_until_done(fx, 2);
    assert_string_equal(o.error_type, "aborted");
    outcome_free(&o);

    /* A result already waiting for delivery becomes "aborted" too. */
    assert_int_equal(start_call(fx, "GET", "http://10.0.0.1/", NULL, 0, NULL, 0, 2000, &o, &call),
                     0);
    tf_http_client_abort(fx->client, call);
    run_until_done(fx, 3);
    assert_string_equal(o.error_type, "aborted");
    outcome_free(&o);
}

static void test_client__close_aborts_calls_in_flight(void **state) {
    fixture_t *fx = *state;
    enum { N = 20 };
    create_client(fx, 1, 0, 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/sleep/15000");
    outcome_t *o = calloc(N + 1, sizeof(*o));
    assert_non_null(o);
    for (int i = 0; i < N; i++) {
        assert_int_equal(start_call(fx, "GET", url, NULL, 0, NULL, 0, 20000, &o[i], NULL), 0);
    }
    wait_for_requests(fx, N);
    /* One more whose result is queued but not yet delivered. */
    assert_int_equal(start_call(fx, "GET", "http://10.0.0.1/", NULL, 0, NULL, 0, 2000, &o[N], NULL),
                     0);
    fx->closed = 0;
    tf_http_client_close(fx->client, on_closed, fx);
    assert_int_equal(fx->total_done, 0);
    outcome_t late = {0};
    assert_int_equal(start_call(fx, "GET", url, NULL, 0, NULL, 0, 2000, &late, NULL), TF_ESHUTDOWN);
    fx->client = NULL;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->closed, 1);
    assert_int_equal(fx->done_when_closed, N + 1); /* every result before closed_cb */
    for (int i = 0; i <= N; i++) {
        assert_int_equal(o[i].done, 1);
        assert_string_equal(o[i].error_type, "aborted");
        outcome_free(&o[i]);
    }
    assert_int_equal(late.done, 0);
    free(o);
}

typedef struct {
    fixture_t *fx;
    char url[128];
    outcome_t first;
    outcome_t second;
} chain_t;

static void on_second_done(const tf_http_result_t *r, void *arg) {
    chain_t *chain = arg;
    on_done(r, &chain->second);
    tf_http_client_close(chain->fx->client, on_closed, chain->fx);
    chain->fx->client = NULL;
}

static void on_first_done(const tf_http_result_t *r, void *arg) {
    chain_t *chain = arg;
    on_done(r, &chain->first);
    tf_http_request_t req = {.method = "GET", .url = chain->url, .timeout_ms = 5000};
    assert_int_equal(tf_http_client_start(chain->fx->client, &req, on_second_done, chain, NULL), 0);
}

static void test_client__done_may_start_and_close(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    chain_t chain = {.fx = fx};
    url_for(chain.url, sizeof(chain.url), fx, "/json");
    tf_http_request_t req = {.method = "GET", .url = chain.url, .timeout_ms = 5000};
    assert_int_equal(tf_http_client_start(fx->client, &req, on_first_done, &chain, NULL), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->closed, 1);
    assert_int_equal(chain.first.status, 200);
    assert_int_equal(chain.second.status, 200);
    outcome_free(&chain.first);
    outcome_free(&chain.second);
}

/* ---- load ------------------------------------------------------------------ */

static void test_client__200_concurrent_calls_complete(void **state) {
    fixture_t *fx = *state;
    enum { N = 200 };
    create_client(fx, 1, 0, 0);
    char json_url[128];
    char status_url[128];
    url_for(json_url, sizeof(json_url), fx, "/json");
    url_for(status_url, sizeof(status_url), fx, "/status/503");
    outcome_t *o = calloc(N, sizeof(*o));
    assert_non_null(o);
    for (int i = 0; i < N; i++) {
        const char *url = i % 4 == 3 ? status_url : json_url;
        assert_int_equal(start_call(fx, "GET", url, NULL, 0, NULL, 0, 20000, &o[i], NULL), 0);
    }
    run_until_done(fx, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].done, 1);
        assert_string_equal(o[i].error_type, "");
        assert_int_equal(o[i].status, i % 4 == 3 ? 503 : 200);
        outcome_free(&o[i]);
    }
    assert_int_equal(ts_requests(&fx->server), N);
    free(o);
}

/* Several loops on several threads, each with its own client, at once
 * (curl's process-wide initialisation must not race). */
typedef struct {
    int port;
    long status;
    int rc;
    int closed;
} thread_job_t;

static void on_thread_done(const tf_http_result_t *r, void *arg) {
    thread_job_t *job = arg;
    job->status = r->status;
}

static void on_thread_closed(void *arg) {
    thread_job_t *job = arg;
    job->closed = 1;
}

static void *thread_main(void *arg) {
    thread_job_t *job = arg;
    uv_loop_t loop;
    tf_http_client_t *client = NULL;
    tf_http_client_config_t cfg = {.allow_loopback = 1};
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/json", job->port);
    tf_http_request_t req = {.method = "GET", .url = url, .timeout_ms = 10000};
    job->rc = uv_loop_init(&loop);
    if (job->rc == 0) {
        job->rc = tf_http_client_create(&loop, &cfg, &client);
    }
    if (job->rc == 0) {
        job->rc = tf_http_client_start(client, &req, on_thread_done, job, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        tf_http_client_close(client, on_thread_closed, job);
        uv_run(&loop, UV_RUN_DEFAULT);
        job->rc = job->rc != 0 ? job->rc : uv_loop_close(&loop);
    }
    return NULL;
}

static void test_client__clients_on_several_loops(void **state) {
    fixture_t *fx = *state;
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    thread_job_t jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (thread_job_t){.port = fx->server.port};
        assert_int_equal(pthread_create(&threads[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(jobs[i].rc, 0);
        assert_int_equal(jobs[i].status, 200);
        assert_int_equal(jobs[i].closed, 1);
    }
}

/* ---- invalid input --------------------------------------------------------- */

static void test_client__invalid_requests_rejected_without_callback(void **state) {
    fixture_t *fx = *state;
    create_client(fx, 1, 0, 0);
    char url[128];
    char spaced[160];
    url_for(url, sizeof(url), fx, "/json");
    snprintf(spaced, sizeof(spaced), "%s/a b", url);
    outcome_t o = {0};
    tf_http_call_t *call = NULL;
    static const char *const bad_methods[] = {"FETCH", "GET ", "", "CONNECT", "TRACE", NULL};
    for (size_t i = 0; i < sizeof(bad_methods) / sizeof(bad_methods[0]); i++) {
        assert_int_equal(start_call(fx, bad_methods[i], url, NULL, 0, NULL, 0, 1000, &o, &call),
                         TF_EINVAL);
    }
    const char *bad_urls[] = {"",
                              "not a url",
                              "ftp://127.0.0.1/x",
                              "http://",
                              "file:///etc/passwd",
                              "//127.0.0.1/x",
                              "gopher://127.0.0.1/",
                              spaced,
                              NULL};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        assert_int_equal(start_call(fx, "GET", bad_urls[i], NULL, 0, NULL, 0, 1000, &o, &call),
                         TF_EINVAL);
    }
    static const char *const bad_headers[] = {"X-Bad: a\r\nInjected: b", "NoColon", ": novalue",
                                              "Bad Name: x", "X-Lf: a\nb"};
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        assert_int_equal(start_call(fx, "GET", url, &bad_headers[i], 1, NULL, 0, 1000, &o, &call),
                         TF_EINVAL);
    }
    assert_int_equal(start_call(fx, "GET", url, NULL, 0, NULL, 0, 0, &o, &call), TF_EINVAL);
    assert_int_equal(start_call(fx, "GET", url, NULL, 0, NULL, 0, -5, &o, &call), TF_EINVAL);
    assert_int_equal(start_call(fx, "POST", url, NULL, 0, NULL, 5, 1000, &o, &call), TF_EINVAL);
    assert_int_equal(start_call(fx, "GET", url, NULL, 2, NULL, 0, 1000, &o, &call), TF_EINVAL);
    tf_http_request_t req = {.method = "GET", .url = url, .timeout_ms = 1000};
    assert_int_equal(tf_http_client_start(fx->client, &req, NULL, NULL, NULL), TF_EINVAL);
    assert_int_equal(tf_http_client_start(fx->client, NULL, on_done, &o, NULL), TF_EINVAL);
    run_for(fx, 50);
    assert_int_equal(o.done, 0);
    assert_int_equal(fx->total_done, 0);
    assert_int_equal(ts_requests(&fx->server), 0);
}

static void test_client__create_rejects_bad_arguments(void **state) {
    fixture_t *fx = *state;
    tf_http_client_t *client = NULL;
    assert_int_equal(tf_http_client_create(NULL, NULL, &client), TF_EINVAL);
    assert_int_equal(tf_http_client_create(&fx->loop, NULL, NULL), TF_EINVAL);
    tf_http_client_config_t huge = {.max_response_bytes = SIZE_MAX};
    assert_int_equal(tf_http_client_create(&fx->loop, &huge, &client), TF_EINVAL);
    assert_null(client);
    /* A NULL configuration means the defaults: nothing internal allowed. */
    assert_int_equal(tf_http_client_create(&fx->loop, NULL, &fx->client), 0);
    char url[128];
    url_for(url, sizeof(url), fx, "/json");
    outcome_t o = {0};
    call_once(fx, "GET", url, 2000, &o);
    assert_string_equal(o.error_type, "blocked_address");
    outcome_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client__clients_on_several_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__get_sends_headers_and_returns_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client__post_sends_body_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__put_patch_delete_and_empty_post, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client__error_statuses_are_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__keep_alive_connection_is_reused_and_closed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__timeout_aborts_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__closed_port_is_connect_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client__server_hanging_up_is_connection_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client__loopback_refused_unless_allowed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client__private_link_local_and_special_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client__body_truncated_at_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__abort_gives_aborted_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__close_aborts_calls_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__done_may_start_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__200_concurrent_calls_complete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client__invalid_requests_rejected_without_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_client__create_rejects_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
