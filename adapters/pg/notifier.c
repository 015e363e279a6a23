/*
 * notifier.c - one loop's LISTEN session, as a state machine.
 *
 *   DOWN --timer--> CONNECTING --PQconnectPoll OK--> SUBSCRIBING
 *   SUBSCRIBING --both LISTENs answered--> UP (subscribers get channel NULL)
 *   UP --readable--> deliver every notification, stay UP
 *   any failure --> DOWN (retry after a backoff doubling from 100 ms to 5 s;
 *   back to 100 ms once a session is UP)
 *   tf_notifier_close() --> CLOSED
 *
 * Invariants:
 * - The connection is dedicated (never from a pool: a LISTEN belongs to its
 *   session) and non-blocking; nothing on it ever waits.  After the LISTENs
 *   nothing is sent on it again: it only receives.
 * - The socket is watched by a poll wrapper allocated per socket.  While
 *   connecting, libpq may close its socket and open another one (next
 *   address, SSL fallback), possibly with the same fd number, so the wrapper
 *   is replaced after every PQconnectPoll step.  A wrapper is closed (which
 *   takes the fd out of epoll) before PQfinish() closes the socket, and a
 *   callback from a wrapper that is no longer current is ignored.
 * - Async handles (the timer and every poll wrapper) are counted in
 *   `handles` and freed only in their close callbacks; the notifier is freed
 *   when it is closed and that count reaches zero, so a subscriber may close
 *   the notifier from inside its callback.
 * - Every established session (the first one included) ends its set-up with
 *   one call per subscriber with channel NULL: notifications sent while no
 *   session listened are lost, and the subscribers poll once instead.
 * - The timer bounds a connection attempt (connect and LISTEN together,
 *   TF_NOTIFIER_CONNECT_TIMEOUT_MS or the conninfo's connect_timeout) and
 *   waits out the backoff while DOWN.
 *
 * Loop: the loop given to tf_notifier_create() only.  Host name lookups
 * happen inside PQconnectPoll and block the loop briefly; prefer an IP
 * address in the conninfo.
 */
#include "adapters/pg/notifier.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "adapters/pg/socket.h"
#include "engine/error.h"

#define TF_NOTIFIER_MAX_SUBSCRIBERS 8
#define TF_NOTIFIER_BACKOFF_MIN_MS 100
#define TF_NOTIFIER_BACKOFF_MAX_MS 5000
#define TF_NOTIFIER_CONNECT_TIMEOUT_MS 10000

static const char TF_NOTIFIER_LISTEN_SQL[] =
    "LISTEN " TF_CHANNEL_READY "; LISTEN " TF_CHANNEL_CANCEL "; LISTEN " TF_CHANNEL_LUA;

typedef enum {
    TF_NOTIFIER_DOWN,
    TF_NOTIFIER_CONNECTING,
    TF_NOTIFIER_SUBSCRIBING,
    TF_NOTIFIER_UP,
    TF_NOTIFIER_CLOSED,
} tf__notifier_state_t;

typedef struct {
    tf_notify_fn fn;
    void *arg;
} tf__notifier_sub_t;

struct tf_notifier {
    uv_loop_t *loop;
    char *conninfo;
    tf_log_t *log;
    PGconn *pg;
    tf__notifier_state_t state;
    tf__pg_watch_t watch; /* the socket (socket.h); watch.flushing: LISTENs not all sent */
    uv_timer_t timer;
    int backoff_ms;
    int handles; /* open handles: the timer and poll wrappers */
    int listen_errors;
    tf__notifier_sub_t subs[TF_NOTIFIER_MAX_SUBSCRIBERS];
    size_t nsubs;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

static void tf__notifier_on_io(void *owner, int status, int events);
static void tf__notifier_on_timer(uv_timer_t *timer);
static void tf__notifier_connect(tf_notifier_t *n);

/* ---- handles and freeing -------------------------------------------------- */

static void tf__notifier_handle_closed(tf_notifier_t *n) {
    n->handles--;
    if (n->state == TF_NOTIFIER_CLOSED && n->handles == 0) {
        void (*cb)(void *) = n->closed_cb;
        void *arg = n->closed_arg;
        free(n->conninfo);
        free(n);
        if (cb != NULL) {
            cb(arg);
        }
    }
}

static void tf__notifier_sock_closed(void *owner) {
    tf__notifier_handle_closed(owner);
}

static void tf__notifier_timer_closed(uv_handle_t *handle) {
    tf__notifier_handle_closed(handle->data);
}

static void tf__notifier_unwatch(tf_notifier_t *n) {
    tf__pg_watch_stop(&n->watch);
}

static int tf__notifier_watch(tf_notifier_t *n, int events) {
    return tf__pg_watch_start(&n->watch, n->pg, events);
}

/* ---- failure and reconnecting --------------------------------------------- */

/* Closes the socket watch, then the libpq connection. */
static void tf__notifier_drop(tf_notifier_t *n) {
    tf__notifier_unwatch(n);
    if (n->pg != NULL) {
        PQfinish(n->pg);
        n->pg = NULL;
    }
    uv_timer_stop(&n->timer);
}

/* Drops the session and schedules the next attempt after the backoff. */
static void tf__notifier_fail(tf_notifier_t *n, const char *what, const char *why) {
    int was_up = n->state == TF_NOTIFIER_UP;
    int delay = n->backoff_ms;
    tf_log_warn(n->log, was_up ? "notifier connection lost" : what,
                TF_LF_STR("error", why != NULL && why[0] != '\0' ? why : "unknown"),
                TF_LF_INT("retry_in_ms", delay));
    tf__notifier_drop(n);
    n->state = TF_NOTIFIER_DOWN;
    n->backoff_ms = delay > TF_NOTIFIER_BACKOFF_MAX_MS / 2 ? TF_NOTIFIER_BACKOFF_MAX_MS : delay * 2;
    uv_timer_start(&n->timer, tf__notifier_on_timer, (uint64_t)delay, 0);
}

static void tf__notifier_lost(tf_notifier_t *n, const char *what) {
    tf__notifier_fail(n, what, n->pg != NULL ? PQerrorMessage(n->pg) : "no connection");
}

static void tf__notifier_on_timer(uv_timer_t *timer) {
    tf_notifier_t *n = timer->data;
    if (n->state == TF_NOTIFIER_DOWN) {
        tf__notifier_connect(n);
    } else if (n->state == TF_NOTIFIER_CONNECTING || n->state == TF_NOTIFIER_SUBSCRIBING) {
        tf__notifier_fail(n, "notifier connect failed", "connection attempt timed out");
    }
}

/* ---- receiving ------------------------------------------------------------ */

/* Calls every subscriber with `channel` and `payload`.  Returns -1 when a
 * subscriber closed the notifier (stop touching the connection), else 0. */
static int tf__notifier_deliver(tf_notifier_t *n, const char *channel, const char *payload) {
    for (size_t i = 0; i < n->nsubs; i++) {
        n->subs[i].fn(channel, payload, n->subs[i].arg);
        if (n->state == TF_NOTIFIER_CLOSED) {
            return -1;
        }
    }
    return 0;
}

/* Hands every notification libpq has parsed to the subscribers.  Returns
 * -1 when a subscriber closed the notifier. */
static int tf__notifier_drain(tf_notifier_t *n) {
    PGnotify *notify;
    while (n->state == TF_NOTIFIER_UP && (notify = PQnotifies(n->pg)) != NULL) {
        int rc = tf__notifier_deliver(n, notify->relname, notify->extra);
        PQfreemem(notify);
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

/* Every LISTEN succeeded: the session is up. */
static void tf__notifier_up(tf_notifier_t *n) {
    uv_timer_stop(&n->timer);
    n->state = TF_NOTIFIER_UP;
    n->backoff_ms = TF_NOTIFIER_BACKOFF_MIN_MS;
    tf_log_info(n->log, "notifier listening", TF_LF_STR("host", PQhost(n->pg)),
                TF_LF_STR("port", PQport(n->pg)), TF_LF_INT("backend_pid", PQbackendPID(n->pg)));
    if (tf__notifier_deliver(n, NULL, NULL) != 0) {
        return;
    }
    tf__notifier_drain(n);
}

/* Reads the answers to the LISTENs; goes UP after the last one. */
static void tf__notifier_read_listen(tf_notifier_t *n) {
    while (!PQisBusy(n->pg)) {
        PGresult *res = PQgetResult(n->pg);
        if (res == NULL) {
            if (n->listen_errors > 0) {
                tf__notifier_fail(n, "notifier LISTEN failed", "LISTEN was refused");
                return;
            }
            tf__notifier_up(n);
            return;
        }
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            tf_log_warn(n->log, "notifier LISTEN failed",
                        TF_LF_STR("error", PQresultErrorMessage(res)));
            n->listen_errors++;
        }
        PQclear(res);
    }
    if (PQstatus(n->pg) == CONNECTION_BAD) {
        tf__notifier_lost(n, "notifier LISTEN failed");
    }
}

/* Sends what libpq buffered and watches for the rest.  Returns 0, or -1
 * after the session failed. */
static int tf__notifier_flush(tf_notifier_t *n) {
    int r = tf__pg_watch_flush(&n->watch, n->pg);
    if (r == -1) {
        tf__notifier_lost(n, "notifier send failed");
    } else if (r != 0) {
        tf__notifier_fail(n, "notifier send failed", "cannot watch the socket");
    }
    return r == 0 ? 0 : -1;
}

static void tf__notifier_readable(tf_notifier_t *n) {
    if (!PQconsumeInput(n->pg)) {
        tf__notifier_lost(n, "notifier connection lost");
        return;
    }
    if (n->state == TF_NOTIFIER_SUBSCRIBING) {
        tf__notifier_read_listen(n);
        return;
    }
    if (tf__notifier_drain(n) != 0) {
        return;
    }
    if (n->state == TF_NOTIFIER_UP && PQstatus(n->pg) == CONNECTION_BAD) {
        tf__notifier_lost(n, "notifier connection lost");
    }
}

/* ---- connecting ----------------------------------------------------------- */

/* Server notices (e.g. "terminating connection due to administrator
 * command", which arrives as an error while the session is idle) go to the
 * log instead of stderr. */
static void tf__notifier_notice(void *arg, const PGresult *res) {
    tf_notifier_t *n = arg;
    tf__pg_log_notice(n->log, "notifier postgres notice", res, NULL, 0);
}

/* Connected: go non-blocking and send both LISTENs in one simple query. */
static void tf__notifier_connected(tf_notifier_t *n) {
    n->state = TF_NOTIFIER_SUBSCRIBING;
    n->listen_errors = 0;
    if (PQsetnonblocking(n->pg, 1) != 0 || tf__notifier_watch(n, UV_READABLE) != 0) {
        tf__notifier_lost(n, "notifier connect failed");
        return;
    }
    if (!PQsendQuery(n->pg, TF_NOTIFIER_LISTEN_SQL)) {
        tf__notifier_lost(n, "notifier LISTEN failed");
        return;
    }
    tf__notifier_flush(n);
}

static void tf__notifier_connect_step(tf_notifier_t *n) {
    PostgresPollingStatusType st = PQconnectPoll(n->pg);
    if (st == PGRES_POLLING_OK) {
        tf__notifier_connected(n);
        return;
    }
    if (st == PGRES_POLLING_FAILED) {
        tf__notifier_lost(n, "notifier connect failed");
        return;
    }
    /* The socket may have changed: watch the current one afresh. */
    if (tf__notifier_watch(n, tf__pg_connect_events(st)) != 0) {
        tf__notifier_fail(n, "notifier connect failed", "cannot watch the socket");
    }
}

static void tf__notifier_connect(tf_notifier_t *n) {
    n->state = TF_NOTIFIER_CONNECTING;
    n->pg = tf__pg_connect_start(n->conninfo, "taskflow-notifier");
    if (n->pg == NULL) {
        tf__notifier_fail(n, "notifier connect failed", "out of memory");
        return;
    }
    if (PQstatus(n->pg) == CONNECTION_BAD) {
        tf__notifier_lost(n, "notifier connect failed");
        return;
    }
    PQsetNoticeReceiver(n->pg, tf__notifier_notice, n);
    uv_timer_start(&n->timer, tf__notifier_on_timer,
                   (uint64_t)tf__pg_connect_deadline_ms(n->pg, TF_NOTIFIER_CONNECT_TIMEOUT_MS), 0);
    /* libpq: before the first PQconnectPoll, act as if it returned WRITING. */
    if (tf__notifier_watch(n, UV_WRITABLE) != 0) {
        tf__notifier_fail(n, "notifier connect failed", "cannot watch the socket");
    }
}

static void tf__notifier_on_io(void *owner, int status, int events) {
    tf_notifier_t *n = owner;
    if (n->state == TF_NOTIFIER_CONNECTING) {
        /* Also on status < 0: libuv reports a socket error (e.g. a refused
         * connect) as UV_EBADF, and libpq reads the real one. */
        tf__notifier_connect_step(n);
        return;
    }
    if (status < 0) {
        int readable = PQconsumeInput(n->pg);
        tf__notifier_fail(n, "notifier socket error",
                          readable ? uv_strerror(status) : PQerrorMessage(n->pg));
        return;
    }
    if ((events & UV_WRITABLE) && n->watch.flushing && tf__notifier_flush(n) != 0) {
        return;
    }
    if (events & UV_READABLE) {
        tf__notifier_readable(n);
    }
}

/* ---- public --------------------------------------------------------------- */

int tf_notifier_create(uv_loop_t *loop, const char *conninfo, tf_log_t *log, tf_notifier_t **out) {
    char *err = NULL;
    PQconninfoOption *parsed = PQconninfoParse(conninfo != NULL ? conninfo : "", &err);
    if (parsed == NULL) {
        PQfreemem(err);
        return TF_EINVAL;
    }
    PQconninfoFree(parsed);
    tf_notifier_t *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return TF_ENOMEM;
    }
    n->conninfo = strdup(conninfo);
    if (n->conninfo == NULL) {
        free(n);
        return TF_ENOMEM;
    }
    if (uv_timer_init(loop, &n->timer) != 0) {
        free(n->conninfo);
        free(n);
        return TF_EIO;
    }
    n->loop = loop;
    n->log = log;
    n->timer.data = n;
    n->handles = 1;
    tf__pg_watch_init(&n->watch, loop, tf__notifier_on_io, tf__notifier_sock_closed, n,
                      &n->handles);
    n->backoff_ms = TF_NOTIFIER_BACKOFF_MIN_MS;
    tf__notifier_connect(n);
    *out = n;
    return 0;
}

int tf_notifier_subscribe(tf_notifier_t *n, tf_notify_fn fn, void *arg) {
    if (n->nsubs == TF_NOTIFIER_MAX_SUBSCRIBERS) {
        return TF_ENOMEM;
    }
    n->subs[n->nsubs].fn = fn;
    n->subs[n->nsubs].arg = arg;
    n->nsubs++;
    return 0;
}

int tf_notifier_connected(const tf_notifier_t *n) {
    return n->state == TF_NOTIFIER_UP;
}

void tf_notifier_close(tf_notifier_t *n, void (*closed_cb)(void *arg), void *arg) {
    if (n->state == TF_NOTIFIER_CLOSED) {
        return;
    }
    n->closed_cb = closed_cb;
    n->closed_arg = arg;
    tf__notifier_drop(n);
    n->state = TF_NOTIFIER_CLOSED;
    uv_close((uv_handle_t *)&n->timer, tf__notifier_timer_closed);
}
