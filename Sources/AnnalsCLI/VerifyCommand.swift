import AnnalsStorage
import ArgumentParser

/// `annals verify STORE`: checks every frame.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every frame's checksum and structure, gapless positions and revisions.",
        discussion: """
            Exits 0 when the store is sound, 1 with the first problems (file, offset, what) when not. Changes nothing. \
            With --key-file, every encrypted event's body is decrypted and its authentication tag checked.
            """
    )

    @Argument(help: "Store directory.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    func run() async throws {
        var progress = Progress()
        let report = StoreVerifier.verify(at: store, encryption: keys.encryption) { done, total in
            progress.update("verified \(done) of \(total) segments")
        }
        progress.finish()
        print("segments \(report.segments), frames \(report.frames), events \(report.events), "
            + "streams \(report.streams), bytes \(report.bytes)")
        if report.storedBodyBytes > 0 {
            let ratio = Double(report.bodyBytes) / Double(report.storedBodyBytes)
            print("compressed events \(report.compressedEvents), dictionaries \(report.dictionaries), "
                + "metadata+payload \(report.bodyBytes) bytes stored in \(report.storedBodyBytes) (\(ratio.rounded(toPlaces: 2))x)")
        }
        if report.encryptedEvents > 0 {
            print("encrypted events \(report.encryptedEvents), authenticated \(report.authenticatedEvents), erased \(report.erasedEvents)")
        }
        for note in report.notes { print("note: \(note)") }
        guard report.isSound else {
            for problem in report.problems.prefix(20) { print("problem: \(problem)") }
            if report.problems.count > 20 { print("… \(report.problems.count - 20) more problems") }
            throw ExitCode.failure
        }
        print("ok")
    }
}
