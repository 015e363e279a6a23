/*
 * test_notifier.c - the LISTEN/NOTIFY notifier (adapters/app/notifier.c)
 * against a real PostgreSQL.
 *
 * Needs TASKFLOW_TEST_DATABASE_URL (e.g. the output of `scripts/pg url`
 * after `scripts/pg start`); fails at once when it is unset.  The run
 * creates its own database tf_it_notifier_<pid> through that URL and drops
 * it at the end, so NOTIFYs of other runs never reach these listeners.
 *
 * Covers: a NOTIFY on either channel from another connection reaches every
 * subscriber with its payload (other channels do not); the listener's
 * backend terminated with pg_terminate_backend() -> the notifier reconnects,
 * calls its subscribers with channel NULL, and later NOTIFYs arrive again;
 * reconnect attempts against a port that accepts and drops connections are
 * spaced by a growing backoff; closing (while listening, while connecting,
 * while waiting out the backoff, and from inside a subscriber's callback)
 * calls the close callback once and leaves no handle on the loop (ASan's
 * leak check covers the memory); bad arguments.  Each test runs its own loop
 * on the test's thread; the admin connection is a plain blocking libpq
 * connection used between loop turns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <libpq-fe.h>

#include "tests/integration/it_db.h"

#include "adapters/pg/notifier.h"
#include "engine/error.h"

#define DB_NAME_MAX 64
#define CONNINFO_MAX 1024
#define APP_NAME "tf-it-notifier"
#define MAX_SEEN 32

typedef struct {
    char db[DB_NAME_MAX];
    char conninfo[CONNINFO_MAX];
} run_t;

typedef struct {
    char channel[64]; /* "" for the NULL-channel call */
    char payload[128];
} seen_t;

/* One subscriber's log. */
typedef struct {
    int calls;
    int nulls;
    int notifications;
    seen_t seen[MAX_SEEN];
    tf_notifier_t *close_on_call; /* closes this notifier from the callback */
    int *closed;
} sub_log_t;

typedef struct {
    run_t *run;
    uv_loop_t loop;
    uv_timer_t guard;
    int timed_out;
    PGconn *admin;
    tf_notifier_t *n; /* the test's notifier until it is closed */
    int closed;
} fixture_t;

/* ---- database plumbing -------------------------------------------------- */

static int group_setup(void **state) {
    run_t *run = calloc(1, sizeof(*run));
    snprintf(run->db, sizeof(run->db), "tf_it_notifier_%ld", (long)getpid());
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", run->db);
    it_server_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", run->db);
    it_server_exec(sql);
    it_conninfo_for(getenv("TASKFLOW_TEST_DATABASE_URL"), run->db, APP_NAME, run->conninfo,
                    sizeof(run->conninfo));
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
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    char conninfo[CONNINFO_MAX];
    it_conninfo_for(getenv("TASKFLOW_TEST_DATABASE_URL"), run->db, "tf-it-admin", conninfo,
                    sizeof(conninfo));
    f->admin = it_connect(conninfo);
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

static void on_closed(void *arg) {
    (*(int *)arg)++;
}

static void close_notifier(fixture_t *f) {
    tf_notifier_t *n = f->n;
    int want = f->closed + 1;
    f->n = NULL;
    tf_notifier_close(n, on_closed, &f->closed);
    run_until(f, &f->closed, want, 10000);
}

/* Closes what a failed test left open, then checks that no handle is left
 * on the loop. */
static int teardown(void **state) {
    fixture_t *f = *state;
    *state = f->run;
    if (f->n != NULL) {
        close_notifier(f);
    }
    PQfinish(f->admin);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void on_notify(const char *channel, const char *payload, void *arg) {
    sub_log_t *log = arg;
    if (log->calls < MAX_SEEN) {
        seen_t *s = &log->seen[log->calls];
        snprintf(s->channel, sizeof(s->channel), "%s", channel != NULL ? channel : "");
        snprintf(s->payload, sizeof(s->payload), "%s", payload != NULL ? payload : "");
    }
    log->calls++;
    if (channel == NULL) {
        log->nulls++;
    } else {
        log->notifications++;
    }
    if (log->close_on_call != NULL) {
        tf_notifier_t *n = log->close_on_call;
        log->close_on_call = NULL;
        tf_notifier_close(n, on_closed, log->closed);
    }
}

/* A notifier on the run's database with `log` subscribed, run until it
 * listens (its first NULL-channel call). */
static tf_notifier_t *listening(fixture_t *f, sub_log_t *log) {
    assert_int_equal(tf_notifier_create(&f->loop, f->run->conninfo, NULL, &f->n), 0);
    assert_int_equal(tf_notifier_subscribe(f->n, on_notify, log), 0);
    assert_false(tf_notifier_connected(f->n));
    run_until(f, &log->nulls, 1, 10000);
    assert_true(tf_notifier_connected(f->n));
    return f->n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_notifier__notify_reaches_every_subscriber(void **state) {
    fixture_t *f = *state;
    sub_log_t a = {0}, b = {0};
    listening(f, &a);
    assert_int_equal(tf_notifier_subscribe(f->n, on_notify, &b), 0);
    it_exec(f->admin, "NOTIFY taskflow_other, 'ignored'");
    it_exec(f->admin, "NOTIFY " TF_CHANNEL_READY ", 'emails'");
    it_exec(f->admin, "SELECT pg_notify('" TF_CHANNEL_CANCEL "', "
                      "'01937a40-0c4e-7b6a-8d2f-5e6f7a8b9c0d')");
    it_exec(f->admin, "SELECT pg_notify('" TF_CHANNEL_READY "', 'images|builtin')");
    run_until(f, &a.notifications, 3, 5000);
    run_until(f, &b.notifications, 3, 5000);
    run_for(f, 100); /* nothing else arrives */
    assert_int_equal(a.calls, 4);
    assert_int_equal(a.nulls, 1);
    assert_string_equal(a.seen[0].channel, "");
    assert_string_equal(a.seen[1].channel, TF_CHANNEL_READY);
    assert_string_equal(a.seen[1].payload, "emails");
    assert_string_equal(a.seen[2].channel, TF_CHANNEL_CANCEL);
    assert_string_equal(a.seen[2].payload, "01937a40-0c4e-7b6a-8d2f-5e6f7a8b9c0d");
    assert_string_equal(a.seen[3].channel, TF_CHANNEL_READY);
    assert_string_equal(a.seen[3].payload, "images|builtin");
    assert_int_equal(b.calls, 3); /* subscribed after the first NULL call */
    assert_string_equal(b.seen[0].payload, "emails");
    /* A transaction's notifications arrive when it commits, not before. */
    it_exec(f->admin, "BEGIN");
    it_exec(f->admin, "NOTIFY " TF_CHANNEL_READY ", 'later'");
    run_for(f, 200);
    assert_int_equal(a.notifications, 3);
    it_exec(f->admin, "COMMIT");
    run_until(f, &a.notifications, 4, 5000);
    assert_string_equal(a.seen[4].payload, "later");
    close_notifier(f);
}

static void test_notifier__reconnects_after_terminate(void **state) {
    fixture_t *f = *state;
    sub_log_t log = {0};
    listening(f, &log);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE application_name = '%s' AND datname = '%s'",
             APP_NAME, f->run->db);
    assert_string_equal(it_exec(f->admin, sql), "1");
    /* Sent while no session listens: lost, which the NULL call makes up for. */
    it_exec(f->admin, "NOTIFY " TF_CHANNEL_READY ", 'lost'");
    run_until(f, &log.nulls, 2, 10000);
    assert_true(tf_notifier_connected(f->n));
    int before = log.notifications;
    it_exec(f->admin, "NOTIFY " TF_CHANNEL_READY ", 'after'");
    run_until(f, &log.notifications, before + 1, 5000);
    assert_string_equal(log.seen[log.calls - 1].channel, TF_CHANNEL_READY);
    assert_string_equal(log.seen[log.calls - 1].payload, "after");
    /* And again: every reconnect brings its NULL call. */
    assert_string_equal(it_exec(f->admin, sql), "1");
    run_until(f, &log.nulls, 3, 10000);
    it_exec(f->admin, "NOTIFY " TF_CHANNEL_CANCEL ", 'again'");
    run_until(f, &log.notifications, before + 2, 5000);
    assert_string_equal(log.seen[log.calls - 1].payload, "again");
    close_notifier(f);
}

/* A TCP server on the test loop that accepts and drops every connection,
 * counting them: a PostgreSQL that fails every connect. */
typedef struct {
    uv_tcp_t server;
    int accepted;
    uint64_t at[16];
} dropper_t;

static void dropped_closed(uv_handle_t *handle) {
    free(handle);
}

static void on_dropper_conn(uv_stream_t *server, int status) {
    dropper_t *d = server->data;
    if (status < 0) {
        return;
    }
    uv_tcp_t *client = malloc(sizeof(*client));
    uv_tcp_init(server->loop, client);
    if (uv_accept(server, (uv_stream_t *)client) == 0 && d->accepted < 16) {
        d->at[d->accepted] = uv_now(server->loop);
    }
    d->accepted++;
    uv_close((uv_handle_t *)client, dropped_closed);
}

static int dropper_start(fixture_t *f, dropper_t *d) {
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_init(&f->loop, &d->server), 0);
    d->server.data = d;
    assert_int_equal(uv_tcp_bind(&d->server, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&d->server, 16, on_dropper_conn), 0);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&d->server, (struct sockaddr *)&bound, &len);
    return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void test_notifier__reconnect_backs_off(void **state) {
    fixture_t *f = *state;
    dropper_t d = {0};
    int port = dropper_start(f, &d);
    char conninfo[128];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d dbname=x connect_timeout=2 sslmode=disable gssencmode=disable",
             port);
    sub_log_t log = {0};
    assert_int_equal(tf_notifier_create(&f->loop, conninfo, NULL, &f->n), 0);
    assert_int_equal(tf_notifier_subscribe(f->n, on_notify, &log), 0);
    /* Attempts at about 0, 100, 300, 700, 1500 ms; without SSL and GSS
     * negotiation each attempt is one TCP connection. */
    run_until(f, &d.accepted, 4, 5000);
    run_for(f, 300);
    assert_false(tf_notifier_connected(f->n));
    assert_int_equal(log.calls, 0);
    /* Attempts are at least 100, 200, 400 ms apart (a busy machine only
     * makes the gaps longer). */
    int n = d.accepted < 16 ? d.accepted : 16;
    assert_true(n >= 4);
    for (int i = 1; i < 4; i++) {
        uint64_t gap = d.at[i] - d.at[i - 1];
        assert_true(gap >= (uint64_t)(80 << (i - 1)));
    }
    /* Closed while waiting out the backoff. */
    close_notifier(f);
    uv_close((uv_handle_t *)&d.server, NULL);
}

static void test_notifier__close_while_connecting(void **state) {
    fixture_t *f = *state;
    /* Closed at once: the connect has started, nothing answered yet. */
    assert_int_equal(tf_notifier_create(&f->loop, f->run->conninfo, NULL, &f->n), 0);
    close_notifier(f);
    assert_int_equal(f->closed, 1);
    /* Closed in the middle of the handshake. */
    sub_log_t log = {0};
    assert_int_equal(tf_notifier_create(&f->loop, f->run->conninfo, NULL, &f->n), 0);
    assert_int_equal(tf_notifier_subscribe(f->n, on_notify, &log), 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    close_notifier(f);
    assert_int_equal(f->closed, 2);
    assert_int_equal(log.calls, 0);
}

static void test_notifier__subscriber_may_close_it(void **state) {
    fixture_t *f = *state;
    sub_log_t first = {0}, second = {0};
    listening(f, &first);
    assert_int_equal(tf_notifier_subscribe(f->n, on_notify, &second), 0);
    first.close_on_call = f->n;
    first.closed = &f->closed;
    f->n = NULL;
    /* Two notifications in one read: the first closes, nothing follows. */
    it_exec(f->admin, "BEGIN");
    it_exec(f->admin, "NOTIFY " TF_CHANNEL_READY ", 'one'");
    it_exec(f->admin, "NOTIFY " TF_CHANNEL_READY ", 'two'");
    it_exec(f->admin, "COMMIT");
    run_until(f, &f->closed, 1, 5000);
    assert_int_equal(first.notifications, 1);
    assert_int_equal(second.notifications, 0);
    run_for(f, 100);
    assert_int_equal(f->closed, 1);
}

static void test_notifier__closed_from_the_reconnect_call(void **state) {
    fixture_t *f = *state;
    sub_log_t log = {0};
    assert_int_equal(tf_notifier_create(&f->loop, f->run->conninfo, NULL, &f->n), 0);
    assert_int_equal(tf_notifier_subscribe(f->n, on_notify, &log), 0);
    log.close_on_call = f->n;
    log.closed = &f->closed;
    f->n = NULL;
    run_until(f, &f->closed, 1, 10000);
    assert_int_equal(log.nulls, 1);
    assert_int_equal(log.notifications, 0);
}

static void noop_notify(const char *channel, const char *payload, void *arg) {
    (void)channel;
    (void)payload;
    (void)arg;
}

static void test_notifier__bad_arguments(void **state) {
    fixture_t *f = *state;
    tf_notifier_t *n = NULL;
    assert_int_equal(tf_notifier_create(&f->loop, "host='unterminated", NULL, &n), TF_EINVAL);
    assert_null(n);
    assert_int_equal(tf_notifier_create(&f->loop, f->run->conninfo, NULL, &f->n), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(tf_notifier_subscribe(f->n, noop_notify, NULL), 0);
    }
    assert_int_equal(tf_notifier_subscribe(f->n, noop_notify, NULL), TF_ENOMEM);
    close_notifier(f);
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
        cmocka_unit_test_setup_teardown(test_notifier__notify_reaches_every_subscriber, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_notifier__reconnects_after_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifier__reconnect_backs_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifier__close_while_connecting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifier__subscriber_may_close_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifier__closed_from_the_reconnect_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_notifier__bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
