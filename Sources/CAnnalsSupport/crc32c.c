// CRC-32C (Castagnoli). Hardware path per function target attribute plus a runtime CPU check,
// so the package needs no global compiler flags; portable slicing-by-8 fallback otherwise.
#include "AnnalsSupport.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int s = 1; s < 8; s++) {
            c = table[0][c & 0xFF] ^ (c >> 8);
            table[s][n] = c;
        }
    }
}

uint32_t annals_crc32c_update_portable(uint32_t crc, const void *bytes, size_t length) {
    pthread_once(&table_once, build_table);
    const uint8_t *p = (const uint8_t *)bytes;
    while (length && ((uintptr_t)p & 7)) { crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8); length--; }
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= crc; // little-endian hosts only (x86-64, aarch64 in little-endian mode)
        crc = table[7][word & 0xFF] ^ table[6][(word >> 8) & 0xFF] ^ table[5][(word >> 16) & 0xFF] ^
              table[4][(word >> 24) & 0xFF] ^ table[3][(word >> 32) & 0xFF] ^ table[2][(word >> 40) & 0xFF] ^
              table[1][(word >> 48) & 0xFF] ^ table[0][word >> 56];
        p += 8;
        length -= 8;
    }
    while (length--) crc = table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t length) {
    const uint8_t *p = (const uint8_t *)bytes;
    uint64_t c = crc;
    while (length && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); length--; }
    // One dependent chain: ~8 bytes per 3 cycles. Interleaving three chains would triple it,
    // which the benchmarks have not needed so far.
    while (length >= 64) {
        uint64_t w[8];
        memcpy(w, p, 64);
        c = _mm_crc32_u64(c, w[0]); c = _mm_crc32_u64(c, w[1]);
        c = _mm_crc32_u64(c, w[2]); c = _mm_crc32_u64(c, w[3]);
        c = _mm_crc32_u64(c, w[4]); c = _mm_crc32_u64(c, w[5]);
        c = _mm_crc32_u64(c, w[6]); c = _mm_crc32_u64(c, w[7]);
        p += 64;
        length -= 64;
    }
    while (length >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; length -= 8; }
    while (length--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

static int has_hardware(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif

__attribute__((target("+crc")))
static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t length) {
    const uint8_t *p = (const uint8_t *)bytes;
    while (length && ((uintptr_t)p & 7)) { crc = __builtin_aarch64_crc32cb(crc, *p++); length--; }
    while (length >= 8) { uint64_t w; memcpy(&w, p, 8); crc = __builtin_aarch64_crc32cx(crc, w); p += 8; length -= 8; }
    while (length--) crc = __builtin_aarch64_crc32cb(crc, *p++);
    return crc;
}

static int has_hardware(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0; }
#else
static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t length) {
    return annals_crc32c_update_portable(crc, bytes, length);
}
static int has_hardware(void) { return 0; }
#endif

static int hardware_state = -1; // -1 unknown, 0 no, 1 yes (benign race: every thread computes the same)

int annals_crc32c_is_hardware(void) {
    int state = __atomic_load_n(&hardware_state, __ATOMIC_RELAXED);
    if (state < 0) {
        state = has_hardware();
        __atomic_store_n(&hardware_state, state, __ATOMIC_RELAXED);
    }
    return state;
}

uint32_t annals_crc32c_update(uint32_t crc, const void *bytes, size_t length) {
    if (annals_crc32c_is_hardware()) return crc32c_hardware(crc, bytes, length);
    return annals_crc32c_update_portable(crc, bytes, length);
}
