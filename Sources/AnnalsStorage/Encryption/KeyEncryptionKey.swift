import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The 256-bit key that wraps a store's data keys (`format-spec.md` §1B). The store never
/// writes it anywhere; it holds the data keys only wrapped by it. Keep it outside the store
/// (a secrets manager, a key file on another volume): whoever has it and the store's files
/// can read every event whose key was not forgotten.
public struct KeyEncryptionKey: Sendable {
    /// The key's 32 bytes.
    let key: SymmetricKey

    /// The key made of `bytes`, which must be exactly 32 bytes.
    ///
    /// - Throws: ``OpenError/keyEncryptionKeyUnavailable(reason:)`` for any other length.
    public init(bytes: [UInt8]) throws(OpenError) {
        guard bytes.count == Self.byteCount else {
            throw .keyEncryptionKeyUnavailable(reason: "a key-encryption key has \(Self.byteCount) bytes, not \(bytes.count)")
        }
        key = SymmetricKey(data: bytes)
    }

    /// A new random key (from the system's secure random number generator).
    public static func generate() -> KeyEncryptionKey {
        KeyEncryptionKey(key: SymmetricKey(size: .bits256))
    }

    private init(key: SymmetricKey) { self.key = key }

    /// Bytes of a key.
    public static let byteCount = 32
    /// How a key file starts (`format-spec.md` §1B); 64 lowercase hex digits and a newline follow.
    static let filePrefix = "annals-kek-v1:"

    /// The key's text form, as a key file holds it: `annals-kek-v1:` followed by 64 lowercase
    /// hex digits and a newline.
    public var fileContents: String {
        let hex = key.withUnsafeBytes { $0.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
        return Self.filePrefix + hex + "\n"
    }

    /// Reads the text form ``fileContents`` writes: lowercase hex digits; whitespace after them
    /// is ignored (`format-spec.md` §1B).
    ///
    /// - Throws: ``OpenError/keyEncryptionKeyUnavailable(reason:)`` when `text` is not one.
    public init(fileContents text: String) throws(OpenError) {
        let trimmed = String(text.reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }).reversed())
        guard trimmed.hasPrefix(Self.filePrefix) else {
            throw .keyEncryptionKeyUnavailable(reason: "not an Annals key file (it must start with \(Self.filePrefix))")
        }
        let hex = Array(trimmed.dropFirst(Self.filePrefix.count).utf8)
        guard hex.count == 2 * Self.byteCount else {
            throw .keyEncryptionKeyUnavailable(reason: "a key file holds \(2 * Self.byteCount) hex digits")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.byteCount)
        for pair in stride(from: 0, to: hex.count, by: 2) {
            guard let high = Self.hexValue(hex[pair]), let low = Self.hexValue(hex[pair + 1]) else {
                throw .keyEncryptionKeyUnavailable(reason: "a key file holds lowercase hex digits only")
            }
            bytes.append(high << 4 | low)
        }
        try self.init(bytes: bytes)
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// Supplies a store's key-encryption key when the store opens. Implement it to fetch the key
/// from a secrets manager or a hardware module; ``KeyFileProvider`` reads a key file.
public protocol KeyEncryptionKeyProvider: Sendable {
    /// The key-encryption key. Called once per open, before anything is read or written.
    ///
    /// - Throws: ``OpenError/keyEncryptionKeyUnavailable(reason:)`` when there is none; the
    ///   open then fails with it and changes nothing.
    func keyEncryptionKey() throws(OpenError) -> KeyEncryptionKey
}

/// A key-encryption key read from a key file (``KeyEncryptionKey/fileContents``; the CLI's
/// `annals key generate` writes one). Keep the file off the volume that holds the store.
public struct KeyFileProvider: KeyEncryptionKeyProvider {
    /// The key file's path.
    public let path: String

    /// The key in the file at `path`, read at each open.
    public init(path: String) { self.path = path }

    /// Reads and parses the file.
    ///
    /// - Throws: ``OpenError/keyEncryptionKeyUnavailable(reason:)`` when it is missing,
    ///   unreadable or not a key file.
    public func keyEncryptionKey() throws(OpenError) -> KeyEncryptionKey {
        let bytes: [UInt8]?
        do { bytes = try SystemStorage.shared.readFile(path, maximumBytes: 4096) } catch {
            throw .keyEncryptionKeyUnavailable(reason: "\(path): \(error)")
        }
        guard let bytes else { throw .keyEncryptionKeyUnavailable(reason: "\(path) does not exist") }
        do throws(OpenError) { return try KeyEncryptionKey(fileContents: String(decoding: bytes, as: UTF8.self)) } catch {
            if case .keyEncryptionKeyUnavailable(let reason) = error { throw .keyEncryptionKeyUnavailable(reason: "\(path): \(reason)") }
            throw error
        }
    }

    /// Writes a new random key to a new file at `path` (mode 0600), and returns it.
    ///
    /// - Throws: ``SystemError`` when the file exists (it is never overwritten: that would
    ///   lose every key it wraps) or cannot be written.
    @discardableResult
    public static func generate(at path: String) throws(SystemError) -> KeyEncryptionKey {
        let key = KeyEncryptionKey.generate()
        try Syscalls.createExclusively(path, contents: Array(key.fileContents.utf8), mode: 0o600)
        return key
    }
}

/// Encryption of event bodies (`format-spec.md` §1B, §3.9): for ``StoreOptions/encryption``.
///
/// Events that name a ``EventData/subject`` are encrypted under that subject's data key, which
/// ``EventStore/forget(subject:)`` destroys. With ``encryptEverything``, every other event is
/// encrypted under the store's own data key. Data keys are created on first use, stored in the
/// store's `keys` file wrapped by the key-encryption key (AES-256-GCM), and never written
/// unwrapped. Stream names, event types, tags, positions, ids and timestamps stay in the clear.
public struct EncryptionOptions: Sendable {
    /// Where the key-encryption key comes from.
    public var keyProvider: any KeyEncryptionKeyProvider
    /// Encrypt every event's body, not only those naming a subject. Once a store was opened
    /// with it, it stays on (the `keys` file records it); it cannot be turned off.
    public var encryptEverything: Bool

    /// Encryption with the key `keyProvider` supplies.
    public init(keyProvider: any KeyEncryptionKeyProvider, encryptEverything: Bool = false) {
        self.keyProvider = keyProvider
        self.encryptEverything = encryptEverything
    }
}
