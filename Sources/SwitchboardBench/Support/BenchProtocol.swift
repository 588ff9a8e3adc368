/// The server protocol a bench run speaks, so the same load can run against Switchboard and
/// against nginx + nchan on the same machine.
public enum BenchProtocol: String, Sendable, Codable, CaseIterable {
    /// Supabase Realtime vsn 1.0.0 (Switchboard): token and `vsn` in the query, `phx_join`,
    /// heartbeats, and broadcasts wrapped in the Realtime envelope.
    case switchboard
    /// nginx + nchan WebSocket pubsub: one socket per channel at `<path><channel>`, no token, join
    /// or heartbeat; every text frame a client sends is relayed verbatim to the channel's
    /// subscribers, the sender included.
    case nchan

    /// The WebSocket path when none is given: `/socket/websocket`, or the prefix `/pubsub/` for nchan.
    public var defaultPath: String {
        switch self {
        case .switchboard: return "/socket/websocket"
        case .nchan: return "/pubsub/"
        }
    }

    /// The port when none is given: 4000, or 8088 for nchan (Benchmarks/nchan/nginx.conf).
    public var defaultPort: Int {
        switch self {
        case .switchboard: return 4000
        case .nchan: return 8088
        }
    }

    /// Whether connections join topics, heartbeat and read Phoenix control frames.
    var speaksPhoenix: Bool { self == .switchboard }

    /// Whether `name` is a channel id nchan's location accepts (`[A-Za-z0-9_.:-]`, 1–200 bytes).
    static func isSafeNchanChannelName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 200
            && name.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"),
                    UInt8(ascii: "-"):
                    return true
                default:
                    return false
                }
            }
    }
}
