"""End-to-end test harness: starts the real `taskflow` binary against a
throwaway database and talks HTTP to it.

Environment (set by ctest, see tests/CMakeLists.txt):
  TASKFLOW_BIN                 the binary under test
  TASKFLOW_TEST_DATABASE_URL   a PostgreSQL the tests may create databases in
Only the Python standard library and the `psql` client are used.
"""
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

BIN = os.environ.get("TASKFLOW_BIN", "")
BASE_URL = os.environ.get("TASKFLOW_TEST_DATABASE_URL", "")


def fail(msg):
    raise AssertionError(msg)


def psql(url, sql):
    """Runs one SQL command with psql; returns its unaligned output."""
    out = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        fail(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def with_dbname(url, dbname):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))


def with_hostport(url, host, port):
    parts = urllib.parse.urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + f"{host}:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class Database:
    """A fresh database for one test file, dropped at the end."""

    def __init__(self, tag):
        if not BASE_URL:
            fail("TASKFLOW_TEST_DATABASE_URL is not set (run the suite with scripts/test)")
        self.name = f"tf_e2e_{tag}_{os.getpid()}"
        psql(BASE_URL, f"DROP DATABASE IF EXISTS {self.name}")
        psql(BASE_URL, f"CREATE DATABASE {self.name}")
        self.url = with_dbname(BASE_URL, self.name)

    def sql(self, query):
        return psql(self.url, query)

    def drop(self):
        psql(BASE_URL, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class TaskFlow:
    """A running `taskflow serve` on a free port.  Its log lines (JSON) are
    collected in self.logs."""

    def __init__(self, db_url, *args, env=None, wait=True, ready=True):
        if not BIN:
            fail("TASKFLOW_BIN is not set")
        full_env = dict(os.environ)
        # Tests that exercise the worker role (running built-in executors,
        # rescuing leases) ask for it; the others keep the runner out of the
        # way of what they inspect.
        full_env.update({"TASKFLOW_DATABASE_URL": db_url, "TASKFLOW_PORT": "0",
                         "TASKFLOW_THREADS": "2", "TASKFLOW_LOG_LEVEL": "info",
                         "TASKFLOW_ROLE": "api"})
        full_env.update(env or {})
        self.proc = subprocess.Popen([BIN, "serve", *args], env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.logs = []
        self.port = None
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_logs, daemon=True)
        self._reader.start()
        self._stderr = []
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()
        if wait and not self._ready.wait(30):
            self.stop()
            fail(f"taskflow did not start; logs: {self.logs} stderr: {''.join(self._stderr)}")
        if wait and ready:
            # "listening" comes before every loop's database pool is up.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.request("GET", "/readyz")[0] != 200:
                time.sleep(0.02)

    def _read_logs(self):
        for line in self.proc.stdout:
            self.logs.append(line)
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg") == "listening":
                self.port = int(rec["url"].rsplit(":", 1)[1])
                self._ready.set()

    def request(self, method, path, body=None, headers=None, timeout=10):
        """Returns (status, headers dict (lower-case names), parsed JSON or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        data = body
        if body is not None and not isinstance(body, (bytes, str)):
            data = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        rh = {k.lower(): v for k, v in resp.getheaders()}
        parsed = raw.decode("utf-8", "replace")
        if rh.get("content-type", "").startswith("application/json") and raw:
            parsed = json.loads(raw)
        return resp.status, rh, parsed

    def raw(self, data, timeout=5, read=True):
        """Sends raw bytes on a new connection; returns what came back until
        the server closed or `timeout` passed."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(data)
            return read_until_close(s, timeout) if read else b""
        finally:
            s.close()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


def read_until_close(sock, timeout):
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            break
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def status_of(raw_response):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", raw_response)
    return int(m.group(1)) if m else None


class TcpProxy:
    """A loopback TCP proxy in front of PostgreSQL, so a test can cut the
    database away from TaskFlow (`down`) and bring it back (`up`) without
    touching the server itself."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        self.enabled = True
        self.pairs = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.enabled:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self):
        self.enabled = False
        with self.lock:
            for a, b in self.pairs:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    except OSError:
                        pass
            self.pairs.clear()

    def up(self):
        self.enabled = True

    def close(self):
        self.down()
        self.listener.close()


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    fail(f"timed out after {timeout}s waiting for {what}")


def wait_job(tf, token, job_id, states, timeout=20):
    """Polls GET /v1/jobs/{id} until the job is in one of `states` (a name
    or a tuple); returns it, or fails with the last one seen."""
    states = (states,) if isinstance(states, str) else states
    seen = {}

    def done():
        seen["job"] = expect(tf.request("GET", f"/v1/jobs/{job_id}", headers=auth(token)), 200)
        return seen["job"]["state"] in states

    try:
        wait_for(done, timeout, interval=0.05, what=f"job {job_id} in {states}")
    except AssertionError:
        fail(f"job never reached {states}: {seen.get('job')}")
    return seen["job"]


def run_tests(tests):
    """Runs test functions in order; prints a summary line ctest can read and
    exits non-zero when any failed."""
    passed = failed = 0
    for t in tests:
        start = time.monotonic()
        try:
            t()
            passed += 1
            print(f"[ OK ] {t.__name__} ({time.monotonic() - start:.2f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure kind
            failed += 1
            print(f"[FAIL] {t.__name__}: {type(e).__name__}: {e}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


def is_uuid(text):
    try:
        return str(uuid.UUID(text)) == text.lower()
    except (ValueError, AttributeError, TypeError):
        return False


class JobEndpoint:
    """A local HTTP endpoint for jobs with an `http` executor.  Every POST is
    recorded (path, headers, body); `behaviour(path, body, n)` -> (status,
    body, delay seconds) decides the answer, n being how many times that path
    was called before.  Serves each request on its own thread."""

    def __init__(self, behaviour=None):
        import http.server

        self.calls = []
        self.counts = {}
        self.lock = threading.Lock()
        self.behaviour = behaviour or (lambda path, body, n: (200, b'{"ok":true}', 0))
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with endpoint.lock:
                    n = endpoint.counts.get(self.path, 0)
                    endpoint.counts[self.path] = n + 1
                    endpoint.calls.append((self.path, dict(self.headers), body, time.monotonic()))
                status, answer, delay = endpoint.behaviour(self.path, body, n)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass

            do_PUT = do_POST

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (scripts/pg with its own folder
    and port), for tests that stop and start the server."""

    def __init__(self, tag, port):
        self.env = dict(os.environ)
        src = os.environ.get("TASKFLOW_SOURCE_DIR", ".")
        self.script = os.path.join(src, "scripts", "pg")
        self.env.update({"TASKFLOW_PG_DIR": os.path.join(src, ".taskflow", f"pg-{tag}"),
                         "TASKFLOW_PG_PORT": str(port)})
        self.run("start")
        self.url = subprocess.run([self.script, "url"], env=self.env, capture_output=True,
                                  text=True, check=True).stdout.strip()

    def run(self, action):
        out = subprocess.run([self.script, action], env=self.env, capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            fail(f"scripts/pg {action}: {out.stdout} {out.stderr}")

    def stop(self):
        self.run("stop")

    def start(self):
        self.run("start")


# ---- API helpers shared by the jobs and worker tests ----

def auth(token, tenant=None, **extra):
    """Headers for a bearer token, optionally acting for `tenant`."""
    h = {"Authorization": f"Bearer {token}"}
    if tenant is not None:
        h["TaskFlow-Tenant"] = tenant
    h.update(extra)
    return h


def expect(answer, status, code=None, field=None):
    """Asserts an answer's status (and error code / details.field); returns
    its body."""
    got, _, body = answer
    if got != status:
        fail(f"status {got}, want {status}: {str(body)[:500]}")
    if code is not None:
        assert isinstance(body, dict) and body["error"]["code"] == code, body
    if field is not None:
        assert body["error"]["details"].get("field") == field, body
    return body


def new_tenant(tf, admin, name):
    """A tenant (named `name` plus the pid) and a key: (id, token, key id)."""
    tenant = expect(tf.request("POST", "/v1/admin/tenants", {"name": f"{name}-{os.getpid()}"},
                               headers=auth(admin)), 201)
    key = expect(tf.request("POST", f"/v1/admin/tenants/{tenant['id']}/keys", {},
                            headers=auth(admin)), 201)
    return tenant["id"], key["token"], key["id"]


def submit(tf, token, **job):
    """POST /v1/jobs (type "T" unless given); returns the created job."""
    job.setdefault("type", "T")
    return expect(tf.request("POST", "/v1/jobs", job, headers=auth(token)), 201)


# ---- moving a job by SQL the way a worker would (for tests of the API
# ---- around running jobs that do not run a worker)

def sql_claim(db, job_id, worker="w-1"):
    """PENDING -> RUNNING the way the claim does: the lease, the running row,
    the event."""
    j = f"'{job_id}'::uuid"
    db.sql(f"""
        WITH r AS (DELETE FROM ready WHERE job_id = {j}),
             s AS (DELETE FROM scheduled WHERE job_id = {j}),
             u AS (UPDATE jobs SET state = 2, attempts = attempts + 1, started_at = now(),
                   lease_token = gen_random_uuid(), locked_by = '{worker}',
                   lease_expires_at = now() + interval '30 seconds', updated_at = now()
                   WHERE id = {j} RETURNING tenant_id, id, queue),
             n AS (INSERT INTO running (tenant_id, job_id, queue, lease_expires_at, locked_by)
                   SELECT tenant_id, id, queue, now() + interval '30 seconds', '{worker}' FROM u)
        INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)
        SELECT tenant_id, id, 0, 2, 'claimed', '{worker}' FROM u""")


def sql_finish(db, job_id, state, worker="w-1"):
    """RUNNING -> SUCCEEDED, FAILED (fatal error) or DEAD (retryable error,
    attempts exhausted) the way completion does: the attempt row, the dead
    letter, the event."""
    j = f"'{job_id}'::uuid"
    to, outcome = {"SUCCEEDED": (3, 0), "FAILED": (4, 2), "DEAD": (5, 1)}[state]
    etype, emsg = ("NULL", "NULL") if state == "SUCCEEDED" else ("'Boom'", "'it broke'")
    result = "'{\"ok\": true}'::jsonb" if state == "SUCCEEDED" else "NULL"
    db.sql(f"""
        WITH old AS (SELECT tenant_id, id, queue, attempts, lease_token, started_at
                     FROM jobs WHERE id = {j} FOR UPDATE),  -- read before u changes it
             r AS (DELETE FROM running WHERE job_id = {j}),
             a AS (INSERT INTO job_attempts (tenant_id, job_id, attempt, worker, lease_token,
                   started_at, duration_ms, outcome, error_type, error_message)
                   SELECT tenant_id, id, attempts, '{worker}', lease_token, started_at, 5,
                   {outcome}, {etype}, {emsg} FROM old),
             d AS (INSERT INTO dead_letters (tenant_id, job_id, queue)
                   SELECT tenant_id, id, queue FROM old WHERE {to} = 5),
             u AS (UPDATE jobs j SET state = {to}, finished_at = now(), updated_at = now(),
                   lease_token = NULL, lease_expires_at = NULL, locked_by = NULL,
                   result = {result}, last_error_type = {etype}, last_error_message = {emsg}
                   FROM old WHERE j.tenant_id = old.tenant_id AND j.id = old.id
                   RETURNING j.tenant_id, j.id)
        INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor)
        SELECT tenant_id, id, 2, {to}, 'test', '{worker}' FROM u""")
