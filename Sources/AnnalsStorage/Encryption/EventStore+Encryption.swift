/// Crypto-shredding: forgetting a data subject by destroying its key (`format-spec.md` §1B).
extension EventStore {
    /// Destroys every data key of `subject`, durably: once this returns, no file of the store
    /// holds them in any form (the `keys` file is replaced by one without them, and the
    /// replaced file is overwritten with zeros before it is deleted), so the bodies of the
    /// subject's events can never be decrypted again. They read as erased from then on
    /// (``RecordedEvent/isErased``), in this process and after any reopen; their stream, type,
    /// tags, position, id and timestamp stay. A crash leaves the keys either all there or all
    /// gone. Later events naming the same subject get a new key.
    ///
    /// Out of its reach: backups and copies of the store taken before, the key-encryption key's
    /// holder's own copies, and blocks the file system or the drive keeps after a file is
    /// rewritten (a copy-on-write file system, an SSD's remapped cells): keep the store on a
    /// volume whose freed blocks do not outlive you, or rely on the key-encryption key.
    ///
    /// Runs under the writer lock (appends wait for it: a few fsyncs).
    ///
    /// - Returns: false when the store had no key for `subject` (nothing changed).
    /// - Throws: ``AppendError/invalidSubject(_:reason:)`` when the store was opened without
    ///   encryption, ``AppendError/readOnly``, ``AppendError/storeClosed``, or
    ///   ``AppendError/system(_:)`` when a file operation failed (try again: the keys may be
    ///   gone from the disk already, and stay readable in this process until a call succeeds).
    @discardableResult
    public func forget(subject: String) throws(AppendError) -> Bool {
        guard !options.readOnly else { throw .readOnly }
        guard let keyRing else {
            throw .invalidSubject(subject, reason: "the store was opened without encryption (StoreOptions.encryption)")
        }
        return try writer.withLock { (_) throws(AppendError) in
            if closed.load(ordering: .relaxed) { throw .storeClosed }
            do throws(SystemError) {
                let forgotten = try keyRing.forget(subject: subject)
                if forgotten { logger.notice("forgot a data subject", metadata: ["annals.keys": "\(KeyStoreFile.fileName)"]) }
                return forgotten
            } catch { throw .system(error) }
        }
    }

    /// A stand-in for a tag value that carries personal data (an email address, a national
    /// id): `h:` followed by 32 hex digits of HMAC-SHA256 keyed by the store's key-encryption
    /// key. The same value always gives the same tag in this store (so queries by it work),
    /// and the value cannot be read back from it without the key. Forgetting a subject does
    /// not change it: hashed tags are pseudonyms, not erasable data.
    ///
    /// - Returns: nil when the store was opened without encryption.
    public func keyedTag(_ value: String) -> String? { keyRing?.keyedTag(value) }

    /// True when the store encrypts the body of every event (``EncryptionOptions/encryptEverything``,
    /// recorded in the store once set); false when only events naming a subject are encrypted,
    /// or none.
    public var encryptsEverything: Bool { keyRing?.encryptsEverything ?? false }
}
