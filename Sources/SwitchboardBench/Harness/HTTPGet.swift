import NIOCore
import NIOHTTP1
import NIOPosix

/// A plain HTTP/1.1 GET on loopback, for the benches that read the server's admin API.
enum HTTPGet {
    /// The status and body of `GET path` with a bearer token.
    static func get(
        host: String, port: Int, path: String, bearer: String?, timeout: Duration = .seconds(10),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> (status: Int, body: String) {
        try BenchTarget.validateLoopback(host)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(timeout.timeAmount)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    let collector = RejectedResponseCollector(
                        promise: channel.eventLoop.makePromise(of: RejectedResponse.self),
                        maxBodyBytes: WebSocketConnector.maxRejectionBodyBytes)
                    try channel.pipeline.syncOperations.addHandler(collector)
                    return (channel, collector.future)
                }
            }
        let (connection, response) = channel
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "Connection", value: "close")
        if let bearer { headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        connection.write(HTTPClientRequestPart.head(head), promise: nil)
        try await connection.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        let answer = try await response.failing(after: timeout.timeAmount, with: BenchError(.timedOut, "GET \(path) took over \(timeout)")) {
            connection.close(promise: nil)
        }.get()
        try? await connection.close()
        return (answer.status, answer.body)
    }
}
