import AnnalsStorage

/// Seeded generator of realistic JSON events (orders, payments, shipping, cancellations,
/// accounts), 200–500 bytes each, ~350 on average: varied ids, names, addresses, amounts and
/// timestamps, never repetitive or random bytes. The same seed gives the same events on every
/// machine, so tests and benchmarks (compression ratios above all) repeat exactly.
public struct RealisticEvents: Sendable {
    private var random: SeededGenerator

    public init(seed: UInt64 = 0x5EED) { random = SeededGenerator(seed: seed) }

    private mutating func next() -> UInt64 { random.next() }

    private mutating func pick<T>(_ values: [T]) -> T { values[Int(next() % UInt64(values.count))] }
    private mutating func number(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
    private mutating func hex(_ count: Int) -> String {
        let digits = Array("0123456789abcdef")
        return String((0..<count).map { _ in digits[Int(next() & 15)] })
    }

    private static let firstNames = ["Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Mia",
                                     "Lucas", "Chloé", "Mateo", "Aanya", "Kenji", "Zanele", "Søren", "Ines", "Tomás"]
    private static let lastNames = ["Smith", "García", "Nguyen", "Müller", "Kowalski", "Okafor", "Rossi", "Tanaka",
                                    "Johansson", "Dubois", "Silva", "Khan", "O'Brien", "Novak", "Haddad", "Lindqvist"]
    private static let streets = ["Maple Street", "Harbour Road", "Rue de Rivoli", "Calle Mayor", "King's Parade",
                                  "Elm Avenue", "Bahnhofstraße", "Via Roma", "Queen Street West", "Sunset Boulevard"]
    private static let cities = [("Lisbon", "PT"), ("Lyon", "FR"), ("Leeds", "GB"), ("Austin", "US"), ("Osaka", "JP"),
                                 ("Gdańsk", "PL"), ("Porto Alegre", "BR"), ("Toronto", "CA"), ("Munich", "DE"), ("Turin", "IT")]
    private static let products = ["espresso-beans-1kg", "walnut-desk-organizer", "merino-socks-3pk", "usb-c-hub-7in1",
                                   "ceramic-pour-over", "trail-running-shoe", "linen-duvet-cover", "cast-iron-skillet"]
    private static let services = ["checkout-api", "payments-gateway", "fulfilment-worker", "accounts-service"]
    private static let carriers = ["DHL Express", "UPS Ground", "La Poste Colissimo", "Royal Mail Tracked 24", "FedEx"]

    private mutating func timestamp() -> String {
        "2026-\(pad(number(1...12)))-\(pad(number(1...28)))T\(pad(number(0...23))):\(pad(number(0...59))):\(pad(number(0...59))).\(number(100...999))Z"
    }
    private func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
    private mutating func amount() -> String { "\(number(1...2400)).\(pad(number(0...99)))" }
    private mutating func customer() -> String {
        let first = pick(Self.firstNames), last = pick(Self.lastNames)
        return #""customer":{"id":"cus_\#(hex(12))","name":"\#(first) \#(last)","email":"\#(first.lowercased()).\#(last.lowercased())\#(number(1...99))@example.com"}"#
    }
    private mutating func address() -> String {
        let (city, country) = pick(Self.cities)
        return #""address":{"line1":"\#(number(1...300)) \#(pick(Self.streets))","city":"\#(city)","postcode":"\#(number(10000...99999))","country":"\#(country)"}"#
    }

    /// The next event: its stream (e.g. `order-1234`), type and JSON payload.
    public mutating func nextEvent(streams: Int = 10_000) -> (stream: String, event: EventData) {
        let id = number(1...streams)
        let kind = next() % 10
        let type: String
        let json: String
        switch kind {
        case 0, 1, 2:
            type = "OrderPlaced"
            let lines = (0..<number(1...3)).map { _ in
                #"{"sku":"\#(pick(Self.products))","qty":\#(number(1...4)),"unitPrice":\#(amount())}"#
            }.joined(separator: ",")
            json = #"{"orderId":"ord_\#(hex(10))",\#(customer()),"lines":[\#(lines)],"currency":"EUR","placedAt":"\#(timestamp())"}"#
        case 3, 4:
            type = "PaymentAuthorized"
            json = #"{"paymentId":"pay_\#(hex(16))","orderId":"ord_\#(hex(10))","amount":\#(amount()),"currency":"EUR","method":{"type":"card","brand":"\#(pick(["visa", "mastercard", "amex"]))","last4":"\#(number(1000...9999))","expiry":"\#(pad(number(1...12)))/\#(number(27...33))"},"authorizedAt":"\#(timestamp())","riskScore":\#(number(0...99))}"#
        case 5, 6:
            type = "ShipmentDispatched"
            json = #"{"shipmentId":"shp_\#(hex(12))","orderId":"ord_\#(hex(10))","carrier":"\#(pick(Self.carriers))","trackingNumber":"\#(hex(18).uppercased())",\#(address()),"parcels":\#(number(1...3)),"weightGrams":\#(number(120...18000)),"dispatchedAt":"\#(timestamp())"}"#
        case 7:
            type = "OrderCancelled"
            json = #"{"orderId":"ord_\#(hex(10))","reason":"\#(pick(["customer_request", "payment_failed", "out_of_stock", "fraud_suspected"]))","refund":{"amount":\#(amount()),"currency":"EUR"},"cancelledBy":"usr_\#(hex(8))","cancelledAt":"\#(timestamp())"}"#
        default:
            type = pick(["AccountOpened", "FundsDeposited", "FundsWithdrawn"])
            json = #"{"accountId":"acc_\#(hex(12))",\#(customer()),"amount":\#(amount()),"balanceAfter":\#(amount()),"reference":"\#(hex(20))","at":"\#(timestamp())"}"#
        }
        let stream = (kind < 5 ? "order-" : kind < 7 ? "shipment-" : kind == 7 ? "order-" : "account-") + String(id)
        return (stream, EventData(type: type, payload: Array(json.utf8), metadata: Array(#"{"correlationId":"\#(hex(16))","causationId":"\#(hex(16))","source":"\#(pick(Self.services))","v":1}"#.utf8)))
    }

    /// `count` events, generated once.
    public mutating func events(_ count: Int, streams: Int = 10_000) -> [(stream: String, event: EventData)] {
        (0..<count).map { _ in nextEvent(streams: streams) }
    }
}
