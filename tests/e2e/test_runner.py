"""The built-in runner against the real server: jobs with an `http`
executor are claimed, called and finished by TaskFlow itself.

A local endpoint (a Python http.server on loopback, allowed with
TASKFLOW_HTTP_ALLOW_LOOPBACK) records every request and answers per path
from a script.  Covered: success with the endpoint's JSON as result; the
request's body, headers and signature (verified with the tenant's secret
read from the database); non-JSON and cut bodies; exponential retries with
their delays; dead letter and requeue; a non-retryable 4xx; a timeout that
aborts the call; the SSRF guard refusing a private address; an unavailable
executor kind; cancel while the call runs; more jobs than slots, each
called once; a delayed job started on time; heartbeats keeping a call
longer than the lease; a lost lease aborting the call (and the rescue
failing the attempt); an outcome kept and reported after a database outage
(through a TCP proxy); metrics; graceful shutdown reporting what ends
within the grace and releasing the rest without counting their attempt;
and a clean exit (code 0, nothing from the sanitizers).
"""
import hashlib
import hmac
import json
import select
import signal
import socket
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tfharness as harness
from tfharness import (BASE_URL, Database, TaskFlow, TcpProxy, fail, run_tests, wait_for,
                       with_hostport)

ADMIN = "tf-admin-" + uuid.uuid4().hex
MAX_RESPONSE = 4096
BASE_ENV = {"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api,worker",
            "TASKFLOW_HTTP_ALLOW_LOOPBACK": "true",
            "TASKFLOW_POLL_INTERVAL_MS": "100", "TASKFLOW_LEASE_MS": "3000"}
TERMINAL = ("SUCCEEDED", "FAILED", "DEAD", "CANCELLED")


# ---- the job endpoint ----

class Endpoint:
    """Records every request: path, headers (lower-case names), body, start
    time, and whether the client closed the connection before the answer.
    `script[path]` is a function n -> action, n counting earlier calls to
    that path; actions: ("answer", status, body bytes) or ("hang", seconds)
    (no answer for that long while watching for the client to go away)."""

    def __init__(self):
        self.calls = []
        self.script = {}
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call = {"path": self.path, "method": self.command, "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "start": time.monotonic(), "closed_at": None}
                with endpoint.lock:
                    n = sum(1 for c in endpoint.calls if c["path"] == self.path)
                    endpoint.calls.append(call)
                    action = endpoint.script.get(self.path, lambda n: ("answer", 200, b"{}"))(n)
                if action[0] == "hang":
                    if self.wait_for_close(action[1]):
                        call["closed_at"] = time.monotonic()
                        self.close_connection = True
                        return
                    action = ("answer", 200, b'{"late":true}')
                _, status, answer = action
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass

            def wait_for_close(self, seconds):
                """True when the client closed the connection within `seconds`."""
                deadline = time.monotonic() + seconds
                sock = self.connection
                while time.monotonic() < deadline:
                    r, _, _ = select.select([sock], [], [], 0.05)
                    if r:
                        try:
                            if sock.recv(1, socket.MSG_PEEK) == b"":
                                return True
                        except OSError:
                            return True
                return False

            do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = handle_any

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # TaskFlow opens many connections at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls_to(self, path):
        with self.lock:
            return [c for c in self.calls if c["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- helpers ----

def auth(token):
    return {"Authorization": f"Bearer {token}"}


def expect(answer, status):
    got, _, body = answer
    if got != status:
        fail(f"status {got}, want {status}: {str(body)[:500]}")
    return body


def new_tenant(server, name):
    tenant = expect(server.request("POST", "/v1/admin/tenants",
                                   {"name": f"{name}-{uuid.uuid4().hex[:8]}"},
                                   headers=auth(ADMIN)), 201)
    key = expect(server.request("POST", f"/v1/admin/tenants/{tenant['id']}/keys", {},
                                headers=auth(ADMIN)), 201)
    return tenant["id"], key["token"]


def submit(path, server=None, token=None, **job):
    server = server or tf
    job.setdefault("type", "Call")
    job.setdefault("executor", {"kind": "http", "url": endpoint.url + path})
    return expect(server.request("POST", "/v1/jobs", job, headers=auth(token or KEY)), 201)


def get_job(job_id):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}", headers=auth(KEY)), 200)


def attempts_of(job_id):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}/attempts", headers=auth(KEY)),
                  200)["attempts"]


def wait_state(job_id, states, timeout=15):
    return harness.wait_job(tf, KEY, job_id, states, timeout)


def wait_calls(path, n, timeout=10):
    wait_for(lambda: len(endpoint.calls_to(path)) >= n, timeout, interval=0.02,
             what=f"{n} calls to {path}")
    return endpoint.calls_to(path)


def unique(prefix):
    return f"/{prefix}-{uuid.uuid4().hex[:8]}"


# ---- tests ----

def test_success_carries_payload_headers_and_signature():
    path = unique("ok")
    endpoint.script[path] = lambda n: ("answer", 200, b'{"answer": 42, "list": [1, "two"]}')
    payload = {"hello": "world", "n": 1, "nested": {"unicode": "\u00e6\u00f8\u00e5"}}
    job = submit(path, payload=payload, correlation_id="corr-runner-1",
                 executor={"kind": "http", "url": endpoint.url + path, "method": "PUT",
                           "headers": {"X-Custom": "abc", "TaskFlow-Job-Id": "forged"}})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED", done
    assert done["result"] == {"answer": 42, "list": [1, "two"]}, done["result"]
    assert done["attempts"] == 1, done
    [call] = endpoint.calls_to(path)
    h = call["headers"]
    assert call["method"] == "PUT", call["method"]
    assert json.loads(call["body"]) == payload, call["body"]
    assert h["content-type"] == "application/json", h
    assert h["taskflow-job-id"] == job["id"], h
    assert h["taskflow-attempt"] == "1", h
    assert h["taskflow-correlation-id"] == "corr-runner-1", h
    assert h["x-custom"] == "abc", h
    secret = bytes.fromhex(db.sql(f"SELECT encode(signing_secret, 'hex') FROM tenants "
                                  f"WHERE id = '{TENANT}'"))
    parts = dict(p.split("=", 1) for p in h["taskflow-signature"].split(","))
    assert abs(int(parts["t"]) - time.time()) < 60, parts
    want = hmac.new(secret, parts["t"].encode() + b"." + call["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], want), (parts, want)
    [attempt] = attempts_of(job["id"])
    assert attempt["outcome"] == "succeeded" and attempt["error"] is None, attempt


def test_non_json_and_cut_bodies():
    text_path, big_path, empty_path = unique("text"), unique("big"), unique("empty")
    endpoint.script[text_path] = lambda n: ("answer", 200, b"plain \xff text")
    endpoint.script[big_path] = lambda n: ("answer", 200, b'{"x": "' + b"a" * 10000 + b'"}')
    endpoint.script[empty_path] = lambda n: ("answer", 204, b"")
    text, big, empty = submit(text_path), submit(big_path), submit(empty_path)
    done = wait_state(text["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED" and done["result"] == "plain \ufffd text", done
    done = wait_state(big["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED", done
    result = done["result"]
    assert result["truncated"] is True and result["body"].startswith('{"x": "aaa'), result
    assert len(result["body"]) == MAX_RESPONSE, len(result["body"])
    done = wait_state(empty["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED" and done["result"] is None, done


def test_exponential_retries_then_success():
    path = unique("flaky")
    endpoint.script[path] = lambda n: ("answer", 503, b'{"busy":true}') if n < 3 else (
        "answer", 200, b'{"finally": true}')
    job = submit(path, retry_policy={"strategy": "exponential", "base_delay_ms": 200,
                                     "max_attempts": 5, "jitter": "none"})
    done = wait_state(job["id"], TERMINAL, timeout=20)
    assert done["state"] == "SUCCEEDED", done
    assert done["result"] == {"finally": True} and done["attempts"] == 4, done
    calls = endpoint.calls_to(path)
    assert len(calls) == 4, len(calls)
    gaps = [round((b["start"] - a["start"]) * 1000) for a, b in zip(calls, calls[1:])]
    print(f"       delays between attempt starts: {gaps} ms", flush=True)
    for gap, want in zip(gaps, (200, 400, 800)):
        if not want - 5 <= gap <= want + 150:
            fail(f"delays between attempts {gaps}, want about 200, 400, 800 ms")
    assert [c["headers"]["taskflow-attempt"] for c in calls] == ["1", "2", "3", "4"], calls
    attempts = attempts_of(job["id"])
    assert len(attempts) == 4, attempts
    assert [a["error"]["type"] for a in attempts[:3]] == ["http_503"] * 3, attempts
    assert attempts[3]["outcome"] == "succeeded", attempts


def test_dead_letter_then_requeue_succeeds():
    path = unique("dead")
    healthy = threading.Event()
    endpoint.script[path] = lambda n: ("answer", 200, b'{"back": true}') if healthy.is_set() \
        else ("answer", 500, b"down")
    job = submit(path, queue="runner-dlq",
                 retry_policy={"strategy": "fixed", "base_delay_ms": 50, "max_attempts": 3})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "DEAD" and done["attempts"] == 3, done
    assert done["last_error"]["type"] == "http_500", done
    assert len(endpoint.calls_to(path)) == 3
    dead = expect(tf.request("GET", "/v1/dead-letter?queue=runner-dlq", headers=auth(KEY)), 200)
    assert job["id"] in [j["id"] for j in dead["jobs"]], dead
    healthy.set()
    expect(tf.request("POST", "/v1/dead-letter/requeue", {"ids": [job["id"]]},
                      headers=auth(KEY)), 200)
    done = wait_state(job["id"], "SUCCEEDED")
    assert done["result"] == {"back": True}, done
    assert len(endpoint.calls_to(path)) == 4


def test_client_error_is_not_retried():
    path = unique("missing")
    endpoint.script[path] = lambda n: ("answer", 404, b'{"error":"no such thing"}')
    job = submit(path, retry_policy={"strategy": "fixed", "base_delay_ms": 10, "max_attempts": 5})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "FAILED" and done["attempts"] == 1, done
    assert done["last_error"]["type"] == "http_404", done
    assert "404" in done["last_error"]["message"], done
    time.sleep(0.5)
    assert len(endpoint.calls_to(path)) == 1


def test_timeout_aborts_the_call():
    path = unique("slow")
    endpoint.script[path] = lambda n: ("hang", 5)
    job = submit(path, timeout_ms=300, retry_policy={"max_attempts": 1})
    started = time.monotonic()
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "DEAD", done
    assert done["last_error"]["type"] == "timeout", done
    assert time.monotonic() - started < 3, "the timeout did not cut the call"
    [call] = wait_calls(path, 1)
    wait_for(lambda: call["closed_at"] is not None, 3, what="the endpoint to see the close")
    assert call["closed_at"] - call["start"] < 1.5, call


def test_private_address_is_blocked():
    job = submit("", executor={"kind": "http", "url": "http://10.0.0.1:9/hook"})
    started = time.monotonic()
    done = wait_state(job["id"], TERMINAL, timeout=5)
    assert done["state"] == "FAILED" and done["attempts"] == 1, done
    assert done["last_error"]["type"] == "blocked_address", done
    assert time.monotonic() - started < 3


def test_missing_lua_executor_fails_for_good():
    job = expect(tf.request("POST", "/v1/jobs", {"type": "Lua", "executor": {
        "kind": "lua", "name": "nothing"}}, headers=auth(KEY)), 201)
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "FAILED" and done["attempts"] == 1, done
    assert done["last_error"]["type"] == "lua_executor_missing", done


def test_cancel_aborts_the_running_call():
    path = unique("cancel")
    endpoint.script[path] = lambda n: ("hang", 10)
    job = submit(path)
    [call] = wait_calls(path, 1)
    wait_state(job["id"], "RUNNING", timeout=5)
    got = expect(tf.request("POST", f"/v1/jobs/{job['id']}/cancel", headers=auth(KEY)), 200)
    assert got["state"] == "CANCELLED", got
    wait_for(lambda: call["closed_at"] is not None, 3, what="the call to be aborted")
    time.sleep(1.2)  # past a heartbeat: nothing may change the job any more
    done = get_job(job["id"])
    assert done["state"] == "CANCELLED" and done["result"] is None, done
    assert len(endpoint.calls_to(path)) == 1


def test_many_jobs_each_called_once():
    """More jobs than slots (64): claiming goes on as executions end."""
    path = unique("many")
    endpoint.script[path] = lambda n: ("answer", 200, b'{"ok": true}')
    jobs = expect(tf.request("POST", "/v1/jobs/batch", {"jobs": [
        {"type": "Many", "queue": "runner-many", "payload": {"i": i},
         "executor": {"kind": "http", "url": endpoint.url + path}} for i in range(300)]},
        headers=auth(KEY)), 201)["jobs"]
    ids = ",".join(f"'{j['id']}'" for j in jobs)
    wait_for(lambda: db.sql(f"SELECT count(*) FROM jobs WHERE id IN ({ids}) AND state = 3")
             == "300", 20, what="300 jobs to succeed")
    called = sorted(c["headers"]["taskflow-job-id"] for c in endpoint.calls_to(path))
    assert called == sorted(j["id"] for j in jobs), "each job must be called exactly once"
    assert db.sql(f"SELECT count(*) FROM job_attempts WHERE job_id IN ({ids})") == "300"


def test_delayed_job_runs_on_time():
    path = unique("delayed")
    job = submit(path, delay_ms=400)
    submitted = time.monotonic()
    [call] = wait_calls(path, 1)
    waited = round((call["start"] - submitted) * 1000)
    assert 380 <= waited <= 400 + 250, f"a 400 ms delay ran after {waited} ms"
    assert wait_state(job["id"], TERMINAL)["state"] == "SUCCEEDED"


def test_heartbeats_keep_a_call_longer_than_the_lease():
    path = unique("long")
    endpoint.script[path] = lambda n: ("hang", 4.5)  # lease is 3 s
    job = submit(path)
    done = wait_state(job["id"], TERMINAL, timeout=15)
    assert done["state"] == "SUCCEEDED" and done["result"] == {"late": True}, done
    assert done["attempts"] == 1 and len(endpoint.calls_to(path)) == 1, done


def test_lost_lease_aborts_the_call_and_the_rescue_decides():
    path = unique("stolen")
    endpoint.script[path] = lambda n: ("hang", 15)
    job = submit(path, retry_policy={"max_attempts": 1})
    [call] = wait_calls(path, 1)
    wait_state(job["id"], "RUNNING", timeout=5)
    db.sql(f"UPDATE jobs SET lease_token = gen_random_uuid() WHERE id = '{job['id']}'")
    wait_for(lambda: call["closed_at"] is not None, 3, what="the call to be aborted")
    assert call["closed_at"] - call["start"] < 2.5, call
    # Nobody heartbeats the stolen lease: the rescue fails the attempt.
    done = wait_state(job["id"], TERMINAL, timeout=10)
    assert done["state"] == "DEAD" and done["last_error"]["type"] == "lease_expired", done
    assert len(endpoint.calls_to(path)) == 1
    _, _, text = tf.request("GET", "/metrics")
    assert "taskflow_jobs_rescued_total " in text and "taskflow_jobs_rescued_total 0" not in text


def test_outcome_survives_a_database_outage():
    own = Database("runner_outage")
    target = urllib.parse.urlsplit(BASE_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    server = None
    try:
        server = TaskFlow(with_hostport(own.url, "127.0.0.1", proxy.port),
                          env={**BASE_ENV, "TASKFLOW_LEASE_MS": "30000"})
        _, token = new_tenant(server, "outage")
        path = unique("outage")
        endpoint.script[path] = lambda n: ("hang", 1.0)
        job = submit(path, server=server, token=token)
        wait_calls(path, 1)
        proxy.down()
        # The answer comes at 1 s; its report waits in the pool for a
        # connection (5 s), fails, and is retried with backoff.
        wait_for(lambda: any('"cannot report outcomes, will retry"' in line
                             for line in server.logs), 10, what="the failed report")
        assert own.sql(f"SELECT state FROM jobs WHERE id = '{job['id']}'") == "2"
        proxy.up()
        wait_for(lambda: own.sql(f"SELECT state FROM jobs WHERE id = '{job['id']}'") == "3", 15,
                 what="the outcome to be reported after the outage")
        row = own.sql(f"SELECT attempts, result::text FROM jobs WHERE id = '{job['id']}'")
        assert row == '1|{"late": true}', row
        assert len(endpoint.calls_to(path)) == 1
        assert server.stop() == 0
        assert_clean(server)
    finally:
        if server is not None:
            server.stop()
        proxy.close()
        own.drop()


def test_metrics_are_exposed():
    status, _, text = tf.request("GET", "/metrics")
    assert status == 200, status
    for name in ("taskflow_jobs_claimed_total{", "taskflow_jobs_succeeded_total{",
                 "taskflow_jobs_failed_total{", "taskflow_jobs_dead_total{",
                 "taskflow_executor_errors_total{type=\"http_404\"}",
                 "taskflow_attempt_duration_seconds_bucket{", "taskflow_submit_to_start_seconds_count{",
                 "taskflow_runner_executions ", "taskflow_jobs_rescued_total "):
        assert name in text, f"{name} missing from /metrics"
    assert "\ntaskflow_runner_executions 0\n" in text, "executions left in flight"


def test_graceful_shutdown_releases_running_jobs():
    """SIGTERM: a call that ends within the grace is reported; the calls
    still running after it are aborted and their jobs released (PENDING,
    the attempt not counted)."""
    own = Database("runner_stop")
    server = None
    try:
        server = TaskFlow(own.url, env={**BASE_ENV, "TASKFLOW_SHUTDOWN_GRACE_MS": "700"})
        _, token = new_tenant(server, "stop")
        slow, quick = unique("stop-slow"), unique("stop-quick")
        endpoint.script[slow] = lambda n: ("hang", 30)
        endpoint.script[quick] = lambda n: ("hang", 0.3)
        jobs = [submit(slow, server=server, token=token) for _ in range(3)]
        done = submit(quick, server=server, token=token)
        calls = wait_calls(slow, 3)
        wait_calls(quick, 1)
        ids = ",".join(f"'{j['id']}'" for j in jobs)
        before = own.sql(f"SELECT count(*) FROM jobs WHERE id IN ({ids}) AND state = 2 "
                         f"AND attempts = 1")
        assert before == "3", before
        started = time.monotonic()
        code = server.stop(signal.SIGTERM)
        took = time.monotonic() - started
        assert code == 0, f"exit code {code}; logs: {server.logs[-5:]}"
        assert_clean(server)
        assert 0.6 <= took < 5, f"shutdown took {took:.2f}s with a 0.7 s grace"
        rows = own.sql(f"SELECT state, attempts FROM jobs WHERE id IN ({ids})").split()
        assert rows == ["0|0"] * 3, rows
        assert own.sql(f"SELECT count(*) FROM ready WHERE job_id IN ({ids})") == "3"
        assert own.sql(f"SELECT count(*) FROM running WHERE job_id IN ({ids})") == "0"
        assert own.sql(f"SELECT state FROM jobs WHERE id = '{done['id']}'") == "3"
        released = [json.loads(line) for line in server.logs if '"released unfinished' in line]
        assert sum(rec["count"] for rec in released) == 3, released
        wait_for(lambda: all(c["closed_at"] is not None for c in calls), 3,
                 what="the calls to be aborted")
    finally:
        if server is not None:
            server.stop()
        own.drop()


def assert_clean(server):
    errors = "".join(server._stderr)
    assert "Sanitizer" not in errors and "runtime error" not in errors, errors[-3000:]


def test_clean_exit():
    code = tf.stop()
    assert code == 0, f"exit code {code}"
    assert_clean(tf)


def main():
    global db, tf, endpoint, TENANT, KEY
    db = Database("runner")
    endpoint = Endpoint()
    tf = TaskFlow(db.url, env={**BASE_ENV, "TASKFLOW_HTTP_MAX_RESPONSE_BYTES": str(MAX_RESPONSE)})
    try:
        TENANT, KEY = new_tenant(tf, "runner")
        run_tests([
            test_success_carries_payload_headers_and_signature,
            test_non_json_and_cut_bodies,
            test_exponential_retries_then_success,
            test_dead_letter_then_requeue_succeeds,
            test_client_error_is_not_retried,
            test_timeout_aborts_the_call,
            test_private_address_is_blocked,
            test_missing_lua_executor_fails_for_good,
            test_cancel_aborts_the_running_call,
            test_many_jobs_each_called_once,
            test_delayed_job_runs_on_time,
            test_heartbeats_keep_a_call_longer_than_the_lease,
            test_lost_lease_aborts_the_call_and_the_rescue_decides,
            test_metrics_are_exposed,
            test_outcome_survives_a_database_outage,
            test_graceful_shutdown_releases_running_jobs,
            test_clean_exit,
        ])
    finally:
        tf.stop()
        endpoint.close()
        db.drop()


if __name__ == "__main__":
    main()
