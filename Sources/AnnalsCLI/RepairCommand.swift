import AnnalsStorage
import ArgumentParser

/// `annals repair STORE [--discard-damaged-tail]`: opens the store for writing, so that recovery
/// runs, and says what it did.
struct RepairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Run recovery on a store and report what it did (a torn tail cut, index files rebuilt).",
        discussion: """
            A store whose acknowledged data is damaged is refused (exit 1, the damage named): \
            `annals dump` still prints the events before the damage. With \
            --discard-damaged-tail, recovery cuts the log at the damage instead: every event \
            from the damaged frame on is lost, acknowledged ones included. Copy the store first.
            """
    )

    @Argument(help: "Store directory.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Flag(help: "Cut the log at damaged acknowledged data in its last segment, losing every event from there on.")
    var discardDamagedTail = false

    func run() async throws {
        var options = writableOptions(store)
        options.createIfMissing = false
        options.discardDamagedTail = discardDamagedTail
        let opened: EventStore
        do { opened = try EventStore.open(at: store, options: keys.applied(to: options)) } catch { throw fail(error) }
        let report = opened.recoveryReport
        if let damage = report.damage {
            print("discarded damaged data: \(damage)")
            print("the log now ends at position \(opened.endPosition): every event from there on is gone")
        } else if let truncation = report.truncation {
            print("cut a torn tail of \(report.truncatedBytes) bytes (never acknowledged): \(truncation)")
        }
        for path in report.rebuiltIndexes { print("rebuilt \(path)") }
        for path in report.removedTemporaryFiles + report.removedSupersededFiles { print("removed \(path)") }
        for warning in report.warnings { print("warning: \(warning)") }
        do { try await opened.close() } catch { throw fail(error) }
        print("ok: the log ends at position \(opened.endPosition); closed cleanly")
    }
}
