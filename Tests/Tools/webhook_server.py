#!/usr/bin/env python3
"""A webhook receiver for the result-sink tests. Loopback only. Records every request.

Usage: webhook_server.py PORT
  POST /hook/<name>             200 (records method, path, headers and body)
  POST /flaky-<N>/<name>        503 with Retry-After: 0 for the first N requests of each
                                Idempotency-Key, then 200
  POST /redirect/<name>         302 to /hook/<name> (a client must not follow it)
  POST /reject/<name>           400
  POST /hang/<name>             answers after 120 s (a receiver that hangs)
  GET  /requests/<name>         the recorded requests to that name, as a JSON list of
                                {"path", "idempotency_key", "content_type", "body"} (body parsed)
  GET  /health                  200
"""
import json
import sys
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
RECORDED = defaultdict(list)
ATTEMPTS = Counter()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, {"status": "ok"})
        if self.path.startswith("/requests/"):
            name = self.path[len("/requests/"):]
            with LOCK:
                return self.reply(200, RECORDED[name])
        self.reply(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        parts = self.path.strip("/").split("/")
        if len(parts) != 2:
            return self.reply(404, {"error": "no such path"})
        mode, name = parts
        key = self.headers.get("Idempotency-Key")
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode(errors="replace")}
        with LOCK:
            RECORDED[name].append({"path": self.path, "idempotency_key": key,
                                   "content_type": self.headers.get("Content-Type"), "body": body})
            ATTEMPTS[(name, key)] += 1
            attempt = ATTEMPTS[(name, key)]
        if mode == "hook":
            return self.reply(200, {"ok": True})
        if mode.startswith("flaky-"):
            if attempt <= int(mode[len("flaky-"):]):
                return self.reply(503, {"error": "try again"}, {"Retry-After": "0"})
            return self.reply(200, {"ok": True})
        if mode == "redirect":
            return self.reply(302, {}, {"Location": f"/hook/{name}"})
        if mode == "hang":
            time.sleep(120)
            return self.reply(200, {"ok": True})
        if mode == "reject":
            return self.reply(400, {"error": "no"})
        self.reply(404, {"error": "no such mode"})


def main():
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"PORT {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
