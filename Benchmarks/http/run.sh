#!/usr/bin/env bash
# The HTTP path side by side (issue 12): wrk, `pipeline` and the Python peers (aiohttp, the
# openai SDK, pollux-ai, LiteLLM) against one local nginx serving a canned chat completion.
# Plain http and https (nginx's TLS port, a certificate made at run time): two tables.
# Installs what it needs: nginx and wrk (Debian packages, as root; without wrk its row is
# skipped), the peers into Benchmarks/http/.venv, and a release build of `pipeline`. Then runs
# bench.py; see its docstring for the knobs (ROUNDS, CONCURRENCY, N_FAST, N_SLOW, CLIENTS,
# SCHEMES, SLOW_RUNS, UPLOADS, UPLOAD_MB, UPLOAD_CONCURRENCY, PYTHON). After the tables: 256
# commands at 1 s latency and UPLOADS uploads of UPLOAD_MB MB (with peak RSS), on each scheme.
#
#   Benchmarks/http/run.sh                # full run: table, 256-at-1-second, Benchmarks/results/http.svg
#   SKIP_BUILD=1 ROUNDS=1 Benchmarks/http/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] || ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null || true
    fi
fi
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    echo "run.sh: needs the Debian package nginx (and wrk for its row): sudo apt-get install -y nginx wrk" >&2
    exit 2
fi
export PATH="$PATH:/usr/sbin"

# The peers, pinned so runs compare. LiteLLM stays below 1.107 (1.107.0 was a compromised release).
peers=(aiohttp==3.14.5 openai==2.54.0 pollux-ai==2.0.0 "litellm==1.106.2")
if [ ! -x "$here/.venv/bin/python" ] || ! "$here/.venv/bin/python" -c "import aiohttp, openai, pollux, litellm" 2>/dev/null; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install -q --disable-pip-version-check "${peers[@]}"
fi

if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$root" && swift build -c release --product pipeline)
fi

exec "$here/.venv/bin/python" "$here/bench.py"
