#!/usr/bin/env bash
# Result sinks side by side (issue 28): N mock commands (default 1,000,000) through the release
# `pipeline`, once with no sink and once each with --sink jsonl, sqlite and postgres (a throwaway
# PostgreSQL cluster started here on a free loopback port, as the `postgres` user when root).
# For each: when the last result line reached stdout (the run's own rate: a sink must not slow it),
# when the process ended (the sink's drain), rows in the sink, rows per second, peak memory.
#
#   swift build -c release --product pipeline && Benchmarks/sinks/run.sh [N]      (PIPELINE_BIN=path: another binary)
# Two binaries side by side (interleaved, CPU time): Benchmarks/sinks/compare.sh BEFORE AFTER [N] [PAIRS] [SINKS].
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${PIPELINE_BIN:-$root/.build/release/pipeline}"
n="${1:-1000000}"
work="$(mktemp -d /tmp/pipeline-sinks-bench.XXXXXX)"
source "$(dirname "$0")/throwaway-postgres.sh"

python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(int(sys.argv[2])): f.write('{\"id\":\"c%d\",\"model\":\"mock\",\"prompt\":\"question %d\"}\n' % (i, i))
" "$work/in.jsonl" "$n"

run() {  # name, sink flags…
    local name="$1"; shift
    local start; start="$(date +%s.%N)"
    /usr/bin/time -f "%M" -o "$work/rss" "$bin" --quiet --run-id "$name" --sink-timeout 600 "$@" < "$work/in.jsonl" 2>"$work/$name.err" \
        | python3 -c 'import sys, time
for _ in sys.stdin.buffer: pass
print(time.time())' > "$work/last"
    local end; end="$(date +%s.%N)"
    local rows="-"
    case "$name" in
        jsonl) rows="$(wc -l < "$work/copy.jsonl")" ;;
        sqlite) rows="$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from results").fetchone()[0])' "$work/r.db")" ;;
        postgres) rows="$(psql -h 127.0.0.1 -p "$port" -U app -d postgres -tAc 'select count(*) from results')" ;;
    esac
    python3 - "$name" "$n" "$start" "$(cat "$work/last")" "$end" "$rows" "$(cat "$work/rss")" <<'PY'
import sys
name, n, start, last, end, rows, rss = sys.argv[1:]
n, start, last, end = int(n), float(start), float(last), float(end)
stdout_s, total_s = last - start, end - start
rate = "-" if rows == "-" else f"{int(rows) / total_s:,.0f}"
print(f"| {name} | {stdout_s:.2f} | {n / stdout_s:,.0f} | {total_s:.2f} | {rows} | {rate} | {int(rss) // 1024} |")
PY
}

echo "| sink | stdout done (s) | commands/s to stdout | process ended (s) | rows in sink | rows/s (to the end) | peak MB |"
echo "|---|---|---|---|---|---|---|"
run none
run jsonl --sink "jsonl:$work/copy.jsonl"
run sqlite --sink "sqlite:$work/r.db"
run postgres --sink "postgres:postgresql://app@127.0.0.1:$port/postgres?table=results"
grep -h "sink" "$work"/*.err | head -5 || true
