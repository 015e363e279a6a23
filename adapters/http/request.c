/*
 * request.c - the request object: its head as read by llhttp, the decoded
 * path and query, the body, and the accessors handlers use.
 *
 * The head (URL, header names and values) is stored as NUL-terminated
 * strings in one growing buffer, addressed by offsets so that the buffer may
 * move; its size is capped by max_header_bytes while it is read.  Once the
 * head is complete the URL is split into path and query, the path segments
 * and query pairs are percent-decoded ('+' is a space in the query only) and
 * the router picks the route.  Invalid percent escapes and encoded NUL bytes
 * are answered 400 instead of reaching a handler.
 *
 * A request lives on its connection's loop thread from the first byte of its
 * head until it is answered; if the connection closes first the request is
 * detached and its answer dropped.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/http/http_internal.h"
#include "engine/error.h"

typedef struct {
    size_t name;
    size_t value;
} header_t;

typedef struct {
    char *name;
    char *value;
} query_pair_t;

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

struct tf_http_req {
    tf__http_loop_t *loop;
    tf__http_conn_t *conn; /* NULL once detached */
    buf_t head;            /* NUL-terminated strings */
    size_t url;            /* offset of the URL in head */
    int url_done;
    header_t *headers;
    size_t nheaders;
    size_t headers_cap;
    const char *method;
    char *path;  /* raw path, without the query */
    char **segs; /* decoded path segments */
    size_t nseg;
    query_pair_t *query;
    size_t nquery;
    tf__http_match_t match;
    int error_status; /* 400, 404 or 405 answered by tf__req_dispatch() */
    const char *error_message;
    buf_t body;
    buf_t extra_headers; /* "Name: value\r\n"... added by the handler */
    char id[TF__HTTP_MAX_REQUEST_ID + 1];
    uint64_t start_ns;
    int keep_alive;
    int http_minor;
};

static int buf_reserve(buf_t *buf, size_t extra) {
    if (buf->cap - buf->len > extra) {
        return 0;
    }
    size_t cap = buf->cap != 0 ? buf->cap : 256;
    while (cap - buf->len <= extra) {
        if (cap > SIZE_MAX / 2) {
            return TF_ENOMEM;
        }
        cap *= 2;
    }
    char *grown = realloc(buf->data, cap);
    if (grown == NULL) {
        return TF_ENOMEM;
    }
    buf->data = grown;
    buf->cap = cap;
    return 0;
}

/* Appends and keeps a NUL after the data (not counted in len). */
static int buf_append(buf_t *buf, const char *data, size_t len) {
    int rc = buf_reserve(buf, len + 1);
    if (rc != 0) {
        return rc;
    }
    memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

tf_http_req_t *tf__req_create(tf__http_loop_t *loop, tf__http_conn_t *conn) {
    tf_http_req_t *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        return NULL;
    }
    req->loop = loop;
    req->conn = conn;
    req->keep_alive = 1;
    req->http_minor = 1;
    req->start_ns = uv_hrtime();
    loop->live_requests++;
    return req;
}

void tf__req_destroy(tf_http_req_t *req) {
    if (req == NULL) {
        return;
    }
    req->loop->live_requests--;
    for (size_t i = 0; i < req->nseg; i++) {
        free(req->segs[i]);
    }
    free(req->segs);
    for (size_t i = 0; i < req->nquery; i++) {
        free(req->query[i].name);
        free(req->query[i].value);
    }
    free(req->query);
    free(req->path);
    free(req->headers);
    free(req->head.data);
    free(req->body.data);
    free(req->extra_headers.data);
    free(req);
}

void tf__req_detach(tf_http_req_t *req) {
    req->conn = NULL;
}

int tf_http_req_peer_gone(const tf_http_req_t *req) {
    return req->conn == NULL || tf__conn_peer_gone(req->conn);
}

tf__http_conn_t *tf__req_conn(const tf_http_req_t *req) {
    return req->conn;
}

tf__http_loop_t *tf__req_loop_of(const tf_http_req_t *req) {
    return req->loop;
}

void tf__req_set_method(tf_http_req_t *req, const char *method) {
    if (req->method == NULL) {
        req->method = method;
    }
}

/* ---- head accumulation ---- */

static int head_append(tf_http_req_t *req, const char *at, size_t len, size_t max) {
    /* Each header costs its bytes plus ": " and CRLF on the wire. */
    if (req->head.len + len + 4 * req->nheaders > max) {
        return TF_ETOOBIG;
    }
    return buf_append(&req->head, at, len);
}

/* Ends the string being accumulated (its terminating NUL becomes part of the
 * buffer). */
static int head_terminate(tf_http_req_t *req, size_t max) {
    int rc = head_append(req, "", 0, max);
    if (rc == 0) {
        req->head.len++;
    }
    return rc;
}

int tf__req_append_url(tf_http_req_t *req, const char *at, size_t len, size_t max) {
    return head_append(req, at, len, max);
}

int tf__req_end_url(tf_http_req_t *req, size_t max) {
    req->url = 0;
    req->url_done = 1;
    return head_terminate(req, max);
}

int tf__req_append_field(tf_http_req_t *req, const char *at, size_t len, size_t max) {
    if (!req->url_done) {
        /* Defensive: a head without a completed URL is a parse error anyway. */
        return TF_EPARSE;
    }
    if (req->nheaders == 0 || req->headers[req->nheaders - 1].value != 0) {
        if (req->nheaders == req->headers_cap) {
            size_t cap = req->headers_cap != 0 ? req->headers_cap * 2 : 16;
            header_t *grown = realloc(req->headers, cap * sizeof(*grown));
            if (grown == NULL) {
                return TF_ENOMEM;
            }
            req->headers = grown;
            req->headers_cap = cap;
        }
        /* Offset 0 is the URL, so value 0 means "name still being read". */
        req->headers[req->nheaders++] = (header_t){.name = req->head.len, .value = 0};
    }
    return head_append(req, at, len, max);
}

int tf__req_end_field(tf_http_req_t *req, size_t max) {
    int rc = head_terminate(req, max);
    if (rc == 0 && req->nheaders > 0) {
        req->headers[req->nheaders - 1].value = req->head.len;
    }
    return rc;
}

int tf__req_append_value(tf_http_req_t *req, const char *at, size_t len, size_t max) {
    return head_append(req, at, len, max);
}

int tf__req_end_value(tf_http_req_t *req, size_t max) {
    if (req->nheaders > 0) {
        /* llhttp drops the leading whitespace of a value; drop the trailing. */
        size_t start = req->headers[req->nheaders - 1].value;
        while (req->head.len > start && (req->head.data[req->head.len - 1] == ' ' ||
                                         req->head.data[req->head.len - 1] == '\t')) {
            req->head.len--;
        }
    }
    return head_terminate(req, max);
}

int tf__req_append_body(tf_http_req_t *req, const char *at, size_t len, size_t max) {
    if (len > max || req->body.len > max - len) {
        return TF_ETOOBIG;
    }
    return buf_append(&req->body, at, len);
}

/* ---- percent decoding ---- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes `len` bytes of `src` into a new string.  Returns NULL on a bad
 * escape or an encoded NUL (*bad set) or when out of memory (*bad clear). */
static char *percent_decode(const char *src, size_t len, int plus_is_space, int *bad) {
    char *out = malloc(len + 1);
    size_t n = 0;
    *bad = 0;
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = len - i >= 3 ? hex_value(src[i + 1]) : -1;
            int lo = len - i >= 3 ? hex_value(src[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                goto bad_input;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0') {
            goto bad_input;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return out;
bad_input:
    free(out);
    *bad = 1;
    return NULL;
}

/* ---- URL splitting and routing ---- */

static void req_fail(tf_http_req_t *req, int status, const char *message) {
    if (req->error_status == 0) {
        req->error_status = status;
        req->error_message = message;
    }
}

/* Splits the decoded path into segments ("/a/b" -> "a", "b"). */
static int req_split_path(tf_http_req_t *req, const char *path) {
    size_t n = 1;
    for (const char *p = path + 1; *p != '\0'; p++) {
        n += *p == '/';
    }
    req->segs = calloc(n, sizeof(*req->segs));
    if (req->segs == NULL) {
        return TF_ENOMEM;
    }
    const char *p = path + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int bad = 0;
        char *seg = percent_decode(p, len, 0, &bad);
        if (seg == NULL) {
            return bad ? TF_EPARSE : TF_ENOMEM;
        }
        req->segs[req->nseg++] = seg;
        if (end == NULL) {
            return 0;
        }
        p = end + 1;
    }
}

static int req_add_query_pair(tf_http_req_t *req, const char *p, size_t len) {
    const char *eq = memchr(p, '=', len);
    size_t name_len = eq != NULL ? (size_t)(eq - p) : len;
    const char *value = eq != NULL ? eq + 1 : p + len;
    size_t value_len = len - name_len - (eq != NULL ? 1 : 0);
    int bad_name = 0;
    int bad_value = 0;
    char *name = percent_decode(p, name_len, 1, &bad_name);
    char *decoded = percent_decode(value, value_len, 1, &bad_value);
    query_pair_t *grown = NULL;
    if (name == NULL || decoded == NULL) {
        goto fail;
    }
    grown = realloc(req->query, (req->nquery + 1) * sizeof(*grown));
    if (grown == NULL) {
        goto fail;
    }
    req->query = grown;
    req->query[req->nquery++] = (query_pair_t){.name = name, .value = decoded};
    return 0;
fail:
    free(name);
    free(decoded);
    return bad_name || bad_value ? TF_EPARSE : TF_ENOMEM;
}

static int req_parse_query(tf_http_req_t *req, const char *query) {
    const char *p = query;
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            int rc = req_add_query_pair(req, p, len);
            if (rc != 0) {
                return rc;
            }
        }
        p += len + (end != NULL ? 1 : 0);
    }
    return 0;
}

/* The origin-form target inside an absolute-form one
 * ("http://host/x?y" -> "/x?y"); NULL when there is no path. */
static const char *req_target_path(const char *url) {
    const char *rest = NULL;
    if (strncasecmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        rest = url + 8;
    } else {
        return url[0] == '/' ? url : NULL;
    }
    const char *slash = strpbrk(rest, "/?");
    if (slash == NULL || *slash == '?') {
        return "/";
    }
    return slash;
}

static int req_parse_url(tf_http_req_t *req) {
    const char *url = req->head.data != NULL && req->url_done ? req->head.data + req->url : "";
    const char *target = req_target_path(url);
    if (target == NULL) {
        req_fail(req, 400, "the request target must be a path");
        return TF_EPARSE;
    }
    size_t path_len = strcspn(target, "?#");
    req->path = malloc(path_len + 1);
    if (req->path == NULL) {
        return TF_ENOMEM;
    }
    memcpy(req->path, target, path_len);
    req->path[path_len] = '\0';
    int rc = req_split_path(req, req->path);
    if (rc == TF_EPARSE) {
        req_fail(req, 400, "invalid percent-encoding in the path");
    }
    if (rc == 0 && target[path_len] == '?') {
        char *query = strndup(target + path_len + 1, strcspn(target + path_len + 1, "#"));
        rc = query != NULL ? req_parse_query(req, query) : TF_ENOMEM;
        free(query);
        if (rc == TF_EPARSE) {
            req_fail(req, 400, "invalid percent-encoding in the query");
        }
    }
    return rc;
}

void tf__req_head_done(tf_http_req_t *req, int keep_alive, int http_minor) {
    req->keep_alive = keep_alive;
    req->http_minor = http_minor;
    req->start_ns = uv_hrtime();
    if (req->method == NULL) {
        req->method = "UNKNOWN";
    }
    int rc = req_parse_url(req);
    if (rc == TF_ENOMEM) {
        req_fail(req, 500, "out of memory");
    }
    if (rc != 0) {
        return;
    }
    tf__router_match(req->loop->server->router, req->method, req->segs, req->nseg, &req->match);
    if (req->match.route != NULL) {
        return;
    }
    if (req->match.pattern != NULL) {
        req_fail(req, 405, "method not allowed");
    } else {
        req_fail(req, 404, "no such resource");
    }
}

void tf__req_dispatch(tf_http_req_t *req) {
    switch (req->error_status) {
    case 0:
        req->match.route->handler(req, req->match.route->handler_data);
        return;
    case 400:
        tf_http_respond_error(req, 400, "bad_request", req->error_message, NULL);
        return;
    case 404:
        tf_http_respond_error(req, 404, "not_found", req->error_message, NULL);
        return;
    case 405:
        tf_http_req_add_header(req, "Allow", req->match.allow);
        tf_http_respond_error(req, 405, "method_not_allowed", req->error_message, NULL);
        return;
    default:
        tf_http_respond_error(req, 500, "internal", req->error_message, NULL);
        return;
    }
}

/* ---- request id ---- */

static int sane_request_id(const char *id) {
    size_t len = strlen(id);
    if (len == 0 || len > TF__HTTP_MAX_REQUEST_ID) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x21 || c > 0x7e) {
            return 0;
        }
    }
    return 1;
}

void tf__req_ensure_id(tf_http_req_t *req) {
    if (req->id[0] != '\0') {
        return;
    }
    const char *client = tf_http_req_header(req, "X-Request-Id");
    if (client != NULL && sane_request_id(client)) {
        memcpy(req->id, client, strlen(client) + 1);
        return;
    }
    tf_uuid_t uuid;
    tf_uuid_v7(&req->loop->uuid_gen, tf__http_unix_ms(), &uuid);
    tf_uuid_format(&uuid, req->id);
}

void tf__req_view(tf_http_req_t *req, tf__req_view_t *out) {
    out->route = req->match.pattern != NULL ? req->match.pattern : TF__HTTP_UNMATCHED;
    out->method = req->method != NULL ? req->method : "UNKNOWN";
    out->keep_alive = req->keep_alive;
    out->is_head = req->method != NULL && strcmp(req->method, "HEAD") == 0;
    out->http_minor = req->http_minor;
    out->extra_headers = req->extra_headers.data;
    out->extra_len = req->extra_headers.len;
}

/* ---- public accessors ---- */

const char *tf_http_req_method(const tf_http_req_t *req) {
    return req->method != NULL ? req->method : "UNKNOWN";
}

const char *tf_http_req_path(const tf_http_req_t *req) {
    return req->path != NULL ? req->path : "";
}

const char *tf_http_req_route(const tf_http_req_t *req) {
    return req->match.pattern != NULL ? req->match.pattern : TF__HTTP_UNMATCHED;
}

const char *tf_http_req_param(const tf_http_req_t *req, const char *name) {
    const tf__http_route_t *route = req->match.route;
    if (route == NULL || name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < route->nparams; i++) {
        if (strcmp(route->param_names[i], name) == 0 && route->param_pos[i] < req->nseg) {
            return req->segs[route->param_pos[i]];
        }
    }
    return NULL;
}

const char *tf_http_req_query(const tf_http_req_t *req, const char *name) {
    for (size_t i = 0; name != NULL && i < req->nquery; i++) {
        if (strcmp(req->query[i].name, name) == 0) {
            return req->query[i].value;
        }
    }
    return NULL;
}

int tf_http_req_query_each(const tf_http_req_t *req,
                           int (*fn)(const char *name, const char *value, void *arg), void *arg) {
    for (size_t i = 0; i < req->nquery; i++) {
        int rc = fn(req->query[i].name, req->query[i].value, arg);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

const char *tf_http_req_header(const tf_http_req_t *req, const char *name) {
    for (size_t i = 0; name != NULL && i < req->nheaders; i++) {
        const header_t *h = &req->headers[i];
        if (h->value != 0 && strcasecmp(req->head.data + h->name, name) == 0) {
            return req->head.data + h->value;
        }
    }
    return NULL;
}

const char *tf_http_req_body(const tf_http_req_t *req, size_t *len) {
    if (len != NULL) {
        *len = req->body.len;
    }
    return req->body.data != NULL ? req->body.data : "";
}

const char *tf_http_req_id(const tf_http_req_t *req) {
    /* The id is chosen lazily; choosing it does not change what the caller
     * can observe, so the const is only formal. */
    tf__req_ensure_id((tf_http_req_t *)req);
    return req->id;
}

void *tf_http_req_loop_ctx(const tf_http_req_t *req) {
    return req->loop->loop_ctx;
}

uv_loop_t *tf_http_req_loop(const tf_http_req_t *req) {
    return &req->loop->loop;
}

uint64_t tf_http_req_start_ns(const tf_http_req_t *req) {
    return req->start_ns;
}

static int header_name_reserved(const char *name) {
    static const char *const reserved[] = {"Content-Length", "Transfer-Encoding", "Connection",
                                           "Content-Type",   "X-Request-Id",      "Date"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strcasecmp(name, reserved[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

int tf_http_req_add_header(tf_http_req_t *req, const char *name, const char *value) {
    if (req == NULL || name == NULL || value == NULL || name[0] == '\0' ||
        header_name_reserved(name)) {
        return TF_EINVAL;
    }
    for (const char *p = name; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c) != NULL) {
            return TF_EINVAL;
        }
    }
    if (strpbrk(value, "\r\n") != NULL) {
        return TF_EINVAL;
    }
    buf_t *b = &req->extra_headers;
    size_t before = b->len;
    int rc = buf_append(b, name, strlen(name));
    if (rc == 0) {
        rc = buf_append(b, ": ", 2);
    }
    if (rc == 0) {
        rc = buf_append(b, value, strlen(value));
    }
    if (rc == 0) {
        rc = buf_append(b, "\r\n", 2);
    }
    if (rc != 0 && b->data != NULL) {
        b->len = before;
        b->data[before] = '\0';
    }
    return rc;
}
