#!/usr/bin/env bash
# Creates .venv at the package root with the Python peers the tests use: jsonschema (schema
# checks), fakeai and pillow (an OpenAI-compatible server); for the Anthropic tests llmock and
# fakellm (servers that speak Anthropic's Messages API) and anthropic (the official SDK, which
# checks our Anthropic fixture). Idempotent and serialised with
# flock, so .ci/run and the tests themselves can both call it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec 9>"$root/.venv.lock"
flock 9
if [ -x "$root/.venv/bin/fakeai" ] && "$root/.venv/bin/python" -c "import jsonschema, fakeai, llmock, fakellm, anthropic" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$root/.venv"
"$root/.venv/bin/pip" install --quiet --disable-pip-version-check jsonschema fakeai pillow llmock fakellm anthropic
