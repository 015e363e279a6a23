/*
 * http_test_util.h - shared fixture for the HTTP server tests: an in-process
 * server on 127.0.0.1 (port 0, 2 loop threads) with a small test router, and
 * a blocking-socket client with timeouts that runs on the test thread.
 *
 * Header-only (static inline) so that each test_*.c stays one executable.
 */
#ifndef TF_TESTS_HTTP_TEST_UTIL_H
#define TF_TESTS_HTTP_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "adapters/http/server.h"

#define TEST_IO_TIMEOUT_MS 10000

/* ---- the test application ---- */

typedef struct {
    tf_http_server_t *server;
    tf_router_t *router;
    tf_metrics_t *metrics;
    tf_log_t *log; /* NULL: no logging */
    int port;
    atomic_int loop_starts;
    atomic_int loop_stops;
    atomic_int slow_entered;
    atomic_int slow_answered;
} fixture_t;

typedef struct {
    int index;
} test_loop_ctx_t;

static inline int test_loop_start(uv_loop_t *loop, int index, void *app, void **loop_ctx) {
    fixture_t *fx = app;
    test_loop_ctx_t *ctx = malloc(sizeof(*ctx));
    (void)loop;
    if (ctx == NULL) {
        return -1;
    }
    ctx->index = index;
    *loop_ctx = ctx;
    atomic_fetch_add(&fx->loop_starts, 1);
    return 0;
}

static inline void test_loop_stop(uv_loop_t *loop, void *loop_ctx, void *app) {
    fixture_t *fx = app;
    (void)loop;
    free(loop_ctx);
    atomic_fetch_add(&fx->loop_stops, 1);
}

static inline void h_hello(tf_http_req_t *req, void *data) {
    (void)data;
    tf_http_respond(req, 200, "text/plain", "hello", 5);
}

static inline void h_echo(tf_http_req_t *req, void *data) {
    size_t len = 0;
    const char *body = tf_http_req_body(req, &len);
    const char *type = tf_http_req_header(req, "Content-Type");
    (void)data;
    tf_http_respond(req, 200, type != NULL ? type : "application/octet-stream", body, len);
}

static inline void h_item(tf_http_req_t *req, void *data) {
    char out[512];
    (void)data;
    snprintf(out, sizeof(out), "item:%s route:%s", tf_http_req_param(req, "id"),
             tf_http_req_route(req));
    tf_http_respond(req, 200, "text/plain", out, strlen(out));
}

static inline void h_special(tf_http_req_t *req, void *data) {
    (void)data;
    tf_http_respond(req, 200, "text/plain", "special", 7);
}

static inline void h_delete_item(tf_http_req_t *req, void *data) {
    (void)data;
    tf_http_respond(req, 204, NULL, NULL, 0);
}

static inline void h_empty(tf_http_req_t *req, void *data) {
    (void)data;
    tf_http_respond(req, 200, NULL, NULL, 0);
}

static inline void h_user_item(tf_http_req_t *req, void *data) {
    char out[512];
    (void)data;
    snprintf(out, sizeof(out), "user=%s item=%s", tf_http_req_param(req, "user"),
             tf_http_req_param(req, "item"));
    tf_http_respond(req, 200, "text/plain", out, strlen(out));
}

typedef struct {
    char text[1024];
} query_out_t;

static inline int query_collect(const char *name, const char *value, void *arg) {
    query_out_t *q = arg;
    size_t used = strlen(q->text);
    snprintf(q->text + used, sizeof(q->text) - used, "[%s]=[%s];", name, value);
    return 0;
}

static inline void h_query(tf_http_req_t *req, void *data) {
    query_out_t q = {{0}};
    (void)data;
    tf_http_req_query_each(req, query_collect, &q);
    const char *a = tf_http_req_query(req, "a");
    size_t used = strlen(q.text);
    snprintf(q.text + used, sizeof(q.text) - used, "a=%s", a != NULL ? a : "(null)");
    tf_http_respond(req, 200, "text/plain", q.text, strlen(q.text));
}

static inline void h_reqid(tf_http_req_t *req, void *data) {
    const char *id = tf_http_req_id(req);
    (void)data;
    tf_http_respond(req, 200, "text/plain", id, strlen(id));
}

static inline void h_ctx(tf_http_req_t *req, void *data) {
    char out[64];
    test_loop_ctx_t *ctx = tf_http_req_loop_ctx(req);
    (void)data;
    snprintf(out, sizeof(out), "loop=%d", ctx != NULL ? ctx->index : -1);
    tf_http_respond(req, 200, "text/plain", out, strlen(out));
}

static inline void h_big(tf_http_req_t *req, void *data) {
    const char *size_text = tf_http_req_query(req, "size");
    size_t size = size_text != NULL ? (size_t)strtoul(size_text, NULL, 10) : 1024;
    char *body = malloc(size + 1);
    (void)data;
    memset(body, 'x', size);
    tf_http_respond(req, 200, "text/plain", body, size);
    free(body);
}

/* Handlers run on loop threads: they report problems in the response
 * instead of using cmocka's asserts (which only work on the test thread). */
static inline void h_headers(tf_http_req_t *req, void *data) {
    char out[256];
    int ok = tf_http_req_add_header(req, "X-Extra", "yes") == 0 &&
             tf_http_req_add_header(req, "X-Bad", "a\r\nInjected: 1") != 0 &&
             tf_http_req_add_header(req, "Content-Length", "5") != 0 &&
             tf_http_req_add_header(req, "Bad Name", "x") != 0;
    const char *v = tf_http_req_header(req, "x-TEST");
    (void)data;
    snprintf(out, sizeof(out), "%s:%s", ok ? "ok" : "bad", v != NULL ? v : "(none)");
    tf_http_respond(req, 200, "text/plain", out, strlen(out));
}

static inline void h_fail(tf_http_req_t *req, void *data) {
    (void)data;
    tf_http_respond_error(req, 422, "validation_failed", "name is required",
                          "{\"field\":\"name\"}");
}

static inline void h_metrics(tf_http_req_t *req, void *data) {
    fixture_t *fx = data;
    char *text = NULL;
    size_t len = 0;
    if (tf_metrics_render(fx->metrics, &text, &len) != 0) {
        tf_http_respond_error(req, 500, "internal", "render failed", NULL);
        return;
    }
    tf_http_respond(req, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

typedef struct {
    uv_timer_t timer;
    tf_http_req_t *req;
    fixture_t *fx;
} slow_t;

static inline void slow_free(uv_handle_t *handle) {
    free(handle->data);
}

static inline void slow_fire(uv_timer_t *timer) {
    slow_t *slow = timer->data;
    /* Counted first: the client may see the answer before the next line. */
    atomic_fetch_add(&slow->fx->slow_answered, 1);
    tf_http_respond(slow->req, 200, "text/plain", "slow done", 9);
    uv_close((uv_handle_t *)timer, slow_free);
}

/* Answers later, from a timer on the request's loop. */
static inline void h_slow(tf_http_req_t *req, void *data) {
    fixture_t *fx = data;
    const char *ms_text = tf_http_req_query(req, "ms");
    slow_t *slow = calloc(1, sizeof(*slow));
    if (slow == NULL) {
        tf_http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    slow->req = req;
    slow->fx = fx;
    uv_timer_init(tf_http_req_loop(req), &slow->timer);
    slow->timer.data = slow;
    uv_timer_start(&slow->timer, slow_fire, ms_text != NULL ? strtoull(ms_text, NULL, 10) : 100, 0);
    atomic_fetch_add(&fx->slow_entered, 1);
}

static inline void fixture_routes(fixture_t *fx) {
    tf_router_t *r = fx->router;
    assert_int_equal(tf_router_add(r, "GET", "/hello", h_hello, fx), 0);
    assert_int_equal(tf_router_add(r, "POST", "/echo", h_echo, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/items/{id}", h_item, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/items/special", h_special, fx), 0);
    assert_int_equal(tf_router_add(r, "DELETE", "/items/{id}", h_delete_item, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/users/{user}/items/{item}", h_user_item, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/query", h_query, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/reqid", h_reqid, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/ctx", h_ctx, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/big", h_big, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/headers", h_headers, fx), 0);
    assert_int_equal(tf_router_add(r, "POST", "/fail", h_fail, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/metrics", h_metrics, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/slow", h_slow, fx), 0);
    assert_int_equal(tf_router_add(r, "GET", "/empty", h_empty, fx), 0);
}

/* A config for 2 threads on 127.0.0.1, port 0, with the test hooks. */
static inline tf_http_config_t fixture_config(fixture_t *fx) {
    return (tf_http_config_t){.host = "127.0.0.1",
                              .port = 0,
                              .threads = 2,
                              .loop_start = test_loop_start,
                              .loop_stop = test_loop_stop,
                              .app = fx};
}

static inline void fixture_start(fixture_t *fx, const tf_http_config_t *cfg) {
    assert_int_equal(tf_router_create(&fx->router), 0);
    assert_int_equal(tf_metrics_create(&fx->metrics), 0);
    fixture_routes(fx);
    assert_int_equal(tf_http_server_start(cfg, fx->router, fx->metrics, fx->log, &fx->server), 0);
    fx->port = tf_http_server_port(fx->server);
    assert_true(fx->port > 0);
}

static inline void fixture_stop(fixture_t *fx) {
    if (fx->server != NULL) {
        tf_http_server_stop(fx->server);
        tf_http_server_destroy(fx->server);
        fx->server = NULL;
    }
    tf_router_destroy(fx->router);
    tf_metrics_destroy(fx->metrics);
    fx->router = NULL;
    fx->metrics = NULL;
}

/* ---- the client ---- */

static inline uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline void set_timeouts(int fd, int ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A blocking socket connected to 127.0.0.1:port, or -1. */
static inline int client_connect(int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    set_timeouts(fd, TEST_IO_TIMEOUT_MS);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int send_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static inline int send_str(int fd, const char *s) {
    return send_all(fd, s, strlen(s));
}

/* Everything until the peer closes or `timeout_ms` passes; caller frees.
 * *closed tells whether the peer closed (EOF or reset). */
static inline char *read_until_close(int fd, int timeout_ms, size_t *len, int *closed) {
    size_t cap = 65536;
    size_t used = 0;
    char *buf = malloc(cap + 1);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int eof = 0;
    while (!eof) {
        uint64_t now = now_ms();
        if (now >= deadline) {
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            break;
        }
        if (cap - used < 65536) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + used, cap - used, 0);
        if (n <= 0) {
            eof = n == 0 || errno == ECONNRESET || errno == EPIPE;
            break;
        }
        used += (size_t)n;
    }
    buf[used] = '\0';
    if (len != NULL) {
        *len = used;
    }
    if (closed != NULL) {
        *closed = eof;
    }
    return buf;
}

typedef struct {
    int fd;
    char *buf;
    size_t len;
    size_t cap;
} client_t;

typedef struct {
    int status;
    char *head;
    char *body;
    size_t body_len;
} resp_t;

static inline void client_open(client_t *c, int port) {
    memset(c, 0, sizeof(*c));
    c->fd = client_connect(port);
    assert_true(c->fd >= 0);
}

static inline void client_close(client_t *c) {
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->buf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

static inline ssize_t client_fill(client_t *c) {
    if (c->cap - c->len < 65536) {
        c->cap = c->cap != 0 ? c->cap * 2 : 131072;
        c->buf = realloc(c->buf, c->cap);
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
    }
    return n;
}

static inline const char *find_bytes(const char *hay, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

/* Copies header `name` of a raw head into out; 1 when found. */
static inline int head_header(const char *head, const char *name, char *out, size_t cap) {
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ') {
                v++;
            }
            size_t vlen = strcspn(v, "\r");
            snprintf(out, cap, "%.*s", (int)vlen, v);
            return 1;
        }
    }
    return 0;
}

static inline int resp_header(const resp_t *r, const char *name, char *out, size_t cap) {
    return r->head != NULL && head_header(r->head, name, out, cap);
}

static inline void resp_free(resp_t *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Reads one response (skipping 100 Continue).  `no_body`: a HEAD answer.
 * Returns 0, or -1 when the connection ended or timed out first. */
static inline int client_read_response_ex(client_t *c, resp_t *r, int no_body) {
    memset(r, 0, sizeof(*r));
    for (;;) {
        const char *end;
        while ((end = find_bytes(c->buf, c->len, "\r\n\r\n")) == NULL) {
            if (client_fill(c) <= 0) {
                return -1;
            }
        }
        size_t head_len = (size_t)(end - c->buf) + 4;
        r->head = strndup(c->buf, head_len);
        if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) {
            r->status = -1;
        }
        char cl[32] = "0";
        head_header(r->head, "Content-Length", cl, sizeof(cl));
        size_t body_len = no_body ? 0 : (size_t)strtoull(cl, NULL, 10);
        while (c->len < head_len + body_len) {
            if (client_fill(c) <= 0) {
                return -1;
            }
        }
        r->body = malloc(body_len + 1);
        memcpy(r->body, c->buf + head_len, body_len);
        r->body[body_len] = '\0';
        r->body_len = body_len;
        memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
        c->len -= head_len + body_len;
        if (r->status != 100) {
            return 0;
        }
        resp_free(r);
    }
}

static inline int client_read_response(client_t *c, resp_t *r) {
    return client_read_response_ex(c, r, 0);
}

/* One request on a fresh connection; the response in *r. */
static inline void http_request(int port, const char *raw, resp_t *r) {
    client_t c;
    client_open(&c, port);
    assert_int_equal(send_str(c.fd, raw), 0);
    assert_int_equal(client_read_response(&c, r), 0);
    client_close(&c);
}

static inline void http_get(int port, const char *path, resp_t *r) {
    char raw[4096];
    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    http_request(port, raw, r);
}

/* Raises this process's descriptor limit (for many connections). */
static inline void raise_fd_limit(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

#endif
