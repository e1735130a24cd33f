"""Speed: an answer in 10 rounds against one uncapped call of the same length (issue 6, item 2).

The emulator paces its output at an emulated decode rate (``decode_rate`` tokens/s, 40 events
a second). The same answer is fetched three ways, alternating, ``repeats`` times:

- ``one call (SDK)``: one streaming ``messages.stream`` call with ``max_tokens`` = the answer;
- ``autocontinue, 1 round``: autocontinue with ``max_tokens_per_call`` = the answer;
- ``autocontinue, N tokens a call``: autocontinue with ``max_tokens_per_call`` = answer / 10
  (10 rounds by prefill; 11 by user turn, which regenerates the half word at each seam).

The seam gap is the pause a reader of ``stream()`` sees at each round boundary: from the
last text event before ``RoundFinished`` to the first text event after the next
``RoundStarted``, beside the ordinary pause between two text events inside a round.

The emulator models decode time only, not time-to-first-token: against the real API each
extra round also pays the service's time to first token, which this figure cannot show.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from . import baselines
from .common import PROMPT, emulator_client

__all__ = ["run", "timed_stream"]


def timed_stream(client: Any, model: str, per_call: int) -> dict[str, Any]:
    """Run autocontinue.stream and time every event; returns wall time, rounds and gaps."""
    import autocontinue
    from autocontinue import Finished, RoundFinished, RoundStarted, TextDelta

    t0 = time.perf_counter()
    last_text_in_round: float | None = None
    waiting_since: float | None = None
    seam_gaps: list[float] = []
    inner_gaps: list[float] = []
    previous_text: float | None = None
    result = None
    for event in autocontinue.stream(
        PROMPT, client=client, backend="anthropic", model=model, max_tokens_per_call=per_call, max_rounds=1000
    ):
        now = time.perf_counter()
        if isinstance(event, TextDelta) and event.text:
            if waiting_since is not None:
                seam_gaps.append(now - waiting_since)
                waiting_since = None
            elif previous_text is not None:
                inner_gaps.append(now - previous_text)
            previous_text = now
            last_text_in_round = now
        elif isinstance(event, RoundFinished):
            pass
        elif isinstance(event, RoundStarted) and event.index > 0:
            waiting_since = last_text_in_round
        elif isinstance(event, Finished):
            result = event.result
    wall = time.perf_counter() - t0
    assert result is not None
    return {
        "wall_s": wall,
        "rounds": len(result.rounds),
        "chars": len(result.text),
        "text": result.text,
        "seam_gaps_s": seam_gaps,
        "inner_gaps_s": inner_gaps,
    }


def _one_call(client: Any, model: str, tokens: int) -> dict[str, Any]:
    run = baselines.one_call(client, PROMPT, model=model, max_tokens=tokens)
    return {"wall_s": run.wall_s, "rounds": 1, "chars": len(run.text), "text": run.text}


def measure(model: str, *, tokens: int, rounds: int, decode_rate: float, repeats: int) -> dict[str, Any]:
    per_call = tokens // rounds
    variants = {
        "one call (SDK)": lambda c: _one_call(c, model, tokens + 1000),
        "autocontinue, 1 round": lambda c: timed_stream(c, model, tokens + 1000),
        f"autocontinue, {per_call:,} tokens a call": lambda c: timed_stream(c, model, per_call),
    }
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with emulator_client(seed=0, length=tokens, decode_rate=decode_rate) as (client, _url):
        for _ in range(repeats):
            for name, fn in variants.items():
                samples[name].append(fn(client))
    reference = samples["one call (SDK)"][0]["text"]
    base = statistics.median(s["wall_s"] for s in samples["one call (SDK)"])
    rows = {}
    for name, runs in samples.items():
        wall = statistics.median(s["wall_s"] for s in runs)
        seams = [g for s in runs for g in s.get("seam_gaps_s", [])]
        inner = [g for s in runs for g in s.get("inner_gaps_s", [])]
        rows[name] = {
            "wall_s": round(wall, 3),
            "walls_s": [round(s["wall_s"], 3) for s in runs],
            "ratio": round(wall / base, 4),
            "rounds": runs[0]["rounds"],
            "exact": all(s["text"] == reference for s in runs),
            "seam_gap_ms_median": round(statistics.median(seams) * 1000, 2) if seams else None,
            "seam_gap_ms_max": round(max(seams) * 1000, 2) if seams else None,
            "inner_gap_ms_median": round(statistics.median(inner) * 1000, 2) if inner else None,
            "seam_gaps_ms": [round(g * 1000, 2) for g in seams],
        }
    return rows


def run(
    *,
    quick: bool = False,
    log: Any = print,
    models: tuple[str, ...] = ("claude-haiku-4-5", "claude-sonnet-4-6"),
) -> dict[str, Any]:
    """Both models; writes bench/out/speed.json."""
    from .common import save

    config: dict[str, Any] = (
        {"tokens": 4000, "rounds": 10, "decode_rate": 20_000.0, "repeats": 1}
        if quick
        else {"tokens": 20_000, "rounds": 10, "decode_rate": 2000.0, "repeats": 3}
    )
    results = {}
    for model in models:
        results[model] = rows = measure(model, **config)
        for name, row in rows.items():
            log(
                f"  {model} {name}: {row['wall_s']:.2f} s ({row['ratio']:.3f}x), "
                f"seam gap median {row['seam_gap_ms_median']} ms, exact={row['exact']}"
            )
    data = {"config": config, "results": results}
    save("speed", data)
    return data


if __name__ == "__main__":
    run()
