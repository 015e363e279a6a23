/*
 * enqueue.c - tf.enqueue{...}: a job created by a run, in the run's tenant,
 * with the run's job as parent and the run's correlation id; committed
 * together with the run's outcome and never when the run fails (the
 * runtime behind tf_stdlib_t.enqueue keeps it until then).
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "adapters/json/jbuf.h"
#include "engine/error.h"
#include "lua/convert.h"
#include "stdlib/tf.h"

#define SPEC_MAX ((size_t)1 << 20) /* the job as JSON */

static int tf_enqueue(lua_State *L) {
    tf__stdlib_check_table(L, 1, "tf.enqueue", "the job");
    lua_settop(L, 1);
    tf_lua_run_t *run = NULL;
    tf_stdlib_t *lib = tf__stdlib_of(L, &run);
    if (lib == NULL || lib->enqueue == NULL) {
        return luaL_error(L, "tf.enqueue: not available here (only runs of a job can enqueue)");
    }
    tf_lua_guard_t *g = tf_lua_push_guard(L, free);
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    char err[TF_LUA_ERR_LEN];
    tf_lua_json_limits_t lim = {.max_bytes = SPEC_MAX};
    int rc = tf_lua_to_json(L, 1, &lim, "job", &b, err);
    char *spec = NULL;
    size_t len = 0;
    if (rc == 0) {
        rc = tf_jbuf_finish(&b, &spec, &len);
    }
    tf_jbuf_free(&b);
    if (rc != 0) {
        return luaL_error(L, "tf.enqueue: %s",
                          rc == TF_ETOOBIG ? "the job is larger than 1 MiB as JSON"
                          : rc == TF_ENOMEM ? "out of memory"
                                            : err);
    }
    g->ptr = spec;
    char id[40];
    char why[400] = "";
    rc = lib->enqueue(lib->enqueue_ctx, run, spec, len, id, why, sizeof(why));
    tf_lua_guard_release(g);
    if (rc != 0) {
        return luaL_error(L, "tf.enqueue: %s", rc == TF_ENOMEM ? "out of memory" : why);
    }
    lua_pushstring(L, id);
    return 1;
}

void tf__stdlib_open_enqueue(lua_State *L) {
    lua_pushcfunction(L, tf_enqueue);
    lua_setfield(L, -2, "enqueue");
}
