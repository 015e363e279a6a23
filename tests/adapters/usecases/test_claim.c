/*
 * test_claim.c - tests for adapters/usecases/claim.c on fake ports
 * (fake_store.h): a tenant's own claim (one store->claim with its tenant,
 * quota max_jobs and no virtual times, no candidates call); a claim across
 * tenants (candidates, then one claim with only the tenants the fair-share
 * planner served, quotas within max_jobs, the planner's virtual times and
 * clock); nothing ready; store errors; request validation; now_ms from the
 * clock port.  Expected plans are worked out by hand in the comments.
 * One cmocka process; each test has its own fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/claim.h"
#include "engine/error.h"
#include "fake_store.h"

#define TENANT_1 "0190a0b0-0000-7000-8000-000000000001"
#define TENANT_2 "0190a0b0-0000-7000-8000-000000000002"
#define TENANT_3 "0190a0b0-0000-7000-8000-000000000003"

typedef struct {
    fake_env_t *env;
    fake_store_t *store;
    int calls;
    int status;
    const tf_claimed_job_t *jobs;
    size_t n;
} fixture_t;

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->env = fake_env_new();
    fx->store = &fx->env->store;
    fx->status = 12345;
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

static void on_claimed(void *arg, int status, const tf_claimed_job_t *jobs, size_t n) {
    fixture_t *fx = arg;
    fx->calls++;
    fx->status = status;
    fx->jobs = jobs;
    fx->n = n;
}

static tf_uc_claim_t request(const char *tenant_id, int max_jobs) {
    return (tf_uc_claim_t){.queue = "emails",
                           .builtin = 0,
                           .tenant_id = tenant_id,
                           .worker_id = "worker-7",
                           .max_jobs = max_jobs,
                           .lease_ms = 30000};
}

static int quota_of(const fake_claim_call_t *c, const char *tenant) {
    for (size_t i = 0; i < c->ntenants; i++) {
        if (strcmp(c->tenants[i], tenant) == 0) {
            return c->quotas[i];
        }
    }
    return -1;
}

static void test_claim__own_tenant_claims_directly_with_max_jobs(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 321;
    tf_uc_claim_t req = request(TENANT_2, 7);
    req.builtin = 1;
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    assert_int_equal(fx->store->calls[FK_CANDIDATES], 0);
    assert_int_equal(fx->store->calls[FK_CLAIM], 1);
    assert_int_equal(fake_calls_except(fx->store, FK_CLAIM), 0);
    const fake_claim_call_t *c = &fx->store->claim[0];
    assert_string_equal(c->queue, "emails");
    assert_int_equal(c->builtin, 1);
    assert_string_equal(c->worker_id, "worker-7");
    assert_int_equal(c->lease_ms, 30000);
    assert_int_equal(c->now_ms, FAKE_T0_MS + 321);
    assert_int_equal(c->ntenants, 1);
    assert_string_equal(c->tenants[0], TENANT_2);
    assert_int_equal(c->quotas[0], 7);
    assert_false(c->has_vtimes);
    assert_int_equal(fx->calls, 0); /* not before the store answered */

    tf_claimed_job_t jobs[2] = {{.id = "a", .tenant_id = TENANT_2, .attempt = 1},
                                {.id = "b", .tenant_id = TENANT_2, .attempt = 2}};
    fake_deliver_claimed(fx->store, 0, jobs, 2);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, 0);
    assert_ptr_equal(fx->jobs, jobs);
    assert_int_equal(fx->n, 2);
}

static void test_claim__across_tenants_claims_the_planned_shares(void **state) {
    fixture_t *fx = *state;
    tf_uc_claim_t req = request(NULL, 6);
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    assert_int_equal(fx->store->calls[FK_CANDIDATES], 1);
    assert_string_equal(fx->store->candidates[0].queue, "emails");
    assert_int_equal(fx->store->candidates[0].builtin, 0);
    assert_int_equal(fx->store->calls[FK_CLAIM], 0);

    /* V = 4.  Tenant 1 (weight 1) and tenant 3 (weight 2) start at 4 (their
     * vtimes are behind V); tenant 2 has nothing ready.  Finish tags:
     * t3 4.5, 5, 5.5, 6, ...; t1 5, 6, 7: the six smallest give t3 four
     * jobs and t1 two; new vtimes 4 + 4/2 = 6 and 4 + 2/1 = 6; new V = 4. */
    fx->env->clock.now = FAKE_T0_MS + 999;
    tf_candidate_t cands[3] = {
        {.tenant_id = TENANT_1, .weight = 1, .backlog = 5, .vtime = 0.0},
        {.tenant_id = TENANT_2, .weight = 1, .backlog = 0, .vtime = 0.0},
        {.tenant_id = TENANT_3, .weight = 2, .backlog = 100, .vtime = 1.0},
    };
    fake_deliver_candidates(fx->store, 0, cands, 3, 4.0);
    assert_int_equal(fx->calls, 0);
    assert_int_equal(fx->store->calls[FK_CLAIM], 1);
    const fake_claim_call_t *c = &fx->store->claim[0];
    assert_string_equal(c->queue, "emails");
    assert_string_equal(c->worker_id, "worker-7");
    assert_int_equal(c->lease_ms, 30000);
    assert_int_equal(c->now_ms, FAKE_T0_MS + 999);
    assert_int_equal(c->ntenants, 2); /* tenant 2 was not served */
    assert_int_equal(quota_of(c, TENANT_2), -1);
    assert_int_equal(quota_of(c, TENANT_1), 2);
    assert_int_equal(quota_of(c, TENANT_3), 4);
    assert_true(c->has_vtimes);
    for (size_t i = 0; i < c->ntenants; i++) {
        fake_assert_double_equal(c->vtimes[i], 6.0);
    }
    fake_assert_double_equal(c->vclock, 4.0);

    fake_deliver_claimed(fx->store, 0, NULL, 0);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->n, 0);

    /* V = 1, both tenants ahead of it: tenant 1 starts at 3, tenant 3 at 5,
     * each has 2 ready (tags 4, 5 and 6, 7), a budget of 10 takes all four;
     * new vtimes 5 and 7, and V moves up to the smallest start, 3. */
    req = request(NULL, 10);
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    tf_candidate_t ahead[2] = {
        {.tenant_id = TENANT_1, .weight = 1, .backlog = 2, .vtime = 3.0},
        {.tenant_id = TENANT_3, .weight = 1, .backlog = 2, .vtime = 5.0},
    };
    fake_deliver_candidates(fx->store, 0, ahead, 2, 1.0);
    c = &fx->store->claim[1];
    assert_int_equal(c->ntenants, 2);
    assert_string_equal(c->tenants[0], TENANT_1);
    assert_string_equal(c->tenants[1], TENANT_3);
    assert_int_equal(c->quotas[0], 2);
    assert_int_equal(c->quotas[1], 2);
    fake_assert_double_equal(c->vtimes[0], 5.0);
    fake_assert_double_equal(c->vtimes[1], 7.0);
    fake_assert_double_equal(c->vclock, 3.0);
    fake_deliver_claimed(fx->store, 0, NULL, 0);
    assert_int_equal(fx->calls, 2);
}

static void test_claim__a_tenant_alone_is_not_charged_virtual_time(void **state) {
    fixture_t *fx = *state;
    tf_uc_claim_t req = request(NULL, 10);
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    /* Tenant 2 is a candidate with nothing ready: tenant 1 is alone. */
    tf_candidate_t cands[2] = {
        {.tenant_id = TENANT_1, .weight = 1, .backlog = 50, .vtime = 2.0},
        {.tenant_id = TENANT_2, .weight = 1, .backlog = 0, .vtime = 9.0},
    };
    fake_deliver_candidates(fx->store, 0, cands, 2, 1.0);
    const fake_claim_call_t *c = &fx->store->claim[0];
    assert_int_equal(c->ntenants, 1);
    assert_string_equal(c->tenants[0], TENANT_1);
    assert_int_equal(c->quotas[0], 10);
    assert_false(c->has_vtimes);
    fake_deliver_claimed(fx->store, 0, NULL, 0);

    /* Once tenant 2 has work too, both are charged again. */
    req = request(NULL, 10);
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    cands[1].backlog = 5;
    fake_deliver_candidates(fx->store, 0, cands, 2, 1.0);
    c = &fx->store->claim[1];
    assert_int_equal(c->ntenants, 2);
    assert_true(c->has_vtimes);
    fake_deliver_claimed(fx->store, 0, NULL, 0);
    assert_int_equal(fx->calls, 2);
}

static void test_claim__quotas_never_exceed_max_jobs(void **state) {
    fixture_t *fx = *state;
    char ids[40][TF_ID_LEN];
    tf_candidate_t cands[40];
    for (int i = 0; i < 40; i++) {
        snprintf(ids[i], sizeof(ids[i]), "0190a0b0-0000-7000-8000-%012d", i + 1);
        cands[i] = (tf_candidate_t){
            .tenant_id = ids[i], .weight = 1 + i % 3, .backlog = 1 + i % 4, .vtime = 0.5 * (i % 5)};
    }
    const int budgets[] = {1, 5, 33, 1000};
    for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
        tf_uc_claim_t req = request(NULL, budgets[b]);
        assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
        fake_deliver_candidates(fx->store, 0, cands, 40, 0.0);
        const fake_claim_call_t *c = &fx->store->claim[b];
        int sum = 0;
        for (size_t i = 0; i < c->ntenants; i++) {
            assert_true(c->quotas[i] > 0); /* only served tenants */
            sum += c->quotas[i];
        }
        if (sum > budgets[b] || sum < 1) {
            fail_msg("max_jobs %d: quotas sum to %d", budgets[b], sum);
        }
        assert_true(c->ntenants <= 32); /* the planner's default K */
        assert_true(c->has_vtimes);
        fake_deliver_claimed(fx->store, 0, NULL, 0);
    }
    /* Backlogs sum to 100 over 40 tenants, K = 32 of them compete: a
     * budget of 1000 takes every competitor's whole backlog. */
    const fake_claim_call_t *last = &fx->store->claim[3];
    int sum = 0;
    for (size_t i = 0; i < last->ntenants; i++) {
        sum += last->quotas[i];
    }
    assert_int_equal(last->ntenants, 32);
    assert_true(sum < 100 && sum >= 32);
    assert_int_equal(fx->calls, 4);
}

static void test_claim__nothing_ready_answers_no_jobs_without_claiming(void **state) {
    fixture_t *fx = *state;
    tf_uc_claim_t req = request(NULL, 10);
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    fake_deliver_candidates(fx->store, 0, NULL, 0, 3.0);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->n, 0);
    assert_int_equal(fx->store->calls[FK_CLAIM], 0);
}

static void test_claim__store_errors_reach_the_callback(void **state) {
    fixture_t *fx = *state;
    tf_uc_claim_t req = request(NULL, 10);
    tf_candidate_t cand = {.tenant_id = TENANT_1, .weight = 1, .backlog = 3};

    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    fake_deliver_candidates(fx->store, TF_EUNAVAIL, NULL, 0, 0.0);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, TF_EUNAVAIL);
    assert_int_equal(fx->store->calls[FK_CLAIM], 0);

    /* The claim refused at once after planning: the callback says so. */
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    fx->store->rc[FK_CLAIM] = TF_EAGAIN;
    fake_deliver_candidates(fx->store, 0, &cand, 1, 0.0);
    assert_int_equal(fx->calls, 2);
    assert_int_equal(fx->status, TF_EAGAIN);
    assert_int_equal(fx->store->calls[FK_CLAIM], 1);
    fx->store->rc[FK_CLAIM] = 0;

    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    fake_deliver_candidates(fx->store, 0, &cand, 1, 0.0);
    fake_deliver_claimed(fx->store, TF_ETIMEDOUT, NULL, 0);
    assert_int_equal(fx->calls, 3);
    assert_int_equal(fx->status, TF_ETIMEDOUT);

    /* A candidate whose id is not a UUID cannot be planned. */
    tf_candidate_t bad = {.tenant_id = "not-a-uuid", .weight = 1, .backlog = 3};
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    fake_deliver_candidates(fx->store, 0, &bad, 1, 0.0);
    assert_int_equal(fx->calls, 4);
    assert_int_equal(fx->status, TF_EINVAL);
    assert_int_equal(fx->store->calls[FK_CLAIM], 2);
}

static void test_claim__refused_at_once_never_calls_back(void **state) {
    fixture_t *fx = *state;
    tf_uc_claim_t own = request(TENANT_1, 10), all = request(NULL, 10);
    fx->store->rc[FK_CLAIM] = TF_EAGAIN;
    assert_int_equal(tf_uc_claim(&fx->env->uc, &own, on_claimed, fx), TF_EAGAIN);
    fx->store->rc[FK_CANDIDATES] = TF_ESHUTDOWN;
    assert_int_equal(tf_uc_claim(&fx->env->uc, &all, on_claimed, fx), TF_ESHUTDOWN);
    assert_int_equal(fx->calls, 0);
    assert_int_equal(fx->store->calls[FK_CLAIM], 1);
    assert_int_equal(fx->store->calls[FK_CANDIDATES], 1);
}

static void test_claim__invalid_requests_are_refused_without_a_store_call(void **state) {
    fixture_t *fx = *state;
    tf_uc_claim_t bad[8];
    for (int i = 0; i < 8; i++) {
        bad[i] = request(i % 2 ? TENANT_1 : NULL, 10);
    }
    bad[0].max_jobs = 0;
    bad[1].max_jobs = TF_CLAIM_MAX_JOBS + 1; /* 1001 */
    bad[2].lease_ms = TF_LEASE_MIN_MS - 1;   /* 999 */
    bad[3].lease_ms = TF_LEASE_MAX_MS + 1;
    bad[4].queue = NULL;
    bad[5].worker_id = NULL;
    bad[6].max_jobs = -5;
    bad[7].lease_ms = 0;
    for (int i = 0; i < 8; i++) {
        if (tf_uc_claim(&fx->env->uc, &bad[i], on_claimed, fx) != TF_EINVAL) {
            fail_msg("request %d should be refused with TF_EINVAL", i);
        }
    }
    assert_int_equal(fake_calls_total(fx->store), 0);
    assert_int_equal(fx->calls, 0);

    /* The bounds themselves are valid. */
    tf_uc_claim_t edge[3] = {request(TENANT_1, TF_CLAIM_MAX_JOBS), request(TENANT_1, 1),
                             request(TENANT_1, 1)};
    edge[1].lease_ms = TF_LEASE_MIN_MS;
    edge[2].lease_ms = TF_LEASE_MAX_MS;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tf_uc_claim(&fx->env->uc, &edge[i], on_claimed, fx), 0);
        fake_deliver_claimed(fx->store, 0, NULL, 0);
    }
    assert_int_equal(fx->store->claim[0].quotas[0], 1000);
    assert_int_equal(fx->store->claim[1].lease_ms, 1000);
    assert_int_equal(fx->store->claim[2].lease_ms, 3600000);
}

static void test_claim__queue_and_worker_are_copied(void **state) {
    fixture_t *fx = *state;
    char queue[16] = "emails", worker[16] = "worker-7";
    tf_uc_claim_t req = request(NULL, 3);
    req.queue = queue;
    req.worker_id = worker;
    assert_int_equal(tf_uc_claim(&fx->env->uc, &req, on_claimed, fx), 0);
    /* The caller's buffers are reused before the candidates come back. */
    strcpy(queue, "XXXXXX");
    strcpy(worker, "YYYYYYYY");
    tf_candidate_t cand = {.tenant_id = TENANT_1, .weight = 1, .backlog = 3};
    fake_deliver_candidates(fx->store, 0, &cand, 1, 0.0);
    assert_string_equal(fx->store->claim[0].queue, "emails");
    assert_string_equal(fx->store->claim[0].worker_id, "worker-7");
    assert_int_equal(fx->store->claim[0].quotas[0], 3);
    fake_deliver_claimed(fx->store, 0, NULL, 0);
    assert_int_equal(fx->calls, 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_claim__own_tenant_claims_directly_with_max_jobs),
        T(test_claim__across_tenants_claims_the_planned_shares),
        T(test_claim__a_tenant_alone_is_not_charged_virtual_time),
        T(test_claim__quotas_never_exceed_max_jobs),
        T(test_claim__nothing_ready_answers_no_jobs_without_claiming),
        T(test_claim__store_errors_reach_the_callback),
        T(test_claim__refused_at_once_never_calls_back),
        T(test_claim__invalid_requests_are_refused_without_a_store_call),
        T(test_claim__queue_and_worker_are_copied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
