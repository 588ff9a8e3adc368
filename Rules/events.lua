-- The event catalog: where each event may appear and which fields it carries.
-- Field types: string, number, integer, boolean, object, array, any; a trailing ? makes a
-- field optional. Undeclared events are allowed (see tiers.lua) but get no checks.
-- batch = { window_ms, keep = "all" | "latest", by = "field" } holds an event's messages per
-- channel for the window and delivers them together; rate = { per_minute, per = "channel" |
-- "user" } gives an event its own budget instead of the channel's. on_publish(msg, user, ch)
-- runs after a message is accepted and may emit(channel, event, payload) derived events, which
-- are checked against this catalog and published like messages of their own.

event "form:updated" {
  on = { "form:responses:*", "supplier:dashboard:*" },
  fields = { form_id = "string" },
}

event "form:response:new" {
  on = { "form:responses:*", "supplier:dashboard:*" },
  critical = true,
  fields = { form_id = "string", response_id = "string" },
  -- A new response on a form also lands on the dashboard of the supplier who owns the form.
  on_publish = function(msg, user, ch)
    if ch.form_id == nil then return end  -- already on a dashboard
    for _, supplier in ipairs(related("form_owner", ch.form_id)) do
      emit("supplier:dashboard:" .. supplier, "form:response:new", msg.payload)
    end
  end,
}

event "form:response:updated" {
  on = { "form:responses:*", "supplier:dashboard:*" },
  fields = { form_id = "string", response_id = "string" },
}

event "form:field:completed" {
  on = { "form:responses:*" },
  fields = { form_id = "string", response_id = "string", field_id = "string" },
}

event "journey:step:completed" {
  on = { "journey:progress:*", "couple:dashboard:*", "supplier:dashboard:*" },
  critical = true,
  fields = { journey_id = "string", step_id = "string" },
}

event "journey:email:sent" {
  on = { "journey:progress:*" },
  fields = { journey_id = "string", email_id = "string" },
}

event "journey:email:opened" {
  on = { "journey:progress:*" },
  fields = { journey_id = "string", email_id = "string" },
}

event "journey:task:due" {
  on = { "journey:progress:*", "supplier:dashboard:*" },
  fields = { journey_id = "string", task_id = "string", due_at = "string" },
}

event "user:typing" {
  on = { "collaboration:*" },
  replay = false,
  -- At most one typing update per typist per 100 ms reaches subscribers: the newest.
  batch = { window_ms = 100, keep = "latest", by = "user_id" },
  -- Typing has a budget of its own (20 a second per typist), so it never uses up the
  -- channel's 100 messages a minute that comments and saves need.
  rate = { per_minute = 1200, per = "user" },
  fields = { user_id = "string" },
}

event "user:online" {
  on = { "collaboration:*" },
  replay = false,
  fields = { user_id = "string", status = "string?" },
}

event "document:saved" {
  on = { "collaboration:*" },
  fields = { document_id = "string", version = "integer?" },
}

event "comment:added" {
  on = { "collaboration:*", "supplier:dashboard:*" },
  fields = { comment_id = "string", text = "string" },
  -- A comment in a collaboration also lands on the supplier's dashboard.
  on_publish = function(msg, user, ch)
    if ch.couple_id == nil then return end  -- already on a dashboard
    emit("supplier:dashboard:" .. ch.supplier_id, "comment:added", msg.payload)
  end,
}
