#!/usr/bin/env bash
# Processing benchmark (see bench/README.md):
#  1. external workers: jobs/s through POST /v1/queues/{q}/claim (100 per
#     claim) and POST /v1/jobs/ack (everything claimed, one request), with
#     wrk (bench/worker_loop.lua) on 8 connections (TaskFlow with 4 database
#     connections per loop), over a preloaded queue;
#  2. the built-in http executor: jobs/s for N jobs whose executor calls a
#     trivial local endpoint (TaskFlow's own GET /healthz);
#  3. side by side, the same number of jobs preloaded into a paused queue
#     and drained, in alternating order, by the external workers of (1) and
#     by a trivial Lua executor (uploaded through the API): jobs/s from the
#     first attempt's start to the last one's end, and TaskFlow's CPU per job
#     (the whole process: API, runner, Lua host, database client);
#  4. latency from submission to a long-polling worker holding the job
#     (bench/latency.py), p50 and p99.
#   bench/process.sh [seconds per run (8)] [runs (3)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
runs=${2:-3}

. bench/common.sh
bench_start TASKFLOW_HTTP_ALLOW_LOOPBACK=true \
  TASKFLOW_WORKER_CONCURRENCY="${TASKFLOW_BENCH_CONCURRENCY:-128}" \
  TASKFLOW_PG_POOL_SIZE="${TASKFLOW_BENCH_POOL:-4}"

# Preloads $1 jobs (1000 per request) into queue $2 with executor JSON $3.
preload() {
  python3 - "$port" "$TASKFLOW_BENCH_TOKEN" "$1" "$2" "$3" <<'PY'
import http.client, json, sys
port, token, n, queue, executor = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=120)
hdrs = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
for start in range(0, n, 1000):
    jobs = [{"type": "noop", "queue": queue, "payload": {"i": start + i}}
            for i in range(min(1000, n - start))]
    if executor != "null":
        for j in jobs:
            j["executor"] = json.loads(executor)
    conn.request("POST", "/v1/jobs/batch", body=json.dumps({"jobs": jobs}), headers=hdrs)
    r = conn.getresponse(); r.read()
    assert r.status == 201, r.status
PY
}


lines=()
for r in $(seq "$runs"); do
  preload 250000 bench null
  sql "VACUUM ANALYZE" >/dev/null
  out=$(wrk -t2 -c8 -d"${secs}s" -s bench/worker_loop.lua "http://127.0.0.1:$port" | tail -1)
  echo "external workers run $r: $out"
  lines+=("$out")
  sql "DELETE FROM ready; UPDATE jobs SET state = 6 WHERE state = 0" >/dev/null
done
printf 'external workers median: jobs_per_s=%s\n' \
  "$(printf '%s\n' "${lines[@]}" | field jobs_per_s | median)"

exec_lines=()
n=${TASKFLOW_BENCH_EXEC_JOBS:-20000}
for r in $(seq "$runs"); do
  before=$(sql "SELECT count(*) FROM jobs WHERE queue = 'exec' AND state = 3")
  start=$(date +%s.%N)
  preload "$n" exec "{\"kind\":\"http\",\"url\":\"http://127.0.0.1:$port/healthz\",\"method\":\"GET\"}"
  while [ "$(sql "SELECT count(*) FROM jobs WHERE queue = 'exec' AND state IN (3,4,5,6)")" \
          -lt $((before + n)) ]; do sleep 0.05; done
  end=$(date +%s.%N)
  rate=$(awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')
  failed=$(sql "SELECT count(*) FROM jobs WHERE queue = 'exec' AND state <> 3")
  echo "http executor run $r: jobs=$n seconds=$(awk -v s="$start" -v e="$end" \
    'BEGIN { printf "%.2f", e - s }') jobs_per_s=$rate not_succeeded=$failed"
  exec_lines+=("x jobs_per_s=$rate")
done
printf 'http executor median: jobs_per_s=%s\n' \
  "$(printf '%s\n' "${exec_lines[@]}" | field jobs_per_s | median)"

# The whole process's CPU (user + system) in microseconds.
server_cpu_us() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1000000 / hz }' \
    "/proc/$bench_server/stat"
}

curl -sf -X PUT "localhost:$port/v1/executors/noop" -H "Authorization: Bearer $TASKFLOW_BENCH_TOKEN" \
  -H 'Content-Type: text/x-lua' --data-binary \
  'return {name = "noop", handles = {}, run = function(job, ctx) return {ok = true, i = job.payload.i} end}' \
  >/dev/null
pause_queue() {
  curl -sf -X PUT "localhost:$port/v1/admin/queues/$1" -H "Authorization: Bearer $bench_admin" \
    -H 'Content-Type: application/json' -d "{\"paused\": $2}" >/dev/null
}
# Jobs/s of queue $1's last drain: its jobs over the time from the first
# attempt's start to the last attempt's end (the same formula for both).
drain_rate() {
  sql "SELECT round(count(*) / extract(epoch FROM max(finished_at) - min(started_at)))
       FROM jobs WHERE queue = '$1' AND state = 3"
}
# Preloads $n jobs into paused queue $1 (executor JSON $2), vacuums, and
# resumes the queue; prints TaskFlow's CPU counter before the resume.
stage() {
  sql "DELETE FROM jobs WHERE queue = '$1'" >/dev/null
  pause_queue "$1" true
  preload "$n" "$1" "$2"
  sql "VACUUM ANALYZE" >/dev/null
  server_cpu_us
  pause_queue "$1" false
}
wait_drained() {
  while [ "$(sql "SELECT count(*) FROM jobs WHERE queue = '$1' AND state IN (3,4,5,6)")" \
          -lt "$n" ]; do sleep 0.05; done
}
side_ext() {
  local cpu0 cpu1
  cpu0=$(stage side null)
  TASKFLOW_BENCH_QUEUE=side timeout 600 wrk -t2 -c8 -d600s -s bench/worker_loop.lua \
    "http://127.0.0.1:$port" >/dev/null &
  local wrk_pid=$!
  wait_drained side
  cpu1=$(server_cpu_us)
  kill "$wrk_pid" 2>/dev/null; wait "$wrk_pid" 2>/dev/null || true
  echo "side by side run $r: external workers jobs_per_s=$(drain_rate side)" \
    "taskflow_cpu_us_per_job=$(( (cpu1 - cpu0) / n ))"
}
side_lua() {
  local cpu0 cpu1
  cpu0=$(stage lua '{"kind":"lua","name":"noop"}')
  wait_drained lua
  cpu1=$(server_cpu_us)
  echo "side by side run $r: lua executor jobs_per_s=$(drain_rate lua)" \
    "not_succeeded=$(sql "SELECT count(*) FROM jobs WHERE queue = 'lua' AND state <> 3")" \
    "taskflow_cpu_us_per_job=$(( (cpu1 - cpu0) / n ))"
}
# The same number of jobs preloaded into a paused queue, drained by external
# workers (as above) and by the Lua executor, in alternating order.
side_lines=()
n=${TASKFLOW_BENCH_SIDE_JOBS:-50000}
for r in $(seq "$runs"); do
  if [ $((r % 2)) -eq 1 ]; then first=side_ext; second=side_lua; else first=side_lua; second=side_ext; fi
  side_lines+=("$($first)") && echo "${side_lines[-1]}"
  side_lines+=("$($second)") && echo "${side_lines[-1]}"
done
for path in "external workers" "lua executor"; do
  printf 'side by side median, %s: jobs_per_s=%s\n' "$path" \
    "$(printf '%s\n' "${side_lines[@]}" | grep "$path" | field jobs_per_s | median)"
done

for r in $(seq "$runs"); do
  echo "latency run $r: $(python3 bench/latency.py "http://127.0.0.1:$port" \
    "$TASKFLOW_BENCH_TOKEN" 500)"
done
