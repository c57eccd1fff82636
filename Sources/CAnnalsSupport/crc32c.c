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

/* Shifting a CRC over runs of zero bytes, so independent CRC chains over adjacent blocks can be
   combined: crc(A || B) = shift(crc(A), |B|) ^ crc0(B). The operator for a fixed length is a
   32x32 matrix over GF(2), applied a byte at a time through four 256-entry tables. */
static uint32_t gf2_matrix_times(const uint32_t *matrix, uint32_t vector) {
    uint32_t sum = 0;
    while (vector) {
        if (vector & 1) sum ^= *matrix;
        vector >>= 1;
        matrix++;
    }
    return sum;
}

static void gf2_matrix_square(uint32_t *square, const uint32_t *matrix) {
    for (int n = 0; n < 32; n++) square[n] = gf2_matrix_times(matrix, matrix[n]);
}

/* Operator that appends `length` zero bytes to a CRC state. */
static void zeros_operator(uint32_t *even, size_t length) {
    uint32_t odd[32];
    odd[0] = POLY;
    uint32_t row = 1;
    for (int n = 1; n < 32; n++) { odd[n] = row; row <<= 1; }
    gf2_matrix_square(even, odd); /* 2 zero bits */
    gf2_matrix_square(odd, even); /* 4 zero bits */
    /* Each squaring doubles the number of zero bits: 8 bits (one byte) first, then 2, 4, … bytes. */
    do {
        gf2_matrix_square(even, odd);
        length >>= 1;
        if (length == 0) return;
        gf2_matrix_square(odd, even);
        length >>= 1;
    } while (length);
    for (int n = 0; n < 32; n++) even[n] = odd[n];
}

static void zeros_tables(uint32_t zeros[4][256], size_t length) {
    uint32_t op[32];
    zeros_operator(op, length);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_matrix_times(op, n);
        zeros[1][n] = gf2_matrix_times(op, n << 8);
        zeros[2][n] = gf2_matrix_times(op, n << 16);
        zeros[3][n] = gf2_matrix_times(op, n << 24);
    }
}

static inline uint32_t shift_crc(uint32_t zeros[4][256], uint32_t crc) {
    return zeros[0][crc & 0xFF] ^ zeros[1][(crc >> 8) & 0xFF] ^ zeros[2][(crc >> 16) & 0xFF] ^ zeros[3][crc >> 24];
}

#define LONG_BLOCK 8192
#define SHORT_BLOCK 256
static uint32_t zeros_long[4][256];
static uint32_t zeros_short[4][256];
static pthread_once_t zeros_once = PTHREAD_ONCE_INIT;
static void build_zeros(void) {
    zeros_tables(zeros_long, LONG_BLOCK);
    zeros_tables(zeros_short, SHORT_BLOCK);
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/* Three independent crc32 chains over three adjacent blocks hide the instruction's 3-cycle
   latency (~3x one chain); the chains are combined with the zero-shift tables for `block`. */
__attribute__((target("sse4.2")))
static inline uint64_t crc32c_three_way(uint64_t crc0, const uint8_t **position, size_t *length,
                                        size_t block, uint32_t zeros[4][256]) {
    const uint8_t *p = *position;
    while (*length >= 3 * block) {
        uint64_t crc1 = 0, crc2 = 0;
        const uint8_t *end = p + block;
        do {
            uint64_t a, b, c;
            memcpy(&a, p, 8); memcpy(&b, p + block, 8); memcpy(&c, p + 2 * block, 8);
            crc0 = _mm_crc32_u64(crc0, a);
            crc1 = _mm_crc32_u64(crc1, b);
            crc2 = _mm_crc32_u64(crc2, c);
            p += 8;
        } while (p < end);
        crc0 = shift_crc(zeros, (uint32_t)crc0) ^ (uint32_t)crc1;
        crc0 = shift_crc(zeros, (uint32_t)crc0) ^ (uint32_t)crc2;
        p += 2 * block;
        *length -= 3 * block;
    }
    *position = p;
    return crc0;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hardware(uint32_t crc, const void *bytes, size_t length) {
    pthread_once(&zeros_once, build_zeros);
    const uint8_t *p = (const uint8_t *)bytes;
    uint64_t crc0 = crc;
    while (length && ((uintptr_t)p & 7)) { crc0 = _mm_crc32_u8((uint32_t)crc0, *p++); length--; }
    crc0 = crc32c_three_way(crc0, &p, &length, LONG_BLOCK, zeros_long);
    crc0 = crc32c_three_way(crc0, &p, &length, SHORT_BLOCK, zeros_short);
    while (length >= 8) { uint64_t w; memcpy(&w, p, 8); crc0 = _mm_crc32_u64(crc0, w); p += 8; length -= 8; }
    while (length--) crc0 = _mm_crc32_u8((uint32_t)crc0, *p++);
    return (uint32_t)crc0;
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
