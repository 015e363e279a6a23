-- wrk script: POST one signed webhook delivery (scheme taskflow) again and
-- again, without an event id, so every request fires the rule (signature
-- check, the rule's action in Lua creating one job, the run, its job and
-- its state committed).  URL path, body and signature from the environment
-- (TASKFLOW_BENCH_HOOK_PATH, _BODY, _SIG: bench/hooks.sh signs the body
-- once; the signature stays fresh for the 5 minute tolerance).
local path = os.getenv("TASKFLOW_BENCH_HOOK_PATH")
local body = os.getenv("TASKFLOW_BENCH_HOOK_BODY")
local sig = os.getenv("TASKFLOW_BENCH_HOOK_SIG")

function request()
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["TaskFlow-Signature"] = sig,
  }, body)
end

local non202 = 0
function response(status, headers, b)
  if status ~= 202 then non202 = non202 + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors_status=%d p50_ms=%.2f p99_ms=%.2f firings_per_s=%.0f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
