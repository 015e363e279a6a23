/*
 * test_sandbox.c - every red-team case of ../shared/LUA-SANDBOX.md against
 * the real host.  Each hostile run of tenant "evil" runs while tenant
 * "good" runs a benign script; the test asserts the hostile outcome, that
 * the benign run completed, and that evil's next benign run works.
 */
#include "tests/lua/lua_harness.h"

static h_env_t *env;

static int setup(void **state) {
    (void)state;
    env = h_open(NULL);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    h_close(env);
    return 0;
}

/* The hostile chunk and a benign one of another tenant run together. */
static h_result_t hostile(const char *source) {
    h_result_t bad, good;
    h_start(env, "evil", source, &bad);
    h_start(env, "good", "local s = 0 for i = 1, 1000 do s = s + i end return s", &good);
    h_wait(env, &bad);
    h_wait(env, &good);
    h_assert_ok(good, "500500");
    return bad;
}

/* The hostile tenant's next benign run works. */
static void next_run_works(void) {
    h_result_t r = h_run(env, "evil", "return {ok = ('a'):upper() .. tostring(1)}");
    h_assert_ok(r, "{\"ok\":\"A1\"}");
}

static void test_no_os_no_io(void **state) {
    (void)state;
    h_result_t r = hostile("return os.execute('id') or io.open('/etc/passwd')");
    h_assert_failed(r, "lua_error", "global 'os'");
    r = hostile("return io.open('/etc/passwd')");
    h_assert_failed(r, "lua_error", "global 'io'");
    next_run_works();
}

static void test_no_package_no_require(void **state) {
    (void)state;
    h_result_t r = hostile("return package.loadlib('libc.so.6', 'system')");
    h_assert_failed(r, "lua_error", "global 'package'");
    r = hostile("return require('os')");
    h_assert_failed(r, "lua_error", "global 'require'");
    next_run_works();
}

static void test_no_dofile_load(void **state) {
    (void)state;
    h_result_t r = hostile("dofile('/etc/passwd')");
    h_assert_failed(r, "lua_error", "global 'dofile'");
    r = hostile("return loadfile('/etc/passwd')");
    h_assert_failed(r, "lua_error", "global 'loadfile'");
    r = hostile("return load('return 1')");
    h_assert_failed(r, "lua_error", "global 'load'");
    r = hostile("print('x')");
    h_assert_failed(r, "lua_error", "global 'print'");
    next_run_works();
}

static void test_binary_chunk_refused(void **state) {
    (void)state;
    h_result_t r = hostile("\x1bLua\x54\x00 whatever");
    h_assert_failed(r, "lua_syntax", "binary chunks are not accepted");
    assert_int_equal(r.retryable, 0);
    next_run_works();
}

static void test_no_string_dump(void **state) {
    (void)state;
    h_result_t r = hostile("return string.dump(function() end)");
    h_assert_failed(r, "lua_error", "field 'dump'");
    r = hostile("return ('').dump(function() end)");
    h_assert_failed(r, "lua_error", "dump");
    next_run_works();
}

static void test_globals_do_not_leak_between_runs(void **state) {
    (void)state;
    h_result_t r = hostile("tostring = function() return 'pwned' end return tostring(2)");
    h_assert_ok(r, "\"pwned\""); /* its own global, for its own run */
    r = h_run(env, "evil", "return tostring(1)");
    h_assert_ok(r, "\"1\"");
    r = hostile("_G.marker = 1 return marker");
    h_assert_ok(r, "1");
    r = h_run(env, "evil", "return marker");
    h_assert_ok(r, "null");
    r = h_run(env, "evil", "return rawget(_G, 'marker') == nil and _G.string ~= nil");
    h_assert_ok(r, "true");
    next_run_works();
}

static void test_string_metatable_locked(void **state) {
    (void)state;
    h_result_t r =
        hostile("getmetatable('').__index = {upper = function() return 'pwned' end} return 1");
    h_assert_failed(r, "lua_error", "attempt to index a string value");
    r = hostile("return setmetatable('', {})");
    h_assert_failed(r, "lua_error", "bad argument");
    r = hostile("return getmetatable('')");
    h_assert_ok(r, "\"locked\"");
    next_run_works();
}

static void test_library_tables_read_only(void **state) {
    (void)state;
    h_result_t r = hostile("string.upper = function() return 'pwned' end return 1");
    h_assert_failed(r, "lua_error", "read-only");
    r = hostile("rawset(string, 'upper', function() return 'pwned' end) return 1");
    h_assert_failed(r, "lua_error", "read-only");
    r = hostile("setmetatable(string, nil) string.upper = print return 1");
    h_assert_failed(r, "lua_error", "protected metatable");
    r = hostile("tf.now = function() return 0 end return 1");
    h_assert_failed(r, "lua_error", "read-only");
    r = hostile("tf.json.encode = nil return 1");
    h_assert_failed(r, "lua_error", "read-only");
    r = h_run(env, "evil", "return ('a'):upper()");
    h_assert_ok(r, "\"A\"");
    next_run_works();
}

static void test_other_tenant_unaffected(void **state) {
    (void)state;
    h_result_t a, b;
    h_start(env, "evil", "string.format = error return 1", &a);
    h_wait(env, &a);
    h_assert_failed(a, "lua_error", "read-only");
    h_start(env, "good", "return string.format('%d', 1)", &b);
    h_wait(env, &b);
    h_assert_ok(b, "\"1\"");
    /* A tenant's own global shadowing changes nothing for another. */
    h_start(env, "evil", "string = {format = error} return string.format ~= nil", &a);
    h_wait(env, &a);
    h_assert_ok(a, "true");
    h_start(env, "good", "return string.format('%d', 2)", &b);
    h_wait(env, &b);
    h_assert_ok(b, "\"2\"");
}

static void test_infinite_loop_killed(void **state) {
    (void)state;
    h_result_t r = hostile("while true do end");
    h_assert_failed(r, "lua_budget", "instruction budget");
    next_run_works();
}

static void test_pcall_cannot_swallow_the_kill(void **state) {
    (void)state;
    h_result_t r = hostile("while true do pcall(function() while true do end end) end");
    h_assert_failed(r, "lua_budget", "instruction budget");
    r = hostile("while true do xpcall(function() while true do end end,"
                " function() while true do end end) end");
    h_assert_failed(r, "lua_budget", "instruction budget");
    r = hostile("local ok = pcall(string.rep, 'x', 1 << 40) while true do"
                " pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end) end");
    assert_int_equal(r.status, TF_LUA_FAILED);
    assert_true(strcmp(r.error_type, "lua_budget") == 0 || strcmp(r.error_type, "lua_memory") == 0);
    next_run_works();
}

static void test_recursion_killed(void **state) {
    (void)state;
    h_result_t r = hostile("local function f() return f() end return f()");
    h_assert_failed(r, "lua_budget", "instruction budget");
    next_run_works();
}

static void test_loop_in_metamethod_from_c_killed(void **state) {
    (void)state;
    /* __tostring runs inside tostring (C): the run cannot yield there, so
     * the kill is an error that the hook raises again until it is out. */
    h_result_t r = hostile(
        "return tostring(setmetatable({}, {__tostring = function() while true do end end}))");
    h_assert_failed(r, "lua_budget", "instruction budget");
    r = hostile("table.sort({3, 2, 1}, function(a, b) while true do"
                " pcall(function() while true do end end) end end)");
    h_assert_failed(r, "lua_budget", "instruction budget");
    r = hostile("return ('x'):gsub('x', function() while true do end end)");
    h_assert_failed(r, "lua_budget", "instruction budget");
    next_run_works();
}

static void test_catastrophic_pattern_killed(void **state) {
    (void)state;
    h_result_t r = hostile("local s = ('a'):rep(3000) return s:find(('a-'):rep(6) .. 'b')");
    h_assert_failed(r, "lua_deadline", "time limit");
    r = hostile("local s = ('a'):rep(3000) return s:match(('a*'):rep(8) .. 'b')");
    h_assert_failed(r, "lua_deadline", "time limit");
    r = hostile("local s = ('a'):rep(3000) return s:gsub(('a-'):rep(6) .. 'b', '')");
    h_assert_failed(r, "lua_deadline", "time limit");
    r = hostile("local s = ('a'):rep(3000) for m in s:gmatch(('a-'):rep(6) .. 'b') do end");
    h_assert_failed(r, "lua_deadline", "time limit");
    next_run_works();
}

static void test_huge_allocation_fails_at_once(void **state) {
    (void)state;
    h_result_t r = hostile("local s = string.rep('x', 2^30) return #s");
    h_assert_failed(r, "lua_memory", "memory limit");
    next_run_works();
}

static void test_growing_string_hits_the_cap(void **state) {
    (void)state;
    h_result_t r = hostile("local s = 'x' while true do s = s .. s end");
    h_assert_failed(r, "lua_memory", "memory limit");
    /* pcall cannot keep it going either. */
    r = hostile("local t = {} while true do pcall(function()"
                " t[#t + 1] = ('x'):rep(1 << 20) .. #t end) end");
    h_assert_failed(r, "lua_memory", "memory limit");
    next_run_works();
}

static void test_stack_overflow_vm_reusable(void **state) {
    (void)state;
    h_result_t r = hostile("local function f() return 1 + f() end return f()");
    assert_int_equal(r.status, TF_LUA_FAILED);
    assert_true(strstr(r.error_message, "stack overflow") != NULL ||
                strcmp(r.error_type, "lua_memory") == 0);
    next_run_works();
}

static void test_gc_metamethod_refused(void **state) {
    (void)state;
    h_result_t r = hostile("setmetatable({}, {__gc = function() while true do end end}) return 1");
    h_assert_failed(r, "lua_error", "__gc metamethods are not allowed");
    /* Adding __gc afterwards does not make the table finalizable. */
    r = hostile("local mt = {} local t = setmetatable({}, mt)"
                " mt.__gc = function() while true do end end t = nil return 1");
    h_assert_ok(r, "1");
    next_run_works();
}

static void test_cyclic_result(void **state) {
    (void)state;
    h_result_t r = hostile("local t = {} t.self = t return t");
    h_assert_failed(r, "lua_result", "cycle at result.self");
    next_run_works();
}

static void test_deep_result(void **state) {
    (void)state;
    h_result_t r = hostile("local t = {} local c = t for i = 1, 100000 do c.x = {} c = c.x end"
                           " return t");
    h_assert_failed(r, "lua_result", "nested deeper than 32");
    next_run_works();
}

static void test_output_limit(void **state) {
    (void)state;
    /* 50 MB strings need more than the default memory limit of 64 MiB
     * (string.rep builds it in a buffer first). */
    h_close(env);
    tf_lua_limits_t lim = {.instructions = 5000000, .timeout_ms = 5000,
                           .memory_bytes = (size_t)256 << 20};
    env = h_open(&lim);
    h_result_t r = hostile("return ('x'):rep(50e6)");
    h_assert_failed(r, "lua_output", "output limit");
    r = hostile("local t = {} for i = 1, 200000 do t[i] = 'xxxxxxxx' end return t");
    h_assert_failed(r, "lua_output", "output limit");
    next_run_works();
}

static void test_nan_and_infinity(void **state) {
    (void)state;
    h_result_t r = hostile("return 0/0, math.huge");
    h_assert_failed(r, "lua_result", "NaN");
    r = hostile("return {x = math.huge}");
    h_assert_failed(r, "lua_result", "infinite");
    r = hostile("return {x = -math.huge}");
    h_assert_failed(r, "lua_result", "infinite");
    next_run_works();
}

static void test_no_coroutine_yield(void **state) {
    (void)state;
    h_result_t r = hostile("coroutine.yield('fake')");
    h_assert_failed(r, "lua_error", "global 'coroutine'");
    next_run_works();
}

static void test_wait_refused_inside_c_callback(void **state) {
    (void)state;
    h_result_t r =
        hostile("table.sort({3, 1, 2}, function(a, b) tf.sleep(0) return a < b end) return 1");
    h_assert_failed(r, "lua_error", "tf.sleep: not allowed here");
    r = hostile("return tostring(setmetatable({}, {__tostring = function()"
                " tf.sleep(1) return 'x' end}))");
    h_assert_failed(r, "lua_error", "not allowed here");
    next_run_works();
}

static void test_script_cannot_claim_the_hosts_error_types(void **state) {
    (void)state;
    static const char *const types[] = {"lua_budget", "lua_memory", "cancelled", "shutdown"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char src[120];
        snprintf(src, sizeof(src), "error({type = '%s', message = 'pretend'})", types[i]);
        h_result_t r = hostile(src);
        h_assert_failed(r, "lua_error", "pretend");
    }
    h_result_t r = hostile("error({type = 'quota_exceeded', message = 'mine'})");
    h_assert_failed(r, "quota_exceeded", "mine");
    next_run_works();
}

/* Tenant A spins; tenant B's benign run, started after A's, ends first. */
static void test_spinning_tenant_does_not_hold_up_another(void **state) {
    (void)state;
    h_result_t spin[3], benign;
    for (int i = 0; i < 3; i++) {
        char tenant[16];
        snprintf(tenant, sizeof(tenant), "spin%d", i);
        h_start(env, tenant, "while true do end", &spin[i]);
    }
    uv_run(&env->loop, UV_RUN_NOWAIT); /* the spinners are running */
    h_start(env, "good", "local s = 0 for i = 1, 100 do s = s + i end return s", &benign);
    h_wait(env, &benign);
    h_assert_ok(benign, "5050");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(spin[i].done, 0);
    }
    for (int i = 0; i < 3; i++) {
        h_wait(env, &spin[i]);
        h_assert_failed(spin[i], "lua_budget", "instruction budget");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_os_no_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_package_no_require, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_dofile_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_chunk_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_string_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_globals_do_not_leak_between_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_metatable_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_library_tables_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_tenant_unaffected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_infinite_loop_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pcall_cannot_swallow_the_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recursion_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_in_metamethod_from_c_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catastrophic_pattern_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_allocation_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_growing_string_hits_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stack_overflow_vm_reusable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_metamethod_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cyclic_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_and_infinity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_coroutine_yield, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_refused_inside_c_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_cannot_claim_the_hosts_error_types, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_spinning_tenant_does_not_hold_up_another, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("lua sandbox", tests, NULL, NULL);
}
