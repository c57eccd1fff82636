import Annals
import AnnalsExamples
import Foundation
import Testing

/// The seed's examples as pure deciders: given events, when a command, then events (or a
/// rejection), with no store involved.
@Suite struct DeciderTests {
    @Test func accountBalanceFoldsTheSeedsExample() throws {
        let account = Account.fold([
            .opened(AccountOpened(owner: "Ann", initialBalance: 0)),
            .deposited(Deposited(amount: 500)), .deposited(Deposited(amount: 700)), .withdrawn(Withdrawn(amount: 200)),
        ])
        #expect(account.balance == 1000)
    }

    @Test func accountCommandsDecideOrRefuse() throws {
        let opened = AccountEvent.opened(AccountOpened(owner: "Ann"))
        try Scenario<Account>.given().when(.open(owner: "Ann")).then(opened)
        try Scenario<Account>.given(opened).when(.open(owner: "Ann")).thenRejects(.alreadyOpen)
        try Scenario<Account>.given().when(.deposit(5)).thenRejects(.notOpen)
        let after = try Scenario<Account>.given(opened, .deposited(Deposited(amount: 500)))
            .when(.withdraw(200)).then(.withdrawn(Withdrawn(amount: 200)))
        #expect(after.balance == 300)
        try Scenario<Account>.given(opened, .deposited(Deposited(amount: 500)))
            .when(.withdraw(501)).thenRejects(.insufficientFunds(balance: 500, requested: 501))
        try Scenario<Account>.given(opened).when(.deposit(-1)).thenRejects(.amountNotPositive(-1))
        // A wrong expectation is reported, not passed.
        #expect(throws: ScenarioFailure.self) {
            try Scenario<Account>.given(opened).when(.deposit(5)).then(.deposited(Deposited(amount: 6)))
        }
        #expect(throws: ScenarioFailure.self) { try Scenario<Account>.given(opened).when(.deposit(5)).thenRejects() }
    }

    @Test func orderLifecycleDecidesOrRefuse() throws {
        let date = Date(timeIntervalSince1970: 1_790_000_000)
        let items = [OrderItem(sku: "a", quantity: 2, unitPrice: Decimal(string: "19.99")!)]
        let placed = OrderEvent.placed(OrderPlaced(customer: "Ann", items: items, total: Decimal(string: "39.98")!, placedAt: date))
        let shipped = OrderEvent.shipped(OrderShipped(carrier: "UPS", trackingNumber: "1Z"))
        try Scenario<Order>.given().when(.place(customer: "Ann", items: items, at: date)).then(placed)
        try Scenario<Order>.given().when(.place(customer: "Ann", items: [], at: date)).thenRejects(.noItems)
        try Scenario<Order>.given().when(.ship(carrier: "UPS", trackingNumber: "1Z")).thenRejects(.notPlaced)
        try Scenario<Order>.given(placed).when(.deliver(signature: "x")).thenRejects(.notShipped)
        try Scenario<Order>.given(placed).when(.ship(carrier: "UPS", trackingNumber: "1Z")).then(shipped)
        let delivered = try Scenario<Order>.given(placed, shipped).when(.deliver(signature: "A. Smith"))
            .then(.delivered(OrderDelivered(signature: "A. Smith")))
        #expect(delivered.status == .delivered)
        try Scenario<Order>.given(placed, shipped, .delivered(OrderDelivered(signature: "x")))
            .when(.deliver(signature: "y")).thenRejects(.alreadyDelivered)
    }
}
