#!/usr/bin/env python3
"""Cron rules firing (issue 9): three nodes on one database, each with a
test clock moved in step, fire each (rule, fire time) exactly once; a node
started after downtime catches up (the latest missed time fires, the others
are recorded as skipped with reason catch_up, or all of them with catch_up
"none"); fire times of a disabled rule, and those that pass while a firing
still runs, are recorded as skipped with their reasons; a time zone's
spring-forward gap fires at the first instant after it."""
import time
import uuid
from datetime import datetime, timezone

import tfharness as harness
from tfharness import Database, TaskFlow, auth, expect, run_tests, wait_for

ADMIN = "tf-admin-" + uuid.uuid4().hex
MINUTE = 60_000
# 2027-03-28T00:30:00Z: Oslo springs forward at 01:00Z (02:00 -> 03:00 local).
T0 = 1806193800_000
NODE_ENV = {"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api,worker",
            "TASKFLOW_CLOCK": "test", "TASKFLOW_ALLOW_TEST_CLOCK": "1",
            "TASKFLOW_POLL_INTERVAL_MS": "50"}


def iso(ms):
    t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def start_node(name, at):
    node = TaskFlow(db.url, env={**NODE_ENV, "TASKFLOW_WORKER_ID": name})
    expect(node.request("POST", "/v1/admin/clock", {"now": iso(at)}, headers=auth(ADMIN)), 200)
    return node


def set_clocks(at):
    for node in nodes:
        expect(node.request("POST", "/v1/admin/clock", {"now": iso(at)}, headers=auth(ADMIN)), 200)


def upload(source, node=None):
    return expect((node or nodes[0]).request(
        "POST", "/v1/rules", source.encode(),
        headers=auth(KEY, **{"Content-Type": "text/x-lua"})), 201)


def runs(rule_id):
    got = expect(nodes[0].request("GET", f"/v1/rules/{rule_id}/runs?limit=100",
                                  headers=auth(KEY)), 200)["runs"]
    return list(reversed(got))  # oldest first


def cron_rule(name, expr, options="", action=None):
    action = action or ('tf.enqueue{type = "tick", queue = "cron-e2e",'
                        ' payload = {at = ev.at, late_ms = ev.late_ms}}')
    return (f'return {{ name = "{name}", trigger = tf.cron("{expr}"{options}),\n'
            f'  action = function(ev, ctx) {action} end }}\n')


def jobs_of(rule_id):
    return db.sql(f"SELECT count(*) FROM jobs WHERE rule_id = '{rule_id}'")


def settle():
    """Every node's loop has had several rounds at the current time."""
    time.sleep(0.4)


def delete(r):
    expect(nodes[0].request("DELETE", f"/v1/rules/{r['id']}", headers=auth(KEY)), 204)


def test_spring_forward_fires_at_the_first_instant_after_the_gap():
    # 02:30 does not exist in Oslo on 2027-03-28: it fires at 03:00 CEST = 01:00Z.
    r = upload(cron_rule("oslo-0230", "30 2 * * *", ', {timezone = "Europe/Oslo"}'))
    assert r["next_fire_at"] == "2027-03-28T01:00:00.000Z", r
    set_clocks(T0 + 30 * MINUTE - 1000)
    settle()
    assert runs(r["id"]) == []
    set_clocks(T0 + 30 * MINUTE + 1000)
    wait_for(lambda: len(runs(r["id"])) == 1, 10, what="the firing after the gap")
    [run] = runs(r["id"])
    assert run["outcome"] == "fired" and run["event_id"] == "cron:2027-03-28T01:00:00.000Z", run
    at = db.sql(f"SELECT payload ->> 'at' FROM jobs WHERE rule_id = '{r['id']}'")
    assert at == "2027-03-28T01:00:00.000Z", at
    one = expect(nodes[0].request("GET", f"/v1/rules/{r['id']}", headers=auth(KEY)), 200)
    assert one["next_fire_at"] == "2027-03-29T00:30:00.000Z", one  # 02:30 CEST
    delete(r)


def test_three_nodes_fire_each_time_once():
    base = T0 + 40 * MINUTE  # 01:10Z
    set_clocks(base)
    r = upload(cron_rule("every-5", "*/5 * * * *"))
    assert r["next_fire_at"] == iso(base + 5 * MINUTE), r
    for k in range(1, 7):
        set_clocks(base + k * 5 * MINUTE + 1000)
        wait_for(lambda: len(runs(r["id"])) == k, 10, what=f"fire time {k}")
        settle()
    got = runs(r["id"])
    assert [x["outcome"] for x in got] == ["fired"] * 6, got
    assert [x["event_id"] for x in got] == [f"cron:{iso(base + k * 5 * MINUTE)}"
                                             for k in range(1, 7)], got
    assert all(len(x["jobs"]) == 1 for x in got), got
    assert jobs_of(r["id"]) == "6"
    ats = db.sql(f"SELECT string_agg(payload ->> 'at', ',' ORDER BY payload ->> 'at')"
                 f" FROM jobs WHERE rule_id = '{r['id']}'")
    assert ats == ",".join(iso(base + k * 5 * MINUTE) for k in range(1, 7)), ats
    one = expect(nodes[1].request("GET", f"/v1/rules/{r['id']}", headers=auth(KEY)), 200)
    assert one["next_fire_at"] == iso(base + 35 * MINUTE), one
    delete(r)


def test_disabled_fire_times_are_recorded_as_skipped():
    base = T0 + 80 * MINUTE  # 01:50Z
    set_clocks(base)
    r = upload(cron_rule("every-10", "*/10 * * * *"))
    expect(nodes[0].request("POST", f"/v1/rules/{r['id']}/disable", headers=auth(KEY)), 200)
    set_clocks(base + 25 * MINUTE)
    wait_for(lambda: len(runs(r["id"])) == 2, 10, what="two disabled fire times")
    got = runs(r["id"])
    assert [(x["outcome"], x["error"]["type"]) for x in got] == [("skipped", "disabled")] * 2, got
    assert [x["event_id"] for x in got] == [f"cron:{iso(base + 10 * MINUTE)}",
                                             f"cron:{iso(base + 20 * MINUTE)}"], got
    assert jobs_of(r["id"]) == "0"
    expect(nodes[0].request("POST", f"/v1/rules/{r['id']}/enable", headers=auth(KEY)), 200)
    set_clocks(base + 30 * MINUTE + 1000)
    wait_for(lambda: len(runs(r["id"])) == 3, 10, what="fired after enable")
    assert runs(r["id"])[-1]["outcome"] == "fired" and jobs_of(r["id"]) == "1"
    delete(r)


def test_a_stopped_cluster_catches_up_when_a_node_starts():
    global nodes
    base = T0 + 120 * MINUTE  # 02:30Z
    set_clocks(base)
    latest = upload(cron_rule("catch-latest", "*/5 * * * *"))
    none = upload(cron_rule("catch-none", "*/5 * * * *", ', {catch_up = "none"}'))
    for node in nodes:
        node.stop()
    # 17 minutes later one node comes back.
    nodes = [start_node("node-late", base + 17 * MINUTE)]
    wait_for(lambda: len(runs(latest["id"])) == 3 and len(runs(none["id"])) == 3, 15,
             what="catch-up runs")
    got = runs(latest["id"])
    assert [(x["outcome"], (x.get("error") or {}).get("type")) for x in got] == [
        ("skipped", "catch_up"), ("skipped", "catch_up"), ("fired", None)], got
    assert got[-1]["event_id"] == f"cron:{iso(base + 15 * MINUTE)}", got
    assert "latest" in got[0]["error"]["message"], got
    late = db.sql(f"SELECT payload ->> 'late_ms' FROM jobs WHERE rule_id = '{latest['id']}'")
    assert late == str(2 * MINUTE), late
    got = runs(none["id"])
    assert [(x["outcome"], x["error"]["type"]) for x in got] == [("skipped", "catch_up")] * 3, got
    assert "none" in got[0]["error"]["message"], got
    assert jobs_of(none["id"]) == "0"
    one = expect(nodes[0].request("GET", f"/v1/rules/{none['id']}", headers=auth(KEY)), 200)
    assert one["next_fire_at"] == iso(base + 20 * MINUTE), one
    delete(latest)
    delete(none)


def test_fire_times_passing_during_a_firing_are_skipped_as_overlap():
    base = T0 + 150 * MINUTE  # 03:00Z
    set_clocks(base)
    r = upload(cron_rule("slow", "* * * * *",
                         action='tf.sleep(1500) tf.enqueue{type = "slow", queue = "cron-e2e"}'))
    set_clocks(base + MINUTE + 59_000)  # 03:01 fires, 59 s late
    time.sleep(0.5)  # the firing sleeps; meanwhile 03:02 comes
    set_clocks(base + 2 * MINUTE + 30_000)
    wait_for(lambda: len(runs(r["id"])) == 2, 10, what="overlap run")
    got = runs(r["id"])
    assert [(x["outcome"], (x.get("error") or {}).get("type")) for x in got] == [
        ("fired", None), ("skipped", "overlap")], got
    assert got[1]["event_id"] == f"cron:{iso(base + 2 * MINUTE)}", got
    one = expect(nodes[0].request("GET", f"/v1/rules/{r['id']}", headers=auth(KEY)), 200)
    assert one["next_fire_at"] == iso(base + 3 * MINUTE), one
    delete(r)


if __name__ == "__main__":
    db = Database("cron")
    nodes = [start_node(f"node-{i}", T0) for i in range(3)]
    TENANT, KEY, _ = harness.new_tenant(nodes[0], ADMIN, "cron")
    try:
        run_tests([test_spring_forward_fires_at_the_first_instant_after_the_gap,
                   test_three_nodes_fire_each_time_once,
                   test_disabled_fire_times_are_recorded_as_skipped,
                   test_a_stopped_cluster_catches_up_when_a_node_starts,
                   test_fire_times_passing_during_a_firing_are_skipped_as_overlap])
    finally:
        for node in nodes:
            node.stop()
        db.drop()
