import Foundation
import SwitchboardCore
import SwitchboardWire
import Testing

/// The publish path without a global lock: publishers on several connections (several event
/// loops) stream into one replayable channel at once, mixing numbered messages with ephemeral
/// ones that carry an id, while a client joins with a replay mid-stream.
@Suite struct StripedPublishTests {
    static let channel = "collaboration:s1:c1"
    static let plain: Value = ["broadcast": ["self": false, "ack": false], "presence": ["key": "", "enabled": false], "private": false]

    static func replayConfig(since: Int64, epoch: String) -> Value {
        [
            "broadcast": ["self": false, "ack": false, "replay": ["since_seq": .int(since), "epoch": .string(epoch)]],
            "presence": ["key": "", "enabled": false], "private": false,
        ]
    }

    /// What a subscriber saw of one message.
    struct Seen {
        let publisher: Int
        let k: Int
        let seq: Int64?
    }

    static func seen(_ frame: PhoenixSocket.Frame) -> Seen? {
        guard frame.event == "broadcast", let body = frame.payload["payload"] else { return nil }
        let seq = frame.payload["meta"]?["seq"]?.int64Value
        if let document = body["document_id"]?.stringValue, let k = body["version"]?.int64Value, let p = Int(document.dropFirst()) {
            return Seen(publisher: p, k: Int(k), seq: seq)
        }
        if let user = body["user_id"]?.stringValue, let k = body["status"]?.stringValue.flatMap({ Int($0) }), let p = Int(user.dropFirst()) {
            return Seen(publisher: p, k: k, seq: seq)
        }
        return nil
    }

    /// Every subscriber gets the numbered messages in `seq` order with no gap, and each
    /// publisher's messages (numbered or not) in the order it sent them; the late joiner gets
    /// each message once, by replay or live.
    @Test func concurrentPublishersKeepSeqAndPublisherOrder() async throws {
        let rules = try RulesCopy(messagesPerMinute: 1_000_000)
        defer { rules.delete() }
        // Room for every message of the run, so the late joiner's replay is always recovered.
        let channels = try rules.read("channels.lua")
        let kept = channels.replacingOccurrences(
            of: "channel \"collaboration:{supplier_id}:{couple_id}\" {\n  kind = \"shared\",",
            with: "channel \"collaboration:{supplier_id}:{couple_id}\" {\n  kind = \"shared\",\n  history = { messages = 1000, seconds = 600 },")
        try #require(kept != channels)
        try rules.write("channels.lua", kept)
        try await withServer({ $0.rulesDirectory = rules.path }) { server in
            let subscriber = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
            try #require(try await subscriber.join(Self.channel, ref: "1", config: Self.plain).status == "ok")
            let publishers = 4
            let each = 150
            var sockets: [PhoenixSocket] = []
            for _ in 0..<publishers {
                let socket = try await PhoenixSocket.connect(server, token: try await server.token(role: "couple", sub: "c1-user", coupleID: "c1"))
                try #require(try await socket.join(Self.channel, ref: "1", config: Self.plain).status == "ok")
                sockets.append(socket)
            }
            // Every fifth message is ephemeral with the publisher's own id; the rest are numbered.
            let numbered = publishers * (each - each / 5)
            let streams = sockets.enumerated().map { p, socket in
                Task {
                    for k in 0..<each {
                        if k % 5 == 4 {
                            let payload: Value = [
                                "type": "broadcast", "event": "user:online", "payload": ["user_id": .string("p\(p)"), "status": .string("\(k)")],
                                "meta": ["id": .string("p\(p)-\(k)")],
                            ]
                            try await socket.push("realtime:\(Self.channel)", "broadcast", payload, ref: "m\(k)", joinRef: "1")
                        } else {
                            try await socket.broadcast(
                                Self.channel, event: "document:saved", payload: ["document_id": .string("p\(p)"), "version": .int(k)], ref: "m\(k)",
                                joinRef: "1")
                        }
                    }
                }
            }

            // The first subscriber's view; a second client joins with a replay once a third
            // of the numbered messages went by.
            var seen: [Seen] = []
            var late: PhoenixSocket?
            var lateFrom: Int64 = 0
            while seen.count < publishers * each {
                let frame = try await subscriber.next()
                guard let one = Self.seen(frame) else { continue }
                seen.append(one)
                if late == nil, let seq = one.seq, seq >= Int64(numbered / 3), let epoch = frame.payload["meta"]?["epoch"]?.stringValue {
                    let socket = try await PhoenixSocket.connect(server, token: try await server.token(sub: "s1-user", supplierID: "s1"))
                    lateFrom = seq - 20
                    let reply = try await socket.join(Self.channel, ref: "1", config: Self.replayConfig(since: lateFrom, epoch: epoch))
                    try #require(reply.status == "ok", "\(reply)")
                    #expect(reply.payload["response"]?["recovered"] == true)
                    late = socket
                }
            }
            for stream in streams { try await stream.value }

            let seqs = seen.compactMap(\.seq)
            #expect(seqs == Array(1...Int64(numbered)), "numbered messages out of order or missing")
            for p in 0..<publishers {
                let order = seen.filter { $0.publisher == p }.map(\.k)
                #expect(order == Array(0..<each), "publisher \(p)'s messages out of order")
            }
            let joiner = try #require(late)
            var replayedAndLive: [Int64] = []
            while replayedAndLive.last != Int64(numbered) {
                let frame = try await joiner.next()
                if let seq = Self.seen(frame)?.seq { replayedAndLive.append(seq) }
            }
            #expect(replayedAndLive == Array((lateFrom + 1)...Int64(numbered)), "the late joiner missed or repeated messages")
            for socket in sockets { await socket.close() }
            await joiner.close()
            await subscriber.close()
        }
    }
}
