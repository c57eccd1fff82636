// Measures LZ4 schemes on the generated corpus (see README.md beside this file):
// ratio and speed of per-event compression without and with a dictionary of recent events,
// and of 64 KiB blocks. Standard C and the system liblz4 only.
#define _GNU_SOURCE
#include <lz4.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const uint8_t *type, *meta, *payload; uint32_t typeLen, metaLen, payloadLen; } Event;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static uint8_t *readFile(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END); *size = (size_t)ftell(f); fseek(f, 0, SEEK_SET);
    uint8_t *bytes = malloc(*size);
    if (fread(bytes, 1, *size, f) != *size) { perror("read"); exit(1); }
    fclose(f);
    return bytes;
}

static uint32_t u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// The body an event stores: metadata then payload, or the payload alone.
static size_t body(const Event *e, int withMetadata, uint8_t *out) {
    size_t n = 0;
    if (withMetadata) { memcpy(out, e->meta, e->metaLen); n = e->metaLen; }
    memcpy(out + n, e->payload, e->payloadLen);
    return n + e->payloadLen;
}

// Per event, each compressed on its own against `dictSize` bytes of the bodies just before
// event `first` (0 = no dictionary). `attach`: share the loaded dictionary through dictCtx
// instead of copying the loaded stream state for each event.
static void perEvent(Event *events, size_t first, size_t count, size_t dictSize, int withMetadata, int attach, int acceleration) {
    uint8_t *dict = malloc(dictSize + 1);
    size_t have = 0;
    uint8_t scratch[1 << 16];
    for (size_t i = first; i > 0 && have < dictSize; i--) {  // most recent bodies last
        size_t n = body(&events[i - 1], withMetadata, scratch);
        size_t take = n < dictSize - have ? n : dictSize - have;
        memmove(dict + dictSize - have - take, scratch + n - take, take);
        have += take;
    }
    const uint8_t *dictStart = dict + dictSize - have;
    LZ4_stream_t *loaded = LZ4_createStream(), *work = LZ4_createStream();
    if (have) LZ4_loadDict(loaded, (const char *)dictStart, (int)have);
    uint8_t **compressed = malloc(count * sizeof(uint8_t *));
    int *sizes = malloc(count * sizeof(int));
    size_t raw = 0, stored = 0;
    double t0 = now();
    for (size_t i = 0; i < count; i++) {
        size_t n = body(&events[first + i], withMetadata, scratch);
        uint8_t out[LZ4_COMPRESSBOUND(1 << 16)];
        int written;
        if (!have) {
            written = LZ4_compress_default((const char *)scratch, (char *)out, (int)n, sizeof out);
        } else if (attach) {
            LZ4_resetStream_fast(work);
            work->internal_donotuse.dictCtx = &loaded->internal_donotuse;
            if (work->internal_donotuse.currentOffset == 0) work->internal_donotuse.currentOffset = 64 * 1024;
            written = LZ4_compress_fast_continue(work, (const char *)scratch, (char *)out, (int)n, sizeof out, acceleration);
        } else {
            memcpy(work, loaded, sizeof *work);
            written = LZ4_compress_fast_continue(work, (const char *)scratch, (char *)out, (int)n, sizeof out, acceleration);
        }
        if (written <= 0 || (size_t)written >= n) { written = -(int)n; }  // stored raw
        size_t keep = written < 0 ? n : (size_t)written;
        compressed[i] = malloc(keep);
        memcpy(compressed[i], written < 0 ? scratch : out, keep);
        sizes[i] = written;
        raw += n; stored += keep;
    }
    double compressSeconds = now() - t0;
    t0 = now();
    uint64_t check = 0;
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < count; i++) {
            if (sizes[i] < 0) { check += compressed[i][0]; continue; }
            int n = have ? LZ4_decompress_safe_usingDict((const char *)compressed[i], (char *)scratch, sizes[i], sizeof scratch, (const char *)dictStart, (int)have)
                         : LZ4_decompress_safe((const char *)compressed[i], (char *)scratch, sizes[i], sizeof scratch);
            check += (uint64_t)n + scratch[0];
        }
    double decodeSeconds = (now() - t0) / 3;
    printf("per event, %-13s dict %5zu KiB%s, acceleration %d: ratio %.2fx  compress %4.0f ns/event  decode %4.0f ns/event (%.2f GB/s)  [%llu]\n",
           withMetadata ? "meta+payload," : "payload,", have / 1024, have ? (attach ? " (dictCtx)" : " (copied) ") : "           ", acceleration,
           (double)raw / stored, compressSeconds / count * 1e9, decodeSeconds / count * 1e9, raw / decodeSeconds / 1e9,
           (unsigned long long)(check % 10));
    for (size_t i = 0; i < count; i++) free(compressed[i]);
    free(compressed); free(sizes); free(dict); LZ4_freeStream(loaded); LZ4_freeStream(work);
}

// Consecutive bodies packed into blocks of `blockSize` bytes, each compressed alone.
static void blocks(Event *events, size_t first, size_t count, size_t blockSize, int withMetadata) {
    uint8_t *block = malloc(blockSize + (1 << 16)), *out = malloc(LZ4_compressBound((int)(blockSize + (1 << 16))));
    uint8_t *decoded = malloc(blockSize + (1 << 16));
    size_t raw = 0, stored = 0, fill = 0, blocksDone = 0;
    double decodeSeconds = 0;
    for (size_t i = 0; i <= count; i++) {
        if (i < count) fill += body(&events[first + i], withMetadata, block + fill);
        if (fill >= blockSize || (i == count && fill)) {
            int written = LZ4_compress_default((const char *)block, (char *)out, (int)fill, LZ4_compressBound((int)fill));
            double t0 = now();
            int n = LZ4_decompress_safe((const char *)out, (char *)decoded, written, (int)(blockSize + (1 << 16)));
            decodeSeconds += now() - t0;
            if (n != (int)fill) { fprintf(stderr, "block decode failed\n"); exit(1); }
            raw += fill; stored += (size_t)written; fill = 0; blocksDone++;
        }
    }
    printf("blocks of %3zu KiB, %-13s ratio %.2fx  decode %.2f GB/s = %4.0f ns/event; a point read decodes %zu events on average\n",
           blockSize / 1024, withMetadata ? "meta+payload," : "payload,", (double)raw / stored,
           raw / decodeSeconds / 1e9, decodeSeconds / count * 1e9, count / blocksDone / 2);
    free(block); free(out); free(decoded);
}

// Where the dictionary lies when a block is decoded: right before the output (liblz4 copies a
// match into it inline) or elsewhere (liblz4 calls memmove for each such match). 127
// dictionaries of 16 KiB (the bodies just before their segment's events, as the writer takes
// them), `perSegment` events compressed against each at acceleration 2 as the writer does,
// decoded segment by segment and in random order (as single-stream reads do).
static void placement(Event *events, size_t first, size_t perSegment) {
    enum { SEGMENTS = 127, DICT = 16 * 1024, AREA = 1 << 16 };
    uint8_t scratch[1 << 16], out[LZ4_COMPRESSBOUND(1 << 16)];
    uint8_t **dicts = malloc(SEGMENTS * sizeof *dicts), **blocks = malloc(SEGMENTS * perSegment * sizeof *blocks);
    int *sizes = malloc(SEGMENTS * perSegment * sizeof *sizes), *decoded = malloc(SEGMENTS * perSegment * sizeof *decoded);
    LZ4_stream_t *stream = LZ4_createStream();
    size_t next = first;
    for (int g = 0; g < SEGMENTS; g++) {
        dicts[g] = malloc(DICT + AREA);  // the dictionary, then room for one decoded body
        size_t have = 0;
        for (size_t i = next; i > 0 && have < DICT; i--) {
            size_t n = body(&events[i - 1], 1, scratch), take = n < DICT - have ? n : DICT - have;
            memcpy(dicts[g] + DICT - have - take, scratch + n - take, take);
            have += take;
        }
        for (size_t k = 0; k < perSegment; k++, next++) {
            size_t n = body(&events[next], 1, scratch), slot = g * perSegment + k;
            LZ4_loadDict(stream, (const char *)dicts[g], DICT);
            sizes[slot] = LZ4_compress_fast_continue(stream, (const char *)scratch, (char *)out, (int)n, sizeof out, 2);
            blocks[slot] = malloc((size_t)sizes[slot]);
            memcpy(blocks[slot], out, (size_t)sizes[slot]);
            decoded[slot] = (int)n;
        }
    }
    uint8_t *target = malloc(AREA);
    uint64_t check = 0;
    for (int random = 0; random <= 1; random++) {
        double seconds[2];
        for (int before = 0; before <= 1; before++) {
            srand(7);
            size_t total = SEGMENTS * perSegment * 2;
            double t0 = now();
            for (size_t r = 0; r < total; r++) {
                size_t slot = random ? (size_t)rand() % (SEGMENTS * perSegment) : r % (SEGMENTS * perSegment);
                // Elsewhere: decoded into a buffer of its own, the dictionary not right before it.
                uint8_t *dict = dicts[slot / perSegment], *into = before ? dict + DICT : target;
                int n = LZ4_decompress_safe_usingDict((const char *)blocks[slot], (char *)into, sizes[slot], AREA,
                                                      (const char *)dict, DICT);
                if (n != decoded[slot]) { fprintf(stderr, "placement decode failed\n"); exit(1); }
                if (before) memcpy(target, into, (size_t)n);  // handed out of the shared area
                check += target[0];
            }
            seconds[before] = (now() - t0) / total * 1e9;
        }
        printf("decode against a 16 KiB dictionary, %s over 127: elsewhere %.0f ns/event, right before the output (copied out) %.0f ns/event  [%llu]\n",
               random ? "random order" : "segment by segment", seconds[0], seconds[1], (unsigned long long)(check % 10));
    }
    for (size_t i = 0; i < SEGMENTS * perSegment; i++) free(blocks[i]);
    for (int g = 0; g < SEGMENTS; g++) free(dicts[g]);
    free(dicts); free(blocks); free(sizes); free(decoded); free(target);
    LZ4_freeStream(stream);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: probe CORPUS\n"); return 2; }
    size_t size;
    uint8_t *bytes = readFile(argv[1], &size);
    size_t capacity = 1 << 20, count = 0;
    Event *events = malloc(capacity * sizeof(Event));
    for (size_t at = 0; at + 12 <= size && count < capacity; count++) {
        Event *e = &events[count];
        e->typeLen = u32(bytes + at); e->metaLen = u32(bytes + at + 4); e->payloadLen = u32(bytes + at + 8);
        e->type = bytes + at + 12; e->meta = e->type + e->typeLen; e->payload = e->meta + e->metaLen;
        at += 12 + e->typeLen + e->metaLen + e->payloadLen;
    }
    size_t first = 1000, n = count - first < 150000 ? count - first : 150000;
    double rawPayload = 0, rawMeta = 0;
    for (size_t i = first; i < first + n; i++) { rawPayload += events[i].payloadLen; rawMeta += events[i].metaLen; }
    printf("liblz4 %s, %zu events after the first %zu (one 64 MiB segment's worth): payload %.0f B, metadata %.0f B on average\n",
           LZ4_versionString(), n, first, rawPayload / n, rawMeta / n);
    for (int withMetadata = 0; withMetadata <= 1; withMetadata++) {
        perEvent(events, first, n, 0, withMetadata, 0, 1);
        perEvent(events, first, n, 16 * 1024, withMetadata, 1, 1);
        perEvent(events, first, n, 16 * 1024, withMetadata, 1, 2);
        perEvent(events, first, n, 32 * 1024, withMetadata, 1, 1);
        perEvent(events, first, n, 64 * 1024, withMetadata, 0, 1);
        perEvent(events, first, n, 64 * 1024, withMetadata, 1, 1);
        blocks(events, first, n, 64 * 1024, withMetadata);
        blocks(events, first, n, 256 * 1024, withMetadata);
    }
    placement(events, first, n / 127 < 800 ? n / 127 : 800);
    return 0;
}
