/*
 * app.h - the TaskFlow application: composes configuration, logs, metrics,
 * the Postgres pools and the HTTP server into a running `serve`.
 *
 * tf_app_create() builds the router and everything shared; tf_app_run()
 * starts the HTTP loops (each with its own Postgres pool, created on its own
 * thread), then waits on the calling thread for SIGINT or SIGTERM and shuts
 * down gracefully.  The app is the only owner of the shared pieces; loops see
 * them read-only (metrics and logs are thread-safe).
 */
#ifndef TF_ADAPTERS_APP_APP_H
#define TF_ADAPTERS_APP_APP_H

#include <stdint.h>

#include "adapters/app/auth.h"
#include "adapters/app/bootstrap.h"
#include "adapters/config/config.h"
#include "adapters/http/server.h"
#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "adapters/pg/pool.h"
#include "engine/uuid.h"

typedef struct tf_app tf_app_t;
typedef struct tf_submitter tf_submitter_t;
typedef struct tf_notifier tf_notifier_t;
typedef struct tf_runner tf_runner_t;
typedef struct tf_waitlist tf_waitlist_t;
typedef struct tf_queue_gauges tf_queue_gauges_t;

/* What every loop reads and never changes after start-up (the atomic
 * key generation aside). */
typedef struct {
    const tf_config_t *cfg;
    tf_log_t *log;
    tf_metrics_t *metrics;
    tf_auth_shared_t auth;
    uint8_t cursor_key[TF_CURSOR_KEY_LEN];
    char worker_id[256]; /* --worker-id, or "<hostname>-<pid>" */
    int loop_threads;    /* event-loop threads actually started */
} tf_app_env_t;

/* State of one loop thread, reachable from its requests through
 * tf_http_req_loop_ctx().  Owned and used by that thread only. */
typedef struct {
    const tf_app_env_t *env;
    int index;
    tf_pg_pool_t *pg;
    tf_auth_ctx_t auth;
    tf_uuid_gen_t uuids;
    tf_submitter_t *submitter;
    tf_notifier_t *notifier;   /* LISTEN/NOTIFY wake-ups */
    tf_waitlist_t *waiters;    /* long-polling claims (api role) */
    tf_runner_t *runner;       /* built-in executors and maintenance (worker role) */
    tf_queue_gauges_t *gauges; /* queue and table gauges (loop 0 only) */
    const char *worker_id;     /* this node's name (env) */
} tf_app_loop_t;

/* Current Unix time in milliseconds (the wall clock the app gives the
 * engine). */
int64_t tf_app_now_ms(void);

/* Builds the app from a loaded configuration (not copied: `cfg`, `log` and
 * `metrics` must outlive the app).  Caller owns the result; free with
 * tf_app_destroy(). */
int tf_app_create(const tf_config_t *cfg, tf_log_t *log, tf_metrics_t *metrics, tf_app_t **out);
void tf_app_destroy(tf_app_t *app);

/* Serves until SIGINT/SIGTERM, then stops gracefully.  Returns 0 on a clean
 * stop or a TF_E* code when the server could not start. */
int tf_app_run(tf_app_t *app);

/* Registers the app's routes on `router` (exposed for tests). */
int tf_app_routes(tf_app_t *app, tf_router_t *router);

#endif
