"""What the loopback test servers in Tests/Tools share (standard library only).

`JSONHandler` is a quiet HTTP/1.1 request handler with `read_body()` and `send_json()`;
`serve(handler)` runs a threading server on 127.0.0.1 at the port given as the first
argument (0 or none: a free one), prints "PORT <n>" once listening (the tests wait for that
line), serves until interrupted, and closes its socket. Used by fault_server.py and
deployment_server.py.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JSONHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def read_body(self):
        """The request body as bytes (empty without a Content-Length)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def serve(handler, argv=None, backlog=None):
    """Serves `handler` on 127.0.0.1:`argv[1]` (default sys.argv; port 0 = a free one).
    `backlog` raises the listen queue (the default, 5, resets connections under a burst)."""
    argv = sys.argv if argv is None else argv
    port = int(argv[1]) if len(argv) > 1 else 0

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = backlog or ThreadingHTTPServer.request_queue_size

    server = Server(("127.0.0.1", port), handler)
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
