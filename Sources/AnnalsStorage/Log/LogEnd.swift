/// A point in the log: a frame boundary in a segment, and the global position of the next
/// event at or after it.
struct LogEnd: Sendable, Equatable {
    var segmentIndex: UInt64
    var offset: Int
    var nextPosition: UInt64
}
