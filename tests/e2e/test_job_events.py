#!/usr/bin/env python3
"""Rules fired by job events (issue 9): a job.succeeded rule chains a job
with the finished job's result and correlation id, a job.dead rule sees the
last error, type and queue filters hold, a disabled rule and a job of
another type fire nothing, a failing action records a failed run and
creates nothing, and with two nodes consuming the event outbox each event
fires each rule exactly once."""
import uuid

import tfharness as harness
from tfharness import Database, TaskFlow, auth, expect, run_tests, wait_for

ADMIN = "tf-admin-" + uuid.uuid4().hex
NODE_ENV = {"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api,worker",
            "TASKFLOW_POLL_INTERVAL_MS": "50"}


def upload(source):
    return expect(a.request("POST", "/v1/rules", source.encode(),
                            headers=auth(KEY, **{"Content-Type": "text/x-lua"})), 201)


def runs(rule_id):
    return expect(a.request("GET", f"/v1/rules/{rule_id}/runs?limit=100", headers=auth(KEY)),
                  200)["runs"]


def claim(queue):
    got = expect(a.request("POST", f"/v1/queues/{queue}/claim",
                           {"worker_id": "w-1", "max_jobs": 1, "wait_ms": 3000},
                           headers=auth(KEY), timeout=10), 200)["jobs"]
    assert len(got) == 1, got
    return got[0]


def complete(job, result):
    expect(a.request("POST", f"/v1/jobs/{job['id']}/complete",
                     {"lease_token": job["lease_token"], "result": result},
                     headers=auth(KEY)), 200)


def fail(job, error):
    expect(a.request("POST", f"/v1/jobs/{job['id']}/fail",
                     {"lease_token": job["lease_token"], "error": error}, headers=auth(KEY)), 200)


def jobs_of(rule_id, what="count(*)"):
    return db.sql(f"SELECT {what} FROM jobs WHERE rule_id = '{rule_id}'")


CHAIN = '''return {
  name = "email-after-fulfil",
  trigger = tf.on("job.succeeded", {type = "Fulfil"}),
  action = function(ev, ctx)
    tf.enqueue{type = "SendEmail", queue = "mail",
               payload = {order = ev.job.payload.order, tracking = ev.job.result.tracking,
                          event = ev.name}}
  end,
}
'''

ALERT = '''return {
  name = "alert-dead-payments",
  trigger = tf.on("job.dead", {queue = "payments"}),
  action = function(ev, ctx)
    tf.enqueue{type = "Alert", queue = "alerts",
               payload = {job = ev.job.id, error = ev.job.error, attempts = ev.job.attempts}}
  end,
}
'''


def test_a_succeeded_job_chains_the_next_with_its_result():
    rule = upload(CHAIN)
    job = harness.submit(a, KEY, type="Fulfil", queue="shop", payload={"order": 42},
                         correlation_id="order-42")
    complete(claim("shop"), {"tracking": "TRK-1"})
    wait_for(lambda: jobs_of(rule["id"]) == "1", 10, what="the chained job")
    email = db.sql(f"SELECT payload::text || '|' || correlation_id || '|' || type FROM jobs"
                   f" WHERE rule_id = '{rule['id']}'")
    assert email == ('{"event": "job.succeeded", "order": 42, "tracking": "TRK-1"}'
                     '|order-42|SendEmail'), email
    [run] = runs(rule["id"])
    assert run["trigger"] == "job.succeeded" and run["outcome"] == "fired", run
    assert run["event_id"].startswith("job-event:"), run
    # Another type, or a failure, fires nothing.
    harness.submit(a, KEY, type="Other", queue="shop")
    complete(claim("shop"), {"ok": True})
    harness.submit(a, KEY, type="Fulfil", queue="shop", retry_policy={"max_attempts": 1})
    fail(claim("shop"), {"type": "Boom", "message": "no stock"})
    # A disabled rule fires nothing for what happens while it is disabled.
    expect(a.request("POST", f"/v1/rules/{rule['id']}/disable", headers=auth(KEY)), 200)
    harness.submit(a, KEY, type="Fulfil", queue="shop", payload={"order": 43})
    complete(claim("shop"), {"tracking": "TRK-2"})
    marker = upload(CHAIN.replace("email-after-fulfil", "marker").replace('"Fulfil"', '"Mark"'))
    harness.submit(a, KEY, type="Mark", queue="shop", payload={"order": 0})
    complete(claim("shop"), {"tracking": "-"})
    wait_for(lambda: jobs_of(marker["id"]) == "1", 10, what="the marker")
    assert jobs_of(rule["id"]) == "1" and len(runs(rule["id"])) == 1
    expect(a.request("POST", f"/v1/rules/{rule['id']}/enable", headers=auth(KEY)), 200)
    harness.submit(a, KEY, type="Fulfil", queue="shop", payload={"order": 44})
    complete(claim("shop"), {"tracking": "TRK-3"})
    wait_for(lambda: jobs_of(rule["id"]) == "2", 10, what="the chain after enable")
    assert job["correlation_id"] == "order-42"
    for r in (rule, marker):
        expect(a.request("DELETE", f"/v1/rules/{r['id']}", headers=auth(KEY)), 204)


def test_a_dead_job_alerts_with_its_last_error():
    rule = upload(ALERT)
    harness.submit(a, KEY, type="Charge", queue="payments", retry_policy={"max_attempts": 1})
    fail(claim("payments"), {"type": "CardDeclined", "message": "insufficient funds"})
    harness.submit(a, KEY, type="Charge", queue="elsewhere", retry_policy={"max_attempts": 1})
    fail(claim("elsewhere"), {"type": "CardDeclined", "message": "other queue"})
    wait_for(lambda: jobs_of(rule["id"]) == "1", 10, what="the alert")
    alert = db.sql(f"SELECT payload::text FROM jobs WHERE rule_id = '{rule['id']}'")
    assert '"error": {"type": "CardDeclined", "message": "insufficient funds"}' in alert, alert
    assert '"attempts": 1' in alert, alert
    expect(a.request("DELETE", f"/v1/rules/{rule['id']}", headers=auth(KEY)), 204)


def test_a_failing_action_creates_nothing_and_is_recorded():
    rule = upload('''return {
  name = "broken-chain",
  trigger = tf.on("job.succeeded", {type = "Breaks"}),
  action = function(ev, ctx)
    tf.enqueue{type = "Never", queue = "mail"}
    ctx.state.seen = true
    error("no template for " .. ev.job.type)
  end,
}
''')
    harness.submit(a, KEY, type="Breaks", queue="shop")
    complete(claim("shop"), {})
    wait_for(lambda: len(runs(rule["id"])) == 1, 10, what="the failed run")
    [run] = runs(rule["id"])
    assert run["outcome"] == "failed" and "no template for Breaks" in run["error"]["message"], run
    assert run["jobs"] == [] and jobs_of(rule["id"]) == "0"
    assert db.sql(f"SELECT count(*) FROM rule_states WHERE rule_id = '{rule['id']}'") == "0"
    expect(a.request("DELETE", f"/v1/rules/{rule['id']}", headers=auth(KEY)), 204)


def test_two_nodes_fire_each_event_once():
    rule = upload(CHAIN.replace("email-after-fulfil", "bulk").replace('"Fulfil"', '"Bulk"'))
    n = 60
    expect(a.request("POST", "/v1/jobs/batch", {"jobs": [
        {"type": "Bulk", "queue": "bulk", "payload": {"order": i}} for i in range(n)]},
        headers=auth(KEY)), 201)
    for _ in range(n):
        complete(claim("bulk"), {"tracking": "T"})
    wait_for(lambda: jobs_of(rule["id"]) == str(n), 20, what="one chained job per event")
    assert len(runs(rule["id"])) == n
    orders = jobs_of(rule["id"], "count(DISTINCT payload ->> 'order')")
    assert orders == str(n), orders
    expect(a.request("DELETE", f"/v1/rules/{rule['id']}", headers=auth(KEY)), 204)


if __name__ == "__main__":
    db = Database("jobevents")
    a = TaskFlow(db.url, env={**NODE_ENV, "TASKFLOW_WORKER_ID": "node-a"})
    b = TaskFlow(db.url, env={**NODE_ENV, "TASKFLOW_WORKER_ID": "node-b"})
    TENANT, KEY, _ = harness.new_tenant(a, ADMIN, "jobevents")
    try:
        run_tests([test_a_succeeded_job_chains_the_next_with_its_result,
                   test_a_dead_job_alerts_with_its_last_error,
                   test_a_failing_action_creates_nothing_and_is_recorded,
                   test_two_nodes_fire_each_event_once])
    finally:
        a.stop()
        b.stop()
        db.drop()
