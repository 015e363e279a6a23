/*
 * work.c - claim, heartbeat, finish and maintenance of running jobs (see
 * work.h).  The SQL is in work_sql.h and migration 0003; the decisions
 * (fair share among tenants, what a failed attempt leads to) come from the
 * engine.  Loop thread of the pool used.
 */
#include "adapters/app/work.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "adapters/app/work_sql.h"
#include "adapters/json/jbuf.h"
#include "adapters/json/retry_json.h"
#include "engine/claim_plan.h"
#include "engine/error.h"
#include "engine/events.h"
#include "engine/job.h"
#include "engine/retry.h"
#include "engine/timefmt.h"

const tf_pg_prepared_t tf_work_prepared[] = {
    {"work_claim", TF_WORK_CLAIM_SQL},
    {"work_candidates", TF_WORK_CANDIDATES_SQL},
    {"work_decide", TF_WORK_DECIDE_SQL},
    {"work_finish", TF_WORK_FINISH_SQL},
    {"work_heartbeat", TF_WORK_HEARTBEAT_SQL},
    {"work_promote", TF_WORK_PROMOTE_SQL},
    {"work_rescue_scan", TF_WORK_RESCUE_SCAN_SQL},
    {"work_release", TF_WORK_RELEASE_SQL},
};
const size_t tf_work_prepared_count = sizeof(tf_work_prepared) / sizeof(tf_work_prepared[0]);

/* ---- claim ---- */

typedef struct {
    tf_app_loop_t *lp;
    tf_claim_req_t req;
    char queue[160], worker[160], tenant[37];
    char lease[16], max[16];
    tf_claim_cb cb;
    void *arg;
} claim_t;

static void claim_done(const tf_pg_reply_t *reply, void *arg) {
    claim_t *c = arg;
    c->cb(reply->status, reply->status == 0 ? reply->results[0] : NULL, c->arg);
    free(c);
}

/* Sends tf_claim with the given tenants/quotas/vtimes arrays (text). */
static int claim_send(claim_t *c, const char *tenants, const char *quotas, const char *vtimes,
                      const char *clock) {
    const char *values[8] = {
        c->queue, c->req.builtin ? "true" : "false", c->worker, c->lease, tenants, quotas, vtimes,
        clock};
    tf_pg_stmt_t stmt = {.prepared = "work_claim", .nparams = 8, .values = values};
    return tf_pg_submit(c->lp->pg, &stmt, 1, 0, claim_done, c);
}

/* Appends "%s" items into a PostgreSQL array literal. */
static void array_add(char *buf, size_t cap, size_t *len, const char *item) {
    int n = snprintf(buf + *len, cap - *len, "%s%s", *len > 1 ? "," : "", item);
    if (n > 0 && (size_t)n < cap - *len) {
        *len += (size_t)n;
    }
}

/* Plans the claim among the candidate tenants and sends it. */
static int claim_plan_and_send(claim_t *c, const PGresult *res) {
    size_t n = (size_t)PQntuples(res);
    tf_plan_tenant_t *tenants = calloc(n + 1, sizeof(*tenants));
    tf_plan_grant_t *grants = calloc(n + 1, sizeof(*grants));
    size_t cap = (n + 1) * 48 + 8;
    char *ids = malloc(cap), *quotas = malloc(cap), *vtimes = malloc(cap);
    int rc = (tenants && grants && ids && quotas && vtimes) ? 0 : TF_ENOMEM;
    double clock = n > 0 ? strtod(PQgetvalue(res, 0, 4), NULL) : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = tf_uuid_parse(PQgetvalue(res, (int)i, 0), &tenants[i].tenant_id);
        tenants[i].weight = atoi(PQgetvalue(res, (int)i, 1));
        tenants[i].backlog = atoi(PQgetvalue(res, (int)i, 2));
        tenants[i].cap_headroom = TF_PLAN_UNLIMITED; /* caps are applied under lock */
        tenants[i].rate_headroom = TF_PLAN_UNLIMITED;
        tenants[i].vtime = strtod(PQgetvalue(res, (int)i, 3), NULL);
    }
    tf_plan_input_t in = {.budget = c->req.max_jobs, .vclock = clock};
    tf_plan_result_t result;
    if (rc == 0) {
        rc = tf_claim_plan(&in, tenants, n, grants, &result);
    }
    size_t li = 0, lq = 0, lv = 0;
    if (rc == 0) {
        ids[li++] = '{', quotas[lq++] = '{', vtimes[lv++] = '{';
        for (size_t i = 0; i < n; i++) {
            if (grants[i].quota > 0) {
                char q[16], v[40];
                snprintf(q, sizeof(q), "%d", grants[i].quota);
                snprintf(v, sizeof(v), "%.17g", grants[i].vtime);
                array_add(ids, cap, &li, PQgetvalue(res, (int)i, 0));
                array_add(quotas, cap, &lq, q);
                array_add(vtimes, cap, &lv, v);
            }
        }
        memcpy(ids + li, "}", 2), memcpy(quotas + lq, "}", 2), memcpy(vtimes + lv, "}", 2);
        char clock_text[40];
        snprintf(clock_text, sizeof(clock_text), "%.17g", result.vclock);
        rc = claim_send(c, ids, quotas, vtimes, clock_text);
    }
    free(tenants), free(grants), free(ids), free(quotas), free(vtimes);
    return rc;
}

static void candidates_done(const tf_pg_reply_t *reply, void *arg) {
    claim_t *c = arg;
    int rc = reply->status;
    if (rc == 0 && PQntuples(reply->results[0]) == 0) {
        /* Nothing ready: answer with the empty result as it is. */
        c->cb(0, reply->results[0], c->arg);
        free(c);
        return;
    }
    if (rc == 0) {
        rc = claim_plan_and_send(c, reply->results[0]);
    }
    if (rc != 0) {
        c->cb(rc, NULL, c->arg);
        free(c);
    }
}

int tf_work_claim(tf_app_loop_t *lp, const tf_claim_req_t *req, tf_claim_cb cb, void *arg) {
    if (req->queue == NULL || req->worker_id == NULL || req->max_jobs < 1 || req->max_jobs > 1000 ||
        req->lease_ms < 1000 || req->lease_ms > 3600000) {
        return TF_EINVAL;
    }
    claim_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return TF_ENOMEM;
    }
    c->lp = lp;
    c->req = *req;
    c->cb = cb;
    c->arg = arg;
    snprintf(c->queue, sizeof(c->queue), "%s", req->queue);
    snprintf(c->worker, sizeof(c->worker), "%s", req->worker_id);
    snprintf(c->lease, sizeof(c->lease), "%d", req->lease_ms);
    snprintf(c->max, sizeof(c->max), "%d", req->max_jobs);
    int rc;
    if (req->tenant_id != NULL) {
        /* One tenant claims its own jobs: no planning, one round trip. */
        char tenants[48], quotas[24];
        snprintf(tenants, sizeof(tenants), "{%s}", req->tenant_id);
        snprintf(quotas, sizeof(quotas), "{%d}", req->max_jobs);
        rc = claim_send(c, tenants, quotas, NULL, "0");
    } else {
        const char *values[2] = {c->queue, req->builtin ? "true" : "false"};
        tf_pg_stmt_t stmt = {.prepared = "work_candidates", .nparams = 2, .values = values};
        rc = tf_pg_submit(lp->pg, &stmt, 1, 0, candidates_done, c);
    }
    if (rc != 0) {
        free(c);
    }
    return rc;
}

/* ---- finishing attempts (acks and rescues) ---- */

typedef struct {
    char *tenant_id, *job_id, *token, *worker, *actor;
    int ok;
    char *result, *error_type, *error_message;
    int retryable;
    /* the decision */
    const char *outcome; /* succeeded | retry | failed | dead */
    int64_t run_at_ms;
    int attempt_outcome;
    const char *reason;
    const char *event;
} item_t;

typedef struct {
    tf_app_loop_t *lp;
    item_t *items;
    size_t n;
    tf_ack_result_t *results;
    tf_ack_cb cb;
    void *arg;
} finish_t;

static void finish_free(finish_t *f) {
    for (size_t i = 0; i < f->n; i++) {
        item_t *it = &f->items[i];
        free(it->tenant_id), free(it->job_id), free(it->token), free(it->worker);
        free(it->actor), free(it->result), free(it->error_type), free(it->error_message);
    }
    free(f->items);
    free(f->results);
    free(f);
}

static char *dup_or_null(const char *s) {
    return s != NULL ? strdup(s) : NULL;
}

/* Fills the decision of a successful attempt. */
static void decide_ok(item_t *it) {
    it->outcome = "succeeded";
    it->attempt_outcome = 0;
    it->reason = "succeeded";
    it->event = tf_domain_event_name(TF_EVENT_JOB_SUCCEEDED);
}

/* Lets the retry policy decide what the failed attempt `attempt` leads to. */
static void decide_failure(tf_app_loop_t *lp, item_t *it, const char *policy_json, int attempt) {
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    json_t *v = policy_json != NULL ? json_loads(policy_json, 0, NULL) : NULL;
    if (v != NULL && tf_retry_policy_from_json(v, &policy, NULL, 0, NULL) != 0) {
        tf_retry_policy_init_default(&policy);
    }
    json_decref(v);
    tf_retry_decision_t d;
    int64_t now_ms = tf_app_now_ms();
    if (tf_retry_decide(&policy, attempt < 1 ? 1 : attempt, it->error_type, it->retryable != 0,
                        now_ms, &lp->uuids.rng, &d) != 0) {
        d.outcome = TF_RETRY_OUTCOME_FAILED;
    }
    tf_retry_policy_free(&policy);
    int timeout = strcmp(it->error_type, "timeout") == 0;
    int lease = strcmp(it->error_type, "lease_expired") == 0;
    it->attempt_outcome = timeout ? 3 : lease ? 4 : d.outcome == TF_RETRY_OUTCOME_FAILED ? 2 : 1;
    if (d.outcome == TF_RETRY_OUTCOME_RETRY) {
        it->outcome = "retry";
        it->run_at_ms = d.run_at_ms;
        it->reason = "retry_scheduled";
        it->event = NULL;
    } else if (d.outcome == TF_RETRY_OUTCOME_DEAD) {
        it->outcome = "dead";
        it->reason = "attempts_exhausted";
        it->event = tf_domain_event_name(TF_EVENT_JOB_DEAD);
    } else {
        it->outcome = "failed";
        it->reason = "non_retryable_error";
        it->event = tf_domain_event_name(TF_EVENT_JOB_FAILED);
    }
}

static void write_finish_row(tf_jbuf_t *b, const item_t *it, int ord) {
    char run_at[TF_TIME_STR_LEN + 1] = "";
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "ord");
    tf_jbuf_int(b, ord);
    tf_jbuf_key(b, "tenant_id");
    tf_jbuf_str(b, it->tenant_id);
    tf_jbuf_key(b, "id");
    tf_jbuf_str(b, it->job_id);
    tf_jbuf_key(b, "token");
    tf_jbuf_str(b, it->token);
    tf_jbuf_key(b, "worker");
    tf_jbuf_str(b, it->worker);
    tf_jbuf_key(b, "actor");
    tf_jbuf_str(b, it->actor);
    tf_jbuf_key(b, "outcome");
    tf_jbuf_str(b, it->outcome);
    tf_jbuf_key(b, "result");
    tf_jbuf_raw(b, it->ok ? it->result : NULL);
    tf_jbuf_key(b, "error_type");
    tf_jbuf_str(b, it->ok ? NULL : it->error_type);
    tf_jbuf_key(b, "error_message");
    tf_jbuf_str(b, it->ok ? NULL : it->error_message);
    tf_jbuf_key(b, "run_at");
    tf_jbuf_str(b, tf_time_format(it->run_at_ms, run_at) == 0 && it->run_at_ms > 0 ? run_at : NULL);
    tf_jbuf_key(b, "attempt_outcome");
    tf_jbuf_int(b, it->attempt_outcome);
    tf_jbuf_key(b, "reason");
    tf_jbuf_str(b, it->reason);
    tf_jbuf_key(b, "event");
    tf_jbuf_str(b, it->event);
    tf_jbuf_obj_close(b);
}

static void finish_done(const tf_pg_reply_t *reply, void *arg) {
    finish_t *f = arg;
    if (reply->status != 0 || (size_t)PQntuples(reply->results[0]) != f->n) {
        f->cb(reply->status != 0 ? reply->status : TF_EIO, NULL, 0, f->arg);
        finish_free(f);
        return;
    }
    const PGresult *res = reply->results[0];
    for (size_t i = 0; i < f->n; i++) {
        tf_ack_result_t *r = &f->results[i];
        if (!PQgetisnull(res, (int)i, 1)) {
            r->status = 0;
            r->state = tf_job_state_name((tf_job_state_t)atoi(PQgetvalue(res, (int)i, 1)));
        } else {
            r->status = strcmp(PQgetvalue(res, (int)i, 2), "t") == 0 ? TF_ESTALE : TF_ENOTFOUND;
            r->state = NULL;
        }
    }
    f->cb(0, f->results, f->n, f->arg);
    finish_free(f);
}

/* Sends the finish statement for every item (decisions made). */
static int finish_send(finish_t *f) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < f->n; i++) {
        write_finish_row(&b, &f->items[i], (int)i);
    }
    tf_jbuf_arr_close(&b);
    char *rows = NULL;
    size_t len = 0;
    if (tf_jbuf_finish(&b, &rows, &len) != 0) {
        return TF_ENOMEM;
    }
    const char *values[1] = {rows};
    tf_pg_stmt_t stmt = {.prepared = "work_finish", .nparams = 1, .values = values};
    int rc = tf_pg_submit(f->lp->pg, &stmt, 1, 0, finish_done, f);
    free(rows);
    return rc;
}

static void decide_done(const tf_pg_reply_t *reply, void *arg) {
    finish_t *f = arg;
    int rc = reply->status;
    for (int row = 0; rc == 0 && row < PQntuples(reply->results[0]); row++) {
        const PGresult *res = reply->results[0];
        size_t i = (size_t)atoi(PQgetvalue(res, row, 0));
        if (i >= f->n || f->items[i].ok) {
            continue;
        }
        const char *policy = PQgetisnull(res, row, 5) ? NULL : PQgetvalue(res, row, 5);
        decide_failure(f->lp, &f->items[i], policy, atoi(PQgetvalue(res, row, 4)));
    }
    if (rc == 0) {
        rc = finish_send(f);
    }
    if (rc != 0) {
        f->cb(rc, NULL, 0, f->arg);
        finish_free(f);
    }
}

/* Reads the failed jobs' policies (one round trip), then finishes. */
static int finish_start(finish_t *f) {
    size_t failures = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->items[i].ok) {
            decide_ok(&f->items[i]);
        } else {
            /* Decided once the job's policy is read; a job that is not
             * found keeps this and is reported as such. */
            failures++;
            f->items[i].outcome = "failed";
            f->items[i].attempt_outcome = 2;
            f->items[i].reason = "non_retryable_error";
        }
    }
    if (failures == 0) {
        return finish_send(f);
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < f->n; i++) {
        if (!f->items[i].ok) {
            tf_jbuf_obj_open(&b);
            tf_jbuf_key(&b, "ord");
            tf_jbuf_int(&b, (int64_t)i);
            tf_jbuf_key(&b, "tenant_id");
            tf_jbuf_str(&b, f->items[i].tenant_id);
            tf_jbuf_key(&b, "id");
            tf_jbuf_str(&b, f->items[i].job_id);
            tf_jbuf_obj_close(&b);
        }
    }
    tf_jbuf_arr_close(&b);
    char *rows = NULL;
    size_t len = 0;
    if (tf_jbuf_finish(&b, &rows, &len) != 0) {
        return TF_ENOMEM;
    }
    const char *values[1] = {rows};
    tf_pg_stmt_t stmt = {.prepared = "work_decide", .nparams = 1, .values = values};
    int rc = tf_pg_submit(f->lp->pg, &stmt, 1, 0, decide_done, f);
    free(rows);
    return rc;
}

static finish_t *finish_new(tf_app_loop_t *lp, size_t n, tf_ack_cb cb, void *arg) {
    finish_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->items = calloc(n, sizeof(*f->items));
    f->results = calloc(n, sizeof(*f->results));
    if (f->items == NULL || f->results == NULL) {
        free(f->items), free(f->results), free(f);
        return NULL;
    }
    f->lp = lp;
    f->n = n;
    f->cb = cb;
    f->arg = arg;
    return f;
}

int tf_work_ack(tf_app_loop_t *lp, const tf_ack_t *acks, size_t n, tf_ack_cb cb, void *arg) {
    if (n < 1 || n > 1000) {
        return TF_EINVAL;
    }
    finish_t *f = finish_new(lp, n, cb, arg);
    if (f == NULL) {
        return TF_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const tf_ack_t *a = &acks[i];
        item_t *it = &f->items[i];
        char actor[200];
        snprintf(actor, sizeof(actor), "worker:%s", a->worker_id != NULL ? a->worker_id : "");
        it->tenant_id = dup_or_null(a->tenant_id);
        it->job_id = dup_or_null(a->job_id);
        it->token = dup_or_null(a->lease_token);
        /* Without a worker id, the attempt and event name the lease holder. */
        it->worker = dup_or_null(a->worker_id);
        it->actor = a->worker_id != NULL ? strdup(actor) : NULL;
        it->ok = a->ok;
        it->result = a->ok ? strdup(a->result_json != NULL ? a->result_json : "null") : NULL;
        it->error_type = a->ok ? NULL : strdup(a->error_type != NULL ? a->error_type : "error");
        it->error_message = a->ok ? NULL : dup_or_null(a->error_message);
        it->retryable = a->retryable;
        if (it->job_id == NULL || it->token == NULL ||
            (a->worker_id != NULL && (it->worker == NULL || it->actor == NULL)) ||
            (a->ok ? it->result == NULL : it->error_type == NULL)) {
            rc = TF_ENOMEM;
        }
    }
    if (rc == 0) {
        rc = finish_start(f);
    }
    if (rc != 0) {
        finish_free(f);
    }
    return rc;
}

/* ---- heartbeat ---- */

typedef struct {
    tf_heartbeat_cb cb;
    void *arg;
} heartbeat_t;

static void heartbeat_done(const tf_pg_reply_t *reply, void *arg) {
    heartbeat_t *h = arg;
    if (reply->status != 0) {
        h->cb(reply->status, NULL, h->arg);
    } else if (!PQgetisnull(reply->results[0], 0, 0)) {
        h->cb(0, PQgetvalue(reply->results[0], 0, 0), h->arg);
    } else {
        int exists = strcmp(PQgetvalue(reply->results[0], 0, 1), "t") == 0;
        h->cb(exists ? TF_ESTALE : TF_ENOTFOUND, NULL, h->arg);
    }
    free(h);
}

int tf_work_heartbeat(tf_app_loop_t *lp, const char *tenant_id, const char *job_id,
                      const char *lease_token, int lease_ms, tf_heartbeat_cb cb, void *arg) {
    if (job_id == NULL || lease_token == NULL || lease_ms < 1000 || lease_ms > 3600000) {
        return TF_EINVAL;
    }
    heartbeat_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return TF_ENOMEM;
    }
    h->cb = cb;
    h->arg = arg;
    char lease[16];
    snprintf(lease, sizeof(lease), "%d", lease_ms);
    const char *values[4] = {tenant_id, job_id, lease_token, lease};
    tf_pg_stmt_t stmt = {.prepared = "work_heartbeat", .nparams = 4, .values = values};
    int rc = tf_pg_submit(lp->pg, &stmt, 1, 0, heartbeat_done, h);
    if (rc != 0) {
        free(h);
    }
    return rc;
}

/* ---- maintenance ---- */

typedef struct {
    tf_app_loop_t *lp;
    tf_work_count_cb cb;
    void *arg;
} count_t;

static void count_done(const tf_pg_reply_t *reply, void *arg) {
    count_t *c = arg;
    int n = reply->status == 0 ? atoi(PQgetvalue(reply->results[0], 0, 0)) : 0;
    c->cb(reply->status, n, c->arg);
    free(c);
}

static int submit_count(tf_app_loop_t *lp, const char *prepared, const char *const *values,
                        int nparams, tf_pg_cb done, tf_work_count_cb cb, void *arg) {
    count_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return TF_ENOMEM;
    }
    c->lp = lp;
    c->cb = cb;
    c->arg = arg;
    tf_pg_stmt_t stmt = {.prepared = prepared, .nparams = nparams, .values = values};
    int rc = tf_pg_submit(lp->pg, &stmt, 1, 0, done, c);
    if (rc != 0) {
        free(c);
    }
    return rc;
}

int tf_work_promote(tf_app_loop_t *lp, int limit, tf_work_count_cb cb, void *arg) {
    char text[16];
    snprintf(text, sizeof(text), "%d", limit);
    const char *values[1] = {text};
    return submit_count(lp, "work_promote", values, 1, count_done, cb, arg);
}

static void rescue_finished(int status, const tf_ack_result_t *results, size_t n, void *arg) {
    count_t *c = arg;
    int applied = 0;
    for (size_t i = 0; status == 0 && i < n; i++) {
        applied += results[i].status == 0;
    }
    c->cb(status, applied, c->arg);
    free(c);
}

/* Turns the expired attempts found by the scan into failures decided by
 * each job's policy ("lease_expired" or "timeout", retryable). */
static int rescue_finish(count_t *c, const PGresult *res) {
    size_t n = (size_t)PQntuples(res);
    finish_t *f = finish_new(c->lp, n, rescue_finished, c);
    if (f == NULL) {
        return TF_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        item_t *it = &f->items[i];
        int timed_out = strcmp(PQgetvalue(res, (int)i, 6), "t") == 0;
        it->tenant_id = strdup(PQgetvalue(res, (int)i, 0));
        it->job_id = strdup(PQgetvalue(res, (int)i, 1));
        it->token = strdup(PQgetvalue(res, (int)i, 2));
        it->worker = strdup(PQgetvalue(res, (int)i, 5));
        it->actor = strdup("system");
        it->error_type = strdup(timed_out ? "timeout" : "lease_expired");
        it->error_message =
            strdup(timed_out ? "the attempt ran past timeout_ms" : "the worker's lease expired");
        it->retryable = 1;
        if (!it->tenant_id || !it->job_id || !it->token || !it->worker || !it->actor ||
            !it->error_type || !it->error_message) {
            rc = TF_ENOMEM;
            break;
        }
        const char *policy = PQgetisnull(res, (int)i, 4) ? NULL : PQgetvalue(res, (int)i, 4);
        decide_failure(c->lp, it, policy, atoi(PQgetvalue(res, (int)i, 3)));
    }
    if (rc == 0) {
        rc = finish_send(f);
    }
    if (rc != 0) {
        finish_free(f);
    }
    return rc;
}

static void rescue_scanned(const tf_pg_reply_t *reply, void *arg) {
    count_t *c = arg;
    int rc = reply->status;
    if (rc == 0 && PQntuples(reply->results[0]) > 0) {
        rc = rescue_finish(c, reply->results[0]);
        if (rc == 0) {
            return;
        }
    }
    c->cb(rc, 0, c->arg);
    free(c);
}

int tf_work_rescue(tf_app_loop_t *lp, int limit, tf_work_count_cb cb, void *arg) {
    char text[16];
    snprintf(text, sizeof(text), "%d", limit);
    const char *values[1] = {text};
    return submit_count(lp, "work_rescue_scan", values, 1, rescue_scanned, cb, arg);
}

int tf_work_release(tf_app_loop_t *lp, const char *worker_id, const char *const *job_ids,
                    const char *const *lease_tokens, size_t n, tf_work_count_cb cb, void *arg) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < n; i++) {
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "id");
        tf_jbuf_str(&b, job_ids[i]);
        tf_jbuf_key(&b, "token");
        tf_jbuf_str(&b, lease_tokens[i]);
        tf_jbuf_obj_close(&b);
    }
    tf_jbuf_arr_close(&b);
    char *rows = NULL;
    size_t len = 0;
    if (tf_jbuf_finish(&b, &rows, &len) != 0) {
        return TF_ENOMEM;
    }
    const char *values[2] = {rows, worker_id};
    int rc = submit_count(lp, "work_release", values, 2, count_done, cb, arg);
    free(rows);
    return rc;
}
