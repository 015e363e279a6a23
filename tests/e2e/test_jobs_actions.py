"""Cancel, retry and dead-letter requeue against the real server: every
allowed and every refused transition from each of the seven states, the
job_events row each transition writes (and that a refusal writes nothing),
the narrow state tables following the job, cancel cascading to dependants,
requeue by ids and by queue, tenant isolation, authentication, and bad
input answered with a clear 4xx that changes nothing.

Jobs are submitted through POST /v1/jobs; states that only workers reach
(RUNNING, SUCCEEDED, FAILED, DEAD) are set with SQL the way those modules
write them.
"""
import json
import os
import threading
import uuid

import tfharness as harness
from tfharness import Database, TaskFlow, fail, run_tests, auth, expect

ADMIN = "tf-admin-" + uuid.uuid4().hex
STATES = ["PENDING", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED", "DEAD", "CANCELLED"]
NIL = "00000000-0000-0000-0000-000000000000"


# ---- helpers ----


def new_tenant(name):
    return harness.new_tenant(tf, ADMIN, name)


def submit(token, **job):
    return harness.submit(tf, token, **job)


def submit_many(token, jobs):
    return expect(tf.request("POST", "/v1/jobs/batch", {"jobs": jobs}, headers=auth(token)),
                  201)["jobs"]


def cancel(job_id, token):
    return tf.request("POST", f"/v1/jobs/{job_id}/cancel", headers=auth(token))


def retry(job_id, token):
    return tf.request("POST", f"/v1/jobs/{job_id}/retry", headers=auth(token))


def requeue(body, token, **headers):
    return tf.request("POST", "/v1/dead-letter/requeue", body, headers=auth(token, **headers))


def get_job(job_id, token=None):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}", headers=auth(token or KEY_A)), 200)


def claim(job_id, worker="w-1"):
    harness.sql_claim(db, job_id, worker)


def finish(job_id, state, worker="w-1"):
    harness.sql_finish(db, job_id, state, worker)


def make_job(state, token=None, **job):
    """A new job of tenant A (or `token`'s) in `state`."""
    token = token or KEY_A
    if state == "SCHEDULED":
        job.setdefault("delay_ms", 3600000)
    created = submit(token, **job)
    if state in ("RUNNING", "SUCCEEDED", "FAILED", "DEAD"):
        claim(created["id"])
        if state != "RUNNING":
            finish(created["id"], state)
    elif state == "CANCELLED":
        expect(cancel(created["id"], token), 200)
    got = get_job(created["id"], token)
    assert got["state"] == state, got
    return got


def tables_of(job_id):
    """The narrow state tables that hold the job."""
    out = db.sql(f"SELECT t FROM (VALUES ('ready'), ('scheduled'), ('running'), "
                 f"('dead_letters')) AS v(t) WHERE EXISTS (SELECT 1 FROM ready WHERE "
                 f"job_id = '{job_id}' AND t = 'ready' UNION ALL SELECT 1 FROM scheduled "
                 f"WHERE job_id = '{job_id}' AND t = 'scheduled' UNION ALL SELECT 1 FROM running "
                 f"WHERE job_id = '{job_id}' AND t = 'running' UNION ALL SELECT 1 FROM "
                 f"dead_letters WHERE job_id = '{job_id}' AND t = 'dead_letters')")
    return set(out.split()) if out else set()


def snapshot(job_id):
    """Everything a transition could change about one job."""
    row = db.sql(f"SELECT row_to_json(j) FROM jobs j WHERE id = '{job_id}'")
    events = db.sql(f"SELECT count(*) FROM job_events WHERE job_id = '{job_id}'")
    attempts = db.sql(f"SELECT count(*) FROM job_attempts WHERE job_id = '{job_id}'")
    return json.loads(row), events, attempts, tables_of(job_id)


def events_of(job_id, token=None):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}/events",
                             headers=auth(token or KEY_A)), 200)["events"]


def check_chain(events):
    assert events[0]["from"] is None, events
    for prev, nxt in zip(events, events[1:]):
        assert nxt["from"] == prev["to"], events
        assert nxt["id"] > prev["id"], events


# ---- cancel ----

def test_cancel_from_each_state():
    for state in STATES:
        job = make_job(state, queue="cancelq")
        before = snapshot(job["id"])
        answer = cancel(job["id"], KEY_A)
        if state in ("PENDING", "SCHEDULED", "RUNNING"):
            got = expect(answer, 200)
            assert got["state"] == "CANCELLED" and got["finished_at"], got
            assert got == get_job(job["id"]), got
            assert tables_of(job["id"]) == set(), (state, tables_of(job["id"]))
            last = events_of(job["id"])[-1]
            assert (last["from"], last["to"], last["reason"], last["actor"]) == \
                (state, "CANCELLED", "cancelled", f"key:{KEY_A_ID}"), last
            assert len(events_of(job["id"])) == int(before[1]) + 1
        else:
            body = expect(answer, 409, "conflict")
            assert state in body["error"]["message"], body
            assert snapshot(job["id"]) == before, state


def cancelled_events(job_id):
    """The job.cancelled domain events written for `job_id`."""
    return int(db.sql(f"SELECT count(*) FROM domain_events WHERE job_id = '{job_id}'"
                      " AND name = 'job.cancelled' AND state = 6"))


def test_cancel_running_revokes_the_lease():
    job = make_job("RUNNING", queue="cap-q")
    db.sql(f"UPDATE running SET started_at = now() - interval '2 seconds' "
           f"WHERE job_id = '{job['id']}'")
    expect(cancel(job["id"], KEY_A), 200)
    row = json.loads(db.sql(f"SELECT row_to_json(j) FROM jobs j WHERE id = '{job['id']}'"))
    assert row["lease_token"] is None and row["locked_by"] is None, row
    assert row["lease_expires_at"] is None, row
    attempts = expect(tf.request("GET", f"/v1/jobs/{job['id']}/attempts",
                                 headers=auth(KEY_A)), 200)["attempts"]
    assert len(attempts) == 1, attempts
    a = attempts[0]
    assert a["outcome"] == "cancelled" and a["worker"] == "w-1" and a["attempt"] == 1, a
    assert a["duration_ms"] >= 2000 and a["finished_at"], a
    # Every cancelled job, running or not, emits job.cancelled once.
    assert cancelled_events(job["id"]) == 1
    for state in ("PENDING", "SCHEDULED"):
        other = make_job(state, queue="cap-q")
        expect(cancel(other["id"], KEY_A), 200)
        assert cancelled_events(other["id"]) == 1, state


def test_cancel_cascades_to_dependants():
    a = submit(KEY_A, type="A")
    b = submit(KEY_A, type="B", depends_on=[a["id"]])
    c = submit(KEY_A, type="C", depends_on=[b["id"]])
    d = submit(KEY_A, type="D", depends_on=[a["id"], b["id"]])  # a diamond
    e = submit(KEY_A, type="E", depends_on=[a["id"]], delay_ms=3600000)
    g = submit(KEY_A, type="G", depends_on=[a["id"]])
    other = submit(KEY_A, type="Other")
    expect(cancel(g["id"], KEY_A), 200)  # already finished: left alone
    g_before = snapshot(g["id"])
    other_before = snapshot(other["id"])
    got = expect(cancel(a["id"], KEY_A), 200)
    assert got["id"] == a["id"] and got["state"] == "CANCELLED", got
    parents = {b["id"]: a["id"], c["id"]: b["id"], d["id"]: a["id"], e["id"]: a["id"]}
    for child, parent in parents.items():
        job = get_job(child)
        assert job["state"] == "CANCELLED" and job["finished_at"], job
        assert tables_of(child) == set(), tables_of(child)
        events = events_of(child)
        check_chain(events)
        cancelled = [x for x in events if x["to"] == "CANCELLED"]
        assert len(cancelled) == 1, events
        assert cancelled[0]["reason"] == f"dependency_cancelled:{parent}", events
        assert cancelled[0]["actor"] == f"key:{KEY_A_ID}", events
    assert snapshot(g["id"]) == g_before
    assert snapshot(other["id"]) == other_before
    # Cancelling a job in the middle leaves its parent alone.
    p = submit(KEY_A, type="P")
    m = submit(KEY_A, type="M", depends_on=[p["id"]])
    leaf = submit(KEY_A, type="Leaf", depends_on=[m["id"]])
    expect(cancel(m["id"], KEY_A), 200)
    assert get_job(p["id"])["state"] == "PENDING"
    assert get_job(leaf["id"])["state"] == "CANCELLED"


def test_concurrent_cancels_one_wins():
    job = submit(KEY_A, type="Race")
    child = submit(KEY_A, type="RaceChild", depends_on=[job["id"]])
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(cancel(job["id"], KEY_A)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(a[0] for a in answers) == [200] + [409] * 5, answers
    for status, _, body in answers:
        assert status == 200 or "the job is CANCELLED" in body["error"]["message"], body
    for jid in (job["id"], child["id"]):
        assert [x["to"] for x in events_of(jid)].count("CANCELLED") == 1, events_of(jid)


# ---- retry ----

def test_retry_from_each_state():
    for state in STATES:
        job = make_job(state, queue="retryq")
        before = snapshot(job["id"])
        answer = retry(job["id"], KEY_A)
        if state in ("FAILED", "DEAD", "CANCELLED"):
            got = expect(answer, 200)
            assert got["state"] == "PENDING" and got["attempts"] == 0, got
            assert got["finished_at"] is None and got["started_at"] is None, got
            assert got["result"] is None and got["run_at"] >= job["updated_at"], got
            # The error of the last series stays, as history.
            assert got["last_error"] == job["last_error"], (got, job)
            assert got == get_job(job["id"]), got
            assert tables_of(job["id"]) == {"ready"}, (state, tables_of(job["id"]))
            last = events_of(job["id"])[-1]
            assert (last["from"], last["to"], last["reason"], last["actor"]) == \
                (state, "PENDING", "manual_retry", f"key:{KEY_A_ID}"), last
            check_chain(events_of(job["id"]))
        else:
            body = expect(answer, 409, "conflict")
            assert state in body["error"]["message"], body
            assert snapshot(job["id"]) == before, state


def test_retry_ready_row_follows_the_queue():
    db.sql("INSERT INTO queues (name, priority_boost_ms) VALUES ('boosted', 1000)")
    cases = (("boosted", 5, {"kind": "lua", "name": "img"}, 5000, "t"),
             ("plain-q", -3, None, -180000, "f"),
             ("plain-q", 0, None, 0, "f"))
    for queue, priority, executor, ahead_ms, builtin in cases:
        extra = {"executor": executor} if executor else {}
        job = make_job("FAILED", queue=queue, priority=priority, **extra)
        expect(retry(job["id"], KEY_A), 200)
        row = db.sql(f"SELECT round(extract(epoch FROM r.run_at - r.sort_key) * 1000), r.builtin, "
                     f"r.queue, r.run_at = j.run_at FROM ready r JOIN jobs j ON j.id = r.job_id "
                     f"WHERE r.job_id = '{job['id']}'")
        assert row == f"{ahead_ms}|{builtin}|{queue}|t", (queue, priority, row)


def test_retry_waits_for_pending_parents():
    parent = submit(KEY_A, type="Parent")
    child = submit(KEY_A, type="Child", depends_on=[parent["id"]])
    expect(cancel(child["id"], KEY_A), 200)
    got = expect(retry(child["id"], KEY_A), 200)
    assert got["state"] == "PENDING", got
    assert tables_of(child["id"]) == set(), tables_of(child["id"])  # not claimable yet
    assert get_job(parent["id"])["state"] == "PENDING"


def test_retry_starts_a_new_series():
    job = make_job("DEAD", queue="series")
    expect(retry(job["id"], KEY_A), 200)
    claim(job["id"], worker="w-2")
    got = get_job(job["id"])
    assert got["attempts"] == 1 and got["state"] == "RUNNING", got
    attempts = expect(tf.request("GET", f"/v1/jobs/{job['id']}/attempts",
                                 headers=auth(KEY_A)), 200)["attempts"]
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "failed"), (1, "running")]
    events = events_of(job["id"])
    check_chain(events)
    assert [x["to"] for x in events] == ["PENDING", "RUNNING", "DEAD", "PENDING", "RUNNING"]


def test_concurrent_retries_one_wins():
    job = make_job("FAILED")
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(retry(job["id"], KEY_A)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(a[0] for a in answers) == [200] + [409] * 5, answers
    # The losers are told the state the winner left the job in.
    for status, _, body in answers:
        assert status == 200 or "the job is PENDING" in body["error"]["message"], body
    assert [x["reason"] for x in events_of(job["id"])].count("manual_retry") == 1


# ---- requeue ----

def test_requeue_by_ids():
    dead = [make_job("DEAD", queue="rq-ids") for _ in range(2)]
    theirs = make_job("DEAD", token=KEY_B, queue="rq-ids")
    failed = make_job("FAILED", queue="rq-ids")
    pending = make_job("PENDING", queue="rq-ids")
    untouched = [snapshot(x["id"]) for x in (failed, pending)]
    theirs_before = snapshot(theirs["id"])
    ids = [dead[1]["id"], theirs["id"], failed["id"], str(uuid.uuid4()), pending["id"],
           dead[0]["id"].upper(), dead[1]["id"]]
    res = expect(requeue({"ids": ids}, KEY_A), 200)
    assert set(res) == {"requeued", "jobs"}, res
    assert res["requeued"] == 2 and [j["id"] for j in res["jobs"]] == sorted(
        x["id"] for x in dead), res
    for j in res["jobs"]:
        assert j["state"] == "PENDING" and j["attempts"] == 0 and j == get_job(j["id"]), j
        assert tables_of(j["id"]) == {"ready"}, tables_of(j["id"])
        last = events_of(j["id"])[-1]
        assert (last["from"], last["to"], last["reason"]) == ("DEAD", "PENDING",
                                                              "manual_retry"), last
    assert [snapshot(x["id"]) for x in (failed, pending)] == untouched
    assert snapshot(theirs["id"]) == theirs_before
    assert expect(requeue({"ids": ids}, KEY_A), 200) == {"requeued": 0, "jobs": []}
    # B can requeue its own.
    res = expect(requeue({"ids": [theirs["id"]]}, KEY_B), 200)
    assert res["requeued"] == 1 and res["jobs"][0]["tenant_id"] == TENANT_B, res


def test_requeue_by_queue():
    jobs = []
    for n in (1000, 5):
        jobs += submit_many(KEY_A, [{"type": "Bulk", "queue": "rq-bulk"} for _ in range(n)])
    others = submit_many(KEY_A, [{"type": "Bulk", "queue": "rq-other"} for _ in range(2)])
    b_job = make_job("DEAD", token=KEY_B, queue="rq-bulk")
    ids = ",".join(f"'{j['id']}'" for j in jobs + others)
    db.sql(f"""
        WITH u AS (UPDATE jobs SET state = 5, attempts = 1, finished_at = now(),
                   updated_at = now(), last_error_type = 'Boom', last_error_message = 'x'
                   WHERE id IN ({ids}) RETURNING tenant_id, id, queue),
             r AS (DELETE FROM ready WHERE job_id IN ({ids})),
             d AS (INSERT INTO dead_letters (tenant_id, job_id, queue)
                   SELECT tenant_id, id, queue FROM u)
        INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)
        SELECT tenant_id, id, 0, 5, 'test', 'test' FROM u""")
    want = sorted(j["id"] for j in jobs)
    first = expect(requeue({"queue": "rq-bulk"}, KEY_A), 200)
    assert first["requeued"] == 1000 and [j["id"] for j in first["jobs"]] == want[:1000]
    assert all(j["state"] == "PENDING" and j["attempts"] == 0 for j in first["jobs"])
    second = expect(requeue({"queue": "rq-bulk"}, KEY_A), 200)
    assert second["requeued"] == 5 and [j["id"] for j in second["jobs"]] == want[1000:]
    assert expect(requeue({"queue": "rq-bulk"}, KEY_A), 200) == {"requeued": 0, "jobs": []}
    counts = db.sql(f"SELECT count(*) FILTER (WHERE reason = 'manual_retry'), "
                    f"count(*) FILTER (WHERE reason = 'manual_retry' AND from_state = 5 "
                    f"AND to_state = 0) FROM job_events WHERE job_id IN ({ids})")
    assert counts == "1005|1005", counts
    assert db.sql(f"SELECT count(*) FROM ready WHERE job_id IN ({ids})") == "1005"
    dl = expect(tf.request("GET", "/v1/dead-letter?queue=rq-other", headers=auth(KEY_A)), 200)
    assert sorted(j["id"] for j in dl["jobs"]) == sorted(j["id"] for j in others), dl
    assert get_job(b_job["id"], KEY_B)["state"] == "DEAD"


def test_requeue_bad_input_changes_nothing():
    job = make_job("DEAD", queue="rq-bad")
    before = snapshot(job["id"])
    dead_rows = db.sql("SELECT count(*) FROM dead_letters")
    raw = {"Content-Type": "application/json"}
    expect(requeue(b'{"ids": [', KEY_A, **raw), 400, "invalid_json")
    expect(requeue(b'', KEY_A, **raw), 400, "invalid_json")
    expect(requeue(json.dumps({"queue": "rq-bad"}).encode(), KEY_A,
                   **{"Content-Type": "text/plain"}), 415)
    for body, field in (([job["id"]], "body"), ("rq-bad", "body"), ({}, "ids"),
                        ({"ids": [job["id"]], "queue": "rq-bad"}, "queue"),
                        ({"ids": [job["id"]], "force": True}, "force"),
                        ({"queue": "rq-bad", "limit": 5}, "limit"),
                        ({"ids": []}, "ids"), ({"ids": None}, "ids"),
                        ({"ids": job["id"]}, "ids"), ({"ids": {"a": job["id"]}}, "ids"),
                        ({"ids": [job["id"]] * 1001}, "ids"),
                        ({"ids": [job["id"], "nope"]}, "ids[1]"),
                        ({"ids": [job["id"], 12]}, "ids[1]"),
                        ({"ids": [job["id"], job["id"][:-1]]}, "ids[1]"),
                        ({"queue": ""}, "queue"), ({"queue": "no spaces"}, "queue"),
                        ({"queue": "q" * 129}, "queue"), ({"queue": 5}, "queue"),
                        ({"queue": None}, "queue"), ({"queue": ["rq-bad"]}, "queue")):
        expect(requeue(json.dumps(body).encode(), KEY_A, **raw), 422, "validation_failed", field)
    assert snapshot(job["id"]) == before
    assert db.sql("SELECT count(*) FROM dead_letters") == dead_rows
    # Exactly 1000 ids is fine.
    res = expect(requeue({"ids": [job["id"]] + [str(uuid.uuid4()) for _ in range(999)]}, KEY_A),
                 200)
    assert res["requeued"] == 1, res


# ---- ids, isolation, tokens ----

def test_malformed_ids_are_404():
    for bad in ("nope", "1234", uuid.uuid4().hex, "01937a3e-4f2b-7c1d-9e8f-0a1b2c3d4e5",
                str(uuid.uuid4())):
        expect(cancel(bad, KEY_A), 404, "not_found")
        expect(retry(bad, KEY_A), 404, "not_found")


def test_other_tenant_gets_404():
    pending = make_job("PENDING")
    failed = make_job("FAILED")
    before = [snapshot(pending["id"]), snapshot(failed["id"])]
    for job in (pending, failed):
        expect(cancel(job["id"], KEY_B), 404, "not_found")
        expect(retry(job["id"], KEY_B), 404, "not_found")
        expect(cancel(job["id"], ADMIN), 422)
        expect(tf.request("POST", f"/v1/jobs/{job['id']}/cancel",
                          headers=auth(ADMIN, TENANT_B)), 404)
    assert [snapshot(pending["id"]), snapshot(failed["id"])] == before


def test_tokens():
    job = make_job("PENDING")
    spare_tenant, spare, spare_id = new_tenant("act-spare")
    expect(tf.request("DELETE", f"/v1/admin/tenants/{spare_tenant}/keys/{spare_id}",
                      headers=auth(ADMIN)), 204)
    before = snapshot(job["id"])
    routes = ((f"/v1/jobs/{job['id']}/cancel", None), (f"/v1/jobs/{job['id']}/retry", None),
              ("/v1/dead-letter/requeue", {"queue": "default"}))
    for path, body in routes:
        for headers in ({}, {"Authorization": "Bearer tf_nope"}, {"Authorization": "Bearer "},
                        {"Authorization": f"Token {KEY_A}"}, auth(spare)):
            expect(tf.request("POST", path, body, headers=headers), 401, "unauthorized")
        expect(tf.request("POST", path, body, headers=auth(ADMIN)), 422, "validation_failed")
        expect(tf.request("POST", path, body, headers=auth(ADMIN, str(uuid.uuid4()))), 404)
    assert snapshot(job["id"]) == before
    # The admin acts for A, and is recorded as the actor.
    got = expect(tf.request("POST", f"/v1/jobs/{job['id']}/cancel",
                            headers=auth(ADMIN, TENANT_A)), 200)
    assert got["state"] == "CANCELLED", got
    assert events_of(job["id"])[-1]["actor"] == "admin"
    got = expect(tf.request("POST", f"/v1/jobs/{job['id']}/retry",
                            headers=auth(ADMIN, TENANT_A)), 200)
    assert got["state"] == "PENDING", got
    res = expect(requeue({"queue": "nothing-dead-here"}, ADMIN, **{"TaskFlow-Tenant": TENANT_A}),
                 200)
    assert res == {"requeued": 0, "jobs": []}, res


def test_history_of_a_busy_job():
    job = submit(KEY_A, type="Busy")
    expect(cancel(job["id"], KEY_A), 200)
    expect(retry(job["id"], KEY_A), 200)
    claim(job["id"])
    finish(job["id"], "FAILED")
    expect(retry(job["id"], KEY_A), 200)
    claim(job["id"])
    expect(cancel(job["id"], KEY_A), 200)
    expect(retry(job["id"], KEY_A), 200)
    claim(job["id"])
    finish(job["id"], "DEAD")
    res = expect(requeue({"ids": [job["id"]]}, KEY_A), 200)
    assert res["requeued"] == 1, res
    events = events_of(job["id"])
    check_chain(events)
    assert [(x["to"], x["reason"]) for x in events] == [
        ("PENDING", "created"), ("CANCELLED", "cancelled"), ("PENDING", "manual_retry"),
        ("RUNNING", "claimed"), ("FAILED", "test"), ("PENDING", "manual_retry"),
        ("RUNNING", "claimed"), ("CANCELLED", "cancelled"), ("PENDING", "manual_retry"),
        ("RUNNING", "claimed"), ("DEAD", "test"), ("PENDING", "manual_retry")], events
    attempts = expect(tf.request("GET", f"/v1/jobs/{job['id']}/attempts",
                                 headers=auth(KEY_A)), 200)["attempts"]
    assert [a["outcome"] for a in attempts] == ["failed", "cancelled", "failed"], attempts


db = Database("jobs_actions")
tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN})
try:
    TENANT_A, KEY_A, KEY_A_ID = new_tenant("actor-a")
    TENANT_B, KEY_B, _ = new_tenant("actor-b")
    run_tests([test_cancel_from_each_state, test_cancel_running_revokes_the_lease,
               test_cancel_cascades_to_dependants, test_concurrent_cancels_one_wins,
               test_retry_from_each_state, test_retry_ready_row_follows_the_queue,
               test_retry_waits_for_pending_parents, test_retry_starts_a_new_series,
               test_concurrent_retries_one_wins, test_requeue_by_ids, test_requeue_by_queue,
               test_requeue_bad_input_changes_nothing, test_malformed_ids_are_404,
               test_other_tenant_gets_404, test_tokens, test_history_of_a_busy_job])
finally:
    tf.stop()
    db.drop()
