#!/usr/bin/env python3
"""nginx as a TLS reverse proxy in front of peer servers, for NginxTLSPeerTests.

Usage: nginx_tls_front.py WORKDIR NAME=http://127.0.0.1:PORT [NAME=...]

Makes a throwaway CA and a certificate for IP:127.0.0.1 and DNS:localhost signed by it (with
`openssl`, in WORKDIR), then starts the system's nginx (`nginx` on PATH, else /usr/sbin/nginx)
with its own prefix in WORKDIR, `daemon off`, one worker, listening with TLS on 127.0.0.1 at a
free port: `https://127.0.0.1:PORT/NAME/...` goes to `ORIGIN/...` of each NAME, unbuffered both
ways (streams stay streams, uploads are not spooled). nginx cannot take port 0, so a free port
is picked and, if another process takes it first, another one (up to 20 tries).

Prints "PORT <n> <ca.pem path>" (or "FAILED <why>"), then keeps nginx until its own stdin closes
(the test process ended, however it ended) and stops that nginx (the process it started, by
its pid) — so no nginx outlives the tests.
"""
import os
import shutil
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(workdir):
    script = f"""
set -e; cd '{workdir}'
key() {{ openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }}
key ca.key; openssl req -x509 -key ca.key -out ca.pem -days 2 -subj /CN=pipeline-nginx-test-ca 2>/dev/null
key server.key; openssl req -new -key server.key -out server.csr -subj /CN=pipeline-nginx-test 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
"""
    subprocess.run(["bash", "-c", script], check=True, timeout=120)
    return os.path.join(workdir, "ca.pem")


def configuration(workdir, port, upstreams):
    locations = "\n".join(
        f"""        location /{name}/ {{
            proxy_pass {origin.rstrip('/')}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }}"""
        for name, origin in upstreams)
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
    client_max_body_size 0;
    keepalive_timeout 75s;
    ssl_certificate {workdir}/server.pem;
    ssl_certificate_key {workdir}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen 127.0.0.1:{port} ssl backlog=1024;
{locations}
        location / {{ return 404 '{{"error":{{"message":"no such upstream on the nginx TLS front"}}}}'; }}
    }}
}}
"""


def start(workdir, upstreams):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        return None, None, f"no nginx at {nginx} (Debian package nginx)"
    for directory in ("logs", "tmp"):
        os.makedirs(os.path.join(workdir, directory), exist_ok=True)
    last = ""
    for _ in range(20):
        port = free_port()
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(configuration(workdir, port, upstreams))
        child = subprocess.Popen([nginx, "-p", workdir, "-c", conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if child.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return child, port, None
            except OSError:
                time.sleep(0.1)
        if child.poll() is None:
            child.kill()
            child.wait()
            return None, None, f"nginx did not listen on {port} within 120 s"
        last = child.stderr.read().decode(errors="replace")[-1500:]
        if "Address already in use" not in last:
            return None, None, f"nginx exited with {child.returncode}: {last!r}"
    return None, None, f"no free port for nginx after 20 tries: {last!r}"


def main():
    workdir = os.path.abspath(sys.argv[1])
    upstreams = [argument.split("=", 1) for argument in sys.argv[2:]]
    try:
        ca = make_certificate(workdir)
    except (subprocess.SubprocessError, OSError) as error:
        print(f"FAILED openssl: {error}", flush=True)
        return 1
    child, port, problem = start(workdir, upstreams)
    if child is None:
        print(f"FAILED {problem}", flush=True)
        return 1
    print(f"PORT {port} {ca}", flush=True)
    sys.stdin.read()  # until the test process goes away
    child.terminate()  # the nginx master this script started: a fast shutdown, workers included
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
