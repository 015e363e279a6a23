/*
 * test_tf.c - the `tf` library of stdlib/ (tf.h, docs/lua.md) in a real
 * Lua host on a real libuv loop: every function's good paths and every
 * bad argument, whose error must name the function.  tf.log writes through
 * a real logger into a temporary file; tf.http.request talks to a tiny
 * HTTP server that the test runs on the same loop, through the real client
 * of adapters/httpclient/.  Tests assert orderings, never timings.
 */
#include "tests/lua/lua_harness.h"

#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "adapters/httpclient/client.h"
#include "adapters/log/log.h"
#include "engine/error.h"

/* ---- the environment: the harness's host, plus a logger ---- */

static h_env_t *env;
static FILE *log_file;
static tf_log_t *log_out;
static tf_http_client_t *http;

/* h_open() with a logger in the host's configuration. */
static h_env_t *open_env(const tf_lua_limits_t *limits, tf_log_t *log) {
    h_env_t *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->now_ms = 1700000000000;
    e->clock = (tf_clock_t){.now_ms = h_now, .ctx = e};
    e->lib = (tf_stdlib_t){.loop = &e->loop};
    tf_lua_config_t cfg = {
        .clock = &e->clock, .open_libs = tf_stdlib_open, .libs_ctx = &e->lib, .log = log};
    if (limits != NULL) {
        cfg.limits = *limits;
    } else {
        cfg.limits.instructions = 5000000;
        cfg.limits.timeout_ms = 2000;
    }
    assert_int_equal(tf_lua_host_create(&e->loop, &cfg, &e->host), 0);
    return e;
}

static int setup(void **state) {
    (void)state;
    env = h_open(NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    h_close(env);
    env = NULL;
    return 0;
}

/* The tf.log tests: a logger writing into a temporary file. */
static int log_setup(void **state) {
    (void)state;
    log_file = tmpfile();
    assert_non_null(log_file);
    assert_int_equal(tf_log_create(fileno(log_file), TF_LOG_DEBUG, &log_out), 0);
    env = open_env(NULL, log_out);
    return 0;
}

static int log_teardown(void **state) {
    teardown(state);
    tf_log_destroy(log_out);
    fclose(log_file);
    return 0;
}

static void reopen_logged(const tf_lua_limits_t *lim) {
    h_close(env);
    env = open_env(lim, log_out);
}

/* Closes the host, then the HTTP client (its aborted calls end first). */
static void close_env(void) {
    int closed = 0;
    tf_lua_host_close(env->host, h_closed, &closed);
    while (!closed) {
        uv_run(&env->loop, UV_RUN_ONCE);
    }
    if (http != NULL) {
        closed = 0;
        tf_http_client_close(http, h_closed, &closed);
        while (!closed) {
            uv_run(&env->loop, UV_RUN_ONCE);
        }
        http = NULL;
    }
}

/* Ends the loop once everything on it is closed. */
static void free_env(void) {
    uv_run(&env->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&env->loop), 0);
    free(env);
    env = NULL;
}

static void expect_ok(const char *source, const char *json) {
    h_result_t r = h_run(env, "t1", source);
    h_assert_ok(r, json);
}

static void expect_error(const char *source, const char *type, const char *fragment) {
    h_result_t r = h_run(env, "t1", source);
    h_assert_failed(r, type, fragment);
}

/* ---- tf.json ---- */

static void test_tf__json_encode(void **state) {
    (void)state;
    expect_ok("return tf.json.encode(1)", "\"1\"");
    expect_ok("return tf.json.encode(1.5)", "\"1.5\"");
    expect_ok("return tf.json.encode(2^53)", "\"9007199254740992.0\"");
    expect_ok("return tf.json.encode('a\"b')", "\"\\\"a\\\\\\\"b\\\"\"");
    expect_ok("return tf.json.encode(true)", "\"true\"");
    expect_ok("return tf.json.encode(nil)", "\"null\"");
    expect_ok("return tf.json.encode(tf.json.null)", "\"null\"");
    expect_ok("return tf.json.encode({1, 2, 3})", "\"[1,2,3]\"");
    expect_ok("return tf.json.encode({a = {b = 'c'}})", "\"{\\\"a\\\":{\\\"b\\\":\\\"c\\\"}}\"");
    expect_ok("return tf.json.encode({1, tf.json.null, 3})", "\"[1,null,3]\"");
    expect_ok("return tf.json.encode({})", "\"{}\"");
    expect_ok("return tf.json.encode(tf.json.array())", "\"[]\"");
    expect_ok("return tf.json.encode(tf.json.object())", "\"{}\"");
    expect_ok("return tf.json.encode({a = tf.json.array(), o = tf.json.object()}):len()", "15");
    /* A marked array that got elements is an array as usual. */
    expect_ok("local a = tf.json.array() a[1] = 'x' return tf.json.encode(a)", "\"[\\\"x\\\"]\"");
    /* No metamethod runs while encoding. */
    expect_ok("local t = setmetatable({a = 1}, {__index = function() error('ran') end,"
              " __pairs = function() error('ran') end}) return tf.json.encode(t)",
              "\"{\\\"a\\\":1}\"");
}

static void test_tf__json_round_trip(void **state) {
    (void)state;
    static const char src[] =
        "local function same(a, b)\n"
        "  if type(a) ~= type(b) then return false end\n"
        "  if type(a) ~= 'table' then return a == b end\n"
        "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
        "  for k in pairs(b) do if a[k] == nil then return false end end\n"
        "  return true\n"
        "end\n"
        "local v = {s = 'h\\u{e9}llo\\n\\0x', i = -42, f = 0.1, t = true, n = false,\n"
        "  list = {1, 'two', {three = 3}}, nested = {a = {b = {c = {}}}}, big = math.maxinteger}\n"
        "local back = tf.json.decode(tf.json.encode(v))\n"
        "return {same = same(v, back), i = math.type(back.i), f = math.type(back.f),\n"
        "        null = tf.json.decode('[1, null, 3]')[2] == tf.json.null,\n"
        "        n = #tf.json.decode('[1, null, 3]'),\n"
        "        empty_array = tf.json.encode(tf.json.decode('[]')),\n"
        "        empty_object = tf.json.encode(tf.json.decode('{}')),\n"
        "        text = tf.json.encode(tf.json.decode('{\"k\":[true,false,null,1.5,\"s\"]}'))}";
    h_result_t r = h_run(env, "t1", src);
    assert_int_equal(r.status, TF_LUA_OK);
    json_t *v = json_loads(r.result, 0, NULL);
    assert_non_null(v);
    assert_true(json_is_true(json_object_get(v, "same")));
    assert_string_equal(json_string_value(json_object_get(v, "i")), "integer");
    assert_string_equal(json_string_value(json_object_get(v, "f")), "float");
    assert_true(json_is_true(json_object_get(v, "null")));
    assert_int_equal(json_integer_value(json_object_get(v, "n")), 3);
    assert_string_equal(json_string_value(json_object_get(v, "empty_array")), "[]");
    assert_string_equal(json_string_value(json_object_get(v, "empty_object")), "{}");
    assert_string_equal(json_string_value(json_object_get(v, "text")),
                        "{\"k\":[true,false,null,1.5,\"s\"]}");
    json_decref(v);
}

static void test_tf__json_errors(void **state) {
    (void)state;
    expect_error("local t = {} t.self = t return tf.json.encode(t)", "lua_error",
                 "tf.json.encode: cycle at value.self");
    expect_error("return tf.json.encode({x = 0/0})", "lua_error", "tf.json.encode: NaN");
    expect_error("return tf.json.encode(math.huge)", "lua_error", "tf.json.encode: an infinite");
    expect_error("return tf.json.encode({f = print or function() end})", "lua_error",
                 "tf.json.encode: function at value.f");
    expect_error("return tf.json.encode({[true] = 1})", "lua_error", "tf.json.encode: a table key");
    expect_error("return tf.json.encode('\\255')", "lua_error", "tf.json.encode: a string that is");
    expect_error("local t = {} local c = t for i = 1, 40 do c.x = {} c = c.x end"
                 " return tf.json.encode(t)",
                 "lua_error", "tf.json.encode: nested deeper than 32");
    expect_error("return tf.json.encode()", "lua_error", "tf.json.encode: a value to encode");
    expect_error("return tf.json.decode('{')", "lua_error",
                 "tf.json.decode: malformed JSON at line 1");
    expect_error("return tf.json.decode('[1,]')", "lua_error", "tf.json.decode: malformed JSON");
    expect_error("return tf.json.decode('')", "lua_error", "tf.json.decode: malformed JSON");
    expect_error("return tf.json.decode('{} x')", "lua_error", "tf.json.decode: malformed JSON");
    expect_error("return tf.json.decode(('['):rep(40) .. (']'):rep(40))", "lua_error",
                 "tf.json.decode: JSON nested deeper than 32");
    expect_error("return tf.json.decode({})", "lua_error",
                 "tf.json.decode: the text must be a string, got table");
    expect_error("return tf.json.decode()", "lua_error", "tf.json.decode");
    expect_error("return tf.json.decode(nil)", "lua_error", "tf.json.decode");
    expect_error("local d = tf.json.decode return d(true)", "lua_error",
                 "tf.json.decode: the text must be a string, got boolean");
    /* Caught errors are ordinary: the run goes on. */
    expect_ok("local ok, e = pcall(tf.json.decode, '{') return ok", "false");
}

/* ---- tf.log ---- */

/* Every line the logger wrote since the test began, parsed. */
static size_t read_log(json_t **lines, size_t max) {
    fflush(log_file);
    long size = lseek(fileno(log_file), 0, SEEK_END);
    assert_true(size >= 0);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fileno(log_file), text, (size_t)size, 0), size);
    size_t n = 0;
    for (char *line = text; *line != '\0';) {
        char *eol = strchr(line, '\n');
        assert_non_null(eol); /* every line ends */
        *eol = '\0';
        assert_true(n < max);
        json_error_t jerr;
        lines[n] = json_loads(line, 0, &jerr);
        if (lines[n] == NULL) {
            print_error("not JSON: %s (%s)\n", line, jerr.text);
        }
        assert_non_null(lines[n]);
        n++;
        line = eol + 1;
    }
    free(text);
    return n;
}

static void free_lines(json_t **lines, size_t n) {
    for (size_t i = 0; i < n; i++) {
        json_decref(lines[i]);
    }
}

static const char *str_field(json_t *line, const char *key) {
    json_t *v = json_object_get(line, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_tf__log_writes_one_tagged_line(void **state) {
    (void)state;
    expect_ok("tf.log.info('charged', {amount = 42, currency = 'EUR', ratio = 0.5,"
              " ok = true, ['x.y-z_1'] = 'k'}) return 1",
              "1");
    json_t *lines[8];
    size_t n = read_log(lines, 8);
    assert_int_equal(n, 1);
    json_t *l = lines[0];
    assert_string_equal(str_field(l, "msg"), "charged");
    assert_string_equal(str_field(l, "level"), "info");
    assert_string_equal(str_field(l, "source"), "script");
    assert_string_equal(str_field(l, "tenant_id"), "t1");
    assert_string_equal(str_field(l, "job_id"), "00000000-0000-7000-8000-000000000001");
    assert_non_null(str_field(l, "run_id"));
    assert_int_equal(str_field(l, "run_id")[0], 'r');
    assert_non_null(str_field(l, "ts"));
    assert_int_equal(json_integer_value(json_object_get(l, "amount")), 42);
    assert_string_equal(str_field(l, "currency"), "EUR");
    assert_true(json_real_value(json_object_get(l, "ratio")) == 0.5);
    assert_true(json_is_true(json_object_get(l, "ok")));
    assert_string_equal(str_field(l, "x.y-z_1"), "k");
    free_lines(lines, n);
}

static void test_tf__log_levels_and_escaping(void **state) {
    (void)state;
    expect_ok("tf.log.debug('d') tf.log.info('i', nil) tf.log.warn('w', {})"
              " tf.log.error('two\\nlines \"quoted\"\\r\\0 end') tf.log.info(42) return 1",
              "1");
    json_t *lines[8];
    size_t n = read_log(lines, 8);
    assert_int_equal(n, 5);
    assert_string_equal(str_field(lines[0], "level"), "debug");
    assert_string_equal(str_field(lines[0], "msg"), "d");
    assert_string_equal(str_field(lines[1], "level"), "info");
    assert_string_equal(str_field(lines[2], "level"), "warn");
    assert_string_equal(str_field(lines[3], "level"), "error");
    /* The newline stays inside the message: still one line, escaped. */
    assert_non_null(strstr(str_field(lines[3], "msg"), "two\nlines \"quoted\"\r"));
    assert_string_equal(str_field(lines[4], "msg"), "42");
    free_lines(lines, n);
}

static void test_tf__log_bad_fields(void **state) {
    (void)state;
    expect_error("tf.log.info('m', 5)", "lua_error", "tf.log.info: fields must be a table");
    expect_error("tf.log.warn('m', 'x')", "lua_error", "tf.log.warn: fields must be a table");
    expect_error("tf.log.info('m', {['bad key'] = 1})", "lua_error", "tf.log.info: field names");
    expect_error("tf.log.info('m', {[''] = 1})", "lua_error", "tf.log.info: field names");
    expect_error("tf.log.info('m', {[('k'):rep(65)] = 1})", "lua_error",
                 "tf.log.info: field names");
    expect_error("tf.log.info('m', {'positional'})", "lua_error", "tf.log.info: field names");
    static const char *const reserved[] = {"tenant_id", "job_id", "run_id", "rule_id",
                                           "source",    "msg",    "level",  "ts"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        char src[128];
        snprintf(src, sizeof(src), "tf.log.error('m', {%s = 'x'})", reserved[i]);
        expect_error(src, "lua_error", "tf.log.error: field names");
    }
    expect_error("tf.log.debug('m', {f = function() end})", "lua_error",
                 "tf.log.debug: field 'f' must be a string, number or boolean");
    expect_error("tf.log.info('m', {t = {}})", "lua_error", "tf.log.info: field 't' must be");
    expect_error("tf.log.info('m', {n = tf.json.null})", "lua_error", "tf.log.info: field 'n'");
    expect_error("local f = {} for i = 1, 33 do f['k' .. i] = i end tf.log.info('m', f)",
                 "lua_error", "tf.log.info: more than 32 fields");
    expect_ok("local f = {} for i = 1, 32 do f['k' .. i] = i end tf.log.info('m', f) return 1",
              "1");
    expect_error("tf.log.info()", "lua_error",
                 "tf.log.info: the message must be a string, got no value");
    expect_error("tf.log.info({})", "lua_error", "tf.log.info");
    expect_error("tf.log.info(nil, {})", "lua_error", "tf.log.info");
    /* Only the good line was written. */
    json_t *lines[8];
    size_t n = read_log(lines, 8);
    assert_int_equal(n, 1);
    assert_int_equal(json_integer_value(json_object_get(lines[0], "k32")), 32);
    free_lines(lines, n);
}

static void test_tf__log_limit_drops_lines_with_one_warning(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = 5000000, .timeout_ms = 2000, .log_bytes = 100};
    reopen_logged(&lim);
    expect_ok("tf.log.info(('a'):rep(60)) tf.log.info(('b'):rep(60))"
              " tf.log.info('c', {k = ('c'):rep(60)}) tf.log.info('d') return 1",
              "1");
    json_t *lines[8];
    size_t n = read_log(lines, 8);
    assert_int_equal(n, 3);
    assert_string_equal(str_field(lines[0], "msg"),
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(str_field(lines[1], "level"), "warn");
    assert_non_null(strstr(str_field(lines[1], "msg"), "log limit"));
    assert_string_equal(str_field(lines[1], "tenant_id"), "t1");
    assert_int_equal(json_integer_value(json_object_get(lines[1], "limit_bytes")), 100);
    assert_string_equal(str_field(lines[2], "msg"), "d"); /* still within the limit */
    free_lines(lines, n);
    /* The limit is per run: the next run logs again. */
    expect_ok("tf.log.info(('e'):rep(60)) return 1", "1");
    n = read_log(lines, 8);
    assert_int_equal(n, 4);
    free_lines(lines, n);
}

/* What a run's on_log saw (a dry run shows it). */
typedef struct {
    char lines[8][160];
    size_t n;
} seen_t;

static void seen_line(void *arg, const char *level, const char *message,
                      const tf_log_field_t *fields, size_t n) {
    seen_t *s = arg;
    assert_true(s->n < 8);
    int len = snprintf(s->lines[s->n], sizeof(s->lines[0]), "%s %s", level, message);
    for (size_t i = 0; i < n; i++) {
        const tf_log_field_t *f = &fields[i];
        char *out = s->lines[s->n] + len;
        size_t room = sizeof(s->lines[0]) - (size_t)len;
        len += f->kind == TF_LOG_FIELD_STR      ? snprintf(out, room, " %s=%s", f->key, f->s)
               : f->kind == TF_LOG_FIELD_DOUBLE ? snprintf(out, room, " %s=%g", f->key, f->d)
                                                : snprintf(out, room, " %s=%lld", f->key, f->i);
    }
    s->n++;
}

static void test_tf__log_lines_reach_the_calls_on_log(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = 5000000, .timeout_ms = 2000, .log_bytes = 100};
    reopen_logged(&lim);
    const char *src = "tf.log.debug('checking', {n = 3}) tf.log.warn('odd', {why = 'x'})"
                      " tf.log.info(('z'):rep(99)) tf.log.error('gone') return 1";
    seen_t seen = {0};
    tf_lua_call_t call = {.tenant_id = "t1",
                          .source = src,
                          .source_len = strlen(src),
                          .chunkname = "=test",
                          .on_log = seen_line,
                          .log_arg = &seen};
    h_result_t r = {0};
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), 0);
    h_wait(env, &r);
    h_assert_ok(r, "1");
    /* Every level, the script's own fields only (no tags), and no line the
     * run's log limit drops (the third would cross it; the fourth fits). */
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.lines[0], "debug checking n=3");
    assert_string_equal(seen.lines[1], "warn odd why=x");
    assert_string_equal(seen.lines[2], "error gone");
}

/* ---- tf.now, tf.uuid ---- */

static void test_tf__now_reads_the_hosts_clock(void **state) {
    (void)state;
    expect_ok("return tf.now()", "1700000000000");
    env->now_ms = 1800000000123;
    expect_ok("return tf.now()", "1800000000123");
    expect_ok("return math.type(tf.now())", "\"integer\"");
}

static void uuid_check(const char *u) {
    assert_int_equal(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(u[i], '-');
        } else {
            assert_non_null(strchr("0123456789abcdef", u[i]));
        }
    }
    assert_int_equal(u[14], '4');
    assert_non_null(strchr("89ab", u[19]));
}

static void test_tf__uuid_v4_and_unique(void **state) {
    (void)state;
    h_result_t a = h_run(env, "t1", "return tf.uuid()");
    h_result_t b = h_run(env, "t1", "return tf.uuid()");
    assert_int_equal(a.status, TF_LUA_OK);
    assert_int_equal(strlen(a.result), 38);
    a.result[37] = '\0';
    b.result[37] = '\0';
    uuid_check(a.result + 1);
    uuid_check(b.result + 1);
    assert_string_not_equal(a.result, b.result);
    expect_ok("local seen, n = {}, 0 for i = 1, 2000 do local u = tf.uuid()"
              " if not seen[u] then n = n + 1 end seen[u] = true"
              " assert(u:match('^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+$')) end"
              " return n",
              "2000");
}

/* ---- tf.base64, tf.hmac_sha256 ---- */

static void test_tf__base64_rfc4648_vectors(void **state) {
    (void)state;
    static const char *const vectors[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char src[160], want[64];
        snprintf(src, sizeof(src), "return tf.base64.encode('%s')", vectors[i][0]);
        snprintf(want, sizeof(want), "\"%s\"", vectors[i][1]);
        expect_ok(src, want);
        snprintf(src, sizeof(src), "return tf.base64.decode('%s')", vectors[i][1]);
        snprintf(want, sizeof(want), "\"%s\"", vectors[i][0]);
        expect_ok(src, want);
    }
    /* Every byte value survives the round trip. */
    expect_ok("local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end"
              " local s = table.concat(t) local e = tf.base64.encode(s)"
              " return {tf.base64.decode(e) == s, #e, e:sub(-4)}",
              "[true,344,\"/w==\"]");
}

static void test_tf__base64_errors(void **state) {
    (void)state;
    expect_error("return tf.base64.decode('Zm-v')", "lua_error",
                 "tf.base64.decode: not base64 (byte 3)");
    expect_error("return tf.base64.decode('Zm9v!A==')", "lua_error",
                 "tf.base64.decode: not base64 (byte 5)");
    expect_error("return tf.base64.decode('Zm 9v')", "lua_error", "tf.base64.decode: not base64");
    expect_error("return tf.base64.decode('Zm9v\\0A==')", "lua_error",
                 "tf.base64.decode: not base64");
    expect_error("return tf.base64.decode('Zg=')", "lua_error",
                 "tf.base64.decode: not base64 (bad length or padding)");
    expect_error("return tf.base64.decode('Zm9v=')", "lua_error",
                 "tf.base64.decode: not base64 (bad length or padding)");
    expect_error("return tf.base64.decode('Z===')", "lua_error", "tf.base64.decode: not base64");
    expect_error("return tf.base64.decode('Zg==Zg==')", "lua_error",
                 "tf.base64.decode: not base64");
    expect_error("return tf.base64.decode('=')", "lua_error", "tf.base64.decode: not base64");
    expect_error("return tf.base64.decode('Zm9vY')", "lua_error",
                 "tf.base64.decode: not base64 (bad length or padding)");
    expect_error("return tf.base64.decode('Zh==')", "lua_error",
                 "tf.base64.decode: not base64 (trailing bits)");
    expect_error("return tf.base64.decode({})", "lua_error",
                 "tf.base64.decode: the text must be a string, got table");
    expect_error("return tf.base64.encode()", "lua_error", "tf.base64.encode");
    expect_error("return tf.base64.encode({})", "lua_error", "tf.base64.encode");
}

static void test_tf__hmac_sha256_rfc4231(void **state) {
    (void)state;
    /* Test case 1: a key of 20 bytes 0x0b, "Hi There". */
    expect_ok("return tf.hmac_sha256(('\\x0b'):rep(20), 'Hi There')",
              "\"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7\"");
    /* Test case 2: "Jefe", "what do ya want for nothing?". */
    expect_ok("return tf.hmac_sha256('Jefe', 'what do ya want for nothing?')",
              "\"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843\"");
    /* An empty key and message are fine (a well-known value). */
    expect_ok("return tf.hmac_sha256('', '')",
              "\"b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad\"");
    expect_error("return tf.hmac_sha256('k')", "lua_error",
                 "tf.hmac_sha256: the message must be a string, got no value");
    expect_error("return tf.hmac_sha256(nil, 'm')", "lua_error", "tf.hmac_sha256");
    expect_error("return tf.hmac_sha256({}, 'm')", "lua_error", "tf.hmac_sha256");
}

/* ---- tf.fatal, tf.snooze, tf.sleep ---- */

static void test_tf__fatal_and_snooze_arguments(void **state) {
    (void)state;
    expect_error("tf.fatal()", "lua_error", "tf.fatal");
    expect_error("tf.fatal({})", "lua_error", "tf.fatal");
    expect_error("tf.fatal('m', {})", "lua_error", "tf.fatal");
    /* A type that is not a name: still fatal, with the general type. */
    h_result_t r = h_run(env, "t1", "tf.fatal('m', 'bad type!')");
    h_assert_failed(r, "lua_error", "m");
    assert_int_equal(r.fatal, 1);
    r = h_run(env, "t1", "tf.fatal('m', 'ok_type')");
    h_assert_failed(r, "ok_type", "m");
    assert_int_equal(r.fatal, 1);
    expect_error("return tf.snooze(0)", "lua_error", "tf.snooze: ms must be from 1 to 31536000000");
    expect_error("return tf.snooze(-5)", "lua_error", "tf.snooze: ms must be from 1");
    expect_error("return tf.snooze(31536000001)", "lua_error", "tf.snooze: ms must be from 1");
    expect_error("return tf.snooze(1.5)", "lua_error", "tf.snooze: ms must be an integer");
    expect_error("return tf.snooze('soon')", "lua_error", "tf.snooze");
    expect_error("return tf.snooze()", "lua_error", "tf.snooze");
    r = h_run(env, "t1", "return tf.snooze(31536000000)");
    assert_int_equal(r.status, TF_LUA_OK);
    assert_int_equal(r.snooze_ms, INT64_C(31536000000));
    r = h_run(env, "t1", "return tf.snooze(1)");
    assert_int_equal(r.snooze_ms, 1);
}

/* ---- rule triggers ---- */

/* A chunk that describes trigger `expr` as "kind|cron|timezone|catch_up|
 * event|type|queue|scheme" ("-" for nil). */
static void expect_trigger(const char *expr, const char *want) {
    char source[1024], json[300];
    snprintf(source, sizeof(source),
             "local t = %s\n"
             "local out = {}\n"
             "for _, k in ipairs({'kind', 'cron', 'timezone', 'catch_up', 'event', 'type',"
             " 'queue', 'scheme'}) do out[#out + 1] = t[k] == nil and '-' or t[k] end\n"
             "return table.concat(out, '|')",
             expr);
    snprintf(json, sizeof(json), "\"%s\"", want);
    expect_ok(source, json);
}

static void test_tf__triggers(void **state) {
    (void)state;
    expect_trigger("tf.cron('0 7 * * *')", "cron|0 7 * * *|UTC|latest|-|-|-|-");
    expect_trigger("tf.cron('@daily', {timezone = 'Europe/Oslo', catch_up = 'none'})",
                   "cron|@daily|Europe/Oslo|none|-|-|-|-");
    expect_trigger("tf.cron('*/5 * * * MON-FRI', {timezone = 'Etc/GMT+5'})",
                   "cron|*/5 * * * MON-FRI|Etc/GMT+5|latest|-|-|-|-");
    expect_trigger("tf.webhook()", "webhook|-|-|-|-|-|-|taskflow");
    expect_trigger("tf.webhook{}", "webhook|-|-|-|-|-|-|taskflow");
    expect_trigger("tf.webhook(nil)", "webhook|-|-|-|-|-|-|taskflow");
    expect_trigger("tf.cron('0 7 * * *', nil)", "cron|0 7 * * *|UTC|latest|-|-|-|-");
    expect_trigger("tf.on('job.failed', {})", "job|-|-|-|job.failed|-|-|-");
    expect_trigger("tf.cron('0 7 * * *', {})", "cron|0 7 * * *|UTC|latest|-|-|-|-");
    expect_trigger("tf.webhook{scheme = 'stripe'}", "webhook|-|-|-|-|-|-|stripe");
    expect_trigger("tf.event('user.signed_up')", "event|-|-|-|user.signed_up|-|-|-");
    expect_trigger("tf.on('job.succeeded')", "job|-|-|-|job.succeeded|-|-|-");
    expect_trigger("tf.on('job.dead', {type = 'Import file', queue = 'imports'})",
                   "job|-|-|-|job.dead|Import file|imports|-");
    /* Read-only, with a locked metatable: no forged or edited triggers. */
    expect_error("local t = tf.cron('0 7 * * *') t.cron = '* * * * *'", "lua_error",
                 "a trigger cannot be changed");
    expect_ok("return getmetatable(tf.event('x'))", "\"the metatable is locked\"");
    expect_error("setmetatable({}, getmetatable(tf.event('x')))", "lua_error", "");
}

static void test_tf__trigger_arguments(void **state) {
    (void)state;
    static const struct {
        const char *source, *fragment;
    } cases[] = {
        {"tf.cron()", "tf.cron: the expression must be a string"},
        {"tf.cron('0 24 * * *')", "tf.cron: hour: 24 is out of range 0-23"},
        {"tf.cron('* * * *')", "tf.cron: five fields are needed"},
        {"tf.cron('@reboot')", "tf.cron: unknown macro '@reboot'"},
        {"tf.cron(string.rep('1', 300))", "tf.cron: the expression is too long"},
        {"tf.cron('0 7 * * *', 'Europe/Oslo')", "tf.cron: the options must be a table"},
        {"tf.cron('0 7 * * *', {tz = 'UTC'})", "tf.cron: unknown option tz (known: timezone"},
        {"tf.cron('0 7 * * *', {timezone = '../etc/passwd'})", "tf.cron: timezone must be an IANA"},
        {"tf.cron('0 7 * * *', {timezone = ''})", "tf.cron: timezone must be 1 to 64 bytes"},
        {"tf.cron('0 7 * * *', {timezone = 'Europe//Oslo'})", "tf.cron: timezone must be an IANA"},
        {"tf.cron('0 7 * * *', {timezone = {}})", "tf.cron: timezone must be a string"},
        {"tf.cron('0 7 * * *', {catch_up = 'all'})", "tf.cron: catch_up must be \"none\""},
        {"tf.cron('0 7 * * *', {catch_up = true})", "tf.cron: catch_up must be \"none\""},
        {"tf.webhook{scheme = 'hmac'}", "tf.webhook: scheme must be"},
        {"tf.webhook('github')", "tf.webhook: the options must be a table"},
        {"tf.webhook{secret = 'x'}", "tf.webhook: unknown option secret"},
        {"tf.event()", "tf.event: the event name must be a string"},
        {"tf.event('bad name')", "tf.event: the event name must be 1 to 128"},
        {"tf.event('job.succeeded')", "not start with \"job.\" (use tf.on)"},
        {"tf.event(string.rep('e', 129))", "tf.event: the event name must be 1 to 128"},
        {"tf.on('job.started')", "tf.on: the event must be"},
        {"tf.on('job.failed', {queue = 'bad queue'})", "tf.on: queue may hold only"},
        {"tf.on('job.failed', {type = ''})", "tf.on: type must be 1 to 128 bytes"},
        {"tf.on('job.failed', {state = 'x'})", "tf.on: unknown option state (known: type, queue)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_error(cases[i].source, "lua_error", cases[i].fragment);
    }
}

static void test_tf__sleep_arguments(void **state) {
    (void)state;
    expect_error("tf.sleep(-1)", "lua_error", "tf.sleep: ms must be from 0 to 3600000");
    expect_error("tf.sleep(3600001)", "lua_error", "tf.sleep: ms must be from 0 to 3600000");
    expect_error("tf.sleep('x')", "lua_error", "tf.sleep: ms must be an integer, got string");
    expect_error("tf.sleep({})", "lua_error", "tf.sleep");
    expect_error("tf.sleep(1.5)", "lua_error", "tf.sleep: ms must be an integer");
    expect_error("tf.sleep()", "lua_error", "tf.sleep");
    expect_ok("tf.sleep(0) tf.sleep(1) return 'woke'", "\"woke\"");
    /* A wait inside pcall resumes into it. */
    expect_ok("local ok, v = pcall(function() tf.sleep(1) return 5 end) return {ok, v}",
              "[true,5]");
}

/* ---- tf.enqueue ---- */

typedef struct {
    int calls;
    int fail;
    char spec[1024];
    char tenant[64];
} fake_queue_t;

static int fake_enqueue(void *ctx, tf_lua_run_t *run, const char *spec_json, size_t len,
                        char id[40], char *err, size_t errlen) {
    fake_queue_t *q = ctx;
    q->calls++;
    snprintf(q->spec, sizeof(q->spec), "%.*s", (int)len, spec_json);
    snprintf(q->tenant, sizeof(q->tenant), "%s", tf_lua_run_call(run)->tenant_id);
    if (q->fail) {
        snprintf(err, errlen, "queue must be a name of [a-z0-9_-]");
        return TF_EINVAL;
    }
    snprintf(id, 40, "00000000-0000-7000-8000-%012d", q->calls);
    return 0;
}

static void test_tf__enqueue(void **state) {
    (void)state;
    expect_error("return tf.enqueue({queue = 'q', type = 'T'})", "lua_error",
                 "tf.enqueue: not available here");
    fake_queue_t q = {0};
    env->lib.enqueue = fake_enqueue;
    env->lib.enqueue_ctx = &q;
    expect_ok("return tf.enqueue({queue = 'emails'})", "\"00000000-0000-7000-8000-000000000001\"");
    assert_int_equal(q.calls, 1);
    assert_string_equal(q.spec, "{\"queue\":\"emails\"}");
    assert_string_equal(q.tenant, "t1");
    h_result_t r = h_run(env, "t1", "return tf.enqueue({payload = {items = {1, 2}}})");
    h_assert_ok(r, "\"00000000-0000-7000-8000-000000000002\"");
    assert_string_equal(q.spec, "{\"payload\":{\"items\":[1,2]}}");
    q.fail = 1;
    expect_error("return tf.enqueue({queue = 'Bad Queue'})", "lua_error",
                 "tf.enqueue: queue must be a name of [a-z0-9_-]");
    assert_int_equal(q.calls, 3);
    expect_error("return tf.enqueue({f = function() end})", "lua_error",
                 "tf.enqueue: function at job.f");
    assert_int_equal(q.calls, 3); /* never reached the queue */
    expect_error("return tf.enqueue('job')", "lua_error",
                 "tf.enqueue: the job must be a table, got string");
    expect_error("return tf.enqueue()", "lua_error", "tf.enqueue");
    env->lib.enqueue = NULL;
    env->lib.enqueue_ctx = NULL;
}

/* ---- tf.http.request: arguments ---- */

static void test_tf__http_argument_errors(void **state) {
    (void)state;
    expect_error("return tf.http.request({})", "lua_error", "tf.http.request: url must be");
    expect_error("return tf.http.request({method = 'GET'})", "lua_error",
                 "tf.http.request: url must be an http:// or https:// URL");
    expect_error("return tf.http.request({url = 'ftp://example.com/'})", "lua_error",
                 "tf.http.request: url must be");
    expect_error("return tf.http.request({url = 'file:///etc/passwd'})", "lua_error",
                 "tf.http.request: url must be");
    expect_error("return tf.http.request({url = 42})", "lua_error", "tf.http.request: url must be");
    expect_error("return tf.http.request({url = 'http://a/\\0b'})", "lua_error",
                 "tf.http.request: url must be");
    expect_error("return tf.http.request({url = 'http://a/', method = 'get'})", "lua_error",
                 "tf.http.request: method must be GET, POST, PUT, PATCH or DELETE");
    expect_error("return tf.http.request({url = 'http://a/', method = 'CONNECT'})", "lua_error",
                 "tf.http.request: method must be");
    expect_error("return tf.http.request({url = 'http://a/', method = 1})", "lua_error",
                 "tf.http.request: method must be");
    expect_error("return tf.http.request({url = 'http://a/', verb = 'GET'})", "lua_error",
                 "tf.http.request: unknown field verb");
    expect_error("return tf.http.request({url = 'http://a/', 'positional'})", "lua_error",
                 "tf.http.request: unknown field (not a name)");
    expect_error("return tf.http.request({url = 'http://a/', headers = {['Bad Name'] = 'v'}})",
                 "lua_error", "tf.http.request: a header name is not a token");
    expect_error("return tf.http.request({url = 'http://a/', headers = {['X\\r\\nY'] = 'v'}})",
                 "lua_error", "tf.http.request: a header name is not a token");
    expect_error("return tf.http.request({url = 'http://a/', headers = {'v'}})", "lua_error",
                 "tf.http.request: a header name is not a token");
    expect_error("return tf.http.request({url = 'http://a/', headers = {X = 'a\\r\\nEvil: 1'}})",
                 "lua_error", "tf.http.request: header X must be a string");
    expect_error("return tf.http.request({url = 'http://a/', headers = {X = 'a\\nb'}})",
                 "lua_error", "without CR, LF or NUL");
    expect_error("return tf.http.request({url = 'http://a/', headers = {X = 'a\\0b'}})",
                 "lua_error", "without CR, LF or NUL");
    expect_error("return tf.http.request({url = 'http://a/', headers = {X = 1}})", "lua_error",
                 "tf.http.request: header X must be a string");
    expect_error("return tf.http.request({url = 'http://a/', headers = 'X: 1'})", "lua_error",
                 "tf.http.request: headers must be a table");
    expect_error("return tf.http.request({url = 'http://a/', body = {a = 1}})", "lua_error",
                 "tf.http.request: body must be a string");
    expect_error("return tf.http.request({url = 'http://a/', body = 5})", "lua_error",
                 "tf.http.request: body must be a string");
    expect_error("return tf.http.request({url = 'http://a/', timeout_ms = 0})", "lua_error",
                 "tf.http.request: timeout_ms must be an integer from 1 to 2000");
    expect_error("return tf.http.request({url = 'http://a/', timeout_ms = 2001})", "lua_error",
                 "tf.http.request: timeout_ms must be an integer from 1 to 2000");
    expect_error("return tf.http.request({url = 'http://a/', timeout_ms = 1.5})", "lua_error",
                 "tf.http.request: timeout_ms must be");
    expect_error("return tf.http.request({url = 'http://a/', timeout_ms = '100'})", "lua_error",
                 "tf.http.request: timeout_ms must be");
    expect_error("return tf.http.request('http://a/')", "lua_error",
                 "tf.http.request: the request must be a table, got string");
    expect_error("return tf.http.request()", "lua_error", "tf.http.request");
    /* Valid, but the host has no client. */
    expect_error("return tf.http.request({url = 'http://example.com/'})", "http_unavailable",
                 "not available");
    /* Not where the run cannot wait. */
    expect_error("table.sort({2, 1}, function(a, b) tf.http.request({url = 'http://a/'})"
                 " return a < b end)",
                 "lua_error", "tf.http.request: not allowed here");
}

/* ---- tf.http.request against a server on the loop ---- */

typedef struct server server_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_write_t write;
    server_t *server;
    struct conn *next;
    int answered;
} conn_t;

struct server {
    uv_tcp_t tcp;
    int port;
    int silent; /* accept and read, never answer */
    int accepted;
    char request[8192];
    size_t request_len;
    conn_t *conns;
};

static server_t server;

static const char RESPONSE[] = "HTTP/1.1 201 Created\r\n"
                               "Content-Type: text/plain\r\n"
                               "Set-Cookie: a=1\r\n"
                               "X-Trace:   spaced value  \r\n"
                               "Set-Cookie: b=2\r\n"
                               "Content-Length: 5\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "hello";

static void conn_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    for (conn_t **p = &c->server->conns; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    free(c);
}

static void conn_close(conn_t *c) {
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base != NULL ? suggested : 0;
}

static void conn_written(uv_write_t *w, int status) {
    (void)status;
    conn_close(w->data);
}

/* True once the request's head and its Content-Length of body arrived. */
static int request_complete(const server_t *s) {
    const char *end = strstr(s->request, "\r\n\r\n");
    if (end == NULL) {
        return 0;
    }
    size_t head = (size_t)(end + 4 - s->request);
    size_t body = 0;
    for (const char *p = s->request; p < end; p++) {
        if (strncasecmp(p, "\r\ncontent-length:", 17) == 0) {
            body = (size_t)strtoul(p + 17, NULL, 10);
        }
    }
    return s->request_len >= head + body;
}

static void conn_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
    conn_t *c = stream->data;
    server_t *s = c->server;
    if (n > 0) {
        size_t room = sizeof(s->request) - 1 - s->request_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(s->request + s->request_len, buf->base, take);
        s->request_len += take;
        s->request[s->request_len] = '\0';
        if (!s->silent && !c->answered && request_complete(s)) {
            c->answered = 1;
            uv_buf_t out = uv_buf_init((char *)RESPONSE, sizeof(RESPONSE) - 1);
            c->write.data = c;
            uv_write(&c->write, stream, &out, 1, conn_written);
        }
    } else if (n < 0 && !c->answered) {
        conn_close(c);
    }
    free(buf->base);
}

static void server_accept(uv_stream_t *listener, int status) {
    server_t *s = listener->data;
    if (status != 0) {
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->server = s;
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c;
    c->next = s->conns;
    s->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    s->accepted++;
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void server_start(int silent) {
    memset(&server, 0, sizeof(server));
    server.silent = silent;
    assert_int_equal(uv_tcp_init(&env->loop, &server.tcp), 0);
    server.tcp.data = &server;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&server.tcp, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&server.tcp, 16, server_accept), 0);
    struct sockaddr_storage name;
    int len = sizeof(name);
    assert_int_equal(uv_tcp_getsockname(&server.tcp, (struct sockaddr *)&name, &len), 0);
    server.port = ntohs(((struct sockaddr_in *)&name)->sin_port);
}

static void server_stop(void) {
    for (conn_t *c = server.conns; c != NULL; c = c->next) {
        conn_close(c);
    }
    uv_close((uv_handle_t *)&server.tcp, NULL);
}

static int http_setup(void **state) {
    setup(state);
    tf_http_client_config_t cfg = {.allow_loopback = 1};
    assert_int_equal(tf_http_client_create(&env->loop, &cfg, &http), 0);
    env->lib.http = http;
    return 0;
}

static int http_teardown(void **state) {
    (void)state;
    close_env();
    server_stop();
    free_env();
    return 0;
}

/* Runs `source` with every "$URL" replaced by the server's base URL. */
static h_result_t run_http(const char *source) {
    char url[64], src[1024];
    int n = snprintf(url, sizeof(url), "http://127.0.0.1:%d", server.port);
    size_t o = 0;
    for (const char *p = source; *p != '\0';) {
        if (strncmp(p, "$URL", 4) == 0) {
            assert_true(o + (size_t)n < sizeof(src));
            memcpy(src + o, url, (size_t)n);
            o += (size_t)n;
            p += 4;
        } else {
            assert_true(o + 1 < sizeof(src));
            src[o++] = *p++;
        }
    }
    src[o] = '\0';
    return h_run(env, "t1", src);
}

static void test_tf__http_request_response(void **state) {
    (void)state;
    server_start(0);
    h_result_t r = run_http("local res = tf.http.request({method = 'POST', url = '$URL/hooks?x=1',"
                            " headers = {['X-Req'] = 'v1', ['Content-Type'] = 'text/plain'},"
                            " body = 'ping', timeout_ms = 1500})"
                            " return {status = res.status, body = res.body,"
                            " ctype = res.headers['content-type'],"
                            " cookie = res.headers['set-cookie'],"
                            " trace = res.headers['x-trace'],"
                            " upper = res.headers['Content-Type'] == nil}");
    assert_int_equal(r.status, TF_LUA_OK);
    json_t *v = json_loads(r.result, 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "status")), 201);
    assert_string_equal(json_string_value(json_object_get(v, "body")), "hello");
    assert_string_equal(json_string_value(json_object_get(v, "ctype")), "text/plain");
    assert_string_equal(json_string_value(json_object_get(v, "cookie")), "a=1, b=2");
    assert_string_equal(json_string_value(json_object_get(v, "trace")), "spaced value");
    assert_true(json_is_true(json_object_get(v, "upper")));
    json_decref(v);
    /* What the server got. */
    assert_non_null(strstr(server.request, "POST /hooks?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(server.request, "\r\nX-Req: v1\r\n"));
    size_t len = strlen(server.request);
    assert_string_equal(server.request + len - 4, "ping");
    /* GET is the default method. */
    server.request_len = 0;
    server.request[0] = '\0';
    r = run_http("return tf.http.request({url = '$URL/'}).status");
    h_assert_ok(r, "201");
    assert_non_null(strstr(server.request, "GET / HTTP/1.1\r\n"));
}

static void test_tf__http_blocked_loopback(void **state) {
    (void)state;
    server_start(0);
    /* A client that does not allow loopback, as in production. */
    int closed = 0;
    tf_http_client_close(http, h_closed, &closed);
    while (!closed) {
        uv_run(&env->loop, UV_RUN_ONCE);
    }
    assert_int_equal(tf_http_client_create(&env->loop, NULL, &http), 0);
    env->lib.http = http;
    h_result_t r = run_http("return tf.http.request({url = '$URL/'})");
    h_assert_failed(r, "http_blocked_address", "");
    assert_int_equal(server.accepted, 0);
    r = run_http("local ok, e = pcall(tf.http.request, {url = '$URL/'}) return {ok, e.type}");
    h_assert_ok(r, "[false,\"http_blocked_address\"]");
}

static void test_tf__http_cancel_while_waiting(void **state) {
    (void)state;
    server_start(1);
    char src[256];
    snprintf(src, sizeof(src), "return tf.http.request({url = 'http://127.0.0.1:%d/'})",
             server.port);
    h_result_t r;
    tf_lua_run_t *run = h_start(env, "t1", src, &r);
    while (server.request_len == 0 || !request_complete(&server)) {
        uv_run(&env->loop, UV_RUN_ONCE); /* until the request is in */
    }
    assert_int_equal(r.done, 0);
    tf_lua_cancel(run);
    assert_int_equal(r.done, 0);
    h_wait(env, &r);
    h_assert_failed(r, "cancelled", "cancelled");
    /* The VM goes on; ASan's leak check covers the call's state. */
    expect_ok("return 1", "1");
}

static void test_tf__http_timeout(void **state) {
    (void)state;
    server_start(1);
    h_result_t r = run_http("return tf.http.request({url = '$URL/', timeout_ms = 100})");
    h_assert_failed(r, "http_timeout", "");
    assert_int_equal(r.retryable, 1);
    r = run_http("local ok, e = pcall(tf.http.request, {url = '$URL/', timeout_ms = 50})"
                 " return {ok, e.type}");
    h_assert_ok(r, "[false,\"http_timeout\"]");
}

static void test_tf__http_run_deadline_while_waiting(void **state) {
    (void)state;
    server_start(1);
    char src[256];
    snprintf(src, sizeof(src), "return tf.http.request({url = 'http://127.0.0.1:%d/'})",
             server.port);
    tf_lua_call_t call = {.tenant_id = "t1",
                          .source = src,
                          .source_len = strlen(src),
                          .chunkname = "=test",
                          .timeout_ms = 100};
    h_result_t r = {0};
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), 0);
    h_wait(env, &r);
    h_assert_failed(r, "lua_deadline", "time limit");
}

static void test_tf__http_shutdown_while_waiting(void **state) {
    (void)state;
    server_start(1);
    char src[256];
    snprintf(src, sizeof(src), "return tf.http.request({url = 'http://127.0.0.1:%d/'})",
             server.port);
    h_result_t r;
    h_start(env, "t1", src, &r);
    while (server.request_len == 0) {
        uv_run(&env->loop, UV_RUN_ONCE);
    }
    close_env(); /* the host first, the client after */
    h_assert_failed(r, "shutdown", "shutting down");
    server_stop();
    free_env();
}

static int noop_teardown(void **state) {
    (void)state;
    return 0;
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(test_tf__##name, setup, teardown)
#define L(name) cmocka_unit_test_setup_teardown(test_tf__##name, log_setup, log_teardown)
#define H(name) cmocka_unit_test_setup_teardown(test_tf__##name, http_setup, http_teardown)
    const struct CMUnitTest tests[] = {
        T(json_encode),
        T(json_round_trip),
        T(json_errors),
        L(log_writes_one_tagged_line),
        L(log_levels_and_escaping),
        L(log_bad_fields),
        L(log_limit_drops_lines_with_one_warning),
        L(log_lines_reach_the_calls_on_log),
        T(now_reads_the_hosts_clock),
        T(uuid_v4_and_unique),
        T(base64_rfc4648_vectors),
        T(base64_errors),
        T(hmac_sha256_rfc4231),
        T(fatal_and_snooze_arguments),
        T(triggers),
        T(trigger_arguments),
        T(sleep_arguments),
        T(enqueue),
        T(http_argument_errors),
        H(http_request_response),
        H(http_blocked_loopback),
        H(http_cancel_while_waiting),
        H(http_timeout),
        H(http_run_deadline_while_waiting),
        cmocka_unit_test_setup_teardown(test_tf__http_shutdown_while_waiting, http_setup,
                                        noop_teardown),
    };
#undef T
#undef H
#undef L
    return cmocka_run_group_tests_name("tf library", tests, NULL, NULL);
}
