/*
 * tenants.h - the operator's use cases: tenants, their API keys, queues and
 * per-tenant queue caps.  Ids are UUIDv7 made here; times come from the
 * clock port.  Secrets and tokens are made by the caller (the HTTP API,
 * which holds the cryptographic random source) and reach the store only as
 * what it keeps: a tenant's signing secret, a key's SHA-256.
 * Loop thread of the use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_TENANTS_H
#define TF_ADAPTERS_USECASES_TENANTS_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/usecases/usecases.h"

/* A tenant to create; the id and time are filled in. */
typedef struct {
    const char *name, *plan; /* plan NULL: "free" */
    int weight;              /* 0: 1 */
    int64_t max_running;     /* TF_NO_CAP: none */
    const char *attributes;  /* JSON object text; NULL: {} */
    const uint8_t *signing_secret;
    size_t signing_secret_len;
} tf_uc_tenant_spec_t;

int tf_uc_tenant_create(tf_uc_t *uc, const tf_uc_tenant_spec_t *spec, tf_tenant_cb cb, void *arg);
int tf_uc_tenant_get(tf_uc_t *uc, const char *id, tf_tenant_cb cb, void *arg);
/* `rows` tenants after `after_id` (the nil UUID for the first page). */
int tf_uc_tenant_list(tf_uc_t *uc, const char *after_id, int rows, tf_tenants_cb cb, void *arg);
/* `patch->now_ms` is filled in.  A patch that changes nothing answers the
 * tenant as it is (its updated_at kept). */
int tf_uc_tenant_patch(tf_uc_t *uc, tf_tenant_patch_t *patch, tf_tenant_cb cb, void *arg);

/* Stores a new key of the tenant under the SHA-256 of its token; the key's
 * id is made here.  The callback's key is NULL when there is no such
 * tenant. */
int tf_uc_key_create(tf_uc_t *uc, const char *tenant_id, const uint8_t token_hash[32],
                     const char *prefix, const char *name, tf_api_key_cb cb, void *arg);
int tf_uc_key_revoke(tf_uc_t *uc, const char *tenant_id, const char *key_id, tf_store_status_cb cb,
                     void *arg);

int tf_uc_queue_put(tf_uc_t *uc, const char *name, int set_max_running, int64_t max_running,
                    int paused, tf_queue_cb cb, void *arg);
/* One queue's status, or every queue's (name NULL). */
int tf_uc_queue_status(tf_uc_t *uc, const char *name, tf_queue_status_cb cb, void *arg);
int tf_uc_tenant_queue_put(tf_uc_t *uc, const char *tenant_id, const char *queue,
                           int64_t max_running, tf_tenant_queue_cb cb, void *arg);

#endif
