/*
 * jobs.c - the route table of the jobs API (see jobs.h).  Every route is a
 * tenant's: a tenant key, or the admin token acting for a tenant.
 */
#include "adapters/api/jobs.h"
#include "adapters/api/routes.h"

const tf_api_route_t tf_api_jobs_routes[] = {
    {"POST", "/v1/jobs", TF_ROUTE_TENANT, tf__api_submit},
    {"POST", "/v1/jobs/batch", TF_ROUTE_TENANT, tf__api_submit_batch},
    {"GET", "/v1/jobs", TF_ROUTE_TENANT, tf__api_list_jobs},
    {"GET", "/v1/jobs/{id}", TF_ROUTE_TENANT, tf__api_get_job},
    {"GET", "/v1/jobs/{id}/attempts", TF_ROUTE_TENANT, tf__api_job_attempts},
    {"GET", "/v1/jobs/{id}/events", TF_ROUTE_TENANT, tf__api_job_events},
    {"GET", "/v1/dead-letter", TF_ROUTE_TENANT, tf__api_list_jobs},
    {"POST", "/v1/jobs/{id}/cancel", TF_ROUTE_TENANT, tf__api_cancel_job},
    {"POST", "/v1/jobs/{id}/retry", TF_ROUTE_TENANT, tf__api_retry_job},
    {"POST", "/v1/dead-letter/requeue", TF_ROUTE_TENANT, tf__api_requeue},
};
const size_t tf_api_jobs_routes_count = sizeof(tf_api_jobs_routes) / sizeof(tf_api_jobs_routes[0]);
