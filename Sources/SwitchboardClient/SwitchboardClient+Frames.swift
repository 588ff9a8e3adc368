import SwitchboardCore
import SwitchboardWire

extension SwitchboardClient {
    /// Joins `topic`, asking for the messages missed since its last position.
    func sendJoin(_ topic: String) {
        guard var record = channels[topic] else { return }
        let ref = makeRef()
        record.joinRef = ref
        channels[topic] = record
        inFlight[ref] = .join(topic)
        var broadcast: Value.Object = ["self": .bool(record.options.receiveOwnMessages), "ack": true]
        if let resume = record.tracker.resumeFrom {
            broadcast["replay"] = ["since_seq": .int(resume.seq), "epoch": .string(resume.epoch)]
        }
        let config: Value = [
            "broadcast": .object(broadcast),
            "presence": ["key": .string(record.options.presenceKey ?? ""), "enabled": .bool(record.options.presence)],
            "private": false,
        ]
        send(topic: topic, event: "phx_join", payload: ["config": config, "access_token": .string(configuration.token)], ref: ref, joinRef: ref)
    }

    /// Writes every buffered push whose channel is joined, in order.
    func flush() {
        guard connection != nil else { return }
        var waiting: [Outgoing] = []
        for outgoing in outbox {
            guard let record = channels[outgoing.topic], record.joined else {
                waiting.append(outgoing)
                continue
            }
            let ref = makeRef()
            inFlight[ref] = .push(outgoing)
            machine.sent(outgoing.id)
            send(topic: outgoing.topic, event: outgoing.event, payload: outgoing.payload, ref: ref, joinRef: record.joinRef)
        }
        outbox = waiting
    }

    /// Queues one frame for the connection (dropped when there is none).
    func send(topic: String, event: String, payload: Value, ref: String?, joinRef: String?) {
        let frame: Value = [
            "topic": .string(topic), "event": .string(event), "payload": payload, "ref": ref.map(Value.string) ?? .null,
            "join_ref": joinRef.map(Value.string) ?? .null,
        ]
        connection?.queue.yield(JSON.string(frame))
    }

    /// Handles a text frame from connection `id` (ignored when it is no longer the current one).
    func received(_ text: String, on id: Int) {
        guard connection?.id == id else { return }
        guard let frame = try? JSON.parse(Array(text.utf8)), let topic = frame["topic"]?.stringValue,
            let event = frame["event"]?.stringValue
        else {
            logger.warning("an undecodable frame from the server", metadata: ["frame": "\(text.prefix(200))"])
            return
        }
        let payload = frame["payload"] ?? .null
        switch event {
        case "phx_reply":
            if let ref = frame["ref"]?.stringValue { reply(ref: ref, payload: payload) }
        case "broadcast":
            let meta = payload["meta"]
            let message = ChannelMessage(
                event: payload["event"]?.stringValue ?? "", payload: payload["payload"] ?? .null, id: meta?["id"]?.stringValue,
                seq: meta?["seq"]?.int64Value.flatMap { $0 >= 0 ? UInt64($0) : nil }, epoch: meta?["epoch"]?.stringValue,
                replayed: meta?["replayed"]?.boolValue ?? false)
            guard channels[topic] != nil, channels[topic]?.tracker.accept(message, at: clock.now) == true else { return }
            channels[topic]?.events.yield(.message(message))
        case "presence_state", "presence_diff":
            channels[topic]?.events.yield(.presence(event: event, payload: payload))
        case "system":
            let message = payload["message"]?.stringValue ?? ""
            channels[topic]?.lastSystemMessage = message
            channels[topic]?.events.yield(.system(status: payload["status"]?.stringValue ?? "", message: message))
        case "phx_close":
            guard let record = channels[topic], frame["ref"]?.stringValue == record.joinRef || frame["join_ref"]?.stringValue == record.joinRef
            else { return }
            drop(topic, reason: record.lastSystemMessage ?? "the server closed the channel")
        case "phx_error":
            if channels[topic] != nil {
                channels[topic]?.joined = false
                sendJoin(topic)
            }
        default:
            break
        }
    }

    private func reply(ref: String, payload: Value) {
        guard let waiting = inFlight.removeValue(forKey: ref) else { return }
        let ok = payload["status"]?.stringValue == "ok"
        let response = payload["response"] ?? .null
        let reason = response["reason"]?.stringValue ?? response.stringValue ?? "refused"
        switch waiting {
        case .heartbeat:
            machine.heartbeatReplied()
        case .push(let outgoing):
            machine.finished(outgoing.id)
            if ok {
                outgoing.done?.resume()
            } else {
                outgoing.done?.resume(throwing: ClientError(.refused, reason))
            }
        case .join(let topic):
            guard var record = channels[topic], record.joinRef == ref else { return }
            guard ok else {
                drop(topic, reason: reason)
                return
            }
            let recovered = response["recovered"]?.boolValue
            record.tracker.joined(
                epoch: response["epoch"]?.stringValue, seq: response["seq"]?.int64Value.flatMap { $0 >= 0 ? UInt64($0) : nil },
                recovered: recovered)
            record.joined = true
            let waiters = record.waiters
            record.waiters = []
            channels[topic] = record
            record.events.yield(.joined(recovered: recovered))
            for waiter in waiters { waiter.resume() }
            if let meta = record.tracked {
                let ref = makeRef()
                send(
                    topic: topic, event: "presence", payload: ["type": "presence", "event": "track", "payload": .object(meta)], ref: ref,
                    joinRef: record.joinRef)
            }
            flush()
        }
    }
}
