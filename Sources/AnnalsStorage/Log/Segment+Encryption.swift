/// Encrypted records (`format-spec.md` §3.9): their bodies, decrypted with the store's keys.
extension Segment {
    /// What reading an encrypted body found.
    enum DecryptedBody {
        /// `target` holds the metadata then the payload.
        case decrypted
        /// The record's key was destroyed (``EventStore/forget(subject:)``).
        case erased
        /// Damage: an unknown key, a body that does not authenticate or decode.
        case corrupt(String)
    }

    /// The key number of an encrypted record.
    func keyID(of layout: EventRecordLayout) -> UInt32 { bytes.u32(layout.keyIDField) }

    /// True when the encrypted record's key was destroyed.
    func isErased(_ layout: EventRecordLayout) -> Bool {
        guard layout.isEncrypted, let keyRing, case .forgotten = keyRing.lookup(keyID(of: layout)) else { return false }
        return true
    }

    /// Decrypts the body of the encrypted record `layout`, event `position`/`revision` of
    /// `stream`, into `target` (exactly the decoded size).
    func decryptBody(
        of layout: EventRecordLayout, position: UInt64, revision: UInt64, stream: String,
        into target: UnsafeMutableRawBufferPointer
    ) -> DecryptedBody {
        guard let keyRing else { return .corrupt("an encrypted event record, and the store has no keys file") }
        let id = keyID(of: layout)
        let key: KeyRing.Lookup = keyRing.lookup(id)
        switch key {
        case .forgotten:
            return .erased
        case .unknown:
            return .corrupt("encrypted event record names key \(id), which the keys file does not hold")
        case .key(let key):
            var stream = stream
            let opened = stream.withUTF8 { name in
                EventCipher.withAssociatedData(
                    position: position, revision: revision, stream: UnsafeRawBufferPointer(name),
                    recordFields: EventCipher.recordFields(of: layout.offset, bodyOffset: layout.bodyOffset, in: bytes)
                ) { EventCipher.open(layout, in: bytes, key: key, associatedData: $0, into: target) }
            }
            return opened ? .decrypted : .corrupt("encrypted event record does not authenticate")
        }
    }
}
