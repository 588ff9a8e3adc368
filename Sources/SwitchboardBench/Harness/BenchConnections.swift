import NIOCore
import NIOWebSocket

/// The connections a run opened, closed together when it ends.
final class ConnectionList {
    private(set) var channels: [any Channel]

    init(_ channels: [any Channel] = []) {
        self.channels = channels
    }

    func add(_ channel: any Channel) {
        self.channels.append(channel)
    }

    func add(contentsOf channels: [any Channel]) {
        self.channels += channels
    }
}

/// Opening, joining and closing the bench's many connections.
enum BenchConnections {
    /// Runs `body` with `opened` (and whatever it adds) and closes them all when it returns or throws.
    static func closing<Result>(
        _ opened: [any Channel] = [], _ body: (ConnectionList) async throws -> Result
    ) async throws -> Result {
        let list = ConnectionList(opened)
        do {
            let result = try await body(list)
            await self.closeAll(list.channels)
            return result
        } catch {
            await self.closeAll(list.channels)
            throw error
        }
    }

    /// Opens one connection and joins `topics` (refs "1", "2", …); returns once every join is acknowledged,
    /// or right after the upgrade when `topics` is empty (always for nchan).
    ///
    /// `inFront`, when given, runs on the channel's event loop and may add handlers that see
    /// inbound frames before the ``BenchConnectionHandler`` (to take deliveries of their own).
    static func open(
        target: BenchTarget,
        speaking benchProtocol: BenchProtocol,
        topics: [String],
        registry: LoopStatsRegistry?,
        countsDeliveries: Bool,
        maxFrameSize: Int,
        timeout: Duration,
        group: any EventLoopGroup,
        join: RealtimeFrames.JoinConfig = .plain,
        inFront: (@Sendable (any Channel) throws -> Void)? = nil
    ) async throws -> any Channel {
        var joins: [String: String] = [:]
        for (index, topic) in topics.enumerated() {
            joins[String(index + 1)] = topic
        }
        let joinsByRef = joins
        let speaksPhoenix = benchProtocol.speaksPhoenix
        let connection = try await WebSocketConnector.connect(
            host: target.host,
            port: target.port,
            uri: target.uri,
            headers: [],
            maxFrameSize: maxFrameSize,
            timeout: timeout.timeAmount,
            group: group
        ) { channel in
            try inFront?(channel)
            let handler = BenchConnectionHandler(
                joins: joinsByRef,
                stats: registry?.stats(on: channel.eventLoop),
                countsDeliveries: countsDeliveries,
                speaksPhoenix: speaksPhoenix,
                eventLoop: channel.eventLoop
            )
            try channel.pipeline.syncOperations.addHandler(handler)
            return handler.joinFuture
        }
        let channel = connection.channel
        do {
            for (index, topic) in topics.enumerated() {
                try await channel.writeAndFlush(self.textFrame(RealtimeFrames.join(topic: topic, ref: String(index + 1), config: join), channel: channel)).get()
            }
            try await connection.value.failing(
                after: timeout.timeAmount,
                with: BenchError(.timedOut, "no join reply for \(topics.joined(separator: ", ")) within \(timeout)")
            ).get()
            return channel
        } catch {
            try? await channel.close()
            throw error
        }
    }

    /// Opens `count` connections, at most `concurrency` at a time, all before `deadline`.
    /// On the first failure the rest are abandoned, the opened ones closed, and the error thrown.
    static func openMany(
        count: Int,
        concurrency: Int,
        deadline: ContinuousClock.Instant,
        open: @escaping @Sendable (Int) async throws -> any Channel
    ) async throws -> [any Channel] {
        try await withThrowingTaskGroup(of: (any Channel).self) { group in
            var opened: [any Channel] = []
            opened.reserveCapacity(count)
            var firstError: (any Error)?
            var next = 0
            while next < min(count, concurrency) {
                let index = next
                group.addTask { try await open(index) }
                next += 1
            }
            while let result = await group.nextResult() {
                switch result {
                case .success(let channel):
                    opened.append(channel)
                case .failure(let error):
                    if firstError == nil {
                        firstError = error
                        group.cancelAll()
                    }
                }
                if firstError == nil, next < count {
                    if ContinuousClock.now >= deadline {
                        firstError = BenchError(.timedOut, "only \(opened.count) of \(count) connections were open when the run's time ran out")
                        group.cancelAll()
                    } else {
                        let index = next
                        group.addTask { try await open(index) }
                        next += 1
                    }
                }
            }
            if let firstError {
                await self.closeAll(opened)
                throw firstError
            }
            return opened
        }
    }

    /// Sends a close frame on every connection, closes them, and waits (bounded) until they are closed.
    static func closeAll(_ channels: [any Channel], timeout: TimeAmount = .seconds(5)) async {
        guard let first = channels.first else { return }
        var futures: [EventLoopFuture<Void>] = []
        futures.reserveCapacity(channels.count)
        for channel in channels {
            var data = channel.allocator.buffer(capacity: 2)
            data.writeInteger(UInt16(1000))
            let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: data)
            channel.writeAndFlush(frame).whenComplete { _ in channel.close(promise: nil) }
            futures.append(channel.closeFuture)
        }
        let all = EventLoopFuture.andAllComplete(futures, on: first.eventLoop)
        if (try? await all.failing(after: timeout, with: BenchError(.timedOut, "close")).get()) == nil {
            for channel in channels {
                channel.close(promise: nil)
            }
        }
    }

    static func textFrame(_ text: String, channel: any Channel) -> WebSocketFrame {
        var buffer = channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        return WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer)
    }
}
