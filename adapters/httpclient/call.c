/*
 * call.c - one outbound HTTP call of the client (client.h): validating and
 * copying the request, configuring its curl easy handle, keeping the
 * response body under the cap, refusing forbidden addresses, and turning
 * curl's outcome into a tf_http_result_t.
 *
 * Behaviour:
 * - Methods GET, POST, PUT, PATCH and DELETE, matched without regard to
 *   case and sent upper-case.  Only absolute http:// and https:// URLs with
 *   a host; header lines must be "Name: value" without CR or LF; timeout_ms
 *   must be positive.  Anything else is TF_EINVAL.
 * - A body is sent when there is one, and always for POST, PUT and PATCH
 *   (then possibly empty, with Content-Length: 0).  "Expect: 100-continue"
 *   is suppressed unless the caller sets Expect, so a body goes out at
 *   once instead of after a one-second wait.
 * - A call that ends (timeout, abort, close) while its name is still being
 *   resolved does not wait for curl's resolver thread, which would block
 *   the loop for as long as getaddrinfo() takes: CURLOPT_QUICK_EXIT makes
 *   curl detach the thread, which frees its own state when the lookup
 *   returns.
 * - Proxies are never used, whatever http_proxy and friends say: through a
 *   proxy the guard would check the proxy's address, not the target's.
 * - The body cap aborts the transfer at the cap: as soon as a byte beyond
 *   max_body arrives, the first max_body bytes are kept, `truncated` is set
 *   and the write callback stops the transfer, which then counts as a
 *   response (error_type NULL).  Reading and discarding the rest instead
 *   would let a server hold the call (and a connection) until timeout_ms by
 *   streaming forever.
 * - The guard runs twice.  A URL whose host is a literal IP address is
 *   checked here, before curl sees it, so such a call fails without any
 *   socket.  Every address curl is about to connect to (after DNS) is
 *   checked in the open-socket callback, which refuses it before a socket
 *   exists; curl then reports "couldn't connect", reported as
 *   "blocked_address" when the guard refused an address of the call.
 * - Outcomes: CURLE_OPERATION_TIMEDOUT is "timeout", CURLE_COULDNT_CONNECT
 *   "connect_refused" (or "blocked_address", above), COULDNT_RESOLVE_HOST
 *   "dns", the SSL/TLS codes "tls", anything else (reset, empty reply, bad
 *   framing, no memory for the body) "connection".  A failure after the
 *   response head keeps the status that arrived.
 *
 * Loop: all of it runs on the client's loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "adapters/httpclient/addrguard.h"
#include "adapters/httpclient/client_internal.h"
#include "engine/error.h"

static const char *const TF_HTTP_METHODS[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
static const char TF_HTTP_USER_AGENT[] = "TaskFlow";

/* ---- validation --------------------------------------------------------- */

static const char *tf__http_canonical_method(const char *method) {
    if (method == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(TF_HTTP_METHODS) / sizeof(TF_HTTP_METHODS[0]); i++) {
        if (strcasecmp(method, TF_HTTP_METHODS[i]) == 0) {
            return TF_HTTP_METHODS[i];
        }
    }
    return NULL;
}

/* A header line is a token, a colon and a value without CR, LF or NUL. */
static int tf__http_header_valid(const char *line) {
    if (line == NULL) {
        return 0;
    }
    const char *colon = strchr(line, ':');
    if (colon == NULL || colon == line) {
        return 0;
    }
    for (const char *p = line; p < colon; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= ' ' || ch >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL) {
            return 0;
        }
    }
    return strpbrk(colon, "\r\n") == NULL;
}

static int tf__http_header_named(const char *line, const char *name) {
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* Checks the literal-address host `host` (as CURLU gives it: IPv6 in
 * brackets, no zone) against the guard; DNS names pass here and are
 * checked in tf__http_open_socket(). */
static void tf__http_check_literal_host(tf_http_call_t *call, const char *host) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    size_t len = 0;
    char text[64];
    size_t hlen = strlen(host);
    if (hlen >= 2 && host[0] == '[' && hlen - 2 < sizeof(text)) {
        memcpy(text, host + 1, hlen - 2);
        text[hlen - 2] = '\0';
        text[strcspn(text, "%]")] = '\0';
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            len = sizeof(*v6);
        }
    } else {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            len = sizeof(*v4);
        }
    }
    if (len == 0) {
        return;
    }
    tf_http_addr_class_t cls = tf_http_addr_classify((struct sockaddr *)&ss, len);
    if (!tf_http_addr_allowed(cls, call->allow_loopback, call->allow_private)) {
        call->blocked = 1;
        snprintf(call->message, sizeof(call->message), "refused to connect to %s: %s address", host,
                 tf_http_addr_class_name(cls));
    }
}

/* Parses `url`: absolute, scheme http or https, with a host.  Runs the
 * literal-address check.  Returns 0, TF_EINVAL or TF_ENOMEM. */
static int tf__http_check_url(tf_http_call_t *call, const char *url) {
    if (url == NULL) {
        return TF_EINVAL;
    }
    CURLU *u = curl_url();
    if (u == NULL) {
        return TF_ENOMEM;
    }
    int rc = TF_EINVAL;
    char *scheme = NULL;
    char *host = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OUT_OF_MEMORY) {
        rc = TF_ENOMEM;
    } else if (uc == CURLUE_OK && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
               curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0' &&
               (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0)) {
        tf__http_check_literal_host(call, host);
        rc = 0;
    }
    curl_free(host);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* ---- curl callbacks ----------------------------------------------------- */

static int tf__http_body_reserve(tf_http_call_t *call, size_t need) {
    if (need <= call->body_cap) {
        return 0;
    }
    size_t cap = call->body_cap == 0 ? 16384 : call->body_cap;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    if (cap > call->max_body + 1) {
        cap = call->max_body + 1;
    }
    char *body = realloc(call->body, cap);
    if (body == NULL) {
        return TF_ENOMEM;
    }
    call->body = body;
    call->body_cap = cap;
    return 0;
}

/* Keeps at most max_body bytes; a byte beyond the cap sets `truncated` and
 * returns short, which makes curl stop the transfer (CURLE_WRITE_ERROR). */
static size_t tf__http_on_body(char *data, size_t size, size_t nmemb, void *userdata) {
    tf_http_call_t *call = userdata;
    size_t n = size * nmemb;
    size_t room = call->max_body - call->body_len;
    size_t take = n < room ? n : room;
    if (take > 0) {
        if (tf__http_body_reserve(call, call->body_len + take + 1) != 0) {
            call->out_of_memory = 1;
            return 0;
        }
        memcpy(call->body + call->body_len, data, take);
        call->body_len += take;
        call->body[call->body_len] = '\0';
    }
    if (take < n) {
        call->truncated = 1;
    }
    return take;
}

/* Keeps the header lines of the last response (a 100 Continue or a
 * proxy's answer came before it when a status line starts anew). */
static size_t tf__http_on_header(char *data, size_t size, size_t nmemb, void *userdata) {
    tf_http_call_t *call = userdata;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        call->head_len = 0; /* a status line: a new response */
        return n;
    }
    if (n <= 2 || call->head_len + n + 1 > TF_HTTP_MAX_HEADER_BYTES) {
        return n; /* the blank line ending the head, or over the cap: dropped */
    }
    if (call->head_len + n + 1 > call->head_cap) {
        size_t cap = call->head_cap > 0 ? call->head_cap * 2 : 1024;
        while (cap < call->head_len + n + 1) {
            cap *= 2;
        }
        char *grown = realloc(call->head, cap);
        if (grown == NULL) {
            call->out_of_memory = 1;
            return 0;
        }
        call->head = grown;
        call->head_cap = cap;
    }
    memcpy(call->head + call->head_len, data, n);
    call->head_len += n;
    call->head[call->head_len] = '\0';
    return n;
}

/* Opens the socket for a connection unless the guard refuses the address;
 * a refusal returns CURL_SOCKET_BAD before any socket exists. */
static curl_socket_t tf__http_open_socket(void *clientp, curlsocktype purpose,
                                          struct curl_sockaddr *address) {
    tf_http_call_t *call = clientp;
    tf_http_addr_class_t cls = tf_http_addr_classify(&address->addr, address->addrlen);
    if (purpose != CURLSOCKTYPE_IPCXN ||
        !tf_http_addr_allowed(cls, call->allow_loopback, call->allow_private)) {
        char text[INET6_ADDRSTRLEN] = "?";
        const void *raw = NULL;
        if (address->family == AF_INET) {
            raw = &((const struct sockaddr_in *)(const void *)&address->addr)->sin_addr;
        } else if (address->family == AF_INET6) {
            raw = &((const struct sockaddr_in6 *)(const void *)&address->addr)->sin6_addr;
        }
        if (raw != NULL) {
            inet_ntop(address->family, raw, text, sizeof(text));
        }
        call->blocked = 1;
        snprintf(call->message, sizeof(call->message), "refused to connect to %s: %s address", text,
                 tf_http_addr_class_name(cls));
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* ---- the easy handle ---------------------------------------------------- */

static int tf__http_build_headers(tf_http_call_t *call, const tf_http_request_t *req,
                                  int has_body) {
    int has_expect = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!tf__http_header_valid(req->headers[i])) {
            return TF_EINVAL;
        }
        has_expect |= tf__http_header_named(req->headers[i], "Expect");
        struct curl_slist *list = curl_slist_append(call->headers, req->headers[i]);
        if (list == NULL) {
            return TF_ENOMEM;
        }
        call->headers = list;
    }
    if (has_body && !has_expect) {
        struct curl_slist *list = curl_slist_append(call->headers, "Expect:");
        if (list == NULL) {
            return TF_ENOMEM;
        }
        call->headers = list;
    }
    return 0;
}

static int tf__http_setopt_failed(CURLcode code) {
    return code == CURLE_OUT_OF_MEMORY ? TF_ENOMEM : TF_EINVAL;
}

#define TF__HTTP_SETOPT(easy, opt, value)                                                          \
    do {                                                                                           \
        CURLcode code_ = curl_easy_setopt((easy), (opt), (value));                                 \
        if (code_ != CURLE_OK) {                                                                   \
            return tf__http_setopt_failed(code_);                                                  \
        }                                                                                          \
    } while (0)

static int tf__http_setup_method(CURL *easy, const char *method, const tf_http_request_t *req,
                                 int has_body) {
    if (has_body) {
        TF__HTTP_SETOPT(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (req->body_len > 0) {
            TF__HTTP_SETOPT(easy, CURLOPT_COPYPOSTFIELDS, req->body);
        } else {
            TF__HTTP_SETOPT(easy, CURLOPT_POSTFIELDS, "");
        }
        if (strcmp(method, "POST") != 0) {
            TF__HTTP_SETOPT(easy, CURLOPT_CUSTOMREQUEST, method);
        }
        return 0;
    }
    TF__HTTP_SETOPT(easy, CURLOPT_HTTPGET, 1L);
    if (strcmp(method, "GET") != 0) {
        TF__HTTP_SETOPT(easy, CURLOPT_CUSTOMREQUEST, method);
    }
    return 0;
}

static int tf__http_setup_easy(tf_http_call_t *call, const char *method,
                               const tf_http_request_t *req, int has_body) {
    CURL *easy = call->easy;
    TF__HTTP_SETOPT(easy, CURLOPT_PRIVATE, (void *)call);
    TF__HTTP_SETOPT(easy, CURLOPT_URL, req->url);
    TF__HTTP_SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
    TF__HTTP_SETOPT(easy, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    TF__HTTP_SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    TF__HTTP_SETOPT(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    TF__HTTP_SETOPT(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    TF__HTTP_SETOPT(easy, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
#if LIBCURL_VERSION_NUM >= 0x075700 /* 7.87.0 */
    TF__HTTP_SETOPT(easy, CURLOPT_QUICK_EXIT, 1L);
#endif
    TF__HTTP_SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
    TF__HTTP_SETOPT(easy, CURLOPT_PROXY, "");
    TF__HTTP_SETOPT(easy, CURLOPT_USERAGENT, TF_HTTP_USER_AGENT);
    TF__HTTP_SETOPT(easy, CURLOPT_ERRORBUFFER, call->errbuf);
    TF__HTTP_SETOPT(easy, CURLOPT_WRITEFUNCTION, tf__http_on_body);
    TF__HTTP_SETOPT(easy, CURLOPT_WRITEDATA, (void *)call);
    if (call->keep_headers) {
        TF__HTTP_SETOPT(easy, CURLOPT_HEADERFUNCTION, tf__http_on_header);
        TF__HTTP_SETOPT(easy, CURLOPT_HEADERDATA, (void *)call);
    }
    TF__HTTP_SETOPT(easy, CURLOPT_OPENSOCKETFUNCTION, tf__http_open_socket);
    TF__HTTP_SETOPT(easy, CURLOPT_OPENSOCKETDATA, (void *)call);
    if (call->headers != NULL) {
        TF__HTTP_SETOPT(easy, CURLOPT_HTTPHEADER, call->headers);
    }
    return tf__http_setup_method(easy, method, req, has_body);
}

int tf__http_call_create(tf_http_client_t *client, const tf_http_client_config_t *cfg,
                         const tf_http_request_t *req, tf_http_call_t **out) {
    const char *method = tf__http_canonical_method(req->method);
    if (method == NULL || req->timeout_ms <= 0 || (req->body_len > 0 && req->body == NULL) ||
        (req->nheaders > 0 && req->headers == NULL)) {
        return TF_EINVAL;
    }
    int has_body = req->body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                   strcmp(method, "PATCH") == 0;
    tf_http_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        return TF_ENOMEM;
    }
    call->client = client;
    call->max_body = cfg->max_response_bytes;
    call->allow_loopback = cfg->allow_loopback;
    call->allow_private = cfg->allow_private;
    call->keep_headers = req->keep_headers;
    call->result.headers = "";
    call->started_ns = uv_hrtime();
    int rc = tf__http_check_url(call, req->url);
    if (rc == 0) {
        rc = tf__http_build_headers(call, req, has_body);
    }
    if (rc != 0) {
        goto fail;
    }
    if (call->blocked) {
        call->result.error_type = "blocked_address";
        call->result.error_message = call->message;
        call->result.body = "";
        *out = call;
        return 0;
    }
    call->easy = curl_easy_init();
    if (call->easy == NULL) {
        rc = TF_ENOMEM;
        goto fail;
    }
    rc = tf__http_setup_easy(call, method, req, has_body);
    if (rc != 0) {
        goto fail;
    }
    *out = call;
    return 0;
fail:
    tf__http_call_destroy(call);
    return rc;
}

/* ---- results ------------------------------------------------------------ */

static int tf__http_is_tls_error(CURLcode code) {
    switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return 1;
    default:
        return 0;
    }
}

static const char *tf__http_error_type(const tf_http_call_t *call, CURLcode code) {
    if (call->blocked && code == CURLE_COULDNT_CONNECT) {
        return "blocked_address";
    }
    if (tf__http_is_tls_error(code)) {
        return "tls";
    }
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_CONNECT:
        return "connect_refused";
    case CURLE_COULDNT_RESOLVE_HOST:
        return "dns";
    default:
        return "connection";
    }
}

static void tf__http_release_easy(tf_http_call_t *call) {
    if (call->easy != NULL) {
        curl_easy_cleanup(call->easy);
        call->easy = NULL;
    }
    curl_slist_free_all(call->headers);
    call->headers = NULL;
}

void tf__http_call_complete(tf_http_call_t *call, CURLcode code) {
    tf_http_result_t *r = &call->result;
    r->duration_ms = (uv_hrtime() - call->started_ns) / 1000000u;
    long status = 0;
    if (curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK) {
        r->status = status;
    }
    if (code == CURLE_WRITE_ERROR && call->truncated && !call->out_of_memory) {
        code = CURLE_OK; /* the cap stopped the transfer: a response, cut short */
    }
    if (code != CURLE_OK) {
        r->error_type = tf__http_error_type(call, code);
        if (call->out_of_memory) {
            r->error_message = "out of memory buffering the response body";
        } else if (call->blocked && code == CURLE_COULDNT_CONNECT) {
            r->error_message = call->message;
        } else {
            r->error_message = call->errbuf[0] != '\0' ? call->errbuf : curl_easy_strerror(code);
        }
    }
    r->body = call->body != NULL ? call->body : "";
    r->body_len = call->body_len;
    r->truncated = call->truncated;
    r->headers = call->head != NULL ? call->head : "";
    r->headers_len = call->head_len;
    tf__http_release_easy(call);
}

void tf__http_call_abort(tf_http_call_t *call, const char *message) {
    tf_http_result_t *r = &call->result;
    if (call->easy != NULL) {
        r->duration_ms = (uv_hrtime() - call->started_ns) / 1000000u;
    }
    r->status = 0;
    r->error_type = "aborted";
    r->error_message = message;
    r->body = "";
    r->body_len = 0;
    r->truncated = 0;
    r->headers = "";
    r->headers_len = 0;
    tf__http_release_easy(call);
}

void tf__http_call_destroy(tf_http_call_t *call) {
    if (call == NULL) {
        return;
    }
    tf__http_release_easy(call);
    free(call->body);
    free(call->head);
    free(call);
}
