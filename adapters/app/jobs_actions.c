/*
 * jobs_actions.c - the write side of the jobs API beyond submission (see
 * jobs.h): cancel, manual retry, and requeueing the dead letter.
 *
 * Each request is one round trip.  The engine's state machine decides: the
 * states an action may start from come from tf_job_event_sources() and
 * become the guard `state = ANY($n)` of the UPDATE, and the state it leads
 * to from tf_job_transition().  In the same statement (or transaction) as
 * the UPDATE, the narrow state tables follow the job (ready, scheduled,
 * running, dead_letters), and every transition writes its job_events row
 * with the caller's actor.  A request the state machine refuses changes
 * nothing and answers 409; a job of another tenant, or an id that is not a
 * UUID, answers 404.
 *
 * Cancel and retry run two statements in one transaction (one round trip):
 * the first locks the job (FOR UPDATE) and reads its current state, so 404
 * and 409 are told apart and a 409 names the state the job is really in;
 * the second applies the action.  Because the second takes its snapshot
 * after the lock was granted, cancel sees every dependant committed before
 * it, and cancels the job and, recursively, its dependants that have not
 * finished (each with an event 'dependency_cancelled:<parent id>').
 * Cancelling a RUNNING job revokes its lease (its worker's completion is
 * refused), ends the attempt with outcome "cancelled" and counts the job as
 * the domain event job.cancelled (engine/events.h) for every job cancelled.
 *
 * Retry (from FAILED, DEAD, CANCELLED) and requeue (DEAD only) share one
 * statement tail: the job is PENDING again with attempts 0 and no result,
 * started_at or finished_at; last_error is kept, as history of why it had
 * to be retried, until the next attempt overwrites it.  It gets a `ready`
 * row (sort_key = now - priority x the queue's priority_boost_ms) unless it
 * still waits for parents (pending_parents > 0), and leaves the dead letter.
 *
 * Handlers run on the loop thread of their request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "adapters/app/api.h"
#include "adapters/app/job_input.h"
#include "adapters/app/job_json.h"
#include "adapters/app/jobs.h"
#include "engine/error.h"
#include "engine/job.h"

/* ---- SQL ---- */

/* The first statement of cancel and retry: lock the job and read its
 * current state; no row when it is not the tenant's.  $1 tenant, $2 job. */
#define SQL_LOCK                                                                                   \
    "SELECT j.state FROM jobs j WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid FOR UPDATE"

/* Cancel, second statement.  $1 tenant, $2 job, $3 states cancel may start
 * from, $4 CANCELLED, $5 actor, $6 RUNNING.  `tree` walks the dependants
 * that are not finished (an edge list, so diamonds stay bounded); `victims`
 * locks them in id order; 5 is job_attempts' outcome "cancelled".  Returns
 * the cancelled job, or no row when its state forbids the cancel. */
#define SQL_CANCEL                                                                                 \
    "WITH RECURSIVE tree (id, parent) AS ("                                                        \
    " SELECT j.id, NULL::uuid FROM jobs j"                                                         \
    "  WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid AND j.state = ANY ($3::smallint[])"        \
    " UNION"                                                                                       \
    " SELECT c.id, t.id FROM tree t JOIN jobs c ON c.tenant_id = $1::uuid"                         \
    "  AND c.depends_on @> ARRAY[t.id] AND c.depends_on <> '{}'"                                   \
    "  WHERE c.state = ANY ($3::smallint[])),"                                                     \
    " victims AS ("                                                                                \
    " SELECT j.tenant_id, j.id, j.state, j.attempts, j.lease_token, j.locked_by, j.started_at,"    \
    "  v.parent"                                                                                   \
    " FROM (SELECT DISTINCT ON (id) id, parent FROM tree ORDER BY id, parent NULLS FIRST) v"       \
    " JOIN jobs j ON j.tenant_id = $1::uuid AND j.id = v.id ORDER BY j.id FOR UPDATE OF j),"       \
    " upd AS ("                                                                                    \
    " UPDATE jobs j SET state = $4::smallint, finished_at = now(), updated_at = now(),"            \
    "  lease_token = NULL, lease_expires_at = NULL, locked_by = NULL"                              \
    " FROM victims v WHERE j.tenant_id = v.tenant_id AND j.id = v.id"                              \
    "  AND j.state = ANY ($3::smallint[])"                                                         \
    " RETURNING j.*, v.state AS from_state, v.parent, v.attempts AS run_attempt,"                  \
    "  v.lease_token AS run_lease, v.locked_by AS run_worker, v.started_at AS run_started),"       \
    " ev AS ("                                                                                     \
    " INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)"             \
    " SELECT u.tenant_id, u.id, u.from_state, u.state, CASE WHEN u.parent IS NULL"                 \
    "  THEN 'cancelled' ELSE 'dependency_cancelled:' || u.parent END, $5::text FROM upd u),"       \
    " del_ready AS (DELETE FROM ready r USING upd u"                                               \
    "  WHERE r.tenant_id = u.tenant_id AND r.job_id = u.id),"                                      \
    " del_scheduled AS (DELETE FROM scheduled s USING upd u"                                       \
    "  WHERE s.tenant_id = u.tenant_id AND s.job_id = u.id),"                                      \
    " del_running AS (DELETE FROM running r USING upd u"                                           \
    "  WHERE r.tenant_id = u.tenant_id AND r.job_id = u.id RETURNING r.job_id, r.started_at),"     \
    " ran AS ("                                                                                    \
    " SELECT u.tenant_id, u.id, u.queue, greatest(u.run_attempt, 1) AS attempt,"                   \
    "  coalesce(u.run_worker, '') AS worker, u.run_lease,"                                         \
    "  coalesce(d.started_at, u.run_started, now()) AS started"                                    \
    " FROM upd u LEFT JOIN del_running d ON d.job_id = u.id WHERE u.from_state = $6::smallint),"   \
    " att AS ("                                                                                    \
    " INSERT INTO job_attempts (tenant_id, job_id, attempt, worker, lease_token, started_at,"      \
    "  finished_at, duration_ms, outcome)"                                                         \
    " SELECT tenant_id, id, attempt, worker, run_lease, started, now(),"                           \
    "  greatest(0, floor(extract(epoch FROM now() - started) * 1000))::bigint, 5"                  \
    " FROM ran WHERE run_lease IS NOT NULL ON CONFLICT DO NOTHING),"                               \
    " done AS ("                                                                                   \
    " INSERT INTO domain_events (tenant_id, name, job_id, state, reason)"                          \
    " SELECT u.tenant_id, 'job.cancelled', u.id, 6, CASE WHEN u.parent IS NULL"                    \
    "  THEN 'cancelled' ELSE 'dependency_cancelled' END FROM upd u)"                               \
    " SELECT " TF_JOB_COLUMNS " FROM upd j WHERE j.parent IS NULL"

/* What retry and requeue do to the rows of `picked` (locked, with their
 * state).  $3 states the action may start from, $4 PENDING, $5 actor. */
#define SQL_RETRY_TAIL                                                                             \
    " upd AS ("                                                                                    \
    " UPDATE jobs j SET state = $4::smallint, attempts = 0, result = NULL, started_at = NULL,"     \
    "  finished_at = NULL, run_at = now(), updated_at = now(), lease_token = NULL,"                \
    "  lease_expires_at = NULL, locked_by = NULL"                                                  \
    " FROM picked p WHERE j.tenant_id = p.tenant_id AND j.id = p.id"                               \
    "  AND j.state = ANY ($3::smallint[])"                                                         \
    " RETURNING j.*, p.state AS from_state),"                                                      \
    " ev AS ("                                                                                     \
    " INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)"             \
    " SELECT u.tenant_id, u.id, u.from_state, u.state, 'manual_retry', $5::text FROM upd u),"      \
    " dl AS (DELETE FROM dead_letters d USING upd u"                                               \
    "  WHERE d.tenant_id = u.tenant_id AND d.job_id = u.id),"                                      \
    " rdy AS ("                                                                                    \
    " INSERT INTO ready (tenant_id, job_id, queue, builtin, sort_key, run_at)"                     \
    " SELECT u.tenant_id, u.id, u.queue, u.executor IS NOT NULL, u.run_at"                         \
    "  - u.priority::float8 * coalesce(q.priority_boost_ms, 60000) * interval '1 millisecond',"    \
    "  u.run_at"                                                                                   \
    " FROM upd u LEFT JOIN queues q ON q.name = u.queue WHERE u.pending_parents = 0"               \
    " ON CONFLICT DO NOTHING RETURNING queue, builtin),"                                           \
    " nt AS (SELECT count(pg_notify('taskflow_ready', x.q)) AS n FROM (SELECT DISTINCT"            \
    "  queue || CASE WHEN builtin THEN '|builtin' ELSE '' END AS q FROM rdy) x)"

/* Retry (after jobs_act_lock), and requeue by ids.  $1 tenant, $2 job ids
 * (uuid[]).  One row per id that is the tenant's job: its state in this
 * statement's snapshot, then the job as it is now when the action applied
 * to it (NULL columns when it did not). */
#define SQL_RETRY                                                                                  \
    "WITH picked AS ("                                                                             \
    " SELECT j.tenant_id, j.id, j.state FROM jobs j"                                               \
    " WHERE j.tenant_id = $1::uuid AND j.id = ANY ($2::uuid[])"                                    \
    "  AND j.state = ANY ($3::smallint[]) ORDER BY j.id FOR UPDATE)," SQL_RETRY_TAIL               \
    " SELECT s.state, " TF_JOB_COLUMNS " FROM jobs s CROSS JOIN nt"                                \
    " LEFT JOIN upd j ON j.id = s.id"                                                              \
    " WHERE s.tenant_id = $1::uuid AND s.id = ANY ($2::uuid[]) ORDER BY s.id"

/* Requeue by queue: the $6 oldest dead jobs of queue $2.  Dead-letter rows
 * another requeue holds are skipped, so concurrent calls share the work. */
#define SQL_REQUEUE_QUEUE                                                                          \
    "WITH candidates AS ("                                                                         \
    " SELECT d.job_id FROM dead_letters d WHERE d.tenant_id = $1::uuid AND d.queue = $2::text"     \
    " ORDER BY d.job_id LIMIT $6::integer FOR UPDATE SKIP LOCKED),"                                \
    " picked AS ("                                                                                 \
    " SELECT j.tenant_id, j.id, j.state FROM jobs j"                                               \
    " WHERE j.tenant_id = $1::uuid AND j.id IN (SELECT job_id FROM candidates)"                    \
    "  AND j.state = ANY ($3::smallint[]) ORDER BY j.id FOR UPDATE)," SQL_RETRY_TAIL               \
    " SELECT j.state, " TF_JOB_COLUMNS " FROM upd j CROSS JOIN nt ORDER BY j.id"

const tf_pg_prepared_t tf_jobs_actions_prepared[] = {
    {"jobs_act_lock", SQL_LOCK},
    {"jobs_act_cancel", SQL_CANCEL},
    {"jobs_act_retry", SQL_RETRY},
    {"jobs_act_requeue_queue", SQL_REQUEUE_QUEUE},
};
const size_t tf_jobs_actions_prepared_count =
    sizeof(tf_jobs_actions_prepared) / sizeof(tf_jobs_actions_prepared[0]);

#define REQUEUE_MAX 1000
#define STATES_LITERAL_LEN 32

/* ---- the state machine as SQL parameters ---- */

/* What `ev` needs in SQL: the states it may start from (of those in
 * `only`) as a smallint[] literal, the state it leads to, RUNNING (whose
 * attempt a cancel ends), and the names of the sources for a 409. */
typedef struct {
    char sources[STATES_LITERAL_LEN];
    char to[8];
    char running[8];
    char names[96];
} guard_t;

static void guard_for(tf_job_event_t ev, tf_job_state_set_t only, guard_t *g) {
    tf_job_state_set_t set = tf_job_event_sources(ev) & only;
    size_t used = 0, nused = 0;
    tf_job_state_t to = TF_JOB_STATE_COUNT;
    g->sources[used++] = '{';
    g->names[0] = '\0';
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        if ((set & TF_JOB_STATE_BIT(s)) == 0) {
            continue;
        }
        tf_job_transition((tf_job_state_t)s, ev, &to);
        used += (size_t)snprintf(g->sources + used, sizeof(g->sources) - used, "%s%d",
                                 used > 1 ? "," : "", s);
        nused += (size_t)snprintf(g->names + nused, sizeof(g->names) - nused, "%s%s",
                                  nused > 0 ? ", " : "", tf_job_state_name((tf_job_state_t)s));
    }
    snprintf(g->sources + used, sizeof(g->sources) - used, "}");
    snprintf(g->to, sizeof(g->to), "%d", (int)to);
    snprintf(g->running, sizeof(g->running), "%d", (int)TF_JOB_RUNNING);
}

/* ---- answering ---- */

static void not_found(tf_http_req_t *req) {
    tf_http_respond_error(req, 404, "not_found", "no such job", NULL);
}

/* 409 for a job in state `state_text` (a job_states number) that `action`
 * may not leave; `ev` names the states it could. */
static void conflict(tf_http_req_t *req, const char *state_text, tf_job_event_t ev,
                     const char *action) {
    guard_t g;
    guard_for(ev, ~(tf_job_state_set_t)0, &g);
    const char *state = tf_job_state_name((tf_job_state_t)atoi(state_text));
    char message[200];
    snprintf(message, sizeof(message), "the job is %s; only %s jobs can be %s",
             state != NULL ? state : "in another state", g.names, action);
    tf_http_respond_error(req, 409, "conflict", message, NULL);
}

/* Answers 200 with the job in row 0 of `res` from column `col`. */
static void answer_job(tf_http_req_t *req, const PGresult *res, int col) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    if (tf_job_json_write(&b, res, 0, col) != 0) {
        tf_jbuf_free(&b);
        tf_http_respond_error(req, 500, "internal", "cannot show the job", NULL);
        return;
    }
    tf_api_respond_jbuf(req, 200, &b);
}

/* The path's {id} as a canonical UUID; answers 404 and returns -1 when it is
 * not one. */
static int path_job_id(tf_http_req_t *req, char out[TF_UUID_STR_LEN + 1]) {
    tf_uuid_t id;
    const char *text = tf_http_req_param(req, "id");
    if (text == NULL || tf_uuid_parse(text, &id) != 0) {
        not_found(req);
        return -1;
    }
    tf_uuid_format(&id, out);
    return 0;
}

/* ---- POST /v1/jobs/{id}/cancel and /retry ---- */

/* Answers a [lock, action] batch: 404 when the lock found no job, 409 with
 * the state the lock read when the action changed nothing, else 200 with
 * the job from column `col` of the action's first row. */
static void answer_locked(tf_http_req_t *req, const tf_pg_reply_t *reply, tf_job_event_t ev,
                          const char *action, int col) {
    if (reply->status != 0) {
        tf_api_respond_pg_error(req, reply);
    } else if (PQntuples(reply->results[0]) != 1) {
        not_found(req);
    } else if (PQntuples(reply->results[1]) == 0 || PQgetisnull(reply->results[1], 0, col)) {
        conflict(req, PQgetvalue(reply->results[0], 0, 0), ev, action);
    } else {
        answer_job(req, reply->results[1], col);
    }
}

static void cancel_done(const tf_pg_reply_t *reply, void *arg) {
    answer_locked(arg, reply, TF_JOB_EV_CANCEL, "cancelled", 0);
}

static void retry_done(const tf_pg_reply_t *reply, void *arg) {
    answer_locked(arg, reply, TF_JOB_EV_RETRY, "retried", 1);
}

/* Runs [lock the job, `stmt` with `values`] in one transaction, one round
 * trip; `done` gets `req`. */
static void submit_locked(tf_http_req_t *req, const tf_principal_t *who, const char *id,
                          const char *stmt, const char *const *values, int nvalues, tf_pg_cb done) {
    const char *lock_values[2] = {who->tenant_id, id};
    tf_pg_stmt_t stmts[2] = {
        {.prepared = "jobs_act_lock", .nparams = 2, .values = lock_values},
        {.prepared = stmt, .nparams = nvalues, .values = values},
    };
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    int rc = tf_pg_submit(lp->pg, stmts, 2, TF_PG_TXN, done, req);
    if (rc != 0) {
        tf_api_respond_submit_error(req, rc);
    }
}

static void cancel_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    char id[TF_UUID_STR_LEN + 1];
    if (path_job_id(req, id) != 0) {
        return;
    }
    guard_t g;
    guard_for(TF_JOB_EV_CANCEL, ~(tf_job_state_set_t)0, &g);
    const char *values[6] = {who->tenant_id, id, g.sources, g.to, who->actor, g.running};
    submit_locked(req, who, id, "jobs_act_cancel", values, 6, cancel_done);
}

static void retry_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    char id[TF_UUID_STR_LEN + 1], ids[TF_UUID_STR_LEN + 3];
    if (path_job_id(req, id) != 0) {
        return;
    }
    snprintf(ids, sizeof(ids), "{%s}", id);
    guard_t g;
    guard_for(TF_JOB_EV_RETRY, ~(tf_job_state_set_t)0, &g);
    const char *values[5] = {who->tenant_id, ids, g.sources, g.to, who->actor};
    submit_locked(req, who, id, "jobs_act_retry", values, 5, retry_done);
}

static void handle_cancel(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, cancel_authed, data);
}

static void handle_retry(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, retry_authed, data);
}

/* ---- POST /v1/dead-letter/requeue ---- */

/* Answers {"requeued": n, "jobs": [...]} from the rows whose job columns
 * (from column 1) are set. */
static void requeue_done(const tf_pg_reply_t *reply, void *arg) {
    tf_http_req_t *req = arg;
    if (reply->status != 0) {
        tf_api_respond_pg_error(req, reply);
        return;
    }
    const PGresult *res = reply->results[0];
    int requeued = 0, rc = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        requeued += !PQgetisnull(res, row, 1);
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "requeued");
    tf_jbuf_int(&b, requeued);
    tf_jbuf_key(&b, "jobs");
    tf_jbuf_arr_open(&b);
    for (int row = 0; row < PQntuples(res) && rc == 0; row++) {
        if (!PQgetisnull(res, row, 1)) {
            rc = tf_job_json_write(&b, res, row, 1);
        }
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    if (rc != 0) {
        tf_jbuf_free(&b);
        tf_http_respond_error(req, 500, "internal", "cannot show the jobs", NULL);
        return;
    }
    tf_api_respond_jbuf(req, 200, &b);
}

/* Reads "ids" into a uuid[] literal.  Returns the literal (caller frees) or
 * NULL after answering 422 (or 500). */
static char *read_ids(tf_http_req_t *req, const json_t *ids) {
    size_t n = json_is_array(ids) ? json_array_size(ids) : 0;
    if (n == 0 || n > REQUEUE_MAX) {
        tf_api_invalid(req, "ids", "ids must be an array of 1 to 1000 job ids");
        return NULL;
    }
    size_t cap = n * (TF_UUID_STR_LEN + 1) + 2, used = 0;
    char *literal = malloc(cap);
    if (literal == NULL) {
        tf_http_respond_error(req, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        tf_uuid_t id;
        const char *text = json_string_value(json_array_get(ids, i));
        if (text == NULL || tf_uuid_parse(text, &id) != 0) {
            char field[24];
            snprintf(field, sizeof(field), "ids[%zu]", i);
            tf_api_invalid(req, field, "each id must be a UUID");
            free(literal);
            return NULL;
        }
        literal[used++] = i == 0 ? '{' : ',';
        tf_uuid_format(&id, literal + used);
        used += TF_UUID_STR_LEN;
    }
    snprintf(literal + used, cap - used, "}");
    return literal;
}

/* Checks the body: exactly one of "ids" and "queue", nothing else.  Returns
 * 0, or -1 after answering. */
static int check_requeue_body(tf_http_req_t *req, json_t *body) {
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        if (strcmp(key, "ids") != 0 && strcmp(key, "queue") != 0) {
            char message[160];
            snprintf(message, sizeof(message), "unknown field '%.100s'", key);
            tf_api_invalid(req, key, message);
            return -1;
        }
    }
    const json_t *ids = json_object_get(body, "ids"), *queue = json_object_get(body, "queue");
    if (ids == NULL && queue == NULL) {
        tf_api_invalid(req, "ids", "give ids (dead job ids) or queue (a queue name)");
        return -1;
    }
    if (ids != NULL && queue != NULL) {
        tf_api_invalid(req, "queue", "give either ids or queue, not both");
        return -1;
    }
    if (queue != NULL &&
        (!json_is_string(queue) || !tf_queue_name_valid(json_string_value(queue)))) {
        tf_api_invalid(req, "queue",
                       "queue must be 1 to 128 letters, digits and _ . : - (a queue name)");
        return -1;
    }
    return 0;
}

/* Submits the requeue of `body`'s ids (jobs_act_retry from DEAD only) or
 * queue, or answers why it cannot. */
static void submit_requeue(tf_http_req_t *req, const tf_principal_t *who, const json_t *body) {
    guard_t g;
    guard_for(TF_JOB_EV_RETRY, TF_JOB_STATE_BIT(TF_JOB_DEAD), &g);
    const json_t *queue = json_object_get(body, "queue");
    char max[16], *ids = NULL;
    snprintf(max, sizeof(max), "%d", REQUEUE_MAX);
    if (queue == NULL && (ids = read_ids(req, json_object_get(body, "ids"))) == NULL) {
        return;
    }
    const char *values[6] = {who->tenant_id, ids != NULL ? ids : json_string_value(queue),
                             g.sources,      g.to,
                             who->actor,     max};
    tf_pg_stmt_t st = {.prepared = ids != NULL ? "jobs_act_retry" : "jobs_act_requeue_queue",
                       .nparams = ids != NULL ? 5 : 6,
                       .values = values};
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    int rc = tf_pg_submit(lp->pg, &st, 1, 0, requeue_done, req);
    free(ids);
    if (rc != 0) {
        tf_api_respond_submit_error(req, rc);
    }
}

static void requeue_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    int answered = 0;
    json_t *body = tf_api_body(req, 1, &answered);
    if (body == NULL) {
        if (!answered) {
            tf_api_invalid(req, "body", "a JSON object with ids or queue is required");
        }
        return;
    }
    if (check_requeue_body(req, body) == 0) {
        submit_requeue(req, who, body);
    }
    json_decref(body);
}

static void handle_requeue(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, requeue_authed, data);
}

int tf_jobs_actions_register(tf_router_t *router, const tf_app_env_t *env) {
    (void)env;
    int rc = tf_router_add(router, "POST", "/v1/jobs/{id}/cancel", handle_cancel, NULL);
    if (rc == 0) {
        rc = tf_router_add(router, "POST", "/v1/jobs/{id}/retry", handle_retry, NULL);
    }
    if (rc == 0) {
        rc = tf_router_add(router, "POST", "/v1/dead-letter/requeue", handle_requeue, NULL);
    }
    return rc;
}
