/*
 * work.h - the use cases of running jobs: claim, heartbeat, complete or fail
 * (one or many at once), and the node's maintenance (promote due SCHEDULED
 * jobs, rescue expired leases and timed-out attempts, release this node's
 * jobs at shutdown).  Shared by the external-worker API (worker_api.c) and the
 * built-in executors (runner.c).
 *
 * Every call is one or two round trips to PostgreSQL on the loop's pool; the
 * state changes themselves are SQL functions of migration 0003
 * (tf_claim, tf_finish, tf_promote_due, ...), each guarded by the job's
 * current state and lease token, so two nodes can never both win a
 * transition and a stale completion changes nothing.  What happens after a
 * failed attempt is decided by the engine (tf_retry_decide); the database
 * applies it.
 *
 * Caps: a claim locks the rows that carry a cap (queues, tenants,
 * tenant_queues) in one fixed order and counts the scope's rows in
 * `running` under that lock, so caps hold across any number of nodes.
 * Among tenants, the engine's planner (engine/claim_plan.h) decides each
 * tenant's share of a claim.
 *
 * Loop thread of `lp` only.  Callbacks run on that loop, exactly once, never
 * before the call returns; a call that returns an error never calls back.
 */
#ifndef TF_ADAPTERS_APP_WORK_H
#define TF_ADAPTERS_APP_WORK_H

#include <stddef.h>

#include <libpq-fe.h>

#include "adapters/app/app.h"

/* Columns of a claimed job (tf_work_claim's result rows). */
enum {
    TF_CLAIM_COL_ID = 0,          /* uuid text */
    TF_CLAIM_COL_TENANT,          /* uuid text */
    TF_CLAIM_COL_QUEUE,
    TF_CLAIM_COL_TYPE,
    TF_CLAIM_COL_PAYLOAD,         /* JSON text */
    TF_CLAIM_COL_ATTEMPT,         /* this attempt's number, 1-based */
    TF_CLAIM_COL_MAX_ATTEMPTS,
    TF_CLAIM_COL_LEASE_TOKEN,     /* uuid text */
    TF_CLAIM_COL_LEASE_EXPIRES,   /* timestamptz text (tf_pgtime_to_rfc3339) */
    TF_CLAIM_COL_TIMEOUT_MS,
    TF_CLAIM_COL_EXECUTOR,        /* JSON text or NULL */
    TF_CLAIM_COL_CORRELATION,     /* text or NULL */
    TF_CLAIM_COL_CREATED_AT,      /* timestamptz text: submit-to-start latency */
    TF_CLAIM_COL_SIGNING_SECRET,  /* hex of the tenant's HMAC key (built-in claims only) */
    TF_CLAIM_NCOLUMNS
};

typedef struct {
    const char *queue;     /* required */
    int builtin;           /* 1: jobs with a built-in executor; 0: jobs for external workers */
    const char *tenant_id; /* only this tenant's jobs; NULL: every tenant, in fair-share order */
    const char *worker_id; /* recorded as locked_by, in the attempt and in events */
    int max_jobs;          /* 1..1000 */
    int lease_ms;          /* 1000..3600000 */
} tf_claim_req_t;

/* `status` 0 with `res` holding 0..max_jobs rows (TF_CLAIM_COL_*), valid
 * during the callback only; or a TF_E* code with `res` NULL. */
typedef void (*tf_claim_cb)(int status, const PGresult *res, void *arg);

int tf_work_claim(tf_app_loop_t *lp, const tf_claim_req_t *req, tf_claim_cb cb, void *arg);

/* One completion (ok = 1) or failure (ok = 0) of a leased attempt. */
typedef struct {
    const char *tenant_id;   /* the caller's tenant; NULL: any (admin, built-in executors) */
    const char *job_id;
    const char *lease_token;
    const char *worker_id;
    int ok;
    const char *result_json; /* ok: the result, JSON text (NULL: null) */
    const char *error_type;  /* !ok: e.g. "http_503", "timeout" (NULL: "error") */
    const char *error_message;
    int retryable;           /* !ok: 0 ends the job FAILED at once */
} tf_ack_t;

typedef struct {
    int status;        /* 0 applied; TF_ESTALE: lease not current (409); TF_ENOTFOUND (404) */
    const char *state; /* applied: the job's new state name ("SUCCEEDED", "SCHEDULED", ...) */
} tf_ack_result_t;

/* `status` 0 with one result per ack (same order), or a TF_E* code for the
 * whole call (database unavailable: nothing was applied). */
typedef void (*tf_ack_cb)(int status, const tf_ack_result_t *results, size_t n, void *arg);

/* Applies `n` (1..1000) acks in one transaction; each is judged on its own.
 * A stale ack is refused and recorded in job_events (reason
 * "stale_lease_refused").  Strings are copied. */
int tf_work_ack(tf_app_loop_t *lp, const tf_ack_t *acks, size_t n, tf_ack_cb cb, void *arg);

/* Extends the lease of a running attempt by `lease_ms` from now.
 * `status` 0 with the new expiry (timestamptz text), TF_ESTALE or
 * TF_ENOTFOUND. */
typedef void (*tf_heartbeat_cb)(int status, const char *lease_expires_at, void *arg);
int tf_work_heartbeat(tf_app_loop_t *lp, const char *tenant_id, const char *job_id,
                      const char *lease_token, int lease_ms, tf_heartbeat_cb cb, void *arg);

/* Maintenance, run periodically by every worker node (SKIP LOCKED lets any
 * number of nodes share it).  `cb` gets the number of jobs handled. */
typedef void (*tf_work_count_cb)(int status, int count, void *arg);
/* Moves up to `limit` due SCHEDULED jobs to PENDING (claimable). */
int tf_work_promote(tf_app_loop_t *lp, int limit, tf_work_count_cb cb, void *arg);
/* Fails attempts whose lease expired (error type "lease_expired") or that
 * ran past timeout_ms ("timeout"), and lets each job's retry policy decide. */
int tf_work_rescue(tf_app_loop_t *lp, int limit, tf_work_count_cb cb, void *arg);
/* Puts this worker's RUNNING jobs back to PENDING without counting the
 * attempt (graceful shutdown). */
int tf_work_release(tf_app_loop_t *lp, const char *worker_id, const char *const *job_ids,
                    const char *const *lease_tokens, size_t n, tf_work_count_cb cb, void *arg);

/* The statements work.c prepares on every connection. */
extern const tf_pg_prepared_t tf_work_prepared[];
extern const size_t tf_work_prepared_count;

#endif
