import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// A real process killed with SIGKILL mid-import: every batch it reported as committed is in the
/// store, intact and in order; the store opens, verifies clean and takes appends at the next
/// gapless position. `make torture` runs many more kills (`ANNALS_TORTURE_KILLS`).
@Suite struct KillTests {
    static let kills = Int(ProcessInfo.processInfo.environment["ANNALS_TORTURE_KILLS"] ?? "") ?? 4

    @Test(arguments: [1, 2, 3, 4, 5])
    func killedImportKeepsEveryCommittedBatch(seed: UInt64) async throws {
        let store = TemporaryStore()
        var generator = SeededGenerator(seed: seed)
        let lines = (0..<20_000).map { index in
            #"{"stream":"s-\#(index % 37)","type":"T","data":{"n":\#(index),"pad":"\#(String(repeating: "p", count: Int(generator.next() % 300)))"}}"#
        }
        let output = try await runImportAndKill(store: store, lines: lines, batch: 50,
                                                delayMilliseconds: Int(generator.next() % 150))
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

    /// One store, killed again and again while importing, each new process continuing where the
    /// last one's durable data ends. After every kill: everything ever reported committed is
    /// there, byte for byte; what is there beyond it is a prefix of what was being imported
    /// (never garbage); the store verifies clean.
    @Test func repeatedKillsLoseNothingCommitted() async throws {
        let store = TemporaryStore()
        var generator = SeededGenerator(seed: 99)
        var expected: [String] = [] // by position: the data of every event the store holds
        for round in 0..<Self.kills {
            let base = expected.count
            let lines = (0..<3000).map { index in
                #"{"stream":"r\#(round)-\#(index % 11)","type":"T","data":{"round":\#(round),"n":\#(index),"pad":"\#(String(repeating: "x", count: Int(generator.next() % 200)))"}}"#
            }
            let output = try await runImportAndKill(store: store, lines: lines, batch: 40,
                                                    delayMilliseconds: Int(generator.next() % 120))
            let committed = output.split(separator: "\n").compactMap { $0.hasPrefix("committed ") ? UInt64($0.dropFirst(10)) : nil }
            let reopened = try EventStore.open(at: store.path, options: StoreOptions(segmentSizeBytes: 262_144))
            if let last = committed.last { #expect(reopened.endPosition > last, "round \(round)") }
            var cursor = reopened.readAll(from: 0).makeCursor()
            var position = 0
            while let event = try cursor.next() {
                let data = String(decoding: try event.payload, as: UTF8.self)
                if position < base {
                    #expect(expected[position].contains(data), "round \(round): position \(position) changed")
                } else {
                    #expect(lines[position - base].contains(data), "round \(round): position \(position) is not what was imported")
                    expected.append(lines[position - base])
                }
                position += 1
            }
            #expect(position >= base, "round \(round): events vanished")
            let report = StoreVerifier.verify(at: store.path)
            #expect(report.isSound, "round \(round): \(report.problems)")
            try await reopened.close()
        }
    }

    /// A bit flipped in the fifth frame of the open segment after a killed fsync import: every
    /// event reported committed is acknowledged, so the damage is corruption, never a torn tail.
    /// `verify` reports it, `dump` prints the events before it and fails, a writer refuses the
    /// store, and no byte is zeroed.
    @Test func flipInTheOpenSegmentAfterAKillLosesNoAcknowledgedEvent() async throws {
        let lines = (0..<200_000).map { index in #"{"stream":"s-\#(index % 37)","type":"T","data":{"n":\#(index)}}"# }
        // A kill soon after a roll leaves fewer than five acknowledged frames in the open
        // segment: kill again, later, until it holds them.
        var found: (store: TemporaryStore, segment: String, acknowledged: [(offset: Int, position: UInt64)])?
        for attempt in 0..<6 where found == nil {
            let store = TemporaryStore()
            let output = try await runImportAndKill(store: store, lines: lines, batch: 50, delayMilliseconds: 100 + 70 * attempt)
            let committed = output.split(separator: "\n").compactMap { $0.hasPrefix("committed ") ? UInt64($0.dropFirst(10)) : nil }
            guard let lastCommitted = committed.last, lastCommitted < UInt64(lines.count - 1) else { continue }
            let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: store.path + "/segments")
                .filter { $0.hasSuffix(".seg") }.sorted().last.map { store.path + "/segments/" + $0 })
            // The open segment's events frames whose every event was reported committed.
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
            // `position` is where the frame's group (one import batch, §3.1) starts: the log
            // never ends inside a group.
            var acknowledged: [(offset: Int, position: UInt64)] = []
            var offset = 64
            var groupStart: UInt64?
            while true {
                let (length, kind, flags, count, position) = bytes.withUnsafeBytes {
                    (Int($0.u32(offset + 4)), $0[offset + 8], $0[offset + 9], UInt64($0.u32(offset + 12)), $0.u64(offset + 16))
                }
                guard length >= 32, kind != 2 else { break }
                if kind == 1 {
                    let start = groupStart ?? position
                    if position + count - 1 <= lastCommitted { acknowledged.append((offset, start)) }
                    groupStart = flags & 1 != 0 ? start : nil
                }
                offset += (length + 7) / 8 * 8
            }
            if acknowledged.count >= 5 { found = (store, segment, acknowledged) }
        }
        let (store, segment, acknowledged) = try #require(found, "no kill left five acknowledged frames in the open segment")
        let fifth = acknowledged[4].offset
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
        let length = Int(bytes.withUnsafeBytes { $0.u32(fifth + 4) })
        bytes[fifth + length - 3] ^= 0x04
        let damaged = Data(bytes)
        try damaged.write(to: URL(fileURLWithPath: segment))

        let verify = try await runAnnals(["verify", store.path])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("offset \(fifth)"), "\(verify.stdout)")
        let dump = try await runAnnals(["dump", store.path])
        #expect(dump.status == 1)
        #expect(dump.stderr.contains("offset \(fifth)"), "\(dump.stderr)")
        let printed = UInt64(dump.stdout.split(separator: "\n").count)
        #expect(printed == acknowledged[4].position, "every event before the damaged frame's group, and nothing from it on")
        #expect {
            _ = try EventStore.open(at: store.path, options: StoreOptions(segmentSizeBytes: 262_144))
        } throws: { error in
            guard case OpenError.corrupt(let corruption) = error else { return false }
            return corruption.file == segment && corruption.offset == fifth
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: segment)) == damaged, "nothing was zeroed")

        // An operator who decides to lose the events from the damage on can: `annals repair`
        // refuses without being asked, and cuts the log at the damage when asked.
        let refused = try await runAnnals(["repair", store.path])
        #expect(refused.status == 1 && refused.stderr.contains("offset \(fifth)"), "\(refused.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: segment)) == damaged)
        let repaired = try await runAnnals(["repair", store.path, "--discard-damaged-tail"])
        #expect(repaired.status == 0, "\(repaired.stderr)")
        #expect(repaired.stdout.contains("discarded damaged data"), "\(repaired.stdout)")
        let after = try await runAnnals(["dump", store.path])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(UInt64(after.stdout.split(separator: "\n").count) == acknowledged[4].position)
        #expect(try await runAnnals(["verify", store.path]).status == 0)
        let reopened = try EventStore.open(at: store.path, options: StoreOptions(segmentSizeBytes: 262_144))
        #expect(try await reopened.append([EventData(type: "After", payload: [])], to: "s-0").firstPosition == acknowledged[4].position)
        try await reopened.close()
    }

    /// `annals backup` and `annals restore` killed with SIGKILL at seeded moments: the backup's
    /// destination is absent (a first backup) or a store that verifies and holds a prefix of
    /// the source at least as long as the previous backup's; the restored store is absent or
    /// whole.
    @Test func backupAndRestoreKilledAtRandomMomentsLeaveStoresThatOpen() async throws {
        let store = TemporaryStore()
        let lines = (0..<20_000).map { #"{"stream":"s-\#($0 % 50)","type":"T","data":{"n":\#($0),"pad":"\#(String(repeating: "x", count: 200))"}}"# }
        try lines.joined(separator: "\n").write(toFile: store.directory + "/input.jsonl", atomically: true, encoding: .utf8)
        let imported = try await runAnnals(["import", store.path, "--segment-size-bytes", "262144"],
                                     input: try String(contentsOfFile: store.directory + "/input.jsonl", encoding: .utf8))
        #expect(imported.status == 0)
        func runAndKill(_ arguments: [String], after microseconds: UInt32) throws {
            try Self.runAnnalsAndKill(arguments, after: microseconds)
        }
        var random = SystemRandomNumberGenerator()
        let backup = store.directory + "/backup"
        var previous: UInt64 = 0
        var checked = 0
        var total: UInt64 = 20_000
        for round in 0..<8 {
            let delay = UInt32.random(in: 500...30_000, using: &random)
            try runAndKill(["backup", store.path, backup], after: delay)
            if FileManager.default.fileExists(atPath: backup) {
                let copy = try EventStore.open(at: backup, options: StoreOptions(readOnly: true))
                #expect(copy.endPosition >= previous && copy.endPosition <= total, "round \(round), killed after \(delay) µs")
                #expect(StoreVerifier.verify(at: backup).isSound, "round \(round), killed after \(delay) µs")
                previous = copy.endPosition
                checked += 1
            } else {
                #expect(previous == 0, "a backup once made never disappears (round \(round))")
            }
            // Some rounds add events, so that the next backup has something new to copy.
            if round % 2 == 1 {
                let more = (0..<500).map { #"{"stream":"s-\#($0 % 50)","type":"T","data":{"more":\#($0)}}"# }
                #expect(try await runAnnals(["import", store.path, "--segment-size-bytes", "262144"], input: more.joined(separator: "\n")).status == 0)
                total += 500
            }
        }
        #expect(try await runAnnals(["backup", store.path, backup]).status == 0)
        for round in 0..<6 {
            let restored = store.directory + "/restored-\(round)"
            let delay = UInt32.random(in: 1_000...40_000, using: &random)
            try runAndKill(["restore", backup, restored], after: delay)
            if FileManager.default.fileExists(atPath: restored + "/segments") {
                #expect(StoreVerifier.verify(at: restored).isSound, "restore round \(round), killed after \(delay) µs")
            }
        }
        print("backup kill rounds with a backup to check: \(checked)")
    }

    /// `annals archive` killed with SIGKILL at seeded moments while segments move: after each
    /// kill the store dumps exactly as before and verifies, and a run to the end moves every
    /// sealed segment (the copies a killed run left are cleaned up, never read twice).
    @Test func archiveKilledAtRandomMomentsLosesNothing() async throws {
        let store = TemporaryStore()
        let archive = store.directory + "/cold"
        var random = SystemRandomNumberGenerator()
        var checked = 0
        for round in 0..<8 {
            let lines = (0..<2_500).map { #"{"stream":"s-\#($0 % 50)","type":"T","data":{"round":\#(round),"n":\#($0),"pad":"\#(String(repeating: "x", count: 200))"}}"# }
            #expect(try await runAnnals(["import", store.path, "--segment-size-bytes", "262144", "--compression", "none"],
                                  input: lines.joined(separator: "\n")).status == 0)
            let before = try await runAnnals(["dump", store.path]).stdout
            let delay = UInt32.random(in: 200...20_000, using: &random)
            try Self.runAnnalsAndKill(["archive", store.path, archive, "--older-than", "0"], after: delay)
            let after = try await runAnnals(["dump", store.path])
            #expect(after.status == 0, "round \(round), killed after \(delay) µs: \(after.stderr)")
            #expect(after.stdout == before, "round \(round), killed after \(delay) µs: the same events")
            #expect(try await runAnnals(["verify", store.path]).status == 0, "round \(round), killed after \(delay) µs")
            checked += 1
        }
        let finished = try await runAnnals(["archive", store.path, archive, "--older-than", "0"])
        #expect(finished.status == 0, "\(finished.stderr)")
        let local = try FileManager.default.contentsOfDirectory(atPath: store.path + "/segments").filter { $0.hasSuffix(".seg") }
        let cold = try FileManager.default.contentsOfDirectory(atPath: archive).filter { $0.hasSuffix(".seg") || $0.hasSuffix(".tmp") }
        #expect(local.count == 1, "only the open segment stays: \(local)")
        #expect(cold.count >= 15 && Set(cold).isDisjoint(with: local) && !cold.contains { $0.hasSuffix(".tmp") }, "\(cold)")
        let dump = try await runAnnals(["dump", store.path])
        #expect(dump.stdout.split(separator: "\n").count == 8 * 2_500)
        print("archive kill rounds checked: \(checked)")
    }

    /// `annals forget` killed with SIGKILL at random moments: after each kill the subject's
    /// events all read or all read as erased (never some), every other subject's read, and
    /// once a writer has opened the store again, no file holds a key entry that the `keys`
    /// file no longer holds (the scrub of the replaced file was finished).
    @Test func forgetKilledAtRandomMomentsIsAllOrNothing() async throws {
        let store = TemporaryStore()
        let key = store.directory + "/test.kek"
        #expect(try await runAnnals(["key", "generate", key]).status == 0)
        let lines = (0..<600).map { #"{"stream":"c-\#($0 % 12)","type":"T","subject":"customer-\#($0 % 12)","data":{"n":\#($0),"pad":"\#(String(repeating: "x", count: 100))"}}"# }
        #expect(try await runAnnals(["import", store.path, "--key-file", key, "--segment-size-bytes", "65536"], input: lines.joined(separator: "\n")).status == 0)
        var random = SystemRandomNumberGenerator()
        var forgotten: Set<Int> = []
        var erasedRounds = 0
        func entries() throws -> [[UInt8]] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: store.path + "/keys")))
            return stride(from: 64, to: bytes.count - 103, by: 104).map { Array(bytes[$0..<($0 + 104)]) }
        }
        for subject in 0..<10 {
            let before = try entries()
            let delay = UInt32.random(in: 2_000...35_000, using: &random)
            try Self.runAnnalsAndKill(["forget", store.path, "customer-\(subject)", "--key-file", key], after: delay)
            // A writable open finishes an interrupted scrub.
            #expect(try await runAnnals(["import", store.path, "--key-file", key], input: "").status == 0, "subject \(subject)")
            let dump = try await runAnnals(["dump", store.path, "--key-file", key])
            #expect(dump.status == 0, "subject \(subject), killed after \(delay) µs: \(dump.stderr)")
            let lines = dump.stdout.split(separator: "\n")
            let mine = lines.filter { $0.contains(#""stream":"c-\#(subject)","#) }
            let erased = mine.filter { $0.contains(#""erased":true"#) }.count
            #expect(erased == 0 || erased == mine.count, "subject \(subject), killed after \(delay) µs: \(erased) of \(mine.count) erased")
            if erased > 0 { forgotten.insert(subject); erasedRounds += 1 }
            let others = lines.filter { !$0.contains(#""stream":"c-\#(subject)","#) && $0.contains(#""erased":true"#) }
            #expect(others.allSatisfy { line in forgotten.contains { line.contains(#""stream":"c-\#($0)","#) } }, "subject \(subject)")
            let after = try entries()
            let destroyed = before.filter { !after.contains($0) }
            #expect(destroyed.isEmpty == (erased == 0), "subject \(subject): \(destroyed.count) entries destroyed, \(erased) erased")
            for file in try FileManager.default.subpathsOfDirectory(atPath: store.path) {
                guard let bytes = FileManager.default.contents(atPath: store.path + "/" + file) else { continue }
                for entry in destroyed { #expect(bytes.range(of: Data(entry)) == nil, "subject \(subject): \(file) holds a destroyed key") }
            }
            #expect(try await runAnnals(["verify", store.path, "--key-file", key]).status == 0, "subject \(subject)")
        }
        print("forget kill rounds that had finished: \(erasedRounds) of 10")
    }

    /// Starts the built `annals` with `arguments` (output discarded), sends it SIGKILL
    /// `microseconds` later, and waits for it to end.
    static func runAnnalsAndKill(_ arguments: [String], after microseconds: UInt32) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("annals")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(microseconds)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Runs `annals import` on `lines`, kills it with SIGKILL `delayMilliseconds` after its
    /// first commit, and returns what it printed.
    private func runImportAndKill(
        store: TemporaryStore, lines: [String], batch: Int, delayMilliseconds: Int
    ) async throws -> String {
        let inputPath = store.directory + "/input.jsonl"
        let outputPath = store.directory + "/output.txt"
        try lines.joined(separator: "\n").write(toFile: inputPath, atomically: true, encoding: .utf8)
        try #require(FileManager.default.createFile(atPath: outputPath, contents: nil))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("annals")
        process.arguments = ["import", store.path, "--batch", "\(batch)", "--segment-size-bytes", "262144"]
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inputPath))
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<2000 where (try? String(contentsOfFile: outputPath, encoding: .utf8))?.isEmpty ?? true {
            try await Task.sleep(for: .milliseconds(1))
        }
        try await Task.sleep(for: .milliseconds(delayMilliseconds))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return try String(contentsOfFile: outputPath, encoding: .utf8)
    }
}
