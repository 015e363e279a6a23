/*
 * job_input.h - reading and validating one job submission (the body of
 * POST /v1/jobs, or one element of POST /v1/jobs/batch) per API.md.
 *
 * Every field is checked for type and range, unknown fields are refused by
 * name, `run_at` and `delay_ms` exclude each other, and the retry policy goes
 * through the engine's validation.  A failure fills a tf_verr_t whose
 * `field` names the offending field (prefixed, e.g. "jobs[3].queue", when
 * the caller gives a prefix) so the handler can answer 422 with it.
 * Plain values; any thread.
 */
#ifndef TF_ADAPTERS_JOBSPEC_JOB_INPUT_H
#define TF_ADAPTERS_JOBSPEC_JOB_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine/retry.h"
#include "engine/uuid.h"

#define TF_JOB_NAME_MAX 128 /* type and queue names, bytes */
#define TF_JOB_KEY_MAX 255  /* idempotency_key and correlation_id, bytes */
#define TF_JOB_PRIORITY_MAX 1000
#define TF_JOB_DEPENDS_MAX 100
#define TF_JOB_DELAY_MAX_MS INT64_C(31536000000) /* one year */
#define TF_JOB_TIMEOUT_MAX_MS INT64_C(86400000)  /* one day */
#define TF_JOB_TIMEOUT_DEFAULT_MS INT64_C(300000)

typedef struct {
    char field[160];
    char message[320];
} tf_verr_t;

/* A validated submission.  JSON members are borrowed references into the
 * parsed request body (valid while it lives); strings likewise.  The retry
 * policy and the dependency array are owned: release with
 * tf_job_input_free(). */
typedef struct {
    const char *type;
    const char *queue;
    const json_t *payload; /* any JSON value; NULL when absent (means {}) */
    int priority;
    int has_run_at;
    int64_t run_at_ms; /* when has_run_at */
    int64_t delay_ms;  /* -1 when absent */
    tf_retry_policy_t retry_policy;
    int64_t timeout_ms;
    const json_t *executor; /* NULL: an external worker runs it */
    const char *idempotency_key;
    const char *correlation_id;
    tf_uuid_t *depends_on;
    size_t depends_count;
    const json_t *metadata; /* object; NULL when absent (means {}) */
} tf_job_input_t;

/* Reads `obj` into `out`.  `prefix` ("" or e.g. "jobs[3].") is put before
 * field names in errors.  Returns 0, TF_EINVAL (with `err` filled; `out`
 * then owns nothing) or TF_ENOMEM. */
int tf_job_input_parse(const json_t *obj, const char *prefix, tf_job_input_t *out, tf_verr_t *err);
void tf_job_input_free(tf_job_input_t *in);

/* True when `name` is a valid queue name: 1-128 bytes of [A-Za-z0-9_.:-]. */
int tf_queue_name_valid(const char *name);

#endif
