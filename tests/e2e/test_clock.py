"""The test clock (`serve --clock=test`): it is refused without
TASKFLOW_ALLOW_TEST_CLOCK=1, never the default, stands still until the
operator moves it (forward only, bad input refused with nothing changed),
and every time the engine decides with follows it: a job's exponential
backoff of 1, 2 and 4 minutes is walked through by moving the clock, with
the retries' due times, the leases and the times written into the job and
its history all on the test clock's time, in about a second of real time.
"""
import subprocess
import time
import uuid
from datetime import datetime, timezone

import tfharness as harness
from tfharness import BIN, Database, TaskFlow, auth, expect, fail, run_tests

ADMIN = "tf-admin-" + uuid.uuid4().hex
MINUTE = 60_000


def ms(text):
    """An API time as Unix milliseconds."""
    assert text.endswith("Z") and len(text) == 24, text
    return round(datetime.fromisoformat(text[:-1] + "+00:00").timestamp() * 1000)


def iso(milliseconds):
    t = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{milliseconds % 1000:03d}Z"


def now():
    return ms(expect(tf.request("GET", "/v1/admin/clock", headers=auth(ADMIN)), 200)["now"])


def move(body):
    return tf.request("POST", "/v1/admin/clock", body, headers=auth(ADMIN))


def claim(wait_ms=0):
    got = expect(tf.request("POST", "/v1/queues/clocked/claim",
                            {"worker_id": "w-1", "max_jobs": 1, "wait_ms": wait_ms},
                            headers=auth(KEY), timeout=10), 200)
    return got["jobs"]


def get_job(job_id):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}", headers=auth(KEY)), 200)


def test_the_test_clock_needs_the_allow_variable():
    for env in ({}, {"TASKFLOW_ALLOW_TEST_CLOCK": "0"}, {"TASKFLOW_ALLOW_TEST_CLOCK": "yes"}):
        out = subprocess.run([BIN, "serve", "--clock=test"], capture_output=True, text=True,
                             env={"TASKFLOW_DATABASE_URL": db.url, "PATH": "/usr/bin:/bin", **env},
                             timeout=30)
        assert out.returncode == 2, (env, out)
        assert "TASKFLOW_ALLOW_TEST_CLOCK=1" in out.stderr, out.stderr
    out = subprocess.run([BIN, "serve", "--clock=sundial"], capture_output=True, text=True,
                         env={"TASKFLOW_DATABASE_URL": db.url, "PATH": "/usr/bin:/bin",
                              "TASKFLOW_ALLOW_TEST_CLOCK": "1"}, timeout=30)
    assert out.returncode == 2 and "--clock" in out.stderr, out


def test_the_clock_stands_still_and_only_moves_forward():
    first = now()
    time.sleep(0.05)
    assert now() == first, "the test clock moved by itself"
    got = expect(move({"advance_ms": 1500}), 200)
    assert ms(got["now"]) == first + 1500 and now() == first + 1500, got
    target = first + 10 * MINUTE
    assert ms(expect(move({"now": iso(target)}), 200)["now"]) == target
    # Bad moves: refused by name, and the clock keeps its time.
    for body, field in (({"now": iso(target - 1)}, "now"), ({"now": "yesterday"}, "now"),
                        ({"advance_ms": -1}, "advance_ms"), ({"advance_ms": 1.5}, "advance_ms"),
                        ({"advance_ms": 10**17}, "advance_ms"), ({}, "body"),
                        ({"now": iso(target), "advance_ms": 1}, "body"), ({"at": 1}, "body")):
        expect(move(body), 422, "validation_failed", field)
        assert now() == target, body
    status, _, _ = tf.request("POST", "/v1/admin/clock", "not json",
                              headers=auth(ADMIN, **{"Content-Type": "application/json"}))
    assert status == 400 and now() == target
    # Only the operator moves it.
    expect(tf.request("POST", "/v1/admin/clock", {"advance_ms": 1}, headers=auth(KEY)), 401)
    assert now() == target


def test_exponential_backoff_of_minutes_in_a_second():
    started = time.monotonic()
    job = harness.submit(tf, KEY, queue="clocked", retry_policy={
        "max_attempts": 4, "strategy": "exponential", "base_delay_ms": MINUTE,
        "max_delay_ms": 60 * MINUTE, "jitter": "none"})
    t0 = now()
    assert ms(job["created_at"]) == t0 and ms(job["run_at"]) == t0, job
    for attempt, delay in ((1, MINUTE), (2, 2 * MINUTE), (3, 4 * MINUTE)):
        [c] = claim(wait_ms=3000)
        assert c["id"] == job["id"] and c["attempt"] == attempt, c
        # The lease runs from the test clock's now.
        assert ms(c["lease_expires_at"]) == now() + 30_000, c
        failed_at = now()
        got = expect(tf.request("POST", f"/v1/jobs/{job['id']}/fail",
                                {"lease_token": c["lease_token"],
                                 "error": {"type": "Flaky", "message": f"try {attempt}"}},
                                headers=auth(KEY)), 200)
        assert got["state"] == "SCHEDULED", got
        j = get_job(job["id"])
        assert ms(j["run_at"]) == failed_at + delay, (attempt, j, failed_at, delay)
        # Not due one millisecond early: nothing to claim.
        expect(move({"advance_ms": delay - 1}), 200)
        time.sleep(0.15)  # several maintenance polls pass
        assert claim() == [] and get_job(job["id"])["state"] == "SCHEDULED"
        expect(move({"advance_ms": 1}), 200)
    [c] = claim(wait_ms=3000)
    assert c["attempt"] == 4, c
    expect(tf.request("POST", f"/v1/jobs/{job['id']}/fail",
                      {"lease_token": c["lease_token"], "error": {"type": "Flaky"}},
                      headers=auth(KEY)), 200)
    done = get_job(job["id"])
    assert done["state"] == "DEAD" and done["attempts"] == 4, done
    elapsed = time.monotonic() - started
    # The history is written on the test clock's time: seven minutes of it.
    events = expect(tf.request("GET", f"/v1/jobs/{job['id']}/events", headers=auth(KEY)),
                    200)["events"]
    assert [e["to"] for e in events] == ["PENDING", "RUNNING", "SCHEDULED", "PENDING", "RUNNING",
                                         "SCHEDULED", "PENDING", "RUNNING", "SCHEDULED",
                                         "PENDING", "RUNNING", "DEAD"], events
    span = ms(events[-1]["at"]) - ms(events[0]["at"])
    assert span == 7 * MINUTE, (span, events)
    attempts = expect(tf.request("GET", f"/v1/jobs/{job['id']}/attempts", headers=auth(KEY)),
                      200)["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4], attempts
    assert all(a["duration_ms"] == 0 for a in attempts), attempts
    print(f"  7 minutes of backoff walked in {elapsed:.2f} s of real time")


db = Database("clock")
tf = TaskFlow(db.url, "--clock=test", env={
    "TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ALLOW_TEST_CLOCK": "1",
    "TASKFLOW_ROLE": "api,worker", "TASKFLOW_POLL_INTERVAL_MS": "20"})
try:
    TENANT, KEY, _ = harness.new_tenant(tf, ADMIN, "clocked")
    run_tests([test_the_test_clock_needs_the_allow_variable,
               test_the_clock_stands_still_and_only_moves_forward,
               test_exponential_backoff_of_minutes_in_a_second])
finally:
    tf.stop()
    db.drop()
