/*
 * actions.h - cancel, manual retry and requeueing the dead letter.
 *
 * The engine's state machine decides: the states an action may start from
 * come from tf_job_event_sources() and the state it leads to from
 * tf_job_transition(); the store applies the action only to a job in one
 * of those states, so a refused action changes nothing.
 *
 * Cancel takes a job and, recursively, its unfinished dependants to
 * CANCELLED (a RUNNING job's lease is revoked and its attempt ends
 * "cancelled").  Retry (from FAILED, DEAD, CANCELLED) and requeue (DEAD
 * only) make the job PENDING again with a new series of attempts.
 * Loop thread of the use-case context only.
 */
#ifndef TF_ADAPTERS_USECASES_ACTIONS_H
#define TF_ADAPTERS_USECASES_ACTIONS_H

#include <stddef.h>

#include "adapters/usecases/usecases.h"

typedef enum {
    TF_UC_ACTION_DONE = 0,  /* applied: `job` is the job now */
    TF_UC_ACTION_NOT_FOUND, /* the tenant has no such job */
    TF_UC_ACTION_REFUSED,   /* the job is in `state`, from which the action is not allowed */
} tf_uc_action_outcome_t;

typedef struct {
    tf_uc_action_outcome_t outcome;
    const tf_job_t *job;  /* DONE */
    tf_job_state_t state; /* REFUSED: the state the job is in */
} tf_uc_action_t;

typedef void (*tf_uc_action_cb)(void *arg, int status, const tf_uc_action_t *r);

/* `actor` ("admin", "key:<id>") is recorded in the transitions. */
int tf_uc_cancel(tf_uc_t *uc, const char *tenant_id, const char *job_id, const char *actor,
                 tf_uc_action_cb cb, void *arg);
int tf_uc_retry(tf_uc_t *uc, const char *tenant_id, const char *job_id, const char *actor,
                tf_uc_action_cb cb, void *arg);

/* Requeues the DEAD jobs among `ids` (queue NULL), or up to `limit` oldest
 * dead jobs of `queue`; the callback gets the requeued jobs. */
int tf_uc_requeue(tf_uc_t *uc, const char *tenant_id, const char *const *ids, size_t nids,
                  const char *queue, int limit, const char *actor, tf_store_jobs_cb cb, void *arg);

/* The states `ev` may start from, of those in `only`, and the state it
 * leads to (TF_JOB_STATE_COUNT when none). */
tf_job_state_set_t tf_uc_action_sources(tf_job_event_t ev, tf_job_state_set_t only,
                                        tf_job_state_t *to);

#endif
