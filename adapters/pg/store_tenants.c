/*
 * store_tenants.c - the tenant store (engine/tenants.h): tenants, API keys,
 * queues and per-tenant queue caps, and the lookups of authentication.
 * One statement per call.  Loop thread of the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg/store_internal.h"
#include "engine/error.h"
#include "engine/hex.h"

/* ---- SQL ---- */

#define TENANT_COLUMNS                                                                             \
    "id::text, name, plan, weight, max_running, attributes::text, created_at, updated_at"

/* $8 now. */
#define SQL_TENANT_INSERT                                                                          \
    "INSERT INTO tenants (id, name, plan, weight, max_running, attributes, signing_secret,"        \
    " created_at, updated_at) "                                                                    \
    "VALUES ($1::uuid, $2, $3, $4::integer, $5::integer, $6::jsonb, $7::bytea, $8::timestamptz,"   \
    " $8::timestamptz) RETURNING " TENANT_COLUMNS

#define SQL_TENANT_GET "SELECT " TENANT_COLUMNS " FROM tenants WHERE id = $1::uuid"

/* Ids are UUIDv7, so id order is creation order and the primary key serves
 * the scan. */
#define SQL_TENANT_LIST                                                                            \
    "SELECT " TENANT_COLUMNS " FROM tenants WHERE id > $1::uuid ORDER BY id LIMIT $2::integer"

/* NULL keeps name, plan and weight; $5 says whether max_running is given
 * (it may be set to null).  attributes: merged at the top level, and keys
 * the patch sets to null are removed.  $8 now. */
#define SQL_TENANT_PATCH                                                                           \
    "UPDATE tenants SET name = coalesce($2, name), plan = coalesce($3, plan), "                    \
    "weight = coalesce($4::integer, weight), "                                                     \
    "max_running = CASE WHEN $5::boolean THEN $6::integer ELSE max_running END, "                  \
    "attributes = CASE WHEN $7::jsonb IS NULL THEN attributes "                                    \
    "ELSE (attributes || $7::jsonb) - ARRAY(SELECT e.key FROM jsonb_each($7::jsonb) AS e "         \
    "WHERE e.value = 'null'::jsonb) END, "                                                         \
    "updated_at = $8::timestamptz WHERE id = $1::uuid RETURNING " TENANT_COLUMNS

/* No row when the tenant does not exist.  $6 now. */
#define SQL_KEY_INSERT                                                                             \
    "INSERT INTO api_keys (tenant_id, id, token_hash, prefix, name, created_at) "                  \
    "SELECT id, $2::uuid, $3::bytea, $4, $5, $6::timestamptz FROM tenants WHERE id = $1::uuid "    \
    "RETURNING id::text, tenant_id::text, created_at"

#define SQL_KEY_REVOKE                                                                             \
    "UPDATE api_keys SET revoked_at = $3::timestamptz "                                            \
    "WHERE tenant_id = $1::uuid AND id = $2::uuid AND revoked_at IS NULL RETURNING id"

/* Upsert; $2 says whether max_running is given, NULL $4 keeps `paused`, $5
 * now.  ON CONFLICT makes concurrent PUTs of one new queue safe. */
#define SQL_QUEUE_PUT                                                                              \
    "INSERT INTO queues AS q (name, max_running, paused, created_at, updated_at) "                 \
    "VALUES ($1, $3::integer, coalesce($4::boolean, false), $5::timestamptz, $5::timestamptz) "    \
    "ON CONFLICT (name) DO UPDATE SET "                                                            \
    "max_running = CASE WHEN $2::boolean THEN EXCLUDED.max_running ELSE q.max_running END, "       \
    "paused = coalesce($4::boolean, q.paused), updated_at = $5::timestamptz "                      \
    "RETURNING name, max_running, paused, created_at, updated_at"

/* The columns of a queue's status, for queue names in `n(name)`, with the
 * job counts of each queue in `c(queue, state, n)`: name, cap, paused,
 * created, updated, counts by state (bigint[] in state order), running by
 * tenant (JSON), oldest ready job's age in seconds at $1 (NULL: none). */
#define QUEUE_STATUS_COLUMNS                                                                       \
    "n.name, q.max_running, coalesce(q.paused, false), q.created_at, q.updated_at, "               \
    "ARRAY(SELECT coalesce(c.n, 0) FROM job_states s LEFT JOIN c ON c.queue = n.name"              \
    " AND c.state = s.state ORDER BY s.state)::text, "                                             \
    "coalesce((SELECT jsonb_object_agg(r.tenant_id::text, r.n) FROM (SELECT tenant_id, "           \
    " count(*) AS n FROM running WHERE queue = n.name GROUP BY tenant_id) r), '{}')::text, "       \
    "(SELECT CASE WHEN min(run_at) IS NULL THEN NULL ELSE "                                        \
    " round(greatest(0, extract(epoch FROM $1::timestamptz - min(run_at)))::numeric, 3) END "      \
    " FROM ready WHERE queue = n.name) "                                                           \
    "FROM n LEFT JOIN queues q ON q.name = n.name"

/* Always one row, also for a queue nobody defined or named.  $1 now, $2 name. */
#define SQL_QUEUE_STATUS                                                                           \
    "WITH n AS (SELECT $2::text AS name), "                                                        \
    "c AS (SELECT queue, state, count(*) AS n FROM jobs WHERE queue = $2 GROUP BY queue, state) "  \
    "SELECT " QUEUE_STATUS_COLUMNS

/* Every defined queue and every queue a job names, by name (bytewise).
 * $1 now. */
#define SQL_QUEUE_LIST                                                                             \
    "WITH c AS (SELECT queue, state, count(*) AS n FROM jobs GROUP BY queue, state), "             \
    "n AS (SELECT name FROM queues UNION SELECT queue FROM c) "                                    \
    "SELECT " QUEUE_STATUS_COLUMNS " ORDER BY n.name COLLATE \"C\""

/* No row when the tenant does not exist.  $4 now. */
#define SQL_TENANT_QUEUE_PUT                                                                       \
    "INSERT INTO tenant_queues AS tq (tenant_id, queue, max_running, created_at, updated_at) "     \
    "SELECT id, $2, $3::integer, $4::timestamptz, $4::timestamptz FROM tenants"                    \
    " WHERE id = $1::uuid "                                                                        \
    "ON CONFLICT (tenant_id, queue) DO UPDATE SET max_running = EXCLUDED.max_running, "            \
    "updated_at = $4::timestamptz RETURNING tenant_id::text, queue, max_running"

#define SQL_KEY_LOOKUP                                                                             \
    "SELECT tenant_id::text, id::text FROM api_keys "                                              \
    "WHERE token_hash = $1::bytea AND revoked_at IS NULL"

#define SQL_TENANT_EXISTS "SELECT 1 FROM tenants WHERE id = $1::uuid"

const tf_pg_prepared_t tf__pg_tenants_prepared[] = {
    {"tenants_insert", SQL_TENANT_INSERT},  {"tenants_get", SQL_TENANT_GET},
    {"tenants_list", SQL_TENANT_LIST},      {"tenants_patch", SQL_TENANT_PATCH},
    {"tenants_key_insert", SQL_KEY_INSERT}, {"tenants_key_revoke", SQL_KEY_REVOKE},
    {"tenants_queue_put", SQL_QUEUE_PUT},   {"tenants_queue_status", SQL_QUEUE_STATUS},
    {"tenants_queue_list", SQL_QUEUE_LIST}, {"tenants_tenant_queue_put", SQL_TENANT_QUEUE_PUT},
    {"tenants_key_lookup", SQL_KEY_LOOKUP}, {"tenants_exists", SQL_TENANT_EXISTS},
};
const size_t tf__pg_tenants_prepared_count =
    sizeof(tf__pg_tenants_prepared) / sizeof(tf__pg_tenants_prepared[0]);

/* A bytea parameter in hex form ("\x..."); `out` holds 2 + 2 * len + 1. */
static const char *bytea_param(const uint8_t *bytes, size_t len, char *out) {
    out[0] = '\\';
    out[1] = 'x';
    tf_hex_encode(bytes, len, out + 2);
    return out;
}

/* ---- tenants ---- */

static int decode_tenant(const PGresult *res, int row, tf_tenant_t *t) {
    *t = (tf_tenant_t){
        .id = tf__pg_text(res, row, 0),
        .name = tf__pg_text(res, row, 1),
        .plan = tf__pg_text(res, row, 2),
        .weight = (int)tf__pg_int(res, row, 3, 1),
        .max_running = tf__pg_int(res, row, 4, TF_NO_CAP),
        .attributes = tf__pg_text(res, row, 5),
    };
    int rc = tf__pg_time(res, row, 6, &t->created_at_ms);
    return rc != 0 ? rc : tf__pg_time(res, row, 7, &t->updated_at_ms);
}

static void tenant_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_tenant_cb cb = (tf_tenant_cb)p->cb;
    tf_tenant_t t;
    if (reply->status != 0) {
        cb(p->arg, reply->status, NULL);
    } else if (PQntuples(reply->results[0]) == 0) {
        cb(p->arg, 0, NULL);
    } else {
        int rc = decode_tenant(reply->results[0], 0, &t);
        cb(p->arg, rc, rc == 0 ? &t : NULL);
    }
    free(p);
}

static int tenant_create(void *ctx, const tf_tenant_new_t *t, tf_tenant_cb cb, void *arg) {
    if (t->signing_secret_len == 0 || t->signing_secret_len > 64) {
        return TF_EINVAL;
    }
    char secret[2 + 2 * 64 + 1];
    tf__pg_int_t weight, max_running;
    tf__pg_time_t now;
    const char *values[8] = {
        t->id,
        t->name,
        t->plan,
        tf__pg_int_param(t->weight, &weight),
        t->max_running == TF_NO_CAP ? NULL : tf__pg_int_param(t->max_running, &max_running),
        t->attributes != NULL ? t->attributes : "{}",
        bytea_param(t->signing_secret, t->signing_secret_len, secret),
        tf__pg_time_param(t->now_ms, &now),
    };
    int rc =
        tf__pg_run_pending(ctx, "tenants_insert", values, 8, tenant_done, (void (*)(void))cb, arg);
    memset(secret, 0, sizeof(secret));
    return rc;
}

static int tenant_get(void *ctx, const char *id, tf_tenant_cb cb, void *arg) {
    const char *values[1] = {id};
    return tf__pg_run_pending(ctx, "tenants_get", values, 1, tenant_done, (void (*)(void))cb, arg);
}

static int decode_tenant_row(const PGresult *res, int row, void *item) {
    return decode_tenant(res, row, item);
}

static void tenants_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_tenant_t *list = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*list), decode_tenant_row, (void **)&list, &n);
    ((tf_tenants_cb)p->cb)(p->arg, rc, list, n);
    free(list);
    free(p);
}

static int tenant_list(void *ctx, const char *after_id, int rows, tf_tenants_cb cb, void *arg) {
    tf__pg_int_t limit;
    const char *values[2] = {after_id, tf__pg_int_param(rows, &limit)};
    return tf__pg_run_pending(ctx, "tenants_list", values, 2, tenants_done, (void (*)(void))cb,
                              arg);
}

static int tenant_patch(void *ctx, const tf_tenant_patch_t *pt, tf_tenant_cb cb, void *arg) {
    tf__pg_int_t weight, max_running;
    tf__pg_time_t now;
    const char *values[8] = {
        pt->id,
        pt->name,
        pt->plan,
        pt->weight > 0 ? tf__pg_int_param(pt->weight, &weight) : NULL,
        pt->set_max_running ? "true" : "false",
        pt->set_max_running && pt->max_running != TF_NO_CAP
            ? tf__pg_int_param(pt->max_running, &max_running)
            : NULL,
        pt->attributes,
        tf__pg_time_param(pt->now_ms, &now),
    };
    return tf__pg_run_pending(ctx, "tenants_patch", values, 8, tenant_done, (void (*)(void))cb,
                              arg);
}

/* ---- keys ---- */

static void key_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_api_key_cb cb = (tf_api_key_cb)p->cb;
    if (reply->status != 0) {
        cb(p->arg, reply->status, NULL);
    } else if (PQntuples(reply->results[0]) == 0) {
        cb(p->arg, 0, NULL);
    } else {
        const PGresult *res = reply->results[0];
        tf_api_key_t key = {.id = tf__pg_text(res, 0, 0), .tenant_id = tf__pg_text(res, 0, 1)};
        int rc = tf__pg_time(res, 0, 2, &key.created_at_ms);
        cb(p->arg, rc, rc == 0 ? &key : NULL);
    }
    free(p);
}

static int key_create(void *ctx, const char *tenant_id, const char *key_id,
                      const uint8_t token_hash[32], const char *prefix, const char *name,
                      int64_t now_ms, tf_api_key_cb cb, void *arg) {
    char hash[2 + 64 + 1];
    tf__pg_time_t now;
    const char *values[6] = {tenant_id, key_id, bytea_param(token_hash, 32, hash),
                             prefix,    name,   tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "tenants_key_insert", values, 6, key_done, (void (*)(void))cb,
                              arg);
}

/* Status 0 when the statement returned a row, TF_ENOTFOUND when none. */
static void row_status_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    int rc = reply->status;
    if (rc == 0 && PQntuples(reply->results[0]) == 0) {
        rc = TF_ENOTFOUND;
    }
    ((tf_store_status_cb)p->cb)(p->arg, rc);
    free(p);
}

static int key_revoke(void *ctx, const char *tenant_id, const char *key_id, int64_t now_ms,
                      tf_store_status_cb cb, void *arg) {
    tf__pg_time_t now;
    const char *values[3] = {tenant_id, key_id, tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "tenants_key_revoke", values, 3, row_status_done,
                              (void (*)(void))cb, arg);
}

/* ---- queues ---- */

static void queue_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_queue_cb cb = (tf_queue_cb)p->cb;
    if (reply->status != 0 || PQntuples(reply->results[0]) != 1) {
        cb(p->arg, reply->status != 0 ? reply->status : TF_EIO, NULL);
        free(p);
        return;
    }
    const PGresult *res = reply->results[0];
    tf_queue_t q = {.name = tf__pg_text(res, 0, 0),
                    .max_running = tf__pg_int(res, 0, 1, TF_NO_CAP),
                    .paused = tf__pg_bool(res, 0, 2)};
    int rc = tf__pg_time(res, 0, 3, &q.created_at_ms);
    rc = rc != 0 ? rc : tf__pg_time(res, 0, 4, &q.updated_at_ms);
    cb(p->arg, rc, rc == 0 ? &q : NULL);
    free(p);
}

static int queue_put(void *ctx, const char *name, int set_max_running, int64_t max_running,
                     int paused, int64_t now_ms, tf_queue_cb cb, void *arg) {
    tf__pg_int_t cap;
    tf__pg_time_t now;
    const char *values[5] = {
        name,
        set_max_running ? "true" : "false",
        set_max_running && max_running != TF_NO_CAP ? tf__pg_int_param(max_running, &cap) : NULL,
        paused < 0 ? NULL
        : paused   ? "true"
                   : "false",
        tf__pg_time_param(now_ms, &now),
    };
    return tf__pg_run_pending(ctx, "tenants_queue_put", values, 5, queue_done, (void (*)(void))cb,
                              arg);
}

/* "{1,2,3}" (bigint[] text in state order) into counts. */
static int decode_counts(const char *text, int64_t counts[TF_JOB_STATE_COUNT]) {
    const char *p = text != NULL && text[0] == '{' ? text + 1 : NULL;
    for (int s = 0; s < TF_JOB_STATE_COUNT; s++) {
        char *end = NULL;
        if (p == NULL) {
            return TF_EIO;
        }
        counts[s] = strtoll(p, &end, 10);
        if (end == p || (*end != ',' && *end != '}')) {
            return TF_EIO;
        }
        p = end + 1;
    }
    return 0;
}

static int decode_status(const PGresult *res, int row, void *item) {
    tf_queue_status_t *q = item;
    *q = (tf_queue_status_t){
        .queue = {.name = tf__pg_text(res, row, 0),
                  .max_running = tf__pg_int(res, row, 1, TF_NO_CAP),
                  .paused = tf__pg_bool(res, row, 2)},
        .running_by_tenant = tf__pg_text(res, row, 6),
        .has_ready = !PQgetisnull(res, row, 7),
        .oldest_ready_age_s = PQgetisnull(res, row, 7) ? 0 : strtod(PQgetvalue(res, row, 7), NULL),
    };
    int rc = tf__pg_time(res, row, 3, &q->queue.created_at_ms);
    rc = rc != 0 ? rc : tf__pg_time(res, row, 4, &q->queue.updated_at_ms);
    return rc != 0 ? rc : decode_counts(tf__pg_text(res, row, 5), q->counts);
}

static void status_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_queue_status_t *list = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*list), decode_status, (void **)&list, &n);
    ((tf_queue_status_cb)p->cb)(p->arg, rc, list, n);
    free(list);
    free(p);
}

static int queue_status(void *ctx, const char *name, int64_t now_ms, tf_queue_status_cb cb,
                        void *arg) {
    tf__pg_time_t now;
    const char *values[2] = {tf__pg_time_param(now_ms, &now), name};
    return tf__pg_run_pending(ctx, name != NULL ? "tenants_queue_status" : "tenants_queue_list",
                              values, name != NULL ? 2 : 1, status_done, (void (*)(void))cb, arg);
}

static void tenant_queue_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_tenant_queue_cb cb = (tf_tenant_queue_cb)p->cb;
    if (reply->status != 0) {
        cb(p->arg, reply->status, NULL);
    } else if (PQntuples(reply->results[0]) == 0) {
        cb(p->arg, 0, NULL);
    } else {
        const PGresult *res = reply->results[0];
        tf_tenant_queue_t row = {.tenant_id = tf__pg_text(res, 0, 0),
                                 .queue = tf__pg_text(res, 0, 1),
                                 .max_running = tf__pg_int(res, 0, 2, TF_NO_CAP)};
        cb(p->arg, 0, &row);
    }
    free(p);
}

static int tenant_queue_put(void *ctx, const char *tenant_id, const char *queue,
                            int64_t max_running, int64_t now_ms, tf_tenant_queue_cb cb, void *arg) {
    tf__pg_int_t cap;
    tf__pg_time_t now;
    const char *values[4] = {tenant_id, queue,
                             max_running == TF_NO_CAP ? NULL : tf__pg_int_param(max_running, &cap),
                             tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "tenants_tenant_queue_put", values, 4, tenant_queue_done,
                              (void (*)(void))cb, arg);
}

/* ---- authentication ---- */

static void lookup_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_key_lookup_cb cb = (tf_key_lookup_cb)p->cb;
    if (reply->status != 0) {
        cb(p->arg, reply->status, NULL, NULL);
    } else if (PQntuples(reply->results[0]) != 1) {
        cb(p->arg, 0, NULL, NULL);
    } else {
        cb(p->arg, 0, PQgetvalue(reply->results[0], 0, 0), PQgetvalue(reply->results[0], 0, 1));
    }
    free(p);
}

static int key_lookup(void *ctx, const uint8_t token_hash[32], tf_key_lookup_cb cb, void *arg) {
    char hash[2 + 64 + 1];
    const char *values[1] = {bytea_param(token_hash, 32, hash)};
    return tf__pg_run_pending(ctx, "tenants_key_lookup", values, 1, lookup_done, (void (*)(void))cb,
                              arg);
}

static int tenant_exists(void *ctx, const char *id, tf_store_status_cb cb, void *arg) {
    const char *values[1] = {id};
    return tf__pg_run_pending(ctx, "tenants_exists", values, 1, row_status_done, (void (*)(void))cb,
                              arg);
}

void tf__pg_tenants_bind(tf_tenant_store_t *port) {
    port->tenant_create = tenant_create;
    port->tenant_get = tenant_get;
    port->tenant_list = tenant_list;
    port->tenant_patch = tenant_patch;
    port->key_create = key_create;
    port->key_revoke = key_revoke;
    port->queue_put = queue_put;
    port->queue_status = queue_status;
    port->tenant_queue_put = tenant_queue_put;
    port->key_lookup = key_lookup;
    port->tenant_exists = tenant_exists;
}
