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

. bench/common.sh
bench_start
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
echo "jobs in the database: $(sql 'SELECT count(*) FROM jobs')"
