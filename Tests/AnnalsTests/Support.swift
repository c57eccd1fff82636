import Annals
import Foundation

/// A fresh store directory, removed at deinit.
final class ScratchStore: @unchecked Sendable {
    let directory = FileManager.default.temporaryDirectory.path + "/annals-api-\(UUID().uuidString)"
    var path: String { directory + "/store" }
    init() { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func open(_ durability: Durability = .none) throws -> EventStore {
        try EventStore.open(at: path, options: StoreOptions(durability: durability, segmentSizeBytes: 256 * 1024))
    }
}
