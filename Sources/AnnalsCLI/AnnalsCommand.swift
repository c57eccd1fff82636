import AnnalsStorage
import ArgumentParser

/// `annals`: inspect and feed an Annals store from the shell.
@main
struct AnnalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "annals",
        abstract: "Import, dump, verify, inspect, delete from, compact, publish, repair and forget data subjects in Annals event stores.",
        subcommands: [ImportCommand.self, DumpCommand.self, VerifyCommand.self, StatsCommand.self, RetentionCommand.self,
                      DeleteCommand.self, CompactCommand.self, PublishCommand.self, RepairCommand.self, BackupCommand.self,
                      RestoreCommand.self, ArchiveCommand.self, KeyCommand.self, ForgetCommand.self]
    )
}

/// Turns a library error into a one-line message and exit code 1 (2 for a locked store).
func fail(_ error: any Error) -> ExitCode {
    printError("error: \(error)")
    if case OpenError.storeLocked = error { return ExitCode(2) }
    return ExitCode.failure
}

/// Options for a command that writes to an existing store: new segments keep its segment size.
func writableOptions(_ store: String) -> StoreOptions {
    var options = StoreOptions()
    if let size = EventStore.currentSegmentSize(at: store), size >= 4096, size % 4096 == 0 { options.segmentSizeBytes = size }
    return options
}

extension Durability: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "fsync": self = .fsyncBeforeAck
        case "periodic": self = .periodic(.milliseconds(100))
        case "none": self = .none
        default: return nil
        }
    }

    public static var allValueStrings: [String] { ["fsync", "periodic", "none"] }
}

extension Compression: ExpressibleByArgument {
    public init?(argument: String) {
        switch argument {
        case "lz4": self = .lz4
        case "none": self = .none
        default: return nil
        }
    }

    public static var allValueStrings: [String] { ["lz4", "none"] }
}
