import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// An index file's lookup goes through an in-memory bucket directory built at open; these tests
/// hold it to the plain definition: the entries of a hash are exactly the run of entries with
/// that hash, whatever the distribution of hashes and the size of the file.
@Suite struct IndexTableTests {
    private static let hashID: UInt32 = 1

    private func table(_ entries: [IndexFile.Entry], in directory: TemporaryDirectory) throws -> IndexTable {
        let path = directory.sub("0000000000000003-0000000000000006.idx")
        let bytes = IndexFile.encode(segments: 3...6, nextPosition: 1000, hashID: Self.hashID, entries: entries)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try IndexTable.open(path: path, segments: 3...6, hashID: Self.hashID, storage: SystemStorage.shared).get()
    }

    private func entries(hashes: [UInt64]) -> [IndexFile.Entry] {
        hashes.enumerated().map { index, hash in
            IndexFile.Entry(streamHash: hash, firstRevision: UInt64(index), firstPosition: UInt64(index),
                            segmentIndex: UInt32(3 + index % 4), offset: UInt32(64 + index * 8), eventCount: 1)
        }
    }

    /// Sizes around the bucket-count steps, and hash sets that are even, crowded into one
    /// bucket (shared top bits), at the extremes of the range, and with long runs of one hash.
    @Test(arguments: ["even", "shared-top-bits", "extremes", "long-runs"], [0, 1, 15, 16, 17, 64, 1000, 5000])
    func lookupsReturnExactlyTheRunOfEntriesWithTheHash(distribution: String, count: Int) throws {
        var random = SeededGenerator(seed: UInt64(count) &* 31 &+ UInt64(distribution.utf8.count))
        let hashes: [UInt64] = (0..<count).map { index in
            switch distribution {
            case "even": return random.next()
            case "shared-top-bits": return 0xABCD_E000_0000_0000 | (random.next() & 0xFFF)
            case "extremes": return index % 2 == 0 ? random.next() % 3 : UInt64.max - random.next() % 3
            default: return UInt64(index / 40) &* 0x9E37_79B9_7F4A_7C15
            }
        }
        let directory = TemporaryDirectory()
        let written = entries(hashes: hashes)
        let table = try table(written, in: directory)
        let sorted = written.sorted(by: <)
        // Grouped once (a search per hash made the 5,000-entry cases take seconds of a debug
        // run's two threads, which other suites' tasks waited for).
        let indicesByHash = Dictionary(grouping: sorted.indices, by: { sorted[$0].streamHash })
        let present = Set(hashes)
        for hash in present {
            let expected = indicesByHash[hash] ?? []
            let found = table.entries(for: hash)
            #expect(Array(found) == expected, "hash \(hash)")
            #expect(found.map { table.entry($0) } == expected.map { sorted[$0] })
        }
        for _ in 0..<200 {
            let absent = random.next()
            guard !present.contains(absent) else { continue }
            #expect(table.entries(for: absent).isEmpty)
        }
        for absent: UInt64 in [0, 1, UInt64.max, UInt64.max - 1, 0xABCD_E000_0000_1000] where !present.contains(absent) {
            #expect(table.entries(for: absent).isEmpty)
        }
    }

    /// The lookup relies on the order of the entries, and on each naming a covered segment: a
    /// file that breaks either is refused at open (and rebuilt), even with valid checksums.
    @Test func filesOutOfOrderOrNamingOtherSegmentsAreRefused() throws {
        let directory = TemporaryDirectory()
        var unordered = entries(hashes: [5, 9, 7])
        let outOfOrder = IndexFile.encode(segments: 3...6, nextPosition: 1000, hashID: Self.hashID, sortedEntries: unordered)
        unordered = entries(hashes: [5, 7, 9])
        unordered[1].segmentIndex = 7
        let foreign = IndexFile.encode(segments: 3...6, nextPosition: 1000, hashID: Self.hashID, sortedEntries: unordered)
        for (bytes, reason) in [(outOfOrder, "out of (stream hash, revision) order"), (foreign, "names segment 7")] {
            let path = directory.sub("0000000000000003-0000000000000006.idx")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let result = IndexTable.open(path: path, segments: 3...6, hashID: Self.hashID, storage: SystemStorage.shared)
            guard case .failure(let problem) = result else {
                Issue.record("accepted a file whose entries \(reason)")
                continue
            }
            #expect(problem.reason.contains(reason), "\(problem)")
        }
    }
}
