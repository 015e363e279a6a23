/*
 * lease.h - the use cases around leases and due times: heartbeats, handing
 * attempts back at shutdown, promoting due SCHEDULED jobs, and what the
 * worker runtime polls (the next due time, the queues with built-in work).
 * Times come from the clock port.  Loop thread of the use-case context.
 */
#ifndef TF_ADAPTERS_USECASES_LEASE_H
#define TF_ADAPTERS_USECASES_LEASE_H

#include <stddef.h>

#include "adapters/usecases/usecases.h"

/* Extends a running attempt's lease by `lease_ms` from now.  Status
 * TF_ESTALE or TF_ENOTFOUND when the lease is not the caller's. */
int tf_uc_heartbeat(tf_uc_t *uc, const char *tenant_id, const char *job_id, const char *lease_token,
                    int lease_ms, tf_store_heartbeat_cb cb, void *arg);

/* Puts this worker's RUNNING jobs back to PENDING without counting the
 * attempt (graceful shutdown). */
int tf_uc_release(tf_uc_t *uc, const char *worker_id, const char *const *job_ids,
                  const char *const *lease_tokens, size_t n, tf_store_count_cb cb, void *arg);

/* Moves up to `limit` due SCHEDULED jobs to PENDING (claimable). */
int tf_uc_promote(tf_uc_t *uc, int limit, tf_store_count_cb cb, void *arg);

/* How long until the next SCHEDULED job is due. */
int tf_uc_next_due(tf_uc_t *uc, tf_store_next_due_cb cb, void *arg);

/* The queues holding ready jobs with a built-in executor. */
int tf_uc_builtin_queues(tf_uc_t *uc, tf_store_names_cb cb, void *arg);

#endif
