import SwitchboardCore
import SwitchboardWire

/// A row of `realtime.messages` that a committed transaction inserted (through
/// `realtime.send`, `realtime.broadcast_changes` or a plain insert), as the reader decoded it.
public struct DatabaseMessage: Sendable, Equatable {
    /// The row's `id` (a UUID): the message's `meta.id`.
    public let id: String
    public let topic: String
    public let event: String?
    /// The `payload` column; nil when it is null.
    public let payload: Value?
    /// Supabase's `private` flag (Switchboard's join rules decide who receives either way).
    public let isPrivate: Bool
    /// Supabase's `extension` column; only `broadcast` rows are published.
    public let `extension`: String
    /// When the row was inserted (the column's text, the database's time).
    public let insertedAt: String
    /// Why the row could not be read as a message (its payload is not JSON…); nil when it could.
    public let problem: String?

    public init(
        id: String, topic: String, event: String?, payload: Value?, isPrivate: Bool, extension: String = "broadcast",
        insertedAt: String = "", problem: String? = nil
    ) {
        self.id = id
        self.topic = topic
        self.event = event
        self.payload = payload
        self.isPrivate = isPrivate
        self.extension = `extension`
        self.insertedAt = insertedAt
        self.problem = problem
    }
}

extension DatabaseMessage {
    /// The row as `switchboard.notify_message()` announces it: a JSON object of its columns.
    /// Nil when the text is not such an object.
    init?(notification text: String) {
        guard let row = try? JSON.parse(text.utf8), row.objectValue != nil, let id = row["id"]?.stringValue else { return nil }
        let payload = row["payload"]
        self.init(
            id: id, topic: row["topic"]?.stringValue ?? "", event: row["event"]?.stringValue,
            payload: payload == .null ? nil : payload, isPrivate: row["private"]?.boolValue ?? false,
            extension: row["extension"]?.stringValue ?? "", insertedAt: row["inserted_at"]?.stringValue ?? "")
    }
}

/// wal2json's (format-version 2) description of one change, read into a message.
enum Wal2JSON {
    /// The message an inserted `realtime.messages` row carries; nil for any other change (other
    /// tables, updates, deletes), and a message with `problem` set for a row that cannot be read.
    static func message(fromChange data: String) -> DatabaseMessage? {
        guard let change = try? JSON.parse(data.utf8), change["action"]?.stringValue == "I",
            change["schema"]?.stringValue == "realtime", let table = change["table"]?.stringValue,
            table == "messages" || table.hasPrefix("messages_"), let columns = change["columns"]?.arrayValue
        else { return nil }
        var values: [String: Value] = [:]
        for column in columns {
            if let name = column["name"]?.stringValue { values[name] = column["value"] ?? .null }
        }
        let id = values["id"]?.stringValue ?? ""
        let topic = values["topic"]?.stringValue ?? ""
        let event = values["event"]?.stringValue
        var payload: Value?
        var problem: String?
        if let text = values["payload"]?.stringValue {
            do {
                payload = try JSON.parse(text.utf8)
            } catch {
                problem = "its payload is not JSON: \(error)"
            }
        }
        return DatabaseMessage(
            id: id, topic: topic, event: event, payload: payload, isPrivate: values["private"]?.boolValue ?? false,
            extension: values["extension"]?.stringValue ?? "", insertedAt: values["inserted_at"]?.stringValue ?? "",
            problem: problem)
    }
}
