/*
 * jobs_submit.c - POST /v1/jobs and POST /v1/jobs/batch.
 *
 * Each request is read and validated whole (job_input.h) before anything
 * is written; then the submit use case (adapters/usecases/submit.h) writes
 * it: single submissions through the loop's group-commit submitter,
 * batches all or nothing.  Answers: 201 with the new job(s), 200 with the
 * earlier job of an idempotent replay, 409 for a key reused with another
 * body, 422 naming the field, 503 while a concurrent request with the same
 * key has not committed.  Loop thread of the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/api/jobs.h"
#include "adapters/api/job_json.h"
#include "adapters/jobspec/submission.h"
#include "engine/error.h"

/* The position of the first missing parent in the job's depends_on, for
 * the 422 ("depends_on[2]"), and its message. */
static void key_time(tf_jbuf_t *b, const char *key, int64_t ms) {
    tf_jbuf_key(b, key);
    tf_api_time(b, ms);
}

/* `executor` (may be NULL) is the one the job's type gave it. */
static void write_submitted(tf_jbuf_t *b, const tf_submission_t *s, tf_job_state_t state,
                            const char *executor) {
    const tf_new_job_t *j = &s->job;
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "id");
    tf_jbuf_str(b, j->id);
    tf_jbuf_key(b, "tenant_id");
    tf_jbuf_str(b, j->tenant_id);
    tf_jbuf_key(b, "queue");
    tf_jbuf_str(b, j->queue);
    tf_jbuf_key(b, "type");
    tf_jbuf_str(b, j->type);
    tf_jbuf_key(b, "state");
    tf_jbuf_str(b, tf_job_state_name(state));
    tf_jbuf_key(b, "priority");
    tf_jbuf_int(b, j->priority);
    tf_jbuf_key(b, "payload");
    tf_jbuf_raw(b, j->payload);
    tf_jbuf_key(b, "attempts");
    tf_jbuf_int(b, 0);
    tf_jbuf_key(b, "max_attempts");
    tf_jbuf_int(b, j->max_attempts);
    key_time(b, "run_at", j->run_at_ms);
    key_time(b, "created_at", j->created_at_ms);
    key_time(b, "updated_at", j->created_at_ms);
    tf_jbuf_key(b, "started_at");
    tf_jbuf_null(b);
    key_time(b, "finished_at", state == TF_JOB_CANCELLED ? j->created_at_ms : TF_TIME_NONE);
    tf_jbuf_key(b, "last_error");
    tf_jbuf_null(b);
    tf_jbuf_key(b, "result");
    tf_jbuf_null(b);
    tf_jbuf_key(b, "correlation_id");
    tf_jbuf_str(b, j->correlation_id);
    tf_jbuf_key(b, "parent_id");
    tf_jbuf_str(b, j->parent_id);
    tf_jbuf_key(b, "rule_id");
    tf_jbuf_str(b, j->rule_id);
    tf_jbuf_key(b, "depends_on");
    tf_jbuf_raw(b, j->depends_on);
    tf_jbuf_key(b, "retry_policy");
    tf_jbuf_raw(b, s->retry_policy);
    tf_jbuf_key(b, "executor");
    tf_jbuf_raw(b, executor != NULL ? executor : j->executor);
    tf_jbuf_key(b, "metadata");
    tf_jbuf_raw(b, j->metadata);
    tf_jbuf_key(b, "timeout_ms");
    tf_jbuf_int(b, j->timeout_ms);
    tf_jbuf_key(b, "idempotency_key");
    tf_jbuf_str(b, j->idempotency_key);
    tf_jbuf_obj_close(b);
}

static void answer_missing_parent(tf_http_req_t *req, const tf_submission_t *sub,
                                  const char *missing, const char *prefix) {
    char field[64], message[200];
    snprintf(field, sizeof(field), "%sdepends_on", prefix);
    size_t len = strcspn(missing, ",");
    const char *at = strstr(sub->depends_on, "\"");
    for (int i = 0; at != NULL; i++) {
        if (strncmp(at + 1, missing, len) == 0) {
            snprintf(field, sizeof(field), "%sdepends_on[%d]", prefix, i);
            break;
        }
        at = strstr(at + 1, "\",\"");
        at = at != NULL ? at + 2 : NULL;
    }
    snprintf(message, sizeof(message), "%s names job %.*s, which this tenant does not have", field,
             (int)len, missing);
    tf_api_invalid(req, field, message);
}

/* ---- POST /v1/jobs ---- */

static void submitted(void *arg, int status, const tf_uc_submitted_t *r) {
    tf_submission_t *sub = arg;
    tf_http_req_t *req = sub->user;
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    if (status != 0) {
        tf_api_respond_status(req, status);
    } else if (r->outcome == TF_UC_SUBMIT_CREATED) {
        write_submitted(&b, sub, r->state, r->executor);
        tf_api_respond_jbuf(req, 201, &b);
    } else if (r->outcome == TF_UC_SUBMIT_EXISTING) {
        tf_api_respond_built(req, 200, &b, tf_job_json_write(&b, r->existing));
    } else if (r->outcome == TF_UC_SUBMIT_KEY_CONFLICT) {
        tf_http_respond_error(req, 409, "conflict",
                              "idempotency_key was already used with another request body",
                              "{\"field\":\"idempotency_key\"}");
    } else if (r->outcome == TF_UC_SUBMIT_MISSING_PARENT) {
        answer_missing_parent(req, sub, r->missing, "");
    } else {
        tf_http_respond_error(req, 503, "unavailable",
                              "a concurrent request with this idempotency_key did not finish; "
                              "try again",
                              NULL);
    }
    tf_submission_free(sub);
}

void tf__api_submit(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
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
        rc = tf_submission_create(lp->uc, who->tenant_id, who->actor, &in, body,
                                  tf_http_req_id(req), &sub);
        tf_job_input_free(&in);
    }
    json_decref(body);
    if (rc == 0) {
        sub->user = req;
        rc = tf_submitter_submit(lp->submitter, &sub->job, submitted, sub);
        if (rc != 0) {
            tf_submission_free(sub);
        }
    }
    if (rc != 0 && rc != TF_EINVAL) {
        tf_api_respond_status(req, rc);
    }
}

/* ---- POST /v1/jobs/batch ---- */

typedef struct {
    tf_http_req_t *req;
    tf_submission_t **subs; /* n entries, in request order */
    const tf_new_job_t **jobs;
    size_t n;
} batch_t;

static void batch_free(batch_t *bt) {
    for (size_t i = 0; bt->subs != NULL && i < bt->n; i++) {
        tf_submission_free(bt->subs[i]);
    }
    free(bt->subs);
    free(bt->jobs);
    free(bt);
}

/* A batch the store refused: nothing was written. */
static void batch_refused(batch_t *bt, const tf_uc_batch_t *r) {
    char field[80], message[200];
    size_t i = (size_t)r->failed;
    if (r->problem == TF_UC_SUBMIT_MISSING_PARENT) {
        snprintf(field, sizeof(field), "jobs[%zu].depends_on", i);
        snprintf(message, sizeof(message), "%s names a job this tenant does not have (%.36s)",
                 field, r->missing != NULL ? r->missing : "");
        tf_api_invalid(bt->req, field, message);
    } else if (r->problem == TF_UC_SUBMIT_KEY_CONFLICT) {
        snprintf(field, sizeof(field), "{\"field\":\"jobs[%zu].idempotency_key\"}", i);
        tf_http_respond_error(bt->req, 409, "conflict",
                              "idempotency_key was already used with another request body", field);
    } else {
        tf_http_respond_error(bt->req, 503, "unavailable",
                              "a concurrent request with the same idempotency_key is in progress; "
                              "try again",
                              NULL);
    }
}

static void batch_written(void *arg, int status, const tf_uc_batch_t *r) {
    batch_t *bt = arg;
    if (status != 0) {
        tf_api_respond_status(bt->req, status);
    } else if (r->failed >= 0) {
        batch_refused(bt, r);
    } else {
        tf_jbuf_t b;
        int rc = 0;
        tf_jbuf_init(&b);
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "jobs");
        tf_jbuf_arr_open(&b);
        for (size_t i = 0; i < r->n && rc == 0; i++) {
            if (r->existing[i] != NULL) {
                rc = tf_job_json_write(&b, r->existing[i]);
            } else {
                write_submitted(&b, bt->subs[i], r->states[i], r->executors[i]);
            }
        }
        tf_jbuf_arr_close(&b);
        tf_jbuf_obj_close(&b);
        tf_api_respond_built(bt->req, 201, &b, rc);
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
        json_array_size(jobs) > TF_SUBMIT_BATCH_MAX) {
        tf_api_invalid(req, "jobs", "jobs must be an array of 1 to 1000 jobs");
        return NULL;
    }
    return jobs;
}

/* Reads every job of the batch; answers and returns non-zero on the first
 * bad one (in order, so the answer names the first problem). */
static int batch_read(batch_t *bt, tf_api_loop_t *lp, const tf_principal_t *who, json_t *jobs) {
    for (size_t i = 0; i < bt->n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "jobs[%zu].", i);
        tf_job_input_t in;
        tf_verr_t err;
        json_t *job = json_array_get(jobs, i);
        int rc = tf_job_input_parse(job, prefix, &in, &err);
        if (rc == TF_EINVAL) {
            tf_api_invalid(bt->req, err.field, err.message);
            return rc;
        }
        if (rc == 0) {
            rc = tf_submission_create(lp->uc, who->tenant_id, who->actor, &in, job,
                                      tf_http_req_id(bt->req), &bt->subs[i]);
            tf_job_input_free(&in);
        }
        if (rc != 0) {
            tf_api_respond_status(bt->req, rc);
            return rc;
        }
        bt->jobs[i] = &bt->subs[i]->job;
        if (tf_uc_batch_repeats_key(bt->jobs, i)) {
            char details[80];
            snprintf(details, sizeof(details), "{\"field\":\"jobs[%zu].idempotency_key\"}", i);
            tf_http_respond_error(bt->req, 409, "conflict",
                                  "idempotency_key repeats an earlier job of this batch with "
                                  "another body",
                                  details);
            return TF_ECONFLICT;
        }
    }
    return 0;
}

void tf__api_submit_batch(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    int answered = 0;
    json_t *body = tf_api_body(req, 1, &answered);
    json_t *jobs = body != NULL ? batch_jobs(req, body) : NULL;
    if (jobs == NULL) {
        json_decref(body);
        return;
    }
    batch_t *bt = calloc(1, sizeof(*bt));
    size_t n = json_array_size(jobs);
    if (bt != NULL) {
        bt->req = req;
        bt->n = n;
        bt->subs = calloc(n, sizeof(*bt->subs));
        bt->jobs = calloc(n, sizeof(*bt->jobs));
    }
    if (bt == NULL || bt->subs == NULL || bt->jobs == NULL) {
        tf_api_respond_status(req, TF_ENOMEM);
        if (bt != NULL) {
            batch_free(bt);
        }
    } else if (batch_read(bt, lp, who, jobs) != 0) {
        batch_free(bt);
    } else {
        int rc = tf_uc_submit_batch(lp->uc, bt->jobs, n, batch_written, bt);
        if (rc != 0) {
            tf_api_respond_status(req, rc);
            batch_free(bt);
        }
    }
    json_decref(body);
}
