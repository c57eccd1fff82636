import Dispatch
import Foundation
import Testing
@testable import AnnalsCLI
@testable import AnnalsStorage

/// Runs the built `annals` executable (it sits next to the test bundle in `.build/<config>/`),
/// waiting for it on a thread of its own: a test waiting for a child process must not hold one
/// of the few threads of the task pool that every other suite's tasks run on.
func runAnnals(_ arguments: [String], input: String = "") async throws -> (status: Int32, stdout: String, stderr: String) {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue(label: "annals-cli-test-process").async {
            continuation.resume(with: Result { try runAnnalsWaiting(arguments, input: input) })
        }
    }
}

private func runAnnalsWaiting(_ arguments: [String], input: String) throws -> (status: Int32, stdout: String, stderr: String) {
    let executable = URL(fileURLWithPath: (try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")))
        .deletingLastPathComponent().appendingPathComponent("annals")
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

final class TemporaryStore: @unchecked Sendable {
    let directory = FileManager.default.temporaryDirectory.path + "/annals-cli-\(UUID().uuidString)"
    var path: String { directory + "/store" }
    init() { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

/// A wall clock that moves only when told to.
final class SteppingClock: StoreClock, @unchecked Sendable {
    private let lock = NSLock()
    private var nanoseconds: Int64
    init(_ start: Timestamp) { nanoseconds = start.nanosecondsSinceEpoch }
    func nowNanoseconds() -> Int64 { lock.withLock { nanoseconds } }
    func advance(seconds: Int64) { lock.withLock { nanoseconds += seconds * 1_000_000_000 } }
}

@Suite struct CLITests {
    /// `annals backup` copies a store (a second time, only what is new) and `annals restore`
    /// puts it back and verifies it, refusing to replace a store unless told.
    @Test func backupAndRestoreRoundTrip() async throws {
        let directory = TemporaryStore()
        let lines = (0..<300).map { #"{"stream":"order-\#($0 % 9)","type":"Placed","data":{"n":\#($0)}}"# }.joined(separator: "\n")
        #expect(try await runAnnals(["import", directory.path], input: lines).status == 0)
        let backup = directory.directory + "/backup"
        let first = try await runAnnals(["backup", directory.path, backup])
        #expect(first.status == 0 && first.stdout.contains("backed up events 0..<300"), "\(first.stdout)\(first.stderr)")
        #expect(try await runAnnals(["import", directory.path], input: lines).status == 0)
        let second = try await runAnnals(["backup", directory.path, backup])
        #expect(second.stdout.contains("backed up events 0..<600"), "\(second.stdout)")
        let restored = directory.directory + "/restored"
        let restore = try await runAnnals(["restore", backup, restored])
        #expect(restore.status == 0 && restore.stdout.contains("ok"), "\(restore.stdout)\(restore.stderr)")
        #expect(try await runAnnals(["restore", backup, restored]).status != 0, "refuses to replace a store")
        #expect(try await runAnnals(["restore", backup, restored, "--overwrite"]).status == 0)
        #expect(try await runAnnals(["dump", restored]).stdout.split(separator: "\n").count == 600)
    }

    /// `dump --no-system` leaves system streams out; `dump --follow` prints what a writer commits
    /// after it started; `stats` prints the compression ratios.
    @Test func dumpFollowsAndFiltersAndStatsPrintsCompression() async throws {
        let directory = TemporaryStore()
        let writer = try EventStore.open(at: directory.path)
        let body = Array(String(repeating: #"{"customer":"ann","sku":"espresso-beans-1kg","quantity":2},"#, count: 8).utf8)
        _ = try await writer.append([EventData(type: "Placed", payload: body)], to: "order-1")
        _ = try await writer.appendToSystemStreams([StreamAppend(stream: "$projection-x", events: [EventData(type: "C", payload: [1])])])
        let all = try await runAnnals(["dump", directory.path])
        #expect(all.stdout.split(separator: "\n").count == 2)
        let application = try await runAnnals(["dump", directory.path, "--no-system"])
        #expect(application.stdout.split(separator: "\n").count == 1 && !application.stdout.contains("$projection"))

        let stats = try await runAnnals(["stats", directory.path])
        #expect(stats.stdout.contains("compression     metadata+payload"), "\(stats.stdout)")
        let statsJSON = try await runAnnals(["stats", directory.path, "--json"])
        #expect(statsJSON.stdout.contains(#""bodyRatio""#) && statsJSON.stdout.contains(#""logRatio""#))

        let executable = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("annals")
        let follower = Process()
        follower.executableURL = executable
        follower.arguments = ["dump", directory.path, "--follow", "--no-system"]
        let output = Pipe()
        follower.standardOutput = output
        try follower.run()
        try await Task.sleep(for: .milliseconds(400))
        for index in 0..<3 { _ = try await writer.append([EventData(type: "Later", payload: Array("\(index)".utf8))], to: "order-2") }
        var text = ""
        let deadline = ContinuousClock.now + .seconds(20)
        while text.components(separatedBy: "\"Later\"").count < 4, ContinuousClock.now < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        follower.interrupt()
        follower.waitUntilExit()
        #expect(text.components(separatedBy: "\"Later\"").count == 4, "the three later events followed: \(text)")
        #expect(text.contains("\"Placed\""), "what was committed first comes first")
        try await writer.close()
    }

    /// `dump --until-time` prints the log as it was at a time, and refuses what it cannot parse.
    @Test func dumpUntilATimePrintsTheLogAsItWasThen() async throws {
        let directory = TemporaryStore()
        let clock = SteppingClock(try #require(Timestamp(iso8601: "2026-01-01T00:00:00Z")))
        var options = StoreOptions()
        options.clock = ClockChoice(clock: clock)
        let store = try EventStore.open(at: directory.path, options: options)
        for hour in 0..<3 {
            _ = try await store.append([EventData(type: "Tick", payload: Array("\(hour)".utf8))], to: "clock")
            clock.advance(seconds: 3600)
        }
        try await store.close()
        func lines(_ time: String) async throws -> Int {
            let dumped = try await runAnnals(["dump", directory.path, "--until-time", time])
            #expect(dumped.status == 0, "\(dumped.stderr)")
            return dumped.stdout.split(separator: "\n").count
        }
        #expect(try await lines("2026-01-01T01:00:00Z") == 2, "the commit at exactly 01:00 is included")
        #expect(try await lines("2026-01-01T00:59:59.999999999Z") == 1)
        #expect(try await lines("2026-01-01") == 1, "a date is its midnight")
        #expect(try await lines("2025-12-31T23:00:00Z") == 0)
        #expect(try await runAnnals(["dump", directory.path, "--until-time", "yesterday"]).status != 0)
        #expect(Timestamp(iso8601: "2026-11-27T03:51:14.123456789Z")?.iso8601 == "2026-11-27T03:51:14.123456789Z")
        #expect(Timestamp(iso8601: "2000-02-29")?.nanosecondsSinceEpoch == Int64(11_016) * 86_400 * 1_000_000_000)
        #expect(Timestamp(iso8601: "1969-12-31T23:59:59Z")?.nanosecondsSinceEpoch == Int64(-1_000_000_000))
        for impossible in ["2026-02-30", "2001-02-29", "2026-11-31", "2026-13-01", "2026-11-30T24:00:00Z", "9999-12-31",
                           "2026-11-30T12:00:60Z", "2026-11-30T12:00:00", "2026-11-30T12:00:00.Z"] {
            #expect(Timestamp(iso8601: impossible) == nil, "\(impossible)")
        }
        #expect(try await runAnnals(["dump", directory.path, "--until-time", "9999-12-31"]).status != 0, "refused, not a crash")
    }

    @Test func importThenDumpRoundTripsDataByteForByte() async throws {
        let store = TemporaryStore()
        let input = """
            {"stream":"order-1","type":"OrderPlaced","data":{"total": 42, "b":[1,2.5e3]},"metadata":{"user":"ann"}}
            {"stream":"order-1","type":"OrderShipped","data":"x","id":"6F1C1C4E-0000-4000-8000-000000000001"}

            {"stream":"order-2","type":"Raw","dataBase64":"AAEC"}
            """
        let imported = try await runAnnals(["import", store.path, "--batch", "2"], input: input)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout == "committed 1\ncommitted 2\n")
        let dumped = try await runAnnals(["dump", store.path])
        #expect(dumped.status == 0)
        let lines = dumped.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix(#"{"position":0,"stream":"order-1","revision":0,"id":""#))
        #expect(lines[0].hasSuffix(#","metadata":{"user":"ann"},"data":{"total": 42, "b":[1,2.5e3]}}"#))
        #expect(lines[1].contains(#""id":"6f1c1c4e-0000-4000-8000-000000000001","type":"OrderShipped""#))
        #expect(lines[2].hasSuffix(#""type":"Raw","timestamp":"# + lines[2].split(separator: "\"timestamp\":")[1]))
        #expect(lines[2].contains(#""dataBase64":"AAEC""#))
        // A dump line imports again unchanged in what the caller controls.
        let copy = TemporaryStore()
        #expect(try await runAnnals(["import", copy.path], input: dumped.stdout).status == 0)
        let again = try await runAnnals(["dump", copy.path]).stdout.split(separator: "\n")
        for (left, right) in zip(lines, again) {
            #expect(left.split(separator: "\"timestamp\"")[0] == right.split(separator: "\"timestamp\"")[0])
            #expect(left.split(separator: "Z\"")[1] == right.split(separator: "Z\"")[1])
        }
        #expect(try await runAnnals(["verify", store.path]).status == 0)
    }

    @Test func badLineIsReportedWithItsNumberAndItsBatchIsNotWritten() async throws {
        let store = TemporaryStore()
        let input = """
            {"stream":"a","type":"T","data":1}
            {"stream":"a","type":"T","data":2}
            {"stream":"a","type":"T","data":3}
            {"stream":"a","type":"T","data":{"broken"}}
            """
        let result = try await runAnnals(["import", store.path, "--batch", "2"], input: input)
        #expect(result.status == 1)
        #expect(result.stdout == "committed 1\n")
        #expect(result.stderr.contains("line 4"))
        let dumped = try await runAnnals(["dump", store.path]).stdout.split(separator: "\n")
        #expect(dumped.count == 2, "line 3 was in the failed batch")
        let missingType = try await runAnnals(["import", store.path], input: #"{"stream":"a","data":1}"#)
        #expect(missingType.status == 1 && missingType.stderr.contains("line 1") && missingType.stderr.contains("type"))
        let reserved = try await runAnnals(["import", store.path], input: #"{"stream":"$all","type":"T"}"#)
        #expect(reserved.status == 1 && reserved.stderr.contains("reserved"))
    }

    @Test func expectedRevisionConflictsNameTheirLineAndStreamsDumpAlone() async throws {
        let store = TemporaryStore()
        let input = """
            {"stream":"a","type":"T","data":1,"expectedRevision":"noStream"}
            {"stream":"b","type":"T","data":2}
            {"stream":"a","type":"T","data":3,"expectedRevision":0}
            {"stream":"a","type":"T","data":4,"expectedRevision":"streamExists"}
            {"stream":"a","type":"T","data":5,"expectedRevision":7}
            """
        let result = try await runAnnals(["import", store.path, "--batch", "2"], input: input)
        #expect(result.status == 1)
        #expect(result.stderr.contains("line 5") && result.stderr.contains("revision 7"), "\(result.stderr)")
        #expect(result.stdout == "committed 1\ncommitted 3\n")
        let streamA = try await runAnnals(["dump", store.path, "--stream", "a"]).stdout.split(separator: "\n")
        #expect(streamA.count == 3)
        #expect(streamA.map { $0.contains(#""stream":"a""#) } == [true, true, true])
        #expect(streamA[2].contains(#""revision":2"#) && streamA[2].hasSuffix(#""data":4}"#))
        let newest = try await runAnnals(["dump", store.path, "--stream", "a", "--backwards", "--limit", "1"]).stdout
        #expect(newest.contains(#""revision":2"#) && newest.split(separator: "\n").count == 1)
        let fromRevision = try await runAnnals(["dump", store.path, "--stream", "a", "--from", "1"]).stdout.split(separator: "\n")
        #expect(fromRevision.count == 2)
        let bad = try await runAnnals(["import", store.path], input: #"{"stream":"a","type":"T","expectedRevision":"sometimes"}"#)
        #expect(bad.status == 1 && bad.stderr.contains("line 1"))
        let stats = try await runAnnals(["stats", store.path]).stdout
        #expect(stats.contains("streams         2"))
    }

    /// Tags and append conditions through `annals import`, and `annals dump --type/--tag`.
    @Test func subjectsEncryptionAndForgettingThroughTheCommandLine() async throws {
        let store = TemporaryStore()
        let key = store.directory + "/k.kek"
        #expect(try await runAnnals(["key", "generate", key]).status == 0)
        let again = try await runAnnals(["key", "generate", key])
        #expect(again.status == 1 && again.stderr.contains("never overwritten"), "\(again.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: key)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let input = """
            {"stream":"customer-1","type":"Registered","data":{"name":"Alice SECRET-1"},"subject":"customer-1","tags":["t:1"]}
            {"stream":"customer-2","type":"Registered","data":{"name":"Bob SECRET-2"},"metadata":{"ip":"SECRET-3"},"subject":"customer-2"}
            {"stream":"orders","type":"Placed","data":{"n":1}}
            """
        #expect(try await runAnnals(["import", store.path], input: input).status == 1, "a subject needs --key-file")
        #expect(try await runAnnals(["import", store.path, "--key-file", key], input: input).status == 0)
        let refused = try await runAnnals(["dump", store.path])
        #expect(refused.status == 1 && refused.stderr.contains("encrypted"), "\(refused.stderr)")
        #expect(try await runAnnals(["dump", store.path, "--key-file", key]).stdout.contains("Bob SECRET-2"))
        let forget = try await runAnnals(["forget", store.path, "customer-2", "--key-file", key])
        #expect(forget.status == 0 && forget.stdout.contains("forgot customer-2"), "\(forget.stderr)")
        let lines = try await runAnnals(["dump", store.path, "--key-file", key]).stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].contains(#""data":{"name":"Alice SECRET-1"}"#))
        #expect(lines[1].hasSuffix(#"Z","erased":true}"#) && !lines[1].contains("SECRET"), "\(lines[1])")
        #expect(lines[2].contains(#""data":{"n":1}"#))
        for file in try FileManager.default.subpathsOfDirectory(atPath: store.path) {
            let bytes = FileManager.default.contents(atPath: store.path + "/" + file) ?? Data()
            #expect(bytes.range(of: Data("SECRET".utf8)) == nil, "\(file) holds plaintext")
        }
        let verify = try await runAnnals(["verify", store.path, "--key-file", key])
        #expect(verify.status == 0 && verify.stdout.contains("encrypted events 2, authenticated 1, erased 1"), "\(verify.stdout)")
        let other = store.directory + "/other.kek"
        #expect(try await runAnnals(["key", "generate", other]).status == 0)
        let wrong = try await runAnnals(["dump", store.path, "--key-file", other])
        #expect(wrong.status == 1 && wrong.stderr.contains("does not open"), "\(wrong.stderr)")
        let all = store.directory + "/all"
        #expect(try await runAnnals(["import", all, "--key-file", key, "--encrypt-all"], input: input).status == 0)
        for file in try FileManager.default.subpathsOfDirectory(atPath: all) {
            let bytes = FileManager.default.contents(atPath: all + "/" + file) ?? Data()
            #expect(bytes.range(of: Data(#""n":1"#.utf8)) == nil, "\(file) holds plaintext")
        }
        #expect(try await runAnnals(["dump", all, "--key-file", key]).stdout.contains(#""data":{"n":1}"#))
    }

    @Test func tagsConditionsAndQueriesThroughTheCommandLine() async throws {
        let store = TemporaryStore()
        let input = """
            {"stream":"book-1","type":"BookLent","data":{"b":1},"tags":["member:1","book:1"]}
            {"stream":"book-2","type":"BookLent","data":{"b":2},"tags":["member:1","book:2"]}
            {"stream":"book-3","type":"BookLent","data":{"b":3},"tags":["member:2","book:3"],"appendCondition":{"failIfEventsMatch":[{"types":["BookLent"],"tags":["book:3"]}]}}
            {"stream":"book-1","type":"BookReturned","data":{"b":1},"tags":["member:1","book:1"]}
            {"stream":"book-4","type":"BookLent","tags":["member:1","book:4"],"appendCondition":{"failIfEventsMatch":[{"types":["BookLent","BookReturned"],"tags":["member:1"]}],"after":1}}
            {"stream":"book-5","type":"BookLent","tags":["member:3","book:5"]}
            """
        let result = try await runAnnals(["import", store.path, "--batch", "10"], input: input)
        #expect(result.status == 1)
        #expect(result.stderr.contains("line 5") && result.stderr.contains("position 3"), "\(result.stderr)")
        let all = try await runAnnals(["dump", store.path]).stdout.split(separator: "\n")
        #expect(all.count == 4, "the lines before the failed condition, nothing from it on")
        #expect(all[0].contains(#""type":"BookLent","tags":["member:1","book:1"],"timestamp""#), "\(all[0])")
        let member1 = try await runAnnals(["dump", store.path, "--tag", "member:1"]).stdout.split(separator: "\n")
        #expect(member1.map { $0.contains(#""position":"#) } == [true, true, true])
        let lentToMember1 = try await runAnnals(["dump", store.path, "--type", "BookLent", "--tag", "member:1"]).stdout.split(separator: "\n")
        #expect(lentToMember1.count == 2)
        let anyOf = try await runAnnals(["dump", store.path, "--type", "BookReturned", "--type", "BookLent", "--tag", "book:1", "--backwards"])
        #expect(anyOf.stdout.split(separator: "\n").count == 2 && anyOf.stdout.hasPrefix(#"{"position":3,"#))
        let none = try await runAnnals(["dump", store.path, "--tag", "member:1", "--tag", "member:2"])
        #expect(none.status == 0 && none.stdout.isEmpty)
        let badCondition = try await runAnnals(["import", store.path], input: #"{"stream":"x","type":"T","appendCondition":{"failIfEventsMatch":"all"}}"#)
        #expect(badCondition.status == 1 && badCondition.stderr.contains("line 1"))
    }

    @Test func secondWriterInAnotherProcessGetsStoreLocked() async throws {
        let store = TemporaryStore()
        let writer = try EventStore.open(at: store.path)
        let result = try await runAnnals(["import", store.path], input: #"{"stream":"a","type":"T"}"#)
        #expect(result.status == 2)
        #expect(result.stderr.contains("locked"))
        #expect(result.stderr.contains(store.path))
        // Readers in other processes work while the writer holds the lock.
        _ = try await writer.append([EventData(type: "T", payload: Array("1".utf8))], to: "a")
        let dumped = try await runAnnals(["dump", store.path])
        #expect(dumped.status == 0 && dumped.stdout.contains(#""data":1"#))
        try await writer.close()
    }

    @Test func verifyReportsCorruptionWithFileAndOffset() async throws {
        let store = TemporaryStore()
        let input = (0..<600).map { #"{"stream":"s","type":"T","data":{"n":\#($0),"pad":"\#(String(repeating: "x", count: 200))"}}"# }
            .joined(separator: "\n")
        #expect(try await runAnnals(["import", store.path, "--segment-size-bytes", "65536", "--batch", "1"], input: input).status == 0)
        #expect(try await runAnnals(["verify", store.path]).status == 0)
        let segment = store.path + "/segments/0000000000000000.seg"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
        bytes[64 + 100] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let verified = try await runAnnals(["verify", store.path])
        #expect(verified.status == 1)
        #expect(verified.stdout.contains("problem: \(segment) at offset"))
        let stats = try await runAnnals(["stats", store.path, "--json"])
        #expect(stats.stdout.contains(#""events":600"#))
    }

    @Test func jsonScannerAcceptsValidAndRejectsInvalidJSON() {
        for valid in [#"{}"#, #"[]"#, #"0"#, #"-1.5e+10"#, #""a\u00e9\ud83d\ude00""#, #"{"a":[true,false,null]}"#, " 1 "] {
            #expect(Array(valid.utf8).withUnsafeBytes { JSONScanner.isJSON($0) }, "\(valid)")
        }
        for invalid in [#"{"#, #"01"#, #"1."#, #"{"a"}"#, #"[1,]"#, #""\ud83d""#, "\"tab\there\"", #"nul"#, "1 2", ""] {
            #expect(!Array(invalid.utf8).withUnsafeBytes { JSONScanner.isJSON($0) }, "\(invalid)")
        }
        #expect(Array([UInt8(0x22), 0xFF, 0x22]).withUnsafeBytes { !JSONScanner.isJSON($0) }, "invalid UTF-8")
    }
}
