/*
 * it_db.h - what the integration tests share: a database of their own on the
 * PostgreSQL named by TASKFLOW_TEST_DATABASE_URL (created at the start of a
 * test file, dropped with FORCE at its end), blocking admin SQL, migrations,
 * and running a libuv loop until a condition holds or a guard timer fires.
 * Header-only (static functions) so that each test executable keeps its own
 * copy; included by tests/integration/test_*.c only.
 */
#ifndef TF_TESTS_INTEGRATION_IT_DB_H
#define TF_TESTS_INTEGRATION_IT_DB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <uv.h>

#define IT_DB_NAME_MAX 64
#define IT_CONNINFO_MAX 1024

/* One test file's database. */
typedef struct {
    char db[IT_DB_NAME_MAX];
    char conninfo[IT_CONNINFO_MAX];
} it_db_t;

static inline void it_append_kv(char *out, size_t len, const char *key, const char *value) {
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, len - n, "%s%s='", n > 0 ? " " : "", key);
    for (const char *p = value; *p != '\0' && n + 3 < len; p++) {
        if (*p == '\'' || *p == '\\') {
            out[n++] = '\\';
        }
        out[n++] = *p;
    }
    snprintf(out + n, len - n, "'");
}

/* `base` (URL or key=value) with dbname and application_name replaced. */
static inline void it_conninfo_for(const char *base, const char *db, const char *app, char *out,
                                   size_t len) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &err);
    if (opts == NULL) {
        fail_msg("TASKFLOW_TEST_DATABASE_URL does not parse: %s", err ? err : "?");
    }
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val != NULL && strcmp(o->keyword, "dbname") != 0 &&
            strcmp(o->keyword, "application_name") != 0) {
            it_append_kv(out, len, o->keyword, o->val);
        }
    }
    PQconninfoFree(opts);
    it_append_kv(out, len, "dbname", db);
    if (app != NULL) {
        it_append_kv(out, len, "application_name", app);
    }
}

static inline void it_quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

static inline PGconn *it_connect(const char *conninfo) {
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fail_msg("cannot connect to the test database: %s", PQerrorMessage(conn));
    }
    PQsetNoticeProcessor(conn, it_quiet, NULL);
    return conn;
}

/* Runs SQL on a blocking connection and returns the first value (static
 * storage, "" when there is none). */
static inline const char *it_exec(PGconn *conn, const char *sql) {
    static char value[256];
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    }
    value[0] = '\0';
    if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0) {
        snprintf(value, sizeof(value), "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return value;
}

/* printf-style it_exec. */
static inline const char *it_execf(PGconn *conn, const char *fmt, ...) {
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return it_exec(conn, sql);
}

/* SQL on the server's own database (CREATE / DROP DATABASE). */
static inline void it_server_exec(const char *sql) {
    const char *url = getenv("TASKFLOW_TEST_DATABASE_URL");
    if (url == NULL || url[0] == '\0') {
        fail_msg("TASKFLOW_TEST_DATABASE_URL is not set (run the suite with scripts/test)");
    }
    PGconn *conn = it_connect(url);
    it_exec(conn, sql);
    PQfinish(conn);
}

/* Creates the database "tf_it_<tag>_<pid>"; `app` names the connections. */
static inline it_db_t *it_db_create(const char *tag, const char *app) {
    it_db_t *db = calloc(1, sizeof(*db));
    char sql[160];
    snprintf(db->db, sizeof(db->db), "tf_it_%s_%ld", tag, (long)getpid());
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db->db);
    it_server_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db->db);
    it_server_exec(sql);
    it_conninfo_for(getenv("TASKFLOW_TEST_DATABASE_URL"), db->db, app, db->conninfo,
                    sizeof(db->conninfo));
    return db;
}

static inline void it_db_drop(it_db_t *db) {
    if (db == NULL) {
        return;
    }
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->db);
    it_server_exec(sql);
    free(db);
}

/* ---- running a loop ---- */

typedef struct {
    uv_loop_t *loop;
    uv_timer_t guard;
    int timed_out;
} it_guard_t;

static inline void it_on_guard(uv_timer_t *timer) {
    ((it_guard_t *)timer->data)->timed_out = 1;
}

static inline void it_guard_init(it_guard_t *g, uv_loop_t *loop) {
    g->loop = loop;
    uv_timer_init(loop, &g->guard);
    g->guard.data = g;
}

/* Runs the loop until done(arg) is true or `timeout_ms` passed (then the
 * test fails, naming `what`). */
static inline void it_run_until(it_guard_t *g, int (*done)(void *arg), void *arg,
                                uint64_t timeout_ms, const char *what) {
    g->timed_out = 0;
    uv_timer_start(&g->guard, it_on_guard, timeout_ms, 0);
    while (!done(arg) && !g->timed_out) {
        uv_run(g->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&g->guard);
    if (g->timed_out && !done(arg)) {
        fail_msg("timed out after %llu ms waiting for %s", (unsigned long long)timeout_ms, what);
    }
}

static inline void it_guard_close(it_guard_t *g) {
    uv_close((uv_handle_t *)&g->guard, NULL);
}

#endif
