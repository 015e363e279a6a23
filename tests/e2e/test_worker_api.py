"""The external-worker API against the real server: claim (order, tenant
scope, built-in jobs never handed out, paused queues, the admin token across
tenants, no job handed out twice under concurrent claims, long polls woken by
new work or answered empty at their deadline), heartbeat, complete, fail
(retry, non-retryable, exhausted to the dead letter and back), the batch ack
judged ack by ack, stale lease tokens and other tenants' jobs refused with
nothing changed, bad input answered with a 4xx naming the field and nothing
changed, and the claim metrics.

The server runs with TASKFLOW_ROLE=api so that no built-in runner or
maintenance touches the jobs while a test looks at them.
"""
import json
import os
import threading
import time
import uuid
from datetime import datetime, timezone

import tfharness as harness
from tfharness import Database, TaskFlow, fail, is_uuid, run_tests, auth, expect

ADMIN = "tf-admin-" + uuid.uuid4().hex
NIL = "00000000-0000-0000-0000-000000000000"
CLAIMED_KEYS = {"id", "type", "queue", "tenant_id", "payload", "attempt", "max_attempts",
                "lease_token", "lease_expires_at", "timeout_ms", "correlation_id", "created_at"}


# ---- helpers ----


def ts(text):
    """An API time as seconds since the epoch."""
    assert text.endswith("Z") and len(text) == 24, text
    return datetime.fromisoformat(text[:-1] + "+00:00").timestamp()


def new_tenant(name):
    return harness.new_tenant(tf, ADMIN, name)


def submit(token, **job):
    return harness.submit(tf, token, **job)


def submit_many(token, jobs):
    return expect(tf.request("POST", "/v1/jobs/batch", {"jobs": jobs}, headers=auth(token)),
                  201)["jobs"]


def claim_raw(queue, token, body=None, tenant=None, timeout=40, **fields):
    if body is None:
        body = dict({"worker_id": "w-1"}, **fields)
    return tf.request("POST", f"/v1/queues/{queue}/claim", body, headers=auth(token, tenant),
                      timeout=timeout)


def claim(queue, token, tenant=None, **fields):
    got = expect(claim_raw(queue, token, tenant=tenant, **fields), 200)
    assert set(got) == {"jobs"}, got
    for j in got["jobs"]:
        assert set(j) == CLAIMED_KEYS, j
        assert is_uuid(j["id"]) and is_uuid(j["tenant_id"]) and is_uuid(j["lease_token"]), j
        assert j["queue"] == queue, j
        ts(j["lease_expires_at"]), ts(j["created_at"])
    return got["jobs"]


def act(job_id, action, body, token):
    return tf.request("POST", f"/v1/jobs/{job_id}/{action}", body, headers=auth(token))


def ack(acks, token, **extra):
    return tf.request("POST", "/v1/jobs/ack", dict({"acks": acks}, **extra), headers=auth(token))


def get_job(job_id, token=None):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}", headers=auth(token or KEY_A)), 200)


def events_of(job_id, token=None):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}/events",
                             headers=auth(token or KEY_A)), 200)["events"]


def attempts_of(job_id, token=None):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}/attempts",
                             headers=auth(token or KEY_A)), 200)["attempts"]


def tables_of(job_id):
    """The narrow state tables that hold the job."""
    found = set()
    for table in ("ready", "scheduled", "running", "dead_letters"):
        if db.sql(f"SELECT count(*) FROM {table} WHERE job_id = '{job_id}'") != "0":
            found.add(table)
    return found


def snapshot(job_id):
    """Everything a transition could change about one job (events apart)."""
    row = json.loads(db.sql(f"SELECT row_to_json(j) FROM jobs j WHERE id = '{job_id}'"))
    running = db.sql(f"SELECT row_to_json(r) FROM running r WHERE job_id = '{job_id}'")
    attempts = db.sql(f"SELECT count(*) FROM job_attempts WHERE job_id = '{job_id}'")
    return row, running, attempts, tables_of(job_id)


def event_rows(job_id):
    out = db.sql(f"SELECT from_state || ' ' || to_state || ' ' || reason FROM job_events "
                 f"WHERE job_id = '{job_id}' ORDER BY id")
    return out.split("\n") if out else []


def unchanged_but_refusal(job_id, before_snap, before_events, allow_no_event=False):
    """Nothing changed but one refusal event (or none, when allowed)."""
    assert snapshot(job_id) == before_snap, (snapshot(job_id), before_snap)
    after = event_rows(job_id)
    added = after[len(before_events):]
    assert after[:len(before_events)] == before_events, (after, before_events)
    if allow_no_event and not added:
        return
    assert len(added) == 1 and added[0].endswith("stale_lease_refused"), added


def running_job(queue, token=None, **job):
    """A new job of tenant A (or `token`'s), claimed: (job, claimed)."""
    token = token or KEY_A
    created = submit(token, queue=queue, **job)
    got = claim(queue, token)
    assert [j["id"] for j in got] == [created["id"]], (got, created)
    return created, got[0]


# ---- claim ----

def test_claim_order_tenant_scope_and_builtin():
    q = "order"
    a1 = submit(KEY_A, queue=q, payload={"n": 1})
    a2 = submit(KEY_A, queue=q, payload={"n": 2})
    a3 = submit(KEY_A, queue=q, payload={"n": 3}, priority=10)
    b1 = submit(KEY_B, queue=q)
    http = submit(KEY_A, queue=q, executor={"kind": "http", "url": "https://example.com/x"})
    got = claim(q, KEY_A, max_jobs=10, worker_id="w-order")
    assert [j["id"] for j in got] == [a3["id"], a1["id"], a2["id"]], got
    assert [j["payload"] for j in got] == [{"n": 3}, {"n": 1}, {"n": 2}], got
    first = got[1]
    assert first["type"] == "T" and first["tenant_id"] == TENANT_A, first
    assert first["attempt"] == 1 and first["max_attempts"] == 3, first
    assert first["timeout_ms"] == 300000 and first["correlation_id"] == a1["correlation_id"]
    assert first["created_at"] == a1["created_at"], (first, a1)
    lease_left = ts(first["lease_expires_at"]) - time.time()
    assert 20 < lease_left <= 31, lease_left  # the default lease: 30 s
    for j in got:
        job = get_job(j["id"])
        assert job["state"] == "RUNNING" and job["attempts"] == 1 and job["started_at"], job
        assert tables_of(j["id"]) == {"running"}, tables_of(j["id"])
        assert db.sql(f"SELECT locked_by FROM jobs WHERE id = '{j['id']}'") == "w-order"
    # Nothing more for A: B's job and the built-in job stay where they are.
    assert claim(q, KEY_A) == []
    assert get_job(http["id"])["state"] == "PENDING" and tables_of(http["id"]) == {"ready"}
    got_b = claim(q, KEY_B)
    assert [j["id"] for j in got_b] == [b1["id"]] and got_b[0]["tenant_id"] == TENANT_B, got_b
    ev = events_of(a1["id"])
    assert [(e["from"], e["to"], e["reason"], e["actor"]) for e in ev] == [
        (None, "PENDING", "created", f"key:{KEY_A_ID}"),
        ("PENDING", "RUNNING", "claimed", "worker:w-order")], ev


def test_claim_respects_max_jobs_and_lease_ms():
    q = "maxjobs"
    jobs = submit_many(KEY_A, [{"type": "M", "queue": q, "payload": {"i": i}} for i in range(5)])
    got = claim(q, KEY_A, max_jobs=2, lease_ms=5000)
    assert [j["id"] for j in got] == [j["id"] for j in jobs[:2]], got
    for j in got:
        left = ts(j["lease_expires_at"]) - time.time()
        assert 2 < left <= 6, left
    got = claim(q, KEY_A, max_jobs=1000)
    assert [j["id"] for j in got] == [j["id"] for j in jobs[2:]], got
    assert claim(q, KEY_A) == []


def test_concurrent_claims_never_share_a_job():
    q = "concurrent"
    jobs = submit_many(KEY_A, [{"type": "C", "queue": q} for _ in range(60)])
    seen, lock, errors = [], threading.Lock(), []

    def worker(n):
        try:
            while True:
                got = claim(q, KEY_A, max_jobs=3, worker_id=f"w-{n}")
                if not got:
                    return
                with lock:
                    seen.extend(j["id"] for j in got)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(seen) == len(set(seen)) == 60, (len(seen), len(set(seen)))
    assert set(seen) == {j["id"] for j in jobs}


def test_paused_queue_gives_nothing():
    q = "paused-q"
    expect(tf.request("PUT", f"/v1/admin/queues/{q}", {"paused": True}, headers=auth(ADMIN)), 200)
    job = submit(KEY_A, queue=q)
    assert claim(q, KEY_A) == []
    assert claim(q, ADMIN) == []
    assert get_job(job["id"])["state"] == "PENDING" and tables_of(job["id"]) == {"ready"}
    expect(tf.request("PUT", f"/v1/admin/queues/{q}", {"paused": False}, headers=auth(ADMIN)),
           200)
    assert [j["id"] for j in claim(q, KEY_A)] == [job["id"]]


def test_admin_claims_across_tenants():
    q = "shared"
    a = submit(KEY_A, queue=q)
    b = submit(KEY_B, queue=q)
    got = claim(q, ADMIN, max_jobs=10, worker_id="w-admin")
    assert {j["id"] for j in got} == {a["id"], b["id"]}, got
    assert {j["tenant_id"] for j in got} == {TENANT_A, TENANT_B}, got
    by_id = {j["id"]: j for j in got}
    # The admin finishes them without naming the tenant.
    res = expect(act(a["id"], "complete", {"lease_token": by_id[a["id"]]["lease_token"],
                                           "result": 1}, ADMIN), 200)
    assert res == {"id": a["id"], "state": "SUCCEEDED"}, res
    res = expect(act(b["id"], "heartbeat", {"lease_token": by_id[b["id"]]["lease_token"]},
                     ADMIN), 200)
    assert res["id"] == b["id"], res
    res = expect(ack([{"id": b["id"], "lease_token": by_id[b["id"]]["lease_token"],
                       "result": None}], ADMIN), 200)
    assert res == {"results": [{"id": b["id"], "ok": True, "state": "SUCCEEDED"}]}, res
    # With TaskFlow-Tenant it claims for that tenant only.
    a2 = submit(KEY_A, queue=q)
    b2 = submit(KEY_B, queue=q)
    got = claim(q, ADMIN, tenant=TENANT_B)
    assert [j["id"] for j in got] == [b2["id"]], got
    got = claim(q, ADMIN, tenant=TENANT_A)
    assert [j["id"] for j in got] == [a2["id"]], got
    expect(claim_raw(q, ADMIN, tenant=NIL), 404, "not_found")


# ---- long polls ----

def test_long_poll_wakes_when_work_arrives():
    q = "longpoll"
    out = {}

    def waiter():
        start = time.monotonic()
        out["answer"] = claim_raw(q, KEY_A, wait_ms=5000, worker_id="w-poll")
        out["done"] = time.monotonic()
        out["start"] = start

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    assert "answer" not in out, out  # still waiting
    submitted = time.monotonic()
    job = submit(KEY_A, queue=q, payload={"hello": "poll"})
    t.join(10)
    got = expect(out["answer"], 200)["jobs"]
    assert [j["id"] for j in got] == [job["id"]], got
    latency = out["done"] - submitted
    print(f"    long poll answered {latency * 1000:.0f} ms after the submission")
    assert latency < 2.0, latency


def test_gone_long_poll_claims_nothing():
    """A worker that disconnects while its claim is parked leases nothing:
    a job submitted afterwards stays claimable for the next worker."""
    import socket
    q = "gone-poll"
    body = json.dumps({"worker_id": "w-gone", "wait_ms": 20000}).encode()
    s = socket.create_connection(("127.0.0.1", tf.port), timeout=5)
    s.sendall(b"POST /v1/queues/" + q.encode() + b"/claim HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer " + KEY_A.encode() + b"\r\n"
              b"Content-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.3)
    s.close()
    time.sleep(0.3)
    job = submit(KEY_A, queue=q)
    time.sleep(1.5)  # a wake-up and a 1 s retry of the parked claim
    assert get_job(job["id"], KEY_A)["state"] == "PENDING", get_job(job["id"], KEY_A)
    got = claim(q, KEY_A, worker_id="w-next")
    assert [j["id"] for j in got] == [job["id"]], got


def test_long_poll_answers_empty_at_the_deadline():
    start = time.monotonic()
    got = claim("longpoll-empty", KEY_A, wait_ms=1200)
    took = time.monotonic() - start
    assert got == [] and 1.1 <= took < 3.5, (got, took)
    # Another tenant's new job does not end my wait with it.
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("a", claim_raw(
        "longpoll-other", KEY_A, wait_ms=1500)))
    t.start()
    time.sleep(0.3)
    other = submit(KEY_B, queue="longpoll-other")
    t.join(10)
    assert expect(out["a"], 200) == {"jobs": []}
    assert get_job(other["id"], KEY_B)["state"] == "PENDING"


def test_many_waiters_each_get_one_job():
    q = "longpoll-many"
    answers = []
    lock = threading.Lock()

    def waiter(n):
        a = claim_raw(q, KEY_A, wait_ms=8000, max_jobs=1, worker_id=f"w-{n}")
        with lock:
            answers.append(a)

    threads = [threading.Thread(target=waiter, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    start = time.monotonic()
    jobs = submit_many(KEY_A, [{"type": "Many", "queue": q} for _ in range(5)])
    for t in threads:
        t.join(15)
    took = time.monotonic() - start
    ids = [j["id"] for a in answers for j in expect(a, 200)["jobs"]]
    assert sorted(ids) == sorted(j["id"] for j in jobs), (ids, jobs)
    assert took < 3, took


# ---- complete, fail, heartbeat ----

def test_complete_records_result_attempt_and_events():
    job, c = running_job("complete")
    res = expect(act(job["id"], "complete", {"lease_token": c["lease_token"],
                                             "result": {"sent": True, "n": [1, 2]},
                                             "worker_id": "w-1"}, KEY_A), 200)
    assert res == {"id": job["id"], "state": "SUCCEEDED"}, res
    got = get_job(job["id"])
    assert got["state"] == "SUCCEEDED" and got["result"] == {"sent": True, "n": [1, 2]}, got
    assert got["finished_at"] and got["attempts"] == 1 and got["last_error"] is None, got
    assert tables_of(job["id"]) == set()
    attempts = attempts_of(job["id"])
    assert len(attempts) == 1, attempts
    a = attempts[0]
    assert (a["attempt"], a["worker"], a["outcome"]) == (1, "w-1", "succeeded"), a
    assert ts(a["started_at"]) <= ts(a["finished_at"]) and a["duration_ms"] >= 0, a
    ev = events_of(job["id"])
    assert [(e["from"], e["to"], e["reason"]) for e in ev] == [
        (None, "PENDING", "created"), ("PENDING", "RUNNING", "claimed"),
        ("RUNNING", "SUCCEEDED", "succeeded")], ev
    assert ev[-1]["actor"] == "worker:w-1", ev
    # Completing again with the same token: the attempt is over.
    before, before_ev = snapshot(job["id"]), event_rows(job["id"])
    expect(act(job["id"], "complete", {"lease_token": c["lease_token"]}, KEY_A), 409, "conflict")
    unchanged_but_refusal(job["id"], before, before_ev)


def test_complete_without_result_stores_null():
    job, c = running_job("complete-null")
    expect(act(job["id"], "complete", {"lease_token": c["lease_token"]}, KEY_A), 200)
    got = get_job(job["id"])
    assert got["state"] == "SUCCEEDED" and got["result"] is None, got


def test_fail_retryable_is_scheduled_by_the_policy():
    job, c = running_job("fail-retry", retry_policy={"max_attempts": 3, "strategy": "fixed",
                                                     "base_delay_ms": 60000, "jitter": "none"})
    res = expect(act(job["id"], "fail", {"lease_token": c["lease_token"], "worker_id": "w-1",
                                         "error": {"type": "SmtpTimeout", "message": "slow",
                                                   "retryable": True}}, KEY_A), 200)
    now = time.time()
    assert res == {"id": job["id"], "state": "SCHEDULED"}, res
    got = get_job(job["id"])
    assert got["state"] == "SCHEDULED" and got["finished_at"] is None, got
    assert got["last_error"] == {"type": "SmtpTimeout", "message": "slow"}, got
    assert 55 < ts(got["run_at"]) - now < 61, (got["run_at"], now)
    assert tables_of(job["id"]) == {"scheduled"}
    a = attempts_of(job["id"])
    assert len(a) == 1 and a[0]["outcome"] == "failed", a
    assert a[0]["error"] == {"type": "SmtpTimeout", "message": "slow"}, a
    assert events_of(job["id"])[-1]["to"] == "SCHEDULED"
    # Due now: it comes back as attempt 2 of 3.
    db.sql(f"UPDATE scheduled SET run_at = now() WHERE job_id = '{job['id']}'")
    db.sql(f"""WITH s AS (DELETE FROM scheduled WHERE job_id = '{job['id']}'
                          RETURNING tenant_id, job_id)
               UPDATE jobs j SET state = 0 FROM s WHERE j.id = s.job_id""")
    db.sql(f"SELECT tf_make_ready('{TENANT_A}', '{job['id']}', now())")
    again = claim("fail-retry", KEY_A)
    assert [j["id"] for j in again] == [job["id"]] and again[0]["attempt"] == 2, again
    assert again[0]["lease_token"] != c["lease_token"]
    # The first attempt's token is stale now.
    before, before_ev = snapshot(job["id"]), event_rows(job["id"])
    expect(act(job["id"], "complete", {"lease_token": c["lease_token"]}, KEY_A), 409)
    unchanged_but_refusal(job["id"], before, before_ev)


def test_fail_default_retryable_and_non_retryable_list():
    job, c = running_job("fail-list", retry_policy={"non_retryable_errors": ["BadInput"]})
    res = expect(act(job["id"], "fail", {"lease_token": c["lease_token"],
                                         "error": {"type": "BadInput", "message": "no"}},
                     KEY_A), 200)
    assert res["state"] == "FAILED", res
    job, c = running_job("fail-default")
    res = expect(act(job["id"], "fail", {"lease_token": c["lease_token"],
                                         "error": {"type": "Flaky"}}, KEY_A), 200)
    assert res["state"] == "SCHEDULED", res  # retryable unless said otherwise


def test_fail_non_retryable_ends_failed_after_one_attempt():
    job, c = running_job("fail-fatal", retry_policy={"max_attempts": 5})
    res = expect(act(job["id"], "fail", {"lease_token": c["lease_token"],
                                         "error": {"type": "InvalidInput", "message": "bad",
                                                   "retryable": False}}, KEY_A), 200)
    assert res == {"id": job["id"], "state": "FAILED"}, res
    got = get_job(job["id"])
    assert got["state"] == "FAILED" and got["attempts"] == 1 and got["finished_at"], got
    assert got["last_error"] == {"type": "InvalidInput", "message": "bad"}, got
    assert tables_of(job["id"]) == set()
    assert [a["outcome"] for a in attempts_of(job["id"])] == ["failed"]
    assert events_of(job["id"])[-1]["reason"] == "non_retryable_error"


def test_exhausted_is_dead_then_requeued():
    q = "fail-dead"
    job, c = running_job(q, retry_policy={"max_attempts": 1})
    res = expect(act(job["id"], "fail", {"lease_token": c["lease_token"],
                                         "error": {"type": "Boom", "message": "it broke"}},
                     KEY_A), 200)
    assert res == {"id": job["id"], "state": "DEAD"}, res
    assert tables_of(job["id"]) == {"dead_letters"}
    dead = expect(tf.request("GET", f"/v1/dead-letter?queue={q}", headers=auth(KEY_A)), 200)
    assert [j["id"] for j in dead["jobs"]] == [job["id"]], dead
    assert events_of(job["id"])[-1]["reason"] == "attempts_exhausted"
    req = expect(tf.request("POST", "/v1/dead-letter/requeue", {"ids": [job["id"]]},
                            headers=auth(KEY_A)), 200)
    assert req["requeued"] == 1, req
    again = claim(q, KEY_A)
    assert [j["id"] for j in again] == [job["id"]] and again[0]["attempt"] == 1, again
    expect(act(job["id"], "complete", {"lease_token": again[0]["lease_token"]}, KEY_A), 200)
    assert get_job(job["id"])["state"] == "SUCCEEDED"


def test_heartbeat_extends_the_lease():
    job, c = running_job("heartbeat", )
    db.sql(f"UPDATE jobs SET lease_expires_at = now() + interval '2 seconds' "
           f"WHERE id = '{job['id']}'")
    db.sql(f"UPDATE running SET lease_expires_at = now() + interval '2 seconds' "
           f"WHERE job_id = '{job['id']}'")
    res = expect(act(job["id"], "heartbeat", {"lease_token": c["lease_token"],
                                              "lease_ms": 120000}, KEY_A), 200)
    assert set(res) == {"id", "lease_expires_at"} and res["id"] == job["id"], res
    left = ts(res["lease_expires_at"]) - time.time()
    assert 110 < left <= 121, left
    in_db = db.sql(f"SELECT extract(epoch FROM lease_expires_at) FROM running "
                   f"WHERE job_id = '{job['id']}'")
    assert abs(float(in_db) - ts(res["lease_expires_at"])) < 0.01, (in_db, res)
    in_jobs = db.sql(f"SELECT extract(epoch FROM lease_expires_at) FROM jobs "
                     f"WHERE id = '{job['id']}'")
    assert abs(float(in_jobs) - ts(res["lease_expires_at"])) < 0.01, (in_jobs, res)
    res = expect(act(job["id"], "heartbeat", {"lease_token": c["lease_token"]}, KEY_A), 200)
    left = ts(res["lease_expires_at"]) - time.time()
    assert 20 < left <= 31, left  # the default: 30 s
    assert get_job(job["id"])["state"] == "RUNNING"


def test_stale_tokens_are_409_and_change_nothing():
    job, c = running_job("stale")
    stale = str(uuid.uuid4())
    for action, body in (("complete", {"lease_token": stale, "result": 1}),
                         ("fail", {"lease_token": stale, "error": {"type": "X"}}),
                         ("heartbeat", {"lease_token": stale, "lease_ms": 60000})):
        before, before_ev = snapshot(job["id"]), event_rows(job["id"])
        body_ = expect(act(job["id"], action, body, KEY_A), 409, "conflict")
        assert "lease" in body_["error"]["message"], body_
        unchanged_but_refusal(job["id"], before, before_ev, allow_no_event=action == "heartbeat")
    assert get_job(job["id"])["state"] == "RUNNING"
    # The right token still works afterwards.
    expect(act(job["id"], "complete", {"lease_token": c["lease_token"]}, KEY_A), 200)
    # A job that is not running at all: its token is stale too.
    pending = submit(KEY_A, queue="stale-pending")
    before, before_ev = snapshot(pending["id"]), event_rows(pending["id"])
    expect(act(pending["id"], "complete", {"lease_token": stale}, KEY_A), 409, "conflict")
    unchanged_but_refusal(pending["id"], before, before_ev)


def test_cancelled_job_refuses_its_worker():
    job, c = running_job("cancel-running")
    expect(tf.request("POST", f"/v1/jobs/{job['id']}/cancel", headers=auth(KEY_A)), 200)
    before, before_ev = snapshot(job["id"]), event_rows(job["id"])
    expect(act(job["id"], "complete", {"lease_token": c["lease_token"]}, KEY_A), 409)
    expect(act(job["id"], "heartbeat", {"lease_token": c["lease_token"]}, KEY_A), 409)
    assert snapshot(job["id"]) == before
    assert get_job(job["id"])["state"] == "CANCELLED"


def test_other_tenant_gets_404_and_changes_nothing():
    job, c = running_job("isolation")
    for action, body in (("complete", {"lease_token": c["lease_token"]}),
                         ("fail", {"lease_token": c["lease_token"], "error": {"type": "X"}}),
                         ("heartbeat", {"lease_token": c["lease_token"]})):
        before, before_ev = snapshot(job["id"]), event_rows(job["id"])
        expect(act(job["id"], action, body, KEY_B), 404, "not_found")
        expect(tf.request("POST", f"/v1/jobs/{job['id']}/{action}", body,
                          headers=auth(ADMIN, TENANT_B)), 404, "not_found")
        assert snapshot(job["id"]) == before and event_rows(job["id"]) == before_ev, action
    res = expect(ack([{"id": job["id"], "lease_token": c["lease_token"], "result": 1}], KEY_B),
                 200)
    assert res["results"][0]["ok"] is False, res
    assert res["results"][0]["error"]["code"] == "not_found", res
    assert get_job(job["id"])["state"] == "RUNNING"
    # Unknown jobs are 404 as well.
    expect(act(str(uuid.uuid4()), "complete", {"lease_token": c["lease_token"]}, KEY_A), 404)
    expect(act(str(uuid.uuid4()), "heartbeat", {"lease_token": c["lease_token"]}, KEY_A), 404)
    # The owner finishes it.
    expect(act(job["id"], "complete", {"lease_token": c["lease_token"]}, KEY_A), 200)


# ---- the batch ack ----

def test_ack_judges_each_ack():
    q = "ack"
    jobs = submit_many(KEY_A, [{"type": "Ack", "queue": q, "payload": {"i": i}}
                               for i in range(4)])
    got = claim(q, KEY_A, max_jobs=10, worker_id="w-batch")
    tok = {j["id"]: j["lease_token"] for j in got}
    j0, j1, j2, j3 = (j["id"] for j in jobs)
    unknown = str(uuid.uuid4())
    before2, ev2 = snapshot(j2), event_rows(j2)
    res = expect(ack([
        {"id": j0, "lease_token": tok[j0], "result": {"i": 0}},
        {"id": j1, "lease_token": tok[j1], "error": {"type": "Fatal", "message": "no",
                                                     "retryable": False}},
        {"id": j2, "lease_token": str(uuid.uuid4()), "result": 2},
        {"id": unknown, "lease_token": tok[j3], "result": 3},
        {"id": j3, "lease_token": tok[j3], "error": {"type": "Again"}},
    ], KEY_A, worker_id="w-batch"), 200)
    r = res["results"]
    assert [x["id"] for x in r] == [j0, j1, j2, unknown, j3], r
    assert r[0] == {"id": j0, "ok": True, "state": "SUCCEEDED"}, r
    assert r[1] == {"id": j1, "ok": True, "state": "FAILED"}, r
    assert r[2]["ok"] is False and r[2]["error"]["code"] == "conflict", r
    assert r[2]["error"]["message"], r
    assert r[3]["ok"] is False and r[3]["error"]["code"] == "not_found", r
    assert r[4] == {"id": j3, "ok": True, "state": "SCHEDULED"}, r
    assert get_job(j0)["result"] == {"i": 0}
    assert get_job(j1)["last_error"] == {"type": "Fatal", "message": "no"}
    unchanged_but_refusal(j2, before2, ev2)
    assert [a["worker"] for a in attempts_of(j0)] == ["w-batch"]
    # j2 is still leased with its real token.
    res = expect(ack([{"id": j2, "lease_token": tok[j2], "result": None}], KEY_A), 200)
    assert res["results"] == [{"id": j2, "ok": True, "state": "SUCCEEDED"}], res


def test_ack_of_a_thousand():
    q = "ack-many"
    submit_many(KEY_A, [{"type": "K", "queue": q} for _ in range(1000)])
    got = claim(q, KEY_A, max_jobs=1000)
    assert len(got) == 1000, len(got)
    res = expect(ack([{"id": j["id"], "lease_token": j["lease_token"], "result": i}
                      for i, j in enumerate(got)], KEY_A), 200)
    assert all(x["ok"] and x["state"] == "SUCCEEDED" for x in res["results"]), res
    assert db.sql(f"SELECT count(*) FROM jobs WHERE queue = '{q}' AND state = 3") == "1000"


# ---- bad input ----

def test_bad_claims_change_nothing():
    q = "bad-claims"
    job = submit(KEY_A, queue=q)
    before = snapshot(job["id"])
    for body, field in (({}, "worker_id"), ({"worker_id": ""}, "worker_id"),
                        ({"worker_id": "x" * 129}, "worker_id"), ({"worker_id": 7}, "worker_id"),
                        ({"worker_id": "a\nb"}, "worker_id"),
                        ({"worker_id": "w", "max_jobs": 0}, "max_jobs"),
                        ({"worker_id": "w", "max_jobs": 1001}, "max_jobs"),
                        ({"worker_id": "w", "max_jobs": "5"}, "max_jobs"),
                        ({"worker_id": "w", "max_jobs": 1.5}, "max_jobs"),
                        ({"worker_id": "w", "lease_ms": 999}, "lease_ms"),
                        ({"worker_id": "w", "lease_ms": 3600001}, "lease_ms"),
                        ({"worker_id": "w", "wait_ms": -1}, "wait_ms"),
                        ({"worker_id": "w", "wait_ms": 30001}, "wait_ms"),
                        ({"worker_id": "w", "wait_ms": None}, "wait_ms"),
                        ({"worker_id": "w", "colour": "red"}, "colour"),
                        ([], "body")):
        err = expect(claim_raw(q, KEY_A, body=body), 422, "validation_failed", field)
        assert field in err["error"]["message"], err
    expect(claim_raw("bad%20queue", KEY_A), 422, "validation_failed", "queue")
    expect(claim_raw("x" * 129, KEY_A), 422, "validation_failed", "queue")
    expect(tf.request("POST", f"/v1/queues/{q}/claim", b'{"worker_id": ',
                      headers=auth(KEY_A, **{"Content-Type": "application/json"})), 400,
           "invalid_json")
    expect(tf.request("POST", f"/v1/queues/{q}/claim", b'{"worker_id": "w"}',
                      headers=auth(KEY_A, **{"Content-Type": "text/plain"})), 415)
    expect(tf.request("POST", f"/v1/queues/{q}/claim", {"worker_id": "w"}), 401)
    expect(tf.request("POST", f"/v1/queues/{q}/claim", {"worker_id": "w"},
                      headers=auth("tf_not-a-key")), 401)
    assert snapshot(job["id"]) == before
    # 10.0 is an integer like 10.
    assert len(claim(q, KEY_A, max_jobs=10.0)) == 1


def test_bad_finishes_change_nothing():
    job, c = running_job("bad-finish")
    tok = c["lease_token"]
    cases = [
        ("complete", {}, "lease_token"), ("complete", {"lease_token": "nope"}, "lease_token"),
        ("complete", {"lease_token": tok, "colour": 1}, "colour"),
        ("complete", {"lease_token": tok, "error": {"type": "X"}}, "error"),
        ("complete", {"lease_token": tok, "worker_id": ""}, "worker_id"),
        ("fail", {"lease_token": tok}, "error"),
        ("fail", {"lease_token": tok, "error": "boom"}, "error"),
        ("fail", {"lease_token": tok, "error": {}}, "error.type"),
        ("fail", {"lease_token": tok, "error": {"type": ""}}, "error.type"),
        ("fail", {"lease_token": tok, "error": {"type": "x" * 129}}, "error.type"),
        ("fail", {"lease_token": tok, "error": {"type": "X", "message": 5}}, "error.message"),
        ("fail", {"lease_token": tok, "error": {"type": "X", "retryable": "yes"}},
         "error.retryable"),
        ("fail", {"lease_token": tok, "error": {"type": "X", "code": 1}}, "error.code"),
        ("fail", {"lease_token": tok, "result": 1, "error": {"type": "X"}}, "result"),
        ("heartbeat", {}, "lease_token"),
        ("heartbeat", {"lease_token": tok, "lease_ms": 999}, "lease_ms"),
        ("heartbeat", {"lease_token": tok, "lease_ms": 3600001}, "lease_ms"),
        ("heartbeat", {"lease_token": tok, "result": 1}, "result"),
        ("complete", [], "body"),
    ]
    before, before_ev = snapshot(job["id"]), event_rows(job["id"])
    for action, body, field in cases:
        expect(act(job["id"], action, body, KEY_A), 422, "validation_failed", field)
    for action in ("complete", "fail", "heartbeat"):
        expect(act("not-a-uuid", action, {"lease_token": tok}, KEY_A), 404, "not_found")
        expect(tf.request("POST", f"/v1/jobs/{job['id']}/{action}", b'{"lease_token": ',
                          headers=auth(KEY_A, **{"Content-Type": "application/json"})), 400)
        expect(tf.request("POST", f"/v1/jobs/{job['id']}/{action}", b'{}',
                          headers=auth(KEY_A, **{"Content-Type": "text/plain"})), 415)
        expect(tf.request("POST", f"/v1/jobs/{job['id']}/{action}", {"lease_token": tok}), 401)
    assert snapshot(job["id"]) == before and event_rows(job["id"]) == before_ev
    expect(act(job["id"], "complete", {"lease_token": tok}, KEY_A), 200)


def test_bad_acks_change_nothing():
    job, c = running_job("bad-ack")
    good = {"id": job["id"], "lease_token": c["lease_token"], "result": 1}
    other = str(uuid.uuid4())
    cases = [
        ({}, "acks"), ({"acks": []}, "acks"), ({"acks": good}, "acks"),
        ({"acks": [good] * 1001}, "acks"), ({"acks": [good], "colour": 1}, "colour"),
        ({"acks": [good], "worker_id": ""}, "worker_id"),
        ({"acks": [good, 5]}, "acks[1]"),
        ({"acks": [good, {"id": other, "lease_token": c["lease_token"]}]}, "acks[1].result"),
        ({"acks": [good, {"id": other, "lease_token": c["lease_token"], "result": 1,
                          "error": {"type": "X"}}]}, "acks[1].error"),
        ({"acks": [good, {"id": "x", "lease_token": c["lease_token"], "result": 1}]},
         "acks[1].id"),
        ({"acks": [good, {"id": other, "result": 1}]}, "acks[1].lease_token"),
        ({"acks": [good, {"id": other, "lease_token": c["lease_token"],
                          "error": {"type": "X", "retryable": 1}}]}, "acks[1].error.retryable"),
        ({"acks": [good, dict(good, colour=1)]}, "acks[1].colour"),
        ({"acks": [good, good]}, "acks[1].id"),
    ]
    before, before_ev = snapshot(job["id"]), event_rows(job["id"])
    for body, field in cases:
        expect(tf.request("POST", "/v1/jobs/ack", body, headers=auth(KEY_A)), 422,
               "validation_failed", field)
    expect(tf.request("POST", "/v1/jobs/ack", b'{"acks": [',
                      headers=auth(KEY_A, **{"Content-Type": "application/json"})), 400)
    expect(tf.request("POST", "/v1/jobs/ack", {"acks": [good]}), 401)
    assert snapshot(job["id"]) == before and event_rows(job["id"]) == before_ev
    res = expect(ack([good], KEY_A), 200)
    assert res["results"][0]["ok"] is True, res


# ---- metrics ----

def test_claim_metrics():
    q = "metrics-q"
    submit_many(KEY_A, [{"type": "Met", "queue": q} for _ in range(3)])
    assert len(claim(q, KEY_A)) == 3
    status, _, text = tf.request("GET", "/metrics")
    assert status == 200
    lines = text.splitlines()
    assert f'taskflow_jobs_claimed_total{{queue="{q}"}} 3' in lines, \
        [x for x in lines if "claimed" in x]
    assert f'taskflow_submit_to_start_seconds_count{{queue="{q}"}} 3' in lines, \
        [x for x in lines if "submit_to_start" in x]
    assert "# TYPE taskflow_submit_to_start_seconds histogram" in lines


def test_server_stops_cleanly_with_a_waiting_claim():
    """Last: a claim still long-polling when SIGTERM comes is answered (an
    empty list) or cut off when the grace period ends; the server exits 0
    with no sanitizer report."""
    out = {}

    def waiter():
        try:
            out["answer"] = claim_raw("stop-q", KEY_A, wait_ms=25000)
        except OSError as e:
            out["answer"] = e

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.5)
    start = time.monotonic()
    code = tf.stop()
    t.join(10)
    took = time.monotonic() - start
    time.sleep(0.2)  # let the stderr reader finish
    report = "".join(tf._stderr)
    assert "Sanitizer" not in report and "runtime error" not in report, report[-3000:]
    assert code == 0, (code, report[-3000:])
    assert took < 2 + 5, took  # TASKFLOW_SHUTDOWN_GRACE_MS below, and then some
    answer = out["answer"]
    assert isinstance(answer, OSError) or expect(answer, 200) == {"jobs": []}, answer


db = Database("worker_api")
tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api",
                           "TASKFLOW_SHUTDOWN_GRACE_MS": "2000"})
try:
    TENANT_A, KEY_A, KEY_A_ID = new_tenant("worker-a")
    TENANT_B, KEY_B, _ = new_tenant("worker-b")
    run_tests([test_claim_order_tenant_scope_and_builtin,
               test_claim_respects_max_jobs_and_lease_ms, test_concurrent_claims_never_share_a_job,
               test_paused_queue_gives_nothing, test_admin_claims_across_tenants,
               test_long_poll_wakes_when_work_arrives, test_gone_long_poll_claims_nothing,
               test_long_poll_answers_empty_at_the_deadline,
               test_many_waiters_each_get_one_job,
               test_complete_records_result_attempt_and_events,
               test_complete_without_result_stores_null,
               test_fail_retryable_is_scheduled_by_the_policy,
               test_fail_default_retryable_and_non_retryable_list,
               test_fail_non_retryable_ends_failed_after_one_attempt,
               test_exhausted_is_dead_then_requeued, test_heartbeat_extends_the_lease,
               test_stale_tokens_are_409_and_change_nothing, test_cancelled_job_refuses_its_worker,
               test_other_tenant_gets_404_and_changes_nothing, test_ack_judges_each_ack,
               test_ack_of_a_thousand, test_bad_claims_change_nothing,
               test_bad_finishes_change_nothing, test_bad_acks_change_nothing,
               test_claim_metrics, test_server_stops_cleanly_with_a_waiting_claim])
finally:
    tf.stop()
    db.drop()
