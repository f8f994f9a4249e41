#!/usr/bin/env python3
"""A small OpenAI-compatible server for faults FakeAI cannot produce. Loopback only.

Prints "PORT <n>" once listening. Behaviour is chosen by the request's model:
  echo            200, deterministic "echo: <last user text>" (streams when asked, with comments,
                  keep-alive blank lines, a multi-line data field and bytes split across writes)
  rate-limited    429 with Retry-After: 2          quota        429 insufficient_quota
  unavailable     503                              auth         401 echoing the Authorization header
  bad-request     400 OpenAI-style error body      bad-json     200 with a body that is not JSON
  drop-stream     a stream cut after two deltas without [DONE]
  stream-error    200 stream carrying {"error": …}
  hang            never answers (until the client gives up)
  flaky-N         503 for the first N attempts of each prompt, then echo
  no-choices      200 with usage but no choices (billed, though it answers nothing)
  usage-drop      a stream that sends its text and its usage chunk, then is cut without [DONE]
  slow-*          200 after 1 s; gate-N-*  200 once N requests for the model were held at once
                  (at most 60 s); both count them in GET /stats ("max_inflight:<model>")
POST /v1/files answers {"id": "file-<sha256 of the uploaded bytes>", "bytes": n, "filename": …, "purpose": …};
  a file whose bytes begin with "flaky-N:" gets a 503 for the first N uploads of those bytes, one
  beginning with "down:" a 503 always (a Files API that is down).
GET /stats gives the number of chat requests per model, and "files:<filename>" the uploads of each
file name (503s included); GET /billed lists, for every answer that carried usage, {"text": the
answer's text, "usage": its usage}: what the server billed (the cost tests price it and compare
with the results).
"""
import hashlib
import json
import re
import threading
import time
from collections import Counter

from serverkit import JSONHandler, serve

STATS = Counter()
ATTEMPTS = Counter()
BILLED = []
LOCK = threading.Lock()
GATE = threading.Condition(LOCK)


def last_text(messages):
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        for part in reversed(content or []):
            if part.get("type") == "text":
                return part.get("text", "")
    return ""


def tokens(text):
    return (len(text.encode()) + 3) // 4


class Handler(JSONHandler):
    def do_GET(self):
        if self.path.endswith("/health"):
            self.send_json(200, {"status": "ok"})
        elif self.path.endswith("/stats"):
            with LOCK:
                self.send_json(200, dict(STATS))
        elif self.path.endswith("/billed"):
            with LOCK:
                self.send_json(200, list(BILLED))
        else:
            self.send_json(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})

    def do_POST(self):
        raw = self.read_body()
        if self.path.endswith("/files"):
            return self.files(raw)
        if not self.path.endswith("/chat/completions"):
            return self.send_json(404, {"error": {"message": "no such path"}})
        body = json.loads(raw)
        model = body.get("model", "")
        with LOCK:
            STATS[model] += 1
        text = "echo: " + last_text(body.get("messages", []))
        stream = body.get("stream", False)
        flaky = re.fullmatch(r"flaky-(\d+)", model)
        if flaky:
            key = (model, text)
            with LOCK:
                ATTEMPTS[key] += 1
                attempt = ATTEMPTS[key]
            if attempt <= int(flaky.group(1)):
                return self.send_json(503, {"error": {"message": f"overloaded (attempt {attempt})", "type": "server_error"}})
            model = "echo"
        gate = re.fullmatch(r"gate-(\d+)-.*", model)
        if gate:
            # Holds each request until N for this model have been in flight at once (at most 60 s),
            # then answers: a count of requests held together that does not depend on the machine's speed.
            with GATE:
                STATS["inflight:" + model] += 1
                STATS["max_inflight:" + model] = max(STATS["max_inflight:" + model], STATS["inflight:" + model])
                GATE.notify_all()
                GATE.wait_for(lambda: STATS["max_inflight:" + model] >= int(gate.group(1)), timeout=60)
                STATS["inflight:" + model] -= 1
            return self.send_json(200, self.completion(body, text))
        if model.startswith("slow-"):
            # Answers after 1 s, counting how many requests for this model are in flight at once.
            with LOCK:
                STATS["inflight:" + model] += 1
                STATS["max_inflight:" + model] = max(STATS["max_inflight:" + model], STATS["inflight:" + model])
            time.sleep(1)
            with LOCK:
                STATS["inflight:" + model] -= 1
            return self.send_json(200, self.completion(body, text))
        if model == "echo":
            return self.stream_echo(body, text) if stream else self.send_json(200, self.completion(body, text))
        if model == "rate-limited":
            return self.send_json(429, {"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}, {"Retry-After": "2"})
        if model == "quota":
            return self.send_json(429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}})
        if model == "unavailable":
            return self.send_json(503, {"error": {"message": "The server is overloaded", "type": "server_error"}})
        if model == "auth":
            return self.send_json(401, {"error": {"message": "Incorrect API key provided: " + self.headers.get("Authorization", "")[7:], "type": "invalid_request_error", "code": "invalid_api_key"}})
        if model == "bad-request":
            return self.send_json(400, {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "param": "temperature", "code": None}})
        if model == "bad-json":
            data = b"<html>gateway</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if model == "no-choices":
            whole = self.completion(body, text)
            return self.send_json(200, {"id": "chatcmpl-none", "object": "chat.completion", "model": "no-choices", "choices": [], "usage": whole["usage"]})
        if model == "usage-drop":
            whole = self.completion(body, text)
            self.start_stream()
            self.event(json.dumps({"model": "usage-drop", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}))
            self.event(json.dumps({"model": "usage-drop", "choices": [], "usage": whole["usage"]}))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if model == "drop-stream":
            self.start_stream()
            for piece in ["Hello", " wor"]:
                self.event(json.dumps({"model": "drop-stream", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if model == "stream-error":
            self.start_stream()
            self.event(json.dumps({"error": {"message": "overloaded mid-stream", "type": "server_error"}}))
            self.event("[DONE]")
            return
        if model == "hang":
            time.sleep(30)
            return
        self.send_json(404, {"error": {"message": f"The model '{model}' does not exist", "type": "invalid_request_error", "code": "model_not_found"}})

    def completion(self, body, text):
        prompt = sum(tokens(m["content"]) if isinstance(m.get("content"), str) else 8 for m in body.get("messages", []))
        completion = tokens(text)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": 2}}
        with LOCK:
            BILLED.append({"text": text, "usage": usage})
        return {
            "id": "chatcmpl-fault", "object": "chat.completion", "model": body["model"] if body["model"] == "echo" else "echo",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def event(self, data):
        self.wfile.write(b"data: " + data.encode() + b"\n\n")
        self.wfile.flush()

    def stream_echo(self, body, text):
        whole = self.completion(body, text)
        self.start_stream()
        out = self.wfile
        out.write(b": a comment the client must ignore\n\n")
        out.write(b"data: " + json.dumps({"model": whole["model"], "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}).encode() + b"\r\n\r\n")
        words = re.findall(r"\S+\s*", text)
        for i, word in enumerate(words):
            chunk = json.dumps({"model": whole["model"], "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}).encode()
            if i == 0:
                # One payload over two data: lines (joined with a newline, still valid JSON).
                cut = chunk.index(b'"choices"')
                out.write(b"data: " + chunk[:cut] + b"\ndata: " + chunk[cut:] + b"\n\n")
            else:
                frame = b"data: " + chunk + b"\n\n"
                for k in range(0, len(frame), 7):  # bytes split across writes
                    out.write(frame[k:k + 7])
                    out.flush()
            out.write(b"\n")  # keep-alive blank line
        out.write(b"data: " + json.dumps({"model": whole["model"], "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode() + b"\n\n")
        out.write(b"data: " + json.dumps({"model": whole["model"], "choices": [], "usage": whole["usage"]}).encode() + b"\n\n")
        out.write(b"data: [DONE]\n\n")
        out.flush()

    def files(self, raw):
        match = re.search(rb"boundary=(.+)$", self.headers.get("Content-Type", "").encode())
        if not match:
            return self.send_json(400, {"error": {"message": "expected multipart/form-data"}})
        boundary = b"--" + match.group(1)
        fields, content, filename = {}, None, None
        for section in raw.split(boundary)[1:-1]:
            head, _, value = section.partition(b"\r\n\r\n")
            value = value[:-2]  # the CRLF before the next boundary
            name = re.search(rb'name="([^"]+)"', head).group(1).decode()
            file_match = re.search(rb'filename="([^"]*)"', head)
            if file_match:
                filename, content = file_match.group(1).decode(), value
            else:
                fields[name] = value.decode()
        if content is None or "purpose" not in fields:
            return self.send_json(400, {"error": {"message": "need a file and a purpose"}})
        digest = hashlib.sha256(content).hexdigest()
        with LOCK:
            STATS["files:" + (filename or "")] += 1
            ATTEMPTS[("files", digest)] += 1
            attempt = ATTEMPTS[("files", digest)]
        flaky = re.match(rb"flaky-(\d+):", content)
        if content.startswith(b"down:") or (flaky and attempt <= int(flaky.group(1))):
            return self.send_json(503, {"error": {"message": f"the files service is overloaded (upload {attempt})", "type": "server_error"}})
        self.send_json(200, {"id": "file-" + digest, "object": "file", "bytes": len(content),
                             "filename": filename, "purpose": fields["purpose"]})


if __name__ == "__main__":
    serve(Handler, backlog=1024)  # the default backlog (5) resets connections under a burst
