#!/usr/bin/env python3
"""The built-in runner is woken by the submission itself (NOTIFY at
commit), never by the fallback poll: the poll interval here is a minute (the most allowed),
so every job below that ends within the wait ran because its submission
woke the runner.

Covers each way a built-in job becomes ready at submission: a job whose Lua
executor comes from its type (known only inside the submit statement), one
naming its executor, a batch, and a job a Lua run creates (tf.enqueue,
inserted with the run's outcome).  (Long-polling external claims also retry
every second, so their wake-up cannot be told from that here.)"""
import uuid

import tfharness as harness
from tfharness import Database, TaskFlow, auth, expect, run_tests

ADMIN = "tf-admin-" + uuid.uuid4().hex
TERMINAL = ("SUCCEEDED", "FAILED", "DEAD", "CANCELLED")


def submit(**job):
    return expect(tf.request("POST", "/v1/jobs", job, headers=auth(KEY)), 201)


def test_built_in_runs_wake_for_each_way_a_job_is_made_ready():
    source = ('return {name = "waker", handles = {"Wake", "Child"}, run = function(job, ctx)\n'
              '  if job.type == "Wake" and job.payload.spawn then\n'
              '    return {child = tf.enqueue{type = "Child", queue = "wake"}}\n'
              '  end\n'
              '  return {ok = true}\n'
              'end}\n')
    expect(tf.request("PUT", "/v1/executors/waker", source.encode(),
                      headers=auth(KEY, **{"Content-Type": "text/x-lua"})), 201)
    by_type = submit(type="Wake", queue="wake", payload={"spawn": False})
    named = submit(type="Other", queue="wake-named",
                   executor={"kind": "lua", "name": "waker"})
    parent = submit(type="Wake", queue="wake", payload={"spawn": True})
    batch = expect(tf.request("POST", "/v1/jobs/batch",
                              {"jobs": [{"type": "Wake", "queue": "wake-batch"}] * 3},
                              headers=auth(KEY)), 201)["jobs"]
    for job in [by_type, named, parent] + batch:
        done = harness.wait_job(tf, KEY, job["id"], TERMINAL, 20)
        assert done["state"] == "SUCCEEDED", done
    child_id = harness.wait_job(tf, KEY, parent["id"], TERMINAL, 20)["result"]["child"]
    child = harness.wait_job(tf, KEY, child_id, TERMINAL, 20)
    assert child["state"] == "SUCCEEDED" and child["parent_id"] == parent["id"], child


if __name__ == "__main__":
    db = Database("wake")
    tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api,worker",
                               "TASKFLOW_POLL_INTERVAL_MS": "60000"})
    TENANT, KEY, _ = harness.new_tenant(tf, ADMIN, "wake")
    try:
        run_tests([test_built_in_runs_wake_for_each_way_a_job_is_made_ready])
    finally:
        tf.stop()
        db.drop()
