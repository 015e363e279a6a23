/*
 * submit_sql.h - the one statement that writes new jobs, for both group
 * commit (many independent POST /v1/jobs requests) and POST /v1/jobs/batch.
 *
 * $1 is a JSON array of rows (see jobs_submit.c for the members), $2 says
 * whether the rows are one all-or-nothing batch.  The statement inserts the
 * jobs, their `ready` or `scheduled` rows and their `created` events, skips
 * rows whose idempotency key exists (ON CONFLICT DO NOTHING) and rows whose
 * `depends_on` names a job the tenant does not have, and returns one row per
 * input row:
 *   0 ord, 1 state inserted (NULL: not inserted), 2 missing parent ids
 *   (comma-separated, NULL: none), 3 request hash of the existing job with
 *   the same idempotency key (hex), 4 always NULL, 5 the existing job's id
 *   (NULL unless an idempotency key matched).  Existing jobs are read
 *   afterwards (TF_SUBMIT_BY_KEY_SQL, TF_SUBMIT_BY_IDS_SQL): replays are rare
 *   and the common case stays one round trip.
 * In batch mode any skipped row aborts the whole statement through
 * tf_abort('tf_batch:<ord>:<problem>[:<detail>]') (migration 0002), so
 * nothing is written.
 */
#ifndef TF_ADAPTERS_APP_SUBMIT_SQL_H
#define TF_ADAPTERS_APP_SUBMIT_SQL_H

#include "adapters/app/job_json.h"

enum {
    TF_SUBMIT_COL_ORD = 0,
    TF_SUBMIT_COL_STATE = 1,
    TF_SUBMIT_COL_MISSING = 2,
    TF_SUBMIT_COL_EXISTING_HASH = 3,
    TF_SUBMIT_COL_EXISTING_ID = 5,
};

#define TF_SUBMIT_SQL                                                                              \
    "WITH input AS ("                                                                              \
    " SELECT * FROM json_to_recordset($1::json) AS x(ord int, tenant_id uuid, id uuid, queue "     \
    "text,"                                                                                        \
    " type text, priority int2, payload jsonb, max_attempts int, retry_policy jsonb,"              \
    " timeout_ms int, executor jsonb, metadata jsonb, idempotency_key text, request_hash text,"    \
    " correlation_id text, depends_on uuid[], run_at timestamptz, created_at timestamptz,"         \
    " scheduled bool, actor text)),"                                                               \
    " parents AS ("                                                                                \
    " SELECT i.ord, pc.found, pc.pending, pc.doomed FROM input i CROSS JOIN LATERAL ("             \
    " SELECT count(*) AS found, count(*) FILTER (WHERE p.state <> 3) AS pending,"                  \
    " coalesce(bool_or(p.state IN (4, 5, 6)), false) AS doomed FROM (SELECT state FROM jobs p"     \
    " WHERE p.tenant_id = i.tenant_id AND p.id = ANY (i.depends_on) FOR KEY SHARE) p) pc"          \
    " WHERE cardinality(i.depends_on) > 0),"                                                       \
    " rows AS ("                                                                                   \
    " SELECT i.*, coalesce(pa.found, 0) AS found, coalesce(pa.pending, 0)::int AS pending,"        \
    " (CASE WHEN pa.doomed THEN 6 WHEN coalesce(pa.pending, 0) > 0 THEN 0"                         \
    " WHEN i.scheduled THEN 1 ELSE 0 END)::int2 AS state,"                                         \
    " coalesce(cardinality(i.depends_on), 0) AS wanted"                                            \
    " FROM input i LEFT JOIN parents pa USING (ord)),"                                             \
    " ins AS ("                                                                                    \
    " INSERT INTO jobs (tenant_id, id, queue, type, state, priority, payload, max_attempts,"       \
    " retry_policy, timeout_ms, executor, metadata, idempotency_key, request_hash,"                \
    " correlation_id, depends_on, pending_parents, run_at, created_at, updated_at, finished_at)"   \
    " SELECT tenant_id, id, queue, type, state, priority, coalesce(payload, 'null'::jsonb),"       \
    " max_attempts, retry_policy, timeout_ms, executor, coalesce(metadata, '{}'), "                \
    "idempotency_key,"                                                                             \
    " decode(request_hash, 'hex'), correlation_id, coalesce(depends_on, '{}'), pending, run_at,"   \
    " created_at, created_at, CASE WHEN state = 6 THEN created_at END"                             \
    " FROM rows WHERE found = wanted"                                                              \
    " ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"       \
    " RETURNING tenant_id, id, queue, state, priority, run_at, executor IS NOT NULL AS builtin,"   \
    " pending_parents, created_at),"                                                               \
    " rdy AS ("                                                                                    \
    " INSERT INTO ready (tenant_id, job_id, queue, builtin, sort_key, run_at)"                     \
    " SELECT n.tenant_id, n.id, n.queue, n.builtin,"                                               \
    " n.run_at - n.priority * coalesce(q.priority_boost_ms, 60000)::float8"                        \
    " * interval '1 millisecond',"                                                                 \
    " n.run_at"                                                                                    \
    " FROM ins n LEFT JOIN queues q ON q.name = n.queue"                                           \
    " WHERE n.state = 0 AND n.pending_parents = 0),"                                               \
    " sch AS ("                                                                                    \
    " INSERT INTO scheduled (tenant_id, job_id, queue, run_at)"                                    \
    " SELECT tenant_id, id, queue, run_at FROM ins WHERE state = 1),"                              \
    " ev AS ("                                                                                     \
    " INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)"         \
    " SELECT n.tenant_id, n.id, n.created_at, NULL, n.state,"                                      \
    " CASE WHEN n.state = 6 THEN 'dependency_failed' ELSE 'created' END, r.actor"                  \
    " FROM ins n JOIN rows r ON r.id = n.id),"                                                     \
    " prior AS ("                                                                                  \
    " SELECT r.ord, x.id, x.request_hash FROM rows r CROSS JOIN LATERAL ("                         \
    " SELECT j.id, j.request_hash FROM jobs j"                                                     \
    " WHERE j.tenant_id = r.tenant_id AND j.idempotency_key = r.idempotency_key LIMIT 1) x"        \
    " WHERE r.idempotency_key IS NOT NULL)"                                                        \
    " SELECT r.ord, n.state, m.missing, encode(e.request_hash, 'hex'),"                            \
    " CASE WHEN $2::bool THEN CASE"                                                                \
    " WHEN m.missing IS NOT NULL THEN tf_abort('tf_batch:' || r.ord || ':missing_parent:'"         \
    " || m.missing)"                                                                               \
    " WHEN n.id IS NULL AND e.id IS NULL THEN tf_abort('tf_batch:' || r.ord || ':retry')"          \
    " WHEN n.id IS NULL AND e.request_hash IS DISTINCT FROM decode(r.request_hash, 'hex')"         \
    " THEN tf_abort('tf_batch:' || r.ord || ':conflict') END END,"                                 \
    " e.id::text"                                                                                  \
    " FROM rows r"                                                                                 \
    " LEFT JOIN LATERAL (SELECT string_agg(d::text, ',') AS missing FROM unnest(r.depends_on) d"   \
    " WHERE r.found < r.wanted AND NOT EXISTS (SELECT 1 FROM jobs p"                               \
    " WHERE p.tenant_id = r.tenant_id AND p.id = d)) m ON true"                                    \
    " LEFT JOIN ins n ON n.id = r.id"                                                              \
    " LEFT JOIN prior e ON e.ord = r.ord"                                                          \
    " ORDER BY r.ord"

/* An existing job by idempotency key: 0 request hash (hex), 1.. the job. */
#define TF_SUBMIT_BY_KEY_SQL                                                                       \
    "SELECT encode(j.request_hash, 'hex'), " TF_JOB_COLUMNS " FROM jobs j"                         \
    " WHERE j.tenant_id = $1::uuid AND j.idempotency_key = $2"

/* Wakes the workers of the queues in $1 (text[]), in the submitting
 * transaction: NOTIFY is delivered at commit. */
#define TF_SUBMIT_NOTIFY_SQL                                                                       \
    "SELECT count(pg_notify('taskflow_ready', q)) FROM unnest($1::text[]) q"

/* Existing jobs of one tenant by id: the job columns only. */
#define TF_SUBMIT_BY_IDS_SQL                                                                       \
    "SELECT " TF_JOB_COLUMNS " FROM jobs j WHERE j.tenant_id = $1::uuid AND j.id = ANY "           \
    "($2::uuid[])"

#endif
