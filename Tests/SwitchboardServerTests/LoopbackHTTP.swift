import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One HTTP/1.1 request to a test server over SwiftNIO, with a deadline.
///
/// The tests used Foundation's `URLSession`; on Linux a request of it sometimes never completed
/// and never timed out (about one full-suite run in three on a busy two-core machine hung for
/// ever in a `/health` poll). This one cannot: at the deadline the connection is closed, which
/// ends the wait, and the request fails with ``LoopbackHTTPError/timedOut``.
enum LoopbackHTTP {
    struct Response {
        let status: Int
        let body: String
    }

    static func request(
        port: Int, method: HTTPMethod, path: String, headers: [(String, String)] = [], body: String? = nil,
        timeout: Duration = .seconds(30), tls: TLSConfiguration? = nil
    ) async throws -> Response {
        let context = try tls.map { try NIOSSLContext(configuration: $0) }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        let deadline = channel.channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            channel.channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        let bytes = body.map { ByteBuffer(string: $0) }
        head.headers.add(name: "Content-Length", value: String(bytes?.readableBytes ?? 0))
        var status: Int?
        var received = ByteBuffer()
        var complete = false
        do {
            try await channel.executeThenClose { inbound, outbound in
                // One write for the whole request: a server that answers as soon as it has the
                // head and then closes (`Connection: close`) must not find a part still to be
                // written, or the write fails with "I/O on closed channel" on a busy machine.
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let bytes { parts.append(.body(.byteBuffer(bytes))) }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)
                for try await part in inbound {
                    switch part {
                    case .head(let response): status = Int(response.status.code)
                    case .body(var chunk): received.writeBuffer(&chunk)
                    case .end:
                        complete = true
                        return
                    }
                }
            }
        } catch where !complete {
            throw LoopbackHTTPError.failed("\(method) \(path): \(error)")
        }
        guard complete, let status else { throw LoopbackHTTPError.timedOut("\(method) \(path) had no complete answer within \(timeout)") }
        return Response(status: status, body: String(buffer: received))
    }
}

enum LoopbackHTTPError: Error, CustomStringConvertible {
    case timedOut(String)
    case failed(String)

    var description: String {
        switch self {
        case .timedOut(let what), .failed(let what): what
        }
    }
}
