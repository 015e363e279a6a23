#!/usr/bin/env bash
# Webhook firings (issue 9): a webhook rule (scheme taskflow) whose action
# creates one job; wrk posts one signed delivery per request over
# keep-alive (16 connections), so each request checks the signature, runs
# the rule's action in the tenant's Lua VM and commits the run, the job and
# the state in one transaction (fsync on).  Prints firings/s and p50/p99,
# then the database's counts of runs and jobs as a check.
#   bench/hooks.sh [seconds per run (10)] [runs (3)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
runs=${2:-3}

. bench/common.sh
bench_start
rule=$(curl -fsS -X POST "localhost:$port/v1/rules" -H "Authorization: Bearer $TASKFLOW_BENCH_TOKEN" \
  -H 'Content-Type: text/x-lua' --data-binary \
  'return {name = "bench-hook", trigger = tf.webhook(),
           action = function(ev, ctx)
             ctx.state.n = (ctx.state.n or 0) + 1
             tf.enqueue{type = "Fulfil", queue = "hooks", payload = {order = ev.body.order}}
           end}')
path=$(echo "$rule" | bench_json hook_url)
secret=$(echo "$rule" | bench_json hook_secret)
body='{"order":7,"amount":1200}'
t=$(date +%s)
sig="t=$t,v1=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/.* //')"
lines=()
for r in $(seq "$runs"); do
  out=$(TASKFLOW_BENCH_HOOK_PATH=$path TASKFLOW_BENCH_HOOK_BODY=$body TASKFLOW_BENCH_HOOK_SIG=$sig \
    wrk -t2 -c16 -d"${secs}s" -s bench/hook_post.lua "http://127.0.0.1:$port" | tail -1)
  echo "webhooks run $r: $out"
  lines+=("$out")
done
printf 'webhooks median: firings_per_s=%s p50_ms=%s p99_ms=%s\n' \
  "$(printf '%s\n' "${lines[@]}" | field firings_per_s | median)" \
  "$(printf '%s\n' "${lines[@]}" | field p50_ms | median)" \
  "$(printf '%s\n' "${lines[@]}" | field p99_ms | median)"
echo "check: runs=$(sql "SELECT count(*) FROM rule_runs WHERE outcome = 'fired'")" \
  "jobs=$(sql "SELECT count(*) FROM jobs WHERE queue = 'hooks'")" \
  "state_n=$(sql "SELECT state ->> 'n' FROM rule_states")"
