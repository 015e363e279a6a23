/*
 * job_json.c - job rows to API JSON (see job_json.h).
 */
#include "adapters/app/job_json.h"

#include <stdlib.h>
#include <string.h>

#include "adapters/json/retry_json.h"
#include "adapters/pg/pgtime.h"
#include "engine/error.h"
#include "engine/job.h"

enum {
    C_ID,
    C_TENANT,
    C_QUEUE,
    C_TYPE,
    C_STATE,
    C_PRIORITY,
    C_PAYLOAD,
    C_ATTEMPTS,
    C_MAX_ATTEMPTS,
    C_RUN_AT,
    C_CREATED_AT,
    C_UPDATED_AT,
    C_STARTED_AT,
    C_FINISHED_AT,
    C_ERROR_TYPE,
    C_ERROR_MESSAGE,
    C_RESULT,
    C_CORRELATION,
    C_PARENT,
    C_RULE,
    C_DEPENDS_ON,
    C_RETRY_POLICY,
    C_EXECUTOR,
    C_METADATA,
    C_TIMEOUT,
    C_IDEMPOTENCY,
};

/* Writes a nullable text column as a string or null. */
static void text_or_null(tf_jbuf_t *b, const PGresult *res, int row, int col) {
    if (PQgetisnull(res, row, col)) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_strn(b, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
    }
}

static void raw_or(tf_jbuf_t *b, const PGresult *res, int row, int col, const char *fallback) {
    if (PQgetisnull(res, row, col)) {
        tf_jbuf_raw(b, fallback);
    } else {
        tf_jbuf_rawn(b, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
    }
}

int tf_job_json_time(tf_jbuf_t *b, const PGresult *res, int row, int col) {
    if (PQgetisnull(res, row, col)) {
        tf_jbuf_null(b);
        return 0;
    }
    char out[TF_TIME_STR_LEN + 1];
    if (tf_pgtime_to_rfc3339(PQgetvalue(res, row, col), out) != 0) {
        return TF_EIO;
    }
    tf_jbuf_str(b, out);
    return 0;
}

/* "{a,b}" (PostgreSQL uuid[] text) as a JSON array of strings. */
static void uuid_array(tf_jbuf_t *b, const char *text) {
    tf_jbuf_arr_open(b);
    const char *p = text[0] == '{' ? text + 1 : text;
    while (*p != '\0' && *p != '}') {
        const char *end = strpbrk(p, ",}");
        if (end == NULL) {
            break;
        }
        tf_jbuf_strn(b, p, (size_t)(end - p));
        p = *end == ',' ? end + 1 : end;
    }
    tf_jbuf_arr_close(b);
}

static void key_int(tf_jbuf_t *b, const char *key, const PGresult *res, int row, int col) {
    tf_jbuf_key(b, key);
    if (PQgetisnull(res, row, col)) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_int(b, strtoll(PQgetvalue(res, row, col), NULL, 10));
    }
}

static int write_times(tf_jbuf_t *b, const PGresult *res, int row, int col) {
    static const char *const keys[] = {"run_at", "created_at", "updated_at", "started_at",
                                       "finished_at"};
    static const int cols[] = {C_RUN_AT, C_CREATED_AT, C_UPDATED_AT, C_STARTED_AT, C_FINISHED_AT};
    for (size_t i = 0; i < 5; i++) {
        tf_jbuf_key(b, keys[i]);
        if (tf_job_json_time(b, res, row, col + cols[i]) != 0) {
            return TF_EIO;
        }
    }
    return 0;
}

int tf_job_json_write(tf_jbuf_t *b, const PGresult *res, int row, int col) {
    const char *state =
        tf_job_state_name((tf_job_state_t)atoi(PQgetvalue(res, row, col + C_STATE)));
    if (state == NULL) {
        return TF_EIO;
    }
    tf_jbuf_obj_open(b);
    tf_jbuf_key(b, "id");
    text_or_null(b, res, row, col + C_ID);
    tf_jbuf_key(b, "tenant_id");
    text_or_null(b, res, row, col + C_TENANT);
    tf_jbuf_key(b, "queue");
    text_or_null(b, res, row, col + C_QUEUE);
    tf_jbuf_key(b, "type");
    text_or_null(b, res, row, col + C_TYPE);
    tf_jbuf_key(b, "state");
    tf_jbuf_str(b, state);
    key_int(b, "priority", res, row, col + C_PRIORITY);
    tf_jbuf_key(b, "payload");
    raw_or(b, res, row, col + C_PAYLOAD, "{}");
    key_int(b, "attempts", res, row, col + C_ATTEMPTS);
    key_int(b, "max_attempts", res, row, col + C_MAX_ATTEMPTS);
    if (write_times(b, res, row, col) != 0) {
        return TF_EIO;
    }
    tf_jbuf_key(b, "last_error");
    if (PQgetisnull(res, row, col + C_ERROR_TYPE)) {
        tf_jbuf_null(b);
    } else {
        tf_jbuf_obj_open(b);
        tf_jbuf_key(b, "type");
        text_or_null(b, res, row, col + C_ERROR_TYPE);
        tf_jbuf_key(b, "message");
        text_or_null(b, res, row, col + C_ERROR_MESSAGE);
        tf_jbuf_obj_close(b);
    }
    tf_jbuf_key(b, "result");
    raw_or(b, res, row, col + C_RESULT, NULL);
    tf_jbuf_key(b, "correlation_id");
    text_or_null(b, res, row, col + C_CORRELATION);
    tf_jbuf_key(b, "parent_id");
    text_or_null(b, res, row, col + C_PARENT);
    tf_jbuf_key(b, "rule_id");
    text_or_null(b, res, row, col + C_RULE);
    tf_jbuf_key(b, "depends_on");
    uuid_array(b, PQgetvalue(res, row, col + C_DEPENDS_ON));
    tf_jbuf_key(b, "retry_policy");
    raw_or(b, res, row, col + C_RETRY_POLICY, TF_RETRY_POLICY_DEFAULT_JSON);
    tf_jbuf_key(b, "executor");
    raw_or(b, res, row, col + C_EXECUTOR, NULL);
    tf_jbuf_key(b, "metadata");
    raw_or(b, res, row, col + C_METADATA, "{}");
    key_int(b, "timeout_ms", res, row, col + C_TIMEOUT);
    tf_jbuf_key(b, "idempotency_key");
    text_or_null(b, res, row, col + C_IDEMPOTENCY);
    tf_jbuf_obj_close(b);
    return 0;
}

int tf_job_json_write_all(tf_jbuf_t *b, const PGresult *res, int col) {
    tf_jbuf_arr_open(b);
    for (int i = 0; i < PQntuples(res); i++) {
        if (tf_job_json_write(b, res, i, col) != 0) {
            return TF_EIO;
        }
    }
    tf_jbuf_arr_close(b);
    return 0;
}
