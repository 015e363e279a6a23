#!/usr/bin/env bash
# A cron minute (issue 9): 1,000 tenants with 10 rules each, every rule
# "* * * * *" creating one job per firing; the test clock is moved onto
# the minute and the script measures, in real time, how long until all
# 10,000 firings are recorded (run, job and rule's next fire time in one
# transaction each; fsync on).  Prints the seconds for each minute and the
# counts as a check.  Uploading the 10,000 rules (each compiled in a scratch
# sandbox) takes a minute or two before the first measure.
#   bench/cron.sh [tenants (1000)] [rules per tenant (10)] [minutes (3)]
set -euo pipefail
cd "$(dirname "$0")/.."
tenants=${1:-1000}
per=${2:-10}
minutes=${3:-3}

. bench/common.sh
bench_start TASKFLOW_CLOCK=test TASKFLOW_ALLOW_TEST_CLOCK=1
total=$((tenants * per))
echo "# uploading $total rules for $tenants tenants"
python3 - "$port" "$bench_admin" "$tenants" "$per" <<'PY'
import concurrent.futures, json, sys, urllib.request
port, admin, tenants, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
def call(method, path, token, body, ctype="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
def tenant(i):
    t = call("POST", "/v1/admin/tenants", admin, {"name": f"cron-{i}"})
    key = call("POST", f"/v1/admin/tenants/{t['id']}/keys", admin, {})["token"]
    for k in range(per):
        src = (f'return {{name = "minutely-{k}", trigger = tf.cron("* * * * *"),\n'
               f'  action = function(ev, ctx) tf.enqueue{{type = "Tick", queue = "cron-bench",'
               f' payload = {{at = ev.at, rule = {k}}}}} end}}\n').encode()
        call("POST", "/v1/rules", key, src, "text/x-lua")
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(tenant, range(tenants)))
PY
now_ms() { curl -fsS "localhost:$port/v1/admin/clock" -H "Authorization: Bearer $bench_admin" |
  python3 -c 'import json,sys,datetime; t=json.load(sys.stdin)["now"]; print(round(datetime.datetime.fromisoformat(t.replace("Z","+00:00")).timestamp()*1000))'; }
set_clock() {
  local iso
  iso=$(python3 -c 'import sys,datetime; print(datetime.datetime.fromtimestamp(int(sys.argv[1])/1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"))' "$1")
  curl -fsS -X POST "localhost:$port/v1/admin/clock" -H "Authorization: Bearer $bench_admin" \
    -H 'Content-Type: application/json' \
    -d "{\"now\": \"$iso\"}" >/dev/null
}
results=()
for m in $(seq "$minutes"); do
  minute=$(( ($(now_ms) / 60000 + 1) * 60000 ))
  before=$(sql "SELECT count(*) FROM rule_runs")
  start=$(date +%s.%N)
  set_clock "$minute"
  while [ "$(sql "SELECT count(*) FROM rule_runs")" -lt $((before + total)) ]; do sleep 0.05; done
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  echo "cron minute $m: rules=$total seconds=$secs"
  results+=("$secs")
  set_clock $((minute + 30000))  # half a minute on: no rule is due
done
echo "# counts: runs $(sql "SELECT count(*) FROM rule_runs") (fired $(sql "SELECT count(*) FROM rule_runs WHERE outcome = 'fired'")," \
     "skipped $(sql "SELECT count(*) FROM rule_runs WHERE outcome = 'skipped'")), jobs $(sql "SELECT count(*) FROM jobs WHERE type = 'Tick'")," \
     "distinct (rule, minute) $(sql "SELECT count(DISTINCT (rule_id, dedup_key)) FROM rule_runs")"
printf '%s\n' "${results[@]}" | median | sed 's/^/median seconds: /'
