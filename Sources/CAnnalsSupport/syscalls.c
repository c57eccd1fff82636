#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>
#include "AnnalsSyscalls.h"

#include <fcntl.h>
#include <sys/random.h>

int annals_fallocate(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, 0, (off_t)offset, (off_t)length);
}

int annals_punch_hole(int fd, int64_t offset, int64_t length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
}

ptrdiff_t annals_getrandom(void *buffer, size_t length) {
    return getrandom(buffer, length, 0);
}

int annals_stat(const char *path, struct stat *result) {
    return stat(path, result);
}

int annals_rename_exchange(const char *a, const char *b) {
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, (unsigned int)(1 << 1) /* RENAME_EXCHANGE */);
}
