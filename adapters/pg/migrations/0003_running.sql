-- 0003_running.sql - what running jobs needs: claims under caps, finishing
-- attempts, dependencies, domain events, wake-ups.
--
-- The engine decides (which tenants get how many jobs, what a failed
-- attempt leads to); these functions and the statements in
-- adapters/app/work.c apply its decisions, each guarded by the job's state
-- and lease token so that two nodes can never both win a transition.

-- A running attempt's deadline (started_at + timeout_ms): the rescuer fails
-- attempts that run past it with error type "timeout", as it fails those
-- whose lease expired with "lease_expired".  Not indexed: `running` holds
-- only the attempts in flight, and every index here costs each claim.
ALTER TABLE running ADD COLUMN deadline_at timestamptz;
-- The same holds for the lease: the rescuer's scan (every poll interval,
-- one node at a time finds work) reads the few rows in flight; the index
-- of 0001 cost every claim an index entry for nothing.
DROP INDEX running_lease_idx;
-- Caps count the running rows of a scope under the scope's lock (tf_claim):
-- per queue, per tenant (the primary key), per tenant in a queue.
CREATE INDEX running_queue_idx ON running (queue, tenant_id);
-- The admin token and built-in executors finish jobs by id without knowing
-- the tenant: running rows resolve it.
CREATE INDEX running_job_idx ON running (job_id);

-- The event port's outbox (engine/events.h): one row per terminal
-- transition (job.succeeded, job.failed, job.dead, job.cancelled), written
-- in the transaction of the transition, so automation rules can react
-- without polling jobs.  Append-only; consumers keep their own position.
CREATE TABLE domain_events (
    tenant_id  uuid NOT NULL,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    name       text NOT NULL,
    job_id     uuid NOT NULL,
    state      smallint NOT NULL,
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- Wake-ups: every transaction that makes jobs claimable sends one NOTIFY
-- per queue on channel taskflow_ready, payload "<queue>" or
-- "<queue>|builtin" (PostgreSQL folds equal notifications of a
-- transaction).  The submission and retry statements send them themselves;
-- tf_make_ready below sends one for every job it readies.  A statement
-- trigger with a transition table did the same at 8% of batch throughput.

-- A cancelled RUNNING job: its node aborts the work at once.
CREATE FUNCTION tf_cancel_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 2 AND NEW.state = 6 THEN
        PERFORM pg_notify('taskflow_cancel', NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_cancel_notify AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state = 2 AND NEW.state = 6) EXECUTE FUNCTION tf_cancel_notify();

-- The ready row of a job that became claimable (sort key: priority ages),
-- and the wake-up of its queue's workers.
CREATE FUNCTION tf_make_ready(p_tenant uuid, p_job uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
    v_builtin boolean;
BEGIN
    INSERT INTO ready (tenant_id, job_id, queue, builtin, sort_key, run_at)
    SELECT j.tenant_id, j.id, j.queue, j.executor IS NOT NULL,
           greatest(j.run_at, now()) - j.priority * coalesce(q.priority_boost_ms, 60000)::float8
               * interval '1 millisecond',
           greatest(j.run_at, now())
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

-- A parent ended: SUCCEEDED releases its children (the last parent makes a
-- child claimable, or SCHEDULED when its run_at is ahead); FAILED, DEAD or
-- CANCELLED cancels every unfinished descendant with the reason
-- "dependency_<state>:<parent id>", each with its event and domain event.
CREATE FUNCTION tf_parent_done(p_tenant uuid, p_parent uuid, p_state smallint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    IF p_state = 3 THEN
        FOR c IN UPDATE jobs j SET pending_parents = j.pending_parents - 1, updated_at = now()
                  WHERE j.tenant_id = p_tenant AND j.depends_on @> ARRAY[p_parent]
                    AND j.depends_on <> '{}' AND j.state = 0 AND j.pending_parents > 0
                 RETURNING j.id, j.pending_parents, j.run_at LOOP
            IF c.pending_parents = 0 AND c.run_at > now() THEN
                UPDATE jobs SET state = 1 WHERE tenant_id = p_tenant AND id = c.id;
                INSERT INTO scheduled (tenant_id, job_id, queue, run_at)
                     SELECT tenant_id, id, queue, run_at FROM jobs
                      WHERE tenant_id = p_tenant AND id = c.id;
                INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)
                     VALUES (p_tenant, c.id, 0, 1, 'dependencies_succeeded', 'system');
            ELSIF c.pending_parents = 0 THEN
                PERFORM tf_make_ready(p_tenant, c.id);
            END IF;
        END LOOP;
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
        WITH u AS (UPDATE jobs j SET state = 6, finished_at = now(), updated_at = now()
                    WHERE j.tenant_id = p_tenant AND j.id = c.id AND j.state IN (0, 1)
                    RETURNING j.id, (SELECT state FROM jobs WHERE tenant_id = p_tenant
                                      AND id = c.id) AS old_state)
        INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)
             SELECT p_tenant, u.id, u.old_state, 6,
                    'dependency_' || lower((SELECT name FROM job_states WHERE state = p_state))
                        || ':' || c.via, 'system'
               FROM u;
        IF FOUND THEN
            DELETE FROM ready WHERE tenant_id = p_tenant AND job_id = c.id;
            DELETE FROM scheduled WHERE tenant_id = p_tenant AND job_id = c.id;
            INSERT INTO domain_events (tenant_id, name, job_id, state, reason)
                 VALUES (p_tenant, 'job.cancelled', c.id, 6, 'dependency_failed');
        END IF;
    END LOOP;
END
$$;

-- Claims up to p_quotas[i] ready jobs of tenant p_tenants[i] in queue
-- p_queue (jobs with a built-in executor when p_builtin, else jobs for
-- external workers), leasing them to p_worker for p_lease_ms.  The quotas
-- come from the engine's fair-share planner (or are the whole request when
-- one tenant claims its own jobs).
--
-- Caps hold across nodes: the rows that carry a cap are locked in one fixed
-- order (the queue, then per tenant in id order the tenant and the
-- tenant-in-queue row) and the scope's running rows are counted under that
-- lock, so a concurrent claimer of the same scope waits and then sees these
-- claims.  Completions never take these locks (they only delete running
-- rows).  Scopes without a cap take no lock and count nothing.
-- A paused queue gives nothing.  p_vtimes / p_clock, when given, store the
-- planner's new virtual times (cap_counters scope 1 and 3).
CREATE FUNCTION tf_claim(p_queue text, p_builtin boolean, p_worker text, p_lease_ms integer,
                         p_tenants uuid[], p_quotas integer[], p_vtimes double precision[],
                         p_clock double precision)
RETURNS TABLE (id text, tenant_id text, queue text, type text, payload text, attempt integer,
               max_attempts integer, lease_token text, lease_expires_at timestamptz,
               timeout_ms integer, executor text, correlation_id text, created_at timestamptz,
               signing_secret text)
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
                     lease_expires_at = now() + p_lease_ms * interval '1 millisecond',
                     locked_by = p_worker, started_at = now(), updated_at = now()
                FROM d WHERE j.tenant_id = v_tenant AND j.id = d.job_id AND j.state = 0
              RETURNING j.*, d.sort_key),
        ru AS (INSERT INTO running (tenant_id, job_id, queue, lease_expires_at, started_at,
                                    locked_by, deadline_at)
               SELECT u.tenant_id, u.id, u.queue, u.lease_expires_at, u.started_at, p_worker,
                      u.started_at + coalesce(u.timeout_ms, 300000) * interval '1 millisecond'
                 FROM u),
        ev AS (INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)
               SELECT u.tenant_id, u.id, 0, 2, 'claimed', 'worker:' || p_worker FROM u)
        SELECT u.id::text, u.tenant_id::text, u.queue, u.type, u.payload::text, u.attempts,
               u.max_attempts, u.lease_token::text, u.lease_expires_at, u.timeout_ms,
               u.executor::text, u.correlation_id, u.created_at,
               CASE WHEN p_builtin THEN encode(t.signing_secret, 'hex') END
          FROM u JOIN tenants t ON t.id = u.tenant_id
         ORDER BY u.sort_key;
        GET DIAGNOSTICS v_got = ROW_COUNT;
        v_budget := v_budget - v_got;
    END LOOP;
    IF p_vtimes IS NOT NULL THEN
        INSERT INTO cap_counters (scope, tenant_id, queue, vtime)
             SELECT 1, x.t, p_queue, x.v FROM unnest(p_tenants, p_vtimes) AS x(t, v)
        ON CONFLICT (scope, tenant_id, queue)
             DO UPDATE SET vtime = greatest(cap_counters.vtime, excluded.vtime), updated_at = now();
        INSERT INTO cap_counters (scope, tenant_id, queue, vtime)
             VALUES (3, '00000000-0000-0000-0000-000000000000', p_queue, p_clock)
        ON CONFLICT (scope, tenant_id, queue)
             DO UPDATE SET vtime = greatest(cap_counters.vtime, excluded.vtime), updated_at = now();
    END IF;
END
$$;

-- Parents know whether anything depends on them, so finishing a job without
-- dependants (nearly all) costs no search for children.
ALTER TABLE jobs ADD COLUMN has_dependants boolean NOT NULL DEFAULT false;
CREATE FUNCTION tf_mark_parents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET has_dependants = true
     WHERE tenant_id = NEW.tenant_id AND id = ANY (NEW.depends_on) AND NOT has_dependants;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_mark_parents AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.depends_on <> '{}') EXECUTE FUNCTION tf_mark_parents();

-- A job row is updated twice in its life at speed (claim, finish).  With
-- half of every page free, both updates find room on the row's own page and
-- stay HOT (no index entries), which measured halves the WAL per processed
-- job; the table is larger on disk in exchange.
ALTER TABLE jobs SET (fillfactor = 50);
