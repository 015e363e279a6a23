/*
 * finish.c - ending attempts (see finish.h).
 */
#include "adapters/usecases/finish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/events.h"
#include "engine/retry.h"

/* One attempt to end, with the strings it owns. */
typedef struct {
    tf_finish_t f;
    char *tenant_id, *job_id, *token, *worker, *actor, *result, *error_type, *error_message;
    int ok, retryable;
    int64_t snooze_ms;
} item_t;

typedef struct {
    tf_uc_t *uc;
    item_t *items;
    tf_finish_t *finishes;
    size_t n;
    tf_domain_event_t *event_storage;
    tf_event_buf_t events;
    tf_uc_ack_cb cb;
    tf_store_count_cb count_cb; /* rescue: answered with the number applied */
    void *arg;
} finish_t;

static void finish_free(finish_t *f) {
    for (size_t i = 0; i < f->n; i++) {
        item_t *it = &f->items[i];
        free(it->tenant_id), free(it->job_id), free(it->token), free(it->worker);
        free(it->actor), free(it->result), free(it->error_type), free(it->error_message);
    }
    free(f->items);
    free(f->finishes);
    free(f->event_storage);
    free(f);
}

static finish_t *finish_new(tf_uc_t *uc, size_t n) {
    finish_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->uc = uc;
    f->n = n;
    f->items = calloc(n, sizeof(*f->items));
    f->finishes = calloc(n, sizeof(*f->finishes));
    f->event_storage = calloc(n, sizeof(*f->event_storage));
    if (f->items == NULL || f->finishes == NULL || f->event_storage == NULL) {
        finish_free(f);
        return NULL;
    }
    tf_event_buf_init(&f->events, f->event_storage, n);
    return f;
}

static char *dup_or_null(const char *s) {
    return s != NULL ? strdup(s) : NULL;
}

/* The end of a job that reached `to`: its domain event goes into the unit
 * of work's sink and its dependants follow the engine's rule. */
static void decide_end(finish_t *f, item_t *it) {
    tf_finish_t *fin = &it->f;
    tf_domain_event_kind_t kind;
    fin->dependants = tf_job_dependants_action(fin->to);
    if (tf_event_for_state(fin->to, &kind) == 0) {
        tf_event_sink_t sink = tf_event_buf_sink(&f->events);
        tf_domain_event_t ev = {.kind = kind,
                                .tenant_id = it->tenant_id != NULL ? it->tenant_id : "-",
                                .job_id = it->job_id,
                                .state = fin->to,
                                .reason = fin->reason};
        tf_event_emit(&sink, &ev);
    }
}

static void decide_ok(finish_t *f, item_t *it) {
    if (it->snooze_ms > 0) {
        /* Not an end: the job runs again later, the attempt is given back. */
        it->f.to = TF_JOB_SCHEDULED;
        it->f.run_at_ms = tf_uc_now(f->uc) + it->snooze_ms;
        it->f.attempt_outcome = TF_ATTEMPT_SNOOZED;
        it->f.reason = "snoozed";
        it->f.dependants = TF_DEPENDANTS_KEEP;
        return;
    }
    it->f.to = TF_JOB_SUCCEEDED;
    it->f.attempt_outcome = TF_ATTEMPT_SUCCEEDED;
    it->f.reason = "succeeded";
    decide_end(f, it);
}

/* Lets the job's retry policy decide what its failed attempt leads to. */
static void decide_failure(finish_t *f, item_t *it, const tf_failed_job_t *job) {
    tf_retry_decision_t d;
    int attempt = job->attempts < 1 ? 1 : job->attempts;
    if (tf_retry_decide(&job->policy, attempt, it->error_type, it->retryable != 0, tf_uc_now(f->uc),
                        &f->uc->uuids->rng, &d) != 0) {
        d.outcome = TF_RETRY_OUTCOME_FAILED;
    }
    int timeout = strcmp(it->error_type, "timeout") == 0;
    int lease = strcmp(it->error_type, "lease_expired") == 0;
    it->f.attempt_outcome = timeout                                ? TF_ATTEMPT_TIMED_OUT
                            : lease                                ? TF_ATTEMPT_LEASE_EXPIRED
                            : d.outcome == TF_RETRY_OUTCOME_FAILED ? TF_ATTEMPT_FAILED_FATAL
                                                                   : TF_ATTEMPT_FAILED;
    if (d.outcome == TF_RETRY_OUTCOME_RETRY) {
        it->f.to = TF_JOB_SCHEDULED;
        it->f.run_at_ms = d.run_at_ms;
        it->f.reason = "retry_scheduled";
        it->f.dependants = TF_DEPENDANTS_KEEP;
        return;
    }
    it->f.to = d.outcome == TF_RETRY_OUTCOME_DEAD ? TF_JOB_DEAD : TF_JOB_FAILED;
    it->f.reason =
        d.outcome == TF_RETRY_OUTCOME_DEAD ? "attempts_exhausted" : "non_retryable_error";
    decide_end(f, it);
}

/* ---- the write ---- */

static void written(void *arg, int status, const tf_finished_t *results, size_t n) {
    finish_t *f = arg;
    if (status == 0 && n != f->n) {
        status = TF_EIO;
    }
    if (f->count_cb != NULL) {
        int64_t applied = 0;
        for (size_t i = 0; status == 0 && i < n; i++) {
            applied += results[i].applied;
        }
        f->count_cb(f->arg, status, applied);
        finish_free(f);
        return;
    }
    tf_ack_result_t *out = status == 0 ? calloc(n, sizeof(*out)) : NULL;
    if (status == 0 && out == NULL) {
        status = TF_ENOMEM;
    }
    for (size_t i = 0; status == 0 && i < n; i++) {
        out[i] = (tf_ack_result_t){
            .status = results[i].applied  ? 0
                      : results[i].exists ? TF_ESTALE
                                          : TF_ENOTFOUND,
            .state = f->items[i].f.to,
            .released = results[i].released,
            .cancelled = results[i].cancelled,
        };
    }
    f->cb(f->arg, status, out, status == 0 ? n : 0);
    free(out);
    finish_free(f);
}

static int write_all(finish_t *f) {
    for (size_t i = 0; i < f->n; i++) {
        item_t *it = &f->items[i];
        it->f.tenant_id = it->tenant_id;
        it->f.job_id = it->job_id;
        it->f.lease_token = it->token;
        it->f.worker = it->worker;
        it->f.actor = it->actor;
        it->f.result = it->result;
        it->f.error_type = it->error_type;
        it->f.error_message = it->error_message;
        f->finishes[i] = it->f;
    }
    return f->uc->store->finish(f->uc->store->ctx, f->finishes, f->n, &f->events, tf_uc_now(f->uc),
                                written, f);
}

static void answer_failed(finish_t *f, int status) {
    if (f->count_cb != NULL) {
        f->count_cb(f->arg, status, 0);
    } else {
        f->cb(f->arg, status, NULL, 0);
    }
    finish_free(f);
}

/* ---- acks ---- */

static void policies_read(void *arg, int status, const tf_failed_job_t *jobs, size_t n) {
    finish_t *f = arg;
    size_t k = 0;
    for (size_t i = 0; status == 0 && i < f->n; i++) {
        item_t *it = &f->items[i];
        if (it->ok) {
            continue;
        }
        if (k >= n) {
            status = TF_EIO;
        } else if (jobs[k].found) {
            decide_failure(f, it, &jobs[k]);
        }
        /* A job that is not found keeps the defaults below and is reported
         * as not found by the write. */
        k++;
    }
    if (status == 0) {
        status = write_all(f);
    }
    if (status != 0) {
        answer_failed(f, status);
    }
}

/* Reads the failed jobs' policies (one round trip), then writes. */
static int ack_start(finish_t *f) {
    size_t failures = 0;
    for (size_t i = 0; i < f->n; i++) {
        item_t *it = &f->items[i];
        if (it->ok) {
            decide_ok(f, it);
        } else {
            failures++;
            it->f.to = TF_JOB_FAILED;
            it->f.attempt_outcome = TF_ATTEMPT_FAILED_FATAL;
            it->f.reason = "non_retryable_error";
        }
    }
    if (failures == 0) {
        return write_all(f);
    }
    const char **tenants = calloc(failures, sizeof(*tenants));
    const char **ids = calloc(failures, sizeof(*ids));
    int rc = tenants != NULL && ids != NULL ? 0 : TF_ENOMEM;
    for (size_t i = 0, k = 0; rc == 0 && i < f->n; i++) {
        if (!f->items[i].ok) {
            tenants[k] = f->items[i].tenant_id;
            ids[k++] = f->items[i].job_id;
        }
    }
    if (rc == 0) {
        rc = f->uc->store->failed_jobs(f->uc->store->ctx, tenants, ids, failures, policies_read, f);
    }
    free(tenants);
    free(ids);
    return rc;
}

int tf_uc_ack(tf_uc_t *uc, const tf_ack_t *acks, size_t n, tf_uc_ack_cb cb, void *arg) {
    if (n < 1 || n > TF_ACK_MAX) {
        return TF_EINVAL;
    }
    finish_t *f = finish_new(uc, n);
    if (f == NULL) {
        return TF_ENOMEM;
    }
    f->cb = cb;
    f->arg = arg;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const tf_ack_t *a = &acks[i];
        item_t *it = &f->items[i];
        it->tenant_id = dup_or_null(a->tenant_id);
        it->job_id = dup_or_null(a->job_id);
        it->token = dup_or_null(a->lease_token);
        /* Without a worker id, the attempt and event name the lease holder. */
        it->worker = dup_or_null(a->worker_id);
        if (a->worker_id != NULL) {
            size_t len = strlen(a->worker_id) + 8;
            it->actor = malloc(len);
            if (it->actor != NULL) {
                snprintf(it->actor, len, "worker:%s", a->worker_id);
            }
        }
        it->ok = a->ok;
        it->result = a->ok ? strdup(a->result_json != NULL ? a->result_json : "null") : NULL;
        it->error_type = a->ok ? NULL : strdup(a->error_type != NULL ? a->error_type : "error");
        it->error_message = a->ok ? NULL : dup_or_null(a->error_message);
        it->retryable = a->retryable;
        it->snooze_ms = a->ok ? a->snooze_ms : 0;
        it->f.executor_version = a->executor_version;
        it->f.ended_at_ms = a->ended_ms;
        if (a->ok) {
            it->f.children = a->children;
            it->f.nchildren = a->nchildren;
        }
        if (it->job_id == NULL || it->token == NULL ||
            (a->tenant_id != NULL && it->tenant_id == NULL) ||
            (a->worker_id != NULL && (it->worker == NULL || it->actor == NULL)) ||
            (a->ok ? it->result == NULL : it->error_type == NULL) ||
            (a->error_message != NULL && !a->ok && it->error_message == NULL)) {
            rc = TF_ENOMEM;
        }
    }
    if (rc == 0) {
        rc = ack_start(f);
    }
    if (rc != 0) {
        finish_free(f);
    }
    return rc;
}

/* ---- rescue ---- */

typedef struct {
    tf_uc_t *uc;
    tf_store_count_cb cb;
    void *arg;
} rescue_t;

/* Turns the expired attempts into failures decided by each job's policy
 * ("lease_expired" or "timeout", retryable). */
static int rescue_decide(rescue_t *r, const tf_expired_t *list, size_t n) {
    finish_t *f = finish_new(r->uc, n);
    if (f == NULL) {
        return TF_ENOMEM;
    }
    f->count_cb = r->cb;
    f->arg = r->arg;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &f->items[i];
        const tf_expired_t *x = &list[i];
        it->tenant_id = strdup(x->tenant_id);
        it->job_id = strdup(x->job_id);
        it->token = strdup(x->lease_token);
        it->worker = strdup(x->worker);
        it->actor = strdup("system");
        it->error_type = strdup(x->timed_out ? "timeout" : "lease_expired");
        it->error_message =
            strdup(x->timed_out ? "the attempt ran past timeout_ms" : "the worker's lease expired");
        it->retryable = 1;
        if (!it->tenant_id || !it->job_id || !it->token || !it->worker || !it->actor ||
            !it->error_type || !it->error_message) {
            finish_free(f);
            return TF_ENOMEM;
        }
        decide_failure(f, it, &x->job);
    }
    int rc = write_all(f);
    if (rc != 0) {
        finish_free(f);
    }
    return rc;
}

static void expired_read(void *arg, int status, const tf_expired_t *list, size_t n) {
    rescue_t *r = arg;
    if (status == 0 && n > 0) {
        status = rescue_decide(r, list, n);
        if (status == 0) {
            free(r); /* the write answers */
            return;
        }
    }
    r->cb(r->arg, status, 0);
    free(r);
}

int tf_uc_rescue(tf_uc_t *uc, int limit, tf_store_count_cb cb, void *arg) {
    rescue_t *r = malloc(sizeof(*r));
    if (r == NULL) {
        return TF_ENOMEM;
    }
    *r = (rescue_t){.uc = uc, .cb = cb, .arg = arg};
    int rc = uc->store->expired(uc->store->ctx, limit, tf_uc_now(uc), expired_read, r);
    if (rc != 0) {
        free(r);
    }
    return rc;
}
