/*
 * automation.h - the rules that fire by themselves, driven from one
 * worker loop: cron rules as their fire times come (tf_uc_cron_tick), and
 * rules waiting for job events (tf_uc_job_events_tick).
 *
 * Every interval the loop takes the cron rules that are due and fires or
 * skips their fire times, and reads the job events after the cursor and
 * fires their rules (each under a lease: any number of loops and nodes may
 * run this); while a round fills its limit the next starts at once.
 * A failing database is reported once per streak (warn) and once when it
 * recovers (info).  Loop thread only.
 */
#ifndef TF_ADAPTERS_WORKER_AUTOMATION_H
#define TF_ADAPTERS_WORKER_AUTOMATION_H

#include <uv.h>

#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"
#include "adapters/usecases/usecases.h"

typedef struct tf_automation tf_automation_t;

typedef struct {
    int interval_ms;  /* between rounds (<= 0: 1000) */
    int limit;        /* rules taken per round (<= 0: 200) */
    int parallel;     /* firings in flight (<= 0: 16) */
    const char *node; /* the lease holder's name: unique per loop and node */
} tf_automation_config_t;

/* Starts the rounds of one loop (the first at once).  `log` and `metrics`
 * may be NULL.  Release with tf_automation_close().  Returns 0, TF_ENOMEM
 * or TF_EINVAL. */
int tf_automation_create(uv_loop_t *loop, tf_uc_t *uc, const tf_automation_config_t *cfg,
                         tf_log_t *log, tf_metrics_t *metrics, tf_automation_t **out);

/* Stops the rounds, waits for the one in flight, then calls `closed_cb`
 * (may be NULL) and frees `a`. */
void tf_automation_close(tf_automation_t *a, void (*closed_cb)(void *arg), void *arg);

#endif
