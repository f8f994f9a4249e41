#!/usr/bin/env python3
"""The 1-second server of the http benchmark's 256-command scenario: answers every chat request
1 s after reading it (asyncio, one thread, so 256 connections arriving at once are all read
within milliseconds). The test suite's threaded fault server, used before, took each new
connection on a thread of its own and answered the last of 256 some 80 ms late: the run measured
its queue as much as the client. GET …/stats gives "max_inflight:<model>": how many requests
for that model it held at once. Loopback only; prints "PORT <n>" once listening."""
import asyncio, json, sys, time
from collections import Counter
STATS = Counter()

def completion(model):
    return {"id": "chatcmpl-slow", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "slow"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, version = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            if method == "GET" and path.endswith("/stats"):
                payload = json.dumps(STATS).encode()
            else:
                model = json.loads(body).get("model", "")
                STATS["inflight:" + model] += 1
                STATS["max_inflight:" + model] = max(STATS["max_inflight:" + model], STATS["inflight:" + model])
                await asyncio.sleep(1)
                STATS["inflight:" + model] -= 1
                payload = json.dumps(completion(model)).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
            await writer.drain()
            if version == "HTTP/1.0":
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0, backlog=4096)
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
