/*
 * finish.h - ending attempts: completions and failures reported by workers
 * (one or many at once), and the rescue of attempts whose lease expired or
 * that ran past their timeout.
 *
 * A success ends the job SUCCEEDED.  What a failure leads to is the
 * engine's decision (tf_retry_decide() with the job's policy, the clock's
 * now and this loop's RNG): SCHEDULED for a retry at the backoff's time,
 * FAILED when the policy says stop, DEAD when attempts are used up.  Each
 * terminal end emits its domain event (job.succeeded, job.failed, job.dead)
 * into the unit of work's event sink, which the store records in the same
 * transaction, and brings about the dependency release the engine names
 * (tf_job_dependants_action()).  An end is applied only under the current
 * lease token: a stale one changes nothing and is recorded as refused.
 * Loop thread of the use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_FINISH_H
#define TF_ADAPTERS_USECASES_FINISH_H

#include <stddef.h>

#include "adapters/usecases/usecases.h"

#define TF_ACK_MAX 1000

/* One completion (ok = 1) or failure (ok = 0) of a leased attempt.
 * Strings are borrowed for the call. */
typedef struct {
    const char *tenant_id; /* the caller's tenant; NULL: any (admin, built-in executors) */
    const char *job_id;
    const char *lease_token;
    const char *worker_id; /* recorded in the attempt and as actor "worker:<id>"; NULL: the
                              lease holder */
    int ok;
    const char *result_json; /* ok: the result, JSON text (NULL: null) */
    const char *error_type;  /* !ok: e.g. "http_503", "timeout" (NULL: "error") */
    const char *error_message;
    int retryable; /* !ok: 0 ends the job FAILED at once */
    int64_t snooze_ms;    /* ok: > 0 puts the job back for that long without spending the
                             attempt (outcome "snoozed", transition reason "snoozed") */
    int executor_version; /* the Lua executor version that ran; 0: none */
    int64_t ended_ms;     /* when the attempt ended (engine clock); 0: when it is recorded */
    /* Jobs the attempt created (tf.enqueue), inserted with an ok end in the
     * same transaction and dropped with a failure.  Borrowed until `cb`. */
    const tf_new_job_t *const *children;
    size_t nchildren;
} tf_ack_t;

typedef struct {
    int status;                 /* 0 applied; TF_ESTALE: lease not current; TF_ENOTFOUND */
    tf_job_state_t state;       /* applied: the job's new state */
    size_t released, cancelled; /* dependants its end released or cancelled */
} tf_ack_result_t;

/* `status` 0 with one result per ack (same order), or a TF_E* code for the
 * whole call (nothing was applied). */
typedef void (*tf_uc_ack_cb)(void *arg, int status, const tf_ack_result_t *results, size_t n);

/* Applies `n` (1..TF_ACK_MAX) acks in one transaction; each is judged on
 * its own. */
int tf_uc_ack(tf_uc_t *uc, const tf_ack_t *acks, size_t n, tf_uc_ack_cb cb, void *arg);

/* Fails up to `limit` attempts whose lease expired (error type
 * "lease_expired") or that ran past timeout_ms ("timeout"), each decided
 * by its job's policy.  `cb` gets how many were applied. */
int tf_uc_rescue(tf_uc_t *uc, int limit, tf_store_count_cb cb, void *arg);

#endif
