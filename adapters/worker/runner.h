/*
 * runner.h - the worker role of one loop: claims jobs that have a built-in
 * executor, runs them, reports their outcome, and does the node's
 * maintenance (maintenance.h).
 *
 * Claiming.  The runner keeps the set of queues known to hold built-in work:
 * ready notifications ("<queue>|builtin") add a queue at once, and every
 * poll interval a loose index scan over ready_claim_idx finds them all (so a
 * lost notification costs at most one poll interval).  While it has free
 * slots it claims (tf_work_claim, every tenant in fair-share order, at most
 * 100 jobs per call, one claim in flight at a time) from those queues in
 * turn; a queue stays in the set while claims come back full.
 *
 * Executing.  A claimed job names its executor's kind; the runner looks it
 * up in the registry it was given (engine/executor.h) and starts a run of
 * that executor: it never branches on kind names.  A kind no executor of
 * this node runs fails at once, not retryable, with "executor_unavailable".
 * The built-in `http` executor is http_port.h.
 *
 * Leases.  Every running execution is heartbeated every lease_ms / 3; when
 * the database says the lease is no longer ours (TF_ESTALE, TF_ENOTFOUND)
 * the run is cancelled and the job forgotten.  Outcomes are acknowledged in
 * batches (one tf_work_ack in flight; what finishes meanwhile goes in the
 * next one).  When the database is unavailable the outcome is kept and the
 * acknowledgement retried with backoff while the lease is still valid; then
 * the runner gives up and the lease rescue decides.  A completion is only
 * ever accepted under the current lease token, so no job is finished twice.
 *
 * Metrics: taskflow_jobs_claimed_total, taskflow_jobs_succeeded_total,
 * taskflow_jobs_failed_total (failed attempts), taskflow_jobs_dead_total,
 * taskflow_attempt_duration_seconds, taskflow_submit_to_start_seconds (all
 * by queue), taskflow_executor_errors_total{type},
 * taskflow_runner_executions (gauge, in flight), taskflow_jobs_rescued_total.
 *
 * Loop thread only.
 */
#ifndef TF_ADAPTERS_WORKER_RUNNER_H
#define TF_ADAPTERS_WORKER_RUNNER_H

#include <uv.h>

#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "adapters/usecases/usecases.h"
#include "engine/executor.h"

typedef struct tf_runner tf_runner_t;

typedef struct {
    int concurrency;       /* executions in flight at most (>= 1) */
    int lease_ms;          /* lease of an execution; heartbeats every third of it */
    int poll_interval_ms;  /* fallback poll for work, period of the maintenance */
    const char *worker_id; /* this node's name in leases; must outlive the runner */
    int loop_index;        /* for logs */
} tf_runner_config_t;

/* Starts the worker role of one loop: polling, claiming through `uc`,
 * running through `executors`, and maintenance.  `uc`, `executors`, `log`
 * and `metrics` (may be NULL) must outlive the runner, and so must every
 * executor until the runner's stop callback.  Caller owns the result;
 * release with tf_runner_stop().  Returns 0, TF_EINVAL or TF_ENOMEM. */
int tf_runner_create(uv_loop_t *loop, tf_uc_t *uc, const tf_executor_registry_t *executors,
                     const tf_runner_config_t *cfg, tf_log_t *log, tf_metrics_t *metrics,
                     tf_runner_t **out);

/* A taskflow_ready notification: "<queue>|builtin" makes the runner claim
 * from that queue; "<queue>" (external-worker jobs) is ignored; NULL (the
 * listening session reconnected, notifications may have been lost) makes it
 * look for work in every queue.  The payload is not kept. */
void tf_runner_wake(tf_runner_t *r, const char *queue_payload);

/* A taskflow_cancel notification: when this runner executes `job_id`, its
 * run is cancelled and nothing is reported (the job is already CANCELLED). */
void tf_runner_cancelled(tf_runner_t *r, const char *job_id);

/* Graceful stop: claims no more, lets running executions finish for up to
 * `grace_ms`, then cancels the rest and releases them (tf_uc_release: back
 * to PENDING, the attempt not counted), waits for every run and statement
 * in flight, closes its timers, calls `closed_cb` (may be NULL) and frees
 * `r`.  The loop's store and executors must stay open until `closed_cb`. */
void tf_runner_stop(tf_runner_t *r, int grace_ms, void (*closed_cb)(void *arg), void *arg);

#endif
