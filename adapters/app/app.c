/*
 * app.c - assembles and runs `taskflow serve`.
 *
 * Start-up and signal handling run on the main thread; every request runs on
 * one of the HTTP loop threads, each of which owns a tf_app_loop_t with its
 * own Postgres pool, key cache, UUID generator and job submitter
 * (shared-nothing).  What all loops share read-only is the tf_app_env_t.
 */
#include "adapters/app/app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "adapters/app/admin.h"
#include "adapters/app/handlers.h"
#include "adapters/app/jobs.h"
#include "adapters/app/notifier.h"
#include "adapters/app/openapi.h"
#include "adapters/app/queue_gauges.h"
#include "adapters/app/runner.h"
#include "adapters/app/work.h"
#include "adapters/app/worker_api.h"
#include "engine/error.h"

struct tf_app {
    tf_app_env_t env;
    tf_router_t *router;
    tf_http_server_t *server;
    tf_pg_prepared_t *statements;
    size_t nstatements;
};

int64_t tf_app_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every module's prepared statements, in one array for the pools. */
static int collect_statements(tf_app_t *app) {
    const struct {
        const tf_pg_prepared_t *list;
        size_t count;
    } parts[] = {
        {tf_app_prepared, tf_app_prepared_count},
        {tf_auth_prepared, tf_auth_prepared_count},
        {tf_admin_prepared, tf_admin_prepared_count},
        {tf_jobs_submit_prepared, tf_jobs_submit_prepared_count},
        {tf_jobs_read_prepared, tf_jobs_read_prepared_count},
        {tf_jobs_actions_prepared, tf_jobs_actions_prepared_count},
        {tf_work_prepared, tf_work_prepared_count},
        {tf_queue_gauges_prepared, tf_queue_gauges_prepared_count},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        total += parts[i].count;
    }
    app->statements = calloc(total, sizeof(*app->statements));
    if (app->statements == NULL) {
        return TF_ENOMEM;
    }
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        memcpy(app->statements + app->nstatements, parts[i].list,
               parts[i].count * sizeof(*parts[i].list));
        app->nstatements += parts[i].count;
    }
    return 0;
}

/* Wake-ups from LISTEN/NOTIFY: ready work goes to the long-polling claims
 * (jobs for external workers) or to the runner (built-in jobs); cancels to
 * the runner.  channel NULL: the listener reconnected, everybody polls. */
static void on_notify(const char *channel, const char *payload, void *arg) {
    tf_app_loop_t *lp = arg;
    if (channel == NULL) {
        if (lp->waiters != NULL) {
            tf_waitlist_wake(lp->waiters, NULL);
        }
        if (lp->runner != NULL) {
            tf_runner_wake(lp->runner, NULL);
        }
    } else if (strcmp(channel, TF_CHANNEL_READY) == 0) {
        const char *bar = strchr(payload, '|');
        if (bar != NULL && strcmp(bar, "|builtin") == 0) {
            if (lp->runner != NULL) {
                tf_runner_wake(lp->runner, payload);
            }
        } else if (lp->waiters != NULL) {
            tf_waitlist_wake(lp->waiters, payload);
        }
    } else if (strcmp(channel, TF_CHANNEL_CANCEL) == 0 && lp->runner != NULL) {
        tf_runner_cancelled(lp->runner, payload);
    }
}

/* The parts of a loop that run jobs and wake waiters (after the pool). */
static int loop_start_work(uv_loop_t *loop, tf_app_t *app, tf_app_loop_t *lp) {
    const tf_config_t *cfg = app->env.cfg;
    int rc = tf_notifier_create(loop, cfg->database_url, app->env.log, &lp->notifier);
    if (rc == 0 && cfg->role_api) {
        rc = tf_waitlist_create(lp, &lp->waiters);
    }
    if (rc == 0 && cfg->role_worker) {
        int threads = app->env.loop_threads > 0 ? app->env.loop_threads : 1;
        int share = (cfg->worker_concurrency + threads - 1) / threads;
        rc = tf_runner_create(loop, lp, share, &lp->runner);
    }
    if (rc == 0 && lp->index == 0) {
        rc = tf_queue_gauges_create(loop, lp, &lp->gauges);
    }
    return rc == 0 ? tf_notifier_subscribe(lp->notifier, on_notify, lp) : rc;
}

static void loop_free(void *arg) {
    tf_app_loop_t *lp = arg;
    tf_auth_cache_destroy(lp->auth.cache);
    free(lp);
}

/* Shutdown, in order: runner (finishes or releases its jobs), long polls,
 * listener, submitter, pool. */
static void stop_pool(void *arg) {
    tf_app_loop_t *lp = arg;
    tf_pg_pool_close(lp->pg, loop_free, lp);
}

static void stop_gauges(void *arg) {
    tf_app_loop_t *lp = arg;
    if (lp->gauges != NULL) {
        tf_queue_gauges_close(lp->gauges, stop_pool, lp);
    } else {
        stop_pool(lp);
    }
}

static void stop_submitter(void *arg) {
    tf_app_loop_t *lp = arg;
    if (lp->submitter != NULL) {
        tf_submitter_close(lp->submitter, stop_gauges, lp);
    } else {
        stop_gauges(lp);
    }
}

static void stop_notifier(void *arg) {
    tf_app_loop_t *lp = arg;
    lp->waiters = NULL;
    if (lp->notifier != NULL) {
        tf_notifier_close(lp->notifier, stop_submitter, lp);
    } else {
        stop_submitter(lp);
    }
}

static void stop_waiters(void *arg) {
    tf_app_loop_t *lp = arg;
    if (lp->waiters != NULL) {
        tf_waitlist_close(lp->waiters, stop_notifier, lp);
    } else {
        stop_notifier(lp);
    }
}

/* Shutdown begins: parked long polls answer now instead of holding the
 * grace period. */
static void loop_stopping(uv_loop_t *loop, void *loop_ctx, void *arg) {
    (void)loop;
    (void)arg;
    tf_app_loop_t *lp = loop_ctx;
    if (lp->waiters != NULL) {
        tf_waitlist_drain(lp->waiters);
    }
}

static void loop_stop(uv_loop_t *loop, void *loop_ctx, void *arg) {
    (void)loop;
    tf_app_t *app = arg;
    tf_app_loop_t *lp = loop_ctx;
    if (lp == NULL) {
        return;
    }
    if (lp->runner != NULL) {
        tf_runner_stop(lp->runner, app->env.cfg->shutdown_grace_ms, stop_waiters, lp);
    } else {
        stop_waiters(lp);
    }
}

static int loop_start(uv_loop_t *loop, int index, void *arg, void **loop_ctx) {
    tf_app_t *app = arg;
    tf_app_loop_t *lp = calloc(1, sizeof(*lp));
    if (lp == NULL) {
        return TF_ENOMEM;
    }
    char pool_name[32];
    snprintf(pool_name, sizeof(pool_name), "loop-%d", index);
    tf_pg_config_t pg_cfg = {
        .conninfo = app->env.cfg->database_url,
        .size = app->env.cfg->pg_pool_size,
        .pool_name = pool_name,
    };
    uint64_t seed = 0;
    int rc = RAND_bytes((unsigned char *)&seed, sizeof(seed)) == 1 ? 0 : TF_EIO;
    if (rc == 0) {
        rc = tf_auth_cache_create(&lp->auth.cache);
    }
    if (rc == 0) {
        rc = tf_pg_pool_create(loop, &pg_cfg, app->statements, app->nstatements, app->env.metrics,
                               app->env.log, &lp->pg);
    }
    if (rc == 0) {
        lp->env = &app->env;
        lp->index = index;
        lp->worker_id = app->env.worker_id;
        lp->auth.shared = &app->env.auth;
        lp->auth.pg = lp->pg;
        tf_uuid_gen_init(&lp->uuids, seed);
        rc = tf_submitter_create(loop, lp, &lp->submitter);
    }
    if (rc == 0) {
        rc = loop_start_work(loop, app, lp);
    }
    if (rc != 0) {
        /* Everything created so far is closed through the normal stop path. */
        if (lp->pg != NULL) {
            loop_stop(loop, lp, app);
        } else {
            loop_free(lp);
        }
        return rc;
    }
    *loop_ctx = lp;
    return 0;
}

int tf_app_create(const tf_config_t *cfg, tf_log_t *log, tf_metrics_t *metrics, tf_app_t **out) {
    tf_app_t *app = calloc(1, sizeof(*app));
    if (app == NULL) {
        return TF_ENOMEM;
    }
    app->env.cfg = cfg;
    app->env.log = log;
    app->env.metrics = metrics;
    app->env.loop_threads = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cfg->worker_id != NULL && cfg->worker_id[0] != '\0') {
        snprintf(app->env.worker_id, sizeof(app->env.worker_id), "%s", cfg->worker_id);
    } else {
        char host[200] = "taskflow";
        gethostname(host, sizeof(host) - 1);
        snprintf(app->env.worker_id, sizeof(app->env.worker_id), "%s-%ld", host, (long)getpid());
    }
    int rc = collect_statements(app);
    if (rc == 0) {
        rc = tf_router_create(&app->router);
    }
    if (rc == 0) {
        rc = tf_app_routes(app, app->router);
    }
    if (rc != 0) {
        tf_app_destroy(app);
        return rc;
    }
    *out = app;
    return 0;
}

void tf_app_destroy(tf_app_t *app) {
    if (app == NULL) {
        return;
    }
    tf_router_destroy(app->router);
    free(app->statements);
    free(app);
}

int tf_app_routes(tf_app_t *app, tf_router_t *router) {
    int rc = tf_handlers_register(router, app->env.metrics);
    if (rc != 0 || !app->env.cfg->role_api) {
        return rc; /* a worker-only node serves health and metrics only */
    }
    rc = tf_openapi_register(router);
    if (rc == 0) {
        rc = tf_admin_register(router, &app->env);
    }
    if (rc == 0) {
        rc = tf_jobs_register(router, &app->env);
    }
    if (rc == 0) {
        rc = tf_worker_api_register(router, &app->env);
    }
    return rc;
}

static void on_signal(uv_signal_t *sig, int signum) {
    tf_app_t *app = sig->data;
    tf_log_info(app->env.log, "shutting down",
                TF_LF_STR("signal", signum == SIGINT ? "SIGINT" : "SIGTERM"));
    tf_http_server_stop(app->server);
    uv_stop(sig->loop);
}

static int wait_for_signal(tf_app_t *app) {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    if (uv_loop_init(&loop) != 0) {
        return TF_EIO;
    }
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sigterm);
    sigint.data = sigterm.data = app;
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}

static void http_config(const tf_app_t *app, tf_http_config_t *http) {
    const tf_config_t *cfg = app->env.cfg;
    *http = (tf_http_config_t){
        .host = cfg->host,
        .port = cfg->port,
        .threads = cfg->threads,
        .max_header_bytes = (size_t)cfg->max_header_bytes,
        .max_body_bytes = (size_t)cfg->max_body_bytes,
        .header_timeout_ms = cfg->header_timeout_ms,
        .body_timeout_ms = cfg->body_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_connections = cfg->max_connections,
        .shutdown_grace_ms = cfg->shutdown_grace_ms,
        .loop_start = loop_start,
        .loop_stop = loop_stop,
        .loop_stopping = loop_stopping,
    };
}

int tf_app_run(tf_app_t *app) {
    const tf_config_t *cfg = app->env.cfg;
    signal(SIGPIPE, SIG_IGN);
    int rc = tf_bootstrap_secrets(cfg->database_url, cfg->admin_token, &app->env.auth,
                                  app->env.cursor_key, stderr, app->env.log);
    if (rc != 0) {
        return rc;
    }
    tf_http_config_t http_cfg;
    http_config(app, &http_cfg);
    http_cfg.app = app;
    rc = tf_http_server_start(&http_cfg, app->router, app->env.metrics, app->env.log, &app->server);
    if (rc != 0) {
        tf_log_error(app->env.log, "cannot start HTTP server", TF_LF_STR("host", cfg->host),
                     TF_LF_INT("port", cfg->port), TF_LF_STR("error", tf_strerror(rc)));
        return rc;
    }
    char url[300];
    snprintf(url, sizeof(url), "http://%s:%d", cfg->host, tf_http_server_port(app->server));
    tf_log_info(app->env.log, "listening", TF_LF_STR("url", url));
    rc = wait_for_signal(app);
    tf_http_server_destroy(app->server);
    app->server = NULL;
    tf_log_info(app->env.log, "stopped", TF_LF_STR("url", url));
    return rc;
}
