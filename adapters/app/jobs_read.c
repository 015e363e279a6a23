/*
 * jobs_read.c - the read side of the jobs API (see jobs.h): one job, the
 * filtered job listing, a job's attempts and events, and the dead letter.
 *
 * Every route authenticates first (tenant key, or the admin token acting
 * for a tenant), then checks the whole request before it touches the
 * database, then runs exactly one statement (one round trip) scoped to the
 * caller's tenant: another tenant's job is simply not found (404), and so is
 * an id that is not a UUID.
 *
 * Listings are keyset pages over the job id.  Ids are UUIDv7 whose
 * timestamp is the job's created_at millisecond, so "created after T" and
 * "created before T" are id ranges; together with the cursor they become one
 * inclusive range [lower, upper] computed here on the raw 16 bytes, which is
 * also PostgreSQL's uuid order.  A page fetches limit + 1 rows to know
 * whether there is a next one.  Because a page starts strictly after the
 * last id seen, jobs inserted while a client pages never shift what it
 * sees: every job that existed when it started is listed exactly once.
 * Cursors are signed (cursor.h) with a scope of the tenant and the
 * canonical filters, so a cursor is refused (422) in any other query.
 *
 * Unknown or repeated query parameters of a listing are refused with 422, so
 * that a misspelt filter never silently widens the answer.
 *
 * Handlers run on the loop thread of their request; the per-request state
 * of a listing lives in one heap-allocated page_t that the database
 * callback frees.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/app/api.h"
#include "adapters/app/cursor.h"
#include "adapters/app/job_json.h"
#include "adapters/app/job_input.h"
#include "adapters/app/jobs.h"
#include "adapters/pg/pgtime.h"
#include "engine/error.h"
#include "engine/job.h"
#include "engine/timefmt.h"
#include "engine/utf8.h"

/* ---- SQL ---- */

#define SQL_GET                                                                                    \
    "SELECT " TF_JOB_COLUMNS " FROM jobs j WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid"

/* Attempts are written to job_attempts when they end; the attempt in
 * progress of a RUNNING job ($3) is added from the job row with outcome -1
 * ("running").  No row at all: no such job.  One row with a NULL attempt:
 * a job without attempts. */
#define SQL_ATTEMPTS                                                                               \
    "SELECT a.attempt, a.worker, a.started_at, a.finished_at, a.duration_ms, a.outcome, "          \
    "a.error_type, a.error_message FROM jobs j LEFT JOIN LATERAL ("                                \
    " SELECT x.attempt, x.worker, x.started_at, x.finished_at, x.duration_ms, x.outcome,"          \
    "  x.error_type, x.error_message FROM job_attempts x"                                          \
    "  WHERE x.tenant_id = j.tenant_id AND x.job_id = j.id"                                        \
    " UNION ALL"                                                                                   \
    " SELECT greatest(j.attempts, 1), j.locked_by, j.started_at, NULL, NULL, -1::smallint,"        \
    "  NULL, NULL WHERE j.state = $3::smallint AND j.started_at IS NOT NULL"                       \
    "  AND NOT EXISTS (SELECT 1 FROM job_attempts y WHERE y.tenant_id = j.tenant_id"               \
    "   AND y.job_id = j.id AND y.started_at = j.started_at)"                                      \
    ") a ON true WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid ORDER BY a.started_at, "         \
    "a.attempt"

/* No row: no such job.  One row with a NULL id: a job without events
 * (only possible for rows written outside the API). */
#define SQL_EVENTS                                                                                 \
    "SELECT e.id, e.from_state, e.to_state, e.at, e.reason, e.actor FROM jobs j "                  \
    "LEFT JOIN job_events e ON e.tenant_id = j.tenant_id AND e.job_id = j.id "                     \
    "WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid ORDER BY e.id"

/* The listing: $1 tenant, $2..$3 the inclusive id range, $4 states (NULL:
 * any), $5 queue, $6 type, $7 correlation_id, $8 rule_id (NULL: any), $9
 * rows.  One statement per index that can drive the scan, so that each
 * keeps a good generic plan: the most selective filter given picks it. */
#define SQL_LIST_FILTERS                                                                           \
    " AND j.id >= $2::uuid AND j.id <= $3::uuid"                                                   \
    " AND ($4::smallint[] IS NULL OR j.state = ANY ($4::smallint[]))"                              \
    " AND ($5::text IS NULL OR j.queue = $5::text)"                                                \
    " AND ($6::text IS NULL OR j.type = $6::text)"                                                 \
    " AND ($7::text IS NULL OR j.correlation_id = $7::text)"                                       \
    " AND ($8::uuid IS NULL OR j.rule_id = $8::uuid)"                                              \
    " ORDER BY j.id LIMIT $9::integer"
#define SQL_LIST_HEAD "SELECT " TF_JOB_COLUMNS " FROM jobs j WHERE j.tenant_id = $1::uuid"
#define SQL_LIST SQL_LIST_HEAD SQL_LIST_FILTERS
#define SQL_LIST_BY_QUEUE SQL_LIST_HEAD " AND j.queue = $5::text" SQL_LIST_FILTERS
#define SQL_LIST_BY_TYPE SQL_LIST_HEAD " AND j.type = $6::text" SQL_LIST_FILTERS
#define SQL_LIST_BY_CORRELATION SQL_LIST_HEAD " AND j.correlation_id = $7::text" SQL_LIST_FILTERS
#define SQL_LIST_BY_RULE SQL_LIST_HEAD " AND j.rule_id = $8::uuid" SQL_LIST_FILTERS

/* The dead letter, oldest job first: $1 tenant, $2..$3 id range, $4 rows,
 * and $5 the queue for the second form. */
#define SQL_DEAD_HEAD                                                                              \
    "SELECT " TF_JOB_COLUMNS " FROM dead_letters d"                                                \
    " JOIN jobs j ON j.tenant_id = d.tenant_id AND j.id = d.job_id"                                \
    " WHERE d.tenant_id = $1::uuid AND d.job_id >= $2::uuid AND d.job_id <= $3::uuid"
#define SQL_DEAD SQL_DEAD_HEAD " ORDER BY d.job_id LIMIT $4::integer"
#define SQL_DEAD_BY_QUEUE                                                                          \
    SQL_DEAD_HEAD " AND d.queue = $5::text ORDER BY d.job_id LIMIT $4::integer"

const tf_pg_prepared_t tf_jobs_read_prepared[] = {
    {"jobs_read_get", SQL_GET},
    {"jobs_read_attempts", SQL_ATTEMPTS},
    {"jobs_read_events", SQL_EVENTS},
    {"jobs_read_list", SQL_LIST},
    {"jobs_read_list_queue", SQL_LIST_BY_QUEUE},
    {"jobs_read_list_type", SQL_LIST_BY_TYPE},
    {"jobs_read_list_correlation", SQL_LIST_BY_CORRELATION},
    {"jobs_read_list_rule", SQL_LIST_BY_RULE},
    {"jobs_read_dead", SQL_DEAD},
    {"jobs_read_dead_queue", SQL_DEAD_BY_QUEUE},
};
const size_t tf_jobs_read_prepared_count =
    sizeof(tf_jobs_read_prepared) / sizeof(tf_jobs_read_prepared[0]);

/* ---- ids, ranges and query values ---- */

#define UUID_MS_MAX ((INT64_C(1) << 48) - 1)
#define SCOPE_MAX 1024
#define CORRELATION_MAX 255

/* An inclusive range of ids; empty when lower > upper. */
typedef struct {
    tf_uuid_t lower, upper;
    int empty;
} id_range_t;

static void range_init(id_range_t *r) {
    memset(r->lower.bytes, 0x00, sizeof(r->lower.bytes));
    memset(r->upper.bytes, 0xff, sizeof(r->upper.bytes));
    r->empty = 0;
}

/* The id with Unix milliseconds `ms` and every other bit set to `fill`. */
static void uuid_at(int64_t ms, uint8_t fill, tf_uuid_t *out) {
    memset(out->bytes, fill, sizeof(out->bytes));
    for (int i = 0; i < 6; i++) {
        out->bytes[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    }
}

/* Raises the lower bound to `id` (inclusive). */
static void range_above(id_range_t *r, const tf_uuid_t *id) {
    if (memcmp(id->bytes, r->lower.bytes, 16) > 0) {
        r->lower = *id;
    }
}

static void range_below(id_range_t *r, const tf_uuid_t *id) {
    if (memcmp(id->bytes, r->upper.bytes, 16) < 0) {
        r->upper = *id;
    }
}

/* Ids strictly after `last` (a cursor's last id). */
static void range_after_id(id_range_t *r, const tf_uuid_t *last) {
    tf_uuid_t next = *last;
    int i = 15;
    while (i >= 0 && ++next.bytes[i] == 0) {
        i--;
    }
    if (i < 0) {
        r->empty = 1; /* `last` was the greatest id */
    } else {
        range_above(r, &next);
    }
}

/* Jobs created strictly after `ms`: ids from the first id of ms + 1. */
static void range_created_after(id_range_t *r, int64_t ms) {
    if (ms >= UUID_MS_MAX) {
        r->empty = 1;
    } else if (ms >= 0) {
        tf_uuid_t id;
        uuid_at(ms + 1, 0x00, &id);
        range_above(r, &id);
    }
}

/* Jobs created strictly before `ms`: ids up to the last id of ms - 1. */
static void range_created_before(id_range_t *r, int64_t ms) {
    if (ms <= 0) {
        r->empty = 1;
    } else if (ms <= UUID_MS_MAX) {
        tf_uuid_t id;
        uuid_at(ms - 1, 0xff, &id);
        range_below(r, &id);
    }
}

static int range_is_empty(const id_range_t *r) {
    return r->empty || memcmp(r->lower.bytes, r->upper.bytes, 16) > 0;
}

/* ---- answering ---- */

static void not_found(tf_http_req_t *req) {
    tf_http_respond_error(req, 404, "not_found", "no such job", NULL);
}

static void internal(tf_http_req_t *req, const char *what) {
    tf_http_respond_error(req, 500, "internal", what, NULL);
}

static void put_text(tf_jbuf_t *b, const PGresult *res, int row, int col) {
    tf_jbuf_str(b, PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col));
}

static void put_int(tf_jbuf_t *b, const PGresult *res, int row, int col) {
    if (PQgetisnull(res, row, col)) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_int(b, strtoll(PQgetvalue(res, row, col), NULL, 10));
    }
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

/* Runs `stmt` for the job in the path of `req`, with `extra` as $3 (or
 * none), and hands the reply to `cb` with `req` as its argument. */
static void run_for_job(tf_http_req_t *req, const tf_principal_t *who, const char *stmt,
                        const char *extra, tf_pg_cb cb) {
    char id[TF_UUID_STR_LEN + 1];
    if (path_job_id(req, id) != 0) {
        return;
    }
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    const char *values[3] = {who->tenant_id, id, extra};
    tf_pg_stmt_t st = {.prepared = stmt, .nparams = extra != NULL ? 3 : 2, .values = values};
    int rc = tf_pg_submit(lp->pg, &st, 1, 0, cb, req);
    if (rc != 0) {
        tf_api_respond_submit_error(req, rc);
    }
}

/* ---- GET /v1/jobs/{id} ---- */

static void get_done(const tf_pg_reply_t *reply, void *arg) {
    tf_http_req_t *req = arg;
    if (reply->status != 0) {
        tf_api_respond_pg_error(req, reply);
        return;
    }
    const PGresult *res = reply->results[0];
    if (PQntuples(res) != 1) {
        not_found(req);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    if (tf_job_json_write(&b, res, 0, 0) != 0) {
        tf_jbuf_free(&b);
        internal(req, "cannot show the job");
        return;
    }
    tf_api_respond_jbuf(req, 200, &b);
}

static void get_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    run_for_job(req, who, "jobs_read_get", NULL, get_done);
}

static void handle_get(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, get_authed, data);
}

/* ---- GET /v1/jobs/{id}/attempts ---- */

/* job_attempts.outcome as the API names it; -1 is the attempt in progress. */
static const char *outcome_name(int outcome) {
    static const char *const names[] = {"succeeded", "failed",        "failed",
                                        "timeout",   "lease_expired", "cancelled"};
    if (outcome == -1) {
        return "running";
    }
    return outcome >= 0 && outcome < 6 ? names[outcome] : NULL;
}

/* Columns: 0 attempt, 1 worker, 2 started_at, 3 finished_at, 4 duration_ms,
 * 5 outcome, 6 error_type, 7 error_message. */
static int write_attempt(tf_jbuf_t *b, const PGresult *res, int row) {
    const char *outcome = outcome_name(atoi(PQgetvalue(res, row, 5)));
    if (outcome == NULL) {
        return TF_EIO;
    }
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "attempt");
    put_int(b, res, row, 0);
    tf_jbuf_key(b, "worker");
    put_text(b, res, row, 1);
    tf_jbuf_key(b, "started_at");
    int rc = tf_job_json_time(b, res, row, 2);
    tf_jbuf_key(b, "finished_at");
    rc = rc != 0 ? rc : tf_job_json_time(b, res, row, 3);
    tf_jbuf_key(b, "duration_ms");
    put_int(b, res, row, 4);
    tf_jbuf_key(b, "outcome");
    tf_jbuf_str(b, outcome);
    tf_jbuf_key(b, "error");
    if (PQgetisnull(res, row, 6) && PQgetisnull(res, row, 7)) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_obj_open(b);
        tf_jbuf_key(b, "type");
        tf_jbuf_str(b, PQgetisnull(res, row, 6) ? "error" : PQgetvalue(res, row, 6));
        tf_jbuf_key(b, "message");
        tf_jbuf_str(b, PQgetvalue(res, row, 7)); /* "" when NULL */
        tf_jbuf_obj_close(b);
    }
    tf_jbuf_obj_close(b);
    return rc;
}

/* Answers {"<key>": [...]} from the rows of `reply`, written by `write`;
 * no row is 404, and a row whose column 0 is NULL stands for an empty
 * list. */
static void answer_history(tf_http_req_t *req, const tf_pg_reply_t *reply, const char *key,
                           int (*write)(tf_jbuf_t *b, const PGresult *res, int row)) {
    if (reply->status != 0) {
        tf_api_respond_pg_error(req, reply);
        return;
    }
    const PGresult *res = reply->results[0];
    if (PQntuples(res) == 0) {
        not_found(req);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, key);
    tf_jbuf_arr_open(&b);
    for (int row = 0; row < PQntuples(res); row++) {
        if (!PQgetisnull(res, row, 0) && write(&b, res, row) != 0) {
            tf_jbuf_free(&b);
            internal(req, "cannot show the job's history");
            return;
        }
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    tf_api_respond_jbuf(req, 200, &b);
}

static void attempts_done(const tf_pg_reply_t *reply, void *arg) {
    answer_history(arg, reply, "attempts", write_attempt);
}

static void attempts_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    char running[4];
    snprintf(running, sizeof(running), "%d", (int)TF_JOB_RUNNING);
    run_for_job(req, who, "jobs_read_attempts", running, attempts_done);
}

static void handle_attempts(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, attempts_authed, data);
}

/* ---- GET /v1/jobs/{id}/events ---- */

static const char *state_name_at(const PGresult *res, int row, int col) {
    return tf_job_state_name((tf_job_state_t)atoi(PQgetvalue(res, row, col)));
}

/* Columns: 0 id, 1 from_state, 2 to_state, 3 at, 4 reason, 5 actor. */
static int write_event(tf_jbuf_t *b, const PGresult *res, int row) {
    const char *to = state_name_at(res, row, 2);
    const char *from = PQgetisnull(res, row, 1) ? NULL : state_name_at(res, row, 1);
    if (to == NULL || (from == NULL && !PQgetisnull(res, row, 1))) {
        return TF_EIO;
    }
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "id");
    put_int(b, res, row, 0);
    tf_jbuf_key(b, "from");
    tf_jbuf_str(b, from);
    tf_jbuf_key(b, "to");
    tf_jbuf_str(b, to);
    tf_jbuf_key(b, "at");
    int rc = tf_job_json_time(b, res, row, 3);
    tf_jbuf_key(b, "reason");
    put_text(b, res, row, 4);
    tf_jbuf_key(b, "actor");
    put_text(b, res, row, 5);
    tf_jbuf_obj_close(b);
    return rc;
}

static void events_done(const tf_pg_reply_t *reply, void *arg) {
    answer_history(arg, reply, "events", write_event);
}

static void events_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    run_for_job(req, who, "jobs_read_events", NULL, events_done);
}

static void handle_events(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, events_authed, data);
}

/* ---- listings: query parameters ---- */

/* The filters of GET /v1/jobs and GET /v1/dead-letter.  Strings point into
 * the request (valid until it is answered). */
typedef struct {
    int dead_letter; /* which route: only queue, limit and cursor exist there */
    tf_job_state_set_t states;
    const char *queue, *type, *correlation_id, *cursor, *limit;
    int has_rule, has_after, has_before;
    tf_uuid_t rule_id;
    int64_t after_ms, before_ms;
    const char *bad_field; /* the first problem found */
    char message[200];
} filters_t;

/* Notes the first problem ("<field> <what>"); returns 1 to stop reading. */
static int refuse(filters_t *f, const char *field, const char *what) {
    f->bad_field = field;
    snprintf(f->message, sizeof(f->message), "%.64s %s", field, what);
    return 1;
}

/* state=A,B (and repeated): each name must be one of the seven. */
static int read_states(filters_t *f, const char *value) {
    for (const char *p = value;; p++) {
        size_t len = strcspn(p, ",");
        char name[16];
        tf_job_state_t state;
        if (len > 0 && len < sizeof(name)) {
            memcpy(name, p, len);
            name[len] = '\0';
        }
        if (len == 0 || len >= sizeof(name) || tf_job_state_parse(name, &state) != 0) {
            return refuse(f, "state",
                          "must name job states: PENDING, SCHEDULED, RUNNING, "
                          "SUCCEEDED, FAILED, DEAD or CANCELLED");
        }
        f->states |= TF_JOB_STATE_BIT(state);
        p += len;
        if (*p == '\0') {
            return 0;
        }
    }
}

/* A text filter of 1..max bytes of UTF-8, given at most once. */
static int read_text(filters_t *f, const char *name, const char *value, size_t max,
                     const char **out) {
    char what[48];
    snprintf(what, sizeof(what), "must be 1 to %zu bytes of UTF-8", max);
    if (*out != NULL) {
        return refuse(f, name, "may be given only once");
    }
    size_t len = strlen(value);
    if (len == 0 || len > max || !tf_utf8_valid(value, len)) {
        return refuse(f, name, what);
    }
    *out = value;
    return 0;
}

static int read_time(filters_t *f, const char *name, const char *value, int *has, int64_t *ms) {
    if (*has || tf_time_parse(value, strlen(value), ms) != 0) {
        return refuse(f, name,
                      *has ? "may be given only once"
                           : "must be an RFC 3339 time like 2026-11-26T07:00:00.000Z");
    }
    *has = 1;
    return 0;
}

/* The filters only GET /v1/jobs has; -1 for an unknown name. */
static int read_job_filter(filters_t *f, const char *name, const char *value) {
    if (strcmp(name, "state") == 0) {
        return read_states(f, value);
    }
    if (strcmp(name, "type") == 0) {
        return read_text(f, name, value, TF_JOB_NAME_MAX, &f->type);
    }
    if (strcmp(name, "correlation_id") == 0) {
        return read_text(f, name, value, CORRELATION_MAX, &f->correlation_id);
    }
    if (strcmp(name, "rule_id") == 0) {
        if (f->has_rule || tf_uuid_parse(value, &f->rule_id) != 0) {
            return refuse(f, name, "must be one UUID");
        }
        f->has_rule = 1;
        return 0;
    }
    if (strcmp(name, "created_after") == 0) {
        return read_time(f, name, value, &f->has_after, &f->after_ms);
    }
    if (strcmp(name, "created_before") == 0) {
        return read_time(f, name, value, &f->has_before, &f->before_ms);
    }
    return -1;
}

/* tf_http_req_query_each() callback: one query parameter.  `limit` is only
 * noted here; tf_api_limit() reads it. */
static int read_param(const char *name, const char *value, void *arg) {
    filters_t *f = arg;
    if (strcmp(name, "queue") == 0) {
        int rc = read_text(f, name, value, TF_JOB_NAME_MAX, &f->queue);
        if (rc == 0 && !tf_queue_name_valid(value)) {
            return refuse(f, name, "may hold only letters, digits and _ . : -");
        }
        return rc;
    }
    if (strcmp(name, "cursor") == 0 || strcmp(name, "limit") == 0) {
        const char **seen = name[0] == 'c' ? &f->cursor : &f->limit;
        if (*seen != NULL) {
            return refuse(f, name, "may be given only once");
        }
        *seen = value;
        return 0;
    }
    int rc = f->dead_letter ? -1 : read_job_filter(f, name, value);
    return rc < 0 ? refuse(f, name, "is not a query parameter of this route") : rc;
}

/* Appends `value` to the scope as "<tag><length>:<value>|" (NULL as
 * "<tag>-|"), so that no two filter sets give the same text. */
static void scope_add(char *scope, const char *tag, const char *value) {
    size_t used = strlen(scope);
    if (value == NULL) {
        snprintf(scope + used, SCOPE_MAX - used, "%s-|", tag);
    } else {
        snprintf(scope + used, SCOPE_MAX - used, "%s%zu:%s|", tag, strlen(value), value);
    }
}

/* The cursor scope: the route, the tenant and the canonical filters. */
static void scope_build(const filters_t *f, const char *tenant_id, char scope[SCOPE_MAX]) {
    char rule[TF_UUID_STR_LEN + 1], after[24], before[24];
    snprintf(scope, SCOPE_MAX, "%s|%s|s%u|", f->dead_letter ? "dead" : "jobs", tenant_id,
             (unsigned)f->states);
    tf_uuid_format(&f->rule_id, rule);
    snprintf(after, sizeof(after), "%lld", (long long)f->after_ms);
    snprintf(before, sizeof(before), "%lld", (long long)f->before_ms);
    scope_add(scope, "q", f->queue);
    scope_add(scope, "t", f->type);
    scope_add(scope, "c", f->correlation_id);
    scope_add(scope, "r", f->has_rule ? rule : NULL);
    scope_add(scope, "a", f->has_after ? after : NULL);
    scope_add(scope, "b", f->has_before ? before : NULL);
}

/* ---- listings: running the page ---- */

/* One listing request, from its query to its answer. */
typedef struct {
    tf_http_req_t *req;
    const tf_app_env_t *env;
    int limit;
    char scope[SCOPE_MAX];
} page_t;

/* Writes {"jobs": [...], "next_cursor": ...}: at most `limit` rows; a row
 * beyond them means another page, which starts after the last row shown. */
static void page_done(const tf_pg_reply_t *reply, void *arg) {
    page_t *page = arg;
    tf_http_req_t *req = page->req;
    if (reply->status != 0) {
        tf_api_respond_pg_error(req, reply);
        free(page);
        return;
    }
    const PGresult *res = reply->results[0];
    int rows = PQntuples(res), shown = rows > page->limit ? page->limit : rows, rc = 0;
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "jobs");
    tf_jbuf_arr_open(&b);
    for (int row = 0; row < shown && rc == 0; row++) {
        rc = tf_job_json_write(&b, res, row, 0);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_key(&b, "next_cursor");
    tf_uuid_t last;
    if (rc == 0 && rows > shown && tf_uuid_parse(PQgetvalue(res, shown - 1, 0), &last) == 0) {
        char cursor[TF_CURSOR_TEXT_LEN];
        tf_cursor_encode(page->env->cursor_key, page->scope, &last, tf_app_now_ms(), cursor);
        tf_jbuf_str(&b, cursor);
    } else if (rc == 0 && rows > shown) {
        rc = TF_EIO;
    } else {
        tf_jbuf_null(&b);
    }
    tf_jbuf_obj_close(&b);
    if (rc != 0) {
        tf_jbuf_free(&b);
        internal(req, "cannot show the jobs");
    } else {
        tf_api_respond_jbuf(req, 200, &b);
    }
    free(page);
}

/* The id range of the page: the filters' created range and the cursor.
 * Answers 422 and returns -1 for a cursor this query must refuse. */
static int page_range(page_t *page, const filters_t *f, id_range_t *r) {
    range_init(r);
    if (f->has_after) {
        range_created_after(r, f->after_ms);
    }
    if (f->has_before) {
        range_created_before(r, f->before_ms);
    }
    if (f->cursor != NULL) {
        tf_uuid_t last;
        const char *why = NULL;
        if (tf_cursor_decode(page->env->cursor_key, page->scope, f->cursor, tf_app_now_ms(), &last,
                             &why) != 0) {
            tf_api_invalid(page->req, "cursor", why);
            return -1;
        }
        range_after_id(r, &last);
    }
    return 0;
}

/* The states as a PostgreSQL smallint[] literal, or NULL for all. */
static const char *states_literal(tf_job_state_set_t states, char out[32]) {
    if (states == 0) {
        return NULL;
    }
    size_t used = 0;
    out[used++] = '{';
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        if (states & TF_JOB_STATE_BIT(s)) {
            used += (size_t)snprintf(out + used, 32 - used, "%s%d", used > 1 ? "," : "", s);
        }
    }
    snprintf(out + used, 32 - used, "}");
    return out;
}

/* The statement whose index drives the scan best for these filters. */
static const char *list_statement(const filters_t *f) {
    if (f->dead_letter) {
        return f->queue != NULL ? "jobs_read_dead_queue" : "jobs_read_dead";
    }
    if (f->correlation_id != NULL) {
        return "jobs_read_list_correlation";
    }
    if (f->has_rule) {
        return "jobs_read_list_rule";
    }
    if (f->type != NULL) {
        return "jobs_read_list_type";
    }
    return f->queue != NULL ? "jobs_read_list_queue" : "jobs_read_list";
}

/* Submits the page's statement; `page` goes to page_done(). */
static void page_submit(page_t *page, const filters_t *f, const char *tenant_id,
                        const id_range_t *r) {
    char lower[TF_UUID_STR_LEN + 1], upper[TF_UUID_STR_LEN + 1], rule[TF_UUID_STR_LEN + 1];
    char rows[16], states[32];
    tf_uuid_format(&r->lower, lower);
    tf_uuid_format(&r->upper, upper);
    tf_uuid_format(&f->rule_id, rule);
    snprintf(rows, sizeof(rows), "%d", page->limit + 1);
    const char *state_set = states_literal(f->states, states), *rule_id = f->has_rule ? rule : NULL;
    const char *job_values[9] = {tenant_id,         lower,   upper, state_set, f->queue, f->type,
                                 f->correlation_id, rule_id, rows};
    const char *dead_values[5] = {tenant_id, lower, upper, rows, f->queue};
    tf_pg_stmt_t st = {
        .prepared = list_statement(f),
        .nparams = f->dead_letter ? (f->queue != NULL ? 5 : 4) : 9,
        .values = f->dead_letter ? dead_values : job_values,
    };
    tf_app_loop_t *lp = tf_http_req_loop_ctx(page->req);
    int rc = tf_pg_submit(lp->pg, &st, 1, 0, page_done, page);
    if (rc != 0) {
        tf_api_respond_submit_error(page->req, rc);
        free(page);
    }
}

/* GET /v1/jobs and GET /v1/dead-letter, told apart by the route. */
static void list_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    filters_t f = {.dead_letter = strcmp(tf_http_req_route(req), "/v1/dead-letter") == 0};
    if (tf_http_req_query_each(req, read_param, &f) != 0) {
        tf_api_invalid(req, f.bad_field, f.message);
        return;
    }
    int limit = tf_api_limit(req);
    if (limit < 0) {
        return;
    }
    if (f.states == (TF_JOB_STATE_BIT(TF_JOB_STATE_COUNT) - 1)) {
        f.states = 0; /* every state: the same query as none */
    }
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    page_t *page = malloc(sizeof(*page));
    if (page == NULL) {
        internal(req, "out of memory");
        return;
    }
    *page = (page_t){.req = req, .env = lp->env, .limit = limit};
    scope_build(&f, who->tenant_id, page->scope);
    id_range_t r;
    if (page_range(page, &f, &r) != 0) {
        free(page);
        return;
    }
    if (range_is_empty(&r)) {
        static const char body[] = "{\"jobs\":[],\"next_cursor\":null}";
        tf_http_respond(req, 200, "application/json", body, sizeof(body) - 1);
        free(page);
        return;
    }
    page_submit(page, &f, who->tenant_id, &r);
}

static void handle_list(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, list_authed, data);
}

int tf_jobs_read_register(tf_router_t *router, const tf_app_env_t *env) {
    (void)env;
    int rc = tf_router_add(router, "GET", "/v1/jobs", handle_list, NULL);
    if (rc == 0) {
        rc = tf_router_add(router, "GET", "/v1/jobs/{id}", handle_get, NULL);
    }
    if (rc == 0) {
        rc = tf_router_add(router, "GET", "/v1/jobs/{id}/attempts", handle_attempts, NULL);
    }
    if (rc == 0) {
        rc = tf_router_add(router, "GET", "/v1/jobs/{id}/events", handle_events, NULL);
    }
    if (rc == 0) {
        rc = tf_router_add(router, "GET", "/v1/dead-letter", handle_list, NULL);
    }
    return rc;
}
