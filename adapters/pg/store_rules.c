/*
 * store_rules.c - the rule store (engine/rules.h): tenants' automation
 * rules and their versions (migration 0006).  One statement per call.
 * Loop thread of the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/pg/store_internal.h"
#include "engine/error.h"

/* ---- SQL ---- */

/* clang-format off */
#define SHA256_OF(x) "encode(sha256(convert_to(" x ", 'UTF8')), 'hex')"

/* $1 id, $2 tenant, $3 name, $4 source, $5 kind, $6 trigger, $7 hook key,
 * $8 hook secret, $9 actor, $10 now, $11 has_condition, $12 next fire time (cron
 * rules; NULL otherwise): version 1, its sha256, no refusal,
 * 1, enabled, the hook key (the update's columns).  A live rule of the same
 * name fails the statement (unique violation). */
#define SQL_CREATE                                                                                 \
    "WITH r AS (INSERT INTO rules (id, tenant_id, name, version, trigger_kind, trigger,"           \
    "  hook_key, hook_secret, created_at, updated_at, next_fire_at)"                               \
    "  VALUES ($1::uuid, $2::uuid, $3, 1, $5, $6::jsonb, $7, $8, $10::timestamptz,"                \
    "  $10::timestamptz, $12::timestamptz) RETURNING id),"                                         \
    " v AS (INSERT INTO rule_versions (rule_id, version, source, sha256, trigger, has_condition,"  \
    "  created_by, created_at) SELECT id, 1, $4, " SHA256_OF("$4") ", $6::jsonb, $11::boolean, $9," \
    "  $10::timestamptz FROM r"                                                                    \
    "  RETURNING version, sha256)"                                                                 \
    " SELECT version, sha256, NULL::text, 1, true, $7, $12::timestamptz FROM v"

/* $1 id, $2 tenant, $3 name, $4 source, $5 kind, $6 trigger, $7 actor,
 * $8 now, $9 has_condition, $10 next fire time (cron rules; kept while the
 * trigger stays the same): the new version and its sha256, or NULL with why ('missing' or
 * 'kind'); rows changed; whether the rule is enabled and its hook key.  A
 * name another live rule has fails the statement (unique violation). */
#define SQL_UPDATE                                                                                 \
    "WITH cur AS (SELECT id, trigger_kind FROM rules WHERE id = $1::uuid"                          \
    "  AND tenant_id IS NOT DISTINCT FROM $2::uuid"                                                \
    "  AND deleted_at IS NULL FOR UPDATE),"                                                        \
    " ok AS (SELECT id FROM cur WHERE trigger_kind = $5),"                                         \
    " nv AS (SELECT coalesce(max(version), 0) + 1 AS v FROM rule_versions"                         \
    "  WHERE rule_id = $1::uuid),"                                                                 \
    " v AS (INSERT INTO rule_versions (rule_id, version, source, sha256, trigger, has_condition,"  \
    "  created_by, created_at) SELECT ok.id, nv.v, $4, " SHA256_OF("$4") ", $6::jsonb,"            \
    "  $9::boolean, $7, $8::timestamptz FROM ok, nv RETURNING version, sha256),"                   \
    " u AS (UPDATE rules r SET name = $3, version = v.version, trigger = $6::jsonb,"               \
    "  updated_at = $8::timestamptz, next_fire_at = CASE WHEN r.trigger = $6::jsonb"               \
    "  THEN r.next_fire_at ELSE $10::timestamptz END FROM v WHERE r.id = $1::uuid"                 \
    "  RETURNING r.id, r.enabled, r.hook_key, r.next_fire_at)"                                     \
    " SELECT (SELECT version FROM v), (SELECT sha256 FROM v),"                                     \
    " CASE WHEN NOT EXISTS (SELECT 1 FROM cur) THEN 'missing'"                                     \
    "  WHEN NOT EXISTS (SELECT 1 FROM ok) THEN 'kind' END, (SELECT count(*) FROM u),"              \
    " (SELECT enabled FROM u), (SELECT hook_key FROM u), (SELECT next_fire_at FROM u)"

/* A rule's columns, with its ctx.state for tenant `tenant` (a rule's own
 * tenant; for platform rules the tenant they fire for).  Further columns
 * are found by name: source, owner (the tenant; NULL: a platform rule),
 * hook_secret, last_outcome, last_at. */
#define RULE_COLUMNS_FOR(tenant)                                                                   \
    "r.id::text, r.name, v.version, r.enabled, v.trigger::text, r.hook_key, v.sha256,"             \
    " v.created_by, v.created_at, r.updated_at, v.trigger ->> 'cron', v.trigger ->> 'timezone',"   \
    " v.has_condition, r.trigger_kind, (SELECT st.state::text FROM rule_states st"                 \
    "  WHERE st.rule_id = r.id AND st.tenant_id = " tenant "), (SELECT st.version"                 \
    "  FROM rule_states st WHERE st.rule_id = r.id AND st.tenant_id = " tenant "),"                \
    " r.next_fire_at, v.trigger ->> 'catch_up', r.tenant_id::text AS owner"
#define RULE_COLUMNS RULE_COLUMNS_FOR("r.tenant_id")

/* $1 tenant, $2 id. */
#define SQL_GET                                                                                    \
    "SELECT " RULE_COLUMNS ", v.source AS source FROM rules r JOIN rule_versions v"                \
    " ON v.rule_id = r.id AND v.version = r.version"                                               \
    " WHERE r.tenant_id IS NOT DISTINCT FROM $1::uuid AND r.id = $2::uuid AND r.deleted_at IS NULL"

#define SQL_LIST                                                                                   \
    "SELECT " RULE_COLUMNS " FROM rules r JOIN rule_versions v"                                    \
    " ON v.rule_id = r.id AND v.version = r.version"                                               \
    " WHERE r.tenant_id IS NOT DISTINCT FROM $1::uuid AND r.deleted_at IS NULL ORDER BY r.name"

#define SQL_VERSIONS                                                                               \
    "SELECT " RULE_COLUMNS " FROM rules r JOIN rule_versions v ON v.rule_id = r.id"                \
    " WHERE r.tenant_id IS NOT DISTINCT FROM $1::uuid AND r.id = $2::uuid AND r.deleted_at IS NULL" \
    " ORDER BY v.version DESC"

/* $1 tenant, $2 id, $3 enabled, $4 now: rows changed. */
#define SQL_ENABLE                                                                                 \
    "WITH u AS (UPDATE rules SET enabled = $3::boolean, updated_at = $4::timestamptz"              \
    "  WHERE tenant_id IS NOT DISTINCT FROM $1::uuid AND id = $2::uuid AND deleted_at IS NULL"     \
    "  RETURNING id)"                                                                              \
    " SELECT count(*) FROM u"

/* $1 tenant, $2 id, $3 now: rows deleted.  The row stays (deleted_at) for
 * its versions. */
#define SQL_DELETE                                                                                 \
    "WITH u AS (UPDATE rules SET deleted_at = $3::timestamptz, enabled = false, next_fire_at = NULL," \
    "  updated_at = $3::timestamptz"                                                               \
    "  WHERE tenant_id IS NOT DISTINCT FROM $1::uuid AND id = $2::uuid AND deleted_at IS NULL"     \
    "  RETURNING id)"                                                                              \
    " SELECT count(*) FROM u"
/* $1 tenant, $2 event name: the enabled live rules it fires, with their
 * current source (at most 100). */
#define SQL_EVENT_RULES                                                                            \
    "SELECT " RULE_COLUMNS_FOR("$1::uuid") ", v.source AS source FROM rules r JOIN rule_versions v" \
    " ON v.rule_id = r.id AND v.version = r.version"                                               \
    " WHERE (r.tenant_id = $1::uuid OR r.tenant_id IS NULL) AND r.deleted_at IS NULL AND r.enabled" \
    " AND r.trigger_kind = 'event' AND r.trigger ->> 'event' = $2 ORDER BY r.name LIMIT 100"

/* $1 tenant, $2 run id, $3 rule, $4 version, $5 trigger, $6 dedup key,
 * $7 at, $8 outcome, $9 condition, $10 job ids (uuid[]), $11 error type,
 * $12 error message, $13 duration ms, $14 new state (NULL: unchanged),
 * $15 the state version the run read: runs recorded (1 or 0), when 0 for
 * a repeat that run's id and jobs, and whether the state was stale (a
 * newer version: nothing written). */
#define SQL_RECORD_RUN                                                                             \
    "WITH st AS (INSERT INTO rule_states (rule_id, tenant_id, state, version, updated_at)"         \
    "  SELECT $3::uuid, $1::uuid, $14::jsonb, 1, $7::timestamptz WHERE $14::jsonb IS NOT NULL"     \
    "  AND NOT EXISTS (SELECT 1 FROM rule_runs WHERE rule_id = $3::uuid AND tenant_id = $1::uuid"  \
    "  AND dedup_key = $6)"                                                                        \
    "  ON CONFLICT (rule_id, tenant_id) DO UPDATE SET state = excluded.state,"                     \
    "  version = rule_states.version + 1, updated_at = excluded.updated_at"                        \
    "  WHERE rule_states.version = $15::bigint RETURNING 1),"                                      \
    " gate AS (SELECT 1 AS ok WHERE $14::jsonb IS NULL OR EXISTS (SELECT 1 FROM st)),"             \
    " ins AS (INSERT INTO rule_runs (tenant_id, id, rule_id, version, trigger, dedup_key, at,"     \
    "  outcome, condition, jobs, error_type, error_message, duration_ms)"                          \
    "  SELECT $1::uuid, $2::uuid, $3::uuid, $4::integer, $5, $6, $7::timestamptz, $8,"             \
    "  $9::boolean, $10::uuid[], $11, $12, $13::integer FROM gate"                                 \
    "  ON CONFLICT (rule_id, tenant_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING"         \
    "  RETURNING id)"                                                                              \
    " SELECT (SELECT count(*) FROM ins), (SELECT id::text FROM rule_runs WHERE rule_id = $3::uuid" \
    "  AND tenant_id = $1::uuid AND dedup_key = $6 AND NOT EXISTS (SELECT 1 FROM ins)),"           \
    " (SELECT array_to_json(jobs)::text FROM rule_runs WHERE rule_id = $3::uuid"                   \
    "  AND tenant_id = $1::uuid AND dedup_key = $6 AND NOT EXISTS (SELECT 1 FROM ins)),"           \
    " NOT EXISTS (SELECT 1 FROM gate) AND NOT EXISTS (SELECT 1 FROM rule_runs"                     \
    "  WHERE rule_id = $3::uuid AND tenant_id = $1::uuid AND dedup_key = $6)"

/* SQL_RECORD_RUN for a run that leaves the state as it was ($1..$13 the
 * same): no state to write, so never stale.  Most runs are these, and
 * without the state's upsert the statement costs less. */
#define SQL_RECORD_RUN_STATELESS                                                                   \
    "WITH ins AS (INSERT INTO rule_runs (tenant_id, id, rule_id, version, trigger, dedup_key, at," \
    "  outcome, condition, jobs, error_type, error_message, duration_ms)"                          \
    "  VALUES ($1::uuid, $2::uuid, $3::uuid, $4::integer, $5, $6, $7::timestamptz, $8,"            \
    "  $9::boolean, $10::uuid[], $11, $12, $13::integer)"                                          \
    "  ON CONFLICT (rule_id, tenant_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING"         \
    "  RETURNING id)"                                                                              \
    " SELECT (SELECT count(*) FROM ins), (SELECT id::text FROM rule_runs WHERE rule_id = $3::uuid" \
    "  AND tenant_id = $1::uuid AND dedup_key = $6 AND NOT EXISTS (SELECT 1 FROM ins)),"           \
    " (SELECT array_to_json(jobs)::text FROM rule_runs WHERE rule_id = $3::uuid"                   \
    "  AND tenant_id = $1::uuid AND dedup_key = $6 AND NOT EXISTS (SELECT 1 FROM ins)), false"

/* ctx.tenant of the tenant `t`, as tf_uc_tenant_json writes it. */
#define TENANT_JSON                                                                                \
    "json_build_object('id', t.id, 'name', t.name, 'plan', t.plan, 'attributes',"                  \
    "  t.attributes)::text"

/* $1 now, $2 node, $3 lease ms, $4 limit: the live cron rules due at $1
 * that no node holds, leased to $2, with their source and tenant (NULL: a
 * platform rule). */
#define SQL_CRON_DUE                                                                               \
    "WITH due AS (SELECT id FROM rules WHERE next_fire_at <= $1::timestamptz"                      \
    "  AND deleted_at IS NULL AND (fire_lease_until IS NULL OR fire_lease_until < $1::timestamptz)" \
    "  ORDER BY next_fire_at LIMIT $4::integer FOR UPDATE SKIP LOCKED),"                           \
    " r AS (UPDATE rules r SET fire_lease_by = $2, fire_lease_until = $1::timestamptz"             \
    "  + $3::integer * interval '1 millisecond' FROM due WHERE r.id = due.id RETURNING r.*)"       \
    " SELECT " RULE_COLUMNS ", v.source AS source, CASE WHEN t.id IS NOT NULL THEN"                \
    "  " TENANT_JSON " END AS tenant_json FROM r JOIN rule_versions v"                             \
    " ON v.rule_id = r.id AND v.version = r.version LEFT JOIN tenants t ON t.id = r.tenant_id"

/* $1 node; per rule: $2 id, $3 tenant (NULL: a platform rule), $4
 * version, $5 the fire time it was due at, $6 its next fire time (NULL:
 * never); per skipped fire time: $7 its rule, $8 run id, $9 time, $10 dedup
 * key, $11 reason, $12 message.  The rules $1 still holds at their due
 * time are released with their skipped runs recorded (a platform rule's
 * for every tenant): rules released, runs recorded. */
#define SQL_CRON_DONE                                                                              \
    "WITH a AS (SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::integer[], $5::timestamptz[],"    \
    "  $6::timestamptz[]) AS a(rule_id, tenant_id, version, due, next)),"                          \
    " u AS (UPDATE rules r SET next_fire_at = a.next, fire_lease_by = NULL,"                       \
    "  fire_lease_until = NULL FROM a WHERE r.id = a.rule_id AND r.fire_lease_by = $1"             \
    "  AND r.next_fire_at = a.due RETURNING r.id, a.tenant_id, a.version),"                        \
    " x AS (SELECT * FROM unnest($7::uuid[], $8::uuid[], $9::timestamptz[], $10::text[],"          \
    "  $11::text[], $12::text[]) AS x(rule_id, id, at, key, reason, message)),"                    \
    " s AS (INSERT INTO rule_runs (tenant_id, id, rule_id, version, trigger, dedup_key, at,"       \
    "  outcome, error_type, error_message, duration_ms)"                                           \
    "  SELECT coalesce(u.tenant_id, t.id), CASE WHEN u.tenant_id IS NULL THEN gen_random_uuid()"   \
    "  ELSE x.id END, u.id, u.version, 'cron', x.key, x.at, 'skipped', x.reason, x.message, 0"     \
    "  FROM x JOIN u ON u.id = x.rule_id LEFT JOIN tenants t ON u.tenant_id IS NULL"               \
    "  ON CONFLICT (rule_id, tenant_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING"         \
    "  RETURNING 1)"                                                                               \
    " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM s)"

#define JOB_RULE_MATCHES(tenant, event, type, queue)                                               \
    "(r.tenant_id = " tenant " OR r.tenant_id IS NULL) AND r.deleted_at IS NULL AND r.enabled"     \
    " AND r.trigger_kind = 'job'"                                                                  \
    " AND r.trigger ->> 'event' = " event " AND (r.trigger ->> 'type' IS NULL"                     \
    " OR r.trigger ->> 'type' = " type ") AND (r.trigger ->> 'queue' IS NULL"                      \
    " OR r.trigger ->> 'queue' = " queue ")"

#define API_TIME(t) "to_char(" t " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* $1 now, $2 node, $3 lease ms, $4 limit: whether $2 holds the cursor, the
 * xmin of the statement's snapshot, and the events after the cursor from
 * transactions before it that an enabled rule waits for (one row with
 * NULL events when there are none): tenant, id, name, job type, queue,
 * correlation id, ev, xid. */
#define SQL_JOB_EVENTS                                                                             \
    "WITH c AS (UPDATE rule_cursors SET lease_by = $2, lease_until = $1::timestamptz"              \
    "  + $3::integer * interval '1 millisecond' WHERE name = 'job-events'"                         \
    "  AND (lease_until IS NULL OR lease_until < $1::timestamptz OR lease_by = $2)"                \
    "  RETURNING position, position_id),"                                                          \
    " x AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS upto)"                               \
    " SELECT (SELECT count(*) FROM c), (SELECT upto::text FROM x), ev.* FROM (SELECT 1) one"       \
    " LEFT JOIN LATERAL (SELECT e.tenant_id::text, e.id, e.name, j.type, j.queue,"                 \
    "  j.correlation_id, json_build_object('name', e.name, 'event_id', e.id, 'reason', e.reason,"  \
    "  'at', " API_TIME("e.created_at") ", 'job', json_build_object('id', j.id, 'type', j.type,"   \
    "  'queue', j.queue, 'payload', j.payload, 'result', j.result, 'error', CASE WHEN"             \
    "  j.last_error_type IS NULL THEN NULL ELSE json_build_object('type', j.last_error_type,"      \
    "  'message', j.last_error_message) END, 'attempts', j.attempts, 'max_attempts',"              \
    "  j.max_attempts, 'correlation_id', j.correlation_id, 'rule_id', j.rule_id,"                  \
    "  'parent_id', j.parent_id, 'metadata', j.metadata, 'created_at', "                           \
    API_TIME("j.created_at") ", 'finished_at', " API_TIME("j.finished_at") "))::text, e.xid::text" \
    "  FROM c, x, domain_events e JOIN jobs j ON j.tenant_id = e.tenant_id AND j.id = e.job_id"    \
    "  WHERE (e.xid, e.id) > (c.position, c.position_id) AND e.xid < x.upto"                       \
    "  AND EXISTS (SELECT 1 FROM rules r WHERE "                                                   \
    JOB_RULE_MATCHES("e.tenant_id", "e.name", "j.type", "j.queue") ")"                             \
    "  ORDER BY e.xid, e.id LIMIT $4::integer) ev ON true ORDER BY ev.xid::text::xid8, ev.id"

/* $1 node, $2 xid, $3 id: the cursor moved (1) or another node holds it (0). */
#define SQL_JOB_EVENTS_DONE                                                                        \
    "WITH u AS (UPDATE rule_cursors SET position = $2::xid8, position_id = $3::bigint"             \
    "  WHERE name = 'job-events' AND lease_by = $1 RETURNING 1) SELECT count(*) FROM u"

/* $1 tenant, $2 event, $3 job type, $4 queue: the rules it fires (at most 100). */
#define SQL_JOB_RULES                                                                              \
    "SELECT " RULE_COLUMNS_FOR("$1::uuid") ", v.source AS source FROM rules r JOIN rule_versions v" \
    " ON v.rule_id = r.id AND v.version = r.version WHERE "                                        \
    JOB_RULE_MATCHES("$1::uuid", "$2", "$3", "$4") " ORDER BY r.name LIMIT 100"

/* $1 after rule id (NULL: from the first), $2 limit: every live rule, with
 * its tenant and its last run's outcome and time. */
#define SQL_ADMIN_LIST                                                                             \
    "SELECT " RULE_COLUMNS ", l.outcome AS last_outcome, l.at AS last_at FROM rules r"             \
    " JOIN rule_versions v ON v.rule_id = r.id AND v.version = r.version"                          \
    " LEFT JOIN LATERAL (SELECT outcome, at FROM rule_runs rr WHERE rr.rule_id = r.id"             \
    "  ORDER BY rr.id DESC LIMIT 1) l ON true"                                                     \
    " WHERE r.deleted_at IS NULL AND ($1::uuid IS NULL OR r.id > $1::uuid)"                        \
    " ORDER BY r.id LIMIT $2::integer"

/* $1 tenant, $2 rule, $3 new secret, $4 until when the old one stays
 * valid, $5 now: NULL, or why not ('missing', 'kind'). */
#define SQL_ROTATE_SECRET                                                                          \
    "WITH cur AS (SELECT id, trigger_kind FROM rules WHERE tenant_id = $1::uuid AND id = $2::uuid" \
    "  AND deleted_at IS NULL FOR UPDATE),"                                                        \
    " u AS (UPDATE rules r SET hook_secret_previous = r.hook_secret,"                              \
    "  hook_secret_previous_until = $4::timestamptz, hook_secret = $3,"                            \
    "  updated_at = $5::timestamptz FROM cur WHERE r.id = cur.id"                                  \
    "  AND cur.trigger_kind = 'webhook' RETURNING r.id)"                                           \
    " SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM cur) THEN 'missing'"                              \
    "  WHEN NOT EXISTS (SELECT 1 FROM u) THEN 'kind' END"

/* $1 tenant, $2 rule: its state and version. */
#define SQL_STATE                                                                                  \
    "SELECT state::text, version FROM rule_states WHERE tenant_id = $1::uuid AND rule_id = $2::uuid"

/* $1 hook keys (text[]): the enabled live webhook rules they name, each
 * with its source and secrets and its tenant's ctx.tenant (read with it:
 * one round trip per delivery, shared by the deliveries read together). */
#define SQL_HOOK_RULE                                                                              \
    "SELECT " RULE_COLUMNS ", v.source AS source, r.hook_secret, r.hook_secret_previous,"          \
    " r.hook_secret_previous_until, " TENANT_JSON " AS tenant_json FROM rules r"                   \
    " JOIN rule_versions v ON v.rule_id = r.id AND v.version = r.version"                          \
    " JOIN tenants t ON t.id = r.tenant_id"                                                        \
    " WHERE r.hook_key = ANY ($1::text[]) AND r.deleted_at IS NULL AND r.enabled"                  \
    " AND r.trigger_kind = 'webhook'"

/* $1 tenant (NULL: every tenant's runs of a platform rule), $2 rule, $3
 * before run id (NULL: newest), $4 outcome (NULL: any), $5 limit. */
#define SQL_RUNS                                                                                   \
    "SELECT id::text, rule_id::text, version, trigger, dedup_key, at, outcome, condition,"         \
    " array_to_json(jobs)::text, error_type, error_message, duration_ms, tenant_id::text"          \
    " FROM rule_runs"                                                                              \
    " WHERE ($1::uuid IS NULL OR tenant_id = $1::uuid) AND rule_id = $2::uuid"                     \
    " AND ($3::uuid IS NULL OR id < $3::uuid) AND ($4::text IS NULL OR outcome = $4)"              \
    " ORDER BY id DESC LIMIT $5::integer"
/* clang-format on */

const tf_pg_prepared_t tf__pg_rules_prepared[] = {
    {"rule_create", SQL_CREATE},
    {"rule_update", SQL_UPDATE},
    {"rule_get", SQL_GET},
    {"rule_list", SQL_LIST},
    {"rule_versions", SQL_VERSIONS},
    {"rule_enable", SQL_ENABLE},
    {"rule_delete", SQL_DELETE},
    {"rule_event_rules", SQL_EVENT_RULES},
    {"rule_record_run", SQL_RECORD_RUN},
    {"rule_record_run_stateless", SQL_RECORD_RUN_STATELESS},
    {"rule_runs", SQL_RUNS},
    {"rule_hook", SQL_HOOK_RULE},
    {"rule_state", SQL_STATE},
    {"rule_cron_due", SQL_CRON_DUE},
    {"rule_cron_done", SQL_CRON_DONE},
    {"rule_job_events", SQL_JOB_EVENTS},
    {"rule_job_events_done", SQL_JOB_EVENTS_DONE},
    {"rule_job_rules", SQL_JOB_RULES},
    {"rule_admin_list", SQL_ADMIN_LIST},
    {"rule_rotate_secret", SQL_ROTATE_SECRET},
};
const size_t tf__pg_rules_prepared_count =
    sizeof(tf__pg_rules_prepared) / sizeof(tf__pg_rules_prepared[0]);

/* ---- put ---- */

static void put_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    int rc = reply->status;
    tf_rule_put_result_t r = {0};
    if (rc == 0) {
        const PGresult *res = reply->results[0];
        int shaped = PQntuples(res) == 1 && PQnfields(res) == 7;
        const char *why = shaped ? tf__pg_text(res, 0, 2) : NULL;
        if (!shaped) {
            rc = TF_EIO;
        } else if (why != NULL) {
            rc = strcmp(why, "missing") == 0 ? TF_ENOTFOUND : TF_ESTATE;
        } else if (PQgetisnull(res, 0, 0)) {
            rc = TF_EIO;
        } else {
            r.version = (int)tf__pg_int(res, 0, 0, 0);
            r.sha256 = tf__pg_text(res, 0, 1);
            r.enabled = tf__pg_bool(res, 0, 4);
            r.hook_key = tf__pg_text(res, 0, 5);
            r.next_fire_ms = TF_TIME_NONE;
            if (!PQgetisnull(res, 0, 6) && tf__pg_time(res, 0, 6, &r.next_fire_ms) != 0) {
                rc = TF_EIO;
            }
        }
    }
    /* A unique violation (the name is another live rule's) arrives as
     * TF_ECONFLICT from the pool. */
    ((tf_rule_put_cb)p->cb)(p->arg, rc, &r);
    free(p);
}

/* `create` 1: a new rule (with its hook key and secret); 0: a version. */
static int put(void *ctx, int create, const tf_rule_put_t *put, tf_rule_put_cb cb, void *arg) {
    char *source = malloc(put->source_len + 1);
    if (source == NULL) {
        return TF_ENOMEM;
    }
    memcpy(source, put->source, put->source_len);
    source[put->source_len] = '\0';
    tf__pg_time_t now;
    tf__pg_time_t next;
    const char *values[12] = {
        put->id,          put->tenant_id, put->name, source, tf_trigger_kind_name(put->kind),
        put->trigger_json};
    int n = 6;
    if (create) {
        values[n++] = put->hook_key;
        values[n++] = put->hook_secret;
    }
    values[n++] = put->actor;
    values[n++] = tf__pg_time_param(put->now_ms, &now);
    values[n++] = put->has_condition ? "true" : "false";
    values[n++] =
        put->next_fire_ms != TF_TIME_NONE ? tf__pg_time_param(put->next_fire_ms, &next) : NULL;
    int rc = tf__pg_run_pending(ctx, create ? "rule_create" : "rule_update", values, n, put_done,
                                (void (*)(void))cb, arg);
    free(source);
    return rc;
}

static int create(void *ctx, const tf_rule_put_t *p, tf_rule_put_cb cb, void *arg) {
    return put(ctx, 1, p, cb, arg);
}

static int update(void *ctx, const tf_rule_put_t *p, tf_rule_put_cb cb, void *arg) {
    return put(ctx, 0, p, cb, arg);
}

/* ---- get, list, versions ---- */

static int decode_rule(const PGresult *res, int row, void *item) {
    tf_rule_t *r = item;
    *r = (tf_rule_t){
        .id = PQgetvalue(res, row, 0),
        .name = PQgetvalue(res, row, 1),
        .version = (int)tf__pg_int(res, row, 2, 0),
        .enabled = tf__pg_bool(res, row, 3),
        .trigger_json = PQgetvalue(res, row, 4),
        .hook_key = tf__pg_text(res, row, 5),
        .sha256 = PQgetvalue(res, row, 6),
        .created_by = tf__pg_text(res, row, 7),
    };
    if (tf__pg_time(res, row, 8, &r->created_at_ms) != 0 ||
        tf__pg_time(res, row, 9, &r->updated_at_ms) != 0) {
        return TF_EIO;
    }
    r->cron = tf__pg_text(res, row, 10);
    r->timezone = tf__pg_text(res, row, 11);
    r->has_condition = tf__pg_bool(res, row, 12);
    const char *kind = PQgetvalue(res, row, 13);
    for (int k = TF_TRIGGER_CRON; k <= TF_TRIGGER_JOB; k++) {
        if (strcmp(kind, tf_trigger_kind_name((tf_trigger_kind_t)k)) == 0) {
            r->kind = (tf_trigger_kind_t)k;
        }
    }
    r->state_json = tf__pg_text(res, row, 14);
    r->state_version = tf__pg_int(res, row, 15, 0);
    r->next_fire_ms = TF_TIME_NONE;
    if (!PQgetisnull(res, row, 16) && tf__pg_time(res, row, 16, &r->next_fire_ms) != 0) {
        return TF_EIO;
    }
    r->catch_up = tf__pg_text(res, row, 17);
    r->tenant_id = tf__pg_text(res, row, 18); /* NULL: a platform rule */
    int source = PQfnumber(res, "source"), secret = PQfnumber(res, "hook_secret");
    int outcome = PQfnumber(res, "last_outcome"), at = PQfnumber(res, "last_at");
    int tenant = PQfnumber(res, "tenant_json");
    if (tenant >= 0) {
        r->tenant_json = tf__pg_text(res, row, tenant);
    }
    if (source >= 0) {
        r->source = PQgetvalue(res, row, source);
        r->source_len = (size_t)PQgetlength(res, row, source);
    }
    if (secret >= 0) {
        r->hook_secret = PQgetvalue(res, row, secret);
    }
    int previous = PQfnumber(res, "hook_secret_previous");
    int until = PQfnumber(res, "hook_secret_previous_until");
    r->hook_previous_until_ms = TF_TIME_NONE;
    if (previous >= 0 && until >= 0 && !PQgetisnull(res, row, previous)) {
        r->hook_secret_previous = PQgetvalue(res, row, previous);
        if (tf__pg_time(res, row, until, &r->hook_previous_until_ms) != 0) {
            return TF_EIO;
        }
    }
    r->last_run_ms = TF_TIME_NONE;
    if (outcome >= 0) {
        r->last_outcome = tf__pg_text(res, row, outcome);
    }
    if (at >= 0 && !PQgetisnull(res, row, at) && tf__pg_time(res, row, at, &r->last_run_ms) != 0) {
        return TF_EIO;
    }
    return 0;
}

typedef struct {
    tf_rule_get_cb get_cb;
    tf_rule_list_cb list_cb;
    void *arg;
} read_op_t;

static void read_done(const tf_pg_reply_t *reply, void *arg) {
    read_op_t *op = arg;
    tf_rule_t *rules = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*rules), decode_rule, (void **)&rules, &n);
    if (op->get_cb != NULL) {
        op->get_cb(op->arg, rc, rc == 0 && n == 1 ? &rules[0] : NULL);
    } else {
        op->list_cb(op->arg, rc, rules, n);
    }
    free(rules);
    free(op);
}

/* Reads rules with `statement` over `values`. */
static int read_rows(void *ctx, const char *statement, const char *const *values, int n,
                     tf_rule_get_cb get_cb, tf_rule_list_cb list_cb, void *arg) {
    read_op_t *op = malloc(sizeof(*op));
    if (op == NULL) {
        return TF_ENOMEM;
    }
    *op = (read_op_t){.get_cb = get_cb, .list_cb = list_cb, .arg = arg};
    int rc = tf__pg_run(ctx, statement, values, n, read_done, op);
    if (rc != 0) {
        free(op);
    }
    return rc;
}

static int read(void *ctx, const char *statement, const char *tenant_id, const char *id,
                tf_rule_get_cb get_cb, tf_rule_list_cb list_cb, void *arg) {
    const char *values[2] = {tenant_id, id};
    return read_rows(ctx, statement, values, id != NULL ? 2 : 1, get_cb, list_cb, arg);
}

static int get(void *ctx, const char *tenant_id, const char *id, tf_rule_get_cb cb, void *arg) {
    return read(ctx, "rule_get", tenant_id, id, cb, NULL, arg);
}

static int list(void *ctx, const char *tenant_id, tf_rule_list_cb cb, void *arg) {
    return read(ctx, "rule_list", tenant_id, NULL, NULL, cb, arg);
}

static int versions(void *ctx, const char *tenant_id, const char *id, tf_rule_list_cb cb,
                    void *arg) {
    return read(ctx, "rule_versions", tenant_id, id, NULL, cb, arg);
}

/* ---- enable, delete ---- */

static void changed_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    int rc = reply->status;
    if (rc == 0 && tf__pg_int(reply->results[0], 0, 0, 0) == 0) {
        rc = TF_ENOTFOUND;
    }
    ((tf_rule_status_cb)p->cb)(p->arg, rc);
    free(p);
}

static int set_enabled(void *ctx, const char *tenant_id, const char *id, int enabled,
                       int64_t now_ms, tf_rule_status_cb cb, void *arg) {
    tf__pg_time_t now;
    const char *values[4] = {tenant_id, id, enabled ? "true" : "false",
                             tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "rule_enable", values, 4, changed_done, (void (*)(void))cb, arg);
}

static int remove_rule(void *ctx, const char *tenant_id, const char *id, int64_t now_ms,
                       tf_rule_status_cb cb, void *arg) {
    tf__pg_time_t now;
    const char *values[3] = {tenant_id, id, tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "rule_delete", values, 3, changed_done, (void (*)(void))cb, arg);
}

/* ---- firing ---- */

static const char *const outcome_names[] = {"fired", "not_matched", "failed", "skipped"};

static int event_rules(void *ctx, const char *tenant_id, const char *name, tf_rule_list_cb cb,
                       void *arg) {
    const char *values[2] = {tenant_id, name};
    return read_rows(ctx, "rule_event_rules", values, 2, NULL, cb, arg);
}

/* ---- requests that go to the database in groups ---- */

static void waitq_push(tf__pg_waitq_t *q, tf__pg_link_t *item) {
    item->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = item;
    } else {
        q->head = item;
    }
    q->tail = item;
}

/* Detaches the first `max` waiting items at most (one at least must wait):
 * the first, linked to the others; *n their count. */
static tf__pg_link_t *waitq_take(tf__pg_waitq_t *q, size_t max, size_t *n) {
    tf__pg_link_t *first = q->head, *last = first;
    *n = 1;
    while (last->next != NULL && *n < max) {
        last = last->next;
        (*n)++;
    }
    q->head = last->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    last->next = NULL;
    return first;
}

/* ---- recording runs: group commit ----
 *
 * Runs are recorded in groups: while RUNS_IN_FLIGHT groups are being
 * committed, new runs wait, and go together in the next group (up to
 * RUNS_GROUP_MAX runs: each its run statement, then one insert of every
 * job they created, each row guarded by its run), one transaction and one
 * commit for all.  A run's
 * statements never fail for a reason of its own (repeats and stale
 * states are answers, not errors), so a group fails only when the
 * database does; then each run of it is tried again alone, so that one
 * run's failure is its own. */

enum {
    RUN_PARAMS = 15,
    RUN_STATE = 13, /* values[13] the new state (NULL: none), then its version */
    RUNS_IN_FLIGHT = 2,
    RUNS_GROUP_MAX = 64
};

typedef struct run_rec {
    tf__pg_link_t link;       /* first: the queue's */
    char *values[RUN_PARAMS]; /* copies in `block` (NULL: SQL NULL) */
    char *block;              /* one allocation for all of them */
    char *rows;               /* its jobs as a JSON array of submit rows; NULL: none */
    tf_rule_recorded_cb cb;
    void *arg;
} run_rec_t;

#define NEXT_REC(r) ((run_rec_t *)(r)->link.next)

typedef struct {
    tf_pg_store_t *s;
    run_rec_t *recs; /* in order */
    size_t n;
    int alone; /* a retry of one run on its own */
} run_group_t;

static void rec_free(run_rec_t *r) {
    free(r->block);
    free(r->rows);
    free(r);
}

static void runs_flush(tf_pg_store_t *s);
static int group_send(tf_pg_store_t *s, run_rec_t *recs, size_t n, int alone);

static void rec_answer(run_rec_t *r, int rc, const PGresult *res) {
    tf_rule_recorded_t out = {0};
    if (rc == 0) {
        out = (tf_rule_recorded_t){.recorded = tf__pg_int(res, 0, 0, 0) == 1,
                                   .stale = tf__pg_bool(res, 0, 3),
                                   .first_run_id = tf__pg_text(res, 0, 1),
                                   .first_jobs_json = tf__pg_text(res, 0, 2)};
    }
    r->cb(r->arg, rc, &out);
}

static void group_done(const tf_pg_reply_t *reply, void *arg) {
    run_group_t *g = arg;
    tf_pg_store_t *s = g->s;
    s->runs.in_flight -= g->alone ? 0 : 1;
    run_rec_t *r = g->recs;
    if (reply->status == 0) {
        size_t k = 1; /* the runs' statements, in order, after generic_plans */
        while (r != NULL) {
            run_rec_t *next = NEXT_REC(r);
            rec_answer(r, 0, reply->results[k++]);
            rec_free(r);
            r = next;
        }
    } else if (g->n == 1 || g->alone) {
        rec_answer(r, reply->status, NULL);
        rec_free(r);
    } else { /* each alone, so that only a run at fault fails */
        while (r != NULL) {
            run_rec_t *next = NEXT_REC(r);
            r->link.next = NULL;
            int rc = group_send(s, r, 1, 1);
            if (rc != 0) {
                rec_answer(r, rc, NULL);
                rec_free(r);
            }
            r = next;
        }
    }
    free(g);
    runs_flush(s);
}

/* The jobs of the runs `recs` as one JSON array of submit rows (each
 * run's array without its brackets); NULL when none created jobs or out
 * of memory (*oom set). */
static char *group_rows(const run_rec_t *recs, int *oom) {
    size_t len = 0;
    for (const run_rec_t *r = recs; r != NULL; r = NEXT_REC(r)) {
        len += r->rows != NULL ? strlen(r->rows) : 0;
    }
    char *out = len > 0 ? malloc(len + 2) : NULL;
    *oom = len > 0 && out == NULL;
    if (out == NULL) {
        return NULL;
    }
    size_t at = 1;
    out[0] = '[';
    for (const run_rec_t *r = recs; r != NULL; r = NEXT_REC(r)) {
        size_t n = r->rows != NULL ? strlen(r->rows) : 0;
        if (n > 2) { /* "[...]": its items, after a comma but for the first */
            if (at > 1) {
                out[at++] = ',';
            }
            memcpy(out + at, r->rows + 1, n - 2);
            at += n - 2;
        }
    }
    out[at++] = ']';
    out[at] = '\0';
    return out;
}

/* Sends `n` linked runs as one transaction.  Returns 0 or a TF_E* code
 * (nothing sent; the runs are the caller's still). */
static int group_send(tf_pg_store_t *s, run_rec_t *recs, size_t n, int alone) {
    run_group_t *g = malloc(sizeof(*g));
    tf_pg_stmt_t *stmts = calloc(n + 2, sizeof(*stmts));
    int oom = 0;
    char *rows = g != NULL && stmts != NULL ? group_rows(recs, &oom) : NULL;
    if (g == NULL || stmts == NULL || oom) {
        free(g), free(stmts);
        return TF_ENOMEM;
    }
    *g = (run_group_t){.s = s, .recs = recs, .n = n, .alone = alone};
    size_t k = 0;
    stmts[k++] = (tf_pg_stmt_t){.prepared = "generic_plans"};
    for (run_rec_t *r = recs; r != NULL; r = NEXT_REC(r)) {
        int stateless = r->values[RUN_STATE] == NULL;
        stmts[k++] =
            (tf_pg_stmt_t){.prepared = stateless ? "rule_record_run_stateless" : "rule_record_run",
                           .nparams = stateless ? RUN_STATE : RUN_PARAMS,
                           .values = (const char *const *)r->values};
    }
    const char *job_values[2] = {rows, "false"};
    if (rows != NULL) {
        stmts[k++] =
            (tf_pg_stmt_t){.prepared = "jobs_submit_rule", .nparams = 2, .values = job_values};
    }
    int rc = tf_pg_submit(s->pool, stmts, k, 0, group_done, g);
    free(stmts);
    free(rows);
    if (rc != 0) {
        free(g);
    } else if (!alone) {
        s->runs.in_flight++;
    }
    return rc;
}

/* Sends the waiting runs in groups while fewer than RUNS_IN_FLIGHT are
 * being committed. */
static void runs_flush(tf_pg_store_t *s) {
    while (s->runs.head != NULL && s->runs.in_flight < RUNS_IN_FLIGHT) {
        size_t n = 0;
        run_rec_t *first = (run_rec_t *)waitq_take(&s->runs, RUNS_GROUP_MAX, &n);
        int rc = group_send(s, first, n, 0);
        for (run_rec_t *r = rc != 0 ? first : NULL; r != NULL;) {
            run_rec_t *next = NEXT_REC(r);
            rec_answer(r, rc, NULL);
            rec_free(r);
            r = next;
        }
    }
}

static int record_run(void *ctx, const tf_rule_run_t *run, tf_rule_recorded_cb cb, void *arg) {
    tf_pg_store_t *s = ctx;
    run_rec_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return TF_ENOMEM;
    }
    r->cb = cb;
    r->arg = arg;
    /* The job ids as a uuid[] literal, and the jobs as submit rows. */
    const char **ids = run->njobs > 0 ? calloc(run->njobs, sizeof(*ids)) : NULL;
    for (size_t i = 0; ids != NULL && i < run->njobs; i++) {
        ids[i] = run->jobs[i]->id;
    }
    char *ids_text = run->njobs > 0 && ids == NULL ? NULL : tf__pg_uuid_array(ids, run->njobs);
    free(ids);
    int rc = ids_text != NULL ? 0 : TF_ENOMEM;
    if (rc == 0 && run->njobs > 0) {
        tf_jbuf_t rows;
        tf_jbuf_init(&rows);
        tf_jbuf_arr_open(&rows);
        for (size_t i = 0; i < run->njobs; i++) { /* ords unique within any group */
            s->job_ord = (s->job_ord + 1) & 0x3fffffff;
            tf__pg_write_job_row(&rows, run->jobs[i], (int)s->job_ord, run->id);
        }
        tf_jbuf_arr_close(&rows);
        r->rows = tf__pg_jbuf_text(&rows);
        rc = r->rows != NULL ? 0 : TF_ENOMEM;
    }
    tf__pg_time_t at;
    tf__pg_int_t version, duration, state_version;
    const char *values[RUN_PARAMS] = {
        run->tenant_id,
        run->id,
        run->rule_id,
        tf__pg_int_param(run->version, &version),
        run->trigger,
        run->dedup_key,
        tf__pg_time_param(run->at_ms, &at),
        outcome_names[run->outcome],
        run->condition < 0 ? NULL
        : run->condition   ? "true"
                           : "false",
        ids_text,
        run->error_type,
        run->error_message,
        tf__pg_int_param(run->duration_ms, &duration),
        run->state_json,
        tf__pg_int_param(run->state_version, &state_version),
    };
    size_t size = 0; /* the values outlive this call: copied, in one block */
    for (int i = 0; i < RUN_PARAMS; i++) {
        size += values[i] != NULL ? strlen(values[i]) + 1 : 0;
    }
    if (rc == 0 && (r->block = malloc(size > 0 ? size : 1)) == NULL) {
        rc = TF_ENOMEM;
    }
    for (size_t i = 0, used = 0; rc == 0 && i < RUN_PARAMS; i++) {
        if (values[i] != NULL) {
            size_t len = strlen(values[i]) + 1;
            r->values[i] = memcpy(r->block + used, values[i], len);
            used += len;
        }
    }
    free(ids_text);
    if (rc != 0) {
        rec_free(r);
        return rc;
    }
    waitq_push(&s->runs, &r->link);
    runs_flush(s);
    return 0;
}

static void state_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    const PGresult *res = reply->status == 0 ? reply->results[0] : NULL;
    int found = res != NULL && PQntuples(res) == 1;
    ((tf_rule_state_cb)p->cb)(p->arg, reply->status, found ? PQgetvalue(res, 0, 0) : NULL,
                              found ? tf__pg_int(res, 0, 1, 0) : 0);
    free(p);
}

static int rule_state(void *ctx, const char *tenant_id, const char *rule_id, tf_rule_state_cb cb,
                      void *arg) {
    const char *values[2] = {tenant_id, rule_id};
    return tf__pg_run_pending(ctx, "rule_state", values, 2, state_done, (void (*)(void))cb, arg);
}

/* ---- webhook rules: read in groups ----
 *
 * Deliveries that arrive while HOOKS_IN_FLIGHT reads are out wait and are
 * read together by the next (up to HOOKS_GROUP_MAX keys in one
 * statement): a delivery's rule is always read fresh, but the database
 * wakes once for a group. */

enum { HOOKS_IN_FLIGHT = 2, HOOKS_GROUP_MAX = 64 };

typedef struct {
    tf__pg_link_t link; /* first: the queue's */
    char key[TF_RULE_HOOK_KEY_LEN + 1];
    tf_rule_get_cb cb;
    void *arg;
} hook_req_t;

#define NEXT_REQ(q) ((hook_req_t *)(q)->link.next)

typedef struct {
    tf_pg_store_t *s;
    hook_req_t *reqs;
} hook_group_t;

static void hooks_flush(tf_pg_store_t *s);

static void hook_group_done(const tf_pg_reply_t *reply, void *arg) {
    hook_group_t *g = arg;
    tf_pg_store_t *s = g->s;
    s->hooks.in_flight--;
    tf_rule_t *rules = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*rules), decode_rule, (void **)&rules, &n);
    for (hook_req_t *q = g->reqs; q != NULL;) {
        hook_req_t *next = NEXT_REQ(q);
        const tf_rule_t *found = NULL;
        for (size_t i = 0; rc == 0 && i < n && found == NULL; i++) {
            found = rules[i].hook_key != NULL && strcmp(rules[i].hook_key, q->key) == 0 ? &rules[i]
                                                                                        : NULL;
        }
        q->cb(q->arg, rc, found);
        free(q);
        q = next;
    }
    free(rules);
    free(g);
    hooks_flush(s);
}

/* Reads the waiting deliveries' rules in groups while fewer than
 * HOOKS_IN_FLIGHT reads are out. */
static void hooks_flush(tf_pg_store_t *s) {
    while (s->hooks.head != NULL && s->hooks.in_flight < HOOKS_IN_FLIGHT) {
        const char *keys[HOOKS_GROUP_MAX];
        size_t n = 0, k = 0;
        hook_req_t *first = (hook_req_t *)waitq_take(&s->hooks, HOOKS_GROUP_MAX, &n);
        for (hook_req_t *q = first; q != NULL; q = NEXT_REQ(q)) {
            keys[k++] = q->key;
        }
        hook_group_t *g = malloc(sizeof(*g));
        char *list = g != NULL ? tf__pg_text_array(keys, n) : NULL;
        const char *values[1] = {list};
        int rc =
            list != NULL ? tf__pg_run(s, "rule_hook", values, 1, hook_group_done, g) : TF_ENOMEM;
        free(list);
        if (rc == 0) {
            *g = (hook_group_t){.s = s, .reqs = first};
            s->hooks.in_flight++;
            continue;
        }
        free(g);
        for (hook_req_t *q = first; q != NULL;) {
            hook_req_t *next = NEXT_REQ(q);
            q->cb(q->arg, rc, NULL);
            free(q);
            q = next;
        }
    }
}

static int hook_rule(void *ctx, const char *hook_key, tf_rule_get_cb cb, void *arg) {
    tf_pg_store_t *s = ctx;
    if (strlen(hook_key) != TF_RULE_HOOK_KEY_LEN) {
        return TF_EINVAL; /* the API answers such keys itself */
    }
    hook_req_t *q = malloc(sizeof(*q));
    if (q == NULL) {
        return TF_ENOMEM;
    }
    *q = (hook_req_t){.cb = cb, .arg = arg};
    memcpy(q->key, hook_key, sizeof(q->key));
    waitq_push(&s->hooks, &q->link);
    hooks_flush(s);
    return 0;
}

static int decode_run(const PGresult *res, int row, void *item) {
    tf_rule_run_row_t *r = item;
    const char *outcome = PQgetvalue(res, row, 6);
    *r = (tf_rule_run_row_t){
        .id = PQgetvalue(res, row, 0),
        .rule_id = PQgetvalue(res, row, 1),
        .version = (int)tf__pg_int(res, row, 2, 0),
        .trigger = PQgetvalue(res, row, 3),
        .dedup_key = tf__pg_text(res, row, 4),
        .condition = PQgetisnull(res, row, 7) ? -1 : tf__pg_bool(res, row, 7),
        .jobs_json = PQgetvalue(res, row, 8),
        .error_type = tf__pg_text(res, row, 9),
        .error_message = tf__pg_text(res, row, 10),
        .duration_ms = tf__pg_int(res, row, 11, 0),
        .tenant_id = PQgetvalue(res, row, 12),
    };
    for (size_t i = 0; i < sizeof(outcome_names) / sizeof(outcome_names[0]); i++) {
        if (strcmp(outcome, outcome_names[i]) == 0) {
            r->outcome = (tf_rule_run_outcome_t)i;
        }
    }
    return tf__pg_time(res, row, 5, &r->at_ms) != 0 ? TF_EIO : 0;
}

static void runs_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_rule_run_row_t *runs = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*runs), decode_run, (void **)&runs, &n);
    ((tf_rule_runs_cb)p->cb)(p->arg, rc, runs, n);
    free(runs);
    free(p);
}

static int runs(void *ctx, const char *tenant_id, const char *rule_id, const char *before_id,
                int outcome, int limit, tf_rule_runs_cb cb, void *arg) {
    tf__pg_int_t lim;
    const char *values[5] = {tenant_id, rule_id, before_id,
                             outcome >= 0 && outcome <= TF_RULE_RUN_SKIPPED ? outcome_names[outcome]
                                                                            : NULL,
                             tf__pg_int_param(limit, &lim)};
    return tf__pg_run_pending(ctx, "rule_runs", values, 5, runs_done, (void (*)(void))cb, arg);
}

static void rotated(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    int rc = reply->status;
    const char *why = rc == 0 ? tf__pg_text(reply->results[0], 0, 0) : NULL;
    if (why != NULL) {
        rc = strcmp(why, "missing") == 0 ? TF_ENOTFOUND : TF_ESTATE;
    }
    ((tf_rule_status_cb)p->cb)(p->arg, rc);
    free(p);
}

static int rotate_secret(void *ctx, const char *tenant_id, const char *id, const char *secret,
                         int64_t previous_until_ms, int64_t now_ms, tf_rule_status_cb cb,
                         void *arg) {
    tf__pg_time_t until, now;
    const char *values[5] = {tenant_id, id, secret, tf__pg_time_param(previous_until_ms, &until),
                             tf__pg_time_param(now_ms, &now)};
    return tf__pg_run_pending(ctx, "rule_rotate_secret", values, 5, rotated, (void (*)(void))cb,
                              arg);
}

static int admin_list(void *ctx, const char *after_id, int limit, tf_rule_list_cb cb, void *arg) {
    tf__pg_int_t lim;
    const char *values[2] = {after_id, tf__pg_int_param(limit, &lim)};
    return read_rows(ctx, "rule_admin_list", values, 2, NULL, cb, arg);
}

/* ---- cron ---- */

static void due_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    tf_rule_t *rules = NULL;
    size_t n = 0;
    int rc = tf__pg_rows(reply, sizeof(*rules), decode_rule, (void **)&rules, &n);
    ((tf_rule_list_cb)p->cb)(p->arg, rc, rules, n);
    free(rules);
    free(p);
}

static int cron_due(void *ctx, const char *node, int64_t now_ms, int64_t lease_ms, int limit,
                    tf_rule_list_cb cb, void *arg) {
    tf__pg_time_t now;
    tf__pg_int_t lease, lim;
    const char *values[4] = {tf__pg_time_param(now_ms, &now), node,
                             tf__pg_int_param(lease_ms, &lease), tf__pg_int_param(limit, &lim)};
    return tf__pg_run_pending(ctx, "rule_cron_due", values, 4, due_done, (void (*)(void))cb, arg);
}

static void cron_done_done(const tf_pg_reply_t *reply, void *arg) {
    tf__pg_pending_t *p = arg;
    int rc = reply->status;
    size_t released = rc == 0 ? (size_t)tf__pg_int(reply->results[0], 0, 0, 0) : 0;
    ((tf_rule_cron_done_cb)p->cb)(p->arg, rc, released);
    free(p);
}

/* The text[] literals of a batch of cron_done: a string list per column. */
enum { DONE_RULE, DONE_TENANT, DONE_VERSION, DONE_DUE, DONE_NEXT, DONE_COLS };
enum { SKIP_RULE, SKIP_ID, SKIP_AT, SKIP_KEY, SKIP_REASON, SKIP_MESSAGE, SKIP_COLS };

static int cron_done(void *ctx, const char *node, const tf_rule_cron_done_t *d, size_t n,
                     tf_rule_cron_done_cb cb, void *arg) {
    size_t nskip = 0;
    for (size_t i = 0; i < n; i++) {
        nskip += d[i].nskipped;
    }
    size_t rows = n > nskip ? n : nskip;
    const char **cols = calloc((DONE_COLS + SKIP_COLS) * (rows + 1), sizeof(*cols));
    char(*versions)[24] = calloc(n + 1, sizeof(*versions));
    tf__pg_time_t *times = calloc(2 * n + nskip + 1, sizeof(*times));
    char *lits[DONE_COLS + SKIP_COLS] = {0};
    int rc = cols != NULL && versions != NULL && times != NULL ? 0 : TF_ENOMEM;
    const char **done_col[DONE_COLS], **skip_col[SKIP_COLS];
    for (int c = 0; rc == 0 && c < DONE_COLS; c++) {
        done_col[c] = cols + (size_t)c * (rows + 1);
    }
    for (int c = 0; rc == 0 && c < SKIP_COLS; c++) {
        skip_col[c] = cols + (size_t)(DONE_COLS + c) * (rows + 1);
    }
    size_t k = 0, tm = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        snprintf(versions[i], sizeof(versions[i]), "%d", d[i].version);
        done_col[DONE_RULE][i] = d[i].rule_id;
        done_col[DONE_TENANT][i] = d[i].tenant_id;
        done_col[DONE_VERSION][i] = versions[i];
        done_col[DONE_DUE][i] = tf__pg_time_param(d[i].due_ms, &times[tm++]);
        done_col[DONE_NEXT][i] =
            d[i].next_ms != TF_TIME_NONE ? tf__pg_time_param(d[i].next_ms, &times[tm++]) : NULL;
        for (size_t j = 0; j < d[i].nskipped; j++, k++) {
            skip_col[SKIP_RULE][k] = d[i].rule_id;
            skip_col[SKIP_ID][k] = d[i].run_ids[j];
            skip_col[SKIP_AT][k] = tf__pg_time_param(d[i].skipped_ms[j], &times[tm++]);
            skip_col[SKIP_KEY][k] = d[i].dedup_keys[j];
            skip_col[SKIP_REASON][k] = d[i].reasons[j];
            skip_col[SKIP_MESSAGE][k] = d[i].messages[j];
        }
    }
    for (int c = 0; rc == 0 && c < DONE_COLS + SKIP_COLS; c++) {
        lits[c] = tf__pg_text_array(cols + (size_t)c * (rows + 1), c < DONE_COLS ? n : nskip);
        rc = lits[c] != NULL ? 0 : TF_ENOMEM;
    }
    if (rc == 0) {
        const char *values[1 + DONE_COLS + SKIP_COLS] = {node};
        for (int c = 0; c < DONE_COLS + SKIP_COLS; c++) {
            values[1 + c] = lits[c];
        }
        rc = tf__pg_run_pending(ctx, "rule_cron_done", values, 1 + DONE_COLS + SKIP_COLS,
                                cron_done_done, (void (*)(void))cb, arg);
    }
    for (int c = 0; c < DONE_COLS + SKIP_COLS; c++) {
        free(lits[c]);
    }
    free(cols), free(versions), free(times);
    return rc;
}

/* ---- job events ---- */

typedef struct {
    tf_rule_job_events_cb cb;
    void *arg;
    int limit;
} events_op_t;

static void job_events_done(const tf_pg_reply_t *reply, void *arg) {
    events_op_t *op = arg;
    int rc = reply->status;
    const PGresult *res = rc == 0 ? reply->results[0] : NULL;
    int rows = res != NULL ? PQntuples(res) : 0;
    if (rc == 0 && (rows < 1 || PQnfields(res) != 10)) {
        rc = TF_EIO;
    }
    int held = rc == 0 && tf__pg_int(res, 0, 0, 0) == 1;
    size_t n = held && !PQgetisnull(res, 0, 2) ? (size_t)rows : 0;
    tf_rule_job_event_t *events = n > 0 ? calloc(n, sizeof(*events)) : NULL;
    if (n > 0 && events == NULL) {
        rc = TF_ENOMEM;
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        int r = (int)i;
        events[i] = (tf_rule_job_event_t){.tenant_id = PQgetvalue(res, r, 2),
                                          .id = tf__pg_int(res, r, 3, 0),
                                          .name = PQgetvalue(res, r, 4),
                                          .job_type = PQgetvalue(res, r, 5),
                                          .job_queue = PQgetvalue(res, r, 6),
                                          .correlation_id = tf__pg_text(res, r, 7),
                                          .event_json = PQgetvalue(res, r, 8)};
    }
    /* A full page: up to its last event; else every event before the
     * snapshot's xmin is dealt with. */
    char position[64] = "";
    if (rc == 0 && held) {
        if (n > 0 && n == (size_t)op->limit) {
            snprintf(position, sizeof(position), "%s/%s", PQgetvalue(res, rows - 1, 9),
                     PQgetvalue(res, rows - 1, 3));
        } else {
            snprintf(position, sizeof(position), "%s/0", PQgetvalue(res, 0, 1));
        }
    }
    op->cb(op->arg, rc, held, events, n, position);
    free(events);
    free(op);
}

static int job_events(void *ctx, const char *node, int64_t now_ms, int64_t lease_ms, int limit,
                      tf_rule_job_events_cb cb, void *arg) {
    events_op_t *op = malloc(sizeof(*op));
    if (op == NULL) {
        return TF_ENOMEM;
    }
    *op = (events_op_t){.cb = cb, .arg = arg, .limit = limit};
    tf__pg_time_t now;
    tf__pg_int_t lease, lim;
    const char *values[4] = {tf__pg_time_param(now_ms, &now), node,
                             tf__pg_int_param(lease_ms, &lease), tf__pg_int_param(limit, &lim)};
    int rc = tf__pg_run(ctx, "rule_job_events", values, 4, job_events_done, op);
    if (rc != 0) {
        free(op);
    }
    return rc;
}

static int job_events_moved(void *ctx, const char *node, const char *position, tf_rule_status_cb cb,
                            void *arg) {
    char xid[32], id[32];
    const char *slash = strchr(position, '/');
    if (slash == NULL || (size_t)(slash - position) >= sizeof(xid) || strlen(slash + 1) >= 32) {
        return TF_EINVAL;
    }
    memcpy(xid, position, (size_t)(slash - position));
    xid[slash - position] = '\0';
    snprintf(id, sizeof(id), "%s", slash + 1);
    const char *values[3] = {node, xid, id};
    return tf__pg_run_pending(ctx, "rule_job_events_done", values, 3, changed_done,
                              (void (*)(void))cb, arg);
}

static int job_rules(void *ctx, const char *tenant_id, const char *event, const char *type,
                     const char *queue, tf_rule_list_cb cb, void *arg) {
    const char *values[4] = {tenant_id, event, type, queue};
    return read_rows(ctx, "rule_job_rules", values, 4, NULL, cb, arg);
}

void tf__pg_rules_bind(tf_rule_store_t *port) {
    port->create = create;
    port->update = update;
    port->get = get;
    port->list = list;
    port->versions = versions;
    port->set_enabled = set_enabled;
    port->remove = remove_rule;
    port->event_rules = event_rules;
    port->record_run = record_run;
    port->runs = runs;
    port->hook_rule = hook_rule;
    port->state = rule_state;
    port->cron_due = cron_due;
    port->cron_done = cron_done;
    port->job_events = job_events;
    port->job_events_done = job_events_moved;
    port->job_rules = job_rules;
    port->admin_list = admin_list;
    port->rotate_secret = rotate_secret;
}
