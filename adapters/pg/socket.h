/*
 * socket.h - watching a libpq connection's socket with libuv, and the
 * connection set-up both kinds of connection share: the pool's (conn.c)
 * and the LISTEN session's (notifier.c).  Internal to adapters/pg.
 *
 * A watch keeps one uv_poll_t wrapper per socket.  While connecting,
 * libpq may close its socket and open another (next address, SSL
 * fallback), possibly with the same fd number, so tf__pg_watch_start()
 * replaces the wrapper; a callback from a wrapper that is no longer the
 * current one is dropped.  A wrapper is closed (which takes the fd out of
 * epoll) before PQfinish() closes the socket, and freed only in its close
 * callback, after which the owner's `closed` hook runs (owners count their
 * open handles and free themselves at zero).  Loop thread only.
 */
#ifndef TF_ADAPTERS_PG_SOCKET_H
#define TF_ADAPTERS_PG_SOCKET_H

#include <libpq-fe.h>
#include <uv.h>

#include "adapters/log/log.h"

typedef struct tf__pg_sock tf__pg_sock_t;

typedef struct {
    uv_loop_t *loop;
    tf__pg_sock_t *current; /* the wrapper of the current socket, or NULL */
    int events;             /* what it waits for */
    int flushing;           /* PQflush() left data: waiting for UV_WRITABLE */
    void (*on_io)(void *owner, int status, int events);
    void (*closed)(void *owner); /* a wrapper finished closing */
    void *owner;
    int *handles; /* the owner's count of open handles: +1 per wrapper made */
} tf__pg_watch_t;

void tf__pg_watch_init(tf__pg_watch_t *w, uv_loop_t *loop,
                       void (*on_io)(void *owner, int status, int events),
                       void (*closed)(void *owner), void *owner, int *handles);

/* Replaces the wrapper with a fresh one on PQsocket(pg) waiting for
 * `events`.  Returns 0, TF_ENOMEM or TF_EIO. */
int tf__pg_watch_start(tf__pg_watch_t *w, PGconn *pg, int events);

/* Waits for `events` on the current socket.  Returns 0 or TF_EIO. */
int tf__pg_watch_set(tf__pg_watch_t *w, int events);

/* Closes the current wrapper (if any); `closed` follows. */
void tf__pg_watch_stop(tf__pg_watch_t *w);

/* Sends what libpq buffered and waits for readable, and writable while
 * data is left.  Returns 0, -1 when PQflush() failed (the connection is
 * lost), -2 when the socket cannot be watched. */
int tf__pg_watch_flush(tf__pg_watch_t *w, PGconn *pg);

/* Starts a non-blocking connection to `conninfo` with TaskFlow's defaults
 * before it (the caller's conninfo overrides them): `application_name` as
 * fallback_application_name, and TCP keepalives that notice a dead server
 * within about a minute instead of hours.  NULL when out of memory. */
PGconn *tf__pg_connect_start(const char *conninfo, const char *application_name);

/* The bound of one connection attempt: the conninfo's connect_timeout,
 * else `default_ms` (libpq does not enforce it in non-blocking mode). */
int tf__pg_connect_deadline_ms(PGconn *pg, int default_ms);

/* The socket events PQconnectPoll() asks for. */
static inline int tf__pg_connect_events(PostgresPollingStatusType st) {
    return st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE;
}

/* Logs a server notice: warnings and errors at warn, the rest at debug
 * (e.g. "there is no transaction in progress"), with `what` as message and
 * the fields of `extra` (may be NULL) added. */
void tf__pg_log_notice(tf_log_t *log, const char *what, const PGresult *res, const char *pool,
                       int conn);

#endif
