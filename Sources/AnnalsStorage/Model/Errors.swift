/// Bytes on disk that fail a check: a bad checksum, an impossible length, a gap in positions.
/// Names the file and the byte offset so a person can look at it.
public struct CorruptionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Path of the file that holds the bad bytes.
    public let file: String
    /// Byte offset in that file where the bad structure starts.
    public let offset: Int
    /// What is wrong, e.g. `"frame checksum mismatch"`.
    public let reason: String

    /// A problem at `offset` of `file`.
    public init(file: String, offset: Int, reason: String) {
        self.file = file
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "\(file) at offset \(offset): \(reason)" }
}

/// Why a store could not be opened.
public enum OpenError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Another writer (in this process or another) holds the store's lock.
    case storeLocked(path: String)
    /// The directory exists but is not an Annals store (or is missing parts of one).
    case notAStore(path: String, reason: String)
    /// The store was written by a newer format version than this code can read or write.
    case unsupportedFormatVersion(path: String, found: Int, supported: Int)
    /// The options are out of range (e.g. a segment size below the minimum).
    case invalidOptions(String)
    /// Committed data failed a check during recovery.
    case corrupt(CorruptionError)
    /// The store has archived segments (``EventStore/archiveSegments(olderThan:to:)``), and the
    /// directory that holds them is missing or is not this store's archive (an unmounted file
    /// system, another store's archive). Nothing was read or changed.
    case archiveUnavailable(directory: String, reason: String)
    /// The store holds encryption keys (its `keys` file) and was opened without
    /// ``StoreOptions/encryption``. Nothing was read or changed.
    case keyEncryptionKeyRequired(path: String)
    /// The key-encryption key given is not the one the store's keys were wrapped with. Nothing
    /// was read or changed.
    case wrongKeyEncryptionKey(path: String)
    /// The ``KeyEncryptionKeyProvider`` could not supply the key-encryption key (a missing or
    /// malformed key file, a key service that refused). Nothing was read or changed.
    case keyEncryptionKeyUnavailable(reason: String)
    /// A system call failed.
    case system(SystemError)

    public var description: String {
        switch self {
        case .keyEncryptionKeyRequired(let path):
            return "\(path) holds encrypted events: open it with a key-encryption key"
        case .wrongKeyEncryptionKey(let path):
            return "the key-encryption key does not open \(path)"
        case .keyEncryptionKeyUnavailable(let reason):
            return "no key-encryption key: \(reason)"
        case .archiveUnavailable(let directory, let reason):
            return "the store's archive \(directory) cannot be used: \(reason)"
        case .storeLocked(let path):
            return "store is locked by another writer: \(path)"
        case .notAStore(let path, let reason):
            return "not an Annals store: \(path) (\(reason))"
        case .unsupportedFormatVersion(let path, let found, let supported):
            return "\(path) has format version \(found); this build supports up to \(supported)"
        case .invalidOptions(let message):
            return "invalid options: \(message)"
        case .corrupt(let error):
            return "corrupt store: \(error)"
        case .system(let error):
            return error.description
        }
    }
}

/// Why an append was refused. Every case except ``system(_:)`` and ``storeFailed(_:)`` is
/// detected before anything is written: the store is exactly as it was.
public enum AppendError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The stream name is empty, too long, or uses the reserved `$` prefix.
    case invalidStreamName(String, reason: String)
    /// An event type name is empty or too long.
    case invalidEventType(String, reason: String)
    /// An event has too many tags, or a tag that is empty or too long
    /// (``StoreLimits/maximumTagsPerEvent``, ``StoreLimits/maximumTagBytes``).
    case invalidTag(String, reason: String)
    /// An append with no events.
    case emptyAppend(stream: String)
    /// The stream is not where the caller expected it. `actual` is the stream's last revision,
    /// nil when it has no events. Nothing was written.
    case wrongExpectedRevision(stream: String, expected: ExpectedRevision, actual: UInt64?)
    /// A retry whose event ids match only part of the events already at that place in the
    /// stream: neither a new append nor a repeat of an earlier one. Nothing was written.
    case idempotencyMismatch(stream: String, revision: UInt64, reason: String)
    /// Data the append had to read (to check idempotency) failed its checksum.
    case corrupt(CorruptionError)
    /// The events do not fit in one segment, so they cannot be written as one atomic frame.
    case tooLarge(stream: String, frameBytes: Int, limitBytes: Int)
    /// The stream was hard-deleted (a tombstone): it can never be written again.
    case streamDeleted(stream: String)
    /// An event matching the append's condition (``AppendCondition``) was stored after the
    /// condition's position: `position` is the first such event. Nothing was written.
    case appendConditionFailed(position: UInt64)
    /// An event names a data subject that is empty or longer than
    /// ``StoreLimits/maximumSubjectBytes``, or names one in a store opened without
    /// ``StoreOptions/encryption``.
    case invalidSubject(String, reason: String)
    /// The cipher refused to encrypt an event or wrap a data key (not known to happen with the
    /// store's 256-bit keys and 12-byte nonces). Nothing of the append was written.
    case encryptionFailed(String)
    /// A snapshot claims a revision the stream does not have yet (`lastRevision` nil: no stream).
    case snapshotAhead(stream: String, revision: UInt64, lastRevision: UInt64?)
    /// The store was closed.
    case storeClosed
    /// The store was opened read-only.
    case readOnly
    /// A write or sync failed (this append's, or an earlier one's); the store refuses further
    /// writes until it is reopened (after a failed sync the state of the page cache cannot be
    /// trusted, and after a failed write of a frame, what reached the file is unknown).
    case storeFailed(SystemError)
    /// A system call failed during this append (for example `ENOSPC` creating a segment).
    case system(SystemError)

    public var description: String {
        switch self {
        case .invalidStreamName(let name, let reason):
            return "invalid stream name \"\(name.prefix(80))\": \(reason)"
        case .invalidEventType(let type, let reason):
            return "invalid event type \"\(type.prefix(80))\": \(reason)"
        case .invalidTag(let tag, let reason):
            return "invalid tag \"\(tag.prefix(80))\": \(reason)"
        case .emptyAppend(let stream):
            return "append to \(stream) has no events"
        case .wrongExpectedRevision(let stream, let expected, let actual):
            return "append to \(stream) expected \(expected), but the stream "
                + (actual.map { "is at revision \($0)" } ?? "does not exist")
        case .idempotencyMismatch(let stream, let revision, let reason):
            return "append to \(stream) repeats only part of the events at revision \(revision): \(reason)"
        case .corrupt(let error):
            return "corrupt data: \(error)"
        case .tooLarge(let stream, let frameBytes, let limitBytes):
            return "append to \(stream) needs \(frameBytes) bytes; a segment holds at most \(limitBytes)"
        case .streamDeleted(let stream):
            return "stream \(stream) was deleted (tombstone); it cannot be written again"
        case .encryptionFailed(let reason):
            return "encryption failed: \(reason)"
        case .invalidSubject(let subject, let reason):
            return "invalid data subject \"\(subject)\": \(reason)"
        case .appendConditionFailed(let position):
            return "the append's condition failed: a matching event was stored at position \(position)"
        case .snapshotAhead(let stream, let revision, let last):
            return "snapshot of \(stream) at revision \(revision), but the stream ends at \(last.map(String.init) ?? "no revision")"
        case .storeClosed:
            return "the store is closed"
        case .readOnly:
            return "the store was opened read-only"
        case .storeFailed(let error):
            return "the store stopped accepting writes after an I/O failure: \(error)"
        case .system(let error):
            return error.description
        }
    }
}

/// Why a read failed. Corrupt data is never returned as events.
public enum ReadError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A frame failed its checksum or structure checks.
    case corrupt(CorruptionError)
    /// The event's body was encrypted under a data subject's key that
    /// ``EventStore/forget(subject:)`` destroyed: its metadata and payload are gone for good
    /// (``RecordedEvent/isErased``). Its other fields still read.
    case bodyErased(position: UInt64)

    public var description: String {
        switch self {
        case .corrupt(let error): return "corrupt data: \(error)"
        case .bodyErased(let position): return "the body of the event at position \(position) was erased"
        }
    }
}

extension ReadError {
    /// The error as corruption, for the engine's frame-level reads (index rebuilds, repeats,
    /// conditions), which never read a body and so never meet an erased one.
    var corruption: CorruptionError {
        switch self {
        case .corrupt(let corruption): corruption
        case .bodyErased(let position): CorruptionError(file: "", offset: 0, reason: "the body of event \(position) is erased")
        }
    }
}
