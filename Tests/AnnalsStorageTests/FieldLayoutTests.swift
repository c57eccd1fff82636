import Foundation
import Testing
@testable import AnnalsStorage

/// `FieldLayout.swift` is `format-spec.md`'s field tables in code: for every table with fixed
/// offsets, the layout's `fields` are exactly the table's rows whose offset and size are plain
/// numbers (same names, same order, same offsets and sizes), fields whose size varies start
/// where the spec says, and every structure's fields follow each other without a gap and fill
/// its size.
@Suite struct FieldLayoutTests {
    /// A spec table and the layout that must match it.
    struct Table: Sendable, CustomTestStringConvertible {
        /// The start of the heading line of the section that holds the table.
        let heading: String
        /// Which table of its section (0: the first).
        let index: Int
        let layout: String
        let fields: [FieldSpec]
        /// "§3.2 table 1", for messages.
        var name: String { "§\(heading.drop { $0 == "#" || $0 == " " }.trimmingCharacters(in: ["."])) table \(index + 1)" }
        var testDescription: String { "\(name) (\(layout))" }
    }

    static let tables: [Table] = [
        Table(heading: "### 2.1", index: 0, layout: "SegmentHeaderLayout", fields: SegmentHeaderLayout.fields),
        Table(heading: "### 2.2", index: 0, layout: "DurableMarkLayout", fields: DurableMarkLayout.fields),
        Table(heading: "### 3.1", index: 0, layout: "FrameLayout", fields: FrameLayout.fields),
        Table(heading: "### 3.2", index: 0, layout: "RecordLayout", fields: RecordLayout.fields),
        Table(heading: "## 5.", index: 0, layout: "CheckpointLayout", fields: CheckpointLayout.fields),
        Table(heading: "### 7.2", index: 0, layout: "IndexHeaderLayout", fields: IndexHeaderLayout.fields),
        Table(heading: "### 7.2", index: 1, layout: "IndexEntryLayout", fields: IndexEntryLayout.fields),
        Table(heading: "### 3.2", index: 1, layout: "TagBlockLayout", fields: TagBlockLayout.fields),
        Table(heading: "## 1A.", index: 0, layout: "ArchiveManifestLayout", fields: ArchiveManifestLayout.fields),
        Table(heading: "## 1A.", index: 1, layout: "ArchiveMarkerLayout", fields: ArchiveMarkerLayout.fields),
        Table(heading: "### The `keys`", index: 0, layout: "KeyStoreHeaderLayout", fields: KeyStoreHeaderLayout.fields),
        Table(heading: "### The `keys`", index: 1, layout: "KeyStoreEntryLayout", fields: KeyStoreEntryLayout.fields),
    ]

    /// One row of a spec table, as written.
    struct Row {
        let offset: String
        let size: String
        let field: String

        /// The row as a fixed field, when its offset and size are plain numbers.
        var fixed: FieldSpec? {
            guard let offset = Int(offset), let size = Int(size) else { return nil }
            return FieldSpec(field, at: offset, size: size)
        }
    }

    static let specPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("format-spec.md").path

    /// The rows of the `index`th table with columns `offset | size | type | field | meaning`
    /// in the section whose heading line starts with `heading` (up to the next heading).
    static func rows(under heading: String, table index: Int) throws -> [Row] {
        let lines = try String(contentsOfFile: specPath, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        var inCode = false
        var inSection = false
        var tables: [[Row]] = []
        var inTable = false
        for line in lines {
            if line.hasPrefix("```") { inCode.toggle() }
            if !inCode, line.hasPrefix("#") {
                if inSection { break }
                inSection = line.hasPrefix(heading + " ")
                continue
            }
            guard inSection else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard line.hasPrefix("|"), cells.count >= 6 else {
                inTable = false
                continue
            }
            if cells[1...5] == ["offset", "size", "type", "field", "meaning"] {
                tables.append([])
                inTable = true
            } else if inTable, !cells[1].hasPrefix("---") {
                tables[tables.count - 1].append(Row(offset: cells[1], size: cells[2], field: cells[4]))
            }
        }
        return try #require(tables.indices.contains(index) ? tables[index] : nil,
                            "format-spec.md has no table \(index + 1) with offset/size/type/field/meaning columns under \(heading)")
    }

    @Test(arguments: tables)
    func layoutMatchesTheSpecTable(_ table: Table) throws {
        let spec = try Self.rows(under: table.heading, table: table.index).compactMap(\.fixed)
        #expect(!spec.isEmpty, "\(table.name): no row with a plain offset and size")
        for (row, (expected, actual)) in zip(spec, table.fields).enumerated() where expected != actual {
            Issue.record("\(table.name), field \(row + 1): the spec has \(expected); \(table.layout).fields has \(actual)")
        }
        for missing in spec.dropFirst(table.fields.count) {
            Issue.record("\(table.name): the spec has \(missing); \(table.layout).fields ends before it")
        }
        for extra in table.fields.dropFirst(spec.count) {
            Issue.record("\(table.name): \(table.layout).fields has \(extra), which the spec table does not")
        }
    }

    /// Fields whose size varies, named by their offset alone: the spec gives the same offset
    /// (symbolic after the type name of a record) and, for the compressed record's fixed
    /// parts, the same size.
    @Test func variableFieldsStartWhereTheSpecSays() throws {
        func row(_ field: String, under heading: String, table: Int = 0) throws -> Row {
            try #require(try Self.rows(under: heading, table: table).first { $0.field == field },
                         "\(heading) table \(table + 1) has no field \(field)")
        }
        #expect(try row("streamName", under: "### 3.1").offset == "\(FrameLayout.streamName)", "§3.1 streamName")
        #expect(try row("type", under: "### 3.2").offset == "\(RecordLayout.type)", "§3.2 type")
        #expect(try row("tags", under: "### 3.2").offset == "\(RecordLayout.type)+t", "§3.2 tags")
        #expect(try row("tag", under: "### 3.2", table: 1).offset == "\(TagBlockLayout.firstTag)", "§3.2 tag")
        let header = try row("header", under: "### 3.2", table: 2)
        #expect(header.offset == "0 … \(RecordLayout.size - 1)" && header.size == "\(RecordLayout.size)", "§3.2 compressed record header")
        #expect(try row("type", under: "### 3.2", table: 2).offset == "\(RecordLayout.type)", "§3.2 compressed record type")
        let dictionary = try row("dictionaryOffset", under: "### 3.2", table: 2)
        #expect(dictionary.offset == "\(RecordLayout.type + CompressedBodyLayout.dictionaryOffset)+t+g", "§3.2 dictionaryOffset offset")
        #expect(dictionary.size == "\(CompressedBodyLayout.fields[0].size)", "§3.2 dictionaryOffset size")
        #expect(try row("block", under: "### 3.2", table: 2).offset == "\(RecordLayout.type + CompressedBodyLayout.block)+t+g",
                "§3.2 block")
        let keyID = try row("keyId", under: "### 3.9")
        #expect(keyID.offset == "\(RecordLayout.type + EncryptedBodyLayout.keyID)+t+g" && keyID.size == "4", "§3.9 keyId")
        let nonce = try row("nonce", under: "### 3.9")
        #expect(nonce.offset == "\(RecordLayout.type + EncryptedBodyLayout.nonce)+t+g" && nonce.size == "\(EncryptedBodyLayout.nonceBytes)",
                "§3.9 nonce")
        #expect(try row("ciphertext", under: "### 3.9").offset == "\(RecordLayout.type + EncryptedBodyLayout.ciphertext)+t+g", "§3.9 ciphertext")
        let tag = try row("tag", under: "### 3.9")
        #expect(tag.offset == "\(RecordLayout.type + EncryptedBodyLayout.ciphertext)+t+g+c" && tag.size == "\(EncryptedBodyLayout.tagBytes)",
                "§3.9 tag")
        #expect(try row("directory", under: "## 1A.").offset == "\(ArchiveManifestLayout.directory)", "§1A directory")
        #expect(try row("checksum", under: "## 1A.").offset == "\(ArchiveManifestLayout.directory) + d", "§1A checksum")
    }

    /// A structure's fields and size.
    struct Structure: Sendable, CustomTestStringConvertible {
        let layout: String
        let fields: [FieldSpec]
        let size: Int
        var testDescription: String { layout }
    }

    static let structures: [Structure] = [
        Structure(layout: "SegmentHeaderLayout", fields: SegmentHeaderLayout.fields, size: SegmentHeaderLayout.size),
        Structure(layout: "DurableMarkLayout", fields: DurableMarkLayout.fields, size: DurableMarkLayout.size),
        Structure(layout: "FrameLayout", fields: FrameLayout.fields, size: FrameLayout.size),
        Structure(layout: "RecordLayout", fields: RecordLayout.fields, size: RecordLayout.size),
        Structure(layout: "CompressedBodyLayout", fields: CompressedBodyLayout.fields, size: CompressedBodyLayout.size),
        Structure(layout: "TagBlockLayout", fields: TagBlockLayout.fields, size: TagBlockLayout.size),
        Structure(layout: "CheckpointLayout", fields: CheckpointLayout.fields, size: CheckpointLayout.size),
        Structure(layout: "IndexHeaderLayout", fields: IndexHeaderLayout.fields, size: IndexHeaderLayout.size),
        Structure(layout: "IndexEntryLayout", fields: IndexEntryLayout.fields, size: IndexEntryLayout.size),
        Structure(layout: "RetentionRecordLayout", fields: RetentionRecordLayout.fields, size: RetentionRecordLayout.size),
        Structure(layout: "SnapshotMetadataLayout", fields: SnapshotMetadataLayout.fields, size: SnapshotMetadataLayout.size),
        Structure(layout: "ArchiveManifestLayout", fields: ArchiveManifestLayout.fields, size: ArchiveManifestLayout.size),
        Structure(layout: "ArchiveMarkerLayout", fields: ArchiveMarkerLayout.fields, size: ArchiveMarkerLayout.size),
        Structure(layout: "EncryptedBodyLayout", fields: EncryptedBodyLayout.fields, size: EncryptedBodyLayout.size),
        Structure(layout: "KeyStoreHeaderLayout", fields: KeyStoreHeaderLayout.fields, size: KeyStoreHeaderLayout.size),
        Structure(layout: "KeyStoreEntryLayout", fields: KeyStoreEntryLayout.fields, size: KeyStoreEntryLayout.size),
    ]

    /// Every structure's fields follow each other from offset 0 without a gap or an overlap and
    /// end at its size (so the spec tables, which its fields equal, cover exactly that size),
    /// the payloads §7A describes in prose included.
    @Test(arguments: structures)
    func fieldsAreContiguousAndFillTheStructure(_ structure: Structure) {
        var end = 0
        var previous = "the start"
        for field in structure.fields {
            #expect(field.offset == end, "\(structure.layout): \(field.name) starts at \(field.offset), but \(previous) ends at \(end)")
            end = field.offset + field.size
            previous = field.name
        }
        #expect(end == structure.size, "\(structure.layout): the fields end at \(end), but the size is \(structure.size)")
    }
}
