/// Limits and the print sink for one `LuaState`.
public struct LuaConfiguration: Sendable {
    /// Most bytes the state may hold; past it allocations fail with a `.memory` error and the
    /// state stays usable. Default 16 MiB: a loaded rules state holds ~30 KiB, so this is
    /// several hundred times what honest scripts use while still bounding lanes × cores.
    public var memoryLimitBytes: Int = 16 << 20
    /// Most Lua VM instructions one entry (`load`, a call, a global read) may run before it
    /// stops with `.budgetExceeded`. Default 1,000,000: about 2.5 ms at ~400M instructions/s,
    /// far beyond a permission check yet short enough that a runaway loop is harmless.
    ///
    /// With `budgetWatchdog` the count starts once the watchdog finds the entry still running
    /// after about a millisecond: an entry that runs fewer instructions than the budget in all
    /// is never stopped, and a runaway one is stopped one to two milliseconds plus the budget
    /// after it began.
    public var instructionBudget: Int = 1_000_000
    /// Whether a watchdog thread arms the instruction count only for entries that run longer
    /// than about a millisecond (default), instead of counting every instruction of every
    /// entry. Counting makes Lua trace each instruction, which costs more than a short
    /// permission hook itself. Falls back to counting when the watchdog cannot run (SIGURG
    /// already has a handler in this process); `LuaState.isWatched` tells.
    public var budgetWatchdog: Bool = true
    /// Deepest table nesting converted across the boundary, either way. Default 64 (above
    /// any sane JSON payload); at most 200.
    public var maxValueDepth: Int = 64
    /// Most tape elements (values plus table keys) read from Lua in one operation.
    /// Default 100,000: bounds shared-subtable blow-ups such as `t = {t, t}` repeated.
    public var maxValueElements: Int = 100_000
    /// Where Lua's `print` goes (arguments joined by tabs); nil discards.
    public var print: (@Sendable (String) -> Void)?

    /// The defaults, optionally with a print sink.
    public init(print: (@Sendable (String) -> Void)? = nil) {
        self.print = print
    }
}
