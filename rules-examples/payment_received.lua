-- payment_received.lua - a signed webhook from the payment provider
-- ("payment received") queues the order's fulfilment.
--
-- Upload it as the tenant; the answer holds the hook's URL and secret (the
-- secret is shown once: give it to the sender):
--   curl -X POST "$TF/v1/rules" -H "Authorization: Bearer $KEY" \
--     -H 'Content-Type: text/x-lua' --data-binary @rules-examples/payment_received.lua
-- The sender signs each delivery (scheme "taskflow", docs/rules.md):
--   TaskFlow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
--   TaskFlow-Event-Id: <its delivery id>   (a repeated delivery fires nothing)
-- with a body such as {"type": "payment.received", "order": "o-17", "amount_cents": 4200}.
--
-- The fulfilment job carries the delivery's id as its correlation id, and
-- the jobs that follow it (email_after_fulfilment.lua) inherit it: one
-- query (GET /v1/jobs?correlation_id=<delivery id>) finds them all.
return {
  name = "payment-received",
  trigger = tf.webhook{ scheme = "taskflow" },

  condition = function(ev, ctx)
    return ev.body.type == "payment.received"
  end,

  action = function(ev, ctx)
    local order = ev.body.order
    if type(order) ~= "string" or order == "" then
      error({ type = "bad_delivery", message = "the delivery names no order" })
    end
    tf.enqueue{
      type = "Fulfil",
      queue = "fulfilment",
      payload = { order = order, amount_cents = ev.body.amount_cents },
    }
  end,
}
