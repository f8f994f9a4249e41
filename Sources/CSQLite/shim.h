// The system's SQLite (Debian: libsqlite3-dev), for the SQLite result sink.
#include <sqlite3.h>
