/*
 * client_internal.h - what client.c (the loop side: curl's multi handle,
 * uv_poll per socket, the timer, delivery of results) and call.c (one
 * call: validation, the easy handle, the body cap, the address guard,
 * error mapping) share.  Not a public header.
 *
 * A call is in exactly one place: the client's `running` list while its
 * easy handle is in the multi handle, the `done` queue once its result is
 * fixed and waits for delivery, or neither while its `done` callback runs.
 * Loop thread only.
 */
#ifndef TF_ADAPTERS_HTTPCLIENT_CLIENT_INTERNAL_H
#define TF_ADAPTERS_HTTPCLIENT_CLIENT_INTERNAL_H

#include <curl/curl.h>

#include "adapters/httpclient/client.h"

#define TF__HTTP_DEFAULT_MAX_RESPONSE_BYTES ((size_t)1 << 20)

typedef enum {
    TF__HTTP_CALL_RUNNING = 1, /* easy handle in the multi handle */
    TF__HTTP_CALL_QUEUED,      /* result fixed, waiting for delivery */
    TF__HTTP_CALL_DELIVERING,  /* `done` is running */
} tf__http_call_state_t;

struct tf_http_call {
    tf_http_client_t *client;
    tf_http_call_t *prev; /* in `running` only */
    tf_http_call_t *next; /* in `running` or the done queue */
    tf__http_call_state_t state;
    CURL *easy; /* NULL once the transfer is over (or never began) */
    struct curl_slist *headers;
    tf_http_done_fn done;
    void *done_arg;
    uint64_t started_ns; /* uv_hrtime() at start */
    size_t max_body;
    char *body; /* what was kept of the response body, NUL-terminated */
    size_t body_len;
    size_t body_cap;
    int truncated;     /* bytes beyond max_body arrived and the transfer was cut */
    int keep_headers;
    char *head;        /* response header lines kept (keep_headers) */
    size_t head_len, head_cap;
    int out_of_memory; /* the body buffer could not grow */
    int blocked;       /* the address guard refused an address */
    int allow_loopback;
    int allow_private;
    char message[160]; /* why the guard refused, or other fixed messages */
    char errbuf[CURL_ERROR_SIZE];
    tf_http_result_t result;
};

/* Validates `req`, copies it into a new call and, unless the URL names a
 * literal address the guard refuses (then `easy` is NULL, `blocked` is set
 * and `result` says "blocked_address"), an easy handle ready for the multi
 * handle, obeying `cfg` (max_response_bytes already defaulted).  Returns 0,
 * TF_EINVAL or TF_ENOMEM.  Caller owns *out; free with
 * tf__http_call_destroy(). */
int tf__http_call_create(tf_http_client_t *client, const tf_http_client_config_t *cfg,
                         const tf_http_request_t *req, tf_http_call_t **out);

/* Fixes the result of a transfer that curl finished with `code` (the easy
 * handle is already out of the multi handle) and frees the easy handle. */
void tf__http_call_complete(tf_http_call_t *call, CURLcode code);

/* Fixes the result as "aborted" with `message` (static), dropping whatever
 * response arrived; frees the easy handle if it is still there (it must be
 * out of the multi handle). */
void tf__http_call_abort(tf_http_call_t *call, const char *message);

/* Frees the call and everything it owns. */
void tf__http_call_destroy(tf_http_call_t *call);

#endif
