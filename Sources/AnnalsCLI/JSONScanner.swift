/// A strict RFC 8259 JSON scanner over UTF-8 bytes. It validates and reports where values are,
/// so `import` can store a line's `data` exactly as written (key order, number spelling) and
/// `dump` can tell whether stored bytes are JSON.
struct JSONScanner {
    struct Failure: Error, CustomStringConvertible {
        let offset: Int
        let message: String
        var description: String { "\(message) at column \(offset + 1)" }
    }

    enum Kind: Equatable { case object, array, string, number, bool, null }

    struct Member {
        let key: String
        let kind: Kind
        /// Byte range of the value in the scanned buffer.
        let range: Range<Int>
    }

    private let bytes: UnsafeRawBufferPointer
    private var index = 0
    private var depth = 0
    private static let maximumDepth = 512

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// True when `bytes` hold exactly one JSON value (surrounding whitespace allowed).
    static func isJSON(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var scanner = JSONScanner(bytes)
        do {
            scanner.skipWhitespace()
            _ = try scanner.value()
            scanner.skipWhitespace()
            return scanner.index == bytes.count
        } catch {
            return false
        }
    }

    /// The members of a top-level JSON object, in order. Throws on anything else.
    static func objectMembers(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> [Member] {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        guard scanner.peek() == UInt8(ascii: "{") else { throw Failure(offset: scanner.index, message: "expected a JSON object") }
        var members: [Member] = []
        try scanner.object { key, kind, range in members.append(Member(key: key, kind: kind, range: range)) }
        scanner.skipWhitespace()
        guard scanner.index == bytes.count else { throw Failure(offset: scanner.index, message: "text after the object") }
        return members
    }

    /// The members of the object at `range` of `bytes` (a value an earlier scan found).
    static func objectMembers(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(Failure) -> [Member] {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]))
        scanner.index = range.lowerBound
        guard scanner.peek() == UInt8(ascii: "{") else { throw Failure(offset: scanner.index, message: "expected a JSON object") }
        var members: [Member] = []
        try scanner.object { key, kind, range in members.append(Member(key: key, kind: kind, range: range)) }
        return members
    }

    /// The elements (kind and byte range) of the array at `range` of `bytes`.
    static func arrayElements(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(Failure) -> [(kind: Kind, range: Range<Int>)] {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]))
        scanner.index = range.lowerBound
        try scanner.expect(UInt8(ascii: "["))
        var elements: [(kind: Kind, range: Range<Int>)] = []
        scanner.skipWhitespace()
        if scanner.peek() == UInt8(ascii: "]") { return elements }
        while true {
            scanner.skipWhitespace()
            let start = scanner.index
            let kind = try scanner.value()
            elements.append((kind, start..<scanner.index))
            scanner.skipWhitespace()
            if scanner.peek() == UInt8(ascii: ",") { scanner.index += 1; continue }
            try scanner.expect(UInt8(ascii: "]"))
            return elements
        }
    }

    /// The strings of the array of strings at `range` of `bytes`; nil when an element is not a string.
    static func stringArray(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(Failure) -> [String]? {
        var strings: [String] = []
        for element in try arrayElements(bytes, range) {
            guard element.kind == .string else { return nil }
            strings.append(try decodeString(bytes, element.range))
        }
        return strings
    }

    /// Decodes the JSON string whose opening quote is at `range.lowerBound`.
    static func decodeString(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(Failure) -> String {
        var scanner = JSONScanner(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]))
        scanner.index = range.lowerBound
        return try scanner.string()
    }

    // MARK: Grammar

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func expect(_ byte: UInt8) throws(Failure) {
        guard peek() == byte else {
            throw Failure(offset: index, message: "expected '\(Character(Unicode.Scalar(byte)))'")
        }
        index += 1
    }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    private mutating func value() throws(Failure) -> Kind {
        guard let byte = peek() else { throw Failure(offset: index, message: "unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"):
            try nested { (scanner) throws(Failure) in try scanner.object { _, _, _ in } }
            return .object
        case UInt8(ascii: "["):
            try nested { (scanner) throws(Failure) in
                scanner.index += 1
                scanner.skipWhitespace()
                if scanner.peek() == UInt8(ascii: "]") { scanner.index += 1; return }
                while true {
                    scanner.skipWhitespace()
                    _ = try scanner.value()
                    scanner.skipWhitespace()
                    if scanner.peek() == UInt8(ascii: ",") { scanner.index += 1; continue }
                    try scanner.expect(UInt8(ascii: "]"))
                    return
                }
            }
            return .array
        case UInt8(ascii: "\""):
            _ = try string()
            return .string
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        default:
            try number()
            return .number
        }
    }

    /// Scans an object starting at its `{`, calling `member` with each key, value kind and
    /// value range in order.
    private mutating func object(_ member: (String, Kind, Range<Int>) -> Void) throws(Failure) {
        index += 1
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw Failure(offset: index, message: "expected a key") }
            let key = try string()
            skipWhitespace()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            let start = index
            let kind = try value()
            member(key, kind, start..<index)
            skipWhitespace()
            if peek() == UInt8(ascii: ",") { index += 1; continue }
            try expect(UInt8(ascii: "}"))
            return
        }
    }

    private mutating func nested(_ body: (inout JSONScanner) throws(Failure) -> Void) throws(Failure) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw Failure(offset: index, message: "nesting deeper than \(Self.maximumDepth)") }
        try body(&self)
        depth -= 1
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw Failure(offset: index, message: "invalid literal") }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw Failure(offset: index, message: "invalid literal")
        }
        index += count
    }

    private mutating func number() throws(Failure) {
        let start = index
        func digits(_ scanner: inout JSONScanner) -> Int {
            let from = scanner.index
            while let byte = scanner.peek(), byte >= 0x30 && byte <= 0x39 { scanner.index += 1 }
            return scanner.index - from
        }
        if peek() == UInt8(ascii: "-") { index += 1 }
        if peek() == UInt8(ascii: "0") {
            index += 1
        } else if digits(&self) == 0 {
            throw Failure(offset: start, message: "invalid value")
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw Failure(offset: index, message: "invalid number") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw Failure(offset: index, message: "invalid number") }
        }
    }

    /// Scans a string starting at its opening quote and returns its decoded value.
    private mutating func string() throws(Failure) -> String {
        let start = index
        index += 1
        var plainStart = index
        var output = ""
        func flushPlain(_ scanner: JSONScanner, upTo end: Int) throws(Failure) {
            guard end > plainStart else { return }
            let raw = UnsafeRawBufferPointer(rebasing: scanner.bytes[plainStart..<end])
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw Failure(offset: plainStart, message: "invalid UTF-8 in string")
            }
            output += text
        }
        while true {
            guard let byte = peek() else { throw Failure(offset: start, message: "unterminated string") }
            if byte == UInt8(ascii: "\"") {
                try flushPlain(self, upTo: index)
                index += 1
                return output
            }
            if byte < 0x20 { throw Failure(offset: index, message: "control character in string") }
            if byte == UInt8(ascii: "\\") {
                try flushPlain(self, upTo: index)
                index += 1
                guard let escape = peek() else { throw Failure(offset: index, message: "unterminated escape") }
                index += 1
                var scalar: Unicode.Scalar
                switch escape {
                case UInt8(ascii: "\""): scalar = "\""
                case UInt8(ascii: "\\"): scalar = "\\"
                case UInt8(ascii: "/"): scalar = "/"
                case UInt8(ascii: "b"): scalar = "\u{08}"
                case UInt8(ascii: "f"): scalar = "\u{0C}"
                case UInt8(ascii: "n"): scalar = "\n"
                case UInt8(ascii: "r"): scalar = "\r"
                case UInt8(ascii: "t"): scalar = "\t"
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard peek() == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                            throw Failure(offset: index, message: "unpaired surrogate")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw Failure(offset: index, message: "unpaired surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let value = Unicode.Scalar(code) else { throw Failure(offset: index, message: "invalid \\u escape") }
                    scalar = value
                default:
                    throw Failure(offset: index - 1, message: "invalid escape")
                }
                output.unicodeScalars.append(scalar)
                plainStart = index
                continue
            }
            index += 1
        }
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw Failure(offset: index, message: "short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
            default: throw Failure(offset: index, message: "invalid hex digit")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }
}
