/*
 * http_executor.c - request and outcome of the built-in http executor (see
 * http_executor.h).  No I/O: the runner makes the call.
 */
#include "adapters/worker/http_executor.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "adapters/json/jbuf.h"
#include "engine/error.h"
#include "engine/hex.h"
#include "engine/utf8.h"

enum {
    SNIPPET_MAX = 200, /* bytes of a failed response's body in the error message */
    SECRET_MAX = 256,  /* bytes of a signing secret */
};

char *tf_http_exec_utf8(const char *s, size_t n, size_t *out_len) {
    char *out = malloc(tf_utf8_sanitize(s, n, 1, NULL) + 1);
    if (out == NULL) {
        return NULL;
    }
    *out_len = tf_utf8_sanitize(s, n, 1, out);
    return out;
}

int tf_http_exec_sign(const char *secret_hex, int64_t t, const char *body, size_t body_len,
                      char out[TF_HTTP_EXEC_SIGNATURE_LEN]) {
    unsigned char secret[SECRET_MAX], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int secret_len = tf_hex_decode(secret_hex, secret, sizeof(secret));
    if (secret_len <= 0) {
        OPENSSL_cleanse(secret, sizeof(secret));
        return TF_EINVAL;
    }
    char ts[24];
    size_t tlen = (size_t)snprintf(ts, sizeof(ts), "%lld", (long long)t);
    char *msg = malloc(tlen + 1 + body_len);
    unsigned char *done = NULL;
    if (msg != NULL) {
        memcpy(msg, ts, tlen);
        msg[tlen] = '.';
        memcpy(msg + tlen + 1, body, body_len);
        done = HMAC(EVP_sha256(), secret, secret_len, (const unsigned char *)msg,
                    tlen + 1 + body_len, mac, &mac_len);
        free(msg);
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    if (done == NULL) {
        return msg == NULL ? TF_ENOMEM : TF_EIO;
    }
    int n = snprintf(out, TF_HTTP_EXEC_SIGNATURE_LEN, "t=%s,v1=", ts);
    if (n < 0 || (size_t)n + 2 * (size_t)mac_len + 1 > TF_HTTP_EXEC_SIGNATURE_LEN) {
        return TF_EIO;
    }
    tf_hex_encode(mac, mac_len, out + n);
    return 0;
}

static char *header_line(const char *name, const char *value) {
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = malloc(len);
    if (line != NULL) {
        snprintf(line, len, "%s: %s", name, value);
    }
    return line;
}

/* Headers the executor may not set: ours, and framing. */
static int reserved_header(const char *name) {
    static const char *const names[] = {"TaskFlow-Job-Id",         "TaskFlow-Attempt",
                                        "TaskFlow-Correlation-Id", "TaskFlow-Signature",
                                        "Content-Length",          "Transfer-Encoding"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int has_header(const json_t *headers, const char *name) {
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)headers, key, value) {
        if (strcasecmp(key, name) == 0) {
            return 1;
        }
    }
    return 0;
}

void tf_http_exec_request_free(tf_http_exec_req_t *r) {
    for (size_t i = 0; r->lines != NULL && i < r->nlines; i++) {
        free(r->lines[i]);
    }
    free(r->lines);
    r->lines = NULL;
    r->nlines = 0;
}

int tf_http_exec_request(const tf_http_job_t *job, tf_http_exec_req_t *out) {
    const json_t *custom = json_object_get(job->executor, "headers");
    const char *method = json_string_value(json_object_get(job->executor, "method"));
    const char *url = json_string_value(json_object_get(job->executor, "url"));
    const char *payload = job->payload != NULL ? job->payload : "{}";
    const char *corr = job->correlation_id;
    char signature[TF_HTTP_EXEC_SIGNATURE_LEN], attempt[16];
    int rc =
        tf_http_exec_sign(job->signing_secret_hex, job->now_s, payload, strlen(payload), signature);
    if (rc != 0) {
        return rc;
    }
    *out = (tf_http_exec_req_t){0};
    out->lines =
        calloc(5 + (json_is_object(custom) ? json_object_size(custom) : 0), sizeof(char *));
    if (out->lines == NULL) {
        return TF_ENOMEM;
    }
    snprintf(attempt, sizeof(attempt), "%d", job->attempt);
    size_t n = 0;
    if (!has_header(custom, "Content-Type")) {
        out->lines[n++] = header_line("Content-Type", "application/json");
    }
    out->lines[n++] = header_line("TaskFlow-Job-Id", job->job_id);
    out->lines[n++] = header_line("TaskFlow-Attempt", attempt);
    if (corr != NULL && corr[0] != '\0' && strpbrk(corr, "\r\n") == NULL) {
        out->lines[n++] = header_line("TaskFlow-Correlation-Id", corr);
    }
    out->lines[n++] = header_line("TaskFlow-Signature", signature);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)custom, key, value) {
        if (json_is_string(value) && !reserved_header(key)) {
            out->lines[n++] = header_line(key, json_string_value(value));
        }
    }
    out->nlines = n;
    for (size_t i = 0; i < n; i++) {
        if (out->lines[i] == NULL) {
            tf_http_exec_request_free(out);
            return TF_ENOMEM;
        }
    }
    long timeout = job->timeout_ms > 0 && job->timeout_ms < INT_MAX
                       ? job->timeout_ms
                       : TF_HTTP_EXEC_DEFAULT_TIMEOUT_MS;
    out->req = (tf_http_request_t){
        .method = method != NULL ? method : "POST",
        .url = url != NULL ? url : "",
        .headers = (const char *const *)out->lines,
        .nheaders = n,
        .body = payload,
        .body_len = strlen(payload),
        .timeout_ms = (int)timeout,
    };
    return 0;
}

void tf_http_exec_outcome_free(tf_http_exec_outcome_t *o) {
    free(o->result_json);
    free(o->error_type);
    free(o->error_message);
    *o = (tf_http_exec_outcome_t){0};
}

int tf_http_exec_fail(tf_http_exec_outcome_t *out, const char *type, const char *message,
                      int retryable) {
    *out = (tf_http_exec_outcome_t){.retryable = retryable};
    out->error_type = strdup(type);
    out->error_message = strdup(message != NULL ? message : type);
    if (out->error_type == NULL || out->error_message == NULL) {
        tf_http_exec_outcome_free(out);
        return TF_ENOMEM;
    }
    return 0;
}

/* The result of a 2xx answer; NULL result_json is JSON null. */
static int success(const tf_http_result_t *res, tf_http_exec_outcome_t *out) {
    *out = (tf_http_exec_outcome_t){.ok = 1};
    if (res->body_len == 0 && !res->truncated) {
        return 0;
    }
    if (!res->truncated) {
        /* Without JSON_ALLOW_NUL jansson refuses "\u0000", as jsonb does. */
        json_t *parsed = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, NULL);
        if (parsed != NULL) {
            json_decref(parsed);
            out->result_json = strndup(res->body, res->body_len);
            return out->result_json != NULL ? 0 : TF_ENOMEM;
        }
    }
    size_t len = 0;
    char *text = tf_http_exec_utf8(res->body, res->body_len, &len);
    if (text == NULL) {
        return TF_ENOMEM;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    if (res->truncated) {
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "truncated");
        tf_jbuf_bool(&b, 1);
        tf_jbuf_key(&b, "body");
    }
    tf_jbuf_strn(&b, text, len);
    if (res->truncated) {
        tf_jbuf_obj_close(&b);
    }
    free(text);
    return tf_jbuf_finish(&b, &out->result_json, &len);
}

static int status_error(const tf_http_result_t *res, tf_http_exec_outcome_t *out) {
    char type[32], message[64 + 3 * SNIPPET_MAX];
    long status = res->status;
    snprintf(type, sizeof(type), "http_%ld", status);
    int n = snprintf(message, sizeof(message), "endpoint answered HTTP %ld", status);
    if (res->body_len > 0) {
        size_t len = 0;
        char *snippet = tf_http_exec_utf8(
            res->body, res->body_len < SNIPPET_MAX ? res->body_len : SNIPPET_MAX, &len);
        if (snippet == NULL) {
            return TF_ENOMEM;
        }
        for (size_t i = 0; i < len; i++) {
            snippet[i] = (unsigned char)snippet[i] < 0x20 ? ' ' : snippet[i];
        }
        snprintf(message + n, sizeof(message) - (size_t)n, ": %s", snippet);
        free(snippet);
    }
    return tf_http_exec_fail(out, type, message, status == 408 || status == 429 || status >= 500);
}

int tf_http_exec_outcome(const tf_http_result_t *res, tf_http_exec_outcome_t *out) {
    if (res->error_type != NULL) {
        return tf_http_exec_fail(out, res->error_type, res->error_message,
                                 strcmp(res->error_type, "blocked_address") != 0);
    }
    if (res->status >= 200 && res->status < 300) {
        int rc = success(res, out);
        if (rc != 0) {
            tf_http_exec_outcome_free(out);
        }
        return rc;
    }
    return status_error(res, out);
}
