/*
 * submission.c - a validated job in insertable form (see submission.h).
 */
#include "adapters/jobspec/submission.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "adapters/json/retry_json.h"
#include "adapters/usecases/submit.h"
#include "engine/error.h"
#include "engine/hex.h"
#include "engine/job.h"

static char *dump(const json_t *v) {
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The executor with its defaults filled in (http: method POST, headers {}). */
static char *executor_json(const json_t *executor) {
    if (executor == NULL) {
        return NULL;
    }
    json_t *copy = json_deep_copy(executor);
    if (copy == NULL) {
        return NULL;
    }
    if (strcmp(json_string_value(json_object_get(copy, "kind")), "http") == 0) {
        if (json_object_get(copy, "method") == NULL) {
            json_object_set_new(copy, "method", json_string("POST"));
        }
        if (json_object_get(copy, "headers") == NULL) {
            json_object_set_new(copy, "headers", json_object());
        }
    }
    char *text = dump(copy);
    json_decref(copy);
    return text;
}

static char *depends_json(const tf_job_input_t *in) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < in->depends_count; i++) {
        char id[TF_UUID_STR_LEN + 1];
        tf_uuid_format(&in->depends_on[i], id);
        tf_jbuf_str(&b, id);
    }
    tf_jbuf_arr_close(&b);
    char *text = NULL;
    size_t len = 0;
    return tf_jbuf_finish(&b, &text, &len) == 0 ? text : NULL;
}

static void hash_body(const json_t *body, char out[65]) {
    char *canonical = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(canonical != NULL ? canonical : ""),
           canonical != NULL ? strlen(canonical) : 0, digest);
    tf_hex_encode(digest, sizeof(digest), out);
    free(canonical);
}

static int fill_texts(tf_submission_t *s, const tf_job_input_t *in, const char *request_id) {
    json_t *policy = tf_retry_policy_to_json(&in->retry_policy);
    s->type = strdup(in->type);
    s->queue = strdup(in->queue);
    s->payload = in->payload != NULL ? dump(in->payload) : strdup("{}");
    s->retry_policy = policy != NULL ? dump(policy) : NULL;
    s->metadata = in->metadata != NULL ? dump(in->metadata) : strdup("{}");
    s->depends_on = depends_json(in);
    json_decref(policy);
    const char *correlation = in->correlation_id != NULL ? in->correlation_id : request_id;
    if (correlation != NULL) {
        s->correlation_id = strdup(correlation);
    }
    if (in->idempotency_key != NULL) {
        s->idempotency_key = strdup(in->idempotency_key);
    }
    if (in->executor != NULL) {
        s->executor = executor_json(in->executor);
    }
    int ok = s->type && s->queue && s->payload && s->retry_policy && s->metadata && s->depends_on &&
             (correlation == NULL || s->correlation_id) &&
             (in->idempotency_key == NULL || s->idempotency_key) &&
             (in->executor == NULL || s->executor);
    return ok ? 0 : TF_ENOMEM;
}

int tf_submission_create(tf_uc_t *uc, const char *tenant_id, const char *actor,
                         const tf_job_input_t *in, const json_t *body, const char *request_id,
                         tf_submission_t **out) {
    tf_submission_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return TF_ENOMEM;
    }
    snprintf(s->actor, sizeof(s->actor), "%s", actor);
    if (in->idempotency_key != NULL) {
        hash_body(body, s->request_hash);
    }
    int rc = fill_texts(s, in, request_id);
    if (rc != 0) {
        tf_submission_free(s);
        return rc;
    }
    tf_new_job_t *j = &s->job;
    snprintf(j->tenant_id, sizeof(j->tenant_id), "%s", tenant_id);
    j->queue = s->queue;
    j->type = s->type;
    j->priority = in->priority;
    j->payload = s->payload;
    j->max_attempts = in->retry_policy.max_attempts;
    /* Jobs with the default policy store none: readers show the defaults. */
    j->retry_policy = tf_retry_policy_is_default(&in->retry_policy) ? NULL : s->retry_policy;
    j->timeout_ms = in->timeout_ms;
    j->executor = s->executor;
    j->metadata = s->metadata;
    j->idempotency_key = s->idempotency_key;
    j->request_hash = s->request_hash[0] != '\0' ? s->request_hash : NULL;
    j->correlation_id = s->correlation_id;
    j->depends_on = s->depends_on;
    j->actor = s->actor;
    tf_uc_job_stamp(uc, j, in->has_run_at ? in->run_at_ms : TF_TIME_NONE, in->delay_ms);
    *out = s;
    return 0;
}

void tf_submission_free(tf_submission_t *s) {
    if (s == NULL) {
        return;
    }
    free(s->type);
    free(s->queue);
    free(s->payload);
    free(s->retry_policy);
    free(s->executor);
    free(s->metadata);
    free(s->idempotency_key);
    free(s->correlation_id);
    free(s->depends_on);
    free(s);
}
