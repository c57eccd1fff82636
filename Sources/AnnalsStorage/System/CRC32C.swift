import CAnnalsSupport

/// CRC-32C (Castagnoli): reflected polynomial 0x1EDC6F41 (0x82F63B78 reversed), initial value
/// 0xFFFFFFFF, final XOR 0xFFFFFFFF. `CRC32C.checksum("123456789")` is 0xE3069283.
/// Runs on the CPU's CRC32 instruction when present (SSE4.2 / ARMv8), tables otherwise.
public enum CRC32C {
    /// The CRC-32C of `bytes`.
    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        return ~annals_crc32c_update(0xFFFF_FFFF, base, bytes.count)
    }

    /// The CRC-32C of a byte array.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The table implementation, whatever the CPU has (for tests comparing both paths).
    @_spi(Testing) public static func portableChecksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, raw.count > 0 else { return 0 }
            return ~annals_crc32c_update_portable(0xFFFF_FFFF, base, raw.count)
        }
    }

    /// True when the hardware instruction is in use.
    public static var isHardwareAccelerated: Bool { annals_crc32c_is_hardware() != 0 }
}
