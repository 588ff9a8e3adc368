-- The event catalog of events.lua: undeclared events pass (allow_undeclared_events(true) in
-- tiers.lua), declared events keep their channel patterns and field checks.

local supplier_s1 = { sub = "u-s1", role = "supplier", supplier_id = "s1" }
local supplier_s2 = { sub = "u-s2", role = "supplier", supplier_id = "s2" }
local couple_c1   = { sub = "u-c1", role = "couple", couple_id = "c1" }
local admin       = { sub = "ops", role = "admin" }

test("undeclared events are allowed, the channel's rule still applies", function()
  expect_send(supplier_s1, "collaboration:s1:c1", "free-form", { anything = true }, true)
  expect_send(supplier_s1, "supplier:dashboard:s1", "my:own:event", nil, true)
  expect_send(supplier_s2, "collaboration:s1:c1", "free-form", {}, false, "may collaborate here")
end)

test("declared events check their fields", function()
  expect_send(supplier_s1, "collaboration:s1:c1", "comment:added", { comment_id = "k1", text = "hi" }, true)
  expect_send(supplier_s1, "collaboration:s1:c1", "comment:added", { comment_id = "k1" }, false,
    "field text must be string, got nothing")
  expect_send(supplier_s1, "collaboration:s1:c1", "comment:added", { comment_id = "k1", text = 5 }, false,
    "field text must be string, got a number")
  expect_send(supplier_s1, "collaboration:s1:c1", "comment:added", nil, false, "needs an object payload")
  -- field checks come before the hooks: an admin cannot skip them
  expect_send(admin, "collaboration:s1:c1", "comment:added", { text = "hi" }, false, "field comment_id")
end)

test("optional and integer fields", function()
  expect_send(couple_c1, "collaboration:s1:c1", "document:saved", { document_id = "d1" }, true)
  expect_send(couple_c1, "collaboration:s1:c1", "document:saved", { document_id = "d1", version = 3 }, true)
  expect_send(couple_c1, "collaboration:s1:c1", "document:saved", { document_id = "d1", version = 1.5 }, false,
    "field version must be integer?")
  expect_send(couple_c1, "collaboration:s1:c1", "user:online", { user_id = "u-c1", status = "away" }, true)
  expect_send(couple_c1, "collaboration:s1:c1", "user:online", { user_id = "u-c1", status = true }, false, "status")
end)

test("declared events only appear on their channels", function()
  expect_send(supplier_s1, "collaboration:s1:c1", "user:typing", { user_id = "u-s1" }, true)
  expect_send(supplier_s1, "supplier:dashboard:s1", "user:typing", { user_id = "u-s1" }, false,
    "event user:typing is not allowed on supplier:dashboard:s1")
  expect_send(admin, "system:announcements", "comment:added", { comment_id = "k1", text = "hi" }, false,
    "not allowed on system:announcements")
end)

test("form events: fields, then the form_owner relation", function()
  local response = { form_id = "f1", response_id = "r1" }
  expect_send(supplier_s1, "form:responses:f1", "form:response:new", response, true)
  expect_send(supplier_s1, "supplier:dashboard:s1", "form:response:new", response, true)
  expect_send(supplier_s1, "form:responses:f1", "form:response:new", { form_id = "f1" }, false, "field response_id")
  expect_send(supplier_s2, "form:responses:f1", "form:response:new", response, false, "only the supplier who owns form f1")
  expect_send(supplier_s1, "form:responses:f1", "form:field:completed",
    { form_id = "f1", response_id = "r1", field_id = "q3" }, true)
end)

test("journey events follow the journeys relation", function()
  local step = { journey_id = "j1", step_id = "welcome" }
  expect_send(couple_c1, "journey:progress:j1", "journey:step:completed", step, true)
  expect_send(couple_c1, "couple:dashboard:c1", "journey:step:completed", step, true)
  expect_send(supplier_s2, "journey:progress:j1", "journey:step:completed", step, false, "journey j1")
  expect_send(supplier_s1, "journey:progress:j1", "journey:email:sent", { journey_id = "j1", email_id = "e1" }, true)
  expect_send(supplier_s1, "collaboration:s1:c1", "journey:email:sent", { journey_id = "j1", email_id = "e1" }, false,
    "not allowed on collaboration:s1:c1")
end)
