/*
 * store.h - the Postgres store: TaskFlow's job store and tenant store
 * (engine/store.h, engine/tenants.h) over one loop's connection pool.
 *
 * This folder is the only place that knows SQL, libpq and the schema: the
 * statements live in *_sql.h beside the files that run them, rows are
 * decoded into the engine's domain types here, and the outbox of domain
 * events (engine/events.h) is written here in the transaction of the
 * transitions it records.  Callers see ports only.
 *
 * One store per loop thread (shared-nothing, like the pool under it);
 * every call and callback happens on that loop.
 */
#ifndef TF_ADAPTERS_PG_STORE_H
#define TF_ADAPTERS_PG_STORE_H

#include <uv.h>

#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "engine/scripts.h"
#include "engine/store.h"
#include "engine/tenants.h"

typedef struct tf_pg_store tf_pg_store_t;

typedef struct {
    const char *conninfo;  /* libpq connection string or URL; copied */
    int size;              /* connections of this loop's pool */
    const char *pool_name; /* metrics label, e.g. "loop-0"; copied */
} tf_pg_store_config_t;

/* Opens the store on `loop`: creates its pool (which starts connecting and
 * prepares every statement of the store on each connection).  `metrics`
 * and `log` may be NULL and must outlive the store.  Caller owns the
 * result; release with tf_pg_store_close(). */
int tf_pg_store_open(uv_loop_t *loop, const tf_pg_store_config_t *cfg, tf_metrics_t *metrics,
                     tf_log_t *log, tf_pg_store_t **out);

/* The ports, valid until the store is closed. */
const tf_job_store_t *tf_pg_store_jobs(const tf_pg_store_t *store);
const tf_tenant_store_t *tf_pg_store_tenants(const tf_pg_store_t *store);
const tf_script_store_t *tf_pg_store_scripts(const tf_pg_store_t *store);
const tf_rule_store_t *tf_pg_store_rules(const tf_pg_store_t *store);

/* Fails what is queued (TF_ESHUTDOWN), waits for what is in flight, closes
 * the connections, then calls `closed_cb` (may be NULL) and frees the
 * store.  Every callback of a call made before has run by then. */
void tf_pg_store_close(tf_pg_store_t *store, void (*closed_cb)(void *arg), void *arg);

#endif
