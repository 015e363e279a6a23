/*
 * conn.c - one non-blocking libpq connection of a pool, as a state machine.
 *
 *   DOWN --timer--> CONNECTING --PQconnectPoll OK--> PREPARING --sync--> IDLE
 *   IDLE --send--> BUSY --sync--> IDLE, or CLEANUP (ROLLBACK) --sync--> IDLE
 *   any failure --> DOWN (in-flight batch fails TF_EUNAVAIL; retry after
 *   backoff doubling from reconnect_min_ms to reconnect_max_ms)
 *   pool closing --> CLOSED
 *
 * Invariants:
 * - The connection is in pipeline mode and non-blocking from the moment it
 *   is connected.  Every pipeline it sends (prepares, a user batch, a
 *   cleanup ROLLBACK) ends with exactly one PQpipelineSync, and nothing new
 *   is sent before that sync's result arrives.
 * - Every command of a pipeline yields exactly one result that is not NULL
 *   and not PGRES_PIPELINE_SYNC (its own, an error, or PGRES_PIPELINE_ABORTED
 *   when an earlier error made the server skip it), so results are matched
 *   to commands by counting and the NULL separators are skipped.
 * - In pipeline mode an error aborts the rest of the pipeline.  A batch
 *   wrapped in BEGIN/COMMIT that failed leaves the session in an aborted
 *   transaction after the sync (libpq docs), so any batch that leaves the
 *   session outside PQTRANS_IDLE is followed by a ROLLBACK before the
 *   connection takes more work.
 * - The socket is watched by a poll wrapper allocated per socket.  While
 *   connecting, libpq may close its socket and open another one (next
 *   address, SSL fallback), possibly with the same fd number, so the wrapper
 *   is replaced after every PQconnectPoll step.  The wrapper is closed (which
 *   removes the fd from epoll) before PQfinish() closes the socket.
 * - Callbacks into user code happen last in each path; afterwards the code
 *   only looks at the state again (the callback may have closed the pool).
 *
 * Loop: the pool's loop thread only.  Host name lookups happen inside
 * PQconnectPoll and block the loop briefly; prefer an IP address (or
 * hostaddr) in the conninfo.
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/pg/pool_internal.h"
#include "engine/error.h"

static const char TF_PG_SQL_BEGIN[] = "BEGIN";
static const char TF_PG_SQL_COMMIT[] = "COMMIT";
static const char TF_PG_SQL_ROLLBACK[] = "ROLLBACK";

static void tf__pg_conn_on_io(void *owner, int status, int events);
static void tf__pg_conn_on_timer(uv_timer_t *timer);

static void tf__pg_conn_set_state(tf__pg_conn_t *conn, tf__pg_conn_state_t state) {
    tf__pg_conn_state_t from = conn->state;
    conn->state = state;
    tf__pg_pool_conn_moved(conn->pool, from, state);
}

int tf__pg_conn_is_live(const tf__pg_conn_t *conn) {
    return conn->state == TF_PG_CONN_IDLE || conn->state == TF_PG_CONN_BUSY ||
           conn->state == TF_PG_CONN_CLEANUP;
}

/* ---- socket watching (socket.h) ----------------------------------------- */

static void tf__pg_conn_sock_closed(void *owner) {
    tf__pg_conn_t *conn = owner;
    tf__pg_pool_handle_closed(conn->pool);
}

static void tf__pg_conn_unwatch(tf__pg_conn_t *conn) {
    tf__pg_watch_stop(&conn->watch);
}

static int tf__pg_conn_watch(tf__pg_conn_t *conn, int events) {
    return tf__pg_watch_start(&conn->watch, conn->pg, events);
}

/* ---- failure, reconnect, shutdown --------------------------------------- */

static void tf__pg_conn_timer_closed(uv_handle_t *handle) {
    tf__pg_conn_t *conn = handle->data;
    tf__pg_pool_handle_closed(conn->pool);
}

/* Closes the socket watch and the libpq connection; forgets the pipeline. */
static void tf__pg_conn_drop(tf__pg_conn_t *conn) {
    tf__pg_conn_unwatch(conn);
    if (conn->pg != NULL) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }
    tf__pg_error_clear(&conn->error);
    conn->ncmds = 0;
    conn->cmd = 0;
    conn->txn = 0;
    uv_timer_stop(&conn->timer);
}

void tf__pg_conn_shutdown(tf__pg_conn_t *conn) {
    if (conn->state == TF_PG_CONN_CLOSED) {
        return;
    }
    tf__pg_conn_drop(conn);
    uv_close((uv_handle_t *)&conn->timer, tf__pg_conn_timer_closed);
    tf__pg_conn_set_state(conn, TF_PG_CONN_CLOSED);
}

/* Goes DOWN and arms the timer for the next attempt, or shuts down when the
 * pool is closing.  Returns the delay used (-1 when shut down). */
static int tf__pg_conn_schedule_retry(tf__pg_conn_t *conn) {
    tf_pg_pool_t *pool = conn->pool;
    if (pool->closing) {
        tf__pg_conn_shutdown(conn);
        return -1;
    }
    int delay = conn->backoff_ms;
    tf__pg_conn_set_state(conn, TF_PG_CONN_DOWN);
    uv_timer_start(&conn->timer, tf__pg_conn_on_timer, (uint64_t)delay, 0);
    conn->backoff_ms = delay > pool->reconnect_max_ms / 2 ? pool->reconnect_max_ms : delay * 2;
    return delay;
}

/* Drops the connection, schedules the next attempt and fails the in-flight
 * batch, if any, with `status`.  `what` names the failure in the log when
 * the connection was not yet live.  The server's own error for the batch
 * (e.g. 57P01 "terminating connection due to administrator command") wins
 * over libpq's "server closed the connection unexpectedly". */
static void tf__pg_conn_fail(tf__pg_conn_t *conn, int status, const char *what,
                             const char *message) {
    tf_pg_pool_t *pool = conn->pool;
    tf__pg_batch_t *batch = conn->batch;
    int was_live = tf__pg_conn_is_live(conn);
    char *text = tf__pg_message_dup(message);
    conn->batch = NULL;
    tf__pg_conn_drop(conn);
    int delay = tf__pg_conn_schedule_retry(conn);
    tf_log_warn(pool->log, was_live ? "postgres connection lost" : what,
                TF_LF_STR("pool", pool->name), TF_LF_INT("conn", conn->index),
                TF_LF_STR("error", text != NULL ? text : "out of memory"),
                TF_LF_INT("retry_in_ms", delay));
    if (batch != NULL) {
        const tf__pg_error_t *err = &batch->error;
        const char *reason = err->set && err->message != NULL ? err->message : text;
        tf__pg_pool_fail(pool, batch, status, err->set ? err->sqlstate : NULL,
                         reason != NULL ? reason : "connection to PostgreSQL lost");
    }
    free(text);
}

static void tf__pg_conn_lost(tf__pg_conn_t *conn, const char *what) {
    tf__pg_conn_fail(conn, TF_EUNAVAIL, what,
                     conn->pg != NULL ? PQerrorMessage(conn->pg) : "no connection");
}

/* ---- connecting --------------------------------------------------------- */

static void tf__pg_conn_notice(void *arg, const PGresult *res) {
    tf__pg_conn_t *conn = arg;
    tf__pg_log_notice(conn->pool->log, "postgres notice", res, conn->pool->name, conn->index);
}

void tf__pg_conn_connect(tf__pg_conn_t *conn) {
    tf_pg_pool_t *pool = conn->pool;
    tf__pg_conn_set_state(conn, TF_PG_CONN_CONNECTING);
    conn->pg = tf__pg_connect_start(pool->conninfo, "taskflow");
    if (conn->pg == NULL) {
        tf__pg_conn_fail(conn, TF_EUNAVAIL, "postgres connect failed", "out of memory");
        return;
    }
    if (PQstatus(conn->pg) == CONNECTION_BAD) {
        tf__pg_conn_lost(conn, "postgres connect failed");
        return;
    }
    PQsetNoticeReceiver(conn->pg, tf__pg_conn_notice, conn);
    uv_timer_start(&conn->timer, tf__pg_conn_on_timer,
                   (uint64_t)tf__pg_connect_deadline_ms(conn->pg, TF_PG_CONNECT_TIMEOUT_MS), 0);
    /* libpq: before the first PQconnectPoll, act as if it returned WRITING. */
    if (tf__pg_conn_watch(conn, UV_WRITABLE) != 0) {
        tf__pg_conn_fail(conn, TF_EUNAVAIL, "postgres connect failed", "cannot watch the socket");
    }
}

static void tf__pg_conn_begin_pipeline(tf__pg_conn_t *conn, size_t ncmds) {
    conn->ncmds = ncmds;
    conn->cmd = 0;
    tf__pg_error_clear(&conn->error);
}

/* Sends what libpq buffered and watches for the rest.  Returns 0, or -1
 * after the connection failed. */
static int tf__pg_conn_flush(tf__pg_conn_t *conn) {
    int r = tf__pg_watch_flush(&conn->watch, conn->pg);
    if (r == -1) {
        tf__pg_conn_lost(conn, "postgres send failed");
    } else if (r != 0) {
        tf__pg_conn_fail(conn, TF_EUNAVAIL, "postgres send failed", "cannot watch the socket");
    }
    return r == 0 ? 0 : -1;
}

/* Connected: switch to non-blocking pipeline mode and prepare the pool's
 * statements in one pipeline (with none, the lone sync still proves the
 * session works before it takes work). */
static void tf__pg_conn_connected(tf__pg_conn_t *conn) {
    tf_pg_pool_t *pool = conn->pool;
    PGconn *pg = conn->pg;
    tf__pg_conn_set_state(conn, TF_PG_CONN_PREPARING);
    if (PQsetnonblocking(pg, 1) != 0 || PQenterPipelineMode(pg) != 1 ||
        tf__pg_conn_watch(conn, UV_READABLE) != 0) {
        tf__pg_conn_lost(conn, "postgres connect failed");
        return;
    }
    tf__pg_conn_begin_pipeline(conn, pool->nprepared);
    for (size_t i = 0; i < pool->nprepared; i++) {
        if (!PQsendPrepare(pg, pool->prepared[i].name, pool->prepared[i].sql, 0, NULL)) {
            tf__pg_conn_lost(conn, "postgres prepare failed");
            return;
        }
    }
    if (!PQpipelineSync(pg)) {
        tf__pg_conn_lost(conn, "postgres prepare failed");
        return;
    }
    tf__pg_conn_flush(conn);
}

static void tf__pg_conn_connect_step(tf__pg_conn_t *conn) {
    PostgresPollingStatusType st = PQconnectPoll(conn->pg);
    if (st == PGRES_POLLING_OK) {
        tf__pg_conn_connected(conn);
        return;
    }
    if (st == PGRES_POLLING_FAILED) {
        tf__pg_conn_lost(conn, "postgres connect failed");
        return;
    }
    /* The socket may have changed: watch the current one afresh. */
    if (tf__pg_conn_watch(conn, tf__pg_connect_events(st)) != 0) {
        tf__pg_conn_fail(conn, TF_EUNAVAIL, "postgres connect failed", "cannot watch the socket");
    }
}

static void tf__pg_conn_on_timer(uv_timer_t *timer) {
    tf__pg_conn_t *conn = timer->data;
    if (conn->state == TF_PG_CONN_DOWN) {
        tf__pg_pool_count_reconnect(conn->pool);
        tf__pg_conn_connect(conn);
    } else if (conn->state == TF_PG_CONN_CONNECTING || conn->state == TF_PG_CONN_PREPARING) {
        tf__pg_conn_fail(conn, TF_EUNAVAIL, "postgres connect failed",
                         "connection attempt timed out");
    }
}

void tf__pg_conn_init(tf_pg_pool_t *pool, tf__pg_conn_t *conn, int index) {
    memset(conn, 0, sizeof(*conn));
    conn->pool = pool;
    conn->index = index;
    conn->state = TF_PG_CONN_CLOSED; /* not counted yet */
    conn->backoff_ms = pool->reconnect_min_ms;
    uv_timer_init(pool->loop, &conn->timer);
    conn->timer.data = conn;
    pool->handles++;
    tf__pg_watch_init(&conn->watch, pool->loop, tf__pg_conn_on_io, tf__pg_conn_sock_closed, conn,
                      &pool->handles);
    tf__pg_conn_set_state(conn, TF_PG_CONN_DOWN);
}

/* ---- pipelines: sending ------------------------------------------------- */

static int tf__pg_conn_send_simple(PGconn *pg, const char *sql) {
    return PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
}

static int tf__pg_conn_send_stmt(PGconn *pg, const tf__pg_stmt_t *st) {
    if (st->prepared != NULL) {
        return PQsendQueryPrepared(pg, st->prepared, st->nparams, st->values, NULL, NULL, 0);
    }
    return PQsendQueryParams(pg, st->sql, st->nparams, NULL, st->values, NULL, NULL, 0);
}

void tf__pg_conn_send(tf__pg_conn_t *conn, tf__pg_batch_t *batch) {
    PGconn *pg = conn->pg;
    conn->batch = batch;
    conn->txn = (batch->flags & TF_PG_TXN) != 0;
    tf__pg_conn_begin_pipeline(conn, batch->n + 2 * (size_t)conn->txn);
    batch->sent_ns = uv_hrtime();
    tf__pg_conn_set_state(conn, TF_PG_CONN_BUSY);
    int ok = !conn->txn || tf__pg_conn_send_simple(pg, TF_PG_SQL_BEGIN);
    for (size_t i = 0; ok && i < batch->n; i++) {
        ok = tf__pg_conn_send_stmt(pg, &batch->stmts[i]);
    }
    if (ok && conn->txn) {
        ok = tf__pg_conn_send_simple(pg, TF_PG_SQL_COMMIT);
    }
    if (ok) {
        ok = PQpipelineSync(pg);
    }
    if (!ok) {
        /* The pipeline is half-queued: the connection cannot be reused. */
        int status = PQstatus(pg) == CONNECTION_BAD ? TF_EUNAVAIL : TF_EIO;
        tf__pg_conn_fail(conn, status, "postgres send failed", PQerrorMessage(pg));
        return;
    }
    tf__pg_conn_flush(conn);
}

/* A batch left the session inside a transaction (a failed BEGIN/COMMIT
 * batch leaves it aborted): roll it back before the connection is reused. */
static void tf__pg_conn_cleanup(tf__pg_conn_t *conn) {
    tf__pg_conn_set_state(conn, TF_PG_CONN_CLEANUP);
    tf__pg_conn_begin_pipeline(conn, 1);
    conn->txn = 0;
    if (!tf__pg_conn_send_simple(conn->pg, TF_PG_SQL_ROLLBACK) || !PQpipelineSync(conn->pg)) {
        tf__pg_conn_lost(conn, "postgres cleanup failed");
        return;
    }
    tf__pg_conn_flush(conn);
}

/* ---- pipelines: receiving ----------------------------------------------- */

/* Files one command's result: the first error is recorded (as a statement
 * index for user batches: BEGIN counts as 0, COMMIT as n), a statement's
 * result is kept in its batch slot, everything else is cleared. */
static void tf__pg_conn_take(tf__pg_conn_t *conn, PGresult *res) {
    size_t i = conn->cmd++;
    tf__pg_batch_t *b = conn->batch;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_BAD_RESPONSE) {
        int index = b != NULL ? (int)i - conn->txn : (int)i;
        const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        tf__pg_error_record(b != NULL ? &b->error : &conn->error, index < 0 ? 0 : index,
                            PQresultErrorField(res, PG_DIAG_SQLSTATE),
                            message != NULL ? message : PQresultErrorMessage(res));
    } else if (b != NULL && st != PGRES_PIPELINE_ABORTED && i >= (size_t)conn->txn &&
               i - (size_t)conn->txn < b->n) {
        size_t s = i - (size_t)conn->txn;
        PQclear(b->results[s]);
        b->results[s] = res;
        return;
    }
    PQclear(res);
}

static void tf__pg_conn_prepared(tf__pg_conn_t *conn) {
    tf_pg_pool_t *pool = conn->pool;
    if (conn->error.set) {
        const tf__pg_error_t *err = &conn->error;
        size_t index = (size_t)err->index < pool->nprepared ? (size_t)err->index : 0;
        tf_log_error(pool->log, "postgres prepare failed", TF_LF_STR("pool", pool->name),
                     TF_LF_INT("conn", conn->index),
                     TF_LF_STR("statement", pool->prepared[index].name),
                     TF_LF_STR("sqlstate", err->sqlstate), TF_LF_STR("error", err->message));
        tf__pg_conn_fail(conn, TF_EUNAVAIL, "postgres prepare failed", err->message);
        return;
    }
    uv_timer_stop(&conn->timer);
    conn->backoff_ms = pool->reconnect_min_ms;
    tf_log_info(pool->log, "postgres connected", TF_LF_STR("pool", pool->name),
                TF_LF_INT("conn", conn->index), TF_LF_STR("host", PQhost(conn->pg)),
                TF_LF_STR("port", PQport(conn->pg)), TF_LF_STR("database", PQdb(conn->pg)),
                TF_LF_INT("server_version", PQserverVersion(conn->pg)),
                TF_LF_INT("backend_pid", PQbackendPID(conn->pg)));
    tf__pg_conn_set_state(conn, TF_PG_CONN_IDLE);
    tf__pg_pool_conn_idle(pool, conn);
}

/* The user batch's sync arrived: answer it.  The connection is made IDLE
 * (or starts its cleanup) before the callback runs, and is offered to the
 * pool afterwards only if the callback left it IDLE. */
static void tf__pg_conn_batch_done(tf__pg_conn_t *conn) {
    tf_pg_pool_t *pool = conn->pool;
    tf__pg_batch_t *b = conn->batch;
    conn->batch = NULL;
    if (PQtransactionStatus(conn->pg) != PQTRANS_IDLE) {
        if (!b->error.set) {
            tf_log_warn(pool->log, "postgres batch left a transaction open; rolling back",
                        TF_LF_STR("pool", pool->name), TF_LF_INT("conn", conn->index));
        }
        tf__pg_conn_cleanup(conn);
    } else {
        tf__pg_conn_set_state(conn, TF_PG_CONN_IDLE);
    }
    tf_pg_reply_t reply = {.status = 0, .failed_index = -1};
    if (b->error.set) {
        reply.status = tf__pg_error_from_sqlstate(b->error.sqlstate);
        reply.sqlstate = b->error.sqlstate[0] != '\0' ? b->error.sqlstate : NULL;
        reply.message = b->error.message != NULL ? b->error.message : "statement failed";
        reply.failed_index = b->error.index;
    } else {
        reply.results = b->results;
        reply.nresults = b->n;
    }
    tf__pg_pool_finish(pool, b, &reply);
    if (conn->state == TF_PG_CONN_IDLE) {
        tf__pg_pool_conn_idle(pool, conn);
    }
}

static void tf__pg_conn_synced(tf__pg_conn_t *conn) {
    switch (conn->state) {
    case TF_PG_CONN_PREPARING:
        tf__pg_conn_prepared(conn);
        break;
    case TF_PG_CONN_BUSY:
        tf__pg_conn_batch_done(conn);
        break;
    case TF_PG_CONN_CLEANUP:
        if (conn->error.set) {
            tf__pg_conn_fail(conn, TF_EUNAVAIL, "postgres cleanup failed", conn->error.message);
            return;
        }
        tf__pg_conn_set_state(conn, TF_PG_CONN_IDLE);
        tf__pg_pool_conn_idle(conn->pool, conn);
        break;
    default:
        break;
    }
}

/* Takes every result libpq has parsed, up to the pipeline's sync. */
static void tf__pg_conn_read(tf__pg_conn_t *conn) {
    int nulls = 0;
    while (!PQisBusy(conn->pg)) {
        PGresult *res = PQgetResult(conn->pg);
        if (res == NULL) {
            if (++nulls > 1) {
                break; /* nothing more parsed */
            }
            continue; /* end of one command's results */
        }
        nulls = 0;
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            tf__pg_conn_synced(conn);
            return;
        }
        tf__pg_conn_take(conn, res);
    }
    if (PQstatus(conn->pg) == CONNECTION_BAD) {
        tf__pg_conn_lost(conn, "postgres connection lost");
    }
}

static void tf__pg_conn_readable(tf__pg_conn_t *conn) {
    if (!PQconsumeInput(conn->pg)) {
        tf__pg_conn_lost(conn, "postgres connection lost");
        return;
    }
    if (conn->watch.flushing && tf__pg_conn_flush(conn) != 0) {
        return;
    }
    if (conn->state != TF_PG_CONN_IDLE) {
        tf__pg_conn_read(conn);
        return;
    }
    /* Idle: nothing is expected but notifications (dropped: the pool does
     * not LISTEN) or the end of the connection. */
    PGnotify *notify;
    while ((notify = PQnotifies(conn->pg)) != NULL) {
        PQfreemem(notify);
    }
    if (PQstatus(conn->pg) == CONNECTION_BAD) {
        tf__pg_conn_lost(conn, "postgres connection lost");
    }
}

static void tf__pg_conn_on_io(void *owner, int status, int events) {
    tf__pg_conn_t *conn = owner;
    if (conn->state == TF_PG_CONN_CONNECTING) {
        /* Also on status < 0: libuv reports a socket error (POLLERR, e.g. a
         * refused connect) as UV_EBADF, and libpq reads the real one. */
        tf__pg_conn_connect_step(conn);
        return;
    }
    if (status < 0) {
        /* The handle is stopped; the connection is unusable.  Prefer
         * libpq's account of the socket error over libuv's. */
        int readable = PQconsumeInput(conn->pg);
        tf__pg_conn_fail(conn, TF_EUNAVAIL, "postgres socket error",
                         readable ? uv_strerror(status) : PQerrorMessage(conn->pg));
        return;
    }
    if ((events & UV_WRITABLE) && conn->watch.flushing && tf__pg_conn_flush(conn) != 0) {
        return;
    }
    if (events & UV_READABLE) {
        tf__pg_conn_readable(conn);
    }
}
