/*
 * test_lease.c - tests for adapters/usecases/lease.c on fake ports
 * (fake_store.h): heartbeat validation and arguments, release, promotion,
 * next due time and built-in queues, each with now_ms from the clock port
 * and the store's answer reaching the caller unchanged.
 * One cmocka process; each test has its own fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/claim.h"
#include "adapters/usecases/lease.h"
#include "engine/error.h"
#include "fake_store.h"

#define TENANT "0190a0b0-0000-7000-8000-00000000000a"
#define JOB "0190a0b0-0000-7000-8000-000000000101"

typedef struct {
    fake_env_t *env;
    fake_store_t *store;
    int calls;
    int status;
    int64_t value; /* expires_at, count or due_in */
    int any;
    const char *const *names;
    size_t n;
} fixture_t;

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->env = fake_env_new();
    fx->store = &fx->env->store;
    fx->status = 12345;
    fx->any = -1;
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

static void on_heartbeat(void *arg, int status, int64_t expires_at_ms) {
    fixture_t *fx = arg;
    fx->calls++;
    fx->status = status;
    fx->value = expires_at_ms;
}

static void on_count(void *arg, int status, int64_t count) {
    fixture_t *fx = arg;
    fx->calls++;
    fx->status = status;
    fx->value = count;
}

static void on_next_due(void *arg, int status, int any, int64_t due_in_ms) {
    fixture_t *fx = arg;
    fx->calls++;
    fx->status = status;
    fx->any = any;
    fx->value = due_in_ms;
}

static void on_names(void *arg, int status, const char *const *names, size_t n) {
    fixture_t *fx = arg;
    fx->calls++;
    fx->status = status;
    fx->names = names;
    fx->n = n;
}

static void test_lease__heartbeat_extends_from_the_clock(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 3;
    assert_int_equal(tf_uc_heartbeat(&fx->env->uc, TENANT, JOB, "lease-1", 30000, on_heartbeat, fx),
                     0);
    assert_int_equal(fx->store->calls[FK_HEARTBEAT], 1);
    const fake_heartbeat_call_t *c = &fx->store->heartbeat[0];
    assert_string_equal(c->tenant_id, TENANT);
    assert_string_equal(c->job_id, JOB);
    assert_string_equal(c->lease_token, "lease-1");
    assert_int_equal(c->lease_ms, 30000);
    assert_int_equal(c->now_ms, FAKE_T0_MS + 3);
    assert_int_equal(fx->calls, 0);
    fake_deliver_heartbeat(fx->store, 0, FAKE_T0_MS + 30003);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, 0);
    assert_int_equal(fx->value, FAKE_T0_MS + 30003);

    assert_int_equal(
        tf_uc_heartbeat(&fx->env->uc, NULL, JOB, "lease-1", TF_LEASE_MIN_MS, on_heartbeat, fx), 0);
    assert_null(fx->store->heartbeat[1].tenant_id);
    fake_deliver_heartbeat(fx->store, TF_ESTALE, 0);
    assert_int_equal(fx->status, TF_ESTALE);
}

static void test_lease__heartbeat_refuses_bad_requests_without_a_store_call(void **state) {
    fixture_t *fx = *state;
    tf_uc_t *uc = &fx->env->uc;
    assert_int_equal(tf_uc_heartbeat(uc, TENANT, NULL, "l", 30000, on_heartbeat, fx), TF_EINVAL);
    assert_int_equal(tf_uc_heartbeat(uc, TENANT, JOB, NULL, 30000, on_heartbeat, fx), TF_EINVAL);
    assert_int_equal(tf_uc_heartbeat(uc, TENANT, JOB, "l", TF_LEASE_MIN_MS - 1, on_heartbeat, fx),
                     TF_EINVAL);
    assert_int_equal(tf_uc_heartbeat(uc, TENANT, JOB, "l", TF_LEASE_MAX_MS + 1, on_heartbeat, fx),
                     TF_EINVAL);
    assert_int_equal(fake_calls_total(fx->store), 0);
    assert_int_equal(fx->calls, 0);
}

static void test_lease__release_promote_next_due_and_queues_pass_through(void **state) {
    fixture_t *fx = *state;
    tf_uc_t *uc = &fx->env->uc;
    fx->env->clock.now = FAKE_T0_MS + 11;

    const char *ids[2] = {"j1", "j2"}, *tokens[2] = {"t1", "t2"};
    assert_int_equal(tf_uc_release(uc, "w-1", ids, tokens, 2, on_count, fx), 0);
    const fake_release_call_t *r = &fx->store->release[0];
    assert_string_equal(r->worker_id, "w-1");
    assert_int_equal(r->n, 2);
    assert_string_equal(r->job_ids[1], "j2");
    assert_string_equal(r->lease_tokens[0], "t1");
    assert_int_equal(r->now_ms, FAKE_T0_MS + 11);
    fake_deliver_count(fx->store, FK_RELEASE, 0, 2);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->value, 2);

    fx->env->clock.now = FAKE_T0_MS + 12;
    assert_int_equal(tf_uc_promote(uc, 500, on_count, fx), 0);
    assert_int_equal(fx->store->promote[0].limit, 500);
    assert_int_equal(fx->store->promote[0].now_ms, FAKE_T0_MS + 12);
    fake_deliver_count(fx->store, FK_PROMOTE, 0, 17);
    assert_int_equal(fx->calls, 2);
    assert_int_equal(fx->value, 17);

    fx->env->clock.now = FAKE_T0_MS + 13;
    assert_int_equal(tf_uc_next_due(uc, on_next_due, fx), 0);
    assert_int_equal(fx->store->next_due[0].now_ms, FAKE_T0_MS + 13);
    fake_deliver_next_due(fx->store, 0, 1, 2500);
    assert_int_equal(fx->calls, 3);
    assert_int_equal(fx->any, 1);
    assert_int_equal(fx->value, 2500);

    assert_int_equal(tf_uc_builtin_queues(uc, on_names, fx), 0);
    const char *names[2] = {"http", "emails"};
    fake_deliver_names(fx->store, 0, names, 2);
    assert_int_equal(fx->calls, 4);
    assert_ptr_equal(fx->names, names);
    assert_int_equal(fx->n, 2);

    fx->store->rc[FK_PROMOTE] = TF_EAGAIN;
    assert_int_equal(tf_uc_promote(uc, 500, on_count, fx), TF_EAGAIN);
    assert_int_equal(fx->calls, 4);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_lease__heartbeat_extends_from_the_clock),
        T(test_lease__heartbeat_refuses_bad_requests_without_a_store_call),
        T(test_lease__release_promote_next_due_and_queues_pass_through),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
