/*
 * http_internal.h - private declarations shared by the HTTP server's files.
 *
 * Not a public contract: only the .c files of adapters/http include it.  The server is
 * split by concern:
 *   server.c   - configuration, listening sockets, loop threads, shutdown;
 *   conn.c     - one TCP connection: llhttp callbacks, the connection state
 *                machine, limits, timers, reading and the write queue;
 *   router.c   - method + pattern matching;
 *   request.c  - the request object, its accessors, URL and query decoding;
 *   response.c - response building, error bodies, metrics, access log.
 *
 * Threads: the server object is created on the caller's thread and is
 * immutable afterwards except for its atomics.  Everything reached from a
 * tf__http_loop_t (connections, requests, the metric cache, the UUID
 * generator) belongs to that loop's thread alone.
 */
#ifndef TF_ADAPTERS_HTTP_INTERNAL_H
#define TF_ADAPTERS_HTTP_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "adapters/http/server.h"
#include "engine/uuid.h"

#define TF__HTTP_READ_BUF_SIZE (64 * 1024)
/* Over this many queued output bytes a connection stops parsing pipelined
 * requests until the client has read (back-pressure). */
#define TF__HTTP_WRITE_HIGH_WATER (64 * 1024)
/* How long a closing connection keeps reading and discarding what the client
 * still sends, so that our last response is not destroyed by a TCP reset. */
#define TF__HTTP_LINGER_MS 2000
#define TF__HTTP_MAX_REQUEST_ID 128
#define TF__HTTP_ALLOW_MAX 128
#define TF__HTTP_UNMATCHED "unmatched"

typedef struct tf__http_loop tf__http_loop_t;
typedef struct tf__http_conn tf__http_conn_t;
typedef struct tf__http_route tf__http_route_t;

/* Why the server closed a connection on its own (label of
 * taskflow_http_rejected_connections_total). */
typedef enum {
    TF__HTTP_REJECT_MAX_CONNECTIONS,
    TF__HTTP_REJECT_HEADER_TIMEOUT,
    TF__HTTP_REJECT_BODY_TIMEOUT,
    TF__HTTP_REJECT_HEADER_TOO_LARGE,
    TF__HTTP_REJECT_BODY_TOO_LARGE,
    TF__HTTP_REJECT_BAD_REQUEST,
    TF__HTTP_REJECT_WRITE_STALLED,
    TF__HTTP_REJECT_COUNT
} tf__http_reject_t;

/* One route: what tf_router_add() registered. */
struct tf__http_route {
    char *method;
    char *pattern;
    tf_http_handler_fn handler;
    void *handler_data;
    size_t nparams;
    char **param_names;
    size_t *param_pos; /* segment index of each parameter */
};

/* The outcome of tf__router_match(). */
typedef struct {
    const tf__http_route_t *route;  /* NULL: 404 or 405 */
    const char *pattern;            /* matched pattern (405 too), else NULL */
    char allow[TF__HTTP_ALLOW_MAX]; /* "GET, POST" for 405, "" otherwise */
} tf__http_match_t;

typedef struct {
    tf_metric_family_t *requests; /* counter {route,method,status} */
    tf_metric_family_t *duration; /* histogram {route,method} */
    tf_metric_t *connections;     /* gauge, open connections */
    tf_metric_t *rejected[TF__HTTP_REJECT_COUNT];
} tf__http_metrics_t;

struct tf_http_server {
    tf_http_config_t cfg; /* defaults applied; cfg.host points at host */
    char *host;
    const tf_router_t *router;
    tf_metrics_t *metrics;
    tf_log_t *log;
    tf__http_metrics_t m;
    int port;
    atomic_int nconnections; /* open connections across all loops */
    atomic_int stop_requested;
    int nloops;
    tf__http_loop_t **loops;
    /* Start-up barrier: every loop thread reports its loop_start result and
     * waits for the verdict (1 run, -1 abort). */
    uv_mutex_t lock;
    uv_cond_t cond;
    int nreported;
    int start_rc;
    int verdict;
};

/* One cached metric child pair, keyed by (route, method, status). */
typedef struct {
    const char *route;
    const char *method;
    int status;
    tf_metric_t *requests;
    tf_metric_t *duration;
} tf__http_metric_slot_t;

struct tf__http_loop {
    tf_http_server_t *server;
    int index;
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t *stop_async; /* freed in its close callback */
    uv_timer_t grace_timer;
    uv_thread_t thread;
    int thread_started;
    int listener_open;
    void *loop_ctx;
    int app_started;
    int stopping;
    int finished;
    tf_uuid_gen_t uuid_gen;
    tf__http_conn_t *conns; /* doubly linked list of open connections */
    size_t nconns;
    size_t live_requests;
    tf__http_metric_slot_t *metric_slots; /* open addressing, power of 2 */
    size_t metric_cap;
    size_t metric_used;
    int64_t date_second;
    char date[64];
    char read_buf[TF__HTTP_READ_BUF_SIZE];
};

/* ---- router.c ---- */

/* Finds the route for `method` and the decoded path segments.  Literal
 * segments win over parameters; a HEAD request falls back to GET. */
void tf__router_match(const tf_router_t *router, const char *method, char *const *segs, size_t nseg,
                      tf__http_match_t *out);

/* ---- request.c ---- */

/* A new, empty request for `conn` on `loop`.  NULL when out of memory.
 * Free with tf__req_destroy(). */
tf_http_req_t *tf__req_create(tf__http_loop_t *loop, tf__http_conn_t *conn);
void tf__req_destroy(tf_http_req_t *req);

/* Head accumulation from the llhttp callbacks.  Each returns 0, or
 * TF_ETOOBIG when the head would exceed `max` bytes, or TF_ENOMEM. */
int tf__req_append_url(tf_http_req_t *req, const char *at, size_t len, size_t max);
int tf__req_append_field(tf_http_req_t *req, const char *at, size_t len, size_t max);
int tf__req_append_value(tf_http_req_t *req, const char *at, size_t len, size_t max);
int tf__req_end_url(tf_http_req_t *req, size_t max);
int tf__req_end_field(tf_http_req_t *req, size_t max);
int tf__req_end_value(tf_http_req_t *req, size_t max);
/* Appends body bytes; TF_ETOOBIG over `max` in total. */
int tf__req_append_body(tf_http_req_t *req, const char *at, size_t len, size_t max);
/* Sets the method (a static string) when not set yet. */
void tf__req_set_method(tf_http_req_t *req, const char *method);

/* Called once the head is complete: splits and decodes the URL, routes it.
 * A bad URL or no route is remembered and answered by tf__req_dispatch(). */
void tf__req_head_done(tf_http_req_t *req, int keep_alive, int http_minor);
/* Runs the handler, or answers the remembered 400/404/405. */
void tf__req_dispatch(tf_http_req_t *req);
/* Detaches the request from its (closing) connection: its answer will be
 * dropped. */
void tf__req_detach(tf_http_req_t *req);

/* The request's pieces that response.c needs. */
typedef struct {
    const char *route; /* pattern, or "unmatched" */
    const char *method;
    int keep_alive;
    int is_head;
    int http_minor;
    const char *extra_headers; /* "Name: value\r\n"..., may be NULL */
    size_t extra_len;
} tf__req_view_t;
void tf__req_view(tf_http_req_t *req, tf__req_view_t *out);
tf__http_conn_t *tf__req_conn(const tf_http_req_t *req);
tf__http_loop_t *tf__req_loop_of(const tf_http_req_t *req);
/* Picks the request id (the client's X-Request-Id when sane, else a new
 * UUIDv7) if none was chosen yet. */
void tf__req_ensure_id(tf_http_req_t *req);

/* ---- response.c ---- */

/* Looks up (creating once per loop) the metric children for a response. */
void tf__http_metrics_observe(tf__http_loop_t *loop, const char *route, const char *method,
                              int status, double seconds);
void tf__http_metrics_free(tf__http_loop_t *loop);
void tf__http_count_reject(tf_http_server_t *server, tf__http_reject_t reason);
/* Current Unix time in milliseconds (wall clock). */
uint64_t tf__http_unix_ms(void);

/* ---- conn.c ---- */

/* Accepts one connection from `listener` (the loop's connection callback). */
void tf__conn_on_connection(uv_stream_t *listener, int status);
/* Queues a complete response.  Takes ownership of `data` (malloc'd), even on
 * failure.  `close` ends the connection after it. */
void tf__conn_send(tf__http_conn_t *conn, char *data, size_t len, int close);
/* Continues with pipelined input after a response was queued. */
void tf__conn_resume(tf__http_conn_t *conn);
/* 1 when the client closed its side (or the connection is gone). */
int tf__conn_peer_gone(const tf__http_conn_t *conn);
/* True when the next response on `conn` must carry Connection: close. */
int tf__conn_closing_soon(const tf__http_conn_t *conn);
/* Starts a graceful stop of one connection (server shutdown): idle ones are
 * closed now, busy ones after their current response. */
void tf__conn_stop(tf__http_conn_t *conn);
/* Closes at once; a request still being handled is detached. */
void tf__conn_force_close(tf__http_conn_t *conn);
/* The next connection in the loop's list (for walking it while closing). */
tf__http_conn_t *tf__conn_next(const tf__http_conn_t *conn);

/* ---- server.c ---- */

/* Called by conn.c after a connection's handles are closed. */
void tf__loop_conn_closed(tf__http_loop_t *loop);

#endif
