/// JSON for the wire: a strict RFC 8259 parser into `Value` and a compact serializer from it.
///
/// Foundation's JSON coders are not used because they lose number literal text and key order,
/// both of which Switchboard must relay unchanged.
public enum JSON {
    /// The default bound on nested arrays and objects accepted by `parse`.
    public static let defaultMaxDepth = 32
}
