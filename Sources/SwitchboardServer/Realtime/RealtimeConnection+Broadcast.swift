import NIOCore
import SwitchboardCore
import SwitchboardWire

/// Broadcast pushes: one rules decision (size, permission, how the event travels), the
/// publisher's id, then the shared admit path.
extension RealtimeConnection {
    func broadcast(_ inbound: InboundFrame, join: Join, frameBytes: Int) {
        guard let event = inbound.payload["event"]?.stringValue else {
            refuse(inbound, .malformed("a broadcast payload needs a string \"event\""))
            return
        }
        let userPayload = inbound.payload["payload"]
        // One decision, from one rules generation: size, permission, the event's policy, history.
        let decision = shared.decide(join.identity, channel: join.channel, event: event, payload: userPayload) { limit in
            // The frame's size bounds the payload's; measured exactly only when it is over.
            guard frameBytes > limit else { return nil }
            let size = Self.payloadSize(inbound)
            return size > limit ? size : nil
        }
        switch decision.verdict {
        case .allow: break
        case .tooLarge(let bytes, let limit):
            refuse(inbound, .payloadTooLarge(bytes, limit: limit, tier: join.identity.tier))
            return
        case .deny(let why):
            refuse(inbound, .sendDenied(join.channel, why))
            return
        }
        let clientID: String?
        switch ChannelLog.clientID(in: inbound.payload["meta"] ?? inbound.userBroadcast?.meta) {
        case .failure(let problem):
            refuse(inbound, .malformed(problem.message))
            return
        case .success(let id):
            clientID = id
        }
        let binaryBody = inbound.userBroadcast.flatMap { $0.isJSON ? nil : $0.body }
        let loop = context?.eventLoop ?? shared.hub.loops[0]
        // The ack: sent once the message is published — with a database, once a replayable
        // message is committed (an error reply when the database could not take it).
        var acknowledge: (@Sendable (Bool) -> Void)?
        if join.ack {
            let connection = NIOLoopBound(self, eventLoop: loop)
            acknowledge = { durable in
                let reply: @Sendable () -> Void = {
                    if durable {
                        connection.value.replyOK(to: inbound, response: .object(.init()))
                    } else {
                        connection.value.replyError(to: inbound, reason: Refusal.notDurable.reason)
                    }
                }
                // At once when published right here (no database, or nothing to store);
                // from the history writer, through the connection's loop.
                if loop.inEventLoop { reply() } else { loop.execute(reply) }
            }
        }
        if let refusal = shared.admit(
            event: event, payload: userPayload, binaryBody: binaryBody, asBinary: inbound.userBroadcast != nil, clientID: clientID,
            channel: join.channel, topic: inbound.topic, identity: join.identity, sender: id, loop: loop, decision: decision,
            acknowledge: acknowledge)
        {
            // Counted by `admit`. Like Supabase, a rate-limited push without ack gets a
            // `system` message rather than a reply.
            if join.ack || !refusal.isRateLimit {
                replyError(to: inbound, reason: refusal.reason)
            } else {
                pushSystem(topic: inbound.topic, join, status: "error", message: refusal.reason)
            }
            return
        }
    }

    /// The exact size of the user payload: raw bytes for binary pushes, serialized JSON otherwise.
    private static func payloadSize(_ inbound: InboundFrame) -> Int {
        if let body = inbound.userBroadcast?.body { return body.readableBytes }
        guard let payload = inbound.payload["payload"] else { return 0 }
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        JSON.serialize(payload, into: &buffer)
        return buffer.readableBytes
    }
}
