import Annals
import Foundation
import Testing

/// The README's `import Annals` example compiles and runs: its block is made of this target's
/// lines, in order.
@Suite struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The lines of the README's Swift block that starts with `import Annals`, trimmed.
    static func readmeBlock() throws -> [String] {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst().map { $0.components(separatedBy: "\n```")[0] }
        let block = try #require(blocks.first { $0.hasPrefix("import Annals\n") }, "the README has an `import Annals` block")
        return block.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    @Test func theReadmeExampleIsTheCompiledOne() throws {
        let source = try String(contentsOf: Self.root.appendingPathComponent("Tests/AnnalsReadmeTests/ReadmeQuickStart.swift"),
                                encoding: .utf8)
        let compiled = source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        var next = compiled.startIndex
        for line in try Self.readmeBlock() {
            guard let found = compiled[next...].firstIndex(of: line) else {
                Issue.record("README line not in ReadmeQuickStart.swift (after the previous one): \(line)")
                return
            }
            next = found + 1
        }
    }

    @Test func theReadmeExampleRuns() async throws {
        let directory = FileManager.default.temporaryDirectory.path + "/annals-readme-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try EventStore.open(at: directory)
        let outcome = try await readmeQuickStart(store: store)
        #expect(outcome.balance == 500 && outcome.then == 0)
        #expect(outcome.view == ["account-42": 500])
        try await store.close()
    }
}
