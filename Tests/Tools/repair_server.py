#!/usr/bin/env python3
"""An OpenAI-compatible Chat Completions server for structured-output repairs. Loopback only.

Prints "PORT <n>" once listening. POST /v1/chat/completions needs a JSON response_format
({"type": "json_schema", "json_schema": {"name", "schema"}} or {"type": "json_object"}), else 400.
Behaviour by the request's model (what comes before a ":", so tests can keep their requests apart:
"repairable:cli" behaves as "repairable"):
  repairable   the first answer breaks the person schema ({"name": "Ada", "age": "thirty-six"}: age is a
               string); a request that continues the conversation the way a repair must (the
               rejected answer as the assistant's message, then a user message naming "$.age")
               gets {"name": "Ada", "age": 36}. Any other shape gets a second wrong answer.
  prose        the first answer is not JSON ("Sure! Ada is 36."); the repair as above.
  stubborn     always {"name": "Ada"} (age missing).
  good         always {"name": "Ada", "age": 36}.
Every answer carries usage (prompt: 4 tokens per message, completion: ceil(bytes/4)). With
"stream": true the answer comes as server-sent events, a few characters per chunk, then a usage
chunk and [DONE].
GET /requests lists every chat request body received, in order; GET /billed lists each answer's
text and usage.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = []
BILLED = []
LOCK = threading.Lock()

WRONG = {"repairable": '{"name": "Ada", "age": "thirty-six"}', "prose": "Sure! Ada is 36.", "stubborn": '{"name": "Ada"}'}
RIGHT = '{"name": "Ada", "age": 36}'


def text_of(message):
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def answer(model, messages):
    model = (model or "").split(":")[0]
    if model == "good":
        return RIGHT
    wrong = WRONG.get(model)
    if wrong is None:
        return None
    if model == "stubborn":
        return wrong
    roles = [m.get("role") for m in messages]
    if "assistant" not in roles:
        return wrong
    # A repair: ..., user (the prompt), assistant (the rejected answer), user (the correction).
    if len(messages) >= 3 and roles[-3:] == ["user", "assistant", "user"] and text_of(messages[-2]) == wrong:
        correction = text_of(messages[-1])
        expected = "$.age" if model == "repairable" else "does not parse"
        if expected in correction:
            return RIGHT
    return '{"wrong": "the repair conversation did not have the expected shape"}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, model, text, usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
        chunks = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
        for i in range(0, len(text), 7):
            chunks.append(dict(base, choices=[{"index": 0, "delta": {"content": text[i:i + 7]}, "finish_reason": None}]))
        chunks.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        chunks.append(dict(base, choices=[], usage=usage))
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self):
        if self.path == "/health":
            return self.send_json(200, {"ok": True})
        with LOCK:
            if self.path == "/requests":
                return self.send_json(200, REQUESTS)
            if self.path == "/billed":
                return self.send_json(200, BILLED)
        self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        if not self.path.endswith("/chat/completions"):
            return self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
        with LOCK:
            REQUESTS.append(body)
        fmt = body.get("response_format") or {}
        if fmt.get("type") not in ("json_schema", "json_object") or (fmt.get("type") == "json_schema" and "schema" not in fmt.get("json_schema", {})):
            return self.send_json(400, {"error": {"message": "response_format must ask for JSON", "type": "invalid_request_error"}})
        messages = body.get("messages") or []
        text = answer(body.get("model"), messages)
        if text is None:
            return self.send_json(404, {"error": {"message": f"unknown model {body.get('model')}", "type": "invalid_request_error", "code": "model_not_found"}})
        usage = {"prompt_tokens": 4 * len(messages), "completion_tokens": (len(text.encode()) + 3) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        with LOCK:
            BILLED.append({"text": text, "usage": usage})
        if body.get("stream"):
            return self.send_stream(body.get("model"), text, usage)
        self.send_json(200, {
            "id": f"chatcmpl-{len(REQUESTS)}", "object": "chat.completion", "created": 1700000000, "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None}, "finish_reason": "stop", "logprobs": None}],
            "usage": usage,
        })


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
