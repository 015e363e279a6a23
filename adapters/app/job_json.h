/*
 * job_json.h - a job as the API shows it, written from a database row.
 *
 * Every statement that returns jobs selects TF_JOB_COLUMNS (in that order)
 * starting at some column; tf_job_json_write() turns that row into the Job
 * object of API.md.  JSON columns (payload, result, metadata, retry policy,
 * executor) come out of PostgreSQL as valid JSON text and are spliced in
 * without being parsed again.  Any thread.
 */
#ifndef TF_ADAPTERS_APP_JOB_JSON_H
#define TF_ADAPTERS_APP_JOB_JSON_H

#include <libpq-fe.h>

#include "adapters/json/jbuf.h"

/* The columns of a job row, for `SELECT " TF_JOB_COLUMNS " FROM jobs j`. */
#define TF_JOB_COLUMNS                                                                             \
    "j.id::text, j.tenant_id::text, j.queue, j.type, j.state, j.priority, j.payload::text, "       \
    "j.attempts, j.max_attempts, j.run_at, j.created_at, j.updated_at, j.started_at, "             \
    "j.finished_at, j.last_error_type, j.last_error_message, j.result::text, j.correlation_id, "   \
    "j.parent_id::text, j.rule_id::text, j.depends_on::text, j.retry_policy::text, "               \
    "j.executor::text, j.metadata::text, j.timeout_ms, j.idempotency_key"
#define TF_JOB_NCOLUMNS 26

/* Writes the job in row `row` of `res`, whose columns start at `col`, as
 * one JSON object value.  Returns 0, or TF_EIO when a column holds something
 * the API cannot show (a bad timestamp or state). */
int tf_job_json_write(tf_jbuf_t *b, const PGresult *res, int row, int col);

/* Writes the timestamptz column `col` of `row` as an RFC 3339 string, or
 * null.  Returns 0, or TF_EIO when the text is not a timestamp. */
int tf_job_json_time(tf_jbuf_t *b, const PGresult *res, int row, int col);

/* Writes every row of `res` as an array of jobs (columns from `col`). */
int tf_job_json_write_all(tf_jbuf_t *b, const PGresult *res, int col);

#endif
