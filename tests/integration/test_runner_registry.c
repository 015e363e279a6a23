/*
 * test_runner_registry.c - executors plug in through the registry: a test
 * registers a fake executor kind ("fake") and the real worker runtime
 * (adapters/worker/runner.h) over the real Postgres store runs jobs through
 * it end to end, from submission (the submit use case) to their recorded
 * history.
 *
 * The fake executor succeeds, fails (retryable or not) or hangs as the
 * job's payload says, always answering later, never inside start().  The
 * test checks that the runner started each job through its kind's executor
 * with the job's fields, that outcomes became the right states, attempts
 * and transitions, that a kind nobody registered fails the job with
 * "executor_unavailable" without touching the fake, and that cancelling a
 * job cancels its run through the executor port.
 *
 * Needs TASKFLOW_TEST_DATABASE_URL; makes and drops its own database.
 */
#include "tests/integration/it_db.h"

#include "adapters/clock/clock.h"
#include "adapters/pg/migrate.h"
#include "adapters/pg/store.h"
#include "adapters/usecases/actions.h"
#include "adapters/usecases/read.h"
#include "adapters/usecases/submit.h"
#include "adapters/worker/runner.h"
#include "engine/error.h"
#include "engine/executor.h"

#define TENANT "0192f000-0000-7000-8000-0000000000a1"
#define MAX_RUNS 16

/* One run of the fake executor. */
typedef struct {
    char job_id[TF_ID_LEN];
    char payload[128];
    char type[32];
    int attempt;
    int64_t now_ms;
    tf_exec_done_fn done;
    void *arg;
    uv_timer_t timer; /* answers on the next loop turn */
    int cancelled;
    int answered;
} fake_run_t;

typedef struct {
    tf_executor_t port;
    uv_loop_t *loop;
    fake_run_t runs[MAX_RUNS];
    int nruns;
    int cancels;
} fake_t;

typedef struct {
    it_db_t *db;
    PGconn *admin;
    uv_loop_t loop;
    it_guard_t guard;
    tf_pg_store_t *store;
    tf_clock_t clock;
    tf_uuid_gen_t uuids;
    tf_uc_t uc;
    fake_t fake;
    tf_executor_registry_t registry;
    tf_runner_t *runner;
    int stopped;
} fixture_t;

/* ---- the fake executor ---- */

static void fake_answer(uv_timer_t *timer) {
    fake_run_t *run = timer->data;
    tf_exec_outcome_t out = {.status = TF_EXEC_SUCCEEDED, .result = "{\"done\":true}"};
    if (run->cancelled) {
        out =
            (tf_exec_outcome_t){.status = TF_EXEC_FAILED, .error_type = "aborted", .retryable = 1};
    } else if (strstr(run->payload, "\"fail\"") != NULL) {
        out = (tf_exec_outcome_t){.status = TF_EXEC_FAILED,
                                  .error_type = "Boom",
                                  .error_message = "the fake failed",
                                  .retryable = strstr(run->payload, "fatal") == NULL};
    } else if (strstr(run->payload, "\"hang\"") != NULL) {
        return; /* until cancelled */
    }
    run->answered = 1;
    run->done(run->arg, &out);
}

static int fake_start(void *ctx, const tf_exec_job_t *job, tf_exec_done_fn done, void *arg,
                      void **out) {
    fake_t *fake = ctx;
    if (fake->nruns == MAX_RUNS) {
        return TF_ENOMEM;
    }
    fake_run_t *run = &fake->runs[fake->nruns++];
    snprintf(run->job_id, sizeof(run->job_id), "%s", job->job_id);
    snprintf(run->payload, sizeof(run->payload), "%s", job->payload);
    snprintf(run->type, sizeof(run->type), "%s", job->type);
    run->attempt = job->attempt;
    run->now_ms = job->now_ms;
    run->done = done;
    run->arg = arg;
    uv_timer_init(fake->loop, &run->timer);
    run->timer.data = run;
    uv_timer_start(&run->timer, fake_answer, 1, 0);
    *out = run;
    return 0;
}

static void fake_cancel(void *ctx, void *handle) {
    fake_t *fake = ctx;
    fake_run_t *run = handle;
    fake->cancels++;
    run->cancelled = 1;
    uv_timer_start(&run->timer, fake_answer, 1, 0);
}

static fake_run_t *run_of(fixture_t *f, const char *job_id) {
    for (int i = 0; i < f->fake.nruns; i++) {
        if (strcmp(f->fake.runs[i].job_id, job_id) == 0) {
            return &f->fake.runs[i];
        }
    }
    return NULL;
}

/* ---- set-up ---- */

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    f->db = it_db_create("registry", "tf-it-registry");
    char err[512] = "";
    if (tf_migrate_apply(f->db->conninfo, NULL, NULL, NULL, err, sizeof(err)) != 0) {
        fail_msg("migrations: %s", err);
    }
    f->admin = it_connect(f->db->conninfo);
    it_execf(f->admin, "INSERT INTO tenants (id, name) VALUES ('%s', 'registry')", TENANT);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    it_guard_init(&f->guard, &f->loop);
    tf_pg_store_config_t cfg = {.conninfo = f->db->conninfo, .size = 2, .pool_name = "registry"};
    assert_int_equal(tf_pg_store_open(&f->loop, &cfg, NULL, NULL, &f->store), 0);
    f->clock = tf_clock_system();
    tf_uuid_gen_init(&f->uuids, 42);
    f->uc = (tf_uc_t){.store = tf_pg_store_jobs(f->store),
                      .tenants = tf_pg_store_tenants(f->store),
                      .clock = &f->clock,
                      .uuids = &f->uuids};
    f->fake = (fake_t){.port = {.kind = "fake", .start = fake_start, .cancel = fake_cancel},
                       .loop = &f->loop};
    f->fake.port.ctx = &f->fake;
    assert_int_equal(tf_executor_register(&f->registry, &f->fake.port), 0);
    tf_runner_config_t rcfg = {.concurrency = 8,
                               .lease_ms = 30000,
                               .poll_interval_ms = 20,
                               .worker_id = "it-worker",
                               .loop_index = 0};
    assert_int_equal(
        tf_runner_create(&f->loop, &f->uc, &f->registry, &rcfg, NULL, NULL, &f->runner), 0);
    *state = f;
    return 0;
}

static void on_stopped(void *arg) {
    ((fixture_t *)arg)->stopped = 1;
}

static int is_stopped(void *arg) {
    return ((fixture_t *)arg)->stopped;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    tf_runner_stop(f->runner, 1000, on_stopped, f);
    it_run_until(&f->guard, is_stopped, f, 10000, "the runner to stop");
    f->stopped = 0;
    tf_pg_store_close(f->store, on_stopped, f);
    it_run_until(&f->guard, is_stopped, f, 10000, "the store to close");
    for (int i = 0; i < f->fake.nruns; i++) {
        uv_close((uv_handle_t *)&f->fake.runs[i].timer, NULL);
    }
    it_guard_close(&f->guard);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    PQfinish(f->admin);
    it_db_drop(f->db);
    free(f);
    return 0;
}

/* ---- submitting and reading through the use cases ---- */

typedef struct {
    int done;
    int status;
    long failed;
} submitted_t;

static void batch_done(void *arg, int status, const tf_uc_batch_t *r) {
    submitted_t *s = arg;
    s->status = status;
    s->failed = status == 0 ? r->failed : -2;
    s->done = 1;
}

static int submitted(void *arg) {
    return ((submitted_t *)arg)->done;
}

/* Submits jobs of the given executors and payloads; writes their ids. */
static void submit(fixture_t *f, size_t n, const char *const *executors,
                   const char *const *payloads, char (*ids)[TF_ID_LEN]) {
    tf_new_job_t jobs[8];
    const tf_new_job_t *ptrs[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        jobs[i] = (tf_new_job_t){.queue = "plug",
                                 .type = "T",
                                 .payload = payloads[i],
                                 .max_attempts = 2,
                                 .retry_policy = "{\"max_attempts\":2,\"strategy\":\"fixed\","
                                                 "\"base_delay_ms\":10,\"jitter\":\"none\"}",
                                 .timeout_ms = 60000,
                                 .executor = executors[i],
                                 .depends_on = "[]",
                                 .actor = "test"};
        snprintf(jobs[i].tenant_id, sizeof(jobs[i].tenant_id), "%s", TENANT);
        tf_uc_job_stamp(&f->uc, &jobs[i], TF_TIME_NONE, -1);
        memcpy(ids[i], jobs[i].id, TF_ID_LEN);
        ptrs[i] = &jobs[i];
    }
    submitted_t s = {0};
    assert_int_equal(tf_uc_submit_batch(&f->uc, ptrs, n, batch_done, &s), 0);
    it_run_until(&f->guard, submitted, &s, 10000, "the submission");
    assert_int_equal(s.status, 0);
    assert_int_equal(s.failed, -1);
}

typedef struct {
    fixture_t *f;
    const char *id;
    tf_job_state_t want;
    int asking;
    int reached;
    char error_type[64];
    char result[64];
    int attempts;
} waiting_t;

static void job_read(void *arg, int status, const tf_job_t *job, const char *hash) {
    (void)hash;
    waiting_t *w = arg;
    w->asking = 0;
    if (status == 0 && job != NULL && job->state == w->want) {
        w->reached = 1;
        w->attempts = job->attempts;
        snprintf(w->error_type, sizeof(w->error_type), "%s",
                 job->last_error_type != NULL ? job->last_error_type : "");
        snprintf(w->result, sizeof(w->result), "%s", job->result != NULL ? job->result : "");
    }
}

/* Polls the job until it is in w->want (asked again after each answer). */
static int job_reached(void *arg) {
    waiting_t *w = arg;
    if (!w->reached && !w->asking && tf_uc_get_job(&w->f->uc, TENANT, w->id, job_read, w) == 0) {
        w->asking = 1;
    }
    return w->reached && !w->asking;
}

static waiting_t wait_state(fixture_t *f, const char *id, tf_job_state_t want) {
    waiting_t w = {.f = f, .id = id, .want = want};
    it_run_until(&f->guard, job_reached, &w, 15000, tf_job_state_name(want));
    return w;
}

/* ---- tests ---- */

static void test_runner_registry__jobs_run_through_a_registered_kind(void **state) {
    fixture_t *f = *state;
    const char *executors[] = {"{\"kind\":\"fake\"}", "{\"kind\":\"fake\",\"x\":1}",
                               "{\"kind\":\"fake\"}", "{\"kind\":\"nobody\"}"};
    const char *payloads[] = {"{\"n\":1}", "{\"fail\":\"fatal\"}", "{\"fail\":\"again\"}",
                              "{\"n\":4}"};
    char ids[4][TF_ID_LEN];
    int64_t before = tf_clock_now(&f->clock);
    submit(f, 4, executors, payloads, ids);

    waiting_t ok = wait_state(f, ids[0], TF_JOB_SUCCEEDED);
    assert_string_equal(ok.result, "{\"done\": true}");
    assert_int_equal(ok.attempts, 1);
    fake_run_t *run = run_of(f, ids[0]);
    assert_non_null(run);
    assert_string_equal(run->payload, "{\"n\": 1}");
    assert_string_equal(run->type, "T");
    assert_int_equal(run->attempt, 1);
    assert_true(run->now_ms >= before);

    waiting_t fatal = wait_state(f, ids[1], TF_JOB_FAILED);
    assert_string_equal(fatal.error_type, "Boom");
    assert_int_equal(fatal.attempts, 1);

    /* Retryable: the policy gives a second attempt, then the job is dead. */
    waiting_t dead = wait_state(f, ids[2], TF_JOB_DEAD);
    assert_int_equal(dead.attempts, 2);
    int runs_of_2 = 0;
    for (int i = 0; i < f->fake.nruns; i++) {
        runs_of_2 += strcmp(f->fake.runs[i].job_id, ids[2]) == 0;
    }
    assert_int_equal(runs_of_2, 2);

    /* A kind nobody registered never reaches the fake. */
    waiting_t none = wait_state(f, ids[3], TF_JOB_FAILED);
    assert_string_equal(none.error_type, "executor_unavailable");
    assert_null(run_of(f, ids[3]));

    /* The history of the successful job, as the store recorded it. */
    assert_string_equal(
        it_execf(f->admin,
                 "SELECT string_agg(coalesce(from_state::text, '-') || '>' || to_state, ' '"
                 " ORDER BY id) FROM job_events WHERE job_id = '%s'",
                 ids[0]),
        "->0 0>2 2>3");
    assert_string_equal(it_execf(f->admin,
                                 "SELECT worker || ':' || outcome FROM job_attempts"
                                 " WHERE job_id = '%s'",
                                 ids[0]),
                        "it-worker:0");
    assert_string_equal(
        it_execf(f->admin, "SELECT name FROM domain_events WHERE job_id = '%s'", ids[0]),
        "job.succeeded");
}

typedef struct {
    int done;
    int status;
    tf_uc_action_outcome_t outcome;
} cancelled_t;

static void cancel_done(void *arg, int status, const tf_uc_action_t *r) {
    cancelled_t *c = arg;
    c->status = status;
    c->outcome = status == 0 ? r->outcome : TF_UC_ACTION_NOT_FOUND;
    c->done = 1;
}

static int cancel_answered(void *arg) {
    return ((cancelled_t *)arg)->done;
}

static int has_run(void *arg) {
    fixture_t *f = arg;
    return f->fake.nruns > 0;
}

static void test_runner_registry__cancel_reaches_the_run_through_the_port(void **state) {
    fixture_t *f = *state;
    const char *executors[] = {"{\"kind\":\"fake\"}"};
    const char *payloads[] = {"{\"hang\":true}"};
    char ids[1][TF_ID_LEN];
    submit(f, 1, executors, payloads, ids);
    it_run_until(&f->guard, has_run, f, 15000, "the run to start");
    cancelled_t c = {0};
    assert_int_equal(tf_uc_cancel(&f->uc, TENANT, ids[0], "test", cancel_done, &c), 0);
    it_run_until(&f->guard, cancel_answered, &c, 10000, "the cancel");
    assert_int_equal(c.status, 0);
    assert_int_equal(c.outcome, TF_UC_ACTION_DONE);
    /* What the LISTEN session would deliver: the runner cancels the run. */
    tf_runner_cancelled(f->runner, ids[0]);
    assert_int_equal(f->fake.cancels, 1);
    waiting_t w = wait_state(f, ids[0], TF_JOB_CANCELLED);
    assert_int_equal(w.attempts, 1);
    assert_string_equal(
        it_execf(f->admin, "SELECT outcome FROM job_attempts WHERE job_id = '%s'", ids[0]), "5");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runner_registry__jobs_run_through_a_registered_kind,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_runner_registry__cancel_reaches_the_run_through_the_port, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
