/*
 * server.c - the HTTP server's life cycle: configuration, listening sockets,
 * loop threads, graceful shutdown.
 *
 * tf_http_server_start() runs on the caller's thread: it raises the file
 * descriptor limit, registers the metric families, creates one listening
 * socket per loop (SO_REUSEADDR + SO_REUSEPORT, all bound to the same port,
 * so a busy port fails here), prepares every loop and then starts one thread
 * per loop.  Each thread calls the application's loop_start and waits at a
 * barrier until every loop has reported; only when all succeeded do the loops
 * start serving, otherwise they wind down and start-up fails.
 *
 * Shutdown (tf_http_server_stop, any thread) wakes every loop through its
 * uv_async.  A loop then closes its listener, closes idle connections, lets
 * requests in flight finish for shutdown_grace_ms (their responses carry
 * Connection: close), force-closes the rest, calls loop_stop and closes its
 * own handles; uv_run returns once the application closed its handles too.
 * tf_http_server_destroy() joins the threads and frees everything.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "adapters/http/http_internal.h"
#include "engine/error.h"

static const char *const reject_reasons[TF__HTTP_REJECT_COUNT] = {
    [TF__HTTP_REJECT_MAX_CONNECTIONS] = "max_connections",
    [TF__HTTP_REJECT_HEADER_TIMEOUT] = "header_timeout",
    [TF__HTTP_REJECT_BODY_TIMEOUT] = "body_timeout",
    [TF__HTTP_REJECT_HEADER_TOO_LARGE] = "header_too_large",
    [TF__HTTP_REJECT_BODY_TOO_LARGE] = "body_too_large",
    [TF__HTTP_REJECT_BAD_REQUEST] = "bad_request",
    [TF__HTTP_REJECT_WRITE_STALLED] = "write_stalled",
};

/* ---- configuration ---- */

static int apply_defaults(const tf_http_config_t *in, tf_http_config_t *cfg) {
    *cfg = *in;
    if (cfg->port < 0 || cfg->port > 65535) {
        return TF_EINVAL;
    }
    if (cfg->threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = cores > 0 ? (int)(cores < 256 ? cores : 256) : 1;
    }
    if (cfg->threads > 1024) {
        return TF_EINVAL;
    }
    cfg->max_header_bytes = cfg->max_header_bytes != 0 ? cfg->max_header_bytes : 16 * 1024;
    cfg->max_body_bytes = cfg->max_body_bytes != 0 ? cfg->max_body_bytes : 1024 * 1024;
    cfg->header_timeout_ms = cfg->header_timeout_ms > 0 ? cfg->header_timeout_ms : 10000;
    cfg->body_timeout_ms = cfg->body_timeout_ms > 0 ? cfg->body_timeout_ms : 30000;
    cfg->idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : 60000;
    cfg->max_connections = cfg->max_connections > 0 ? cfg->max_connections : 10000;
    cfg->shutdown_grace_ms = cfg->shutdown_grace_ms > 0 ? cfg->shutdown_grace_ms : 10000;
    return 0;
}

/* Many keep-alive connections need many descriptors: the soft limit goes up
 * to the hard one.  Failing to raise it is not fatal. */
static void raise_nofile_limit(tf_log_t *log) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) {
        return;
    }
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        tf_log_warn(log, "http: could not raise RLIMIT_NOFILE",
                    TF_LF_STR("error", strerror(errno)));
    }
}

static int register_metrics(tf_http_server_t *server) {
    static const char *const request_labels[] = {"route", "method", "status"};
    static const char *const duration_labels[] = {"route", "method"};
    static const char *const reason_label[] = {"reason"};
    tf_metrics_t *reg = server->metrics;
    tf_metric_family_t *connections = NULL;
    tf_metric_family_t *rejected = NULL;
    if (reg == NULL) {
        return 0;
    }
    int rc = tf_metrics_counter(reg, "taskflow_http_requests_total",
                                "HTTP requests answered, by route pattern, method and status.",
                                request_labels, 3, &server->m.requests);
    if (rc == 0) {
        rc = tf_metrics_histogram(reg, "taskflow_http_request_duration_seconds",
                                  "Time from a complete request head to its response.",
                                  duration_labels, 2, NULL, 0, &server->m.duration);
    }
    if (rc == 0) {
        rc = tf_metrics_gauge(reg, "taskflow_http_connections", "Open HTTP connections.", NULL, 0,
                              &connections);
    }
    if (rc == 0) {
        rc = tf_metrics_counter(reg, "taskflow_http_rejected_connections_total",
                                "Connections the server closed on its own, by reason.",
                                reason_label, 1, &rejected);
    }
    if (rc != 0) {
        return rc;
    }
    const char *const no_labels[1] = {NULL};
    server->m.connections = tf_metric_get(connections, no_labels);
    for (int i = 0; i < TF__HTTP_REJECT_COUNT; i++) {
        const char *const value[] = {reject_reasons[i]};
        server->m.rejected[i] = tf_metric_get(rejected, value);
    }
    return 0;
}

/* ---- listening sockets ---- */

static int errno_to_tf(int err) {
    switch (err) {
    case EADDRINUSE:
        return TF_ECONFLICT;
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
    case EACCES:
        return TF_EINVAL;
    case ENOMEM:
    case ENOBUFS:
        return TF_ENOMEM;
    default:
        return TF_EIO;
    }
}

static void set_port(struct sockaddr *sa, int port) {
    if (sa->sa_family == AF_INET6) {
        ((struct sockaddr_in6 *)(void *)sa)->sin6_port = htons((uint16_t)port);
    } else {
        ((struct sockaddr_in *)(void *)sa)->sin_port = htons((uint16_t)port);
    }
}

static int bound_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
}

/* Creates one listening socket on `sa`.  Returns the descriptor or a
 * negative errno. */
static int listen_socket(const struct sockaddr *sa, socklen_t salen) {
    int one = 1;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, sa, salen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* Binds `n` sockets to host:port (port 0: the first picks, the others
 * follow).  On failure nothing stays open. */
static int bind_all(tf_http_server_t *server, int *fds, int n) {
    char port_text[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    snprintf(port_text, sizeof(port_text), "%d", server->cfg.port);
    int gai = getaddrinfo(server->host, port_text, &hints, &ai);
    if (gai != 0) {
        tf_log_error(server->log, "http: cannot resolve listen address",
                     TF_LF_STR("host", server->host), TF_LF_STR("error", gai_strerror(gai)));
        return TF_EINVAL;
    }
    int port = server->cfg.port;
    int i = 0;
    int err = 0;
    for (; i < n; i++) {
        set_port(ai->ai_addr, port);
        fds[i] = listen_socket(ai->ai_addr, ai->ai_addrlen);
        if (fds[i] < 0) {
            err = -fds[i];
            break;
        }
        port = port != 0 ? port : bound_port(fds[i]);
    }
    freeaddrinfo(ai);
    if (i == n && port > 0) {
        server->port = port;
        return 0;
    }
    tf_log_error(server->log, "http: cannot listen", TF_LF_STR("host", server->host),
                 TF_LF_INT("port", server->cfg.port), TF_LF_STR("error", strerror(err)));
    while (i-- > 0) {
        close(fds[i]);
    }
    return errno_to_tf(err);
}

/* ---- loops ---- */

static void free_handle(uv_handle_t *handle) {
    free(handle);
}

typedef struct {
    tf__http_loop_t *loop;
    int closed;
} drain_t;

static void close_any(uv_handle_t *handle, void *arg) {
    drain_t *drain = arg;
    if (uv_is_closing(handle)) {
        return;
    }
    drain->closed++;
    if (handle == (uv_handle_t *)drain->loop->stop_async) {
        drain->loop->stop_async = NULL;
        uv_close(handle, free_handle);
    } else {
        uv_close(handle, NULL);
    }
}

/* Closes whatever is still open on the loop, runs it dry and closes it.  Only
 * when no thread runs the loop.  `log_leftovers`: warn about handles the
 * application forgot (after a normal run nothing should be left). */
static void loop_drain(tf__http_loop_t *loop, int log_leftovers) {
    drain_t drain = {.loop = loop};
    uv_walk(&loop->loop, close_any, &drain);
    if (log_leftovers && drain.closed > 0) {
        tf_log_warn(loop->server->log, "http: handles left open at loop end; closed them",
                    TF_LF_INT("loop", loop->index), TF_LF_INT("handles", drain.closed));
    }
    uv_run(&loop->loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop->loop);
}

static void loop_finish(tf__http_loop_t *loop) {
    const tf_http_config_t *cfg = &loop->server->cfg;
    if (loop->finished) {
        return;
    }
    loop->finished = 1;
    uv_timer_stop(&loop->grace_timer);
    uv_close((uv_handle_t *)&loop->grace_timer, NULL);
    if (loop->app_started && cfg->loop_stop != NULL) {
        cfg->loop_stop(&loop->loop, loop->loop_ctx, cfg->app);
    }
    if (loop->stop_async != NULL) {
        uv_close((uv_handle_t *)loop->stop_async, free_handle);
        loop->stop_async = NULL;
    }
}

void tf__loop_conn_closed(tf__http_loop_t *loop) {
    if (loop->stopping && loop->nconns == 0) {
        loop_finish(loop);
    }
}

static void on_grace_timeout(uv_timer_t *timer) {
    tf__http_loop_t *loop = timer->data;
    tf__http_conn_t *next = NULL;
    if (loop->nconns > 0) {
        tf_log_warn(loop->server->log, "http: shutdown grace over; closing connections",
                    TF_LF_INT("loop", loop->index), TF_LF_INT("connections", loop->nconns));
    }
    for (tf__http_conn_t *conn = loop->conns; conn != NULL; conn = next) {
        next = tf__conn_next(conn);
        tf__conn_force_close(conn);
    }
}

static void loop_begin_stop(tf__http_loop_t *loop) {
    tf__http_conn_t *next = NULL;
    if (loop->stopping) {
        return;
    }
    loop->stopping = 1;
    if (loop->server->cfg.loop_stopping != NULL && loop->loop_ctx != NULL) {
        loop->server->cfg.loop_stopping(&loop->loop, loop->loop_ctx, loop->server->cfg.app);
    }
    if (loop->listener_open) {
        uv_close((uv_handle_t *)&loop->listener, NULL);
        loop->listener_open = 0;
    }
    /* Closing only starts here (handles go away in their close callbacks),
     * so the list stays intact while it is walked. */
    for (tf__http_conn_t *conn = loop->conns; conn != NULL; conn = next) {
        next = tf__conn_next(conn);
        tf__conn_stop(conn);
    }
    if (loop->nconns == 0) {
        loop_finish(loop);
    } else {
        uv_timer_start(&loop->grace_timer, on_grace_timeout,
                       (uint64_t)loop->server->cfg.shutdown_grace_ms, 0);
    }
}

static void on_stop_async(uv_async_t *async) {
    loop_begin_stop(async->data);
}

static uint64_t os_seed(const void *salt) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        seed = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)salt;
    }
    return seed;
}

/* Prepares loop `index` around the listening socket `fd` (owned from here
 * on, even on failure).  Runs on the caller's thread, before the loop's
 * thread exists. */
static int loop_create(tf_http_server_t *server, int index, int fd, tf__http_loop_t **out) {
    tf__http_loop_t *loop = calloc(1, sizeof(*loop));
    if (loop == NULL) {
        close(fd);
        return TF_ENOMEM;
    }
    loop->server = server;
    loop->index = index;
    loop->date_second = -1;
    tf_uuid_gen_init(&loop->uuid_gen, os_seed(loop));
    if (uv_loop_init(&loop->loop) != 0) {
        close(fd);
        free(loop);
        return TF_EIO;
    }
    uv_timer_init(&loop->loop, &loop->grace_timer);
    loop->grace_timer.data = loop;
    uv_tcp_init(&loop->loop, &loop->listener);
    loop->listener.data = loop;
    int rc = uv_tcp_open(&loop->listener, fd);
    if (rc != 0) {
        close(fd);
    } else {
        loop->listener_open = 1;
        rc = uv_listen((uv_stream_t *)&loop->listener, SOMAXCONN, tf__conn_on_connection);
    }
    loop->stop_async = rc == 0 ? malloc(sizeof(*loop->stop_async)) : NULL;
    if (rc == 0 && (loop->stop_async == NULL ||
                    uv_async_init(&loop->loop, loop->stop_async, on_stop_async) != 0)) {
        free(loop->stop_async);
        loop->stop_async = NULL;
        rc = UV_ENOMEM;
    }
    if (rc != 0) {
        loop_drain(loop, 0);
        free(loop);
        return TF_EIO;
    }
    loop->stop_async->data = loop;
    *out = loop;
    return 0;
}

/* Reports this loop's start-up result; returns the verdict (1 run, -1 wind
 * down) once every loop has reported. */
static int startup_report(tf_http_server_t *server, int rc) {
    uv_mutex_lock(&server->lock);
    server->nreported++;
    if (rc != 0 && server->start_rc == 0) {
        server->start_rc = rc < 0 ? rc : TF_EIO;
    }
    uv_cond_broadcast(&server->cond);
    while (server->verdict == 0) {
        uv_cond_wait(&server->cond, &server->lock);
    }
    int verdict = server->verdict;
    uv_mutex_unlock(&server->lock);
    return verdict;
}

static void loop_thread(void *arg) {
    tf__http_loop_t *loop = arg;
    tf_http_server_t *server = loop->server;
    int rc = 0;
    sigset_t sigpipe;
    /* A write to a socket the peer reset raises SIGPIPE in the writing
     * thread; blocked here it leaves EPIPE to libuv instead of killing a
     * process that did not ignore the signal. */
    sigemptyset(&sigpipe);
    sigaddset(&sigpipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe, NULL);
    if (server->cfg.loop_start != NULL) {
        rc = server->cfg.loop_start(&loop->loop, loop->index, server->cfg.app, &loop->loop_ctx);
    }
    loop->app_started = rc == 0;
    if (startup_report(server, rc) < 0) {
        loop_begin_stop(loop);
    }
    uv_run(&loop->loop, UV_RUN_DEFAULT);
    if (loop->live_requests > 0) {
        tf_log_warn(server->log, "http: requests never answered at loop end",
                    TF_LF_INT("loop", loop->index), TF_LF_INT("requests", loop->live_requests));
    }
    loop_drain(loop, 1);
}

/* ---- public interface ---- */

static void server_free(tf_http_server_t *server) {
    for (int i = 0; i < server->nloops; i++) {
        if (server->loops[i] != NULL) {
            tf__http_metrics_free(server->loops[i]);
            free(server->loops[i]);
        }
    }
    free(server->loops);
    free(server->host);
    uv_cond_destroy(&server->cond);
    uv_mutex_destroy(&server->lock);
    free(server);
}

static int server_alloc(const tf_http_config_t *cfg, tf_http_server_t **out) {
    tf_http_server_t *server = calloc(1, sizeof(*server));
    if (server == NULL) {
        return TF_ENOMEM;
    }
    if (uv_mutex_init(&server->lock) != 0) {
        free(server);
        return TF_ENOMEM;
    }
    if (uv_cond_init(&server->cond) != 0) {
        uv_mutex_destroy(&server->lock);
        free(server);
        return TF_ENOMEM;
    }
    int rc = apply_defaults(cfg, &server->cfg);
    server->host = strdup(cfg->host != NULL ? cfg->host : "127.0.0.1");
    server->loops =
        calloc((size_t)(server->cfg.threads > 0 ? server->cfg.threads : 1), sizeof(*server->loops));
    if (rc == 0 && (server->host == NULL || server->loops == NULL)) {
        rc = TF_ENOMEM;
    }
    server->cfg.host = server->host;
    atomic_init(&server->nconnections, 0);
    atomic_init(&server->stop_requested, 0);
    if (rc != 0) {
        server_free(server);
        return rc;
    }
    *out = server;
    return 0;
}

/* Creates the loops around the bound sockets (all consumed). */
static int server_create_loops(tf_http_server_t *server, int *fds) {
    int rc = 0;
    for (int i = 0; i < server->cfg.threads; i++) {
        if (rc != 0) {
            close(fds[i]);
            continue;
        }
        rc = loop_create(server, i, fds[i], &server->loops[i]);
        if (rc == 0) {
            server->nloops = i + 1;
        }
    }
    return rc;
}

/* Starts the threads and waits for every loop_start; on any failure the
 * loops wind down and are joined.  Returns 0 when serving. */
static int server_run_threads(tf_http_server_t *server) {
    int started = 0;
    int rc = 0;
    for (; started < server->nloops; started++) {
        tf__http_loop_t *loop = server->loops[started];
        if (uv_thread_create(&loop->thread, loop_thread, loop) != 0) {
            rc = TF_EIO;
            break;
        }
        loop->thread_started = 1;
    }
    uv_mutex_lock(&server->lock);
    while (server->nreported < started) {
        uv_cond_wait(&server->cond, &server->lock);
    }
    if (rc == 0) {
        rc = server->start_rc;
    }
    server->verdict = rc == 0 ? 1 : -1;
    uv_cond_broadcast(&server->cond);
    uv_mutex_unlock(&server->lock);
    if (rc != 0) {
        atomic_store(&server->stop_requested, 1);
        for (int i = 0; i < server->nloops; i++) {
            tf__http_loop_t *loop = server->loops[i];
            if (loop->thread_started) {
                uv_thread_join(&loop->thread);
                loop->thread_started = 0;
            } else {
                loop_drain(loop, 0);
            }
        }
    }
    return rc;
}

int tf_http_server_start(const tf_http_config_t *cfg, const tf_router_t *router,
                         tf_metrics_t *metrics, tf_log_t *log, tf_http_server_t **out) {
    if (cfg == NULL || router == NULL || out == NULL) {
        return TF_EINVAL;
    }
    tf_http_server_t *server = NULL;
    int rc = server_alloc(cfg, &server);
    if (rc != 0) {
        return rc;
    }
    server->router = router;
    server->metrics = metrics;
    server->log = log;
    raise_nofile_limit(log);
    int *fds = calloc((size_t)server->cfg.threads, sizeof(*fds));
    rc = fds == NULL ? TF_ENOMEM : register_metrics(server);
    if (rc == 0) {
        rc = bind_all(server, fds, server->cfg.threads);
        if (rc == 0) {
            rc = server_create_loops(server, fds);
        }
    }
    free(fds);
    if (rc == 0) {
        rc = server_run_threads(server);
    } else {
        for (int i = 0; i < server->nloops; i++) {
            loop_drain(server->loops[i], 0);
        }
    }
    if (rc != 0) {
        server_free(server);
        return rc;
    }
    tf_log_debug(log, "http server started", TF_LF_STR("host", server->host),
                 TF_LF_INT("port", server->port), TF_LF_INT("threads", server->nloops));
    *out = server;
    return 0;
}

int tf_http_server_port(const tf_http_server_t *server) {
    return server->port;
}

void tf_http_server_stop(tf_http_server_t *server) {
    if (server == NULL || atomic_exchange(&server->stop_requested, 1) != 0) {
        return;
    }
    for (int i = 0; i < server->nloops; i++) {
        /* The loop closes its async only after receiving this wake-up, and
         * libuv makes that close wait for a send in progress. */
        uv_async_send(server->loops[i]->stop_async);
    }
}

void tf_http_server_destroy(tf_http_server_t *server) {
    if (server == NULL) {
        return;
    }
    tf_http_server_stop(server);
    for (int i = 0; i < server->nloops; i++) {
        if (server->loops[i]->thread_started) {
            uv_thread_join(&server->loops[i]->thread);
        }
    }
    server_free(server);
}
