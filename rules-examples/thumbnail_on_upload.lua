-- thumbnail_on_upload.lua - a custom event ("image.uploaded") queues a
-- thumbnail job that runs on the tenant's own Lua executor
-- (executors/thumbnail.lua), named in the job's executor.
--
-- The application posts the event:
--   curl -X POST "$TF/v1/events" -H "Authorization: Bearer $KEY" \
--     -d '{"name": "image.uploaded", "id": "img-9", "data": {"image": "img-9",
--          "width": 4000, "height": 3000}}'
-- (the id makes a repeated post fire nothing).
return {
  name = "thumbnail-on-upload",
  trigger = tf.event("image.uploaded"),

  condition = function(ev, ctx)
    return type(ev.data) == "table" and math.type(ev.data.width) == "integer"
  end,

  action = function(ev, ctx)
    tf.enqueue{
      type = "MakeThumbnail",
      queue = "images",
      executor = { kind = "lua", name = "thumbnail" },
      payload = { image = ev.data.image, width = ev.data.width, height = ev.data.height,
                  max = 256 },
    }
  end,
}
