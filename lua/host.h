/*
 * host.h - the Lua host: tenants' scripts run inside TaskFlow, sandboxed
 * (../shared/LUA-SANDBOX.md; docs/lua.md for users).
 *
 * One lua_State per tenant ("VM"), created when first needed, evicted when
 * idle (least recently used first, past a count or an idle time), never
 * shared between tenants.  Every invocation is a run: a coroutine of that
 * VM with its own global environment.  Scripts are text only; a script is
 * compiled once per VM and version (the module cache) and its returned
 * table kept, so nothing is recompiled per run.
 *
 * Limits per run, each failing the run with its own error type while the
 * VM stays usable: instructions (a count hook; "lua_budget"), wall clock
 * ("lua_deadline", checked in the hook, the allocator and the pattern
 * matcher), memory per tenant VM (the allocator; "lua_memory"), the result's
 * JSON size ("lua_output").  A killed run is abandoned: it is never resumed,
 * and no handler or __close of its runs again; pcall and xpcall cannot
 * swallow the kill.  A VM whose run hit the memory cap is closed and made
 * anew once its other runs ended (counted in taskflow_lua_vm_resets_total).
 *
 * Scheduling.  Runs of all tenants of a loop share the loop: the host runs
 * one time slice (default 10 ms) of one run per loop turn, picking the
 * tenant that used the least CPU lately, so a busy tenant delays another's
 * run by at most about a slice.  A run that waits (tf.sleep, tf.http) yields
 * to the loop; libuv callbacks never call Lua, they mark the run ready.
 *
 * One host per loop thread; loop thread only.
 */
#ifndef TF_LUA_HOST_H
#define TF_LUA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>
#include <uv.h>

#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "engine/clock.h"

typedef struct {
    size_t memory_bytes;   /* per tenant VM */
    uint64_t instructions; /* per run */
    int64_t timeout_ms;    /* wall clock per run (a call may ask for less) */
    size_t output_bytes;   /* the result as JSON */
    size_t log_bytes;      /* tf.log volume per run; beyond it lines are dropped */
    int slice_ms;          /* time slice of a run before it yields the loop */
    int max_vms;           /* tenant VMs kept; the least recently used goes first */
    int64_t vm_idle_ms;    /* a VM unused this long is closed */
} tf_lua_limits_t;

/* The documented defaults (docs/lua.md). */
#define TF_LUA_DEFAULT_MEMORY_BYTES ((size_t)64 << 20)
#define TF_LUA_DEFAULT_INSTRUCTIONS ((uint64_t)200000000)
#define TF_LUA_DEFAULT_TIMEOUT_MS 30000
#define TF_LUA_DEFAULT_OUTPUT_BYTES ((size_t)1 << 20)
#define TF_LUA_DEFAULT_LOG_BYTES ((size_t)64 << 10)
#define TF_LUA_DEFAULT_SLICE_MS 10
#define TF_LUA_DEFAULT_MAX_VMS 1000
#define TF_LUA_DEFAULT_VM_IDLE_MS 300000

/* Fills `l` with the defaults above. */
void tf_lua_limits_default(tf_lua_limits_t *l);

typedef struct tf_lua_host tf_lua_host_t;
typedef struct tf_lua_run tf_lua_run_t;

/* Opens the libraries scripts see beyond the safe standard ones (the `tf`
 * table of stdlib/) into the table at the top of the stack, while a VM is
 * made.  [-0, +0, m] */
typedef void (*tf_lua_open_fn)(lua_State *L, void *ctx);

typedef struct {
    tf_lua_limits_t limits;
    const tf_clock_t *clock;  /* the engine's clock (tf.now(), deadlines use real time) */
    tf_lua_open_fn open_libs; /* NULL: the safe standard libraries only */
    void *libs_ctx;           /* handed to open_libs and to library functions */
    tf_log_t *log;            /* may be NULL */
    tf_metrics_t *metrics;    /* may be NULL */
} tf_lua_config_t;

int tf_lua_host_create(uv_loop_t *loop, const tf_lua_config_t *cfg, tf_lua_host_t **out);

/* Abandons every run (their callbacks get error type "shutdown"), closes
 * every VM and handle, then calls `closed_cb` (may be NULL) and frees the
 * host. */
void tf_lua_host_close(tf_lua_host_t *h, void (*closed_cb)(void *arg), void *arg);

/* ---- runs ---- */

/* What a run executes: the module `source` (Lua text) compiled and run
 * once per VM under `module_key`, whose returned value is the module; then
 * the module's field `function` called with `args` (JSON texts, decoded to
 * Lua values; NULL text: nil).  With `function` NULL the module itself is
 * the result, or `true` when a check_module passed it (and `module_key`
 * should be NULL: nothing is cached).  `check_module` (may be NULL) vets a
 * freshly loaded module (at `idx`, raw access only) before it is cached: it
 * returns 0 or writes why not into `err` (a failed check fails the run with
 * error type "lua_module"); it gets the call's `user`.  Strings are
 * copied. */
typedef struct {
    const char *tenant_id;
    const char *module_key; /* e.g. "executor:resize@3"; NULL: not cached */
    const char *source;
    size_t source_len;
    const char *chunkname; /* shown in errors: "executor resize" */
    const char *function;
    const char *const *args_json;
    size_t nargs;
    /* > 0: the result is {"value": <what the function returned>, "arg":
     * <argument result_with_arg as it is after the call>}, e.g. a rule's
     * ctx whose state the action changed. */
    int result_with_arg;
    int (*check_module)(lua_State *L, int idx, void *user, char *err, size_t errlen);
    int64_t timeout_ms; /* <= 0 or above the host's: the host's limit */
    /* Tags of the run's log lines and what tf.enqueue needs. */
    const char *job_id, *rule_id, *correlation_id;
    /* Each tf.log line the run writes within its log limit, at any level,
     * with the script's own fields (a dry run shows them); NULL: none. */
    void (*on_log)(void *log_arg, const char *level, const char *message,
                   const tf_log_field_t *fields, size_t n);
    void *log_arg;
    void *user; /* the caller's: check_module and library functions (tf_lua_run_call()) */
} tf_lua_call_t;

typedef enum {
    TF_LUA_OK = 0,
    TF_LUA_FAILED, /* error_type and error_message say why */
} tf_lua_status_t;

/* How a run ended.  Borrowed for the callback. */
typedef struct {
    tf_lua_status_t status;
    const char *result_json; /* OK: the value returned, as JSON */
    const char *error_type;  /* FAILED: "lua_error", "lua_budget", "lua_deadline", "lua_memory",
                                "lua_output", "lua_syntax", "lua_module", "cancelled",
                                "shutdown", or the type a script gave */
    const char *error_message;
    int fatal;             /* FAILED: the script asked to fail for good (tf.fatal) */
    int retryable;         /* FAILED: 0 for syntax and module errors */
    int64_t snooze_ms;     /* OK with snooze > 0: the script returned tf.snooze(ms) */
    uint64_t instructions; /* executed, within the hook's granularity */
} tf_lua_outcome_t;

typedef void (*tf_lua_done_fn)(void *arg, const tf_lua_outcome_t *outcome);

/* Starts a run.  Returns 0 and later calls `done` exactly once (never from
 * inside this call), or a TF_E* code and never calls it.  *run (may be NULL)
 * is the handle for tf_lua_cancel(), valid until `done`. */
int tf_lua_start(tf_lua_host_t *h, const tf_lua_call_t *call, tf_lua_done_fn done, void *arg,
                 tf_lua_run_t **run);

/* Abandons the run (error type "cancelled"): a wait in progress (HTTP call,
 * sleep) is cancelled, the coroutine never resumed; `done` follows on a
 * later loop turn. */
void tf_lua_cancel(tf_lua_run_t *run);

/* Memory of the tenant's VM now (0 when it has none), for tests and
 * benchmarks. */
size_t tf_lua_vm_memory(tf_lua_host_t *h, const char *tenant_id);

/* ---- for library functions (stdlib/) ---- */

/* The run executing on coroutine `L`; raises a Lua error when there is
 * none (a library function called outside a run).  [-0, +0, v] */
tf_lua_run_t *tf_lua_current(lua_State *L);

void *tf_lua_libs_ctx(const tf_lua_run_t *run);
const tf_lua_call_t *tf_lua_run_call(const tf_lua_run_t *run); /* tenant, job, tags, user */
const char *tf_lua_run_id(const tf_lua_run_t *run);
tf_log_t *tf_lua_run_log(const tf_lua_run_t *run);
const tf_clock_t *tf_lua_run_clock(const tf_lua_run_t *run);
const tf_lua_limits_t *tf_lua_run_limits(const tf_lua_run_t *run);

/* Charges `bytes` of log output to the run; returns 0 while within the
 * limit, 1 when this line must be dropped (the first drop is logged). */
int tf_lua_run_charge_log(tf_lua_run_t *run, size_t bytes);

/* Lines dropped so far for passing the log limit. */
int tf_lua_run_log_dropped(const tf_lua_run_t *run);

/* tf.snooze(ms): records the delay on the run and pushes the value the
 * executor returns; the run's outcome is a snooze only when that value is
 * what its function returned.  [-0, +1, -] */
void tf_lua_push_snooze(lua_State *L, int64_t ms);

/* Checks that the running code may wait: inside a run, on the run's own
 * coroutine, and yieldable (not inside table.sort, tostring, a metamethod
 * called from C, ...); raises a Lua error naming `fn` otherwise.
 * [-0, +0, v] */
void tf_lua_check_can_wait(lua_State *L, const char *fn);

/* Cancels an operation the run waits for (called when it is abandoned). */
typedef void (*tf_lua_cancel_fn)(void *op);

/* Parks the run until tf_lua_wake(): the run yields to the loop; `k`
 * (with `kctx`) continues it when it is resumed.  `cancel(op)` is called
 * instead if the run is abandoned first.  Call as `return tf_lua_wait(...)`
 * after tf_lua_check_can_wait().  [-?, +?, e] */
int tf_lua_wait(lua_State *L, tf_lua_cancel_fn cancel, void *op, lua_KFunction k,
                lua_KContext kctx);

/* The operation the run waits for is done: it becomes ready (called from a
 * libuv callback; runs no Lua). */
void tf_lua_wake(tf_lua_run_t *run);

/* Checks the run's deadline from inside long C work (the pattern
 * matcher): raises the kill when it passed or the run was killed.
 * [-0, +0, v] */
void tf_lua_check_limits(lua_State *L);

#endif
