/*
 * tenants.h - the tenant store port: tenants, their API keys, queues and
 * per-tenant queue caps (the operator's API), and the credential lookups
 * of authentication.
 *
 * Same conventions as the job store (store.h): asynchronous, one callback
 * exactly once and never before the call returns, borrowed strings valid
 * during the callback only, statuses TF_EUNAVAIL / TF_EAGAIN /
 * TF_ETIMEDOUT / TF_ESHUTDOWN (503) and TF_EIO (500), and a write is one
 * transaction.  Implemented by adapters/pg/store_tenants.c.
 * Loop thread of the store's owner only.
 */
#ifndef TF_ENGINE_TENANTS_H
#define TF_ENGINE_TENANTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/store.h"

#define TF_NO_CAP (-1) /* max_running of a scope without a cap */

typedef struct {
    const char *id, *name, *plan;
    int weight;
    int64_t max_running;    /* TF_NO_CAP: none */
    const char *attributes; /* JSON object text */
    int64_t created_at_ms, updated_at_ms;
} tf_tenant_t;

typedef struct {
    const char *id, *name, *plan;
    int weight;
    int64_t max_running;    /* TF_NO_CAP: none */
    const char *attributes; /* JSON object text */
    const uint8_t *signing_secret;
    size_t signing_secret_len;
    int64_t now_ms;
} tf_tenant_new_t;

/* Changes to a tenant; NULL / 0 members are kept. */
typedef struct {
    const char *id;
    const char *name, *plan;
    int weight;          /* 0: keep */
    int set_max_running; /* 1: max_running below is the new cap */
    int64_t max_running; /* TF_NO_CAP: remove the cap */
    /* JSON object merged into the attributes at the top level; a member set
     * to null removes that attribute.  NULL: keep. */
    const char *attributes;
    int64_t now_ms;
} tf_tenant_patch_t;

typedef struct {
    const char *id, *tenant_id;
    int64_t created_at_ms;
} tf_api_key_t;

typedef struct {
    const char *name;
    int64_t max_running; /* TF_NO_CAP: none */
    int paused;
    int64_t created_at_ms, updated_at_ms; /* TF_TIME_NONE for a queue nobody defined */
} tf_queue_t;

typedef struct {
    tf_queue_t queue;
    int64_t counts[TF_JOB_STATE_COUNT]; /* jobs by state */
    const char *running_by_tenant;      /* JSON object {tenant id: running jobs} */
    int has_ready;                      /* 0: nothing ready (age is null) */
    double oldest_ready_age_s;
} tf_queue_status_t;

typedef struct {
    const char *tenant_id, *queue;
    int64_t max_running; /* TF_NO_CAP: none */
} tf_tenant_queue_t;

/* status TF_ECONFLICT: another tenant has the name; tenant NULL: no such
 * tenant. */
typedef void (*tf_tenant_cb)(void *arg, int status, const tf_tenant_t *tenant);
typedef void (*tf_tenants_cb)(void *arg, int status, const tf_tenant_t *tenants, size_t n);
/* key NULL: no such tenant. */
typedef void (*tf_api_key_cb)(void *arg, int status, const tf_api_key_t *key);
typedef void (*tf_queue_cb)(void *arg, int status, const tf_queue_t *queue);
typedef void (*tf_queue_status_cb)(void *arg, int status, const tf_queue_status_t *queues,
                                   size_t n);
/* row NULL: no such tenant. */
typedef void (*tf_tenant_queue_cb)(void *arg, int status, const tf_tenant_queue_t *row);
/* tenant_id NULL: no such key, or it was revoked. */
typedef void (*tf_key_lookup_cb)(void *arg, int status, const char *tenant_id, const char *key_id);

typedef struct {
    void *ctx;

    int (*tenant_create)(void *ctx, const tf_tenant_new_t *tenant, tf_tenant_cb cb, void *arg);
    int (*tenant_get)(void *ctx, const char *id, tf_tenant_cb cb, void *arg);
    /* Up to `rows` tenants with ids after `after_id`, by id. */
    int (*tenant_list)(void *ctx, const char *after_id, int rows, tf_tenants_cb cb, void *arg);
    int (*tenant_patch)(void *ctx, const tf_tenant_patch_t *patch, tf_tenant_cb cb, void *arg);

    /* Stores a key by the SHA-256 of its token (the token itself never
     * reaches the store). */
    int (*key_create)(void *ctx, const char *tenant_id, const char *key_id,
                      const uint8_t token_hash[32], const char *prefix, const char *name,
                      int64_t now_ms, tf_api_key_cb cb, void *arg);
    /* status TF_ENOTFOUND: no such key, or it was already revoked. */
    int (*key_revoke)(void *ctx, const char *tenant_id, const char *key_id, int64_t now_ms,
                      tf_store_status_cb cb, void *arg);

    /* Creates or changes a queue: max_running only when `set_max_running`,
     * paused only when `paused` >= 0. */
    int (*queue_put)(void *ctx, const char *name, int set_max_running, int64_t max_running,
                     int paused, int64_t now_ms, tf_queue_cb cb, void *arg);
    /* One queue (always answers: a queue nobody defined has no cap), or
     * every defined queue and every queue a job names (name NULL), by name. */
    int (*queue_status)(void *ctx, const char *name, int64_t now_ms, tf_queue_status_cb cb,
                        void *arg);
    int (*tenant_queue_put)(void *ctx, const char *tenant_id, const char *queue,
                            int64_t max_running, int64_t now_ms, tf_tenant_queue_cb cb, void *arg);

    /* Authentication: the tenant and key id of an unrevoked key. */
    int (*key_lookup)(void *ctx, const uint8_t token_hash[32], tf_key_lookup_cb cb, void *arg);
    /* status 0 when the tenant exists, TF_ENOTFOUND when not. */
    int (*tenant_exists)(void *ctx, const char *id, tf_store_status_cb cb, void *arg);
} tf_tenant_store_t;

#endif
