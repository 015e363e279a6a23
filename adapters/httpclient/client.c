/*
 * client.c - outbound HTTP on one libuv loop (client.h): curl's multi
 * handle driven by the loop.  call.c configures each call's easy handle
 * and maps its outcome.
 *
 * How the loop drives curl:
 * - CURLMOPT_SOCKETFUNCTION: every socket curl wants watched gets a
 *   tf__http_socket_t holding a uv_poll_t, attached to the socket with
 *   curl_multi_assign().  On CURL_POLL_REMOVE (which curl sends before it
 *   closes the socket) the poll handle is closed at once (uv_close() stops
 *   watching synchronously, so a new socket that reuses the descriptor can
 *   get a fresh poll handle) and freed in its close callback.  Should curl
 *   ever close a watched socket without telling us, the stale poll handle
 *   is closed when its descriptor comes back.
 * - CURLMOPT_TIMERFUNCTION arms one uv_timer_t; readiness and timer
 *   expiry go to curl_multi_socket_action(), then finished transfers are
 *   collected with curl_multi_info_read().
 * - Results are delivered from a uv_idle_t that runs while the done queue
 *   is not empty.  So `done` never runs inside tf_http_client_start(), nor
 *   inside any curl function: a `done` callback may start, abort or close
 *   freely.  One idle pass delivers the calls queued when it began.
 *
 * Aborting: the easy handle leaves the multi handle at once (no more I/O,
 * its connection is closed by curl) and the call is queued with
 * "aborted".  Aborting a call whose result is already queued turns that
 * result into "aborted" too, so after tf_http_client_abort() `done` always
 * sees "aborted".
 *
 * Closing: every running call is aborted, the multi handle is cleaned up
 * (closing its cached connections), every poll handle is closed; the idle
 * pass then delivers the queue ("aborted" for each call), closes the timer
 * and the idle handle, and once the last close callback ran calls
 * `closed_cb` and frees the client.  tf_http_client_start() during close
 * returns TF_ESHUTDOWN.
 *
 * curl_global_init() is process-wide and not safe to race, while several
 * loops create clients concurrently: it runs once under pthread_once (the
 * one piece of file-scope state here, because curl's own state is
 * process-wide).  curl_global_cleanup() is never called: other loops'
 * clients may still be using curl, and the process exit reclaims it.
 *
 * Loop: everything runs on the loop given to tf_http_client_create().
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/httpclient/client_internal.h"
#include "engine/error.h"

static const char TF_HTTP_ABORTED_MESSAGE[] = "the call was aborted";
static const char TF_HTTP_CLOSING_MESSAGE[] = "the HTTP client is closing";

typedef struct tf__http_socket {
    uv_poll_t poll;
    curl_socket_t fd;
    tf_http_client_t *client;
    struct tf__http_socket *prev;
    struct tf__http_socket *next;
} tf__http_socket_t;

struct tf_http_client {
    uv_loop_t *loop;
    CURLM *multi; /* NULL once closing */
    uv_timer_t timer;
    uv_idle_t idle;
    tf_http_client_config_t cfg;
    tf_http_call_t *running; /* doubly linked, easy handle in `multi` */
    tf_http_call_t *queue_head;
    tf_http_call_t *queue_tail;
    size_t queue_len;
    tf__http_socket_t *sockets; /* poll handles open (not closing) */
    size_t handles_closing;     /* close callbacks still to come */
    int closing;
    int handles_closed; /* timer and idle handed to uv_close() */
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* ---- process-wide curl initialisation ------------------------------------ */

static pthread_once_t tf__http_global_once = PTHREAD_ONCE_INIT;
static CURLcode tf__http_global_result = CURLE_FAILED_INIT;

static void tf__http_global_init(void) {
    tf__http_global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- call lists ----------------------------------------------------------- */

static void tf__http_running_add(tf_http_client_t *c, tf_http_call_t *call) {
    call->state = TF__HTTP_CALL_RUNNING;
    call->prev = NULL;
    call->next = c->running;
    if (c->running != NULL) {
        c->running->prev = call;
    }
    c->running = call;
}

static void tf__http_running_remove(tf_http_client_t *c, tf_http_call_t *call) {
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        c->running = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    call->prev = NULL;
    call->next = NULL;
}

static void tf__http_on_idle(uv_idle_t *idle);

/* Queues `call` (result fixed) for delivery on the next idle pass. */
static void tf__http_queue(tf_http_client_t *c, tf_http_call_t *call) {
    call->state = TF__HTTP_CALL_QUEUED;
    call->next = NULL;
    if (c->queue_tail != NULL) {
        c->queue_tail->next = call;
    } else {
        c->queue_head = call;
    }
    c->queue_tail = call;
    c->queue_len++;
    uv_idle_start(&c->idle, tf__http_on_idle);
}

static tf_http_call_t *tf__http_dequeue(tf_http_client_t *c) {
    tf_http_call_t *call = c->queue_head;
    if (call != NULL) {
        c->queue_head = call->next;
        if (c->queue_head == NULL) {
            c->queue_tail = NULL;
        }
        c->queue_len--;
        call->next = NULL;
    }
    return call;
}

/* Takes a running call out of the multi handle and queues it as aborted. */
static void tf__http_abort_running(tf_http_client_t *c, tf_http_call_t *call, const char *message) {
    tf__http_running_remove(c, call);
    curl_multi_remove_handle(c->multi, call->easy);
    tf__http_call_abort(call, message);
    tf__http_queue(c, call);
}

/* ---- closing -------------------------------------------------------------- */

static void tf__http_handle_closed(tf_http_client_t *c) {
    c->handles_closing--;
    if (c->handles_closing == 0 && c->handles_closed) {
        void (*closed_cb)(void *) = c->closed_cb;
        void *closed_arg = c->closed_arg;
        free(c);
        if (closed_cb != NULL) {
            closed_cb(closed_arg);
        }
    }
}

static void tf__http_on_socket_closed(uv_handle_t *handle) {
    tf__http_socket_t *sock = handle->data;
    tf_http_client_t *c = sock->client;
    free(sock);
    tf__http_handle_closed(c);
}

static void tf__http_on_timer_or_idle_closed(uv_handle_t *handle) {
    tf__http_handle_closed(handle->data);
}

/* Stops watching `sock` now and frees it in its close callback. */
static void tf__http_socket_close(tf__http_socket_t *sock) {
    tf_http_client_t *c = sock->client;
    if (sock->prev != NULL) {
        sock->prev->next = sock->next;
    } else {
        c->sockets = sock->next;
    }
    if (sock->next != NULL) {
        sock->next->prev = sock->prev;
    }
    c->handles_closing++;
    uv_close((uv_handle_t *)&sock->poll, tf__http_on_socket_closed);
}

/* ---- driving curl --------------------------------------------------------- */

/* Moves every transfer curl finished to the done queue. */
static void tf__http_collect(tf_http_client_t *c) {
    CURLMsg *msg;
    int left;
    while (c->multi != NULL && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        char *private_data = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &private_data);
        tf_http_call_t *call = (tf_http_call_t *)(void *)private_data;
        tf__http_running_remove(c, call);
        curl_multi_remove_handle(c->multi, easy);
        tf__http_call_complete(call, code);
        tf__http_queue(c, call);
    }
}

static void tf__http_on_poll(uv_poll_t *poll, int status, int events) {
    tf__http_socket_t *sock = poll->data;
    tf_http_client_t *c = sock->client;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    int running;
    curl_multi_socket_action(c->multi, sock->fd, flags, &running);
    tf__http_collect(c);
}

static void tf__http_on_timer(uv_timer_t *timer) {
    tf_http_client_t *c = timer->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    tf__http_collect(c);
}

static int tf__http_on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    tf_http_client_t *c = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, tf__http_on_timer, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* Closes the poll handle of a socket curl closed without telling us, now
 * that its descriptor `fd` is back. */
static void tf__http_close_stale(tf_http_client_t *c, curl_socket_t fd) {
    for (tf__http_socket_t *sock = c->sockets; sock != NULL; sock = sock->next) {
        if (sock->fd == fd) {
            tf__http_socket_close(sock);
            return;
        }
    }
}

static tf__http_socket_t *tf__http_socket_open(tf_http_client_t *c, curl_socket_t fd) {
    tf__http_socket_t *sock = calloc(1, sizeof(*sock));
    if (sock == NULL) {
        return NULL;
    }
    int rc = uv_poll_init_socket(c->loop, &sock->poll, fd);
    if (rc == UV_EEXIST) {
        tf__http_close_stale(c, fd);
        rc = uv_poll_init_socket(c->loop, &sock->poll, fd);
    }
    if (rc != 0) {
        free(sock);
        return NULL;
    }
    sock->poll.data = sock;
    sock->fd = fd;
    sock->client = c;
    sock->next = c->sockets;
    if (c->sockets != NULL) {
        c->sockets->prev = sock;
    }
    c->sockets = sock;
    curl_multi_assign(c->multi, fd, sock);
    return sock;
}

/* curl's socket callback.  Without memory for a poll handle the socket
 * stays unwatched and its transfer ends at its timeout: failing here with
 * -1 would make curl give up on every transfer of the multi handle. */
static int tf__http_on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                                   void *socketp) {
    (void)easy;
    tf_http_client_t *c = userp;
    tf__http_socket_t *sock = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sock != NULL) {
            curl_multi_assign(c->multi, fd, NULL);
            tf__http_socket_close(sock);
        }
        return 0;
    }
    if (sock == NULL && (sock = tf__http_socket_open(c, fd)) == NULL) {
        return 0;
    }
    int events = 0;
    events |= (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ? UV_READABLE : 0;
    events |= (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ? UV_WRITABLE : 0;
    uv_poll_start(&sock->poll, events, tf__http_on_poll);
    return 0;
}

/* ---- delivery ------------------------------------------------------------- */

static void tf__http_finish_close(tf_http_client_t *c) {
    c->handles_closed = 1;
    c->handles_closing += 2;
    uv_close((uv_handle_t *)&c->timer, tf__http_on_timer_or_idle_closed);
    uv_close((uv_handle_t *)&c->idle, tf__http_on_timer_or_idle_closed);
}

static void tf__http_on_idle(uv_idle_t *idle) {
    tf_http_client_t *c = idle->data;
    size_t n = c->queue_len;
    while (n-- > 0) {
        tf_http_call_t *call = tf__http_dequeue(c);
        if (call == NULL) {
            break;
        }
        call->state = TF__HTTP_CALL_DELIVERING;
        call->done(&call->result, call->done_arg);
        tf__http_call_destroy(call);
    }
    if (c->queue_len == 0) {
        uv_idle_stop(&c->idle);
        if (c->closing && !c->handles_closed) {
            tf__http_finish_close(c);
        }
    }
}

/* ---- public --------------------------------------------------------------- */

static int tf__http_multi_setup(tf_http_client_t *c) {
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        return TF_ENOMEM;
    }
    if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, tf__http_on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, (void *)c) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, tf__http_on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, (void *)c) != CURLM_OK) {
        curl_multi_cleanup(c->multi);
        c->multi = NULL;
        return TF_EIO;
    }
    return 0;
}

int tf_http_client_create(uv_loop_t *loop, const tf_http_client_config_t *cfg,
                          tf_http_client_t **out) {
    if (loop == NULL || out == NULL || (cfg != NULL && cfg->max_response_bytes > SIZE_MAX / 4)) {
        return TF_EINVAL;
    }
    pthread_once(&tf__http_global_once, tf__http_global_init);
    if (tf__http_global_result != CURLE_OK) {
        return tf__http_global_result == CURLE_OUT_OF_MEMORY ? TF_ENOMEM : TF_EIO;
    }
    tf_http_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return TF_ENOMEM;
    }
    c->loop = loop;
    if (cfg != NULL) {
        c->cfg = *cfg;
    }
    if (c->cfg.max_response_bytes == 0) {
        c->cfg.max_response_bytes = TF__HTTP_DEFAULT_MAX_RESPONSE_BYTES;
    }
    int rc = tf__http_multi_setup(c);
    if (rc != 0) {
        free(c);
        return rc;
    }
    /* Neither can fail: they only fill in the handle. */
    uv_timer_init(loop, &c->timer);
    uv_idle_init(loop, &c->idle);
    c->timer.data = c;
    c->idle.data = c;
    *out = c;
    return 0;
}

int tf_http_client_start(tf_http_client_t *c, const tf_http_request_t *req, tf_http_done_fn done,
                         void *arg, tf_http_call_t **call_out) {
    if (c == NULL || req == NULL || done == NULL) {
        return TF_EINVAL;
    }
    if (c->closing) {
        return TF_ESHUTDOWN;
    }
    tf_http_call_t *call = NULL;
    int rc = tf__http_call_create(c, &c->cfg, req, &call);
    if (rc != 0) {
        return rc;
    }
    call->done = done;
    call->done_arg = arg;
    if (call->easy == NULL) {
        tf__http_queue(c, call); /* refused by the guard already */
    } else {
        CURLMcode mc = curl_multi_add_handle(c->multi, call->easy);
        if (mc != CURLM_OK) {
            tf__http_call_destroy(call);
            return mc == CURLM_OUT_OF_MEMORY ? TF_ENOMEM : TF_EIO;
        }
        tf__http_running_add(c, call);
    }
    if (call_out != NULL) {
        *call_out = call;
    }
    return 0;
}

void tf_http_client_abort(tf_http_client_t *c, tf_http_call_t *call) {
    if (c == NULL || call == NULL || call->client != c) {
        return;
    }
    if (call->state == TF__HTTP_CALL_RUNNING) {
        tf__http_abort_running(c, call, TF_HTTP_ABORTED_MESSAGE);
    } else if (call->state == TF__HTTP_CALL_QUEUED) {
        tf__http_call_abort(call, TF_HTTP_ABORTED_MESSAGE);
    }
}

void tf_http_client_close(tf_http_client_t *c, void (*closed_cb)(void *arg), void *arg) {
    if (c == NULL || c->closing) {
        return;
    }
    c->closing = 1;
    c->closed_cb = closed_cb;
    c->closed_arg = arg;
    for (tf_http_call_t *call = c->queue_head; call != NULL; call = call->next) {
        tf__http_call_abort(call, TF_HTTP_CLOSING_MESSAGE);
    }
    while (c->running != NULL) {
        tf__http_abort_running(c, c->running, TF_HTTP_CLOSING_MESSAGE);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->sockets != NULL) {
        tf__http_socket_close(c->sockets);
    }
    uv_timer_stop(&c->timer);
    uv_idle_start(&c->idle, tf__http_on_idle);
}
