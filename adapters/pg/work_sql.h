/*
 * work_sql.h - the statements of running jobs (store_work.c): claims,
 * retry decisions, finishing attempts, heartbeats, promotion, rescue,
 * release, and what the runner and the gauges poll.  The functions they
 * call (tf_claim, tf_make_ready, tf_release_dependants) are in migration
 * 0004.  Every time is a parameter from the clock port.
 */
#ifndef TF_ADAPTERS_PG_WORK_SQL_H
#define TF_ADAPTERS_PG_WORK_SQL_H

#include "engine/job.h"

/* The statements are laid out by hand: clang-format would split the SQL
 * at every macro. */
/* clang-format off */

/* $1 queue, $2 builtin, $3 worker, $4 lease ms, $5 tenants, $6 quotas,
 * $7 virtual times (or NULL), $8 queue clock, $9 now. */
#define TF_SQL_CLAIM                                                                               \
    "SELECT * FROM tf_claim($1, $2::boolean, $3, $4::integer, $5::uuid[], $6::integer[],"          \
    " $7::float8[], $8::float8, $9::timestamptz)"

/* Columns of a claimed job (tf_claim's result). */
enum {
    TF_CLAIM_COL_ID = 0,
    TF_CLAIM_COL_TENANT,
    TF_CLAIM_COL_QUEUE,
    TF_CLAIM_COL_TYPE,
    TF_CLAIM_COL_PAYLOAD,
    TF_CLAIM_COL_ATTEMPT,
    TF_CLAIM_COL_MAX_ATTEMPTS,
    TF_CLAIM_COL_LEASE_TOKEN,
    TF_CLAIM_COL_LEASE_EXPIRES,
    TF_CLAIM_COL_TIMEOUT_MS,
    TF_CLAIM_COL_EXECUTOR,
    TF_CLAIM_COL_EXECUTOR_KIND,
    TF_CLAIM_COL_CORRELATION,
    TF_CLAIM_COL_CREATED_AT,
    TF_CLAIM_COL_SIGNING_SECRET,
};

/* Tenants with ready work in ($1 queue, $2 builtin), by a loose index scan
 * over ready_claim_idx: tenant, weight, backlog (capped at 1000), virtual
 * time, and the queue's virtual clock. */
#define TF_SQL_CANDIDATES                                                                          \
    "WITH RECURSIVE t AS ("                                                                        \
    " (SELECT r.tenant_id FROM ready r WHERE r.queue = $1 AND r.builtin = $2::boolean"             \
    "  ORDER BY r.tenant_id LIMIT 1)"                                                              \
    " UNION ALL"                                                                                   \
    " SELECT (SELECT r.tenant_id FROM ready r WHERE r.queue = $1 AND r.builtin = $2::boolean"      \
    "  AND r.tenant_id > t.tenant_id ORDER BY r.tenant_id LIMIT 1)"                                \
    " FROM t WHERE t.tenant_id IS NOT NULL)"                                                       \
    " SELECT t.tenant_id::text, coalesce(tq.weight, tn.weight),"                                   \
    " (SELECT count(*) FROM (SELECT 1 FROM ready r WHERE r.queue = $1"                             \
    "  AND r.builtin = $2::boolean AND r.tenant_id = t.tenant_id LIMIT 1000) b),"                  \
    " coalesce(cc.vtime, 0),"                                                                      \
    " coalesce((SELECT q.vtime FROM cap_counters q WHERE q.scope = 3"                              \
    "  AND q.tenant_id = '00000000-0000-0000-0000-000000000000' AND q.queue = $1), 0)"             \
    " FROM t JOIN tenants tn ON tn.id = t.tenant_id"                                               \
    " LEFT JOIN tenant_queues tq ON tq.tenant_id = t.tenant_id AND tq.queue = $1"                  \
    " LEFT JOIN cap_counters cc ON cc.scope = 1 AND cc.tenant_id = t.tenant_id AND cc.queue = $1"  \
    " WHERE t.tenant_id IS NOT NULL LIMIT 1000"

/* For the retry decision of failed attempts: $1 JSON rows {ord,
 * tenant_id|null, id}.  Returns ord, tenant (NULL: no such job for the
 * caller), attempts, retry policy (JSON or NULL: the defaults). */
#define TF_SQL_FAILED_JOBS                                                                         \
    "SELECT i.ord, j.tenant_id::text, j.attempts, j.retry_policy::text"                            \
    " FROM json_to_recordset($1::json) AS i(ord int, tenant_id uuid, id uuid)"                     \
    " LEFT JOIN LATERAL (SELECT * FROM jobs j WHERE j.tenant_id = coalesce(i.tenant_id,"           \
    "  (SELECT ru.tenant_id FROM running ru WHERE ru.job_id = i.id LIMIT 1))"                      \
    "  AND j.id = i.id LIMIT 1) j ON true ORDER BY i.ord"

/* Ends attempts: $1 JSON rows {ord, tenant_id|null, id, token, worker,
 * actor, to_state, result, error_type, error_message, run_at, ended_at
 * (the attempt's end: null is $3; kept between the attempt's start and $3),
 * attempt_outcome, reason, dependants ('release'|'cancel'|null)}, $2 the
 * staged domain events (JSON rows {job_id, name, state, reason}), $3 now.
 * Each row is applied only while the job is RUNNING under that lease token;
 * a refused row is recorded as a "stale_lease_refused" transition.  An
 * applied row writes its attempt and transition, moves the narrow rows
 * (running out; scheduled or dead_letters in), records its staged event in
 * the outbox, and, as the explicit step `deps`, applies the dependency
 * release the use case decided when the job has dependants.  Returns per
 * row: ord, the new state (NULL: not applied), whether the job exists,
 * dependants released, dependants cancelled. */
#define TF_SQL_FINISH                                                                              \
    "WITH input AS (SELECT * FROM json_to_recordset($1::json) AS x(ord int, tenant_id uuid,"       \
    "  id uuid, token uuid, worker text, actor text, to_state int2, result jsonb,"                 \
    "  error_type text, error_message text, run_at timestamptz, ended_at timestamptz,"            \
    "  attempt_outcome int, reason text, dependants text, executor_version int)),"                \
    " r AS (SELECT i.*, coalesce(i.tenant_id, ru.tenant_id) AS tid,"                               \
    "  least(coalesce(i.ended_at, $3::timestamptz), $3::timestamptz) AS at,"                      \
    "  coalesce(i.worker, ru.locked_by, 'unknown') AS holder FROM input i"                         \
    "  LEFT JOIN LATERAL (SELECT * FROM running ru WHERE ru.job_id = i.id"                         \
    "  AND (i.tenant_id IS NULL OR ru.tenant_id = i.tenant_id) LIMIT 1) ru ON true),"              \
    " upd AS (UPDATE jobs j SET state = r.to_state,"                                               \
    "  result = CASE WHEN r.to_state = " TF_SQL_STATE(SUCCEEDED) " THEN r.result ELSE j.result"    \
    "   END,"                                                                                      \
    "  last_error_type = CASE WHEN r.to_state = " TF_SQL_STATE(SUCCEEDED)                          \
    "  OR r.attempt_outcome = " TF_SQL_ATTEMPT_SNOOZED " THEN j.last_error_type"                  \
    "  ELSE r.error_type END,"                                                                     \
    "  last_error_message = CASE WHEN r.to_state = " TF_SQL_STATE(SUCCEEDED)                       \
    "  OR r.attempt_outcome = " TF_SQL_ATTEMPT_SNOOZED " THEN j.last_error_message"               \
    "  ELSE r.error_message END,"                                                                  \
    "  attempts = j.attempts - CASE WHEN r.attempt_outcome = " TF_SQL_ATTEMPT_SNOOZED              \
    "  THEN 1 ELSE 0 END,"                                                                         \
    "  run_at = CASE WHEN r.to_state = " TF_SQL_STATE(SCHEDULED) " THEN r.run_at ELSE j.run_at"    \
    "   END,"                                                                                      \
    "  finished_at = CASE WHEN r.to_state = " TF_SQL_STATE(SCHEDULED)                              \
    " THEN NULL ELSE greatest(r.at, j.started_at) END,"                                           \
    "  lease_token = NULL, lease_expires_at = NULL, locked_by = NULL,"                             \
    "  updated_at = $3::timestamptz"                                                               \
    "  FROM r WHERE j.tenant_id = r.tid AND j.id = r.id AND j.state = " TF_SQL_STATE(RUNNING)      \
    "  AND j.lease_token = r.token"                                                                \
    "  RETURNING j.tenant_id, j.id, j.state, j.queue, j.attempts, j.started_at, j.run_at,"         \
    "  j.has_dependants),"                                                                         \
    " del AS (DELETE FROM running ru USING upd"                                                    \
    "  WHERE ru.tenant_id = upd.tenant_id AND ru.job_id = upd.id),"                                \
    " att AS (INSERT INTO job_attempts (tenant_id, job_id, attempt, worker, lease_token,"          \
    "  started_at, finished_at, duration_ms, outcome, error_type, error_message,"                  \
    "  executor_version)"                                                                          \
    "  SELECT u.tenant_id, u.id, u.attempts + CASE WHEN r.attempt_outcome = "                      \
    TF_SQL_ATTEMPT_SNOOZED " THEN 1 ELSE 0 END, r.holder, r.token, u.started_at,"                  \
    "  greatest(r.at, u.started_at),"                                                              \
    "  greatest(0, (extract(epoch FROM r.at - u.started_at) * 1000)::bigint),"                    \
    "  r.attempt_outcome, r.error_type, r.error_message, r.executor_version"                       \
    "  FROM upd u JOIN r ON r.id = u.id),"                                                         \
    " ev AS (INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)"  \
    "  SELECT u.tenant_id, u.id, greatest(r.at, u.started_at), " TF_SQL_STATE(RUNNING) ", u.state," \
    "  r.reason,"                                                                                  \
    "  coalesce(r.actor, 'worker:' || r.holder) FROM upd u JOIN r ON r.id = u.id),"                \
    " sch AS (INSERT INTO scheduled (tenant_id, job_id, queue, run_at)"                            \
    "  SELECT tenant_id, id, queue, run_at FROM upd WHERE state = " TF_SQL_STATE(SCHEDULED) "),"   \
    " dl AS (INSERT INTO dead_letters (tenant_id, job_id, queue, died_at)"                         \
    "  SELECT tenant_id, id, queue, $3::timestamptz FROM upd WHERE state = "                       \
    TF_SQL_STATE(DEAD) "),"                                                                        \
    " ob AS (INSERT INTO domain_events (tenant_id, name, job_id, state, reason, created_at)"       \
    "  SELECT u.tenant_id, e.name, u.id, u.state, e.reason, $3::timestamptz FROM upd u"            \
    "  JOIN json_to_recordset($2::json) AS e(job_id uuid, name text, state int2, reason text)"     \
    "  ON e.job_id = u.id AND e.state = u.state),"                                                 \
    " stale AS (INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason,"      \
    "  actor)"                                                                                     \
    "  SELECT j.tenant_id, j.id, $3::timestamptz, j.state, j.state, 'stale_lease_refused',"        \
    "  coalesce(r.actor, 'worker:' || r.holder)"                                                   \
    "  FROM r JOIN jobs j ON j.tenant_id = r.tid AND j.id = r.id"                                  \
    "  WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.id = r.id) RETURNING job_id),"                \
    " deps AS MATERIALIZED (SELECT u.id, d.released, d.cancelled FROM upd u"                       \
    "  JOIN r ON r.id = u.id"                                                                      \
    "  CROSS JOIN LATERAL tf_release_dependants(u.tenant_id, u.id, r.dependants, u.state,"         \
    "  $3::timestamptz) d WHERE u.has_dependants AND r.dependants IS NOT NULL)"                    \
    " SELECT r.ord, u.state, u.id IS NOT NULL OR EXISTS (SELECT 1 FROM stale s"                    \
    "  WHERE s.job_id = r.id), coalesce(d.released, 0), coalesce(d.cancelled, 0)"                  \
    " FROM r LEFT JOIN upd u ON u.id = r.id LEFT JOIN deps d ON d.id = r.id ORDER BY r.ord"

/* $1 tenant or NULL, $2 job, $3 token, $4 lease ms, $5 now: the new expiry
 * (NULL: not extended) and whether the job exists. */
#define TF_SQL_HEARTBEAT                                                                           \
    "WITH t AS (SELECT coalesce($1::uuid, (SELECT ru.tenant_id FROM running ru"                    \
    "  WHERE ru.job_id = $2::uuid LIMIT 1)) AS tid),"                                              \
    " j AS (UPDATE jobs j SET lease_expires_at = $5::timestamptz"                                  \
    "  + $4::integer * interval '1 millisecond'"                                                   \
    "  FROM t WHERE j.tenant_id = t.tid AND j.id = $2::uuid AND j.state = "                        \
    TF_SQL_STATE(RUNNING) " AND j.lease_token = $3::uuid"                                          \
    "  RETURNING j.tenant_id, j.id, j.lease_expires_at),"                                          \
    " r AS (UPDATE running ru SET lease_expires_at = j.lease_expires_at FROM j"                    \
    "  WHERE ru.tenant_id = j.tenant_id AND ru.job_id = j.id)"                                     \
    " SELECT (SELECT lease_expires_at FROM j),"                                                    \
    " EXISTS (SELECT 1 FROM jobs x, t WHERE x.tenant_id = t.tid AND x.id = $2::uuid)"

/* Moves up to $1 SCHEDULED jobs due at $2 to PENDING; those without
 * pending parents become claimable (the explicit step `rdy`).  Returns how
 * many were promoted and how many made claimable. */
#define TF_SQL_PROMOTE                                                                             \
    "WITH due AS (DELETE FROM scheduled s WHERE (s.tenant_id, s.job_id) IN ("                      \
    "  SELECT tenant_id, job_id FROM scheduled WHERE run_at <= $2::timestamptz ORDER BY run_at"    \
    "  LIMIT $1::integer FOR UPDATE SKIP LOCKED) RETURNING s.tenant_id, s.job_id),"                \
    " u AS (UPDATE jobs j SET state = " TF_SQL_STATE(PENDING) ", updated_at = $2::timestamptz"     \
    "  FROM due WHERE j.tenant_id = due.tenant_id AND j.id = due.job_id AND j.state = "            \
    TF_SQL_STATE(SCHEDULED) " RETURNING j.tenant_id, j.id, j.pending_parents),"                    \
    " ev AS (INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)"  \
    "  SELECT tenant_id, id, $2::timestamptz, " TF_SQL_STATE(SCHEDULED) ", "                       \
    TF_SQL_STATE(PENDING) ", 'due', 'system' FROM u),"                                             \
    " rdy AS MATERIALIZED (SELECT tf_make_ready(tenant_id, id, $2::timestamptz) FROM u"            \
    "  WHERE pending_parents = 0)"                                                                 \
    " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM rdy)"

/* RUNNING attempts whose lease expired or that ran past their deadline at
 * $2 (at most $1): tenant, job, token, attempts, retry policy, worker, and
 * whether the lease still held (then it timed out). */
#define TF_SQL_EXPIRED                                                                             \
    "SELECT r.tenant_id::text, r.job_id::text, j.lease_token::text, j.attempts,"                   \
    " j.retry_policy::text, r.locked_by, r.lease_expires_at >= $2::timestamptz"                    \
    " FROM running r JOIN jobs j ON j.tenant_id = r.tenant_id AND j.id = r.job_id"                 \
    " WHERE (r.lease_expires_at < $2::timestamptz OR r.deadline_at < $2::timestamptz)"             \
    " AND j.state = " TF_SQL_STATE(RUNNING) " AND j.lease_token IS NOT NULL"                       \
    " ORDER BY r.lease_expires_at LIMIT $1::integer"

/* Releases this worker's attempts ($1 JSON rows {id, token}, $2 worker,
 * $3 now) back to PENDING without counting them; returns how many. */
#define TF_SQL_RELEASE                                                                             \
    "WITH i AS (SELECT * FROM json_to_recordset($1::json) AS x(id uuid, token uuid)),"             \
    " r AS (SELECT ru.tenant_id, i.id, i.token FROM i JOIN running ru ON ru.job_id = i.id),"       \
    " u AS (UPDATE jobs j SET state = " TF_SQL_STATE(PENDING) ", attempts = j.attempts - 1,"       \
    "  lease_token = NULL, lease_expires_at = NULL, locked_by = NULL, started_at = NULL,"          \
    "  updated_at = $3::timestamptz"                                                               \
    "  FROM r WHERE j.tenant_id = r.tenant_id AND j.id = r.id AND j.state = "                      \
    TF_SQL_STATE(RUNNING) " AND j.lease_token = r.token RETURNING j.tenant_id, j.id),"             \
    " d AS (DELETE FROM running ru USING u WHERE ru.tenant_id = u.tenant_id"                       \
    "  AND ru.job_id = u.id),"                                                                     \
    " e AS (INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)"   \
    "  SELECT tenant_id, id, $3::timestamptz, " TF_SQL_STATE(RUNNING) ", " TF_SQL_STATE(PENDING)   \
    ", 'released', 'worker:' || $2 FROM u),"                                                   \
    " rdy AS MATERIALIZED (SELECT tf_make_ready(tenant_id, id, $3::timestamptz) FROM u)"           \
    " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM rdy)"

/* Milliseconds from $1 until the earliest SCHEDULED job is due (NULL:
 * none).  An index probe on scheduled_due_idx. */
#define TF_SQL_NEXT_DUE                                                                            \
    "SELECT ceil(extract(epoch FROM (min(run_at) - $1::timestamptz)) * 1000)::bigint"              \
    " FROM scheduled"

/* Queues with ready built-in work: a loose index scan over ready_claim_idx
 * (one probe per queue), paused queues left out. */
#define TF_SQL_BUILTIN_QUEUES                                                                      \
    "WITH RECURSIVE q(queue, n) AS ("                                                              \
    " (SELECT queue, 1 FROM ready ORDER BY queue LIMIT 1)"                                         \
    " UNION ALL"                                                                                   \
    " SELECT (SELECT r.queue FROM ready r WHERE r.queue > q.queue ORDER BY r.queue LIMIT 1),"      \
    " q.n + 1 FROM q WHERE q.queue IS NOT NULL AND q.n < 1000)"                                    \
    " SELECT q.queue FROM q WHERE q.queue IS NOT NULL"                                             \
    " AND EXISTS (SELECT 1 FROM ready r WHERE r.queue = q.queue AND r.builtin)"                    \
    " AND NOT EXISTS (SELECT 1 FROM queues p WHERE p.name = q.queue AND p.paused)"

#define TF_SQL_PING "SELECT 1"

/* Gauges at $1: per queue ready, running, oldest ready age (s); then the
 * table rows with queue NULL: dead tuples in column 1, name in column 4;
 * then the oldest snapshot's xmin age with name '(xmin)'. */
#define TF_SQL_GAUGES                                                                              \
    "SELECT q.queue, coalesce(r.n, 0), coalesce(u.n, 0), r.age, NULL FROM"                         \
    " (SELECT queue FROM ready UNION SELECT queue FROM running) q"                                 \
    " LEFT JOIN (SELECT queue, count(*) AS n,"                                                     \
    "  extract(epoch FROM $1::timestamptz - min(run_at))::float8 AS age FROM ready"                \
    "  GROUP BY queue) r USING (queue)"                                                            \
    " LEFT JOIN (SELECT queue, count(*) AS n FROM running GROUP BY queue) u USING (queue)"         \
    " UNION ALL SELECT NULL, n_dead_tup, 0, NULL, relname::text FROM pg_stat_user_tables"          \
    "  WHERE relname IN ('jobs', 'ready', 'running', 'scheduled')"                                 \
    " UNION ALL SELECT NULL, coalesce(max(age(backend_xmin)), 0), 0, NULL, '(xmin)'"               \
    "  FROM pg_stat_activity"

/* clang-format on */

#endif
