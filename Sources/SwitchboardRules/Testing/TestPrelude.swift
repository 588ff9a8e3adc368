/// The Lua side of `rules test`, loaded into each test file's own state before the file.
///
/// `given_relation(name, rows)` sets a relation's rows for the rest of the file (fixtures for a
/// relation the rules read from the database, which `rules test` never connects to).
/// `expect_join`, `expect_send`, `expect_presence`, `expect_row` and `expect_limits` find the `file:line` that called them with
/// `pcall(error, "", level)` (the debug library is not opened) and hand each case to Swift
/// through a host function captured in a local, so test files cannot reach it. A usage
/// mistake (a missing argument, an unknown limit) is raised as a Lua error at the test's line.
/// `test(name, fn)` runs `fn` under `pcall`, so an error inside one test block is one failure
/// and the rest of the file still runs.
enum TestPrelude {
    static let chunkName = "=switchboard-test-prelude"
    /// The host function the prelude captures and then removes from the globals.
    static let checkFunction = "__sb_check"
    /// The host function for an error raised inside a `test` block.
    static let failFunction = "__sb_test_failed"
    /// The host function behind `given_relation`.
    static let givenFunction = "__sb_given_relation"

    static let source = #"""
    local check, failed, given = __sb_check, __sb_test_failed, __sb_given_relation
    __sb_check, __sb_test_failed, __sb_given_relation = nil, nil, nil
    local current = nil

    -- "file:line" of the caller of the function that calls where(2).
    local function where(level)
      local ok, message = pcall(error, "", level + 2)
      return (message:gsub(":%s*$", ""))
    end

    function expect_join(user, channel, allowed, reason_contains)
      local problem = check("join", where(2), current, user, channel, allowed, reason_contains)
      if problem then error(problem, 2) end
    end

    function expect_send(user, channel, event, payload, allowed, reason_contains)
      local problem = check("send", where(2), current, user, channel, allowed, reason_contains, event, payload)
      if problem then error(problem, 2) end
    end

    function expect_presence(user, channel, allowed, reason_contains)
      local problem = check("presence", where(2), current, user, channel, allowed, reason_contains)
      if problem then error(problem, 2) end
    end

    function expect_row(user, table_name, row, allowed, reason_contains)
      local problem = check("row", where(2), current, user, table_name, allowed, reason_contains, nil, row)
      if problem then error(problem, 2) end
    end

    function expect_limits(user, limits)
      local problem = check("limits", where(2), current, user, limits)
      if problem then error(problem, 2) end
    end

    function given_relation(name, rows)
      local problem = given(name, rows)
      if problem then error(problem, 2) end
    end

    function test(name, fn)
      if type(name) ~= "string" or type(fn) ~= "function" then
        error('test needs a name and a function: test("name", function() ... end)', 2)
      end
      if current ~= nil then
        error('test "' .. name .. '" is inside test "' .. current .. '"; test blocks do not nest', 2)
      end
      current = name
      local ok, message = pcall(fn)
      current = nil
      if not ok then
        failed(name, where(2), type(message) == "string" and message or tostring(message))
      end
    end
    """#
}
