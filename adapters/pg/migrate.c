/*
 * migrate.c - applies the SQL migrations compiled into the binary.
 *
 * Role: `taskflow migrate` and the start of `taskflow serve` call
 * tf_migrate_apply() once, on the main thread, before any loop runs, so it
 * uses a plain blocking libpq connection.
 *
 * Invariants:
 * - Every step runs under a session advisory lock (TF_MIGRATE_LOCK_KEY), taken
 *   before schema_migrations is even created, so concurrent appliers (nodes
 *   starting together) serialize: the second one finds the work done.
 * - A migration and its schema_migrations row commit in one transaction; a
 *   failing migration leaves nothing behind.
 * - A database whose newest version is above tf_migrate_latest() is refused
 *   (TF_ECONFLICT) before anything is written: an old binary must not run
 *   against a newer schema.
 * - The migrations run with statement_timeout and lock_timeout off, since a
 *   server default could otherwise cut a long migration short.
 */
#include "adapters/pg/migrate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "engine/error.h"

/* Arbitrary but fixed: "tfmigrat" as ASCII bytes. */
#define TF_MIGRATE_LOCK_KEY "8387511655498670452"

static const char TF_SQL_SESSION[] = "SET statement_timeout = 0; SET lock_timeout = 0; "
                                     "SET client_min_messages = warning";
static const char TF_SQL_LOCK[] = "SELECT pg_advisory_lock(" TF_MIGRATE_LOCK_KEY ")";
static const char TF_SQL_UNLOCK[] = "SELECT pg_advisory_unlock(" TF_MIGRATE_LOCK_KEY ")";
static const char TF_SQL_CREATE_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                          " version integer PRIMARY KEY,"
                                          " name text NOT NULL,"
                                          " applied_at timestamptz NOT NULL DEFAULT now())";
static const char TF_SQL_CURRENT[] = "SELECT coalesce(max(version), 0) FROM schema_migrations";
static const char TF_SQL_RECORD[] = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";
static const char TF_SQL_BEGIN[] = "BEGIN";
static const char TF_SQL_COMMIT[] = "COMMIT";
static const char TF_SQL_ROLLBACK[] = "ROLLBACK";

/* Writes a one-line reason into err (if any).  Trailing newlines of libpq
 * messages are dropped. */
static void tf_migrate_errf(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (size_t len = strlen(err); len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' ');) {
        err[--len] = '\0';
    }
    for (char *p = err; *p != '\0'; p++) {
        if (*p == '\n') {
            *p = ' ';
        }
    }
}

/* libpq notices (e.g. "relation already exists, skipping") go to the debug
 * log instead of stderr. */
static void tf_migrate_notice(void *arg, const char *message) {
    tf_log_debug((tf_log_t *)arg, "postgres notice", TF_LF_STR("message", message));
}

/* Runs `sql` (no parameters); on failure fills err with `what` and the
 * server's message.  Returns 0 or TF_EIO. */
static int tf_migrate_exec(PGconn *conn, const char *sql, const char *what, char *err,
                           size_t errlen) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        tf_migrate_errf(err, errlen, "%s: %s", what, PQerrorMessage(conn));
        rc = TF_EIO;
    }
    PQclear(res);
    return rc;
}

/* Checks the compiled table: versions >= 1 and strictly increasing. */
static int tf_migrate_check_table(char *err, size_t errlen) {
    int prev = 0;
    for (size_t i = 0; i < tf_migrations_count; i++) {
        if (tf_migrations[i].version <= prev) {
            tf_migrate_errf(err, errlen, "migration %s: version %d is not above %d",
                            tf_migrations[i].name, tf_migrations[i].version, prev);
            return TF_EIO;
        }
        prev = tf_migrations[i].version;
    }
    return 0;
}

int tf_migrate_latest(void) {
    int latest = 0;
    for (size_t i = 0; i < tf_migrations_count; i++) {
        if (tf_migrations[i].version > latest) {
            latest = tf_migrations[i].version;
        }
    }
    return latest;
}

static PGconn *tf_migrate_connect(const char *conninfo, tf_log_t *log, char *err, size_t errlen) {
    const char *const keys[] = {"fallback_application_name", "dbname", NULL};
    const char *const values[] = {"taskflow-migrate", conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (conn == NULL) {
        tf_migrate_errf(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        tf_migrate_errf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, tf_migrate_notice, log);
    return conn;
}

/* Reads max(version) of schema_migrations into *current. */
static int tf_migrate_current(PGconn *conn, int *current, char *err, size_t errlen) {
    PGresult *res = PQexec(conn, TF_SQL_CURRENT);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        tf_migrate_errf(err, errlen, "reading schema_migrations: %s", PQerrorMessage(conn));
        rc = TF_EIO;
    } else {
        *current = atoi(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

/* Inserts the schema_migrations row of `m` (inside the open transaction). */
static int tf_migrate_record(PGconn *conn, const tf_migration_t *m, char *err, size_t errlen) {
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *const params[] = {version, m->name};
    PGresult *res = PQexecParams(conn, TF_SQL_RECORD, 2, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        tf_migrate_errf(err, errlen, "recording migration %s: %s", m->name, PQerrorMessage(conn));
        rc = TF_EIO;
    }
    PQclear(res);
    return rc;
}

/* Applies one migration and its schema_migrations row in one transaction;
 * rolls back on any failure.  Returns 0 or TF_EIO. */
static int tf_migrate_one(PGconn *conn, const tf_migration_t *m, tf_log_t *log, char *err,
                          size_t errlen) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char what[160];
    snprintf(what, sizeof(what), "migration %s failed (rolled back)", m->name);
    int rc = tf_migrate_exec(conn, TF_SQL_BEGIN, what, err, errlen);
    if (rc == 0) {
        rc = tf_migrate_exec(conn, m->sql, what, err, errlen);
    }
    if (rc == 0) {
        rc = tf_migrate_record(conn, m, err, errlen);
    }
    if (rc == 0) {
        rc = tf_migrate_exec(conn, TF_SQL_COMMIT, what, err, errlen);
    }
    if (rc != 0) {
        PQclear(PQexec(conn, TF_SQL_ROLLBACK));
        return rc;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    tf_log_info(log, "migration applied", TF_LF_INT("version", m->version),
                TF_LF_STR("name", m->name), TF_LF_DBL("duration_ms", ms));
    return 0;
}

/* The locked part: create the bookkeeping table, compare versions, apply
 * what is missing.  *current is updated as migrations commit. */
static int tf_migrate_locked(PGconn *conn, tf_log_t *log, int *applied, int *current, char *err,
                             size_t errlen) {
    int rc = tf_migrate_exec(conn, TF_SQL_CREATE_TABLE, "creating schema_migrations", err, errlen);
    if (rc == 0) {
        rc = tf_migrate_current(conn, current, err, errlen);
    }
    if (rc != 0) {
        return rc;
    }
    int latest = tf_migrate_latest();
    if (*current > latest) {
        tf_migrate_errf(err, errlen,
                        "database schema is at version %d but this binary knows migrations up to "
                        "version %d; run a newer taskflow",
                        *current, latest);
        return TF_ECONFLICT;
    }
    for (size_t i = 0; i < tf_migrations_count; i++) {
        const tf_migration_t *m = &tf_migrations[i];
        if (m->version <= *current) {
            continue;
        }
        rc = tf_migrate_one(conn, m, log, err, errlen);
        if (rc != 0) {
            return rc;
        }
        *current = m->version;
        (*applied)++;
    }
    return 0;
}

/* Connects, takes the lock and applies; *napplied and *current say how far
 * it got, also on failure. */
static int tf_migrate_run(const char *conninfo, tf_log_t *log, int *napplied, int *current,
                          char *err, size_t errlen) {
    PGconn *conn = tf_migrate_connect(conninfo, log, err, errlen);
    if (conn == NULL) {
        return TF_EUNAVAIL;
    }
    int rc = tf_migrate_exec(conn, TF_SQL_SESSION, "setting up the session", err, errlen);
    if (rc == 0) {
        rc = tf_migrate_exec(conn, TF_SQL_LOCK, "taking the migration lock", err, errlen);
    }
    if (rc == 0) {
        rc = tf_migrate_locked(conn, log, napplied, current, err, errlen);
        /* Closing the session would release the lock too; unlock explicitly
         * so that a pooled server-side session does not keep it. */
        PQclear(PQexec(conn, TF_SQL_UNLOCK));
    }
    if (rc != 0 && PQstatus(conn) == CONNECTION_BAD) {
        rc = TF_EUNAVAIL; /* the server went away under us */
    }
    PQfinish(conn);
    return rc;
}

int tf_migrate_apply(const char *conninfo, tf_log_t *log, int *applied, int *version, char *err,
                     size_t errlen) {
    int napplied = 0;
    int current = 0;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    int rc = tf_migrate_check_table(err, errlen);
    if (rc == 0 && conninfo == NULL) {
        tf_migrate_errf(err, errlen, "no database connection string");
        rc = TF_EUNAVAIL;
    }
    if (rc == 0) {
        rc = tf_migrate_run(conninfo, log, &napplied, &current, err, errlen);
    }
    if (rc == 0) {
        tf_log_info(log, "schema up to date", TF_LF_INT("version", current),
                    TF_LF_INT("applied", napplied));
    } else {
        tf_log_error(log, "migration failed",
                     TF_LF_STR("error", err != NULL && errlen > 0 ? err : ""));
    }
    if (applied != NULL) {
        *applied = napplied;
    }
    if (version != NULL) {
        *version = current;
    }
    return rc;
}
