/*
 * api.h - the HTTP API room: what every handler shares.
 *
 * A handler parses the request, authenticates it, calls a use case
 * (adapters/usecases) and writes the answer; it never sees SQL.  Routes are
 * declared in tables that also say who may call them (the auth level), and
 * tf_api_add_routes() puts them on the router with one dispatcher that
 * authenticates before the handler runs.
 *
 * Each loop thread has a tf_api_loop_t (its use cases, its key cache, its
 * submitter and long-poll waitlist); handlers reach it with tf_api_loop().
 * What every loop shares read-only is the tf_api_env_t.
 * Loop thread of the request.
 */
#ifndef TF_ADAPTERS_API_API_H
#define TF_ADAPTERS_API_API_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "adapters/api/auth.h"
#include "adapters/http/server.h"
#include "adapters/json/jbuf.h"
#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "adapters/usecases/submit.h"
#include "adapters/usecases/usecases.h"

#define TF_CURSOR_KEY_LEN 32

typedef struct tf_waitlist tf_waitlist_t;

/* Shared by every loop; never changed after start-up (the atomic key
 * generation in `auth` aside). */
typedef struct {
    tf_log_t *log;
    tf_metrics_t *metrics; /* may be NULL */
    tf_auth_shared_t auth;
    uint8_t cursor_key[TF_CURSOR_KEY_LEN];
    const tf_clock_t *clock; /* the process's clock; set_ms only for --clock=test */
} tf_api_env_t;

/* One loop's API state.  The server's loop context must point at it (the
 * composition root puts it first in its own loop struct). */
typedef struct {
    const tf_api_env_t *env;
    tf_uc_t *uc; /* this loop's use cases */
    tf_auth_cache_t *auth_cache;
    tf_submitter_t *submitter; /* group commit of single submissions */
    tf_waitlist_t *waiters;    /* long-polling claims; NULL: claims answer at once */
} tf_api_loop_t;

/* The API state of the request's loop. */
static inline tf_api_loop_t *tf_api_loop(const tf_http_req_t *req) {
    return tf_http_req_loop_ctx(req);
}

/* ---- routes ---- */

typedef enum {
    TF_ROUTE_PUBLIC = 0, /* no credentials (health, metrics, the OpenAPI document) */
    TF_ROUTE_ADMIN,      /* the operator's admin token */
    TF_ROUTE_TENANT,     /* a tenant key, or the admin token with TaskFlow-Tenant */
    TF_ROUTE_ANY_TENANT, /* as TENANT, and the admin token without TaskFlow-Tenant acts for
                            every tenant (the external-worker API) */
} tf_route_auth_t;

/* `who` is NULL on public routes. */
typedef void (*tf_api_handler_fn)(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);

typedef struct {
    const char *method;
    const char *pattern;
    tf_route_auth_t auth;
    tf_api_handler_fn run;
} tf_api_route_t;

/* Adds `n` routes of a constant table (it must outlive the router). */
int tf_api_add_routes(tf_router_t *router, const tf_api_route_t *routes, size_t n);

/* Every route of the API.  A worker-only node serves the public routes
 * only (`api` 0). */
int tf_api_register(tf_router_t *router, int api);

/* Registers the API's metric families on `metrics` (may be NULL), so they
 * are listed before their first use. */
int tf_api_init_metrics(tf_metrics_t *metrics);

/* ---- requests ---- */

/* Parses the request body as JSON.  An empty body gives NULL when
 * `required` is 0.  On a problem answers the request (415 when the
 * Content-Type is not application/json, 400 invalid_json with the position,
 * 422 when the top level is not an object) and returns NULL with
 * *answered = 1.  Caller owns the result (json_decref()). */
json_t *tf_api_body(tf_http_req_t *req, int required, int *answered);

/* The required JSON object body; NULL after answering (with 422 and
 * `what` when the body is empty). */
json_t *tf_api_object_body(tf_http_req_t *req, const char *what);

/* Reads ?limit= (default 50, 1..1000).  Answers 422 and returns -1 when
 * malformed. */
int tf_api_limit(tf_http_req_t *req);

/* The path parameter `name` as a canonical UUID in `out`; answers 404 with
 * `missing` ("no such job") and returns -1 when it is not one: a string that
 * is not an id names nothing that exists. */
int tf_api_path_id(tf_http_req_t *req, const char *name, const char *missing, char out[TF_ID_LEN]);

/* The body of a script upload: Lua source as text/x-lua (or text/plain).
 * Answers 415 naming `what` ("executor", "rule") and returns -1 for any
 * other content type. */
int tf_api_lua_body(tf_http_req_t *req, const char *what, const char **body, size_t *len);

/* ---- answers ---- */

/* Answers `status` with the JSON text in `b` (which is consumed). */
void tf_api_respond_jbuf(tf_http_req_t *req, int status, tf_jbuf_t *b);

/* Answers `status` with `b`, or 500 when `rc` says a value could not be
 * written (then `b` is freed). */
void tf_api_respond_built(tf_http_req_t *req, int status, tf_jbuf_t *b, int rc);

/* Answers 422 validation_failed with details {"field": field}. */
void tf_api_invalid(tf_http_req_t *req, const char *field, const char *message);

/* Answers the failure of a use case: 503 when the database is unavailable
 * or busy (TF_EUNAVAIL, TF_EAGAIN, TF_ESHUTDOWN, TF_ETIMEDOUT), 409 for
 * TF_ECONFLICT, else 500, logged with the route and request id. */
void tf_api_respond_status(tf_http_req_t *req, int status);

/* Answers an upload use case's refusal `rc` (nothing when 0): 422 on
 * `field` or 413 with `why`, else as tf_api_respond_status. */
void tf_api_upload_refused(tf_http_req_t *req, int rc, const char *field, const char *why);

/* Writes `ms` as an RFC 3339 string, or null for TF_TIME_NONE.  Returns 0
 * or TF_EIO when the time cannot be shown. */
int tf_api_time(tf_jbuf_t *b, int64_t ms);

#endif
