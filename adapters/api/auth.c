/*
 * auth.c - bearer tokens, the per-loop key cache, and TaskFlow-Tenant.
 * Runs on the loop thread of the request it authenticates.
 */
#include "adapters/api/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "engine/error.h"
#include "engine/uuid.h"

#define CACHE_SLOTS 1024 /* power of two */

typedef struct {
    uint8_t hash[TF_TOKEN_HASH_LEN];
    int used;
    uint64_t expires_ms;
    uint64_t generation;
    char tenant_id[37];
    char actor[48];
} cache_entry_t;

struct tf_auth_cache {
    cache_entry_t slots[CACHE_SLOTS];
};

typedef struct {
    tf_auth_ctx_t ctx;
    tf_http_req_t *req;
    tf_auth_mode_t mode;
    tf_auth_cb cb;
    void *arg;
    uint8_t hash[TF_TOKEN_HASH_LEN];
    uint64_t generation;
    tf_principal_t who;
} lookup_t;

int tf_auth_cache_create(tf_auth_cache_t **out) {
    *out = calloc(1, sizeof(**out));
    return *out == NULL ? TF_ENOMEM : 0;
}

void tf_auth_cache_destroy(tf_auth_cache_t *cache) {
    free(cache);
}

void tf_token_hash(const char *token, size_t len, uint8_t out[TF_TOKEN_HASH_LEN]) {
    unsigned int n = 0;
    EVP_Digest(token, len, out, &n, EVP_sha256(), NULL);
}

int tf_token_generate(const char *prefix, char *out, size_t outlen) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[33];
    size_t plen = strlen(prefix);
    if (outlen < plen + 45) {
        return TF_EINVAL;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return TF_EIO;
    }
    memcpy(out, prefix, plen);
    char *p = out + plen;
    /* 33 bytes -> 44 characters; keep 43 (258 bits of which 256 random). */
    for (size_t i = 0; i < sizeof(raw); i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        *p++ = b64[(v >> 18) & 63];
        *p++ = b64[(v >> 12) & 63];
        *p++ = b64[(v >> 6) & 63];
        *p++ = b64[v & 63];
    }
    out[plen + 43] = '\0';
    return 0;
}

void tf_auth_invalidate(const tf_auth_shared_t *shared) {
    /* The generation is the one member loops may change. */
    atomic_fetch_add((_Atomic uint64_t *)&shared->key_generation, 1);
}

static cache_entry_t *slot_for(tf_auth_cache_t *cache, const uint8_t *hash) {
    uint32_t h;
    memcpy(&h, hash, sizeof(h));
    return &cache->slots[h & (CACHE_SLOTS - 1)];
}

static const cache_entry_t *cache_get(const tf_auth_ctx_t *ctx, const uint8_t *hash,
                                      uint64_t now_ms) {
    cache_entry_t *e = slot_for(ctx->cache, hash);
    if (!e->used || e->expires_ms <= now_ms ||
        e->generation != atomic_load(&ctx->shared->key_generation) ||
        CRYPTO_memcmp(e->hash, hash, TF_TOKEN_HASH_LEN) != 0) {
        return NULL;
    }
    return e;
}

static void cache_put(const tf_auth_ctx_t *ctx, const uint8_t *hash, uint64_t generation,
                      uint64_t now_ms, const tf_principal_t *who) {
    cache_entry_t *e = slot_for(ctx->cache, hash);
    memcpy(e->hash, hash, TF_TOKEN_HASH_LEN);
    e->used = 1;
    e->expires_ms = now_ms + TF_AUTH_CACHE_TTL_MS;
    e->generation = generation;
    snprintf(e->tenant_id, sizeof(e->tenant_id), "%s", who->tenant_id);
    snprintf(e->actor, sizeof(e->actor), "%s", who->actor);
}

static uint64_t loop_now(tf_http_req_t *req) {
    return uv_now(tf_http_req_loop(req));
}

static void unauthorized(tf_http_req_t *req, const char *why) {
    tf_http_req_add_header(req, "WWW-Authenticate", "Bearer");
    tf_http_respond_error(req, 401, "unauthorized", why, NULL);
}

/* The lookup answered: `tenant_id` NULL means no such key (or tenant). */
static void lookup_answered(lookup_t *l, int status, const char *tenant_id, const char *key_id) {
    tf_http_req_t *req = l->req;
    int is_tenant_check = l->who.is_admin;
    if (status != 0) {
        tf_http_respond_error(req, 503, "unavailable", "cannot check credentials now", NULL);
    } else if (tenant_id == NULL) {
        if (is_tenant_check) {
            tf_http_respond_error(req, 404, "not_found", "no such tenant",
                                  "{\"field\":\"TaskFlow-Tenant\"}");
        } else {
            unauthorized(req, "unknown or revoked API key");
        }
    } else {
        if (!is_tenant_check) {
            snprintf(l->who.tenant_id, sizeof(l->who.tenant_id), "%s", tenant_id);
            snprintf(l->who.actor, sizeof(l->who.actor), "key:%s", key_id);
        }
        cache_put(&l->ctx, l->hash, l->generation, loop_now(req), &l->who);
        l->cb(req, &l->who, l->arg);
    }
    free(l);
}

static void key_found(void *arg, int status, const char *tenant_id, const char *key_id) {
    lookup_answered(arg, status, tenant_id, key_id);
}

static void tenant_found(void *arg, int status) {
    lookup_t *l = arg;
    lookup_answered(l, status == TF_ENOTFOUND ? 0 : status, status == 0 ? l->who.tenant_id : NULL,
                    NULL);
}

/* Looks `who` up through the tenant store: a tenant key by hash, or (admin)
 * the tenant it acts for.  Answers 503 itself when the lookup cannot start. */
static void lookup(const tf_auth_ctx_t *ctx, tf_http_req_t *req, const uint8_t *hash,
                   const tf_principal_t *who, tf_auth_cb cb, void *arg) {
    lookup_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        tf_http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    l->ctx = *ctx;
    l->req = req;
    l->cb = cb;
    l->arg = arg;
    l->who = *who;
    l->generation = atomic_load(&ctx->shared->key_generation);
    memcpy(l->hash, hash, TF_TOKEN_HASH_LEN);
    const tf_tenant_store_t *t = ctx->tenants;
    int rc = who->is_admin ? t->tenant_exists(t->ctx, who->tenant_id, tenant_found, l)
                           : t->key_lookup(t->ctx, hash, key_found, l);
    if (rc != 0) {
        free(l);
        tf_http_respond_error(req, 503, "unavailable", "cannot check credentials now", NULL);
    }
}

static void admin_for_tenant(const tf_auth_ctx_t *ctx, tf_http_req_t *req, tf_auth_cb cb,
                             void *arg) {
    tf_principal_t who = {.is_admin = 1};
    snprintf(who.actor, sizeof(who.actor), "admin");
    const char *tenant = tf_http_req_header(req, "TaskFlow-Tenant");
    tf_uuid_t parsed;
    if (tenant == NULL) {
        tf_http_respond_error(req, 422, "validation_failed",
                              "the admin token must name a tenant with TaskFlow-Tenant",
                              "{\"field\":\"TaskFlow-Tenant\"}");
        return;
    }
    if (tf_uuid_parse(tenant, &parsed) != 0) {
        tf_http_respond_error(req, 422, "validation_failed", "TaskFlow-Tenant must be a tenant id",
                              "{\"field\":\"TaskFlow-Tenant\"}");
        return;
    }
    tf_uuid_format(&parsed, who.tenant_id);
    char key[64];
    uint8_t hash[TF_TOKEN_HASH_LEN];
    int n = snprintf(key, sizeof(key), "tenant:%s", who.tenant_id);
    tf_token_hash(key, (size_t)n, hash);
    if (cache_get(ctx, hash, loop_now(req)) != NULL) {
        cb(req, &who, arg);
        return;
    }
    lookup(ctx, req, hash, &who, cb, arg);
}

void tf_auth_request(const tf_auth_ctx_t *ctx, tf_http_req_t *req, tf_auth_mode_t mode,
                     tf_auth_cb cb, void *arg) {
    const char *header = tf_http_req_header(req, "Authorization");
    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0) {
        unauthorized(req, "missing bearer token");
        return;
    }
    const char *token = header + 7;
    size_t len = strlen(token);
    if (len == 0 || len > 512) {
        unauthorized(req, "malformed bearer token");
        return;
    }
    uint8_t hash[TF_TOKEN_HASH_LEN];
    tf_token_hash(token, len, hash);
    if (ctx->shared->has_admin &&
        CRYPTO_memcmp(hash, ctx->shared->admin_hash, TF_TOKEN_HASH_LEN) == 0) {
        if (mode == TF_AUTH_TENANT || (mode == TF_AUTH_TENANT_OR_ADMIN &&
                                       tf_http_req_header(req, "TaskFlow-Tenant") != NULL)) {
            admin_for_tenant(ctx, req, cb, arg);
            return;
        }
        tf_principal_t who = {.is_admin = 1};
        snprintf(who.actor, sizeof(who.actor), "admin");
        cb(req, &who, arg);
        return;
    }
    if (mode == TF_AUTH_ADMIN || strncmp(token, "tf_", 3) != 0) {
        unauthorized(req, mode == TF_AUTH_ADMIN ? "the operator's admin token is required"
                                                : "invalid token");
        return;
    }
    const cache_entry_t *hit = cache_get(ctx, hash, loop_now(req));
    if (hit != NULL) {
        tf_principal_t who = {.is_admin = 0};
        memcpy(who.tenant_id, hit->tenant_id, sizeof(who.tenant_id));
        memcpy(who.actor, hit->actor, sizeof(who.actor));
        cb(req, &who, arg);
        return;
    }
    tf_principal_t who = {.is_admin = 0};
    lookup(ctx, req, hash, &who, cb, arg);
}
