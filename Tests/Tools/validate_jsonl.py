#!/usr/bin/env python3
"""Validates every JSON line on stdin against a JSON Schema (draft 2020-12).

Usage: validate_jsonl.py SCHEMA.json < lines.jsonl
Prints one line per invalid document and exits 1 if any; prints "N valid" and exits 0 otherwise.
"""
import json
import sys

import jsonschema


def main() -> int:
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema)
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
