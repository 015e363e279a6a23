/*
 * test_submit.c - tests for adapters/usecases/submit.c on fake ports
 * (fake_store.h): stamping (UUIDv7 id whose millisecond is created_at, also
 * when the generator runs ahead of the clock; run_at from run_at_ms, delay
 * or now); the group-commit submitter (one write per free slot, everything
 * queued meanwhile in ONE store->submit, answers only after the write
 * answered, outcome mapping, key lookups after EXISTS / IN_PROGRESS,
 * folding of one key queued twice, store errors, synchronous store
 * failures that must not spin, close); and batches (repeated keys,
 * aliasing, the refused index mapped back to the input, replays read with
 * get_many).  One cmocka process; each test has its own fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/usecases/submit.h"
#include "engine/error.h"
#include "engine/uuid.h"
#include "fake_store.h"

#define TENANT_A "0190a0b0-0000-7000-8000-00000000000a"
#define TENANT_B "0190a0b0-0000-7000-8000-00000000000b"
#define HASH_1 "1111111111111111111111111111111111111111111111111111111111111111"
#define HASH_2 "2222222222222222222222222222222222222222222222222222222222222222"
#define EXISTING_ID "0190a0b0-0000-7000-8000-0000000000e1"

typedef struct fixture fixture_t;

/* One submission: its job and what its callback heard. */
typedef struct {
    fixture_t *fx;
    tf_new_job_t job;
    int calls;
    int status;
    int has_r;
    tf_uc_submit_outcome_t outcome;
    tf_job_state_t state;
    const tf_job_t *existing;
    char existing_id[TF_ID_LEN];
    char missing[TF_ID_LEN];
    int seq; /* when it was answered, in the fixture's order */
} submission_t;

struct fixture {
    fake_env_t *env;
    fake_store_t *store;
    int seq;
    size_t groups[16]; /* on_group sizes */
    size_t ngroups;
    int closed_calls, closed_seq;
};

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->env = fake_env_new();
    fx->store = &fx->env->store;
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

static void on_group(void *ctx, size_t jobs) {
    fixture_t *fx = ctx;
    assert_true(fx->ngroups < sizeof(fx->groups) / sizeof(fx->groups[0]));
    fx->groups[fx->ngroups++] = jobs;
}

static void on_closed(void *arg) {
    fixture_t *fx = arg;
    fx->closed_calls++;
    fx->closed_seq = ++fx->seq;
}

static void on_submitted(void *arg, int status, const tf_uc_submitted_t *r) {
    submission_t *s = arg;
    s->calls++;
    s->status = status;
    s->has_r = r != NULL;
    s->seq = ++s->fx->seq;
    if (r != NULL) {
        s->outcome = r->outcome;
        s->state = r->state;
        s->existing = r->existing;
        fake_copy_text(s->existing_id, sizeof(s->existing_id),
                       r->existing != NULL ? r->existing->id : NULL);
        fake_copy_text(s->missing, sizeof(s->missing), r->missing);
    }
}

/* A stamped job of `tenant` with an idempotency key (NULL: none). */
static void job_init(fixture_t *fx, submission_t *s, const char *tenant, const char *key,
                     const char *hash) {
    memset(s, 0, sizeof(*s));
    s->fx = fx;
    s->status = 12345;
    snprintf(s->job.tenant_id, sizeof(s->job.tenant_id), "%s", tenant);
    s->job.queue = "emails";
    s->job.type = "send";
    s->job.payload = "{}";
    s->job.max_attempts = 3;
    s->job.timeout_ms = -1;
    s->job.idempotency_key = key;
    s->job.request_hash = hash;
    s->job.depends_on = "[]";
    s->job.actor = "key:test";
    tf_uc_job_stamp(&fx->env->uc, &s->job, TF_TIME_NONE, -1);
}

static tf_submitter_t *new_submitter(fixture_t *fx, int max_in_flight) {
    tf_submitter_t *sub = NULL;
    assert_int_equal(tf_submitter_create(&fx->env->uc, max_in_flight, on_group, fx, &sub), 0);
    assert_non_null(sub);
    return sub;
}

static void close_submitter(fixture_t *fx, tf_submitter_t *sub) {
    tf_submitter_close(sub, on_closed, fx);
    assert_int_equal(fx->closed_calls, 1);
}

static tf_submit_result_t created(tf_job_state_t state) {
    return (tf_submit_result_t){.outcome = TF_SUBMIT_CREATED, .state = state};
}

static tf_job_t stored_job(const char *id, const char *tenant) {
    return (tf_job_t){.id = id,
                      .tenant_id = tenant,
                      .queue = "emails",
                      .type = "send",
                      .state = TF_JOB_PENDING,
                      .payload = "{}",
                      .max_attempts = 3,
                      .depends_on = "[]",
                      .metadata = "{}",
                      .timeout_ms = -1};
}

static void assert_created(const submission_t *s, tf_job_state_t state) {
    assert_int_equal(s->calls, 1);
    assert_int_equal(s->status, 0);
    assert_true(s->has_r);
    assert_int_equal(s->outcome, TF_UC_SUBMIT_CREATED);
    assert_int_equal(s->state, state);
}

/* ---- stamping ---- */

static void test_submit__stamp_sets_uuidv7_id_whose_ms_is_created_at(void **state) {
    fixture_t *fx = *state;
    fx->env->clock.now = FAKE_T0_MS + 1234;
    tf_new_job_t job = {0};
    tf_uc_job_stamp(&fx->env->uc, &job, TF_TIME_NONE, -1);
    tf_uuid_t id;
    assert_int_equal(tf_uuid_parse(job.id, &id), 0);
    assert_int_equal(strlen(job.id), TF_UUID_STR_LEN);
    assert_int_equal(id.bytes[6] >> 4, 7); /* version 7 */
    assert_int_equal(id.bytes[8] >> 6, 2); /* variant 10 */
    assert_int_equal(job.created_at_ms, FAKE_T0_MS + 1234);
    assert_int_equal(tf_uuid_v7_unix_ms(&id), (uint64_t)job.created_at_ms);
    assert_int_equal(job.run_at_ms, FAKE_T0_MS + 1234);
    assert_int_equal(fake_calls_total(fx->store), 0);
}

static void test_submit__stamp_run_at_prefers_run_at_ms_then_delay_then_now(void **state) {
    fixture_t *fx = *state;
    tf_uc_t *uc = &fx->env->uc;
    tf_new_job_t job = {0};

    tf_uc_job_stamp(uc, &job, FAKE_T0_MS + 60000, 5000); /* run_at_ms wins over delay */
    assert_int_equal(job.run_at_ms, FAKE_T0_MS + 60000);
    assert_int_equal(job.created_at_ms, FAKE_T0_MS);

    tf_uc_job_stamp(uc, &job, FAKE_T0_MS - 10, -1); /* a past run_at is kept as given */
    assert_int_equal(job.run_at_ms, FAKE_T0_MS - 10);

    fx->env->clock.now = FAKE_T0_MS + 7;
    tf_uc_job_stamp(uc, &job, TF_TIME_NONE, 2500);
    assert_int_equal(job.created_at_ms, FAKE_T0_MS + 7);
    assert_int_equal(job.run_at_ms, FAKE_T0_MS + 7 + 2500);

    tf_uc_job_stamp(uc, &job, TF_TIME_NONE, 0);
    assert_int_equal(job.run_at_ms, job.created_at_ms);

    tf_uc_job_stamp(uc, &job, TF_TIME_NONE, -1);
    assert_int_equal(job.run_at_ms, job.created_at_ms);
}

static void
test_submit__stamp_created_at_follows_the_id_when_the_generator_runs_ahead(void **state) {
    fixture_t *fx = *state;
    tf_uc_t *uc = &fx->env->uc;
    tf_new_job_t prev = {0}, job = {0};
    tf_uc_job_stamp(uc, &prev, TF_TIME_NONE, -1);
    /* 4096 ids fit one millisecond (12-bit counter): the 4097th and later
     * are ids of the next millisecond, and so must their created_at be. */
    for (int i = 1; i < 5000; i++) {
        tf_uc_job_stamp(uc, &job, TF_TIME_NONE, 100);
        tf_uuid_t id;
        assert_int_equal(tf_uuid_parse(job.id, &id), 0);
        assert_int_equal(tf_uuid_v7_unix_ms(&id), (uint64_t)job.created_at_ms);
        assert_int_equal(job.run_at_ms, job.created_at_ms + 100);
        assert_true(strcmp(job.id, prev.id) > 0); /* id order is creation order */
        assert_true(job.created_at_ms >= prev.created_at_ms);
        prev = job;
    }
    assert_int_equal(job.created_at_ms, FAKE_T0_MS + 1);

    /* The clock stepping back does not make ids (or created_at) go back. */
    fx->env->clock.now = FAKE_T0_MS - 5000;
    tf_uc_job_stamp(uc, &job, TF_TIME_NONE, -1);
    assert_true(strcmp(job.id, prev.id) > 0);
    assert_int_equal(job.created_at_ms, FAKE_T0_MS + 1);
}

/* ---- group commit ---- */

static void test_submit__first_goes_alone_next_three_share_one_write(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t s[4];
    for (int i = 0; i < 4; i++) {
        job_init(fx, &s[i], TENANT_A, NULL, NULL);
    }

    assert_int_equal(tf_submitter_submit(sub, &s[0].job, on_submitted, &s[0]), 0);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 1);
    assert_int_equal(fx->store->submit[0].n, 1);
    assert_ptr_equal(fx->store->submit[0].jobs[0], &s[0].job);
    assert_int_equal(fx->store->submit[0].all_or_nothing, 0);
    assert_int_equal(s[0].calls, 0); /* not before the write answered */

    for (int i = 1; i < 4; i++) {
        assert_int_equal(tf_submitter_submit(sub, &s[i].job, on_submitted, &s[i]), 0);
    }
    assert_int_equal(fx->store->calls[FK_SUBMIT], 1); /* the only slot is busy */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s[i].calls, 0);
    }

    tf_submit_result_t r0[] = {created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, r0, 1, -1);
    assert_created(&s[0], TF_JOB_PENDING);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 2);
    const fake_submit_call_t *w = &fx->store->submit[1];
    assert_int_equal(w->n, 3);
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(w->jobs[i], &s[i + 1].job); /* in submission order */
        assert_string_equal(w->ids[i], s[i + 1].job.id);
    }
    for (int i = 1; i < 4; i++) {
        assert_int_equal(s[i].calls, 0);
    }

    tf_submit_result_t r1[] = {created(TF_JOB_PENDING), created(TF_JOB_SCHEDULED),
                               created(TF_JOB_CANCELLED)};
    fake_deliver_submit(fx->store, 0, r1, 3, -1);
    assert_created(&s[1], TF_JOB_PENDING);
    assert_created(&s[2], TF_JOB_SCHEDULED);
    assert_created(&s[3], TF_JOB_CANCELLED);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 2);
    assert_int_equal(fx->ngroups, 2);
    assert_int_equal(fx->groups[0], 1);
    assert_int_equal(fx->groups[1], 3);
    close_submitter(fx, sub);
}

static void test_submit__each_free_slot_takes_one_write(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 2);
    submission_t s[4];
    for (int i = 0; i < 4; i++) {
        job_init(fx, &s[i], TENANT_A, NULL, NULL);
        assert_int_equal(tf_submitter_submit(sub, &s[i].job, on_submitted, &s[i]), 0);
    }
    /* Two slots: the first two go out alone, the other two wait together. */
    assert_int_equal(fx->store->calls[FK_SUBMIT], 2);
    assert_int_equal(fx->store->submit[0].n, 1);
    assert_int_equal(fx->store->submit[1].n, 1);
    assert_ptr_equal(fx->store->submit[1].jobs[0], &s[1].job);

    tf_submit_result_t one[] = {created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, one, 1, -1);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 3);
    assert_int_equal(fx->store->submit[2].n, 2);
    assert_ptr_equal(fx->store->submit[2].jobs[0], &s[2].job);
    assert_ptr_equal(fx->store->submit[2].jobs[1], &s[3].job);

    fake_deliver_submit(fx->store, 0, one, 1, -1);
    tf_submit_result_t two[] = {created(TF_JOB_PENDING), created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, two, 2, -1);
    for (int i = 0; i < 4; i++) {
        assert_created(&s[i], TF_JOB_PENDING);
    }
    assert_int_equal(fx->store->calls[FK_SUBMIT], 3);
    close_submitter(fx, sub);
}

static void test_submit__created_and_missing_results_map_to_outcomes(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t first, s[2];
    job_init(fx, &first, TENANT_A, NULL, NULL);
    job_init(fx, &s[0], TENANT_A, NULL, NULL);
    job_init(fx, &s[1], TENANT_A, NULL, NULL);
    assert_int_equal(tf_submitter_submit(sub, &first.job, on_submitted, &first), 0);
    assert_int_equal(tf_submitter_submit(sub, &s[0].job, on_submitted, &s[0]), 0);
    assert_int_equal(tf_submitter_submit(sub, &s[1].job, on_submitted, &s[1]), 0);

    tf_submit_result_t r0[] = {created(TF_JOB_SCHEDULED)};
    fake_deliver_submit(fx->store, 0, r0, 1, -1);
    assert_created(&first, TF_JOB_SCHEDULED);

    char missing[TF_ID_LEN] = "0190a0b0-0000-7000-8000-0000000000ff";
    tf_submit_result_t r1[] = {
        {.outcome = TF_SUBMIT_MISSING, .missing = missing},
        created(TF_JOB_PENDING),
    };
    fake_deliver_submit(fx->store, 0, r1, 2, -1);
    assert_int_equal(s[0].calls, 1);
    assert_int_equal(s[0].status, 0);
    assert_int_equal(s[0].outcome, TF_UC_SUBMIT_MISSING_PARENT);
    assert_string_equal(s[0].missing, missing);
    assert_created(&s[1], TF_JOB_PENDING);
    assert_int_equal(fx->store->calls[FK_GET_BY_KEY], 0); /* no lookup for these */
    close_submitter(fx, sub);
}

/* Submits one keyed job alone, answers the write with `outcome` and
 * returns with its key lookup pending. */
static void submit_until_lookup(fixture_t *fx, tf_submitter_t *sub, submission_t *s,
                                tf_submit_outcome_t outcome) {
    job_init(fx, s, TENANT_A, "order-17", HASH_1);
    assert_int_equal(tf_submitter_submit(sub, &s->job, on_submitted, s), 0);
    tf_submit_result_t r[] = {{.outcome = outcome,
                               .existing_id = outcome == TF_SUBMIT_EXISTS ? EXISTING_ID : NULL,
                               .existing_hash = outcome == TF_SUBMIT_EXISTS ? HASH_1 : NULL}};
    int lookups = fx->store->calls[FK_GET_BY_KEY];
    fake_deliver_submit(fx->store, 0, r, 1, -1);
    assert_int_equal(s->calls, 0); /* waits for the lookup */
    assert_int_equal(fx->store->calls[FK_GET_BY_KEY], lookups + 1);
    const fake_get_call_t *g = &fx->store->get_by_key[lookups];
    assert_string_equal(g->tenant_id, TENANT_A);
    assert_string_equal(g->what, "order-17");
}

static void test_submit__exists_with_the_same_request_answers_existing(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t s;
    submit_until_lookup(fx, sub, &s, TF_SUBMIT_EXISTS);
    tf_job_t job = stored_job(EXISTING_ID, TENANT_A);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, 0, &job, HASH_1);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 0);
    assert_int_equal(s.outcome, TF_UC_SUBMIT_EXISTING);
    assert_ptr_equal(s.existing, &job);
    assert_string_equal(s.existing_id, EXISTING_ID);
    close_submitter(fx, sub);
}

static void test_submit__exists_with_another_request_is_a_key_conflict(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t s;
    submit_until_lookup(fx, sub, &s, TF_SUBMIT_EXISTS);
    tf_job_t job = stored_job(EXISTING_ID, TENANT_A);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, 0, &job, HASH_2);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 0);
    assert_int_equal(s.outcome, TF_UC_SUBMIT_KEY_CONFLICT);
    assert_null(s.existing);
    close_submitter(fx, sub);
}

static void test_submit__exists_but_not_found_is_key_busy(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t s;
    submit_until_lookup(fx, sub, &s, TF_SUBMIT_EXISTS);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, 0, NULL, NULL);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.status, 0);
    assert_int_equal(s.outcome, TF_UC_SUBMIT_KEY_BUSY);
    assert_null(s.existing);
    close_submitter(fx, sub);
}

static void test_submit__in_progress_reads_the_key_too(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t a, b;
    submit_until_lookup(fx, sub, &a, TF_SUBMIT_IN_PROGRESS);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, 0, NULL, NULL);
    assert_int_equal(a.outcome, TF_UC_SUBMIT_KEY_BUSY);
    assert_int_equal(a.status, 0);

    /* The other writer committed meanwhile: the same request reads its job. */
    submit_until_lookup(fx, sub, &b, TF_SUBMIT_IN_PROGRESS);
    tf_job_t job = stored_job(EXISTING_ID, TENANT_A);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, 0, &job, HASH_1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.outcome, TF_UC_SUBMIT_EXISTING);
    assert_ptr_equal(b.existing, &job);
    close_submitter(fx, sub);
}

static void test_submit__key_lookup_failure_answers_its_status(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t a, b;
    submit_until_lookup(fx, sub, &a, TF_SUBMIT_EXISTS);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, TF_EUNAVAIL, NULL, NULL);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, TF_EUNAVAIL);
    assert_false(a.has_r);

    /* A lookup the store refuses at once answers with that code. */
    job_init(fx, &b, TENANT_A, "order-18", HASH_1);
    assert_int_equal(tf_submitter_submit(sub, &b.job, on_submitted, &b), 0);
    fx->store->rc[FK_GET_BY_KEY] = TF_EAGAIN;
    tf_submit_result_t r[] = {{.outcome = TF_SUBMIT_EXISTS, .existing_id = EXISTING_ID}};
    fake_deliver_submit(fx->store, 0, r, 1, -1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, TF_EAGAIN);
    assert_false(b.has_r);
    fx->store->rc[FK_GET_BY_KEY] = 0;
    close_submitter(fx, sub);
}

static void test_submit__one_key_queued_twice_is_written_once(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t busy, lead, dup, conflict, other_tenant;
    job_init(fx, &busy, TENANT_A, NULL, NULL);
    job_init(fx, &lead, TENANT_A, "k1", HASH_1);
    job_init(fx, &dup, TENANT_A, "k1", HASH_1);
    job_init(fx, &conflict, TENANT_A, "k1", HASH_2);
    job_init(fx, &other_tenant, TENANT_B, "k1", HASH_1); /* keys are per tenant */
    assert_int_equal(tf_submitter_submit(sub, &busy.job, on_submitted, &busy), 0);
    assert_int_equal(tf_submitter_submit(sub, &lead.job, on_submitted, &lead), 0);
    assert_int_equal(tf_submitter_submit(sub, &dup.job, on_submitted, &dup), 0);
    assert_int_equal(tf_submitter_submit(sub, &conflict.job, on_submitted, &conflict), 0);
    assert_int_equal(tf_submitter_submit(sub, &other_tenant.job, on_submitted, &other_tenant), 0);

    tf_submit_result_t r0[] = {created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, r0, 1, -1);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 2);
    const fake_submit_call_t *w = &fx->store->submit[1];
    assert_int_equal(w->n, 2); /* one row for k1 of tenant A, one for tenant B */
    assert_ptr_equal(w->jobs[0], &lead.job);
    assert_ptr_equal(w->jobs[1], &other_tenant.job);
    assert_int_equal(fx->ngroups, 2);
    assert_int_equal(fx->groups[1], 2);

    tf_submit_result_t r1[] = {created(TF_JOB_PENDING), created(TF_JOB_SCHEDULED)};
    fake_deliver_submit(fx->store, 0, r1, 2, -1);
    assert_created(&lead, TF_JOB_PENDING);
    assert_created(&other_tenant, TF_JOB_SCHEDULED);
    /* The folded ones read the job the lead wrote. */
    assert_int_equal(dup.calls, 0);
    assert_int_equal(conflict.calls, 0);
    assert_int_equal(fx->store->calls[FK_GET_BY_KEY], 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(fx->store->get_by_key[i].tenant_id, TENANT_A);
        assert_string_equal(fx->store->get_by_key[i].what, "k1");
    }
    tf_job_t job = stored_job(lead.job.id, TENANT_A);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, 0, &job, HASH_1);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, 0, &job, HASH_1);
    assert_int_equal(dup.calls, 1);
    assert_int_equal(dup.status, 0);
    assert_int_equal(dup.outcome, TF_UC_SUBMIT_EXISTING);
    assert_string_equal(dup.existing_id, lead.job.id);
    assert_int_equal(conflict.calls, 1);
    assert_int_equal(conflict.status, 0);
    assert_int_equal(conflict.outcome, TF_UC_SUBMIT_KEY_CONFLICT);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 2);
    close_submitter(fx, sub);
}

static void test_submit__store_error_fails_every_submission_of_the_group(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t busy, s[3], dup;
    job_init(fx, &busy, TENANT_A, NULL, NULL);
    job_init(fx, &s[0], TENANT_A, "k1", HASH_1);
    job_init(fx, &s[1], TENANT_A, NULL, NULL);
    job_init(fx, &s[2], TENANT_A, NULL, NULL);
    job_init(fx, &dup, TENANT_A, "k1", HASH_1);
    assert_int_equal(tf_submitter_submit(sub, &busy.job, on_submitted, &busy), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tf_submitter_submit(sub, &s[i].job, on_submitted, &s[i]), 0);
    }
    assert_int_equal(tf_submitter_submit(sub, &dup.job, on_submitted, &dup), 0);
    tf_submit_result_t r0[] = {created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, r0, 1, -1);
    assert_int_equal(fx->store->submit[1].n, 3);

    fake_deliver_submit(fx->store, TF_EUNAVAIL, NULL, 0, -1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s[i].calls, 1);
        assert_int_equal(s[i].status, TF_EUNAVAIL);
        assert_false(s[i].has_r);
    }
    assert_int_equal(dup.calls, 1);
    assert_int_equal(dup.status, TF_EUNAVAIL);
    assert_int_equal(fx->store->calls[FK_GET_BY_KEY], 0);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 2); /* not retried */

    /* The slot is free again. */
    submission_t later;
    job_init(fx, &later, TENANT_A, NULL, NULL);
    assert_int_equal(tf_submitter_submit(sub, &later.job, on_submitted, &later), 0);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 3);
    fake_deliver_submit(fx->store, 0, r0, 1, -1);
    assert_created(&later, TF_JOB_PENDING);
    close_submitter(fx, sub);
}

static void test_submit__a_result_list_of_the_wrong_length_fails_the_group(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t busy, s[2];
    job_init(fx, &busy, TENANT_A, NULL, NULL);
    job_init(fx, &s[0], TENANT_A, NULL, NULL);
    job_init(fx, &s[1], TENANT_A, NULL, NULL);
    assert_int_equal(tf_submitter_submit(sub, &busy.job, on_submitted, &busy), 0);
    assert_int_equal(tf_submitter_submit(sub, &s[0].job, on_submitted, &s[0]), 0);
    assert_int_equal(tf_submitter_submit(sub, &s[1].job, on_submitted, &s[1]), 0);
    tf_submit_result_t r[] = {created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, r, 1, -1);
    fake_deliver_submit(fx->store, 0, r, 1, -1); /* 1 result for 2 jobs */
    assert_int_equal(s[0].status, TF_EIO);
    assert_int_equal(s[1].status, TF_EIO);
    assert_int_equal(s[0].calls, 1);
    assert_int_equal(s[1].calls, 1);
    close_submitter(fx, sub);
}

static void test_submit__close_answers_queued_with_eshutdown_after_writes_in_flight(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t flying, queued[2], late;
    job_init(fx, &flying, TENANT_A, NULL, NULL);
    job_init(fx, &queued[0], TENANT_A, NULL, NULL);
    job_init(fx, &queued[1], TENANT_A, NULL, NULL);
    job_init(fx, &late, TENANT_A, NULL, NULL);
    assert_int_equal(tf_submitter_submit(sub, &flying.job, on_submitted, &flying), 0);
    assert_int_equal(tf_submitter_submit(sub, &queued[0].job, on_submitted, &queued[0]), 0);
    assert_int_equal(tf_submitter_submit(sub, &queued[1].job, on_submitted, &queued[1]), 0);

    tf_submitter_close(sub, on_closed, fx);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(queued[i].calls, 1);
        assert_int_equal(queued[i].status, TF_ESHUTDOWN);
        assert_false(queued[i].has_r);
    }
    assert_int_equal(flying.calls, 0);
    assert_int_equal(fx->closed_calls, 0); /* a write is in flight */
    assert_int_equal(tf_submitter_submit(sub, &late.job, on_submitted, &late), TF_ESHUTDOWN);
    assert_int_equal(late.calls, 0);

    tf_submit_result_t r[] = {created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, r, 1, -1);
    assert_created(&flying, TF_JOB_PENDING);
    assert_int_equal(fx->closed_calls, 1);
    assert_true(fx->closed_seq > flying.seq);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 1); /* the queued ones were never written */
}

static void test_submit__close_waits_for_key_lookups(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t s;
    submit_until_lookup(fx, sub, &s, TF_SUBMIT_EXISTS);
    tf_submitter_close(sub, on_closed, fx);
    assert_int_equal(fx->closed_calls, 0);
    tf_job_t job = stored_job(EXISTING_ID, TENANT_A);
    fake_deliver_job(fx->store, FK_GET_BY_KEY, 0, &job, HASH_1);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.outcome, TF_UC_SUBMIT_EXISTING);
    assert_int_equal(fx->closed_calls, 1);
    assert_true(fx->closed_seq > s.seq);
}

static void test_submit__close_when_idle_is_immediate(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 3);
    tf_submitter_close(sub, on_closed, fx);
    assert_int_equal(fx->closed_calls, 1);
    assert_int_equal(fake_calls_total(fx->store), 0);
    /* A NULL closed_cb is allowed. */
    sub = new_submitter(fx, 1);
    tf_submitter_close(sub, NULL, NULL);
    assert_int_equal(fx->closed_calls, 1);
}

static void test_submit__synchronous_store_failure_answers_and_does_not_spin(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t a, b;
    job_init(fx, &a, TENANT_A, NULL, NULL);
    job_init(fx, &b, TENANT_A, NULL, NULL);

    fx->store->rc[FK_SUBMIT] = TF_EAGAIN;
    assert_int_equal(tf_submitter_submit(sub, &a.job, on_submitted, &a), 0);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 1); /* tried once, not again and again */
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, TF_EAGAIN);
    assert_false(a.has_r);
    assert_int_equal(fx->ngroups, 0);

    /* The slot was not lost: the next submission goes out. */
    fx->store->rc[FK_SUBMIT] = 0;
    assert_int_equal(tf_submitter_submit(sub, &b.job, on_submitted, &b), 0);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 2);
    assert_ptr_equal(fx->store->submit[1].jobs[0], &b.job);
    tf_submit_result_t r[] = {created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, r, 1, -1);
    assert_created(&b, TF_JOB_PENDING);
    close_submitter(fx, sub);
}

static void test_submit__synchronous_failure_of_a_group_answers_the_group(void **state) {
    fixture_t *fx = *state;
    tf_submitter_t *sub = new_submitter(fx, 1);
    submission_t busy, s[3], dup;
    job_init(fx, &busy, TENANT_A, NULL, NULL);
    job_init(fx, &s[0], TENANT_A, NULL, NULL);
    job_init(fx, &s[1], TENANT_A, "k9", HASH_1);
    job_init(fx, &s[2], TENANT_A, NULL, NULL);
    job_init(fx, &dup, TENANT_A, "k9", HASH_1);
    assert_int_equal(tf_submitter_submit(sub, &busy.job, on_submitted, &busy), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tf_submitter_submit(sub, &s[i].job, on_submitted, &s[i]), 0);
    }
    assert_int_equal(tf_submitter_submit(sub, &dup.job, on_submitted, &dup), 0);

    fx->store->rc[FK_SUBMIT] = TF_ENOMEM;
    tf_submit_result_t r[] = {created(TF_JOB_PENDING)};
    fake_deliver_submit(fx->store, 0, r, 1, -1);
    assert_created(&busy, TF_JOB_PENDING);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 2);
    assert_int_equal(fx->store->submit[1].n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s[i].calls, 1);
        assert_int_equal(s[i].status, TF_ENOMEM);
    }
    assert_int_equal(dup.calls, 1);
    assert_int_equal(dup.status, TF_ENOMEM);

    fx->store->rc[FK_SUBMIT] = 0;
    close_submitter(fx, sub); /* nothing in flight: closes at once */
}

/* ---- batches ---- */

typedef struct {
    int calls;
    int status;
    int has_r;
    long failed;
    tf_uc_submit_outcome_t problem;
    char missing[TF_ID_LEN];
    size_t n;
    tf_job_state_t states[8];
    const tf_job_t *existing[8];
    char existing_ids[8][TF_ID_LEN];
} batch_answer_t;

static void on_batch(void *arg, int status, const tf_uc_batch_t *r) {
    batch_answer_t *a = arg;
    a->calls++;
    a->status = status;
    a->has_r = r != NULL;
    if (r == NULL) {
        return;
    }
    a->failed = r->failed;
    a->problem = r->problem;
    a->n = r->n;
    fake_copy_text(a->missing, sizeof(a->missing), r->missing);
    for (size_t i = 0; r->failed < 0 && i < r->n && i < 8; i++) {
        a->states[i] = r->states[i];
        a->existing[i] = r->existing[i];
        fake_copy_text(a->existing_ids[i], sizeof(a->existing_ids[i]),
                       r->existing[i] != NULL ? r->existing[i]->id : NULL);
    }
}

static void test_submit__batch_repeats_key_only_with_another_request(void **state) {
    fixture_t *fx = *state;
    submission_t s[6];
    job_init(fx, &s[0], TENANT_A, "k1", HASH_1);
    job_init(fx, &s[1], TENANT_A, NULL, NULL);
    job_init(fx, &s[2], TENANT_A, "k1", HASH_1); /* same key, same request: fine */
    job_init(fx, &s[3], TENANT_A, "k1", HASH_2); /* same key, other request: repeats */
    job_init(fx, &s[4], TENANT_B, "k1", HASH_2); /* other tenant's key */
    job_init(fx, &s[5], TENANT_A, "k2", HASH_2);
    const tf_new_job_t *jobs[6];
    for (int i = 0; i < 6; i++) {
        jobs[i] = &s[i].job;
    }
    const int expected[6] = {0, 0, 0, 1, 0, 0};
    for (size_t i = 0; i < 6; i++) {
        if (tf_uc_batch_repeats_key(jobs, i) != expected[i]) {
            fail_msg("tf_uc_batch_repeats_key(jobs, %zu) should be %d", i, expected[i]);
        }
    }
    assert_int_equal(fake_calls_total(fx->store), 0);
}

static void test_submit__batch_writes_one_job_per_key_and_request(void **state) {
    fixture_t *fx = *state;
    submission_t s[4];
    job_init(fx, &s[0], TENANT_A, "k1", HASH_1);
    job_init(fx, &s[1], TENANT_A, NULL, NULL);
    job_init(fx, &s[2], TENANT_A, "k1", HASH_1);
    job_init(fx, &s[3], TENANT_A, "k2", HASH_2);
    const tf_new_job_t *jobs[4] = {&s[0].job, &s[1].job, &s[2].job, &s[3].job};
    batch_answer_t a = {.status = 12345};
    assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, 4, on_batch, &a), 0);
    assert_int_equal(fx->store->calls[FK_SUBMIT], 1);
    const fake_submit_call_t *w = &fx->store->submit[0];
    assert_int_equal(w->all_or_nothing, 1);
    assert_int_equal(w->n, 3);
    assert_ptr_equal(w->jobs[0], &s[0].job);
    assert_ptr_equal(w->jobs[1], &s[1].job);
    assert_ptr_equal(w->jobs[2], &s[3].job);
    assert_int_equal(a.calls, 0);

    tf_submit_result_t r[] = {created(TF_JOB_PENDING), created(TF_JOB_SCHEDULED),
                              created(TF_JOB_CANCELLED)};
    fake_deliver_submit(fx->store, 0, r, 3, -1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.failed, -1);
    assert_int_equal(a.n, 4);
    const tf_job_state_t want[4] = {TF_JOB_PENDING, TF_JOB_SCHEDULED, TF_JOB_PENDING,
                                    TF_JOB_CANCELLED};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a.states[i], want[i]);
        assert_null(a.existing[i]);
    }
    assert_int_equal(fx->store->calls[FK_GET_MANY], 0);
}

static void test_submit__batch_refusal_names_the_first_input_of_the_refused_job(void **state) {
    fixture_t *fx = *state;
    const struct {
        int failed; /* index among the written jobs */
        tf_submit_outcome_t outcome;
        long want_index;
        tf_uc_submit_outcome_t want_problem;
    } cases[] = {
        {1, TF_SUBMIT_MISSING, 1, TF_UC_SUBMIT_MISSING_PARENT},
        {2, TF_SUBMIT_EXISTS, 3, TF_UC_SUBMIT_KEY_CONFLICT},
        {0, TF_SUBMIT_IN_PROGRESS, 0, TF_UC_SUBMIT_KEY_BUSY},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        submission_t s[4];
        job_init(fx, &s[0], TENANT_A, NULL, NULL);
        job_init(fx, &s[1], TENANT_A, "k1", HASH_1);
        job_init(fx, &s[2], TENANT_A, "k1", HASH_1); /* one job with s[1] */
        job_init(fx, &s[3], TENANT_A, "k2", HASH_1);
        const tf_new_job_t *jobs[4] = {&s[0].job, &s[1].job, &s[2].job, &s[3].job};
        batch_answer_t a = {.status = 12345};
        assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, 4, on_batch, &a), 0);
        assert_int_equal(fx->store->submit[c].n, 3);
        tf_submit_result_t r[3] = {created(TF_JOB_PENDING), created(TF_JOB_PENDING),
                                   created(TF_JOB_PENDING)};
        r[cases[c].failed] = (tf_submit_result_t){
            .outcome = cases[c].outcome,
            .missing = cases[c].outcome == TF_SUBMIT_MISSING ? EXISTING_ID : NULL,
            .existing_id = cases[c].outcome == TF_SUBMIT_EXISTS ? EXISTING_ID : NULL,
        };
        fake_deliver_submit(fx->store, 0, r, 3, cases[c].failed);
        assert_int_equal(a.calls, 1);
        assert_int_equal(a.status, 0);
        if (a.failed != cases[c].want_index) {
            fail_msg("case %zu: failed = %ld, expected %ld", c, a.failed, cases[c].want_index);
        }
        assert_int_equal(a.problem, cases[c].want_problem);
        assert_int_equal(a.n, 4);
        if (cases[c].outcome == TF_SUBMIT_MISSING) {
            assert_string_equal(a.missing, EXISTING_ID);
        }
    }
    assert_int_equal(fx->store->calls[FK_GET_MANY], 0);
}

static void test_submit__batch_replays_are_read_with_get_many(void **state) {
    fixture_t *fx = *state;
    submission_t s[3];
    job_init(fx, &s[0], TENANT_A, "k1", HASH_1);
    job_init(fx, &s[1], TENANT_A, NULL, NULL);
    job_init(fx, &s[2], TENANT_A, "k1", HASH_1);
    const tf_new_job_t *jobs[3] = {&s[0].job, &s[1].job, &s[2].job};
    batch_answer_t a = {.status = 12345};
    assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, 3, on_batch, &a), 0);
    assert_int_equal(fx->store->submit[0].n, 2);

    char existing_id[TF_ID_LEN] = EXISTING_ID;
    tf_submit_result_t r[] = {
        {.outcome = TF_SUBMIT_EXISTS, .existing_id = existing_id, .existing_hash = HASH_1},
        created(TF_JOB_SCHEDULED),
    };
    fake_deliver_submit(fx->store, 0, r, 2, -1);
    assert_int_equal(a.calls, 0);                /* waits for the replayed job */
    memset(existing_id, 0, sizeof(existing_id)); /* the store's strings are gone now */
    assert_int_equal(fx->store->calls[FK_GET_MANY], 1);
    const fake_get_many_call_t *g = &fx->store->get_many[0];
    assert_string_equal(g->tenant_id, TENANT_A);
    assert_int_equal(g->n, 1);
    assert_string_equal(g->ids[0], EXISTING_ID);

    tf_job_t read[] = {stored_job(EXISTING_ID, TENANT_A)};
    fake_deliver_jobs(fx->store, FK_GET_MANY, 0, read, 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.failed, -1);
    assert_int_equal(a.n, 3);
    assert_ptr_equal(a.existing[0], &read[0]);
    assert_null(a.existing[1]);
    assert_int_equal(a.states[1], TF_JOB_SCHEDULED);
    assert_ptr_equal(a.existing[2], &read[0]);
}

static void test_submit__batch_replay_that_cannot_be_read_back_is_an_error(void **state) {
    fixture_t *fx = *state;
    submission_t s[2];
    job_init(fx, &s[0], TENANT_A, "k1", HASH_1);
    job_init(fx, &s[1], TENANT_A, "k2", HASH_1);
    const tf_new_job_t *jobs[2] = {&s[0].job, &s[1].job};
    batch_answer_t a = {.status = 12345}, b = {.status = 12345};

    assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, 2, on_batch, &a), 0);
    tf_submit_result_t r[] = {
        {.outcome = TF_SUBMIT_EXISTS, .existing_id = EXISTING_ID, .existing_hash = HASH_1},
        created(TF_JOB_PENDING),
    };
    fake_deliver_submit(fx->store, 0, r, 2, -1);
    fake_deliver_jobs(fx->store, FK_GET_MANY, 0, NULL, 0); /* vanished */
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, TF_EIO);
    assert_false(a.has_r);

    assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, 2, on_batch, &b), 0);
    fake_deliver_submit(fx->store, 0, r, 2, -1);
    fake_deliver_jobs(fx->store, FK_GET_MANY, TF_EUNAVAIL, NULL, 0);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, TF_EUNAVAIL);
    assert_false(b.has_r);
}

static void test_submit__batch_store_errors_and_sizes(void **state) {
    fixture_t *fx = *state;
    submission_t s;
    job_init(fx, &s, TENANT_A, NULL, NULL);
    const tf_new_job_t *jobs[1] = {&s.job};
    batch_answer_t a = {.status = 12345}, b = {.status = 12345};

    assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, 0, on_batch, &a), TF_EINVAL);
    assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, TF_SUBMIT_BATCH_MAX + 1, on_batch, &a),
                     TF_EINVAL);
    assert_int_equal(fake_calls_total(fx->store), 0);

    fx->store->rc[FK_SUBMIT] = TF_EAGAIN;
    assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, 1, on_batch, &a), TF_EAGAIN);
    assert_int_equal(a.calls, 0); /* a refused call never calls back */
    fx->store->rc[FK_SUBMIT] = 0;

    assert_int_equal(tf_uc_submit_batch(&fx->env->uc, jobs, 1, on_batch, &b), 0);
    fake_deliver_submit(fx->store, TF_EUNAVAIL, NULL, 0, -1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, TF_EUNAVAIL);
    assert_false(b.has_r);
    assert_int_equal(a.calls, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_submit__stamp_sets_uuidv7_id_whose_ms_is_created_at),
        T(test_submit__stamp_run_at_prefers_run_at_ms_then_delay_then_now),
        T(test_submit__stamp_created_at_follows_the_id_when_the_generator_runs_ahead),
        T(test_submit__first_goes_alone_next_three_share_one_write),
        T(test_submit__each_free_slot_takes_one_write),
        T(test_submit__created_and_missing_results_map_to_outcomes),
        T(test_submit__exists_with_the_same_request_answers_existing),
        T(test_submit__exists_with_another_request_is_a_key_conflict),
        T(test_submit__exists_but_not_found_is_key_busy),
        T(test_submit__in_progress_reads_the_key_too),
        T(test_submit__key_lookup_failure_answers_its_status),
        T(test_submit__one_key_queued_twice_is_written_once),
        T(test_submit__store_error_fails_every_submission_of_the_group),
        T(test_submit__a_result_list_of_the_wrong_length_fails_the_group),
        T(test_submit__close_answers_queued_with_eshutdown_after_writes_in_flight),
        T(test_submit__close_waits_for_key_lookups),
        T(test_submit__close_when_idle_is_immediate),
        T(test_submit__synchronous_store_failure_answers_and_does_not_spin),
        T(test_submit__synchronous_failure_of_a_group_answers_the_group),
        T(test_submit__batch_repeats_key_only_with_another_request),
        T(test_submit__batch_writes_one_job_per_key_and_request),
        T(test_submit__batch_refusal_names_the_first_input_of_the_refused_job),
        T(test_submit__batch_replays_are_read_with_get_many),
        T(test_submit__batch_replay_that_cannot_be_read_back_is_an_error),
        T(test_submit__batch_store_errors_and_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
