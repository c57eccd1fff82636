import AnnalsTestSupport
import Foundation
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// `annals compact` stopped dead at every step of its work (an injected `_exit` at each crash
/// point in turn, then SIGKILL at seeded random moments): after each stop the store opens,
/// verifies clean, reads exactly what it read before compaction (application streams, the
/// latest snapshots, retention settings), finishes compacting when asked again, and takes
/// appends at the right revisions.
@Suite struct CompactionCrashTests {
    static let kills = Int(ProcessInfo.processInfo.environment["ANNALS_TORTURE_KILLS"] ?? "") ?? 4
    static let options = StoreOptions(segmentSizeBytes: 64 * 1024)

    struct Expected: Equatable {
        var all: [String] = []
        var streams: [String: [String]] = [:]
        var snapshots: [String: UInt64] = [:]
        var retention: [String: StreamRetention] = [:]
    }

    static let rounds = 50
    static let streams = (0..<60).map { "cart-\($0)" }

    /// A store with every kind of dead data: deleted, tombstoned, truncated and capped streams,
    /// superseded snapshots.
    func makeSource(_ path: String) async throws {
        let store = try EventStore.open(at: path, options: Self.options)
        var generator = SeededGenerator(seed: 7)
        for round in 0..<Self.rounds {
            for stream in Self.streams {
                let pad = String(repeating: "p", count: Int(generator.next() % 120))
                _ = try await store.append([EventData(type: "Line", payload: Array(#"{"n":\#(round),"p":"\#(pad)"}"#.utf8))], to: stream)
            }
        }
        for (index, stream) in Self.streams.enumerated() {
            switch index % 5 {
            case 0: try await store.deleteStream(stream)
            case 1: try await store.deleteStream(stream, hard: true)
            case 2: try await store.truncateStream(stream, before: 12)
            case 3: try await store.setRetention(StreamRetention(maxCount: 2), for: stream)
            default:
                for revision in [3, 9, 15] as [UInt64] {
                    try await store.saveSnapshot(of: stream, revision: revision, schemaVersion: 2, bytes: Array("s\(revision)".utf8))
                }
            }
        }
        try await store.close()
    }

    func observe(_ store: EventStore) throws -> Expected {
        var expected = Expected()
        var cursor = store.readAll().makeCursor()
        while let event = try cursor.next() {
            if event.stream.hasPrefix("$") { continue }
            expected.all.append("\(event.position) \(event.stream)@\(event.revision) \(String(decoding: try event.payload, as: UTF8.self))")
        }
        for stream in Self.streams {
            var streamCursor = store.read(stream).makeCursor()
            var seen: [String] = []
            while let event = try streamCursor.next() { seen.append("\(event.position)@\(event.revision)") }
            expected.streams[stream] = seen
            expected.snapshots[stream] = store.latestSnapshot(of: stream, schemaVersion: 2).snapshot?.revision
            expected.retention[stream] = store.retention(of: stream)
        }
        return expected
    }

    /// Runs `annals compact` with `environment` added; returns its exit status and stderr.
    func runCompact(_ path: String, environment: [String: String], killAfterMilliseconds: Int? = nil) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("annals")
        process.arguments = ["compact", path]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        if let killAfterMilliseconds {
            try await Task.sleep(for: .milliseconds(killAfterMilliseconds))
            kill(process.processIdentifier, SIGKILL)
        }
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
    }

    /// Opens the stopped store and checks everything the suite promises. Returns true when
    /// the stopped compaction had not finished (finishing it rewrote segments).
    @discardableResult
    func checkAfterStop(_ path: String, expected: Expected, _ label: String) async throws -> Bool {
        let reopened = try EventStore.open(at: path, options: Self.options)
        #expect(try observe(reopened) == expected, "\(label): reads changed")
        try await reopened.close()
        let verification = StoreVerifier.verify(at: path)
        #expect(verification.isSound, "\(label): \(verification.problems)")
        // Finishing the compaction later gives the same reads, and numbering goes on.
        let finishing = try EventStore.open(at: path, options: Self.options)
        let finished = try await finishing.compact()
        #expect(try observe(finishing) == expected, "\(label): reads changed after finishing the compaction")
        let soft = try await finishing.append([EventData(type: "After", payload: [])], to: "cart-0")
        #expect(soft.firstRevision == UInt64(Self.rounds), "\(label): a soft-deleted stream continues its numbering")
        let capped = try await finishing.append([EventData(type: "After", payload: [])], to: "cart-3")
        #expect(capped.firstRevision == UInt64(Self.rounds), "\(label)")
        try await finishing.close()
        #expect(StoreVerifier.verify(at: path).isSound, "\(label): after finishing")
        return finished.segmentsRewritten > 0
    }

    @Test func aCrashAtEveryStepOfCompactionLeavesAConsistentStore() async throws {
        let directory = TemporaryStore()
        let source = directory.directory + "/source"
        try await makeSource(source)
        let expected = try observe(try EventStore.open(at: source, options: StoreOptions(readOnly: true)))
        var crashPoints = 0
        for point in 1...400 {
            let work = directory.directory + "/work-\(point)"
            try FileManager.default.copyItem(atPath: source, toPath: work)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let (status, stderr) = try await runCompact(work, environment: ["ANNALS_CRASH_POINT": "\(point)"])
            if status == 0 { break }
            #expect(status == CrashPoints.exitStatus, "crash point \(point): \(stderr)")
            guard status == CrashPoints.exitStatus else { break }
            crashPoints += 1
            try await checkAfterStop(work, expected: expected, "crash point \(point) (\(stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        #expect(crashPoints >= 10, "compaction passed \(crashPoints) crash points")
        print("compaction crash points exercised: \(crashPoints)")
    }

    @Test func killedAtRandomMomentsDuringCompaction() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["ANNALS_TORTURE_SEED"] ?? "") ?? 20261127
        var generator = SeededGenerator(seed: seed)
        print("compaction kill test: seed \(seed) (ANNALS_TORTURE_SEED replays it), \(Self.kills) kills")
        let directory = TemporaryStore()
        let source = directory.directory + "/source"
        try await makeSource(source)
        let expected = try observe(try EventStore.open(at: source, options: StoreOptions(readOnly: true)))
        var interrupted = 0
        for kill in 0..<Self.kills {
            let work = directory.directory + "/work-\(kill)"
            try FileManager.default.copyItem(atPath: source, toPath: work)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let delay = Int(generator.next() % 80)
            _ = try await runCompact(work, environment: [:], killAfterMilliseconds: delay)
            if try await checkAfterStop(work, expected: expected, "seed \(seed), kill \(kill) after \(delay) ms") { interrupted += 1 }
        }
        print("compaction kill test: \(interrupted) of \(Self.kills) kills landed before the compaction finished")
    }
}
