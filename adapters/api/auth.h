/*
 * auth.h - who is calling: the operator (admin token) or a tenant (API key).
 *
 * Tokens arrive as `Authorization: Bearer <token>` and are compared by their
 * SHA-256 only, in constant time.  The admin token's hash is held by the app
 * (from TASKFLOW_ADMIN_TOKEN, or generated on the first start and kept
 * hashed in `settings`).  Tenant keys ("tf_...") are looked up through the
 * tenant store (engine/tenants.h) and remembered in a small per-loop cache for a few seconds, so a
 * steady client costs no extra round trip.  Revoking a key bumps the
 * process-wide generation in tf_auth_shared_t, which empties every loop's
 * cache at once: a key revoked through this node stops working with the next
 * request.  Other nodes drop it when their cache entry expires
 * (TF_AUTH_CACHE_TTL_MS).
 *
 * The admin token may act for a tenant with `TaskFlow-Tenant: <tenant id>`
 * on tenant routes; the tenant must exist (404 otherwise).  A tenant key on
 * an operator route is refused with 401.  Loop-thread only, except the
 * atomic generation.
 */
#ifndef TF_ADAPTERS_API_AUTH_H
#define TF_ADAPTERS_API_AUTH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/http/server.h"
#include "engine/hex.h"
#include "engine/tenants.h"

#define TF_AUTH_CACHE_TTL_MS 5000
#define TF_TOKEN_HASH_LEN 32

/* Shared by every loop; lives in the app. */
typedef struct {
    int has_admin;
    uint8_t admin_hash[TF_TOKEN_HASH_LEN];
    _Atomic uint64_t key_generation;
} tf_auth_shared_t;

typedef struct tf_auth_cache tf_auth_cache_t;

typedef enum {
    TF_AUTH_ADMIN,  /* operator routes: admin token only */
    TF_AUTH_TENANT, /* tenant routes: a tenant key, or the admin token with TaskFlow-Tenant */
    /* Routes that may act across tenants (the external-worker API): as
     * TF_AUTH_TENANT, except that the admin token without TaskFlow-Tenant
     * acts for every tenant (principal with is_admin set and tenant_id ""). */
    TF_AUTH_TENANT_OR_ADMIN,
} tf_auth_mode_t;

typedef struct {
    int is_admin;
    char tenant_id[37]; /* the tenant acted for; "" for the admin on operator routes and
                         * on TF_AUTH_TENANT_OR_ADMIN routes without TaskFlow-Tenant */
    char actor[48];     /* "admin" or "key:<key id>", recorded in job_events */
} tf_principal_t;

/* What authentication needs from the request's loop. */
typedef struct {
    const tf_auth_shared_t *shared;
    tf_auth_cache_t *cache;
    const tf_tenant_store_t *tenants;
} tf_auth_ctx_t;

typedef void (*tf_auth_cb)(tf_http_req_t *req, const tf_principal_t *who, void *arg);

/* Caller owns the result; free with tf_auth_cache_destroy(). */
int tf_auth_cache_create(tf_auth_cache_t **out);
void tf_auth_cache_destroy(tf_auth_cache_t *cache);

/* Authenticates `req` for `mode`.  On success calls `cb` (now, or after one
 * database round trip on a cache miss); on failure answers the request
 * itself (401, 404 for an unknown TaskFlow-Tenant, 422 for a malformed one,
 * 503 when the database is down) and `cb` is never called. */
void tf_auth_request(const tf_auth_ctx_t *ctx, tf_http_req_t *req, tf_auth_mode_t mode,
                     tf_auth_cb cb, void *arg);

/* SHA-256 of `len` bytes of `token`. */
void tf_token_hash(const char *token, size_t len, uint8_t out[TF_TOKEN_HASH_LEN]);

/* Makes a new random token `prefix` + 43 base64url characters into `out`
 * (`outlen` >= strlen(prefix) + 44).  Returns 0 or TF_EIO when the OS
 * random source fails. */
int tf_token_generate(const char *prefix, char *out, size_t outlen);

/* Empties every loop's cache (after a key was revoked). */
void tf_auth_invalidate(const tf_auth_shared_t *shared);

#endif
