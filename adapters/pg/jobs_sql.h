/*
 * jobs_sql.h - the statements of the jobs API (store_jobs.c): submission,
 * reading, listing, history, cancel, retry and requeue.
 *
 * State numbers come from the engine (TF_SQL_STATE); the states an action
 * may start from and lead to are parameters the use cases take from the
 * engine's state machine.  Times come from the clock port as parameters.
 */
#ifndef TF_ADAPTERS_PG_JOBS_SQL_H
#define TF_ADAPTERS_PG_JOBS_SQL_H

#include "adapters/pg/store_internal.h"
#include "engine/job.h"

/* The statements are laid out by hand: clang-format would split the SQL
 * at every macro. */
/* clang-format off */

/* ---- submission ----
 *
 * $1 is a JSON array of rows (store_jobs.c writes them), $2 whether the
 * rows are one all-or-nothing batch.  Inserts the jobs, their `ready` or
 * `scheduled` rows and their `created` transitions, skips rows whose
 * idempotency key exists (ON CONFLICT DO NOTHING) and rows whose
 * `depends_on` names a job the tenant does not have, and returns one row per
 * input row:
 *   0 ord, 1 state inserted (NULL: not inserted), 2 missing parent ids
 *   (comma-separated, NULL: none), 3 request hash of the existing job with
 *   the same idempotency key (hex), 4 always NULL, 5 the existing job's id,
 *   6 the executor the job got from its type (NULL: as submitted), 7 the
 *   queues woken: "<queue>" or "<queue>|builtin" on `taskflow_ready` for the
 *   queues that got ready jobs (NOTIFY is delivered at commit; scheduled
 *   and waiting jobs wake nobody: the promoter and the parents' ends do).
 * In batch mode any skipped row aborts the whole statement through
 * tf_abort('tf_batch:<ord>:<problem>[:<detail>]') (migration 0002), so
 * nothing is written.  A job whose parent already ended FAILED, DEAD or
 * CANCELLED is created CANCELLED ("dependency_failed").  A job without an
 * executor whose type one of the tenant's Lua executors handles gets that
 * executor ({"kind": "lua", "name": ...}, migration 0005). */
enum {
    TF_SUBMIT_COL_ORD = 0,
    TF_SUBMIT_COL_STATE = 1,
    TF_SUBMIT_COL_MISSING = 2,
    TF_SUBMIT_COL_EXISTING_HASH = 3,
    TF_SUBMIT_COL_EXISTING_ID = 5,
    TF_SUBMIT_COL_RESOLVED = 6,
};

#define TF_SQL_SUBMIT_INPUT(filter)                                                                \
    "WITH input AS ("                                                                              \
    " SELECT * FROM json_to_recordset($1::json) AS x(ord int, tenant_id uuid, id uuid, queue "     \
    "text,"                                                                                        \
    " type text, priority int2, payload jsonb, max_attempts int, retry_policy jsonb,"              \
    " timeout_ms int, executor jsonb, metadata jsonb, idempotency_key text, request_hash text,"    \
    " correlation_id text, parent_id uuid, rule_id uuid, depends_on uuid[], run_at timestamptz,"   \
    " created_at timestamptz, scheduled bool, actor text, guard uuid)" filter "),"

#define TF_SQL_SUBMIT TF_SQL_SUBMIT_INPUT("") TF_SQL_SUBMIT_REST

/* Run first in a submission's transaction: its statements keep their
 * generic plans.  Left to choose, PostgreSQL switched the submission to a
 * custom plan per execution once autovacuum had analyzed the tables (0.66
 * ms of planning per statement; pg_stat_statements under bench/hooks.sh),
 * and no value of $1 or $2 makes another plan better.  Local: it ends with
 * the transaction. */
#define TF_SQL_GENERIC_PLANS "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"

/* The guards below end in OFFSET 0 so that they stay a per-row probe of
 * the primary key: without it the planner may turn EXISTS into a hash
 * semi-join, and a generic plan made while the table was small scans all
 * of it for every submission (0.14 ms at 3,000 runs and growing, seen
 * with auto_explain under bench/hooks.sh). */

/* The jobs a Lua run enqueued (tf.enqueue), in the transaction that ends
 * its attempt: only those whose parent's attempt was recorded under the
 * lease token in `guard` just before, i.e. whose finish applied. */
#define TF_SQL_SUBMIT_CHILDREN                                                                     \
    TF_SQL_SUBMIT_INPUT(" WHERE EXISTS (SELECT 1 FROM job_attempts a"                              \
                        " WHERE a.tenant_id = x.tenant_id AND a.job_id = x.parent_id"              \
                        " AND a.lease_token = x.guard OFFSET 0)")                                  \
    TF_SQL_SUBMIT_REST

/* The jobs a rule's action created, in the transaction that records its
 * run: only when the run whose id is in `guard` was recorded just before
 * (not a repeat of an event already handled). */
#define TF_SQL_SUBMIT_RULE_JOBS                                                                    \
    TF_SQL_SUBMIT_INPUT(" WHERE EXISTS (SELECT 1 FROM rule_runs r"                                 \
                        " WHERE r.tenant_id = x.tenant_id AND r.id = x.guard OFFSET 0)")           \
    TF_SQL_SUBMIT_REST

#define TF_SQL_SUBMIT_REST                                                                         \
    " parents AS ("                                                                                \
    " SELECT i.ord, pc.found, pc.pending, pc.doomed FROM input i CROSS JOIN LATERAL ("             \
    " SELECT count(*) AS found, count(*) FILTER (WHERE p.state <> " TF_SQL_STATE(SUCCEEDED)         \
    ") AS pending,"                                                                                \
    " coalesce(bool_or(p.state IN (" TF_SQL_STATE(FAILED) ", " TF_SQL_STATE(DEAD) ", "             \
    TF_SQL_STATE(CANCELLED) ")), false) AS doomed FROM (SELECT state FROM jobs p"                  \
    " WHERE p.tenant_id = i.tenant_id AND p.id = ANY (i.depends_on) FOR KEY SHARE) p) pc"          \
    " WHERE cardinality(i.depends_on) > 0),"                                                       \
    " rows AS ("                                                                                   \
    " SELECT i.*, coalesce(pa.found, 0) AS found, coalesce(pa.pending, 0)::int AS pending,"        \
    " (CASE WHEN pa.doomed THEN " TF_SQL_STATE(CANCELLED) " WHEN coalesce(pa.pending, 0) > 0"      \
    " THEN " TF_SQL_STATE(PENDING) " WHEN i.scheduled THEN " TF_SQL_STATE(SCHEDULED)               \
    " ELSE " TF_SQL_STATE(PENDING) " END)::int2 AS state,"                                         \
    " coalesce(cardinality(i.depends_on), 0) AS wanted"                                            \
    " FROM input i LEFT JOIN parents pa USING (ord)),"                                             \
    " ins AS ("                                                                                    \
    " INSERT INTO jobs (tenant_id, id, queue, type, state, priority, payload, max_attempts,"       \
    " retry_policy, timeout_ms, executor, metadata, idempotency_key, request_hash,"                \
    " correlation_id, parent_id, rule_id, depends_on, pending_parents, run_at, created_at,"        \
    " updated_at, finished_at)"                                                                    \
    " SELECT tenant_id, id, queue, type, state, priority, coalesce(payload, 'null'::jsonb),"       \
    " max_attempts, retry_policy, timeout_ms,"                                                     \
    " coalesce(executor, (SELECT jsonb_build_object('kind', 'lua', 'name', t.name)"                \
    " FROM lua_executor_types t WHERE t.tenant_id = rows.tenant_id AND t.type = rows.type)),"      \
    " coalesce(metadata, '{}'), idempotency_key,"                                                  \
    " decode(request_hash, 'hex'), correlation_id, parent_id, rule_id,"                            \
    " coalesce(depends_on, '{}'), pending, run_at,"                                                \
    " created_at, created_at, CASE WHEN state = " TF_SQL_STATE(CANCELLED) " THEN created_at END"  \
    " FROM rows WHERE found = wanted"                                                              \
    " ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"       \
    " RETURNING tenant_id, id, queue, state, priority, run_at, executor IS NOT NULL AS builtin,"   \
    " executor,"                                                                                   \
    " pending_parents, created_at),"                                                               \
    " rdy AS ("                                                                                    \
    " INSERT INTO ready (tenant_id, job_id, queue, builtin, sort_key, run_at)"                     \
    " SELECT n.tenant_id, n.id, n.queue, n.builtin,"                                               \
    " n.run_at - n.priority * coalesce(q.priority_boost_ms, 60000)::float8"                        \
    " * interval '1 millisecond',"                                                                 \
    " n.run_at"                                                                                    \
    " FROM ins n LEFT JOIN queues q ON q.name = n.queue"                                           \
    " WHERE n.state = " TF_SQL_STATE(PENDING) " AND n.pending_parents = 0),"                       \
    " sch AS ("                                                                                    \
    " INSERT INTO scheduled (tenant_id, job_id, queue, run_at)"                                    \
    " SELECT tenant_id, id, queue, run_at FROM ins WHERE state = " TF_SQL_STATE(SCHEDULED) "),"    \
    " ev AS ("                                                                                     \
    " INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)"         \
    " SELECT n.tenant_id, n.id, n.created_at, NULL, n.state,"                                      \
    " CASE WHEN n.state = " TF_SQL_STATE(CANCELLED) " THEN 'dependency_failed' ELSE 'created'"     \
    " END, r.actor"                                                                                \
    " FROM ins n JOIN rows r ON r.id = n.id),"                                                     \
    " wake AS (SELECT pg_notify('taskflow_ready', q) FROM (SELECT DISTINCT n.queue"                \
    " || CASE WHEN n.builtin THEN '|builtin' ELSE '' END AS q FROM ins n"                          \
    " WHERE n.state = " TF_SQL_STATE(PENDING) " AND n.pending_parents = 0) x),"                    \
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
    " e.id::text, CASE WHEN r.executor IS NULL THEN n.executor::text END,"                        \
    " (SELECT count(*) FROM wake)"                                                                 \
    " FROM rows r"                                                                                 \
    " LEFT JOIN LATERAL (SELECT string_agg(d::text, ',') AS missing FROM unnest(r.depends_on) d"   \
    " WHERE r.found < r.wanted AND NOT EXISTS (SELECT 1 FROM jobs p"                               \
    " WHERE p.tenant_id = r.tenant_id AND p.id = d)) m ON true"                                    \
    " LEFT JOIN ins n ON n.id = r.id"                                                              \
    " LEFT JOIN prior e ON e.ord = r.ord"                                                          \
    " ORDER BY r.ord"

/* ---- reading ---- */

#define TF_SQL_GET                                                                                 \
    "SELECT " TF_PG_JOB_COLUMNS " FROM jobs j WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid"

/* An existing job by idempotency key: 0 request hash (hex), 1.. the job. */
#define TF_SQL_GET_BY_KEY                                                                          \
    "SELECT encode(j.request_hash, 'hex'), " TF_PG_JOB_COLUMNS " FROM jobs j"                      \
    " WHERE j.tenant_id = $1::uuid AND j.idempotency_key = $2"

/* Jobs of one tenant by id. */
#define TF_SQL_GET_MANY                                                                            \
    "SELECT " TF_PG_JOB_COLUMNS " FROM jobs j WHERE j.tenant_id = $1::uuid"                        \
    " AND j.id = ANY ($2::uuid[])"

/* Attempts are written to job_attempts when they end; the attempt in
 * progress of a RUNNING job is added from the job row with outcome -1
 * ("running").  No row at all: no such job.  One row with a NULL attempt:
 * a job without attempts. */
#define TF_SQL_ATTEMPTS                                                                            \
    "SELECT a.attempt, a.worker, a.started_at, a.finished_at, a.duration_ms, a.outcome, "          \
    "a.error_type, a.error_message, a.executor_version FROM jobs j LEFT JOIN LATERAL ("            \
    " SELECT x.attempt, x.worker, x.started_at, x.finished_at, x.duration_ms, x.outcome,"          \
    "  x.error_type, x.error_message, x.executor_version FROM job_attempts x"                      \
    "  WHERE x.tenant_id = j.tenant_id AND x.job_id = j.id"                                        \
    " UNION ALL"                                                                                   \
    " SELECT greatest(j.attempts, 1), j.locked_by, j.started_at, NULL, NULL, -1::smallint,"        \
    "  NULL, NULL, NULL WHERE j.state = " TF_SQL_STATE(RUNNING) " AND j.started_at IS NOT NULL"    \
    "  AND NOT EXISTS (SELECT 1 FROM job_attempts y WHERE y.tenant_id = j.tenant_id"               \
    "   AND y.job_id = j.id AND y.started_at = j.started_at)"                                      \
    ") a ON true WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid ORDER BY a.started_at, "         \
    "a.attempt"

/* No row: no such job.  One row with a NULL id: a job without events. */
#define TF_SQL_TRANSITIONS                                                                         \
    "SELECT e.id, e.from_state, e.to_state, e.at, e.reason, e.actor FROM jobs j "                  \
    "LEFT JOIN job_events e ON e.tenant_id = j.tenant_id AND e.job_id = j.id "                     \
    "WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid ORDER BY e.id"

/* The listing: $1 tenant, $2..$3 the inclusive id range, $4 states (NULL:
 * any), $5 queue, $6 type, $7 correlation_id, $8 rule_id (NULL: any), $9
 * rows.  One statement per index that can drive the scan, so that each
 * keeps a good generic plan: the most selective filter given picks it. */
#define TF_SQL_LIST_FILTERS                                                                        \
    " AND j.id >= $2::uuid AND j.id <= $3::uuid"                                                   \
    " AND ($4::smallint[] IS NULL OR j.state = ANY ($4::smallint[]))"                              \
    " AND ($5::text IS NULL OR j.queue = $5::text)"                                                \
    " AND ($6::text IS NULL OR j.type = $6::text)"                                                 \
    " AND ($7::text IS NULL OR j.correlation_id = $7::text)"                                       \
    " AND ($8::uuid IS NULL OR j.rule_id = $8::uuid)"                                              \
    " ORDER BY j.id LIMIT $9::integer"
#define TF_SQL_LIST_HEAD "SELECT " TF_PG_JOB_COLUMNS " FROM jobs j WHERE j.tenant_id = $1::uuid"
#define TF_SQL_LIST TF_SQL_LIST_HEAD TF_SQL_LIST_FILTERS
#define TF_SQL_LIST_BY_QUEUE TF_SQL_LIST_HEAD " AND j.queue = $5::text" TF_SQL_LIST_FILTERS
#define TF_SQL_LIST_BY_TYPE TF_SQL_LIST_HEAD " AND j.type = $6::text" TF_SQL_LIST_FILTERS
#define TF_SQL_LIST_BY_CORRELATION                                                                 \
    TF_SQL_LIST_HEAD " AND j.correlation_id = $7::text" TF_SQL_LIST_FILTERS
#define TF_SQL_LIST_BY_RULE TF_SQL_LIST_HEAD " AND j.rule_id = $8::uuid" TF_SQL_LIST_FILTERS

/* The dead letter, oldest job first: $1 tenant, $2..$3 id range, $4 rows,
 * and $5 the queue for the second form. */
#define TF_SQL_DEAD_HEAD                                                                           \
    "SELECT " TF_PG_JOB_COLUMNS " FROM dead_letters d"                                             \
    " JOIN jobs j ON j.tenant_id = d.tenant_id AND j.id = d.job_id"                                \
    " WHERE d.tenant_id = $1::uuid AND d.job_id >= $2::uuid AND d.job_id <= $3::uuid"
#define TF_SQL_DEAD TF_SQL_DEAD_HEAD " ORDER BY d.job_id LIMIT $4::integer"
#define TF_SQL_DEAD_BY_QUEUE                                                                       \
    TF_SQL_DEAD_HEAD " AND d.queue = $5::text ORDER BY d.job_id LIMIT $4::integer"

/* ---- cancel, retry, requeue ----
 *
 * Cancel and retry run two statements in one transaction (one round trip):
 * the first locks the job (FOR UPDATE) and reads its current state, so "not
 * found" and "not allowed" are told apart and the refusal names the state
 * the job is really in; the second applies the action.  Because the second
 * takes its snapshot after the lock was granted, cancel sees every
 * dependant committed before it. */

/* $1 tenant, $2 job. */
#define TF_SQL_LOCK                                                                                \
    "SELECT j.state FROM jobs j WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid FOR UPDATE"

/* Cancel: $1 tenant, $2 job, $3 states cancel may start from, $4 the state
 * it leads to, $5 actor, $6 now.  `tree` walks the dependants that are not
 * finished (an edge list, so diamonds stay bounded); `victims` locks them in
 * id order.  A RUNNING job's lease is revoked (its worker's completion is
 * refused) and its attempt ends "cancelled" (outcome 5); every cancelled
 * job gets its transition and its job.cancelled event.  Returns the
 * cancelled job, or no row when its state forbids the cancel. */
#define TF_SQL_CANCEL                                                                              \
    "WITH RECURSIVE tree (id, parent) AS ("                                                        \
    " SELECT j.id, NULL::uuid FROM jobs j"                                                         \
    "  WHERE j.tenant_id = $1::uuid AND j.id = $2::uuid AND j.state = ANY ($3::smallint[])"        \
    " UNION"                                                                                       \
    " SELECT c.id, t.id FROM tree t JOIN jobs c ON c.tenant_id = $1::uuid"                         \
    "  AND c.depends_on @> ARRAY[t.id] AND c.depends_on <> '{}'"                                   \
    "  WHERE c.state = ANY ($3::smallint[])),"                                                     \
    " victims AS ("                                                                                \
    " SELECT j.tenant_id, j.id, j.state, j.attempts, j.lease_token, j.locked_by, j.started_at,"    \
    "  v.parent"                                                                                   \
    " FROM (SELECT DISTINCT ON (id) id, parent FROM tree ORDER BY id, parent NULLS FIRST) v"       \
    " JOIN jobs j ON j.tenant_id = $1::uuid AND j.id = v.id ORDER BY j.id FOR UPDATE OF j),"       \
    " upd AS ("                                                                                    \
    " UPDATE jobs j SET state = $4::smallint, finished_at = $6::timestamptz,"                      \
    "  updated_at = $6::timestamptz, lease_token = NULL, lease_expires_at = NULL, locked_by = NULL"\
    " FROM victims v WHERE j.tenant_id = v.tenant_id AND j.id = v.id"                              \
    "  AND j.state = ANY ($3::smallint[])"                                                         \
    " RETURNING j.*, v.state AS from_state, v.parent, v.attempts AS run_attempt,"                  \
    "  v.lease_token AS run_lease, v.locked_by AS run_worker, v.started_at AS run_started),"       \
    " ev AS ("                                                                                     \
    " INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)"         \
    " SELECT u.tenant_id, u.id, $6::timestamptz, u.from_state, u.state, CASE WHEN u.parent IS NULL"\
    "  THEN 'cancelled' ELSE 'dependency_cancelled:' || u.parent END, $5::text FROM upd u),"       \
    " del_ready AS (DELETE FROM ready r USING upd u"                                               \
    "  WHERE r.tenant_id = u.tenant_id AND r.job_id = u.id),"                                      \
    " del_scheduled AS (DELETE FROM scheduled s USING upd u"                                       \
    "  WHERE s.tenant_id = u.tenant_id AND s.job_id = u.id),"                                      \
    " del_running AS (DELETE FROM running r USING upd u"                                           \
    "  WHERE r.tenant_id = u.tenant_id AND r.job_id = u.id RETURNING r.job_id, r.started_at),"     \
    " ran AS ("                                                                                    \
    " SELECT u.tenant_id, u.id, u.queue, greatest(u.run_attempt, 1) AS attempt,"                   \
    "  coalesce(u.run_worker, '') AS worker, u.run_lease,"                                         \
    "  coalesce(d.started_at, u.run_started, $6::timestamptz) AS started"                          \
    " FROM upd u LEFT JOIN del_running d ON d.job_id = u.id"                                       \
    " WHERE u.from_state = " TF_SQL_STATE(RUNNING) "),"                                            \
    " att AS ("                                                                                    \
    " INSERT INTO job_attempts (tenant_id, job_id, attempt, worker, lease_token, started_at,"      \
    "  finished_at, duration_ms, outcome)"                                                         \
    " SELECT tenant_id, id, attempt, worker, run_lease, started, $6::timestamptz,"                 \
    "  greatest(0, floor(extract(epoch FROM $6::timestamptz - started) * 1000))::bigint, 5"        \
    " FROM ran WHERE run_lease IS NOT NULL ON CONFLICT DO NOTHING),"                               \
    " done AS ("                                                                                   \
    " INSERT INTO domain_events (tenant_id, name, job_id, state, reason, created_at)"              \
    " SELECT u.tenant_id, 'job.cancelled', u.id, u.state, CASE WHEN u.parent IS NULL"              \
    "  THEN 'cancelled' ELSE 'dependency_cancelled' END, $6::timestamptz FROM upd u)"              \
    " SELECT " TF_PG_JOB_COLUMNS " FROM upd j WHERE j.parent IS NULL"

/* What retry and requeue do to the rows of `picked` (locked, with their
 * state): $3 states the action may start from, $4 the state it leads to
 * (PENDING), $5 actor, $6 now.  The job is PENDING again with attempts 0
 * and no result, started_at or finished_at; last_error is kept, as history
 * of why it had to be retried, until the next attempt overwrites it.  It
 * gets a `ready` row (sort_key = now - priority x the queue's
 * priority_boost_ms) unless it still waits for parents, leaves the dead
 * letter, and its queue's workers are woken. */
#define TF_SQL_RETRY_TAIL                                                                          \
    " upd AS ("                                                                                    \
    " UPDATE jobs j SET state = $4::smallint, attempts = 0, result = NULL, started_at = NULL,"     \
    "  finished_at = NULL, run_at = $6::timestamptz, updated_at = $6::timestamptz,"                \
    "  lease_token = NULL, lease_expires_at = NULL, locked_by = NULL"                              \
    " FROM picked p WHERE j.tenant_id = p.tenant_id AND j.id = p.id"                               \
    "  AND j.state = ANY ($3::smallint[])"                                                         \
    " RETURNING j.*, p.state AS from_state),"                                                      \
    " ev AS ("                                                                                     \
    " INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)"         \
    " SELECT u.tenant_id, u.id, $6::timestamptz, u.from_state, u.state, 'manual_retry', $5::text"  \
    " FROM upd u),"                                                                                \
    " dl AS (DELETE FROM dead_letters d USING upd u"                                               \
    "  WHERE d.tenant_id = u.tenant_id AND d.job_id = u.id),"                                      \
    " rdy AS ("                                                                                    \
    " INSERT INTO ready (tenant_id, job_id, queue, builtin, sort_key, run_at)"                     \
    " SELECT u.tenant_id, u.id, u.queue, u.executor IS NOT NULL, u.run_at"                         \
    "  - u.priority::float8 * coalesce(q.priority_boost_ms, 60000) * interval '1 millisecond',"    \
    "  u.run_at"                                                                                   \
    " FROM upd u LEFT JOIN queues q ON q.name = u.queue WHERE u.pending_parents = 0"               \
    " ON CONFLICT DO NOTHING RETURNING queue, builtin),"                                           \
    " nt AS (SELECT count(pg_notify('taskflow_ready', x.q)) AS n FROM (SELECT DISTINCT"            \
    "  queue || CASE WHEN builtin THEN '|builtin' ELSE '' END AS q FROM rdy) x)"

/* Retry (after the lock), and requeue by ids: $1 tenant, $2 job ids
 * (uuid[]).  One row per id that is the tenant's job: its state in this
 * statement's snapshot, then the job as it is now when the action applied
 * to it (NULL columns when it did not). */
#define TF_SQL_RETRY                                                                               \
    "WITH picked AS ("                                                                             \
    " SELECT j.tenant_id, j.id, j.state FROM jobs j"                                               \
    " WHERE j.tenant_id = $1::uuid AND j.id = ANY ($2::uuid[])"                                    \
    "  AND j.state = ANY ($3::smallint[]) ORDER BY j.id FOR UPDATE)," TF_SQL_RETRY_TAIL            \
    " SELECT s.state, " TF_PG_JOB_COLUMNS " FROM jobs s CROSS JOIN nt"                             \
    " LEFT JOIN upd j ON j.id = s.id"                                                              \
    " WHERE s.tenant_id = $1::uuid AND s.id = ANY ($2::uuid[]) ORDER BY s.id"

/* Requeue by queue: the $7 oldest dead jobs of queue $2.  Dead-letter rows
 * another requeue holds are skipped, so concurrent calls share the work. */
#define TF_SQL_REQUEUE_QUEUE                                                                       \
    "WITH candidates AS ("                                                                         \
    " SELECT d.job_id FROM dead_letters d WHERE d.tenant_id = $1::uuid AND d.queue = $2::text"     \
    " ORDER BY d.job_id LIMIT $7::integer FOR UPDATE SKIP LOCKED),"                                \
    " picked AS ("                                                                                 \
    " SELECT j.tenant_id, j.id, j.state FROM jobs j"                                               \
    " WHERE j.tenant_id = $1::uuid AND j.id IN (SELECT job_id FROM candidates)"                    \
    "  AND j.state = ANY ($3::smallint[]) ORDER BY j.id FOR UPDATE)," TF_SQL_RETRY_TAIL            \
    " SELECT j.state, " TF_PG_JOB_COLUMNS " FROM upd j CROSS JOIN nt ORDER BY j.id"

/* clang-format on */

#endif
