#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's open-file limit, raised (up to the hard limit) when a run needs more connections.
enum FileDescriptorLimit {
    /// Raises the soft limit to at least `needed` if the hard limit allows; throws otherwise.
    static func ensure(atLeast needed: Int) throws {
        #if canImport(Glibc) || canImport(Darwin)
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return }
        let wanted = rlim_t(needed)
        if limit.rlim_cur >= wanted { return }
        guard limit.rlim_max >= wanted else {
            throw BenchError(
                .resourceLimit,
                "\(needed) open files are needed but the hard limit is \(limit.rlim_max); raise it (ulimit -Hn) or use fewer connections"
            )
        }
        limit.rlim_cur = wanted
        guard setrlimit(resource, &limit) == 0 else {
            throw BenchError(.resourceLimit, "could not raise the open-file limit to \(needed)")
        }
        #endif
    }
}
