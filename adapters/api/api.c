/*
 * api.c - route tables, the authenticating dispatcher, and the request and
 * answer helpers every handler shares (see api.h).
 */
#include "adapters/api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/api/routes.h"
#include "engine/error.h"
#include "engine/timefmt.h"

static const char JSON_TYPE[] = "application/json";

/* ---- routes ---- */

static void authenticated(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    const tf_api_route_t *route = arg;
    route->run(req, tf_api_loop(req), who);
}

static void dispatch(tf_http_req_t *req, void *data) {
    const tf_api_route_t *route = data;
    tf_api_loop_t *lp = tf_api_loop(req);
    if (route->auth == TF_ROUTE_PUBLIC) {
        route->run(req, lp, NULL);
        return;
    }
    if (lp == NULL) {
        tf_http_respond_error(req, 503, "unavailable", "the server is not ready", NULL);
        return;
    }
    static const tf_auth_mode_t modes[] = {
        [TF_ROUTE_ADMIN] = TF_AUTH_ADMIN,
        [TF_ROUTE_TENANT] = TF_AUTH_TENANT,
        [TF_ROUTE_ANY_TENANT] = TF_AUTH_TENANT_OR_ADMIN,
    };
    tf_auth_ctx_t ctx = {
        .shared = &lp->env->auth, .cache = lp->auth_cache, .tenants = lp->uc->tenants};
    tf_auth_request(&ctx, req, modes[route->auth], authenticated, (void *)route);
}

int tf_api_add_routes(tf_router_t *router, const tf_api_route_t *routes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        /* The table is constant; the router hands the pointer back as is. */
        int rc = tf_router_add(router, routes[i].method, routes[i].pattern, dispatch,
                               (void *)&routes[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int tf_api_register(tf_router_t *router, int api) {
    const struct {
        const tf_api_route_t *routes;
        const size_t *count;
        int wanted;
    } tables[] = {
        {tf_api_health_routes, &tf_api_health_routes_count, 1},
        {tf_api_admin_routes, &tf_api_admin_routes_count, api},
        {tf_api_jobs_routes, &tf_api_jobs_routes_count, api},
        {tf_api_worker_routes, &tf_api_worker_routes_count, api},
        {tf_api_clock_routes, &tf_api_clock_routes_count, api},
        {tf_api_executor_routes, &tf_api_executor_routes_count, api},
        {tf_api_rule_routes, &tf_api_rule_routes_count, api},
    };
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        int rc =
            tables[i].wanted ? tf_api_add_routes(router, tables[i].routes, *tables[i].count) : 0;
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- requests ---- */

static int is_json_type(const char *ct) {
    if (ct == NULL) {
        return 0;
    }
    while (*ct == ' ') {
        ct++;
    }
    size_t n = strlen(JSON_TYPE);
    return strncasecmp(ct, JSON_TYPE, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

json_t *tf_api_body(tf_http_req_t *req, int required, int *answered) {
    size_t len = 0;
    const char *body = tf_http_req_body(req, &len);
    *answered = 0;
    if (len == 0 && !required) {
        return NULL;
    }
    if (!is_json_type(tf_http_req_header(req, "Content-Type"))) {
        tf_http_respond_error(req, 415, "unsupported_media_type",
                              "the body must be JSON with Content-Type: application/json", NULL);
        *answered = 1;
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(body != NULL ? body : "", len, JSON_DECODE_ANY, &err);
    if (v == NULL) {
        char msg[256], details[96];
        snprintf(msg, sizeof(msg), "malformed JSON: %s", err.text);
        snprintf(details, sizeof(details), "{\"line\":%d,\"column\":%d,\"position\":%d}", err.line,
                 err.column, err.position);
        tf_http_respond_error(req, 400, "invalid_json", msg, details);
        *answered = 1;
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        tf_api_invalid(req, "body", "the body must be a JSON object");
        *answered = 1;
        return NULL;
    }
    return v;
}

json_t *tf_api_object_body(tf_http_req_t *req, const char *what) {
    int answered = 0;
    json_t *body = tf_api_body(req, 1, &answered);
    if (body == NULL && !answered) {
        tf_api_invalid(req, "body", what);
    }
    return body;
}

int tf_api_limit(tf_http_req_t *req) {
    const char *text = tf_http_req_query(req, "limit");
    if (text == NULL) {
        return 50;
    }
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < 1 || v > 1000) {
        tf_api_invalid(req, "limit", "limit must be an integer from 1 to 1000");
        return -1;
    }
    return (int)v;
}

int tf_api_path_id(tf_http_req_t *req, const char *name, const char *missing, char out[TF_ID_LEN]) {
    tf_uuid_t id;
    const char *text = tf_http_req_param(req, name);
    if (text == NULL || tf_uuid_parse(text, &id) != 0) {
        tf_http_respond_error(req, 404, "not_found", missing, NULL);
        return -1;
    }
    tf_uuid_format(&id, out);
    return 0;
}

int tf_api_lua_body(tf_http_req_t *req, const char *what, const char **body, size_t *len) {
    const char *ct = tf_http_req_header(req, "content-type");
    size_t n = ct != NULL ? strcspn(ct, "; ") : 0;
    if (n != 10 || (strncmp(ct, "text/x-lua", n) != 0 && strncmp(ct, "text/plain", n) != 0)) {
        char message[80];
        snprintf(message, sizeof(message), "send the %s's Lua source as text/x-lua", what);
        tf_http_respond_error(req, 415, "unsupported_media_type", message, NULL);
        return -1;
    }
    *len = 0;
    *body = tf_http_req_body(req, len);
    if (*body == NULL) {
        *body = "";
        *len = 0;
    }
    return 0;
}

/* ---- answers ---- */

void tf_api_respond_jbuf(tf_http_req_t *req, int status, tf_jbuf_t *b) {
    char *text = NULL;
    size_t len = 0;
    if (tf_jbuf_finish(b, &text, &len) != 0) {
        tf_http_respond_error(req, 500, "internal", "cannot build the response", NULL);
        return;
    }
    tf_http_respond(req, status, JSON_TYPE, text, len);
    free(text);
}

void tf_api_upload_refused(tf_http_req_t *req, int rc, const char *field, const char *why) {
    if (rc == TF_EINVAL) {
        tf_api_invalid(req, field, why);
    } else if (rc == TF_ETOOBIG) {
        tf_http_respond_error(req, 413, "payload_too_large", why, NULL);
    } else if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

void tf_api_respond_built(tf_http_req_t *req, int status, tf_jbuf_t *b, int rc) {
    if (rc != 0) {
        tf_jbuf_free(b);
        tf_api_respond_status(req, TF_EIO);
        return;
    }
    tf_api_respond_jbuf(req, status, b);
}

void tf_api_invalid(tf_http_req_t *req, const char *field, const char *message) {
    json_t *details = json_pack("{ss}", "field", field);
    char *text = details != NULL ? json_dumps(details, JSON_COMPACT) : NULL;
    tf_http_respond_error(req, 422, "validation_failed", message, text);
    free(text);
    json_decref(details);
}

void tf_api_respond_status(tf_http_req_t *req, int status) {
    if (status == TF_EUNAVAIL || status == TF_EAGAIN || status == TF_ESHUTDOWN ||
        status == TF_ETIMEDOUT) {
        const char *why = status == TF_EAGAIN      ? "the database is busy: retry"
                          : status == TF_ESHUTDOWN ? "the server is shutting down"
                          : status == TF_ETIMEDOUT ? "the database did not answer in time"
                                                   : "the database is not available";
        tf_http_respond_error(req, 503, "unavailable", why, NULL);
        return;
    }
    if (status == TF_ECONFLICT) {
        tf_http_respond_error(req, 409, "conflict", "conflicts with existing data", NULL);
        return;
    }
    tf_api_loop_t *lp = tf_api_loop(req);
    if (lp != NULL) {
        tf_log_error(lp->env->log, "request failed", TF_LF_STR("route", tf_http_req_route(req)),
                     TF_LF_STR("request_id", tf_http_req_id(req)),
                     TF_LF_STR("error", tf_strerror(status)));
    }
    tf_http_respond_error(req, 500, "internal", tf_strerror(status), NULL);
}

int tf_api_time(tf_jbuf_t *b, int64_t ms) {
    char text[TF_TIME_STR_LEN + 1];
    if (ms == TF_TIME_NONE) {
        tf_jbuf_null(b);
        return 0;
    }
    if (tf_time_format(ms, text) != 0) {
        return TF_EIO;
    }
    tf_jbuf_str(b, text);
    return 0;
}
