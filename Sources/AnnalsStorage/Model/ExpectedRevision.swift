/// What the caller believes about a stream before appending to it: the optimistic
/// concurrency check. A mismatch throws ``AppendError/wrongExpectedRevision(stream:expected:actual:)``
/// and writes nothing.
public enum ExpectedRevision: Sendable, Hashable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must have no events.
    case noStream
    /// The stream must have at least one event.
    case streamExists
    /// The stream's last event must have this revision (revisions start at 0).
    case exact(UInt64)

    /// True when a stream whose last revision is `actual` (nil: no events) satisfies this.
    func isSatisfied(by actual: UInt64?) -> Bool {
        switch self {
        case .any: return true
        case .noStream: return actual == nil
        case .streamExists: return actual != nil
        case .exact(let revision): return actual == revision
        }
    }

    public var description: String {
        switch self {
        case .any: return "any"
        case .noStream: return "no stream"
        case .streamExists: return "stream exists"
        case .exact(let revision): return "revision \(revision)"
        }
    }
}
