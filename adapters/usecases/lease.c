/*
 * lease.c - heartbeats, release, promotion and polling (see lease.h).
 */
#include "adapters/usecases/lease.h"

#include "adapters/usecases/claim.h"
#include "engine/error.h"

int tf_uc_heartbeat(tf_uc_t *uc, const char *tenant_id, const char *job_id, const char *lease_token,
                    int lease_ms, tf_store_heartbeat_cb cb, void *arg) {
    if (job_id == NULL || lease_token == NULL || lease_ms < TF_LEASE_MIN_MS ||
        lease_ms > TF_LEASE_MAX_MS) {
        return TF_EINVAL;
    }
    return uc->store->heartbeat(uc->store->ctx, tenant_id, job_id, lease_token, lease_ms,
                                tf_uc_now(uc), cb, arg);
}

int tf_uc_release(tf_uc_t *uc, const char *worker_id, const char *const *job_ids,
                  const char *const *lease_tokens, size_t n, tf_store_count_cb cb, void *arg) {
    return uc->store->release(uc->store->ctx, worker_id, job_ids, lease_tokens, n, tf_uc_now(uc),
                              cb, arg);
}

int tf_uc_promote(tf_uc_t *uc, int limit, tf_store_count_cb cb, void *arg) {
    return uc->store->promote(uc->store->ctx, limit, tf_uc_now(uc), cb, arg);
}

int tf_uc_next_due(tf_uc_t *uc, tf_store_next_due_cb cb, void *arg) {
    return uc->store->next_due(uc->store->ctx, tf_uc_now(uc), cb, arg);
}

int tf_uc_builtin_queues(tf_uc_t *uc, tf_store_names_cb cb, void *arg) {
    return uc->store->builtin_queues(uc->store->ctx, cb, arg);
}
