/// The store's `archive` file (`format-spec.md` §1A): which directory holds the store's
/// archived segments and which segment numbers live there (every one below
/// `firstLocalSegment`). Replaced atomically (temp file, fsync, rename, directory fsync):
/// writing it is the step that moves segments to the archive.
struct ArchiveManifest: Sendable, Equatable {
    /// The archive directory as stored: absolute, or relative to the store directory.
    var directory: String
    /// Names the archive: the archive directory's `annals-archive` file holds the same id, so
    /// a store never reads another store's archive (or an empty mount point) as its own.
    var archiveID: [UInt8]
    /// Segment files numbered below this live in the archive directory; the others in
    /// `segments/`.
    var firstLocalSegment: UInt64

    static let magic: [UInt8] = Array("ANNALSAR".utf8)
    static let version: UInt16 = 1
    static let fileName = "archive"
    /// Longest directory path the file may hold.
    static let maximumDirectoryBytes = 4096

    func encoded() -> [UInt8] {
        let path = Array(directory.utf8)
        var bytes = [UInt8](repeating: 0, count: ArchiveManifestLayout.directory + path.count + 4)
        bytes.withUnsafeMutableBytes { buffer in
            Self.magic.withUnsafeBytes { _ = buffer.copy($0, to: ArchiveManifestLayout.magic) }
            buffer.storeU16(Self.version, at: ArchiveManifestLayout.formatVersion)
            buffer.storeU32(UInt32(path.count), at: ArchiveManifestLayout.directoryLength)
            buffer.storeU64(firstLocalSegment, at: ArchiveManifestLayout.firstLocalSegment)
            archiveID.withUnsafeBytes { _ = buffer.copy($0, to: ArchiveManifestLayout.archiveID) }
            path.withUnsafeBytes { _ = buffer.copy($0, to: ArchiveManifestLayout.directory) }
            let end = ArchiveManifestLayout.directory + path.count
            buffer.storeU32(CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, end)), at: end)
        }
        return bytes
    }

    /// Reads and checks the file's bytes; `file` names it in the error.
    static func decode(_ bytes: [UInt8], file: String) -> Result<ArchiveManifest, CorruptionError> {
        bytes.withUnsafeBytes { raw in
            func corrupt(_ offset: Int, _ reason: String) -> Result<ArchiveManifest, CorruptionError> {
                .failure(CorruptionError(file: file, offset: offset, reason: reason))
            }
            guard raw.count >= ArchiveManifestLayout.size + 4 else { return corrupt(0, "archive file of \(raw.count) bytes") }
            guard raw.slice(ArchiveManifestLayout.magic, magic.count).elementsEqual(magic) else { return corrupt(0, "bad archive magic") }
            let length = Int(raw.u32(ArchiveManifestLayout.directoryLength))
            guard length <= maximumDirectoryBytes, raw.count == ArchiveManifestLayout.directory + length + 4 else {
                return corrupt(ArchiveManifestLayout.directoryLength, "directory length \(length) does not match the file's size")
            }
            let end = ArchiveManifestLayout.directory + length
            guard CRC32C.checksum(raw.slice(0, end)) == raw.u32(end) else { return corrupt(end, "archive file checksum mismatch") }
            guard raw.u16(ArchiveManifestLayout.formatVersion) == version else {
                return corrupt(ArchiveManifestLayout.formatVersion, "archive file version \(raw.u16(ArchiveManifestLayout.formatVersion))")
            }
            guard length > 0 else { return corrupt(ArchiveManifestLayout.directoryLength, "empty archive directory") }
            return .success(ArchiveManifest(
                directory: String(decoding: raw.slice(ArchiveManifestLayout.directory, length), as: UTF8.self),
                archiveID: Array(raw.slice(ArchiveManifestLayout.archiveID, 16)),
                firstLocalSegment: raw.u64(ArchiveManifestLayout.firstLocalSegment)))
        }
    }

    /// The archive directory as a path: `directory` itself when absolute, else under the
    /// store directory `root`.
    func resolvedDirectory(storeRoot root: String) -> String {
        directory.hasPrefix("/") ? directory : root + "/" + directory
    }
}

/// The `annals-archive` file in an archive directory (`format-spec.md` §1A): the id of the
/// archive, which the store's `archive` file repeats.
enum ArchiveMarker {
    static let fileName = "annals-archive"
    static let magic: [UInt8] = Array("ANNALSAM".utf8)

    static func encoded(archiveID: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: ArchiveMarkerLayout.size)
        bytes.withUnsafeMutableBytes { buffer in
            magic.withUnsafeBytes { _ = buffer.copy($0, to: ArchiveMarkerLayout.magic) }
            archiveID.withUnsafeBytes { _ = buffer.copy($0, to: ArchiveMarkerLayout.archiveID) }
            buffer.storeU32(CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, ArchiveMarkerLayout.checksum)),
                            at: ArchiveMarkerLayout.checksum)
        }
        return bytes
    }

    /// The archive id the file's bytes hold, or nil when they are not a valid marker.
    static func archiveID(in bytes: [UInt8]) -> [UInt8]? {
        bytes.withUnsafeBytes { raw in
            guard raw.count == ArchiveMarkerLayout.size, raw.slice(ArchiveMarkerLayout.magic, magic.count).elementsEqual(magic),
                  CRC32C.checksum(raw.slice(0, ArchiveMarkerLayout.checksum)) == raw.u32(ArchiveMarkerLayout.checksum)
            else { return nil }
            return Array(raw.slice(ArchiveMarkerLayout.archiveID, 16))
        }
    }
}
