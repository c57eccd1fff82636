import AnnalsStorage
import CLMDB
import CSQLite
import Foundation

/// An embedded store a user would pick instead of Annals, driven with the same events and
/// transactions. Each append is one transaction; durable means an fsync per transaction.
protocol PeerStore: AnyObject {
    static var system: String { get }
    /// One transaction holding `events` (stream, revision, event), in order.
    func append(_ events: [(stream: String, revision: UInt64, event: EventData)])
    /// Reads every event in position order, touching every payload; returns (events, payload bytes).
    func replay() -> (events: Int, bytes: Int)
    /// Reads one stream in revision order, touching every payload; returns its event count.
    func readStream(_ stream: String) -> Int
    func close()
}

/// SQLite in WAL mode: an events table keyed by global position and a unique (stream,
/// revision) index. `synchronous=FULL` when durable, `OFF` when not.
final class SQLitePeer: PeerStore {
    static let system = "sqlite"
    private var db: OpaquePointer?
    private var insert: OpaquePointer?
    private var position: Int64 = 0

    init(path: String, durable: Bool) {
        try? FileManager.default.removeItem(atPath: path)
        check(sqlite3_open(path, &db), "open")
        execute("PRAGMA journal_mode=WAL")
        execute("PRAGMA synchronous=\(durable ? "FULL" : "OFF")")
        execute("""
            CREATE TABLE events(position INTEGER PRIMARY KEY, stream TEXT NOT NULL, revision INTEGER NOT NULL,
                id BLOB NOT NULL, type TEXT NOT NULL, timestamp INTEGER NOT NULL, metadata BLOB, payload BLOB)
            """)
        execute("CREATE UNIQUE INDEX events_stream_revision ON events(stream, revision)")
        check(sqlite3_prepare_v2(db, "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", -1, &insert, nil), "prepare")
    }

    func append(_ events: [(stream: String, revision: UInt64, event: EventData)]) {
        execute("BEGIN")
        let transient = annals_sqlite_transient()
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        for (stream, revision, event) in events {
            sqlite3_bind_int64(insert, 1, position)
            sqlite3_bind_text(insert, 2, stream, -1, transient)
            sqlite3_bind_int64(insert, 3, Int64(revision))
            withUnsafeBytes(of: UUID().uuid) { _ = sqlite3_bind_blob(insert, 4, $0.baseAddress, 16, transient) }
            sqlite3_bind_text(insert, 5, event.type, -1, transient)
            sqlite3_bind_int64(insert, 6, now)
            event.metadata.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 7, $0.baseAddress, Int32($0.count), transient) }
            event.payload.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 8, $0.baseAddress, Int32($0.count), transient) }
            check(sqlite3_step(insert), "insert", expect: SQLITE_DONE)
            sqlite3_reset(insert)
            position += 1
        }
        execute("COMMIT")
    }

    func replay() -> (events: Int, bytes: Int) {
        var statement: OpaquePointer?
        check(sqlite3_prepare_v2(db, "SELECT position, stream, revision, id, type, timestamp, metadata, payload FROM events ORDER BY position",
                                 -1, &statement, nil), "prepare")
        defer { sqlite3_finalize(statement) }
        var count = 0, bytes = 0, touched = 0
        while sqlite3_step(statement) == SQLITE_ROW {
            count += 1
            let length = Int(sqlite3_column_bytes(statement, 7))
            if let payload = sqlite3_column_blob(statement, 7) { touched &+= Int(payload.load(as: UInt8.self)) }
            _ = sqlite3_column_text(statement, 1)
            bytes += length
        }
        if touched == -1 { print("") }
        return (count, bytes)
    }

    private var streamQuery: OpaquePointer?

    func readStream(_ stream: String) -> Int {
        if streamQuery == nil {
            check(sqlite3_prepare_v2(db, "SELECT position, revision, id, type, timestamp, metadata, payload FROM events WHERE stream = ?1 ORDER BY revision",
                                     -1, &streamQuery, nil), "prepare")
        }
        sqlite3_bind_text(streamQuery, 1, stream, -1, annals_sqlite_transient())
        defer { sqlite3_reset(streamQuery) }
        var count = 0, touched = 0
        while sqlite3_step(streamQuery) == SQLITE_ROW {
            count += 1
            if let payload = sqlite3_column_blob(streamQuery, 6) { touched &+= Int(payload.load(as: UInt8.self)) }
        }
        if touched == -1 { print("") }
        return count
    }

    func close() {
        sqlite3_finalize(insert)
        sqlite3_finalize(streamQuery)
        sqlite3_close(db)
    }

    private func execute(_ sql: String) { check(sqlite3_exec(db, sql, nil, nil, nil), sql) }

    private func check(_ code: Int32, _ what: String, expect: Int32 = SQLITE_OK) {
        precondition(code == expect, "sqlite \(what): \(String(cString: sqlite3_errmsg(db)))")
    }
}

/// LMDB: events by position (integer keys) plus a (stream, revision) → position index, both
/// written in one transaction. Default sync when durable, `MDB_NOSYNC` when not.
final class LMDBPeer: PeerStore {
    static let system = "lmdb"
    private var environment: OpaquePointer?
    private var events: MDB_dbi = 0
    private var streams: MDB_dbi = 0
    private var position: UInt64 = 0

    init(path: String, durable: Bool, mapSizeBytes: Int) {
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        check(mdb_env_create(&environment), "env_create")
        check(mdb_env_set_mapsize(environment, mapSizeBytes), "set_mapsize")
        check(mdb_env_set_maxdbs(environment, 2), "set_maxdbs")
        check(mdb_env_open(environment, path, UInt32(durable ? 0 : MDB_NOSYNC), 0o644), "env_open")
        var transaction: OpaquePointer?
        check(mdb_txn_begin(environment, nil, 0, &transaction), "txn_begin")
        check(mdb_dbi_open(transaction, "events", UInt32(MDB_CREATE | MDB_INTEGERKEY), &events), "dbi events")
        check(mdb_dbi_open(transaction, "streams", UInt32(MDB_CREATE), &streams), "dbi streams")
        check(mdb_txn_commit(transaction), "commit")
    }

    func append(_ batch: [(stream: String, revision: UInt64, event: EventData)]) {
        var transaction: OpaquePointer?
        check(mdb_txn_begin(environment, nil, 0, &transaction), "txn_begin")
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        var value: [UInt8] = []
        for (stream, revision, event) in batch {
            value.removeAll(keepingCapacity: true)
            let name = Array(stream.utf8)
            Self.append(UInt16(name.count), to: &value)
            value += name
            Self.append(revision, to: &value)
            withUnsafeBytes(of: UUID().uuid) { value += $0 }
            let type = Array(event.type.utf8)
            Self.append(UInt16(type.count), to: &value)
            value += type
            Self.append(now, to: &value)
            Self.append(UInt32(event.metadata.count), to: &value)
            value += event.metadata
            Self.append(UInt32(event.payload.count), to: &value)
            value += event.payload
            var key = position
            withUnsafeMutableBytes(of: &key) { keyBytes in
                value.withUnsafeMutableBytes { valueBytes in
                    var k = MDB_val(mv_size: 8, mv_data: keyBytes.baseAddress)
                    var v = MDB_val(mv_size: valueBytes.count, mv_data: valueBytes.baseAddress)
                    check(mdb_put(transaction, events, &k, &v, UInt32(MDB_APPEND)), "put event")
                }
            }
            var indexKey = name
            Self.append(revision.bigEndian, to: &indexKey)
            var target = position
            indexKey.withUnsafeMutableBytes { keyBytes in
                withUnsafeMutableBytes(of: &target) { valueBytes in
                    var k = MDB_val(mv_size: keyBytes.count, mv_data: keyBytes.baseAddress)
                    var v = MDB_val(mv_size: 8, mv_data: valueBytes.baseAddress)
                    check(mdb_put(transaction, streams, &k, &v, 0), "put index")
                }
            }
            position += 1
        }
        check(mdb_txn_commit(transaction), "commit")
    }

    func replay() -> (events: Int, bytes: Int) {
        var transaction: OpaquePointer?
        check(mdb_txn_begin(environment, nil, UInt32(MDB_RDONLY), &transaction), "txn_begin")
        defer { mdb_txn_abort(transaction) }
        var cursor: OpaquePointer?
        check(mdb_cursor_open(transaction, events, &cursor), "cursor")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val(), value = MDB_val()
        var count = 0, bytes = 0, touched = 0
        var operation = MDB_FIRST
        while mdb_cursor_get(cursor, &key, &value, operation) == 0 {
            operation = MDB_NEXT
            count += 1
            let (payload, length) = Self.payload(of: value)
            touched &+= Int(payload.load(as: UInt8.self))
            bytes += length
        }
        if touched == -1 { print("") }
        return (count, bytes)
    }

    func readStream(_ stream: String) -> Int {
        var transaction: OpaquePointer?
        check(mdb_txn_begin(environment, nil, UInt32(MDB_RDONLY), &transaction), "txn_begin")
        defer { mdb_txn_abort(transaction) }
        var cursor: OpaquePointer?
        check(mdb_cursor_open(transaction, streams, &cursor), "cursor")
        defer { mdb_cursor_close(cursor) }
        var prefix = Array(stream.utf8)
        let nameBytes = prefix.count
        Self.append(UInt64(0), to: &prefix)
        var count = 0, touched = 0
        prefix.withUnsafeMutableBytes { start in
            var key = MDB_val(mv_size: start.count, mv_data: start.baseAddress)
            var value = MDB_val()
            var operation = MDB_SET_RANGE
            while mdb_cursor_get(cursor, &key, &value, operation) == 0 {
                operation = MDB_NEXT
                guard key.mv_size == nameBytes + 8,
                      memcmp(key.mv_data!, start.baseAddress!, nameBytes) == 0 else { break }
                var eventKey = MDB_val(mv_size: 8, mv_data: value.mv_data)
                var event = MDB_val()
                check(mdb_get(transaction, events, &eventKey, &event), "get event")
                touched &+= Int(Self.payload(of: event).pointer.load(as: UInt8.self))
                count += 1
            }
        }
        if touched == -1 { print("") }
        return count
    }

    func close() { mdb_env_close(environment) }

    private static func payload(of value: MDB_val) -> (pointer: UnsafeRawPointer, length: Int) {
        let bytes = UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
        var offset = 2 + Int(bytes.loadUnaligned(as: UInt16.self)) + 8 + 16
        offset += 2 + Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)) + 8
        offset += 4 + Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        return (bytes.baseAddress! + offset + 4, length)
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    private func check(_ code: Int32, _ what: String) {
        precondition(code == 0, "lmdb \(what): \(String(cString: mdb_strerror(code)))")
    }
}
