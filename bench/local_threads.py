"""Benchmark: local-model tokens/s of sync rounds and async rounds mixed in one process.

llama.cpp (OpenMP build) keeps an idle OpenMP team for every thread that ever ran the model;
once the teams' threads outnumber the cores, libgomp stops spinning at ggml's per-node
barriers and sleeps. Async rounds run on the backend's one model thread, so a process that
runs sync rounds on its main thread as well holds two teams. Each repeat starts two fresh
processes (the teams live as long as the process), one after the other:

* ``sync_first``: (a) sync rounds alone, then (d) async rounds after them;
* ``async_first``: (b) async rounds alone, then (c) sync rounds after them.

Each arm is ``--rounds`` rounds of ``--tokens`` greedy tokens on SmolLM2-135M with
``--threads`` threads, after one untimed round in the same mode; tokens/s is output tokens
over the arm's wall time, medians over ``--repeat`` repeats, and the median of each process's
second arm over its first (back to back, so under about the same load: the figure to trust on a
busy machine). Writes bench/out/local_threads.json.

    python -m bench.local_threads [--repeat 5] [--rounds 4] [--tokens 48] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.local_batch import PROMPTS as LOCAL_BATCH_PROMPTS

__all__ = ["ORDERS", "run", "main"]

#: The arms each kind of process runs, in order.
ORDERS = {
    "sync_first": ("a_sync_alone", "d_async_after_sync"),
    "async_first": ("b_async_alone", "c_sync_after_async"),
}

#: The local batch bench's first six prompts (the same texts, so the two benches compare).
PROMPTS = LOCAL_BATCH_PROMPTS[:6]


def _requests(backend: Any, rounds: int, tokens: int) -> list[Any]:
    from autocontinue.backends.base import RoundRequest

    return [
        RoundRequest(
            model=backend.default_model,
            messages=[{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}],
            max_tokens=tokens,
        )
        for n in range(rounds)
    ]


def _sync_rounds(backend: Any, requests: list[Any]) -> int:
    from autocontinue.backends.base import RoundEnd

    return sum(
        e.usage.output_tokens for r in requests for e in backend.stream_round(r) if isinstance(e, RoundEnd)
    )


def _async_rounds(backend: Any, requests: list[Any]) -> int:
    from autocontinue.backends.base import RoundEnd

    async def rounds() -> int:
        total = 0
        for request in requests:
            async for event in backend.astream_round(request):
                if isinstance(event, RoundEnd):
                    total += event.usage.output_tokens
        return total

    return asyncio.run(rounds())


def _arm(backend: Any, mode: str, rounds: int, tokens: int) -> dict[str, Any]:
    play = _sync_rounds if mode.split("_")[1] == "sync" else _async_rounds
    play(backend, _requests(backend, 1, tokens))  # untimed: the weights, this mode's thread
    started = time.perf_counter()
    count = play(backend, _requests(backend, rounds, tokens))
    wall = time.perf_counter() - started
    return {"tokens": count, "wall_s": round(wall, 3), "tokens_per_s": round(count / wall, 2)}


def worker(order: str, *, rounds: int, tokens: int, threads: int) -> dict[str, Any]:
    """One fresh process's arms (``ORDERS[order]``), in order."""
    from autocontinue.backends.local import LocalBackend

    backend = LocalBackend(n_threads=threads, seed=7, temperature=0.0)
    return {arm: _arm(backend, arm, rounds, tokens) for arm in ORDERS[order]}


def _spawn(order: str, rounds: int, tokens: int, threads: int) -> dict[str, Any]:
    from .common import REPO

    command = [sys.executable, "-m", "bench.local_threads", "--worker", order]
    command += ["--rounds", str(rounds), "--tokens", str(tokens), "--threads", str(threads)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(*, repeat: int = 5, rounds: int = 4, tokens: int = 48, threads: int = 2) -> dict[str, Any]:
    """Both kinds of process, alternated ``repeat`` times; saves bench/out/local_threads.json."""
    from .common import save

    samples: dict[str, list[float]] = {arm: [] for arms in ORDERS.values() for arm in arms}
    #: second arm / first arm of each process: the two ran back to back, under about one load.
    paired: dict[str, list[float]] = {"/".join(reversed(arms)): [] for arms in ORDERS.values()}
    loads = [os.getloadavg()[0]]
    for index in range(repeat):
        orders = list(ORDERS) if index % 2 == 0 else list(reversed(ORDERS))
        for order in orders:
            rows = _spawn(order, rounds, tokens, threads)
            for arm, row in rows.items():
                samples[arm].append(row["tokens_per_s"])
            first, second = (rows[arm]["tokens_per_s"] for arm in ORDERS[order])
            paired["/".join(reversed(ORDERS[order]))].append(round(second / first, 3))
        loads.append(os.getloadavg()[0])
    medians = {arm: statistics.median(values) for arm, values in samples.items()}
    base = medians["a_sync_alone"]
    data = {
        "repeat": repeat,
        "rounds": rounds,
        "tokens": tokens,
        "threads": threads,
        "load_average": {"min": min(loads), "max": max(loads)},
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tokens_per_s": samples,
        "median": medians,
        "x_sync_alone": {arm: round(value / base, 3) for arm, value in medians.items()},
        "paired": paired,
        "paired_median": {name: statistics.median(values) for name, values in paired.items()},
    }
    save("local_threads", data)
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.local_threads", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=sorted(ORDERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, rounds=args.rounds, tokens=args.tokens, threads=args.threads)))
        return
    data = run(repeat=args.repeat, rounds=args.rounds, tokens=args.tokens, threads=args.threads)
    print(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
