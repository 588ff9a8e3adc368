import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Watches a rules directory and calls `onChange` once the rule files (`*.lua`) or data files
/// (`data/*.json`) have changed and then stayed quiet for the debounce interval, so that an
/// editor's save (often several writes and a rename) triggers one reload. The callback gets
/// the names that changed (`a.lua`, `data/team.json`); the timing decision is `Debouncer`'s.
///
/// Uses inotify on Linux; where inotify is unavailable (or runs out of watches) it polls the
/// files' sizes and modification times instead. Runs on a thread of its own: the callback
/// (which builds the next generation) never runs on an event loop.
public final class RulesWatcher: Sendable {
    /// How the watcher learns of changes.
    public enum Mechanism: String, Sendable {
        case inotify, polling
    }

    public let directory: URL
    public let debounce: Duration
    public let pollInterval: Duration
    private let preferred: Mechanism
    private let onChange: @Sendable (_ changed: Set<String>) -> Void
    private let stopped = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    private let mechanismInUse = Mutex<Mechanism?>(nil)

    /// - Parameter mechanism: `.inotify` (the default) falls back to polling where inotify is
    ///   unavailable; `.polling` always polls (for file systems inotify does not see, such as
    ///   some network and container mounts).
    public init(
        directory: URL, debounce: Duration = .milliseconds(200), pollInterval: Duration = .milliseconds(500),
        mechanism: Mechanism = .inotify, onChange: @escaping @Sendable (_ changed: Set<String>) -> Void
    ) {
        self.directory = directory
        self.preferred = mechanism
        self.debounce = debounce
        self.pollInterval = pollInterval
        self.onChange = onChange
    }

    /// What the running watcher uses; nil before `start()`.
    public var mechanism: Mechanism? { mechanismInUse.withLock { $0 } }

    /// Starts watching on a thread of its own. Calling it again does nothing.
    public func start() {
        guard !started.exchange(true, ordering: .relaxed) else { return }
        #if canImport(Glibc)
        if preferred == .inotify, let inotify = Inotify(directory: directory) {
            mechanismInUse.withLock { $0 = .inotify }
            let thread = Thread { [self] in watch(inotify) }
            thread.name = "switchboard-rules-watcher"
            thread.start()
            return
        }
        #endif
        mechanismInUse.withLock { $0 = .polling }
        // The first look happens before start() returns, so no change after it is missed.
        let baseline = Self.fingerprint(directory)
        let thread = Thread { [self] in poll(from: baseline) }
        thread.name = "switchboard-rules-watcher"
        thread.start()
    }

    /// Stops within one poll interval; a pending change is dropped.
    public func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    private var isStopped: Bool { stopped.load(ordering: .relaxed) }

    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    // MARK: inotify

    #if canImport(Glibc)
    private func watch(_ inotify: Inotify) {
        defer { inotify.close() }
        var debouncer = Debouncer(interval: debounce)
        let tick = min(Self.milliseconds(debounce), 250)
        while !isStopped {
            let timeout = debouncer.isPending ? tick : 250
            switch inotify.wait(milliseconds: timeout) {
            case .changed(let names):
                debouncer.changed(names, at: .now)
            case .quiet:
                if let changed = debouncer.due(at: .now) { onChange(changed) }
            case .failed:
                // The descriptor broke (for example the directory went away): fall back to polling.
                mechanismInUse.withLock { $0 = .polling }
                poll(from: Self.fingerprint(directory))
                return
            }
        }
    }
    #endif

    // MARK: Polling

    private func poll(from baseline: [String: String]) {
        var last = baseline
        var debouncer = Debouncer(interval: debounce)
        while !isStopped {
            Thread.sleep(forTimeInterval: Double(Self.milliseconds(min(pollInterval, debounce))) / 1000)
            let now = Self.fingerprint(directory)
            if now != last {
                let names = Set(now.keys.filter { now[$0] != last[$0] }).union(last.keys.filter { now[$0] == nil })
                last = now
                debouncer.changed(names, at: .now)
            } else if let changed = debouncer.due(at: .now) {
                onChange(changed)
            }
        }
    }

    /// Names, sizes and modification times of the files a generation is built from.
    static func fingerprint(_ directory: URL) -> [String: String] {
        var result: [String: String] = [:]
        let manager = FileManager.default
        for sub in ["", "data"] {
            let folder = sub.isEmpty ? directory : directory.appendingPathComponent(sub)
            guard let names = try? manager.contentsOfDirectory(atPath: folder.path) else { continue }
            for name in names where isRelevant(name, inData: !sub.isEmpty) {
                if sub.isEmpty, name == "data" {
                    // The folder counts by its presence only: its time changes with every
                    // write inside it, and the files in it are fingerprinted themselves.
                    result[name] = "folder"
                    continue
                }
                let path = folder.appendingPathComponent(name).path
                let attributes = try? manager.attributesOfItem(atPath: path)
                let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
                let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
                result[sub.isEmpty ? name : "\(sub)/\(name)"] = "\(size)@\(modified)"
            }
        }
        return result
    }

    /// Rule files at the top level (subdirectories other than `tests/` are scanned by the
    /// loader too, but editors rarely place rules there), JSON data files under `data/`.
    static func isRelevant(_ name: String, inData: Bool) -> Bool {
        inData ? name.hasSuffix(".json") : (name.hasSuffix(".lua") || name == "data")
    }
}

/// The watcher's timing, with the time passed in: changes start (or extend) a quiet period;
/// once it has lasted `interval` the changed names are due, once.
struct Debouncer {
    let interval: Duration
    private var pending: Set<String> = []
    private var lastChange: ContinuousClock.Instant?

    init(interval: Duration) { self.interval = interval }

    var isPending: Bool { lastChange != nil }

    /// Files changed at `now`.
    mutating func changed(_ names: Set<String>, at now: ContinuousClock.Instant) {
        pending.formUnion(names)
        lastChange = now
    }

    /// The names changed since the last call that returned some, once `interval` has passed
    /// without a change; nil before that.
    mutating func due(at now: ContinuousClock.Instant) -> Set<String>? {
        guard let last = lastChange, now - last >= interval else { return nil }
        lastChange = nil
        defer { pending = [] }
        return pending
    }
}

#if canImport(Glibc)
/// An inotify descriptor watching the rules directory and its `data/` folder.
private struct Inotify {
    enum Event { case changed(Set<String>), quiet, failed }

    private let fd: Int32
    private let directory: URL
    /// Watch descriptor of the top directory; others belong to `data/`.
    private let rootWatch: Int32

    private static let mask: UInt32 =
        UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM) | UInt32(IN_DELETE) | UInt32(IN_CREATE)
        | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)

    init?(directory: URL) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let root = inotify_add_watch(fd, directory.path, Self.mask)
        guard root >= 0 else {
            Glibc.close(fd)
            return nil
        }
        self.fd = fd
        self.directory = directory
        self.rootWatch = root
        watchData()
    }

    /// (Re)adds the watch on `data/`; harmless when it exists already or there is no folder.
    private func watchData() {
        _ = inotify_add_watch(fd, directory.appendingPathComponent("data").path, Self.mask)
    }

    /// Waits up to `milliseconds` for events and reads them all.
    func wait(milliseconds: Int32) -> Event {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = Glibc.poll(&descriptor, 1, milliseconds)
        if ready < 0 { return errno == EINTR ? .quiet : .failed }
        if ready == 0 { return .quiet }
        var relevant: Set<String> = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 { return errno == EAGAIN || errno == EINTR ? (relevant.isEmpty ? .quiet : .changed(relevant)) : .failed }
            if count == 0 { return .failed }
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= count {
                let (wd, mask, length) = buffer.withUnsafeBytes { raw in
                    (
                        raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                        raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                        Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    )
                }
                let nameBytes = buffer[(offset + header)..<min(count, offset + header + length)].prefix { $0 != 0 }
                let name = String(decoding: nameBytes, as: UTF8.self)
                offset += header + length
                if mask & (UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)) != 0, wd == rootWatch { return .failed }
                let inData = wd != rootWatch
                if name == "data", !inData { watchData() }
                if RulesWatcher.isRelevant(name, inData: inData) { relevant.insert(inData ? "data/\(name)" : name) }
            }
        }
    }

    func close() { Glibc.close(fd) }
}
#endif
