#!/usr/bin/env python3
"""An OpenAI-compatible server that attacks its client. Loopback only; Python stdlib only.

Prints "PORT <n>" once listening (usage: hostile_server.py [PORT]). It also listens on a
second loopback port, the "sink": the target of cross-origin redirects, which only counts
what reaches it (GET /stats on the main port: {"sink_hits": n, "sink_auth": n}).

The route is the request's model for chat completions, or the path segment after /r/ for
any path (so an upload to {base}/r/<route>/v1/files takes a route too):

  ok                          a normal completion (usage 3+2)
  redirect-<S>-<T>            status S (301 302 303 307 308) with Location on target T:
                              cross-port (the sink), cross-host (localhost, same port),
                              same (same origin, another path), userinfo (the sink, with
                              user:hunter2-password@ in the Location)
  echo-json-error             400 OpenAI error whose message lists every request header
  echo-text-200               200 text/plain listing the request headers (not JSON)
  echo-text-500               500 text/plain listing the request headers
  echo-encoded                500 text/plain with the Authorization header percent-encoded
                              (quote(safe="")), fully %XX-encoded, and upper-cased
  straddle-<N>-<K>            the key starting N characters before the 300-character
                              preview boundary, K: text-500, text-200, json-400
  stream-echo-error           200 SSE whose payload is {"error": {"message": <headers>}}
  stream-echo-garbage         200 SSE whose payload is not JSON and lists the headers
  huge-body                   200 with an 80 MiB chunked body (stops when the client leaves)
  huge-declared               200 declaring Content-Length 10^12, sending 1 KiB, closing
  lying-length                200 declaring Content-Length 100000, sending 50 bytes, closing
  chunked-cut                 200 chunked: one chunk, then the connection closes
  slow-drip                   200 head, then one byte every 0.2 s for up to 120 s
  drop-mid-stream             200 chunked SSE: two deltas, then the connection closes
  retry-after=<V>             429 with "Retry-After: V"
  retry-after-ms=<V>          429 with "retry-after-ms: V"
  usage=<V>                   200 whose usage is: max (Int.max, no total), max-total
                              (Int.max everywhere), negative, float (1e30), bignum
                              (10^30 as an integer literal), strings, huge (1e400: beyond a double)
  gzip-bomb                   200 "Content-Encoding: gzip", about 1 MB on the wire that
                              inflate to 1 GiB of zeros (whatever the client asked for)
  gzip-bomb-stream            the same bomb as a chunked text/event-stream answer
  gzip-small                  200 "Content-Encoding: gzip": a normal completion, compressed
                              (a server that compresses although the client asked for identity)
  gzip-bomb-error             500 "Content-Encoding: gzip" whose body is the bomb
  gzip-bomb-redirect          302 (Location: the sink) "Content-Encoding: gzip" whose body is the bomb

Provider-shaped routes (the shape follows the path: /v1beta/ is Gemini, /v1/messages is
Anthropic, anything else OpenAI):

  key-escaped                 an answer whose text spells the key with JSON \\u escapes, mixed
  key-escaped-stream          the same text streamed in 5-character deltas
  key-split-stream            a streamed answer that carries the key twice, each time split
                              across deltas of 3 characters
  anthropic-truncated         an Anthropic stream without message_start and without any
                              stop_reason: text deltas, then message_stop
  upload-traversal            Gemini upload whose answer names the file "files/../../x" while
                              PROCESSING; a poll whose raw path has a ".." segment is answered FAILED
  batch-<mode>                a batch service (OpenAI files + batches, Anthropic message
                              batches, Gemini batchGenerateContent with a responses file) whose
                              one job answers requests r0c0, r1c0, r2c0. Modes: ok;
                              errored-straddle (r0c0 errored, the key straddling the 300-char
                              preview, its type carrying the key across a 60-char cut); state-key
                              (the job's state, read back, is unknown and carries the key across
                              a 40-char cut); failed-key (the whole job failed
                              with the key in its message; OpenAI and Gemini); malformed (r1c0's line is cut JSON,
                              plus a non-object line); duplicate (two answers for r1c0)

With --tls CERT KEY the main port speaks HTTPS (the sink stays plain http).
"""
import gzip
import ssl
import struct
import zlib
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SINK = {"sink_hits": 0, "sink_auth": 0}
PORTS = {}
PREVIEW = 300
INT_MAX = 9223372036854775807


def headers_text(headers):
    """The request headers, Authorization first (so it is always inside a preview)."""
    items = sorted(headers.items(), key=lambda item: item[0].lower() != "authorization")
    return "; ".join(f"{k}: {v}" for k, v in items)


def completion(model, usage):
    return {"id": "chatcmpl-hostile", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
            "usage": usage}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sink = False

    def log_message(self, *args):
        pass

    def send_body(self, status, data, content_type="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status, body, headers=None):
        self.send_body(status, json.dumps(body).encode(), headers=headers)

    def do_GET(self):
        self.handle_any(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.handle_any(self.rfile.read(length))

    def handle_any(self, raw):
        if self.sink:
            with LOCK:
                SINK["sink_hits"] += 1
                SINK["sink_auth"] += 1 if self.headers.get("Authorization") else 0
            return self.send_json(200, completion("sink", {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}))
        if self.path.endswith("/health"):
            return self.send_json(200, {"status": "ok"})
        if self.path.endswith("/stats"):
            with LOCK:
                return self.send_json(200, dict(SINK))
        route = None
        if self.path.startswith("/r/"):
            route = self.path[3:].split("/", 1)[0]
        elif raw:
            try:
                route = json.loads(raw).get("model")
            except Exception:
                route = None
        try:
            self.route(route or "", raw)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, route, raw):
        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else auth
        if route.startswith("batch-"):
            return self.batch_route(route, raw)
        if route == "upload-traversal":
            return self.upload_traversal(route, raw)
        if route == "anthropic-truncated":
            return self.anthropic_truncated(route, raw)
        if route.startswith("key-"):
            return self.key_route(route, self.headers.get("x-goog-api-key") or self.headers.get("x-api-key") or key)
        if route == "ok":
            return self.send_json(200, completion("ok", {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}))
        if route.startswith("redirect-"):
            _, status, target = route.split("-", 2)
            path = self.path
            location = {
                "cross-port": f"http://127.0.0.1:{PORTS['sink']}{path}",
                "cross-host": f"http://localhost:{PORTS['main']}{path}",
                "same": f"http://127.0.0.1:{PORTS['main']}/landing{path}",
                "userinfo": f"http://user:hunter2-password@127.0.0.1:{PORTS['sink']}{path}",
            }[target]
            return self.send_json(int(status), {"moved": True}, headers={"Location": location})
        if route == "echo-json-error":
            return self.send_json(400, {"error": {"message": "bad request; you sent " + headers_text(self.headers), "type": "invalid_request_error"}})
        if route == "echo-text-200":
            return self.send_body(200, ("proxy saw " + headers_text(self.headers)).encode(), "text/plain")
        if route == "echo-text-500":
            return self.send_body(500, ("upstream failed; request was " + headers_text(self.headers)).encode(), "text/plain")
        if route == "echo-encoded":
            full = "".join(f"%{b:02X}" for b in key.encode())
            text = f"quoted={urllib.parse.quote(auth, safe='')} full={full} lower={full.lower()} upper={key.upper()}"
            return self.send_body(500, text.encode(), "text/plain")
        if route.startswith("straddle-"):
            _, n, kind = route.split("-", 2)
            pad = "x" * (PREVIEW - int(n))
            if kind == "json-400":
                return self.send_json(400, {"error": {"message": pad + key + " trailing text"}})
            return self.send_body(500 if kind == "text-500" else 200, (pad + key + " trailing text").encode(), "text/plain")
        if route == "stream-echo-error":
            self.start_stream()
            self.event(json.dumps({"error": {"message": "upstream saw " + headers_text(self.headers)}}))
            self.event("[DONE]")
            return
        if route == "stream-echo-garbage":
            self.start_stream()
            self.event("not json: " + headers_text(self.headers))
            self.event("[DONE]")
            return
        if route == "huge-body":
            self.start_chunked(200, "application/json")
            block = b" " * (1 << 20)
            for _ in range(80):
                self.chunk(block)
            self.wfile.write(b"0\r\n\r\n")
            return
        if route == "huge-declared":
            return self.truncated(10 ** 12, b"{" + b" " * 1023)
        if route == "lying-length":
            return self.truncated(100000, b'{"id":"chatcmpl-lying","choices":[{"index":0,"mes')
        if route == "chunked-cut":
            self.start_chunked(200, "application/json")
            self.chunk(b'{"id":"chatcmpl-cut","choices":[')
            return self.hang_up()
        if route == "slow-drip":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.flush()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
            return self.hang_up()
        if route == "drop-mid-stream":
            self.start_chunked(200, "text/event-stream")
            for piece in ["Hello", " wor"]:
                data = json.dumps({"model": "drop", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                self.chunk(b"data: " + data.encode() + b"\n\n")
            return self.hang_up()
        if route.startswith("retry-after=") or route.startswith("retry-after-ms="):
            name, value = route.split("=", 1)
            if value == "far-future":
                value = "Fri, 31 Dec 9999 23:59:59 GMT"
            return self.send_json(429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}, {name: value})
        if route in ("gzip-bomb", "gzip-bomb-stream", "gzip-bomb-error", "gzip-bomb-redirect"):
            return self.gzip_bomb(route)
        if route == "gzip-small":
            data = gzip.compress(json.dumps(completion("gzip", {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})).encode())
            return self.send_body(200, data, headers={"Content-Encoding": "gzip"})
        if route.startswith("usage="):
            variant = route.split("=", 1)[1]
            if variant == "bignum":
                body = json.dumps(completion("usage", {})).replace('"usage": {}', '"usage": {"prompt_tokens": 1000000000000000000000000000000, "completion_tokens": 1000000000000000000000000000000}')
                return self.send_body(200, body.encode())
            usage = {
                "max": {"prompt_tokens": INT_MAX, "completion_tokens": INT_MAX},
                "max-total": {"prompt_tokens": INT_MAX, "completion_tokens": INT_MAX, "total_tokens": INT_MAX,
                              "prompt_tokens_details": {"cached_tokens": INT_MAX}},
                "negative": {"prompt_tokens": -5, "completion_tokens": -INT_MAX - 1, "total_tokens": -7,
                             "prompt_tokens_details": {"cached_tokens": -1}},
                "float": {"prompt_tokens": 1e30, "completion_tokens": 1e30, "total_tokens": 1e30},
                "strings": {"prompt_tokens": "12", "completion_tokens": "x", "total_tokens": None},
            }.get(variant)
            if usage is None:  # huge: a number beyond a double's range, as raw JSON
                body = json.dumps(completion("usage", {})).replace('"usage": {}', '"usage": {"prompt_tokens": 1e400, "completion_tokens": 2, "total_tokens": 1e400}')
                return self.send_body(200, body.encode())
            return self.send_json(200, completion("usage", usage))
        self.send_json(404, {"error": {"message": f"no route '{route}'", "type": "invalid_request_error"}})

    def gzip_bomb(self, route):
        head, block, tail = bomb_pieces()
        count = BOMB_MIB - 1
        size = len(head) + len(block) * count + len(tail)
        status = {"gzip-bomb-error": 500, "gzip-bomb-redirect": 302}.get(route, 200)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", f"http://127.0.0.1:{PORTS['sink']}{self.path}")
        self.send_header("Content-Type", "text/event-stream" if route == "gzip-bomb-stream" else "application/json")
        self.send_header("Content-Encoding", "gzip")
        if route == "gzip-bomb-stream":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(head)
            for _ in range(count):
                self.chunk(block)
            self.chunk(tail)
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(head)
        for start in range(0, count, 64):
            self.wfile.write(block * min(64, count - start))
        self.wfile.write(tail)

    def sse(self, data, name=None):
        self.wfile.write((f"event: {name}\n" if name else "").encode() + b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def event(self, data):
        self.wfile.write(b"data: " + data.encode() + b"\n\n")
        self.wfile.flush()

    def start_chunked(self, status, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def truncated(self, declared, data):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(data)
        self.hang_up()

    def hang_up(self):
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass


def provider_of(path):
    return "gemini" if "/v1beta/" in path else "anthropic" if path.endswith("/v1/messages") else "openai"


def key_route(self, route, k):
    """Provider-shaped answers that put the key where nobody thinks of it as server text:
    the model name, the finish reason, an error's status, type or reason, a 200 error body,
    a safety block message. The shape follows the path, so one route serves every adapter."""
    provider = provider_of(self.path)
    if route == "key-model":
        body = {
            "gemini": {"modelVersion": "echo " + k, "candidates": [{"content": {"parts": [{"text": "hi " + k}]}, "finishReason": "echo " + k}],
                       "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}},
            "anthropic": {"type": "message", "role": "assistant", "model": "echo " + k, "content": [{"type": "text", "text": "hi " + k}],
                          "stop_reason": "echo " + k, "usage": {"input_tokens": 1, "output_tokens": 1}},
            "openai": {"id": "c", "object": "chat.completion", "model": "echo " + k,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi " + k}, "finish_reason": "echo " + k}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
        }[provider]
        return self.send_json(200, body)
    if route == "key-status":
        body = {
            "gemini": {"error": {"code": 400, "message": "bad", "status": "ECHO_" + k,
                                 "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R_" + k}]}},
            "anthropic": {"type": "error", "error": {"type": "T_" + k, "message": "bad"}},
            "openai": {"error": {"message": "bad", "type": "T_" + k, "code": "C_" + k}},
        }[provider]
        return self.send_json(400, body)
    if route == "key-error-200":
        body = {
            "gemini": {"error": {"code": 503, "message": "echo " + k, "status": "UNAVAILABLE"}},
            "anthropic": {"type": "error", "error": {"type": "overloaded_error", "message": "echo " + k}},
            "openai": {"error": {"message": "echo " + k}},
        }[provider]
        return self.send_json(200, body)
    if route == "key-block":
        return self.send_json(200, {"promptFeedback": {"blockReason": "OTHER", "blockReasonMessage": "echo " + k}})
    if route == "key-split-stream":
        text = "the key " + k + " and again " + "filler " * 30 + k + " end" + " tail" * 30
        pieces = [text[i:i + 3] for i in range(0, len(text), 3)]
        self.start_stream()
        if provider == "anthropic":
            self.sse({"type": "message_start", "message": {"model": "split", "usage": {"input_tokens": 1, "output_tokens": 0}}}, "message_start")
            for piece in pieces:
                self.sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
            self.sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}, "message_delta")
            self.sse({"type": "message_stop"}, "message_stop")
        elif provider == "gemini":
            for n, piece in enumerate(pieces):
                chunk = {"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}}]}
                if n == len(pieces) - 1:
                    chunk["candidates"][0]["finishReason"] = "STOP"
                    chunk["usageMetadata"] = {"promptTokenCount": 1, "candidatesTokenCount": 5, "totalTokenCount": 6}
                self.sse(chunk)
        else:
            for piece in pieces:
                self.sse({"model": "split", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            self.sse({"model": "split", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}})
            self.event("[DONE]")
        return
    if route in ("key-escaped", "key-escaped-stream"):
        # The key spelled with JSON escapes inside the answer's text (a model quoting JSON), mixed:
        # \uXXXX in lower- and upper-case hex, plain characters; once written as an escape in the
        # wire JSON itself (decoded to the key by the client), once as text that holds the escapes.
        def escaped(key, salt):
            return "".join(("\\u%04x" if (i + salt) % 3 == 0 else "\\u%04X" if (i + salt) % 3 == 1 else "%s") % (c if (i + salt) % 3 == 2 else ord(c))
                           for i, c in enumerate(key))
        text = "as text " + escaped(k, 0) + " and " + escaped(k.upper(), 1) + " end"
        if route == "key-escaped":
            body = {
                "gemini": {"modelVersion": "m", "candidates": [{"content": {"parts": [{"text": text + " @@WIRE@@"}]}, "finishReason": "STOP"}],
                           "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}},
                "anthropic": {"type": "message", "role": "assistant", "model": "m", "content": [{"type": "text", "text": text + " @@WIRE@@"}],
                              "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}},
                "openai": {"id": "c", "object": "chat.completion", "model": "m",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": text + " @@WIRE@@"}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
            }[provider]
            raw = json.dumps(body).replace("@@WIRE@@", escaped(k, 2))
            return self.send_body(200, raw.encode())
        pieces = [text[i:i + 5] for i in range(0, len(text), 5)]
        self.start_stream()
        if provider == "anthropic":
            self.sse({"type": "message_start", "message": {"model": "split", "usage": {"input_tokens": 1, "output_tokens": 0}}}, "message_start")
            for piece in pieces:
                self.sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
            self.sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}, "message_delta")
            self.sse({"type": "message_stop"}, "message_stop")
        elif provider == "gemini":
            for n, piece in enumerate(pieces):
                chunk = {"candidates": [{"content": {"parts": [{"text": piece}], "role": "model"}}]}
                if n == len(pieces) - 1:
                    chunk["candidates"][0]["finishReason"] = "STOP"
                    chunk["usageMetadata"] = {"promptTokenCount": 1, "candidatesTokenCount": 5, "totalTokenCount": 6}
                self.sse(chunk)
        else:
            for piece in pieces:
                self.sse({"model": "split", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
            self.sse({"model": "split", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}})
            self.event("[DONE]")
        return
    if route == "key-nonjson-200":
        return self.send_body(200, ("echo: " + k).encode(), "text/plain")
    return self.send_json(404, {"error": {"message": "unknown key route"}})


Handler.key_route = key_route

BATCH_IDS = ["r0c0", "r1c0", "r2c0"]


def batch_lines(provider, mode, k):
    """The result file's lines for `mode`, in the provider's shape."""
    def ok(custom_id, text="fine"):
        if provider == "anthropic":
            return {"custom_id": custom_id, "result": {"type": "succeeded", "message": {
                "type": "message", "role": "assistant", "model": "m", "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 2}}}}
        if provider == "gemini":
            return {"key": custom_id, "response": {"candidates": [{"content": {"parts": [{"text": text}]}, "finishReason": "STOP"}],
                                                   "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}}}
        return {"custom_id": custom_id, "response": {"status_code": 200, "body": completion("m", {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})}}

    def errored(custom_id, message, kind):
        if provider == "anthropic":
            return {"custom_id": custom_id, "result": {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}}}
        if provider == "gemini":
            return {"key": custom_id, "error": {"code": 400, "message": message, "status": kind}}
        return {"custom_id": custom_id, "error": {"code": kind, "message": message}}

    lines = [json.dumps(ok(i, f"answer {i}")) for i in BATCH_IDS]
    if mode == "errored-straddle":
        lines[0] = json.dumps(errored("r0c0", "x" * (PREVIEW - 20) + k + " trailing", "T_" + "z" * 50 + k))
    elif mode == "malformed":
        lines[1] = json.dumps(ok("r1c0"))[:25]
        lines.insert(2, "[1, 2, 3]")
    elif mode == "duplicate":
        lines.insert(2, json.dumps(ok("r1c0", "another answer")))
    return ("\n".join(lines) + "\n").encode()


def batch_route(self, route, raw):
    """A batch service with one job, whose state and results follow the route's mode."""
    mode = route[len("batch-"):]
    k = self.headers.get("x-goog-api-key") or self.headers.get("x-api-key") or self.headers.get("Authorization", "")[7:]
    path = self.path.split("?", 1)[0]
    provider = "gemini" if "/v1beta/" in path else "anthropic" if "/v1/messages/batches" in path else "openai"
    base = path[:path.index(route) + len(route)]
    # The unknown state shows when the job is read back, not in the answer to its creation.
    state_text = "weird-" + "y" * 24 + k if mode == "state-key" and self.command == "GET" else None
    counts = {"total": 3, "completed": 3, "failed": 0}
    if provider == "openai":
        if path.endswith("/files") and self.command == "POST":
            return self.send_json(200, {"id": "file-in", "object": "file"})
        if path.endswith("/files/file-out/content"):
            return self.send_body(200, batch_lines("openai", mode, k), "application/jsonl")
        job = {"id": "batch_h1", "object": "batch", "status": state_text or ("failed" if mode == "failed-key" else "completed"),
               "request_counts": counts, "output_file_id": None if mode == "failed-key" else "file-out", "error_file_id": None,
               "metadata": {}, "created_at": int(time.time())}
        if mode == "failed-key":
            job["errors"] = {"data": [{"code": "invalid", "message": "y" * 190 + k}]}
        if path.endswith("/batches") and self.command == "GET":
            return self.send_json(200, {"data": [job], "has_more": False})
        return self.send_json(200, job)
    if provider == "anthropic":
        if path.endswith("/results"):
            return self.send_body(200, batch_lines("anthropic", mode, k), "application/jsonl")
        job = {"id": "msgbatch_h1", "type": "message_batch", "processing_status": state_text or "ended",
               "request_counts": {"processing": 0, "succeeded": 3, "errored": 0, "canceled": 0, "expired": 0},
               "results_url": base + "/v1/messages/batches/msgbatch_h1/results", "created_at": "2026-01-01T00:00:00Z"}
        if path.endswith("/batches") and self.command == "GET":
            return self.send_json(200, {"data": [job], "has_more": False})
        return self.send_json(200, job)
    if path.endswith(":download"):
        return self.send_body(200, batch_lines("gemini", mode, k), "application/jsonl")
    state = state_text or ("BATCH_STATE_FAILED" if mode == "failed-key" else "BATCH_STATE_SUCCEEDED")
    operation = {"name": "batches/h1", "metadata": {"state": state, "displayName": "x",
                 "batchStats": {"requestCount": "3", "successfulRequestCount": "3"}, "output": {"responsesFile": "files/out1"}}}
    if mode == "failed-key":
        operation["error"] = {"code": 3, "message": "y" * 190 + k}
    if path.endswith("/batches") and self.command == "GET":
        return self.send_json(200, {"operations": [operation]})
    return self.send_json(200, operation)


def upload_traversal(self, route, raw):
    """Gemini's resumable upload; the answer names the file files/../../x, still PROCESSING."""
    path = self.path.split("?", 1)[0]
    base = path[:path.index(route) + len(route)]
    if path.endswith("/upload/v1beta/files"):
        self.send_response(200)
        self.send_header("x-goog-upload-url", base + "/upload/bytes")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return
    if path.endswith("/upload/bytes"):
        return self.send_json(200, {"file": {"name": "files/../../x", "state": "PROCESSING", "uri": base + "/v1beta/files/x"}},
                              headers={"x-goog-upload-status": "final"})
    if ".." in path.split("/"):
        return self.send_json(200, {"name": "files/x", "state": "FAILED", "error": {"message": "the poll left files/: " + path}})
    return self.send_json(200, {"name": "files/x", "state": "ACTIVE", "uri": base + "/v1beta/files/x", "mimeType": "text/plain"})


def anthropic_truncated(self, route, raw):
    self.start_stream()
    for piece in ["Hel", "lo"]:
        self.sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
    self.sse({"type": "message_stop"}, "message_stop")


Handler.batch_route = batch_route
Handler.upload_traversal = upload_traversal
Handler.anthropic_truncated = anthropic_truncated


BOMB_MIB = 1024
BOMB = []


def bomb_pieces():
    """A gzip stream of BOMB_MIB MiB of zeros, built from one compressed MiB repeated: after a
    full flush the compressor starts afresh, so each further MiB compresses to the same bytes.
    (The trailer's CRC is not that of the whole: a client that stops at its cap never sees it.)"""
    with LOCK:
        if not BOMB:
            zeros = bytes(1 << 20)
            c = zlib.compressobj(9, zlib.DEFLATED, 31)
            head = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
            block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
            tail = c.flush()[:-8] + struct.pack("<II", 0, (BOMB_MIB << 20) & 0xFFFFFFFF)
            BOMB.extend([head, block, tail])
        return BOMB


class SinkHandler(Handler):
    sink = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog (5) resets connections when a test sends dozens at once


def main():
    args = sys.argv[1:]
    tls = None
    if "--tls" in args:
        at = args.index("--tls")
        tls = (args[at + 1], args[at + 2])
        del args[at:at + 3]
    port = int(args[0]) if args else 0
    sink = Server(("127.0.0.1", 0), SinkHandler)
    server = Server(("127.0.0.1", port), Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[0], tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    PORTS["main"], PORTS["sink"] = server.server_address[1], sink.server_address[1]
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
