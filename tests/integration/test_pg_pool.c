/*
 * test_pg_pool.c - the Postgres pool (adapters/pg/pool.c) against a real
 * PostgreSQL.
 *
 * Needs TASKFLOW_TEST_DATABASE_URL (e.g. the output of `scripts/pg url`
 * after `scripts/pg start`); fails at once when it is unset.  The run
 * creates its own database tf_it_pool_<pid> through that URL and drops it at
 * the end, so runs never see each other's tables.
 *
 * Covers: many statements in one pipelined batch (one implicit transaction),
 * TF_PG_TXN rollback with the failing statement's index, SQLSTATE mapping
 * (unique, foreign key, statement timeout, syntax), 1000 queued batches on two
 * connections answered in order per connection, large batches that need
 * several writes, prepared statements and parameters, terminated backends
 * (in-flight batches fail TF_EUNAVAIL, then the pool reconnects), downtime
 * (the database refuses connections for a while, as in a restart, without
 * disturbing other users of the shared server), the queue timeout against a
 * closed port, and closing with work in flight or from a callback.  Each test runs its own loop on
 * the test's thread; the admin connection is a plain blocking libpq connection used between loop
 * turns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "adapters/metrics/metrics.h"
#include "adapters/pg/pool.h"
#include "tests/integration/it_db.h"
#include "engine/error.h"

#define DB_NAME_MAX 64
#define CONNINFO_MAX 1024

/* Shared by every test of the run: the throwaway database. */
typedef struct {
    char db[DB_NAME_MAX];
    char conninfo[CONNINFO_MAX];
} run_t;

typedef struct {
    run_t *run;
    uv_loop_t loop;
    uv_timer_t guard;
    int timed_out;
    PGconn *admin;       /* blocking connection to the test database */
    tf_pg_pool_t *pool;  /* the test's pool until it is closed */
    tf_metrics_t *owned; /* a registry to destroy after the pool */
} fixture_t;

typedef struct {
    int calls;
    int status;
    int failed_index;
    char sqlstate[6];
    char message[512];
    int nresults;
    char first_value[128];
} reply_log_t;

/* ---- database plumbing -------------------------------------------------- */

static int group_setup(void **state) {
    const char *url = getenv("TASKFLOW_TEST_DATABASE_URL");
    run_t *run = calloc(1, sizeof(*run));
    snprintf(run->db, sizeof(run->db), "tf_it_pool_%ld", (long)getpid());
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", run->db);
    it_server_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", run->db);
    it_server_exec(sql);
    it_conninfo_for(url, run->db, NULL, run->conninfo, sizeof(run->conninfo));
    *state = run;
    return 0;
}

static int group_teardown(void **state) {
    run_t *run = *state;
    if (run == NULL) {
        return 0;
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", run->db);
    it_server_exec(sql);
    free(run);
    return 0;
}

/* ---- loop plumbing ------------------------------------------------------ */

static int setup(void **state) {
    run_t *run = *state;
    fixture_t *f = calloc(1, sizeof(*f));
    f->run = run;
    char sql[160]; /* in case a failed downtime test left it refusing */
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS true", run->db);
    it_server_exec(sql);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    f->admin = it_connect(run->conninfo);
    it_exec(f->admin, "DROP TABLE IF EXISTS t, parent CASCADE");
    it_exec(f->admin, "CREATE TABLE parent (id int PRIMARY KEY)");
    it_exec(f->admin, "CREATE TABLE t (id int PRIMARY KEY, v text, "
                      "parent_id int REFERENCES parent (id))");
    *state = f;
    return 0;
}

static void on_guard(uv_timer_t *timer) {
    ((fixture_t *)timer->data)->timed_out = 1;
}

static void run_until(fixture_t *f, const int *counter, int want, uint64_t timeout_ms) {
    f->timed_out = 0;
    uv_timer_start(&f->guard, on_guard, timeout_ms, 0);
    while (*counter < want && !f->timed_out) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->guard);
    if (f->timed_out) {
        fail_msg("timed out after %llu ms waiting for %d (have %d)", (unsigned long long)timeout_ms,
                 want, *counter);
    }
}

static void run_for(fixture_t *f, uint64_t ms) {
    f->timed_out = 0;
    uv_timer_start(&f->guard, on_guard, ms, 0);
    while (!f->timed_out) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static void on_reply(const tf_pg_reply_t *reply, void *arg) {
    reply_log_t *log = arg;
    log->calls++;
    log->status = reply->status;
    log->failed_index = reply->failed_index;
    snprintf(log->sqlstate, sizeof(log->sqlstate), "%s", reply->sqlstate ? reply->sqlstate : "");
    snprintf(log->message, sizeof(log->message), "%s", reply->message ? reply->message : "");
    log->nresults = (int)reply->nresults;
    log->first_value[0] = '\0';
    if (reply->status == 0 && reply->nresults > 0 && PQntuples(reply->results[0]) > 0) {
        snprintf(log->first_value, sizeof(log->first_value), "%s",
                 PQgetvalue(reply->results[0], 0, 0));
    }
}

static void on_closed(void *arg) {
    (*(int *)arg)++;
}

static tf_pg_pool_t *make_pool(fixture_t *f, const tf_pg_config_t *cfg,
                               const tf_pg_prepared_t *prepared, size_t nprepared,
                               tf_metrics_t *metrics) {
    tf_pg_pool_t *pool = NULL;
    assert_int_equal(tf_pg_pool_create(&f->loop, cfg, prepared, nprepared, metrics, NULL, &pool),
                     0);
    f->pool = pool;
    return pool;
}

static void close_pool(fixture_t *f, tf_pg_pool_t *pool) {
    int closed = 0;
    f->pool = NULL;
    tf_pg_pool_close(pool, on_closed, &closed);
    run_until(f, &closed, 1, 40000);
}

/* Closes what a failed test left open (its pool may wait for a batch in
 * flight), then checks that no handle is left on the loop. */
static int teardown(void **state) {
    fixture_t *f = *state;
    *state = f->run;
    if (f->pool != NULL) {
        close_pool(f, f->pool);
    }
    tf_metrics_destroy(f->owned);
    PQfinish(f->admin);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Submits one batch and runs the loop until it is answered. */
static void submit_wait(fixture_t *f, tf_pg_pool_t *pool, const tf_pg_stmt_t *stmts, size_t n,
                        unsigned flags, reply_log_t *log) {
    int before = log->calls;
    assert_int_equal(tf_pg_submit(pool, stmts, n, flags, on_reply, log), 0);
    run_until(f, &log->calls, before + 1, 20000);
}

static int count_rows(fixture_t *f) {
    return atoi(it_exec(f->admin, "SELECT count(*) FROM t"));
}

/* ---- tests -------------------------------------------------------------- */

enum { MANY = 502 };

typedef struct {
    int calls;
    int status;
    int in_order; /* statement i returned i */
    char first[64];
    char last[64];
} many_log_t;

static void on_many(const tf_pg_reply_t *reply, void *arg) {
    many_log_t *log = arg;
    log->calls++;
    log->status = reply->status;
    if (reply->status != 0 || reply->nresults != MANY) {
        return;
    }
    log->in_order = 1;
    for (int i = 1; i < MANY - 1; i++) {
        log->in_order &= atoi(PQgetvalue(reply->results[i], 0, 0)) == i;
    }
    snprintf(log->first, sizeof(log->first), "%s", PQgetvalue(reply->results[0], 0, 0));
    snprintf(log->last, sizeof(log->last), "%s", PQgetvalue(reply->results[MANY - 1], 0, 0));
}

/* 500 inserts between two reads of the transaction id, in one batch, with
 * and without TF_PG_TXN: every statement answers in order, and all ran in
 * the one transaction that a single sync (one round trip) gives. */
static void test_pg_pool__many_statements_in_one_batch(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->run->conninfo, .size = 1};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, NULL);
    static tf_pg_stmt_t stmts[MANY];
    static char ids[MANY][16];
    static const char *values[MANY][1];
    stmts[0] = (tf_pg_stmt_t){.sql = "SELECT txid_current()::text"};
    for (int i = 1; i < MANY - 1; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%d", i);
        values[i][0] = ids[i];
        stmts[i] = (tf_pg_stmt_t){.sql = "INSERT INTO t (id, v) VALUES ($1, 'x') RETURNING id",
                                  .nparams = 1,
                                  .values = values[i]};
    }
    stmts[MANY - 1] =
        (tf_pg_stmt_t){.sql = "SELECT txid_current()::text || ' ' || count(*) FROM t"};
    for (unsigned flags = 0; flags <= TF_PG_TXN; flags += TF_PG_TXN) {
        many_log_t log = {0};
        assert_int_equal(tf_pg_submit(pool, stmts, MANY, flags, on_many, &log), 0);
        run_until(f, &log.calls, 1, 20000);
        assert_int_equal(log.status, 0);
        assert_true(log.in_order);
        char want[96];
        snprintf(want, sizeof(want), "%s %d", log.first, MANY - 2);
        assert_string_equal(log.last, want);
        assert_int_equal(count_rows(f), MANY - 2);
        it_exec(f->admin, "DELETE FROM t");
    }
    close_pool(f, pool);
}

typedef struct {
    int calls;
    int status;
    char values[4][64];
} multi_log_t;

static void on_multi(const tf_pg_reply_t *reply, void *arg) {
    multi_log_t *log = arg;
    log->calls++;
    log->status = reply->status;
    for (size_t i = 0; reply->status == 0 && i < reply->nresults && i < 4; i++) {
        const PGresult *res = reply->results[i];
        snprintf(log->values[i], sizeof(log->values[i]), "%s",
                 PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    }
}

/* A failing statement in a TF_PG_TXN batch rolls back everything, names the
 * failing statement (BEGIN not counted), and the connection is clean for the
 * next batch (the pool rolls back the aborted session). */
static void test_pg_pool__txn_failure_rolls_back_the_batch(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->run->conninfo, .size = 1};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, NULL);
    const tf_pg_stmt_t stmts[] = {
        {.sql = "INSERT INTO t (id) VALUES (1)"},
        {.sql = "INSERT INTO t (id) VALUES (2)"},
        {.sql = "INSERT INTO t (id) VALUES (1)"},
        {.sql = "INSERT INTO t (id) VALUES (3)"},
    };
    reply_log_t log = {0};
    submit_wait(f, pool, stmts, 4, TF_PG_TXN, &log);
    assert_int_equal(log.status, TF_ECONFLICT);
    assert_string_equal(log.sqlstate, "23505");
    assert_int_equal(log.failed_index, 2);
    assert_int_equal(log.nresults, 0);
    assert_non_null(strstr(log.message, "t_pkey"));
    assert_int_equal(count_rows(f), 0);
    /* Same connection, next batch: not "current transaction is aborted". */
    const tf_pg_stmt_t next[] = {{.sql = "INSERT INTO t (id) VALUES (7)"},
                                 {.sql = "SELECT count(*)::text FROM t"}};
    submit_wait(f, pool, next, 2, TF_PG_TXN, &log);
    assert_int_equal(log.status, 0);
    assert_int_equal(count_rows(f), 1);
    /* Without TF_PG_TXN the batch is still one implicit transaction: the
     * statements before the failing one are rolled back too. */
    submit_wait(f, pool, stmts, 4, 0, &log);
    assert_int_equal(log.status, TF_ECONFLICT);
    assert_int_equal(log.failed_index, 2);
    assert_int_equal(count_rows(f), 1);
    close_pool(f, pool);
}

/* SQLSTATEs become engine codes. */
static void test_pg_pool__errors_map_to_engine_codes(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->run->conninfo, .size = 1};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, NULL);
    reply_log_t log = {0};
    it_exec(f->admin, "INSERT INTO t (id) VALUES (1)");
    const tf_pg_stmt_t dup = {.sql = "INSERT INTO t (id) VALUES (1)"};
    submit_wait(f, pool, &dup, 1, 0, &log);
    assert_int_equal(log.status, TF_ECONFLICT);
    assert_int_equal(log.failed_index, 0);
    const tf_pg_stmt_t fk = {.sql = "INSERT INTO t (id, parent_id) VALUES (2, 42)"};
    submit_wait(f, pool, &fk, 1, 0, &log);
    assert_int_equal(log.status, TF_EINVAL);
    assert_string_equal(log.sqlstate, "23503");
    const tf_pg_stmt_t slow[] = {{.sql = "SET LOCAL statement_timeout = 50"},
                                 {.sql = "SELECT pg_sleep(5)"}};
    submit_wait(f, pool, slow, 2, TF_PG_TXN, &log);
    assert_int_equal(log.status, TF_ETIMEDOUT);
    assert_string_equal(log.sqlstate, "57014");
    assert_int_equal(log.failed_index, 1);
    const tf_pg_stmt_t syntax[] = {{.sql = "SELECT 1"}, {.sql = "SELEKT 1"}};
    submit_wait(f, pool, syntax, 2, 0, &log);
    assert_int_equal(log.status, TF_EIO);
    assert_string_equal(log.sqlstate, "42601");
    assert_int_equal(log.failed_index, 1);
    const tf_pg_stmt_t bad_uuid = {.sql = "SELECT 'not-a-uuid'::uuid"};
    submit_wait(f, pool, &bad_uuid, 1, 0, &log);
    assert_int_equal(log.status, TF_EINVAL);
    close_pool(f, pool);
}

typedef struct {
    int done;
    int errors;
    int seq[1000];
    int pid[1000];
} order_log_t;

typedef struct {
    order_log_t *log;
    int index;
} order_arg_t;

static void on_ordered(const tf_pg_reply_t *reply, void *arg) {
    order_arg_t *a = arg;
    order_log_t *log = a->log;
    if (reply->status != 0) {
        log->errors++;
    } else {
        log->pid[log->done] = atoi(PQgetvalue(reply->results[0], 0, 0));
        log->seq[log->done] = atoi(PQgetvalue(reply->results[0], 0, 1));
    }
    log->done++;
}

/* 1000 batches queued at once on two connections: all complete, both
 * connections work, and each connection answers in submission order. */
static void test_pg_pool__thousand_queued_batches_complete_in_order(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->run->conninfo, .size = 2};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, NULL);
    static order_log_t log;
    static order_arg_t args[1000];
    static char nums[1000][8];
    static const char *values[1000][1];
    memset(&log, 0, sizeof(log));
    for (int i = 0; i < 1000; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%d", i);
        values[i][0] = nums[i];
        args[i] = (order_arg_t){&log, i};
        const tf_pg_stmt_t stmt = {
            .sql = "SELECT pg_backend_pid(), $1::int", .nparams = 1, .values = values[i]};
        assert_int_equal(tf_pg_submit(pool, &stmt, 1, i % 2 ? TF_PG_TXN : 0, on_ordered, &args[i]),
                         0);
    }
    run_until(f, &log.done, 1000, 60000);
    assert_int_equal(log.errors, 0);
    int pids[2] = {0, 0};
    int last[2] = {-1, -1};
    for (int i = 0; i < 1000; i++) {
        int k = log.pid[i] == pids[0] ? 0 : log.pid[i] == pids[1] ? 1 : pids[0] == 0 ? 0 : 1;
        if (pids[k] == 0) {
            pids[k] = log.pid[i];
        }
        assert_int_equal(pids[k], log.pid[i]); /* at most two backends */
        assert_true(log.seq[i] > last[k]);     /* in order per connection */
        last[k] = log.seq[i];
    }
    assert_true(pids[0] != 0 && pids[1] != 0); /* both connections took work */
    close_pool(f, pool);
}

typedef struct {
    int calls;
    int status;
    size_t nresults;
    long long total;
} sum_log_t;

static void on_sum(const tf_pg_reply_t *reply, void *arg) {
    sum_log_t *log = arg;
    log->calls++;
    log->status = reply->status;
    log->nresults = reply->nresults;
    for (size_t i = 1; reply->status == 0 && i < reply->nresults; i++) {
        log->total += atoll(PQgetvalue(reply->results[i], 0, 0));
    }
}

/* A batch far larger than the socket buffers, sent while the server sleeps
 * and so reads nothing: PQflush() cannot send it at once, the rest goes out
 * on UV_WRITABLE events, and every statement comes back. */
static void test_pg_pool__large_batch_needs_several_writes(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->run->conninfo, .size = 1};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, NULL);
    enum { N = 1200, SIZE = 8000 };
    char *big = malloc(SIZE + 1);
    memset(big, 'b', SIZE);
    big[SIZE] = '\0';
    static tf_pg_stmt_t stmts[N + 1];
    static char ids[N][8];
    static const char *values[N][2];
    stmts[0] = (tf_pg_stmt_t){.sql = "SELECT pg_sleep(0.3)"};
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%d", i);
        values[i][0] = ids[i];
        values[i][1] = big;
        stmts[i + 1] =
            (tf_pg_stmt_t){.sql = "SELECT length($2) + $1::int", .nparams = 2, .values = values[i]};
    }
    sum_log_t log = {0};
    assert_int_equal(tf_pg_submit(pool, stmts, N + 1, 0, on_sum, &log), 0);
    free(big); /* the pool copied it */
    run_until(f, &log.calls, 1, 20000);
    assert_int_equal(log.status, 0);
    assert_int_equal(log.nresults, N + 1);
    assert_true(log.total == (long long)N * SIZE + (long long)N * (N - 1) / 2);
    close_pool(f, pool);
}

/* Registered statements are prepared on connect and take parameters
 * (NULL as SQL NULL, explicit lengths); ad-hoc SQL mixes with them. */
static void test_pg_pool__prepared_statements(void **state) {
    fixture_t *f = *state;
    const tf_pg_prepared_t prepared[] = {
        {"t_insert", "INSERT INTO t (id, v) VALUES ($1, $2) RETURNING id"},
        {"t_get", "SELECT coalesce(v, '<null>') FROM t WHERE id = $1"},
    };
    const tf_pg_config_t cfg = {.conninfo = f->run->conninfo, .size = 2};
    tf_pg_pool_t *pool = make_pool(f, &cfg, prepared, 2, NULL);
    const char *row1[] = {"1", "hello world"};
    const int len1[] = {1, 5}; /* "hello" only */
    const char *row2[] = {"2", NULL};
    const char *get1[] = {"1"};
    const char *get2[] = {"2"};
    const tf_pg_stmt_t stmts[] = {
        {.prepared = "t_insert", .nparams = 2, .values = row1, .lengths = len1},
        {.prepared = "t_insert", .nparams = 2, .values = row2},
        {.sql = "SELECT 'ad hoc'"},
        {.prepared = "t_get", .nparams = 1, .values = get1},
    };
    multi_log_t log = {0};
    assert_int_equal(tf_pg_submit(pool, stmts, 4, TF_PG_TXN, on_multi, &log), 0);
    run_until(f, &log.calls, 1, 10000);
    assert_int_equal(log.status, 0);
    assert_string_equal(log.values[0], "1");
    assert_string_equal(log.values[2], "ad hoc");
    assert_string_equal(log.values[3], "hello");
    const tf_pg_stmt_t get_null = {.prepared = "t_get", .nparams = 1, .values = get2};
    reply_log_t one = {0};
    submit_wait(f, pool, &get_null, 1, 0, &one);
    assert_string_equal(one.first_value, "<null>");
    /* Both connections prepared the statements: wait until both are up,
     * then keep both busy at once. */
    const char *backends = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client "
                           "backend' AND datname = current_database() AND pid <> pg_backend_pid()";
    for (int i = 0; i < 250 && strcmp(it_exec(f->admin, backends), "2") != 0; i++) {
        run_for(f, 20);
    }
    const tf_pg_stmt_t busy[] = {{.sql = "SELECT pg_sleep(0.1)"},
                                 {.prepared = "t_get", .nparams = 1, .values = get1}};
    multi_log_t both[2] = {{0}};
    assert_int_equal(tf_pg_submit(pool, busy, 2, 0, on_multi, &both[0]), 0);
    assert_int_equal(tf_pg_submit(pool, busy, 2, 0, on_multi, &both[1]), 0);
    run_until(f, &both[1].calls, 1, 10000);
    run_until(f, &both[0].calls, 1, 10000);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(both[i].status, 0);
        assert_string_equal(both[i].values[1], "hello");
    }
    close_pool(f, pool);
}

/* pg_terminate_backend() of the pool's backends while batches run: the
 * in-flight batches fail with TF_EUNAVAIL, the pool reconnects by itself
 * and later batches succeed; idle connections killed later are noticed and
 * replaced too. */
static void test_pg_pool__terminated_backends_fail_then_reconnect(void **state) {
    fixture_t *f = *state;
    char conninfo[CONNINFO_MAX];
    it_conninfo_for(getenv("TASKFLOW_TEST_DATABASE_URL"), f->run->db, "tf-it-terminate", conninfo,
                    sizeof(conninfo));
    tf_metrics_t *metrics = NULL;
    assert_int_equal(tf_metrics_create(&metrics), 0);
    f->owned = metrics;
    const tf_pg_config_t cfg = {.conninfo = conninfo, .size = 2, .reconnect_min_ms = 20};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, metrics);
    reply_log_t warm = {0};
    const tf_pg_stmt_t one = {.sql = "SELECT 1"};
    submit_wait(f, pool, &one, 1, 0, &warm);
    run_for(f, 100); /* both connections up */
    assert_true(tf_pg_pool_connected(pool));
    reply_log_t slow[2] = {{0}};
    const tf_pg_stmt_t sleep = {.sql = "SELECT pg_sleep(30)"};
    assert_int_equal(tf_pg_submit(pool, &sleep, 1, 0, on_reply, &slow[0]), 0);
    assert_int_equal(tf_pg_submit(pool, &sleep, 1, TF_PG_TXN, on_reply, &slow[1]), 0);
    run_for(f, 200); /* both sleeping on the server */
    const char *kill = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE application_name = 'tf-it-terminate' "
                       "AND datname = current_database()";
    assert_string_equal(it_exec(f->admin, kill), "2");
    run_until(f, &slow[1].calls, 1, 10000);
    run_until(f, &slow[0].calls, 1, 10000);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(slow[i].status, TF_EUNAVAIL);
        assert_int_equal(slow[i].failed_index, -1);
    }
    reply_log_t after = {0};
    submit_wait(f, pool, &one, 1, 0, &after);
    assert_int_equal(after.status, 0);
    /* Idle connections killed: noticed on the loop, replaced. */
    run_for(f, 200);
    assert_string_equal(it_exec(f->admin, kill), "2");
    run_for(f, 300);
    submit_wait(f, pool, &one, 1, 0, &after);
    assert_int_equal(after.status, 0);
    assert_true(tf_pg_pool_connected(pool));
    char *text = NULL;
    assert_int_equal(tf_metrics_render(metrics, &text, NULL), 0);
    assert_null(strstr(text, "taskflow_pg_reconnects_total{pool=\"default\"} 0\n"));
    assert_non_null(
        strstr(text, "taskflow_pg_batches_total{pool=\"default\",result=\"error\"} 2\n"));
    free(text);
    close_pool(f, pool);
}

/* Downtime: backends killed and the database refusing connections for a
 * while (as during a server restart).  The in-flight batch fails, attempts
 * fail and back off, a batch submitted meanwhile waits in the queue and
 * succeeds once connections are allowed again. */
static void test_pg_pool__recovers_after_downtime(void **state) {
    fixture_t *f = *state;
    char conninfo[CONNINFO_MAX];
    it_conninfo_for(getenv("TASKFLOW_TEST_DATABASE_URL"), f->run->db, "tf-it-downtime", conninfo,
                    sizeof(conninfo));
    const tf_pg_config_t cfg = {.conninfo = conninfo,
                                .size = 2,
                                .reconnect_min_ms = 20,
                                .reconnect_max_ms = 200,
                                .queue_timeout_ms = 10000};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, NULL);
    reply_log_t first = {0};
    const tf_pg_stmt_t sleep = {.sql = "SELECT pg_sleep(30)"};
    assert_int_equal(tf_pg_submit(pool, &sleep, 1, 0, on_reply, &first), 0);
    run_for(f, 200);
    char sql[256];
    /* Postgres refuses this for the current database: go through the URL's. */
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS false", f->run->db);
    it_server_exec(sql);
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE application_name = 'tf-it-downtime' AND datname = '%s'",
             f->run->db);
    it_server_exec(sql);
    run_until(f, &first.calls, 1, 5000);
    assert_int_equal(first.status, TF_EUNAVAIL);
    /* The idle connection was killed too; a batch handed to it before the
     * loop reads its end would fail as well (the pool cannot know whether
     * the server ran it, so it never retries).  Wait until it is noticed. */
    for (int i = 0; i < 100 && tf_pg_pool_connected(pool); i++) {
        run_for(f, 20);
    }
    assert_false(tf_pg_pool_connected(pool));
    reply_log_t during = {0};
    const tf_pg_stmt_t one = {.sql = "SELECT 'back'"};
    assert_int_equal(tf_pg_submit(pool, &one, 1, 0, on_reply, &during), 0);
    run_for(f, 500); /* several refused attempts */
    assert_int_equal(during.calls, 0);
    assert_false(tf_pg_pool_connected(pool));
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS true", f->run->db);
    it_server_exec(sql);
    run_until(f, &during.calls, 1, 5000);
    assert_int_equal(during.status, 0);
    assert_string_equal(during.first_value, "back");
    close_pool(f, pool);
}

/* A port on 127.0.0.1 where nothing listens. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

/* Nothing listens: queued batches fail with TF_EUNAVAIL once
 * queue_timeout_ms has passed, not before. */
static void test_pg_pool__queue_timeout_when_server_unreachable(void **state) {
    fixture_t *f = *state;
    char conninfo[128];
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d dbname=x", closed_port());
    const tf_pg_config_t cfg = {.conninfo = conninfo, .queue_timeout_ms = 300};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, NULL);
    reply_log_t log = {0};
    const tf_pg_stmt_t one = {.sql = "SELECT 1"};
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    assert_int_equal(tf_pg_submit(pool, &one, 1, 0, on_reply, &log), 0);
    assert_int_equal(tf_pg_submit(pool, &one, 1, TF_PG_TXN, on_reply, &log), 0);
    run_until(f, &log.calls, 2, 5000);
    uint64_t waited = uv_now(&f->loop) - start;
    assert_int_equal(log.status, TF_EUNAVAIL);
    assert_true(waited >= 300 && waited < 2000);
    assert_false(tf_pg_pool_connected(pool));
    close_pool(f, pool);
}

/* Close waits for the batch in flight, answers it normally, then frees. */
static void test_pg_pool__close_waits_for_in_flight_batches(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->run->conninfo, .size = 1};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, 0, NULL);
    reply_log_t warm = {0};
    const tf_pg_stmt_t one = {.sql = "SELECT 1"};
    submit_wait(f, pool, &one, 1, 0, &warm);
    reply_log_t running = {0};
    reply_log_t queued = {0};
    const tf_pg_stmt_t sleep = {.sql = "SELECT pg_sleep(0.2)::text || 'slept'"};
    assert_int_equal(tf_pg_submit(pool, &sleep, 1, 0, on_reply, &running), 0);
    run_for(f, 50); /* sent */
    assert_int_equal(tf_pg_submit(pool, &one, 1, 0, on_reply, &queued), 0);
    int closed = 0;
    f->pool = NULL;
    tf_pg_pool_close(pool, on_closed, &closed);
    assert_int_equal(queued.status, TF_ESHUTDOWN);
    assert_int_equal(running.calls, 0);
    run_until(f, &closed, 1, 5000);
    assert_int_equal(running.calls, 1);
    assert_int_equal(running.status, 0);
    assert_string_equal(running.first_value, "slept");
}

typedef struct {
    tf_pg_pool_t *pool;
    int closed;
    int calls;
} closer_t;

static void on_reply_close(const tf_pg_reply_t *reply, void *arg) {
    closer_t *c = arg;
    c->calls++;
    assert_int_equal(reply->status, 0);
    tf_pg_pool_close(c->pool, on_closed, &c->closed);
}

/* A callback may close the pool. */
static void test_pg_pool__callback_may_close_the_pool(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->run->conninfo, .size = 2};
    closer_t c = {0};
    c.pool = make_pool(f, &cfg, NULL, 0, NULL);
    f->pool = NULL; /* closed by the callback */
    reply_log_t others = {0};
    const tf_pg_stmt_t one = {.sql = "SELECT 1"};
    assert_int_equal(tf_pg_submit(c.pool, &one, 1, 0, on_reply_close, &c), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tf_pg_submit(c.pool, &one, 1, 0, on_reply, &others), 0);
    }
    run_until(f, &c.closed, 1, 10000);
    assert_int_equal(c.calls, 1);
    assert_int_equal(others.calls, 5); /* answered or failed with TF_ESHUTDOWN */
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
        cmocka_unit_test_setup_teardown(test_pg_pool__many_statements_in_one_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__txn_failure_rolls_back_the_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__errors_map_to_engine_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__thousand_queued_batches_complete_in_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__large_batch_needs_several_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__prepared_statements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__terminated_backends_fail_then_reconnect,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__recovers_after_downtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__queue_timeout_when_server_unreachable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__close_waits_for_in_flight_batches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_pool__callback_may_close_the_pool, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
