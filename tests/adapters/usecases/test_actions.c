/*
 * test_actions.c - tests for adapters/usecases/actions.c on fake ports
 * (fake_store.h): the state sets and target state each action passes to
 * the store (cancel {PENDING, SCHEDULED, RUNNING} -> CANCELLED, retry
 * {FAILED, DEAD, CANCELLED} -> PENDING, requeue {DEAD} -> PENDING, written
 * out here rather than read from the engine), how the store's result
 * becomes DONE / REFUSED / NOT_FOUND, errors, and tf_uc_action_sources().
 * One cmocka process; each test has its own fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/actions.h"
#include "engine/error.h"
#include "fake_store.h"

#define TENANT "0190a0b0-0000-7000-8000-00000000000a"
#define JOB "0190a0b0-0000-7000-8000-000000000101"

#define BIT(s) TF_JOB_STATE_BIT(TF_JOB_##s)
#define CANCEL_FROM (BIT(PENDING) | BIT(SCHEDULED) | BIT(RUNNING))
#define RETRY_FROM (BIT(FAILED) | BIT(DEAD) | BIT(CANCELLED))

typedef struct {
    fake_env_t *env;
    fake_store_t *store;
    int calls;
    int status;
    int has_r;
    tf_uc_action_outcome_t outcome;
    const tf_job_t *job;
    tf_job_state_t state;
    /* requeue */
    int jobs_calls;
    int jobs_status;
    const tf_job_t *jobs;
    size_t njobs;
} fixture_t;

typedef int (*action_fn)(tf_uc_t *uc, const char *tenant_id, const char *job_id, const char *actor,
                         tf_uc_action_cb cb, void *arg);

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->env = fake_env_new();
    fx->store = &fx->env->store;
    fx->status = fx->jobs_status = 12345;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    fake_store_assert_idle(fx->store);
    fake_env_free(fx->env);
    free(fx);
    return 0;
}

static void on_action(void *arg, int status, const tf_uc_action_t *r) {
    fixture_t *fx = arg;
    fx->calls++;
    fx->status = status;
    fx->has_r = r != NULL;
    if (r != NULL) {
        fx->outcome = r->outcome;
        fx->job = r->job;
        fx->state = r->state;
    }
}

static void on_jobs(void *arg, int status, const tf_job_t *jobs, size_t n) {
    fixture_t *fx = arg;
    fx->jobs_calls++;
    fx->jobs_status = status;
    fx->jobs = jobs;
    fx->njobs = n;
}

static void test_actions__cancel_from_pending_scheduled_running_to_cancelled(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 9;
    assert_int_equal(tf_uc_cancel(&fx->env->uc, TENANT, JOB, "key:k1", on_action, fx), 0);
    assert_int_equal(fx->store->calls[FK_CANCEL], 1);
    assert_int_equal(fake_calls_except(fx->store, FK_CANCEL), 0);
    const fake_action_call_t *c = &fx->store->cancel[0];
    assert_int_equal(c->from, CANCEL_FROM);
    assert_int_equal(c->to, TF_JOB_CANCELLED);
    assert_string_equal(c->tenant_id, TENANT);
    assert_string_equal(c->job_id, JOB);
    assert_string_equal(c->actor, "key:k1");
    assert_int_equal(c->now_ms, FAKE_T0_MS + 9);
    assert_int_equal(fx->calls, 0);

    tf_job_t after = {.id = JOB, .tenant_id = TENANT, .state = TF_JOB_CANCELLED};
    tf_action_result_t r = {.found = 1, .before = TF_JOB_RUNNING, .job = &after};
    fake_deliver_action(fx->store, FK_CANCEL, 0, &r);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->outcome, TF_UC_ACTION_DONE);
    assert_ptr_equal(fx->job, &after);
}

/* The store's three answers, for cancel or retry. */
static void check_outcomes(fixture_t *fx, action_fn fn, fk_op_t op) {
    int calls = fx->calls;
    tf_job_t after = {.id = JOB, .tenant_id = TENANT, .state = TF_JOB_PENDING};
    tf_action_result_t done = {.found = 1, .before = TF_JOB_DEAD, .job = &after};
    assert_int_equal(fn(&fx->env->uc, TENANT, JOB, "admin", on_action, fx), 0);
    fake_deliver_action(fx->store, op, 0, &done);
    assert_int_equal(fx->calls, calls + 1);
    assert_int_equal(fx->outcome, TF_UC_ACTION_DONE);
    assert_ptr_equal(fx->job, &after);

    tf_action_result_t refused = {.found = 1, .before = TF_JOB_SUCCEEDED, .job = NULL};
    assert_int_equal(fn(&fx->env->uc, TENANT, JOB, "admin", on_action, fx), 0);
    fake_deliver_action(fx->store, op, 0, &refused);
    assert_int_equal(fx->calls, calls + 2);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->outcome, TF_UC_ACTION_REFUSED);
    assert_int_equal(fx->state, TF_JOB_SUCCEEDED);
    assert_null(fx->job);

    tf_action_result_t missing = {.found = 0};
    assert_int_equal(fn(&fx->env->uc, TENANT, JOB, "admin", on_action, fx), 0);
    fake_deliver_action(fx->store, op, 0, &missing);
    assert_int_equal(fx->calls, calls + 3);
    assert_int_equal(fx->status, 0);
    assert_true(fx->has_r);
    assert_int_equal(fx->outcome, TF_UC_ACTION_NOT_FOUND);
    assert_null(fx->job);

    assert_int_equal(fn(&fx->env->uc, TENANT, JOB, "admin", on_action, fx), 0);
    fake_deliver_action(fx->store, op, TF_EUNAVAIL, NULL);
    assert_int_equal(fx->calls, calls + 4);
    assert_int_equal(fx->status, TF_EUNAVAIL);
    assert_false(fx->has_r);

    fx->store->rc[op] = TF_EAGAIN;
    assert_int_equal(fn(&fx->env->uc, TENANT, JOB, "admin", on_action, fx), TF_EAGAIN);
    assert_int_equal(fx->calls, calls + 4); /* refused at once: no callback */
    fx->store->rc[op] = 0;
}

static void test_actions__cancel_answers_done_refused_or_not_found(void **state) {
    fixture_t *fx = *state;
    check_outcomes(fx, tf_uc_cancel, FK_CANCEL);
    assert_int_equal(fx->store->calls[FK_RETRY], 0);
    for (int i = 0; i < fx->store->calls[FK_CANCEL]; i++) {
        assert_int_equal(fx->store->cancel[i].from, CANCEL_FROM);
        assert_int_equal(fx->store->cancel[i].to, TF_JOB_CANCELLED);
    }
}

static void test_actions__retry_from_failed_dead_cancelled_to_pending(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 77;
    assert_int_equal(tf_uc_retry(&fx->env->uc, TENANT, JOB, "admin", on_action, fx), 0);
    assert_int_equal(fx->store->calls[FK_RETRY], 1);
    assert_int_equal(fake_calls_except(fx->store, FK_RETRY), 0);
    const fake_action_call_t *c = &fx->store->retry[0];
    assert_int_equal(c->from, RETRY_FROM);
    assert_int_equal(c->to, TF_JOB_PENDING);
    assert_string_equal(c->tenant_id, TENANT);
    assert_string_equal(c->job_id, JOB);
    assert_string_equal(c->actor, "admin");
    assert_int_equal(c->now_ms, FAKE_T0_MS + 77);
    tf_action_result_t missing = {.found = 0};
    fake_deliver_action(fx->store, FK_RETRY, 0, &missing);
    assert_int_equal(fx->outcome, TF_UC_ACTION_NOT_FOUND);

    check_outcomes(fx, tf_uc_retry, FK_RETRY);
    assert_int_equal(fx->store->calls[FK_CANCEL], 0);
}

static void test_actions__requeue_takes_dead_jobs_only(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 5;
    const char *ids[2] = {"0190a0b0-0000-7000-8000-000000000201",
                          "0190a0b0-0000-7000-8000-000000000202"};
    assert_int_equal(tf_uc_requeue(&fx->env->uc, TENANT, ids, 2, NULL, 0, "key:k1", on_jobs, fx),
                     0);
    assert_int_equal(fx->store->calls[FK_REQUEUE], 1);
    const fake_requeue_call_t *c = &fx->store->requeue[0];
    assert_int_equal(c->from, BIT(DEAD));
    assert_int_equal(c->to, TF_JOB_PENDING);
    assert_string_equal(c->tenant_id, TENANT);
    assert_int_equal(c->nids, 2);
    assert_string_equal(c->ids[0], ids[0]);
    assert_string_equal(c->ids[1], ids[1]);
    assert_null(c->queue);
    assert_string_equal(c->actor, "key:k1");
    assert_int_equal(c->now_ms, FAKE_T0_MS + 5);
    assert_int_equal(fx->jobs_calls, 0);
    tf_job_t requeued[1] = {
        {.id = "0190a0b0-0000-7000-8000-000000000201", .state = TF_JOB_PENDING}};
    fake_deliver_jobs(fx->store, FK_REQUEUE, 0, requeued, 1);
    assert_int_equal(fx->jobs_calls, 1);
    assert_int_equal(fx->jobs_status, 0);
    assert_ptr_equal(fx->jobs, requeued);
    assert_int_equal(fx->njobs, 1);

    /* The oldest dead jobs of a queue. */
    assert_int_equal(
        tf_uc_requeue(&fx->env->uc, TENANT, NULL, 0, "emails", 25, "admin", on_jobs, fx), 0);
    c = &fx->store->requeue[1];
    assert_int_equal(c->from, BIT(DEAD));
    assert_int_equal(c->to, TF_JOB_PENDING);
    assert_string_equal(c->queue, "emails");
    assert_int_equal(c->limit, 25);
    assert_int_equal(c->nids, 0);
    assert_null(c->ids);
    fake_deliver_jobs(fx->store, FK_REQUEUE, TF_EIO, NULL, 0);
    assert_int_equal(fx->jobs_calls, 2);
    assert_int_equal(fx->jobs_status, TF_EIO);
    assert_int_equal(fake_calls_except(fx->store, FK_REQUEUE), 0);
}

static void test_actions__action_sources_intersect_the_engine(void **state) {
    fixture_t *fx = *state;
    tf_job_state_t to = TF_JOB_RUNNING;
    assert_int_equal(tf_uc_action_sources(TF_JOB_EV_CANCEL, ~(tf_job_state_set_t)0, &to),
                     CANCEL_FROM);
    assert_int_equal(to, TF_JOB_CANCELLED);
    assert_int_equal(tf_uc_action_sources(TF_JOB_EV_RETRY, BIT(DEAD) | BIT(RUNNING), &to),
                     BIT(DEAD));
    assert_int_equal(to, TF_JOB_PENDING);
    assert_int_equal(tf_uc_action_sources(TF_JOB_EV_CLAIM, ~(tf_job_state_set_t)0, &to),
                     BIT(PENDING));
    assert_int_equal(to, TF_JOB_RUNNING);
    /* Nothing left: no target state. */
    to = TF_JOB_PENDING;
    assert_int_equal(tf_uc_action_sources(TF_JOB_EV_RETRY, BIT(RUNNING), &to), 0);
    assert_int_equal(to, TF_JOB_STATE_COUNT);
    assert_int_equal(fake_calls_total(fx->store), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_actions__cancel_from_pending_scheduled_running_to_cancelled),
        T(test_actions__cancel_answers_done_refused_or_not_found),
        T(test_actions__retry_from_failed_dead_cancelled_to_pending),
        T(test_actions__requeue_takes_dead_jobs_only),
        T(test_actions__action_sources_intersect_the_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
