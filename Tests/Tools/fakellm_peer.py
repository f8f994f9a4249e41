#!/usr/bin/env python3
"""Runs fakellm (`pip install fakellm`) on 127.0.0.1:PORT with Tests/Tools/fakellm.yaml.

Usage: fakellm_peer.py PORT
fakellm has no /health route, which Tests/Tools/run_peer.py waits for: this adds one.
"""
import os
import sys
from pathlib import Path

os.environ["FAKELLM_CONFIG"] = str(Path(__file__).with_name("fakellm.yaml"))

import uvicorn  # noqa: E402
from fakellm.server import app  # noqa: E402  (reads FAKELLM_CONFIG on import)


@app.get("/health")
async def health():
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
