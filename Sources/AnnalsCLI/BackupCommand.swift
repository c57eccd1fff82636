import AnnalsStorage
import ArgumentParser
import Foundation

/// `annals backup STORE DEST`: an online, incremental backup.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy a consistent store to DEST while it is in use; a second backup copies only what is new.",
        discussion: """
            Opens STORE for writing when no other process does (then every acknowledged append is \
            in the backup), read-only otherwise (then the backup holds the log as the read-only \
            open recovered it). DEST opens, verifies and reads as that prefix of the log. A backup \
            stopped at any moment leaves DEST absent (first backup) or a store that opens.
            """
    )

    @Argument(help: "Store directory.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Argument(help: "Backup directory (created, or updated when it holds an earlier backup of this store).")
    var destination: String

    func run() async throws {
        let opened: EventStore
        do {
            opened = try EventStore.open(at: store, options: keys.applied(to: writableOptions(store)))
        } catch OpenError.storeLocked {
            do { opened = try EventStore.open(at: store, options: keys.applied(to: StoreOptions(readOnly: true))) } catch { throw fail(error) }
        } catch {
            throw fail(error)
        }
        let report: BackupReport
        do { report = try await opened.backup(to: destination) } catch {
            try? await opened.close()
            throw fail(error)
        }
        try? await opened.close()
        let megabytes = Double(report.bytesCopied) / 1e6
        print("backed up events 0..<\(report.events): \(report.segmentsCopied) segment files copied, "
            + "\(report.segmentsKept) kept, \(report.bytesCopied) bytes in \(report.seconds.rounded(toPlaces: 2)) s "
            + "(\((megabytes / max(report.seconds, 1e-9)).rounded(toPlaces: 1)) MB/s)")
    }
}

/// `annals restore BACKUP STORE`: a backup made into a store again.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Copy a backup to STORE (refusing to replace a store unless told), then verify it.",
        discussion: "Exits 0 when the restored store verifies, 1 with its problems otherwise."
    )

    @Argument(help: "Backup directory.")
    var backup: String

    @Argument(help: "Store directory to create.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Flag(help: "Replace STORE when it exists and is not empty.")
    var overwrite = false

    func run() async throws {
        do { try await EventStore.restore(backup: backup, to: store, overwrite: overwrite, encryption: keys.encryption) } catch { throw fail(error) }
        let report = StoreVerifier.verify(at: store, encryption: keys.encryption)
        print("restored events 0..<\(report.events) to \(store); segments \(report.segments), frames \(report.frames)")
        guard report.isSound else {
            for problem in report.problems.prefix(20) { print("problem: \(problem)") }
            throw ExitCode.failure
        }
        print("ok")
    }
}
