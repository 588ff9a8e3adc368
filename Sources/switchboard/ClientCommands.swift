import ArgumentParser
import Foundation
import Logging
import SwitchboardClient
import SwitchboardCore
import SwitchboardWire

/// Where the client commands connect and with which token.
struct Connection: ParsableArguments {
    @Option(help: "The socket URL (SWITCHBOARD_URL, default ws://127.0.0.1:4000/socket/websocket).") var url: String?
    @Option(help: "The token to connect with (SWITCHBOARD_TOKEN).") var token: String?

    func configuration() throws -> ClientConfiguration {
        let url = url ?? Environment.string("SWITCHBOARD_URL") ?? "ws://127.0.0.1:4000/socket/websocket"
        guard url.hasPrefix("ws://") || url.hasPrefix("wss://") else {
            throw ValidationError("--url must start with ws:// or wss://, got \(url)")
        }
        guard let token = token ?? Environment.string("SWITCHBOARD_TOKEN"), !token.isEmpty else {
            throw ValidationError("pass --token or set SWITCHBOARD_TOKEN (switchboard token mints one)")
        }
        var configuration = ClientConfiguration(url: url, token: token)
        configuration.logger = Logger(label: "switchboard-client") { _ in SwiftLogNoOpLogHandler() }
        return configuration
    }
}

/// `switchboard listen CHANNEL`: prints the channel's messages as JSON lines, across reconnects.
struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a channel's messages as JSON lines; survives reconnects (replaying what was missed).",
        discussion: """
            Each line is {"event","payload","id","seq","epoch","replayed"}. Connection changes, rejoins and
            system messages go to stderr. Example: switchboard listen collaboration:s1:c1 --token $TOKEN
            """
    )

    @Argument(help: "The channel, e.g. collaboration:s1:c1.") var channel: String
    @OptionGroup var connection: Connection
    @Option(help: "Exit after this many messages (default: run until interrupted).") var count: Int?

    func run() async throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        let client = SwitchboardClient(try connection.configuration())
        let states = Task {
            for await state in client.states { FileHandle.standardError.write(Data("switchboard: \(state)\n".utf8)) }
        }
        defer { states.cancel() }
        let joined: RealtimeChannel
        do {
            joined = try await client.channel(channel)
        } catch let error as ClientError {
            await client.close()
            throw CommandFailure("could not join \(channel): \(error.message)")
        }
        var printed = 0
        for await event in joined.events {
            switch event {
            case .message(let message):
                let line: Value = [
                    "event": .string(message.event), "payload": message.payload, "id": message.id.map(Value.string) ?? .null,
                    "seq": message.seq.map { .int($0) } ?? .null, "epoch": message.epoch.map(Value.string) ?? .null,
                    "replayed": .bool(message.replayed),
                ]
                FileHandle.standardOutput.write(Data((JSON.string(line) + "\n").utf8))
                printed += 1
                if let count, printed >= count {
                    await client.close()
                    return
                }
            case .joined(let recovered):
                let note = recovered.map { $0 ? " (every missed message replayed)" : " (missed messages were lost: reload)" } ?? ""
                FileHandle.standardError.write(Data("switchboard: joined \(channel)\(note)\n".utf8))
            case .system(let status, let message):
                FileHandle.standardError.write(Data("switchboard: system \(status): \(message)\n".utf8))
            case .presence:
                break
            case .closed(let reason):
                await client.close()
                throw CommandFailure("the server closed \(channel): \(reason)")
            }
        }
    }
}

/// `switchboard send CHANNEL EVENT JSON`: publishes one message and waits for the ack.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish one message on a channel and wait for the server's acknowledgement.",
        discussion: """
            Prints the message id on success; exits 1 with the server's reason when refused. Example:
            switchboard send collaboration:s1:c1 comment:added '{"comment_id":"c1","text":"hi"}' --token $TOKEN
            """
    )

    @Argument(help: "The channel, e.g. collaboration:s1:c1.") var channel: String
    @Argument(help: "The event, e.g. comment:added.") var event: String
    @Argument(help: "The payload as JSON.") var payload: String
    @OptionGroup var connection: Connection
    @Option(help: "The message id (a repeat within 5 minutes is not delivered again; default: a new UUID).") var id: String?
    @Option(help: "Seconds to wait for a connection and the acknowledgement.") var timeout: Int = 30

    func run() async throws {
        let body: Value
        do {
            body = try JSON.parse(Array(payload.utf8))
        } catch {
            throw ValidationError("the payload is not JSON: \(error)")
        }
        guard (1...3600).contains(timeout) else { throw ValidationError("--timeout must be 1...3600 seconds") }
        var configuration = try connection.configuration()
        configuration.joinTimeout = .seconds(timeout)
        configuration.bufferedLifetime = .seconds(timeout)
        let client = SwitchboardClient(configuration)
        let messageID = id ?? UUID().uuidString.lowercased()
        do {
            let joined = try await client.channel(channel)
            try await joined.send(event, payload: body, id: messageID)
        } catch let error as ClientError {
            await client.close()
            throw CommandFailure("not sent: \(error.message)")
        }
        await client.close()
        print(messageID)
    }
}

/// A command that ran and failed: printed as `Error: <message>`, exit status 1, no usage text.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
