import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// Crashes simulated at seeded points of real workloads — appends under fsync-before-ack,
/// segment rolls, index file writes and merges, snapshots, retention records, compaction —
/// with every write since the last sync kept, dropped or torn. After every crash the store
/// opens; every append acknowledged before the crash is there, intact, at its position and
/// revision; whatever else is there is exactly what was appended (never half of a frame);
/// positions only increase; the store verifies clean and takes the next append at the next
/// revision. `ANNALS_SIMULATION_RUNS` runs more workloads (each yields 20 crash points); a
/// failure names its workload seed, crash operation and image seed, which replay it.
@Suite struct CrashSimulationTests {
    static let runs = Int(ProcessInfo.processInfo.environment["ANNALS_SIMULATION_RUNS"] ?? "") ?? 24
    static let crashesPerRun = 20
    /// `ANNALS_SIMULATION_SEED=S` replays one workload seed (both tests) instead of the range.
    static let onlySeed = UInt64(ProcessInfo.processInfo.environment["ANNALS_SIMULATION_SEED"] ?? "")

    static func seeds(from first: UInt64, count: Int) -> [UInt64] {
        onlySeed.map { [$0] } ?? (0..<count).map { first + UInt64($0) }
    }
    static let path = "/sim/store"

    struct Submitted {
        let stream: String
        let revision: UInt64
        let position: UInt64
        let payload: [UInt8]
        /// Durable operations started before the append returned: a crash at a later
        /// operation must keep it.
        let acknowledgedAfter: Int
    }

    static func options(_ storage: SimulatedStorage) -> StoreOptions {
        var options = StoreOptions(segmentSizeBytes: 16384)
        options.storage = StorageChoice(storage: storage)
        return options
    }

    /// Checked streams (no retention) and the streams with retention (only their visible
    /// events are checked, for exactness).
    static let checkedStreams = (0..<5).map { "acct-\($0)" }

    /// The workload: 160 appends of one to three events to seven streams (payloads 20–900
    /// bytes, so 16 KiB segments roll often and index files merge), snapshots, a soft delete,
    /// a truncation, then (when `compacting`) a compaction and more appends.
    static func workload(_ storage: SimulatedStorage, seed: UInt64, compacting: Bool) async throws -> [Submitted] {
        var generator = SeededGenerator(seed: seed)
        var submitted: [Submitted] = []
        let store = try EventStore.open(at: path, options: options(storage))
        func append(_ stream: String) async throws {
            let count = Int(generator.next() % 3) + 1
            let events = (0..<count).map { index in
                EventData(type: "T\(index)", payload: (0..<Int(generator.next() % 880 + 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) })
            }
            let result = try await store.append(events, to: stream)
            let after = storage.operationCount
            for (offset, event) in events.enumerated() {
                submitted.append(Submitted(stream: stream, revision: result.firstRevision + UInt64(offset),
                                           position: result.firstPosition + UInt64(offset), payload: event.payload,
                                           acknowledgedAfter: after))
            }
        }
        for round in 0..<160 {
            let pick = Int(generator.next() % 7)
            try await append(pick < 5 ? "acct-\(pick)" : pick == 5 ? "trash" : "acct-5")
            if round % 40 == 39, let last = store.lastRevision(of: "acct-1") {
                try await store.saveSnapshot(of: "acct-1", revision: last, schemaVersion: 1, bytes: Array("snapshot@\(last)".utf8))
            }
            if round == 100 { try await store.deleteStream("trash") }
            if round == 120 { try await store.truncateStream("acct-5", before: 3) }
        }
        if compacting {
            try await store.compact()
            for _ in 0..<20 { try await append("acct-\(generator.next() % 5)") }
        }
        try await store.close()
        return submitted
    }

    /// Everything a crash image must satisfy.
    static func check(_ image: SimulatedStorage, crashedAt operation: Int, submitted: [Submitted], label: String) async throws {
        let store: EventStore
        do { store = try EventStore.open(at: path, options: options(image)) } catch {
            Issue.record("\(label): the store does not open: \(error)")
            if onlySeed != nil {
                let files = ((try? image.directoryEntries(path + "/segments")) ?? nil)?.sorted() ?? []
                print("files: \(files.map { "\($0) \(image.fileSize(path + "/segments/" + $0) ?? -1)" })")
                if let bytes = try? image.readFile(path + "/checkpoint", maximumBytes: 64) { print("checkpoint: \(Checkpoint.decode(bytes))") }
            }
            return
        }
        if onlySeed != nil { print("\(label): \(store.recoveryReport)") }
        let byPosition = Dictionary(submitted.map { ($0.position, $0) }, uniquingKeysWith: { first, _ in first })
        // Whatever is visible is exactly what was appended, in increasing positions.
        var cursor = store.readAll().makeCursor()
        var previous: UInt64?
        var visible = Set<UInt64>()
        while let event = try cursor.next() {
            if let previous, event.position <= previous { Issue.record("\(label): position \(event.position) after \(previous)") }
            previous = event.position
            guard !event.stream.hasPrefix("$") else { continue }
            visible.insert(event.position)
            guard let expected = byPosition[event.position], expected.stream == event.stream, expected.revision == event.revision,
                  try event.payload == expected.payload
            else {
                Issue.record("\(label): position \(event.position) (\(event.stream)@\(event.revision)) is not what was appended there")
                continue
            }
        }
        // Every acknowledged append of the checked streams survived, in its stream too.
        for event in submitted where event.acknowledgedAfter < operation && checkedStreams.contains(event.stream) {
            if !visible.contains(event.position) {
                Issue.record("\(label): acknowledged \(event.stream)@\(event.revision) (position \(event.position)) is lost")
            }
        }
        for stream in checkedStreams {
            var streamCursor = store.read(stream).makeCursor()
            var revision: UInt64 = 0
            while let event = try streamCursor.next() {
                let payload = try event.payload
                if event.revision != revision || byPosition[event.position]?.payload != payload {
                    Issue.record("\(label): \(stream) revision \(event.revision) read back wrong")
                }
                revision += 1
            }
            // The numbering continues where the durable log ends.
            let next = try await store.append([EventData(type: "After", payload: [1])], to: stream)
            if next.firstRevision != revision { Issue.record("\(label): \(stream) continued at \(next.firstRevision), expected \(revision)") }
        }
        if let snapshot = store.latestSnapshot(of: "acct-1", schemaVersion: 1).snapshot,
           snapshot.bytes != Array("snapshot@\(snapshot.revision)".utf8) {
            Issue.record("\(label): snapshot bytes wrong")
        }
        try await store.close()
        let report = StoreVerifier.verify(at: path, storage: image)
        if !report.isSound { Issue.record("\(label): verify: \(report.problems.prefix(3))") }
    }

    static func run(seed: UInt64, compacting: Bool) async throws -> Int {
        // A dry run counts the workload's durable operations; the real run takes images at
        // seeded operations among them.
        let dry = SimulatedStorage()
        _ = try await workload(dry, seed: seed, compacting: compacting)
        let total = dry.operationCount
        var generator = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15)
        let storage = SimulatedStorage()
        for _ in 0..<crashesPerRun {
            storage.crash(atOperation: Int(generator.next() % UInt64(total)) + 1, seed: generator.next())
        }
        let submitted = try await workload(storage, seed: seed, compacting: compacting)
        for (operation, imageSeed, image) in storage.images {
            try await check(image, crashedAt: operation, submitted: submitted,
                            label: "workload seed \(seed)\(compacting ? " (compacting)" : ""), crash at operation \(operation) of \(total), image seed \(imageSeed)")
        }
        return storage.images.count
    }

    @Test func everyAcknowledgedAppendSurvivesCrashesAtSeededPoints() async throws {
        var crashes = 0
        for seed in Self.seeds(from: 1000, count: Self.runs) {
            crashes += try await Self.run(seed: seed, compacting: false)
        }
        print("crash simulation: \(crashes) crash points over \(Self.runs) workloads (appends, rolls, index files, snapshots, retention)")
        #expect(crashes >= Self.seeds(from: 1000, count: Self.runs).count * Self.crashesPerRun / 2)
    }

    @Test func compactionSurvivesCrashesAtSeededPoints() async throws {
        var crashes = 0
        for seed in Self.seeds(from: 5000, count: max(1, Self.runs / 2)) {
            crashes += try await Self.run(seed: seed, compacting: true)
        }
        print("crash simulation: \(crashes) crash points over \(max(1, Self.runs / 2)) compacting workloads")
        #expect(crashes >= Self.seeds(from: 5000, count: max(1, Self.runs / 2)).count * Self.crashesPerRun / 2)
    }
}
