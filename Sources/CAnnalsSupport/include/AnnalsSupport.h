#ifndef ANNALS_SUPPORT_H
#define ANNALS_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include "AnnalsSyscalls.h"

/// Extends a CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) over `length` bytes.
///
/// `crc` is the running value *without* the final XOR: start with 0xFFFFFFFF and XOR the
/// result with 0xFFFFFFFF when done (the Swift wrapper does both). Uses the SSE4.2 / ARMv8
/// CRC32 instructions when the CPU has them (checked once at run time), otherwise a
/// slicing-by-8 table implementation. Thread-safe.
uint32_t annals_crc32c_update(uint32_t crc, const void *bytes, size_t length);

/// 1 when `annals_crc32c_update` runs on the hardware instruction, 0 for the table fallback.
int annals_crc32c_is_hardware(void);

/// Forces the portable table implementation (for tests that compare both paths).
uint32_t annals_crc32c_update_portable(uint32_t crc, const void *bytes, size_t length);

/// Asks the CPU to start loading the cache line at `address` (a hint; never faults). Stream
/// reads issue it for the frames they are about to touch, so the misses overlap.
static inline void annals_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// An acquire fence: loads after it see at least what was published before the loads before
/// it (a reader reads a durable mark, then the frames it names).
static inline void annals_acquire_fence(void) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
}

#endif
