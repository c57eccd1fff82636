/// An append checked and measured, ready to be written under the writer lock.
struct PreparedAppend {
    let stream: String
    let events: [EventData]
    let expected: ExpectedRevision
    let ids: [UUID]
    /// True when the caller supplied every event id (only then can an append be a repeat).
    let hasCallerIDs: Bool
    let frameBytes: Int
    /// Some event carries tags (checkpoints then name format version 6).
    let hasTags: Bool
    /// The distinct event types and tags of the events: the frame's query keys.
    let keys: [QueryKey]
    /// Per event: whose key encrypts it (nil: stored in the clear). Empty when none is.
    let keyOwners: [KeyOwner?]

    /// What the store encrypts: nothing (nil), events naming a subject (false), or every event (true).
    init(
        _ append: StreamAppend, frameLimitBytes: Int, generateIDs: Bool = true, allowReservedName: Bool = false,
        encryptsEverything: Bool? = nil
    ) throws(AppendError) {
        let name = append.stream
        let nameBytes = name.utf8.count
        guard nameBytes > 0 else { throw .invalidStreamName(name, reason: "empty") }
        guard nameBytes <= StoreLimits.maximumStreamNameBytes else {
            throw .invalidStreamName(name, reason: "\(nameBytes) bytes; the maximum is \(StoreLimits.maximumStreamNameBytes)")
        }
        guard allowReservedName || name.first != StoreLimits.reservedStreamPrefix else {
            throw .invalidStreamName(name, reason: "names starting with \"$\" are reserved")
        }
        guard !append.events.isEmpty else { throw .emptyAppend(stream: name) }
        for event in append.events {
            let typeBytes = event.type.utf8.count
            guard typeBytes > 0 else { throw .invalidEventType(event.type, reason: "empty") }
            guard typeBytes <= StoreLimits.maximumEventTypeBytes else {
                throw .invalidEventType(event.type, reason: "\(typeBytes) bytes; the maximum is \(StoreLimits.maximumEventTypeBytes)")
            }
            guard event.tags.count <= StoreLimits.maximumTagsPerEvent else {
                throw .invalidTag(event.tags[StoreLimits.maximumTagsPerEvent],
                                  reason: "an event has \(event.tags.count) tags; the maximum is \(StoreLimits.maximumTagsPerEvent)")
            }
            for tag in event.tags {
                let tagBytes = tag.utf8.count
                guard tagBytes > 0 else { throw .invalidTag(tag, reason: "empty") }
                guard tagBytes <= StoreLimits.maximumTagBytes else {
                    throw .invalidTag(tag, reason: "\(tagBytes) bytes; the maximum is \(StoreLimits.maximumTagBytes)")
                }
            }
        }
        var keyOwners: [KeyOwner?] = []
        if let encryptsEverything {
            keyOwners = try append.events.map { (event) throws(AppendError) -> KeyOwner? in
                guard let subject = event.subject else { return encryptsEverything ? .store : nil }
                let subjectBytes = subject.utf8.count
                guard subjectBytes > 0 else { throw .invalidSubject(subject, reason: "empty") }
                guard subjectBytes <= StoreLimits.maximumSubjectBytes else {
                    throw .invalidSubject(subject, reason: "\(subjectBytes) bytes; the maximum is \(StoreLimits.maximumSubjectBytes)")
                }
                return .subject(subject)
            }
            if keyOwners.allSatisfy({ $0 == nil }) { keyOwners = [] }
        } else if let subject = append.events.lazy.compactMap(\.subject).first {
            throw .invalidSubject(subject, reason: "the store was opened without encryption (StoreOptions.encryption)")
        }
        let owners = keyOwners
        let frameBytes = FrameEncoder.alignedFrameBytes(streamNameBytes: nameBytes, events: append.events) { !owners.isEmpty && owners[$0] != nil }
        guard frameBytes <= frameLimitBytes else {
            throw .tooLarge(stream: name, frameBytes: frameBytes, limitBytes: frameLimitBytes)
        }
        self.stream = name
        self.events = append.events
        self.expected = append.expected
        self.hasCallerIDs = append.events.allSatisfy { $0.id != nil }
        self.ids = generateIDs ? EventIDGenerator.fill(append.events) : []
        self.frameBytes = frameBytes
        self.hasTags = append.events.contains { !$0.tags.isEmpty }
        self.keys = QueryKey.keys(of: append.events)
        self.keyOwners = keyOwners
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
