import AnnalsStorage
import AnnalsTestSupport
import CSQLite
import Foundation

/// Queries by tag and type, and conditional appends, beside SQLite (`make bench`: 1M events;
/// `--full`: 10M too). The same realistic events in 10-event appends of one stream (a
/// command's outcome; every frame a query reads is verified whole, so frame size matters), each
/// tagged `member:K` with K chosen so a member has about 100 events, and one event in
/// `events / 100` of the rare type `AuditFlagged`: a query for one member or for the rare type
/// returns about 100 events at every size. SQLite gets an `events` table with an index on
/// `type` and a `tags(tag, position)` table indexed by tag, written in the same transactions.
///
/// Measured: reading the events of one tag (p50, p99 over random members) and of the rare
/// type, every payload touched; single-event appends to random members, unconditional and
/// conditional on "no event of this member after the position I read" (no sync: the check's
/// own cost; durable appends add the same fsync to both), and index bytes per event.
struct QueryWorkload {
    let directory: String
    let events: Int
    let pool: [(stream: String, event: EventData)]

    struct Figures {
        var events = 0
        var tagRead: [Double] = []
        var rareTypeRead: [Double] = []
        var unconditionalPerSecond = 0.0
        var conditionalPerSecond = 0.0
        var indexBytesPerEvent = 0.0
    }

    static let rareType = "AuditFlagged"
    /// Events per append (one frame).
    static let appendSize = 10
    var members: Int { events / 100 }

    func tagged(_ index: Int, random: inout SeededGenerator) -> EventData {
        var event = pool[index % pool.count].event
        event.tags = ["member:\(random.next() % UInt64(members))"]
        if index % (events / 100) == events / 200 { event.type = Self.rareType }
        return event
    }

    func runAnnals() async throws -> Figures {
        let path = directory + "/queries-\(events)"
        try? FileManager.default.removeItem(atPath: path)
        let store = try EventStore.open(at: path, options: StoreOptions(durability: .none))
        var random = SeededGenerator(seed: 5)
        for batch in 0..<(events / Self.appendSize) {
            let items = (0..<Self.appendSize).map { tagged(batch * Self.appendSize + $0, random: &random) }
            _ = try await store.append(items, to: "order-\(batch % 10_000)")
        }
        try await store.close()
        let reopened = try EventStore.open(at: path, options: StoreOptions(durability: .none))
        var figures = Figures()
        figures.events = events
        let indexBytes = try FileManager.default.contentsOfDirectory(atPath: path + "/segments").filter { $0.hasSuffix(".idx") }
            .reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: path + "/segments/" + $1)[.size] as? Int) ?? 0) }
        figures.indexBytesPerEvent = Double(indexBytes) / Double(events)
        func read(_ query: EventQuery) throws -> Int {
            var cursor = reopened.read(matching: query).makeCursor()
            var count = 0, touched = 0
            while let event = try cursor.next() {
                count += 1
                touched &+= try event.withPayloadBytes { Int($0.first ?? 0) }
            }
            if touched == -1 { Swift.print("") }
            return count
        }
        for sample in 0..<2_200 {
            let query = EventQuery(tags: ["member:\(random.next() % UInt64(members))"])
            let started = ContinuousClock.now
            let count = try read(query)
            if sample >= 200 { figures.tagRead.append(Self.seconds(since: started)) }
            guard count > 0 else { throw BenchmarkFailure("a member without events") }
        }
        for sample in 0..<220 {
            let started = ContinuousClock.now
            let count = try read(EventQuery(types: [Self.rareType]))
            if sample >= 20 { figures.rareTypeRead.append(Self.seconds(since: started)) }
            guard count == 100 else { throw BenchmarkFailure("rare type: \(count) events") }
        }
        // Appends: unconditional, then conditional on the member's events, interleaved in rounds.
        var unconditional = 0.0, conditional = 0.0
        for _ in 0..<5 {
            unconditional += try await appendRate(reopened, random: &random, conditional: false)
            conditional += try await appendRate(reopened, random: &random, conditional: true)
        }
        figures.unconditionalPerSecond = unconditional / 5
        figures.conditionalPerSecond = conditional / 5
        try await reopened.close()
        try? FileManager.default.removeItem(atPath: path)
        return figures
    }

    private func appendRate(_ store: EventStore, random: inout SeededGenerator, conditional: Bool) async throws -> Double {
        let count = 4_000
        var work: [(EventData, EventQuery)] = []
        for index in 0..<count {
            let member = random.next() % UInt64(members)
            var event = pool[index % pool.count].event
            event.tags = ["member:\(member)"]
            work.append((event, EventQuery(tags: ["member:\(member)"])))
        }
        let started = ContinuousClock.now
        for (index, (event, query)) in work.enumerated() {
            if conditional {
                // The decision read the store at its end; nothing of this member came since.
                let condition = AppendCondition(failIfEventsMatch: query, after: store.endPosition - 1)
                _ = try await store.append([event], to: "member-\(index % 1000)", condition: condition)
            } else {
                _ = try await store.append([event], to: "member-\(index % 1000)")
            }
        }
        return Double(count) / Self.seconds(since: started)
    }

    func runSQLite() throws -> Figures {
        let path = directory + "/queries-\(events).sqlite"
        let sqlite = SQLiteQueries(path: path)
        defer {
            sqlite.close()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
        var random = SeededGenerator(seed: 5)
        for batch in 0..<(events / Self.appendSize) {
            sqlite.append((0..<Self.appendSize).map { tagged(batch * Self.appendSize + $0, random: &random) }, stream: "order-\(batch % 10_000)")
        }
        var figures = Figures()
        figures.events = events
        for sample in 0..<2_200 {
            let tag = "member:\(random.next() % UInt64(members))"
            let started = ContinuousClock.now
            let count = sqlite.readTag(tag)
            if sample >= 200 { figures.tagRead.append(Self.seconds(since: started)) }
            guard count > 0 else { throw BenchmarkFailure("sqlite: a member without events") }
        }
        for sample in 0..<220 {
            let started = ContinuousClock.now
            let count = sqlite.readType(Self.rareType)
            if sample >= 20 { figures.rareTypeRead.append(Self.seconds(since: started)) }
            guard count == 100 else { throw BenchmarkFailure("sqlite rare type: \(count) events") }
        }
        var unconditional = 0.0, conditional = 0.0
        for _ in 0..<5 {
            for isConditional in [false, true] {
                let count = 4_000
                let started = ContinuousClock.now
                for index in 0..<count {
                    var event = pool[index % pool.count].event
                    let tag = "member:\(random.next() % UInt64(members))"
                    event.tags = [tag]
                    sqlite.appendOne(event, stream: "member-\(index % 1000)", conditionTag: isConditional ? tag : nil)
                }
                let rate = Double(count) / Self.seconds(since: started)
                if isConditional { conditional += rate } else { unconditional += rate }
            }
        }
        figures.unconditionalPerSecond = unconditional / 5
        figures.conditionalPerSecond = conditional / 5
        let pages = sqlite.indexBytes()
        figures.indexBytesPerEvent = Double(pages) / Double(events)
        return figures
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func print(annals: Figures, sqlite: Figures) {
        func us(_ values: [Double], _ fraction: Double) -> String { String(format: "%.1f", Stopwatch.percentile(values, fraction) * 1e6) }
        func row(_ name: String, _ a: [Double], _ s: [Double]) {
            let ratio = Stopwatch.percentile(s, 0.5) / Stopwatch.percentile(a, 0.5)
            Swift.print("  \(name.padding(toLength: 38, withPad: " ", startingAt: 0)) annals p50 \(us(a, 0.5)) / p99 \(us(a, 0.99)) µs"
                + "   sqlite p50 \(us(s, 0.5)) / p99 \(us(s, 0.99)) µs   annals \(String(format: "%.1f", ratio))× faster (p50)")
        }
        Swift.print("queries at \(annals.events / 1_000_000)M events (\(appendSize)-event appends, one member tag per event, no sync):")
        row("read the ~100 events of one tag", annals.tagRead, sqlite.tagRead)
        row("read the 100 events of a rare type", annals.rareTypeRead, sqlite.rareTypeRead)
        let ratio = annals.conditionalPerSecond / annals.unconditionalPerSecond
        Swift.print("  single-event appends, no sync: annals \(Int(annals.unconditionalPerSecond))/s, conditional \(Int(annals.conditionalPerSecond))/s "
            + "= \(String(format: "%.2f", ratio))× (target ≥ 0.80: \(ratio >= 0.8 ? "met" : "missed")); sqlite \(Int(sqlite.unconditionalPerSecond))/s, "
            + "conditional \(Int(sqlite.conditionalPerSecond))/s")
        Swift.print("  index bytes per event: annals \(String(format: "%.1f", annals.indexBytesPerEvent)) (stream and query entries), "
            + "sqlite \(String(format: "%.1f", sqlite.indexBytesPerEvent)) (indexes and the tags table)")
    }
}

/// SQLite with the tables a user would add for the same queries: an index on `type`, and a
/// `tags(tag, position)` table indexed by tag. `synchronous=OFF`, like the Annals side.
final class SQLiteQueries {
    private var db: OpaquePointer?
    private var insertEvent: OpaquePointer?
    private var insertTag: OpaquePointer?
    private var byTag: OpaquePointer?
    private var byType: OpaquePointer?
    private var conflict: OpaquePointer?
    private var position: Int64 = 0
    private var revisions: [String: Int64] = [:]

    init(path: String) {
        try? FileManager.default.removeItem(atPath: path)
        check(sqlite3_open(path, &db), "open")
        execute("PRAGMA journal_mode=WAL")
        execute("PRAGMA synchronous=OFF")
        execute("""
            CREATE TABLE events(position INTEGER PRIMARY KEY, stream TEXT NOT NULL, revision INTEGER NOT NULL,
                id BLOB NOT NULL, type TEXT NOT NULL, timestamp INTEGER NOT NULL, metadata BLOB, payload BLOB)
            """)
        execute("CREATE UNIQUE INDEX events_stream_revision ON events(stream, revision)")
        execute("CREATE INDEX events_type ON events(type, position)")
        execute("CREATE TABLE tags(tag TEXT NOT NULL, position INTEGER NOT NULL)")
        execute("CREATE INDEX tags_tag ON tags(tag, position)")
        prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", &insertEvent)
        prepare("INSERT INTO tags VALUES (?1, ?2)", &insertTag)
        prepare("SELECT e.position, e.stream, e.revision, e.id, e.type, e.timestamp, e.metadata, e.payload FROM tags t JOIN events e ON e.position = t.position WHERE t.tag = ?1 ORDER BY t.position", &byTag)
        prepare("SELECT position, stream, revision, id, type, timestamp, metadata, payload FROM events WHERE type = ?1 ORDER BY position", &byType)
        prepare("SELECT position FROM tags WHERE tag = ?1 AND position > ?2 LIMIT 1", &conflict)
    }

    private func insert(_ event: EventData, stream: String) {
        let transient = annals_sqlite_transient()
        let revision = revisions[stream, default: 0]
        revisions[stream] = revision + 1
        sqlite3_bind_int64(insertEvent, 1, position)
        sqlite3_bind_text(insertEvent, 2, stream, -1, transient)
        sqlite3_bind_int64(insertEvent, 3, revision)
        withUnsafeBytes(of: UUID().uuid) { _ = sqlite3_bind_blob(insertEvent, 4, $0.baseAddress, 16, transient) }
        sqlite3_bind_text(insertEvent, 5, event.type, -1, transient)
        sqlite3_bind_int64(insertEvent, 6, Int64(Date().timeIntervalSince1970 * 1e9))
        event.metadata.withUnsafeBytes { _ = sqlite3_bind_blob(insertEvent, 7, $0.baseAddress, Int32($0.count), transient) }
        event.payload.withUnsafeBytes { _ = sqlite3_bind_blob(insertEvent, 8, $0.baseAddress, Int32($0.count), transient) }
        check(sqlite3_step(insertEvent), "insert", expect: SQLITE_DONE)
        sqlite3_reset(insertEvent)
        for tag in event.tags {
            sqlite3_bind_text(insertTag, 1, tag, -1, transient)
            sqlite3_bind_int64(insertTag, 2, position)
            check(sqlite3_step(insertTag), "insert tag", expect: SQLITE_DONE)
            sqlite3_reset(insertTag)
        }
        position += 1
    }

    func append(_ events: [EventData], stream: String) {
        execute("BEGIN")
        for event in events { insert(event, stream: stream) }
        execute("COMMIT")
    }

    /// One event in one transaction; with `conditionTag`, refused (rolled back) when an event
    /// with that tag was stored after the position read before it (here: the last one).
    func appendOne(_ event: EventData, stream: String, conditionTag: String?) {
        let readAt = position - 1
        execute("BEGIN IMMEDIATE")
        if let conditionTag {
            sqlite3_bind_text(conflict, 1, conditionTag, -1, annals_sqlite_transient())
            sqlite3_bind_int64(conflict, 2, readAt)
            let found = sqlite3_step(conflict) == SQLITE_ROW
            sqlite3_reset(conflict)
            if found {
                execute("ROLLBACK")
                return
            }
        }
        insert(event, stream: stream)
        execute("COMMIT")
    }

    private func read(_ statement: OpaquePointer?, _ value: String) -> Int {
        sqlite3_bind_text(statement, 1, value, -1, annals_sqlite_transient())
        defer { sqlite3_reset(statement) }
        var count = 0, touched = 0
        while sqlite3_step(statement) == SQLITE_ROW {
            count += 1
            if let payload = sqlite3_column_blob(statement, 7) { touched &+= Int(payload.load(as: UInt8.self)) }
        }
        if touched == -1 { print("") }
        return count
    }

    func readTag(_ tag: String) -> Int { read(byTag, tag) }
    func readType(_ type: String) -> Int { read(byType, type) }

    /// Bytes of the indexes and the tags table (dbstat is not always compiled in: pages
    /// counted through `pragma_index_info`-free page counts of each b-tree).
    func indexBytes() -> Int {
        var statement: OpaquePointer?
        let sql = "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('events_stream_revision', 'events_type', 'tags', 'tags_tag')"
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else { return 0 }
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW else { return 0 }
        return Int(sqlite3_column_int64(statement, 0))
    }

    func close() {
        for statement in [insertEvent, insertTag, byTag, byType, conflict] { sqlite3_finalize(statement) }
        sqlite3_close(db)
    }

    private func prepare(_ sql: String, _ statement: inout OpaquePointer?) {
        check(sqlite3_prepare_v2(db, sql, -1, &statement, nil), "prepare \(sql)")
    }

    private func execute(_ sql: String) { check(sqlite3_exec(db, sql, nil, nil, nil), sql) }

    private func check(_ code: Int32, _ what: String, expect: Int32 = SQLITE_OK) {
        precondition(code == expect, "sqlite \(what): \(String(cString: sqlite3_errmsg(db)))")
    }
}
