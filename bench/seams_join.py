"""Joining a long answer from capped pieces with the seam module alone (issue 3, item 2).

A simulated model writes a fixed answer (unique numbered words, multi-byte characters,
paragraphs) in rounds of ``ROUND_TOKENS`` tokens (4 characters a token), streamed in deltas of
``DELTA_CHARS`` characters. Every continuation carries the quirks of real models, chosen by a
seeded generator: in user-turn mode a repeated tail of 1-4 words (half the rounds), a
preamble (half the rounds, several wordings) and a dropped opening space. Each round does
what the engine does with the seam module and nothing else:

- a ``SeamRepairer`` over the last ``ECHO_WINDOW`` characters of the text so far,
- after each repaired delta, ``split_for_continuation`` of the pending text, emitting the base,
- at a cap, the held text goes to the next round's repairer.

The joined text must equal the answer character for character (``exact``). Time per MB should
stay flat as the answer grows (linear time); the peak of Python allocations is measured with
``tracemalloc`` for the largest size, in a separate pass.

Run: ``python -m bench.seams_join [TOKENS ...]`` (about half a minute; writes bench/out/seams_join.json).
"""

from __future__ import annotations

import json
import random
import sys
import time
import tracemalloc
from typing import Any

from autocontinue.seams import ECHO_WINDOW, SeamRepairer, split_for_continuation

ROUND_TOKENS = 4096
DELTA_CHARS = 16
CHARS_PER_TOKEN = 4
REPEATS = 5
SIZES = (125_000, 250_000, 500_000, 1_000_000)
PREAMBLES = (
    "Sure, continuing where I left off:",
    "Certainly! Continuing from where I left off:",
    "Here is the continuation:",
    "Continuing:",
    "Okay, picking up where I stopped:",
)
_WORDS = ("river", "stone", "café", "naïve", "tide", "über", "日本", "🌊", "e\u0301clair", "meadow", "glass")


def make_answer(tokens: int) -> str:
    """A deterministic answer of about ``tokens`` tokens, no word repeated."""
    parts: list[str] = []
    size, i = 0, 0
    while size < tokens * CHARS_PER_TOKEN:
        word = f"{_WORDS[i % len(_WORDS)]}·{i}"
        sep = "\n\n" if i % 89 == 88 else ("." if i % 11 == 10 else "") + " "
        parts.append(word + sep)
        size += len(word) + len(sep)
        i += 1
    return "".join(parts).rstrip()


def _echo(base_tail: str, words: int) -> str:
    starts = [
        i for i in range(1, len(base_tail)) if base_tail[i - 1].isspace() and not base_tail[i].isspace()
    ]
    return base_tail[starts[-min(words, len(starts))] :] if starts else ""


def _piece(answer: str, sent: int, tail: str, strategy: str, rng: random.Random) -> tuple[str, bool]:
    """What the quirky model sends after ``answer[:sent]``: (piece, capped)."""
    segment = answer[sent : sent + ROUND_TOKENS * CHARS_PER_TOKEN]
    capped = sent + len(segment) < len(answer)
    echo = _echo(tail, rng.randint(1, 4)) if rng.random() < 0.5 else ""
    prefix = echo if strategy == "user-turn" else ""  # prefill is trusted: models do not echo their own turn
    if strategy == "user-turn":
        if not prefix and rng.random() < 0.3:
            segment = segment.lstrip()
        if rng.random() < 0.5:
            prefix = rng.choice(PREAMBLES) + "\n\n" + prefix
    return prefix + segment, capped


def join(answer: str, strategy: str, seed: int = 7) -> tuple[str, int]:
    """Write ``answer`` through the seam module; returns (joined text, rounds)."""
    rng = random.Random(seed)
    parts: list[str] = []
    tail, held, sent, rounds = "", "", 0, 0
    while True:
        rounds += 1
        if rounds == 1:  # the first call has no seam
            piece, capped = (
                answer[: ROUND_TOKENS * CHARS_PER_TOKEN],
                len(answer) > ROUND_TOKENS * CHARS_PER_TOKEN,
            )
            repairer = None
        else:
            piece, capped = _piece(answer, sent, tail, strategy, rng)
            repairer = SeamRepairer(tail, held, strategy)
        first = len(parts)
        pending = ""
        for start in range(0, len(piece), DELTA_CHARS):
            delta = piece[start : start + DELTA_CHARS]
            pending += repairer.feed(delta) if repairer else delta
            base, pending = split_for_continuation(pending, strategy, fragment=bool(parts))
            if base:
                parts.append(base)
        if repairer:
            pending += repairer.finish(capped=capped)
        if not capped:
            parts.append(pending)
            return "".join(parts), rounds
        base, held = split_for_continuation(pending, strategy, fragment=bool(parts))
        parts.append(base)
        new = "".join(parts[first:])
        sent += len(new)
        tail = (tail + new)[-ECHO_WINDOW:]


def measure(tokens: int, strategy: str) -> dict[str, Any]:
    answer = make_answer(tokens)
    walls, cpus = [], []
    for _ in range(REPEATS):  # best of a few: the machine is shared
        wall, cpu = time.perf_counter(), time.process_time()
        joined, rounds = join(answer, strategy)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    mb = len(answer.encode("utf-8")) / 1e6
    return {
        "tokens": tokens,
        "mb": round(mb, 2),
        "rounds": rounds,
        "seconds": round(min(walls), 3),
        "cpu_seconds": round(min(cpus), 3),
        #: CPU time per MB (less disturbed than wall time by other work on a shared machine).
        "s_per_mb": round(min(cpus) / mb, 4),
        "exact": joined == answer,
    }


def peak_memory(tokens: int, strategy: str) -> dict[str, Any]:
    answer = make_answer(tokens)
    tracemalloc.start()
    joined, _ = join(answer, strategy)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "tokens": tokens,
        "answer_mb": round(len(answer.encode("utf-8")) / 1e6, 2),
        "peak_python_mb": round(peak / 1e6, 1),
        "exact": joined == answer,
    }


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    result: dict[str, Any] = {
        "round_tokens": ROUND_TOKENS,
        "delta_chars": DELTA_CHARS,
        "echo_window": ECHO_WINDOW,
    }
    for strategy in ("prefill", "user-turn"):
        result[strategy] = [measure(tokens, strategy) for tokens in sizes]
    result["memory"] = peak_memory(max(sizes), "user-turn")
    #: Largest over smallest time per MB across sizes: near 1 means linear time.
    result["s_per_mb_spread"] = {
        s: round(max(r["s_per_mb"] for r in result[s]) / min(r["s_per_mb"] for r in result[s]), 2)
        for s in ("prefill", "user-turn")
    }
    result["exact"] = (
        all(row["exact"] for s in ("prefill", "user-turn") for row in result[s]) and result["memory"]["exact"]
    )
    return result


def main() -> None:
    sizes = tuple(int(arg) for arg in sys.argv[1:]) or SIZES
    result = run(sizes)
    try:
        from bench.common import save

        result["saved"] = str(save("seams_join", result))
    except ImportError:  # run as a plain script
        pass
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
