/*
 * runner_internal.h - what runner.c (claiming, stopping) and runner_exec.c
 * (executions: call, heartbeats, acknowledgements) share.  Not a public
 * contract: only those two files include it.
 *
 * An execution (tf__exec_t) lives from its claim until nothing refers to it any
 * more: its executor's run ended (`run` NULL), no heartbeat is in flight
 * (`refs` 0) and its outcome was acknowledged, refused, given up, or it was
 * forgotten (cancelled, lease lost) or released (shutdown).  Its phase says
 * where it is:
 *   CALL     the executor's run is in flight
 *   ACKQ     the outcome waits in the ack queue for the next batch
 *   ACKING   the outcome is in the batch in flight
 *   ACKWAIT  the database was unavailable: retried at ack_at
 *   DONE     nothing more to do
 * The runner is freed only after every statement it started answered
 * (`ops` 0), every execution is gone, the maintenance closed and its
 * timers closed.  Loop thread only.
 */
#ifndef TF_ADAPTERS_WORKER_RUNNER_INTERNAL_H
#define TF_ADAPTERS_WORKER_RUNNER_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "adapters/worker/maintenance.h"
#include "adapters/worker/runner.h"

enum {
    TF__RUNNER_RECENT_CANCELS = 32,         /* cancels remembered for claims still in flight */
    TF__RUNNER_DEFAULT_TIMEOUT_MS = 300000, /* a run's deadline when the job sets none */
    TF__RUNNER_ACK_BACKLOG = 1000,   /* ended runs waiting for their acks, at most */
    TF__RUNNER_CLAIMS_IN_FLIGHT = 1, /* 2 measured slower (bench/README.md) */
    TF__RUNNER_ACKS_IN_FLIGHT = 1,
};

typedef enum {
    TF__EXEC_CALL,
    TF__EXEC_ACKQ,
    TF__EXEC_ACKING,
    TF__EXEC_ACKWAIT,
    TF__EXEC_DONE
} tf__exec_phase_t;

/* How a run ended, with the strings owned. */
typedef struct {
    int ok;
    int retryable;
    char *result_json; /* ok: JSON text, NULL for null */
    char *error_type;  /* !ok */
    char *error_message;
    int64_t snooze_ms;
    int executor_version;
    int64_t ended_ms; /* engine clock when the run ended: the attempt's recorded end */
    /* Jobs the run created, kept until the outcome is acknowledged. */
    const tf_new_job_t *const *children;
    size_t nchildren;
    void (*children_free)(void *ctx);
    void *children_ctx;
} tf__outcome_t;

typedef struct tf__exec tf__exec_t;
struct tf__exec {
    tf_runner_t *r;
    tf__exec_t *prev, *next; /* every execution of the runner */
    tf__exec_t *ack_next;    /* the ack queue */
    tf__exec_phase_t phase;
    int forgotten; /* not ours any more: never acknowledged */
    int releasing; /* aborted at shutdown, to be released */
    int refs;      /* heartbeats in flight */
    int solo;      /* acknowledge alone (a batch with it failed) */
    int ack_tries;
    uint64_t ack_at, lease_until, hb_sent; /* loop time, ms */
    uint64_t started_ns;
    const tf_executor_t *executor;
    void *run; /* the executor's run in flight, or NULL */
    char id[40], tenant[40], token[40];
    char *queue;
    int attempt;
    tf__outcome_t out;
};

typedef struct {
    char *name;
    int dirty; /* claim from it */
    int seen;  /* the last discovery or a notification saw ready work in it */
} tf__queue_t;

typedef struct {
    tf_metric_family_t *claimed, *succeeded, *failed, *dead, *errors, *duration, *latency;
    tf_metric_t *executions;
} tf__runner_metrics_t;

struct tf_runner {
    uv_loop_t *loop;
    tf_uc_t *uc;
    const tf_executor_registry_t *executors;
    tf_runner_config_t cfg;
    tf_log_t *log;
    tf_metrics_t *metrics;
    const char *worker_id;
    int concurrency, nexec;
    int calls; /* executions whose executor run is in flight: what concurrency bounds */
    tf__exec_t *execs;
    tf__exec_t *ackq_head, *ackq_tail;
    tf__queue_t *queues;
    size_t nqueues, capqueues, rr;
    int claiming;       /* claims in flight (at most TF__RUNNER_CLAIMS_IN_FLIGHT) */
    int claim_reserved; /* slots the claims in flight may fill */
    int discovering, acking, ops;
    int claim_failing, ack_failing;
    char cancels[TF__RUNNER_RECENT_CANCELS][40];
    size_t next_cancel;
    tf_maintenance_t *maint;
    uv_timer_t poll, heartbeat, ack_timer, grace;
    int stopping, final, closing, maint_open, open_handles;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    tf__runner_metrics_t m;
};

static inline void tf__runner_copy_id(char dst[40], const char *src) {
    snprintf(dst, 40, "%s", src != NULL ? src : "");
}

static inline tf_metric_t *tf__runner_metric(tf_metric_family_t *fam, const char *label) {
    const char *values[1] = {label};
    return fam != NULL ? tf_metric_get(fam, values) : NULL;
}

static inline void tf__runner_metric_inc(tf_metric_family_t *fam, const char *label) {
    tf_metric_t *m = tf__runner_metric(fam, label);
    if (m != NULL) {
        tf_metric_inc(m);
    }
}

static inline void tf__runner_metric_observe(tf_metric_family_t *fam, const char *label,
                                             double value) {
    tf_metric_t *m = tf__runner_metric(fam, label);
    if (m != NULL) {
        tf_metric_observe(m, value);
    }
}

/* runner.c */
/* Claims from the next queue with work while slots are free (one claim in
 * flight at a time); a no-op while stopping. */
void tf__runner_claim_more(tf_runner_t *r);
/* Stopping, and the grace is over or nothing runs: aborts and releases what
 * still runs. */
void tf__runner_enter_final(tf_runner_t *r);
/* Closes the runner once it is final and nothing is left in flight. */
void tf__runner_maybe_finish(tf_runner_t *r);
/* The queue named `name`; with `add`, created when missing.  NULL when
 * missing (or out of memory, or DISCOVER_MAX queues known). */
tf__queue_t *tf__runner_queue_find(tf_runner_t *r, const char *name, int add);

/* runner_exec.c */
/* Takes over one claimed job and starts it. */
/* `claim_sent` (loop time) starts the lease's clock. */
void tf__runner_exec_start(tf_runner_t *r, const tf_claimed_job_t *job, uint64_t claim_sent);
/* The job is not ours any more (cancelled, lease lost): cancel, never report. */
void tf__runner_exec_forget(tf__exec_t *e);
/* Shutdown after the grace: gives up an outcome waiting for a retry. */
void tf__runner_exec_give_up(tf__exec_t *e);
/* Every lease_ms / 3: heartbeats every running call (t->data is the runner). */
void tf__runner_on_heartbeat_timer(uv_timer_t *t);

#endif
