/*
 * retry.c - retry policies: defaults, validation, delays and the decision
 * after a failed attempt (see retry.h).
 *
 * Role: the domain rule behind fail, lease expiry and dead-lettering; the
 * adapters only apply the outcome it returns.
 * Invariants: delay arithmetic never overflows (every product is checked
 * against the cap before it is formed); randomness comes only from the
 * caller's tf_rng_t, so a fixed seed gives fixed decisions.
 * Pure; a policy is a plain value; any thread.
 */
#include "engine/retry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

static const char *const retry_strategy_names[] = {
    [TF_RETRY_STRATEGY_FIXED] = "fixed",
    [TF_RETRY_STRATEGY_LINEAR] = "linear",
    [TF_RETRY_STRATEGY_EXPONENTIAL] = "exponential",
};

static const char *const retry_jitter_names[] = {
    [TF_RETRY_JITTER_NONE] = "none",
    [TF_RETRY_JITTER_FULL] = "full",
    [TF_RETRY_JITTER_EQUAL] = "equal",
};

#define RETRY_STRATEGY_COUNT (sizeof retry_strategy_names / sizeof retry_strategy_names[0])
#define RETRY_JITTER_COUNT (sizeof retry_jitter_names / sizeof retry_jitter_names[0])

/* ---- names ---- */

/* Index of `name` in `names`, or -1. */
static int retry_name_index(const char *const *names, size_t count, const char *name) {
    if (name == NULL) {
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        if (strcmp(names[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *tf_retry_strategy_name(tf_retry_strategy_t strategy) {
    return (unsigned)strategy < RETRY_STRATEGY_COUNT ? retry_strategy_names[strategy] : NULL;
}

int tf_retry_strategy_parse(const char *name, tf_retry_strategy_t *out) {
    const int index = retry_name_index(retry_strategy_names, RETRY_STRATEGY_COUNT, name);
    if (index < 0 || out == NULL) {
        return TF_EINVAL;
    }
    *out = (tf_retry_strategy_t)index;
    return 0;
}

const char *tf_retry_jitter_name(tf_retry_jitter_t jitter) {
    return (unsigned)jitter < RETRY_JITTER_COUNT ? retry_jitter_names[jitter] : NULL;
}

int tf_retry_jitter_parse(const char *name, tf_retry_jitter_t *out) {
    const int index = retry_name_index(retry_jitter_names, RETRY_JITTER_COUNT, name);
    if (index < 0 || out == NULL) {
        return TF_EINVAL;
    }
    *out = (tf_retry_jitter_t)index;
    return 0;
}

/* ---- ownership ---- */

void tf_retry_policy_init_default(tf_retry_policy_t *policy) {
    *policy = (tf_retry_policy_t){
        .max_attempts = TF_RETRY_DEFAULT_MAX_ATTEMPTS,
        .strategy = TF_RETRY_STRATEGY_EXPONENTIAL,
        .base_delay_ms = TF_RETRY_DEFAULT_BASE_DELAY_MS,
        .max_delay_ms = TF_RETRY_DEFAULT_MAX_DELAY_MS,
        .jitter = TF_RETRY_JITTER_NONE,
    };
}

void tf_retry_policy_free(tf_retry_policy_t *policy) {
    if (policy == NULL) {
        return;
    }
    for (size_t i = 0; i < policy->non_retryable_count; i++) {
        free(policy->non_retryable_errors[i]);
    }
    free(policy->non_retryable_errors);
    for (size_t i = 0; i < policy->cooldown_count; i++) {
        free(policy->cooldowns[i].error_type);
    }
    free(policy->cooldowns);
    policy->non_retryable_errors = NULL;
    policy->non_retryable_count = 0;
    policy->cooldowns = NULL;
    policy->cooldown_count = 0;
}

/* A malloc'ed copy of `text`, or NULL when out of memory.  Caller owns it. */
static char *retry_strdup(const char *text) {
    const size_t size = strlen(text) + 1;
    char *copy = malloc(size);
    if (copy != NULL) {
        memcpy(copy, text, size);
    }
    return copy;
}

int tf_retry_policy_add_non_retryable(tf_retry_policy_t *policy, const char *error_type) {
    if (policy == NULL || error_type == NULL) {
        return TF_EINVAL;
    }
    char *copy = retry_strdup(error_type);
    if (copy == NULL) {
        goto fail_copy;
    }
    char **grown =
        realloc(policy->non_retryable_errors, (policy->non_retryable_count + 1) * sizeof *grown);
    if (grown == NULL) {
        goto fail_grow;
    }
    grown[policy->non_retryable_count++] = copy;
    policy->non_retryable_errors = grown;
    return 0;

fail_grow:
    free(copy);
fail_copy:
    return TF_ENOMEM;
}

int tf_retry_policy_add_cooldown(tf_retry_policy_t *policy, const char *error_type, int64_t ms) {
    if (policy == NULL || error_type == NULL) {
        return TF_EINVAL;
    }
    char *copy = retry_strdup(error_type);
    if (copy == NULL) {
        goto fail_copy;
    }
    tf_retry_cooldown_t *grown =
        realloc(policy->cooldowns, (policy->cooldown_count + 1) * sizeof *grown);
    if (grown == NULL) {
        goto fail_grow;
    }
    grown[policy->cooldown_count++] = (tf_retry_cooldown_t){.error_type = copy, .ms = ms};
    policy->cooldowns = grown;
    return 0;

fail_grow:
    free(copy);
fail_copy:
    return TF_ENOMEM;
}

int tf_retry_policy_copy(tf_retry_policy_t *dst, const tf_retry_policy_t *src) {
    *dst = *src;
    dst->non_retryable_errors = NULL;
    dst->non_retryable_count = 0;
    dst->cooldowns = NULL;
    dst->cooldown_count = 0;
    for (size_t i = 0; i < src->non_retryable_count; i++) {
        if (tf_retry_policy_add_non_retryable(dst, src->non_retryable_errors[i]) != 0) {
            goto fail;
        }
    }
    for (size_t i = 0; i < src->cooldown_count; i++) {
        const tf_retry_cooldown_t *cooldown = &src->cooldowns[i];
        if (tf_retry_policy_add_cooldown(dst, cooldown->error_type, cooldown->ms) != 0) {
            goto fail;
        }
    }
    return 0;

fail:
    tf_retry_policy_free(dst);
    return TF_ENOMEM;
}

/* ---- validation ---- */

/* Records a validation failure: names `name` in `*field` and formats the
 * message into `err`.  Always returns TF_EINVAL. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int
retry_invalid(char *err, size_t errlen, const char **field, const char *name, const char *format,
              ...) {
    if (field != NULL) {
        *field = name;
    }
    if (err != NULL && errlen > 0) {
        va_list args;
        va_start(args, format);
        vsnprintf(err, errlen, format, args);
        va_end(args);
    }
    return TF_EINVAL;
}

static bool retry_in_range(int64_t value, int64_t min, int64_t max) {
    return value >= min && value <= max;
}

static int retry_validate_scalars(const tf_retry_policy_t *p, char *err, size_t errlen,
                                  const char **field) {
    if (p->max_attempts < 1 || p->max_attempts > TF_RETRY_MAX_ATTEMPTS_LIMIT) {
        return retry_invalid(err, errlen, field, "max_attempts",
                             "max_attempts must be between 1 and %d", TF_RETRY_MAX_ATTEMPTS_LIMIT);
    }
    if (tf_retry_strategy_name(p->strategy) == NULL) {
        return retry_invalid(err, errlen, field, "strategy",
                             "strategy must be one of fixed, linear, exponential");
    }
    if (tf_retry_jitter_name(p->jitter) == NULL) {
        return retry_invalid(err, errlen, field, "jitter",
                             "jitter must be one of none, full, equal");
    }
    if (!retry_in_range(p->max_delay_ms, 0, TF_RETRY_DELAY_LIMIT_MS)) {
        return retry_invalid(err, errlen, field, "max_delay_ms",
                             "max_delay_ms must be between 0 and %lld (30 days)",
                             (long long)TF_RETRY_DELAY_LIMIT_MS);
    }
    if (!retry_in_range(p->base_delay_ms, 0, p->max_delay_ms)) {
        return retry_invalid(err, errlen, field, "base_delay_ms",
                             "base_delay_ms must be between 0 and max_delay_ms (%lld)",
                             (long long)p->max_delay_ms);
    }
    return 0;
}

static bool retry_error_type_ok(const char *error_type) {
    if (error_type == NULL) {
        return false;
    }
    const size_t len = strlen(error_type);
    return len >= 1 && len <= TF_RETRY_ERROR_TYPE_MAX_LEN;
}

static int retry_validate_non_retryable(const tf_retry_policy_t *p, char *err, size_t errlen,
                                        const char **field) {
    static const char name[] = "non_retryable_errors";
    if (p->non_retryable_count > TF_RETRY_LIST_MAX) {
        return retry_invalid(err, errlen, field, name, "%s must have at most %d entries", name,
                             TF_RETRY_LIST_MAX);
    }
    if (p->non_retryable_count > 0 && p->non_retryable_errors == NULL) {
        return retry_invalid(err, errlen, field, name, "%s is missing its entries", name);
    }
    for (size_t i = 0; i < p->non_retryable_count; i++) {
        if (!retry_error_type_ok(p->non_retryable_errors[i])) {
            return retry_invalid(err, errlen, field, name, "%s[%zu] must be 1 to %d bytes long",
                                 name, i, TF_RETRY_ERROR_TYPE_MAX_LEN);
        }
    }
    return 0;
}

/* True when cooldowns[index]'s error type already appears before it. */
static bool retry_cooldown_is_duplicate(const tf_retry_policy_t *p, size_t index) {
    for (size_t j = 0; j < index; j++) {
        if (strcmp(p->cooldowns[j].error_type, p->cooldowns[index].error_type) == 0) {
            return true;
        }
    }
    return false;
}

static int retry_validate_cooldowns(const tf_retry_policy_t *p, char *err, size_t errlen,
                                    const char **field) {
    static const char name[] = "cooldown";
    if (p->cooldown_count > TF_RETRY_LIST_MAX) {
        return retry_invalid(err, errlen, field, name, "%s must have at most %d entries", name,
                             TF_RETRY_LIST_MAX);
    }
    if (p->cooldown_count > 0 && p->cooldowns == NULL) {
        return retry_invalid(err, errlen, field, name, "%s is missing its entries", name);
    }
    for (size_t i = 0; i < p->cooldown_count; i++) {
        const tf_retry_cooldown_t *cooldown = &p->cooldowns[i];
        if (!retry_error_type_ok(cooldown->error_type)) {
            return retry_invalid(err, errlen, field, name,
                                 "%s error types must be 1 to %d bytes long (entry %zu)", name,
                                 TF_RETRY_ERROR_TYPE_MAX_LEN, i);
        }
        if (retry_cooldown_is_duplicate(p, i)) {
            return retry_invalid(err, errlen, field, name, "%s lists error type \"%s\" twice", name,
                                 cooldown->error_type);
        }
        if (!retry_in_range(cooldown->ms, 0, TF_RETRY_DELAY_LIMIT_MS)) {
            return retry_invalid(err, errlen, field, name,
                                 "%s for \"%s\" must be between 0 and %lld ms (30 days)", name,
                                 cooldown->error_type, (long long)TF_RETRY_DELAY_LIMIT_MS);
        }
    }
    return 0;
}

int tf_retry_policy_validate(const tf_retry_policy_t *policy, char *err, size_t errlen,
                             const char **field) {
    if (policy == NULL) {
        return retry_invalid(err, errlen, field, "retry_policy", "retry_policy is missing");
    }
    int rc = retry_validate_scalars(policy, err, errlen, field);
    if (rc == 0) {
        rc = retry_validate_non_retryable(policy, err, errlen, field);
    }
    if (rc == 0) {
        rc = retry_validate_cooldowns(policy, err, errlen, field);
    }
    return rc;
}

/* ---- delays and decisions ---- */

/* The strategy's delay for attempt n >= 1, capped at max_delay_ms.  Each
 * product is compared with the cap before it is formed, so nothing overflows. */
static int64_t retry_base_delay(const tf_retry_policy_t *p, int attempt) {
    const int64_t base = p->base_delay_ms > 0 ? p->base_delay_ms : 0;
    const int64_t cap = p->max_delay_ms > 0 ? p->max_delay_ms : 0;
    int64_t delay;
    switch (p->strategy) {
    case TF_RETRY_STRATEGY_LINEAR:
        delay = base > cap / attempt ? cap : base * attempt;
        break;
    case TF_RETRY_STRATEGY_EXPONENTIAL: {
        const int shift = attempt - 1;
        delay = shift >= 62 || base > (cap >> shift) ? cap : base << shift;
        break;
    }
    case TF_RETRY_STRATEGY_FIXED:
    default:
        delay = base;
        break;
    }
    return delay < cap ? delay : cap;
}

int64_t tf_retry_delay_ms(const tf_retry_policy_t *policy, int attempt, tf_rng_t *rng) {
    const int64_t delay = retry_base_delay(policy, attempt < 1 ? 1 : attempt);
    if (rng == NULL || delay == 0) {
        return delay;
    }
    switch (policy->jitter) {
    case TF_RETRY_JITTER_FULL:
        return (int64_t)tf_rng_uniform(rng, (uint64_t)delay);
    case TF_RETRY_JITTER_EQUAL: {
        const int64_t half = delay / 2;
        return delay - half + (int64_t)tf_rng_uniform(rng, (uint64_t)half);
    }
    case TF_RETRY_JITTER_NONE:
    default:
        return delay;
    }
}

static bool retry_is_listed(const tf_retry_policy_t *p, const char *error_type) {
    for (size_t i = 0; error_type != NULL && i < p->non_retryable_count; i++) {
        if (strcmp(p->non_retryable_errors[i], error_type) == 0) {
            return true;
        }
    }
    return false;
}

/* The cooldown for `error_type`, or 0 when it has none. */
static int64_t retry_cooldown_ms(const tf_retry_policy_t *p, const char *error_type) {
    for (size_t i = 0; error_type != NULL && i < p->cooldown_count; i++) {
        if (strcmp(p->cooldowns[i].error_type, error_type) == 0) {
            return p->cooldowns[i].ms;
        }
    }
    return 0;
}

static int64_t retry_add_saturating(int64_t now_ms, int64_t delay_ms) {
    return now_ms > INT64_MAX - delay_ms ? INT64_MAX : now_ms + delay_ms;
}

int tf_retry_decide(const tf_retry_policy_t *policy, int attempt_that_failed,
                    const char *error_type, bool retryable, int64_t now_ms, tf_rng_t *rng,
                    tf_retry_decision_t *out) {
    if (policy == NULL || out == NULL || attempt_that_failed < 1 ||
        (rng == NULL && policy->jitter != TF_RETRY_JITTER_NONE)) {
        return TF_EINVAL;
    }
    *out = (tf_retry_decision_t){.outcome = TF_RETRY_OUTCOME_RETRY, .run_at_ms = now_ms};
    if (!retryable || retry_is_listed(policy, error_type)) {
        out->outcome = TF_RETRY_OUTCOME_FAILED;
        return 0;
    }
    if (attempt_that_failed >= policy->max_attempts) {
        out->outcome = TF_RETRY_OUTCOME_DEAD;
        return 0;
    }
    const int64_t delay = tf_retry_delay_ms(policy, attempt_that_failed, rng);
    const int64_t cooldown = retry_cooldown_ms(policy, error_type);
    out->delay_ms = cooldown > delay ? cooldown : delay;
    out->run_at_ms = retry_add_saturating(now_ms, out->delay_ms);
    return 0;
}

tf_job_event_t tf_retry_outcome_event(tf_retry_outcome_t outcome) {
    switch (outcome) {
    case TF_RETRY_OUTCOME_FAILED:
        return TF_JOB_EV_FAIL_FINAL;
    case TF_RETRY_OUTCOME_DEAD:
        return TF_JOB_EV_FAIL_EXHAUSTED;
    case TF_RETRY_OUTCOME_RETRY:
    default:
        return TF_JOB_EV_FAIL_RETRY;
    }
}

bool tf_retry_policy_is_default(const tf_retry_policy_t *policy) {
    return policy->max_attempts == TF_RETRY_DEFAULT_MAX_ATTEMPTS &&
           policy->strategy == TF_RETRY_STRATEGY_EXPONENTIAL &&
           policy->base_delay_ms == TF_RETRY_DEFAULT_BASE_DELAY_MS &&
           policy->max_delay_ms == TF_RETRY_DEFAULT_MAX_DELAY_MS &&
           policy->jitter == TF_RETRY_JITTER_NONE && policy->non_retryable_count == 0 &&
           policy->cooldown_count == 0;
}
