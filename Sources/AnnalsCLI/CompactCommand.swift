import Annals
import AnnalsKafka
import ArgumentParser
import Synchronization

/// `annals compact STORE`: gives the space of dead events back.
struct CompactCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compact",
        abstract: "Rewrite segments without their dead events and give the space back.",
        discussion: """
            Dead events are those retention removes (deleted, truncated, over max count, older \
            than max age; the newest event of a stream that is not hard-deleted stays, so its \
            numbering continues), superseded snapshots, projection checkpoints and retention \
            records. Every other event keeps its position and revision. Safe to interrupt at \
            any moment: the store opens and reads correctly afterwards.
            """
    )

    @Argument(help: "Store directory.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Flag(help: "Leave the open segment alone even when it holds dead events.")
    var keepOpenSegment = false

    @Option(help: "Rewrite a segment only when at least this fraction of its space comes back.")
    var minimumGain = 0.1

    func run() async throws {
        installCrashPointsFromEnvironment()
        let store: EventStore
        do { store = try EventStore.open(at: self.store, options: keys.applied(to: writableOptions(self.store))) } catch { throw fail(error) }
        // The layers this command knows keep only their newest checkpoint.
        store.declareNewestOnlySystemStreams(prefix: ProjectionCheckpoints.streamPrefix)
        store.declareNewestOnlySystemStreams(prefix: KafkaRelay.checkpointStreamPrefix)
        let progress = Mutex(Progress())
        let report: CompactionReport
        do {
            report = try await store.compact(CompactionOptions(sealOpenSegment: !keepOpenSegment, minimumGain: minimumGain)) { step in
                progress.withLock {
                    $0.update("examined \(step.segmentsExamined) of \(step.segmentsTotal) segments, wrote \(step.bytesWritten) bytes")
                }
            }
            try await store.close()
        } catch {
            try? await store.close()
            throw fail(error)
        }
        progress.withLock { $0.finish() }
        print("examined \(report.segmentsExamined) segments, rewrote \(report.segmentsRewritten) into \(report.filesWritten) files"
            + (report.sealedOpenSegment ? " (sealed the open segment)" : ""))
        print("events removed \(report.eventsRemoved), kept \(report.eventsKept)")
        print("allocated bytes \(report.allocatedBytesBefore) -> \(report.allocatedBytesAfter) in \(report.seconds.rounded(toPlaces: 3)) s")
    }
}

/// `annals delete STORE STREAM...`: deletes streams, many in one process.
struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete streams (soft by default; --hard for a tombstone).",
        discussion: "Pass `-` to read stream names from standard input, one per line. Compaction reclaims the space later."
    )

    @Argument(help: "Store directory.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Argument(help: "Stream names, or - for names on standard input.")
    var streams: [String]

    @Flag(help: "Hard delete (tombstone): the streams read as empty and refuse every later append.")
    var hard = false

    func run() async throws {
        var names: [String] = []
        for stream in streams {
            if stream == "-" {
                while let line = readLine() {
                    if !line.isEmpty { names.append(line) }
                }
            } else {
                names.append(stream)
            }
        }
        let store: EventStore
        do { store = try EventStore.open(at: self.store, options: keys.applied(to: writableOptions(self.store))) } catch { throw fail(error) }
        var progress = Progress()
        do {
            for (index, name) in names.enumerated() {
                try await store.deleteStream(name, hard: hard)
                progress.update("deleted \(index + 1) of \(names.count) streams")
            }
            try await store.close()
        } catch {
            progress.finish()
            try? await store.close()
            throw fail(error)
        }
        progress.finish()
        print("deleted \(names.count) streams" + (hard ? " (hard)" : ""))
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
