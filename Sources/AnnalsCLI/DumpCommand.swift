import AnnalsStorage
import ArgumentParser
import Foundation

/// `annals dump STORE`: prints events as JSON Lines.
struct DumpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Print events as JSON Lines, in global position order.",
        discussion: """
            Each line: {"position", "stream", "revision", "id", "type", "tags" (when the event \
            has any), "timestamp" (ISO 8601, UTC, nanoseconds), "metadata", "data"}. --type and \
            --tag print the events of any of the types carrying all of the tags, through the \
            query index. Metadata and data bytes that are one JSON \
            value without line breaks are printed as that JSON, byte for byte; other bytes are \
            printed base64-encoded as "metadataBase64"/"dataBase64"; empty ones are left out. \
            Opens the store read-only, so it works while a writer is running. When acknowledged \
            data in the last segment is damaged, prints the events before the damage, then the \
            damage (file, offset, what) on standard error, and exits 1.
            """
    )

    @Argument(help: "Store directory.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Option(help: "Print only this stream, in revision order.")
    var stream: String?

    @Flag(help: "Newest first.")
    var backwards = false

    @Option(help: "First global position to print ($all), or first revision (--stream).")
    var from: UInt64?

    @Option(help: "Print at most this many events.")
    var limit: Int = .max

    @Option(help: ArgumentHelp("Print only events committed at or before this time ($all, forwards): the log as it was then.",
                               valueName: "ISO-8601-UTC"))
    var untilTime: String?

    @Flag(help: "Leave out events of system streams (names starting with \"$\").")
    var noSystem = false

    @Option(name: .customLong("type"), help: ArgumentHelp("Print only events of this type (repeatable: any of them).", valueName: "TYPE"))
    var types: [String] = []

    @Option(name: .customLong("tag"), help: ArgumentHelp("Print only events carrying this tag (repeatable: all of them).", valueName: "TAG"))
    var tags: [String] = []

    @Flag(help: "After what is committed, print new commits as they come ($all, forwards), until interrupted.")
    var follow = false

    func validate() throws {
        if let untilTime {
            guard Timestamp(iso8601: untilTime) != nil else {
                throw ValidationError("--until-time: \(untilTime) is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[.fraction]Z")
            }
            guard stream == nil, !backwards else { throw ValidationError("--until-time reads $all forwards: no --stream, no --backwards") }
        }
        if !types.isEmpty || !tags.isEmpty {
            guard stream == nil, untilTime == nil, !follow else {
                throw ValidationError("--type and --tag read across streams: no --stream, --until-time or --follow")
            }
        }
        if follow {
            guard stream == nil, !backwards, untilTime == nil, limit == .max else {
                throw ValidationError("--follow reads $all forwards: no --stream, --backwards, --until-time or --limit")
            }
        }
    }

    func run() async throws {
        let store: EventStore
        do { store = try EventStore.open(at: self.store, options: keys.applied(to: StoreOptions(readOnly: true))) } catch { throw fail(error) }
        var output = OutputBuffer()
        do {
            let query = EventQuery(types: types, tags: tags)
            switch (stream, backwards) {
            case (nil, false) where !query.matchesEverything:
                try print(store.read(matching: query, from: from ?? 0, limit: limit).makeCursor(), to: &output)
            case (nil, true) where !query.matchesEverything:
                try print(store.readBackwards(matching: query, from: from, limit: limit).makeCursor(), to: &output)
            case (let name?, false): try print(store.read(name, from: from ?? 0, limit: limit).makeCursor(), to: &output)
            case (let name?, true): try print(store.readBackwards(name, from: from, limit: limit).makeCursor(), to: &output)
            case (nil, false):
                // Timestamps never decrease along positions: the first later one ends the dump.
                let until = untilTime.flatMap { Timestamp(iso8601: $0) }
                try print(store.readAll(from: from ?? 0, limit: limit).makeCursor(), until: until, to: &output)
            case (nil, true): try print(store.readAllBackwards(from: from, limit: limit).makeCursor(), to: &output)
            }
        } catch {
            output.flush()
            throw fail(error)
        }
        output.flush()
        if let damage = store.recoveryReport.damage { throw fail(OpenError.corrupt(damage)) }
        if follow { try await follow(after: store.endPosition, output: &output) }
    }

    /// Prints what other processes commit from `position` on: a read-only open sees the log as
    /// it was when it opened, so the store is opened again a few times a second.
    private func follow(after position: UInt64, output: inout OutputBuffer) async throws {
        var next = position
        while !Task.isCancelled {
            try await Task.sleep(for: .milliseconds(250))
            let store: EventStore
            do { store = try EventStore.open(at: self.store, options: keys.applied(to: StoreOptions(readOnly: true))) } catch { throw fail(error) }
            guard store.endPosition > next else { continue }
            do { try print(store.readAll(from: next).makeCursor(), to: &output) } catch { throw fail(error) }
            next = store.endPosition
            output.flush()
        }
    }

    private func print<Cursor: EventCursor>(
        _ cursor: Cursor, until: Timestamp? = nil, to output: inout OutputBuffer
    ) throws(ReadError) {
        var cursor = cursor
        while let event = try cursor.next() {
            if let until, event.timestamp > until { break }
            if noSystem, event.stream.utf8.first == UInt8(ascii: "$") { continue }
            try EventLine.write(event, to: &output)
        }
    }
}

/// The JSON Lines form of a recorded event, shared by `dump` and its tests.
enum EventLine {
    /// - Throws: ``ReadError/corrupt(_:)`` when a compressed body does not decode; nothing of
    ///   the event is written then.
    static func write(_ event: RecordedEvent, to output: inout OutputBuffer) throws(ReadError) {
        if event.isErased {
            write(event, metadata: UnsafeRawBufferPointer(start: nil, count: 0), payload: UnsafeRawBufferPointer(start: nil, count: 0),
                  erased: true, to: &output)
            return
        }
        try event.withBodyBytes { metadata, payload in write(event, metadata: metadata, payload: payload, erased: false, to: &output) }
    }

    private static func write(
        _ event: RecordedEvent, metadata: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, erased: Bool,
        to output: inout OutputBuffer
    ) {
        output.append("{\"position\":")
        output.appendNumber(event.position)
        output.append(",\"stream\":")
        output.appendJSONString(event.stream)
        output.append(",\"revision\":")
        output.appendNumber(event.revision)
        output.append(",\"id\":\"")
        output.append(event.id.uuidString.lowercased())
        output.append("\",\"type\":")
        output.appendJSONString(event.type)
        let tags = event.tags
        if !tags.isEmpty {
            output.append(",\"tags\":[")
            for (index, tag) in tags.enumerated() {
                if index > 0 { output.append(",") }
                output.appendJSONString(tag)
            }
            output.append("]")
        }
        output.append(",\"timestamp\":\"")
        output.append(event.timestamp.iso8601)
        output.append("\"")
        if erased { output.append(",\"erased\":true") }
        writeBytes(metadata, key: "metadata", to: &output)
        writeBytes(payload, key: "data", to: &output)
        output.append("}")
        output.endLine()
    }

    private static func writeBytes(_ bytes: UnsafeRawBufferPointer, key: String, to output: inout OutputBuffer) {
        guard !bytes.isEmpty else { return }
        if !bytes.contains(0x0A), !bytes.contains(0x0D), JSONScanner.isJSON(bytes) {
            output.append(",\"\(key)\":")
            output.append(bytes)
        } else {
            output.append(",\"\(key)Base64\":\"")
            output.append(Data(bytes).base64EncodedString())
            output.append("\"")
        }
    }
}
