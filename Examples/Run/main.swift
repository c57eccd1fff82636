import Annals
import AnnalsExamples
import Foundation

// `swift run annals-example [DIRECTORY [SEGMENT_SIZE_BYTES]]`: the seed's two examples against a
// real store (kept when DIRECTORY is given).
// `swift run -c release annals-example library`: the lending library under 8 tasks (a
// temporary store, fsync before acknowledging), with its invariants checked and commands/s.

if CommandLine.arguments.dropFirst().first == "library" {
    let directory = FileManager.default.temporaryDirectory.path + "/annals-library-\(ProcessInfo.processInfo.processIdentifier)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let store = try EventStore.open(at: directory)
    let report = try await LibraryTrial().run(on: store)
    try await store.close()
    print("library trial: \(report)")
    exit(report.violations.isEmpty ? 0 : 1)
}

let directory = CommandLine.arguments.dropFirst().first
    ?? FileManager.default.temporaryDirectory.path + "/annals-example-\(ProcessInfo.processInfo.processIdentifier)"
let keep = CommandLine.arguments.count > 1
defer { if !keep { try? FileManager.default.removeItem(atPath: directory) } }
// An optional second argument sets the segment size (small stores for test fixtures).
let segmentSize = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? (64 << 20) : 64 << 20
let store = try EventStore.open(at: directory, options: StoreOptions(segmentSizeBytes: segmentSize))
print("store: \(directory)")

// Bank account: Opened(0), Deposited(500), Deposited(700), Withdrawn(200) → 1000.
// Snapshots every 2 events, so loads start from the latest one.
let accounts = Repository<Account>(store, snapshots: .every(2))
let accountID = "ann-\(store.endPosition)"
try await accounts.execute(.open(owner: "Ann", initialBalance: 0), on: accountID)
try await accounts.execute(.deposit(500), on: accountID)
try await accounts.execute(.deposit(700), on: accountID)
try await accounts.execute(.withdraw(200), on: accountID)
let account = try accounts.load(accountID)
print("account \(accountID): balance \(account.state.balance) (loaded from the snapshot at revision \(account.snapshotRevision.map(String.init) ?? "none"))")
do {
    try await accounts.execute(.withdraw(5000), on: accountID)
} catch {
    print("withdraw 5000 refused: \(error)")
}

// Orders, with the orders view kept by a projection runner in the same store.
let runner = ProjectionRunner<OrdersView>(store: store)
let projection = Task { try await runner.run() }
let orders = Repository<Order>(store)
let items = [OrderItem(sku: "espresso-beans-1kg", quantity: 2, unitPrice: Decimal(string: "18.90")!),
             OrderItem(sku: "ceramic-pour-over", quantity: 1, unitPrice: Decimal(string: "24.50")!)]
try await orders.execute(.place(customer: "Ann", items: items, at: Date()), on: "123")
try await orders.execute(.ship(carrier: "DHL Express", trackingNumber: "JD014600003SE"), on: "123")
let delivered = try await orders.execute(.deliver(signature: "A. Smith"), on: "123")
print("order 123: \(try orders.load("123").state.status), total \(try orders.load("123").state.total)")

// Time travel: the order as it was just before it shipped.
let history = try orders.history("123")
if let shipped = history.firstIndex(where: { if case .known(.shipped, _) = $0 { true } else { false } }), shipped > 0 {
    let before = try orders.load("123", atRevision: UInt64(shipped - 1)).state
    print("order 123 before it shipped: \(before.status), carrier \(before.carrier ?? "none")")
}

// Read your writes on the view, then stop the runner (it commits what it applied).
if let position = delivered.lastPosition { try await store.waitUntilProjected(OrdersView.self, through: position) }
print("orders view: \(await runner.state)")
await runner.stop()
try await projection.value
try await store.close()
