#!/usr/bin/env bash
# Webhook firings (issue 9): a webhook rule (scheme taskflow) whose action
# creates one job; wrk posts one signed delivery per request over
# keep-alive (16 connections), so each request checks the signature, runs
# the rule's action in the tenant's Lua VM and commits the run and the job
# in one transaction (fsync on).  Then the same with a rule that also
# counts its firings in ctx.state (every firing of it waits for the one
# before: the state's version).  Prints firings/s and p50/p99, then the
# database's counts of runs, jobs and the state as a check.
#   bench/hooks.sh [seconds per run (10)] [runs (3)]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
runs=${2:-3}

. bench/common.sh
bench_start
for variant in ${TASKFLOW_BENCH_VARIANTS:-stateless counting}; do
state=""
[ "$variant" = counting ] && state="ctx.state.n = (ctx.state.n or 0) + 1"
rule=$(curl -fsS -X POST "localhost:$port/v1/rules" -H "Authorization: Bearer $TASKFLOW_BENCH_TOKEN" \
  -H 'Content-Type: text/x-lua' --data-binary \
  "return {name = \"bench-$variant\", trigger = tf.webhook(),
           action = function(ev, ctx)
             $state
             tf.enqueue{type = \"Fulfil\", queue = \"hooks-$variant\", payload = {order = ev.body.order}}
           end}")
rule_id=$(echo "$rule" | bench_json id)
path=$(echo "$rule" | bench_json hook_url)
secret=$(echo "$rule" | bench_json hook_secret)
body='{"order":7,"amount":1200}'
t=$(date +%s)
sig="t=$t,v1=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/.* //')"
lines=()
for r in $(seq "$runs"); do
  out=$(TASKFLOW_BENCH_HOOK_PATH=$path TASKFLOW_BENCH_HOOK_BODY=$body TASKFLOW_BENCH_HOOK_SIG=$sig \
    wrk -t2 -c"${TASKFLOW_BENCH_CONNECTIONS:-16}" -d"${secs}s" -s bench/hook_post.lua "http://127.0.0.1:$port" | tail -1)
  echo "webhooks ($variant) run $r: $out"
  lines+=("$out")
done
printf 'webhooks (%s) median: firings_per_s=%s p50_ms=%s p99_ms=%s\n' "$variant" \
  "$(printf '%s\n' "${lines[@]}" | field firings_per_s | median)" \
  "$(printf '%s\n' "${lines[@]}" | field p50_ms | median)" \
  "$(printf '%s\n' "${lines[@]}" | field p99_ms | median)"
sleep 3 # requests wrk left in flight finish
echo "check ($variant): $(sql "SELECT 'fired_runs=' || (SELECT count(*) FROM rule_runs
  WHERE rule_id = '$rule_id' AND outcome = 'fired') || ' jobs=' || (SELECT count(*) FROM jobs
  WHERE queue = 'hooks-$variant') || ' state_n=' || coalesce((SELECT state ->> 'n' FROM rule_states
  WHERE rule_id = '$rule_id'), '-')")"
done
