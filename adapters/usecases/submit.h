/*
 * submit.h - the submit use case: new jobs into the store, one at a time
 * with group commit, or as an all-or-nothing batch.
 *
 * Group commit.  Single submissions are not written one by one: each
 * loop's submitter queues them and writes everything queued with ONE store
 * call (one statement, one transaction) whenever one of its in-flight slots
 * is free (as many slots as the loop has database connections).  At low
 * load a submission goes out at once, alone; under load, the submissions
 * that arrive while a write is in flight share the next one.  Every
 * submission is answered only after the write that holds it committed.
 *
 * Idempotency: a key seen again with the same request (same request hash)
 * answers with the first job; with another request it is a conflict.  Two
 * submissions of one key in the same group are folded (the later ones wait
 * for the first and then read it); two in different groups or nodes meet at
 * the store's unique key and the loser reads the winner (a second round
 * trip, only then).
 *
 * Loop thread of the submitter's use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_SUBMIT_H
#define TF_ADAPTERS_USECASES_SUBMIT_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/usecases/usecases.h"

#define TF_SUBMIT_GROUP_MAX 1000 /* jobs per group write */
#define TF_SUBMIT_BATCH_MAX 1000 /* jobs per batch */

/* Fills `job`'s id (a UUIDv7 of now), created_at (the id's own
 * millisecond: the generator may run ahead of the clock within a burst, and
 * id order must be creation order) and run_at: `run_at_ms` when given (not
 * TF_TIME_NONE), else created_at + `delay_ms` when that is >= 0, else
 * created_at. */
void tf_uc_job_stamp(tf_uc_t *uc, tf_new_job_t *job, int64_t run_at_ms, int64_t delay_ms);

typedef enum {
    TF_UC_SUBMIT_CREATED,        /* created in `state` */
    TF_UC_SUBMIT_EXISTING,       /* the key's job, submitted with the same request: `existing` */
    TF_UC_SUBMIT_KEY_CONFLICT,   /* the key is taken by a job submitted with another request */
    TF_UC_SUBMIT_MISSING_PARENT, /* `missing` in depends_on is not the tenant's job */
    TF_UC_SUBMIT_KEY_BUSY,       /* the key's job is being written by a request that has not
                                    committed: try again */
    TF_UC_SUBMIT_KEY_REPEATED,   /* batch only: a key repeats an earlier job of the batch
                                    with another request */
} tf_uc_submit_outcome_t;

typedef struct {
    tf_uc_submit_outcome_t outcome;
    tf_job_state_t state;     /* CREATED */
    const tf_job_t *existing; /* EXISTING */
    const char *missing;      /* MISSING_PARENT */
    const char *executor;     /* CREATED: the executor its type gave it; NULL: as submitted */
} tf_uc_submitted_t;

/* `r` is valid during the call only; status != 0 (nothing written or
 * unknown, e.g. TF_EUNAVAIL) leaves it NULL. */
typedef void (*tf_uc_submit_cb)(void *arg, int status, const tf_uc_submitted_t *r);

typedef struct tf_submitter tf_submitter_t;

/* A loop's group-commit submitter writing through `uc` with at most
 * `max_in_flight` writes at once.  `on_group` (may be NULL) hears the size
 * of every group written (for the group-size histogram).  Caller owns the
 * result; release with tf_submitter_close().  Returns 0 or TF_ENOMEM. */
int tf_submitter_create(tf_uc_t *uc, int max_in_flight, void (*on_group)(void *ctx, size_t jobs),
                        void *ctx, tf_submitter_t **out);

/* Queues a stamped job for the next group write.  `job` and its strings
 * are borrowed until the callback.  Returns 0 (the callback follows, maybe
 * before this returns when the write fails at once) or TF_ESHUTDOWN. */
int tf_submitter_submit(tf_submitter_t *s, const tf_new_job_t *job, tf_uc_submit_cb cb, void *arg);

/* Answers every queued submission with TF_ESHUTDOWN, waits for the writes
 * in flight, then calls `closed_cb` (may be NULL) and frees `s`. */
void tf_submitter_close(tf_submitter_t *s, void (*closed_cb)(void *arg), void *arg);

/* True when jobs[i] repeats the idempotency key of one of jobs[0..i-1]
 * with another request hash (the batch must then be refused). */
int tf_uc_batch_repeats_key(const tf_new_job_t *const *jobs, size_t i);

/* The outcome of a batch: either `failed` is the index of the job that
 * refused it (nothing was written; `problem` and `missing` say why), or
 * `failed` is -1 and every job i was created (`existing[i]` NULL, state
 * `states[i]`) or is an idempotent replay (`existing[i]` the earlier job). */
typedef struct {
    long failed;
    tf_uc_submit_outcome_t problem;
    const char *missing;
    size_t n;
    const tf_job_state_t *states;
    const tf_job_t *const *existing;
    const char *const *executors; /* per input: the executor its type gave it; NULL: as
                                     submitted */
} tf_uc_batch_t;

typedef void (*tf_uc_batch_cb)(void *arg, int status, const tf_uc_batch_t *r);

/* Writes `n` (1..TF_SUBMIT_BATCH_MAX) stamped jobs of one tenant all or
 * nothing.  Jobs that repeat a key with the same request are one job.  The
 * jobs are borrowed until the callback. */
int tf_uc_submit_batch(tf_uc_t *uc, const tf_new_job_t *const *jobs, size_t n, tf_uc_batch_cb cb,
                       void *arg);

#endif
