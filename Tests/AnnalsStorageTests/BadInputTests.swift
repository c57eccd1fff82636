import Foundation
import Testing
@testable import AnnalsStorage

/// Bad input at the public entry points: each is refused with a typed error that says what is
/// wrong, and the store's files are byte for byte what they were before the call.
@Suite struct BadInputTests {
    /// Every file of the store directory with its bytes.
    func snapshot(_ path: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.subpathsOfDirectory(atPath: path) {
            var isDirectory: ObjCBool = false
            let full = path + "/" + name
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue, name != "lock"
            else { continue }
            files[name] = try Data(contentsOf: URL(fileURLWithPath: full))
        }
        return files
    }

    @Test func refusedAppendsLeaveEveryFileUnchanged() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 64 * 1024))
        _ = try await store.append([checkableEvent(stream: "s", index: 0, size: 10)], to: "s")
        try await store.flush()
        let before = try snapshot(path)
        let ok = checkableEvent(stream: "s", index: 1, size: 10)
        let cases: [(String, () async throws -> Void, (AppendError) -> Bool)] = [
            ("empty stream name", { _ = try await store.append([ok], to: "") }, { if case .invalidStreamName = $0 { true } else { false } }),
            ("over-long stream name", { _ = try await store.append([ok], to: String(repeating: "n", count: 1025)) },
             { if case .invalidStreamName = $0 { true } else { false } }),
            ("reserved stream name", { _ = try await store.append([ok], to: "$all") }, { if case .invalidStreamName = $0 { true } else { false } }),
            ("empty type", { _ = try await store.append([EventData(type: "", payload: [])], to: "s") },
             { if case .invalidEventType = $0 { true } else { false } }),
            ("over-long type", { _ = try await store.append([EventData(type: String(repeating: "t", count: 1025), payload: [])], to: "s") },
             { if case .invalidEventType = $0 { true } else { false } }),
            ("empty append", { _ = try await store.append([], to: "s") }, { if case .emptyAppend = $0 { true } else { false } }),
            ("event larger than a segment", { _ = try await store.append([EventData(type: "Big", payload: [UInt8](repeating: 1, count: 70_000))], to: "s") },
             { if case .tooLarge = $0 { true } else { false } }),
            ("wrong expected revision", { _ = try await store.append([ok], to: "s", expecting: .exact(5)) },
             { if case .wrongExpectedRevision(_, _, let actual) = $0 { actual == 0 } else { false } }),
            ("no stream expected", { _ = try await store.append([ok], to: "s", expecting: .noStream) },
             { if case .wrongExpectedRevision = $0 { true } else { false } }),
            ("stream expected", { _ = try await store.append([ok], to: "t", expecting: .streamExists) },
             { if case .wrongExpectedRevision(_, _, let actual) = $0 { actual == nil } else { false } }),
            ("one bad element fails the batch", {
                _ = try await store.append([StreamAppend(stream: "fine", events: [ok]), StreamAppend(stream: "", events: [ok])])
            }, { if case .invalidStreamName = $0 { true } else { false } }),
            ("snapshot ahead of the stream", { try await store.saveSnapshot(of: "s", revision: 9, schemaVersion: 1, bytes: [1]) },
             { if case .snapshotAhead = $0 { true } else { false } }),
            ("retention of a system stream", { try await store.setRetention(.keepEverything, for: "$retention") },
             { if case .invalidStreamName = $0 { true } else { false } }),
        ]
        for (name, call, matches) in cases {
            do {
                try await call()
                Issue.record("\(name): accepted")
            } catch let error as AppendError {
                #expect(matches(error), "\(name): \(error)")
                #expect(!"\(error)".isEmpty)
            } catch {
                Issue.record("\(name): untyped error \(error)")
            }
            try await store.flush()
            #expect(try snapshot(path) == before, "\(name) changed the store's files")
        }
        try await store.close()
    }

    @Test func refusedOpensSayWhy() async throws {
        let directory = TemporaryDirectory()
        // A directory with something else in it.
        let notAStore = directory.sub("photos")
        try FileManager.default.createDirectory(atPath: notAStore, withIntermediateDirectories: true)
        try Data("jpeg".utf8).write(to: URL(fileURLWithPath: notAStore + "/cat.jpg"))
        #expect(throws: OpenError.self) { _ = try EventStore.open(at: notAStore) }
        #expect(try snapshot(notAStore).keys.sorted() == ["cat.jpg"], "a refused open creates nothing")
        // Invalid options.
        #expect(throws: OpenError.invalidOptions("segmentSizeBytes 5000 must be a multiple of 4096 between 4096 and 1073741824")) {
            _ = try EventStore.open(at: directory.sub("x"), options: StoreOptions(segmentSizeBytes: 5000))
        }
        // A read-only open of nothing.
        #expect(throws: OpenError.self) { _ = try EventStore.open(at: directory.sub("missing"), options: StoreOptions(readOnly: true)) }
    }
}
