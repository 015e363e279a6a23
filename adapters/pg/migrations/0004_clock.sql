-- 0004_clock.sql - time comes from the engine's clock port, and the
-- dependency release is an explicit step.
--
-- Every statement of the Postgres store now receives "now" from the engine
-- (engine/clock.h) instead of reading now(): lease expiries, due times,
-- attempt durations and the times written into jobs and their history all
-- follow the clock port, so the test clock (`serve --clock=test`) drives
-- them.  The functions of 0003 that read now() are replaced by versions
-- taking p_now, and the old ones are dropped.
--
-- State numbers are the engine's (engine/job.h, TF_JOB_STATE_*_N):
-- 0 PENDING, 1 SCHEDULED, 2 RUNNING, 3 SUCCEEDED, 4 FAILED, 5 DEAD,
-- 6 CANCELLED.  tests/integration/test_state_sql.c checks this file's
-- functions and the job_states table against them.

DROP FUNCTION tf_parent_done(uuid, uuid, smallint);
DROP FUNCTION tf_claim(text, boolean, text, integer, uuid[], integer[], double precision[],
                       double precision);
DROP FUNCTION tf_make_ready(uuid, uuid);

-- The ready row of a job that became claimable (sort key: priority ages),
-- and the wake-up of its queue's workers.
CREATE FUNCTION tf_make_ready(p_tenant uuid, p_job uuid, p_now timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
    v_builtin boolean;
BEGIN
    INSERT INTO ready (tenant_id, job_id, queue, builtin, sort_key, run_at)
    SELECT j.tenant_id, j.id, j.queue, j.executor IS NOT NULL,
           greatest(j.run_at, p_now) - j.priority * coalesce(q.priority_boost_ms, 60000)::float8
               * interval '1 millisecond',
           greatest(j.run_at, p_now)
      FROM jobs j LEFT JOIN queues q ON q.name = j.queue
     WHERE j.tenant_id = p_tenant AND j.id = p_job
    ON CONFLICT DO NOTHING
    RETURNING queue, builtin INTO v_queue, v_builtin;
    IF v_queue IS NOT NULL THEN
        PERFORM pg_notify('taskflow_ready',
                          v_queue || CASE WHEN v_builtin THEN '|builtin' ELSE '' END);
    END IF;
END
$$;

-- The dependency release of a parent that ended in p_state, as the engine
-- decided it (tf_job_dependants_action): 'release' takes one pending parent
-- off each dependant (the last one makes it claimable, or SCHEDULED when
-- its run_at is ahead); 'cancel' cancels every unfinished descendant with
-- the reason "dependency_<state>:<parent id>", each with its transition and
-- its job.cancelled event.  Returns how many dependants it released and
-- cancelled.
CREATE FUNCTION tf_release_dependants(p_tenant uuid, p_parent uuid, p_action text,
                                      p_state smallint, p_now timestamptz,
                                      OUT released integer, OUT cancelled integer)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    released := 0;
    cancelled := 0;
    IF p_action = 'release' THEN
        FOR c IN UPDATE jobs j SET pending_parents = j.pending_parents - 1, updated_at = p_now
                  WHERE j.tenant_id = p_tenant AND j.depends_on @> ARRAY[p_parent]
                    AND j.depends_on <> '{}' AND j.state = 0 AND j.pending_parents > 0
                 RETURNING j.id, j.pending_parents, j.run_at LOOP
            IF c.pending_parents = 0 AND c.run_at > p_now THEN
                UPDATE jobs SET state = 1 WHERE tenant_id = p_tenant AND id = c.id;
                INSERT INTO scheduled (tenant_id, job_id, queue, run_at)
                     SELECT tenant_id, id, queue, run_at FROM jobs
                      WHERE tenant_id = p_tenant AND id = c.id;
                INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)
                     VALUES (p_tenant, c.id, p_now, 0, 1, 'dependencies_succeeded', 'system');
                released := released + 1;
            ELSIF c.pending_parents = 0 THEN
                PERFORM tf_make_ready(p_tenant, c.id, p_now);
                released := released + 1;
            END IF;
        END LOOP;
        RETURN;
    END IF;
    IF p_action <> 'cancel' THEN
        RETURN;
    END IF;
    FOR c IN WITH RECURSIVE d(id, via) AS (
                 SELECT j.id, p_parent FROM jobs j
                  WHERE j.tenant_id = p_tenant AND j.depends_on @> ARRAY[p_parent]
                    AND j.depends_on <> '{}' AND j.state IN (0, 1)
                 UNION
                 SELECT j.id, d.id FROM d JOIN jobs j
                     ON j.tenant_id = p_tenant AND j.depends_on @> ARRAY[d.id]
                    AND j.depends_on <> '{}' AND j.state IN (0, 1))
             SELECT DISTINCT ON (id) id, via FROM d ORDER BY id LOOP
        WITH u AS (UPDATE jobs j SET state = 6, finished_at = p_now, updated_at = p_now
                    WHERE j.tenant_id = p_tenant AND j.id = c.id AND j.state IN (0, 1)
                    RETURNING j.id, (SELECT state FROM jobs WHERE tenant_id = p_tenant
                                      AND id = c.id) AS old_state)
        INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)
             SELECT p_tenant, u.id, p_now, u.old_state, 6,
                    'dependency_' || lower((SELECT name FROM job_states WHERE state = p_state))
                        || ':' || c.via, 'system'
               FROM u;
        IF FOUND THEN
            DELETE FROM ready WHERE tenant_id = p_tenant AND job_id = c.id;
            DELETE FROM scheduled WHERE tenant_id = p_tenant AND job_id = c.id;
            INSERT INTO domain_events (tenant_id, name, job_id, state, reason, created_at)
                 VALUES (p_tenant, 'job.cancelled', c.id, 6, 'dependency_failed', p_now);
            cancelled := cancelled + 1;
        END IF;
    END LOOP;
END
$$;

-- Claims up to p_quotas[i] ready jobs of tenant p_tenants[i] in queue
-- p_queue under the caps, leasing them to p_worker for p_lease_ms from
-- p_now.  As 0003's version (see there for the lock order that makes caps
-- hold across nodes), with the time from the engine and the executor's
-- kind returned, so the runner picks the executor without parsing JSON.
CREATE FUNCTION tf_claim(p_queue text, p_builtin boolean, p_worker text, p_lease_ms integer,
                         p_tenants uuid[], p_quotas integer[], p_vtimes double precision[],
                         p_clock double precision, p_now timestamptz)
RETURNS TABLE (id text, tenant_id text, queue text, type text, payload text, attempt integer,
               max_attempts integer, lease_token text, lease_expires_at timestamptz,
               timeout_ms integer, executor text, executor_kind text, correlation_id text,
               created_at timestamptz, signing_secret text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_paused boolean;
    v_cap integer;
    v_budget integer;
    v_running integer;
    v_grant integer;
    v_got integer;
    v_tenant uuid;
    v_i integer;
BEGIN
    SELECT q.paused, q.max_running INTO v_paused, v_cap FROM queues q WHERE q.name = p_queue;
    IF v_paused THEN
        RETURN;
    END IF;
    SELECT coalesce(sum(x), 0) INTO v_budget FROM unnest(p_quotas) x;
    IF v_cap IS NOT NULL THEN
        PERFORM 1 FROM queues q WHERE q.name = p_queue FOR NO KEY UPDATE;
        SELECT count(*) INTO v_running FROM running r WHERE r.queue = p_queue;
        v_budget := least(v_budget, v_cap - v_running);
    END IF;
    FOR v_i IN SELECT u.ord FROM unnest(p_tenants) WITH ORDINALITY AS u(t, ord) ORDER BY u.t LOOP
        EXIT WHEN v_budget <= 0;
        v_tenant := p_tenants[v_i];
        v_grant := least(p_quotas[v_i], v_budget);
        CONTINUE WHEN v_grant <= 0;
        SELECT t.max_running INTO v_cap FROM tenants t WHERE t.id = v_tenant;
        IF v_cap IS NOT NULL THEN
            PERFORM 1 FROM tenants t WHERE t.id = v_tenant FOR NO KEY UPDATE;
            SELECT count(*) INTO v_running FROM running r WHERE r.tenant_id = v_tenant;
            v_grant := least(v_grant, v_cap - v_running);
        END IF;
        SELECT tq.max_running INTO v_cap FROM tenant_queues tq
         WHERE tq.tenant_id = v_tenant AND tq.queue = p_queue;
        IF v_cap IS NOT NULL THEN
            PERFORM 1 FROM tenant_queues tq
              WHERE tq.tenant_id = v_tenant AND tq.queue = p_queue FOR NO KEY UPDATE;
            SELECT count(*) INTO v_running FROM running r
             WHERE r.tenant_id = v_tenant AND r.queue = p_queue;
            v_grant := least(v_grant, v_cap - v_running);
        END IF;
        CONTINUE WHEN v_grant <= 0;
        RETURN QUERY
        WITH c AS MATERIALIZED (
            SELECT r.job_id, r.sort_key FROM ready r
             WHERE r.queue = p_queue AND r.builtin = p_builtin AND r.tenant_id = v_tenant
             ORDER BY r.sort_key LIMIT v_grant FOR UPDATE SKIP LOCKED),
        d AS (DELETE FROM ready r USING c WHERE r.tenant_id = v_tenant AND r.job_id = c.job_id
              RETURNING r.job_id, c.sort_key),
        u AS (UPDATE jobs j SET state = 2, attempts = j.attempts + 1,
                     lease_token = gen_random_uuid(),
                     lease_expires_at = p_now + p_lease_ms * interval '1 millisecond',
                     locked_by = p_worker, started_at = p_now, updated_at = p_now
                FROM d WHERE j.tenant_id = v_tenant AND j.id = d.job_id AND j.state = 0
              RETURNING j.*, d.sort_key),
        ru AS (INSERT INTO running (tenant_id, job_id, queue, lease_expires_at, started_at,
                                    locked_by, deadline_at)
               SELECT u.tenant_id, u.id, u.queue, u.lease_expires_at, u.started_at, p_worker,
                      u.started_at + coalesce(u.timeout_ms, 300000) * interval '1 millisecond'
                 FROM u),
        ev AS (INSERT INTO job_events (tenant_id, job_id, at, from_state, to_state, reason, actor)
               SELECT u.tenant_id, u.id, p_now, 0, 2, 'claimed', 'worker:' || p_worker FROM u)
        SELECT u.id::text, u.tenant_id::text, u.queue, u.type, u.payload::text, u.attempts,
               u.max_attempts, u.lease_token::text, u.lease_expires_at, u.timeout_ms,
               u.executor::text, u.executor ->> 'kind', u.correlation_id, u.created_at,
               CASE WHEN p_builtin THEN encode(t.signing_secret, 'hex') END
          FROM u JOIN tenants t ON t.id = u.tenant_id
         ORDER BY u.sort_key;
        GET DIAGNOSTICS v_got = ROW_COUNT;
        v_budget := v_budget - v_got;
    END LOOP;
    IF p_vtimes IS NOT NULL THEN
        INSERT INTO cap_counters (scope, tenant_id, queue, vtime, updated_at)
             SELECT 1, x.t, p_queue, x.v, p_now FROM unnest(p_tenants, p_vtimes) AS x(t, v)
        ON CONFLICT (scope, tenant_id, queue)
             DO UPDATE SET vtime = greatest(cap_counters.vtime, excluded.vtime), updated_at = p_now;
        INSERT INTO cap_counters (scope, tenant_id, queue, vtime, updated_at)
             VALUES (3, '00000000-0000-0000-0000-000000000000', p_queue, p_clock, p_now)
        ON CONFLICT (scope, tenant_id, queue)
             DO UPDATE SET vtime = greatest(cap_counters.vtime, excluded.vtime), updated_at = p_now;
    END IF;
END
$$;
