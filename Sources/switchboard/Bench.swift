import ArgumentParser

/// `switchboard bench`: load tools that measure a running server.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure a running server.", subcommands: [])
}
