-- email_after_fulfilment.lua - when a Fulfil job succeeds, queue the
-- shipping e-mail with what the fulfilment returned (its tracking number).
--
-- A job.succeeded rule sees the job in ev.job: its payload, its result and
-- its correlation id, which the e-mail job inherits.  Together with
-- payment_received.lua this is a small workflow: delivery -> Fulfil ->
-- SendEmail.
return {
  name = "email-after-fulfilment",
  trigger = tf.on("job.succeeded", { type = "Fulfil" }),

  action = function(ev, ctx)
    local result = ev.job.result or {}
    tf.enqueue{
      type = "SendEmail",
      queue = "mail",
      payload = {
        template = "order-shipped",
        order = ev.job.payload.order,
        tracking = result.tracking,
      },
    }
  end,
}
