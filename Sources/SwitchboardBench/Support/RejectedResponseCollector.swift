import NIOCore
import NIOHTTP1

/// The status and body of a refused upgrade.
struct RejectedResponse: Sendable {
    let status: Int
    let body: String
}

/// Collects the non-101 response the upgrade handler passes on, then closes the connection.
final class RejectedResponseCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<RejectedResponse>
    private let maxBodyBytes: Int
    private var status = 0
    private var body: [UInt8] = []
    private var completed = false

    var future: EventLoopFuture<RejectedResponse> { self.promise.futureResult }

    init(promise: EventLoopPromise<RejectedResponse>, maxBodyBytes: Int) {
        self.promise = promise
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.status = Int(head.status.code)
        case .body(let buffer):
            let room = self.maxBodyBytes - self.body.count
            if room > 0, let bytes = buffer.getBytes(at: buffer.readerIndex, length: min(room, buffer.readableBytes)) {
                self.body.append(contentsOf: bytes)
            }
        case .end:
            self.complete()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.complete()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.complete()
        context.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.complete()
    }

    private func complete() {
        guard !self.completed else { return }
        self.completed = true
        self.promise.succeed(RejectedResponse(status: self.status, body: String(decoding: self.body, as: UTF8.self)))
    }
}
