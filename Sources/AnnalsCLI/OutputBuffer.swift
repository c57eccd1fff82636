#if canImport(Glibc)
import Glibc
#endif

/// Buffered writes to a file descriptor (stdout by default), with the JSON string escaping the
/// dump format uses: `\"`, `\\`, `\b \f \n \r \t`, other control characters as `\u00XX`
/// (lower-case hex), everything else as raw UTF-8.
struct OutputBuffer {
    private var bytes: [UInt8] = []
    private let fd: Int32
    private let capacity = 1 << 16

    init(fd: Int32 = 1) {
        self.fd = fd
        bytes.reserveCapacity(capacity + 4096)
    }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }

    mutating func appendNumber<N: BinaryInteger>(_ value: N) { append(String(value)) }

    mutating func appendJSONString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x08: bytes.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Ends a line and writes out the buffer when it is full.
    mutating func endLine() {
        bytes.append(0x0A)
        if bytes.count >= capacity { flush() }
    }

    /// Writes everything buffered.
    mutating func flush() {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                break // stdout closed (e.g. `| head`): drop the rest
            }
            written += n
        }
        bytes.removeAll(keepingCapacity: true)
    }
}

/// Progress lines on stderr, only when stderr is a terminal.
struct Progress {
    private let enabled = isatty(2) == 1
    private var lastNanoseconds: UInt64 = 0

    mutating func update(_ message: @autoclosure () -> String) {
        guard enabled else { return }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nanoseconds = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        guard nanoseconds - lastNanoseconds > 200_000_000 else { return }
        lastNanoseconds = nanoseconds
        writeStandardError("\r\u{1B}[K" + message())
    }

    func finish() {
        guard enabled else { return }
        writeStandardError("\r\u{1B}[K")
    }
}

/// Prints `message` on stderr.
func printError(_ message: String) {
    writeStandardError(message + "\n")
}

func writeStandardError(_ text: String) {
    var errorOutput = OutputBuffer(fd: 2)
    errorOutput.append(text)
    errorOutput.flush()
}
