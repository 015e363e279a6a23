/*
 * httpclient_test_server.h - a tiny blocking HTTP/1.1 server for the HTTP
 * client tests, on 127.0.0.1 and an ephemeral port, run by a background
 * accept thread with one thread per connection (so slow answers do not
 * hold up others).  Every answer but /keepalive closes its connection.
 *
 * Routes:
 *   /json            200 with a small JSON body
 *   /echo            200 echoing the request body
 *   /status/NNN      status NNN with a short body
 *   /sleep/MS        waits MS ms (or until the client goes away), then 200
 *   /huge/N          200 with an N-byte body, sent in chunks
 *   /close           closes the connection without answering
 *   /keepalive       200 that keeps the connection open for the next request
 * The last request's method, target, header block and body are recorded,
 * and every request is counted.
 *
 * Header-only (static inline) so that each test_*.c stays one executable.
 */
#ifndef TF_TESTS_HTTPCLIENT_TEST_SERVER_H
#define TF_TESTS_HTTPCLIENT_TEST_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define TS_IO_TIMEOUT_MS 10000
#define TS_MAX_HEAD 16384

typedef struct {
    int listen_fd;
    int port;
    int stop_pipe[2]; /* readable once the server stops */
    pthread_t accept_thread;
    pthread_mutex_t mu;
    pthread_t *conns;
    size_t nconns;
    size_t cap_conns;
    int requests;
    int connections;
    char last_method[16];
    char last_target[256];
    char last_head[TS_MAX_HEAD];
    char *last_body;
    size_t last_body_len;
} test_server_t;

typedef struct {
    test_server_t *server;
    int fd;
} ts_conn_t;

/* Waits until `fd` is readable (1), the server stops (-1) or timeout (0). */
static inline int ts_wait(test_server_t *s, int fd, int timeout_ms) {
    struct pollfd fds[2] = {{.fd = fd, .events = POLLIN},
                            {.fd = s->stop_pipe[0], .events = POLLIN}};
    int rc;
    do {
        rc = poll(fds, 2, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc <= 0) {
        return 0;
    }
    return (fds[1].revents & POLLIN) ? -1 : 1;
}

static inline void ts_send_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return; /* the client went away, e.g. after its body cap */
        }
        data += n;
        len -= (size_t)n;
    }
}

static inline void ts_respond_ka(int fd, int status, const char *body, size_t len, int keep_alive) {
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d Test\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n",
                     status, len, keep_alive ? "" : "Connection: close\r\n");
    ts_send_all(fd, head, (size_t)n);
    ts_send_all(fd, body, len);
}

static inline void ts_send_huge(int fd, size_t len) {
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", len);
    ts_send_all(fd, head, (size_t)n);
    static const size_t chunk_size = 65536;
    char *chunk = malloc(chunk_size);
    if (chunk == NULL) {
        return;
    }
    memset(chunk, 'x', chunk_size);
    while (len > 0) {
        size_t part = len < chunk_size ? len : chunk_size;
        ssize_t sent = send(fd, chunk, part, MSG_NOSIGNAL);
        if (sent <= 0) {
            break;
        }
        len -= (size_t)sent;
    }
    free(chunk);
}

static inline void ts_respond(int fd, int status, const char *body, size_t len) {
    ts_respond_ka(fd, status, body, len, 0);
}

/* Reads one request: the head into `head` (NUL-terminated), the body
 * (Content-Length bytes) into a malloc'd *body.  Returns 0 or -1. */
static inline int ts_read_request(test_server_t *s, int fd, char *head, char **body,
                                  size_t *body_len) {
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        if (len + 1 >= TS_MAX_HEAD || ts_wait(s, fd, TS_IO_TIMEOUT_MS) != 1) {
            return -1;
        }
        ssize_t n = recv(fd, head + len, TS_MAX_HEAD - 1 - len, 0);
        if (n <= 0) {
            return -1;
        }
        len += (size_t)n;
        head[len] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end - head) + 4;
    size_t content_length = 0;
    for (const char *p = strchr(head, '\n'); p != NULL && p < end; p = strchr(p + 1, '\n')) {
        if (strncasecmp(p + 1, "Content-Length:", 15) == 0) {
            content_length = strtoul(p + 16, NULL, 10);
        }
    }
    *body = malloc(content_length + 1);
    if (*body == NULL) {
        return -1;
    }
    size_t have = len - head_len;
    memcpy(*body, head + head_len, have);
    while (have < content_length) {
        if (ts_wait(s, fd, TS_IO_TIMEOUT_MS) != 1) {
            return -1;
        }
        ssize_t n = recv(fd, *body + have, content_length - have, 0);
        if (n <= 0) {
            return -1;
        }
        have += (size_t)n;
    }
    (*body)[content_length] = '\0';
    *body_len = content_length;
    head[head_len] = '\0';
    return 0;
}

static inline void ts_record(test_server_t *s, const char *head, const char *body,
                             size_t body_len) {
    pthread_mutex_lock(&s->mu);
    s->requests++;
    sscanf(head, "%15s %255s", s->last_method, s->last_target);
    snprintf(s->last_head, sizeof(s->last_head), "%s", head);
    free(s->last_body);
    s->last_body = malloc(body_len + 1);
    if (s->last_body != NULL) {
        memcpy(s->last_body, body, body_len + 1);
    }
    s->last_body_len = body_len;
    pthread_mutex_unlock(&s->mu);
}

/* Answers one request; returns 1 when the connection stays open. */
static inline int ts_route(test_server_t *s, int fd, const char *target, const char *body,
                           size_t body_len) {
    static const char json[] = "{\"ok\":true,\"n\":1}";
    long arg = 0;
    if (strcmp(target, "/keepalive") == 0) {
        ts_respond_ka(fd, 200, json, strlen(json), 1);
        return 1;
    } else if (strcmp(target, "/json") == 0) {
        ts_respond(fd, 200, json, strlen(json));
    } else if (strcmp(target, "/echo") == 0) {
        ts_respond(fd, 200, body, body_len);
    } else if (sscanf(target, "/status/%ld", &arg) == 1) {
        char text[32];
        int n = snprintf(text, sizeof(text), "{\"status\":%ld}", arg);
        ts_respond(fd, (int)arg, text, (size_t)n);
    } else if (sscanf(target, "/sleep/%ld", &arg) == 1) {
        /* Readable here means the client closed (or aborted) its end. */
        if (ts_wait(s, fd, (int)arg) == 0) {
            ts_respond(fd, 200, json, strlen(json));
        }
    } else if (sscanf(target, "/huge/%ld", &arg) == 1) {
        ts_send_huge(fd, (size_t)arg);
    } else if (strcmp(target, "/close") != 0) {
        ts_respond(fd, 404, "{}", 2);
    }
    return 0;
}

static inline void *ts_conn_main(void *arg) {
    ts_conn_t *conn = arg;
    test_server_t *s = conn->server;
    char *head = malloc(TS_MAX_HEAD);
    char *body = NULL;
    size_t body_len = 0;
    int keep_open = head != NULL;
    while (keep_open && ts_read_request(s, conn->fd, head, &body, &body_len) == 0) {
        ts_record(s, head, body, body_len);
        char method[16] = "";
        char target[256] = "";
        sscanf(head, "%15s %255s", method, target);
        keep_open = ts_route(s, conn->fd, target, body, body_len);
        free(body);
        body = NULL;
    }
    free(body);
    free(head);
    close(conn->fd);
    free(conn);
    return NULL;
}

static inline void ts_spawn(test_server_t *s, int fd) {
    ts_conn_t *conn = malloc(sizeof(*conn));
    pthread_mutex_lock(&s->mu);
    if (conn != NULL && s->nconns == s->cap_conns) {
        size_t cap = s->cap_conns == 0 ? 64 : s->cap_conns * 2;
        pthread_t *conns = realloc(s->conns, cap * sizeof(*conns));
        if (conns != NULL) {
            s->conns = conns;
            s->cap_conns = cap;
        }
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (conn != NULL && s->nconns < s->cap_conns) {
        conn->server = s;
        conn->fd = fd;
        if (pthread_create(&s->conns[s->nconns], &attr, ts_conn_main, conn) == 0) {
            s->nconns++;
            s->connections++;
            conn = NULL;
            fd = -1;
        }
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_unlock(&s->mu);
    free(conn);
    if (fd >= 0) {
        close(fd);
    }
}

static inline void *ts_accept_main(void *arg) {
    test_server_t *s = arg;
    while (ts_wait(s, s->listen_fd, -1) == 1) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd >= 0) {
            ts_spawn(s, fd);
        }
    }
    return NULL;
}

/* Starts the server; returns 0 or -1. */
static inline int ts_start(test_server_t *s) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    if (pipe(s->stop_pipe) != 0) {
        return -1;
    }
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(s->listen_fd, 1024) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&addr, &len) != 0) {
        return -1;
    }
    s->port = ntohs(addr.sin_port);
    return pthread_create(&s->accept_thread, NULL, ts_accept_main, s) == 0 ? 0 : -1;
}

/* Stops the accept thread and every connection thread, frees everything. */
static inline void ts_stop(test_server_t *s) {
    char byte = 1;
    if (write(s->stop_pipe[1], &byte, 1) != 1) {
        return;
    }
    pthread_join(s->accept_thread, NULL);
    for (size_t i = 0; i < s->nconns; i++) {
        pthread_join(s->conns[i], NULL);
    }
    free(s->conns);
    free(s->last_body);
    close(s->listen_fd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->mu);
}

static inline int ts_requests(test_server_t *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static inline int ts_connections(test_server_t *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->connections;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Returns a port on 127.0.0.1 that nothing listens on (bound, then closed). */
static inline int ts_closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

#endif
