/*
 * test_host.c - the Lua host of lua/host.h on a real libuv loop: the module
 * cache, function calls with JSON arguments, how errors become outcomes,
 * snooze, waiting runs (tf.sleep) and their cancellation and deadlines,
 * per-run globals, VM memory, eviction and reset, argument checks of
 * tf_lua_start, shutdown with runs in flight, instruction counts.
 * Tests assert orderings, never timings.
 */
#include "tests/lua/lua_harness.h"

#include "engine/error.h"
#include "engine/utf8.h"

#include <jansson.h>

static h_env_t *env;

static int setup(void **state) {
    (void)state;
    env = h_open(NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (env != NULL) {
        h_close(env);
        env = NULL;
    }
    return 0;
}

/* Replaces the shared host with one of these limits. */
static void reopen(const tf_lua_limits_t *lim) {
    h_close(env);
    env = h_open(lim);
}

/* Starts `call` (chunkname "=test" and source_len filled in when unset). */
static tf_lua_run_t *start_call(tf_lua_call_t call, h_result_t *r) {
    memset(r, 0, sizeof(*r));
    if (call.chunkname == NULL) {
        call.chunkname = "=test";
    }
    if (call.source_len == 0 && call.source != NULL) {
        call.source_len = strlen(call.source);
    }
    tf_lua_run_t *run = NULL;
    assert_int_equal(tf_lua_start(env->host, &call, h_done, r, &run), 0);
    return run;
}

static h_result_t run_call(tf_lua_call_t call) {
    h_result_t r;
    start_call(call, &r);
    h_wait(env, &r);
    return r;
}

/* Calls `fn` of the module `source` cached under `key`, with `args`. */
static h_result_t call_fn(const char *tenant, const char *key, const char *source, const char *fn,
                          const char *const *args, size_t nargs) {
    h_result_t r;
    h_start_args(env, tenant, key, source, fn, args, nargs, &r);
    h_wait(env, &r);
    return r;
}

/* ---- the module cache ---- */

/* `loads` counts executions of the module's top level, `calls` calls of f:
 * both live in module-level locals, so they survive between runs exactly
 * as long as the compiled module does. */
static const char COUNTER[] = "local loads = 0\n"
                              "loads = loads + 1\n"
                              "local calls = 0\n"
                              "return {f = function()\n"
                              "  calls = calls + 1\n"
                              "  return {loads = loads, calls = calls}\n"
                              "end}\n";

static void test_host__module_compiled_once_per_key(void **state) {
    (void)state;
    h_result_t r = call_fn("t1", "executor:count@1", COUNTER, "f", NULL, 0);
    assert_int_equal(r.status, TF_LUA_OK);
    assert_non_null(strstr(r.result, "\"loads\":1"));
    assert_non_null(strstr(r.result, "\"calls\":1"));
    r = call_fn("t1", "executor:count@1", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"loads\":1"));
    assert_non_null(strstr(r.result, "\"calls\":2"));
    /* The key names the compiled module: its source is not looked at again. */
    r = call_fn("t1", "executor:count@1", "error('recompiled')", "f", NULL, 0);
    assert_int_equal(r.status, TF_LUA_OK);
    assert_non_null(strstr(r.result, "\"calls\":3"));
}

/* check_module runs on every fresh load of a module, never for a cached
 * one: it counts loads. */
static int count_loads(lua_State *L, int idx, void *user, char *err, size_t errlen) {
    (void)L, (void)idx, (void)err, (void)errlen;
    (*(int *)user)++;
    return 0;
}

static h_result_t call_counted(const char *tenant, const char *key, int *loads) {
    return run_call((tf_lua_call_t){.tenant_id = tenant,
                                    .module_key = key,
                                    .source = COUNTER,
                                    .function = "f",
                                    .check_module = count_loads,
                                    .user = loads});
}

static void test_host__module_loaded_once_per_vm_and_key(void **state) {
    (void)state;
    int loads = 0;
    for (int i = 1; i <= 3; i++) {
        h_result_t r = call_counted("t1", "executor:count@1", &loads);
        assert_int_equal(r.status, TF_LUA_OK);
        assert_int_equal(loads, 1);
    }
    h_result_t r = call_counted("t1", "executor:count@2", &loads);
    assert_non_null(strstr(r.result, "\"calls\":1"));
    assert_int_equal(loads, 2);
    r = call_counted("t2", "executor:count@1", &loads);
    assert_non_null(strstr(r.result, "\"calls\":1"));
    assert_int_equal(loads, 3);
    r = call_counted("t1", "executor:count@1", &loads);
    assert_non_null(strstr(r.result, "\"calls\":4"));
    assert_int_equal(loads, 3);
    /* Without a key, every run loads the module. */
    call_counted("t1", NULL, &loads);
    call_counted("t1", NULL, &loads);
    assert_int_equal(loads, 5);
}

static void test_host__module_versions_and_keys_are_separate(void **state) {
    (void)state;
    h_result_t r = call_fn("t1", "executor:count@1", COUNTER, "f", NULL, 0);
    r = call_fn("t1", "executor:count@1", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":2"));
    r = call_fn("t1", "executor:count@2", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"loads\":1"));
    assert_non_null(strstr(r.result, "\"calls\":1"));
    r = call_fn("t1", "rule:count@1", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":1"));
    /* Another tenant has its own VM and cache. */
    r = call_fn("t2", "executor:count@1", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":1"));
    /* Without a key nothing is cached. */
    r = call_fn("t1", NULL, COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":1"));
    r = call_fn("t1", NULL, COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":1"));
    r = call_fn("t1", "executor:count@1", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":3"));
}

static void test_host__module_that_fails_to_load_is_not_cached(void **state) {
    (void)state;
    h_result_t r = call_fn("t1", "m@1", "error('boom', 0)", "f", NULL, 0);
    h_assert_failed(r, "lua_error", "boom");
    r = call_fn("t1", "m@1", COUNTER, "f", NULL, 0);
    assert_int_equal(r.status, TF_LUA_OK);
    assert_non_null(strstr(r.result, "\"calls\":1"));
}

/* ---- function calls ---- */

static const char FUNCS[] = "return {\n"
                            "  add = function(a, b) return a + b end,\n"
                            "  echo = function(v) return v end,\n"
                            "  count = function(...) return select('#', ...) end,\n"
                            "  isnil = function(a, b) return {a = a == nil, b = b} end,\n"
                            "  notfn = 1,\n"
                            "}\n";

static void test_host__function_called_with_json_args(void **state) {
    (void)state;
    const char *nums[] = {"1", "2.5"};
    h_result_t r = call_fn("t1", "funcs@1", FUNCS, "add", nums, 2);
    h_assert_ok(r, "3.5");
    const char *obj[] = {"{\"x\":[1,2,null],\"s\":\"\\u00e9\"}"};
    r = call_fn("t1", "funcs@1", FUNCS, "echo", obj, 1);
    assert_int_equal(r.status, TF_LUA_OK);
    assert_non_null(strstr(r.result, "\"x\":[1,2,null]"));
    assert_non_null(strstr(r.result, "\"s\":\"\xc3\xa9\""));
    const char *three[] = {"true", "\"s\"", "null"};
    r = call_fn("t1", "funcs@1", FUNCS, "count", three, 3);
    h_assert_ok(r, "3");
    r = call_fn("t1", "funcs@1", FUNCS, "count", NULL, 0);
    h_assert_ok(r, "0");
    const char *with_nil[] = {NULL, "7"};
    r = call_fn("t1", "funcs@1", FUNCS, "isnil", with_nil, 2);
    assert_non_null(strstr(r.result, "\"a\":true"));
    assert_non_null(strstr(r.result, "\"b\":7"));
    const char *sixteen[16];
    for (int i = 0; i < 16; i++) {
        sixteen[i] = "1";
    }
    r = call_fn("t1", "funcs@1", FUNCS, "count", sixteen, 16);
    h_assert_ok(r, "16");
}

static void test_host__malformed_args_fail_the_run(void **state) {
    (void)state;
    const char *bad[] = {"1", "{\"x\":"};
    h_result_t r = call_fn("t1", "funcs@1", FUNCS, "add", bad, 2);
    h_assert_failed(r, "lua_error", "argument 2");
    assert_non_null(strstr(r.error_message, "malformed JSON"));
    const char *trailing[] = {"1 2"};
    r = call_fn("t1", "funcs@1", FUNCS, "echo", trailing, 1);
    h_assert_failed(r, "lua_error", "argument 1");
    /* The VM and the cached module stay usable. */
    const char *nums[] = {"1", "2"};
    r = call_fn("t1", "funcs@1", FUNCS, "add", nums, 2);
    h_assert_ok(r, "3");
}

static void test_host__missing_function_is_a_module_error(void **state) {
    (void)state;
    h_result_t r = call_fn("t1", "funcs@1", FUNCS, "nope", NULL, 0);
    h_assert_failed(r, "lua_module", "no function 'nope'");
    assert_int_equal(r.retryable, 0);
    r = call_fn("t1", "funcs@1", FUNCS, "notfn", NULL, 0);
    h_assert_failed(r, "lua_module", "no function 'notfn'");
    r = call_fn("t1", "num@1", "return 42", "f", NULL, 0);
    h_assert_failed(r, "lua_module", "must return a table (it returned a number)");
    assert_int_equal(r.retryable, 0);
}

static int refuse_module(lua_State *L, int idx, void *user, char *err, size_t errlen) {
    (void)user;
    if (lua_type(L, idx) != LUA_TTABLE) {
        snprintf(err, errlen, "the module must be a table");
        return -1;
    }
    lua_pushliteral(L, "run");
    int t = lua_rawget(L, idx);
    lua_pop(L, 1);
    if (t != LUA_TFUNCTION) {
        snprintf(err, errlen, "the module has no run function");
        return -1;
    }
    (*(int *)user)++;
    return 0;
}

static void test_host__check_module_refusal(void **state) {
    (void)state;
    int passed = 0;
    h_result_t r = run_call((tf_lua_call_t){.tenant_id = "t1",
                                            .source = "return {other = function() end}",
                                            .check_module = refuse_module,
                                            .user = &passed});
    h_assert_failed(r, "lua_module", "the module has no run function");
    assert_int_equal(r.retryable, 0);
    assert_int_equal(r.fatal, 0);
    /* A refused module is not cached: the same key loads (and checks) again. */
    r = run_call((tf_lua_call_t){.tenant_id = "t1",
                                 .module_key = "exec@1",
                                 .source = "return 1",
                                 .function = "run",
                                 .check_module = refuse_module,
                                 .user = &passed});
    h_assert_failed(r, "lua_module", "the module must be a table");
    r = run_call((tf_lua_call_t){.tenant_id = "t1",
                                 .module_key = "exec@1",
                                 .source = "return {run = function(x) return x * 2 end}",
                                 .function = "run",
                                 .args_json = (const char *const[]){"21"},
                                 .nargs = 1,
                                 .check_module = refuse_module,
                                 .user = &passed});
    h_assert_ok(r, "42");
    assert_int_equal(passed, 1);
    /* With no function, a module that passed its check yields true. */
    r = run_call((tf_lua_call_t){.tenant_id = "t1",
                                 .source = "return {run = function() end}",
                                 .check_module = refuse_module,
                                 .user = &passed});
    h_assert_ok(r, "true");
    assert_int_equal(passed, 2);
}

/* The run succeeded with a result equal, as JSON, to `want` (object keys
 * come in the VM's hash order). */
static void assert_json_ok(h_result_t r, const char *want) {
    assert_int_equal(r.status, TF_LUA_OK);
    json_t *got = json_loads(r.result, 0, NULL), *expected = json_loads(want, 0, NULL);
    assert_non_null(got);
    assert_non_null(expected);
    if (!json_equal(got, expected)) {
        fail_msg("result %s, want %s", r.result, want);
    }
    json_decref(got);
    json_decref(expected);
}

/* A run may hand back one of its arguments as the function left it (a
 * rule's ctx, whose state the action changes). */
static void test_host__result_with_an_argument(void **state) {
    (void)state;
    const char *src = "return {act = function(ev, ctx)\n"
                      "  ctx.state.count = (ctx.state.count or 0) + ev.n\n"
                      "  ctx.seen = true\n"
                      "  if ev.n > 1 then return 'many' end\n"
                      "end}";
    h_result_t r =
        run_call((tf_lua_call_t){.tenant_id = "t1",
                                 .module_key = "rule@1",
                                 .source = src,
                                 .function = "act",
                                 .args_json = (const char *const[]){"{\"n\":2}", "{\"state\":{}}"},
                                 .nargs = 2,
                                 .result_with_arg = 2});
    assert_json_ok(r, "{\"value\":\"many\",\"arg\":{\"state\":{\"count\":2},\"seen\":true}}");
    /* A function that returns nothing: the argument alone. */
    r = run_call((tf_lua_call_t){
        .tenant_id = "t1",
        .module_key = "rule@1",
        .source = src,
        .function = "act",
        .args_json = (const char *const[]){"{\"n\":1}", "{\"state\":{\"count\":5}}"},
        .nargs = 2,
        .result_with_arg = 2});
    assert_json_ok(r, "{\"arg\":{\"state\":{\"count\":6},\"seen\":true}}");
    /* Only an argument the call has. */
    tf_lua_run_t *run = NULL;
    h_result_t unused;
    tf_lua_call_t bad = {.tenant_id = "t1",
                         .source = src,
                         .function = "act",
                         .args_json = (const char *const[]){"1"},
                         .nargs = 1,
                         .result_with_arg = 2};
    assert_int_equal(tf_lua_start(env->host, &bad, h_done, &unused, &run), TF_EINVAL);
    bad.result_with_arg = -1;
    assert_int_equal(tf_lua_start(env->host, &bad, h_done, &unused, &run), TF_EINVAL);
}

/* ---- errors ---- */

static void test_host__syntax_error(void **state) {
    (void)state;
    h_result_t r = h_run(env, "t1", "local x = 1\nlocal y = 2\nif x then\n");
    h_assert_failed(r, "lua_syntax", "test:4:");
    assert_int_equal(r.retryable, 0);
    r = h_run(env, "t1", "return 1 +* 2");
    h_assert_failed(r, "lua_syntax", "test:1:");
    assert_int_equal(r.retryable, 0);
    /* A module with a syntax error fails the same way when called. */
    r = call_fn("t1", "bad@1", "return {f = function() return 1 end", "f", NULL, 0);
    h_assert_failed(r, "lua_syntax", "test:1:");
    /* Not a syntax error: a runtime error is retryable. */
    r = h_run(env, "t1", "return nil + 1");
    h_assert_failed(r, "lua_error", "test:1:");
    assert_int_equal(r.retryable, 1);
}

static void test_host__error_string_has_its_position(void **state) {
    (void)state;
    h_result_t r = h_run(env, "t1", "error('msg')");
    h_assert_failed(r, "lua_error", "test:1: msg");
    assert_string_equal(r.error_message, "test:1: msg");
    assert_int_equal(r.fatal, 0);
    assert_int_equal(r.retryable, 1);
    r = h_run(env, "t1", "\n\nerror('third line')");
    assert_string_equal(r.error_message, "test:3: third line");
    r = h_run(env, "t1", "error('no position', 0)");
    assert_string_equal(r.error_message, "no position");
    r = call_fn("t1", "e@1", "return {f = function()\n  error('in f')\nend}", "f", NULL, 0);
    h_assert_failed(r, "lua_error", "test:2: in f");
}

static void test_host__error_tables(void **state) {
    (void)state;
    h_result_t r = h_run(env, "t1", "error({type = 'my_type', message = 'm'})");
    h_assert_failed(r, "my_type", "m");
    assert_string_equal(r.error_message, "m");
    assert_int_equal(r.fatal, 0);
    assert_int_equal(r.retryable, 1);
    r = h_run(env, "t1", "error({type = 'vendor.quota-exceeded_2', message = 'q'})");
    h_assert_failed(r, "vendor.quota-exceeded_2", "q");
    r = h_run(env, "t1", "error({type = 'bad type!', message = 'm'})");
    h_assert_failed(r, "lua_error", "m");
    r = h_run(env, "t1", "error({type = '', message = 'm'})");
    h_assert_failed(r, "lua_error", "m");
    r = h_run(env, "t1", "error({type = ('x'):rep(64), message = 'm'})");
    h_assert_failed(r, "lua_error", "m");
    r = h_run(env, "t1", "error({type = 42, message = 'm'})");
    h_assert_failed(r, "lua_error", "m");
    r = h_run(env, "t1", "error({type = 'my_type'})");
    h_assert_failed(r, "my_type", "error object without a message");
    r = h_run(env, "t1", "error({type = 'my_type', message = 'm', fatal = true})");
    h_assert_failed(r, "my_type", "m");
    assert_int_equal(r.fatal, 1);
    r = h_run(env, "t1", "error({type = 'my_type', message = 'm', retryable = false})");
    h_assert_failed(r, "my_type", "m");
    assert_int_equal(r.fatal, 1);
    r = h_run(env, "t1", "error({type = 'my_type', message = 'm', retryable = true})");
    assert_int_equal(r.fatal, 0);
    /* No metamethod of the error object runs. */
    r = h_run(env, "t1",
              "error(setmetatable({}, {__index = function() while true do end end,"
              " __tostring = function() while true do end end}))");
    h_assert_failed(r, "lua_error", "error object without a message");
}

static void test_host__error_values_that_are_not_strings(void **state) {
    (void)state;
    h_result_t r = h_run(env, "t1", "error(42)");
    h_assert_failed(r, "lua_error", "42");
    assert_string_equal(r.error_message, "42");
    r = h_run(env, "t1", "error(1.5)");
    assert_string_equal(r.error_message, "1.5");
    r = h_run(env, "t1", "error(nil)");
    h_assert_failed(r, "lua_error", "error object is a nil value");
    r = h_run(env, "t1", "error()");
    h_assert_failed(r, "lua_error", "error object is a nil value");
    r = h_run(env, "t1", "error(true)");
    h_assert_failed(r, "lua_error", "error object is a boolean value");
    r = h_run(env, "t1", "error(function() end)");
    h_assert_failed(r, "lua_error", "error object is a function value");
}

static void test_host__tf_fatal(void **state) {
    (void)state;
    h_result_t r = h_run(env, "t1", "tf.fatal('x')");
    h_assert_failed(r, "fatal", "x");
    assert_string_equal(r.error_message, "x");
    assert_int_equal(r.fatal, 1);
    r = h_run(env, "t1", "tf.fatal('card declined', 'my_type')");
    h_assert_failed(r, "my_type", "card declined");
    assert_int_equal(r.fatal, 1);
    /* pcall sees it like any error object. */
    r = h_run(env, "t1", "local ok, e = pcall(tf.fatal, 'y', 't2') return {ok, e.type, e.fatal}");
    h_assert_ok(r, "[false,\"t2\",true]");
}

static void test_host__long_and_invalid_messages(void **state) {
    (void)state;
    h_result_t r = h_run(env, "t1", "error(('x'):rep(5000), 0)");
    assert_int_equal(r.status, TF_LUA_FAILED);
    size_t len = strlen(r.error_message);
    assert_true(len < 1024);
    assert_true(len > 900);
    assert_string_equal(r.error_message + len - 3, "...");
    assert_int_equal(r.error_message[0], 'x');
    r = h_run(env, "t1", "error({type = 't', message = ('y'):rep(5000)})");
    assert_string_equal(r.error_message + strlen(r.error_message) - 3, "...");
    /* Bytes that are not UTF-8, and NUL, become '?'; valid UTF-8 stays. */
    r = h_run(env, "t1", "error('a\\255\\254b\\0c\\u{e9}', 0)");
    assert_string_equal(r.error_message, "a??b?c\xc3\xa9");
    r = h_run(env, "t1", "error({type = 't', message = '\\192\\128'})");
    assert_string_equal(r.error_message, "??");
    /* A multi-byte character cut by the limit does not leave a partial one. */
    r = h_run(env, "t1", "error(('\\u{20ac}'):rep(2000), 0)");
    len = strlen(r.error_message);
    assert_string_equal(r.error_message + len - 3, "...");
    assert_true(tf_utf8_valid(r.error_message, len));
}

/* ---- snooze ---- */

static void test_host__snooze(void **state) {
    (void)state;
    h_result_t r =
        call_fn("t1", "s@1", "return {run = function() return tf.snooze(500) end}", "run", NULL, 0);
    assert_int_equal(r.status, TF_LUA_OK);
    assert_int_equal(r.snooze_ms, 500);
    r = h_run(env, "t1", "return tf.snooze(500)");
    assert_int_equal(r.status, TF_LUA_OK);
    assert_int_equal(r.snooze_ms, 500);
    /* Calling tf.snooze but returning something else is a normal result. */
    r = call_fn("t1", "s2@1", "return {run = function() tf.snooze(500) return 'done' end}", "run",
                NULL, 0);
    h_assert_ok(r, "\"done\"");
    assert_int_equal(r.snooze_ms, 0);
    r = h_run(env, "t1", "local s = tf.snooze(7) return 1");
    h_assert_ok(r, "1");
    assert_int_equal(r.snooze_ms, 0);
}

/* ---- waiting: tf.sleep, cancel, deadlines ---- */

static void test_host__sleep_yields_to_other_runs(void **state) {
    (void)state;
    h_result_t sleeper, quick;
    h_start(env, "t1", "local t = {} t[1] = 'a' tf.sleep(20) t[2] = 'b' return t", &sleeper);
    h_start(env, "t1", "return 'quick'", &quick);
    h_wait(env, &quick);
    h_assert_ok(quick, "\"quick\"");
    assert_int_equal(sleeper.done, 0);
    h_wait(env, &sleeper);
    h_assert_ok(sleeper, "[\"a\",\"b\"]");
    assert_true(quick.ended_ns < sleeper.ended_ns);
    /* Another tenant's run progresses meanwhile too, and tf.sleep(0) resumes. */
    h_result_t other;
    h_start(env, "t1", "tf.sleep(200) return 1", &sleeper);
    h_start(env, "t2", "for i = 1, 3 do tf.sleep(0) end return 2", &other);
    h_wait(env, &other);
    h_assert_ok(other, "2");
    h_wait(env, &sleeper);
    h_assert_ok(sleeper, "1");
    assert_true(other.ended_ns < sleeper.ended_ns);
}

static void test_host__waits_inside_pcall(void **state) {
    (void)state;
    h_result_t r = h_run(env, "t1",
                         "local ok, v = pcall(function() tf.sleep(1) return 5 end)"
                         " return {ok, v}");
    h_assert_ok(r, "[true,5]");
    r = h_run(env, "t1",
              "local ok, e = pcall(function() tf.sleep(1) error('after', 0) end)"
              " return {ok, e}");
    h_assert_ok(r, "[false,\"after\"]");
    r = h_run(env, "t1",
              "local ok, e = xpcall(function() tf.sleep(1) error('x', 0) end,"
              " function(m) return 'handled ' .. m end) return {ok, e}");
    h_assert_ok(r, "[false,\"handled x\"]");
    /* A module's top level may wait too. */
    r = call_fn("t1", "w@1", "tf.sleep(1) return {f = function() return 'ready' end}", "f", NULL,
                0);
    h_assert_ok(r, "\"ready\"");
}

static void test_host__cancel_while_sleeping(void **state) {
    (void)state;
    h_result_t r, other;
    tf_lua_run_t *run = h_start(env, "t1", "tf.sleep(100000) return 1", &r);
    h_start(env, "t1", "return 2", &other);
    h_wait(env, &other);
    assert_int_equal(r.done, 0);
    tf_lua_cancel(run);
    assert_int_equal(r.done, 0); /* never from inside tf_lua_cancel */
    h_wait(env, &r);
    h_assert_failed(r, "cancelled", "cancelled");
    /* The VM is fine afterwards. */
    h_result_t next = h_run(env, "t1", "tf.sleep(1) return 3");
    h_assert_ok(next, "3");
}

static void test_host__cancel_before_start(void **state) {
    (void)state;
    h_result_t r;
    tf_lua_run_t *run = h_start(env, "t1", "return 1", &r);
    tf_lua_cancel(run);
    assert_int_equal(r.done, 0);
    h_wait(env, &r);
    h_assert_failed(r, "cancelled", "cancelled");
    assert_int_equal(r.retryable, 1);
    h_result_t next = h_run(env, "t1", "return 2");
    h_assert_ok(next, "2");
}

static void test_host__cancel_preempted_run(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = (uint64_t)1 << 50, .timeout_ms = 60000, .slice_ms = 1};
    reopen(&lim);
    h_result_t r;
    tf_lua_run_t *run = h_start(env, "t1", "while true do end", &r);
    uv_run(&env->loop, UV_RUN_NOWAIT); /* one slice: the run is preempted */
    assert_int_equal(r.done, 0);
    tf_lua_cancel(run);
    h_wait(env, &r);
    h_assert_failed(r, "cancelled", "cancelled");
    h_result_t next = h_run(env, "t1", "return 2");
    h_assert_ok(next, "2");
}

static void test_host__deadline_while_sleeping(void **state) {
    (void)state;
    h_result_t r = run_call((tf_lua_call_t){
        .tenant_id = "t1", .source = "tf.sleep(100000) return 1", .timeout_ms = 30});
    h_assert_failed(r, "lua_deadline", "time limit");
    assert_int_equal(r.retryable, 1);
    h_result_t next = h_run(env, "t1", "return 2");
    h_assert_ok(next, "2");
}

static void test_host__call_timeout_below_the_hosts_is_honored(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = (uint64_t)1 << 50, .timeout_ms = 60000};
    reopen(&lim);
    /* A spinning run with an unlimited budget ends at the call's deadline. */
    h_result_t r = run_call(
        (tf_lua_call_t){.tenant_id = "t1", .source = "while true do end", .timeout_ms = 50});
    h_assert_failed(r, "lua_deadline", "time limit");
    /* A call asking for more than the host's limit gets the host's. */
    lim.timeout_ms = 50;
    reopen(&lim);
    r = run_call((tf_lua_call_t){
        .tenant_id = "t1", .source = "tf.sleep(3000000) return 1", .timeout_ms = 10000000});
    h_assert_failed(r, "lua_deadline", "time limit");
}

/* ---- per-run globals ---- */

static void test_host__globals_are_per_run_when_runs_interleave(void **state) {
    (void)state;
    static const char src[] = "return {f = function(v)\n"
                              "  x = v\n"
                              "  _G.y = v * 10\n"
                              "  tf.sleep(10)\n"
                              "  return {x = x, y = y}\n"
                              "end}\n";
    h_result_t a, b;
    h_start_args(env, "t1", "g@1", src, "f", (const char *const[]){"1"}, 1, &a);
    h_start_args(env, "t1", "g@1", src, "f", (const char *const[]){"2"}, 1, &b);
    h_wait(env, &a);
    h_wait(env, &b);
    assert_int_equal(a.status, TF_LUA_OK);
    assert_non_null(strstr(a.result, "\"x\":1"));
    assert_non_null(strstr(a.result, "\"y\":10"));
    assert_non_null(strstr(b.result, "\"x\":2"));
    assert_non_null(strstr(b.result, "\"y\":20"));
    /* And a later run does not see them. */
    h_result_t c =
        call_fn("t1", "g2@1", "return {f = function() return {x = x, y = y} end}", "f", NULL, 0);
    h_assert_ok(c, "{}");
}

/* ---- VM memory, eviction, reset ---- */

static void test_host__idle_vm_memory(void **state) {
    (void)state;
    assert_int_equal(tf_lua_vm_memory(env->host, "t1"), 0);
    h_result_t r = h_run(env, "t1", "return 1");
    h_assert_ok(r, "1");
    size_t bytes = tf_lua_vm_memory(env->host, "t1");
    print_message("idle tenant VM with the tf library: %zu bytes\n", bytes);
    assert_true(bytes > 0);
    assert_true(bytes <= (size_t)64 << 10);
    /* A trivial run's garbage does not pile up. */
    for (int i = 0; i < 50; i++) {
        r = h_run(env, "t1", "return {a = 1, b = 'x'}");
    }
    print_message("after 50 more trivial runs: %zu bytes\n", tf_lua_vm_memory(env->host, "t1"));
    assert_true(tf_lua_vm_memory(env->host, "t1") <= (size_t)64 << 10);
}

static void test_host__lru_eviction(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = 5000000, .timeout_ms = 2000, .max_vms = 2};
    reopen(&lim);
    h_result_t r = h_run(env, "a", "return 1");
    r = h_run(env, "b", "return 1");
    r = h_run(env, "a", "return 1"); /* a is now the most recently used */
    assert_true(tf_lua_vm_memory(env->host, "a") > 0);
    assert_true(tf_lua_vm_memory(env->host, "b") > 0);
    r = h_run(env, "c", "return 1");
    h_assert_ok(r, "1");
    assert_int_equal(tf_lua_vm_memory(env->host, "b"), 0);
    assert_true(tf_lua_vm_memory(env->host, "a") > 0);
    assert_true(tf_lua_vm_memory(env->host, "c") > 0);
    /* An evicted tenant gets a fresh VM (its module cache is gone). */
    r = call_fn("b", "count@1", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":1"));
    assert_int_equal(tf_lua_vm_memory(env->host, "a"), 0);
}

static void test_host__lru_never_evicts_a_busy_vm(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = 5000000, .timeout_ms = 5000, .max_vms = 1};
    reopen(&lim);
    h_result_t busy, other;
    h_start(env, "a", "tf.sleep(20) return 'a'", &busy);
    h_start(env, "b", "return 'b'", &other);
    h_wait(env, &other);
    h_assert_ok(other, "\"b\"");
    assert_true(tf_lua_vm_memory(env->host, "a") > 0);
    h_wait(env, &busy);
    h_assert_ok(busy, "\"a\"");
}

static void tick(uv_timer_t *t) {
    (void)t;
}

static void test_host__idle_vm_is_closed(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = 5000000, .timeout_ms = 2000, .vm_idle_ms = 10};
    reopen(&lim);
    h_result_t r = h_run(env, "t1", "return 1");
    h_assert_ok(r, "1");
    assert_true(tf_lua_vm_memory(env->host, "t1") > 0);
    /* The sweep runs about once a second; keep the loop alive until then. */
    uv_timer_t timer;
    uv_timer_init(&env->loop, &timer);
    uv_timer_start(&timer, tick, 50, 50);
    int turns = 0;
    while (tf_lua_vm_memory(env->host, "t1") > 0 && turns++ < 400) {
        uv_run(&env->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    assert_int_equal(tf_lua_vm_memory(env->host, "t1"), 0);
    r = h_run(env, "t1", "return 2");
    h_assert_ok(r, "2");
}

static void test_host__memory_kill_resets_the_vm(void **state) {
    (void)state;
    tf_lua_limits_t lim = {
        .instructions = 50000000, .timeout_ms = 10000, .memory_bytes = (size_t)4 << 20};
    reopen(&lim);
    h_result_t r = call_fn("t1", "count@1", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":1"));
    r = h_run(env, "t1", "local t = {} while true do t[#t + 1] = ('x'):rep(1000) .. #t end");
    h_assert_failed(r, "lua_memory", "memory limit");
    /* The VM is closed once its last run ended, not at the tenant's next run. */
    assert_int_equal(tf_lua_vm_memory(env->host, "t1"), 0);
    r = h_run(env, "t1", "return 'next'");
    h_assert_ok(r, "\"next\"");
    size_t bytes = tf_lua_vm_memory(env->host, "t1");
    print_message("tenant VM after a reset: %zu bytes\n", bytes);
    assert_true(bytes > 0 && bytes <= (size_t)64 << 10);
    /* A new VM: the module cache started over. */
    r = call_fn("t1", "count@1", COUNTER, "f", NULL, 0);
    assert_non_null(strstr(r.result, "\"calls\":1"));
}

static void test_host__memory_kill_with_another_run_in_flight(void **state) {
    (void)state;
    tf_lua_limits_t lim = {
        .instructions = 50000000, .timeout_ms = 10000, .memory_bytes = (size_t)4 << 20};
    reopen(&lim);
    h_result_t sleeper, hog, next;
    h_start(env, "t1", "local s = ('z'):rep(10) tf.sleep(30) return s .. '!'", &sleeper);
    h_start(env, "t1", "local t = {} while true do t[#t + 1] = ('x'):rep(1000) .. #t end", &hog);
    h_wait(env, &hog);
    h_assert_failed(hog, "lua_memory", "memory limit");
    /* A new run gets a new VM while the old one finishes its other run. */
    h_start(env, "t1", "return 'fresh'", &next);
    h_wait(env, &next);
    h_assert_ok(next, "\"fresh\"");
    h_wait(env, &sleeper);
    assert_true(sleeper.done);
}

/* ---- tf_lua_start's arguments ---- */

static void test_host__start_refuses_bad_arguments(void **state) {
    (void)state;
    h_result_t r = {0};
    tf_lua_call_t call = {.tenant_id = "t1", .source = "return 1", .source_len = 8};
    call.tenant_id = NULL;
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), TF_EINVAL);
    call.tenant_id = "";
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), TF_EINVAL);
    char tenant[65];
    memset(tenant, 'x', 64);
    tenant[64] = '\0';
    call.tenant_id = tenant;
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), TF_EINVAL);
    tenant[63] = '\0'; /* 63 characters fit */
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), 0);
    h_wait(env, &r);
    h_assert_ok(r, "1");
    call.tenant_id = "t1";
    const char *args[17];
    for (int i = 0; i < 17; i++) {
        args[i] = "1";
    }
    call.function = "f";
    call.args_json = args;
    call.nargs = 17;
    memset(&r, 0, sizeof(r));
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), TF_EINVAL);
    call.args_json = NULL;
    call.nargs = 1;
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), TF_EINVAL);
    call.nargs = 0;
    call.function = NULL;
    call.source = NULL;
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &r, NULL), TF_EINVAL);
    /* None of them called back. */
    uv_run(&env->loop, UV_RUN_NOWAIT);
    assert_int_equal(r.done, 0);
}

/* ---- shutdown ---- */

static void test_host__close_with_runs_in_flight(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = (uint64_t)1 << 50, .timeout_ms = 60000, .slice_ms = 1};
    reopen(&lim);
    h_result_t sleeping, spinning, fresh;
    h_start(env, "t1", "tf.sleep(100000) return 1", &sleeping);
    h_start(env, "t2", "while true do end", &spinning);
    uv_run(&env->loop, UV_RUN_NOWAIT);
    h_start(env, "t3", "return 1", &fresh); /* not started yet */
    assert_int_equal(sleeping.done, 0);
    assert_int_equal(spinning.done, 0);
    int closed = 0;
    tf_lua_host_close(env->host, h_closed, &closed);
    /* Closing refuses new runs. */
    tf_lua_call_t call = {.tenant_id = "t1", .source = "return 1", .source_len = 8};
    h_result_t late = {0};
    assert_int_equal(tf_lua_start(env->host, &call, h_done, &late, NULL), TF_ESHUTDOWN);
    while (!closed) {
        uv_run(&env->loop, UV_RUN_ONCE);
    }
    uv_run(&env->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&env->loop), 0);
    free(env);
    env = NULL;
    h_assert_failed(sleeping, "shutdown", "shutting down");
    h_assert_failed(spinning, "shutdown", "shutting down");
    h_assert_failed(fresh, "shutdown", "shutting down");
    assert_int_equal(late.done, 0);
}

/* A tenant whose VM was reset after a memory kill, with a run of the old VM
 * still going when the host closes: that run is told too. */
static void test_host__close_with_a_run_of_a_reset_vm(void **state) {
    (void)state;
    tf_lua_limits_t lim = {.instructions = (uint64_t)1 << 50,
                           .timeout_ms = 60000,
                           .slice_ms = 1,
                           .memory_bytes = (size_t)4 << 20};
    reopen(&lim);
    h_result_t spinning, hog, fresh;
    h_start(env, "t1", "while true do end", &spinning);
    h_start(env, "t1", "local t = {} while true do t[#t + 1] = ('x'):rep(1000) .. #t end", &hog);
    h_wait(env, &hog);
    h_assert_failed(hog, "lua_memory", "memory limit");
    h_start(env, "t1", "return 'fresh'", &fresh); /* the old VM is retired */
    h_wait(env, &fresh);
    h_assert_ok(fresh, "\"fresh\"");
    assert_int_equal(spinning.done, 0);
    h_close(env);
    env = NULL;
    h_assert_failed(spinning, "shutdown", "shutting down");
}

/* ---- instructions ---- */

static void test_host__instructions_counted(void **state) {
    (void)state;
    h_result_t r = h_run(env, "t1", "local s = 0 for i = 1, 100000 do s = s + i end return s");
    h_assert_ok(r, "5000050000");
    print_message("a 100000-iteration loop: %llu instructions\n",
                  (unsigned long long)r.instructions);
    assert_true(r.instructions >= 100000);
    assert_true(r.instructions <= 1000000);
    r = h_run(env, "t1", "while true do end");
    h_assert_failed(r, "lua_budget", "instruction budget");
    assert_true(r.instructions >= 5000000);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(test_host__##name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(module_compiled_once_per_key),
        T(module_loaded_once_per_vm_and_key),
        T(module_versions_and_keys_are_separate),
        T(module_that_fails_to_load_is_not_cached),
        T(function_called_with_json_args),
        T(malformed_args_fail_the_run),
        T(missing_function_is_a_module_error),
        T(check_module_refusal),
        T(result_with_an_argument),
        T(syntax_error),
        T(error_string_has_its_position),
        T(error_tables),
        T(error_values_that_are_not_strings),
        T(tf_fatal),
        T(long_and_invalid_messages),
        T(snooze),
        T(sleep_yields_to_other_runs),
        T(waits_inside_pcall),
        T(cancel_while_sleeping),
        T(cancel_before_start),
        T(cancel_preempted_run),
        T(deadline_while_sleeping),
        T(call_timeout_below_the_hosts_is_honored),
        T(globals_are_per_run_when_runs_interleave),
        T(idle_vm_memory),
        T(lru_eviction),
        T(lru_never_evicts_a_busy_vm),
        T(idle_vm_is_closed),
        T(memory_kill_resets_the_vm),
        T(memory_kill_with_another_run_in_flight),
        T(start_refuses_bad_arguments),
        T(close_with_runs_in_flight),
        T(close_with_a_run_of_a_reset_vm),
        T(instructions_counted),
    };
#undef T
    return cmocka_run_group_tests_name("lua host", tests, NULL, NULL);
}
