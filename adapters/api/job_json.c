/*
 * job_json.c - jobs and their history to API JSON (see job_json.h).
 */
#include "adapters/api/job_json.h"

#include "adapters/api/api.h"
#include "adapters/json/retry_json.h"
#include "engine/error.h"
#include "engine/job.h"

static void key_str(tf_jbuf_t *b, const char *key, const char *value) {
    tf_jbuf_key(b, key);
    tf_jbuf_str(b, value);
}

static void key_raw(tf_jbuf_t *b, const char *key, const char *json, const char *fallback) {
    tf_jbuf_key(b, key);
    tf_jbuf_raw(b, json != NULL ? json : fallback);
}

static int key_time(tf_jbuf_t *b, const char *key, int64_t ms) {
    tf_jbuf_key(b, key);
    return tf_api_time(b, ms);
}

int tf_job_json_write(tf_jbuf_t *b, const tf_job_t *j) {
    const char *state = tf_job_state_name(j->state);
    if (state == NULL) {
        return TF_EIO;
    }
    tf_jbuf_obj_open(b);
    key_str(b, "id", j->id);
    key_str(b, "tenant_id", j->tenant_id);
    key_str(b, "queue", j->queue);
    key_str(b, "type", j->type);
    key_str(b, "state", state);
    tf_jbuf_key(b, "priority");
    tf_jbuf_int(b, j->priority);
    key_raw(b, "payload", j->payload, "{}");
    tf_jbuf_key(b, "attempts");
    tf_jbuf_int(b, j->attempts);
    tf_jbuf_key(b, "max_attempts");
    tf_jbuf_int(b, j->max_attempts);
    int rc = key_time(b, "run_at", j->run_at_ms);
    rc |= key_time(b, "created_at", j->created_at_ms);
    rc |= key_time(b, "updated_at", j->updated_at_ms);
    rc |= key_time(b, "started_at", j->started_at_ms);
    rc |= key_time(b, "finished_at", j->finished_at_ms);
    tf_jbuf_key(b, "last_error");
    if (j->last_error_type == NULL) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_obj_open(b);
        key_str(b, "type", j->last_error_type);
        key_str(b, "message", j->last_error_message);
        tf_jbuf_obj_close(b);
    }
    key_raw(b, "result", j->result, NULL);
    key_str(b, "correlation_id", j->correlation_id);
    key_str(b, "parent_id", j->parent_id);
    key_str(b, "rule_id", j->rule_id);
    key_raw(b, "depends_on", j->depends_on, "[]");
    key_raw(b, "retry_policy", j->retry_policy, TF_RETRY_POLICY_DEFAULT_JSON);
    key_raw(b, "executor", j->executor, NULL);
    key_raw(b, "metadata", j->metadata, "{}");
    tf_jbuf_key(b, "timeout_ms");
    if (j->timeout_ms < 0) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_int(b, j->timeout_ms);
    }
    key_str(b, "idempotency_key", j->idempotency_key);
    tf_jbuf_obj_close(b);
    return rc != 0 ? TF_EIO : 0;
}

int tf_job_json_write_all(tf_jbuf_t *b, const tf_job_t *jobs, size_t n) {
    tf_jbuf_arr_open(b);
    for (size_t i = 0; i < n; i++) {
        if (tf_job_json_write(b, &jobs[i]) != 0) {
            return TF_EIO;
        }
    }
    tf_jbuf_arr_close(b);
    return 0;
}

/* An attempt's outcome as the API names it. */
static const char *outcome_name(tf_attempt_outcome_t outcome) {
    static const char *const names[] = {"succeeded",     "failed",    "failed", "timeout",
                                        "lease_expired", "cancelled", "snoozed"};
    if (outcome == TF_ATTEMPT_RUNNING) {
        return "running";
    }
    return (int)outcome >= 0 && (int)outcome < 7 ? names[outcome] : NULL;
}

int tf_job_json_attempt(tf_jbuf_t *b, const tf_attempt_t *a) {
    const char *outcome = outcome_name(a->outcome);
    if (outcome == NULL) {
        return TF_EIO;
    }
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "attempt");
    tf_jbuf_int(b, a->attempt);
    key_str(b, "worker", a->worker);
    int rc = key_time(b, "started_at", a->started_at_ms);
    rc |= key_time(b, "finished_at", a->finished_at_ms);
    tf_jbuf_key(b, "duration_ms");
    if (a->duration_ms < 0) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_int(b, a->duration_ms);
    }
    key_str(b, "outcome", outcome);
    tf_jbuf_key(b, "error");
    if (a->error_type == NULL && a->error_message == NULL) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_obj_open(b);
        key_str(b, "type", a->error_type != NULL ? a->error_type : "error");
        key_str(b, "message", a->error_message != NULL ? a->error_message : "");
        tf_jbuf_obj_close(b);
    }
    if (a->executor_version > 0) {
        tf_jbuf_key(b, "executor_version");
        tf_jbuf_int(b, a->executor_version);
    }
    tf_jbuf_obj_close(b);
    return rc != 0 ? TF_EIO : 0;
}

int tf_job_json_transition(tf_jbuf_t *b, const tf_transition_t *t) {
    const char *to = tf_job_state_name(t->to_state);
    const char *from = t->from_state < 0 ? NULL : tf_job_state_name((tf_job_state_t)t->from_state);
    if (to == NULL || (t->from_state >= 0 && from == NULL)) {
        return TF_EIO;
    }
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "id");
    tf_jbuf_int(b, t->id);
    key_str(b, "from", from);
    key_str(b, "to", to);
    int rc = key_time(b, "at", t->at_ms);
    key_str(b, "reason", t->reason);
    key_str(b, "actor", t->actor);
    tf_jbuf_obj_close(b);
    return rc;
}
