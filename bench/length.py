"""Length-following on LongBench-Write with the embedded local model (issue 6, item 3).

The same model (SmolLM2-135M-Instruct via llama.cpp, seed fixed) answers each prompt twice:

- ``one call``: one call, up to 4,096 tokens, until the model stops by itself;
- ``autocontinue min_words``: ``autocontinue.generate(prompt, backend="local",
  min_words=required)``: rounds of 512 tokens, continued while the model is capped, and asked
  to go on (a user turn) when it ends before the required length;
- ``autocontinue min_words + max_words``: the same with ``max_words=required`` as a ceiling:
  once the answer has passed the required length it ends at the end of the sentence in
  progress.

Scored with LongBench-Write's S_l (``shared/data/NOTICE.md``): with x the required and y the
produced length in words, 100 * max(0, 1 - (y/x - 1)/3) when y > x, else
100 * max(0, 1 - (x/y - 1)/2). Words are counted by whitespace (``len(text.split())``).

The subset (it has to fit in about 15 minutes on this 2-core machine): the first two prompts,
in file order, of each required length up to 1,000 words (one where the file has only one);
``SUBSET`` below names them by line number.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .common import REPO

__all__ = ["score", "load_prompts", "subset", "run", "DATA", "METHODS"]

#: The methods compared, by key: the ``generate`` options each adds for a required length x.
METHODS: dict[str, Any] = {
    "one_call": lambda x, quick: {"max_rounds": 1, "max_tokens_per_call": 256 if quick else 4096},
    "min_words": lambda x, quick: {"min_words": x, "max_rounds": 40},
    "min_max_words": lambda x, quick: {"min_words": x, "max_words": x, "max_rounds": 40},
}

#: ``shared/`` sits beside the repository (in CI the clone has a copy beside it).
#: A copy of shared/data/longbench_write_en.jsonl (see bench/data/NOTICE.md).
DATA = REPO / "bench" / "data" / "longbench_write_en.jsonl"
MAX_REQUIRED = 1000
PER_LENGTH = 2
SEED = 1


def score(required: int, produced: int) -> float:
    """LongBench-Write's S_l for a required length x and a produced length y (in words)."""
    x, y = required, produced
    if y <= 0:
        return 0.0
    if y > x:
        return 100 * max(0.0, 1 - (y / x - 1) / 3)
    return 100 * max(0.0, 1 - (x / y - 1) / 2)


def load_prompts(path: Path = DATA) -> list[dict[str, Any]]:
    """Every prompt with its 1-based line number."""
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            rows.append({"line": line_no, **json.loads(line)})
    return rows


def subset(
    rows: list[dict[str, Any]], *, max_required: int = MAX_REQUIRED, per_length: int = PER_LENGTH
) -> list[dict[str, Any]]:
    """The first ``per_length`` prompts of each required length up to ``max_required`` words."""
    taken: dict[int, int] = {}
    chosen = []
    for row in rows:
        length = int(row["length"])
        if length <= max_required and taken.get(length, 0) < per_length:
            taken[length] = taken.get(length, 0) + 1
            chosen.append(row)
    return chosen


def _answer(prompt: str, **options: Any) -> dict[str, Any]:
    import autocontinue

    started = time.perf_counter()
    result = autocontinue.generate(prompt, backend="local", seed=SEED, **options)
    return {
        "words": len(result.text.split()),
        "rounds": len(result.rounds),
        "output_tokens": result.usage.output_tokens,
        "stop": result.stop_reason,
        "wall_s": round(time.perf_counter() - started, 2),
    }


def run(
    *, quick: bool = False, log: Any = print, methods: tuple[str, ...] = tuple(METHODS)
) -> dict[str, Any]:
    """The methods on the subset; writes bench/out/length.json."""
    from .common import save

    rows = (
        subset(load_prompts(), max_required=200 if quick else MAX_REQUIRED, per_length=1)[:2]
        if quick
        else subset(load_prompts())
    )
    items = []
    for row in rows:
        x = int(row["length"])
        item: dict[str, Any] = {"line": row["line"], "type": row["type"], "required": x}
        for method in methods:
            answer = _answer(row["prompt"], **METHODS[method](x, quick))
            answer["s_l"] = round(score(x, answer["words"]), 2)
            item[method] = answer
        items.append(item)
        log(
            f"  line {row['line']:>2} x={x:>5}: "
            + ", ".join(
                f"{m} {item[m]['words']:>5} words (S_l {item[m]['s_l']:5.1f}, {item[m]['rounds']} rounds)"
                for m in methods
            )
        )
    summary = {}
    for method in methods:
        scores = [item[method]["s_l"] for item in items]
        summary[method] = {
            "mean_s_l": round(sum(scores) / len(scores), 2) if scores else None,
            "wall_s": round(sum(item[method]["wall_s"] for item in items), 1),
            "reached_required": sum(item[method]["words"] >= item["required"] for item in items),
        }
    data = {
        "data": str(DATA.relative_to(REPO)),
        "subset_lines": [r["line"] for r in rows],
        "seed": SEED,
        "one_call_max_tokens": 256 if quick else 4096,
        "items": items,
        "summary": summary,
    }
    save("length", data)
    return data


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="LongBench-Write length-following (local model)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(quick=args.quick, methods=tuple(args.methods.split(",")))
