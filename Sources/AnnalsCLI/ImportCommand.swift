import AnnalsStorage
import ArgumentParser
import Foundation

/// `annals import STORE`: appends JSON Lines from stdin.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Append events read as JSON Lines from standard input.",
        discussion: """
            One event per line: {"stream": "order-1", "type": "OrderPlaced", "data": {...}, \
            "metadata": {...}, "id": "UUID"}. "data" and "metadata" are any JSON value, stored \
            byte for byte as written; "dataBase64"/"metadataBase64" give raw bytes instead; \
            "tags" is an array of strings. "subject" names the event's data subject (e.g. \
            "customer-42"): its data and metadata are encrypted under that subject's key \
            (needs --key-file), which `annals forget` destroys. "position", "revision" and "timestamp" (as printed by `annals dump`) are accepted \
            and ignored: the store assigns them. "expectedRevision" (a number, or "any", \
            "noStream", "streamExists") makes the line's append conditional: a line that does \
            not match is reported with its line number and stops the import. \
            "appendCondition": {"failIfEventsMatch": [{"types": [...], "tags": [...]}, ...], \
            "after": N} makes the line its own append, which fails (reported with its line \
            number, stopping the import) when an event matching the query was stored after \
            position N (anywhere without "after"). Blank lines are skipped.

            Lines are committed in batches of up to --batch events; consecutive lines of the \
            same stream without an expectedRevision become one atomic frame (a line with one \
            starts a new frame). With --durability fsync, after each batch is \
            on disk the command prints `committed <last global position>`. With periodic or \
            none it prints that line once, after the final sync at the end. A bad line stops \
            the import with its line number; nothing from its batch is written.
            """
    )

    @Argument(help: "Store directory (created if missing).")
    var store: String

    @Option(help: "When a batch counts as committed: fsync (default), periodic or none.")
    var durability: Durability = .fsyncBeforeAck

    @Option(help: "Events per committed batch.")
    var batch: Int = 1000

    @Option(help: "Size of new segment files in bytes (multiple of 4096).")
    var segmentSizeBytes: Int = 64 << 20

    @Option(help: "Compression of the imported events: lz4 (default) or none.")
    var compression: Compression = .lz4

    @OptionGroup var keys: KeyFileOption

    @Flag(help: "Encrypt the body of every event (under the store's key unless it names a subject); stays on for the store. Needs --key-file.")
    var encryptAll = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard !encryptAll || keys.keyFile != nil else { throw ValidationError("--encrypt-all needs --key-file") }
    }

    func run() async throws {
        let store: EventStore
        do {
            store = try EventStore.open(at: self.store, options: keys.applied(to: StoreOptions(
                durability: durability, segmentSizeBytes: segmentSizeBytes, compression: compression), encryptEverything: encryptAll))
        } catch {
            throw fail(error)
        }
        var importer = Importer(store: store, batchSize: batch, printEveryCommit: durability == .fsyncBeforeAck)
        var lineNumber = 0
        var progress = Progress()
        do {
            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                if line.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" }) { continue }
                try await importer.add(line, lineNumber: lineNumber)
                progress.update("imported \(importer.committedEvents) events, line \(lineNumber)")
            }
            try await importer.commit()
            progress.finish()
            try await store.close()
            importer.printCommittedAfterClose()
        } catch {
            progress.finish()
            try? await store.close()
            throw fail(error)
        }
    }
}

/// Batches parsed lines and commits them.
struct Importer {
    struct LineError: Error, CustomStringConvertible {
        let line: Int
        let message: String
        var description: String { "line \(line): \(message)" }
    }

    let store: EventStore
    let batchSize: Int
    let printEveryCommit: Bool
    private var pending: [(stream: String, event: EventData, expected: ExpectedRevision?, line: Int)] = []
    private(set) var committedEvents = 0
    private var lastCommitted: UInt64?
    private var output = OutputBuffer()

    init(store: EventStore, batchSize: Int, printEveryCommit: Bool) {
        self.store = store
        self.batchSize = batchSize
        self.printEveryCommit = printEveryCommit
    }

    mutating func add(_ line: String, lineNumber: Int) async throws {
        let (stream, event, expected, condition) = try Self.parse(line, lineNumber: lineNumber)
        do { try store.validate([event], to: stream) } catch {
            throw LineError(line: lineNumber, message: error.description)
        }
        guard let condition else {
            pending.append((stream, event, expected, lineNumber))
            if pending.count >= batchSize { try await commit() }
            return
        }
        // A conditional line is its own append, after every line before it.
        try await commit()
        let result: AppendResult
        do {
            result = try await store.append([event], to: stream, expecting: expected ?? .any, condition: condition)
        } catch {
            throw LineError(line: lineNumber, message: "\(error) (the lines before it were committed; nothing from this line on)")
        }
        committedEvents += 1
        lastCommitted = result.lastPosition
        if printEveryCommit {
            output.append("committed \(result.lastPosition)")
            output.endLine()
            output.flush()
        }
    }

    /// Appends the pending lines: runs of one stream become one frame (split where a frame
    /// would exceed the store's limit).
    mutating func commit() async throws {
        guard !pending.isEmpty else { return }
        var appends: [StreamAppend] = []
        var lines: [ClosedRange<Int>] = []
        var runBytes = 0
        for item in pending {
            let eventBytes = EventStore.encodedSize(of: [item.event], to: item.stream)
            if item.expected == nil, let last = appends.last, last.stream == item.stream,
               runBytes + eventBytes - EventStore.encodedSize(of: [], to: item.stream) <= store.maximumAppendBytes {
                appends[appends.count - 1].events.append(item.event)
                lines[lines.count - 1] = lines[lines.count - 1].lowerBound...item.line
                runBytes += eventBytes - EventStore.encodedSize(of: [], to: item.stream)
            } else {
                appends.append(StreamAppend(stream: item.stream, events: [item.event], expected: item.expected ?? .any))
                lines.append(item.line...item.line)
                runBytes = eventBytes
            }
        }
        // Each append of several streams is atomic and fits one segment: a batch larger than
        // that is committed in parts.
        var results: [AppendResult] = []
        var start = 0
        while start < appends.count {
            var end = start
            var bytes = 0
            while end < appends.count {
                let size = EventStore.encodedSize(of: appends[end].events, to: appends[end].stream)
                guard end == start || bytes + size <= store.maximumAppendBytes else { break }
                bytes += size
                end += 1
            }
            let part = Array(appends[start..<end]), partLines = Array(lines[start..<end])
            let committed = start == 0 ? "nothing" : "lines \(lines[0].lowerBound)-\(lines[start - 1].upperBound) were committed; nothing"
            do { results += try await store.append(part) } catch {
                // A failed expectation names its own line; anything else names the batch.
                if case .wrongExpectedRevision(let stream, let expected, _) = error,
                   let index = part.firstIndex(where: { $0.stream == stream && $0.expected == expected && expected != .any }) {
                    throw LineError(line: partLines[index].lowerBound,
                                    message: "\(error) (\(committed) from lines \(partLines[0].lowerBound)-\(partLines[partLines.count - 1].upperBound) was written)")
                }
                throw LineError(line: partLines.first?.lowerBound ?? 0, message: "batch through line \(partLines.last?.upperBound ?? 0) failed: \(error)")
            }
            start = end
        }
        committedEvents += pending.count
        pending.removeAll(keepingCapacity: true)
        lastCommitted = results.last?.lastPosition
        if printEveryCommit, let lastCommitted {
            output.append("committed \(lastCommitted)")
            output.endLine()
            output.flush()
        }
    }

    mutating func printCommittedAfterClose() {
        guard !printEveryCommit, let lastCommitted else { return }
        output.append("committed \(lastCommitted)")
        output.endLine()
        output.flush()
    }

    static let knownKeys: Set<String> = [
        "stream", "type", "data", "metadata", "id", "dataBase64", "metadataBase64", "expectedRevision", "tags", "appendCondition",
        "subject", "position", "revision", "timestamp", "erased",
    ]

    /// `{"failIfEventsMatch": [{"types": [..], "tags": [..]}, ..], "after": N}` (`after` optional).
    static func appendCondition(_ raw: UnsafeRawBufferPointer, _ member: JSONScanner.Member, lineNumber: Int) throws -> AppendCondition {
        func bad(_ message: String) -> LineError {
            LineError(line: lineNumber, message: "\"appendCondition\" " + message)
        }
        guard member.kind == .object else { throw bad("must be an object") }
        var items: [EventQuery.Item]?
        var after: UInt64?
        for field in try JSONScanner.objectMembers(raw, member.range) {
            switch field.key {
            case "failIfEventsMatch":
                guard field.kind == .array else { throw bad("\"failIfEventsMatch\" must be an array of query items") }
                items = []
                for element in try JSONScanner.arrayElements(raw, field.range) {
                    guard element.kind == .object else { throw bad("query items must be objects with \"types\" and \"tags\"") }
                    var item = EventQuery.Item()
                    for part in try JSONScanner.objectMembers(raw, element.range) {
                        guard part.kind == .array, let strings = try JSONScanner.stringArray(raw, part.range) else {
                            throw bad("\"\(part.key)\" must be an array of strings")
                        }
                        switch part.key {
                        case "types": item.types = strings
                        case "tags": item.tags = strings
                        default: throw bad("unknown key \"\(part.key)\" in a query item")
                        }
                    }
                    items?.append(item)
                }
            case "after":
                guard field.kind == .number, let value = UInt64(String(decoding: raw[field.range], as: UTF8.self)) else {
                    throw bad("\"after\" must be a position (a whole number)")
                }
                after = value
            default:
                throw bad("unknown key \"\(field.key)\"")
            }
        }
        guard let items else { throw bad("needs \"failIfEventsMatch\"") }
        return AppendCondition(failIfEventsMatch: EventQuery(items), after: after)
    }

    static func parse(_ line: String, lineNumber: Int) throws -> (String, EventData, ExpectedRevision?, AppendCondition?) {
        var line = line
        return try line.withUTF8 { utf8 in
            let raw = UnsafeRawBufferPointer(utf8)
            let members: [JSONScanner.Member]
            do { members = try JSONScanner.objectMembers(raw) } catch {
                throw LineError(line: lineNumber, message: "invalid JSON: \(error)")
            }
            var fields: [String: JSONScanner.Member] = [:]
            for member in members {
                guard knownKeys.contains(member.key) else {
                    throw LineError(line: lineNumber, message: "unknown key \"\(member.key)\"")
                }
                guard fields[member.key] == nil else { throw LineError(line: lineNumber, message: "duplicate key \"\(member.key)\"") }
                fields[member.key] = member
            }
            func string(_ key: String, required: Bool) throws -> String? {
                guard let member = fields[key] else {
                    if required { throw LineError(line: lineNumber, message: "missing \"\(key)\"") }
                    return nil
                }
                guard member.kind == .string else { throw LineError(line: lineNumber, message: "\"\(key)\" must be a string") }
                return try JSONScanner.decodeString(raw, member.range)
            }
            func bytes(_ key: String, base64Key: String) throws -> [UInt8] {
                if let member = fields[key] {
                    guard fields[base64Key] == nil else {
                        throw LineError(line: lineNumber, message: "both \"\(key)\" and \"\(base64Key)\" given")
                    }
                    return Array(raw[member.range])
                }
                guard let encoded = try string(base64Key, required: false) else { return [] }
                guard let data = Data(base64Encoded: encoded) else {
                    throw LineError(line: lineNumber, message: "\"\(base64Key)\" is not valid base64")
                }
                return [UInt8](data)
            }
            let stream = try string("stream", required: true) ?? ""
            let type = try string("type", required: true) ?? ""
            var id: UUID?
            if let text = try string("id", required: false) {
                guard let parsed = UUID(uuidString: text) else { throw LineError(line: lineNumber, message: "\"id\" is not a UUID") }
                id = parsed
            }
            var expected: ExpectedRevision?
            if let member = fields["expectedRevision"] {
                switch member.kind {
                case .number:
                    guard let revision = UInt64(String(decoding: raw[member.range], as: UTF8.self)) else {
                        throw LineError(line: lineNumber, message: "\"expectedRevision\" must be a whole number or a keyword")
                    }
                    expected = .exact(revision)
                case .string:
                    switch try JSONScanner.decodeString(raw, member.range) {
                    case "any": expected = .any
                    case "noStream": expected = .noStream
                    case "streamExists": expected = .streamExists
                    default: throw LineError(line: lineNumber, message: "\"expectedRevision\" must be a number, \"any\", \"noStream\" or \"streamExists\"")
                    }
                default:
                    throw LineError(line: lineNumber, message: "\"expectedRevision\" must be a number, \"any\", \"noStream\" or \"streamExists\"")
                }
            }
            var tags: [String] = []
            if let member = fields["tags"] {
                guard member.kind == .array, let strings = try JSONScanner.stringArray(raw, member.range) else {
                    throw LineError(line: lineNumber, message: "\"tags\" must be an array of strings")
                }
                tags = strings
            }
            let subject = try string("subject", required: false)
            if fields["erased"] != nil {
                throw LineError(line: lineNumber, message: "an erased event (\"erased\") has no body to import")
            }
            let event = EventData(id: id, type: type, payload: try bytes("data", base64Key: "dataBase64"),
                                  metadata: try bytes("metadata", base64Key: "metadataBase64"), tags: tags, subject: subject)
            let condition = try fields["appendCondition"].map { member in try appendCondition(raw, member, lineNumber: lineNumber) }
            return (stream, event, expected, condition)
        }
    }
}
