import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// Seeded single-bit flips in every kind of file of a store (segment headers, events frames with
/// raw and compressed records, dictionary frames, seals, index files with Bloom filters, the
/// checkpoint): no flip may make a read return different bytes, crash the process, or go
/// unreported by `verify` when it damaged data that reads refuse; `$all` and queries by type
/// and tag return exactly every matching event, or refuse, or (a read-only open that reported
/// damage in the last segment) exactly those before the damage. A failing trial prints its seed, file and
/// offset.
@Suite struct CorruptionSweepTests {
    struct Expected: Equatable {
        let stream: String, revision: UInt64, type: String, metadata: [UInt8], payload: [UInt8]
        var tags: [String] = []
    }

    @Test func everyFlipIsDetectedOrHarmlessNeverWrongData() async throws {
        let directory = TemporaryDirectory()
        let pristine = directory.sub("pristine")
        let (store, _) = try await writeRealisticStore(at: pristine, seed: 31, count: 900, streams: 12, perAppend: 4)
        try await store.close()
        let tally = try await sweep(pristine, in: directory, trials: 160, seed: 2026, truncations: false)
        print("corruption sweep: \(tally.sorted { $0.key < $1.key })")
        #expect(tally["wrong data", default: 0] == 0)
    }

    /// The same over a compacted store (compacted segments standing for several numbers, index
    /// files with fingerprints, retention records), with truncations of every kind of file as
    /// well as bit flips.
    @Test func flipsAndTruncationsInACompactedStoreAreDetectedOrHarmless() async throws {
        let directory = TemporaryDirectory()
        let pristine = directory.sub("pristine")
        let (store, events) = try await writeRealisticStore(at: pristine, seed: 32, count: 900, streams: 12, perAppend: 4)
        let streams = Array(Set(events.map(\.stream))).sorted()
        for stream in streams.prefix(9) { try await store.deleteStream(stream, hard: stream.hasSuffix("1")) }
        let report = try await store.compact(CompactionOptions(minimumGain: 0))
        #expect(report.segmentsRewritten > 0, "\(report)")
        try await store.close()
        let tally = try await sweep(pristine, in: directory, trials: 120, seed: 2027, truncations: true)
        print("corruption sweep (compacted, with truncations): \(tally.sorted { $0.key < $1.key })")
        #expect(tally["wrong data", default: 0] == 0)
    }

    /// The same over a store whose events carry tags, with queries by type and tag checked too
    /// (the query entries of the index files, and the tag blocks of records).
    @Test func flipsInATaggedStoreLeaveQueriesExactOrRefused() async throws {
        let directory = TemporaryDirectory()
        let pristine = directory.sub("pristine")
        let (store, _) = try await writeRealisticStore(at: pristine, seed: 33, count: 900, streams: 12, perAppend: 4, tagged: true)
        try await store.close()
        let tally = try await sweep(pristine, in: directory, trials: 120, seed: 2028, truncations: true)
        print("corruption sweep (tagged, queries): \(tally.sorted { $0.key < $1.key })")
        #expect(tally["wrong data", default: 0] == 0)
    }

    /// Damages one file of a copy of `pristine` per trial (a flipped bit; with `truncations`,
    /// every other trial cuts the file short instead) and reads everything back.
    private func sweep(
        _ pristine: String, in directory: TemporaryDirectory, trials: Int, seed: UInt64, truncations: Bool
    ) async throws -> [String: Int] {
        var expected: [UInt64: Expected] = [:]
        let reference = try EventStore.open(at: pristine, options: StoreOptions(readOnly: true))
        for event in try readEverything(reference) {
            expected[event.position] = Expected(stream: event.stream, revision: event.revision, type: event.type,
                                                metadata: try event.metadata, payload: try event.payload, tags: event.tags)
        }
        try await reference.close()
        let files = try FileManager.default.subpathsOfDirectory(atPath: pristine)
            .filter { $0.hasSuffix(".seg") || $0.hasSuffix(".idx") || $0 == "checkpoint" }.sorted()
        #expect(files.contains { $0.hasSuffix(".idx") && $0.contains("-") }, "merged index files are part of the sweep")
        var tally: [String: Int] = [:]
        var random = SeededGenerator(seed: seed)
        for trial in 0..<trials {
            let file = files[Int(random.next() % UInt64(files.count))]
            let trialPath = directory.sub("trial")
            try copyDirectory(pristine, to: trialPath)
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: trialPath + "/" + file)))
            // Mostly the written part of a segment (the rest of a segment is zeros after the data).
            var limit = bytes.count
            if file.hasSuffix(".seg"), let used = bytes.indices.last(where: { bytes[$0] != 0 }) { limit = min(bytes.count, used + 64) }
            let offset = Int(random.next() % UInt64(limit))
            let context: String
            if truncations && trial % 2 == 1 {
                bytes.removeSubrange(offset...)
                context = "trial \(trial) (seed \(seed)): \(file) truncated to \(offset) bytes"
            } else {
                bytes[offset] ^= UInt8(1 << (random.next() % 8))
                context = "trial \(trial) (seed \(seed)): bit flip in \(file) at \(offset)"
            }
            try Data(bytes).write(to: URL(fileURLWithPath: trialPath + "/" + file))
            let outcome = try await check(trialPath, expected: expected, context: context)
            tally[outcome, default: 0] += 1
            if outcome == "reads refused" {
                let report = StoreVerifier.verify(at: trialPath)
                #expect(!report.isSound || report.tornTailBytes > 0, "\(context): reads refused but verify saw nothing")
            }
        }
        return tally
    }

    /// Opens read-only and reads everything (all of `$all`, and each stream through the
    /// index), then opens for writing (rebuilding what is derived) and reads again.
    private func check(_ path: String, expected: [UInt64: Expected], context: String) async throws -> String {
        var refused = false
        for writable in [false, true] {
            let store: EventStore
            do {
                store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 64 * 1024, readOnly: !writable))
            } catch {
                guard case .corrupt(let corruption) = error else {
                    Issue.record("\(context): open failed without naming the damage: \(error)")
                    return "wrong data"
                }
                #expect(corruption.file.hasPrefix(path), "\(context): \(corruption)")
                refused = true
                continue
            }
            let outcome = readAll(store, expected: expected, context: context, path: path)
            try? await store.close()
            switch outcome {
            case "wrong data": return outcome
            case "refused": refused = true
            default: break
            }
        }
        return refused ? "reads refused" : "harmless or repaired"
    }

    private func readAll(_ store: EventStore, expected: [UInt64: Expected], context: String, path: String) -> String {
        do {
            let all = try readEverything(store)
            for event in all {
                let seen = Expected(stream: event.stream, revision: event.revision, type: event.type,
                                    metadata: try event.metadata, payload: try event.payload, tags: event.tags)
                if seen != expected[event.position] {
                    Issue.record("\(context): position \(event.position) read back different bytes")
                    return "wrong data"
                }
            }
            // Every event, or, when the open reported damage in the last segment (a read-only
            // open reads the log up to it, `format-spec.md` §3.8), exactly the events before
            // it: never a hole, never a shorter log without a report.
            let damaged = store.recoveryReport.damage != nil
            let end = damaged ? (all.last.map { $0.position + 1 } ?? 0) : UInt64.max
            if all.map(\.position) != expected.keys.filter({ $0 < end }).sorted() {
                let report = damaged ? " (damage reported, the log ending at position \(end))" : ", no damage reported"
                Issue.record("\(context): $all returned \(all.count) events of \(expected.count)\(report)")
                return "wrong data"
            }
            for stream in Set(expected.values.map(\.stream)) {
                var cursor = store.read(stream).makeCursor()
                while let event = try cursor.next() {
                    let want = expected[event.position]
                    let payload = try event.payload
                    if want?.stream != stream || payload != want?.payload {
                        Issue.record("\(context): stream \(stream) returned another event at \(event.position)")
                        return "wrong data"
                    }
                }
            }
            // Queries: exactly the matching events, in order (the index may not hide one).
            let types = Array(Set(expected.values.map(\.type))).sorted().prefix(2)
            let queries = [EventQuery(types: Array(types)), EventQuery(tags: ["member:3"]), EventQuery(types: [types.first ?? ""], tags: ["vip"]),
                           EventQuery([EventQuery.Item(tags: ["member:1"]), EventQuery.Item(tags: ["vip"])])]
            for query in queries {
                let want = expected.filter { $0.key < end && query.matches(type: $0.value.type, tags: $0.value.tags) }.keys.sorted()
                var cursor = store.read(matching: query).makeCursor()
                var got: [UInt64] = []
                while let event = try cursor.next() {
                    if try event.payload != expected[event.position]?.payload {
                        Issue.record("\(context): query \(query) returned other bytes at \(event.position)")
                        return "wrong data"
                    }
                    got.append(event.position)
                }
                if got != want {
                    Issue.record("\(context): query \(query) returned \(got.count) events, \(want.count) match")
                    return "wrong data"
                }
            }
        } catch {
            guard let readError = error as? ReadError, case .corrupt(let corruption) = readError else {
                Issue.record("\(context): \(error)")
                return "wrong data"
            }
            #expect(corruption.file.hasPrefix(path), "\(context): \(corruption)")
            return "refused"
        }
        return store.recoveryReport.damage != nil ? "refused" : "read"
    }
}
