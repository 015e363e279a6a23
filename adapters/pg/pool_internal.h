/*
 * pool_internal.h - what pool.c, conn.c and batch.c share; not a public API.
 *
 * pool.c owns the public functions, the FIFO of waiting batches, dispatch,
 * metrics and closing.  conn.c drives one libpq connection through its life
 * (connect, prepare, run pipelines, clean up, reconnect).  batch.c copies a
 * submitted batch into one allocation and maps SQLSTATEs to TF_E* codes.
 *
 * Everything here runs on the pool's loop thread.  Async handles (the pool's
 * idle and timer, each connection's timer, the per-socket poll wrappers) are
 * counted in pool->handles and freed only in their close callbacks; the pool
 * itself is freed when it is closing and that count reaches zero.
 */
#ifndef TF_ADAPTERS_PG_POOL_INTERNAL_H
#define TF_ADAPTERS_PG_POOL_INTERNAL_H

#include <stdint.h>

#include "adapters/pg/pool.h"
#include "adapters/pg/socket.h"

#define TF_PG_MAX_POOL_SIZE 256
#define TF_PG_MAX_PARAMS 65535
#define TF_PG_MAX_STMTS 100000
/* Bound on one connection attempt (libpq does not enforce connect_timeout
 * in non-blocking mode); a connect_timeout in the conninfo overrides it. */
#define TF_PG_CONNECT_TIMEOUT_MS 10000

/* The first error of a pipeline. */
typedef struct {
    int set;
    int index; /* command index as counted by the receiver of the pipeline */
    char sqlstate[6];
    char *message; /* malloc'd */
} tf__pg_error_t;

/* One statement as copied into a batch: strings are NUL-terminated copies. */
typedef struct {
    const char *prepared;
    const char *sql;
    int nparams;
    const char *const *values;
} tf__pg_stmt_t;

typedef struct tf__pg_batch tf__pg_batch_t;
struct tf__pg_batch {
    tf__pg_batch_t *next; /* FIFO link while queued */
    unsigned flags;
    size_t n;
    tf__pg_stmt_t *stmts;
    PGresult **results; /* n slots, filled while the batch runs */
    tf__pg_error_t error;
    tf_pg_cb cb;
    void *arg;
    uint64_t deadline_ms; /* uv_now() after which it fails while still queued */
    uint64_t sent_ns;     /* uv_hrtime() when sent; 0 while queued */
};

/* Copies a batch (statements, parameters, strings) into one allocation.
 * Arguments must have been validated.  Returns 0 or TF_ENOMEM.  Caller owns
 * the result; free with tf__pg_batch_free(). */
int tf__pg_batch_copy(const tf_pg_stmt_t *stmts, size_t n, unsigned flags, tf_pg_cb cb, void *arg,
                      tf__pg_batch_t **out);
/* Clears the batch's results and error and frees it. */
void tf__pg_batch_free(tf__pg_batch_t *batch);
/* Validates one statement of tf_pg_submit().  Returns 0 or TF_EINVAL. */
int tf__pg_stmt_check(const tf_pg_stmt_t *stmt, const tf_pg_prepared_t *prepared, size_t nprepared);

/* Records the first error of a pipeline (later ones are ignored).  Takes
 * the sqlstate (may be NULL) and a copy of `message`. */
void tf__pg_error_record(tf__pg_error_t *err, int index, const char *sqlstate, const char *message);
void tf__pg_error_clear(tf__pg_error_t *err);
/* A malloc'd copy of `message` without trailing newlines and spaces (NULL
 * when out of memory). */
char *tf__pg_message_dup(const char *message);

/* SQLSTATE to TF_E* code:
 *   23505 unique_violation, 23P01 exclusion_violation    -> TF_ECONFLICT
 *   23503 foreign_key, 23502 not_null, 23514 check,
 *   class 22 data exception (bad input value)            -> TF_EINVAL
 *   57014 query_canceled (statement_timeout),
 *   55P03 lock_not_available (lock_timeout)              -> TF_ETIMEDOUT
 *   40001 serialization_failure, 40P01 deadlock_detected -> TF_EAGAIN (retry)
 *   class 08 connection exception, class 53 insufficient
 *   resources, 57P01-57P03 shutdown / cannot connect now -> TF_EUNAVAIL
 *   anything else, or no SQLSTATE                        -> TF_EIO */
int tf__pg_error_from_sqlstate(const char *sqlstate);

typedef enum {
    TF_PG_CONN_DOWN,       /* no connection; the timer waits for the next attempt */
    TF_PG_CONN_CONNECTING, /* PQconnectPoll in progress */
    TF_PG_CONN_PREPARING,  /* connected; registered statements being prepared */
    TF_PG_CONN_IDLE,       /* ready for a batch */
    TF_PG_CONN_BUSY,       /* a user batch in flight */
    TF_PG_CONN_CLEANUP,    /* ROLLBACK after a batch left a transaction open */
    TF_PG_CONN_CLOSED,     /* shut down for good (pool closing) */
} tf__pg_conn_state_t;

typedef struct tf__pg_conn tf__pg_conn_t;

struct tf__pg_conn {
    tf_pg_pool_t *pool;
    int index;
    tf__pg_conn_state_t state;
    PGconn *pg;
    tf__pg_watch_t watch; /* its socket (socket.h) */
    uv_timer_t timer;     /* next connect attempt (DOWN) or connect deadline */
    int backoff_ms;       /* delay before the next attempt after a failure */
    /* The pipeline in flight (PREPARING, BUSY, CLEANUP). */
    tf__pg_batch_t *batch; /* BUSY only */
    size_t ncmds;          /* commands sent, each answered by one result */
    size_t cmd;            /* results received so far */
    int txn;               /* the batch is wrapped in BEGIN/COMMIT */
    tf__pg_error_t error;  /* first error of an internal pipeline */
};

struct tf_pg_pool {
    uv_loop_t *loop;
    char *conninfo;
    char *name;
    int size;
    int max_queue;
    int queue_timeout_ms;
    int reconnect_min_ms;
    int reconnect_max_ms;
    tf_pg_prepared_t *prepared;
    size_t nprepared;
    tf_log_t *log;
    /* Metric children (NULL without a registry).  Gauges move by deltas so
     * that pools sharing a name add up instead of overwriting each other. */
    tf_metric_t *m_conn_connected;
    tf_metric_t *m_conn_connecting;
    tf_metric_t *m_conn_down;
    tf_metric_t *m_busy;
    tf_metric_t *m_queue_depth;
    tf_metric_t *m_batches_ok;
    tf_metric_t *m_batches_error;
    tf_metric_t *m_batch_duration;
    tf_metric_t *m_reconnects;
    tf__pg_conn_t *conns;
    int next_conn; /* round-robin start for dispatch */
    tf__pg_batch_t *head;
    tf__pg_batch_t *tail;
    size_t queued;
    uv_timer_t queue_timer; /* fails batches waiting past queue_timeout_ms */
    uv_idle_t kick;         /* dispatches queued batches on the next loop turn */
    int closing;
    int handles; /* open uv handles; the pool is freed when closing and 0 */
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* conn.c */
void tf__pg_conn_init(tf_pg_pool_t *pool, tf__pg_conn_t *conn, int index);
void tf__pg_conn_connect(tf__pg_conn_t *conn);
/* Sends `batch` on an IDLE connection.  A failure to send fails the batch
 * (its callback runs) and drops the connection. */
void tf__pg_conn_send(tf__pg_conn_t *conn, tf__pg_batch_t *batch);
/* Closes the connection and its handles for good (any state but BUSY). */
void tf__pg_conn_shutdown(tf__pg_conn_t *conn);
int tf__pg_conn_is_live(const tf__pg_conn_t *conn);

/* pool.c */
/* A connection became IDLE: give it the next batch, or shut it if closing. */
void tf__pg_pool_conn_idle(tf_pg_pool_t *pool, tf__pg_conn_t *conn);
/* Moves the state gauges (and the busy gauge) from `from` to `to`. */
void tf__pg_pool_conn_moved(tf_pg_pool_t *pool, tf__pg_conn_state_t from, tf__pg_conn_state_t to);
/* Runs the batch's callback with `reply`, counts it, and frees the batch. */
void tf__pg_pool_finish(tf_pg_pool_t *pool, tf__pg_batch_t *batch, const tf_pg_reply_t *reply);
/* Fails `batch` with `status` and `message` (no results). */
void tf__pg_pool_fail(tf_pg_pool_t *pool, tf__pg_batch_t *batch, int status, const char *sqlstate,
                      const char *message);
void tf__pg_pool_count_reconnect(tf_pg_pool_t *pool);
/* Close callback bookkeeping: one handle of the pool finished closing. */
void tf__pg_pool_handle_closed(tf_pg_pool_t *pool);

#endif
