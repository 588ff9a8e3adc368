/// The Lua side of the rules contract, loaded into every lane before the rule files.
///
/// Rule files only declare: `tier`, `default_tier`, `channel`, `event`, `relation`, `table`
/// (callable while it stays Lua's table library) and `allow_undeclared_events` record their arguments in tables local to this chunk, each with
/// the `file:line` that declared it (found with `error(…, level)`, which needs no debug
/// library). Swift reads the declarations once per generation through `__sb_declarations()`
/// (hooks appear as the string `<function>`) and binds each hook once per lane with
/// `__sb_bind(kind, index, hook)`, read right after this chunk, before any rule file runs.
enum Prelude {
    static let chunkName = "=switchboard-prelude"

    static let source = #"""
    local channels, events, tiers, relations, tables = {}, {}, {}, {}, {}
    local settings = { default_tier = nil, allow_undeclared = nil }

    -- "file:line" of the rule-file line that called the declaring global.
    local function where(level)
      local ok, message = pcall(error, "", level + 2)
      return (message:gsub(":%s*$", ""))
    end

    local function declare(kind, name, spec, level)
      if type(name) ~= "string" then
        error(kind .. " needs a name string, e.g. " .. kind .. ' "name" { ... }', level + 1)
      end
      if type(spec) ~= "table" then
        error(kind .. ' "' .. name .. '" needs a table: ' .. kind .. ' "' .. name .. '" { ... }', level + 1)
      end
      spec.__name = name
      return spec
    end

    -- tier "name" { ... }, channel "pattern" { ... }, event "name" { ... } and relation "name" { ... }
    -- all record into a list.
    local function declarer(kind, list)
      return function(name)
        local location = where(2)
        return function(spec)
          spec = declare(kind, name, spec, 2)
          spec.__where = location
          list[#list + 1] = spec
        end
      end
    end

    tier = declarer("tier", tiers)
    channel = declarer("channel", channels)
    event = declarer("event", events)
    relation = declarer("relation", relations)
    -- table "schema.name" { read = function(user, row) ... end }: `table` stays Lua's table
    -- library (table.insert, ...) and is callable too. The metamethod tail-calls the declarer,
    -- so the declaration's line is found at the same level as for the other declarers.
    local declare_table = declarer("table", tables)
    setmetatable(table, { __call = function(_, name) return declare_table(name) end })

    function default_tier(name)
      if type(name) ~= "string" then error('default_tier needs a tier name, e.g. default_tier "free"', 2) end
      settings.default_tier = { name = name, where = where(2) }
    end

    function allow_undeclared_events(allowed)
      if type(allowed) ~= "boolean" then error("allow_undeclared_events needs true or false", 2) end
      settings.allow_undeclared = allowed
    end

    -- A copy of a declaration with functions replaced by "<function>", for Swift to read.
    local function describe(spec)
      local out = {}
      for key, value in pairs(spec) do
        local kind = type(value)
        if kind == "function" then
          out[key] = "<function>"
        elseif kind == "table" then
          out[key] = describe(value)
        else
          out[key] = value
        end
      end
      return out
    end

    local function describeAll(list)
      local out = {}
      for i, spec in ipairs(list) do out[i] = describe(spec) end
      return out
    end

    function __sb_declarations()
      return {
        channels = describeAll(channels), events = describeAll(events), tiers = describeAll(tiers),
        relations = describeAll(relations), tables = describeAll(tables),
        default_tier = settings.default_tier, allow_undeclared = settings.allow_undeclared,
      }
    end

    -- How Swift calls channels[index][hook] or events[index][hook], bound once per lane at
    -- load; always as (user, ch, msg). For join, send and presence: the hook itself, and a
    -- function that turns any other answer than `true` or `false/nil, string/nil` into one
    -- (LuaState's answer check: the host only calls it for those). For on_publish: a function
    -- that returns true; for transform: one that returns true, payload.
    function __sb_bind(kind, index, hook)
      local spec = (kind == "channel" and channels or kind == "table" and tables or events)[index]
      local fn = spec and spec[hook]
      if type(fn) ~= "function" then return nil end
      local name = spec.__name
      if hook == "on_publish" then
        return function(user, ch, msg)
          fn(msg, user, ch)  -- on_publish(msg, user, ch); what it returns does not matter
          return true
        end
      end
      if hook == "transform" then
        return function(user, ch, msg)
          local payload = fn(msg, user, ch)  -- transform(msg, user, ch) returns the new payload, or nil
          if payload ~= nil and type(payload) ~= "table" then
            error("event " .. name .. ": transform must return a table (the new payload) or nil, not " .. type(payload), 0)
          end
          return true, payload
        end
      end
      return fn, function(allowed, reason)
        if allowed == true then return true end
        if allowed == false or allowed == nil then
          if reason ~= nil and type(reason) ~= "string" then reason = tostring(reason) end
          return false, reason
        end
        error(kind .. " " .. name .. ": the " .. hook .. " hook must return true, or false and a reason (got " .. type(allowed) .. ")", 0)
      end
    end
    """#
}
