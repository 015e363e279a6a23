/*
 * pool.h - non-blocking PostgreSQL access for one libuv loop.
 *
 * A pool belongs to one loop thread and is used only from it (shared-nothing:
 * every loop has its own pool).  It keeps `size` libpq connections in
 * non-blocking mode, each socket watched with uv_poll, and never blocks the
 * loop: connecting (PQconnectStart/PQconnectPoll), sending and reading all
 * happen from poll callbacks.
 *
 * Work is submitted as a *batch*: one or more statements sent in libpq's
 * pipeline mode followed by one sync, so a batch costs one round trip however
 * many statements it holds.  With TF_PG_TXN the pool wraps the batch in
 * BEGIN/COMMIT inside the same pipeline (still one round trip); an error in
 * any statement rolls the whole batch back.  Statements either name a
 * prepared statement registered when the pool was created (prepared on every
 * connection as it connects) or carry ad-hoc SQL.
 *
 * When every connection is busy, batches wait in a FIFO queue (bounded by
 * `max_queue`; beyond it tf_pg_submit() fails with TF_EAGAIN).  A connection
 * that breaks fails its in-flight batch with TF_EUNAVAIL and reconnects with
 * exponential backoff (reconnect_min_ms doubling up to reconnect_max_ms);
 * batches queued while no connection is up fail with TF_EUNAVAIL after
 * `queue_timeout_ms`.
 */
#ifndef TF_ADAPTERS_PG_POOL_H
#define TF_ADAPTERS_PG_POOL_H

#include <stddef.h>

#include <libpq-fe.h>
#include <uv.h>

#include "adapters/log/log.h"
#include "adapters/metrics/metrics.h"

typedef struct tf_pg_pool tf_pg_pool_t;

typedef struct {
    const char *conninfo;  /* libpq connection string or URL; copied */
    int size;              /* connections in this pool (default 2) */
    int max_queue;         /* waiting batches before TF_EAGAIN (default 10000) */
    int queue_timeout_ms;  /* how long a batch waits for a live connection (default 5000) */
    int reconnect_min_ms;  /* first reconnect delay (default 100) */
    int reconnect_max_ms;  /* reconnect delay cap (default 5000) */
    const char *pool_name; /* metrics label, e.g. "api-0"; copied */
} tf_pg_config_t;

/* A named statement, prepared on every connection when it connects. */
typedef struct {
    const char *name;
    const char *sql;
} tf_pg_prepared_t;

/* One statement of a batch.  Parameters are text (NULL value = SQL NULL)
 * and are copied by tf_pg_submit(), so the caller may free them at once. */
typedef struct {
    const char *prepared; /* name of a registered statement, or NULL */
    const char *sql;      /* ad-hoc SQL when `prepared` is NULL */
    int nparams;
    const char *const *values;
    const int *lengths; /* NULL: values are NUL-terminated */
} tf_pg_stmt_t;

enum { TF_PG_TXN = 1u << 0 };

/* The outcome of a batch.  On success `status` is 0 and `results[i]` is the
 * result of statement i.  On failure `status` is a TF_E* code, `sqlstate`
 * (may be NULL) and `message` say why, and `failed_index` names the statement
 * that failed (-1 when the connection failed).  Everything in a reply is
 * owned by the pool and valid only during the callback. */
typedef struct {
    int status;
    PGresult *const *results;
    size_t nresults;
    const char *sqlstate;
    const char *message;
    int failed_index;
} tf_pg_reply_t;

typedef void (*tf_pg_cb)(const tf_pg_reply_t *reply, void *arg);

/* Creates a pool on `loop` and starts connecting.  `prepared` (nprepared
 * entries) is copied.  `metrics` and `log` may be NULL and must outlive the
 * pool.  Caller owns the result; release with tf_pg_pool_close(). */
int tf_pg_pool_create(uv_loop_t *loop, const tf_pg_config_t *cfg, const tf_pg_prepared_t *prepared,
                      size_t nprepared, tf_metrics_t *metrics, tf_log_t *log, tf_pg_pool_t **out);

/* Queues a batch of `n` statements (1 <= n).  `cb` runs exactly once, on the
 * pool's loop, never before tf_pg_submit() returns.  Returns 0, TF_EINVAL,
 * TF_ENOMEM, TF_EAGAIN (queue full) or TF_ESHUTDOWN; on error `cb` is never
 * called. */
int tf_pg_submit(tf_pg_pool_t *pool, const tf_pg_stmt_t *stmts, size_t n, unsigned flags,
                 tf_pg_cb cb, void *arg);

/* 1 when at least one connection is established and idle or working. */
int tf_pg_pool_connected(const tf_pg_pool_t *pool);

/* Fails queued batches with TF_ESHUTDOWN, waits for in-flight ones, closes
 * every connection and handle, then calls `closed_cb` (may be NULL) and frees
 * the pool. */
void tf_pg_pool_close(tf_pg_pool_t *pool, void (*closed_cb)(void *arg), void *arg);

#endif
