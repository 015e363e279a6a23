/*
 * runner.c - the worker role of one loop (see runner.h): the set of queues
 * with built-in work, claiming, notifications, start and graceful stop.  The
 * executions themselves are in runner_exec.c.  Loop thread only.
 */
#include "adapters/worker/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/usecases/claim.h"
#include "adapters/usecases/lease.h"
#include "adapters/worker/runner_internal.h"
#include "engine/error.h"

enum {
    CLAIM_MAX = 100,     /* jobs per claim */
    DISCOVER_MAX = 1000, /* queues found per discovery */
};

/* ---- queues ---- */

tf__queue_t *tf__runner_queue_find(tf_runner_t *r, const char *name, int add) {
    for (size_t i = 0; i < r->nqueues; i++) {
        if (strcmp(r->queues[i].name, name) == 0) {
            return &r->queues[i];
        }
    }
    if (!add || r->nqueues >= DISCOVER_MAX) {
        return NULL;
    }
    if (r->nqueues == r->capqueues) {
        size_t cap = r->capqueues != 0 ? 2 * r->capqueues : 8;
        tf__queue_t *grown = realloc(r->queues, cap * sizeof(*grown));
        if (grown == NULL) {
            return NULL;
        }
        r->queues = grown;
        r->capqueues = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        return NULL;
    }
    r->queues[r->nqueues] = (tf__queue_t){.name = copy};
    return &r->queues[r->nqueues++];
}

static void on_discovered(void *arg, int status, const char *const *names, size_t n) {
    tf_runner_t *r = arg;
    r->ops--;
    r->discovering = 0;
    if (status == 0 && !r->stopping) {
        for (size_t i = 0; i < r->nqueues; i++) {
            r->queues[i].seen = 0;
        }
        for (size_t k = 0; k < n; k++) {
            tf__queue_t *q = tf__runner_queue_find(r, names[k], 1);
            if (q != NULL) {
                q->seen = q->dirty = 1;
            }
        }
        size_t kept = 0;
        for (size_t i = 0; i < r->nqueues; i++) {
            if (r->queues[i].seen || r->queues[i].dirty) {
                r->queues[kept++] = r->queues[i];
            } else {
                free(r->queues[i].name);
            }
        }
        r->nqueues = kept;
        r->rr = r->nqueues != 0 ? r->rr % r->nqueues : 0;
        tf__runner_claim_more(r);
    }
    tf__runner_maybe_finish(r);
}

static void discover(tf_runner_t *r) {
    if (r->discovering || r->stopping) {
        return;
    }
    if (tf_uc_builtin_queues(r->uc, on_discovered, r) == 0) {
        r->discovering = 1;
        r->ops++;
    }
}

/* ---- release (shutdown) ---- */

typedef struct {
    tf_runner_t *r;
    size_t n;
    char (*ids)[40];
    char (*tokens)[40];
    const char **id_ptrs, **token_ptrs;
} release_t;

static void release_free(release_t *rel) {
    free(rel->ids);
    free(rel->tokens);
    free(rel->id_ptrs);
    free(rel->token_ptrs);
    free(rel);
}

static release_t *release_new(tf_runner_t *r, size_t n) {
    release_t *rel = calloc(1, sizeof(*rel));
    if (rel == NULL) {
        return NULL;
    }
    rel->r = r;
    rel->ids = calloc(n, sizeof(*rel->ids));
    rel->tokens = calloc(n, sizeof(*rel->tokens));
    rel->id_ptrs = calloc(n, sizeof(*rel->id_ptrs));
    rel->token_ptrs = calloc(n, sizeof(*rel->token_ptrs));
    if (rel->ids == NULL || rel->tokens == NULL || rel->id_ptrs == NULL ||
        rel->token_ptrs == NULL) {
        release_free(rel);
        return NULL;
    }
    return rel;
}

static void release_add(release_t *rel, const char *id, const char *token) {
    tf__runner_copy_id(rel->ids[rel->n], id);
    tf__runner_copy_id(rel->tokens[rel->n], token);
    rel->id_ptrs[rel->n] = rel->ids[rel->n];
    rel->token_ptrs[rel->n] = rel->tokens[rel->n];
    rel->n++;
}

static void on_released(void *arg, int status, int64_t count) {
    release_t *rel = arg;
    tf_runner_t *r = rel->r;
    r->ops--;
    if (status == 0) {
        tf_log_info(r->log, "released unfinished jobs", TF_LF_INT("count", (long long)count));
    } else {
        tf_log_warn(r->log, "cannot release unfinished jobs; the lease rescue will retry them",
                    TF_LF_INT("count", (long long)rel->n), TF_LF_STR("error", tf_strerror(status)));
    }
    release_free(rel);
    tf__runner_maybe_finish(r);
}

/* Hands `rel`'s jobs back (PENDING, attempt not counted); takes `rel`. */
static void release_send(tf_runner_t *r, release_t *rel) {
    if (rel->n == 0) {
        release_free(rel);
        return;
    }
    r->ops++; /* before: on_released() may run at once */
    int rc =
        tf_uc_release(r->uc, r->worker_id, rel->id_ptrs, rel->token_ptrs, rel->n, on_released, rel);
    if (rc != 0) {
        on_released(rel, rc, 0);
    }
}

/* ---- claiming ---- */

static void release_jobs(tf_runner_t *r, const tf_claimed_job_t *jobs, size_t n) {
    release_t *rel = n > 0 ? release_new(r, n) : NULL;
    for (size_t i = 0; rel != NULL && i < n; i++) {
        release_add(rel, jobs[i].id, jobs[i].lease_token);
    }
    if (rel != NULL) {
        release_send(r, rel);
    }
}

/* One claim in flight. */
typedef struct {
    tf_runner_t *r;
    char *queue;
    int max;
    uint64_t sent; /* loop time */
} claim_op_t;

static void on_claimed(void *arg, int status, const tf_claimed_job_t *jobs, size_t n) {
    claim_op_t *op = arg;
    tf_runner_t *r = op->r;
    r->ops--;
    r->claiming--;
    tf__queue_t *q = tf__runner_queue_find(r, op->queue, 0);
    if (status != 0) {
        if (!r->claim_failing) {
            tf_log_warn(r->log, "cannot claim jobs", TF_LF_STR("queue", op->queue),
                        TF_LF_STR("error", tf_strerror(status)));
        }
        r->claim_failing = 1;
        if (q != NULL) {
            q->dirty = 0; /* the next discovery tries again */
        }
    } else if (r->stopping) {
        release_jobs(r, jobs, n);
    } else {
        r->claim_failing = 0;
        if (q != NULL && n < (size_t)op->max) {
            q->dirty = 0;
        }
        for (size_t i = 0; i < n; i++) {
            tf__runner_exec_start(r, &jobs[i], op->sent);
        }
    }
    /* Reserved until every job has started: a run that ends at once
     * claims more before the rest of the batch is counted. */
    r->claim_reserved -= op->max;
    free(op->queue);
    free(op);
    tf__runner_claim_more(r);
    tf__runner_maybe_finish(r);
}

static tf__queue_t *next_dirty(tf_runner_t *r) {
    for (size_t k = 0; k < r->nqueues; k++) {
        size_t i = (r->rr + k) % r->nqueues;
        if (r->queues[i].dirty) {
            r->rr = (i + 1) % r->nqueues;
            return &r->queues[i];
        }
    }
    return NULL;
}

/* Claims for the free slots, with up to TF__RUNNER_CLAIMS_IN_FLIGHT claims
 * at once.  `concurrency` bounds the executor runs in flight (and the
 * claims that may add to them), not the outcomes waiting for their acks,
 * so claims go on while acks are written; those are bounded on their own.
 * A capped scope is unaffected: its job stays RUNNING in the database
 * until the ack, and the attempt's recorded end is the run's end, which
 * is before any claim this frees (runner_exec.c, outcome_ready). */
void tf__runner_claim_more(tf_runner_t *r) {
    while (!r->stopping && r->claiming < TF__RUNNER_CLAIMS_IN_FLIGHT) {
        int free_slots = r->concurrency - r->calls - r->claim_reserved;
        int room = r->concurrency + TF__RUNNER_ACK_BACKLOG - r->nexec - r->claim_reserved;
        free_slots = free_slots < room ? free_slots : room;
        if (free_slots <= 0) {
            return;
        }
        tf__queue_t *q = next_dirty(r);
        claim_op_t *op = q != NULL ? calloc(1, sizeof(*op)) : NULL;
        if (op == NULL || (op->queue = strdup(q->name)) == NULL) {
            free(op);
            return;
        }
        op->r = r;
        op->max = free_slots < CLAIM_MAX ? free_slots : CLAIM_MAX;
        op->sent = uv_now(r->loop);
        tf_uc_claim_t req = {
            .queue = q->name,
            .builtin = 1,
            .tenant_id = NULL,
            .worker_id = r->worker_id,
            .max_jobs = op->max,
            .lease_ms = r->cfg.lease_ms,
        };
        if (tf_uc_claim(r->uc, &req, on_claimed, op) != 0) {
            free(op->queue);
            free(op);
            q->dirty = 0;
            return;
        }
        r->claiming++;
        r->claim_reserved += op->max;
        r->ops++;
    }
}

/* ---- notifications ---- */

void tf_runner_wake(tf_runner_t *r, const char *queue_payload) {
    static const char suffix[] = "|builtin";
    if (r == NULL || r->stopping) {
        return;
    }
    if (queue_payload == NULL) {
        discover(r);
        return;
    }
    size_t len = strlen(queue_payload), slen = sizeof(suffix) - 1;
    if (len <= slen || strcmp(queue_payload + len - slen, suffix) != 0) {
        return;
    }
    char name[256];
    if (len - slen >= sizeof(name)) {
        discover(r);
        return;
    }
    memcpy(name, queue_payload, len - slen);
    name[len - slen] = '\0';
    tf__queue_t *q = tf__runner_queue_find(r, name, 1);
    if (q != NULL) {
        q->dirty = q->seen = 1;
        tf__runner_claim_more(r);
    }
}

void tf_runner_cancelled(tf_runner_t *r, const char *job_id) {
    if (r == NULL || job_id == NULL) {
        return;
    }
    for (tf__exec_t *e = r->execs; e != NULL; e = e->next) {
        if (strcmp(e->id, job_id) == 0) {
            tf_log_debug(r->log, "job cancelled; aborting the execution",
                         TF_LF_STR("job_id", e->id));
            tf__runner_exec_forget(e);
            return;
        }
    }
    if (r->claiming > 0) { /* the job may be in a claim in flight */
        tf__runner_copy_id(r->cancels[r->next_cancel], job_id);
        r->next_cancel = (r->next_cancel + 1) % TF__RUNNER_RECENT_CANCELS;
    }
}

/* ---- start and stop ---- */

static void on_poll(uv_timer_t *t) {
    tf_runner_t *r = t->data;
    discover(r);
    tf__runner_claim_more(r);
}

static void on_maintenance_work(void *arg) {
    discover(arg);
}

static int register_metrics(tf_runner_t *r) {
    static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                     2.5,   5,    10,    30,   60,  120,  300};
    static const char *const queue_label[] = {"queue"};
    static const char *const type_label[] = {"type"};
    const size_t nb = sizeof(buckets) / sizeof(buckets[0]);
    tf_metrics_t *reg = r->metrics;
    tf__runner_metrics_t *m = &r->m;
    tf_metric_family_t *gauge = NULL;
    if (reg == NULL) {
        return 0;
    }
    int rc = tf_metrics_counter(reg, "taskflow_jobs_claimed_total",
                                "Jobs handed to a worker (external claims and built-in runs)",
                                queue_label, 1, &m->claimed);
    if (rc == 0) {
        rc = tf_metrics_counter(reg, "taskflow_jobs_succeeded_total", "Attempts that succeeded",
                                queue_label, 1, &m->succeeded);
    }
    if (rc == 0) {
        rc = tf_metrics_counter(reg, "taskflow_jobs_failed_total", "Attempts that failed",
                                queue_label, 1, &m->failed);
    }
    if (rc == 0) {
        rc = tf_metrics_counter(reg, "taskflow_jobs_dead_total",
                                "Jobs that ran out of attempts (dead letter)", queue_label, 1,
                                &m->dead);
    }
    if (rc == 0) {
        rc = tf_metrics_counter(reg, "taskflow_executor_errors_total",
                                "Failed executions by error type", type_label, 1, &m->errors);
    }
    if (rc == 0) {
        rc = tf_metrics_histogram(reg, "taskflow_attempt_duration_seconds",
                                  "Duration of built-in executions", queue_label, 1, buckets, nb,
                                  &m->duration);
    }
    if (rc == 0) {
        rc = tf_metrics_histogram(reg, "taskflow_submit_to_start_seconds",
                                  "Seconds from a job's creation to the start of an attempt",
                                  queue_label, 1, NULL, 0, &m->latency);
    }
    if (rc == 0) {
        rc = tf_metrics_gauge(reg, "taskflow_runner_executions", "Built-in executions in flight",
                              NULL, 0, &gauge);
    }
    if (rc == 0) {
        m->executions = tf_metric_get(gauge, NULL);
    }
    return rc;
}

int tf_runner_create(uv_loop_t *loop, tf_uc_t *uc, const tf_executor_registry_t *executors,
                     const tf_runner_config_t *cfg, tf_log_t *log, tf_metrics_t *metrics,
                     tf_runner_t **out) {
    if (loop == NULL || uc == NULL || executors == NULL || cfg == NULL || cfg->concurrency < 1 ||
        cfg->lease_ms < 1 || out == NULL) {
        return TF_EINVAL;
    }
    tf_runner_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return TF_ENOMEM;
    }
    r->loop = loop;
    r->uc = uc;
    r->executors = executors;
    r->cfg = *cfg;
    r->log = log;
    r->metrics = metrics;
    r->worker_id = cfg->worker_id != NULL ? cfg->worker_id : "taskflow";
    r->concurrency = cfg->concurrency;
    int rc = register_metrics(r);
    if (rc == 0) {
        tf_maintenance_config_t mcfg = {.poll_interval_ms = cfg->poll_interval_ms};
        rc =
            tf_maintenance_create(loop, uc, &mcfg, log, metrics, on_maintenance_work, r, &r->maint);
    }
    if (rc != 0) {
        free(r);
        return rc;
    }
    r->maint_open = 1;
    uv_timer_t *timers[] = {&r->poll, &r->heartbeat, &r->ack_timer, &r->grace};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = r;
    }
    r->open_handles = 4;
    uint64_t beat = cfg->lease_ms / 3 > 0 ? (uint64_t)cfg->lease_ms / 3 : 1;
    uint64_t poll = cfg->poll_interval_ms > 0 ? (uint64_t)cfg->poll_interval_ms : 1000;
    uv_timer_start(&r->poll, on_poll, 0, poll);
    uv_timer_start(&r->heartbeat, tf__runner_on_heartbeat_timer, beat, beat);
    tf_log_info(r->log, "runner started", TF_LF_STR("worker_id", r->worker_id),
                TF_LF_INT("loop", cfg->loop_index), TF_LF_INT("concurrency", cfg->concurrency),
                TF_LF_INT("executor_kinds", (long long)executors->n));
    *out = r;
    return 0;
}

static void on_handle_closed(uv_handle_t *h) {
    tf_runner_t *r = h->data;
    if (--r->open_handles > 0) {
        return;
    }
    void (*cb)(void *) = r->closed_cb;
    void *arg = r->closed_arg;
    tf_log_info(r->log, "runner stopped", TF_LF_INT("loop", r->cfg.loop_index));
    for (size_t i = 0; i < r->nqueues; i++) {
        free(r->queues[i].name);
    }
    free(r->queues);
    free(r);
    if (cb != NULL) {
        cb(arg);
    }
}

static void close_timers(tf_runner_t *r) {
    uv_close((uv_handle_t *)&r->poll, on_handle_closed);
    uv_close((uv_handle_t *)&r->heartbeat, on_handle_closed);
    uv_close((uv_handle_t *)&r->ack_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->grace, on_handle_closed);
}

void tf__runner_maybe_finish(tf_runner_t *r) {
    if (!r->final || r->closing || r->nexec > 0 || r->ops > 0 || r->maint_open) {
        return;
    }
    r->closing = 1;
    close_timers(r);
}

static void on_maintenance_closed(void *arg) {
    tf_runner_t *r = arg;
    r->maint_open = 0;
    tf__runner_maybe_finish(r);
}

/* The grace is over (or nothing runs): abort what still runs and release
 * it; give up outcomes that wait for the database. */
void tf__runner_enter_final(tf_runner_t *r) {
    if (r->final) {
        return;
    }
    r->final = 1;
    uv_timer_stop(&r->grace);
    uv_timer_stop(&r->heartbeat);
    uv_timer_stop(&r->ack_timer);
    size_t n = 0;
    for (tf__exec_t *e = r->execs; e != NULL; e = e->next) {
        n += e->phase == TF__EXEC_CALL && !e->forgotten;
    }
    release_t *rel = n > 0 ? release_new(r, n) : NULL;
    for (tf__exec_t *e = r->execs, *next; e != NULL; e = next) {
        next = e->next;
        if (e->phase == TF__EXEC_CALL && !e->forgotten) {
            e->releasing = 1;
            if (rel != NULL) {
                release_add(rel, e->id, e->token);
            }
            if (e->run != NULL) {
                e->executor->cancel(e->executor->ctx, e->run);
            }
        } else if (e->phase == TF__EXEC_ACKWAIT) {
            tf__runner_exec_give_up(e);
        }
    }
    if (rel != NULL) {
        release_send(r, rel);
    }
    tf__runner_maybe_finish(r);
}

static void on_grace(uv_timer_t *t) {
    tf_runner_t *r = t->data;
    tf_log_info(r->log, "shutdown grace over; releasing unfinished executions",
                TF_LF_INT("executions", r->nexec));
    tf__runner_enter_final(r);
}

void tf_runner_stop(tf_runner_t *r, int grace_ms, void (*closed_cb)(void *arg), void *arg) {
    if (r == NULL) {
        if (closed_cb != NULL) {
            closed_cb(arg);
        }
        return;
    }
    if (r->stopping) {
        return;
    }
    r->stopping = 1;
    r->closed_cb = closed_cb;
    r->closed_arg = arg;
    uv_timer_stop(&r->poll);
    tf_log_info(r->log, "runner stopping", TF_LF_INT("loop", r->cfg.loop_index),
                TF_LF_INT("executions", r->nexec));
    tf_maintenance_close(r->maint, on_maintenance_closed, r);
    if (r->nexec == 0) {
        tf__runner_enter_final(r);
    } else {
        uv_timer_start(&r->grace, on_grace, grace_ms > 0 ? (uint64_t)grace_ms : 0, 0);
    }
}
