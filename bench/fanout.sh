#!/usr/bin/env bash
# Event fan-out (issue 9): one tenant with 100 rules on the custom event
# "order.created", each action creating one job; POST /v1/events fires all
# 100 (each rule's run, job and state in its own transaction) before it
# answers.  Posts events from 4 concurrent clients for the given seconds
# and prints events/s, firings/s and the p50/p99 time of one event, then
# the counts as a check.
#   bench/fanout.sh [seconds per run (10)] [runs (3)] [rules (100)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
runs=${2:-3}
rules=${3:-100}

. bench/common.sh
bench_start
for k in $(seq "$rules"); do
  curl -fsS -X POST "localhost:$port/v1/rules" -H "Authorization: Bearer $TASKFLOW_BENCH_TOKEN" \
    -H 'Content-Type: text/x-lua' --data-binary \
    "return {name = \"fan-$k\", trigger = tf.event(\"order.created\"),
             condition = function(ev, ctx) return ev.data.total > 0 end,
             action = function(ev, ctx)
               tf.enqueue{type = \"Step$k\", queue = \"fanout\", payload = {order = ev.data.order}}
             end}" >/dev/null
done
for r in $(seq "$runs"); do
  python3 - "$port" "$TASKFLOW_BENCH_TOKEN" "$secs" "$rules" <<'PY'
import http.client, json, sys, threading, time
port, token, secs, rules = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
lat, lock, stop = [], threading.Lock(), time.monotonic() + secs
def client(c):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = 0
    while time.monotonic() < stop:
        body = json.dumps({"name": "order.created", "data": {"order": f"{c}-{n}", "total": 10}})
        t0 = time.monotonic()
        conn.request("POST", "/v1/events", body, {"Authorization": f"Bearer {token}",
                                                 "Content-Type": "application/json"})
        r = conn.getresponse()
        got = json.loads(r.read())
        assert r.status == 202 and len(got["runs"]) == rules, (r.status, str(got)[:200])
        with lock:
            lat.append(time.monotonic() - t0)
        n += 1
start = time.monotonic()
threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
wall = time.monotonic() - start
lat.sort()
print(f"fanout: events={len(lat)} events_per_s={len(lat) / wall:.1f} "
      f"firings_per_s={len(lat) * rules / wall:.0f} "
      f"p50_ms={lat[len(lat) // 2] * 1000:.0f} p99_ms={lat[int(len(lat) * 0.99)] * 1000:.0f}")
PY
done
echo "# counts: runs $(sql "SELECT count(*) FROM rule_runs") fired $(sql "SELECT count(*) FROM rule_runs WHERE outcome = 'fired'"), jobs $(sql "SELECT count(*) FROM jobs WHERE queue = 'fanout'")"
