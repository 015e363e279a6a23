/*
 * wait.c - tf.sleep(ms): the run yields to the loop and a libuv timer
 * marks it ready again (see tf.h).
 */
#include <stdlib.h>

#include <lauxlib.h>

#include "stdlib/tf.h"

typedef struct {
    uv_timer_t timer;
    tf_lua_run_t *run;
} sleep_op_t;

static void sleep_closed(uv_handle_t *h) {
    free(h->data);
}

static void sleep_fired(uv_timer_t *t) {
    sleep_op_t *op = t->data;
    tf_lua_wake(op->run);
    uv_close((uv_handle_t *)&op->timer, sleep_closed);
}

/* The run was abandoned while it slept. */
static void sleep_cancel(void *arg) {
    sleep_op_t *op = arg;
    uv_timer_stop(&op->timer);
    uv_close((uv_handle_t *)&op->timer, sleep_closed);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
    (void)L, (void)status, (void)ctx;
    return 0;
}

static int tf_sleep(lua_State *L) {
    lua_Integer ms = tf__stdlib_check_integer(L, 1, "tf.sleep", "ms");
    if (ms < 0 || ms > TF_STDLIB_SLEEP_MAX_MS) {
        return luaL_error(L, "tf.sleep: ms must be from 0 to %d", TF_STDLIB_SLEEP_MAX_MS);
    }
    tf_lua_run_t *run = NULL;
    tf_stdlib_t *lib = tf__stdlib_of(L, &run);
    tf_lua_check_can_wait(L, "tf.sleep");
    if (lib == NULL || lib->loop == NULL) {
        return luaL_error(L, "tf.sleep: not available here");
    }
    sleep_op_t *op = malloc(sizeof(*op));
    if (op == NULL) {
        return luaL_error(L, "tf.sleep: out of memory");
    }
    op->run = run;
    uv_timer_init(lib->loop, &op->timer);
    op->timer.data = op;
    uv_timer_start(&op->timer, sleep_fired, (uint64_t)ms, 0);
    return tf_lua_wait(L, sleep_cancel, op, sleep_k, 0);
}

void tf__stdlib_open_wait(lua_State *L) {
    lua_pushcfunction(L, tf_sleep);
    lua_setfield(L, -2, "sleep");
}
