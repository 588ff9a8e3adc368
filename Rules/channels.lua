-- Who may join and send on which channel. Hooks return true, or false and a reason that the
-- client sees after "Unauthorized:". A channel that matches no pattern is denied.

local function is_admin(user)
  return user.role == "admin" or user.role == "service_role"
end

-- On the scale tier a supplier's team (the supplier_team junction relation) acts for it.
local function on_team(user, supplier_id)
  return user.tier == "scale" and member("supplier_team", supplier_id, user.sub)
end

channel "supplier:dashboard:{supplier_id}" {
  kind = "private",
  join = function(user, ch)
    if is_admin(user) or user.supplier_id == ch.supplier_id or on_team(user, ch.supplier_id) then
      return true
    end
    return false, "only supplier " .. ch.supplier_id .. " may open this dashboard"
  end,
}

channel "couple:dashboard:{couple_id}" {
  kind = "private",
  join = function(user, ch)
    if is_admin(user) or user.couple_id == ch.couple_id then return true end
    return false, "only couple " .. ch.couple_id .. " may open this dashboard"
  end,
}

channel "form:responses:{form_id}" {
  kind = "private",
  join = function(user, ch)
    if is_admin(user) or member("form_owner", ch.form_id, user.supplier_id) then return true end
    return false, "only the supplier who owns form " .. ch.form_id .. " may read its responses"
  end,
}

channel "journey:progress:{journey_id}" {
  kind = "private",
  join = function(user, ch)
    if is_admin(user)
      or member("journeys", ch.journey_id, user.supplier_id)
      or member("journeys", ch.journey_id, user.couple_id) then
      return true
    end
    return false, "only the supplier and couple of journey " .. ch.journey_id .. " may follow it"
  end,
}

channel "collaboration:{supplier_id}:{couple_id}" {
  kind = "shared",
  presence = true,
  join = function(user, ch)
    if is_admin(user) or user.supplier_id == ch.supplier_id or user.couple_id == ch.couple_id
      or on_team(user, ch.supplier_id) then
      return true
    end
    return false, "only supplier " .. ch.supplier_id .. " and couple " .. ch.couple_id .. " may collaborate here"
  end,
}

local function admins_only(user, ch)
  if is_admin(user) then return true end
  return false, ch.name .. " is read-only; only admins send announcements"
end

channel "system:announcements" { kind = "broadcast", send = admins_only }
channel "public:directory" { kind = "broadcast", send = admins_only }

-- The relations member() and related() read come from data/<name>.json by default. With
-- `serve --database-url`, a relation can come from the platform's tables instead: declare it
-- here (first column the key, second the member; read at start and on every reload, before
-- the new rules are in force; a query that fails is a reload error at its line). `watch` names
-- the tables it reads, each with the column that holds the relation's key, so that a change
-- re-reads only the keys it touched and revokes within a second. For the tables in README.md
-- ("Relations from the database"):
--
-- relation "supplier_team" { sql = "select supplier_id, user_id from app.supplier_team",
--                             watch = { "app.supplier_team(supplier_id)" } }
-- relation "form_owner"    { sql = "select form_id, supplier_id from app.forms", watch = { "app.forms(form_id)" } }
-- relation "journeys"      { sql = [[select journey_id, supplier_id from app.journeys
--                                    union all select journey_id, couple_id from app.journeys]],
--                             watch = { "app.journeys(journey_id)" } }
