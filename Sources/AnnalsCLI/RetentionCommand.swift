import AnnalsStorage
import ArgumentParser

/// `annals retention STORE STREAM …`: shows or changes what a stream keeps.
struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Show or change a stream's retention: delete, truncate, max count, max age.",
        discussion: """
            Without options, prints the stream's settings. Changes take effect at once for \
            every read (the stream and $all); compaction reclaims the space later. A hard \
            delete is a tombstone: the stream can never be written again.
            """
    )

    @Argument(help: "Store directory.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Argument(help: "Stream name.")
    var stream: String

    @Flag(help: "Soft delete: the stream reads as empty; appends continue at the next revision.")
    var delete = false

    @Flag(help: "Hard delete (tombstone): the stream reads as empty and refuses every append.")
    var hardDelete = false

    @Option(help: "Remove the events before this revision.")
    var truncateBefore: UInt64?

    @Option(help: "Keep only the newest N events (0: no limit).")
    var maxCount: UInt64?

    @Option(name: [.customLong("max-age"), .customLong("max-age-seconds")],
            help: "Remove events older than this many seconds (0: no limit).")
    var maxAgeSeconds: Int64?

    func run() async throws {
        let changing = delete || hardDelete || truncateBefore != nil || maxCount != nil || maxAgeSeconds != nil
        let store: EventStore
        do { store = try EventStore.open(at: self.store, options: keys.applied(to: changing ? writableOptions(self.store) : StoreOptions(readOnly: true))) } catch { throw fail(error) }
        do {
            if delete || hardDelete { try await store.deleteStream(stream, hard: hardDelete) }
            if let truncateBefore { try await store.truncateStream(stream, before: truncateBefore) }
            if maxCount != nil || maxAgeSeconds != nil {
                var settings = store.retention(of: stream)
                if let maxCount { settings.maxCount = maxCount == 0 ? nil : maxCount }
                if let maxAgeSeconds { settings.maxAge = maxAgeSeconds <= 0 ? nil : .seconds(maxAgeSeconds) }
                try await store.setRetention(settings, for: stream)
            }
            let settings = store.retention(of: stream)
            print("\(stream): truncateBefore \(settings.truncateBefore.map(String.init) ?? "-"), "
                + "maxCount \(settings.maxCount.map(String.init) ?? "-"), "
                + "maxAge \(settings.maxAge.map { "\($0.components.seconds)s" } ?? "-"), deleted \(settings.isDeleted)")
            try await store.close()
        } catch {
            try? await store.close()
            throw fail(error)
        }
    }
}
