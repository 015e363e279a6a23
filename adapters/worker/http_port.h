/*
 * http_port.h - the built-in `http` executor as an executor of the
 * registry (engine/executor.h): kind "http", one outbound call per run with
 * the loop's tf_http_client (libcurl on libuv, with the outbound address
 * policy), the request and outcome of http_executor.h around it.
 *
 * cancel() aborts the call; the run still ends with one `done` (error type
 * "aborted").  One per loop; loop thread only.
 */
#ifndef TF_ADAPTERS_WORKER_HTTP_PORT_H
#define TF_ADAPTERS_WORKER_HTTP_PORT_H

#include <uv.h>

#include "adapters/httpclient/client.h"
#include "engine/executor.h"

typedef struct tf_http_executor tf_http_executor_t;

/* Creates the executor and its HTTP client on `loop`.  Caller owns the
 * result; release with tf_http_executor_close() once no run is left. */
int tf_http_executor_create(uv_loop_t *loop, const tf_http_client_config_t *cfg,
                            tf_http_executor_t **out);

/* Its port, valid until it is closed. */
const tf_executor_t *tf_http_executor_port(tf_http_executor_t *e);

/* Closes the HTTP client (aborting what still runs), then calls
 * `closed_cb` (may be NULL) and frees `e`. */
void tf_http_executor_close(tf_http_executor_t *e, void (*closed_cb)(void *arg), void *arg);

#endif
