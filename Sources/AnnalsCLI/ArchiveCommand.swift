import AnnalsStorage
import ArgumentParser
import Foundation

/// `annals archive STORE DIR --older-than AGE`: sealed segments to another directory.
struct ArchiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive",
        abstract: "Move sealed segments whose newest event is older than AGE to DIR (another disk); reads find them there.",
        discussion: """
            DIR is created when missing and marked as STORE's archive; a store has one archive \
            directory. Oldest segments move first, each copied, synced and committed before its \
            local file is deleted: a run stopped at any moment leaves every segment readable from \
            exactly one place. DIR must be mounted whenever STORE is opened.
            """
    )

    @Argument(help: "Store directory (no other process may have it open for writing).")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Argument(help: "Archive directory.")
    var directory: String

    @Option(name: .customLong("older-than"), help: "Age of a segment's newest event, e.g. 30d, 12h, 15m, 90s (0: every sealed segment).",
            transform: ArchiveCommand.parseAge)
    var olderThan: Duration

    /// `30d`, `12h`, `15m`, `90s` or a plain number of seconds.
    static func parseAge(_ text: String) throws -> Duration {
        let units: [Character: Int64] = ["d": 86_400, "h": 3_600, "m": 60, "s": 1]
        var digits = Substring(text)
        var unit: Int64 = 1
        if let last = text.last, let seconds = units[last] {
            unit = seconds
            digits = digits.dropLast()
        }
        guard let value = Int64(digits), value >= 0, value <= Int64.max / unit / 1_000 else {
            throw ValidationError("--older-than takes an age such as 30d, 12h, 15m, 90s or 0, not \"\(text)\"")
        }
        return .seconds(value * unit)
    }

    func run() async throws {
        installCrashPointsFromEnvironment()
        let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        let opened: EventStore
        do { opened = try EventStore.open(at: store, options: keys.applied(to: writableOptions(store))) } catch { throw fail(error) }
        let report: ArchiveReport
        do { report = try await opened.archiveSegments(olderThan: olderThan, to: absolute) } catch {
            try? await opened.close()
            throw fail(error)
        }
        do { try await opened.close() } catch { throw fail(error) }
        print("archived \(report.segmentsMoved) segment files (\(report.bytesMoved) bytes) to \(report.directory) "
            + "in \(report.seconds.rounded(toPlaces: 2)) s; segments before \(report.firstLocalSegment) are archived")
    }
}
