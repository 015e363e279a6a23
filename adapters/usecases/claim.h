/*
 * claim.h - the claim use case: lease ready jobs of a queue to a worker.
 *
 * A tenant claims its own jobs directly.  Across tenants (the admin token,
 * built-in executors) the claim is planned first: the store names the
 * tenants with ready work (their weights, backlogs and virtual times), the
 * engine's fair-share planner (engine/claim_plan.h) decides each tenant's
 * share, and the store claims that share under the caps, which hold across
 * nodes, and keeps the new virtual times.  Two round trips; one for a
 * single tenant.  Loop thread of the use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_CLAIM_H
#define TF_ADAPTERS_USECASES_CLAIM_H

#include "adapters/usecases/usecases.h"

#define TF_CLAIM_MAX_JOBS 1000
#define TF_LEASE_MIN_MS 1000
#define TF_LEASE_MAX_MS 3600000

typedef struct {
    const char *queue;     /* required */
    int builtin;           /* jobs with a built-in executor, or jobs for external workers */
    const char *tenant_id; /* only this tenant's jobs; NULL: every tenant, in fair-share order */
    const char *worker_id; /* recorded as the lease holder */
    int max_jobs;          /* 1..TF_CLAIM_MAX_JOBS */
    int lease_ms;          /* TF_LEASE_MIN_MS..TF_LEASE_MAX_MS */
} tf_uc_claim_t;

/* Returns TF_EINVAL for a request out of range. */
int tf_uc_claim(tf_uc_t *uc, const tf_uc_claim_t *req, tf_store_claimed_cb cb, void *arg);

#endif
