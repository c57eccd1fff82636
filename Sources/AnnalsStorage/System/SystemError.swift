#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which call, on which path, and the `errno` it returned.
///
/// Every syscall the engine makes goes through one small wrapper and fails with this error, so a
/// message always says what was attempted where (`fdatasync("/data/orders/segments/…"): EIO`).
public struct SystemError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The C function that failed, e.g. `"msync"`.
    public let call: String
    /// The file or directory the call was about.
    public let path: String
    /// The `errno` value.
    public let errorNumber: Int32

    /// The failure of system call `call` on `path` with `errno` `errorNumber`.
    public init(call: String, path: String, errorNumber: Int32) {
        self.call = call
        self.path = path
        self.errorNumber = errorNumber
    }

    /// True when the file system is out of space (or quota).
    public var isOutOfSpace: Bool { errorNumber == ENOSPC || errorNumber == EDQUOT }

    public var description: String {
        let reason = strerror(errorNumber).map { String(cString: $0) } ?? "errno \(errorNumber)"
        return "\(call)(\"\(path)\"): \(reason) (errno \(errorNumber))"
    }
}
