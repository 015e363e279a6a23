/*
 * test_retry.c - tests for engine/retry.c: defaults, each strategy, the cap,
 * overflow at huge attempt numbers, jitter bounds, determinism and spread,
 * the FAILED / DEAD / RETRY decision with cooldowns, validation naming each
 * bad field, and deep copy / free.  One cmocka process; no shared state.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/error.h"
#include "engine/job.h"
#include "engine/retry.h"

#define NOW_MS INT64_C(1795676400000)
#define DAY_MS INT64_C(86400000)

static tf_retry_policy_t policy_with(tf_retry_strategy_t strategy, int64_t base, int64_t max) {
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.strategy = strategy;
    policy.base_delay_ms = base;
    policy.max_delay_ms = max;
    policy.max_attempts = TF_RETRY_MAX_ATTEMPTS_LIMIT;
    return policy;
}

/* ---- defaults and names ---- */

static void test_retry__defaults_match_the_documentation(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    memset(&policy, 0xAB, sizeof policy);
    tf_retry_policy_init_default(&policy);
    assert_int_equal(policy.max_attempts, 3);
    assert_int_equal(policy.strategy, TF_RETRY_STRATEGY_EXPONENTIAL);
    assert_int_equal(policy.base_delay_ms, 1000);
    assert_int_equal(policy.max_delay_ms, 3600000);
    assert_int_equal(policy.jitter, TF_RETRY_JITTER_NONE);
    assert_null(policy.non_retryable_errors);
    assert_int_equal(policy.non_retryable_count, 0);
    assert_null(policy.cooldowns);
    assert_int_equal(policy.cooldown_count, 0);
    assert_int_equal(tf_retry_policy_validate(&policy, NULL, 0, NULL), 0);
}

static void test_retry__strategy_and_jitter_names_round_trip(void **state) {
    (void)state;
    const char *const strategies[] = {"fixed", "linear", "exponential"};
    const char *const jitters[] = {"none", "full", "equal"};
    for (int i = 0; i < 3; i++) {
        tf_retry_strategy_t strategy;
        tf_retry_jitter_t jitter;
        assert_int_equal(tf_retry_strategy_parse(strategies[i], &strategy), 0);
        assert_string_equal(tf_retry_strategy_name(strategy), strategies[i]);
        assert_int_equal(tf_retry_jitter_parse(jitters[i], &jitter), 0);
        assert_string_equal(tf_retry_jitter_name(jitter), jitters[i]);
    }
}

static void test_retry__bad_strategy_and_jitter_names_are_refused(void **state) {
    (void)state;
    tf_retry_strategy_t strategy;
    tf_retry_jitter_t jitter;
    assert_int_equal(tf_retry_strategy_parse("Fixed", &strategy), TF_EINVAL);
    assert_int_equal(tf_retry_strategy_parse("", &strategy), TF_EINVAL);
    assert_int_equal(tf_retry_strategy_parse(NULL, &strategy), TF_EINVAL);
    assert_int_equal(tf_retry_jitter_parse("random", &jitter), TF_EINVAL);
    assert_int_equal(tf_retry_jitter_parse("none ", &jitter), TF_EINVAL);
    assert_null(tf_retry_strategy_name((tf_retry_strategy_t)7));
    assert_null(tf_retry_jitter_name((tf_retry_jitter_t)7));
}

/* ---- strategies and the cap ---- */

static void test_retry__fixed_waits_base_every_time(void **state) {
    (void)state;
    const tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_FIXED, 1500, 60000);
    for (int attempt = 1; attempt <= 10; attempt++) {
        assert_int_equal(tf_retry_delay_ms(&policy, attempt, NULL), 1500);
    }
}

static void test_retry__linear_grows_by_base(void **state) {
    (void)state;
    const tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_LINEAR, 1000, 3600000);
    const int64_t expected[] = {1000, 2000, 3000, 4000, 5000};
    for (int attempt = 1; attempt <= 5; attempt++) {
        assert_int_equal(tf_retry_delay_ms(&policy, attempt, NULL), expected[attempt - 1]);
    }
}

static void test_retry__exponential_doubles(void **state) {
    (void)state;
    const tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_EXPONENTIAL, 1000, 3600000);
    const int64_t expected[] = {1000, 2000, 4000, 8000, 16000, 32000};
    for (int attempt = 1; attempt <= 6; attempt++) {
        assert_int_equal(tf_retry_delay_ms(&policy, attempt, NULL), expected[attempt - 1]);
    }
}

static void test_retry__exponential_is_capped(void **state) {
    (void)state;
    const tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_EXPONENTIAL, 1000, 10000);
    assert_int_equal(tf_retry_delay_ms(&policy, 4, NULL), 8000);
    assert_int_equal(tf_retry_delay_ms(&policy, 5, NULL), 10000);
    assert_int_equal(tf_retry_delay_ms(&policy, 6, NULL), 10000);
}

static void test_retry__linear_is_capped(void **state) {
    (void)state;
    const tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_LINEAR, 1000, 2500);
    assert_int_equal(tf_retry_delay_ms(&policy, 2, NULL), 2000);
    assert_int_equal(tf_retry_delay_ms(&policy, 3, NULL), 2500);
}

static void test_retry__fixed_is_capped_at_max_delay(void **state) {
    (void)state;
    /* base == max is the largest valid base; the cap still holds. */
    const tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_FIXED, 5000, 5000);
    assert_int_equal(tf_retry_delay_ms(&policy, 1, NULL), 5000);
}

static void test_retry__huge_attempt_numbers_do_not_overflow(void **state) {
    (void)state;
    const int attempts[] = {62, 63, 64, 65, 100, 1000, INT_MAX - 1, INT_MAX};
    const tf_retry_strategy_t strategies[] = {TF_RETRY_STRATEGY_LINEAR,
                                              TF_RETRY_STRATEGY_EXPONENTIAL};
    for (size_t s = 0; s < 2; s++) {
        const tf_retry_policy_t policy =
            policy_with(strategies[s], TF_RETRY_DELAY_LIMIT_MS, TF_RETRY_DELAY_LIMIT_MS);
        for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
            assert_int_equal(tf_retry_delay_ms(&policy, attempts[i], NULL),
                             TF_RETRY_DELAY_LIMIT_MS);
        }
    }
    const tf_retry_policy_t small = policy_with(TF_RETRY_STRATEGY_EXPONENTIAL, 1, 3600000);
    assert_int_equal(tf_retry_delay_ms(&small, 22, NULL), 2097152);
    assert_int_equal(tf_retry_delay_ms(&small, 23, NULL), 3600000);
    assert_int_equal(tf_retry_delay_ms(&small, INT_MAX, NULL), 3600000);
}

static void test_retry__zero_base_means_no_delay(void **state) {
    (void)state;
    const tf_retry_strategy_t strategies[] = {TF_RETRY_STRATEGY_FIXED, TF_RETRY_STRATEGY_LINEAR,
                                              TF_RETRY_STRATEGY_EXPONENTIAL};
    for (size_t s = 0; s < 3; s++) {
        const tf_retry_policy_t policy = policy_with(strategies[s], 0, 60000);
        assert_int_equal(tf_retry_delay_ms(&policy, 1, NULL), 0);
        assert_int_equal(tf_retry_delay_ms(&policy, 50, NULL), 0);
    }
}

static void test_retry__attempt_below_one_counts_as_first(void **state) {
    (void)state;
    const tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_LINEAR, 1000, 60000);
    assert_int_equal(tf_retry_delay_ms(&policy, 0, NULL), 1000);
    assert_int_equal(tf_retry_delay_ms(&policy, INT_MIN, NULL), 1000);
}

/* ---- jitter ---- */

static void test_retry__full_jitter_stays_within_zero_and_delay(void **state) {
    (void)state;
    tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_FIXED, 10000, 60000);
    policy.jitter = TF_RETRY_JITTER_FULL;
    tf_rng_t rng;
    tf_rng_seed(&rng, 1);
    for (int i = 0; i < 10000; i++) {
        assert_in_range(tf_retry_delay_ms(&policy, 1, &rng), 0, 10000);
    }
}

static void test_retry__equal_jitter_stays_within_half_and_delay(void **state) {
    (void)state;
    const int64_t bases[] = {10000, 10001, 1, 2};
    tf_rng_t rng;
    tf_rng_seed(&rng, 2);
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
        tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_FIXED, bases[b], 60000);
        policy.jitter = TF_RETRY_JITTER_EQUAL;
        for (int i = 0; i < 5000; i++) {
            const int64_t delay = tf_retry_delay_ms(&policy, 1, &rng);
            assert_true(2 * delay >= bases[b]);
            assert_true(delay <= bases[b]);
        }
    }
}

static void test_retry__jitter_is_deterministic_for_a_seed(void **state) {
    (void)state;
    const tf_retry_jitter_t jitters[] = {TF_RETRY_JITTER_FULL, TF_RETRY_JITTER_EQUAL};
    for (size_t j = 0; j < 2; j++) {
        tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_EXPONENTIAL, 1000, 3600000);
        policy.jitter = jitters[j];
        tf_rng_t a;
        tf_rng_t b;
        tf_rng_seed(&a, 4242);
        tf_rng_seed(&b, 4242);
        for (int attempt = 1; attempt <= 200; attempt++) {
            assert_int_equal(tf_retry_delay_ms(&policy, attempt, &a),
                             tf_retry_delay_ms(&policy, attempt, &b));
        }
    }
}

/* Mean of many jittered delays of d = 10000: full about d/2, equal about 3d/4. */
static int64_t jitter_mean(tf_retry_jitter_t jitter, int64_t *min, int64_t *max) {
    tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_FIXED, 10000, 60000);
    policy.jitter = jitter;
    tf_rng_t rng;
    tf_rng_seed(&rng, 777);
    int64_t sum = 0;
    *min = INT64_MAX;
    *max = INT64_MIN;
    for (int i = 0; i < 20000; i++) {
        const int64_t delay = tf_retry_delay_ms(&policy, 1, &rng);
        sum += delay;
        *min = delay < *min ? delay : *min;
        *max = delay > *max ? delay : *max;
    }
    return sum / 20000;
}

static void test_retry__jitter_spreads_over_its_range(void **state) {
    (void)state;
    int64_t min;
    int64_t max;
    assert_in_range(jitter_mean(TF_RETRY_JITTER_FULL, &min, &max), 4800, 5200);
    assert_true(min < 100 && max > 9900);
    assert_in_range(jitter_mean(TF_RETRY_JITTER_EQUAL, &min, &max), 7400, 7600);
    assert_true(min < 5100 && max > 9900);
}

static void test_retry__no_jitter_draws_nothing(void **state) {
    (void)state;
    const tf_retry_policy_t policy = policy_with(TF_RETRY_STRATEGY_FIXED, 1000, 60000);
    tf_rng_t rng;
    tf_rng_seed(&rng, 3);
    const tf_rng_t before = rng;
    assert_int_equal(tf_retry_delay_ms(&policy, 1, &rng), 1000);
    assert_memory_equal(&before, &rng, sizeof rng);
}

/* ---- decisions ---- */

static void test_retry__retryable_failure_is_retried_after_the_delay(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 2, "timeout", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_RETRY);
    assert_int_equal(decision.delay_ms, 2000);
    assert_int_equal(decision.run_at_ms, NOW_MS + 2000);
}

static void test_retry__exhausted_attempts_are_dead(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 3, "timeout", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_DEAD);
    assert_int_equal(decision.run_at_ms, NOW_MS);
    assert_int_equal(decision.delay_ms, 0);
    assert_int_equal(tf_retry_decide(&policy, 4, "timeout", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_DEAD);
}

static void test_retry__single_attempt_policy_goes_straight_to_dead(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.max_attempts = 1;
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 1, NULL, true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_DEAD);
}

static void test_retry__not_retryable_flag_fails_the_job(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 1, "fatal", false, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_FAILED);
    assert_int_equal(decision.run_at_ms, NOW_MS);
}

static void test_retry__non_retryable_error_type_fails_the_job(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    assert_int_equal(tf_retry_policy_add_non_retryable(&policy, "bad_input"), 0);
    assert_int_equal(tf_retry_policy_add_non_retryable(&policy, "forbidden"), 0);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 1, "forbidden", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_FAILED);
    assert_int_equal(tf_retry_decide(&policy, 1, "Forbidden", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_RETRY);
    assert_int_equal(tf_retry_decide(&policy, 1, NULL, true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_RETRY);
    tf_retry_policy_free(&policy);
}

static void test_retry__non_retryable_beats_exhausted(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 3, "fatal", false, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_FAILED);
}

static void test_retry__larger_cooldown_overrides_the_delay(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    assert_int_equal(tf_retry_policy_add_cooldown(&policy, "rate_limited", 60000), 0);
    assert_int_equal(tf_retry_policy_add_cooldown(&policy, "blip", 10), 0);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 1, "rate_limited", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_RETRY);
    assert_int_equal(decision.delay_ms, 60000);
    assert_int_equal(decision.run_at_ms, NOW_MS + 60000);
    /* A smaller cooldown leaves the computed delay alone. */
    assert_int_equal(tf_retry_decide(&policy, 2, "blip", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.delay_ms, 2000);
    /* Another error type gets no cooldown. */
    assert_int_equal(tf_retry_decide(&policy, 1, "timeout", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.delay_ms, 1000);
    tf_retry_policy_free(&policy);
}

static void test_retry__cooldown_is_not_capped_by_max_delay(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    assert_int_equal(tf_retry_policy_add_cooldown(&policy, "maintenance", 2 * DAY_MS), 0);
    assert_int_equal(tf_retry_policy_validate(&policy, NULL, 0, NULL), 0);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 1, "maintenance", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.delay_ms, 2 * DAY_MS);
    tf_retry_policy_free(&policy);
}

static void test_retry__cooldown_does_not_revive_an_exhausted_job(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    assert_int_equal(tf_retry_policy_add_cooldown(&policy, "rate_limited", 60000), 0);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 3, "rate_limited", true, NOW_MS, NULL, &decision), 0);
    assert_int_equal(decision.outcome, TF_RETRY_OUTCOME_DEAD);
    tf_retry_policy_free(&policy);
}

static void test_retry__run_at_saturates_instead_of_overflowing(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 1, NULL, true, INT64_MAX - 10, NULL, &decision), 0);
    assert_int_equal(decision.run_at_ms, INT64_MAX);
}

static void test_retry__decide_with_jitter_uses_the_rng(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.jitter = TF_RETRY_JITTER_FULL;
    tf_rng_t a;
    tf_rng_t b;
    tf_rng_seed(&a, 11);
    tf_rng_seed(&b, 11);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(&policy, 2, NULL, true, NOW_MS, &a, &decision), 0);
    assert_int_equal(decision.delay_ms, tf_retry_delay_ms(&policy, 2, &b));
    assert_in_range(decision.delay_ms, 0, 2000);
    assert_int_equal(decision.run_at_ms, NOW_MS + decision.delay_ms);
}

static void test_retry__decide_refuses_bad_arguments(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    tf_retry_decision_t decision;
    assert_int_equal(tf_retry_decide(NULL, 1, NULL, true, NOW_MS, NULL, &decision), TF_EINVAL);
    assert_int_equal(tf_retry_decide(&policy, 1, NULL, true, NOW_MS, NULL, NULL), TF_EINVAL);
    assert_int_equal(tf_retry_decide(&policy, 0, NULL, true, NOW_MS, NULL, &decision), TF_EINVAL);
    policy.jitter = TF_RETRY_JITTER_EQUAL;
    assert_int_equal(tf_retry_decide(&policy, 1, NULL, true, NOW_MS, NULL, &decision), TF_EINVAL);
}

static void test_retry__outcomes_map_to_job_events_from_running(void **state) {
    (void)state;
    const tf_retry_outcome_t outcomes[] = {TF_RETRY_OUTCOME_RETRY, TF_RETRY_OUTCOME_FAILED,
                                           TF_RETRY_OUTCOME_DEAD};
    const tf_job_event_t events[] = {TF_JOB_EV_FAIL_RETRY, TF_JOB_EV_FAIL_FINAL,
                                     TF_JOB_EV_FAIL_EXHAUSTED};
    const tf_job_state_t states[] = {TF_JOB_SCHEDULED, TF_JOB_FAILED, TF_JOB_DEAD};
    for (int i = 0; i < 3; i++) {
        tf_job_state_t to;
        assert_int_equal(tf_retry_outcome_event(outcomes[i]), events[i]);
        assert_int_equal(tf_job_transition(TF_JOB_RUNNING, events[i], &to), 0);
        assert_int_equal(to, states[i]);
    }
}

/* ---- validation ---- */

/* Validates `policy`, expecting failure on `field` with a message naming it. */
static void assert_invalid_field(const tf_retry_policy_t *policy, const char *field) {
    char err[256] = "";
    const char *bad_field = NULL;
    assert_int_equal(tf_retry_policy_validate(policy, err, sizeof err, &bad_field), TF_EINVAL);
    assert_non_null(bad_field);
    assert_string_equal(bad_field, field);
    assert_int_equal(strncmp(err, field, strlen(field)), 0);
}

static void test_retry__validate_names_max_attempts(void **state) {
    (void)state;
    const int bad[] = {0, -1, 1001, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tf_retry_policy_t policy;
        tf_retry_policy_init_default(&policy);
        policy.max_attempts = bad[i];
        assert_invalid_field(&policy, "max_attempts");
    }
}

static void test_retry__validate_names_strategy_and_jitter(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.strategy = (tf_retry_strategy_t)3;
    assert_invalid_field(&policy, "strategy");
    tf_retry_policy_init_default(&policy);
    policy.jitter = (tf_retry_jitter_t)3;
    assert_invalid_field(&policy, "jitter");
}

static void test_retry__validate_names_max_delay_ms(void **state) {
    (void)state;
    const int64_t bad[] = {-1, TF_RETRY_DELAY_LIMIT_MS + 1, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tf_retry_policy_t policy;
        tf_retry_policy_init_default(&policy);
        policy.max_delay_ms = bad[i];
        assert_invalid_field(&policy, "max_delay_ms");
    }
}

static void test_retry__validate_names_base_delay_ms(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.base_delay_ms = -1;
    assert_invalid_field(&policy, "base_delay_ms");
    policy.base_delay_ms = policy.max_delay_ms + 1;
    assert_invalid_field(&policy, "base_delay_ms");
}

static void test_retry__validate_accepts_the_limits(void **state) {
    (void)state;
    char longest[TF_RETRY_ERROR_TYPE_MAX_LEN + 1];
    memset(longest, 'e', TF_RETRY_ERROR_TYPE_MAX_LEN);
    longest[TF_RETRY_ERROR_TYPE_MAX_LEN] = '\0';
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.max_attempts = 1000;
    policy.max_delay_ms = TF_RETRY_DELAY_LIMIT_MS;
    policy.base_delay_ms = TF_RETRY_DELAY_LIMIT_MS;
    for (int i = 0; i < TF_RETRY_LIST_MAX; i++) {
        longest[0] = (char)('0' + i % 10);
        longest[1] = (char)('0' + i / 10);
        assert_int_equal(tf_retry_policy_add_non_retryable(&policy, longest), 0);
        assert_int_equal(tf_retry_policy_add_cooldown(&policy, longest, TF_RETRY_DELAY_LIMIT_MS),
                         0);
    }
    assert_int_equal(tf_retry_policy_validate(&policy, NULL, 0, NULL), 0);
    policy.max_attempts = 1;
    policy.base_delay_ms = 0;
    policy.max_delay_ms = 0;
    assert_int_equal(tf_retry_policy_validate(&policy, NULL, 0, NULL), 0);
    tf_retry_policy_free(&policy);
}

static void test_retry__validate_names_non_retryable_errors(void **state) {
    (void)state;
    char too_long[TF_RETRY_ERROR_TYPE_MAX_LEN + 2];
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *const bad[] = {"", too_long};
    for (size_t i = 0; i < 2; i++) {
        tf_retry_policy_t policy;
        tf_retry_policy_init_default(&policy);
        assert_int_equal(tf_retry_policy_add_non_retryable(&policy, "ok"), 0);
        assert_int_equal(tf_retry_policy_add_non_retryable(&policy, bad[i]), 0);
        assert_invalid_field(&policy, "non_retryable_errors");
        tf_retry_policy_free(&policy);
    }
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    for (int i = 0; i <= TF_RETRY_LIST_MAX; i++) {
        assert_int_equal(tf_retry_policy_add_non_retryable(&policy, "e"), 0);
    }
    assert_invalid_field(&policy, "non_retryable_errors");
    tf_retry_policy_free(&policy);
}

static void test_retry__validate_names_malformed_lists(void **state) {
    (void)state;
    char *entries[] = {NULL};
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.non_retryable_errors = entries;
    policy.non_retryable_count = 1;
    assert_invalid_field(&policy, "non_retryable_errors");
    policy.non_retryable_errors = NULL;
    assert_invalid_field(&policy, "non_retryable_errors");
    tf_retry_policy_init_default(&policy);
    tf_retry_cooldown_t cooldowns[] = {{.error_type = NULL, .ms = 1}};
    policy.cooldowns = cooldowns;
    policy.cooldown_count = 1;
    assert_invalid_field(&policy, "cooldown");
    policy.cooldowns = NULL;
    assert_invalid_field(&policy, "cooldown");
}

static void test_retry__validate_names_cooldown(void **state) {
    (void)state;
    char too_long[TF_RETRY_ERROR_TYPE_MAX_LEN + 2];
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const struct {
        const char *type;
        int64_t ms;
    } bad[] = {
        {"", 1}, {too_long, 1}, {"neg", -1}, {"long", TF_RETRY_DELAY_LIMIT_MS + 1}, {"dup", 5}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tf_retry_policy_t policy;
        tf_retry_policy_init_default(&policy);
        assert_int_equal(tf_retry_policy_add_cooldown(&policy, "dup", 1), 0);
        assert_int_equal(tf_retry_policy_add_cooldown(&policy, bad[i].type, bad[i].ms), 0);
        assert_invalid_field(&policy, "cooldown");
        tf_retry_policy_free(&policy);
    }
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    char type[8];
    for (int i = 0; i <= TF_RETRY_LIST_MAX; i++) {
        type[0] = 't';
        type[1] = (char)('0' + i / 10);
        type[2] = (char)('0' + i % 10);
        type[3] = '\0';
        assert_int_equal(tf_retry_policy_add_cooldown(&policy, type, 1), 0);
    }
    assert_invalid_field(&policy, "cooldown");
    tf_retry_policy_free(&policy);
}

static void test_retry__validate_message_is_clear_and_truncation_safe(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    policy.max_attempts = 0;
    char err[256];
    assert_int_equal(tf_retry_policy_validate(&policy, err, sizeof err, NULL), TF_EINVAL);
    assert_string_equal(err, "max_attempts must be between 1 and 1000");
    char tiny[5];
    assert_int_equal(tf_retry_policy_validate(&policy, tiny, sizeof tiny, NULL), TF_EINVAL);
    assert_string_equal(tiny, "max_");
    assert_int_equal(tf_retry_policy_validate(&policy, NULL, 0, NULL), TF_EINVAL);
    const char *field = NULL;
    assert_int_equal(tf_retry_policy_validate(NULL, NULL, 0, &field), TF_EINVAL);
    assert_string_equal(field, "retry_policy");
}

/* ---- ownership ---- */

static void test_retry__copy_is_deep(void **state) {
    (void)state;
    tf_retry_policy_t src;
    tf_retry_policy_init_default(&src);
    src.jitter = TF_RETRY_JITTER_EQUAL;
    assert_int_equal(tf_retry_policy_add_non_retryable(&src, "bad_input"), 0);
    assert_int_equal(tf_retry_policy_add_cooldown(&src, "rate_limited", 30000), 0);
    tf_retry_policy_t dst;
    assert_int_equal(tf_retry_policy_copy(&dst, &src), 0);
    assert_int_equal(dst.jitter, TF_RETRY_JITTER_EQUAL);
    assert_int_equal(dst.non_retryable_count, 1);
    assert_ptr_not_equal(dst.non_retryable_errors, src.non_retryable_errors);
    assert_ptr_not_equal(dst.non_retryable_errors[0], src.non_retryable_errors[0]);
    assert_string_equal(dst.non_retryable_errors[0], "bad_input");
    assert_int_equal(dst.cooldown_count, 1);
    assert_ptr_not_equal(dst.cooldowns[0].error_type, src.cooldowns[0].error_type);
    assert_string_equal(dst.cooldowns[0].error_type, "rate_limited");
    assert_int_equal(dst.cooldowns[0].ms, 30000);
    tf_retry_policy_free(&src); /* dst must survive its source */
    assert_string_equal(dst.non_retryable_errors[0], "bad_input");
    tf_retry_policy_free(&dst);
}

static void test_retry__free_empties_and_is_repeatable(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    assert_int_equal(tf_retry_policy_add_non_retryable(&policy, "a"), 0);
    assert_int_equal(tf_retry_policy_add_cooldown(&policy, "b", 1), 0);
    tf_retry_policy_free(&policy);
    assert_null(policy.non_retryable_errors);
    assert_int_equal(policy.non_retryable_count, 0);
    assert_null(policy.cooldowns);
    assert_int_equal(policy.cooldown_count, 0);
    assert_int_equal(policy.max_attempts, 3);
    tf_retry_policy_free(&policy);
    tf_retry_policy_free(NULL);
}

static void test_retry__add_refuses_null(void **state) {
    (void)state;
    tf_retry_policy_t policy;
    tf_retry_policy_init_default(&policy);
    assert_int_equal(tf_retry_policy_add_non_retryable(&policy, NULL), TF_EINVAL);
    assert_int_equal(tf_retry_policy_add_non_retryable(NULL, "x"), TF_EINVAL);
    assert_int_equal(tf_retry_policy_add_cooldown(&policy, NULL, 1), TF_EINVAL);
    assert_int_equal(tf_retry_policy_add_cooldown(NULL, "x", 1), TF_EINVAL);
    assert_int_equal(policy.non_retryable_count, 0);
    assert_int_equal(policy.cooldown_count, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry__defaults_match_the_documentation),
        cmocka_unit_test(test_retry__strategy_and_jitter_names_round_trip),
        cmocka_unit_test(test_retry__bad_strategy_and_jitter_names_are_refused),
        cmocka_unit_test(test_retry__fixed_waits_base_every_time),
        cmocka_unit_test(test_retry__linear_grows_by_base),
        cmocka_unit_test(test_retry__exponential_doubles),
        cmocka_unit_test(test_retry__exponential_is_capped),
        cmocka_unit_test(test_retry__linear_is_capped),
        cmocka_unit_test(test_retry__fixed_is_capped_at_max_delay),
        cmocka_unit_test(test_retry__huge_attempt_numbers_do_not_overflow),
        cmocka_unit_test(test_retry__zero_base_means_no_delay),
        cmocka_unit_test(test_retry__attempt_below_one_counts_as_first),
        cmocka_unit_test(test_retry__full_jitter_stays_within_zero_and_delay),
        cmocka_unit_test(test_retry__equal_jitter_stays_within_half_and_delay),
        cmocka_unit_test(test_retry__jitter_is_deterministic_for_a_seed),
        cmocka_unit_test(test_retry__jitter_spreads_over_its_range),
        cmocka_unit_test(test_retry__no_jitter_draws_nothing),
        cmocka_unit_test(test_retry__retryable_failure_is_retried_after_the_delay),
        cmocka_unit_test(test_retry__exhausted_attempts_are_dead),
        cmocka_unit_test(test_retry__single_attempt_policy_goes_straight_to_dead),
        cmocka_unit_test(test_retry__not_retryable_flag_fails_the_job),
        cmocka_unit_test(test_retry__non_retryable_error_type_fails_the_job),
        cmocka_unit_test(test_retry__non_retryable_beats_exhausted),
        cmocka_unit_test(test_retry__larger_cooldown_overrides_the_delay),
        cmocka_unit_test(test_retry__cooldown_is_not_capped_by_max_delay),
        cmocka_unit_test(test_retry__cooldown_does_not_revive_an_exhausted_job),
        cmocka_unit_test(test_retry__run_at_saturates_instead_of_overflowing),
        cmocka_unit_test(test_retry__decide_with_jitter_uses_the_rng),
        cmocka_unit_test(test_retry__decide_refuses_bad_arguments),
        cmocka_unit_test(test_retry__outcomes_map_to_job_events_from_running),
        cmocka_unit_test(test_retry__validate_names_max_attempts),
        cmocka_unit_test(test_retry__validate_names_strategy_and_jitter),
        cmocka_unit_test(test_retry__validate_names_max_delay_ms),
        cmocka_unit_test(test_retry__validate_names_base_delay_ms),
        cmocka_unit_test(test_retry__validate_accepts_the_limits),
        cmocka_unit_test(test_retry__validate_names_non_retryable_errors),
        cmocka_unit_test(test_retry__validate_names_malformed_lists),
        cmocka_unit_test(test_retry__validate_names_cooldown),
        cmocka_unit_test(test_retry__validate_message_is_clear_and_truncation_safe),
        cmocka_unit_test(test_retry__copy_is_deep),
        cmocka_unit_test(test_retry__free_empties_and_is_repeatable),
        cmocka_unit_test(test_retry__add_refuses_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
