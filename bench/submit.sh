#!/usr/bin/env bash
# Submission benchmark: single-job POST /v1/jobs over keep-alive (wrk, 64
# connections) and POST /v1/jobs/batch with 1000 jobs per request, against a
# private PostgreSQL 15 on this machine with initdb defaults (fsync and
# synchronous_commit on: every answered job is durable).
#   bench/submit.sh [seconds per run (10)] [runs (3)]
# Prints one line per run and the median of each case.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
runs=${2:-3}

scripts/deps
scripts/build release >/dev/null
export TASKFLOW_PG_DIR=$PWD/.taskflow/pg-bench TASKFLOW_PG_PORT=${TASKFLOW_BENCH_PG_PORT:-54389}
scripts/pg start >/dev/null
base=$(scripts/pg url)
db=bench_$$
scripts/pg psql -q -c "CREATE DATABASE $db" >/dev/null
url=${base%/*}/$db
port=${TASKFLOW_BENCH_PORT:-18181}
admin=bench-admin-$$
log=$(mktemp)
TASKFLOW_DATABASE_URL=$url TASKFLOW_ADMIN_TOKEN=$admin TASKFLOW_PORT=$port \
  TASKFLOW_LOG_LEVEL=warn build/taskflow serve >"$log" 2>&1 &
server=$!
cleanup() {
  kill -INT $server 2>/dev/null || true
  wait $server 2>/dev/null || true
  scripts/pg psql -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  scripts/pg stop >/dev/null 2>&1 || true
  rm -f "$log"
}
trap cleanup EXIT
for _ in $(seq 50); do curl -sf "localhost:$port/readyz" >/dev/null && break; sleep 0.2; done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
tenant=$(curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d '{"name":"bench"}' "localhost:$port/v1/admin/tenants" | json id)
export TASKFLOW_BENCH_TOKEN=$(curl -sf -H "Authorization: Bearer $admin" \
  -H 'Content-Type: application/json' -d '{}' "localhost:$port/v1/admin/tenants/$tenant/keys" |
  json token)

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

echo "# $(nproc) cores, PostgreSQL $(scripts/pg psql -tA -c 'SHOW server_version'),"\
     "fsync=$(scripts/pg psql -tA -c 'SHOW fsync'),"\
     "synchronous_commit=$(scripts/pg psql -tA -c 'SHOW synchronous_commit')"
single=() batch=()
for r in $(seq "$runs"); do
  out=$(wrk -t2 -c64 -d"${secs}s" -s bench/submit_single.lua "http://127.0.0.1:$port" | tail -1)
  echo "single run $r: $out"
  single+=("$out")
done
for r in $(seq "$runs"); do
  out=$(wrk -t2 -c4 -d"${secs}s" -s bench/submit_batch.lua "http://127.0.0.1:$port" | tail -1)
  echo "batch  run $r: $out"
  batch+=("$out")
done
for kind in single batch; do
  declare -n lines=$kind
  printf '%s median: jobs_per_s=%s p50_ms=%s p99_ms=%s\n' "$kind" \
    "$(printf '%s\n' "${lines[@]}" | field jobs_per_s | median)" \
    "$(printf '%s\n' "${lines[@]}" | field p50_ms | median)" \
    "$(printf '%s\n' "${lines[@]}" | field p99_ms | median)"
done
echo "jobs in the database: $(psql -X -tA "$url" -c 'SELECT count(*) FROM jobs')"
