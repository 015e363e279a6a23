#!/usr/bin/env python3
"""The rules of rules-examples/ work as their comments say, run as a user
would: uploaded from the file through the API, triggered, and the jobs and
runs they make checked.

- pro_billing.lua: a platform cron rule at 07:00 Europe/Oslo, walked with
  the test clock across the autumn change of 2027 (07:00 is 05:00Z before
  it and 06:00Z after): each pro tenant gets RecalculateBilling when its
  usage changed since its last run (ctx.state is per tenant), a free
  tenant's run is recorded as not matched, and GET /v1/admin/rules shows
  the rule with its next fire time and last run.
- payment_received.lua + email_after_fulfilment.lua: a signed delivery
  queues Fulfil; when a worker completes it, SendEmail follows with the
  tracking number and the order's correlation id.
- dead_job_alert.lua: a job that dies posts an alert to the tenant's alert
  URL through the http executor.
- thumbnail_on_upload.lua + executors/thumbnail.lua: an event queues a job
  that runs on the tenant's Lua executor.
"""
import hashlib
import hmac
import json
import os
import time
import uuid
from datetime import datetime, timezone

import tfharness as harness
from tfharness import Database, JobEndpoint, TaskFlow, auth, expect, run_tests, wait_for

SOURCE_DIR = os.environ.get("TASKFLOW_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(SOURCE_DIR, "rules-examples")
ADMIN = "tf-admin-" + uuid.uuid4().hex
HOUR = 3_600_000


def source(name):
    with open(os.path.join(EXAMPLES, name), "rb") as f:
        return f.read()


def iso(ms):
    t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def at(text):
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def lua(node, method, path, name, token):
    return node.request(method, path, source(name),
                        headers=auth(token, **{"Content-Type": "text/x-lua"}))


def admin(node, method, path, body=None):
    return node.request(method, path, body, headers=auth(ADMIN))


def test_pro_billing_across_the_autumn_change():
    db = Database("examples_billing")
    node = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_CLOCK": "test", "TASKFLOW_ROLE": "api,worker",
                                 "TASKFLOW_ALLOW_TEST_CLOCK": "1",
                                 "TASKFLOW_POLL_INTERVAL_MS": "50"})
    try:
        def clock(ms):
            expect(admin(node, "POST", "/v1/admin/clock", {"now": iso(ms)}), 200)

        def tenant(name, plan, usage):
            t = expect(admin(node, "POST", "/v1/admin/tenants",
                             {"name": name, "plan": plan, "attributes": {"usage": usage}}), 201)
            return t["id"]

        def billing_jobs():
            rows = db.sql("SELECT tenant_id || ' ' || (payload ->> 'usage') FROM jobs"
                          " WHERE type = 'RecalculateBilling' ORDER BY created_at, tenant_id")
            return sorted(rows.split("\n")) if rows else []

        clock(at("2027-10-30T04:00:00.000Z"))
        acme, globex, free = tenant("acme", "pro", 100), tenant("globex", "pro", 7), \
            tenant("free-co", "free", 1)
        rule = expect(lua(node, "POST", "/v1/admin/rules", "pro_billing.lua", ADMIN), 201)
        # 07:00 CEST on Saturday 30 October is 05:00Z.
        assert rule["next_fire_at"] == "2027-10-30T05:00:00.000Z", rule
        # The operator dry-runs it as a tenant (that tenant's ctx.tenant, in
        # its sandbox, state {}): nothing is written.
        test = f"/v1/admin/rules/{rule['id']}/test"
        dry = expect(admin(node, "POST", test, {"tenant_id": acme}), 200)
        assert dry["condition"] is True and dry["state"] == {"last_usage": 100}, dry
        [job] = dry["jobs"]
        assert job["type"] == "RecalculateBilling" and job["payload"]["tenant"] == acme, dry
        assert job["payload"]["usage"] == 100 and job["rule_id"] == rule["id"], dry
        dry = expect(admin(node, "POST", test, {"tenant_id": free, "event": {"at": "x"}}), 200)
        assert dry["condition"] is False and dry["jobs"] == [], dry
        for bad in ({}, {"event": {}}, {"tenant_id": "acme"}, {"tenant_id": 7},
                    {"tenant_id": str(uuid.uuid4())}):
            expect(admin(node, "POST", test, bad), 422, "validation_failed", "tenant_id")
        expect(admin(node, "POST", test, {"tenant_id": acme, "tenant": acme}), 422,
               "validation_failed", "tenant")
        expect(admin(node, "POST", f"/v1/admin/rules/{uuid.uuid4()}/test", {"tenant_id": acme}),
               404, "not_found")
        assert billing_jobs() == [], billing_jobs()
        assert expect(admin(node, "GET", f"/v1/admin/rules/{rule['id']}/runs"), 200)["runs"] == []
        clock(at("2027-10-30T05:00:01.000Z"))
        wait_for(lambda: len(billing_jobs()) == 2, 15, what="the first day's jobs")
        assert billing_jobs() == sorted([f"{acme} 100", f"{globex} 7"]), billing_jobs()
        runs = expect(admin(node, "GET", f"/v1/admin/rules/{rule['id']}/runs"), 200)["runs"]
        by_tenant = {r["tenant_id"]: r for r in runs}
        assert by_tenant[free]["outcome"] == "not_matched", runs
        assert by_tenant[acme]["outcome"] == by_tenant[globex]["outcome"] == "fired", runs
        # Acme's usage changes; Globex's does not.
        expect(admin(node, "PATCH", f"/v1/admin/tenants/{acme}", {"attributes": {"usage": 130}}),
               200)
        # Sunday 31 October: the clocks went back at 01:00Z; 05:00Z is 06:00
        # local, not yet 07:00.
        clock(at("2027-10-31T05:00:01.000Z"))
        time.sleep(0.5)
        assert len(billing_jobs()) == 2, billing_jobs()
        listed = expect(admin(node, "GET", "/v1/admin/rules"), 200)["rules"]
        [mine] = [r for r in listed if r["id"] == rule["id"]]
        assert mine["tenant_id"] is None and mine["next_fire_at"] == "2027-10-31T06:00:00.000Z", \
            mine
        assert mine["last_run"]["outcome"] in ("fired", "not_matched"), mine
        clock(at("2027-10-31T06:00:01.000Z"))
        wait_for(lambda: len(billing_jobs()) == 3, 15, what="the second day's job")
        assert f"{acme} 130" in billing_jobs(), billing_jobs()
        prev = db.sql("SELECT payload ->> 'previous' FROM jobs WHERE type = 'RecalculateBilling'"
                      " AND payload ->> 'usage' = '130'")
        assert prev == "100", prev
        runs = expect(admin(node, "GET", f"/v1/admin/rules/{rule['id']}/runs"), 200)["runs"]
        assert len(runs) == 6, runs  # two days, three tenants
        states = db.sql(f"SELECT string_agg(tenant_id || '=' || (state ->> 'last_usage'), ','"
                        f" ORDER BY tenant_id) FROM rule_states WHERE rule_id = '{rule['id']}'")
        assert states == ",".join(sorted([f"{acme}=130", f"{globex}=7"])), states
        # A tenant sees neither the platform rule nor its runs among its own.
        key = expect(admin(node, "POST", f"/v1/admin/tenants/{acme}/keys", {}), 201)["token"]
        assert expect(node.request("GET", "/v1/rules", headers=auth(key)), 200)["rules"] == []
        expect(node.request("GET", f"/v1/rules/{rule['id']}", headers=auth(key)), 404)
        expect(node.request("POST", f"/v1/rules/{rule['id']}/test", {}, headers=auth(key)), 404)
    finally:
        node.stop()
        db.drop()


def sign(secret, body):
    t = str(int(time.time()))
    return f"t={t},v1=" + hmac.new(secret.encode(), t.encode() + b"." + body,
                                   hashlib.sha256).hexdigest()


def test_a_payment_delivery_fulfils_then_emails():
    hook = expect(lua(tf, "POST", "/v1/rules", "payment_received.lua", KEY), 201)
    chain = expect(lua(tf, "POST", "/v1/rules", "email_after_fulfilment.lua", KEY), 201)
    body = json.dumps({"type": "payment.received", "order": "o-17", "amount_cents": 4200}).encode()
    got = expect(tf.request("POST", hook["hook_url"], body, headers={
        "Content-Type": "application/json", "TaskFlow-Signature": sign(hook["hook_secret"], body),
        "TaskFlow-Event-Id": "dlv-1"}), 202)
    assert len(got["jobs"]) == 1, got
    [fulfil_id] = got["jobs"]
    fulfil = expect(tf.request("GET", f"/v1/jobs/{fulfil_id}", headers=auth(KEY)), 200)
    assert fulfil["type"] == "Fulfil" and fulfil["payload"]["order"] == "o-17", fulfil
    assert fulfil["correlation_id"] == "dlv-1", fulfil  # the delivery's id
    # The same delivery again fires nothing.
    again = expect(tf.request("POST", hook["hook_url"], body, headers={
        "Content-Type": "application/json", "TaskFlow-Signature": sign(hook["hook_secret"], body),
        "TaskFlow-Event-Id": "dlv-1"}), 202)
    assert again["jobs"] == [fulfil_id], again
    claimed = expect(tf.request("POST", "/v1/queues/fulfilment/claim",
                                {"worker_id": "warehouse", "max_jobs": 1, "wait_ms": 3000},
                                headers=auth(KEY), timeout=10), 200)["jobs"]
    assert [c["id"] for c in claimed] == [fulfil_id], claimed
    expect(tf.request("POST", f"/v1/jobs/{fulfil_id}/complete",
                      {"lease_token": claimed[0]["lease_token"],
                       "result": {"tracking": "TRK-9"}}, headers=auth(KEY)), 200)

    def email():
        found = expect(tf.request("GET", "/v1/jobs?type=SendEmail&correlation_id=dlv-1",
                                  headers=auth(KEY)), 200)["jobs"]
        return found[0] if found else None
    wait_for(email, 15, what="the e-mail job")
    mail = email()
    assert mail["payload"] == {"template": "order-shipped", "order": "o-17",
                               "tracking": "TRK-9"}, mail
    assert mail["rule_id"] == chain["id"], mail


def test_a_dead_job_alerts_the_tenants_url():
    endpoint = JobEndpoint()
    try:
        expect(tf.request("PATCH", f"/v1/admin/tenants/{TENANT}",
                          {"attributes": {"alert_url": endpoint.url + "/alerts"}},
                          headers=auth(ADMIN)), 200)
        expect(lua(tf, "POST", "/v1/rules", "dead_job_alert.lua", KEY), 201)
        job = harness.submit(tf, KEY, type="ImportCsv", queue="imports",
                             retry_policy={"max_attempts": 1})
        claimed = expect(tf.request("POST", "/v1/queues/imports/claim",
                                    {"worker_id": "w", "max_jobs": 1, "wait_ms": 3000},
                                    headers=auth(KEY), timeout=10), 200)["jobs"]
        expect(tf.request("POST", f"/v1/jobs/{job['id']}/fail",
                          {"lease_token": claimed[0]["lease_token"],
                           "error": {"type": "BadRow", "message": "row 7 has no email"}},
                          headers=auth(KEY)), 200)
        wait_for(lambda: len(endpoint.calls) == 1, 15, what="the alert")
        path, _, raw, _ = endpoint.calls[0]
        alert = json.loads(raw)
        assert path == "/alerts" and alert["job"] == job["id"], alert
        assert alert["error"] == {"type": "BadRow", "message": "row 7 has no email"}, alert
        assert "died after 1 attempts: row 7 has no email" in alert["text"], alert
    finally:
        endpoint.close()


def test_an_upload_event_makes_a_thumbnail_on_a_lua_executor():
    expect(lua(tf, "PUT", "/v1/executors/thumbnail", "executors/thumbnail.lua", KEY), 201)
    expect(lua(tf, "POST", "/v1/rules", "thumbnail_on_upload.lua", KEY), 201)
    got = expect(tf.request("POST", "/v1/events", {"name": "image.uploaded", "id": "img-9",
                                                   "data": {"image": "img-9", "width": 4000,
                                                            "height": 3000}},
                            headers=auth(KEY)), 202)
    [run] = got["runs"]
    assert run["outcome"] == "fired" and len(run["jobs"]) == 1, run
    done = harness.wait_job(tf, KEY, run["jobs"][0], ("SUCCEEDED", "FAILED", "DEAD"), 20)
    assert done["state"] == "SUCCEEDED", done
    assert done["result"] == {"image": "img-9", "width": 256, "height": 192}, done
    # Data the condition refuses: a run, no job.
    got = expect(tf.request("POST", "/v1/events", {"name": "image.uploaded",
                                                   "data": {"image": "x"}},
                            headers=auth(KEY)), 202)
    assert got["runs"][0]["outcome"] == "not_matched", got


if __name__ == "__main__":
    shared = Database("examples_rules")
    tf = TaskFlow(shared.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api,worker",
                                   "TASKFLOW_HTTP_ALLOW_LOOPBACK": "true",
                                   "TASKFLOW_POLL_INTERVAL_MS": "50"})
    TENANT, KEY, _ = harness.new_tenant(tf, ADMIN, "examples-rules")
    try:
        run_tests([test_pro_billing_across_the_autumn_change,
                   test_a_payment_delivery_fulfils_then_emails,
                   test_a_dead_job_alerts_the_tenants_url,
                   test_an_upload_event_makes_a_thumbnail_on_a_lua_executor])
    finally:
        tf.stop()
        shared.drop()
