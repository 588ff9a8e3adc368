/// The Phoenix serializer version a socket negotiated with its `vsn` query parameter.
public enum ProtocolVersion: String, Sendable, Hashable, CaseIterable {
    /// One JSON object per text frame.
    case v1 = "1.0.0"
    /// One JSON array per text frame, plus binary kinds 3 and 4 for user broadcasts.
    case v2 = "2.0.0"
}
