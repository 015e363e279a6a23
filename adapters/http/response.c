/*
 * response.c - turns a handler's answer into bytes on the wire, and records
 * it: the request metrics and the access log line.
 *
 * A response is one buffer (status line, headers, body) handed to the
 * connection's write queue.  Every response carries Date, Content-Length
 * (except 204 and 304), X-Request-Id and, when the connection ends after it,
 * Connection: close.  Error bodies are always
 * {"error":{"code":...,"message":...,"details":{...}}}, built with jansson.
 *
 * Metric children are looked up once per (route, method, status) and loop
 * and kept in a small per-loop hash table, so the hot path takes no lock.
 * Runs on the loop thread of the request.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "adapters/http/http_internal.h"
#include "engine/error.h"

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int failed;
} out_t;

static const struct {
    int status;
    const char *reason;
} status_reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

static const char *status_reason(int status) {
    for (size_t i = 0; i < sizeof(status_reasons) / sizeof(status_reasons[0]); i++) {
        if (status_reasons[i].status == status) {
            return status_reasons[i].reason;
        }
    }
    return "Unknown";
}

uint64_t tf__http_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The IMF-fixdate for the Date header, formatted once per second per loop
 * (by hand: strftime would follow the locale). */
static const char *loop_date(tf__http_loop_t *loop) {
    time_t now = time(NULL);
    if ((int64_t)now != loop->date_second) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(loop->date, sizeof(loop->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 day_names[tm.tm_wday % 7], tm.tm_mday, month_names[tm.tm_mon % 12],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        loop->date_second = (int64_t)now;
    }
    return loop->date;
}

static void out_put(out_t *o, const char *s, size_t n) {
    if (o->failed || n == 0) {
        return;
    }
    if (o->cap - o->len < n) {
        size_t cap = o->cap != 0 ? o->cap : 512;
        while (cap - o->len < n) {
            cap *= 2;
        }
        char *grown = realloc(o->data, cap);
        if (grown == NULL) {
            o->failed = 1;
            return;
        }
        o->data = grown;
        o->cap = cap;
    }
    memcpy(o->data + o->len, s, n);
    o->len += n;
}

static void out_str(out_t *o, const char *s) {
    out_put(o, s, strlen(s));
}

static void out_header(out_t *o, const char *name, const char *value) {
    out_str(o, name);
    out_put(o, ": ", 2);
    out_str(o, value);
    out_put(o, "\r\n", 2);
}

typedef struct {
    int status;
    const char *content_type;
    const char *body;
    size_t len;
    int close;
} response_t;

/* Builds the whole response.  Caller owns the result (free()); NULL when out
 * of memory. */
static char *build_response(tf__http_loop_t *loop, const tf__req_view_t *v, const char *id,
                            const response_t *r, size_t *out_len) {
    out_t o = {.data = malloc(512 + v->extra_len + r->len), .cap = 512 + v->extra_len + r->len};
    if (o.data == NULL) {
        return NULL;
    }
    int no_body = r->status == 204 || r->status == 304;
    char line[64];
    snprintf(line, sizeof(line), "HTTP/1.1 %d ", r->status);
    out_str(&o, line);
    out_str(&o, status_reason(r->status));
    out_put(&o, "\r\n", 2);
    out_header(&o, "Date", loop_date(loop));
    if (r->content_type != NULL && strpbrk(r->content_type, "\r\n") == NULL && !no_body) {
        out_header(&o, "Content-Type", r->content_type);
    }
    if (!no_body) {
        snprintf(line, sizeof(line), "%zu", r->len);
        out_header(&o, "Content-Length", line);
    }
    if (r->close) {
        out_header(&o, "Connection", "close");
    } else if (v->http_minor == 0) {
        out_header(&o, "Connection", "keep-alive");
    }
    out_header(&o, "X-Request-Id", id);
    out_put(&o, v->extra_headers != NULL ? v->extra_headers : "", v->extra_len);
    out_put(&o, "\r\n", 2);
    if (!no_body && !v->is_head) {
        out_put(&o, r->body, r->len);
    }
    if (o.failed) {
        free(o.data);
        return NULL;
    }
    *out_len = o.len;
    return o.data;
}

static void log_access(tf__http_loop_t *loop, const char *id, const tf__req_view_t *v, int status,
                       double seconds) {
    tf_log_t *log = loop->server->log;
    if (log == NULL || !tf_log_enabled(log, TF_LOG_DEBUG)) {
        return;
    }
    tf_log_debug(log, "http request", TF_LF_STR("request_id", id), TF_LF_STR("method", v->method),
                 TF_LF_STR("route", v->route), TF_LF_INT("status", status),
                 TF_LF_DBL("duration_ms", seconds * 1000.0));
}

void tf_http_respond(tf_http_req_t *req, int status, const char *content_type, const char *body,
                     size_t len) {
    tf__http_loop_t *loop = tf__req_loop_of(req);
    if (status < 200 || status > 599) {
        status = 500;
    }
    if (body == NULL) {
        len = 0;
    }
    tf__req_view_t v;
    tf__req_view(req, &v);
    const char *id = tf_http_req_id(req);
    uint64_t now = uv_hrtime();
    uint64_t start = tf_http_req_start_ns(req);
    double seconds = now > start ? (double)(now - start) / 1e9 : 0.0;
    tf__http_metrics_observe(loop, v.route, v.method, status, seconds);
    log_access(loop, id, &v, status, seconds);

    tf__http_conn_t *conn = tf__req_conn(req);
    if (conn != NULL) {
        response_t r = {.status = status,
                        .content_type = content_type,
                        .body = body,
                        .len = len,
                        .close = !v.keep_alive || tf__conn_closing_soon(conn)};
        size_t out_len = 0;
        char *out = build_response(loop, &v, id, &r, &out_len);
        tf__conn_send(conn, out, out_len, r.close);
    }
    tf__req_destroy(req);
    if (conn != NULL) {
        tf__conn_resume(conn);
    }
}

/* {"error":{"code","message","details"}}; caller frees with free(). */
static char *error_body(const char *code, const char *message, const char *details_json) {
    json_t *details = details_json != NULL ? json_loads(details_json, 0, NULL) : NULL;
    if (!json_is_object(details)) {
        json_decref(details);
        details = json_object();
    }
    json_t *error = json_object();
    json_t *root = json_object();
    char *text = NULL;
    if (error == NULL || root == NULL || details == NULL) {
        goto done;
    }
    json_t *code_json = json_string(code != NULL ? code : "internal");
    json_t *message_json = json_string(message != NULL ? message : "");
    if (message_json == NULL) { /* not UTF-8 */
        message_json = json_string("error");
    }
    json_object_set_new(error, "code", code_json != NULL ? code_json : json_string("internal"));
    json_object_set_new(error, "message", message_json);
    json_object_set(error, "details", details);
    json_object_set(root, "error", error);
    text = json_dumps(root, JSON_COMPACT);
done:
    json_decref(details);
    json_decref(error);
    json_decref(root);
    return text;
}

void tf_http_respond_error(tf_http_req_t *req, int status, const char *code, const char *message,
                           const char *details_json) {
    static const char fallback[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"details\":{}}}";
    char *text = error_body(code, message, details_json);
    if (text == NULL) {
        tf_http_respond(req, 500, "application/json", fallback, sizeof(fallback) - 1);
        return;
    }
    tf_http_respond(req, status, "application/json", text, strlen(text));
    free(text);
}

/* ---- metrics ---- */

static uint64_t slot_hash(const char *route, const char *method, int status) {
    uint64_t h = (uint64_t)(uintptr_t)route * 0x9e3779b97f4a7c15u;
    h ^= (uint64_t)(uintptr_t)method * 0xc2b2ae3d27d4eb4fu;
    h ^= (uint64_t)(unsigned)status * 0x165667b19e3779f9u;
    return h ^ (h >> 29);
}

static tf__http_metric_slot_t *slot_find(tf__http_metric_slot_t *slots, size_t cap,
                                         const char *route, const char *method, int status) {
    size_t i = (size_t)slot_hash(route, method, status) & (cap - 1);
    for (;; i = (i + 1) & (cap - 1)) {
        tf__http_metric_slot_t *s = &slots[i];
        if (s->route == NULL || (s->route == route && s->method == method && s->status == status)) {
            return s;
        }
    }
}

static int slots_grow(tf__http_loop_t *loop) {
    size_t cap = loop->metric_cap != 0 ? loop->metric_cap * 2 : 64;
    tf__http_metric_slot_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return TF_ENOMEM;
    }
    for (size_t i = 0; i < loop->metric_cap; i++) {
        tf__http_metric_slot_t *old = &loop->metric_slots[i];
        if (old->route != NULL) {
            *slot_find(slots, cap, old->route, old->method, old->status) = *old;
        }
    }
    free(loop->metric_slots);
    loop->metric_slots = slots;
    loop->metric_cap = cap;
    return 0;
}

void tf__http_metrics_observe(tf__http_loop_t *loop, const char *route, const char *method,
                              int status, double seconds) {
    const tf__http_metrics_t *m = &loop->server->m;
    if (m->requests == NULL || m->duration == NULL) {
        return;
    }
    if ((loop->metric_used + 1) * 2 > loop->metric_cap && slots_grow(loop) != 0) {
        return;
    }
    tf__http_metric_slot_t *s =
        slot_find(loop->metric_slots, loop->metric_cap, route, method, status);
    if (s->route == NULL) {
        char status_text[16];
        snprintf(status_text, sizeof(status_text), "%d", status);
        const char *const request_labels[] = {route, method, status_text};
        const char *const duration_labels[] = {route, method};
        *s = (tf__http_metric_slot_t){.route = route,
                                      .method = method,
                                      .status = status,
                                      .requests = tf_metric_get(m->requests, request_labels),
                                      .duration = tf_metric_get(m->duration, duration_labels)};
        loop->metric_used++;
    }
    if (s->requests != NULL) {
        tf_metric_inc(s->requests);
    }
    if (s->duration != NULL) {
        tf_metric_observe(s->duration, seconds);
    }
}

void tf__http_metrics_free(tf__http_loop_t *loop) {
    free(loop->metric_slots);
    loop->metric_slots = NULL;
    loop->metric_cap = 0;
    loop->metric_used = 0;
}

void tf__http_count_reject(tf_http_server_t *server, tf__http_reject_t reason) {
    if (reason < TF__HTTP_REJECT_COUNT && server->m.rejected[reason] != NULL) {
        tf_metric_inc(server->m.rejected[reason]);
    }
}
