/*
 * worker_api.c - heartbeat, complete, fail and the batch ack of the
 * external-worker API (see worker_api.h); the claim is in worker_claim.c.
 *
 * Every route authenticates first (a tenant key, or the admin token for
 * every tenant or, with TaskFlow-Tenant, for one), then checks the whole
 * request (a job id that is not a UUID is 404; a bad body is 400, 415 or
 * 422 naming the field) before anything reaches the database, so a refused
 * request changes nothing.  The state changes are the finish use case's
 * (adapters/usecases/finish.h): one tf_uc_ack() per request, whatever the
 * number of acks, which applies them in one transaction and judges each on
 * its own (stale lease token: 409 or ok=false "conflict"; not the caller's
 * job: 404 or "not_found").
 *
 * The attempt's worker is the optional `worker_id` of the body (the one
 * that claimed, normally); it is recorded in the attempt and as the actor
 * "worker:<id>" of the transition.
 *
 * Handlers run on the loop thread of their request; the per-request state
 * that outlives the handler is one heap block that the work callback frees.
 */
#include "adapters/api/worker_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/api/routes.h"
#include "adapters/usecases/finish.h"
#include "adapters/usecases/claim.h"
#include "adapters/usecases/lease.h"
#include "engine/error.h"
#include "engine/timefmt.h"

#define TF_HEARTBEAT_LEASE_DEFAULT_MS 30000
#define TF_ERROR_TYPE_MAX 128
#define TF_ERROR_MESSAGE_MAX 16384

static const char STALE_MESSAGE[] = "the lease token is not current: the attempt already ended, "
                                    "its lease expired or the job was cancelled";

/* ---- body checks (shared with worker_claim.c) ---- */

static int verr(tf_verr_t *err, const char *prefix, const char *key, const char *message) {
    snprintf(err->field, sizeof(err->field), "%.60s%.99s", prefix, key);
    snprintf(err->message, sizeof(err->message), "%s%s %s", prefix, key, message);
    return TF_EINVAL;
}

int tf__worker_check_fields(const json_t *obj, const char *prefix, const char *const *allowed,
                            tf_verr_t *err) {
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        (void)value;
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0) {
            i++;
        }
        if (allowed[i] == NULL) {
            char name[100];
            snprintf(name, sizeof(name), "%.96s", key);
            return verr(err, prefix, name, "is not a known field");
        }
    }
    return 0;
}

int tf__worker_read_int(const json_t *obj, const char *prefix, const char *key, int min, int max,
                        int *out, tf_verr_t *err) {
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        return 0;
    }
    /* An integral JSON number, as everywhere in the API: 10 and 10.0, not
     * 10.5 or "10". */
    double d = json_is_integer(v) ? (double)json_integer_value(v)
               : json_is_real(v)  ? json_real_value(v)
                                  : NAN;
    if (!(d >= min && d <= max) || d != floor(d)) {
        char message[96];
        snprintf(message, sizeof(message), "must be an integer from %d to %d", min, max);
        return verr(err, prefix, key, message);
    }
    *out = (int)d;
    return 0;
}

int tf__worker_read_id(const json_t *obj, const char *prefix, const char *key, int required,
                       char out[TF_WORKER_ID_MAX + 1], tf_verr_t *err) {
    const json_t *v = json_object_get(obj, key);
    out[0] = '\0';
    if (v == NULL && !required) {
        return 0;
    }
    const char *text = json_string_value(v);
    size_t len = text != NULL ? strlen(text) : 0;
    int ok = text != NULL && len >= 1 && len <= TF_WORKER_ID_MAX && len == json_string_length(v);
    for (size_t i = 0; ok && i < len; i++) {
        ok = (unsigned char)text[i] >= 0x20 && text[i] != 0x7f;
    }
    if (!ok) {
        return verr(err, prefix, key,
                    "must be a string of 1 to 128 bytes without control characters");
    }
    memcpy(out, text, len + 1);
    return 0;
}

/* A required UUID member, canonical into `out`. */
static int read_uuid(const json_t *obj, const char *prefix, const char *key,
                     char out[TF_UUID_STR_LEN + 1], tf_verr_t *err) {
    tf_uuid_t id;
    const char *text = json_string_value(json_object_get(obj, key));
    if (text == NULL || tf_uuid_parse(text, &id) != 0) {
        return verr(err, prefix, key, "must be a UUID");
    }
    tf_uuid_format(&id, out);
    return 0;
}

/* The `error` member of a failure: {"type", "message"?, "retryable"?}.
 * Strings point into `obj`. */
static int read_error(const json_t *obj, const char *prefix, tf_ack_t *a, tf_verr_t *err) {
    static const char *const allowed[] = {"type", "message", "retryable", NULL};
    const json_t *e = json_object_get(obj, "error");
    char inner[200];
    if (!json_is_object(e)) {
        return verr(err, prefix, "error",
                    "must be an object {\"type\", \"message\", \"retryable\"}");
    }
    snprintf(inner, sizeof(inner), "%serror.", prefix);
    int rc = tf__worker_check_fields(e, inner, allowed, err);
    if (rc != 0) {
        return rc;
    }
    const json_t *type = json_object_get(e, "type");
    const json_t *message = json_object_get(e, "message");
    const json_t *retryable = json_object_get(e, "retryable");
    size_t tlen = json_string_length(type);
    if (!json_is_string(type) || tlen == 0 || tlen > TF_ERROR_TYPE_MAX ||
        strlen(json_string_value(type)) != tlen) {
        return verr(err, inner, "type", "must be a string of 1 to 128 bytes");
    }
    if (message != NULL &&
        (!json_is_string(message) || json_string_length(message) > TF_ERROR_MESSAGE_MAX ||
         strlen(json_string_value(message)) != json_string_length(message))) {
        return verr(err, inner, "message", "must be a string of at most 16384 bytes");
    }
    if (retryable != NULL && !json_is_boolean(retryable)) {
        return verr(err, inner, "retryable", "must be true or false");
    }
    a->ok = 0;
    a->error_type = json_string_value(type);
    a->error_message = json_string_value(message);
    a->retryable = retryable == NULL || json_is_true(retryable);
    return 0;
}

/* The outcome members of one ack: exactly one of `result` (any JSON) and
 * `error`.  *result_json gets the result's text (caller frees). */
static int read_outcome(const json_t *obj, const char *prefix, int require_error, tf_ack_t *a,
                        char **result_json, tf_verr_t *err) {
    const json_t *result = json_object_get(obj, "result");
    const json_t *error = json_object_get(obj, "error");
    *result_json = NULL;
    if (require_error || (error != NULL && result == NULL)) {
        return read_error(obj, prefix, a, err);
    }
    if (error != NULL) {
        return verr(err, prefix, "error",
                    "cannot be given with result: an ack is one or the other");
    }
    if (result == NULL && prefix[0] != '\0') {
        return verr(err, prefix, "result", "or error is required");
    }
    a->ok = 1;
    if (result != NULL) {
        *result_json = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
        if (*result_json == NULL) {
            return TF_ENOMEM;
        }
    }
    a->result_json = *result_json;
    return 0;
}

/* ---- shared request plumbing ---- */

static int path_job_id(tf_http_req_t *req, char out[TF_ID_LEN]) {
    return tf_api_path_id(req, "id", "no such job", out);
}

static const char *tenant_or_null(const tf_principal_t *who) {
    return who->tenant_id[0] != '\0' ? who->tenant_id : NULL;
}

/* Answers {"id", key: value} with status 200. */
static void answer_pair(tf_http_req_t *req, const char *id, const char *key, const char *value) {
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "id");
    tf_jbuf_str(&b, id);
    tf_jbuf_key(&b, key);
    tf_jbuf_str(&b, value);
    tf_jbuf_obj_close(&b);
    tf_api_respond_jbuf(req, 200, &b);
}

/* Answers a single job's refusal; returns 1 when `status` was one. */
static int answer_refusal(tf_http_req_t *req, int status) {
    if (status == TF_ESTALE) {
        tf_http_respond_error(req, 409, "conflict", STALE_MESSAGE, NULL);
        return 1;
    }
    if (status == TF_ENOTFOUND) {
        tf_http_respond_error(req, 404, "not_found", "no such job", NULL);
        return 1;
    }
    return 0;
}

/* The state of one job's request once the handler returned. */
typedef struct {
    tf_http_req_t *req;
    char id[TF_ID_LEN];
} one_t;

static one_t *one_new(tf_http_req_t *req, const char *id) {
    one_t *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        tf_http_respond_error(req, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    o->req = req;
    memcpy(o->id, id, sizeof(o->id));
    return o;
}

/* ---- POST /v1/jobs/{id}/heartbeat ---- */

static void heartbeat_done(void *arg, int status, int64_t lease_expires_at_ms) {
    one_t *o = arg;
    char at[TF_TIME_STR_LEN + 1];
    if (status == 0 && tf_time_format(lease_expires_at_ms, at) != 0) {
        status = TF_EIO;
    }
    if (status == 0) {
        answer_pair(o->req, o->id, "lease_expires_at", at);
    } else if (!answer_refusal(o->req, status)) {
        tf_api_respond_status(o->req, status);
    }
    free(o);
}

static void heartbeat(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    static const char *const allowed[] = {"lease_token", "lease_ms", NULL};
    char id[TF_ID_LEN], token[TF_UUID_STR_LEN + 1];
    int lease_ms = TF_HEARTBEAT_LEASE_DEFAULT_MS;
    if (path_job_id(req, id) != 0) {
        return;
    }
    json_t *body = tf_api_object_body(req, "a JSON object with lease_token is required");
    if (body == NULL) {
        return;
    }
    tf_verr_t err;
    int rc = tf__worker_check_fields(body, "", allowed, &err);
    if (rc == 0) {
        rc = read_uuid(body, "", "lease_token", token, &err);
    }
    if (rc == 0) {
        rc = tf__worker_read_int(body, "", "lease_ms", TF_LEASE_MIN_MS, TF_LEASE_MAX_MS, &lease_ms,
                                 &err);
    }
    json_decref(body);
    if (rc != 0) {
        tf_api_invalid(req, err.field, err.message);
        return;
    }
    one_t *o = one_new(req, id);
    if (o == NULL) {
        return;
    }
    rc = tf_uc_heartbeat(lp->uc, tenant_or_null(who), id, token, lease_ms, heartbeat_done, o);
    if (rc != 0) {
        free(o);
        tf_api_respond_status(req, rc);
    }
}

/* ---- POST /v1/jobs/{id}/complete and /fail ---- */

static void finish_one_done(void *arg, int status, const tf_ack_result_t *results, size_t n) {
    one_t *o = arg;
    if (status == 0 && n != 1) {
        status = TF_EIO;
    }
    if (status != 0) {
        tf_api_respond_status(o->req, status);
    } else if (results[0].status == 0) {
        answer_pair(o->req, o->id, "state", tf_job_state_name(results[0].state));
    } else if (!answer_refusal(o->req, results[0].status)) {
        tf_api_respond_status(o->req, results[0].status != 0 ? results[0].status : TF_EIO);
    }
    free(o);
}

/* complete (failure 0) or fail (failure 1) of the job in the path. */
static void finish_one(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who,
                       int failure) {
    static const char *const complete_fields[] = {"lease_token", "result", "worker_id", NULL};
    static const char *const fail_fields[] = {"lease_token", "error", "worker_id", NULL};
    char id[TF_ID_LEN], token[TF_UUID_STR_LEN + 1], worker[TF_WORKER_ID_MAX + 1];
    char *result = NULL;
    if (path_job_id(req, id) != 0) {
        return;
    }
    json_t *body =
        tf_api_object_body(req, failure ? "a JSON object with lease_token and error is required"
                                        : "a JSON object with lease_token is required");
    if (body == NULL) {
        return;
    }
    tf_verr_t err;
    tf_ack_t a = {.tenant_id = tenant_or_null(who), .job_id = id, .lease_token = token};
    int rc = tf__worker_check_fields(body, "", failure ? fail_fields : complete_fields, &err);
    if (rc == 0) {
        rc = read_uuid(body, "", "lease_token", token, &err);
    }
    if (rc == 0) {
        rc = tf__worker_read_id(body, "", "worker_id", 0, worker, &err);
        a.worker_id = worker[0] != '\0' ? worker : NULL;
    }
    if (rc == 0) {
        rc = read_outcome(body, "", failure, &a, &result, &err);
    }
    one_t *o = rc == 0 ? one_new(req, id) : NULL;
    if (o != NULL) {
        rc = tf_uc_ack(lp->uc, &a, 1, finish_one_done, o);
        if (rc != 0) {
            free(o);
            tf_api_respond_status(req, rc);
        }
    } else if (rc == TF_EINVAL) {
        tf_api_invalid(req, err.field, err.message);
    } else if (rc != 0) {
        tf_api_respond_status(req, rc);
    }
    free(result);
    json_decref(body);
}

static void complete(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    finish_one(req, lp, who, 0);
}

static void fail(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    finish_one(req, lp, who, 1);
}

/* ---- POST /v1/jobs/ack ---- */

typedef struct {
    char id[TF_ID_LEN];
    char token[TF_UUID_STR_LEN + 1];
    char *result;
} ack_item_t;

typedef struct {
    tf_http_req_t *req;
    size_t n;
    ack_item_t *items;
    tf_ack_t *acks;
} ack_req_t;

static void ack_req_free(ack_req_t *r) {
    for (size_t i = 0; r->items != NULL && i < r->n; i++) {
        free(r->items[i].result);
    }
    free(r->items);
    free(r->acks);
    free(r);
}

static void ack_write_result(tf_jbuf_t *b, const char *id, const tf_ack_result_t *res) {
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "id");
    tf_jbuf_str(b, id);
    tf_jbuf_key(b, "ok");
    tf_jbuf_bool(b, res->status == 0);
    if (res->status == 0) {
        tf_jbuf_key(b, "state");
        tf_jbuf_str(b, tf_job_state_name(res->state));
    } else {
        int stale = res->status == TF_ESTALE;
        tf_jbuf_key(b, "error");
        tf_jbuf_obj_open(b);
        tf_jbuf_key(b, "code");
        tf_jbuf_str(b, stale ? "conflict" : "not_found");
        tf_jbuf_key(b, "message");
        tf_jbuf_str(b, stale ? STALE_MESSAGE : "no such job");
        tf_jbuf_obj_close(b);
    }
    tf_jbuf_obj_close(b);
}

static void ack_done(void *arg, int status, const tf_ack_result_t *results, size_t n) {
    ack_req_t *r = arg;
    if (status == 0 && n != r->n) {
        status = TF_EIO;
    }
    if (status != 0) {
        tf_api_respond_status(r->req, status);
        ack_req_free(r);
        return;
    }
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "results");
    tf_jbuf_arr_open(&b);
    for (size_t i = 0; i < n; i++) {
        tf_ack_result_t res = results[i];
        if (res.status != 0 && res.status != TF_ESTALE) {
            res.status = TF_ENOTFOUND;
        }
        ack_write_result(&b, r->items[i].id, &res);
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_obj_close(&b);
    tf_api_respond_jbuf(r->req, 200, &b);
    ack_req_free(r);
}

/* Reads acks[i] into r->items[i] / r->acks[i]. */
static int read_ack(const json_t *v, size_t i, ack_req_t *r, tf_verr_t *err) {
    static const char *const allowed[] = {"id", "lease_token", "result", "error", NULL};
    char prefix[32], self[32];
    snprintf(prefix, sizeof(prefix), "acks[%zu].", i);
    snprintf(self, sizeof(self), "acks[%zu]", i);
    if (!json_is_object(v)) {
        return verr(err, "", self,
                    "must be an object {\"id\", \"lease_token\", \"result\" | \"error\"}");
    }
    ack_item_t *it = &r->items[i];
    tf_ack_t *a = &r->acks[i];
    int rc = tf__worker_check_fields(v, prefix, allowed, err);
    if (rc == 0) {
        rc = read_uuid(v, prefix, "id", it->id, err);
    }
    if (rc == 0) {
        rc = read_uuid(v, prefix, "lease_token", it->token, err);
    }
    if (rc == 0) {
        rc = read_outcome(v, prefix, 0, a, &it->result, err);
    }
    for (size_t j = 0; rc == 0 && j < i; j++) {
        if (strcmp(r->items[j].id, it->id) == 0) {
            rc = verr(err, prefix, "id", "repeats the job of an earlier ack");
        }
    }
    a->job_id = it->id;
    a->lease_token = it->token;
    return rc;
}

/* Reads the whole ack body into `r`.  Strings of r->acks point into `body`
 * and `r`. */
static int read_acks(const json_t *body, ack_req_t *r, char worker[TF_WORKER_ID_MAX + 1],
                     tf_verr_t *err) {
    static const char *const allowed[] = {"acks", "worker_id", NULL};
    int rc = tf__worker_check_fields(body, "", allowed, err);
    if (rc == 0) {
        rc = tf__worker_read_id(body, "", "worker_id", 0, worker, err);
    }
    const json_t *acks = json_object_get(body, "acks");
    size_t n = json_is_array(acks) ? json_array_size(acks) : 0;
    if (rc == 0 && (n < 1 || n > TF_ACK_MAX)) {
        rc = verr(err, "", "acks", "must be an array of 1 to 1000 acks");
    }
    if (rc != 0) {
        return rc;
    }
    r->items = calloc(n, sizeof(*r->items));
    r->acks = calloc(n, sizeof(*r->acks));
    if (r->items == NULL || r->acks == NULL) {
        return TF_ENOMEM;
    }
    r->n = n;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = read_ack(json_array_get(acks, i), i, r, err);
    }
    return rc;
}

static void ack(tf_http_req_t *req, tf_api_loop_t *lp, const tf_principal_t *who) {
    json_t *body = tf_api_object_body(req, "a JSON object with acks is required");
    if (body == NULL) {
        return;
    }
    char worker[TF_WORKER_ID_MAX + 1] = "";
    tf_verr_t err;
    ack_req_t *r = calloc(1, sizeof(*r));
    int rc = r != NULL ? read_acks(body, r, worker, &err) : TF_ENOMEM;
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        r->acks[i].tenant_id = tenant_or_null(who);
        r->acks[i].worker_id = worker[0] != '\0' ? worker : NULL;
    }
    if (rc == 0) {
        r->req = req;
        rc = tf_uc_ack(lp->uc, r->acks, r->n, ack_done, r);
        if (rc != 0) {
            tf_api_respond_status(req, rc);
        }
    } else if (rc == TF_EINVAL) {
        tf_api_invalid(req, err.field, err.message);
    } else {
        tf_api_respond_status(req, rc);
    }
    if (rc != 0 && r != NULL) {
        ack_req_free(r);
    }
    json_decref(body);
}

/* ---- routes ---- */

const tf_api_route_t tf_api_worker_routes[] = {
    {"POST", "/v1/queues/{queue}/claim", TF_ROUTE_ANY_TENANT, tf__worker_claim},
    {"POST", "/v1/jobs/{id}/heartbeat", TF_ROUTE_ANY_TENANT, heartbeat},
    {"POST", "/v1/jobs/{id}/complete", TF_ROUTE_ANY_TENANT, complete},
    {"POST", "/v1/jobs/{id}/fail", TF_ROUTE_ANY_TENANT, fail},
    {"POST", "/v1/jobs/ack", TF_ROUTE_ANY_TENANT, ack},
};
const size_t tf_api_worker_routes_count =
    sizeof(tf_api_worker_routes) / sizeof(tf_api_worker_routes[0]);
