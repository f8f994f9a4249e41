#!/usr/bin/env bash
# Creates .venv at the package root with the Python peers the tests use: jsonschema (schema
# checks), fakeai and pillow (an OpenAI-compatible server), llmock (OpenAI, Gemini and Anthropic
# routes with scripted faults), fakellm (a second Anthropic Messages server), and the official
# SDKs google-genai, anthropic and openai, which check our fixtures (Tests/Tools/gemini_fixture.py,
# anthropic_fixture.py, repair_server.py) against the real protocol; and LiteLLM's proxy
# (litellm[proxy], pinned below 1.107), a gateway in front of llmock with OpenAI, Anthropic and
# Gemini routes. Idempotent and serialised with
# flock, so .ci/run and the tests themselves can both call it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec 9>"$root/.venv.lock"
flock 9
if [ -x "$root/.venv/bin/fakeai" ] && [ -x "$root/.venv/bin/llmock" ] \
  && "$root/.venv/bin/python" -c "import jsonschema, fakeai, llmock, fakellm, google.genai, anthropic, openai, litellm_proxy_extras, fastapi, uvicorn" 2>/dev/null \
  && [ -x "$root/.venv/bin/litellm" ]; then
  exit 0
fi
python3 -m venv "$root/.venv"
"$root/.venv/bin/pip" install --quiet --disable-pip-version-check jsonschema fakeai pillow llmock fakellm google-genai anthropic openai \
  'litellm[proxy]<1.107'
