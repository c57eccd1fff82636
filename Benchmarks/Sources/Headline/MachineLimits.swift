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
    /// memcpy of `batchBytes` into a fallocated MAP_SHARED file then msync, one after another:
    /// the ceiling for one appender committing one batch per sync.
    var mappedBatchSyncsPerSecond = 0.0
    var batchBytes = 0

    static func measure(in directory: String, batchBytes: Int) -> MachineLimits {
        var limits = MachineLimits()
        limits.batchBytes = batchBytes
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
        // One batch at a time: copy into a fallocated mapping, msync, repeat.
        let mappedPath = directory + "/mapped-batches.bin"
        let mappedFd = open(mappedPath, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        let mappedSize = 64 << 20
        if mappedFd >= 0, posix_fallocate(mappedFd, 0, off_t(mappedSize)) == 0,
           let mapping = mmap(nil, mappedSize, PROT_READ | PROT_WRITE, MAP_SHARED, mappedFd, 0), mapping != MAP_FAILED {
            var offset = 0
            var syncs = 0
            let seconds = Stopwatch.time {
                while offset + batchBytes < mappedSize {
                    memcpy(mapping + offset, source, batchBytes)
                    let start = offset & ~4095
                    msync(mapping + start, offset + batchBytes - start, MS_SYNC)
                    offset += batchBytes
                    syncs += 1
                }
            }
            limits.mappedBatchSyncsPerSecond = Double(syncs) / seconds
            munmap(mapping, mappedSize)
        }
        if mappedFd >= 0 { close(mappedFd) }
        unlink(mappedPath)
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
