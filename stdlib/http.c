/*
 * http.c - tf.http.request{method, url, headers, body, timeout_ms} ->
 * {status, headers, body}, through the libcurl-on-libuv client of the
 * `http` executor with its outbound address policy (SSRF guard).
 *
 * The call's state (op) is shared by the run and the call in flight and
 * freed when both let go: the run holds it through a guard on its stack
 * (so an abandoned run's collection releases it), the call until its
 * completion callback, which only copies the result and marks the run
 * ready.  A run abandoned mid-call aborts the call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "engine/error.h"
#include "lua/convert.h"
#include "stdlib/tf.h"

#define HEADERS_MAX 64
#define URL_MAX 8192
#define HEADER_VALUE_MAX 8192

typedef struct {
    int refs;
    tf_http_client_t *client;
    tf_http_call_t *call; /* while in flight */
    tf_lua_run_t *run;    /* NULL once the run let go */
    long status;
    char *headers, *body;
    size_t headers_len, body_len;
    int truncated, failed;
    char error_type[48];
    char error_message[256];
} http_op_t;

static void op_unref(void *arg) {
    http_op_t *op = arg;
    if (--op->refs == 0) {
        free(op->headers);
        free(op->body);
        free(op);
    }
}

static char *copy_bytes(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static void call_done(const tf_http_result_t *res, void *arg) {
    http_op_t *op = arg;
    op->call = NULL;
    if (op->run != NULL) {
        op->status = res->status;
        op->truncated = res->truncated;
        if (res->error_type != NULL) {
            op->failed = 1;
            snprintf(op->error_type, sizeof(op->error_type), "http_%s", res->error_type);
            snprintf(op->error_message, sizeof(op->error_message), "%s",
                     res->error_message != NULL ? res->error_message : res->error_type);
        } else {
            op->body = copy_bytes(res->body, res->body_len);
            op->headers = copy_bytes(res->headers != NULL ? res->headers : "", res->headers_len);
            op->body_len = res->body_len;
            op->headers_len = res->headers_len;
            if (op->body == NULL || op->headers == NULL) {
                op->failed = 1;
                snprintf(op->error_type, sizeof(op->error_type), "http_internal");
                snprintf(op->error_message, sizeof(op->error_message),
                         "out of memory keeping the response");
            }
        }
        tf_lua_wake(op->run);
    }
    op_unref(op);
}

/* The run was abandoned while the call was in flight. */
static void call_cancel(void *arg) {
    http_op_t *op = arg;
    op->run = NULL;
    if (op->call != NULL) {
        tf_http_client_abort(op->client, op->call);
    }
}

/* Raises {type, message} (retryable: the retry policy decides). */
static int raise_http(lua_State *L, const char *type, const char *message) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    return lua_error(L);
}

/* Pushes the response headers as a table: lower-case names, repeated
 * headers joined with ", ". */
static void push_headers(lua_State *L, const char *h, size_t len) {
    lua_newtable(L);
    const char *end = h + len;
    while (h < end) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        const char *line_end = eol != NULL ? eol : end;
        const char *colon = memchr(h, ':', (size_t)(line_end - h));
        if (colon != NULL && colon > h) {
            luaL_Buffer name;
            luaL_buffinit(L, &name);
            for (const char *p = h; p < colon; p++) {
                char c = *p;
                luaL_addchar(&name, (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
            }
            luaL_pushresult(&name);
            const char *v = colon + 1;
            const char *ve = line_end;
            while (v < ve && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) {
                ve--;
            }
            lua_pushvalue(L, -1);
            if (lua_rawget(L, -3) == LUA_TSTRING) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
            lua_rawset(L, -3);
        }
        h = eol != NULL ? eol + 1 : end;
    }
}

/* After the call: stack 1 the request table, 2 the guard of the op. */
static int request_k(lua_State *L, int status, lua_KContext ctx) {
    (void)status, (void)ctx;
    tf_lua_guard_t *g = lua_touserdata(L, 2);
    http_op_t *op = g->ptr;
    if (op->failed) {
        char type[48], message[256];
        memcpy(type, op->error_type, sizeof(type));
        memcpy(message, op->error_message, sizeof(message));
        tf_lua_guard_release(g);
        return raise_http(L, type, message);
    }
    if (op->truncated) {
        tf_lua_guard_release(g);
        return raise_http(L, "http_response_too_large",
                          "the response body is larger than the client keeps");
    }
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, op->status);
    lua_setfield(L, -2, "status");
    push_headers(L, op->headers, op->headers_len);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, op->body, op->body_len);
    lua_setfield(L, -2, "body");
    tf_lua_guard_release(g);
    return 1;
}

static const char *const METHODS[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};

static int token_ok(const char *s, size_t len) {
    if (len == 0 || len > 256) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 32 || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c) != NULL) {
            return 0;
        }
    }
    return 1;
}

/* Reads field `name` of the request table (raw); returns its type. */
static int field(lua_State *L, const char *name) {
    lua_pushstring(L, name);
    return lua_rawget(L, 1);
}

static int tf_http_request(lua_State *L) {
    tf__stdlib_check_table(L, 1, "tf.http.request", "the request");
    lua_settop(L, 1);
    tf_lua_run_t *run = NULL;
    tf_stdlib_t *lib = tf__stdlib_of(L, &run);
    /* Unknown fields are refused by name. */
    static const char *const known[] = {"method", "url", "headers", "body", "timeout_ms", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            for (size_t i = 0; !ok && known[i] != NULL; i++) {
                ok = strcmp(lua_tostring(L, -1), known[i]) == 0;
            }
        }
        if (!ok) {
            return luaL_error(L, "tf.http.request: unknown field %s",
                              lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(not a name)");
        }
    }
    tf_http_request_t req = {.keep_headers = 1};
    int t = field(L, "method"); /* stack 2 */
    if (t == LUA_TNIL) {
        req.method = "GET";
    } else {
        const char *m = t == LUA_TSTRING ? lua_tostring(L, -1) : "";
        for (size_t i = 0; req.method == NULL && METHODS[i] != NULL; i++) {
            if (strcmp(m, METHODS[i]) == 0) {
                req.method = METHODS[i];
            }
        }
        if (req.method == NULL) {
            return luaL_error(L, "tf.http.request: method must be GET, POST, PUT, PATCH or DELETE");
        }
    }
    t = field(L, "url"); /* 3 */
    size_t ulen = 0;
    req.url = t == LUA_TSTRING ? lua_tolstring(L, -1, &ulen) : NULL;
    if (req.url == NULL || ulen > URL_MAX || strlen(req.url) != ulen ||
        (strncmp(req.url, "http://", 7) != 0 && strncmp(req.url, "https://", 8) != 0)) {
        return luaL_error(L, "tf.http.request: url must be an http:// or https:// URL of at most "
                             "%d bytes",
                          URL_MAX);
    }
    t = field(L, "body"); /* 4 */
    if (t == LUA_TSTRING) {
        req.body = lua_tolstring(L, -1, &req.body_len);
        if (req.body_len > TF_STDLIB_HTTP_BODY_MAX) {
            return luaL_error(L, "tf.http.request: body is larger than %d bytes",
                              (int)TF_STDLIB_HTTP_BODY_MAX);
        }
    } else if (t != LUA_TNIL) {
        return luaL_error(L, "tf.http.request: body must be a string (tf.json.encode a table)");
    }
    const tf_lua_limits_t *lim = tf_lua_run_limits(run);
    t = field(L, "timeout_ms"); /* 5 */
    lua_Integer timeout = 30000;
    if (t != LUA_TNIL) {
        int isint = 0;
        timeout = lua_tointegerx(L, -1, &isint);
        if (!isint || t != LUA_TNUMBER || timeout < 1 || timeout > lim->timeout_ms) {
            return luaL_error(L, "tf.http.request: timeout_ms must be an integer from 1 to %d",
                              (int)lim->timeout_ms);
        }
    }
    req.timeout_ms = (int)(timeout < lim->timeout_ms ? timeout : lim->timeout_ms);
    const char *lines[HEADERS_MAX];
    t = field(L, "headers"); /* 6 */
    if (t == LUA_TTABLE) {
        int headers = lua_gettop(L);
        luaL_checkstack(L, HEADERS_MAX + 4, "tf.http.request: headers");
        lua_pushnil(L);
        while (lua_next(L, headers) != 0) {
            size_t klen = 0, vlen = 0;
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &vlen) : NULL;
            if (k == NULL || !token_ok(k, klen)) {
                return luaL_error(L, "tf.http.request: a header name is not a token");
            }
            if (v == NULL || vlen > HEADER_VALUE_MAX || strcspn(v, "\r\n") != vlen) {
                return luaL_error(L,
                                  "tf.http.request: header %s must be a string of at most %d "
                                  "bytes without CR, LF or NUL",
                                  k, HEADER_VALUE_MAX);
            }
            if (req.nheaders >= HEADERS_MAX) {
                return luaL_error(L, "tf.http.request: more than %d headers", HEADERS_MAX);
            }
            lua_pop(L, 1);
            lines[req.nheaders++] = lua_pushfstring(L, "%s: %s", k, v);
            lua_insert(L, -2); /* keep the line below the key */
        }
        req.headers = lines;
    } else if (t != LUA_TNIL) {
        return luaL_error(L, "tf.http.request: headers must be a table of names to strings");
    }
    tf_lua_check_can_wait(L, "tf.http.request");
    if (lib == NULL || lib->http == NULL) {
        return raise_http(L, "http_unavailable", "outbound HTTP is not available here");
    }
    /* Everything the call needs is on the stack above: the client copies it
     * at start.  The guard goes at index 2 once the call started. */
    tf_lua_guard_t *g = tf_lua_push_guard(L, op_unref);
    http_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        return luaL_error(L, "tf.http.request: out of memory");
    }
    op->refs = 1;
    op->client = lib->http;
    op->run = run;
    g->ptr = op;
    int rc = tf_http_client_start(lib->http, &req, call_done, op, &op->call);
    if (rc != 0) {
        return luaL_error(L, "tf.http.request: %s",
                          rc == TF_EINVAL ? "the request was refused (bad URL or header)"
                                          : tf_strerror(rc));
    }
    op->refs++; /* the call's */
    lua_replace(L, 2);
    lua_settop(L, 2);
    return tf_lua_wait(L, call_cancel, op, request_k, 0);
}

void tf__stdlib_open_http(lua_State *L) {
    static const luaL_Reg fns[] = {{"request", tf_http_request}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setfield(L, -2, "http");
}
