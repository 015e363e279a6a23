/*
 * store.c - opening and closing the Postgres store, and the helpers its
 * parts share (see store.h, store_internal.h).  Loop thread of the store.
 */
#include "adapters/pg/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg/pgtime.h"
#include "engine/error.h"

/* Every statement of the store, for the pool to prepare. */
static int collect(tf_pg_prepared_t **out, size_t *n) {
    const struct {
        const tf_pg_prepared_t *list;
        size_t count;
    } parts[] = {
        {tf__pg_jobs_prepared, tf__pg_jobs_prepared_count},
        {tf__pg_work_prepared, tf__pg_work_prepared_count},
        {tf__pg_tenants_prepared, tf__pg_tenants_prepared_count},
        {tf__pg_scripts_prepared, tf__pg_scripts_prepared_count},
        {tf__pg_rules_prepared, tf__pg_rules_prepared_count},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        total += parts[i].count;
    }
    tf_pg_prepared_t *all = calloc(total, sizeof(*all));
    if (all == NULL) {
        return TF_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        memcpy(all + k, parts[i].list, parts[i].count * sizeof(*all));
        k += parts[i].count;
    }
    *out = all;
    *n = total;
    return 0;
}

int tf_pg_store_open(uv_loop_t *loop, const tf_pg_store_config_t *cfg, tf_metrics_t *metrics,
                     tf_log_t *log, tf_pg_store_t **out) {
    tf_pg_store_t *s = calloc(1, sizeof(*s));
    tf_pg_prepared_t *statements = NULL;
    size_t nstatements = 0;
    if (s == NULL) {
        return TF_ENOMEM;
    }
    int rc = collect(&statements, &nstatements);
    if (rc == 0) {
        tf_pg_config_t pool_cfg = {
            .conninfo = cfg->conninfo, .size = cfg->size, .pool_name = cfg->pool_name};
        rc = tf_pg_pool_create(loop, &pool_cfg, statements, nstatements, metrics, log, &s->pool);
    }
    free(statements); /* the pool keeps its own copy */
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->log = log;
    s->jobs.ctx = s;
    s->tenants.ctx = s;
    tf__pg_jobs_bind(&s->jobs);
    tf__pg_work_bind(&s->jobs);
    tf__pg_tenants_bind(&s->tenants);
    s->scripts.ctx = s;
    tf__pg_scripts_bind(&s->scripts);
    s->rules.ctx = s;
    tf__pg_rules_bind(&s->rules);
    *out = s;
    return 0;
}

const tf_job_store_t *tf_pg_store_jobs(const tf_pg_store_t *store) {
    return &store->jobs;
}

const tf_tenant_store_t *tf_pg_store_tenants(const tf_pg_store_t *store) {
    return &store->tenants;
}

const tf_script_store_t *tf_pg_store_scripts(const tf_pg_store_t *store) {
    return &store->scripts;
}

const tf_rule_store_t *tf_pg_store_rules(const tf_pg_store_t *store) {
    return &store->rules;
}

typedef struct {
    tf_pg_store_t *store;
    void (*cb)(void *arg);
    void *arg;
} closing_t;

static void pool_closed(void *arg) {
    closing_t *c = arg;
    void (*cb)(void *) = c->cb;
    void *cb_arg = c->arg;
    free(c->store);
    free(c);
    if (cb != NULL) {
        cb(cb_arg);
    }
}

void tf_pg_store_close(tf_pg_store_t *store, void (*closed_cb)(void *arg), void *arg) {
    closing_t *c = malloc(sizeof(*c));
    if (c == NULL) {
        /* Nothing to remember the callback in: close without it, then tell. */
        tf_pg_pool_close(store->pool, NULL, NULL);
        free(store);
        if (closed_cb != NULL) {
            closed_cb(arg);
        }
        return;
    }
    *c = (closing_t){.store = store, .cb = closed_cb, .arg = arg};
    tf_pg_pool_close(store->pool, pool_closed, c);
}

/* ---- parameters ---- */

const char *tf__pg_time_param(int64_t ms, tf__pg_time_t *buf) {
    if (ms == TF_TIME_NONE || tf_time_format(ms, buf->text) != 0) {
        return NULL;
    }
    return buf->text;
}

const char *tf__pg_int_param(int64_t v, tf__pg_int_t *buf) {
    snprintf(buf->text, sizeof(buf->text), "%lld", (long long)v);
    return buf->text;
}

const char *tf__pg_states_param(tf_job_state_set_t set, tf__pg_states_t *buf) {
    size_t used = 0;
    buf->text[used++] = '{';
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        if (set & TF_JOB_STATE_BIT(s)) {
            used += (size_t)snprintf(buf->text + used, sizeof(buf->text) - used, "%s%d",
                                     used > 1 ? "," : "", s);
        }
    }
    snprintf(buf->text + used, sizeof(buf->text) - used, "}");
    return buf->text;
}

char *tf__pg_uuid_array(const char *const *ids, size_t n) {
    char *text = malloc(n * (TF_UUID_STR_LEN + 1) + 3);
    if (text == NULL) {
        return NULL;
    }
    size_t len = 0;
    text[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == NULL || strlen(ids[i]) != TF_UUID_STR_LEN) {
            free(text);
            return NULL;
        }
        if (i > 0) {
            text[len++] = ',';
        }
        memcpy(text + len, ids[i], TF_UUID_STR_LEN);
        len += TF_UUID_STR_LEN;
    }
    memcpy(text + len, "}", 2);
    return text;
}

char *tf__pg_text_array(const char *const *items, size_t n) {
    size_t need = 3;
    for (size_t i = 0; i < n; i++) {
        need += items[i] != NULL ? 2 * strlen(items[i]) + 3 : 5;
    }
    char *text = malloc(need);
    if (text == NULL) {
        return NULL;
    }
    size_t len = 0;
    text[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            text[len++] = ',';
        }
        if (items[i] == NULL) {
            memcpy(text + len, "NULL", 4);
            len += 4;
            continue;
        }
        text[len++] = '"';
        for (const char *c = items[i]; *c != '\0'; c++) {
            if (*c == '"' || *c == '\\') {
                text[len++] = '\\';
            }
            text[len++] = *c;
        }
        text[len++] = '"';
    }
    memcpy(text + len, "}", 2);
    return text;
}

/* ---- decoding ---- */

int64_t tf__pg_int(const PGresult *res, int row, int col, int64_t if_null) {
    return PQgetisnull(res, row, col) ? if_null : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int tf__pg_time(const PGresult *res, int row, int col, int64_t *out) {
    if (PQgetisnull(res, row, col)) {
        *out = TF_TIME_NONE;
        return 0;
    }
    return tf_pgtime_parse(PQgetvalue(res, row, col), out) == 0 ? 0 : TF_EIO;
}

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

int tf__pg_job(const PGresult *res, int row, int col, tf_job_t *out) {
    int64_t state = tf__pg_int(res, row, col + C_STATE, -1);
    if (state < 0 || state >= TF_JOB_STATE_COUNT) {
        return TF_EIO;
    }
    *out = (tf_job_t){
        .id = tf__pg_text(res, row, col + C_ID),
        .tenant_id = tf__pg_text(res, row, col + C_TENANT),
        .queue = tf__pg_text(res, row, col + C_QUEUE),
        .type = tf__pg_text(res, row, col + C_TYPE),
        .state = (tf_job_state_t)state,
        .priority = (int)tf__pg_int(res, row, col + C_PRIORITY, 0),
        .payload = tf__pg_text(res, row, col + C_PAYLOAD),
        .attempts = (int)tf__pg_int(res, row, col + C_ATTEMPTS, 0),
        .max_attempts = (int)tf__pg_int(res, row, col + C_MAX_ATTEMPTS, 0),
        .last_error_type = tf__pg_text(res, row, col + C_ERROR_TYPE),
        .last_error_message = tf__pg_text(res, row, col + C_ERROR_MESSAGE),
        .result = tf__pg_text(res, row, col + C_RESULT),
        .correlation_id = tf__pg_text(res, row, col + C_CORRELATION),
        .parent_id = tf__pg_text(res, row, col + C_PARENT),
        .rule_id = tf__pg_text(res, row, col + C_RULE),
        .depends_on = tf__pg_text(res, row, col + C_DEPENDS_ON),
        .retry_policy = tf__pg_text(res, row, col + C_RETRY_POLICY),
        .executor = tf__pg_text(res, row, col + C_EXECUTOR),
        .metadata = tf__pg_text(res, row, col + C_METADATA),
        .timeout_ms = tf__pg_int(res, row, col + C_TIMEOUT, -1),
        .idempotency_key = tf__pg_text(res, row, col + C_IDEMPOTENCY),
    };
    int rc = tf__pg_time(res, row, col + C_RUN_AT, &out->run_at_ms);
    rc = rc != 0 ? rc : tf__pg_time(res, row, col + C_CREATED_AT, &out->created_at_ms);
    rc = rc != 0 ? rc : tf__pg_time(res, row, col + C_UPDATED_AT, &out->updated_at_ms);
    rc = rc != 0 ? rc : tf__pg_time(res, row, col + C_STARTED_AT, &out->started_at_ms);
    return rc != 0 ? rc : tf__pg_time(res, row, col + C_FINISHED_AT, &out->finished_at_ms);
}

int tf__pg_rows(const tf_pg_reply_t *reply, size_t size,
                int (*decode)(const PGresult *res, int row, void *item), void **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (reply->status != 0) {
        return reply->status;
    }
    const PGresult *res = reply->results[0];
    int rows = PQntuples(res);
    if (rows == 0) {
        return 0;
    }
    char *items = calloc((size_t)rows, size);
    if (items == NULL) {
        return TF_ENOMEM;
    }
    size_t kept = 0;
    for (int row = 0; row < rows; row++) {
        int rc = decode(res, row, items + kept * size);
        if (rc < 0) {
            free(items);
            return rc;
        }
        kept += rc == 0;
    }
    if (kept == 0) {
        free(items);
        items = NULL;
    }
    *out = items;
    *n = kept;
    return 0;
}

int tf__pg_job_row(const PGresult *res, int row, void *item) {
    return tf__pg_job(res, row, 0, item);
}

int tf__pg_run(tf_pg_store_t *s, const char *name, const char *const *values, int nparams,
               tf_pg_cb done, void *arg) {
    tf_pg_stmt_t stmt = {.prepared = name, .nparams = nparams, .values = values};
    return tf_pg_submit(s->pool, &stmt, 1, 0, done, arg);
}

int tf__pg_run_pending(tf_pg_store_t *s, const char *name, const char *const *values, int nparams,
                       tf_pg_cb done, void (*cb)(void), void *arg) {
    tf__pg_pending_t *p = malloc(sizeof(*p));
    if (p == NULL) {
        return TF_ENOMEM;
    }
    p->cb = cb;
    p->arg = arg;
    int rc = tf__pg_run(s, name, values, nparams, done, p);
    if (rc != 0) {
        free(p);
    }
    return rc;
}

char *tf__pg_jbuf_text(tf_jbuf_t *b) {
    char *text = NULL;
    size_t len = 0;
    return tf_jbuf_finish(b, &text, &len) == 0 ? text : NULL;
}
