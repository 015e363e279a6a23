/*
 * handlers.c - /healthz, /readyz and /metrics.
 *
 * /readyz asks the loop's own Postgres pool for `SELECT 1`: 503 at once when
 * the pool has no live connection, otherwise 200 or 503 by the answer.  So
 * readiness follows Postgres going away and coming back without a restart.
 */
#include "adapters/app/handlers.h"

#include <stdlib.h>
#include <string.h>

#include "adapters/app/app.h"
#include "engine/error.h"

const tf_pg_prepared_t tf_app_prepared[] = {
    {"ready_ping", "SELECT 1"},
};
const size_t tf_app_prepared_count = sizeof(tf_app_prepared) / sizeof(tf_app_prepared[0]);

static const char JSON_TYPE[] = "application/json";

static void handle_healthz(tf_http_req_t *req, void *data) {
    (void)data;
    static const char body[] = "{\"status\":\"ok\"}";
    tf_http_respond(req, 200, JSON_TYPE, body, sizeof(body) - 1);
}

static void ready_reply(const tf_pg_reply_t *reply, void *arg) {
    tf_http_req_t *req = arg;
    if (reply->status == 0) {
        static const char body[] = "{\"status\":\"ready\"}";
        tf_http_respond(req, 200, JSON_TYPE, body, sizeof(body) - 1);
        return;
    }
    tf_http_respond_error(req, 503, "unavailable", "PostgreSQL is not answering", NULL);
}

static void handle_readyz(tf_http_req_t *req, void *data) {
    (void)data;
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    if (lp == NULL || lp->pg == NULL || !tf_pg_pool_connected(lp->pg)) {
        tf_http_respond_error(req, 503, "unavailable", "PostgreSQL is not connected", NULL);
        return;
    }
    tf_pg_stmt_t ping = {.prepared = "ready_ping"};
    int rc = tf_pg_submit(lp->pg, &ping, 1, 0, ready_reply, req);
    if (rc != 0) {
        tf_http_respond_error(req, 503, "unavailable", tf_strerror(rc), NULL);
    }
}

static void handle_metrics(tf_http_req_t *req, void *data) {
    tf_metrics_t *metrics = data;
    char *text = NULL;
    size_t len = 0;
    if (tf_metrics_render(metrics, &text, &len) != 0) {
        tf_http_respond_error(req, 500, "internal", "cannot render metrics", NULL);
        return;
    }
    tf_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

int tf_handlers_register(tf_router_t *router, tf_metrics_t *metrics) {
    int rc = tf_router_add(router, "GET", "/healthz", handle_healthz, NULL);
    if (rc == 0) {
        rc = tf_router_add(router, "GET", "/readyz", handle_readyz, NULL);
    }
    if (rc == 0) {
        rc = tf_router_add(router, "GET", "/metrics", handle_metrics, metrics);
    }
    return rc;
}
