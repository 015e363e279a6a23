-- 0001_initial.sql - TaskFlow's first schema, designed for the end state of
-- ARCHITECTURE.md ("Storage that stays fast under churn") and SCHEDULING.md.
--
-- Applied by tf_migrate_apply() inside one transaction together with its row
-- in schema_migrations, so it contains nothing that cannot run in a
-- transaction block (no CREATE INDEX CONCURRENTLY).
--
-- Principles, measured in shared/floor/RESULTS.md:
-- * The wide `jobs` row is written many times (claim, heartbeat, complete),
--   so it indexes only columns that never change after insert.  Updates of
--   state, attempts, lease and timestamps then stay HOT (no index writes,
--   dead tuples pruned in-page).  No index on `jobs` mentions `state`, not
--   even in a partial-index predicate, because that alone disables HOT.
-- * Jobs that must be *found by state* live in narrow tables that hold only
--   that state: `ready` (claimable now), `scheduled` (waiting for run_at),
--   `running` (leased; found by lease expiry) and `dead_letters`.  A
--   transition inserts into / deletes from them in the same transaction that
--   updates the wide row.  Terminal states (SUCCEEDED, FAILED, CANCELLED)
--   need no such table: they are listed through the per-tenant indexes below
--   with `state` as a filter.
-- * Caps use claim-side counter rows plus per-stripe `done` rows
--   (SCHEDULING.md "Caps across nodes"), fillfactor 50 so they stay HOT.
-- * History (job_attempts, job_events) is append-only and partitioned by
--   month, so retention drops partitions instead of deleting rows.
-- * Every key starts with or carries tenant_id, so the tables can be
--   distributed by tenant (Citus).  Operator-level tables (queues, settings)
--   and the small lookup tables (tenants, api_keys, job_states) would be
--   reference tables there.
--
-- Ids are UUIDv7 made by the application (engine/uuid.h): time ordered, so
-- ordering by id is ordering by creation and (tenant_id, id) indexes also
-- serve "created between" ranges and cursor pagination.
--
-- Job states (smallint, see job_states): 0 PENDING, 1 SCHEDULED, 2 RUNNING,
-- 3 SUCCEEDED, 4 FAILED, 5 DEAD, 6 CANCELLED.

-- ---------------------------------------------------------------------------
-- Operator level
-- ---------------------------------------------------------------------------

-- Operator settings.  The admin token is stored only as a hash:
-- key 'admin_token_sha256', value = lower-case hex SHA-256 of the token.
CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Names of the job states, for people reading the database with psql.  The
-- engine owns the numbers (its state machine table); jobs.state has a CHECK
-- rather than a foreign key so that no insert pays for a key lookup.
CREATE TABLE job_states (
    state smallint PRIMARY KEY,
    name  text NOT NULL UNIQUE
);
INSERT INTO job_states (state, name) VALUES
    (0, 'PENDING'), (1, 'SCHEDULED'), (2, 'RUNNING'), (3, 'SUCCEEDED'),
    (4, 'FAILED'), (5, 'DEAD'), (6, 'CANCELLED');

-- Platform queues.  A queue named by a job but never defined here exists
-- with no cap, so jobs.queue has no foreign key to this table.
CREATE TABLE queues (
    name              text PRIMARY KEY CHECK (name <> ''),
    max_running       integer CHECK (max_running >= 0),           -- NULL: no cap
    paused            boolean NOT NULL DEFAULT false,
    -- Priority aging (SCHEDULING.md): sort_key = eligible time - priority * boost.
    priority_boost_ms integer NOT NULL DEFAULT 60000 CHECK (priority_boost_ms >= 0),
    -- GCRA rate limit for the whole queue; NULL: none.  State in cap_counters.tat.
    rate_per_second   double precision CHECK (rate_per_second > 0),
    rate_burst        integer NOT NULL DEFAULT 0 CHECK (rate_burst >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- Tenants and credentials
-- ---------------------------------------------------------------------------

CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name <> ''),
    plan            text NOT NULL DEFAULT 'free',
    weight          integer NOT NULL DEFAULT 1 CHECK (weight BETWEEN 1 AND 10000),
    max_running     integer CHECK (max_running >= 0),             -- NULL: no cap
    rate_per_second double precision CHECK (rate_per_second > 0), -- NULL: no rate limit
    rate_burst      integer NOT NULL DEFAULT 0 CHECK (rate_burst >= 0),
    attributes      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    -- Key for signing this tenant's outbound calls (HMAC-SHA256).  The
    -- server needs the raw key to sign, so it cannot be stored hashed.  The
    -- application normally supplies 32 bytes from OpenSSL; the default draws
    -- 244 random bits from gen_random_uuid() (pg_strong_random).
    signing_secret  bytea NOT NULL DEFAULT (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
                    CHECK (octet_length(signing_secret) >= 16),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Tenant API keys ("tf_..."), stored as SHA-256 of the whole token.  `prefix`
-- is the first characters of the token, shown in listings to recognise a key.
CREATE TABLE api_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    token_hash   bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    prefix       text NOT NULL,
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Authentication: "which tenant owns the bearer token with this hash".  The
-- token does not name its tenant, so this key is global (api_keys is small
-- and read-mostly: a reference table under Citus).
CREATE UNIQUE INDEX api_keys_token_hash_key ON api_keys (token_hash);

-- A tenant's settings inside one queue (PUT /v1/admin/tenants/{id}/queues/{name}).
-- Configuration only: the fair-share virtual time lives on the tenant-in-queue
-- counter row (cap_counters), which every claim locks and updates anyway, so
-- a claim writes one row per tenant instead of two.
CREATE TABLE tenant_queues (
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue           text NOT NULL CHECK (queue <> ''),
    max_running     integer CHECK (max_running >= 0),             -- NULL: no cap
    weight          integer CHECK (weight BETWEEN 1 AND 10000),   -- NULL: tenants.weight
    rate_per_second double precision CHECK (rate_per_second > 0), -- NULL: no rate limit
    rate_burst      integer NOT NULL DEFAULT 0 CHECK (rate_burst >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, queue)
);

-- ---------------------------------------------------------------------------
-- Jobs: the wide row
-- ---------------------------------------------------------------------------

-- One row per job for its whole life.  No foreign key to tenants: every
-- insert would take a KEY SHARE lock on the tenant row (multixacts under
-- concurrent batch inserts); the tenant comes from an authenticated key, and
-- tenants are never hard-deleted while they own jobs.
-- Immutable after insert (safe to index): tenant_id, id, queue, type,
-- idempotency_key, request_hash, correlation_id, parent_id, rule_id,
-- depends_on, created_at.  Everything else changes and is never indexed.
CREATE TABLE jobs (
    tenant_id          uuid NOT NULL,
    id                 uuid NOT NULL,
    queue              text NOT NULL DEFAULT 'default' CHECK (queue <> ''),
    type               text NOT NULL CHECK (type <> ''),
    state              smallint NOT NULL DEFAULT 0 CHECK (state BETWEEN 0 AND 6),
    priority           smallint NOT NULL DEFAULT 0,
    payload            jsonb NOT NULL DEFAULT '{}',
    attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts       integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    retry_policy       jsonb,
    timeout_ms         integer CHECK (timeout_ms > 0),
    executor           jsonb,            -- NULL: handed to external workers (claim API)
    metadata           jsonb NOT NULL DEFAULT '{}',
    result             jsonb,
    last_error_type    text,
    last_error_message text,
    -- POST /v1/jobs idempotency: the same key with the same body (same
    -- request_hash, SHA-256 of the canonical body) returns the first job.
    idempotency_key    text,
    request_hash       bytea,
    correlation_id     text,
    parent_id          uuid,             -- job whose rule or executor created this one
    rule_id            uuid,             -- rule whose action created this one
    depends_on         uuid[] NOT NULL DEFAULT '{}',
    pending_parents    integer NOT NULL DEFAULT 0 CHECK (pending_parents >= 0),
    -- Lease of the current attempt.  lease_token is the fencing token:
    -- completion is accepted only with the current one.  running.lease_expires_at
    -- is the copy the lease rescuer scans; both are written together.
    lease_token        uuid,
    lease_expires_at   timestamptz,
    locked_by          text,
    run_at             timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
) WITH (
    -- Room on every page for the new versions of claimed and completed rows,
    -- so those updates stay HOT (on the same page).
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);
-- PRIMARY KEY (tenant_id, id) serves GET /v1/jobs/{id}, and GET /v1/jobs
-- without filters or with created_after/created_before: ids are UUIDv7, so
-- a created range is an id range and the cursor is the last id.  The same
-- scan with a `state` filter answers state=SUCCEEDED|FAILED|CANCELLED.

-- POST /v1/jobs with idempotency_key: finds the earlier job; the UNIQUE makes
-- two concurrent requests with one key produce one job (23505 -> 409/200).
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- GET /v1/jobs?queue=...  (newest or oldest first, cursor on id).
CREATE INDEX jobs_queue_idx ON jobs (tenant_id, queue, id);
-- GET /v1/jobs?type=...
CREATE INDEX jobs_type_idx ON jobs (tenant_id, type, id);
-- GET /v1/jobs?correlation_id=...: every job that one request started.
CREATE INDEX jobs_correlation_idx ON jobs (tenant_id, correlation_id, id)
    WHERE correlation_id IS NOT NULL;
-- GET /v1/jobs?rule_id=...: the jobs a rule created.
CREATE INDEX jobs_rule_idx ON jobs (tenant_id, rule_id, id)
    WHERE rule_id IS NOT NULL;
-- Dependencies: when a parent finishes, find its children
--   WHERE tenant_id = $1 AND depends_on @> ARRAY[$parent] AND depends_on <> '{}'
-- (the last term lets the planner use this partial index) to decrement
-- pending_parents (and make them ready) or cancel them.  Partial on an
-- immutable column: jobs without dependencies cost nothing here.
CREATE INDEX jobs_children_idx ON jobs USING gin (depends_on)
    WHERE depends_on <> '{}';

-- ---------------------------------------------------------------------------
-- Narrow state tables: where jobs are found by state
-- ---------------------------------------------------------------------------

-- Claimable jobs: PENDING, every parent SUCCEEDED, run_at reached.  Holds
-- ONLY those, so the claim scans a small table whose index stays dense; a
-- claim deletes the rows it takes (`DELETE ... RETURNING` from the
-- SKIP LOCKED CTE), completion never touches it.
--   sort_key: eligible time - priority * queue boost (priority ages, never
--             starves; SCHEDULING.md "Priorities inside a tenant").
--   run_at:   when the job became claimable; now() - min(run_at) per queue
--             is the "oldest ready job's age" metric.
--   builtin:  true when a TaskFlow executor runs it (jobs.executor set);
--             the external-worker claim API never hands those out.
CREATE TABLE ready (
    tenant_id uuid NOT NULL,
    job_id    uuid NOT NULL,
    queue     text NOT NULL,
    builtin   boolean NOT NULL,
    sort_key  timestamptz NOT NULL,
    run_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, job_id)
) WITH (
    -- Rows are inserted and deleted, rarely updated (a claim beyond a cap
    -- puts them back); the free space keeps page reuse local.
    fillfactor = 90,
    -- Vacuum the churn early and unthrottled: dead index entries at the head
    -- of the claim index are what slows SKIP LOCKED scans.
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
-- The claim, one LATERAL per planned tenant (SCHEDULING.md):
--   SELECT ... FROM ready WHERE queue = $q AND builtin = $b AND tenant_id = p.tenant
--   ORDER BY sort_key LIMIT p.quota FOR UPDATE SKIP LOCKED
-- and "which tenants have ready work in queue q" (loose index scan over the
-- same prefix).
CREATE INDEX ready_claim_idx ON ready (queue, builtin, tenant_id, sort_key);

-- SCHEDULED jobs (delayed, or waiting out a retry backoff) by due time.  A
-- scheduler moves due rows to `ready` in batches (SKIP LOCKED, one statement)
-- and flips the job to PENDING, so `ready` never holds future work.
CREATE TABLE scheduled (
    tenant_id uuid NOT NULL,
    job_id    uuid NOT NULL,
    queue     text NOT NULL,
    run_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, job_id)
) WITH (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_cost_delay = 0
);
-- Promotion: WHERE run_at <= now() ORDER BY run_at LIMIT n FOR UPDATE SKIP LOCKED.
CREATE INDEX scheduled_due_idx ON scheduled (run_at);

-- RUNNING jobs, found by lease expiry.  Why a table rather than a partial
-- index on jobs (lease_expires_at) WHERE state = 2: such an index mentions
-- `state` and `lease_expires_at`, which change on every claim and
-- completion, so every one of those updates would be non-HOT and would
-- insert into *all* of the wide table's indexes (six of them above).  Here a
-- claim inserts one narrow row (2 index entries) and completion deletes it;
-- a heartbeat updates lease_expires_at here (and the unindexed copy on jobs).
-- The table also answers "running by tenant per queue" (admin queue view)
-- and the cap reconciler's count of running jobs per scope.
CREATE TABLE running (
    tenant_id        uuid NOT NULL,
    job_id           uuid NOT NULL,
    queue            text NOT NULL,
    lease_expires_at timestamptz NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    locked_by        text NOT NULL,
    PRIMARY KEY (tenant_id, job_id)
) WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
-- Lease rescue: WHERE lease_expires_at < now() ORDER BY lease_expires_at
-- LIMIT n FOR UPDATE SKIP LOCKED, on any node.
CREATE INDEX running_lease_idx ON running (lease_expires_at);

-- DEAD jobs (attempts exhausted): the dead-letter queue.  Rows are added when
-- a job dies and removed when it is requeued.
CREATE TABLE dead_letters (
    tenant_id uuid NOT NULL,
    job_id    uuid NOT NULL,
    queue     text NOT NULL,
    died_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, job_id)
);
-- GET /v1/dead-letter?queue= and POST /v1/dead-letter/requeue {"queue"},
-- oldest job first with the job id as cursor.  Without ?queue= the primary
-- key serves the listing.
CREATE INDEX dead_letters_queue_idx ON dead_letters (tenant_id, queue, job_id);

-- ---------------------------------------------------------------------------
-- Caps and fair share (SCHEDULING.md "Caps across nodes", "Fair share")
-- ---------------------------------------------------------------------------

-- (Migration 0003 enforces the caps differently: tf_claim locks the rows
-- that carry a cap and counts the scope's `running` rows under that lock.
-- cap_counters keeps the fair-share virtual times (scope 1 per tenant in a
-- queue, scope 3 the queue's clock); `claimed` and cap_done are unused.)
--
-- Claim-side counters, one row per scope:
--   scope 1 tenant-in-queue (tenant_id, queue)
--   scope 2 tenant          (tenant_id, queue = '')
--   scope 3 queue           (tenant_id = nil uuid, queue)
-- Only claims write here: `claimed` grows by the jobs granted.  The primary
-- key order (scope, tenant_id, queue) is the lock order the claim must use:
-- SELECT ... WHERE (scope, tenant_id, queue) IN (...) ORDER BY scope,
-- tenant_id, queue FOR UPDATE, as a separate statement (data-modifying CTEs
-- do not run in written order).
--   vtime:   scope 1: the tenant's virtual time in the queue; scope 3: the
--            queue's virtual clock V (seconds of cost per unit of weight).
--   tat:     GCRA theoretical arrival time of the scope's rate limit.
--   cost_ms: estimated run time of one job, charged at claim and corrected
--            from cap_done.run_ms.
CREATE TABLE cap_counters (
    scope      smallint NOT NULL CHECK (scope IN (1, 2, 3)),
    tenant_id  uuid NOT NULL,
    queue      text NOT NULL,
    claimed    bigint NOT NULL DEFAULT 0,
    vtime      double precision NOT NULL DEFAULT 0,
    tat        timestamptz,
    cost_ms    double precision NOT NULL DEFAULT 1000 CHECK (cost_ms > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, tenant_id, queue),
    CHECK (CASE scope
               WHEN 1 THEN queue <> '' AND tenant_id <> '00000000-0000-0000-0000-000000000000'
               WHEN 2 THEN queue = '' AND tenant_id <> '00000000-0000-0000-0000-000000000000'
               ELSE queue <> '' AND tenant_id = '00000000-0000-0000-0000-000000000000'
           END)
) WITH (fillfactor = 50);

-- Completion-side counters: every transition out of RUNNING (complete, fail,
-- cancel, lease rescue) adds to its own stripe (a small integer the node
-- derives from its id and connection) in the transaction that changes the
-- job, so completions never contend with claims or with other nodes.
-- running(scope) = claimed - sum(done); a stale stripe only over-counts
-- running (the safe side).  run_ms is the run time of the finished jobs, for
-- the cost estimate.  A compactor may fold stripes into claimed.
CREATE TABLE cap_done (
    scope     smallint NOT NULL CHECK (scope IN (1, 2, 3)),
    tenant_id uuid NOT NULL,
    queue     text NOT NULL,
    stripe    integer NOT NULL CHECK (stripe >= 0),
    done      bigint NOT NULL DEFAULT 0,
    run_ms    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, tenant_id, queue, stripe)
) WITH (fillfactor = 50);

-- ---------------------------------------------------------------------------
-- History: append-only, partitioned by month
-- ---------------------------------------------------------------------------

-- Every execution try, written when the attempt ends (or is rescued).
-- outcome: 0 succeeded, 1 failed (retryable), 2 failed (fatal), 3 timed out,
-- 4 lease expired, 5 cancelled.  A partitioned table's keys must contain the
-- partition column, hence started_at in the primary key.
CREATE TABLE job_attempts (
    tenant_id     uuid NOT NULL,
    job_id        uuid NOT NULL,
    attempt       integer NOT NULL CHECK (attempt >= 1),
    worker        text NOT NULL,
    lease_token   uuid NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    duration_ms   bigint NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    outcome       smallint NOT NULL CHECK (outcome BETWEEN 0 AND 5),
    error_type    text,
    error_message text,
    PRIMARY KEY (tenant_id, job_id, attempt, started_at)
) PARTITION BY RANGE (started_at);
-- The primary key serves GET /v1/jobs/{id}/attempts (one probe per partition).

-- Every state transition of a job (from NULL on creation).
CREATE SEQUENCE job_events_id_seq AS bigint;
CREATE TABLE job_events (
    tenant_id  uuid NOT NULL,
    job_id     uuid NOT NULL,
    id         bigint NOT NULL DEFAULT nextval('job_events_id_seq'),
    at         timestamptz NOT NULL DEFAULT now(),
    from_state smallint CHECK (from_state BETWEEN 0 AND 6),
    to_state   smallint NOT NULL CHECK (to_state BETWEEN 0 AND 6),
    reason     text,
    actor      text,
    data       jsonb,
    PRIMARY KEY (tenant_id, job_id, id, at)
) PARTITION BY RANGE (at);
ALTER SEQUENCE job_events_id_seq OWNED BY job_events.id;
-- The primary key serves GET /v1/jobs/{id}/events oldest first (ORDER BY id).

-- Rows outside every monthly partition land here, so an insert never fails
-- for want of a partition.  The maintenance task keeps it empty by creating
-- partitions ahead of time (a partition cannot be created for a range that
-- already has rows in the default partition).
CREATE TABLE job_attempts_default PARTITION OF job_attempts DEFAULT;
CREATE TABLE job_events_default PARTITION OF job_events DEFAULT;

-- Creates the monthly partitions of job_attempts and job_events for the
-- `months` months starting with the month of `first_month` (idempotent).
-- Months are UTC months whatever the session's TimeZone.  Called here for a
-- window around now and periodically by the scheduler role; retention drops
-- old partitions (DROP TABLE job_events_YYYY_MM).
CREATE FUNCTION tf_create_history_partitions(first_month date, months integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m timestamp;
    t text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        m := date_trunc('month', first_month::timestamp) + make_interval(months => i);
        FOREACH t IN ARRAY ARRAY['job_attempts', 'job_events'] LOOP
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                t || '_' || to_char(m, 'YYYY_MM'), t,
                m AT TIME ZONE 'UTC', (m + interval '1 month') AT TIME ZONE 'UTC');
        END LOOP;
    END LOOP;
END
$$;

-- One month back (late rows of a just-finished month) to three months ahead.
SELECT tf_create_history_partitions((now() AT TIME ZONE 'UTC' - interval '1 month')::date, 5);
