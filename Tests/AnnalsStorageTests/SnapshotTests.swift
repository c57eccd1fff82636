import Foundation
import Testing
@testable import AnnalsStorage

/// Engine-level snapshots: the latest one of the asked schema version wins, others are never
/// decoded, a snapshot cannot claim a future revision, and a damaged one is skipped with a
/// warning (the caller replays), never returned.
@Suite struct SnapshotTests {
    @Test func latestSnapshotOfTheAskedVersionWins() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        for index in 0..<10 { _ = try await store.append([checkableEvent(stream: "acct-1", index: index, size: 40)], to: "acct-1") }
        #expect(store.latestSnapshot(of: "acct-1", schemaVersion: 1).snapshot == nil)
        try await store.saveSnapshot(of: "acct-1", revision: 3, schemaVersion: 1, bytes: Array("v1@3".utf8))
        try await store.saveSnapshot(of: "acct-1", revision: 7, schemaVersion: 1, bytes: Array("v1@7".utf8))
        try await store.saveSnapshot(of: "acct-1", revision: 9, schemaVersion: 2, bytes: Array("v2@9".utf8))
        let v1 = store.latestSnapshot(of: "acct-1", schemaVersion: 1)
        #expect(v1.snapshot?.revision == 7 && v1.snapshot?.bytes == Array("v1@7".utf8))
        #expect(v1.skippedOtherVersions == 1)
        #expect(store.latestSnapshot(of: "acct-1", schemaVersion: 2).snapshot?.bytes == Array("v2@9".utf8))
        #expect(store.latestSnapshot(of: "acct-1", schemaVersion: 3).snapshot == nil)
        await #expect(throws: AppendError.snapshotAhead(stream: "acct-1", revision: 10, lastRevision: 9)) {
            try await store.saveSnapshot(of: "acct-1", revision: 10, schemaVersion: 1, bytes: [1])
        }
        await #expect(throws: AppendError.snapshotAhead(stream: "nothing", revision: 0, lastRevision: nil)) {
            try await store.saveSnapshot(of: "nothing", revision: 0, schemaVersion: 1, bytes: [1])
        }
        try await store.close()
        // Snapshots survive a reopen like events.
        let reopened = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        #expect(reopened.latestSnapshot(of: "acct-1", schemaVersion: 1).snapshot?.revision == 7)
        try await reopened.close()
    }

    @Test func damagedSnapshotIsSkippedWithAWarning() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 1 << 20, compression: .none))
        _ = try await store.append([checkableEvent(stream: "acct-1", index: 0, size: 40)], to: "acct-1")
        let marker = Array("SNAPSHOT-STATE-BYTES".utf8)
        try await store.saveSnapshot(of: "acct-1", revision: 0, schemaVersion: 1, bytes: marker)
        try await store.close()
        try modifyFile(try segmentFiles(path)[0]) { bytes in
            let at = bytes.indices.first { bytes[$0...].starts(with: marker) }!
            bytes[at + 3] ^= 0x01
        }
        let reader = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        let lookup = reader.latestSnapshot(of: "acct-1", schemaVersion: 1)
        #expect(lookup.snapshot == nil)
        #expect(lookup.warnings.count == 1 && lookup.warnings[0].contains("checksum"), "\(lookup.warnings)")
        try await reader.close()
    }
}
