/// Where an append landed. Positions and revisions are inclusive ranges of the events written.
public struct AppendResult: Sendable, Hashable {
    /// The stream appended to.
    public let stream: String
    /// Global position of the first event of the append.
    public let firstPosition: UInt64
    /// Global position of the last event of the append.
    public let lastPosition: UInt64
    /// Stream revision of the first event of the append (revisions start at 0).
    public let firstRevision: UInt64
    /// Stream revision of the last event: the stream's current revision after the append.
    public let lastRevision: UInt64

    /// Where an append of `stream` landed (layers above the store rebuild one for an append
    /// they find again, e.g. a repeated command).
    public init(stream: String, firstPosition: UInt64, lastPosition: UInt64, firstRevision: UInt64, lastRevision: UInt64) {
        self.stream = stream
        self.firstPosition = firstPosition
        self.lastPosition = lastPosition
        self.firstRevision = firstRevision
        self.lastRevision = lastRevision
    }

    /// Number of events the append wrote.
    public var eventCount: Int { Int(lastPosition - firstPosition) + 1 }
}
