/*
 * scripts.h - the script store port: tenants' Lua executors (and, with
 * automation rules, their rules), every upload kept as a version.
 *
 * Same contract as the job store (store.h): asynchronous, callbacks exactly
 * once with a status, rows borrowed for the callback.  Implemented by
 * adapters/pg/store_scripts.c; tests fake it.
 *
 * An executor has a name (unique per tenant), a current version and its
 * versions (1, 2, ...: an upload is a new version, never an edit).  Its
 * `handles` are job types: a job submitted without an `executor` whose
 * type a tenant's executor handles runs in that executor; a type is handled
 * by at most one executor of a tenant.  Deleting an executor keeps its
 * versions (attempts name the version they ran) and frees its name and
 * types; uploading the name again continues its version numbers.
 */
#ifndef TF_ENGINE_SCRIPTS_H
#define TF_ENGINE_SCRIPTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/rules.h"

#define TF_SCRIPT_NAME_MAX 128
#define TF_SCRIPT_SOURCE_MAX ((size_t)256 << 10) /* bytes of Lua per upload */
#define TF_SCRIPT_HANDLES_MAX 64

/* One version of an executor (the current one when read as the executor). */
typedef struct {
    const char *tenant_id, *name;
    int version;
    const char *source; /* NULL in listings */
    size_t source_len;
    const char *sha256; /* hex of the source */
    const char *const *handles;
    size_t nhandles;
    int64_t timeout_ms; /* -1: none (the job's timeout applies) */
    const char *created_by;
    int64_t created_at_ms; /* of this version */
    int64_t updated_at_ms; /* the executor's last upload (listings) */
} tf_script_t;

/* An upload to record. */
typedef struct {
    const char *tenant_id, *name;
    const char *source;
    size_t source_len;
    const char *const *handles;
    size_t nhandles;
    int64_t timeout_ms; /* -1: none */
    const char *actor;
    int64_t now_ms;
} tf_script_put_t;

typedef struct {
    int version;       /* the new version */
    int created;       /* 1: the executor did not exist (or was deleted) */
    const char *sha256; /* hex SHA-256 of the source, as stored */
    const char *taken_type; /* TF_ECONFLICT: a type another executor handles */
    const char *taken_by;   /* ... and that executor's name */
} tf_script_put_result_t;

typedef void (*tf_script_put_cb)(void *arg, int status, const tf_script_put_result_t *result);
/* One executor (NULL: the tenant has none by that name, or not that version). */
typedef void (*tf_script_get_cb)(void *arg, int status, const tf_script_t *script);
typedef void (*tf_script_list_cb)(void *arg, int status, const tf_script_t *scripts, size_t n);
typedef void (*tf_script_status_cb)(void *arg, int status);

typedef struct {
    void *ctx;
    /* Records a new version and makes it current, with its types, in one
     * transaction; TF_ECONFLICT (result says which type) when another
     * executor of the tenant handles one of the types; nothing changes
     * then.  Tells every node that the executor changed. */
    int (*put_executor)(void *ctx, const tf_script_put_t *put, tf_script_put_cb cb, void *arg);
    /* The executor's current version (version 0) or version `version`,
     * with its source. */
    int (*get_executor)(void *ctx, const char *tenant_id, const char *name, int version,
                        tf_script_get_cb cb, void *arg);
    /* The tenant's executors (current versions, no source), by name. */
    int (*list_executors)(void *ctx, const char *tenant_id, tf_script_list_cb cb, void *arg);
    /* The executor's versions, newest first (no source); n 0: no such executor. */
    int (*executor_versions)(void *ctx, const char *tenant_id, const char *name,
                             tf_script_list_cb cb, void *arg);
    /* Deletes the executor (status TF_ENOTFOUND when there is none); its
     * versions are kept. */
    int (*delete_executor)(void *ctx, const char *tenant_id, const char *name,
                           tf_script_status_cb cb, void *arg);
} tf_script_store_t;

/* What checking an uploaded executor found in its returned table. */
typedef struct {
    const char *const *handles;
    size_t nhandles;
    int64_t timeout_ms; /* -1: none */
} tf_script_meta_t;

/* `status` 0 with `meta`; TF_EINVAL with `message` (the Lua error with its
 * line, or what the table lacks); another TF_E* code when the check could
 * not run. */
typedef void (*tf_script_check_cb)(void *arg, int status, const char *message,
                                   const tf_script_meta_t *meta);

/* The checker port: compiles and runs an upload in a scratch sandbox and
 * checks the table it returns (adapters/luaexec). */
typedef struct {
    void *ctx;
    int (*check_executor)(void *ctx, const char *tenant_id, const char *name, const char *source,
                          size_t len, tf_script_check_cb cb, void *arg);
    /* The same for a rule: the table it returns is {name, trigger,
     * condition (optional), action}. */
    int (*check_rule)(void *ctx, const char *tenant_id, const char *source, size_t len,
                      tf_rule_check_cb cb, void *arg);
} tf_script_checker_t;

#endif
