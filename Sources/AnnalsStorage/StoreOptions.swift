import CoreMetrics
import Logging
import Tracing

/// When an append counts as done.
public enum Durability: Sendable, Hashable {
    /// `append` returns after the frame is on stable storage (`msync(MS_SYNC)`). Concurrent
    /// appenders share one flush (group commit). The default, and the only mode in which an
    /// acknowledged append survives power loss.
    case fsyncBeforeAck
    /// `append` returns once the frame is in the page cache; a background flush runs every
    /// `interval`. **Unsafe:** an OS crash or power loss can lose up to one interval of
    /// acknowledged appends (a `kill -9` of the process loses nothing).
    case periodic(Duration)
    /// `append` returns once the frame is in the page cache; the store syncs only when a
    /// segment fills up, on ``EventStore/flush()`` and on ``EventStore/close()``. **Unsafe:** an
    /// OS crash or power loss can lose any acknowledged append since the last sync.
    case none
}

/// How a store is opened.
public struct StoreOptions: Sendable {
    /// When appends are acknowledged. Default ``Durability/fsyncBeforeAck``.
    public var durability: Durability = .fsyncBeforeAck
    /// Size of new segment files, a multiple of 4096 between
    /// ``StoreLimits/minimumSegmentSizeBytes`` and ``StoreLimits/maximumSegmentSizeBytes``.
    /// Default 64 MiB. Existing segments keep the size they were created with.
    public var segmentSizeBytes: Int = 64 << 20
    /// Create the store when the directory does not exist or is empty. Default true.
    public var createIfMissing: Bool = true
    /// Open without taking the writer lock and without changing any file: for reading while
    /// another process writes, and for inspection. Appends throw ``AppendError/readOnly``.
    public var readOnly: Bool = false
    /// Whether appended events are LZ4-compressed. Default ``Compression/lz4``. Applies to what
    /// this writer appends: a store may mix compressed and raw events, and every event reads
    /// back the same either way.
    public var compression: Compression = .lz4
    /// What a writable open does with damaged acknowledged data in the last segment (bytes
    /// before the end the checkpoint or the durable mark vouches for that are not valid frames).
    /// False, the default: refuse the store (``OpenError/corrupt(_:)``), cutting nothing. True:
    /// cut the log at the damage and go on. **Every event from the damaged frame on is lost,**
    /// acknowledged ones included; what was cut is in ``RecoveryReport/damage`` and
    /// ``RecoveryReport/truncatedBytes``. For an operator who has kept a copy of the store and
    /// decided to lose those events (`annals repair --discard-damaged-tail`).
    public var discardDamagedTail = false
    /// Moves sealed segments to another directory as they age (see ``ArchivePolicy`` and
    /// ``EventStore/archiveSegments(olderThan:to:)``), in the background after each roll and
    /// when the store opens; a run that fails is logged, counted in
    /// ``EventStore/maintenanceStatus`` and tried again. Default nil: segments stay in the
    /// store directory (an archive made earlier is read all the same).
    public var archive: ArchivePolicy?
    /// Encrypts event bodies (``EncryptionOptions``): those that name a data subject
    /// (``EventData/subject``), or all of them. Default nil: no encryption, and an event naming
    /// a subject is refused. A store that holds keys (its `keys` file) opens only with it, and
    /// only with its own key-encryption key (``OpenError/keyEncryptionKeyRequired(path:)``,
    /// ``OpenError/wrongKeyEncryptionKey(path:)``).
    public var encryption: EncryptionOptions?
    /// The stream-name hash of the index. Only tests change it (to force collisions).
    var streamHasher: StreamHasher = .fnv1a
    /// The file operations' implementation. Only tests change it (crash simulation).
    var storage: StorageChoice = .system
    /// The wall clock. Only tests change it (time-based retention without sleeping).
    var clock: ClockChoice = .system
    /// How long a failed background job (an index file, a checkpoint) waits before it is tried
    /// again. Only tests change it.
    var maintenanceRetryDelay: Duration = .seconds(1)
    /// Where the store logs (swift-log). Default: nowhere. The store logs at `debug` what it
    /// does on the ordinary path, at `notice` what an operator should know (recovery cut a torn
    /// tail, an index file was rebuilt, compaction gave space back), at `warning` a background
    /// job that failed and will be retried, at `error` a failed sync (the store stops taking
    /// writes). Every line carries `annals.store` (the store directory); see the README's
    /// table of metadata keys. The store never bootstraps the logging system.
    public var logger = Logger(label: "annals", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Where the store's metrics go (swift-metrics; names and units in the README's table).
    /// Default nil: the factory the app bootstrapped (`MetricsSystem.bootstrap`), which records
    /// nothing until it does.
    public var metricsFactory: (any MetricsFactory)?
    /// Where the store's spans go (swift-distributed-tracing): `annals.append` per append call,
    /// and the layers' `annals.command` and `annals.projection.apply`. Default nil: the tracer
    /// the app bootstrapped (`InstrumentationSystem.bootstrap`) when the store opens; a no-op
    /// tracer until it does.
    public var tracer: (any Tracer)?

    /// Options; each defaults as its property says.
    public init(
        durability: Durability = .fsyncBeforeAck,
        segmentSizeBytes: Int = 64 << 20,
        createIfMissing: Bool = true,
        readOnly: Bool = false,
        compression: Compression = .lz4
    ) {
        self.compression = compression
        self.durability = durability
        self.segmentSizeBytes = segmentSizeBytes
        self.createIfMissing = createIfMissing
        self.readOnly = readOnly
    }

    func validate() throws(OpenError) {
        guard segmentSizeBytes >= StoreLimits.minimumSegmentSizeBytes,
              segmentSizeBytes <= StoreLimits.maximumSegmentSizeBytes,
              segmentSizeBytes % 4096 == 0
        else {
            throw .invalidOptions(
                "segmentSizeBytes \(segmentSizeBytes) must be a multiple of 4096 between "
                    + "\(StoreLimits.minimumSegmentSizeBytes) and \(StoreLimits.maximumSegmentSizeBytes)")
        }
        if case .periodic(let interval) = durability, interval <= .zero {
            throw .invalidOptions("periodic durability needs a positive interval")
        }
    }
}

/// What recovery found and did when the store was opened.
public struct RecoveryReport: Sendable, Hashable {
    /// True when a readable checkpoint let recovery skip verifying the data before it.
    public var usedCheckpoint = false
    /// True when the store had been closed cleanly (nothing to scan).
    public var cleanShutdown = false
    /// Bytes of log verified frame by frame (the tail after the checkpoint).
    public var scannedBytes = 0
    /// Bytes of a torn tail (an append that never completed) that were cut and zeroed. In a
    /// read-only open nothing is cut: this says how much would be.
    public var truncatedBytes = 0
    /// Where the cut was made, with why the bytes there were not a valid frame.
    public var truncation: CorruptionError?
    /// Damage in the last segment: bytes before the end that the checkpoint or the durable mark
    /// vouches for that are not valid frames. A read-only open reads the log up to it; a
    /// writable open refuses the store instead (``OpenError/corrupt(_:)``) and cuts nothing,
    /// unless ``StoreOptions/discardDamagedTail`` asked it to cut the log there (then
    /// ``truncatedBytes`` says how much went).
    public var damage: CorruptionError?
    /// Index files that were missing or failed a check and were rebuilt from the log.
    public var rebuiltIndexes: [String] = []
    /// Temporary files left by an interrupted operation, removed.
    public var removedTemporaryFiles: [String] = []
    /// Segment files left over by a compaction interrupted after its output was in place
    /// (their events are in the compacted file that replaced them), deleted.
    public var removedSupersededFiles: [String] = []
    /// Anything else worth knowing, e.g. an unreadable checkpoint that forced a full scan.
    public var warnings: [String] = []
}
