#!/usr/bin/env python3
"""Drives Tests/Tools/gemini_fixture.py with Google's own google-genai SDK.

The fixture's fidelity is not taken on trust: if the official SDK cannot upload, poll,
create/get/list/update/use/delete a cache, count tokens, generate with a file and with a
cache, and create/get/list/cancel batches (inline and from a file) against it — or if the fixture's errors are not the ones the SDK expects — this exits
non-zero with the step that failed.

Usage: gemini_sdk_check.py BASE_URL API_KEY
Prints one line per step, then "SDK CHECK OK".
"""
import json
import os
import sys
import tempfile

from google import genai
from google.genai import errors, types

MODEL = "gemini-2.5-flash"


def step(name):
    print(f"step: {name}", flush=True)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def main():
    base, key = sys.argv[1], sys.argv[2]
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base, api_version="v1beta", timeout=30_000))

    step("files.upload (resumable start, then upload + finalize)")
    payload = b"%PDF-1.4\n" + b"fixture page\n" * 2000
    with tempfile.NamedTemporaryFile(suffix=".pdf", delete=False) as handle:
        handle.write(payload)
        path = handle.name
    try:
        uploaded = client.files.upload(file=path, config=types.UploadFileConfig(mime_type="application/pdf", display_name="sdk-report.pdf"))
    finally:
        os.unlink(path)
    expect(uploaded.name.startswith("files/"), f"file name {uploaded.name!r}")
    expect(uploaded.size_bytes == len(payload), f"size_bytes {uploaded.size_bytes} != {len(payload)}")
    expect(uploaded.mime_type == "application/pdf", f"mime_type {uploaded.mime_type!r}")
    expect(uploaded.uri and uploaded.uri.endswith(uploaded.name), f"uri {uploaded.uri!r}")
    expect(uploaded.state is not None and uploaded.state.name in ("PROCESSING", "ACTIVE"), f"state {uploaded.state}")

    step("files.get until ACTIVE")
    current = uploaded
    for _ in range(10):
        if current.state.name == "ACTIVE":
            break
        current = client.files.get(name=uploaded.name)
    expect(current.state.name == "ACTIVE", f"file still {current.state}")
    expect(any(f.name == uploaded.name for f in client.files.list()), "files.list does not show the file")

    step("models.count_tokens")
    counted = client.models.count_tokens(model=MODEL, contents="hello world, count me")
    expect(counted.total_tokens == 6, f"total_tokens {counted.total_tokens}")

    step("caches.create below the minimum is a 400 INVALID_ARGUMENT 'too small'")
    try:
        client.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=["tiny"], ttl="300s"))
        raise AssertionError("a tiny cache was accepted")
    except errors.ClientError as error:
        expect(error.code == 400 and error.status == "INVALID_ARGUMENT", f"{error.code} {error.status}")
        expect("too small" in (error.message or ""), error.message)

    step("caches.create with a file, text and a system instruction")
    big = "Shared context sentence for the cache. " * 200
    cache = client.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[
                types.Part.from_uri(file_uri=current.uri, mime_type="application/pdf"),
                types.Part.from_text(text=big),
            ])],
            system_instruction="Answer briefly.", ttl="300s", display_name="sdk-cache"))
    expect(cache.name.startswith("cachedContents/"), cache.name)
    expect(cache.model == f"models/{MODEL}", cache.model)
    expect(cache.display_name == "sdk-cache", cache.display_name)
    expect(cache.expire_time is not None, "no expire_time")
    cached_tokens = cache.usage_metadata.total_token_count
    expect(cached_tokens and cached_tokens >= 1024, f"cache tokens {cached_tokens}")

    step("caches.get, caches.list, caches.update (ttl)")
    fetched = client.caches.get(name=cache.name)
    expect(fetched.name == cache.name, fetched.name)
    expect(any(c.name == cache.name for c in client.caches.list()), "caches.list does not show the cache")
    updated = client.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="900s"))
    expect(updated.expire_time > cache.expire_time, f"{updated.expire_time} <= {cache.expire_time}")

    step("generate_content with the cache")
    answer = client.models.generate_content(
        model=MODEL, contents="What does the shared context say?", config=types.GenerateContentConfig(cached_content=cache.name))
    expect("fixture answer" in answer.text, answer.text)
    expect(answer.usage_metadata.cached_content_token_count == cached_tokens, f"cached {answer.usage_metadata.cached_content_token_count}")
    expect(answer.usage_metadata.prompt_token_count > cached_tokens, "the prompt count must include the cached tokens")
    expect(answer.candidates[0].finish_reason.name == "STOP", str(answer.candidates[0].finish_reason))

    step("generate_content with the cache and a system instruction is a 400")
    try:
        client.models.generate_content(
            model=MODEL, contents="Hi", config=types.GenerateContentConfig(cached_content=cache.name, system_instruction="No."))
        raise AssertionError("a system instruction beside a cache was accepted")
    except errors.ClientError as error:
        expect(error.code == 400, f"{error.code}")

    step("generate_content with the uploaded file")
    answer = client.models.generate_content(
        model=MODEL, contents=[types.Part.from_uri(file_uri=current.uri, mime_type="application/pdf"), "Summarise the report."])
    expect("[files: 1]" in answer.text, answer.text)

    step("generate_content_stream")
    pieces = [chunk.text or "" for chunk in client.models.generate_content_stream(model=MODEL, contents="Stream this.")]
    expect(len(pieces) == 2 and "".join(pieces) == "fixture answer to: Stream this.", repr(pieces))

    step("caches.delete, then the cache is gone (403 PERMISSION_DENIED)")
    client.caches.delete(name=cache.name)
    try:
        client.caches.get(name=cache.name)
        raise AssertionError("a deleted cache was found")
    except errors.ClientError as error:
        expect(error.code == 403 and error.status == "PERMISSION_DENIED", f"{error.code} {error.status}")

    step("an invalid key is 400 INVALID_ARGUMENT with reason API_KEY_INVALID")
    bad = genai.Client(api_key="invalid-key-for-the-check", http_options=types.HttpOptions(base_url=base, api_version="v1beta", timeout=30_000))
    try:
        bad.models.generate_content(model=MODEL, contents="Hi")
        raise AssertionError("an invalid key was accepted")
    except errors.ClientError as error:
        expect(error.code == 400, f"{error.code}")
        reasons = [d.get("reason") for d in (error.details or {}).get("error", {}).get("details", [])]
        expect("API_KEY_INVALID" in reasons, f"details {error.details}")

    step("batches.create with inline requests, get until JOB_STATE_SUCCEEDED, answers by key")
    job = client.batches.create(
        model=MODEL,
        src=[{"contents": [{"role": "user", "parts": [{"text": f"batch question {n}"}]}], "metadata": {"key": f"k{n}"}} for n in range(3)],
        config={"display_name": "sdk-batch-inline"})
    expect(job.name.startswith("batches/"), f"batch name {job.name!r}")
    expect(job.state.name == "JOB_STATE_PENDING", f"state {job.state}")
    expect(job.display_name == "sdk-batch-inline", f"display_name {job.display_name!r}")
    seen = []
    for _ in range(5):
        job = client.batches.get(name=job.name)
        seen.append(job.state.name)
        if job.done:
            break
    expect(seen[-1] == "JOB_STATE_SUCCEEDED" and "JOB_STATE_RUNNING" in seen, f"states {seen}")
    answers = {r.metadata["key"]: r.response.text for r in job.dest.inlined_responses}
    expect(answers == {f"k{n}": f"fixture answer to: batch question {n}" for n in range(3)}, f"answers {answers}")

    step("batches.create from an uploaded JSONL file, results in a responses file (files.download)")
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        for n in range(2):
            handle.write(json.dumps({"key": f"f{n}", "request": {"contents": [{"role": "user", "parts": [{"text": f"file question {n}"}]}]}}) + "\n")
        handle.write(json.dumps({"key": "bad", "request": {"contents": [{"role": "user", "parts": [{"text": "batch-fail"}]}]}}) + "\n")
        path = handle.name
    try:
        source = client.files.upload(file=path, config=types.UploadFileConfig(mime_type="application/jsonl", display_name="sdk-batch-input.jsonl"))
    finally:
        os.unlink(path)
    job = client.batches.create(model=MODEL, src=source.name, config={"display_name": "sdk-batch-file"})
    while not job.done:
        job = client.batches.get(name=job.name)
    expect(job.state.name == "JOB_STATE_SUCCEEDED", f"state {job.state}")
    expect(job.dest.file_name and job.dest.file_name.startswith("files/"), f"dest {job.dest}")
    lines = [json.loads(line) for line in client.files.download(file=job.dest.file_name).decode().splitlines()]
    by_key = {line["key"]: line for line in lines}
    expect(by_key["f1"]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "fixture answer to: file question 1", f"lines {lines}")
    expect(by_key["bad"]["error"]["status"] == "INVALID_ARGUMENT", f"lines {lines}")

    step("batches.list finds both by display name; batches.cancel ends a running one")
    names = {b.display_name for b in client.batches.list(config={"page_size": 1})}
    expect({"sdk-batch-inline", "sdk-batch-file"} <= names, f"listed {names}")
    running = client.batches.create(model=MODEL, src=[{"contents": [{"role": "user", "parts": [{"text": "x"}]}]}], config={"display_name": "sdk-never-ends"})
    client.batches.cancel(name=running.name)
    expect(client.batches.get(name=running.name).state.name == "JOB_STATE_CANCELLED", "cancelled batch state")

    step("function calling: declarations with parameters_json_schema, mode ANY, a call the SDK reads")
    weather = types.FunctionDeclaration(
        name="get_weather", description="The weather of a city",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                                "required": ["city"]})
    tools = [types.Tool(function_declarations=[weather])]
    forced = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY", allowed_function_names=["get_weather"]))
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    called = client.models.generate_content(model=MODEL, contents=[question], config=types.GenerateContentConfig(tools=tools, tool_config=forced))
    calls = called.function_calls or []
    expect(len(calls) == 1 and calls[0].name == "get_weather" and isinstance(calls[0].args.get("city"), str) and calls[0].args.get("unit") == "c",
           f"function calls {calls}")
    expect(called.candidates[0].finish_reason.name == "STOP", f"finish {called.candidates[0].finish_reason}")

    step("function calling: the SDK's model turn and a function response continue the conversation")
    reply = types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"temperature": 21})])
    answered = client.models.generate_content(model=MODEL, contents=[question, called.candidates[0].content, reply],
                                              config=types.GenerateContentConfig(tools=tools))
    expect(not answered.function_calls and '"temperature": 21' in (answered.text or ""), f"answer {answered.text!r}")

    step("function calling: streamed, the call arrives whole")
    streamed = [c for chunk in client.models.generate_content_stream(model=MODEL, contents=[question], config=types.GenerateContentConfig(tools=tools, tool_config=forced))
                for c in (chunk.function_calls or [])]
    expect(len(streamed) == 1 and streamed[0].args == calls[0].args, f"streamed calls {streamed}")

    step("function calling: mode NONE answers in text; a response without its call is refused")
    plain = client.models.generate_content(model=MODEL, contents=[question], config=types.GenerateContentConfig(
        tools=tools, tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="NONE"))))
    expect(not plain.function_calls and plain.text.startswith("fixture answer to"), f"answer {plain.text!r}")
    try:
        client.models.generate_content(model=MODEL, contents=[question, reply], config=types.GenerateContentConfig(tools=tools))
        expect(False, "a function response without a function call was accepted")
    except errors.ClientError as error:
        expect(error.code == 400, f"error {error}")

    step("thought signatures: a Gemini 3 call's part carries one (bytes to the SDK); sent back, the conversation goes on; dropped, 400")
    signed = client.models.generate_content(model="gemini-3-flash-preview", contents=[question], config=types.GenerateContentConfig(tools=tools, tool_config=forced))
    turn = signed.candidates[0].content
    signature = turn.parts[0].thought_signature
    expect(turn.parts[0].function_call is not None and isinstance(signature, bytes) and signature.startswith(b"fixture-thought:"),
           f"first part {turn.parts[0]}")
    goes_on = client.models.generate_content(model="gemini-3-flash-preview", contents=[question, turn, reply], config=types.GenerateContentConfig(tools=tools))
    expect(not goes_on.function_calls and '"temperature": 21' in (goes_on.text or ""), f"answer {goes_on.text!r}")
    unsigned = types.Content(role="model", parts=[types.Part(function_call=turn.parts[0].function_call)])
    try:
        client.models.generate_content(model="gemini-3-flash-preview", contents=[question, unsigned, reply], config=types.GenerateContentConfig(tools=tools))
        expect(False, "a Gemini 3 call without its thought signature was accepted")
    except errors.ClientError as error:
        expect(error.code == 400 and "thought_signature" in str(error), f"error {error}")
    # Gemini 2.5 neither sends nor needs one.
    expect(called.candidates[0].content.parts[0].thought_signature is None, "a 2.5 call carries no signature")

    step("files.delete")
    client.files.delete(name=uploaded.name)
    print("SDK CHECK OK", flush=True)


if __name__ == "__main__":
    main()
