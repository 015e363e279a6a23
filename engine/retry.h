/*
 * retry.h - retry policies: what happens after a job's attempt fails.
 *
 * A tf_retry_policy_t is the plain-value form of the API's `retry_policy`
 * object.  tf_retry_decide() turns (policy, failed attempt, error) into one
 * of three outcomes, each of which maps to one job event (job.h):
 *
 *   RETRY   -> fail_retry      the job is SCHEDULED again at run_at_ms
 *   FAILED  -> fail_final      the error is non-retryable; the job is FAILED
 *   DEAD    -> fail_exhausted  attempts are used up; the job is DEAD
 *
 * Defaults (tf_retry_policy_init_default(), and whatever a `retry_policy`
 * object leaves out):
 *   max_attempts 3, strategy exponential, base_delay_ms 1000,
 *   max_delay_ms 3600000 (one hour), jitter none,
 *   no non-retryable errors, no cooldowns.
 *
 * Delay after attempt n (1-based, the attempt that just failed):
 *   fixed       base_delay_ms
 *   linear      base_delay_ms * n
 *   exponential base_delay_ms * 2^(n-1)
 * capped at max_delay_ms (overflow cannot happen at any n), then jittered:
 *   none        d
 *   full        uniform in [0, d]
 *   equal       d - d/2 + uniform in [0, d/2]   (that is, within [d/2, d])
 * A cooldown for the failing error type replaces the delay when it is larger.
 * Cooldowns are not capped by max_delay_ms: they exist to wait out a known
 * condition (a rate limit, a maintenance window) for as long as it lasts.
 *
 * Pure; a policy is a plain value owned by whoever holds it; any thread.
 */
#ifndef TF_ENGINE_RETRY_H
#define TF_ENGINE_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/job.h"
#include "engine/rng.h"

#define TF_RETRY_DEFAULT_MAX_ATTEMPTS 3
#define TF_RETRY_DEFAULT_BASE_DELAY_MS INT64_C(1000)
#define TF_RETRY_DEFAULT_MAX_DELAY_MS INT64_C(3600000)

/* Validation limits. */
#define TF_RETRY_MAX_ATTEMPTS_LIMIT 1000
#define TF_RETRY_DELAY_LIMIT_MS INT64_C(2592000000) /* 30 days */
#define TF_RETRY_ERROR_TYPE_MAX_LEN 128             /* bytes */
#define TF_RETRY_LIST_MAX 64 /* entries in non_retryable_errors and in cooldowns */

typedef enum {
    TF_RETRY_STRATEGY_FIXED = 0,
    TF_RETRY_STRATEGY_LINEAR,
    TF_RETRY_STRATEGY_EXPONENTIAL,
} tf_retry_strategy_t;

typedef enum {
    TF_RETRY_JITTER_NONE = 0,
    TF_RETRY_JITTER_FULL,
    TF_RETRY_JITTER_EQUAL,
} tf_retry_jitter_t;

/* Wait at least `ms` before retrying after an error of type `error_type`. */
typedef struct {
    char *error_type; /* owned by the policy */
    int64_t ms;
} tf_retry_cooldown_t;

/* A plain value.  The policy owns its arrays and every string in them;
 * release them with tf_retry_policy_free(). */
typedef struct {
    int max_attempts;
    tf_retry_strategy_t strategy;
    int64_t base_delay_ms;
    int64_t max_delay_ms;
    tf_retry_jitter_t jitter;
    char **non_retryable_errors; /* error types that fail the job for good */
    size_t non_retryable_count;
    tf_retry_cooldown_t *cooldowns; /* the API's `cooldown` object */
    size_t cooldown_count;
} tf_retry_policy_t;

typedef enum {
    TF_RETRY_OUTCOME_RETRY = 0,
    TF_RETRY_OUTCOME_FAILED,
    TF_RETRY_OUTCOME_DEAD,
} tf_retry_outcome_t;

typedef struct {
    tf_retry_outcome_t outcome;
    int64_t delay_ms;  /* RETRY only: the wait chosen, cooldown included; else 0 */
    int64_t run_at_ms; /* RETRY only: now_ms + delay_ms (saturating); else now_ms */
} tf_retry_decision_t;

/* Sets `policy` to the defaults above, with empty lists.  Allocates nothing;
 * whatever `policy` held before is overwritten, not freed. */
void tf_retry_policy_init_default(tf_retry_policy_t *policy);

/* True when `policy` equals the defaults above (lists empty).  Jobs with the
 * default policy store none; readers fill the defaults back in. */
bool tf_retry_policy_is_default(const tf_retry_policy_t *policy);

/* Frees the lists `policy` owns and leaves it empty (zero counts, NULL
 * arrays) with its scalar fields unchanged, so a second call is harmless.
 * NULL is allowed. */
void tf_retry_policy_free(tf_retry_policy_t *policy);

/* Deep-copies `src` into `dst`.  Returns 0, or TF_ENOMEM with `dst` left
 * empty (safe to free).  `dst` must not own lists (they would leak); on
 * success the caller owns dst's copies; free with tf_retry_policy_free(). */
int tf_retry_policy_copy(tf_retry_policy_t *dst, const tf_retry_policy_t *src);

/* Appends a copy of `error_type` to non_retryable_errors.  Returns 0,
 * TF_EINVAL for NULL arguments, or TF_ENOMEM (policy unchanged).  The policy
 * owns the copy; the caller keeps `error_type`.  Limits are checked by
 * tf_retry_policy_validate(), not here. */
int tf_retry_policy_add_non_retryable(tf_retry_policy_t *policy, const char *error_type);

/* Appends a cooldown of `ms` for `error_type`.  Same returns and ownership as
 * tf_retry_policy_add_non_retryable(). */
int tf_retry_policy_add_cooldown(tf_retry_policy_t *policy, const char *error_type, int64_t ms);

/* Checks every field against the limits above: max_attempts 1..1000,
 * max_delay_ms 0..30 days, base_delay_ms 0..max_delay_ms, known strategy and
 * jitter, at most 64 non-retryable errors and 64 cooldowns, error types of
 * 1..128 bytes, no error type twice in cooldowns, cooldown ms 0..30 days.
 * Returns 0, or TF_EINVAL for the first bad field: then `*field` (if `field`
 * is not NULL) points to a static string with the field's API name
 * ("max_attempts", "non_retryable_errors", "cooldown", ...), and `err` (if not
 * NULL and errlen > 0) holds a NUL-terminated sentence that starts with that
 * name, e.g. "max_attempts must be between 1 and 1000". */
int tf_retry_policy_validate(const tf_retry_policy_t *policy, char *err, size_t errlen,
                             const char **field);

/* The delay after failed attempt `attempt` (values below 1 count as 1), with
 * strategy, cap and jitter applied but no cooldown.  Jitter draws from `rng`;
 * with a NULL `rng` no jitter is applied.  `policy` must be valid. */
int64_t tf_retry_delay_ms(const tf_retry_policy_t *policy, int attempt, tf_rng_t *rng);

/* Decides what follows the failure of attempt `attempt_that_failed` (1-based)
 * with error type `error_type` (may be NULL: matches no list) and the
 * worker's `retryable` flag.  Precedence: a non-retryable error (listed type
 * or retryable false) gives FAILED even on the last attempt; otherwise
 * attempt >= max_attempts gives DEAD; otherwise RETRY at
 * now_ms + max(tf_retry_delay_ms(), cooldown of error_type).
 * Returns 0, or TF_EINVAL when a pointer is NULL (`rng` may be NULL for a
 * policy without jitter) or attempt_that_failed < 1.  `policy` must be valid
 * (tf_retry_policy_validate()). */
int tf_retry_decide(const tf_retry_policy_t *policy, int attempt_that_failed,
                    const char *error_type, bool retryable, int64_t now_ms, tf_rng_t *rng,
                    tf_retry_decision_t *out);

/* The job event for `outcome`: fail_retry, fail_final or fail_exhausted. */
tf_job_event_t tf_retry_outcome_event(tf_retry_outcome_t outcome);

/* API names: "fixed", "linear", "exponential" and "none", "full", "equal".
 * The name functions return static strings, NULL for invalid values; the
 * parse functions take exact lower-case names and return 0 or TF_EINVAL. */
const char *tf_retry_strategy_name(tf_retry_strategy_t strategy);
int tf_retry_strategy_parse(const char *name, tf_retry_strategy_t *out);
const char *tf_retry_jitter_name(tf_retry_jitter_t jitter);
int tf_retry_jitter_parse(const char *name, tf_retry_jitter_t *out);

#endif
