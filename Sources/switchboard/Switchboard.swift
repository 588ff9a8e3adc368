import ArgumentParser

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A realtime WebSocket runtime that speaks the Supabase Realtime protocol.",
        subcommands: [Serve.self, Token.self, Listen.self, Send.self, Rules.self, DB.self, Bench.self]
    )
}
