/*
 * socket.c - libpq sockets under libuv, and connection set-up shared by
 * the pool and the notifier (see socket.h).  Loop thread only.
 */
#include "adapters/pg/socket.h"

#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

struct tf__pg_sock {
    uv_poll_t handle;
    tf__pg_watch_t *watch;
};

void tf__pg_watch_init(tf__pg_watch_t *w, uv_loop_t *loop,
                       void (*on_io)(void *owner, int status, int events),
                       void (*closed)(void *owner), void *owner, int *handles) {
    *w = (tf__pg_watch_t){
        .loop = loop, .on_io = on_io, .closed = closed, .owner = owner, .handles = handles};
}

static void sock_closed(uv_handle_t *handle) {
    tf__pg_sock_t *sock = handle->data;
    tf__pg_watch_t *w = sock->watch;
    free(sock);
    w->closed(w->owner);
}

static void sock_on_poll(uv_poll_t *handle, int status, int events) {
    tf__pg_sock_t *sock = handle->data;
    tf__pg_watch_t *w = sock->watch;
    if (sock != w->current) {
        return; /* a socket being replaced */
    }
    w->on_io(w->owner, status, events);
}

void tf__pg_watch_stop(tf__pg_watch_t *w) {
    if (w->current != NULL) {
        uv_close((uv_handle_t *)&w->current->handle, sock_closed);
        w->current = NULL;
    }
    w->events = 0;
    w->flushing = 0;
}

int tf__pg_watch_start(tf__pg_watch_t *w, PGconn *pg, int events) {
    tf__pg_watch_stop(w);
    int fd = PQsocket(pg);
    if (fd < 0) {
        return TF_EIO;
    }
    tf__pg_sock_t *sock = malloc(sizeof(*sock));
    if (sock == NULL) {
        return TF_ENOMEM;
    }
    if (uv_poll_init(w->loop, &sock->handle, fd) != 0) {
        free(sock);
        return TF_EIO;
    }
    sock->watch = w;
    sock->handle.data = sock;
    w->current = sock;
    (*w->handles)++;
    w->events = events;
    return uv_poll_start(&sock->handle, events, sock_on_poll) == 0 ? 0 : TF_EIO;
}

int tf__pg_watch_set(tf__pg_watch_t *w, int events) {
    if (w->current == NULL) {
        return TF_EIO;
    }
    if (events == w->events) {
        return 0;
    }
    w->events = events;
    return uv_poll_start(&w->current->handle, events, sock_on_poll) == 0 ? 0 : TF_EIO;
}

int tf__pg_watch_flush(tf__pg_watch_t *w, PGconn *pg) {
    int r = PQflush(pg);
    if (r < 0) {
        return -1;
    }
    w->flushing = r == 1;
    return tf__pg_watch_set(w, UV_READABLE | (r == 1 ? UV_WRITABLE : 0)) == 0 ? 0 : -2;
}

PGconn *tf__pg_connect_start(const char *conninfo, const char *application_name) {
    static const char *const keys[] = {"fallback_application_name",
                                       "keepalives",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "dbname",
                                       NULL};
    /* dbname is expanded: the caller's conninfo or URL overrides the rest. */
    const char *values[] = {application_name, "1", "30", "10", "3", conninfo, NULL};
    return PQconnectStartParams(keys, values, 1);
}

int tf__pg_connect_deadline_ms(PGconn *pg, int default_ms) {
    int ms = default_ms;
    PQconninfoOption *options = PQconninfo(pg);
    for (PQconninfoOption *o = options; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL) {
            int seconds = atoi(o->val);
            if (seconds > 0) {
                ms = (seconds > 86400 ? 86400 : seconds) * 1000;
            }
        }
    }
    PQconninfoFree(options);
    return ms;
}

void tf__pg_log_notice(tf_log_t *log, const char *what, const PGresult *res, const char *pool,
                       int conn) {
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    int loud = severity != NULL && strcmp(severity, "NOTICE") != 0 &&
               strcmp(severity, "INFO") != 0 && strcmp(severity, "LOG") != 0 &&
               strcmp(severity, "DEBUG") != 0;
    tf_log_level_t level = loud ? TF_LOG_WARN : TF_LOG_DEBUG;
    if (pool != NULL) {
        tf_log_at(log, level, what, TF_LF_STR("pool", pool), TF_LF_INT("conn", conn),
                  TF_LF_STR("severity", severity), TF_LF_STR("message", message));
    } else {
        tf_log_at(log, level, what, TF_LF_STR("severity", severity), TF_LF_STR("message", message));
    }
}
