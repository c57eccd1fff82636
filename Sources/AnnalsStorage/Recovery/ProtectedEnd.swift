#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How far the last segment of a store holds frames that were acknowledged (or durable), so
/// that bytes before it which are not valid frames are corruption, never a torn tail to cut
/// (`format-spec.md` §3.4, §3.8).
///
/// The larger of: the checkpoint, when it names the segment; and the segment's durable mark,
/// which vouches for acknowledged frames when the machine has not restarted since it was
/// written (a process crash keeps the page cache) and for durable frames otherwise.
struct ProtectedEnd: Sendable, Equatable {
    /// A frame boundary: every byte before it must be valid frames.
    let offset: Int
    /// The global position expected at `offset`, when the source says it.
    let position: UInt64?
    /// What vouches for it, for error messages.
    let source: String
    /// The segment's newest valid durable mark, read once here (nil: none).
    var mark: DurableMark? = nil

    static func of(_ segment: Segment, checkpoint: Checkpoint?, currentBoot: UUID) -> ProtectedEnd {
        var end = ProtectedEnd(offset: Format.segmentHeaderBytes, position: nil, source: "the segment header")
        if let checkpoint, checkpoint.isUsable(for: segment), Int(checkpoint.segmentOffset) > end.offset {
            end = ProtectedEnd(offset: Int(checkpoint.segmentOffset), position: checkpoint.nextPosition, source: "the checkpoint")
        }
        let mark = segment.durableMark
        if let mark {
            let vouched = mark.vouchedEnd(currentBoot: currentBoot)
            if vouched.offset > end.offset {
                end = ProtectedEnd(offset: vouched.offset, position: vouched.position,
                                   source: vouched.acknowledged ? "the durable mark (acknowledged appends)"
                                       : "the durable mark (synced appends)")
            }
        }
        end.mark = mark
        return end
    }

    /// Damage at `offset`, before this end: what the error says.
    func damage(in segment: Segment, at offset: Int, _ reason: String) -> CorruptionError {
        segment.corruption(at: offset, "\(reason), before offset \(self.offset) that \(source) vouches for")
    }
}

extension Checkpoint {
    /// True when the checkpoint names `segment` and a frame boundary inside its frame area (a
    /// log segment, not a compacted one): recovery starts verifying there (§5).
    func isUsable(for segment: Segment) -> Bool {
        segmentIndex == segment.index && !segment.isCompacted
            && segmentOffset >= UInt64(Format.segmentHeaderBytes) && segmentOffset <= UInt64(segment.frameAreaEnd)
            && segmentOffset % UInt64(Format.frameAlignment) == 0
    }
}
