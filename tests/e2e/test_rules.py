#!/usr/bin/env python3
"""Automation rules as a tenant uploads, manages and dry-runs them (issue 9,
first part: rules are uploaded, checked, versioned, listed, enabled,
disabled, deleted and tested; they do not fire yet)."""
import base64
import datetime
import hashlib
import hmac
import json
import threading
import time
import uuid
import zoneinfo

import tfharness as harness
from tfharness import Database, TaskFlow, auth, expect, run_tests

ADMIN = "tf-admin-" + uuid.uuid4().hex


def post(source, token=None, content_type="text/x-lua"):
    return tf.request("POST", "/v1/rules", source.encode() if isinstance(source, str) else source,
                      headers=auth(token or KEY, **{"Content-Type": content_type}))


def put(rule_id, source, token=None):
    return tf.request("PUT", f"/v1/rules/{rule_id}", source.encode(),
                      headers=auth(token or KEY, **{"Content-Type": "text/x-lua"}))


def get(path, token=None):
    return tf.request("GET", path, headers=auth(token or KEY))


def call(method, path, token=None):
    return tf.request(method, path, headers=auth(token or KEY))


def rule(name, trigger, extra=""):
    return (f'return {{\n  name = "{name}",\n  trigger = {trigger},\n{extra}'
            '  action = function(ev, ctx) end,\n}\n')


def stored():
    return db.sql(f"SELECT count(*) FROM rule_versions v JOIN rules r ON r.id = v.rule_id"
                  f" WHERE r.tenant_id = '{TENANT}'")


def test_each_trigger_kind_is_created_and_read_back():
    cron = expect(post(rule("billing", 'tf.cron("0 7 * * *", {timezone = "Europe/Oslo"})',
                            "  condition = function(ev, ctx) return true end,\n")), 201)
    assert cron["name"] == "billing" and cron["version"] == 1 and cron["enabled"] is True, cron
    assert cron["trigger"] == {"kind": "cron", "cron": "0 7 * * *", "timezone": "Europe/Oslo",
                               "catch_up": "latest"}, cron
    assert "hook_url" not in cron and "hook_secret" not in cron, cron
    # The next fire time: 07:00 in Oslo, within the next day.
    nxt = datetime.datetime.fromisoformat(cron["next_fire_at"].replace("Z", "+00:00"))
    local = nxt.astimezone(zoneinfo.ZoneInfo("Europe/Oslo"))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert (local.hour, local.minute, local.second) == (7, 0, 0), cron
    assert now < nxt <= now + datetime.timedelta(hours=25), (now, cron)
    assert len(cron["sha256"]) == 64 and harness.is_uuid(cron["id"]), cron
    hook = expect(post(rule("payments", 'tf.webhook{scheme = "stripe"}')), 201)
    assert hook["trigger"] == {"kind": "webhook", "scheme": "stripe"}, hook
    assert hook["hook_url"].startswith("/v1/hooks/") and len(hook["hook_url"]) == 42, hook
    assert len(hook["hook_secret"]) == 64, hook
    assert "next_fire_at" not in hook, hook
    event = expect(post(rule("signup", 'tf.event("user.signed_up")')), 201)
    assert event["trigger"] == {"kind": "event", "event": "user.signed_up"}, event
    chain = expect(post(rule("chain", 'tf.on("job.succeeded", {type = "Fulfil"})')), 201)
    assert chain["trigger"] == {"kind": "job", "event": "job.succeeded", "type": "Fulfil",
                                "queue": None}, chain
    listed = expect(get("/v1/rules"), 200)["rules"]
    assert [r["name"] for r in listed] == ["billing", "chain", "payments", "signup"], listed
    assert all("source" not in r and "hook_secret" not in r for r in listed), listed
    one = expect(get(f"/v1/rules/{hook['id']}"), 200)
    assert "hook_secret" not in one and one["hook_url"] == hook["hook_url"], one
    assert one["source"].startswith("return {") and len(one["versions"]) == 1, one
    # A new version keeps the hook (and shows no secret), and the state.
    expect(call("POST", f"/v1/rules/{hook['id']}/disable"), 200)
    again = expect(put(hook["id"], rule("payments", 'tf.webhook{scheme = "github"}')), 200)
    assert again["hook_url"] == hook["hook_url"] and "hook_secret" not in again, again
    assert again["enabled"] is False and again["trigger"]["scheme"] == "github", again
    # A disabled cron rule has no next fire time.
    off = expect(call("POST", f"/v1/rules/{cron['id']}/disable"), 200)
    assert off["next_fire_at"] is None, off
    on = expect(call("POST", f"/v1/rules/{cron['id']}/enable"), 200)
    assert on["next_fire_at"] == cron["next_fire_at"] or on["next_fire_at"] > cron["next_fire_at"]


def test_versions_enable_disable_delete():
    first = expect(post(rule("versioned", 'tf.event("a")')), 201)
    rid = first["id"]
    second = expect(put(rid, rule("versioned-2", 'tf.event("b")')), 200)
    assert second["version"] == 2 and second["name"] == "versioned-2", second
    assert second["trigger"]["event"] == "b", second
    one = expect(get(f"/v1/rules/{rid}"), 200)
    assert [v["version"] for v in one["versions"]] == [2, 1], one
    assert [v["trigger"]["event"] for v in one["versions"]] == ["b", "a"], one
    # The kind stays; the name is the tenant's one rule's.
    got = expect(put(rid, rule("versioned-2", "tf.cron('@daily')")), 409, "conflict")
    assert "kind" in got["error"]["message"], got
    expect(post(rule("taken", 'tf.event("x")')), 201)
    got = expect(put(rid, rule("taken", 'tf.event("x")')), 409, "conflict")
    assert "name" in got["error"]["message"], got
    got = expect(post(rule("taken", 'tf.event("y")')), 409, "conflict")
    assert expect(get(f"/v1/rules/{rid}"), 200)["version"] == 2
    assert expect(call("POST", f"/v1/rules/{rid}/disable"), 200)["enabled"] is False
    assert expect(get(f"/v1/rules/{rid}"), 200)["enabled"] is False
    assert expect(call("POST", f"/v1/rules/{rid}/enable"), 200)["enabled"] is True
    expect(call("DELETE", f"/v1/rules/{rid}"), 204)
    expect(get(f"/v1/rules/{rid}"), 404, "not_found")
    expect(call("DELETE", f"/v1/rules/{rid}"), 404, "not_found")
    expect(call("POST", f"/v1/rules/{rid}/enable"), 404, "not_found")
    expect(put(rid, rule("versioned-2", 'tf.event("c")')), 404, "not_found")
    # Its versions stay; its name is free again.
    assert db.sql(f"SELECT count(*) FROM rule_versions WHERE rule_id = '{rid}'") == "2"
    expect(post(rule("versioned-2", 'tf.event("c")')), 201)


def test_bad_rules_are_refused_and_nothing_is_stored():
    before = stored()
    cases = [
        ("return {", 422, "rule:1:"),
        ("", 422, "Lua source"),
        ("\x1bLuaT\x00", 422, "binary"),
        ("return 42", 422, "must return a table"),
        ('return {name = "r", action = function() end}', 422, "trigger must be made by tf.cron"),
        ('return {name = "r", trigger = "cron", action = function() end}', 422,
         "trigger must be made by tf.cron"),
        ('return {name = "r", trigger = {kind = "cron", cron = "* * * * *"},'
         ' action = function() end}', 422, "got table"),
        ('return {name = "r", trigger = tf.cron, action = function() end}', 422, "got function"),
        ('return {name = "r", trigger = tf.event("e")}', 422, "action must be a function"),
        ('return {name = "r", trigger = tf.event("e"), action = function() end,'
         ' condition = true}', 422, "condition must be a function"),
        ('return {trigger = tf.event("e"), action = function() end}', 422, "name must be"),
        ('return {name = "bad name", trigger = tf.event("e"), action = function() end}', 422,
         "name must be"),
        ('return {name = "r", trigger = tf.event("e"), action = function() end, extra = 1}',
         422, "unknown field extra"),
        (rule("r", 'tf.cron("0 24 * * *")'), 422, "tf.cron: hour: 24 is out of range 0-23"),
        (rule("r", 'tf.cron("0 7 * * *", {timezone = "Mars/Olympus_Mons"})'), 422,
         'unknown time zone "Mars/Olympus_Mons"'),
        (rule("r", 'tf.cron("0 7 * * *", {timezone = "../../etc/passwd"})'), 422,
         "timezone must be an IANA name"),
        (rule("r", 'tf.webhook{scheme = "hmac"}'), 422, "tf.webhook: scheme must be"),
        (rule("r", 'tf.on("job.started")'), 422, "tf.on: the event must be"),
        ("while true do end", 422, "lua_budget"),
        ('return os.execute("id")', 422, "global 'os'"),
        (b"return {name = '\xff'}", 422, "UTF-8"),
        ("-- " + "x" * (256 * 1024), 413, "256 KiB"),
    ]
    for source, status, fragment in cases:
        code = "payload_too_large" if status == 413 else "validation_failed"
        got = expect(post(source), status, code)
        assert fragment in got["error"]["message"], (source[:60], got)
    expect(post(rule("r", 'tf.event("e")'), content_type="application/json"), 415)
    expect(post(rule("r", 'tf.event("e")'), token="nope"), 401)
    assert stored() == before, (before, stored())
    # Ids that name nothing.
    for path in ("/v1/rules/not-an-id", f"/v1/rules/{uuid.uuid4()}"):
        expect(get(path), 404, "not_found")
        expect(call("DELETE", path), 404, "not_found")
        expect(call("POST", path + "/enable"), 404, "not_found")
        expect(put(path.rsplit("/", 1)[1], rule("r", 'tf.event("e")')), 404, "not_found")


def test_another_tenant_sees_nothing():
    mine = expect(post(rule("private", 'tf.event("secret")')), 201)
    expect(get(f"/v1/rules/{mine['id']}", token=OTHER_KEY), 404, "not_found")
    assert all(r["name"] != "private"
               for r in expect(get("/v1/rules", token=OTHER_KEY), 200)["rules"])
    expect(call("DELETE", f"/v1/rules/{mine['id']}", token=OTHER_KEY), 404, "not_found")
    expect(call("POST", f"/v1/rules/{mine['id']}/disable", token=OTHER_KEY), 404, "not_found")
    expect(put(mine["id"], rule("private", 'tf.event("mine.now")'), token=OTHER_KEY), 404,
           "not_found")
    # The same name is free in another tenant.
    expect(post(rule("private", 'tf.event("theirs")'), token=OTHER_KEY), 201)
    assert expect(get(f"/v1/rules/{mine['id']}"), 200)["trigger"]["event"] == "secret"


def dry_run(rule_id, body=None, token=None):
    return tf.request("POST", f"/v1/rules/{rule_id}/test", body, headers=auth(token or KEY))


def jobs_of_rule(rule_id):
    return db.sql(f"SELECT count(*) FROM jobs WHERE rule_id = '{rule_id}'")


def test_a_dry_run_shows_the_condition_the_jobs_and_the_state_and_writes_nothing():
    src = ('return {\n  name = "big-payments",\n  trigger = tf.event("payment.received"),\n'
           '  condition = function(ev, ctx)\n'
           '    tf.log.debug("checking", {amount = ev.amount})\n'
           '    return ev.amount > 100\n'
           '  end,\n'
           '  action = function(ev, ctx)\n'
           '    tf.enqueue{type = "Fulfil", queue = "orders", payload = {amount = ev.amount},\n'
           '               priority = 3}\n'
           '    tf.log.info("queued\\nfulfilment", {big = true, ratio = 1.5})\n'
           '    ctx.state.last = ev.amount\n'
           '    ctx.state.rule = ctx.rule.name\n'
           '  end,\n}\n')
    r = expect(post(src), 201)
    before = stored()
    got = expect(dry_run(r["id"], {"event": {"amount": 150}}), 200)
    assert got["condition"] is True and got["error"] is None, got
    assert got["state"] == {"last": 150, "rule": "big-payments"}, got
    [job] = got["jobs"]
    assert job["type"] == "Fulfil" and job["queue"] == "orders" and job["priority"] == 3, job
    assert job["payload"] == {"amount": 150} and job["rule_id"] == r["id"], job
    assert harness.is_uuid(job["id"]) and harness.is_uuid(job["correlation_id"]), job
    # Its log lines, both functions', in order, with their own fields.
    assert got["logs"] == [
        {"level": "debug", "message": "checking", "fields": {"amount": 150}},
        {"level": "info", "message": "queued\nfulfilment", "fields": {"big": True, "ratio": 1.5}},
    ], got["logs"]
    got = expect(dry_run(r["id"], {"event": {"amount": 50}}), 200)
    assert got == {"condition": False, "jobs": [], "state": None, "error": None,
                   "logs": [{"level": "debug", "message": "checking",
                             "fields": {"amount": 50}}]}, got
    # Nothing was written: no job, no version, no state.
    assert jobs_of_rule(r["id"]) == "0" and stored() == before
    expect(get(f"/v1/jobs/{job['id']}"), 404, "not_found")


def test_dry_run_errors_are_reported_not_raised():
    cases = [
        ("cond-not-bool", "  condition = function(ev, ctx) return 'yes' end,\n",
         "  action = function(ev, ctx) end,\n", "rule_condition",
         'condition must return a boolean (it returned "yes")'),
        ("cond-error", "  condition = function(ev, ctx) return ev.x.y end,\n",
         "  action = function(ev, ctx) end,\n", "lua_error", "attempt to index"),
        ("action-error", "",
         "  action = function(ev, ctx) tf.enqueue{type = 'A'} error('no way') end,\n",
         "lua_error", "no way"),
        ("bad-job", "", "  action = function(ev, ctx) tf.enqueue{type = 'A', queue = 'b q'} end,\n",
         "lua_error", "tf.enqueue: queue:"),
        ("spins", "", "  action = function(ev, ctx) while true do end end,\n", "lua_budget", ""),
        ("enqueue-in-condition",
         "  condition = function(ev, ctx) tf.enqueue{type = 'A'} return true end,\n",
         "  action = function(ev, ctx) end,\n", "lua_error", "only the run of a job or a rule"),
    ]
    for name, condition, action, etype, fragment in cases:
        src = (f'return {{\n  name = "{name}",\n  trigger = tf.event("e"),\n{condition}'
               f'{action}}}\n')
        r = expect(post(src), 201)
        got = expect(dry_run(r["id"], {"event": {}}), 200)
        assert got["error"] is not None and got["error"]["type"] == etype, (name, got)
        assert fragment in got["error"]["message"], (name, got)
        assert got["jobs"] == [] and got["state"] is None, (name, got)
        assert jobs_of_rule(r["id"]) == "0"


def test_a_dry_run_sees_the_tenant():
    expect(tf.request("PATCH", f"/v1/admin/tenants/{TENANT}",
                      {"plan": "pro", "attributes": {"usage": 7, "region": "eu \"north\""}},
                      headers=auth(ADMIN)), 200)
    src = ('return {\n  name = "billing-dry",\n  trigger = tf.cron("0 7 * * *",'
           ' {timezone = "Europe/Oslo"}),\n'
           '  condition = function(ev, ctx) return ctx.tenant.plan == "pro" end,\n'
           '  action = function(ev, ctx)\n'
           '    ctx.state.usage = ctx.tenant.attributes.usage\n'
           '    ctx.state.region = ctx.tenant.attributes.region\n'
           '    ctx.state.tenant = ctx.tenant.id\n'
           '    ctx.state.name = ctx.tenant.name\n'
           '  end,\n}\n')
    r = expect(post(src), 201)
    got = expect(dry_run(r["id"]), 200)
    assert got["condition"] is True and got["error"] is None, got
    assert got["state"]["usage"] == 7 and got["state"]["region"] == 'eu "north"', got
    assert got["state"]["tenant"] == TENANT and got["state"]["name"].startswith("rules-"), got
    expect(tf.request("PATCH", f"/v1/admin/tenants/{TENANT}", {"plan": "free"},
                      headers=auth(ADMIN)), 200)
    assert expect(dry_run(r["id"]), 200)["condition"] is False


def test_dry_run_inputs():
    r = expect(post(rule("sampled", "tf.cron('@hourly')").replace(
        "action = function(ev, ctx) end",
        "action = function(ev, ctx) ctx.state.kind = ev.kind; ctx.state.sample = ev.sample end")),
        201)
    got = expect(dry_run(r["id"]), 200)  # no body: a sample event of the trigger
    assert got["condition"] is True and got["state"] == {"kind": "cron", "sample": True}, got
    got = expect(dry_run(r["id"], {}), 200)
    assert got["state"]["kind"] == "cron", got
    expect(dry_run(r["id"], {"event": [1]}), 422, "validation_failed", "event")
    expect(dry_run(r["id"], {"event": "x"}), 422, "validation_failed", "event")
    expect(dry_run(r["id"], {"event": {}, "extra": 1}), 422, "validation_failed", "extra")
    # Only a platform rule's dry run names a tenant to run as.
    expect(dry_run(r["id"], {"tenant_id": TENANT}), 422, "validation_failed", "tenant_id")
    # The operator's dry run is for platform rules: a tenant's rule is not one.
    expect(tf.request("POST", f"/v1/admin/rules/{r['id']}/test", {"tenant_id": TENANT},
                      headers=auth(ADMIN)), 404, "not_found")
    expect(tf.request("POST", f"/v1/admin/rules/{r['id']}/test", {"tenant_id": TENANT},
                      headers=auth(KEY)), 401)
    bad = tf.request("POST", f"/v1/rules/{r['id']}/test", b"{not json",
                     headers=auth(KEY, **{"Content-Type": "application/json"}))
    expect(bad, 400)
    expect(dry_run("not-an-id"), 404, "not_found")
    expect(dry_run(str(uuid.uuid4())), 404, "not_found")
    expect(dry_run(r["id"], token=OTHER_KEY), 404, "not_found")
    expect(call("DELETE", f"/v1/rules/{r['id']}"), 204)
    expect(dry_run(r["id"]), 404, "not_found")


def event(body, token=None):
    return tf.request("POST", "/v1/events", body, headers=auth(token or KEY))


def runs_of(rule_id, query=""):
    return expect(get(f"/v1/rules/{rule_id}/runs{query}"), 200)


def test_an_event_fires_its_rules_once_and_records_runs_jobs_and_state():
    counter = ('return {\n  name = "count-signups",\n  trigger = tf.event("member.joined"),\n'
               '  condition = function(ev, ctx) return ev.data.plan ~= "spam" end,\n'
               '  action = function(ev, ctx)\n'
               '    ctx.state.n = (ctx.state.n or 0) + 1\n'
               '    tf.enqueue{type = "Welcome", queue = "mail", payload = {user = ev.data.user,'
               ' n = ctx.state.n}}\n'
               '  end,\n}\n')
    c = expect(post(counter), 201)
    other = expect(post(rule("other-event", 'tf.event("user.left")')), 201)
    broken = expect(post('return {\n  name = "broken-signup",\n  trigger = tf.event('
                         '"member.joined"),\n  action = function(ev, ctx)\n'
                         '    tf.enqueue{type = "X"} error("boom")\n  end,\n}\n'), 201)
    got = expect(event({"name": "member.joined", "data": {"user": "ann"}, "id": "evt-1"}), 202)
    by_rule = {r["rule_id"]: r for r in got["runs"]}
    assert set(by_rule) == {c["id"], broken["id"]}, got  # not other-event's
    fired = by_rule[c["id"]]
    assert fired["outcome"] == "fired" and fired["condition"] is True, fired
    assert len(fired["jobs"]) == 1 and fired["error"] is None, fired
    failed = by_rule[broken["id"]]
    assert failed["outcome"] == "failed" and failed["jobs"] == [], failed
    assert failed["error"]["type"] == "lua_error" and "boom" in failed["error"]["message"]
    job = expect(get(f"/v1/jobs/{fired['jobs'][0]}"), 200)
    assert job["type"] == "Welcome" and job["rule_id"] == c["id"], job
    assert job["payload"] == {"user": "ann", "n": 1} and job["correlation_id"] == "evt-1", job
    assert job["state"] == "PENDING", job
    # The same event again: nothing fires, nothing is created.
    again = expect(event({"name": "member.joined", "data": {"user": "ann"}, "id": "evt-1"}), 202)
    # A repeat answers each rule's first run, and creates nothing.
    first = {r["rule_id"]: (r["run_id"], r["jobs"]) for r in got["runs"]}
    assert all(r["outcome"] == "duplicate" and first[r["rule_id"]] == (r["run_id"], r["jobs"])
               for r in again["runs"]), (got, again)
    assert jobs_of_rule(c["id"]) == "1" and jobs_of_rule(broken["id"]) == "0"
    # The state persists between runs; a false condition records a run.
    got = expect(event({"name": "member.joined", "data": {"user": "bob"}}), 202)
    second = [r for r in got["runs"] if r["rule_id"] == c["id"]][0]
    assert expect(get(f"/v1/jobs/{second['jobs'][0]}"), 200)["payload"]["n"] == 2
    got = expect(event({"name": "member.joined", "data": {"plan": "spam"}}), 202)
    assert [r["outcome"] for r in got["runs"] if r["rule_id"] == c["id"]] == ["not_matched"]
    # Runs, newest first, filtered and paginated.
    runs = runs_of(c["id"])["runs"]
    assert [r["outcome"] for r in runs] == ["not_matched", "fired", "fired"], runs
    assert runs[2]["event_id"] == "evt-1" and runs[2]["trigger"] == "event:member.joined"
    assert runs[0]["condition"] is False and runs[0]["jobs"] == [], runs[0]
    assert runs_of(broken["id"])["runs"][0]["error"]["type"] == "lua_error"
    page = runs_of(c["id"], "?limit=2")
    assert len(page["runs"]) == 2 and page["next_cursor"] == page["runs"][1]["id"], page
    rest = runs_of(c["id"], f"?limit=2&cursor={page['next_cursor']}")
    assert [r["id"] for r in rest["runs"]] == [runs[2]["id"]] and rest["next_cursor"] is None
    assert [r["outcome"] for r in runs_of(c["id"], "?outcome=fired")["runs"]] == ["fired"] * 2
    # A disabled rule does not fire; nor does an event nobody listens to.
    expect(call("POST", f"/v1/rules/{c['id']}/disable"), 200)
    got = expect(event({"name": "member.joined", "data": {}}), 202)
    assert [r["rule_id"] for r in got["runs"]] == [broken["id"]], got
    assert expect(event({"name": "nobody.listens"}), 202) == {"runs": []}
    assert runs_of(other["id"])["runs"] == []


def test_bad_events_and_run_queries():
    for body, field in (({}, "name"), ({"name": 5}, "name"), ({"name": "bad name"}, "name"),
                        ({"name": "job.succeeded"}, "name"), ({"name": "x" * 129}, "name"),
                        ({"name": "ok", "id": 5}, "id"), ({"name": "ok", "id": ""}, "id"),
                        ({"name": "ok", "id": "i" * 256}, "id"),
                        ({"name": "ok", "extra": 1}, "extra")):
        expect(event(body), 422, "validation_failed", field)
    expect(tf.request("POST", "/v1/events", b"{nope",
                      headers=auth(KEY, **{"Content-Type": "application/json"})), 400)
    expect(tf.request("POST", "/v1/events", {"name": "ok"}), 401)
    r = expect(post(rule("runs-q", 'tf.event("q")')), 201)
    expect(get(f"/v1/rules/{r['id']}/runs?limit=0"), 422, "validation_failed", "limit")
    expect(get(f"/v1/rules/{r['id']}/runs?cursor=zzz"), 422, "validation_failed", "cursor")
    expect(get(f"/v1/rules/{r['id']}/runs?outcome=won"), 422, "validation_failed", "outcome")
    expect(get(f"/v1/rules/{uuid.uuid4()}/runs"), 404, "not_found")
    expect(get(f"/v1/rules/{r['id']}/runs", token=OTHER_KEY), 404, "not_found")
    # Another tenant's event never fires this tenant's rules.
    assert expect(event({"name": "q"}, token=OTHER_KEY), 202) == {"runs": []}
    assert runs_of(r["id"])["runs"] == []


def hook(url, body, headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return tf.request("POST", url, data, headers={"Content-Type": "application/json", **headers})


def mac(secret, *parts):
    return hmac.new(secret, b"".join(parts), hashlib.sha256)


def taskflow_sig(secret, body, t=None):
    t = int(time.time()) if t is None else t
    return f"t={t},v1=" + mac(secret.encode(), str(t).encode(), b".", body).hexdigest()


def webhook_rule(name, scheme, token=None):
    src = (f'return {{\n  name = "{name}",\n  trigger = tf.webhook{{scheme = "{scheme}"}},\n'
           '  action = function(ev, ctx)\n'
           '    tf.enqueue{type = "Fulfil", queue = "orders", payload = {order = ev.body.order,'
           ' scheme = ev.scheme, tenant = ctx.tenant.id}}\n  end,\n}\n')
    return expect(post(src, token), 201)


def test_signed_webhooks_fire_once_and_bad_signatures_fire_nothing():
    r = webhook_rule("paid", "taskflow")
    url, secret = r["hook_url"], r["hook_secret"]
    body = json.dumps({"order": 7, "note": "secret-body-text"}).encode()
    got = expect(hook(url, body, {"TaskFlow-Signature": taskflow_sig(secret, body),
                                  "TaskFlow-Event-Id": "pay-1"}), 202)
    assert got["outcome"] == "fired" and len(got["jobs"]) == 1, got
    job = expect(get(f"/v1/jobs/{got['jobs'][0]}"), 200)
    assert job["payload"] == {"order": 7, "scheme": "taskflow", "tenant": TENANT}, job
    assert job["rule_id"] == r["id"], job
    assert job["correlation_id"] == "pay-1", job
    again = expect(hook(url, body, {"TaskFlow-Signature": taskflow_sig(secret, body),
                                    "TaskFlow-Event-Id": "pay-1"}), 202)
    assert again["outcome"] == "duplicate" and again["run_id"] == got["run_id"], again
    assert again["jobs"] == got["jobs"] and jobs_of_rule(r["id"]) == "1", again
    now = int(time.time())
    bad = [
        {},
        {"TaskFlow-Signature": taskflow_sig("0" * 64, body)},
        {"TaskFlow-Signature": taskflow_sig(secret, body, now - 301)},
        # 310, not 301: the server's second may have ticked since `now`.
        {"TaskFlow-Signature": taskflow_sig(secret, body, now + 310)},
        {"TaskFlow-Signature": taskflow_sig(secret, body + b" ")},
        {"TaskFlow-Signature": f"t={now},v1=zz"},
        {"TaskFlow-Signature": "v1=" + mac(secret.encode(), body).hexdigest()},
    ]
    for headers in bad:
        status, _, answer = hook(url, body, headers)
        assert status == 401 and answer["error"]["code"] == "unauthorized", (headers, answer)
        assert "secret-body-text" not in json.dumps(answer), answer
    # Changed by one space: the signature was over other bytes.
    spaced = body.replace(b": 7", b":  7")
    status, _, _ = hook(url, spaced, {"TaskFlow-Signature": taskflow_sig(secret, body)})
    assert status == 401
    not_json = b"order=7"
    expect(hook(url, not_json, {"TaskFlow-Signature": taskflow_sig(secret, not_json)}), 400)
    assert jobs_of_rule(r["id"]) == "1"
    runs = runs_of(r["id"])["runs"]
    assert len(runs) == 1 and runs[0]["trigger"] == "webhook" and runs[0]["event_id"] == "pay-1"
    # Hooks that do not exist, or whose rule is disabled, answer as a bad
    # signature does: nothing says which keys exist.
    expect(hook("/v1/hooks/" + "0" * 32, body, {}), 401, "unauthorized")
    expect(hook("/v1/hooks/nope", body, {}), 401, "unauthorized")
    expect(call("POST", f"/v1/rules/{r['id']}/disable"), 200)
    expect(hook(url, body, {"TaskFlow-Signature": taskflow_sig(secret, body)}), 401,
           "unauthorized")
    assert jobs_of_rule(r["id"]) == "1"


def test_concurrent_deliveries_each_get_their_own_rule():
    """Deliveries arriving together are looked up together: each must get
    its own rule, tenant and answer, whatever else shares its lookup."""
    mine, also = webhook_rule("together-a", "taskflow"), webhook_rule("together-b", "taskflow")
    theirs = webhook_rule("together-c", "taskflow", OTHER_KEY)
    off = webhook_rule("together-off", "taskflow")
    expect(call("POST", f"/v1/rules/{off['id']}/disable"), 200)
    targets = [(mine, TENANT), (also, TENANT), (theirs, OTHER), (off, None),
               ({"hook_url": "/v1/hooks/" + "ab" * 16, "hook_secret": "0" * 64}, None)]
    answers = {}

    def send(k):
        for i in range(8):
            rule, tenant = targets[(k + i) % len(targets)]
            body = json.dumps({"order": k * 100 + i}).encode()
            status, _, got = hook(rule["hook_url"], body, {
                "TaskFlow-Signature": taskflow_sig(rule["hook_secret"], body),
                "TaskFlow-Event-Id": f"together-{k}-{i}"})
            answers[(k, i)] = (rule, tenant, status, got)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 80, len(answers)
    for (k, i), (rule, tenant, status, got) in answers.items():
        if tenant is None:
            assert status == 401 and got["error"]["code"] == "unauthorized", (rule, got)
            continue
        assert status == 202 and got["outcome"] == "fired", (rule, got)
        [job] = db.sql(f"SELECT rule_id || ' ' || (payload ->> 'tenant') || ' '"
                       f" || (payload ->> 'order') FROM jobs WHERE id = '{got['jobs'][0]}'")\
            .split("\n")
        assert job == f"{rule['id']} {tenant} {k * 100 + i}", (job, rule["name"])
    assert jobs_of_rule(off["id"]) == "0"
    assert sum(int(jobs_of_rule(r["id"])) for r in (mine, also, theirs)) == 48


def test_rotating_a_secret_keeps_the_old_one_for_its_grace_period():
    r = webhook_rule("rotating", "taskflow")
    url, old = r["hook_url"], r["hook_secret"]
    body = json.dumps({"order": 8}).encode()

    def fire(secret, event_id):
        return hook(url, body, {"TaskFlow-Signature": taskflow_sig(secret, body),
                                "TaskFlow-Event-Id": event_id})
    rotate = f"/v1/rules/{r['id']}/rotate-secret"
    # Bad requests change nothing: the old secret alone still works.
    for bad, field in (({"grace_seconds": -1}, "grace_seconds"),
                       ({"grace_seconds": 604801}, "grace_seconds"),
                       ({"grace_seconds": "60"}, "grace_seconds"),
                       ({"grace": 60}, "grace")):
        expect(tf.request("POST", rotate, bad, headers=auth(KEY)), 422, "validation_failed", field)
    expect(fire(old, "rot-0"), 202)
    expect(tf.request("POST", rotate, {}, headers=auth(OTHER_KEY)), 404, "not_found")
    expect(tf.request("POST", f"/v1/rules/{uuid.uuid4()}/rotate-secret", {}, headers=auth(KEY)),
           404, "not_found")
    event = expect(post(rule("not-a-hook", 'tf.event("x.y")')), 201)
    expect(tf.request("POST", f"/v1/rules/{event['id']}/rotate-secret", {}, headers=auth(KEY)),
           409, "conflict")
    got = expect(tf.request("POST", rotate, {"grace_seconds": 2}, headers=auth(KEY)), 200)
    new = got["hook_secret"]
    assert len(new) == 64 and new != old and set(got) == {"hook_secret",
                                                          "previous_secret_valid_until"}, got
    assert "hook_secret" not in expect(get(f"/v1/rules/{r['id']}"), 200)
    # Both secrets work during the grace period...
    expect(fire(old, "rot-1"), 202)
    expect(fire(new, "rot-2"), 202)
    time.sleep(2.2)
    # ...then only the new one.
    expect(fire(old, "rot-3"), 401, "unauthorized")
    expect(fire(new, "rot-4"), 202)
    # A rotation without a grace period retires the old secret at once.
    newer = expect(tf.request("POST", rotate, {"grace_seconds": 0}, headers=auth(KEY)),
                   200)["hook_secret"]
    expect(fire(new, "rot-5"), 401, "unauthorized")
    expect(fire(newer, "rot-6"), 202)
    expect(call("DELETE", f"/v1/rules/{event['id']}"), 204)


def test_github_stripe_and_standard_webhooks_schemes():
    body = json.dumps({"order": 9, "id": "evt_stripe_1"}).encode()
    gh = webhook_rule("gh", "github")
    good = "sha256=" + mac(gh["hook_secret"].encode(), body).hexdigest()
    got = expect(hook(gh["hook_url"], body, {"X-Hub-Signature-256": good,
                                             "X-GitHub-Delivery": "d-1"}), 202)
    assert got["outcome"] == "fired", got
    assert expect(hook(gh["hook_url"], body, {"X-Hub-Signature-256": good,
                                              "X-GitHub-Delivery": "d-1"}), 202)["outcome"] \
        == "duplicate"
    for sig in ("sha256=" + "0" * 64, good.replace("sha256=", "sha1="), None):
        headers = {"X-Hub-Signature-256": sig} if sig else {}
        assert hook(gh["hook_url"], body, headers)[0] == 401
    st = webhook_rule("st", "stripe")
    t = int(time.time())
    sig = f"t={t},v1=" + mac(st["hook_secret"].encode(), str(t).encode(), b".", body).hexdigest()
    got = expect(hook(st["hook_url"], body, {"Stripe-Signature": sig}), 202)
    assert got["outcome"] == "fired", got
    # Stripe's event id is in the body: a redelivery fires nothing.
    assert expect(hook(st["hook_url"], body, {"Stripe-Signature": sig}), 202)["outcome"] \
        == "duplicate"
    assert hook(st["hook_url"], body, {"Stripe-Signature": f"t={t - 400},v1=00"})[0] == 401
    sw = webhook_rule("sw", "standard-webhooks")
    key = bytes.fromhex(sw["hook_secret"])
    ts = str(int(time.time()))
    signed = "v1," + base64.b64encode(mac(key, b"msg_1.", ts.encode(), b".", body).digest()).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": ts,
               "webhook-signature": "v1,bm90IGl0 " + signed}
    got = expect(hook(sw["hook_url"], body, headers), 202)
    assert got["outcome"] == "fired", got
    assert expect(hook(sw["hook_url"], body, headers), 202)["outcome"] == "duplicate"
    stale = dict(headers, **{"webhook-timestamp": str(int(ts) - 400)})
    assert hook(sw["hook_url"], body, stale)[0] == 401
    assert hook(sw["hook_url"], body + b" ", headers)[0] == 401
    assert hook(sw["hook_url"], body, {"webhook-id": "msg_2", "webhook-timestamp": ts})[0] == 401
    for r in (gh, st, sw):
        assert jobs_of_rule(r["id"]) == "1", r["name"]


def test_every_scheme_refuses_missing_wrong_stale_and_changed_bodies():
    """Each scheme's signature, made as its sender makes it: valid fires
    once, a replay fires nothing more, and a missing or wrong signature,
    a correctly signed but stale timestamp (the schemes that carry one) and
    the body changed by one space are 401 and fire nothing."""

    def github(rule, body, t, eid):
        sig = "sha256=" + mac(rule["hook_secret"].encode(), body).hexdigest()
        return {"X-Hub-Signature-256": sig, "X-GitHub-Delivery": eid}

    def stripe(rule, body, t, eid):
        return {"Stripe-Signature": f"t={t},v1="
                + mac(rule["hook_secret"].encode(), str(t).encode(), b".", body).hexdigest()}

    def taskflow(rule, body, t, eid):
        return {"TaskFlow-Signature": taskflow_sig(rule["hook_secret"], body, t),
                "TaskFlow-Event-Id": eid}

    def standard(rule, body, t, eid):
        key = bytes.fromhex(rule["hook_secret"])
        digest = mac(key, eid.encode(), b".", str(t).encode(), b".", body).digest()
        return {"webhook-id": eid, "webhook-timestamp": str(t),
                "webhook-signature": "v1," + base64.b64encode(digest).decode()}

    def wrong(headers):
        bad = {}
        for name, value in headers.items():
            if name.lower() in ("x-hub-signature-256", "stripe-signature", "taskflow-signature"):
                value = value[:-8] + "00000000"
            elif name == "webhook-signature":
                value = "v1," + base64.b64encode(b"\0" * 32).decode()
            bad[name] = value
        return bad

    signers = {"github": (github, None), "stripe": (stripe, "Stripe-Signature"),
               "taskflow": (taskflow, "TaskFlow-Signature"),
               "standard-webhooks": (standard, "webhook-signature")}
    for scheme, (sign, header) in signers.items():
        rule = webhook_rule(f"matrix-{scheme}", scheme)
        now = int(time.time())
        eid = f"matrix-{scheme}-1"
        body = json.dumps({"order": 11, "id": f"evt_{scheme}_matrix"}).encode()
        headers = sign(rule, body, now, eid)
        got = expect(hook(rule["hook_url"], body, headers), 202)
        assert got["outcome"] == "fired", (scheme, got)
        again = expect(hook(rule["hook_url"], body, headers), 202)
        assert again["outcome"] == "duplicate" and again["run_id"] == got["run_id"], (scheme, again)
        refused = {
            "missing": {k: v for k, v in headers.items()
                        if k.lower() not in ("x-hub-signature-256", "stripe-signature",
                                             "taskflow-signature", "webhook-signature")},
            "wrong": wrong(sign(rule, body, now, eid + "-w")),
            "changed": sign(rule, body, now, eid + "-c"),
        }
        if header is not None:  # GitHub's signature carries no time
            refused["stale"] = sign(rule, body, now - 400, eid + "-s")
        for case, h in refused.items():
            sent = body.replace(b": 11", b":  11") if case == "changed" else body
            status, _, answer = hook(rule["hook_url"], sent, h)
            assert status == 401 and answer["error"]["code"] == "unauthorized", (scheme, case)
        assert jobs_of_rule(rule["id"]) == "1", scheme
        assert len(runs_of(rule["id"])["runs"]) == 1, scheme


def test_overlapping_firings_lose_no_state():
    src = ('return {\n  name = "counter",\n  trigger = tf.event("tick"),\n'
           '  action = function(ev, ctx)\n'
           '    ctx.state.n = (ctx.state.n or 0) + 1\n'
           '    tf.enqueue{type = "Tick", queue = "ticks", payload = {n = ctx.state.n}}\n'
           '  end,\n}\n')
    r = expect(post(src), 201)
    answers = []

    def send():
        for _ in range(5):
            answers.append(event({"name": "tick"})[0])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [202] * 40, answers
    fired = db.sql(f"SELECT count(*) FROM rule_runs WHERE rule_id = '{r['id']}'"
                   " AND outcome = 'fired'")
    assert fired == "40", fired
    assert db.sql(f"SELECT state ->> 'n' FROM rule_states WHERE rule_id = '{r['id']}'") == "40"
    # Every job saw its own count: 1..40, each once.
    ns = db.sql(f"SELECT string_agg((payload ->> 'n'), ',' ORDER BY (payload ->> 'n')::int)"
                f" FROM jobs WHERE rule_id = '{r['id']}'")
    assert ns == ",".join(str(i) for i in range(1, 41)), ns


if __name__ == "__main__":
    db = Database("rules")
    tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN})
    TENANT, KEY, _ = harness.new_tenant(tf, ADMIN, "rules")
    OTHER, OTHER_KEY, _ = harness.new_tenant(tf, ADMIN, "rules-other")
    try:
        run_tests([test_each_trigger_kind_is_created_and_read_back,
                   test_versions_enable_disable_delete,
                   test_bad_rules_are_refused_and_nothing_is_stored,
                   test_another_tenant_sees_nothing,
                   test_a_dry_run_shows_the_condition_the_jobs_and_the_state_and_writes_nothing,
                   test_dry_run_errors_are_reported_not_raised,
                   test_a_dry_run_sees_the_tenant,
                   test_dry_run_inputs,
                   test_an_event_fires_its_rules_once_and_records_runs_jobs_and_state,
                   test_bad_events_and_run_queries,
                   test_signed_webhooks_fire_once_and_bad_signatures_fire_nothing,
                   test_concurrent_deliveries_each_get_their_own_rule,
                   test_rotating_a_secret_keeps_the_old_one_for_its_grace_period,
                   test_github_stripe_and_standard_webhooks_schemes,
                   test_every_scheme_refuses_missing_wrong_stale_and_changed_bodies,
                   test_overlapping_firings_lose_no_state])
    finally:
        tf.stop()
        db.drop()
