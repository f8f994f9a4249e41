#!/usr/bin/env python3
"""TLS servers for the own transport's https tests (TLSTransportTests), one process, one port each.

Usage: tls_server.py CONTROL_PORT CERT_DIR

CERT_DIR holds what the test made with openssl: good.pem/good.key (from the test's CA, for
IP:127.0.0.1 and DNS:localhost), wronghost.pem/.key (the test's CA, for DNS:wrong.example only),
expired.pem/.key (the test's CA, expired), unknown.pem/.key (another CA nobody trusts).

CONTROL_PORT speaks plain http: GET /health, GET /state -> {"ports": {scenario: port},
"connections": {scenario: n}, "resumed": {scenario: n}, "received": {scenario: [text, ...]}}:
"resumed" counts the handshakes that resumed an earlier session (a TLS 1.3 ticket this server
issued: every TLS scenario's context issues them, OpenSSL's default), and every byte each scenario
received after its handshake (or, for the raw ones, at all), so a test can show that no header
and no key were sent. Scenarios:

  good        answers every request with an OpenAI chat completion, keep-alive (HTTP/1.1)
  wronghost   certificate for another name          expired   certificate expired
  unknownca   certificate from an untrusted CA      tls10     only TLS 1.0 (else TLS 1.1, see below)
  stall       accepts, reads, never answers the handshake
  plain       answers the ClientHello with a plain-http error (an https:// URL to an http port)
  untilclose  answers one request with a body delimited by the close (no Content-Length, not
              chunked, `Connection: close`), then ends the connection: with TLS's close_notify
              when the request's path contains `/close-notify`, with a bare TCP close (no
              close_notify: what a truncation attack looks like, RFC 9112 section 9.8) when it
              contains `/no-close-notify`; a path containing `/framed` gets the same body with a
              Content-Length, then a bare TCP close
  flip        served like untilclose, its connections alternating between the good certificate
              (odd: 1st, 3rd, …) and the untrusted CA's (even), each with a context and ticket keys
              of its own: the 2nd connection cannot resume the 1st's session and fails
              verification, the 3rd resumes only if the client still offers that session

tls10: the machine's OpenSSL may refuse to speak TLS 1.0 even as a server (security level);
the server then offers the lowest version it can below 1.2, and `tls10_version` in /state says
which. Either way the client (TLS 1.2 at least) must refuse the handshake.
"""
import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# TLS 1.0 and 1.1 are deprecated in Python: that is the point of the tls10 scenario.
warnings.filterwarnings("ignore", category=DeprecationWarning)

lock = threading.Lock()
ports = {}
connections = {}
resumed = {}
received = {}
notes = {}

ANSWER = json.dumps({
    "id": "chatcmpl-tls", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "over tls"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}).encode()


def record(scenario, data):
    with lock:
        received.setdefault(scenario, []).append(data.decode("latin-1"))


def count(scenario):
    with lock:
        connections[scenario] = connections.get(scenario, 0) + 1


def read_request(conn, buffered):
    """One HTTP/1.1 request (head and Content-Length body), or None at the end of the stream."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    body = rest[:length]
    if length > 4096:
        # A large body (an upload) is recorded by its size and digest, not whole.
        body = body[:1024] + b"...[%d body bytes, sha256 %s]" % (length, hashlib.sha256(body).hexdigest().encode())
    return head + b"\r\n\r\n" + body, rest[length:]


def serve_http(scenario, conn):
    buffered = b""
    while True:
        request, buffered = read_request(conn, buffered)
        if request is None:
            return
        record(scenario, request)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER)


def serve_until_close(scenario, conn):
    """One answer whose body ends with the connection; how it ends depends on the path."""
    request, _ = read_request(conn, b"")
    if request is None:
        return
    record(scenario, request)
    target = request.split(b"\r\n", 1)[0]
    framed = b"/framed" in target
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if framed:
        head += b"Content-Length: %d\r\n" % len(ANSWER)
    conn.sendall(head + b"\r\n" + ANSWER)
    if b"/no-close-notify" in target or framed:
        # A bare TCP close: the TLS session is dropped without SSL_shutdown (no close_notify).
        conn.shutdown(socket.SHUT_RDWR)
        return
    try:
        conn.unwrap()  # sends close_notify (then waits, at most until the client closes)
    except (ssl.SSLError, OSError):
        pass


def tls_connection(scenario, context, raw):
    count(scenario)
    try:
        conn = context.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as error:
        with lock:
            notes.setdefault(scenario, []).append(f"handshake failed: {error}")
        raw.close()
        return
    if conn.session_reused:
        with lock:
            resumed[scenario] = resumed.get(scenario, 0) + 1
    try:
        if scenario in ("untilclose", "flip"):
            serve_until_close(scenario, conn)
        else:
            serve_http(scenario, conn)
    except (ssl.SSLError, OSError):
        pass
    finally:
        conn.close()


def flip_connection(contexts, raw):
    with lock:
        earlier = connections.get("flip", 0)
    tls_connection("flip", contexts[earlier % 2], raw)


def raw_connection(scenario, raw):
    count(scenario)
    try:
        data = raw.recv(65536)
        if data:
            record(scenario, data)
        if scenario == "plain":
            raw.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nplain http\n")
            raw.close()
            return
        # stall: hold the connection open, reading whatever comes, never answering.
        while True:
            data = raw.recv(65536)
            if not data:
                break
            record(scenario, data)
    except OSError:
        pass
    finally:
        raw.close()


def listen(scenario, handler):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    ports[scenario] = server.getsockname()[1]

    def accept():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def server_context(directory, name):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key"))
    return context


def old_tls_context(directory):
    """A context speaking only a version below TLS 1.2: 1.0 if this OpenSSL allows it, else 1.1."""
    for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        try:
            context = server_context(directory, "good")
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
            context.minimum_version = version
            context.maximum_version = version
            # Check that a handshake at this version is possible at all (a client in-process).
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
            client.set_ciphers("DEFAULT:@SECLEVEL=0")
            client.minimum_version = version
            client.maximum_version = version
            a, b = socket.socketpair()
            result = {}

            def serve():
                try:
                    s = context.wrap_socket(a, server_side=True)
                    result["server"] = s.version()
                    s.close()
                except Exception as error:
                    result["server"] = f"failed: {error}"

            t = threading.Thread(target=serve)
            t.start()
            try:
                c = client.wrap_socket(b)
                result["client"] = c.version()
                c.close()
            except Exception as error:
                result["client"] = f"failed: {error}"
            t.join(10)
            a.close()
            b.close()
            if str(result.get("client", "")).startswith("TLSv1"):
                notes["tls10_version"] = result["client"]
                return context
        except (ssl.SSLError, ValueError, OSError):
            continue
    notes["tls10_version"] = "none below TLS 1.2 possible here: the server offers TLS 1.0 only and cannot complete any handshake"
    context = server_context(directory, "good")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1
    return context


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        elif self.path == "/state":
            with lock:
                body = json.dumps({"ports": ports, "connections": connections, "resumed": resumed, "received": received, "notes": notes}).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    control_port = int(sys.argv[1])
    directory = sys.argv[2]
    for scenario, name in [("good", "good"), ("wronghost", "wronghost"), ("expired", "expired"), ("unknownca", "unknown"), ("untilclose", "good")]:
        context = server_context(directory, name)
        listen(scenario, lambda raw, s=scenario, c=context: tls_connection(s, c, raw))
    flip = (server_context(directory, "good"), server_context(directory, "unknown"))
    listen("flip", lambda raw: flip_connection(flip, raw))
    old = old_tls_context(directory)
    listen("tls10", lambda raw: tls_connection("tls10", old, raw))
    for scenario in ("stall", "plain"):
        listen(scenario, lambda raw, s=scenario: raw_connection(s, raw))
    ThreadingHTTPServer(("127.0.0.1", control_port), Control).serve_forever()


if __name__ == "__main__":
    main()
