import Foundation
import PackagePlugin

/// `swift package check-rules [DIR]`: builds `switchboard` and runs `switchboard rules check [DIR]`
/// from the package directory, so DIR defaults to SWITCHBOARD_RULES_DIR, else `Rules`.
@main
struct CheckRules: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        let switchboard = try context.tool(named: "switchboard")
        let process = Process()
        process.executableURL = switchboard.url
        process.arguments = ["rules", "check"] + arguments
        process.currentDirectoryURL = context.package.directoryURL
        try process.run()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw CheckRulesError(status: process.terminationStatus)
        }
    }
}

/// `rules check` found problems (it has printed them as file:line: message).
struct CheckRulesError: Error, CustomStringConvertible {
    let status: Int32
    var description: String { "switchboard rules check failed (exit status \(status)); see the problems above" }
}
