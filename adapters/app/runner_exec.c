/*
 * runner_exec.c - the executions of a runner (see runner_internal.h): the
 * HTTP call of a claimed job, its heartbeats, and the acknowledgement of its
 * outcome in batches, retried while the database is unavailable.  Loop
 * thread only.
 */
#include "adapters/app/runner_internal.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "adapters/app/work.h"
#include "adapters/pg/pgtime.h"
#include "engine/error.h"

enum {
    ACK_BATCH_MAX = 1000, /* acks per tf_work_ack */
    ACK_BACKOFF_MS = 100, /* first retry of an ack; doubles */
    ACK_BACKOFF_MAX_MS = 2000,
};

static void ack_flush(tf_runner_t *r);

/* ---- executions: lifetime ---- */

static void exec_maybe_free(tf__exec_t *e) {
    tf_runner_t *r = e->r;
    if (e->phase != TF__EXEC_DONE || e->call != NULL || e->refs > 0) {
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
    tf_http_exec_outcome_free(&e->out);
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
    if (e->phase == TF__EXEC_CALL && e->call != NULL) {
        tf_http_client_abort(e->r->http, e->call);
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
    const char *state = res->state != NULL ? res->state : "";
    tf__runner_metric_inc(e->out.ok ? r->m.succeeded : r->m.failed, e->queue);
    if (strcmp(state, "DEAD") == 0) {
        tf__runner_metric_inc(r->m.dead, e->queue);
    } else if (strcmp(state, "SCHEDULED") == 0) {
        tf_maintenance_scheduled(r->maint);
    }
    tf_log_debug(r->log, "job attempt finished", TF_LF_STR("job_id", e->id),
                 TF_LF_INT("attempt", e->attempt), TF_LF_STR("state", state),
                 TF_LF_STR("error_type", e->out.error_type));
    exec_done(e);
}

static void on_acked(int status, const tf_ack_result_t *results, size_t n, void *arg) {
    ack_batch_t *b = arg;
    tf_runner_t *r = b->r;
    r->ops--;
    r->acking = 0;
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
    while (!r->acking && r->ackq_head != NULL && !r->closing) {
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
                                 .retryable = e->out.retryable};
        }
        if (rc == 0) {
            rc = tf_work_ack(r->lp, acks, b->n, on_acked, b);
        }
        free(acks);
        if (rc == 0) {
            r->acking = 1;
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
    if (!e->out.ok) {
        tf__runner_metric_inc(e->r->m.errors, e->out.error_type);
    }
    ack_enqueue(e);
    ack_flush(e->r);
}

/* An outcome decided without a call (out of memory leaves the job to the
 * lease rescue). */
static void exec_fail(tf__exec_t *e, const char *type, const char *message, int retryable) {
    if (tf_http_exec_fail(&e->out, type, message, retryable) != 0) {
        e->forgotten = 1;
        exec_done(e);
        return;
    }
    outcome_ready(e);
}

static void on_http_done(const tf_http_result_t *res, void *arg) {
    tf__exec_t *e = arg;
    tf_runner_t *r = e->r;
    e->call = NULL;
    if (e->forgotten || e->releasing) {
        exec_done(e);
        return;
    }
    tf__runner_metric_observe(r->m.duration, e->queue, (double)(uv_hrtime() - e->started_ns) / 1e9);
    if (tf_http_exec_outcome(res, &e->out) != 0) {
        exec_fail(e, "internal", "out of memory keeping the response", 1);
        return;
    }
    outcome_ready(e);
}

/* Starts the call of an http executor, or records why it cannot run. */
static void start_http(tf__exec_t *e, const json_t *executor, const PGresult *res, int row) {
    const char *timeout = tf__runner_col(res, row, TF_CLAIM_COL_TIMEOUT_MS);
    tf_http_job_t job = {
        .job_id = e->id,
        .attempt = e->attempt,
        .payload = tf__runner_col(res, row, TF_CLAIM_COL_PAYLOAD),
        .correlation_id = tf__runner_col(res, row, TF_CLAIM_COL_CORRELATION),
        .signing_secret_hex = tf__runner_col(res, row, TF_CLAIM_COL_SIGNING_SECRET),
        .timeout_ms = timeout != NULL ? strtol(timeout, NULL, 10) : 0,
        .executor = executor,
        .now_s = tf_app_now_ms() / 1000,
    };
    tf_http_exec_req_t call;
    int rc = tf_http_exec_request(&job, &call);
    if (rc != 0) {
        exec_fail(e, "internal",
                  rc == TF_EINVAL ? "the tenant's signing secret is unavailable"
                                  : "out of memory building the request",
                  1);
        return;
    }
    e->started_ns = uv_hrtime();
    e->phase = TF__EXEC_CALL;
    rc = tf_http_client_start(e->r->http, &call.req, on_http_done, e, &e->call);
    tf_http_exec_request_free(&call);
    if (rc != 0) {
        e->call = NULL;
        exec_fail(e, rc == TF_EINVAL ? "executor_invalid" : "internal",
                  rc == TF_EINVAL ? "the executor's URL or method was refused"
                                  : "cannot start the HTTP call",
                  rc != TF_EINVAL);
    }
}

static void start_exec(tf__exec_t *e, const PGresult *res, int row) {
    const char *text = tf__runner_col(res, row, TF_CLAIM_COL_EXECUTOR);
    json_t *executor = text != NULL ? json_loads(text, 0, NULL) : NULL;
    const char *kind = json_string_value(json_object_get(executor, "kind"));
    if (kind != NULL && strcmp(kind, "http") == 0) {
        start_http(e, executor, res, row);
    } else if (kind != NULL && strcmp(kind, "lua") == 0) {
        exec_fail(e, "executor_unavailable",
                  "Lua executors are not available in this version of TaskFlow", 0);
    } else {
        exec_fail(e, "executor_unavailable", "unknown executor kind", 0);
    }
    json_decref(executor);
}

static int recently_cancelled(const tf_runner_t *r, const char *id) {
    for (size_t i = 0; i < TF__RUNNER_RECENT_CANCELS; i++) {
        if (strcmp(r->cancels[i], id) == 0) {
            return 1;
        }
    }
    return 0;
}

static void observe_latency(tf_runner_t *r, const char *queue, const char *created_at) {
    int64_t created_ms = 0;
    if (created_at != NULL && tf_pgtime_parse(created_at, &created_ms) == 0) {
        int64_t waited = tf_app_now_ms() - created_ms;
        tf__runner_metric_observe(r->m.latency, queue, waited > 0 ? (double)waited / 1000.0 : 0.0);
    }
}

/* Takes over one claimed row: an execution from now on. */
void tf__runner_exec_from_row(tf_runner_t *r, const PGresult *res, int row) {
    tf__exec_t *e = calloc(1, sizeof(*e));
    const char *queue = tf__runner_col(res, row, TF_CLAIM_COL_QUEUE);
    if (e == NULL || (e->queue = strdup(queue != NULL ? queue : "")) == NULL) {
        free(e);
        tf_log_error(r->log, "out of memory taking a claimed job; the lease rescue will retry it",
                     TF_LF_STR("job_id", tf__runner_col(res, row, TF_CLAIM_COL_ID)));
        return;
    }
    e->r = r;
    tf__runner_copy_id(e->id, tf__runner_col(res, row, TF_CLAIM_COL_ID));
    tf__runner_copy_id(e->tenant, tf__runner_col(res, row, TF_CLAIM_COL_TENANT));
    tf__runner_copy_id(e->token, tf__runner_col(res, row, TF_CLAIM_COL_LEASE_TOKEN));
    const char *attempt = tf__runner_col(res, row, TF_CLAIM_COL_ATTEMPT);
    e->attempt = attempt != NULL ? atoi(attempt) : 1;
    e->lease_until = r->claim_sent + (uint64_t)r->cfg->lease_ms;
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
    observe_latency(r, e->queue, tf__runner_col(res, row, TF_CLAIM_COL_CREATED_AT));
    tf_log_debug(r->log, "job claimed", TF_LF_STR("job_id", e->id), TF_LF_STR("queue", e->queue),
                 TF_LF_INT("attempt", e->attempt));
    if (recently_cancelled(r, e->id)) {
        e->forgotten = 1;
        exec_done(e);
        return;
    }
    start_exec(e, res, row);
}

/* ---- heartbeats ---- */

static void on_heartbeat(int status, const char *lease_expires_at, void *arg) {
    (void)lease_expires_at;
    tf__exec_t *e = arg;
    tf_runner_t *r = e->r;
    r->ops--;
    if (status == 0) {
        e->lease_until = e->hb_sent + (uint64_t)r->cfg->lease_ms;
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
        if (tf_work_heartbeat(r->lp, e->tenant, e->id, e->token, r->cfg->lease_ms, on_heartbeat,
                              e) == 0) {
            e->refs++;
            r->ops++;
        }
    }
}

void tf__runner_exec_give_up(tf__exec_t *e) {
    ack_retry(e, TF_ESHUTDOWN, 1);
}
