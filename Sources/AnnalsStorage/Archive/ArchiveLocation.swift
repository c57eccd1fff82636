/// Where a store's archived segments are: its `archive` file, read and checked against the
/// archive directory's `annals-archive` file (`format-spec.md` §1A).
struct ArchiveLocation: Sendable, Equatable {
    var manifest: ArchiveManifest
    /// The archive directory as a path (``ArchiveManifest/resolvedDirectory(storeRoot:)``).
    let directory: String

    init(manifest: ArchiveManifest, storeRoot: String) {
        self.manifest = manifest
        directory = manifest.resolvedDirectory(storeRoot: storeRoot)
    }

    /// Segment files numbered below this live in ``directory``.
    var firstLocalSegment: UInt64 { manifest.firstLocalSegment }

    func segmentPath(_ index: UInt64) -> String { directory + "/" + StoreLayout.segmentFileName(index) }

    /// The store's archive, or nil when it has no `archive` file.
    ///
    /// - Throws: ``OpenError/corrupt(_:)`` for an `archive` file that fails its checks,
    ///   ``OpenError/archiveUnavailable(directory:reason:)`` when the directory it names holds
    ///   archived segments but is missing or is not this store's archive (another store's, an
    ///   empty mount point).
    static func load(_ layout: StoreLayout) throws(OpenError) -> ArchiveLocation? {
        let path = layout.archiveManifestPath
        let bytes: [UInt8]?
        do { bytes = try layout.storage.readFile(path, maximumBytes: ArchiveManifest.maximumDirectoryBytes + 64) } catch {
            throw .system(error)
        }
        guard let bytes else { return nil }
        let manifest: ArchiveManifest
        switch ArchiveManifest.decode(bytes, file: path) {
        case .success(let decoded): manifest = decoded
        case .failure(let corruption): throw .corrupt(corruption)
        }
        let location = ArchiveLocation(manifest: manifest, storeRoot: layout.root)
        // Nothing archived yet (a first run stopped before its commit): nothing to find there.
        if location.firstLocalSegment > 0, let problem = location.markerProblem(storage: layout.storage) {
            throw .archiveUnavailable(directory: location.directory, reason: problem)
        }
        return location
    }

    /// Why the archive directory is not this archive (nil: it is).
    func markerProblem(storage: any Storage) -> String? {
        let marker: [UInt8]?
        do { marker = try storage.readFile(directory + "/" + ArchiveMarker.fileName, maximumBytes: ArchiveMarkerLayout.size + 1) } catch {
            return "\(error)"
        }
        guard let marker else {
            return (try? storage.exists(directory)) == true
                ? "it has no \(ArchiveMarker.fileName) file (is the right file system mounted there?)"
                : "it does not exist (is its file system mounted?)"
        }
        guard let id = ArchiveMarker.archiveID(in: marker) else { return "its \(ArchiveMarker.fileName) file is damaged" }
        guard id == manifest.archiveID else { return "it is the archive of another store" }
        return nil
    }
}
