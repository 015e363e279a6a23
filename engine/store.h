/*
 * store.h - the job store port: every read and write of jobs that the use
 * cases need, with domain types in and out.
 *
 * The Postgres store (adapters/pg/store*.c) implements it; the use-case
 * tests fake it.  No libpq type appears here: rows come back decoded into
 * the structs below, whose strings are borrowed from the store and valid
 * only during the callback (a caller that keeps one copies it).  JSON
 * documents (payloads, results, metadata, policies, executors) travel as
 * JSON text, already valid, so nobody parses what they only pass on.
 *
 * Conventions of every operation:
 * - It is asynchronous: it returns 0 and later calls its callback exactly
 *   once, on the loop that called it, never before it returns; or it
 *   returns a negative TF_E* code (TF_EINVAL, TF_ENOMEM, TF_EAGAIN when the
 *   store is saturated, TF_ESHUTDOWN) and never calls back.
 * - A callback's `status` is 0 or a TF_E* code: TF_EUNAVAIL (database
 *   unavailable), TF_EAGAIN, TF_ETIMEDOUT, TF_ESHUTDOWN (try later: 503),
 *   TF_EIO (anything else: 500).
 * - Every write is one transaction; a write guarded by a state applies only
 *   when the job is in one of the states the use case names (the engine's
 *   state machine decides them), so two nodes never both win a transition.
 * - Times are Unix milliseconds from the clock port; TF_TIME_NONE is "no
 *   time" (SQL NULL).  The store never reads the wall clock for a decision.
 * Loop thread of the store's owner only.
 */
#ifndef TF_ENGINE_STORE_H
#define TF_ENGINE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/events.h"
#include "engine/job.h"
#include "engine/retry.h"
#include "engine/uuid.h"

#define TF_TIME_NONE INT64_MIN
#define TF_ID_LEN (TF_UUID_STR_LEN + 1) /* a UUID as text with its NUL */

/* ---- domain types ---- */

/* A job as stored (the Job object of API.md). */
typedef struct {
    const char *id, *tenant_id, *queue, *type;
    tf_job_state_t state;
    int priority;
    const char *payload; /* JSON text */
    int attempts, max_attempts;
    int64_t run_at_ms, created_at_ms, updated_at_ms, started_at_ms, finished_at_ms;
    const char *last_error_type;                      /* NULL: no error */
    const char *last_error_message;                   /* NULL when none */
    const char *result;                               /* JSON text; NULL: null */
    const char *correlation_id, *parent_id, *rule_id; /* NULL when none */
    const char *depends_on;                           /* JSON array of job ids */
    const char *retry_policy;                         /* JSON text; NULL: the defaults */
    const char *executor;                             /* JSON text; NULL: external workers run it */
    const char *metadata;                             /* JSON object text */
    int64_t timeout_ms;                               /* -1: none stored */
    const char *idempotency_key;
} tf_job_t;

/* A job to create.  Ids and times are made by the submit use case. */
typedef struct {
    char id[TF_ID_LEN];
    char tenant_id[TF_ID_LEN];
    const char *queue, *type;
    int priority;
    const char *payload; /* JSON text */
    int max_attempts;
    const char *retry_policy; /* JSON text; NULL: the defaults (stored as NULL) */
    int64_t timeout_ms;
    const char *executor; /* JSON text; NULL: for external workers */
    const char *metadata; /* JSON object text; NULL: {} */
    const char *idempotency_key;
    const char *request_hash; /* hex SHA-256 of the canonical request; with the key only */
    const char *correlation_id;
    const char *parent_id, *rule_id; /* NULL unless a job's run or a rule made it */
    const char *depends_on;          /* JSON array of job ids ("[]": none) */
    int64_t run_at_ms, created_at_ms;
    const char *actor; /* recorded in the `created` transition */
} tf_new_job_t;

/* What became of one job of a submission. */
typedef enum {
    TF_SUBMIT_CREATED = 0, /* inserted in `state` */
    TF_SUBMIT_MISSING,     /* a parent in depends_on is not the tenant's: `missing` */
    TF_SUBMIT_EXISTS,      /* the idempotency key is taken: `existing_id`, `existing_hash` */
    TF_SUBMIT_IN_PROGRESS, /* the key is taken by a submission not yet committed */
} tf_submit_outcome_t;

typedef struct {
    tf_submit_outcome_t outcome;
    tf_job_state_t state;      /* CREATED */
    const char *missing;       /* MISSING: the first missing parent id */
    const char *existing_id;   /* EXISTS */
    const char *existing_hash; /* EXISTS: hex request hash of that job */
    const char *executor;      /* CREATED: the executor its type gave it (a tenant's Lua
                                  executor), JSON; NULL: as submitted */
} tf_submit_result_t;

/* One attempt (API.md GET /v1/jobs/{id}/attempts). */
typedef enum {
    TF_ATTEMPT_RUNNING = -1, /* in progress: not in job_attempts yet */
    TF_ATTEMPT_SUCCEEDED = 0,
    TF_ATTEMPT_FAILED = 1,       /* retryable */
    TF_ATTEMPT_FAILED_FATAL = 2, /* the policy said stop */
    TF_ATTEMPT_TIMED_OUT = 3,
    TF_ATTEMPT_LEASE_EXPIRED = 4,
    TF_ATTEMPT_CANCELLED = 5,
    TF_ATTEMPT_SNOOZED = 6, /* the executor asked to run again later: not counted */
} tf_attempt_outcome_t;

/* TF_ATTEMPT_SNOOZED as SQL text (adapters/pg/work_sql.h). */
#define TF_SQL_ATTEMPT_SNOOZED "6"


typedef struct {
    int attempt;
    const char *worker;
    int64_t started_at_ms, finished_at_ms; /* finished: TF_TIME_NONE while running */
    int64_t duration_ms;                   /* -1 while running */
    tf_attempt_outcome_t outcome;
    const char *error_type, *error_message; /* NULL when none */
    int executor_version;                   /* the Lua executor version it ran; 0: none */
} tf_attempt_t;

/* One transition of a job (API.md GET /v1/jobs/{id}/events). */
typedef struct {
    int64_t id;
    int from_state; /* -1: none (creation) */
    tf_job_state_t to_state;
    int64_t at_ms;
    const char *reason, *actor; /* NULL when none */
} tf_transition_t;

/* A job listing: one page of ids in [lower, upper], oldest first. */
typedef struct {
    const char *tenant_id;
    int dead_letter; /* list the tenant's dead letter instead of its jobs */
    tf_uuid_t lower, upper;
    tf_job_state_set_t states;                           /* 0: every state */
    const char *queue, *type, *correlation_id, *rule_id; /* NULL: any */
    int rows;                                            /* at most this many */
} tf_job_query_t;

/* A tenant with ready work, for the fair-share planner. */
typedef struct {
    const char *tenant_id;
    int weight;
    int backlog; /* ready jobs, capped at 1000 */
    double vtime;
} tf_candidate_t;

/* A claim of up to sum(quotas) jobs of `queue`, as planned. */
typedef struct {
    const char *queue;
    int builtin;           /* jobs with a built-in executor, or jobs for external workers */
    const char *worker_id; /* recorded as the lease holder */
    int lease_ms;
    int64_t now_ms;
    size_t ntenants;
    const char *const *tenants; /* tenant ids */
    const int *quotas;
    const double *vtimes; /* the planner's new virtual times; NULL: keep them */
    double vclock;        /* the queue's new virtual clock (with vtimes) */
} tf_claim_t;

/* A job handed to a worker. */
typedef struct {
    const char *id, *tenant_id, *queue, *type;
    const char *payload; /* JSON text */
    int attempt, max_attempts;
    const char *lease_token;
    int64_t lease_expires_at_ms;
    int64_t timeout_ms;        /* -1: none stored (the default applies) */
    const char *executor;      /* JSON text; NULL for external workers */
    const char *executor_kind; /* executor's "kind"; NULL for external workers */
    const char *correlation_id;
    int64_t created_at_ms;
    const char *signing_secret_hex; /* the tenant's signing key (built-in claims only) */
} tf_claimed_job_t;

/* What the retry decision of a failed attempt needs from its job. */
typedef struct {
    int found;                /* 0: no such job for the caller */
    int attempts;             /* the attempt that failed */
    tf_retry_policy_t policy; /* decoded (defaults when none stored); owned by the store */
} tf_failed_job_t;

/* One attempt to end, decided by the finish use case. */
typedef struct {
    const char *tenant_id; /* the caller's tenant; NULL: any (admin, built-in executors) */
    const char *job_id, *lease_token;
    const char *worker; /* recorded in the attempt; NULL: the lease holder */
    const char *actor;  /* of the transition; NULL: "worker:<lease holder>" */
    tf_job_state_t to;  /* SUCCEEDED, SCHEDULED (a retry or a snooze), FAILED or DEAD */
    const char *result; /* SUCCEEDED: JSON text (NULL: null) */
    const char *error_type, *error_message;
    int64_t run_at_ms; /* SCHEDULED: when the retry is due */
    tf_attempt_outcome_t attempt_outcome; /* SNOOZED: the attempt is given back */
    int executor_version;                 /* recorded in the attempt; 0: none */
    int64_t ended_at_ms; /* the attempt's end (finished_at); 0: the write's `now_ms` */
    const char *reason; /* of the transition */
    /* The dependency release that the job's end brings about
     * (tf_job_dependants_action(to)), applied in the same transaction. */
    tf_dependants_action_t dependants;
    /* Jobs the attempt created (a Lua run's tf.enqueue), inserted in the
     * same transaction, and only when the finish applies. */
    const tf_new_job_t *const *children;
    size_t nchildren;
} tf_finish_t;

/* What became of one tf_finish_t. */
typedef struct {
    int applied;      /* the job was RUNNING under that lease and moved to `to` */
    int exists;       /* not applied: 1 when the job exists (stale lease), 0 when not */
    size_t released;  /* dependants the job's end made claimable or scheduled */
    size_t cancelled; /* dependants it cancelled */
} tf_finished_t;

/* An attempt whose lease expired or that ran past its timeout. */
typedef struct {
    const char *tenant_id, *job_id, *lease_token, *worker;
    int timed_out; /* 1: past timeout_ms; 0: lease expired */
    tf_failed_job_t job;
} tf_expired_t;

/* The outcome of cancel and retry on one job. */
typedef struct {
    int found;             /* the tenant has the job */
    tf_job_state_t before; /* its state when the action looked */
    const tf_job_t *job;   /* the job after the action; NULL when it did not apply */
} tf_action_result_t;

/* Gauges of one queue. */
typedef struct {
    const char *queue;
    int64_t ready, running;
    double oldest_ready_age_s; /* 0 when nothing is ready */
} tf_queue_gauge_t;

/* Gauges of the hot tables. */
typedef struct {
    const char *table;
    int64_t dead_tuples;
} tf_table_gauge_t;

/* ---- callbacks ---- */

typedef void (*tf_store_status_cb)(void *arg, int status);
typedef void (*tf_store_count_cb)(void *arg, int status, int64_t count);
/* A submission.  All-or-nothing batches that were refused have status 0,
 * `failed` the index of the first refused job (its result says why) and
 * nothing written; otherwise `failed` is -1. */
typedef void (*tf_store_submit_cb)(void *arg, int status, const tf_submit_result_t *results,
                                   size_t n, int failed);
/* One job (NULL: not found); `request_hash` is its hex request hash or NULL. */
typedef void (*tf_store_job_cb)(void *arg, int status, const tf_job_t *job,
                                const char *request_hash);
typedef void (*tf_store_jobs_cb)(void *arg, int status, const tf_job_t *jobs, size_t n);
/* `found` 0: the tenant has no such job. */
typedef void (*tf_store_attempts_cb)(void *arg, int status, int found, const tf_attempt_t *attempts,
                                     size_t n);
typedef void (*tf_store_transitions_cb)(void *arg, int status, int found,
                                        const tf_transition_t *transitions, size_t n);
typedef void (*tf_store_action_cb)(void *arg, int status, const tf_action_result_t *result);
typedef void (*tf_store_candidates_cb)(void *arg, int status, const tf_candidate_t *tenants,
                                       size_t n, double vclock);
typedef void (*tf_store_claimed_cb)(void *arg, int status, const tf_claimed_job_t *jobs, size_t n);
typedef void (*tf_store_failed_cb)(void *arg, int status, const tf_failed_job_t *jobs, size_t n);
typedef void (*tf_store_finished_cb)(void *arg, int status, const tf_finished_t *results, size_t n);
/* `expires_at_ms` when extended; status TF_ESTALE or TF_ENOTFOUND otherwise. */
typedef void (*tf_store_heartbeat_cb)(void *arg, int status, int64_t expires_at_ms);
typedef void (*tf_store_expired_cb)(void *arg, int status, const tf_expired_t *attempts, size_t n);
/* `due_in_ms` until the earliest SCHEDULED job is due; `any` 0 when none. */
typedef void (*tf_store_next_due_cb)(void *arg, int status, int any, int64_t due_in_ms);
typedef void (*tf_store_names_cb)(void *arg, int status, const char *const *names, size_t n);
typedef void (*tf_store_gauges_cb)(void *arg, int status, const tf_queue_gauge_t *queues,
                                   size_t nqueues, const tf_table_gauge_t *tables, size_t ntables,
                                   int64_t oldest_xmin_age);

/* ---- the port ---- */

typedef struct {
    void *ctx;

    /* Inserts `n` jobs (1..1000) in one statement and one transaction, each
     * with its ready or scheduled row and its `created` transition, and
     * wakes the workers of the queues that got claimable jobs.  A job
     * whose idempotency key exists, or whose parent is missing, is not
     * inserted (see its result); with `all_or_nothing` the first such job
     * refuses the whole submission.  A job whose parent already ended
     * FAILED, DEAD or CANCELLED is created CANCELLED. */
    int (*submit)(void *ctx, const tf_new_job_t *const *jobs, size_t n, int all_or_nothing,
                  tf_store_submit_cb cb, void *arg);
    /* One job of the tenant by id, or by idempotency key (with its request
     * hash). */
    int (*get)(void *ctx, const char *tenant_id, const char *job_id, tf_store_job_cb cb, void *arg);
    int (*get_by_key)(void *ctx, const char *tenant_id, const char *key, tf_store_job_cb cb,
                      void *arg);
    /* The tenant's jobs among `ids` (any order; missing ones left out). */
    int (*get_many)(void *ctx, const char *tenant_id, const char *const *ids, size_t n,
                    tf_store_jobs_cb cb, void *arg);
    int (*list)(void *ctx, const tf_job_query_t *query, tf_store_jobs_cb cb, void *arg);
    int (*attempts)(void *ctx, const char *tenant_id, const char *job_id, tf_store_attempts_cb cb,
                    void *arg);
    int (*transitions)(void *ctx, const char *tenant_id, const char *job_id,
                       tf_store_transitions_cb cb, void *arg);

    /* Cancels the job when its state is in `from` (to `to`), with every
     * unfinished dependant (transition reason "dependency_cancelled:<id>"):
     * ready, scheduled and running rows go, a running attempt ends
     * "cancelled", each cancelled job gets its job.cancelled event, and a
     * worker running it is told.  Locks the job first, so `before` is its
     * state at the time. */
    int (*cancel)(void *ctx, const char *tenant_id, const char *job_id, tf_job_state_set_t from,
                  tf_job_state_t to, const char *actor, int64_t now_ms, tf_store_action_cb cb,
                  void *arg);
    /* A manual retry of one job from a state in `from`: PENDING (`to`) with
     * attempts 0, result and times cleared, claimable unless it waits for
     * parents, out of the dead letter. */
    int (*retry)(void *ctx, const char *tenant_id, const char *job_id, tf_job_state_set_t from,
                 tf_job_state_t to, const char *actor, int64_t now_ms, tf_store_action_cb cb,
                 void *arg);
    /* The same for every job in `ids` (queue NULL), or for the `limit`
     * oldest dead jobs of `queue`; dead-letter rows another requeue holds
     * are skipped.  The callback gets the requeued jobs. */
    int (*requeue)(void *ctx, const char *tenant_id, const char *const *ids, size_t nids,
                   const char *queue, int limit, tf_job_state_set_t from, tf_job_state_t to,
                   const char *actor, int64_t now_ms, tf_store_jobs_cb cb, void *arg);

    /* Tenants with ready work in (queue, builtin), and the queue's
     * virtual clock. */
    int (*candidates)(void *ctx, const char *queue, int builtin, tf_store_candidates_cb cb,
                      void *arg);
    /* Claims as planned: for each tenant up to its quota of ready jobs in
     * priority order, within the caps (queue, tenant, tenant in queue,
     * which hold across nodes), RUNNING under a fresh lease with a
     * `claimed` transition.  A paused queue gives nothing. */
    int (*claim)(void *ctx, const tf_claim_t *claim, tf_store_claimed_cb cb, void *arg);
    /* For the retry decision: each job's failed attempt number and policy.
     * jobs[i] answers ids[i] (tenants[i] NULL: any tenant). */
    int (*failed_jobs)(void *ctx, const char *const *tenants, const char *const *ids, size_t n,
                       tf_store_failed_cb cb, void *arg);
    /* Ends `n` attempts (1..1000) in one transaction, each applied only
     * while its job is RUNNING under its lease token; a refused one is
     * recorded as a "stale_lease_refused" transition.  An applied one
     * writes its attempt and transition, moves the narrow rows, and records
     * the events of `events` that belong to it (the outbox), and applies
     * its `dependants` action when the job has dependants. */
    int (*finish)(void *ctx, const tf_finish_t *items, size_t n, const tf_event_buf_t *events,
                  int64_t now_ms, tf_store_finished_cb cb, void *arg);
    /* Extends a running attempt's lease to now + lease_ms. */
    int (*heartbeat)(void *ctx, const char *tenant_id, const char *job_id, const char *lease_token,
                     int lease_ms, int64_t now_ms, tf_store_heartbeat_cb cb, void *arg);
    /* Moves up to `limit` SCHEDULED jobs due at `now_ms` to PENDING. */
    int (*promote)(void *ctx, int limit, int64_t now_ms, tf_store_count_cb cb, void *arg);
    /* Up to `limit` RUNNING attempts whose lease expired or that ran past
     * their timeout at `now_ms`, with what their retry decision needs. */
    int (*expired)(void *ctx, int limit, int64_t now_ms, tf_store_expired_cb cb, void *arg);
    /* Hands this worker's attempts back to PENDING without counting them. */
    int (*release)(void *ctx, const char *worker_id, const char *const *job_ids,
                   const char *const *lease_tokens, size_t n, int64_t now_ms, tf_store_count_cb cb,
                   void *arg);
    int (*next_due)(void *ctx, int64_t now_ms, tf_store_next_due_cb cb, void *arg);
    /* Queues that hold ready jobs with a built-in executor (not paused). */
    int (*builtin_queues)(void *ctx, tf_store_names_cb cb, void *arg);

    /* Status 0 when the database answers. */
    int (*ping)(void *ctx, tf_store_status_cb cb, void *arg);
    int (*gauges)(void *ctx, int64_t now_ms, tf_store_gauges_cb cb, void *arg);
} tf_job_store_t;

#endif
