/*
 * handlers.h - HTTP handlers of the operational endpoints (/healthz,
 * /readyz, /metrics) and the table of prepared statements every loop's
 * Postgres pool prepares.  Handlers run on the loop thread of their request.
 */
#ifndef TF_ADAPTERS_APP_HANDLERS_H
#define TF_ADAPTERS_APP_HANDLERS_H

#include <stddef.h>

#include "adapters/http/server.h"
#include "adapters/metrics/metrics.h"
#include "adapters/pg/pool.h"

extern const tf_pg_prepared_t tf_app_prepared[];
extern const size_t tf_app_prepared_count;

/* Adds /healthz, /readyz and /metrics to `router`.  `metrics` must outlive
 * the router. */
int tf_handlers_register(tf_router_t *router, tf_metrics_t *metrics);

#endif
