/*
 * maintenance.h - the periodic housekeeping every worker loop does: promote
 * due SCHEDULED jobs to PENDING and rescue attempts whose lease expired or
 * that ran past their timeout (tf_uc_promote, tf_uc_rescue).
 *
 * Every poll interval both run once (again at once while a call filled its
 * limit).  Between polls, a due time is not left waiting for the next poll:
 * after each promotion the module asks the store how far away the next
 * SCHEDULED job is (from the clock port's now) and, when that is sooner
 * than the next poll, arms a one-shot timer for it.  A retry backoff of 200 ms therefore
 * takes about 200 ms, not a poll interval.  SKIP LOCKED in the statements
 * lets any number of loops and nodes do this at once.
 *
 * Owned by the runner of one loop; loop thread only.
 */
#ifndef TF_ADAPTERS_WORKER_MAINTENANCE_H
#define TF_ADAPTERS_WORKER_MAINTENANCE_H

#include <uv.h>

#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "adapters/usecases/usecases.h"

typedef struct tf_maintenance tf_maintenance_t;

typedef struct {
    int poll_interval_ms; /* period of promotion and rescue (<= 0: 1000) */
} tf_maintenance_config_t;

/* Called (on the loop) when a promotion or a rescue made jobs claimable. */
typedef void (*tf_maintenance_work_fn)(void *arg);

/* Starts the housekeeping of one loop through `uc` (first round at once).
 * `log`, `metrics` and `on_work` may be NULL.  Caller owns the result;
 * release with tf_maintenance_close().  Returns 0, TF_ENOMEM or TF_EINVAL. */
int tf_maintenance_create(uv_loop_t *loop, tf_uc_t *uc, const tf_maintenance_config_t *cfg,
                          tf_log_t *log, tf_metrics_t *metrics, tf_maintenance_work_fn on_work,
                          void *arg, tf_maintenance_t **out);

/* A job was just scheduled for a retry: look up the next due time now, so
 * that it is promoted on time. */
void tf_maintenance_scheduled(tf_maintenance_t *m);

/* Stops the timers, waits for the statements in flight, closes the handles,
 * then calls `closed_cb` (may be NULL) and frees `m`. */
void tf_maintenance_close(tf_maintenance_t *m, void (*closed_cb)(void *arg), void *arg);

#endif
