/// The store's `keys` file (`format-spec.md` §1B): a header that proves the key-encryption key,
/// then one entry per data key, wrapped. Bytes only: wrapping and unwrapping are
/// ``KeyWrapping``'s.
struct KeyStoreFile: Sendable, Equatable {
    static let fileName = "keys"
    /// What ``KeyRing`` links the replaced file to while it scrubs it (§1B, forgetting).
    static let scrubFileName = "keys.old"

    enum Kind: UInt8, Sendable {
        /// A data subject's key.
        case subjectKey = 1
        /// The store's key (``EncryptionOptions/encryptEverything``).
        case storeKey = 2
        /// A destroyed key: the events that name it are erased.
        case forgotten = 3
    }

    struct Entry: Sendable, Equatable {
        var kind: Kind
        var keyID: UInt32
        /// HMAC-SHA256 of the subject (zeros for the store key and forgotten keys).
        var subjectDigest: [UInt8]
        var nonce: [UInt8]
        /// The data key, AES-256-GCM-encrypted under the wrapping key: ciphertext then tag.
        var wrapped: [UInt8]

        /// The entry a forgotten key leaves: its number, nothing else.
        static func forgotten(_ keyID: UInt32) -> Entry {
            Entry(kind: .forgotten, keyID: keyID, subjectDigest: zeros(32), nonce: zeros(12), wrapped: zeros(48))
        }

        func encoded() -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: KeyStoreEntryLayout.size)
            bytes.withUnsafeMutableBytes { buffer in
                buffer.storeU8(kind.rawValue, at: KeyStoreEntryLayout.kind)
                buffer.storeU32(keyID, at: KeyStoreEntryLayout.keyID)
                subjectDigest.withUnsafeBytes { _ = buffer.copy($0, to: KeyStoreEntryLayout.subjectDigest) }
                nonce.withUnsafeBytes { _ = buffer.copy($0, to: KeyStoreEntryLayout.nonce) }
                wrapped.withUnsafeBytes { _ = buffer.copy($0, to: KeyStoreEntryLayout.wrapped) }
                buffer.storeU32(CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, KeyStoreEntryLayout.checksum)),
                                at: KeyStoreEntryLayout.checksum)
            }
            return bytes
        }
    }

    var flags: UInt16
    var checkNonce: [UInt8]
    /// The 16 zero bytes AES-256-GCM-encrypted under the wrapping key: ciphertext then tag.
    var check: [UInt8]
    var entries: [Entry]

    var encryptsEverything: Bool { flags & Format.keyStoreEncryptsEverythingFlag != 0 }

    func encodedHeader() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: KeyStoreHeaderLayout.size)
        bytes.withUnsafeMutableBytes { buffer in
            Format.keyStoreMagic.withUnsafeBytes { _ = buffer.copy($0, to: KeyStoreHeaderLayout.magic) }
            buffer.storeU16(Format.keyStoreVersion, at: KeyStoreHeaderLayout.version)
            buffer.storeU16(flags, at: KeyStoreHeaderLayout.flags)
            checkNonce.withUnsafeBytes { _ = buffer.copy($0, to: KeyStoreHeaderLayout.checkNonce) }
            check.withUnsafeBytes { _ = buffer.copy($0, to: KeyStoreHeaderLayout.check) }
            buffer.storeU32(CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, KeyStoreHeaderLayout.checksum)),
                            at: KeyStoreHeaderLayout.checksum)
        }
        return bytes
    }

    /// The whole file.
    func encoded() -> [UInt8] {
        var bytes = encodedHeader()
        for entry in entries { bytes += entry.encoded() }
        return bytes
    }

    /// What a file's bytes hold: the file, and the bytes of a torn last entry (an append of a
    /// key that never completed, §1B), which are not part of it.
    struct Decoded {
        var file: KeyStoreFile
        var tornBytes: Int
    }

    /// Reads and checks the file's bytes (checksums and structure; not the keys, which only
    /// the key-encryption key can check); `file` names it in errors.
    static func decode(_ bytes: [UInt8], file: String) -> Result<Decoded, CorruptionError> {
        bytes.withUnsafeBytes { raw in
            func corrupt(_ offset: Int, _ reason: String) -> Result<Decoded, CorruptionError> {
                .failure(CorruptionError(file: file, offset: offset, reason: reason))
            }
            guard raw.count >= KeyStoreHeaderLayout.size else { return corrupt(0, "keys file of \(raw.count) bytes") }
            guard raw.slice(KeyStoreHeaderLayout.magic, 8).elementsEqual(Format.keyStoreMagic) else { return corrupt(0, "bad keys file magic") }
            guard CRC32C.checksum(raw.slice(0, KeyStoreHeaderLayout.checksum)) == raw.u32(KeyStoreHeaderLayout.checksum) else {
                return corrupt(KeyStoreHeaderLayout.checksum, "keys file header checksum mismatch")
            }
            let version = raw.u16(KeyStoreHeaderLayout.version)
            guard version == Format.keyStoreVersion else { return corrupt(KeyStoreHeaderLayout.version, "keys file version \(version)") }
            let flags = raw.u16(KeyStoreHeaderLayout.flags)
            guard flags & ~Format.keyStoreEncryptsEverythingFlag == 0 else { return corrupt(KeyStoreHeaderLayout.flags, "keys file flags \(flags)") }
            var entries: [Entry] = []
            var offset = KeyStoreHeaderLayout.size
            var seen = Set<UInt32>()
            var storeKeys = 0
            while offset < raw.count {
                let isLast = raw.count - offset <= KeyStoreEntryLayout.size
                guard raw.count - offset >= KeyStoreEntryLayout.size else {
                    return .success(Decoded(file: KeyStoreFile(raw: raw, flags: flags, entries: entries), tornBytes: raw.count - offset))
                }
                let entry = raw.slice(offset, KeyStoreEntryLayout.size)
                guard CRC32C.checksum(entry.slice(0, KeyStoreEntryLayout.checksum)) == entry.u32(KeyStoreEntryLayout.checksum) else {
                    if isLast {
                        return .success(Decoded(file: KeyStoreFile(raw: raw, flags: flags, entries: entries), tornBytes: raw.count - offset))
                    }
                    return corrupt(offset, "key entry checksum mismatch")
                }
                guard let kind = Kind(rawValue: entry.u8(KeyStoreEntryLayout.kind)),
                      entry.slice(KeyStoreEntryLayout.reserved, 3).isAllZero()
                else { return corrupt(offset, "key entry of unknown kind \(entry.u8(KeyStoreEntryLayout.kind))") }
                let keyID = entry.u32(KeyStoreEntryLayout.keyID)
                guard keyID >= 1, seen.insert(keyID).inserted, keyID > (entries.last?.keyID ?? 0) else {
                    return corrupt(offset, "key entry with key id \(keyID) out of order or repeated")
                }
                if kind == .storeKey {
                    storeKeys += 1
                    guard storeKeys == 1 else { return corrupt(offset, "a second store key") }
                }
                entries.append(Entry(
                    kind: kind, keyID: keyID,
                    subjectDigest: Array(entry.slice(KeyStoreEntryLayout.subjectDigest, 32)),
                    nonce: Array(entry.slice(KeyStoreEntryLayout.nonce, 12)),
                    wrapped: Array(entry.slice(KeyStoreEntryLayout.wrapped, 48))))
                offset += KeyStoreEntryLayout.size
            }
            return .success(Decoded(file: KeyStoreFile(raw: raw, flags: flags, entries: entries), tornBytes: 0))
        }
    }

    private init(raw: UnsafeRawBufferPointer, flags: UInt16, entries: [Entry]) {
        self.flags = flags
        checkNonce = Array(raw.slice(KeyStoreHeaderLayout.checkNonce, 12))
        check = Array(raw.slice(KeyStoreHeaderLayout.check, 32))
        self.entries = entries
    }

    init(flags: UInt16, checkNonce: [UInt8], check: [UInt8], entries: [Entry]) {
        self.flags = flags
        self.checkNonce = checkNonce
        self.check = check
        self.entries = entries
    }
}

private func zeros(_ count: Int) -> [UInt8] { [UInt8](repeating: 0, count: count) }
