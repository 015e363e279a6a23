/*
 * routes.h - the route table of each module of the HTTP API, which
 * tf_api_register() (api.c) puts on the router.  Each entry names its
 * method, pattern, who may call it, and its handler.
 */
#ifndef TF_ADAPTERS_API_ROUTES_H
#define TF_ADAPTERS_API_ROUTES_H

#include <stddef.h>

#include "adapters/api/api.h"

/* health.c: /healthz, /readyz, /metrics, /v1/openapi.json */
extern const tf_api_route_t tf_api_health_routes[];
extern const size_t tf_api_health_routes_count;
/* admin.c: /v1/admin/tenants..., /v1/admin/queues... */
extern const tf_api_route_t tf_api_admin_routes[];
extern const size_t tf_api_admin_routes_count;
/* jobs_submit.c, jobs_read.c, jobs_actions.c: /v1/jobs..., /v1/dead-letter... */
extern const tf_api_route_t tf_api_jobs_routes[];
extern const size_t tf_api_jobs_routes_count;
/* worker_api.c, worker_claim.c: claim, heartbeat, complete, fail, ack */
extern const tf_api_route_t tf_api_worker_routes[];
extern const size_t tf_api_worker_routes_count;
/* executors.c: /v1/executors... */
extern const tf_api_route_t tf_api_executor_routes[];
extern const size_t tf_api_executor_routes_count;
/* rules.c: /v1/rules... */
extern const tf_api_route_t tf_api_rule_routes[];
extern const size_t tf_api_rule_routes_count;
/* clock.c: GET|POST /v1/admin/clock */
extern const tf_api_route_t tf_api_clock_routes[];
extern const size_t tf_api_clock_routes_count;

#endif
