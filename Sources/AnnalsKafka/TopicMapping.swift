import AnnalsStorage

/// Which Kafka topic an event goes to.
public struct TopicMapping: Sendable {
    private let topic: @Sendable (RecordedEvent) -> String

    /// A mapping of your own. Names are used as they are; Kafka allows `[a-zA-Z0-9._-]`, up to
    /// 249 characters.
    public init(_ topic: @escaping @Sendable (RecordedEvent) -> String) {
        self.topic = topic
    }

    /// One topic per stream category: the stream name up to its first `-` (`order-123` →
    /// `<prefix>order`; a name without `-` is its own category). Characters Kafka does not
    /// allow in topic names become `_`.
    public static func category(prefix: String = "") -> TopicMapping {
        TopicMapping { event in prefix + sanitized(category(of: event.stream)) }
    }

    /// Every event to one topic.
    public static func single(_ name: String) -> TopicMapping { TopicMapping { _ in name } }

    func topic(for event: RecordedEvent) -> String { topic(event) }

    static func category(of stream: String) -> String {
        guard let dash = stream.firstIndex(of: "-"), dash != stream.startIndex else { return stream }
        return String(stream[..<dash])
    }

    static func sanitized(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        let mapped = String(name.map { allowed.contains($0) ? $0 : "_" })
        return mapped.isEmpty ? "_" : String(mapped.prefix(200))
    }
}
