-- 0006_rules.sql - tenants' automation rules and their versions (issue 9).
--
-- A rule is a Lua script returning {name, trigger, condition, action};
-- every upload is a version, kept (rule_versions).  rules holds the live
-- state: the current version, whether it is enabled, the trigger of the
-- current version (its kind never changes), and for webhook rules the hook
-- key of its URL and its signing secret.  tenant_id NULL is reserved for
-- platform rules (one rule evaluated for every tenant).  A deleted rule
-- keeps its row (deleted_at) so that versions and runs keep naming it;
-- its name is free again.
--
-- rule_runs records every firing (and, later, every skipped fire time)
-- with its outcome, the jobs it created and its error; a run of an event
-- with an id is unique per rule (dedup_key), so a repeated event fires
-- nothing.  rule_states holds ctx.state per rule and tenant, written in the
-- run's transaction only if its version is still the one the run read
-- (runs of one rule may overlap: the later one is evaluated again).

CREATE TABLE rules (
    id           uuid PRIMARY KEY,
    tenant_id    uuid REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    version      integer NOT NULL CHECK (version >= 1),
    enabled      boolean NOT NULL DEFAULT true,
    trigger_kind text NOT NULL CHECK (trigger_kind IN ('cron', 'webhook', 'event', 'job')),
    trigger      jsonb NOT NULL,
    hook_key     text UNIQUE,
    hook_secret  text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    deleted_at   timestamptz,
    CHECK ((trigger_kind = 'webhook') = (hook_key IS NOT NULL AND hook_secret IS NOT NULL))
);

CREATE UNIQUE INDEX rules_live_name ON rules
    (coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), name)
    WHERE deleted_at IS NULL;

CREATE TABLE rule_versions (
    rule_id     uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version >= 1),
    source      text NOT NULL,
    sha256      text NOT NULL,
    trigger     jsonb NOT NULL,
    has_condition boolean NOT NULL,
    created_by  text,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (rule_id, version)
);

CREATE TABLE rule_runs (
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    rule_id       uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    version       integer NOT NULL,
    trigger       text NOT NULL,
    dedup_key     text,
    at            timestamptz NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('fired', 'not_matched', 'failed', 'skipped')),
    condition     boolean,
    jobs          uuid[] NOT NULL DEFAULT '{}',
    error_type    text,
    error_message text,
    duration_ms   integer NOT NULL CHECK (duration_ms >= 0),
    PRIMARY KEY (tenant_id, id)
);

CREATE UNIQUE INDEX rule_runs_once ON rule_runs (rule_id, dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX rule_runs_by_rule ON rule_runs (rule_id, id DESC);

CREATE TABLE rule_states (
    rule_id    uuid NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    state      jsonb NOT NULL,
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (rule_id, tenant_id)
);
