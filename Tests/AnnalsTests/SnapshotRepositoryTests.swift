import Annals
import AnnalsExamples
import Foundation
import Testing

/// Repositories with snapshots load the same state as a full replay, fall back to replay when
/// the snapshot schema changed or the snapshot is unusable, and keep time travel exact.
@Suite struct SnapshotRepositoryTests {
    @Test func snapshotsEveryNEventsLoadTheSameStateAsAReplay() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let accounts = Repository<Account>(store, snapshots: .every(100))
        try await accounts.execute(.open(owner: "Ann", initialBalance: 0), on: "9")
        for step in 1..<250 { try await accounts.execute(.deposit(Decimal(step)), on: "9") }
        let fromSnapshot = try accounts.load("9")
        let replayed = try Repository<Account>(store).load("9")
        #expect(fromSnapshot.snapshotRevision == 199, "snapshots after revisions 99 and 199")
        #expect(replayed.snapshotRevision == nil)
        #expect(fromSnapshot.state == replayed.state)
        #expect(fromSnapshot.revision == 249 && replayed.revision == 249)
        // Time travel before the latest snapshot replays instead of using it.
        let past = try accounts.load("9", atRevision: 150)
        #expect(past.state == (try Repository<Account>(store).load("9", atRevision: 150)).state)
        #expect(past.snapshotRevision == nil || past.snapshotRevision! <= 150)
        try await store.close()
    }

    /// The same aggregate with a changed snapshot layout.
    struct AccountV2: SnapshottingAggregate, Equatable {
        static let category = Account.category
        static let snapshotSchemaVersion = 2
        static let initial = AccountV2()
        var cents: Int = 0
        func evolve(_ event: AccountEvent) -> AccountV2 {
            switch event {
            case .opened(let opened): AccountV2(cents: NSDecimalNumber(decimal: opened.initialBalance * 100).intValue)
            case .deposited(let deposit): AccountV2(cents: cents + NSDecimalNumber(decimal: deposit.amount * 100).intValue)
            case .withdrawn(let withdrawal): AccountV2(cents: cents - NSDecimalNumber(decimal: withdrawal.amount * 100).intValue)
            }
        }
        func decide(_ command: AccountCommand) throws(AccountRejection) -> [AccountEvent] { [] }
    }

    @Test func aChangedSnapshotSchemaFallsBackToReplay() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let accounts = Repository<Account>(store, snapshots: .every(10))
        try await accounts.execute(.open(owner: "Ann", initialBalance: 1), on: "5")
        for _ in 0..<30 { try await accounts.execute(.deposit(2), on: "5") }
        let v2 = try Repository<AccountV2>(store, snapshots: .every(10)).load("5")
        #expect(v2.snapshotRevision == nil, "version-1 snapshots are never decoded as version 2")
        #expect(v2.state.cents == 6100)
        try await store.close()
    }
}
