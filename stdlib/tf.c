/*
 * tf.c - the `tf` table: tf.json, tf.log, tf.now, tf.uuid, tf.base64,
 * tf.hmac_sha256, tf.fatal, tf.snooze (see tf.h; the waiting functions
 * are in http.c, wait.c and enqueue.c).
 */
#include "stdlib/tf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "adapters/json/jbuf.h"
#include "engine/error.h"
#include "engine/hex.h"
#include "lua/convert.h"

tf_stdlib_t *tf__stdlib_of(lua_State *L, tf_lua_run_t **run) {
    tf_lua_run_t *r = tf_lua_current(L);
    if (run != NULL) {
        *run = r;
    }
    return tf_lua_libs_ctx(r);
}

const char *tf__stdlib_check_string(lua_State *L, int arg, const char *fn, const char *name,
                                    size_t *len) {
    if (!lua_isstring(L, arg)) {
        luaL_error(L, "%s: %s must be a string, got %s", fn, name, luaL_typename(L, arg));
    }
    return lua_tolstring(L, arg, len);
}

lua_Integer tf__stdlib_check_integer(lua_State *L, int arg, const char *fn, const char *name) {
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, arg, &isint);
    if (!isint) {
        if (lua_type(L, arg) == LUA_TNUMBER) {
            luaL_error(L, "%s: %s must be an integer", fn, name);
        }
        luaL_error(L, "%s: %s must be an integer, got %s", fn, name, luaL_typename(L, arg));
    }
    return v;
}

void tf__stdlib_check_table(lua_State *L, int arg, const char *fn, const char *name) {
    if (lua_type(L, arg) != LUA_TTABLE) {
        luaL_error(L, "%s: %s must be a table, got %s", fn, name, luaL_typename(L, arg));
    }
}

/* ---- tf.json ---- */

static int json_encode(lua_State *L) {
    if (lua_isnone(L, 1)) {
        return luaL_error(L, "tf.json.encode: a value to encode is required");
    }
    lua_settop(L, 1);
    tf_lua_guard_t *g = tf_lua_push_guard(L, free); /* holds the text while it is pushed */
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    char err[TF_LUA_ERR_LEN];
    tf_lua_json_limits_t lim = {.max_bytes = TF_STDLIB_JSON_MAX};
    int rc = tf_lua_to_json(L, 1, &lim, "value", &b, err);
    if (rc != 0) {
        tf_jbuf_free(&b);
        if (rc == TF_ETOOBIG) {
            return luaL_error(L, "tf.json.encode: the text would pass %d bytes",
                              (int)TF_STDLIB_JSON_MAX);
        }
        return luaL_error(L, "tf.json.encode: %s", err);
    }
    char *text = NULL;
    size_t len = 0;
    rc = tf_jbuf_finish(&b, &text, &len);
    tf_jbuf_free(&b);
    if (rc != 0) {
        return luaL_error(L, "tf.json.encode: out of memory");
    }
    g->ptr = text;
    lua_pushlstring(L, text, len);
    tf_lua_guard_release(g);
    return 1;
}

static int json_decode(lua_State *L) {
    size_t len = 0;
    const char *text = tf__stdlib_check_string(L, 1, "tf.json.decode", "the text", &len);
    if (len > TF_STDLIB_JSON_MAX) {
        return luaL_error(L, "tf.json.decode: the text is larger than %d bytes",
                          (int)TF_STDLIB_JSON_MAX);
    }
    char err[TF_LUA_ERR_LEN];
    if (tf_lua_push_json(L, text, len, 0, err) != 0) {
        return luaL_error(L, "tf.json.decode: %s", err);
    }
    return 1;
}

static int json_array(lua_State *L) {
    tf_lua_json_push_array(L);
    return 1;
}

static int json_object(lua_State *L) {
    tf_lua_json_push_object(L);
    return 1;
}

static void open_json(lua_State *L) {
    static const luaL_Reg fns[] = {{"encode", json_encode},
                                   {"decode", json_decode},
                                   {"array", json_array},
                                   {"object", json_object},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_setfield(L, -2, "json");
}

/* ---- tf.log ---- */

static int field_key_ok(const char *k, size_t len) {
    if (len == 0 || len > 64) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return 0;
        }
    }
    /* The host's own tags cannot be overwritten. */
    static const char *const reserved[] = {"ts",      "level",  "msg",    "tenant_id", "job_id",
                                           "rule_id", "run_id", "source", NULL};
    for (size_t i = 0; reserved[i] != NULL; i++) {
        if (strcmp(k, reserved[i]) == 0) {
            return 0;
        }
    }
    return 1;
}

static int log_at(lua_State *L, tf_log_level_t level, const char *fn) {
    tf_lua_run_t *run = tf_lua_current(L);
    size_t mlen = 0;
    if (!lua_isstring(L, 1)) {
        return luaL_error(L, "tf.log.%s: the message must be a string, got %s", fn,
                          luaL_typename(L, 1));
    }
    const char *msg = lua_tolstring(L, 1, &mlen);
    int t = lua_type(L, 2);
    if (t != LUA_TNONE && t != LUA_TNIL && t != LUA_TTABLE) {
        return luaL_error(L, "tf.log.%s: fields must be a table of names to values", fn);
    }
    tf_log_field_t fields[TF_STDLIB_LOG_FIELDS_MAX + 6];
    size_t n = 0;
    size_t charge = mlen;
    if (t == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 2) != 0) {
            if (n >= TF_STDLIB_LOG_FIELDS_MAX) {
                return luaL_error(L, "tf.log.%s: more than %d fields", fn,
                                  TF_STDLIB_LOG_FIELDS_MAX);
            }
            size_t klen = 0;
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
            if (k == NULL || !field_key_ok(k, klen)) {
                return luaL_error(L,
                                  "tf.log.%s: field names are 1-64 characters of "
                                  "[A-Za-z0-9_.-] and not a tag of TaskFlow's",
                                  fn);
            }
            tf_log_field_t *f = &fields[n];
            f->key = k;
            switch (lua_type(L, -1)) {
            case LUA_TSTRING: {
                size_t vlen = 0;
                f->kind = TF_LOG_FIELD_STR;
                f->s = lua_tolstring(L, -1, &vlen);
                charge += vlen;
                break;
            }
            case LUA_TNUMBER:
                if (lua_isinteger(L, -1)) {
                    f->kind = TF_LOG_FIELD_INT;
                    f->i = (long long)lua_tointeger(L, -1);
                } else {
                    f->kind = TF_LOG_FIELD_DOUBLE;
                    f->d = lua_tonumber(L, -1);
                }
                break;
            case LUA_TBOOLEAN:
                f->kind = TF_LOG_FIELD_BOOL;
                f->i = lua_toboolean(L, -1);
                break;
            default:
                return luaL_error(L, "tf.log.%s: field '%s' must be a string, number or boolean",
                                  fn, k);
            }
            charge += klen;
            n++;
            /* The value stays referenced by the table (arg 2): pop it. */
            lua_pop(L, 1);
        }
    }
    tf_log_t *log = tf_lua_run_log(run);
    if (tf_lua_run_charge_log(run, charge) != 0) {
        if (tf_lua_run_log_dropped(run) == 1 && log != NULL) {
            const tf_lua_call_t *c = tf_lua_run_call(run);
            tf_log_warn(log, "script log limit reached: further lines of this run are dropped",
                        TF_LF_STR("tenant_id", c->tenant_id), TF_LF_STR("job_id", c->job_id),
                        TF_LF_STR("rule_id", c->rule_id), TF_LF_STR("run_id", tf_lua_run_id(run)),
                        TF_LF_INT("limit_bytes", tf_lua_run_limits(run)->log_bytes));
        }
        return 0;
    }
    const tf_lua_call_t *c = tf_lua_run_call(run);
    char text[TF_STDLIB_LOG_MSG_MAX + 4];
    size_t keep = mlen < TF_STDLIB_LOG_MSG_MAX ? mlen : TF_STDLIB_LOG_MSG_MAX;
    memcpy(text, msg, keep);
    text[keep] = '\0';
    if (keep < mlen) {
        memcpy(text + keep, "...", 4);
    }
    if (c->on_log != NULL) {
        c->on_log(c->log_arg, fn, text, fields, n);
    }
    if (log == NULL || !tf_log_enabled(log, level)) {
        return 0;
    }
    fields[n++] = TF_LF_STR("source", "script");
    fields[n++] = TF_LF_STR("tenant_id", c->tenant_id);
    fields[n++] = TF_LF_STR("run_id", tf_lua_run_id(run));
    if (c->job_id != NULL) {
        fields[n++] = TF_LF_STR("job_id", c->job_id);
    }
    if (c->rule_id != NULL) {
        fields[n++] = TF_LF_STR("rule_id", c->rule_id);
    }
    tf_log_emit(log, level, text, fields, n);
    return 0;
}

static int log_debug(lua_State *L) {
    return log_at(L, TF_LOG_DEBUG, "debug");
}
static int log_info(lua_State *L) {
    return log_at(L, TF_LOG_INFO, "info");
}
static int log_warn(lua_State *L) {
    return log_at(L, TF_LOG_WARN, "warn");
}
static int log_error(lua_State *L) {
    return log_at(L, TF_LOG_ERROR, "error");
}

/* ---- small functions ---- */

static int tf_now(lua_State *L) {
    tf_lua_run_t *run = tf_lua_current(L);
    const tf_clock_t *clock = tf_lua_run_clock(run);
    lua_pushinteger(L, (lua_Integer)(clock != NULL ? tf_clock_now(clock) : 0));
    return 1;
}

static int tf_uuid(lua_State *L) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        return luaL_error(L, "tf.uuid: no randomness available");
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    char hex[33];
    tf_hex_encode(b, sizeof(b), hex);
    char out[37];
    snprintf(out, sizeof(out), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    lua_pushstring(L, out);
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_encode(lua_State *L) {
    size_t len = 0;
    const unsigned char *in =
        (const unsigned char *)tf__stdlib_check_string(L, 1, "tf.base64.encode", "the text", &len);
    if (len > ((size_t)1 << 30)) {
        return luaL_error(L, "tf.base64.encode: the text is too large");
    }
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (len + 2) / 3 * 4);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? B64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? B64[v & 63] : '=';
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

static int b64_value(unsigned char c) {
    const char *p = c != '\0' ? strchr(B64, c) : NULL;
    return p != NULL ? (int)(p - B64) : -1;
}

static int b64_decode(lua_State *L) {
    size_t len = 0;
    const unsigned char *in =
        (const unsigned char *)tf__stdlib_check_string(L, 1, "tf.base64.decode", "the text", &len);
    size_t data = len;
    while (data > 0 && in[data - 1] == '=' && len - data < 2) {
        data--;
    }
    if ((len != data && len % 4 != 0) || data % 4 == 1) {
        return luaL_error(L, "tf.base64.decode: not base64 (bad length or padding)");
    }
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, data / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < data; i++) {
        int v = b64_value(in[i]);
        if (v < 0) {
            return luaL_error(L, "tf.base64.decode: not base64 (byte %d)", (int)i + 1);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) {
        return luaL_error(L, "tf.base64.decode: not base64 (trailing bits)");
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

static int hmac_sha256(lua_State *L) {
    size_t klen = 0, mlen = 0;
    const char *key = tf__stdlib_check_string(L, 1, "tf.hmac_sha256", "the key", &klen);
    const char *msg = tf__stdlib_check_string(L, 2, "tf.hmac_sha256", "the message", &mlen);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, mac, &maclen) ==
            NULL ||
        klen > INT32_MAX) {
        return luaL_error(L, "tf.hmac_sha256: could not compute");
    }
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    tf_hex_encode(mac, maclen, hex);
    lua_pushstring(L, hex);
    return 1;
}

/* tf.fatal(message [, type]): fails the attempt for good. */
static int tf_fatal(lua_State *L) {
    size_t len = 0;
    const char *msg = tf__stdlib_check_string(L, 1, "tf.fatal", "the message", &len);
    const char *type = lua_isnoneornil(L, 2)
                           ? "fatal"
                           : tf__stdlib_check_string(L, 2, "tf.fatal", "the type", NULL);
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, msg, len);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "fatal");
    return lua_error(L);
}

/* tf.snooze(ms): the value an executor returns to run again after ms. */
static int tf_snooze(lua_State *L) {
    lua_Integer ms = tf__stdlib_check_integer(L, 1, "tf.snooze", "ms");
    if (ms < 1 || ms > TF_STDLIB_SNOOZE_MAX_MS) {
        return luaL_error(L, "tf.snooze: ms must be from 1 to %I",
                          (lua_Integer)TF_STDLIB_SNOOZE_MAX_MS);
    }
    tf_lua_push_snooze(L, (int64_t)ms);
    return 1;
}

void tf_stdlib_open(lua_State *L, void *ctx) {
    (void)ctx; /* reached through the run (tf_lua_libs_ctx) */
    static const luaL_Reg fns[] = {
        {"now", tf_now},     {"uuid", tf_uuid},     {"hmac_sha256", hmac_sha256},
        {"fatal", tf_fatal}, {"snooze", tf_snooze}, {NULL, NULL}};
    luaL_setfuncs(L, fns, 0);
    open_json(L);
    static const luaL_Reg log_fns[] = {{"debug", log_debug},
                                       {"info", log_info},
                                       {"warn", log_warn},
                                       {"error", log_error},
                                       {NULL, NULL}};
    luaL_newlib(L, log_fns);
    lua_setfield(L, -2, "log");
    static const luaL_Reg b64_fns[] = {
        {"encode", b64_encode}, {"decode", b64_decode}, {NULL, NULL}};
    luaL_newlib(L, b64_fns);
    lua_setfield(L, -2, "base64");
    tf__stdlib_open_http(L);
    tf__stdlib_open_wait(L);
    tf__stdlib_open_enqueue(L);
    tf__stdlib_open_triggers(L);
}
