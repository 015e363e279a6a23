-- 0005_lua.sql - tenants' Lua executors, snoozed attempts, and the
-- executor version an attempt ran.
--
-- An executor is a tenant's Lua script with a name; every upload is a new
-- version, kept (lua_executor_versions); lua_executors holds the current
-- version of each live executor.  lua_executor_types says which executor
-- handles a job type, so a submission without an executor whose type a
-- tenant's executor handles gets {"kind": "lua", "name": ...}.  Every
-- change is announced on the channel taskflow_lua ("<tenant id>/<name>")
-- so that nodes drop what they cached of the executor.

CREATE TABLE lua_executor_versions (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    version     integer NOT NULL CHECK (version >= 1),
    source      text NOT NULL,
    sha256      text NOT NULL,
    handles     text[] NOT NULL DEFAULT '{}',
    timeout_ms  integer CHECK (timeout_ms > 0),
    created_by  text,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

CREATE TABLE lua_executors (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    version     integer NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name),
    FOREIGN KEY (tenant_id, name, version)
        REFERENCES lua_executor_versions (tenant_id, name, version)
);

CREATE TABLE lua_executor_types (
    tenant_id   uuid NOT NULL,
    type        text NOT NULL,
    name        text NOT NULL,
    PRIMARY KEY (tenant_id, type),
    FOREIGN KEY (tenant_id, name) REFERENCES lua_executors (tenant_id, name) ON DELETE CASCADE
);

-- Attempts record the executor version they ran (NULL: not a Lua
-- executor), and a sixth outcome: 6 snoozed (the executor asked to run
-- again later; the attempt was not counted).
ALTER TABLE job_attempts ADD COLUMN executor_version integer;
ALTER TABLE job_attempts DROP CONSTRAINT job_attempts_outcome_check;
ALTER TABLE job_attempts ADD CONSTRAINT job_attempts_outcome_check
    CHECK (outcome BETWEEN 0 AND 6);
