import Foundation
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// `annals archive` stopped dead at every step of its work (an injected `_exit` at each crash
/// point in turn), for a store's first archive run and for a later one: after each stop the
/// store dumps exactly what it dumped before, verifies clean, its writable open leaves each
/// segment in one place, and a run to the end moves every sealed segment.
@Suite struct ArchiveCrashTests {
    static let options = StoreOptions(segmentSizeBytes: 64 * 1024, compression: .none)

    /// `root/store` with ~20 segments; with `archived`, its first segments already in
    /// `root/cold` (named `../cold`, so the pair can be copied).
    func makeSource(_ root: String, archived: Bool) async throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let store = try EventStore.open(at: root + "/store", options: Self.options)
        for index in 0..<3_000 {
            let pad = String(repeating: "p", count: 200 + index % 150)
            _ = try await store.append([EventData(type: "Line", payload: Array(#"{"n":\#(index),"p":"\#(pad)"}"#.utf8))], to: "cart-\(index % 40)")
            if archived, index == 1_500 { _ = try await store.archiveSegments(olderThan: .zero, to: "../cold") }
        }
        try await store.close()
    }

    func runArchive(_ root: String, crashPoint: Int) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("annals")
        process.arguments = ["archive", root + "/store", root + "/cold", "--older-than", "0"]
        process.environment = ProcessInfo.processInfo.environment.merging(["ANNALS_CRASH_POINT": "\(crashPoint)"]) { $1 }
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
    }

    /// Segment numbers in `directory` (`.seg` files).
    static func numbers(_ directory: String) -> Set<UInt64> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap(StoreLayout.segmentIndex(fileName:)))
    }

    @Test(arguments: [false, true])
    func anArchiveRunStoppedAtEveryStepLosesNothing(alreadyArchived: Bool) async throws {
        let directory = TemporaryStore()
        let source = directory.directory + "/source"
        try await makeSource(source, archived: alreadyArchived)
        let expected = try await runAnnals(["dump", source + "/store"]).stdout
        #expect(expected.split(separator: "\n").count == 3_000)
        var stops = 0
        for point in 1...200 {
            let work = directory.directory + "/work-\(point)"
            try FileManager.default.copyItem(atPath: source, toPath: work)
            defer { try? FileManager.default.removeItem(atPath: work) }
            let (status, stderr) = try await runArchive(work, crashPoint: point)
            if status == 0 { break }
            let label = "crash point \(point) (\(stderr.trimmingCharacters(in: .whitespacesAndNewlines)))"
            #expect(status == CrashPoints.exitStatus, "\(label)")
            guard status == CrashPoints.exitStatus else { break }
            stops += 1
            let dump = try await runAnnals(["dump", work + "/store"])
            #expect(dump.status == 0 && dump.stdout == expected, "\(label): \(dump.stderr)")
            #expect(try await runAnnals(["verify", work + "/store"]).status == 0, "\(label)")
            // A writable open deletes the local files of archived segments: one place each.
            let reopened = try EventStore.open(at: work + "/store", options: Self.options)
            let boundary = reopened.archive.withLock { $0?.firstLocalSegment } ?? 0
            try await reopened.close()
            #expect(Self.numbers(work + "/store/segments").allSatisfy { $0 >= boundary }, "\(label): local files of archived segments left")
            #expect(Self.numbers(work + "/cold").filter { $0 < boundary }.count == Int(boundary) || boundary == 0, "\(label)")
            // And the next run finishes the move.
            let finished = try await runAnnals(["archive", work + "/store", work + "/cold", "--older-than", "0"])
            #expect(finished.status == 0, "\(label): \(finished.stderr)")
            #expect(Self.numbers(work + "/store/segments").count == 1, "\(label): only the open segment stays")
            #expect(try await runAnnals(["dump", work + "/store"]).stdout == expected, "\(label)")
            #expect(try await runAnnals(["verify", work + "/store"]).status == 0, "\(label)")
        }
        #expect(stops >= 10, "the archive run passed \(stops) crash points")
        print("archive crash points exercised (already archived: \(alreadyArchived)): \(stops)")
    }
}
