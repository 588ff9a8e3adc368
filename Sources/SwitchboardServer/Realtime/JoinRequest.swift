import SwitchboardCore
import SwitchboardWire

/// A `phx_join` read into what the server acts on: the channel, the join config (`self`,
/// `ack`, presence, `postgres_changes` bindings, a replay) and the token it carries. Pure: no
/// socket, no policy; a frame that cannot be a join is a `Refusal`.
struct JoinRequest: Equatable {
    let channel: ChannelName
    let receivesOwn: Bool
    let ack: Bool
    let presenceEnabled: Bool
    /// `config.presence.key`; nil when absent or empty (the server generates one).
    let presenceKey: String?
    /// `config.postgres_changes` as the client sent it, echoed with ids in the reply.
    let bindings: [Value]
    /// The same, read and checked, with those ids.
    let changes: [ChangeBinding]
    /// `config.broadcast.replay`, when the client asked for one.
    let replay: History<ChannelLog.Stored>.Since?

    /// The most messages a replay may ask for.
    static let maxReplayLimit = 1000

    /// Reads a `phx_join` frame's topic and payload.
    static func parse(topic: String, payload: Value) -> Result<JoinRequest, Refusal> {
        guard topic.hasPrefix("realtime:") else { return .failure(.unmatchedTopic) }
        let name = String(topic.dropFirst("realtime:".count))
        if name.isEmpty { return .failure(.topicNameRequired) }
        let channel: ChannelName
        do {
            channel = try ChannelName(validating: name)
        } catch {
            return .failure(.invalidTopic(error.description))
        }
        let config = payload["config"]
        var bindings: [Value] = []
        var changes: [ChangeBinding] = []
        if let given = config?["postgres_changes"], !given.isNull {
            guard let list = given.arrayValue, list.allSatisfy({ $0.objectValue != nil }) else {
                return .failure(.invalidJoinConfig("config.postgres_changes must be a list of objects"))
            }
            bindings = list
            for (offset, entry) in list.enumerated() {
                do throws(ChangeBinding.ParseError) {
                    changes.append(try ChangeBinding.parse(entry, id: bindingID(topic: topic, offset: offset), position: offset))
                } catch {
                    return .failure(.invalidPostgresChanges(error.message))
                }
            }
        }
        let replay: History<ChannelLog.Stored>.Since?
        switch replayRequest(config?["broadcast"]?["replay"]) {
        case .failure(let problem): return .failure(.unableToReplay(problem.message))
        case .success(let since): replay = since
        }
        return .success(
            JoinRequest(
                channel: channel,
                receivesOwn: config?["broadcast"]?["self"]?.boolValue ?? false,
                ack: config?["broadcast"]?["ack"]?.boolValue ?? false,
                presenceEnabled: config?["presence"]?["enabled"]?.boolValue ?? false,
                presenceKey: config?["presence"]?["key"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
                bindings: bindings, changes: changes, replay: replay))
    }

    /// `config.broadcast.replay`: Supabase's `{since: <ms>, limit: n}` or Switchboard's exact
    /// `{since_seq: n, epoch: "…"}`; nil when absent. Supabase's `limit` defaults to
    /// everything the channel holds.
    static func replayRequest(_ value: Value?) -> Result<History<ChannelLog.Stored>.Since?, InputError> {
        guard let value, !value.isNull else { return .success(nil) }
        guard value.objectValue != nil else {
            return .failure(InputError("config.broadcast.replay must be an object: {since, limit} or {since_seq, epoch}"))
        }
        if let seq = value["since_seq"], !seq.isNull {
            guard let number = seq.int64Value, number >= 0 else {
                return .failure(InputError("replay.since_seq must be a whole number of at least 0"))
            }
            guard let epoch = value["epoch"]?.stringValue, !epoch.isEmpty else {
                return .failure(InputError("replay.since_seq needs the epoch it counts in (replay.epoch, from a message's meta or the join reply)"))
            }
            return .success(.sequence(UInt64(number), epoch: epoch))
        }
        guard let since = value["since"]?.int64Value, since >= 0 else {
            return .failure(InputError("replay needs since (milliseconds since 1970) or since_seq with epoch"))
        }
        var limit = maxReplayLimit
        if let given = value["limit"], !given.isNull {
            guard let number = given.int64Value, (1...Int64(maxReplayLimit)).contains(number) else {
                return .failure(InputError("replay.limit must be a whole number in 1...\(maxReplayLimit)"))
            }
            limit = Int(number)
        }
        return .success(.time(milliseconds: since, limit: limit))
    }

    /// The token a join or refresh carries, or nil when it carries none of its own (none, an
    /// `sb_` API key, or the connection's own token).
    static func channelToken(in payload: Value, connectToken: String) -> String? {
        let token = (payload["access_token"] ?? payload["user_token"])?.stringValue
        guard let token, !token.isEmpty, !token.hasPrefix("sb_"), token != connectToken else { return nil }
        return token
    }

    /// A stable id per `postgres_changes` binding, so that a rejoin echoes the same ids.
    static func bindingID(topic: String, offset: Int) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in topic.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % 100_000_000) + offset
    }
}
