/*
 * client.h - outbound HTTP for one libuv loop: libcurl's multi interface
 * driven by the loop (curl's sockets watched with uv_poll, its timer with a
 * uv_timer), so calls never block the loop.
 *
 * Used by the built-in `http` executor.  Every call has a total deadline
 * (timeout_ms) after which it is aborted, a cap on the response body kept
 * (the transfer stops at the cap, the result keeps the first
 * max_response_bytes and says it was truncated), and a guard
 * against server-side request forgery: the address curl is about to connect
 * to (after DNS) is refused when it is loopback, private (RFC 1918, unique
 * local fc00::/7), link-local (169.254/16, fe80::/10), unspecified or
 * multicast, unless the client was created allowing loopback and/or private
 * addresses (addrguard.h lists every range).  Only http and https URLs
 * are followed; redirects are not.
 * Loop thread only.
 */
#ifndef TF_ADAPTERS_HTTPCLIENT_CLIENT_H
#define TF_ADAPTERS_HTTPCLIENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define TF_HTTP_MAX_HEADER_BYTES ((size_t)64 << 10)

typedef struct tf_http_client tf_http_client_t;
typedef struct tf_http_call tf_http_call_t;

typedef struct {
    int allow_loopback;        /* 127.0.0.0/8, ::1 */
    int allow_private;         /* RFC 1918, fc00::/7, link-local */
    size_t max_response_bytes; /* 0: the default, 1 MiB */
} tf_http_client_config_t;

typedef struct {
    const char *method; /* GET, POST, PUT, PATCH, DELETE */
    const char *url;
    const char *const *headers; /* "Name: value" lines */
    size_t nheaders;
    const char *body;
    size_t body_len;
    int timeout_ms; /* whole call, connect included */
    int keep_headers; /* keep the response's header lines (result.headers) */
} tf_http_request_t;

typedef struct {
    long status;            /* HTTP status, 0 when no response arrived */
    const char *error_type; /* NULL when a response arrived; else "timeout",
                               "connect_refused", "dns", "blocked_address",
                               "tls", "connection", "aborted" */
    const char *error_message;
    const char *body; /* response body (NUL-terminated), may be empty */
    size_t body_len;
    int truncated; /* the body was longer than max_response_bytes */
    /* With keep_headers: the final response's header lines, each
     * "Name: value\r\n" as received (at most TF_HTTP_MAX_HEADER_BYTES;
     * lines beyond are dropped), NUL-terminated; else "". */
    const char *headers;
    size_t headers_len;
    uint64_t duration_ms;
} tf_http_result_t;

/* Called exactly once per started call, on the loop, never from inside
 * tf_http_client_start(); everything in `result` is valid during the call. */
typedef void (*tf_http_done_fn)(const tf_http_result_t *result, void *arg);

/* Creates a client on `loop`; `cfg` may be NULL (nothing internal allowed,
 * default cap).  Returns 0, TF_EINVAL, TF_ENOMEM or TF_EIO (curl could not
 * be initialised).  Caller owns the result; release with
 * tf_http_client_close(). */
int tf_http_client_create(uv_loop_t *loop, const tf_http_client_config_t *cfg,
                          tf_http_client_t **out);

/* Starts a call; everything in `req` is copied.  *call (may be NULL) gets a
 * handle for tf_http_client_abort(), valid until `done` runs.  Returns 0,
 * TF_EINVAL (bad method or URL, a header line that is not "Name: value" or
 * holds CR/LF, timeout_ms <= 0), TF_ENOMEM, or TF_ESHUTDOWN once
 * tf_http_client_close() was called; on error `done` never runs. */
int tf_http_client_start(tf_http_client_t *c, const tf_http_request_t *req, tf_http_done_fn done,
                         void *arg, tf_http_call_t **call);

/* Aborts a call in flight; its `done` runs (soon, on the loop) with
 * error_type "aborted", even when the call had just finished otherwise. */
void tf_http_client_abort(tf_http_client_t *c, tf_http_call_t *call);

/* Aborts every call (each gets "aborted"), closes handles, then calls
 * `closed_cb` (may be NULL) and frees the client. */
void tf_http_client_close(tf_http_client_t *c, void (*closed_cb)(void *arg), void *arg);

#endif
