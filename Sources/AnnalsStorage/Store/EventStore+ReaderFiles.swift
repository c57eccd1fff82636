/// Small files that readers keep beside the log, for work a read-only open does (a Kafka relay
/// publishing while another process writes keeps its checkpoint there).
extension EventStore {
    /// The bytes of reader file `name` (`readers/<name>` in the store directory), nil when
    /// there is none. Any open, read-only too.
    ///
    /// - Throws: ``SystemError`` when the file exists but cannot be read.
    public func readerFile(named name: String) throws(SystemError) -> [UInt8]? {
        try layout.storage.readFile(readersDirectory + "/" + name, maximumBytes: 1 << 20)
    }

    /// Replaces reader file `name` with `bytes` (at most 1 MiB) atomically and durably (temp
    /// file, fsync, rename, directory fsync): after a crash it holds the old bytes or the new.
    /// Works on a read-only open: a writer never reads or changes these files
    /// (`format-spec.md` §1).
    ///
    /// - Throws: ``SystemError`` when a file operation fails (the old file stays).
    public func writeReaderFile(named name: String, bytes: [UInt8]) throws(SystemError) {
        precondition(!name.contains("/") && !name.isEmpty && bytes.count <= 1 << 20, "a reader file name, and at most 1 MiB")
        let storage = layout.storage
        if try !storage.exists(readersDirectory) {
            try storage.makeDirectory(readersDirectory)
            try storage.syncDirectory(layout.root)
        }
        try storage.writeFileAtomically(bytes, to: readersDirectory + "/" + name, directory: readersDirectory)
    }

    /// This store opened again with the same options: for a read-only open, a view of the log
    /// as it is now (a read-only open sees the log as it was when it opened).
    ///
    /// - Throws: ``OpenError``, as ``open(at:options:)``.
    public func reopened() throws(OpenError) -> EventStore {
        try EventStore.open(at: path, options: options)
    }

    private var readersDirectory: String { layout.root + "/readers" }
}
