/*
 * submission.h - one job on its way into the database.
 *
 * A tf_submission_t holds a validated job (job_input.h) in the form the
 * insert statement (submit_sql.h) and the 201 answer need: ids and times
 * made here (UUIDv7 and created_at share their millisecond, so created
 * ranges are id ranges), JSON members as compact text, the SHA-256 of the
 * canonical request for idempotency.  The answer for a new job is written
 * from the submission itself, without reading the row back.
 * Owned by the loop thread that made it.
 */
#ifndef TF_ADAPTERS_APP_SUBMISSION_H
#define TF_ADAPTERS_APP_SUBMISSION_H

#include <stdint.h>

#include <jansson.h>

#include "adapters/app/app.h"
#include "adapters/app/job_input.h"
#include "adapters/json/jbuf.h"

typedef struct tf_submission tf_submission_t;
struct tf_submission {
    tf_http_req_t *req;    /* the request to answer (single submissions) */
    tf_submission_t *next; /* list link (pending queue, duplicates) */
    tf_submission_t *dups; /* same tenant and idempotency key, same flush */
    char tenant_id[37];
    char id[37];
    char actor[48];
    char request_hash[65]; /* "" without idempotency key */
    char *type, *queue, *payload, *retry_policy, *executor, *metadata;
    char *idempotency_key, *correlation_id, *depends_on; /* depends_on: JSON array */
    int priority;
    int max_attempts;
    int64_t timeout_ms;
    int64_t run_at_ms, created_ms;
    int scheduled;
    int default_policy; /* store no retry_policy: readers show the defaults */
    int state; /* after insert */
};

/* Builds a submission for tenant `tenant_id` from a parsed input and the
 * body object it came from.  `request_id` becomes the correlation id when
 * the body gives none.  Caller owns the result; free with
 * tf_submission_free(). */
int tf_submission_create(tf_app_loop_t *lp, const char *tenant_id, const char *actor,
                         const tf_job_input_t *in, const json_t *body, const char *request_id,
                         int64_t now_ms, tf_submission_t **out);
void tf_submission_free(tf_submission_t *s);

/* Appends the row object the insert statement reads. */
void tf_submission_write_row(tf_jbuf_t *b, const tf_submission_t *s, int ord);

/* Appends the Job object of a freshly inserted submission. */
void tf_submission_write_job(tf_jbuf_t *b, const tf_submission_t *s);

#endif
