import SwitchboardCore

extension SwitchboardClient {
    /// The open connection: where frames to write go.
    struct Connection {
        let id: Int
        let queue: AsyncStream<String>.Continuation
    }

    /// A channel of this client, joined or waiting to be.
    struct ChannelRecord {
        let name: String
        let options: ChannelOptions
        let events: AsyncStream<ChannelEvent>.Continuation
        var tracker: ChannelTracker
        var joinRef: String?
        var joined = false
        var tracked: Value.Object?
        var lastSystemMessage: String?
        /// `channel(_:)` calls waiting for the first join reply.
        var waiters: [CheckedContinuation<Void, any Error>] = []

        init(name: String, options: ChannelOptions, events: AsyncStream<ChannelEvent>.Continuation, tracker: ChannelTracker) {
            self.name = name
            self.options = options
            self.events = events
            self.tracker = tracker
        }
    }

    /// A push waiting to be sent or acknowledged (its deadline is in the machine).
    struct Outgoing {
        let id: UInt64
        let topic: String
        let event: String
        let payload: Value
        let done: CheckedContinuation<Void, any Error>?
    }

    /// What a sent frame's reply answers.
    enum InFlight {
        case heartbeat
        case join(String)
        case push(Outgoing)

        var outgoing: Outgoing? {
            if case .push(let outgoing) = self { return outgoing }
            return nil
        }

        var isPush: Bool { outgoing != nil }
    }

    /// The timer sleeping until the earliest buffered deadline.
    struct ExpiryTimer {
        let generation: Int
        let deadline: Duration
        let task: Task<Void, Never>
    }
}
