#!/usr/bin/env bash
# Two `pipeline` binaries side by side through each result sink (issue 28), interleaved: for
# PAIRS rounds, each sink (none, jsonl, sqlite, postgres) runs N mock commands through BEFORE
# then AFTER (the order swapped every other round). Per run: wall time, CPU (user+sys) of the
# pipeline process, peak RSS, rows in the sink. Then the medians, and each sink's CPU and wall
# against the same binary's run without a sink. A throwaway PostgreSQL cluster is started here
# on a free loopback port (as the `postgres` user when root), as in run.sh.
#
#   Benchmarks/sinks/compare.sh BEFORE_BIN AFTER_BIN [N=200000] [PAIRS=3] [SINKS="none jsonl sqlite postgres"]
set -euo pipefail
before="$1"; after="$2"; n="${3:-200000}"; pairs="${4:-3}"; sinks="${5:-none jsonl sqlite postgres}"
work="$(mktemp -d /tmp/pipeline-sinks-compare.XXXXXX)"
source "$(dirname "$0")/throwaway-postgres.sh"
psql_() { psql -h 127.0.0.1 -p "$port" -U app -d postgres -tAc "$1"; }

python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(int(sys.argv[2])): f.write('{\"id\":\"c%d\",\"model\":\"mock\",\"prompt\":\"question %d\"}\n' % (i, i))
" "$work/in.jsonl" "$n"

one() {  # label binary sink
    local label="$1" bin="$2" sink="$3" flags=() rows="-"
    rm -f "$work/copy.jsonl" "$work/r.db" "$work/r.db-wal" "$work/r.db-shm"
    case "$sink" in
        jsonl) flags=(--sink "jsonl:$work/copy.jsonl") ;;
        sqlite) flags=(--sink "sqlite:$work/r.db") ;;
        postgres) psql_ 'DROP TABLE IF EXISTS results' >/dev/null; flags=(--sink "postgres:postgresql://app@127.0.0.1:$port/postgres?table=results") ;;
    esac
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$bin" --quiet --run-id "$label-$sink" --sink-timeout 600 "${flags[@]}" < "$work/in.jsonl" > /dev/null 2> "$work/err" || true
    case "$sink" in
        jsonl) rows="$(wc -l < "$work/copy.jsonl")" ;;
        sqlite) rows="$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from results").fetchone()[0])' "$work/r.db")" ;;
        postgres) rows="$(psql_ 'select count(*) from results')" ;;
    esac
    read -r wall user sys rss < <(tail -1 "$work/time")
    echo "$label $sink $wall $user $sys $rss $rows" | tee -a "$work/runs"
}

echo "# label sink wall_s user_s sys_s peak_KB rows   (N=$n; $(uptime | sed 's/.*load/load/'))"
for p in $(seq 1 "$pairs"); do
    for sink in $sinks; do
        if [ $((p % 2)) = 1 ]; then one before "$before" "$sink"; one after "$after" "$sink"
        else one after "$after" "$sink"; one before "$before" "$sink"; fi
    done
done
echo "# $(uptime | sed 's/.*load/load/')"
python3 - "$work/runs" "$n" <<'PY'
import sys, statistics as st
runs = {}
for line in open(sys.argv[1]):
    label, sink, wall, user, sys_, rss, rows = line.split()
    runs.setdefault((label, sink), []).append((float(wall), float(user) + float(sys_), int(rss) // 1024, rows))
n = int(sys.argv[2])
print("| sink | binary | wall s (median) | CPU s user+sys (median) | CPU vs none | wall vs none | peak MB (max) | rows (each run) |")
print("|---|---|---|---|---|---|---|---|")
for sink in ["none", "jsonl", "sqlite", "postgres"]:
    for label in ["before", "after"]:
        r = runs.get((label, sink))
        if not r: continue
        wall, cpu = st.median(x[0] for x in r), st.median(x[1] for x in r)
        base = runs.get((label, "none"))
        bw, bc = (st.median(x[0] for x in base), st.median(x[1] for x in base)) if base else (None, None)
        vs = lambda a, b: "–" if b is None or sink == "none" else f"{a / b:.2f}×"
        print(f"| {sink} | {label} | {wall:.2f} | {cpu:.2f} | {vs(cpu, bc)} | {vs(wall, bw)} | {max(x[2] for x in r)} | {', '.join(x[3] for x in r)} |")
PY
