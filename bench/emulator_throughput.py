"""Benchmark: output tokens per second the emulator streams to 50 concurrent clients.

The emulator runs as its own process (``python -m autocontinue.emulator``, no decode rate);
this process runs the clients on one event loop: ``--client raw`` reads the event stream with
httpx2 and takes the output tokens from ``message_delta`` (measures the server), ``--client
sdk`` uses ``anthropic.AsyncAnthropic().messages.stream`` (measures server + SDK parsing, both
on this machine's cores). Target: >= 20,000 output tokens/s with the raw client on 2 cores.

    python bench/emulator_throughput.py [--clients 50] [--tokens 8000] [--client raw|sdk]

Prints one dict: clients, tokens per client, total output tokens, seconds, tokens_per_s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time

MODEL = "claude-sonnet-4-6"


def start_emulator(length: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "autocontinue.emulator", "--port", "0", "--length", str(length)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None  # piped above
    line = process.stderr.readline()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return process, match.group(1)


async def raw_client(url: str, index: int, tokens: int) -> int:
    import httpx2

    body = {
        "model": MODEL,
        "max_tokens": tokens,
        "stream": True,
        "messages": [{"role": "user", "content": f"client {index}"}],
    }
    output = 0
    async with (
        httpx2.AsyncClient(timeout=600) as client,
        client.stream("POST", f"{url}/v1/messages", json=body, headers={"x-api-key": "bench"}) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith('data: {"type":"message_delta"'):
                output = json.loads(line[6:])["usage"]["output_tokens"]
    return output


async def sdk_client(url: str, index: int, tokens: int) -> int:
    import anthropic

    client = anthropic.AsyncAnthropic(base_url=url, api_key="bench")
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": f"client {index}"}]
    async with client.messages.stream(model=MODEL, max_tokens=tokens, messages=messages) as stream:
        async for _ in stream.text_stream:
            pass
        final = await stream.get_final_message()
    await client.close()
    return final.usage.output_tokens


async def run(url: str, clients: int, tokens: int, kind: str) -> dict:
    one = raw_client if kind == "raw" else sdk_client
    await one(url, -1, 50)  # warm up: build one answer, open the code paths
    started = time.perf_counter()
    outputs = await asyncio.gather(*(one(url, i % 5, tokens) for i in range(clients)))
    seconds = time.perf_counter() - started
    total = sum(outputs)
    return {
        "client": kind,
        "clients": clients,
        "tokens_per_client": tokens,
        "output_tokens": total,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(total / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=8000, help="max_tokens per client")
    parser.add_argument("--client", choices=("raw", "sdk"), default="raw")
    args = parser.parse_args()
    process, url = start_emulator(length=args.tokens + 100)
    try:
        result = asyncio.run(run(url, args.clients, args.tokens, args.client))
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(result)


if __name__ == "__main__":
    main()
