-- wrk script: external workers.  Each connection loops claim (up to
-- TASKFLOW_BENCH_CLAIM jobs, default 100) -> ack of everything it claimed
-- (one POST /v1/jobs/ack), through POST /v1/queues/{q}/claim, q from
-- TASKFLOW_BENCH_QUEUE (default bench).
-- Token from TASKFLOW_BENCH_TOKEN.  Prints jobs acknowledged per second.
local token = os.getenv("TASKFLOW_BENCH_TOKEN")
local claim_size = tonumber(os.getenv("TASKFLOW_BENCH_CLAIM") or "100")
local claim_path = "/v1/queues/" .. (os.getenv("TASKFLOW_BENCH_QUEUE") or "bench") .. "/claim"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  pending = {}   -- ack bodies waiting to be sent
  acked = 0
  claims = 0
  empty = 0
  claim_body = string.format('{"worker_id":"bench-%d","max_jobs":%d,"lease_ms":60000}',
    math.random(1, 1000000), claim_size)
  headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

function request()
  local ack = table.remove(pending)
  if ack then
    return wrk.format("POST", "/v1/jobs/ack", headers, ack)
  end
  claims = claims + 1
  return wrk.format("POST", claim_path, headers, claim_body)
end

function response(status, hdrs, body)
  if body:find('"results"', 1, true) then
    for _ in body:gmatch('"ok":true') do acked = acked + 1 end
    return
  end
  local acks = {}
  for id, token in body:gmatch('"id":"([^"]+)".-"lease_token":"([^"]+)"') do
    acks[#acks + 1] = string.format('{"id":"%s","lease_token":"%s","result":{}}', id, token)
  end
  if #acks == 0 then
    empty = empty + 1
  else
    table.insert(pending, '{"acks":[' .. table.concat(acks, ",") .. ']}')
  end
end

function done(summary, latency, requests)
  local total, nclaims, nempty = 0, 0, 0
  for _, t in ipairs(threads) do
    total = total + t:get("acked")
    nclaims = nclaims + t:get("claims")
    nempty = nempty + t:get("empty")
  end
  io.write(string.format("acked=%d claims=%d empty_claims=%d errors_status=%d jobs_per_s=%.0f\n",
    total, nclaims, nempty, summary.errors.status, total / (summary.duration / 1e6)))
end
