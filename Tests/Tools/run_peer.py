#!/usr/bin/env python3
"""Starts a peer server for the tests on a free loopback port and ties its life to ours.

Usage: run_peer.py [--health PATH] COMMAND... (with {port} where the port goes)
Waits until http://127.0.0.1:{port}/health (or PATH) answers 200, prints "PORT <n>" (or "FAILED <why>"),
then keeps the server until its own stdin closes (the test process ended, however it
ended) and stops it. So no server outlives the tests, in CI or anywhere.
"""
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    port = free_port()
    arguments = sys.argv[1:]
    health = "/health"
    if arguments[:1] == ["--health"]:
        health, arguments = arguments[1], arguments[2:]
    command = [part.replace("{port}", str(port)) for part in arguments]
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as error:
        print(f"FAILED cannot start {command[0]}: {error}", flush=True)
        return 1
    # A server started with --tls (hostile_server.py) answers its health check over HTTPS.
    scheme, context = ("https", ssl._create_unverified_context()) if "--tls" in command else ("http", None)
    deadline = time.time() + 120
    while time.time() < deadline:
        if child.poll() is not None:
            tail = child.stderr.read().decode(errors="replace")[-2000:]
            print(f"FAILED {command[0]} exited with {child.returncode}: {tail!r}", flush=True)
            return 1
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}{health}", timeout=2, context=context) as response:
                if response.status == 200:
                    break
        except Exception:
            time.sleep(0.2)
    else:
        child.kill()
        print(f"FAILED {command[0]} did not answer on port {port} within 120 s", flush=True)
        return 1
    print(f"PORT {port}", flush=True)
    # From here on nobody reads the server's stderr: drain it, so a chatty server (an access
    # log line per request) never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in iter(lambda: child.stderr.read(65536), b"")], daemon=True).start()
    sys.stdin.read()  # until the test process goes away
    child.terminate()
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
