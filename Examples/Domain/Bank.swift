import Annals
import Foundation

// The seed's bank account: opened, deposits, withdrawals; the balance never goes negative.

public struct AccountOpened: DomainEvent, Equatable {
    public static let eventType = "AccountOpened"
    public var owner: String
    public var initialBalance: Decimal
    public init(owner: String, initialBalance: Decimal = 0) {
        self.owner = owner
        self.initialBalance = initialBalance
    }
}

public struct Deposited: DomainEvent, Equatable {
    public static let eventType = "Deposited"
    public var amount: Decimal
    public init(amount: Decimal) { self.amount = amount }
}

public struct Withdrawn: DomainEvent, Equatable {
    public static let eventType = "Withdrawn"
    public var amount: Decimal
    public init(amount: Decimal) { self.amount = amount }
}

public enum AccountEvent: EventFamily, Equatable {
    case opened(AccountOpened)
    case deposited(Deposited)
    case withdrawn(Withdrawn)

    public static let members: [EventMember<AccountEvent>] = [
        .member(AccountOpened.self, AccountEvent.opened),
        .member(Deposited.self, AccountEvent.deposited),
        .member(Withdrawn.self, AccountEvent.withdrawn),
    ]

    public var event: any DomainEvent {
        switch self {
        case .opened(let event): event
        case .deposited(let event): event
        case .withdrawn(let event): event
        }
    }
}

public enum AccountCommand: Sendable {
    case open(owner: String, initialBalance: Decimal = 0)
    case deposit(Decimal)
    case withdraw(Decimal)
}

public enum AccountRejection: Error, Equatable, Sendable {
    case alreadyOpen
    case notOpen
    case amountNotPositive(Decimal)
    case insufficientFunds(balance: Decimal, requested: Decimal)
}

public struct Account: Aggregate, Equatable, Codable {
    public static let category = "account"
    public static let initial = Account()

    public var owner: String?
    public var balance: Decimal = 0
    public var isOpen: Bool { owner != nil }

    public func evolve(_ event: AccountEvent) -> Account {
        var next = self
        switch event {
        case .opened(let opened):
            next.owner = opened.owner
            next.balance = opened.initialBalance
        case .deposited(let deposit): next.balance += deposit.amount
        case .withdrawn(let withdrawal): next.balance -= withdrawal.amount
        }
        return next
    }

    public func decide(_ command: AccountCommand) throws(AccountRejection) -> [AccountEvent] {
        switch command {
        case .open(let owner, let initialBalance):
            guard !isOpen else { throw .alreadyOpen }
            guard initialBalance >= 0 else { throw .amountNotPositive(initialBalance) }
            return [.opened(AccountOpened(owner: owner, initialBalance: initialBalance))]
        case .deposit(let amount):
            guard isOpen else { throw .notOpen }
            guard amount > 0 else { throw .amountNotPositive(amount) }
            return [.deposited(Deposited(amount: amount))]
        case .withdraw(let amount):
            guard isOpen else { throw .notOpen }
            guard amount > 0 else { throw .amountNotPositive(amount) }
            guard amount <= balance else { throw .insufficientFunds(balance: balance, requested: amount) }
            return [.withdrawn(Withdrawn(amount: amount))]
        }
    }
}

/// Accounts can be loaded from snapshots (`Repository(store, snapshots: .every(100))`).
extension Account: SnapshottingAggregate {
    public static let snapshotSchemaVersion = 1
}
