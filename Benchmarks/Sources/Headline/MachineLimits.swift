#if canImport(Glibc)
import Glibc
#endif
import AnnalsStorage

/// The machine's own limits, measured in the same run as the store so ratios mean something.
struct MachineLimits {
    var memcpyGigabytesPerSecond = 0.0
    var sequentialWriteGigabytesPerSecond = 0.0
    var fdatasyncPerSecond = 0.0
    var fdatasyncP50Microseconds = 0.0
    var crc32cGigabytesPerSecond = 0.0

    static func measure(in directory: String) -> MachineLimits {
        var limits = MachineLimits()
        let size = 256 << 20
        let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { source.deallocate(); target.deallocate() }
        memset(source, 0x5A, size)
        memset(target, 0, size) // touch every page first: first-touch runs ~30x slower here
        var best = Double.infinity
        for _ in 0..<5 {
            let seconds = Stopwatch.time { memcpy(target, source, size) }
            best = min(best, seconds)
        }
        limits.memcpyGigabytesPerSecond = Double(size) / best / 1e9

        var crcBest = Double.infinity
        let crcBuffer = UnsafeRawBufferPointer(start: source, count: 64 << 20)
        for _ in 0..<5 {
            var sink: UInt32 = 0
            let seconds = Stopwatch.time { sink ^= CRC32C.checksum(crcBuffer) }
            crcBest = min(crcBest, seconds)
            if sink == 1 { print("") }
        }
        limits.crc32cGigabytesPerSecond = Double(crcBuffer.count) / crcBest / 1e9

        // Sequential write of 512 MiB in 1 MiB writes, then fsync.
        let path = directory + "/sequential-write.bin"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0 {
            let chunk = 1 << 20
            let total = 512 << 20
            let seconds = Stopwatch.time {
                var written = 0
                while written < total {
                    let n = write(fd, source, chunk)
                    if n <= 0 { break }
                    written += n
                }
                fsync(fd)
            }
            limits.sequentialWriteGigabytesPerSecond = Double(total) / seconds / 1e9
            close(fd)
            unlink(path)
        }

        // 4 KiB pwrite + fdatasync, one at a time.
        let syncPath = directory + "/fdatasync.bin"
        let syncFd = open(syncPath, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        if syncFd >= 0 {
            var latencies: [Double] = []
            for index in 0..<600 {
                let seconds = Stopwatch.time {
                    pwrite(syncFd, source, 4096, off_t(index * 4096))
                    fdatasync(syncFd)
                }
                if index >= 100 { latencies.append(seconds) }
            }
            let total = latencies.reduce(0, +)
            limits.fdatasyncPerSecond = Double(latencies.count) / total
            limits.fdatasyncP50Microseconds = Stopwatch.percentile(latencies, 0.5) * 1e6
            close(syncFd)
            unlink(syncPath)
        }
        return limits
    }
}

enum Stopwatch {
    static func time(_ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        let elapsed = clock.measure(body)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func time(_ body: () async throws -> Void) async rethrows -> Double {
        let start = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }
}
