"""Length-following on LongBench-Write with the embedded local model (issue 6, item 3).

The same model (SmolLM2-135M-Instruct via llama.cpp, seed fixed) answers each prompt twice:

- ``one call``: one call, up to 4,096 tokens, until the model stops by itself;
- ``autocontinue min_words``: ``autocontinue.generate(prompt, backend="local",
  min_words=required)``: rounds of 512 tokens, continued while the model is capped, and asked
  to go on (a user turn) when it ends before the required length.

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

__all__ = ["score", "load_prompts", "subset", "run", "DATA"]

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


def subset(rows: list[dict[str, Any]], *, max_required: int = MAX_REQUIRED,
           per_length: int = PER_LENGTH) -> list[dict[str, Any]]:
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


def run(*, quick: bool = False, log: Any = print) -> dict[str, Any]:
    """Both methods on the subset; writes bench/out/length.json."""
    from .common import save

    rows = subset(load_prompts(), max_required=200 if quick else MAX_REQUIRED, per_length=1)[:2] if quick \
        else subset(load_prompts())
    one_call_tokens = 256 if quick else 4096
    items = []
    for row in rows:
        x = int(row["length"])
        one = _answer(row["prompt"], max_rounds=1, max_tokens_per_call=one_call_tokens)
        ours = _answer(row["prompt"], min_words=x, max_rounds=40)
        one["s_l"], ours["s_l"] = round(score(x, one["words"]), 2), round(score(x, ours["words"]), 2)
        items.append({"line": row["line"], "type": row["type"], "required": x,
                      "one_call": one, "min_words": ours})
        log(f"  line {row['line']:>2} x={x:>5}: one call {one['words']:>5} words (S_l {one['s_l']:5.1f}), "
            f"min_words {ours['words']:>5} words (S_l {ours['s_l']:5.1f}, {ours['rounds']} rounds)")
    summary = {}
    for method in ("one_call", "min_words"):
        scores = [item[method]["s_l"] for item in items]
        summary[method] = {
            "mean_s_l": round(sum(scores) / len(scores), 2) if scores else None,
            "wall_s": round(sum(item[method]["wall_s"] for item in items), 1),
            "reached_required": sum(item[method]["words"] >= item["required"] for item in items),
        }
    data = {"data": str(DATA.relative_to(REPO)), "subset_lines": [r["line"] for r in rows],
            "seed": SEED, "one_call_max_tokens": one_call_tokens, "items": items, "summary": summary}
    save("length", data)
    return data


if __name__ == "__main__":
    run()
