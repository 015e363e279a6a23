/*
 * test_state_sql.c - one source for the state machine: the job states and
 * transitions that the SQL of the Postgres store applies agree with
 * engine/job.h.
 *
 * - The job_states table of migration 0001 holds exactly the engine's
 *   numbers and names, and jobs.state refuses any other number.
 * - For every state a job can be in, each guarded write of the store
 *   (cancel, retry, finish, heartbeat, promote) applies exactly when the
 *   engine's state machine allows its event from that state, and leaves the
 *   job in the state tf_job_transition() names.  A disagreement between the
 *   enum, the table, a statement's guard or a SQL function fails here.
 *
 * Needs TASKFLOW_TEST_DATABASE_URL; makes and drops its own database.
 */
#include "tests/integration/it_db.h"

#include "adapters/clock/clock.h"
#include "adapters/pg/migrate.h"
#include "adapters/pg/store.h"
#include "engine/error.h"
#include "engine/job.h"

#define TENANT "0192f000-0000-7000-8000-000000000001"

typedef struct {
    it_db_t *db;
    PGconn *admin;
    uv_loop_t loop;
    it_guard_t guard;
    tf_pg_store_t *store;
    const tf_job_store_t *jobs;
} fixture_t;

/* One answer from the store. */
typedef struct {
    int done;
    int status;
    int applied;
    tf_job_state_t state; /* applied: the state the answer names */
} answer_t;

static int answered(void *arg) {
    return ((answer_t *)arg)->done;
}

static int group_setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    f->db = it_db_create("state", "tf-it-state");
    char err[512] = "";
    if (tf_migrate_apply(f->db->conninfo, NULL, NULL, NULL, err, sizeof(err)) != 0) {
        fail_msg("migrations: %s", err);
    }
    f->admin = it_connect(f->db->conninfo);
    it_execf(f->admin, "INSERT INTO tenants (id, name) VALUES ('%s', 'state')", TENANT);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    it_guard_init(&f->guard, &f->loop);
    tf_pg_store_config_t cfg = {.conninfo = f->db->conninfo, .size = 1, .pool_name = "state"};
    assert_int_equal(tf_pg_store_open(&f->loop, &cfg, NULL, NULL, &f->store), 0);
    f->jobs = tf_pg_store_jobs(f->store);
    *state = f;
    return 0;
}

static int closed_flag;

static void store_closed(void *arg) {
    (void)arg;
    closed_flag = 1;
}

static int is_closed(void *arg) {
    (void)arg;
    return closed_flag;
}

static int group_teardown(void **state) {
    fixture_t *f = *state;
    tf_pg_store_close(f->store, store_closed, NULL);
    it_run_until(&f->guard, is_closed, NULL, 10000, "the store to close");
    it_guard_close(&f->guard);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    PQfinish(f->admin);
    it_db_drop(f->db);
    free(f);
    return 0;
}

/* A new job in `state`: RUNNING ones hold lease token `token` and their
 * running row; SCHEDULED ones a due scheduled row; DEAD ones a dead-letter
 * row.  Writes its id into `id`. */
static void job_in(fixture_t *f, tf_job_state_t state, const char *token, char id[TF_ID_LEN]) {
    snprintf(id, TF_ID_LEN, "%s", it_exec(f->admin, "SELECT gen_random_uuid()"));
    it_execf(
        f->admin,
        "INSERT INTO jobs (tenant_id, id, type, state, attempts, lease_token, locked_by,"
        " started_at, lease_expires_at, finished_at) VALUES ('%s', '%s', 't', %d, %d, NULL, %s,"
        " %s, %s, %s)",
        TENANT, id, (int)state, state == TF_JOB_PENDING ? 0 : 1,
        state == TF_JOB_RUNNING ? "'w'" : "NULL", state == TF_JOB_RUNNING ? "now()" : "NULL",
        state == TF_JOB_RUNNING ? "now() + interval '1 minute'" : "NULL",
        tf_job_state_is_terminal(state) ? "now()" : "NULL");
    if (state == TF_JOB_RUNNING) {
        it_execf(f->admin, "UPDATE jobs SET lease_token = '%s' WHERE id = '%s'", token, id);
        it_execf(f->admin,
                 "INSERT INTO running (tenant_id, job_id, queue, lease_expires_at, locked_by)"
                 " VALUES ('%s', '%s', 'default', now() + interval '1 minute', 'w')",
                 TENANT, id);
    } else if (state == TF_JOB_SCHEDULED) {
        it_execf(f->admin,
                 "INSERT INTO scheduled (tenant_id, job_id, queue, run_at)"
                 " VALUES ('%s', '%s', 'default', now() - interval '1 second')",
                 TENANT, id);
    } else if (state == TF_JOB_DEAD) {
        it_execf(
            f->admin,
            "INSERT INTO dead_letters (tenant_id, job_id, queue) VALUES ('%s', '%s', 'default')",
            TENANT, id);
    }
}

static tf_job_state_t state_of(fixture_t *f, const char *id) {
    return (tf_job_state_t)atoi(it_execf(f->admin, "SELECT state FROM jobs WHERE id = '%s'", id));
}

/* What the engine says `ev` does from `from`: 1 with *to when allowed. */
static int engine_allows(tf_job_state_t from, tf_job_event_t ev, tf_job_state_t *to) {
    return tf_job_transition(from, ev, to) == 0;
}

/* ---- the table ---- */

static void test_state_sql__job_states_table_is_the_engines(void **state) {
    fixture_t *f = *state;
    assert_int_equal(atoi(it_exec(f->admin, "SELECT count(*) FROM job_states")),
                     TF_JOB_STATE_COUNT);
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        const char *name = it_execf(f->admin, "SELECT name FROM job_states WHERE state = %d", s);
        assert_string_equal(name, tf_job_state_name((tf_job_state_t)s));
    }
    /* The column refuses a number the engine does not know. */
    PGresult *res = PQexec(f->admin, "INSERT INTO jobs (tenant_id, id, type, state) VALUES"
                                     " ('" TENANT "', gen_random_uuid(), 't', 7)");
    assert_int_not_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
}

/* ---- cancel and retry ---- */

static void action_done(void *arg, int status, const tf_action_result_t *r) {
    answer_t *a = arg;
    a->status = status;
    a->applied = status == 0 && r->job != NULL;
    a->state = a->applied ? r->job->state : TF_JOB_STATE_COUNT;
    a->done = 1;
}

static void check_action(fixture_t *f, tf_job_event_t ev, int cancel) {
    tf_job_state_set_t sources = tf_job_event_sources(ev);
    tf_job_state_t to = TF_JOB_STATE_COUNT;
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        if (sources & TF_JOB_STATE_BIT(s)) {
            tf_job_transition((tf_job_state_t)s, ev, &to);
        }
    }
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        char id[TF_ID_LEN];
        tf_job_state_t want;
        job_in(f, (tf_job_state_t)s, "00000000-0000-4000-8000-0000000000aa", id);
        answer_t a = {0};
        int rc = cancel ? f->jobs->cancel(f->jobs->ctx, TENANT, id, sources, to, "test",
                                          tf_clock_real_ms(), action_done, &a)
                        : f->jobs->retry(f->jobs->ctx, TENANT, id, sources, to, "test",
                                         tf_clock_real_ms(), action_done, &a);
        assert_int_equal(rc, 0);
        it_run_until(&f->guard, answered, &a, 10000, "the action");
        assert_int_equal(a.status, 0);
        int allowed = engine_allows((tf_job_state_t)s, ev, &want);
        if (a.applied != allowed) {
            fail_msg("%s from %s: applied %d, the engine says %d", tf_job_event_name(ev),
                     tf_job_state_name((tf_job_state_t)s), a.applied, allowed);
        }
        assert_int_equal(state_of(f, id), allowed ? want : (tf_job_state_t)s);
        if (allowed) {
            assert_int_equal(a.state, want);
        }
    }
}

static void test_state_sql__cancel_applies_where_the_engine_allows(void **state) {
    check_action(*state, TF_JOB_EV_CANCEL, 1);
}

static void test_state_sql__retry_applies_where_the_engine_allows(void **state) {
    check_action(*state, TF_JOB_EV_RETRY, 0);
}

/* ---- finish and heartbeat ---- */

static void finished(void *arg, int status, const tf_finished_t *results, size_t n) {
    answer_t *a = arg;
    a->status = status;
    a->applied = status == 0 && n == 1 && results[0].applied;
    a->done = 1;
}

static void test_state_sql__finish_applies_only_where_the_engine_allows(void **state) {
    fixture_t *f = *state;
    static const struct {
        tf_job_event_t ev;
        tf_job_state_t to;
    } ends[] = {
        {TF_JOB_EV_SUCCEED, TF_JOB_SUCCEEDED},
        {TF_JOB_EV_FAIL_RETRY, TF_JOB_SCHEDULED},
        {TF_JOB_EV_FAIL_FINAL, TF_JOB_FAILED},
        {TF_JOB_EV_FAIL_EXHAUSTED, TF_JOB_DEAD},
    };
    const char *token = "00000000-0000-4000-8000-0000000000bb";
    for (size_t e = 0; e < sizeof(ends) / sizeof(ends[0]); e++) {
        for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
            char id[TF_ID_LEN];
            tf_job_state_t want = TF_JOB_STATE_COUNT;
            job_in(f, (tf_job_state_t)s, token, id);
            tf_finish_t item = {.job_id = id,
                                .lease_token = token,
                                .to = ends[e].to,
                                .result = "{}",
                                .error_type = "E",
                                .run_at_ms = tf_clock_real_ms() + 60000,
                                .attempt_outcome = TF_ATTEMPT_FAILED,
                                .reason = "test",
                                .dependants = tf_job_dependants_action(ends[e].to)};
            answer_t a = {0};
            assert_int_equal(
                f->jobs->finish(f->jobs->ctx, &item, 1, NULL, tf_clock_real_ms(), finished, &a), 0);
            it_run_until(&f->guard, answered, &a, 10000, "the finish");
            assert_int_equal(a.status, 0);
            int allowed = engine_allows((tf_job_state_t)s, ends[e].ev, &want);
            assert_true(!allowed || want == ends[e].to);
            if (a.applied != allowed) {
                fail_msg("%s from %s: applied %d, the engine says %d",
                         tf_job_event_name(ends[e].ev), tf_job_state_name((tf_job_state_t)s),
                         a.applied, allowed);
            }
            assert_int_equal(state_of(f, id), allowed ? want : (tf_job_state_t)s);
        }
    }
}

/* An attempt ends when its run ended (tf_finish_t.ended_at_ms), kept
 * between the attempt's start and the write's now; its transition and the
 * job's finished_at agree. */
static void test_state_sql__finish_records_the_runs_end(void **state) {
    fixture_t *f = *state;
    const char *token = "00000000-0000-4000-8000-0000000000dd";
    int64_t now = tf_clock_real_ms();
    int64_t started = now - 10000;
    static const struct {
        int64_t ended_offset; /* from the start; 0: none given */
        int64_t want_offset;
    } cases[] = {
        {4000, 4000},   /* the run's end */
        {-1000, 0},     /* before the start: the start */
        {25000, 10000}, /* after now: now */
        {0, 10000},     /* none: now */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char id[TF_ID_LEN];
        job_in(f, TF_JOB_RUNNING, token, id);
        it_execf(f->admin,
                 "UPDATE jobs SET started_at = to_timestamp(%lld / 1000.0) WHERE id = '%s'",
                 (long long)started, id);
        tf_finish_t item = {
            .job_id = id,
            .lease_token = token,
            .to = TF_JOB_SUCCEEDED,
            .result = "{}",
            .attempt_outcome = TF_ATTEMPT_SUCCEEDED,
            .reason = "succeeded",
            .ended_at_ms = cases[i].ended_offset != 0 ? started + cases[i].ended_offset : 0,
        };
        answer_t a = {0};
        assert_int_equal(f->jobs->finish(f->jobs->ctx, &item, 1, NULL, now, finished, &a), 0);
        it_run_until(&f->guard, answered, &a, 10000, "the finish");
        assert_int_equal(a.status, 0);
        assert_true(a.applied);
        const char *got = it_execf(
            f->admin,
            "SELECT (extract(epoch FROM a.finished_at) * 1000)::bigint - %lld || ','"
            " || a.duration_ms || ',' || (j.finished_at = a.finished_at) || ','"
            " || (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.to_state = %d"
            "     AND e.at = a.finished_at)"
            " FROM job_attempts a JOIN jobs j ON j.id = a.job_id WHERE a.job_id = '%s'",
            (long long)started, (int)TF_JOB_SUCCEEDED, id);
        char want[64];
        snprintf(want, sizeof(want), "%lld,%lld,true,1", (long long)cases[i].want_offset,
                 (long long)cases[i].want_offset);
        assert_string_equal(got, want);
    }
}

static void beat(void *arg, int status, int64_t expires_at_ms) {
    answer_t *a = arg;
    a->status = status;
    a->applied = status == 0 && expires_at_ms != TF_TIME_NONE;
    a->done = 1;
}

static void test_state_sql__heartbeat_extends_only_running_leases(void **state) {
    fixture_t *f = *state;
    const char *token = "00000000-0000-4000-8000-0000000000cc";
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        char id[TF_ID_LEN];
        job_in(f, (tf_job_state_t)s, token, id);
        answer_t a = {0};
        assert_int_equal(f->jobs->heartbeat(f->jobs->ctx, TENANT, id, token, 30000,
                                            tf_clock_real_ms(), beat, &a),
                         0);
        it_run_until(&f->guard, answered, &a, 10000, "the heartbeat");
        assert_int_equal(a.applied, s == TF_JOB_RUNNING);
        assert_int_equal(a.status, s == TF_JOB_RUNNING ? 0 : TF_ESTALE);
    }
}

/* ---- promotion ---- */

static void counted(void *arg, int status, int64_t count) {
    answer_t *a = arg;
    a->status = status;
    a->applied = (int)count;
    a->done = 1;
}

static void test_state_sql__promote_moves_only_due_scheduled_jobs(void **state) {
    fixture_t *f = *state;
    it_exec(f->admin, "DELETE FROM scheduled");
    char ids[TF_JOB_STATE_COUNT][TF_ID_LEN];
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        job_in(f, (tf_job_state_t)s, "00000000-0000-4000-8000-0000000000dd", ids[s]);
        if (s != TF_JOB_SCHEDULED) { /* a stray due row for a job in another state */
            it_execf(f->admin,
                     "INSERT INTO scheduled (tenant_id, job_id, queue, run_at)"
                     " VALUES ('%s', '%s', 'default', now() - interval '1 second')",
                     TENANT, ids[s]);
        }
    }
    answer_t a = {0};
    assert_int_equal(f->jobs->promote(f->jobs->ctx, 100, tf_clock_real_ms(), counted, &a), 0);
    it_run_until(&f->guard, answered, &a, 10000, "the promotion");
    assert_int_equal(a.status, 0);
    assert_int_equal(a.applied, 1);
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        tf_job_state_t want = (tf_job_state_t)s;
        engine_allows((tf_job_state_t)s, TF_JOB_EV_DUE, &want);
        assert_int_equal(state_of(f, ids[s]), want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_sql__job_states_table_is_the_engines),
        cmocka_unit_test(test_state_sql__cancel_applies_where_the_engine_allows),
        cmocka_unit_test(test_state_sql__retry_applies_where_the_engine_allows),
        cmocka_unit_test(test_state_sql__finish_applies_only_where_the_engine_allows),
        cmocka_unit_test(test_state_sql__finish_records_the_runs_end),
        cmocka_unit_test(test_state_sql__heartbeat_extends_only_running_leases),
        cmocka_unit_test(test_state_sql__promote_moves_only_due_scheduled_jobs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
