import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// A real process killed with SIGKILL mid-import: every batch it reported as committed is in the
/// store, intact and in order; the store opens, verifies clean and takes appends at the next
/// gapless position. (The long version of this torture belongs to `make torture`.)
@Suite struct KillTests {
    @Test(arguments: [1, 2, 3, 4, 5])
    func killedImportKeepsEveryCommittedBatch(seed: UInt64) async throws {
        let store = TemporaryStore()
        var generator = SeededGenerator(seed: seed)
        let lines = (0..<20_000).map { index in
            #"{"stream":"s-\#(index % 37)","type":"T","data":{"n":\#(index),"pad":"\#(String(repeating: "p", count: Int(generator.next() % 300)))"}}"#
        }
        let inputPath = store.directory + "/input.jsonl"
        let outputPath = store.directory + "/output.txt"
        try lines.joined(separator: "\n").write(toFile: inputPath, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: outputPath, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("annals")
        process.arguments = ["import", store.path, "--batch", "50", "--segment-size-bytes", "262144"]
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inputPath))
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait for the first commit, then kill at a seeded moment.
        for _ in 0..<2000 where (try? String(contentsOfFile: outputPath, encoding: .utf8))?.isEmpty ?? true {
            try await Task.sleep(for: .milliseconds(1))
        }
        try await Task.sleep(for: .milliseconds(Int(generator.next() % 150)))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()

        let output = try String(contentsOfFile: outputPath, encoding: .utf8)
        let committed = output.split(separator: "\n").compactMap { $0.hasPrefix("committed ") ? UInt64($0.dropFirst(10)) : nil }
        let lastCommitted = try #require(committed.last, "seed \(seed): the import committed nothing before the kill")

        let reopened = try EventStore.open(at: store.path, options: StoreOptions(segmentSizeBytes: 262_144))
        #expect(reopened.endPosition > lastCommitted, "seed \(seed)")
        var cursor = reopened.readAll().makeCursor()
        var position: UInt64 = 0
        while let event = try cursor.next() {
            #expect(event.position == position)
            let expected = lines[Int(position)]
            let data = String(decoding: try event.payload, as: UTF8.self)
            #expect(expected.contains(data), "seed \(seed) position \(position)")
            position += 1
        }
        #expect(StoreVerifier.verify(at: store.path).isSound, "seed \(seed)")
        let next = try await reopened.append([EventData(type: "After", payload: [])], to: "s-0")
        #expect(next.firstPosition == position)
        try await reopened.close()
    }
}
