/*
 * api.c - shared request and response helpers of the API handlers.
 */
#include "adapters/app/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/error.h"

static const char JSON_TYPE[] = "application/json";

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

void tf_api_invalid(tf_http_req_t *req, const char *field, const char *message) {
    json_t *details = json_pack("{ss}", "field", field);
    char *text = details != NULL ? json_dumps(details, JSON_COMPACT) : NULL;
    tf_http_respond_error(req, 422, "validation_failed", message, text);
    free(text);
    json_decref(details);
}

void tf_api_respond_pg_error(tf_http_req_t *req, const tf_pg_reply_t *reply) {
    if (reply->status == TF_EUNAVAIL || reply->status == TF_EAGAIN ||
        reply->status == TF_ESHUTDOWN || reply->status == TF_ETIMEDOUT) {
        tf_http_respond_error(req, 503, "unavailable", "the database is not available", NULL);
    } else if (reply->status == TF_ECONFLICT) {
        tf_http_respond_error(req, 409, "conflict", "conflicts with existing data", NULL);
    } else {
        tf_http_respond_error(req, 500, "internal", "database error", NULL);
    }
}

void tf_api_respond_submit_error(tf_http_req_t *req, int rc) {
    tf_pg_reply_t reply = {.status = rc, .failed_index = -1};
    tf_api_respond_pg_error(req, &reply);
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
