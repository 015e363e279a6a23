/*
 * convert.c - Lua values to JSON and back (see convert.h).
 */
#include "lua/convert.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "engine/error.h"
#include "engine/utf8.h"

/* Registry keys of the marker metatables and of the guards' metatable
 * (their addresses are unique). */
static const char ARRAY_MARK = 'a';
static const char OBJECT_MARK = 'o';
static const char GUARD_META = 'g';

void tf_lua_guard_release(tf_lua_guard_t *g) {
    if (g->ptr != NULL) {
        void *p = g->ptr;
        g->ptr = NULL;
        g->release(p);
    }
}

static int guard_gc(lua_State *L) {
    tf_lua_guard_release(lua_touserdata(L, 1));
    return 0;
}

tf_lua_guard_t *tf_lua_push_guard(lua_State *L, void (*release)(void *ptr)) {
    tf_lua_guard_t *g = lua_newuserdatauv(L, sizeof(*g), 0);
    g->ptr = NULL;
    g->release = release;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &GUARD_META);
    lua_setmetatable(L, -2);
    return g;
}

void tf_lua_json_init(lua_State *L) {
    lua_newtable(L);
    lua_pushliteral(L, "json array");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ARRAY_MARK);
    lua_newtable(L);
    lua_pushliteral(L, "json object");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &OBJECT_MARK);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, guard_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &GUARD_META);
}

static void push_marked(lua_State *L, const void *mark) {
    lua_newtable(L);
    lua_rawgetp(L, LUA_REGISTRYINDEX, mark);
    lua_setmetatable(L, -2);
}

void tf_lua_json_push_array(lua_State *L) {
    push_marked(L, &ARRAY_MARK);
}

void tf_lua_json_push_object(lua_State *L) {
    push_marked(L, &OBJECT_MARK);
}

/* ---- Lua to JSON ---- */

typedef struct {
    lua_State *L;
    tf_jbuf_t *b;
    int max_depth;
    size_t max_bytes;
    const void *path_tables[TF_LUA_JSON_DEPTH_MAX + 1];
    char path[128]; /* where we are, for messages ("result.items[3]") */
    char *err;
    int rc;
} enc_t;

static int fail(enc_t *e, int rc, const char *what) {
    if (e->rc == 0) {
        e->rc = rc;
        snprintf(e->err, TF_LUA_ERR_LEN, "%.62s at %.90s", what, e->path);
    }
    return e->rc;
}

/* Appends ".key" or "[i]" to the path; returns the old length. */
static size_t path_push(enc_t *e, const char *key, lua_Integer index) {
    size_t len = strlen(e->path);
    if (key != NULL) {
        snprintf(e->path + len, sizeof(e->path) - len, ".%.32s", key);
    } else {
        snprintf(e->path + len, sizeof(e->path) - len, "[%lld]", (long long)index);
    }
    return len;
}

/* 1 when the table at `idx` carries marker `mark` as its metatable (raw:
 * reading a metatable runs no code). */
static int has_mark(lua_State *L, int idx, const void *mark) {
    if (!lua_getmetatable(L, idx)) {
        return 0;
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, mark);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static int encode(enc_t *e, int idx, int depth);

/* Counts the table's keys (raw) and says whether they are exactly 1..n. */
static int table_shape(lua_State *L, int idx, lua_Integer *n) {
    lua_Integer count = 0;
    int array = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (!lua_isinteger(L, -1)) {
            array = 0;
        }
    }
    for (lua_Integer i = 1; array && i <= count; i++) {
        array = lua_rawgeti(L, idx, i) != LUA_TNIL;
        lua_pop(L, 1);
    }
    *n = count;
    return array;
}

static int encode_table(enc_t *e, int idx, int depth) {
    lua_State *L = e->L;
    const void *self = lua_topointer(L, idx);
    for (int d = 0; d < depth; d++) {
        if (e->path_tables[d] == self) {
            return fail(e, TF_EINVAL, "cycle");
        }
    }
    if (depth >= e->max_depth) {
        char what[48];
        snprintf(what, sizeof(what), "nested deeper than %d", e->max_depth);
        return fail(e, TF_EINVAL, what);
    }
    if (!lua_checkstack(L, 4)) {
        return fail(e, TF_ENOMEM, "out of Lua stack");
    }
    e->path_tables[depth] = self;
    lua_Integer n = 0;
    int array = table_shape(L, idx, &n);
    if (n == 0) {
        array = has_mark(L, idx, &ARRAY_MARK);
    }
    if (array) {
        tf_jbuf_arr_open(e->b);
        for (lua_Integer i = 1; i <= n && e->rc == 0; i++) {
            size_t back = path_push(e, NULL, i);
            lua_rawgeti(L, idx, i);
            encode(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            e->path[back] = '\0';
        }
        tf_jbuf_arr_close(e->b);
        return e->rc;
    }
    tf_jbuf_obj_open(e->b);
    lua_pushnil(L);
    while (e->rc == 0 && lua_next(L, idx) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return fail(e, TF_EINVAL, "a table key that is not a string (objects) or 1..n (arrays)");
        }
        size_t klen = 0;
        const char *key = lua_tolstring(L, -2, &klen); /* a string: no conversion */
        if (!tf_utf8_valid(key, klen) || memchr(key, '\0', klen) != NULL) {
            lua_pop(L, 2);
            return fail(e, TF_EINVAL, "a key that is not UTF-8 text without NUL");
        }
        size_t back = path_push(e, key, 0);
        tf_jbuf_key(e->b, key);
        encode(e, lua_gettop(L), depth + 1);
        e->path[back] = '\0';
        lua_pop(L, 1);
    }
    if (e->rc != 0) {
        lua_pop(L, 1); /* the key lua_next left */
        return e->rc;
    }
    tf_jbuf_obj_close(e->b);
    return 0;
}

static int encode(enc_t *e, int idx, int depth) {
    lua_State *L = e->L;
    if (e->max_bytes > 0 && e->b->len > e->max_bytes) {
        return fail(e, TF_ETOOBIG, "more than the output limit");
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        tf_jbuf_null(e->b);
        return 0;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { /* tf.json.null */
            tf_jbuf_null(e->b);
            return 0;
        }
        return fail(e, TF_EINVAL, "a light userdata");
    case LUA_TBOOLEAN:
        tf_jbuf_bool(e->b, lua_toboolean(L, idx));
        return 0;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            tf_jbuf_int(e->b, (int64_t)lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            char text[40];
            if (!isfinite(d)) {
                return fail(e, TF_EINVAL, isnan(d) ? "NaN (JSON has no NaN)"
                                                   : "an infinite number (JSON has none)");
            }
            snprintf(text, sizeof(text), "%.17g", d);
            if (strpbrk(text, ".eE") == NULL) {
                strncat(text, ".0", sizeof(text) - strlen(text) - 1);
            }
            tf_jbuf_raw(e->b, text);
        }
        return 0;
    case LUA_TSTRING: {
        size_t len = 0;
        const char *s = lua_tolstring(L, idx, &len);
        if (!tf_utf8_valid(s, len)) {
            return fail(e, TF_EINVAL, "a string that is not UTF-8");
        }
        if (e->max_bytes > 0 && len > e->max_bytes) {
            return fail(e, TF_ETOOBIG, "more than the output limit");
        }
        tf_jbuf_strn(e->b, s, len);
        return 0;
    }
    case LUA_TTABLE:
        return encode_table(e, idx, depth);
    default:
        return fail(e, TF_EINVAL, lua_typename(L, lua_type(L, idx)));
    }
}

int tf_lua_to_json(lua_State *L, int idx, const tf_lua_json_limits_t *lim, const char *path,
                   tf_jbuf_t *b, char err[TF_LUA_ERR_LEN]) {
    enc_t e = {.L = L, .b = b, .err = err};
    e.max_depth = lim != NULL && lim->max_depth > 0 && lim->max_depth < TF_LUA_JSON_DEPTH_MAX
                      ? lim->max_depth
                      : TF_LUA_JSON_DEPTH_MAX;
    e.max_bytes = lim != NULL ? lim->max_bytes : 0;
    snprintf(e.path, sizeof(e.path), "%s", path != NULL ? path : "value");
    err[0] = '\0';
    int top = lua_gettop(L);
    encode(&e, lua_absindex(L, idx), 0);
    lua_settop(L, top);
    if (e.rc == 0 && e.max_bytes > 0 && b->len > e.max_bytes) {
        fail(&e, TF_ETOOBIG, "more than the output limit");
    }
    if (e.rc == 0 && b->failed) {
        e.rc = TF_ENOMEM;
        snprintf(err, TF_LUA_ERR_LEN, "out of memory writing JSON");
    }
    return e.rc;
}

/* ---- JSON to Lua ---- */

static int push_value(lua_State *L, json_t *v, int depth, int max_depth, char *err) {
    /* Counted as the encoder counts: at most max_depth arrays and objects
     * nested in one another; a scalar inside the innermost one is fine. */
    if ((json_is_object(v) || json_is_array(v)) && depth >= max_depth) {
        snprintf(err, TF_LUA_ERR_LEN, "JSON nested deeper than %d", max_depth);
        return TF_EINVAL;
    }
    if (!lua_checkstack(L, 3)) {
        snprintf(err, TF_LUA_ERR_LEN, "out of Lua stack");
        return TF_ENOMEM;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        tf_lua_json_push_object(L);
        const char *key;
        json_t *member;
        json_object_foreach(v, key, member) {
            int rc = push_value(L, member, depth + 1, max_depth, err);
            if (rc != 0) {
                lua_pop(L, 1);
                return rc;
            }
            lua_setfield(L, -2, key);
        }
        return 0;
    }
    case JSON_ARRAY: {
        tf_lua_json_push_array(L);
        for (size_t i = 0; i < json_array_size(v); i++) {
            int rc = push_value(L, json_array_get(v, i), depth + 1, max_depth, err);
            if (rc != 0) {
                lua_pop(L, 1);
                return rc;
            }
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return 0;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        return 0;
    case JSON_REAL:
        lua_pushnumber(L, json_real_value(v));
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        lua_pushboolean(L, json_is_true(v));
        return 0;
    default:
        lua_pushlightuserdata(L, NULL);
        return 0;
    }
}

static void release_json(void *v) {
    json_decref(v);
}

int tf_lua_push_json(lua_State *L, const char *text, size_t len, int max_depth,
                     char err[TF_LUA_ERR_LEN]) {
    json_error_t jerr;
    err[0] = '\0';
    tf_lua_guard_t *g = tf_lua_push_guard(L, release_json);
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v == NULL) {
        lua_pop(L, 1);
        snprintf(err, TF_LUA_ERR_LEN, "malformed JSON at line %d, column %d: %.80s", jerr.line,
                 jerr.column, jerr.text);
        return TF_EINVAL;
    }
    g->ptr = v;
    int rc = push_value(L, v, 0, max_depth > 0 ? max_depth : TF_LUA_JSON_DEPTH_MAX, err);
    tf_lua_guard_release(g);
    lua_remove(L, rc == 0 ? -2 : -1);
    return rc;
}
