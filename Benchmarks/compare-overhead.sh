#!/usr/bin/env bash
# Runs `PipelineBench --scenario overhead` of this checkout and of another build alternately
# (so the shared machine's drift cancels) and prints both medians and their ratio.
#   Benchmarks/compare-overhead.sh OTHER_BENCH_BINARY [ROUNDS]
# e.g. git worktree add /tmp/oldbench edb1820 && (cd /tmp/oldbench && swift build -c release --product PipelineBench)
#      swift build -c release --product PipelineBench && Benchmarks/compare-overhead.sh /tmp/oldbench/.build/release/PipelineBench 12
set -euo pipefail
cd "$(dirname "$0")/.."
other=${1:?the other build\'s PipelineBench binary}
rounds=${2:-8}
this=.build/release/PipelineBench
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
new=(); old=()
for _ in $(seq "$rounds"); do
    new+=("$("$this" --scenario overhead | awk '/median_cost_per_command/ {print $3}')")
    old+=("$("$other" --scenario overhead | awk '/median_cost_per_command/ {print $3}')")
done
echo "this:  ${new[*]}"
echo "other: ${old[*]}"
m_new=$(printf '%s\n' "${new[@]}" | median)
m_old=$(printf '%s\n' "${old[@]}" | median)
echo "median µs per command: this $m_new, other $m_old, ratio $(awk -v a="$m_new" -v b="$m_old" 'BEGIN {printf "%.3f", a / b}')"
