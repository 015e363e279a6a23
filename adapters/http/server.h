/*
 * server.h - the HTTP/1.1 server: libuv + llhttp, one event loop per thread.
 *
 * `threads` loops each own a listening socket bound to the same address with
 * SO_REUSEPORT, so the kernel spreads connections over the cores; nothing is
 * shared between loops but the immutable router and configuration.  Each loop
 * gets an application context from `loop_start` (its Postgres pool, ...).
 *
 * HTTP/1.1 with keep-alive and pipelining: requests on one connection are
 * answered in order (the parser pauses while a request is being handled).
 * Limits: request line + headers `max_header_bytes` (431), body
 * `max_body_bytes` (413), `header_timeout_ms` to receive a complete request
 * head, `idle_timeout_ms` between requests, `body_timeout_ms` for the body,
 * and `max_connections` per process (over it a connection is closed at once).
 * TLS is not handled here: terminate it in a reverse proxy.
 *
 * Limits in detail: a connection waiting for the first byte of a request
 * (new or kept alive) is closed after idle_timeout_ms; from that byte on the
 * head must be complete within header_timeout_ms (else 408), and the whole
 * body within body_timeout_ms of its head (408); a
 * Content-Length over max_body_bytes is answered 413 from the head alone,
 * before any body byte is read.  Errors the server finds itself (400, 408,
 * 413, 431) close the connection after the answer.  Output is capped per
 * connection: with more than 64 KiB queued no further pipelined request is
 * read, and a client that reads nothing for idle_timeout_ms is disconnected.
 * Metrics use the matched pattern as `route`; "unmatched" for 404s and for
 * requests refused before their head was complete; never the raw path.
 *
 * Every response carries X-Request-Id: the client's own when it sent a sane
 * one (1-128 printable ASCII characters, no spaces), otherwise a new UUIDv7.
 *
 * Handlers run on the loop thread that read the request.  A handler may
 * answer at once or later (after a database callback) but must answer
 * exactly once, on the same loop thread.  If the client went away meanwhile
 * the answer is dropped; the request stays valid until it is answered.
 */
#ifndef TF_ADAPTERS_HTTP_SERVER_H
#define TF_ADAPTERS_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"

typedef struct tf_http_server tf_http_server_t;
typedef struct tf_http_req tf_http_req_t;
typedef struct tf_router tf_router_t;

typedef void (*tf_http_handler_fn)(tf_http_req_t *req, void *handler_data);

typedef struct {
    const char *host;        /* default "127.0.0.1" */
    int port;                /* 0 picks a free port (see tf_http_server_port) */
    int threads;             /* default: number of cores */
    size_t max_header_bytes; /* default 16 KiB */
    size_t max_body_bytes;   /* default 1 MiB */
    int header_timeout_ms;   /* default 10000 */
    int body_timeout_ms;     /* default 30000 */
    int idle_timeout_ms;     /* default 60000 */
    int max_connections;     /* per process; default 10000 */
    int shutdown_grace_ms;   /* default 10000 */
    /* Called on each loop thread before it accepts; returns that loop's
     * application context (or NULL) through *loop_ctx.  Non-zero aborts
     * start-up. */
    int (*loop_start)(uv_loop_t *loop, int index, void *app, void **loop_ctx);
    /* Called on each loop thread after its last request was answered or
     * abandoned; must close what loop_start opened (the loop runs on until
     * every handle is closed). */
    void (*loop_stop)(uv_loop_t *loop, void *loop_ctx, void *app);
    /* Optional: called on each loop thread when shutdown begins, before the
     * grace period, so the application can answer requests that would
     * otherwise wait (long polls) at once. */
    void (*loop_stopping)(uv_loop_t *loop, void *loop_ctx, void *app);
    void *app;
} tf_http_config_t;

/* ---- router ---- */

/* Caller owns the result; free with tf_router_destroy() after the server. */
int tf_router_create(tf_router_t **out);
void tf_router_destroy(tf_router_t *router);

/* Adds a route.  `pattern` is a path with `{name}` segments
 * ("/v1/jobs/{id}/cancel"); literal segments win over parameters.  `method`
 * is "GET", "POST", ...  A known path with another method answers 405.  The
 * pattern is also the `route` label of the HTTP metrics. */
int tf_router_add(tf_router_t *router, const char *method, const char *pattern,
                  tf_http_handler_fn handler, void *handler_data);

/* ---- server ---- */

/* Binds every listening socket (so a busy port fails here) and starts the
 * loop threads.  `router`, `metrics` and `log` must outlive the server;
 * `metrics` and `log` may be NULL.  Returns 0, TF_ECONFLICT when the port is
 * in use, TF_EINVAL for a bad configuration or address, or the (negative)
 * code of a failing loop_start.  Caller owns the result; free with
 * tf_http_server_destroy(). */
int tf_http_server_start(const tf_http_config_t *cfg, const tf_router_t *router,
                         tf_metrics_t *metrics, tf_log_t *log, tf_http_server_t **out);

/* The port actually bound (useful with port 0). */
int tf_http_server_port(const tf_http_server_t *server);

/* Graceful stop, callable from any thread: stop accepting, let in-flight
 * requests finish for up to shutdown_grace_ms, then close every connection. */
void tf_http_server_stop(tf_http_server_t *server);

/* Waits for every loop thread to end, then frees the server. */
void tf_http_server_destroy(tf_http_server_t *server);

/* ---- requests (valid until answered) ---- */

const char *tf_http_req_method(const tf_http_req_t *req);
/* The path as sent (still percent-encoded), without the query. */
const char *tf_http_req_path(const tf_http_req_t *req);
const char *tf_http_req_route(const tf_http_req_t *req); /* matched pattern */
/* A path parameter by name, percent-decoded; NULL when absent. */
const char *tf_http_req_param(const tf_http_req_t *req, const char *name);
/* A query parameter by name, percent-decoded (first occurrence); NULL when
 * absent.  */
const char *tf_http_req_query(const tf_http_req_t *req, const char *name);
/* Calls `fn` for every query parameter in order; stops when it returns
 * non-zero and returns that value. */
int tf_http_req_query_each(const tf_http_req_t *req,
                           int (*fn)(const char *name, const char *value, void *arg), void *arg);
/* A request header by case-insensitive name (the first of repeated ones,
 * surrounding whitespace removed); NULL when absent. */
const char *tf_http_req_header(const tf_http_req_t *req, const char *name);
/* The body (NUL-terminated for convenience; "" when empty). */
const char *tf_http_req_body(const tf_http_req_t *req, size_t *len);
const char *tf_http_req_id(const tf_http_req_t *req);
void *tf_http_req_loop_ctx(const tf_http_req_t *req);
uv_loop_t *tf_http_req_loop(const tf_http_req_t *req);
/* 1 when the client has closed its side of the connection or the connection
 * is gone: an answer may never be read.  Long-running handlers (long polls)
 * check it before doing work on the client's behalf. */
int tf_http_req_peer_gone(const tf_http_req_t *req);

/* Monotonic nanoseconds when the request head was complete. */
uint64_t tf_http_req_start_ns(const tf_http_req_t *req);

/* Adds a response header (copied) before the answer.  TF_EINVAL for a name
 * that is not a token, a value with CR or LF, or a header the server writes
 * itself (Content-Length, Transfer-Encoding, Connection, Content-Type,
 * X-Request-Id, Date). */
int tf_http_req_add_header(tf_http_req_t *req, const char *name, const char *value);

/* Answers.  The body is copied.  After this call `req` is invalid.  A status
 * outside 200-599 is sent as 500; 204 and 304 carry no body, and neither
 * does the answer to HEAD (which falls back to the GET route). */
void tf_http_respond(tf_http_req_t *req, int status, const char *content_type, const char *body,
                     size_t len);
/* Answers {"error":{"code","message","details"}}; `details_json` is a JSON
 * object text or NULL.  After this call `req` is invalid. */
void tf_http_respond_error(tf_http_req_t *req, int status, const char *code, const char *message,
                           const char *details_json);

#endif
