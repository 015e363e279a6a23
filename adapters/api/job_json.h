/*
 * job_json.h - jobs and their history as the API shows them (API.md "Job"),
 * written from the store's domain types.  JSON members (payload, result,
 * metadata, retry policy, executor) arrive as valid JSON text and are
 * spliced in without being parsed again.  Any thread.
 */
#ifndef TF_ADAPTERS_API_JOB_JSON_H
#define TF_ADAPTERS_API_JOB_JSON_H

#include <stddef.h>

#include "adapters/json/jbuf.h"
#include "engine/store.h"

/* Writes `job` as one Job object.  Returns 0, or TF_EIO when a value
 * cannot be shown (a time out of range). */
int tf_job_json_write(tf_jbuf_t *b, const tf_job_t *job);

/* Writes `n` jobs as an array. */
int tf_job_json_write_all(tf_jbuf_t *b, const tf_job_t *jobs, size_t n);

/* One attempt and one transition (GET /v1/jobs/{id}/attempts, /events). */
int tf_job_json_attempt(tf_jbuf_t *b, const tf_attempt_t *a);
int tf_job_json_transition(tf_jbuf_t *b, const tf_transition_t *t);

#endif
