"""Benchmark: a batch on the local model, items in turn against llama.cpp's parallel sequences.

Issue 12 asks whether the local backend should serve a batch one item after another (one
embedded model, what ``autocontinue batch --backend local`` does) or through llama.cpp's
parallel sequences, if that is faster. Three ways, the same SmolLM2-135M weights, the same
threads, the same items (``--items`` prompts, each continued for ``--rounds`` rounds of
``--per-call`` tokens):

* ``local_in_turn``: ``autocontinue.batch(backend=LocalBackend(n_threads=T))``, the embedded
  model (llama-cpp-python), items in turn;
* ``server_1_slot``: ``autocontinue.batch(backend="openai")`` against a real llama-server with one
  slot, batch concurrency 1 (the same work in turn, through HTTP);
* ``server_N_slots``: the same llama-server with ``-np N`` (continuous batching: N sequences
  decoded in one batch) and batch concurrency N.

Output tokens per second of wall time (each item's ``usage``), best of ``--repeat`` interleaved
repeats. Writes bench/out/local_batch.json and prints it.

    python -m bench.local_batch [--items 8] [--rounds 3] [--per-call 48] [--slots 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["PROMPTS", "measure", "run", "report_section"]

PROMPTS = (
    "Describe a lighthouse keeper's day.",
    "Explain how rivers shape valleys.",
    "Write a short story about a fox and a crow.",
    "Give advice to a new gardener.",
    "Describe the night sky in winter.",
    "Explain why bread rises.",
    "Write a letter from a sailor to his sister.",
    "Describe a busy market in the morning.",
    "Explain how a bicycle stays upright.",
    "Write a fable about patience.",
    "Describe an old library.",
    "Explain what makes a good map.",
)


def _items(count: int) -> list[dict[str, Any]]:
    return [{"id": f"i{n}", "prompt": PROMPTS[n % len(PROMPTS)]} for n in range(count)]


def measure(
    backend: Any, items: list[dict[str, Any]], *, concurrency: int, rounds: int, per_call: int
) -> dict:
    """One batch through ``autocontinue.batch``: wall time, output tokens, tokens/s, failures."""
    import autocontinue

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = autocontinue.batch(
            items,
            backend=backend,
            journal=str(Path(tmp) / "journal.sqlite3"),
            output=str(Path(tmp) / "out.jsonl"),
            concurrency=concurrency,
            max_tokens_per_call=per_call,
            max_rounds=rounds,
            seed=7,
        )
        wall = time.perf_counter() - started
    tokens = sum(r.usage.output_tokens for r in result.results)
    return {
        "wall_s": round(wall, 3),
        "output_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2) if wall else 0.0,
        "rounds": sum(r.rounds for r in result.results),
        "failed": sum(1 for r in result.results if r.error),
    }


def _best(samples: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(samples, key=lambda s: s["tokens_per_s"])
    return {**best, "tokens_per_s_all": [s["tokens_per_s"] for s in samples]}


def run(
    *, items: int = 8, rounds: int = 3, per_call: int = 48, slots: int = 4, threads: int = 2, repeat: int = 2
):
    """All three ways, interleaved ``repeat`` times; saves bench/out/local_batch.json."""
    import os

    from autocontinue.backends.local import LocalBackend

    from .common import save
    from .openai_rounds import serve

    work = _items(items)
    local = LocalBackend(n_threads=threads, seed=7)
    samples: dict[str, list[dict[str, Any]]] = {
        "local_in_turn": [],
        "server_1_slot": [],
        "server_N_slots": [],
    }
    shape = dict(rounds=rounds, per_call=per_call)
    warm = dict(rounds=1, per_call=4)  # load the weights / open the connection, untimed
    for _ in range(repeat):
        measure(local, work[:1], concurrency=1, **warm)
        samples["local_in_turn"].append(measure(local, work, concurrency=1, **shape))
        with serve(threads, parallel=1) as url:
            os.environ["OPENAI_BASE_URL"] = url + "/v1"
            measure("openai", work[:1], concurrency=1, **warm)
            samples["server_1_slot"].append(measure("openai", work, concurrency=1, **shape))
        with serve(threads, parallel=slots, context=4096 * slots) as url:
            os.environ["OPENAI_BASE_URL"] = url + "/v1"
            measure("openai", work[:slots], concurrency=slots, **warm)
            samples["server_N_slots"].append(measure("openai", work, concurrency=slots, **shape))
    os.environ.pop("OPENAI_BASE_URL", None)
    modes = {name: _best(rows) for name, rows in samples.items()}
    base = modes["local_in_turn"]["tokens_per_s"]
    for row in modes.values():
        row["speedup"] = round(row["tokens_per_s"] / base, 3) if base else None
    data = {
        "items": items,
        "rounds": rounds,
        "per_call": per_call,
        "slots": slots,
        "threads": threads,
        "repeat": repeat,
        "load_average": os.getloadavg()[0],
        "modes": modes,
    }
    save("local_batch", data)
    return data


def report_section(out: list[str], data: dict[str, Any] | None) -> None:
    """The docs/benchmarks.md section 9b (called by bench/report.py)."""
    out.append("## 9b. A batch on the local model: items in turn or parallel sequences\n")
    if not data:
        out.append(
            "Not measured in this run (no bench/out/local_batch.json; `python -m bench.local_batch`).\n"
        )
        return
    out.append(
        f"Local model, a batch of {data['items']} items ({data['rounds']} rounds of {data['per_call']} tokens "
        f"each, SmolLM2-135M, {data['threads']} threads), items in turn on the embedded model against "
        f"llama.cpp's parallel sequences (a real llama-server with {data['slots']} slots, continuous batching), "
        f"best of {data['repeat']} interleaved repeats, 1-minute load average {data['load_average']:.2f}. "
        "Command: `python -m bench.local_batch`.\n"
    )
    out.append("| way | output tokens | wall time | tokens/s | x in turn | failed |")
    out.append("|---|---:|---:|---:|---:|---:|")
    labels = {
        "local_in_turn": "embedded model, items in turn",
        "server_1_slot": "llama-server, 1 slot, in turn",
        "server_N_slots": f"llama-server, {data['slots']} slots, {data['slots']} at once",
    }
    for name, row in data["modes"].items():
        out.append(
            f"| {labels[name]} | {row['output_tokens']:,} | {row['wall_s']:.1f} s | {row['tokens_per_s']:.1f} | "
            f"{row['speedup']:.2f}x | {row['failed']} |"
        )
    out.append("")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.local_batch", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-call", type=int, default=48)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    data = run(
        items=args.items,
        rounds=args.rounds,
        per_call=args.per_call,
        slots=args.slots,
        threads=args.threads,
        repeat=args.repeat,
    )
    print(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
