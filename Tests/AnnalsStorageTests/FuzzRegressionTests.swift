import Foundation
import Testing
@testable import AnnalsStorage

/// Every input that ever crashed a libFuzzer target (`make fuzz` writes them; they are kept
/// under `Tests/Fixtures/fuzz/<target>/`) goes through its target again on every test run,
/// and must be refused or read without a crash.
@Suite struct FuzzRegressionTests {
    static let directory: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/fuzz").path

    static var inputs: [String] {
        FuzzTargets.Target.allCases.flatMap { target in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/" + target.rawValue)) ?? []).sorted()
                .map { target.rawValue + "/" + $0 }
        }
    }

    @Test func regressionInputsAreFound() {
        #expect(Self.inputs.contains("open/superseded-last-file-cut-read-only"))
    }

    @Test(arguments: inputs) func inputThatOnceCrashedIsHandled(_ input: String) throws {
        let target = try #require(FuzzTargets.Target(rawValue: String(input.split(separator: "/")[0])))
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.directory + "/" + input)))
        bytes.withUnsafeBytes { FuzzTargets.run(target, $0) }
    }

    /// The targets themselves accept the golden stores' files without complaint (a smoke test
    /// of the harness that `make fuzz` drives).
    @Test func targetsRunOnValidInputs() throws {
        let fixtures = URL(fileURLWithPath: Self.directory).deletingLastPathComponent().path
        let segment = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixtures + "/v2-compressed/store/segments/0000000000000000.seg")))
        for mode in [0, 1] as [UInt8] {
            ([mode] + segment.dropFirst(Format.segmentHeaderBytes)).withUnsafeBytes { FuzzTargets.run(.frames, $0) }
            ([mode] + segment.prefix(Format.segmentHeaderBytes)).withUnsafeBytes { FuzzTargets.run(.records, $0) }
        }
    }
}
