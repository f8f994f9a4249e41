#!/usr/bin/env python3
"""Validates every JSON line on stdin against a JSON Schema (draft 2020-12).

Usage: validate_jsonl.py SCHEMA.json < lines.jsonl
Prints one line per invalid document and exits 1 if any; prints "N valid" and exits 0 otherwise.
Every *.schema.json beside SCHEMA.json is registered under its $id, so schemas may refer to
each other (the event schema's `result` is the result schema's record).
"""
import json
import pathlib
import sys

import jsonschema
from referencing import Registry, Resource


def main() -> int:
    path = pathlib.Path(sys.argv[1])
    schema = json.loads(path.read_text())
    registry = Registry()
    for sibling in path.parent.glob("*.schema.json"):
        document = json.loads(sibling.read_text())
        registry = registry.with_resource(document["$id"], Resource.from_contents(document))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    jsonschema.Draft202012Validator.check_schema(schema)
    bad = 0
    count = 0
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        count += 1
        document = json.loads(line)
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        if errors:
            bad += 1
            best = jsonschema.exceptions.best_match(errors)
            print(f"line {number}: {best.message} at {list(best.absolute_path)}")
    if bad:
        return 1
    print(f"{count} valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
