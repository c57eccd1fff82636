import AnnalsStorage
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `--key-file F`: the key-encryption key of a store that holds encrypted events.
struct KeyFileOption: ParsableArguments {
    @Option(help: "Key-encryption key file (`annals key generate`), for a store with encrypted events.")
    var keyFile: String?

    /// `options` with encryption through the key file, when one is given.
    func applied(to options: StoreOptions, encryptEverything: Bool = false) -> StoreOptions {
        var options = options
        if let keyFile { options.encryption = EncryptionOptions(keyProvider: KeyFileProvider(path: keyFile), encryptEverything: encryptEverything) }
        return options
    }

    /// The encryption options the key file gives, if any.
    var encryption: EncryptionOptions? { keyFile.map { EncryptionOptions(keyProvider: KeyFileProvider(path: $0)) } }
}

/// `annals key`: key-encryption keys.
struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Manage key-encryption keys.",
        subcommands: [GenerateKeyCommand.self]
    )
}

/// `annals key generate FILE`: writes a new random key-encryption key.
struct GenerateKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write a new random key-encryption key to a new file (mode 0600).",
        discussion: """
            Never overwrites a file: losing a key-encryption key loses every encrypted event it \
            protects. Keep the file off the volume that holds the store, and back it up apart.
            """
    )

    @Argument(help: "The key file to create.")
    var file: String

    func run() throws {
        do { try KeyFileProvider.generate(at: file) } catch {
            if error.errorNumber == EEXIST {
                printError("error: \(file) exists: a key file is never overwritten (losing a key loses the events it protects)")
                throw ExitCode.failure
            }
            throw fail(error)
        }
        print("wrote a new key-encryption key to \(file)")
    }
}

/// `annals forget STORE SUBJECT`: destroys a data subject's keys.
struct ForgetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Destroy a data subject's keys: its events' data and metadata become unreadable for good.",
        discussion: """
            Once it succeeds, no file of the store holds the subject's keys; its events read as \
            erased (`annals dump` prints "erased": true). Stream names, types, tags, positions, \
            ids and timestamps stay. Backups made before are not changed. Exit 0 also when the \
            store had no key for the subject (it says so).
            """
    )

    @Argument(help: "Store directory.")
    var store: String

    @Argument(help: "The data subject, as the events named it.")
    var subject: String

    @OptionGroup var keys: KeyFileOption

    func validate() throws {
        guard keys.keyFile != nil else { throw ValidationError("forget needs --key-file") }
    }

    func run() async throws {
        let opened: EventStore
        do { opened = try EventStore.open(at: store, options: keys.applied(to: writableOptions(store))) } catch { throw fail(error) }
        let forgotten: Bool
        do { forgotten = try opened.forget(subject: subject) } catch { throw fail(error) }
        // The forget is durable already; closing only ends the session.
        try? await opened.close()
        print(forgotten ? "forgot \(subject)" : "no key for \(subject): nothing to forget")
    }
}
