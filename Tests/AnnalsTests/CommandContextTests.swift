import Annals
import AnnalsExamples
import Foundation
import Testing

/// Commands carry a context: it is recorded, typed, in every event's metadata, and a command
/// id makes a command idempotent — a retry appends nothing and returns the original result,
/// also after a restart and when the duplicates race.
@Suite struct CommandContextTests {
    @Test func theContextIsRecordedInEveryEventAndReadBackTyped() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let accounts = Repository<Account>(store)
        let commandID = UUID()
        let context = CommandContext(commandID: commandID, correlationID: "request-7", user: "ann", tenant: "acme",
                                     fields: ["channel": "mobile"])
        try await accounts.execute(.open(owner: "Ann", initialBalance: 10), on: "1", context: context)
        var cursor = store.read(Account.stream(for: "1")).makeCursor()
        let event = try #require(try cursor.next())
        let metadata = try event.eventMetadata()
        #expect(metadata.correlationID == "request-7")
        #expect(metadata.causationID == commandID.uuidString, "the command caused it")
        #expect(metadata.commandID == commandID)
        #expect(metadata.user == "ann" && metadata.tenant == "acme" && metadata.fields == ["channel": "mobile"])
        #expect(metadata.schemaVersion == 1)
        // Without a context, only the schema version.
        try await accounts.execute(.deposit(5), on: "1")
        var next = store.read(Account.stream(for: "1"), from: 1).makeCursor()
        let plain = try #require(try next.next())
        #expect(try plain.eventMetadata() == EventMetadata(schemaVersion: 1))
        try await store.close()
    }

    @Test func aRetriedCommandAppendsNothingAndReturnsTheOriginalAlsoAfterARestart() async throws {
        let scratch = ScratchStore()
        var store = try scratch.open(.fsyncBeforeAck)
        var accounts = Repository<Account>(store)
        try await accounts.execute(.open(owner: "Ann", initialBalance: 100), on: "1")
        let withdrawal = CommandContext(commandID: UUID())
        let first = try await accounts.execute(.withdraw(60), on: "1", context: withdrawal)
        #expect(!first.isRepeat)
        let end = store.endPosition
        // Decided again, a second withdrawal of 60 would be refused (40 left): a retry is not decided.
        let retry = try await accounts.execute(.withdraw(60), on: "1", context: withdrawal)
        #expect(retry.isRepeat)
        #expect(retry.append == first.append)
        #expect(store.endPosition == end, "nothing appended")
        #expect(retry.state.balance == 40)
        try await store.close()

        store = try scratch.open(.fsyncBeforeAck)
        accounts = Repository<Account>(store)
        let afterRestart = try await accounts.execute(.withdraw(60), on: "1", context: withdrawal)
        #expect(afterRestart.isRepeat && afterRestart.append == first.append)
        #expect(try accounts.load("1").state.balance == 40)
        try await store.close()
    }

    @Test func racingDuplicatesOfOneCommandWriteItOnce() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(.fsyncBeforeAck)
        let accounts = Repository<Account>(store, maximumConflictRetries: 100)
        try await accounts.execute(.open(owner: "Ann", initialBalance: 0), on: "1")
        let commands = (0..<20).map { _ in UUID() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for copy in 0..<4 {
                group.addTask {
                    for id in commands.shuffled() where copy >= 0 {
                        try await accounts.execute(.deposit(10), on: "1", context: CommandContext(commandID: id))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try accounts.load("1").state.balance == 200, "each of the 20 deposits counted once")
        #expect(try accounts.load("1").revision == 20)
        try await store.close()
    }
}
