/*
 * jobs_submit.c - POST /v1/jobs and POST /v1/jobs/batch.
 *
 * Group commit.  Single submissions are not written one by one: each loop's
 * submitter queues them and writes everything queued with ONE statement
 * (submit_sql.h) in one transaction whenever one of its in-flight slots is
 * free (as many slots as the loop has database connections).  At low load a
 * submission goes out at once, alone; under load, the submissions that
 * arrive while a write is in flight share the next one.  Every client is
 * answered only after the statement that holds its row has committed.
 *
 * Idempotency: a key seen again with the same canonical body answers 200
 * with the first job, with another body 409.  Two submissions of one key in
 * the same flush are folded (the later ones wait for the first and are then
 * looked up); two in different flushes or nodes meet at the unique index
 * and the loser looks the winner up (a second round trip, only then).
 *
 * A batch is its own all-or-nothing statement.  Loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/app/api.h"
#include "adapters/app/jobs.h"
#include "adapters/app/submission.h"
#include "adapters/app/submit_sql.h"
#include "engine/error.h"
#include "engine/job.h"

#define FLUSH_MAX_ROWS 1000
#define BATCH_MAX_JOBS 1000

struct tf_submitter {
    tf_app_loop_t *lp;
    tf_submission_t *head, *tail; /* waiting for a flush */
    int pending;
    int in_flight;
    int max_in_flight;
    int closing;
    void (*closed_cb)(void *arg);
    void *closed_arg;
    tf_metric_t *group_size;
};

typedef struct {
    tf_submitter_t *owner;
    tf_submission_t *rows; /* in ord order */
    int count;
} flush_t;

const tf_pg_prepared_t tf_jobs_submit_prepared[] = {
    {"jobs_submit", TF_SUBMIT_SQL},
    {"jobs_submit_by_key", TF_SUBMIT_BY_KEY_SQL},
    {"jobs_submit_by_ids", TF_SUBMIT_BY_IDS_SQL},
    {"jobs_submit_notify", TF_SUBMIT_NOTIFY_SQL},
};
const size_t tf_jobs_submit_prepared_count =
    sizeof(tf_jobs_submit_prepared) / sizeof(tf_jobs_submit_prepared[0]);

static void flush(tf_submitter_t *s);

/* ---- wake-ups ---- */

/* Queues whose workers a submission wakes: "<queue>" or "<queue>|builtin",
 * collected (without repeats) into a text[] literal for
 * TF_SUBMIT_NOTIFY_SQL.  Queue names need no quoting ([A-Za-z0-9_.:-]). */
typedef struct {
    char *text;
    size_t len, cap;
} wake_t;

static void wake_add(wake_t *w, const tf_submission_t *sub) {
    if (sub->scheduled) {
        return; /* the promoter wakes them when they are due */
    }
    char item[TF_JOB_NAME_MAX + 16];
    int n = snprintf(item, sizeof(item), "%s%s", sub->queue, sub->executor ? "|builtin" : "");
    for (const char *p = w->text != NULL ? w->text + 1 : NULL; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == (size_t)n && strncmp(p, item, len) == 0) {
            return;
        }
        p += len + (p[len] == ',');
    }
    if (w->len + (size_t)n + 3 > w->cap) {
        size_t cap = (w->cap ? w->cap * 2 : 128) + (size_t)n;
        char *grown = realloc(w->text, cap);
        if (grown == NULL) {
            return; /* a lost wake-up costs a poll interval, nothing more */
        }
        w->text = grown;
        w->cap = cap;
    }
    w->len += (size_t)sprintf(w->text + w->len, "%s%s", w->len == 0 ? "{" : ",", item);
}

/* Closes the literal; NULL when nothing needs waking.  Caller frees. */
static char *wake_finish(wake_t *w) {
    if (w->len == 0) {
        free(w->text);
        return NULL;
    }
    memcpy(w->text + w->len, "}", 2);
    return w->text;
}

/* Sends `submit` and, in the same transaction, the wake-up. */
static int submit_with_wake(tf_app_loop_t *lp, const char *rows, const char *batch_mode, char *wake,
                            tf_pg_cb cb, void *arg) {
    const char *submit_values[2] = {rows, batch_mode};
    const char *wake_values[1] = {wake};
    tf_pg_stmt_t stmts[2] = {
        {.prepared = "jobs_submit", .nparams = 2, .values = submit_values},
        {.prepared = "jobs_submit_notify", .nparams = 1, .values = wake_values},
    };
    int rc = tf_pg_submit(lp->pg, stmts, wake != NULL ? 2 : 1, 0, cb, arg);
    free(wake);
    return rc;
}

/* ---- answering ---- */

static void answer_created(tf_submission_t *sub) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_submission_write_job(&b, sub);
    tf_api_respond_jbuf(sub->req, 201, &b);
}

/* Answers from an existing job (TF_SUBMIT_BY_KEY_SQL's row: its request
 * hash, then the job's columns). */
static void answer_existing(tf_submission_t *sub, const PGresult *res) {
    if (strcmp(PQgetvalue(res, 0, 0), sub->request_hash) != 0) {
        tf_http_respond_error(sub->req, 409, "conflict",
                              "idempotency_key was already used with another request body",
                              "{\"field\":\"idempotency_key\"}");
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    if (tf_job_json_write(&b, res, 0, 1) != 0) {
        tf_jbuf_free(&b);
        tf_http_respond_error(sub->req, 500, "internal", "cannot show the existing job", NULL);
        return;
    }
    tf_api_respond_jbuf(sub->req, 200, &b);
}

static void by_key_done(const tf_pg_reply_t *reply, void *arg) {
    tf_submission_t *sub = arg;
    if (reply->status != 0) {
        tf_api_respond_pg_error(sub->req, reply);
    } else if (PQntuples(reply->results[0]) != 1) {
        tf_http_respond_error(sub->req, 503, "unavailable",
                              "a concurrent request with this idempotency_key did not finish; "
                              "try again",
                              NULL);
    } else {
        answer_existing(sub, reply->results[0]);
    }
    tf_submission_free(sub);
}

/* Looks the job with sub's idempotency key up and answers from it. */
static void answer_by_key(tf_submitter_t *s, tf_submission_t *sub) {
    const char *values[2] = {sub->tenant_id, sub->idempotency_key};
    tf_pg_stmt_t stmt = {.prepared = "jobs_submit_by_key", .nparams = 2, .values = values};
    int rc = tf_pg_submit(s->lp->pg, &stmt, 1, 0, by_key_done, sub);
    if (rc != 0) {
        tf_api_respond_submit_error(sub->req, rc);
        tf_submission_free(sub);
    }
}

/* The first missing parent's position in sub's depends_on, for the 422. */
static void answer_missing_parent(tf_submission_t *sub, const char *missing) {
    char field[48] = "depends_on", message[160];
    size_t len = strcspn(missing, ",");
    const char *at = strstr(sub->depends_on, "\"");
    for (int i = 0; at != NULL; i++) {
        if (strncmp(at + 1, missing, len) == 0) {
            snprintf(field, sizeof(field), "depends_on[%d]", i);
            break;
        }
        at = strstr(at + 1, "\",\"");
        at = at != NULL ? at + 2 : NULL;
    }
    snprintf(message, sizeof(message), "%s names job %.*s, which this tenant does not have", field,
             (int)len, missing);
    tf_api_invalid(sub->req, field, message);
}

/* Settles one submission from its result row; returns 1 when `sub` is
 * still needed (an asynchronous lookup took it over). */
static int settle(tf_submitter_t *s, tf_submission_t *sub, const PGresult *res, int row) {
    if (!PQgetisnull(res, row, TF_SUBMIT_COL_STATE)) {
        sub->state = atoi(PQgetvalue(res, row, TF_SUBMIT_COL_STATE));
        answer_created(sub);
    } else if (!PQgetisnull(res, row, TF_SUBMIT_COL_MISSING)) {
        answer_missing_parent(sub, PQgetvalue(res, row, TF_SUBMIT_COL_MISSING));
    } else {
        /* The key exists (or a concurrent request just created it): read
         * that job and compare bodies. */
        answer_by_key(s, sub);
        return 1;
    }
    return 0;
}

/* ---- the group-commit submitter ---- */

static void maybe_closed(tf_submitter_t *s) {
    if (s->closing && s->in_flight == 0 && s->pending == 0) {
        void (*cb)(void *) = s->closed_cb;
        void *arg = s->closed_arg;
        free(s);
        if (cb != NULL) {
            cb(arg);
        }
    }
}

static void answer_dups(tf_submitter_t *s, tf_submission_t *lead) {
    tf_submission_t *dup = lead->dups;
    lead->dups = NULL;
    while (dup != NULL) {
        tf_submission_t *next = dup->next;
        dup->next = NULL;
        answer_by_key(s, dup);
        dup = next;
    }
}

static void fail_all(tf_submission_t *rows, const tf_pg_reply_t *reply) {
    while (rows != NULL) {
        tf_submission_t *next = rows->next;
        for (tf_submission_t *d = rows->dups, *dn; d != NULL; d = dn) {
            dn = d->next;
            tf_api_respond_pg_error(d->req, reply);
            tf_submission_free(d);
        }
        tf_api_respond_pg_error(rows->req, reply);
        tf_submission_free(rows);
        rows = next;
    }
}

static void flush_done(const tf_pg_reply_t *reply, void *arg) {
    flush_t *f = arg;
    tf_submitter_t *s = f->owner;
    tf_submission_t *sub = f->rows;
    if (reply->status != 0 || PQntuples(reply->results[0]) != f->count) {
        fail_all(sub, reply);
    } else {
        for (int row = 0; sub != NULL; row++) {
            tf_submission_t *next = sub->next;
            sub->next = NULL;
            answer_dups(s, sub);
            if (!settle(s, sub, reply->results[0], row)) {
                tf_submission_free(sub);
            }
            sub = next;
        }
    }
    s->in_flight--;
    free(f);
    flush(s);
    maybe_closed(s);
}

/* Takes up to FLUSH_MAX_ROWS queued submissions into one statement. */
static void flush_one(tf_submitter_t *s) {
    flush_t *f = calloc(1, sizeof(*f));
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    tf_submission_t *last = NULL;
    wake_t wake = {0};
    while (s->head != NULL && f != NULL && f->count < FLUSH_MAX_ROWS) {
        tf_submission_t *sub = s->head;
        tf_submission_write_row(&b, sub, f->count);
        wake_add(&wake, sub);
        s->head = sub->next;
        s->pending--;
        if (last == NULL) {
            f->rows = sub;
        } else {
            last->next = sub;
        }
        sub->next = NULL;
        last = sub;
        f->count++;
    }
    if (s->head == NULL) {
        s->tail = NULL;
    }
    tf_jbuf_arr_close(&b);
    char *rows = NULL;
    size_t len = 0;
    tf_pg_reply_t oom = {.status = TF_ENOMEM, .failed_index = -1};
    char *woken = wake_finish(&wake);
    if (f == NULL || tf_jbuf_finish(&b, &rows, &len) != 0) {
        free(woken);
        fail_all(f != NULL ? f->rows : NULL, &oom);
        free(f);
        return;
    }
    tf_metric_observe(s->group_size, f->count);
    f->owner = s;
    int rc = submit_with_wake(s->lp, rows, "false", woken, flush_done, f);
    free(rows);
    if (rc != 0) {
        tf_pg_reply_t failed = {.status = rc, .failed_index = -1};
        fail_all(f->rows, &failed);
        free(f);
        return;
    }
    s->in_flight++;
}

static void flush(tf_submitter_t *s) {
    while (s->pending > 0 && s->in_flight < s->max_in_flight) {
        flush_one(s);
    }
}

/* Queues `sub`, folding it into a queued submission of the same key. */
static void enqueue(tf_submitter_t *s, tf_submission_t *sub) {
    if (sub->idempotency_key != NULL) {
        for (tf_submission_t *q = s->head; q != NULL; q = q->next) {
            if (q->idempotency_key != NULL &&
                strcmp(q->idempotency_key, sub->idempotency_key) == 0 &&
                strcmp(q->tenant_id, sub->tenant_id) == 0) {
                sub->next = q->dups;
                q->dups = sub;
                return;
            }
        }
    }
    if (s->tail == NULL) {
        s->head = sub;
    } else {
        s->tail->next = sub;
    }
    s->tail = sub;
    s->pending++;
    flush(s);
}

int tf_submitter_create(uv_loop_t *loop, tf_app_loop_t *lp, tf_submitter_t **out) {
    (void)loop;
    tf_submitter_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return TF_ENOMEM;
    }
    s->lp = lp;
    s->max_in_flight = lp->env->cfg->pg_pool_size;
    static const double bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000};
    tf_metric_family_t *family = NULL;
    if (lp->env->metrics != NULL &&
        tf_metrics_histogram(lp->env->metrics, "taskflow_submit_group_size",
                             "Jobs written by one group-commit statement", NULL, 0, bounds,
                             sizeof(bounds) / sizeof(bounds[0]), &family) == 0) {
        s->group_size = tf_metric_get(family, NULL);
    }
    *out = s;
    return 0;
}

void tf_submitter_close(tf_submitter_t *s, void (*closed_cb)(void *arg), void *arg) {
    s->closing = 1;
    s->closed_cb = closed_cb;
    s->closed_arg = arg;
    tf_pg_reply_t shutdown = {.status = TF_ESHUTDOWN, .failed_index = -1};
    tf_submission_t *rows = s->head;
    s->head = s->tail = NULL;
    s->pending = 0;
    fail_all(rows, &shutdown);
    maybe_closed(s);
}

/* ---- POST /v1/jobs ---- */

static void submit_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    int answered = 0;
    json_t *body = tf_api_body(req, 1, &answered);
    if (body == NULL) {
        return;
    }
    tf_job_input_t in;
    tf_verr_t err;
    tf_submission_t *sub = NULL;
    int rc = tf_job_input_parse(body, "", &in, &err);
    if (rc == TF_EINVAL) {
        tf_api_invalid(req, err.field, err.message);
    } else if (rc == 0) {
        rc = tf_submission_create(lp, who->tenant_id, who->actor, &in, body, tf_http_req_id(req),
                                  tf_app_now_ms(), &sub);
        tf_job_input_free(&in);
    }
    if (rc != 0 && rc != TF_EINVAL) {
        tf_http_respond_error(req, 500, "internal", tf_strerror(rc), NULL);
    }
    json_decref(body);
    if (sub != NULL) {
        sub->req = req;
        enqueue(lp->submitter, sub);
    }
}

static void handle_submit(tf_http_req_t *req, void *data) {
    (void)data;
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, submit_authed, NULL);
}

/* ---- POST /v1/jobs/batch ---- */

typedef struct {
    tf_http_req_t *req;
    tf_submission_t **subs; /* n entries, in request order */
    int *alias;             /* alias[i] >= 0: same job as subs[alias[i]] */
    int *row;               /* row[i]: result row of a unique submission */
    int n;
} batch_t;

static void batch_free(batch_t *bt) {
    for (int i = 0; bt->subs != NULL && i < bt->n; i++) {
        tf_submission_free(bt->subs[i]);
    }
    free(bt->subs);
    free(bt->alias);
    free(bt->row);
    free(bt);
}

/* Answers a batch aborted by tf_abort('tf_batch:<ord>:<problem>:...'). */
static void batch_aborted(batch_t *bt, const tf_pg_reply_t *reply) {
    const char *at = reply->message != NULL ? strstr(reply->message, "tf_batch:") : NULL;
    int ord = -1, consumed = 0;
    if (at == NULL || sscanf(at, "tf_batch:%d:%n", &ord, &consumed) != 1 || ord < 0) {
        tf_api_respond_pg_error(bt->req, reply);
        return;
    }
    int index = 0;
    while (index < bt->n && !(bt->alias[index] < 0 && bt->row[index] == ord)) {
        index++;
    }
    const char *problem = at + consumed;
    char field[80], message[200];
    if (strncmp(problem, "missing_parent:", 15) == 0) {
        snprintf(field, sizeof(field), "jobs[%d].depends_on", index);
        snprintf(message, sizeof(message), "%s names a job this tenant does not have (%.36s)",
                 field, problem + 15);
        tf_api_invalid(bt->req, field, message);
    } else if (strncmp(problem, "conflict", 8) == 0) {
        snprintf(field, sizeof(field), "{\"field\":\"jobs[%d].idempotency_key\"}", index);
        tf_http_respond_error(bt->req, 409, "conflict",
                              "idempotency_key was already used with another request body", field);
    } else {
        tf_http_respond_error(bt->req, 503, "unavailable",
                              "a concurrent request with the same idempotency_key is in progress; "
                              "try again",
                              NULL);
    }
}

/* Writes the batch's answer: new jobs from their submissions, existing ones
 * (idempotent replays) from `existing` (job columns, any order) or NULL. */
static void batch_answer(batch_t *bt, const PGresult *res, const PGresult *existing) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "jobs");
    tf_jbuf_arr_open(&b);
    int rc = 0;
    for (int i = 0; i < bt->n && rc == 0; i++) {
        int u = bt->alias[i] >= 0 ? bt->alias[i] : i;
        int row = bt->row[u];
        if (!PQgetisnull(res, row, TF_SUBMIT_COL_STATE)) {
            bt->subs[u]->state = atoi(PQgetvalue(res, row, TF_SUBMIT_COL_STATE));
            tf_submission_write_job(&b, bt->subs[u]);
            continue;
        }
        const char *id = PQgetvalue(res, row, TF_SUBMIT_COL_EXISTING_ID);
        int found = -1;
        for (int k = 0; existing != NULL && k < PQntuples(existing) && found < 0; k++) {
            found = strcmp(PQgetvalue(existing, k, 0), id) == 0 ? k : -1;
        }
        rc = found < 0 ? TF_EIO : tf_job_json_write(&b, existing, found, 0);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    if (rc != 0) {
        tf_jbuf_free(&b);
        tf_http_respond_error(bt->req, 500, "internal", "cannot show the jobs", NULL);
    } else {
        tf_api_respond_jbuf(bt->req, 201, &b);
    }
}

typedef struct {
    batch_t *bt;
    PGresult *res; /* the insert's result, kept until the lookup answers */
} batch_lookup_t;

static void batch_existing_done(const tf_pg_reply_t *reply, void *arg) {
    batch_lookup_t *lk = arg;
    if (reply->status != 0) {
        tf_api_respond_pg_error(lk->bt->req, reply);
    } else {
        batch_answer(lk->bt, lk->res, reply->results[0]);
    }
    PQclear(lk->res);
    batch_free(lk->bt);
    free(lk);
}

/* Reads the jobs that idempotent replays in the batch point at, then
 * answers.  Returns 0 when the lookup took the batch over. */
static int batch_read_existing(batch_t *bt, const PGresult *res) {
    /* The ids as a uuid[] literal: "{id,id,...}". */
    char *text = malloc((size_t)PQntuples(res) * (TF_UUID_STR_LEN + 1) + 3);
    if (text == NULL) {
        return TF_ENOMEM;
    }
    size_t len = 0;
    text[len++] = '{';
    for (int row = 0; row < PQntuples(res); row++) {
        if (!PQgetisnull(res, row, TF_SUBMIT_COL_EXISTING_ID)) {
            len += (size_t)sprintf(text + len, "%s%.36s", len > 1 ? "," : "",
                                   PQgetvalue(res, row, TF_SUBMIT_COL_EXISTING_ID));
        }
    }
    memcpy(text + len, "}", 2);
    batch_lookup_t *lk = calloc(1, sizeof(*lk));
    if (lk != NULL) {
        lk->res = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
    }
    if (lk == NULL || lk->res == NULL) {
        free(lk);
        free(text);
        return TF_ENOMEM;
    }
    lk->bt = bt;
    const char *values[2] = {bt->subs[0]->tenant_id, text};
    tf_pg_stmt_t stmt = {.prepared = "jobs_submit_by_ids", .nparams = 2, .values = values};
    tf_app_loop_t *lp = tf_http_req_loop_ctx(bt->req);
    int rc = tf_pg_submit(lp->pg, &stmt, 1, 0, batch_existing_done, lk);
    free(text);
    if (rc != 0) {
        PQclear(lk->res);
        free(lk);
    }
    return rc;
}

static void batch_done(const tf_pg_reply_t *reply, void *arg) {
    batch_t *bt = arg;
    if (reply->status != 0) {
        batch_aborted(bt, reply);
        batch_free(bt);
        return;
    }
    const PGresult *res = reply->results[0];
    int replays = 0;
    for (int row = 0; row < PQntuples(res); row++) {
        replays += !PQgetisnull(res, row, TF_SUBMIT_COL_EXISTING_ID);
    }
    if (replays == 0) {
        batch_answer(bt, res, NULL);
    } else if (batch_read_existing(bt, res) == 0) {
        return;
    } else {
        tf_http_respond_error(bt->req, 503, "unavailable", "cannot read the existing jobs", NULL);
    }
    batch_free(bt);
}

/* Checks the envelope {"jobs":[...]}; answers and returns NULL when bad. */
static json_t *batch_jobs(tf_http_req_t *req, json_t *body) {
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "jobs") != 0) {
            char message[160];
            snprintf(message, sizeof(message), "%.100s is not a known field", key);
            tf_api_invalid(req, key, message);
            return NULL;
        }
    }
    json_t *jobs = json_object_get(body, "jobs");
    if (!json_is_array(jobs) || json_array_size(jobs) == 0 ||
        json_array_size(jobs) > BATCH_MAX_JOBS) {
        tf_api_invalid(req, "jobs", "jobs must be an array of 1 to 1000 jobs");
        return NULL;
    }
    return jobs;
}

/* Marks repeats of an idempotency key: same body -> alias of the first;
 * another body -> answers 409 and returns -1. */
static int batch_fold_keys(batch_t *bt, int i) {
    tf_submission_t *sub = bt->subs[i];
    bt->alias[i] = -1;
    for (int k = 0; sub->idempotency_key != NULL && k < i; k++) {
        tf_submission_t *other = bt->subs[k];
        if (bt->alias[k] >= 0 || other->idempotency_key == NULL ||
            strcmp(other->idempotency_key, sub->idempotency_key) != 0) {
            continue;
        }
        if (strcmp(other->request_hash, sub->request_hash) != 0) {
            char details[80];
            snprintf(details, sizeof(details), "{\"field\":\"jobs[%d].idempotency_key\"}", i);
            tf_http_respond_error(bt->req, 409, "conflict",
                                  "idempotency_key repeats an earlier job of this batch with "
                                  "another body",
                                  details);
            return -1;
        }
        bt->alias[i] = k;
        return 0;
    }
    return 0;
}

/* Reads every job of the batch; answers and returns non-zero on the first
 * bad one. */
static int batch_read(batch_t *bt, const tf_principal_t *who, json_t *jobs) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(bt->req);
    int64_t now_ms = tf_app_now_ms();
    for (int i = 0; i < bt->n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "jobs[%d].", i);
        tf_job_input_t in;
        tf_verr_t err;
        json_t *job = json_array_get(jobs, (size_t)i);
        int rc = tf_job_input_parse(job, prefix, &in, &err);
        if (rc == TF_EINVAL) {
            tf_api_invalid(bt->req, err.field, err.message);
            return rc;
        }
        if (rc == 0) {
            rc = tf_submission_create(lp, who->tenant_id, who->actor, &in, job,
                                      tf_http_req_id(bt->req), now_ms, &bt->subs[i]);
            tf_job_input_free(&in);
        }
        if (rc != 0) {
            tf_http_respond_error(bt->req, 500, "internal", tf_strerror(rc), NULL);
            return rc;
        }
        if (batch_fold_keys(bt, i) != 0) {
            return TF_ECONFLICT;
        }
    }
    return 0;
}

static void batch_send(batch_t *bt) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(bt->req);
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    int ord = 0;
    wake_t wake = {0};
    for (int i = 0; i < bt->n; i++) {
        if (bt->alias[i] < 0) {
            bt->row[i] = ord;
            tf_submission_write_row(&b, bt->subs[i], ord++);
            wake_add(&wake, bt->subs[i]);
        }
    }
    char *woken = wake_finish(&wake);
    tf_jbuf_arr_close(&b);
    char *rows = NULL;
    size_t len = 0;
    if (tf_jbuf_finish(&b, &rows, &len) != 0) {
        free(woken);
        tf_http_respond_error(bt->req, 500, "internal", "out of memory", NULL);
        batch_free(bt);
        return;
    }
    int rc = submit_with_wake(lp, rows, "true", woken, batch_done, bt);
    free(rows);
    if (rc != 0) {
        tf_api_respond_submit_error(bt->req, rc);
        batch_free(bt);
    }
}

static void batch_authed(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    (void)arg;
    int answered = 0;
    json_t *body = tf_api_body(req, 1, &answered);
    json_t *jobs = body != NULL ? batch_jobs(req, body) : NULL;
    if (jobs == NULL) {
        json_decref(body);
        return;
    }
    batch_t *bt = calloc(1, sizeof(*bt));
    int n = (int)json_array_size(jobs);
    if (bt != NULL) {
        bt->req = req;
        bt->n = n;
        bt->subs = calloc((size_t)n, sizeof(*bt->subs));
        bt->alias = calloc((size_t)n, sizeof(*bt->alias));
        bt->row = calloc((size_t)n, sizeof(*bt->row));
    }
    if (bt == NULL || bt->subs == NULL || bt->alias == NULL || bt->row == NULL) {
        tf_http_respond_error(req, 500, "internal", "out of memory", NULL);
        if (bt != NULL) {
            batch_free(bt);
        }
    } else if (batch_read(bt, who, jobs) != 0) {
        batch_free(bt);
    } else {
        batch_send(bt);
    }
    json_decref(body);
}

static void handle_batch(tf_http_req_t *req, void *data) {
    (void)data;
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    tf_auth_request(&lp->auth, req, TF_AUTH_TENANT, batch_authed, NULL);
}

int tf_jobs_submit_register(tf_router_t *router, const tf_app_env_t *env) {
    (void)env;
    int rc = tf_router_add(router, "POST", "/v1/jobs", handle_submit, NULL);
    return rc != 0 ? rc : tf_router_add(router, "POST", "/v1/jobs/batch", handle_batch, NULL);
}
