/*
 * submission.h - one job of a submission, from its validated JSON
 * (job_input.h) to the domain's tf_new_job_t (engine/store.h) and back to
 * the 201 answer.
 *
 * The submission owns the texts the new job points at: JSON members as
 * compact text, the executor with its defaults filled in, the SHA-256 of
 * the canonical request for idempotency.  Ids and times are stamped by the
 * submit use case (adapters/usecases/submit.h).  The answer for a new job
 * is written from the submission itself, without reading the row back.
 * Owned by the loop thread that made it.
 */
#ifndef TF_ADAPTERS_JOBSPEC_SUBMISSION_H
#define TF_ADAPTERS_JOBSPEC_SUBMISSION_H

#include <jansson.h>

#include "adapters/jobspec/job_input.h"
#include "adapters/json/jbuf.h"
#include "adapters/usecases/usecases.h"

typedef struct {
    tf_new_job_t job;   /* what the store writes; points into the texts below */
    void *user;         /* the caller's (the API: the request to answer) */
    char actor[48];
    char request_hash[65]; /* "" without idempotency key */
    char *type, *queue, *payload, *retry_policy, *executor, *metadata;
    char *idempotency_key, *correlation_id, *depends_on; /* depends_on: JSON array */
} tf_submission_t;

/* Builds and stamps a submission for tenant `tenant_id` from a parsed input
 * and the body object it came from.  `request_id` becomes the correlation
 * id when the body gives none.  Caller owns the result; free with
 * tf_submission_free(). */
int tf_submission_create(tf_uc_t *uc, const char *tenant_id, const char *actor,
                         const tf_job_input_t *in, const json_t *body, const char *request_id,
                         tf_submission_t **out);
void tf_submission_free(tf_submission_t *s);

#endif
