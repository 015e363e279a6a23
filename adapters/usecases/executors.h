/*
 * executors.h - tenants' Lua executors: upload (checked in a scratch
 * sandbox, then kept as a new version), read, list, versions, delete.
 *
 * An upload is refused before anything runs when its name is not 1-128
 * characters of [A-Za-z0-9_.:-], when the source is empty, larger than
 * TF_SCRIPT_SOURCE_MAX, a binary chunk ("\x1bLua"), not UTF-8 or holds a
 * NUL byte; then the checker compiles and runs it and vets the table it
 * returns (its Lua error and line, or what the table lacks, come back as
 * the message); then the store records it, refusing a job type another of
 * the tenant's executors handles.
 * Loop thread of the use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_EXECUTORS_H
#define TF_ADAPTERS_USECASES_EXECUTORS_H

#include <stddef.h>

#include "adapters/usecases/usecases.h"
#include "engine/scripts.h"

typedef struct {
    const char *tenant_id, *name;
    const char *source;
    size_t len;
    const char *actor;
} tf_uc_upload_t;

/* status 0: `script` is the new version (without source), `created` 1 when
 * the executor is new.  TF_EINVAL or TF_ECONFLICT: `message` says why.
 * Other TF_E* codes: the store or the checker failed. */
typedef void (*tf_uc_upload_cb)(void *arg, int status, const char *message,
                                const tf_script_t *script, int created);

/* Returns 0 and calls `cb` later, or a TF_E* code (TF_EINVAL, TF_ETOOBIG
 * with why in `err`) and never calls it. */
int tf_uc_executor_upload(tf_uc_t *uc, const tf_uc_upload_t *up, tf_uc_upload_cb cb, void *arg,
                          char *err, size_t errlen);

/* The checks every uploaded script passes before it runs: not empty, at
 * most TF_SCRIPT_SOURCE_MAX, not a binary chunk, UTF-8 without NUL bytes.
 * Returns 0, or TF_EINVAL / TF_ETOOBIG with why in `err`. */
int tf_uc_script_source_check(const char *source, size_t len, char *err, size_t errlen);

/* 1 when `name` may name an executor. */
int tf_uc_executor_name_valid(const char *name);

#endif
