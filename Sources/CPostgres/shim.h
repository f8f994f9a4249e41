// The system's libpq (Debian: libpq-dev), for the PostgreSQL result sink.
#include <libpq-fe.h>
