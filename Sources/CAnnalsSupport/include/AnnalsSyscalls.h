#ifndef ANNALS_SYSCALLS_H
#define ANNALS_SYSCALLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/// `fallocate(fd, 0, offset, length)` (Linux; glibc declares it only under _GNU_SOURCE).
int annals_fallocate(int fd, int64_t offset, int64_t length);

/// `fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)`: gives the
/// blocks of a range back to the file system; the range reads as zeros, the size stays.
int annals_punch_hole(int fd, int64_t offset, int64_t length);

/// `getrandom(buffer, length, 0)`.
ptrdiff_t annals_getrandom(void *buffer, size_t length);

/// `stat(path, result)` (the Swift importer cannot call `stat` beside `struct stat`).
int annals_stat(const char *path, struct stat *result);

/// `renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)`: swaps two paths atomically (Linux 3.15+).
int annals_rename_exchange(const char *a, const char *b);

#endif
