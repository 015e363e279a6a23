/*
 * test_finish.c - tests for adapters/usecases/finish.c on fake ports
 * (fake_store.h): acks that succeed (SUCCEEDED, job.succeeded, dependants
 * released); failures read once through store->failed_jobs and decided by
 * each job's retry policy (retry left -> SCHEDULED at now + delay without
 * an event, attempts exhausted -> DEAD, non-retryable -> FAILED, with their
 * events, reasons and attempt outcomes, "timeout" / "lease_expired"
 * outcomes); the dependency release each end brings about and the counts
 * that come back; how the store's results become ack results; errors; and
 * the rescue of expired attempts.  Expected values are written out here.
 * One cmocka process; each test has its own fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/finish.h"
#include "engine/error.h"
#include "engine/events.h"
#include "engine/retry.h"
#include "fake_store.h"

#define TENANT "0190a0b0-0000-7000-8000-00000000000a"
#define JOB_1 "0190a0b0-0000-7000-8000-000000000101"
#define JOB_2 "0190a0b0-0000-7000-8000-000000000102"
#define JOB_3 "0190a0b0-0000-7000-8000-000000000103"
#define JOB_4 "0190a0b0-0000-7000-8000-000000000104"
#define RESULTS_MAX 8

typedef struct {
    fake_env_t *env;
    fake_store_t *store;
    /* what the ack callback heard */
    int calls;
    int status;
    size_t n;
    int results_null;
    tf_ack_result_t results[RESULTS_MAX];
    /* what the rescue callback heard */
    int count_calls;
    int count_status;
    int64_t count;
    /* policies handed to the use case as the store's */
    tf_retry_policy_t fixed, listed;
} fixture_t;

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->env = fake_env_new();
    fx->store = &fx->env->store;
    fx->status = fx->count_status = 12345;
    fx->count = -1;
    /* max 3 attempts, a fixed 5 s backoff */
    tf_retry_policy_init_default(&fx->fixed);
    fx->fixed.strategy = TF_RETRY_STRATEGY_FIXED;
    fx->fixed.base_delay_ms = 5000;
    /* the same, with "validation" and "lease_expired" non-retryable */
    tf_retry_policy_init_default(&fx->listed);
    fx->listed.strategy = TF_RETRY_STRATEGY_FIXED;
    fx->listed.base_delay_ms = 5000;
    assert_int_equal(tf_retry_policy_add_non_retryable(&fx->listed, "validation"), 0);
    assert_int_equal(tf_retry_policy_add_non_retryable(&fx->listed, "lease_expired"), 0);
    assert_int_equal(tf_retry_policy_validate(&fx->fixed, NULL, 0, NULL), 0);
    assert_int_equal(tf_retry_policy_validate(&fx->listed, NULL, 0, NULL), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    fake_store_assert_idle(fx->store);
    tf_retry_policy_free(&fx->fixed);
    tf_retry_policy_free(&fx->listed);
    fake_env_free(fx->env);
    free(fx);
    return 0;
}

static void on_acked(void *arg, int status, const tf_ack_result_t *results, size_t n) {
    fixture_t *fx = arg;
    fx->calls++;
    fx->status = status;
    fx->n = n;
    fx->results_null = results == NULL;
    for (size_t i = 0; results != NULL && i < n && i < RESULTS_MAX; i++) {
        fx->results[i] = results[i];
    }
}

static void on_count(void *arg, int status, int64_t count) {
    fixture_t *fx = arg;
    fx->count_calls++;
    fx->count_status = status;
    fx->count = count;
}

static tf_ack_t ack_ok(const char *job_id, const char *result) {
    return (tf_ack_t){.tenant_id = TENANT,
                      .job_id = job_id,
                      .lease_token = "lease-ok",
                      .worker_id = "w-1",
                      .ok = 1,
                      .result_json = result};
}

static tf_ack_t ack_fail(const char *job_id, const char *error_type, int retryable) {
    return (tf_ack_t){.tenant_id = TENANT,
                      .job_id = job_id,
                      .lease_token = "lease-fail",
                      .worker_id = "w-2",
                      .ok = 0,
                      .error_type = error_type,
                      .error_message = "it broke",
                      .retryable = retryable};
}

/* A job found by failed_jobs / expired.  The policy is a shallow copy: its
 * lists stay the fixture's (the store owns them for the callback only). */
static tf_failed_job_t failed_job(const tf_retry_policy_t *policy, int attempts) {
    return (tf_failed_job_t){.found = 1, .attempts = attempts, .policy = *policy};
}

static tf_finished_t applied(size_t released, size_t cancelled) {
    return (tf_finished_t){.applied = 1, .exists = 1, .released = released, .cancelled = cancelled};
}

/* The finish call's event of `job_id`, or NULL. */
static const fake_event_t *event_of(const fake_finish_call_t *c, const char *job_id) {
    for (size_t i = 0; i < c->nevents; i++) {
        if (c->events[i].job_id != NULL && strcmp(c->events[i].job_id, job_id) == 0) {
            return &c->events[i];
        }
    }
    return NULL;
}

/* The finish call holds `job_id`'s event, named `name`, for `state`. */
static void assert_event(const fake_finish_call_t *c, const char *job_id, const char *name,
                         tf_job_state_t state) {
    const fake_event_t *ev = event_of(c, job_id);
    if (ev == NULL) {
        fail_msg("no event for job %s", job_id);
    }
    const char *got = tf_domain_event_name(ev->kind);
    assert_non_null(got);
    assert_string_equal(got, name);
    assert_int_equal(ev->state, state);
    assert_string_equal(ev->tenant_id, TENANT);
}

/* Acks one failure of a job whose attempt `attempt` failed under `policy`
 * and returns the finish call it leads to. */
static const fake_finish_call_t *fail_once(fixture_t *fx, tf_ack_t ack, tf_retry_policy_t *policy,
                                           int attempt) {
    int before = fx->store->calls[FK_FINISH];
    assert_int_equal(tf_uc_ack(&fx->env->uc, &ack, 1, on_acked, fx), 0);
    assert_int_equal(fx->store->calls[FK_FINISH], before); /* the policy first */
    tf_failed_job_t job = failed_job(policy, attempt);
    fake_deliver_failed_jobs(fx->store, 0, &job, 1);
    assert_int_equal(fx->store->calls[FK_FINISH], before + 1);
    return &fx->store->finish[before];
}

/* ---- successes ---- */

static void test_finish__success_ends_succeeded_and_releases_dependants(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 42;
    tf_ack_t ack = ack_ok(JOB_1, "{\"sent\":true}");
    assert_int_equal(tf_uc_ack(&fx->env->uc, &ack, 1, on_acked, fx), 0);
    assert_int_equal(fx->store->calls[FK_FAILED_JOBS], 0); /* nothing to decide */
    assert_int_equal(fx->store->calls[FK_FINISH], 1);
    const fake_finish_call_t *c = &fx->store->finish[0];
    assert_int_equal(c->n, 1);
    assert_int_equal(c->now_ms, FAKE_T0_MS + 42);
    const fake_finish_item_t *it = &c->items[0];
    assert_string_equal(it->tenant_id, TENANT);
    assert_string_equal(it->job_id, JOB_1);
    assert_string_equal(it->lease_token, "lease-ok");
    assert_string_equal(it->worker, "w-1");
    assert_string_equal(it->actor, "worker:w-1");
    assert_int_equal(it->to, TF_JOB_SUCCEEDED);
    assert_int_equal(it->attempt_outcome, TF_ATTEMPT_SUCCEEDED);
    assert_string_equal(it->reason, "succeeded");
    assert_int_equal(it->dependants, TF_DEPENDANTS_RELEASE);
    assert_string_equal(it->result, "{\"sent\":true}");
    assert_null(it->error_type);
    assert_true(c->has_events);
    assert_int_equal(c->nevents, 1);
    assert_event(c, JOB_1, "job.succeeded", TF_JOB_SUCCEEDED);
    assert_int_equal(fx->calls, 0);

    tf_finished_t r[] = {applied(2, 0)};
    fake_deliver_finished(fx->store, 0, r, 1);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->n, 1);
    assert_int_equal(fx->results[0].status, 0);
    assert_int_equal(fx->results[0].state, TF_JOB_SUCCEEDED);
    assert_int_equal(fx->results[0].released, 2);
    assert_int_equal(fx->results[0].cancelled, 0);
}

static void test_finish__success_without_result_or_worker(void **state) {
    fixture_t *fx = *state;
    tf_ack_t ack = ack_ok(JOB_1, NULL);
    ack.worker_id = NULL;
    ack.tenant_id = NULL; /* admin or a built-in executor */
    assert_int_equal(tf_uc_ack(&fx->env->uc, &ack, 1, on_acked, fx), 0);
    const fake_finish_item_t *it = &fx->store->finish[0].items[0];
    assert_string_equal(it->result, "null");
    assert_int_equal(it->ended_at_ms, 0); /* ended when recorded */
    assert_null(it->worker); /* the store names the lease holder */
    assert_null(it->actor);
    assert_null(it->tenant_id);
    assert_int_equal(fx->store->finish[0].nevents, 1);
    assert_string_equal(fx->store->finish[0].events[0].job_id, JOB_1);
    assert_int_equal(fx->store->finish[0].events[0].kind, TF_EVENT_JOB_SUCCEEDED);
    tf_finished_t r[] = {applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 1);
    assert_int_equal(fx->results[0].status, 0);
}

static void test_finish__the_attempt_ends_when_the_run_ended(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 5000;
    tf_ack_t acks[2] = {ack_ok(JOB_1, NULL), ack_fail(JOB_2, "http_503", 1)};
    acks[0].ended_ms = FAKE_T0_MS + 4100; /* a built-in run that ended before its ack */
    acks[1].ended_ms = FAKE_T0_MS + 4200;
    assert_int_equal(tf_uc_ack(&fx->env->uc, acks, 2, on_acked, fx), 0);
    tf_failed_job_t job = failed_job(&fx->fixed, 1);
    fake_deliver_failed_jobs(fx->store, 0, &job, 1);
    const fake_finish_call_t *c = &fx->store->finish[0];
    assert_int_equal(c->now_ms, FAKE_T0_MS + 5000);
    assert_int_equal(c->items[0].ended_at_ms, FAKE_T0_MS + 4100);
    assert_int_equal(c->items[1].ended_at_ms, FAKE_T0_MS + 4200);
    /* The retry's delay still counts from now, when it is decided. */
    assert_int_equal(c->items[1].to, TF_JOB_SCHEDULED);
    assert_int_equal(c->items[1].run_at_ms, FAKE_T0_MS + 5000 + 5000);
    tf_finished_t r[] = {applied(0, 0), applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 2);
    assert_int_equal(fx->calls, 1);
}

/* ---- failures ---- */

static void test_finish__failures_are_read_once_and_only_them(void **state) {
    fixture_t *fx = *state;
    tf_ack_t acks[4] = {ack_ok(JOB_1, NULL), ack_fail(JOB_2, "http_503", 1), ack_ok(JOB_3, NULL),
                        ack_fail(JOB_4, "http_503", 1)};
    acks[3].tenant_id = NULL;
    assert_int_equal(tf_uc_ack(&fx->env->uc, acks, 4, on_acked, fx), 0);
    assert_int_equal(fx->store->calls[FK_FAILED_JOBS], 1);
    const fake_failed_jobs_call_t *fj = &fx->store->failed_jobs[0];
    assert_int_equal(fj->n, 2);
    assert_string_equal(fj->ids[0], JOB_2);
    assert_string_equal(fj->ids[1], JOB_4);
    assert_string_equal(fj->tenants[0], TENANT);
    assert_null(fj->tenants[1]);
    assert_int_equal(fx->store->calls[FK_FINISH], 0);
    assert_int_equal(fx->calls, 0);

    tf_failed_job_t jobs[2] = {failed_job(&fx->fixed, 1), failed_job(&fx->fixed, 2)};
    fake_deliver_failed_jobs(fx->store, 0, jobs, 2);
    assert_int_equal(fx->store->calls[FK_FAILED_JOBS], 1);
    assert_int_equal(fx->store->calls[FK_FINISH], 1);
    const fake_finish_call_t *c = &fx->store->finish[0];
    assert_int_equal(c->n, 4); /* one transaction, in the acks' order */
    const char *const ids[4] = {JOB_1, JOB_2, JOB_3, JOB_4};
    const tf_job_state_t tos[4] = {TF_JOB_SUCCEEDED, TF_JOB_SCHEDULED, TF_JOB_SUCCEEDED,
                                   TF_JOB_SCHEDULED};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(c->items[i].job_id, ids[i]);
        assert_int_equal(c->items[i].to, tos[i]);
    }
    assert_string_equal(c->items[1].lease_token, "lease-fail");
    assert_string_equal(c->items[1].actor, "worker:w-2");
    tf_finished_t r[4] = {applied(0, 0), applied(0, 0), applied(0, 0), applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 4);
    assert_int_equal(fx->n, 4);
    assert_int_equal(fx->results[3].state, TF_JOB_SCHEDULED);
}

static void test_finish__retry_left_is_scheduled_at_now_plus_delay_without_event(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 50;
    const fake_finish_call_t *c = fail_once(fx, ack_fail(JOB_1, "http_503", 1), &fx->fixed, 1);
    const fake_finish_item_t *it = &c->items[0];
    assert_int_equal(it->to, TF_JOB_SCHEDULED);
    assert_int_equal(it->run_at_ms, FAKE_T0_MS + 50 + 5000);
    assert_int_equal(it->attempt_outcome, TF_ATTEMPT_FAILED);
    assert_string_equal(it->reason, "retry_scheduled");
    assert_int_equal(it->dependants, TF_DEPENDANTS_KEEP);
    assert_string_equal(it->error_type, "http_503");
    assert_string_equal(it->error_message, "it broke");
    assert_null(it->result);
    assert_int_equal(c->nevents, 0);
    assert_null(event_of(c, JOB_1));
    assert_int_equal(c->now_ms, FAKE_T0_MS + 50);

    tf_finished_t r[] = {applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 1);
    assert_int_equal(fx->results[0].status, 0);
    assert_int_equal(fx->results[0].state, TF_JOB_SCHEDULED);
}

static void test_finish__retry_delay_follows_the_policy_strategy(void **state) {
    fixture_t *fx = *state;
    tf_retry_policy_t exp, lin;
    tf_retry_policy_init_default(&exp); /* exponential from 1 s */
    tf_retry_policy_init_default(&lin);
    lin.strategy = TF_RETRY_STRATEGY_LINEAR;
    lin.base_delay_ms = 300;
    lin.max_attempts = 5;
    /* exponential after attempt 2: 1000 * 2 = 2000 */
    const fake_finish_call_t *c = fail_once(fx, ack_fail(JOB_1, "x", 1), &exp, 2);
    assert_int_equal(c->items[0].to, TF_JOB_SCHEDULED);
    assert_int_equal(c->items[0].run_at_ms, FAKE_T0_MS + 2000);
    tf_finished_t r[] = {applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 1);
    /* linear after attempt 3: 300 * 3 = 900 */
    c = fail_once(fx, ack_fail(JOB_1, "x", 1), &lin, 3);
    assert_int_equal(c->items[0].run_at_ms, FAKE_T0_MS + 900);
    fake_deliver_finished(fx->store, 0, r, 1);
    assert_int_equal(fx->calls, 2);
}

static void test_finish__exhausted_attempts_end_dead(void **state) {
    fixture_t *fx = *state;
    const fake_finish_call_t *c = fail_once(fx, ack_fail(JOB_1, "http_503", 1), &fx->fixed, 3);
    const fake_finish_item_t *it = &c->items[0];
    assert_int_equal(it->to, TF_JOB_DEAD);
    assert_string_equal(it->reason, "attempts_exhausted");
    assert_int_equal(it->dependants, TF_DEPENDANTS_CANCEL);
    assert_int_equal(it->attempt_outcome, TF_ATTEMPT_FAILED); /* a retryable error */
    assert_int_equal(c->nevents, 1);
    assert_event(c, JOB_1, "job.dead", TF_JOB_DEAD);

    tf_finished_t r[] = {applied(0, 4)};
    fake_deliver_finished(fx->store, 0, r, 1);
    assert_int_equal(fx->results[0].status, 0);
    assert_int_equal(fx->results[0].state, TF_JOB_DEAD);
    assert_int_equal(fx->results[0].cancelled, 4);
}

static void test_finish__non_retryable_flag_ends_failed(void **state) {
    fixture_t *fx = *state;
    /* Attempt 1 of 3, and also the last attempt: non-retryable wins. */
    const int attempts[] = {1, 3};
    for (int k = 0; k < 2; k++) {
        const fake_finish_call_t *c =
            fail_once(fx, ack_fail(JOB_2, "http_400", 0), &fx->fixed, attempts[k]);
        const fake_finish_item_t *it = &c->items[0];
        assert_int_equal(it->to, TF_JOB_FAILED);
        assert_string_equal(it->reason, "non_retryable_error");
        assert_int_equal(it->attempt_outcome, TF_ATTEMPT_FAILED_FATAL);
        assert_int_equal(it->dependants, TF_DEPENDANTS_CANCEL);
        assert_int_equal(c->nevents, 1);
        assert_event(c, JOB_2, "job.failed", TF_JOB_FAILED);
        tf_finished_t r[] = {applied(0, 1)};
        fake_deliver_finished(fx->store, 0, r, 1);
        assert_int_equal(fx->results[0].state, TF_JOB_FAILED);
        assert_int_equal(fx->results[0].cancelled, 1);
    }
}

static void test_finish__listed_error_type_ends_failed(void **state) {
    fixture_t *fx = *state;
    const fake_finish_call_t *c = fail_once(fx, ack_fail(JOB_3, "validation", 1), &fx->listed, 1);
    assert_int_equal(c->items[0].to, TF_JOB_FAILED);
    assert_string_equal(c->items[0].reason, "non_retryable_error");
    assert_int_equal(c->items[0].attempt_outcome, TF_ATTEMPT_FAILED_FATAL);
    assert_event(c, JOB_3, "job.failed", TF_JOB_FAILED);
    tf_finished_t r[] = {applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 1);

    /* Another error type under the same policy is retried. */
    c = fail_once(fx, ack_fail(JOB_3, "validation_x", 1), &fx->listed, 1);
    assert_int_equal(c->items[0].to, TF_JOB_SCHEDULED);
    assert_int_equal(c->nevents, 0);
    fake_deliver_finished(fx->store, 0, r, 1);
}

static void test_finish__timeout_and_lease_expired_have_their_attempt_outcomes(void **state) {
    fixture_t *fx = *state;
    const struct {
        const char *error_type;
        int retryable, attempt;
        tf_retry_policy_t *policy;
        tf_job_state_t to;
        tf_attempt_outcome_t outcome;
    } cases[] = {
        {"timeout", 1, 1, &fx->fixed, TF_JOB_SCHEDULED, TF_ATTEMPT_TIMED_OUT},
        {"lease_expired", 1, 1, &fx->fixed, TF_JOB_SCHEDULED, TF_ATTEMPT_LEASE_EXPIRED},
        {"timeout", 1, 3, &fx->fixed, TF_JOB_DEAD, TF_ATTEMPT_TIMED_OUT},
        {"lease_expired", 1, 1, &fx->listed, TF_JOB_FAILED, TF_ATTEMPT_LEASE_EXPIRED},
        {"timeout", 0, 1, &fx->fixed, TF_JOB_FAILED, TF_ATTEMPT_TIMED_OUT},
        {"timeouts", 1, 1, &fx->fixed, TF_JOB_SCHEDULED, TF_ATTEMPT_FAILED},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const fake_finish_call_t *c =
            fail_once(fx, ack_fail(JOB_1, cases[k].error_type, cases[k].retryable), cases[k].policy,
                      cases[k].attempt);
        if (c->items[0].to != cases[k].to || c->items[0].attempt_outcome != cases[k].outcome) {
            fail_msg("case %zu (%s): to %d outcome %d, expected to %d outcome %d", k,
                     cases[k].error_type, c->items[0].to, c->items[0].attempt_outcome, cases[k].to,
                     cases[k].outcome);
        }
        assert_string_equal(c->items[0].error_type, cases[k].error_type);
        tf_finished_t r[] = {applied(0, 0)};
        fake_deliver_finished(fx->store, 0, r, 1);
    }
}

static void test_finish__error_type_defaults_to_error(void **state) {
    fixture_t *fx = *state;
    tf_ack_t ack = ack_fail(JOB_1, NULL, 1);
    ack.error_message = NULL;
    const fake_finish_call_t *c = fail_once(fx, ack, &fx->fixed, 1);
    assert_string_equal(c->items[0].error_type, "error");
    assert_null(c->items[0].error_message);
    assert_int_equal(c->items[0].to, TF_JOB_SCHEDULED);
    tf_finished_t r[] = {applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 1);
}

/* ---- dependency release ---- */

static void test_finish__dependants_follow_the_state_each_job_ends_in(void **state) {
    fixture_t *fx = *state;
    tf_ack_t acks[4] = {ack_ok(JOB_1, NULL), ack_fail(JOB_2, "http_400", 0),
                        ack_fail(JOB_3, "http_503", 1), ack_fail(JOB_4, "http_503", 1)};
    assert_int_equal(tf_uc_ack(&fx->env->uc, acks, 4, on_acked, fx), 0);
    tf_failed_job_t jobs[3] = {failed_job(&fx->fixed, 1), failed_job(&fx->fixed, 3),
                               failed_job(&fx->fixed, 1)};
    fake_deliver_failed_jobs(fx->store, 0, jobs, 3);
    const fake_finish_call_t *c = &fx->store->finish[0];
    assert_int_equal(c->n, 4);
    const tf_job_state_t tos[4] = {TF_JOB_SUCCEEDED, TF_JOB_FAILED, TF_JOB_DEAD, TF_JOB_SCHEDULED};
    const tf_dependants_action_t deps[4] = {TF_DEPENDANTS_RELEASE, TF_DEPENDANTS_CANCEL,
                                            TF_DEPENDANTS_CANCEL, TF_DEPENDANTS_KEEP};
    for (int i = 0; i < 4; i++) {
        if (c->items[i].to != tos[i] || c->items[i].dependants != deps[i]) {
            fail_msg("item %d: to %d dependants %d, expected %d and %d", i, c->items[i].to,
                     c->items[i].dependants, tos[i], deps[i]);
        }
    }
    /* One event per terminal end, none for the retry. */
    assert_int_equal(c->nevents, 3);
    assert_event(c, JOB_1, "job.succeeded", TF_JOB_SUCCEEDED);
    assert_event(c, JOB_2, "job.failed", TF_JOB_FAILED);
    assert_event(c, JOB_3, "job.dead", TF_JOB_DEAD);
    assert_null(event_of(c, JOB_4));

    tf_finished_t r[4] = {applied(3, 0), applied(0, 2), applied(0, 5), applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 4);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->n, 4);
    const size_t released[4] = {3, 0, 0, 0}, cancelled[4] = {0, 2, 5, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fx->results[i].status, 0);
        assert_int_equal(fx->results[i].state, tos[i]);
        assert_int_equal(fx->results[i].released, released[i]);
        assert_int_equal(fx->results[i].cancelled, cancelled[i]);
    }
}

/* ---- results and errors ---- */

static void test_finish__results_map_applied_stale_and_not_found(void **state) {
    fixture_t *fx = *state;
    tf_ack_t acks[3] = {ack_ok(JOB_1, NULL), ack_ok(JOB_2, NULL), ack_ok(JOB_3, NULL)};
    assert_int_equal(tf_uc_ack(&fx->env->uc, acks, 3, on_acked, fx), 0);
    tf_finished_t r[3] = {applied(1, 2),
                          {.applied = 0, .exists = 1},  /* another lease holds it */
                          {.applied = 0, .exists = 0}}; /* no such job */
    fake_deliver_finished(fx->store, 0, r, 3);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->n, 3);
    assert_int_equal(fx->results[0].status, 0);
    assert_int_equal(fx->results[0].state, TF_JOB_SUCCEEDED);
    assert_int_equal(fx->results[0].released, 1);
    assert_int_equal(fx->results[0].cancelled, 2);
    assert_int_equal(fx->results[1].status, TF_ESTALE);
    assert_int_equal(fx->results[2].status, TF_ENOTFOUND);
}

static void test_finish__a_job_failed_jobs_does_not_find_is_still_written(void **state) {
    fixture_t *fx = *state;
    tf_ack_t acks[2] = {ack_fail(JOB_1, "http_503", 1), ack_fail(JOB_2, "http_503", 1)};
    acks[0].lease_token = "lease-gone";
    assert_int_equal(tf_uc_ack(&fx->env->uc, acks, 2, on_acked, fx), 0);
    tf_failed_job_t jobs[2] = {{.found = 0}, failed_job(&fx->fixed, 1)};
    fake_deliver_failed_jobs(fx->store, 0, jobs, 2);
    assert_int_equal(fx->store->calls[FK_FINISH], 1);
    const fake_finish_call_t *c = &fx->store->finish[0];
    assert_int_equal(c->n, 2);
    assert_string_equal(c->items[0].job_id, JOB_1);
    assert_string_equal(c->items[0].lease_token, "lease-gone");
    assert_string_equal(c->items[1].job_id, JOB_2);
    assert_int_equal(c->items[1].to, TF_JOB_SCHEDULED);
    tf_finished_t r[2] = {{.applied = 0, .exists = 0}, applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 2);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->results[0].status, TF_ENOTFOUND);
    assert_int_equal(fx->results[1].status, 0);
    assert_int_equal(fx->results[1].state, TF_JOB_SCHEDULED);
}

static void test_finish__policy_read_errors_answer_the_whole_call(void **state) {
    fixture_t *fx = *state;
    tf_ack_t acks[2] = {ack_ok(JOB_1, NULL), ack_fail(JOB_2, "x", 1)};

    assert_int_equal(tf_uc_ack(&fx->env->uc, acks, 2, on_acked, fx), 0);
    fake_deliver_failed_jobs(fx->store, TF_EUNAVAIL, NULL, 0);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, TF_EUNAVAIL);
    assert_int_equal(fx->n, 0);
    assert_true(fx->results_null);

    /* Fewer answers than failures asked for. */
    assert_int_equal(tf_uc_ack(&fx->env->uc, acks, 2, on_acked, fx), 0);
    fake_deliver_failed_jobs(fx->store, 0, NULL, 0);
    assert_int_equal(fx->calls, 2);
    assert_int_equal(fx->status, TF_EIO);
    assert_int_equal(fx->store->calls[FK_FINISH], 0);

    /* Refused at once: no callback, the call's code. */
    fx->store->rc[FK_FAILED_JOBS] = TF_EAGAIN;
    assert_int_equal(tf_uc_ack(&fx->env->uc, acks, 2, on_acked, fx), TF_EAGAIN);
    assert_int_equal(fx->calls, 2);
    assert_int_equal(fx->store->calls[FK_FINISH], 0);
}

static void test_finish__write_errors_answer_the_whole_call(void **state) {
    fixture_t *fx = *state;
    tf_ack_t ok = ack_ok(JOB_1, NULL), fail = ack_fail(JOB_2, "x", 1);

    assert_int_equal(tf_uc_ack(&fx->env->uc, &ok, 1, on_acked, fx), 0);
    fake_deliver_finished(fx->store, TF_EIO, NULL, 0);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, TF_EIO);
    assert_int_equal(fx->n, 0);

    assert_int_equal(tf_uc_ack(&fx->env->uc, &ok, 1, on_acked, fx), 0);
    tf_finished_t two[2] = {applied(0, 0), applied(0, 0)};
    fake_deliver_finished(fx->store, 0, two, 2); /* 2 results for 1 ack */
    assert_int_equal(fx->calls, 2);
    assert_int_equal(fx->status, TF_EIO);

    fx->store->rc[FK_FINISH] = TF_EAGAIN;
    assert_int_equal(tf_uc_ack(&fx->env->uc, &ok, 1, on_acked, fx), TF_EAGAIN);
    assert_int_equal(fx->calls, 2);
    /* After the policies were read the refusal reaches the callback. */
    assert_int_equal(tf_uc_ack(&fx->env->uc, &fail, 1, on_acked, fx), 0);
    tf_failed_job_t job = failed_job(&fx->fixed, 1);
    fake_deliver_failed_jobs(fx->store, 0, &job, 1);
    assert_int_equal(fx->calls, 3);
    assert_int_equal(fx->status, TF_EAGAIN);
    fx->store->rc[FK_FINISH] = 0;
}

static void test_finish__ack_count_must_be_1_to_1000(void **state) {
    fixture_t *fx = *state;
    tf_ack_t ack = ack_ok(JOB_1, NULL);
    assert_int_equal(tf_uc_ack(&fx->env->uc, &ack, 0, on_acked, fx), TF_EINVAL);
    assert_int_equal(tf_uc_ack(&fx->env->uc, &ack, TF_ACK_MAX + 1, on_acked, fx), TF_EINVAL);
    assert_int_equal(fake_calls_total(fx->store), 0);
    assert_int_equal(fx->calls, 0);
}

static void test_finish__ack_strings_are_copied(void **state) {
    fixture_t *fx = *state;
    char tenant[TF_ID_LEN] = TENANT, job[TF_ID_LEN] = JOB_1, token[16] = "lease-1";
    char worker[16] = "w-9", type[16] = "http_503", message[16] = "down";
    tf_ack_t ack = {.tenant_id = tenant,
                    .job_id = job,
                    .lease_token = token,
                    .worker_id = worker,
                    .ok = 0,
                    .error_type = type,
                    .error_message = message,
                    .retryable = 1};
    assert_int_equal(tf_uc_ack(&fx->env->uc, &ack, 1, on_acked, fx), 0);
    /* The strings are borrowed for the call only. */
    memset(tenant, 'x', sizeof(tenant) - 1);
    memset(job, 'y', sizeof(job) - 1);
    strcpy(token, "zzz");
    strcpy(worker, "zzz");
    strcpy(type, "zzz");
    strcpy(message, "zzz");
    tf_failed_job_t fj = failed_job(&fx->fixed, 1);
    fake_deliver_failed_jobs(fx->store, 0, &fj, 1);
    const fake_finish_item_t *it = &fx->store->finish[0].items[0];
    assert_string_equal(it->tenant_id, TENANT);
    assert_string_equal(it->job_id, JOB_1);
    assert_string_equal(it->lease_token, "lease-1");
    assert_string_equal(it->worker, "w-9");
    assert_string_equal(it->actor, "worker:w-9");
    assert_string_equal(it->error_type, "http_503");
    assert_string_equal(it->error_message, "down");
    tf_finished_t r[] = {applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 1);
}

/* ---- rescue ---- */

static void test_finish__rescue_fails_expired_attempts_by_their_policy(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 7;
    assert_int_equal(tf_uc_rescue(&fx->env->uc, 50, on_count, fx), 0);
    assert_int_equal(fx->store->calls[FK_EXPIRED], 1);
    assert_int_equal(fx->store->expired[0].limit, 50);
    assert_int_equal(fx->store->expired[0].now_ms, FAKE_T0_MS + 7);

    tf_expired_t list[3] = {
        {.tenant_id = TENANT,
         .job_id = JOB_1,
         .lease_token = "l1",
         .worker = "w-1",
         .timed_out = 1,
         .job = failed_job(&fx->fixed, 1)},
        {.tenant_id = TENANT,
         .job_id = JOB_2,
         .lease_token = "l2",
         .worker = "w-2",
         .timed_out = 0,
         .job = failed_job(&fx->fixed, 3)},
        {.tenant_id = TENANT,
         .job_id = JOB_3,
         .lease_token = "l3",
         .worker = "w-3",
         .timed_out = 0,
         .job = failed_job(&fx->listed, 1)},
    };
    fake_deliver_expired(fx->store, 0, list, 3);
    assert_int_equal(fx->count_calls, 0);
    assert_int_equal(fx->store->calls[FK_FAILED_JOBS], 0); /* the policies came along */
    assert_int_equal(fx->store->calls[FK_FINISH], 1);
    const fake_finish_call_t *c = &fx->store->finish[0];
    assert_int_equal(c->n, 3);
    assert_int_equal(c->now_ms, FAKE_T0_MS + 7);
    const char *const types[3] = {"timeout", "lease_expired", "lease_expired"};
    const char *const tokens[3] = {"l1", "l2", "l3"};
    const char *const workers[3] = {"w-1", "w-2", "w-3"};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(c->items[i].error_type, types[i]);
        assert_string_equal(c->items[i].actor, "system");
        assert_string_equal(c->items[i].lease_token, tokens[i]);
        assert_string_equal(c->items[i].worker, workers[i]);
        assert_string_equal(c->items[i].tenant_id, TENANT);
        assert_non_null(c->items[i].error_message);
    }
    assert_int_equal(c->items[0].to, TF_JOB_SCHEDULED);
    assert_int_equal(c->items[0].run_at_ms, FAKE_T0_MS + 7 + 5000);
    assert_int_equal(c->items[0].attempt_outcome, TF_ATTEMPT_TIMED_OUT);
    assert_int_equal(c->items[0].dependants, TF_DEPENDANTS_KEEP);
    assert_int_equal(c->items[1].to, TF_JOB_DEAD);
    assert_int_equal(c->items[1].attempt_outcome, TF_ATTEMPT_LEASE_EXPIRED);
    assert_string_equal(c->items[1].reason, "attempts_exhausted");
    assert_int_equal(c->items[1].dependants, TF_DEPENDANTS_CANCEL);
    assert_int_equal(c->items[2].to, TF_JOB_FAILED);
    assert_int_equal(c->items[2].attempt_outcome, TF_ATTEMPT_LEASE_EXPIRED);
    assert_string_equal(c->items[2].reason, "non_retryable_error");
    assert_int_equal(c->nevents, 2);
    assert_event(c, JOB_2, "job.dead", TF_JOB_DEAD);
    assert_event(c, JOB_3, "job.failed", TF_JOB_FAILED);
    assert_null(event_of(c, JOB_1));

    tf_finished_t r[3] = {applied(0, 0), {.applied = 0, .exists = 1}, applied(0, 0)};
    fake_deliver_finished(fx->store, 0, r, 3);
    assert_int_equal(fx->count_calls, 1);
    assert_int_equal(fx->count_status, 0);
    assert_int_equal(fx->count, 2);
}

static void test_finish__rescue_with_nothing_expired_writes_nothing(void **state) {
    fixture_t *fx = *state;
    assert_int_equal(tf_uc_rescue(&fx->env->uc, 10, on_count, fx), 0);
    fake_deliver_expired(fx->store, 0, NULL, 0);
    assert_int_equal(fx->count_calls, 1);
    assert_int_equal(fx->count_status, 0);
    assert_int_equal(fx->count, 0);
    assert_int_equal(fx->store->calls[FK_FINISH], 0);
}

static void test_finish__rescue_errors_answer_zero(void **state) {
    fixture_t *fx = *state;
    tf_expired_t x = {.tenant_id = TENANT,
                      .job_id = JOB_1,
                      .lease_token = "l1",
                      .worker = "w-1",
                      .timed_out = 1,
                      .job = failed_job(&fx->fixed, 1)};

    assert_int_equal(tf_uc_rescue(&fx->env->uc, 10, on_count, fx), 0);
    fake_deliver_expired(fx->store, TF_EUNAVAIL, NULL, 0);
    assert_int_equal(fx->count_calls, 1);
    assert_int_equal(fx->count_status, TF_EUNAVAIL);
    assert_int_equal(fx->count, 0);

    assert_int_equal(tf_uc_rescue(&fx->env->uc, 10, on_count, fx), 0);
    fake_deliver_expired(fx->store, 0, &x, 1);
    fake_deliver_finished(fx->store, TF_EIO, NULL, 0);
    assert_int_equal(fx->count_calls, 2);
    assert_int_equal(fx->count_status, TF_EIO);
    assert_int_equal(fx->count, 0);

    fx->store->rc[FK_FINISH] = TF_EAGAIN;
    assert_int_equal(tf_uc_rescue(&fx->env->uc, 10, on_count, fx), 0);
    fake_deliver_expired(fx->store, 0, &x, 1);
    assert_int_equal(fx->count_calls, 3);
    assert_int_equal(fx->count_status, TF_EAGAIN);
    assert_int_equal(fx->count, 0);
    fx->store->rc[FK_FINISH] = 0;

    fx->store->rc[FK_EXPIRED] = TF_ESHUTDOWN;
    assert_int_equal(tf_uc_rescue(&fx->env->uc, 10, on_count, fx), TF_ESHUTDOWN);
    assert_int_equal(fx->count_calls, 3);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_finish__success_ends_succeeded_and_releases_dependants),
        T(test_finish__success_without_result_or_worker),
        T(test_finish__the_attempt_ends_when_the_run_ended),
        T(test_finish__failures_are_read_once_and_only_them),
        T(test_finish__retry_left_is_scheduled_at_now_plus_delay_without_event),
        T(test_finish__retry_delay_follows_the_policy_strategy),
        T(test_finish__exhausted_attempts_end_dead),
        T(test_finish__non_retryable_flag_ends_failed),
        T(test_finish__listed_error_type_ends_failed),
        T(test_finish__timeout_and_lease_expired_have_their_attempt_outcomes),
        T(test_finish__error_type_defaults_to_error),
        T(test_finish__dependants_follow_the_state_each_job_ends_in),
        T(test_finish__results_map_applied_stale_and_not_found),
        T(test_finish__a_job_failed_jobs_does_not_find_is_still_written),
        T(test_finish__policy_read_errors_answer_the_whole_call),
        T(test_finish__write_errors_answer_the_whole_call),
        T(test_finish__ack_count_must_be_1_to_1000),
        T(test_finish__ack_strings_are_copied),
        T(test_finish__rescue_fails_expired_attempts_by_their_policy),
        T(test_finish__rescue_with_nothing_expired_writes_nothing),
        T(test_finish__rescue_errors_answer_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
