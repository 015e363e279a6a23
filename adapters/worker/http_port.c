/*
 * http_port.c - the `http` executor behind the executor port (see
 * http_port.h).  Loop thread only.
 */
#include "adapters/worker/http_port.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "adapters/worker/http_executor.h"
#include "engine/error.h"

struct tf_http_executor {
    tf_executor_t port;
    tf_http_client_t *http;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* One run: the call in flight and whom to tell. */
typedef struct {
    tf_http_call_t *call;
    tf_exec_done_fn done;
    void *arg;
} run_t;

static void call_done(const tf_http_result_t *res, void *arg) {
    run_t *run = arg;
    tf_http_exec_outcome_t out;
    tf_exec_outcome_t outcome;
    if (tf_http_exec_outcome(res, &out) != 0) {
        outcome = (tf_exec_outcome_t){.status = TF_EXEC_FAILED,
                                      .error_type = "internal",
                                      .error_message = "out of memory keeping the response",
                                      .retryable = 1};
        run->done(run->arg, &outcome);
    } else {
        outcome = (tf_exec_outcome_t){.status = out.ok ? TF_EXEC_SUCCEEDED : TF_EXEC_FAILED,
                                      .result = out.result_json,
                                      .error_type = out.error_type,
                                      .error_message = out.error_message,
                                      .retryable = out.retryable};
        run->done(run->arg, &outcome);
        tf_http_exec_outcome_free(&out);
    }
    free(run);
}

static int start(void *ctx, const tf_exec_job_t *job, tf_exec_done_fn done, void *arg, void **out) {
    tf_http_executor_t *e = ctx;
    json_t *executor = job->executor != NULL ? json_loads(job->executor, 0, NULL) : NULL;
    tf_http_job_t hj = {
        .job_id = job->job_id,
        .attempt = job->attempt,
        .payload = job->payload,
        .correlation_id = job->correlation_id,
        .signing_secret_hex = job->signing_secret_hex,
        .timeout_ms = (long)job->timeout_ms,
        .executor = executor,
        .now_s = job->now_ms / 1000,
    };
    tf_http_exec_req_t call;
    run_t *run = malloc(sizeof(*run));
    int rc = run == NULL ? TF_ENOMEM : executor == NULL ? TF_EINVAL : 0;
    if (rc == 0) {
        /* A signing secret that is not hex is a store problem: retryable. */
        rc = tf_http_exec_request(&hj, &call) == 0 ? 0 : TF_EIO;
    }
    if (rc == 0) {
        *run = (run_t){.done = done, .arg = arg};
        rc = tf_http_client_start(e->http, &call.req, call_done, run, &run->call);
        tf_http_exec_request_free(&call);
    }
    json_decref(executor);
    if (rc != 0) {
        free(run);
        return rc;
    }
    *out = run;
    return 0;
}

static void cancel(void *ctx, void *handle) {
    tf_http_executor_t *e = ctx;
    run_t *run = handle;
    tf_http_client_abort(e->http, run->call);
}

int tf_http_executor_create(uv_loop_t *loop, const tf_http_client_config_t *cfg,
                            tf_http_executor_t **out) {
    tf_http_executor_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return TF_ENOMEM;
    }
    int rc = tf_http_client_create(loop, cfg, &e->http);
    if (rc != 0) {
        free(e);
        return rc;
    }
    e->port = (tf_executor_t){.kind = "http", .ctx = e, .start = start, .cancel = cancel};
    *out = e;
    return 0;
}

const tf_executor_t *tf_http_executor_port(tf_http_executor_t *e) {
    return &e->port;
}

static void client_closed(void *arg) {
    tf_http_executor_t *e = arg;
    void (*cb)(void *) = e->closed_cb;
    void *cb_arg = e->closed_arg;
    free(e);
    if (cb != NULL) {
        cb(cb_arg);
    }
}

void tf_http_executor_close(tf_http_executor_t *e, void (*closed_cb)(void *arg), void *arg) {
    e->closed_cb = closed_cb;
    e->closed_arg = arg;
    tf_http_client_close(e->http, client_closed, e);
}
