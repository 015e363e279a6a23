/*
 * gauges.h - the gauges that predict trouble, refreshed through the store
 * every few seconds by one loop of each node:
 *   taskflow_queue_ready_jobs{queue}               claimable now
 *   taskflow_queue_running_jobs{queue}             leased
 *   taskflow_queue_oldest_ready_age_seconds{queue} how long the oldest waits
 *   taskflow_table_dead_tuples{table}              of the hot tables
 *   taskflow_oldest_xmin_age{}                     transactions holding back vacuum
 * A queue that emptied is set back to 0 rather than forgotten, so a stale
 * value never lingers.  Loop thread only.
 */
#ifndef TF_ADAPTERS_SERVE_GAUGES_H
#define TF_ADAPTERS_SERVE_GAUGES_H

#include <uv.h>

#include "adapters/metrics/metrics.h"
#include "adapters/usecases/usecases.h"

typedef struct tf_queue_gauges tf_queue_gauges_t;

#define TF_QUEUE_GAUGES_PERIOD_MS 5000

/* Refreshes through `uc`'s store into `metrics` (may be NULL: nothing is
 * kept).  Caller owns the result; release with tf_queue_gauges_close(). */
int tf_queue_gauges_create(uv_loop_t *loop, tf_uc_t *uc, tf_metrics_t *metrics,
                           tf_queue_gauges_t **out);

/* Stops refreshing, waits for a query in flight, then calls `closed_cb`. */
void tf_queue_gauges_close(tf_queue_gauges_t *g, void (*closed_cb)(void *arg), void *arg);

#endif
