/*
 * luaexec.h - tenants' Lua executors in the worker runtime: the `lua`
 * executor kind (engine/executor.h) and the checker of uploads
 * (engine/scripts.h), on one loop's Lua host (lua/host.h) with the `tf`
 * library (stdlib/tf.h).
 *
 * A job whose executor is {"kind": "lua", "name": N} runs the current
 * version of the tenant's executor N: `run(job, ctx)` in the tenant's
 * sandbox, where `job` is {id, tenant_id, queue, type, payload, attempt,
 * max_attempts, correlation_id} and `ctx` is {executor = {name, version}}.
 * What it returns is the result; tf.snooze(ms) snoozes; error(...) fails
 * the attempt with the error's type, and the job's retry policy decides
 * (tf.fatal fails it for good).  Jobs it creates with tf.enqueue are
 * handed to the runner with the outcome and committed with it.
 *
 * Executors are read from the script store once and kept per loop by
 * (tenant, name) until tf_luaexec_forget() (the taskflow_lua notification
 * of a change) or a reconnect of the notifier drops them; the module is
 * compiled once per tenant VM and version.
 * Loop thread only.
 */
#ifndef TF_ADAPTERS_LUAEXEC_LUAEXEC_H
#define TF_ADAPTERS_LUAEXEC_LUAEXEC_H

#include <uv.h>

#include "adapters/httpclient/client.h"
#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "adapters/usecases/usecases.h"
#include "engine/executor.h"
#include "engine/scripts.h"
#include "lua/host.h"

#define TF_LUAEXEC_ENQUEUE_MAX 100    /* jobs one run may create */
#define TF_LUAEXEC_CHECK_TIMEOUT_MS 2000 /* an upload's top level, checked */
#define TF_LUAEXEC_CACHE_MAX 1000     /* executors kept per loop */

typedef struct tf_luaexec tf_luaexec_t;

typedef struct {
    tf_lua_limits_t limits;           /* zeros: the documented defaults */
    tf_uc_t *uc;                      /* clock, ids (jobs created by runs) */
    const tf_script_store_t *scripts; /* NULL: a checker only */
    const tf_http_client_config_t *http; /* tf.http.request's client; NULL: none */
    tf_log_t *log;
    tf_metrics_t *metrics;
} tf_luaexec_config_t;

int tf_luaexec_create(uv_loop_t *loop, const tf_luaexec_config_t *cfg, tf_luaexec_t **out);

/* The `lua` executor kind, for the runner's registry. */
const tf_executor_t *tf_luaexec_port(tf_luaexec_t *x);

/* The checker of uploads, for the executors use case. */
const tf_script_checker_t *tf_luaexec_checker(tf_luaexec_t *x);

/* The rule evaluator port: rules run in their tenant's VM, like executors. */
const tf_rule_evaluator_t *tf_luaexec_evaluator(tf_luaexec_t *x);

/* Drops what is kept of executor `name` of `tenant_id` (both NULL: of
 * every executor). */
void tf_luaexec_forget(tf_luaexec_t *x, const char *tenant_id, const char *name);

/* The loop's Lua host (tests, benchmarks). */
tf_lua_host_t *tf_luaexec_host(tf_luaexec_t *x);

/* Abandons runs (their jobs' outcomes are dropped: the runner is closing),
 * closes the host and the HTTP client, then calls `closed_cb`. */
void tf_luaexec_close(tf_luaexec_t *x, void (*closed_cb)(void *arg), void *arg);

#endif
