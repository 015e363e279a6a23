/*
 * test_pool_unit.c - unit tests for the Postgres pool (adapters/pg/pool.c,
 * conn.c, batch.c) that need no database.
 *
 * Covers configuration validation, submit argument errors, the SQLSTATE
 * mapping, the queue bound, queue timeout and closing of a pool whose server
 * does not answer (a closed port on 127.0.0.1), idempotent metric
 * registration, and that the password of a conninfo never reaches the log.
 * Each test owns its loop and runs it on the test's thread; after every test
 * the loop must close cleanly (no handle left behind) and ASan checks that
 * no memory leaked.
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

#include "adapters/pg/pool.h"
#include "adapters/pg/pool_internal.h"
#include "engine/error.h"

typedef struct {
    uv_loop_t loop;
    uv_timer_t guard;
    int timed_out;
    char conninfo[128];
} fixture_t;

typedef struct {
    int calls;
    int status;
    int failed_index;
    char message[256];
    uint64_t at_ms;
} reply_log_t;

/* A port on 127.0.0.1 where nothing listens: bind to port 0, read it, close. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->guard), 0);
    f->guard.data = f;
    snprintf(f->conninfo, sizeof(f->conninfo),
             "host=127.0.0.1 port=%d dbname=nothing user=nobody connect_timeout=2", closed_port());
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle was closed */
    free(f);
    return 0;
}

static void on_guard(uv_timer_t *timer) {
    fixture_t *f = timer->data;
    f->timed_out = 1;
}

/* Runs the loop until *flag becomes non-zero; fails after timeout_ms. */
static void run_until(fixture_t *f, const int *flag, uint64_t timeout_ms) {
    f->timed_out = 0;
    uv_timer_start(&f->guard, on_guard, timeout_ms, 0);
    while (!*flag && !f->timed_out) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->guard);
    assert_false(f->timed_out);
}

/* Runs the loop for `ms` milliseconds. */
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
    snprintf(log->message, sizeof(log->message), "%s", reply->message ? reply->message : "");
}

static void on_closed(void *arg) {
    (*(int *)arg)++;
}

static tf_pg_pool_t *make_pool(fixture_t *f, const tf_pg_config_t *cfg, tf_metrics_t *metrics,
                               tf_log_t *log) {
    tf_pg_pool_t *pool = NULL;
    assert_int_equal(tf_pg_pool_create(&f->loop, cfg, NULL, 0, metrics, log, &pool), 0);
    assert_non_null(pool);
    return pool;
}

static void close_pool(fixture_t *f, tf_pg_pool_t *pool) {
    int closed = 0;
    tf_pg_pool_close(pool, on_closed, &closed);
    run_until(f, &closed, 5000);
    assert_int_equal(closed, 1);
}

static const tf_pg_stmt_t SELECT_ONE = {.sql = "SELECT 1"};

static void test_pool__create_rejects_bad_config(void **state) {
    fixture_t *f = *state;
    tf_pg_pool_t *pool = NULL;
    const tf_pg_config_t ok = {.conninfo = f->conninfo};
    const tf_pg_config_t bad[] = {
        {.conninfo = NULL},
        {.conninfo = "host=127.0.0.1 nonsense_keyword=1"},
        {.conninfo = "postgresql://[::1"},
        {.conninfo = f->conninfo, .size = -1},
        {.conninfo = f->conninfo, .size = TF_PG_MAX_POOL_SIZE + 1},
        {.conninfo = f->conninfo, .max_queue = -5},
        {.conninfo = f->conninfo, .queue_timeout_ms = -1},
        {.conninfo = f->conninfo, .reconnect_min_ms = -1},
        {.conninfo = f->conninfo, .reconnect_min_ms = 500, .reconnect_max_ms = 100},
        {.conninfo = f->conninfo, .pool_name = ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tf_pg_pool_create(&f->loop, &bad[i], NULL, 0, NULL, NULL, &pool),
                         TF_EINVAL);
        assert_null(pool);
    }
    assert_int_equal(tf_pg_pool_create(NULL, &ok, NULL, 0, NULL, NULL, &pool), TF_EINVAL);
    assert_int_equal(tf_pg_pool_create(&f->loop, NULL, NULL, 0, NULL, NULL, &pool), TF_EINVAL);
    assert_int_equal(tf_pg_pool_create(&f->loop, &ok, NULL, 0, NULL, NULL, NULL), TF_EINVAL);
    assert_int_equal(tf_pg_pool_create(&f->loop, &ok, NULL, 2, NULL, NULL, &pool), TF_EINVAL);
}

static void test_pool__create_rejects_bad_prepared_statements(void **state) {
    fixture_t *f = *state;
    tf_pg_pool_t *pool = NULL;
    const tf_pg_config_t cfg = {.conninfo = f->conninfo};
    const tf_pg_prepared_t no_name[] = {{.name = NULL, .sql = "SELECT 1"}};
    const tf_pg_prepared_t empty_name[] = {{.name = "", .sql = "SELECT 1"}};
    const tf_pg_prepared_t no_sql[] = {{.name = "a", .sql = NULL}};
    const tf_pg_prepared_t twice[] = {{"a", "SELECT 1"}, {"b", "SELECT 2"}, {"a", "SELECT 3"}};
    assert_int_equal(tf_pg_pool_create(&f->loop, &cfg, no_name, 1, NULL, NULL, &pool), TF_EINVAL);
    assert_int_equal(tf_pg_pool_create(&f->loop, &cfg, empty_name, 1, NULL, NULL, &pool),
                     TF_EINVAL);
    assert_int_equal(tf_pg_pool_create(&f->loop, &cfg, no_sql, 1, NULL, NULL, &pool), TF_EINVAL);
    assert_int_equal(tf_pg_pool_create(&f->loop, &cfg, twice, 3, NULL, NULL, &pool), TF_EINVAL);
    assert_null(pool);
}

static void test_pool__url_conninfo_and_defaults_are_accepted(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = "postgresql://nobody@127.0.0.1:1/nothing"};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, NULL);
    assert_int_equal(tf_pg_pool_connected(pool), 0);
    close_pool(f, pool);
}

static void test_pool__submit_rejects_bad_arguments(void **state) {
    fixture_t *f = *state;
    const tf_pg_prepared_t prepared[] = {{"known", "SELECT $1::int"}};
    const tf_pg_config_t cfg = {.conninfo = f->conninfo};
    tf_pg_pool_t *pool = NULL;
    assert_int_equal(tf_pg_pool_create(&f->loop, &cfg, prepared, 1, NULL, NULL, &pool), 0);
    reply_log_t log = {0};
    const char *values[] = {"1", "2"};
    const int lengths_with_nul[] = {1, 2};
    const char *nul_value[] = {"1", "a\0b"};
    const tf_pg_stmt_t bad[] = {
        {.prepared = "unknown"},
        {.sql = NULL},
        {.sql = ""},
        {.sql = "SELECT $1", .nparams = -1, .values = values},
        {.sql = "SELECT $1", .nparams = 1, .values = NULL},
        {.sql = "SELECT $1", .nparams = TF_PG_MAX_PARAMS + 1, .values = values},
        {.sql = "SELECT $1, $2", .nparams = 2, .values = nul_value, .lengths = lengths_with_nul},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tf_pg_submit(pool, &bad[i], 1, 0, on_reply, &log), TF_EINVAL);
    }
    assert_int_equal(tf_pg_submit(NULL, &SELECT_ONE, 1, 0, on_reply, &log), TF_EINVAL);
    assert_int_equal(tf_pg_submit(pool, NULL, 1, 0, on_reply, &log), TF_EINVAL);
    assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 0, 0, on_reply, &log), TF_EINVAL);
    assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 1, 0, NULL, &log), TF_EINVAL);
    assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 1, 0x10, on_reply, &log), TF_EINVAL);
    /* A good statement after a bad one still rejects the whole batch. */
    const tf_pg_stmt_t mixed[] = {SELECT_ONE, {.prepared = "unknown"}};
    assert_int_equal(tf_pg_submit(pool, mixed, 2, 0, on_reply, &log), TF_EINVAL);
    close_pool(f, pool);
    assert_int_equal(log.calls, 0); /* an error return never calls back */
}

static void test_pool__queue_bound_gives_eagain(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->conninfo, .max_queue = 2};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, NULL);
    reply_log_t log = {0};
    assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 1, 0, on_reply, &log), 0);
    assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 1, TF_PG_TXN, on_reply, &log), 0);
    assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 1, 0, on_reply, &log), TF_EAGAIN);
    assert_int_equal(log.calls, 0); /* never inside submit */
    close_pool(f, pool);
    assert_int_equal(log.calls, 2);
    assert_int_equal(log.status, TF_ESHUTDOWN);
}

/* Closing fails queued batches at once, makes submit refuse, and frees
 * everything once the loop has run the close callbacks. */
static void test_pool__close_unconnected_pool_fails_queued_batches(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->conninfo, .size = 3};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* let the connection attempts start failing */
    reply_log_t log = {0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 1, 0, on_reply, &log), 0);
    }
    int closed = 0;
    tf_pg_pool_close(pool, on_closed, &closed);
    assert_int_equal(log.calls, 5);
    assert_int_equal(log.status, TF_ESHUTDOWN);
    assert_int_equal(log.failed_index, -1);
    assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 1, 0, on_reply, &log), TF_ESHUTDOWN);
    tf_pg_pool_close(pool, on_closed, &closed); /* a second close is ignored */
    run_until(f, &closed, 5000);
    assert_int_equal(closed, 1);
}

/* A pool closed before its loop ever ran still frees everything. */
static void test_pool__close_before_the_loop_runs(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->conninfo};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, NULL);
    close_pool(f, pool);
    const tf_pg_config_t no_cb = {.conninfo = f->conninfo, .size = 1};
    pool = make_pool(f, &no_cb, NULL, NULL);
    tf_pg_pool_close(pool, NULL, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void test_pool__queue_timeout_when_unreachable(void **state) {
    fixture_t *f = *state;
    const tf_pg_config_t cfg = {.conninfo = f->conninfo, .queue_timeout_ms = 200};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, NULL);
    reply_log_t log = {0};
    uv_update_time(&f->loop);
    uint64_t start = uv_now(&f->loop);
    assert_int_equal(tf_pg_submit(pool, &SELECT_ONE, 1, 0, on_reply, &log), 0);
    run_until(f, &log.calls, 3000);
    uint64_t waited = uv_now(&f->loop) - start;
    assert_int_equal(log.status, TF_EUNAVAIL);
    assert_int_equal(log.failed_index, -1);
    assert_true(waited >= 200 && waited < 1500);
    assert_non_null(strstr(log.message, "queue_timeout_ms"));
    close_pool(f, pool);
}

static void test_pool__sqlstates_map_to_engine_codes(void **state) {
    (void)state;
    assert_int_equal(tf__pg_error_from_sqlstate("23505"), TF_ECONFLICT);
    assert_int_equal(tf__pg_error_from_sqlstate("23P01"), TF_ECONFLICT);
    assert_int_equal(tf__pg_error_from_sqlstate("23503"), TF_EINVAL);
    assert_int_equal(tf__pg_error_from_sqlstate("23502"), TF_EINVAL);
    assert_int_equal(tf__pg_error_from_sqlstate("22P02"), TF_EINVAL);
    assert_int_equal(tf__pg_error_from_sqlstate("57014"), TF_ETIMEDOUT);
    assert_int_equal(tf__pg_error_from_sqlstate("55P03"), TF_ETIMEDOUT);
    assert_int_equal(tf__pg_error_from_sqlstate("40001"), TF_EAGAIN);
    assert_int_equal(tf__pg_error_from_sqlstate("40P01"), TF_EAGAIN);
    assert_int_equal(tf__pg_error_from_sqlstate("08006"), TF_EUNAVAIL);
    assert_int_equal(tf__pg_error_from_sqlstate("08000"), TF_EUNAVAIL);
    assert_int_equal(tf__pg_error_from_sqlstate("57P01"), TF_EUNAVAIL);
    assert_int_equal(tf__pg_error_from_sqlstate("53300"), TF_EUNAVAIL);
    assert_int_equal(tf__pg_error_from_sqlstate("42601"), TF_EIO);
    assert_int_equal(tf__pg_error_from_sqlstate("XX000"), TF_EIO);
    assert_int_equal(tf__pg_error_from_sqlstate(""), TF_EIO);
    assert_int_equal(tf__pg_error_from_sqlstate("2350"), TF_EIO);
    assert_int_equal(tf__pg_error_from_sqlstate(NULL), TF_EIO);
}

/* Batches copy their arguments: the caller's buffers may change at once. */
static void test_pool__batch_copies_parameters(void **state) {
    (void)state;
    char value[] = "abcdef";
    const char *values[] = {value, NULL, value};
    const int lengths[] = {3, 0, 6};
    const tf_pg_stmt_t stmts[] = {
        {.sql = "SELECT $1, $2", .nparams = 2, .values = values},
        {.sql = "SELECT $1", .nparams = 1, .values = values + 2, .lengths = lengths + 2},
        {.sql = "SELECT $1,$2,$3", .nparams = 3, .values = values, .lengths = lengths}};
    tf__pg_batch_t *b = NULL;
    assert_int_equal(tf__pg_batch_copy(stmts, 3, TF_PG_TXN, on_reply, NULL, &b), 0);
    memset(value, 'x', 6);
    assert_int_equal(b->n, 3);
    assert_int_equal(b->flags, TF_PG_TXN);
    assert_string_equal(b->stmts[0].sql, "SELECT $1, $2");
    assert_null(b->stmts[0].prepared);
    assert_string_equal(b->stmts[0].values[0], "abcdef");
    assert_null(b->stmts[0].values[1]);
    assert_string_equal(b->stmts[1].values[0], "abcdef");
    assert_string_equal(b->stmts[2].values[0], "abc"); /* length-limited and NUL-terminated */
    assert_null(b->stmts[2].values[1]);
    assert_null(b->results[0]);
    tf__pg_batch_free(b);
}

static int render_has(tf_metrics_t *reg, const char *needle) {
    char *text = NULL;
    assert_int_equal(tf_metrics_render(reg, &text, NULL), 0);
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

/* Two pools (two loops in production) register the same families; gauges
 * return to zero when the pools are gone. */
static void test_pool__metrics_register_idempotently(void **state) {
    fixture_t *f = *state;
    tf_metrics_t *reg = NULL;
    assert_int_equal(tf_metrics_create(&reg), 0);
    const tf_pg_config_t a = {.conninfo = f->conninfo, .pool_name = "api-0", .size = 2};
    const tf_pg_config_t b = {.conninfo = f->conninfo, .pool_name = "api-1", .size = 1};
    tf_pg_pool_t *pa = make_pool(f, &a, reg, NULL);
    tf_pg_pool_t *pb = make_pool(f, &b, reg, NULL);
    reply_log_t log = {0};
    assert_int_equal(tf_pg_submit(pa, &SELECT_ONE, 1, 0, on_reply, &log), 0);
    assert_true(render_has(reg, "taskflow_pg_pool_queue_depth{pool=\"api-0\"} 1\n"));
    close_pool(f, pa);
    close_pool(f, pb);
    assert_true(render_has(reg, "taskflow_pg_connections{pool=\"api-0\",state=\"down\"} 0\n"));
    assert_true(
        render_has(reg, "taskflow_pg_connections{pool=\"api-1\",state=\"connecting\"} 0\n"));
    assert_true(render_has(reg, "taskflow_pg_pool_queue_depth{pool=\"api-0\"} 0\n"));
    assert_true(render_has(reg, "taskflow_pg_batches_total{pool=\"api-0\",result=\"error\"} 1\n"));
    assert_true(render_has(reg, "# TYPE taskflow_pg_batch_duration_seconds histogram"));
    assert_true(render_has(reg, "# TYPE taskflow_pg_reconnects_total counter"));
    tf_metrics_destroy(reg);
}

/* Connection failures are logged with host and error, never the password. */
static void test_pool__log_never_shows_the_password(void **state) {
    fixture_t *f = *state;
    FILE *out = tmpfile();
    assert_non_null(out);
    tf_log_t *log = NULL;
    assert_int_equal(tf_log_create(fileno(out), TF_LOG_DEBUG, &log), 0);
    char conninfo[256];
    snprintf(conninfo, sizeof(conninfo), "%s password=hunter2secret", f->conninfo);
    const tf_pg_config_t cfg = {.conninfo = conninfo, .reconnect_min_ms = 10};
    tf_pg_pool_t *pool = make_pool(f, &cfg, NULL, log);
    run_for(f, 100); /* a few failed attempts */
    close_pool(f, pool);
    tf_log_destroy(log);
    char text[8192] = {0};
    rewind(out);
    size_t len = fread(text, 1, sizeof(text) - 1, out);
    fclose(out);
    assert_true(len > 0);
    assert_non_null(strstr(text, "postgres connect failed"));
    assert_non_null(strstr(text, "Connection refused"));
    assert_null(strstr(text, "hunter2secret"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pool__create_rejects_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool__create_rejects_bad_prepared_statements, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool__url_conninfo_and_defaults_are_accepted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool__submit_rejects_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool__queue_bound_gives_eagain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool__close_unconnected_pool_fails_queued_batches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool__close_before_the_loop_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool__queue_timeout_when_unreachable, setup, teardown),
        cmocka_unit_test(test_pool__sqlstates_map_to_engine_codes),
        cmocka_unit_test(test_pool__batch_copies_parameters),
        cmocka_unit_test_setup_teardown(test_pool__metrics_register_idempotently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool__log_never_shows_the_password, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
