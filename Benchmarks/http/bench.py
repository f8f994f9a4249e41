"""The HTTP path side by side: wrk, `pipeline` and Python peers against one local nginx,
over plain http and over https (issue 22).

Run through run.sh (which installs nginx, wrk and the peers' venv and builds `pipeline`).
nginx serves the same canned answer on a plain port and on a TLS port whose certificate comes
from a CA made at run time with `openssl`; every client trusts that CA its own way (pipeline:
--ca-file; URLSession: the CA mounted over the system bundle in a private mount namespace, root
only, else its https row is skipped; Python: SSL_CERT_FILE; wrk does not verify). Each round runs every client once per scheme, the order rotated from round to
round so drift cancels; the tables give each client's median over the rounds: requests/s, CPU
per request (user + system, the client's process only) and both as ratios against `pipeline`
on the same scheme. It then times 256 commands at --concurrency 256 against a server that
answers each request 1 s after reading it (`slow_server.py`, asyncio; both schemes through
nginx, whose plain and TLS ports proxy `/slow/` to it, so the two differ by TLS alone; nginx's log
gives when the first and the last request arrived), and UPLOADS uploads of UPLOAD_MB MB each (distinct
files, OpenAI multipart, to nginx's `/v1/files`, which reads and drops the body) by pipeline
(one command per file, `--capabilities generation,uploads`) and by aiohttp (streaming each file),
with each client's peak RSS (`wait4`): memory must stay flat however many bytes go out.

Environment: ROUNDS (3), CONCURRENCY (64), N_FAST (10000: wrk's duration is set to match,
pipeline, aiohttp), N_SLOW (2000: openai, pollux, litellm), CLIENTS (comma list to run a subset;
clients whose tool or module is missing are skipped with a note), SCHEMES (http,https),
SLOW_RUNS (3; 0 skips the 1-second scenario), UPLOADS (100; 0 skips the upload scenario),
UPLOAD_MB (10), UPLOAD_CONCURRENCY (16), PYTHON (the peers' interpreter, default
Benchmarks/http/.venv/bin/python).
"""

import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PIPELINE = Path(os.environ.get("PIPELINE", ROOT / ".build/release/pipeline")).resolve()  # absolute: the upload scenario runs elsewhere
PYTHON = Path(os.environ.get("PYTHON", HERE / ".venv/bin/python"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "64"))
N_FAST = int(os.environ.get("N_FAST", "10000"))
N_SLOW = int(os.environ.get("N_SLOW", "2000"))
SLOW_RUNS = int(os.environ.get("SLOW_RUNS", "3"))
UPLOADS = int(os.environ.get("UPLOADS", "100"))
UPLOAD_MB = int(os.environ.get("UPLOAD_MB", "10"))
UPLOAD_CONCURRENCY = int(os.environ.get("UPLOAD_CONCURRENCY", "16"))
SCHEMES = [s for s in os.environ.get("SCHEMES", "http,https").split(",") if s]
ALL_CLIENTS = ["wrk", "pipeline", "pipeline-urlsession", "aiohttp", "openai", "pollux", "litellm"]
CLIENTS = [c for c in os.environ.get("CLIENTS", ",".join(ALL_CLIENTS)).split(",") if c]
LABELS = {
    "wrk": "wrk (C, the limit)",
    "pipeline": "pipeline --provider openai",
    "pipeline-urlsession": "pipeline, URLSession transport",
    "aiohttp": "Python aiohttp, raw",
    "openai": "openai SDK (AsyncOpenAI)",
    "pollux": "pollux-ai 2",
    "litellm": "LiteLLM acompletion",
}

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}, separators=(",", ":"))
MODELS = json.dumps({"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "bench"}]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds=10):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {seconds} s")


def make_certificate(workdir):
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key).
    ECDSA P-256 keys, as the providers' fronts serve (api.openai.com, api.anthropic.com and
    generativelanguage.googleapis.com present P-256 certificates to a client offering ECDSA): an
    RSA 2048 key would make each full handshake's signature several times dearer for nginx."""
    script = f"""
set -e; cd '{workdir}'
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -key ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key 2>/dev/null
openssl req -new -key server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
"""
    subprocess.run(["bash", "-c", script], check=True)
    return workdir / "ca.pem", workdir / "server.pem", workdir / "server.key"


UPLOADED = json.dumps({"id": "file-bench", "object": "file", "bytes": 0, "filename": "upload", "purpose": "user_data"}, separators=(",", ":"))


def start_nginx(workdir, slow_port=None):
    """nginx with one worker: the canned answers on a plain port and on a TLS port, `/v1/files`
    taking any body, and `/slow/` proxied to `slow_port` (the 1-second server) when given.
    (process, port, tls_port, ca)."""
    port = free_port()
    tls_port = free_port()
    ca, certificate, key = make_certificate(workdir)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = workdir / "nginx.conf"
    for d in ["logs", "tmp"]:
        (workdir / d).mkdir(exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    # The slow scenario's requests are logged with `$ssl_session_reused` ("r": the handshake
    # resumed a session, "." a full one or plain http), so a run can say how many full handshakes
    # it cost, and with when each ended and how long it took (from its first byte): when the
    # requests reached the server, measured by the server.
    slow = (f"location /slow/ {{ access_log {workdir}/logs/slow.log handshake; proxy_pass http://127.0.0.1:{slow_port}/; "
            f"proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_read_timeout 120s; }}") if slow_port else ""
    conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    log_format handshake '$ssl_session_reused $msec $request_time';
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        listen 127.0.0.1:{tls_port} ssl backlog=4096;
        default_type application/json;
        location = /v1/chat/completions {{ return 200 '{COMPLETION}'; }}
        location = /v1/models {{ return 200 '{MODELS}'; }}
        location = /v1/files {{ client_max_body_size 0; client_body_buffer_size 16m; proxy_pass http://127.0.0.1:{port}/uploaded;
                                proxy_pass_request_body off; proxy_set_header Content-Length ""; }}
        location = /uploaded {{ return 200 '{UPLOADED}'; }}
        {slow}
        location / {{ return 404 '{{"error":{{"message":"not found"}}}}'; }}
    }}
}}
""")
    process = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port(port)
    wait_for_port(tls_port)
    return process, port, tls_port, ca


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(base, workdir):
    script = workdir / "post.lua"
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say ok."}]})
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body)}\n')
    # wrk runs for a duration: about as long as pipeline takes for N_FAST, at least 2 s.
    seconds = max(2, round(N_FAST / 20000))
    cpu = children_cpu()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s", "-s", str(script), f"{base}/chat/completions"],
        capture_output=True, text=True, check=True).stdout
    cpu = children_cpu() - cpu
    requests = int(next(line for line in out.splitlines() if "requests in" in line).split()[0])
    rate = float(next(line for line in out.splitlines() if line.startswith("Requests/sec:")).split()[1])
    errors = sum(int(x) for line in out.splitlines() if "Non-2xx" in line for x in line.split()[-1:])
    return {"requests": requests, "ok": requests - errors, "rate": rate, "cpu_us": cpu / max(1, requests) * 1e6}


def commands_file(workdir, n):
    path = workdir / f"commands-{n}.jsonl"
    if not path.exists():
        with path.open("w") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"c{i}", "model": "bench", "prompt": "Say ok."}) + "\n")
    return path


def run_pipeline(base, workdir, n, concurrency, transport=None, ca=None):
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    trust, prefix = [], []
    if transport:
        env["COMMANDPIPELINE_HTTP_TRANSPORT"] = transport
        if ca:
            # URLSession (libcurl) reads only the system's bundle and no --ca-file: the CA is
            # mounted over that bundle in a private mount namespace (root only), never touching it.
            bundle = "/etc/ssl/certs/ca-certificates.crt"
            prefix = ["unshare", "-m", "/bin/bash", "-c", f'mount --bind "$0" {bundle} && exec "$@"', str(ca)]
    elif ca:
        trust = ["--ca-file", str(ca)]
    with commands_file(workdir, n).open("rb") as stdin:
        cpu = children_cpu()
        start = time.perf_counter()
        done = subprocess.run(
            prefix + [str(PIPELINE), "--provider", "openai", "--base-url", base, "--concurrency", str(concurrency), "--quiet", "--max-attempts", "1"]
            + trust, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        wall = time.perf_counter() - start
        cpu = children_cpu() - cpu
    ok = done.stdout.count(b'"status":"succeeded"')
    if done.returncode != 0:
        print(f"  pipeline exited {done.returncode}: {done.stderr.decode()[-300:]}", file=sys.stderr)
    return {"requests": n, "ok": ok, "rate": n / wall, "cpu_us": cpu / n * 1e6, "wall_s": wall}


def run_peer(client, base, n, ca=None):
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    if ca:
        env["SSL_CERT_FILE"] = str(ca)  # Python's ssl (aiohttp) and httpx (the openai SDK) read it
    out = subprocess.run(
        [str(PYTHON), str(HERE / "peers.py"), client, base, str(n), str(CONCURRENCY)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{client} failed: {out.stderr[-2000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {"requests": row["requests"], "ok": row["ok"], "rate": row["requests"] / row["wall_s"], "cpu_us": row["cpu_s"] / row["requests"] * 1e6}


def run_client(client, base, workdir, ca):
    if client == "wrk":
        return run_wrk(base, workdir)
    if client == "pipeline":
        return run_pipeline(base, workdir, N_FAST, CONCURRENCY, ca=ca)
    if client == "pipeline-urlsession":
        return run_pipeline(base, workdir, N_FAST, CONCURRENCY, transport="urlsession", ca=ca)
    return run_peer(client, base, N_FAST if client == "aiohttp" else N_SLOW, ca=ca)


def available(client):
    """Whether `client` can run here (its tool or Python module is installed)."""
    if client == "wrk":
        return shutil.which("wrk") is not None
    if client.startswith("pipeline"):
        return True
    module = {"aiohttp": "aiohttp", "openai": "openai", "pollux": "pollux", "litellm": "litellm"}[client]
    return subprocess.run([str(PYTHON), "-c", f"import {module}"], capture_output=True).returncode == 0


def start_slow_server():
    """The 1-second server (`slow_server.py`): (process, port)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "slow_server.py"), str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return server, port


def slow_scenario(workdir, scheme, base, slow_port, ca=None):
    """256 commands, --concurrency 256, each answered 1 s after it arrives: wall time, ideally
    1 s. `base`: nginx's plain or TLS port, in front of the 1-second server."""
    walls = []
    log = workdir / "logs/slow.log"
    for run in range(SLOW_RUNS):
        logged = log.stat().st_size if log.exists() else 0
        model = f"slow-bench-{scheme}{run}"
        path = workdir / f"slow-{scheme}-{run}.jsonl"
        path.write_text("".join(json.dumps({"id": f"s{i}", "model": model, "prompt": "p"}) + "\n" for i in range(256)))
        with path.open("rb") as stdin:
            started = time.time()
            start = time.perf_counter()
            done = subprocess.run(
                [str(PIPELINE), "--provider", "openai", "--base-url", base, "--concurrency", "256", "--quiet",
                 "--max-attempts", "1"] + (["--ca-file", str(ca)] if ca else []), stdin=stdin, capture_output=True)
            walls.append(time.perf_counter() - start)
        ok = done.stdout.count(b'"status":"succeeded"')
        with socket.create_connection(("127.0.0.1", slow_port)) as s:
            s.sendall(b"GET /v1/stats HTTP/1.0\r\nHost: x\r\n\r\n")
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        stats = json.loads(raw.split(b"\r\n\r\n", 1)[1] or b"{}")
        seen = ""
        if log.exists():
            with log.open("rb") as f:
                f.seek(logged)
                rows = [line.split() for line in f.read().splitlines() if line.strip()]
            # When each request's first byte reached nginx, from the client's start: the client's
            # start-up and connection set-up (and TLS) up to the first, its burst up to the last.
            arrived = sorted(float(row[1]) - float(row[2]) - started for row in rows)
            if arrived:
                seen = f"; requests reached nginx {arrived[0] * 1000:.0f}–{arrived[-1] * 1000:.0f} ms after the start"
            if scheme == "https":
                seen += f", {sum(row[0] == b'r' for row in rows)} of {len(rows)} on resumed TLS sessions"
        print(f"  {scheme:5} 256 x 1 s at --concurrency 256: {walls[-1]:.3f} s wall, {ok}/256 succeeded, "
              f"server saw {stats.get('max_inflight:' + model)} in flight at once{seen}")
    return walls


def waited(command, **options):
    """Runs `command` to its end: (returncode, stdout, wall s, CPU s, peak RSS MiB) of that process alone."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)
    # Read the pipes on threads so the child never blocks on them; wait4 gives its own rusage.
    import threading
    out, err = [], []
    readers = [threading.Thread(target=lambda: out.append(process.stdout.read())), threading.Thread(target=lambda: err.append(process.stderr.read()))]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    for reader in readers:
        reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        print(f"  {command[0]} exited {process.returncode}: {err[0].decode(errors='replace')[-300:]}", file=sys.stderr)
    return process.returncode, out[0], wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def upload_scenario(workdir, scheme, base, ca=None):
    """UPLOADS files of UPLOAD_MB MB each, distinct, by pipeline and by aiohttp: one row each."""
    size = UPLOAD_MB << 20
    directory = workdir / "uploads"
    if not directory.exists():
        directory.mkdir()
        block = bytes(range(256)) * 4096  # 1 MiB
        for i in range(UPLOADS):
            with (directory / f"up-{i}.pdf").open("wb") as f:
                f.write(f"%PDF-1.4 upload {i}\n".encode())
                written = 0
                while written < size:
                    piece = block[: size - written]
                    f.write(piece)
                    written += len(piece)
    rows = []
    commands = "".join(json.dumps({"id": f"u{i}", "model": "bench", "prompt": "Say ok.", "files": [f"up-{i}.pdf"]}) + "\n" for i in range(UPLOADS))
    (workdir / "uploads.jsonl").write_text(commands)
    with (workdir / "uploads.jsonl").open("rb") as stdin:
        code, out, wall, cpu, rss = waited(
            [str(PIPELINE), "--provider", "openai", "--base-url", base, "--capabilities", "generation,uploads", "--concurrency",
             str(UPLOAD_CONCURRENCY), "--quiet", "--max-attempts", "1"] + (["--ca-file", str(ca)] if ca else []),
            stdin=stdin, cwd=directory, env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"})
    rows.append({"client": "pipeline", "ok": out.count(b'"status":"succeeded"'), "wall_s": wall, "cpu_s": cpu, "rss_mib": rss})
    if available("aiohttp"):
        env = {**os.environ, **({"SSL_CERT_FILE": str(ca)} if ca else {})}
        code, out, wall, cpu, rss = waited(
            [str(PYTHON), str(HERE / "peers.py"), "aiohttp-upload", base, str(UPLOADS), str(UPLOAD_CONCURRENCY), str(directory)], env=env)
        row = json.loads(out.decode().strip().splitlines()[-1]) if code == 0 else {"ok": 0, "wall_s": wall, "cpu_s": cpu}
        rows.append({"client": "aiohttp", "ok": row["ok"], "wall_s": row["wall_s"], "cpu_s": row["cpu_s"], "rss_mib": rss})
    for row in rows:
        megabytes = UPLOADS * size / (1 << 20)
        print(f"  {scheme:5} {UPLOADS} uploads x {UPLOAD_MB} MB, {row['client']:9} {row['ok']}/{UPLOADS} ok, {row['wall_s']:.2f} s wall, "
              f"{UPLOADS / row['wall_s']:.1f} uploads/s, {megabytes / row['wall_s']:.0f} MiB/s, {row['cpu_s']:.2f} s CPU, peak RSS {row['rss_mib']:.0f} MiB",
              flush=True)
    return rows


def svg(rows, path, title):
    """Two horizontal bar charts (log scale): requests/s and CPU µs per request."""
    width, left, bar, gap, top = 960, 260, 22, 8, 70
    panel_w = (width - left - 40) // 2
    height = top + len(rows) * (bar + gap) + 60
    import math

    def scale(value, lo, hi):
        value = max(lo, min(hi, value))
        return (math.log10(value) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (panel_w - 70)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{width // 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{escape(title)}</text>']
    panels = [("requests/s (log scale, more is better)", "rate", 100, 1_000_000, "#3b7dd8"),
              ("CPU µs per request (log scale, less is better)", "cpu_us", 1, 100_000, "#d8833b")]
    for p, (label, key, lo, hi, colour) in enumerate(panels):
        x0 = left + p * (panel_w + 20)
        out.append(f'<text x="{x0}" y="{top - 24}" font-weight="bold">{escape(label)}</text>')
        decade = lo
        while decade <= hi:
            gx = x0 + scale(decade, lo, hi)
            out.append(f'<line x1="{gx:.1f}" y1="{top - 12}" x2="{gx:.1f}" y2="{height - 50}" stroke="#ddd"/>')
            out.append(f'<text x="{gx:.1f}" y="{height - 34}" text-anchor="middle" fill="#666" font-size="11">{axis(decade)}</text>')
            decade *= 10
        for i, row in enumerate(rows):
            y = top + i * (bar + gap)
            value = row[key]
            w = max(1.0, scale(value, lo, hi))
            fill = "#2a9d4b" if row["client"] == "pipeline" else colour
            if row.get("scheme") == "https":
                fill = "#1f6e35" if row["client"] == "pipeline" else ("#2a5a9e" if key == "rate" else "#a8612a")
            out.append(f'<rect x="{x0}" y="{y}" width="{w:.1f}" height="{bar}" fill="{fill}"/>')
            out.append(f'<text x="{x0 + w + 4:.1f}" y="{y + bar - 6}" font-size="12">{human(value)}</text>')
    for i, row in enumerate(rows):
        y = top + i * (bar + gap)
        scheme = f' ({row["scheme"]})' if "scheme" in row else ""
        out.append(f'<text x="{left - 10}" y="{y + bar - 6}" text-anchor="end">{escape(LABELS.get(row["client"], row["client"]) + scheme)}</text>')
    out.append(f'<text x="10" y="{height - 10}" fill="#666" font-size="11">{escape(f"median of {ROUNDS} alternating rounds, concurrency {CONCURRENCY}, one local nginx (1 worker); Benchmarks/http/run.sh")}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def axis(decade):
    return {1_000_000: "1M", 100_000: "100k", 10_000: "10k", 1000: "1k"}.get(decade, f"{decade:g}")


def human(value):
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:,.1f}k" if value < 10000 else f"{value / 1000:,.0f}k"
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def redraw():
    """Benchmarks/results/http.svg again from http.json (after a change to the drawing)."""
    saved = json.loads((ROOT / "Benchmarks/results/http.json").read_text())
    global ROUNDS, CONCURRENCY
    ROUNDS, CONCURRENCY = saved["rounds"], saved["concurrency"]
    svg(saved["rows"], ROOT / "Benchmarks/results/http.svg", f"HTTP path against one local nginx, {saved['date']}")


def main():
    if sys.argv[1:] == ["--redraw"]:
        return redraw()
    if not PIPELINE.exists():
        raise SystemExit(f"{PIPELINE} is missing: swift build -c release")
    workdir = Path(tempfile.mkdtemp(prefix="http-bench-"))
    slow_server, slow_port = start_slow_server() if SLOW_RUNS > 0 else (None, None)
    nginx, port, tls_port, ca = start_nginx(workdir, slow_port=slow_port)
    clients = []
    for client in CLIENTS:
        if available(client):
            clients.append(client)
        else:
            print(f"  {client}: not installed here, skipped")
    bases = {"http": (f"http://127.0.0.1:{port}/v1", None), "https": (f"https://127.0.0.1:{tls_port}/v1", ca)}
    can_mount = subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0 if shutil.which("unshare") else False
    runs_of = [(scheme, client) for scheme in SCHEMES for client in clients
               if not (scheme == "https" and client == "pipeline-urlsession" and not can_mount)]
    results = {run: [] for run in runs_of}
    slow, uploads = {}, {}
    try:
        print(f"nginx on 127.0.0.1:{port} (http) and :{tls_port} (https); {ROUNDS} rounds, concurrency {CONCURRENCY}, "
              f"N={N_FAST} (wrk, pipeline, aiohttp) / {N_SLOW} (SDKs)")
        for r in range(ROUNDS):
            order = runs_of[r % len(runs_of):] + runs_of[:r % len(runs_of)]
            for scheme, client in order:
                base, trust = bases[scheme]
                row = run_client(client, base, workdir, trust)
                results[(scheme, client)].append(row)
                print(f"  round {r + 1} {scheme:5} {client:20} {row['rate']:>10,.0f} req/s {row['cpu_us']:>9,.1f} µs CPU/req  ({row['ok']}/{row['requests']} ok)", flush=True)
        if SLOW_RUNS > 0 and "pipeline" in CLIENTS:
            for scheme in SCHEMES:
                slow_base = f"http://127.0.0.1:{port}/slow/v1" if scheme == "http" else f"https://127.0.0.1:{tls_port}/slow/v1"
                slow[scheme] = slow_scenario(workdir, scheme, slow_base, slow_port, bases[scheme][1])
        if UPLOADS > 0 and "pipeline" in CLIENTS:
            for scheme in SCHEMES:
                base, trust = bases[scheme]
                uploads[scheme] = upload_scenario(workdir, scheme, base, trust)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(5)
        except subprocess.TimeoutExpired:
            nginx.kill()
        if slow_server:
            slow_server.terminate()
            slow_server.wait()
    rows = []
    for scheme, client in runs_of:
        runs = results[(scheme, client)]
        rows.append({"client": client, "scheme": scheme, "rate": statistics.median(r["rate"] for r in runs),
                     "cpu_us": statistics.median(r["cpu_us"] for r in runs), "ok": min(r["ok"] / r["requests"] for r in runs)})
    for scheme in SCHEMES:
        reference = next((r for r in rows if r["client"] == "pipeline" and r["scheme"] == scheme), None)
        print(f"\n{scheme}:\n")
        print(f"| client | requests/s | CPU µs/request | rate ÷ pipeline | CPU ÷ pipeline |")
        print(f"|---|---:|---:|---:|---:|")
        for row in (r for r in rows if r["scheme"] == scheme):
            ratio = f"{row['rate'] / reference['rate']:.2f}×" if reference else "-"
            cpu_ratio = f"{row['cpu_us'] / reference['cpu_us']:.2f}×" if reference else "-"
            flag = "" if row["ok"] == 1 else f" (only {row['ok']:.0%} succeeded)"
            print(f"| {LABELS.get(row['client'], row['client'])}{flag} | {row['rate']:,.0f} | {row['cpu_us']:,.1f} | {ratio} | {cpu_ratio} |")
    for scheme, walls in slow.items():
        print(f"\n{scheme}: 256 commands × 1 s at --concurrency 256: median {statistics.median(walls):.3f} s (runs: {', '.join(f'{w:.3f}' for w in walls)}; ideal 1 s)")
    for scheme, rows_of_scheme in uploads.items():
        print(f"\n{scheme}: {UPLOADS} uploads × {UPLOAD_MB} MB at concurrency {UPLOAD_CONCURRENCY}:\n")
        print("| client | ok | wall s | uploads/s | CPU s | peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in rows_of_scheme:
            print(f"| {LABELS.get(row['client'], row['client'])} | {row['ok']}/{UPLOADS} | {row['wall_s']:.2f} | {UPLOADS / row['wall_s']:.1f} | {row['cpu_s']:.2f} | {row['rss_mib']:.0f} |")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    results_dir = ROOT / "Benchmarks/results"
    results_dir.mkdir(exist_ok=True)
    svg(rows, results_dir / "http.svg", f"HTTP path against one local nginx, {stamp}")
    (results_dir / "http.json").write_text(json.dumps({"date": stamp, "rounds": ROUNDS, "concurrency": CONCURRENCY, "rows": rows,
                                                       "runs": {f"{s}/{c}": v for (s, c), v in results.items()},
                                                       "slow_256_at_1s": slow, "uploads": uploads}, indent=1) + "\n")
    print(f"\nwrote {results_dir / 'http.svg'} and http.json")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
