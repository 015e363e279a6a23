/*
 * queue_gauges.h - the gauges that predict trouble, refreshed from the
 * database every few seconds by one loop of each node:
 *   taskflow_queue_ready_jobs{queue}               claimable now
 *   taskflow_queue_running_jobs{queue}             leased
 *   taskflow_queue_oldest_ready_age_seconds{queue} how long the oldest waits
 *   taskflow_table_dead_tuples{table}              of the hot tables
 *   taskflow_oldest_xmin_age{}                     transactions holding back vacuum
 * Loop thread only.
 */
#ifndef TF_ADAPTERS_APP_QUEUE_GAUGES_H
#define TF_ADAPTERS_APP_QUEUE_GAUGES_H

#include "adapters/app/app.h"

typedef struct tf_queue_gauges tf_queue_gauges_t;

#define TF_QUEUE_GAUGES_PERIOD_MS 5000

/* Caller owns the result; release with tf_queue_gauges_close(). */
int tf_queue_gauges_create(uv_loop_t *loop, tf_app_loop_t *lp, tf_queue_gauges_t **out);

/* Stops refreshing, waits for a query in flight, then calls `closed_cb`. */
void tf_queue_gauges_close(tf_queue_gauges_t *g, void (*closed_cb)(void *arg), void *arg);

extern const tf_pg_prepared_t tf_queue_gauges_prepared[];
extern const size_t tf_queue_gauges_prepared_count;

#endif
