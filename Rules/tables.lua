-- Who may see which rows of the platform's tables through Postgres Changes (a client's
-- `postgres_changes` binding, e.g. supabase-js `.on("postgres_changes", { table: ... })`).
-- A read hook gets the user's claims and the row (both read-only) and returns true, or false
-- and a reason. A table without a declaration is never shown: a binding on it is refused at
-- the join. On UPDATE both the new and the old row must be readable.

local function is_admin(user)
  return user.role == "admin" or user.role == "service_role"
end

-- A supplier's form responses: the supplier, and on the scale tier its team.
table "public.form_responses" {
  read = function(user, row)
    if is_admin(user) or (row.supplier_id ~= nil and row.supplier_id == user.supplier_id) then return true end
    if user.tier == "scale" and member("supplier_team", row.supplier_id, user.sub) then return true end
    return false, "only supplier " .. tostring(row.supplier_id) .. " reads its form responses"
  end,
}

-- A journey's steps: its supplier and its couple (the journeys relation).
table "public.journey_steps" {
  read = function(user, row)
    if is_admin(user)
      or member("journeys", row.journey_id, user.supplier_id)
      or member("journeys", row.journey_id, user.couple_id) then
      return true
    end
    return false, "only the supplier and couple of journey " .. tostring(row.journey_id) .. " follow its steps"
  end,
}
