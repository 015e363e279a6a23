/*
 * worker_claim.c - POST /v1/queues/{queue}/claim and its long poll (see
 * worker_api.h).
 *
 * A claim is checked whole (queue name, worker_id, max_jobs, lease_ms,
 * wait_ms; unknown fields refused by name) before it touches the database,
 * then becomes one tf_uc_claim() of jobs without a built-in executor: the
 * caller's tenant's, or every tenant's in fair-share order for the admin
 * token without TaskFlow-Tenant.
 *
 * Long poll.  Every claim of a loop that has a waitlist is tracked in it
 * from the start until it is answered, so closing the waitlist can wait for
 * the claims in flight (their jobs are leased: they must reach the client).
 * A claim that found nothing and still has time waits ("parked") with no
 * claim in flight; tf_waitlist_wake() and the waitlist's timer start its
 * next try.  At most one try is in flight per claim: a wake that arrives
 * during a try sets `wake_pending`, and the claim tries once more as soon
 * as the try came back empty.  The single timer fires at the earliest
 * deadline or periodic re-try (TF_CLAIM_RETRY_MS after the last try) of
 * the parked claims; a claim whose deadline passes while a try is in
 * flight is answered by that try.  A database failure of any try answers
 * the request with the error (503 when unavailable).
 *
 * The waitlist is freed when it was closed, its timer's close callback ran
 * and no claim is tracked any more.  Loop thread of the waitlist's loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/jobspec/job_input.h"
#include "adapters/api/worker_api.h"
#include "adapters/usecases/claim.h"
#include "engine/error.h"

#define TF_CLAIM_MAX_JOBS_DEFAULT 10
#define TF_CLAIM_LEASE_DEFAULT_MS 30000
#define TF_CLAIM_WAIT_MAX_MS 30000
#define TF_CLAIM_RETRY_MS 1000

#define TF_METRIC_CLAIMED "taskflow_jobs_claimed_total"
#define TF_METRIC_SUBMIT_TO_START "taskflow_submit_to_start_seconds"

typedef struct claim claim_t;

struct tf_waitlist {
    tf_api_loop_t *lp;
    uv_timer_t timer;
    int timer_init;    /* the timer exists (made with the first parked claim) */
    int timer_closed;  /* its close callback ran (or it never existed) */
    uint64_t timer_at; /* when the armed timer fires; 0: not armed */
    claim_t *head;     /* every tracked claim */
    int draining;      /* no more waiting: claims answer after one try */
    int closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

struct claim {
    claim_t *prev, *next; /* in w's list while tracked */
    tf_waitlist_t *w;     /* NULL: not tracked (no long poll) */
    tf_api_loop_t *lp;
    tf_http_req_t *req;
    tf_uc_claim_t creq; /* points into the strings below */
    char queue[TF_JOB_NAME_MAX + 1];
    char worker[TF_WORKER_ID_MAX + 1];
    char tenant[37];
    int wait_ms;
    uint64_t deadline;   /* uv_now() after which an empty try answers */
    uint64_t next_retry; /* uv_now() of the next periodic try while parked */
    int in_flight;       /* a tf_uc_claim() is running for it */
    int wake_pending;    /* woken during that try */
};

static void claim_try(claim_t *c);

/* ---- metrics ---- */

int tf__worker_claim_metrics(tf_metrics_t *metrics, tf_metric_family_t **claimed,
                             tf_metric_family_t **latency) {
    static const char *const labels[] = {"queue"};
    int rc = tf_metrics_counter(metrics, TF_METRIC_CLAIMED,
                                "Jobs handed to a worker (external claims and built-in runs)",
                                labels, 1, claimed);
    if (rc == 0) {
        rc = tf_metrics_histogram(metrics, TF_METRIC_SUBMIT_TO_START,
                                  "Seconds from a job's creation to the start of an attempt",
                                  labels, 1, NULL, 0, latency);
    }
    return rc;
}

/* Counts the claimed jobs and their submit-to-start latency. */
static void claim_metrics(const tf_api_loop_t *lp, const char *queue, const tf_claimed_job_t *jobs,
                          size_t n) {
    tf_metric_family_t *claimed = NULL, *latency = NULL;
    if (lp->env->metrics == NULL || n == 0 ||
        tf__worker_claim_metrics(lp->env->metrics, &claimed, &latency) != 0) {
        return;
    }
    const char *values[1] = {queue};
    tf_metric_t *count = tf_metric_get(claimed, values);
    tf_metric_t *seconds = tf_metric_get(latency, values);
    if (count != NULL) {
        tf_metric_add(count, (double)n);
    }
    int64_t now_ms = tf_clock_now(lp->uc->clock);
    for (size_t i = 0; seconds != NULL && i < n; i++) {
        int64_t ms = now_ms > jobs[i].created_at_ms ? now_ms - jobs[i].created_at_ms : 0;
        tf_metric_observe(seconds, (double)ms / 1000.0);
    }
}

/* ---- answering ---- */

static void key_text(tf_jbuf_t *b, const char *key, const char *value) {
    tf_jbuf_key(b, key);
    tf_jbuf_str(b, value);
}

static void key_int(tf_jbuf_t *b, const char *key, int64_t value) {
    tf_jbuf_key(b, key);
    tf_jbuf_int(b, value);
}

/* Writes one claimed job.  Returns 0 or TF_EIO for a time out of range. */
static int write_job(tf_jbuf_t *b, const tf_claimed_job_t *j) {
    tf_jbuf_obj_open(b);
    key_text(b, "id", j->id);
    key_text(b, "type", j->type);
    key_text(b, "queue", j->queue);
    key_text(b, "tenant_id", j->tenant_id);
    tf_jbuf_key(b, "payload");
    tf_jbuf_raw(b, j->payload != NULL ? j->payload : "{}");
    key_int(b, "attempt", j->attempt);
    key_int(b, "max_attempts", j->max_attempts);
    key_text(b, "lease_token", j->lease_token);
    tf_jbuf_key(b, "lease_expires_at");
    int rc = tf_api_time(b, j->lease_expires_at_ms);
    key_int(b, "timeout_ms", j->timeout_ms >= 0 ? j->timeout_ms : TF_JOB_TIMEOUT_DEFAULT_MS);
    key_text(b, "correlation_id", j->correlation_id);
    tf_jbuf_key(b, "created_at");
    rc |= tf_api_time(b, j->created_at_ms);
    tf_jbuf_obj_close(b);
    return rc != 0 ? TF_EIO : 0;
}

/* Answers 200 {"jobs": [...]}. */
static void answer_jobs(claim_t *c, const tf_claimed_job_t *jobs, size_t n) {
    tf_jbuf_t b;
    int rc = 0;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "jobs");
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = write_job(&b, &jobs[i]);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    claim_metrics(c->lp, c->queue, jobs, n);
    if (rc != 0) {
        tf_jbuf_free(&b);
        tf_log_error(c->lp->env->log, "cannot show claimed jobs", TF_LF_STR("queue", c->queue),
                     TF_LF_INT("jobs", (long long)n));
        tf_http_respond_error(c->req, 500, "internal", "cannot show the claimed jobs", NULL);
        return;
    }
    tf_api_respond_jbuf(c->req, 200, &b);
}

/* ---- the waitlist ---- */

static void waitlist_maybe_free(tf_waitlist_t *w) {
    if (w->closing && w->timer_closed && w->head == NULL) {
        void (*cb)(void *) = w->closed_cb;
        void *arg = w->closed_arg;
        free(w);
        if (cb != NULL) {
            cb(arg);
        }
    }
}

static void waitlist_track(tf_waitlist_t *w, claim_t *c) {
    c->w = w;
    c->prev = NULL;
    c->next = w->head;
    if (w->head != NULL) {
        w->head->prev = c;
    }
    w->head = c;
}

/* Forgets an answered claim and frees it. */
static void claim_free(claim_t *c) {
    tf_waitlist_t *w = c->w;
    if (w != NULL) {
        if (c->prev != NULL) {
            c->prev->next = c->next;
        } else {
            w->head = c->next;
        }
        if (c->next != NULL) {
            c->next->prev = c->prev;
        }
    }
    free(c);
    if (w != NULL) {
        waitlist_maybe_free(w);
    }
}

static void claim_answer(claim_t *c, const tf_claimed_job_t *jobs, size_t n) {
    answer_jobs(c, jobs, n);
    claim_free(c);
}

static void waitlist_on_timer(uv_timer_t *timer);

/* Makes sure the timer fires by `at` (uv_now() milliseconds). */
static void waitlist_arm(tf_waitlist_t *w, uint64_t at) {
    if (!w->timer_init || w->draining || w->closing || (w->timer_at != 0 && w->timer_at <= at)) {
        return;
    }
    uint64_t now = uv_now(w->timer.loop);
    w->timer_at = at;
    uv_timer_start(&w->timer, waitlist_on_timer, at > now ? at - now : 0, 0);
}

/* Runs what is due: answers parked claims past their deadline, starts the
 * periodic try of the others, and re-arms for the earliest next event. */
static void waitlist_on_timer(uv_timer_t *timer) {
    tf_waitlist_t *w = timer->data;
    uint64_t now = uv_now(timer->loop), next = 0;
    w->timer_at = 0;
    claim_t *c = w->head;
    while (c != NULL) {
        claim_t *after = c->next;
        if (!c->in_flight) {
            if (now >= c->deadline) {
                claim_answer(c, NULL, 0);
            } else if (now >= c->next_retry) {
                claim_try(c);
            } else {
                uint64_t due = c->deadline < c->next_retry ? c->deadline : c->next_retry;
                next = next == 0 || due < next ? due : next;
            }
        }
        c = after;
    }
    if (next != 0) {
        waitlist_arm(w, next);
    }
}

/* An empty try of a claim that may wait: it waits for a wake, the timer or
 * its deadline. */
static void claim_park(claim_t *c) {
    tf_waitlist_t *w = c->w;
    if (!w->timer_init) {
        uv_timer_init(tf_http_req_loop(c->req), &w->timer);
        w->timer.data = w;
        w->timer_init = 1;
        w->timer_closed = 0;
    }
    c->next_retry = uv_now(w->timer.loop) + TF_CLAIM_RETRY_MS;
    waitlist_arm(w, c->deadline < c->next_retry ? c->deadline : c->next_retry);
}

static void claim_done(void *arg, int status, const tf_claimed_job_t *jobs, size_t n) {
    claim_t *c = arg;
    c->in_flight = 0;
    if (status != 0) {
        tf_api_respond_status(c->req, status);
        claim_free(c);
        return;
    }
    tf_waitlist_t *w = c->w;
    if (n > 0 || w == NULL || w->draining || w->closing || c->wait_ms == 0 ||
        uv_now(tf_http_req_loop(c->req)) >= c->deadline) {
        claim_answer(c, jobs, n);
        return;
    }
    if (c->wake_pending) {
        c->wake_pending = 0;
        claim_try(c);
        return;
    }
    claim_park(c);
}

/* Starts one try; answers the request itself when it cannot start. */
static void claim_try(claim_t *c) {
    if (tf_http_req_peer_gone(c->req)) {
        /* The worker went away while parked: claim nothing for it. */
        tf_api_respond_status(c->req, TF_ECANCELED);
        claim_free(c);
        return;
    }
    int rc = tf_uc_claim(c->lp->uc, &c->creq, claim_done, c);
    if (rc != 0) {
        tf_api_respond_status(c->req, rc);
        claim_free(c);
        return;
    }
    c->in_flight = 1;
    c->wake_pending = 0;
}

int tf_waitlist_create(tf_api_loop_t *lp, tf_waitlist_t **out) {
    tf_waitlist_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return TF_ENOMEM;
    }
    w->lp = lp;
    w->timer_closed = 1;
    *out = w;
    return 0;
}

void tf_waitlist_wake(tf_waitlist_t *w, const char *queue) {
    if (w == NULL || w->draining || w->closing) {
        return;
    }
    size_t qlen = queue != NULL ? strlen(queue) : 0;
    static const char builtin[] = "|builtin";
    if (qlen >= sizeof(builtin) - 1 && strcmp(queue + qlen - (sizeof(builtin) - 1), builtin) == 0) {
        return;
    }
    claim_t *c = w->head;
    while (c != NULL) {
        claim_t *after = c->next;
        if (queue == NULL || strcmp(c->queue, queue) == 0) {
            if (c->in_flight) {
                c->wake_pending = 1;
            } else {
                claim_try(c);
            }
        }
        c = after;
    }
}

/* Answers every parked claim (no try in flight) with an empty list. */
static void waitlist_answer_parked(tf_waitlist_t *w) {
    claim_t *c = w->head;
    while (c != NULL) {
        claim_t *after = c->next;
        if (!c->in_flight) {
            answer_jobs(c, NULL, 0);
            if (c->prev != NULL) {
                c->prev->next = c->next;
            } else {
                w->head = c->next;
            }
            if (c->next != NULL) {
                c->next->prev = c->prev;
            }
            free(c);
        }
        c = after;
    }
}

void tf_waitlist_drain(tf_waitlist_t *w) {
    if (w->draining || w->closing) {
        return;
    }
    w->draining = 1;
    if (w->timer_init) {
        uv_timer_stop(&w->timer);
        w->timer_at = 0;
    }
    waitlist_answer_parked(w);
}

static void waitlist_timer_closed(uv_handle_t *handle) {
    tf_waitlist_t *w = handle->data;
    w->timer_closed = 1;
    waitlist_maybe_free(w);
}

void tf_waitlist_close(tf_waitlist_t *w, void (*closed_cb)(void *arg), void *arg) {
    if (w->closing) {
        return;
    }
    w->closing = 1;
    w->closed_cb = closed_cb;
    w->closed_arg = arg;
    /* Keep the waitlist alive while parked claims are answered. */
    int timer = w->timer_init;
    w->timer_init = 0;
    w->timer_closed = !timer;
    waitlist_answer_parked(w);
    if (timer) {
        uv_close((uv_handle_t *)&w->timer, waitlist_timer_closed);
        return;
    }
    waitlist_maybe_free(w);
}

/* ---- POST /v1/queues/{queue}/claim ---- */

/* Reads the claim body into `c`.  Returns 0, or TF_EINVAL with `err`. */
static int read_claim(const json_t *body, claim_t *c, tf_verr_t *err) {
    static const char *const allowed[] = {"worker_id", "max_jobs", "lease_ms", "wait_ms", NULL};
    int max_jobs = TF_CLAIM_MAX_JOBS_DEFAULT, lease_ms = TF_CLAIM_LEASE_DEFAULT_MS, wait_ms = 0;
    int rc = tf__worker_check_fields(body, "", allowed, err);
    if (rc == 0) {
        rc = tf__worker_read_id(body, "", "worker_id", 1, c->worker, err);
    }
    if (rc == 0) {
        rc = tf__worker_read_int(body, "", "max_jobs", 1, TF_CLAIM_MAX_JOBS, &max_jobs, err);
    }
    if (rc == 0) {
        rc = tf__worker_read_int(body, "", "lease_ms", TF_LEASE_MIN_MS, TF_LEASE_MAX_MS, &lease_ms,
                                 err);
    }
    if (rc == 0) {
        rc = tf__worker_read_int(body, "", "wait_ms", 0, TF_CLAIM_WAIT_MAX_MS, &wait_ms, err);
    }
    c->creq.max_jobs = max_jobs;
    c->creq.lease_ms = lease_ms;
    c->wait_ms = wait_ms;
    return rc;
}

void tf__worker_claim(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    const char *queue = tf_http_req_param(req, "queue");
    if (queue == NULL || !tf_queue_name_valid(queue)) {
        tf_api_invalid(req, "queue", "queue must be 1 to 128 letters, digits and _ . : -");
        return;
    }
    int answered = 0;
    json_t *body = tf_api_body(req, 1, &answered);
    if (body == NULL) {
        if (!answered) {
            tf_api_invalid(req, "body", "a JSON object with worker_id is required");
        }
        return;
    }
    claim_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        json_decref(body);
        tf_http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    tf_verr_t err;
    int rc = read_claim(body, c, &err);
    json_decref(body);
    if (rc != 0) {
        free(c);
        tf_api_invalid(req, err.field, err.message);
        return;
    }
    snprintf(c->queue, sizeof(c->queue), "%s", queue);
    snprintf(c->tenant, sizeof(c->tenant), "%s", who->tenant_id);
    c->lp = lp;
    c->req = req;
    c->creq.queue = c->queue;
    c->creq.builtin = 0;
    c->creq.tenant_id = c->tenant[0] != '\0' ? c->tenant : NULL;
    c->creq.worker_id = c->worker;
    c->deadline = uv_now(tf_http_req_loop(req)) + (uint64_t)c->wait_ms;
    if (lp->waiters != NULL && !lp->waiters->closing) {
        waitlist_track(lp->waiters, c);
    }
    claim_try(c);
}

int tf_api_init_metrics(tf_metrics_t *metrics) {
    tf_metric_family_t *claimed, *latency;
    return metrics != NULL ? tf__worker_claim_metrics(metrics, &claimed, &latency) : 0;
}
