-- dead_job_alert.lua - a job that died (its attempts ran out) posts an
-- alert to the tenant's alert webhook through the built-in `http`
-- executor.
--
-- The alert URL is a tenant attribute:
--   curl -X PATCH "$TF/v1/admin/tenants/$TENANT" -H "Authorization: Bearer $ADMIN" \
--     -d '{"attributes": {"alert_url": "https://alerts.example.com/hooks/taskflow"}}'
-- Jobs of the "alerts" queue itself are left out, so that an alert that
-- dies does not alert about itself.
return {
  name = "dead-job-alert",
  trigger = tf.on("job.dead"),

  condition = function(ev, ctx)
    return ev.job.queue ~= "alerts" and ctx.tenant.attributes.alert_url ~= nil
  end,

  action = function(ev, ctx)
    tf.enqueue{
      type = "Alert",
      queue = "alerts",
      executor = { kind = "http", url = ctx.tenant.attributes.alert_url, method = "POST" },
      payload = {
        text = string.format("job %s (%s) died after %d attempts: %s", ev.job.id, ev.job.type,
                             ev.job.attempts, ev.job.error and ev.job.error.message or "?"),
        job = ev.job.id,
        error = ev.job.error,
      },
      retry_policy = { strategy = "exponential", max_attempts = 3 },
    }
  end,
}
