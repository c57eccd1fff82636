#ifndef ANNALS_BENCH_CSQLITE_H
#define ANNALS_BENCH_CSQLITE_H
#include <sqlite3.h>
/* SQLITE_TRANSIENT is a cast macro Swift cannot import. */
static inline sqlite3_destructor_type annals_sqlite_transient(void) { return SQLITE_TRANSIENT; }
#endif
