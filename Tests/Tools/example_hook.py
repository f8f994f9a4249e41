#!/usr/bin/env python3
"""A `pipeline --hook-exec` hook for the tests (and an example for users): it tags every command
with its team, rejects prompts holding the word "forbidden", and fails after command "c3" (to
show that a failing hook changes no result). It logs what it saw to the file in HOOK_LOG.
Every answer echoes the question's "index" and "hook": that is how pipeline knows which
question a line answers (a late or extra line is never taken for another command's answer)."""
import json
import os
import sys

log = open(os.environ["HOOK_LOG"], "a") if os.environ.get("HOOK_LOG") else None

for line in sys.stdin:
    question = json.loads(line)
    if log:
        log.write(json.dumps({"hook": question["hook"], "id": question["id"], "status": question.get("status")}) + "\n")
        log.flush()
    if question["hook"] == "before":
        command = question["command"]
        prompts = [part.get("text", "") for call in command["plan"]["calls"] for part in call["parts"]]
        if any("forbidden" in p for p in prompts):
            answer = {"reject": "the prompt uses a forbidden word"}
        else:
            command["metadata"] = dict(command.get("metadata") or {}, team="search")
            answer = {"command": command}
    else:
        answer = {"error": "audit store unreachable"} if question["id"] == "c3" else {}
    answer.update(index=question["index"], hook=question["hook"])
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
