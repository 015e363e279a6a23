/*
 * test_convert.c - lua/convert.c: Lua values to JSON and back, on a plain
 * lua_State (luaL_newstate, the stock libraries, tf_lua_json_init) without
 * a host.  Snippets build the values; `array()`, `object()` and `null` are
 * the markers a script gets as tf.json.array(), tf.json.object() and
 * tf.json.null.  The suite runs under ASan and LSan, so the error paths
 * are also checked for leaks.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>

#include "adapters/json/jbuf.h"
#include "engine/error.h"
#include "lua/convert.h"

static int push_array(lua_State *L) {
    tf_lua_json_push_array(L);
    return 1;
}

static int push_object(lua_State *L) {
    tf_lua_json_push_object(L);
    return 1;
}

static lua_State *new_state(void) {
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    tf_lua_json_init(L);
    lua_register(L, "array", push_array);
    lua_register(L, "object", push_object);
    lua_pushlightuserdata(L, NULL);
    lua_setglobal(L, "null");
    return L;
}

static int setup(void **state) {
    *state = new_state();
    return 0;
}

static int teardown(void **state) {
    lua_State *L = *state;
    assert_int_equal(lua_gettop(L), 0); /* every test leaves the stack as it found it */
    lua_close(L);
    return 0;
}

/* Pushes the value the Lua snippet `src` returns. */
static void push_lua(lua_State *L, const char *src) {
    if (luaL_dostring(L, src) != LUA_OK) {
        print_error("snippet failed: %s\n", lua_tostring(L, -1));
        fail();
    }
}

typedef struct {
    int rc;
    char json[4096];
    char err[TF_LUA_ERR_LEN];
} enc_result_t;

/* Converts the value `src` returns with limits `lim` (may be NULL), named
 * "result"; checks that the conversion left the stack as it was. */
static enc_result_t encode_lim(lua_State *L, const char *src, const tf_lua_json_limits_t *lim) {
    enc_result_t r;
    memset(&r, 0, sizeof(r));
    push_lua(L, src);
    int top = lua_gettop(L);
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    r.rc = tf_lua_to_json(L, -1, lim, "result", &b, r.err);
    assert_int_equal(lua_gettop(L), top);
    if (r.rc == 0) {
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(tf_jbuf_finish(&b, &text, &len), 0);
        assert_true(len < sizeof(r.json));
        memcpy(r.json, text, len + 1);
        free(text);
    }
    tf_jbuf_free(&b);
    lua_pop(L, 1);
    return r;
}

static enc_result_t encode(lua_State *L, const char *src) {
    return encode_lim(L, src, NULL);
}

#define assert_encodes(L, src, want)                                                               \
    do {                                                                                           \
        enc_result_t r_ = encode((L), (src));                                                      \
        if (r_.rc != 0) {                                                                          \
            print_error("%s: %d %s\n", (src), r_.rc, r_.err);                                      \
        }                                                                                          \
        assert_int_equal(r_.rc, 0);                                                                \
        assert_string_equal(r_.json, (want));                                                      \
    } while (0)

#define assert_refused(L, src, code, fragment)                                                     \
    do {                                                                                           \
        enc_result_t r_ = encode((L), (src));                                                      \
        if (r_.rc != (code) || strstr(r_.err, (fragment)) == NULL) {                               \
            print_error("%s: got %d '%s' (%s), want %d '%s'\n", (src), r_.rc, r_.err, r_.json,     \
                        (int)(code), (fragment));                                                  \
        }                                                                                          \
        assert_int_equal(r_.rc, (code));                                                           \
        assert_non_null(strstr(r_.err, (fragment)));                                               \
    } while (0)

/* Equal as JSON values (member order aside). */
static void assert_json_equal(const char *got, const char *want) {
    json_error_t e;
    json_t *g = json_loads(got, JSON_DECODE_ANY, &e);
    json_t *w = json_loads(want, JSON_DECODE_ANY, &e);
    assert_non_null(g);
    assert_non_null(w);
    if (!json_equal(g, w)) {
        print_error("got %s, want %s\n", got, want);
    }
    assert_true(json_equal(g, w));
    json_decref(g);
    json_decref(w);
}

/* Decodes `json` and leaves the value in global `v`.  Returns the code. */
static int decode(lua_State *L, const char *json, int max_depth, char err[TF_LUA_ERR_LEN]) {
    int top = lua_gettop(L);
    int rc = tf_lua_push_json(L, json, strlen(json), max_depth, err);
    assert_int_equal(lua_gettop(L), top + (rc == 0 ? 1 : 0));
    if (rc == 0) {
        lua_setglobal(L, "v");
    }
    return rc;
}

/* Runs a snippet that must return true about global `v`. */
static void assert_lua_true(lua_State *L, const char *src) {
    push_lua(L, src);
    if (!lua_toboolean(L, -1)) {
        print_error("not true: %s\n", src);
    }
    assert_true(lua_toboolean(L, -1));
    lua_pop(L, 1);
}

static char *nested(const char *open, const char *middle, const char *close, int n) {
    size_t lo = strlen(open), lm = strlen(middle), lc = strlen(close);
    char *s = malloc(n * (lo + lc) + lm + 1);
    assert_non_null(s);
    char *p = s;
    for (int i = 0; i < n; i++, p += lo) {
        memcpy(p, open, lo);
    }
    memcpy(p, middle, lm);
    p += lm;
    for (int i = 0; i < n; i++, p += lc) {
        memcpy(p, close, lc);
    }
    *p = '\0';
    return s;
}

/* ---- Lua to JSON ---- */

static void test_convert__arrays_and_objects(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "return {1, 2, 3}", "[1,2,3]");
    assert_encodes(L, "return {'a', {'b'}, {{}}}", "[\"a\",[\"b\"],[{}]]");
    assert_encodes(L, "return {a = 1}", "{\"a\":1}");
    assert_encodes(L, "return {a = {b = {c = 'd'}}}", "{\"a\":{\"b\":{\"c\":\"d\"}}}");
    enc_result_t r = encode(L, "return {x = 1, y = {true, false}, ['1'] = 'one', [''] = 0}");
    assert_int_equal(r.rc, 0);
    assert_json_equal(r.json, "{\"x\":1,\"y\":[true,false],\"1\":\"one\",\"\":0}");
    /* Keys 1..n make an array whatever order they were set in. */
    assert_encodes(L, "local t = {} t[3] = 'c' t[1] = 'a' t[2] = 'b' return t",
                   "[\"a\",\"b\",\"c\"]");
    assert_encodes(L, "local t = {1, 2, 3, 4} t[4] = nil return t", "[1,2,3]");
    /* Scalars at the top. */
    assert_encodes(L, "return 'text'", "\"text\"");
    assert_encodes(L, "return true", "true");
    assert_encodes(L, "return 'quote\" back\\\\ nl\\n tab\\t ctl\\1'",
                   "\"quote\\\" back\\\\ nl\\n tab\\t ctl\\u0001\"");
    assert_encodes(L, "return 'caf\\u{e9} \\u{1F600}'", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
}

static void test_convert__empty_table_and_markers(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "return {}", "{}");
    assert_encodes(L, "return array()", "[]");
    assert_encodes(L, "return object()", "{}");
    enc_result_t r = encode(L, "return {items = array(), meta = object()}");
    assert_int_equal(r.rc, 0);
    assert_json_equal(r.json, "{\"items\":[],\"meta\":{}}");
    assert_encodes(L, "return {array(), {}, object()}", "[[],{},{}]");
    /* A marker only speaks for an empty table. */
    assert_encodes(L, "local t = array() t[1] = 'x' return t", "[\"x\"]");
    assert_encodes(L, "local t = array() t.k = 'x' return t", "{\"k\":\"x\"}");
    assert_encodes(L, "local t = object() t.k = 'x' return t", "{\"k\":\"x\"}");
    /* The markers are pushed from C too. */
    tf_lua_json_push_array(L);
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    char err[TF_LUA_ERR_LEN];
    assert_int_equal(tf_lua_to_json(L, -1, NULL, "result", &b, err), 0);
    assert_string_equal(b.data, "[]");
    tf_jbuf_free(&b);
    lua_pop(L, 1);
    /* Another metatable on an empty table does not make it an array. */
    assert_encodes(L, "return setmetatable({}, {__name = 'json array'})", "{}");
}

static void test_convert__null_both_ways(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "return null", "null");
    assert_encodes(L, "return nil", "null");
    assert_encodes(L, "return {1, null, 3}", "[1,null,3]");
    assert_encodes(L, "return {null, null}", "[null,null]");
    assert_encodes(L, "return {a = null}", "{\"a\":null}");
    assert_encodes(L, "return {a = nil}", "{}");
    char err[TF_LUA_ERR_LEN];
    assert_int_equal(decode(L, "[1,null,3]", 0, err), 0);
    assert_lua_true(L, "return #v == 3 and v[1] == 1 and v[2] == null and v[3] == 3"
                       " and type(v[2]) == 'userdata'");
    assert_int_equal(decode(L, "{\"a\":null}", 0, err), 0);
    assert_lua_true(L, "return v.a == null and rawget(v, 'a') ~= nil");
    assert_int_equal(decode(L, "null", 0, err), 0);
    assert_lua_true(L, "return v == null");
    /* A light userdata that is not NULL is refused. */
    static int something;
    lua_pushlightuserdata(L, &something);
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    assert_int_equal(tf_lua_to_json(L, -1, NULL, "result", &b, err), TF_EINVAL);
    assert_non_null(strstr(err, "light userdata at result"));
    tf_jbuf_free(&b);
    lua_pop(L, 1);
}

static void test_convert__integers_and_floats(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "return 1", "1");
    assert_encodes(L, "return 1.0", "1.0");
    assert_encodes(L, "return -1.0", "-1.0");
    assert_encodes(L, "return 0.5", "0.5");
    assert_encodes(L, "return -0.0", "-0.0");
    assert_encodes(L, "return 3 / 2", "1.5");
    assert_encodes(L, "return 4 / 2", "2.0");
    assert_encodes(L, "return 2^53", "9007199254740992.0");
    assert_encodes(L, "return 1e300", "1.0000000000000001e+300");
    assert_encodes(L, "return math.maxinteger", "9223372036854775807");
    assert_encodes(L, "return math.mininteger", "-9223372036854775808");
    assert_encodes(L, "return {1, 1.0, '1'}", "[1,1.0,\"1\"]");
    /* Floats survive the round trip exactly. */
    char err[TF_LUA_ERR_LEN];
    static const char *const floats[] = {"0.1", "1/3", "-2.5e-300", "1e300", "2^63", "5e-324"};
    for (size_t i = 0; i < sizeof(floats) / sizeof(floats[0]); i++) {
        char src[64];
        snprintf(src, sizeof(src), "return %s", floats[i]);
        enc_result_t r = encode(L, src);
        assert_int_equal(r.rc, 0);
        assert_int_equal(decode(L, r.json, 0, err), 0);
        snprintf(src, sizeof(src), "return math.type(v) == 'float' and v == %s", floats[i]);
        assert_lua_true(L, src);
    }
    assert_int_equal(decode(L, "[1, 1.0, 1e2, -0, 9223372036854775807]", 0, err), 0);
    assert_lua_true(L, "return math.type(v[1]) == 'integer' and math.type(v[2]) == 'float'"
                       " and math.type(v[3]) == 'float' and v[3] == 100"
                       " and math.type(v[4]) == 'integer' and v[5] == math.maxinteger");
}

static void test_convert__nan_and_infinities_refused(void **state) {
    lua_State *L = *state;
    assert_refused(L, "return 0/0", TF_EINVAL, "NaN (JSON has no NaN) at result");
    assert_refused(L, "return {x = math.huge}", TF_EINVAL, "infinite number");
    assert_refused(L, "return {x = math.huge}", TF_EINVAL, "at result.x");
    assert_refused(L, "return {1, {-math.huge}}", TF_EINVAL,
                   "infinite number (JSON has none) at result[2][1]");
}

static void test_convert__bad_strings_and_keys_refused(void **state) {
    lua_State *L = *state;
    assert_refused(L, "return '\\xff'", TF_EINVAL, "a string that is not UTF-8 at result");
    assert_refused(L, "return {name = 'ok\\xc3'}", TF_EINVAL, "not UTF-8 at result.name");
    assert_refused(L, "return {'\\xed\\xa0\\x80'}", TF_EINVAL, "not UTF-8 at result[1]");
    assert_refused(L, "return {['\\xff'] = 1}", TF_EINVAL, "a key that is not UTF-8");
    assert_refused(L, "return {a = {['k\\0'] = 1}}", TF_EINVAL,
                   "a key that is not UTF-8 text without NUL at result.a");
    /* NUL in a value is fine: JSON escapes it. */
    assert_encodes(L, "return 'a\\0b'", "\"a\\u0000b\"");
}

static void test_convert__keys_that_are_neither_refused(void **state) {
    lua_State *L = *state;
    static const char *const bad[] = {
        "return {[true] = 1}",    "return {1, 2, x = 3}",
        "return {1, nil, 3}",     "return {[0] = 'zero'}",
        "return {[2] = 'two'}",   "return {[-1] = 'x'}",
        "return {[1.5] = 'x'}",   "return {[{}] = 'x'}",
        "return {[print] = 'x'}", "local t = {} for i = 1, 10 do t[i] = i end t[5] = nil return t",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_refused(L, bad[i], TF_EINVAL, "a table key that is not a string (objects) or 1..n");
        assert_refused(L, bad[i], TF_EINVAL, " at result");
    }
    assert_refused(L, "return {a = {b = {[true] = 1}}}", TF_EINVAL, " at result.a.b");
    /* Float keys with integer values are integer keys in Lua. */
    assert_encodes(L, "return {[1.0] = 'a', [2.0] = 'b'}", "[\"a\",\"b\"]");
}

static void test_convert__other_types_refused(void **state) {
    lua_State *L = *state;
    assert_refused(L, "return print", TF_EINVAL, "function at result");
    assert_refused(L, "return {f = function() end}", TF_EINVAL, "function at result.f");
    assert_refused(L, "return {coroutine.create(print)}", TF_EINVAL, "thread at result[1]");
    assert_refused(L, "return {io.stdout}", TF_EINVAL, "userdata at result[1]");
}

static void test_convert__depth_limit(void **state) {
    lua_State *L = *state;
    /* 31 levels of tables pass (32: test_convert__thirty_two_levels), the 33rd is refused. */
    char *want = nested("[", "{}", "]", 30);
    assert_encodes(L, "local t = {} local c = t for i = 2, 31 do c[1] = {} c = c[1] end return t",
                   want);
    free(want);
    enc_result_t r;
    assert_refused(L, "local t = {} local c = t for i = 2, 33 do c.x = {} c = c.x end return t",
                   TF_EINVAL, "nested deeper than 32 at result.x.x.x");
    /* Checked before recursing: no C stack is spent on the rest. */
    assert_refused(L,
                   "local t = {} local c = t for i = 1, 100000 do c[1] = {} c = c[1] end"
                   " return t",
                   TF_EINVAL, "nested deeper than 32 at result[1][1]");
    /* A lower limit of the caller's. */
    tf_lua_json_limits_t lim = {.max_depth = 2};
    r = encode_lim(L, "return {a = {b = 1}}", &lim);
    assert_int_equal(r.rc, 0);
    r = encode_lim(L, "return {a = {b = {}}}", &lim);
    assert_int_equal(r.rc, TF_EINVAL);
    assert_string_equal(r.err, "nested deeper than 2 at result.a.b");
    /* A higher one is capped at TF_LUA_JSON_DEPTH_MAX. */
    lim.max_depth = 1000;
    r = encode_lim(L,
                   "local t = {} local c = t for i = 1, 100 do c[1] = {} c = c[1] end"
                   " return t",
                   &lim);
    assert_int_equal(r.rc, TF_EINVAL);
    assert_non_null(strstr(r.err, "nested deeper than 32"));
}

static void test_convert__cycles_named_by_path(void **state) {
    lua_State *L = *state;
    enc_result_t r = encode(L, "local t = {} t.a = t return t");
    assert_int_equal(r.rc, TF_EINVAL);
    assert_string_equal(r.err, "cycle at result.a");
    r = encode(L, "local t = {a = {}} t.a.b = t.a return t");
    assert_string_equal(r.err, "cycle at result.a.b");
    r = encode(L, "local t = {} t[1] = t return t");
    assert_string_equal(r.err, "cycle at result[1]");
    r = encode(L, "local t = {{}, {x = {}}} t[2].x[1] = t return t");
    assert_string_equal(r.err, "cycle at result[2].x[1]");
    /* The same table twice, side by side, is no cycle. */
    r = encode(L, "local s = {1} return {s, s, {s}}");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.json, "[[1],[1],[[1]]]");
    /* A cycle that closes beyond the depth limit meets the limit first. */
    r = encode(L, "local t = {} local c = t for i = 1, 40 do c.x = {} c = c.x end c.x = t"
                  " return t");
    assert_int_equal(r.rc, TF_EINVAL);
    assert_non_null(strstr(r.err, "nested deeper than 32"));
}

static void test_convert__long_paths_are_cut_short(void **state) {
    lua_State *L = *state;
    /* 30 levels of 60-byte keys: the path outgrows any buffer, the message
     * is cut, nothing overflows (ASan watches). */
    enc_result_t r = encode(L, "local k = ('k'):rep(60) local t = {} local c = t"
                               " for i = 1, 30 do c[k] = {} c = c[k] end c[k] = print return t");
    assert_int_equal(r.rc, TF_EINVAL);
    assert_true(strlen(r.err) < TF_LUA_ERR_LEN);
    assert_non_null(strstr(r.err, "function at result.kkkk"));
    r = encode(L, "local t = {} local c = t for i = 1, 31 do c[1] = {} c = c[1] end"
                  " c[1] = 0/0 return t");
    assert_int_equal(r.rc, TF_EINVAL);
    assert_non_null(strstr(r.err, "NaN (JSON has no NaN) at result[1][1][1]"));
}

static void test_convert__output_limit(void **state) {
    lua_State *L = *state;
    tf_lua_json_limits_t lim = {.max_bytes = 7};
    enc_result_t r = encode_lim(L, "return 'hello'", &lim);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.json, "\"hello\"");
    lim.max_bytes = 6;
    r = encode_lim(L, "return 'hello'", &lim);
    assert_int_equal(r.rc, TF_ETOOBIG);
    assert_non_null(strstr(r.err, "output limit"));
    lim.max_bytes = 100;
    r = encode_lim(L, "return ('x'):rep(1000000)", &lim);
    assert_int_equal(r.rc, TF_ETOOBIG);
    r = encode_lim(L, "local t = {} for i = 1, 10000 do t[i] = i end return t", &lim);
    assert_int_equal(r.rc, TF_ETOOBIG);
    r = encode_lim(L, "local t = {} for i = 1, 100 do t['k' .. i] = {i} end return t", &lim);
    assert_int_equal(r.rc, TF_ETOOBIG);
    assert_non_null(strstr(r.err, "more than the output limit at result"));
    /* 0: unlimited. */
    lim.max_bytes = 0;
    r = encode_lim(L, "local t = {} for i = 1, 100 do t[i] = i end return t", &lim);
    assert_int_equal(r.rc, 0);
}

static void test_convert__no_metamethod_called(void **state) {
    lua_State *L = *state;
    push_lua(L,
             "called = {}\n"
             "local function flag(name) return function() called[name] = true end end\n"
             "local mt = {\n"
             "  __index = function(_, k) called.__index = true return 'fake' end,\n"
             "  __newindex = flag('__newindex'),\n"
             "  __pairs = function(t) called.__pairs = true"
             "    return function() return nil end, t, nil end,\n"
             "  __len = function() called.__len = true return 5 end,\n"
             "  __tostring = function() called.__tostring = true return 'fake' end,\n"
             "  __name = 'evil', __eq = flag('__eq'), __lt = flag('__lt'), __le = flag('__le'),\n"
             "  __call = flag('__call'), __concat = flag('__concat'), __close = flag('__close'),\n"
             "  __metatable = 'locked',\n"
             "}\n"
             "evil_mt = mt\n"
             "value = {\n"
             "  list = setmetatable({1, 2}, mt),\n"
             "  obj = setmetatable({k = 'v'}, mt),\n"
             "  empty = setmetatable({}, mt),\n"
             "  sparse_looking = setmetatable({1, 2, 3}, mt),\n"
             "}\n"
             "return setmetatable(value, mt)");
    lua_pop(L, 1);
    enc_result_t r = encode(L, "return value");
    assert_int_equal(r.rc, 0);
    assert_json_equal(r.json, "{\"list\":[1,2],\"obj\":{\"k\":\"v\"},\"empty\":{},"
                              "\"sparse_looking\":[1,2,3]}");
    assert_lua_true(L, "return next(called) == nil");
    /* Errors name the raw contents too, without a metamethod. */
    r = encode(L, "return setmetatable({bad = print}, evil_mt)");
    assert_int_equal(r.rc, TF_EINVAL);
    assert_string_equal(r.err, "function at result.bad");
    assert_lua_true(L, "return next(called) == nil");
    /* A metatable that refuses reads: __index erroring does not matter. */
    r = encode(L, "return setmetatable({a = 1}, {__index = function() error('boom') end})");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.json, "{\"a\":1}");
}

/* ---- JSON to Lua ---- */

static void test_convert__decode_values(void **state) {
    lua_State *L = *state;
    char err[TF_LUA_ERR_LEN];
    assert_int_equal(decode(L, "{\"a\":[1,2.5,\"x\",null,true,false,{},[]],\"b\":{}}", 0, err), 0);
    assert_lua_true(L, "return v.a[1] == 1 and v.a[2] == 2.5 and v.a[3] == 'x'"
                       " and v.a[4] == null and v.a[5] == true and v.a[6] == false"
                       " and next(v.a[7]) == nil and next(v.a[8]) == nil and #v.a == 8");
    /* Empty arrays and objects come back as what they were. */
    enc_result_t r = encode(L, "return v");
    assert_int_equal(r.rc, 0);
    assert_json_equal(r.json, "{\"a\":[1,2.5,\"x\",null,true,false,{},[]],\"b\":{}}");
    assert_int_equal(decode(L, "\"a\\u0000b\\u00e9\"", 0, err), 0);
    assert_lua_true(L, "return v == 'a\\0b\\u{e9}'");
    assert_int_equal(decode(L, "{\"1\":\"one\"}", 0, err), 0);
    assert_lua_true(L, "return v['1'] == 'one' and v[1] == nil");
    r = encode(L, "return v");
    assert_string_equal(r.json, "{\"1\":\"one\"}");
    assert_int_equal(decode(L, "  42  ", 0, err), 0);
    assert_lua_true(L, "return v == 42");
}

/* The text forms the parser reads (it writes the Lua values directly). */
static void test_convert__decode_text_forms(void **state) {
    lua_State *L = *state;
    char err[TF_LUA_ERR_LEN];
    assert_int_equal(decode(L, "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", 0, err), 0);
    assert_lua_true(L, "return v == '\" \\\\ / \\b \\f \\n \\r \\t'");
    /* A surrogate pair is one 4-byte character; raw UTF-8 passes as is. */
    assert_int_equal(decode(L, "\"\\ud83d\\ude00 \xf0\x9f\x98\x80 \\u20AC\"", 0, err), 0);
    assert_lua_true(L, "return v == '\\u{1F600} \\u{1F600} \\u{20AC}'");
    assert_int_equal(decode(L, "[-9223372036854775808, 9223372036854775807, -0, 0]", 0, err), 0);
    assert_lua_true(L, "return v[1] == math.mininteger and v[2] == math.maxinteger"
                       " and math.type(v[3]) == 'integer' and v[3] == 0");
    assert_int_equal(decode(L, "[1e2, 1E-2, -2.5e+3, 0.5, 1.0]", 0, err), 0);
    assert_lua_true(L, "return v[1] == 100.0 and math.type(v[1]) == 'float' and v[2] == 0.01"
                       " and v[3] == -2500.0 and v[4] == 0.5 and math.type(v[5]) == 'float'");
    /* A real longer than any stack buffer. */
    assert_int_equal(decode(L,
                            "0.0000000000000000000000000000000000000000000000000000000000000000"
                            "000000000000000000000000000000000000001e80",
                            0, err),
                     0);
    assert_lua_true(L, "return math.abs(v - 1e-23) < 1e-35");
    /* Duplicate keys: the last one wins; whitespace of every kind. */
    assert_int_equal(decode(L, " \t\r\n{ \"a\" : 1 ,\n\"a\":2 } \n", 0, err), 0);
    assert_lua_true(L, "return v.a == 2");
    /* An escaped key, and keys that look like numbers stay strings. */
    assert_int_equal(decode(L, "{\"k\\u00e9y\":1,\"2\":2}", 0, err), 0);
    assert_lua_true(L, "return v['k\\u{e9}y'] == 1 and v['2'] == 2 and v[2] == nil");
    static const char *const bad[] = {
        "\"a\\x\"",           /* unknown escape */
        "\"\\u12\"",          /* short \u */
        "\"\\udc00\"",        /* a lone low surrogate */
        "\"\\ud800\\u0041\"", /* a high one without its low one */
        "\"a\nb\"",           /* a raw control character */
        "\"abc",              /* unterminated */
        "01",                 /* leading zero: 0 then garbage */
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "[1 2]",
        "{\"a\":1,}",
        "{\"a\"}",
        "tru",
        "nullx",
        "-9223372036854775809",
        "-1e400",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[TF_LUA_ERR_LEN] = "untouched";
        int top = lua_gettop(L);
        int rc = tf_lua_push_json(L, bad[i], strlen(bad[i]), 0, why);
        if (rc != TF_EINVAL) {
            print_error("'%s' was accepted\n", bad[i]);
        }
        assert_int_equal(rc, TF_EINVAL);
        assert_int_equal(lua_gettop(L), top); /* nothing left on the stack */
        assert_non_null(strstr(why, "malformed JSON at line 1, column"));
    }
    /* The position is the fault's: line 2, column 6. */
    assert_int_equal(tf_lua_push_json(L, "{\"a\":1,\n\"b\": tru}", 17, 0, err), TF_EINVAL);
    assert_non_null(strstr(err, "line 2, column 6"));
}

static void test_convert__malformed_json_refused(void **state) {
    lua_State *L = *state;
    static const char *const bad[] = {
        "",
        "{",
        "[1,]",
        "nul",
        "{\"a\" 1}",
        "\"\xff\"",
        "1 2",
        "\"\\ud800\"",
        "{\"a\\u0000b\":1}",
        "9223372036854775808",
        "1e400",
        "[1,2",
        "'x'",
        "{a:1}",
        "NaN",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[TF_LUA_ERR_LEN] = "untouched";
        int rc = decode(L, bad[i], 0, err);
        if (rc != TF_EINVAL) {
            print_error("'%s' was accepted\n", bad[i]);
        }
        assert_int_equal(rc, TF_EINVAL);
        assert_non_null(strstr(err, "malformed JSON at line"));
    }
    /* Only `len` bytes are read. */
    char err[TF_LUA_ERR_LEN];
    assert_int_equal(tf_lua_push_json(L, "[1]garbage", 3, 0, err), 0);
    lua_pop(L, 1);
}

static void test_convert__deep_json_refused(void **state) {
    lua_State *L = *state;
    char err[TF_LUA_ERR_LEN];
    char *text = nested("[", "", "]", 32);
    assert_int_equal(decode(L, text, 0, err), 0);
    free(text);
    text = nested("[", "1", "]", 32);
    assert_int_equal(decode(L, text, 0, err), 0);
    free(text);
    text = nested("{\"k\":", "1", "}", 32);
    assert_int_equal(decode(L, text, 0, err), 0);
    free(text);
    /* 33 levels: refused, empty innermost or not. */
    text = nested("[", "", "]", 33);
    assert_int_equal(decode(L, text, 0, err), TF_EINVAL);
    assert_string_equal(err, "JSON nested deeper than 32");
    free(text);
    text = nested("{\"k\":", "{}", "}", 32);
    assert_int_equal(decode(L, text, 0, err), TF_EINVAL);
    free(text);
    text = nested("[", "1", "]", 33);
    assert_int_equal(decode(L, text, 0, err), TF_EINVAL);
    free(text);
    text = nested("[", "", "]", 100000);
    assert_int_equal(decode(L, text, 0, err), TF_EINVAL);
    free(text);
    /* A lower limit of the caller's. */
    assert_int_equal(decode(L, "[[1]]", 2, err), 0);
    assert_int_equal(decode(L, "[[[]]]", 2, err), TF_EINVAL);
    assert_string_equal(err, "JSON nested deeper than 2");
}

/* Whether a fresh jbuf takes `levels` nested arrays. */
static int jbuf_takes(int levels) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    for (int i = 0; i < levels; i++) {
        tf_jbuf_arr_open(&b);
    }
    int ok = !b.failed;
    tf_jbuf_free(&b);
    return ok;
}

/* The limit is 32 levels both ways, and what decodes encodes again (the
 * writer, adapters/json/jbuf.c, takes as many). */
static void test_convert__thirty_two_levels(void **state) {
    lua_State *L = *state;
    assert_true(jbuf_takes(TF_LUA_JSON_DEPTH_MAX));
    char *want = nested("[", "{}", "]", 31);
    assert_encodes(L, "local t = {} local c = t for i = 2, 32 do c[1] = {} c = c[1] end return t",
                   want);
    free(want);
    enc_result_t r = encode(L, "local t = {} local c = t for i = 2, 32 do c.x = {} c = c.x end"
                               " c.x = 'leaf' return t");
    assert_int_equal(r.rc, 0);
    char err[TF_LUA_ERR_LEN];
    char *text = nested("[", "1", "]", 32);
    assert_int_equal(decode(L, text, 0, err), 0);
    r = encode(L, "return v");
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.json, text);
    free(text);
}

/* ---- memory errors ---- */

typedef struct {
    size_t allocs_left; /* allocations that still succeed */
} budget_t;

static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    budget_t *b = ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > osize || ptr == NULL) {
        if (b->allocs_left == 0) {
            return NULL;
        }
        b->allocs_left--;
    }
    return realloc(ptr, nsize);
}

static int decode_protected(lua_State *L) {
    const char *text = lua_touserdata(L, 1);
    char err[TF_LUA_ERR_LEN];
    int rc = tf_lua_push_json(L, text, strlen(text), 0, err);
    lua_pushinteger(L, rc);
    return 2;
}

/* A memory error in the middle of building the Lua value (a longjmp out of
 * tf_lua_push_json) leaks nothing: the guard frees the parsed JSON. */
static void test_convert__memory_error_mid_decode_leaks_nothing(void **state) {
    (void)state;
    static const char text[] = "{\"a\":[1,2,3,{\"b\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}],\"c\":[[],{}],"
                               "\"d\":\"yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\"}";
    int failed = 0, succeeded = 0;
    for (size_t allow = 0; allow < 400 && succeeded == 0; allow++) {
        budget_t budget = {.allocs_left = (size_t)-1};
        lua_State *L = lua_newstate(budget_alloc, &budget);
        assert_non_null(L);
        tf_lua_json_init(L);
        lua_pushcfunction(L, decode_protected);
        lua_pushlightuserdata(L, (void *)text);
        budget.allocs_left = allow;
        int status = lua_pcall(L, 1, 2, 0);
        budget.allocs_left = (size_t)-1;
        if (status == LUA_OK) {
            assert_int_equal(lua_tointeger(L, -1), 0);
            succeeded++;
        } else {
            assert_int_equal(status, LUA_ERRMEM);
            failed++;
        }
        lua_close(L); /* collects the guard; LSan reports what it did not free */
    }
    assert_true(failed > 5);
    assert_int_equal(succeeded, 1);
}

static void test_convert__guard_releases_once(void **state) {
    lua_State *L = *state;
    tf_lua_guard_t *g = tf_lua_push_guard(L, free);
    g->ptr = malloc(16);
    tf_lua_guard_release(g);
    assert_null(g->ptr);
    tf_lua_guard_release(g); /* idempotent */
    g->ptr = malloc(32);     /* freed by __gc */
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT);
    assert_lua_true(L, "return true");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_convert__arrays_and_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__empty_table_and_markers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__null_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__integers_and_floats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__nan_and_infinities_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__bad_strings_and_keys_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_convert__keys_that_are_neither_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_convert__other_types_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__thirty_two_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__cycles_named_by_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__long_paths_are_cut_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__output_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__no_metamethod_called, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__decode_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__decode_text_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__malformed_json_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convert__deep_json_refused, setup, teardown),
        cmocka_unit_test(test_convert__memory_error_mid_decode_leaks_nothing),
        cmocka_unit_test_setup_teardown(test_convert__guard_releases_once, setup, teardown),
    };
    return cmocka_run_group_tests_name("lua convert", tests, NULL, NULL);
}
