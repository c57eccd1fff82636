#ifndef ANNALS_BENCH_CLMDB_H
#define ANNALS_BENCH_CLMDB_H
#include <lmdb.h>
#endif
