import Annals
import Foundation

// The seed's orders: placed → shipped → delivered, with an orders view projection.

public struct OrderItem: Codable, Sendable, Equatable {
    public var sku: String
    public var quantity: Int
    public var unitPrice: Decimal
    public init(sku: String, quantity: Int, unitPrice: Decimal) {
        self.sku = sku
        self.quantity = quantity
        self.unitPrice = unitPrice
    }
}

public struct OrderPlaced: DomainEvent, Equatable {
    public static let eventType = "OrderPlaced"
    public var customer: String
    public var items: [OrderItem]
    public var total: Decimal
    public var placedAt: Date
    public init(customer: String, items: [OrderItem], total: Decimal, placedAt: Date) {
        self.customer = customer
        self.items = items
        self.total = total
        self.placedAt = placedAt
    }
}

public struct OrderShipped: DomainEvent, Equatable {
    public static let eventType = "OrderShipped"
    public var carrier: String
    public var trackingNumber: String
    public init(carrier: String, trackingNumber: String) {
        self.carrier = carrier
        self.trackingNumber = trackingNumber
    }
}

public struct OrderDelivered: DomainEvent, Equatable {
    public static let eventType = "OrderDelivered"
    public var signature: String
    public init(signature: String) { self.signature = signature }
}

public enum OrderEvent: EventFamily, Equatable {
    case placed(OrderPlaced)
    case shipped(OrderShipped)
    case delivered(OrderDelivered)

    public static let members: [EventMember<OrderEvent>] = [
        .member(OrderPlaced.self, OrderEvent.placed),
        .member(OrderShipped.self, OrderEvent.shipped),
        .member(OrderDelivered.self, OrderEvent.delivered),
    ]

    public var event: any DomainEvent {
        switch self {
        case .placed(let event): event
        case .shipped(let event): event
        case .delivered(let event): event
        }
    }
}

public enum OrderCommand: Sendable {
    case place(customer: String, items: [OrderItem], at: Date)
    case ship(carrier: String, trackingNumber: String)
    case deliver(signature: String)
}

public enum OrderRejection: Error, Equatable, Sendable {
    case alreadyPlaced
    case noItems
    case notPlaced
    case alreadyShipped
    case notShipped
    case alreadyDelivered
}

public struct Order: Aggregate, Equatable {
    public enum Status: String, Codable, Sendable { case none, placed, shipped, delivered }

    public static let category = "order"
    public static let initial = Order()

    public var status: Status = .none
    public var customer: String?
    public var total: Decimal = 0
    public var carrier: String?
    public var trackingNumber: String?

    public func evolve(_ event: OrderEvent) -> Order {
        var next = self
        switch event {
        case .placed(let placed):
            next.status = .placed
            next.customer = placed.customer
            next.total = placed.total
        case .shipped(let shipped):
            next.status = .shipped
            next.carrier = shipped.carrier
            next.trackingNumber = shipped.trackingNumber
        case .delivered:
            next.status = .delivered
        }
        return next
    }

    public func decide(_ command: OrderCommand) throws(OrderRejection) -> [OrderEvent] {
        switch command {
        case .place(let customer, let items, let date):
            guard status == .none else { throw .alreadyPlaced }
            guard !items.isEmpty else { throw .noItems }
            let total = items.reduce(Decimal(0)) { $0 + $1.unitPrice * Decimal($1.quantity) }
            return [.placed(OrderPlaced(customer: customer, items: items, total: total, placedAt: date))]
        case .ship(let carrier, let trackingNumber):
            switch status {
            case .none: throw .notPlaced
            case .shipped, .delivered: throw .alreadyShipped
            case .placed: return [.shipped(OrderShipped(carrier: carrier, trackingNumber: trackingNumber))]
            }
        case .deliver(let signature):
            switch status {
            case .none, .placed: throw .notShipped
            case .delivered: throw .alreadyDelivered
            case .shipped: return [.delivered(OrderDelivered(signature: signature))]
            }
        }
    }
}

/// The orders view: one summary per order, kept in the store by a `ProjectionRunner`.
public struct OrdersView: Projection {
    public struct Summary: Codable, Sendable, Equatable {
        public var customer: String
        public var total: Decimal
        public var status: Order.Status
        public var carrier: String?
    }

    public typealias Event = OrderEvent
    public static let name = "orders-view"
    public static let version = 1
    public static let filter = SubscriptionFilter.streamPrefix("order-")
    public static let initialState: [String: Summary] = [:]

    public static func apply(_ event: OrderEvent, recorded: RecordedEvent, to state: inout [String: Summary]) {
        let id = String(recorded.stream.dropFirst("order-".count))
        switch event {
        case .placed(let placed): state[id] = Summary(customer: placed.customer, total: placed.total, status: .placed)
        case .shipped(let shipped):
            state[id]?.status = .shipped
            state[id]?.carrier = shipped.carrier
        case .delivered: state[id]?.status = .delivered
        }
    }
}
