/*
 * executor.h - the executor port and the registry of executors by kind.
 *
 * A job with an `executor` object ({"kind": "http", ...}) is run inside
 * TaskFlow by the executor registered for its kind.  The worker runtime
 * (adapters/worker) looks the kind up in a tf_executor_registry_t and only
 * ever talks to a tf_executor_t, so adding a kind (the Lua executor) is
 * registering one more; the runner never branches on kind names.
 *
 * Contract of an executor:
 * - start() begins one run of `job` (borrowed for the call only: copy what
 *   is kept).  It returns 0 and then calls `done` exactly once, later, on
 *   the same loop, never from inside start(); or it returns a negative
 *   TF_E* code and never calls `done` (TF_EINVAL: the job's executor object
 *   is unusable, which fails the attempt for good).
 * - cancel() abandons a run that has not called `done` yet (cancellation,
 *   lease lost, shutdown): the executor stops its work as soon as it can
 *   and still calls `done` once, with any outcome, which the caller drops.
 * - The outcome passed to `done` is borrowed for that call, except the
 *   created jobs it hands over (children).
 * Registries are plain values built once at start-up, read-only after.
 * Executors run on one loop thread each.
 */
#ifndef TF_ENGINE_EXECUTOR_H
#define TF_ENGINE_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "engine/store.h"

/* What an executor gets of a claimed job. */
typedef struct {
    const char *job_id, *tenant_id, *queue, *type;
    const char *payload;            /* JSON text */
    const char *executor;           /* the job's executor object, JSON text */
    const char *correlation_id;     /* NULL: none */
    const char *signing_secret_hex; /* the tenant's signing key */
    int attempt, max_attempts;
    int64_t timeout_ms; /* the attempt's deadline from its start */
    int64_t now_ms;     /* from the clock port */
} tf_exec_job_t;

typedef enum {
    TF_EXEC_SUCCEEDED = 0,
    TF_EXEC_FAILED,
} tf_exec_status_t;

/* How a run ended. */
typedef struct {
    tf_exec_status_t status;
    const char *result;     /* SUCCEEDED: JSON text; NULL: null */
    const char *error_type; /* FAILED: e.g. "http_503", "timeout" */
    const char *error_message;
    int retryable; /* FAILED: 0 ends the job FAILED whatever attempts are left */
    int64_t snooze_ms;    /* SUCCEEDED with > 0: run again after it, the attempt given back */
    int executor_version; /* recorded in the attempt (Lua executors); 0: none */
    /* Jobs the run created (Lua's tf.enqueue), committed with a SUCCEEDED
     * outcome.  Handed over: the caller keeps them until the outcome is
     * recorded, then calls children_free(children_ctx) (NULL: nothing to
     * free). */
    const tf_new_job_t *const *children;
    size_t nchildren;
    void (*children_free)(void *ctx);
    void *children_ctx;
} tf_exec_outcome_t;

typedef void (*tf_exec_done_fn)(void *arg, const tf_exec_outcome_t *outcome);

typedef struct {
    const char *kind; /* "http", "lua", ... */
    void *ctx;
    int (*start)(void *ctx, const tf_exec_job_t *job, tf_exec_done_fn done, void *arg,
                 void **run);
    void (*cancel)(void *ctx, void *run);
} tf_executor_t;

#define TF_EXECUTOR_KINDS_MAX 16

typedef struct {
    const tf_executor_t *items[TF_EXECUTOR_KINDS_MAX];
    size_t n;
} tf_executor_registry_t;

/* Adds `executor` (borrowed: it must outlive the registry).  Returns 0,
 * TF_EINVAL (no kind or start), TF_ECONFLICT (kind already registered) or
 * TF_ERANGE (registry full). */
int tf_executor_register(tf_executor_registry_t *reg, const tf_executor_t *executor);

/* The executor of `kind`, or NULL. */
const tf_executor_t *tf_executor_find(const tf_executor_registry_t *reg, const char *kind);

#endif
