/*
 * fuzz_convert.c - fuzz target of the Lua <-> JSON conversion
 * (lua/convert.h), the sandbox's one crossing for data.
 *
 * The input is a small program that builds a Lua value: each byte an
 * operation (push a string, an integer, a float from 8 raw bytes (NaN and
 * infinities included), a boolean, null, a new table, a table with a
 * metatable whose every metamethod records that it ran, set a field, append,
 * make a cycle, nest).  The value is converted to JSON with a byte limit;
 * the properties checked:
 *   - no metamethod ever runs;
 *   - a conversion that succeeds gives valid JSON within the limit, which
 *     converts back to Lua and again to the same text;
 *   - a conversion that fails says why and leaves the stack as it was.
 * Then the input itself is parsed as JSON text (tf_lua_push_json) and, when
 * it parses, converted back.
 * Built with libFuzzer (clang, TF_FUZZ=ON) or with fuzz_main.c, which runs
 * the corpus and seeded mutations (the short run of the test suite).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>

#include "adapters/json/jbuf.h"
#include "engine/error.h"
#include "lua/convert.h"

static int metamethod_ran;

static int record(lua_State *L) {
    (void)L;
    metamethod_ran = 1;
    return 0;
}

static void push_trap_table(lua_State *L) {
    lua_newtable(L);
    lua_createtable(L, 0, 6);
    static const char *const events[] = {"__index", "__newindex", "__pairs",
                                         "__len",   "__tostring", "__call"};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        lua_pushcfunction(L, record);
        lua_setfield(L, -2, events[i]);
    }
    lua_setmetatable(L, -2);
}

typedef struct {
    const uint8_t *p, *end;
} input_t;

static int next_byte(input_t *in) {
    return in->p < in->end ? *in->p++ : -1;
}

/* Builds the value; at most `budget` operations, the stack kept small. */
static void build(lua_State *L, input_t *in) {
    int base = lua_gettop(L);
    int ops = 0;
    int op;
    while ((op = next_byte(in)) >= 0 && ops++ < 4096) {
        int top = lua_gettop(L) - base;
        if (top > 64) {
            lua_settop(L, base + 1);
            top = 1;
        }
        if (!lua_checkstack(L, 8)) {
            abort();
        }
        switch (op % 12) {
        case 0: { /* string of n bytes */
            int n = next_byte(in);
            n = n < 0 ? 0 : n % 32;
            size_t avail = (size_t)(in->end - in->p);
            size_t len = (size_t)n < avail ? (size_t)n : avail;
            lua_pushlstring(L, (const char *)in->p, len);
            in->p += len;
            break;
        }
        case 1:
            lua_pushinteger(L, (lua_Integer)(int8_t)next_byte(in) * 1000003);
            break;
        case 2: {
            double d = 0;
            size_t avail = (size_t)(in->end - in->p);
            memcpy(&d, in->p, avail < sizeof(d) ? avail : sizeof(d));
            in->p += avail < sizeof(d) ? avail : sizeof(d);
            lua_pushnumber(L, d);
            break;
        }
        case 3:
            lua_pushboolean(L, next_byte(in) & 1);
            break;
        case 4:
            lua_pushlightuserdata(L, NULL); /* JSON null */
            break;
        case 5:
            lua_newtable(L);
            break;
        case 6:
            push_trap_table(L);
            break;
        case 7: /* t[k] = v: table, key, value on top */
            if (top >= 3 && lua_type(L, -3) == LUA_TTABLE && !lua_isnil(L, -2)) {
                lua_Number k = lua_type(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -2) : 0;
                if (k == k) { /* not NaN */
                    lua_rawset(L, -3);
                } else {
                    lua_pop(L, 2);
                }
            }
            break;
        case 8: /* append the top to the table below it */
            if (top >= 2 && lua_type(L, -2) == LUA_TTABLE) {
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            }
            break;
        case 9: /* a cycle: the table refers to itself */
            if (top >= 1 && lua_type(L, -1) == LUA_TTABLE) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            }
            break;
        case 10: /* nest the top n deep */
            for (int d = next_byte(in) % 48; d > 0; d--) {
                lua_createtable(L, 1, 0);
                lua_insert(L, -2);
                lua_rawseti(L, -2, 1);
            }
            break;
        case 11:
            if (top >= 1) {
                lua_pop(L, 1);
            }
            break;
        }
    }
    if (lua_gettop(L) == base) {
        lua_pushnil(L);
    }
}

static void check_roundtrip(lua_State *L, const char *text, size_t len) {
    char err[TF_LUA_ERR_LEN];
    int top = lua_gettop(L);
    if (tf_lua_push_json(L, text, len, 0, err) != 0) {
        abort(); /* our own output must parse */
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    if (tf_lua_to_json(L, -1, NULL, "again", &b, err) != 0) {
        abort();
    }
    /* Objects may come back in another key order: compare as JSON values. */
    json_t *x = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    json_t *y = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (x == NULL || y == NULL || !json_equal(x, y)) {
        abort();
    }
    json_decref(x);
    json_decref(y);
    tf_jbuf_free(&b);
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = luaL_newstate();
    tf_lua_json_init(L);
    input_t in = {data, data + size};
    build(L, &in);
    metamethod_ran = 0;
    int top = lua_gettop(L);
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    char err[TF_LUA_ERR_LEN];
    tf_lua_json_limits_t lim = {.max_bytes = 4096};
    int rc = tf_lua_to_json(L, -1, &lim, "result", &b, err);
    if (metamethod_ran || lua_gettop(L) != top) {
        abort();
    }
    if (rc == 0) {
        if (b.len > lim.max_bytes) {
            abort();
        }
        check_roundtrip(L, b.data, b.len);
    } else if (err[0] == '\0') {
        abort();
    }
    tf_jbuf_free(&b);
    /* The input as JSON text. */
    if (tf_lua_push_json(L, (const char *)data, size, 0, err) == 0) {
        tf_jbuf_init(&b);
        if (tf_lua_to_json(L, -1, NULL, "parsed", &b, err) == 0) {
            check_roundtrip(L, b.data, b.len);
        }
        tf_jbuf_free(&b);
    }
    lua_close(L);
    return 0;
}
