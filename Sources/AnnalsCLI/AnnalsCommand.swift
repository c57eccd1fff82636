import AnnalsStorage
import ArgumentParser

/// `annals`: inspect and feed an Annals store from the shell.
@main
struct AnnalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "annals",
        abstract: "Import, dump, verify and inspect Annals event stores.",
        subcommands: [ImportCommand.self, DumpCommand.self, VerifyCommand.self, StatsCommand.self, RetentionCommand.self]
    )
}

/// Turns a library error into a one-line message and exit code 1 (2 for a locked store).
func fail(_ error: any Error) -> ExitCode {
    printError("error: \(error)")
    if case OpenError.storeLocked = error { return ExitCode(2) }
    return ExitCode.failure
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
