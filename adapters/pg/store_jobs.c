/*
 * store_jobs.c - the jobs API part of the Postgres store (engine/store.h):
 * submission, reading, listing, history, cancel, retry and requeue.  The
 * statements are in jobs_sql.h.  Each operation is one round trip; cancel
 * and retry are two statements in one pipelined transaction (lock, then
 * act).  Loop thread of the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/json/jbuf.h"
#include "adapters/pg/jobs_sql.h"
#include "engine/error.h"

/* The submit statements pass the 4095 characters C99 promises every
 * compiler takes in one literal; GCC and clang take any length. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
const tf_pg_prepared_t tf__pg_jobs_prepared[] = {
    {"generic_plans", TF_SQL_GENERIC_PLANS},
    {"jobs_submit", TF_SQL_SUBMIT},
    {"jobs_submit_children", TF_SQL_SUBMIT_CHILDREN},
    {"jobs_submit_rule", TF_SQL_SUBMIT_RULE_JOBS},
    {"jobs_get", TF_SQL_GET},
    {"jobs_get_by_key", TF_SQL_GET_BY_KEY},
    {"jobs_get_many", TF_SQL_GET_MANY},
    {"jobs_attempts", TF_SQL_ATTEMPTS},
    {"jobs_transitions", TF_SQL_TRANSITIONS},
    {"jobs_list", TF_SQL_LIST},
    {"jobs_list_queue", TF_SQL_LIST_BY_QUEUE},
    {"jobs_list_type", TF_SQL_LIST_BY_TYPE},
    {"jobs_list_correlation", TF_SQL_LIST_BY_CORRELATION},
    {"jobs_list_rule", TF_SQL_LIST_BY_RULE},
    {"jobs_dead", TF_SQL_DEAD},
    {"jobs_dead_queue", TF_SQL_DEAD_BY_QUEUE},
    {"jobs_lock", TF_SQL_LOCK},
    {"jobs_cancel", TF_SQL_CANCEL},
    {"jobs_retry", TF_SQL_RETRY},
    {"jobs_requeue_queue", TF_SQL_REQUEUE_QUEUE},
};
#pragma GCC diagnostic pop
const size_t tf__pg_jobs_prepared_count =
    sizeof(tf__pg_jobs_prepared) / sizeof(tf__pg_jobs_prepared[0]);

/* ---- submit ---- */

typedef struct {
    tf_store_submit_cb cb;
    void *arg;
    size_t n;
    int all_or_nothing;
} submit_op_t;

static void key_time(tf_jbuf_t *b, const char *key, int64_t ms) {
    char text[TF_TIME_STR_LEN + 1];
    tf_jbuf_key(b, key);
    if (ms != TF_TIME_NONE && tf_time_format(ms, text) == 0) {
        tf_jbuf_str(b, text);
    } else {
        tf_jbuf_null(b);
    }
}

/* The row object the insert statement reads. */
void tf__pg_write_job_row(tf_jbuf_t *b, const tf_new_job_t *j, int ord, const char *guard) {
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "ord");
    tf_jbuf_int(b, ord);
    tf_jbuf_key(b, "tenant_id");
    tf_jbuf_str(b, j->tenant_id);
    tf_jbuf_key(b, "id");
    tf_jbuf_str(b, j->id);
    tf_jbuf_key(b, "queue");
    tf_jbuf_str(b, j->queue);
    tf_jbuf_key(b, "type");
    tf_jbuf_str(b, j->type);
    tf_jbuf_key(b, "priority");
    tf_jbuf_int(b, j->priority);
    tf_jbuf_key(b, "payload");
    tf_jbuf_raw(b, j->payload);
    tf_jbuf_key(b, "max_attempts");
    tf_jbuf_int(b, j->max_attempts);
    tf_jbuf_key(b, "retry_policy");
    tf_jbuf_raw(b, j->retry_policy);
    tf_jbuf_key(b, "timeout_ms");
    tf_jbuf_int(b, j->timeout_ms);
    tf_jbuf_key(b, "executor");
    tf_jbuf_raw(b, j->executor);
    tf_jbuf_key(b, "metadata");
    tf_jbuf_raw(b, j->metadata != NULL && strcmp(j->metadata, "{}") != 0 ? j->metadata : NULL);
    tf_jbuf_key(b, "idempotency_key");
    tf_jbuf_str(b, j->idempotency_key);
    tf_jbuf_key(b, "request_hash");
    tf_jbuf_str(b, j->idempotency_key != NULL ? j->request_hash : NULL);
    tf_jbuf_key(b, "correlation_id");
    tf_jbuf_str(b, j->correlation_id);
    tf_jbuf_key(b, "parent_id");
    tf_jbuf_str(b, j->parent_id);
    tf_jbuf_key(b, "rule_id");
    tf_jbuf_str(b, j->rule_id);
    tf_jbuf_key(b, "depends_on");
    tf_jbuf_raw(b, j->depends_on != NULL ? j->depends_on : "[]");
    key_time(b, "run_at", j->run_at_ms);
    key_time(b, "created_at", j->created_at_ms);
    tf_jbuf_key(b, "scheduled");
    tf_jbuf_bool(b, j->run_at_ms > j->created_at_ms);
    tf_jbuf_key(b, "actor");
    tf_jbuf_str(b, j->actor);
    tf_jbuf_key(b, "guard");
    tf_jbuf_str(b, guard);
    tf_jbuf_obj_close(b);
}

/* The first id of a comma-separated list, copied into `out`. */
static const char *first_id(const char *list, char out[TF_ID_LEN]) {
    size_t len = strcspn(list, ",");
    snprintf(out, TF_ID_LEN, "%.*s", (int)(len < TF_ID_LEN ? len : TF_ID_LEN - 1), list);
    return out;
}

/* An all-or-nothing batch that tf_abort() refused: which job and why. */
static int submit_aborted(submit_op_t *op, const tf_pg_reply_t *reply) {
    const char *at = reply->message != NULL ? strstr(reply->message, "tf_batch:") : NULL;
    int ord = -1, consumed = 0;
    if (!op->all_or_nothing || at == NULL || sscanf(at, "tf_batch:%d:%n", &ord, &consumed) != 1 ||
        ord < 0 || (size_t)ord >= op->n) {
        return 0;
    }
    tf_submit_result_t *results = calloc(op->n, sizeof(*results));
    if (results == NULL) {
        op->cb(op->arg, TF_ENOMEM, NULL, 0, -1);
        return 1;
    }
    const char *problem = at + consumed;
    char missing[TF_ID_LEN];
    tf_submit_result_t *r = &results[ord];
    if (strncmp(problem, "missing_parent:", 15) == 0) {
        r->outcome = TF_SUBMIT_MISSING;
        r->missing = first_id(problem + 15, missing);
    } else if (strncmp(problem, "conflict", 8) == 0) {
        r->outcome = TF_SUBMIT_EXISTS; /* with another request hash */
    } else {
        r->outcome = TF_SUBMIT_IN_PROGRESS;
    }
    op->cb(op->arg, 0, results, op->n, ord);
    free(results);
    return 1;
}

static void submit_done(const tf_pg_reply_t *reply, void *arg) {
    submit_op_t *op = arg;
    if (reply->status != 0) {
        if (!submit_aborted(op, reply)) {
            op->cb(op->arg, reply->status, NULL, 0, -1);
        }
        free(op);
        return;
    }
    const PGresult *res = reply->results[1]; /* after generic_plans */
    size_t n = (size_t)PQntuples(res);
    tf_submit_result_t *results = n == op->n ? calloc(n, sizeof(*results)) : NULL;
    char(*missing)[TF_ID_LEN] = results != NULL ? calloc(n, TF_ID_LEN) : NULL;
    if (results == NULL || missing == NULL) {
        op->cb(op->arg, n == op->n ? TF_ENOMEM : TF_EIO, NULL, 0, -1);
        free(results);
        free(op);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        tf_submit_result_t *r = &results[i];
        int row = (int)i;
        if (!PQgetisnull(res, row, TF_SUBMIT_COL_STATE)) {
            r->outcome = TF_SUBMIT_CREATED;
            r->state = (tf_job_state_t)tf__pg_int(res, row, TF_SUBMIT_COL_STATE, 0);
            r->executor = tf__pg_text(res, row, TF_SUBMIT_COL_RESOLVED);
        } else if (!PQgetisnull(res, row, TF_SUBMIT_COL_MISSING)) {
            r->outcome = TF_SUBMIT_MISSING;
            r->missing = first_id(PQgetvalue(res, row, TF_SUBMIT_COL_MISSING), missing[i]);
        } else if (!PQgetisnull(res, row, TF_SUBMIT_COL_EXISTING_ID)) {
            r->outcome = TF_SUBMIT_EXISTS;
            r->existing_id = PQgetvalue(res, row, TF_SUBMIT_COL_EXISTING_ID);
            r->existing_hash = tf__pg_text(res, row, TF_SUBMIT_COL_EXISTING_HASH);
        } else {
            /* The key is taken by a submission that has not committed. */
            r->outcome = TF_SUBMIT_IN_PROGRESS;
        }
    }
    op->cb(op->arg, 0, results, n, -1);
    free(missing);
    free(results);
    free(op);
}

static int submit(void *ctx, const tf_new_job_t *const *jobs, size_t n, int all_or_nothing,
                  tf_store_submit_cb cb, void *arg) {
    if (n < 1 || n > 1000) {
        return TF_EINVAL;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < n; i++) {
        tf__pg_write_job_row(&b, jobs[i], (int)i, NULL);
    }
    tf_jbuf_arr_close(&b);
    char *rows = NULL;
    size_t len = 0;
    if (tf_jbuf_finish(&b, &rows, &len) != 0) {
        return TF_ENOMEM;
    }
    submit_op_t *op = malloc(sizeof(*op));
    if (op == NULL) {
        free(rows);
        return TF_ENOMEM;
    }
    *op = (submit_op_t){.cb = cb, .arg = arg, .n = n, .all_or_nothing = all_or_nothing};
    const char *submit_values[2] = {rows, all_or_nothing ? "true" : "false"};
    tf_pg_stmt_t stmts[2] = {
        {.prepared = "generic_plans"},
        {.prepared = "jobs_submit", .nparams = 2, .values = submit_values},
    };
    tf_pg_store_t *s = ctx;
    int rc = tf_pg_submit(s->pool, stmts, 2, 0, submit_done, op);
    free(rows);
    if (rc != 0) {
        free(op);
    }
    return rc;
}

/* ---- one job, many jobs ---- */

/* One job from columns `by_key` on (column 0 holds the request hash when
 * `by_key` is 1). */
static void one_job(const tf_pg_reply_t *reply, void *arg, int by_key) {
    tf__pg_pending_t *p = arg;
    tf_store_job_cb cb = (tf_store_job_cb)p->cb;
    if (reply->status != 0) {
        cb(p->arg, reply->status, NULL, NULL);
        free(p);
        return;
    }
    const PGresult *res = reply->results[0];
    tf_job_t job;
    if (PQntuples(res) != 1) {
        cb(p->arg, 0, NULL, NULL);
    } else if (tf__pg_job(res, 0, by_key, &job) != 0) {
        cb(p->arg, TF_EIO, NULL, NULL);
    } else {
        cb(p->arg, 0, &job, by_key ? tf__pg_text(res, 0, 0) : NULL);
    }
    free(p);
}

static void job_done(const tf_pg_reply_t *reply, void *arg) {
    one_job(reply, arg, 0);
}

static void job_by_key_done(const tf_pg_reply_t *reply, void *arg) {
    one_job(reply, arg, 1);
}

static int get(void *ctx, const char *tenant_id, const char *job_id, tf_store_job_cb cb,
               void *arg) {
    const char *values[2] = {tenant_id, job_id};
    return tf__pg_run_pending(ctx, "jobs_get", values, 2, job_done, (void (*)(void))cb, arg);
}

static int get_by_key(void *ctx, const char *tenant_id, const char *key, tf_store_job_cb cb,
                      void *arg) {
    const char *values[2] = {tenant_id, key};
    return tf__pg_run_pending(ctx, "jobs_get_by_key", values, 2, job_by_key_done,
                              (void (*)(void))cb, arg);
}

static void jobs_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_store_jobs_cb cb = (tf_store_jobs_cb)p->cb;
    tf_job_t *jobs = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*jobs), tf__pg_job_row, (void **)&jobs, &n);
    cb(p->arg, rc, jobs, n);
    free(jobs);
    free(p);
}

static int get_many(void *ctx, const char *tenant_id, const char *const *ids, size_t n,
                    tf_store_jobs_cb cb, void *arg) {
    char *literal = tf__pg_uuid_array(ids, n);
    if (literal == NULL) {
        return TF_EINVAL;
    }
    const char *values[2] = {tenant_id, literal};
    int rc =
        tf__pg_run_pending(ctx, "jobs_get_many", values, 2, jobs_done, (void (*)(void))cb, arg);
    free(literal);
    return rc;
}

/* The statement whose index drives the scan best for these filters. */
static const char *list_statement(const tf_job_query_t *q) {
    if (q->dead_letter) {
        return q->queue != NULL ? "jobs_dead_queue" : "jobs_dead";
    }
    if (q->correlation_id != NULL) {
        return "jobs_list_correlation";
    }
    if (q->rule_id != NULL) {
        return "jobs_list_rule";
    }
    if (q->type != NULL) {
        return "jobs_list_type";
    }
    return q->queue != NULL ? "jobs_list_queue" : "jobs_list";
}

static int list(void *ctx, const tf_job_query_t *q, tf_store_jobs_cb cb, void *arg) {
    char lower[TF_ID_LEN], upper[TF_ID_LEN];
    tf__pg_int_t rows;
    tf__pg_states_t states;
    tf_uuid_format(&q->lower, lower);
    tf_uuid_format(&q->upper, upper);
    tf__pg_int_param(q->rows, &rows);
    const char *state_set = q->states != 0 ? tf__pg_states_param(q->states, &states) : NULL;
    const char *job_values[9] = {q->tenant_id,      lower,      upper,
                                 state_set,         q->queue,   q->type,
                                 q->correlation_id, q->rule_id, rows.text};
    const char *dead_values[5] = {q->tenant_id, lower, upper, rows.text, q->queue};
    int nparams = q->dead_letter ? (q->queue != NULL ? 5 : 4) : 9;
    return tf__pg_run_pending(ctx, list_statement(q), q->dead_letter ? dead_values : job_values,
                              nparams, jobs_done, (void (*)(void))cb, arg);
}

/* ---- history ---- */

/* No row: no such job.  A row with a NULL attempt: a job without any. */
static int decode_attempt(const PGresult *res, int row, void *item) {
    if (PQgetisnull(res, row, 0)) {
        return 1;
    }
    int64_t outcome = tf__pg_int(res, row, 5, -2);
    tf_attempt_t *a = item;
    *a = (tf_attempt_t){
        .attempt = (int)tf__pg_int(res, row, 0, 0),
        .worker = tf__pg_text(res, row, 1),
        .duration_ms = tf__pg_int(res, row, 4, -1),
        .outcome = (tf_attempt_outcome_t)outcome,
        .error_type = tf__pg_text(res, row, 6),
        .error_message = tf__pg_text(res, row, 7),
        .executor_version = (int)tf__pg_int(res, row, 8, 0),
    };
    if (outcome < -1 || outcome > TF_ATTEMPT_SNOOZED ||
        tf__pg_time(res, row, 2, &a->started_at_ms) != 0 ||
        tf__pg_time(res, row, 3, &a->finished_at_ms) != 0) {
        return TF_EIO;
    }
    return 0;
}

static int job_found(const tf_pg_reply_t *reply) {
    return reply->status == 0 && PQntuples(reply->results[0]) > 0;
}

static void attempts_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_attempt_t *list = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*list), decode_attempt, (void **)&list, &n);
    ((tf_store_attempts_cb)p->cb)(p->arg, rc, job_found(reply), list, n);
    free(list);
    free(p);
}

static int attempts(void *ctx, const char *tenant_id, const char *job_id, tf_store_attempts_cb cb,
                    void *arg) {
    const char *values[2] = {tenant_id, job_id};
    return tf__pg_run_pending(ctx, "jobs_attempts", values, 2, attempts_done, (void (*)(void))cb,
                              arg);
}

/* No row: no such job.  A row with a NULL id: a job without events. */
static int decode_transition(const PGresult *res, int row, void *item) {
    if (PQgetisnull(res, row, 0)) {
        return 1;
    }
    int64_t from = tf__pg_int(res, row, 1, -1), to = tf__pg_int(res, row, 2, -1);
    tf_transition_t *t = item;
    *t = (tf_transition_t){
        .id = tf__pg_int(res, row, 0, 0),
        .from_state = (int)from,
        .to_state = (tf_job_state_t)to,
        .reason = tf__pg_text(res, row, 4),
        .actor = tf__pg_text(res, row, 5),
    };
    if (from < -1 || from >= TF_JOB_STATE_COUNT || to < 0 || to >= TF_JOB_STATE_COUNT ||
        tf__pg_time(res, row, 3, &t->at_ms) != 0) {
        return TF_EIO;
    }
    return 0;
}

static void transitions_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_transition_t *list = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*list), decode_transition, (void **)&list, &n);
    ((tf_store_transitions_cb)p->cb)(p->arg, rc, job_found(reply), list, n);
    free(list);
    free(p);
}

static int transitions(void *ctx, const char *tenant_id, const char *job_id,
                       tf_store_transitions_cb cb, void *arg) {
    const char *values[2] = {tenant_id, job_id};
    return tf__pg_run_pending(ctx, "jobs_transitions", values, 2, transitions_done,
                              (void (*)(void))cb, arg);
}

/* ---- cancel and retry: [lock, act] in one transaction ---- */

/* Answers from the lock's row (none: not found) and the action's first row
 * (none, or NULL job columns from `col`: refused). */
static void action_done(const tf_pg_reply_t *reply, void *arg, int col) {
    tf__pg_pending_t *p = arg;
    tf_store_action_cb cb = (tf_store_action_cb)p->cb;
    tf_action_result_t result = {0};
    tf_job_t job;
    int rc = reply->status;
    if (rc == 0 && PQntuples(reply->results[0]) == 1) {
        const PGresult *acted = reply->results[1];
        result.found = 1;
        result.before = (tf_job_state_t)tf__pg_int(reply->results[0], 0, 0, 0);
        if (PQntuples(acted) > 0 && !PQgetisnull(acted, 0, col)) {
            rc = tf__pg_job(acted, 0, col, &job);
            result.job = &job;
        }
    }
    cb(p->arg, rc, rc == 0 ? &result : NULL);
    free(p);
}

static void cancel_done(const tf_pg_reply_t *reply, void *arg) {
    action_done(reply, arg, 0);
}

static void retry_done(const tf_pg_reply_t *reply, void *arg) {
    action_done(reply, arg, 1);
}

static int locked_action(tf_pg_store_t *s, const char *tenant_id, const char *job_id,
                         const char *stmt, const char *const *values, int nvalues, tf_pg_cb done,
                         void (*cb)(void), void *arg) {
    tf__pg_pending_t *p = malloc(sizeof(*p));
    if (p == NULL) {
        return TF_ENOMEM;
    }
    *p = (tf__pg_pending_t){.cb = cb, .arg = arg};
    const char *lock_values[2] = {tenant_id, job_id};
    tf_pg_stmt_t stmts[2] = {
        {.prepared = "jobs_lock", .nparams = 2, .values = lock_values},
        {.prepared = stmt, .nparams = nvalues, .values = values},
    };
    int rc = tf_pg_submit(s->pool, stmts, 2, TF_PG_TXN, done, p);
    if (rc != 0) {
        free(p);
    }
    return rc;
}

static int cancel(void *ctx, const char *tenant_id, const char *job_id, tf_job_state_set_t from,
                  tf_job_state_t to, const char *actor, int64_t now_ms, tf_store_action_cb cb,
                  void *arg) {
    tf__pg_states_t sources;
    tf__pg_int_t target;
    tf__pg_time_t now;
    const char *values[6] = {tenant_id,
                             job_id,
                             tf__pg_states_param(from, &sources),
                             tf__pg_int_param(to, &target),
                             actor,
                             tf__pg_time_param(now_ms, &now)};
    return locked_action(ctx, tenant_id, job_id, "jobs_cancel", values, 6, cancel_done,
                         (void (*)(void))cb, arg);
}

static int retry(void *ctx, const char *tenant_id, const char *job_id, tf_job_state_set_t from,
                 tf_job_state_t to, const char *actor, int64_t now_ms, tf_store_action_cb cb,
                 void *arg) {
    char ids[TF_ID_LEN + 2];
    tf__pg_states_t sources;
    tf__pg_int_t target;
    tf__pg_time_t now;
    snprintf(ids, sizeof(ids), "{%s}", job_id);
    const char *values[6] = {tenant_id,
                             ids,
                             tf__pg_states_param(from, &sources),
                             tf__pg_int_param(to, &target),
                             actor,
                             tf__pg_time_param(now_ms, &now)};
    return locked_action(ctx, tenant_id, job_id, "jobs_retry", values, 6, retry_done,
                         (void (*)(void))cb, arg);
}

/* Requeue: the jobs whose columns (from column 1) are set. */
static int decode_requeued(const PGresult *res, int row, void *item) {
    return PQgetisnull(res, row, 1) ? 1 : tf__pg_job(res, row, 1, item);
}

static void requeue_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_job_t *jobs = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*jobs), decode_requeued, (void **)&jobs, &n);
    ((tf_store_jobs_cb)p->cb)(p->arg, rc, jobs, n);
    free(jobs);
    free(p);
}

static int requeue(void *ctx, const char *tenant_id, const char *const *ids, size_t nids,
                   const char *queue, int limit, tf_job_state_set_t from, tf_job_state_t to,
                   const char *actor, int64_t now_ms, tf_store_jobs_cb cb, void *arg) {
    tf__pg_states_t sources;
    tf__pg_int_t target, max;
    tf__pg_time_t now;
    char *literal = NULL;
    if (queue == NULL && (literal = tf__pg_uuid_array(ids, nids)) == NULL) {
        return nids == 0 ? TF_EINVAL : TF_ENOMEM;
    }
    const char *values[7] = {tenant_id,
                             literal != NULL ? literal : queue,
                             tf__pg_states_param(from, &sources),
                             tf__pg_int_param(to, &target),
                             actor,
                             tf__pg_time_param(now_ms, &now),
                             tf__pg_int_param(limit, &max)};
    int rc = tf__pg_run_pending(ctx, literal != NULL ? "jobs_retry" : "jobs_requeue_queue", values,
                                literal != NULL ? 6 : 7, requeue_done, (void (*)(void))cb, arg);
    free(literal);
    return rc;
}

void tf__pg_jobs_bind(tf_job_store_t *port) {
    port->submit = submit;
    port->get = get;
    port->get_by_key = get_by_key;
    port->get_many = get_many;
    port->list = list;
    port->attempts = attempts;
    port->transitions = transitions;
    port->cancel = cancel;
    port->retry = retry;
    port->requeue = requeue;
}
