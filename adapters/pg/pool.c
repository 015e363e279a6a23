/*
 * pool.c - the non-blocking PostgreSQL pool of one libuv loop (pool.h).
 *
 * Role: public functions, the FIFO of batches waiting for a connection,
 * dispatch, the queue timeout, metrics and closing.  conn.c runs each
 * connection's state machine; batch.c copies batches and maps SQLSTATEs.
 *
 * Behaviour:
 * - tf_pg_submit() copies the batch, queues it and arms an idle handle; the
 *   queue is dispatched on the next loop turn, so a callback never runs
 *   inside tf_pg_submit() and batches submitted in one turn are handed out
 *   together.  A connection that finishes a batch takes the next queued one
 *   at once.  Batches go out in submission order; each connection answers
 *   its batches in the order it received them.
 * - A batch still queued queue_timeout_ms after submission fails: with
 *   TF_EUNAVAIL when no connection is up (the documented case: Postgres is
 *   unreachable), with TF_ETIMEDOUT when connections are up but all busy, so
 *   waiting time stays bounded under overload too.
 * - A batch in flight when its connection breaks fails with TF_EUNAVAIL and
 *   is never retried: the pool cannot know whether the server ran it.  This
 *   includes a batch handed to a connection that the server had already
 *   closed before the loop noticed.
 * - A failed batch reports the first failing statement: its SQLSTATE, the
 *   server's primary message and failed_index counting the caller's
 *   statements from 0 (BEGIN is not counted; a failing COMMIT, e.g. a
 *   deferred constraint, reports n).  SQLSTATEs map to TF_E* codes as listed
 *   at tf__pg_error_from_sqlstate() in pool_internal.h (23505 ->
 *   TF_ECONFLICT, 23503 -> TF_EINVAL, class 08 -> TF_EUNAVAIL, 57014 ->
 *   TF_ETIMEDOUT, others -> TF_EIO, ...).
 * - Without TF_PG_TXN a batch still runs as one implicit transaction (the
 *   server commits at the pipeline's sync), so a failing statement rolls
 *   back the statements before it as well.  TF_PG_TXN adds an explicit
 *   BEGIN/COMMIT in the same round trip.
 * - Metrics (when a registry is given; registration is idempotent, so every
 *   loop's pool registers the same families):
 *     taskflow_pg_connections{pool,state="connected|connecting|down"} gauge
 *     taskflow_pg_pool_busy_connections{pool}  gauge
 *     taskflow_pg_pool_queue_depth{pool}       gauge
 *     taskflow_pg_batches_total{pool,result="ok|error"} counter
 *     taskflow_pg_batch_duration_seconds{pool} histogram, from sending a
 *       batch to its sync (time spent queued shows in the queue depth)
 *     taskflow_pg_reconnects_total{pool}       counter, connection attempts
 *       after the first one of each connection
 *   Gauges move by deltas, so pools that share a name add up.
 *
 * Loop: everything runs on the loop given to tf_pg_pool_create().
 */
#include <stdlib.h>
#include <string.h>

#include "adapters/pg/pool_internal.h"
#include "engine/error.h"

static const char TF_PG_CLOSING_MESSAGE[] = "the PostgreSQL pool is closing";
static const char TF_PG_UNREACHABLE_MESSAGE[] =
    "no PostgreSQL connection became available within queue_timeout_ms";
static const char TF_PG_SATURATED_MESSAGE[] =
    "every PostgreSQL connection stayed busy for queue_timeout_ms";

/* ---- metrics ------------------------------------------------------------ */

static void tf__pg_metric_add(tf_metric_t *metric, double value) {
    if (metric != NULL) {
        tf_metric_add(metric, value);
    }
}

static tf_metric_t *tf__pg_state_gauge(tf_pg_pool_t *pool, tf__pg_conn_state_t state) {
    switch (state) {
    case TF_PG_CONN_DOWN:
        return pool->m_conn_down;
    case TF_PG_CONN_CONNECTING:
    case TF_PG_CONN_PREPARING:
        return pool->m_conn_connecting;
    case TF_PG_CONN_IDLE:
    case TF_PG_CONN_BUSY:
    case TF_PG_CONN_CLEANUP:
        return pool->m_conn_connected;
    default:
        return NULL; /* CLOSED is not counted */
    }
}

void tf__pg_pool_conn_moved(tf_pg_pool_t *pool, tf__pg_conn_state_t from, tf__pg_conn_state_t to) {
    tf_metric_t *old_gauge = tf__pg_state_gauge(pool, from);
    tf_metric_t *new_gauge = tf__pg_state_gauge(pool, to);
    if (old_gauge != new_gauge) {
        tf__pg_metric_add(old_gauge, -1);
        tf__pg_metric_add(new_gauge, 1);
    }
    if ((from == TF_PG_CONN_BUSY) != (to == TF_PG_CONN_BUSY)) {
        tf__pg_metric_add(pool->m_busy, to == TF_PG_CONN_BUSY ? 1 : -1);
    }
}

void tf__pg_pool_count_reconnect(tf_pg_pool_t *pool) {
    tf__pg_metric_add(pool->m_reconnects, 1);
}

/* Registers the families (or finds them: registration is idempotent) and
 * looks up this pool's children.  Returns 0 or a TF_E* code. */
static int tf__pg_pool_metrics(tf_pg_pool_t *pool, tf_metrics_t *reg) {
    static const char *const by_pool[] = {"pool"};
    static const char *const by_state[] = {"pool", "state"};
    static const char *const by_result[] = {"pool", "result"};
    tf_metric_family_t *conns, *busy, *depth, *batches, *duration, *reconnects;
    int rc = tf_metrics_gauge(reg, "taskflow_pg_connections",
                              "PostgreSQL connections of the pool by state.", by_state, 2, &conns);
    if (rc == 0) {
        rc = tf_metrics_gauge(reg, "taskflow_pg_pool_busy_connections",
                              "Connections with a batch in flight.", by_pool, 1, &busy);
    }
    if (rc == 0) {
        rc = tf_metrics_gauge(reg, "taskflow_pg_pool_queue_depth",
                              "Batches waiting for a free connection.", by_pool, 1, &depth);
    }
    if (rc == 0) {
        rc = tf_metrics_counter(reg, "taskflow_pg_batches_total", "Batches answered, by result.",
                                by_result, 2, &batches);
    }
    if (rc == 0) {
        rc = tf_metrics_histogram(reg, "taskflow_pg_batch_duration_seconds",
                                  "Time from sending a batch to its last result.", by_pool, 1, NULL,
                                  0, &duration);
    }
    if (rc == 0) {
        rc = tf_metrics_counter(reg, "taskflow_pg_reconnects_total",
                                "Connection attempts after the first.", by_pool, 1, &reconnects);
    }
    if (rc != 0) {
        return rc;
    }
    const char *name = pool->name;
    pool->m_conn_connected = tf_metric_get(conns, (const char *const[]){name, "connected"});
    pool->m_conn_connecting = tf_metric_get(conns, (const char *const[]){name, "connecting"});
    pool->m_conn_down = tf_metric_get(conns, (const char *const[]){name, "down"});
    pool->m_busy = tf_metric_get(busy, (const char *const[]){name});
    pool->m_queue_depth = tf_metric_get(depth, (const char *const[]){name});
    pool->m_batches_ok = tf_metric_get(batches, (const char *const[]){name, "ok"});
    pool->m_batches_error = tf_metric_get(batches, (const char *const[]){name, "error"});
    pool->m_batch_duration = tf_metric_get(duration, (const char *const[]){name});
    pool->m_reconnects = tf_metric_get(reconnects, (const char *const[]){name});
    int complete = pool->m_conn_connected && pool->m_conn_connecting && pool->m_conn_down &&
                   pool->m_busy && pool->m_queue_depth && pool->m_batches_ok &&
                   pool->m_batches_error && pool->m_batch_duration && pool->m_reconnects;
    return complete ? 0 : TF_ENOMEM;
}

/* ---- configuration ------------------------------------------------------ */

static int tf__pg_conninfo_valid(const char *conninfo) {
    char *errmsg = NULL;
    PQconninfoOption *options = PQconninfoParse(conninfo, &errmsg);
    if (errmsg != NULL) {
        PQfreemem(errmsg);
    }
    if (options == NULL) {
        return 0;
    }
    PQconninfoFree(options);
    return 1;
}

/* Fills `out` with cfg and defaults for zero fields.  Returns 0 or
 * TF_EINVAL. */
static int tf__pg_config_resolve(const tf_pg_config_t *cfg, tf_pg_config_t *out) {
    *out = *cfg;
    out->size = cfg->size != 0 ? cfg->size : 2;
    out->max_queue = cfg->max_queue != 0 ? cfg->max_queue : 10000;
    out->queue_timeout_ms = cfg->queue_timeout_ms != 0 ? cfg->queue_timeout_ms : 5000;
    out->reconnect_min_ms = cfg->reconnect_min_ms != 0 ? cfg->reconnect_min_ms : 100;
    out->reconnect_max_ms = cfg->reconnect_max_ms != 0 ? cfg->reconnect_max_ms : 5000;
    out->pool_name = cfg->pool_name != NULL ? cfg->pool_name : "default";
    if (out->conninfo == NULL || !tf__pg_conninfo_valid(out->conninfo)) {
        return TF_EINVAL;
    }
    if (out->size < 1 || out->size > TF_PG_MAX_POOL_SIZE || out->max_queue < 1 ||
        out->queue_timeout_ms < 1 || out->reconnect_min_ms < 1 ||
        out->reconnect_max_ms < out->reconnect_min_ms || out->pool_name[0] == '\0') {
        return TF_EINVAL;
    }
    return 0;
}

static int tf__pg_prepared_valid(const tf_pg_prepared_t *prepared, size_t nprepared) {
    if (nprepared > 0 && prepared == NULL) {
        return 0;
    }
    for (size_t i = 0; i < nprepared; i++) {
        if (prepared[i].name == NULL || prepared[i].name[0] == '\0' || prepared[i].sql == NULL) {
            return 0;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(prepared[i].name, prepared[j].name) == 0) {
                return 0; /* names must be unique */
            }
        }
    }
    return 1;
}

/* ---- creation and destruction ------------------------------------------- */

static char *tf__pg_strdup(const char *text) {
    size_t len = strlen(text) + 1;
    char *copy = malloc(len);
    if (copy != NULL) {
        memcpy(copy, text, len);
    }
    return copy;
}

/* Frees the pool's memory (no handle may be open any more). */
static void tf__pg_pool_free(tf_pg_pool_t *pool) {
    for (size_t i = 0; pool->prepared != NULL && i < pool->nprepared; i++) {
        free((char *)pool->prepared[i].name);
        free((char *)pool->prepared[i].sql);
    }
    free(pool->prepared);
    free(pool->conns);
    free(pool->conninfo);
    free(pool->name);
    free(pool);
}

/* Allocates the pool and copies the configuration and statements. */
static int tf__pg_pool_alloc(const tf_pg_config_t *cfg, const tf_pg_prepared_t *prepared,
                             size_t nprepared, tf_pg_pool_t **out) {
    tf_pg_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        return TF_ENOMEM;
    }
    pool->conninfo = tf__pg_strdup(cfg->conninfo);
    pool->name = tf__pg_strdup(cfg->pool_name);
    pool->conns = calloc((size_t)cfg->size, sizeof(*pool->conns));
    pool->prepared = nprepared > 0 ? calloc(nprepared, sizeof(*pool->prepared)) : NULL;
    if (!pool->conninfo || !pool->name || !pool->conns || (nprepared > 0 && !pool->prepared)) {
        goto fail;
    }
    pool->nprepared = nprepared;
    for (size_t i = 0; i < nprepared; i++) {
        pool->prepared[i].name = tf__pg_strdup(prepared[i].name);
        pool->prepared[i].sql = tf__pg_strdup(prepared[i].sql);
        if (pool->prepared[i].name == NULL || pool->prepared[i].sql == NULL) {
            goto fail;
        }
    }
    pool->size = cfg->size;
    pool->max_queue = cfg->max_queue;
    pool->queue_timeout_ms = cfg->queue_timeout_ms;
    pool->reconnect_min_ms = cfg->reconnect_min_ms;
    pool->reconnect_max_ms = cfg->reconnect_max_ms;
    *out = pool;
    return 0;

fail:
    tf__pg_pool_free(pool);
    return TF_ENOMEM;
}

static void tf__pg_pool_on_kick(uv_idle_t *idle);

int tf_pg_pool_create(uv_loop_t *loop, const tf_pg_config_t *cfg, const tf_pg_prepared_t *prepared,
                      size_t nprepared, tf_metrics_t *metrics, tf_log_t *log, tf_pg_pool_t **out) {
    tf_pg_config_t resolved;
    if (loop == NULL || cfg == NULL || out == NULL || tf__pg_config_resolve(cfg, &resolved) != 0 ||
        !tf__pg_prepared_valid(prepared, nprepared)) {
        return TF_EINVAL;
    }
    tf_pg_pool_t *pool = NULL;
    int rc = tf__pg_pool_alloc(&resolved, prepared, nprepared, &pool);
    if (rc != 0) {
        return rc;
    }
    pool->loop = loop;
    pool->log = log;
    if (metrics != NULL && (rc = tf__pg_pool_metrics(pool, metrics)) != 0) {
        goto fail_pool;
    }
    /* From here on nothing fails: handles are initialized and counted. */
    uv_timer_init(loop, &pool->queue_timer);
    uv_idle_init(loop, &pool->kick);
    pool->queue_timer.data = pool;
    pool->kick.data = pool;
    pool->handles = 2;
    for (int i = 0; i < pool->size; i++) {
        tf__pg_conn_init(pool, &pool->conns[i], i);
    }
    for (int i = 0; i < pool->size; i++) {
        tf__pg_conn_connect(&pool->conns[i]);
    }
    *out = pool;
    return 0;

fail_pool:
    tf__pg_pool_free(pool);
    return rc;
}

/* ---- finishing batches -------------------------------------------------- */

void tf__pg_pool_finish(tf_pg_pool_t *pool, tf__pg_batch_t *batch, const tf_pg_reply_t *reply) {
    tf__pg_metric_add(reply->status == 0 ? pool->m_batches_ok : pool->m_batches_error, 1);
    if (batch->sent_ns != 0 && pool->m_batch_duration != NULL) {
        tf_metric_observe(pool->m_batch_duration, (double)(uv_hrtime() - batch->sent_ns) / 1e9);
    }
    batch->cb(reply, batch->arg);
    tf__pg_batch_free(batch);
}

void tf__pg_pool_fail(tf_pg_pool_t *pool, tf__pg_batch_t *batch, int status, const char *sqlstate,
                      const char *message) {
    tf_pg_reply_t reply = {
        .status = status,
        .sqlstate = sqlstate != NULL && sqlstate[0] != '\0' ? sqlstate : NULL,
        .message = message,
        .failed_index = -1,
    };
    tf__pg_pool_finish(pool, batch, &reply);
}

/* ---- the queue ---------------------------------------------------------- */

static tf__pg_batch_t *tf__pg_queue_pop(tf_pg_pool_t *pool) {
    tf__pg_batch_t *batch = pool->head;
    if (batch != NULL) {
        pool->head = batch->next;
        if (pool->head == NULL) {
            pool->tail = NULL;
        }
        batch->next = NULL;
        pool->queued--;
        tf__pg_metric_add(pool->m_queue_depth, -1);
    }
    return batch;
}

static void tf__pg_queue_push(tf_pg_pool_t *pool, tf__pg_batch_t *batch) {
    if (pool->tail != NULL) {
        pool->tail->next = batch;
    } else {
        pool->head = batch;
    }
    pool->tail = batch;
    pool->queued++;
    tf__pg_metric_add(pool->m_queue_depth, 1);
}

static int tf__pg_pool_any_live(const tf_pg_pool_t *pool) {
    for (int i = 0; i < pool->size; i++) {
        if (tf__pg_conn_is_live(&pool->conns[i])) {
            return 1;
        }
    }
    return 0;
}

static void tf__pg_pool_on_queue_timer(uv_timer_t *timer);

/* Arms the queue timer for the head's deadline (stops it when empty). */
static void tf__pg_pool_arm_queue_timer(tf_pg_pool_t *pool) {
    if (pool->head == NULL || pool->closing) {
        uv_timer_stop(&pool->queue_timer);
        return;
    }
    uint64_t now = uv_now(pool->loop);
    uint64_t due = pool->head->deadline_ms > now ? pool->head->deadline_ms - now : 0;
    uv_timer_start(&pool->queue_timer, tf__pg_pool_on_queue_timer, due, 0);
}

/* Fails the batches that waited past their deadline.  Deadlines grow along
 * the FIFO, so only the head needs looking at. */
static void tf__pg_pool_on_queue_timer(uv_timer_t *timer) {
    tf_pg_pool_t *pool = timer->data;
    uint64_t now = uv_now(pool->loop);
    while (!pool->closing && pool->head != NULL && pool->head->deadline_ms <= now) {
        tf__pg_batch_t *batch = tf__pg_queue_pop(pool);
        int live = tf__pg_pool_any_live(pool);
        tf__pg_pool_fail(pool, batch, live ? TF_ETIMEDOUT : TF_EUNAVAIL, NULL,
                         live ? TF_PG_SATURATED_MESSAGE : TF_PG_UNREACHABLE_MESSAGE);
    }
    tf__pg_pool_arm_queue_timer(pool);
}

static tf__pg_conn_t *tf__pg_pool_idle_conn(tf_pg_pool_t *pool) {
    for (int k = 0; k < pool->size; k++) {
        tf__pg_conn_t *conn = &pool->conns[(pool->next_conn + k) % pool->size];
        if (conn->state == TF_PG_CONN_IDLE) {
            pool->next_conn = (conn->index + 1) % pool->size;
            return conn;
        }
    }
    return NULL;
}

/* Hands queued batches to idle connections.  Sending may fail a batch (its
 * callback runs), which may close the pool: checked on every turn. */
static void tf__pg_pool_dispatch(tf_pg_pool_t *pool) {
    while (!pool->closing && pool->head != NULL) {
        tf__pg_conn_t *conn = tf__pg_pool_idle_conn(pool);
        if (conn == NULL) {
            return;
        }
        tf__pg_conn_send(conn, tf__pg_queue_pop(pool));
    }
}

static void tf__pg_pool_on_kick(uv_idle_t *idle) {
    tf_pg_pool_t *pool = idle->data;
    uv_idle_stop(idle);
    tf__pg_pool_dispatch(pool);
}

void tf__pg_pool_conn_idle(tf_pg_pool_t *pool, tf__pg_conn_t *conn) {
    if (pool->closing) {
        tf__pg_conn_shutdown(conn);
        return;
    }
    if (pool->head != NULL) {
        tf__pg_conn_send(conn, tf__pg_queue_pop(pool));
    }
}

/* ---- public functions --------------------------------------------------- */

int tf_pg_submit(tf_pg_pool_t *pool, const tf_pg_stmt_t *stmts, size_t n, unsigned flags,
                 tf_pg_cb cb, void *arg) {
    if (pool == NULL || stmts == NULL || n == 0 || n > TF_PG_MAX_STMTS || cb == NULL ||
        (flags & ~(unsigned)TF_PG_TXN) != 0) {
        return TF_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (tf__pg_stmt_check(&stmts[i], pool->prepared, pool->nprepared) != 0) {
            return TF_EINVAL;
        }
    }
    if (pool->closing) {
        return TF_ESHUTDOWN;
    }
    if (pool->queued >= (size_t)pool->max_queue) {
        return TF_EAGAIN;
    }
    tf__pg_batch_t *batch = NULL;
    int rc = tf__pg_batch_copy(stmts, n, flags, cb, arg, &batch);
    if (rc != 0) {
        return rc;
    }
    batch->deadline_ms = uv_now(pool->loop) + (uint64_t)pool->queue_timeout_ms;
    int was_empty = pool->head == NULL;
    tf__pg_queue_push(pool, batch);
    if (was_empty) {
        tf__pg_pool_arm_queue_timer(pool);
    }
    uv_idle_start(&pool->kick, tf__pg_pool_on_kick);
    return 0;
}

int tf_pg_pool_connected(const tf_pg_pool_t *pool) {
    return pool != NULL && tf__pg_pool_any_live(pool);
}

void tf__pg_pool_handle_closed(tf_pg_pool_t *pool) {
    if (--pool->handles > 0 || !pool->closing) {
        return;
    }
    /* pool.h: closed_cb runs, then the pool is freed. */
    if (pool->closed_cb != NULL) {
        pool->closed_cb(pool->closed_arg);
    }
    tf__pg_pool_free(pool);
}

static void tf__pg_pool_own_handle_closed(uv_handle_t *handle) {
    tf__pg_pool_handle_closed(handle->data);
}

void tf_pg_pool_close(tf_pg_pool_t *pool, void (*closed_cb)(void *arg), void *arg) {
    if (pool == NULL || pool->closing) {
        return;
    }
    pool->closing = 1;
    pool->closed_cb = closed_cb;
    pool->closed_arg = arg;
    tf__pg_batch_t *batch;
    while ((batch = tf__pg_queue_pop(pool)) != NULL) {
        tf__pg_pool_fail(pool, batch, TF_ESHUTDOWN, NULL, TF_PG_CLOSING_MESSAGE);
    }
    uv_close((uv_handle_t *)&pool->queue_timer, tf__pg_pool_own_handle_closed);
    uv_close((uv_handle_t *)&pool->kick, tf__pg_pool_own_handle_closed);
    /* Connections with a batch in flight finish it first (conn_idle then
     * shuts them); every other one closes now. */
    for (int i = 0; i < pool->size; i++) {
        if (pool->conns[i].state != TF_PG_CONN_BUSY) {
            tf__pg_conn_shutdown(&pool->conns[i]);
        }
    }
}
