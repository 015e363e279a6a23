/*
 * test_migrate.c - migrations (adapters/pg/migrate.c) and the first schema
 * (adapters/pg/migrations/0001_initial.sql) against a real PostgreSQL.
 *
 * Needs TASKFLOW_TEST_DATABASE_URL (e.g. `scripts/pg url` after
 * `scripts/pg start`); fails at once when it is unset.  Every test gets a
 * fresh database tf_it_mig_<pid>_<n>, created through that URL and dropped
 * afterwards.
 *
 * Covers: a second run is a no-op, two concurrent appliers (two threads)
 * serialize without error, a database newer than the binary is refused with
 * TF_ECONFLICT and both versions in the message, a failing migration leaves
 * nothing behind, an unreachable server gives TF_EUNAVAIL, and the schema
 * carries the hot paths it was designed for (claim from `ready` with SKIP
 * LOCKED, HOT completion updates, idempotency keys, history partitions with
 * a default partition).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "adapters/pg/migrate.h"
#include "tests/integration/it_db.h"
#include "engine/error.h"

#define CONNINFO_MAX 1024

typedef struct {
    char db[64];
    char conninfo[CONNINFO_MAX];
    PGconn *conn; /* blocking connection to the test's database */
} fixture_t;

/* ---- database plumbing -------------------------------------------------- */

/* Runs SQL and returns the first value of the first row ("" if none). */
static const char *sql_value(PGconn *conn, const char *sql) {
    static char value[512];
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    }
    value[0] = '\0';
    if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        snprintf(value, sizeof(value), "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return value;
}

/* Runs SQL that must fail with `sqlstate`. */
static void sql_fails(PGconn *conn, const char *sql, const char *sqlstate) {
    PGresult *res = PQexec(conn, sql);
    const char *got = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (got == NULL || strcmp(got, sqlstate) != 0) {
        fail_msg("%s: expected SQLSTATE %s, got %s", sql, sqlstate, got ? got : "success");
    }
    PQclear(res);
}

static int setup(void **state) {
    static int counter;
    const char *url = getenv("TASKFLOW_TEST_DATABASE_URL");
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->db, sizeof(f->db), "tf_it_mig_%ld_%d", (long)getpid(), ++counter);
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", f->db);
    it_server_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->db);
    it_server_exec(sql);
    it_conninfo_for(url, f->db, NULL, f->conninfo, sizeof(f->conninfo));
    f->conn = it_connect(f->conninfo);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    PQfinish(f->conn);
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->db);
    it_server_exec(sql);
    free(f);
    return 0;
}

static void apply_ok(fixture_t *f, int want_applied) {
    int applied = -1, version = -1;
    char err[512] = "";
    int rc = tf_migrate_apply(f->conninfo, NULL, &applied, &version, err, sizeof(err));
    if (rc != 0) {
        fail_msg("tf_migrate_apply: %d %s", rc, err);
    }
    assert_int_equal(applied, want_applied);
    assert_int_equal(version, tf_migrate_latest());
}

/* ---- tests -------------------------------------------------------------- */

static void test_migrate__second_run_is_a_noop(void **state) {
    fixture_t *f = *state;
    assert_true(tf_migrate_latest() >= 1);
    assert_int_equal(tf_migrate_latest(), tf_migrations[tf_migrations_count - 1].version);
    apply_ok(f, (int)tf_migrations_count);
    char count[16];
    snprintf(count, sizeof(count), "%zu", tf_migrations_count);
    assert_string_equal(sql_value(f->conn, "SELECT count(*) FROM schema_migrations"), count);
    assert_string_equal(sql_value(f->conn, "SELECT name FROM schema_migrations WHERE version = 1"),
                        "0001_initial");
    apply_ok(f, 0);
    assert_string_equal(sql_value(f->conn, "SELECT count(*) FROM schema_migrations"), count);
    /* applied and version may be NULL, err too. */
    assert_int_equal(tf_migrate_apply(f->conninfo, NULL, NULL, NULL, NULL, 0), 0);
}

typedef struct {
    const char *conninfo;
    int rc;
    int applied;
    int version;
    char err[256];
} applier_t;

static void *apply_thread(void *arg) {
    applier_t *a = arg;
    a->rc = tf_migrate_apply(a->conninfo, NULL, &a->applied, &a->version, a->err, sizeof(a->err));
    return NULL;
}

/* Two appliers at once: the advisory lock makes one wait for the other,
 * which then finds nothing to do. */
static void test_migrate__concurrent_appliers_serialize(void **state) {
    fixture_t *f = *state;
    applier_t a[2] = {{.conninfo = f->conninfo}, {.conninfo = f->conninfo}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, apply_thread, &a[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        if (a[i].rc != 0) {
            fail_msg("applier %d: %d %s", i, a[i].rc, a[i].err);
        }
        assert_int_equal(a[i].version, tf_migrate_latest());
    }
    assert_int_equal(a[0].applied + a[1].applied, (int)tf_migrations_count);
    assert_true(a[0].applied == 0 || a[1].applied == 0);
    char count[16];
    snprintf(count, sizeof(count), "%zu", tf_migrations_count);
    assert_string_equal(sql_value(f->conn, "SELECT count(*) FROM schema_migrations"), count);
}

static void test_migrate__newer_database_is_refused(void **state) {
    fixture_t *f = *state;
    apply_ok(f, (int)tf_migrations_count);
    char sql[160];
    int newer = tf_migrate_latest() + 1;
    snprintf(sql, sizeof(sql),
             "INSERT INTO schema_migrations (version, name) VALUES (%d, 'from_the_future')", newer);
    sql_value(f->conn, sql);
    int applied = -1, version = -1;
    char err[512] = "";
    assert_int_equal(tf_migrate_apply(f->conninfo, NULL, &applied, &version, err, sizeof(err)),
                     TF_ECONFLICT);
    assert_int_equal(applied, 0);
    char want[32];
    snprintf(want, sizeof(want), "version %d", newer);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want), "version %d", tf_migrate_latest());
    assert_non_null(strstr(err, want));
    assert_null(strchr(err, '\n'));
}

/* A migration that fails is rolled back whole, and nothing is recorded. */
static void test_migrate__failed_migration_leaves_nothing(void **state) {
    fixture_t *f = *state;
    /* A table in the way: 0001 creates `settings` first, then fails on it. */
    sql_value(f->conn, "CREATE TABLE queues (wrong int)");
    int applied = -1;
    char err[512] = "";
    assert_int_equal(tf_migrate_apply(f->conninfo, NULL, &applied, NULL, err, sizeof(err)), TF_EIO);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(err, "0001_initial"));
    assert_non_null(strstr(err, "queues"));
    assert_string_equal(sql_value(f->conn, "SELECT to_regclass('settings')::text"), "");
    assert_string_equal(sql_value(f->conn, "SELECT count(*) FROM schema_migrations"), "0");
}

static void test_migrate__unreachable_server_is_unavailable(void **state) {
    (void)state;
    char err[512] = "";
    int rc = tf_migrate_apply("host=127.0.0.1 port=1 dbname=x connect_timeout=2", NULL, NULL, NULL,
                              err, sizeof(err));
    assert_int_equal(rc, TF_EUNAVAIL);
    assert_non_null(strstr(err, "cannot connect"));
}

static const char SQL_SEED[] =
    "INSERT INTO tenants (id, name) VALUES "
    " ('00000000-0000-7000-8000-000000000001', 'a'), ('00000000-0000-7000-8000-000000000002', 'b');"
    "INSERT INTO jobs (tenant_id, id, type, idempotency_key, request_hash) SELECT"
    " ('00000000-0000-7000-8000-00000000000' || (1 + i % 2))::uuid, gen_random_uuid(), 'noop',"
    " 'k' || i, '\\x01' FROM generate_series(1, 100) i;"
    "INSERT INTO ready (tenant_id, job_id, queue, builtin, sort_key, run_at)"
    " SELECT tenant_id, id, queue, false, run_at, run_at FROM jobs;";

/* The claim of SCHEDULING.md against `ready`, moving jobs to running. */
static const char SQL_CLAIM[] =
    "WITH c AS MATERIALIZED ("
    "  SELECT tenant_id, job_id FROM ready"
    "  WHERE queue = 'default' AND builtin = false"
    "    AND tenant_id = '00000000-0000-7000-8000-000000000001'"
    "  ORDER BY sort_key LIMIT 10 FOR UPDATE SKIP LOCKED),"
    " d AS (DELETE FROM ready r USING c WHERE (r.tenant_id, r.job_id) = (c.tenant_id, c.job_id)"
    "  RETURNING r.tenant_id, r.job_id, r.queue),"
    " run AS (INSERT INTO running (tenant_id, job_id, queue, lease_expires_at, locked_by)"
    "  SELECT tenant_id, job_id, queue, now() + interval '30 s', 'w1' FROM d RETURNING job_id)"
    "UPDATE jobs j SET state = 2, attempts = attempts + 1, lease_token = gen_random_uuid(),"
    " lease_expires_at = now() + interval '30 s', locked_by = 'w1', started_at = now(),"
    " updated_at = now() FROM d WHERE (j.tenant_id, j.id) = (d.tenant_id, d.job_id)";

static const char SQL_COMPLETE[] =
    "WITH r AS (DELETE FROM running RETURNING tenant_id, job_id),"
    " e AS (INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason)"
    "  SELECT tenant_id, job_id, 2, 3, 'ok' FROM r)"
    "UPDATE jobs j SET state = 3, finished_at = now(), updated_at = now(), result = '{}'"
    " FROM r WHERE (j.tenant_id, j.id) = (r.tenant_id, r.job_id)";

static const char SQL_MUTABLE_INDEXED[] =
    "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
    " WHERE i.indrelid = 'jobs'::regclass AND a.attnum > 0"
    "   AND (a.attnum = ANY (i.indkey)"
    "        OR pg_get_expr(i.indpred, i.indrelid) ~ ('\\m' || a.attname || '\\M'))"
    "   AND a.attname IN ('state', 'priority', 'attempts', 'result', 'last_error_type',"
    "     'last_error_message', 'pending_parents', 'lease_token', 'lease_expires_at',"
    "     'locked_by', 'run_at', 'updated_at', 'started_at', 'finished_at')";

/* The schema serves what it was designed for. */
static void test_migrate__schema_carries_the_hot_paths(void **state) {
    fixture_t *f = *state;
    apply_ok(f, (int)tf_migrations_count);
    sql_value(f->conn, SQL_SEED);
    sql_value(f->conn, SQL_CLAIM);
    assert_string_equal(sql_value(f->conn, "SELECT count(*) FROM running"), "10");
    assert_string_equal(sql_value(f->conn, "SELECT count(*) FROM ready"), "90");
    sql_value(f->conn, SQL_COMPLETE);
    assert_string_equal(sql_value(f->conn, "SELECT count(*) FROM jobs WHERE state = 3"), "10");
    /* No index on jobs (key or partial predicate) mentions a column that a
     * claim, heartbeat or completion changes, so those updates can be HOT. */
    assert_string_equal(sql_value(f->conn, SQL_MUTABLE_INDEXED), "0");
    /* Idempotency key: unique per tenant (tenant 1 holds k2, k4, ...),
     * free across tenants. */
    sql_fails(f->conn,
              "INSERT INTO jobs (tenant_id, id, type, idempotency_key, request_hash) VALUES "
              "('00000000-0000-7000-8000-000000000001', gen_random_uuid(), 'x', 'k2', '\\x02')",
              "23505");
    sql_value(f->conn,
              "INSERT INTO jobs (tenant_id, id, type, idempotency_key, request_hash) VALUES "
              "('00000000-0000-7000-8000-000000000002', gen_random_uuid(), 'x', 'k2', '\\x02')");
    /* History lands in this month's partition, far dates in the default. */
    assert_string_equal(
        sql_value(f->conn, "SELECT tableoid::regclass::text FROM job_events LIMIT 1"),
        sql_value(f->conn, "SELECT 'job_events_' || to_char(now() AT TIME ZONE 'UTC', "
                           "'YYYY_MM')"));
    assert_string_equal(
        sql_value(f->conn,
                  "INSERT INTO job_attempts (tenant_id, job_id, attempt, worker, lease_token, "
                  "started_at, outcome) VALUES ('00000000-0000-7000-8000-000000000001', "
                  "gen_random_uuid(), 1, 'w', gen_random_uuid(), '2099-01-01', 0) "
                  "RETURNING tableoid::regclass::text"),
        "job_attempts_default");
    /* The partition helper is idempotent. */
    sql_value(f->conn, "SELECT tf_create_history_partitions(now()::date, 3)");
    /* Bad states and scopes are rejected by the database too. */
    sql_fails(f->conn, "UPDATE jobs SET state = 9", "23514");
    sql_fails(f->conn,
              "INSERT INTO cap_counters (scope, tenant_id, queue) VALUES "
              "(2, '00000000-0000-7000-8000-000000000001', 'default')",
              "23514");
}

/* Without a database the run fails at once, saying how to get one. */
static int require_database_url(void) {
    const char *url = getenv("TASKFLOW_TEST_DATABASE_URL");
    if (url != NULL && url[0] != '\0') {
        return 0;
    }
    fprintf(stderr, "FAILED: TASKFLOW_TEST_DATABASE_URL is not set. Start a server with "
                    "`scripts/pg start` and export TASKFLOW_TEST_DATABASE_URL=$(scripts/pg url)\n");
    return 1;
}

int main(void) {
    if (require_database_url() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate__second_run_is_a_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate__concurrent_appliers_serialize, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_migrate__newer_database_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate__failed_migration_leaves_nothing, setup,
                                        teardown),
        cmocka_unit_test(test_migrate__unreachable_server_is_unavailable),
        cmocka_unit_test_setup_teardown(test_migrate__schema_carries_the_hot_paths, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
