// The system's SQLite (Debian: libsqlite3-dev), for the SQLite result sink.
#include <sqlite3.h>

/// `sqlite3_db_config` is variadic, which Swift cannot call: the one option the response cache
/// sets, SQLITE_DBCONFIG_DEFENSIVE (no writes that can corrupt the file through SQL, e.g.
/// `PRAGMA writable_schema`), turned on. Returns SQLITE_OK or an error code.
static inline int csqlite_enable_defensive(sqlite3 *db) {
#ifdef SQLITE_DBCONFIG_DEFENSIVE
    return sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
#else
    return SQLITE_ERROR;
#endif
}
