/*
 * openapi.c - GET /v1/openapi.json (see openapi.h).
 *
 * The handler answers at once from the embedded bytes; it touches no state,
 * so it runs on any loop thread without coordination.
 */
#include "adapters/app/openapi.h"

static void handle_openapi(tf_http_req_t *req, void *data) {
    (void)data;
    tf_http_respond(req, 200, "application/json", tf_openapi_json, tf_openapi_json_len);
}

int tf_openapi_register(tf_router_t *router) {
    return tf_router_add(router, "GET", "/v1/openapi.json", handle_openapi, NULL);
}
