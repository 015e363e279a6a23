/*
 * lua_harness.h - running scripts in a real Lua host on a real libuv loop,
 * for the tests of lua/ and stdlib/.  Header-only: each test file is one
 * executable.
 */
#ifndef TF_TESTS_LUA_HARNESS_H
#define TF_TESTS_LUA_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "lua/host.h"
#include "stdlib/tf.h"

typedef struct {
    int done;
    int order; /* the how-many-th run to end */
    tf_lua_status_t status;
    char result[4096];
    char error_type[64];
    char error_message[1024];
    int fatal, retryable;
    int64_t snooze_ms;
    uint64_t instructions;
    uint64_t ended_ns;
} h_result_t;

typedef struct {
    uv_loop_t loop;
    tf_lua_host_t *host;
    tf_stdlib_t lib;
    int64_t now_ms;
    tf_clock_t clock;
    int ended;
} h_env_t;

static int64_t h_now(void *ctx) {
    return ((h_env_t *)ctx)->now_ms;
}

static void h_done(void *arg, const tf_lua_outcome_t *o) {
    h_result_t *r = arg;
    r->done = 1;
    r->ended_ns = uv_hrtime();
    r->status = o->status;
    snprintf(r->result, sizeof(r->result), "%s", o->result_json != NULL ? o->result_json : "");
    snprintf(r->error_type, sizeof(r->error_type), "%s", o->error_type != NULL ? o->error_type : "");
    snprintf(r->error_message, sizeof(r->error_message), "%s",
             o->error_message != NULL ? o->error_message : "");
    r->fatal = o->fatal;
    r->retryable = o->retryable;
    r->snooze_ms = o->snooze_ms;
    r->instructions = o->instructions;
}

/* Opens a host; `limits` NULL: small test limits (budget 5M instructions,
 * 2 s, default memory). */
static h_env_t *h_open(const tf_lua_limits_t *limits) {
    h_env_t *env = calloc(1, sizeof(*env));
    assert_non_null(env);
    assert_int_equal(uv_loop_init(&env->loop), 0);
    env->now_ms = 1700000000000;
    env->clock = (tf_clock_t){.now_ms = h_now, .ctx = env};
    env->lib = (tf_stdlib_t){.loop = &env->loop};
    tf_lua_config_t cfg = {.clock = &env->clock, .open_libs = tf_stdlib_open, .libs_ctx = &env->lib};
    if (limits != NULL) {
        cfg.limits = *limits;
    } else {
        cfg.limits.instructions = 5000000;
        cfg.limits.timeout_ms = 2000;
    }
    assert_int_equal(tf_lua_host_create(&env->loop, &cfg, &env->host), 0);
    return env;
}

static void h_closed(void *arg) {
    *(int *)arg = 1;
}

static void h_close(h_env_t *env) {
    int closed = 0;
    tf_lua_host_close(env->host, h_closed, &closed);
    while (!closed) {
        uv_run(&env->loop, UV_RUN_ONCE);
    }
    uv_run(&env->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&env->loop), 0);
    free(env);
}

/* Starts `source` (a module returning a table whose `fn` is called, or,
 * with fn NULL, a chunk whose value is the result). */
static tf_lua_run_t *h_start_args(h_env_t *env, const char *tenant, const char *key,
                                  const char *source, const char *fn, const char *const *args,
                                  size_t nargs, h_result_t *r) {
    memset(r, 0, sizeof(*r));
    tf_lua_call_t call = {.tenant_id = tenant,
                          .module_key = key,
                          .source = source,
                          .source_len = strlen(source),
                          .chunkname = "=test",
                          .function = fn,
                          .args_json = args,
                          .nargs = nargs,
                          .job_id = "00000000-0000-7000-8000-000000000001"};
    tf_lua_run_t *run = NULL;
    assert_int_equal(tf_lua_start(env->host, &call, h_done, r, &run), 0);
    return run;
}

static tf_lua_run_t *h_start(h_env_t *env, const char *tenant, const char *source, h_result_t *r) {
    return h_start_args(env, tenant, NULL, source, NULL, NULL, 0, r);
}

static void h_wait(h_env_t *env, h_result_t *r) {
    while (!r->done) {
        uv_run(&env->loop, UV_RUN_ONCE);
    }
}

/* Runs a chunk to its end. */
static h_result_t h_run(h_env_t *env, const char *tenant, const char *source) {
    h_result_t r;
    h_start(env, tenant, source, &r);
    h_wait(env, &r);
    return r;
}

#define h_assert_ok(r, json)                                                                       \
    do {                                                                                           \
        if ((r).status != TF_LUA_OK) {                                                             \
            print_error("run failed: %s: %s\n", (r).error_type, (r).error_message);               \
        }                                                                                          \
        assert_int_equal((r).status, TF_LUA_OK);                                                   \
        assert_string_equal((r).result, (json));                                                   \
    } while (0)

#define h_assert_failed(r, type, fragment)                                                         \
    do {                                                                                           \
        if ((r).status != TF_LUA_FAILED || strcmp((r).error_type, (type)) != 0 ||                   \
            strstr((r).error_message, (fragment)) == NULL) {                                       \
            print_error("expected %s containing '%s', got status %d %s: %s (result %s)\n",         \
                        (type), (fragment), (int)(r).status, (r).error_type, (r).error_message,    \
                        (r).result);                                                               \
        }                                                                                          \
        assert_int_equal((r).status, TF_LUA_FAILED);                                               \
        assert_string_equal((r).error_type, (type));                                               \
        assert_non_null(strstr((r).error_message, (fragment)));                                    \
    } while (0)

#endif
