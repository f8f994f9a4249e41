"""One Python peer's run against the canned server: N chat completions at concurrency C.

Usage: peers.py CLIENT BASE_URL N C   (CLIENT: aiohttp | openai | pollux | litellm)
       peers.py aiohttp-upload BASE_URL N C DIR   (N multipart uploads of DIR/up-<i>.pdf to
       BASE_URL/files, each file streamed from disk, as the OpenAI Files API takes them)

Prints one JSON line: {"client", "requests", "ok", "wall_s", "cpu_s"}. The clock starts after
the imports and a warm-up of C requests (interpreter start-up and imports are not counted;
connection set-up is), and CPU is this process's own (all threads), from time.process_time().
"""

import asyncio
import json
import os
import sys
import time

CLIENT, BASE, N, C = sys.argv[1], sys.argv[2].rstrip("/"), int(sys.argv[3]), int(sys.argv[4])
MESSAGES = [{"role": "user", "content": "Say ok."}]


async def run_aiohttp():
    import aiohttp

    connector = aiohttp.TCPConnector(limit=C)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = BASE + "/chat/completions"

        async def one():
            async with session.post(url, json={"model": "bench", "messages": MESSAGES}) as response:
                body = await response.json()
                return response.status == 200 and bool(body["choices"][0]["message"]["content"])

        return await timed(one)


async def run_aiohttp_upload():
    import aiohttp

    directory = sys.argv[5]
    connector = aiohttp.TCPConnector(limit=C)
    semaphore = asyncio.Semaphore(C)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = BASE + "/files"

        async def one(i):
            async with semaphore:
                try:
                    with open(os.path.join(directory, f"up-{i}.pdf"), "rb") as f:
                        form = aiohttp.FormData()
                        form.add_field("purpose", "user_data")
                        form.add_field("file", f, filename=f"up-{i}.pdf", content_type="application/pdf")
                        async with session.post(url, data=form, headers={"Authorization": "Bearer sk-bench"}) as response:
                            body = await response.json()
                            return response.status == 200 and bool(body.get("id"))
                except Exception:
                    return False

        wall, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(*(one(i) for i in range(N)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return sum(1 for r in results if r), wall, cpu


async def run_openai():
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=BASE, api_key="sk-bench", max_retries=0)

    async def one():
        completion = await client.chat.completions.create(model="bench", messages=MESSAGES)
        return bool(completion.choices[0].message.content)

    try:
        return await timed(one)
    finally:
        await client.close()


async def run_litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False

    async def one():
        response = await litellm.acompletion(model="openai/bench", api_base=BASE, api_key="sk-bench", messages=MESSAGES, num_retries=0)
        return bool(response.choices[0].message.content)

    return await timed(one)


async def run_pollux():
    import pollux

    config = pollux.Config(provider="local", model="bench", base_url=BASE, request_concurrency=C)
    prompts = ["Say ok."] * N
    warm = await pollux.run_many(["Say ok."] * C, config=config)
    del warm
    wall, cpu = time.perf_counter(), time.process_time()
    result = await pollux.run_many(prompts, config=config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ok = sum(1 for a in result.answers if a)
    return ok, wall, cpu


async def timed(one):
    semaphore = asyncio.Semaphore(C)

    async def guarded():
        async with semaphore:
            try:
                return await one()
            except Exception:
                return False

    await asyncio.gather(*(guarded() for _ in range(C)))  # warm-up: imports, connections
    wall, cpu = time.perf_counter(), time.process_time()
    results = await asyncio.gather(*(guarded() for _ in range(N)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return sum(1 for r in results if r), wall, cpu


def main():
    runner = {"aiohttp": run_aiohttp, "aiohttp-upload": run_aiohttp_upload, "openai": run_openai, "litellm": run_litellm, "pollux": run_pollux}[CLIENT]
    ok, wall, cpu = asyncio.run(runner())
    print(json.dumps({"client": CLIENT, "requests": N, "ok": ok, "wall_s": wall, "cpu_s": cpu}))


if __name__ == "__main__":
    main()
