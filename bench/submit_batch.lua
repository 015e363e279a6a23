-- wrk script: POST /v1/jobs/batch with TASKFLOW_BENCH_BATCH (default 1000)
-- small jobs per request.  Token from TASKFLOW_BENCH_TOKEN.
local token = os.getenv("TASKFLOW_BENCH_TOKEN")
local size = tonumber(os.getenv("TASKFLOW_BENCH_BATCH") or "1000")

function init(args)
  local jobs = {}
  for i = 1, size do
    jobs[i] = string.format('{"type":"bench","queue":"bench","payload":{"i":%d}}', i)
  end
  body = '{"jobs":[' .. table.concat(jobs, ",") .. ']}'
end

function request()
  return wrk.format("POST", "/v1/jobs/batch", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("requests=%d errors_status=%d p50_ms=%.2f p99_ms=%.2f jobs_per_s=%.0f\n",
    summary.requests, summary.errors.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests * size / (summary.duration / 1e6)))
end
