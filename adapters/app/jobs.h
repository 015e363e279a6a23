/*
 * jobs.h - the tenant's jobs API (API.md "Jobs"): submission (single, with
 * group commit, and batch), reading and listing, cancel and retry, the
 * history of each job, and the dead-letter list.
 *
 * Modules: jobs_submit.c (POST /v1/jobs, /v1/jobs/batch and the per-loop
 * submitter that gathers concurrent submissions into one statement and one
 * commit), jobs_read.c (GET routes, cursors), jobs_actions.c (cancel, retry,
 * requeue).  Handlers run on the loop thread of their request.
 */
#ifndef TF_ADAPTERS_APP_JOBS_H
#define TF_ADAPTERS_APP_JOBS_H

#include <stddef.h>

#include "adapters/app/app.h"

/* Adds every jobs route; `env` must outlive the router. */
int tf_jobs_register(tf_router_t *router, const tf_app_env_t *env);

/* Per-module route registration and statements (called by the above). */
int tf_jobs_submit_register(tf_router_t *router, const tf_app_env_t *env);
int tf_jobs_read_register(tf_router_t *router, const tf_app_env_t *env);
int tf_jobs_actions_register(tf_router_t *router, const tf_app_env_t *env);
extern const tf_pg_prepared_t tf_jobs_submit_prepared[];
extern const size_t tf_jobs_submit_prepared_count;
extern const tf_pg_prepared_t tf_jobs_read_prepared[];
extern const size_t tf_jobs_read_prepared_count;
extern const tf_pg_prepared_t tf_jobs_actions_prepared[];
extern const size_t tf_jobs_actions_prepared_count;

/* The per-loop submitter: group commit of single-job submissions.  Created
 * by the loop's start hook; closed (pending submissions answered 503) by its
 * stop hook, which gets `closed_cb` once everything in flight finished. */
int tf_submitter_create(uv_loop_t *loop, tf_app_loop_t *lp, tf_submitter_t **out);
void tf_submitter_close(tf_submitter_t *s, void (*closed_cb)(void *arg), void *arg);

#endif
