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
        #expect(Self.names.contains("v4-durable-marks"))
        #expect(Self.names.contains("v5-archived"))
        #expect(Self.names.contains("v6-tags"))
        #expect(Self.names.contains("v7-encrypted"))
    }

    /// `--key-file` with the fixture's published test key, when it has encrypted events.
    static func keyArguments(_ name: String) -> [String] {
        let key = fixtures + "/" + name + "/test.kek"
        return FileManager.default.fileExists(atPath: key) ? ["--key-file", key] : []
    }

    /// Store options with the fixture's test key, when it has one.
    static func options(_ name: String) -> StoreOptions {
        var options = StoreOptions(segmentSizeBytes: 16384)
        let key = fixtures + "/" + name + "/test.kek"
        if FileManager.default.fileExists(atPath: key) { options.encryption = EncryptionOptions(keyProvider: KeyFileProvider(path: key)) }
        return options
    }

    /// A fixture's store and, beside it, its archive directory (`v5-archived`'s `archive`
    /// file names `../archive`), copied to `scratch`.
    static func copy(_ name: String, to scratch: TemporaryStore) throws {
        try FileManager.default.copyItem(atPath: fixtures + "/" + name + "/store", toPath: scratch.path)
        if FileManager.default.fileExists(atPath: fixtures + "/" + name + "/archive") {
            try FileManager.default.copyItem(atPath: fixtures + "/" + name + "/archive", toPath: scratch.directory + "/archive")
        }
    }

    /// The checkpoint of `v4-durable-marks` names the start of its last segment (as a `kill -9`
    /// after the last commit leaves it); the segment's durable mark vouches for every frame
    /// after it, so a flipped bit there is corruption a writer refuses, never a tail it cuts.
    @Test func durableMarksFixtureProtectsItsOpenSegment() async throws {
        let scratch = TemporaryStore()
        try FileManager.default.copyItem(atPath: Self.fixtures + "/v4-durable-marks/store", toPath: scratch.path)
        let segments = try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/segments").filter { $0.hasSuffix(".seg") }.sorted()
        let last = scratch.path + "/segments/" + (try #require(segments.last))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: last)))
        let mark = try #require(bytes.withUnsafeBytes { DurableMark.latest(in: $0, segmentIndex: UInt64(segments.count - 1)) })
        // The middle events frame between the checkpoint (offset 64) and the mark.
        var frames: [Int] = []
        var offset = Format.segmentHeaderBytes
        while offset < mark.durableOffset {
            frames.append(offset)
            offset += Format.aligned(Int(bytes.withUnsafeBytes { $0.u32(offset + 4) }))
        }
        let victim = frames[frames.count / 2]
        bytes[victim + 40] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: last))
        #expect {
            _ = try EventStore.open(at: scratch.path, options: StoreOptions(segmentSizeBytes: 16384))
        } throws: { error in
            guard case OpenError.corrupt(let corruption) = error else { return false }
            return corruption.file == last && corruption.offset == victim
        }
        let dump = try await runAnnals(["dump", scratch.path])
        #expect(dump.status == 1)
        #expect(try await runAnnals(["verify", scratch.path]).status == 1)
    }

    @Test(arguments: names) func fixtureDumpsAsCommittedAndVerifies(name: String) async throws {
        let directory = Self.fixtures + "/" + name
        let expected = try String(contentsOfFile: directory + "/expected.jsonl", encoding: .utf8)
        // On a copy: a read-only open changes nothing, but a test must not be able to.
        let scratch = TemporaryStore()
        try Self.copy(name, to: scratch)
        let dump = try await runAnnals(["dump", scratch.path] + Self.keyArguments(name))
        #expect(dump.status == 0, "\(dump.stderr)")
        #expect(dump.stdout == expected, "fixture \(name): annals dump differs from expected.jsonl")
        let verify = try await runAnnals(["verify", scratch.path] + Self.keyArguments(name))
        #expect(verify.status == 0, "\(verify.stdout)")
        if !Self.keyArguments(name).isEmpty {
            #expect(verify.stdout.contains("erased") && !verify.stdout.contains("authenticated 0,"), "\(verify.stdout)")
            #expect(try await runAnnals(["dump", scratch.path]).status == 1, "fixture \(name): encrypted events need the key")
        }
        // The second store of a fixture (v7-encrypted's store-all), when there is one.
        if FileManager.default.fileExists(atPath: directory + "/store-all") {
            let all = try await runAnnals(["dump", directory + "/store-all"] + Self.keyArguments(name))
            let expectedAll = try String(contentsOfFile: directory + "/expected-all.jsonl", encoding: .utf8)
            #expect(all.status == 0 && all.stdout == expectedAll,
                    "fixture \(name): store-all differs from expected-all.jsonl")
        }
    }

    @Test(arguments: names) func writerContinuesAFixture(name: String) async throws {
        let scratch = TemporaryStore()
        try Self.copy(name, to: scratch)
        let before = try await runAnnals(["dump", scratch.path] + Self.keyArguments(name)).stdout
        let store = try EventStore.open(at: scratch.path, options: Self.options(name))
        let end = store.endPosition
        for index in 0..<50 {
            _ = try await store.append([EventData(type: "Appended", payload: Array(#"{"n":\#(index),"note":"after the fixture"}"#.utf8))],
                                       to: "later-\(index % 3)")
        }
        try await store.close()
        let after = try await runAnnals(["dump", scratch.path] + Self.keyArguments(name)).stdout
        #expect(after.hasPrefix(before), "fixture \(name): old events must read the same after new appends")
        // (Retention may hide events of the fixture: count what the dump showed before.)
        #expect(after.split(separator: "\n").count == before.split(separator: "\n").count + 50)
        #expect(end > 0)
        #expect(try await runAnnals(["verify", scratch.path] + Self.keyArguments(name)).status == 0)
    }
}
