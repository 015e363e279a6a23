-- thumbnail.lua - a Lua executor that works out a thumbnail's size (the
-- part of the work that needs no image library): the image scaled to fit
-- `max` pixels on its longer side, keeping its aspect ratio.
--
-- Upload it as the tenant's executor "thumbnail":
--   curl -X PUT "$TF/v1/executors/thumbnail" -H "Authorization: Bearer $KEY" \
--     -H 'Content-Type: text/x-lua' --data-binary @rules-examples/executors/thumbnail.lua
-- thumbnail_on_upload.lua queues its jobs.
return {
  name = "thumbnail",
  handles = { "MakeThumbnail" },
  timeout_ms = 2000,

  run = function(job, ctx)
    local p = job.payload
    if math.type(p.width) ~= "integer" or math.type(p.height) ~= "integer"
        or p.width <= 0 or p.height <= 0 then
      tf.fatal("payload.width and payload.height must be positive integers", "bad_payload")
    end
    local max = p.max or 256
    local scale = math.min(1, max / math.max(p.width, p.height))
    return {
      image = p.image,
      width = math.max(1, math.floor(p.width * scale + 0.5)),
      height = math.max(1, math.floor(p.height * scale + 0.5)),
    }
  end,
}
