/*
 * store_work.c - the running-jobs part of the Postgres store
 * (engine/store.h): candidates and claims, the retry decision's inputs,
 * finishing attempts with their outbox events and dependency release,
 * heartbeats, promotion, rescue, release, and what the runner and the
 * gauges poll.  Statements in work_sql.h.  Loop thread of the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "adapters/json/jbuf.h"
#include "adapters/json/retry_json.h"
#include "adapters/pg/store_internal.h"
#include "adapters/pg/work_sql.h"
#include "engine/error.h"

const tf_pg_prepared_t tf__pg_work_prepared[] = {
    {"work_claim", TF_SQL_CLAIM},
    {"work_candidates", TF_SQL_CANDIDATES},
    {"work_failed_jobs", TF_SQL_FAILED_JOBS},
    {"work_finish", TF_SQL_FINISH},
    {"work_heartbeat", TF_SQL_HEARTBEAT},
    {"work_promote", TF_SQL_PROMOTE},
    {"work_expired", TF_SQL_EXPIRED},
    {"work_release", TF_SQL_RELEASE},
    {"work_next_due", TF_SQL_NEXT_DUE},
    {"work_builtin_queues", TF_SQL_BUILTIN_QUEUES},
    {"work_ping", TF_SQL_PING},
    {"work_gauges", TF_SQL_GAUGES},
};
const size_t tf__pg_work_prepared_count =
    sizeof(tf__pg_work_prepared) / sizeof(tf__pg_work_prepared[0]);

/* A stored retry policy (JSON text, NULL: none) into `out`; what cannot be
 * read gives the defaults, as a job with no policy has. */
static void decode_policy(const char *text, tf_retry_policy_t *out) {
    tf_retry_policy_init_default(out);
    json_t *v = text != NULL ? json_loads(text, 0, NULL) : NULL;
    if (v != NULL && tf_retry_policy_from_json(v, out, NULL, 0, NULL) != 0) {
        tf_retry_policy_init_default(out);
    }
    json_decref(v);
}

/* ---- claims ---- */

static int decode_candidate(const PGresult *res, int row, void *item) {
    *(tf_candidate_t *)item = (tf_candidate_t){
        .tenant_id = PQgetvalue(res, row, 0),
        .weight = (int)tf__pg_int(res, row, 1, 1),
        .backlog = (int)tf__pg_int(res, row, 2, 0),
        .vtime = strtod(PQgetvalue(res, row, 3), NULL),
    };
    return 0;
}

static void candidates_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_candidate_t *list = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*list), decode_candidate, (void **)&list, &n);
    double vclock = n > 0 ? strtod(PQgetvalue(reply->results[0], 0, 4), NULL) : 0;
    ((tf_store_candidates_cb)p->cb)(p->arg, rc, list, n, vclock);
    free(list);
    free(p);
}

static int candidates(void *ctx, const char *queue, int builtin, tf_store_candidates_cb cb,
                      void *arg) {
    const char *values[2] = {queue, builtin ? "true" : "false"};
    return tf__pg_run_pending(ctx, "work_candidates", values, 2, candidates_done,
                              (void (*)(void))cb, arg);
}

static int decode_claimed(const PGresult *res, int row, void *item) {
    tf_claimed_job_t *j = item;
    *j = (tf_claimed_job_t){
        .id = tf__pg_text(res, row, TF_CLAIM_COL_ID),
        .tenant_id = tf__pg_text(res, row, TF_CLAIM_COL_TENANT),
        .queue = tf__pg_text(res, row, TF_CLAIM_COL_QUEUE),
        .type = tf__pg_text(res, row, TF_CLAIM_COL_TYPE),
        .payload = tf__pg_text(res, row, TF_CLAIM_COL_PAYLOAD),
        .attempt = (int)tf__pg_int(res, row, TF_CLAIM_COL_ATTEMPT, 1),
        .max_attempts = (int)tf__pg_int(res, row, TF_CLAIM_COL_MAX_ATTEMPTS, 1),
        .lease_token = tf__pg_text(res, row, TF_CLAIM_COL_LEASE_TOKEN),
        .timeout_ms = tf__pg_int(res, row, TF_CLAIM_COL_TIMEOUT_MS, -1),
        .executor = tf__pg_text(res, row, TF_CLAIM_COL_EXECUTOR),
        .executor_kind = tf__pg_text(res, row, TF_CLAIM_COL_EXECUTOR_KIND),
        .correlation_id = tf__pg_text(res, row, TF_CLAIM_COL_CORRELATION),
        .signing_secret_hex = tf__pg_text(res, row, TF_CLAIM_COL_SIGNING_SECRET),
    };
    int rc = tf__pg_time(res, row, TF_CLAIM_COL_LEASE_EXPIRES, &j->lease_expires_at_ms);
    return rc != 0 ? rc : tf__pg_time(res, row, TF_CLAIM_COL_CREATED_AT, &j->created_at_ms);
}

static void claim_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_claimed_job_t *jobs = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*jobs), decode_claimed, (void **)&jobs, &n);
    ((tf_store_claimed_cb)p->cb)(p->arg, rc, jobs, n);
    free(jobs);
    free(p);
}

/* Appends "%s" items to a PostgreSQL array literal being built in `buf`. */
static void array_add(char *buf, size_t cap, size_t *len, const char *item) {
    int n = snprintf(buf + *len, cap - *len, "%s%s", *len > 1 ? "," : "", item);
    if (n > 0 && (size_t)n < cap - *len) {
        *len += (size_t)n;
    }
}

static int claim(void *ctx, const tf_claim_t *c, tf_store_claimed_cb cb, void *arg) {
    size_t cap = (c->ntenants + 1) * 48 + 8;
    char *ids = malloc(cap), *quotas = malloc(cap), *vtimes = c->vtimes ? malloc(cap) : NULL;
    int rc = ids != NULL && quotas != NULL && (c->vtimes == NULL || vtimes != NULL) ? 0 : TF_ENOMEM;
    if (rc == 0) {
        size_t li = 0, lq = 0, lv = 0;
        ids[li++] = '{', quotas[lq++] = '{';
        if (vtimes != NULL) {
            vtimes[lv++] = '{';
        }
        for (size_t i = 0; i < c->ntenants; i++) {
            char q[16], v[40];
            snprintf(q, sizeof(q), "%d", c->quotas[i]);
            array_add(ids, cap, &li, c->tenants[i]);
            array_add(quotas, cap, &lq, q);
            if (vtimes != NULL) {
                snprintf(v, sizeof(v), "%.17g", c->vtimes[i]);
                array_add(vtimes, cap, &lv, v);
            }
        }
        memcpy(ids + li, "}", 2), memcpy(quotas + lq, "}", 2);
        if (vtimes != NULL) {
            memcpy(vtimes + lv, "}", 2);
        }
        char lease[16], clock[40];
        tf__pg_time_t now;
        snprintf(lease, sizeof(lease), "%d", c->lease_ms);
        snprintf(clock, sizeof(clock), "%.17g", c->vclock);
        const char *values[9] = {
            c->queue, c->builtin ? "true" : "false",     c->worker_id, lease, ids, quotas, vtimes,
            clock,    tf__pg_time_param(c->now_ms, &now)};
        rc = tf__pg_run_pending(ctx, "work_claim", values, 9, claim_done, (void (*)(void))cb, arg);
    }
    free(ids), free(quotas), free(vtimes);
    return rc;
}

/* ---- the retry decision's inputs ---- */

static int decode_failed(const PGresult *res, int row, void *item) {
    tf_failed_job_t *job = item;
    job->found = !PQgetisnull(res, row, 1);
    job->attempts = (int)tf__pg_int(res, row, 2, 1);
    decode_policy(tf__pg_text(res, row, 3), &job->policy);
    return 0;
}

static void failed_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_failed_job_t *jobs = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*jobs), decode_failed, (void **)&jobs, &n);
    ((tf_store_failed_cb)p->cb)(p->arg, rc, jobs, n);
    for (size_t i = 0; i < n; i++) {
        tf_retry_policy_free(&jobs[i].policy);
    }
    free(jobs);
    free(p);
}

static int failed_jobs(void *ctx, const char *const *tenants, const char *const *ids, size_t n,
                       tf_store_failed_cb cb, void *arg) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < n; i++) {
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "ord");
        tf_jbuf_int(&b, (int64_t)i);
        tf_jbuf_key(&b, "tenant_id");
        tf_jbuf_str(&b, tenants != NULL ? tenants[i] : NULL);
        tf_jbuf_key(&b, "id");
        tf_jbuf_str(&b, ids[i]);
        tf_jbuf_obj_close(&b);
    }
    tf_jbuf_arr_close(&b);
    char *rows = tf__pg_jbuf_text(&b);
    if (rows == NULL) {
        return TF_ENOMEM;
    }
    const char *values[1] = {rows};
    int rc = tf__pg_run_pending(ctx, "work_failed_jobs", values, 1, failed_done, (void (*)(void))cb,
                                arg);
    free(rows);
    return rc;
}

/* ---- finishing attempts ---- */

typedef struct {
    tf_store_finished_cb cb;
    void *arg;
    size_t n;
} finish_op_t;

static const char *dependants_text(tf_dependants_action_t action) {
    return action == TF_DEPENDANTS_RELEASE  ? "release"
           : action == TF_DEPENDANTS_CANCEL ? "cancel"
                                            : NULL;
}

static void write_finish_row(tf_jbuf_t *b, const tf_finish_t *it, int ord) {
    char run_at[TF_TIME_STR_LEN + 1], ended_at[TF_TIME_STR_LEN + 1];
    int ok = it->to == TF_JOB_SUCCEEDED;
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "ord");
    tf_jbuf_int(b, ord);
    tf_jbuf_key(b, "tenant_id");
    tf_jbuf_str(b, it->tenant_id);
    tf_jbuf_key(b, "id");
    tf_jbuf_str(b, it->job_id);
    tf_jbuf_key(b, "token");
    tf_jbuf_str(b, it->lease_token);
    tf_jbuf_key(b, "worker");
    tf_jbuf_str(b, it->worker);
    tf_jbuf_key(b, "actor");
    tf_jbuf_str(b, it->actor);
    tf_jbuf_key(b, "to_state");
    tf_jbuf_int(b, it->to);
    tf_jbuf_key(b, "result");
    tf_jbuf_raw(b, ok ? (it->result != NULL ? it->result : "null") : NULL);
    tf_jbuf_key(b, "error_type");
    tf_jbuf_str(b, ok ? NULL : it->error_type);
    tf_jbuf_key(b, "error_message");
    tf_jbuf_str(b, ok ? NULL : it->error_message);
    tf_jbuf_key(b, "run_at");
    tf_jbuf_str(b, it->to == TF_JOB_SCHEDULED && tf_time_format(it->run_at_ms, run_at) == 0 ? run_at
                                                                                            : NULL);
    tf_jbuf_key(b, "ended_at");
    tf_jbuf_str(b, it->ended_at_ms > 0 && tf_time_format(it->ended_at_ms, ended_at) == 0 ? ended_at
                                                                                         : NULL);
    tf_jbuf_key(b, "attempt_outcome");
    tf_jbuf_int(b, it->attempt_outcome);
    tf_jbuf_key(b, "reason");
    tf_jbuf_str(b, it->reason);
    tf_jbuf_key(b, "dependants");
    tf_jbuf_str(b, dependants_text(it->dependants));
    tf_jbuf_key(b, "executor_version");
    if (it->executor_version > 0) {
        tf_jbuf_int(b, it->executor_version);
    } else {
        tf_jbuf_null(b);
    }
    tf_jbuf_obj_close(b);
}

/* The jobs the attempts created, as the guarded submit's rows; *rows NULL
 * when there are none. */
static int children_text(const tf_finish_t *items, size_t n, char **rows) {
    *rows = NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += items[i].nchildren;
    }
    if (total == 0) {
        return 0;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t c = 0; c < items[i].nchildren; c++) {
            tf__pg_write_job_row(&b, items[i].children[c], k++, items[i].lease_token);
        }
    }
    tf_jbuf_arr_close(&b);
    *rows = tf__pg_jbuf_text(&b);
    return *rows != NULL ? 0 : TF_ENOMEM;
}

/* The staged events as the rows the outbox insert reads. */
static char *events_text(const tf_event_buf_t *events) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; events != NULL && i < events->n; i++) {
        const tf_domain_event_t *ev = &events->items[i];
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "job_id");
        tf_jbuf_str(&b, ev->job_id);
        tf_jbuf_key(&b, "name");
        tf_jbuf_str(&b, tf_domain_event_name(ev->kind));
        tf_jbuf_key(&b, "state");
        tf_jbuf_int(&b, ev->state);
        tf_jbuf_key(&b, "reason");
        tf_jbuf_str(&b, ev->reason);
        tf_jbuf_obj_close(&b);
    }
    tf_jbuf_arr_close(&b);
    return tf__pg_jbuf_text(&b);
}

static void finish_done(const tf_pg_reply_t *reply, void *arg) {
    finish_op_t *op = arg;
    int rc = reply->status;
    if (rc == 0 && (size_t)PQntuples(reply->results[0]) != op->n) {
        rc = TF_EIO;
    }
    tf_finished_t *results = rc == 0 ? calloc(op->n, sizeof(*results)) : NULL;
    if (rc == 0 && results == NULL) {
        rc = TF_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < op->n; i++) {
        const PGresult *res = reply->results[0];
        int row = (int)i;
        results[i] = (tf_finished_t){
            .applied = !PQgetisnull(res, row, 1),
            .exists = tf__pg_bool(res, row, 2),
            .released = (size_t)tf__pg_int(res, row, 3, 0),
            .cancelled = (size_t)tf__pg_int(res, row, 4, 0),
        };
    }
    op->cb(op->arg, rc, results, rc == 0 ? op->n : 0);
    free(results);
    free(op);
}

static int finish(void *ctx, const tf_finish_t *items, size_t n, const tf_event_buf_t *events,
                  int64_t now_ms, tf_store_finished_cb cb, void *arg) {
    if (n < 1 || n > 1000) {
        return TF_EINVAL;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < n; i++) {
        write_finish_row(&b, &items[i], (int)i);
    }
    tf_jbuf_arr_close(&b);
    char *rows = tf__pg_jbuf_text(&b), *evs = events_text(events);
    char *children = NULL;
    finish_op_t *op = malloc(sizeof(*op));
    int rc = rows != NULL && evs != NULL && op != NULL ? 0 : TF_ENOMEM;
    if (rc == 0) {
        rc = children_text(items, n, &children);
    }
    if (rc == 0) {
        *op = (finish_op_t){.cb = cb, .arg = arg, .n = n};
        tf__pg_time_t now;
        const char *values[3] = {rows, evs, tf__pg_time_param(now_ms, &now)};
        const char *child_values[2] = {children, "false"};
        /* Created jobs go in the same transaction, after the finish that
         * their insert checks (TF_SQL_SUBMIT_CHILDREN). */
        tf_pg_stmt_t stmts[2] = {
            {.prepared = "work_finish", .nparams = 3, .values = values},
            {.prepared = "jobs_submit_children", .nparams = 2, .values = child_values},
        };
        tf_pg_store_t *s = ctx;
        rc = tf_pg_submit(s->pool, stmts, children == NULL ? 1 : 2, 0, finish_done, op);
    }
    if (rc != 0) {
        free(op);
    }
    free(rows);
    free(evs);
    free(children);
    return rc;
}

/* ---- heartbeat ---- */

static void heartbeat_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_store_heartbeat_cb cb = (tf_store_heartbeat_cb)p->cb;
    int64_t expires = TF_TIME_NONE;
    if (reply->status != 0) {
        cb(p->arg, reply->status, TF_TIME_NONE);
    } else if (!PQgetisnull(reply->results[0], 0, 0)) {
        int rc = tf__pg_time(reply->results[0], 0, 0, &expires);
        cb(p->arg, rc, expires);
    } else {
        cb(p->arg, tf__pg_bool(reply->results[0], 0, 1) ? TF_ESTALE : TF_ENOTFOUND, TF_TIME_NONE);
    }
    free(p);
}

static int heartbeat(void *ctx, const char *tenant_id, const char *job_id, const char *lease_token,
                     int lease_ms, int64_t now_ms, tf_store_heartbeat_cb cb, void *arg) {
    tf__pg_int_t lease;
    tf__pg_time_t now;
    const char *values[5] = {tenant_id, job_id, lease_token, tf__pg_int_param(lease_ms, &lease),
                             tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "work_heartbeat", values, 5, heartbeat_done, (void (*)(void))cb,
                              arg);
}

/* ---- maintenance ---- */

static void count_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_store_count_cb cb = (tf_store_count_cb)p->cb;
    int64_t n = reply->status == 0 ? tf__pg_int(reply->results[0], 0, 0, 0) : 0;
    cb(p->arg, reply->status, n);
    free(p);
}

static int promote(void *ctx, int limit, int64_t now_ms, tf_store_count_cb cb, void *arg) {
    tf__pg_int_t max;
    tf__pg_time_t now;
    const char *values[2] = {tf__pg_int_param(limit, &max), tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "work_promote", values, 2, count_done, (void (*)(void))cb, arg);
}

static int decode_expired(const PGresult *res, int row, void *item) {
    tf_expired_t *x = item;
    *x = (tf_expired_t){
        .tenant_id = PQgetvalue(res, row, 0),
        .job_id = PQgetvalue(res, row, 1),
        .lease_token = PQgetvalue(res, row, 2),
        .worker = PQgetvalue(res, row, 5),
        .timed_out = tf__pg_bool(res, row, 6),
        .job = {.found = 1, .attempts = (int)tf__pg_int(res, row, 3, 1)},
    };
    decode_policy(tf__pg_text(res, row, 4), &x->job.policy);
    return 0;
}

static void expired_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_expired_t *list = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*list), decode_expired, (void **)&list, &n);
    ((tf_store_expired_cb)p->cb)(p->arg, rc, list, n);
    for (size_t i = 0; i < n; i++) {
        tf_retry_policy_free(&list[i].job.policy);
    }
    free(list);
    free(p);
}

static int expired(void *ctx, int limit, int64_t now_ms, tf_store_expired_cb cb, void *arg) {
    tf__pg_int_t max;
    tf__pg_time_t now;
    const char *values[2] = {tf__pg_int_param(limit, &max), tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "work_expired", values, 2, expired_done, (void (*)(void))cb,
                              arg);
}

static int release(void *ctx, const char *worker_id, const char *const *job_ids,
                   const char *const *lease_tokens, size_t n, int64_t now_ms, tf_store_count_cb cb,
                   void *arg) {
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
    char *rows = tf__pg_jbuf_text(&b);
    if (rows == NULL) {
        return TF_ENOMEM;
    }
    tf__pg_time_t now;
    const char *values[3] = {rows, worker_id, tf__pg_time_param(now_ms, &now)};
    int rc =
        tf__pg_run_pending(ctx, "work_release", values, 3, count_done, (void (*)(void))cb, arg);
    free(rows);
    return rc;
}

static void next_due_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_store_next_due_cb cb = (tf_store_next_due_cb)p->cb;
    if (reply->status != 0) {
        cb(p->arg, reply->status, 0, 0);
    } else if (PQntuples(reply->results[0]) != 1 || PQgetisnull(reply->results[0], 0, 0)) {
        cb(p->arg, 0, 0, 0);
    } else {
        cb(p->arg, 0, 1, tf__pg_int(reply->results[0], 0, 0, 0));
    }
    free(p);
}

static int next_due(void *ctx, int64_t now_ms, tf_store_next_due_cb cb, void *arg) {
    tf__pg_time_t now;
    const char *values[1] = {tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "work_next_due", values, 1, next_due_done, (void (*)(void))cb,
                              arg);
}

static int decode_name(const PGresult *res, int row, void *item) {
    *(const char **)item = PQgetvalue(res, row, 0);
    return 0;
}

static void names_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    const char **names = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*names), decode_name, (void **)&names, &n);
    ((tf_store_names_cb)p->cb)(p->arg, rc, names, n);
    free(names);
    free(p);
}

static int builtin_queues(void *ctx, tf_store_names_cb cb, void *arg) {
    return tf__pg_run_pending(ctx, "work_builtin_queues", NULL, 0, names_done, (void (*)(void))cb,
                              arg);
}

static void ping_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    ((tf_store_status_cb)p->cb)(p->arg, reply->status);
    free(p);
}

static int ping(void *ctx, tf_store_status_cb cb, void *arg) {
    tf_pg_store_t *s = ctx;
    if (!tf_pg_pool_connected(s->pool)) {
        return TF_EUNAVAIL;
    }
    return tf__pg_run_pending(ctx, "work_ping", NULL, 0, ping_done, (void (*)(void))cb, arg);
}

static void gauges_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_store_gauges_cb cb = (tf_store_gauges_cb)p->cb;
    if (reply->status != 0) {
        cb(p->arg, reply->status, NULL, 0, NULL, 0, 0);
        free(p);
        return;
    }
    const PGresult *res = reply->results[0];
    int rows = PQntuples(res);
    tf_queue_gauge_t *queues = rows > 0 ? calloc((size_t)rows, sizeof(*queues)) : NULL;
    tf_table_gauge_t *tables = rows > 0 ? calloc((size_t)rows, sizeof(*tables)) : NULL;
    size_t nq = 0, nt = 0;
    int64_t xmin = 0;
    if (rows > 0 && (queues == NULL || tables == NULL)) {
        free(queues), free(tables);
        cb(p->arg, TF_ENOMEM, NULL, 0, NULL, 0, 0);
        free(p);
        return;
    }
    for (int row = 0; row < rows; row++) {
        if (!PQgetisnull(res, row, 0)) {
            queues[nq++] = (tf_queue_gauge_t){
                .queue = PQgetvalue(res, row, 0),
                .ready = tf__pg_int(res, row, 1, 0),
                .running = tf__pg_int(res, row, 2, 0),
                .oldest_ready_age_s =
                    PQgetisnull(res, row, 3) ? 0 : strtod(PQgetvalue(res, row, 3), NULL),
            };
        } else if (strcmp(PQgetvalue(res, row, 4), "(xmin)") == 0) {
            xmin = tf__pg_int(res, row, 1, 0);
        } else {
            tables[nt++] = (tf_table_gauge_t){.table = PQgetvalue(res, row, 4),
                                              .dead_tuples = tf__pg_int(res, row, 1, 0)};
        }
    }
    cb(p->arg, 0, queues, nq, tables, nt, xmin);
    free(queues);
    free(tables);
    free(p);
}

static int gauges(void *ctx, int64_t now_ms, tf_store_gauges_cb cb, void *arg) {
    tf__pg_time_t now;
    const char *values[1] = {tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "work_gauges", values, 1, gauges_done, (void (*)(void))cb, arg);
}

void tf__pg_work_bind(tf_job_store_t *port) {
    port->candidates = candidates;
    port->claim = claim;
    port->failed_jobs = failed_jobs;
    port->finish = finish;
    port->heartbeat = heartbeat;
    port->promote = promote;
    port->expired = expired;
    port->release = release;
    port->next_due = next_due;
    port->builtin_queues = builtin_queues;
    port->ping = ping;
    port->gauges = gauges;
}
