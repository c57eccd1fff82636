import Crypto

/// Whose data key encrypts an event: a data subject's, or the store's own.
enum KeyOwner: Hashable, Sendable {
    case subject(String)
    case store
}

/// A data key and the number records name it by.
struct DataKey: Sendable {
    let id: UInt32
    let key: SymmetricKey
}

/// The store's data keys and its `keys` file (`format-spec.md` §1B): loads and checks them at
/// open, creates a key the first time an owner needs one (durable before any record names it),
/// and forgets a subject's keys by replacing the file and scrubbing the old one.
///
/// The file has one writer: creating and forgetting keys happen under the store's writer
/// lock. The in-memory keys are under ``state``'s own lock, taken after any other and never
/// held across file I/O: a reader's ``lookup(_:)`` never waits for a sync. A read-only ring
/// reads the file again when a record names a key it has not seen (a writer in another process
/// created it after this ring read the file).
final class KeyRing: Sendable {
    private let layout: StoreLayout
    private let wrapping: KeyWrapping
    private let writable: Bool
    private let state: Locked<State>

    private struct State {
        /// The file as on disk (without a torn tail); nil until the writer creates it.
        var file: KeyStoreFile?
        /// Every live data key by number.
        var keys: [UInt32: SymmetricKey] = [:]
        /// Numbers of destroyed keys: their events read as erased.
        var forgotten: Set<UInt32> = []
        /// The newest key of each subject digest.
        var bySubjectDigest: [[UInt8]: UInt32] = [:]
        /// Subjects seen since open (saves an HMAC per event); cleared by a forget.
        var bySubject: [String: UInt32] = [:]
        var storeKeyID: UInt32?
        /// Every body is encrypted (recorded in the file once it exists).
        var encryptsEverything: Bool

        var nextKeyID: UInt32 { (file?.entries.last?.keyID ?? 0) + 1 }
        var fileBytes: Int { KeyStoreHeaderLayout.size + (file?.entries.count ?? 0) * KeyStoreEntryLayout.size }
    }

    /// What a record's key number stands for.
    enum Lookup {
        case key(SymmetricKey)
        /// Destroyed by ``forget(subject:)``: the record's body is erased.
        case forgotten
        /// No such key: the record or the `keys` file is damaged.
        case unknown
    }

    private init(layout: StoreLayout, wrapping: KeyWrapping, writable: Bool, file: KeyStoreFile?, encryptsEverything: Bool) throws(CorruptionError) {
        self.layout = layout
        self.wrapping = wrapping
        self.writable = writable
        var state = State(file: file, encryptsEverything: encryptsEverything || file?.encryptsEverything == true)
        if let file { try Self.load(file, into: &state, wrapping: wrapping, path: layout.keysPath) }
        self.state = Locked(state)
    }

    /// Unwraps the keys of `file`'s entries that `state` does not hold yet.
    private static func load(_ file: KeyStoreFile, into state: inout State, wrapping: KeyWrapping, path: String) throws(CorruptionError) {
        for (slot, entry) in file.entries.enumerated() where state.keys[entry.keyID] == nil && !state.forgotten.contains(entry.keyID) {
            switch entry.kind {
            case .forgotten:
                state.forgotten.insert(entry.keyID)
            case .subjectKey, .storeKey:
                guard let key = wrapping.unwrap(entry) else {
                    throw CorruptionError(file: path, offset: KeyStoreHeaderLayout.size + slot * KeyStoreEntryLayout.size,
                                          reason: "key \(entry.keyID) does not unwrap")
                }
                state.keys[entry.keyID] = key
                if entry.kind == .storeKey { state.storeKeyID = entry.keyID } else { state.bySubjectDigest[entry.subjectDigest] = entry.keyID }
            }
        }
        state.file = file
    }

    /// The key ring of the store at `layout`: nil when `options` has no encryption and the store
    /// has no `keys` file. A writable open finishes an interrupted forget, cuts a torn last
    /// entry and records ``EncryptionOptions/encryptEverything`` in an existing file; a store
    /// without one gets it with its first key.
    ///
    /// - Throws: ``OpenError/keyEncryptionKeyRequired(path:)`` for a store with keys opened
    ///   without encryption; ``OpenError/wrongKeyEncryptionKey(path:)``; the provider's error;
    ///   ``OpenError/corrupt(_:)`` for a damaged file, or a missing one in a store whose
    ///   checkpoint says it holds encrypted records (`checkpointVersion` ≥ 7).
    static func open(
        layout: StoreLayout, options: StoreOptions, checkpointVersion: UInt16, keyEncryptionKey: KeyEncryptionKey? = nil
    ) throws(OpenError) -> KeyRing? {
        let storage = layout.storage
        let exists = storage.fileSize(layout.keysPath) != nil
        guard let encryption = options.encryption else {
            if exists { throw .keyEncryptionKeyRequired(path: layout.root) }
            return nil
        }
        let wrapping: KeyWrapping
        if let keyEncryptionKey { wrapping = KeyWrapping(keyEncryptionKey) } else { wrapping = KeyWrapping(try encryption.keyProvider.keyEncryptionKey()) }
        guard exists else {
            if checkpointVersion >= Format.encryptedRecordsVersion {
                throw .corrupt(CorruptionError(file: layout.keysPath, offset: 0, reason: "the store holds encrypted records and its keys file is missing"))
            }
            guard !options.readOnly else { return nil }
            do throws(CorruptionError) {
                return try KeyRing(layout: layout, wrapping: wrapping, writable: true, file: nil, encryptsEverything: encryption.encryptEverything)
            } catch { throw .corrupt(error) }
        }
        let decoded = try readFile(layout, retrying: options.readOnly)
        guard wrapping.opens(decoded.file) else { throw .wrongKeyEncryptionKey(path: layout.root) }
        let ring: KeyRing
        do throws(CorruptionError) {
            ring = try KeyRing(layout: layout, wrapping: wrapping, writable: !options.readOnly, file: decoded.file,
                               encryptsEverything: encryption.encryptEverything)
        } catch { throw .corrupt(error) }
        if !options.readOnly {
            do throws(SystemError) {
                try storage.unlinkIfPresent(layout.keysPath + ".tmp")
                try ring.finishScrubbing()
                var file = decoded.file
                if encryption.encryptEverything { file.flags |= Format.keyStoreEncryptsEverythingFlag }
                if decoded.tornBytes > 0 || file.flags != decoded.file.flags {
                    try ring.replaceFile(with: file)
                    ring.state.withLock { $0.file = file }
                }
            } catch { throw .system(error) }
        }
        return ring
    }

    /// The `keys` file, decoded. A read-only open may read it while a writer in another process
    /// replaces it (a forget zeroes the old file after the rename): damage is read again a few
    /// times before it is reported.
    private static func readFile(_ layout: StoreLayout, retrying: Bool) throws(OpenError) -> KeyStoreFile.Decoded {
        var attempt = 0
        while true {
            attempt += 1
            let bytes: [UInt8]?
            do { bytes = try layout.storage.readFile(layout.keysPath, maximumBytes: layout.storage.fileSize(layout.keysPath) ?? 0) } catch {
                throw .system(error)
            }
            switch KeyStoreFile.decode(bytes ?? [], file: layout.keysPath) {
            case .success(let decoded): return decoded
            case .failure(let error):
                if retrying, attempt < 4 { continue }
                throw .corrupt(error)
            }
        }
    }

    /// True when every event's body is encrypted, not only those naming a subject.
    var encryptsEverything: Bool { state.withLock { $0.encryptsEverything } }

    /// The `keys` file as it stands (for a backup): every key created so far, none forgotten;
    /// nil when the store has none yet.
    func fileBytes() -> [UInt8]? { state.withLock { $0.file?.encoded() } }

    /// What key number `id` stands for (for reading a record). A read-only ring that does not
    /// know `id` reads the file again once: a writer in another process may have created it.
    func lookup(_ id: UInt32) -> Lookup {
        let found = state.withLock { state -> Lookup in
            if let key = state.keys[id] { return .key(key) }
            return state.forgotten.contains(id) ? .forgotten : .unknown
        }
        guard case .unknown = found, !writable else { return found }
        guard let decoded = try? Self.readFile(layout, retrying: true), wrapping.opens(decoded.file) else { return .unknown }
        return state.withLock { state -> Lookup in
            do throws(CorruptionError) { try Self.load(decoded.file, into: &state, wrapping: wrapping, path: layout.keysPath) } catch {
                return .unknown
            }
            if let key = state.keys[id] { return .key(key) }
            return state.forgotten.contains(id) ? .forgotten : .unknown
        }
    }

    /// The data keys of `owners`, creating the missing ones: their entries are appended to the
    /// `keys` file and synced one by one before this returns (so that a crash can tear only the
    /// last entry of the file), and no record names them before. Called under the writer lock.
    ///
    /// - Throws: ``AppendError/system(_:)`` when the file cannot be written (the keys whose
    ///   entry was not synced are not created; an entry that reached the disk is unused, and
    ///   harmless); ``AppendError/encryptionFailed(_:)`` when a key cannot be wrapped.
    func dataKeys(for owners: Set<KeyOwner>) throws(AppendError) -> [KeyOwner: DataKey] {
        var found: [KeyOwner: DataKey] = [:]
        var missing: [(owner: KeyOwner, digest: [UInt8])] = []
        let snapshot = state.withLock { state in
            for owner in owners {
                switch owner {
                case .store:
                    if let id = state.storeKeyID, let key = state.keys[id] { found[owner] = DataKey(id: id, key: key) } else { missing.append((owner, [])) }
                case .subject(let subject):
                    if let id = state.bySubject[subject], let key = state.keys[id] {
                        found[owner] = DataKey(id: id, key: key)
                        continue
                    }
                    let digest = wrapping.digest(of: subject)
                    if let id = state.bySubjectDigest[digest], let key = state.keys[id] {
                        state.bySubject[subject] = id
                        found[owner] = DataKey(id: id, key: key)
                    } else {
                        missing.append((owner, digest))
                    }
                }
            }
            return (state.file, state.encryptsEverything, state.nextKeyID)
        }
        guard !missing.isEmpty else { return found }
        // Only the writer changes the file (under the writer lock): the snapshot stays current.
        var (file, encryptsEverything, nextID) = snapshot
        if file == nil {
            guard let check = wrapping.makeCheck() else { throw .encryptionFailed("the key store's check value cannot be sealed") }
            let created = KeyStoreFile(flags: encryptsEverything ? Format.keyStoreEncryptsEverythingFlag : 0,
                                       checkNonce: check.nonce, check: check.check, entries: [])
            do { try layout.storage.writeFileAtomically(created.encoded(), to: layout.keysPath, directory: layout.root) } catch {
                throw .system(error)
            }
            file = created
            state.withLock { $0.file = created }
        }
        for (owner, digest) in missing {
            let key = SymmetricKey(size: .bits256)
            let wrapped: KeyStoreFile.Entry?
            switch owner {
            case .store: wrapped = wrapping.wrap(key, keyID: nextID, kind: .storeKey, digest: [UInt8](repeating: 0, count: 32))
            case .subject: wrapped = wrapping.wrap(key, keyID: nextID, kind: .subjectKey, digest: digest)
            }
            guard let entry = wrapped else { throw .encryptionFailed("a data key cannot be wrapped") }
            let offset = KeyStoreHeaderLayout.size + file!.entries.count * KeyStoreEntryLayout.size
            do { try layout.storage.write(entry.encoded(), to: layout.keysPath, at: offset) } catch { throw .system(error) }
            file!.entries.append(entry)
            nextID += 1
            let appended = file!
            state.withLock { state in
                state.file = appended
                state.keys[entry.keyID] = key
                switch owner {
                case .store: state.storeKeyID = entry.keyID
                case .subject(let subject):
                    state.bySubject[subject] = entry.keyID
                    state.bySubjectDigest[digest] = entry.keyID
                }
            }
            found[owner] = DataKey(id: entry.keyID, key: key)
        }
        return found
    }

    /// Destroys every key of `subject` (`format-spec.md` §1B): replaces the file with one
    /// without them (``replaceFile(with:)``). Once the new file has its name, this process
    /// forgets the keys too, whatever happens next; a crash leaves the old file or the new one,
    /// and the next writable open finishes the scrub. Called under the writer lock. Returns
    /// false when the subject has no key.
    ///
    /// - Throws: ``SystemError``. When it comes before the rename, the keys are still there
    ///   (on disk and here); after it, they are gone here and gone on disk unless the directory
    ///   sync failed: a retry (or the next writable open) finishes either way.
    func forget(subject: String) throws(SystemError) -> Bool {
        let digest = wrapping.digest(of: subject)
        guard var file = state.withLock({ $0.file }) else { return false }
        var destroyed: [UInt32] = []
        for index in file.entries.indices where file.entries[index].kind == .subjectKey && file.entries[index].subjectDigest == digest {
            destroyed.append(file.entries[index].keyID)
            file.entries[index] = .forgotten(file.entries[index].keyID)
        }
        guard !destroyed.isEmpty else { return false }
        let replaced = file
        try replaceFile(with: file) {
            self.state.withLock { state in
                state.file = replaced
                for id in destroyed {
                    state.keys[id] = nil
                    state.forgotten.insert(id)
                }
                state.bySubjectDigest[digest] = nil
                state.bySubject.removeAll()
            }
        }
        return true
    }

    /// Replaces the `keys` file by `file` so that no copy of what it held survives in a file:
    /// the current file gets a second name (`keys.old`), the new one is written and renamed
    /// over `keys` (temp file, fsync, rename), `renamed` runs, the directory is synced, and the
    /// old file is overwritten with zeros (to its whole size), synced and deleted.
    private func replaceFile(with file: KeyStoreFile, renamed: () -> Void = {}) throws(SystemError) {
        let storage = layout.storage
        let scrubPath = layout.root + "/" + KeyStoreFile.scrubFileName
        let temporary = layout.keysPath + ".tmp"
        try finishScrubbing()
        try storage.link(layout.keysPath, to: scrubPath)
        try storage.writeFile(file.encoded(), to: temporary)
        try storage.rename(temporary, to: layout.keysPath)
        renamed()
        try storage.syncDirectory(layout.root)
        try scrub(scrubPath)
    }

    /// Overwrites the replaced `keys` file (named `keys.old`) with zeros, syncs it, and deletes
    /// it; when that name is only a second name of the current file (the crash came before the
    /// replacement), only deletes it.
    private func finishScrubbing() throws(SystemError) {
        let storage = layout.storage
        let scrubPath = layout.root + "/" + KeyStoreFile.scrubFileName
        guard let size = storage.fileSize(scrubPath) else { return }
        let old = try storage.readFile(scrubPath, maximumBytes: size)
        let current = try storage.readFile(layout.keysPath, maximumBytes: storage.fileSize(layout.keysPath) ?? 0)
        if old == current {
            try storage.unlinkIfPresent(scrubPath)
            try storage.syncDirectory(layout.root)
        } else {
            try scrub(scrubPath)
        }
    }

    private func scrub(_ path: String) throws(SystemError) {
        let size = layout.storage.fileSize(path) ?? 0
        if size > 0 { try layout.storage.write([UInt8](repeating: 0, count: size), to: path, at: 0) }
        try layout.storage.unlinkIfPresent(path)
        try layout.storage.syncDirectory(layout.root)
    }

    /// ``KeyWrapping/keyedTag(_:)`` under this store's key-encryption key.
    func keyedTag(_ value: String) -> String { wrapping.keyedTag(value) }
}
