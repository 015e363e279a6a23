/*
 * worker_claim.c - POST /v1/queues/{queue}/claim and its long poll (see
 * worker_api.h).
 *
 * A claim is checked whole (queue name, worker_id, max_jobs, lease_ms,
 * wait_ms; unknown fields refused by name) before it touches the database,
 * then becomes one tf_work_claim() of jobs without a built-in executor: the
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

#include "adapters/app/api.h"
#include "adapters/app/job_input.h"
#include "adapters/app/work.h"
#include "adapters/app/worker_api.h"
#include "adapters/pg/pgtime.h"
#include "engine/error.h"

#define TF_CLAIM_MAX_JOBS_DEFAULT 10
#define TF_CLAIM_MAX_JOBS_MAX 1000
#define TF_CLAIM_LEASE_DEFAULT_MS 30000
#define TF_CLAIM_LEASE_MIN_MS 1000
#define TF_CLAIM_LEASE_MAX_MS 3600000
#define TF_CLAIM_WAIT_MAX_MS 30000
#define TF_CLAIM_RETRY_MS 1000

#define TF_METRIC_CLAIMED "taskflow_jobs_claimed_total"
#define TF_METRIC_SUBMIT_TO_START "taskflow_submit_to_start_seconds"

typedef struct claim claim_t;

struct tf_waitlist {
    tf_app_loop_t *lp;
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
    tf_app_loop_t *lp;
    tf_http_req_t *req;
    tf_claim_req_t creq; /* points into the strings below */
    char queue[TF_JOB_NAME_MAX + 1];
    char worker[TF_WORKER_ID_MAX + 1];
    char tenant[37];
    int wait_ms;
    uint64_t deadline;   /* uv_now() after which an empty try answers */
    uint64_t next_retry; /* uv_now() of the next periodic try while parked */
    int in_flight;       /* a tf_work_claim() is running for it */
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

/* Counts the claimed rows of `res` and their submit-to-start latency. */
static void claim_metrics(const tf_app_env_t *env, const char *queue, const PGresult *res) {
    tf_metric_family_t *claimed = NULL, *latency = NULL;
    int n = PQntuples(res);
    if (env->metrics == NULL || n == 0 ||
        tf__worker_claim_metrics(env->metrics, &claimed, &latency) != 0) {
        return;
    }
    const char *values[1] = {queue};
    tf_metric_t *count = tf_metric_get(claimed, values);
    tf_metric_t *seconds = tf_metric_get(latency, values);
    if (count != NULL) {
        tf_metric_add(count, (double)n);
    }
    int64_t now_ms = tf_app_now_ms(), created_ms = 0;
    for (int row = 0; seconds != NULL && row < n; row++) {
        if (tf_pgtime_parse(PQgetvalue(res, row, TF_CLAIM_COL_CREATED_AT), &created_ms) == 0) {
            int64_t ms = now_ms > created_ms ? now_ms - created_ms : 0;
            tf_metric_observe(seconds, (double)ms / 1000.0);
        }
    }
}

/* ---- answering ---- */

static void text_or_null(tf_jbuf_t *b, const PGresult *res, int row, int col) {
    if (PQgetisnull(res, row, col)) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_strn(b, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
    }
}

static void key_text(tf_jbuf_t *b, const char *key, const PGresult *res, int row, int col) {
    tf_jbuf_key(b, key);
    text_or_null(b, res, row, col);
}

static void key_int(tf_jbuf_t *b, const char *key, const PGresult *res, int row, int col,
                    int64_t fallback) {
    tf_jbuf_key(b, key);
    tf_jbuf_int(b, PQgetisnull(res, row, col) ? fallback
                                              : strtoll(PQgetvalue(res, row, col), NULL, 10));
}

/* Writes one claimed job.  Returns 0 or TF_EIO for a bad timestamp. */
static int write_job(tf_jbuf_t *b, const PGresult *res, int row) {
    char lease[TF_TIME_STR_LEN + 1], created[TF_TIME_STR_LEN + 1];
    if (tf_pgtime_to_rfc3339(PQgetvalue(res, row, TF_CLAIM_COL_LEASE_EXPIRES), lease) != 0 ||
        tf_pgtime_to_rfc3339(PQgetvalue(res, row, TF_CLAIM_COL_CREATED_AT), created) != 0) {
        return TF_EIO;
    }
    tf_jbuf_obj_open(b);
    key_text(b, "id", res, row, TF_CLAIM_COL_ID);
    key_text(b, "type", res, row, TF_CLAIM_COL_TYPE);
    key_text(b, "queue", res, row, TF_CLAIM_COL_QUEUE);
    key_text(b, "tenant_id", res, row, TF_CLAIM_COL_TENANT);
    tf_jbuf_key(b, "payload");
    if (PQgetisnull(res, row, TF_CLAIM_COL_PAYLOAD)) {
        tf_jbuf_raw(b, "{}");
    } else {
        tf_jbuf_rawn(b, PQgetvalue(res, row, TF_CLAIM_COL_PAYLOAD),
                     (size_t)PQgetlength(res, row, TF_CLAIM_COL_PAYLOAD));
    }
    key_int(b, "attempt", res, row, TF_CLAIM_COL_ATTEMPT, 1);
    key_int(b, "max_attempts", res, row, TF_CLAIM_COL_MAX_ATTEMPTS, 1);
    key_text(b, "lease_token", res, row, TF_CLAIM_COL_LEASE_TOKEN);
    tf_jbuf_key(b, "lease_expires_at");
    tf_jbuf_str(b, lease);
    key_int(b, "timeout_ms", res, row, TF_CLAIM_COL_TIMEOUT_MS, TF_JOB_TIMEOUT_DEFAULT_MS);
    key_text(b, "correlation_id", res, row, TF_CLAIM_COL_CORRELATION);
    tf_jbuf_key(b, "created_at");
    tf_jbuf_str(b, created);
    tf_jbuf_obj_close(b);
    return 0;
}

/* Answers 200 {"jobs": [...]} with the rows of `res` (NULL: none). */
static void answer_jobs(claim_t *c, const PGresult *res) {
    tf_jbuf_t b;
    int rc = 0, n = res != NULL ? PQntuples(res) : 0;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "jobs");
    tf_jbuf_arr_open(&b);
    for (int row = 0; row < n && rc == 0; row++) {
        rc = write_job(&b, res, row);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    if (n > 0) {
        claim_metrics(c->lp->env, c->queue, res);
    }
    if (rc != 0) {
        tf_jbuf_free(&b);
        tf_log_error(c->lp->env->log, "cannot show claimed jobs", TF_LF_STR("queue", c->queue),
                     TF_LF_INT("jobs", n));
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

static void claim_answer(claim_t *c, const PGresult *res) {
    answer_jobs(c, res);
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
                claim_answer(c, NULL);
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

static void claim_done(int status, const PGresult *res, void *arg) {
    claim_t *c = arg;
    c->in_flight = 0;
    if (status != 0) {
        tf__worker_respond_error(c->req, status);
        claim_free(c);
        return;
    }
    tf_waitlist_t *w = c->w;
    if (PQntuples(res) > 0 || w == NULL || w->draining || w->closing || c->wait_ms == 0 ||
        uv_now(tf_http_req_loop(c->req)) >= c->deadline) {
        claim_answer(c, res);
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
        tf__worker_respond_error(c->req, TF_ECANCELED);
        claim_free(c);
        return;
    }
    int rc = tf_work_claim(c->lp, &c->creq, claim_done, c);
    if (rc != 0) {
        tf__worker_respond_error(c->req, rc);
        claim_free(c);
        return;
    }
    c->in_flight = 1;
    c->wake_pending = 0;
}

int tf_waitlist_create(tf_app_loop_t *lp, tf_waitlist_t **out) {
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
            answer_jobs(c, NULL);
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
        rc = tf__worker_read_int(body, "", "max_jobs", 1, TF_CLAIM_MAX_JOBS_MAX, &max_jobs, err);
    }
    if (rc == 0) {
        rc = tf__worker_read_int(body, "", "lease_ms", TF_CLAIM_LEASE_MIN_MS, TF_CLAIM_LEASE_MAX_MS,
                                 &lease_ms, err);
    }
    if (rc == 0) {
        rc = tf__worker_read_int(body, "", "wait_ms", 0, TF_CLAIM_WAIT_MAX_MS, &wait_ms, err);
    }
    c->creq.max_jobs = max_jobs;
    c->creq.lease_ms = lease_ms;
    c->wait_ms = wait_ms;
    return rc;
}

static void claim_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
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
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
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

static void handle_claim(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT_OR_ADMIN, claim_authed, data);
}

int tf__worker_claim_register(tf_router_t *router, const tf_app_env_t *env) {
    if (env->metrics != NULL) {
        tf_metric_family_t *claimed, *latency;
        int rc = tf__worker_claim_metrics(env->metrics, &claimed, &latency);
        if (rc != 0) {
            return rc;
        }
    }
    return tf_router_add(router, "POST", "/v1/queues/{queue}/claim", handle_claim, (void *)env);
}
