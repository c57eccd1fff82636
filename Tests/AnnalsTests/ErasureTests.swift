import Annals
import Foundation
import Testing

/// A customer whose registration carries personal data (a data subject) and whose orders do
/// not: once the customer is forgotten, the repository still loads the aggregate (the erased
/// registration reaches `evolve(unknown:)` as ``UnknownEvent/Reason/erased``), its snapshot is
/// gone with the key, and the orders still count.
@Suite struct ErasureTests {
    struct Registered: DomainEvent, Codable, Equatable {
        static let eventType = "CustomerRegistered"
        let customer: String
        let email: String
        var subject: String? { "customer-\(customer)" }
    }

    struct Ordered: DomainEvent, Codable, Equatable {
        static let eventType = "OrderPlaced"
        let amount: Int
    }

    enum CustomerEvent: EventFamily, Equatable {
        case registered(Registered)
        case ordered(Ordered)
        static let members: [EventMember<CustomerEvent>] = [.member(Registered.self, CustomerEvent.registered), .member(Ordered.self, CustomerEvent.ordered)]
        var event: any DomainEvent {
            switch self {
            case .registered(let event): event
            case .ordered(let event): event
            }
        }
    }

    enum CustomerCommand: Sendable {
        case register(id: String, email: String)
        case order(Int)
    }

    struct Customer: SnapshottingAggregate, Equatable {
        static let category = "customer"
        static let snapshotSchemaVersion = 1
        static let initial = Customer()
        var id: String?
        var email: String?
        var total = 0
        var erasedEvents = 0
        var snapshotSubject: String? { id.map { "customer-\($0)" } }

        func evolve(_ event: CustomerEvent) -> Customer {
            var next = self
            switch event {
            case .registered(let registered):
                next.id = registered.customer
                next.email = registered.email
            case .ordered(let ordered):
                next.total += ordered.amount
            }
            return next
        }

        func evolve(unknown event: UnknownEvent) -> Customer {
            guard event.reason == .erased else { return self }
            var next = self
            next.erasedEvents += 1
            return next
        }

        func decide(_ command: CustomerCommand) throws(Never) -> [CustomerEvent] {
            switch command {
            case .register(let id, let email): [.registered(Registered(customer: id, email: email))]
            case .order(let amount): [.ordered(Ordered(amount: amount))]
            }
        }
    }

    @Test func aForgottenCustomerLoadsWithoutItsPersonalDataAndKeepsItsOrders() async throws {
        let scratch = ScratchStore()
        var options = StoreOptions(durability: .none, segmentSizeBytes: 256 * 1024)
        options.encryption = EncryptionOptions(keyProvider: KeyFileProvider(path: scratch.directory + "/test.kek"))
        try KeyFileProvider.generate(at: scratch.directory + "/test.kek")
        let store = try EventStore.open(at: scratch.path, options: options)
        let customers = Repository<Customer>(store, snapshots: .every(3))
        try await customers.execute(.register(id: "42", email: "ann@example.com"), on: "42")
        for amount in 1...4 { try await customers.execute(.order(amount), on: "42") }
        let before = try customers.load("42")
        #expect(before.state.email == "ann@example.com" && before.state.total == 10 && before.snapshotRevision != nil)
        var registration = store.read("customer-42", limit: 1).makeCursor()
        #expect(try registration.next()?.isEncrypted == true)

        #expect(try store.forget(subject: "customer-42"))
        let after = try customers.load("42")
        #expect(after.state.email == nil && after.state.id == nil, "the personal data is gone")
        #expect(after.state.total == 10, "the orders still fold")
        #expect(after.state.erasedEvents == 1 && after.snapshotRevision == nil, "replayed: the snapshot went with the key")
        #expect(after.unknownEvents == 1)
        try await store.close()
    }
}
