/*
 * admin.h - the operator's API: tenants, their keys, queues and per-tenant
 * queue caps (`/v1/admin/...`, API.md "Operator").  Every route needs the
 * admin token.  Handlers run on the loop thread of their request.
 */
#ifndef TF_ADAPTERS_APP_ADMIN_H
#define TF_ADAPTERS_APP_ADMIN_H

#include <stddef.h>

#include "adapters/app/app.h"

/* Adds the operator routes; `env` must outlive the router. */
int tf_admin_register(tf_router_t *router, const tf_app_env_t *env);

extern const tf_pg_prepared_t tf_admin_prepared[];
extern const size_t tf_admin_prepared_count;

#endif
