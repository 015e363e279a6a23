/*
 * admin.c - the operator's API (see admin.h and docs/openapi.json): tenants,
 * their API keys, queues and per-tenant queue caps under /v1/admin/.
 *
 * Every route first authenticates the admin token (a tenant key gets 401),
 * then checks the whole request (path, query, body) before it touches the
 * database, so a bad request changes nothing.  Then it runs exactly one
 * statement (one round trip) and answers from the database callback, so a
 * write is never reported before Postgres committed it.  Bodies are checked
 * against a table of field rules per operation; an unknown field is refused
 * by name.  Answers are written from result rows by column tables.
 *
 * Handlers run on the loop thread of their request; per-request state lives
 * in one heap-allocated admin_op_t that the database callback frees.
 */
#include "adapters/app/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "adapters/app/api.h"
#include "adapters/app/cursor.h"
#include "adapters/app/job_input.h"
#include "adapters/pg/pgtime.h"
#include "engine/error.h"

/* Elements of a constant table, and the table with its count as two
 * arguments. */
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define TABLE(a) (a), COUNT(a)

/* ---- SQL ---- */

#define TENANT_COLUMNS                                                                             \
    "id::text, name, plan, weight, max_running, attributes::text, created_at, updated_at"

#define SQL_TENANT_INSERT                                                                          \
    "INSERT INTO tenants (id, name, plan, weight, max_running, attributes, signing_secret) "       \
    "VALUES ($1::uuid, $2, $3, $4::integer, $5::integer, $6::jsonb, $7::bytea) "                   \
    "RETURNING " TENANT_COLUMNS

#define SQL_TENANT_GET "SELECT " TENANT_COLUMNS " FROM tenants WHERE id = $1::uuid"

/* The first page starts after the nil UUID; ids are UUIDv7, so id order is
 * creation order and the primary key serves the scan. */
#define SQL_TENANT_LIST                                                                            \
    "SELECT " TENANT_COLUMNS " FROM tenants WHERE id > $1::uuid ORDER BY id LIMIT $2::integer"

/* NULL keeps name, plan and weight; $5 says whether max_running is given
 * (it may be set to null).  attributes: merged at the top level, and keys
 * the patch sets to null are removed. */
#define SQL_TENANT_PATCH                                                                           \
    "UPDATE tenants SET name = coalesce($2, name), plan = coalesce($3, plan), "                    \
    "weight = coalesce($4::integer, weight), "                                                     \
    "max_running = CASE WHEN $5::boolean THEN $6::integer ELSE max_running END, "                  \
    "attributes = CASE WHEN $7::jsonb IS NULL THEN attributes "                                    \
    "ELSE (attributes || $7::jsonb) - ARRAY(SELECT e.key FROM jsonb_each($7::jsonb) AS e "         \
    "WHERE e.value = 'null'::jsonb) END, "                                                         \
    "updated_at = now() WHERE id = $1::uuid RETURNING " TENANT_COLUMNS

/* No row when the tenant does not exist (404). */
#define SQL_KEY_INSERT                                                                             \
    "INSERT INTO api_keys (tenant_id, id, token_hash, prefix, name) "                              \
    "SELECT id, $2::uuid, $3::bytea, $4, $5 FROM tenants WHERE id = $1::uuid "                     \
    "RETURNING id::text, tenant_id::text, created_at"

#define SQL_KEY_REVOKE                                                                             \
    "UPDATE api_keys SET revoked_at = now() "                                                      \
    "WHERE tenant_id = $1::uuid AND id = $2::uuid AND revoked_at IS NULL RETURNING id"

/* Upsert; $2 says whether max_running is given, NULL $4 keeps `paused`.
 * ON CONFLICT makes concurrent PUTs of one new queue safe. */
#define SQL_QUEUE_PUT                                                                              \
    "INSERT INTO queues AS q (name, max_running, paused) "                                         \
    "VALUES ($1, $3::integer, coalesce($4::boolean, false)) "                                      \
    "ON CONFLICT (name) DO UPDATE SET "                                                            \
    "max_running = CASE WHEN $2::boolean THEN EXCLUDED.max_running ELSE q.max_running END, "       \
    "paused = coalesce($4::boolean, q.paused), updated_at = now() "                                \
    "RETURNING name, max_running, paused, created_at, updated_at"

/* The columns of a QueueStatus, for queue names in `n(name)`, with the job
 * counts of each queue in `c(queue, state, n)`. */
#define QUEUE_STATUS_COLUMNS                                                                       \
    "n.name, q.max_running, coalesce(q.paused, false), q.created_at, q.updated_at, "               \
    "(SELECT jsonb_object_agg(s.name, coalesce(c.n, 0)) FROM job_states s "                        \
    " LEFT JOIN c ON c.queue = n.name AND c.state = s.state)::text, "                              \
    "coalesce((SELECT jsonb_object_agg(r.tenant_id::text, r.n) FROM (SELECT tenant_id, "           \
    " count(*) AS n FROM running WHERE queue = n.name GROUP BY tenant_id) r), '{}')::text, "       \
    "(SELECT CASE WHEN min(run_at) IS NULL THEN NULL ELSE "                                        \
    " round(greatest(0, extract(epoch FROM now() - min(run_at)))::numeric, 3) END "                \
    " FROM ready WHERE queue = n.name) "                                                           \
    "FROM n LEFT JOIN queues q ON q.name = n.name"

/* Always one row, also for a queue nobody defined or named. */
#define SQL_QUEUE_STATUS                                                                           \
    "WITH n AS (SELECT $1::text AS name), "                                                        \
    "c AS (SELECT queue, state, count(*) AS n FROM jobs WHERE queue = $1 GROUP BY queue, state) "  \
    "SELECT " QUEUE_STATUS_COLUMNS

/* Every defined queue and every queue a job names, by name (bytewise). */
#define SQL_QUEUE_LIST                                                                             \
    "WITH c AS (SELECT queue, state, count(*) AS n FROM jobs GROUP BY queue, state), "             \
    "n AS (SELECT name FROM queues UNION SELECT queue FROM c) "                                    \
    "SELECT " QUEUE_STATUS_COLUMNS " ORDER BY n.name COLLATE \"C\""

/* No row when the tenant does not exist (404). */
#define SQL_TENANT_QUEUE_PUT                                                                       \
    "INSERT INTO tenant_queues AS tq (tenant_id, queue, max_running) "                             \
    "SELECT id, $2, $3::integer FROM tenants WHERE id = $1::uuid "                                 \
    "ON CONFLICT (tenant_id, queue) DO UPDATE SET max_running = EXCLUDED.max_running, "            \
    "updated_at = now() RETURNING tenant_id::text, queue, max_running"

const tf_pg_prepared_t tf_admin_prepared[] = {
    {"admin_tenant_insert", SQL_TENANT_INSERT}, {"admin_tenant_get", SQL_TENANT_GET},
    {"admin_tenant_list", SQL_TENANT_LIST},     {"admin_tenant_patch", SQL_TENANT_PATCH},
    {"admin_key_insert", SQL_KEY_INSERT},       {"admin_key_revoke", SQL_KEY_REVOKE},
    {"admin_queue_put", SQL_QUEUE_PUT},         {"admin_queue_status", SQL_QUEUE_STATUS},
    {"admin_queue_list", SQL_QUEUE_LIST},       {"admin_tenant_queue_put", SQL_TENANT_QUEUE_PUT},
};
const size_t tf_admin_prepared_count = COUNT(tf_admin_prepared);

/* The cursor scope of the tenant listing (cursor.h). */
static const char TENANT_SCOPE[] = "tenants";

/* ---- request bodies ---- */

typedef enum { F_TEXT, F_INT, F_INT_OR_NULL, F_OBJECT, F_BOOL } field_kind_t;

typedef struct {
    const char *name;
    field_kind_t kind;
    long long min, max; /* bytes of F_TEXT, value of F_INT and F_INT_OR_NULL */
    int required;
} field_rule_t;

#define MAX_RUNNING_RULE                                                                           \
    { "max_running", F_INT_OR_NULL, 0, 2147483647, 0 }

static const field_rule_t TENANT_CREATE_RULES[] = {
    {"name", F_TEXT, 1, 128, 1},       {"plan", F_TEXT, 1, 128, 0},
    {"weight", F_INT, 1, 1000, 0},     MAX_RUNNING_RULE,
    {"attributes", F_OBJECT, 0, 0, 0},
};
static const field_rule_t TENANT_PATCH_RULES[] = {
    {"name", F_TEXT, 1, 128, 0},       {"plan", F_TEXT, 1, 128, 0},
    {"weight", F_INT, 1, 1000, 0},     MAX_RUNNING_RULE,
    {"attributes", F_OBJECT, 0, 0, 0},
};
static const field_rule_t KEY_CREATE_RULES[] = {
    {"name", F_TEXT, 1, 128, 0},
};
static const field_rule_t QUEUE_PUT_RULES[] = {
    MAX_RUNNING_RULE,
    {"paused", F_BOOL, 0, 0, 0},
};
static const field_rule_t TENANT_QUEUE_PUT_RULES[] = {
    {"max_running", F_INT_OR_NULL, 0, 2147483647, 1},
};

/* Checks one value against its rule; writes why not into `msg`. */
static int value_ok(const field_rule_t *r, const json_t *v, char *msg, size_t len) {
    switch (r->kind) {
    case F_TEXT:
        if (json_is_string(v) && (long long)json_string_length(v) >= r->min &&
            (long long)json_string_length(v) <= r->max) {
            return 1;
        }
        snprintf(msg, len, "%s must be a string of %lld to %lld bytes", r->name, r->min, r->max);
        return 0;
    case F_INT:
    case F_INT_OR_NULL:
        if ((r->kind == F_INT_OR_NULL && json_is_null(v)) ||
            (json_is_integer(v) && json_integer_value(v) >= r->min &&
             json_integer_value(v) <= r->max)) {
            return 1;
        }
        snprintf(msg, len, "%s must be an integer from %lld to %lld%s", r->name, r->min, r->max,
                 r->kind == F_INT_OR_NULL ? " or null" : "");
        return 0;
    case F_OBJECT:
        snprintf(msg, len, "%s must be a JSON object", r->name);
        return json_is_object(v);
    case F_BOOL:
        snprintf(msg, len, "%s must be true or false", r->name);
        return json_is_boolean(v);
    }
    return 0;
}

/* Checks `body` (an object, or NULL for an absent optional body) against
 * `rules`.  Returns 0, or answers 422 naming the field and returns -1. */
static int check_body(tf_http_req_t *req, json_t *body, const field_rule_t *rules, size_t nrules) {
    char msg[160];
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        const field_rule_t *rule = NULL;
        for (size_t i = 0; i < nrules && rule == NULL; i++) {
            rule = strcmp(rules[i].name, key) == 0 ? &rules[i] : NULL;
        }
        if (rule == NULL) {
            /* A long name is left to details.field (no cut UTF-8 here). */
            snprintf(msg, sizeof(msg), "unknown field%s%s", strlen(key) <= 64 ? " " : "",
                     strlen(key) <= 64 ? key : "");
        }
        if (rule == NULL || !value_ok(rule, value, msg, sizeof(msg))) {
            tf_api_invalid(req, key, msg);
            return -1;
        }
    }
    for (size_t i = 0; i < nrules; i++) {
        if (rules[i].required && json_object_get(body, rules[i].name) == NULL) {
            snprintf(msg, sizeof(msg), "%s is required", rules[i].name);
            tf_api_invalid(req, rules[i].name, msg);
            return -1;
        }
    }
    return 0;
}

/* Reads the body and checks it against `rules`.  Returns 0 with *out (NULL
 * for an absent optional body; caller owns it), or -1 when the request was
 * answered (415, 400 or 422). */
static int read_body(tf_http_req_t *req, int required, const field_rule_t *rules, size_t nrules,
                     json_t **out) {
    int answered = 0;
    json_t *body = tf_api_body(req, required, &answered);
    if (answered) {
        return -1;
    }
    if (check_body(req, body, rules, nrules) != 0) {
        json_decref(body);
        return -1;
    }
    *out = body;
    return 0;
}

/* The text of an integer member (NULL when absent or null). */
static const char *int_param(const json_t *body, const char *key, char buf[24]) {
    const json_t *v = json_object_get(body, key);
    if (!json_is_integer(v)) {
        return NULL;
    }
    snprintf(buf, 24, "%lld", (long long)json_integer_value(v));
    return buf;
}

static const char *bool_param(const json_t *body, const char *key) {
    const json_t *v = json_object_get(body, key);
    return v == NULL ? NULL : json_is_true(v) ? "true" : "false";
}

/* ---- answers written from rows ---- */

typedef enum { COL_TEXT, COL_RAW, COL_BOOL, COL_TIME } col_kind_t;

/* One member of an answer: its name and how its column is written (SQL NULL
 * is always null; COL_RAW columns are numbers or JSON text already). */
typedef struct {
    const char *key;
    col_kind_t kind;
} col_t;

static const col_t TENANT_COLS[] = {
    {"id", COL_TEXT},         {"name", COL_TEXT},       {"plan", COL_TEXT},
    {"weight", COL_RAW},      {"max_running", COL_RAW}, {"attributes", COL_RAW},
    {"created_at", COL_TIME}, {"updated_at", COL_TIME},
};
static const col_t QUEUE_COLS[] = {
    {"name", COL_TEXT},       {"max_running", COL_RAW}, {"paused", COL_BOOL},
    {"created_at", COL_TIME}, {"updated_at", COL_TIME},
};
static const col_t QUEUE_STATUS_COLS[] = {
    {"name", COL_TEXT},
    {"max_running", COL_RAW},
    {"paused", COL_BOOL},
    {"created_at", COL_TIME},
    {"updated_at", COL_TIME},
    {"counts", COL_RAW},
    {"running_by_tenant", COL_RAW},
    {"oldest_ready_age_seconds", COL_RAW},
};
static const col_t TENANT_QUEUE_COLS[] = {
    {"tenant_id", COL_TEXT},
    {"queue", COL_TEXT},
    {"max_running", COL_RAW},
};

/* Writes columns from `col` of row `row` as members of the open object.
 * Returns 0, or TF_EIO for a timestamp the API cannot show. */
static int write_members(tf_jbuf_t *b, const PGresult *res, int row, int col, const col_t *cols,
                         size_t ncols) {
    for (size_t i = 0; i < ncols; i++, col++) {
        tf_jbuf_key(b, cols[i].key);
        const char *v = PQgetvalue(res, row, col);
        size_t len = (size_t)PQgetlength(res, row, col);
        char when[TF_TIME_STR_LEN + 1];
        if (PQgetisnull(res, row, col)) {
            tf_jbuf_null(b);
        } else if (cols[i].kind == COL_TEXT) {
            tf_jbuf_strn(b, v, len);
        } else if (cols[i].kind == COL_RAW) {
            tf_jbuf_rawn(b, v, len);
        } else if (cols[i].kind == COL_BOOL) {
            tf_jbuf_bool(b, v[0] == 't');
        } else if (tf_pgtime_to_rfc3339(v, when) == 0) {
            tf_jbuf_str(b, when);
        } else {
            return TF_EIO;
        }
    }
    return 0;
}

static int write_object(tf_jbuf_t *b, const PGresult *res, int row, const col_t *cols,
                        size_t ncols) {
    tf_jbuf_obj_open(b);
    int rc = write_members(b, res, row, 0, cols, ncols);
    tf_jbuf_obj_close(b);
    return rc;
}

/* Answers `status` with `b`, or 500 when a row could not be written. */
static void respond_built(tf_http_req_t *req, int status, tf_jbuf_t *b, int rc) {
    if (rc != 0) {
        tf_jbuf_free(b);
        tf_http_respond_error(req, 500, "internal", "cannot show a stored value", NULL);
        return;
    }
    tf_api_respond_jbuf(req, status, b);
}

static void not_found(tf_http_req_t *req, const char *what) {
    tf_http_respond_error(req, 404, "not_found", what, NULL);
}

/* ---- per-request state and the database round trip ---- */

typedef struct {
    tf_http_req_t *req;
    tf_app_loop_t *lp;
    int status;        /* the answer on success */
    const col_t *cols; /* how row_done() writes its row */
    size_t ncols;
    const char *missing; /* row_done()'s 404 message when there is no row */
    int limit;           /* page size of the tenant listing */
    char token[64];      /* a new key's token, shown once */
} admin_op_t;

/* Submits one statement; its callback answers and frees the op.  On
 * failure answers the request itself. */
static void submit(tf_http_req_t *req, tf_app_loop_t *lp, const admin_op_t *init,
                   const tf_pg_stmt_t *stmt, tf_pg_cb cb) {
    admin_op_t *op = malloc(sizeof(*op));
    if (op == NULL) {
        tf_http_respond_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    *op = *init;
    op->req = req;
    op->lp = lp;
    int rc = tf_pg_submit(lp->pg, stmt, 1, 0, cb, op);
    if (rc != 0) {
        OPENSSL_cleanse(op->token, sizeof(op->token));
        free(op);
        tf_api_respond_submit_error(req, rc);
    }
}

/* Answers a failed batch; returns 1 when it did. */
static int reply_failed(const admin_op_t *op, const tf_pg_reply_t *reply) {
    if (reply->status == 0) {
        return 0;
    }
    tf_api_respond_pg_error(op->req, reply);
    return 1;
}

/* Reads the id path parameter `name` ({id} or {key_id}) in canonical form;
 * a non-UUID names nothing that exists (404, answered here, returns -1). */
static int id_param(tf_http_req_t *req, const char *name, char out[TF_UUID_STR_LEN + 1]) {
    tf_uuid_t id;
    const char *text = tf_http_req_param(req, name);
    if (text == NULL || tf_uuid_parse(text, &id) != 0) {
        not_found(req, strcmp(name, "id") == 0 ? "no such tenant" : "no such API key");
        return -1;
    }
    tf_uuid_format(&id, out);
    return 0;
}

/* Reads the {name} path parameter; answers 422 and returns NULL when it is
 * not a valid queue name. */
static const char *queue_param(tf_http_req_t *req) {
    const char *name = tf_http_req_param(req, "name");
    if (name == NULL || !tf_queue_name_valid(name)) {
        tf_api_invalid(req, "name", "a queue name is 1 to 128 bytes of A-Z a-z 0-9 _ . : -");
        return NULL;
    }
    return name;
}

/* ---- tenants ---- */

/* A statement that returns one object: `status` with it, 404 without, 409
 * when a tenant's name is taken (the only unique value admin writes). */
static void row_done(const tf_pg_reply_t *reply, void *arg) {
    admin_op_t *op = arg;
    if (reply->status == TF_ECONFLICT) {
        tf_http_respond_error(op->req, 409, "conflict", "another tenant has this name",
                              "{\"field\":\"name\"}");
    } else if (!reply_failed(op, reply)) {
        if (PQntuples(reply->results[0]) == 0) {
            not_found(op->req, op->missing != NULL ? op->missing : "not found");
        } else {
            tf_jbuf_t b;
            tf_jbuf_init(&b);
            int rc = write_object(&b, reply->results[0], 0, op->cols, op->ncols);
            respond_built(op->req, op->status, &b, rc);
        }
    }
    free(op);
}

/* What row_done() needs to answer with one tenant. */
static admin_op_t tenant_op(int status) {
    return (admin_op_t){.status = status,
                        .cols = TENANT_COLS,
                        .ncols = COUNT(TENANT_COLS),
                        .missing = "no such tenant"};
}

/* The JSON text of the "attributes" member into *out (NULL when absent).
 * Returns 0, or answers 500 and returns -1. */
static int attributes_param(tf_http_req_t *req, const json_t *body, char **out) {
    const json_t *attributes = json_object_get(body, "attributes");
    *out = attributes != NULL ? json_dumps(attributes, JSON_COMPACT) : NULL;
    if (attributes != NULL && *out == NULL) {
        tf_http_respond_error(req, 500, "internal", "out of memory", NULL);
        return -1;
    }
    return 0;
}

static void create_tenant(tf_http_req_t *req, tf_app_loop_t *lp) {
    json_t *body = NULL;
    char *attributes = NULL;
    if (read_body(req, 1, TABLE(TENANT_CREATE_RULES), &body) != 0) {
        return;
    }
    uint8_t secret[32];
    char secret_hex[2 + 64 + 1] = "\\x", id[TF_UUID_STR_LEN + 1], weight[24], max_running[24];
    if (attributes_param(req, body, &attributes) != 0) {
        goto done;
    }
    if (RAND_bytes(secret, sizeof(secret)) != 1) {
        tf_http_respond_error(req, 500, "internal", "no random bytes for the signing secret", NULL);
        goto done;
    }
    tf_hex_encode(secret, sizeof(secret), secret_hex + 2);
    tf_uuid_t uuid;
    tf_uuid_v7(&lp->uuids, (uint64_t)tf_app_now_ms(), &uuid);
    tf_uuid_format(&uuid, id);
    const char *plan = json_string_value(json_object_get(body, "plan"));
    const char *w = int_param(body, "weight", weight);
    const char *values[] = {
        id,
        json_string_value(json_object_get(body, "name")),
        plan != NULL ? plan : "free",
        w != NULL ? w : "1",
        int_param(body, "max_running", max_running),
        attributes != NULL ? attributes : "{}",
        secret_hex,
    };
    tf_pg_stmt_t stmt = {.prepared = "admin_tenant_insert", .nparams = 7, .values = values};
    admin_op_t init = tenant_op(201);
    submit(req, lp, &init, &stmt, row_done);
done:
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(secret_hex, sizeof(secret_hex));
    free(attributes);
    json_decref(body);
}

static void get_tenant(tf_http_req_t *req, tf_app_loop_t *lp) {
    char id[TF_UUID_STR_LEN + 1];
    if (id_param(req, "id", id) != 0) {
        return;
    }
    const char *values[] = {id};
    tf_pg_stmt_t stmt = {.prepared = "admin_tenant_get", .nparams = 1, .values = values};
    admin_op_t init = tenant_op(200);
    submit(req, lp, &init, &stmt, row_done);
}

static void patch_tenant(tf_http_req_t *req, tf_app_loop_t *lp) {
    char id[TF_UUID_STR_LEN + 1], weight[24], max_running[24];
    json_t *body = NULL;
    char *attributes = NULL;
    if (id_param(req, "id", id) != 0 || read_body(req, 1, TABLE(TENANT_PATCH_RULES), &body) != 0) {
        return;
    }
    const char *values[] = {
        id,
        json_string_value(json_object_get(body, "name")),
        json_string_value(json_object_get(body, "plan")),
        int_param(body, "weight", weight),
        json_object_get(body, "max_running") != NULL ? "true" : "false",
        int_param(body, "max_running", max_running),
        NULL,
    };
    tf_pg_stmt_t stmt = {.prepared = "admin_tenant_patch", .nparams = 7, .values = values};
    if (json_object_size(body) == 0) {
        /* Nothing to change: answer the tenant as it is (updated_at kept). */
        stmt = (tf_pg_stmt_t){.prepared = "admin_tenant_get", .nparams = 1, .values = values};
    } else if (attributes_param(req, body, &attributes) != 0) {
        goto done;
    }
    values[6] = attributes;
    admin_op_t init = tenant_op(200);
    submit(req, lp, &init, &stmt, row_done);
done:
    free(attributes);
    json_decref(body);
}

static void list_done(const tf_pg_reply_t *reply, void *arg) {
    admin_op_t *op = arg;
    if (reply_failed(op, reply)) {
        free(op);
        return;
    }
    const PGresult *res = reply->results[0];
    int rows = PQntuples(res), shown = rows > op->limit ? op->limit : rows, rc = 0;
    tf_jbuf_t b;
    tf_jbuf_init(&b);
    tf_jbuf_obj_open(&b);
    tf_jbuf_key(&b, "tenants");
    tf_jbuf_arr_open(&b);
    for (int i = 0; i < shown && rc == 0; i++) {
        rc = write_object(&b, res, i, TABLE(TENANT_COLS));
    }
    tf_jbuf_arr_close(&b);
    tf_jbuf_key(&b, "next_cursor");
    tf_uuid_t last;
    if (rows > shown && rc == 0 &&
        (rc = tf_uuid_parse(PQgetvalue(res, shown - 1, 0), &last)) == 0) {
        char cursor[TF_CURSOR_TEXT_LEN];
        tf_cursor_encode(op->lp->env->cursor_key, TENANT_SCOPE, &last, tf_app_now_ms(), cursor);
        tf_jbuf_str(&b, cursor);
    } else {
        tf_jbuf_null(&b);
    }
    tf_jbuf_obj_close(&b);
    respond_built(op->req, 200, &b, rc);
    free(op);
}

static void list_tenants(tf_http_req_t *req, tf_app_loop_t *lp) {
    int limit = tf_api_limit(req);
    if (limit < 0) {
        return;
    }
    tf_uuid_t after = {{0}}; /* the first page starts after the nil UUID */
    const char *cursor = tf_http_req_query(req, "cursor");
    const char *why = NULL;
    if (cursor != NULL && tf_cursor_decode(lp->env->cursor_key, TENANT_SCOPE, cursor,
                                           tf_app_now_ms(), &after, &why) != 0) {
        tf_api_invalid(req, "cursor", why);
        return;
    }
    char after_text[TF_UUID_STR_LEN + 1], fetch[16];
    tf_uuid_format(&after, after_text);
    snprintf(fetch, sizeof(fetch), "%d", limit + 1); /* one more says whether a page follows */
    const char *values[] = {after_text, fetch};
    tf_pg_stmt_t stmt = {.prepared = "admin_tenant_list", .nparams = 2, .values = values};
    submit(req, lp, &(admin_op_t){.status = 200, .limit = limit}, &stmt, list_done);
}

/* ---- API keys ---- */

static const col_t KEY_COLS[] = {
    {"id", COL_TEXT},
    {"tenant_id", COL_TEXT},
    {"created_at", COL_TIME},
};

static void key_done(const tf_pg_reply_t *reply, void *arg) {
    admin_op_t *op = arg;
    if (!reply_failed(op, reply)) {
        if (PQntuples(reply->results[0]) == 0) {
            not_found(op->req, "no such tenant");
        } else {
            tf_jbuf_t b;
            tf_jbuf_init(&b);
            tf_jbuf_obj_open(&b);
            tf_jbuf_key(&b, "token");
            tf_jbuf_str(&b, op->token);
            int rc = write_members(&b, reply->results[0], 0, 0, TABLE(KEY_COLS));
            tf_jbuf_obj_close(&b);
            respond_built(op->req, 201, &b, rc);
        }
    }
    OPENSSL_cleanse(op->token, sizeof(op->token));
    free(op);
}

/* Only the token's SHA-256 is stored, with its first characters ("tf_" and
 * 8 more) as a prefix people can recognise it by. */
static void create_key(tf_http_req_t *req, tf_app_loop_t *lp) {
    char tenant[TF_UUID_STR_LEN + 1], key_id[TF_UUID_STR_LEN + 1], prefix[12];
    char hash_hex[2 + 2 * TF_TOKEN_HASH_LEN + 1] = "\\x";
    json_t *body = NULL;
    if (id_param(req, "id", tenant) != 0 ||
        read_body(req, 0, TABLE(KEY_CREATE_RULES), &body) != 0) {
        return;
    }
    admin_op_t init = {.status = 201};
    if (tf_token_generate("tf_", init.token, sizeof(init.token)) != 0) {
        tf_http_respond_error(req, 500, "internal", "no random bytes for the token", NULL);
        goto done;
    }
    uint8_t hash[TF_TOKEN_HASH_LEN];
    tf_token_hash(init.token, strlen(init.token), hash);
    tf_hex_encode(hash, sizeof(hash), hash_hex + 2);
    snprintf(prefix, sizeof(prefix), "%.11s", init.token);
    tf_uuid_t uuid;
    tf_uuid_v7(&lp->uuids, (uint64_t)tf_app_now_ms(), &uuid);
    tf_uuid_format(&uuid, key_id);
    const char *values[] = {tenant, key_id, hash_hex, prefix,
                            json_string_value(json_object_get(body, "name"))};
    tf_pg_stmt_t stmt = {.prepared = "admin_key_insert", .nparams = 5, .values = values};
    submit(req, lp, &init, &stmt, key_done);
done:
    OPENSSL_cleanse(init.token, sizeof(init.token));
    json_decref(body);
}

/* Revoked: every loop of this process forgets its cached keys at once (other
 * nodes within TF_AUTH_CACHE_TTL_MS). */
static void revoke_done(const tf_pg_reply_t *reply, void *arg) {
    admin_op_t *op = arg;
    if (!reply_failed(op, reply)) {
        if (PQntuples(reply->results[0]) == 0) {
            not_found(op->req, "no such API key, or it was already revoked");
        } else {
            tf_auth_invalidate(op->lp->auth.shared);
            tf_http_respond(op->req, 204, NULL, NULL, 0);
        }
    }
    free(op);
}

static void revoke_key(tf_http_req_t *req, tf_app_loop_t *lp) {
    char tenant[TF_UUID_STR_LEN + 1], key_id[TF_UUID_STR_LEN + 1];
    if (id_param(req, "id", tenant) != 0 || id_param(req, "key_id", key_id) != 0) {
        return;
    }
    const char *values[] = {tenant, key_id};
    tf_pg_stmt_t stmt = {.prepared = "admin_key_revoke", .nparams = 2, .values = values};
    submit(req, lp, &(admin_op_t){.status = 204}, &stmt, revoke_done);
}

/* ---- queues ---- */

static void put_queue(tf_http_req_t *req, tf_app_loop_t *lp) {
    json_t *body = NULL;
    const char *name = queue_param(req);
    if (name == NULL || read_body(req, 1, TABLE(QUEUE_PUT_RULES), &body) != 0) {
        return;
    }
    char max_running[24];
    const char *values[] = {
        name,
        json_object_get(body, "max_running") != NULL ? "true" : "false",
        int_param(body, "max_running", max_running),
        bool_param(body, "paused"),
    };
    tf_pg_stmt_t stmt = {.prepared = "admin_queue_put", .nparams = 4, .values = values};
    submit(req, lp, &(admin_op_t){.status = 200, .cols = QUEUE_COLS, .ncols = COUNT(QUEUE_COLS)},
           &stmt, row_done);
    json_decref(body);
}

static void get_queue(tf_http_req_t *req, tf_app_loop_t *lp) {
    const char *name = queue_param(req);
    if (name == NULL) {
        return;
    }
    const char *values[] = {name};
    tf_pg_stmt_t stmt = {.prepared = "admin_queue_status", .nparams = 1, .values = values};
    submit(
        req, lp,
        &(admin_op_t){.status = 200, .cols = QUEUE_STATUS_COLS, .ncols = COUNT(QUEUE_STATUS_COLS)},
        &stmt, row_done);
}

static void queues_done(const tf_pg_reply_t *reply, void *arg) {
    admin_op_t *op = arg;
    if (!reply_failed(op, reply)) {
        const PGresult *res = reply->results[0];
        int rc = 0;
        tf_jbuf_t b;
        tf_jbuf_init(&b);
        tf_jbuf_obj_open(&b);
        tf_jbuf_key(&b, "queues");
        tf_jbuf_arr_open(&b);
        for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
            rc = write_object(&b, res, i, TABLE(QUEUE_STATUS_COLS));
        }
        tf_jbuf_arr_close(&b);
        tf_jbuf_obj_close(&b);
        respond_built(op->req, 200, &b, rc);
    }
    free(op);
}

static void list_queues(tf_http_req_t *req, tf_app_loop_t *lp) {
    tf_pg_stmt_t stmt = {.prepared = "admin_queue_list"};
    submit(req, lp, &(admin_op_t){.status = 200}, &stmt, queues_done);
}

static void put_tenant_queue(tf_http_req_t *req, tf_app_loop_t *lp) {
    char tenant[TF_UUID_STR_LEN + 1], max_running[24];
    json_t *body = NULL;
    const char *name = NULL;
    if (id_param(req, "id", tenant) != 0 || (name = queue_param(req)) == NULL ||
        read_body(req, 1, TABLE(TENANT_QUEUE_PUT_RULES), &body) != 0) {
        return;
    }
    const char *values[] = {tenant, name, int_param(body, "max_running", max_running)};
    tf_pg_stmt_t stmt = {.prepared = "admin_tenant_queue_put", .nparams = 3, .values = values};
    submit(req, lp,
           &(admin_op_t){.status = 200,
                         .cols = TENANT_QUEUE_COLS,
                         .ncols = COUNT(TENANT_QUEUE_COLS),
                         .missing = "no such tenant"},
           &stmt, row_done);
    json_decref(body);
}

/* ---- routes ---- */

typedef struct {
    const char *method;
    const char *pattern;
    void (*run)(tf_http_req_t *req, tf_app_loop_t *lp);
} admin_route_t;

static const admin_route_t ROUTES[] = {
    {"POST", "/v1/admin/tenants", create_tenant},
    {"GET", "/v1/admin/tenants", list_tenants},
    {"GET", "/v1/admin/tenants/{id}", get_tenant},
    {"PATCH", "/v1/admin/tenants/{id}", patch_tenant},
    {"POST", "/v1/admin/tenants/{id}/keys", create_key},
    {"DELETE", "/v1/admin/tenants/{id}/keys/{key_id}", revoke_key},
    {"PUT", "/v1/admin/tenants/{id}/queues/{name}", put_tenant_queue},
    {"GET", "/v1/admin/queues", list_queues},
    {"GET", "/v1/admin/queues/{name}", get_queue},
    {"PUT", "/v1/admin/queues/{name}", put_queue},
};

static void authenticated(tf_http_req_t *req, const tf_principal_t *who, void *arg) {
    const admin_route_t *route = arg;
    (void)who; /* TF_AUTH_ADMIN lets only the operator through */
    route->run(req, tf_http_req_loop_ctx(req));
}

static void handle(tf_http_req_t *req, void *data) {
    tf_app_loop_t *lp = tf_http_req_loop_ctx(req);
    if (lp == NULL) {
        tf_http_respond_error(req, 503, "unavailable", "the server is not ready", NULL);
        return;
    }
    tf_auth_request(&lp->auth, req, TF_AUTH_ADMIN, authenticated, data);
}

int tf_admin_register(tf_router_t *router, const tf_app_env_t *env) {
    (void)env; /* handlers reach the environment through their loop */
    for (size_t i = 0; i < COUNT(ROUTES); i++) {
        /* The table is constant; the router hands the pointer back as is. */
        int rc =
            tf_router_add(router, ROUTES[i].method, ROUTES[i].pattern, handle, (void *)&ROUTES[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
