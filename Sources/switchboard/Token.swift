import ArgumentParser
import Foundation
import SwitchboardAuth
import SwitchboardCore

/// `switchboard token`: mints an HS256 token for the configured secret.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint a signed token (HS256) for testing and operations.",
        discussion: "Example: switchboard token --role supplier --sub u1 --claim supplier_id=s1 --tier paid --ttl 1h"
    )

    @Option(help: "The HS256 secret (default: SWITCHBOARD_JWT_SECRET).") var secret: String?
    @Option(help: "role claim: supplier, couple, admin, authenticated, service_role, …") var role: String
    @Option(help: "sub claim (user id).") var sub: String?
    @Option(help: "tier claim: free, paid or scale.") var tier: String?
    @Option(help: "supplier_id claim.") var supplierId: String?
    @Option(help: "couple_id claim.") var coupleId: String?
    @Option(help: "Extra claim key=value; repeatable. Numbers and true/false keep their type; [a,b] is a list.")
    var claim: [String] = []
    @Option(help: "Lifetime, e.g. 90s, 15m, 1h, 7d.") var ttl: String = "1h"

    func run() async throws {
        guard let secret = secret ?? Environment.string("SWITCHBOARD_JWT_SECRET") else {
            throw ValidationError("no secret: pass --secret or set SWITCHBOARD_JWT_SECRET (dev mode prints one at start)")
        }
        var extra = Value.Object()
        for item in claim {
            let (key, value) = try TokenClaims.parseClaimArgument(item)
            extra[key] = value
        }
        let claims = TokenClaims(
            role: role, subject: sub, tier: tier, supplierID: supplierId, coupleID: coupleId,
            expiresAt: Date().timeIntervalSince1970 + (try Environment.seconds(ttl)), extra: extra)
        print(try await TokenMinter(hmacSecret: secret).mint(claims))
    }
}
