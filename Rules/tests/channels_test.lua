-- Who may join and send on each channel of channels.lua. Run: switchboard rules test Rules

local supplier_s1 = { sub = "u-s1", role = "supplier", supplier_id = "s1", tier = "paid" }
local supplier_s2 = { sub = "u-s2", role = "supplier", supplier_id = "s2", tier = "paid" }
local couple_c1   = { sub = "u-c1", role = "couple", couple_id = "c1" }
local couple_c2   = { sub = "u-c2", role = "couple", couple_id = "c2" }
local admin       = { sub = "ops", role = "admin" }
local backend     = { role = "service_role" }
local anna_scale  = { sub = "team-anna", role = "supplier", tier = "scale" }
local anna_paid   = { sub = "team-anna", role = "supplier", tier = "paid" }

test("private: supplier dashboards belong to their supplier", function()
  expect_join(supplier_s1, "supplier:dashboard:s1", true)
  expect_join(supplier_s2, "supplier:dashboard:s1", false, "only supplier s1 may open this dashboard")
  expect_join(couple_c1, "supplier:dashboard:s1", false)
  expect_join(admin, "supplier:dashboard:s1", true)
  -- send has no hook of its own, so it follows join
  expect_send(supplier_s1, "supplier:dashboard:s1", "note", { text = "hi" }, true)
  expect_send(supplier_s2, "supplier:dashboard:s1", "note", { text = "hi" }, false, "only supplier s1")
end)

test("private: couple dashboards belong to their couple", function()
  expect_join(couple_c1, "couple:dashboard:c1", true)
  expect_join(couple_c2, "couple:dashboard:c1", false, "only couple c1 may open this dashboard")
  expect_join(supplier_s1, "couple:dashboard:c1", false)
  expect_send(couple_c1, "couple:dashboard:c1", "note", {}, true)
  expect_send(couple_c2, "couple:dashboard:c1", "note", {}, false)
end)

test("private: form responses follow the form_owner relation", function()
  expect_join(supplier_s1, "form:responses:f1", true)
  expect_join(supplier_s2, "form:responses:f2", true)
  expect_join(supplier_s1, "form:responses:f2", false, "only the supplier who owns form f2")
  expect_join(supplier_s1, "form:responses:f9", false)
  expect_join(couple_c1, "form:responses:f1", false)
  expect_join(backend, "form:responses:f1", true)
end)

test("private: journeys admit their supplier and couple", function()
  expect_join(supplier_s1, "journey:progress:j1", true)
  expect_join(couple_c1, "journey:progress:j1", true)
  expect_join(supplier_s2, "journey:progress:j1", false, "only the supplier and couple of journey j1")
  expect_join(couple_c2, "journey:progress:j1", false)
  expect_join(couple_c2, "journey:progress:j2", true)
end)

test("shared: collaboration admits the supplier and the couple", function()
  expect_join(supplier_s1, "collaboration:s1:c1", true)
  expect_join(couple_c1, "collaboration:s1:c1", true)
  expect_join(supplier_s2, "collaboration:s1:c1", false, "only supplier s1 and couple c1 may collaborate here")
  expect_join(couple_c2, "collaboration:s1:c1", false)
  expect_send(couple_c1, "collaboration:s1:c1", "chat", { text = "hello" }, true)
  expect_send(couple_c2, "collaboration:s1:c1", "chat", { text = "hello" }, false, "may collaborate here")
end)

test("team access via supplier_team on the scale tier only", function()
  expect_join(anna_scale, "collaboration:s1:c1", true)
  expect_join(anna_scale, "supplier:dashboard:s1", true)
  expect_join({ sub = "team-ben", role = "supplier", tier = "scale" }, "supplier:dashboard:s1", true)
  expect_send(anna_scale, "collaboration:s1:c1", "chat", { text = "hi" }, true)
  -- the same person on the paid tier is not let in
  expect_join(anna_paid, "collaboration:s1:c1", false)
  expect_join(anna_paid, "supplier:dashboard:s1", false, "only supplier s1")
  expect_send(anna_paid, "collaboration:s1:c1", "chat", { text = "hi" }, false)
  -- and the team of s1 is not the team of s2
  expect_join(anna_scale, "supplier:dashboard:s2", false)
  expect_join(anna_scale, "collaboration:s2:c1", false)
end)

test("broadcast: anyone signed in may join; only admins send", function()
  for _, name in ipairs({ "system:announcements", "public:directory" }) do
    expect_join(couple_c1, name, true)
    expect_join(supplier_s1, name, true)
    expect_send(couple_c1, name, "news", { text = "hi" }, false, "read-only")
    expect_send(supplier_s1, name, "news", { text = "hi" }, false, "only admins send announcements")
    expect_send(admin, name, "news", { text = "hi" }, true)
    expect_send(backend, name, "news", { text = "hi" }, true)
  end
end)

test("channels no rule declares are denied", function()
  expect_join(admin, "room-1", false, "no rule matches channel room-1")
  expect_join(admin, "supplier:settings:s1", false, "no rule matches")
  expect_send(admin, "room-1", "chat", {}, false, "no rule matches")
  expect_join(admin, "not a channel", false, "not a valid channel name")
end)

test("presence: only where the channel turns it on", function()
  expect_presence(supplier_s1, "collaboration:s1:c1", true)
  expect_presence(couple_c1, "collaboration:s1:c1", true)
  expect_presence(supplier_s1, "supplier:dashboard:s1", false, "presence is not enabled on supplier:dashboard:s1")
  expect_presence(couple_c1, "system:announcements", false, "presence is not enabled")
end)
