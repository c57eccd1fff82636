import Crypto

/// The keys derived from a key-encryption key (HKDF-SHA256, `format-spec.md` §1B) and what
/// they do: prove the key against a `keys` file, wrap and unwrap data keys, digest subject
/// names, and hash tag values.
struct KeyWrapping: Sendable {
    /// Encrypts data keys (and the header's check).
    private let wrapKey: SymmetricKey
    /// Keys the subject digests: a subject's name is never stored.
    private let subjectKey: SymmetricKey
    /// Keys ``keyedTag(_:)``.
    private let tagKey: SymmetricKey

    init(_ keyEncryptionKey: KeyEncryptionKey) {
        func derive(_ info: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: keyEncryptionKey.key, info: Array(info.utf8), outputByteCount: 32)
        }
        wrapKey = derive("annals key wrapping")
        subjectKey = derive("annals subject digest")
        tagKey = derive("annals keyed tag")
    }

    private static let checkAssociatedData = Array("annals-keys-check".utf8)
    private static let checkPlaintext = [UInt8](repeating: 0, count: 16)

    /// A new header check (nonce, then ciphertext and tag); nil when the cipher refuses.
    func makeCheck() -> (nonce: [UInt8], check: [UInt8])? {
        let nonce = AES.GCM.Nonce()
        guard let box = try? AES.GCM.seal(Self.checkPlaintext, using: wrapKey, nonce: nonce, authenticating: Self.checkAssociatedData)
        else { return nil }
        return (Array(nonce), Array(box.ciphertext) + Array(box.tag))
    }

    /// True when `file`'s header check opens under this key: the key is the store's.
    func opens(_ file: KeyStoreFile) -> Bool {
        guard let nonce = try? AES.GCM.Nonce(data: file.checkNonce),
              let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: file.check.prefix(16), tag: file.check.suffix(16)),
              let plaintext = try? AES.GCM.open(box, using: wrapKey, authenticating: Self.checkAssociatedData)
        else { return false }
        return plaintext.elementsEqual(Self.checkPlaintext)
    }

    /// The digest that stands for `subject` in the `keys` file: HMAC-SHA256 under the subject key.
    func digest(of subject: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(subject.utf8), using: subjectKey))
    }

    /// A stable stand-in for `value` in tags: `h:` and 32 hex digits of HMAC-SHA256 under the
    /// tag key. The same value and key-encryption key always give the same tag.
    func keyedTag(_ value: String) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array(value.utf8), using: tagKey)
        let hex = "0123456789abcdef".utf8.map { $0 }
        var text: [UInt8] = Array("h:".utf8)
        for byte in Array(code).prefix(16) {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static func associatedData(keyID: UInt32, kind: KeyStoreFile.Kind, digest: [UInt8]) -> [UInt8] {
        var bytes = Array("annals-key".utf8)
        withUnsafeBytes(of: keyID.littleEndian) { bytes += $0 }
        bytes.append(kind.rawValue)
        return bytes + digest
    }

    /// The entry holding `dataKey` wrapped; nil when the cipher refuses.
    func wrap(_ dataKey: SymmetricKey, keyID: UInt32, kind: KeyStoreFile.Kind, digest: [UInt8]) -> KeyStoreFile.Entry? {
        let nonce = AES.GCM.Nonce()
        let plaintext = dataKey.withUnsafeBytes { Array($0) }
        guard let box = try? AES.GCM.seal(plaintext, using: wrapKey, nonce: nonce,
                                          authenticating: Self.associatedData(keyID: keyID, kind: kind, digest: digest))
        else { return nil }
        return KeyStoreFile.Entry(kind: kind, keyID: keyID, subjectDigest: digest, nonce: Array(nonce),
                                  wrapped: Array(box.ciphertext) + Array(box.tag))
    }

    /// The data key an entry wraps; nil when it does not authenticate (a damaged entry, or one
    /// wrapped by another key).
    func unwrap(_ entry: KeyStoreFile.Entry) -> SymmetricKey? {
        guard entry.kind != .forgotten, let nonce = try? AES.GCM.Nonce(data: entry.nonce),
              let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: entry.wrapped.prefix(32), tag: entry.wrapped.suffix(16)),
              let plaintext = try? AES.GCM.open(box, using: wrapKey,
                                                authenticating: Self.associatedData(keyID: entry.keyID, kind: entry.kind, digest: entry.subjectDigest)),
              plaintext.count == 32
        else { return nil }
        return SymmetricKey(data: plaintext)
    }
}
