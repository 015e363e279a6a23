/*
 * health.c - the public routes: /healthz, /readyz, /metrics and the
 * OpenAPI document.
 *
 * /readyz pings the store of the request's loop: 503 at once when it has
 * no live connection, otherwise 200 or 503 by the answer.  So readiness
 * follows PostgreSQL going away and coming back without a restart.  The
 * OpenAPI document (docs/openapi.json) is compiled in.
 */
#include <stdlib.h>

#include "adapters/api/routes.h"
#include "engine/error.h"

/* docs/openapi.json, embedded by cmake/EmbedFile.cmake. */
extern const char tf_openapi_json[];
extern const size_t tf_openapi_json_len;

static const char JSON_TYPE[] = "application/json";

static void healthz(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)lp;
    (void)who;
    static const char body[] = "{\"status\":\"ok\"}";
    tf_http_respond(req, 200, JSON_TYPE, body, sizeof(body) - 1);
}

static void pinged(void *arg, int status) {
    tf_http_req_t *req = arg;
    if (status == 0) {
        static const char body[] = "{\"status\":\"ready\"}";
        tf_http_respond(req, 200, JSON_TYPE, body, sizeof(body) - 1);
        return;
    }
    tf_http_respond_error(req, 503, "unavailable", "PostgreSQL is not answering", NULL);
}

static void readyz(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    if (lp == NULL) {
        tf_http_respond_error(req, 503, "unavailable", "PostgreSQL is not connected", NULL);
        return;
    }
    const tf_job_store_t *store = lp->uc->store;
    int rc = store->ping(store->ctx, pinged, req);
    if (rc == TF_EUNAVAIL) {
        tf_http_respond_error(req, 503, "unavailable", "PostgreSQL is not connected", NULL);
    } else if (rc != 0) {
        tf_http_respond_error(req, 503, "unavailable", tf_strerror(rc), NULL);
    }
}

static void metrics(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)who;
    char *text = NULL;
    size_t len = 0;
    if (lp == NULL || lp->env->metrics == NULL ||
        tf_metrics_render(lp->env->metrics, &text, &len) != 0) {
        tf_http_respond_error(req, 500, "internal", "cannot render metrics", NULL);
        return;
    }
    tf_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void openapi(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    (void)lp;
    (void)who;
    tf_http_respond(req, 200, JSON_TYPE, tf_openapi_json, tf_openapi_json_len);
}

const tf_api_route_t tf_api_health_routes[] = {
    {"GET", "/healthz", TF_ROUTE_PUBLIC, healthz},
    {"GET", "/readyz", TF_ROUTE_PUBLIC, readyz},
    {"GET", "/metrics", TF_ROUTE_PUBLIC, metrics},
    {"GET", "/v1/openapi.json", TF_ROUTE_PUBLIC, openapi},
};
const size_t tf_api_health_routes_count =
    sizeof(tf_api_health_routes) / sizeof(tf_api_health_routes[0]);
