#!/usr/bin/env bash
# A bound on what the progress line costs the N-command mock run (issue 26: "< 1% of the
# 1M-command mock run"), that does not depend on the machine's noise as paired whole-run CPU
# times (run.sh) do. The only difference between a run with stderr a terminal and one without is
# the live task (Progress.live): the run loop's per-command bookkeeping is the same in both
# (ADR 0011, "What the line costs"; ProgressCostTests pins it). So
#
#   cost ≤ redraws × CPU of one redraw,   and   share = that ÷ the run's CPU time.
#
# This script runs the mock run once under a pseudo-terminal (`script`), counts the frames it
# drew (each starts with "\r ESC[K" and a bar), takes the run's CPU time (user + sys), and, with
# REDRAW_US (CPU µs of one redraw, from `PIPELINE_MEASURE_REDRAW=20000 swift test --skip-build
# --filter ProgressCostTests`), prints the bound. With PERF=1 it also records the run with
# `perf record -e cpu-clock` and counts the samples whose stack passes through the live task
# (any `Progress` frame), a direct measure on the release binary.
#
#   swift build -c release --product pipeline && REDRAW_US=40 Benchmarks/progress/bound.sh [N]   (PIPELINE_BIN=path: another binary)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${PIPELINE_BIN:-$root/.build/release/pipeline}"
n="${1:-1000000}"
work="$(mktemp -d /tmp/pipeline-progress-bound.XXXXXX)"
trap 'rm -rf "$work"' EXIT
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(int(sys.argv[2])): f.write('{\"id\":\"c%d\",\"model\":\"mock\",\"prompt\":\"command number %d\"}\n' % (i, i))
" "$work/in.jsonl" "$n"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
script -q -e -c "COLUMNS=120 /usr/bin/time -o '$work/tty.time' -f '%U %S %e' '$bin' < '$work/in.jsonl' > /dev/null" /dev/null > "$work/tty.out"
if [ "${PERF:-0}" = 1 ]; then
    script -q -e -c "COLUMNS=120 perf record -q -e cpu-clock -F 4000 -g -o '$work/perf.data' -- '$bin' < '$work/in.jsonl' > /dev/null" /dev/null > "$work/perf.out"
    perf script -i "$work/perf.data" 2>/dev/null > "$work/perf.txt" || true
fi
python3 - "$work" "${REDRAW_US:-}" "$n" <<'PY'
import sys, os, re
work, redraw_us, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = open(f"{work}/tty.out", "rb").read()
frames = out.count(b"\r\x1b[K[")
final = re.findall(rb"\r\x1b\[K(\[[^\r]*)", out)
u, s, e = open(f"{work}/tty.time").read().split()[-3:]
cpu, wall = float(u) + float(s), float(e)
print(f"N={n}: run under a terminal: CPU {cpu:.2f} s (user {u} s, sys {s} s), wall {wall:.2f} s")
print(f"frames drawn: {frames} (one per 250 ms of wall time: {wall / 0.25:.0f} expected, plus the last frame)")
if final: print("last frame: " + final[-1].decode(errors="replace").strip())
if redraw_us:
    cost = frames * float(redraw_us) / 1e6
    print(f"bound: {frames} frames x {float(redraw_us):.1f} us = {cost * 1e3:.2f} ms = {cost / cpu * 100:.4f}% of the run's CPU time")
if os.path.exists(f"{work}/perf.txt"):
    samples, live = 0, 0
    for block in open(f"{work}/perf.txt", errors="replace").read().split("\n\n"):
        if not block.strip(): continue
        samples += 1
        # Any frame of Progress (mangled "8ProgressV"): the live task's loop and what it calls,
        # and the closing summary — an upper bound of the live task's share.
        if "8ProgressV" in block or "Progress." in block: live += 1
    print(f"perf (cpu-clock, 4 kHz): {samples} samples, {live} with a Progress frame on the stack ({live / max(1, samples) * 100:.4f}%)")
PY
