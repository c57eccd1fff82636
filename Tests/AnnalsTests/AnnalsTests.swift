import Foundation
import Testing
import Annals

/// `import Annals` alone gives an app the store (the API layer re-exports the engine).
@Suite struct AnnalsModuleTests {
    @Test func storeIsUsableThroughTheAnnalsModule() async throws {
        let path = FileManager.default.temporaryDirectory.path + "/annals-module-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try EventStore.open(at: path)
        let result = try await store.append([EventData(type: "AccountOpened", payload: Array("{}".utf8))], to: "account-1")
        #expect(result.firstPosition == 0)
        var count = 0
        for try await event in store.readAll() {
            #expect(event.stream == "account-1")
            count += 1
        }
        #expect(count == 1)
        try await store.close()
    }
}
