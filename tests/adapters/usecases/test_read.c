/*
 * test_read.c - tests for adapters/usecases/read.c on fake ports
 * (fake_store.h): the id range of a listing (created_after / created_before
 * as UUIDv7 millisecond bounds, checked byte by byte and against ids a
 * generator makes at those milliseconds; the cursor's next id with carry;
 * the tighter bound winning), empty ranges refused with TF_ERANGE before
 * any store call, limit + 1 rows asked and `more` reported from them,
 * filters passed on, errors; and the single reads passed through.
 * One cmocka process; each test has its own fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/read.h"
#include "engine/error.h"
#include "engine/uuid.h"
#include "fake_store.h"

#define TENANT "0190a0b0-0000-7000-8000-00000000000a"
#define MS_MAX ((INT64_C(1) << 48) - 1)

typedef struct {
    fake_env_t *env;
    fake_store_t *store;
    int calls;
    int status;
    const tf_job_t *jobs;
    size_t n;
    int more;
} fixture_t;

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->env = fake_env_new();
    fx->store = &fx->env->store;
    fx->status = 12345;
    fx->more = -1;
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

static void on_page(void *arg, int status, const tf_job_t *jobs, size_t n, int more) {
    fixture_t *fx = arg;
    fx->calls++;
    fx->status = status;
    fx->jobs = jobs;
    fx->n = n;
    fx->more = more;
}

/* The id of millisecond `ms` whose other 10 bytes are all `fill`. */
static tf_uuid_t id_at(int64_t ms, uint8_t fill) {
    tf_uuid_t id;
    memset(id.bytes, fill, sizeof(id.bytes));
    for (int i = 0; i < 6; i++) {
        id.bytes[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    }
    return id;
}

static tf_uuid_t id_all(uint8_t fill) {
    tf_uuid_t id;
    memset(id.bytes, fill, sizeof(id.bytes));
    return id;
}

static void assert_uuid_equal(const tf_uuid_t *got, const tf_uuid_t *want) {
    if (memcmp(got->bytes, want->bytes, 16) != 0) {
        char g[TF_ID_LEN], w[TF_ID_LEN];
        tf_uuid_format(got, g);
        tf_uuid_format(want, w);
        fail_msg("uuid %s, expected %s", g, w);
    }
}

static int uuid_cmp(const tf_uuid_t *a, const tf_uuid_t *b) {
    return memcmp(a->bytes, b->bytes, 16);
}

static tf_uc_list_t listing(int limit) {
    return (tf_uc_list_t){.tenant_id = TENANT, .limit = limit};
}

/* Lists, checks one store call was made, answers it with no rows and
 * returns the recorded query. */
static const fake_list_call_t *list_once(fixture_t *fx, const tf_uc_list_t *list) {
    int before = fx->store->calls[FK_LIST];
    assert_int_equal(tf_uc_list_jobs(&fx->env->uc, list, on_page, fx), 0);
    assert_int_equal(fx->store->calls[FK_LIST], before + 1);
    fake_deliver_jobs(fx->store, FK_LIST, 0, NULL, 0);
    return &fx->store->list[before];
}

static void test_read__first_page_reads_limit_plus_one_over_every_id(void **state) {
    fixture_t *fx = *state;
    tf_uc_list_t list = listing(50);
    list.dead_letter = 1;
    list.states = TF_JOB_STATE_BIT(TF_JOB_DEAD) | TF_JOB_STATE_BIT(TF_JOB_FAILED);
    list.queue = "emails";
    list.type = "send";
    list.correlation_id = "corr-1";
    list.rule_id = "rule-1";
    const fake_list_call_t *c = list_once(fx, &list);
    tf_uuid_t lo = id_all(0x00), hi = id_all(0xff);
    assert_uuid_equal(&c->q.lower, &lo);
    assert_uuid_equal(&c->q.upper, &hi);
    assert_int_equal(c->q.rows, 51);
    assert_string_equal(c->tenant_id, TENANT);
    assert_int_equal(c->q.dead_letter, 1);
    assert_int_equal(c->q.states, list.states);
    assert_string_equal(c->queue, "emails");
    assert_string_equal(c->type, "send");
    assert_string_equal(c->correlation_id, "corr-1");
    assert_string_equal(c->rule_id, "rule-1");
    assert_int_equal(fake_calls_except(fx->store, FK_LIST), 0);
}

static void test_read__created_after_and_before_are_uuidv7_millisecond_bounds(void **state) {
    fixture_t *fx = *state;
    const int64_t after = FAKE_T0_MS, before = FAKE_T0_MS + 1000;
    tf_uc_list_t list = listing(10);
    list.has_after = 1;
    list.after_ms = after;
    list.has_before = 1;
    list.before_ms = before;
    const fake_list_call_t *c = list_once(fx, &list);
    /* Strictly after: from the first id of after + 1; strictly before: up
     * to the last id of before - 1. */
    tf_uuid_t lo = id_at(after + 1, 0x00), hi = id_at(before - 1, 0xff);
    assert_uuid_equal(&c->q.lower, &lo);
    assert_uuid_equal(&c->q.upper, &hi);
    assert_int_equal(tf_uuid_v7_unix_ms(&c->q.lower), (uint64_t)(after + 1));
    assert_int_equal(tf_uuid_v7_unix_ms(&c->q.upper), (uint64_t)(before - 1));

    /* Ids a generator makes: those of after and before are out, those of
     * after + 1 and before - 1 are in. */
    tf_uuid_gen_t gen;
    tf_uuid_gen_init(&gen, 7);
    tf_uuid_t id;
    tf_uuid_v7(&gen, (uint64_t)after, &id);
    assert_true(uuid_cmp(&id, &c->q.lower) < 0);
    tf_uuid_v7(&gen, (uint64_t)after + 1, &id);
    assert_true(uuid_cmp(&id, &c->q.lower) >= 0);
    tf_uuid_v7(&gen, (uint64_t)before - 1, &id);
    assert_true(uuid_cmp(&id, &c->q.upper) <= 0);
    for (int i = 0; i < 100; i++) { /* late in that millisecond too */
        tf_uuid_v7(&gen, (uint64_t)before - 1, &id);
    }
    assert_true(uuid_cmp(&id, &c->q.upper) <= 0);
    tf_uuid_v7(&gen, (uint64_t)before, &id);
    assert_true(uuid_cmp(&id, &c->q.upper) > 0);

    /* Only one side. */
    list.has_before = 0;
    c = list_once(fx, &list);
    tf_uuid_t all_hi = id_all(0xff);
    assert_uuid_equal(&c->q.lower, &lo);
    assert_uuid_equal(&c->q.upper, &all_hi);
    list.has_before = 1;
    list.has_after = 0;
    c = list_once(fx, &list);
    tf_uuid_t all_lo = id_all(0x00);
    assert_uuid_equal(&c->q.lower, &all_lo);
    assert_uuid_equal(&c->q.upper, &hi);
}

static void test_read__times_outside_the_uuid_range_add_no_bound(void **state) {
    fixture_t *fx = *state;
    tf_uc_list_t list = listing(10);
    list.has_after = 1;
    list.after_ms = -5; /* before 1970: every id is after it */
    list.has_before = 1;
    list.before_ms = MS_MAX + 10; /* past the 48-bit range: every id is before it */
    const fake_list_call_t *c = list_once(fx, &list);
    tf_uuid_t lo = id_all(0x00), hi = id_all(0xff);
    assert_uuid_equal(&c->q.lower, &lo);
    assert_uuid_equal(&c->q.upper, &hi);

    list.after_ms = 0; /* after the epoch's first millisecond */
    list.before_ms = MS_MAX;
    c = list_once(fx, &list);
    lo = id_at(1, 0x00);
    hi = id_at(MS_MAX - 1, 0xff);
    assert_uuid_equal(&c->q.lower, &lo);
    assert_uuid_equal(&c->q.upper, &hi);
}

static void test_read__cursor_starts_right_after_its_last_id(void **state) {
    fixture_t *fx = *state;
    tf_uuid_t last;
    assert_int_equal(tf_uuid_parse("0190a0b0-0000-7000-8000-000000000abc", &last), 0);
    tf_uc_list_t list = listing(20);
    list.after_id = &last;
    const fake_list_call_t *c = list_once(fx, &list);
    tf_uuid_t want;
    assert_int_equal(tf_uuid_parse("0190a0b0-0000-7000-8000-000000000abd", &want), 0);
    assert_uuid_equal(&c->q.lower, &want);
    assert_int_equal(c->q.rows, 21);

    /* With carry over the trailing 0xff bytes. */
    assert_int_equal(tf_uuid_parse("0190a0b0-0000-7000-80ff-ffffffffffff", &last), 0);
    c = list_once(fx, &list);
    assert_int_equal(tf_uuid_parse("0190a0b0-0000-7000-8100-000000000000", &want), 0);
    assert_uuid_equal(&c->q.lower, &want);
    tf_uuid_t hi = id_all(0xff);
    assert_uuid_equal(&c->q.upper, &hi);
}

static void test_read__the_tighter_lower_bound_wins(void **state) {
    fixture_t *fx = *state;
    tf_uc_list_t list = listing(5);
    list.has_after = 1;
    list.after_ms = FAKE_T0_MS;
    /* A cursor older than created_after: the time bound holds. */
    tf_uuid_t old_cursor = id_at(FAKE_T0_MS - 60000, 0x55);
    list.after_id = &old_cursor;
    const fake_list_call_t *c = list_once(fx, &list);
    tf_uuid_t want = id_at(FAKE_T0_MS + 1, 0x00);
    assert_uuid_equal(&c->q.lower, &want);

    /* A cursor past it: the cursor holds. */
    tf_uuid_t new_cursor = id_at(FAKE_T0_MS + 60000, 0x55);
    list.after_id = &new_cursor;
    c = list_once(fx, &list);
    want = id_at(FAKE_T0_MS + 60000, 0x55);
    want.bytes[15] = 0x56;
    assert_uuid_equal(&c->q.lower, &want);
}

static void test_read__empty_ranges_are_erange_without_a_store_call(void **state) {
    fixture_t *fx = *state;
    tf_uuid_t greatest = id_all(0xff);
    tf_uuid_t late = id_at(FAKE_T0_MS + 10, 0x00);
    struct {
        int has_after, has_before;
        int64_t after_ms, before_ms;
        const tf_uuid_t *after_id;
    } cases[] = {
        {1, 1, 5000, 5001, NULL}, /* no millisecond strictly between */
        {1, 1, 5000, 5000, NULL},
        {1, 1, 9000, 5000, NULL},
        {0, 1, 0, 0, NULL}, /* before the first millisecond */
        {0, 1, 0, -3, NULL},
        {1, 0, MS_MAX, 0, NULL}, /* after the last one */
        {1, 0, MS_MAX + 1, 0, NULL},
        {0, 0, 0, 0, &greatest},           /* after the greatest id */
        {0, 1, 0, FAKE_T0_MS + 10, &late}, /* the cursor is past created_before */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tf_uc_list_t list = listing(10);
        list.has_after = cases[i].has_after;
        list.after_ms = cases[i].after_ms;
        list.has_before = cases[i].has_before;
        list.before_ms = cases[i].before_ms;
        list.after_id = cases[i].after_id;
        int rc = tf_uc_list_jobs(&fx->env->uc, &list, on_page, fx);
        if (rc != TF_ERANGE) {
            fail_msg("case %zu: %d, expected TF_ERANGE", i, rc);
        }
    }
    assert_int_equal(fake_calls_total(fx->store), 0);
    assert_int_equal(fx->calls, 0);

    /* The narrowest non-empty range: one millisecond. */
    tf_uc_list_t list = listing(10);
    list.has_after = 1;
    list.after_ms = 5000;
    list.has_before = 1;
    list.before_ms = 5002;
    const fake_list_call_t *c = list_once(fx, &list);
    tf_uuid_t lo = id_at(5001, 0x00), hi = id_at(5001, 0xff);
    assert_uuid_equal(&c->q.lower, &lo);
    assert_uuid_equal(&c->q.upper, &hi);
}

static void test_read__more_only_when_the_store_returns_limit_plus_one(void **state) {
    fixture_t *fx = *state;
    tf_job_t rows[4] = {{.id = "a"}, {.id = "b"}, {.id = "c"}, {.id = "d"}};
    tf_uc_list_t list = listing(3);
    const struct {
        size_t rows, shown;
        int more;
    } cases[] = {{4, 3, 1}, {3, 3, 0}, {1, 1, 0}, {0, 0, 0}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        assert_int_equal(tf_uc_list_jobs(&fx->env->uc, &list, on_page, fx), 0);
        assert_int_equal(fx->store->list[k].q.rows, 4);
        assert_int_equal(fx->calls, (int)k); /* not before the rows came */
        fake_deliver_jobs(fx->store, FK_LIST, 0, rows, cases[k].rows);
        assert_int_equal(fx->calls, (int)k + 1);
        assert_int_equal(fx->status, 0);
        if (fx->n != cases[k].shown || fx->more != cases[k].more) {
            fail_msg("%zu rows: n %zu more %d, expected n %zu more %d", cases[k].rows, fx->n,
                     fx->more, cases[k].shown, cases[k].more);
        }
        if (cases[k].shown > 0) {
            assert_ptr_equal(fx->jobs, rows);
        }
    }
}

static void test_read__store_errors_and_bad_limits(void **state) {
    fixture_t *fx = *state;
    tf_uc_list_t list = listing(3);
    assert_int_equal(tf_uc_list_jobs(&fx->env->uc, &list, on_page, fx), 0);
    fake_deliver_jobs(fx->store, FK_LIST, TF_EUNAVAIL, NULL, 0);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->status, TF_EUNAVAIL);
    assert_int_equal(fx->n, 0);
    assert_int_equal(fx->more, 0);
    assert_null(fx->jobs);

    fx->store->rc[FK_LIST] = TF_EAGAIN;
    assert_int_equal(tf_uc_list_jobs(&fx->env->uc, &list, on_page, fx), TF_EAGAIN);
    assert_int_equal(fx->calls, 1);
    fx->store->rc[FK_LIST] = 0;

    int calls = fx->store->calls[FK_LIST];
    const int bad[] = {0, -1, 1001};
    for (size_t i = 0; i < 3; i++) {
        list.limit = bad[i];
        assert_int_equal(tf_uc_list_jobs(&fx->env->uc, &list, on_page, fx), TF_EINVAL);
    }
    assert_int_equal(fx->store->calls[FK_LIST], calls);
    list.limit = 1000;
    const fake_list_call_t *c = list_once(fx, &list);
    assert_int_equal(c->q.rows, 1001);
}

static void on_job(void *arg, int status, const tf_job_t *job, const char *request_hash) {
    fixture_t *fx = arg;
    (void)request_hash;
    fx->calls++;
    fx->status = status;
    fx->jobs = job;
}

static void on_attempts(void *arg, int status, int found, const tf_attempt_t *attempts, size_t n) {
    fixture_t *fx = arg;
    (void)attempts;
    fx->calls++;
    fx->status = status;
    fx->more = found;
    fx->n = n;
}

static void on_transitions(void *arg, int status, int found, const tf_transition_t *t, size_t n) {
    fixture_t *fx = arg;
    (void)t;
    fx->calls++;
    fx->status = status;
    fx->more = found;
    fx->n = n;
}

static void test_read__single_reads_pass_through(void **state) {
    fixture_t *fx = *state;
    const char *job_id = "0190a0b0-0000-7000-8000-000000000101";
    assert_int_equal(tf_uc_get_job(&fx->env->uc, TENANT, job_id, on_job, fx), 0);
    assert_string_equal(fx->store->get[0].tenant_id, TENANT);
    assert_string_equal(fx->store->get[0].what, job_id);
    tf_job_t job = {.id = job_id};
    fake_deliver_job(fx->store, FK_GET, 0, &job, NULL);
    assert_int_equal(fx->calls, 1);
    assert_ptr_equal(fx->jobs, &job);

    assert_int_equal(tf_uc_get_attempts(&fx->env->uc, TENANT, job_id, on_attempts, fx), 0);
    assert_string_equal(fx->store->attempts[0].what, job_id);
    tf_attempt_t attempts[2] = {{.attempt = 1}, {.attempt = 2}};
    fake_deliver_attempts(fx->store, 0, 1, attempts, 2);
    assert_int_equal(fx->calls, 2);
    assert_int_equal(fx->more, 1);
    assert_int_equal(fx->n, 2);

    assert_int_equal(tf_uc_get_transitions(&fx->env->uc, TENANT, job_id, on_transitions, fx), 0);
    assert_string_equal(fx->store->transitions[0].tenant_id, TENANT);
    fake_deliver_transitions(fx->store, 0, 0, NULL, 0);
    assert_int_equal(fx->calls, 3);
    assert_int_equal(fx->more, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_read__first_page_reads_limit_plus_one_over_every_id),
        T(test_read__created_after_and_before_are_uuidv7_millisecond_bounds),
        T(test_read__times_outside_the_uuid_range_add_no_bound),
        T(test_read__cursor_starts_right_after_its_last_id),
        T(test_read__the_tighter_lower_bound_wins),
        T(test_read__empty_ranges_are_erange_without_a_store_call),
        T(test_read__more_only_when_the_store_returns_limit_plus_one),
        T(test_read__store_errors_and_bad_limits),
        T(test_read__single_reads_pass_through),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
