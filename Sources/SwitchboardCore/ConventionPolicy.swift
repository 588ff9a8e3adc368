/// The plain Swift policy that stands in for the Lua rules engine: it allows the channels of the
/// platform by their naming convention and denies everything else.
///
/// | channel | join | send |
/// |---|---|---|
/// | `supplier:dashboard:{id}` | `supplier_id == id` | same |
/// | `couple:dashboard:{id}` | `couple_id == id` | same |
/// | `form:responses:{id}` | `id` listed in the `form_ids` claim | same |
/// | `journey:progress:{id}` | `id` listed in the `journey_ids` claim | same |
/// | `collaboration:{supplier_id}:{couple_id}` | either id matches | same |
/// | `system:announcements`, `public:directory` | any authenticated user | admins only |
///
/// `admin` and `service_role` tokens may join and send everywhere a channel exists.
public struct ConventionPolicy: Policy {
    /// Limits per tier; tiers not listed use `defaultLimits`.
    public var tierLimits: [String: Limits]
    public var defaultLimits: Limits

    public init(defaultLimits: Limits, tierLimits: [String: Limits]) {
        self.defaultLimits = defaultLimits
        self.tierLimits = tierLimits
    }

    /// The spec's limits: 10 channels (3 on the free tier, also when no tier is given),
    /// 64 KB payloads, 100 messages per minute per channel.
    public static func standard(
        maxChannels: Int = 10, freeMaxChannels: Int = 3, maxPayloadBytes: Int = 64 * 1024, messagesPerMinute: Int = 100
    ) -> ConventionPolicy {
        let paid = Limits(maxChannels: maxChannels, maxPayloadBytes: maxPayloadBytes, messagesPerMinute: messagesPerMinute)
        var free = paid
        free.maxChannels = freeMaxChannels
        return ConventionPolicy(defaultLimits: free, tierLimits: ["free": free, "paid": paid, "scale": paid])
    }

    public func limits(for identity: Identity) -> Limits {
        identity.tier.flatMap { tierLimits[$0] } ?? defaultLimits
    }

    public func authorizeJoin(_ identity: Identity, channel: ChannelName) -> Decision {
        decide(identity, channel, sending: false)
    }

    public func authorizeSend(_ identity: Identity, channel: ChannelName, event: String, payload: Value?) -> Decision {
        decide(identity, channel, sending: true)
    }

    private func decide(_ identity: Identity, _ channel: ChannelName, sending: Bool) -> Decision {
        let parts = channel.segments.map(String.init)
        let verb = sending ? "send on" : "join"
        switch parts.count == 3 ? (parts[0], parts[1]) : ("", "") {
        case ("supplier", "dashboard"):
            return require(identity.isAdmin || identity.supplierID == parts[2], "only supplier \(parts[2]) may \(verb) this dashboard")
        case ("couple", "dashboard"):
            return require(identity.isAdmin || identity.coupleID == parts[2], "only couple \(parts[2]) may \(verb) this dashboard")
        case ("form", "responses"):
            return require(identity.isAdmin || listed(parts[2], in: identity, claim: "form_ids"), "only the owner of form \(parts[2]) may \(verb) its responses")
        case ("journey", "progress"):
            return require(identity.isAdmin || listed(parts[2], in: identity, claim: "journey_ids"), "only the supplier and couple of journey \(parts[2]) may \(verb) it")
        default:
            break
        }
        if parts.count == 3, parts[0] == "collaboration" {
            return require(
                identity.isAdmin || identity.supplierID == parts[1] || identity.coupleID == parts[2],
                "only supplier \(parts[1]) and couple \(parts[2]) may \(verb) this collaboration channel")
        }
        if channel.rawValue == "system:announcements" || channel.rawValue == "public:directory" {
            return sending ? require(identity.isAdmin, "only admins may send on \(channel)") : .allow
        }
        return .deny("no rule allows channel \(channel)")
    }

    private func require(_ condition: Bool, _ reason: String) -> Decision {
        condition ? .allow : .deny(reason)
    }

    private func listed(_ id: String, in identity: Identity, claim: String) -> Bool {
        identity.claims[claim]?.arrayValue?.contains(.string(id)) ?? false
    }
}
