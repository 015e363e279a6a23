-- send_invoice.lua - a Lua executor that creates an invoice through an
-- invoicing service's HTTP API, then queues the receipt e-mail.
--
-- Upload it as the tenant's executor "send_invoice":
--   curl -X PUT "$TF/v1/executors/send_invoice" -H "Authorization: Bearer $KEY" \
--     -H 'Content-Type: text/x-lua' --data-binary @rules-examples/executors/send_invoice.lua
-- then submit jobs of type "SendInvoice":
--   {"type": "SendInvoice", "payload": {"customer": "c_42", "amount_cents": 1999,
--    "currency": "EUR", "api": "https://invoices.example.com"}}
--
-- How each answer of the service is mapped (docs/lua.md, "Errors"):
--   201         success: the invoice id is the job's result, and an
--               "EmailReceipt" job is queued; it is committed with this
--               success only, never when the attempt fails
--   409         the invoice exists already (a retried attempt): success
--   429         the service is busy: snooze for its Retry-After (seconds),
--               which spends no attempt
--   400, 422    the request is wrong and will stay wrong: fail for good
--   5xx, I/O    retryable: the job's retry policy decides
local function check(payload)
  if type(payload) ~= "table" then
    tf.fatal("the payload must be an object", "bad_payload")
  end
  if type(payload.customer) ~= "string" or payload.customer == "" then
    tf.fatal("payload.customer must be a customer id", "bad_payload")
  end
  if math.type(payload.amount_cents) ~= "integer" or payload.amount_cents <= 0 then
    tf.fatal("payload.amount_cents must be a positive integer", "bad_payload")
  end
  if type(payload.api) ~= "string" or not payload.api:match("^https?://") then
    tf.fatal("payload.api must be the service's http(s) base URL", "bad_payload")
  end
end

local function retry_after_ms(headers)
  local seconds = tonumber(headers["retry-after"] or "")
  if seconds == nil or seconds < 0 then
    return 30000
  end
  return math.min(math.floor(seconds * 1000), 3600000)
end

return {
  name = "send_invoice",
  handles = {"SendInvoice"},
  timeout_ms = 15000,

  run = function(job, ctx)
    local p = job.payload
    check(p)
    local ok, res = pcall(tf.http.request, {
      method = "POST",
      url = p.api .. "/v1/invoices",
      headers = {
        ["Content-Type"] = "application/json",
        -- The job id makes the call idempotent on the service's side.
        ["Idempotency-Key"] = job.id,
      },
      body = tf.json.encode({
        customer = p.customer,
        amount_cents = p.amount_cents,
        currency = p.currency or "EUR",
      }),
      timeout_ms = 10000,
    })
    if not ok then
      -- Transport failures (timeout, refused, DNS) are worth another try.
      error({type = "invoice_api_unreachable",
             message = type(res) == "table" and res.message or tostring(res)})
    end

    if res.status == 201 or res.status == 409 then
      local invoice = tf.json.decode(res.body)
      local receipt = tf.enqueue{
        type = "EmailReceipt",
        queue = "emails",
        payload = {customer = p.customer, invoice_id = invoice.id},
      }
      tf.log.info("invoice created", {invoice_id = invoice.id, receipt_job = receipt,
                                      attempt = job.attempt})
      return {invoice_id = invoice.id, receipt_job = receipt}
    elseif res.status == 429 then
      local wait = retry_after_ms(res.headers)
      tf.log.warn("invoicing service busy, snoozing", {wait_ms = wait})
      return tf.snooze(wait)
    elseif res.status == 400 or res.status == 422 then
      tf.fatal("the invoicing service refused the invoice: " .. res.body, "invoice_rejected")
    else
      error({type = "invoice_api_" .. res.status,
             message = "the invoicing service answered " .. res.status})
    end
  end,
}
