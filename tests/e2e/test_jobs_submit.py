"""POST /v1/jobs and POST /v1/jobs/batch against the real server: what a job
looks like when created, idempotency (50 concurrent duplicates make one
job), batch atomicity, correlation ids, dependencies, every bad input with a
clear 4xx and nothing written, and tenant isolation."""
import json
import threading
import time
import uuid

from tfharness import Database, TaskFlow, fail, is_uuid, run_tests, wait_for

ADMIN = "tf-admin-" + uuid.uuid4().hex
db = Database("submit")
tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN})


def admin(method, path, body=None):
    return tf.request(method, path, body=body, headers={"Authorization": f"Bearer {ADMIN}"})


def new_tenant(name):
    status, _, tenant = admin("POST", "/v1/admin/tenants", {"name": name})
    assert status == 201, tenant
    status, _, key = admin("POST", f"/v1/admin/tenants/{tenant['id']}/keys", {})
    assert status == 201, key
    return tenant["id"], key["token"]


TENANT, KEY = new_tenant("acme")
OTHER, OTHER_KEY = new_tenant("globex")


def post(path, body, key=KEY, headers=None):
    hdrs = {"Authorization": f"Bearer {key}"}
    hdrs.update(headers or {})
    return tf.request("POST", path, body=body, headers=hdrs)


def counts():
    """Rows in every table a submission writes."""
    return db.sql("SELECT (SELECT count(*) FROM jobs) || ',' || (SELECT count(*) FROM ready)"
                  " || ',' || (SELECT count(*) FROM scheduled)"
                  " || ',' || (SELECT count(*) FROM job_events)")


def expect_error(answer, status, code, field=None):
    got, _, body = answer
    if got != status:
        fail(f"status {got}, want {status}: {body}")
    assert body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["details"].get("field") == field, (field, body)


def test_created_job_has_every_field():
    status, headers, job = post("/v1/jobs", {"type": "email", "payload": {"to": "a@b.c"},
                                             "priority": 5, "metadata": {"k": "v"}},
                                headers={"X-Request-Id": "req-123"})
    assert status == 201, job
    assert is_uuid(job["id"]) and job["tenant_id"] == TENANT
    assert job["state"] == "PENDING" and job["queue"] == "default" and job["priority"] == 5
    assert job["payload"] == {"to": "a@b.c"} and job["metadata"] == {"k": "v"}
    assert job["attempts"] == 0 and job["max_attempts"] == 3
    assert job["correlation_id"] == "req-123", job
    assert job["retry_policy"]["strategy"] == "exponential", job
    assert job["last_error"] is None and job["result"] is None and job["depends_on"] == []
    assert headers["x-request-id"] == "req-123"
    row = db.sql(f"SELECT state, correlation_id FROM jobs WHERE id = '{job['id']}'")
    assert row == "0|req-123", row
    assert db.sql(f"SELECT count(*) FROM ready WHERE job_id = '{job['id']}'") == "1"
    events = db.sql(f"SELECT from_state IS NULL, to_state, reason, actor FROM job_events"
                    f" WHERE job_id = '{job['id']}'")
    assert events.startswith("t|0|created|key:"), events
    status, _, read = tf.request("GET", f"/v1/jobs/{job['id']}",
                                 headers={"Authorization": f"Bearer {KEY}"})
    assert status == 200 and read["id"] == job["id"] and read["payload"] == job["payload"], read
    assert read["created_at"] == job["created_at"] and read["run_at"] == job["run_at"], read
    for field in ("retry_policy", "metadata", "executor", "depends_on", "correlation_id"):
        assert read[field] == job[field], (field, read[field], job[field])


def test_delayed_job_is_scheduled():
    status, _, job = post("/v1/jobs", {"type": "later", "delay_ms": 60000})
    assert status == 201 and job["state"] == "SCHEDULED", job
    assert job["run_at"] > job["created_at"]
    assert db.sql(f"SELECT count(*) FROM scheduled WHERE job_id = '{job['id']}'") == "1"
    status, _, job = post("/v1/jobs", {"type": "at", "run_at": "2099-01-01T00:00:00.000Z"})
    assert status == 201 and job["state"] == "SCHEDULED" and job["run_at"].startswith("2099")


def test_idempotency_same_body_and_other_body():
    body = {"type": "charge", "idempotency_key": "order-1", "payload": {"amount": 10}}
    s1, _, first = post("/v1/jobs", body)
    s2, _, again = post("/v1/jobs", dict(reversed(list(body.items()))))
    assert s1 == 201 and s2 == 200, (s1, s2)
    assert again["id"] == first["id"], (first, again)
    expect_error(post("/v1/jobs", {**body, "payload": {"amount": 11}}), 409, "conflict",
                 "idempotency_key")
    # Keys are per tenant.
    s3, _, theirs = post("/v1/jobs", body, key=OTHER_KEY)
    assert s3 == 201 and theirs["id"] != first["id"]


def test_fifty_concurrent_duplicates_make_one_job():
    body = {"type": "charge", "idempotency_key": "burst-" + uuid.uuid4().hex}
    results = []
    lock = threading.Lock()
    start = threading.Event()

    def submit():
        start.wait()
        answer = post("/v1/jobs", body)
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=submit) for _ in range(50)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(30)
    statuses = sorted(r[0] for r in results)
    assert len(results) == 50, len(results)
    assert statuses.count(201) == 1 and statuses.count(200) == 49, statuses
    assert len({r[2]["id"] for r in results}) == 1
    n = db.sql(f"SELECT count(*) FROM jobs WHERE idempotency_key = '{body['idempotency_key']}'")
    assert n == "1", n


def test_batch_creates_all_in_order():
    jobs = [{"type": "bulk", "payload": {"i": i}} for i in range(1000)]
    before = int(db.sql("SELECT count(*) FROM jobs"))
    status, _, body = post("/v1/jobs/batch", {"jobs": jobs},
                           headers={"X-Request-Id": "batch-req"})
    assert status == 201, body
    assert [j["payload"]["i"] for j in body["jobs"]] == list(range(1000))
    assert all(j["correlation_id"] == "batch-req" for j in body["jobs"])
    assert int(db.sql("SELECT count(*) FROM jobs")) == before + 1000


def test_batch_is_all_or_nothing():
    before = counts()
    jobs = [{"type": "bulk", "payload": {"i": i}} for i in range(1000)]
    jobs[737]["priority"] = "high"
    expect_error(post("/v1/jobs/batch", {"jobs": jobs}), 422, "validation_failed",
                 "jobs[737].priority")
    jobs[737] = {"type": "bulk", "depends_on": [str(uuid.uuid4())]}
    expect_error(post("/v1/jobs/batch", {"jobs": jobs}), 422, "validation_failed",
                 "jobs[737].depends_on")
    status, _, used = post("/v1/jobs", {"type": "k", "idempotency_key": "batch-key"})
    assert status == 201
    before = counts()
    jobs[737] = {"type": "other", "idempotency_key": "batch-key"}
    expect_error(post("/v1/jobs/batch", {"jobs": jobs}), 409, "conflict",
                 "jobs[737].idempotency_key")
    assert counts() == before, (counts(), before)
    # The same key with the same body inside a batch returns the existing job.
    jobs[737] = {"type": "k", "idempotency_key": "batch-key"}
    status, _, body = post("/v1/jobs/batch", {"jobs": jobs[730:740]})
    assert status == 201 and body["jobs"][7]["id"] == used["id"], body["jobs"][7]


def test_batch_envelope_errors():
    before = counts()
    expect_error(post("/v1/jobs/batch", {"jobs": []}), 422, "validation_failed", "jobs")
    expect_error(post("/v1/jobs/batch", {}), 422, "validation_failed", "jobs")
    expect_error(post("/v1/jobs/batch", {"jobs": {}}), 422, "validation_failed", "jobs")
    expect_error(post("/v1/jobs/batch", {"jobs": [{"type": "x"}] * 1001}), 422,
                 "validation_failed", "jobs")
    expect_error(post("/v1/jobs/batch", {"jobs": [{"type": "x"}], "extra": 1}), 422,
                 "validation_failed", "extra")
    expect_error(post("/v1/jobs/batch", {"jobs": [{"type": "x"}, 5]}), 422,
                 "validation_failed", "jobs[1]")
    expect_error(post("/v1/jobs/batch", {"jobs": [{"type": "x", "idempotency_key": "d"},
                                                  {"type": "y", "idempotency_key": "d"}]}),
                 409, "conflict", "jobs[1].idempotency_key")
    assert counts() == before


def test_dependencies():
    s, _, parent = post("/v1/jobs", {"type": "parent"})
    s, _, child = post("/v1/jobs", {"type": "child", "depends_on": [parent["id"]]})
    assert s == 201 and child["state"] == "PENDING" and child["depends_on"] == [parent["id"]]
    assert db.sql(f"SELECT pending_parents FROM jobs WHERE id = '{child['id']}'") == "1"
    assert db.sql(f"SELECT count(*) FROM ready WHERE job_id = '{child['id']}'") == "0"
    before = counts()
    missing = str(uuid.uuid4())
    expect_error(post("/v1/jobs", {"type": "c", "depends_on": [parent["id"], missing]}), 422,
                 "validation_failed", "depends_on[1]")
    s, _, foreign = post("/v1/jobs", {"type": "theirs"}, key=OTHER_KEY)
    before = counts()
    expect_error(post("/v1/jobs", {"type": "c", "depends_on": [foreign["id"]]}), 422,
                 "validation_failed", "depends_on[0]")
    expect_error(post("/v1/jobs", {"type": "c", "depends_on": [parent["id"], parent["id"]]}),
                 422, "validation_failed", "depends_on[1]")
    assert counts() == before


def test_bad_input_is_refused_and_writes_nothing():
    before = counts()
    cases = [
        (b"{", 400, "invalid_json", None),
        (b'{"type": "x",}', 400, "invalid_json", None),
        (b'{"type": "\xff\xfe"}', 400, "invalid_json", None),
        (b'{"type": "x\\u0000"}', 400, "invalid_json", None),
        (b"[]", 422, "validation_failed", "body"),
        (b"{}", 422, "validation_failed", "type"),
        (b'{"type": 5}', 422, "validation_failed", "type"),
        (b'{"type": "x", "priority": 99999}', 422, "validation_failed", "priority"),
        (b'{"type": "x", "priority": 1.5}', 422, "validation_failed", "priority"),
        (b'{"type": "x", "delay_ms": -1}', 422, "validation_failed", "delay_ms"),
        (b'{"type": "x", "delay_ms": 1e30}', 422, "validation_failed", "delay_ms"),
        (b'{"type": "x", "run_at": "soon"}', 422, "validation_failed", "run_at"),
        (b'{"type": "x", "run_at": "2026-02-30T00:00:00Z"}', 422, "validation_failed", "run_at"),
        (b'{"type": "x", "delay_ms": 1, "run_at": "2026-01-01T00:00:00Z"}', 422,
         "validation_failed", "run_at"),
        (b'{"type": "x", "colour": "red"}', 422, "validation_failed", "colour"),
        (b'{"type": "x", "queue": "a b"}', 422, "validation_failed", "queue"),
        (b'{"type": "x", "timeout_ms": 0}', 422, "validation_failed", "timeout_ms"),
        (b'{"type": "x", "retry_policy": {"max_attempts": 0}}', 422, "validation_failed",
         "retry_policy.max_attempts"),
        (b'{"type": "x", "retry_policy": {"strategy": "random"}}', 422, "validation_failed",
         "retry_policy.strategy"),
        (b'{"type": "x", "executor": {"kind": "ftp"}}', 422, "validation_failed",
         "executor.kind"),
        (b'{"type": "x", "depends_on": ["nope"]}', 422, "validation_failed", "depends_on[0]"),
        (b'{"type": "x", "metadata": "m"}', 422, "validation_failed", "metadata"),
    ]
    for raw, status, code, field in cases:
        answer = tf.request("POST", "/v1/jobs", body=raw,
                            headers={"Authorization": f"Bearer {KEY}",
                                     "Content-Type": "application/json"})
        if answer[0] != status:
            fail(f"{raw!r}: {answer[0]} {answer[2]}")
        expect_error(answer, status, code, field)
    expect_error(tf.request("POST", "/v1/jobs", body=b'{"type":"x"}',
                            headers={"Authorization": f"Bearer {KEY}",
                                     "Content-Type": "text/plain"}),
                 415, "unsupported_media_type")
    big = b'{"type":"x","payload":"' + b"a" * (1024 * 1024) + b'"}'
    status, _, _ = tf.request("POST", "/v1/jobs", body=big,
                              headers={"Authorization": f"Bearer {KEY}",
                                       "Content-Type": "application/json"})
    assert status == 413, status
    assert counts() == before, (counts(), before)


def test_auth_and_isolation():
    before = counts()
    for headers in ({}, {"Authorization": "Bearer tf_wrong"}, {"Authorization": "Basic abc"},
                    {"Authorization": f"Bearer {ADMIN}x"}):
        for path in ("/v1/jobs", "/v1/jobs/batch"):
            status, _, body = tf.request("POST", path, body={"type": "x"}, headers=headers)
            assert status == 401 and body["error"]["code"] == "unauthorized", (path, status)
    # The admin token acts for a tenant only when it names one.
    status, _, body = post("/v1/jobs", {"type": "x"}, key=ADMIN)
    assert status == 422 and body["error"]["details"]["field"] == "TaskFlow-Tenant", body
    status, _, body = post("/v1/jobs", {"type": "x"}, key=ADMIN,
                           headers={"TaskFlow-Tenant": str(uuid.uuid4())})
    assert status == 404, body
    assert counts() == before
    status, _, job = post("/v1/jobs", {"type": "x"}, key=ADMIN,
                          headers={"TaskFlow-Tenant": OTHER})
    assert status == 201 and job["tenant_id"] == OTHER, job
    # A revoked key stops at once.
    _, _, key = admin("POST", f"/v1/admin/tenants/{TENANT}/keys", {})
    assert post("/v1/jobs", {"type": "x"}, key=key["token"])[0] == 201
    assert admin("DELETE", f"/v1/admin/tenants/{TENANT}/keys/{key['id']}")[0] == 204
    assert post("/v1/jobs", {"type": "x"}, key=key["token"])[0] == 401


def test_group_commit_under_concurrency():
    """200 submissions from 20 threads: every one answered 201 with its own
    job, every job durable."""
    ids = []
    lock = threading.Lock()

    def worker(n):
        for i in range(10):
            status, _, job = post("/v1/jobs", {"type": "gc", "payload": {"n": n, "i": i}})
            assert status == 201, job
            with lock:
                ids.append(job["id"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ids) == 200 and len(set(ids)) == 200
    id_list = ",".join(f"'{i}'" for i in ids)
    assert db.sql(f"SELECT count(*) FROM jobs WHERE id IN ({id_list})") == "200"


def test_queue_gauges_follow_the_database():
    import re
    expected = int(db.sql("SELECT count(*) FROM ready WHERE queue = 'default'"))
    pattern = re.compile(r'^taskflow_queue_ready_jobs\{queue="default"\} (\S+)$', re.M)

    def seen():
        m = pattern.search(tf.request("GET", "/metrics")[2])
        return m is not None and float(m.group(1)) == expected

    wait_for(seen, 15, interval=0.5, what="taskflow_queue_ready_jobs for default")
    text = tf.request("GET", "/metrics")[2]
    assert 'taskflow_table_dead_tuples{table="jobs"}' in text, text[-2000:]
    assert "taskflow_queue_oldest_ready_age_seconds" in text


try:
    run_tests([test_created_job_has_every_field, test_delayed_job_is_scheduled,
               test_idempotency_same_body_and_other_body,
               test_fifty_concurrent_duplicates_make_one_job, test_batch_creates_all_in_order,
               test_batch_is_all_or_nothing, test_batch_envelope_errors, test_dependencies,
               test_bad_input_is_refused_and_writes_nothing, test_auth_and_isolation,
               test_group_commit_under_concurrency, test_queue_gauges_follow_the_database])
finally:
    tf.stop()
    db.drop()
