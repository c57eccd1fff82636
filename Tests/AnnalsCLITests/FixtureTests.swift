import Foundation
import Testing
@testable import AnnalsStorage

/// The golden stores under `Tests/Fixtures` (one per format version ever written, never
/// regenerated) keep reading exactly as committed, and a writer continues each of them. The
/// Python reader checks the same files (`Tools/python-reader/tests`).
@Suite struct FixtureTests {
    static let fixtures: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures").path

    static var names: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: fixtures)) ?? [])
            .filter { FileManager.default.fileExists(atPath: fixtures + "/" + $0 + "/store/checkpoint") }.sorted()
    }

    @Test func fixturesExistForEveryFormatVersion() {
        #expect(Self.names.contains("v1-uncompressed"))
        #expect(Self.names.contains("v2-compressed"))
        #expect(Self.names.contains("v2-system-streams"))
        #expect(Self.names.contains("v3-compacted"))
    }

    @Test(arguments: names) func fixtureDumpsAsCommittedAndVerifies(name: String) throws {
        let directory = Self.fixtures + "/" + name
        let expected = try String(contentsOfFile: directory + "/expected.jsonl", encoding: .utf8)
        // On a copy: a read-only open changes nothing, but a test must not be able to.
        let scratch = TemporaryStore()
        try FileManager.default.copyItem(atPath: directory + "/store", toPath: scratch.path)
        let dump = try runAnnals(["dump", scratch.path])
        #expect(dump.status == 0, "\(dump.stderr)")
        #expect(dump.stdout == expected, "fixture \(name): annals dump differs from expected.jsonl")
        let verify = try runAnnals(["verify", scratch.path])
        #expect(verify.status == 0, "\(verify.stdout)")
    }

    @Test(arguments: names) func writerContinuesAFixture(name: String) async throws {
        let scratch = TemporaryStore()
        try FileManager.default.copyItem(atPath: Self.fixtures + "/" + name + "/store", toPath: scratch.path)
        let before = try runAnnals(["dump", scratch.path]).stdout
        let store = try EventStore.open(at: scratch.path, options: StoreOptions(segmentSizeBytes: 16384))
        let end = store.endPosition
        for index in 0..<50 {
            _ = try await store.append([EventData(type: "Appended", payload: Array(#"{"n":\#(index),"note":"after the fixture"}"#.utf8))],
                                       to: "later-\(index % 3)")
        }
        try await store.close()
        let after = try runAnnals(["dump", scratch.path]).stdout
        #expect(after.hasPrefix(before), "fixture \(name): old events must read the same after new appends")
        // (Retention may hide events of the fixture: count what the dump showed before.)
        #expect(after.split(separator: "\n").count == before.split(separator: "\n").count + 50)
        #expect(end > 0)
        #expect(try runAnnals(["verify", scratch.path]).status == 0)
    }
}
