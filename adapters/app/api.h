/*
 * api.h - small pieces every API handler shares: reading a JSON body,
 * answering with JSON, turning database failures and validation errors into
 * the error bodies of API.md.  Loop thread of the request.
 */
#ifndef TF_ADAPTERS_APP_API_H
#define TF_ADAPTERS_APP_API_H

#include <jansson.h>

#include "adapters/http/server.h"
#include "adapters/json/jbuf.h"
#include "adapters/pg/pool.h"

/* Parses the request body as JSON.  An empty body gives NULL when
 * `required` is 0.  On a problem answers the request (415 when the
 * Content-Type is not application/json, 400 invalid_json with the position,
 * 422 when `object` is set and the top level is not an object) and returns
 * NULL with *answered = 1.  Caller owns the result (json_decref()). */
json_t *tf_api_body(tf_http_req_t *req, int required, int *answered);

/* Answers `status` with the JSON text in `b` (which is consumed). */
void tf_api_respond_jbuf(tf_http_req_t *req, int status, tf_jbuf_t *b);

/* Answers 422 validation_failed with details {"field": field}. */
void tf_api_invalid(tf_http_req_t *req, const char *field, const char *message);

/* Answers the error a failed database batch deserves: 503 when the database
 * is unavailable or the pool is full, 409 on a unique violation, else 500. */
void tf_api_respond_pg_error(tf_http_req_t *req, const tf_pg_reply_t *reply);

/* Same for a tf_pg_submit() return code. */
void tf_api_respond_submit_error(tf_http_req_t *req, int rc);

/* Reads ?limit= (default 50, 1..1000).  Answers 422 and returns -1 when
 * malformed. */
int tf_api_limit(tf_http_req_t *req);

#endif
