/*
 * convert.c - Lua values to JSON and back (see convert.h).
 */
#include "lua/convert.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            return fail(e, TF_EINVAL,
                        "a table key that is not a string (objects) or 1..n (arrays)");
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
                return fail(e, TF_EINVAL,
                            isnan(d) ? "NaN (JSON has no NaN)"
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

/* ---- JSON to Lua ----
 *
 * Parsed straight onto the Lua stack, one pass, no tree in between (RFC
 * 8259 as jansson reads it with JSON_DECODE_ANY | JSON_ALLOW_NUL: any value
 * at the top, UTF-8 text, \u escapes with surrogate pairs, NUL allowed in
 * strings but not in object keys, integers within 64 bits, finite reals).
 * Every object is a table marked as a JSON object, every array one marked
 * as an array; null is the light userdata NULL.  Scratch memory for
 * escaped strings is a Lua userdata, so a memory error raised by Lua frees
 * everything. */

typedef struct {
    lua_State *L;
    const char *start, *p, *end;
    int max_depth;
    int rc;
    char *err;
} jparse_t;

static int jfail(jparse_t *j, const char *at, const char *why) {
    if (j->rc != 0) {
        return j->rc;
    }
    int line = 1, column = 1;
    for (const char *c = j->start; c < at && c < j->end; c++) {
        line += *c == '\n';
        column = *c == '\n' ? 1 : column + 1;
    }
    snprintf(j->err, TF_LUA_ERR_LEN, "malformed JSON at line %d, column %d: %s", line, column, why);
    j->rc = TF_EINVAL;
    return j->rc;
}

static void jskip_ws(jparse_t *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) {
        j->p++;
    }
}

static int jhex4(const char *p, const char *end, unsigned *out) {
    if (end - p < 4) {
        return -1;
    }
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            return -1;
        }
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

static size_t jutf8_put(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at j->p (its opening quote): pushed.  `key`: NUL refused. */
static int jstring(jparse_t *j, int key) {
    const char *open = j->p++, *s = j->p;
    int escaped = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) {
            return jfail(j, j->p, "control character in a string");
        }
        if (c == '\\') {
            escaped = 1;
            j->p += j->p + 1 < j->end ? 2 : 1;
        } else {
            j->p++;
        }
    }
    if (j->p >= j->end) {
        return jfail(j, open, "unterminated string");
    }
    const char *close = j->p++;
    size_t raw = (size_t)(close - s);
    if (!escaped) {
        if (!tf_utf8_valid(s, raw)) {
            return jfail(j, s, "invalid UTF-8 in a string");
        }
        lua_pushlstring(j->L, s, raw);
        return 0;
    }
    /* Decoded, never longer than the text: scratch owned by Lua. */
    char *out = lua_newuserdatauv(j->L, raw + 1, 0);
    size_t n = 0;
    for (const char *c = s; c < close;) {
        const char *run = c;
        while (c < close && *c != '\\') {
            c++;
        }
        if (!tf_utf8_valid(run, (size_t)(c - run))) {
            lua_pop(j->L, 1);
            return jfail(j, run, "invalid UTF-8 in a string");
        }
        memcpy(out + n, run, (size_t)(c - run));
        n += (size_t)(c - run);
        if (c >= close) {
            break;
        }
        char e = c[1];
        const char *esc = c;
        c += 2;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *hit = e != '\0' ? strchr(from, e) : NULL;
        if (hit != NULL) {
            out[n++] = to[hit - from];
            continue;
        }
        unsigned cp = 0, lo = 0;
        if (e != 'u' || jhex4(c, close, &cp) != 0) {
            lua_pop(j->L, 1);
            return jfail(j, esc, "invalid escape in a string");
        }
        c += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate: its low one follows */
            if (close - c < 6 || c[0] != '\\' || c[1] != 'u' || jhex4(c + 2, close, &lo) != 0 ||
                lo < 0xDC00 || lo > 0xDFFF) {
                lua_pop(j->L, 1);
                return jfail(j, esc, "invalid Unicode surrogate in a string");
            }
            c += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            lua_pop(j->L, 1);
            return jfail(j, esc, "invalid Unicode surrogate in a string");
        }
        if (cp == 0 && key) {
            lua_pop(j->L, 1);
            return jfail(j, esc, "NUL byte in an object key");
        }
        n += jutf8_put(out + n, cp);
    }
    lua_pushlstring(j->L, out, n);
    lua_remove(j->L, -2); /* the scratch */
    return 0;
}

static int jnumber(jparse_t *j) {
    const char *s = j->p, *c = s;
    int real = 0;
    c += c < j->end && *c == '-';
    if (c >= j->end || !(*c >= '0' && *c <= '9')) {
        return jfail(j, s, "invalid token");
    }
    if (*c == '0') {
        c++;
    } else {
        while (c < j->end && *c >= '0' && *c <= '9') {
            c++;
        }
    }
    if (c < j->end && *c == '.') {
        real = 1;
        c++;
        if (c >= j->end || !(*c >= '0' && *c <= '9')) {
            return jfail(j, s, "invalid number");
        }
        while (c < j->end && *c >= '0' && *c <= '9') {
            c++;
        }
    }
    if (c < j->end && (*c == 'e' || *c == 'E')) {
        real = 1;
        c++;
        c += c < j->end && (*c == '+' || *c == '-');
        if (c >= j->end || !(*c >= '0' && *c <= '9')) {
            return jfail(j, s, "invalid number");
        }
        while (c < j->end && *c >= '0' && *c <= '9') {
            c++;
        }
    }
    j->p = c;
    if (!real) {
        int neg = *s == '-';
        uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (const char *d = s + neg; d < c; d++) {
            unsigned digit = (unsigned)(*d - '0');
            if (v > (limit - digit) / 10) {
                return jfail(j, s, "too big integer");
            }
            v = v * 10 + digit;
        }
        lua_pushinteger(j->L, neg ? (lua_Integer)(0 - v) : (lua_Integer)v);
        return 0;
    }
    char small[64], *text = small;
    size_t len = (size_t)(c - s);
    if (len >= sizeof(small)) {
        text = lua_newuserdatauv(j->L, len + 1, 0);
    }
    memcpy(text, s, len);
    text[len] = '\0';
    errno = 0;
    double d = strtod(text, NULL);
    if (text != small) {
        lua_pop(j->L, 1);
    }
    if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE) {
        return jfail(j, s, "real number overflow");
    }
    lua_pushnumber(j->L, d);
    return 0;
}

static int jvalue(jparse_t *j, int depth);

static int jcontainer(jparse_t *j, int depth, int object) {
    /* Counted as the encoder counts: at most max_depth arrays and objects
     * nested in one another. */
    if (depth >= j->max_depth) {
        snprintf(j->err, TF_LUA_ERR_LEN, "JSON nested deeper than %d", j->max_depth);
        j->rc = TF_EINVAL;
        return j->rc;
    }
    if (!lua_checkstack(j->L, 4)) {
        snprintf(j->err, TF_LUA_ERR_LEN, "out of Lua stack");
        j->rc = TF_ENOMEM;
        return j->rc;
    }
    const char *open = j->p++;
    if (object) {
        tf_lua_json_push_object(j->L);
    } else {
        tf_lua_json_push_array(j->L);
    }
    char close = object ? '}' : ']';
    jskip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (lua_Integer i = 1;; i++) {
        if (object) {
            jskip_ws(j);
            if (j->p >= j->end || *j->p != '"') {
                return jfail(j, j->p, "string or '}' expected");
            }
            if (jstring(j, 1) != 0) {
                return j->rc;
            }
            jskip_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                lua_pop(j->L, 1);
                return jfail(j, j->p, "':' expected");
            }
            j->p++;
        }
        if (jvalue(j, depth + 1) != 0) {
            if (object) {
                lua_pop(j->L, 1); /* the key */
            }
            return j->rc;
        }
        if (object) {
            lua_rawset(j->L, -3);
        } else {
            lua_rawseti(j->L, -2, i);
        }
        jskip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 0;
        }
        return jfail(j, j->p < j->end ? j->p : open,
                     object ? "',' or '}' expected" : "',' or ']' expected");
    }
}

/* One value: pushed (0), or nothing pushed and j->rc set. */
static int jvalue(jparse_t *j, int depth) {
    jskip_ws(j);
    if (j->p >= j->end) {
        return jfail(j, j->p, "unexpected end of input");
    }
    int rc = 0;
    int top = lua_gettop(j->L);
    switch (*j->p) {
    case '{':
        rc = jcontainer(j, depth, 1);
        break;
    case '[':
        rc = jcontainer(j, depth, 0);
        break;
    case '"':
        rc = jstring(j, 0);
        break;
    case 't':
    case 'f':
    case 'n': {
        static const char *const words[] = {"true", "false", "null"};
        const char *w = words[*j->p == 't' ? 0 : *j->p == 'f' ? 1 : 2];
        size_t wl = strlen(w);
        if ((size_t)(j->end - j->p) < wl || memcmp(j->p, w, wl) != 0) {
            return jfail(j, j->p, "invalid token");
        }
        j->p += wl;
        if (*w == 'n') {
            lua_pushlightuserdata(j->L, NULL);
        } else {
            lua_pushboolean(j->L, *w == 't');
        }
        break;
    }
    default:
        rc = jnumber(j);
        break;
    }
    if (rc != 0) {
        lua_settop(j->L, top); /* a container's partial table */
    }
    return rc;
}

int tf_lua_push_json(lua_State *L, const char *text, size_t len, int max_depth,
                     char err[TF_LUA_ERR_LEN]) {
    err[0] = '\0';
    jparse_t j = {.L = L,
                  .start = text,
                  .p = text,
                  .end = text + len,
                  .max_depth = max_depth > 0 ? max_depth : TF_LUA_JSON_DEPTH_MAX,
                  .err = err};
    if (!lua_checkstack(L, 4)) {
        snprintf(err, TF_LUA_ERR_LEN, "out of Lua stack");
        return TF_ENOMEM;
    }
    if (jvalue(&j, 0) != 0) {
        return j.rc;
    }
    jskip_ws(&j);
    if (j.p != j.end) {
        lua_pop(L, 1);
        return jfail(&j, j.p, "end of input expected");
    }
    return 0;
}
