#!/usr/bin/env python3
"""Several OpenAI-compatible deployments in one process, for the router's tests. Loopback only.

Prints "PORT <n>" once listening. The first path segment names a deployment and its behaviour;
the rest is the OpenAI path (`/<name>/v1/chat/completions`). The name's prefix sets the behaviour:
  ok-*          200, "<name>: <last user text>" (as server-sent events when the request streams)
  fail-*        500 always
  throttle-*    answers with x-ratelimit-remaining-requests / x-ratelimit-reset-requests headers
                counting down a budget of 5 requests per window of 2 s; past it, 429 with
                Retry-After: 1 (a client that reads the headers never meets the 429)
  slow-*        200 after 300 ms
  dies-*        200 for its first 10 requests, then closes every connection without answering
                (a server that died mid-run)
GET /stats gives {name: {"requests": n, "answered": n, "429": n}}; POST /reset clears it.
"""
import json
import threading
import time
from collections import defaultdict

from serverkit import JSONHandler, serve

LOCK = threading.Lock()
STATS = defaultdict(lambda: {"requests": 0, "answered": 0, "429": 0})
WINDOWS = {}
BUDGET, WINDOW = 5, 2.0


def last_text(messages):
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if p.get("type") == "text")
    return ""


class Handler(JSONHandler):
    def send_stream(self, name, n, model, text, headers):
        """The answer as server-sent events: one delta, the finish, the usage, [DONE]."""
        base = {"id": "chatcmpl-%s-%d" % (name, n), "object": "chat.completion.chunk", "model": model}
        events = [
            dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]),
            dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            dict(base, choices=[], usage={"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}),
        ]
        data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.send_json(200, {"ok": True})
        elif self.path == "/stats":
            with LOCK:
                self.send_json(200, dict(STATS))
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/reset":
            with LOCK:
                STATS.clear()
                WINDOWS.clear()
            self.send_json(200, {})
            return
        parts = self.path.strip("/").split("/", 1)
        if len(parts) != 2 or parts[1] != "v1/chat/completions":
            self.send_json(404, {"error": {"message": "unknown path " + self.path}})
            return
        name = parts[0]
        with LOCK:
            STATS[name]["requests"] += 1
            n = STATS[name]["requests"]
        body = json.loads(raw or b"{}")
        headers = {}
        if name.startswith("fail-"):
            self.send_json(500, {"error": {"message": "internal error", "type": "server_error"}})
            return
        if name.startswith("dies-") and n > 10:
            self.close_connection = True
            self.connection.close()
            return
        if name.startswith("slow-"):
            time.sleep(0.3)
        if name.startswith("throttle-"):
            now = time.monotonic()
            with LOCK:
                start, used = WINDOWS.get(name, (now, 0))
                if now - start >= WINDOW:
                    start, used = now, 0
                used += 1
                WINDOWS[name] = (start, used)
                reset = max(0.0, WINDOW - (now - start))
                if used > BUDGET:
                    STATS[name]["429"] += 1
                    over = True
                else:
                    over = False
            headers = {"x-ratelimit-limit-requests": str(BUDGET), "x-ratelimit-remaining-requests": str(max(0, BUDGET - used)),
                       "x-ratelimit-reset-requests": "%dms" % int(reset * 1000)}
            if over:
                headers["Retry-After"] = "1"
                self.send_json(429, {"error": {"message": "rate limited", "type": "rate_limit_error"}}, headers)
                return
        text = "%s: %s" % (name, last_text(body.get("messages", [])))
        with LOCK:
            STATS[name]["answered"] += 1
        if body.get("stream"):
            self.send_stream(name, n, body.get("model", "?"), text, headers)
            return
        self.send_json(200, {
            "id": "chatcmpl-%s-%d" % (name, n), "object": "chat.completion", "model": body.get("model", "?"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}, headers)


if __name__ == "__main__":
    serve(Handler)
