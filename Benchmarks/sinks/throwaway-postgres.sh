# Sourced by the sink benchmarks: a throwaway PostgreSQL cluster in "$work" (which the caller
# made) on a free loopback port, as the `postgres` user when run as root; stopped, and "$work"
# removed, when the calling script exits. Sets pg (the server's bin directory), port, as_pg and
# exports PGPASSWORD (user `app`, database `postgres`).
pg="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export PGPASSWORD="bench-$RANDOM"
as_pg=(); if [ "$(id -u)" = 0 ]; then as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups); chown -R postgres:postgres "$work"; chmod 755 "$work"; fi
echo "$PGPASSWORD" > "$work/pw"; [ "$(id -u)" = 0 ] && chown postgres "$work/pw"
"${as_pg[@]}" "$pg/initdb" -D "$work/data" -A md5 -U app --pwfile="$work/pw" -E UTF8 >/dev/null
"${as_pg[@]}" "$pg/pg_ctl" -D "$work/data" -l "$work/server.log" -o "-p $port -k $work -c listen_addresses=127.0.0.1" -w start >/dev/null
trap '"${as_pg[@]}" "$pg/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
