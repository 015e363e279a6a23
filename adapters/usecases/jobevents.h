/*
 * jobevents.h - job events firing rules: the terminal transitions of jobs
 * (job.succeeded, job.failed, job.dead, job.cancelled; the outbox of
 * engine/events.h) fire the rules of the job's tenant that wait for them
 * (tf.on(name, {type=..., queue=...})), with the job, its result or last
 * error in `ev`; the jobs those rules create inherit the job's
 * correlation id.  Chains and workflows are built this way.
 *
 * One node at a time consumes the events (the store's cursor lease); each
 * event fires each rule once (the run's dedup key "job-event:<id>"), and
 * the cursor moves only once every event of a page is dealt with, so a
 * failure fires the page again later and the runs already recorded make
 * those firings no-ops.
 */
#ifndef TF_ADAPTERS_USECASES_JOBEVENTS_H
#define TF_ADAPTERS_USECASES_JOBEVENTS_H

#include <stddef.h>

#include "adapters/usecases/usecases.h"

#define TF_JOB_EVENTS_LEASE_MS 60000

typedef struct {
    int held;      /* this node consumes the events now */
    size_t events; /* events read (a full page: there may be more) */
    size_t runs;   /* rule firings, duplicates included */
} tf_uc_job_events_result_t;

typedef void (*tf_uc_job_events_cb)(void *arg, int status, const tf_uc_job_events_result_t *result);

/* Reads at most `limit` events for `node` and fires their rules, at most
 * `parallel` events at a time. */
int tf_uc_job_events_tick(tf_uc_t *uc, const char *node, int limit, int parallel,
                          tf_uc_job_events_cb cb, void *arg);

#endif
