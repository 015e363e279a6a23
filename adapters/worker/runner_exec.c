/*
 * runner_exec.c - the executions of a runner (see runner_internal.h): the
 * run of a claimed job by its kind's executor, its heartbeats, and the
 * acknowledgement of its outcome in batches, retried while the database is
 * unavailable.  Loop thread only.
 */
#include "adapters/worker/runner_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/usecases/finish.h"
#include "adapters/usecases/lease.h"
#include "engine/error.h"

enum {
    ACK_BATCH_MAX = 1000, /* acks per tf_work_ack */
    ACK_BACKOFF_MS = 100, /* first retry of an ack; doubles */
    ACK_BACKOFF_MAX_MS = 2000,
};

static void ack_flush(tf_runner_t *r);

/* ---- executions: lifetime ---- */

static void outcome_release(tf__outcome_t *out) {
    free(out->result_json);
    free(out->error_type);
    free(out->error_message);
    if (out->children_free != NULL) {
        out->children_free(out->children_ctx);
    }
    *out = (tf__outcome_t){0};
}

static void exec_maybe_free(tf__exec_t *e) {
    tf_runner_t *r = e->r;
    if (e->phase != TF__EXEC_DONE || e->run != NULL || e->refs > 0) {
        return;
    }
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        r->execs = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    }
    tf__queue_t *q = r->stopping ? NULL : tf__runner_queue_find(r, e->queue, 0);
    if (q != NULL && q->seen) {
        q->dirty = 1; /* a cap on the queue may have room again */
    }
    free(e->queue);
    outcome_release(&e->out);
    free(e);
    r->nexec--;
    if (r->m.executions != NULL) {
        tf_metric_add(r->m.executions, -1);
    }
    if (r->stopping && r->nexec == 0) {
        tf__runner_enter_final(r);
    }
    tf__runner_claim_more(r);
    tf__runner_maybe_finish(r);
}

static void exec_done(tf__exec_t *e) {
    e->phase = TF__EXEC_DONE;
    exec_maybe_free(e);
}

void tf__runner_exec_forget(tf__exec_t *e) {
    if (e->forgotten) {
        return;
    }
    e->forgotten = 1;
    if (e->phase == TF__EXEC_CALL && e->run != NULL) {
        e->executor->cancel(e->executor->ctx, e->run);
    } else if (e->phase == TF__EXEC_ACKWAIT) {
        exec_done(e);
    }
}

/* ---- acknowledgements ---- */

typedef struct {
    tf_runner_t *r;
    size_t n;
    tf__exec_t *items[];
} ack_batch_t;

static void on_ack_timer(uv_timer_t *t);

static void arm_ack_timer(tf_runner_t *r) {
    uint64_t now = uv_now(r->loop), first = UINT64_MAX;
    for (tf__exec_t *e = r->execs; e != NULL; e = e->next) {
        if (e->phase == TF__EXEC_ACKWAIT && e->ack_at < first) {
            first = e->ack_at;
        }
    }
    if (first != UINT64_MAX) {
        uv_timer_start(&r->ack_timer, on_ack_timer, first > now ? first - now : 0, 0);
    }
}

static void ack_enqueue(tf__exec_t *e);

/* The acknowledgement of `e`, sent in a batch of `batch_n`, failed with
 * `code`.  A batch refused for its content is split: each outcome goes
 * alone, at once.  Otherwise the outcome is retried with backoff while its
 * lease holds (the database is unavailable); then the runner gives up and
 * leaves the job to the lease rescue. */
static void ack_retry(tf__exec_t *e, int code, size_t batch_n) {
    tf_runner_t *r = e->r;
    int outage = code == TF_EUNAVAIL || code == TF_EAGAIN || code == TF_ETIMEDOUT;
    if (!e->forgotten && !r->final && !outage && batch_n > 1 && !e->solo) {
        e->solo = 1;
        ack_enqueue(e);
        return;
    }
    uint64_t backoff = (uint64_t)ACK_BACKOFF_MS << (e->ack_tries < 5 ? e->ack_tries : 5);
    backoff = backoff > ACK_BACKOFF_MAX_MS ? ACK_BACKOFF_MAX_MS : backoff;
    uint64_t at = uv_now(r->loop) + backoff;
    if (e->forgotten || r->final || code == TF_EINVAL || code == TF_ESHUTDOWN ||
        at >= e->lease_until) {
        if (!e->forgotten) {
            tf_log_warn(r->log, "giving up reporting an outcome; the lease rescue will decide",
                        TF_LF_STR("job_id", e->id), TF_LF_STR("error", tf_strerror(code)));
        }
        exec_done(e);
        return;
    }
    e->ack_tries++;
    e->ack_at = at;
    e->phase = TF__EXEC_ACKWAIT;
    arm_ack_timer(r);
}

static void ack_applied(tf__exec_t *e, const tf_ack_result_t *res) {
    tf_runner_t *r = e->r;
    if (res->status == TF_ESTALE || res->status == TF_ENOTFOUND) {
        tf_log_debug(r->log, "outcome refused: lease no longer held", TF_LF_STR("job_id", e->id));
        exec_done(e);
        return;
    }
    if (res->status != 0) {
        ack_retry(e, res->status, 1);
        return;
    }
    tf__runner_metric_inc(e->out.ok ? r->m.succeeded : r->m.failed, e->queue);
    if (res->state == TF_JOB_DEAD) {
        tf__runner_metric_inc(r->m.dead, e->queue);
    } else if (res->state == TF_JOB_SCHEDULED) {
        tf_maintenance_scheduled(r->maint);
    }
    tf_log_debug(r->log, "job attempt finished", TF_LF_STR("job_id", e->id),
                 TF_LF_INT("attempt", e->attempt),
                 TF_LF_STR("state", tf_job_state_name(res->state)),
                 TF_LF_STR("error_type", e->out.error_type));
    exec_done(e);
}

static void on_acked(void *arg, int status, const tf_ack_result_t *results, size_t n) {
    ack_batch_t *b = arg;
    tf_runner_t *r = b->r;
    r->ops--;
    r->acking--;
    if (status != 0 && !r->ack_failing) {
        tf_log_warn(r->log, "cannot report outcomes, will retry",
                    TF_LF_STR("error", tf_strerror(status)));
    }
    r->ack_failing = status != 0;
    for (size_t i = 0; i < b->n; i++) {
        tf__exec_t *e = b->items[i];
        if (status == 0 && i < n) {
            ack_applied(e, &results[i]);
        } else {
            ack_retry(e, status != 0 ? status : TF_EIO, b->n);
        }
    }
    free(b);
    ack_flush(r);
    tf__runner_maybe_finish(r);
}

static void ack_enqueue(tf__exec_t *e) {
    tf_runner_t *r = e->r;
    e->phase = TF__EXEC_ACKQ;
    e->ack_next = NULL;
    if (r->ackq_tail != NULL) {
        r->ackq_tail->ack_next = e;
    } else {
        r->ackq_head = e;
    }
    r->ackq_tail = e;
}

/* Takes the next batch off the ack queue: forgotten ones are dropped; a solo
 * outcome goes alone. */
static ack_batch_t *ack_take(tf_runner_t *r) {
    size_t n = 0;
    for (tf__exec_t *e = r->ackq_head; e != NULL && n < ACK_BATCH_MAX; e = e->ack_next) {
        n++;
    }
    ack_batch_t *b = malloc(sizeof(*b) + n * sizeof(tf__exec_t *));
    if (b == NULL) {
        return NULL;
    }
    b->r = r;
    b->n = 0;
    while (r->ackq_head != NULL && b->n < ACK_BATCH_MAX) {
        tf__exec_t *e = r->ackq_head;
        if (!e->forgotten && e->solo && b->n > 0) {
            break;
        }
        r->ackq_head = e->ack_next;
        if (r->ackq_head == NULL) {
            r->ackq_tail = NULL;
        }
        if (e->forgotten) {
            exec_done(e);
            continue;
        }
        e->phase = TF__EXEC_ACKING;
        b->items[b->n++] = e;
        if (e->solo) {
            break;
        }
    }
    return b;
}

/* Sends the next batch unless one is in flight. */
static void ack_flush(tf_runner_t *r) {
    while (r->acking < TF__RUNNER_ACKS_IN_FLIGHT && r->ackq_head != NULL && !r->closing) {
        ack_batch_t *b = ack_take(r);
        if (b == NULL || b->n == 0) {
            free(b);
            return; /* out of memory: the ack timer or the next outcome tries again */
        }
        tf_ack_t *acks = calloc(b->n, sizeof(*acks));
        int rc = acks != NULL ? 0 : TF_ENOMEM;
        for (size_t i = 0; rc == 0 && i < b->n; i++) {
            const tf__exec_t *e = b->items[i];
            acks[i] = (tf_ack_t){.tenant_id = e->tenant,
                                 .job_id = e->id,
                                 .lease_token = e->token,
                                 .worker_id = r->worker_id,
                                 .ok = e->out.ok,
                                 .result_json = e->out.result_json,
                                 .error_type = e->out.error_type,
                                 .error_message = e->out.error_message,
                                 .retryable = e->out.retryable,
                                 .snooze_ms = e->out.snooze_ms,
                                 .executor_version = e->out.executor_version,
                                 .ended_ms = e->out.ended_ms,
                                 .children = e->out.children,
                                 .nchildren = e->out.nchildren};
        }
        if (rc == 0) {
            rc = tf_uc_ack(r->uc, acks, b->n, on_acked, b);
        }
        free(acks);
        if (rc == 0) {
            r->acking++;
            r->ops++;
            return;
        }
        for (size_t i = 0; i < b->n; i++) {
            ack_retry(b->items[i], rc, b->n);
        }
        free(b);
    }
}

static void on_ack_timer(uv_timer_t *t) {
    tf_runner_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    for (tf__exec_t *e = r->execs; e != NULL; e = e->next) {
        if (e->phase == TF__EXEC_ACKWAIT && e->ack_at <= now) {
            ack_enqueue(e);
        }
    }
    ack_flush(r);
    arm_ack_timer(r);
}

/* ---- executions: outcome and start ---- */

static void outcome_ready(tf__exec_t *e) {
    e->out.ended_ms = tf_uc_now(e->r->uc);
    if (!e->out.ok) {
        tf__runner_metric_inc(e->r->m.errors, e->out.error_type);
    }
    ack_enqueue(e);
    ack_flush(e->r);
}

/* Keeps a copy of `src` as the execution's outcome.  Returns 0 or
 * TF_ENOMEM (the outcome is then empty). */
static int keep_outcome(tf__outcome_t *out, int ok, const char *result, const char *type,
                        const char *message, int retryable) {
    out->ok = ok;
    out->retryable = retryable;
    out->result_json = ok && result != NULL ? strdup(result) : NULL;
    out->error_type = ok ? NULL : strdup(type != NULL ? type : "error");
    out->error_message = !ok && message != NULL ? strdup(message) : NULL;
    if ((ok && result != NULL && out->result_json == NULL) || (!ok && out->error_type == NULL) ||
        (!ok && message != NULL && out->error_message == NULL)) {
        free(out->result_json), free(out->error_type), free(out->error_message);
        *out = (tf__outcome_t){0};
        return TF_ENOMEM;
    }
    return 0;
}

/* An outcome decided without a run (out of memory leaves the job to the
 * lease rescue). */
static void exec_fail(tf__exec_t *e, const char *type, const char *message, int retryable) {
    if (keep_outcome(&e->out, 0, NULL, type, message, retryable) != 0) {
        e->forgotten = 1;
        exec_done(e);
        return;
    }
    outcome_ready(e);
}

/* The executor's run ended (exactly once per run). */
static void on_run_done(void *arg, const tf_exec_outcome_t *outcome) {
    tf__exec_t *e = arg;
    tf_runner_t *r = e->r;
    e->run = NULL;
    r->calls--; /* its slot is free for the next claim; the ack goes on */
    tf__runner_claim_more(r);
    if (e->forgotten || e->releasing) {
        if (outcome->children_free != NULL) {
            outcome->children_free(outcome->children_ctx);
        }
        exec_done(e);
        return;
    }
    tf__runner_metric_observe(r->m.duration, e->queue, (double)(uv_hrtime() - e->started_ns) / 1e9);
    int ok = outcome->status == TF_EXEC_SUCCEEDED;
    if (keep_outcome(&e->out, ok, outcome->result, outcome->error_type, outcome->error_message,
                     outcome->retryable) != 0) {
        if (outcome->children_free != NULL) {
            outcome->children_free(outcome->children_ctx);
        }
        exec_fail(e, "internal", "out of memory keeping the outcome", 1);
        return;
    }
    e->out.snooze_ms = ok ? outcome->snooze_ms : 0;
    e->out.executor_version = outcome->executor_version;
    e->out.children = outcome->children;
    e->out.nchildren = outcome->nchildren;
    e->out.children_free = outcome->children_free;
    e->out.children_ctx = outcome->children_ctx;
    outcome_ready(e);
}

/* Starts the run of the executor the job's kind names, or records why it
 * cannot run. */
static void start_exec(tf__exec_t *e, const tf_claimed_job_t *job) {
    tf_runner_t *r = e->r;
    e->executor = tf_executor_find(r->executors, job->executor_kind);
    if (e->executor == NULL) {
        char message[200];
        snprintf(message, sizeof(message), "no executor of kind '%.64s' runs on this node",
                 job->executor_kind != NULL ? job->executor_kind : "");
        exec_fail(e, "executor_unavailable", message, 0);
        return;
    }
    tf_exec_job_t run = {
        .job_id = job->id,
        .tenant_id = job->tenant_id,
        .queue = job->queue,
        .type = job->type,
        .payload = job->payload,
        .executor = job->executor,
        .correlation_id = job->correlation_id,
        .signing_secret_hex = job->signing_secret_hex,
        .attempt = job->attempt,
        .max_attempts = job->max_attempts,
        .timeout_ms = job->timeout_ms > 0 ? job->timeout_ms : TF__RUNNER_DEFAULT_TIMEOUT_MS,
        .now_ms = tf_uc_now(r->uc),
    };
    e->started_ns = uv_hrtime();
    e->phase = TF__EXEC_CALL;
    r->calls++; /* before: the run may end inside start() */
    int rc = e->executor->start(e->executor->ctx, &run, on_run_done, e, &e->run);
    r->calls -= rc != 0;
    if (rc != 0) {
        e->run = NULL;
        exec_fail(e, rc == TF_EINVAL ? "executor_invalid" : "internal",
                  rc == TF_EINVAL ? "the job's executor was refused by its kind"
                                  : "cannot start the executor",
                  rc != TF_EINVAL);
    }
}

static int recently_cancelled(const tf_runner_t *r, const char *id) {
    for (size_t i = 0; i < TF__RUNNER_RECENT_CANCELS; i++) {
        if (strcmp(r->cancels[i], id) == 0) {
            return 1;
        }
    }
    return 0;
}

static void observe_latency(tf_runner_t *r, const char *queue, int64_t created_ms) {
    int64_t waited = tf_uc_now(r->uc) - created_ms;
    tf__runner_metric_observe(r->m.latency, queue, waited > 0 ? (double)waited / 1000.0 : 0.0);
}

/* Takes over one claimed job: an execution from now on. */
void tf__runner_exec_start(tf_runner_t *r, const tf_claimed_job_t *job, uint64_t claim_sent) {
    tf__exec_t *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->queue = strdup(job->queue != NULL ? job->queue : "")) == NULL) {
        free(e);
        tf_log_error(r->log, "out of memory taking a claimed job; the lease rescue will retry it",
                     TF_LF_STR("job_id", job->id));
        return;
    }
    e->r = r;
    tf__runner_copy_id(e->id, job->id);
    tf__runner_copy_id(e->tenant, job->tenant_id);
    tf__runner_copy_id(e->token, job->lease_token);
    e->attempt = job->attempt;
    e->lease_until = claim_sent + (uint64_t)r->cfg.lease_ms;
    e->started_ns = uv_hrtime();
    e->next = r->execs;
    if (r->execs != NULL) {
        r->execs->prev = e;
    }
    r->execs = e;
    r->nexec++;
    if (r->m.executions != NULL) {
        tf_metric_add(r->m.executions, 1);
    }
    tf__runner_metric_inc(r->m.claimed, e->queue);
    observe_latency(r, e->queue, job->created_at_ms);
    tf_log_debug(r->log, "job claimed", TF_LF_STR("job_id", e->id), TF_LF_STR("queue", e->queue),
                 TF_LF_INT("attempt", e->attempt));
    if (recently_cancelled(r, e->id)) {
        e->forgotten = 1;
        exec_done(e);
        return;
    }
    start_exec(e, job);
}

/* ---- heartbeats ---- */

static void on_heartbeat(void *arg, int status, int64_t lease_expires_at_ms) {
    (void)lease_expires_at_ms;
    tf__exec_t *e = arg;
    tf_runner_t *r = e->r;
    r->ops--;
    if (status == 0) {
        e->lease_until = e->hb_sent + (uint64_t)r->cfg.lease_ms;
    } else if (status == TF_ESTALE || status == TF_ENOTFOUND) {
        tf_log_debug(r->log, "lease lost; aborting the execution", TF_LF_STR("job_id", e->id));
        tf__runner_exec_forget(e);
    }
    e->refs--; /* only now: tf__runner_exec_forget() must not free `e` under us */
    exec_maybe_free(e);
    tf__runner_maybe_finish(r);
}

void tf__runner_on_heartbeat_timer(uv_timer_t *t) {
    tf_runner_t *r = t->data;
    for (tf__exec_t *e = r->execs; e != NULL; e = e->next) {
        if (e->phase != TF__EXEC_CALL || e->forgotten || e->releasing || e->refs > 0) {
            continue;
        }
        e->hb_sent = uv_now(r->loop);
        if (tf_uc_heartbeat(r->uc, e->tenant, e->id, e->token, r->cfg.lease_ms, on_heartbeat, e) ==
            0) {
            e->refs++;
            r->ops++;
        }
    }
}

void tf__runner_exec_give_up(tf__exec_t *e) {
    ack_retry(e, TF_ESHUTDOWN, 1);
}
