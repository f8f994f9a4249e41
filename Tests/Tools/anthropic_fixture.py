#!/usr/bin/env python3
"""An Anthropic API fixture for the tests: what no public mock serves.

Usage: anthropic_fixture.py PORT [--key KEY] [--min-cache-tokens N]

Standard library only. It serves, on 127.0.0.1:PORT,
  POST /v1/messages               (JSON or SSE with named events)
  POST /v1/messages/count_tokens
  POST /v1/files, GET /v1/files, GET|DELETE /v1/files/{id}   (multipart upload)
and follows the API's rules where the tests depend on them:
  - headers: `anthropic-version` is required; with --key, the key must come in
    `x-api-key` (what the API documents) or `Authorization: Bearer` (what the 2.x SDK sends);
  - `max_tokens` is required on messages and refused by count_tokens; unknown top-level
    fields are refused, as the API refuses them;
  - prompt caching by prefix: the prefix is tools -> system -> messages, block by block, up
    to a block marked `cache_control` ({"type":"ephemeral","ttl":"5m"|"1h"}; at most 4
    breakpoints; a 1h breakpoint may not follow a 5m one; a top-level `cache_control` marks
    the last block). A prefix shorter than the model's minimum (1024 tokens, 2048 for haiku
    models, or --min-cache-tokens) is not cached and no error is said. A read looks back up
    to 20 blocks before each breakpoint for the longest prefix cached earlier; a read
    refreshes the entry's TTL. usage.input_tokens EXCLUDES cache_read_input_tokens and
    cache_creation_input_tokens; usage.cache_creation splits written tokens by TTL;
  - tokens: a text is ceil(utf8 bytes / 4); an image or a PDF 258; a plain-text document its text.

The answer is "echo: " + the last text of the last user turn. Model names containing these
words make faults: `overloaded` (529 overloaded_error), `rate-limited` (429 with
retry-after: 2), `server-error` (500 api_error), `too-large` (413 with an HTML body, as a
proxy sends), `refuse` (stop_reason refusal), `stream-error` (a 200 stream that ends in an
`error` event), `stream-truncate` (a 200 stream cut before message_stop), `stream-extra`
(pings and an unknown event type inside the stream), `echo-key` (a 401 whose message
repeats the key sent, to test redaction).

Admin (for tests): GET /health, GET /_fixture/stats, POST /_fixture/advance?seconds=N
(moves the fixture's cache clock: no test sleeps), POST /_fixture/reset.
Billing: stats["billed"] lists, for every messages request answered, {"model", "usage"}: the
usage the answer reported, which is what the fixture bills (a stream cut before its end bills
what its message_start reported). The cost tests price these and compare with the results.
"""
import base64
import binascii
import email.parser
import email.policy
import hashlib
import json
import math
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

MESSAGE_FIELDS = {"model", "messages", "max_tokens", "system", "temperature", "top_p", "top_k", "stop_sequences",
                  "stream", "metadata", "tools", "tool_choice", "thinking", "cache_control", "output_config",
                  "service_tier"}
COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config"}
TTL_SECONDS = {"5m": 300, "1h": 3600}
LOOKBACK_BLOCKS = 20
MAX_BREAKPOINTS = 4
MAX_UPLOAD = 32 * 1024 * 1024


class APIFault(Exception):
    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def bad(message):
    return APIFault(400, "invalid_request_error", message)


def text_tokens(text):
    size = len(text.encode("utf-8"))
    return max(1, math.ceil(size / 4)) if size else 0


class State:
    def __init__(self, key, min_cache_tokens):
        self.key = key
        self.min_cache_tokens = min_cache_tokens
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.offset = 0.0
            self.cache = {}  # prefix hash -> {"expires": t, "ttl": seconds, "tokens": n}
            self.files = {}
            self.stats = {"messages": 0, "count_tokens": 0, "uploads": 0, "cache_writes": 0, "cache_reads": 0,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "auth_headers": [],
                          "billed": []}

    def now(self):
        return time.time() + self.offset

    def minimum(self, model):
        if self.min_cache_tokens is not None:
            return self.min_cache_tokens
        return 2048 if "haiku" in model else 1024


STATE = None


def check_cache_control(value, where):
    if not isinstance(value, dict) or value.get("type") != "ephemeral":
        raise bad(f"{where}.cache_control.type: Input should be 'ephemeral'")
    extra = set(value) - {"type", "ttl"}
    if extra:
        raise bad(f"{where}.cache_control.{sorted(extra)[0]}: Extra inputs are not permitted")
    ttl = value.get("ttl", "5m")
    if ttl not in TTL_SECONDS:
        raise bad(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return ttl


def block_tokens(block, where):
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise bad(f"{where}.text: Field required")
        if not text:
            raise bad(f"{where}: text content blocks must be non-empty")
        return text_tokens(text)
    if kind in ("image", "document"):
        source = block.get("source")
        if not isinstance(source, dict):
            raise bad(f"{where}.source: Field required")
        stype = source.get("type")
        if stype == "base64":
            media = source.get("media_type")
            allowed = {"image/jpeg", "image/png", "image/gif", "image/webp"} if kind == "image" else {"application/pdf"}
            if media not in allowed:
                raise bad(f"{where}.source.media_type: Input should be one of {sorted(allowed)}")
            try:
                base64.b64decode(source.get("data", ""), validate=True)
            except (binascii.Error, ValueError):
                raise bad(f"{where}.source.data: invalid base64 data")
            return 258
        if stype == "text" and kind == "document":
            return text_tokens(source.get("data", ""))
        if stype == "url":
            return 258
        if stype == "file":
            file_id = source.get("file_id")
            with STATE.lock:
                stored = STATE.files.get(file_id)
            if stored is None:
                raise APIFault(404, "not_found_error", f"File not found: {file_id}")
            if kind == "document" and stored["mime_type"] == "text/plain":
                return text_tokens(stored["data"].decode("utf-8", errors="replace"))
            if kind == "image" and not stored["mime_type"].startswith("image/"):
                raise bad(f"{where}: file {file_id} ({stored['mime_type']}) is not an image")
            return 258
        raise bad(f"{where}.source.type: unknown source type {stype!r}")
    if kind in ("tool_use", "tool_result", "thinking"):
        return text_tokens(json.dumps(block, sort_keys=True))
    raise bad(f"{where}.type: unknown content block type {kind!r}")


def flatten(body, for_count):
    """The prompt as blocks in cache order: [(tokens, canonical text, ttl or None)], and the last user text."""
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    allowed = COUNT_FIELDS if for_count else MESSAGE_FIELDS
    for field in body:
        if field not in allowed:
            raise bad(f"{field}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad("model: Field required")
    if not for_count:
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise bad("max_tokens: Field required")
        if max_tokens < 1:
            raise bad("max_tokens: Input should be greater than or equal to 1")
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise bad(f"{name}: Input should be between 0 and 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages: at least one message is required")

    blocks = []

    def add(block, where):
        if not isinstance(block, dict):
            raise bad(f"{where}: Input should be an object")
        ttl = check_cache_control(block["cache_control"], where) if "cache_control" in block else None
        tokens = block_tokens(block, where)
        canonical = json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)
        blocks.append([tokens, canonical, ttl])

    check_tools(body)
    for index, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict):
            raise bad(f"tools.{index}: Input should be an object")
        ttl = check_cache_control(tool["cache_control"], f"tools.{index}") if "cache_control" in tool else None
        canonical = json.dumps({k: v for k, v in tool.items() if k != "cache_control"}, sort_keys=True)
        blocks.append([text_tokens(canonical), canonical, ttl])
    system = body.get("system")
    if isinstance(system, str):
        if system:
            add({"type": "text", "text": system}, "system")
    elif isinstance(system, list):
        for index, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise bad(f"system.{index}: system blocks must be text blocks")
            add(block, f"system.{index}")
    elif system is not None:
        raise bad("system: Input should be a string or a list of text blocks")

    last_user_text = ""
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise bad(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        role = message["role"]
        if isinstance(content, str):
            if not content:
                raise bad(f"messages.{index}.content: text content must be non-empty")
            add({"type": "text", "text": content}, f"messages.{index}.content")
            texts = [content]
        elif isinstance(content, list) and content:
            for j, block in enumerate(content):
                add(block, f"messages.{index}.content.{j}")
            texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        else:
            raise bad(f"messages.{index}.content: Input should be a non-empty string or list")
        if role == "user" and texts:
            last_user_text = texts[-1]
    if messages[0].get("role") != "user":
        raise bad("messages.0.role: the first message must use the user role")
    check_tool_turns(messages)

    if "cache_control" in body:
        ttl = check_cache_control(body["cache_control"], "body")
        if blocks:
            blocks[-1][2] = blocks[-1][2] or ttl
    breakpoints = [i for i, b in enumerate(blocks) if b[2]]
    if len(breakpoints) > MAX_BREAKPOINTS:
        raise bad(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(breakpoints)}.")
    seen_5m = False
    for i in breakpoints:
        if blocks[i][2] == "5m":
            seen_5m = True
        elif seen_5m:
            raise bad("a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block")
    return blocks, last_user_text


# -- tool use ---------------------------------------------------------------------
#
# tools: [{name, description, input_schema}] (client tools); tool_choice {"type": auto|any|
# tool|none, "name" with tool}. With tools and tool_choice any/tool, or auto when the last user
# turn holds no tool_result, the answer is one tool_use block ("toolu_…", the chosen tool:
# the named one, else the first whose name is in the prompt, else the first) with an input
# built from its schema, stop_reason tool_use; streamed as content_block_start with input {}
# and input_json_delta pieces. A tool_use must be answered by a tool_result (first in the
# next user turn), as the API requires.

TOOL_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_tools(body):
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise bad("tools: Input should be a valid list")
    names = []
    for index, tool in enumerate(tools or []):
        if not isinstance(tool, dict):
            raise bad(f"tools.{index}: Input should be an object")
        extra = set(tool) - {"name", "description", "input_schema", "cache_control", "type"}
        if extra:
            raise bad(f"tools.{index}.custom.{sorted(extra)[0]}: Extra inputs are not permitted")
        name = tool.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 64 or set(name) - TOOL_NAME_CHARS:
            raise bad(f"tools.{index}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise bad(f"tools.{index}.custom.input_schema.type: Input should be 'object'")
        if name in names:
            raise bad("tools: Tool names must be unique.")
        names.append(name)
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            raise bad("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise bad(f"tool_choice.tool.name: Tool '{choice.get('name')}' not found in provided tools")
        if choice["type"] != "none" and not names:
            raise bad("tool_choice may only be specified while providing tools.")
    return names


def blocks_of(message, kind):
    content = message.get("content")
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind] if isinstance(content, list) else []


def check_tool_turns(messages):
    for index, message in enumerate(messages):
        uses = blocks_of(message, "tool_use")
        results = blocks_of(message, "tool_result")
        if uses and message["role"] != "assistant":
            raise bad(f"messages.{index}: tool_use blocks may only appear in assistant messages")
        if results and message["role"] != "user":
            raise bad(f"messages.{index}: tool_result blocks may only appear in user messages")
        for use in uses:
            if not isinstance(use.get("id"), str) or not isinstance(use.get("name"), str) or not isinstance(use.get("input"), dict):
                raise bad(f"messages.{index}.content: a tool_use block needs an id, a name and an input object")
        if results:
            content = message["content"]
            if any(b.get("type") != "tool_result" for b in content[:len(results)]):
                raise bad(f"messages.{index}: tool_result blocks must come first in the user message content")
            previous = {u["id"] for u in blocks_of(messages[index - 1], "tool_use")} if index > 0 else set()
            for result in results:
                if result.get("tool_use_id") not in previous:
                    raise bad(f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: {result.get('tool_use_id')}. "
                              "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
        if uses and index + 1 < len(messages):
            answered = {r.get("tool_use_id") for r in blocks_of(messages[index + 1], "tool_result")}
            missing = [u["id"] for u in uses if u["id"] not in answered]
            if missing:
                raise bad(f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: {', '.join(missing)}. "
                          "Each `tool_use` block must have a corresponding `tool_result` block in the next message.")


def example(schema, name="value"):
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {k: example(v, k) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [example(schema.get("items") or {}, name)] * max(1, schema.get("minItems", 1))
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"fixture-{name}"


def tool_use(body, last_user_text):
    """The tool_use block this request is answered with, or None for a text answer."""
    tools = body.get("tools") or []
    choice = (body.get("tool_choice") or {}).get("type", "auto")
    if not tools or choice == "none":
        return None
    last = body["messages"][-1]
    if choice == "auto" and last.get("role") == "user" and blocks_of(last, "tool_result"):
        return None
    if choice == "tool":
        chosen = next(t for t in tools if t["name"] == body["tool_choice"]["name"])
    else:
        chosen = next((t for t in tools if t["name"] in last_user_text), tools[0])
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": chosen["name"],
            "input": example(chosen["input_schema"]) or {}}


def apply_cache(model, blocks):
    """(read tokens, {ttl: written tokens}) for this prompt; updates the cache."""
    breakpoints = [i for i, b in enumerate(blocks) if b[2]]
    if not breakpoints:
        return 0, {}
    hashes, totals = [], []
    digest = hashlib.sha256(model.encode())
    running = 0
    for tokens, canonical, _ in blocks:
        digest.update(canonical.encode())
        hashes.append(digest.copy().hexdigest())
        running += tokens
        totals.append(running)
    minimum = STATE.minimum(model)
    now = STATE.now()
    with STATE.lock:
        for h in [h for h, e in STATE.cache.items() if e["expires"] <= now]:
            del STATE.cache[h]
        hit = -1
        for b in breakpoints:
            for j in range(b, max(-1, b - LOOKBACK_BLOCKS), -1):
                if hashes[j] in STATE.cache:
                    hit = max(hit, j)
                    break
        read = totals[hit] if hit >= 0 else 0
        if hit >= 0:
            entry = STATE.cache[hashes[hit]]
            entry["expires"] = now + entry["ttl"]
        written = {}
        covered = read
        for b in breakpoints:
            if b <= hit or totals[b] < minimum:
                continue
            ttl = blocks[b][2]
            STATE.cache[hashes[b]] = {"expires": now + TTL_SECONDS[ttl], "ttl": TTL_SECONDS[ttl], "tokens": totals[b]}
            written[ttl] = written.get(ttl, 0) + totals[b] - covered
            covered = totals[b]
        if read:
            STATE.stats["cache_reads"] += 1
            STATE.stats["cache_read_input_tokens"] += read
        if written:
            STATE.stats["cache_writes"] += 1
            STATE.stats["cache_creation_input_tokens"] += sum(written.values())
    return read, written


def usage_of(blocks, read, written, output_tokens):
    total = sum(b[0] for b in blocks)
    creation = sum(written.values())
    return {
        "input_tokens": total - read - creation,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": written.get("5m", 0),
                           "ephemeral_1h_input_tokens": written.get("1h", 0)},
        "service_tier": "standard",
    }


def bill(model, usage):
    with STATE.lock:
        STATE.stats["billed"].append({"model": model, "usage": usage})


def answer(body, last_user_text):
    """(text, stop_reason, stop_sequence)."""
    model = body["model"]
    if "refuse" in model:
        return "", "refusal", None
    text = "echo: " + last_user_text
    for stop in body.get("stop_sequences") or []:
        if stop and stop in text:
            return text[: text.index(stop)], "stop_sequence", stop
    limit = body["max_tokens"] * 4
    if len(text.encode()) > limit:
        return text.encode()[:limit].decode(errors="ignore"), "max_tokens", None
    return text, "end_turn", None


def model_fault(model, key_sent):
    if "overloaded" in model:
        return APIFault(529, "overloaded_error", "Overloaded")
    if "rate-limited" in model:
        return APIFault(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit")
    if "server-error" in model:
        return APIFault(500, "api_error", "Internal server error")
    if "echo-key" in model:
        return APIFault(401, "authentication_error", f"invalid x-api-key: {key_sent}")
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "anthropic-fixture/1"

    def log_message(self, *args):
        pass

    # -- plumbing ---------------------------------------------------------

    def send_json(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_fault(self, fault):
        headers = {"retry-after": "2"} if fault.status == 429 else {}
        if fault.status == 413 and fault.kind == "html":
            data = b"<html><body><h1>413 Request Entity Too Large</h1></body></html>"
            self.send_response(413)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_json(fault.status, {"type": "error", "error": {"type": fault.kind, "message": fault.message},
                                      "request_id": f"req_{uuid.uuid4().hex[:24]}"}, headers)

    def read_body(self):
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_UPLOAD:
            self.rfile.read(length)
            raise APIFault(413, "request_too_large", f"Request exceeds the maximum allowed number of bytes ({MAX_UPLOAD})")
        return self.rfile.read(length)

    def json_body(self):
        raw = self.read_body()
        try:
            return json.loads(raw)
        except ValueError:
            raise bad("the request body is not valid JSON")

    def authenticate(self):
        if not self.headers.get("anthropic-version"):
            raise bad("anthropic-version: header is required")
        api_key = self.headers.get("x-api-key")
        bearer = self.headers.get("authorization", "")
        sent = api_key or (bearer[7:] if bearer.lower().startswith("bearer ") else None)
        with STATE.lock:
            STATE.stats["auth_headers"] = (STATE.stats["auth_headers"] + ["x-api-key" if api_key else "authorization" if sent else "none"])[-20:]
        if STATE.key is not None and sent != STATE.key:
            raise APIFault(401, "authentication_error", "invalid x-api-key")
        return sent

    # -- routes -----------------------------------------------------------

    def do_GET(self):
        path = urlparse(self.path).path
        try:
            if path == "/health":
                return self.send_json(200, {"status": "ok"})
            if path == "/_fixture/stats":
                with STATE.lock:
                    return self.send_json(200, dict(STATE.stats, cache_entries=len(STATE.cache)))
            self.authenticate()
            if path == "/v1/files":
                with STATE.lock:
                    data = [f["meta"] for f in STATE.files.values()]
                return self.send_json(200, {"data": data, "has_more": False,
                                            "first_id": data[0]["id"] if data else None,
                                            "last_id": data[-1]["id"] if data else None})
            if path.startswith("/v1/files/"):
                with STATE.lock:
                    stored = STATE.files.get(path.rsplit("/", 1)[1])
                if stored is None:
                    raise APIFault(404, "not_found_error", f"File not found: {path.rsplit('/', 1)[1]}")
                return self.send_json(200, stored["meta"])
            raise APIFault(404, "not_found_error", f"Not found: {path}")
        except APIFault as fault:
            self.send_fault(fault)

    def do_DELETE(self):
        path = urlparse(self.path).path
        try:
            self.authenticate()
            if path.startswith("/v1/files/"):
                file_id = path.rsplit("/", 1)[1]
                with STATE.lock:
                    stored = STATE.files.pop(file_id, None)
                if stored is None:
                    raise APIFault(404, "not_found_error", f"File not found: {file_id}")
                return self.send_json(200, {"id": file_id, "type": "file_deleted"})
            raise APIFault(404, "not_found_error", f"Not found: {path}")
        except APIFault as fault:
            self.send_fault(fault)

    def do_POST(self):
        url = urlparse(self.path)
        try:
            if url.path == "/_fixture/advance":
                seconds = float(parse_qs(url.query).get("seconds", ["0"])[0])
                with STATE.lock:
                    STATE.offset += seconds
                return self.send_json(200, {"offset": STATE.offset})
            if url.path == "/_fixture/reset":
                STATE.reset()
                return self.send_json(200, {"reset": True})
            if url.path == "/v1/messages":
                return self.messages()
            if url.path == "/v1/messages/count_tokens":
                return self.count_tokens()
            if url.path == "/v1/files":
                return self.upload()
            self.read_body()
            raise APIFault(404, "not_found_error", f"Not found: {url.path}")
        except APIFault as fault:
            self.send_fault(fault)

    def messages(self):
        key_sent = self.authenticate()
        body = self.json_body()
        model = body.get("model", "") if isinstance(body, dict) else ""
        if "too-large" in model:
            raise APIFault(413, "html", "")
        fault = model_fault(model, key_sent)
        if fault:
            raise fault
        blocks, last_user_text = flatten(body, for_count=False)
        read, written = apply_cache(model, blocks)
        text, stop_reason, stop_sequence = answer(body, last_user_text)
        use = tool_use(body, last_user_text)
        last = body["messages"][-1]
        if use:
            text, stop_reason, stop_sequence = "", "tool_use", None
        elif last.get("role") == "user" and blocks_of(last, "tool_result"):
            result = blocks_of(last, "tool_result")[-1].get("content")
            text = "echo: " + (result if isinstance(result, str) else json.dumps(result))
        usage = usage_of(blocks, read, written, text_tokens(json.dumps(use)) if use else text_tokens(text))
        with STATE.lock:
            STATE.stats["messages"] += 1
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            return self.stream(body, message_id, text, stop_reason, stop_sequence, usage, use)
        bill(model, usage)
        self.send_json(200, {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [use] if use else [{"type": "text", "text": text}] if text else [],
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage,
        })

    def stream(self, body, message_id, text, stop_reason, stop_sequence, usage, use=None):
        model = body["model"]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

        def event(name, data):
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        start_usage = dict(usage, output_tokens=1)
        event("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        if "stream-extra" in model:
            event("ping", {"type": "ping"})
            event("fixture_future_event", {"type": "fixture_future_event", "note": "clients must ignore unknown events"})
        if use:
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": dict(use, input={})})
            arguments = json.dumps(use["input"])
            for at in range(0, len(arguments), 7):
                event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "input_json_delta", "partial_json": arguments[at:at + 7]}})
            event("content_block_stop", {"type": "content_block_stop", "index": 0})
            event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                    "usage": usage})
            event("message_stop", {"type": "message_stop"})
            bill(model, usage)
            return
        event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        event("ping", {"type": "ping"})
        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []
        for i, piece in enumerate(pieces):
            event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": piece}})
            if i == 0 and "stream-error" in model:
                event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                bill(model, start_usage)
                return
            if i == 0 and "stream-truncate" in model:
                bill(model, start_usage)
                return
        event("content_block_stop", {"type": "content_block_stop", "index": 0})
        event("message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                "usage": usage})
        event("message_stop", {"type": "message_stop"})
        bill(model, usage)

    def count_tokens(self):
        self.authenticate()
        body = self.json_body()
        blocks, _ = flatten(body, for_count=True)
        with STATE.lock:
            STATE.stats["count_tokens"] += 1
        self.send_json(200, {"input_tokens": sum(b[0] for b in blocks)})

    def upload(self):
        self.authenticate()
        content_type = self.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            self.read_body()
            raise bad("the upload must be multipart/form-data with a 'file' part")
        raw = self.read_body()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"content-type: {content_type}\r\n\r\n".encode() + raw)
        part = None
        for candidate in message.iter_parts() if message.is_multipart() else []:
            if candidate.get_param("name", header="content-disposition") == "file":
                part = candidate
        if part is None:
            raise bad("file: Field required")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename() or "unnamed"
        mime = part.get_content_type() or "application/octet-stream"
        file_id = f"file_{uuid.uuid4().hex[:24]}"
        meta = {"id": file_id, "type": "file", "filename": filename.rsplit("/", 1)[-1], "mime_type": mime,
                "size_bytes": len(data), "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                "downloadable": False}
        with STATE.lock:
            STATE.files[file_id] = {"meta": meta, "data": data, "mime_type": mime}
            STATE.stats["uploads"] += 1
        self.send_json(200, meta)


def main(argv):
    global STATE
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    port = int(argv[1])
    key, minimum = None, None
    rest = argv[2:]
    while rest:
        flag = rest.pop(0)
        if flag == "--key":
            key = rest.pop(0)
        elif flag == "--min-cache-tokens":
            minimum = int(rest.pop(0))
        else:
            print(f"unknown option {flag}", file=sys.stderr)
            return 2
    STATE = State(key, minimum)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
