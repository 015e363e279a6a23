-- wrk script: POST /v1/jobs, one small job per request, over keep-alive.
-- Token from the environment (TASKFLOW_BENCH_TOKEN).
local token = os.getenv("TASKFLOW_BENCH_TOKEN")
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  n = 0
end

function request()
  n = n + 1
  local body = string.format('{"type":"bench","queue":"bench","payload":{"t":%d,"n":%d}}', id, n)
  return wrk.format("POST", "/v1/jobs", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors_status=%d p50_ms=%.2f p99_ms=%.2f jobs_per_s=%.0f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6)))
end
