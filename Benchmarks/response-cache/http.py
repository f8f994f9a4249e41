"""What the response cache adds to a cold run that does real work (issue 24: "the cache adds
<= 5% to a cold run"): N distinct commands through `pipeline --provider openai` against one local
nginx serving a canned chat completion (the server of Benchmarks/http/bench.py, plain http),
without the cache and with `--response-cache` on a fresh file, in alternating pairs; then one
warm run on the last file (every command a hit, no request). For each run: wall time and the
pipeline process's CPU (user + sys, its writer thread included); the table gives each pair and
the medians, the cold/none ratios of the medians last.

With SERVER=llmock the server is llmock (PyPI, `.venv/bin/llmock`; OpenAI's route answering
each prompt) behind the same nginx over TLS, and the pipeline trusts nginx's throwaway CA with
`--ca-file`: a cold run shaped like the product's (https, a server nobody here wrote, with its
own cost per request), where the canned nginx answer measures the engine alone. llmock is
started afresh for each run (one process serving every run went between two speeds, ~50 and
~80 s for 50,000 commands, whichever binary it served), and its CPU is shown beside the
pipeline's: on 2 cores the two share the machine, so the pipeline's CPU is also the server's loss.

    swift build -c release --product pipeline
    python3 Benchmarks/response-cache/http.py [N=20000] [PAIRS=5] [CONCURRENCY=64]
    (PIPELINE=path: another binary; SERVER=llmock: llmock over https)
"""

import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "http"))
import bench  # noqa: E402  (start_nginx: one worker, the canned answer)

PIPELINE = os.environ.get("PIPELINE", str(HERE.parent.parent / ".build/release/pipeline"))


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid):
    """user + sys seconds of a running process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LLMock:
    """llmock on one port, started afresh for each run."""

    def __init__(self):
        self.port = bench.free_port()
        self.process = None

    def start(self):
        self.stop()
        self.process = subprocess.Popen([str(HERE.parent.parent / ".venv/bin/llmock"), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                                         "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bench.wait_for_port(self.port)

    def cpu(self):
        return cpu_of(self.process.pid)

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def run(base, commands, n, concurrency, cache=None, ca=None, server=None):
    """(wall s, pipeline CPU s, hits, server CPU s or None)"""
    if server:
        server.start()
    flags = [PIPELINE, "--provider", "openai", "--base-url", base, "--concurrency", str(concurrency), "--quiet", "--max-attempts", "1"]
    if ca:
        flags += ["--ca-file", str(ca)]
    if cache:
        flags += ["--response-cache", str(cache)]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with open(commands, "rb") as stdin:
        before = cpu_of_children()
        start = time.perf_counter()
        done = subprocess.run(flags, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        wall = time.perf_counter() - start
        cpu = cpu_of_children() - before
    served = server.cpu() if server else None
    ok = done.stdout.count(b'"status":"succeeded"')
    hits = done.stdout.count(b'"response_cache":"hit"')
    if done.returncode != 0 or ok != n:
        print(f"  pipeline exited {done.returncode}, {ok}/{n} succeeded: {done.stderr.decode()[-300:]}", file=sys.stderr)
    return wall, cpu, hits, served


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    work = Path(tempfile.mkdtemp(prefix="pipeline-cache-http."))
    commands = work / "in.jsonl"
    with commands.open("w") as f:
        for i in range(n):
            f.write('{"id":"c%d","model":"bench","prompt":"Say ok, number %d."}\n' % (i, i))
    llmock = None
    if os.environ.get("SERVER") == "llmock":
        llmock = LLMock()
        # nginx's proxied location (`/slow/`, there for the 1-second server) forwards to llmock.
        nginx, _, tls_port, ca = bench.start_nginx(work, slow_port=llmock.port)
        base, server = f"https://127.0.0.1:{tls_port}/slow/v1", "llmock over https (nginx TLS front)"
    else:
        nginx, port, _, _ = bench.start_nginx(work)
        base, ca, server = f"http://127.0.0.1:{port}/v1", None, "nginx's canned answer over http"
    try:
        print(f"{n} commands to {server}, concurrency {concurrency}, {pairs} pairs, load {os.getloadavg()[0]:.2f}, {PIPELINE}")
        print(f"{'pair':>4} {'none wall s':>11} {'none cpu s':>10} {'cold wall s':>11} {'cold cpu s':>10} {'cpu +%':>7} {'wall +%':>7}"
              + (f" {'server cpu s none/cold':>23}" if llmock else ""))
        nones, colds = [], []
        last = None
        for p in range(pairs):
            # Alternate which goes first, so drift in the machine's load cancels.
            cache = work / f"cold-{p}.db"
            if p % 2 == 0:
                none = run(base, commands, n, concurrency, ca=ca, server=llmock)
                cold = run(base, commands, n, concurrency, cache, ca, llmock)
            else:
                cold = run(base, commands, n, concurrency, cache, ca, llmock)
                none = run(base, commands, n, concurrency, ca=ca, server=llmock)
            nones.append(none)
            colds.append(cold)
            last = cache
            print(f"{p + 1:>4} {none[0]:>11.2f} {none[1]:>10.2f} {cold[0]:>11.2f} {cold[1]:>10.2f} "
                  f"{(cold[1] / none[1] - 1) * 100:>+7.1f} {(cold[0] / none[0] - 1) * 100:>+7.1f}"
                  + (f" {none[3]:>11.2f}/{cold[3]:<11.2f}" if llmock else ""))
        wall_none, cpu_none = statistics.median(x[0] for x in nones), statistics.median(x[1] for x in nones)
        wall_cold, cpu_cold = statistics.median(x[0] for x in colds), statistics.median(x[1] for x in colds)
        print(f"median none: {wall_none:.2f} s wall, {cpu_none / n * 1e6:.1f} us CPU/command; "
              f"cold: {wall_cold:.2f} s, {cpu_cold / n * 1e6:.1f} us; cold/none CPU {(cpu_cold / cpu_none - 1) * 100:+.1f}%, "
              f"wall {(wall_cold / wall_none - 1) * 100:+.1f}%")
        warm = run(base, commands, n, concurrency, last, ca, llmock)
        print(f"warm (on the last cold file): {warm[0]:.2f} s wall, {warm[1] / n * 1e6:.1f} us CPU/command, {warm[2]} hits; "
              f"load {os.getloadavg()[0]:.2f}")
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(5)
        except subprocess.TimeoutExpired:
            nginx.kill()
        if llmock:
            llmock.stop()


if __name__ == "__main__":
    main()
