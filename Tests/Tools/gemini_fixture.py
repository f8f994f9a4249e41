#!/usr/bin/env python3
"""A Gemini API fixture server for the tests (standard library only).

No public mock serves the Files API, cachedContents or countTokens, so this one does,
following the real protocol (v1beta, camelCase JSON, google.rpc.Status errors):

  POST   /upload/v1beta/files                 resumable start (X-Goog-Upload-Protocol: resumable,
                                              X-Goog-Upload-Command: start) -> X-Goog-Upload-URL
  POST   <upload URL>                         X-Goog-Upload-Command: upload | upload, finalize with
                                              X-Goog-Upload-Offset; every answer has X-Goog-Upload-Status
  GET    /v1beta/files/{id}, GET /v1beta/files, DELETE /v1beta/files/{id}
  POST   /v1beta/cachedContents               minimum size enforced (400 "Cached content is too small")
  GET    /v1beta/cachedContents[/{id}], PATCH /v1beta/cachedContents/{id}, DELETE …
  POST   /v1beta/models/{model}:countTokens   {contents} or {generateContentRequest}
  POST   /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse
  POST   /v1beta/models/{model}:batchGenerateContent   inline requests or an uploaded JSONL file
  GET    /v1beta/batches[/{id}], POST /v1beta/batches/{id}:cancel, DELETE /v1beta/batches/{id}
  GET    /v1beta/files/{id}:download?alt=media      a batch's responses file
  GET    /health
(every /v1beta/ path is served under /v1/ too)

Batches: the operation is BATCH_STATE_PENDING when created, RUNNING on the next batches.get
and SUCCEEDED on the one after (no clock involved); a display name containing "never-ends"
stays RUNNING. Answers are generateContent's; a request whose last text contains
"batch-fail" gets a per-request error instead. Inline input gives inlinedResponses, file input
a responsesFile of {"key","response"|"error"} lines. Zero counts and empty lists are omitted,
an unfinished operation has no "done", as the real API does.

Files are PROCESSING after the upload and ACTIVE on the next files.get; a display name
containing "fails-processing" ends FAILED, one containing "never-active" stays PROCESSING.
A missing or unknown cache or file is 403 PERMISSION_DENIED, as in the real API.

Authentication: x-goog-api-key (or ?key=). A missing key is 403; a key starting with
"invalid" is 400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID. Upload URLs
authorise the bytes by themselves.

Test control (never under /v1beta):
  GET  /_fixture/stats?key=K     what the requests made with key K did (counts, request log)
  POST /_fixture/fail            {"key","path_contains","status","times","retryDelay"?,"message"?,
                                  "quotaId"?}: the next matching requests of that key fail

Token counts: a text is ceil(utf8 bytes / 4) tokens, a file or inline part 258.
Billing: stats(key)["billed"] lists what the fixture bills, as Gemini does: every generate
answer {"request": "generate", "model", "usage": its usageMetadata}, every cache created
{"request": "cache_creation", "model", "tokens", "ttl_seconds"} (the tokens once at the input
price, then storage for the TTL), every batch answer {"request": "batch_generate", "model",
"usage"} (at batch prices). The cost tests price these and compare with the results.
Usage: gemini_fixture.py PORT [--min-cache-tokens N]
"""
import base64
import datetime
import hashlib
import json
import math
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
FILES = {}  # id -> dict (the File resource plus private fields)
SESSIONS = {}  # upload id -> {"key", "declared", "mime", "display", "data"}
CACHES = {}  # id -> dict (resource plus private fields)
BATCHES = {}  # id -> dict (private fields: _model, _display, _state, _items, _file_input, _created)
STATS = {}  # key -> counters and log
FAILURES = []  # scripted failures
MIN_CACHE_TOKENS = 1024
FILE_TOKENS = 258


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text):
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?Z", text or "")
    if not match:
        return None
    moment = datetime.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    if match.group(2):
        moment += datetime.timedelta(seconds=float("0" + match.group(2)))
    return moment


def parse_duration(text):
    match = re.fullmatch(r"(\d+(?:\.\d{1,9})?)s", text or "")
    return float(match.group(1)) if match else None


def stats(key):
    return STATS.setdefault(key or "", {
        "uploads_started": 0, "uploads_finalized": 0, "upload_chunks": 0, "file_gets": 0,
        "caches_created": 0, "cache_creations_refused": 0, "cache_gets": 0, "cache_lists": 0, "caches_deleted": 0,
        "count_tokens": 0, "generate": 0, "generate_with_cache": 0, "stream": 0, "key_in_url": 0, "batches_created": 0,
        "requests": [], "billed": [],
    })


class Failure(Exception):
    def __init__(self, code, status, message, details=None):
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, details or []


def tokens_of_part(part):
    if not isinstance(part, dict):
        raise Failure(400, "INVALID_ARGUMENT", "Invalid JSON payload received. A part must be an object.")
    if "text" in part:
        return math.ceil(len(part["text"].encode()) / 4)
    if "inlineData" in part or "inline_data" in part:
        return FILE_TOKENS
    if "fileData" in part or "file_data" in part:
        data = part.get("fileData") or part.get("file_data")
        uri = data.get("fileUri") or data.get("file_uri")
        found = next((f for f in FILES.values() if f["uri"] == uri), None)
        if found is None:
            raise Failure(403, "PERMISSION_DENIED", f"You do not have permission to access the File {uri} or it may not exist.")
        if found["state"] != "ACTIVE":
            raise Failure(400, "FAILED_PRECONDITION", f"The File {found['name']} is not in an ACTIVE state and usage is not allowed.")
        return FILE_TOKENS
    if "functionCall" in part or "functionResponse" in part or "function_call" in part or "function_response" in part:
        return math.ceil(len(json.dumps(part, sort_keys=True).encode()) / 4)
    raise Failure(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown part: {sorted(part)}")


def tokens_of_contents(contents):
    if not isinstance(contents, list):
        raise Failure(400, "INVALID_ARGUMENT", "contents must be a list")
    total = 0
    for content in contents:
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise Failure(400, "INVALID_ARGUMENT", f"Please use a valid role: user, model. (got {role!r})")
        parts = content.get("parts")
        if not parts:
            raise Failure(400, "INVALID_ARGUMENT", "contents.parts must not be empty.")
        total += sum(tokens_of_part(p) for p in parts)
    check_function_turns(contents)
    return total


# -- function calling ---------------------------------------------------------------
#
# tools: [{"functionDeclarations": [{name, description, parameters | parametersJsonSchema}]}];
# toolConfig.functionCallingConfig {mode AUTO|ANY|NONE|VALIDATED, allowedFunctionNames (ANY
# and VALIDATED only)}. With tools and mode ANY, or AUTO when the last turn is not function
# responses, the answer is one functionCall part (no id, as the Gemini API sends) of the
# allowed (or first, or named in the prompt) function, its args built from the schema;
# otherwise text. A model turn's functionCall parts must be answered by as many
# functionResponse parts in the next user turn, as the API requires.

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-")


def function_parts(content, key):
    return [p[key] for p in content.get("parts") or [] if isinstance(p, dict) and key in p]


def check_function_turns(contents):
    for i, content in enumerate(contents):
        role = content.get("role", "user")
        calls = function_parts(content, "functionCall")
        responses = function_parts(content, "functionResponse")
        if calls and role != "model":
            raise Failure(400, "INVALID_ARGUMENT", "functionCall parts belong to a model turn.")
        if responses and role != "user":
            raise Failure(400, "INVALID_ARGUMENT", "functionResponse parts belong to a user turn.")
        for call in calls:
            if not isinstance(call.get("name"), str) or not isinstance(call.get("args", {}), dict):
                raise Failure(400, "INVALID_ARGUMENT", "* functionCall: name must be a string and args an object")
        for response in responses:
            if not isinstance(response.get("name"), str) or not isinstance(response.get("response"), dict):
                raise Failure(400, "INVALID_ARGUMENT", "* functionResponse.response: must be an object (a google.protobuf.Struct)")
        if calls:
            following = function_parts(contents[i + 1], "functionResponse") if i + 1 < len(contents) else []
            if i + 1 < len(contents) and len(following) != len(calls):
                raise Failure(400, "INVALID_ARGUMENT", "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.")
            if sorted(r["name"] for r in following) != sorted(c["name"] for c in calls) and i + 1 < len(contents):
                raise Failure(400, "INVALID_ARGUMENT", "Please ensure that function response turn comes immediately after a function call turn.")
        if responses and (i == 0 or not function_parts(contents[i - 1], "functionCall")):
            raise Failure(400, "INVALID_ARGUMENT", "Please ensure that function response turn comes immediately after a function call turn.")


# Thought signatures (Gemini 3): a model whose name starts with "gemini-3" puts a
# thoughtSignature (base64, opaque) beside its functionCall, on the part of the call, as the
# API does. When the conversation goes on, the first functionCall part of each model turn of
# the current turn (the contents after the last user text) must carry back a signature this
# fixture issued, else 400 INVALID_ARGUMENT "Function call is missing a thought_signature …".
SIGNATURES = set()  # the bytes of the signatures issued (under LOCK)


def signs(model):
    return model.removeprefix("models/").startswith("gemini-3")


def new_signature(call):
    raw = b"fixture-thought:" + hashlib.sha256(json.dumps(call, sort_keys=True).encode() + uuid.uuid4().bytes).digest()
    SIGNATURES.add(raw)
    return base64.b64encode(raw).decode()


def signature_bytes(text):
    """The bytes of a signature sent back: base64 in either alphabet (google-genai re-encodes the
    bytes it read URL-safe), padding optional, as the API takes it; None when it is not base64."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return None


def check_signatures(model, contents):
    if not signs(model):
        return
    start = 0
    for i, content in enumerate(contents):
        if content.get("role", "user") == "user" and any(isinstance(p, dict) and "text" in p for p in content.get("parts") or []):
            start = i + 1
    for i in range(start, len(contents)):
        content = contents[i]
        if content.get("role") != "model":
            continue
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict) and "functionCall" in p]
        if not parts:
            continue
        signature = parts[0].get("thoughtSignature", parts[0].get("thought_signature"))
        if signature is None:
            name = parts[0]["functionCall"].get("name")
            raise Failure(400, "INVALID_ARGUMENT", f"Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
        if signature_bytes(signature) not in SIGNATURES:
            raise Failure(400, "INVALID_ARGUMENT", "Corrupted thought signature.")


def declarations(body):
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise Failure(400, "INVALID_ARGUMENT", "Invalid JSON payload received. tools must be a list.")
    found = []
    for tool in tools:
        for d in tool.get("functionDeclarations") or tool.get("function_declarations") or []:
            name = d.get("name")
            if not isinstance(name, str) or not name or len(name) > 64 or not (name[0].isalpha() or name[0] == "_") or set(name) - NAME_CHARS:
                raise Failure(400, "INVALID_ARGUMENT", f"* GenerateContentRequest.tools[0].function_declarations: Invalid function name {name!r}. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a maximum length of 64.")
            schema = d.get("parametersJsonSchema", d.get("parameters_json_schema"))
            if schema is not None and d.get("parameters") is not None:
                raise Failure(400, "INVALID_ARGUMENT", "parameters and parameters_json_schema are mutually exclusive.")
            if schema is not None and (not isinstance(schema, dict) or schema.get("type") != "object"):
                raise Failure(400, "INVALID_ARGUMENT", "parameters_json_schema must describe an object.")
            found.append({"name": name, "schema": schema or {}})
    return found


def calling_config(body, names):
    config = ((body.get("toolConfig") or body.get("tool_config") or {}).get("functionCallingConfig")
              or (body.get("toolConfig") or body.get("tool_config") or {}).get("function_calling_config") or {})
    mode = config.get("mode", "AUTO")
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        raise Failure(400, "INVALID_ARGUMENT", f"Invalid value at 'tool_config.function_calling_config.mode' ({mode!r})")
    allowed = config.get("allowedFunctionNames") or config.get("allowed_function_names") or []
    if allowed and mode not in ("ANY", "VALIDATED"):
        raise Failure(400, "INVALID_ARGUMENT", "allowed_function_names should only be set when the mode is ANY or VALIDATED.")
    for name in allowed:
        if name not in names:
            raise Failure(400, "INVALID_ARGUMENT", f"allowed_function_names contains {name!r}, which is not a declared function.")
    return mode, allowed


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


def function_call(body, contents):
    """The functionCall this request is answered with, or None for a text answer."""
    found = declarations(body)
    mode, allowed = calling_config(body, {d["name"] for d in found})
    if not found or mode == "NONE":
        return None
    answered = bool(contents) and bool(function_parts(contents[-1], "functionResponse"))
    if mode in ("AUTO", "MODE_UNSPECIFIED", "VALIDATED") and answered:
        return None
    prompt = last_text(contents)
    pool = [d for d in found if not allowed or d["name"] in allowed]
    chosen = next((d for d in pool if d["name"] in prompt), pool[0])
    return {"name": chosen["name"], "args": example(chosen["schema"]) or {}}


def system_of(body):
    return body.get("systemInstruction") or body.get("system_instruction")


def last_text(contents):
    for content in reversed(contents or []):
        for part in reversed(content.get("parts") or []):
            if isinstance(part, dict) and "text" in part:
                return part["text"]
    return ""


def live_cache(name, model=None):
    cache = CACHES.get(name)
    if cache is None or parse_stamp(cache["expireTime"]) <= now():
        raise Failure(403, "PERMISSION_DENIED", f"CachedContent not found (or permission denied): {name}")
    if model is not None and cache["model"] != model:
        raise Failure(400, "INVALID_ARGUMENT", f"Model {model} does not match the model of the cached content ({cache['model']}).")
    return cache


def public(resource):
    return {k: v for k, v in resource.items() if not k.startswith("_")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # -- plumbing -------------------------------------------------------------

    def body_bytes(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def json_body(self, raw):
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise Failure(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(value, dict):
            raise Failure(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
        return value

    def send(self, code, payload=None, headers=None, raw=None):
        data = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(code)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, failure):
        error = {"code": failure.code, "message": failure.message, "status": failure.status}
        if failure.details:
            error["details"] = failure.details
        self.send(failure.code, {"error": error})

    def origin(self):
        return f"http://{self.headers.get('Host')}"

    def api_key(self, query):
        key = self.headers.get("x-goog-api-key")
        if key is None and "key" in query:
            key = query["key"][0]
            with LOCK:
                stats(key)["key_in_url"] += 1
        if not key:
            raise Failure(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
        if key.startswith("invalid"):
            raise Failure(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                 "message": "API key not valid. Please pass a valid API key."},
            ])
        return key

    def scripted_failure(self, key, path):
        with LOCK:
            for entry in FAILURES:
                if entry["key"] == key and entry["path_contains"] in path and entry["times"] > 0:
                    entry["times"] -= 1
                    break
            else:
                return
        details = []
        if entry.get("quotaId"):
            details.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                            "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                                            "quotaId": entry["quotaId"]}]})
            details.append({"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]})
        if entry.get("retryDelay"):
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": entry["retryDelay"]})
        status = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
                  404: "NOT_FOUND", 403: "PERMISSION_DENIED", 400: "INVALID_ARGUMENT"}.get(entry["status"], "UNKNOWN")
        raise Failure(entry["status"], status, entry.get("message") or f"scripted {status}", details)

    def dispatch(self, method):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        path = url.path
        raw = self.body_bytes()
        try:
            if path == "/health":
                return self.send(200, {"status": "ok"})
            if path.startswith("/_fixture/"):
                return self.control(method, path, query, raw)
            # v1 and v1beta serve the same resources here (the adapter speaks v1beta; SDKs
            # default to either, depending on their version).
            path = re.sub(r"^(/upload)?/v1/", lambda m: (m.group(1) or "") + "/v1beta/", path)
            if path == "/upload/v1beta/files" and "upload_id" in query:
                return self.upload_bytes(query["upload_id"][0], raw)
            key = self.api_key(query)
            with LOCK:
                stats(key)["requests"].append(f"{method} {path}")
            self.scripted_failure(key, path)
            if path == "/upload/v1beta/files" and method == "POST":
                return self.upload_start(key, raw)
            if not path.startswith("/v1beta/"):
                raise Failure(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")
            route = path[len("/v1beta/"):]
            return self.api(method, route, query, key, raw)
        except Failure as failure:
            self.fail(failure)

    do_GET = lambda self: self.dispatch("GET")  # noqa: E731
    do_POST = lambda self: self.dispatch("POST")  # noqa: E731
    do_PATCH = lambda self: self.dispatch("PATCH")  # noqa: E731
    do_DELETE = lambda self: self.dispatch("DELETE")  # noqa: E731

    def control(self, method, path, query, raw):
        if path == "/_fixture/stats":
            key = query.get("key", [""])[0]
            with LOCK:
                return self.send(200, json.loads(json.dumps(stats(key))))
        if path == "/_fixture/fail" and method == "POST":
            entry = self.json_body(raw)
            entry.setdefault("times", 1)
            entry.setdefault("path_contains", "")
            with LOCK:
                FAILURES.append(entry)
            return self.send(200, {"queued": True})
        raise Failure(404, "NOT_FOUND", path)

    # -- Files API ------------------------------------------------------------

    def upload_start(self, key, raw):
        if self.headers.get("X-Goog-Upload-Protocol") != "resumable" or self.headers.get("X-Goog-Upload-Command") != "start":
            raise Failure(400, "INVALID_ARGUMENT", "Only the resumable upload protocol is served here (X-Goog-Upload-Protocol: resumable, X-Goog-Upload-Command: start).")
        declared = self.headers.get("X-Goog-Upload-Header-Content-Length")
        if declared is None or not declared.isdigit():
            raise Failure(400, "INVALID_ARGUMENT", "X-Goog-Upload-Header-Content-Length is required.")
        body = self.json_body(raw)
        file = body.get("file") or {}
        mime = self.headers.get("X-Goog-Upload-Header-Content-Type") or file.get("mimeType") or file.get("mime_type")
        if not mime:
            raise Failure(400, "INVALID_ARGUMENT", "The file's MIME type is required (X-Goog-Upload-Header-Content-Type).")
        upload_id = uuid.uuid4().hex
        display = file.get("displayName") or file.get("display_name") or self.headers.get("X-Goog-Upload-File-Name") or ""
        with LOCK:
            SESSIONS[upload_id] = {"key": key, "declared": int(declared), "mime": mime, "display": display,
                                   "data": bytearray(), "name": file.get("name")}
            stats(key)["uploads_started"] += 1
        location = f"{self.origin()}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
        self.send(200, raw=b"", headers={"X-Goog-Upload-URL": location, "X-Goog-Upload-Status": "active",
                                          "X-Goog-Upload-Chunk-Granularity": "8388608"})

    def upload_bytes(self, upload_id, raw):
        with LOCK:
            session = SESSIONS.get(upload_id)
        if session is None:
            raise Failure(404, "NOT_FOUND", "Unknown upload session.")
        if self.headers.get("x-goog-api-key"):
            session["saw_key"] = True
        command = [c.strip() for c in (self.headers.get("X-Goog-Upload-Command") or "").split(",")]
        offset = self.headers.get("X-Goog-Upload-Offset")
        if "upload" not in command or offset is None or not offset.isdigit():
            raise Failure(400, "INVALID_ARGUMENT", "X-Goog-Upload-Command: upload[, finalize] and X-Goog-Upload-Offset are required.")
        with LOCK:
            if int(offset) != len(session["data"]):
                self.send(400, {"error": {"code": 400, "message": f"Offset {offset} does not match {len(session['data'])} bytes received.",
                                          "status": "INVALID_ARGUMENT"}}, headers={"X-Goog-Upload-Status": "active"})
                return
            session["data"].extend(raw)
            stats(session["key"])["upload_chunks"] += 1
        if "finalize" not in command:
            return self.send(200, raw=b"", headers={"X-Goog-Upload-Status": "active"})
        if len(session["data"]) != session["declared"]:
            raise Failure(400, "INVALID_ARGUMENT", f"Received {len(session['data'])} bytes, but {session['declared']} were declared.")
        file_id = (session.get("name") or "").removeprefix("files/") or uuid.uuid4().hex[:12]
        created = now()
        display = session["display"]
        resource = {
            "name": f"files/{file_id}",
            "displayName": display,
            "mimeType": session["mime"],
            "sizeBytes": str(len(session["data"])),
            "createTime": stamp(created),
            "updateTime": stamp(created),
            "expirationTime": stamp(created + datetime.timedelta(hours=48)),
            "sha256Hash": base64.b64encode(hashlib.sha256(bytes(session["data"])).hexdigest().encode()).decode(),
            "uri": f"{self.origin()}/v1beta/files/{file_id}",
            "state": "PROCESSING",
            "source": "UPLOADED",
            "_key": session["key"],
            "_sha256": hashlib.sha256(bytes(session["data"])).hexdigest(),
            "_data": bytes(session["data"]) if session["mime"] in ("application/jsonl", "application/json", "text/plain") else None,
            "_saw_key": session.get("saw_key", False),
        }
        with LOCK:
            FILES[file_id] = resource
            del SESSIONS[upload_id]
            stats(session["key"])["uploads_finalized"] += 1
        self.send(200, {"file": public(resource)}, headers={"X-Goog-Upload-Status": "final"})

    def get_file(self, key, file_id):
        with LOCK:
            resource = FILES.get(file_id)
            if resource is None:
                raise Failure(403, "PERMISSION_DENIED", f"You do not have permission to access the File {file_id} or it may not exist.")
            stats(key)["file_gets"] += 1
            if resource["state"] == "PROCESSING" and "never-active" not in resource["displayName"]:
                if "fails-processing" in resource["displayName"]:
                    resource["state"] = "FAILED"
                    resource["error"] = {"code": 400, "message": "The file could not be processed: unsupported content."}
                else:
                    resource["state"] = "ACTIVE"
                resource["updateTime"] = stamp(now())
            view = public(resource)
            # Private facts for the tests, under a field the real API does not have.
            view["fixture"] = {"sha256": resource["_sha256"], "uploadSawKey": resource["_saw_key"]}
            return view

    # -- the API --------------------------------------------------------------

    def api(self, method, route, query, key, raw):
        body = self.json_body(raw) if method in ("POST", "PATCH") else {}
        if route == "files" and method == "GET":
            with LOCK:
                return self.send(200, {"files": [public(f) for f in FILES.values()]})
        if route.startswith("files/") and route.endswith(":download") and method == "GET":
            return self.download(route[len("files/"):-len(":download")], query)
        if route == "batches" and method == "GET":
            return self.list_batches(query)
        if route.startswith("batches/"):
            return self.batch_route(method, route[len("batches/"):])
        if route.startswith("files/"):
            file_id = route[len("files/"):]
            if method == "GET":
                return self.send(200, self.get_file(key, file_id))
            if method == "DELETE":
                with LOCK:
                    FILES.pop(file_id, None)
                return self.send(200, {})
        if route == "cachedContents" and method == "POST":
            return self.create_cache(key, body)
        if route == "cachedContents" and method == "GET":
            with LOCK:
                stats(key)["cache_lists"] += 1
                live = [public(c) for c in CACHES.values() if parse_stamp(c["expireTime"]) > now()]
            size = int(query.get("pageSize", ["50"])[0])
            start = int(query.get("pageToken", ["0"])[0] or 0)
            page = {"cachedContents": live[start:start + size]}
            if start + size < len(live):
                page["nextPageToken"] = str(start + size)
            return self.send(200, page)
        if route.startswith("cachedContents/"):
            name = route
            with LOCK:
                cache = live_cache(name)
                if method == "GET":
                    stats(key)["cache_gets"] += 1
                    return self.send(200, public(cache))
                if method == "DELETE":
                    del CACHES[name]
                    stats(key)["caches_deleted"] += 1
                    return self.send(200, {})
                if method == "PATCH":
                    self.set_expiry(cache, body)
                    cache["updateTime"] = stamp(now())
                    return self.send(200, public(cache))
        match = re.fullmatch(r"models/([^/:]+):(generateContent|streamGenerateContent|countTokens|batchGenerateContent)", route)
        if match and method == "POST":
            model, verb = f"models/{match.group(1)}", match.group(2)
            if verb == "batchGenerateContent":
                return self.create_batch(key, model, body)
            if verb == "countTokens":
                return self.count_tokens(key, model, body)
            return self.generate(key, model, body, stream=verb == "streamGenerateContent", sse=query.get("alt") == ["sse"])
        raise Failure(404, "NOT_FOUND", f"Method not found: {method} /v1beta/{route}")

    def set_expiry(self, cache, body):
        if "ttl" in body:
            seconds = parse_duration(body["ttl"])
            if seconds is None:
                raise Failure(400, "INVALID_ARGUMENT", f"Invalid value at 'cached_content.ttl' ({body['ttl']!r}): expected a duration such as \"3600s\".")
            cache["expireTime"] = stamp(now() + datetime.timedelta(seconds=seconds))
        elif "expireTime" in body or "expire_time" in body:
            moment = parse_stamp(body.get("expireTime") or body.get("expire_time"))
            if moment is None:
                raise Failure(400, "INVALID_ARGUMENT", "Invalid value at 'cached_content.expire_time'.")
            cache["expireTime"] = stamp(moment)
        else:
            cache["expireTime"] = stamp(now() + datetime.timedelta(hours=1))

    def create_cache(self, key, body):
        model = body.get("model") or ""
        if not model.startswith("models/"):
            raise Failure(400, "INVALID_ARGUMENT", "cachedContent.model must be a model name such as models/gemini-2.5-flash.")
        with LOCK:
            total = tokens_of_contents(body.get("contents") or [])
            system = system_of(body)
            if system:
                total += sum(tokens_of_part(p) for p in system.get("parts") or [])
            if total < MIN_CACHE_TOKENS:
                stats(key)["cache_creations_refused"] += 1
                raise Failure(400, "INVALID_ARGUMENT", f"Cached content is too small. total_token_count={total}, min_total_token_count={MIN_CACHE_TOKENS}")
            created = now()
            name = f"cachedContents/{uuid.uuid4().hex[:16]}"
            cache = {
                "name": name, "model": model, "displayName": body.get("displayName") or body.get("display_name") or "",
                "createTime": stamp(created), "updateTime": stamp(created),
                "usageMetadata": {"totalTokenCount": total},
                "_tokens": total, "_system": system, "_contents": body.get("contents") or [],
            }
            self.set_expiry(cache, body)
            CACHES[name] = cache
            stats(key)["caches_created"] += 1
            ttl = round((parse_stamp(cache["expireTime"]) - created).total_seconds())
            stats(key)["billed"].append({"request": "cache_creation", "model": model.removeprefix("models/"), "tokens": total, "ttl_seconds": ttl})
            return self.send(200, public(cache))

    def prompt_tokens(self, model, request):
        """(prompt tokens including the cache, cached tokens, the cache)"""
        contents = request.get("contents") or []
        cached, cache = 0, None
        name = request.get("cachedContent") or request.get("cached_content")
        if name:
            cache = live_cache(name, model)
            for forbidden in ("systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config"):
                if forbidden in request:
                    raise Failure(400, "INVALID_ARGUMENT", "CachedContent can not be used with GenerateContent request setting system_instruction, tools or tool_config.\n\nProposed fix: move those values to CachedContent from GenerateContent request.")
            cached = cache["_tokens"]
        total = tokens_of_contents(contents)
        system = system_of(request)
        if system:
            total += sum(tokens_of_part(p) for p in system.get("parts") or [])
        return total + cached, cached, cache

    def count_tokens(self, key, model, body):
        request = body.get("generateContentRequest") or body.get("generate_content_request") or {"contents": body.get("contents")}
        if request.get("model") not in (None, model):
            raise Failure(400, "INVALID_ARGUMENT", "generateContentRequest.model must match the model in the URL.")
        with LOCK:
            total, cached, _ = self.prompt_tokens(model, request)
            stats(key)["count_tokens"] += 1
        answer = {"totalTokens": total}
        if cached:
            answer["cachedContentTokenCount"] = cached
        return self.send(200, answer)

    def answer(self, model, body):
        """The generateContent response for body (call with LOCK held)."""
        contents = body.get("contents")
        if not contents:
            raise Failure(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
        config = body.get("generationConfig") or {}
        prompt, cached, cache = self.prompt_tokens(model, body)
        files = sum(1 for c in contents for p in c.get("parts") or [] if "fileData" in p or "file_data" in p)
        text = f"fixture answer to: {last_text(contents)}"
        check_signatures(model, contents)
        call = function_call(body, contents)
        if not call and contents and function_parts(contents[-1], "functionResponse"):
            text = "fixture answer to function results: " + json.dumps([r["response"] for r in function_parts(contents[-1], "functionResponse")], sort_keys=True)
        if cache:
            text += f" [with {cache['name']}]"
        if files:
            text += f" [files: {files}]"
        if config.get("responseMimeType") == "application/json":
            text = json.dumps({"answer": text})
        parts = [{"functionCall": call}] if call else [{"text": text}]
        candidates = math.ceil(len(json.dumps(parts).encode()) / 4) if call else math.ceil(len(text.encode()) / 4)
        if call and signs(model):
            parts[0]["thoughtSignature"] = new_signature(call)
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": candidates, "totalTokenCount": prompt + candidates}
        if cached:
            usage["cachedContentTokenCount"] = cached
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
        response = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": usage, "modelVersion": model.removeprefix("models/"), "responseId": uuid.uuid4().hex[:12]}
        return response, cache

    def generate(self, key, model, body, stream, sse):
        with LOCK:
            response, cache = self.answer(model, body)
            counters = stats(key)
            counters["stream" if stream else "generate"] += 1
            counters["billed"].append({"request": "generate", "model": model.removeprefix("models/"), "usage": response["usageMetadata"]})
            if cache:
                counters["generate_with_cache"] += 1
        prompt = response["usageMetadata"]["promptTokenCount"]
        if not stream:
            return self.send(200, response)
        if "functionCall" in response["candidates"][0]["content"]["parts"][0]:
            # A function call streams whole: one chunk with the call, one with the finish reason.
            first = {"candidates": [{"content": dict(response["candidates"][0]["content"]), "index": 0}],
                     "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}, "modelVersion": response["modelVersion"]}
            last = dict(response)
            last["candidates"] = [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}]
            chunks = (first, last)
            if sse:
                return self.send(200, raw=b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks), headers={"Content-Type": "text/event-stream"})
            return self.send(200, list(chunks))
        text = response["candidates"][0]["content"]["parts"][0]["text"]
        half = len(text) // 2
        first = {"candidates": [{"content": {"role": "model", "parts": [{"text": text[:half]}]}, "index": 0}],
                 "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}, "modelVersion": response["modelVersion"]}
        second = dict(response)
        second["candidates"] = [{"content": {"role": "model", "parts": [{"text": text[half:]}]}, "finishReason": "STOP", "index": 0}]
        if sse:
            data = b"".join(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n" for chunk in (first, second))
            return self.send(200, raw=data, headers={"Content-Type": "text/event-stream"})
        return self.send(200, [first, second])

    # -- batches ----------------------------------------------------------------

    def create_batch(self, key, model, body):
        batch = body.get("batch")
        if not isinstance(batch, dict):
            raise Failure(400, "INVALID_ARGUMENT", "* BatchGenerateContentRequest.batch: batch is required")
        display = batch.get("displayName") or batch.get("display_name") or ""
        config = batch.get("inputConfig") or batch.get("input_config") or {}
        items = []  # (key, request)
        file_input = False
        if "requests" in config:
            requests = (config.get("requests") or {}).get("requests")
            if not isinstance(requests, list) or not requests:
                raise Failure(400, "INVALID_ARGUMENT", "* inputConfig.requests.requests: at least one request is required")
            for n, entry in enumerate(requests):
                if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
                    raise Failure(400, "INVALID_ARGUMENT", f"* inputConfig.requests.requests[{n}].request is required")
                items.append(((entry.get("metadata") or {}).get("key"), entry["request"]))
        elif "fileName" in config or "file_name" in config:
            name = config.get("fileName") or config.get("file_name")
            with LOCK:
                resource = FILES.get(str(name).removeprefix("files/"))
            if resource is None or resource.get("_data") is None:
                raise Failure(400, "INVALID_ARGUMENT", f"* inputConfig.fileName: file {name} not found or not a JSONL file")
            for n, line in enumerate(resource["_data"].decode().splitlines()):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    raise Failure(400, "INVALID_ARGUMENT", f"line {n + 1} of {name} is not JSON")
                items.append((entry.get("key"), entry.get("request") or {}))
            file_input = True
        else:
            raise Failure(400, "INVALID_ARGUMENT", "* BatchGenerateContentRequest.batch.input_config: requests or file_name is required")
        with LOCK:
            batch_id = uuid.uuid4().hex[:20]
            BATCHES[batch_id] = {"_model": model, "_display": display, "_state": "BATCH_STATE_PENDING", "_items": items,
                                 "_file_input": file_input, "_created": stamp(now()), "_key": key, "_output": None}
            stats(key)["batches_created"] += 1
            return self.send(200, self.operation(batch_id))

    def operation(self, batch_id):
        """The batch as the API shows it (call with LOCK held)."""
        batch = BATCHES[batch_id]
        metadata = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                    "model": batch["_model"], "displayName": batch["_display"], "state": batch["_state"],
                    "createTime": batch["_created"], "updateTime": batch["_created"], "name": f"batches/{batch_id}"}
        total = len(batch["_items"])
        stats_ = {"requestCount": str(total)}
        done = batch["_state"] in ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
        if batch["_state"] == "BATCH_STATE_SUCCEEDED":
            ok = sum(1 for _, r in batch["_output"] if "response" in r)
            if ok:
                stats_["successfulRequestCount"] = str(ok)
            if total - ok:
                stats_["failedRequestCount"] = str(total - ok)
        elif not done:
            stats_["pendingRequestCount"] = str(total)
        metadata["batchStats"] = stats_
        operation = {"name": f"batches/{batch_id}", "metadata": metadata}
        if batch["_state"] == "BATCH_STATE_SUCCEEDED":
            if batch["_file_input"]:
                output = {"responsesFile": batch["_responses_file"]}
            else:
                output = {"inlinedResponses": {"inlinedResponses": [dict(r, metadata={"key": k}) for k, r in batch["_output"]]}}
            metadata["output"] = output
            operation["response"] = dict(output, **{"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"})
        if done:
            metadata["endTime"] = batch["_created"]
            operation["done"] = True
        return operation

    def run_batch(self, batch):
        """Answers every request (call with LOCK held)."""
        output = []
        for key, request in batch["_items"]:
            if "batch-fail" in last_text(request.get("contents") or []):
                output.append((key, {"error": {"code": 400, "message": "the fixture fails requests that ask for batch-fail", "status": "INVALID_ARGUMENT"}}))
                continue
            try:
                response, _ = self.answer(batch["_model"], request)
                output.append((key, {"response": response}))
                stats(batch["_key"])["billed"].append(
                    {"request": "batch_generate", "model": batch["_model"].removeprefix("models/"), "usage": response["usageMetadata"]})
            except Failure as failure:
                output.append((key, {"error": {"code": failure.code, "message": failure.message, "status": failure.status}}))
        batch["_output"] = output
        if batch["_file_input"]:
            lines = "\n".join(json.dumps(dict(r, key=k)) for k, r in output).encode()
            file_id = uuid.uuid4().hex[:16]
            FILES[file_id] = {"name": f"files/{file_id}", "displayName": f"batch-{file_id}-responses", "mimeType": "application/jsonl",
                              "sizeBytes": str(len(lines)), "state": "ACTIVE", "source": "GENERATED", "uri": f"{self.origin()}/v1beta/files/{file_id}",
                              "downloadUri": f"{self.origin()}/v1beta/files/{file_id}:download?alt=media",
                              "_key": batch["_key"], "_sha256": hashlib.sha256(lines).hexdigest(), "_saw_key": False, "_data": lines}
            batch["_responses_file"] = f"files/{file_id}"

    def batch_route(self, method, rest):
        name, _, verb = rest.partition(":")
        with LOCK:
            batch = BATCHES.get(name)
            if batch is None:
                raise Failure(404, "NOT_FOUND", f"Requested entity was not found: batches/{name}")
            if method == "GET" and not verb:
                if batch["_state"] == "BATCH_STATE_PENDING":
                    batch["_state"] = "BATCH_STATE_RUNNING"
                elif batch["_state"] == "BATCH_STATE_RUNNING" and "never-ends" not in batch["_display"]:
                    self.run_batch(batch)
                    batch["_state"] = "BATCH_STATE_SUCCEEDED"
                return self.send(200, self.operation(name))
            if method == "POST" and verb == "cancel":
                if batch["_state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
                    batch["_state"] = "BATCH_STATE_CANCELLED"
                    return self.send(200, {})
                raise Failure(400, "FAILED_PRECONDITION", f"batches/{name} has already ended ({batch['_state']})")
            if method == "DELETE" and not verb:
                del BATCHES[name]
                return self.send(200, {})
        raise Failure(404, "NOT_FOUND", f"Method not found: {method} /v1beta/batches/{rest}")

    def list_batches(self, query):
        size = max(1, min(int(query.get("pageSize", ["50"])[0] or 50), 1000))
        start = int(query.get("pageToken", ["0"])[0] or 0)
        with LOCK:
            names = list(BATCHES.keys())
            page = {"operations": [self.operation(n) for n in names[start:start + size]]}
        if start + size < len(names):
            page["nextPageToken"] = str(start + size)
        if not page["operations"]:
            del page["operations"]
        return self.send(200, page)

    def download(self, file_id, query):
        if query.get("alt") != ["media"]:
            raise Failure(400, "INVALID_ARGUMENT", "files.download needs alt=media")
        with LOCK:
            resource = FILES.get(file_id)
            if resource is None or resource.get("source") != "GENERATED":
                raise Failure(400 if resource else 403, "INVALID_ARGUMENT" if resource else "PERMISSION_DENIED",
                              "Only generated files can be downloaded" if resource else f"You do not have permission to access the File {file_id} or it may not exist.")
            return self.send(200, raw=resource["_data"], headers={"Content-Type": "application/jsonl"})


def main():
    global MIN_CACHE_TOKENS
    port = int(sys.argv[1])
    if "--min-cache-tokens" in sys.argv:
        MIN_CACHE_TOKENS = int(sys.argv[sys.argv.index("--min-cache-tokens") + 1])
    ThreadingHTTPServer.request_queue_size = 256  # the default backlog (5) resets connections under a burst
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
