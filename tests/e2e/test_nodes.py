"""Several real nodes on one PostgreSQL: a node killed with SIGKILL in the
middle of 200 running jobs (its leases expire, another node rescues them,
every job ends SUCCEEDED exactly once), caps that hold across three nodes
claiming at once, and PostgreSQL restarted under 1,000 running jobs."""
import json
import signal
import threading
import time
import uuid

from tfharness import (Database, JobEndpoint, PrivatePostgres, TaskFlow, fail, run_tests,
                       wait_for)

ADMIN = "tf-admin-" + uuid.uuid4().hex
NODE_ENV = {"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api,worker",
            "TASKFLOW_HTTP_ALLOW_LOOPBACK": "true",
            "TASKFLOW_POLL_INTERVAL_MS": "200", "TASKFLOW_LEASE_MS": "2000",
            "TASKFLOW_WORKER_CONCURRENCY": "40", "TASKFLOW_SHUTDOWN_GRACE_MS": "2000"}


def admin(tf, method, path, body=None):
    status, _, answer = tf.request(method, path, body=body,
                                   headers={"Authorization": f"Bearer {ADMIN}"})
    assert 200 <= status < 300, (method, path, status, answer)
    return answer


def tenant_with_key(tf, name, **fields):
    tenant = admin(tf, "POST", "/v1/admin/tenants", {"name": name, **fields})
    key = admin(tf, "POST", f"/v1/admin/tenants/{tenant['id']}/keys", {})
    return tenant["id"], key["token"]


def submit(tf, key, jobs):
    for start in range(0, len(jobs), 500):
        status, _, body = tf.request("POST", "/v1/jobs/batch", body={"jobs": jobs[start:start + 500]},
                                     headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert status == 201, body


def http_job(endpoint, path, queue="default", **extra):
    return {"type": "call", "queue": queue, "payload": {"path": path},
            "executor": {"kind": "http", "url": endpoint.url + path}, **extra}


def all_settled(db, expected):
    return db.sql("SELECT count(*) FROM jobs WHERE state IN (3, 4, 5, 6)") == str(expected)


def test_kill_9_of_one_node_loses_nothing():
    db = Database("kill9")
    endpoint = JobEndpoint(lambda path, body, n: (200, b'{"done":true}', 0.3))
    a = TaskFlow(db.url, env={**NODE_ENV, "TASKFLOW_WORKER_ID": "node-a"})
    b = TaskFlow(db.url, env={**NODE_ENV, "TASKFLOW_WORKER_ID": "node-b"})
    try:
        _, key = tenant_with_key(a, "acme")
        submit(a, key, [http_job(endpoint, f"/job/{i}") for i in range(200)])
        wait_for(lambda: int(db.sql("SELECT count(*) FROM running WHERE locked_by = 'node-b'"))
                 >= 5, 30, interval=0.02, what="node-b running jobs")
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        wait_for(lambda: all_settled(db, 200), 90, interval=0.2, what="all 200 jobs settled")
        states = db.sql("SELECT string_agg(DISTINCT state::text, ',') FROM jobs")
        assert states == "3", f"final states {states}"
        once = db.sql("SELECT count(*) FROM (SELECT job_id FROM job_attempts WHERE outcome = 0"
                      " GROUP BY job_id HAVING count(*) = 1) x")
        assert once == "200", f"{once} jobs with exactly one successful attempt"
        to_succeeded = db.sql("SELECT count(*) FROM job_events WHERE to_state = 3")
        assert to_succeeded == "200", to_succeeded
        rescued = int(db.sql("SELECT count(*) FROM job_attempts WHERE worker = 'node-b'"
                             " AND outcome = 4 AND error_type = 'lease_expired'"))
        assert rescued >= 1, "no lease_expired attempt recorded for the killed node"
        assert db.sql("SELECT count(*) FROM running") == "0"
        assert db.sql("SELECT count(*) FROM jobs WHERE state = 2") == "0"
        assert a.alive()
    finally:
        a.stop()
        b.stop()
        endpoint.close()
        db.drop()


def test_caps_hold_across_three_nodes():
    db = Database("caps")
    endpoint = JobEndpoint(lambda path, body, n: (200, b"{}", 0.15))
    nodes = [TaskFlow(db.url, env={**NODE_ENV, "TASKFLOW_WORKER_ID": f"node-{i}"})
             for i in range(3)]
    samples = []
    stop = threading.Event()
    try:
        tf = nodes[0]
        admin(tf, "PUT", "/v1/admin/queues/capped", {"max_running": 5})
        t1, k1 = tenant_with_key(tf, "t1", max_running=3)
        admin(tf, "PUT", f"/v1/admin/tenants/{t1}/queues/capped", {"max_running": 2})
        t2, k2 = tenant_with_key(tf, "t2", max_running=3)
        t3, k3 = tenant_with_key(tf, "t3")

        def sample():
            while not stop.is_set():
                row = db.sql(
                    "SELECT json_build_object("
                    f" 'queue', (SELECT count(*) FROM running WHERE queue = 'capped'),"
                    f" 't1', (SELECT count(*) FROM running WHERE tenant_id = '{t1}'),"
                    f" 't1q', (SELECT count(*) FROM running WHERE tenant_id = '{t1}'"
                    "         AND queue = 'capped'),"
                    f" 't2', (SELECT count(*) FROM running WHERE tenant_id = '{t2}'))")
                samples.append(json.loads(row))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        submit(tf, k1, [http_job(endpoint, f"/t1/{i}", "capped") for i in range(20)]
               + [http_job(endpoint, f"/t1o/{i}", "other") for i in range(20)])
        submit(tf, k2, [http_job(endpoint, f"/t2/{i}", "capped") for i in range(20)])
        submit(tf, k3, [http_job(endpoint, f"/t3/{i}", "capped") for i in range(20)])
        wait_for(lambda: all_settled(db, 80), 120, interval=0.2, what="all 80 jobs settled")
        stop.set()
        sampler.join(5)
        assert db.sql("SELECT count(*) FROM jobs WHERE state = 3") == "80"
        assert len(samples) > 20, len(samples)
        worst = {k: max(s[k] for s in samples) for k in samples[0]}
        assert worst["queue"] <= 5 and worst["t1"] <= 3 and worst["t1q"] <= 2 \
            and worst["t2"] <= 3, worst
        assert worst["queue"] >= 2, f"never ran in parallel: {worst}"
        # Offline check over the attempts: the most attempts of a scope that
        # overlapped in time never exceeds its cap.
        for scope, where, cap in (("queue", "j.queue = 'capped'", 5),
                                  ("t1", f"a.tenant_id = '{t1}'", 3),
                                  ("t1q", f"a.tenant_id = '{t1}' AND j.queue = 'capped'", 2),
                                  ("t2", f"a.tenant_id = '{t2}'", 3)):
            overlap = db.sql(
                "WITH a AS (SELECT a.started_at, a.finished_at FROM job_attempts a JOIN jobs j"
                f" ON j.tenant_id = a.tenant_id AND j.id = a.job_id WHERE {where}),"
                " p AS (SELECT started_at AS t, 1 AS d FROM a UNION ALL"
                "       SELECT finished_at, -1 FROM a)"
                " SELECT coalesce(max(s), 0) FROM (SELECT sum(d) OVER (ORDER BY t, d) AS s FROM p) x")
            assert int(overlap) <= cap, (scope, overlap, cap)
    finally:
        stop.set()
        for n in nodes:
            n.stop()
        endpoint.close()
        db.drop()


def test_postgres_restart_under_load():
    pg = PrivatePostgres("restart", 54419)
    endpoint = JobEndpoint(lambda path, body, n: (200, b"{}", 0.01))
    tf = TaskFlow(pg.url, env={**NODE_ENV, "TASKFLOW_LEASE_MS": "3000"})
    try:
        from tfharness import psql
        db_sql = lambda q: psql(pg.url, q)  # noqa: E731
        db_sql("TRUNCATE jobs, ready, scheduled, running, dead_letters, job_events,"
               " job_attempts, domain_events, api_keys, tenants, tenant_queues, queues CASCADE")
        _, key = tenant_with_key(tf, "restart")
        submit(tf, key, [http_job(endpoint, f"/r/{i}") for i in range(1000)])
        wait_for(lambda: int(db_sql("SELECT count(*) FROM jobs WHERE state = 3")) >= 150, 60,
                 interval=0.1, what="150 jobs done before the restart")
        pg.stop()
        wait_for(lambda: tf.request("GET", "/readyz")[0] == 503, 15, what="readyz 503")
        time.sleep(1)
        pg.start()
        wait_for(lambda: tf.request("GET", "/readyz")[0] == 200, 30, what="readyz 200 again")
        wait_for(lambda: db_sql("SELECT count(*) FROM jobs WHERE state IN (3,4,5,6)") == "1000",
                 120, interval=0.5, what="all 1000 jobs settled")
        assert db_sql("SELECT count(*) FROM jobs WHERE state = 3") == "1000"
        assert db_sql("SELECT count(*) FROM jobs WHERE state = 2") == "0"
        assert db_sql("SELECT count(*) FROM running") == "0"
        once = db_sql("SELECT count(*) FROM (SELECT job_id FROM job_attempts WHERE outcome = 0"
                      " GROUP BY job_id HAVING count(*) = 1) x")
        assert once == "1000", once
        assert tf.alive()
    finally:
        tf.stop()
        endpoint.close()
        pg.stop()


run_tests([test_kill_9_of_one_node_loses_nothing, test_caps_hold_across_three_nodes,
           test_postgres_restart_under_load])
