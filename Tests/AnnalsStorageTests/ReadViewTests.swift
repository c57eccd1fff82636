import Dispatch
import Foundation
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// Readers take only the view's lock: every read entry point completes while another thread
/// holds the writer lock, as a roll does through its syncs and file creation.
@Suite struct ReadViewTests {
    @Test func everyReadCompletesWhileTheWriterLockIsHeld() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: StoreOptions(segmentSizeBytes: 64 * 1024, compression: .none))
        for index in 0..<400 {
            _ = try await store.append([EventData(type: "T", payload: Array(repeating: UInt8(index % 251), count: 300))],
                                       to: "s-\(index % 4)")
        }
        try await store.setRetention(StreamRetention(maxCount: 50), for: "s-3")
        #expect(try store.statistics().segments > 1, "reads cross sealed and open segments")
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        Thread { store.writer.withLock { _ in held.signal(); release.wait() } }.start()
        held.wait()
        let done = DispatchSemaphore(value: 0)
        let results = Locked<[String]>([])
        Thread {
            var seen: [String] = []
            seen.append("end \(store.endPosition)")
            seen.append("last \(store.lastRevision(of: "s-1") ?? 0)")
            var cursor = store.read("s-2").makeCursor()
            var count = 0
            while (try? cursor.next()) != nil { count += 1 }
            seen.append("stream \(count)")
            var all = store.readAll().makeCursor()
            count = 0
            while (try? all.next()) != nil { count += 1 }
            seen.append("all \(count)")
            var backwards = store.readAllBackwards(limit: 10).makeCursor()
            count = 0
            while (try? backwards.next()) != nil { count += 1 }
            seen.append("backwards \(count)")
            seen.append("retention \(store.retention(of: "s-3").maxCount ?? 0)")
            seen.append("closed \(store.isClosed)")
            seen.append("segments \((try? store.statistics().segments) ?? 0)")
            results.withLock { $0 = seen }
            done.signal()
        }.start()
        let finished = done.wait(timeout: .now() + 10) == .success
        release.signal()
        #expect(finished, "a read waited for the writer lock")
        if finished {
            let seen = results.withLock { $0 }
            #expect(seen.contains("end 401") && seen.contains("last 99") && seen.contains("stream 100"), "\(seen)")
            #expect(seen.contains("backwards 10") && seen.contains("retention 50"), "\(seen)")
        }
        try await store.close()
    }
}
