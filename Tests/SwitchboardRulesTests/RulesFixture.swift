import Foundation
import SwitchboardCore
@testable import SwitchboardRules

/// A temporary rules directory for one test.
struct RulesFixture {
    let url: URL

    init(_ files: [String: String]) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("rules-\(UUID().uuidString)")
        for (path, text) in files {
            let file = url.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: file, atomically: true, encoding: .utf8)
        }
    }

    func write(_ path: String, _ text: String) throws {
        try text.write(to: url.appendingPathComponent(path), atomically: true, encoding: .utf8)
    }

    func engine(_ configure: (inout RulesEngine.Options) -> Void = { _ in }) throws -> RulesEngine {
        var options = RulesEngine.Options()
        options.lanes = 2
        configure(&options)
        return try RulesEngine(directory: url.path, options: options)
    }

    /// The repository's default rules directory.
    static var defaultRules: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Rules").path
    }
}

func user(
    role: String = "supplier", sub: String = "u1", tier: String? = nil, supplier: String? = nil, couple: String? = nil
) -> Identity {
    var claims: Value.Object = ["role": .string(role), "sub": .string(sub)]
    if let tier { claims["tier"] = .string(tier) }
    if let supplier { claims["supplier_id"] = .string(supplier) }
    if let couple { claims["couple_id"] = .string(couple) }
    return Identity(subject: sub, role: role, tier: tier, supplierID: supplier, coupleID: couple, expiresAt: 0, claims: claims)
}

func channel(_ name: String) throws -> ChannelName { try ChannelName(validating: name) }
