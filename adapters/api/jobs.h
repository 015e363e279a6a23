/*
 * jobs.h - the handlers of the tenant's jobs API (API.md "Jobs"), whose
 * route table is in jobs.c: submission (jobs_submit.c), reading and
 * listing (jobs_read.c), cancel, retry and requeue (jobs_actions.c).
 * Internal to adapters/api.  Loop thread of the request.
 */
#ifndef TF_ADAPTERS_API_JOBS_H
#define TF_ADAPTERS_API_JOBS_H

#include "adapters/api/api.h"

void tf__api_submit(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);
void tf__api_submit_batch(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);
void tf__api_get_job(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);
void tf__api_list_jobs(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);
void tf__api_job_attempts(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);
void tf__api_job_events(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);
void tf__api_cancel_job(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);
void tf__api_retry_job(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);
void tf__api_requeue(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who);

#endif
