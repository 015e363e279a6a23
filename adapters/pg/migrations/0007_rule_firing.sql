-- 0007_rule_firing.sql - rules fire by themselves: cron rules come due,
-- and job events reach the rules that wait for them (issue 9).
--
-- Cron: rules.next_fire_at is the first fire time of a cron rule not yet
-- dealt with (computed by the engine: engine/cron.h, in the rule's zone).
-- A node takes due rules with a lease (fire_lease_by, fire_lease_until)
-- so that one node at a time deals with a rule; the run's dedup_key
-- "cron:<fire time>" makes a second firing of a fire time a no-op even when
-- a lease was lost (ARCHITECTURE.md: exactly once per rule and fire time).
-- Every fire time is fired or recorded as a skipped run with its reason.
--
-- Platform rules (tenant_id NULL) run once per tenant: a run is unique per
-- rule, tenant and dedup_key.
--
-- A webhook rule's secret can be rotated: the previous secret stays valid
-- until hook_secret_previous_until, so that senders can switch over.
--
-- Job events: domain_events rows now carry the id of the transaction that
-- wrote them.  The rules' consumer reads only rows of transactions older
-- than every transaction still running (pg_snapshot_xmin of its snapshot),
-- in (xid, id) order, so a row that commits late is never passed over; it
-- keeps its position, an (xid, id) pair, in rule_cursors, and one node at
-- a time holds the cursor's lease.  A run's dedup_key "job-event:<id>"
-- makes each event fire each rule once even when a lease was lost.  (A
-- transaction left open for long holds the consumer back until it ends.)

ALTER TABLE rules ADD COLUMN next_fire_at timestamptz,
                  ADD COLUMN fire_lease_by text,
                  ADD COLUMN fire_lease_until timestamptz;
CREATE INDEX rules_due ON rules (next_fire_at) WHERE next_fire_at IS NOT NULL;
ALTER TABLE rules ADD COLUMN hook_secret_previous text,
                  ADD COLUMN hook_secret_previous_until timestamptz;

DROP INDEX rule_runs_once;
CREATE UNIQUE INDEX rule_runs_once ON rule_runs (rule_id, tenant_id, dedup_key)
    WHERE dedup_key IS NOT NULL;

ALTER TABLE domain_events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX domain_events_xid ON domain_events (xid, id);

CREATE TABLE rule_cursors (
    name        text PRIMARY KEY,
    position    xid8 NOT NULL,   -- every event before (position, position_id) is consumed
    position_id bigint NOT NULL,
    lease_by    text,
    lease_until timestamptz
);
-- Events written before this migration carry its xid: they are behind the
-- cursor, so rules react only to what happens from now on.
INSERT INTO rule_cursors (name, position, position_id)
     VALUES ('job-events', pg_current_xact_id(), (SELECT coalesce(max(id), 0) FROM domain_events));
