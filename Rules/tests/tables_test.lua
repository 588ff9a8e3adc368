-- Who sees which rows through postgres_changes (tables.lua). Run: switchboard rules test Rules

local supplier_s1 = { sub = "u-s1", role = "supplier", supplier_id = "s1", tier = "paid" }
local supplier_s2 = { sub = "u-s2", role = "supplier", supplier_id = "s2", tier = "paid" }
local couple_c1   = { sub = "u-c1", role = "couple", couple_id = "c1" }
local couple_c2   = { sub = "u-c2", role = "couple", couple_id = "c2" }
local anna_scale  = { sub = "team-anna", role = "supplier", tier = "scale" }
local anna_paid   = { sub = "team-anna", role = "supplier", tier = "paid" }
local backend     = { role = "service_role" }

test("form responses go to their supplier and its scale-tier team", function()
  local response = { id = 1, form_id = "f1", supplier_id = "s1", status = "new" }
  expect_row(supplier_s1, "public.form_responses", response, true)
  expect_row(supplier_s2, "public.form_responses", response, false, "only supplier s1 reads its form responses")
  expect_row(couple_c1, "public.form_responses", response, false)
  expect_row(anna_scale, "public.form_responses", response, true)
  expect_row(anna_paid, "public.form_responses", response, false)
  expect_row(backend, "public.form_responses", response, true)
  -- a row without its supplier (a DELETE shows only the key) is nobody's but the backend's
  expect_row(supplier_s1, "public.form_responses", { id = 1 }, false)
end)

test("journey steps go to the journey's supplier and couple", function()
  local step = { id = 7, journey_id = "j1", title = "Menu tasting", done = false }
  expect_row(supplier_s1, "public.journey_steps", step, true)
  expect_row(couple_c1, "public.journey_steps", step, true)
  expect_row(supplier_s2, "public.journey_steps", step, false, "only the supplier and couple of journey j1")
  expect_row(couple_c2, "public.journey_steps", step, false)
end)

test("a table without a rule is never shown", function()
  expect_row(backend, "public.invoices", { id = 1 }, false, "no rule for table public.invoices")
end)

test("fixture rows decide like the database's would", function()
  given_relation("journeys", { j9 = { "s2", "c2" } })
  expect_row(supplier_s2, "public.journey_steps", { id = 1, journey_id = "j9" }, true)
  expect_row(supplier_s1, "public.journey_steps", { id = 1, journey_id = "j9" }, false)
end)
