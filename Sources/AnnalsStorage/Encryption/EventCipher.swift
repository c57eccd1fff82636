import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// AES-256-GCM over an encrypted record's body (`format-spec.md` §3.9). The associated data
/// binds the body to its record: position, revision, stream, and every record byte before the
/// nonce but the length (type, flags, sizes, timestamp, id, tags, key number), so a body moved
/// to another record, or a record whose clear fields changed, does not authenticate.
enum EventCipher {
    private static let associatedDataMagic = Array("ANNALSEV".utf8)

    /// Calls `body` with the associated data of event `position`/`revision` of `stream`, whose
    /// record's bytes `[4, 44 + t + g)` are `recordFields` (built on the stack).
    static func withAssociatedData<R>(
        position: UInt64, revision: UInt64, stream: UnsafeRawBufferPointer, recordFields: UnsafeRawBufferPointer,
        _ body: (UnsafeRawBufferPointer) -> R
    ) -> R {
        let count = 26 + stream.count + recordFields.count
        return withUnsafeTemporaryAllocation(byteCount: count, alignment: 8) { bytes in
            var cursor = associatedDataMagic.withUnsafeBytes { bytes.copy($0, to: 0) }
            bytes.storeU64(position, at: cursor)
            bytes.storeU64(revision, at: cursor + 8)
            bytes.storeU16(UInt16(stream.count), at: cursor + 16)
            cursor = bytes.copy(stream, to: cursor + 18)
            _ = bytes.copy(recordFields, to: cursor)
            return body(UnsafeRawBufferPointer(bytes))
        }
    }

    /// The record bytes the associated data covers: from `typeLength` to the end of the key number.
    static func recordFields(of recordOffset: Int, bodyOffset: Int, in bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        bytes.slice(recordOffset + RecordLayout.typeLength, bodyOffset + EncryptedBodyLayout.nonce - recordOffset - RecordLayout.typeLength)
    }

    /// Encrypts `plaintext` under `nonce` (12 fresh random bytes) and writes nonce, ciphertext
    /// and tag after the key number of the body at `bodyOffset`. Returns the ciphertext's size,
    /// or nil when the cipher refuses (a key or nonce of another size; nothing else is known to).
    static func seal(
        _ plaintext: UnsafeRawBufferPointer, key: SymmetricKey, nonce: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer,
        into buffer: UnsafeMutableRawBufferPointer, bodyOffset: Int
    ) -> Int? {
        guard let nonce = try? AES.GCM.Nonce(data: nonce),
              let combined = (try? AES.GCM.seal(plaintext, using: key, nonce: nonce, authenticating: associatedData))?.combined
        else { return nil }
        combined.withUnsafeBytes { _ = buffer.copy($0, to: bodyOffset + EncryptedBodyLayout.nonce) }
        return plaintext.count
    }

    /// Decrypts the body of an encrypted record into `target` (exactly the decoded size:
    /// metadata then payload), decompressing it when it is an LZ4 block. False when it does
    /// not authenticate or decode: corruption, never returned as data.
    static func open(
        _ layout: EventRecordLayout, in bytes: UnsafeRawBufferPointer, key: SymmetricKey, associatedData: UnsafeRawBufferPointer,
        into target: UnsafeMutableRawBufferPointer
    ) -> Bool {
        let sealed = bytes.slice(layout.bodyOffset + EncryptedBodyLayout.nonce, layout.offset + layout.length - layout.bodyOffset - EncryptedBodyLayout.nonce)
        guard let box = try? AES.GCM.SealedBox(combined: sealed),
              let plaintext = try? AES.GCM.open(box, using: key, authenticating: associatedData)
        else { return false }
        return plaintext.withUnsafeBytes { plaintext in
            if layout.isEncryptedCompressed { return LZ4.decompress(plaintext, into: target, dictionary: nil) }
            guard plaintext.count == target.count else { return false }
            if plaintext.count > 0 { target.copyMemory(from: plaintext) }
            return true
        }
    }
}
