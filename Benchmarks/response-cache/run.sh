#!/usr/bin/env bash
# The response cache (issue 24 part 3): N shorthand mock commands (default 100,000) through the
# release `pipeline`, stdout to a file:
#   none   no --response-cache (the baseline)
#   cold   --response-cache on a fresh file: every call asked and stored
#   warm   the same file again: every call answered from it (requests = attempts made: 0 expected)
# then the same three with --mock-latency-ms L (default 20) at --concurrency C (default 2000), a
# run whose calls take time as real ones do; then none and cold for REAL_N commands (default
# 5,000) whose calls take 500 ms at --concurrency 256, a run shaped like one against a provider
# (what the cache adds to it is what a user waits for). For each: wall time, commands/s, CPU
# (user + sys) per command, hits, attempts, peak memory. On a shared machine read the CPU
# column: wall time swings with load.
#
#   swift build -c release --build-path .build-release --product pipeline && Benchmarks/response-cache/run.sh [N] [L] [C]
#   (PIPELINE_BIN=path: another binary)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${PIPELINE_BIN:-$root/.build-release/release/pipeline}"
n="${1:-100000}"
latency="${2:-20}"
concurrency="${3:-2000}"
work="$(mktemp -d /tmp/pipeline-cache-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT

commands() {  # file count
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(int(sys.argv[2])): f.write('{\"id\":\"c%d\",\"model\":\"mock\",\"prompt\":\"question %d\"}\n' % (i, i))
" "$1" "$2"
}
real_n="${REAL_N:-5000}"
commands "$work/in.jsonl" "$n"
commands "$work/real.jsonl" "$real_n"
input="$work/in.jsonl"

printf '%-6s %-9s %10s %14s %12s %8s %10s %8s\n' run latency wall_s commands_per_s cpu_us_per_cmd hits attempts rss_mb
run() {  # name, latency label, flags…
    local name="$1" label="$2"; shift 2
    local start end
    start="$(date +%s.%N)"
    /usr/bin/time -f "%M %U %S" -o "$work/rss" "$bin" --quiet "$@" < "$input" > "$work/out.jsonl"
    end="$(date +%s.%N)"
    local hits attempts
    hits="$( (grep -o '"response_cache":"hit"' "$work/out.jsonl" || true) | wc -l)"
    attempts="$(grep -o '"attempts":[0-9]*' "$work/out.jsonl" | awk -F: '{s+=$2} END {print s+0}')"
    python3 -c "
import sys
name, label, start, end, n, hits, attempts, rss, user, system = sys.argv[1:]
wall = float(end) - float(start)
cpu = (float(user) + float(system)) * 1e6 / int(n)
print('%-6s %-9s %10.3f %14.0f %12.2f %8s %10s %8.1f' % (name, label, wall, int(n) / wall, cpu, hits, attempts, int(rss) / 1024))
" "$name" "$label" "$start" "$end" "$(wc -l < "$input")" "$hits" "$attempts" $(cat "$work/rss")
}

run none 0ms
run cold 0ms --response-cache "$work/zero.db"
run warm 0ms --response-cache "$work/zero.db"
run none "${latency}ms" --mock-latency-ms "$latency" --concurrency "$concurrency"
run cold "${latency}ms" --mock-latency-ms "$latency" --concurrency "$concurrency" --response-cache "$work/slow.db"
run warm "${latency}ms" --mock-latency-ms "$latency" --concurrency "$concurrency" --response-cache "$work/slow.db"
input="$work/real.jsonl"
run none 500ms --mock-latency-ms 500 --concurrency 256
run cold 500ms --mock-latency-ms 500 --concurrency 256 --response-cache "$work/real.db"
"$bin" cache stats "$work/zero.db"
