// The libFuzzer entry point. `make fuzz` compiles this file and the fuzz targets
// (Tests/AnnalsStorageTests/Fuzzing) into the AnnalsStorage module
// (with -sanitize=fuzzer,address), so the targets can reach the internal decoders; the
// target is chosen by ANNALS_FUZZ_TARGET (frames, index, lz4, records, open).
#if canImport(Glibc)
import Glibc
#endif

private let fuzzTarget: FuzzTargets.Target = {
    guard let name = getenv("ANNALS_FUZZ_TARGET"), let target = FuzzTargets.Target(rawValue: String(cString: name)) else {
        return .frames
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func annalsFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.run(fuzzTarget, UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
