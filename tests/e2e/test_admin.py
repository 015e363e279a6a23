"""The operator API (/v1/admin/...) against the real server: tenants, API
keys, queues and tenant-in-queue caps.  Every endpoint's happy path; every
bad input answered with a clear 4xx that names the field and changes nothing;
only the admin token gets in (a missing, wrong, revoked or tenant token is
401 on every route); a revoked key stops working at once; tenant listing
pages are complete, ordered and without repeats; cursors cannot be forged or
reused across lists; PATCH merges attributes; concurrent PUTs of one queue.
"""
import base64
import hashlib
import hmac
import json
import re
import struct
import threading
import time
import urllib.parse
import uuid

from tfharness import Database, TaskFlow, fail, is_uuid, run_tests, status_of

ADMIN = "tf-admin-" + uuid.uuid4().hex
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NIL = "00000000-0000-0000-0000-000000000000"
UNKNOWN = "01900000-0000-7000-8000-000000000001"
TENANT_KEYS = {"id", "name", "plan", "weight", "max_running", "attributes", "created_at",
               "updated_at"}
STATES = ["PENDING", "SCHEDULED", "RUNNING", "SUCCEEDED", "FAILED", "DEAD", "CANCELLED"]


# ---- helpers ----

def auth(token=ADMIN):
    return {"Authorization": f"Bearer {token}"}


def req(method, path, body=None, token=ADMIN, headers=None):
    hdrs = auth(token) if token is not None else {}
    hdrs.update(headers or {})
    return tf.request(method, path, body=body, headers=hdrs)


def expect(answer, status, code=None, field=None):
    """Asserts the status (and error code / details.field); returns the body."""
    got, headers, body = answer
    if got != status:
        fail(f"status {got}, want {status}: {str(body)[:500]}")
    if code is not None:
        assert isinstance(body, dict) and body["error"]["code"] == code, body
        assert body["error"]["message"], body
    if field is not None:
        assert body["error"]["details"].get("field") == field, (field, body)
    return body


def snapshot():
    """Everything the operator API can write, as text."""
    return db.sql("SELECT (SELECT coalesce(json_agg(t ORDER BY id), '[]') FROM tenants t)::text"
                  " || (SELECT coalesce(json_agg(k ORDER BY id), '[]') FROM api_keys k)::text"
                  " || (SELECT coalesce(json_agg(q ORDER BY name), '[]') FROM queues q)::text"
                  " || (SELECT coalesce(json_agg(x ORDER BY tenant_id, queue), '[]') "
                  "     FROM tenant_queues x)::text")


def unchanged(before, what):
    after = snapshot()
    if after != before:
        fail(f"{what} changed the database")


def new_tenant(name=None, **fields):
    body = {"name": name or f"t-{uuid.uuid4().hex[:12]}", **fields}
    return expect(req("POST", "/v1/admin/tenants", body), 201)


def new_key(tenant_id, body=None):
    return expect(req("POST", f"/v1/admin/tenants/{tenant_id}/keys", body), 201)


def check_tenant(t):
    assert set(t) == TENANT_KEYS, t
    assert is_uuid(t["id"]) and uuid.UUID(t["id"]).version == 7, t
    assert TIME_RE.match(t["created_at"]) and TIME_RE.match(t["updated_at"]), t


def cursor_key():
    return bytes.fromhex(db.sql("SELECT value FROM settings WHERE key = 'cursor_key'"))


def make_cursor(scope, last_id, issued_ms, key=None):
    """A cursor as adapters/app/cursor.c makes one (layout in its comment)."""
    body = (bytes([1]) + struct.pack(">Q", issued_ms) + hashlib.sha256(scope.encode()).digest()[:8]
            + uuid.UUID(last_id).bytes)
    mac = hmac.new(key or cursor_key(), body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")


def list_page(limit=None, cursor=None):
    query = {}
    if limit is not None:
        query["limit"] = limit
    if cursor is not None:
        query["cursor"] = cursor
    path = "/v1/admin/tenants" + ("?" + urllib.parse.urlencode(query) if query else "")
    return req("GET", path)


def all_tenant_ids(limit):
    seen, cursor = [], None
    for _ in range(1000):
        page = expect(list_page(limit, cursor), 200)
        assert set(page) == {"tenants", "next_cursor"}, page
        assert len(page["tenants"]) <= limit, page
        seen += [t["id"] for t in page["tenants"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    fail("pagination did not end")


# ---- tenants ----

def test_create_tenant_with_defaults_and_all_fields():
    t = new_tenant("acme-defaults")
    check_tenant(t)
    assert t["name"] == "acme-defaults" and t["plan"] == "free" and t["weight"] == 1, t
    assert t["max_running"] is None and t["attributes"] == {}, t
    assert t["created_at"] == t["updated_at"], t
    full = new_tenant("acme-full", plan="pro", weight=1000, max_running=0,
                      attributes={"usage": 1200, "region": "eu", "nested": {"a": [1, None]}})
    check_tenant(full)
    assert (full["plan"], full["weight"], full["max_running"]) == ("pro", 1000, 0), full
    assert full["attributes"] == {"usage": 1200, "region": "eu", "nested": {"a": [1, None]}}
    assert uuid.UUID(full["id"]) > uuid.UUID(t["id"]), "ids are time ordered"
    # Byte limits, not characters: 128 bytes of UTF-8 is fine.
    edge = new_tenant("é" * 64, plan="p" * 128, max_running=2147483647)
    assert edge["name"] == "é" * 64 and edge["max_running"] == 2147483647, edge
    # What GET shows is what POST answered; the secret is 32 random bytes.
    assert expect(req("GET", f"/v1/admin/tenants/{full['id']}"), 200) == full
    assert db.sql(f"SELECT octet_length(signing_secret) FROM tenants WHERE id = '{t['id']}'") == "32"
    assert db.sql("SELECT count(DISTINCT signing_secret) = count(*) FROM tenants") == "t"


def test_duplicate_tenant_name_is_409():
    t = new_tenant("dup-name")
    before = snapshot()
    expect(req("POST", "/v1/admin/tenants", {"name": "dup-name", "plan": "other"}), 409,
           "conflict", "name")
    unchanged(before, "a duplicate name")
    assert expect(req("GET", f"/v1/admin/tenants/{t['id']}"), 200) == t


def test_bad_tenant_bodies_are_refused_and_change_nothing():
    before = snapshot()
    name = {"name": "never-created"}
    cases = [
        ({}, "name"),
        ({"plan": "pro"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"name": "é" * 65}, "name"),  # 130 bytes
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": ["a"]}, "name"),
        ({**name, "plan": ""}, "plan"),
        ({**name, "plan": "p" * 129}, "plan"),
        ({**name, "plan": None}, "plan"),
        ({**name, "weight": 0}, "weight"),
        ({**name, "weight": 1001}, "weight"),
        ({**name, "weight": -1}, "weight"),
        ({**name, "weight": 1.5}, "weight"),
        ({**name, "weight": 2.0}, "weight"),
        ({**name, "weight": "2"}, "weight"),
        ({**name, "weight": True}, "weight"),
        ({**name, "weight": None}, "weight"),
        ({**name, "weight": 10 ** 18}, "weight"),
        ({**name, "max_running": -1}, "max_running"),
        ({**name, "max_running": 2147483648}, "max_running"),
        ({**name, "max_running": "5"}, "max_running"),
        ({**name, "max_running": 1.0}, "max_running"),
        ({**name, "attributes": []}, "attributes"),
        ({**name, "attributes": "x"}, "attributes"),
        ({**name, "attributes": None}, "attributes"),
        ({**name, "colour": "red"}, "colour"),
        ({**name, "id": str(uuid.uuid4())}, "id"),
        ({**name, "signing_secret": "00"}, "signing_secret"),
        ({**name, "created_at": "2026-01-01T00:00:00.000Z"}, "created_at"),
    ]
    for body, field in cases:
        answer = req("POST", "/v1/admin/tenants", body)
        expect(answer, 422, "validation_failed", field)
        assert field in answer[2]["error"]["message"], answer[2]
    # Not an object, not JSON, not UTF-8, not application/json, empty.
    for raw in ([], "x", None, 3):
        expect(req("POST", "/v1/admin/tenants", json.dumps(raw),
                   headers={"Content-Type": "application/json"}), 422, "validation_failed",
               "body")
    for data in (b'{"name": "x"', b'{"name": "x"} trailing', b"{name: 'x'}", b"",
                 b'{"name": "\xff\xfe"}', b'{"name": "a\xc3"}', b'{"name": "\xed\xa0\x80"}',
                 b'{"name": "nul\\u0000"}'):
        expect(req("POST", "/v1/admin/tenants", data,
                   headers={"Content-Type": "application/json"}), 400, "invalid_json")
    expect(req("POST", "/v1/admin/tenants", json.dumps(name).encode(),
               headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    expect(req("POST", "/v1/admin/tenants", json.dumps(name).encode()), 415,
           "unsupported_media_type")
    unchanged(before, "a bad tenant body")


def test_body_over_the_limit_is_413():
    before = snapshot()
    head = (f"POST /v1/admin/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n")
    answer = tf.raw(head.encode())
    assert status_of(answer) == 413, answer[:300]
    assert b"payload_too_large" in answer, answer[:300]
    # A real body just over the limit (1 MiB by default) is refused as well.
    big = json.dumps({"name": "too-big", "attributes": {"blob": "x" * (1024 * 1024)}})
    try:
        status = req("POST", "/v1/admin/tenants", big,
                     headers={"Content-Type": "application/json"})[0]
    except (ConnectionResetError, BrokenPipeError):
        status = 413  # answered from the head and closed before the body was sent
    assert status == 413, status
    unchanged(before, "an oversized body")


def test_get_tenant_unknown_or_non_uuid_is_404():
    t = new_tenant()
    assert expect(req("GET", f"/v1/admin/tenants/{t['id'].upper()}"), 200) == t
    for bad in (UNKNOWN, NIL, "abc", "123", t["id"] + "0", t["id"][:-1], t["id"].replace("-", ""),
                "%20" + t["id"], "' OR 1=1 --"):
        expect(req("GET", f"/v1/admin/tenants/{urllib.parse.quote(bad, safe='%')}"), 404,
               "not_found")


def test_list_tenants_pages_without_repeats():
    for i in range(7):
        new_tenant(f"page-{i}")
    every = db.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM tenants").split(",")
    for limit in (1, 2, 3, 1000):
        seen = all_tenant_ids(limit)
        assert seen == every, (limit, seen, every)
    page = expect(list_page(), 200)  # default limit 50 > tenants so far
    assert [t["id"] for t in page["tenants"]] == every and page["next_cursor"] is None, page
    for t in page["tenants"]:
        check_tenant(t)
    # Rows inserted while paging show up at the end, never twice.
    first = expect(list_page(3), 200)
    late = new_tenant("late-arrival")
    seen = [t["id"] for t in first["tenants"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = expect(list_page(3, cursor), 200)
        seen += [t["id"] for t in page["tenants"]]
        cursor = page["next_cursor"]
    assert seen == every + [late["id"]], seen
    # An exact multiple of the page size ends with a page, then null.
    n = len(seen)
    page = expect(list_page(n), 200)
    assert len(page["tenants"]) == n and page["next_cursor"] is None, page


def test_bad_limit_and_cursor_are_422():
    new_tenant()
    new_tenant()
    for limit in ("0", "1001", "-1", "abc", "", "1.5", "2x", "99999999999999999999"):
        expect(req("GET", "/v1/admin/tenants?limit=" + urllib.parse.quote(limit)), 422,
               "validation_failed", "limit")
    real = expect(list_page(1), 200)["next_cursor"]
    assert real and re.match(r"^[A-Za-z0-9_-]+$", real), real
    tampered = real[:20] + ("A" if real[20] != "A" else "B") + real[21:]
    last = db.sql("SELECT id FROM tenants ORDER BY id LIMIT 1")
    now = int(time.time() * 1000)
    bad = [
        "", "garbage", "x" * 66, "x" * 5000, real + "A", real[:-1], tampered, real.lower(),
        real.replace("-", "+").replace("_", "/") if ("-" in real or "_" in real) else real + "=",
        make_cursor("tenants", last, now, key=b"\x00" * 32),       # forged: another key
        make_cursor("jobs:" + UNKNOWN, last, now),                 # another list
        make_cursor("dead-letter", last, now),                     # another list
        make_cursor("tenants", last, now - 8 * 24 * 3600 * 1000),  # expired
        make_cursor("tenants", last, now + 3600 * 1000),           # issued in the future
    ]
    for cursor in bad:
        expect(list_page(1, cursor), 422, "validation_failed", "cursor")
    # The test's own cursor maker is right: a fresh, correctly signed one works.
    good = expect(list_page(1, make_cursor("tenants", last, now)), 200)
    assert good["tenants"][0]["id"] > last, good


def test_cursor_of_the_jobs_list_is_refused():
    """A cursor a tenant got from GET /v1/jobs does not page the tenants."""
    t = new_tenant()
    key = new_key(t["id"])["token"]
    for i in range(2):
        status, _, body = tf.request("POST", "/v1/jobs", body={"type": f"T{i}"},
                                     headers=auth(key))
        if status != 201:
            fail(f"POST /v1/jobs is needed for this test: {status} {body}")
    status, _, page = tf.request("GET", "/v1/jobs?limit=1", headers=auth(key))
    if status != 200 or not page.get("next_cursor"):
        fail(f"GET /v1/jobs gave no cursor: {status} {page}")
    expect(list_page(1, page["next_cursor"]), 422, "validation_failed", "cursor")


def test_patch_merges_attributes():
    t = new_tenant(attributes={"usage": 1, "region": "eu", "deep": {"a": 1, "b": 2}, "keep": True})
    one = f"/v1/admin/tenants/{t['id']}"
    time.sleep(0.01)
    p = expect(req("PATCH", one, {"attributes": {"usage": 2, "region": None, "new": [1],
                                                 "deep": {"c": 3}, "absent": None}}), 200)
    # Top level merged; null removes; nested objects are replaced, not merged.
    assert p["attributes"] == {"usage": 2, "new": [1], "deep": {"c": 3}, "keep": True}, p
    assert p["updated_at"] > t["updated_at"] and p["created_at"] == t["created_at"], p
    assert {k: p[k] for k in ("name", "plan", "weight", "max_running")} == \
        {k: t[k] for k in ("name", "plan", "weight", "max_running")}, p
    # Nested nulls are values, not removals.
    p = expect(req("PATCH", one, {"attributes": {"deep": {"x": None}}}), 200)
    assert p["attributes"]["deep"] == {"x": None}, p
    # An empty attributes object and an empty body change nothing.
    before = snapshot()
    assert expect(req("PATCH", one, {}), 200) == p
    unchanged(before, "an empty PATCH")
    q = expect(req("PATCH", one, {"attributes": {}}), 200)
    assert q["attributes"] == p["attributes"], q
    assert expect(req("GET", one), 200) == q


def test_patch_other_fields():
    t = new_tenant(max_running=3)
    one = f"/v1/admin/tenants/{t['id']}"
    p = expect(req("PATCH", one, {"name": t["name"] + "-renamed", "plan": "pro", "weight": 7}), 200)
    assert (p["name"], p["plan"], p["weight"], p["max_running"]) == \
        (t["name"] + "-renamed", "pro", 7, 3), p
    p = expect(req("PATCH", one, {"max_running": None}), 200)
    assert p["max_running"] is None and p["weight"] == 7, p
    p = expect(req("PATCH", one, {"max_running": 0}), 200)
    assert p["max_running"] == 0, p
    # Keeping its own name is not a conflict.
    expect(req("PATCH", one, {"name": p["name"]}), 200)


def test_bad_patches_change_nothing():
    t = new_tenant(attributes={"a": 1})
    other = new_tenant()
    one = f"/v1/admin/tenants/{t['id']}"
    before = snapshot()
    expect(req("PATCH", one, {"name": other["name"]}), 409, "conflict", "name")
    cases = [
        ({"colour": 1}, "colour"),
        ({"attributes": {"b": 2}, "colour": 1}, "colour"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"plan": None}, "plan"),
        ({"plan": "p" * 129}, "plan"),
        ({"weight": 0}, "weight"),
        ({"weight": 1001}, "weight"),
        ({"weight": None}, "weight"),
        ({"weight": "3"}, "weight"),
        ({"max_running": -5}, "max_running"),
        ({"max_running": True}, "max_running"),
        ({"attributes": None}, "attributes"),
        ({"attributes": [1]}, "attributes"),
        ({"attributes": {"b": 2}, "weight": 0}, "weight"),
        ({"id": other["id"]}, "id"),
    ]
    for body, field in cases:
        expect(req("PATCH", one, body), 422, "validation_failed", field)
    expect(req("PATCH", one, b"[1]", headers={"Content-Type": "application/json"}), 422,
           "validation_failed", "body")
    expect(req("PATCH", one, b'{"name":', headers={"Content-Type": "application/json"}), 400,
           "invalid_json")
    expect(req("PATCH", one, b'{"plan": "\xc0\xaf"}',
               headers={"Content-Type": "application/json"}), 400, "invalid_json")
    expect(req("PATCH", one, b"", headers={"Content-Type": "application/json"}), 400)
    expect(req("PATCH", one, b'{"plan": "x"}', headers={"Content-Type": "text/json"}), 415)
    expect(req("PATCH", f"/v1/admin/tenants/{UNKNOWN}", {"plan": "x"}), 404, "not_found")
    expect(req("PATCH", "/v1/admin/tenants/not-a-uuid", {"plan": "x"}), 404, "not_found")
    unchanged(before, "a bad PATCH")


# ---- API keys ----

def test_create_keys():
    t = new_tenant()
    keys = f"/v1/admin/tenants/{t['id']}/keys"
    made = [expect(req("POST", keys), 201),                          # no body at all
            expect(req("POST", keys, {}), 201),
            expect(req("POST", keys, {"name": "ci"}), 201),
            expect(req("POST", keys, b"", headers={"Content-Type": "application/json"}), 201)]
    for k in made:
        assert set(k) == {"id", "token", "tenant_id", "created_at"}, k
        assert re.match(r"^tf_[A-Za-z0-9_-]{43}$", k["token"]), k
        assert is_uuid(k["id"]) and k["tenant_id"] == t["id"], k
        assert TIME_RE.match(k["created_at"]), k
        row = db.sql(f"SELECT encode(token_hash, 'hex') || ' ' || prefix FROM api_keys "
                     f"WHERE id = '{k['id']}'").split(" ")
        # Only the hash is stored, with the first 11 characters as a prefix.
        assert row == [hashlib.sha256(k["token"].encode()).hexdigest(), k["token"][:11]], row
    assert len({k["token"] for k in made}) == len(made)
    assert db.sql(f"SELECT name FROM api_keys WHERE id = '{made[2]['id']}'") == "ci"
    for k in made:  # the token itself is stored nowhere
        assert db.sql(f"SELECT count(*) FROM api_keys k "
                      f"WHERE k::text LIKE '%{k['token'][11:]}%'") == "0"
    # The key works on a tenant route at once.
    status, _, body = tf.request("GET", f"/v1/jobs/{UNKNOWN}", headers=auth(made[0]["token"]))
    assert status == 404, (status, body)


def test_bad_key_requests_change_nothing():
    t = new_tenant()
    keys = f"/v1/admin/tenants/{t['id']}/keys"
    before = snapshot()
    for body, field in (({"name": ""}, "name"), ({"name": "n" * 129}, "name"),
                        ({"name": 3}, "name"), ({"name": None}, "name"),
                        ({"label": "x"}, "label"), ({"tenant_id": t["id"]}, "tenant_id")):
        expect(req("POST", keys, body), 422, "validation_failed", field)
    expect(req("POST", keys, b"[]", headers={"Content-Type": "application/json"}), 422,
           "validation_failed", "body")
    expect(req("POST", keys, b"{", headers={"Content-Type": "application/json"}), 400,
           "invalid_json")
    expect(req("POST", keys, b'{"name": "\xff"}', headers={"Content-Type": "application/json"}),
           400, "invalid_json")
    expect(req("POST", keys, b'{"name": "x"}', headers={"Content-Type": "text/plain"}), 415)
    expect(req("POST", f"/v1/admin/tenants/{UNKNOWN}/keys", {}), 404, "not_found")
    expect(req("POST", "/v1/admin/tenants/nope/keys", {}), 404, "not_found")
    unchanged(before, "a bad key request")


def test_revoke_key():
    t = new_tenant()
    other = new_tenant()
    k = new_key(t["id"])
    other_key = new_key(other["id"])
    keys = f"/v1/admin/tenants/{t['id']}/keys"
    before = snapshot()
    # The key of another tenant, unknown ids and non-UUIDs: 404, nothing revoked.
    expect(req("DELETE", f"{keys}/{other_key['id']}"), 404, "not_found")
    expect(req("DELETE", f"/v1/admin/tenants/{other['id']}/keys/{k['id']}"), 404, "not_found")
    expect(req("DELETE", f"{keys}/{UNKNOWN}"), 404, "not_found")
    expect(req("DELETE", f"{keys}/xyz"), 404, "not_found")
    expect(req("DELETE", f"/v1/admin/tenants/xyz/keys/{k['id']}"), 404, "not_found")
    unchanged(before, "a 404 DELETE")
    # The key works (and is now cached by this node)...
    for _ in range(3):
        status, _, body = tf.request("GET", f"/v1/jobs/{UNKNOWN}", headers=auth(k["token"]))
        assert status == 404, (status, body)
    status, headers, body = req("DELETE", f"{keys}/{k['id']}")
    assert status == 204 and body == "", (status, body)
    assert "content-type" not in headers, headers
    assert db.sql(f"SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = '{k['id']}'") == "t"
    # ...and stops working with the very next request, on every loop.
    for _ in range(6):
        status, headers, body = tf.request("GET", f"/v1/jobs/{UNKNOWN}",
                                           headers=auth(k["token"]))
        assert status == 401 and body["error"]["code"] == "unauthorized", (status, body)
    expect(req("DELETE", f"{keys}/{k['id']}"), 404, "not_found")  # already revoked
    # The other tenant's key is untouched.
    status, _, _ = tf.request("GET", f"/v1/jobs/{UNKNOWN}", headers=auth(other_key["token"]))
    assert status == 404, status


# ---- only the operator gets in ----

def admin_routes(tenant_id, key_id):
    t = f"/v1/admin/tenants/{tenant_id}"
    return [
        ("POST", "/v1/admin/tenants", {"name": "intruder"}),
        ("GET", "/v1/admin/tenants", None),
        ("GET", t, None),
        ("PATCH", t, {"plan": "stolen"}),
        ("POST", f"{t}/keys", {}),
        ("DELETE", f"{t}/keys/{key_id}", None),
        ("PUT", f"{t}/queues/intrusion", {"max_running": 1}),
        ("GET", "/v1/admin/queues", None),
        ("GET", "/v1/admin/queues/intrusion", None),
        ("PUT", "/v1/admin/queues/intrusion", {"max_running": 1}),
    ]


def test_every_admin_route_needs_the_admin_token():
    t = new_tenant()
    key = new_key(t["id"])
    revoked = new_key(t["id"])
    expect(req("DELETE", f"/v1/admin/tenants/{t['id']}/keys/{revoked['id']}"), 204)
    before = snapshot()
    refused = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {ADMIN}"},
        {"Authorization": f"Bearer {ADMIN}x"},
        {"Authorization": f"Bearer {ADMIN[:-1]}"},
        {"Authorization": f"Bearer {ADMIN.upper()}"},
        {"Authorization": "Bearer tf_nope"},
        {"Authorization": f"Bearer {key['token']}"},
        {"Authorization": f"Bearer {key['token']}", "TaskFlow-Tenant": t["id"]},
        {"Authorization": f"Bearer {revoked['token']}"},
    ]
    for method, path, body in admin_routes(t["id"], key["id"]):
        for headers in refused:
            status, rh, resp = tf.request(method, path, body=body, headers=headers)
            if status != 401:
                fail(f"{method} {path} with {headers}: {status}, want 401: {resp}")
            assert resp["error"]["code"] == "unauthorized", resp
            assert rh.get("www-authenticate", "").startswith("Bearer"), rh
    unchanged(before, "requests without the admin token")
    # The key itself still works on its own routes.
    status, _, _ = tf.request("GET", f"/v1/jobs/{UNKNOWN}", headers=auth(key["token"]))
    assert status == 404, status


# ---- queues ----

def check_queue(q, name):
    assert set(q) == {"name", "max_running", "paused", "created_at", "updated_at"}, q
    assert q["name"] == name and TIME_RE.match(q["created_at"]), q
    assert TIME_RE.match(q["updated_at"]), q


def test_put_queue_upserts_and_keeps_omitted_fields():
    q = "/v1/admin/queues/img.resize:v2_A-1"
    a = expect(req("PUT", q, {"max_running": 5}), 200)
    check_queue(a, "img.resize:v2_A-1")
    assert a["max_running"] == 5 and a["paused"] is False, a
    b = expect(req("PUT", q, {"paused": True}), 200)
    assert b["max_running"] == 5 and b["paused"] is True and b["created_at"] == a["created_at"], b
    c = expect(req("PUT", q, {}), 200)
    assert (c["max_running"], c["paused"]) == (5, True), c
    d = expect(req("PUT", q, {"max_running": None, "paused": False}), 200)
    assert (d["max_running"], d["paused"]) == (None, False), d
    e = expect(req("PUT", "/v1/admin/queues/fresh", {}), 200)
    assert (e["max_running"], e["paused"]) == (None, False), e
    f = expect(req("PUT", "/v1/admin/queues/zero", {"max_running": 0, "paused": True}), 200)
    assert (f["max_running"], f["paused"]) == (0, True), f
    assert db.sql("SELECT max_running || ' ' || paused FROM queues WHERE name = 'zero'") == "0 true"


def test_bad_queue_requests_change_nothing():
    expect(req("PUT", "/v1/admin/queues/stable", {"max_running": 2}), 200)
    before = snapshot()
    q = "/v1/admin/queues/stable"
    for body, field in (({"max_running": -1}, "max_running"),
                        ({"max_running": 1.5}, "max_running"),
                        ({"max_running": "3"}, "max_running"),
                        ({"max_running": 2147483648}, "max_running"),
                        ({"paused": "yes"}, "paused"), ({"paused": 1}, "paused"),
                        ({"paused": None}, "paused"), ({"name": "other"}, "name"),
                        ({"rate_per_second": 5}, "rate_per_second"),
                        ({"paused": True, "colour": 1}, "colour")):
        expect(req("PUT", q, body), 422, "validation_failed", field)
    expect(req("PUT", q, b"[]", headers={"Content-Type": "application/json"}), 422,
           "validation_failed", "body")
    expect(req("PUT", q, b"{", headers={"Content-Type": "application/json"}), 400, "invalid_json")
    expect(req("PUT", q, b"", headers={"Content-Type": "application/json"}), 400)
    expect(req("PUT", q, b'{"paused": true}', headers={"Content-Type": "text/plain"}), 415)
    # A NUL byte in the path is refused by the server before any route.
    expect(req("PUT", "/v1/admin/queues/a%00b", {"max_running": 1}), 400, "bad_request")
    for name in ("bad%20name", "%C3%A9t%C3%A9", "a%2Fb", "x" * 129, "semi%3Bcolon", "star*",
                 "%FF", "tab%09"):
        for method, body in (("PUT", {"max_running": 1}), ("GET", None)):
            expect(req(method, f"/v1/admin/queues/{name}", body), 422, "validation_failed",
                   "name")
        # The path is checked before the database: a bad name is 422 even for an
        # unknown tenant; a tenant id that is not a UUID is 404 first.
        expect(req("PUT", f"/v1/admin/tenants/{UNKNOWN}/queues/{name}", {"max_running": 1}),
               422, "validation_failed", "name")
        expect(req("PUT", f"/v1/admin/tenants/x/queues/{name}", {"max_running": 1}), 404,
               "not_found")
    unchanged(before, "a bad queue request")
    assert expect(req("GET", q), 200)["max_running"] == 2


def insert_job(tenant, queue, state, ready_age_s=None, running=False):
    jid = str(uuid.uuid4())
    db.sql(f"INSERT INTO jobs (tenant_id, id, queue, type, state) "
           f"VALUES ('{tenant}', '{jid}', '{queue}', 'T', {STATES.index(state)})")
    if ready_age_s is not None:
        db.sql(f"INSERT INTO ready (tenant_id, job_id, queue, builtin, sort_key, run_at) "
               f"VALUES ('{tenant}', '{jid}', '{queue}', false, now(), "
               f"now() - interval '{ready_age_s} seconds')")
    if running:
        db.sql(f"INSERT INTO running (tenant_id, job_id, queue, lease_expires_at, locked_by) "
               f"VALUES ('{tenant}', '{jid}', '{queue}', now() + interval '1 minute', 'w')")


def test_queue_status_counts_running_and_age():
    a, b = new_tenant()["id"], new_tenant()["id"]
    insert_job(a, "stats", "PENDING", ready_age_s=30)
    insert_job(b, "stats", "PENDING", ready_age_s=5)
    insert_job(a, "stats", "PENDING")  # waiting for a parent: not ready
    insert_job(a, "stats", "RUNNING", running=True)
    insert_job(a, "stats", "RUNNING", running=True)
    insert_job(b, "stats", "RUNNING", running=True)
    insert_job(a, "stats", "DEAD")
    insert_job(b, "stats", "SUCCEEDED")
    insert_job(b, "other-stats", "FAILED")
    s = expect(req("GET", "/v1/admin/queues/stats"), 200)
    assert s["name"] == "stats" and s["created_at"] is None and s["updated_at"] is None, s
    assert s["max_running"] is None and s["paused"] is False, s
    assert s["counts"] == {"PENDING": 3, "SCHEDULED": 0, "RUNNING": 3, "SUCCEEDED": 1,
                           "FAILED": 0, "DEAD": 1, "CANCELLED": 0}, s
    assert s["running_by_tenant"] == {a: 2, b: 1}, s
    assert 29 <= s["oldest_ready_age_seconds"] < 90, s
    expect(req("PUT", "/v1/admin/queues/stats", {"max_running": 4}), 200)
    s = expect(req("GET", "/v1/admin/queues/stats"), 200)
    assert s["max_running"] == 4 and TIME_RE.match(s["created_at"]), s
    assert s["counts"]["RUNNING"] == 3, s
    never = expect(req("GET", "/v1/admin/queues/never-seen"), 200)
    assert never == {"name": "never-seen", "max_running": None, "paused": False,
                     "created_at": None, "updated_at": None,
                     "counts": {k: 0 for k in STATES}, "running_by_tenant": {},
                     "oldest_ready_age_seconds": None}, never
    assert db.sql("SELECT count(*) FROM queues WHERE name = 'never-seen'") == "0"


def test_list_queues_has_defined_and_job_named_queues():
    t = new_tenant()["id"]
    insert_job(t, "named-by-job", "SCHEDULED")
    expect(req("PUT", "/v1/admin/queues/defined-only", {"paused": True}), 200)
    listing = expect(req("GET", "/v1/admin/queues"), 200)
    assert set(listing) == {"queues"}, listing
    names = [q["name"] for q in listing["queues"]]
    assert names == sorted(names, key=lambda n: n.encode()), names
    assert len(names) == len(set(names)), names
    by = {q["name"]: q for q in listing["queues"]}
    assert by["named-by-job"]["created_at"] is None, by["named-by-job"]
    assert by["named-by-job"]["counts"]["SCHEDULED"] == 1, by["named-by-job"]
    assert by["defined-only"]["paused"] is True, by["defined-only"]
    assert by["defined-only"]["counts"] == {k: 0 for k in STATES}, by["defined-only"]
    defined = db.sql("SELECT string_agg(name, ',') FROM queues").split(",")
    named = db.sql("SELECT string_agg(DISTINCT queue, ',') FROM jobs").split(",")
    assert set(names) == set(defined) | set(named), (names, defined, named)
    for q in listing["queues"]:  # the list shows what GET of each queue shows
        one = expect(req("GET", f"/v1/admin/queues/{q['name']}"), 200)
        age = "oldest_ready_age_seconds"  # moves with the clock
        assert (q[age] is None) == (one[age] is None), (q, one)
        assert {**q, age: None} == {**one, age: None}, (q, one)


def test_concurrent_puts_of_one_queue():
    path = "/v1/admin/queues/raced"
    results = []
    lock = threading.Lock()

    def put(i):
        answer = req("PUT", path, {"max_running": i, "paused": i % 2 == 0})
        with lock:
            results.append((i, answer))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 24
    for i, (status, _, body) in results:
        assert status == 200, (status, body)
        assert body["max_running"] == i and body["paused"] == (i % 2 == 0), (i, body)
    assert len({body["created_at"] for _, (_, _, body) in results}) == 1, results
    assert db.sql("SELECT count(*) FROM queues WHERE name = 'raced'") == "1"
    final = expect(req("GET", path), 200)
    assert final["max_running"] in range(24), final
    assert final["paused"] == (final["max_running"] % 2 == 0), final


def test_tenant_queue_caps():
    t = new_tenant()
    path = f"/v1/admin/tenants/{t['id']}/queues/emails"
    assert expect(req("PUT", path, {"max_running": 2}), 200) == \
        {"tenant_id": t["id"], "queue": "emails", "max_running": 2}
    assert expect(req("PUT", path, {"max_running": None}), 200)["max_running"] is None
    upper = f"/v1/admin/tenants/{t['id'].upper()}/queues/emails"
    assert expect(req("PUT", upper, {"max_running": 0}), 200) == \
        {"tenant_id": t["id"], "queue": "emails", "max_running": 0}
    assert db.sql(f"SELECT count(*) || ' ' || max(max_running) FROM tenant_queues "
                  f"WHERE tenant_id = '{t['id']}'") == "1 0"
    before = snapshot()
    for body, field in (({}, "max_running"), ({"max_running": -1}, "max_running"),
                        ({"max_running": "2"}, "max_running"),
                        ({"max_running": 2, "weight": 3}, "weight")):
        expect(req("PUT", path, body), 422, "validation_failed", field)
    expect(req("PUT", path, b"nope", headers={"Content-Type": "application/json"}), 400)
    expect(req("PUT", path, b"", headers={"Content-Type": "application/json"}), 400)
    expect(req("PUT", f"/v1/admin/tenants/{t['id']}/queues/bad%20name", {"max_running": 1}), 422,
           "validation_failed", "name")
    expect(req("PUT", f"/v1/admin/tenants/{UNKNOWN}/queues/emails", {"max_running": 1}), 404,
           "not_found")
    expect(req("PUT", "/v1/admin/tenants/123/queues/emails", {"max_running": 1}), 404,
           "not_found")
    unchanged(before, "a bad tenant queue request")


def test_tenant_header_is_ignored_on_operator_routes():
    """TaskFlow-Tenant means nothing on operator routes: the admin stays the
    operator."""
    t = new_tenant()
    status, _, body = req("GET", "/v1/admin/tenants?limit=1000",
                          headers={"TaskFlow-Tenant": t["id"]})
    assert status == 200 and len(body["tenants"]) > 1, body


def test_server_stops_cleanly():
    """Last: after all of the above the server exits 0 on SIGTERM, with no
    sanitizer report (leaks of request state included)."""
    code = tf.stop()
    time.sleep(0.2)  # let the stderr reader finish
    report = "".join(tf._stderr)
    assert "Sanitizer" not in report and "runtime error" not in report, report[-3000:]
    assert code == 0, (code, report[-3000:])


db = Database("admin")
tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN})
try:
    run_tests([test_create_tenant_with_defaults_and_all_fields, test_duplicate_tenant_name_is_409,
               test_bad_tenant_bodies_are_refused_and_change_nothing, test_body_over_the_limit_is_413,
               test_get_tenant_unknown_or_non_uuid_is_404, test_list_tenants_pages_without_repeats,
               test_bad_limit_and_cursor_are_422, test_cursor_of_the_jobs_list_is_refused,
               test_patch_merges_attributes, test_patch_other_fields, test_bad_patches_change_nothing,
               test_create_keys, test_bad_key_requests_change_nothing, test_revoke_key,
               test_every_admin_route_needs_the_admin_token,
               test_put_queue_upserts_and_keeps_omitted_fields,
               test_bad_queue_requests_change_nothing, test_queue_status_counts_running_and_age,
               test_list_queues_has_defined_and_job_named_queues,
               test_concurrent_puts_of_one_queue, test_tenant_queue_caps,
               test_tenant_header_is_ignored_on_operator_routes, test_server_stops_cleanly])
finally:
    tf.stop()
    db.drop()
