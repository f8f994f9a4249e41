#!/usr/bin/env python3
"""Checks Tests/Tools/repair_server.py against the official `openai` SDK: its structured-output
parsing (`client.chat.completions.parse` with a Pydantic model, which sends a strict
json_schema response_format and parses the answer) reads the server's answers, so the fixture
speaks the real protocol. Usage: openai_repair_sdk_check.py BASE_URL (…/v1). Prints OK or fails.
"""
import sys

import openai
import pydantic


class Person(pydantic.BaseModel):
    name: str
    age: int


def main():
    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-repair-fixture", max_retries=0)
    # A conforming answer: parsed into the model.
    good = client.chat.completions.parse(model="good:sdk", messages=[{"role": "user", "content": "Who?"}], response_format=Person)
    person = good.choices[0].message.parsed
    assert person == Person(name="Ada", age=36), person
    assert good.usage.prompt_tokens == 4 and good.usage.completion_tokens > 0
    # The first answer of "repairable" breaks the schema: the SDK refuses it too.
    try:
        client.chat.completions.parse(model="repairable:sdk", messages=[{"role": "user", "content": "Who?"}], response_format=Person)
        raise AssertionError("the SDK parsed an answer whose age is a string")
    except pydantic.ValidationError:
        pass
    # The repair conversation the engine sends (the rejected answer, then the correction) is answered right.
    repaired = client.chat.completions.parse(
        model="repairable:sdk",
        messages=[
            {"role": "user", "content": "Who?"},
            {"role": "assistant", "content": '{"name": "Ada", "age": "thirty-six"}'},
            {"role": "user", "content": "Your answer does not conform to the required JSON format: at $.age, expected an integer, found a string."},
        ],
        response_format=Person,
    )
    assert repaired.choices[0].message.parsed == Person(name="Ada", age=36)
    print("OK")


if __name__ == "__main__":
    main()
