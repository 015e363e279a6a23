/*
 * tf.h - the `tf` library that tenants' scripts see (docs/lua.md):
 * tf.json, tf.log, tf.now, tf.uuid, tf.base64, tf.hmac_sha256, tf.http,
 * tf.sleep, tf.enqueue, tf.fatal, tf.snooze, and the rule triggers
 * tf.cron, tf.webhook, tf.event and tf.on.
 *
 * Every function checks its arguments and raises a Lua error naming
 * itself ("tf.json.decode: ...") on a bad one.  Functions that wait
 * (tf.http.request, tf.sleep) yield the run to the loop through the host
 * (lua/host.h) and are refused where a run cannot yield.
 *
 * The library reaches the rest of TaskFlow only through tf_stdlib_t,
 * handed to the host as its libs_ctx.  Loop thread of the host.
 */
#ifndef TF_STDLIB_TF_H
#define TF_STDLIB_TF_H

#include <stddef.h>

#include <lua.h>

#include "adapters/httpclient/client.h"
#include "engine/trigger.h"
#include "lua/host.h"

#define TF_STDLIB_JSON_MAX ((size_t)8 << 20) /* tf.json.encode output, decode input */
#define TF_STDLIB_LOG_MSG_MAX 4096           /* bytes of a tf.log message kept */
#define TF_STDLIB_LOG_FIELDS_MAX 32
#define TF_STDLIB_SLEEP_MAX_MS 3600000 /* one hour (the run's deadline comes first) */
#define TF_STDLIB_SNOOZE_MAX_MS INT64_C(31536000000) /* one year */
#define TF_STDLIB_HTTP_BODY_MAX ((size_t)8 << 20)

/* Creates a job from a run (tf.enqueue).  `spec_json` is the job as the
 * body of POST /v1/jobs; the implementation validates it like the API,
 * puts it in the run's tenant with the run's job as parent and the run's
 * correlation id, and keeps it to be committed with the run's outcome.
 * Returns 0 with the new id in `id`, or a TF_E* code with why in `err`. */
typedef int (*tf_stdlib_enqueue_fn)(void *ctx, tf_lua_run_t *run, const char *spec_json,
                                    size_t len, char id[40], char *err, size_t errlen);

typedef struct {
    uv_loop_t *loop;              /* the host's loop (tf.sleep) */
    tf_http_client_t *http;       /* tf.http.request; NULL: it fails with "http_unavailable" */
    tf_stdlib_enqueue_fn enqueue; /* NULL: tf.enqueue fails (no job to attach to) */
    void *enqueue_ctx;
} tf_stdlib_t;

/* Opens the library into the table at the top of the stack (a
 * tf_lua_open_fn; `ctx` is the tf_stdlib_t, kept by the host).
 * [-0, +0, m] */
void tf_stdlib_open(lua_State *L, void *ctx);

/* The tf_stdlib_t of the run executing on L.  [-0, +0, v] */
tf_stdlib_t *tf__stdlib_of(lua_State *L, tf_lua_run_t **run);

/* Argument checks whose errors name the function and the argument
 * ("tf.sleep: ms must be an integer, got string"), where luaL_check*
 * would only say "bad argument #1 to 'sleep'".  They accept what the
 * luaL_check* functions accept (a number as a string, a numeric string as
 * an integer).  [-0, +0, v] */
const char *tf__stdlib_check_string(lua_State *L, int arg, const char *fn, const char *name,
                                    size_t *len);
lua_Integer tf__stdlib_check_integer(lua_State *L, int arg, const char *fn, const char *name);
void tf__stdlib_check_table(lua_State *L, int arg, const char *fn, const char *name);

/* The trigger (tf.cron, tf.webhook, tf.event, tf.on) at `idx`, or NULL
 * when the value there is not one.  [-0, +0, -] */
const tf_trigger_t *tf_stdlib_trigger(lua_State *L, int idx);

/* Opens tf.http, tf.sleep, tf.enqueue and the triggers (wait.c, http.c,
 * enqueue.c, triggers.c). */
void tf__stdlib_open_http(lua_State *L);
void tf__stdlib_open_wait(lua_State *L);
void tf__stdlib_open_enqueue(lua_State *L);
void tf__stdlib_open_triggers(lua_State *L);

#endif
