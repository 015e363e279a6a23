/*
 * job.h - the job lifecycle state machine.
 *
 * Every change of a job's state in TaskFlow is an event applied to its
 * current state through tf_job_transition(); the table behind it (job.c) is
 * the only place that says which transitions exist:
 *
 *   claim           PENDING                   -> RUNNING
 *   succeed         RUNNING                   -> SUCCEEDED
 *   fail_retry      RUNNING                   -> SCHEDULED  (retries left)
 *   fail_final      RUNNING                   -> FAILED     (policy says stop)
 *   fail_exhausted  RUNNING                   -> DEAD       (attempts used up)
 *   due             SCHEDULED                 -> PENDING    (run_at reached)
 *   cancel          PENDING|SCHEDULED|RUNNING -> CANCELLED
 *   retry           FAILED|DEAD|CANCELLED     -> PENDING    (manual, new series)
 *   release         RUNNING                   -> PENDING    (no attempt counted)
 *
 * There is deliberately no "lease_expired" event: an expired lease is a failed
 * attempt, and the retry policy (engine/retry.h, tf_retry_outcome_event())
 * picks fail_retry, fail_final or fail_exhausted for it.  A dependency that
 * ends FAILED, DEAD or CANCELLED cancels its dependants with `cancel`.
 * `release` hands a running job back without counting a failed attempt
 * (graceful shutdown, lease rescue of a job that never started).
 *
 * Adapters apply a transition with one guarded statement
 * (`UPDATE ... WHERE id = $1 AND state = ANY($2)`); tf_job_event_sources()
 * gives the states for that guard.
 * Pure constant data; any thread.
 */
#ifndef TF_ENGINE_JOB_H
#define TF_ENGINE_JOB_H

#include <stdbool.h>
#include <stdint.h>

/* The state numbers, one source for C and SQL: statements put them in
 * their text with TF_SQL_STATE(RUNNING) ("2"), and the job_states table of
 * migration 0001 and the SQL functions of the migrations are checked
 * against them by tests/integration/test_state_sql.c. */
#define TF_JOB_STATE_PENDING_N 0
#define TF_JOB_STATE_SCHEDULED_N 1
#define TF_JOB_STATE_RUNNING_N 2
#define TF_JOB_STATE_SUCCEEDED_N 3
#define TF_JOB_STATE_FAILED_N 4
#define TF_JOB_STATE_DEAD_N 5
#define TF_JOB_STATE_CANCELLED_N 6

#define TF__STR(x) #x
#define TF__XSTR(x) TF__STR(x)
/* The number of state NAME as SQL text: TF_SQL_STATE(DEAD) is "5". */
#define TF_SQL_STATE(name) TF__XSTR(TF_JOB_STATE_##name##_N)

/* States, in the order of the API's list.  Values are stable. */
typedef enum {
    TF_JOB_PENDING = TF_JOB_STATE_PENDING_N,
    TF_JOB_SCHEDULED = TF_JOB_STATE_SCHEDULED_N,
    TF_JOB_RUNNING = TF_JOB_STATE_RUNNING_N,
    TF_JOB_SUCCEEDED = TF_JOB_STATE_SUCCEEDED_N,
    TF_JOB_FAILED = TF_JOB_STATE_FAILED_N,
    TF_JOB_DEAD = TF_JOB_STATE_DEAD_N,
    TF_JOB_CANCELLED = TF_JOB_STATE_CANCELLED_N,
    TF_JOB_STATE_COUNT
} tf_job_state_t;

typedef enum {
    TF_JOB_EV_CLAIM = 0,
    TF_JOB_EV_SUCCEED,
    TF_JOB_EV_FAIL_RETRY,
    TF_JOB_EV_FAIL_FINAL,
    TF_JOB_EV_FAIL_EXHAUSTED,
    TF_JOB_EV_DUE,
    TF_JOB_EV_CANCEL,
    TF_JOB_EV_RETRY,
    TF_JOB_EV_RELEASE,
    TF_JOB_EVENT_COUNT
} tf_job_event_t;

/* A set of states: bit (1u << state) is set for each member. */
typedef uint32_t tf_job_state_set_t;

#define TF_JOB_STATE_BIT(state) ((tf_job_state_set_t)1u << (unsigned)(state))

/* Applies `ev` to a job in state `from`.  On success writes the new state to
 * `*to` and returns 0.  Returns TF_ESTATE when the event is not allowed in
 * `from` (API: 409), TF_EINVAL when `from` or `ev` is not a valid value or
 * `to` is NULL; `*to` is untouched on failure. */
int tf_job_transition(tf_job_state_t from, tf_job_event_t ev, tf_job_state_t *to);

/* The set of states from which `ev` is allowed; 0 for an invalid event.
 * Adapters turn it into the `state = ANY($2)` guard of their UPDATE. */
tf_job_state_set_t tf_job_event_sources(tf_job_event_t ev);

/* The API name of `state` ("PENDING", ...), a static string; NULL when
 * `state` is not a valid state. */
const char *tf_job_state_name(tf_job_state_t state);

/* Parses an exact, upper-case API state name (NUL-terminated).  Returns 0,
 * or TF_EINVAL for NULL or anything else ("pending", "PENDING ", ""). */
int tf_job_state_parse(const char *name, tf_job_state_t *out);

/* The lower-case name of `ev` ("claim", "fail_retry", ...), a static string
 * used in job_events rows and logs; NULL when `ev` is not a valid event. */
const char *tf_job_event_name(tf_job_event_t ev);

/* What a parent reaching `state` means for the jobs that depend on it
 * (API.md): SUCCEEDED releases them (the last parent to succeed makes a
 * dependant claimable, or SCHEDULED when its run_at is ahead); FAILED, DEAD
 * and CANCELLED cancel every unfinished dependant, transitively, with the
 * reason "dependency_<state>:<parent id>"; any other state does nothing. */
typedef enum {
    TF_DEPENDANTS_KEEP = 0,
    TF_DEPENDANTS_RELEASE,
    TF_DEPENDANTS_CANCEL,
} tf_dependants_action_t;

tf_dependants_action_t tf_job_dependants_action(tf_job_state_t parent_state);

/* True for SUCCEEDED, FAILED, DEAD and CANCELLED: no automatic event moves
 * the job on (only a manual retry does), and cancel answers 409.  False for
 * the other states and for invalid values. */
bool tf_job_state_is_terminal(tf_job_state_t state);

#endif
