"""Lua executors end to end, as a user would: upload through the API
(PUT /v1/executors/{name}, text/x-lua), versions kept, bad uploads refused
with a clear error and nothing stored, then jobs run in the tenant's
sandbox: results, retryable and fatal errors, snooze, timeouts, output
limits, cancellation while tf.http.request waits, lease loss, jobs created
with tf.enqueue committed with the run's success only, and a new version
taking over without a restart.
"""
import http.server
import select
import threading
import time
import uuid

import tfharness as harness
from tfharness import Database, TaskFlow, auth, expect, run_tests, wait_for

ADMIN = "tf-admin-" + uuid.uuid4().hex
TERMINAL = ("SUCCEEDED", "FAILED", "DEAD", "CANCELLED")


def put(name, source, token=None, content_type="text/x-lua"):
    return tf.request("PUT", f"/v1/executors/{name}", source.encode() if isinstance(source, str)
                      else source, headers=auth(token or KEY, **{"Content-Type": content_type}))


def get(path, token=None):
    return tf.request("GET", path, headers=auth(token or KEY))


def submit(**job):
    job.setdefault("type", "Nothing")
    return expect(tf.request("POST", "/v1/jobs", job, headers=auth(KEY)), 201)


def get_job(job_id):
    return expect(get(f"/v1/jobs/{job_id}"), 200)


def attempts_of(job_id):
    return expect(get(f"/v1/jobs/{job_id}/attempts"), 200)["attempts"]


def wait_state(job_id, states, timeout=20):
    return harness.wait_job(tf, KEY, job_id, states, timeout)


def executor(name, handles, body, extra=""):
    """The source of an executor named `name` whose run is `body`."""
    types = ", ".join(f'"{t}"' for t in handles)
    return (f'return {{\n  name = "{name}",\n  handles = {{{types}}},{extra}\n'
            f'  run = function(job, ctx)\n{body}\n  end,\n}}\n')


class Endpoint:
    """A local HTTP server the executors call.  script[path](n) answers the
    n-th call: ("answer", status, body) or ("hang", event): hold the call
    until the event is set, noting when the client closes first."""

    def __init__(self):
        self.script, self.calls, self.closed = {}, [], set()
        self.lock = threading.Lock()
        ep = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with ep.lock:
                    n = sum(1 for p in ep.calls if p == self.path)
                    ep.calls.append(self.path)
                action = ep.script.get(self.path, lambda n: ("answer", 200, b"{}"))(n)
                if action[0] == "hang":
                    while not action[1].is_set():
                        ready, _, _ = select.select([self.connection], [], [], 0.05)
                        if ready and not self.connection.recv(1, 0x02):  # MSG_PEEK
                            with ep.lock:
                                ep.closed.add(self.path)
                            return
                    action = ("answer", 200, b"{}")
                _, status, body = action
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            do_PUT = do_POST

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls_to(self, path):
        with self.lock:
            return [p for p in self.calls if p == path]

    def closed_early(self, path):
        with self.lock:
            return path in self.closed

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- uploads ----

def test_upload_versions_list_get_delete():
    src1 = executor("echo", ["Echo"], "    return {echo = job.payload, version = ctx.executor.version}")
    got = expect(put("echo", src1), 201)
    assert got["name"] == "echo" and got["version"] == 1 and got["handles"] == ["Echo"], got
    assert len(got["sha256"]) == 64 and got["timeout_ms"] is None, got
    src2 = executor("echo", ["Echo", "Echo2"], "    return {echo = job.payload, v = 2}",
                    "\n  timeout_ms = 5000,")
    got = expect(put("echo", src2), 200)
    assert got["version"] == 2 and got["handles"] == ["Echo", "Echo2"], got
    assert got["timeout_ms"] == 5000, got
    listed = expect(get("/v1/executors"), 200)["executors"]
    assert [e["name"] for e in listed] == ["echo"] and listed[0]["version"] == 2, listed
    assert "source" not in listed[0], listed
    one = expect(get("/v1/executors/echo"), 200)
    assert one["source"] == src2 and one["version"] == 2, one
    assert [v["version"] for v in one["versions"]] == [2, 1], one["versions"]
    old = expect(get("/v1/executors/echo?version=1"), 200)
    assert old["source"] == src1 and old["version"] == 1, old
    expect(get("/v1/executors/echo?version=9"), 404, "not_found")
    expect(get("/v1/executors/echo?version=x"), 422, "validation_failed", "version")
    # Another tenant sees none of it.
    expect(get("/v1/executors/echo", token=OTHER_KEY), 404, "not_found")
    assert expect(get("/v1/executors", token=OTHER_KEY), 200)["executors"] == []
    # Delete: gone, versions kept in the database, the name free again.
    expect(tf.request("DELETE", "/v1/executors/echo", headers=auth(KEY)), 204)
    expect(get("/v1/executors/echo"), 404, "not_found")
    expect(tf.request("DELETE", "/v1/executors/echo", headers=auth(KEY)), 404, "not_found")
    assert db.sql(f"SELECT count(*) FROM lua_executor_versions WHERE tenant_id = '{TENANT}'"
                  " AND name = 'echo'") == "2"
    got = expect(put("echo", src1), 201)
    assert got["version"] == 3, got


def stored_versions():
    return db.sql(f"SELECT count(*) FROM lua_executor_versions WHERE tenant_id = '{TENANT}'")


def test_bad_uploads_are_refused_and_nothing_is_stored():
    before = stored_versions()
    cases = [
        ("bad", "return {", 422, "validation_failed", "executor bad:1:"),
        ("bad", "\x1bLuaT\x00\x19\x93", 422, "validation_failed", "binary"),
        ("bad", "", 422, "validation_failed", "Lua source"),
        ("bad", "return 42", 422, "validation_failed", "must return a table"),
        ("bad", 'return {name = "bad", handles = {}}', 422, "validation_failed",
         "run must be a function"),
        ("bad", 'return {name = "other", run = function() end}', 422, "validation_failed",
         'name must be "bad"'),
        ("bad", 'return {name = "bad", run = function() end, handles = "T"}', 422,
         "validation_failed", "handles"),
        ("bad", 'return {name = "bad", run = function() end, timeout_ms = -1}', 422,
         "validation_failed", "timeout_ms"),
        ("bad", 'return {name = "bad", run = function() end, extra = 1}', 422,
         "validation_failed", "unknown field extra"),
        ("bad", 'error("at the top")', 422, "validation_failed", "at the top"),
        ("bad", "while true do end", 422, "validation_failed", "lua_budget"),
        ("bad", 'return os.execute("id")', 422, "validation_failed", "global 'os'"),
        ("bad name", 'return {}', 422, "validation_failed", "name"),
        ("bad", b"return {name = '\xff'}", 422, "validation_failed", "UTF-8"),
        ("bad", "x" * (256 * 1024 + 1), 413, "payload_too_large", "256 KiB"),
    ]
    for name, source, status, code, fragment in cases:
        got = expect(put(name.replace(" ", "%20"), source), status, code)
        assert fragment in got["error"]["message"], (name, source[:40], got)
    expect(put("bad", "return {}", content_type="application/json"), 415)
    expect(put("bad", "return {}", token="nope"), 401)
    # Reads and deletes of names that cannot exist, and bad versions.
    expect(get("/v1/executors/bad%20name"), 404, "not_found")
    expect(tf.request("DELETE", "/v1/executors/bad%20name", headers=auth(KEY)), 404, "not_found")
    expect(get("/v1/executors/" + "n" * 200), 404, "not_found")
    for version in ("0", "-1", "1.5", "99999999999"):
        expect(get(f"/v1/executors/bad?version={version}"), 422, "validation_failed", "version")
    # A job type another executor handles.
    expect(put("first", executor("first", ["Shared"], "return 1")), 201)
    got = expect(put("second", executor("second", ["Shared"], "return 2")), 409, "conflict")
    assert "Shared" in got["error"]["message"] and "first" in got["error"]["message"], got
    expect(get("/v1/executors/second"), 404)
    assert stored_versions() == str(int(before) + 1), (before, stored_versions())


# ---- runs ----

def test_a_handled_type_runs_and_records_the_version():
    expect(put("greeter", executor("greeter", ["Greet"],
                                   '    tf.log.info("greeting", {who = job.payload.who})\n'
                                   '    return {hello = job.payload.who, attempt = job.attempt,'
                                   ' version = ctx.executor.version}')), 201)
    job = submit(type="Greet", payload={"who": "world"})
    assert job["executor"] == {"kind": "lua", "name": "greeter"}, job
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED", done
    assert done["result"] == {"hello": "world", "attempt": 1, "version": 1}, done["result"]
    assert done["executor"] == {"kind": "lua", "name": "greeter"}, done["executor"]
    [a] = attempts_of(job["id"])
    assert a["outcome"] == "succeeded" and a["executor_version"] == 1, a
    # Named explicitly.
    job = submit(type="Other", executor={"kind": "lua", "name": "greeter"},
                 payload={"who": "you"})
    assert wait_state(job["id"], TERMINAL)["result"]["hello"] == "you"
    # A new version takes over without a restart.
    expect(put("greeter", executor("greeter", ["Greet"], "    return {v = ctx.executor.version}")),
           200)
    job = submit(type="Greet")
    done = wait_state(job["id"], TERMINAL)
    assert done["result"] == {"v": 2}, done
    assert attempts_of(job["id"])[0]["executor_version"] == 2


def test_errors_retry_then_die_and_fatal_ends_at_once():
    expect(put("failing", executor("failing", ["Fail", "Typed", "Fatal"],
                                   '    if job.type == "Typed" then\n'
                                   '      error({type = "quota_exceeded", message = "no quota"})\n'
                                   '    elseif job.type == "Fatal" then\n'
                                   '      tf.fatal("bad input", "bad_input")\n'
                                   '    end\n'
                                   '    error("always")')), 201)
    policy = {"strategy": "fixed", "base_delay_ms": 50, "max_attempts": 2, "jitter": "none"}
    job = submit(type="Fail", retry_policy=policy)
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "DEAD" and done["attempts"] == 2, done
    assert done["last_error"]["type"] == "lua_error", done
    message = done["last_error"]["message"]
    assert message.startswith("executor failing:") and message.endswith(": always"), done
    job = submit(type="Typed", retry_policy=policy)
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "DEAD" and done["last_error"]["type"] == "quota_exceeded", done
    assert done["last_error"]["message"] == "no quota", done
    job = submit(type="Fatal", retry_policy=policy)
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "FAILED" and done["attempts"] == 1, done
    assert done["last_error"] == {"type": "bad_input", "message": "bad input"}, done


def test_snooze_does_not_spend_attempts():
    expect(put("snoozer", executor("snoozer", ["Snooze"],
                                   '    if tf.now() < job.payload.until_ms then\n'
                                   '      return tf.snooze(100)\n'
                                   '    end\n'
                                   '    return {done = true, attempt = job.attempt}')), 201)
    until = int(time.time() * 1000) + 400
    job = submit(type="Snooze", payload={"until_ms": until},
                 retry_policy={"max_attempts": 1})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED", done
    assert done["result"] == {"done": True, "attempt": 1}, done
    attempts = attempts_of(job["id"])
    assert len(attempts) >= 2, attempts
    assert all(a["outcome"] == "snoozed" for a in attempts[:-1]), attempts
    assert attempts[-1]["outcome"] == "succeeded" and attempts[-1]["attempt"] == 1, attempts
    events = expect(get(f"/v1/jobs/{job['id']}/events"), 200)["events"]
    assert any(e["reason"] == "snoozed" and e["to"] == "SCHEDULED" for e in events), events


def test_timeout_and_output_limit():
    expect(put("slow", executor("slow", ["Slow"], "    tf.sleep(5000) return 1",
                                "\n  timeout_ms = 300,")), 201)
    job = submit(type="Slow", retry_policy={"max_attempts": 1})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] in ("DEAD", "FAILED"), done
    assert done["last_error"]["type"] == "lua_deadline", done
    expect(put("big", executor("big", ["Big"], '    return ("x"):rep(2 * 1024 * 1024)')), 201)
    job = submit(type="Big", retry_policy={"max_attempts": 1})
    done = wait_state(job["id"], TERMINAL)
    assert done["last_error"]["type"] == "lua_output", done
    assert "output limit" in done["last_error"]["message"], done


def test_cancel_while_an_http_call_waits():
    path = f"/hang-{uuid.uuid4().hex[:8]}"
    release = threading.Event()
    endpoint.script[path] = lambda n: ("hang", release)
    expect(put("caller", executor("caller", ["Call"],
                                  f'    local r = tf.http.request{{url = "{endpoint.url}{path}",'
                                  ' method = "POST", body = "{}", timeout_ms = 20000}\n'
                                  '    return {status = r.status}')), 201)
    job = submit(type="Call")
    wait_for(lambda: len(endpoint.calls_to(path)) == 1, 10, what="the call to arrive")
    wait_state(job["id"], "RUNNING")
    expect(tf.request("POST", f"/v1/jobs/{job['id']}/cancel", {}, headers=auth(KEY)), 200)
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "CANCELLED", done
    # The pending call was abandoned: its connection closes.
    wait_for(lambda: endpoint.closed_early(path), 10, what="the abandoned call's connection to close")
    release.set()


def test_lease_loss_abandons_the_run():
    path = f"/after-{uuid.uuid4().hex[:8]}"
    endpoint.script[path] = lambda n: ("answer", 200, b"{}")
    expect(put("leased", executor("leased", ["Leased"],
                                  '    tf.sleep(1500)\n'
                                  f'    tf.http.request{{url = "{endpoint.url}{path}", method = "POST"}}\n'
                                  '    return 1')), 201)
    job = submit(type="Leased", retry_policy={"max_attempts": 1})
    wait_state(job["id"], "RUNNING")
    # Another holder takes the lease: the next heartbeat finds it stale.
    db.sql(f"UPDATE jobs SET lease_token = gen_random_uuid() WHERE id = '{job['id']}'")
    time.sleep(3)
    assert endpoint.calls_to(path) == [], "the abandoned run went on"


def test_enqueue_commits_with_success_only():
    expect(put("parent", executor("parent", ["Parent"],
                                  '    local id = tf.enqueue{type = "Child", queue = "children",'
                                  ' payload = {from = job.id}}\n'
                                  '    if job.payload.fail then error("after enqueue") end\n'
                                  '    return {child = id}')), 201)
    job = submit(type="Parent", correlation_id="corr-parent", payload={"fail": False})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED", done
    child = get_job(done["result"]["child"])
    assert child["parent_id"] == job["id"] and child["correlation_id"] == "corr-parent", child
    assert child["payload"] == {"from": job["id"]} and child["queue"] == "children", child
    failing = submit(type="Parent", payload={"fail": True}, retry_policy={"max_attempts": 1})
    done = wait_state(failing["id"], TERMINAL)
    assert done["state"] == "DEAD", done
    assert db.sql(f"SELECT count(*) FROM jobs WHERE parent_id = '{failing['id']}'") == "0"
    # Bad jobs are refused by tf.enqueue with the API's validation.
    expect(put("badparent", executor("badparent", ["BadParent"],
                                     '    tf.enqueue{type = "X", queue = "bad queue!"}')), 201)
    job = submit(type="BadParent", retry_policy={"max_attempts": 1})
    done = wait_state(job["id"], TERMINAL)
    assert "tf.enqueue: queue:" in done["last_error"]["message"], done
    # A run's jobs take its job as parent and its correlation id: both
    # fields are refused, with a message, and nothing is created.
    for field, value in (("depends_on", f'{{"{job["id"]}"}}'), ("correlation_id", '"mine"')):
        name = "refuses-" + field.replace("_", "-")
        expect(put(name, executor(name, [name],
                                  f'    tf.enqueue{{type = "X", {field} = {value}}}')), 201)
        refused = submit(type=name, retry_policy={"max_attempts": 1})
        done = wait_state(refused["id"], TERMINAL)
        assert done["state"] == "DEAD", done
        assert f"tf.enqueue: {field}: not accepted here" in done["last_error"]["message"], done
        assert db.sql(f"SELECT count(*) FROM jobs WHERE parent_id = '{refused['id']}'") == "0"


def test_missing_executor_fails_for_good():
    job = submit(type="Nope", executor={"kind": "lua", "name": "does-not-exist"})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "FAILED" and done["attempts"] == 1, done
    assert done["last_error"]["type"] == "lua_executor_missing", done


def test_sandbox_escape_attempts_fail_and_the_tenant_keeps_working():
    expect(put("evil", executor("evil", ["Evil"],
                                '    if job.payload.k == "os" then return os.execute("id") end\n'
                                '    if job.payload.k == "loop" then while true do end end\n'
                                '    if job.payload.k == "mem" then local s = "x"'
                                ' while true do s = s .. s end end\n'
                                '    string.upper = nil\n'
                                '    return 1')), 201)
    expect(put("benign", executor("benign", ["Benign"], '    return ("ok"):upper()')), 201)
    policy = {"max_attempts": 1}
    for k, want in (("os", "lua_error"), ("loop", "lua_budget"), ("mem", "lua_memory"),
                    ("lib", "lua_error")):
        job = submit(type="Evil", payload={"k": k}, retry_policy=policy)
        benign = submit(type="Benign")
        done = wait_state(job["id"], TERMINAL, timeout=60)
        assert done["last_error"]["type"] == want, (k, done)
        assert wait_state(benign["id"], TERMINAL)["result"] == "OK"
    assert tf.alive()


def test_upload_and_run_need_a_tenant():
    expect(tf.request("PUT", "/v1/executors/x", b"return {}",
                      headers={"Content-Type": "text/x-lua"}), 401)


if __name__ == "__main__":
    db = Database("lua")
    endpoint = Endpoint()
    tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api,worker",
                               "TASKFLOW_HTTP_ALLOW_LOOPBACK": "1", "TASKFLOW_LEASE_MS": "1000",
                               "TASKFLOW_POLL_INTERVAL_MS": "50",
                               "TASKFLOW_LUA_INSTRUCTIONS": "20000000",
                               "TASKFLOW_LUA_MEMORY_BYTES": "33554432"})
    TENANT, KEY, _ = harness.new_tenant(tf, ADMIN, "lua")
    _, OTHER_KEY, _ = harness.new_tenant(tf, ADMIN, "lua-other")
    try:
        run_tests([test_upload_versions_list_get_delete,
                   test_bad_uploads_are_refused_and_nothing_is_stored,
                   test_a_handled_type_runs_and_records_the_version,
                   test_errors_retry_then_die_and_fatal_ends_at_once,
                   test_snooze_does_not_spend_attempts,
                   test_timeout_and_output_limit,
                   test_cancel_while_an_http_call_waits,
                   test_lease_loss_abandons_the_run,
                   test_enqueue_commits_with_success_only,
                   test_missing_executor_fails_for_good,
                   test_sandbox_escape_attempts_fail_and_the_tenant_keeps_working,
                   test_upload_and_run_need_a_tenant])
    finally:
        tf.stop()
        endpoint.close()
        db.drop()
