-- pro_billing.lua - a platform rule (the operator's, evaluated once for
-- every tenant): every day at 07:00 in Oslo, for each tenant on plan
-- "pro", queue a RecalculateBilling job if the tenant's usage changed
-- since the last run.
--
-- The usage is a tenant attribute the billing side keeps current:
--   curl -X PATCH "$TF/v1/admin/tenants/$TENANT" -H "Authorization: Bearer $ADMIN" \
--     -d '{"attributes": {"usage": 1234}}'
-- Upload it as the operator:
--   curl -X POST "$TF/v1/admin/rules" -H "Authorization: Bearer $ADMIN" \
--     -H 'Content-Type: text/x-lua' --data-binary @rules-examples/pro_billing.lua
--
-- 07:00 is local time: 05:00Z in summer, 06:00Z in winter; the day the
-- clocks change it still fires once, at 07:00 of that day.  ctx.state is
-- kept per rule and tenant: each tenant's last usage is its own.  A tenant
-- not on "pro" is recorded as a run whose condition was false.
return {
  name = "pro-billing",
  trigger = tf.cron("0 7 * * *", { timezone = "Europe/Oslo" }),

  condition = function(ev, ctx)
    return ctx.tenant.plan == "pro"
  end,

  action = function(ev, ctx)
    local usage = ctx.tenant.attributes.usage
    if usage == nil then
      tf.log.warn("tenant has no usage attribute", { tenant = ctx.tenant.id })
      return
    end
    if usage ~= ctx.state.last_usage then
      tf.enqueue{
        type = "RecalculateBilling",
        queue = "billing",
        payload = { tenant = ctx.tenant.id, usage = usage, previous = ctx.state.last_usage,
                    day = ev.at },
        retry_policy = { strategy = "exponential", max_attempts = 5 },
      }
      ctx.state.last_usage = usage
    end
  end,
}
