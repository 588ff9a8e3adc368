import Foundation
import NIOCore
import NIOSSL
import SwitchboardClient
import SwitchboardCore
import SwitchboardWire
import SwitchboardAuth
import SwitchboardServer
import Logging
import Testing

/// `serve --tls-cert --tls-key`: the one port speaks https:// and wss:// with a certificate the
/// test makes (openssl, for localhost and 127.0.0.1), and the Swift client and the REST API work over it.
@Suite struct TLSTests {
    /// A self-signed certificate for 127.0.0.1 and its key, in a temporary directory.
    struct Certificate {
        let directory: URL
        var certificate: String { directory.appendingPathComponent("cert.pem").path }
        var key: String { directory.appendingPathComponent("key.pem").path }

        static func make() async throws -> Certificate {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let made = Certificate(directory: directory)
            let (status, output) = try await runProcess(
                "/usr/bin/openssl",
                [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", made.key, "-out", made.certificate,
                ])
            try #require(status == 0, "openssl failed: \(output)")
            return made
        }

        /// A client configuration that trusts only this certificate.
        func trusting() throws -> TLSConfiguration {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificate))
            return configuration
        }
    }

    @Test(.timeLimit(.minutes(2))) func theSwiftClientAndTheRESTAPIWorkOverTLS() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "no openssl: run ./scripts/test.sh")
        let made = try await Certificate.make()
        defer { try? FileManager.default.removeItem(at: made.directory) }
        try await withServer({
            $0.tlsCertificatePath = made.certificate
            $0.tlsKeyPath = made.key
        }) { server in
            let tls = try made.trusting()
            // By name: the TLS client sends the host as SNI, which cannot be an IP address.
            var configuration = ClientConfiguration(
                url: "wss://localhost:\(server.port)/socket/websocket", token: try await server.token(sub: "tls-user", supplierID: "s1"))
            configuration.tlsConfiguration = tls
            let client = SwitchboardClient(configuration)
            let channel = try await client.channel("collaboration:s1:c1")
            let events = Inbox(channel.events)
            #expect(try await events.next(timeout: .seconds(30)) == .joined(recovered: nil))

            let backend = try await server.token(role: "service_role", sub: "backend")
            let body = #"{"messages":[{"topic":"collaboration:s1:c1","event":"comment:added","payload":{"comment_id":"c1","text":"over tls"}}]}"#
            let reply = try await LoopbackHTTP.request(
                port: server.port, method: .POST, path: "/api/broadcast",
                headers: [("Authorization", "Bearer \(backend)"), ("Content-Type", "application/json")], body: body, tls: tls)
            #expect(reply.status == 202, "\(reply.body)")
            guard case .message(let message) = try await events.next(timeout: .seconds(30)) else { throw TestFailure("expected the message") }
            #expect(message.payload["text"] == "over tls")
            let health = try await LoopbackHTTP.request(port: server.port, method: .GET, path: "/health", tls: tls)
            #expect(health.status == 200)

            // Plain text to the TLS port gets no answer, and a client that does not trust the
            // certificate is refused.
            let plain = try? await LoopbackHTTP.request(port: server.port, method: .GET, path: "/health", timeout: .seconds(5))
            #expect(plain?.status != 200)
            let untrusting = try? await LoopbackHTTP.request(
                port: server.port, method: .GET, path: "/health", timeout: .seconds(5), tls: .makeClientConfiguration())
            #expect(untrusting == nil)
            await client.close()
        }
    }

    @Test func aMissingOrUnreadableCertificateStopsTheStartWithAReason() async throws {
        for (certificate, key, expected) in [
            ("/nonexistent/cert.pem", "/nonexistent/key.pem", "cannot read the certificate /nonexistent/cert.pem"),
            ("/nonexistent/cert.pem", nil, "needs both"),
        ] as [(String, String?, String)] {
            var configuration = SwitchboardConfiguration(auth: .init(hmacSecret: TestServer.secret))
            configuration.rulesDirectory = TestServer.defaultRules
            configuration.port = 0
            configuration.tlsCertificatePath = certificate
            configuration.tlsKeyPath = key
            do {
                _ = try await SwitchboardServer(configuration: configuration, logger: .init(label: "test"))
                Issue.record("the server started without a usable certificate")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }
}
