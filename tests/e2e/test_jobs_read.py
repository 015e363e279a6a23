"""The read side of the jobs API against the real server: GET /v1/jobs/{id},
the filtered listing with its cursors (also while jobs are being inserted),
a job's attempts and events, and the dead letter; tenant isolation and
authentication on every route; every bad query answered with a clear 4xx.

Jobs are submitted through POST /v1/jobs; states that only workers reach
(RUNNING, SUCCEEDED, FAILED, DEAD) and rows only they write (job_attempts)
are set with SQL the way those modules write them.
"""
import base64
import datetime
import hashlib
import hmac
import os
import struct
import threading
import time
import urllib.parse
import uuid

import tfharness as harness
from tfharness import Database, TaskFlow, fail, run_tests, auth, expect

ADMIN = "tf-admin-" + uuid.uuid4().hex
STATES = ["PENDING", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED", "DEAD", "CANCELLED"]
JOB_KEYS = {"id", "tenant_id", "queue", "type", "state", "priority", "payload", "attempts",
            "max_attempts", "run_at", "created_at", "updated_at", "started_at", "finished_at",
            "last_error", "result", "correlation_id", "parent_id", "rule_id", "depends_on",
            "retry_policy", "executor", "metadata", "timeout_ms", "idempotency_key"}
READ_ROUTES = ["/v1/jobs/{id}", "/v1/jobs/{id}/attempts", "/v1/jobs/{id}/events"]


# ---- helpers ----


def get(path, token, **kw):
    return tf.request("GET", path, headers=auth(token, **kw))


def new_tenant(name):
    return harness.new_tenant(tf, ADMIN, name)


def submit(token, **job):
    return harness.submit(tf, token, **job)


def submit_many(token, jobs):
    return expect(tf.request("POST", "/v1/jobs/batch", {"jobs": jobs}, headers=auth(token)),
                  201)["jobs"]


def q(value):
    return urllib.parse.quote(value, safe="")


def claim(job_id, worker="w-1"):
    harness.sql_claim(db, job_id, worker)


def finish(job_id, state, worker="w-1"):
    harness.sql_finish(db, job_id, state, worker)


def force_state(job_id, state):
    """Moves a PENDING job to RUNNING, SUCCEEDED, FAILED or DEAD."""
    claim(job_id)
    if state != "RUNNING":
        finish(job_id, state)


def ids_of(query, token=None):
    """The ids GET /v1/jobs?<query> lists (one page of up to 1000)."""
    page = expect(get(f"/v1/jobs?limit=1000&{query}", token or KEY_A), 200)
    return [j["id"] for j in page["jobs"]]


def walk(path, token, limit, **kw):
    """Every page of a listing; returns (ids, pages)."""
    ids, pages, cursor = [], 0, None
    sep = "&" if "?" in path else "?"
    while True:
        url = f"{path}{sep}limit={limit}" + (f"&cursor={q(cursor)}" if cursor else "")
        page = expect(get(url, token, **kw), 200)
        assert set(page) == {"jobs", "next_cursor"}, page
        assert len(page["jobs"]) <= limit, page
        ids += [j["id"] for j in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 1000, "runaway pagination"


def cursor_key():
    return bytes.fromhex(db.sql("SELECT value FROM settings WHERE key = 'cursor_key'"))


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def resign(cursor, issued_ms=None, last_id=None):
    """The cursor with another issue time or last id, correctly signed (the
    layout of adapters/app/cursor.c), to test what only the clock or the
    scope can refuse."""
    raw = bytearray(b64d(cursor))
    if issued_ms is not None:
        raw[1:9] = struct.pack(">Q", issued_ms)
    if last_id is not None:
        raw[17:33] = uuid.UUID(last_id).bytes
    mac = hmac.new(cursor_key(), bytes(raw[:33]), hashlib.sha256).digest()[:16]
    return b64e(bytes(raw[:33]) + mac)


# ---- GET /v1/jobs/{id} ----

def test_get_job():
    job = submit(KEY_A, type="GetMe", queue="reads", payload={"n": 1}, priority=7,
                 metadata={"m": True}, correlation_id="corr-get")
    got = expect(get(f"/v1/jobs/{job['id']}", KEY_A), 200)
    assert set(got) == JOB_KEYS, set(got) ^ JOB_KEYS
    assert got == job, (got, job)
    assert got["tenant_id"] == TENANT_A and got["state"] == "PENDING", got
    # Ids are accepted in either case; the answer is canonical.
    upper = expect(get(f"/v1/jobs/{job['id'].upper()}", KEY_A), 200)
    assert upper["id"] == job["id"], upper


def test_get_unknown_and_malformed_ids_are_404():
    for bad in (str(uuid.uuid4()), "00000000-0000-7000-8000-000000000000", "not-a-uuid",
                "1234", uuid.uuid4().hex, "%20", "01937a3e-4f2b-7c1d-9e8f-0a1b2c3d4e5", "x" * 300):
        for route in READ_ROUTES:
            path = route.replace("{id}", bad)
            expect(get(path, KEY_A), 404, "not_found")


# ---- isolation and authentication ----

def test_other_tenant_gets_404_everywhere():
    job = submit(KEY_A, type="Private", queue="private")
    force_state(job["id"], "DEAD")
    for route in READ_ROUTES:
        path = route.replace("{id}", job["id"])
        expect(get(path, KEY_B), 404, "not_found")
        expect(get(path, KEY_A), 200)
    theirs = expect(get("/v1/jobs?limit=1000", KEY_B), 200)["jobs"]
    assert all(j["tenant_id"] == TENANT_B for j in theirs), theirs
    assert job["id"] not in [j["id"] for j in theirs]
    dead = expect(get("/v1/dead-letter?limit=1000", KEY_B), 200)["jobs"]
    assert job["id"] not in [j["id"] for j in dead], dead
    mine = expect(get("/v1/dead-letter?queue=private", KEY_A), 200)["jobs"]
    assert [j["id"] for j in mine] == [job["id"]], mine


def test_tokens():
    job = submit(KEY_A, type="Tok")
    paths = [r.replace("{id}", job["id"]) for r in READ_ROUTES] + ["/v1/jobs", "/v1/dead-letter"]
    spare_tenant, spare, spare_id = new_tenant("spare")
    expect(get("/v1/jobs", spare), 200)
    expect(tf.request("DELETE", f"/v1/admin/tenants/{spare_tenant}/keys/{spare_id}",
                      headers=auth(ADMIN)), 204)
    for path in paths:
        expect(tf.request("GET", path), 401, "unauthorized")
        expect(tf.request("GET", path, headers={"Authorization": "Bearer tf_nope"}), 401)
        expect(tf.request("GET", path, headers={"Authorization": "Basic abc"}), 401)
        expect(tf.request("GET", path, headers=auth(spare)), 401, "unauthorized")
        expect(tf.request("GET", path, headers=auth(ADMIN)), 422, "validation_failed")
        expect(tf.request("GET", path, headers=auth(ADMIN, str(uuid.uuid4()))), 404)
        expect(tf.request("GET", path, headers=auth(ADMIN, TENANT_A)), 200)
        # The admin acting for B sees B's world: A's job is not found.
        if path.startswith(f"/v1/jobs/{job['id']}"):
            expect(tf.request("GET", path, headers=auth(ADMIN, TENANT_B)), 404)
    got = expect(get(f"/v1/jobs/{job['id']}", ADMIN, tenant=TENANT_A), 200)
    assert got["id"] == job["id"], got


# ---- GET /v1/jobs: filters ----

def test_list_filters():
    rule = str(uuid.uuid4())
    a = submit(KEY_A, type="FilterA", queue="f-one", correlation_id="f-corr-1")
    b = submit(KEY_A, type="FilterB", queue="f-one", correlation_id="f-corr-1")
    c = submit(KEY_A, type="FilterA", queue="f-two", delay_ms=3600000)
    d = submit(KEY_A, type="FilterA", queue="f-two")
    e = submit(KEY_A, type="FilterB", queue="f-two", correlation_id="f-corr-2")
    db.sql(f"UPDATE jobs SET rule_id = '{rule}' WHERE id IN ('{b['id']}', '{e['id']}')")
    force_state(d["id"], "FAILED")
    force_state(e["id"], "DEAD")
    mine = {x["id"] for x in (a, b, c, d, e)}

    def ids(query):
        page = expect(get(f"/v1/jobs?limit=1000&{query}", KEY_A), 200)["jobs"]
        got = [j["id"] for j in page]
        assert got == sorted(got), got  # oldest first
        return [i for i in got if i in mine]

    assert ids("queue=f-one") == [a["id"], b["id"]]
    assert ids("queue=f-two") == [c["id"], d["id"], e["id"]]
    assert ids("type=FilterA") == [a["id"], c["id"], d["id"]]
    assert ids("type=FilterA&queue=f-two") == [c["id"], d["id"]]
    assert ids("correlation_id=f-corr-1") == [a["id"], b["id"]]
    assert ids("correlation_id=f-corr-1&type=FilterB") == [b["id"]]
    assert ids(f"rule_id={rule}") == [b["id"], e["id"]]
    assert ids(f"rule_id={rule.upper()}&queue=f-two") == [e["id"]]
    assert ids("state=PENDING&queue=f-one") == [a["id"], b["id"]]
    assert ids("state=SCHEDULED") == [c["id"]]
    assert ids("state=FAILED,DEAD") == [d["id"], e["id"]]
    assert ids("state=FAILED&state=DEAD") == [d["id"], e["id"]]
    assert ids("state=DEAD,FAILED&state=SCHEDULED&queue=f-two") == [c["id"], d["id"], e["id"]]
    assert ids("state=" + ",".join(STATES) + "&queue=f-two") == [c["id"], d["id"], e["id"]]
    assert ids("state=SUCCEEDED&queue=f-two") == []
    assert ids("queue=f-none") == []
    # Text filters are exact, any UTF-8, with separators of no meaning.
    odd = submit(KEY_A, type="Grüße ✓|t=1", correlation_id="a|c=b, c")
    assert ids_of(f"type={q('Grüße ✓|t=1')}") == [odd["id"]]
    assert ids_of(f"correlation_id={q('a|c=b, c')}&type={q('Grüße ✓|t=1')}") == [odd["id"]]
    assert ids_of(f"type={q('grüße ✓|t=1')}") == []
    for j in expect(get("/v1/jobs?state=FAILED,DEAD&limit=1000", KEY_A), 200)["jobs"]:
        assert j["state"] in ("FAILED", "DEAD"), j


def test_list_created_range():
    jobs = []
    for _ in range(3):
        jobs.append(submit(KEY_A, type="Ranged", queue="ranged"))
        time.sleep(0.005)
    first, middle, last = jobs
    assert first["created_at"] < middle["created_at"] < last["created_at"], jobs

    def ids(query):
        page = expect(get(f"/v1/jobs?queue=ranged&limit=1000&{query}", KEY_A), 200)["jobs"]
        return [j["id"] for j in page]

    # Both bounds are exclusive, to the millisecond.
    assert ids(f"created_after={q(first['created_at'])}") == [middle["id"], last["id"]]
    assert ids(f"created_before={q(last['created_at'])}") == [first["id"], middle["id"]]
    between = f"created_after={q(first['created_at'])}&created_before={q(last['created_at'])}"
    assert ids(between) == [middle["id"]]
    within = f"created_after={q(middle['created_at'])}&created_before={q(middle['created_at'])}"
    assert ids(within) == []
    # Any RFC 3339 form: an offset, more fraction digits (truncated).
    at = datetime.datetime.strptime(middle["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    shifted = (at + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]
    shifted += "999+01:00"
    assert ids(f"created_before={q(shifted)}") == [first["id"]], shifted
    assert ids(f"created_after={q(shifted)}") == [last["id"]], shifted
    assert ids("created_after=1970-01-01T00:00:00Z") == [j["id"] for j in jobs]
    assert ids("created_before=1970-01-01T00:00:00Z") == []
    assert ids("created_after=9999-12-31T23:59:59.999Z") == []
    assert ids("created_before=9999-12-31T23:59:59.999Z") == [j["id"] for j in jobs]
    assert ids("created_after=1900-01-01T00:00:00Z&created_before=1901-01-01T00:00:00Z") == []


def test_list_bad_queries_are_422():
    before = db.sql("SELECT count(*) FROM jobs")
    for query, field in (("state=BOGUS", "state"), ("state=pending", "state"), ("state=", "state"),
                         ("state=FAILED,,DEAD", "state"), ("state=FAILED,", "state"),
                         ("state=FAILED&state=NOPE", "state"), ("queue=", "queue"),
                         ("queue=no%20spaces", "queue"), ("queue=" + "q" * 129, "queue"),
                         ("queue=a&queue=b", "queue"), ("type=", "type"),
                         ("type=" + "t" * 129, "type"), ("type=%FF%FE", "type"),
                         ("type=%C0%AF", "type"), ("correlation_id=%ED%A0%80", "correlation_id"),
                         ("correlation_id=%F4%90%80%80", "correlation_id"),
                         ("correlation_id=" + "c" * 256, "correlation_id"),
                         ("rule_id=nope", "rule_id"), ("rule_id=1234", "rule_id"),
                         ("created_after=yesterday", "created_after"),
                         ("created_after=2026-02-30T00:00:00Z", "created_after"),
                         ("created_before=2026-01-01", "created_before"),
                         ("created_before=2026-01-01T00:00:00", "created_before"),
                         ("created_after=2026-01-01T00:00:00Z&created_after=2026-01-02T00:00:00Z",
                          "created_after"),
                         ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=-1", "limit"),
                         ("limit=abc", "limit"), ("limit=", "limit"), ("limit=5&limit=6", "limit"),
                         ("cursor=%21%21", "cursor"), ("cursor=", "cursor"),
                         ("stat=FAILED", "stat"), ("offset=10", "offset")):
        body = expect(get(f"/v1/jobs?{query}", KEY_A), 422, "validation_failed", field)
        assert body["error"]["message"].startswith(field), body
    for query, field in (("queue=no%20spaces", "queue"), ("state=DEAD", "state"),
                         ("limit=0", "limit"), ("cursor=abc", "cursor"), ("type=x", "type")):
        expect(get(f"/v1/dead-letter?{query}", KEY_A), 422, "validation_failed", field)
    assert db.sql("SELECT count(*) FROM jobs") == before


# ---- GET /v1/jobs: cursors ----

def test_pagination_walks_every_job_once():
    jobs = submit_many(KEY_A, [{"type": "Paged", "queue": "paged", "payload": {"n": i}}
                               for i in range(23)])
    want = [j["id"] for j in jobs]
    assert want == sorted(want), want
    for limit in (1, 5, 23, 22, 24, 1000):
        got, pages = walk("/v1/jobs?queue=paged", KEY_A, limit)
        assert got == want, (limit, got)
        assert pages == max(1, -(-23 // limit)), (limit, pages)  # no empty last page
    # Filters and a created range combine with the cursor.
    after = q(jobs[9]["created_at"])
    got, _ = walk(f"/v1/jobs?queue=paged&type=Paged&created_after={after}", KEY_A, 4)
    assert got == [j["id"] for j in jobs if j["created_at"] > jobs[9]["created_at"]], got
    # The last page says so.
    page = expect(get("/v1/jobs?queue=paged&limit=23", KEY_A), 200)
    assert page["next_cursor"] is None and len(page["jobs"]) == 23, page


def test_cursor_is_refused_elsewhere():
    submit_many(KEY_A, [{"type": "Cur", "queue": "cur-a"} for _ in range(3)])
    submit_many(KEY_B, [{"type": "Cur", "queue": "cur-a"} for _ in range(3)])
    page = expect(get("/v1/jobs?queue=cur-a&limit=1", KEY_A), 200)
    cursor = page["next_cursor"]
    assert cursor, page
    ok = expect(get(f"/v1/jobs?queue=cur-a&limit=1&cursor={q(cursor)}", KEY_A), 200)
    assert ok["jobs"][0]["id"] > page["jobs"][0]["id"], ok
    # The limit may change between pages; the filters may not.
    expect(get(f"/v1/jobs?queue=cur-a&limit=50&cursor={q(cursor)}", KEY_A), 200)
    for query, token, kw in (("queue=cur-b", KEY_A, {}), ("queue=cur-a&type=Cur", KEY_A, {}),
                             ("", KEY_A, {}), ("queue=cur-a&state=PENDING", KEY_A, {}),
                             ("queue=cur-a", KEY_B, {}), ("queue=cur-a", ADMIN,
                                                          {"tenant": TENANT_B})):
        path = f"/v1/jobs?{query + '&' if query else ''}cursor={q(cursor)}"
        body = expect(get(path, token, **kw), 422, "validation_failed", "cursor")
        assert "another query" in body["error"]["message"], body
    expect(get(f"/v1/dead-letter?queue=cur-a&cursor={q(cursor)}", KEY_A), 422, field="cursor")
    # The same query through the admin token acting for A is the same query.
    expect(get(f"/v1/jobs?queue=cur-a&cursor={q(cursor)}", ADMIN, tenant=TENANT_A), 200)
    # Forged: any changed character breaks the signature.
    for i in (0, 10, 30, 60, 65):
        forged = cursor[:i] + ("A" if cursor[i] != "A" else "B") + cursor[i + 1:]
        expect(get(f"/v1/jobs?queue=cur-a&cursor={q(forged)}", KEY_A), 422, field="cursor")
    for junk in ("x", cursor + "A", cursor[:-1], "=" * 66, base64.b64encode(b"\x01" * 49).decode()):
        expect(get(f"/v1/jobs?queue=cur-a&cursor={q(junk)}", KEY_A), 422, field="cursor")
    # Signed but too old (a week), or from the future.
    now = int(time.time() * 1000)
    fresh = resign(cursor, issued_ms=now)
    expect(get(f"/v1/jobs?queue=cur-a&cursor={q(fresh)}", KEY_A), 200)
    stale = resign(cursor, issued_ms=now - 8 * 24 * 3600 * 1000)
    body = expect(get(f"/v1/jobs?queue=cur-a&cursor={q(stale)}", KEY_A), 422, field="cursor")
    assert "expired" in body["error"]["message"], body
    future = resign(cursor, issued_ms=now + 3600 * 1000)
    expect(get(f"/v1/jobs?queue=cur-a&cursor={q(future)}", KEY_A), 422, field="cursor")
    # A signed cursor past the greatest id gives an empty last page.
    end = resign(cursor, last_id="ffffffff-ffff-ffff-ffff-ffffffffffff")
    assert expect(get(f"/v1/jobs?queue=cur-a&cursor={q(end)}", KEY_A), 200) == \
        {"jobs": [], "next_cursor": None}


def test_pagination_under_concurrent_inserts():
    """A writer keeps inserting into the same queue while a reader pages
    through it: every job that existed when paging started is seen exactly
    once, in order, and nothing is seen twice."""
    existing = []
    for _ in range(4):
        existing += [j["id"] for j in submit_many(
            KEY_A, [{"type": "Conc", "queue": "conc"} for _ in range(30)])]
    stop = threading.Event()
    inserted = []
    errors = []

    def writer():
        while not stop.is_set():
            try:
                status, _, body = tf.request("POST", "/v1/jobs", {"type": "Conc", "queue": "conc"},
                                             headers=auth(KEY_A))
                if status != 201:
                    errors.append((status, body))
                    return
                inserted.append(body["id"])
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.05)
        seen, cursor, pages, during = [], None, 0, 0
        while True:
            url = "/v1/jobs?queue=conc&limit=7" + (f"&cursor={q(cursor)}" if cursor else "")
            page = expect(get(url, KEY_A), 200)
            seen += [j["id"] for j in page["jobs"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
            # Once past the jobs that existed, page a little longer while
            # the writers go on, then let the listing run out.
            if max(existing) in seen and not stop.is_set():
                during += 1
                if during == 5:
                    stop.set()
            assert pages < 2000, "the listing never ends"
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert len(inserted) > 10, f"the writer inserted only {len(inserted)} jobs"
    assert len(seen) == len(set(seen)), "a job was listed twice"
    assert seen == sorted(seen), "pages are not in id order"
    missing = set(existing) - set(seen)
    assert not missing, f"{len(missing)} existing jobs were skipped"
    assert set(seen) <= set(existing) | set(inserted), "listed a job nobody created"


# ---- attempts and events ----

def test_attempts():
    job = submit(KEY_A, type="Tried", queue="tried")
    path = f"/v1/jobs/{job['id']}/attempts"
    assert expect(get(path, KEY_A), 200) == {"attempts": []}
    claim(job["id"], worker="w-7")
    running = expect(get(path, KEY_A), 200)["attempts"]
    assert len(running) == 1, running
    r = running[0]
    assert r["attempt"] == 1 and r["outcome"] == "running" and r["worker"] == "w-7", r
    assert r["finished_at"] is None and r["duration_ms"] is None and r["error"] is None, r
    assert r["started_at"].endswith("Z"), r
    # The attempt ends (DEAD after a retryable failure), then every outcome
    # the table can hold, oldest first.
    finish(job["id"], "DEAD", worker="w-7")
    outcomes = {0: "succeeded", 1: "failed", 2: "failed", 3: "timeout", 4: "lease_expired",
                5: "cancelled"}
    for n, outcome in outcomes.items():
        err = "NULL, NULL" if n in (0, 5) else f"'E{n}', 'message {n}'"
        db.sql(f"INSERT INTO job_attempts (tenant_id, job_id, attempt, worker, lease_token, "
               f"started_at, finished_at, duration_ms, outcome, error_type, error_message) "
               f"VALUES ('{TENANT_A}', '{job['id']}', {n + 1}, 'w-{n}', gen_random_uuid(), "
               f"now() + interval '{n + 1} seconds', now() + interval '{n + 2} seconds', 1000, "
               f"{n}, {err})")
    got = expect(get(path, KEY_A), 200)["attempts"]
    assert len(got) == 7, got
    first = got[0]
    assert first["outcome"] == "failed" and first["error"] == {"type": "Boom",
                                                               "message": "it broke"}, first
    assert first["worker"] == "w-7" and first["duration_ms"] == 5, first
    for n, outcome in outcomes.items():
        a = got[n + 1]
        assert a["attempt"] == n + 1 and a["outcome"] == outcome and a["worker"] == f"w-{n}", a
        assert a["duration_ms"] == 1000 and a["finished_at"] > a["started_at"], a
        want = None if n in (0, 5) else {"type": f"E{n}", "message": f"message {n}"}
        assert a["error"] == want, a
    assert [a["started_at"] for a in got] == sorted(a["started_at"] for a in got), got
    for a in got:
        assert set(a) == {"attempt", "worker", "started_at", "finished_at", "duration_ms",
                          "outcome", "error"}, a


def test_events():
    parent = submit(KEY_A, type="Evented")
    path = f"/v1/jobs/{parent['id']}/events"
    events = expect(get(path, KEY_A), 200)["events"]
    assert len(events) == 1, events
    e = events[0]
    assert set(e) == {"id", "from", "to", "at", "reason", "actor"}, e
    assert e["from"] is None and e["to"] == "PENDING" and e["at"] == parent["created_at"], e
    force_state(parent["id"], "FAILED")
    events = expect(get(path, KEY_A), 200)["events"]
    assert [(x["from"], x["to"]) for x in events] == [
        (None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "FAILED")], events
    assert [x["id"] for x in events] == sorted(x["id"] for x in events), events
    assert events[1]["actor"] == "w-1", events
    # Every state name comes out as the API spells it.
    db.sql(f"INSERT INTO job_events (tenant_id, job_id, from_state, to_state, reason, actor) "
           f"SELECT '{TENANT_A}', '{parent['id']}', s, (s + 1) % 7, NULL, NULL "
           f"FROM generate_series(0, 6) s")
    events = expect(get(path, KEY_A), 200)["events"]
    tail = events[-7:]
    assert [x["from"] for x in tail] == STATES, tail
    assert [x["to"] for x in tail] == STATES[1:] + STATES[:1], tail
    assert tail[0]["reason"] is None and tail[0]["actor"] is None, tail


# ---- the dead letter ----

def test_dead_letter_listing():
    jobs = submit_many(KEY_A, [{"type": "Dies", "queue": f"dl-{i % 2}"} for i in range(7)])
    alive = submit(KEY_A, type="Lives", queue="dl-0")
    failed = submit(KEY_A, type="Fails", queue="dl-0")
    for j in jobs:
        force_state(j["id"], "DEAD")
    force_state(failed["id"], "FAILED")
    mine = {j["id"] for j in jobs}
    everything, _ = walk("/v1/dead-letter", KEY_A, 2)
    assert [i for i in everything if i in mine] == [j["id"] for j in jobs], everything
    assert alive["id"] not in everything and failed["id"] not in everything
    zero, _ = walk("/v1/dead-letter?queue=dl-0", KEY_A, 3)
    assert zero == [j["id"] for j in jobs if j["queue"] == "dl-0"], zero
    page = expect(get("/v1/dead-letter?queue=dl-1&limit=1000", KEY_A), 200)
    assert page["next_cursor"] is None, page
    for j in page["jobs"]:
        assert set(j) == JOB_KEYS and j["state"] == "DEAD" and j["queue"] == "dl-1", j
        assert j["last_error"] == {"type": "Boom", "message": "it broke"}, j
    # A dead-letter cursor belongs to its queue.
    first = expect(get("/v1/dead-letter?queue=dl-0&limit=1", KEY_A), 200)
    expect(get(f"/v1/dead-letter?queue=dl-1&cursor={q(first['next_cursor'])}", KEY_A), 422,
           field="cursor")
    expect(get(f"/v1/jobs?queue=dl-0&cursor={q(first['next_cursor'])}", KEY_A), 422,
           field="cursor")
    expect(get(f"/v1/dead-letter?queue=dl-0&cursor={q(first['next_cursor'])}", KEY_A), 200)


db = Database("jobs_read")
tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN})
try:
    TENANT_A, KEY_A, _ = new_tenant("reader-a")
    TENANT_B, KEY_B, _ = new_tenant("reader-b")
    run_tests([test_get_job, test_get_unknown_and_malformed_ids_are_404,
               test_other_tenant_gets_404_everywhere, test_tokens, test_list_filters,
               test_list_created_range, test_list_bad_queries_are_422,
               test_pagination_walks_every_job_once, test_cursor_is_refused_elsewhere,
               test_pagination_under_concurrent_inserts, test_attempts, test_events,
               test_dead_letter_listing])
finally:
    tf.stop()
    db.drop()
