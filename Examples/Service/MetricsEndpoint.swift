#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Prometheus

/// A minimal HTTP endpoint for Prometheus: every request on `127.0.0.1:port` gets the
/// registry's text exposition. One thread, one connection at a time — enough for a scraper.
/// An example of wiring swift-prometheus to the store's metrics, not a web server.
final class MetricsEndpoint: @unchecked Sendable {
    let registry: PrometheusCollectorRegistry
    /// The port it listens on (the kernel's choice when asked for 0).
    let port: UInt16
    private let socket: Int32

    init(registry: PrometheusCollectorRegistry, port: UInt16) throws {
        self.registry = registry
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        self.socket = socket
        var reuse: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(socket, 8) == 0 else {
            close(socket)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    /// Serves on a thread of its own until the process ends.
    func start() {
        Thread { [self] in
            while true {
                let connection = accept(socket, nil, nil)
                guard connection >= 0 else { continue }
                var request = [UInt8](repeating: 0, count: 4096)
                _ = read(connection, &request, request.count)
                let body = registry.emitToBuffer()
                let head = Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
                let response = head + body
                var sent = 0
                while sent < response.count {
                    let written = response[sent...].withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
                    if written <= 0 { break }
                    sent += written
                }
                close(connection)
            }
        }.start()
    }
}
