/*
 * work_sql.h - the statements of work.c (running jobs).  The functions they
 * call (tf_claim, tf_parent_done, tf_make_ready) are in migration 0003.
 */
#ifndef TF_ADAPTERS_APP_WORK_SQL_H
#define TF_ADAPTERS_APP_WORK_SQL_H

/* $1 queue, $2 builtin, $3 worker, $4 lease ms, $5 tenants, $6 quotas,
 * $7 virtual times (or NULL), $8 queue clock. */
#define TF_WORK_CLAIM_SQL                                                                          \
    "SELECT * FROM tf_claim($1, $2::boolean, $3, $4::integer, $5::uuid[], $6::integer[],"          \
    " $7::float8[], $8::float8)"

/* Tenants with ready work in ($1 queue, $2 builtin), by a loose index scan
 * over ready_claim_idx: tenant, weight, backlog (capped at 1000), virtual
 * time, and the queue's virtual clock. */
#define TF_WORK_CANDIDATES_SQL                                                                     \
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

/* Jobs whose attempt failed, for the retry decision: $1 JSON rows
 * {ord, tenant_id|null, id}.  Returns ord, tenant, state, lease token,
 * attempts, retry policy (JSON or NULL: the defaults); NULL tenant when the
 * job does not exist for the caller. */
#define TF_WORK_DECIDE_SQL                                                                         \
    "SELECT i.ord, j.tenant_id::text, j.state, j.lease_token::text, j.attempts,"                   \
    " j.retry_policy::text"                                                                        \
    " FROM json_to_recordset($1::json) AS i(ord int, tenant_id uuid, id uuid)"                     \
    " LEFT JOIN LATERAL (SELECT * FROM jobs j WHERE j.tenant_id = coalesce(i.tenant_id,"           \
    "  (SELECT ru.tenant_id FROM running ru WHERE ru.job_id = i.id LIMIT 1))"                      \
    "  AND j.id = i.id LIMIT 1) j ON true ORDER BY i.ord"

/* Finishes attempts: $1 JSON rows {ord, tenant_id|null, id, token, worker,
 * actor, outcome (succeeded|retry|failed|dead), result, error_type,
 * error_message, run_at, attempt_outcome, reason, event}.  Each row is
 * applied only while the job is RUNNING under that lease token; a refused
 * row is recorded as a "stale_lease_refused" event.  Returns per row: ord,
 * the new state (NULL: not applied), whether the job exists. */
#define TF_WORK_FINISH_SQL                                                                         \
    "WITH input AS (SELECT * FROM json_to_recordset($1::json) AS x(ord int, tenant_id uuid,"       \
    "  id uuid, token uuid, worker text, actor text, outcome text, result jsonb,"                  \
    "  error_type text, error_message text, run_at timestamptz, attempt_outcome int,"              \
    "  reason text, event text)),"                                                                 \
    " r AS (SELECT i.*, coalesce(i.tenant_id, ru.tenant_id) AS tid,"                               \
    "  coalesce(i.worker, ru.locked_by, 'unknown') AS holder FROM input i"                         \
    "  LEFT JOIN LATERAL (SELECT * FROM running ru WHERE ru.job_id = i.id"                         \
    "  AND (i.tenant_id IS NULL OR ru.tenant_id = i.tenant_id) LIMIT 1) ru ON true),"              \
    " upd AS (UPDATE jobs j SET state = CASE r.outcome WHEN 'succeeded' THEN 3"                    \
    "  WHEN 'retry' THEN 1 WHEN 'failed' THEN 4 ELSE 5 END,"                                       \
    "  result = CASE WHEN r.outcome = 'succeeded' THEN r.result ELSE j.result END,"                \
    "  last_error_type = CASE WHEN r.outcome = 'succeeded' THEN j.last_error_type"                 \
    "   ELSE r.error_type END,"                                                                    \
    "  last_error_message = CASE WHEN r.outcome = 'succeeded' THEN j.last_error_message"           \
    "   ELSE r.error_message END,"                                                                 \
    "  run_at = CASE WHEN r.outcome = 'retry' THEN r.run_at ELSE j.run_at END,"                    \
    "  finished_at = CASE WHEN r.outcome = 'retry' THEN NULL ELSE now() END,"                      \
    "  lease_token = NULL, lease_expires_at = NULL, locked_by = NULL, updated_at = now()"          \
    "  FROM r WHERE j.tenant_id = r.tid AND j.id = r.id AND j.state = 2"                           \
    "  AND j.lease_token = r.token"                                                                \
    "  RETURNING j.tenant_id, j.id, j.state, j.queue, j.attempts, j.started_at, j.run_at,"         \
    "  j.has_dependants),"                                                                         \
    " del AS (DELETE FROM running ru USING upd"                                                    \
    "  WHERE ru.tenant_id = upd.tenant_id AND ru.job_id = upd.id),"                                \
    " att AS (INSERT INTO job_attempts (tenant_id, job_id, attempt, worker, lease_token,"          \
    "  started_at, finished_at, duration_ms, outcome, error_type, error_message)"                  \
    "  SELECT u.tenant_id, u.id, u.attempts, r.holder, r.token, u.started_at, now(),"              \
    "  greatest(0, (extract(epoch FROM now() - u.started_at) * 1000)::bigint),"                    \
    "  r.attempt_outcome, r.error_type, r.error_message FROM upd u JOIN r ON r.id = u.id),"        \
    " ev AS (INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)"      \
    "  SELECT u.tenant_id, u.id, 2, u.state, r.reason, coalesce(r.actor, 'worker:' || r.holder)"   \
    "  FROM upd u JOIN r ON r.id = u.id),"                                                         \
    " sch AS (INSERT INTO scheduled (tenant_id, job_id, queue, run_at)"                            \
    "  SELECT tenant_id, id, queue, run_at FROM upd WHERE state = 1),"                             \
    " dl AS (INSERT INTO dead_letters (tenant_id, job_id, queue)"                                  \
    "  SELECT tenant_id, id, queue FROM upd WHERE state = 5),"                                     \
    " ob AS (INSERT INTO domain_events (tenant_id, name, job_id, state, reason)"                   \
    "  SELECT u.tenant_id, r.event, u.id, u.state, r.reason FROM upd u JOIN r ON r.id = u.id"      \
    "  WHERE u.state IN (3, 4, 5)),"                                                               \
    " stale AS (INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)"   \
    "  SELECT j.tenant_id, j.id, j.state, j.state, 'stale_lease_refused',"                         \
    "  coalesce(r.actor, 'worker:' || r.holder)"                                                   \
    "  FROM r JOIN jobs j ON j.tenant_id = r.tid AND j.id = r.id"                                  \
    "  WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.id = r.id) RETURNING job_id)"                 \
    " SELECT r.ord, u.state, u.id IS NOT NULL OR EXISTS (SELECT 1 FROM stale s"                    \
    "  WHERE s.job_id = r.id),"                                                                    \
    " CASE WHEN u.has_dependants AND u.state IN (3, 4, 5)"                                         \
    "  THEN tf_parent_done(u.tenant_id, u.id, u.state) IS NULL END"                                \
    " FROM r LEFT JOIN upd u ON u.id = r.id ORDER BY r.ord"

/* $1 tenant or NULL, $2 job, $3 token, $4 lease ms: new expiry (NULL: not
 * extended) and whether the job exists. */
#define TF_WORK_HEARTBEAT_SQL                                                                      \
    "WITH t AS (SELECT coalesce($1::uuid, (SELECT ru.tenant_id FROM running ru"                    \
    "  WHERE ru.job_id = $2::uuid LIMIT 1)) AS tid),"                                              \
    " j AS (UPDATE jobs j SET lease_expires_at = now() + $4::integer * interval '1 millisecond'"   \
    "  FROM t WHERE j.tenant_id = t.tid AND j.id = $2::uuid AND j.state = 2"                       \
    "  AND j.lease_token = $3::uuid RETURNING j.tenant_id, j.id, j.lease_expires_at),"             \
    " r AS (UPDATE running ru SET lease_expires_at = j.lease_expires_at FROM j"                    \
    "  WHERE ru.tenant_id = j.tenant_id AND ru.job_id = j.id)"                                     \
    " SELECT (SELECT lease_expires_at FROM j),"                                                    \
    " EXISTS (SELECT 1 FROM jobs x, t WHERE x.tenant_id = t.tid AND x.id = $2::uuid)"

/* Moves up to $1 due SCHEDULED jobs to PENDING; returns how many. */
#define TF_WORK_PROMOTE_SQL                                                                        \
    "WITH due AS (DELETE FROM scheduled s WHERE (s.tenant_id, s.job_id) IN ("                      \
    "  SELECT tenant_id, job_id FROM scheduled WHERE run_at <= now() ORDER BY run_at"              \
    "  LIMIT $1::integer FOR UPDATE SKIP LOCKED) RETURNING s.tenant_id, s.job_id),"                \
    " u AS (UPDATE jobs j SET state = 0, updated_at = now() FROM due"                              \
    "  WHERE j.tenant_id = due.tenant_id AND j.id = due.job_id AND j.state = 1"                    \
    "  RETURNING j.tenant_id, j.id, j.pending_parents),"                                           \
    " ev AS (INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)"      \
    "  SELECT tenant_id, id, 1, 0, 'due', 'system' FROM u)"                                        \
    " SELECT count(*), count(tf_make_ready(tenant_id, id)) FROM u WHERE pending_parents = 0"

/* RUNNING attempts whose lease expired or that ran past their deadline:
 * tenant, job, token, attempts, retry policy, worker, timed out. */
#define TF_WORK_RESCUE_SCAN_SQL                                                                    \
    "SELECT r.tenant_id::text, r.job_id::text, j.lease_token::text, j.attempts,"                   \
    " j.retry_policy::text, r.locked_by, r.lease_expires_at >= now()"                              \
    " FROM running r JOIN jobs j ON j.tenant_id = r.tenant_id AND j.id = r.job_id"                 \
    " WHERE (r.lease_expires_at < now() OR r.deadline_at < now()) AND j.state = 2"                 \
    " AND j.lease_token IS NOT NULL ORDER BY r.lease_expires_at LIMIT $1::integer"

/* Releases this worker's attempts ($1 JSON rows {id, token}, $2 worker)
 * back to PENDING without counting them; returns how many. */
#define TF_WORK_RELEASE_SQL                                                                        \
    "WITH i AS (SELECT * FROM json_to_recordset($1::json) AS x(id uuid, token uuid)),"             \
    " r AS (SELECT ru.tenant_id, i.id, i.token FROM i JOIN running ru ON ru.job_id = i.id),"       \
    " u AS (UPDATE jobs j SET state = 0, attempts = j.attempts - 1, lease_token = NULL,"           \
    "  lease_expires_at = NULL, locked_by = NULL, started_at = NULL, updated_at = now()"           \
    "  FROM r WHERE j.tenant_id = r.tenant_id AND j.id = r.id AND j.state = 2"                     \
    "  AND j.lease_token = r.token RETURNING j.tenant_id, j.id),"                                  \
    " d AS (DELETE FROM running ru USING u WHERE ru.tenant_id = u.tenant_id AND ru.job_id = "      \
    "u.id),"                                                                                       \
    " e AS (INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)"       \
    "  SELECT tenant_id, id, 2, 0, 'released', 'worker:' || $2 FROM u)"                            \
    " SELECT count(*), count(tf_make_ready(tenant_id, id)) FROM u"

#endif
