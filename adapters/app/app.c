/*
 * app.c - assembles and runs `taskflow serve`.
 *
 * Start-up and signal handling run on the main thread; every request runs on
 * one of the HTTP loop threads, each of which owns a tf_app_loop_t with its
 * own Postgres pool (shared-nothing).  What all loops share read-only is the
 * tf_app_env_t.
 */
#include "adapters/app/app.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapters/app/handlers.h"
#include "engine/error.h"

typedef struct {
    const tf_config_t *cfg;
    tf_log_t *log;
    tf_metrics_t *metrics;
} tf_app_env_t;

struct tf_app {
    tf_app_env_t env;
    tf_router_t *router;
    tf_http_server_t *server;
};

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
    int rc = tf_pg_pool_create(loop, &pg_cfg, tf_app_prepared, tf_app_prepared_count,
                               app->env.metrics, app->env.log, &lp->pg);
    if (rc != 0) {
        free(lp);
        return rc;
    }
    lp->app = app;
    lp->index = index;
    *loop_ctx = lp;
    return 0;
}

static void loop_stop(uv_loop_t *loop, void *loop_ctx, void *arg) {
    (void)loop;
    (void)arg;
    tf_app_loop_t *lp = loop_ctx;
    if (lp != NULL) {
        tf_pg_pool_close(lp->pg, free, lp);
    }
}

int tf_app_create(const tf_config_t *cfg, tf_log_t *log, tf_metrics_t *metrics, tf_app_t **out) {
    tf_app_t *app = calloc(1, sizeof(*app));
    if (app == NULL) {
        return TF_ENOMEM;
    }
    app->env.cfg = cfg;
    app->env.log = log;
    app->env.metrics = metrics;
    int rc = tf_router_create(&app->router);
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
    free(app);
}

int tf_app_routes(tf_app_t *app, tf_router_t *router) {
    return tf_handlers_register(router, app->env.metrics);
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
    };
}

int tf_app_run(tf_app_t *app) {
    const tf_config_t *cfg = app->env.cfg;
    signal(SIGPIPE, SIG_IGN);
    tf_http_config_t http_cfg;
    http_config(app, &http_cfg);
    http_cfg.app = app;
    int rc =
        tf_http_server_start(&http_cfg, app->router, app->env.metrics, app->env.log, &app->server);
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
