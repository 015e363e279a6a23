/*
 * http_executor.h - the built-in `http` executor's two pure halves: the
 * request for a claimed job, and the attempt's outcome from the response.
 * The runner (runner.h) does the I/O in between with tf_http_client.
 *
 * Request: body = the job's payload (JSON text, sent as stored), method and
 * URL from the executor (method POST by default), total deadline = the job's
 * timeout_ms, headers
 *   Content-Type: application/json          (the executor may replace it)
 *   TaskFlow-Job-Id: <job id>
 *   TaskFlow-Attempt: <attempt number, 1-based>
 *   TaskFlow-Correlation-Id: <id>           (when the job has one)
 *   TaskFlow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 * and then the executor's own headers, except the TaskFlow-* ones above,
 * Content-Length and Transfer-Encoding, which it may not set.  The secret is
 * the tenant's signing secret (tenants.signing_secret), the same key and
 * scheme as inbound webhooks, so an endpoint verifies calls the same way.
 *
 * Outcome:
 *   2xx            succeeded; result = the body when it is JSON, else the
 *                  body as a JSON string; null when the body is empty.  A
 *                  body cut at the client's max_response_bytes becomes
 *                  {"truncated": true, "body": "<the part kept, as text>"}.
 *                  Text is made valid UTF-8 first (a byte that is not part of
 *                  a well-formed sequence, or NUL, becomes U+FFFD).
 *   408, 429, 5xx  failed, retryable, error type "http_<status>"
 *   other status   failed, not retryable, "http_<status>" (redirects are not
 *                  followed: a 3xx is a configuration error)
 *   no response    the client's error type: "timeout", "connect_refused",
 *                  "dns", "tls", "connection", "aborted" (retryable) or
 *                  "blocked_address" (not retryable)
 * The message of an HTTP status error is "endpoint answered HTTP <status>"
 * followed by the first 200 bytes of the body.
 * Pure functions; any thread.
 */
#ifndef TF_ADAPTERS_WORKER_HTTP_EXECUTOR_H
#define TF_ADAPTERS_WORKER_HTTP_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "adapters/httpclient/client.h"

#define TF_HTTP_EXEC_DEFAULT_TIMEOUT_MS 300000
#define TF_HTTP_EXEC_SIGNATURE_LEN 96 /* "t=<20 digits>,v1=<64 hex>" and NUL */

/* What the request needs of a claimed job; every pointer is borrowed. */
typedef struct {
    const char *job_id;
    int attempt;
    const char *payload;            /* JSON text; NULL: "{}" */
    const char *correlation_id;     /* NULL: none */
    const char *signing_secret_hex; /* hex of the tenant's key */
    long timeout_ms;                /* <= 0: the default */
    const json_t *executor;         /* {"kind":"http","url","method","headers"} */
    int64_t now_s;                  /* Unix seconds of the signature */
} tf_http_job_t;

/* A request ready for tf_http_client_start(); `req` points into `lines`
 * and into the job's strings (valid as long as those are). */
typedef struct {
    tf_http_request_t req;
    char **lines;
    size_t nlines;
} tf_http_exec_req_t;

/* The outcome of an attempt, as tf_work_ack takes it.  Strings are owned;
 * free with tf_http_exec_outcome_free(). */
typedef struct {
    int ok;
    int retryable;
    char *result_json; /* ok: JSON text, NULL for null */
    char *error_type;  /* !ok */
    char *error_message;
} tf_http_exec_outcome_t;

/* Builds the request of `job`.  Returns 0; TF_EINVAL when the signing
 * secret is missing or not hex; TF_ENOMEM.  On success release with
 * tf_http_exec_request_free(); on failure nothing is left to free. */
int tf_http_exec_request(const tf_http_job_t *job, tf_http_exec_req_t *out);
void tf_http_exec_request_free(tf_http_exec_req_t *r);

/* The outcome of a finished call.  Returns 0 or TF_ENOMEM (nothing to free
 * then). */
int tf_http_exec_outcome(const tf_http_result_t *res, tf_http_exec_outcome_t *out);

/* A failed outcome with `type` and `message` (NULL: the type), both copied.
 * Returns 0 or TF_ENOMEM (nothing to free then). */
int tf_http_exec_fail(tf_http_exec_outcome_t *out, const char *type, const char *message,
                      int retryable);

void tf_http_exec_outcome_free(tf_http_exec_outcome_t *o);

/* The TaskFlow-Signature value for `body` at Unix time `t` into `out`
 * (TF_HTTP_EXEC_SIGNATURE_LEN bytes).  Returns 0, TF_EINVAL (secret not
 * hex, empty or over 256 bytes) or TF_ENOMEM. */
int tf_http_exec_sign(const char *secret_hex, int64_t t, const char *body, size_t body_len,
                      char out[TF_HTTP_EXEC_SIGNATURE_LEN]);

/* `n` bytes of `s` as valid UTF-8 without NUL (see above).  Caller frees
 * the result (NUL-terminated, length in *out_len); NULL when out of
 * memory. */
char *tf_http_exec_utf8(const char *s, size_t n, size_t *out_len);

#endif
