#!/usr/bin/env python3
"""Drives Tests/Tools/anthropic_fixture.py with Anthropic's own Python SDK (`anthropic`).

Usage: anthropic_sdk_check.py BASE_URL API_KEY

Checks that the SDK can use the fixture the way it uses the real API: prompt caching
(the same cached prefix twice: the first request writes it, the second reads it, and
input_tokens excludes both cache counters), a prefix below the minimum (nothing cached,
no error), count_tokens, a Files API upload referenced from a document block,
streaming through the SDK's event accumulator, and errors the SDK maps to its own
exception types (401, 429 with retry-after, 529 overloaded). Prints one line per check
and exits non-zero on the first failure, naming it.
"""
import sys
import uuid

import anthropic


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def main(base_url, key):
    client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    run = uuid.uuid4().hex  # a prefix no earlier run cached
    big = f"Reference manual {run}. " + " ".join(f"Section {i}: the pipeline runs stages in order." for i in range(600))
    system = [{"type": "text", "text": "You answer questions about the manual."},
              {"type": "text", "text": big, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]

    first = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, system=system,
                                   messages=[{"role": "user", "content": "What runs first?"}])
    u1 = first.usage
    check("first request writes the cache", (u1.cache_creation_input_tokens or 0) > 1024 and (u1.cache_read_input_tokens or 0) == 0,
          f"usage {u1}")
    check("written tokens are split by TTL", u1.cache_creation is not None
          and u1.cache_creation.ephemeral_1h_input_tokens == u1.cache_creation_input_tokens, f"usage {u1}")
    check("the answer is a text block", first.content and first.content[0].type == "text"
          and first.content[0].text == "echo: What runs first?" and first.stop_reason == "end_turn", f"{first}")

    second = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, system=system,
                                    messages=[{"role": "user", "content": "And then?"}])
    u2 = second.usage
    check("second request reads the cache", u2.cache_read_input_tokens == u1.cache_creation_input_tokens
          and (u2.cache_creation_input_tokens or 0) == 0, f"usage {u2}")
    check("input_tokens excludes cached tokens", u2.input_tokens < 50 and u1.input_tokens < 50, f"{u1} / {u2}")

    small = client.messages.create(model="claude-sonnet-4-6", max_tokens=16,
                                   system=[{"type": "text", "text": f"short {run}", "cache_control": {"type": "ephemeral"}}],
                                   messages=[{"role": "user", "content": "hi"}])
    check("a prefix below the minimum is not cached, without error",
          (small.usage.cache_creation_input_tokens or 0) == 0 and (small.usage.cache_read_input_tokens or 0) == 0, f"{small.usage}")

    counted = client.messages.count_tokens(model="claude-sonnet-4-6", system=system,
                                           messages=[{"role": "user", "content": "What runs first?"}])
    check("count_tokens counts the whole prompt", counted.input_tokens == u1.input_tokens + u1.cache_creation_input_tokens,
          f"{counted} vs {u1}")

    uploaded = client.files.upload(file=("notes.txt", b"The cache stage runs before generate.", "text/plain"))
    check("files.upload returns a file id", uploaded.id.startswith("file_") and uploaded.size_bytes == 37
          and uploaded.mime_type == "text/plain", f"{uploaded}")
    with_file = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": [
        {"type": "document", "source": {"type": "file", "file_id": uploaded.id}},
        {"type": "text", "text": "Summarise the file."}]}])
    check("a document block references the uploaded file", with_file.content[0].text == "echo: Summarise the file."
          and with_file.usage.input_tokens == 10 + 5, f"{with_file}")
    try:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "file", "file_id": "file_missing"}}, {"type": "text", "text": "x"}]}])
        check("an unknown file id is refused", False, "accepted")
    except anthropic.NotFoundError:
        check("an unknown file id is refused", True)

    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64, system=system,
                                messages=[{"role": "user", "content": "Stream it please"}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    check("streaming assembles the text", streamed == "echo: Stream it please" and final.content[0].text == streamed, streamed)
    check("streaming reports cache usage", final.usage.cache_read_input_tokens == u1.cache_creation_input_tokens
          and final.usage.output_tokens > 1, f"{final.usage}")

    with client.messages.stream(model="claude-stream-extra", max_tokens=64,
                                messages=[{"role": "user", "content": "pings"}]) as stream:
        extra = "".join(stream.text_stream)
    check("the SDK ignores pings and unknown event types", extra == "echo: pings", extra)

    for model, error_type, name in ((f"claude-overloaded", anthropic.APIStatusError, "529 overloaded"),
                                    (f"claude-rate-limited", anthropic.RateLimitError, "429 rate limit")):
        try:
            client.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": "x"}])
            check(name, False, "no error")
        except error_type as error:
            check(name, error.status_code in (429, 529) and (error.status_code != 429 or error.response.headers.get("retry-after") == "2"),
                  f"{error.status_code}")
    try:
        client.messages.create(model="claude-overloaded", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    except anthropic.APIStatusError as error:
        check("529 carries overloaded_error", error.body and error.body.get("error", {}).get("type") == "overloaded_error", f"{error.body}")

    try:
        anthropic.Anthropic(base_url=base_url, api_key="wrong-key", max_retries=0).messages.create(
            model="claude-sonnet-4-6", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        check("a wrong key is refused", False, "accepted")
    except anthropic.AuthenticationError:
        check("a wrong key is refused", True)

    try:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=8, system=[
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
            {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            messages=[{"role": "user", "content": "x"}])
        check("a 1h breakpoint after a 5m one is refused", False, "accepted")
    except anthropic.BadRequestError:
        check("a 1h breakpoint after a 5m one is refused", True)
    weather = {"name": "get_weather", "description": "The weather of a city",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                                "required": ["city"]}}
    question = {"role": "user", "content": "Weather in Paris?"}
    called = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, tools=[weather],
                                    tool_choice={"type": "tool", "name": "get_weather"}, messages=[question])
    use = called.content[0] if called.content else None
    check("a forced tool is called with a tool_use block", use is not None and use.type == "tool_use" and use.name == "get_weather"
          and isinstance(use.input.get("city"), str) and use.input.get("unit") == "c" and called.stop_reason == "tool_use", f"{called}")
    answered = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, tools=[weather], messages=[
        question, {"role": "assistant", "content": called.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 degrees"}]}])
    check("the SDK's tool_use turn and a tool_result continue the conversation",
          answered.content[0].type == "text" and answered.content[0].text == "echo: 21 degrees" and answered.stop_reason == "end_turn", f"{answered}")
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64, tools=[weather], tool_choice={"type": "any"},
                                messages=[question]) as stream:
        streamed = stream.get_final_message()
    check("the SDK joins streamed input_json_delta pieces into the tool's input",
          streamed.content[0].type == "tool_use" and streamed.content[0].input == use.input, f"{streamed}")
    try:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=8, tools=[weather], messages=[
            question, {"role": "assistant", "content": called.content}, {"role": "user", "content": "no result"}])
        check("a tool_use without its tool_result is refused", False, "accepted")
    except anthropic.BadRequestError:
        check("a tool_use without its tool_result is refused", True)
    try:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=8, tools=[weather], tool_choice={"type": "tool", "name": "nope"},
                               messages=[question])
        check("a tool_choice naming no tool is refused", False, "accepted")
    except anthropic.BadRequestError:
        check("a tool_choice naming no tool is refused", True)
    print("SDK CHECK PASSED", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
