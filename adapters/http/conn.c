/*
 * conn.c - one client connection: reading, llhttp, limits, timers, writing.
 *
 * A connection is a small state machine (the table `conn_states` below says,
 * for each state, which timer runs, whether the socket is read, whether
 * input is fed to llhttp and what a timeout does):
 *
 *   NEW --first byte--> HEAD --head done--> BODY --message done--> HANDLING
 *   HANDLING --response queued--> IDLE (keep-alive) or WAIT_WRITE (output
 *   backlog) or CLOSING (last response); IDLE --first byte--> HEAD;
 *   WAIT_WRITE --output drained--> IDLE; CLOSING --write side shut--> LINGER
 *   --EOF or linger timeout--> CLOSED.  Any state --error/timeout--> CLOSED.
 *
 * llhttp is paused (callbacks return HPE_PAUSED) when a head is complete and
 * when a message is complete, so that limits, routing and the handler run
 * outside the parser.  While a handler owns a request the socket is not read
 * and unparsed (pipelined) input waits in `in`; it is parsed once the
 * response is queued.  Input is read into the loop's shared buffer and only
 * copied when some of it must wait.
 *
 * Memory per connection is bounded: the head by max_header_bytes, the body by
 * max_body_bytes (a Content-Length over it is refused before the body is
 * read), and output by TF__HTTP_WRITE_HIGH_WATER plus one response: beyond
 * it no further pipelined request is parsed until the client reads, and a
 * client that reads nothing for idle_timeout_ms is disconnected.
 *
 * Runs on the connection's loop thread only.  A connection is freed in the
 * close callback of the last of its two handles (socket and timer).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/http/http_internal.h"
#include "engine/error.h"

typedef enum {
    CONN_NEW,
    CONN_IDLE,
    CONN_HEAD,
    CONN_BODY,
    CONN_HANDLING,
    CONN_WAIT_WRITE,
    CONN_CLOSING,
    CONN_LINGER,
    CONN_CLOSED,
} conn_state_t;

typedef enum { TIMER_NONE, TIMER_HEADER, TIMER_BODY, TIMER_IDLE, TIMER_LINGER } timer_kind_t;

typedef enum {
    ON_TIMEOUT_NOTHING,
    ON_TIMEOUT_CLOSE, /* close without a response */
    ON_TIMEOUT_408,   /* answer 408, then close */
    ON_TIMEOUT_STALL, /* close unless the client read something meanwhile */
} timeout_action_t;

#define NO_REJECT TF__HTTP_REJECT_COUNT

static const struct {
    timer_kind_t timer;
    int read;  /* the socket is read (in CLOSING/LINGER: and discarded) */
    int parse; /* input is fed to llhttp */
    timeout_action_t on_timeout;
    tf__http_reject_t reject; /* counted when the timeout fires */
} conn_states[] = {
    [CONN_NEW] = {TIMER_IDLE, 1, 1, ON_TIMEOUT_CLOSE, NO_REJECT},
    [CONN_IDLE] = {TIMER_IDLE, 1, 1, ON_TIMEOUT_CLOSE, NO_REJECT},
    [CONN_HEAD] = {TIMER_HEADER, 1, 1, ON_TIMEOUT_408, TF__HTTP_REJECT_HEADER_TIMEOUT},
    [CONN_BODY] = {TIMER_BODY, 1, 1, ON_TIMEOUT_408, TF__HTTP_REJECT_BODY_TIMEOUT},
    /* Reading on while a handler has the request only to notice a client
     * that goes away (a long poll must not lease jobs to nobody); what a
     * pipelining client sends meanwhile is held, unparsed, up to HOLD_MAX. */
    [CONN_HANDLING] = {TIMER_NONE, 1, 0, ON_TIMEOUT_NOTHING, NO_REJECT},
    [CONN_WAIT_WRITE] = {TIMER_IDLE, 0, 0, ON_TIMEOUT_STALL, TF__HTTP_REJECT_WRITE_STALLED},
    [CONN_CLOSING] = {TIMER_IDLE, 1, 0, ON_TIMEOUT_STALL, TF__HTTP_REJECT_WRITE_STALLED},
    [CONN_LINGER] = {TIMER_LINGER, 1, 0, ON_TIMEOUT_CLOSE, NO_REJECT},
    [CONN_CLOSED] = {TIMER_NONE, 0, 0, ON_TIMEOUT_NOTHING, NO_REJECT},
};

typedef enum { PAUSE_NONE, PAUSE_HEAD, PAUSE_MESSAGE } pause_t;

struct tf__http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    llhttp_t parser;
    tf__http_loop_t *loop;
    tf__http_conn_t *prev;
    tf__http_conn_t *next;
    conn_state_t state;
    int open_handles;
    int listed;         /* counted in the loop's list and the server's total */
    tf_http_req_t *req; /* the request being read or handled */
    int req_dispatched; /* `req` belongs to its handler */
    const char *in;     /* unparsed input */
    size_t in_len;
    char *in_owned;    /* `in` points into this buffer unless borrowed */
    int in_borrowed;   /* `in` points into the loop's read buffer */
    size_t head_bytes; /* bytes of the current request head */
    pause_t pause;
    int resumed;     /* llhttp must run again, even without input */
    int fail_status; /* set by a parser callback that refused input */
    int in_process;
    int reading;
    int keep_alive;
    int peer_eof;
    size_t stall_queue; /* output queued when the stall timer was armed */
};

typedef struct {
    uv_write_t req;
    char *data;
} write_req_t;

static void conn_process(tf__http_conn_t *conn);
static void conn_close(tf__http_conn_t *conn);

/* ---- small helpers ---- */

static const tf_http_config_t *conn_cfg(const tf__http_conn_t *conn) {
    return &conn->loop->server->cfg;
}

static size_t conn_queued(tf__http_conn_t *conn) {
    return uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp);
}

static uint64_t timer_ms(const tf__http_conn_t *conn, timer_kind_t kind) {
    const tf_http_config_t *cfg = conn_cfg(conn);
    switch (kind) {
    case TIMER_HEADER:
        return (uint64_t)cfg->header_timeout_ms;
    case TIMER_BODY:
        return (uint64_t)cfg->body_timeout_ms;
    case TIMER_IDLE:
        return (uint64_t)cfg->idle_timeout_ms;
    case TIMER_LINGER:
        return TF__HTTP_LINGER_MS;
    default:
        return 0;
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    tf__http_conn_t *conn = handle->data;
    (void)suggested;
    *buf = uv_buf_init(conn->loop->read_buf, sizeof(conn->loop->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *timer);

#define HOLD_MAX (64 * 1024) /* pipelined input held while a request is handled */

static void conn_update_reading(tf__http_conn_t *conn) {
    int want = conn_states[conn->state].read && !conn->peer_eof &&
               !(conn->state == CONN_HANDLING && conn->in_len >= HOLD_MAX);
    if (want && !conn->reading) {
        conn->reading = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read) == 0;
    } else if (!want && conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = 0;
    }
}

/* Moves to `next`: (re)arms the state's timer and starts or stops reading.
 * A connection waiting for a request's first byte is idle (idle_timeout_ms);
 * from that byte on the head must be complete within header_timeout_ms. */
static void conn_enter(tf__http_conn_t *conn, conn_state_t next) {
    timer_kind_t kind = conn_states[next].timer;
    conn->state = next;
    if (kind == TIMER_NONE) {
        uv_timer_stop(&conn->timer);
    } else {
        conn->stall_queue = conn_queued(conn);
        uv_timer_start(&conn->timer, on_timer, timer_ms(conn, kind), 0);
    }
    conn_update_reading(conn);
}

/* ---- input buffering ---- */

static void conn_drop_input(tf__http_conn_t *conn) {
    free(conn->in_owned);
    conn->in_owned = NULL;
    conn->in = NULL;
    conn->in_len = 0;
    conn->in_borrowed = 0;
}

/* Adds freshly read bytes (in the loop's buffer) to the unparsed input. */
static int conn_take_input(tf__http_conn_t *conn, const char *data, size_t len) {
    if (conn->in_len == 0) {
        conn_drop_input(conn);
        conn->in = data;
        conn->in_len = len;
        conn->in_borrowed = 1;
        return 0;
    }
    char *joined = malloc(conn->in_len + len);
    if (joined == NULL) {
        return TF_ENOMEM;
    }
    memcpy(joined, conn->in, conn->in_len);
    memcpy(joined + conn->in_len, data, len);
    size_t total = conn->in_len + len;
    conn_drop_input(conn);
    conn->in_owned = joined;
    conn->in = joined;
    conn->in_len = total;
    return 0;
}

/* After parsing: input that must wait is copied out of the loop's buffer. */
static int conn_settle_input(tf__http_conn_t *conn) {
    if (conn->in_len == 0) {
        conn_drop_input(conn);
        return 0;
    }
    if (!conn->in_borrowed) {
        return 0;
    }
    char *copy = malloc(conn->in_len);
    if (copy == NULL) {
        return TF_ENOMEM;
    }
    memcpy(copy, conn->in, conn->in_len);
    conn->in_owned = copy;
    conn->in = copy;
    conn->in_borrowed = 0;
    return 0;
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status) {
    write_req_t *w = (write_req_t *)req;
    tf__http_conn_t *conn = req->handle->data;
    free(w->data);
    free(w);
    if (conn->state == CONN_CLOSED) {
        return;
    }
    if (status < 0) {
        conn_close(conn);
        return;
    }
    if (conn->state == CONN_WAIT_WRITE && conn_queued(conn) <= TF__HTTP_WRITE_HIGH_WATER) {
        conn_enter(conn, CONN_IDLE);
        conn_process(conn);
    }
}

/* Queues `data` (malloc'd; ownership taken, even on failure). */
static int conn_write(tf__http_conn_t *conn, char *data, size_t len) {
    write_req_t *w = malloc(sizeof(*w));
    if (w == NULL || len > UINT_MAX) {
        free(w);
        free(data);
        return TF_ENOMEM;
    }
    w->data = data;
    uv_buf_t buf = uv_buf_init(data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, on_write) != 0) {
        free(data);
        free(w);
        return TF_EIO;
    }
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    tf__http_conn_t *conn = req->handle->data;
    if (conn->state == CONN_CLOSED) {
        return;
    }
    /* During shutdown the last response is out and nothing more is
     * expected: no need to linger. */
    if (status < 0 || conn->peer_eof || conn->loop->stopping) {
        conn_close(conn);
        return;
    }
    conn_enter(conn, CONN_LINGER);
}

/* The last response is queued: shut the write side once it is out, and
 * keep reading (discarding) so that the client sees it rather than a reset. */
static void conn_begin_close(tf__http_conn_t *conn) {
    conn_drop_input(conn);
    conn->keep_alive = 0;
    if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp, on_shutdown) != 0) {
        conn_close(conn);
        return;
    }
    conn_enter(conn, CONN_CLOSING);
}

/* ---- closing ---- */

static void on_handle_closed(uv_handle_t *handle) {
    tf__http_conn_t *conn = handle->data;
    if (--conn->open_handles > 0) {
        return;
    }
    tf__http_loop_t *loop = conn->loop;
    int listed = conn->listed;
    if (listed) {
        if (conn->prev != NULL) {
            conn->prev->next = conn->next;
        } else {
            loop->conns = conn->next;
        }
        if (conn->next != NULL) {
            conn->next->prev = conn->prev;
        }
        loop->nconns--;
        atomic_fetch_sub(&loop->server->nconnections, 1);
        if (loop->server->m.connections != NULL) {
            tf_metric_add(loop->server->m.connections, -1.0);
        }
    }
    free(conn);
    if (listed) {
        tf__loop_conn_closed(loop);
    }
}

static void conn_close(tf__http_conn_t *conn) {
    if (conn->state == CONN_CLOSED) {
        return;
    }
    conn->state = CONN_CLOSED;
    if (conn->req != NULL) {
        if (conn->req_dispatched) {
            tf__req_detach(conn->req); /* its handler still owns it */
        } else {
            tf__req_destroy(conn->req);
        }
        conn->req = NULL;
    }
    conn_drop_input(conn);
    uv_timer_stop(&conn->timer);
    uv_close((uv_handle_t *)&conn->timer, on_handle_closed);
    uv_close((uv_handle_t *)&conn->tcp, on_handle_closed);
}

/* Answers an error the server found itself (bad input, limits, timeouts)
 * and closes the connection after it. */
static void conn_fail(tf__http_conn_t *conn, int status, tf__http_reject_t reject,
                      const char *message) {
    static const struct {
        int status;
        const char *code;
    } codes[] = {{400, "bad_request"},
                 {408, "request_timeout"},
                 {413, "payload_too_large"},
                 {431, "request_header_fields_too_large"},
                 {500, "internal"}};
    const char *code = "internal";
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (codes[i].status == status) {
            code = codes[i].code;
        }
    }
    if (reject != NO_REJECT) {
        tf__http_count_reject(conn->loop->server, reject);
    }
    conn_drop_input(conn);
    conn->keep_alive = 0;
    if (conn->req == NULL && (conn->req = tf__req_create(conn->loop, conn)) == NULL) {
        conn_close(conn);
        return;
    }
    conn->req_dispatched = 1;
    tf_http_respond_error(conn->req, status, code, message, NULL);
}

/* ---- llhttp callbacks (they only record; decisions happen after the
 * parser returns) ---- */

static int head_result(tf__http_conn_t *conn, int rc) {
    if (rc == 0) {
        return 0;
    }
    conn->fail_status = rc == TF_ETOOBIG ? 431 : rc == TF_ENOMEM ? 500 : 400;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p) {
    tf__http_conn_t *conn = p->data;
    if (conn->req == NULL && (conn->req = tf__req_create(conn->loop, conn)) == NULL) {
        conn->fail_status = 500;
        return -1;
    }
    if (conn->state == CONN_NEW || conn->state == CONN_IDLE) {
        conn_enter(conn, CONN_HEAD);
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    tf__http_conn_t *conn = p->data;
    tf__req_set_method(conn->req, llhttp_method_name((llhttp_method_t)llhttp_get_method(p)));
    return head_result(conn,
                       tf__req_append_url(conn->req, at, len, conn_cfg(conn)->max_header_bytes));
}

static int on_url_complete(llhttp_t *p) {
    tf__http_conn_t *conn = p->data;
    return head_result(conn, tf__req_end_url(conn->req, conn_cfg(conn)->max_header_bytes)) ? -1 : 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    tf__http_conn_t *conn = p->data;
    return head_result(conn,
                       tf__req_append_field(conn->req, at, len, conn_cfg(conn)->max_header_bytes));
}

static int on_header_field_complete(llhttp_t *p) {
    tf__http_conn_t *conn = p->data;
    return head_result(conn, tf__req_end_field(conn->req, conn_cfg(conn)->max_header_bytes)) ? -1
                                                                                             : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    tf__http_conn_t *conn = p->data;
    return head_result(conn,
                       tf__req_append_value(conn->req, at, len, conn_cfg(conn)->max_header_bytes));
}

static int on_header_value_complete(llhttp_t *p) {
    tf__http_conn_t *conn = p->data;
    return head_result(conn, tf__req_end_value(conn->req, conn_cfg(conn)->max_header_bytes)) ? -1
                                                                                             : 0;
}

static int on_headers_complete(llhttp_t *p) {
    tf__http_conn_t *conn = p->data;
    conn->pause = PAUSE_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    tf__http_conn_t *conn = p->data;
    int rc = tf__req_append_body(conn->req, at, len, conn_cfg(conn)->max_body_bytes);
    if (rc != 0) {
        conn->fail_status = rc == TF_ETOOBIG ? 413 : 500;
        return HPE_USER;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    tf__http_conn_t *conn = p->data;
    conn->pause = PAUSE_MESSAGE;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- parsing ---- */

static int wants_continue(const tf_http_req_t *req, const llhttp_t *p) {
    const char *expect = tf_http_req_header(req, "Expect");
    int has_body = (p->flags & F_CHUNKED) != 0 || p->content_length > 0;
    return expect != NULL && strcasecmp(expect, "100-continue") == 0 && has_body &&
           p->http_major == 1 && p->http_minor >= 1;
}

/* The head is complete: enforce the size limits before any body is read,
 * route, and answer "100 Continue" when the client waits for it. */
static void conn_on_head(tf__http_conn_t *conn) {
    const tf_http_config_t *cfg = conn_cfg(conn);
    llhttp_t *p = &conn->parser;
    if (conn->head_bytes > cfg->max_header_bytes) {
        conn_fail(conn, 431, TF__HTTP_REJECT_HEADER_TOO_LARGE, "request head too large");
        return;
    }
    conn->keep_alive = llhttp_should_keep_alive(p) && !llhttp_get_upgrade(p);
    tf__req_set_method(conn->req, llhttp_method_name((llhttp_method_t)llhttp_get_method(p)));
    tf__req_head_done(conn->req, conn->keep_alive, llhttp_get_http_minor(p));
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > cfg->max_body_bytes) {
        conn_fail(conn, 413, TF__HTTP_REJECT_BODY_TOO_LARGE, "request body too large");
        return;
    }
    if ((p->flags & F_CHUNKED) == 0 && p->content_length == 0) {
        return; /* no body: the message completes right away */
    }
    conn_enter(conn, CONN_BODY);
    if (wants_continue(conn->req, p)) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        char *copy = malloc(sizeof(cont) - 1);
        if (copy == NULL) {
            conn_close(conn);
            return;
        }
        memcpy(copy, cont, sizeof(cont) - 1);
        if (conn_write(conn, copy, sizeof(cont) - 1) != 0) {
            conn_close(conn);
        }
    }
}

/* A whole request is in: hand it to its handler (or error response). */
static void conn_on_message(tf__http_conn_t *conn) {
    if (!conn->keep_alive) {
        conn_drop_input(conn); /* nothing after a closing request is read */
    }
    conn_enter(conn, CONN_HANDLING);
    conn->req_dispatched = 1;
    tf__req_dispatch(conn->req);
}

static void conn_on_parse_error(tf__http_conn_t *conn, llhttp_errno_t err) {
    int status = conn->fail_status != 0 ? conn->fail_status : 400;
    switch (status) {
    case 431:
        conn_fail(conn, 431, TF__HTTP_REJECT_HEADER_TOO_LARGE, "request head too large");
        break;
    case 413:
        conn_fail(conn, 413, TF__HTTP_REJECT_BODY_TOO_LARGE, "request body too large");
        break;
    case 500:
        conn_fail(conn, 500, NO_REJECT, "out of memory");
        break;
    default:
        conn_fail(conn, 400, TF__HTTP_REJECT_BAD_REQUEST,
                  err == HPE_USER ? "malformed request" : llhttp_get_error_reason(&conn->parser));
        break;
    }
}

static int conn_in_head(const tf__http_conn_t *conn) {
    return conn->state == CONN_NEW || conn->state == CONN_IDLE || conn->state == CONN_HEAD;
}

/* Feeds the unparsed input to llhttp once, and acts on where it stopped. */
static void conn_feed(tf__http_conn_t *conn) {
    int was_head = conn_in_head(conn);
    const char *data = conn->in != NULL ? conn->in : "";
    conn->pause = PAUSE_NONE;
    conn->resumed = 0;
    llhttp_errno_t err = llhttp_execute(&conn->parser, data, conn->in_len);
    size_t used = conn->in_len;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        used = (size_t)(llhttp_get_error_pos(&conn->parser) - data);
    }
    if (used > 0) { /* `in` may be NULL when llhttp ran without input */
        conn->in += used;
        conn->in_len -= used;
    }
    if (was_head) {
        conn->head_bytes += used;
    }
    switch (err) {
    case HPE_OK:
        if (conn_in_head(conn) && conn->head_bytes > conn_cfg(conn)->max_header_bytes) {
            conn_fail(conn, 431, TF__HTTP_REJECT_HEADER_TOO_LARGE, "request head too large");
        }
        return;
    case HPE_PAUSED:
        /* Steps after a pause (such as completing a body-less message) may
         * need no further input, so llhttp runs again even when none is
         * left. */
        llhttp_resume(&conn->parser);
        conn->resumed = 1;
        if (conn->pause == PAUSE_HEAD) {
            conn_on_head(conn);
        } else if (conn->pause == PAUSE_MESSAGE) {
            conn_on_message(conn);
        }
        return;
    case HPE_PAUSED_UPGRADE:
        /* No protocol switch here: the request was answered (or is being
         * handled) as a plain one and the connection closes after it. */
        conn->keep_alive = 0;
        conn_drop_input(conn);
        return;
    default:
        conn_on_parse_error(conn, err);
        return;
    }
}

/* Parses buffered input until it runs out or a handler owns a request.
 * Re-entrant calls (a handler answering at once) return immediately; the
 * outer call goes on. */
static void conn_process(tf__http_conn_t *conn) {
    if (conn->in_process) {
        return;
    }
    conn->in_process = 1;
    while (conn->state != CONN_CLOSED && conn_states[conn->state].parse &&
           (conn->in_len > 0 || conn->resumed)) {
        conn_feed(conn);
    }
    conn->in_process = 0;
    if (conn->state == CONN_CLOSED) {
        return;
    }
    if (conn_settle_input(conn) != 0) {
        conn_close(conn);
        return;
    }
    conn_update_reading(conn);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    tf__http_conn_t *conn = stream->data;
    if (nread == 0 || conn->state == CONN_CLOSED) {
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && (conn->state == CONN_CLOSING || conn->state == CONN_HANDLING)) {
            conn->peer_eof = 1; /* wait for our response to go out */
            conn_update_reading(conn);
        } else {
            conn_close(conn);
        }
        return;
    }
    if (conn->state == CONN_HANDLING) {
        if (conn_take_input(conn, buf->base, (size_t)nread) != 0 || conn_settle_input(conn) != 0) {
            conn_close(conn);
            return;
        }
        conn_update_reading(conn);
        return;
    }
    if (!conn_states[conn->state].parse) {
        return; /* closing: discard */
    }
    if (conn_take_input(conn, buf->base, (size_t)nread) != 0) {
        conn_close(conn);
        return;
    }
    conn_process(conn);
}

static void on_timer(uv_timer_t *timer) {
    tf__http_conn_t *conn = timer->data;
    tf__http_reject_t reject = conn_states[conn->state].reject;
    switch (conn_states[conn->state].on_timeout) {
    case ON_TIMEOUT_CLOSE:
        if (reject != NO_REJECT) {
            tf__http_count_reject(conn->loop->server, reject);
        }
        conn_close(conn);
        return;
    case ON_TIMEOUT_408:
        conn_fail(conn, 408, reject, "request not received in time");
        return;
    case ON_TIMEOUT_STALL: {
        size_t queued = conn_queued(conn);
        if (queued != 0 && queued < conn->stall_queue) {
            conn->stall_queue = queued; /* progress: wait again */
            uv_timer_start(&conn->timer, on_timer, timer_ms(conn, conn_states[conn->state].timer),
                           0);
            return;
        }
        tf__http_count_reject(conn->loop->server, reject);
        conn_close(conn);
        return;
    }
    default:
        return;
    }
}

/* ---- interface for the rest of the server ---- */

int tf__conn_peer_gone(const tf__http_conn_t *conn) {
    return conn->peer_eof || conn->state == CONN_CLOSED;
}

void tf__conn_send(tf__http_conn_t *conn, char *data, size_t len, int close) {
    close = close || conn->peer_eof; /* the client sent all it will */
    conn->req = NULL;
    conn->req_dispatched = 0;
    if (conn->state == CONN_CLOSED) {
        free(data);
        return;
    }
    if (data == NULL || conn_write(conn, data, len) != 0) {
        conn_close(conn);
        return;
    }
    if (close || tf__conn_closing_soon(conn)) {
        conn_begin_close(conn);
        return;
    }
    conn->head_bytes = 0;
    conn->fail_status = 0;
    conn_enter(conn, conn_queued(conn) > TF__HTTP_WRITE_HIGH_WATER ? CONN_WAIT_WRITE : CONN_IDLE);
}

void tf__conn_resume(tf__http_conn_t *conn) {
    if (conn->state != CONN_CLOSED && conn_states[conn->state].parse) {
        conn_process(conn);
    }
}

int tf__conn_closing_soon(const tf__http_conn_t *conn) {
    return !conn->keep_alive || conn->loop->stopping;
}

void tf__conn_stop(tf__http_conn_t *conn) {
    switch (conn->state) {
    case CONN_NEW:
    case CONN_IDLE:
        if (conn_queued(conn) == 0) {
            conn_close(conn);
        } else {
            conn_begin_close(conn);
        }
        return;
    case CONN_WAIT_WRITE:
        conn_begin_close(conn);
        return;
    case CONN_LINGER:
        conn_close(conn);
        return;
    default:
        /* Reading or handling a request: it is answered with
         * Connection: close (see tf__conn_closing_soon). */
        return;
    }
}

void tf__conn_force_close(tf__http_conn_t *conn) {
    conn_close(conn);
}

tf__http_conn_t *tf__conn_next(const tf__http_conn_t *conn) {
    return conn->next;
}

/* Sets up a freshly allocated connection's handles (both closed through
 * on_handle_closed from here on). */
static int conn_init_handles(tf__http_loop_t *loop, tf__http_conn_t *conn) {
    conn->loop = loop;
    if (uv_tcp_init(&loop->loop, &conn->tcp) != 0) {
        return TF_EIO;
    }
    conn->tcp.data = conn;
    uv_timer_init(&loop->loop, &conn->timer);
    conn->timer.data = conn;
    conn->open_handles = 2;
    conn->state = CONN_NEW;
    return 0;
}

void tf__conn_on_connection(uv_stream_t *listener, int status) {
    tf__http_loop_t *loop = listener->data;
    tf_http_server_t *server = loop->server;
    if (status < 0) {
        tf_log_warn(server->log, "http accept failed", TF_LF_STR("error", uv_strerror(status)));
        return;
    }
    tf__http_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL || conn_init_handles(loop, conn) != 0) {
        free(conn);
        tf_log_error(server->log, "http accept: out of memory", TF_LF_INT("loop", loop->index));
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        conn_close(conn);
        return;
    }
    if (atomic_fetch_add(&server->nconnections, 1) >= server->cfg.max_connections) {
        atomic_fetch_sub(&server->nconnections, 1);
        tf__http_count_reject(server, TF__HTTP_REJECT_MAX_CONNECTIONS);
        conn_close(conn);
        return;
    }
    conn->listed = 1;
    conn->next = loop->conns;
    if (loop->conns != NULL) {
        loop->conns->prev = conn;
    }
    loop->conns = conn;
    loop->nconns++;
    if (server->m.connections != NULL) {
        tf_metric_add(server->m.connections, 1.0);
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    llhttp_init(&conn->parser, HTTP_REQUEST, &parser_settings);
    conn->parser.data = conn;
    conn->keep_alive = 1;
    conn_enter(conn, CONN_NEW);
}
