#ifndef ANNALS_CLZ4_SHIM_H
#define ANNALS_CLZ4_SHIM_H
#include <lz4.h>

/* Reusing one loaded dictionary for many independent blocks.
 *
 * liblz4's LZ4_attach_dictionary() is in its static-linking-only API and is not exported by
 * the shared library. Its effect is small and expressible through the stream structure the
 * public header defines for static allocation: the working stream points at the loaded
 * dictionary stream's tables (dictCtx) for its next compression, instead of copying them
 * (16 KiB per block, measured at ~20% of compression time on 400-byte events).
 *
 * Only for the liblz4 versions whose stream layout and dictCtx handling this was checked
 * against (1.9.x and 1.10.x); annals_lz4_can_attach() is false otherwise and the caller copies
 * the loaded stream instead (always correct, slower). */
#if defined(LZ4_VERSION_NUMBER) && LZ4_VERSION_NUMBER >= 10900 && LZ4_VERSION_NUMBER < 11100
#define ANNALS_LZ4_ATTACH_SUPPORTED 1
#else
#define ANNALS_LZ4_ATTACH_SUPPORTED 0
#endif

static inline int annals_lz4_can_attach(void) {
    int runtime = LZ4_versionNumber();
    return ANNALS_LZ4_ATTACH_SUPPORTED && runtime >= 10900 && runtime < 11100;
}

/* Prepares `working` to compress one block against the dictionary loaded into `loaded`
 * (LZ4_loadDict). Call immediately before each LZ4_compress_fast_continue(working, ...). */
static inline void annals_lz4_attach(LZ4_stream_t *working, const LZ4_stream_t *loaded) {
#if ANNALS_LZ4_ATTACH_SUPPORTED
    LZ4_resetStream_fast(working);
    if (loaded->internal_donotuse.dictSize == 0) {
        working->internal_donotuse.dictCtx = NULL;
        return;
    }
    /* Offsets of the working stream must start past the dictionary's 64 KiB window. */
    if (working->internal_donotuse.currentOffset == 0) {
        working->internal_donotuse.currentOffset = 64 * 1024;
    }
    working->internal_donotuse.dictCtx = &loaded->internal_donotuse;
#else
    (void)working;
    (void)loaded;
#endif
}

#endif
