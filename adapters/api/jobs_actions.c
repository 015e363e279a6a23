/*
 * jobs_actions.c - the write side of the jobs API beyond submission (see
 * jobs.h): cancel, manual retry, and requeueing the dead letter.
 *
 * Each request is checked whole, then handed to its use case
 * (adapters/usecases/actions.h), where the engine's state machine decides
 * which states the action may start from and where it leads.  A request
 * the state machine refuses changes nothing and answers 409 naming the
 * state the job is really in; a job of another tenant, or an id that is
 * not a UUID, answers 404.  Loop thread of the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "adapters/jobspec/job_input.h"
#include "adapters/api/job_json.h"
#include "adapters/api/jobs.h"
#include "adapters/usecases/actions.h"
#include "engine/error.h"
#include "engine/job.h"

#define REQUEUE_MAX 1000

/* 409 for a job in `state` that `action` may not leave; the message names
 * the states it could leave (the state machine's sources of `ev`). */
static void conflict(tf_http_req_t *req, tf_job_state_t state, tf_job_event_t ev,
                     const char *action) {
    tf_job_state_t to;
    tf_job_state_set_t set = tf_uc_action_sources(ev, ~(tf_job_state_set_t)0, &to);
    char names[96] = "", message[200];
    size_t used = 0;
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        if (set & TF_JOB_STATE_BIT(s)) {
            used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
                                     used > 0 ? ", " : "", tf_job_state_name((tf_job_state_t)s));
        }
    }
    const char *name = tf_job_state_name(state);
    snprintf(message, sizeof(message), "the job is %s; only %s jobs can be %s",
             name != NULL ? name : "in another state", names, action);
    tf_http_respond_error(req, 409, "conflict", message, NULL);
}

/* ---- POST /v1/jobs/{id}/cancel and /retry ---- */

static void answer_action(tf_http_req_t *req, int status, const tf_uc_action_t *r,
                          tf_job_event_t ev, const char *action) {
    if (status != 0) {
        tf_api_respond_status(req, status);
    } else if (r->outcome == TF_UC_ACTION_NOT_FOUND) {
        tf_http_respond_error(req, 404, "not_found", "no such job", NULL);
    } else if (r->outcome == TF_UC_ACTION_REFUSED) {
        conflict(req, r->state, ev, action);
    } else {
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_api_respond_built(req, 200, &b, tf_job_json_write(&b, r->job));
    }
}

static void cancelled(void *arg, int status, const tf_uc_action_t *r) {
    answer_action(arg, status, r, TF_JOB_EV_CANCEL, "cancelled");
}

static void retried(void *arg, int status, const tf_uc_action_t *r) {
    answer_action(arg, status, r, TF_JOB_EV_RETRY, "retried");
}

void tf__api_cancel_job(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", "no such job", id) != 0) {
        return;
    }
    int rc = tf_uc_cancel(lp->uc, who->tenant_id, id, who->actor, cancelled, req);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

void tf__api_retry_job(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    char id[TF_ID_LEN];
    if (tf_api_path_id(req, "id", "no such job", id) != 0) {
        return;
    }
    int rc = tf_uc_retry(lp->uc, who->tenant_id, id, who->actor, retried, req);
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
}

/* ---- POST /v1/dead-letter/requeue ---- */

/* Answers {"requeued": n, "jobs": [...]}. */
static void requeued(void *arg, int status, const tf_job_t *jobs, size_t n) {
    tf_http_req_t *req = arg;
    if (status != 0) {
        tf_api_respond_status(req, status);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "requeued");
    tf_jbuf_int(&b, (int64_t)n);
    tf_jbuf_key(&b, "jobs");
    int rc = tf_job_json_write_all(&b, jobs, n);
    tf_jbuf_obj_close(&b);
    tf_api_respond_built(req, 200, &b, rc);
}

/* Reads "ids" (canonical, into `storage`).  Returns the number of ids, or
 * -1 after answering 422. */
static int read_ids(tf_http_req_t *req, const json_t *ids, char (*storage)[TF_ID_LEN],
                    const char **out) {
    size_t n = json_is_array(ids) ? json_array_size(ids) : 0;
    if (n == 0 || n > REQUEUE_MAX) {
        tf_api_invalid(req, "ids", "ids must be an array of 1 to 1000 job ids");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        tf_uuid_t id;
        const char *text = json_string_value(json_array_get(ids, i));
        if (text == NULL || tf_uuid_parse(text, &id) != 0) {
            char field[24];
            snprintf(field, sizeof(field), "ids[%zu]", i);
            tf_api_invalid(req, field, "each id must be a UUID");
            return -1;
        }
        tf_uuid_format(&id, storage[i]);
        out[i] = storage[i];
    }
    return (int)n;
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

/* Requeues the body's ids, or its queue's dead jobs, or answers why not. */
static void submit_requeue(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who,
                           const json_t *body) {
    const json_t *queue = json_object_get(body, "queue");
    char(*storage)[TF_ID_LEN] = NULL;
    const char **ids = NULL;
    int n = 0, rc = 0;
    if (queue == NULL) {
        storage = calloc(REQUEUE_MAX, TF_ID_LEN);
        ids = calloc(REQUEUE_MAX, sizeof(*ids));
        if (storage == NULL || ids == NULL) {
            rc = TF_ENOMEM;
        } else if ((n = read_ids(req, json_object_get(body, "ids"), storage, ids)) < 0) {
            free(storage);
            free(ids);
            return;
        }
    }
    if (rc == 0) {
        rc = tf_uc_requeue(lp->uc, who->tenant_id, ids, (size_t)n,
                           queue != NULL ? json_string_value(queue) : NULL, REQUEUE_MAX, who->actor,
                           requeued, req);
    }
    if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
    free(storage);
    free(ids);
}

void tf__api_requeue(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    json_t *body = tf_api_object_body(req, "a JSON object with ids or queue is required");
    if (body == NULL) {
        return;
    }
    if (check_requeue_body(req, body) == 0) {
        submit_requeue(req, lp, who, body);
    }
    json_decref(body);
}
