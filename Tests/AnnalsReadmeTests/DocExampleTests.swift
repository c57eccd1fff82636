import Foundation
import Testing

/// Every example in the library's doc comments compiles: each line of each ```swift block in a
/// `///` comment appears, in order, in DocExamples.swift (a target that is built). Lines with
/// `…` elide code and are skipped.
@Suite struct DocExampleTests {
    struct Block { let file: String; let line: Int; let lines: [String] }

    static func blocks() throws -> [Block] {
        var blocks: [Block] = []
        for module in ["AnnalsStorage", "Annals", "AnnalsKafka"] {
            let directory = ReadmeTests.root.appendingPathComponent("Sources/\(module)")
            let files = FileManager.default.enumerator(atPath: directory.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
            for file in files.sorted() {
                let lines = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
                    .split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                var index = 0
                while index < lines.count {
                    if lines[index] == "/// ```swift" {
                        var block: [String] = []
                        var next = index + 1
                        while next < lines.count, lines[next] != "/// ```" {
                            block.append(String(lines[next].dropFirst(3)).trimmingCharacters(in: .whitespaces))
                            next += 1
                        }
                        blocks.append(Block(file: "\(module)/\(file)", line: index + 1,
                                            lines: block.filter { !$0.isEmpty && !$0.contains("…") }))
                        index = next
                    }
                    index += 1
                }
            }
        }
        return blocks
    }

    @Test func everyDocCommentExampleIsCompiled() throws {
        let source = try String(contentsOf: ReadmeTests.root.appendingPathComponent("Tests/AnnalsReadmeTests/DocExamples.swift"),
                                encoding: .utf8)
        let compiled = source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let blocks = try Self.blocks()
        #expect(blocks.count >= 15, "the doc comments' examples were found")
        for block in blocks {
            var next = compiled.startIndex
            for line in block.lines {
                guard let found = compiled[next...].firstIndex(of: line) else {
                    Issue.record("\(block.file):\(block.line): not compiled (after the previous line): \(line)")
                    break
                }
                next = found + 1
            }
        }
    }
}
