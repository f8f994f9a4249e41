#!/usr/bin/env bash
# The cost of the progress line (issue 26: "the 1M-command mock run stays within 1% with and
# without a terminal"): PAIRS alternating pairs of the same N-command mock run (default 10 pairs
# of 1,000,000), once with stderr a file (the plain line every 30 s: nothing drawn) and once with
# stderr a pseudo-terminal (`script`: the line redrawn every 250 ms). CPU time (user + sys) is the
# figure: on a shared machine wall time swings far more than 1%. Prints each pair, the medians,
# and the median of the paired differences with its spread (the pairs' middle half).
#
# On a loaded machine pairs swing far more than 1%: bound.sh gives a bound that does not (ADR 0011).
#
#   swift build -c release --product pipeline && Benchmarks/progress/run.sh [N] [PAIRS]   (PIPELINE_BIN=path: another binary)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${PIPELINE_BIN:-$root/.build/release/pipeline}"
n="${1:-1000000}"
pairs="${2:-10}"
work="$(mktemp -d /tmp/pipeline-progress-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(int(sys.argv[2])): f.write('{\"id\":\"c%d\",\"model\":\"mock\",\"prompt\":\"command number %d\"}\n' % (i, i))
" "$work/in.jsonl" "$n"
for i in $(seq 1 "$pairs"); do
    /usr/bin/time -o "$work/plain.$i" -f "%U %S %e" "$bin" < "$work/in.jsonl" > /dev/null 2>>"$work/err"
    script -q -e -c "COLUMNS=120 /usr/bin/time -o '$work/tty.$i' -f '%U %S %e' '$bin' < '$work/in.jsonl' > /dev/null" /dev/null > "$work/tty.out"
    grep -q "100%" "$work/tty.out" || { echo "the terminal run drew no line reaching 100%" >&2; exit 1; }
done
python3 - "$work" "$pairs" <<'PY'
import sys, statistics
work, pairs = sys.argv[1], int(sys.argv[2])
def cpu(path):
    u, s, e = open(path).read().split()[-3:]
    return float(u) + float(s), float(e)
plain = [cpu(f"{work}/plain.{i}") for i in range(1, pairs + 1)]
tty = [cpu(f"{work}/tty.{i}") for i in range(1, pairs + 1)]
print("| pair | no terminal: CPU s (wall s) | terminal: CPU s (wall s) | difference |")
print("|---|---|---|---|")
diffs = []
for i, (p, t) in enumerate(zip(plain, tty), 1):
    d = (t[0] - p[0]) / p[0] * 100
    diffs.append(d)
    print(f"| {i} | {p[0]:.2f} ({p[1]:.2f}) | {t[0]:.2f} ({t[1]:.2f}) | {d:+.1f}% |")
mp, mt = statistics.median(x[0] for x in plain), statistics.median(x[0] for x in tty)
q = statistics.quantiles(diffs, n=4) if len(diffs) >= 4 else [min(diffs), 0, max(diffs)]
print(f"\nmedian CPU: no terminal {mp:.2f} s, terminal {mt:.2f} s ({(mt - mp) / mp * 100:+.2f}%); "
      f"median paired difference {statistics.median(diffs):+.2f}% (middle half {q[0]:+.1f}% to {q[2]:+.1f}%)")
PY
