/*
 * tenants.c - the operator's use cases (see tenants.h).
 */
#include "adapters/usecases/tenants.h"

#include "engine/error.h"

int tf_uc_tenant_create(tf_uc_t *uc, const tf_uc_tenant_spec_t *spec, tf_tenant_cb cb, void *arg) {
    char id[TF_ID_LEN];
    tf_uc_new_id(uc, id);
    tf_tenant_new_t t = {
        .id = id,
        .name = spec->name,
        .plan = spec->plan != NULL ? spec->plan : "free",
        .weight = spec->weight > 0 ? spec->weight : 1,
        .max_running = spec->max_running,
        .attributes = spec->attributes,
        .signing_secret = spec->signing_secret,
        .signing_secret_len = spec->signing_secret_len,
        .now_ms = tf_uc_now(uc),
    };
    return uc->tenants->tenant_create(uc->tenants->ctx, &t, cb, arg);
}

int tf_uc_tenant_get(tf_uc_t *uc, const char *id, tf_tenant_cb cb, void *arg) {
    return uc->tenants->tenant_get(uc->tenants->ctx, id, cb, arg);
}

int tf_uc_tenant_list(tf_uc_t *uc, const char *after_id, int rows, tf_tenants_cb cb, void *arg) {
    return uc->tenants->tenant_list(uc->tenants->ctx, after_id, rows, cb, arg);
}

int tf_uc_tenant_patch(tf_uc_t *uc, tf_tenant_patch_t *patch, tf_tenant_cb cb, void *arg) {
    if (patch->name == NULL && patch->plan == NULL && patch->weight == 0 &&
        !patch->set_max_running && patch->attributes == NULL) {
        return uc->tenants->tenant_get(uc->tenants->ctx, patch->id, cb, arg);
    }
    patch->now_ms = tf_uc_now(uc);
    return uc->tenants->tenant_patch(uc->tenants->ctx, patch, cb, arg);
}

int tf_uc_key_create(tf_uc_t *uc, const char *tenant_id, const uint8_t token_hash[32],
                     const char *prefix, const char *name, tf_api_key_cb cb, void *arg) {
    char id[TF_ID_LEN];
    tf_uc_new_id(uc, id);
    return uc->tenants->key_create(uc->tenants->ctx, tenant_id, id, token_hash, prefix, name,
                                   tf_uc_now(uc), cb, arg);
}

int tf_uc_key_revoke(tf_uc_t *uc, const char *tenant_id, const char *key_id, tf_store_status_cb cb,
                     void *arg) {
    return uc->tenants->key_revoke(uc->tenants->ctx, tenant_id, key_id, tf_uc_now(uc), cb, arg);
}

int tf_uc_queue_put(tf_uc_t *uc, const char *name, int set_max_running, int64_t max_running,
                    int paused, tf_queue_cb cb, void *arg) {
    return uc->tenants->queue_put(uc->tenants->ctx, name, set_max_running, max_running, paused,
                                  tf_uc_now(uc), cb, arg);
}

int tf_uc_queue_status(tf_uc_t *uc, const char *name, tf_queue_status_cb cb, void *arg) {
    return uc->tenants->queue_status(uc->tenants->ctx, name, tf_uc_now(uc), cb, arg);
}

int tf_uc_tenant_queue_put(tf_uc_t *uc, const char *tenant_id, const char *queue,
                           int64_t max_running, tf_tenant_queue_cb cb, void *arg) {
    return uc->tenants->tenant_queue_put(uc->tenants->ctx, tenant_id, queue, max_running,
                                         tf_uc_now(uc), cb, arg);
}
