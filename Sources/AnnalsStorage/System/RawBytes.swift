/// Little-endian loads and stores on raw memory: the only place the format's integers are read
/// from or written to bytes. Callers check bounds once per structure (``fits(_:_:)``) and then
/// read fields without further checks.
extension UnsafeRawBufferPointer {
    /// True when `count` bytes starting at `offset` lie inside the buffer (no overflow).
    @inline(__always)
    func fits(_ offset: Int, _ count: Int) -> Bool {
        offset >= 0 && count >= 0 && offset <= self.count && count <= self.count - offset
    }

    @inline(__always) func u8(_ offset: Int) -> UInt8 { self[offset] }
    @inline(__always) func u16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) func u32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
    @inline(__always) func u64(_ offset: Int) -> UInt64 {
        UInt64(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
    @inline(__always) func i64(_ offset: Int) -> Int64 {
        Int64(littleEndian: loadUnaligned(fromByteOffset: offset, as: Int64.self))
    }

    /// A sub-buffer without bounds checks beyond the caller's ``fits(_:_:)``.
    @inline(__always)
    func slice(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: baseAddress.map { $0 + offset }, count: count)
    }

    /// True when every byte in the buffer is zero.
    func isAllZero() -> Bool {
        var index = 0
        while index + 8 <= count {
            if loadUnaligned(fromByteOffset: index, as: UInt64.self) != 0 { return false }
            index += 8
        }
        while index < count {
            if self[index] != 0 { return false }
            index += 1
        }
        return true
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always) func storeU8(_ value: UInt8, at offset: Int) { self[offset] = value }
    @inline(__always) func storeU16(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inline(__always) func storeU32(_ value: UInt32, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }
    @inline(__always) func storeU64(_ value: UInt64, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self)
    }
    @inline(__always) func storeI64(_ value: Int64, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: Int64.self)
    }

    /// Copies `bytes` to `offset` and returns the offset just past them.
    @inline(__always)
    func copy(_ bytes: UnsafeRawBufferPointer, to offset: Int) -> Int {
        if bytes.count > 0, let source = bytes.baseAddress, let target = baseAddress {
            (target + offset).copyMemory(from: source, byteCount: bytes.count)
        }
        return offset + bytes.count
    }

    /// Zeroes `count` bytes starting at `offset`.
    func mutableSlice(_ offset: Int, _ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: baseAddress.map { $0 + offset }, count: count)
    }

    func zero(_ offset: Int, _ count: Int) {
        guard count > 0, let target = baseAddress else { return }
        (target + offset).initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }
}
