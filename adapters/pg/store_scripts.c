/*
 * store_scripts.c - the script store (engine/scripts.h): tenants' Lua
 * executors and their versions (migration 0005).  One statement per call;
 * changes notify TF_CHANNEL_LUA in the same transaction.
 * Loop thread of the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "adapters/pg/notifier.h"
#include "adapters/pg/store_internal.h"
#include "engine/error.h"

/* ---- SQL ---- */

/* $1 tenant, $2 name, $3 source, $4 handles (JSON array), $5 timeout_ms,
 * $6 actor, $7 now.  A new version and the current pointer and
 * types, unless a type is another executor's: returns the new version
 * (NULL when refused), whether the executor is new, the taken type with
 * its executor, and the source's SHA-256. */
#define SQL_PUT                                                                                    \
    "WITH prev AS (SELECT coalesce(max(version), 0) AS v FROM lua_executor_versions"               \
    "  WHERE tenant_id = $1::uuid AND name = $2),"                                                 \
    " existed AS (SELECT count(*) AS n FROM lua_executors WHERE tenant_id = $1::uuid"              \
    "  AND name = $2),"                                                                            \
    " types AS (SELECT DISTINCT t FROM json_array_elements_text($4::json) t),"                     \
    " taken AS (SELECT x.type, x.name FROM lua_executor_types x JOIN types ON x.type = types.t"    \
    "  WHERE x.tenant_id = $1::uuid AND x.name <> $2 ORDER BY x.type LIMIT 1),"                     \
    " ver AS (INSERT INTO lua_executor_versions (tenant_id, name, version, source, sha256,"        \
    "  handles, timeout_ms, created_by, created_at)"                                               \
    "  SELECT $1::uuid, $2, prev.v + 1, $3, encode(sha256(convert_to($3, 'UTF8')), 'hex'),"        \
    "  ARRAY(SELECT t FROM types ORDER BY t),"                                                     \
    "  $5::integer, $6, $7::timestamptz FROM prev WHERE NOT EXISTS (SELECT 1 FROM taken)"          \
    "  RETURNING version, sha256),"                                                                \
    " cur AS (INSERT INTO lua_executors (tenant_id, name, version, updated_at)"                    \
    "  SELECT $1::uuid, $2, version, $7::timestamptz FROM ver"                                     \
    "  ON CONFLICT (tenant_id, name) DO UPDATE SET version = excluded.version,"                    \
    "  updated_at = excluded.updated_at RETURNING version),"                                       \
    " gone AS (DELETE FROM lua_executor_types x WHERE x.tenant_id = $1::uuid AND x.name = $2"      \
    "  AND EXISTS (SELECT 1 FROM cur) AND x.type NOT IN (SELECT t FROM types)),"                   \
    " added AS (INSERT INTO lua_executor_types (tenant_id, type, name)"                            \
    "  SELECT $1::uuid, t, $2 FROM types WHERE EXISTS (SELECT 1 FROM cur)"                         \
    "  ON CONFLICT (tenant_id, type) DO NOTHING),"                                                 \
    " told AS (SELECT pg_notify('" TF_CHANNEL_LUA "', $1 || '/' || $2) FROM cur)"                  \
    " SELECT (SELECT version FROM cur), (SELECT n = 0 FROM existed),"                              \
    " (SELECT type FROM taken), (SELECT name FROM taken), (SELECT count(*) FROM told),"            \
    " (SELECT sha256 FROM ver)"

#define SCRIPT_COLUMNS                                                                             \
    "v.name, v.version, v.sha256, array_to_json(v.handles)::text, v.timeout_ms, v.created_by,"     \
    " v.created_at, e.updated_at"

/* $1 tenant, $2 name, $3 version (0: the current one). */
#define SQL_GET                                                                                    \
    "SELECT " SCRIPT_COLUMNS ", v.source FROM lua_executors e JOIN lua_executor_versions v"        \
    " ON v.tenant_id = e.tenant_id AND v.name = e.name"                                            \
    " AND v.version = CASE WHEN $3::integer > 0 THEN $3::integer ELSE e.version END"               \
    " WHERE e.tenant_id = $1::uuid AND e.name = $2"

#define SQL_LIST                                                                                   \
    "SELECT " SCRIPT_COLUMNS " FROM lua_executors e JOIN lua_executor_versions v"                  \
    " ON v.tenant_id = e.tenant_id AND v.name = e.name AND v.version = e.version"                  \
    " WHERE e.tenant_id = $1::uuid ORDER BY e.name"

#define SQL_VERSIONS                                                                               \
    "SELECT " SCRIPT_COLUMNS " FROM lua_executors e JOIN lua_executor_versions v"                  \
    " ON v.tenant_id = e.tenant_id AND v.name = e.name"                                            \
    " WHERE e.tenant_id = $1::uuid AND e.name = $2 ORDER BY v.version DESC"

/* The executor's types go with it (foreign key); its versions stay. */
#define SQL_DELETE                                                                                 \
    "WITH d AS (DELETE FROM lua_executors WHERE tenant_id = $1::uuid AND name = $2"               \
    "  RETURNING name),"                                                                           \
    " told AS (SELECT pg_notify('" TF_CHANNEL_LUA "', $1 || '/' || $2) FROM d)"                    \
    " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM told)"

const tf_pg_prepared_t tf__pg_scripts_prepared[] = {
    {"script_put", SQL_PUT},           {"script_get", SQL_GET},
    {"script_list", SQL_LIST},         {"script_versions", SQL_VERSIONS},
    {"script_delete", SQL_DELETE},
};
const size_t tf__pg_scripts_prepared_count =
    sizeof(tf__pg_scripts_prepared) / sizeof(tf__pg_scripts_prepared[0]);

static tf_pg_store_t *store_of(void *ctx) {
    return ctx;
}


/* ---- decoding ---- */

/* A script and the strings it points at, in one block. */
typedef struct {
    tf_script_t s;
    char **handles;
    size_t nhandles;
} script_row_t;

static void script_row_free(script_row_t *r) {
    for (size_t i = 0; i < r->nhandles; i++) {
        free(r->handles[i]);
    }
    free(r->handles);
}

static int decode_script(const PGresult *res, int row, void *item, const char *tenant_id,
                         int with_source) {
    script_row_t *r = item;
    memset(r, 0, sizeof(*r));
    tf_script_t *s = &r->s;
    s->tenant_id = tenant_id;
    s->name = PQgetvalue(res, row, 0);
    s->version = (int)tf__pg_int(res, row, 1, 0);
    s->sha256 = PQgetvalue(res, row, 2);
    s->timeout_ms = tf__pg_int(res, row, 4, -1);
    s->created_by = tf__pg_text(res, row, 5);
    if (tf__pg_time(res, row, 6, &s->created_at_ms) != 0 ||
        tf__pg_time(res, row, 7, &s->updated_at_ms) != 0) {
        return TF_EIO;
    }
    json_t *handles = json_loads(PQgetvalue(res, row, 3), 0, NULL);
    if (!json_is_array(handles)) {
        json_decref(handles);
        return TF_EIO;
    }
    size_t n = json_array_size(handles);
    r->handles = n > 0 ? calloc(n, sizeof(char *)) : NULL;
    int rc = n > 0 && r->handles == NULL ? TF_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *t = json_string_value(json_array_get(handles, i));
        r->handles[i] = t != NULL ? strdup(t) : NULL;
        rc = r->handles[i] != NULL ? 0 : TF_ENOMEM;
        r->nhandles += rc == 0;
    }
    json_decref(handles);
    if (rc != 0) {
        script_row_free(r);
        return rc;
    }
    s->handles = (const char *const *)r->handles;
    s->nhandles = r->nhandles;
    if (with_source) {
        s->source = PQgetvalue(res, row, 8);
        s->source_len = (size_t)PQgetlength(res, row, 8);
    }
    return 0;
}

/* ---- put ---- */

typedef struct {
    tf_script_put_cb cb;
    void *arg;
} put_op_t;

/* A concurrent upload of the same executor that took the version number
 * first fails the statement with TF_ECONFLICT (unique violation). */
static void put_done(const tf_pg_reply_t *reply, void *arg) {
    put_op_t *op = arg;
    int rc = reply->status;
    tf_script_put_result_t r = {0};
    if (rc == 0) {
        const PGresult *res = reply->results[0];
        if (PQntuples(res) != 1) {
            rc = TF_EIO;
        } else if (PQgetisnull(res, 0, 0)) {
            rc = TF_ECONFLICT;
            r.taken_type = tf__pg_text(res, 0, 2);
            r.taken_by = tf__pg_text(res, 0, 3);
        } else {
            r.version = (int)tf__pg_int(res, 0, 0, 0);
            r.created = tf__pg_bool(res, 0, 1);
            r.sha256 = tf__pg_text(res, 0, 5);
        }
    }
    op->cb(op->arg, rc, &r);
    free(op);
}

static int put_executor(void *ctx, const tf_script_put_t *put, tf_script_put_cb cb, void *arg) {
    json_t *handles = json_array();
    for (size_t i = 0; handles != NULL && i < put->nhandles; i++) {
        if (json_array_append_new(handles, json_string(put->handles[i])) != 0) {
            json_decref(handles);
            handles = NULL;
        }
    }
    char *handles_text = handles != NULL ? json_dumps(handles, JSON_COMPACT) : NULL;
    json_decref(handles);
    put_op_t *op = malloc(sizeof(*op));
    char *source = malloc(put->source_len + 1);
    int rc = handles_text != NULL && op != NULL && source != NULL ? 0 : TF_ENOMEM;
    if (rc == 0) {
        memcpy(source, put->source, put->source_len);
        source[put->source_len] = '\0';
        *op = (put_op_t){.cb = cb, .arg = arg};
        tf__pg_int_t timeout;
        tf__pg_time_t now;
        const char *values[7] = {put->tenant_id,
                                 put->name,
                                 source,
                                 handles_text,
                                 put->timeout_ms > 0 ? tf__pg_int_param(put->timeout_ms, &timeout)
                                                     : NULL,
                                 put->actor,
                                 tf__pg_time_param(put->now_ms, &now)};
        rc = tf__pg_run(store_of(ctx), "script_put", values, 7, put_done, op);
    }
    if (rc != 0) {
        free(op);
    }
    free(source);
    free(handles_text);
    return rc;
}

/* ---- get, list, versions ---- */

typedef struct {
    tf_script_get_cb get_cb;
    tf_script_list_cb list_cb;
    void *arg;
    char tenant_id[40];
} read_op_t;

static read_op_t *read_op(const char *tenant_id, tf_script_get_cb get_cb,
                          tf_script_list_cb list_cb, void *arg) {
    read_op_t *op = malloc(sizeof(*op));
    if (op != NULL) {
        *op = (read_op_t){.get_cb = get_cb, .list_cb = list_cb, .arg = arg};
        snprintf(op->tenant_id, sizeof(op->tenant_id), "%s", tenant_id);
    }
    return op;
}

static void get_done(const tf_pg_reply_t *reply, void *arg) {
    read_op_t *op = arg;
    int rc = reply->status;
    script_row_t row;
    int found = 0;
    if (rc == 0 && PQntuples(reply->results[0]) == 1) {
        rc = decode_script(reply->results[0], 0, &row, op->tenant_id, 1);
        found = rc == 0;
    }
    op->get_cb(op->arg, rc, found ? &row.s : NULL);
    if (found) {
        script_row_free(&row);
    }
    free(op);
}

static void list_done(const tf_pg_reply_t *reply, void *arg) {
    read_op_t *op = arg;
    int rc = reply->status;
    size_t n = rc == 0 ? (size_t)PQntuples(reply->results[0]) : 0;
    script_row_t *rows = n > 0 ? calloc(n, sizeof(*rows)) : NULL;
    tf_script_t *scripts = n > 0 ? calloc(n, sizeof(*scripts)) : NULL;
    if (n > 0 && (rows == NULL || scripts == NULL)) {
        rc = TF_ENOMEM;
    }
    size_t decoded = 0;
    for (; rc == 0 && decoded < n; decoded++) {
        rc = decode_script(reply->results[0], (int)decoded, &rows[decoded], op->tenant_id, 0);
        if (rc != 0) {
            break;
        }
        scripts[decoded] = rows[decoded].s;
    }
    op->list_cb(op->arg, rc, rc == 0 ? scripts : NULL, rc == 0 ? n : 0);
    for (size_t i = 0; rows != NULL && i < decoded; i++) {
        script_row_free(&rows[i]);
    }
    free(rows);
    free(scripts);
    free(op);
}

static int get_executor(void *ctx, const char *tenant_id, const char *name, int version,
                        tf_script_get_cb cb, void *arg) {
    read_op_t *op = read_op(tenant_id, cb, NULL, arg);
    if (op == NULL) {
        return TF_ENOMEM;
    }
    tf__pg_int_t v;
    const char *values[3] = {tenant_id, name, tf__pg_int_param(version, &v)};
    int rc = tf__pg_run(store_of(ctx), "script_get", values, 3, get_done, op);
    if (rc != 0) {
        free(op);
    }
    return rc;
}

static int list_executors(void *ctx, const char *tenant_id, tf_script_list_cb cb, void *arg) {
    read_op_t *op = read_op(tenant_id, NULL, cb, arg);
    if (op == NULL) {
        return TF_ENOMEM;
    }
    const char *values[1] = {tenant_id};
    int rc = tf__pg_run(store_of(ctx), "script_list", values, 1, list_done, op);
    if (rc != 0) {
        free(op);
    }
    return rc;
}

static int executor_versions(void *ctx, const char *tenant_id, const char *name,
                             tf_script_list_cb cb, void *arg) {
    read_op_t *op = read_op(tenant_id, NULL, cb, arg);
    if (op == NULL) {
        return TF_ENOMEM;
    }
    const char *values[2] = {tenant_id, name};
    int rc = tf__pg_run(store_of(ctx), "script_versions", values, 2, list_done, op);
    if (rc != 0) {
        free(op);
    }
    return rc;
}

/* ---- delete ---- */

static void delete_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    int rc = reply->status;
    if (rc == 0 && tf__pg_int(reply->results[0], 0, 0, 0) == 0) {
        rc = TF_ENOTFOUND;
    }
    ((tf_script_status_cb)p->cb)(p->arg, rc);
    free(p);
}

static int delete_executor(void *ctx, const char *tenant_id, const char *name,
                           tf_script_status_cb cb, void *arg) {
    const char *values[2] = {tenant_id, name};
    return tf__pg_run_pending(store_of(ctx), "script_delete", values, 2, delete_done,
                              (void (*)(void))cb, arg);
}

void tf__pg_scripts_bind(tf_script_store_t *port) {
    port->put_executor = put_executor;
    port->get_executor = get_executor;
    port->list_executors = list_executors;
    port->executor_versions = executor_versions;
    port->delete_executor = delete_executor;
}
